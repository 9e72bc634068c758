"""Discover what a terminated workload holds, plan its end, and decide what the guard allows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from rescind.discovery import DiscoveryScope, discover_workload, plan_to_end
from rescind.engine.scope import check_target_in_scope
from rescind.guard import (
    GuardPolicy,
    database_roots_rotated,
    exceeds_cap,
    find_guarded_child_tokens,
    find_holds,
    is_protected,
)
from rescind.ledger.base import Ledger
from rescind.ledger.types import IncidentRecord
from rescind.models import ActionKind, CredentialRef, KvSecretRef, Plan
from rescind.models.results import utc_now
from rescind.offboarding.types import GuardDecision, OffboardingPlan, OffboardingRequest

if TYPE_CHECKING:
    import hvac

    from rescind.aws.session import AwsClientFactory
    from rescind.inventory.base import Inventory


def gather_credentials(
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    inventory: Inventory | None,
    workload_id: str,
    scope: DiscoveryScope,
) -> tuple[list[CredentialRef], str]:
    """Discovery plus what the inventory saw earlier, once each (either alone can miss something), and where
    discovery looked."""
    found: dict[str, CredentialRef] = {}
    discovery = discover_workload(vault, aws, workload_id, scope)
    for ref in discovery.refs:
        found.setdefault(ref.key, ref)
    if inventory is not None:
        for ref in inventory.credentials_of(workload_id):
            found.setdefault(ref.key, ref)
        inventory.record_credentials(workload_id, list(found.values()))
    return list(found.values()), discovery.sources


def named_credentials_not_found(
    vault: hvac.Client, aws: AwsClientFactory | None, refs: Sequence[CredentialRef]
) -> list[CredentialRef]:
    """The named references that name nothing on record (a typo, a token of another Vault). Reads only.

    Discovery found its credentials alive; a named one has only this lookup as evidence it existed, and
    without it a typo would end as "already absent, verified dead". An AWS reference is checked only
    when there is an AWS side to ask; what cannot be known before acting (ACM PCA serials) is kept.
    """
    from rescind.engine.factory import build_engine

    engine = build_engine(vault, aws_factory=aws)
    return [
        ref
        for ref in refs
        if not (aws is None and getattr(ref, "account_id", None) is not None) and engine.exists(ref) is False
    ]


def describe_not_found(vault: hvac.Client, missing: Sequence[CredentialRef]) -> str:
    """The refusal for named references that name nothing: which ones, and where they were looked for."""
    from rescind.models.refs import format_ref

    places = sorted({f"AWS account {account}" for ref in missing if (account := getattr(ref, "account_id", None))})
    if any(getattr(ref, "account_id", None) is None for ref in missing):
        places.insert(0, f"Vault {vault.url}")
    named = ", ".join(format_ref(ref) for ref in missing[:10])
    more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    return f"not found in {' or '.join(places)}: {named}{more}; nothing was touched"


def rotated_since(vault: hvac.Client, ref: KvSecretRef, moment: datetime) -> bool:
    """A shared secret rotated (to the end) after the workload ended is no longer something it knows."""
    from rescind.vault.kv_rotation import ROTATED_AT_KEY, RotationStep, rotation_of
    from rescind.vault.kv_store import read_secret_metadata

    metadata = read_secret_metadata(vault, ref)
    if metadata is None or rotation_of(metadata).step is not RotationStep.FINISHED:
        return False
    stamp = metadata.custom_metadata.get(ROTATED_AT_KEY)
    try:
        rotated_at = datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        return False
    return rotated_at is not None and rotated_at >= moment


def is_manual_run(request: OffboardingRequest) -> bool:
    """A run a person started with `rescind revoke` (its requester is the signer, never the body)."""
    from rescind.offboarding.manual import MANUAL_SOURCE

    return request.trigger.source == MANUAL_SOURCE and request.trigger.requested_by is not None


def protected_workload(request: OffboardingRequest, policy: GuardPolicy) -> str | None:
    """Why the guard refuses the whole workload, or None."""
    return f"workload {request.workload_id} is protected" if is_protected(request.workload_id, policy) else None


def build_offboarding_plan(
    request: OffboardingRequest,
    *,
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    inventory: Inventory | None,
    scope: DiscoveryScope,
    policy: GuardPolicy,
) -> tuple[Plan, OffboardingPlan]:
    """Plan and guard, reading only: what `rescind plan` shows and what the plan task records."""
    refused = protected_workload(request, policy)
    sources = ""
    if refused is not None:
        refs: list[CredentialRef] = []
    else:
        if request.credentials:
            gathered = list(request.credentials)
            for ref in gathered:  # before any lookup: a named target outside the configured mounts is refused
                check_target_in_scope(ref, scope)
            missing = named_credentials_not_found(vault, aws, gathered)
            if missing:
                refused = describe_not_found(vault, missing)
        else:
            gathered, sources = gather_credentials(vault, aws, inventory, request.workload_id, scope)
        refs = [
            ref
            for ref in gathered
            # A re-run, or a second trigger for the same end, does not rotate a shared secret twice.
            if not (isinstance(ref, KvSecretRef) and rotated_since(vault, ref, request.terminated_at))
        ]

    plan = plan_to_end(
        request.incident_id,
        refs,
        run_id=request.incident_id,
        reason=request.reason,
        rotated_since=request.terminated_at,
        dry_run=request.dry_run,
    )
    decision, why = guard_decision(
        plan,
        refs,
        refused=refused,
        nothing_to_do="no live credential found",
        vault=vault,
        aws=aws,
        policy=policy,
        manual_run=is_manual_run(request),
    )
    return plan, split_guarded_plan(request, plan, decision, f"{why}; {sources}" if sources else why)


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
) -> tuple[GuardDecision, str]:
    """The guard, in its order: a refusal already known (a protected workload), a database root rotation outside
    a manual run, holds, guarded tokens a token revocation would end with it, nothing to do, a dry run, a database
    root rotation (always approved by a person), the blast-radius cap. Every flow's plan task decides through this
    one function.

    A leak passes `refuse_guarded_child_tokens=False`: the tree under a leaked token is the attacker's to make,
    hold markers included, so it dies with the token and each token that died is recorded with the action."""
    if refused is not None:
        return GuardDecision.REFUSE, refused
    roots = [f"{root.mount}/rotate-root/{root.connection}" for root in database_roots_rotated(plan)]
    if roots and not manual_run:
        return GuardDecision.REFUSE, (
            f"rotating a database root credential ({', '.join(roots[:10])}) is never automated: only Vault would "
            "know the password; ask for it by name in a manual run (rescind revoke --credential vault-db-root:...), "
            "which waits for approval"
        )
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
    if roots:
        return (
            GuardDecision.NEEDS_APPROVAL,
            f"a plan that rotates a database root credential waits for approval: {', '.join(roots[:10])}",
        )
    if exceeds_cap(plan, policy):
        return (
            GuardDecision.NEEDS_APPROVAL,
            f"{len(plan.actions)} actions exceed the blast-radius cap of {policy.blast_radius_cap}",
        )
    return GuardDecision.PROCEED, "within policy"


def split_guarded_plan(request: OffboardingRequest, plan: Plan, decision: GuardDecision, why: str) -> OffboardingPlan:
    """The plan task's output: the decision, and the actions split into containment (reversible) and the rest."""
    return OffboardingPlan(
        incident_id=request.incident_id,
        workload_id=request.workload_id,
        decision=decision,
        decision_reason=why[:1000],
        containment=tuple(action for action in plan.actions if action.kind is ActionKind.DISABLE),
        actions=tuple(action for action in plan.actions if action.kind is not ActionKind.DISABLE),
        counts_by_kind=plan.counts_by_kind,
    )


