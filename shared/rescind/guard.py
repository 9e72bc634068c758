"""The guard: checked before anything is touched. Protected workloads and holds are never acted on.

A hold is a marker an owner puts on a credential or identity to say "not now": the `rescind:hold` tag on an
IAM user, or a `rescind_hold` key in the metadata of a Vault entity, token, AppRole secret-id or KV secret.
Any hold on anything a plan would touch stops the whole plan: acting on part of a workload while its owner
holds another part is how the Azure AD 2021 clean-up broke sign-in for 14 hours.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from rescind.concurrent_reads import DEFAULT_READ_WORKERS, read_each
from rescind.holds import AWS_HOLD_TAG, AWS_WORKLOAD_TAG, VAULT_HOLD_KEY, GuardFacts, is_set
from rescind.kinds import Backends, GuardRead, kind_spec
from rescind.ledger.types import ApprovalDecision, ApprovalVerdict
from rescind.models import (
    METADATA_FIXED_AT_ISSUE,
    Action,
    ActionKind,
    CredentialRef,
    DatabaseRootRef,
    Plan,
    VaultTokenRef,
)

if TYPE_CHECKING:
    import hvac

    from rescind.aws.session import AwsClientFactory
    from rescind.vault.token_tree import TokenCreators
    from rescind.vault.tokens import TokenState

__all__ = [
    "AWS_HOLD_TAG",
    "AWS_WORKLOAD_TAG",
    "VAULT_HOLD_KEY",
    "ActionGuard",
    "GuardFacts",
    "GuardPolicy",
    "Hold",
    "children_ending_with",
    "database_roots_rotated",
    "exceeds_cap",
    "facts_read_at_plan",
    "find_guarded_child_tokens",
    "find_holds",
    "guard_refusal",
    "is_protected",
    "listed_child_tokens",
    "mark_reads_at_plan",
    "mark_tokens_that_cannot_create_tokens",
    "read_guard_facts",
    "refuse_guarded_target",
    "refuse_unapproved_root_rotation",
]


# The acting task's own guard of one action's target: raises PolicyRefusal for a held or protected one; else returns
# what it read of the target (GuardFacts.state, for the act: not read twice in one action), or None when it read
# nothing new.
ActionGuard: TypeAlias = Callable[[Action], GuardFacts | None]


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
    workers: int = DEFAULT_READ_WORKERS,
) -> list[Hold]:
    """Read the hold markers of every reference that can carry one (but those in `known`, read already). Reads only,
    `workers` at a time as the plan's live reads (a resumed plan reads every one): the holds in the references'
    order, and the first reference's error in that order raised."""
    read = GuardRead(Backends(vault, aws), known=known or {})
    found = read_each(lambda ref: read_guard_facts(read, ref), refs, workers=workers)
    return [Hold(ref.key, facts.hold) for ref, facts in zip(refs, found, strict=True) if facts.hold is not None]


def refuse_guarded_target(
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    action: Action,
    policy: GuardPolicy,
    *,
    metadata_key: str = "spiffe_id",
) -> GuardFacts:
    """The acting task's own guard: raise PolicyRefusal, before any change, for a held or protected target.

    The planner guards the plan; this guards the one action against the policy it runs under, and sees a hold placed
    since. A target whose metadata is fixed at issue (`facts_read_at_plan`) is judged on what its plan read: no hold
    can have been placed since, and the same read would find the same owner. Any other is read. Returns the facts
    (an ActionGuard): the action's act takes the target's state from them, not read again.
    """
    from rescind.exceptions import PolicyRefusal

    ref = action.target
    facts = facts_read_at_plan(action)
    if facts is None:
        facts = read_guard_facts(GuardRead(Backends(vault, aws), metadata_key=metadata_key), ref)
    refusal = guard_refusal(ref, facts, policy)
    if refusal is not None:
        raise PolicyRefusal(refusal)
    return facts


