"""Closing an incident: the closure record, and the notification and event that say how it ended."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.ledger.base import Ledger
from rescind.ledger.proofs import proven_by_kill
from rescind.ledger.types import (
    ActionAttemptRecord,
    CredentialStanding,
    CredentialState,
    IncidentClosure,
    IncidentRecord,
    IncidentStatus,
    IncidentView,
    ProofBeforeRun,
    Trigger,
)
from rescind.models import ActionResult, CredentialRef, Outcome, Plan
from rescind.models.refs import acted_on, format_ref
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


class MapResultsLocation(BaseModel):
    """Where a DISTRIBUTED Map's ResultWriter put its manifest: the Map's `ResultWriterDetails`."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True, populate_by_name=True)

    bucket: Annotated[str, Field(alias="Bucket", min_length=3, max_length=63)]
    key: Annotated[str, Field(alias="Key", min_length=1, max_length=1024)]


@dataclass(frozen=True)
class VerifiedTargets:
    """What the Verify Map's items found, summed from its ResultWriter output (rescind.response.map_results)."""

    read_back: frozenset[str]  # target keys an item read back (dead unless also in still_alive)
    still_alive: tuple[CredentialRef, ...]
    failed_items: int = 0  # items that did not finish: their targets were not read back
    proven_by_act_read_back: int = 0  # targets dead by the acting task's own read-back (not read again)
    read_again: int = 0  # targets Verify read itself

    def describe_proof(self) -> str:
        return (
            f"read back: {self.proven_by_act_read_back} by the action's own read-back, {self.read_again} read again "
            f"by Verify; unfinished Verify items: {self.failed_items}"
        )


class CloseRequest(BaseModel):
    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    incident_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,80}$")]
    flow: Annotated[str, Field(pattern=r"^[a-z_]{1,40}$")] = "offboarding"
    subject: Annotated[str, Field(max_length=500)] = ""  # the workload or credential the run was about
    outcome: RunOutcome
    reason: Annotated[str, Field(max_length=1000)] = ""
    # For VERIFIED: what verification found alive. For FAILED: what was planned and not verified dead.
    still_alive: tuple[CredentialRef, ...] = ()
    error_type: Annotated[str, Field(max_length=200)] | None = None
    # For VERIFIED by the Verify Map: its results in S3, which the close function reads (never the whole list
    # in the state). Then a planned target no item read back is unknown, not dead.
    verify_results: MapResultsLocation | None = None
    # Or, for a small plan's INLINE Verify Map: its items, each its input beside its batch's result (`verified`),
    # summed as the ResultWriter's are (rescind.response.map_results.inline_verify_results).
    verify_inline: tuple[dict[str, Any], ...] | None = None
    # For VERIFIED with nothing left for Verify to read: every planned action still to do was proven done before
    # the run (the kill first, read back). Then a planned target not so proven is unknown, not dead.
    verified_before_run: bool = False


class Notification(BaseModel):
    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    subject: Annotated[str, Field(max_length=100)]  # SNS subjects are at most 100 characters
    message: str


