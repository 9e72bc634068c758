"""Start a response run once, and resume it when its run failed: the start every flow shares.

The execution is named after the incident, so a duplicate start is a no-op; a newest run that ended failed is
resumed by a new run of the same incident (`run_execution_name`), which acts on its recorded plan.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from rescind.aws.errors import aws_errors, error_code
from rescind.exceptions import IncidentRunsExhausted
from rescind.ledger.base import Ledger
from rescind.ledger.types import IncidentStatus, Trigger
from rescind.models.results import utc_now

Notify = Callable[[str, str], None]
"""notify(subject, message): references only, never a value."""


class StepFunctionsStarter(Protocol):
    """The calls of boto3's Step Functions client used here (boto3-stubs has no stepfunctions extra here)."""

    def start_execution(self, *, stateMachineArn: str, name: str, input: str) -> Mapping[str, Any]: ...

    def describe_execution(self, *, executionArn: str) -> Mapping[str, Any]: ...


class TriggeringEvent(Protocol):
    """What names an event in the ledger: a termination notice, a leak alert, a leak event."""

    @property
    def source(self) -> str: ...

    @property
    def detail_type(self) -> str: ...

    @property
    def event_id(self) -> str: ...


def record_unanswered(
    incident_id: str,
    event: TriggeringEvent,
    *,
    about: str,
    status: IncidentStatus,
    why: str,
    summary: str,
    subject: str,
    advice: str,
    ledger: Ledger,
    notify: Notify,
    workload_id: str | None = None,
) -> None:
    """An event that starts no run (UNRESOLVED, REFUSED, RECORDED): its incident, with an empty plan, closed and
    notified once. The trigger names the event, what it was `about`, and why nothing was started."""
    from rescind.ledger.closing import record_closed_incident  # a cold start that starts a run never loads it

    record_closed_incident(
        incident_id,
        Trigger(
            source=event.source,
            detail_type=event.detail_type,
            event_id=event.event_id,
            workload_id=workload_id,
            reason=f"{about}; {status}: {why}"[:500],
        ),
        status=status,
        summary=summary,
        subject=subject,
        advice=advice,
        ledger=ledger,
        notify=notify,
    )


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


def execution_arn_for(state_machine_arn: str, name: str) -> str | None:
    match = _STATE_MACHINE_ARN.fullmatch(state_machine_arn)
    if match is None:
        return None
    return f"arn:{match['prefix']}:execution:{match['name']}:{name}"


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
