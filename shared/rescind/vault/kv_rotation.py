"""KV v2 rotation under the rotation contract (rescind.rotation.contract), in Secrets Manager's four steps.

The value applications read, `<mount>/data/<path>`, stays current until finish. The pending value lives at the
staging path `<mount>/data/_rescind-pending/<path>` (kv_store.STAGING_FOLDER), which no application reads:

    createSecret   Rescind: the current value with the declared fields (only those) generated anew, written to
                   the staging path; the version it replaces is recorded as the base version.
    setSecret      the hook: reads the staging path and sets the pending value where it is checked (a database).
    testSecret     the hook: logs in (or otherwise uses) the pending value.
    finishSecret   Rescind: writes the staged value as the new latest version with cas = the base version (a
                   concurrent writer fails it: nothing is overwritten), tells `on_new_value` (the fingerprint
                   index sees the new current value, never a pending one), destroys previous versions per policy,
                   then deletes the staging copy.

The hook's event is `{"Step", "SecretId": "vault:<mount>/<path>", "ClientRequestToken": <rotation id>}`; the
staging copy's custom_metadata carries `rescind_rotation_id` = that token, so the hook can check it reads the
pending value of this rotation. A hook needs read on `<mount>/data/_rescind-pending/<path>` and, to log in with
the current value, on `<mount>/data/<path>`.

The rotation in flight is recorded in the secret's own custom_metadata, so a rerun resumes at the right step:

    rescind_rotation_id       the rotation in flight, or the last one finished
    rescind_rotation_step     creating | created | set | tested | finishing | finished
    rescind_base_version      the version that was current at create: finish writes with cas = it
    rescind_pending_version   during finish: the version the finish write creates (base + 1)
    rescind_rotated_version   after finish: the version the rotation created
    rescind_rotated_at        after finish: when (UTC, ISO 8601)

Idempotency key: the rotation id (the action_id, which covers `params.run_id`). A failed set or test leaves the
current value untouched and the rotation at its step: running the same action again resumes it (hooks must be
idempotent, as Secrets Manager's are). A secret with no declaration is never written: "needs an owner". With
`rescind_rotation_hook=none` (the owner's explicit statement that no external system checks the value) set and
test are Rescind's own read-back of the staged value.

Values stay in-process: they are never returned, logged, put in an exception or stored outside Vault.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import hvac

from rescind.exceptions import ActionFailed, InvalidInput
from rescind.models import Action, ActionParams, ActOutcome, Evidence, KvSecretRef, PreviousVersions
from rescind.rotation.contract import (
    HOOK_KEY,
    NO_EXTERNAL_SYSTEM,
    VAULT_SECRET_ID_PREFIX,
    HookStep,
    RotationDeclaration,
    RotationHookFailed,
    RotationHookInvoker,
    declaration_from,
    hook_event,
    needs_owner_detail,
)
from rescind.vault.kv_store import (
    STAGING_FOLDER,
    SecretMetadata,
    delete_secret,
    destroy_versions,
    patch_custom_metadata,
    read_secret_metadata,
    read_secret_version,
    where,
    write_secret,
)

ROTATION_ID_KEY = "rescind_rotation_id"
ROTATION_STEP_KEY = "rescind_rotation_step"
BASE_VERSION_KEY = "rescind_base_version"
PENDING_VERSION_KEY = "rescind_pending_version"
ROTATED_VERSION_KEY = "rescind_rotated_version"
ROTATED_AT_KEY = "rescind_rotated_at"

_ROTATION_ID_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")

# Receives (ref, version, value) in-process: the on_new_value callback (the fingerprint index).
SecretValueHook = Callable[[KvSecretRef, int, Mapping[str, Any]], None]


def fingerprint(value: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a value: compared in memory, never logged or returned."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def staging_ref(ref: KvSecretRef) -> KvSecretRef:
    """Where the pending value of `ref` is staged: `<mount>/_rescind-pending/<path>`."""
    return KvSecretRef(mount=ref.mount, path=f"{STAGING_FOLDER}/{ref.path}")


def secret_id_of(ref: KvSecretRef) -> str:
    """The hook event's SecretId for a KV secret: `vault:<mount>/<path>`."""
    return f"{VAULT_SECRET_ID_PREFIX}{ref.mount}/{ref.path}"


