"""What the Verify Map found, read from its ResultWriter output in S3 rather than carried in the state.

A DISTRIBUTED Map with a ResultWriter writes a manifest (`<prefix>/<map run id>/manifest.json`) naming its result
files by status; each file is a JSON array of child executions, with the child's `Input` and `Output` as JSON
text (SUCCEEDED) or its `Error` and `Cause` (FAILED). The Map's own output is only where the manifest is
(`ResultWriterDetails`), so the steps after it read the summary here: which targets were read back, which are
still alive, how many items did not finish, and where the proofs came from (the act's own read-back, kept by the
Revoke batch, or a read by Verify). A target in an item that failed, or in none, is not read
back: the closure calls it unknown, never dead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from rescind.aws.errors import aws_errors
from rescind.exceptions import InvalidInput
from rescind.ledger.closing import MapResultsLocation, VerifiedTargets
from rescind.models import CredentialRef
from rescind.response.plan_store import RESULTS_PREFIX, VerifyBatchRequest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_REFS: TypeAdapter[list[CredentialRef]] = TypeAdapter(list[CredentialRef])
_NOT_FINISHED = ("FAILED", "PENDING")


def _read_json(s3: S3Client, bucket: str, key: str) -> Any:
    if not key.startswith(RESULTS_PREFIX):
        raise InvalidInput(f"a Map result outside {RESULTS_PREFIX} was named: {key[:200]}")
    with aws_errors(f"Map results read from s3://{bucket}/{key}"):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return json.loads(body)


def read_verify_results(s3: S3Client, location: MapResultsLocation, plan_bucket: str | None) -> VerifiedTargets:
    """Sum the Verify Map's results. Only the plan bucket's results/ prefix is read, whatever the input names."""
    if plan_bucket is None or location.bucket != plan_bucket:
        raise InvalidInput("the Verify Map's results must be in the plan bucket (PLAN_BUCKET_NAME)")
    manifest = _read_json(s3, location.bucket, location.key)
    files: dict[str, list[dict[str, Any]]] = manifest.get("ResultFiles") or {}
    finished = (
        (VerifyBatchRequest.model_validate_json(child["Input"]), json.loads(child["Output"]))
        for entry in files.get("SUCCEEDED") or []
        for child in _read_json(s3, location.bucket, entry["Key"])
    )
    summed = _summed(finished)
    failed = sum(
        len(_read_json(s3, location.bucket, entry["Key"]))
        for status in _NOT_FINISHED
        for entry in files.get(status) or []
    )
    return replace(summed, failed_items=failed)


def inline_verify_results(items: Iterable[Mapping[str, Any]]) -> VerifiedTargets:
    """Sum a small plan's INLINE Verify Map: each item is its input with its batch's result in `verified`. Every
    item finished (one that fails fails the Map, and the run closes as failed)."""
    try:
        return _summed(
            (VerifyBatchRequest.model_validate({k: v for k, v in item.items() if k != "verified"}), item["verified"])
            for item in items
        )
    except (KeyError, TypeError, ValidationError) as error:
        raise InvalidInput(f"an inline Verify item is malformed: {type(error).__name__}") from error


def _summed(finished: Iterable[tuple[VerifyBatchRequest, Mapping[str, Any]]]) -> VerifiedTargets:
    """What the finished Verify items read back, found alive, and how they proved it."""
    read_back: set[str] = set()
    alive: dict[str, CredentialRef] = {}
    proof_counts = {"proven_by_act_read_back_count": 0, "read_again_count": 0}
    for batch, output in finished:
        read_back.update(action.target.key for action in batch.actions)
        for name in proof_counts:
            proof_counts[name] += int(output.get(name, 0))
        for ref in _REFS.validate_python(output["still_alive"]):
            alive.setdefault(ref.key, ref)
    return VerifiedTargets(
        read_back=frozenset(read_back),
        still_alive=tuple(alive.values()),
        proven_by_act_read_back=proof_counts["proven_by_act_read_back_count"],
        read_again=proof_counts["read_again_count"],
    )
