"""Indexing KV v2 mounts of the real OpenBao into the fingerprint index on moto; the rotation hook."""

from __future__ import annotations

import logging

import boto3
import hvac
import pytest

from rescind.exceptions import ActionFailed, AwsThrottled, InvalidInput, UnsafePrefix
from rescind.fingerprints import IndexProgress, fingerprint_of_value
from rescind.fingerprints.dynamodb import DynamoDbFingerprintIndex
from rescind.fingerprints.indexing import index_kv_mount, kv_rotation_indexer, list_kv_secret_paths
from rescind.models import KvSecretRef
from rescind_local.aws import LOCAL_REGION
from tests.integration.fingerprints.conftest import IndexSetup


def write(vault: hvac.Client, mount: str, path: str, data: dict[str, object]) -> None:
    vault.secrets.kv.v2.create_or_update_secret(path, secret=data, mount_point=mount)


def item_count(setup: IndexSetup) -> int:
    return int(boto3.client("dynamodb", region_name=LOCAL_REGION).scan(TableName=setup.table_name)["Count"])


@pytest.fixture
def estate(vault: hvac.Client, kv_mount: str) -> str:
    """Four secrets in nested folders; db has three versions, of which 1 is destroyed and 2 soft-deleted."""
    write(vault, kv_mount, "app/db", {"password": "db-password-v1", "user": "svc"})
    write(vault, kv_mount, "app/db", {"password": "db-password-v2", "user": "svc"})
    write(vault, kv_mount, "app/db", {"password": "db-password-v3", "user": "svc"})
    vault.secrets.kv.v2.destroy_secret_versions("app/db", [1], mount_point=kv_mount)
    vault.secrets.kv.v2.delete_secret_versions("app/db", [2], mount_point=kv_mount)
    write(vault, kv_mount, "app/api", {"token": "api-token-0123456789", "ttl": 3600})
    write(vault, kv_mount, "team/x/deep/cfg", {"json": {"nested": ["a-long-enough"]}, "empty": ""})
    write(vault, kv_mount, "top", {"key": "top-level-secret"})
    return kv_mount


def test_a_whole_mount_is_indexed_live_versions_only_and_reindexing_changes_nothing(
    vault: hvac.Client, estate: str, fingerprints: IndexSetup
) -> None:
    progress: list[IndexProgress] = []

    # When the mount is indexed, twice
    first = index_kv_mount(vault, fingerprints.index, fingerprints.key, estate, on_progress=progress.append)
    items = item_count(fingerprints)
    second = index_kv_mount(vault, fingerprints.index, fingerprints.key, estate)

    # Then every secret was walked, the destroyed and deleted versions of db were skipped, short fields too
    assert first.mounts == (estate,)
    assert (first.secrets, first.versions, first.fingerprints) == (4, 4, 4)
    assert first.fields_skipped == 3  # user ("svc") on db v3, ttl (3600) on api, empty on cfg
    assert second == first
    assert item_count(fingerprints) == items == 4
    assert progress[-1] == IndexProgress(mount=estate, done=4, total=4)
    assert {step.item for step in progress} >= {"app/db", "app/api", "team/x/deep/cfg", "top"}

    key, index = fingerprints.key, fingerprints.index
    [hit] = index.lookup(fingerprint_of_value(key, "db-password-v3"))
    assert (hit.path, hit.version, hit.field) == ("app/db", 3, "password")
    assert index.lookup(fingerprint_of_value(key, "db-password-v1")) == []  # destroyed
    assert index.lookup(fingerprint_of_value(key, "db-password-v2")) == []  # soft-deleted
    assert index.lookup(fingerprint_of_value(key, '{"nested":["a-long-enough"]}'))[0].path == "team/x/deep/cfg"


def test_a_prefix_limits_the_walk_to_its_folder(vault: hvac.Client, estate: str, fingerprints: IndexSetup) -> None:
    report = index_kv_mount(vault, fingerprints.index, fingerprints.key, estate, prefix="app/")

    assert (report.secrets, report.versions) == (2, 2)
    assert list_kv_secret_paths(vault, estate, "team") == ["team/x/deep/cfg"]
    assert fingerprints.index.lookup(fingerprint_of_value(fingerprints.key, "top-level-secret")) == []


@pytest.mark.parametrize("prefix", ["/app", "app/../team", "..", "../other-mount"])
def test_an_unsafe_prefix_is_refused_before_anything_is_read_or_written(
    vault: hvac.Client, estate: str, fingerprints: IndexSetup, prefix: str
) -> None:
    with pytest.raises(UnsafePrefix):
        index_kv_mount(vault, fingerprints.index, fingerprints.key, estate, prefix=prefix)
    assert item_count(fingerprints) == 0


def test_a_bad_mount_or_a_missing_one_is_a_typed_error(vault: hvac.Client, fingerprints: IndexSetup) -> None:
    with pytest.raises(InvalidInput):
        index_kv_mount(vault, fingerprints.index, fingerprints.key, "bad mount")
    with pytest.raises(ActionFailed, match="no KV v2 secrets engine"):
        index_kv_mount(vault, fingerprints.index, fingerprints.key, "no-such-mount-here")


def test_an_empty_mount_indexes_nothing(vault: hvac.Client, kv_mount: str, fingerprints: IndexSetup) -> None:
    report = index_kv_mount(vault, fingerprints.index, fingerprints.key, kv_mount)
    assert (report.secrets, report.versions, report.fingerprints) == (0, 0, 0)


def test_the_rotation_hook_indexes_the_version_it_is_handed_idempotently(fingerprints: IndexSetup) -> None:
    hook = kv_rotation_indexer(fingerprints.index, fingerprints.key)
    ref = KvSecretRef(mount="secret", path="svc/app")

    hook(ref, 5, {"password": "brand-new-password", "pin": "12"})
    hook(ref, 5, {"password": "brand-new-password", "pin": "12"})  # a resumed rotation calls it again

    [hit] = fingerprints.index.lookup(fingerprint_of_value(fingerprints.key, "brand-new-password"))
    assert (hit.path, hit.version, hit.field) == ("svc/app", 5, "password")
    assert item_count(fingerprints) == 1


def test_the_rotation_hook_logs_a_failed_write_without_the_value_unless_strict(
    aws: None, fingerprints: IndexSetup, caplog: pytest.LogCaptureFixture
) -> None:
    # Given an index whose table does not exist
    broken = DynamoDbFingerprintIndex("no-such-table", boto3.client("dynamodb", region_name=LOCAL_REGION))
    ref = KvSecretRef(mount="secret", path="svc/app")
    value = {"password": "brand-new-password"}

    # Then the default hook lets the rotation go on, and says so without the value
    with caplog.at_level(logging.WARNING):
        kv_rotation_indexer(broken, fingerprints.key)(ref, 2, value)
    assert "secret/svc/app version 2" in caplog.text
    assert "brand-new-password" not in caplog.text

    # And the strict one raises a typed error
    with pytest.raises((ActionFailed, AwsThrottled)) as raised:
        kv_rotation_indexer(broken, fingerprints.key, strict=True)(ref, 2, value)
    assert "brand-new-password" not in str(raised.value)
