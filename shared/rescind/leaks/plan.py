"""Plan the response to a located leak: contain, rotate, revoke; then guard it like any other plan.

The plan differs from an offboarding's where a leak leaves nothing worth keeping:
- an IAM key is deactivated (the reversible step, first), then deleted at once: no grace period;
- a rotated secret's previous versions are destroyed, not kept;
- a role's sessions are denied from before the finding, so the exfiltrated ones die and fresh ones work.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from rescind.discovery import plan_to_end
from rescind.guard import GuardPolicy, is_protected
from rescind.ledger.base import Ledger
from rescind.ledger.types import IncidentRecord
from rescind.models import Action, ActionKind, ActionParams, CredentialRef, IamAccessKeyRef, IamRoleSessionsRef, Plan
from rescind.models.results import utc_now
from rescind.response.plan import guard_decision, guard_recorded_plan, recorded_plan, split_guarded_plan
from rescind.response.types import ResponsePlan, ResponseRequest

if TYPE_CHECKING:
    import hvac

    from rescind.aws.session import AwsClientFactory


def plan_to_contain_leak(
    plan_id: str, refs: tuple[CredentialRef, ...], *, reason: str, found_at: datetime, dry_run: bool = False
) -> Plan:
    ending = plan_to_end(plan_id, refs, run_id=plan_id, reason=reason, rotated_since=found_at, dry_run=dry_run)
    actions: list[Action] = []
    for action in ending.actions:
        if isinstance(action.target, IamRoleSessionsRef):
            actions.append(action.model_copy(update={"params": ActionParams(not_before=found_at)}))
            continue
        actions.append(action)
        if isinstance(action.target, IamAccessKeyRef) and action.kind is ActionKind.DISABLE:
            actions.append(Action(kind=ActionKind.DELETE, target=action.target, reason=reason))
    return Plan.ordered(plan_id, actions, dry_run=dry_run)


def build_leak_plan(
    request: ResponseRequest,
    *,
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    policy: GuardPolicy,
) -> tuple[Plan, ResponsePlan]:
    """The plan for the credentials the start step located, guarded: protected owners and holds are refused."""
    plan = plan_to_contain_leak(
        request.incident_id,
        request.credentials,
        reason=request.reason,
        found_at=request.terminated_at,
        dry_run=request.dry_run,
    )
    decision, why = guard_decision(
        plan,
        request.credentials,
        refused=_protected_owner(request, policy),
        nothing_to_do="no action applies to the located credential",
        vault=vault,
        aws=aws,
        policy=policy,
        refuse_guarded_child_tokens=False,
    )
    return plan, split_guarded_plan(request, plan, decision, why)


def _protected_owner(request: ResponseRequest, policy: GuardPolicy) -> str | None:
    if is_protected(request.workload_id, policy):
        return f"the credential belongs to protected workload {request.workload_id}"
    return None


def plan_leak_response(
    request: ResponseRequest,
    *,
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    ledger: Ledger,
    policy: GuardPolicy,
) -> ResponsePlan:
    """Plan and guard, then open the incident with the full plan, whatever the guard decided. A resumed run acts
    on the recorded plan again, guarded anew."""
    recorded = recorded_plan(ledger, request.incident_id)
    if recorded is not None:
        return guard_recorded_plan(
            request, recorded, refused=_protected_owner(request, policy), vault=vault, aws=aws, policy=policy
        )
    plan, planned = build_leak_plan(request, vault=vault, aws=aws, policy=policy)
    ledger.open_incident(
        IncidentRecord(incident_id=request.incident_id, trigger=request.trigger, plan=plan, opened_at=utc_now())
    )
    return planned
