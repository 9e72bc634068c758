"""Vault role and mount TTLs: read them, lower them (never raise), and verify by reading them back.

Which fields each target has, and which action parameter governs each:

| target       | path                     | lowered to the ttl          | lowered to the ceiling                |
|--------------|--------------------------|-----------------------------|---------------------------------------|
| pki_role     | <mount>/roles/<name>     | ttl                         | max_ttl                               |
| approle_role | auth/<mount>/role/<name> | token_ttl, token_period (*) | token_max_ttl, token_explicit_max_ttl |
| token_role   | auth/token/roles/<name>  | token_period (*)            | token_explicit_max_ttl                |
| mount        | sys/mounts/<mount>/tune  | default_lease_ttl           | max_lease_ttl                         |

The ceiling is `max_ttl_seconds`, or `ttl_seconds` when that is not given: a role's ttl is only a default that a
client may ask to exceed up to max_ttl, so lowering the ttl alone would contain nothing. The ttl written is never
above the ceiling. A value of 0 means "unlimited" or "the system default", so lowering 0 to N is a lowering;
(*) except token_period, where 0 means "not periodic": it is lowered only when it is set.

AppRole's secret_id_ttl is deliberately left alone: a secret-id's expiry is fixed when it is created, so lowering
it contains nothing already issued (a leaked secret-id is destroyed as its own credential kind), while it would
break secret-ids that are delivered to workloads and used later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import hvac
import hvac.exceptions
import hvac.utils

from rescind.engine.base import KindHandler, Step
from rescind.exceptions import ActionFailed, InvalidInput
from rescind.kinds import InventoryRow, InventoryScan, KindSpec, no_guard_facts
from rescind.models import (
    ActionKind,
    ActionParams,
    ActOutcome,
    CredentialKind,
    Evidence,
    TtlTargetType,
    VaultTtlTargetRef,
)
from rescind.models.refs import format_ref
from rescind.vault.client import read_data, vault_errors
from rescind.vault.common import as_int, list_keys

_MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
_HTTP_METHOD_NOT_ALLOWED = 405


def _clip(text: str, limit: int = 500) -> str:
    """Paths have no length limit; the result models do."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class TtlBound(StrEnum):
    """Which target a field is lowered to."""

    TTL = "ttl"
    CEILING = "ceiling"


@dataclass(frozen=True)
class _TtlField:
    name: str
    bound: TtlBound
    zero_means_unset: bool = False  # token_period: 0 means "not periodic", not "unlimited"


_FIELDS: dict[TtlTargetType, tuple[_TtlField, ...]] = {
    TtlTargetType.PKI_ROLE: (
        _TtlField("ttl", TtlBound.TTL),
        _TtlField("max_ttl", TtlBound.CEILING),
    ),
    TtlTargetType.APPROLE_ROLE: (
        _TtlField("token_ttl", TtlBound.TTL),
        _TtlField("token_max_ttl", TtlBound.CEILING),
        # Periodic tokens ignore token_max_ttl: the explicit max is their only ceiling.
        _TtlField("token_explicit_max_ttl", TtlBound.CEILING),
        _TtlField("token_period", TtlBound.TTL, zero_means_unset=True),
    ),
    TtlTargetType.TOKEN_ROLE: (
        # Token roles have no token_ttl/token_max_ttl; the caller picks the ttl within these bounds.
        _TtlField("token_explicit_max_ttl", TtlBound.CEILING),
        _TtlField("token_period", TtlBound.TTL, zero_means_unset=True),
    ),
    TtlTargetType.MOUNT: (
        _TtlField("default_lease_ttl", TtlBound.TTL),
        _TtlField("max_lease_ttl", TtlBound.CEILING),
    ),
}


