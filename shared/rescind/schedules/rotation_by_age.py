"""Rotation by age: rotate KV v2 and Secrets Manager secrets older than the policy's maximum age.

- KV v2: the metadata tree under each rule's `kv_prefix` is walked in sorted order; a secret's age is its current
  version's created_time. The longest matching prefix decides the maximum age.
- Secrets Manager: every secret of the given accounts (list_secrets, paginated); rules match a `key=value` tag,
  and the strictest matching rule wins. Age is LastRotatedDate, or CreatedDate for a secret never rotated.

Rotation goes through the engine (the four-step KV rotation, whose fingerprint hook the engine carries), keeping
the previous version: `previous_versions=KEEP, keep_versions=1`. A later run destroys a previous version once its
successor is older than `rotation_grace_days`, and verifies that by reading the metadata back. A leak response
does not wait: it rotates with DESTROY.

Database static roles (rules with a `static_role_prefix`) are rotated by Vault's rotate-role; see
`rescind.schedules.static_role_rotation`.

Candidates are named `kv:<mount>/<path>`, `sm:<arn>` and `db:<mount>/<role>` and walked in sorted order, so the
checkpoint is the last one done. Protected paths and holds are skipped; a dry run plans and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from pydantic import ValidationError

from rescind.aws.secrets_manager import ListedSecret, list_secrets
from rescind.exceptions import InvalidInput
from rescind.guard import find_holds
from rescind.holds import AWS_HOLD_TAG, is_set
from rescind.models import (
    Action,
    ActionKind,
    ActionParams,
    KvSecretRef,
    Outcome,
    PreviousVersions,
    SecretsManagerSecretRef,
)
from rescind.models.results import utc_now
from rescind.rotation.contract import declaration_from, needs_owner_detail, refused_detail
from rescind.schedules.base import CheckpointStore, RateLimiter, SweepProgress
from rescind.schedules.policy import MaxAgeRule, SchedulePolicy
from rescind.schedules.static_role_rotation import rotate_static_role_if_due, static_role_candidates
from rescind.schedules.types import Change, ChangeStatus, SweepName, SweepReport, SweepRequest
from rescind.vault.kv_rotation_state import RotationStep, rotation_of
from rescind.vault.kv_store import SecretMetadata, destroy_versions, iter_kv_paths, read_secret_metadata

if TYPE_CHECKING:
    import hvac

    from rescind.aws.session import AwsClientFactory
    from rescind.engine.executor import ActionEngine

KV_PREFIX = "kv:"
SM_PREFIX = "sm:"
# What a scheduled rotation does with the version it replaces: keep it for the grace period.
SCHEDULED_ROTATION = ActionParams(previous_versions=PreviousVersions.KEEP, keep_versions=1)

_STATUS_BY_OUTCOME = {
    Outcome.SUCCEEDED: ChangeStatus.APPLIED,
    Outcome.ALREADY_ABSENT: ChangeStatus.ALREADY,
    Outcome.ALREADY_APPLIED: ChangeStatus.ALREADY,
    Outcome.SKIPPED: ChangeStatus.SKIPPED,
    Outcome.FAILED: ChangeStatus.FAILED,
}


def status_of(outcome: Outcome) -> ChangeStatus:
    return _STATUS_BY_OUTCOME[outcome]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- KV v2 ----------------------------------------------------------------------------------------------------


def versions_past_grace(secret: SecretMetadata, cutoff: datetime) -> list[int]:
    """Versions Rescind's last finished rotation replaced whose successor was created before `cutoff`, not yet
    destroyed; none for a secret Rescind has not rotated."""
    rotation = rotation_of(secret)
    rotated = rotation.rotated_version if rotation.step is RotationStep.FINISHED else None
    if rotated is None:
        return []
    doomed = []
    for number, version in sorted(secret.versions.items()):
        successor = secret.versions.get(number + 1)
        if number >= rotated or version.destroyed or successor is None or successor.created_time is None:
            continue
        if successor.created_time < cutoff:
            doomed.append(number)
    return doomed


def kv_rule_for(policy: SchedulePolicy, full_path: str) -> MaxAgeRule | None:
    """The rule with the longest `kv_prefix` that matches `mount/path`."""
    matching = [rule for rule in policy.rotation_max_age if rule.kv_prefix and full_path.startswith(rule.kv_prefix)]
    return max(matching, key=lambda rule: len(rule.kv_prefix or ""), default=None)


def _walk_roots(policy: SchedulePolicy, kv_mounts: Sequence[str]) -> dict[str, set[str]]:
    """mount -> the folders to list: the deepest whole folder of each rule's prefix, on the mounts in scope."""
    roots: dict[str, set[str]] = {}
    for rule in policy.rotation_max_age:
        if rule.kv_prefix is None:
            continue
        for mount in kv_mounts:
            mount = mount.strip("/")
            if rule.kv_prefix.startswith(mount + "/"):
                rest = rule.kv_prefix[len(mount) + 1 :]
                roots.setdefault(mount, set()).add(rest.rsplit("/", 1)[0] if "/" in rest else "")
    # A folder inside another listed folder is listed already.
    return {
        mount: {f for f in folders if not any(f != o and f.startswith(o + "/" if o else "") for o in folders)}
        for mount, folders in roots.items()
    }


