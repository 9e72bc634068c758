"""Disabling and enabling identity entities, and finding them by workload, against a real OpenBao."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import hvac
import hvac.exceptions
import pytest

from rescind.engine.base import CredentialHandler
from rescind.exceptions import InvalidInput, UnsupportedAction
from rescind.models import Action, ActionKind, ActOutcome, Evidence, VaultEntityRef, VaultTokenRef
from rescind.vault.identity import (
    VaultEntityHandler,
    disable_entity,
    enable_entity,
    find_entities_by_workload,
    read_entity,
)


@dataclass(frozen=True)
class Workload:
    ref: VaultEntityRef
    spiffe_id: str
    login: hvac.Client  # a client holding a token of the entity
    token: str


@pytest.fixture
def userpass_mount(vault: hvac.Client, unique: str) -> Iterator[tuple[str, str]]:
    """(mount path, mount accessor)"""
    mount = f"userpass-{unique}"
    vault.sys.enable_auth_method("userpass", path=mount)
    accessor = vault.read("sys/auth")["data"][f"{mount}/"]["accessor"]
    yield mount, accessor
    vault.sys.disable_auth_method(mount)


@pytest.fixture
def workload(vault: hvac.Client, userpass_mount: tuple[str, str], unique: str) -> Workload:
    """An entity with SPIFFE metadata and a userpass alias, and a token obtained by logging in as it."""
    mount, accessor = userpass_mount
    spiffe_id = f"spiffe://example.org/ns/test/sa/app-{unique}"
    entity = vault.secrets.identity.create_or_update_entity(
        name=f"app-{unique}", metadata={"spiffe_id": spiffe_id, "team": "payments"}, policies=["default"]
    )["data"]
    vault.secrets.identity.create_or_update_entity_alias(name="app", canonical_id=entity["id"], mount_accessor=accessor)
    password = uuid.uuid4().hex
    vault.write_data(f"auth/{mount}/users/app", data={"password": password, "token_policies": ["default"]})
    login = hvac.Client(url=vault.url)
    login.auth.userpass.login("app", password, mount_point=mount)
    assert login.auth.token.lookup_self()["data"]["entity_id"] == entity["id"]
    return Workload(ref=VaultEntityRef(entity_id=entity["id"]), spiffe_id=spiffe_id, login=login, token=login.token)


@pytest.fixture
def handler(vault: hvac.Client) -> VaultEntityHandler:
    return VaultEntityHandler(vault)


def disable(ref: VaultEntityRef) -> Action:
    return Action(kind=ActionKind.DISABLE, target=ref, reason="test: workload terminated")


def token_is_forbidden(client: hvac.Client) -> bool:
    try:
        client.auth.token.lookup_self()
    except hvac.exceptions.Forbidden:
        return True
    return False


def assert_no_secret(token: str, *results: ActOutcome | Evidence) -> None:
    for result in results:
        assert token not in result.model_dump_json()


def test_handler_implements_the_credential_handler_protocol(handler: VaultEntityHandler) -> None:
    assert isinstance(handler, CredentialHandler)


def test_disabling_an_entity_stops_its_tokens_and_enabling_restores_them(
    vault: hvac.Client, handler: VaultEntityHandler, workload: Workload
) -> None:
    entity_path = f"identity/entity/id/{workload.ref.entity_id}"
    before = vault.read(entity_path)["data"]
    action = disable(workload.ref)

    # Given verification before the act does not confirm anything
    assert handler.verify(action).confirmed is False

    # When the entity is disabled
    first = handler.act(action)

    # Then it reads back disabled, and the entity's token gets 403 at once
    assert (first.changed, first.absent) == (True, False)
    evidence = handler.verify(action)
    assert evidence.confirmed is True
    assert evidence.observed == "disabled=true"
    assert token_is_forbidden(workload.login)

    # And nothing else about the entity changed (name, metadata, policies, aliases)
    after = vault.read(entity_path)["data"]
    for field in ("name", "metadata", "policies", "id"):
        assert after[field] == before[field]
    assert [alias["id"] for alias in after["aliases"]] == [alias["id"] for alias in before["aliases"]]

    # And a second disable is already applied
    second = handler.act(action)
    assert (second.changed, second.absent) == (False, False)
    assert second.detail == f"already applied: entity {workload.ref.entity_id} is disabled"
    assert token_is_forbidden(workload.login)

    # When enabled again (the undo), twice
    enabled = enable_entity(vault, workload.ref)
    enabled_again = handler.enable(workload.ref)

    # Then the same token works again and the second enable was already applied
    assert enabled.changed is True
    assert enabled_again.changed is False
    assert enabled_again.detail.startswith("already applied")
    assert workload.login.auth.token.lookup_self()["data"]["entity_id"] == workload.ref.entity_id
    state = read_entity(vault, workload.ref)
    assert state is not None
    assert state.disabled is False
    assert handler.verify(action).confirmed is False
    assert_no_secret(workload.token, first, second, enabled, enabled_again, evidence)


def test_a_missing_entity_is_already_absent_and_is_not_created(vault: hvac.Client, handler: VaultEntityHandler) -> None:
    # Given an entity id that does not exist
    ref = VaultEntityRef(entity_id=str(uuid.uuid4()))
    action = disable(ref)

    # When disabled twice and enabled
    outcomes = [handler.act(action), handler.act(action), enable_entity(vault, ref)]

    # Then each is already absent, nothing was created, and verification confirms (its tokens get 403)
    for outcome in outcomes:
        assert (outcome.changed, outcome.absent) == (False, True)
        assert outcome.detail.startswith("already absent")
    assert vault.read(f"identity/entity/id/{ref.entity_id}") is None
    assert handler.verify(action).confirmed is True


def test_a_deleted_entity_is_already_absent_and_its_tokens_are_dead(
    vault: hvac.Client, handler: VaultEntityHandler, workload: Workload
) -> None:
    # Given the entity was deleted after its token was issued
    vault.delete(f"identity/entity/id/{workload.ref.entity_id}")

    # When disabled
    outcome = disable_entity(vault, workload.ref)

    # Then it is already absent, verification confirms, and the token is indeed refused
    assert outcome.absent is True
    assert handler.verify(disable(workload.ref)).confirmed is True
    assert token_is_forbidden(workload.login)


def test_find_entities_by_workload_matches_metadata_or_alias_name_exactly(
    vault: hvac.Client, userpass_mount: tuple[str, str], workload: Workload, unique: str
) -> None:
    _, accessor = userpass_mount
    identity = vault.secrets.identity

    def entity(name: str, metadata: dict[str, str] | None = None, alias: str | None = None) -> str:
        entity_id: str = identity.create_or_update_entity(name=f"{name}-{unique}", metadata=metadata)["data"]["id"]
        if alias is not None:
            identity.create_or_update_entity_alias(name=alias, canonical_id=entity_id, mount_accessor=accessor)
        return entity_id

    # Given, besides the workload's own entity (matched by metadata):
    by_alias = entity("by-alias", alias=workload.spiffe_id)
    by_both = entity("by-both", metadata={"spiffe_id": workload.spiffe_id}, alias=f"{workload.spiffe_id}-both")
    # and entities that only look alike: a longer id, a prefix, another key, an alias with a suffix
    entity("longer", metadata={"spiffe_id": f"{workload.spiffe_id}/extra"})
    entity("prefix", metadata={"spiffe_id": workload.spiffe_id[:-3]})
    entity("other-key", metadata={"workload": workload.spiffe_id})
    entity("alias-suffix", alias=f"{workload.spiffe_id}/x")
    custom = entity("custom-key", metadata={"workload": f"{workload.spiffe_id}-custom"})

    # When discovery runs with the default metadata key
    found = find_entities_by_workload(vault, workload.spiffe_id)

    # Then exactly the metadata and alias matches are found
    assert found == sorted(
        [workload.ref, VaultEntityRef(entity_id=by_alias), VaultEntityRef(entity_id=by_both)],
        key=lambda ref: ref.entity_id,
    )

    # And a configured metadata key is honoured
    assert find_entities_by_workload(vault, f"{workload.spiffe_id}-custom", metadata_key="workload") == [
        VaultEntityRef(entity_id=custom)
    ]
    assert find_entities_by_workload(vault, f"spiffe://example.org/ns/none-{unique}") == []


@pytest.mark.parametrize(("spiffe_id", "metadata_key"), [("", "spiffe_id"), ("   ", "spiffe_id"), ("x", "")])
def test_find_entities_by_workload_refuses_an_empty_id_or_key(
    vault: hvac.Client, spiffe_id: str, metadata_key: str
) -> None:
    with pytest.raises(InvalidInput):
        find_entities_by_workload(vault, spiffe_id, metadata_key=metadata_key)


def test_the_handler_refuses_an_action_for_another_kind(handler: VaultEntityHandler) -> None:
    action = Action(kind=ActionKind.REVOKE, target=VaultTokenRef(accessor="a" * 24), reason="wrong handler")
    with pytest.raises(UnsupportedAction):
        handler.act(action)
    with pytest.raises(UnsupportedAction):
        handler.verify(action)
