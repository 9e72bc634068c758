"""EventBridge Scheduler target: tidy the PKI mounts, rebuild stale CRLs, flag certificates that live longer than
policy or have no owner.

Input: a SweepRequest (`{"dry_run": false}` from the schedule). Bounded and resumable through the checkpoint.
Errors are raised, so the asynchronous invocation is retried and then lands in the failure queue.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.observability import observed_handler
from rescind.runtime import get_inventory, get_settings, get_vault_client
from rescind.schedules.pki_hygiene import run_pki_hygiene
from rescind.schedules.runtime import current_time, get_checkpoint_store, get_schedule_policy, publish_report
from rescind.schedules.types import SweepRequest
from rescind.validation import parse_model

get_settings()  # fail at cold start, not on the first run, when configuration is wrong
get_schedule_policy()


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_model(SweepRequest, event, what="sweep request")
    report = run_pki_hygiene(
        request,
        policy=get_schedule_policy(),
        vault=get_vault_client(),
        pki_mounts=get_settings().pki_mounts,
        inventory=get_inventory(),
        checkpoints=get_checkpoint_store(),
        now=current_time(),
    )
    publish_report(report)
    return report.model_dump(mode="json")
