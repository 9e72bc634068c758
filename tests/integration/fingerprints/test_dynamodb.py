"""The DynamoDB fingerprint index on moto, with the table template.yaml defines: layout, idempotent puts, lookup."""

from __future__ import annotations

import boto3
import pytest

from rescind.exceptions import InvalidInput
from rescind.fingerprints import FingerprintEntry, FingerprintHit, fingerprint_of_value
from rescind.fingerprints.dynamodb import DynamoDbFingerprintIndex
from rescind_local.aws import LOCAL_REGION
from tests.integration.fingerprints.conftest import IndexSetup

KEY = b"k" * 32


def entry(value: str, path: str, version: int, field: str = "password") -> FingerprintEntry:
    hit = FingerprintHit(mount="secret", path=path, version=version, field=field)
    return FingerprintEntry(fingerprint=fingerprint_of_value(KEY, value), hit=hit)


def test_put_then_lookup_returns_every_place_the_fingerprint_was_seen(fingerprints: IndexSetup) -> None:
    index = fingerprints.index
    written = index.put(
        [entry("shared-value-1", "a", 1), entry("shared-value-1", "b/c", 4), entry("other-value", "a", 2)]
    )

    assert written == 3
    hits = index.lookup(fingerprint_of_value(KEY, "shared-value-1"))
    assert sorted(hits, key=lambda hit: hit.path) == [
        FingerprintHit(mount="secret", path="a", version=1, field="password"),
        FingerprintHit(mount="secret", path="b/c", version=4, field="password"),
    ]
    assert index.lookup(fingerprint_of_value(KEY, "never-indexed")) == []


def test_puts_are_idempotent_and_items_follow_the_layout(fingerprints: IndexSetup) -> None:
    index = fingerprints.index
    value_entry = entry("shared-value-1", "app/db", 7, field="pass|word")

    # When the same entry is put twice (and twice within one batch)
    assert index.put([value_entry, value_entry]) == 1
    assert index.put([value_entry]) == 1

    # Then one item holds it, keyed as documented, with no value in it
    items = boto3.client("dynamodb", region_name=LOCAL_REGION).scan(TableName=fingerprints.table_name)["Items"]
    assert len(items) == 1
    [item] = items
    assert item["pk"]["S"] == f"FP#{value_entry.fingerprint}"
    assert item["sk"]["S"] == "secret|app/db|7|pass|word"
    assert (item["mount"]["S"], item["path"]["S"], item["version"]["N"], item["field"]["S"]) == (
        "secret",
        "app/db",
        "7",
        "pass|word",
    )
    assert "indexed_at" in item
    assert "shared-value-1" not in str(items)
    assert index.lookup(value_entry.fingerprint) == [value_entry.hit]


def test_many_entries_are_written_in_batches(fingerprints: IndexSetup) -> None:
    entries = [entry(f"value-number-{n:04d}", f"bulk/{n}", 1) for n in range(60)]
    assert fingerprints.index.put(entries) == 60
    assert fingerprints.index.lookup(entries[59].fingerprint) == [entries[59].hit]


@pytest.mark.parametrize("bad", ["", "FP#" + "a" * 64, "A" * 64, "a" * 63])
def test_a_malformed_fingerprint_is_refused_before_any_call(fingerprints: IndexSetup, bad: str) -> None:
    with pytest.raises(InvalidInput):
        fingerprints.index.lookup(bad)


def test_a_missing_table_is_a_typed_error(aws: None) -> None:
    from rescind.exceptions import ActionFailed

    index = DynamoDbFingerprintIndex("no-such-table", boto3.client("dynamodb", region_name=LOCAL_REGION))
    with pytest.raises(ActionFailed):
        index.put([entry("shared-value-1", "a", 1)])
