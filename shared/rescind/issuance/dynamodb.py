"""The issuance index on DynamoDB (IssuanceTable in template.yaml).

Layout (one table):
  pk = WORKLOAD#<holder>          sk = <kind>#<reference or hmac>   the record (JSON), revoked_at, expires_at
  pk = HMAC#<audit hmac>          sk = <record pk>|<record sk>      a pointer, for a leaked value or a revocation
  pk = PARENT#<parent accessor>   sk = <record pk>|<record sk>      a pointer: a token's children and leases
  pk = REF#<reference>            sk = <record pk>|<record sk>      a pointer, for a revocation by reference
  pk = ENTITY#<entity id>         sk = <record pk>|<record sk>      a pointer: the tokens issued to an identity entity

<holder> is the workload's SPIFFE ID; failing that `entity:<id>`, `token:<parent accessor>`, or `unattributed`.
`expires_at` (epoch seconds) is the table's TTL attribute: a record is kept 30 days past its TTL, so "already
absent" has its evidence for that long. A record is written once, by a conditional put (a plain put would drop the
revocation a record may carry by then); pointers are plain puts (re-indexing a line is harmless); a revocation is a
conditional update that keeps the first time seen. No value is ever stored: only references and HMACs.

Records are read a page at a time (BatchGetItem, 100 keys a call, consistent): which of a batch of issuances the
index holds already, and the records a pointer partition names. Keys DynamoDB leaves unprocessed (throttling) are
asked again with a backoff; still unprocessed after the retries, the read raises AwsThrottled.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from rescind.aws.errors import aws_errors, error_code
from rescind.exceptions import AwsThrottled
from rescind.fingerprints.dynamodb import put_items
from rescind.issuance.types import IssuanceRecord, IssuanceRevocation
from rescind.models import CredentialKind

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import KeysAndAttributesTypeDef

KEPT_PAST_EXPIRY = timedelta(days=30)
READ_BATCH_SIZE = 100  # BatchGetItem's limit
_UNPROCESSED_RETRIES = 5
PUT_WORKERS = 8  # conditional puts in flight at once (boto3 clients are thread-safe)

Key = tuple[str, str]  # (pk, sk)


def holder_key(record: IssuanceRecord) -> str:
    if record.workload_id:
        return f"WORKLOAD#{record.workload_id}"
    if record.entity_id:
        return f"WORKLOAD#entity:{record.entity_id}"
    if record.parent_accessor:
        return f"WORKLOAD#token:{record.parent_accessor}"
    return "WORKLOAD#unattributed"


def _pointer_keys(record: IssuanceRecord) -> list[str]:
    keys = [f"HMAC#{value}" for value in {record.reference_hmac, *record.response_hmacs.values()} if value]
    if record.parent_accessor:
        keys.append(f"PARENT#{record.parent_accessor}")
    if record.reference:
        keys.append(f"REF#{record.reference}")
    if record.entity_id and record.kind is CredentialKind.VAULT_TOKEN:
        keys.append(f"ENTITY#{record.entity_id}")  # whether a leaked token's entity holds another (rescind.leaks)
    return keys


def _main_item(record: IssuanceRecord) -> dict[str, Any]:
    ttl = _ttl(record)
    return {
        "pk": {"S": holder_key(record)},
        "sk": {"S": record.key},
        "record": {"S": record.model_dump_json(exclude={"revoked_at"})},
        **ttl,
    }


def _pointer_items(record: IssuanceRecord) -> list[dict[str, Any]]:
    pk, sk, ttl = holder_key(record), record.key, _ttl(record)
    return [
        {"pk": {"S": key}, "sk": {"S": f"{pk}|{sk}"}, "target_pk": {"S": pk}, "target_sk": {"S": sk}, **ttl}
        for key in _pointer_keys(record)
    ]


def _ttl(record: IssuanceRecord) -> dict[str, Any]:
    if record.expires_at is None:
        return {}
    return {"expires_at": {"N": str(int((record.expires_at + KEPT_PAST_EXPIRY).timestamp()))}}


class DynamoDbIssuanceIndex:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._table = table_name
        self._client = client

    @property
    def table_name(self) -> str:
        return self._table

    def put_issuances(self, records: Sequence[IssuanceRecord]) -> int:
        """Write the records the index does not hold yet; returns how many were written.

        A put would clear a revocation seen earlier, so each record is put only where none is: the ones held are
        skipped (read in pages), and the rest are conditional puts, which also keep a record another writer put,
        and the audit log revoked, since that read. Their pointers go first (harmless to put again, and a pointer
        to a record not yet written finds nothing), so a record is never held without them.
        """
        held = set(self._get_many(((holder_key(record), record.key) for record in records), keys_only=True))
        fresh = {(holder_key(record), record.key): record for record in records}
        mains = [_main_item(record) for key, record in fresh.items() if key not in held]
        pointers = [item for key, record in fresh.items() if key not in held for item in _pointer_items(record)]
        put_items(self._client, self._table, pointers, "issuances")
        if len(mains) <= 1:
            return sum(self._put_new(item) for item in mains)
        with ThreadPoolExecutor(min(PUT_WORKERS, len(mains))) as pool:  # a call each (no batch takes a condition)
            return sum(pool.map(self._put_new, mains))

    def _put_new(self, item: dict[str, Any]) -> bool:
        with aws_errors(f"write issuances to {self._table}"):
            try:
                self._client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
            except ClientError as error:
                if error_code(error) == "ConditionalCheckFailedException":
                    return False  # written since the read (and perhaps seen revoked since): it stands
                raise
        return True

    def record_revocations(self, revocations: Sequence[IssuanceRevocation]) -> int:
        matched = 0
        for revocation in revocations:
            pointer = f"REF#{revocation.reference}" if revocation.reference else f"HMAC#{revocation.hmac}"
            for target_pk, target_sk in self._pointers(pointer):
                if target_sk.startswith(f"{revocation.kind}#"):
                    self._mark_revoked(target_pk, target_sk, revocation)
                    matched += 1
        return matched

    def by_workload(self, workload_id: str) -> list[IssuanceRecord]:
        return [self._record(item) for item in self._query(f"WORKLOAD#{workload_id}")]

    def by_hmac(self, audit_hmac: str) -> list[IssuanceRecord]:
        return self._follow(f"HMAC#{audit_hmac}")

    def by_parent(self, accessor: str) -> list[IssuanceRecord]:
        return self._follow(f"PARENT#{accessor}")

    def by_entity(self, entity_id: str) -> list[IssuanceRecord]:
        return self._follow(f"ENTITY#{entity_id}")

    # --- DynamoDB ----------------------------------------------------------------------------------------------

    def _query(self, pk: str) -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator("query")
        with aws_errors(f"query {self._table}"):
            for page in paginator.paginate(
                TableName=self._table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": pk}},
                ConsistentRead=True,
            ):
                yield from page.get("Items", [])

    def _pointers(self, pk: str) -> list[tuple[str, str]]:
        return [(item["target_pk"]["S"], item["target_sk"]["S"]) for item in self._query(pk)]

    def _follow(self, pk: str) -> list[IssuanceRecord]:
        return self._follow_many([pk])[pk]

    def _follow_many(self, pks: Sequence[str]) -> dict[str, list[IssuanceRecord]]:
        """The records each pointer partition names, in its order: a query each, the records read in pages."""
        targets = {pk: self._pointers(pk) for pk in pks}
        found = self._get_many(target for pointed in targets.values() for target in pointed)
        return {pk: [self._record(found[key]) for key in pointed if key in found] for pk, pointed in targets.items()}

    def _get_many(self, keys: Iterable[Key], *, keys_only: bool = False) -> dict[Key, dict[str, Any]]:
        """The items the index holds of these keys (consistent reads, a page of 100 at a time), by key."""
        distinct = list(dict.fromkeys(keys))  # a batch may not name a key twice
        found: dict[Key, dict[str, Any]] = {}
        for start in range(0, len(distinct), READ_BATCH_SIZE):
            request: KeysAndAttributesTypeDef = {
                "Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in distinct[start : start + READ_BATCH_SIZE]],
                "ConsistentRead": True,
            }
            if keys_only:
                request["ProjectionExpression"] = "pk, sk"
            for item in self._batch_get(request):
                found[(item["pk"]["S"], item["sk"]["S"])] = item
        return found

    def _batch_get(self, request: KeysAndAttributesTypeDef) -> Iterator[dict[str, Any]]:
        for attempt in range(_UNPROCESSED_RETRIES + 1):
            with aws_errors(f"read issuances from {self._table}"):
                answer = self._client.batch_get_item(RequestItems={self._table: request})
            yield from answer.get("Responses", {}).get(self._table, [])
            unprocessed = (answer.get("UnprocessedKeys") or {}).get(self._table)
            if not unprocessed or not unprocessed.get("Keys"):
                return
            request = {**request, "Keys": unprocessed["Keys"]}
            if attempt < _UNPROCESSED_RETRIES:
                time.sleep(min(0.05 * 2**attempt, 1.0))  # DynamoDB leaves keys unprocessed when throttled
        raise AwsThrottled(f"read issuances from {self._table}: {len(request['Keys'])} key(s) left unprocessed")

    def _mark_revoked(self, pk: str, sk: str, revocation: IssuanceRevocation) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": pk}, "sk": {"S": sk}},
                UpdateExpression="SET revoked_at = :at, revoked_by = :path",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(revoked_at)",
                ExpressionAttributeValues={
                    ":at": {"S": revocation.revoked_at.isoformat()},
                    ":path": {"S": revocation.path},
                },
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return  # seen revoked before: the first time stands
            with aws_errors(f"record a revocation in {self._table}"):
                raise

    @staticmethod
    def _record(item: dict[str, Any]) -> IssuanceRecord:
        record = IssuanceRecord.model_validate_json(item["record"]["S"])
        if "revoked_at" in item:
            # model_copy does not validate: parse the time, or the typed field would hold a string.
            return record.model_copy(update={"revoked_at": datetime.fromisoformat(item["revoked_at"]["S"])})
        return record
