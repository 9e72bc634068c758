"""AppRole secret-ids, always by accessor: locate by metadata, destroy, verify.

The secret-id value is never read, held or returned; OpenBao's accessor lookup does not return it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING

import hvac
import hvac.exceptions

from rescind.engine.base import KindHandler, Step
from rescind.exceptions import ActionFailed, InvalidInput
from rescind.holds import GuardFacts, facts_from_vault_metadata
from rescind.kinds import Backends, GuardRead, InventoryRow, InventoryScan, InventorySection, KindSpec, ValueLocator
from rescind.leaks.types import LocatedLeak, SecretType, Unlocated
from rescind.models import (
    ActionKind,
    ActOutcome,
    AppRoleSecretIdRef,
    CredentialKind,
    Evidence,
    TtlTargetType,
    VaultTtlTargetRef,
)
from rescind.models.refs import format_ref
from rescind.vault.client import read_data, vault_errors
from rescind.vault.common import as_int, list_keys, parse_vault_time
from rescind.vault.tokens import DEFAULT_METADATA_KEY
from rescind.vault.ttl import list_role_names, ttl_target_rows

if TYPE_CHECKING:
    from rescind.discovery import DiscoveryScope
    from rescind.kinds import LeakSearch
    from rescind.leaks.types import LeakAlert

# What OpenBao says for a secret-id that never expires.
_NEVER_EXPIRES = {"", "0001-01-01T00:00:00Z"}

# OpenBao's answer (404) to a lookup of an accessor that names no secret-id of the role. A destroy of
# such an accessor answers 500 with the same text, which must not be mistaken for an outage.
_ACCESSOR_NOT_FOUND = "failed to find accessor entry"
# A 404 with this text means the mount does not exist (or is not a path OpenBao knows): never "empty".
_NO_ROUTE = "no handler for route"


@dataclass(frozen=True)
class SecretIdState:
    """What the accessor lookup says about a live secret-id. No field can hold the secret-id itself."""

    accessor: str
    metadata: dict[str, str]
    expiration_time: str
    num_uses: int
    creation_time: str = ""
    ttl_seconds: int = 0  # secret_id_ttl: 0 means it never expires


def _role_missing(error: hvac.exceptions.VaultError) -> bool:
    return "does not exist" in str(error) and "role" in str(error)


def _describe(error: Exception) -> str:
    return str(error).strip()[:300]


# --- locate ---------------------------------------------------------------------------------------


def list_approle_roles(client: hvac.Client, mount: str = "approle") -> list[str]:
    """The role names on an AppRole mount. A mount that does not exist raises ActionFailed."""
    return list_role_names(client, TtlTargetType.APPROLE_ROLE, mount)


def list_secret_id_accessors(client: hvac.Client, role_name: str, mount: str = "approle") -> list[AppRoleSecretIdRef]:
    """The secret-id accessors of one role. An unknown role or mount raises ActionFailed."""
    operation = f"list secret-id accessors of {mount}/{role_name}"
    with vault_errors(operation):
        try:
            # Paged by the secret-ids' HMACs, listed by accessor: `after` cannot page it (list_keys).
            accessors = list_keys(client, f"/v1/auth/{mount}/role/{role_name}/secret-id", paged=False)
        except (hvac.exceptions.InvalidPath, hvac.exceptions.InvalidRequest) as error:
            raise ActionFailed(f"{operation}: {_describe(error)}") from error
    return [AppRoleSecretIdRef(mount=mount, role_name=role_name, accessor=accessor) for accessor in accessors]


def lookup_secret_id(client: hvac.Client, ref: AppRoleSecretIdRef) -> SecretIdState | None:
    """The secret-id's state, or None when OpenBao says it has no entry for the accessor (it is gone).

    A missing role or mount is not proof of anything and raises ActionFailed.
    """
    operation = f"lookup secret-id accessor {ref.accessor} of {ref.mount}/{ref.role_name}"
    with vault_errors(operation):
        try:
            response = client.auth.approle.read_secret_id_accessor(ref.role_name, ref.accessor, mount_point=ref.mount)
        except hvac.exceptions.InvalidPath as error:
            if _ACCESSOR_NOT_FOUND in str(error) and _NO_ROUTE not in str(error):
                return None
            raise ActionFailed(f"{operation}: {_describe(error)}") from error
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.InternalServerError) as error:
            # OpenBao answers 500 for an unknown role: permanent, so not VaultUnavailable.
            if _role_missing(error):
                raise ActionFailed(f"{operation}: the role does not exist") from error
            raise
    data = read_data(response)
    metadata = data.get("metadata") or {}
    return SecretIdState(
        accessor=str(data.get("secret_id_accessor") or ref.accessor),
        metadata={str(key): str(value) for key, value in metadata.items()},
        expiration_time=str(data.get("expiration_time") or ""),
        num_uses=as_int(data.get("secret_id_num_uses")),
        creation_time=str(data.get("creation_time") or ""),
        ttl_seconds=as_int(data.get("secret_id_ttl")),
    )


def find_secret_ids_by_metadata(
    client: hvac.Client, key: str, value: str, *, mount: str = "approle", role_name: str | None = None
) -> list[AppRoleSecretIdRef]:
    """Secret-ids whose metadata `key` equals `value` exactly, in one role or in every role of the mount.

    Roles or secret-ids that disappear during the scan are skipped; a missing mount or a named role
    that does not exist raises ActionFailed rather than looking like "nothing found".
    """
    found = find_secret_id_states_by_metadata(client, key, value, mount=mount, role_name=role_name)
    return [ref for ref, _state in found]


def find_secret_id_states_by_metadata(
    client: hvac.Client, key: str, value: str, *, mount: str = "approle", role_name: str | None = None
) -> list[tuple[AppRoleSecretIdRef, SecretIdState]]:
    """As `find_secret_ids_by_metadata`, with the state each secret-id was found in."""
    if not key or not value:
        raise InvalidInput("secret-id discovery needs a non-empty metadata key and value")
    scanning_all_roles = role_name is None
    roles = list_approle_roles(client, mount) if role_name is None else [role_name]
    found: list[tuple[AppRoleSecretIdRef, SecretIdState]] = []
    for role in roles:
        try:
            candidates = list_secret_id_accessors(client, role, mount)
            for ref in candidates:
                state = lookup_secret_id(client, ref)
                if state is not None and state.metadata.get(key) == value:
                    found.append((ref, state))
        except ActionFailed as error:
            if scanning_all_roles and _role_missing(error):
                continue  # deleted while we scanned: it holds nothing any more
            raise
    return found


def find_secret_ids_by_spiffe_id(
    client: hvac.Client,
    spiffe_id: str,
    *,
    mount: str = "approle",
    role_name: str | None = None,
    metadata_key: str = DEFAULT_METADATA_KEY,
) -> list[AppRoleSecretIdRef]:
    """The workload's secret-ids by its SPIFFE ID, under the configurable metadata key."""
    return find_secret_ids_by_metadata(client, metadata_key, spiffe_id, mount=mount, role_name=role_name)