@dataclass(frozen=True)
class TtlTargets:
    """The values an action lowers to: `ttl_seconds` is never above `ceiling_seconds`."""

    ttl_seconds: int
    ceiling_seconds: int

    @classmethod
    def from_params(cls, params: ActionParams) -> TtlTargets:
        if params.ttl_seconds is None:
            raise InvalidInput("shorten_ttl needs params.ttl_seconds")
        ceiling = params.max_ttl_seconds if params.max_ttl_seconds is not None else params.ttl_seconds
        return cls(ttl_seconds=min(params.ttl_seconds, ceiling), ceiling_seconds=ceiling)

    def for_bound(self, bound: TtlBound) -> int:
        return self.ttl_seconds if bound is TtlBound.TTL else self.ceiling_seconds


@dataclass(frozen=True)
class TtlSettings:
    """The current TTL fields of a role or mount, in seconds, by Vault's field names (0: unlimited/default)."""

    target: VaultTtlTargetRef
    path: str
    values: Mapping[str, int]

    def describe(self) -> str:
        return " ".join(f"{name}={seconds}" for name, seconds in self.values.items())

    def lowerings(self, targets: TtlTargets) -> dict[str, int]:
        """The fields above their target, with the value each must be lowered to. Never a raise."""
        changes: dict[str, int] = {}
        for field in _FIELDS[self.target.target_type]:
            current = self.values[field.name]
            target = targets.for_bound(field.bound)
            if current == 0 and field.zero_means_unset:
                continue
            if current == 0 or current > target:
                changes[field.name] = target
        return changes


def ttl_settings_path(ref: VaultTtlTargetRef) -> str:
    """The Vault path holding the target's TTL fields. Refuses a mount that cannot hold that target type."""
    if ref.target_type is TtlTargetType.MOUNT:
        # sys/mounts/auth/<path>/tune serves auth mounts too, so one path form covers both.
        return f"sys/mounts/{ref.mount}/tune"
    if ref.target_type is TtlTargetType.PKI_ROLE:
        if ref.mount.startswith("auth/"):
            raise InvalidInput(f"pki_role mount {ref.mount!r} is an auth mount, not a PKI secrets mount")
        return f"{ref.mount}/roles/{ref.role_name}"
    auth_mount = ref.mount.removeprefix("auth/")
    if ref.target_type is TtlTargetType.APPROLE_ROLE:
        return f"auth/{auth_mount}/role/{ref.role_name}"
    if auth_mount != "token":
        raise InvalidInput(f"token_role mount must be 'token' (the token store), not {ref.mount!r}")
    return f"auth/token/roles/{ref.role_name}"


# Where each kind of role is listed, and how an error names it.
_ROLE_LISTS: dict[TtlTargetType, tuple[str, str]] = {
    TtlTargetType.PKI_ROLE: ("{mount}/roles", "PKI roles of {mount}"),
    TtlTargetType.APPROLE_ROLE: ("auth/{mount}/role", "AppRole roles of auth/{mount}"),
    TtlTargetType.TOKEN_ROLE: ("auth/token/roles", "token roles"),
}


def list_role_names(client: hvac.Client, target_type: TtlTargetType, mount: str = "token") -> list[str]:
    """The roles of a PKI mount, an AppRole mount (named with or without `auth/`) or the token store, paginated.

    An empty listing is []; a mount that is not there raises ActionFailed.
    """
    mount = mount.strip("/").removeprefix("auth/") if target_type is TtlTargetType.APPROLE_ROLE else mount.strip("/")
    path_form, what_form = _ROLE_LISTS[target_type]
    path, what = path_form.format(mount=mount), what_form.format(mount=mount)
    with vault_errors(f"list {what}"):
        try:
            return list_keys(client, f"/v1/{path}")
        except (hvac.exceptions.InvalidPath, hvac.exceptions.InvalidRequest) as error:
            raise ActionFailed(f"cannot list {what}: {str(error)[:200]}") from None


