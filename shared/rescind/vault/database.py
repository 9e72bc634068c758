"""Vault's database secrets engine: static roles' passwords and connections' root credentials, rotated by Vault.

A static role is one database user whose password Vault owns: `POST <mount>/rotate-role/<role>` changes it in the
database and in Vault at once, and Vault records the moment as the role's `last_vault_rotation`. That moment is
the read-back: a rotation at or after the action's `rotated_since` (the run's start) is this action, so a replay
finds it applied with the earlier rotation's time as evidence.

A connection's root credential is the user Vault logs in to the database with: `POST <mount>/rotate-root/<name>`
leaves a password only Vault knows. It is never planned automatically and a run that rotates one waits for a
person's approval (the guard's rule). OpenBao records no time for it, so its read-back is the connection, read
again, still naming its user; a replay within one run is stopped by the ledger's action id, and a second
rotation of a root credential ends in the same state.

A leaked static role password is located by reading each in-scope static role's current password
(`<mount>/static-creds/<role>`) and comparing the HMACs of the two under a key made for that one search, in
constant time; neither value is kept, logged or put in a model, and at most `database_leak_max_roles` roles are read.

Dynamic credentials (`<mount>/creds/<role>`) are leases: `rescind.vault.leases` revokes them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

import hvac
import hvac.exceptions

from rescind.engine.base import KindHandler, Step
from rescind.exceptions import ActionFailed, InvalidInput
from rescind.kinds import InventoryRow, InventoryScan, InventorySection, KindSpec, ValueLocator, no_guard_facts
from rescind.leaks.types import LocatedLeak, SecretType, Unlocated
from rescind.models import (
    Action,
    ActionKind,
    ActOutcome,
    CredentialKind,
    DatabaseRootRef,
    DatabaseStaticRoleRef,
    Evidence,
)
from rescind.models.refs import format_ref
from rescind.vault.client import read_data, vault_errors
from rescind.vault.common import as_int, list_keys, parse_vault_time

if TYPE_CHECKING:
    from rescind.kinds import LeakSearch
    from rescind.leaks.types import LeakAlert


@dataclass(frozen=True)
class StaticRoleState:
    """What `<mount>/static-roles/<role>` says: never the password."""

    username: str
    db_name: str
    last_vault_rotation: datetime | None
    rotation_period_seconds: int


def _read(client: hvac.Client, path: str, operation: str) -> dict[str, object] | None:
    """The data at `path`, or None when Vault has nothing there (404)."""
    with vault_errors(operation):
        try:
            response = client.adapter.get(f"/v1/{path}")
        except hvac.exceptions.InvalidPath:
            return None
    return read_data(response) if response is not None else None


# --- static roles ---------------------------------------------------------------------------------


def read_static_role(client: hvac.Client, ref: DatabaseStaticRoleRef) -> StaticRoleState | None:
    data = _read(client, f"{ref.mount}/static-roles/{ref.role}", f"read static role {ref.role} on {ref.mount}")
    if data is None:
        return None
    return StaticRoleState(
        username=str(data.get("username") or ""),
        db_name=str(data.get("db_name") or ""),
        last_vault_rotation=parse_vault_time(data.get("last_vault_rotation")),
        rotation_period_seconds=as_int(data.get("rotation_period")),
    )


def list_static_roles(client: hvac.Client, mount: str) -> list[DatabaseStaticRoleRef]:
    with vault_errors(f"list static roles on {mount}"):
        names = list_keys(client, f"/v1/{mount}/static-roles")
    return [DatabaseStaticRoleRef(mount=mount, role=name) for name in sorted(names) if not name.endswith("/")]


def _rotated_since(action: Action) -> datetime:
    since = action.params.rotated_since
    if since is None:  # the Action model requires it; a hand-built one is refused before any call
        raise InvalidInput("rotating a database static role needs params.rotated_since (the run's start)")
    return since


def _require_static_role(client: hvac.Client, ref: DatabaseStaticRoleRef) -> StaticRoleState:
    state = read_static_role(client, ref)
    if state is None:
        raise ActionFailed(f"static role {ref.role} not found on database mount {ref.mount} of {client.url}")
    return state


def rotate_static_role(client: hvac.Client, ref: DatabaseStaticRoleRef, since: datetime) -> ActOutcome:
    """Have Vault rotate the role's password, unless it already did at or after `since`."""
    state = _require_static_role(client, ref)
    if state.last_vault_rotation is not None and state.last_vault_rotation >= since:
        return ActOutcome(
            changed=False,
            detail=f"already applied: {ref.mount} rotated {state.username}'s password at "
            f"{state.last_vault_rotation.isoformat()}, after {since.isoformat()}",
        )
    with vault_errors(f"rotate static role {ref.role} on {ref.mount}"):
        client.adapter.post(f"/v1/{ref.mount}/rotate-role/{ref.role}")
    return ActOutcome(changed=True, detail=f"{client.url} rotated the password of database user {state.username}")


