"""Vault identity entities: find them by workload, disable them (containment), enable them (the undo).

A disabled entity stops every token of that entity at once (403), and its logins are refused, without revoking
anything: re-enabling restores them. Tokens of a deleted entity get 403 too, so a missing entity is already dead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import hvac
import hvac.exceptions

from rescind.engine.base import KindHandler, Step, seen_state
from rescind.exceptions import ActionFailed, InvalidInput
from rescind.holds import GuardFacts, facts_from_vault_metadata
from rescind.kinds import Backends, GuardRead, KindSpec
from rescind.models import ActionKind, ActOutcome, CredentialKind, Evidence, VaultEntityRef
from rescind.vault.client import read_data, vault_errors

if TYPE_CHECKING:
    from rescind.discovery import DiscoveryScope

# Vault entity ids are UUIDs; VaultEntityRef refuses anything else.
_ENTITY_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class EntityState:
    """What Rescind needs of an entity: never its metadata values or policies."""

    entity_id: str
    name: str
    disabled: bool


def _entity_path(ref: VaultEntityRef) -> str:
    return f"identity/entity/id/{ref.entity_id}"


def _read_entity_data(client: hvac.Client, ref: VaultEntityRef) -> dict[str, Any] | None:
    with vault_errors(f"read entity {ref.entity_id}"):
        response = client.read(_entity_path(ref))  # a 404 comes back as None
    data = read_data(response) if response is not None else {}
    return data if data.get("id") == ref.entity_id else None


def read_entity(client: hvac.Client, ref: VaultEntityRef) -> EntityState | None:
    """The entity's current state, or None when it does not exist."""
    return _entity_state(ref, _read_entity_data(client, ref))


def _entity_state(ref: VaultEntityRef, data: dict[str, Any] | None) -> EntityState | None:
    if data is None:
        return None
    return EntityState(entity_id=ref.entity_id, name=str(data.get("name", "")), disabled=data.get("disabled") is True)


def _set_disabled(client: hvac.Client, ref: VaultEntityRef, *, disabled: bool) -> bool:
    """Update only the `disabled` flag (an entity update keeps the fields it is not given). False: entity gone."""
    try:
        with vault_errors(f"{'disable' if disabled else 'enable'} entity {ref.entity_id}"):
            # This endpoint updates an existing id and refuses an unknown one: it never creates an entity.
            client.write_data(_entity_path(ref), data={"disabled": disabled})
    except hvac.exceptions.InvalidRequest as error:
        if "entity not found" in str(error).lower():
            return False
        raise ActionFailed(f"update entity {ref.entity_id}: {str(error)[:300]}") from error
    return True


def _set_entity_disabled(
    client: hvac.Client, ref: VaultEntityRef, *, disabled: bool, seen: GuardFacts | None = None
) -> ActOutcome:
    state = seen_state(seen, EntityState, lambda: read_entity(client, ref))
    if state is None:
        return ActOutcome(changed=False, absent=True, detail=f"already absent: entity {ref.entity_id} does not exist")
    wanted = "disabled" if disabled else "enabled"
    if state.disabled is disabled:
        return ActOutcome(changed=False, detail=f"already applied: entity {ref.entity_id} is {wanted}")
    if not _set_disabled(client, ref, disabled=disabled):
        return ActOutcome(changed=False, absent=True, detail=f"already absent: entity {ref.entity_id} does not exist")
    return ActOutcome(changed=True, detail=f"entity {ref.entity_id} {wanted}")


def disable_entity(client: hvac.Client, ref: VaultEntityRef, *, seen: GuardFacts | None = None) -> ActOutcome:
    """Contain: every token of the entity gets 403 from now on. Reversible with `enable_entity`. `seen`: what the
    action's guard read of the entity moments before, not read again."""
    return _set_entity_disabled(client, ref, disabled=True, seen=seen)


def enable_entity(client: hvac.Client, ref: VaultEntityRef) -> ActOutcome:
    """Undo a disable: the entity's tokens that have not expired work again."""
    return _set_entity_disabled(client, ref, disabled=False)