class RotationStep(StrEnum):
    CREATING = "creating"  # the staging write may or may not have happened
    CREATED = "created"
    SET = "set"
    TESTED = "tested"
    FINISHING = "finishing"  # the finish write may or may not have happened
    FINISHED = "finished"

    @property
    def rank(self) -> int:
        return list(RotationStep).index(self)


class RotationStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    FINISHED = "finished"
    ABSENT = "absent"  # no secret at the path
    NOTHING_TO_ROTATE = "nothing_to_rotate"  # the current version is deleted, destroyed or empty


@dataclass(frozen=True)
class RotationState:
    rotation_id: str | None
    step: RotationStep | None
    base_version: int | None
    rotated_version: int | None

    @classmethod
    def from_custom_metadata(cls, custom: Mapping[str, str]) -> RotationState:
        step = custom.get(ROTATION_STEP_KEY)
        return cls(
            rotation_id=custom.get(ROTATION_ID_KEY) or None,
            step=RotationStep(step) if step in set(RotationStep) else None,
            base_version=_as_version(custom.get(BASE_VERSION_KEY)),
            rotated_version=_as_version(custom.get(ROTATED_VERSION_KEY)),
        )


def rotation_of(metadata: SecretMetadata) -> RotationState:
    """The rotation recorded in the secret's custom_metadata."""
    return RotationState.from_custom_metadata(metadata.custom_metadata)


@dataclass(frozen=True)
class StepResult:
    """What one rotation step did."""

    status: RotationStatus
    version: int | None = None
    changed: bool = False
    detail: str = ""


def _as_version(text: str | None) -> int | None:
    if text is None or not text.isdigit():
        return None
    return int(text)


def _check_rotation_id(rotation_id: str) -> None:
    if not _ROTATION_ID_RE.fullmatch(rotation_id):
        raise InvalidInput("rotation_id must be 1-200 characters of letters, digits, '_', '.', ':' and '-'")


def rotation_id_for(action: Action) -> str:
    """The idempotency key of a rotation: the action_id, which covers the run (params.run_id)."""
    return action.action_id


def versions_to_destroy(metadata: SecretMetadata, new_version: int, params: ActionParams) -> list[int]:
    """Previous versions the policy destroys and that are not destroyed yet.

    DESTROY: every version before the new one. KEEP: the newest `keep_versions` previous versions stay and
    older ones are destroyed; KEEP with keep_versions=0 keeps them all (KV's max_versions prunes them).
    """
    previous = sorted(v for v, state in metadata.versions.items() if v < new_version and not state.destroyed)
    if params.previous_versions is PreviousVersions.DESTROY:
        return previous
    if params.keep_versions == 0:
        return []
    return [v for v in previous if v < new_version - params.keep_versions]


# --- the four steps ---------------------------------------------------------------------------


def _require_metadata(client: hvac.Client, ref: KvSecretRef) -> SecretMetadata:
    metadata = read_secret_metadata(client, ref)
    if metadata is None:
        raise ActionFailed(f"the secret {where(ref)} disappeared during its rotation")
    return metadata


def _state_for_step(
    client: hvac.Client, ref: KvSecretRef, rotation_id: str, needs: RotationStep
) -> tuple[SecretMetadata, RotationState, int] | StepResult:
    """The rotation's state and base version if it has reached `needs`; a StepResult when it has finished."""
    _check_rotation_id(rotation_id)
    metadata = _require_metadata(client, ref)
    state = rotation_of(metadata)
    if state.rotation_id != rotation_id or state.step is None:
        raise ActionFailed(f"rotation {rotation_id} of {where(ref)} is not in progress: run its create step")
    if state.step is RotationStep.FINISHED:
        return StepResult(
            RotationStatus.FINISHED, version=state.rotated_version, detail=f"already applied: rotation {rotation_id}"
        )
    if state.step.rank < needs.rank or state.base_version is None:
        raise ActionFailed(f"rotation {rotation_id} of {where(ref)} is at step {state.step}, before {needs}")
    return metadata, state, state.base_version


