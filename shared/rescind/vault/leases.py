"""Vault leases by lease id: look up, list under a prefix, revoke, shorten, verify, and a guarded revoke-prefix.

revoke-force is never called: it drops leases without revoking the credential in the backend.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import hvac
import hvac.exceptions

from rescind.engine.base import KindHandler, Step
from rescind.exceptions import ActionFailed, CredentialStillAlive, UnsafePrefix
from rescind.kinds import KindSpec, ValueLocator, no_guard_facts
from rescind.leaks.types import SecretType
from rescind.models import ActionKind, ActOutcome, CredentialKind, Evidence, VaultLeaseRef
from rescind.vault.client import read_data, vault_errors
from rescind.vault.common import as_int, list_keys, ttl_is_at_or_below, ttl_target

if TYPE_CHECKING:
    from rescind.kinds import LeakSearch
    from rescind.leaks.types import LeakAlert, LocatedLeak, Unlocated

# OpenBao's 400 to a lookup of a lease id it does not hold: the only answer that proves a lease is gone.
_INVALID_LEASE = "invalid lease"
# ... and its 400 to a renewal of such a lease.
_LEASE_NOT_FOUND = "lease not found"
_NOT_RENEWABLE = "lease is not renewable"

# A prefix is a relative path of plain segments: no wildcard, no '.' or '..', no doubled '/'.
_PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$")
# mount + endpoint + role, e.g. pki/issue/<role> or database/creds/<role>.
MIN_PREFIX_SEGMENTS = 3
_MAX_LIST_DEPTH = 8
# Below a whole mount, leases may sit one level deeper than below a role's prefix.
_MAX_MOUNT_LIST_DEPTH = 9
# Leases under auth/ are tokens' own leases: sys/leases/renew refuses them, so tokens are handled by accessor.
_TOKEN_LEASE_PREFIX = "auth/"  # noqa: S105 - a path prefix
# Built-in mounts that issue no leases of their own; a prefix under them is never a role's.
_SYSTEM_MOUNTS = frozenset({"sys", "identity", "cubbyhole"})


@dataclass(frozen=True)
class LeaseState:
    """What sys/leases/lookup says about a live lease."""

    lease_id: str
    ttl_seconds: int  # 0 means the lease never expires
    renewable: bool
    expire_time: str
    issue_time: str = ""


def _describe(error: Exception) -> str:
    return str(error).strip()[:300]


# --- locate ---------------------------------------------------------------------------------------


def lookup_lease(client: hvac.Client, ref: VaultLeaseRef) -> LeaseState | None:
    """The lease's state, or None when OpenBao answers "invalid lease" (it is gone)."""
    operation = f"lookup lease {ref.lease_id}"
    with vault_errors(operation):
        try:
            response = client.sys.read_lease(ref.lease_id)
        except hvac.exceptions.InvalidRequest as error:
            if _INVALID_LEASE in str(error):
                return None
            raise ActionFailed(f"{operation}: {_describe(error)}") from error
    data = read_data(response)
    return LeaseState(
        lease_id=str(data.get("id") or ref.lease_id),
        ttl_seconds=as_int(data.get("ttl")),
        renewable=bool(data.get("renewable")),
        expire_time=str(data.get("expire_time") or ""),
        issue_time=str(data.get("issue_time") or ""),
    )


def _normalise_prefix(prefix: str) -> str:
    """The prefix as plain segments without a trailing '/'; anything odd is refused."""
    if not prefix.strip():
        raise UnsafePrefix("refusing an empty lease prefix")
    trimmed = prefix[:-1] if prefix.endswith("/") else prefix
    segments = trimmed.split("/")
    bad = [segment for segment in segments if segment in ("", ".", "..") or not _PREFIX_SEGMENT.fullmatch(segment)]
    if bad or prefix.startswith("/"):
        raise UnsafePrefix(
            f"refusing lease prefix {prefix!r}: only plain path segments are allowed "
            "(no leading or doubled '/', '.', '..', wildcards or spaces)"
        )
    return trimmed


def _walk_lease_ids(
    client: hvac.Client, roots: list[str], *, max_depth: int, before_request: Callable[[], None] | None = None
) -> list[str]:
    """Every lease id under the root paths, descending at most `max_depth` levels below each."""
    found: list[str] = []
    pending: list[tuple[str, int]] = [(root, 0) for root in roots]
    while pending:
        path, depth = pending.pop()
        if before_request is not None:
            before_request()
        with vault_errors(f"list leases under {path}"):
            try:
                keys = list_keys(client, f"/v1/sys/leases/lookup/{path}/")
            except (hvac.exceptions.InvalidPath, hvac.exceptions.InvalidRequest) as error:
                raise ActionFailed(f"cannot list leases under {path}: {_describe(error)}") from None
        for key in keys:
            if not key.endswith("/"):
                found.append(f"{path}/{key}")
            elif depth < max_depth:
                pending.append((f"{path}/{key[:-1]}", depth + 1))
    return found


