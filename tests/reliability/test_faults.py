"""AWS throttling and 5xx errors in the middle of an offboarding and a leak response, on the local stack.

moto cannot throttle, so every botocore client the handlers create gets a `before-call` hook that answers the
chosen operations with the error response AWS would send (ThrottlingException 400, InternalFailure 500,
ServiceUnavailable 503, 502) for their first N calls. The real code then does what it does on AWS: botocore
raises ClientError, Rescind types it (AwsThrottled, AwsUnavailable), the state machine's Retry runs the task again.

After recovery every credential is proved dead by use and the ledger holds every attempt, the failed ones
included. A failure that outlasts its retries ends as a FAILED execution, a PARTIAL closure naming what is alive,
and a notification read from a queue subscribed to the topic: never a silent drop.

The template side (every rule has a DLQ, every asynchronous function an on-failure destination) is proved by
tests/infra/test_template.py and the E9002/E9003 rules in tests/infra/test_cfnlint_rules.py.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.client
import hvac
import pytest

from rescind.ledger import DynamoDbLedger, IncidentStatus, Trigger
from rescind.ledger.types import IncidentView
from rescind.models import CredentialKind, Outcome
from rescind.offboarding.types import offboarding_execution_name
from rescind.response.types import ResponseRequest
from rescind_local import LocalOpenBao
from rescind_local.proof import prove_by_use
from rescind_local.seed import SeededWorkload, prepare_vault, seed_workload
from rescind_local.stack import LocalStack
from rescind_local.stepfunctions import wait_for_execution
from tests.conftest import deploy_local_stack, load_event

THROTTLED = (400, "ThrottlingException", "Rate exceeded")
INTERNAL = (500, "InternalFailure", "We encountered an internal error. Please try again.")
UNAVAILABLE = (503, "ServiceUnavailable", "Service is unavailable. Please try again.")
BAD_GATEWAY = (502, "BadGateway", "Bad gateway")


class _HttpResponse:
    """What botocore's before-call contract wants as the raw response: only the status code is read."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}
        self.content = b""
        self.text = ""


