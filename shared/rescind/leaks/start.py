"""Start the response to a leak: locate the credential, kill it first, claim it once, record the kill, and start
the leak-response state machine.

Deduplication is keyed on the credential, not the alert: GitHub, a scanner and AWS Health reporting one key within
the window start one response. The claim sits in the ledger (a conditional put), and the execution is named after
the claimed incident, so a retry that lost its first start still starts it, and a duplicate start is a no-op.

As soon as the locate is exact and the guard passes on what it read, the credential is killed first
(rescind.leaks.kill): the reversible step and its read-back, before the claim, which costs a ledger round trip the
attacker does not wait for. The claim follows, and the kill is recorded under the claimed incident with the plan's
own action id, so the run finds it done. When the guard refuses, nothing is touched here and the run decides.
A duplicate delivery kills again before it learns it is one: idempotent (already applied or absent, read back,
the credential seen alive by its own locate), and recorded under the incident it duplicates, whose run acts.
A claim that fails after a kill is retried, then raised naming what was killed (UnclaimedKill), so the event is
delivered again; a redelivery that can no longer locate the revoked credential is recorded unresolved.

An alert that resolves to nothing is recorded as an UNRESOLVED incident and notified. Nothing is touched.
`respond_to_leak_event` answers a whole event: every alert, plus one record for what the event named that
resolves to nothing (UNRESOLVED), or for an event that asks for no action (RECORDED: a sample finding, an alert
a human resolved). Every event that reaches it leaves an incident and a notification.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.exceptions import TransientError
from rescind.leaks.kill import (
    KillFirst,
    KillMade,
    KillReport,
    UnclaimedKill,
    describe_unclaimed,
    kill_before_claim,
    record_kill,
)
from rescind.leaks.locate import LeakLocator
from rescind.leaks.plan import leak_plan
from rescind.leaks.types import LeakAlert, LeakEvent, LocatedLeak
from rescind.ledger.base import Ledger
from rescind.ledger.types import IncidentStatus, ResponseClaim, Trigger
from rescind.models.results import utc_now
from rescind.response.start import Notify, StartStatus, StepFunctionsStarter, record_unanswered, start_execution_once
from rescind.response.types import ResponseRequest
from rescind.retrying import retry_transient

DEFAULT_DEDUP_WINDOW = timedelta(hours=1)
UNCLAIMED = "unclaimed"  # the plan id the kill first plans under, before the claim names the incident


class LeakStartResult(BaseModel):
    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    status: StartStatus
    incident_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,80}$")]
    secret_type: str
    credentials: tuple[str, ...] = ()  # reference keys
    execution_arn: str | None = None
    why: str = ""
    kill: KillReport | None = None  # the kill first: what was killed, where, or why not


def start_leak_response(
    alert: LeakAlert,
    *,
    locator: LeakLocator,
    ledger: Ledger,
    sfn_client: StepFunctionsStarter,
    state_machine_arn: str,
    notify: Notify,
    window: timedelta = DEFAULT_DEDUP_WINDOW,
    now: datetime | None = None,
    kill: KillFirst | None = None,
) -> LeakStartResult:
    """Locate, kill first (when `kill` is given), claim, record the kill, start. The alert's value, if any, is used
    by the locator and goes no further."""
    located = locator.locate(alert)
    if not isinstance(located, LocatedLeak):
        return record_unresolved_leak(alert, located.why, ledger=ledger, notify=notify)
    made = None
    if kill is not None:
        # The plan the run's plan task makes from the same request: the same action ids. Its id is the incident's,
        # not claimed yet; no kill-first step carries it (only a rotation's run id does).
        unclaimed = leak_response_request(alert, located, UNCLAIMED)
        made = kill_before_claim(leak_plan(unclaimed), located, workload_id=unclaimed.workload_id, kill=kill)
    claim = _claim(ledger, located, now or utc_now(), window, made)
    keys = tuple(ref.key for ref in located.credentials)
    request = leak_response_request(alert, located, claim.incident_id)
    killed = None
    if kill is not None and made is not None:
        killed = record_kill(made, incident_id=claim.incident_id, duplicate=not claim.is_new, kill=kill, ledger=ledger)
    # Started even when the claim is not new: an earlier attempt may have claimed and then failed to start. After
    # a kill, a transient failure is retried here first: a redelivery could no longer locate a revoked token.
    status, execution_arn = retry_transient(
        lambda _: start_execution_once(
            sfn_client,
            state_machine_arn,
            incident_id=claim.incident_id,
            payload=request.model_dump_json(),
            ledger=ledger,
        ),
        attempts=3 if killed is not None and killed.steps else 1,
        base_delay_seconds=0.5,
    )
    return LeakStartResult(
        status=status,
        incident_id=claim.incident_id,
        secret_type=str(alert.secret_type),
        credentials=keys,
        execution_arn=execution_arn,
        why=located.evidence,
        kill=killed,
    )


def _claim(
    ledger: Ledger, located: LocatedLeak, now: datetime, window: timedelta, made: KillMade | None
) -> ResponseClaim:
    """The incident, claimed once per credential. After a kill its transient failure is retried here first (a
    redelivery could no longer locate a revoked token), then raised naming what was killed, unrecorded."""
    killed = made is not None and any(executed.result.outcome.is_success for _, executed in made.steps)
    try:
        return retry_transient(
            lambda _: ledger.claim_response(located.dedup_key, now, window),
            attempts=3 if killed else 1,
            base_delay_seconds=0.5,
        )
    except TransientError as error:
        if made is None or not killed:  # nothing dead: a redelivery locates it again
            raise
        raise UnclaimedKill(
            f"killed first, then the incident could not be claimed ({type(error).__name__}: {error}); "
            f"not recorded: {describe_unclaimed(made)}"[:2000]
        ) from error


def leak_response_request(alert: LeakAlert, located: LocatedLeak, incident_id: str) -> ResponseRequest:
    """The leak-response run's input: the located credentials, named by reference; the value goes no further."""
    subject = located.owner or located.credentials[-1].key
    return ResponseRequest(
        incident_id=incident_id,
        workload_id=subject[:500],
        reason=f"leaked: {alert.describe}"[:500],
        trigger=Trigger(
            source=alert.source,
            detail_type=alert.detail_type,
            event_id=alert.event_id,
            workload_id=located.owner,
            references=located.credentials,
            reason=f"{alert.describe}; located: {located.evidence}"[:500],
        ),
        terminated_at=alert.found_at,
        credentials=located.credentials,
    )


