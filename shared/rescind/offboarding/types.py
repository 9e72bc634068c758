"""What flows through offboarding: the termination notice, the state machine's input, and its plan."""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from rescind.ledger.types import Trigger
from rescind.models import Action, CredentialRef

WorkloadId = Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[\x21-\x7e]+$")]


class TerminationNotice(BaseModel):
    """One workload ended, as any of the termination triggers says it. The resource itself may be gone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # aws.ec2, aws.ecs, aws.lambda, aws.autoscaling, or rescind for the generic event
    source: Annotated[str, Field(min_length=1, max_length=100)]
    detail_type: Annotated[str, Field(min_length=1, max_length=200)]
    event_id: Annotated[str, Field(min_length=1, max_length=200)]
    account_id: Annotated[str, Field(pattern=r"^\d{12}$")]
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")]
    workload_id: WorkloadId | None = None  # a SPIFFE ID, or the id the generic event names
    cloud_id: WorkloadId | None = None  # instance id, task ARN or function ARN, resolved through the inventory
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    terminated_at: AwareDatetime


def offboarding_execution_name(workload_id: str, event_id: str) -> str:
    """Derived from the workload and the event, so a duplicate start of the same pair is a no-op."""
    digest = hashlib.sha256(f"{workload_id}\n{event_id}".encode()).hexdigest()[:40]
    return f"offboard-{digest}"


class OffboardingRequest(BaseModel):
    """The offboarding state machine's input. `incident_id` is the execution name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    incident_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,80}$")]
    workload_id: WorkloadId
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    trigger: Trigger
    terminated_at: AwareDatetime
    dry_run: bool = False
    # A manual run names its credentials: then only these are planned, and nothing is discovered.
    credentials: tuple[CredentialRef, ...] = ()


class GuardDecision(StrEnum):
    PROCEED = "proceed"
    NEEDS_APPROVAL = "needs_approval"  # above the blast-radius cap
    REFUSE = "refuse"  # a protected workload, or a hold on something it holds
    NOTHING_TO_DO = "nothing_to_do"
    DRY_RUN = "dry_run"


class OffboardingPlan(BaseModel):
    """The plan task's output: what the guard decided, and the actions split into contain and the rest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    incident_id: str
    workload_id: WorkloadId
    decision: GuardDecision
    decision_reason: Annotated[str, Field(max_length=1000)]
    containment: tuple[Action, ...]  # reversible: disable the entity, deactivate keys
    actions: tuple[Action, ...]  # rotate, revoke, then delete
    counts_by_kind: dict[str, int]