# --- act ------------------------------------------------------------------------------------------


def destroy_secret_id_by_accessor(client: hvac.Client, ref: AppRoleSecretIdRef) -> ActOutcome:
    """Destroy the secret-id so no new login can use it, then read it back. Tokens it already produced are not touched.

    A secret-id that is gone already is told by the destroy's own answer ("failed to find accessor entry"), so no
    lookup comes first. The lookup after the destroy is the action's read-back (`ActOutcome.read_back`), the same
    read `verify_secret_id_destroyed` makes.
    """
    operation = f"destroy secret-id accessor {ref.accessor} of {ref.mount}/{ref.role_name}"
    with vault_errors(operation):
        try:
            client.auth.approle.destroy_secret_id_accessor(ref.role_name, ref.accessor, mount_point=ref.mount)
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.InternalServerError) as error:
            if _ACCESSOR_NOT_FOUND in str(error):
                return ActOutcome(changed=False, absent=True, detail="already absent")
            if _role_missing(error):
                raise ActionFailed(f"{operation}: the role does not exist") from error
            raise
        except hvac.exceptions.InvalidPath as error:  # no such mount (or not an AppRole one)
            raise ActionFailed(f"{operation}: {_describe(error)}") from error
    return ActOutcome(
        changed=True,
        detail=f"destroyed secret-id accessor {ref.accessor} of {ref.role_name}",
        read_back=verify_secret_id_destroyed(client, ref),
    )