def create_pending_value(
    client: hvac.Client, ref: KvSecretRef, rotation_id: str, declaration: RotationDeclaration
) -> StepResult:
    """Step 1 (createSecret): stage the current value with its declared fields generated anew.

    Only the staging path is written; the secret applications read is not. A rerun of a crashed create writes
    the staging copy again (no hook has seen it yet).
    """
    _check_rotation_id(rotation_id)
    metadata = read_secret_metadata(client, ref)
    if metadata is None:
        return StepResult(RotationStatus.ABSENT, detail=f"already absent: no secret at {where(ref)}; nothing to rotate")
    state = rotation_of(metadata)
    if state.rotation_id == rotation_id and state.step is RotationStep.FINISHED:
        return StepResult(
            RotationStatus.FINISHED,
            version=state.rotated_version,
            detail=f"already applied: rotation {rotation_id} created version {state.rotated_version}",
        )
    if state.rotation_id == rotation_id and state.step is not None and state.step is not RotationStep.CREATING:
        return StepResult(RotationStatus.IN_PROGRESS, version=state.base_version, detail="pending value already staged")
    current = metadata.current_version
    current_value = read_secret_version(client, ref, current) if current > 0 else None
    if not current_value:
        return StepResult(
            RotationStatus.NOTHING_TO_ROTATE,
            detail=f"already absent: the current version {current} of {where(ref)} is deleted, destroyed or empty",
        )
    pending_value = declaration.pending_value(current_value, where(ref))
    patch_custom_metadata(
        client,
        ref,
        {
            ROTATION_ID_KEY: rotation_id,
            ROTATION_STEP_KEY: RotationStep.CREATING,
            BASE_VERSION_KEY: str(current),
            PENDING_VERSION_KEY: None,
            ROTATED_VERSION_KEY: None,
            ROTATED_AT_KEY: None,
        },
    )
    staging = staging_ref(ref)
    write_secret(client, staging, pending_value)
    patch_custom_metadata(client, staging, {ROTATION_ID_KEY: rotation_id, BASE_VERSION_KEY: str(current)})
    patch_custom_metadata(client, ref, {ROTATION_STEP_KEY: RotationStep.CREATED})
    return StepResult(
        RotationStatus.IN_PROGRESS,
        version=current,
        changed=True,
        detail=f"staged a pending value at {where(staging)} (fields {','.join(declaration.fields)})",
    )


def _read_back_staged(
    client: hvac.Client, ref: KvSecretRef, rotation_id: str, base: int, declaration: RotationDeclaration
) -> None:
    """setSecret/testSecret for `rescind_rotation_hook=none`: no external system to set, so Rescind reads the
    staged value back and checks it is this rotation's and has every declared field, each new."""
    staging = staging_ref(ref)
    staged_metadata = read_secret_metadata(client, staging)
    staged = read_secret_version(client, staging, 0)
    if staged_metadata is None or not staged:
        raise RotationHookFailed(f"the pending value of {where(ref)} is gone from {where(staging)}")
    if staged_metadata.custom_metadata.get(ROTATION_ID_KEY) != rotation_id:
        raise RotationHookFailed(f"the pending value at {where(staging)} is not rotation {rotation_id}'s")
    current = read_secret_version(client, ref, base) or {}
    stale = [name for name in declaration.fields if name not in staged or staged[name] == current.get(name)]
    if stale:
        raise RotationHookFailed(f"the pending value at {where(staging)} has no new {','.join(stale)}")