def read_secret_id_ttl(client: hvac.Client, ref: VaultTtlTargetRef) -> int | None:
    """An AppRole role's secret_id_ttl in seconds (0: secret-ids never expire); None when the role is gone."""
    path = ttl_settings_path(ref)
    with vault_errors(f"read {path}"):
        response = client.read(path)  # a 404 comes back as None
    return as_int(read_data(response).get("secret_id_ttl")) if response is not None else None


def _seconds(value: Any, *, field: str, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ActionFailed(f"{path}: field {field} is not a number of seconds ({type(value).__name__})")
    return value


def _is_missing_mount(error: hvac.exceptions.InvalidRequest) -> bool:
    text = str(error).lower()
    return "cannot fetch sysview" in text or "no matching mount" in text


def read_ttl_settings(client: hvac.Client, ref: VaultTtlTargetRef) -> TtlSettings | None:
    """The target's current TTL fields, or None when the role or mount does not exist."""
    path = ttl_settings_path(ref)
    try:
        with vault_errors(f"read TTL settings at {path}"):
            response = client.read(path)  # a 404 comes back as None
    except hvac.exceptions.InvalidRequest as error:
        if ref.target_type is TtlTargetType.MOUNT and _is_missing_mount(error):
            return None
        raise ActionFailed(_clip(f"read TTL settings at {path}: {error}")) from error
    if response is None:
        return None
    data = read_data(response)
    values = {
        field.name: _seconds(data.get(field.name, 0), field=field.name, path=path) for field in _FIELDS[ref.target_type]
    }
    return TtlSettings(target=ref, path=path, values=values)


def _write_pki_role_fields(client: hvac.Client, path: str, changes: Mapping[str, int]) -> bool:
    """PATCH only the TTL fields. A partial POST resets every field it omits to its default. False: role gone."""
    url = f"/v1/{path}"
    try:
        with vault_errors(f"patch PKI role {path}"):
            response = client.adapter.request(
                "PATCH", url, json=dict(changes), headers=dict(_MERGE_PATCH), raise_exception=False
            )
            status = getattr(response, "status_code", 200)  # a 200 with a body comes back as a dict
            if status == _HTTP_METHOD_NOT_ALLOWED:
                # Never fall back to POST: it would reset the rest of the role.
                raise ActionFailed(f"{path}: this server has no PATCH for PKI roles; refusing a resetting POST")
            if status >= 400:
                hvac.utils.raise_for_error("PATCH", url, status, errors=_response_errors(response))
    except hvac.exceptions.InvalidRequest as error:
        if "unable to fetch role" in str(error).lower():
            return False
        raise ActionFailed(_clip(f"patch PKI role {path}: {error}")) from error
    return True


def _response_errors(response: Any) -> list[str] | None:
    try:
        errors = response.json().get("errors")
    except ValueError:
        return None
    return [str(error) for error in errors] if isinstance(errors, list) else None


def _write_fields(client: hvac.Client, ref: VaultTtlTargetRef, path: str, changes: Mapping[str, int]) -> bool:
    """Write only the changed fields. False: the target disappeared before the write."""
    if ref.target_type is TtlTargetType.PKI_ROLE:
        return _write_pki_role_fields(client, path, changes)
    # AppRole roles, token roles and mount tune keep every field a POST omits (checked against OpenBao).
    try:
        with vault_errors(f"lower TTL fields at {path}"):
            client.write_data(path, data=dict(changes))
    except hvac.exceptions.InvalidRequest as error:
        if ref.target_type is TtlTargetType.MOUNT and _is_missing_mount(error):
            return False
        raise ActionFailed(_clip(f"lower TTL fields at {path}: {error}")) from error
    return True


def lower_ttl(client: hvac.Client, ref: VaultTtlTargetRef, params: ActionParams) -> ActOutcome:
    """Lower the target's TTL fields that are above the targets; leave every other field untouched."""
    targets = TtlTargets.from_params(params)
    before = read_ttl_settings(client, ref)
    if before is None:
        return ActOutcome(
            changed=False, absent=True, detail=_clip(f"already absent: {ttl_settings_path(ref)} does not exist", 1000)
        )
    changes = before.lowerings(targets)
    if not changes:
        return ActOutcome(changed=False, detail=_clip(f"already at or below: {before.path} {before.describe()}", 1000))
    if not _write_fields(client, ref, before.path, changes):
        return ActOutcome(
            changed=False, absent=True, detail=_clip(f"already absent: {before.path} does not exist", 1000)
        )
    lowered = ", ".join(f"{name} {before.values[name]}->{seconds}" for name, seconds in changes.items())
    return ActOutcome(changed=True, detail=_clip(f"lowered {before.path}: {lowered}", 1000))


def verify_ttl_lowered(client: hvac.Client, ref: VaultTtlTargetRef, params: ActionParams) -> Evidence:
    """Read the fields back: confirmed when every one is at or below its target (0 counts as unlimited)."""
    targets = TtlTargets.from_params(params)
    check = _clip(f"read back TTL fields at {ttl_settings_path(ref)}", 200)
    after = read_ttl_settings(client, ref)
    if after is None:
        return Evidence(check=check, observed="target does not exist: nothing can be issued from it", confirmed=True)
    above = after.lowerings(targets)
    wanted = f"ttl<={targets.ttl_seconds} ceiling<={targets.ceiling_seconds}"
    if above:
        return Evidence(
            check=check, observed=f"{after.describe()}; above {wanted}: {', '.join(above)}", confirmed=False
        )
    return Evidence(check=check, observed=f"{after.describe()}; all at or below {wanted}", confirmed=True)


def ttl_target_rows(scan: InventoryScan, ref: VaultTtlTargetRef) -> list[InventoryRow]:
    """For the inventory report: the role or mount when a TTL field is above its ceiling (0 = the default)."""
    ceilings = scan.policy.ttl_ceilings
    ceiling = ceilings.mount_seconds if ref.target_type is TtlTargetType.MOUNT else ceilings.role_seconds
    scan.wait()
    settings = read_ttl_settings(scan.backends.vault, ref)
    above = settings.lowerings(TtlTargets(ttl_seconds=ceiling, ceiling_seconds=ceiling)) if settings else {}
    if settings is None or not above:
        return []
    fields = " ".join(f"{name}={settings.values[name]}" for name in sorted(above))
    return [
        InventoryRow(
            target=format_ref(ref),
            kind=CredentialKind.VAULT_TTL_TARGET,
            created_at=None,
            ttl_violation=f"{fields} above {ceiling}s (0 = system default)",
        )
    ]


class VaultTtlTargetHandler(KindHandler[VaultTtlTargetRef]):
    """Lowers role and mount TTLs (shorten_ttl), never raising one."""

    def __init__(self, client: hvac.Client) -> None:
        super().__init__(
            CredentialKind.VAULT_TTL_TARGET,
            VaultTtlTargetRef,
            {
                ActionKind.SHORTEN_TTL: Step.reads_alone(
                    lambda ref, action: lower_ttl(client, ref, action.params),
                    lambda ref, action: verify_ttl_lowered(client, ref, action.params),
                )
            },
        )
        self._client = client

    def look_up(self, ref: VaultTtlTargetRef) -> bool | None:
        return read_ttl_settings(self._client, ref) is not None


KIND = KindSpec(
    kind=CredentialKind.VAULT_TTL_TARGET,
    ref_type=VaultTtlTargetRef,
    ending_action=None,  # a role's or a mount's TTL is no workload's credential
    build_handler=lambda backends: VaultTtlTargetHandler(backends.vault),
    read_guard_facts=no_guard_facts,
    discover=None,
    locate_leaked={},
    inventory=None,  # the AppRole and PKI kinds list their roles and mounts' TTLs with their own credentials
)
