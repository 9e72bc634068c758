"""The record of a KV v2 rotation in flight (the secret's own custom_metadata) and its read-backs: of the staged
value (setSecret/testSecret with no hook) and of the finished rotation (its verification).

kv_rotation runs the contract's four steps; this module holds what they record and what `verify_kv_rotation` reads
back: the keys (see kv_rotation's docstring), the steps, where the pending value is staged, and which previous
versions a finished rotation destroys.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any

import hvac

from rescind.concurrent_reads import read_together
from rescind.exceptions import InvalidInput
from rescind.models import Action, ActionParams, Evidence, KvSecretRef, PreviousVersions
from rescind.rotation.contract import (
    VAULT_SECRET_ID_PREFIX,
    RotationDeclaration,
    RotationHookFailed,
    declaration_from,
    needs_owner_detail,
)
from rescind.vault.kv_store import (
    STAGING_FOLDER,
    SecretData,
    SecretMetadata,
    read_secret_metadata,
    read_secret_version,
    read_secret_version_and_custom_metadata,
    where,
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
    # A writer made a new version between create and finish: the pending value was dropped, nothing overwritten.
    ABANDONED = "abandoned"

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


def abandoned_detail(ref: KvSecretRef, rotation_id: str) -> str:
    return (
        f"rotation {rotation_id} of {where(ref)} abandoned: a writer made a new version after it was created, so "
        "its pending value was dropped (staging copy deleted) and nothing was overwritten; if its hook had set the "
        "pending value where it is checked, the secret's owner must reconcile the two"
    )


def check_rotation_id(rotation_id: str) -> None:
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


def read_back_staged(
    client: hvac.Client,
    ref: KvSecretRef,
    rotation_id: str,
    base: int,
    declaration: RotationDeclaration,
    *,
    current: SecretData | None = None,
) -> SecretData:
    """setSecret/testSecret for `rescind_rotation_hook=none`: no external system to set, so Rescind reads the
    staged value back (with its custom_metadata, one request) and checks it is this rotation's and has every
    declared field, each new against `current` (the base version's value; read when None). Returns it."""
    staging = staging_ref(ref)
    found = read_secret_version_and_custom_metadata(client, staging, 0)
    if found is None or not found[0]:
        raise RotationHookFailed(f"the pending value of {where(ref)} is gone from {where(staging)}")
    staged, staged_custom = found
    if staged_custom.get(ROTATION_ID_KEY) != rotation_id:
        raise RotationHookFailed(f"the pending value at {where(staging)} is not rotation {rotation_id}'s")
    current = current if current is not None else read_secret_version(client, ref, base) or {}
    stale = [name for name in declaration.fields if name not in staged or staged[name] == current.get(name)]
    if stale:
        raise RotationHookFailed(f"the pending value at {where(staging)} has no new {','.join(stale)}")
    return staged


# --- verify -----------------------------------------------------------------------------------


def verify_kv_rotation(client: hvac.Client, ref: KvSecretRef, rotation_id: str, params: ActionParams) -> Evidence:
    """Read back: the rotation finished, its version (or a later one) is current and readable, and every
    previous version the policy destroys is destroyed."""
    check = f"metadata and current version of {where(ref)}"
    # Three reads of the real state, independent, at once: the metadata, the current value (discarded at once)
    # and the staging copy (gone once finished).
    metadata, readable, staged = read_together(
        partial(read_secret_metadata, client, ref),
        partial(_readable, client, ref),
        partial(read_secret_metadata, client, staging_ref(ref)),
    )
    if metadata is None:
        return Evidence(check=check, observed="no secret at the path: nothing was rotated", confirmed=False)
    state = rotation_of(metadata)
    if state.rotation_id != rotation_id and declaration_from(metadata.custom_metadata, where(ref)) is None:
        return Evidence(check=check, observed=needs_owner_detail(where(ref)), confirmed=False)
    if state.rotation_id != rotation_id:
        return Evidence(
            check=check, observed=f"rotation {rotation_id} is not recorded (last: {state.rotation_id})", confirmed=False
        )
    if state.step is RotationStep.ABANDONED:
        observed = f"rotation {rotation_id} was abandoned: a writer made a new version before finish"
        return Evidence(check=check, observed=observed, confirmed=False)
    if state.step is not RotationStep.FINISHED or state.rotated_version is None:
        return Evidence(check=check, observed=f"rotation {rotation_id} is at step {state.step}", confirmed=False)
    new_version = state.rotated_version
    current = metadata.current_version
    if current < new_version:
        return Evidence(
            check=check, observed=f"current version {current} is older than the new {new_version}", confirmed=False
        )
    alive = versions_to_destroy(metadata, new_version, params)
    observed = f"new version {new_version}; current version {current} " + ("readable" if readable else "unreadable")
    if current > new_version:
        observed += " (written after the rotation)"
    observed += f"; previous versions not destroyed: {alive}" if alive else "; previous versions destroyed per policy"
    observed += "; staging copy still there" if staged is not None else ""
    return Evidence(check=check, observed=observed, confirmed=readable and not alive and staged is None)


def _readable(client: hvac.Client, ref: KvSecretRef) -> bool:
    return read_secret_version(client, ref, 0) is not None  # the latest version; its value discarded at once
