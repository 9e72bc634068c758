"""The Inventory contract, run against both implementations: DynamoDbInventory (on moto, the table as
template.yaml defines it) and the in-memory double other tests use (tests/doubles.py). A difference between
the two fails here, so a test that passes on the double says something about the real one.

What the contract leaves open (the order of `credentials_of`) is compared as a set.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import boto3
import pytest

from rescind.inventory import CloudResourceKind, DynamoDbInventory, WorkloadBinding
from rescind.inventory.base import Inventory
from rescind.models import (
    AppRoleSecretIdRef,
    CredentialRef,
    IamAccessKeyRef,
    KvSecretRef,
    PkiCertificateRef,
    VaultEntityRef,
    VaultTokenRef,
)
from rescind_local import create_table_from_template, local_aws
from tests.doubles import InMemoryInventory

SPIFFE = "spiffe://test.rescind/ns/payments/sa/api"
OTHER_SPIFFE = "spiffe://test.rescind/ns/billing/sa/worker"
INSTANCE = "i-0abc1234def567890"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:api"
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

TOKEN = VaultTokenRef(accessor="CaTti28wsXOQA02COE2ygP2B")
SECRET_ID = AppRoleSecretIdRef(role_name="payments", accessor="0c1b2f9e-1111-2222-3333-444455556666")
CERT = PkiCertificateRef(serial="1F:0A:33:44")
ENTITY = VaultEntityRef(entity_id="0c1b2f9e-aaaa-bbbb-cccc-ddddeeeeffff")
KEY = IamAccessKeyRef(account_id="123456789012", user_name="deployer", access_key_id="AKIA" + "A" * 16)
KV = KvSecretRef(path="apps/payments/database")


@pytest.fixture(params=["dynamodb", "in-memory"])
def inventory(request: pytest.FixtureRequest) -> Iterator[Inventory]:
    if request.param == "in-memory":
        yield InMemoryInventory()
        return
    with local_aws():
        dynamodb = boto3.client("dynamodb")
        create_table_from_template(dynamodb, "InventoryTable", "rescind-inventory-contract")
        yield DynamoDbInventory("rescind-inventory-contract", dynamodb)


def binding(
    cloud_id: str = INSTANCE,
    workload_id: str = SPIFFE,
    seen_at: datetime = T0,
    kind: CloudResourceKind = CloudResourceKind.EC2_INSTANCE,
) -> WorkloadBinding:
    return WorkloadBinding(
        cloud_id=cloud_id,
        kind=kind,
        workload_id=workload_id,
        account_id="123456789012",
        region="us-east-1",
        seen_at=seen_at,
    )


def keys(refs: list[CredentialRef]) -> set[str]:
    return {ref.key for ref in refs}


def test_an_unknown_cloud_id_has_no_workload_and_an_empty_inventory_lists_nothing(inventory: Inventory) -> None:
    assert inventory.workload_for("i-00000000000000000") is None
    assert inventory.bindings() == []
    assert inventory.resources_of(SPIFFE) == []
    assert inventory.credentials_of(SPIFFE) == []


def test_a_binding_is_found_by_cloud_id_as_it_was_written(inventory: Inventory) -> None:
    written = binding(FUNCTION_ARN, kind=CloudResourceKind.LAMBDA_FUNCTION)
    inventory.bind(written)

    assert inventory.workload_for(FUNCTION_ARN) == written
    assert inventory.bindings() == [written]
    assert inventory.resources_of(SPIFFE) == [written]
    assert inventory.resources_of(OTHER_SPIFFE) == []


def test_binding_twice_is_one_binding_refreshed(inventory: Inventory) -> None:
    inventory.bind(binding())
    inventory.bind(binding(seen_at=T0 + timedelta(minutes=5)))

    found = inventory.workload_for(INSTANCE)
    assert found == binding(seen_at=T0 + timedelta(minutes=5))
    assert inventory.bindings() == [found]


def test_a_newer_binding_wins_and_a_late_older_one_does_not_undo_it(inventory: Inventory) -> None:
    # Given a resource bound to one workload, then (recreated) to another, seen later
    inventory.bind(binding(FUNCTION_ARN, SPIFFE, T0))
    inventory.bind(binding(FUNCTION_ARN, OTHER_SPIFFE, T0 + timedelta(hours=1)))

    # When a sweep that started before finishes late with the old view
    inventory.bind(binding(FUNCTION_ARN, SPIFFE, T0 + timedelta(minutes=30)))

    # Then the newest binding is kept, and "resources of" follows it
    found = inventory.workload_for(FUNCTION_ARN)
    assert found is not None
    assert found.workload_id == OTHER_SPIFFE
    assert inventory.resources_of(SPIFFE) == []
    assert inventory.resources_of(OTHER_SPIFFE) == [found]


def test_a_binding_seen_at_the_same_moment_replaces_the_one_there(inventory: Inventory) -> None:
    inventory.bind(binding(FUNCTION_ARN, SPIFFE, T0))
    inventory.bind(binding(FUNCTION_ARN, OTHER_SPIFFE, T0))

    found = inventory.workload_for(FUNCTION_ARN)
    assert found is not None
    assert found.workload_id == OTHER_SPIFFE


def test_times_in_other_zones_are_compared_as_moments(inventory: Inventory) -> None:
    # Given a binding seen at 12:00 UTC, and an older one written with a +02:00 offset (11:30 UTC)
    inventory.bind(binding(FUNCTION_ARN, OTHER_SPIFFE, T0))
    inventory.bind(binding(FUNCTION_ARN, SPIFFE, datetime(2026, 11, 24, 13, 30, tzinfo=timezone(timedelta(hours=2)))))

    # Then the older moment loses, whatever its wall-clock reading
    found = inventory.workload_for(FUNCTION_ARN)
    assert found is not None
    assert found.workload_id == OTHER_SPIFFE


def test_bindings_are_listed_by_workload_then_cloud_id(inventory: Inventory) -> None:
    written = [
        binding("i-0000000000000000c", SPIFFE),
        binding("i-0000000000000000a", OTHER_SPIFFE),
        binding("i-0000000000000000b", SPIFFE),
        binding("i-0000000000000000d", OTHER_SPIFFE),
    ]
    for each in written:
        inventory.bind(each)

    expected = sorted(written, key=lambda each: (each.workload_id, each.cloud_id))
    assert inventory.bindings() == expected
    assert inventory.resources_of(SPIFFE) == [each for each in expected if each.workload_id == SPIFFE]
    assert inventory.resources_of(OTHER_SPIFFE) == [each for each in expected if each.workload_id == OTHER_SPIFFE]


def test_credentials_are_recorded_once_each_and_read_back_equal(inventory: Inventory) -> None:
    # Given a workload seen holding six credentials, one of them listed twice
    refs: list[CredentialRef] = [TOKEN, SECRET_ID, CERT, ENTITY, KEY, TOKEN]

    # When they are recorded, then recorded again with one more
    inventory.record_credentials(SPIFFE, refs)
    inventory.record_credentials(SPIFFE, [*refs, KV])

    # Then each is held once, read back equal to what was recorded (the serial as the model normalised it)
    held = inventory.credentials_of(SPIFFE)
    assert len(held) == 6
    assert keys(held) == keys([TOKEN, SECRET_ID, CERT, ENTITY, KEY, KV])
    assert CERT in held
    assert KEY in held
    # and another workload's credentials are its own
    assert inventory.credentials_of(OTHER_SPIFFE) == []


def test_recording_nothing_records_nothing(inventory: Inventory) -> None:
    inventory.record_credentials(SPIFFE, [])
    assert inventory.credentials_of(SPIFFE) == []


def test_a_reference_too_long_for_a_sort_key_is_held_once_and_whole(inventory: Inventory) -> None:
    long_ref = KvSecretRef(path="/".join(["segment-" + "x" * 90] * 12))

    inventory.record_credentials(SPIFFE, [long_ref])
    inventory.record_credentials(SPIFFE, [long_ref])

    assert inventory.credentials_of(SPIFFE) == [long_ref]


def test_bindings_and_credentials_do_not_mix(inventory: Inventory) -> None:
    inventory.bind(binding())
    inventory.record_credentials(SPIFFE, [TOKEN])

    assert [each.cloud_id for each in inventory.bindings()] == [INSTANCE]
    assert inventory.credentials_of(SPIFFE) == [TOKEN]
    assert inventory.workload_for(SPIFFE) is None  # a workload id is not a cloud id


def test_a_binding_outlives_nothing_but_a_newer_binding(inventory: Inventory) -> None:
    # Credentials recorded later, and other resources bound, leave a binding as it was
    inventory.bind(binding())
    inventory.record_credentials(SPIFFE, [TOKEN, KEY])
    inventory.bind(binding("i-0ffffffffffffffff", OTHER_SPIFFE, T0 + timedelta(days=1)))

    assert inventory.workload_for(INSTANCE) == binding()
