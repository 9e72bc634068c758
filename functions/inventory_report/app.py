"""EventBridge Scheduler target: count the estate's credentials (by kind and age, without owner, standing
privilege, TTL violations), write the report as JSON and Markdown to the report bucket, and publish the counts as
metrics.

Input: a SweepRequest (`{"dry_run": false}` from the schedule); the report only reads, so a dry run still writes
the report. Errors are raised, so the asynchronous invocation is retried and then lands in the failure queue.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.observability import observed_handler
from rescind.runtime import (
    get_aws_factory,
    get_discovery_scope,
    get_inventory,
    get_s3_client,
    get_settings,
    get_vault_client,
)
from rescind.schedules.inventory_report import build_inventory_report, write_inventory_report
from rescind.schedules.runtime import current_time, get_report_bucket, get_schedule_policy, publish_inventory_report
from rescind.schedules.types import SweepRequest
from rescind.validation import parse_model

get_settings()  # fail at cold start, not on the first run, when configuration is wrong
get_schedule_policy()
get_report_bucket()


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parse_model(SweepRequest, event, what="sweep request")  # the schedule's input is checked like every sweep's
    report = build_inventory_report(
        policy=get_schedule_policy(),
        vault=get_vault_client(),
        aws=get_aws_factory(),
        scope=get_discovery_scope(),
        inventory=get_inventory(),
        now=current_time(),
    )
    keys = write_inventory_report(report, get_s3_client(), get_report_bucket())
    publish_inventory_report(report, keys)
    return {**report.model_dump(mode="json"), "s3_keys": keys}
