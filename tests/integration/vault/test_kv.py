"""KV v2 rotation against a real OpenBao under the rotation contract: only declared fields rotate, the pending value
is staged until finish, steps are idempotent and a crash converges; undeclared secrets need an owner; discovery.

The secrets here are checked by no external system, and their owner says so: `rescind_rotation_hook=none`, so
setSecret/testSecret are Rescind's read-back of the staged value (tests/integration/rotation has the real
PostgreSQL hook).
"""

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
from rescind.rotation.contract import RotationAbandoned, RotationHookFailed, declaration_from
from rescind.vault.kv import KvSecretHandler, find_kv_secrets_by_custom_metadata
from rescind.vault.kv_rotation import create_pending_value, finish_rotation, rotate_kv_secret
from rescind.vault.kv_rotation_state import (
    BASE_VERSION_KEY,
    ROTATION_ID_KEY,
    ROTATION_STEP_KEY,
    rotation_id_for,
    staging_ref,
    verify_kv_rotation,
)

SPIFFE_ID = "spiffe://td.example/ns/pay/sa/api"
DECLARED = {"rescind_rotate": "password", "rescind_rotation_hook": "none"}


class Recorder:
    """An on_new_value callback that records what it was handed (the test may see values)."""

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


def staging_exists(vault: hvac.Client, ref: KvSecretRef) -> bool:
    staging = staging_ref(ref)
    try:
        vault.secrets.kv.v2.read_secret_metadata(staging.path, mount_point=staging.mount)
    except hvac.exceptions.InvalidPath:
        return False
    return True


def patch_custom_metadata(vault: hvac.Client, ref: KvSecretRef, custom: dict[str, str]) -> None:
    vault.adapter.request(
        "patch",
        f"/v1/{ref.mount}/metadata/{ref.path}",
        json={"custom_metadata": custom},
        headers={"Content-Type": "application/merge-patch+json"},
    )


def seed_secret(vault: hvac.Client, ref: KvSecretRef, custom: Mapping[str, str]) -> KvSecretRef:
    for password in ("first-old-password", "second-old-password"):
        vault.secrets.kv.v2.create_or_update_secret(
            ref.path, secret={"username": "svc-user-7f3a", "password": password}, mount_point=ref.mount
        )
    vault.secrets.kv.v2.update_metadata(ref.path, mount_point=ref.mount, custom_metadata=dict(custom))
    return ref


@pytest.fixture
def secret(vault: hvac.Client, unique: str) -> KvSecretRef:
    """A secret with two versions, a spiffe_id, and its owner's declaration: `password` rotates, no hook."""
    return seed_secret(
        vault, KvSecretRef(mount="secret", path=f"rescind-{unique}/db"), {"spiffe_id": SPIFFE_ID, **DECLARED}
    )


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


def test_rotate_twice_creates_one_version_changes_only_the_declared_field_and_destroys_the_old_ones(
    vault: hvac.Client, secret: KvSecretRef
) -> None:
    # Given a secret at version 2 whose owner declared `password` to rotate, and an index that sees new values
    old_values = [read_value(vault, secret, 1), read_value(vault, secret, 2)]
    on_new_value = Recorder()
    handler = KvSecretHandler(vault, on_new_value=on_new_value)
    action = rotate(secret, run_id="inc-1")
    assert handler.verify(action).confirmed is False

    # When it is rotated (leak response: previous versions destroyed)
    first = handler.act(action)

    # Then version 3 is current: a new password, the same username; versions 1 and 2 are destroyed
    assert first.changed is True
    metadata = read_metadata(vault, secret)
    assert metadata["current_version"] == 3
    new_value = read_value(vault, secret)
    assert new_value["username"] == "svc-user-7f3a"
    assert new_value["password"] not in {v["password"] for v in old_values}
    assert destroyed_versions(vault, secret) == {1, 2}
    assert on_new_value.calls == [(secret, 3, new_value)]
    assert "no external system" in first.detail
    assert not staging_exists(vault, secret)
    # The rotation is recorded next to the owner's own custom_metadata, which is kept
    custom = metadata["custom_metadata"]
    assert custom["spiffe_id"] == SPIFFE_ID
    assert custom["rescind_rotate"] == "password"
    assert custom[ROTATION_ID_KEY] == rotation_id_for(action)
    assert custom[ROTATION_STEP_KEY] == "finished"
    assert custom["rescind_rotated_version"] == "3"
    assert "rescind_rotated_at" in custom
    assert BASE_VERSION_KEY not in custom
    evidence = handler.verify(action)
    assert evidence.confirmed is True

    # And the same action replayed (same incident) does not rotate again
    second = handler.act(action)
    assert second.changed is False
    assert "already applied" in second.detail
    assert read_metadata(vault, secret)["current_version"] == 3
    assert len(on_new_value.calls) == 1
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


