"""Inventory records."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from rescind.deferred_builds import DEFER_MODEL_BUILDS


class CloudResourceKind(StrEnum):
    EC2_INSTANCE = "ec2_instance"  # also what an Auto Scaling lifecycle action names
    ECS_TASK = "ecs_task"
    LAMBDA_FUNCTION = "lambda_function"


class WorkloadBinding(BaseModel):
    """A cloud resource ran as a workload. Keyed by `cloud_id` (instance id, task ARN, function ARN)."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    cloud_id: Annotated[str, Field(min_length=1, max_length=2048)]
    kind: CloudResourceKind
    workload_id: Annotated[str, Field(min_length=1, max_length=500)]
    account_id: Annotated[str, Field(pattern=r"^\d{12}$")]
    region: str
    seen_at: AwareDatetime