def verify_entity_disabled(client: hvac.Client, ref: VaultEntityRef) -> Evidence:
    """Read the entity back: confirmed when its `disabled` flag is set, or when it no longer exists."""
    check = f"read identity/entity/id/{ref.entity_id}: disabled flag"
    state = read_entity(client, ref)
    if state is None:
        return Evidence(check=check, observed="entity does not exist: its tokens get 403", confirmed=True)
    return Evidence(check=check, observed=f"disabled={str(state.disabled).lower()}", confirmed=state.disabled)


def _list_entities(client: hvac.Client) -> dict[str, Any]:
    """entity id → key_info (name and aliases, without metadata)."""
    with vault_errors("list identity entities"):
        response = client.list("identity/entity/id")  # a 404 (no entity at all) comes back as None
    data = read_data(response)
    key_info = data.get("key_info")
    info: dict[str, Any] = key_info if isinstance(key_info, dict) else {}
    keys = data.get("keys")
    return {str(key): info.get(key) or {} for key in keys} if isinstance(keys, list) else {}


def _has_alias_named(info: Any, name: str) -> bool:
    aliases = info.get("aliases") if isinstance(info, dict) else None
    return isinstance(aliases, list) and any(isinstance(a, dict) and a.get("name") == name for a in aliases)


def find_entities_by_workload(
    client: hvac.Client, spiffe_id: str, metadata_key: str = "spiffe_id"
) -> list[VaultEntityRef]:
    """Entities whose metadata[metadata_key] is exactly `spiffe_id`, or that have an alias named exactly that.

    The entity LIST carries alias names but not metadata, so every entity not matched by an alias is read.
    """
    if not spiffe_id.strip() or not metadata_key.strip():
        # An empty id would match every entity with an empty value: refuse rather than over-match.
        raise InvalidInput("find_entities_by_workload needs a non-empty workload id and metadata key")
    matched: set[str] = set()
    for entity_id, info in _list_entities(client).items():
        if not _ENTITY_ID_RE.fullmatch(entity_id):
            continue
        if _has_alias_named(info, spiffe_id):
            matched.add(entity_id)
            continue
        with vault_errors(f"read entity {entity_id}"):
            response = client.read(f"identity/entity/id/{entity_id}")
        metadata = read_data(response).get("metadata") if response is not None else None
        if isinstance(metadata, dict) and metadata.get(metadata_key) == spiffe_id:
            matched.add(entity_id)
    return [VaultEntityRef(entity_id=entity_id) for entity_id in sorted(matched)]


class VaultEntityHandler(KindHandler[VaultEntityRef]):
    """Disables identity entities (reversible containment); `enable` is the undo."""

    def __init__(self, client: hvac.Client) -> None:
        super().__init__(
            CredentialKind.VAULT_ENTITY,
            VaultEntityRef,
            {
                ActionKind.DISABLE: Step(
                    lambda ref, _action, seen: disable_entity(client, ref, seen=seen),
                    lambda ref, _action: verify_entity_disabled(client, ref),
                )
            },
        )
        self._client = client

    def enable(self, ref: VaultEntityRef) -> ActOutcome:
        return enable_entity(self._client, ref)

    def look_up(self, ref: VaultEntityRef) -> bool | None:
        return read_entity(self._client, ref) is not None


def _guard_facts(read: GuardRead, ref: VaultEntityRef) -> GuardFacts:
    """Its metadata's hold and owner; the entity read is kept for the same action's disable."""
    data = _read_entity_data(read.backends.vault, ref)
    facts = facts_from_vault_metadata(dict((data or {}).get("metadata") or {}), read.metadata_key)
    return replace(facts, found=data is not None, state=_entity_state(ref, data))


def _discover(backends: Backends, workload_id: str, scope: DiscoveryScope) -> list[VaultEntityRef]:
    return find_entities_by_workload(backends.vault, workload_id, metadata_key=scope.metadata_key)


KIND = KindSpec(
    kind=CredentialKind.VAULT_ENTITY,
    ref_type=VaultEntityRef,
    ending_action=ActionKind.DISABLE,
    build_handler=lambda backends: VaultEntityHandler(backends.vault),
    read_guard_facts=_guard_facts,
    discover=_discover,
    locate_leaked={},  # a leaked token names its entity (see the Vault token kind)
    inventory=None,  # an entity is an identity, not a credential to count
)
