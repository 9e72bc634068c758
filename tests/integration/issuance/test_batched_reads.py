"""The issuance index reads its records a page at a time (issue 18): BatchGetItem, 100 keys a call, consistent.

Given an issuance table on moto (and, for the back-fill, a real OpenBao holding many tokens),
When records are written (the audit log's or the back-fill's), followed from a pointer partition, or looked up by
the drift check,
Then the index is read with at most one BatchGetItem per 100 keys and no GetItem per record; a record the index
holds already (one seen revoked) is never overwritten; keys DynamoDB leaves unprocessed (injected here through
botocore's event system, as a throttled table returns them) are asked again, and still unprocessed after the retries
the read raises AwsThrottled and nothing is written.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import hvac
import pytest

from rescind.discovery import DiscoveryScope
from rescind.exceptions import AwsThrottled
from rescind.issuance.backfill import backfill_index
from rescind.issuance.drift import check_index_drift
from rescind.issuance.dynamodb import READ_BATCH_SIZE, DynamoDbIssuanceIndex
from rescind.issuance.reading import IssuanceTableReader
from rescind.issuance.state import DynamoDbIndexState
from rescind.issuance.types import IssuanceRecord, IssuanceRevocation
from rescind.models import CredentialKind
from tests.integration.issuance.test_audit_index import TABLE, create_table

pytestmark = pytest.mark.integration

WORKLOAD = "spiffe://batched.example/ns/billing/sa/api"
PARENT = "parent-accessor"


class Reads:
    """Every call the client makes to DynamoDB, counted by operation, with the keys each GetItem named."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        self.record_gets = 0  # GetItem of an issuance record (not the index's marker or checkpoint)
        client.meta.events.register("provide-client-params.dynamodb.*", self._count)

    def _count(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls[model.name] += 1
        if model.name == "GetItem" and params["Key"]["pk"]["S"].startswith("WORKLOAD#"):
            self.record_gets += 1


def token_records(count: int, *, parent: str | None = PARENT) -> list[IssuanceRecord]:
    issued = datetime(2026, 12, 1, tzinfo=UTC)
    return [
        IssuanceRecord(
            kind=CredentialKind.VAULT_TOKEN,
            reference=f"vault-token:accessor:child{number:04d}",
            workload_id=WORKLOAD,
            parent_accessor=parent,
            mount="token",
            path="auth/token/create",
            request_id=f"request-{number}",
            issued_at=issued,
            ttl_seconds=3600,
        )
        for number in range(count)
    ]


@pytest.fixture
def client(aws: None) -> Any:
    create_table()
    return boto3.client("dynamodb", region_name="us-east-1")


def leave_unprocessed(client: Any, *, times: int) -> list[int]:
    """Make the next `times` BatchGetItem answers leave half their keys unprocessed (at least one), as DynamoDB does
    when throttled; returns how many items each answer held before that."""
    answered: list[int] = []

    def throttle(parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name != "BatchGetItem":
            return
        items = parsed.get("Responses", {}).get(TABLE, [])
        answered.append(len(items))
        if len(answered) > times or not items:
            return
        kept, dropped = items[: len(items) // 2], items[len(items) // 2 :]
        parsed["Responses"][TABLE] = kept
        keys = [{"pk": item["pk"], "sk": item["sk"]} for item in dropped]
        parsed["UnprocessedKeys"] = {TABLE: {"Keys": keys, "ConsistentRead": True}}

    client.meta.events.register("after-call.dynamodb.BatchGetItem", throttle)
    return answered


def test_writing_250_records_reads_the_index_in_three_batches_and_keeps_a_revocation(client: Any) -> None:
    index = DynamoDbIssuanceIndex(TABLE, client)
    records = token_records(250)
    # Given one record already in the index, seen revoked by the audit log
    assert index.put_issuances(records[:1]) == 1
    revoked_at = datetime(2026, 12, 2, tzinfo=UTC)
    assert index.record_revocations(
        [
            IssuanceRevocation(
                kind=CredentialKind.VAULT_TOKEN,
                reference=records[0].reference,
                path="auth/token/revoke-accessor",
                revoked_at=revoked_at,
            )
        ]
    )
    reads = Reads(client)

    # When all 250 are written (as the back-fill writes a page)
    written = index.put_issuances(records)

    # Then the index was read in ceil(250/100) batches, never a record at a time, and the revoked one kept
    assert written == 249
    assert reads.calls["BatchGetItem"] <= math.ceil(250 / READ_BATCH_SIZE)
    assert reads.calls["GetItem"] == 0
    held = {record.reference: record for record in index.by_workload(WORKLOAD)}
    assert len(held) == 250
    assert held[records[0].reference].revoked_at == revoked_at


def test_a_revocation_recorded_between_the_read_and_the_write_is_kept(client: Any) -> None:
    # Given three records the index does not hold, and another writer (the audit-log subscription on its own
    # client) that, just as this writer's first write goes out, indexes the first of them and records its revocation
    index = DynamoDbIssuanceIndex(TABLE, client)
    records = token_records(3)
    other = DynamoDbIssuanceIndex(TABLE, boto3.client("dynamodb", region_name="us-east-1"))
    revoked_at = datetime(2026, 12, 2, tzinfo=UTC)
    interleaved: list[str] = []

    def revoke_first(model: Any, **_: Any) -> None:
        if interleaved or model.name not in ("BatchWriteItem", "PutItem", "TransactWriteItems", "UpdateItem"):
            return
        interleaved.append(model.name)
        assert other.put_issuances(records[:1]) == 1
        revocation = IssuanceRevocation(
            kind=CredentialKind.VAULT_TOKEN,
            reference=records[0].reference,
            path="auth/token/revoke-accessor",
            revoked_at=revoked_at,
        )
        assert other.record_revocations([revocation]) == 1

    client.meta.events.register("before-call.dynamodb", revoke_first)

    # When this writer writes all three (its read found none of them)
    written = index.put_issuances(records)

    # Then the revocation stands: the first record is the other writer's, kept revoked; the other two are written
    assert interleaved
    held = {record.reference: record for record in index.by_workload(WORKLOAD)}
    assert held[records[0].reference].revoked_at == revoked_at
    assert len(held) == 3
    assert written == 2
    assert [held[record.reference].revoked_at for record in records[1:]] == [None, None]
    assert len(index.by_parent(PARENT)) == 3


def test_a_pointer_partition_is_followed_in_batches_in_its_order(client: Any) -> None:
    index = DynamoDbIssuanceIndex(TABLE, client)
    records = token_records(230)
    index.put_issuances(records)
    reads = Reads(client)

    children = index.by_parent(PARENT)

    assert [child.reference for child in children] == sorted(record.reference for record in records)
    assert reads.calls["GetItem"] == 0
    assert reads.calls["BatchGetItem"] == math.ceil(230 / READ_BATCH_SIZE)


def test_unprocessed_keys_are_asked_again(client: Any) -> None:
    index = IssuanceTableReader(TABLE, client)
    records = token_records(120)
    index.put_issuances(records[:60])
    answered = leave_unprocessed(client, times=3)

    # When the first three answers each leave half their keys unprocessed
    written = index.put_issuances(records)

    # Then the left keys were asked again, so the 60 records held were found and not written again
    assert written == 60
    # The first page (60 held of 100) answered 30, then 15 of the 30 left, 7 of those 15, the last 8; the second none
    assert answered == [60, 30, 15, 8, 0]
    # And following pointers under the same throttling finds every record
    leave_unprocessed(client, times=2)
    assert len(index.by_reference(str(records[5].reference))) == 1
    assert len(index.by_parent(PARENT)) == 120


def test_keys_still_unprocessed_after_the_retries_raise_throttled_and_nothing_is_written(client: Any) -> None:
    index = DynamoDbIssuanceIndex(TABLE, client)
    records = token_records(10)
    index.put_issuances(records[:4])
    leave_unprocessed(client, times=1_000)
    reads = Reads(client)

    with pytest.raises(AwsThrottled, match="left unprocessed"):
        index.put_issuances(records)

    assert reads.calls["BatchWriteItem"] == 0
    assert reads.calls["BatchGetItem"] == 6  # the call and its five retries


@pytest.fixture
def many_tokens(vault: hvac.Client, unique: str) -> Iterator[str]:
    workload = f"spiffe://batched.example/{unique}"
    accessors = [
        vault.auth.token.create(policies=["default"], meta={"spiffe_id": workload}, ttl="30m")["auth"]["accessor"]
        for _ in range(150)
    ]
    yield workload
    for accessor in accessors:
        vault.auth.token.revoke_accessor(accessor)


def test_the_backfill_reads_the_index_a_page_at_a_time(vault: hvac.Client, client: Any, many_tokens: str) -> None:
    index, state = IssuanceTableReader(TABLE, client), DynamoDbIndexState(TABLE, client)
    reads = Reads(client)
    scope = DiscoveryScope(pki_mounts=(), approle_mounts=(), kv_mounts=(), lease_mounts=())

    report = backfill_index(vault, index, state, scope, now=lambda: datetime.now(UTC), requests_per_second=10_000)

    assert report.complete
    assert report.by_kind[str(CredentialKind.VAULT_TOKEN)] >= 150
    assert reads.record_gets == 0
    assert reads.calls["BatchGetItem"] <= math.ceil(report.examined / READ_BATCH_SIZE)
    assert len(index.by_workload(many_tokens)) == 150

    # And the drift check looks its live sample up in the index the same way: a query per reference, reads in pages
    reads.calls.clear()
    check = check_index_drift(
        vault,
        index,
        state,
        scope,
        sample_size=150,
        threshold=0.5,
        now=datetime.now(UTC),
        wait=lambda: None,
        dry_run=True,
    )
    assert check.sampled_live == 150
    assert check.missing_from_index == 0
    assert reads.record_gets == 0
    assert reads.calls["BatchGetItem"] <= math.ceil(150 / READ_BATCH_SIZE)
