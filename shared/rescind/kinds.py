"""The closed set of credential kinds, each registered once by the module that knows it.

A kind's module (`rescind/vault/<kind>.py` or `rescind/aws/<kind>.py`) holds everything about it: its locate, act
and verify against the real system, the hold and owners the guard reads, the leaked values it recognises and what
the inventory report counts. It ends with `KIND = KindSpec(...)`. What treats every kind alike (the guard's hold
reading, discovery, the engine factory, leak location, the inventory report) iterates `registered_kinds()`; a flow
about one kind (PKI hygiene, KV rotation by age, a token's children) calls that kind's module.

The reference models stay in `rescind.models` (the pydantic discriminated union, usable without any adapter).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from rescind.exceptions import InvalidInput, UnsupportedAction
from rescind.holds import NO_GUARD_FACTS, GuardFacts
from rescind.models import ActionKind, CredentialKind

if TYPE_CHECKING:
    import hvac

    from rescind.aws.session import AwsClientFactory
    from rescind.discovery import DiscoveryScope
    from rescind.engine.base import CredentialHandler
    from rescind.leaks.locate import GitHubKeyIdFinder, KvValueLocator
    from rescind.leaks.types import LeakAlert, LocatedLeak, SecretType, Unlocated
    from rescind.rotation.contract import RotationHookInvoker
    from rescind.schedules.policy import SchedulePolicy
    from rescind.vault.kv_rotation_state import SecretValueHook
    from rescind.vault.token_tree import TokenCreators
    from rescind.vault.tokens import TokenState

RefT = TypeVar("RefT")


@dataclass
class PlanReads:
    """What one plan's discovery read on its way, for the same plan's guard to use instead of reading it again: the
    guard facts of each credential it found (by reference key, read in the lookup that found it), and the scan of
    every live token (the tree under a planned token is looked for in it). The acting task's own guard still reads."""

    guard_facts: dict[str, GuardFacts] = field(default_factory=dict)
    live_tokens: list[TokenState] | None = None  # None: no token scan was made
    # Tokens read one by one (the index's candidates confirmed live), by accessor: their tree and ACL need no new read.
    token_states: dict[str, TokenState] = field(default_factory=dict)
    # Whether tokens may create tokens, asked once per ACL for the whole plan (its marking and its guard).
    token_creators: TokenCreators | None = None


@dataclass(frozen=True)
class Backends:
    """The clients every kind reaches its system with: one Vault, and AWS through the cross-account factory."""

    vault: hvac.Client
    aws: AwsClientFactory | None = None
    # Sees each KV version a rotation writes (the fingerprint index keeps itself current).
    kv_on_new_value: SecretValueHook | None = None
    # Runs rotation hooks; None: Lambda invocations through `aws`.
    hook_invoker: RotationHookInvoker | None = None

    def rotation_hooks(self) -> RotationHookInvoker | None:
        """The rotation hooks (Lambda functions) run through the AWS factory; None without AWS access."""
        if self.hook_invoker is not None:
            return self.hook_invoker
        if self.aws is None:
            return None
        from rescind.rotation.contract import LambdaHookInvoker

        return LambdaHookInvoker(self.aws)

    # Where discovery keeps what it read for the plan's guard; None: nobody will use it.
    reads: PlanReads | None = None

    def keep_guard_facts(self, ref: Any, facts: GuardFacts) -> None:
        """Discovery found `ref` with these facts in the same lookup: the plan's guard need not read it again."""
        if self.reads is not None:
            self.reads.guard_facts[ref.key] = facts

    def require_aws(self) -> AwsClientFactory:
        if self.aws is None:
            raise InvalidInput("no AWS access is configured")
        return self.aws


@dataclass
class GuardRead:
    """One guard read: the clients, the metadata key naming workloads, and the IAM users' tags read so far."""

    backends: Backends
    metadata_key: str = "spiffe_id"
    iam_user_tags: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    # Held while a user's tags are looked for and read: reads made a few at a time still read each user once.
    iam_user_tags_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # Facts already read in this plan (PlanReads.guard_facts), by reference key: not read again.
    known: Mapping[str, GuardFacts] = field(default_factory=dict)


def no_guard_facts(read: GuardRead, ref: Any) -> GuardFacts:
    """For kinds that carry no hold marker and name no workload."""
    return NO_GUARD_FACTS


@dataclass(frozen=True)
class LeakSearch:
    """What locating a leaked value may use. A collaborator may be absent: the locator then says so."""

    backends: Backends
    scope: DiscoveryScope
    kv_locator: KvValueLocator | None = None
    github_key_id_finder: GitHubKeyIdFinder | None = None
    # The audit device whose HMACs the issuance index holds (`sys/audit-hash/<device>`): locates a Vault-issued value.
    audit_device: str | None = None


@dataclass(frozen=True)
class ValueLocator:
    """Resolves one type of leak alert to credentials. `needs_value`: it cannot work from a digest alone."""

    locate: Callable[[LeakSearch, LeakAlert, str | None], LocatedLeak | Unlocated]
    needs_value: bool


@dataclass(frozen=True)
class InventoryScan:
    """What the inventory report's readers get: the clients, the scope, the ceilings, and a rate limit to wait on."""

    backends: Backends
    scope: DiscoveryScope
    policy: SchedulePolicy
    now: datetime
    wait: Callable[[], None]  # called before each Vault request


