"""The inventory on DynamoDB: cloud resource → workload, and workload → credential references it was seen holding.

Layout (the table is defined in template.yaml as InventoryTable):
  pk = CLOUD#<cloud_id>        sk = BINDING          the workload a resource ran as; kept after the resource
                                                      is gone, so a termination event can still be resolved
  pk = WORKLOAD#<workload_id>  sk = CRED#<ref.key>   one per credential reference the workload was seen
                                                      holding; the reference JSON only, never a value
  gsi1 (by_workload), sparse, on bindings only: gsi1pk = WORKLOAD#<workload_id>, gsi1sk = CLOUD#<cloud_id>,
  for "which resources ran as this workload" and for listing every binding without reading credentials.

`cloud_id` is an EC2 instance id, an ECS task ARN or an unqualified Lambda function ARN. A sort key longer
than DynamoDB allows (1024 bytes) is replaced by a SHA-256 of the reference key; the item's body always
holds the full reference.

Writes are conditional puts: a credential is written once (a second record of the same reference is not a
second item), and a binding is replaced only by one seen at the same time or later, so an old sweep that
finishes late cannot undo a newer binding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from rescind.aws.errors import aws_errors, error_code
from rescind.inventory.types import WorkloadBinding
from rescind.models import CredentialRef
from rescind.models.credentials import credential_ref_adapter
from rescind.models.results import utc_now

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

WORKLOAD_INDEX = "by_workload"
BINDING_SK = "BINDING"
CREDENTIAL_PREFIX = "CRED#"
_MAX_SORT_KEY_BYTES = 1024
_CONDITION_FAILED = "ConditionalCheckFailedException"


def cloud_pk(cloud_id: str) -> str:
    return f"CLOUD#{cloud_id}"


def workload_pk(workload_id: str) -> str:
    return f"WORKLOAD#{workload_id}"


def credential_sk(ref: CredentialRef) -> str:
    """CRED#<ref.key>, or CRED#sha256:<hex> for a key too long for a DynamoDB sort key."""
    sort_key = f"{CREDENTIAL_PREFIX}{ref.key}"
    if len(sort_key.encode()) <= _MAX_SORT_KEY_BYTES:
        return sort_key
    return f"{CREDENTIAL_PREFIX}sha256:{hashlib.sha256(ref.key.encode()).hexdigest()}"


def _utc_text(moment: datetime) -> str:
    """Sortable text: every stored time is UTC, so string order is time order."""
    return moment.astimezone(UTC).isoformat()


