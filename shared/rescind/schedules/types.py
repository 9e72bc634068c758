"""What a sweep is asked to do and what it reports: references and before/after values, never a secret value."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from rescind.deferred_builds import DEFER_MODEL_BUILDS


class SweepName(StrEnum):
    ROTATION_BY_AGE = "rotation_by_age"
    TTL_CEILINGS = "ttl_ceilings"
    ORPHANS = "orphans"
    PKI_HYGIENE = "pki_hygiene"
    INVENTORY_REPORT = "inventory_report"


class SweepRequest(BaseModel):
    """A schedule's input, as the template's schedule sends it (or a responder, for a dry run)."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    dry_run: bool = False
    # Overrides the policy's per-run bound (never raises it).
    max_actions: Annotated[int, Field(ge=1, le=100_000)] | None = None
    # Continue from the stored checkpoint; False starts from the beginning.
    resume: bool = True


class ChangeStatus(StrEnum):
    PLANNED = "planned"  # dry run: what would change
    APPLIED = "applied"  # changed and verified by reading back
    ALREADY = "already"  # already in the wanted state: nothing to do (a second run)
    STARTED = "started"  # handed to a state machine (orphans are offboarded, never acted on directly)
    FLAGGED = "flagged"  # reported for a human, not changed
    SKIPPED = "skipped"  # protected or held: never touched
    FAILED = "failed"


class Change(BaseModel):
    """One thing a sweep changed, would change, or flagged."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    target: Annotated[str, Field(max_length=1000)]  # a reference's text form (`CredentialRef.key`) or a path
    what: Annotated[str, Field(max_length=200)]  # e.g. "rotate", "shorten_ttl max_ttl", "offboard", "tidy"
    status: ChangeStatus
    before: Annotated[str, Field(max_length=200)] | None = None
    after: Annotated[str, Field(max_length=200)] | None = None
    detail: Annotated[str, Field(max_length=1000)] = ""


class SweepReport(BaseModel):
    """One run of one sweep. `complete` is False when the run stopped at its bound; the checkpoint says where."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    sweep: SweepName
    run_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-.:]{1,120}$")]
    dry_run: bool
    started_at: AwareDatetime
    finished_at: AwareDatetime
    examined: Annotated[int, Field(ge=0)]
    changes: tuple[Change, ...] = ()
    complete: bool = True
    checkpoint: str | None = None

    def count(self, status: ChangeStatus) -> int:
        return sum(1 for change in self.changes if change.status is status)


def sweep_run_id(sweep: SweepName, moment: datetime) -> str:
    """One id per sweep and minute: a rotation's action id includes it, so a retried run rotates once."""
    return f"{sweep}-{moment.strftime('%Y%m%dT%H%M')}"
