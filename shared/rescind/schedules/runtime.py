"""Cached factories for the sweep functions: the schedule policy, the checkpoint store, the report bucket.

Settings, the Vault client, the engine, the inventory, the AWS clients and factory come from `rescind.runtime`.
Only handlers call these; the sweeps take everything as arguments.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from rescind.caching import runtime_cache
from rescind.models.results import utc_now
from rescind.runtime import get_dynamodb_client, get_settings
from rescind.schedules.types import ChangeStatus, SweepReport

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics

    from rescind.schedules.dynamodb import DynamoDbCheckpointStore
    from rescind.schedules.policy import SchedulePolicy


def current_time() -> datetime:
    """The sweeps' clock (UTC). One function, so a test can run a sweep as if time had moved on."""
    return utc_now()


def get_schedule_policy() -> SchedulePolicy:
    """SCHEDULE_POLICY. Every sweep reads it at cold start, so it also requires what every sweep needs: the
    checkpoint table (ConfigurationError names a missing variable)."""
    settings = get_settings()
    settings.require("sweep_state_table_name")
    return settings.schedule_policy


@runtime_cache
def get_checkpoint_store() -> DynamoDbCheckpointStore:
    from rescind.schedules.dynamodb import DynamoDbCheckpointStore

    return DynamoDbCheckpointStore(get_settings().required("sweep_state_table_name"), get_dynamodb_client())


def get_report_bucket() -> str:
    return get_settings().required("inventory_report_bucket")


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