def plan_offboarding(
    request: OffboardingRequest,
    *,
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    inventory: Inventory | None,
    ledger: Ledger,
    scope: DiscoveryScope,
    policy: GuardPolicy,
) -> OffboardingPlan:
    """Plan and guard, then open the incident in the ledger with the full plan, whatever the guard decided.

    A resumed run (the incident is already in the ledger) acts on the recorded plan again, guarded anew."""
    recorded = recorded_plan(ledger, request.incident_id)
    if recorded is not None:
        refused = protected_workload(request, policy)
        return guard_recorded_plan(request, recorded, refused=refused, vault=vault, aws=aws, policy=policy)
    plan, planned = build_offboarding_plan(
        request, vault=vault, aws=aws, inventory=inventory, scope=scope, policy=policy
    )
    ledger.open_incident(
        IncidentRecord(incident_id=request.incident_id, trigger=request.trigger, plan=plan, opened_at=utc_now())
    )
    return planned


def recorded_plan(ledger: Ledger, incident_id: str) -> Plan | None:
    """The plan an earlier run of this incident recorded, or None for a new incident."""
    incident = ledger.read_incident(incident_id).incident
    return incident.plan if incident is not None else None


def guard_recorded_plan(
    request: OffboardingRequest,
    plan: Plan,
    *,
    refused: str | None,
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    policy: GuardPolicy,
) -> OffboardingPlan:
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
        manual_run=is_manual_run(request),
    )
    return split_guarded_plan(request, plan, decision, f"resumed from the recorded plan; {why}")
