"""KV v2 secrets, by mount + path: locate by custom_metadata or by a leaked value, rotate, verify.

The reads, writes and the folder walk are in `kv_store`; the four-step rotation and its verification in
`kv_rotation`. This module is the kind: what the guard, discovery, leak location and the report use.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

import hvac

from rescind.engine.base import KindHandler, Step
from rescind.exceptions import InvalidInput
from rescind.holds import GuardFacts, facts_from_vault_metadata
from rescind.kinds import Backends, GuardRead, InventoryRow, InventoryScan, InventorySection, KindSpec, ValueLocator
from rescind.leaks.types import LocatedLeak, SecretType, Unlocated
from rescind.models import Action, ActionKind, CredentialKind, KvSecretRef
from rescind.models.refs import format_ref
from rescind.vault.kv_rotation import rotate_kv_secret
from rescind.vault.kv_rotation_state import SecretValueHook, rotation_id_for, verify_kv_rotation
from rescind.vault.kv_store import checked_folder, iter_kv_paths, read_secret_metadata

if TYPE_CHECKING:
    from rescind.discovery import DiscoveryScope
    from rescind.kinds import LeakSearch
    from rescind.leaks.types import LeakAlert
    from rescind.rotation.contract import RotationHookInvoker

DEFAULT_METADATA_KEY = "spiffe_id"


# --- locate -----------------------------------------------------------------------------------


def find_kv_secrets_by_custom_metadata(
    client: hvac.Client, mount: str, key: str, value: str, prefix: str = ""
) -> list[KvSecretRef]:
    """Secrets under `prefix` whose custom_metadata[key] == value, walking the metadata tree with LIST."""
    if not key or not value:
        raise InvalidInput("custom_metadata key and value must not be empty")
    found: list[KvSecretRef] = []
    for path in iter_kv_paths(client, mount, checked_folder(mount, prefix)):
        ref = KvSecretRef(mount=mount, path=path)
        metadata = read_secret_metadata(client, ref)
        if metadata is not None and metadata.custom_metadata.get(key) == value:
            found.append(ref)
    return sorted(found, key=lambda ref: ref.path)


def locate_leaked_kv_value(search: LeakSearch, alert: LeakAlert, value: str | None) -> LocatedLeak | Unlocated:
    """The fingerprint index's secrets holding the value (or its digest), each confirmed against Vault."""
    if search.kv_locator is None:
        return Unlocated(why="no fingerprint index is configured (FINGERPRINT_TABLE_NAME)")
    refs = search.kv_locator(value=value or None, sha256=None if value else alert.secret_sha256)
    if not refs:
        return Unlocated(why="no KV v2 secret in the fingerprint index holds this value (run `rescind index kv`)")
    return LocatedLeak(credentials=tuple(refs), evidence=f"the fingerprint index matched {len(refs)} KV v2 secret(s)")


# --- the inventory report ---------------------------------------------------------------------


def _inventory(scan: InventoryScan) -> list[InventorySection]:
    return [(f"kv mount {mount}", partial(_secret_rows, scan, mount)) for mount in scan.scope.kv_mounts]


def _secret_rows(scan: InventoryScan, mount: str) -> Iterator[InventoryRow]:
    """Every secret whose current version is live: the age of that version, and its owner."""
    vault = scan.backends.vault
    for path in iter_kv_paths(vault, mount, before_request=scan.wait):
        ref = KvSecretRef(mount=mount, path=path)
        scan.wait()
        metadata = read_secret_metadata(vault, ref)
        current = metadata.current if metadata is not None else None
        if metadata is None or (current is not None and (current.destroyed or current.deletion_time)):
            continue  # no live value
        yield InventoryRow(
            target=format_ref(ref),
            kind=CredentialKind.KV_SECRET,
            created_at=(current.created_time if current else None) or metadata.created_time or scan.now,
            owner=metadata.custom_metadata.get(scan.scope.metadata_key),
        )


# --- the kind ---------------------------------------------------------------------------------


class KvSecretHandler(KindHandler[KvSecretRef]):
    """CredentialHandler for KV v2 secrets: rotate by the rotation contract (declared fields, the secret's hook),
    verify by reading the metadata back. `hooks` runs the hooks; without it a declared rotation fails."""

    def __init__(
        self,
        client: hvac.Client,
        *,
        hooks: RotationHookInvoker | None = None,
        on_new_value: SecretValueHook | None = None,
    ) -> None:
        super().__init__(
            CredentialKind.KV_SECRET,
            KvSecretRef,
            {
                ActionKind.ROTATE: Step(
                    lambda ref, action, seen: rotate_kv_secret(
                        client,
                        ref,
                        rotation_id_for(action),
                        action.params,
                        hooks=hooks,
                        on_new_value=on_new_value,
                        seen=seen,
                    ),
                    lambda ref, action: verify_kv_rotation(client, ref, rotation_id_for(action), action.params),
                )
            },
        )
        self._client = client

    def rotation_id(self, action: Action) -> str:
        """The rotation's idempotency key (see kv_rotation.rotation_id_for)."""
        return rotation_id_for(action)

    def look_up(self, ref: KvSecretRef) -> bool | None:
        return read_secret_metadata(self._client, ref) is not None


def _guard_facts(read: GuardRead, ref: KvSecretRef) -> GuardFacts:
    """Its custom metadata's hold and owner; the metadata read is kept for the same action's rotation."""
    metadata = read_secret_metadata(read.backends.vault, ref)
    facts = facts_from_vault_metadata(metadata.custom_metadata if metadata is not None else {}, read.metadata_key)
    return replace(facts, found=metadata is not None, state=metadata)


def _discover(backends: Backends, workload_id: str, scope: DiscoveryScope) -> list[KvSecretRef]:
    found: list[KvSecretRef] = []
    for mount in scope.kv_mounts:
        found.extend(find_kv_secrets_by_custom_metadata(backends.vault, mount, scope.metadata_key, workload_id))
    return found


KIND = KindSpec(
    kind=CredentialKind.KV_SECRET,
    ref_type=KvSecretRef,
    ending_action=ActionKind.ROTATE,  # a shared secret the workload knew: rotated, its old versions destroyed
    build_handler=lambda backends: KvSecretHandler(
        backends.vault, hooks=backends.rotation_hooks(), on_new_value=backends.kv_on_new_value
    ),
    read_guard_facts=_guard_facts,
    discover=_discover,
    locate_leaked={SecretType.KV_VALUE: ValueLocator(locate_leaked_kv_value, needs_value=False)},
    inventory=_inventory,
)