@dataclass
class FaultInjector:
    """Answers `service:Operation` with the listed errors, one per call, then lets calls through."""

    planned: dict[str, list[tuple[int, str, str]]]
    forever: set[str] = field(default_factory=set)
    calls: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)

    def before_call(self, *, model: Any, **_: Any) -> tuple[_HttpResponse, dict[str, Any]] | None:
        operation = f"{model.service_model.service_name}:{model.name}"
        self.calls[operation] += 1
        queue = self.planned.get(operation) or []
        if operation in self.forever:
            status, code, message = THROTTLED
        elif queue:
            status, code, message = queue.pop(0)
        else:
            return None
        self.injected[operation] += 1
        body = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return _HttpResponse(status), body

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Every client created from now on (the handlers' included) carries the hook."""
        real_create_client = botocore.client.ClientCreator.create_client

        def create_client(creator: Any, *args: Any, **kwargs: Any) -> Any:
            client = real_create_client(creator, *args, **kwargs)
            client.meta.events.register("before-call", self.before_call, unique_id="rescind-fault-injector")
            return client

        monkeypatch.setattr(botocore.client.ClientCreator, "create_client", create_client)


# --- the stack and its estate --------------------------------------------------------------------------------


@dataclass
class Deployed:
    stack: LocalStack
    notifications_url: str

    @property
    def ledger(self) -> DynamoDbLedger:
        return DynamoDbLedger(self.stack.physical_id("LedgerTable"), boto3.client("dynamodb"))

    def notifications(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs")
        found: list[dict[str, Any]] = []
        while batch := sqs.receive_message(QueueUrl=self.notifications_url, MaxNumberOfMessages=10).get("Messages", []):
            found += [json.loads(message["Body"]) for message in batch]
            for message in batch:
                sqs.delete_message(QueueUrl=self.notifications_url, ReceiptHandle=message["ReceiptHandle"])
        return found


@contextmanager
def deploy(openbao: LocalOpenBao) -> Iterator[Deployed]:
    with deploy_local_stack(openbao) as stack:  # the Retry intervals (2 s, backoff 2) sleep for real, scaled
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="fault-notifications")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        boto3.client("sns").subscribe(TopicArn=stack.physical_id("NotificationTopic"), Protocol="sqs", Endpoint=arn)
        yield Deployed(stack, url)


@pytest.fixture
def workload(aws: None, vault: hvac.Client, unique: str) -> SeededWorkload:
    prepare_vault(vault)
    return seed_workload(vault, boto3.client("iam"), f"fault-{unique}", f"spiffe://faults.rescind/{unique}")


def offboarding_request(workload: SeededWorkload) -> ResponseRequest:
    event_id = str(uuid.uuid4())
    return ResponseRequest(
        incident_id=offboarding_execution_name(workload.spiffe_id, event_id),
        workload_id=workload.spiffe_id,
        reason="workload terminated",
        trigger=Trigger(
            source="rescind", detail_type="Workload Terminated", event_id=event_id, workload_id=workload.spiffe_id
        ),
        terminated_at=datetime.now(UTC),
    )


def attempts_by_action(view: IncidentView) -> dict[str, list[tuple[str, Outcome, str | None]]]:
    found: dict[str, list[tuple[str, Outcome, str | None]]] = {}
    for attempt in view.attempts:
        found.setdefault(attempt.result.action_id, []).append(
            (attempt.attempt_id, attempt.result.outcome, attempt.result.error_type)
        )
    return found


def assert_every_action_verified_once_recovered(view: IncidentView) -> None:
    """Each planned action has a succeeded, confirmed attempt, and every failed attempt is a transient one."""
    assert view.incident is not None
    planned = {action.action_id for action in view.incident.plan.actions}
    assert set(attempts_by_action(view)) == planned
    for attempt in view.attempts:
        result = attempt.result
        assert result.outcome in {Outcome.SUCCEEDED, Outcome.ALREADY_APPLIED, Outcome.ALREADY_ABSENT, Outcome.FAILED}
        if result.outcome is Outcome.FAILED:
            assert result.error_type in ("AwsThrottled", "AwsUnavailable"), result
    for action_id, attempts in attempts_by_action(view).items():
        assert any(outcome.is_success for _, outcome, _ in attempts), (action_id, attempts)
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.COMPLETED
    assert view.closure.still_alive == ()


# --- recovery ---------------------------------------------------------------------------------------------------


def test_throttling_and_5xx_during_an_offboarding_are_retried_and_every_credential_ends(
    openbao: LocalOpenBao, vault: hvac.Client, workload: SeededWorkload, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given IAM throttles the guard's read of the user's tags once, and answers the key's deactivation with
    # throttling, a 500 and a 503 before it recovers
    faults = FaultInjector(
        planned={
            "iam:ListUserTags": [THROTTLED],
            "iam:UpdateAccessKey": [THROTTLED, INTERNAL, UNAVAILABLE],
        }
    )
    faults.install(monkeypatch)
    request = offboarding_request(workload)
    with deploy(openbao) as deployed:
        # When the workload is offboarded
        execution = deployed.stack.run_execution(
            "OffboardingStateMachine", request.model_dump(mode="json"), name=request.incident_id, timeout=60
        )
        view = deployed.ledger.read_incident(request.incident_id)
        notifications = deployed.notifications()

    # Then every injected fault was met and retried past
    assert faults.injected == Counter({"iam:UpdateAccessKey": 3, "iam:ListUserTags": 1})
    assert faults.calls["iam:UpdateAccessKey"] == 4
    assert faults.calls["iam:ListUserTags"] >= 2
    # and the run succeeded with every credential verified, proved dead by use
    assert execution["status"] == "SUCCEEDED", execution
    dead = prove_by_use(vault, openbao.addr, boto3.client("iam"), workload, expected="dead")
    assert [proof.credential for proof in dead if not proof.passed] == []
    # and the ledger lost nothing: the key's three failed attempts and its success, each under its own id
    assert_every_action_verified_once_recovered(view)
    by_action = attempts_by_action(view)
    (key_id,) = {a.result.action_id for a in view.attempts if a.result.target.kind is CredentialKind.IAM_ACCESS_KEY}
    outcomes = [outcome for _, outcome, _ in by_action[key_id]]
    assert sorted(outcomes) == sorted([Outcome.FAILED] * 3 + [Outcome.SUCCEEDED])
    assert len({attempt_id for attempt_id, _, _ in by_action[key_id]}) == 4
    # and the completion was notified
    assert [n["Subject"] for n in notifications if request.incident_id in n["Message"]]


def test_throttling_during_a_leak_response_is_retried_and_the_key_is_deleted(
    openbao: LocalOpenBao, workload: SeededWorkload, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given IAM answers the deactivation with a 502 and the deletion with throttling twice
    faults = FaultInjector(
        planned={"iam:UpdateAccessKey": [BAD_GATEWAY], "iam:DeleteAccessKey": [THROTTLED, THROTTLED]}
    )
    faults.install(monkeypatch)
    (key_id,) = workload.access_key_ids
    event = load_event("secret_leaked.json")
    event["id"] = str(uuid.uuid4())
    event["detail"].update(secret_type="aws_access_key", secret=key_id)
    with deploy(openbao) as deployed:
        # When the leaked key is reported
        deployed.stack.route_event(event)
        sfn = boto3.client("stepfunctions")
        listed = sfn.list_executions(stateMachineArn=deployed.stack.state_machine_arn("LeakResponseStateMachine"))
        (run,) = [wait_for_execution(sfn, item["executionArn"], 60) for item in listed["executions"]]
        view = deployed.ledger.read_incident(run["name"])

    # Then both faults were retried past, the key is gone, and the ledger holds every attempt
    assert faults.injected == Counter({"iam:DeleteAccessKey": 2, "iam:UpdateAccessKey": 1})
    assert run["status"] == "SUCCEEDED", run
    assert boto3.client("iam").list_access_keys(UserName=workload.iam_user)["AccessKeyMetadata"] == []
    assert_every_action_verified_once_recovered(view)
    assert sorted(str(a.result.outcome) for a in view.attempts) == sorted(
        ["failed", "succeeded", "failed", "failed", "succeeded"]
    )


# --- a failure that outlasts its retries ----------------------------------------------------------------------


def test_a_fault_that_outlasts_its_retries_fails_the_run_and_is_notified(
    openbao: LocalOpenBao, vault: hvac.Client, workload: SeededWorkload, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given IAM throttles every deactivation of the key, for longer than the state machine retries
    faults = FaultInjector(planned={}, forever={"iam:UpdateAccessKey"})
    faults.install(monkeypatch)
    request = offboarding_request(workload)
    with deploy(openbao) as deployed:
        # When the workload is offboarded
        execution = deployed.stack.run_execution(
            "OffboardingStateMachine", request.model_dump(mode="json"), name=request.incident_id, timeout=60
        )
        view = deployed.ledger.read_incident(request.incident_id)
        notifications = deployed.notifications()

    # Then the task was tried once and retried four times (the ASL's MaxAttempts), each attempt in the ledger
    assert faults.calls["iam:UpdateAccessKey"] == 5
    key_attempts = [a for a in view.attempts if a.result.target.kind is CredentialKind.IAM_ACCESS_KEY]
    assert [(a.result.outcome, a.result.error_type) for a in key_attempts] == [(Outcome.FAILED, "AwsThrottled")] * 5
    # and the execution FAILED, its closure names the key as alive, and the rest is dead
    assert execution["status"] == "FAILED", execution
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.PARTIAL
    assert [ref.kind for ref in view.closure.still_alive] == [CredentialKind.IAM_ACCESS_KEY]
    proofs = {
        p.credential: p.passed
        for p in prove_by_use(vault, openbao.addr, boto3.client("iam"), workload, expected="dead")
    }
    assert proofs.pop(f"access key {workload.access_key_ids[0]}") is False  # still active
    assert all(proofs.values()), proofs
    # and a notification says so, naming the incident and the live key (not a silent drop)
    (notice,) = [n for n in notifications if request.incident_id in n["Message"]]
    assert workload.access_key_ids[0] in notice["Message"]