class ClosureResult(BaseModel):
    """What the state machine needs to notify and to decide success: references and counts, no values."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    incident_id: str
    status: IncidentStatus
    succeeded: bool
    still_alive_count: int
    unknown_count: int = 0  # planned credentials nothing read back: they may be alive
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

# The outcomes of runs that may have acted: their closure says, per planned credential, what is known of it.
_ACTED = frozenset({RunOutcome.VERIFIED, RunOutcome.FAILED})

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


def close_incident(
    request: CloseRequest, ledger: Ledger, verified: VerifiedTargets | None = None, *, vault_address: str = ""
) -> ClosureResult:
    """Append the closure; say how it ended. A run that left anything alive is PARTIAL, whatever else happened.

    A run that acted lists every planned credential as dead, alive or unknown (see `credential_standings`). A
    failed run whose credentials were never read back is FAILED, not PARTIAL, and its credentials are unknown:
    never "nothing alive". `verified` is what the Verify Map read back: a target it did not read is unknown, and a
    verified run that leaves any unknown is PARTIAL too.
    """
    status = _STATUS[request.outcome]
    standings: tuple[CredentialStanding, ...] = ()
    if request.outcome in _ACTED:
        view = _read_for_standings(request, ledger)
        standings = credential_standings(view, request, verified, vault_address=vault_address)
    alive = (
        tuple(standing.target for standing in standings if standing.state is CredentialState.ALIVE)
        if standings
        else request.still_alive
    )
    unread = request.outcome is RunOutcome.VERIFIED and any(s.state is CredentialState.UNKNOWN for s in standings)
    if (alive or unread) and status in (IncidentStatus.COMPLETED, IncidentStatus.FAILED):
        status = IncidentStatus.PARTIAL
    closure = IncidentClosure(
        incident_id=request.incident_id,
        status=status,
        still_alive=alive,
        closed_at=utc_now(),
        credentials=standings,
    )
    summary = _summary(request, closure) + (f"; {verified.describe_proof()}" if verified is not None else "")
    closure = closure.model_copy(update={"summary": summary[:2000]})
    ledger.close_incident(closure)
    flow_title = request.flow.replace("_", " ").title()
    alive_keys = [ref.key for ref in alive]
    unknown_keys = [ref.key for ref in closure.in_state(CredentialState.UNKNOWN)]
    detail: dict[str, object] = {
        "incident_id": request.incident_id,
        "flow": request.flow,
        "subject": request.subject,
        "status": str(status),
        "outcome": str(request.outcome),
        "still_alive": alive_keys[:100],
        "still_alive_count": len(alive_keys),
        "unknown": unknown_keys[:100],
        "unknown_count": len(unknown_keys),
        "verified_dead_count": len(closure.in_state(CredentialState.DEAD)),
        "alive_is_unknown": closure.alive_is_unknown,
    }
    message = summary
    if alive_keys:
        message += "\nStill alive:\n" + "\n".join(f"- {key}" for key in alive_keys[:200])
    if unknown_keys:
        message += "\nNot read back, may be alive:\n" + "\n".join(f"- {key}" for key in unknown_keys[:200])
    return ClosureResult(
        incident_id=request.incident_id,
        status=status,
        succeeded=status in (IncidentStatus.COMPLETED, IncidentStatus.DRY_RUN),
        still_alive_count=len(alive_keys),
        unknown_count=len(unknown_keys),
        notification=Notification(subject=f"Rescind {flow_title}: {status}"[:100], message=message),
        event_detail_type=_event_detail_type(request, status),
        event_detail=detail,
    )


def _read_for_standings(request: CloseRequest, ledger: Ledger) -> IncidentView:
    """What `credential_standings` needs of the incident. After verification, Verify's read-back decides all but
    what the kill first proved: the record and the kill-first attempts alone, never the run's own (at thousands
    of credentials, reading and parsing those was nearly all of Close's time). A failed run needs every attempt's
    newest result: the whole incident. The view serves the standings only (its closure is not read)."""
    if request.outcome is RunOutcome.VERIFIED:
        return ledger.read_record_and_kill_first(request.incident_id)
    return ledger.read_incident(request.incident_id)


def credential_standings(
    view: IncidentView, request: CloseRequest, verified: VerifiedTargets | None = None, *, vault_address: str = ""
) -> tuple[CredentialStanding, ...]:
    """One standing per planned credential, in plan order, from what was read back.

    After verification, its list of what is alive decides; the rest is dead when Verify read it back, or when the
    kill first proved it before the run (rescind.ledger.proofs: the run left it out, and its standing names the
    kill's attempt, evidence and the Vault or account acted on); anything else is unknown. Without it (the run
    failed), each action's newest attempt in the incident (earlier runs of it and the kill first included) decides:
    a success whose read-back confirmed the end is dead, a failure whose read-back saw the credential alive is
    alive, anything else (no attempt, an error before the read-back) is unknown. A credential is dead only when
    every action on it is; alive when any is.
    """
    planned = view.incident.plan.actions if view.incident is not None else ()
    proofs = proven_by_kill(view.attempts, planned)
    by_proof: set[str] = set()  # actions dead by the kill first's proof alone
    if request.outcome is RunOutcome.VERIFIED and (verified is not None or request.verified_before_run):
        seen = verified or VerifiedTargets(read_back=frozenset(), still_alive=())
        alive_keys = {ref.key for ref in seen.still_alive}
        by_action: dict[str, CredentialState] = {}
        for action in planned:
            key = action.target.key
            if key in alive_keys:
                by_action[action.action_id] = CredentialState.ALIVE
            elif key in seen.read_back:
                by_action[action.action_id] = CredentialState.DEAD
            elif action.action_id in proofs:
                by_action[action.action_id] = CredentialState.DEAD
                by_proof.add(action.action_id)
            else:
                by_action[action.action_id] = CredentialState.UNKNOWN
        request = request.model_copy(update={"still_alive": (*request.still_alive, *seen.still_alive)})
    elif request.outcome is RunOutcome.VERIFIED:
        verified_alive = {ref.key for ref in request.still_alive}
        by_action = {
            action.action_id: CredentialState.ALIVE if action.target.key in verified_alive else CredentialState.DEAD
            for action in planned
        }
    else:
        newest: dict[str, ActionAttemptRecord] = {}
        for attempt in view.attempts:  # in the order they started
            seen_attempt = newest.get(attempt.result.action_id)
            if seen_attempt is None or attempt.result.finished_at >= seen_attempt.result.finished_at:
                newest[attempt.result.action_id] = attempt
        by_action = {}
        for action in planned:
            found = newest.get(action.action_id)
            by_action[action.action_id] = _read_back_state(found.result if found is not None else None)
            proof = proofs.get(action.action_id)
            if proof is not None and found is not None and found.attempt_id == proof.attempt_id:
                by_proof.add(action.action_id)
    targets: dict[str, CredentialRef] = {}
    states: dict[str, list[CredentialState]] = {}
    proven: dict[str, ProofBeforeRun] = {}
    for action in planned:
        targets.setdefault(action.target.key, action.target)
        states.setdefault(action.target.key, []).append(by_action[action.action_id])
        if action.action_id in by_proof:
            attempt = proofs[action.action_id]
            proven.setdefault(
                action.target.key,
                ProofBeforeRun(
                    attempt_id=attempt.attempt_id,
                    evidence=attempt.result.evidence,
                    acted_on=acted_on(action.target, vault_address),
                ),
            )
    for ref in request.still_alive:  # named alive by the caller, planned or not
        targets.setdefault(ref.key, ref)
        states.setdefault(ref.key, []).append(CredentialState.ALIVE)
    standings = []
    for key, found_states in states.items():
        state = _combined(found_states)
        before_run = proven.get(key) if state is CredentialState.DEAD else None
        standings.append(CredentialStanding(target=targets[key], state=state, proven_before_run=before_run))
    return tuple(standings)


def _read_back_state(result: ActionResult | None) -> CredentialState:
    if result is None or not result.evidence:
        return CredentialState.UNKNOWN
    confirmed = all(evidence.confirmed for evidence in result.evidence)
    if result.outcome.is_success and confirmed:
        return CredentialState.DEAD
    if result.outcome is Outcome.FAILED and not confirmed:
        return CredentialState.ALIVE
    return CredentialState.UNKNOWN


def _combined(states: list[CredentialState]) -> CredentialState:
    if CredentialState.ALIVE in states:
        return CredentialState.ALIVE
    if all(state is CredentialState.DEAD for state in states):
        return CredentialState.DEAD
    return CredentialState.UNKNOWN


def describe_alive(closure: IncidentClosure, name: Callable[[CredentialRef], str] = format_ref) -> str:
    """What a closure knows of what is alive, for people: never "nothing" when something was not read back."""
    if not closure.credentials and closure.alive_is_unknown and not closure.still_alive:
        return "still alive: unknown (the run failed before anything was read back; see the plan and the attempts)"
    unknown = closure.in_state(CredentialState.UNKNOWN)
    if closure.still_alive:
        text = "still alive: " + ", ".join(name(ref) for ref in closure.still_alive)
    else:
        text = "still alive: unknown" if unknown else "still alive: nothing"
    if unknown:
        text += f"; not read back, may be alive ({len(unknown)}): " + ", ".join(name(ref) for ref in unknown)
    dead = closure.in_state(CredentialState.DEAD)
    if dead:
        text += f"; verified dead: {len(dead)}"
    return text


def _event_detail_type(request: CloseRequest, status: IncidentStatus) -> str:
    if status is IncidentStatus.COMPLETED and request.outcome is RunOutcome.VERIFIED:
        named = _COMPLETED_DETAIL_TYPE.get(request.flow)
        if named:
            return named
    return _DETAIL_TYPE[status].format(flow=request.flow.replace("_", " ").title())


def _summary(request: CloseRequest, closure: IncidentClosure) -> str:
    parts = [
        f"incident {request.incident_id} ({request.flow}) for {request.subject or 'an unnamed subject'}: "
        f"{closure.status}"
    ]
    parts.append(f"outcome: {request.outcome}")
    if request.reason:
        parts.append(f"reason: {request.reason}")
    if request.error_type:
        parts.append(f"error: {request.error_type}")
    if request.outcome in _ACTED:
        parts.append(describe_alive(closure, lambda ref: ref.key))
    else:
        parts.append(f"still alive: {len(closure.still_alive)}")
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
