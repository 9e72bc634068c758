"""Start the offboarding of a terminated workload, once per (workload, event); resume it when its run failed.

The notice names the workload itself (the generic trigger) or a cloud resource that the inventory maps to a
workload. A notice that resolves to no workload is recorded in the ledger as an UNRESOLVED incident and
notified: nothing is started and nothing is touched.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rescind.aws.errors import aws_errors, error_code
from rescind.exceptions import IncidentRunsExhausted, InvalidInput
from rescind.ledger.base import Ledger
from rescind.ledger.closing import record_closed_incident
from rescind.ledger.types import IncidentStatus, Trigger
from rescind.models.results import utc_now
from rescind.offboarding.types import OffboardingRequest, TerminationNotice, offboarding_execution_name
from rescind.validation import describe_validation_error

if TYPE_CHECKING:
    from rescind.inventory.base import Inventory
    from rescind.offboarding.accounts import WorkloadAccounts

Notify = Callable[[str, str], None]
"""notify(subject, message): references only, never a value."""


class StepFunctionsStarter(Protocol):
    """The calls of boto3's Step Functions client used here (boto3-stubs has no stepfunctions extra here)."""

    def start_execution(self, *, stateMachineArn: str, name: str, input: str) -> Mapping[str, Any]: ...

    def describe_execution(self, *, executionArn: str) -> Mapping[str, Any]: ...


# A Standard machine answers a start with the same name and input as a RUNNING execution with that
# execution, not ExecutionAlreadyExists. An execution that began this long before our call is that one.
_RUNNING_DUPLICATE_SLACK = timedelta(seconds=1)
_STATE_MACHINE_ARN = re.compile(r"arn:(?P<prefix>aws[a-z-]*:states:[a-z0-9-]+:[0-9]{12}):stateMachine:(?P<name>[^:]+)")


# How a run ends without finishing its incident by itself: a redelivered event resumes the incident.
_RESUMABLE_EXECUTION = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
# Closures after which a run may be resumed: it failed, left something alive, or never closed. A refusal, a
# denial, a dry run or a completed run is an answer, and the same event again gets the same one.
_RESUMABLE_CLOSURE = frozenset({None, IncidentStatus.FAILED, IncidentStatus.PARTIAL})
# Runs of one incident: a bound on what redeliveries of one event can start.
MAX_RUNS_PER_INCIDENT = 20
_EXECUTION_NAME_LIMIT = 80


class StartStatus(StrEnum):
    STARTED = "started"
    RESUMED = "resumed"  # an earlier run of this incident ended failed: a new run of the same incident finishes it
    DUPLICATE = "duplicate"  # this workload and event already have an execution: nothing new was started
    UNRESOLVED = "unresolved"  # no workload: recorded and notified, nothing started
    REFUSED = "refused"  # a generic event from an account the workload is not bound to: recorded and notified
    RECORDED = "recorded"  # a real event that asks for no action: recorded and notified, nothing started


class StartResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

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
        request = OffboardingRequest(
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
    record_closed_incident(
        incident_id,
        Trigger(
            source=notice.source,
            detail_type=notice.detail_type,
            event_id=notice.event_id,
            reason=f"{notice.reason}; unresolved: {why}"[:500],
        ),
        status=IncidentStatus.UNRESOLVED,
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
    record_closed_incident(
        incident_id,
        Trigger(
            source=notice.source,
            detail_type=notice.detail_type,
            event_id=notice.event_id,
            workload_id=workload_id,
            reason=f"{notice.reason}; refused: {why}"[:500],
        ),
        status=IncidentStatus.REFUSED,
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


def execution_arn_for(state_machine_arn: str, name: str) -> str | None:
    match = _STATE_MACHINE_ARN.fullmatch(state_machine_arn)
    if match is None:
        return None
    return f"arn:{match['prefix']}:execution:{match['name']}:{name}"


def _start_execution(
    request: OffboardingRequest,
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


def run_execution_name(incident_id: str, run: int) -> str:
    """The execution name of an incident's run: the incident id for the first, then `-run<n>` added, so each run
    has its own execution (and its own ledger attempt ids) while the execution input keeps the incident id."""
    if run == 1:
        return incident_id
    suffix = f"-run{run}"
    if len(incident_id) + len(suffix) <= _EXECUTION_NAME_LIMIT:
        return incident_id + suffix
    digest = hashlib.sha256(incident_id.encode()).hexdigest()[:24]  # still one name per incident
    return f"{incident_id[: _EXECUTION_NAME_LIMIT - len(suffix) - 25]}-{digest}{suffix}"


def start_execution_once(
    sfn_client: StepFunctionsStarter, state_machine_arn: str, *, incident_id: str, payload: str, ledger: Ledger
) -> tuple[StartStatus, str | None]:
    """Start the incident's run, once: (STARTED, RESUMED or DUPLICATE, execution ARN).

    A run that is still going or that ended as an answer (completed, refused, dry run) makes this a DUPLICATE.
    A newest run that ended failed, timed out or aborted, and whose incident's newest closure is not an answer,
    is resumed by a new run of the same incident (see `run_execution_name`), which acts on its recorded plan.
    """
    status, execution_arn = _start_named(sfn_client, state_machine_arn, incident_id, payload)
    if status is StartStatus.STARTED:
        return status, execution_arn
    for run in range(2, MAX_RUNS_PER_INCIDENT + 1):
        if execution_arn is None or _execution_status(sfn_client, execution_arn) not in _RESUMABLE_EXECUTION:
            return StartStatus.DUPLICATE, execution_arn
        name = run_execution_name(incident_id, run)
        next_arn = execution_arn_for(state_machine_arn, name)
        if next_arn is not None and _execution_status(sfn_client, next_arn) is not None:
            execution_arn = next_arn  # this run exists already: how did it end?
            continue
        closure = ledger.read_incident(incident_id).closure
        if (closure.status if closure is not None else None) not in _RESUMABLE_CLOSURE:
            return StartStatus.DUPLICATE, execution_arn
        status, started_arn = _start_named(sfn_client, state_machine_arn, name, payload)
        if status is StartStatus.STARTED:
            return StartStatus.RESUMED, started_arn
        execution_arn = started_arn  # a racing redelivery started it first
    raise IncidentRunsExhausted(
        f"incident {incident_id} ended failed in {MAX_RUNS_PER_INCIDENT} runs; a redelivery starts no more"
    )


def _execution_status(sfn_client: StepFunctionsStarter, execution_arn: str) -> str | None:
    """RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED (or PENDING_REDRIVE); None when there is no such execution."""
    from botocore.exceptions import ClientError

    with aws_errors("states:DescribeExecution"):
        try:
            described = sfn_client.describe_execution(executionArn=execution_arn)
        except ClientError as error:
            if error_code(error) == "ExecutionDoesNotExist":
                return None
            raise
    return str(described["status"])


def _start_named(
    sfn_client: StepFunctionsStarter, state_machine_arn: str, name: str, payload: str
) -> tuple[StartStatus, str | None]:
    """Start the named execution, or report that it exists: (STARTED or DUPLICATE, execution ARN)."""
    from botocore.exceptions import ClientError

    requested_at = utc_now()
    with aws_errors("states:StartExecution"):  # throttling and 5xx become AwsThrottled
        try:
            answer = sfn_client.start_execution(stateMachineArn=state_machine_arn, name=name, input=payload)
        except ClientError as error:
            if error_code(error) == "ExecutionAlreadyExists":
                return StartStatus.DUPLICATE, execution_arn_for(state_machine_arn, name)
            raise
    started_at: datetime = answer["startDate"]
    if started_at.tzinfo is not None and started_at < requested_at - _RUNNING_DUPLICATE_SLACK:
        return StartStatus.DUPLICATE, answer["executionArn"]
    return StartStatus.STARTED, answer["executionArn"]
