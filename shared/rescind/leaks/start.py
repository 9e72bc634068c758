"""Start the response to a leak: locate the credential, claim it once, and start the leak-response state machine.

Deduplication is keyed on the credential, not the alert: GitHub, a scanner and AWS Health reporting one key within
the window start one response. The claim sits in the ledger (a conditional put), and the execution is named after
the claimed incident, so a retry that lost its first start still starts it, and a duplicate start is a no-op.

An alert that resolves to nothing is recorded as an UNRESOLVED incident and notified. Nothing is touched.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from rescind.leaks.locate import LeakLocator
from rescind.leaks.types import LeakAlert, LocatedLeak
from rescind.ledger.base import Ledger
from rescind.ledger.closing import record_unresolved_incident
from rescind.ledger.types import Trigger
from rescind.models.results import utc_now
from rescind.offboarding.start import Notify, StartStatus, StepFunctionsStarter, start_execution_once
from rescind.offboarding.types import OffboardingRequest

DEFAULT_DEDUP_WINDOW = timedelta(hours=1)


class LeakStartResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    status: StartStatus
    incident_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,80}$")]
    secret_type: str
    credentials: tuple[str, ...] = ()  # reference keys
    execution_arn: str | None = None
    why: str = ""


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
) -> LeakStartResult:
    """Locate, claim, start. The alert's value, if any, is used by the locator and goes no further."""
    located = locator.locate(alert)
    if not isinstance(located, LocatedLeak):
        return record_unresolved_leak(alert, located.why, ledger=ledger, notify=notify)
    claim = ledger.claim_response(located.dedup_key, now or utc_now(), window)
    keys = tuple(ref.key for ref in located.credentials)
    subject = located.owner or keys[-1]
    request = OffboardingRequest(
        incident_id=claim.incident_id,
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
    # Started even when the claim is not new: an earlier attempt may have claimed and then failed to start.
    status, execution_arn = start_execution_once(
        sfn_client, state_machine_arn, name=claim.incident_id, payload=request.model_dump_json()
    )
    return LeakStartResult(
        status=status,
        incident_id=claim.incident_id,
        secret_type=str(alert.secret_type),
        credentials=keys,
        execution_arn=execution_arn,
        why=located.evidence,
    )


def unresolved_leak_incident_id(alert: LeakAlert) -> str:
    """From the event and what it reported, so a re-delivered event records one incident."""
    basis = f"{alert.event_id}\n{alert.secret_type}\n{alert.access_key_id or ''}\n{alert.role_name or ''}"
    return f"unresolved-leak-{hashlib.sha256(basis.encode()).hexdigest()[:40]}"


def record_unresolved_leak(alert: LeakAlert, why: str, *, ledger: Ledger, notify: Notify) -> LeakStartResult:
    """An UNRESOLVED incident with an empty plan, closed and notified once (again only if a retry must finish it)."""
    incident_id = unresolved_leak_incident_id(alert)
    record_unresolved_incident(
        incident_id,
        Trigger(
            source=alert.source,
            detail_type=alert.detail_type,
            event_id=alert.event_id,
            reason=f"{alert.describe}; unresolved: {why}"[:500],
        ),
        summary=f"incident {incident_id} (leak response): unresolved; {alert.describe}; {why}. Nothing was revoked.",
        subject="Rescind Leak Response: unresolved",
        advice="Find the credential by hand, or index KV (rescind index kv) and replay the alert.",
        ledger=ledger,
        notify=notify,
    )
    return LeakStartResult(
        status=StartStatus.UNRESOLVED, incident_id=incident_id, secret_type=str(alert.secret_type), why=why[:500]
    )