class DynamoDbInventory:
    """The Inventory protocol on one DynamoDB table, through the low-level client."""

    def __init__(self, table_name: str, client: DynamoDBClient, *, page_size: int | None = None) -> None:
        """`page_size` caps the items per query/scan page (DynamoDB's Limit); by default a page is up to 1 MB."""
        self._table = table_name
        self._client = client
        self._pagination = {"PageSize": page_size} if page_size else {}

    @property
    def table_name(self) -> str:
        return self._table

    # --- bindings ----------------------------------------------------------------------------------

    def bind(self, binding: WorkloadBinding) -> None:
        """Record the binding, replacing one seen earlier. Idempotent: the same binding twice is one item."""
        seen_at = _utc_text(binding.seen_at)
        item = {
            "pk": cloud_pk(binding.cloud_id),
            "sk": BINDING_SK,
            "record_type": "binding",
            "gsi1pk": workload_pk(binding.workload_id),
            "gsi1sk": cloud_pk(binding.cloud_id),
            "workload_id": binding.workload_id,
            "kind": str(binding.kind),
            "account_id": binding.account_id,
            "region": binding.region,
            "seen_at": seen_at,
            "body": binding.model_dump_json(),
        }
        with aws_errors(f"inventory bind {binding.cloud_id}"):
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item={name: {"S": value} for name, value in item.items()},
                    ConditionExpression="attribute_not_exists(pk) OR seen_at <= :seen_at",
                    ExpressionAttributeValues={":seen_at": {"S": seen_at}},
                )
            except ClientError as error:
                if error_code(error) != _CONDITION_FAILED:
                    raise
                # A newer binding of this resource is already there: it wins.

    def workload_for(self, cloud_id: str) -> WorkloadBinding | None:
        with aws_errors(f"inventory lookup {cloud_id}"):
            answer = self._client.get_item(
                TableName=self._table,
                Key={"pk": {"S": cloud_pk(cloud_id)}, "sk": {"S": BINDING_SK}},
                ConsistentRead=True,
            )
        item = answer.get("Item")
        if item is None:
            return None
        return WorkloadBinding.model_validate_json(item["body"]["S"])

    def bindings(self) -> list[WorkloadBinding]:
        """Every binding, read from the sparse workload index (credential items are not in it)."""
        found = [
            WorkloadBinding.model_validate_json(item["body"]["S"])
            for item in self._paginate("scan", "inventory list bindings", IndexName=WORKLOAD_INDEX)
        ]
        return sorted(found, key=lambda binding: (binding.workload_id, binding.cloud_id))

    def resources_of(self, workload_id: str) -> list[WorkloadBinding]:
        """The cloud resources bound to one workload (eventually consistent: it reads the index)."""
        items = self._paginate(
            "query",
            f"inventory resources of {workload_id}",
            IndexName=WORKLOAD_INDEX,
            KeyConditionExpression="gsi1pk = :workload",
            ExpressionAttributeValues={":workload": {"S": workload_pk(workload_id)}},
        )
        return [WorkloadBinding.model_validate_json(item["body"]["S"]) for item in items]

    # --- credentials -------------------------------------------------------------------------------

    def record_credentials(self, workload_id: str, refs: Sequence[CredentialRef]) -> None:
        """Write each reference not yet recorded for the workload, once. Only the reference JSON is stored."""
        self.record_new_credentials(workload_id, refs)

    def record_new_credentials(self, workload_id: str, refs: Sequence[CredentialRef]) -> list[CredentialRef]:
        """Like `record_credentials`, and says which references were new to this workload. The new ones are written
        as conditional puts, 100 a call (rescind.aws.conditional_puts): one recorded meanwhile by another writer is
        left as it is, and is not new."""
        from rescind.aws.conditional_puts import put_each_once

        already = {item["sk"]["S"] for item in self._credential_items(workload_id)}
        first_seen = _utc_text(utc_now())
        new: dict[str, CredentialRef] = {}
        for ref in refs:
            sort_key = credential_sk(ref)
            if sort_key not in already:
                new.setdefault(sort_key, ref)
        items = [
            {
                "pk": workload_pk(workload_id),
                "sk": sort_key,
                "record_type": "credential",
                "workload_id": workload_id,
                "kind": str(ref.kind),
                "first_seen_at": first_seen,
                "body": ref.model_dump_json(),
            }
            for sort_key, ref in new.items()
        ]
        written = put_each_once(self._client, self._table, items, what=f"inventory record credentials of {workload_id}")
        return [ref for ref, was_written in zip(new.values(), written, strict=True) if was_written]

    def credentials_of(self, workload_id: str) -> list[CredentialRef]:
        return [credential_ref_adapter.validate_json(item["body"]["S"]) for item in self._credential_items(workload_id)]

    # --- internals ---------------------------------------------------------------------------------

    def _credential_items(self, workload_id: str) -> list[dict[str, Any]]:
        return list(
            self._paginate(
                "query",
                f"inventory credentials of {workload_id}",
                KeyConditionExpression="pk = :workload AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={
                    ":workload": {"S": workload_pk(workload_id)},
                    ":prefix": {"S": CREDENTIAL_PREFIX},
                },
                ConsistentRead=True,
            )
        )

    def _paginate(self, operation: str, what: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        paginator: Any = self._client.get_paginator(operation)  # type: ignore[call-overload]
        with aws_errors(what):
            for page in paginator.paginate(TableName=self._table, PaginationConfig=self._pagination, **kwargs):
                yield from page.get("Items", [])
