"""KV v2 rotation against a real OpenBao: four idempotent steps, crash convergence, discovery, verification."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import hvac
import pytest

from rescind.engine.base import CredentialHandler
from rescind.exceptions import ActionFailed, InvalidInput, UnsupportedAction
from rescind.models import (
    Action,
    ActionKind,
    ActionParams,
    KvSecretRef,
    PkiCertificateRef,
    PreviousVersions,
)
from rescind.vault.kv import KvSecretHandler, find_kv_secrets_by_custom_metadata
from rescind.vault.kv_rotation import (
    PENDING_VERSION_KEY,
    ROTATION_ID_KEY,
    ROTATION_STEP_KEY,
    check_new_version,
    create_new_version,
    finish_rotation,
    rotate_kv_secret,
    rotation_id_for,
    set_new_version,
    verify_kv_rotation,
)

SPIFFE_ID = "spiffe://td.example/ns/pay/sa/api"


class Recorder:
    """A set hook / on_new_value callback that records what it was handed (the test may see values)."""

    def __init__(self) -> None:
        self.calls: list[tuple[KvSecretRef, int, dict[str, Any]]] = []

    def __call__(self, ref: KvSecretRef, version: int, value: Mapping[str, Any]) -> None:
        self.calls.append((ref, version, dict(value)))

    @property
    def versions(self) -> set[int]:
        return {version for _ref, version, _value in self.calls}


def read_metadata(vault: hvac.Client, ref: KvSecretRef) -> dict[str, Any]:
    data: dict[str, Any] = vault.secrets.kv.v2.read_secret_metadata(ref.path, mount_point=ref.mount)["data"]
    return data


def read_value(vault: hvac.Client, ref: KvSecretRef, version: int | None = None) -> dict[str, Any]:
    response = vault.secrets.kv.v2.read_secret_version(
        ref.path, version=version, mount_point=ref.mount, raise_on_deleted_version=True
    )
    data: dict[str, Any] = response["data"]["data"]
    return data


def destroyed_versions(vault: hvac.Client, ref: KvSecretRef) -> set[int]:
    return {int(v) for v, info in read_metadata(vault, ref)["versions"].items() if info["destroyed"]}


@pytest.fixture
def secret(vault: hvac.Client, unique: str) -> KvSecretRef:
    """A secret with two versions and a spiffe_id in its custom_metadata."""
    ref = KvSecretRef(mount="secret", path=f"rescind-{unique}/db")
    for password in ("first-old-password", "second-old-password"):
        vault.secrets.kv.v2.create_or_update_secret(
            ref.path, secret={"username": "svc-user-7f3a", "password": password}, mount_point=ref.mount
        )
    vault.secrets.kv.v2.update_metadata(ref.path, mount_point=ref.mount, custom_metadata={"spiffe_id": SPIFFE_ID})
    return ref


def rotate(ref: KvSecretRef, run_id: str = "inc-1", **params: Any) -> Action:
    return Action(
        kind=ActionKind.ROTATE, target=ref, reason="test: leaked secret", params=ActionParams(run_id=run_id, **params)
    )


def assert_no_value_in(texts: list[str], values: list[dict[str, Any]]) -> None:
    for value in values:
        for item in value.values():
            assert all(str(item) not in text for text in texts)


def test_handler_implements_the_protocol(vault: hvac.Client) -> None:
    assert isinstance(KvSecretHandler(vault), CredentialHandler)


def test_rotate_twice_creates_one_version_and_destroys_the_old_ones(vault: hvac.Client, secret: KvSecretRef) -> None:
    # Given a secret at version 2, and hooks that see the new value in-process
    old_values = [read_value(vault, secret, 1), read_value(vault, secret, 2)]
    set_hook, on_new_value = Recorder(), Recorder()
    handler = KvSecretHandler(vault, set_hook=set_hook, on_new_value=on_new_value)
    action = rotate(secret, run_id="inc-1")
    assert handler.verify(action).confirmed is False

    # When it is rotated (leak response: previous versions destroyed)
    first = handler.act(action)

    # Then version 3 is current, keeps the keys with new values, and versions 1 and 2 are destroyed
    assert first.changed is True
    metadata = read_metadata(vault, secret)
    assert metadata["current_version"] == 3
    new_value = read_value(vault, secret)
    assert set(new_value) == {"username", "password"}
    assert new_value["password"] not in {v["password"] for v in old_values}
    assert destroyed_versions(vault, secret) == {1, 2}
    assert set_hook.calls == [(secret, 3, new_value)]
    assert on_new_value.calls == [(secret, 3, new_value)]
    # The rotation is recorded next to the owner's own custom_metadata, which is kept
    custom = metadata["custom_metadata"]
    assert custom["spiffe_id"] == SPIFFE_ID
    assert custom[ROTATION_ID_KEY] == rotation_id_for(action)
    assert custom[ROTATION_STEP_KEY] == "finished"
    assert custom["rescind_rotated_version"] == "3"
    assert "rescind_rotated_at" in custom
    assert PENDING_VERSION_KEY not in custom
    evidence = handler.verify(action)
    assert evidence.confirmed is True

    # And the same action replayed (same incident) does not rotate again
    second = handler.act(action)
    assert second.changed is False
    assert "already applied" in second.detail
    assert read_metadata(vault, secret)["current_version"] == 3
    assert len(set_hook.calls) == 1
    assert handler.verify(action).confirmed is True

    # And no value reached a returned text
    assert_no_value_in([first.detail, second.detail, evidence.observed], [*old_values, new_value])


def test_two_incidents_rotate_twice(vault: hvac.Client, secret: KvSecretRef) -> None:
    first, second = rotate(secret, run_id="inc-a"), rotate(secret, run_id="inc-b")
    handler = KvSecretHandler(vault)

    assert handler.act(first).changed is True
    assert handler.act(second).changed is True

    assert read_metadata(vault, secret)["current_version"] == 4
    assert destroyed_versions(vault, secret) == {1, 2, 3}
    assert handler.verify(second).confirmed is True
    # The older rotation is no longer the one recorded, so it is not what verification can prove
    assert handler.verify(first).confirmed is False


@pytest.mark.parametrize(("keep_versions", "destroyed"), [(1, {1}), (0, set())])
def test_a_scheduled_rotation_keeps_the_newest_previous_versions(
    vault: hvac.Client, secret: KvSecretRef, keep_versions: int, destroyed: set[int]
) -> None:
    # Given versions 1 and 2; a scheduled rotation keeps `keep_versions` previous versions (0: keep all)
    action = rotate(
        secret, run_id="schedule-2026-11-24", previous_versions=PreviousVersions.KEEP, keep_versions=keep_versions
    )
    handler = KvSecretHandler(vault)

    assert handler.act(action).changed is True

    assert read_metadata(vault, secret)["current_version"] == 3
    assert destroyed_versions(vault, secret) == destroyed
    assert read_value(vault, secret, 2)["password"] == "second-old-password"
    assert handler.verify(action).confirmed is True
    assert handler.act(action).changed is False


@pytest.mark.parametrize("crash_after", ["create", "set", "test"])
def test_a_crash_between_steps_converges_on_rerun(vault: hvac.Client, secret: KvSecretRef, crash_after: str) -> None:
    # Given a rotation that ran some steps and then crashed
    rotation_id = "rot-crash-1"
    params = ActionParams()
    set_hook, on_new_value = Recorder(), Recorder()
    created = create_new_version(vault, secret, rotation_id, on_new_value=on_new_value)
    assert created.version == 3
    if crash_after in ("set", "test"):
        set_new_version(vault, secret, rotation_id, set_hook=set_hook)
    if crash_after == "test":
        check_new_version(vault, secret, rotation_id, expected_fingerprint=created.value_fingerprint)
    assert read_metadata(vault, secret)["custom_metadata"][PENDING_VERSION_KEY] == "3"

    # When the whole rotation runs again
    outcome = rotate_kv_secret(vault, secret, rotation_id, params, set_hook=set_hook, on_new_value=on_new_value)

    # Then exactly one new version exists, the set hook ran for it once, and the old versions are destroyed
    assert outcome.changed is True
    assert read_metadata(vault, secret)["current_version"] == 3
    assert destroyed_versions(vault, secret) == {1, 2}
    assert [version for _r, version, _v in set_hook.calls] == [3]
    assert on_new_value.versions == {3}
    assert verify_kv_rotation(vault, secret, rotation_id, params).confirmed is True
    assert rotate_kv_secret(vault, secret, rotation_id, params).changed is False


def _mark_pending(vault: hvac.Client, ref: KvSecretRef, rotation_id: str, pending: int) -> None:
    vault.adapter.request(
        "patch",
        f"/v1/{ref.mount}/metadata/{ref.path}",
        json={
            "custom_metadata": {
                ROTATION_ID_KEY: rotation_id,
                ROTATION_STEP_KEY: "creating",
                PENDING_VERSION_KEY: str(pending),
            }
        },
        headers={"Content-Type": "application/merge-patch+json"},
    )


@pytest.mark.parametrize("write_landed", [False, True])
def test_a_crash_inside_create_converges_on_rerun(vault: hvac.Client, secret: KvSecretRef, write_landed: bool) -> None:
    # Given a crash after the pending version was recorded: before its write, or after it but before it was marked
    rotation_id = "rot-crash-2"
    _mark_pending(vault, secret, rotation_id, 3)
    if write_landed:
        vault.secrets.kv.v2.create_or_update_secret(
            secret.path, secret={"username": "u", "password": "written-before-crash"}, cas=2, mount_point=secret.mount
        )
    on_new_value = Recorder()

    # When the rotation runs again
    outcome = rotate_kv_secret(vault, secret, rotation_id, ActionParams(), on_new_value=on_new_value)

    # Then there is exactly one new version (an adopted write is not written twice)
    assert outcome.changed is True
    assert read_metadata(vault, secret)["current_version"] == 3
    assert destroyed_versions(vault, secret) == {1, 2}
    assert on_new_value.versions == {3}
    assert (read_value(vault, secret)["password"] == "written-before-crash") is write_landed


def test_a_concurrent_writer_is_detected_and_a_rerun_converges(vault: hvac.Client, secret: KvSecretRef) -> None:
    # Given another writer that writes the secret while the new value is being generated
    def generate_while_someone_writes(current: Mapping[str, Any]) -> dict[str, Any]:
        vault.secrets.kv.v2.create_or_update_secret(
            secret.path, secret={"username": "svc-user-7f3a", "password": "concurrent"}, mount_point=secret.mount
        )
        return {key: "generated" for key in current}

    # When the rotation writes with cas = the version it read
    with pytest.raises(ActionFailed, match="concurrent writer"):
        rotate_kv_secret(vault, secret, "rot-race", ActionParams(), generate_value=generate_while_someone_writes)

    # Then its write was refused, its pending marker cleared, and a rerun rotates from the new current version
    metadata = read_metadata(vault, secret)
    assert metadata["current_version"] == 3
    assert PENDING_VERSION_KEY not in metadata["custom_metadata"]
    assert rotate_kv_secret(vault, secret, "rot-race", ActionParams()).changed is True
    assert read_metadata(vault, secret)["current_version"] == 4
    assert destroyed_versions(vault, secret) == {1, 2, 3}


def test_a_path_that_does_not_exist_is_already_absent(vault: hvac.Client, unique: str) -> None:
    ref = KvSecretRef(path=f"rescind-{unique}/never-written")
    handler = KvSecretHandler(vault)
    action = rotate(ref)

    outcomes = [handler.act(action), handler.act(action)]

    assert all(o.changed is False and o.absent is True and "already absent" in o.detail for o in outcomes)
    # Nothing was created, and nothing claims the rotation took effect
    with pytest.raises(hvac.exceptions.InvalidPath):
        vault.secrets.kv.v2.read_secret_metadata(ref.path, mount_point=ref.mount)
    assert handler.verify(action).confirmed is False


def test_verify_reads_the_destroyed_versions_back(vault: hvac.Client, secret: KvSecretRef) -> None:
    # Given a finished rotation that kept its previous versions (KEEP)
    keep = rotate(secret, run_id="inc-v", previous_versions=PreviousVersions.KEEP)
    handler = KvSecretHandler(vault)
    handler.act(keep)

    # When it is verified against the DESTROY policy, the surviving versions are read back and reported
    evidence = verify_kv_rotation(vault, secret, handler.rotation_id(keep), ActionParams())

    assert evidence.confirmed is False
    assert "not destroyed: [1, 2]" in evidence.observed
    # And after a DESTROY rotation, reading a destroyed version fails, as local-stack.md says
    KvSecretHandler(vault).act(rotate(secret, run_id="inc-w"))
    with pytest.raises(hvac.exceptions.InvalidPath):
        read_value(vault, secret, 1)


def test_steps_out_of_order_are_refused(vault: hvac.Client, secret: KvSecretRef) -> None:
    with pytest.raises(ActionFailed, match="not in progress"):
        set_new_version(vault, secret, "rot-never-created")
    create_new_version(vault, secret, "rot-order")
    with pytest.raises(ActionFailed, match="before tested"):
        finish_rotation(vault, secret, "rot-order", ActionParams())
    assert destroyed_versions(vault, secret) == set()


def test_bad_inputs_are_refused_and_change_nothing(vault: hvac.Client, secret: KvSecretRef) -> None:
    handler = KvSecretHandler(vault)
    with pytest.raises(UnsupportedAction):
        handler.act(Action(kind=ActionKind.REVOKE, target=PkiCertificateRef(serial="ab:cd"), reason="wrong kind"))
    with pytest.raises(InvalidInput):
        rotate_kv_secret(vault, secret, "bad id with spaces", ActionParams())
    with pytest.raises(InvalidInput):
        find_kv_secrets_by_custom_metadata(vault, "secret", "spiffe_id", SPIFFE_ID, prefix="a/../b")
    with pytest.raises(InvalidInput):
        rotate_kv_secret(vault, secret, "rot-empty", ActionParams(), generate_value=lambda current: {})
    with pytest.raises(ActionFailed, match="no KV v2 secrets engine"):
        handler.act(rotate(KvSecretRef(mount="no-such-mount", path=secret.path)))

    metadata = read_metadata(vault, secret)
    assert metadata["current_version"] == 2
    assert destroyed_versions(vault, secret) == set()


def test_find_kv_secrets_by_custom_metadata_walks_the_tree(vault: hvac.Client, unique: str) -> None:
    # Given secrets at several depths, some naming the workload and some not
    root = f"disc-{unique}"
    owned = [f"{root}/top", f"{root}/a/b/deep", f"{root}/a/sibling"]
    for path in [*owned, f"{root}/a/other", f"{root}/a/b/untagged"]:
        vault.secrets.kv.v2.create_or_update_secret(path, secret={"k": "v"}, mount_point="secret")
    for path in owned:
        vault.secrets.kv.v2.update_metadata(path, mount_point="secret", custom_metadata={"spiffe_id": SPIFFE_ID})
    vault.secrets.kv.v2.update_metadata(
        f"{root}/a/other", mount_point="secret", custom_metadata={"spiffe_id": SPIFFE_ID + "-admin"}
    )

    found = find_kv_secrets_by_custom_metadata(vault, "secret", "spiffe_id", SPIFFE_ID, prefix=root)
    under_a = find_kv_secrets_by_custom_metadata(vault, "secret", "spiffe_id", SPIFFE_ID, prefix=f"{root}/a/")

    assert [ref.path for ref in found] == sorted(owned)
    assert [ref.path for ref in under_a] == sorted(owned[1:])
    assert find_kv_secrets_by_custom_metadata(vault, "secret", "spiffe_id", SPIFFE_ID, prefix=f"{root}/none") == []