def test_an_undeclared_secret_needs_an_owner_and_is_never_written(vault: hvac.Client, unique: str) -> None:
    # Given a secret whose owner declared nothing (and one that declared fields but no hook)
    plain = seed_secret(vault, KvSecretRef(path=f"rescind-{unique}/plain"), {"spiffe_id": SPIFFE_ID})
    no_hook = seed_secret(vault, KvSecretRef(path=f"rescind-{unique}/no-hook"), {"rescind_rotate": "password"})
    handler = KvSecretHandler(vault)

    for ref in (plain, no_hook):
        outcome = handler.act(rotate(ref))
        # Then nothing is written: no version, no rotation record, no staging copy
        assert outcome.changed is False
        assert outcome.needs_owner is True
        assert "rotation needs an owner" in outcome.detail
        assert read_metadata(vault, ref)["current_version"] == 2
        assert ROTATION_ID_KEY not in read_metadata(vault, ref)["custom_metadata"]
        assert not staging_exists(vault, ref)
        assert handler.verify(rotate(ref)).confirmed is False


@pytest.mark.parametrize("crashed_at", ["created", "set", "tested", "finishing-before-write", "finishing-after-write"])
def test_a_crash_between_steps_converges_on_rerun(vault: hvac.Client, secret: KvSecretRef, crashed_at: str) -> None:
    # Given a rotation that staged its pending value and then crashed at some step
    rotation_id = "rot-crash-1"
    params = ActionParams()
    declaration = declaration_from(read_metadata(vault, secret)["custom_metadata"], "test")
    assert declaration is not None
    created = create_pending_value(vault, secret, rotation_id, declaration)
    assert created.version == 2
    assert created.changed
    assert read_value(vault, secret)["password"] == "second-old-password"  # readers still get the current value
    staged = read_value(vault, staging_ref(secret))
    step = crashed_at.split("-")[0]
    patch_custom_metadata(vault, secret, {ROTATION_STEP_KEY: step})
    if crashed_at == "finishing-after-write":
        vault.secrets.kv.v2.create_or_update_secret(secret.path, secret=staged, cas=2, mount_point=secret.mount)
    on_new_value = Recorder()

    # When the whole rotation runs again
    outcome = rotate_kv_secret(vault, secret, rotation_id, params, hooks=None, on_new_value=on_new_value)

    # Then exactly one new version exists, holding the staged value, and the old versions are destroyed
    assert outcome.changed is True
    assert read_metadata(vault, secret)["current_version"] == 3
    assert read_value(vault, secret) == staged
    assert destroyed_versions(vault, secret) == {1, 2}
    assert on_new_value.versions == {3}
    assert not staging_exists(vault, secret)
    assert verify_kv_rotation(vault, secret, rotation_id, params).confirmed is True
    assert rotate_kv_secret(vault, secret, rotation_id, params, hooks=None).changed is False


def test_a_staged_value_that_is_not_this_rotations_fails_the_read_back(vault: hvac.Client, secret: KvSecretRef) -> None:
    # Given a staged value replaced by someone else after create
    declaration = declaration_from(read_metadata(vault, secret)["custom_metadata"], "test")
    assert declaration is not None
    create_pending_value(vault, secret, "rot-tamper", declaration)
    staging = staging_ref(secret)
    vault.secrets.kv.v2.create_or_update_secret(
        staging.path, secret={"username": "svc-user-7f3a", "password": "second-old-password"}, mount_point=staging.mount
    )

    # When the rotation goes on, its read-back (setSecret) refuses the stale field; the current value is untouched
    with pytest.raises(RotationHookFailed, match="no new password"):
        rotate_kv_secret(vault, secret, "rot-tamper", ActionParams(), hooks=None)
    assert read_metadata(vault, secret)["current_version"] == 2
    assert read_metadata(vault, secret)["custom_metadata"][ROTATION_STEP_KEY] == "created"


