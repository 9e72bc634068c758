"""Closing an incident: the closure record, and the notification and event that say how it ended."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from rescind.ledger.base import Ledger
from rescind.ledger.types import IncidentClosure, IncidentRecord, IncidentStatus, Trigger
from rescind.models import CredentialRef, Plan
from rescind.models.results import utc_now


class RunOutcome(StrEnum):
    """How a run reached its end, as the state machine knows it."""

    VERIFIED = "verified"  # the actions ran and everything was read back
    NOTHING_TO_DO = "nothing_to_do"
    DRY_RUN = "dry_run"
    REFUSED = "refused"  # protected, or on hold
    DENIED = "denied"  # an approver said no
    APPROVAL_TIMED_OUT = "approval_timed_out"
    FAILED = "failed"  # a step failed after its retries


class CloseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    incident_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,80}$")]
    flow: Annotated[str, Field(pattern=r"^[a-z_]{1,40}$")] = "offboarding"
    subject: Annotated[str, Field(max_length=500)] = ""  # the workload or credential the run was about
    outcome: RunOutcome
    reason: Annotated[str, Field(max_length=1000)] = ""
    # For VERIFIED: what verification found alive. For FAILED: what was planned and not verified dead.
    still_alive: tuple[CredentialRef, ...] = ()
    error_type: Annotated[str, Field(max_length=200)] | None = None


class Notification(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: Annotated[str, Field(max_length=100)]  # SNS subjects are at most 100 characters
    message: str


class ClosureResult(BaseModel):
    """What the state machine needs to notify and to decide success: references and counts, no values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    incident_id: str
    status: IncidentStatus
    succeeded: bool
    still_alive_count: int
    notification: Notification
    event_detail_type: str
    event_detail: dict[str, object]


_STATUS: dict[RunOutcome, IncidentStatus] = {
    RunOutcome.VERIFIED: IncidentStatus.COMPLETED,
    RunOutcome.NOTHING_TO_DO: IncidentStatus.COMPLETED,
    RunOutcome.DRY_RUN: IncidentStatus.DRY_RUN,
    RunOutcome.REFUSED: IncidentStatus.REFUSED,
    RunOutcome.DENIED: IncidentStatus.REFUSED,
    RunOutcome.APPROVAL_TIMED_OUT: IncidentStatus.REFUSED,
    RunOutcome.FAILED: IncidentStatus.FAILED,
}

_DETAIL_TYPE: dict[IncidentStatus, str] = {
    IncidentStatus.COMPLETED: "{flow} Completed",
    IncidentStatus.PARTIAL: "Action Failed",
    IncidentStatus.FAILED: "{flow} Failed",
    IncidentStatus.REFUSED: "{flow} Refused",
    IncidentStatus.DRY_RUN: "{flow} Planned",
    IncidentStatus.UNRESOLVED: "{flow} Unresolved",
    IncidentStatus.RECORDED: "{flow} Recorded",
    IncidentStatus.REJECTED: "{flow} Rejected",
}


# Where a flow names its success itself: the leak response announces the credential, not the run.
_COMPLETED_DETAIL_TYPE: dict[str, str] = {"leak_response": "Credential Revoked"}


def close_incident(request: CloseRequest, ledger: Ledger) -> ClosureResult:
    """Append the closure; say how it ended. A run that left anything alive is PARTIAL, whatever else happened.

    A failed run that names nothing alive failed in a task that does not know what is alive (plan, approval or
    verify): FAILED, not PARTIAL, because no verification says what is alive or dead.
    """
    status = _STATUS[request.outcome]
    if request.still_alive and status in (IncidentStatus.COMPLETED, IncidentStatus.FAILED):
        status = IncidentStatus.PARTIAL
    summary = _summary(request, status)
    ledger.close_incident(
        IncidentClosure(
            incident_id=request.incident_id,
            status=status,
            still_alive=request.still_alive,
            closed_at=utc_now(),
            summary=summary[:2000],
        )
    )
    flow_title = request.flow.replace("_", " ").title()
    alive_keys = [ref.key for ref in request.still_alive]
    detail: dict[str, object] = {
        "incident_id": request.incident_id,
        "flow": request.flow,
        "subject": request.subject,
        "status": str(status),
        "outcome": str(request.outcome),
        "still_alive": alive_keys[:100],
        "still_alive_count": len(alive_keys),
    }
    message = summary
    if alive_keys:
        message += "\nStill alive:\n" + "\n".join(f"- {key}" for key in alive_keys[:200])
    return ClosureResult(
        incident_id=request.incident_id,
        status=status,
        succeeded=status in (IncidentStatus.COMPLETED, IncidentStatus.DRY_RUN),
        still_alive_count=len(alive_keys),
        notification=Notification(subject=f"Rescind {flow_title}: {status}"[:100], message=message),
        event_detail_type=_event_detail_type(request, status),
        event_detail=detail,
    )