def _declaration_problem(settings: Mapping[str, str], where: str, *, tags: bool = False) -> str | None:
    """Why a due secret cannot rotate by its declaration (none, or a malformed one: flagged with the reason, for
    this secret only); None when it is declared. `settings`: KV custom_metadata, or a secret's tags (`tags=True`)."""
    try:
        declared = declaration_from(settings, where, tags=tags)
    except InvalidInput as malformed:
        return refused_detail(where, malformed)
    return None if declared is not None else needs_owner_detail(where, tags=tags)


# --- Secrets Manager ------------------------------------------------------------------------------------------


def tag_rule_for(policy: SchedulePolicy, tags: Mapping[str, str]) -> MaxAgeRule | None:
    """The strictest rule whose `key=value` tag the secret carries."""
    matching = []
    for rule in policy.rotation_max_age:
        if rule.tag is None:
            continue
        key, _, value = rule.tag.partition("=")
        if tags.get(key) == value:
            matching.append(rule)
    return min(matching, key=lambda rule: rule.max_age_days, default=None)


# --- the sweep ------------------------------------------------------------------------------------------------


def _days(age: timedelta) -> int:
    return max(0, age.days)


class _RotationSweep:
    def __init__(
        self,
        progress: SweepProgress,
        *,
        policy: SchedulePolicy,
        vault: hvac.Client,
        aws: AwsClientFactory | None,
        engine: ActionEngine,
        now: datetime,
    ) -> None:
        self.progress = progress
        self.policy = policy
        self.vault = vault
        self.aws = aws
        self.engine = engine
        self.now = now
        self.limiter = RateLimiter(policy.vault_requests_per_second)

    def add(self, target: str, what: str, status: ChangeStatus, **fields: str | None) -> None:
        detail = fields.pop("detail", None) or ""
        counts = status in (ChangeStatus.PLANNED, ChangeStatus.APPLIED, ChangeStatus.FAILED, ChangeStatus.ALREADY)
        self.progress.add(
            Change(target=_clip(target, 1000), what=what, status=status, detail=_clip(detail, 1000), **fields),
            counts_as_action=counts,
        )

    def rotate(self, action: Action, before: str, after: Callable[[], str | None]) -> None:
        """Plan (dry run) or run one rotation through the engine, and report it."""
        target = action.target.key
        if self.progress.dry_run:
            self.add(target, "rotate", ChangeStatus.PLANNED, before=before, detail=action.reason)
            return
        result = self.engine.execute_or_fail(action)
        # SKIPPED from the engine itself (holds and protection are the sweep's, above): the rotation wrote nothing
        # and needs its owner (a declaration found malformed on reading the value): flagged for a human.
        status = ChangeStatus.FLAGGED if result.outcome is Outcome.SKIPPED else status_of(result.outcome)
        evidence = "; ".join(item.observed for item in result.evidence)
        detail = f"{result.detail} | {evidence}" if evidence else result.detail
        self.add(target, "rotate", status, before=before, after=after(), detail=detail)

    # KV v2

    def kv_secret(self, ref: KvSecretRef) -> None:
        full_path = f"{ref.mount}/{ref.path}"
        rule = kv_rule_for(self.policy, full_path)
        if rule is None:
            return
        self.limiter.wait()
        secret = read_secret_metadata(self.vault, ref)
        current = secret.current if secret is not None else None
        if (
            secret is None
            or current is None
            or current.destroyed
            or current.deletion_time
            or current.created_time is None
        ):
            return  # nothing readable to rotate
        age = self.now - current.created_time
        due = age > timedelta(days=rule.max_age_days)
        doomed = versions_past_grace(secret, self.now - timedelta(days=self.policy.rotation_grace_days))
        if not due and not doomed:
            return
        what = "rotate" if due else "destroy previous versions"
        if self.policy.is_protected(full_path) or self.policy.is_protected(ref.key):
            self.add(ref.key, what, ChangeStatus.SKIPPED, detail="protected by policy: never touched")
            return
        self.limiter.wait()
        holds = find_holds(self.vault, None, [ref])
        if holds:
            self.add(ref.key, what, ChangeStatus.SKIPPED, detail=f"on hold ({holds[0].marker}): never touched")
            return
        refusal = _declaration_problem(secret.custom_metadata, full_path) if due else None
        if refusal is not None:
            # Never written: a random value revokes nothing where the old one is accepted. A human declares how.
            self.add(ref.key, "rotate", ChangeStatus.FLAGGED, before=f"{_days(age)} days old", detail=refusal)
            due = False
            if not doomed:
                return
        if due:
            action = Action(
                kind=ActionKind.ROTATE,
                target=ref,
                reason=f"scheduled rotation: {_days(age)} days old, over the {rule.max_age_days}-day maximum "
                f"of {rule.kv_prefix}",
                params=SCHEDULED_ROTATION.model_copy(update={"run_id": self.progress.run_id}),
            )
            self.rotate(action, f"version {secret.current_version}, {_days(age)} days old", lambda: self._kv_after(ref))
        else:
            self.destroy_past_grace(ref, doomed)

    def _kv_after(self, ref: KvSecretRef) -> str | None:
        self.limiter.wait()
        secret = read_secret_metadata(self.vault, ref)
        return None if secret is None else f"version {secret.current_version}"

    def destroy_past_grace(self, ref: KvSecretRef, doomed: list[int]) -> None:
        """Destroy the previous versions whose grace period is over, then read the metadata back."""
        before = f"versions {doomed} kept past the {self.policy.rotation_grace_days}-day grace period"
        if self.progress.dry_run:
            self.add(ref.key, "destroy previous versions", ChangeStatus.PLANNED, before=before)
            return
        self.limiter.wait()
        destroy_versions(self.vault, ref, doomed)
        self.limiter.wait()
        after = read_secret_metadata(self.vault, ref)
        alive = [n for n in doomed if after is not None and n in after.versions and not after.versions[n].destroyed]
        status = ChangeStatus.FAILED if alive else ChangeStatus.APPLIED
        observed = f"read back: versions {alive} not destroyed" if alive else "read back: destroyed"
        self.add(
            ref.key,
            "destroy previous versions",
            status,
            before=before,
            after=f"versions {doomed} destroyed" if not alive else None,
            detail=observed,
        )

    # Secrets Manager

    def sm_secret(self, secret: ListedSecret) -> None:
        rule = tag_rule_for(self.policy, secret.tags)
        if rule is None or secret.age_from is None:
            return
        age = self.now - secret.age_from
        if age <= timedelta(days=rule.max_age_days):
            return
        try:
            ref = SecretsManagerSecretRef(secret_arn=secret.arn)
        except ValidationError:
            self.add(secret.arn, "rotate", ChangeStatus.FLAGGED, detail="not a secret ARN Rescind can act on")
            return
        if self.policy.is_protected(ref.key) or self.policy.is_protected(secret.arn):
            self.add(ref.key, "rotate", ChangeStatus.SKIPPED, detail="protected by policy: never touched")
            return
        if is_set(secret.tags.get(AWS_HOLD_TAG)):
            self.add(ref.key, "rotate", ChangeStatus.SKIPPED, detail=f"on hold (tag {AWS_HOLD_TAG}): never touched")
            return
        before = f"{_days(age)} days since last rotation"
        if not secret.rotation_enabled:
            # Without its own rotation function, only the rotation contract declared by tags: a random value would
            # revoke nothing where the old one is still accepted, so an undeclared secret needs an owner.
            problem = _declaration_problem(secret.tags, secret.arn, tags=True)
            if problem is not None:
                self.add(ref.key, "rotate", ChangeStatus.FLAGGED, before=before, detail=problem)
                return
        action = Action(
            kind=ActionKind.ROTATE,
            target=ref,
            reason=f"scheduled rotation: {_days(age)} days old, over the {rule.max_age_days}-day maximum of tag "
            f"{rule.tag}",
            params=SCHEDULED_ROTATION.model_copy(update={"run_id": self.progress.run_id}),
        )
        self.rotate(action, before, lambda: "rotated now")