def unresolved_leak_incident_id(alert: LeakAlert) -> str:
    """From the event and what it reported, so a re-delivered event records one incident."""
    parts = [alert.event_id, alert.secret_type, alert.access_key_id or "", alert.role_name or ""]
    if alert.user_name:  # only then: the incidents recorded before users were named keep their ids
        parts.append(alert.user_name)
    basis = "\n".join(parts)
    return f"unresolved-leak-{hashlib.sha256(basis.encode()).hexdigest()[:40]}"


def record_unresolved_leak(alert: LeakAlert, why: str, *, ledger: Ledger, notify: Notify) -> LeakStartResult:
    """An UNRESOLVED incident with an empty plan, closed and notified once (again only if a retry must finish it)."""
    incident_id = unresolved_leak_incident_id(alert)
    record_unanswered(
        incident_id,
        alert,
        about=alert.describe,
        status=IncidentStatus.UNRESOLVED,
        why=why,
        summary=f"incident {incident_id} (leak response): unresolved; {alert.describe}; {why}. Nothing was revoked.",
        subject="Rescind Leak Response: unresolved",
        advice="Find the credential by hand, or index KV (rescind index kv) and replay the alert.",
        ledger=ledger,
        notify=notify,
    )
    return LeakStartResult(
        status=StartStatus.UNRESOLVED, incident_id=incident_id, secret_type=str(alert.secret_type), why=why[:500]
    )


