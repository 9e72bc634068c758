"""Starting an offboarding from a termination event, on moto: Step Functions, the ledger, SNS, the handler."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from rescind.exceptions import AwsThrottled
from rescind.inventory.types import CloudResourceKind, WorkloadBinding
from rescind.ledger import DynamoDbLedger, IncidentClosure, IncidentStatus
from rescind.models.results import utc_now
from rescind.offboarding.accounts import WorkloadAccounts
from rescind.offboarding.start import start_offboarding, unresolved_incident_id
from rescind.offboarding.triggers import parse_termination_event
from rescind.offboarding.types import TerminationNotice, offboarding_execution_name
from rescind.response.start import Notify, StartStatus, run_execution_name
from rescind.response.types import ResponseRequest
from rescind_local import LOCAL_ACCOUNT_ID, LOCAL_REGION, create_table_from_template
from rescind_local.lambdas import FunctionSpec, forget_loaded_handlers, invoke_in_process
from tests.conftest import REPO_ROOT, BackendCalls, load_event
from tests.doubles import InMemoryInventory
from tests.emf import counted

WORKLOAD = "spiffe://example.org/ns/fleet/sa/worker"
INSTANCE = "i-0abc1234def567890"  # the instance of events/ec2_instance_terminated.json
PASS_ONLY = {"StartAt": "Received", "States": {"Received": {"Type": "Pass", "End": True}}}
HOME_ONLY = WorkloadAccounts(home_account=LOCAL_ACCOUNT_ID)  # the stack's own account, as the template sets it
MEMBER_ACCOUNT = "210987654321"
WAIT_A_LITTLE = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 3, "End": True}}}


class Notifications:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def __call__(self, subject: str, message: str) -> None:
        self.sent.append((subject, message))


def _binding(cloud_id: str = INSTANCE, account_id: str = LOCAL_ACCOUNT_ID) -> WorkloadBinding:
    return WorkloadBinding(
        cloud_id=cloud_id,
        kind=CloudResourceKind.EC2_INSTANCE,
        workload_id=WORKLOAD,
        account_id=account_id,
        region=LOCAL_REGION,
        seen_at=utc_now(),
    )


def _create_state_machine(definition: dict[str, Any], name: str = "offboarding") -> str:
    arn: str = boto3.client("stepfunctions").create_state_machine(
        name=name,
        definition=json.dumps(definition),
        roleArn=f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/offboarding-state-machine",
        type="STANDARD",
    )["stateMachineArn"]
    return arn


@pytest.fixture
def ledger(aws: None) -> DynamoDbLedger:
    client = boto3.client("dynamodb")
    create_table_from_template(client, "LedgerTable", "ledger")
    return DynamoDbLedger("ledger", client)


@pytest.fixture
def state_machine(aws: None) -> str:
    return _create_state_machine(PASS_ONLY)


@pytest.fixture
def inventory() -> InMemoryInventory:
    return InMemoryInventory()


@pytest.fixture
def notifications() -> Notifications:
    return Notifications()


def _start(
    notice: TerminationNotice,
    *,
    inventory: InMemoryInventory | None,
    ledger: DynamoDbLedger,
    state_machine_arn: str,
    notify: Notify,
    sfn_client: Any = None,
    workload_accounts: WorkloadAccounts = HOME_ONLY,
) -> Any:
    return start_offboarding(
        notice,
        inventory=inventory,
        ledger=ledger,
        sfn_client=sfn_client or boto3.client("stepfunctions"),
        state_machine_arn=state_machine_arn,
        notify=notify,
        workload_accounts=workload_accounts,
    )


def _wait_until_finished(execution_arn: str, timeout: float = 10.0) -> str:
    """moto runs executions in a thread; a re-delivery after the run ended meets ExecutionAlreadyExists."""
    client = boto3.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        status: str = client.describe_execution(executionArn=execution_arn)["status"]
        if status != "RUNNING" or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def _executions(state_machine_arn: str) -> list[dict[str, Any]]:
    executions: list[dict[str, Any]] = boto3.client("stepfunctions").list_executions(stateMachineArn=state_machine_arn)[
        "executions"
    ]
    return executions


# --- started ----------------------------------------------------------------------------------------------------


def test_a_terminated_instance_starts_its_workloads_offboarding_named_from_workload_and_event(
    ledger: DynamoDbLedger, state_machine: str, inventory: InMemoryInventory, notifications: Notifications
) -> None:
    # Given the inventory knows which workload the (now gone) instance ran as
    inventory.bind(_binding())
    event = load_event("ec2_instance_terminated.json")
    notice = parse_termination_event(event)

    # When the offboarding is started
    result = _start(notice, inventory=inventory, ledger=ledger, state_machine_arn=state_machine, notify=notifications)

    # Then one execution runs, named from the workload and the event, with the offboarding request as input
    name = offboarding_execution_name(WORKLOAD, event["id"])
    assert result.status is StartStatus.STARTED
    assert (result.incident_id, result.workload_id, result.cloud_id) == (name, WORKLOAD, INSTANCE)
    execution = boto3.client("stepfunctions").describe_execution(executionArn=result.execution_arn)
    assert execution["name"] == name
    request = ResponseRequest.model_validate_json(execution["input"])
    assert request.incident_id == name
    assert request.workload_id == WORKLOAD
    assert request.trigger.event_id == event["id"]
    assert request.trigger.source == "aws.ec2"
    assert request.trigger.workload_id == WORKLOAD
    assert request.terminated_at == notice.terminated_at
    assert request.reason == notice.reason
    assert request.dry_run is False
    assert inventory.lookups == [INSTANCE]
    assert notifications.sent == []
    assert ledger.list_incidents() == []  # the plan task opens the incident, not the start


def test_the_generic_event_names_its_workload_without_the_inventory(
    ledger: DynamoDbLedger, state_machine: str, notifications: Notifications
) -> None:
    event = load_event("workload_terminated.json")
    result = _start(
        parse_termination_event(event),
        inventory=None,
        ledger=ledger,
        state_machine_arn=state_machine,
        notify=notifications,
    )
    assert result.status is StartStatus.STARTED
    assert result.incident_id == offboarding_execution_name(event["detail"]["workload_id"], event["id"])
    assert [execution["name"] for execution in _executions(state_machine)] == [result.incident_id]


def _from_member_account(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "account": MEMBER_ACCOUNT}


def test_a_generic_event_from_an_account_the_workload_is_not_bound_to_is_refused_recorded_and_notified(
    ledger: DynamoDbLedger, state_machine: str, notifications: Notifications, inventory: InMemoryInventory
) -> None:
    # Given the generic event, put in a member account that nothing binds the workload to
    event = _from_member_account(load_event("workload_terminated.json"))
    notice = parse_termination_event(event)

    # When it is started twice (a redelivery)
    results = [
        _start(notice, inventory=inventory, ledger=ledger, state_machine_arn=state_machine, notify=notifications)
        for _ in range(2)
    ]

    # Then nothing starts; one refused incident names the account and the workload; one notification
    assert {result.status for result in results} == {StartStatus.REFUSED}
    assert _executions(state_machine) == []
    (incident,) = ledger.list_incidents()
    view = ledger.read_incident(incident.incident_id)
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.REFUSED
    assert f"not bound to account {MEMBER_ACCOUNT}" in view.closure.summary
    assert event["detail"]["workload_id"] in view.closure.summary
    assert len(notifications.sent) == 1


@pytest.mark.parametrize(
    "accounts",
    [
        pytest.param(
            WorkloadAccounts(
                home_account=LOCAL_ACCOUNT_ID, by_trust_domain={"example.org": frozenset({MEMBER_ACCOUNT})}
            ),
            id="trust-domain",
        ),
        pytest.param(
            WorkloadAccounts(home_account=LOCAL_ACCOUNT_ID, by_trust_domain={"*": frozenset({MEMBER_ACCOUNT})}),
            id="every-trust-domain",
        ),
    ],
)
def test_a_generic_event_from_an_account_its_trust_domain_names_starts(
    ledger: DynamoDbLedger, state_machine: str, notifications: Notifications, accounts: WorkloadAccounts
) -> None:
    notice = parse_termination_event(_from_member_account(load_event("workload_terminated.json")))
    result = _start(
        notice,
        inventory=None,
        ledger=ledger,
        state_machine_arn=state_machine,
        notify=notifications,
        workload_accounts=accounts,
    )
    assert result.status is StartStatus.STARTED


def test_a_generic_event_from_an_account_where_the_inventory_saw_the_workload_starts(
    ledger: DynamoDbLedger, state_machine: str, notifications: Notifications, inventory: InMemoryInventory
) -> None:
    event = _from_member_account(load_event("workload_terminated.json"))
    inventory.bind(
        _binding(account_id=MEMBER_ACCOUNT).model_copy(update={"workload_id": event["detail"]["workload_id"]})
    )
    result = _start(
        parse_termination_event(event),
        inventory=inventory,
        ledger=ledger,
        state_machine_arn=state_machine,
        notify=notifications,
    )
    assert result.status is StartStatus.STARTED


def test_a_generic_event_naming_another_accounts_arn_is_refused(
    ledger: DynamoDbLedger, state_machine: str, notifications: Notifications
) -> None:
    event = _from_member_account(load_event("workload_terminated.json"))
    event["detail"]["workload_id"] = "arn:aws:iam::333333333333:role/payments-batch"
    result = _start(
        parse_termination_event(event),
        inventory=None,
        ledger=ledger,
        state_machine_arn=state_machine,
        notify=notifications,
    )
    assert result.status is StartStatus.REFUSED


@pytest.mark.parametrize(
    ("sample", "kind"),
    [
        ("ecs_task_stopped.json", CloudResourceKind.ECS_TASK),
        ("lambda_function_deleted.json", CloudResourceKind.LAMBDA_FUNCTION),
        ("autoscaling_instance_terminating.json", CloudResourceKind.EC2_INSTANCE),
    ],
)
def test_every_aws_trigger_resolves_through_the_inventory(
    sample: str,
    kind: CloudResourceKind,
    ledger: DynamoDbLedger,
    state_machine: str,
    inventory: InMemoryInventory,
    notifications: Notifications,
) -> None:
    notice = parse_termination_event(load_event(sample))
    assert notice.cloud_id is not None
    inventory.bind(_binding(notice.cloud_id).model_copy(update={"kind": kind}))
    result = _start(notice, inventory=inventory, ledger=ledger, state_machine_arn=state_machine, notify=notifications)
    assert result.status is StartStatus.STARTED
    assert result.workload_id == WORKLOAD


# --- duplicates -------------------------------------------------------------------------------------------------


def test_a_redelivered_event_is_a_duplicate_and_starts_nothing_new(
    ledger: DynamoDbLedger, state_machine: str, inventory: InMemoryInventory, notifications: Notifications
) -> None:
    # Given an event whose offboarding already ran (the Pass machine has finished)
    inventory.bind(_binding())
    notice = parse_termination_event(load_event("ec2_instance_terminated.json"))
    first = _start(notice, inventory=inventory, ledger=ledger, state_machine_arn=state_machine, notify=notifications)
    assert first.execution_arn is not None
    assert _wait_until_finished(first.execution_arn) == "SUCCEEDED"

    # When EventBridge delivers it again
    second = _start(notice, inventory=inventory, ledger=ledger, state_machine_arn=state_machine, notify=notifications)

    # Then Step Functions says ExecutionAlreadyExists, which is a no-op success
    assert (first.status, second.status) == (StartStatus.STARTED, StartStatus.DUPLICATE)
    assert second.execution_arn == first.execution_arn
    assert second.incident_id == first.incident_id
    assert len(_executions(state_machine)) == 1


def test_a_duplicate_of_a_running_execution_is_reported_as_duplicate(
    aws: None, ledger: DynamoDbLedger, notifications: Notifications
) -> None:
    # Given a still-running execution for the event (Standard machines then answer with that execution)
    running_machine = _create_state_machine(WAIT_A_LITTLE, name="offboarding-waits")
    notice = parse_termination_event(load_event("workload_terminated.json"))
    first = _start(notice, inventory=None, ledger=ledger, state_machine_arn=running_machine, notify=notifications)
    time.sleep(1.2)

    # When the same event is delivered again while it runs
    second = _start(notice, inventory=None, ledger=ledger, state_machine_arn=running_machine, notify=notifications)

    # Then it is the same execution, reported as a duplicate
    assert first.status is StartStatus.STARTED
    assert second.status is StartStatus.DUPLICATE
    assert second.execution_arn == first.execution_arn
    assert [execution["status"] for execution in _executions(running_machine)] == ["RUNNING"]


FAILS = {"StartAt": "Broken", "States": {"Broken": {"Type": "Fail", "Error": "OffboardingIncomplete"}}}


def test_a_redelivery_after_a_failed_run_resumes_the_incident_in_the_next_run_until_one_is_an_answer(
    aws: None, ledger: DynamoDbLedger, notifications: Notifications
) -> None:
    # Given an event whose run ended FAILED (and closed failed, or never closed)
    failing = _create_state_machine(FAILS, name="offboarding-fails")
    notice = parse_termination_event(load_event("workload_terminated.json"))
    first = _start(notice, inventory=None, ledger=ledger, state_machine_arn=failing, notify=notifications)
    assert first.execution_arn is not None
    assert _wait_until_finished(first.execution_arn) == "FAILED"

    # When the event is redelivered, twice (each new run failed too)
    second = _start(notice, inventory=None, ledger=ledger, state_machine_arn=failing, notify=notifications)
    assert second.execution_arn is not None
    assert _wait_until_finished(second.execution_arn) == "FAILED"
    third = _start(notice, inventory=None, ledger=ledger, state_machine_arn=failing, notify=notifications)

    # Then each started the next run of the same incident, under its own name, with the incident id as input
    assert [first.status, second.status, third.status] == [
        StartStatus.STARTED,
        StartStatus.RESUMED,
        StartStatus.RESUMED,
    ]
    incident = first.incident_id
    assert {second.incident_id, third.incident_id} == {incident}
    names = sorted(execution["name"] for execution in _executions(failing))
    assert names == sorted([incident, run_execution_name(incident, 2), run_execution_name(incident, 3)])
    assert third.execution_arn is not None
    described = boto3.client("stepfunctions").describe_execution(executionArn=third.execution_arn)
    assert json.loads(described["input"])["incident_id"] == incident

    # When the newest run closed as an answer (refused: a hold), and the event comes again
    assert _wait_until_finished(third.execution_arn) == "FAILED"
    ledger.close_incident(
        IncidentClosure(incident_id=incident, status=IncidentStatus.REFUSED, closed_at=utc_now(), summary="held")
    )
    fourth = _start(notice, inventory=None, ledger=ledger, state_machine_arn=failing, notify=notifications)

    # Then the refusal stands: nothing new starts
    assert fourth.status is StartStatus.DUPLICATE
    assert len(_executions(failing)) == 3


def test_run_names_stay_within_the_execution_name_limit_and_apart() -> None:
    long_a, long_b = "a" * 80, "a" * 79 + "b"
    assert run_execution_name("offboard-1", 1) == "offboard-1"
    assert run_execution_name("offboard-1", 2) == "offboard-1-run2"
    assert all(len(run_execution_name(name, 20)) <= 80 for name in (long_a, long_b))
    assert run_execution_name(long_a, 2) != run_execution_name(long_b, 2)


def test_another_event_for_the_same_workload_is_another_execution(
    ledger: DynamoDbLedger, state_machine: str, notifications: Notifications
) -> None:
    event = load_event("workload_terminated.json")
    first = _start(
        parse_termination_event(event),
        inventory=None,
        ledger=ledger,
        state_machine_arn=state_machine,
        notify=notifications,
    )
    event["id"] = "c3d5f7a9-2e4f-4b6c-8d0e-1f3a5c7e9b2d"
    second = _start(
        parse_termination_event(event),
        inventory=None,
        ledger=ledger,
        state_machine_arn=state_machine,
        notify=notifications,
    )
    assert (first.status, second.status) == (StartStatus.STARTED, StartStatus.STARTED)
    assert first.incident_id != second.incident_id
    assert len(_executions(state_machine)) == 2


# --- unresolved -------------------------------------------------------------------------------------------------


def test_an_unknown_instance_is_an_unresolved_incident_notified_once_and_nothing_starts(
    ledger: DynamoDbLedger, state_machine: str, inventory: InMemoryInventory, notifications: Notifications
) -> None:
    # Given an instance the inventory never saw
    event = load_event("ec2_instance_terminated.json")
    notice = parse_termination_event(event)

    # When the offboarding is started, twice (a re-delivery)
    first = _start(notice, inventory=inventory, ledger=ledger, state_machine_arn=state_machine, notify=notifications)
    second = _start(notice, inventory=inventory, ledger=ledger, state_machine_arn=state_machine, notify=notifications)

    # Then no execution started; the ledger holds one UNRESOLVED incident with an empty plan
    assert (first.status, second.status) == (StartStatus.UNRESOLVED, StartStatus.UNRESOLVED)
    assert first.incident_id == second.incident_id == unresolved_incident_id(notice)
    assert first.execution_arn is None
    assert first.workload_id is None
    assert _executions(state_machine) == []
    view = ledger.read_incident(first.incident_id)
    assert view.incident is not None
    assert view.incident.plan.actions == ()
    assert view.incident.trigger.event_id == event["id"]
    assert view.incident.trigger.workload_id is None
    assert view.attempts == ()
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.UNRESOLVED
    assert INSTANCE in view.closure.summary
    assert [incident.incident_id for incident in ledger.list_incidents()] == [first.incident_id]
    # and it was notified once, naming the instance
    assert len(notifications.sent) == 1
    subject, message = notifications.sent[0]
    assert "unresolved" in subject
    assert INSTANCE in message
    assert first.incident_id in message


def test_without_an_inventory_a_cloud_id_is_unresolved(
    ledger: DynamoDbLedger, state_machine: str, notifications: Notifications
) -> None:
    notice = parse_termination_event(load_event("lambda_function_deleted.json"))
    result = _start(notice, inventory=None, ledger=ledger, state_machine_arn=state_machine, notify=notifications)
    assert result.status is StartStatus.UNRESOLVED
    assert _executions(state_machine) == []
    assert "no inventory" in notifications.sent[0][1]


def test_a_binding_from_another_account_is_not_trusted(
    ledger: DynamoDbLedger, state_machine: str, inventory: InMemoryInventory, notifications: Notifications
) -> None:
    inventory.bind(_binding(account_id="999999999999"))
    notice = parse_termination_event(load_event("ec2_instance_terminated.json"))
    result = _start(notice, inventory=inventory, ledger=ledger, state_machine_arn=state_machine, notify=notifications)
    assert result.status is StartStatus.UNRESOLVED
    assert _executions(state_machine) == []


def test_a_failed_notification_is_retried_and_then_closes_the_incident(
    ledger: DynamoDbLedger, state_machine: str, inventory: InMemoryInventory
) -> None:
    # Given SNS throttles the first notification
    def throttled(subject: str, message: str) -> None:
        raise AwsThrottled("sns:Publish: Throttling")

    notice = parse_termination_event(load_event("ec2_instance_terminated.json"))
    with pytest.raises(AwsThrottled):
        _start(notice, inventory=inventory, ledger=ledger, state_machine_arn=state_machine, notify=throttled)
    assert ledger.read_incident(unresolved_incident_id(notice)).closure is None

    # When Lambda retries the event, then it notifies and closes the incident
    notifications = Notifications()
    result = _start(notice, inventory=inventory, ledger=ledger, state_machine_arn=state_machine, notify=notifications)
    assert result.status is StartStatus.UNRESOLVED
    assert len(notifications.sent) == 1
    closure = ledger.read_incident(result.incident_id).closure
    assert closure is not None
    assert closure.status is IncidentStatus.UNRESOLVED


# --- AWS errors -------------------------------------------------------------------------------------------------


def test_throttling_is_raised_as_aws_throttled_and_a_retry_converges(
    ledger: DynamoDbLedger, state_machine: str, notifications: Notifications
) -> None:
    # Given Step Functions answers StartExecution with a throttling error (moto cannot throttle: botocore's
    # before-call hook returns the error response that AWS would send; retries are off to keep it fast)
    client = boto3.client("stepfunctions", config=Config(retries={"max_attempts": 1, "mode": "standard"}))

    def throttle(**_: Any) -> tuple[Any, dict[str, Any]]:
        body = {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}
        return (
            _HttpResponse(400),
            {**body, "ResponseMetadata": {"HTTPStatusCode": 400}},
        )

    client.meta.events.register("before-call.sfn.StartExecution", throttle, unique_id="throttle")
    notice = parse_termination_event(load_event("workload_terminated.json"))

    # When the offboarding is started, then the error is typed as transient and nothing started
    with pytest.raises(AwsThrottled, match="StartExecution"):
        _start(
            notice,
            inventory=None,
            ledger=ledger,
            state_machine_arn=state_machine,
            notify=notifications,
            sfn_client=client,
        )
    assert _executions(state_machine) == []

    # and the retry Lambda makes once the throttling is over starts it
    client.meta.events.unregister("before-call.sfn.StartExecution", unique_id="throttle")
    result = _start(
        notice, inventory=None, ledger=ledger, state_machine_arn=state_machine, notify=notifications, sfn_client=client
    )
    assert result.status is StartStatus.STARTED


class _HttpResponse:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}
        self.content = b""
        self.text = ""
        self.raw = None


# --- the handler ------------------------------------------------------------------------------------------------

HANDLER_DIR = REPO_ROOT / "functions" / "start_offboarding"


@pytest.fixture
def start_function(aws: None, ledger: DynamoDbLedger, state_machine: str) -> Iterator[FunctionSpec]:
    from rescind.runtime import reset_caches

    topic = boto3.client("sns").create_topic(Name="rescind-notifications")["TopicArn"]
    spec = FunctionSpec(
        function_name="rescind-start-offboarding",
        code_dir=Path(HANDLER_DIR),
        environment={
            "POWERTOOLS_SERVICE_NAME": "rescind",
            "POWERTOOLS_METRICS_NAMESPACE": "Rescind",
            "LEDGER_TABLE_NAME": "ledger",
            "NOTIFICATION_TOPIC_ARN": topic,
            "OFFBOARDING_STATE_MACHINE_ARN": state_machine,
            "STACK_ACCOUNT_ID": LOCAL_ACCOUNT_ID,
            "VAULT_ADDR": "http://127.0.0.1:8200",  # never called by this function
            "VAULT_AUTH_METHOD": "aws_iam",
            "VAULT_AWS_AUTH_ROLE": "rescind",
        },
    )
    forget_loaded_handlers()
    reset_caches()
    yield spec
    forget_loaded_handlers()
    reset_caches()


def test_the_handler_starts_the_generic_events_offboarding(start_function: FunctionSpec, state_machine: str) -> None:
    event = load_event("workload_terminated.json")
    result = invoke_in_process(start_function, event)
    assert not result.errored, result.payload
    payload = json.loads(result.payload)
    assert payload["status"] == "started"
    assert payload["incident_id"] == offboarding_execution_name(event["detail"]["workload_id"], event["id"])
    assert [execution["name"] for execution in _executions(state_machine)] == [payload["incident_id"]]


def test_the_handler_refuses_a_generic_event_from_a_member_account_nothing_binds(
    start_function: FunctionSpec, ledger: DynamoDbLedger, state_machine: str
) -> None:
    result = invoke_in_process(start_function, _from_member_account(load_event("workload_terminated.json")))
    assert not result.errored, result.payload
    assert json.loads(result.payload)["status"] == "refused"
    assert _executions(state_machine) == []


def test_the_handler_records_an_unknown_instance_as_unresolved(
    start_function: FunctionSpec, ledger: DynamoDbLedger, state_machine: str
) -> None:
    # No inventory table is configured here, so the instance cannot be resolved
    result = invoke_in_process(start_function, load_event("ec2_instance_terminated.json"))
    assert not result.errored, result.payload
    payload = json.loads(result.payload)
    assert payload["status"] == "unresolved"
    closure = ledger.read_incident(payload["incident_id"]).closure
    assert closure is not None
    assert closure.status is IncidentStatus.UNRESOLVED
    assert _executions(state_machine) == []


@pytest.mark.parametrize(
    ("sample", "field", "value"),
    [
        ("ec2_instance_terminated.json", "state", "running"),
        ("lambda_function_deleted.json", "errorCode", "AccessDenied"),
    ],
)
def test_an_event_that_ended_nothing_is_ignored_with_no_call(
    start_function: FunctionSpec,
    backend_calls: BackendCalls,
    capsys: pytest.CaptureFixture[str],
    sample: str,
    field: str,
    value: str,
) -> None:
    event = load_event(sample)
    event["detail"][field] = value

    result = invoke_in_process(start_function, event)

    # Then it is answered "ignored", logged and counted, and nothing is called or recorded
    assert not result.errored, result.payload
    payload = json.loads(result.payload)
    assert (payload["status"], payload["reason"]) == ("ignored", "not_a_termination")
    assert field in payload["problem"]
    assert backend_calls.total == 0
    assert counted(capsys.readouterr().out, "TriggerRejected", reason="not_a_termination") == 1.0


def test_a_refused_event_is_recorded_as_rejected_then_raised_and_touches_nothing(
    start_function: FunctionSpec,
    ledger: DynamoDbLedger,
    backend_calls: BackendCalls,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a warm function (its cold start made no call either), and a generic event naming a traversal
    event = load_event("workload_terminated.json")
    value = "spiffe://example.org/ns/../*"
    event["detail"]["workload_id"] = value

    # When EventBridge delivers it
    result = invoke_in_process(start_function, event)

    # Then the invocation fails with InvalidInput (so the event reaches the on-failure destination), its only
    # calls recorded it in the ledger and notified, and the rejection was logged and counted without the body
    assert result.errored
    payload = json.loads(result.payload)
    assert payload["errorType"] == "InvalidInput"
    assert "workload_id" in payload["errorMessage"]
    assert set(backend_calls.aws) <= {"dynamodb:PutItem", "dynamodb:Query", "dynamodb:GetItem", "sns:Publish"}
    assert backend_calls.vault == []
    (incident,) = ledger.list_incidents()
    assert incident.trigger.event_id == event["id"]
    closure = ledger.read_incident(incident.incident_id).closure
    assert closure is not None
    assert closure.status is IncidentStatus.REJECTED
    assert "detail.workload_id" in closure.summary
    assert value not in closure.summary
    refusals = [record for record in caplog.records if record.getMessage() == "termination event refused"]
    assert len(refusals) == 1
    metrics = capsys.readouterr().out
    assert counted(metrics, "TriggerRejected", reason=refusals[0].rejection) == 1.0
    for logged in [metrics, *(str(vars(record)) for record in caplog.records)]:
        assert value not in logged
        assert event["id"] not in logged
