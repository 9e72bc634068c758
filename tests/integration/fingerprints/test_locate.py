"""Locating KV v2 secrets by a leaked value or its SHA-256: index hits confirmed against the real OpenBao."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import hvac
import pytest

from rescind.exceptions import InvalidInput
from rescind.fingerprints import FingerprintEntry, FingerprintHit, entries_for_version, fingerprint_of_value
from rescind.fingerprints.indexing import index_kv_mount, kv_rotation_indexer
from rescind.fingerprints.locate import confirmed_kv_hits, locate_kv_secrets_by_value
from rescind.models import Action, ActionKind, ActionParams, KvSecretRef, PreviousVersions
from rescind.vault.kv import KvSecretHandler
from tests.integration.fingerprints.conftest import IndexSetup

LEAKED = "leaked-password-4f1c9a"


def sha256_of(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def write(vault: hvac.Client, mount: str, path: str, data: dict[str, Any]) -> None:
    vault.secrets.kv.v2.create_or_update_secret(path, secret=data, mount_point=mount)


def entries(
    fingerprints: IndexSetup, ref: KvSecretRef, version: int, data: Mapping[str, Any]
) -> list[FingerprintEntry]:
    """Index entries written directly, as if the index had seen `data` at that version."""
    return entries_for_version(fingerprints.key, ref.mount, ref.path, version, data)[0]


@pytest.fixture
def indexed(vault: hvac.Client, kv_mount: str, fingerprints: IndexSetup) -> str:
    """The leaked value in two versions of app/db and in app/copy; other values elsewhere; all indexed."""
    write(vault, kv_mount, "app/db", {"password": LEAKED, "user": "svc-user-1"})
    write(vault, kv_mount, "app/db", {"password": LEAKED, "user": "svc-user-2"})
    write(vault, kv_mount, "app/copy", {"backup": LEAKED})
    write(vault, kv_mount, "app/other", {"password": "unrelated-password-1"})
    index_kv_mount(vault, fingerprints.index, fingerprints.key, kv_mount)
    return kv_mount


def test_a_leaked_value_locates_each_secret_that_holds_it_once(
    vault: hvac.Client, indexed: str, fingerprints: IndexSetup
) -> None:
    refs = locate_kv_secrets_by_value(vault, fingerprints.index, fingerprints.key, value=LEAKED)

    assert refs == [KvSecretRef(mount=indexed, path="app/copy"), KvSecretRef(mount=indexed, path="app/db")]
    hits = confirmed_kv_hits(vault, fingerprints.index, fingerprints.key, value=LEAKED)
    assert hits == [
        FingerprintHit(mount=indexed, path="app/copy", version=1, field="backup"),
        FingerprintHit(mount=indexed, path="app/db", version=1, field="password"),
        FingerprintHit(mount=indexed, path="app/db", version=2, field="password"),
    ]


def test_only_the_sha256_locates_the_same_secrets(vault: hvac.Client, indexed: str, fingerprints: IndexSetup) -> None:
    by_value = locate_kv_secrets_by_value(vault, fingerprints.index, fingerprints.key, value=LEAKED)
    by_sha256 = locate_kv_secrets_by_value(vault, fingerprints.index, fingerprints.key, sha256=sha256_of(LEAKED))
    by_upper = locate_kv_secrets_by_value(vault, fingerprints.index, fingerprints.key, sha256=sha256_of(LEAKED).upper())
    assert by_value == by_sha256 == by_upper != []


def test_an_unknown_value_locates_nothing(vault: hvac.Client, indexed: str, fingerprints: IndexSetup) -> None:
    assert locate_kv_secrets_by_value(vault, fingerprints.index, fingerprints.key, value="never-stored-value") == []
    assert locate_kv_secrets_by_value(vault, fingerprints.index, fingerprints.key, sha256="0" * 64) == []


def test_destroyed_and_overwritten_versions_are_no_longer_located(
    vault: hvac.Client, indexed: str, fingerprints: IndexSetup
) -> None:
    # Given the copy destroyed, and db's versions 1 and 2 destroyed after a new value was written
    vault.secrets.kv.v2.destroy_secret_versions("app/copy", [1], mount_point=indexed)
    write(vault, indexed, "app/db", {"password": "replacement-password", "user": "svc-user-3"})
    vault.secrets.kv.v2.destroy_secret_versions("app/db", [1, 2], mount_point=indexed)

    # Then the index still has the stale hits, but nothing is located
    assert len(fingerprints.index.lookup(fingerprint_of_value(fingerprints.key, LEAKED))) == 3
    assert locate_kv_secrets_by_value(vault, fingerprints.index, fingerprints.key, value=LEAKED) == []


def test_a_soft_deleted_version_or_a_removed_mount_is_stale(
    vault: hvac.Client, indexed: str, fingerprints: IndexSetup
) -> None:
    vault.secrets.kv.v2.delete_secret_versions("app/db", [1, 2], mount_point=indexed)
    assert locate_kv_secrets_by_value(vault, fingerprints.index, fingerprints.key, value=LEAKED) == [
        KvSecretRef(mount=indexed, path="app/copy")
    ]
    # A hit on a mount that no longer exists is dropped, not an error
    fingerprints.index.put(entries(fingerprints, KvSecretRef(mount="gone-mount", path="x"), 1, {"p": LEAKED}))
    assert locate_kv_secrets_by_value(vault, fingerprints.index, fingerprints.key, value=LEAKED) == [
        KvSecretRef(mount=indexed, path="app/copy")
    ]


def test_a_hit_whose_field_no_longer_holds_the_value_is_dropped(
    vault: hvac.Client, kv_mount: str, fingerprints: IndexSetup
) -> None:
    # Given an index entry that claims version 1's "password" holds the value, which it does not
    write(vault, kv_mount, "app/liar", {"password": "something-else-entirely"})
    fingerprints.index.put(entries(fingerprints, KvSecretRef(mount=kv_mount, path="app/liar"), 1, {"password": LEAKED}))

    assert fingerprints.index.lookup(fingerprint_of_value(fingerprints.key, LEAKED)) != []
    assert locate_kv_secrets_by_value(vault, fingerprints.index, fingerprints.key, value=LEAKED) == []


def test_a_rotation_through_the_handler_makes_the_new_value_locatable_and_the_old_one_not(
    vault: hvac.Client, indexed: str, fingerprints: IndexSetup
) -> None:
    # Given app/db declares its password to rotate (no external system), and a KV handler that feeds the index
    vault.secrets.kv.v2.update_metadata(
        "app/db", mount_point=indexed, custom_metadata={"rescind_rotate": "password", "rescind_rotation_hook": "none"}
    )
    index_new_value = kv_rotation_indexer(fingerprints.index, fingerprints.key)
    new_values: list[str] = []

    def index_and_record(ref: KvSecretRef, version: int, value: Mapping[str, Any]) -> None:
        new_values.append(str(value["password"]))
        index_new_value(ref, version, value)

    handler = KvSecretHandler(vault, on_new_value=index_and_record)
    action = Action(
        kind=ActionKind.ROTATE,
        target=KvSecretRef(mount=indexed, path="app/db"),
        reason="leaked in a public repository",
        params=ActionParams(previous_versions=PreviousVersions.DESTROY, run_id=f"leak-{indexed}"),
    )

    # When it rotates app/db, twice (the second is a no-op)
    first = handler.act(action)
    second = handler.act(action)

    # Then the new value resolves to app/db at version 3, the leaked one only to the copy
    assert first.changed
    assert not second.changed
    assert "already applied" in second.detail
    assert handler.verify(action).confirmed
    assert len(new_values) == 1
    current = vault.secrets.kv.v2.read_secret_version("app/db", mount_point=indexed, raise_on_deleted_version=True)
    assert current["data"]["data"] == {"password": new_values[0], "user": "svc-user-2"}  # only the declared field
    assert confirmed_kv_hits(vault, fingerprints.index, fingerprints.key, value=new_values[0]) == [
        FingerprintHit(mount=indexed, path="app/db", version=3, field="password")
    ]
    assert locate_kv_secrets_by_value(vault, fingerprints.index, fingerprints.key, value=LEAKED) == [
        KvSecretRef(mount=indexed, path="app/copy")
    ]


@pytest.mark.parametrize(
    ("value", "sha256"),
    [(None, None), (LEAKED, sha256_of(LEAKED)), ("", None), (None, "not-a-sha256"), (None, LEAKED)],
)
def test_bad_input_is_refused_without_echo_or_lookup(
    vault: hvac.Client, fingerprints: IndexSetup, value: str | None, sha256: str | None
) -> None:
    with pytest.raises(InvalidInput) as refused:
        locate_kv_secrets_by_value(vault, fingerprints.index, fingerprints.key, value=value, sha256=sha256)
    assert LEAKED not in str(refused.value)
    assert "not-a-sha256" not in str(refused.value)
