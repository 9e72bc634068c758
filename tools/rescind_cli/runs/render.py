"""The run commands' tables and lines for a person: a plan, a run's status, the ledger's incidents, an incident."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rescind_cli.runs.boundary import say, stderr_console, stdout_console
from rescind_cli.runs.history import RunProgress

if TYPE_CHECKING:
    from rescind.ledger.types import IncidentView


def print_plan(document: dict[str, Any], console: Console) -> None:
    table = Table(title=f"Plan for {escape(document['subject'])}", title_justify="left")
    for column in ("#", "phase", "action", "credential", "reversible"):
        table.add_column(column, overflow="fold")
    for action in document["actions"]:
        table.add_row(
            str(action["order"]),
            action["phase"],
            action["kind"],
            escape(action["target"]),
            "yes" if action["reversible"] else "no",
        )
    console.print(table)
    counts = ", ".join(f"{kind} {count}" for kind, count in sorted(document["counts_by_kind"].items()))
    console.print(f"{document['total']} action(s): {counts or 'none'}")
    tone = {"proceed": "green", "needs_approval": "yellow", "dry_run": "cyan"}.get(document["decision"], "red")
    console.print(
        f"guard: [{tone}]{document['decision']}[/] ({escape(document['decision_reason'])});"
        f" blast-radius cap {document['blast_radius_cap']}"
    )


def print_status(progress: RunProgress) -> None:
    table = Table(title=f"Run {progress.name}", title_justify="left", show_header=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    planned = "?" if progress.planned is None else str(progress.planned)
    rows = [
        ("execution", progress.execution_arn),
        ("status", progress.status),
        ("current state", progress.current_state),
        ("actions", f"{progress.done} of {planned} done, {progress.failed} failed"),
        ("guard", f"{progress.decision or '?'}: {progress.decision_reason or ''}"),
        ("waiting for approval", "yes" if progress.waiting_for_approval else "no"),
    ]
    for name, value in rows:
        table.add_row(name, escape(value))
    stderr_console.print(table)


def incident_summary(view: IncidentView) -> dict[str, Any]:
    incident = view.incident
    return {
        "incident_id": incident.incident_id if incident else None,
        "opened_at": incident.opened_at.isoformat() if incident else None,
        "source": incident.trigger.source if incident else None,
        "detail_type": incident.trigger.detail_type if incident else None,
        "workload_id": incident.trigger.workload_id if incident else None,
        "requested_by": incident.trigger.requested_by if incident else None,
        "actions_planned": len(incident.plan.actions) if incident else None,
        "attempts": len(view.attempts),
        "status": str(view.closure.status) if view.closure else "open",
        "still_alive": len(view.closure.still_alive) if view.closure else None,
        # True when the closure cannot say nothing is alive (a credential was never read back).
        "alive_is_unknown": view.closure.alive_is_unknown if view.closure else True,
    }


def print_incidents(summaries: Sequence[dict[str, Any]]) -> None:
    table = Table(title="Incidents, newest first", title_justify="left")
    for column in ("incident", "opened", "trigger", "subject", "actions", "status"):
        table.add_column(column, overflow="fold")
    for row in summaries:
        table.add_row(
            escape(str(row["incident_id"])),
            str(row["opened_at"] or "")[:19],
            escape(f"{row['source']} / {row['detail_type']}"),
            escape(str(row["workload_id"] or "")),
            f"{row['attempts']}/{row['actions_planned']}",
            str(row["status"]),
        )
    stdout_console().print(table)
    say(f"{len(summaries)} incident(s)")


def print_incident(view: IncidentView) -> None:
    from rescind.ledger.closing import describe_alive
    from rescind.models.refs import format_ref

    console = stdout_console()
    summary = incident_summary(view)
    console.print(f"[bold]{escape(str(summary['incident_id']))}[/] {summary['status']}")
    if view.incident is not None:
        trigger = view.incident.trigger
        console.print(
            escape(
                f"trigger: {trigger.source} / {trigger.detail_type}, by {trigger.requested_by or 'an event'}"
                f", reason: {trigger.reason or '-'}, ticket: {trigger.ticket or '-'}"
            )
        )
    table = Table(title="Attempts", title_justify="left")
    for column in ("started", "action", "credential", "outcome", "verified"):
        table.add_column(column, overflow="fold")
    for attempt in view.attempts:
        result = attempt.result
        confirmed = all(evidence.confirmed for evidence in result.evidence) if result.evidence else False
        table.add_row(
            result.started_at.isoformat(timespec="seconds"),
            str(result.action_kind),
            escape(format_ref(result.target)),
            str(result.outcome),
            "yes" if confirmed else "no",
        )
    console.print(table)
    for approval in view.approvals:
        console.print(escape(f"{approval.verdict} by {approval.decided_by} at {approval.decided_at.isoformat()}"))
    if view.closure is not None:
        console.print(escape(f"closed {view.closure.status}; {describe_alive(view.closure)}"))


def direct_result_printer(json_output: bool) -> Callable[[Any], None]:
    """Each action result of a run in this process, as it lands: one line on stderr (none with --json)."""
    from rescind.models.refs import format_ref

    def show(result: Any) -> None:
        if not json_output:
            say(f"  {result.outcome}: {result.action_kind} {escape(format_ref(result.target))}")

    return show
