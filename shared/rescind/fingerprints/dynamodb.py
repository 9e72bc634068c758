"""The fingerprint index on DynamoDB (FingerprintTable in template.yaml).

Layout:
  pk = FP#<fingerprint>   sk = <mount>|<path>|<version>|<field>
  attributes: mount, path, version (N), field, indexed_at (UTC ISO 8601)

Mounts and paths cannot hold '|' and the version is digits, so the sort key is unique per field. Hits are read
from the attributes, never parsed back from the sort key. Writes are unconditional puts, so re-indexing is
harmless. No value is ever stored.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rescind.aws.errors import aws_errors
from rescind.exceptions import AwsThrottled, InvalidInput
from rescind.fingerprints.types import FingerprintEntry, FingerprintHit

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_BATCH_SIZE = 25  # BatchWriteItem's limit
_MAX_SORT_KEY_BYTES = 1024
_UNPROCESSED_RETRIES = 5


def partition_key(fingerprint: str) -> str:
    return f"FP#{fingerprint}"


def sort_key(hit: FingerprintHit) -> str:
    key = f"{hit.mount}|{hit.path}|{hit.version}|{hit.field}"
    if len(key.encode()) > _MAX_SORT_KEY_BYTES:
        # A very long field name would overflow DynamoDB's sort key; its hash keeps the key unique.
        digest = hashlib.sha256(hit.field.encode()).hexdigest()
        key = f"{hit.mount}|{hit.path}|{hit.version}|#sha256:{digest}"
    return key


def _item(entry: FingerprintEntry, indexed_at: str) -> dict[str, Any]:
    hit = entry.hit
    return {
        "pk": {"S": partition_key(entry.fingerprint)},
        "sk": {"S": sort_key(hit)},
        "mount": {"S": hit.mount},
        "path": {"S": hit.path},
        "version": {"N": str(hit.version)},
        "field": {"S": hit.field},
        "indexed_at": {"S": indexed_at},
    }


def put_items(client: DynamoDBClient, table: str, items: Sequence[dict[str, Any]], what: str) -> int:
    """Unconditional puts in batches, one item per key (the last wins); returns how many distinct items."""
    unique = {(item["pk"]["S"], item["sk"]["S"]): item for item in items}  # one batch may not name a key twice
    distinct = list(unique.values())
    for start in range(0, len(distinct), _BATCH_SIZE):
        requests: list[Any] = [{"PutRequest": {"Item": item}} for item in distinct[start : start + _BATCH_SIZE]]
        for attempt in range(_UNPROCESSED_RETRIES + 1):
            with aws_errors(f"write {what} to {table}"):
                answer = client.batch_write_item(RequestItems={table: requests})
            requests = list((answer.get("UnprocessedItems") or {}).get(table, []))
            if not requests:
                break
            time.sleep(min(0.05 * 2**attempt, 1.0))  # DynamoDB returns unprocessed items when throttled
        else:
            raise AwsThrottled(f"write {what} to {table}: {len(requests)} item(s) left unprocessed")
    return len(distinct)


class DynamoDbFingerprintIndex:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._table = table_name
        self._client = client

    def put(self, entries: Sequence[FingerprintEntry]) -> int:
        indexed_at = datetime.now(UTC).isoformat(timespec="seconds")
        return put_items(self._client, self._table, [_item(entry, indexed_at) for entry in entries], "fingerprints")

    def lookup(self, fingerprint: str) -> list[FingerprintHit]:
        if len(fingerprint) != 64 or any(character not in "0123456789abcdef" for character in fingerprint):
            raise InvalidInput("a fingerprint is 64 lowercase hexadecimal characters")
        hits: list[FingerprintHit] = []
        paginator = self._client.get_paginator("query")
        with aws_errors(f"look up a fingerprint in {self._table}"):
            for page in paginator.paginate(
                TableName=self._table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": partition_key(fingerprint)}},
                ConsistentRead=True,
            ):
                for item in page.get("Items", []):
                    hits.append(
                        FingerprintHit(
                            mount=item["mount"]["S"],
                            path=item["path"]["S"],
                            version=int(item["version"]["N"]),
                            field=item["field"]["S"],
                        )
                    )
        return hits
