"""Items written once each, many at a time: conditional puts (`attribute_not_exists(pk)`) in TransactWriteItems.

BatchWriteItem takes no condition, and a record written once must never be overwritten (a retried write is not a
second record). A transaction is all or nothing: when DynamoDB cancels it because some items were there already,
its reasons name them; those are not written (False) and the rest are put again. One item alone is one conditional
PutItem: the same answer, at half a transaction's write cost and without its coordination (a batch of one action,
the usual Revoke item of a leak).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rescind.aws.errors import aws_errors, error_code

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TRANSACTION_ITEMS = 100  # TransactWriteItems' limit


def put_each_once(client: DynamoDBClient, table: str, items: Sequence[Mapping[str, str]], *, what: str) -> list[bool]:
    """Each item (text attributes, keyed by `pk` and `sk`) written unless its key is there: for each, whether this
    call wrote it. An item whose key comes earlier in `items` is not written (False). Raises rescind's typed errors,
    naming `what`."""
    written: list[bool] = []
    for start in range(0, len(items), TRANSACTION_ITEMS):
        written.extend(_put_transaction(client, table, items[start : start + TRANSACTION_ITEMS], what))
    return written


def put_once(client: DynamoDBClient, table: str, item: Mapping[str, str], *, what: str) -> bool:
    """One item written unless its key is there: whether this call wrote it."""
    from botocore.exceptions import ClientError

    with aws_errors(what):
        try:
            client.put_item(
                TableName=table,
                Item={name: {"S": value} for name, value in item.items()},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
    return True


def _put_transaction(client: DynamoDBClient, table: str, items: Sequence[Mapping[str, str]], what: str) -> list[bool]:
    from botocore.exceptions import ClientError

    if len(items) == 1:
        return [put_once(client, table, items[0], what=what)]
    written: dict[int, bool] = {}
    first_of_key: dict[tuple[str, str], int] = {}
    for index, item in enumerate(items):
        if first_of_key.setdefault((item["pk"], item["sk"]), index) != index:
            written[index] = False  # the same key twice in one call: one transaction may not name a key twice
    pending = [index for index in range(len(items)) if index not in written]
    while pending:
        puts: list[Any] = [
            {
                "Put": {
                    "TableName": table,
                    "Item": {name: {"S": value} for name, value in items[index].items()},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            for index in pending
        ]
        with aws_errors(what):
            try:
                client.transact_write_items(TransactItems=puts)
            except ClientError as error:
                reasons = error.response.get("CancellationReasons") or []
                recorded = [
                    index
                    for index, reason in zip(pending, reasons, strict=False)
                    if reason.get("Code") == "ConditionalCheckFailed"
                ]
                if error_code(error) != "TransactionCanceledException" or not recorded:
                    raise  # a conflict or throttling cancels it too: a typed error for the caller's retry
                written.update(dict.fromkeys(recorded, False))
                pending = [index for index in pending if index not in written]
                continue
        written.update(dict.fromkeys(pending, True))
        pending = []
    return [written[index] for index in range(len(items))]
