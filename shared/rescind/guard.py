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
    PkiCertificateRef,
    Plan,
    VaultEntityRef,
    VaultTokenRef,
)

if TYPE_CHECKING:
    import hvac

    from rescind.aws.session import AwsClientFactory

VAULT_HOLD_KEY = "rescind_hold"
AWS_HOLD_TAG = "rescind:hold"
AWS_WORKLOAD_TAG = "rescind:workload"


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


@dataclass(frozen=True)
class GuardFacts:
    """What the guard reads of one credential: its hold marker, and the workloads its metadata or tags name."""

    hold: str | None  # where a hold was found, or None
    owners: frozenset[str]


def read_guard_facts(
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    ref: CredentialRef,
    *,
    metadata_key: str = "spiffe_id",
    users: dict[tuple[str, str], dict[str, str]] | None = None,
) -> GuardFacts:
    """One read of the credential (or its IAM user): the hold marker and the owning workloads. Reads only.

    `users` caches IAM users' tags across references of one plan.
    """
    from rescind.vault.approle import lookup_secret_id
    from rescind.vault.kv import read_secret_metadata
    from rescind.vault.pki import read_certificate_record
    from rescind.vault.tokens import lookup_token_by_accessor

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
    elif isinstance(ref, PkiCertificateRef):
        record = read_certificate_record(vault, ref.mount, ref.serial)
        return GuardFacts(hold=None, owners=frozenset(record.uri_sans) if record is not None else frozenset())
    elif isinstance(ref, IamAccessKeyRef) and aws is not None:
        cache = users if users is not None else {}
        user = (ref.account_id, ref.user_name)
        if user not in cache:
            cache[user] = _iam_user_tags(aws, *user)
        tags = cache[user]
        held = f"tag {AWS_HOLD_TAG} on IAM user {ref.user_name}" if _is_set(tags.get(AWS_HOLD_TAG)) else None
        tagged = tags.get(AWS_WORKLOAD_TAG)
        return GuardFacts(hold=held, owners=frozenset({tagged} if tagged else ()))
    named = metadata.get(metadata_key)
    return GuardFacts(
        hold=f"metadata {VAULT_HOLD_KEY}" if _is_set(metadata.get(VAULT_HOLD_KEY)) else None,
        owners=frozenset({str(named)} if named else ()),
    )


def find_holds(vault: hvac.Client, aws: AwsClientFactory | None, refs: Sequence[CredentialRef]) -> list[Hold]:
    """Read the hold markers of every reference that can carry one. Reads only."""
    users: dict[tuple[str, str], dict[str, str]] = {}
    holds: list[Hold] = []
    for ref in refs:
        facts = read_guard_facts(vault, aws, ref, users=users)
        if facts.hold is not None:
            holds.append(Hold(ref.key, facts.hold))
    return holds


def refuse_guarded_target(
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    ref: CredentialRef,
    policy: GuardPolicy,
    *,
    metadata_key: str = "spiffe_id",
) -> None:
    """The acting task's own guard: raise PolicyRefusal, before any change, for a held or protected target.

    The planner guards the plan; this guards the one action, whoever wrote it, and sees a hold placed since.
    """
    from rescind.exceptions import PolicyRefusal

    facts = read_guard_facts(vault, aws, ref, metadata_key=metadata_key)
    if facts.hold is not None:
        raise PolicyRefusal(f"{ref.key} is on hold ({facts.hold}): a hold is never acted on")
    protected = sorted(facts.owners & policy.protected_workloads)
    if protected:
        raise PolicyRefusal(f"{ref.key} belongs to protected workload {protected[0]}: it is never acted on")


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

    from rescind.vault.tokens import find_possible_child_tokens, lookup_token_by_accessor, scan_live_tokens

    planned = {ref.accessor for ref in refs if isinstance(ref, VaultTokenRef)}
    live = cache(lambda: scan_live_tokens(vault))
    found: list[GuardedChildToken] = []
    for parent in sorted(planned):
        state = lookup_token_by_accessor(vault, parent)
        for child in find_possible_child_tokens(vault, state, live=live) if state is not None else ():
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


def _iam_user_tags(aws: AwsClientFactory, account_id: str, user_name: str) -> dict[str, str]:
    from rescind.aws.errors import aws_errors

    iam = aws.client("iam", account_id)
    with aws_errors(f"list tags of IAM user {user_name}"):
        try:
            tags = iam.list_user_tags(UserName=user_name)["Tags"]
        except iam.exceptions.NoSuchEntityException:
            return {}
    return {tag["Key"]: tag["Value"] for tag in tags}


def is_protected(workload_id: str, policy: GuardPolicy) -> bool:
    return workload_id in policy.protected_workloads


def exceeds_cap(plan: Plan, policy: GuardPolicy) -> bool:
    return len(plan.actions) > policy.blast_radius_cap