@dataclass(frozen=True)
class InventoryRow:
    """One credential, role or mount the report counts or lists, by reference; never a value."""

    target: str  # a reference's text form (`format_ref`)
    kind: CredentialKind
    created_at: datetime | None  # None: a role or a mount, which is listed in findings but not counted by age
    owner: str | None = None
    standing: str | None = None  # why it never expires
    ttl_violation: str | None = None  # which TTL is above its ceiling


# A named part of the report (a mount, an account), read lazily: an error ends that part only.
InventorySection = tuple[str, Callable[[], Iterable[InventoryRow]]]


@dataclass(frozen=True)
class KindSpec(Generic[RefT]):
    """Everything Rescind does with one credential kind. Every field is required: a new kind decides each."""

    kind: CredentialKind
    ref_type: type[RefT]  # its member of the CredentialRef union
    ending_action: ActionKind | None  # what ends it when its workload ends or it leaks; None: not a workload's
    build_handler: Callable[[Backends], CredentialHandler]
    read_guard_facts: Callable[[GuardRead, RefT], GuardFacts]  # `no_guard_facts` when it carries none
    discover: Callable[[Backends, str, DiscoveryScope], Iterable[RefT]] | None  # a workload's, by convention
    locate_leaked: Mapping[SecretType, ValueLocator]  # the leak alert types it resolves
    inventory: Callable[[InventoryScan], Iterable[InventorySection]] | None  # what the report counts


# The order discovery and the report walk the kinds in.
REGISTRATION_ORDER: tuple[CredentialKind, ...] = (
    CredentialKind.VAULT_ENTITY,
    CredentialKind.VAULT_TOKEN,
    CredentialKind.APPROLE_SECRET_ID,
    CredentialKind.PKI_CERTIFICATE,
    CredentialKind.KV_SECRET,
    CredentialKind.IAM_ACCESS_KEY,
    CredentialKind.VAULT_LEASE,
    CredentialKind.VAULT_TTL_TARGET,
    CredentialKind.IAM_ROLE_SESSIONS,
    CredentialKind.SECRETS_MANAGER_SECRET,
    CredentialKind.ACM_PCA_CERTIFICATE,
    CredentialKind.DATABASE_STATIC_ROLE,
    CredentialKind.DATABASE_ROOT,
)

# Which kind resolves each leak alert type (`SecretType`'s values; its `locate_leaked` names the same): an alert
# loads that kind's module only. tests/unit/test_kinds.py checks the two agree.
LOCATED_BY: Mapping[str, CredentialKind] = {
    "vault_token": CredentialKind.VAULT_TOKEN,
    "vault_secret_id": CredentialKind.APPROLE_SECRET_ID,
    "aws_access_key": CredentialKind.IAM_ACCESS_KEY,
    "aws_iam_user": CredentialKind.IAM_ACCESS_KEY,
    "kv_value": CredentialKind.KV_SECRET,
    "certificate": CredentialKind.PKI_CERTIFICATE,
    "database_password": CredentialKind.DATABASE_STATIC_ROLE,
    "aws_role_sessions": CredentialKind.IAM_ROLE_SESSIONS,
    "vault_issued_value": CredentialKind.VAULT_LEASE,
}


@cache
def registered_kinds() -> tuple[KindSpec[Any], ...]:
    """Every kind, in the order discovery and the report walk them. Imports every kind module on first use."""
    return tuple(kind_spec(kind) for kind in REGISTRATION_ORDER)


@cache
def kind_spec(kind: CredentialKind) -> KindSpec[Any]:
    """One kind's registration. Imports that kind's module only: a cold start acting on one kind loads no other."""
    # One import per kind, spelled out: tests/infra/code_paths.py follows them to each kind's calls.
    match kind:
        case CredentialKind.VAULT_ENTITY:
            from rescind.vault import identity

            return identity.KIND
        case CredentialKind.VAULT_TOKEN:
            from rescind.vault import tokens

            return tokens.KIND
        case CredentialKind.APPROLE_SECRET_ID:
            from rescind.vault import approle

            return approle.KIND
        case CredentialKind.PKI_CERTIFICATE:
            from rescind.vault import pki

            return pki.KIND
        case CredentialKind.KV_SECRET:
            from rescind.vault import kv

            return kv.KIND
        case CredentialKind.IAM_ACCESS_KEY:
            from rescind.aws import iam_keys

            return iam_keys.KIND
        case CredentialKind.VAULT_LEASE:
            from rescind.vault import leases

            return leases.KIND
        case CredentialKind.VAULT_TTL_TARGET:
            from rescind.vault import ttl

            return ttl.KIND
        case CredentialKind.IAM_ROLE_SESSIONS:
            from rescind.aws import role_sessions

            return role_sessions.KIND
        case CredentialKind.SECRETS_MANAGER_SECRET:
            from rescind.aws import secrets_manager

            return secrets_manager.KIND
        case CredentialKind.ACM_PCA_CERTIFICATE:
            from rescind.aws import acm_pca

            return acm_pca.KIND
        case CredentialKind.DATABASE_STATIC_ROLE:
            from rescind.vault import database

            return database.STATIC_ROLE_KIND
        case CredentialKind.DATABASE_ROOT:
            from rescind.vault import database

            return database.ROOT_KIND
    raise UnsupportedAction(f"no credential kind {kind!s} is registered")  # pragma: no cover - the set is closed


def value_locator(secret_type: SecretType) -> ValueLocator:
    """The locator of one leak alert type, from the kind that resolves it (loading that kind's module only)."""
    return kind_spec(LOCATED_BY[secret_type]).locate_leaked[secret_type]
