"""AppRole secret-ids, always by accessor: locate by metadata, destroy, verify.

The secret-id value is never read, held or returned; OpenBao's accessor lookup does not return it.
"""

from __future__ import annotations

from dataclasses import dataclass

import hvac
import hvac.exceptions

from rescind.exceptions import ActionFailed, InvalidInput, UnsupportedAction
from rescind.models import Action, ActionKind, ActOutcome, AppRoleSecretIdRef, CredentialKind, CredentialRef, Evidence
from rescind.vault.client import read_data, vault_errors
from rescind.vault.common import as_int, list_keys
from rescind.vault.tokens import DEFAULT_METADATA_KEY

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


def _role_missing(error: hvac.exceptions.VaultError) -> bool:
    return "does not exist" in str(error) and "role" in str(error)


def _describe(error: Exception) -> str:
    return str(error).strip()[:300]


# --- locate ---------------------------------------------------------------------------------------


def list_approle_roles(client: hvac.Client, mount: str = "approle") -> list[str]:
    """The role names on an AppRole mount. A mount that does not exist raises ActionFailed."""
    with vault_errors(f"list AppRole roles on {mount}"):
        try:
            return list_keys(client, f"/v1/auth/{mount}/role")
        except hvac.exceptions.InvalidPath as error:
            raise ActionFailed(f"list AppRole roles: no AppRole mount at auth/{mount}: {_describe(error)}") from error


def list_secret_id_accessors(client: hvac.Client, role_name: str, mount: str = "approle") -> list[AppRoleSecretIdRef]:
    """The secret-id accessors of one role. An unknown role or mount raises ActionFailed."""
    operation = f"list secret-id accessors of {mount}/{role_name}"
    with vault_errors(operation):
        try:
            accessors = list_keys(client, f"/v1/auth/{mount}/role/{role_name}/secret-id")
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
    )


def find_secret_ids_by_metadata(
    client: hvac.Client, key: str, value: str, *, mount: str = "approle", role_name: str | None = None
) -> list[AppRoleSecretIdRef]:
    """Secret-ids whose metadata `key` equals `value` exactly, in one role or in every role of the mount.

    Roles or secret-ids that disappear during the scan are skipped; a missing mount or a named role
    that does not exist raises ActionFailed rather than looking like "nothing found".
    """
    if not key or not value:
        raise InvalidInput("secret-id discovery needs a non-empty metadata key and value")
    scanning_all_roles = role_name is None
    roles = list_approle_roles(client, mount) if role_name is None else [role_name]
    found: list[AppRoleSecretIdRef] = []
    for role in roles:
        try:
            candidates = list_secret_id_accessors(client, role, mount)
            for ref in candidates:
                state = lookup_secret_id(client, ref)
                if state is not None and state.metadata.get(key) == value:
                    found.append(ref)
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
    """Destroy the secret-id so no new login can use it. Tokens it already produced are not touched."""
    if lookup_secret_id(client, ref) is None:
        return ActOutcome(changed=False, absent=True, detail="already absent")
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
    return ActOutcome(changed=True, detail=f"destroyed secret-id accessor {ref.accessor} of {ref.role_name}")


# --- verify ---------------------------------------------------------------------------------------


def verify_secret_id_destroyed(client: hvac.Client, ref: AppRoleSecretIdRef) -> Evidence:
    """Confirmed only by OpenBao's 404 "failed to find accessor entry"; a missing role or mount raises."""
    check = f"secret-id-accessor/lookup {ref.mount}/{ref.role_name} {ref.accessor}"
    state = lookup_secret_id(client, ref)
    if state is None:
        return Evidence(check=check, observed="no accessor entry: the secret-id is gone", confirmed=True)
    return Evidence(check=check, observed="secret-id still exists", confirmed=False)


# --- handler --------------------------------------------------------------------------------------


class AppRoleSecretIdHandler:
    """CredentialHandler for AppRole secret-ids: revoke means destroy by accessor."""

    kinds: frozenset[CredentialKind] = frozenset({CredentialKind.APPROLE_SECRET_ID})

    def __init__(self, client: hvac.Client) -> None:
        self._client = client

    def act(self, action: Action) -> ActOutcome:
        ref = _secret_id_ref(action)
        if action.kind is ActionKind.REVOKE:
            return destroy_secret_id_by_accessor(self._client, ref)
        raise UnsupportedAction(f"{action.kind!s} does not apply to an AppRole secret-id")

    def verify(self, action: Action) -> Evidence:
        ref = _secret_id_ref(action)
        if action.kind is ActionKind.REVOKE:
            return verify_secret_id_destroyed(self._client, ref)
        raise UnsupportedAction(f"{action.kind!s} does not apply to an AppRole secret-id")

    def exists(self, ref: CredentialRef) -> bool | None:
        return isinstance(ref, AppRoleSecretIdRef) and lookup_secret_id(self._client, ref) is not None


def _secret_id_ref(action: Action) -> AppRoleSecretIdRef:
    if not isinstance(action.target, AppRoleSecretIdRef):
        raise UnsupportedAction(f"AppRoleSecretIdHandler cannot act on {action.target.kind!s}")
    return action.target