def test_a_concurrent_writer_is_not_overwritten(vault: hvac.Client, secret: KvSecretRef) -> None:
    # Given a rotation that passed set and test, and another writer that writes the secret before finish
    declaration = declaration_from(read_metadata(vault, secret)["custom_metadata"], "test")
    assert declaration is not None
    create_pending_value(vault, secret, "rot-race", declaration)
    patch_custom_metadata(vault, secret, {ROTATION_STEP_KEY: "tested"})
    vault.secrets.kv.v2.create_or_update_secret(
        secret.path, secret={"username": "svc-user-7f3a", "password": "concurrent"}, mount_point=secret.mount
    )

    # When the rotation finishes with cas = the version it staged from, the write is refused and it is abandoned
    with pytest.raises(RotationAbandoned, match="a writer made a new version after it was created"):
        finish_rotation(vault, secret, "rot-race", ActionParams())

    # Then the concurrent value stays current, the pending value is gone, and the rotation is not "rotated": a
    # rerun of it says so again and its verification fails
    assert read_value(vault, secret)["password"] == "concurrent"
    assert read_metadata(vault, secret)["current_version"] == 3
    assert read_metadata(vault, secret)["custom_metadata"][ROTATION_STEP_KEY] == "abandoned"
    assert not staging_exists(vault, secret)
    with pytest.raises(RotationAbandoned):
        rotate_kv_secret(vault, secret, "rot-race", ActionParams(), hooks=None)
    evidence = verify_kv_rotation(vault, secret, "rot-race", ActionParams())
    assert evidence.confirmed is False
    assert "abandoned" in evidence.observed
    # And a new rotation (the next run) rotates from the writer's value
    assert rotate_kv_secret(vault, secret, "rot-race-2", ActionParams(), hooks=None).changed is True
    assert read_metadata(vault, secret)["current_version"] == 4
    assert read_value(vault, secret)["password"] != "concurrent"
    assert destroyed_versions(vault, secret) == {1, 2, 3}


def secret_with_a_hook(vault: hvac.Client, path: str) -> KvSecretRef:
    """A secret whose password the owner's hook sets and tests (its Lambda ARN; each test passes its own invoker)."""
    hook = "arn:aws:lambda:us-east-1:123456789012:function:rotate-db"
    declared = {"rescind_rotate": "password", "rescind_rotation_hook": hook}
    return seed_secret(vault, KvSecretRef(path=path), declared)


class WriterDuringTest:
    """A hook (the RotationHookInvoker protocol) whose testSecret is raced by another writer of the secret: it writes
    a new version through the real Vault, as a person or another process would, then passes."""

    def __init__(self, vault: hvac.Client, ref: KvSecretRef) -> None:
        self.vault, self.ref, self.steps = vault, ref, list[str]()

    def invoke(self, hook_arn: str, event: Mapping[str, str]) -> None:
        self.steps.append(event["Step"])
        if event["Step"] == "testSecret":
            self.vault.secrets.kv.v2.create_or_update_secret(
                self.ref.path,
                secret={"username": "svc-user-7f3a", "password": "concurrent"},
                mount_point=self.ref.mount,
            )


def test_a_writer_between_create_and_finish_of_one_call_is_not_overwritten(vault: hvac.Client, unique: str) -> None:
    # Given a secret whose hook passes set and test, while another writer writes the secret during the test
    ref = secret_with_a_hook(vault, f"rescind-{unique}/raced")
    writer = WriterDuringTest(vault, ref)

    # When one call rotates it (the steps after create take what the call knows, not a fresh read)
    with pytest.raises(RotationAbandoned, match="a writer made a new version after it was created"):
        rotate_kv_secret(vault, ref, "rot-raced", ActionParams(), hooks=writer)

    # Then the finish's check-and-set refused: the writer's value stays current, nothing was destroyed, the pending
    # value is gone, and the rotation is recorded abandoned (its verification fails)
    assert writer.steps == ["setSecret", "testSecret"]
    assert read_value(vault, ref)["password"] == "concurrent"
    assert read_metadata(vault, ref)["current_version"] == 3
    assert destroyed_versions(vault, ref) == set()
    assert not staging_exists(vault, ref)
    assert read_metadata(vault, ref)["custom_metadata"][ROTATION_STEP_KEY] == "abandoned"
    assert verify_kv_rotation(vault, ref, "rot-raced", ActionParams()).confirmed is False


