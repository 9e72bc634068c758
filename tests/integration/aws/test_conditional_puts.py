"""Items written once each (rescind.aws.conditional_puts) on moto's DynamoDB, the ledger's table: one item is one
conditional put, many are transactions; an item already there is never overwritten."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from rescind.aws.conditional_puts import put_each_once
from rescind_local import create_table_from_template

pytestmark = pytest.mark.integration


@pytest.fixture
def calls(aws: None) -> list[str]:
    """The DynamoDB operations the `client` fixture's client makes."""
    return []


@pytest.fixture
def client(calls: list[str]) -> Any:
    made = boto3.client("dynamodb")
    create_table_from_template(made, "LedgerTable", "ledger")
    made.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    return made


def _item(sk: str, body: str = "first") -> dict[str, str]:
    return {"pk": "INCIDENT#inc-1", "sk": sk, "record_type": "attempt", "body": body}


def _body(client: Any, sk: str) -> str:
    found = client.get_item(
        TableName="ledger", Key={"pk": {"S": "INCIDENT#inc-1"}, "sk": {"S": sk}}, ConsistentRead=True
    )
    return str(found["Item"]["body"]["S"])


def test_one_item_is_one_conditional_put_written_once(client: Any, calls: list[str]) -> None:
    # When one item is written, then written again with another body (a retried write)
    assert put_each_once(client, "ledger", [_item("B#1")], what="test write") == [True]
    assert put_each_once(client, "ledger", [_item("B#1", "second")], what="test write") == [False]

    # Then each was one PutItem, and the first body stands
    assert calls == ["PutItem", "PutItem"]
    assert _body(client, "B#1") == "first"


def test_many_items_are_one_transaction_and_those_already_there_are_left(client: Any, calls: list[str]) -> None:
    # Given one item written before
    assert put_each_once(client, "ledger", [_item("B#2")], what="test write") == [True]
    calls.clear()

    # When three are written, one of them that one and one named twice
    items = [_item("B#1"), _item("B#2", "second"), _item("B#3"), _item("B#1", "again")]
    written = put_each_once(client, "ledger", items, what="test write")

    # Then the new ones are written in transactions, the one there before is left as it was
    assert written == [True, False, True, False]
    assert set(calls) == {"TransactWriteItems"}
    assert [_body(client, sk) for sk in ("B#1", "B#2", "B#3")] == ["first", "first", "first"]
