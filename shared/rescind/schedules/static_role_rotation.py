"""Rotation by age for Vault's database static roles: a rule's `static_role_prefix` (`mount/role-prefix`) picks the
static roles of the database mounts among LeaseMounts; a role whose `last_vault_rotation` is older than the rule's
`max_age_days` (or that Vault never rotated) is rotated through `<mount>/rotate-role/<role>` by the engine, which
verifies it by `last_vault_rotation` again. Vault changes the password in the database and in its own storage in
one request, so applications reading `<mount>/static-creds/<role>` get the new one as the database starts to take it.

Candidates are named `db:<mount>/<role>` beside the KV and Secrets Manager ones of `rotation_by_age`, whose run
walks them; the longest matching prefix decides the maximum age. Protected paths (`mount/role` or the reference's
key) and holds are skipped; a dry run plans and rotates nothing. The rotation counts from the run's start on the
wall clock (`rotated_since`): the same rotation replayed finds it applied, and a later run finds the role young.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from rescind.guard import find_holds
from rescind.models import Action, ActionKind, ActionParams, DatabaseStaticRoleRef
from rescind.schedules.types import ChangeStatus
from rescind.vault.database import is_database_mount, list_static_roles, read_static_role

if TYPE_CHECKING:
    import hvac

    from rescind.schedules.base import RateLimiter, SweepProgress
    from rescind.schedules.policy import MaxAgeRule, SchedulePolicy

DB_PREFIX = "db:"


class RotationSweep(Protocol):
    """What of the rotation-by-age run a static role's rotation uses (rotation_by_age's sweep)."""

    progress: SweepProgress
    policy: SchedulePolicy
    vault: hvac.Client
    now: datetime
    limiter: RateLimiter

    def add(self, target: str, what: str, status: ChangeStatus, **fields: str | None) -> None: ...

    def rotate(self, action: Action, before: str, after: Callable[[], str | None]) -> None: ...


def static_role_rule_for(policy: SchedulePolicy, ref: DatabaseStaticRoleRef) -> MaxAgeRule | None:
    """The rule with the longest `static_role_prefix` that matches `mount/role`."""
    name = f"{ref.mount}/{ref.role}"
    matching = [
        rule for rule in policy.rotation_max_age if rule.static_role_prefix and name.startswith(rule.static_role_prefix)
    ]
    return max(matching, key=lambda rule: len(rule.static_role_prefix or ""), default=None)


def static_role_candidates(sweep: RotationSweep, lease_mounts: Iterable[str]) -> dict[str, DatabaseStaticRoleRef]:
    """`db:<mount>/<role>` → the static roles some rule matches, on the database mounts among LeaseMounts that a
    rule names (no other mount is listed). A rule's mount outside LeaseMounts, or not a database engine, is
    `flagged`: its roles are never rotated, and the report says why."""
    named = sorted(
        {rule.static_role_prefix.partition("/")[0] for rule in sweep.policy.rotation_max_age if rule.static_role_prefix}
    )
    in_scope = {mount.strip().strip("/") for mount in lease_mounts}
    for mount in named:
        if mount not in in_scope:
            sweep.add(
                f"{mount}/",
                "rotate",
                ChangeStatus.FLAGGED,
                detail="a static_role_prefix rule names a mount "
                "that is not in LeaseMounts: its static roles are not rotated",
            )
    found: dict[str, DatabaseStaticRoleRef] = {}
    for mount in [mount for mount in named if mount in in_scope]:
        sweep.limiter.wait()
        if not is_database_mount(sweep.vault, mount):
            sweep.add(f"{mount}/", "rotate", ChangeStatus.FLAGGED, detail="not a database secrets engine")
            continue
        sweep.limiter.wait()
        for ref in list_static_roles(sweep.vault, mount):
            if static_role_rule_for(sweep.policy, ref) is not None:
                found[f"{DB_PREFIX}{mount}/{ref.role}"] = ref
    return found


def rotate_static_role_if_due(sweep: RotationSweep, ref: DatabaseStaticRoleRef, rotated_since: datetime) -> None:
    rule = static_role_rule_for(sweep.policy, ref)
    if rule is None:
        return
    sweep.limiter.wait()
    state = read_static_role(sweep.vault, ref)
    if state is None:
        return  # deleted since it was listed
    last = state.last_vault_rotation
    age = None if last is None else sweep.now - last
    if age is not None and age <= timedelta(days=rule.max_age_days):
        return
    before = "never rotated by Vault" if age is None else f"{max(0, age.days)} days since Vault last rotated it"
    if sweep.policy.is_protected(f"{ref.mount}/{ref.role}") or sweep.policy.is_protected(ref.key):
        sweep.add(ref.key, "rotate", ChangeStatus.SKIPPED, detail="protected by policy: never touched")
        return
    holds = find_holds(sweep.vault, None, [ref])
    if holds:
        sweep.add(ref.key, "rotate", ChangeStatus.SKIPPED, detail=f"on hold ({holds[0].marker}): never touched")
        return
    action = Action(
        kind=ActionKind.ROTATE,
        target=ref,
        reason=f"scheduled rotation of database user {state.username}: {before}, over the {rule.max_age_days}-day "
        f"maximum of {rule.static_role_prefix}",
        params=ActionParams(run_id=sweep.progress.run_id, rotated_since=rotated_since),
    )
    sweep.rotate(action, before, lambda: _rotated_at(sweep, ref))


def _rotated_at(sweep: RotationSweep, ref: DatabaseStaticRoleRef) -> str | None:
    sweep.limiter.wait()
    state = read_static_role(sweep.vault, ref)
    rotated = state.last_vault_rotation if state is not None else None
    return None if rotated is None else f"last_vault_rotation {rotated.isoformat()}"
