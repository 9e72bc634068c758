"""A Secrets Manager secret rotated by Rescind under the rotation contract (rescind.rotation.contract).

For a secret without Secrets Manager rotation of its own (no rotation function) whose owner declared, by tags, how it
rotates (`rescind:rotate`, `rescind:generator`, `rescind:rotation-hook`, optionally `rescind:rotation-master`). The
steps use Secrets Manager's own staging labels, so every reader of AWSCURRENT keeps the current value until finish:

    createSecret   Rescind: the AWSCURRENT value (a JSON object) with the declared fields, only those, generated anew,
                   put as the version `ClientRequestToken` staged AWSPENDING (PutSecretValue).
    setSecret      the hook (Secrets Manager's rotation event: Step, SecretId = the ARN, ClientRequestToken): reads
    testSecret     AWSPENDING itself and sets it where it is checked, then uses it there. With
                   `rescind:rotation-hook=none`, Rescind reads the pending version back instead.
    finishSecret   Rescind: AWSCURRENT moves to the pending version (UpdateSecretVersionStage; AWSPREVIOUS follows
                   by Secrets Manager's rule), then AWSPENDING is removed from it.

The version id is the rotation token (derived from the action id), so a rerun finds its version and resumes: a
version staged AWSPENDING runs set and test again (hooks are idempotent, as Secrets Manager's are) and finishes.
The version that was AWSCURRENT at create is recorded on the pending version as a staging label of its own
(`rescind-base-<version id>`): finish is a check-and-set on it. A concurrent writer, whose version became
AWSCURRENT meanwhile, abandons the rotation:
AWSPENDING is removed from the pending version (Secrets Manager keeps versions; an unlabelled one is deprecated)
and RotationAbandoned is raised; the writer's value stays current. Values stay in-process.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rescind.aws.errors import aws_errors
from rescind.models import ActOutcome
from rescind.rotation.contract import (
    HookStep,
    RotationAbandoned,
    RotationDeclaration,
    RotationHookFailed,
    RotationHookInvoker,
    hook_event,
    parse_secret_object,
)

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"
BASE_LABEL_PREFIX = "rescind-base-"  # + the version id that was AWSCURRENT when the pending version was created


def _stages(described: Mapping[str, Any]) -> dict[str, list[str]]:
    return dict(described.get("VersionIdsToStages") or {})


def _current_version(stages: Mapping[str, list[str]]) -> str | None:
    return next((version for version, labels in stages.items() if CURRENT in labels), None)


def _read(sm: SecretsManagerClient, arn: str, **version: str) -> dict[str, Any]:
    with aws_errors(f"secretsmanager get-secret-value {arn}"):
        answer = sm.get_secret_value(SecretId=arn, **version)
    return parse_secret_object(answer.get("SecretString"), arn)


def _create(sm: SecretsManagerClient, arn: str, token: str, declaration: RotationDeclaration, base: str | None) -> None:
    pending = declaration.pending_value(_read(sm, arn, VersionStage=CURRENT), arn)
    labels = [PENDING, *([f"{BASE_LABEL_PREFIX}{base}"] if base else [])]
    with aws_errors(f"secretsmanager put-secret-value {arn} (AWSPENDING)"):
        sm.put_secret_value(
            SecretId=arn, ClientRequestToken=token, SecretString=json.dumps(pending), VersionStages=labels
        )


def _read_back(sm: SecretsManagerClient, arn: str, token: str, declaration: RotationDeclaration) -> None:
    """setSecret/testSecret for `rescind:rotation-hook=none`: the pending version reads, with every declared field
    new."""
    pending = _read(sm, arn, VersionId=token, VersionStage=PENDING)
    current = _read(sm, arn, VersionStage=CURRENT)
    stale = [name for name in declaration.fields if name not in pending or pending[name] == current.get(name)]
    if stale:
        raise RotationHookFailed(f"the pending version {token} of {arn} has no new {','.join(stale)}")


def _drop_labels(sm: SecretsManagerClient, arn: str, token: str, labels: list[str]) -> None:
    """AWSPENDING and the base label off the pending version (after finish, or to abandon it)."""
    for label in labels:
        if label == PENDING or label.startswith(BASE_LABEL_PREFIX):
            with aws_errors(f"secretsmanager update-secret-version-stage {arn} (drop {label})"):
                sm.update_secret_version_stage(SecretId=arn, VersionStage=label, RemoveFromVersionId=token)


def _finish(sm: SecretsManagerClient, arn: str, token: str) -> None:
    """AWSCURRENT to the pending version, with check-and-set on the base version recorded at create."""
    with aws_errors(f"secretsmanager describe-secret {arn}"):
        stages = _stages(sm.describe_secret(SecretId=arn))  # who is current now: a writer may have put a version
    labels = stages.get(token, [])
    current = _current_version(stages)
    base = next(
        (label.removeprefix(BASE_LABEL_PREFIX) for label in labels if label.startswith(BASE_LABEL_PREFIX)), None
    )
    if base is None or current != base:  # no base recorded: a version from before this check, never overwritten
        _drop_labels(sm, arn, token, labels)
        raise RotationAbandoned(
            f"rotation {token} of {arn} abandoned: a writer made version {current} current after the pending "
            "version was created, so its labels were removed and nothing was overwritten; if its hook had set "
            "the pending value where it is checked, the secret's owner must reconcile the two"
        )
    with aws_errors(f"secretsmanager update-secret-version-stage {arn} (AWSCURRENT)"):
        sm.update_secret_version_stage(
            SecretId=arn, VersionStage=CURRENT, MoveToVersionId=token, RemoveFromVersionId=base
        )
    _drop_labels(sm, arn, token, labels)


def rotate_by_contract(
    sm: SecretsManagerClient,
    arn: str,
    token: str,
    declaration: RotationDeclaration,
    described: Mapping[str, Any],
    hooks: RotationHookInvoker | None,
) -> ActOutcome:
    """The four steps for the version `token`; resumes a rotation that a crash or a failed hook left staged."""
    stages = _stages(described)
    labels = stages.get(token)
    if labels is not None and CURRENT in labels:
        _drop_labels(sm, arn, token, labels)  # a crash inside finish may have left them
        return ActOutcome(changed=False, detail=f"already applied: version {token} of {arn} is AWSCURRENT")
    if labels is not None and PENDING not in labels:
        raise RotationAbandoned(f"rotation {token} of {arn} was abandoned earlier (a concurrent writer)")
    done = ["pending version already staged"] if labels is not None else []
    if labels is None:
        _create(sm, arn, token, declaration, _current_version(stages))
        done.append(f"staged version {token} AWSPENDING (fields {','.join(declaration.fields)})")
    for step in (HookStep.SET, HookStep.TEST):
        if declaration.hook_arn is None:
            _read_back(sm, arn, token, declaration)
            done.append(f"{step}: pending version read back (rescind:rotation-hook=none)")
        elif hooks is None:
            raise RotationHookFailed(f"no rotation hook invoker is configured: cannot run the hook of {arn}")
        else:
            hooks.invoke(declaration.hook_arn, hook_event(step, arn, token))
            done.append(f"hook passed {step}")
    _finish(sm, arn, token)
    done.append(f"version {token} is AWSCURRENT")
    return ActOutcome(changed=True, detail=f"rotation of {arn}: " + "; ".join(done))
