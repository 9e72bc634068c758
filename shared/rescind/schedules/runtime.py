"""Cached factories for the sweep functions: the schedule policy, the checkpoint store, the report bucket.

Settings, the Vault client, the engine, the inventory and the AWS factory come from `rescind.runtime`. Only
handlers call these; the sweeps take everything as arguments.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rescind.caching import runtime_cache
from rescind.exceptions import InvalidInput
from rescind.models.results import utc_now
from rescind.schedules.policy import SchedulePolicy
from rescind.schedules.types import ChangeStatus, SweepReport

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics

    from rescind.schedules.dynamodb import DynamoDbCheckpointStore

SWEEP_STATE_TABLE_VARIABLE = "SWEEP_STATE_TABLE_NAME"
REPORT_BUCKET_VARIABLE = "INVENTORY_REPORT_BUCKET"


def current_time() -> datetime:
    """The sweeps' clock (UTC). One function, so a test can run a sweep as if time had moved on."""
    return utc_now()


def _required(variable: str) -> str:
    value = os.environ.get(variable, "").strip()
    if not value:
        raise InvalidInput(f"invalid configuration: {variable} is not set")
    return value


# Cached by the variable's value, not once per process: the local stack runs every function in one process,
# each with its own environment, and a policy or table must never leak from one function to another.


def get_schedule_policy() -> SchedulePolicy:
    """SCHEDULE_POLICY, validated at cold start (InvalidInput names the field)."""
    return _policy(os.environ.get("SCHEDULE_POLICY", ""))


@runtime_cache
def _policy(raw: str) -> SchedulePolicy:
    return SchedulePolicy.from_environ({"SCHEDULE_POLICY": raw})


def get_checkpoint_store() -> DynamoDbCheckpointStore:
    return _checkpoint_store(_required(SWEEP_STATE_TABLE_VARIABLE), os.environ.get("AWS_REGION", ""))


@runtime_cache
def _checkpoint_store(table_name: str, region: str) -> DynamoDbCheckpointStore:
    import boto3

    from rescind.schedules.dynamodb import DynamoDbCheckpointStore

    return DynamoDbCheckpointStore(table_name, boto3.client("dynamodb", region_name=region or None))


def get_report_bucket() -> str:
    return _required(REPORT_BUCKET_VARIABLE)


def get_s3_client() -> Any:
    return _s3_client(os.environ.get("AWS_REGION", ""))


@runtime_cache
def _s3_client(region: str) -> Any:
    import boto3

    return boto3.client("s3", region_name=region or None)


def publish_report(report: SweepReport, *, logger: Logger, metrics: Metrics) -> None:
    """Log the run's counts (targets and statuses only, never a value) and emit one metric per status."""
    from aws_lambda_powertools.metrics import MetricUnit

    counts = {str(status): report.count(status) for status in ChangeStatus}
    metrics.add_dimension(name="Sweep", value=str(report.sweep))
    for status, count in counts.items():
        metrics.add_metric(name=f"Sweep_{status}", unit=MetricUnit.Count, value=count)
    metrics.add_metric(name="SweepExamined", unit=MetricUnit.Count, value=report.examined)
    metrics.add_metric(name="SweepIncomplete", unit=MetricUnit.Count, value=0 if report.complete else 1)
    logger.info(
        "sweep finished",
        extra={
            "sweep": str(report.sweep),
            "run_id": report.run_id,
            "dry_run": report.dry_run,
            "examined": report.examined,
            "complete": report.complete,
            "checkpoint": report.checkpoint,
            **counts,
        },
    )
    for change in report.changes:
        if change.status is ChangeStatus.FAILED:
            logger.warning("sweep change failed", extra={"target": change.target, "what": change.what})
