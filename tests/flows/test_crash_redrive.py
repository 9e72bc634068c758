"""OpenBao crashes in the middle of an offboarding started by an event; the event is redelivered (a DLQ redrive).

Through the template's rule, the start function, the offboarding state machine and its handlers, against a real
OpenBao on disk (SIGKILLed between containment and revocation, then restarted) and moto:

- the FAILED run's closure lists every planned credential as dead, alive or unknown, and never says that
  nothing is alive when it could not read the credentials back; its notification says so too;
- redelivering the same event resumes the incident in a new execution (`<incident>-run2`): what the first run
  ended comes back already applied or absent with its read-back, the rest is ended, nothing recorded before is
  overwritten, and the incident closes completed;
- redelivering it again after that, or while a run is still going, starts nothing.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.client
import hvac
import pytest

from rescind.ledger import CredentialState, DynamoDbLedger, IncidentStatus
from rescind.ledger.closing import describe_alive
from rescind.models import ActionKind, Outcome
from rescind.offboarding.types import offboarding_execution_name
from rescind.response.start import run_execution_name
from rescind_local import LocalOpenBao
from rescind_local.proof import prove_by_use
from rescind_local.seed import SeededWorkload, prepare_vault, seed_workload
from rescind_local.stack import LocalStack
from rescind_local.stepfunctions import wait_for_execution
from tests.conftest import deploy_local_stack, load_event
from tests.flows.test_offboarding import wait_for_task_token

MACHINE = "OffboardingStateMachine"


@pytest.fixture
def openbao_on_disk() -> Iterator[LocalOpenBao]:
    """Its own server: it is killed and restarted, and keeps its state on disk across the restart."""
    with LocalOpenBao(storage="file") as server:
        yield server


def root_client(server: LocalOpenBao) -> hvac.Client:
    return hvac.Client(url=server.addr, token=server.root_token, timeout=10)


@dataclass
class Estate:
    target: SeededWorkload
    neighbour: SeededWorkload


@pytest.fixture
def estate(aws: None, openbao_on_disk: LocalOpenBao, unique: str) -> Estate:
    vault = root_client(openbao_on_disk)
    prepare_vault(vault)
    iam = boto3.client("iam")
    return Estate(
        target=seed_workload(vault, iam, f"crash-{unique}", f"spiffe://redrive.rescind/crash-{unique}"),
        neighbour=seed_workload(vault, iam, f"calm-{unique}", f"spiffe://redrive.rescind/calm-{unique}"),
    )


@dataclass
class Deployed:
    stack: LocalStack
    notifications_url: str

    @property
    def ledger(self) -> DynamoDbLedger:
        return DynamoDbLedger(self.stack.physical_id("LedgerTable"), boto3.client("dynamodb"))

    def executions(self) -> list[dict[str, Any]]:
        """Every execution of the offboarding machine, each waited for, oldest first."""
        sfn = boto3.client("stepfunctions")
        listed = sfn.list_executions(stateMachineArn=self.stack.state_machine_arn(MACHINE))["executions"]
        finished = [wait_for_execution(sfn, item["executionArn"], 90) for item in listed]
        return sorted(finished, key=lambda execution: execution["startDate"])

    def notifications(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs")
        found: list[dict[str, Any]] = []
        while batch := sqs.receive_message(QueueUrl=self.notifications_url, MaxNumberOfMessages=10).get("Messages", []):
            found += [json.loads(message["Body"]) for message in batch]
            for message in batch:
                sqs.delete_message(QueueUrl=self.notifications_url, ReceiptHandle=message["ReceiptHandle"])
        return found

    def closure_items(self, incident_id: str) -> list[dict[str, Any]]:
        """The closure records as stored: the ledger is append-only, so each run's closure is still there."""
        items = boto3.client("dynamodb").query(
            TableName=self.stack.physical_id("LedgerTable"),
            KeyConditionExpression="pk = :pk AND begins_with(sk, :closure)",
            ExpressionAttributeValues={":pk": {"S": f"INCIDENT#{incident_id}"}, ":closure": {"S": "C#CLOSURE#"}},
            ConsistentRead=True,
        )["Items"]
        return list(items)


