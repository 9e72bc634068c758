"""KV v2 rotation in four steps, and its verification.

The rotation follows the AWS Secrets Manager protocol (createSecret, setSecret, testSecret, finishSecret).
Each step is idempotent, and the rotation in flight is recorded in the secret's own custom_metadata, as
Secrets Manager records it with the AWSPENDING label, so a rerun after a crash resumes at the right step
and never creates a second new version:

    rescind_rotation_id       the rotation in flight, or the last one finished
    rescind_rotation_step     creating | created | set | tested | finished
    rescind_pending_version   the version the rotation creates; recorded *before* the write, which uses
                              cas = pending - 1, so the write can only ever create exactly that version
    rescind_rotated_version   after finish: the version the rotation created
    rescind_rotated_at        after finish: when (UTC, ISO 8601)

Idempotency key: the rotation id. Replaying a rotation id that finished changes nothing ("already
applied"); a new rotation id makes a new version. The rotation id is the action_id, which includes
`params.run_id` (the incident or schedule run that asked for it): a retried or duplicated action of one run
rotates once, and the next incident or scheduled run rotates again.

Values: generated, written, read back and handed to the hooks in-process only. They are never returned,
logged, put in an exception or stored outside Vault. Tests compare SHA-256 fingerprints held in memory.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import hvac
import hvac.exceptions

from rescind.exceptions import ActionFailed, InvalidInput
from rescind.models import Action, ActionParams, ActOutcome, Evidence, KvSecretRef, PreviousVersions
from rescind.vault.client import read_data, vault_errors
from rescind.vault.kv_store import (
    SecretData,
    SecretMetadata,
    destroy_versions,
    patch_custom_metadata,
    read_secret_metadata,
    read_secret_version,
    where,
)

ROTATION_ID_KEY = "rescind_rotation_id"
ROTATION_STEP_KEY = "rescind_rotation_step"
PENDING_VERSION_KEY = "rescind_pending_version"
ROTATED_VERSION_KEY = "rescind_rotated_version"
ROTATED_AT_KEY = "rescind_rotated_at"

_CAS_MISMATCH = "check-and-set"
_ROTATION_ID_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")

# Generates the new data from the current data (in-process only). The default keeps the keys.
ValueGenerator = Callable[[Mapping[str, Any]], SecretData]
# Receives (ref, version, value) in-process: the set step's hook, and the on_new_value callback.
SecretValueHook = Callable[[KvSecretRef, int, Mapping[str, Any]], None]


def default_value_generator(current: Mapping[str, Any]) -> SecretData:
    """A fresh random value for every key of the current data, keeping the keys."""
    return {key: secrets.token_urlsafe(32) for key in current}


def fingerprint(value: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a value: compared in memory, never logged or returned."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class RotationStep(StrEnum):
    CREATING = "creating"  # pending version recorded; its write may or may not have happened
    CREATED = "created"
    SET = "set"
    TESTED = "tested"
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
    pending_version: int | None
    rotated_version: int | None

    @classmethod
    def from_custom_metadata(cls, custom: Mapping[str, str]) -> RotationState:
        step = custom.get(ROTATION_STEP_KEY)
        return cls(
            rotation_id=custom.get(ROTATION_ID_KEY) or None,
            step=RotationStep(step) if step in set(RotationStep) else None,
            pending_version=_as_version(custom.get(PENDING_VERSION_KEY)),
            rotated_version=_as_version(custom.get(ROTATED_VERSION_KEY)),
        )


def rotation_of(metadata: SecretMetadata) -> RotationState:
    """The rotation recorded in the secret's custom_metadata."""
    return RotationState.from_custom_metadata(metadata.custom_metadata)


@dataclass(frozen=True)
class StepResult:
    """What one rotation step did. `value_fingerprint` stays in memory (repr=False) for the test step."""

    status: RotationStatus
    version: int | None = None
    changed: bool = False
    detail: str = ""
    value_fingerprint: str | None = field(default=None, repr=False, compare=False)


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
    """The rotation's state if it has reached `needs`; a StepResult when it has already finished."""
    _check_rotation_id(rotation_id)
    metadata = _require_metadata(client, ref)
    state = rotation_of(metadata)
    if state.rotation_id != rotation_id or state.step is None:
        raise ActionFailed(f"rotation {rotation_id} of {where(ref)} is not in progress: run its create step")
    if state.step is RotationStep.FINISHED:
        return StepResult(
            RotationStatus.FINISHED, version=state.rotated_version, detail=f"already applied: rotation {rotation_id}"
        )
    if state.step.rank < needs.rank or state.pending_version is None:
        raise ActionFailed(f"rotation {rotation_id} of {where(ref)} is at step {state.step}, before {needs}")
    return metadata, state, state.pending_version


