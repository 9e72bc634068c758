"""The ledger's tamper-evident copy: each change its DynamoDB stream carries, as an object in an object-locked bucket.

The ledger is append-only, so its stream (view type NEW_IMAGE) should only ever carry INSERTs. Each one is written
to `records/<pk>/<sk>/<sequence number>.json`; a MODIFY or a REMOVE, which no Rescind code produces, is written to
`tampering/<event>/<pk>/<sk>/<sequence number>.json` and reported, so the caller can raise the alarm. The bucket
holds every version under COMPLIANCE retention (template.yaml LedgerArchiveBucket), and every put is conditional
(If-None-Match: *): an archived object is never replaced, and a batch delivered again writes nothing twice.

The objects hold what the ledger holds, references only: the item as the stream gives it, never anything more.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rescind.aws.errors import aws_errors, error_code
from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.exceptions import InvalidInput
from rescind.validation import describe_validation_error

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

RECORDS_PREFIX = "records/"
TAMPERING_PREFIX = "tampering/"
_MAX_KEY_BYTES = 1024  # S3's limit on an object key
_SEQUENCE_NUMBER = re.compile(r"^[0-9]{1,64}$")


class StreamEvent(StrEnum):
    INSERT = "INSERT"
    MODIFY = "MODIFY"
    REMOVE = "REMOVE"


class _StringAttribute(BaseModel):
    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    S: Annotated[str, Field(min_length=1, max_length=2048)]


class _LedgerKeys(BaseModel):
    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    pk: _StringAttribute
    sk: _StringAttribute


class _StreamChange(BaseModel):
    """The `dynamodb` part of a stream record, as Lambda's event source mapping delivers it."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="allow", frozen=True)

    Keys: _LedgerKeys
    SequenceNumber: Annotated[str, Field(pattern=_SEQUENCE_NUMBER.pattern)]
    NewImage: dict[str, Any] | None = None
    ApproximateCreationDateTime: float | None = None


class StreamRecord(BaseModel):
    """One record of the ledger's stream (the fields the archive reads; the rest is kept as delivered)."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="allow", frozen=True)

    eventID: Annotated[str, Field(min_length=1, max_length=128)]
    eventName: StreamEvent
    eventSourceARN: Annotated[str, Field(max_length=2048)] = ""
    dynamodb: _StreamChange

    @property
    def pk(self) -> str:
        return self.dynamodb.Keys.pk.S

    @property
    def sk(self) -> str:
        return self.dynamodb.Keys.sk.S

    @property
    def sequence_number(self) -> str:
        return self.dynamodb.SequenceNumber


class TamperingEvidence(BaseModel):
    """A change append-only code never makes, and where its copy is."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    event: StreamEvent
    pk: str
    sk: str
    sequence_number: str
    object_key: str


class ArchiveResult(BaseModel):
    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    archived: int = 0
    already_archived: int = 0  # a batch delivered again: its objects were there already
    tampering: tuple[TamperingEvidence, ...] = ()


def parse_stream_records(event: Any) -> list[StreamRecord]:
    """The records of a DynamoDB stream event; InvalidInput when it is not one (nothing is archived then)."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        raise InvalidInput("not a DynamoDB stream event: it has no Records list")
    parsed: list[StreamRecord] = []
    for index, record in enumerate(records):
        try:
            parsed.append(StreamRecord.model_validate(record))
        except ValidationError as error:
            raise InvalidInput(f"stream record {index}: {describe_validation_error(error)}") from None
    return parsed


def archive_object_key(record: StreamRecord) -> str:
    """Where a change is kept: derived from its keys and its sequence number, so each change has its own object."""
    prefix = RECORDS_PREFIX if record.eventName is StreamEvent.INSERT else f"{TAMPERING_PREFIX}{record.eventName}/"
    suffix = f"{record.sequence_number}.json"
    readable = f"{prefix}{quote(record.pk, safe='')}/{quote(record.sk, safe='')}/{suffix}"
    if len(readable.encode()) <= _MAX_KEY_BYTES:
        return readable
    digest = hashlib.sha256(f"{record.pk}\n{record.sk}".encode()).hexdigest()
    return f"{prefix}sha256-{digest}/{suffix}"


def archive_document(record: StreamRecord) -> bytes:
    """The object's content: the change as the stream gave it (the item's new image, or none for a REMOVE)."""
    document = {
        "event_id": record.eventID,
        "event_name": str(record.eventName),
        "event_source_arn": record.eventSourceARN,
        "sequence_number": record.sequence_number,
        "approximate_creation_time": record.dynamodb.ApproximateCreationDateTime,
        "keys": {"pk": record.pk, "sk": record.sk},
        "new_image": record.dynamodb.NewImage,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _put_once(s3: S3Client, bucket: str, key: str, body: bytes) -> bool:
    """Write the object unless it exists (If-None-Match: *); False when it was there already."""
    from botocore.exceptions import ClientError

    with aws_errors("s3:PutObject"):
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", IfNoneMatch="*")
        except ClientError as error:
            if error_code(error) == "PreconditionFailed":
                return False
            raise
    return True


def archive_stream_records(records: Sequence[StreamRecord], *, s3: S3Client, bucket: str) -> ArchiveResult:
    """Copy each change into the locked bucket, and report every change that append-only code never makes."""
    archived = already = 0
    tampering: list[TamperingEvidence] = []
    for record in records:
        key = archive_object_key(record)
        if _put_once(s3, bucket, key, archive_document(record)):
            archived += 1
        else:
            already += 1
        if record.eventName is not StreamEvent.INSERT:
            tampering.append(
                TamperingEvidence(
                    event=record.eventName,
                    pk=record.pk,
                    sk=record.sk,
                    sequence_number=record.sequence_number,
                    object_key=key,
                )
            )
    return ArchiveResult(archived=archived, already_archived=already, tampering=tuple(tampering))


def describe_tampering(evidence: Sequence[TamperingEvidence], bucket: str) -> tuple[str, str]:
    """(subject, message) of the notification: which records changed, and where their copies are."""
    lines = [
        f"- {item.event} of pk={item.pk} sk={item.sk} (sequence {item.sequence_number}): s3://{bucket}/{item.object_key}"
        for item in evidence[:200]
    ]
    message = (
        f"The append-only ledger changed in a way Rescind never writes: {len(evidence)} record(s) modified or "
        "removed. Each change is kept in the archive (and the record's first version under records/). Find who "
        "wrote it in CloudTrail (DynamoDB data events), and treat the ledger entries named here as suspect.\n"
        + "\n".join(lines)
    )
    return "Rescind Ledger: a record was modified or removed", message
