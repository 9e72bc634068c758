"""The ledger interface. Append-only: records are added, never updated or deleted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from rescind.ledger.types import (
    ActionAttemptRecord,
    ApprovalDecision,
    IncidentClosure,
    IncidentRecord,
    IncidentView,
    ResponseClaim,
)


class Ledger(Protocol):
    def open_incident(self, record: IncidentRecord) -> bool:
        """Write the incident record. False if it was already there (a duplicate start)."""
        ...

    def record_attempt(self, record: ActionAttemptRecord) -> bool:
        """Write one action attempt. False if this attempt was already recorded (a retried write)."""
        ...

    def record_attempts(self, records: Sequence[ActionAttemptRecord]) -> list[bool]:
        """Write many attempts, each once, in as few calls as the store allows; for each, `record_attempt`'s answer."""
        ...

    def close_incident(self, closure: IncidentClosure) -> bool:
        """Append a closure. A re-run that finishes the rest appends another one."""
        ...

    def record_approval(self, decision: ApprovalDecision) -> bool:
        """Append who approved or denied a pending run."""
        ...

    def claim_response(self, dedup_key: str, now: datetime, window: timedelta) -> ResponseClaim:
        """One response per credential per window: the first claim is new; later ones name its incident."""
        ...

    def read_incident(self, incident_id: str) -> IncidentView: ...

    def read_incident_record(self, incident_id: str) -> IncidentRecord | None:
        """The incident record alone (trigger and plan), without the attempts, closures and approvals after it."""
        ...

    def read_kill_first_attempts(self, incident_id: str) -> tuple[ActionAttemptRecord, ...]:
        """The start function's kill-first attempts alone (rescind.ledger.proofs.is_kill_first), in the order they
        started: what a verified run's closure needs of the attempts, read without the run's own."""
        ...

    def read_record_and_kill_first(self, incident_id: str) -> IncidentView:
        """The incident record and the kill-first attempts, as `read_incident_record` and
        `read_kill_first_attempts` read them (no closure, no approvals), in as few reads as the store allows: what a
        leak run's plan and a verified run's closure need, never the run's own attempts."""
        ...

    def list_incidents(self, since: datetime | None = None, limit: int = 100) -> list[IncidentRecord]: ...
