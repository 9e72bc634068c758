"""DynamoDbInventory on moto's DynamoDB, with the table as template.yaml defines it (InventoryTable): what is
particular to the table (items, sort keys, pages, a missing table). The Inventory contract itself, which the
in-memory double must keep too, is in test_contract.py."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest

from rescind.exceptions import ActionFailed
from rescind.inventory import CloudResourceKind, DynamoDbInventory
from rescind.inventory.dynamodb import credential_sk
from rescind.models import CredentialRef, KvSecretRef, VaultTokenRef
from rescind_local import create_table_from_template
from tests.conftest import BackendCalls
from tests.integration.inventory.test_contract import (
    CERT,
    ENTITY,
    INSTANCE,
    KEY,
    OTHER_SPIFFE,
    SECRET_ID,
    SPIFFE,
    T0,
    TOKEN,
)
from tests.integration.inventory.test_contract import binding as _binding

TABLE = "rescind-inventory"


@pytest.fixture
def client(aws: None) -> object:
    dynamodb = boto3.client("dynamodb")
    create_table_from_template(dynamodb, "InventoryTable", TABLE)
    return dynamodb


@pytest.fixture
def inventory(client: object) -> DynamoDbInventory:
    return DynamoDbInventory(TABLE, client)  # type: ignore[arg-type]


def _item_count(client: object) -> int:
    return sum(page["Count"] for page in client.get_paginator("scan").paginate(TableName=TABLE))  # type: ignore[attr-defined]


def test_a_binding_is_found_by_cloud_id_and_binding_twice_is_one_item(
    inventory: DynamoDbInventory, client: object
) -> None:
    # Given a bound instance
    inventory.bind(_binding())

    # When it is bound again with the same workload
    inventory.bind(_binding(seen_at=T0 + timedelta(minutes=5)))

    # Then one item holds it, refreshed, and the lookup returns it
    assert _item_count(client) == 1
    found = inventory.workload_for(INSTANCE)
    assert found is not None
    assert found.workload_id == SPIFFE
    assert found.kind is CloudResourceKind.EC2_INSTANCE
    assert found.seen_at == T0 + timedelta(minutes=5)
    assert inventory.bindings() == [found]
    assert inventory.resources_of(SPIFFE) == [found]


def test_credentials_are_recorded_once_each_and_read_back_as_references(
    inventory: DynamoDbInventory, client: object
) -> None:
    # Given a workload seen holding five credentials, one of them listed twice
    refs: list[CredentialRef] = [TOKEN, SECRET_ID, CERT, ENTITY, KEY, TOKEN]

    # When they are recorded, and recorded again with one more
    added_first = inventory.record_new_credentials(SPIFFE, refs)
    kv = KvSecretRef(path="apps/payments/database")
    added_second = inventory.record_new_credentials(SPIFFE, [*refs, kv])
    inventory.record_credentials(SPIFFE, [*refs, kv])

    # Then each reference is one item, and only the new one was added the second time
    assert added_first == [TOKEN, SECRET_ID, CERT, ENTITY, KEY]
    assert added_second == [kv]
    assert sorted(ref.key for ref in inventory.credentials_of(SPIFFE)) == sorted(
        ref.key for ref in [TOKEN, SECRET_ID, CERT, ENTITY, KEY, kv]
    )
    assert _item_count(client) == 6
    # the serial was normalised by the model and is read back as it
    assert CERT in inventory.credentials_of(SPIFFE)
    # another workload's credentials are its own
    assert inventory.credentials_of(OTHER_SPIFFE) == []


def test_many_new_credentials_are_written_a_hundred_to_a_call_each_once(
    inventory: DynamoDbInventory, client: object, backend_calls: BackendCalls
) -> None:
    # Given a workload first seen holding 250 tokens, ten of them recorded before
    tokens = [VaultTokenRef(accessor=f"acc{index:021d}") for index in range(250)]
    inventory.record_credentials(SPIFFE, tokens[:10])
    backend_calls.aws.clear()

    # When all of them are recorded
    added = inventory.record_new_credentials(SPIFFE, tokens)

    # Then the 240 new ones are written in three transactions of conditional puts, none one by one, in their order
    assert added == tokens[10:]
    assert backend_calls.aws == ["dynamodb:Query", *["dynamodb:TransactWriteItems"] * 3]
    assert _item_count(client) == 250
    assert sorted(ref.key for ref in inventory.credentials_of(SPIFFE)) == sorted(ref.key for ref in tokens)


def test_a_reference_too_long_for_a_sort_key_is_stored_under_its_hash(inventory: DynamoDbInventory) -> None:
    # Given a KV path longer than a DynamoDB sort key allows
    long_path = "/".join(["segment-" + "x" * 90] * 12)
    ref = KvSecretRef(path=long_path)
    assert credential_sk(ref).startswith("CRED#sha256:")

    # When it is recorded twice
    inventory.record_credentials(SPIFFE, [ref])
    inventory.record_credentials(SPIFFE, [ref])

    # Then it is one item and reads back whole
    assert inventory.credentials_of(SPIFFE) == [ref]


def test_every_read_is_paginated(client: object) -> None:
    # Given an inventory that reads two items a page, and more items than that
    inventory = DynamoDbInventory(TABLE, client, page_size=2)  # type: ignore[arg-type]
    for number in range(7):
        inventory.bind(_binding(f"i-{number:017x}", SPIFFE if number % 2 else OTHER_SPIFFE))
    tokens = [VaultTokenRef(accessor=f"{number:024d}") for number in range(5)]
    inventory.record_credentials(SPIFFE, tokens)

    # Then every listing returns everything, not the first page
    assert len(inventory.bindings()) == 7
    assert len(inventory.resources_of(SPIFFE)) == 3
    assert len(inventory.resources_of(OTHER_SPIFFE)) == 4
    assert sorted(ref.key for ref in inventory.credentials_of(SPIFFE)) == sorted(ref.key for ref in tokens)


def test_a_missing_table_is_a_typed_error(aws: None) -> None:
    inventory = DynamoDbInventory("no-such-table", boto3.client("dynamodb"))
    with pytest.raises(ActionFailed, match="inventory"):
        inventory.workload_for(INSTANCE)
    with pytest.raises(ActionFailed, match="inventory"):
        inventory.bind(_binding())
