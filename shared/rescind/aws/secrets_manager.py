"""Secrets Manager secrets: rotate now.

- A secret with rotation configured (a rotation Lambda, or managed rotation) is rotated with
  `RotateSecret(RotateImmediately=True)`: its rotation function changes the credential where it is checked
  (the database, the third party) and stages the new value AWSCURRENT.
- A secret without it whose owner declared the rotation contract by tags (`rescind:rotate`,
  `rescind:rotation-hook`...) is rotated by Rescind with Secrets Manager's staging labels and the declared hook
  (rescind.aws.sm_rotation). A malformed declaration is refused for that secret alone (needs_owner, nothing written).
- A secret with neither "needs an owner" by default: writing a random value into Secrets Manager would not
  revoke anything where the old value is accepted, so calling it "rotated" would be a lie. A handler built
  with `generate_when_unmanaged=True` instead stages a new random value (GetRandomPassword, PutSecretValue),
  which is right for secrets that *are* the credential (a shared HMAC key or a password that consumers check
  against Secrets Manager). The whole SecretString is replaced; the value is never returned or logged.

Idempotency: the new version's id (ClientRequestToken) is a UUID derived from the action id, so a replay of
the same action finds its version and does not rotate twice. Verification reads that version back: it must
be AWSCURRENT (or superseded by a later version).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from rescind.aws.errors import aws_errors, error_code
from rescind.aws.session import AwsClientFactory, region_of_arn
from rescind.aws.sm_rotation import rotate_by_contract
from rescind.engine.base import KindHandler, Step
from rescind.exceptions import InvalidInput
from rescind.kinds import InventoryRow, InventoryScan, InventorySection, KindSpec, no_guard_facts
from rescind.models import (
    Action,
    ActionKind,
    ActOutcome,
    CredentialKind,
    Evidence,
    SecretsManagerSecretRef,
)
from rescind.models.refs import format_ref
from rescind.rotation.contract import (
    RotationHookInvoker,
    declaration_from,
    needs_owner_detail,
    refused_detail,
)

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

# Fixed namespace: the same action id always gives the same version id.
_ROTATION_TOKEN_NAMESPACE = uuid.UUID("8f7d0b5e-6a1c-4a8e-9a57-2f1c3b9d4e60")
_CURRENT = "AWSCURRENT"
_PENDING = "AWSPENDING"


@dataclass(frozen=True)
class ListedSecret:
    """One secret as ListSecrets describes it: no value is ever read for it."""

    arn: str
    account_id: str
    tags: Mapping[str, str]
    created: datetime | None
    last_rotated: datetime | None
    rotation_enabled: bool
    scheduled_for_deletion: bool

    @property
    def age_from(self) -> datetime | None:
        """LastRotatedDate, or CreatedDate for a secret never rotated."""
        return self.last_rotated or self.created


def list_secrets(factory: AwsClientFactory, account_id: str) -> Iterator[ListedSecret]:
    """Every secret of the account in the factory's region (ListSecrets, paginated), with its tags and dates."""
    client = factory.client("secretsmanager", account_id)
    with aws_errors(f"secretsmanager list-secrets in {account_id}"):
        for page in client.get_paginator("list_secrets").paginate():
            for entry in page.get("SecretList", []):
                if "ARN" not in entry:
                    continue
                yield ListedSecret(
                    arn=entry["ARN"],
                    account_id=account_id,
                    tags={tag.get("Key", ""): tag.get("Value", "") for tag in entry.get("Tags", [])},
                    created=entry.get("CreatedDate"),
                    last_rotated=entry.get("LastRotatedDate"),
                    rotation_enabled=bool(entry.get("RotationEnabled")),
                    scheduled_for_deletion=bool(entry.get("DeletedDate")),
                )


def rotation_token(action: Action) -> str:
    """The ClientRequestToken (and so the new version id) for this action: 36 characters, in 32-64."""
    return str(uuid.uuid5(_ROTATION_TOKEN_NAMESPACE, action.action_id))


def _describe_secret(sm: SecretsManagerClient, arn: str) -> dict[str, Any] | None:
    """DescribeSecret, or None when the secret does not exist or is scheduled for deletion."""
    with aws_errors(f"secretsmanager describe-secret {arn}"):
        try:
            answer: dict[str, Any] = dict(sm.describe_secret(SecretId=arn))
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                return None
            raise
    return None if answer.get("DeletedDate") else answer


