"""Plan the response to a located leak: contain, rotate, revoke; then guard it like any other plan.

The plan differs from an offboarding's where a leak leaves nothing worth keeping:
- an IAM key is deactivated (the reversible step, first), then deleted at once: no grace period;
- a rotated secret's previous versions are destroyed, not kept;
- a role's sessions are denied from before the finding, so the exfiltrated ones die and fresh ones work;
- the entity a leaked token logged in as is disabled too, only when it holds no other live token (a workload's
  other sessions are never taken down). That may need every live token read, so the start function's kill first
  leaves it out (`leak_plan` without `entities`) and the run's plan decides it, after the kill
  (rescind.leaks.entities: the issuance index's entity pointers first, else a scan).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from rescind.discovery import plan_to_end
from rescind.guard import GuardPolicy, is_protected
from rescind.ledger.base import Ledger
from rescind.ledger.proofs import proven_by_kill
from rescind.ledger.types import ActionAttemptRecord, IncidentRecord
from rescind.models import (
    Action,
    ActionKind,
    ActionParams,
    CredentialRef,
    IamAccessKeyRef,
    IamRoleSessionsRef,
    Plan,
    VaultEntityRef,
)
from rescind.models.results import utc_now
from rescind.response.plan import guard_decision, guard_recorded_plan, split_guarded_plan
from rescind.response.types import ResponsePlan, ResponseRequest

if TYPE_CHECKING:
    import hvac

    from rescind.aws.session import AwsClientFactory
    from rescind.issuance.base import IssuanceIndex


def plan_to_contain_leak(
    plan_id: str, refs: tuple[CredentialRef, ...], *, reason: str, found_at: datetime, dry_run: bool = False
) -> Plan:
    # A static role's rotation counts from the planning, not the finding: its leaked password was located as the
    # current one just before, so a rotation Vault recorded after the alert's `found_at` (another clock) but before
    # that left it alive. Recorded with the plan, a resumed run counts from the same moment.
    ending = plan_to_end(plan_id, refs, run_id=plan_id, reason=reason, rotated_since=utc_now(), dry_run=dry_run)
    actions: list[Action] = []
    for action in ending.actions:
        if isinstance(action.target, IamRoleSessionsRef):
            actions.append(action.model_copy(update={"params": ActionParams(not_before=found_at)}))
            continue
        actions.append(action)
        if isinstance(action.target, IamAccessKeyRef) and action.kind is ActionKind.DISABLE:
            actions.append(Action(kind=ActionKind.DELETE, target=action.target, reason=reason))
    return Plan.ordered(plan_id, actions, dry_run=dry_run)


def leak_plan(request: ResponseRequest, *, entities: frozenset[str] = frozenset()) -> Plan:
    """The plan of a leak-response request: the start function's kill first and the run's plan task make it from
    the same request, so each action has the same id in both. A located token's entity is planned only when it is
    in `entities` (its id): those that hold no other live token, which only the run's plan reads."""
    refs = tuple(ref for ref in request.credentials if not isinstance(ref, VaultEntityRef) or ref.entity_id in entities)
    return plan_to_contain_leak(
        request.incident_id,
        refs,
        reason=request.reason,
        found_at=request.terminated_at,
        dry_run=request.dry_run,
    )


def build_leak_plan(
    request: ResponseRequest,
    *,
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    policy: GuardPolicy,
    index: IssuanceIndex | None = None,
    attempts: Sequence[ActionAttemptRecord] = (),
) -> tuple[Plan, ResponsePlan]:
    """The plan for the credentials the start step located, guarded: protected owners and holds are refused.

    With the issuance index, a leaked token's revocation lists its tree (`params.child_tokens`), so each token that
    dies with it is recorded with its read-back; the tree is the attacker's to make, so it neither refuses nor
    counts against the cap.

    `attempts`: the incident's, so far. A step the kill first proved done (rescind.ledger.proofs) is planned as
    it is: the run will not act on it, so its tree is not listed (the kill named it, each child read back) and a
    target with nothing else planned is not read for the guard (the kill's guard passed on it; nothing more is done
    to it)."""
    from rescind.leaks.entities import entities_holding_nothing_else

    plan = leak_plan(request, entities=entities_holding_nothing_else(request, vault, index=index))
    proven = proven_by_kill(attempts, plan.actions)
    if index is not None:
        from rescind.issuance.tree import list_indexed_child_tokens

        unproven = Plan(
            plan_id=plan.plan_id,
            actions=tuple(action for action in plan.actions if action.action_id not in proven),
            dry_run=plan.dry_run,
        )
        listed = iter(list_indexed_child_tokens(unproven, vault, index)[0].actions)  # one for one, in order
        plan = plan.model_copy(
            update={"actions": tuple(a if a.action_id in proven else next(listed) for a in plan.actions)}
        )
    to_read = {action.target.key: action.target for action in plan.actions if action.action_id not in proven}
    decision, why = guard_decision(
        plan,
        list(to_read.values()),  # an unplanned entity, a target only the kill acted on: unread
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
    index: IssuanceIndex | None = None,
) -> ResponsePlan:
    """Plan and guard, then open the incident with the full plan, whatever the guard decided. A resumed run acts
    on the recorded plan again, guarded anew. Either way, what the start function's kill already proved done (the
    same action, read back dead, in this incident's ledger) is left out of what the run acts on and reads back:
    `ResponsePlan.proven_before_run`, which the closure names dead with the kill's evidence."""
    # The recorded plan, if any (a resumed run's, or one recorded meanwhile by a racing start: used), and the kill's
    # attempts; never a resumed run's own attempts (thousands at scale). A first run's incident holds the kill's
    # attempts alone: one read.
    view = ledger.read_record_and_kill_first(request.incident_id)
    recorded, attempts = view.incident, view.attempts
    if recorded is not None:
        planned = guard_recorded_plan(
            request,
            recorded.plan,
            refused=_protected_owner(request, policy),
            vault=vault,
            aws=aws,
            policy=policy,
            refuse_guarded_child_tokens=False,  # as its first run: the leaked token's tree dies with it
        )
    else:
        plan, planned = build_leak_plan(request, vault=vault, aws=aws, policy=policy, index=index, attempts=attempts)
        ledger.open_incident(
            IncidentRecord(incident_id=request.incident_id, trigger=request.trigger, plan=plan, opened_at=utc_now())
        )
    return leave_out_proven(planned, attempts)


def leave_out_proven(planned: ResponsePlan, attempts: Sequence[ActionAttemptRecord]) -> ResponsePlan:
    """The plan without the actions the kill first proved done (rescind.ledger.proofs.proven_by_kill): those move
    to `proven_before_run`; everything else is acted on and read back by the run as before."""
    proven = proven_by_kill(attempts, (*planned.containment, *planned.actions))
    if not proven:
        return planned
    return planned.model_copy(
        update={
            "containment": tuple(action for action in planned.containment if action.action_id not in proven),
            "actions": tuple(action for action in planned.actions if action.action_id not in proven),
            "proven_before_run": tuple(
                action for action in (*planned.containment, *planned.actions) if action.action_id in proven
            ),
        }
    )