def run_rotation_by_age(
    request: SweepRequest,
    *,
    policy: SchedulePolicy,
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    engine: ActionEngine,
    checkpoints: CheckpointStore,
    kv_mounts: Sequence[str],
    account_ids: Sequence[str],
    now: datetime,
    lease_mounts: Sequence[str] = (),
) -> SweepReport:
    """One bounded, resumable pass of rotation by age. Raises only for backend failures (to be retried)."""
    started = utc_now()
    progress = SweepProgress(SweepName.ROTATION_BY_AGE, request, policy=policy, checkpoints=checkpoints, now=now)
    sweep = _RotationSweep(progress, policy=policy, vault=vault, aws=aws, engine=engine, now=now)

    candidates: dict[str, Callable[[], None]] = {}
    for mount, folders in sorted(_walk_roots(policy, kv_mounts).items()):
        for folder in sorted(folders):
            for path in sorted(iter_kv_paths(vault, mount, folder, before_request=sweep.limiter.wait)):
                ref = KvSecretRef(mount=mount, path=path)
                candidates[f"{KV_PREFIX}{mount}/{path}"] = partial(sweep.kv_secret, ref)
    if aws is not None and any(rule.tag for rule in policy.rotation_max_age):
        for account_id in sorted(set(account_ids)):
            for secret in list_secrets(aws, account_id):
                if secret.scheduled_for_deletion:
                    continue
                candidates[f"{SM_PREFIX}{secret.arn}"] = partial(sweep.sm_secret, secret)
    # Database static roles (rescind.schedules.static_role_rotation).
    for key, role in static_role_candidates(sweep, lease_mounts).items():
        candidates[key] = partial(rotate_static_role_if_due, sweep, role, started)

    for key in progress.walk(candidates):
        candidates[key]()
    return progress.finish(now + (utc_now() - started))