@contextmanager
def deploy(server: LocalOpenBao, **parameters: str) -> Iterator[Deployed]:
    with deploy_local_stack(server, **parameters) as stack:
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="redrive-notifications")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        boto3.client("sns").subscribe(TopicArn=stack.physical_id("NotificationTopic"), Protocol="sqs", Endpoint=arn)
        yield Deployed(stack, url)


class CrashBeforeRevocation:
    """SIGKILLs OpenBao when the state machine invokes the acting function for its first revocation: containment
    is done, no revocation has started. Hooked on the Lambda client the state machine interpreter creates (the
    clients Rescind's handlers use to reach Vault are untouched: they meet a dead server)."""

    def __init__(self, server: LocalOpenBao) -> None:
        self.server = server
        self.crashed = threading.Event()

    def before_invoke(self, params: dict[str, Any], **_: Any) -> None:
        payload = params.get("Payload")
        text = payload.decode() if isinstance(payload, bytes) else str(payload or "")
        if ".revoke." in text and not self.crashed.is_set():
            self.crashed.set()
            self.server.kill()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_create_client = botocore.client.ClientCreator.create_client

        def create_client(creator: Any, *args: Any, **kwargs: Any) -> Any:
            client = real_create_client(creator, *args, **kwargs)
            client.meta.events.register(
                "before-parameter-build.lambda.Invoke", self.before_invoke, unique_id="rescind-crash-before-revocation"
            )
            return client

        monkeypatch.setattr(botocore.client.ClientCreator, "create_client", create_client)


def termination_event(workload: SeededWorkload) -> dict[str, Any]:
    event = load_event("workload_terminated.json")
    event["id"] = str(uuid.uuid4())
    event["detail"]["workload_id"] = workload.spiffe_id
    return event


