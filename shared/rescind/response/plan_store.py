"""A plan's actions in S3, for the state machines' DISTRIBUTED Maps; the state carries only where they are.

A Standard execution's state is at most 256 KB, which a plan of about 730 credentials fills (or about 500 IAM
keys to deactivate). So the plan task writes the actions as JSON arrays the Maps read with `ItemReader`
(`s3:getObject`, `InputType: JSON`), each item a batch of `revoke_batch_size` actions and the object its act's
read-back goes to:

  plans/<incident id>/<digest>/contain.json  the reversible actions (disable an entity, deactivate a key), run by the
                                             Contain Map before any other: {"actions": [...], "read_back_key":
                                             ".../read-back/<n>.json"}, n = 0, 1, ...
  plans/<incident id>/<digest>/revoke.json   the rest (rotate, revoke, delete), the same shape, numbered after them
  plans/<incident id>/<digest>/verify.json   every batch of both, with the same read_back_key

The acting batch writes its actions' own read-back evidence to its read_back_key (rescind.engine.batch); the Verify
batch of the same targets counts a target dead from that evidence and reads again only the rest.

and returns a `PlanReference`: the decision, the counts and these keys (never the actions). The digest is the
content's, so a resumed run writes the same objects again and nothing else. A small plan (at most
`INLINE_MAX_ACTIONS`, one batch of containment and one of the rest) is not written: its items travel in the state
(`inline_items`), read by the state machine's INLINE Maps, which start no Map Run and write no results to S3; only
its read-back objects are written. The objects are references only (the
same ones the ledger holds), never values. The Verify items are batched here because moto 5.2.5 cannot parse
`ItemBatcher`; the batches are what ItemBatcher would make.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from rescind.aws.errors import aws_errors
from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.engine.batch import READ_BACK_FOLDER, ReadBackKey, ReadBackRecord
from rescind.exceptions import AwsNotFound, ConfigurationError, InvalidInput
from rescind.models import Action
from rescind.response.types import GuardDecision, ResponsePlan, WorkloadId

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PLANS_PREFIX = "plans/"
RESULTS_PREFIX = "results/"
# Only these decisions go on to act: the others end before Revoke, and nothing is written for them.
_ACTING = frozenset({GuardDecision.PROCEED, GuardDecision.NEEDS_APPROVAL})
_READ_BACK_KEY: TypeAdapter[str] = TypeAdapter(ReadBackKey)
# At most this many actions, in one batch each of containment and the rest, ride in the state: each under 1 KB, and
# held about four times over by the end of Verify (the plan, its Verify items, their results, the close), far under
# the 256 KB a state may hold.
INLINE_MAX_ACTIONS = 25


class InlineItems(BaseModel):
    """A small plan's Map items, in the state: the same items the S3 objects would hold."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    contain: list[dict[str, object]]
    revoke: list[dict[str, object]]
    verify: list[dict[str, object]]


class PlanReference(BaseModel):
    """The plan task's output in the execution's state: no action list, only where it is and how many."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    incident_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,80}$")]
    workload_id: WorkloadId
    decision: GuardDecision
    decision_reason: Annotated[str, Field(max_length=1000)]
    counts_by_kind: dict[str, int]
    action_count: int
    containment_count: int  # of action_count: the reversible ones, in the Contain items
    revoke_count: int = 0  # of action_count: the rest, in the Revoke items
    proven_before_run_count: int = 0  # planned, proven done before the run (not in action_count): nothing to do
    containment_items_key: str | None = None
    revoke_items_key: str | None = None
    verify_items_key: str | None = None
    verify_item_count: int = 0
    revoke_batch_size: int = 1  # actions per Contain or Revoke item (the last of each may hold fewer)
    inline: bool = False  # the items are in `inline_items`, not in S3: the INLINE Maps run them
    inline_items: InlineItems | None = None


class VerifyBatchRequest(BaseModel):
    """One item of the Verify Map: a batch of the plan's actions whose targets are read back. `read_back_key`,
    when set, is where the Revoke batch of the same actions wrote their own read-back (plans/ only)."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    incident_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,80}$")]
    actions: Annotated[tuple[Action, ...], Field(min_length=1, max_length=1000)]
    read_back_key: ReadBackKey | None = None


def _json_array(items: Sequence[object]) -> bytes:
    return json.dumps(items, separators=(",", ":")).encode()


def _batches(actions: Sequence[object], size: int) -> list[list[object]]:
    return [list(actions[start : start + size]) for start in range(0, len(actions), size)]


