"""The local stack's TransactWriteItems patch (rescind_local.dynamodb_transactions) answers and rolls back exactly as
moto does unpatched, without copying the tables it names: the same writes, the same cancellation reasons, the same
items left after a cancelled transaction (one updated in place included). One difference, on DynamoDB's side: a
cancelled transaction leaves no stream record (none of its writes happened), where moto 5.2.5 keeps some."""

from __future__ import annotations

import copy
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.exceptions import ClientError

from rescind_local.dynamodb_transactions import transaction_patches
from tests.integration.local_stack import moto_patched_by

pytestmark = pytest.mark.integration

EXISTING = 200  # items in the table before the transactions


def _put(pk: str, sk: str, **extra: Any) -> dict[str, Any]:
    item = {"pk": {"S": pk}, "sk": {"S": sk}, **{name: {"S": value} for name, value in extra.items()}}
    return {"Put": {"TableName": "t", "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}


def _update(pk: str, sk: str, value: str) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": "t",
            "Key": {"pk": {"S": pk}, "sk": {"S": sk}},
            "UpdateExpression": "SET note = :value",
            "ExpressionAttributeValues": {":value": {"S": value}},
        }
    }


TRANSACTIONS: dict[str, list[dict[str, Any]]] = {
    "all written": [_put("P#new", "S#1"), _put("P#new", "S#2"), _update("P#1", "S#001", "changed")],
    "the last put's condition fails": [
        _put("P#cancel", "S#1"),
        _update("P#2", "S#002", "must not stay"),
        _put("P#3", "S#003"),  # exists: the condition fails
    ],
    "a put then a delete of an existing item, then a failing check": [
        _put("P#gone", "S#1"),
        {"Delete": {"TableName": "t", "Key": {"pk": {"S": "P#4"}, "sk": {"S": "S#004"}}}},
        {
            "ConditionCheck": {
                "TableName": "t",
                "Key": {"pk": {"S": "P#5"}, "sk": {"S": "S#005"}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
    ],
    "the same item twice": [_put("P#twice", "S#1"), _update("P#twice", "S#1", "again")],
    "an unknown table": [_put("P#orphan", "S#1"), {"Put": {"TableName": "missing", "Item": {"pk": {"S": "x"}}}}],
}


def _run(patched: bool) -> tuple[dict[str, Any], int]:
    """Each transaction's answer and the table and stream after it, and how many tables were deep-copied."""
    copies = 0
    with moto_patched_by(transaction_patches() if patched else ()) as stack:
        from moto.dynamodb import models

        real_copy = models.copy

        class CountingCopy:
            def deepcopy(self, value: Any, memo: Any = None) -> Any:
                nonlocal copies
                copied = real_copy.deepcopy(value, memo)
                copies += type(value).__name__ == "Table" and copied is not value
                return copied

        stack.enter_context(mock.patch.object(models, "copy", CountingCopy()))
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        for number in range(EXISTING):
            client.put_item(TableName="t", Item=_put(f"P#{number}", f"S#{number:03d}", note="before")["Put"]["Item"])
        table = models.dynamodb_backends["123456789012"]["us-east-1"].tables["t"]
        answers: dict[str, Any] = {}
        for name, transaction in TRANSACTIONS.items():
            try:
                client.transact_write_items(TransactItems=transaction)
                answer: Any = "written"
            except ClientError as error:
                reasons = error.response.get("CancellationReasons")
                answer = (error.response["Error"]["Code"], [reason.get("Code") for reason in reasons or []])
            items = sorted(
                (item["pk"]["S"], item["sk"]["S"], item.get("note", {}).get("S"))
                for item in client.scan(TableName="t")["Items"]
            )
            answers[name] = (answer, items, len(table.stream_shard.items))
        return copy.deepcopy(answers), copies


def test_a_patched_transaction_answers_and_rolls_back_as_moto_does_without_copying_a_table() -> None:
    # Given the same transactions, run by moto as it is and with the local stack's patch
    unpatched, unpatched_copies = _run(patched=False)
    patched, patched_copies = _run(patched=True)

    # Then each answers the same, and leaves the same items behind
    assert {name: entry[:2] for name, entry in patched.items()} == {
        name: entry[:2] for name, entry in unpatched.items()
    }
    assert patched["all written"][0] == "written"
    assert patched["the last put's condition fails"][0] == (
        "TransactionCanceledException",
        ["None", "None", "ConditionalCheckFailed"],
    )
    # a cancelled transaction leaves the item it updated as it was, and writes nothing else
    cancelled_items = patched["the last put's condition fails"][1]
    assert ("P#2", "S#002", "before") in cancelled_items
    assert not any(pk == "P#cancel" for pk, _, _ in cancelled_items)
    deleted_then_restored = patched["a put then a delete of an existing item, then a failing check"][1]
    assert ("P#4", "S#004", "before") in deleted_then_restored
    assert patched["the same item twice"][0][0] == "ValidationException"
    # and, as on DynamoDB, a cancelled transaction adds no stream record: the count moves only with "all written"
    assert [entry[2] for entry in patched.values()] == [EXISTING + 3] * len(patched)
    assert max(entry[2] for entry in unpatched.values()) > EXISTING + 3  # moto keeps some: the difference above

    # And moto copied the table for each transaction; the patch copied none
    assert unpatched_copies > 0
    assert patched_copies == 0
