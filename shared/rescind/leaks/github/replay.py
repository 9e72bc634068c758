"""Replay protection in the ledger: a delivery, and its signed body, claimed once it was forwarded.

The delivery id header is not signed, so a captured body resent under a fresh id is caught by its SHA-256. The
items are conditional puts on the append-only ledger (never an update or a delete) and name the alert by
reference only.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rescind.aws.errors import aws_errors, error_code
from rescind.leaks.github.wire import GitHubAlertNotice

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DELIVERY_PK_PREFIX = "GITHUB_DELIVERY#"
BODY_PK_PREFIX = "GITHUB_BODY#"
DELIVERY_SK = "#"


def _delivery_key(delivery_id: str) -> dict[str, Any]:
    # GUIDs compare without case: "ABC…" and "abc…" are one delivery.
    return {"pk": {"S": f"{DELIVERY_PK_PREFIX}{delivery_id.lower()}"}, "sk": {"S": DELIVERY_SK}}


def _body_key(body_digest: str) -> dict[str, Any]:
    return {"pk": {"S": f"{BODY_PK_PREFIX}{body_digest}"}, "sk": {"S": DELIVERY_SK}}


def signed_body_digest(body: bytes) -> str:
    """What the signature covers, as a replay key: X-GitHub-Delivery is not signed, so a captured body sent again
    under a fresh delivery id is still the same delivery."""
    return hashlib.sha256(body).hexdigest()


def delivery_already_claimed(
    dynamodb: DynamoDBClient, table_name: str, delivery_id: str, *, body_digest: str | None = None
) -> bool:
    """Whether this delivery, or this signed body under any delivery id, was forwarded before (strongly
    consistent reads of their ledger items; the body is read only when the id is new)."""
    keys = [_delivery_key(delivery_id)] + ([_body_key(body_digest)] if body_digest else [])
    for key in keys:
        with aws_errors("dynamodb:GetItem"):
            answer = dynamodb.get_item(TableName=table_name, Key=key, ConsistentRead=True, ProjectionExpression="pk")
        if "Item" in answer:
            return True
    return False


def claim_delivery(
    dynamodb: DynamoDBClient,
    table_name: str,
    delivery_id: str,
    now: datetime,
    *,
    notice: GitHubAlertNotice | None = None,
    body_digest: str | None = None,
) -> bool:
    """Record the delivery (and its signed body) in the append-only ledger; False when either was recorded.

    Conditional puts (attribute_not_exists(pk)), never an update or a delete. The items name the alert by
    reference only.
    """
    item: dict[str, Any] = {"record_type": {"S": "github_delivery"}, "received_at": {"S": now.isoformat()}}
    if notice is not None:
        item["repository"] = {"S": notice.repository}
        item["alert_number"] = {"N": str(notice.alert_number)}
        item["action"] = {"S": notice.action}
        item["secret_type"] = {"S": notice.secret_type}
    keys = [_delivery_key(delivery_id)] + ([_body_key(body_digest)] if body_digest else [])
    return all([_put_once(dynamodb, table_name, {**key, **item}) for key in keys])  # both put, whatever the first


def _put_once(dynamodb: DynamoDBClient, table_name: str, item: dict[str, Any]) -> bool:
    from botocore.exceptions import ClientError

    with aws_errors("dynamodb:PutItem"):
        try:
            dynamodb.put_item(TableName=table_name, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
    return True
