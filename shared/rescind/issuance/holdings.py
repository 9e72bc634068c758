"""What each workload holds according to the issuance index, for the inventory report: per credential who issued it,
when, its age and its TTL; and the credentials the index names no workload for.

A record counts while the index has not seen it revoked and its TTL (as issued, or as the back-fill read it) has not
run out. Holders that are not workloads (`entity:<id>`, `token:<accessor>`, `unattributed`: the layout of
`rescind.issuance.dynamodb`) are the index's credentials with no owner. References only, never a value.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.issuance.backfill import BACKFILL_REQUEST_ID
from rescind.issuance.types import IssuanceRecord

# Holder keys the index files a record under when no workload is named (rescind.issuance.dynamodb.holder_key).
NOT_A_WORKLOAD = ("entity:", "token:", "unattributed")

Text = Annotated[str, Field(max_length=2048)]


class HeldCredential(BaseModel):
    """One live credential of a workload, as the index knows it."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    target: Text  # the reference's text form (`format_ref`)
    kind: str
    issued_by: Text  # the requesting token's accessor, else the entity, else what is known
    issued_at: AwareDatetime
    age_days: float
    ttl_seconds: int | None  # as issued; None or 0: no expiry the index knows
    expires_at: AwareDatetime | None
    source: str  # "audit log" or "back-fill"


class WorkloadHoldings(BaseModel):
    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    workload_id: Text
    credentials: tuple[HeldCredential, ...]


def issued_by(record: IssuanceRecord) -> str:
    if record.parent_accessor:
        return f"token accessor {record.parent_accessor}"
    if record.entity_id:
        return f"entity {record.entity_id}"
    if record.request_id == BACKFILL_REQUEST_ID:
        return "unknown (back-filled from the live server, which names no issuer)"
    return "a login (no parent token)"


def held(record: IssuanceRecord, now: datetime) -> HeldCredential | None:
    """The record as a held credential, or None when it is dead, past its TTL, or has only an HMAC."""
    if record.reference is None or not record.is_alive(now):
        return None
    return HeldCredential(
        target=record.reference,
        kind=str(record.kind),
        issued_by=issued_by(record),
        issued_at=record.issued_at,
        age_days=round((now - record.issued_at).total_seconds() / 86400, 2),
        ttl_seconds=record.ttl_seconds,
        expires_at=record.expires_at,
        source="back-fill" if record.request_id == BACKFILL_REQUEST_ID else "audit log",
    )


def is_workload(holder: str) -> bool:
    return not holder.startswith(NOT_A_WORKLOAD)


def holdings_by_workload(
    records: Iterable[tuple[str, IssuanceRecord]], now: datetime
) -> tuple[tuple[WorkloadHoldings, ...], tuple[tuple[str, HeldCredential], ...]]:
    """(each workload's live credentials, sorted; the live credentials whose holder is not a workload, with it)."""
    by_workload: dict[str, dict[str, HeldCredential]] = {}
    unowned: dict[str, tuple[str, HeldCredential]] = {}
    for holder, record in records:
        credential = held(record, now)
        if credential is None:
            continue
        if is_workload(holder):
            by_workload.setdefault(holder, {})[credential.target] = credential
        else:
            unowned.setdefault(credential.target, (holder, credential))
    owned = {target for credentials in by_workload.values() for target in credentials}
    holdings = tuple(
        WorkloadHoldings(workload_id=workload, credentials=tuple(credentials[key] for key in sorted(credentials)))
        for workload, credentials in sorted(by_workload.items())
    )
    # A credential recorded twice (under its workload by the back-fill, under its issuer by the log) has an owner.
    return holdings, tuple(unowned[target] for target in sorted(unowned) if target not in owned)
