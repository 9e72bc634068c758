"""The drift check: does the issuance index still hold what the live server holds? A sample of each, compared.

- N index records (those with a reference, not seen revoked, not past their TTL), each looked up live: one Vault no
  longer has (or holds revoked, a certificate) is `dead_in_vault` (a revocation or tidy the audit log did not show).
- N live credentials (drawn from the same listings the back-fill walks: token accessors, secret-ids of each AppRole
  role, certificates of each PKI mount, leases under each lease mount), each looked up in the index by reference:
  one it has no live record of, and that is still live and of the kind the back-fill records (not a CA, not revoked
  or expired), is `missing_from_index` (an issuance the audit log did not deliver).

The drift is the mismatches over what was compared. It is published as the metric `IssuanceIndexDrift` (one per
direction, by dimension) with `IssuanceIndexSampled`, and above the threshold the index is marked stale
(`IndexStateStore.record_drift`): discovery then scans again, until the next complete back-fill. A check at or below
the threshold confirms the back-fill (its age starts again). A dry run compares and publishes, and marks nothing.

Every Vault request waits on the rate limiter. References only: never a value.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.issuance.backfill import LiveScan
from rescind.issuance.types import IssuanceRecord
from rescind.observability import add_count, logger

if TYPE_CHECKING:
    import hvac

    from rescind.discovery import DiscoveryScope
    from rescind.issuance.reading import IssuanceTableReader
    from rescind.issuance.state import IndexStateStore

DRIFT_METRIC = "IssuanceIndexDrift"
SAMPLED_METRIC = "IssuanceIndexSampled"
STALE_METRIC = "IssuanceIndexStale"
MAX_EXAMPLES = 10

Reference = Annotated[str, Field(max_length=2048)]


class DriftCheck(BaseModel):
    """One check: what was compared, what did not match (a few references each), and what was decided."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    checked_at: AwareDatetime
    dry_run: bool
    sampled_index: int
    sampled_live: int
    dead_in_vault: int
    missing_from_index: int
    threshold: Annotated[float, Field(ge=0, le=1)]
    dead_examples: tuple[Reference, ...] = ()
    missing_examples: tuple[Reference, ...] = ()
    stale: bool  # the index is marked stale after this check (by it or before it)
    why: str

    @property
    def compared(self) -> int:
        return self.sampled_index + self.sampled_live

    @property
    def ratio(self) -> float:
        return (self.dead_in_vault + self.missing_from_index) / self.compared if self.compared else 0.0


def _expected_alive(record: IssuanceRecord, now: datetime) -> bool:
    return record.reference is not None and record.is_alive(now)


def check_index_drift(
    vault: hvac.Client,
    index: IssuanceTableReader,
    state: IndexStateStore,
    scope: DiscoveryScope,
    *,
    sample_size: int,
    threshold: float,
    now: datetime,
    wait: Callable[[], None],
    rng: random.Random | None = None,
    dry_run: bool = False,
) -> DriftCheck:
    """Sample, compare, and (unless a dry run) record the drift in the index's marker."""
    rng = rng or random.Random()  # noqa: S311 - a sample, not a secret
    scan = LiveScan(vault, scope, wait, now)
    records = [record for record in index.sample(sample_size * 2, rng) if _expected_alive(record, now)][:sample_size]
    dead: list[str] = []
    for record in records:
        ref = record.credential_ref()
        # Gone, or no longer what the index should hold as alive (a certificate revoked without the log seeing it).
        if ref is not None and isinstance(scan.live_record(ref), str):
            dead.append(str(record.reference))

    listed = [(group, item) for group in scan.groups() for item in group.list_items()]
    drawn = rng.sample(listed, min(sample_size, len(listed)))
    # The record the back-fill would write of each, or why there is none: gone since the listing, or not a kind of
    # credential the index holds (a CA).
    live_references = [
        str(live.reference) for live in (group.record_of(item) for group, item in drawn) if not isinstance(live, str)
    ]
    held = index.by_references(live_references)
    missing = [
        reference for reference in live_references if not any(record.revoked_at is None for record in held[reference])
    ]
    compared_live = len(live_references)

    compared = len(records) + compared_live
    ratio = (len(dead) + len(missing)) / compared if compared else 0.0
    above = ratio > threshold
    why = (
        f"drift {ratio:.1%} ({len(dead)} of {len(records)} index records dead in Vault, {len(missing)} of "
        f"{compared_live} live credentials missing from the index) {'above' if above else 'within'} {threshold:.1%}"
    )
    stale = above
    if not dry_run:
        marker = state.record_drift(ratio=ratio, stale=above, reason=why, at=now)
        stale = marker.stale_since is not None
    return DriftCheck(
        checked_at=now,
        dry_run=dry_run,
        sampled_index=len(records),
        sampled_live=compared_live,
        dead_in_vault=len(dead),
        missing_from_index=len(missing),
        threshold=threshold,
        dead_examples=tuple(sorted(dead)[:MAX_EXAMPLES]),
        missing_examples=tuple(sorted(missing)[:MAX_EXAMPLES]),
        stale=stale,
        why=why,
    )


def publish_drift(check: DriftCheck) -> None:
    """One metric name per figure, the direction or side as a dimension; and one log line (references only)."""
    add_count(DRIFT_METRIC, check.dead_in_vault, direction="dead_in_vault")
    add_count(DRIFT_METRIC, check.missing_from_index, direction="missing_from_index")
    add_count(SAMPLED_METRIC, check.sampled_index, side="index")
    add_count(SAMPLED_METRIC, check.sampled_live, side="live")
    add_count(STALE_METRIC, 1 if check.stale else 0)
    logger.info("issuance index drift checked", extra=check.model_dump(mode="json"))