def verify_static_role_rotated(client: hvac.Client, ref: DatabaseStaticRoleRef, since: datetime) -> Evidence:
    """Confirmed by the role's `last_vault_rotation` at or after `since`."""
    state = _require_static_role(client, ref)
    rotated = state.last_vault_rotation
    return Evidence(
        check=f"{ref.mount}/static-roles/{ref.role} last_vault_rotation >= {since.isoformat()}",
        observed=f"last_vault_rotation {rotated.isoformat() if rotated else 'none'} (user {state.username})",
        confirmed=rotated is not None and rotated >= since,
    )


# --- root credentials -----------------------------------------------------------------------------


def _read_connection(client: hvac.Client, ref: DatabaseRootRef) -> dict[str, object] | None:
    return _read(client, f"{ref.mount}/config/{ref.connection}", f"read connection {ref.connection} on {ref.mount}")


def _connection_user(client: hvac.Client, ref: DatabaseRootRef) -> str:
    data = _read_connection(client, ref)
    if data is None:
        raise ActionFailed(f"connection {ref.connection} not found on database mount {ref.mount} of {client.url}")
    details = data.get("connection_details")
    return str(details.get("username") or "") if isinstance(details, dict) else ""


def rotate_root(client: hvac.Client, ref: DatabaseRootRef) -> ActOutcome:
    """Have Vault rotate the root credential it connects with; afterwards only Vault knows it."""
    user = _connection_user(client, ref)
    with vault_errors(f"rotate root of connection {ref.connection} on {ref.mount}"):
        client.adapter.post(f"/v1/{ref.mount}/rotate-root/{ref.connection}")
    return ActOutcome(changed=True, detail=f"{client.url} rotated root user {user} of connection {ref.connection}")


def verify_root_rotated(client: hvac.Client, ref: DatabaseRootRef) -> Evidence:
    """OpenBao records no root rotation time: the connection, read again, still names its user (rotate-root
    answered without error, which Vault does only once the database and its storage both hold the new one)."""
    user = _connection_user(client, ref)
    return Evidence(
        check=f"{ref.mount}/config/{ref.connection} after rotate-root",
        observed=f"connection present, root user {user or '(none)'}",
        confirmed=bool(user),
    )


def is_database_mount(client: hvac.Client, mount: str) -> bool:
    """Whether `mount` is a database secrets engine, by its type in sys/internal/ui/mounts (LeaseMounts may name
    other engines whose leases Rescind revokes, which have no static roles)."""
    data = _read(client, f"sys/internal/ui/mounts/{mount}", f"read the type of mount {mount}")
    return data is not None and data.get("type") == "database"


# --- a leaked password ----------------------------------------------------------------------------


def database_mounts(client: hvac.Client, mounts: Iterable[str]) -> Iterator[str]:
    """The mounts among `mounts` (LeaseMounts) that are database secrets engines, in order."""
    for mount in mounts:
        mount = mount.strip().strip("/")
        if mount and is_database_mount(client, mount):
            yield mount


def _password_digest(key: bytes, password: str) -> bytes:
    return hmac.new(key, password.encode(), hashlib.sha256).digest()


def _holds_password(client: hvac.Client, ref: DatabaseStaticRoleRef, key: bytes, leaked: bytes) -> bool:
    """Whether the role's current password has the HMAC `leaked`. The password stays inside this function."""
    data = _read(client, f"{ref.mount}/static-creds/{ref.role}", f"read static role {ref.role}'s credential")
    current = data.get("password") if data is not None else None
    return isinstance(current, str) and hmac.compare_digest(_password_digest(key, current), leaked)