# --- verify ---------------------------------------------------------------------------------------


def verify_secret_id_destroyed(client: hvac.Client, ref: AppRoleSecretIdRef) -> Evidence:
    """Confirmed only by OpenBao's 404 "failed to find accessor entry"; a missing role or mount raises."""
    check = f"secret-id-accessor/lookup {ref.mount}/{ref.role_name} {ref.accessor}"
    state = lookup_secret_id(client, ref)
    if state is None:
        return Evidence(check=check, observed="no accessor entry: the secret-id is gone", confirmed=True)
    return Evidence(check=check, observed="secret-id still exists", confirmed=False)


# --- a leaked value ------------------------------------------------------------------------------


# The role names of each AppRole mount, per client, as last listed: a warm function looks a leaked value up on them
# without listing the mount first. Only candidates: a match is the value's own lookup on its role, and a value no
# remembered role holds is looked up on the roles a fresh listing adds (`locate_leaked_secret_id`).
_known_roles: weakref.WeakKeyDictionary[hvac.Client, dict[str, tuple[str, ...]]] = weakref.WeakKeyDictionary()
_known_roles_lock = threading.Lock()


def _remembered_roles(client: hvac.Client, mount: str) -> tuple[str, ...] | None:
    with _known_roles_lock:
        return _known_roles.get(client, {}).get(mount)


def _list_and_remember_roles(client: hvac.Client, mount: str) -> tuple[str, ...]:
    roles = tuple(list_approle_roles(client, mount))
    with _known_roles_lock:
        _known_roles.setdefault(client, {})[mount] = roles
    return roles


def _secret_id_on_role(vault: hvac.Client, mount: str, role_name: str, secret_id: str | None) -> dict[str, object]:
    """`secret-id/lookup` of the value on one role: its data, or {} when the role does not hold it (or is gone)."""
    with vault_errors(f"secret-id lookup on {mount} role {role_name}"):
        try:
            response = vault.auth.approle.read_secret_id(role_name=role_name, secret_id=secret_id, mount_point=mount)
        except (hvac.exceptions.InvalidPath, hvac.exceptions.InvalidRequest):
            return {}
        except hvac.exceptions.InternalServerError as error:
            if _role_missing(error):  # a remembered role deleted since: it holds nothing
                return {}
            raise
    return read_data(response)


def locate_leaked_secret_id(search: LeakSearch, alert: LeakAlert, secret_id: str | None) -> LocatedLeak | Unlocated:
    """`secret-id/lookup` of the value on each role of the AppRole mounts in scope: its accessor and owner.

    The roles are the ones this client last listed on the mount (none before its first leak: then it lists); when
    none of them holds the value, the mount is listed again and the roles it adds are looked up too."""
    vault, scope = search.backends.vault, search.scope
    for mount in scope.approle_mounts:
        remembered = _remembered_roles(vault, mount)
        tried = remembered or ()
        for role_name in tried:
            found = _secret_id_located(search, mount, role_name, secret_id)
            if found is not None:
                return found
        for role_name in _list_and_remember_roles(vault, mount):
            if role_name in tried:
                continue
            found = _secret_id_located(search, mount, role_name, secret_id)
            if found is not None:
                return found
    mounts = ", ".join(scope.approle_mounts) or "(none)"
    return Unlocated(why=f"no AppRole role on the mounts in scope ({mounts}) has this secret-id")


def _secret_id_located(search: LeakSearch, mount: str, role_name: str, secret_id: str | None) -> LocatedLeak | None:
    """The secret-id as the lookup on `role_name` found it, its guard facts from the same answer; None when not."""
    data = _secret_id_on_role(search.backends.vault, mount, role_name, secret_id)
    accessor = str(data.get("secret_id_accessor") or "")
    if not accessor:
        return None
    found = data.get("metadata") or {}
    metadata = {str(key): str(value) for key, value in found.items()} if isinstance(found, dict) else {}
    key = search.scope.metadata_key
    ref = AppRoleSecretIdRef(mount=mount, role_name=role_name, accessor=accessor)
    return LocatedLeak(
        credentials=(ref,),
        owner=metadata.get(key) or None,
        evidence=f"secret-id lookup matched on {mount} role {role_name}",
        exact=True,
        guard_facts={ref.key: facts_from_vault_metadata(metadata, key)},
    )


