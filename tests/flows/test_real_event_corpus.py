"""Every payload of the real-event corpus (tests/corpus: published by AWS and GitHub, each with its origin in a
SOURCES.md) through the template's rules, the start function and the state machine, against OpenBao.

The decision for each file is written by hand in tests/corpus/decisions.toml. This checks that Rescind makes it,
and that the ledger and the notifications agree with it:

| decision   | executions | new incidents (closure status)          | notifications |
|------------|------------|-----------------------------------------|---------------|
| act        | 1 or more  | one per execution                       | 1 or more     |
| unresolved | none       | one, UNRESOLVED                          | exactly 1     |
| recorded   | none       | one, RECORDED                            | exactly 1     |
| refuse     | none       | one, REJECTED                            | exactly 1     |
| ignore     | none       | none                                    | none          |
"""

from __future__ import annotations

import copy
import json
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import hvac
import pytest

from rescind.inventory import DynamoDbInventory
from rescind.inventory.types import CloudResourceKind, WorkloadBinding
from rescind.leaks.github import fetch_alert_secret
from rescind.ledger import DynamoDbLedger, IncidentStatus
from rescind.offboarding.triggers import parse_termination_event
from rescind_local import LOCAL_ACCOUNT_ID, LocalOpenBao, local_aws
from rescind_local.github import SAMPLE_WEBHOOK_SECRET, local_github_api, sign_delivery
from rescind_local.seed import prepare_vault
from rescind_local.stack import LocalStack
from rescind_local.stepfunctions import wait_for_execution
from tests.conftest import deploy_local_stack, load_event

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
CASES: list[dict[str, Any]] = tomllib.loads((CORPUS / "decisions.toml").read_text())["case"]
DECISIONS = {"act", "unresolved", "recorded", "refuse", "ignore"}
CLOSED_AS = {
    "unresolved": IncidentStatus.UNRESOLVED,
    "recorded": IncidentStatus.RECORDED,
    "refuse": IncidentStatus.REJECTED,
}
MACHINES = ("OffboardingStateMachine", "LeakResponseStateMachine")
KIND_OF_SOURCE = {
    "aws.ec2": CloudResourceKind.EC2_INSTANCE,
    "aws.autoscaling": CloudResourceKind.EC2_INSTANCE,
    "aws.ecs": CloudResourceKind.ECS_TASK,
    "aws.lambda": CloudResourceKind.LAMBDA_FUNCTION,
}


def case_id(case: dict[str, Any]) -> str:
    return f"{case['file']}:{case['decision']}" + (":filled" if case.get("fill") else "")


EVENT_CASES = [case for case in CASES if case.get("shape", "event") != "rest"]
REST_CASES = [case for case in CASES if case.get("shape") == "rest"]


# --- the corpus itself ----------------------------------------------------------------------------------------


def test_the_corpus_is_real_sourced_and_every_file_has_a_decision() -> None:
    files = {path.relative_to(CORPUS).as_posix() for path in CORPUS.rglob("*.json")}
    decided = {case["file"] for case in CASES}
    reference_only = {"github/rest_locations.json", "github/rest_locations.ghes-3.6.json"}
    assert decided <= files, decided - files
    assert files - decided == reference_only
    assert len(files) >= 30
    assert {case["decision"] for case in CASES} == DECISIONS
    assert all(case.get("why") for case in CASES)
    for folder in {path.parent for path in CORPUS.rglob("*.json")}:
        sources = (folder / "SOURCES.md").read_text()
        for path in folder.glob("*.json"):
            assert f"`{path.name}`" in sources, f"{path} has no origin in {folder / 'SOURCES.md'}"


# --- delivering one case --------------------------------------------------------------------------------------


@dataclass
class Observed:
    """What the stack did with one case: its executions, its new incidents, its notifications."""

    executions: list[dict[str, Any]] = field(default_factory=list)
    incidents: dict[str, IncidentStatus | None] = field(default_factory=dict)
    notifications: list[str] = field(default_factory=list)
    webhook_status: int | None = None


