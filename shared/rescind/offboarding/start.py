"""Start the offboarding of a terminated workload, once per (workload, event); resume it when its run failed.

The notice names the workload itself (the generic trigger) or a cloud resource that the inventory maps to a
workload. A notice that resolves to no workload is recorded in the ledger as an UNRESOLVED incident and
notified: nothing is started and nothing is touched.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.exceptions import InvalidInput
from rescind.ledger.base import Ledger
from rescind.ledger.types import IncidentStatus, Trigger
from rescind.offboarding.types import TerminationNotice, offboarding_execution_name
from rescind.response.start import Notify, StartStatus, StepFunctionsStarter, record_unanswered, start_execution_once
from rescind.response.types import ResponseRequest
from rescind.validation import describe_validation_error

if TYPE_CHECKING:
    from rescind.inventory.base import Inventory
    from rescind.offboarding.accounts import WorkloadAccounts


class StartResult(BaseModel):
    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    status: StartStatus
    # The execution name, or the unresolved incident.
    incident_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,80}$")]
    workload_id: str | None = None
    cloud_id: str | None = None
    execution_arn: str | None = None


def start_offboarding(
    notice: TerminationNotice,
    *,
    inventory: Inventory | None,
    ledger: Ledger,
    sfn_client: StepFunctionsStarter,
    state_machine_arn: str,
    notify: Notify,
    workload_accounts: WorkloadAccounts,
) -> StartResult:
    """Start the offboarding state machine for the notice's workload, or record why there is none."""
    workload_id, unresolved_why = resolve_workload(notice, inventory)
    if workload_id is None:
        return record_unresolved(notice, unresolved_why, ledger=ledger, notify=notify)
    if notice.workload_id is not None:
        # The generic event names its workload itself: only an account the workload is bound to may.
        unbound = workload_accounts.problem(notice.workload_id, notice.account_id, inventory)
        if unbound is not None:
            return record_refused_by_account(notice, notice.workload_id, unbound, ledger=ledger, notify=notify)
    incident_id = offboarding_execution_name(workload_id, notice.event_id)
    try:
        request = ResponseRequest(
            incident_id=incident_id,
            workload_id=workload_id,
            reason=notice.reason,
            trigger=Trigger(
                source=notice.source,
                detail_type=notice.detail_type,
                event_id=notice.event_id,
                workload_id=workload_id,
                reason=notice.reason,
            ),
            terminated_at=notice.terminated_at,
        )
    except ValidationError as error:  # a workload id from the inventory that is not a valid one
        raise InvalidInput(f"invalid offboarding request: {describe_validation_error(error)}") from None
    return _start_execution(request, notice, sfn_client=sfn_client, state_machine_arn=state_machine_arn, ledger=ledger)


def resolve_workload(notice: TerminationNotice, inventory: Inventory | None) -> tuple[str | None, str]:
    """(workload id, "") or (None, why not). The resource itself is usually gone: only the inventory knows."""
    if notice.workload_id is not None:
        return notice.workload_id, ""
    if notice.cloud_id is None:
        return None, "the event names neither a workload nor a cloud resource"
    if inventory is None:
        return None, f"no inventory is configured to resolve {notice.cloud_id}"
    binding = inventory.workload_for(notice.cloud_id)
    if binding is None:
        return None, f"{notice.cloud_id} is not bound to a workload in the inventory"
    if (binding.account_id, binding.region) != (notice.account_id, notice.region):
        # Never offboard a workload on the word of a resource in another account or region.
        return None, f"the inventory binds {notice.cloud_id} in another account or region than the event's"
    return binding.workload_id, ""


def unresolved_incident_id(notice: TerminationNotice) -> str:
    """Derived from the resource and the event, so a re-delivered event records one incident."""
    digest = hashlib.sha256(f"{notice.cloud_id or ''}\n{notice.event_id}".encode()).hexdigest()[:40]
    return f"unresolved-{digest}"


def record_unresolved(notice: TerminationNotice, why: str, *, ledger: Ledger, notify: Notify) -> StartResult:
    """An UNRESOLVED incident with an empty plan, closed and notified once (at least once on a retry)."""
    incident_id = unresolved_incident_id(notice)
    record_unanswered(
        incident_id,
        notice,
        about=notice.reason,
        status=IncidentStatus.UNRESOLVED,
        why=why,
        summary=(
            f"incident {incident_id} (offboarding) for {notice.cloud_id or 'an unnamed resource'}: unresolved; "
            f"trigger: {notice.source} {notice.detail_type} {notice.event_id}; {why}. Nothing was revoked."
        ),
        subject="Rescind Offboarding: unresolved",
        advice=f"Reason: {notice.reason}\n"
        "If it held credentials, bind it (rescind inventory sync) and start an offboarding for its workload.",
        ledger=ledger,
        notify=notify,
    )
    return StartResult(status=StartStatus.UNRESOLVED, incident_id=incident_id, cloud_id=notice.cloud_id)


def record_refused_by_account(
    notice: TerminationNotice, workload_id: str, why: str, *, ledger: Ledger, notify: Notify
) -> StartResult:
    """A REFUSED incident with an empty plan, closed and notified once: nothing is started or touched."""
    incident_id = "refused-" + offboarding_execution_name(workload_id, notice.event_id).removeprefix("offboard-")
    record_unanswered(
        incident_id,
        notice,
        about=notice.reason,
        status=IncidentStatus.REFUSED,
        why=why,
        workload_id=workload_id,
        summary=(
            f"incident {incident_id} (offboarding) for {workload_id}: refused; trigger: {notice.source} "
            f"{notice.detail_type} {notice.event_id} from account {notice.account_id}; {why}. Nothing was revoked."
        ),
        subject="Rescind Offboarding: refused, workload not bound to the event's account",
        advice="If the account may end this workload, add it to TrustDomainAccounts, or bind the workload's "
        "resources in that account (rescind inventory sync); then send the event again.",
        ledger=ledger,
        notify=notify,
    )
    return StartResult(status=StartStatus.REFUSED, incident_id=incident_id, workload_id=workload_id)


def _start_execution(
    request: ResponseRequest,
    notice: TerminationNotice,
    *,
    sfn_client: StepFunctionsStarter,
    state_machine_arn: str,
    ledger: Ledger,
) -> StartResult:
    status, execution_arn = start_execution_once(
        sfn_client, state_machine_arn, incident_id=request.incident_id, payload=request.model_dump_json(), ledger=ledger
    )
    return StartResult(
        status=status,
        incident_id=request.incident_id,
        workload_id=request.workload_id,
        cloud_id=notice.cloud_id,
        execution_arn=execution_arn,
    )
