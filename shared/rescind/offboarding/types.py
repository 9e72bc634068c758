"""What offboarding starts from: the termination notice, and the execution name derived from it."""

from __future__ import annotations

import hashlib
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.response.types import WorkloadId


class TerminationNotice(BaseModel):
    """One workload ended, as any of the termination triggers says it. The resource itself may be gone."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

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