def facts_read_at_plan(action: Action) -> GuardFacts | None:
    """What the action's plan read of its target, when the act may take it for a new read: the target's metadata is
    fixed at issue and the plan found it, with no hold (ActionParams.owners_read_at_plan). None: read it again."""
    owners = action.params.owners_read_at_plan
    if owners is None or action.target.kind not in METADATA_FIXED_AT_ISSUE:
        return None
    return GuardFacts(hold=None, owners=frozenset(owners), found=True)


def mark_reads_at_plan(plan: Plan, read: Mapping[str, GuardFacts]) -> Plan:
    """The plan with each revocation of a target whose metadata is fixed at issue carrying what the plan's own read
    found of it (`read`: by reference key), so the acting guard need not read it again. A target read with a hold,
    read absent or not read is left unmarked: its acting guard reads (and a hold refuses the plan anyway)."""
    actions = []
    for action in plan.actions:
        facts = read.get(action.target.key)
        if (
            action.kind is ActionKind.REVOKE
            and action.target.kind in METADATA_FIXED_AT_ISSUE
            and facts is not None
            and facts.hold is None
            and facts.found is not False
        ):
            params = action.params.model_copy(update={"owners_read_at_plan": tuple(sorted(facts.owners))})
            action = action.model_copy(update={"params": params})
        actions.append(action)
    return Plan.ordered(plan.plan_id, actions, dry_run=plan.dry_run)


def guard_refusal(ref: CredentialRef, facts: GuardFacts, policy: GuardPolicy) -> str | None:
    """Why a target with these facts (its hold marker, the workloads it names) is never acted on; None if it may be."""
    if facts.hold is not None:
        return f"{ref.key} is on hold ({facts.hold}): a hold is never acted on"
    protected = sorted(facts.owners & policy.protected_workloads)
    if protected:
        return f"{ref.key} belongs to protected workload {protected[0]}: it is never acted on"
    return None


@dataclass(frozen=True)
class GuardedChildToken:
    """A held or protected token that may die with a planned token's revocation (revoke-accessor ends its tree)."""

    parent: str  # the planned token's accessor
    child: str  # the possible child's accessor
    marker: str  # why the guard cares: a hold, or the protected workload its metadata names
    indexed: bool = False  # the issuance index shows it created under the parent (else: the live bound's guess)

    def describe(self) -> str:
        how = "was created under" if self.indexed else "may have been created under"
        return f"token accessor {self.child} ({self.marker}) {how} {self.parent}"


def listed_child_tokens(plan: Plan) -> dict[str, tuple[str, ...]]:
    """Planned token accessor → the descendant tokens its revoke action lists (the issuance index's tree)."""
    return {
        action.target.accessor: action.params.child_tokens
        for action in plan.actions
        if isinstance(action.target, VaultTokenRef) and action.params.child_tokens
    }