def test_a_crash_inside_an_abandonment_converges_to_abandoned(vault: hvac.Client, secret: KvSecretRef) -> None:
    # Given a rotation a concurrent writer beat, whose abandonment crashed after deleting the staging copy
    declaration = declaration_from(read_metadata(vault, secret)["custom_metadata"], "test")
    assert declaration is not None
    create_pending_value(vault, secret, "rot-race-crash", declaration)
    patch_custom_metadata(vault, secret, {ROTATION_STEP_KEY: "finishing"})
    vault.secrets.kv.v2.create_or_update_secret(
        secret.path, secret={"username": "svc-user-7f3a", "password": "concurrent"}, mount_point=secret.mount
    )
    staging = staging_ref(secret)
    vault.secrets.kv.v2.delete_metadata_and_all_versions(staging.path, mount_point=staging.mount)

    # When the finish runs again, it completes the abandonment instead of writing or failing on the missing copy
    with pytest.raises(RotationAbandoned):
        finish_rotation(vault, secret, "rot-race-crash", ActionParams())
    assert read_metadata(vault, secret)["custom_metadata"][ROTATION_STEP_KEY] == "abandoned"
    assert read_value(vault, secret)["password"] == "concurrent"
    assert read_metadata(vault, secret)["current_version"] == 3


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
        finish_rotation(vault, secret, "rot-never-created", ActionParams())
    declaration = declaration_from(read_metadata(vault, secret)["custom_metadata"], "test")
    assert declaration is not None
    create_pending_value(vault, secret, "rot-order", declaration)
    with pytest.raises(ActionFailed, match="before tested"):
        finish_rotation(vault, secret, "rot-order", ActionParams())
    assert read_metadata(vault, secret)["current_version"] == 2
    assert destroyed_versions(vault, secret) == set()


def test_bad_inputs_are_refused_and_change_nothing(vault: hvac.Client, secret: KvSecretRef, unique: str) -> None:
    handler = KvSecretHandler(vault)
    with pytest.raises(UnsupportedAction):
        handler.act(Action(kind=ActionKind.REVOKE, target=PkiCertificateRef(serial="ab:cd"), reason="wrong kind"))
    with pytest.raises(InvalidInput):
        rotate_kv_secret(vault, secret, "bad id with spaces", ActionParams(), hooks=None)
    with pytest.raises(InvalidInput):
        find_kv_secrets_by_custom_metadata(vault, "secret", "spiffe_id", SPIFFE_ID, prefix="a/../b")
    with pytest.raises(ActionFailed, match="no KV v2 secrets engine"):
        handler.act(rotate(KvSecretRef(mount="no-such-mount", path=secret.path)))
    # A malformed declaration is refused for that secret alone, naming the problem, before any write: an outcome
    # (the engine records it SKIPPED, the run goes on), not an exception that would end the run
    bad_declarations = (
        ({**DECLARED, "rescind_rotate": "api_key"}, "declares rescind_rotate=api_key, which it does not hold"),
        ({**DECLARED, "rescind_rotate": "pass word"}, "rescind_rotate on secret/"),
        ({**DECLARED, "rescind_generator": "dictionary-words"}, "rescind_generator on secret/"),
        ({**DECLARED, "rescind_rotation_hook": "None"}, "must be a Lambda function ARN or 'none'"),
    )
    for number, (custom, problem) in enumerate(bad_declarations):
        ref = seed_secret(vault, KvSecretRef(path=f"rescind-{unique}/bad-{number}"), custom)
        outcome = rotate_kv_secret(vault, ref, "rot-bad", ActionParams(), hooks=None)
        assert (outcome.changed, outcome.needs_owner) == (False, True)
        assert outcome.detail.startswith("rotation declaration refused: ")
        assert problem in outcome.detail
        assert read_metadata(vault, ref)["current_version"] == 2
        assert not staging_exists(vault, ref)

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


class OtherRotationDuringTest:
    """A hook whose testSecret is raced by another rotation of the same secret (an offboarding's and a leak's at
    once): it stages its own pending value, taking the staging copy and the record, then passes."""

    def __init__(self, vault: hvac.Client, ref: KvSecretRef) -> None:
        self.vault, self.ref = vault, ref

    def invoke(self, hook_arn: str, event: Mapping[str, str]) -> None:
        if event["Step"] == "testSecret":
            custom = read_metadata(self.vault, self.ref)["custom_metadata"]
            declaration = declaration_from(custom, "test")
            assert declaration is not None
            create_pending_value(self.vault, self.ref, "rot-other", declaration)


def test_a_rotation_whose_record_another_rotation_took_does_not_finish(vault: hvac.Client, unique: str) -> None:
    # Given a secret with a hook, and another rotation of it that stages its own value during this one's test
    ref = secret_with_a_hook(vault, f"rescind-{unique}/two-rotations")
    before = read_metadata(vault, ref)["current_version"]

    # When one call rotates it
    with pytest.raises(ActionFailed, match="not in progress"):
        rotate_kv_secret(vault, ref, "rot-first", ActionParams(), hooks=OtherRotationDuringTest(vault, ref))

    # Then it wrote no version (the other rotation's staged value was not finished by it), and the record and the
    # staging copy are the other rotation's, for it to carry on
    assert read_metadata(vault, ref)["current_version"] == before
    assert read_metadata(vault, ref)["custom_metadata"][ROTATION_ID_KEY] == "rot-other"
    assert staging_exists(vault, ref)
