"""A plan's actions in S3, for the state machines' DISTRIBUTED Maps; the state carries only where they are.

A Standard execution's state is at most 256 KB, which a plan of about 730 credentials fills. So the plan task
writes the actions as two JSON arrays the Maps read with `ItemReader` (`s3:getObject`, `InputType: JSON`):

  plans/<incident id>/<digest>/revoke.json   one item per action to execute (rotate, revoke, delete)
  plans/<incident id>/<digest>/verify.json   one item per batch of targets to read back ({"actions": [...]})

and returns a `PlanReference`: the decision, the containment (reversible, few), the counts and these keys. The
digest is the content's, so a resumed run writes the same objects again and nothing else. The objects are
references only (the same ones the ledger holds), never values. The Verify items are batched here because
moto 5.2.5 cannot parse `ItemBatcher`; the batches are what ItemBatcher would make.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field

from rescind.aws.errors import aws_errors
from rescind.exceptions import ConfigurationError
from rescind.models import Action
from rescind.response.types import GuardDecision, ResponsePlan, WorkloadId

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PLANS_PREFIX = "plans/"
RESULTS_PREFIX = "results/"
# Only these decisions go on to act: the others end before Revoke, and nothing is written for them.
_ACTING = frozenset({GuardDecision.PROCEED, GuardDecision.NEEDS_APPROVAL})


class PlanReference(BaseModel):
    """The plan task's output in the execution's state: no action list, only where it is and how many."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    incident_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,80}$")]
    workload_id: WorkloadId
    decision: GuardDecision
    decision_reason: Annotated[str, Field(max_length=1000)]
    containment: tuple[Action, ...]  # reversible and few (an entity, a key): the INLINE Contain Map reads them
    counts_by_kind: dict[str, int]
    action_count: int
    revoke_items_key: str | None = None
    verify_items_key: str | None = None
    verify_item_count: int = 0


class VerifyBatchRequest(BaseModel):
    """One item of the Verify Map: a batch of the plan's actions whose targets are read back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    incident_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,80}$")]
    actions: Annotated[tuple[Action, ...], Field(min_length=1, max_length=1000)]


def _json_array(items: Sequence[object]) -> bytes:
    return json.dumps(items, separators=(",", ":")).encode()


def store_plan(plan: ResponsePlan, s3: S3Client, bucket: str | None, verify_batch_size: int) -> PlanReference:
    """Write the plan's Map items to the plan bucket (only for a plan that will act) and return the reference."""
    reference = PlanReference(
        incident_id=plan.incident_id,
        workload_id=plan.workload_id,
        decision=plan.decision,
        decision_reason=plan.decision_reason,
        containment=plan.containment,
        counts_by_kind=plan.counts_by_kind,
        action_count=len(plan.containment) + len(plan.actions),
    )
    if plan.decision not in _ACTING:
        return reference
    if bucket is None:
        raise ConfigurationError("PLAN_BUCKET_NAME is not set: the state machines read a plan's actions from it")
    revoke = _json_array([action.model_dump(mode="json") for action in plan.actions])
    checked = [action.model_dump(mode="json") for action in (*plan.containment, *plan.actions)]
    batches = [
        {"actions": checked[start : start + verify_batch_size]} for start in range(0, len(checked), verify_batch_size)
    ]
    verify = _json_array(batches)
    digest = hashlib.sha256(revoke + b"\n" + verify).hexdigest()[:24]
    prefix = f"{PLANS_PREFIX}{plan.incident_id}/{digest}"
    with aws_errors(f"plan write to s3://{bucket}/{prefix}"):
        for name, body in (("revoke.json", revoke), ("verify.json", verify)):
            s3.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=body, ContentType="application/json")
    return reference.model_copy(
        update={
            "revoke_items_key": f"{prefix}/revoke.json",
            "verify_items_key": f"{prefix}/verify.json",
            "verify_item_count": len(batches),
        }
    )