def _event_detail_type(request: CloseRequest, status: IncidentStatus) -> str:
    if status is IncidentStatus.COMPLETED and request.outcome is RunOutcome.VERIFIED:
        named = _COMPLETED_DETAIL_TYPE.get(request.flow)
        if named:
            return named
    return _DETAIL_TYPE[status].format(flow=request.flow.replace("_", " ").title())


def _summary(request: CloseRequest, status: IncidentStatus) -> str:
    parts = [f"incident {request.incident_id} ({request.flow}) for {request.subject or 'an unnamed subject'}: {status}"]
    parts.append(f"outcome: {request.outcome}")
    if request.reason:
        parts.append(f"reason: {request.reason}")
    if request.error_type:
        parts.append(f"error: {request.error_type}")
    if request.outcome is RunOutcome.FAILED and not request.still_alive:
        # The run stopped before verification: what is alive is not known, which is not the same as nothing.
        parts.append("still alive: unknown (verification did not run; see the plan and the attempts)")
    else:
        parts.append(f"still alive: {len(request.still_alive)}")
    return "; ".join(parts)


def record_closed_incident(
    incident_id: str,
    trigger: Trigger,
    *,
    status: IncidentStatus,
    summary: str,
    subject: str,
    advice: str,
    ledger: Ledger,
    notify: Callable[[str, str], None],
) -> None:
    """An incident that ends where it starts (UNRESOLVED, RECORDED, REJECTED): an empty plan, notified and closed
    once. A retry after a failed notify or close finishes the job; a plain re-delivery finds it done."""
    opened = ledger.open_incident(
        IncidentRecord(
            incident_id=incident_id, trigger=trigger, plan=Plan(plan_id=incident_id, actions=()), opened_at=utc_now()
        )
    )
    if opened or ledger.read_incident(incident_id).closure is None:
        notify(subject, f"{summary}\n{advice}")
        ledger.close_incident(
            IncidentClosure(incident_id=incident_id, status=status, closed_at=utc_now(), summary=summary[:2000])
        )


_SAFE_ENVELOPE_FIELD = re.compile(r"[A-Za-z0-9 _.:/-]{1,200}")


def event_reference(event: Any) -> tuple[str, str, str]:
    """(source, detail-type, id) of an event as far as they are plain text; "(invalid)" where they are not.

    The id falls back to a digest of the whole event, so a broken event still has one stable reference."""

    def field(name: str) -> str:
        value = event.get(name) if isinstance(event, dict) else None
        return value if isinstance(value, str) and _SAFE_ENVELOPE_FIELD.fullmatch(value) else "(invalid)"

    event_id = field("id")
    if event_id == "(invalid)":
        try:
            canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
        except (TypeError, ValueError, RecursionError):
            canonical = repr(type(event))
        event_id = "sha256:" + hashlib.sha256(canonical.encode("utf-8", "replace")).hexdigest()[:40]
    return field("source"), field("detail-type"), event_id


def record_rejected_event(
    event: Any,
    *,
    flow: str,
    problem: str,
    ledger: Ledger,
    notify: Callable[[str, str], None],
) -> str:
    """A REJECTED incident for an event from AWS or GitHub that was refused; its id. Use it only for events that
    cannot carry a secret value: the record names the event and the problem, never the event's content."""
    source, detail_type, event_id = event_reference(event)
    digest = hashlib.sha256(f"{flow}\n{source}\n{detail_type}\n{event_id}".encode()).hexdigest()[:40]
    incident_id = f"rejected-{digest}"
    flow_title = flow.replace("_", " ").title()
    record_closed_incident(
        incident_id,
        Trigger(source=source, detail_type=detail_type, event_id=event_id, reason=problem[:500]),
        status=IncidentStatus.REJECTED,
        summary=(
            f"incident {incident_id} ({flow}): rejected; {source} {detail_type} {event_id}: {problem}. "
            "Nothing was acted on."
        ),
        subject=f"Rescind {flow_title}: event rejected"[:100],
        advice="If the event is real, its shape is one Rescind does not know: report it with the event attached.",
        ledger=ledger,
        notify=notify,
    )
    return incident_id
