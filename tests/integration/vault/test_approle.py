"""AppRole secret-ids by accessor, against the real OpenBao server."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import hvac
import hvac.exceptions
import pytest

from rescind.engine.base import CredentialHandler
from rescind.exceptions import ActionFailed, InvalidInput, UnsupportedAction
from rescind.models import Action, ActionKind, AppRoleSecretIdRef, VaultTokenRef
from rescind.vault.approle import (
    AppRoleSecretIdHandler,
    find_secret_ids_by_metadata,
    find_secret_ids_by_spiffe_id,
    list_approle_roles,
    list_secret_id_accessors,
    lookup_secret_id,
)


@dataclass(frozen=True)
class AppRoleMount:
    mount: str
    role_name: str
    role_id: str


@dataclass(frozen=True)
class IssuedSecretId:
    """The test keeps the value to prove a login fails; the code under test only ever sees the ref."""

    value: str
    ref: AppRoleSecretIdRef


@pytest.fixture
def approle(vault: hvac.Client, unique: str) -> AppRoleMount:
    mount = f"approle-{unique}"
    vault.sys.enable_auth_method("approle", path=mount)
    vault.auth.approle.create_or_update_approle("app", token_policies=["default"], mount_point=mount)
    role_id = vault.auth.approle.read_role_id("app", mount_point=mount)["data"]["role_id"]
    return AppRoleMount(mount=mount, role_name="app", role_id=role_id)


def _issue(
    vault: hvac.Client, approle: AppRoleMount, metadata: dict[str, str] | None = None, role_name: str | None = None
) -> IssuedSecretId:
    role = role_name or approle.role_name
    data = vault.auth.approle.generate_secret_id(role, metadata=metadata, mount_point=approle.mount)["data"]
    ref = AppRoleSecretIdRef(mount=approle.mount, role_name=role, accessor=data["secret_id_accessor"])
    return IssuedSecretId(value=data["secret_id"], ref=ref)


def _login(vault: hvac.Client, approle: AppRoleMount, secret_id: str) -> None:
    hvac.Client(url=vault.url).auth.approle.login(approle.role_id, secret_id, mount_point=approle.mount)


def _destroy(ref: AppRoleSecretIdRef) -> Action:
    return Action(kind=ActionKind.REVOKE, target=ref, reason="test")


def test_handler_implements_the_protocol(vault: hvac.Client) -> None:
    assert isinstance(AppRoleSecretIdHandler(vault), CredentialHandler)


def test_destroy_twice_then_verified_and_login_fails(vault: hvac.Client, approle: AppRoleMount) -> None:
    # Given two secret-ids of the role that both log in
    target = _issue(vault, approle)
    bystander = _issue(vault, approle)
    _login(vault, approle, target.value)
    handler = AppRoleSecretIdHandler(vault)
    action = _destroy(target.ref)
    assert handler.verify(action).confirmed is False

    # When the target is destroyed twice
    first = handler.act(action)
    second = handler.act(action)

    # Then it is gone, the second run found it already absent, and only it stopped logging in
    assert first.changed is True
    assert (second.changed, second.absent, second.detail) == (False, True, "already absent")
    evidence = handler.verify(action)
    assert evidence.confirmed is True
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid role or secret ID"):
        _login(vault, approle, target.value)
    _login(vault, approle, bystander.value)
    for model in (first, second, evidence):
        assert target.value not in model.model_dump_json()


def test_destroy_of_an_unknown_accessor_is_already_absent_and_verified(
    vault: hvac.Client, approle: AppRoleMount
) -> None:
    # OpenBao answers 404 "failed to find accessor entry" to a lookup, and 500 to a destroy, of an unknown
    # accessor; the handler must read that as absent, not as an outage.
    ref = AppRoleSecretIdRef(mount=approle.mount, role_name=approle.role_name, accessor=str(uuid.uuid4()))
    handler = AppRoleSecretIdHandler(vault)

    outcome = handler.act(_destroy(ref))

    assert (outcome.changed, outcome.absent, outcome.detail) == (False, True, "already absent")
    assert handler.verify(_destroy(ref)).confirmed is True


def test_a_missing_role_is_not_proof_of_absence(vault: hvac.Client, approle: AppRoleMount) -> None:
    ref = AppRoleSecretIdRef(mount=approle.mount, role_name="no-such-role", accessor=str(uuid.uuid4()))
    handler = AppRoleSecretIdHandler(vault)
    with pytest.raises(ActionFailed, match="role does not exist"):
        handler.verify(_destroy(ref))
    with pytest.raises(ActionFailed, match="role does not exist"):
        handler.act(_destroy(ref))


def test_a_missing_mount_is_not_proof_of_absence(vault: hvac.Client, unique: str) -> None:
    ref = AppRoleSecretIdRef(mount=f"missing-{unique}", role_name="app", accessor=str(uuid.uuid4()))
    with pytest.raises(ActionFailed):
        AppRoleSecretIdHandler(vault).verify(_destroy(ref))
    with pytest.raises(ActionFailed):
        list_approle_roles(vault, f"missing-{unique}")


def test_list_secret_id_accessors(vault: hvac.Client, approle: AppRoleMount) -> None:
    assert list_secret_id_accessors(vault, approle.role_name, approle.mount) == []
    issued = [_issue(vault, approle) for _ in range(3)]

    listed = list_secret_id_accessors(vault, approle.role_name, approle.mount)

    assert sorted(ref.accessor for ref in listed) == sorted(item.ref.accessor for item in issued)
    state = lookup_secret_id(vault, issued[0].ref)
    assert state is not None
    assert issued[0].value not in repr(state)


def test_list_of_an_unknown_role_raises(vault: hvac.Client, approle: AppRoleMount) -> None:
    with pytest.raises(ActionFailed, match="does not exist"):
        list_secret_id_accessors(vault, "no-such-role", approle.mount)


def test_find_by_metadata_in_one_role_and_across_the_mount(
    vault: hvac.Client, approle: AppRoleMount, unique: str
) -> None:
    # Given the workload's secret-ids in two roles, and others' secret-ids beside them
    vault.auth.approle.create_or_update_approle("batch", token_policies=["default"], mount_point=approle.mount)
    spiffe_id = f"spiffe://example.org/ns/test/sa/{unique}"
    in_app = _issue(vault, approle, {"spiffe_id": spiffe_id})
    in_batch = _issue(vault, approle, {"spiffe_id": spiffe_id}, role_name="batch")
    _issue(vault, approle, {"spiffe_id": spiffe_id + "-other"})
    _issue(vault, approle)

    # When they are looked for in one role, and across the whole mount
    in_role = find_secret_ids_by_spiffe_id(vault, spiffe_id, mount=approle.mount, role_name="app")
    on_mount = find_secret_ids_by_spiffe_id(vault, spiffe_id, mount=approle.mount)

    # Then only the workload's secret-ids are found
    assert in_role == [in_app.ref]
    assert sorted(on_mount, key=lambda ref: ref.role_name) == [in_app.ref, in_batch.ref]
    assert find_secret_ids_by_metadata(vault, "team", spiffe_id, mount=approle.mount) == []


def test_find_refuses_an_empty_value(vault: hvac.Client, approle: AppRoleMount) -> None:
    with pytest.raises(InvalidInput):
        find_secret_ids_by_metadata(vault, "spiffe_id", "", mount=approle.mount)


def test_wrong_target_kind_is_unsupported(vault: hvac.Client) -> None:
    action = Action(kind=ActionKind.REVOKE, target=VaultTokenRef(accessor="A" * 24), reason="test")
    with pytest.raises(UnsupportedAction):
        AppRoleSecretIdHandler(vault).act(action)
