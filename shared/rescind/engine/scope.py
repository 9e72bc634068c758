"""The task that acts checks its target against the configured Vault mounts, whatever planned it.

A plan is made by the planner, but the Map item that reaches ExecuteAction is only JSON: a manual run, a replayed
execution or a hand-written input could name any mount. So every Vault reference is checked here, before any
call, against the stack's configuration:

| reference                  | allowed when                                                              |
|----------------------------|---------------------------------------------------------------------------|
| PKI certificate, PKI role  | its mount is in PkiMounts                                                 |
| AppRole secret-id or role  | its mount is in AppRoleMounts                                             |
| KV v2 secret               | its mount is in KvMounts                                                  |
| a mount's TTL              | a PKI mount or `auth/<AppRole mount>`; never `auth/token`, `sys`, others   |
| a token role's TTL         | the token store (`token`)                                                  |
| a lease                    | under a PKI mount, `auth/<AppRole mount>/login/` or a LeaseMounts mount;  |
|                            | never under `sys/` or `auth/token/`                                       |
| a database static role or  | its mount is in LeaseMounts (a database mount's dynamic credentials are    |
| root credential            | leases there already: one setting names the database mounts)              |

Tokens and entities are named by accessor and id, which name no mount. AWS references are bounded by the
cross-account role each account trusts, not here.
"""

from __future__ import annotations

from collections.abc import Sequence

from rescind.discovery import DiscoveryScope
from rescind.exceptions import InvalidInput
from rescind.models import (
    AppRoleSecretIdRef,
    CredentialRef,
    DatabaseRootRef,
    DatabaseStaticRoleRef,
    KvSecretRef,
    PkiCertificateRef,
    TtlTargetType,
    VaultLeaseRef,
    VaultTtlTargetRef,
)

# Never acted on through a lease id, whatever is configured: Vault's own system and the token store's endpoints.
_FORBIDDEN_LEASE_PREFIXES = ("sys/", "auth/token/")


class TargetOutOfScope(InvalidInput):
    """The target names a mount this stack is not configured to act on. Nothing was called."""


def _mounts(values: Sequence[str]) -> frozenset[str]:
    """Mount names as configured ("pki", "auth/approle/", " kv"), compared without slashes or `auth/`."""
    return frozenset(value.strip().strip("/").removeprefix("auth/") for value in values if value.strip().strip("/"))


def check_target_in_scope(target: CredentialRef, scope: DiscoveryScope) -> None:
    """Raise TargetOutOfScope unless the target lies in the configured mounts (see the module docstring)."""
    pki, approle, kv = _mounts(scope.pki_mounts), _mounts(scope.approle_mounts), _mounts(scope.kv_mounts)
    match target:
        case PkiCertificateRef(mount=mount):
            _require(mount in pki, f"PKI mount {mount} is not in PkiMounts")
        case AppRoleSecretIdRef(mount=mount):
            _require(mount.removeprefix("auth/") in approle, f"AppRole mount {mount} is not in AppRoleMounts")
        case KvSecretRef(mount=mount):
            _require(mount in kv, f"KV mount {mount} is not in KvMounts")
        case VaultTtlTargetRef():
            _check_ttl_target(target, pki=pki, approle=approle)
        case VaultLeaseRef(lease_id=lease_id):
            _check_lease(lease_id, pki=pki, approle=approle, extra=_mounts(scope.lease_mounts))
        case DatabaseStaticRoleRef(mount=mount) | DatabaseRootRef(mount=mount):
            _require(mount in _mounts(scope.lease_mounts), f"database mount {mount} is not in LeaseMounts")
        case _:
            return


def _check_ttl_target(target: VaultTtlTargetRef, *, pki: frozenset[str], approle: frozenset[str]) -> None:
    mount = target.mount.strip("/")
    if target.target_type is TtlTargetType.PKI_ROLE:
        _require(mount in pki, f"PKI mount {mount} is not in PkiMounts")
    elif target.target_type is TtlTargetType.APPROLE_ROLE:
        _require(mount.removeprefix("auth/") in approle, f"AppRole mount {mount} is not in AppRoleMounts")
    elif target.target_type is TtlTargetType.TOKEN_ROLE:
        _require(mount == "token", f"a token role lives in the token store, not in {mount}")
    else:
        allowed = pki | {f"auth/{name}" for name in approle}
        _require(mount in allowed, f"the TTL of mount {mount} is not Rescind's to lower (PkiMounts, AppRoleMounts)")


def _check_lease(lease_id: str, *, pki: frozenset[str], approle: frozenset[str], extra: frozenset[str]) -> None:
    if lease_id.startswith(_FORBIDDEN_LEASE_PREFIXES):
        raise TargetOutOfScope(f"target out of scope: lease ids under {lease_id.split('/')[0]}/ are never acted on")
    prefixes = [f"{m}/" for m in pki | extra] + [f"auth/{m}/login/" for m in approle]
    _require(
        any(lease_id.startswith(prefix) for prefix in prefixes),
        "the lease is under no PkiMounts, AppRoleMounts login or LeaseMounts prefix",
    )


def _require(condition: bool, problem: str) -> None:
    if not condition:
        raise TargetOutOfScope(f"target out of scope: {problem}")
