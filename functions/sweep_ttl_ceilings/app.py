"""EventBridge Scheduler target: lower role, mount, token and lease TTLs above the policy's ceilings (never raise).

Input: a SweepRequest (`{"dry_run": false}` from the schedule). Bounded and resumable through the checkpoint.
Errors are raised, so the asynchronous invocation is retried and then lands in the failure queue.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.observability import observed_handler
from rescind.runtime import get_engine, get_settings, get_vault_client
from rescind.schedules.runtime import current_time, get_checkpoint_store, get_schedule_policy, publish_report
from rescind.schedules.ttl_ceilings import run_ttl_ceilings
from rescind.schedules.types import SweepRequest
from rescind.validation import parse_model

get_settings()  # fail at cold start, not on the first run, when configuration is wrong
get_schedule_policy()


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_model(SweepRequest, event, what="sweep request")
    settings = get_settings()
    report = run_ttl_ceilings(
        request,
        policy=get_schedule_policy(),
        vault=get_vault_client(),
        engine=get_engine(),
        checkpoints=get_checkpoint_store(),
        pki_mounts=settings.pki_mounts,
        approle_mounts=settings.approle_mounts,
        lease_mounts=settings.lease_mounts,
        now=current_time(),
    )
    publish_report(report)
    return report.model_dump(mode="json")