def list_leases_under(client: hvac.Client, prefix: str) -> list[VaultLeaseRef]:
    """Every lease under `prefix`, descending into sub-paths. An unknown prefix gives []."""
    found = _walk_lease_ids(client, [_normalise_prefix(prefix)], max_depth=_MAX_LIST_DEPTH)
    return sorted((VaultLeaseRef(lease_id=lease_id) for lease_id in found), key=lambda ref: ref.lease_id)


def list_lease_ids(
    client: hvac.Client, mounts: Sequence[str], *, before_request: Callable[[], None] | None = None
) -> list[str]:
    """Every live lease id under the given secrets mounts, never from the root of sys/leases, and never under
    `auth/` (tokens' own leases, which are handled by accessor)."""
    roots = sorted({m.strip().strip("/") for m in mounts if m.strip().strip("/")})
    kept = [root for root in roots if not root.startswith(_TOKEN_LEASE_PREFIX)]
    return _walk_lease_ids(client, kept, max_depth=_MAX_MOUNT_LIST_DEPTH, before_request=before_request)


# --- act ------------------------------------------------------------------------------------------


def revoke_lease(client: hvac.Client, ref: VaultLeaseRef) -> ActOutcome:
    """Revoke one lease with sync=true, so the backend credential is gone when the call returns.

    A revoke of an unknown lease answers 204 like a real one, so the lease is looked up first; and looked up again
    after, as the action's read-back.
    """
    if lookup_lease(client, ref) is None:
        return ActOutcome(changed=False, absent=True, detail="already absent")
    with vault_errors(f"revoke lease {ref.lease_id}"):
        # The lease id in the path, not the body: a policy can then grant revoke per mount.
        client.adapter.put(f"/v1/sys/leases/revoke/{ref.lease_id}", json={"sync": True})
    # The lookup after the revoke is the action's read-back: the same read verify_lease_revoked makes.
    return ActOutcome(changed=True, detail=f"revoked lease {ref.lease_id}", read_back=verify_lease_revoked(client, ref))


def shorten_lease_ttl(client: hvac.Client, ref: VaultLeaseRef, ttl_seconds: int) -> ActOutcome:
    """Lower the lease's TTL to `ttl_seconds` by renewing with that increment, never raising it.

    A lease already at or below the target is left alone. A lease that is not renewable (PKI leases
    from generate_lease=true, token leases) cannot be lowered: ActionFailed says so, revoke it instead.
    """
    state = lookup_lease(client, ref)
    if state is None:
        return ActOutcome(changed=False, absent=True, detail="already absent")
    if ttl_is_at_or_below(state.ttl_seconds, ttl_seconds):
        return ActOutcome(
            changed=False, detail=f"already applied: ttl {state.ttl_seconds}s is at or below {ttl_seconds}s"
        )
    not_renewable = (
        f"lease {ref.lease_id} is not renewable (ttl {state.ttl_seconds}s, 0 = never expires), so its TTL "
        "cannot be lowered; revoke it instead"
    )
    if not state.renewable:
        raise ActionFailed(not_renewable)
    operation = f"renew lease {ref.lease_id}"
    with vault_errors(operation):
        try:
            # The lease id in the path, as for revoke: renew is granted per mount.
            response = client.adapter.put(f"/v1/sys/leases/renew/{ref.lease_id}", json={"increment": ttl_seconds})
        except hvac.exceptions.InvalidRequest as error:
            if _LEASE_NOT_FOUND in str(error) or _INVALID_LEASE in str(error):
                return ActOutcome(changed=False, absent=True, detail="already absent")
            if _NOT_RENEWABLE in str(error):
                raise ActionFailed(not_renewable) from error
            raise ActionFailed(f"{operation}: {_describe(error)}") from error
    granted = as_int(response.get("lease_duration")) if isinstance(response, dict) else 0
    if not ttl_is_at_or_below(granted, ttl_seconds):
        raise ActionFailed(f"{operation}: asked for {ttl_seconds}s, OpenBao granted {granted}s")
    return ActOutcome(
        changed=True, detail=f"lowered ttl of lease {ref.lease_id} from {state.ttl_seconds}s to {granted}s"
    )


def _mount_of(client: hvac.Client, path: str) -> str:
    """The mount that serves `path`, e.g. 'pki' or 'auth/approle', from sys/internal/ui/mounts."""
    try:
        with vault_errors(f"resolve the mount of {path}"):
            data = read_data(client.adapter.get(f"/v1/sys/internal/ui/mounts/{path}"))
    except (ActionFailed, hvac.exceptions.InvalidPath, hvac.exceptions.InvalidRequest) as error:
        # OpenBao answers 403 for a path under no mount as well as for a path we may not see.
        raise UnsafePrefix(f"refusing lease prefix {path!r}: cannot resolve its mount") from error
    mount = str(data.get("path") or "").strip("/")
    if not mount:
        raise UnsafePrefix(f"refusing lease prefix {path!r}: cannot resolve its mount")
    # Auth mounts are reported without their "auth/" part.
    return f"auth/{mount}" if path.startswith("auth/") and not mount.startswith("auth/") else mount


