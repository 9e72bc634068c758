"""The local stack's Query patch (rescind_local.dynamodb_queries) answers exactly as moto does unpatched, and reads
only the partition asked for: the same items, order, pages, conditions, filters and projections."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

import boto3
import pytest

from rescind_local.dynamodb_queries import query_patches
from tests.integration.local_stack import moto_patched_by

pytestmark = pytest.mark.integration

PARTITIONS = 20
ITEMS_PER_PARTITION = 20

QUERIES: dict[str, dict[str, Any]] = {
    "a whole partition": {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": "P#7"}}},
    "newest first, in pages of 4": {
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": "P#3"}},
        "ScanIndexForward": False,
        "Limit": 4,
    },
    "a sort-key prefix": {
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": {":pk": {"S": "P#12"}, ":prefix": {"S": "S#01"}},
    },
    "a filter and a projection": {
        "KeyConditionExpression": "pk = :pk",
        "FilterExpression": "odd = :yes",
        "ProjectionExpression": "sk, odd",
        "ExpressionAttributeValues": {":pk": {"S": "P#15"}, ":yes": {"BOOL": True}},
    },
    "an empty partition": {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": "none"}}},
    "a secondary index (left as moto runs it)": {
        "IndexName": "by-odd",
        "KeyConditionExpression": "odd_key = :odd",
        "ExpressionAttributeValues": {":odd": {"S": "yes"}},
    },
}


def _answers(patched: bool) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """Every query's items across all its pages, and the size of the biggest item list moto's Query went through."""
    with moto_patched_by(query_patches() if patched else ()) as stack:
        from moto.dynamodb.models.table import Table

        widest = 0
        all_items: Callable[[Any], list[Any]] = Table.all_items

        def measured(self: Any) -> list[Any]:
            nonlocal widest
            items = all_items(self)
            widest = max(widest, len(items))
            return items

        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
                {"AttributeName": "odd_key", "AttributeType": "S"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by-odd",
                    "KeySchema": [{"AttributeName": "odd_key", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for partition in range(PARTITIONS):
            for number in range(ITEMS_PER_PARTITION):
                item = {"pk": {"S": f"P#{partition}"}, "sk": {"S": f"S#{number:03d}"}, "odd": {"BOOL": number % 2 == 1}}
                if number % 2 and partition < 2:
                    item["odd_key"] = {"S": "yes"}
                client.put_item(TableName="t", Item=item)

        stack.enter_context(mock.patch.object(Table, "all_items", measured))
        answers: dict[str, list[dict[str, Any]]] = {}
        for name, query in QUERIES.items():
            if "IndexName" in query:
                continue
            answers[name] = _all_pages(client, query)
        base_widest = widest
        for name, query in QUERIES.items():
            if "IndexName" in query:
                answers[name] = _all_pages(client, query)
        return answers, base_widest


def _all_pages(client: Any, query: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    request = {"TableName": "t", **query}
    while True:
        page = client.query(**request)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_a_patched_query_answers_as_moto_does_and_reads_only_the_partition() -> None:
    # Given the same table, queried by moto as it is and by the local stack's patch
    unpatched, unpatched_widest = _answers(patched=False)
    patched, patched_widest = _answers(patched=True)

    # Then every query, paged to its end, returns the same items in the same order
    assert patched == unpatched
    assert len(patched["a whole partition"]) == ITEMS_PER_PARTITION
    assert len(patched["newest first, in pages of 4"]) == ITEMS_PER_PARTITION
    assert patched["newest first, in pages of 4"][0]["sk"] == {"S": f"S#{ITEMS_PER_PARTITION - 1:03d}"}
    assert patched["an empty partition"] == []
    assert len(patched["a secondary index (left as moto runs it)"]) == 2 * (ITEMS_PER_PARTITION // 2)

    # And the patched base-table queries went through one partition's items, moto's through the whole table
    assert unpatched_widest == PARTITIONS * ITEMS_PER_PARTITION
    assert patched_widest == ITEMS_PER_PARTITION