def _hook_step(
    client: hvac.Client,
    ref: KvSecretRef,
    rotation_id: str,
    at: RotationStep,
    step: HookStep,
    *,
    declaration: RotationDeclaration,
    hooks: RotationHookInvoker | None,
) -> StepResult:
    """setSecret (at CREATED, then SET) or testSecret (at SET, then TESTED): the hook's, run once per rotation;
    a read-back of the staged value when the owner declared no external system."""
    found = _state_for_step(client, ref, rotation_id, at)
    if isinstance(found, StepResult):
        return found
    _metadata, state, base = found
    if state.step is not at:
        return StepResult(RotationStatus.IN_PROGRESS, version=base, detail=f"{step} already done")
    if declaration.hook_arn is None:
        _read_back_staged(client, ref, rotation_id, base, declaration)
        done = f"{step}: staged value read back ({HOOK_KEY}={NO_EXTERNAL_SYSTEM}: no external system)"
    elif hooks is None:
        raise ActionFailed(f"no rotation hook invoker is configured: cannot run the hook of {where(ref)}")
    else:
        hooks.invoke(declaration.hook_arn, hook_event(step, secret_id_of(ref), rotation_id))
        done = f"hook passed {step}"
    patch_custom_metadata(client, ref, {ROTATION_STEP_KEY: list(RotationStep)[at.rank + 1]})
    return StepResult(RotationStatus.IN_PROGRESS, version=base, changed=True, detail=done)


def set_pending_value(
    client: hvac.Client,
    ref: KvSecretRef,
    rotation_id: str,
    declaration: RotationDeclaration,
    hooks: RotationHookInvoker | None,
) -> StepResult:
    """Step 2 (setSecret): the hook sets the staged value where it is checked."""
    return _hook_step(
        client, ref, rotation_id, RotationStep.CREATED, HookStep.SET, declaration=declaration, hooks=hooks
    )


def check_pending_value(
    client: hvac.Client,
    ref: KvSecretRef,
    rotation_id: str,
    declaration: RotationDeclaration,
    hooks: RotationHookInvoker | None,
) -> StepResult:
    """Step 3 (testSecret): the hook uses the staged value where it is checked."""
    return _hook_step(client, ref, rotation_id, RotationStep.SET, HookStep.TEST, declaration=declaration, hooks=hooks)


