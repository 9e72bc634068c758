"""Secret hygiene: seed known secret values, run every flow, and find none of them anywhere Rescind writes.

The flows: a termination event through offboarding, a manual revocation (as `rescind revoke` starts it), each
leak trigger (the generic event for every kind, AWS Health, GuardDuty, a KV value found by its fingerprint,
GitHub's webhook with a local stand-in for its REST API), a refused event carrying a value, and the five
schedules. The places searched: every log line (Powertools' JSON logs on stdout, and logging records), every
tracer annotation and metadata (recorded as the handlers put them; tracing itself is off locally), every
execution history of every state machine, every item of every table, every notification (an SQS queue
subscribed to the topic), every event on the bus (a catch-all rule to SQS), the failure queues and the
inventory report bucket.

The values: Vault tokens, AppRole secret-ids, KV values (the seeded ones and the ones Rescind rotated to), a PEM
private key, an AWS secret access key, the functions' Vault token, the GitHub webhook secret and API token, and
the fingerprint key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import hvac
import pytest

from rescind.fingerprints.dynamodb import DynamoDbFingerprintIndex
from rescind.fingerprints.indexing import index_kv_mount
from rescind.fingerprints.runtime import read_fingerprint_key
from rescind_cli.runs.subject import build_request, parse_subject
from rescind_local import LocalOpenBao
from rescind_local.github import SAMPLE_WEBHOOK_SECRET, local_github_api
from rescind_local.proof import prove_by_use
from rescind_local.seed import (
    KV_MOUNT,
    MANAGED_ROLE_TAGS,
    PKI_MOUNT,
    SeededWorkload,
    health_event_naming,
    prepare_vault,
    seed_workload,
)
from rescind_local.stack import LocalStack
from rescind_local.stepfunctions import wait_for_execution
from tests.conftest import deploy_local_stack, load_event

SCHEDULES = ("RotationByAgeSchedule", "TtlCeilingsSchedule", "OrphansSchedule", "PkiHygieneSchedule")
INVENTORY_REPORT = "InventoryReportSchedule"


# --- recording the tracer ------------------------------------------------------------------------------------


@dataclass
class TraceRecorder:
    """Every annotation and metadata the handlers put, through the Tracer or on a (dummy) subsegment."""

    entries: list[str] = field(default_factory=list)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from aws_lambda_powertools import Tracer
        from aws_xray_sdk.core.models.dummy_entities import DummySegment, DummySubsegment
        from aws_xray_sdk.core.models.entity import Entity

        for owner in (Tracer, Entity, DummySegment, DummySubsegment):
            for method in ("put_annotation", "put_metadata"):
                monkeypatch.setattr(owner, method, self._recording(owner, method, getattr(owner, method)))

    def _recording(self, owner: type, method: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def record(this: Any, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
            self.entries.append(f"{owner.__name__}.{method} {key}={value!r}")
            return real(this, key, value, *args, **kwargs)

        return record

    @property
    def text(self) -> str:
        return "\n".join(self.entries)


def point_powertools_logs_at(stream: Any, monkeypatch: pytest.MonkeyPatch) -> int:
    """Handler modules stay imported for the session (warm containers), and a Powertools Logger keeps the stdout
    of the test that first imported it: point every Powertools log handler at this test's stdout."""
    from aws_lambda_powertools.logging.formatter import BasePowertoolsFormatter

    pointed = 0
    for logger in list(logging.root.manager.loggerDict.values()):
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and isinstance(handler.formatter, BasePowertoolsFormatter):
                monkeypatch.setattr(handler, "stream", stream)
                pointed += 1
    return pointed


# --- the sinks -----------------------------------------------------------------------------------------------


def subscribed_queue(name: str) -> tuple[str, str]:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def drain(url: str) -> list[str]:
    sqs = boto3.client("sqs")
    bodies: list[str] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [message["Body"] for message in batch]
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    return bodies