def find_guarded_child_tokens(
    vault: hvac.Client,
    refs: Sequence[CredentialRef],
    policy: GuardPolicy,
    *,
    listed: Mapping[str, Sequence[str]] | None = None,
    live_tokens: Sequence[TokenState] | None = None,
    creators: TokenCreators | None = None,
    token_states: Mapping[str, TokenState] | None = None,
) -> list[GuardedChildToken]:
    """Held or protected tokens that a planned token revocation may kill, outside the plan. Reads only.

    Under each planned token: the live bound and the tree the plan lists for it from the issuance index (`listed`,
    each child looked up). The live bound looks under a token only when it can create tokens, with one scan of the
    live tokens shared by all. Given `live_tokens` (the scan discovery made for this plan), the planned tokens'
    states come from it, and whether a token can create tokens is asked only when a guarded token outside the plan
    could descend from it: the same answer, without a call per planned token. `creators`: the plan's answers to
    that question, shared with `mark_tokens_that_cannot_create_tokens`; `token_states`, the planned tokens' states
    the plan read already (the index's candidates confirmed live), not looked up again.
    """
    from functools import cache

    from rescind.vault.token_tree import TokenCreators, could_descend_from, find_possible_child_tokens
    from rescind.vault.tokens import lookup_token_by_accessor, scan_live_tokens

    planned = {ref.accessor for ref in refs if isinstance(ref, VaultTokenRef)}
    creators = creators or TokenCreators(vault)
    found: list[GuardedChildToken] = []
    for parent in sorted(planned):
        for accessor in (listed or {}).get(parent, ()):
            child = lookup_token_by_accessor(vault, accessor) if accessor not in planned else None
            marker = _guard_marker(child.metadata, policy) if child is not None else None
            if marker is not None:
                found.append(GuardedChildToken(parent, accessor, marker, indexed=True))
    indexed = {(guarded.parent, guarded.child) for guarded in found}
    if live_tokens is not None:
        scanned = {token.accessor: token for token in live_tokens}
        guarded = [
            (token, marker)
            for token in live_tokens
            if token.accessor not in planned and (marker := _guard_marker(token.metadata, policy)) is not None
        ]
        for parent in sorted(planned):
            state = scanned.get(parent) or lookup_token_by_accessor(vault, parent)
            under = [
                (child, marker)
                for child, marker in guarded
                if state and (parent, child.accessor) not in indexed and could_descend_from(child, state)
            ]
            if under and state and creators.can_create(state):
                found.extend(GuardedChildToken(parent, child.accessor, marker) for child, marker in under)
        return found
    live = cache(lambda: scan_live_tokens(vault))
    for parent in sorted(planned):
        state = (token_states or {}).get(parent) or lookup_token_by_accessor(vault, parent)
        for child in (
            find_possible_child_tokens(vault, state, live=live, creators=creators) if state is not None else ()
        ):
            if child.accessor in planned or (parent, child.accessor) in indexed:
                continue
            marker = _guard_marker(child.metadata, policy)
            if marker is not None:
                found.append(GuardedChildToken(parent, child.accessor, marker))
    return found


def mark_tokens_that_cannot_create_tokens(
    plan: Plan, live_tokens: Sequence[TokenState], creators: TokenCreators
) -> Plan:
    """The plan with each token revocation whose token may not create tokens marked so (`cannot_create_tokens`):
    nothing can die with it, so its act need not ask again. Asked once per ACL (`TokenCreators`), of the tokens in
    the plan's own scan of live tokens; a token not in the scan is left unmarked (its act asks for itself)."""
    scanned = {token.accessor: token for token in live_tokens}
    actions = []
    for action in plan.actions:
        target = action.target
        state = scanned.get(target.accessor) if isinstance(target, VaultTokenRef) else None
        if action.kind is ActionKind.REVOKE and state is not None and not creators.can_create(state):
            action = action.model_copy(
                update={"params": action.params.model_copy(update={"cannot_create_tokens": True})}
            )
        actions.append(action)
    return Plan.ordered(plan.plan_id, actions, dry_run=plan.dry_run)


def _guard_marker(metadata: Mapping[str, str], policy: GuardPolicy) -> str | None:
    """Why the guard cares about a token: its hold, or the protected workload its metadata names; None: it does not."""
    if is_set(metadata.get(VAULT_HOLD_KEY)):
        return f"metadata {VAULT_HOLD_KEY}"
    protected = sorted(value for value in metadata.values() if value in policy.protected_workloads)
    return f"protected workload {protected[0]}" if protected else None


def is_protected(workload_id: str, policy: GuardPolicy) -> bool:
    return workload_id in policy.protected_workloads


def children_ending_with(plan: Plan) -> set[str]:
    """The listed child tokens the plan ends through their parent's revocation and not by an action of their own."""
    planned = {action.target.accessor for action in plan.actions if isinstance(action.target, VaultTokenRef)}
    return {child for children in listed_child_tokens(plan).values() for child in children} - planned


def exceeds_cap(plan: Plan, policy: GuardPolicy, *, count_children: bool = True) -> bool:
    """The cap counts every credential the plan ends: its actions, and the child tokens its token revocations list
    (unless `count_children` is False: a leak's, whose tree is the attacker's to grow)."""
    children = len(children_ending_with(plan)) if count_children else 0
    return len(plan.actions) + children > policy.blast_radius_cap


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