class LeakEventResponse(BaseModel):
    """What one event led to: a start per alert, and the record of the rest (references only)."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    responses: tuple[LeakStartResult, ...] = ()
    recorded: LeakStartResult | None = None  # the event's own incident: RECORDED or UNRESOLVED


def respond_to_leak_event(
    event: LeakEvent,
    *,
    locator: LeakLocator,
    ledger: Ledger,
    sfn_client: StepFunctionsStarter,
    state_machine_arn: str,
    notify: Notify,
    window: timedelta = DEFAULT_DEDUP_WINDOW,
    kill: KillFirst | None = None,
) -> LeakEventResponse:
    """Answer every alert of the event, and record once what it named that Rescind cannot act on."""
    if event.record_only is not None:
        return LeakEventResponse(recorded=record_event_only(event, ledger=ledger, notify=notify))
    responses = tuple(
        start_leak_response(
            alert,
            locator=locator,
            ledger=ledger,
            sfn_client=sfn_client,
            state_machine_arn=state_machine_arn,
            notify=notify,
            window=window,
            kill=kill,
        )
        for alert in event.alerts
    )
    recorded = record_unresolved_entities(event, ledger=ledger, notify=notify) if event.unresolved else None
    return LeakEventResponse(responses=responses, recorded=recorded)


def event_incident_id(prefix: str, event: LeakEvent) -> str:
    """From the event alone, so a re-delivered event records one incident."""
    digest = hashlib.sha256(f"{event.source}\n{event.detail_type}\n{event.event_id}".encode()).hexdigest()[:40]
    return f"{prefix}-{digest}"


def record_event_only(event: LeakEvent, *, ledger: Ledger, notify: Notify) -> LeakStartResult:
    """A RECORDED incident: a real event that asks for no action. Nothing is located or touched."""
    why = event.record_only or ""
    return _record_event(
        event,
        status=IncidentStatus.RECORDED,
        why=why,
        outcome=f"recorded; {event.summary}; {why}. Nothing was revoked.",
        subject="Rescind Leak Response: recorded, no action",
        advice="Nothing to do unless the record is wrong; replay the event after correcting its source.",
        ledger=ledger,
        notify=notify,
    )


def record_unresolved_entities(event: LeakEvent, *, ledger: Ledger, notify: Notify) -> LeakStartResult:
    """One UNRESOLVED incident for everything the event named that resolves to nothing Rescind can act on."""
    why = "; ".join(event.unresolved)
    return _record_event(
        event,
        status=IncidentStatus.UNRESOLVED,
        why=why,
        outcome=(
            f"unresolved; {event.summary}; {len(event.unresolved)} thing(s) it named could not be acted on: {why}. "
            "Nothing of these was revoked."
        ),
        subject="Rescind Leak Response: unresolved",
        advice="Each line says what to do by hand. Whatever else the event named has its own incident.",
        ledger=ledger,
        notify=notify,
    )


def _record_event(
    event: LeakEvent,
    *,
    status: IncidentStatus,
    why: str,
    outcome: str,
    subject: str,
    advice: str,
    ledger: Ledger,
    notify: Notify,
) -> LeakStartResult:
    """The event's own incident, closed at once with `status`; its id comes from the event alone."""
    incident_id = event_incident_id(f"{status}-leak", event)
    record_unanswered(
        incident_id,
        event,
        about=event.summary,
        status=status,
        why=why,
        summary=f"incident {incident_id} (leak response): {outcome}",
        subject=subject,
        advice=advice,
        ledger=ledger,
        notify=notify,
    )
    start_status = StartStatus.RECORDED if status is IncidentStatus.RECORDED else StartStatus.UNRESOLVED
    return LeakStartResult(status=start_status, incident_id=incident_id, secret_type="", why=why[:500])