# --- the inventory report -------------------------------------------------------------------------


def _inventory(scan: InventoryScan) -> list[InventorySection]:
    return [(f"approle mount {mount}", partial(_secret_id_rows, scan, mount)) for mount in scan.scope.approle_mounts]


def _secret_id_rows(scan: InventoryScan, mount: str) -> Iterator[InventoryRow]:
    """Every secret-id of the mount (age, owner, never expiring), and its roles' and its own TTLs above ceiling."""
    vault = scan.backends.vault
    scan.wait()
    for role in list_approle_roles(vault, mount):
        yield from ttl_target_rows(
            scan, VaultTtlTargetRef(target_type=TtlTargetType.APPROLE_ROLE, mount=mount, role_name=role)
        )
        scan.wait()
        for ref in list_secret_id_accessors(vault, role, mount):
            scan.wait()
            state = lookup_secret_id(vault, ref)
            if state is None:
                continue  # destroyed during the scan
            never_expires = state.ttl_seconds == 0 or state.expiration_time in _NEVER_EXPIRES
            yield InventoryRow(
                target=format_ref(ref),
                kind=CredentialKind.APPROLE_SECRET_ID,
                created_at=parse_vault_time(state.creation_time) or scan.now,
                owner=state.metadata.get(scan.scope.metadata_key),
                standing="secret_id_ttl 0: never expires" if never_expires else None,
            )
    yield from ttl_target_rows(scan, VaultTtlTargetRef(target_type=TtlTargetType.MOUNT, mount=f"auth/{mount}"))


# --- the kind -------------------------------------------------------------------------------------


class AppRoleSecretIdHandler(KindHandler[AppRoleSecretIdRef]):
    """CredentialHandler for AppRole secret-ids: revoke means destroy by accessor."""

    def __init__(self, client: hvac.Client) -> None:
        super().__init__(
            CredentialKind.APPROLE_SECRET_ID,
            AppRoleSecretIdRef,
            {ActionKind.REVOKE: Step.on_ref(client, destroy_secret_id_by_accessor, verify_secret_id_destroyed)},
        )
        self._client = client

    def look_up(self, ref: AppRoleSecretIdRef) -> bool | None:
        return lookup_secret_id(self._client, ref) is not None


def _guard_facts(read: GuardRead, ref: AppRoleSecretIdRef) -> GuardFacts:
    secret_id = lookup_secret_id(read.backends.vault, ref)
    facts = facts_from_vault_metadata(secret_id.metadata if secret_id is not None else {}, read.metadata_key)
    return replace(facts, found=secret_id is not None)


def _discover(backends: Backends, workload_id: str, scope: DiscoveryScope) -> list[AppRoleSecretIdRef]:
    """The workload's secret-ids; each one's guard facts are kept for the plan's guard."""
    found: list[AppRoleSecretIdRef] = []
    for mount in scope.approle_mounts:
        for ref, state in find_secret_id_states_by_metadata(
            backends.vault, scope.metadata_key, workload_id, mount=mount
        ):
            backends.keep_guard_facts(ref, facts_from_vault_metadata(state.metadata, scope.metadata_key))
            found.append(ref)
    return found


KIND = KindSpec(
    kind=CredentialKind.APPROLE_SECRET_ID,
    ref_type=AppRoleSecretIdRef,
    ending_action=ActionKind.REVOKE,
    build_handler=lambda backends: AppRoleSecretIdHandler(backends.vault),
    read_guard_facts=_guard_facts,
    discover=_discover,
    locate_leaked={SecretType.VAULT_SECRET_ID: ValueLocator(locate_leaked_secret_id, needs_value=True)},
    inventory=_inventory,
)