def test_a_crash_closes_failed_listing_what_is_unknown_and_a_redelivered_event_resumes_and_finishes_the_incident(
    openbao_on_disk: LocalOpenBao, estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = openbao_on_disk
    crash = CrashBeforeRevocation(server)
    crash.install(monkeypatch)
    event = termination_event(estate.target)
    incident_id = offboarding_execution_name(estate.target.spiffe_id, event["id"])
    with deploy(server) as deployed:
        # When the termination event arrives and OpenBao crashes after containment, before any revocation
        deployed.stack.route_event(event)
        (first,) = deployed.executions()
        assert crash.crashed.is_set(), "the run never reached revocation"

        # Then the run FAILED, and its closure accounts for every planned credential: the contained ones were
        # read back dead, the ones never reached are unknown; none is silently "not alive"
        assert first["status"] == "FAILED", first
        assert first["name"] == incident_id
        view = deployed.ledger.read_incident(incident_id)
        assert view.incident is not None
        assert view.closure is not None
        plan = view.incident.plan
        planned = {action.target.key for action in plan.actions}
        contained = {action.target.key for action in plan.actions if action.kind is ActionKind.DISABLE}
        assert contained
        assert planned - contained
        closure = view.closure
        assert closure.status is IncidentStatus.FAILED
        assert {standing.target.key for standing in closure.credentials} == planned
        assert {ref.key for ref in closure.in_state(CredentialState.DEAD)} == contained
        assert {ref.key for ref in closure.in_state(CredentialState.UNKNOWN)} == planned - contained
        assert closure.in_state(CredentialState.ALIVE) == closure.still_alive == ()
        assert closure.alive_is_unknown
        text = describe_alive(closure)
        assert "still alive: unknown" in text
        assert "still alive: nothing" not in text
        # and the notification names each credential that was not read back
        (notice,) = [n for n in deployed.notifications() if incident_id in n["Message"]]
        assert "Not read back, may be alive" in notice["Message"]
        assert all(key in notice["Message"] for key in planned - contained)
        first_attempts = {attempt.attempt_id: attempt for attempt in view.attempts}

        # When OpenBao is back and the same event is redelivered (a DLQ redrive)
        server.restart()
        deployed.stack.route_event(event)

        # Then a second execution ran for the same incident, under its own name, and succeeded
        executions = deployed.executions()
        assert [execution["name"] for execution in executions] == [incident_id, run_execution_name(incident_id, 2)]
        second = executions[1]
        assert second["status"] == "SUCCEEDED", second
        assert json.loads(second["input"])["incident_id"] == incident_id

        # and it resumed the recorded plan: the contained credentials come back already done, with their read-back,
        # and everything else was ended now
        resumed_view = deployed.ledger.read_incident(incident_id)
        assert resumed_view.incident == view.incident
        resumed = [a for a in resumed_view.attempts if a.attempt_id.startswith(f"{second['name']}.")]
        assert {a.result.action_id for a in resumed} == {action.action_id for action in plan.actions}
        for attempt in resumed:
            result = attempt.result
            assert result.evidence, result
            assert all(evidence.confirmed for evidence in result.evidence), result
            expected = (
                {Outcome.ALREADY_APPLIED, Outcome.ALREADY_ABSENT}
                if result.target.key in contained
                else {Outcome.SUCCEEDED}
            )
            assert result.outcome in expected, result

        # and nothing the first run wrote was overwritten: its attempts are all there, and both closures
        assert {a.attempt_id: a for a in resumed_view.attempts if a.attempt_id in first_attempts} == first_attempts
        assert sorted(item["status"]["S"] for item in deployed.closure_items(incident_id)) == ["completed", "failed"]
        final = resumed_view.closure
        assert final is not None
        assert final.status is IncidentStatus.COMPLETED
        assert {ref.key for ref in final.in_state(CredentialState.DEAD)} == planned
        assert not final.alive_is_unknown

        # and every credential of the workload is dead by use, its neighbour's alive
        vault = root_client(server)
        iam = boto3.client("iam")
        dead = prove_by_use(vault, server.addr, iam, estate.target, expected="dead")
        alive = prove_by_use(vault, server.addr, iam, estate.neighbour, expected="alive")
        assert [p for p in dead + alive if not p.passed] == []

        # When the event is redelivered once more, after the incident completed
        deployed.stack.route_event(event)

        # Then nothing new starts
        assert [execution["name"] for execution in deployed.executions()] == [
            execution["name"] for execution in executions
        ]


def test_a_redelivery_while_the_run_is_still_going_or_after_it_was_denied_starts_nothing(
    openbao_on_disk: LocalOpenBao, estate: Estate
) -> None:
    # Given a run that waits for approval (above the cap): it is RUNNING
    event = termination_event(estate.target)
    incident_id = offboarding_execution_name(estate.target.spiffe_id, event["id"])
    with deploy(openbao_on_disk, BlastRadiusCap="3") as deployed:
        deployed.stack.route_event(event)
        sfn = boto3.client("stepfunctions")
        machine = deployed.stack.state_machine_arn(MACHINE)
        (listed,) = sfn.list_executions(stateMachineArn=machine)["executions"]
        token = wait_for_task_token(sfn, listed["executionArn"])
        # (past the second within which Step Functions answers a same-name start with the running execution)
        time.sleep(1.2)

        # When the same event is redelivered while it waits
        deployed.stack.route_event(event)

        # Then it is the same one run: nothing new starts while it goes on
        assert [item["name"] for item in sfn.list_executions(stateMachineArn=machine)["executions"]] == [incident_id]

        # When the approver denies it, and the event is redelivered again
        sfn.send_task_failure(taskToken=token, error="ApprovalDenied", cause="not this one")
        assert wait_for_execution(sfn, listed["executionArn"], 60)["status"] == "FAILED"
        closure = deployed.ledger.read_incident(incident_id).closure
        assert closure is not None
        assert closure.status is IncidentStatus.REFUSED
        deployed.stack.route_event(event)

        # Then the denial stands: a refusal is an answer, not a failure to resume
        assert [item["name"] for item in sfn.list_executions(stateMachineArn=machine)["executions"]] == [incident_id]