def rotate_secret_now(
    sm: SecretsManagerClient,
    ref: SecretsManagerSecretRef,
    token: str,
    *,
    generate_when_unmanaged: bool,
    length: int,
    hooks: RotationHookInvoker | None = None,
) -> ActOutcome:
    arn = ref.secret_arn
    described = _describe_secret(sm, arn)
    if described is None:
        return ActOutcome(changed=False, absent=True, detail=f"already absent: secret {arn} is gone or being deleted")
    if not described.get("RotationEnabled"):
        tags = {tag.get("Key", ""): tag.get("Value", "") for tag in described.get("Tags", [])}
        try:
            declaration = declaration_from(tags, arn, tags=True)
        except InvalidInput as malformed:  # this secret alone: the run goes on with everything else
            return ActOutcome(changed=False, needs_owner=True, detail=refused_detail(arn, malformed))
        if declaration is not None:
            try:
                return rotate_by_contract(sm, arn, token, declaration, described, hooks)
            except InvalidInput as malformed:  # a declared field the value does not hold: nothing was written
                return ActOutcome(changed=False, needs_owner=True, detail=refused_detail(arn, malformed))
        if not generate_when_unmanaged:
            return ActOutcome(changed=False, needs_owner=True, detail=needs_owner_detail(arn, tags=True))
    stages: dict[str, list[str]] = described.get("VersionIdsToStages", {})
    if token in stages:
        if _PENDING in stages[token] and _CURRENT not in stages[token]:
            return ActOutcome(changed=False, detail=f"already applied: rotation to version {token} is in progress")
        return ActOutcome(changed=False, detail=f"already applied: version {token} was created by this action")

    if described.get("RotationEnabled"):
        with aws_errors(f"secretsmanager rotate-secret {arn}"):
            sm.rotate_secret(SecretId=arn, ClientRequestToken=token, RotateImmediately=True)
        return ActOutcome(changed=True, detail=f"started rotation of secret {arn} to version {token}")

    with aws_errors(f"secretsmanager put-secret-value {arn}"):
        new_value = sm.get_random_password(PasswordLength=length, RequireEachIncludedType=True)["RandomPassword"]
        try:
            sm.put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString=new_value)
        finally:
            del new_value
    return ActOutcome(changed=True, detail=f"staged a new generated value of secret {arn} as version {token}")


def read_rotation_state(sm: SecretsManagerClient, ref: SecretsManagerSecretRef, token: str) -> Evidence:
    """Whether the version this action created is AWSCURRENT (or was superseded by a newer one)."""
    return _rotation_state(sm, ref, token)[0]


def _version_created_dates(sm: SecretsManagerClient, arn: str) -> dict[str, datetime]:
    created: dict[str, datetime] = {}
    next_token: str | None = None
    with aws_errors(f"secretsmanager list-secret-version-ids {arn}"):
        while True:
            if next_token is None:
                page = sm.list_secret_version_ids(SecretId=arn, IncludeDeprecated=True)
            else:
                page = sm.list_secret_version_ids(SecretId=arn, IncludeDeprecated=True, NextToken=next_token)
            for version in page["Versions"]:
                if "VersionId" in version and "CreatedDate" in version:
                    created[version["VersionId"]] = version["CreatedDate"]
            next_token = page.get("NextToken")
            if not next_token:
                return created


def _rotation_state(sm: SecretsManagerClient, ref: SecretsManagerSecretRef, token: str) -> tuple[Evidence, bool]:
    """The evidence, and whether the rotation is still in progress (our version only AWSPENDING)."""
    arn = ref.secret_arn
    # The ARN can be ~600 characters; `check` is capped at 200, so the specifics go into `observed`.
    check = "the version this rotation created (its ClientRequestToken) is AWSCURRENT, or superseded by a newer one"
    described = _describe_secret(sm, arn)
    if described is None:
        return Evidence(
            check=check, observed=f"secret {arn} does not exist or is scheduled for deletion", confirmed=True
        ), False
    stages: dict[str, list[str]] = described.get("VersionIdsToStages", {})
    if token not in stages:
        return Evidence(check=check, observed=f"no version {token} exists", confirmed=False), False
    labels = stages[token]
    if _CURRENT in labels:
        return Evidence(check=check, observed=f"version {token} is AWSCURRENT", confirmed=True), False
    if _PENDING in labels:
        return Evidence(check=check, observed=f"version {token} is still AWSPENDING", confirmed=False), True
    # Ours lost AWSCURRENT: fine only if a newer version took it (a later rotation), not an older one.
    created = _version_created_dates(sm, arn)
    current = next((vid for vid, vstages in stages.items() if _CURRENT in vstages), None)
    ours, theirs = created.get(token), created.get(current or "")
    # `>=`: moto stamps versions to the second; AWS to the millisecond. An older current version is a rollback.
    if current is not None and ours is not None and theirs is not None and theirs >= ours:
        evidence = Evidence(check=check, observed=f"version {token} was superseded by newer {current}", confirmed=True)
        return evidence, False
    return Evidence(
        check=check, observed=f"version {token} is not AWSCURRENT (current: {current})", confirmed=False
    ), False


