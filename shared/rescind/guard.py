"""The guard: checked before anything is touched. Protected workloads and holds are never acted on.

A hold is a marker an owner puts on a credential or identity to say "not now": the `rescind:hold` tag on an
IAM user, or a `rescind_hold` key in the metadata of a Vault entity, token, AppRole secret-id or KV secret.
Any hold on anything a plan would touch stops the whole plan: acting on part of a workload while its owner
holds another part is how the Azure AD 2021 clean-up broke sign-in for 14 hours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rescind.holds import AWS_HOLD_TAG, AWS_WORKLOAD_TAG, VAULT_HOLD_KEY, GuardFacts, is_set
from rescind.kinds import Backends, GuardRead, kind_spec
from rescind.ledger.types import ApprovalDecision, ApprovalVerdict
from rescind.models import Action, ActionKind, CredentialRef, DatabaseRootRef, Plan, VaultTokenRef

if TYPE_CHECKING:
    import hvac

    from rescind.aws.session import AwsClientFactory
    from rescind.vault.tokens import TokenState

__all__ = [
    "AWS_HOLD_TAG",
    "AWS_WORKLOAD_TAG",
    "VAULT_HOLD_KEY",
    "GuardFacts",
    "GuardPolicy",
    "Hold",
    "database_roots_rotated",
    "exceeds_cap",
    "find_guarded_child_tokens",
    "find_holds",
    "is_protected",
    "read_guard_facts",
    "refuse_guarded_target",
    "refuse_unapproved_root_rotation",
]


@dataclass(frozen=True)
class GuardPolicy:
    protected_workloads: frozenset[str] = frozenset()
    blast_radius_cap: int = 25


@dataclass(frozen=True)
class Hold:
    target: str  # the reference's key
    marker: str  # where the hold was found


def read_guard_facts(read: GuardRead, ref: CredentialRef) -> GuardFacts:
    """One read of the credential (or its IAM user), by its kind: the hold marker and the owning workloads.

    Reads only. One `read` can serve a whole plan: it keeps the IAM users' tags already read, and takes the facts
    its plan's discovery read (`read.known`) without reading them again.
    """
    known = read.known.get(ref.key)
    return known if known is not None else kind_spec(ref.kind).read_guard_facts(read, ref)


def find_holds(
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    refs: Sequence[CredentialRef],
    *,
    known: Mapping[str, GuardFacts] | None = None,
) -> list[Hold]:
    """Read the hold markers of every reference that can carry one (but those in `known`, read already). Reads only."""
    read = GuardRead(Backends(vault, aws), known=known or {})
    holds: list[Hold] = []
    for ref in refs:
        facts = read_guard_facts(read, ref)
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

    facts = read_guard_facts(GuardRead(Backends(vault, aws), metadata_key=metadata_key), ref)
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
    vault: hvac.Client,
    refs: Sequence[CredentialRef],
    policy: GuardPolicy,
    *,
    live_tokens: Sequence[TokenState] | None = None,
) -> list[GuardedChildToken]:
    """Held or protected tokens that a planned token revocation may kill, outside the plan. Reads only.

    A token is looked under only when it can create tokens, with one scan of the live tokens shared by all. Given
    `live_tokens` (the scan discovery made for this plan), the planned tokens' states come from it, and whether a
    token can create tokens is asked only when a guarded token outside the plan could descend from it: the same
    answer, without a call per planned token.
    """
    from functools import cache

    from rescind.vault.tokens import (
        can_create_child_tokens,
        could_descend_from,
        find_possible_child_tokens,
        lookup_token_by_accessor,
        scan_live_tokens,
    )

    planned = {ref.accessor for ref in refs if isinstance(ref, VaultTokenRef)}
    found: list[GuardedChildToken] = []
    if live_tokens is not None:
        scanned = {token.accessor: token for token in live_tokens}
        guarded = [
            (token, marker)
            for token in live_tokens
            if token.accessor not in planned and (marker := _guard_marker(token.metadata, policy)) is not None
        ]
        for parent in sorted(planned):
            state = scanned.get(parent) or lookup_token_by_accessor(vault, parent)
            under = [(child, marker) for child, marker in guarded if state and could_descend_from(child, state)]
            if under and can_create_child_tokens(vault, parent):
                found.extend(GuardedChildToken(parent, child.accessor, marker) for child, marker in under)
        return found
    live = cache(lambda: scan_live_tokens(vault))
    for parent in sorted(planned):
        state = lookup_token_by_accessor(vault, parent)
        for child in find_possible_child_tokens(vault, state, live=live) if state is not None else ():
            if child.accessor in planned:
                continue
            marker = _guard_marker(child.metadata, policy)
            if marker is not None:
                found.append(GuardedChildToken(parent, child.accessor, marker))
    return found


def _guard_marker(metadata: Mapping[str, str], policy: GuardPolicy) -> str | None:
    """Why the guard cares about a token: its hold, or the protected workload its metadata names; None: it does not."""
    if is_set(metadata.get(VAULT_HOLD_KEY)):
        return f"metadata {VAULT_HOLD_KEY}"
    protected = sorted(value for value in metadata.values() if value in policy.protected_workloads)
    return f"protected workload {protected[0]}" if protected else None


def is_protected(workload_id: str, policy: GuardPolicy) -> bool:
    return workload_id in policy.protected_workloads


def exceeds_cap(plan: Plan, policy: GuardPolicy) -> bool:
    return len(plan.actions) > policy.blast_radius_cap


def rotates_database_root(action: Action) -> bool:
    return action.kind is ActionKind.ROTATE and isinstance(action.target, DatabaseRootRef)


def database_roots_rotated(plan: Plan) -> list[DatabaseRootRef]:
    """The database root credentials the plan rotates. After rotate-root only Vault knows the password, so a
    person asks for it by name in a manual run and another approves it, whatever the blast-radius cap."""
    return [
        action.target
        for action in plan.actions
        if action.kind is ActionKind.ROTATE and isinstance(action.target, DatabaseRootRef)
    ]


def refuse_unapproved_root_rotation(action: Action, approvals: Sequence[ApprovalDecision]) -> None:
    """The acting task's check of the rule the planner applies: a database root is rotated only in a run whose
    plan a person approved (the ledger's approval record, written before the answer reached the run), and never
    in one that was denied. Raises PolicyRefusal before any call to Vault."""
    from rescind.exceptions import PolicyRefusal

    if not rotates_database_root(action):
        return
    verdicts = {approval.verdict for approval in approvals}
    if ApprovalVerdict.APPROVED not in verdicts or ApprovalVerdict.DENIED in verdicts:
        raise PolicyRefusal(
            f"{action.target.key}: rotating a database root credential needs this run's plan approved, and the "
            "ledger records no approval for it; ask for it by name in the stack's manual run "
            "(rescind revoke --credential vault-db-root:<mount>:<connection>), which waits for approval"
        )
