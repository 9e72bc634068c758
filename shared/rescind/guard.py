"""The guard: checked before anything is touched. Protected workloads and holds are never acted on.

A hold is a marker an owner puts on a credential or identity to say "not now": the `rescind:hold` tag on an
IAM user, or a `rescind_hold` key in the metadata of a Vault entity, token, AppRole secret-id or KV secret.
Any hold on anything a plan would touch stops the whole plan: acting on part of a workload while its owner
holds another part is how the Azure AD 2021 clean-up broke sign-in for 14 hours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rescind.models import (
    AppRoleSecretIdRef,
    CredentialRef,
    IamAccessKeyRef,
    KvSecretRef,
    Plan,
    VaultEntityRef,
    VaultTokenRef,
)

if TYPE_CHECKING:
    import hvac

    from rescind.aws.session import AwsClientFactory

VAULT_HOLD_KEY = "rescind_hold"
AWS_HOLD_TAG = "rescind:hold"


@dataclass(frozen=True)
class GuardPolicy:
    protected_workloads: frozenset[str] = frozenset()
    blast_radius_cap: int = 25


@dataclass(frozen=True)
class Hold:
    target: str  # the reference's key
    marker: str  # where the hold was found


def _is_set(value: object) -> bool:
    return value not in (None, "", "false", "False", "0")


def find_holds(vault: hvac.Client, aws: AwsClientFactory | None, refs: Sequence[CredentialRef]) -> list[Hold]:
    """Read the hold markers of every reference that can carry one. Reads only."""
    from rescind.vault.approle import lookup_secret_id
    from rescind.vault.kv import read_secret_metadata
    from rescind.vault.tokens import lookup_token_by_accessor

    holds: list[Hold] = []
    held_users: dict[tuple[str, str], bool] = {}
    for ref in refs:
        metadata: dict[str, object] = {}
        if isinstance(ref, VaultEntityRef):
            metadata = _entity_metadata(vault, ref)
        elif isinstance(ref, VaultTokenRef):
            token = lookup_token_by_accessor(vault, ref.accessor)
            metadata = dict(token.metadata) if token is not None else {}
        elif isinstance(ref, AppRoleSecretIdRef):
            secret_id = lookup_secret_id(vault, ref)
            metadata = dict(secret_id.metadata) if secret_id is not None else {}
        elif isinstance(ref, KvSecretRef):
            kv = read_secret_metadata(vault, ref)
            metadata = dict(kv.custom_metadata) if kv is not None else {}
        elif isinstance(ref, IamAccessKeyRef) and aws is not None:
            user = (ref.account_id, ref.user_name)
            if user not in held_users:
                held_users[user] = _iam_user_is_held(aws, *user)
            if held_users[user]:
                holds.append(Hold(ref.key, f"tag {AWS_HOLD_TAG} on IAM user {ref.user_name}"))
            continue
        if _is_set(metadata.get(VAULT_HOLD_KEY)):
            holds.append(Hold(ref.key, f"metadata {VAULT_HOLD_KEY}"))
    return holds


@dataclass(frozen=True)
class GuardedChildToken:
    """A held or protected token that may die with a planned token's revocation (revoke-accessor ends its tree)."""

    parent: str  # the planned token's accessor
    child: str  # the possible child's accessor
    marker: str  # why the guard cares: a hold, or the protected workload its metadata names

    def describe(self) -> str:
        return f"token accessor {self.child} ({self.marker}) may have been created under {self.parent}"


def find_guarded_child_tokens(
    vault: hvac.Client, refs: Sequence[CredentialRef], policy: GuardPolicy
) -> list[GuardedChildToken]:
    """Held or protected tokens that a planned token revocation may kill, outside the plan. Reads only.

    Only tokens that can create tokens are looked under, with one scan of the live tokens shared by all.
    """
    from functools import cache

    from rescind.vault.tokens import find_possible_child_tokens, scan_live_tokens

    planned = {ref.accessor for ref in refs if isinstance(ref, VaultTokenRef)}
    live = cache(lambda: scan_live_tokens(vault))
    found: list[GuardedChildToken] = []
    for parent in sorted(planned):
        for child in find_possible_child_tokens(vault, parent, live=live):
            if child.accessor in planned:
                continue
            protected = sorted(value for value in child.metadata.values() if value in policy.protected_workloads)
            if _is_set(child.metadata.get(VAULT_HOLD_KEY)):
                found.append(GuardedChildToken(parent, child.accessor, f"metadata {VAULT_HOLD_KEY}"))
            elif protected:
                found.append(GuardedChildToken(parent, child.accessor, f"protected workload {protected[0]}"))
    return found


def _entity_metadata(vault: hvac.Client, ref: VaultEntityRef) -> dict[str, object]:
    import hvac.exceptions

    from rescind.vault.client import read_data, vault_errors

    with vault_errors(f"read entity {ref.entity_id}"):
        try:
            response = vault.secrets.identity.read_entity(ref.entity_id)
        except hvac.exceptions.InvalidPath:
            return {}
    return dict(read_data(response).get("metadata") or {})


def _iam_user_is_held(aws: AwsClientFactory, account_id: str, user_name: str) -> bool:
    from rescind.aws.errors import aws_errors

    iam = aws.client("iam", account_id)
    with aws_errors(f"list tags of IAM user {user_name}"):
        try:
            tags = iam.list_user_tags(UserName=user_name)["Tags"]
        except iam.exceptions.NoSuchEntityException:
            return False
    return any(tag["Key"] == AWS_HOLD_TAG and _is_set(tag["Value"]) for tag in tags)


def is_protected(workload_id: str, policy: GuardPolicy) -> bool:
    return workload_id in policy.protected_workloads


def exceeds_cap(plan: Plan, policy: GuardPolicy) -> bool:
    return len(plan.actions) > policy.blast_radius_cap