@dataclass
class Sinks:
    notifications_url: str
    bus_url: str

    @classmethod
    def attach(cls, stack: LocalStack) -> Sinks:
        notifications_url, notifications_arn = subscribed_queue("hygiene-notifications")
        boto3.client("sns").subscribe(
            TopicArn=stack.physical_id("NotificationTopic"), Protocol="sqs", Endpoint=notifications_arn
        )
        bus_url, bus_arn = subscribed_queue("hygiene-bus")
        events = boto3.client("events")
        events.put_rule(Name="hygiene-everything", EventPattern=json.dumps({"source": [{"prefix": ""}]}))
        events.put_targets(Rule="hygiene-everything", Targets=[{"Id": "everything", "Arn": bus_arn}])
        return cls(notifications_url, bus_url)

    def collect(self, stack: LocalStack) -> dict[str, str]:
        """Every place, as text. Histories of every execution of every state machine, every table's items."""
        sfn, dynamodb, s3 = boto3.client("stepfunctions"), boto3.client("dynamodb"), boto3.client("s3")
        histories = []
        for machine in stack.state_machines.values():
            for execution in sfn.list_executions(stateMachineArn=machine)["executions"]:
                described = wait_for_execution(sfn, execution["executionArn"], 60)
                events = sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)
                histories.append(json.dumps([described, events["events"]], default=str))
        tables = [
            json.dumps(dynamodb.scan(TableName=resource.ref)["Items"])
            for resource in stack.resources.values()
            if resource.resource_type == "AWS::DynamoDB::Table"
        ]
        queues = [
            "\n".join(drain(resource.ref))
            for resource in stack.resources.values()
            if resource.resource_type == "AWS::SQS::Queue"
        ]
        objects = []
        for resource in stack.resources.values():
            if resource.resource_type == "AWS::S3::Bucket":
                for item in s3.list_objects_v2(Bucket=resource.ref).get("Contents", []):
                    objects.append(s3.get_object(Bucket=resource.ref, Key=item["Key"])["Body"].read().decode())
        return {
            "execution history": "\n".join(histories),
            "tables": "\n".join(tables),
            "notifications": "\n".join(drain(self.notifications_url)),
            "bus": "\n".join(drain(self.bus_url)),
            "failure queues": "\n".join(queues),
            "reports": "\n".join(objects),
        }


# --- the estate ----------------------------------------------------------------------------------------------


@dataclass
class Secrets:
    """Secret values by what they are. Kept in the test only."""

    values: dict[str, str] = field(default_factory=dict)

    def add(self, what: str, value: str) -> None:
        assert len(value) >= 16, what  # long enough that a chance match is impossible
        self.values[what] = value

    def add_pem(self, what: str, pem: str) -> None:
        self.add(what, pem)
        body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
        for index, line in enumerate(body):
            if len(line) >= 16:
                self.add(f"{what} line {index}", line)

    def found_in(self, places: dict[str, str]) -> list[str]:
        return [
            f"{what} in the {place}"
            for what, value in self.values.items()
            for place, text in places.items()
            if value in text
        ]


def seed_secrets(secrets_: Secrets, vault: hvac.Client, workload: SeededWorkload, label: str) -> None:
    for accessor in workload.token_accessors:
        secrets_.add(f"{label} token {accessor}", workload.token_value(accessor))
    for accessor in workload.secret_id_accessors:
        secrets_.add(f"{label} secret-id {accessor}", workload.secret_id_value(accessor))
    for path in workload.kv_paths:
        secrets_.add(f"{label} kv {path} password", workload.kv_before(path)["password"])
    # A certificate with its private key, for the workload's SPIFFE ID (discovered by its URI SAN)
    issued = vault.secrets.pki.generate_certificate(
        "workload",
        f"key-{workload.name}.rescind.demo",
        extra_params={"uri_sans": workload.spiffe_id},
        mount_point=PKI_MOUNT,
    )["data"]
    workload.certificate_serials.append(issued["serial_number"])
    workload._certificate_pems[issued["serial_number"]] = issued["certificate"]
    secrets_.add_pem(f"{label} private key", issued["private_key"])
    # A second access key, whose secret part the test keeps
    key = boto3.client("iam").create_access_key(UserName=workload.iam_user)["AccessKey"]
    workload.access_key_ids.append(key["AccessKeyId"])
    secrets_.add(f"{label} AWS secret access key", key["SecretAccessKey"])


def generic_event(secret_type: str, **detail: Any) -> dict[str, Any]:
    event = load_event("secret_leaked.json")
    event["id"] = str(uuid.uuid4())
    event["detail"]["secret_type"] = secret_type
    del event["detail"]["secret"]
    event["detail"].update(detail)
    return event