class SecretsManagerSecretHandler(KindHandler[SecretsManagerSecretRef]):
    """CredentialHandler for Secrets Manager secrets: ROTATE now, verified by the new AWSCURRENT version."""

    def __init__(
        self,
        factory: AwsClientFactory,
        *,
        generate_when_unmanaged: bool = False,
        generated_length: int = 48,
        verify_timeout_seconds: float = 30.0,
        poll_interval_seconds: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        hooks: RotationHookInvoker | None = None,
    ) -> None:
        if not 20 <= generated_length <= 4096:
            raise InvalidInput("generated_length must be between 20 and 4096")
        super().__init__(
            CredentialKind.SECRETS_MANAGER_SECRET,
            SecretsManagerSecretRef,
            {ActionKind.ROTATE: Step.reads_alone(self._rotate, self._verify_rotation)},
        )
        self._factory = factory
        self._generate_when_unmanaged = generate_when_unmanaged
        self._generated_length = generated_length
        self._verify_timeout = verify_timeout_seconds
        self._poll_interval = poll_interval_seconds
        self._sleep = sleep
        self._hooks = hooks

    def _client(self, ref: SecretsManagerSecretRef) -> SecretsManagerClient:
        return self._factory.client("secretsmanager", ref.account_id, region_name=region_of_arn(ref.secret_arn))

    def _rotate(self, ref: SecretsManagerSecretRef, action: Action) -> ActOutcome:
        return rotate_secret_now(
            self._client(ref),
            ref,
            rotation_token(action),
            generate_when_unmanaged=self._generate_when_unmanaged,
            length=self._generated_length,
            hooks=self._hooks,
        )

    def _verify_rotation(self, ref: SecretsManagerSecretRef, action: Action) -> Evidence:
        """Read the version back; a rotation Lambda runs asynchronously, so wait a bounded time for it."""
        sm = self._client(ref)
        token = rotation_token(action)
        deadline = time.monotonic() + self._verify_timeout
        while True:
            evidence, still_pending = _rotation_state(sm, ref, token)
            if evidence.confirmed or not still_pending or time.monotonic() >= deadline:
                return evidence
            self._sleep(self._poll_interval)

    def look_up(self, ref: SecretsManagerSecretRef) -> bool | None:
        return _describe_secret(self._client(ref), ref.secret_arn) is not None


def _inventory(scan: InventoryScan) -> list[InventorySection]:
    if scan.backends.aws is None:
        return []
    return [(f"secrets in {account}", partial(_secret_rows, scan, account)) for account in scan.scope.aws_account_ids]


def _secret_rows(scan: InventoryScan, account_id: str) -> Iterator[InventoryRow]:
    """Every secret of the account: the age since it was last rotated (or created), and its workload tag."""
    assert scan.backends.aws is not None
    for secret in list_secrets(scan.backends.aws, account_id):
        yield InventoryRow(
            target=format_ref(SecretsManagerSecretRef(secret_arn=secret.arn)),
            kind=CredentialKind.SECRETS_MANAGER_SECRET,
            created_at=secret.age_from or scan.now,
            owner=secret.tags.get(scan.scope.aws_tag_key) or None,
        )


KIND = KindSpec(
    kind=CredentialKind.SECRETS_MANAGER_SECRET,
    ref_type=SecretsManagerSecretRef,
    ending_action=ActionKind.ROTATE,
    build_handler=lambda backends: SecretsManagerSecretHandler(backends.require_aws(), hooks=backends.rotation_hooks()),
    read_guard_facts=no_guard_facts,  # its hold tag is read where it is listed (the rotation-by-age sweep)
    discover=None,
    locate_leaked={},
    inventory=_inventory,
)
