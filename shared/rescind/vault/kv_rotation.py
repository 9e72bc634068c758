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
    rescind_rotation_step     created | set | tested | finishing | finished | abandoned (`creating`, from
                              earlier releases: the staging write may or may not have happened)
    rescind_base_version      the version that was current at create: finish writes with cas = it
    rescind_pending_version   during finish: the version the finish write creates (base + 1)
    rescind_rotated_version   after finish: the version the rotation created
    rescind_rotated_at        after finish: when (UTC, ISO 8601)

Idempotency key: the rotation id (the action_id, which covers `params.run_id`). A failed set or test leaves the
current value untouched and the rotation at its step: running the same action again resumes it (hooks must be
idempotent, as Secrets Manager's are). A secret with no declaration is never written: "needs an owner". With
`rescind_rotation_hook=none` (the owner's explicit statement that no external system checks the value) set and
test are Rescind's own read-back of the staged value.

A `rotate_kv_secret` that stages the pending value itself runs the later steps from what it knows (`_rotate_staged`):
its own records are read back once, before the finish writes (another rotation of the same secret may have taken
them), and with no hook one read-back of the staged value serves set and test and is what the finish writes. A
rerun resumes from the record, reading it at each step.

Values stay in-process: they are never returned, logged, put in an exception or stored outside Vault.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import hvac

from rescind.engine.base import seen_state
from rescind.exceptions import ActionFailed, InvalidInput
from rescind.holds import GuardFacts
from rescind.models import ActionParams, ActOutcome, KvSecretRef
from rescind.rotation.contract import (
    HOOK_KEY,
    NO_EXTERNAL_SYSTEM,
    HookStep,
    RotationAbandoned,
    RotationDeclaration,
    RotationHookInvoker,
    declaration_from,
    hook_event,
    needs_owner_detail,
    refused_detail,
)
from rescind.vault.kv_rotation_state import (
    BASE_VERSION_KEY,
    PENDING_VERSION_KEY,
    ROTATED_AT_KEY,
    ROTATED_VERSION_KEY,
    ROTATION_ID_KEY,
    ROTATION_STEP_KEY,
    RotationState,
    RotationStatus,
    RotationStep,
    SecretValueHook,
    StepResult,
    abandoned_detail,
    check_rotation_id,
    fingerprint,
    read_back_staged,
    rotation_of,
    secret_id_of,
    staging_ref,
    versions_to_destroy,
)
from rescind.vault.kv_store import (
    CheckAndSetMismatch,
    SecretData,
    SecretMetadata,
    delete_secret,
    destroy_versions,
    patch_custom_metadata,
    read_secret_metadata,
    read_secret_version,
    where,
    write_secret,
)

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
    check_rotation_id(rotation_id)
    metadata = _require_metadata(client, ref)
    state = rotation_of(metadata)
    if state.rotation_id != rotation_id or state.step is None:
        raise ActionFailed(f"rotation {rotation_id} of {where(ref)} is not in progress: run its create step")
    if state.step is RotationStep.ABANDONED:
        raise RotationAbandoned(abandoned_detail(ref, rotation_id))
    if state.step is RotationStep.FINISHED:
        return StepResult(
            RotationStatus.FINISHED, version=state.rotated_version, detail=f"already applied: rotation {rotation_id}"
        )
    if state.step.rank < needs.rank or state.base_version is None:
        raise ActionFailed(f"rotation {rotation_id} of {where(ref)} is at step {state.step}, before {needs}")
    return metadata, state, state.base_version


@dataclass(frozen=True)
class _Staged:
    """What a create that has just staged the pending value knows in-process, for the steps after it in the same
    call (`rotate_kv_secret`): since its reads, nothing was written but the rotation's own records."""

    base: int
    current_value: SecretData  # the base version's value, which create read


def create_pending_value(
    client: hvac.Client,
    ref: KvSecretRef,
    rotation_id: str,
    declaration: RotationDeclaration,
    *,
    metadata: SecretMetadata | None = None,
) -> StepResult:
    """Step 1 (createSecret): stage the current value with its declared fields generated anew.

    Only the staging path is written; the secret applications read is not. A rerun of a crashed create writes
    the staging copy again (no hook has seen it yet). `metadata`: the secret's, read by the caller with nothing
    written since (read here when None).
    """
    return _create(client, ref, rotation_id, declaration, metadata)[0]


def _create(
    client: hvac.Client,
    ref: KvSecretRef,
    rotation_id: str,
    declaration: RotationDeclaration,
    metadata: SecretMetadata | None,
) -> tuple[StepResult, _Staged | None]:
    """create_pending_value, and what it staged from when it staged now (None: it found the rotation past create,
    or nothing to rotate)."""
    check_rotation_id(rotation_id)
    metadata = metadata or read_secret_metadata(client, ref)
    if metadata is None:
        absent = f"already absent: no secret at {where(ref)}; nothing to rotate"
        return StepResult(RotationStatus.ABSENT, detail=absent), None
    state = rotation_of(metadata)
    if state.rotation_id == rotation_id and state.step is RotationStep.FINISHED:
        done = f"already applied: rotation {rotation_id} created version {state.rotated_version}"
        return StepResult(RotationStatus.FINISHED, version=state.rotated_version, detail=done), None
    if state.rotation_id == rotation_id and state.step is RotationStep.ABANDONED:
        raise RotationAbandoned(abandoned_detail(ref, rotation_id))
    if state.rotation_id == rotation_id and state.step is not None and state.step is not RotationStep.CREATING:
        staged_before = "pending value already staged"
        return StepResult(RotationStatus.IN_PROGRESS, version=state.base_version, detail=staged_before), None
    current = metadata.current_version
    current_value = read_secret_version(client, ref, current) if current > 0 else None
    if not current_value:
        gone = f"already absent: the current version {current} of {where(ref)} is deleted, destroyed or empty"
        return StepResult(RotationStatus.NOTHING_TO_ROTATE, detail=gone), None
    pending_value = declaration.pending_value(current_value, where(ref))
    # The staging copy first, then the record that points at it: a crash before the record leaves the secret's
    # last rotation as it was, and a rerun stages again.
    staging = staging_ref(ref)
    write_secret(client, staging, pending_value)
    patch_custom_metadata(client, staging, {ROTATION_ID_KEY: rotation_id, BASE_VERSION_KEY: str(current)})
    patch_custom_metadata(
        client,
        ref,
        {
            ROTATION_ID_KEY: rotation_id,
            ROTATION_STEP_KEY: RotationStep.CREATED,
            BASE_VERSION_KEY: str(current),
            PENDING_VERSION_KEY: None,
            ROTATED_VERSION_KEY: None,
            ROTATED_AT_KEY: None,
        },
    )
    created = StepResult(
        RotationStatus.IN_PROGRESS,
        version=current,
        changed=True,
        detail=f"staged a pending value at {where(staging)} (fields {','.join(declaration.fields)})",
    )
    return created, _Staged(base=current, current_value=current_value)


def _pass_step(
    client: hvac.Client,
    ref: KvSecretRef,
    rotation_id: str,
    base: int,
    step: HookStep,
    *,
    declaration: RotationDeclaration,
    hooks: RotationHookInvoker | None,
    current: SecretData | None = None,
) -> tuple[str, SecretData | None]:
    """Run setSecret or testSecret: the hook, or the read-back when the owner declared no external system (then
    the staged value read back is returned too). What it did, for the step's detail."""
    if declaration.hook_arn is None:
        staged = read_back_staged(client, ref, rotation_id, base, declaration, current=current)
        return f"{step}: staged value read back ({HOOK_KEY}={NO_EXTERNAL_SYSTEM}: no external system)", staged
    if hooks is None:
        raise ActionFailed(f"no rotation hook invoker is configured: cannot run the hook of {where(ref)}")
    hooks.invoke(declaration.hook_arn, hook_event(step, secret_id_of(ref), rotation_id))
    return f"hook passed {step}", None


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
    """setSecret (at CREATED, then SET) or testSecret (at SET, then TESTED) of a rotation read from the secret's
    record: the hook's, run once per rotation; a read-back of the staged value when the owner declared no
    external system."""
    found = _state_for_step(client, ref, rotation_id, at)
    if isinstance(found, StepResult):
        return found
    _metadata, state, base = found
    if state.step is not at:
        return StepResult(RotationStatus.IN_PROGRESS, version=base, detail=f"{step} already done")
    done, _staged = _pass_step(client, ref, rotation_id, base, step, declaration=declaration, hooks=hooks)
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


def _abandon(client: hvac.Client, ref: KvSecretRef, rotation_id: str) -> None:
    """The finish write lost its check-and-set: drop the pending value, record it, and raise RotationAbandoned."""
    delete_secret(client, staging_ref(ref))
    patch_custom_metadata(
        client, ref, {ROTATION_STEP_KEY: RotationStep.ABANDONED, BASE_VERSION_KEY: None, PENDING_VERSION_KEY: None}
    )
    raise RotationAbandoned(abandoned_detail(ref, rotation_id))


def _write_finish(
    client: hvac.Client,
    ref: KvSecretRef,
    rotation_id: str,
    state: RotationState,
    base: int,
    staged: SecretData | None,
) -> SecretData | None:
    """The staged value (`staged`: as read back moments before; read here when None) as version base + 1, with
    cas = base, once. The caller records it landed (rotated_version) before the staging copy is deleted, so a rerun
    after a crash neither writes twice nor mistakes its own version for a concurrent writer's (until then, a rerun
    finds the staged value at base + 1). A concurrent writer (a version after base that is not the staged value)
    abandons it. Returns the value now at base + 1 (None: a rerun found it recorded, unread)."""
    new_version = base + 1
    if state.rotated_version == new_version:
        return None
    staged = staged if staged is not None else read_secret_version(client, staging_ref(ref), 0)
    # Only a finish under way (FINISHING is recorded before the write) may have written already: read what it wrote.
    landed = (
        state.step is RotationStep.FINISHING
        and staged is not None
        and fingerprint(read_secret_version(client, ref, new_version) or {}) == fingerprint(staged)
    )
    if not landed:
        if not staged:
            if _require_metadata(client, ref).current_version != base:
                _abandon(client, ref, rotation_id)  # a crash inside an abandonment: finish it
            raise ActionFailed(f"the pending value of {where(ref)} is gone from {where(staging_ref(ref))}")
        try:
            written = write_secret(client, ref, staged, cas=base)
        except CheckAndSetMismatch:
            _abandon(client, ref, rotation_id)
            raise  # not reached: _abandon raises
        if written != new_version:
            raise ActionFailed(f"the finish write created version {written} of {where(ref)}, expected {new_version}")
    return staged


def finish_rotation(
    client: hvac.Client,
    ref: KvSecretRef,
    rotation_id: str,
    params: ActionParams,
    *,
    on_new_value: SecretValueHook | None = None,
) -> StepResult:
    """Step 4 (finishSecret): the staged value becomes the new latest version (cas = the base version), the
    fingerprint index sees it, previous versions are destroyed per policy and the staging copy is deleted.

    A concurrent writer (a new version made since create) fails the check-and-set: the rotation is abandoned
    (RotationAbandoned), its staging copy deleted, the writer's version left current."""
    found = _state_for_step(client, ref, rotation_id, RotationStep.TESTED)
    if isinstance(found, StepResult):
        return found
    _metadata, state, base = found
    return _finish(client, ref, rotation_id, params, state, base, on_new_value=on_new_value)


def _finish(
    client: hvac.Client,
    ref: KvSecretRef,
    rotation_id: str,
    params: ActionParams,
    state: RotationState,
    base: int,
    *,
    on_new_value: SecretValueHook | None,
    staged: SecretData | None = None,
    before: SecretMetadata | None = None,
) -> StepResult:
    """finish_rotation from `state` (TESTED or later). `staged`: the staged value as read back moments before;
    `before`: the secret's metadata read before the finish write, whose versions the write's check-and-set proved
    are still all there are before the new one (None: read after the write)."""
    new_version = base + 1
    if state.step is RotationStep.TESTED:
        patch_custom_metadata(
            client, ref, {ROTATION_STEP_KEY: RotationStep.FINISHING, PENDING_VERSION_KEY: str(new_version)}
        )
    value = _write_finish(client, ref, rotation_id, state, base, staged)
    if state.rotated_version != new_version:  # landed, recorded before anything else happens
        patch_custom_metadata(client, ref, {ROTATED_VERSION_KEY: str(new_version)})
    if on_new_value is not None:
        _tell_new_value(client, ref, new_version, value, on_new_value)
    # After the record, not beside it: both write the secret's metadata.
    doomed = versions_to_destroy(before or _require_metadata(client, ref), new_version, params)
    destroy_versions(client, ref, doomed)
    delete_secret(client, staging_ref(ref))
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


def _tell_new_value(
    client: hvac.Client, ref: KvSecretRef, version: int, value: SecretData | None, on_new_value: SecretValueHook
) -> None:
    """The fingerprint index sees the new current value (`value`: the one written; read when None), in-process."""
    value = value if value is not None else read_secret_version(client, ref, version)
    if value:
        on_new_value(ref, version, value)


def _rotate_staged(
    client: hvac.Client,
    ref: KvSecretRef,
    rotation_id: str,
    params: ActionParams,
    declaration: RotationDeclaration,
    fresh: _Staged,
    *,
    hooks: RotationHookInvoker | None,
    on_new_value: SecretValueHook | None,
) -> list[StepResult]:
    """setSecret, testSecret and finishSecret right after this call's own create: the rotation's record is what
    this call just wrote, so it is read back only once, before the finish (a rerun reads it at each step). With no
    external system, one read-back of the staged value serves set and test, and is the value the finish writes.
    A passed test is recorded with the finish's start (FINISHING), whose rerun reads back what it wrote."""
    base = fresh.base
    staged: SecretData | None = None  # read by the finish when a hook, not Rescind, checked it
    if declaration.hook_arn is None:
        staged = read_back_staged(client, ref, rotation_id, base, declaration, current=fresh.current_value)
        done = f"{HookStep.SET} and {HookStep.TEST}: staged value read back (no external system: {HOOK_KEY}=none)"
        passed = [StepResult(RotationStatus.IN_PROGRESS, version=base, detail=done)]
    else:
        set_done, _ = _pass_step(client, ref, rotation_id, base, HookStep.SET, declaration=declaration, hooks=hooks)
        patch_custom_metadata(client, ref, {ROTATION_STEP_KEY: RotationStep.SET})
        test_done, _ = _pass_step(client, ref, rotation_id, base, HookStep.TEST, declaration=declaration, hooks=hooks)
        passed = [
            StepResult(RotationStatus.IN_PROGRESS, version=base, changed=True, detail=set_done),
            StepResult(RotationStatus.IN_PROGRESS, version=base, detail=test_done),
        ]
    # The record read once before the value is written: another rotation of the same secret (an offboarding's and a
    # leak's at once) may have staged its own value and taken the record since, and this one must not finish it.
    found = _state_for_step(client, ref, rotation_id, RotationStep.CREATED)
    if isinstance(found, StepResult):
        return [*passed, found]
    metadata, _state, _base = found
    tested = RotationState(rotation_id=rotation_id, step=RotationStep.TESTED, base_version=base, rotated_version=None)
    finished = _finish(
        client, ref, rotation_id, params, tested, base, on_new_value=on_new_value, staged=staged, before=metadata
    )
    return [*passed, finished]


def rotate_kv_secret(
    client: hvac.Client,
    ref: KvSecretRef,
    rotation_id: str,
    params: ActionParams,
    *,
    hooks: RotationHookInvoker | None,
    on_new_value: SecretValueHook | None = None,
    seen: GuardFacts | None = None,
) -> ActOutcome:
    """All four steps; resumes a rotation with the same id. An undeclared secret is never written. `seen`: what the
    action's guard read of the secret moments before (its metadata), not read again."""
    check_rotation_id(rotation_id)
    metadata = seen_state(seen, SecretMetadata, lambda: read_secret_metadata(client, ref))
    if metadata is None:
        return ActOutcome(changed=False, absent=True, detail=f"already absent: no secret at {where(ref)}")
    state = rotation_of(metadata)
    if state.rotation_id == rotation_id and state.step is RotationStep.FINISHED:
        return ActOutcome(changed=False, detail=f"already applied: rotation {rotation_id} of {where(ref)}")
    try:
        declaration = declaration_from(metadata.custom_metadata, where(ref))
        if declaration is None:
            return ActOutcome(changed=False, needs_owner=True, detail=needs_owner_detail(where(ref)))
        created, fresh = _create(client, ref, rotation_id, declaration, metadata)
    except InvalidInput as malformed:  # this secret's declaration alone: the run goes on with everything else
        return ActOutcome(changed=False, needs_owner=True, detail=refused_detail(where(ref), malformed))
    if created.status in (RotationStatus.ABSENT, RotationStatus.NOTHING_TO_ROTATE):
        return ActOutcome(changed=False, absent=True, detail=created.detail)
    if fresh is not None:
        steps = [
            created,
            *_rotate_staged(
                client, ref, rotation_id, params, declaration, fresh, hooks=hooks, on_new_value=on_new_value
            ),
        ]
    else:  # resumed: each step reads the rotation's record
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
