"""The guard and the plan task's output, shared by every run: offboarding, leak response, manual revocation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rescind.guard import GuardPolicy, exceeds_cap, find_guarded_child_tokens, find_holds
from rescind.ledger.base import Ledger
from rescind.models import ActionKind, CredentialRef, Plan
from rescind.response.types import GuardDecision, ResponsePlan, ResponseRequest

if TYPE_CHECKING:
    import hvac

    from rescind.aws.session import AwsClientFactory


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
) -> tuple[GuardDecision, str]:
    """The guard, in its order: a refusal already known (a protected workload), holds, guarded tokens a token
    revocation would end with it, nothing to do, a dry run, the blast-radius cap. Every flow's plan task decides
    through this one function.

    A leak passes `refuse_guarded_child_tokens=False`: the tree under a leaked token is the attacker's to make,
    hold markers included, so it dies with the token and each token that died is recorded with the action."""
    if refused is not None:
        return GuardDecision.REFUSE, refused
    holds = find_holds(vault, aws, list(refs))
    if holds:
        return GuardDecision.REFUSE, "on hold: " + "; ".join(f"{hold.target} ({hold.marker})" for hold in holds[:10])
    if refuse_guarded_child_tokens:
        guarded = find_guarded_child_tokens(vault, refs, policy)
        if guarded:
            return GuardDecision.REFUSE, "revoking would end guarded tokens with their parent: " + "; ".join(
                child.describe() for child in guarded[:10]
            )
    if not plan.actions:
        return GuardDecision.NOTHING_TO_DO, nothing_to_do
    if plan.dry_run:
        return GuardDecision.DRY_RUN, "dry run: the plan is recorded and nothing is called"
    if exceeds_cap(plan, policy):
        return (
            GuardDecision.NEEDS_APPROVAL,
            f"{len(plan.actions)} actions exceed the blast-radius cap of {policy.blast_radius_cap}",
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
    incident = ledger.read_incident(incident_id).incident
    return incident.plan if incident is not None else None


def guard_recorded_plan(
    request: ResponseRequest,
    plan: Plan,
    *,
    refused: str | None,
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    policy: GuardPolicy,
) -> ResponsePlan:
    """A resumed run: the recorded plan again, not a new discovery, so what the first run ended is acted on (and
    comes back already absent or applied, with its read-back) and the incident keeps one plan. The guard runs
    again: a hold or a protection added since still stops it."""
    refs = list({action.target.key: action.target for action in plan.actions}.values())
    decision, why = guard_decision(
        plan,
        refs,
        refused=refused,
        nothing_to_do="the recorded plan has no action",
        vault=vault,
        aws=aws,
        policy=policy,
    )
    return split_guarded_plan(request, plan, decision, f"resumed from the recorded plan; {why}")
