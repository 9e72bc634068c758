"""The report's sections, built from the ledger's view of one incident (and the execution summary, when given):
summary, trigger, execution and approval, plan, timeline with evidence, what is still alive, final status."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from rescind.ledger.report.structure import Cell, ExecutionSummary, Report, Section, Table, Tone
from rescind.ledger.types import ActionAttemptRecord, CredentialState, IncidentClosure, IncidentStatus, IncidentView
from rescind.models import CredentialRef, Outcome
from rescind.models.refs import format_ref

_STATUS_TONE: dict[IncidentStatus, Tone] = {
    IncidentStatus.COMPLETED: "good",
    IncidentStatus.PARTIAL: "bad",
    IncidentStatus.FAILED: "bad",
    IncidentStatus.UNRESOLVED: "warn",
    IncidentStatus.REFUSED: "warn",
    IncidentStatus.DRY_RUN: "muted",
    IncidentStatus.RECORDED: "muted",
    IncidentStatus.REJECTED: "warn",
}
_OUTCOME_TONE: dict[Outcome, Tone] = {
    Outcome.SUCCEEDED: "good",
    Outcome.ALREADY_ABSENT: "good",
    Outcome.ALREADY_APPLIED: "good",
    Outcome.SKIPPED: "muted",
    Outcome.FAILED: "bad",
}
_NOTHING_ALIVE: dict[IncidentStatus, str] = {
    IncidentStatus.COMPLETED: "Nothing is still alive: every planned action was verified.",
    IncidentStatus.PARTIAL: "The run ended partial, but no still-alive reference was recorded.",
    IncidentStatus.FAILED: "The run failed before verification named what is alive: what was planned may still be.",
    IncidentStatus.UNRESOLVED: "The trigger could not be resolved to a credential: nothing was acted on.",
    IncidentStatus.REFUSED: "The run was refused (a hold, a protected identity, or a denied approval): "
    "nothing was changed.",
    IncidentStatus.DRY_RUN: "Dry run: nothing was changed, so everything planned is still alive by design.",
    IncidentStatus.RECORDED: "The event asked for no action (a sample, or an alert resolved or inactive): "
    "it was recorded, nothing was changed.",
    IncidentStatus.REJECTED: "The event was refused (malformed, or of a kind Rescind does not know): "
    "nothing was changed.",
}
_FAILED_ALL_READ_BACK_DEAD = "The run failed, but every planned credential was read back dead: nothing is still alive."
NOT_FINISHED = "The run is not finished: no closure has been recorded, so what is still alive is not known yet."


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "not recorded"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _ms(value: float) -> str:
    return f"{value:.1f}"


def _or_not_recorded(value: str | None) -> Cell:
    return Cell(value) if value else Cell("not recorded", tone="muted")


def ref_text(ref: CredentialRef) -> str:
    return format_ref(ref)


def incident_id_of(view: IncidentView) -> str:
    if view.incident is not None:
        return view.incident.incident_id
    if view.closure is not None:
        return view.closure.incident_id
    if view.attempts:
        return view.attempts[0].incident_id
    return "unknown"


def in_time_order(attempts: Sequence[ActionAttemptRecord]) -> list[ActionAttemptRecord]:
    return sorted(attempts, key=lambda a: (a.result.started_at, a.result.finished_at, a.attempt_id))


def build_report(view: IncidentView, execution: ExecutionSummary | None) -> Report:
    incident_id = incident_id_of(view)
    status_text: str
    status_tone: Tone
    if view.closure is None:
        status_text, status_tone = "not finished", "warn"
    else:
        status_text, status_tone = str(view.closure.status), _STATUS_TONE[view.closure.status]
    sections = (
        _summary_section(view, status_text, status_tone),
        _trigger_section(view),
        _approval_section(execution),
        _plan_section(view),
        _timeline_section(view),
        _still_alive_section(view),
        _final_section(view, status_text, status_tone),
    )
    return Report(
        title=f"Rescind incident report: {incident_id}",
        status_text=status_text,
        status_tone=status_tone,
        sections=sections,
    )


def _summary_section(view: IncidentView, status_text: str, status_tone: Tone) -> Section:
    incident, closure = view.incident, view.closure
    rows = [
        (Cell("Incident"), Cell(incident_id_of(view), code=True)),
        (Cell("Status"), Cell(status_text, tone=status_tone)),
        (Cell("Opened"), Cell(_when(incident.opened_at if incident else None))),
        (Cell("Closed"), Cell(_when(closure.closed_at) if closure else "not yet")),
        (Cell("Actions planned"), Cell(str(len(incident.plan.actions)) if incident else "unknown")),
        (Cell("Attempts recorded"), Cell(str(len(view.attempts)))),
        (Cell("Still alive"), _alive_cell(closure)),
    ]
    if closure is not None and closure.credentials:
        unknown = closure.in_state(CredentialState.UNKNOWN)
        rows.append((Cell("Verified dead"), Cell(str(len(closure.in_state(CredentialState.DEAD))))))
        rows.append((Cell("Not read back (unknown)"), Cell(str(len(unknown)), tone="warn" if unknown else "good")))
    return Section("summary", "Summary", blocks=(Table(("Field", "Value"), tuple(rows), key_value=True),))


def _alive_cell(closure: IncidentClosure | None) -> Cell:
    """A count of the living only where it is known: a credential never read back makes it "at least"."""
    if closure is None:
        return Cell("unknown (not finished)", tone="warn")
    if closure.alive_is_unknown:
        known = f"at least {len(closure.still_alive)}" if closure.still_alive else "unknown"
        return Cell(f"{known} (not everything was read back)", tone="warn")
    return Cell(str(len(closure.still_alive)), tone="bad" if closure.still_alive else "good")


def _trigger_section(view: IncidentView) -> Section:
    if view.incident is None:
        return Section("trigger", "Trigger", blocks=("No incident record: the trigger is not known.",))
    trigger = view.incident.trigger
    references = ", ".join(ref_text(ref) for ref in trigger.references)
    rows = [
        (Cell("Source"), Cell(trigger.source, code=True)),
        (Cell("Detail type"), Cell(trigger.detail_type)),
        (Cell("Event id"), Cell(trigger.event_id, code=True)),
        (Cell("Workload"), _or_not_recorded(trigger.workload_id)),
        (Cell("Reason"), _or_not_recorded(trigger.reason)),
        (Cell("Requested by"), _or_not_recorded(trigger.requested_by)),
        (Cell("Ticket"), _or_not_recorded(trigger.ticket)),
        (Cell("References named"), Cell(references, code=True) if references else Cell("none", tone="muted")),
    ]
    return Section("trigger", "Trigger", blocks=(Table(("Field", "Value"), tuple(rows), key_value=True),))


def _approval_section(execution: ExecutionSummary | None) -> Section:
    if execution is None:
        return Section(
            "approval",
            "Execution and approval",
            blocks=("No execution summary was given: who approved, if anyone, is not known from the ledger.",),
        )
    if execution.approved_by:
        decision = Cell(f"approved by {execution.approved_by}", tone="good")
    elif execution.denied_by:
        decision = Cell(f"denied by {execution.denied_by}", tone="bad")
    else:
        decision = Cell("no approval recorded", tone="muted")
    rows = [
        (Cell("Execution"), Cell(execution.execution_arn, code=True)),
        (Cell("Execution status"), Cell(execution.status)),
        (Cell("Started"), Cell(_when(execution.started_at))),
        (Cell("Stopped"), Cell(_when(execution.stopped_at) if execution.stopped_at else "still running")),
        (Cell("Approval"), decision),
    ]
    return Section(
        "approval", "Execution and approval", blocks=(Table(("Field", "Value"), tuple(rows), key_value=True),)
    )


def _plan_section(view: IncidentView) -> Section:
    if view.incident is None:
        return Section("plan", "Plan", blocks=("No incident record: the plan is not known.",))
    plan = view.incident.plan
    intro = f"Plan {plan.plan_id}: {len(plan.actions)} action(s)" + (", dry run." if plan.dry_run else ".")
    counts = Table(
        ("Credential kind", "Actions"),
        tuple((Cell(kind, code=True), Cell(str(count))) for kind, count in sorted(plan.counts_by_kind.items())),
        row_class="plan-count",
        compact=True,
    )
    actions = Table(
        ("#", "Action", "Target", "Reversible", "Reason"),
        tuple(
            (
                Cell(str(number)),
                Cell(str(action.kind)),
                Cell(ref_text(action.target), code=True),
                Cell("yes" if action.reversible else "no"),
                Cell(action.reason),
            )
            for number, action in enumerate(plan.actions, start=1)
        ),
        row_class="plan-action",
    )
    return Section("plan", "Plan", blocks=(intro, counts, actions))


def _timeline_section(view: IncidentView) -> Section:
    attempts = in_time_order(view.attempts)
    if not attempts:
        return Section("timeline", "Timeline", blocks=("No action attempt has been recorded.",))
    timeline_rows = []
    evidence_rows = []
    for number, attempt in enumerate(attempts, start=1):
        result = attempt.result
        detail = f"{result.error_type}: {result.detail}" if result.error_type else result.detail
        timeline_rows.append(
            (
                Cell(str(number)),
                Cell(_when(result.started_at)),
                Cell(str(result.action_kind)),
                Cell(ref_text(result.target), code=True),
                Cell(str(result.outcome), tone=_OUTCOME_TONE[result.outcome]),
                Cell(_ms(result.act_ms)),
                Cell(_ms(result.verify_ms)),
                Cell(_ms(result.duration_ms)),
                Cell(detail),
            )
        )
        if not result.evidence:
            evidence_rows.append((Cell(str(number)), Cell("none recorded", tone="muted"), Cell(""), Cell("")))
        for evidence in result.evidence:
            evidence_rows.append(
                (
                    Cell(str(number)),
                    Cell(evidence.check),
                    Cell(evidence.observed),
                    Cell("yes", tone="good") if evidence.confirmed else Cell("no", tone="bad"),
                )
            )
    timeline = Table(
        (
            "#",
            "Started (UTC)",
            "Action",
            "Target",
            "Outcome",
            "Act ms",
            "Verify ms",
            "Total ms",
            "Detail",
        ),
        tuple(timeline_rows),
        row_class="attempt",
        row_ids=tuple(f"attempt-{number}" for number in range(1, len(attempts) + 1)),
    )
    verification = Table(("#", "Check", "Observed", "Confirmed"), tuple(evidence_rows), row_class="evidence")
    return Section(
        "timeline",
        "Timeline",
        blocks=(
            f"{len(attempts)} attempt(s), in the order they started.",
            timeline,
            "Verification evidence, read back from the target system, by attempt number:",
            verification,
        ),
    )


def _still_alive_section(view: IncidentView) -> Section:
    blocks: list[str | Table] = []
    if view.closure is None:
        blocks.append(NOT_FINISHED)
    elif view.closure.still_alive:
        blocks.append(f"{len(view.closure.still_alive)} credential(s) are still alive and need attention.")
        blocks.append(
            Table(
                ("Credential kind", "Reference"),
                tuple(
                    (Cell(str(ref.kind), code=True), Cell(ref_text(ref), code=True, tone="bad"))
                    for ref in view.closure.still_alive
                ),
                row_class="still-alive",
            )
        )
    elif not view.closure.alive_is_unknown:
        failed_but_all_dead = view.closure.status is IncidentStatus.FAILED and view.closure.credentials
        blocks.append(_FAILED_ALL_READ_BACK_DEAD if failed_but_all_dead else _NOTHING_ALIVE[view.closure.status])
    unknown = view.closure.in_state(CredentialState.UNKNOWN) if view.closure is not None else ()
    if unknown:
        blocks.append(f"{len(unknown)} credential(s) were never read back: they may be alive.")
        blocks.append(
            Table(
                ("Credential kind", "Reference"),
                tuple((Cell(str(ref.kind), code=True), Cell(ref_text(ref), code=True, tone="warn")) for ref in unknown),
                row_class="unknown",
            )
        )
    elif view.closure is not None and view.closure.alive_is_unknown and not view.closure.still_alive:
        blocks.append(_NOTHING_ALIVE[view.closure.status])
    if view.incident is not None:
        attempted = {attempt.result.action_id for attempt in view.attempts}
        never = [action for action in view.incident.plan.actions if action.action_id not in attempted]
        if never:
            blocks.append(f"{len(never)} planned action(s) have no recorded attempt.")
            blocks.append(
                Table(
                    ("Action", "Target"),
                    tuple((Cell(str(action.kind)), Cell(ref_text(action.target), code=True)) for action in never),
                    row_class="not-attempted",
                )
            )
    return Section("still-alive", "Still alive", blocks=tuple(blocks))


def _final_section(view: IncidentView, status_text: str, status_tone: Tone) -> Section:
    rows = [(Cell("Final status"), Cell(status_text, tone=status_tone))]
    if view.closure is not None and view.closure.summary:
        rows.append((Cell("Closure summary"), Cell(view.closure.summary)))
    return Section("final", "Final status", blocks=(Table(("Field", "Value"), tuple(rows), key_value=True),))