class CorpusStack:
    """One local stack for the module; each case is measured by what it added."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.ledger = DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb"))
        self.inventory = DynamoDbInventory(stack.physical_id("InventoryTable"), boto3.client("dynamodb"))
        self.sfn = boto3.client("stepfunctions")
        self.sqs = boto3.client("sqs")
        self.queue = self.sqs.create_queue(QueueName="corpus-notifications")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        boto3.client("sns").subscribe(
            TopicArn=stack.physical_id("NotificationTopic"), Protocol="sqs", Endpoint=queue_arn
        )
        boto3.client("secretsmanager").put_secret_value(
            SecretId=stack.physical_id("GitHubWebhookSecret"), SecretString=SAMPLE_WEBHOOK_SECRET.decode()
        )

    def _executions(self) -> set[str]:
        return {
            run["executionArn"]
            for machine in MACHINES
            for run in self.sfn.list_executions(stateMachineArn=self.stack.state_machine_arn(machine))["executions"]
        }

    def _notifications(self) -> list[str]:
        messages = []
        while batch := self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", []):
            for message in batch:
                messages.append(json.loads(message["Body"]).get("Subject", ""))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
        return messages

    def deliver(self, case: dict[str, Any], payload: Any) -> Observed:
        self._notifications()
        runs_before = self._executions()
        incidents_before = {i.incident_id for i in self.ledger.list_incidents()}
        observed = Observed()
        if case.get("shape") == "webhook":
            answer, error = self.stack.invoke("GitHubWebhookFunction", webhook_delivery(case["file"], payload))
            assert error is None, answer
            observed.webhook_status = int(answer["statusCode"])
        else:
            self.stack.route_event(payload)
        for arn in sorted(self._executions() - runs_before):
            observed.executions.append(wait_for_execution(self.sfn, arn))
        for incident in self.ledger.list_incidents():
            if incident.incident_id not in incidents_before:
                closure = self.ledger.read_incident(incident.incident_id).closure
                observed.incidents[incident.incident_id] = closure.status if closure else None
        observed.notifications = self._notifications()
        return observed

    def bind(self, event: dict[str, Any]) -> None:
        """The event's resource, bound to a workload (that holds nothing) in the event's account and region."""
        cloud_id = parse_termination_event(event).cloud_id
        assert cloud_id is not None
        self.inventory.bind(
            WorkloadBinding(
                cloud_id=cloud_id,
                kind=KIND_OF_SOURCE[event["source"]],
                workload_id=f"spiffe://corpus.rescind/{uuid.uuid4().hex[:12]}",
                account_id=event["account"],
                region=event["region"],
                seen_at=datetime.now(UTC),
            )
        )


@pytest.fixture(scope="module")
def corpus_stack(openbao: LocalOpenBao) -> Iterator[CorpusStack]:
    # The mounts the stack's discovery scope names, so an offboarding can plan
    prepare_vault(hvac.Client(url=openbao.addr, token=openbao.root_token, timeout=10))
    with (
        local_aws(),
        deploy_local_stack(openbao) as stack,
    ):
        yield CorpusStack(stack)


def load_payload(case: dict[str, Any]) -> Any:
    payload = json.loads((CORPUS / case["file"]).read_text())
    if case.get("shape") == "finding":
        payload = guardduty_event(payload)
    return fill_placeholders(payload, case.get("fill") or {})


def guardduty_event(finding: dict[str, Any]) -> dict[str, Any]:
    """A finding in the envelope the GuardDuty user guide documents for EventBridge (a partial one completed)."""
    detail = finding.get("detail", finding)
    return {
        "version": "0",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, json.dumps(detail, sort_keys=True))),
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "account": detail.get("accountId", LOCAL_ACCOUNT_ID),
        "time": detail.get("updatedAt") or detail.get("createdAt"),
        "region": detail.get("region") or finding.get("region"),
        "resources": [],
        "detail": detail,
    }


def fill_placeholders(payload: Any, fill: dict[str, str]) -> Any:
    """Each placeholder string value replaced, wherever it is a whole value, by a real one made here."""
    if not fill:
        return payload
    iam = boto3.client("iam")
    user = f"corpus-{uuid.uuid4().hex[:8]}"
    made: dict[str, str] = {"time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "account": LOCAL_ACCOUNT_ID}
    if {"access_key_id", "iam_user"} & set(fill.values()):
        iam.create_user(UserName=user)
        made["access_key_id"] = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
        made["iam_user"] = user
    values = {placeholder: made[kind] for placeholder, kind in fill.items()}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return values.get(node, node) if isinstance(node, str) else node

    return walk(payload)


def webhook_delivery(file: str, body: dict[str, Any]) -> dict[str, Any]:
    """The body as GitHub posts it to the function URL (the sample delivery's headers), signed for the stack."""
    delivery = load_event("github_secret_scanning_webhook.json")
    event_name = "ping" if "zen" in body else "secret_scanning_alert"
    if "location" in body:
        event_name = "secret_scanning_alert_location"
    delivery["headers"]["x-github-event"] = event_name
    delivery["body"] = json.dumps(body)
    delivery["headers"]["content-length"] = str(len(delivery["body"]))
    return sign_delivery(delivery, SAMPLE_WEBHOOK_SECRET, delivery_id=str(uuid.uuid4()))


# --- the cases ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", EVENT_CASES, ids=case_id)
def test_each_real_payload_is_decided_as_written_and_the_ledger_and_notifications_agree(
    case: dict[str, Any], corpus_stack: CorpusStack
) -> None:
    # Given a payload AWS or GitHub published (its placeholders filled where the case says so), and, for a
    # termination the case acts on, its resource bound to a workload
    payload = load_payload(case)
    if isinstance(payload, dict) and "detail-type" in payload:
        # EventBridge gives every event its own id; some published examples share one (a fixture copied a doc).
        payload["id"] = str(uuid.uuid4())
    if case.get("bind"):
        corpus_stack.bind(payload)

    # When it arrives as it would on AWS
    observed = corpus_stack.deliver(case, copy.deepcopy(payload))

    # Then Rescind decides as written, and the ledger and notifications say the same
    decision = case["decision"]
    if decision == "act":
        assert observed.executions, observed
        assert all(run["status"] == "SUCCEEDED" for run in observed.executions), observed.executions
        assert set(observed.incidents) >= {run["name"] for run in observed.executions}, observed
        assert observed.notifications, observed
    else:
        assert observed.executions == [], observed.executions
    if decision in CLOSED_AS:
        assert list(observed.incidents.values()) == [CLOSED_AS[decision]], observed
        assert len(observed.notifications) == 1, observed.notifications
    if decision == "ignore":
        assert observed.incidents == {}, observed
        assert observed.notifications == [], observed.notifications
    if observed.webhook_status is not None:
        assert observed.webhook_status == (202 if decision != "ignore" else 200), observed


@pytest.mark.parametrize("case", REST_CASES, ids=case_id)
def test_the_alert_reader_reads_each_published_rest_alert(case: dict[str, Any]) -> None:
    # Given GitHub's own example answer of GET /repos/{owner}/{repo}/secret-scanning/alerts/{n}
    document = json.loads((CORPUS / case["file"]).read_text())
    with local_github_api() as github:
        github.add_document("octo-org/octo-repo", int(document["number"]), document)

        # When the leak responder reads the alert's value
        value = fetch_alert_secret(github.url, "ghp_reader", "octo-org/octo-repo", int(document["number"]))

    # Then it is the value GitHub's answer carries
    assert value == document["secret"]