def locate_leaked_database_password(search: LeakSearch, alert: LeakAlert, value: str | None) -> LocatedLeak | Unlocated:
    """The static role on the database mounts in scope whose current password is `value`, reading at most
    `scope.database_leak_max_roles` roles' credentials in sorted order."""
    vault, scope = search.backends.vault, search.scope
    if not value:
        return Unlocated(why="a database password is located by its value; the alert carries none")
    key = secrets.token_bytes(32)  # this search's own: a digest compared here means nothing anywhere else
    leaked = _password_digest(key, value)
    mounts, read = list(database_mounts(vault, scope.lease_mounts)), 0
    for mount in mounts:
        for ref in list_static_roles(vault, mount):
            if read >= scope.database_leak_max_roles:
                return Unlocated(
                    why=f"no static role among the first {read} read on {', '.join(mounts)} has this password; "
                    f"more are not read (DATABASE_LEAK_MAX_ROLES={scope.database_leak_max_roles})"
                )
            read += 1
            if _holds_password(vault, ref, key, leaked):
                return LocatedLeak(
                    credentials=(ref,),
                    evidence=f"the current password of static role {ref.role} on {mount} of {vault.url} matched "
                    f"(HMAC compared; {read} role(s) read)",
                )
    where = ", ".join(mounts) or "(none among LeaseMounts)"
    return Unlocated(why=f"no static role on the database mounts in scope ({where}) has this password ({read} read)")


# --- the inventory report -------------------------------------------------------------------------


def _inventory(scan: InventoryScan) -> list[InventorySection]:
    """Static roles on the LeaseMounts that are database mounts, counted by the age of their current password."""
    return [(f"database mount {mount}", partial(_static_role_rows, scan, mount)) for mount in scan.scope.lease_mounts]


def _static_role_rows(scan: InventoryScan, mount: str) -> Iterator[InventoryRow]:
    vault, mount = scan.backends.vault, mount.strip().strip("/")
    scan.wait()
    if not is_database_mount(vault, mount):
        return  # another engine's leases: nothing here has static roles
    scan.wait()
    for ref in list_static_roles(vault, mount):
        scan.wait()
        state = read_static_role(vault, ref)
        if state is None:
            continue  # deleted during the scan
        yield InventoryRow(
            target=format_ref(ref),
            kind=CredentialKind.DATABASE_STATIC_ROLE,
            created_at=state.last_vault_rotation or scan.now,
            standing="rotation_period 0: never rotated by Vault" if state.rotation_period_seconds == 0 else None,
        )


# --- the kinds ------------------------------------------------------------------------------------


class DatabaseStaticRoleHandler(KindHandler[DatabaseStaticRoleRef]):
    def __init__(self, client: hvac.Client) -> None:
        super().__init__(
            CredentialKind.DATABASE_STATIC_ROLE,
            DatabaseStaticRoleRef,
            {
                ActionKind.ROTATE: Step.reads_alone(
                    lambda ref, action: rotate_static_role(client, ref, _rotated_since(action)),
                    lambda ref, action: verify_static_role_rotated(client, ref, _rotated_since(action)),
                )
            },
        )
        self._client = client

    def look_up(self, ref: DatabaseStaticRoleRef) -> bool | None:
        return read_static_role(self._client, ref) is not None


class DatabaseRootHandler(KindHandler[DatabaseRootRef]):
    def __init__(self, client: hvac.Client) -> None:
        super().__init__(
            CredentialKind.DATABASE_ROOT,
            DatabaseRootRef,
            {ActionKind.ROTATE: Step.on_ref(client, rotate_root, verify_root_rotated)},
        )
        self._client = client

    def look_up(self, ref: DatabaseRootRef) -> bool | None:
        return _read_connection(self._client, ref) is not None


STATIC_ROLE_KIND = KindSpec(
    kind=CredentialKind.DATABASE_STATIC_ROLE,
    ref_type=DatabaseStaticRoleRef,
    ending_action=ActionKind.ROTATE,  # named in a leak or a manual run: its password is rotated
    build_handler=lambda backends: DatabaseStaticRoleHandler(backends.vault),
    read_guard_facts=no_guard_facts,  # a static role carries no metadata to hold it by
    discover=None,  # a static role is shared, not a workload's: nothing is found by workload
    locate_leaked={SecretType.DATABASE_PASSWORD: ValueLocator(locate_leaked_database_password, needs_value=True)},
    inventory=_inventory,
)

ROOT_KIND = KindSpec(
    kind=CredentialKind.DATABASE_ROOT,
    ref_type=DatabaseRootRef,
    ending_action=ActionKind.ROTATE,  # only when a person names it; the guard then waits for approval
    build_handler=lambda backends: DatabaseRootHandler(backends.vault),
    read_guard_facts=no_guard_facts,
    discover=None,
    locate_leaked={},
    inventory=None,
)
