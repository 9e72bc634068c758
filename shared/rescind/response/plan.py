"""The guard and the plan task's output, shared by every run: offboarding, leak response, manual revocation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rescind.concurrent_reads import DEFAULT_READ_WORKERS
from rescind.guard import (
    GuardedChildToken,
    GuardPolicy,
    Hold,
    children_ending_with,
    database_roots_rotated,
    exceeds_cap,
    find_guarded_child_tokens,
    find_holds,
    listed_child_tokens,
)
from rescind.ledger.base import Ledger
from rescind.models import ActionKind, CredentialRef, Plan
from rescind.response.types import GuardDecision, ResponsePlan, ResponseRequest

if TYPE_CHECKING:
    import hvac

    from rescind.aws.session import AwsClientFactory
    from rescind.kinds import PlanReads


def is_manual_run(request: ResponseRequest) -> bool:
    """A run a person started with `rescind revoke` (its requester is the signer, never the body)."""
    from rescind.offboarding.manual import MANUAL_SOURCE

    return request.trigger.source == MANUAL_SOURCE and request.trigger.requested_by is not None


def guard_decision(
    plan: Plan,
    refs: Sequence[CredentialRef],
    *,
    refused: str | None,
    nothing_to_do: str,
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    policy: GuardPolicy,
    refuse_guarded_child_tokens: bool = True,
    manual_run: bool = False,
    reads: PlanReads | None = None,
    read_workers: int = DEFAULT_READ_WORKERS,
) -> tuple[GuardDecision, str]:
    """The guard, reading the holds of `refs` (and the guarded tokens a token revocation would end) from Vault and
    AWS; see `decide_guard` for its order. Every flow's plan task decides through this one function.

    A leak passes `refuse_guarded_child_tokens=False`: the tree under a leaked token is the attacker's to make,
    hold markers included, so it dies with the token and each token that died is recorded with the action.

    The child tokens a plan lists under its token revocations (the issuance index's tree, `params.child_tokens`)
    are guarded like the live bound's, and the blast-radius cap counts them as credentials the plan ends (a leak's
    are neither guarded nor counted: an attacker must not delay the response by growing the tree).

    `reads`: what this plan's discovery read (guard facts, the live token scan), used instead of reading again;
    `read_workers`: how many of the holds are read at a time (DiscoveryScope.live_read_workers)."""
    return decide_guard(
        plan,
        refused=refused,
        nothing_to_do=nothing_to_do,
        holds=lambda: find_holds(
            vault, aws, list(refs), known=reads.guard_facts if reads is not None else None, workers=read_workers
        ),
        guarded_children=lambda: (
            find_guarded_child_tokens(
                vault,
                refs,
                policy,
                listed=listed_child_tokens(plan),
                live_tokens=reads.live_tokens if reads is not None else None,
                creators=reads.token_creators if reads is not None else None,
                token_states=reads.token_states if reads is not None else None,
            )
            if refuse_guarded_child_tokens
            else []
        ),
        policy=policy,
        count_children=refuse_guarded_child_tokens,
        manual_run=manual_run,
    )


def decide_guard(
    plan: Plan,
    *,
    refused: str | None,
    nothing_to_do: str,
    holds: Callable[[], Sequence[Hold]],
    guarded_children: Callable[[], Sequence[GuardedChildToken]],
    policy: GuardPolicy,
    count_children: bool = True,
    manual_run: bool = False,
) -> tuple[GuardDecision, str]:
    """The guard's decision, in its order: a refusal already known (a protected workload), a database root rotation
    outside a manual run, holds, guarded tokens a token revocation would end with it, nothing to do, a dry run, a
    database root rotation (always approved by a person), the blast-radius cap (counting the listed child tokens
    unless `count_children` is off). `holds` and `guarded_children` are read only when the decision gets that far;
    the leak's kill first passes what its locate already read."""
    if refused is not None:
        return GuardDecision.REFUSE, refused
    roots = [f"{root.mount}/rotate-root/{root.connection}" for root in database_roots_rotated(plan)]
    if roots and not manual_run:
        return GuardDecision.REFUSE, (
            f"rotating a database root credential ({', '.join(roots[:10])}) is never automated: only Vault would "
            "know the password; ask for it by name in a manual run (rescind revoke --credential vault-db-root:...), "
            "which waits for approval"
        )
    held = holds()
    if held:
        return GuardDecision.REFUSE, "on hold: " + "; ".join(f"{hold.target} ({hold.marker})" for hold in held[:10])
    guarded = guarded_children()
    if guarded:
        return GuardDecision.REFUSE, "revoking would end guarded tokens with their parent: " + "; ".join(
            child.describe() for child in guarded[:10]
        )
    if not plan.actions:
        return GuardDecision.NOTHING_TO_DO, nothing_to_do
    if plan.dry_run:
        return GuardDecision.DRY_RUN, "dry run: the plan is recorded and nothing is called"
    if roots:
        return (
            GuardDecision.NEEDS_APPROVAL,
            f"a plan that rotates a database root credential waits for approval: {', '.join(roots[:10])}",
        )
    if exceeds_cap(plan, policy, count_children=count_children):
        children = len(children_ending_with(plan)) if count_children else 0
        with_children = f" and {children} child token(s) ending with their parents" if children else ""
        return (
            GuardDecision.NEEDS_APPROVAL,
            f"{len(plan.actions)} actions{with_children} exceed the blast-radius cap of {policy.blast_radius_cap}",
        )
    return GuardDecision.PROCEED, "within policy"


def split_guarded_plan(request: ResponseRequest, plan: Plan, decision: GuardDecision, why: str) -> ResponsePlan:
    """The plan task's output: the decision, and the actions split into containment (reversible) and the rest."""
    return ResponsePlan(
        incident_id=request.incident_id,
        workload_id=request.workload_id,
        decision=decision,
        decision_reason=why[:1000],
        containment=tuple(action for action in plan.actions if action.kind is ActionKind.DISABLE),
        actions=tuple(action for action in plan.actions if action.kind is not ActionKind.DISABLE),
        counts_by_kind=plan.counts_by_kind,
    )


def recorded_plan(ledger: Ledger, incident_id: str) -> Plan | None:
    """The plan an earlier run of this incident recorded, or None for a new incident."""
    incident = ledger.read_incident_record(incident_id)
    return incident.plan if incident is not None else None


def guard_recorded_plan(
    request: ResponseRequest,
    plan: Plan,
    *,
    refused: str | None,
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    policy: GuardPolicy,
    refuse_guarded_child_tokens: bool = True,
    read_workers: int = DEFAULT_READ_WORKERS,
) -> ResponsePlan:
    """A resumed run: the recorded plan again, not a new discovery, so what the first run ended is acted on (and
    comes back already absent or applied, with its read-back) and the incident keeps one plan. The guard runs
    again, as the first run's did: a hold or a protection added since still stops it."""
    refs = list({action.target.key: action.target for action in plan.actions}.values())
    decision, why = guard_decision(
        plan,
        refs,
        refused=refused,
        nothing_to_do="the recorded plan has no action",
        vault=vault,
        aws=aws,
        policy=policy,
        refuse_guarded_child_tokens=refuse_guarded_child_tokens,
        manual_run=is_manual_run(request),
        read_workers=read_workers,
    )
    return split_guarded_plan(request, plan, decision, f"resumed from the recorded plan; {why}")