def finish_rotation(
    client: hvac.Client,
    ref: KvSecretRef,
    rotation_id: str,
    params: ActionParams,
    *,
    on_new_value: SecretValueHook | None = None,
) -> StepResult:
    """Step 4 (finishSecret): the staged value becomes the new latest version (cas = the base version), the
    fingerprint index sees it, previous versions are destroyed per policy and the staging copy is deleted."""
    found = _state_for_step(client, ref, rotation_id, RotationStep.TESTED)
    if isinstance(found, StepResult):
        return found
    metadata, state, base = found
    new_version = base + 1
    staging = staging_ref(ref)
    staged = read_secret_version(client, staging, 0)
    if not staged:
        raise ActionFailed(f"the pending value of {where(ref)} is gone from {where(staging)}")
    if state.step is RotationStep.TESTED:
        patch_custom_metadata(
            client, ref, {ROTATION_STEP_KEY: RotationStep.FINISHING, PENDING_VERSION_KEY: str(new_version)}
        )
    landed = metadata.current_version == new_version and fingerprint(
        read_secret_version(client, ref, new_version) or {}
    ) == fingerprint(staged)
    if not landed:  # the finish write has not happened (a rerun after a crash finds it if it has)
        written = write_secret(client, ref, staged, cas=base)
        if written != new_version:
            raise ActionFailed(f"the finish write created version {written} of {where(ref)}, expected {new_version}")
    if on_new_value is not None:
        on_new_value(ref, new_version, staged)
    doomed = versions_to_destroy(_require_metadata(client, ref), new_version, params)
    destroy_versions(client, ref, doomed)
    delete_secret(client, staging)
    patch_custom_metadata(
        client,
        ref,
        {
            ROTATION_STEP_KEY: RotationStep.FINISHED,
            BASE_VERSION_KEY: None,
            PENDING_VERSION_KEY: None,
            ROTATED_VERSION_KEY: str(new_version),
            ROTATED_AT_KEY: datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    destroyed = f"destroyed versions {doomed}" if doomed else "destroyed no version"
    return StepResult(
        RotationStatus.FINISHED,
        version=new_version,
        changed=True,
        detail=f"version {new_version} is current; {destroyed}; staging copy deleted",
    )


def rotate_kv_secret(
    client: hvac.Client,
    ref: KvSecretRef,
    rotation_id: str,
    params: ActionParams,
    *,
    hooks: RotationHookInvoker | None,
    on_new_value: SecretValueHook | None = None,
) -> ActOutcome:
    """All four steps; resumes a rotation with the same id. An undeclared secret is never written."""
    _check_rotation_id(rotation_id)
    metadata = read_secret_metadata(client, ref)
    if metadata is None:
        return ActOutcome(changed=False, absent=True, detail=f"already absent: no secret at {where(ref)}")
    state = rotation_of(metadata)
    if state.rotation_id == rotation_id and state.step is RotationStep.FINISHED:
        return ActOutcome(changed=False, detail=f"already applied: rotation {rotation_id} of {where(ref)}")
    declaration = declaration_from(metadata.custom_metadata, where(ref))
    if declaration is None:
        return ActOutcome(changed=False, needs_owner=True, detail=needs_owner_detail(where(ref)))
    created = create_pending_value(client, ref, rotation_id, declaration)
    if created.status in (RotationStatus.ABSENT, RotationStatus.NOTHING_TO_ROTATE):
        return ActOutcome(changed=False, absent=True, detail=created.detail)
    steps = [
        created,
        set_pending_value(client, ref, rotation_id, declaration, hooks),
        check_pending_value(client, ref, rotation_id, declaration, hooks),
        finish_rotation(client, ref, rotation_id, params, on_new_value=on_new_value),
    ]
    return ActOutcome(
        changed=any(step.changed for step in steps),
        detail=f"rotation {rotation_id} of {where(ref)}: " + "; ".join(step.detail for step in steps),
    )


# --- verify -----------------------------------------------------------------------------------


def verify_kv_rotation(client: hvac.Client, ref: KvSecretRef, rotation_id: str, params: ActionParams) -> Evidence:
    """Read back: the rotation finished, its version (or a later one) is current and readable, and every
    previous version the policy destroys is destroyed."""
    check = f"metadata and current version of {where(ref)}"
    metadata = read_secret_metadata(client, ref)
    if metadata is None:
        return Evidence(check=check, observed="no secret at the path: nothing was rotated", confirmed=False)
    state = rotation_of(metadata)
    if state.rotation_id != rotation_id and declaration_from(metadata.custom_metadata, where(ref)) is None:
        return Evidence(check=check, observed=needs_owner_detail(where(ref)), confirmed=False)
    if state.rotation_id != rotation_id:
        return Evidence(
            check=check, observed=f"rotation {rotation_id} is not recorded (last: {state.rotation_id})", confirmed=False
        )
    if state.step is not RotationStep.FINISHED or state.rotated_version is None:
        return Evidence(check=check, observed=f"rotation {rotation_id} is at step {state.step}", confirmed=False)
    new_version = state.rotated_version
    current = metadata.current_version
    if current < new_version:
        return Evidence(
            check=check, observed=f"current version {current} is older than the new {new_version}", confirmed=False
        )
    readable = read_secret_version(client, ref, current) is not None  # the value is discarded at once
    alive = versions_to_destroy(metadata, new_version, params)
    staged = read_secret_metadata(client, staging_ref(ref)) is not None
    observed = f"new version {new_version}; current version {current} " + ("readable" if readable else "unreadable")
    if current > new_version:
        observed += " (written after the rotation)"
    observed += f"; previous versions not destroyed: {alive}" if alive else "; previous versions destroyed per policy"
    observed += "; staging copy still there" if staged else ""
    return Evidence(check=check, observed=observed, confirmed=readable and not alive and not staged)