def _notify(hook: SecretValueHook | None, ref: KvSecretRef, version: int, value: Mapping[str, Any]) -> None:
    if hook is not None:
        hook(ref, version, value)


def create_new_version(
    client: hvac.Client,
    ref: KvSecretRef,
    rotation_id: str,
    *,
    generate_value: ValueGenerator = default_value_generator,
    on_new_value: SecretValueHook | None = None,
) -> StepResult:
    """Step 1 (createSecret): write the new version with cas = the current version.

    The pending version number is recorded before the write. A rerun finds it: if the write happened the
    version is adopted (and `on_new_value` called again: it must be idempotent), otherwise it is written.
    A concurrent writer makes the cas write fail: ActionFailed, and the pending marker is cleared.
    One window is undecidable: a crash right after the marker, then a foreign write of exactly the pending
    version, is adopted as the new value. The old versions still die, which is what a leak response needs.
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
    if state.rotation_id == rotation_id and state.step is not None and state.pending_version is not None:
        pending = state.pending_version
        if state.step is not RotationStep.CREATING:
            return StepResult(RotationStatus.IN_PROGRESS, version=pending, detail=f"version {pending} already created")
        if metadata.current_version == pending:
            # The write landed but the crash came before it was marked: adopt it, do not write another.
            written = read_secret_version(client, ref, pending)
            if written is None:
                raise ActionFailed(f"the pending version {pending} of {where(ref)} is deleted or destroyed")
            _notify(on_new_value, ref, pending, written)
            patch_custom_metadata(client, ref, {ROTATION_STEP_KEY: RotationStep.CREATED})
            return StepResult(
                RotationStatus.IN_PROGRESS,
                version=pending,
                changed=True,
                detail=f"adopted version {pending}",
                value_fingerprint=fingerprint(written),
            )
        # Otherwise the write never happened (or the secret moved on): start again from the current version.

    current = metadata.current_version
    current_value = read_secret_version(client, ref, current) if current > 0 else None
    if not current_value:
        return StepResult(
            RotationStatus.NOTHING_TO_ROTATE,
            detail=f"already absent: the current version {current} of {where(ref)} is deleted, destroyed or empty",
        )
    new_value = generate_value(current_value)
    if not isinstance(new_value, dict) or not new_value or not all(isinstance(k, str) for k in new_value):
        raise InvalidInput("the value generator must return a non-empty dict with string keys")
    pending = current + 1
    patch_custom_metadata(
        client,
        ref,
        {
            ROTATION_ID_KEY: rotation_id,
            ROTATION_STEP_KEY: RotationStep.CREATING,
            PENDING_VERSION_KEY: str(pending),
            ROTATED_VERSION_KEY: None,
            ROTATED_AT_KEY: None,
        },
    )
    with vault_errors(f"write version {pending} of {where(ref)}"):
        try:
            response = client.secrets.kv.v2.create_or_update_secret(
                ref.path, secret=new_value, cas=current, mount_point=ref.mount
            )
        except hvac.exceptions.InvalidRequest as error:
            if not any(_CAS_MISMATCH in str(message) for message in error.errors or []):
                raise ActionFailed(f"write of a new version of {where(ref)} refused") from None
            patch_custom_metadata(client, ref, {ROTATION_STEP_KEY: None, PENDING_VERSION_KEY: None})
            raise ActionFailed(
                f"concurrent writer: {where(ref)} changed after version {current} was read; run the rotation again"
            ) from None
    written_version = int(read_data(response).get("version") or 0)
    if written_version != pending:
        raise ActionFailed(f"the write created version {written_version} of {where(ref)}, expected {pending}")
    _notify(on_new_value, ref, pending, new_value)
    patch_custom_metadata(client, ref, {ROTATION_STEP_KEY: RotationStep.CREATED})
    return StepResult(
        RotationStatus.IN_PROGRESS,
        version=pending,
        changed=True,
        detail=f"created version {pending}",
        value_fingerprint=fingerprint(new_value),
    )


def set_new_version(
    client: hvac.Client, ref: KvSecretRef, rotation_id: str, *, set_hook: SecretValueHook | None = None
) -> StepResult:
    """Step 2 (setSecret): hand the new value to the system that uses it. The hook must be idempotent."""
    found = _state_for_step(client, ref, rotation_id, RotationStep.CREATED)
    if isinstance(found, StepResult):
        return found
    _metadata, state, pending = found
    if state.step is not RotationStep.CREATED:
        return StepResult(RotationStatus.IN_PROGRESS, version=pending, detail="already set")
    if set_hook is not None:
        value = read_secret_version(client, ref, pending)
        if value is None:
            raise ActionFailed(f"the pending version {pending} of {where(ref)} is deleted or destroyed")
        set_hook(ref, pending, value)
    patch_custom_metadata(client, ref, {ROTATION_STEP_KEY: RotationStep.SET})
    return StepResult(RotationStatus.IN_PROGRESS, version=pending, changed=True, detail=f"set version {pending}")


def check_new_version(
    client: hvac.Client, ref: KvSecretRef, rotation_id: str, *, expected_fingerprint: str | None = None
) -> StepResult:
    """Step 3 (testSecret): read the new version back; when this run wrote it, compare its fingerprint."""
    found = _state_for_step(client, ref, rotation_id, RotationStep.SET)
    if isinstance(found, StepResult):
        return found
    _metadata, state, pending = found
    if state.step is not RotationStep.SET:
        return StepResult(RotationStatus.IN_PROGRESS, version=pending, detail="already tested")
    value = read_secret_version(client, ref, pending)
    if not value:
        raise ActionFailed(f"the new version {pending} of {where(ref)} does not read back")
    if expected_fingerprint is not None and fingerprint(value) != expected_fingerprint:
        raise ActionFailed(f"the new version {pending} of {where(ref)} does not read back as it was written")
    patch_custom_metadata(client, ref, {ROTATION_STEP_KEY: RotationStep.TESTED})
    return StepResult(RotationStatus.IN_PROGRESS, version=pending, changed=True, detail=f"tested version {pending}")


def finish_rotation(client: hvac.Client, ref: KvSecretRef, rotation_id: str, params: ActionParams) -> StepResult:
    """Step 4 (finishSecret): destroy previous versions per policy, then record the rotation as finished."""
    found = _state_for_step(client, ref, rotation_id, RotationStep.TESTED)
    if isinstance(found, StepResult):
        return found
    metadata, _state, pending = found
    doomed = versions_to_destroy(metadata, pending, params)
    destroy_versions(client, ref, doomed)
    patch_custom_metadata(
        client,
        ref,
        {
            ROTATION_STEP_KEY: RotationStep.FINISHED,
            PENDING_VERSION_KEY: None,
            ROTATED_VERSION_KEY: str(pending),
            ROTATED_AT_KEY: datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    destroyed = f"destroyed versions {doomed}" if doomed else "destroyed no version"
    return StepResult(
        RotationStatus.FINISHED, version=pending, changed=True, detail=f"finished at version {pending}; {destroyed}"
    )


def rotate_kv_secret(
    client: hvac.Client,
    ref: KvSecretRef,
    rotation_id: str,
    params: ActionParams,
    *,
    set_hook: SecretValueHook | None = None,
    generate_value: ValueGenerator = default_value_generator,
    on_new_value: SecretValueHook | None = None,
) -> ActOutcome:
    """All four steps; resumes a crashed rotation with the same id. Never returns or logs a value."""
    created = create_new_version(client, ref, rotation_id, generate_value=generate_value, on_new_value=on_new_value)
    if created.status is RotationStatus.ABSENT or created.status is RotationStatus.NOTHING_TO_ROTATE:
        return ActOutcome(changed=False, absent=True, detail=created.detail)
    if created.status is RotationStatus.FINISHED:
        return ActOutcome(changed=False, detail=created.detail)
    steps = [
        created,
        set_new_version(client, ref, rotation_id, set_hook=set_hook),
        check_new_version(client, ref, rotation_id, expected_fingerprint=created.value_fingerprint),
        finish_rotation(client, ref, rotation_id, params),
    ]
    changed = any(step.changed for step in steps)
    return ActOutcome(
        changed=changed,
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
    observed = f"new version {new_version}; current version {current} " + ("readable" if readable else "unreadable")
    if current > new_version:
        observed += " (written after the rotation)"
    observed += f"; previous versions not destroyed: {alive}" if alive else "; previous versions destroyed per policy"
    return Evidence(check=check, observed=observed, confirmed=readable and not alive)
