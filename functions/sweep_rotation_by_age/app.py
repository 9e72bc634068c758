"""EventBridge Scheduler target: rotate KV v2 and Secrets Manager secrets and database static roles older than the
policy's maximum age.

Input: a SweepRequest (`{"dry_run": false}` from the schedule). Bounded and resumable: a run that stops at its bound
leaves a checkpoint and the next scheduled run continues. Errors are raised, so the asynchronous invocation is
retried and then lands in the failure queue. Only counts and references are logged.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.observability import observed_handler
from rescind.runtime import get_aws_factory, get_engine, get_settings, get_vault_client
from rescind.schedules.rotation_by_age import run_rotation_by_age
from rescind.schedules.runtime import current_time, get_checkpoint_store, get_schedule_policy, publish_report
from rescind.schedules.types import SweepRequest
from rescind.validation import parse_model

get_settings()  # fail at cold start, not on the first run, when configuration is wrong
get_schedule_policy()


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_model(SweepRequest, event, what="sweep request")
    settings = get_settings()
    aws = get_aws_factory()
    report = run_rotation_by_age(
        request,
        policy=get_schedule_policy(),
        vault=get_vault_client(),
        aws=aws,
        engine=get_engine(),
        checkpoints=get_checkpoint_store(),
        kv_mounts=settings.kv_mounts,
        account_ids=settings.aws_account_ids or (aws.caller_identity().account_id,),
        now=current_time(),
        lease_mounts=settings.lease_mounts,
    )
    publish_report(report)
    return report.model_dump(mode="json")
