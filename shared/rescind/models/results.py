"""Results: what happened to each action, and the evidence that the credential is dead."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.models.actions import ActionKind
from rescind.models.credentials import CredentialRef


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"  # acted, then verified
    ALREADY_ABSENT = "already_absent"  # nothing to do: the credential was already dead or gone
    ALREADY_APPLIED = "already_applied"  # nothing to do: already disabled, or TTL already at or below
    SKIPPED = "skipped"  # dry run, hold, protection, or a rotation that needs an owner: nothing changed
    FAILED = "failed"

    @property
    def is_success(self) -> bool:
        return self in (Outcome.SUCCEEDED, Outcome.ALREADY_ABSENT, Outcome.ALREADY_APPLIED)


class Evidence(BaseModel):
    """What a read-back of the real state showed. `observed` is a description, never a value."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    check: Annotated[str, Field(min_length=1, max_length=200)]
    observed: Annotated[str, Field(max_length=1000)]
    confirmed: bool  # the read-back shows the action took effect: dead, disabled, or TTL at or below


class ActOutcome(BaseModel):
    """What an act step reports before verification."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    changed: bool  # False: the target was already in the wanted state
    absent: bool = False  # True: the credential did not exist at all
    # True: nothing was written because a human must first declare how (a rotation without fields or hook). The
    # result is SKIPPED, not FAILED: the rest of the run goes on, and `detail` says what to declare where.
    needs_owner: bool = False
    detail: Annotated[str, Field(max_length=1000)] = ""
    # Other credentials the act ended with this one (the child tokens a token revocation kills), read back dead.
    also_ended: tuple[CredentialRef, ...] = ()
    # The read-back of each one of them, in the same order: its own evidence that it is dead.
    also_ended_evidence: tuple[Evidence, ...] = ()
    # The act's own read of the real state after it acted, made as the kind's verify makes it: the engine takes it as
    # the action's verification instead of reading the same thing again. None: the engine reads back itself.
    read_back: Evidence | None = None


class ActionResult(BaseModel):
    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    action_id: str
    action_kind: ActionKind
    target: CredentialRef
    outcome: Outcome
    evidence: tuple[Evidence, ...] = ()
    detail: Annotated[str, Field(max_length=2000)] = ""
    error_type: str | None = None
    also_ended: tuple[CredentialRef, ...] = ()
    also_ended_evidence: tuple[Evidence, ...] = ()  # one per `also_ended`, in its order
    started_at: AwareDatetime
    finished_at: AwareDatetime
    act_ms: float = 0.0
    verify_ms: float = 0.0

    @property
    def duration_ms(self) -> float:
        return (self.finished_at - self.started_at).total_seconds() * 1000.0


def utc_now() -> datetime:
    return datetime.now(UTC)