@pytest.fixture
def openbao_alone() -> Iterator[LocalOpenBao]:
    """A server of its own: the schedules run for real here, and lower TTL ceilings server-wide."""
    with LocalOpenBao() as server:
        yield server


def test_no_seeded_secret_reaches_any_log_trace_history_table_notification_event_or_queue(
    aws: None,
    openbao_alone: LocalOpenBao,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO")
    point_powertools_logs_at(sys.stdout, monkeypatch)  # sys.stdout is capsys's here
    tracer = TraceRecorder()
    tracer.install(monkeypatch)
    openbao = openbao_alone
    vault = hvac.Client(url=openbao.addr, token=openbao.root_token, timeout=10)
    known = Secrets()
    known.add("the functions' Vault token", openbao.root_token)
    known.add("the GitHub webhook secret", SAMPLE_WEBHOOK_SECRET.decode())
    github_token = "ghp_" + secrets.token_hex(18)
    known.add("the GitHub API token", github_token)
    secretsmanager = boto3.client("secretsmanager")
    token_arn = secretsmanager.create_secret(Name="hygiene-github-token", SecretString=github_token)["ARN"]

    with (
        local_github_api() as github,
        deploy_local_stack(openbao, GitHubTokenSecretArn=token_arn, GitHubApiUrl=github.url) as stack,
    ):
        sinks = Sinks.attach(stack)
        secretsmanager.put_secret_value(
            SecretId=stack.physical_id("GitHubWebhookSecret"), SecretString=SAMPLE_WEBHOOK_SECRET.decode()
        )
        fingerprint_key = read_fingerprint_key(secretsmanager, stack.physical_id("FingerprintKeySecret"))
        known.add("the fingerprint key", fingerprint_key.hex())

        # Given three workloads, each holding every kind of credential, with their values known
        prepare_vault(vault)
        iam = boto3.client("iam")
        ended = seed_workload(vault, iam, "hygiene-ended", "spiffe://hygiene.rescind/ended")
        leaked = seed_workload(vault, iam, "hygiene-leaked", "spiffe://hygiene.rescind/leaked", tokens=3)
        manual = seed_workload(vault, iam, "hygiene-manual", "spiffe://hygiene.rescind/manual")
        for label, workload in (("ended", ended), ("leaked", leaked), ("manual", manual)):
            seed_secrets(known, vault, workload, label)
        index = DynamoDbFingerprintIndex(stack.physical_id("FingerprintTable"), boto3.client("dynamodb"))
        index_kv_mount(vault, index, fingerprint_key, KV_MOUNT, prefix=f"apps/{leaked.name}/")
        account = boto3.client("sts").get_caller_identity()["Account"]

        # When a termination event ends the first workload
        terminated = load_event("workload_terminated.json")
        terminated["id"] = str(uuid.uuid4())
        terminated["account"] = account
        terminated["detail"]["workload_id"] = ended.spiffe_id
        stack.route_event(terminated)

        # And each leak trigger reports one of the second workload's credentials
        token_by_value, token_by_github, token_refused = leaked.token_accessors
        (secret_id,) = leaked.secret_id_accessors
        seeded_serial, keyed_serial = leaked.certificate_serials
        first_key, second_key = leaked.access_key_ids
        kv_password = leaked.kv_before(leaked.kv_paths[0])["password"]
        health = load_event("health_risk_credentials_exposed.json")
        health["id"] = str(uuid.uuid4())
        health_event_naming(health, account, [second_key])
        guardduty = load_event("guardduty_instance_credential_exfiltration.json")
        guardduty["account"] = guardduty["detail"]["accountId"] = account
        iam.create_role(
            RoleName=guardduty["detail"]["resource"]["accessKeyDetails"]["userName"],
            AssumeRolePolicyDocument="{}",
            Tags=MANAGED_ROLE_TAGS,
        )
        for event in (
            generic_event("vault_token", secret=leaked.token_value(token_by_value)),
            generic_event("vault_secret_id", secret=leaked.secret_id_value(secret_id)),
            generic_event("certificate", secret=leaked.certificate_pem(keyed_serial)),
            generic_event("aws_access_key", secret=first_key),
            generic_event("kv_value", secret_sha256=hashlib.sha256(kv_password.encode()).hexdigest()),
            generic_event("slack_token", secret=leaked.token_value(token_refused)),  # refused, value and all
            health,
            guardduty,
        ):
            stack.route_event(event)
        delivery = load_event("github_secret_scanning_webhook.json")
        alert = json.loads(delivery["body"])
        github.add_alert(
            alert["repository"]["full_name"], alert["alert"]["number"], leaked.token_value(token_by_github)
        )
        accepted, _ = stack.invoke("GitHubWebhookFunction", delivery)
        assert accepted["statusCode"] == 202

        # And a responder revokes the third workload's token and secret-id by name (as `rescind revoke` does)
        request = build_request(
            parse_subject(
                None,
                [
                    f"vault-token:accessor:{manual.token_accessors[0]}",
                    f"approle:approle:{manual.name}:{manual.secret_id_accessors[0]}",
                ],
            ),
            reason="hygiene: revoked by hand",
            ticket="INC-4242",
            requested_by="arn:aws:iam::123456789012:user/responder",
            dry_run=False,
        )
        manual_run = stack.run_execution(
            "ManualRevocationStateMachine", request.model_dump(mode="json"), name=request.incident_id, timeout=60
        )

        # And every schedule runs, then the inventory report
        schedule_errors = {name: stack.run_schedule(name)[1] for name in (*SCHEDULES, INVENTORY_REPORT)}

        # (the values Rescind rotated the KV secrets to are secrets too)
        for workload in (ended, leaked):
            path = workload.kv_paths[0]
            current = vault.secrets.kv.v2.read_secret_version(
                path, mount_point=KV_MOUNT, raise_on_deleted_version=True
            )["data"]["data"]
            assert current != workload.kv_before(path), f"{path} was not rotated"
            known.add(f"{workload.name} rotated kv password", str(current["password"]))

        places = sinks.collect(stack)

    # Then every flow did its work (so there was something to leak),
    assert manual_run["status"] == "SUCCEEDED", manual_run
    assert schedule_errors == dict.fromkeys(schedule_errors)
    dead = prove_by_use(vault, openbao.addr, iam_client(), ended, expected="dead")
    assert [proof.credential for proof in dead if not proof.passed] == []
    alive = {
        proof.credential: proof.passed
        for proof in prove_by_use(vault, openbao.addr, iam_client(), leaked, expected="alive")
    }
    for credential in (
        f"token {token_by_value}",
        f"token {token_by_github}",
        f"secret-id {secret_id}",
        f"certificate {keyed_serial}",
        f"kv {KV_MOUNT}/{leaked.kv_paths[0]}",
    ):
        assert alive[credential] is False, f"{credential} survived its leak"
    assert alive[f"token {token_refused}"] is True  # the refused event acted on nothing
    assert alive[f"certificate {seeded_serial}"] is True

    # and every place was really captured,
    output = capsys.readouterr()
    places["logs"] = output.out + output.err + caplog.text
    places["tracer"] = tracer.text
    assert '"level":"INFO"' in places["logs"].replace(" ", "")  # Powertools' JSON lines
    assert "outcome=" in places["tracer"]
    assert "Credential Revoked" in places["bus"]
    assert "Offboarding Completed" in places["bus"] or "Offboarding Completed" in places["notifications"]
    assert places["notifications"]
    assert "leak event refused" in places["logs"]
    assert places["reports"]

    # and no seeded or rotated value is in any of them
    assert known.found_in(places) == []


def iam_client() -> Any:
    return boto3.client("iam")


def test_the_search_finds_a_value_where_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    # The search above must be able to fail: a value in a log line, or a line of a PEM body, is found.
    known = Secrets()
    known.add("a token", "hvs." + "A" * 40)
    known.add_pem("a key", "-----BEGIN EC PRIVATE KEY-----\n" + "B" * 64 + "\n-----END EC PRIVATE KEY-----\n")
    from aws_lambda_powertools import Logger

    Logger(service="hygiene-check").info("oops", extra={"token": "hvs." + "A" * 40})
    places = {"logs": capsys.readouterr().out, "bus": "x" + "B" * 64 + "x"}
    assert known.found_in(places) == ["a token in the logs", "a key line 0 in the bus"]
