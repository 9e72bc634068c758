"""The issuance index's interface: write what the audit log shows, read by workload, HMAC, parent or entity."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from rescind.issuance.audit import parse_audit_line
from rescind.issuance.types import IndexingReport, IssuanceRecord, IssuanceRevocation

MAX_REFUSALS_REPORTED = 5


class IssuanceIndex(Protocol):
    """Writes are idempotent: an issuance put again, or a revocation seen again, changes nothing more."""

    def put_issuances(self, records: Sequence[IssuanceRecord]) -> int:
        """Store the records; returns how many were written."""
        ...

    def record_revocations(self, revocations: Sequence[IssuanceRevocation]) -> int:
        """Mark the matching records revoked; returns how many records matched."""
        ...

    def by_workload(self, workload_id: str) -> list[IssuanceRecord]:
        """Every record of the workload, alive or not (callers filter with `is_alive`)."""
        ...

    def by_hmac(self, audit_hmac: str) -> list[IssuanceRecord]:
        """The records whose reference or a returned value has this audit-device HMAC."""
        ...

    def by_parent(self, accessor: str) -> list[IssuanceRecord]:
        """What the token with this accessor asked for: its child tokens and the leases it checked out."""
        ...

    def by_entity(self, entity_id: str) -> list[IssuanceRecord]:
        """The tokens issued to this identity entity, alive or not; none for those indexed before the pointer was."""
        ...


def index_audit_lines(index: IssuanceIndex, lines: Iterable[str], *, metadata_key: str) -> IndexingReport:
    """Parse the lines and write what they issued, then what they revoked (a line may revoke what an earlier
    line of the same batch issued). Refused lines are counted with their reasons, never their content."""
    issuances: list[IssuanceRecord] = []
    revocations: list[IssuanceRevocation] = []
    refusals: list[str] = []
    count = refused = 0
    for text in lines:
        count += 1
        result = parse_audit_line(text, metadata_key=metadata_key)
        if result.refused is not None:
            refused += 1
            if result.refused not in refusals and len(refusals) < MAX_REFUSALS_REPORTED:
                refusals.append(result.refused)
            continue
        issuances.extend(result.issuances)
        revocations.extend(result.revocations)
    written = index.put_issuances(issuances)
    matched = index.record_revocations(revocations)
    return IndexingReport(
        lines=count,
        issuances=written,
        revocations_seen=len(revocations),
        revocations_matched=matched,
        refused=refused,
        refusals=tuple(refusals),
    )
