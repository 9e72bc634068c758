"""TTL ceilings: find roles, mounts, live tokens and leases whose TTL exceeds the policy's ceiling, and lower them.

What is looked at, and the ceiling that applies (`policy.ttl_ceilings`):

| candidate (fields)                 | Vault path (for protected_paths) | ceiling                      |
|-------------------------------------|----------------------------------|------------------------------|
| PKI role (ttl, max_ttl)             | `<mount>/roles/<name>`           | role_seconds                 |
| AppRole role (token_*ttl)           | `auth/<mount>/role/<name>`       | role_seconds                 |
| token role (explicit max, period)   | `auth/token/roles/<name>`        | min(role, token) seconds     |
| mount (default/max_lease_ttl)       | `<mount>/`, `auth/<mount>/`      | mount_seconds                |
| live token (ttl)                    | (its reference key only)         | token_seconds                |
| live lease (ttl)                    | `<lease id>`                     | lease_seconds                |

Candidates are keyed `mount:<path>/`, `role:<path>`, `token:<accessor>` and `lease:<lease id>` and walked in sorted
order, so the checkpoint is the last key done.

Only the PKI and AppRole mounts in scope are tuned, never the token store or system mounts; only the leases under
PkiMounts and LeaseMounts are listed and lowered, never a lease of another mount. Every change goes
through the engine's SHORTEN_TTL, which lowers and never raises, and is verified by reading it back. Tokens and
leases are renewed with the smaller increment. What cannot be lowered that way is FLAGGED for a human, never
revoked by a sweep: a token or lease that never expires (ttl 0, standing privilege), is not renewable, or is
periodic; and an AppRole role's secret_id_ttl (lowering it would not touch a secret-id already issued, see
rescind.vault.ttl). The token the sweep itself uses is left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from rescind.guard import find_holds
from rescind.models import (
    Action,
    ActionKind,
    ActionParams,
    CredentialRef,
    TtlTargetType,
    VaultLeaseRef,
    VaultTokenRef,
    VaultTtlTargetRef,
)
from rescind.models.results import utc_now
from rescind.schedules.base import CheckpointStore, RateLimiter, SweepProgress
from rescind.schedules.policy import SchedulePolicy
from rescind.schedules.rotation_by_age import status_of
from rescind.schedules.types import Change, ChangeStatus, SweepName, SweepReport, SweepRequest
from rescind.vault.client import own_token_accessor
from rescind.vault.common import ttl_is_at_or_below
from rescind.vault.leases import list_lease_ids, lookup_lease
from rescind.vault.tokens import list_token_accessors, lookup_token_by_accessor
from rescind.vault.ttl import TtlTargets, list_role_names, read_secret_id_ttl, read_ttl_settings

if TYPE_CHECKING:
    import hvac

    from rescind.engine.executor import ActionEngine


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _CeilingSweep:
    def __init__(
        self, progress: SweepProgress, *, policy: SchedulePolicy, vault: hvac.Client, engine: ActionEngine
    ) -> None:
        self.progress = progress
        self.policy = policy
        self.vault = vault
        self.engine = engine
        self.limiter = RateLimiter(policy.vault_requests_per_second)
        ceilings = policy.ttl_ceilings
        self.role_ceiling = ceilings.role_seconds
        self.token_role_ceiling = min(ceilings.role_seconds, ceilings.token_seconds)

    def add(self, change: Change) -> None:
        counts = change.status in (
            ChangeStatus.PLANNED,
            ChangeStatus.APPLIED,
            ChangeStatus.ALREADY,
            ChangeStatus.FAILED,
        )
        self.progress.add(change, counts_as_action=counts)

    def refused(self, ref: CredentialRef, paths: Sequence[str], what: str) -> bool:
        """Protected or held: report SKIPPED and touch nothing."""
        if any(self.policy.is_protected(path) for path in (*paths, ref.key)):
            self.add(Change(target=ref.key, what=what, status=ChangeStatus.SKIPPED, detail="protected by policy"))
            return True
        self.limiter.wait()
        holds = find_holds(self.vault, None, [ref])
        if holds:
            self.add(
                Change(target=ref.key, what=what, status=ChangeStatus.SKIPPED, detail=f"on hold ({holds[0].marker})")
            )
            return True
        return False

    def shorten(self, ref: CredentialRef, ceiling: int, *, what: str, before: str, after: str, reason: str) -> None:
        action = Action(
            kind=ActionKind.SHORTEN_TTL,
            target=ref,
            reason=_clip(reason, 500),
            params=ActionParams(ttl_seconds=ceiling, max_ttl_seconds=ceiling),
        )
        if self.progress.dry_run:
            self.add(Change(target=ref.key, what=what, status=ChangeStatus.PLANNED, before=before, after=after))
            return
        self.limiter.wait()
        result = self.engine.execute_or_fail(action)
        evidence = "; ".join(item.observed for item in result.evidence)
        status = status_of(result.outcome)
        self.add(
            Change(
                target=ref.key,
                what=what,
                status=status,
                before=before,
                after=after if status is ChangeStatus.APPLIED else None,
                detail=_clip(f"{result.detail} | {evidence}" if evidence else result.detail, 1000),
            )
        )

    def flag(self, ref: CredentialRef, what: str, before: str, detail: str) -> None:
        self.add(Change(target=ref.key, what=what, status=ChangeStatus.FLAGGED, before=before, detail=detail))

    # roles and mounts

    def ttl_target(self, ref: VaultTtlTargetRef, protected_path: str) -> None:
        ceiling = self.token_role_ceiling if ref.target_type is TtlTargetType.TOKEN_ROLE else self.role_ceiling
        if ref.target_type is TtlTargetType.MOUNT:
            ceiling = self.policy.ttl_ceilings.mount_seconds
        self.limiter.wait()
        settings = read_ttl_settings(self.vault, ref)
        if settings is None:
            return
        if ref.target_type is TtlTargetType.APPROLE_ROLE:
            self.secret_id_ttl(ref, ceiling)
        lowerings = settings.lowerings(TtlTargets(ttl_seconds=ceiling, ceiling_seconds=ceiling))
        if not lowerings:
            return
        what = _clip("shorten_ttl " + " ".join(sorted(lowerings)), 200)
        if self.refused(ref, [protected_path], what):
            return
        before = " ".join(f"{name}={settings.values[name]}" for name in sorted(lowerings))
        after = " ".join(f"{name}={seconds}" for name, seconds in sorted(lowerings.items()))
        reason = f"TTL ceiling: {settings.path} above {ceiling}s ({before}, 0 = unlimited)"
        self.shorten(ref, ceiling, what=what, before=_clip(before, 200), after=_clip(after, 200), reason=reason)

    def secret_id_ttl(self, ref: VaultTtlTargetRef, ceiling: int) -> None:
        self.limiter.wait()
        seconds = read_secret_id_ttl(self.vault, ref)
        if seconds is not None and not ttl_is_at_or_below(seconds, ceiling):
            self.flag(
                ref,
                "secret_id_ttl",
                f"secret_id_ttl={seconds}",
                f"above the {ceiling}s ceiling (0 = never expires); not lowered by a sweep: secret-ids already "
                "issued keep their expiry, so destroy those that must die and lower it with their owner",
            )

    # live tokens and leases

    def token(self, accessor: str, own_accessor: str) -> None:
        if accessor == own_accessor:
            return  # the sweep's own token: cutting it would stop the sweep, and it is not a workload's
        ceiling = self.policy.ttl_ceilings.token_seconds
        self.limiter.wait()
        state = lookup_token_by_accessor(self.vault, accessor)
        if state is None or ttl_is_at_or_below(state.ttl_seconds, ceiling):
            return
        ref = VaultTokenRef(accessor=accessor)
        before = f"ttl={state.ttl_seconds}"
        if state.ttl_seconds == 0:
            self.flag(ref, "shorten_ttl", before, "never expires (standing privilege): revoke or re-issue it")
        elif state.period_seconds > 0:
            self.flag(ref, "shorten_ttl", before, f"periodic ({state.period_seconds}s): renewal would reset it")
        elif not state.renewable:
            self.flag(ref, "shorten_ttl", before, "not renewable, so its TTL cannot be lowered")
        elif not self.refused(ref, [], "shorten_ttl"):
            reason = f"TTL ceiling: token ttl {state.ttl_seconds}s above {ceiling}s"
            self.shorten(ref, ceiling, what="shorten_ttl", before=before, after=f"ttl={ceiling}", reason=reason)

    def lease(self, lease_id: str) -> None:
        ceiling = self.policy.ttl_ceilings.lease_seconds
        try:
            ref = VaultLeaseRef(lease_id=lease_id)
        except ValueError:
            return  # not a lease id Rescind can name (fewer than three segments)
        self.limiter.wait()
        state = lookup_lease(self.vault, ref)
        if state is None or ttl_is_at_or_below(state.ttl_seconds, ceiling):
            return
        before = f"ttl={state.ttl_seconds}"
        if state.ttl_seconds == 0:
            self.flag(ref, "shorten_ttl", before, "never expires (standing privilege): revoke it")
        elif not state.renewable:
            self.flag(ref, "shorten_ttl", before, "not renewable, so its TTL cannot be lowered: revoke it")
        elif not self.refused(ref, [lease_id], "shorten_ttl"):
            reason = f"TTL ceiling: lease ttl {state.ttl_seconds}s above {ceiling}s"
            self.shorten(ref, ceiling, what="shorten_ttl", before=before, after=f"ttl={ceiling}", reason=reason)


def run_ttl_ceilings(
    request: SweepRequest,
    *,
    policy: SchedulePolicy,
    vault: hvac.Client,
    engine: ActionEngine,
    checkpoints: CheckpointStore,
    pki_mounts: Sequence[str],
    approle_mounts: Sequence[str],
    now: datetime,
    lease_mounts: Sequence[str] = (),
) -> SweepReport:
    """One bounded, resumable pass over the TTL ceilings. Raises only for backend failures (to be retried)."""
    started = utc_now()
    progress = SweepProgress(SweepName.TTL_CEILINGS, request, policy=policy, checkpoints=checkpoints, now=now)
    sweep = _CeilingSweep(progress, policy=policy, vault=vault, engine=engine)
    wait = sweep.limiter.wait

    candidates: dict[str, Callable[[], None]] = {}

    def add_target(ref: VaultTtlTargetRef, path: str, key_path: str) -> None:
        candidates[key_path] = partial(sweep.ttl_target, ref, path)

    for mount in sorted({m.strip("/") for m in pki_mounts if m.strip("/")}):
        add_target(VaultTtlTargetRef(target_type=TtlTargetType.MOUNT, mount=mount), f"{mount}/", f"mount:{mount}/")
        wait()
        for name in list_role_names(vault, TtlTargetType.PKI_ROLE, mount):
            ref = VaultTtlTargetRef(target_type=TtlTargetType.PKI_ROLE, mount=mount, role_name=name)
            add_target(ref, f"{mount}/roles/{name}", f"role:{mount}/roles/{name}")
    for mount in sorted({m.strip("/").removeprefix("auth/") for m in approle_mounts if m.strip("/")}):
        auth = f"auth/{mount}"
        add_target(VaultTtlTargetRef(target_type=TtlTargetType.MOUNT, mount=auth), f"{auth}/", f"mount:{auth}/")
        wait()
        for name in list_role_names(vault, TtlTargetType.APPROLE_ROLE, mount):
            ref = VaultTtlTargetRef(target_type=TtlTargetType.APPROLE_ROLE, mount=mount, role_name=name)
            add_target(ref, f"{auth}/role/{name}", f"role:{auth}/role/{name}")
    wait()
    for name in list_role_names(vault, TtlTargetType.TOKEN_ROLE):
        ref = VaultTtlTargetRef(target_type=TtlTargetType.TOKEN_ROLE, mount="token", role_name=name)
        add_target(ref, f"auth/token/roles/{name}", f"role:auth/token/roles/{name}")
    wait()
    own = own_token_accessor(vault)
    wait()
    for accessor in list_token_accessors(vault):
        candidates[f"token:{accessor}"] = partial(sweep.token, accessor, own)
    for lease_id in list_lease_ids(vault, [*pki_mounts, *lease_mounts], before_request=wait):
        candidates[f"lease:{lease_id}"] = partial(sweep.lease, lease_id)

    for key in progress.walk(candidates):
        candidates[key]()
    return progress.finish(now + (utc_now() - started))
