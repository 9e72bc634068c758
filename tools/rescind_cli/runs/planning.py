"""The plan of a run, exactly as the plan task makes it (reads only), as a document, and the refusals before a start."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rescind_cli.runs.boundary import CommandFailed
from rescind_cli.runs.subject import Subject
from rescind_cli.targets import Target

if TYPE_CHECKING:
    from rescind.inventory.base import Inventory
    from rescind.models import CredentialRef
    from rescind.response.types import ResponsePlan, ResponseRequest


class _ReadOnlyInventory:
    """The inventory as `plan` and `revoke` read it: what discovery finds is not written back from the CLI."""

    def __init__(self, inventory: Inventory) -> None:
        self._inventory = inventory

    def bind(self, binding: Any) -> None:
        return None

    def workload_for(self, cloud_id: str) -> Any:
        return self._inventory.workload_for(cloud_id)

    def record_credentials(self, workload_id: str, refs: Sequence[CredentialRef]) -> None:
        return None

    def credentials_of(self, workload_id: str) -> list[CredentialRef]:
        return self._inventory.credentials_of(workload_id)

    def bindings(self) -> list[Any]:
        return self._inventory.bindings()

    def resources_of(self, workload_id: str) -> list[Any]:
        return self._inventory.resources_of(workload_id)


def plan_for(target: Target, request: ResponseRequest) -> ResponsePlan:
    """The plan and the guard's decision, exactly as the plan task will make them. Reads only."""
    from rescind.offboarding.plan import build_offboarding_plan

    inventory = target.inventory()
    _, planned = build_offboarding_plan(
        request,
        vault=target.vault(),
        aws=target.aws_factory(),
        inventory=_ReadOnlyInventory(inventory) if inventory is not None else None,
        scope=target.discovery_scope(),
        policy=target.guard_policy(),
    )
    return planned


def plan_document(planned: ResponsePlan, subject: Subject, cap: int) -> dict[str, Any]:
    from rescind.models.refs import format_ref

    ordered = [("contain", action) for action in planned.containment] + [("revoke", a) for a in planned.actions]
    return {
        "subject": subject.workload_id,
        "by": "workload" if subject.from_workload else "credentials",
        "credentials": [format_ref(ref) for ref in subject.refs],
        "decision": str(planned.decision),
        "decision_reason": planned.decision_reason,
        "blast_radius_cap": cap,
        "total": len(ordered),
        "counts_by_kind": planned.counts_by_kind,
        "actions": [
            {
                "order": number,
                "phase": phase,
                "kind": str(action.kind),
                "target_kind": str(action.target.kind),
                "target": format_ref(action.target),
                "reversible": action.reversible,
                "action_id": action.action_id,
            }
            for number, (phase, action) in enumerate(ordered, start=1)
        ],
    }


def refuse_if_nothing_to_do(planned: ResponsePlan, subject: Subject, document: dict[str, Any]) -> None:
    from rescind.response.types import GuardDecision

    if planned.decision is GuardDecision.NOTHING_TO_DO:
        where = (
            "check the id with `rescind inventory show --workload ID`, or run `rescind inventory sync`"
            if subject.from_workload
            else "the named credentials need no action (a shared secret was already rotated since)"
        )
        raise CommandFailed(f"nothing to revoke: no live credential found for {subject.text}; {where}", plan=document)
    if planned.decision is GuardDecision.REFUSE:
        raise CommandFailed(f"refused by the guard: {planned.decision_reason}; nothing was started", plan=document)


def checked_plan(target: Target, request: ResponseRequest, subject: Subject) -> dict[str, Any]:
    """The plan's document, once the guard has said there is something to do and it may be done."""
    planned = plan_for(target, request)
    document = plan_document(planned, subject, target.guard_policy().blast_radius_cap)
    refuse_if_nothing_to_do(planned, subject, document)
    return document