def store_plan(plan: ResponsePlan, s3: S3Client, bucket: str | None, revoke_batch_size: int = 50) -> PlanReference:
    """Write the plan's Map items to the plan bucket (only for a plan that will act) and return the reference.

    The containment and the rest each go in batches of `revoke_batch_size`, each batch with its own read-back
    object; Verify reads every batch's targets as one batch naming that object.
    """
    reference = PlanReference(
        incident_id=plan.incident_id,
        workload_id=plan.workload_id,
        decision=plan.decision,
        decision_reason=plan.decision_reason,
        counts_by_kind=plan.counts_by_kind,
        action_count=len(plan.containment) + len(plan.actions),
        containment_count=len(plan.containment),
        revoke_count=len(plan.actions),
        proven_before_run_count=len(plan.proven_before_run),
    )
    if plan.decision not in _ACTING or reference.action_count == 0:  # nothing to act on: no Map runs
        return reference
    if bucket is None:
        raise ConfigurationError("PLAN_BUCKET_NAME is not set: the state machines read a plan's actions from it")
    contained = _batches([action.model_dump(mode="json") for action in plan.containment], revoke_batch_size)
    acting = _batches([action.model_dump(mode="json") for action in plan.actions], revoke_batch_size)
    # The digest is of the content and the batching; the read-back keys are named under it, so they come after.
    digest = hashlib.sha256(_json_array([contained, acting])).hexdigest()[:24]
    prefix = f"{PLANS_PREFIX}{plan.incident_id}/{digest}"
    items = [
        {"actions": batch, "read_back_key": f"{prefix}/{READ_BACK_FOLDER}/{number}.json"}
        for number, batch in enumerate(contained + acting)
    ]
    contain_items, revoke_items = items[: len(contained)], items[len(contained) :]
    # Each batch's read-back object starts empty, so a read of one never meets an absent key (which S3 answers
    # with 403 to a reader without ListBucket): empty proves nothing, and Verify reads those targets itself.
    empty = ReadBackRecord(incident_id=plan.incident_id).model_dump_json().encode()
    sizes = {
        "verify_item_count": len(items),
        "revoke_batch_size": revoke_batch_size,
    }
    if reference.action_count <= INLINE_MAX_ACTIONS and len(contained) <= 1 and len(acting) <= 1:
        _write(s3, bucket, prefix, [(str(item["read_back_key"]), empty) for item in items])
        inline = InlineItems(contain=contain_items, revoke=revoke_items, verify=items)
        return reference.model_copy(update={**sizes, "inline": True, "inline_items": inline})
    # A Map with no items is skipped by the state machine (its Choice reads the counts), so its object is not written.
    keys = {
        name: f"{prefix}/{name}.json" if part else None
        for name, part in (("contain", contain_items), ("revoke", revoke_items), ("verify", items))
    }
    objects = [
        (key, _json_array(part))
        for key, part in ((keys["contain"], contain_items), (keys["revoke"], revoke_items), (keys["verify"], items))
        if key is not None
    ]
    objects += [(str(item["read_back_key"]), empty) for item in items]
    _write(s3, bucket, prefix, objects)
    return reference.model_copy(
        update={
            **sizes,
            "containment_items_key": keys["contain"],
            "revoke_items_key": keys["revoke"],
            "verify_items_key": keys["verify"],
        }
    )


def _write(s3: S3Client, bucket: str, prefix: str, objects: Sequence[tuple[str, bytes]]) -> None:
    with aws_errors(f"plan write to s3://{bucket}/{prefix}"):
        for key, body in objects:
            s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


class S3ReadBackStore:
    """The Revoke batches' read-back objects in the plan bucket (rescind.engine.batch.ReadBackStore). Only keys
    under a plan's read-back folder are read or written, whatever the event names."""

    def __init__(self, s3: S3Client, bucket: str | None) -> None:
        if bucket is None:
            raise ConfigurationError("PLAN_BUCKET_NAME is not set: the read-back of a Revoke batch is kept in it")
        self._s3, self._bucket = s3, bucket

    def _checked(self, key: str) -> str:
        try:
            return _READ_BACK_KEY.validate_python(key)
        except ValidationError:
            raise InvalidInput(
                f"a read-back object outside {PLANS_PREFIX}<incident>/<plan>/{READ_BACK_FOLDER}/ was named"
            ) from None

    def read(self, key: str) -> ReadBackRecord | None:
        """The object (the plan task wrote it empty), or None when there is none."""
        try:
            with aws_errors(f"read-back read from s3://{self._bucket}/{self._checked(key)}"):
                body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except AwsNotFound:
            return None
        return ReadBackRecord.model_validate_json(body)

    def write(self, key: str, record: ReadBackRecord) -> None:
        with aws_errors(f"read-back write to s3://{self._bucket}/{self._checked(key)}"):
            body = record.model_dump_json().encode()
            self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="application/json")
