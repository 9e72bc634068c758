"""DynamoDbCheckpointStore on moto, on a table built from template.yaml's SweepStateTable definition."""

from __future__ import annotations

import boto3
import pytest

from rescind.schedules.dynamodb import DynamoDbCheckpointStore, checkpoint_key
from rescind.schedules.types import SweepName
from rescind_local import create_table_from_template

TABLE = "rescind-SweepStateTable"


@pytest.fixture
def store(aws: None) -> DynamoDbCheckpointStore:
    client = boto3.client("dynamodb")
    create_table_from_template(client, "SweepStateTable", TABLE)
    return DynamoDbCheckpointStore(TABLE, client)


def test_nothing_saved_means_start_from_the_beginning(store: DynamoDbCheckpointStore) -> None:
    assert store.load(SweepName.ROTATION_BY_AGE) is None


def test_save_overwrites_and_each_sweep_has_its_own_checkpoint(store: DynamoDbCheckpointStore) -> None:
    store.save(SweepName.ROTATION_BY_AGE, "kv:secret/apps/a")
    store.save(SweepName.ROTATION_BY_AGE, "kv:secret/apps/b")  # not the ledger: a checkpoint moves on
    store.save(SweepName.TTL_CEILINGS, "role:pki/roles/web")

    assert store.load(SweepName.ROTATION_BY_AGE) == "kv:secret/apps/b"
    assert store.load(SweepName.TTL_CEILINGS) == "role:pki/roles/web"
    assert store.load(SweepName.ORPHANS) is None


def test_clear_starts_the_next_run_from_the_beginning_and_is_idempotent(store: DynamoDbCheckpointStore) -> None:
    store.save(SweepName.PKI_HYGIENE, "pki:pki/1a:2b")

    store.clear(SweepName.PKI_HYGIENE)
    store.clear(SweepName.PKI_HYGIENE)

    assert store.load(SweepName.PKI_HYGIENE) is None
    # Cleared by a put (the functions are granted no DeleteItem): the item stays, without a cursor
    item = boto3.client("dynamodb").get_item(TableName=TABLE, Key=checkpoint_key(SweepName.PKI_HYGIENE))["Item"]
    assert "cursor" not in item
    assert item["pk"] == {"S": "SWEEP#pki_hygiene"}
    assert item["sk"] == {"S": "CHECKPOINT"}


@pytest.mark.parametrize("cursor", ["", "x" * 2049])
def test_an_empty_or_oversized_cursor_is_refused_and_nothing_is_written(
    store: DynamoDbCheckpointStore, cursor: str
) -> None:
    store.save(SweepName.ORPHANS, "spiffe://example.org/a")

    with pytest.raises(ValueError, match="cursor"):
        store.save(SweepName.ORPHANS, cursor)

    assert store.load(SweepName.ORPHANS) == "spiffe://example.org/a"