def check_revocable_prefix(client: hvac.Client, prefix: str) -> str:
    """The normalised prefix, if it names at least mount + endpoint + role; otherwise UnsafePrefix.

    The static rule (3 segments) is checked first, before any call. Then the real mount is resolved,
    because a mount can span several segments (`team/pki/issue` is a whole mount's endpoint, no role).
    """
    normalised = _normalise_prefix(prefix)
    segments = normalised.split("/")
    if len(segments) < MIN_PREFIX_SEGMENTS:
        raise UnsafePrefix(
            f"refusing lease prefix {prefix!r}: it is shorter than mount + role "
            f"(needs {MIN_PREFIX_SEGMENTS} segments, e.g. pki/issue/<role>)"
        )
    mount = _mount_of(client, normalised)
    if mount in _SYSTEM_MOUNTS:
        raise UnsafePrefix(f"refusing lease prefix {prefix!r}: {mount!r} is a system mount, not a secrets engine")
    below_mount = normalised[len(mount) :].strip("/") if normalised.startswith(mount + "/") else ""
    if len([segment for segment in below_mount.split("/") if segment]) < 2:
        raise UnsafePrefix(
            f"refusing lease prefix {prefix!r}: below mount {mount!r} it names no role "
            "(needs <endpoint>/<role> below the mount)"
        )
    return normalised


def revoke_prefix(client: hvac.Client, prefix: str) -> ActOutcome:
    """Revoke every lease under a prefix no broader than mount + role, then check that none is left.

    Raises UnsafePrefix before any change for a broader prefix, and CredentialStillAlive if leases
    remain afterwards. revoke-force is never used.
    """
    normalised = check_revocable_prefix(client, prefix)
    before = list_leases_under(client, normalised)
    if not before:
        return ActOutcome(changed=False, absent=True, detail="already absent: no lease under the prefix")
    with vault_errors(f"revoke leases under {normalised}"):
        client.adapter.put(f"/v1/sys/leases/revoke-prefix/{normalised}", json={"sync": True})
    remaining = list_leases_under(client, normalised)
    if remaining:
        raise CredentialStillAlive(f"{len(remaining)} of {len(before)} leases under {normalised} are still there")
    return ActOutcome(changed=True, detail=f"revoked {len(before)} leases under {normalised}")


# --- verify ---------------------------------------------------------------------------------------


def verify_lease_revoked(client: hvac.Client, ref: VaultLeaseRef) -> Evidence:
    """Confirmed only by OpenBao's "invalid lease" answer to sys/leases/lookup; other errors raise."""
    check = f"sys/leases/lookup {ref.lease_id}"
    state = lookup_lease(client, ref)
    if state is None:
        return Evidence(check=check, observed="invalid lease: the lease is gone", confirmed=True)
    return Evidence(check=check, observed=f"lease still alive, ttl {state.ttl_seconds}s", confirmed=False)


def verify_lease_ttl(client: hvac.Client, ref: VaultLeaseRef, ttl_seconds: int) -> Evidence:
    """Read the TTL back. A lease that no longer exists satisfies "at or below" too."""
    check = f"sys/leases/lookup {ref.lease_id} ttl <= {ttl_seconds}s"
    state = lookup_lease(client, ref)
    if state is None:
        return Evidence(check=check, observed="invalid lease: the lease no longer exists", confirmed=True)
    return Evidence(
        check=check,
        observed=f"ttl {state.ttl_seconds}s (0 = never expires)",
        confirmed=ttl_is_at_or_below(state.ttl_seconds, ttl_seconds),
    )


# --- handler --------------------------------------------------------------------------------------


class VaultLeaseHandler(KindHandler[VaultLeaseRef]):
    """CredentialHandler for Vault leases: revoke and shorten_ttl, by lease id."""

    def __init__(self, client: hvac.Client) -> None:
        super().__init__(
            CredentialKind.VAULT_LEASE,
            VaultLeaseRef,
            {
                ActionKind.REVOKE: Step.on_ref(client, revoke_lease, verify_lease_revoked),
                ActionKind.SHORTEN_TTL: Step.reads_alone(
                    lambda ref, action: shorten_lease_ttl(client, ref, ttl_target(action)),
                    lambda ref, action: verify_lease_ttl(client, ref, ttl_target(action)),
                ),
            },
        )
        self._client = client

    def look_up(self, ref: VaultLeaseRef) -> bool | None:
        return lookup_lease(self._client, ref) is not None


def _locate_issued_value(search: LeakSearch, alert: LeakAlert, value: str | None) -> LocatedLeak | Unlocated:
    from rescind.issuance.locate import locate_issued_value

    return locate_issued_value(search, alert, value)


KIND = KindSpec(
    kind=CredentialKind.VAULT_LEASE,
    ref_type=VaultLeaseRef,
    ending_action=ActionKind.REVOKE,
    build_handler=lambda backends: VaultLeaseHandler(backends.vault),
    read_guard_facts=no_guard_facts,
    discover=None,  # a workload's leases come from the issuance index, not a live convention
    # A dynamic secret's value (a database password) is found through the issuance index's audit HMACs.
    locate_leaked={SecretType.VAULT_ISSUED_VALUE: ValueLocator(_locate_issued_value, needs_value=True)},
    inventory=None,  # leases are not counted
)
