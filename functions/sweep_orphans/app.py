"""EventBridge Scheduler target: find workloads that no longer exist and offboard each through the offboarding
state machine (never acting directly).

Input: a SweepRequest (`{"dry_run": false}` from the schedule). Bounded and resumable through the checkpoint.
Errors are raised, so the asynchronous invocation is retried and then lands in the failure queue.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.exceptions import ConfigurationError
from rescind.observability import observed_handler
from rescind.offboarding.runtime import get_offboarding_state_machine_arn, get_sfn_client
from rescind.runtime import get_aws_factory, get_inventory, get_settings
from rescind.schedules.orphans import run_orphan_sweep
from rescind.schedules.runtime import current_time, get_checkpoint_store, get_schedule_policy, publish_report
from rescind.schedules.types import SweepRequest
from rescind.validation import parse_model

get_settings()  # fail at cold start, not on the first run, when configuration is wrong
get_schedule_policy()
get_offboarding_state_machine_arn()


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_model(SweepRequest, event, what="sweep request")
    inventory = get_inventory()
    if inventory is None:
        raise ConfigurationError("invalid configuration: the orphan sweep needs INVENTORY_TABLE_NAME")
    report = run_orphan_sweep(
        request,
        policy=get_schedule_policy(),
        inventory=inventory,
        aws=get_aws_factory(),
        sfn_client=get_sfn_client(),
        state_machine_arn=get_offboarding_state_machine_arn(),
        checkpoints=get_checkpoint_store(),
        now=current_time(),
    )
    publish_report(report)
    return report.model_dump(mode="json")
