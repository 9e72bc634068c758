"""Cached factories for the sweep functions (the schedule policy, the checkpoint store, the report bucket), and
what they publish when a run ends (its log line and metrics).

Settings, the Vault client, the engine, the inventory, the AWS clients and factory come from `rescind.runtime`.
Only handlers call these; the sweeps take everything as arguments.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from rescind.caching import runtime_cache
from rescind.models.results import utc_now
from rescind.observability import MetricPoint, add_count, logger
from rescind.runtime import get_dynamodb_client, get_settings
from rescind.schedules.types import ChangeStatus, SweepReport

if TYPE_CHECKING:
    from rescind.schedules.dynamodb import DynamoDbCheckpointStore
    from rescind.schedules.inventory_report import InventoryReport
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


def publish_report(report: SweepReport) -> None:
    """Log the run's counts (targets and statuses only, never a value) and count each status (SweepChanges)."""
    counts = {str(status): report.count(status) for status in ChangeStatus}
    sweep = str(report.sweep)
    for status, changes in counts.items():
        add_count("SweepChanges", changes, sweep=sweep, status=status)
    add_count("SweepExamined", report.examined, sweep=sweep)
    add_count("SweepIncomplete", 0 if report.complete else 1, sweep=sweep)
    logger.info(
        "sweep finished",
        extra={
            "sweep": sweep,
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


def publish_inventory_report(report: InventoryReport, s3_keys: list[str]) -> None:
    """Count the report's figures (one metric each; per kind and per age bucket by dimension) and log them."""
    figures = inventory_report_metrics(report)
    for point in figures:
        add_count(point.name, point.value, **point.dimensions)
    logger.info(
        "inventory report written",
        extra={"s3_keys": s3_keys, "figures": [[point.name, point.value, dict(point.dimensions)] for point in figures]},
    )


def inventory_report_metrics(report: InventoryReport) -> list[MetricPoint]:
    """The report's counts as metrics: totals and the three problem counts, then per kind and per age bucket."""
    totals = {
        "CredentialsTotal": report.total,
        "CredentialsWithoutOwner": report.no_owner_count,
        "StandingPrivilege": report.standing_privilege_count,
        "TtlViolations": report.ttl_violation_count,
        "ReportErrors": len(report.errors),
    }
    return [
        *(MetricPoint(name, float(value)) for name, value in totals.items()),
        *(
            MetricPoint("CredentialsByKind", float(count), {"kind": str(kind)})
            for kind, count in report.by_kind.items()
        ),
        *(MetricPoint("CredentialsByAge", float(count), {"age": age}) for age, count in report.by_age.items()),
    ]
