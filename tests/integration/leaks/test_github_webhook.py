"""The GitHub webhook on moto (ledger, Secrets Manager, EventBridge → SQS), and fetch_alert_secret against a
local HTTP server that answers like GitHub's REST API.

The bus is observed through an EventBridge rule with the pattern of the template's GitHubSecretScanningRule,
delivering to an SQS queue, so what the tests read is what EventBridge routed, not what the code meant to send.

The HTTP server stands in for GitHub: it answers with the documented response shape of
`GET /repos/{owner}/{repo}/secret-scanning/alerts/{n}` and records each request it receives.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from rescind.aws.stored_secrets import forget_cached_secrets
from rescind.exceptions import ActionFailed, AwsThrottled, InvalidInput, TransientError
from rescind.leaks.github import (
    DELIVERY_PK_PREFIX,
    DELIVERY_SK,
    DETAIL_TYPE,
    EVENT_SOURCE,
    GITHUB_API_VERSION,
    DeliveryReceipt,
    GitHubAlertNotFound,
    GitHubUnavailable,
    ReceiptStatus,
    WebhookRejected,
    WebhookRejectionReason,
    claim_delivery,
    fetch_alert_secret,
    github_signature,
    load_webhook_secret,
    receive_github_delivery,
)
from rescind_local import LOCAL_ACCOUNT_ID, create_table_from_template, load_template
from rescind_local.lambdas import FunctionSpec, forget_loaded_handlers, invoke_in_process
from rescind_local.template import resource_properties
from tests.conftest import REPO_ROOT, BackendCalls, load_event
from tests.doubles import BotocoreResponse
from tests.emf import counted

# The secret events/github_secret_scanning_webhook.json is signed with. A sample, not a credential.
SAMPLE_WEBHOOK_SECRET = b"rescind-sample-github-webhook-secret"
SAMPLE_DELIVERY_ID = "3f1c9a40-b7e2-11f0-8a5e-6d2c4b1e9f07"
NOW = datetime(2026, 11, 2, 14, 5, 12, tzinfo=UTC)
LEAKED_VALUE = "hvs.CAESIJlWh4mZ0rQ7sample0leaked0value0never0forwarded"
GITHUB_TOKEN = "ghp_sample0token0for0the0local0server0only"
HANDLER_DIR = REPO_ROOT / "functions" / "github_webhook"


@dataclass
class WebhookStack:
    table: str
    queue_url: str
    secret_arn: str
    dynamodb: Any
    events: Any
    sqs: Any

    def receive(self, headers: dict[str, str], body: bytes, *, event_bus_name: str = "default") -> DeliveryReceipt:
        return receive_github_delivery(
            headers,
            body,
            webhook_secret=lambda: load_webhook_secret(self.secret_arn),
            dynamodb=self.dynamodb,
            ledger_table_name=self.table,
            events=self.events,
            event_bus_name=event_bus_name,
            now=NOW,
        )

    def bus_events(self) -> list[dict[str, Any]]:
        """Every event EventBridge routed to the queue so far (each read once)."""
        received: list[dict[str, Any]] = []
        while True:
            answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = answer.get("Messages", [])
            if not messages:
                return received
            for message in messages:
                received.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def delivery_items(self) -> list[dict[str, Any]]:
        items = self.dynamodb.scan(TableName=self.table, ConsistentRead=True)["Items"]
        return [item for item in items if item["pk"]["S"].startswith(DELIVERY_PK_PREFIX)]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()  # parsed once: it is most of a table's set-up time


@pytest.fixture
def stack(aws: None, unique: str, template: dict[str, Any]) -> Iterator[WebhookStack]:
    dynamodb = boto3.client("dynamodb")
    table = create_table_from_template(dynamodb, "LedgerTable", f"ledger-{unique}", template)
    secret_arn = boto3.client("secretsmanager").create_secret(
        Name=f"rescind/github-webhook-{unique}", SecretString=SAMPLE_WEBHOOK_SECRET.decode()
    )["ARN"]
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"github-alerts-{unique}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events")
    rule = f"github-alerts-{unique}"
    # The template's own rule pattern, so the test sees what the deployed rule would route
    pattern = resource_properties(template, "StartLeakResponseFunction")["Events"]["GitHubSecretScanningRule"][
        "Properties"
    ]["Pattern"]
    events.put_rule(Name=rule, EventPattern=json.dumps(pattern), State="ENABLED")
    events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": queue_arn}])
    forget_cached_secrets()
    yield WebhookStack(table, queue_url, secret_arn, dynamodb, events, sqs)
    forget_cached_secrets()


def _sample() -> tuple[dict[str, str], bytes]:
    event = load_event("github_secret_scanning_webhook.json")
    return dict(event["headers"]), event["body"].encode()


def _signed(
    payload: dict[str, Any], delivery_id: str, event: str = "secret_scanning_alert"
) -> tuple[dict[str, str], bytes]:
    body = json.dumps(payload).encode()
    return {
        "x-github-event": event,
        "x-github-delivery": delivery_id,
        "x-hub-signature-256": github_signature(SAMPLE_WEBHOOK_SECRET, body),
    }, body


# --- the domain function on moto ---------------------------------------------------------------------------------


def test_the_sample_is_forwarded_once_as_references_only(stack: WebhookStack) -> None:
    headers, body = _sample()

    # When the sample delivery arrives
    receipt = stack.receive(headers, body)

    # Then it was accepted and put on the bus once, with the notice and nothing of the body
    assert receipt.status is ReceiptStatus.ACCEPTED
    assert receipt.http_status == 202
    assert not receipt.duplicate_put
    [event] = stack.bus_events()
    assert event["source"] == EVENT_SOURCE
    assert event["detail-type"] == DETAIL_TYPE
    assert event["id"] == receipt.event_id
    assert event["detail"] == {
        "delivery_id": SAMPLE_DELIVERY_ID,
        "action": "created",
        "alert_number": 42,
        "secret_type": "hashicorp_vault_service_token",
        "secret_type_display_name": "HashiCorp Vault Service Token",
        "html_url": "https://github.com/octo-org/octo-repo/security/secret-scanning/42",
        "repository": "octo-org/octo-repo",
        "created_at": "2026-11-02T14:05:11Z",
        "received_at": "2026-11-02T14:05:12Z",
        "validity": "unknown",
        "publicly_leaked": False,
        "state": None,
        "resolution": None,
    }
    # and the delivery is claimed in the ledger, by reference
    [item] = stack.delivery_items()
    assert item["pk"]["S"] == f"{DELIVERY_PK_PREFIX}{SAMPLE_DELIVERY_ID}"
    assert item["sk"]["S"] == DELIVERY_SK
    assert item["record_type"]["S"] == "github_delivery"
    assert item["repository"]["S"] == "octo-org/octo-repo"
    assert item["alert_number"]["N"] == "42"


def test_the_bus_event_parses_as_the_leak_responder_expects(stack: WebhookStack) -> None:
    # The lead's leak trigger parser reads what this function puts: the two must agree on the detail
    from rescind.leaks.triggers import parse_github_alert

    stack.receive(*_sample())
    [event] = stack.bus_events()
    # moto 5.2.5 leaves `account` out of events it delivers to SQS; EventBridge always sets it
    event.setdefault("account", LOCAL_ACCOUNT_ID)

    [alert] = parse_github_alert(event).alerts
    assert alert.github_repository == "octo-org/octo-repo"
    assert alert.github_alert_number == 42
    assert alert.secret is None


def test_a_replayed_delivery_is_refused_and_nothing_more_is_put(stack: WebhookStack) -> None:
    # Given the sample was forwarded
    headers, body = _sample()
    stack.receive(headers, body)
    assert len(stack.bus_events()) == 1

    # When the same delivery arrives again (a replay, or a redelivery of a delivery that already succeeded)
    with pytest.raises(WebhookRejected) as raised:
        stack.receive(headers, body)

    # Then it is refused as replayed (409), nothing is put, and the ledger still holds the one claim
    assert raised.value.reason is WebhookRejectionReason.REPLAYED
    assert raised.value.http_status == 409
    assert stack.bus_events() == []
    assert len(stack.delivery_items()) == 1


@pytest.mark.parametrize(
    "new_id",
    [lambda old: "5c0ffee0-b7e2-11f0-8a5e-6d2c4b1e9f07", str.upper],
    ids=["a fresh delivery id", "the same id in capitals"],
)
def test_a_captured_body_resent_under_another_delivery_id_is_refused(stack: WebhookStack, new_id: Any) -> None:
    # Given the sample was forwarded
    headers, body = _sample()
    stack.receive(headers, body)
    assert len(stack.bus_events()) == 1

    # When someone who captured it sends the same signed body under another X-GitHub-Delivery (it is not signed)
    replayed = {**headers, "x-github-delivery": new_id(headers["x-github-delivery"])}
    with pytest.raises(WebhookRejected) as raised:
        stack.receive(replayed, body)

    # Then it is refused as replayed, and nothing more is put on the bus
    assert raised.value.reason is WebhookRejectionReason.REPLAYED
    assert stack.bus_events() == []


def test_a_mis_signed_delivery_is_refused_and_nothing_is_claimed_or_put(
    stack: WebhookStack, backend_calls: BackendCalls
) -> None:
    headers, body = _sample()
    headers["x-hub-signature-256"] = github_signature(b"a guessed secret", body)
    webhook_secret = load_webhook_secret(stack.secret_arn)
    before = list(backend_calls.aws)

    with pytest.raises(WebhookRejected) as raised:
        receive_github_delivery(
            headers,
            body,
            webhook_secret=lambda: webhook_secret,
            dynamodb=stack.dynamodb,
            ledger_table_name=stack.table,
            events=stack.events,
            event_bus_name="default",
            now=NOW,
        )

    assert raised.value.reason is WebhookRejectionReason.BAD_SIGNATURE
    assert backend_calls.aws == before  # not even a read of the ledger
    assert stack.bus_events() == []
    assert stack.delivery_items() == []


@pytest.mark.parametrize("action", ["resolved", "assigned"])
def test_an_action_that_is_not_a_leak_is_acknowledged_and_dropped(stack: WebhookStack, action: str) -> None:
    payload = json.loads(_sample()[1])
    payload["action"] = action

    receipt = stack.receive(*_signed(payload, "7c2d1e00-b7e3-11f0-9f1a-0b4d2e6c8a11"))

    assert receipt.status is ReceiptStatus.IGNORED
    assert receipt.http_status == 200
    assert stack.bus_events() == []
    assert stack.delivery_items() == []


def test_a_ping_is_answered_and_dropped(stack: WebhookStack) -> None:
    ping = {"zen": "Design for failure.", "hook_id": 571836204, "hook": {"type": "Repository", "active": True}}

    receipt = stack.receive(*_signed(ping, "0a9b8c70-b7e0-11f0-8d3e-2f5a6b7c8d90", event="ping"))

    assert receipt.status is ReceiptStatus.PING
    assert receipt.http_status == 200
    assert stack.bus_events() == []
    assert stack.delivery_items() == []


def test_a_failed_put_claims_nothing_so_the_redelivery_is_forwarded(stack: WebhookStack) -> None:
    # Given a bus that does not exist: EventBridge refuses the put
    headers, body = _sample()
    with pytest.raises((ActionFailed, TransientError)):
        stack.receive(headers, body, event_bus_name="no-such-bus")
    assert stack.delivery_items() == []

    # When GitHub redelivers it (same X-GitHub-Delivery) to a working bus, then it is forwarded, not "replayed"
    receipt = stack.receive(headers, body)

    assert receipt.status is ReceiptStatus.ACCEPTED
    assert len(stack.bus_events()) == 1
    assert len(stack.delivery_items()) == 1


def test_a_throttled_put_entry_is_transient_and_claims_nothing(stack: WebhookStack) -> None:
    # Given PutEvents answers 200 with the entry failed by throttling, as AWS reports partial failures
    # (moto cannot throttle: botocore's before-call hook returns the response AWS would send)
    events = boto3.client("events", config=Config(retries={"max_attempts": 1, "mode": "standard"}))

    def throttled_entry(**_: Any) -> tuple[Any, dict[str, Any]]:
        parsed = {
            "FailedEntryCount": 1,
            "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}],
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }
        return BotocoreResponse(200), parsed

    events.meta.events.register("before-call.events.PutEvents", throttled_entry, unique_id="throttle")
    stack.events = events
    headers, body = _sample()

    with pytest.raises(AwsThrottled, match="ThrottlingException"):
        stack.receive(headers, body)
    assert stack.delivery_items() == []

    # When the throttling is over, the redelivery goes through
    events.meta.events.unregister("before-call.events.PutEvents", unique_id="throttle")
    assert stack.receive(headers, body).status is ReceiptStatus.ACCEPTED
    assert len(stack.bus_events()) == 1


def test_claiming_is_a_conditional_put_that_never_overwrites(stack: WebhookStack) -> None:
    delivery_id = "5e6f7a80-b7e4-11f0-8b2c-1d3e5f7a9b0c"

    first = claim_delivery(stack.dynamodb, stack.table, delivery_id, NOW)
    second = claim_delivery(stack.dynamodb, stack.table, delivery_id, datetime(2026, 11, 3, tzinfo=UTC))

    assert (first, second) == (True, False)
    [item] = stack.delivery_items()
    assert item["received_at"]["S"] == NOW.isoformat()  # the first claim stands


def test_a_concurrent_copy_that_claimed_first_is_reported_as_a_duplicate_put(stack: WebhookStack) -> None:
    # Given a copy of the delivery claimed it between this one's replay check and its claim
    headers, body = _sample()
    events = boto3.client("events")

    def claim_meanwhile(**_: Any) -> None:
        claim_delivery(stack.dynamodb, stack.table, SAMPLE_DELIVERY_ID, NOW)

    events.meta.events.register("before-call.events.PutEvents", claim_meanwhile, unique_id="race")
    stack.events = events

    receipt = stack.receive(headers, body)

    # Then this one's event was still put (the responder deduplicates) and the receipt says so
    assert receipt.status is ReceiptStatus.ACCEPTED
    assert receipt.duplicate_put
    assert len(stack.bus_events()) == 1
    assert len(stack.delivery_items()) == 1


def test_the_webhook_secret_is_read_once_and_cached(stack: WebhookStack, backend_calls: BackendCalls) -> None:
    first = load_webhook_secret(stack.secret_arn)
    second = load_webhook_secret(stack.secret_arn)

    assert first == second == SAMPLE_WEBHOOK_SECRET
    assert backend_calls.aws.count("secretsmanager:GetSecretValue") == 1


# --- the handler, through its module as Lambda runs it ---------------------------------------------------------------


@pytest.fixture
def webhook_function(stack: WebhookStack) -> Iterator[FunctionSpec]:
    from rescind.runtime import reset_caches

    spec = FunctionSpec(
        function_name="rescind-github-webhook",
        code_dir=Path(HANDLER_DIR),
        timeout=10,
        environment={
            "POWERTOOLS_SERVICE_NAME": "rescind",
            "POWERTOOLS_METRICS_NAMESPACE": "Rescind",
            "LEDGER_TABLE_NAME": stack.table,
            "VAULT_ADDR": "http://127.0.0.1:8200",  # never called by this function
            "VAULT_AUTH_METHOD": "aws_iam",
            "VAULT_AWS_AUTH_ROLE": "rescind",
            "GITHUB_WEBHOOK_SECRET_ARN": stack.secret_arn,
        },
    )
    forget_loaded_handlers()
    reset_caches()
    yield spec
    forget_loaded_handlers()
    reset_caches()


def _invoke(spec: FunctionSpec, event: dict[str, Any]) -> dict[str, Any]:
    result = invoke_in_process(spec, event)
    assert not result.errored, result.payload
    answer: dict[str, Any] = json.loads(result.payload)
    return answer


def _logged(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    return capsys.readouterr().out + "\n".join(str(vars(record)) for record in caplog.records)


def test_the_handler_accepts_the_sample_once_then_answers_409(
    webhook_function: FunctionSpec,
    stack: WebhookStack,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = load_event("github_secret_scanning_webhook.json")

    first = _invoke(webhook_function, event)
    second = _invoke(webhook_function, event)

    assert first["statusCode"] == 202
    assert json.loads(first["body"])["status"] == "accepted"
    assert second["statusCode"] == 409
    assert json.loads(second["body"])["reason"] == "replayed"
    assert len(stack.bus_events()) == 1
    logged = _logged(capsys, caplog)
    assert counted(logged, "GitHubDelivery", status="accepted") == 1
    assert counted(logged, "WebhookRejected", reason="replayed") == 1
    assert SAMPLE_DELIVERY_ID in logged  # the delivery id is logged...
    assert event["headers"]["x-hub-signature-256"] not in logged  # ...the signature and the body never are
    assert "octo-repo/secret-scanning/alerts/42/locations" not in logged


def test_the_handler_refuses_an_unsigned_delivery_before_anything_else(
    webhook_function: FunctionSpec, stack: WebhookStack, backend_calls: BackendCalls
) -> None:
    # Given a cold secret cache: a signed delivery would read the webhook secret first
    forget_cached_secrets()
    event = load_event("github_secret_scanning_webhook.json")
    del event["headers"]["x-hub-signature-256"]
    before = list(backend_calls.aws)

    answer = _invoke(webhook_function, event)

    # Then it is refused 401, with no call to AWS at all: not the secret, not the ledger, not the bus
    assert answer["statusCode"] == 401
    assert json.loads(answer["body"])["reason"] == "unsigned"
    assert backend_calls.aws == before


def test_the_handler_refuses_a_mis_signed_delivery_with_401(
    webhook_function: FunctionSpec,
    stack: WebhookStack,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = load_event("github_secret_scanning_webhook.json")
    event["headers"]["x-hub-signature-256"] = github_signature(b"a guessed secret", event["body"].encode())

    answer = _invoke(webhook_function, event)

    assert answer["statusCode"] == 401
    assert json.loads(answer["body"])["reason"] == "bad_signature"
    assert stack.bus_events() == []
    assert stack.delivery_items() == []
    logged = _logged(capsys, caplog)
    assert counted(logged, "WebhookRejected", reason="bad_signature") == 1
    assert event["headers"]["x-hub-signature-256"] not in logged


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        (
            {"headers": {"x-github-event": "secret_scanning_alert", "x-github-delivery": SAMPLE_DELIVERY_ID}},
            401,
            "unsigned",
        ),
        ({"body": "x" * (64 * 1024 + 1)}, 413, "oversized"),
        ({"requestContext": {"http": {"method": "GET"}}}, 405, "method_not_allowed"),
        ({"body": "!!not base64!!", "isBase64Encoded": True}, 400, "malformed"),
    ],
    ids=["unsigned", "oversized", "get", "bad-base64"],
)
def test_the_handler_answers_each_rejection_with_its_status(
    webhook_function: FunctionSpec,
    stack: WebhookStack,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, Any],
    status: int,
    reason: str,
) -> None:
    event = {**load_event("github_secret_scanning_webhook.json"), **change}

    answer = _invoke(webhook_function, event)

    assert answer["statusCode"] == status
    assert json.loads(answer["body"])["reason"] == reason
    assert counted(capsys.readouterr().out, "WebhookRejected", reason=reason) == 1
    assert stack.bus_events() == []
    assert stack.delivery_items() == []


def test_the_handler_reads_a_base64_body(webhook_function: FunctionSpec, stack: WebhookStack) -> None:
    # Function URLs base64-encode bodies they do not take for text; the signature is over the decoded bytes
    event = load_event("github_secret_scanning_webhook.json")
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True

    answer = _invoke(webhook_function, event)

    assert answer["statusCode"] == 202
    assert len(stack.bus_events()) == 1


def test_the_handler_answers_503_when_the_bus_fails_so_github_can_redeliver(
    webhook_function: FunctionSpec, stack: WebhookStack
) -> None:
    # Given a function whose bus does not exist
    broken = dataclasses.replace(
        webhook_function, environment={**webhook_function.environment, "EVENT_BUS_NAME": "no-such-bus"}
    )
    event = load_event("github_secret_scanning_webhook.json")

    answer = _invoke(broken, event)

    # Then the answer is a 5xx and nothing is claimed, so the redelivery to the working function is forwarded
    assert answer["statusCode"] in (500, 503)
    assert stack.delivery_items() == []
    forget_loaded_handlers()
    assert _invoke(webhook_function, event)["statusCode"] == 202


# --- fetch_alert_secret against a local stand-in for GitHub's REST API -----------------------------------------------


@dataclass
class LocalGitHubApi:
    """A real HTTP server on 127.0.0.1 answering like GitHub's REST API, recording what it receives."""

    url: str
    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    delay_seconds: float = 0.0


def _alert_document(repository: str, number: int, secret: str) -> dict[str, Any]:
    """The documented shape of `GET /repos/{owner}/{repo}/secret-scanning/alerts/{alert_number}`."""
    api = f"https://api.github.com/repos/{repository}/secret-scanning/alerts/{number}"
    return {
        "number": number,
        "created_at": "2026-11-02T14:05:11Z",
        "updated_at": "2026-11-02T14:05:11Z",
        "url": api,
        "html_url": f"https://github.com/{repository}/security/secret-scanning/{number}",
        "locations_url": f"{api}/locations",
        "state": "open",
        "resolution": None,
        "resolved_at": None,
        "resolved_by": None,
        "resolution_comment": None,
        "secret_type": "hashicorp_vault_service_token",
        "secret_type_display_name": "HashiCorp Vault Service Token",
        "secret": secret,
        "push_protection_bypassed": False,
        "push_protection_bypassed_by": None,
        "push_protection_bypassed_at": None,
        "validity": "unknown",
        "publicly_leaked": False,
        "multi_repo": False,
        "is_base64_encoded": False,
        "first_location_detected": {
            "path": "deploy/vault.env",
            "start_line": 3,
            "end_line": 3,
            "start_column": 13,
            "end_column": 108,
            "blob_sha": "af5626b4a114abcb82d63db7c8082c3c4756e51b",
            "blob_url": f"https://api.github.com/repos/{repository}/git/blobs/af5626b4a114abcb82d63db7c8082c3c4756e51b",
            "commit_sha": "f14d7debf9775f957cf4f1e8176da0786431f72b",
            "commit_url": f"https://api.github.com/repos/{repository}/git/commits/f14d7debf9775f957cf4f1e8176da0786431f72b",
        },
        "has_more_locations": False,
        "assigned_to": None,
    }


def _serve() -> tuple[LocalGitHubApi, ThreadingHTTPServer]:
    api: LocalGitHubApi

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            api.requests.append((self.path, {name.lower(): value for name, value in self.headers.items()}))
            if api.delay_seconds:
                time.sleep(api.delay_seconds)
            status, headers, body = api.routes.get(
                self.path, (404, {}, json.dumps({"message": "Not Found", "status": "404"}).encode())
            )
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json; charset=utf-8")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up first (the timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    api = LocalGitHubApi(url=f"http://127.0.0.1:{server.server_address[1]}")
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return api, server


@pytest.fixture
def github_api() -> Iterator[LocalGitHubApi]:
    api, server = _serve()
    yield api
    server.shutdown()
    server.server_close()


@pytest.fixture
def other_host() -> Iterator[LocalGitHubApi]:
    api, server = _serve()
    yield api
    server.shutdown()
    server.server_close()


ALERT_PATH = "/repos/octo-org/octo-repo/secret-scanning/alerts/42"


def test_fetch_alert_secret_reads_the_value_with_the_token_as_bearer(github_api: LocalGitHubApi) -> None:
    github_api.routes[ALERT_PATH] = (
        200,
        {},
        json.dumps(_alert_document("octo-org/octo-repo", 42, LEAKED_VALUE)).encode(),
    )

    value = fetch_alert_secret(github_api.url, GITHUB_TOKEN, "octo-org/octo-repo", 42)

    assert value == LEAKED_VALUE
    [(path, headers)] = github_api.requests
    assert path == ALERT_PATH
    assert headers["authorization"] == f"Bearer {GITHUB_TOKEN}"
    assert headers["accept"] == "application/vnd.github+json"
    assert headers["x-github-api-version"] == GITHUB_API_VERSION


def test_fetch_alert_secret_keeps_a_github_enterprise_path(github_api: LocalGitHubApi) -> None:
    github_api.routes[f"/api/v3{ALERT_PATH}"] = (200, {}, json.dumps({"secret": LEAKED_VALUE}).encode())

    assert fetch_alert_secret(f"{github_api.url}/api/v3/", GITHUB_TOKEN, "octo-org/octo-repo", 42) == LEAKED_VALUE


def test_a_missing_alert_is_not_found(github_api: LocalGitHubApi) -> None:
    with pytest.raises(GitHubAlertNotFound) as raised:
        fetch_alert_secret(github_api.url, GITHUB_TOKEN, "octo-org/octo-repo", 7)

    assert isinstance(raised.value, ActionFailed)  # terminal: the leak is recorded unresolved, not retried
    assert GITHUB_TOKEN not in str(raised.value)


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (500, {}),
        (502, {}),
        (429, {"retry-after": "60"}),
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1793628372"}),
    ],
    ids=["500", "502", "429", "rate-limited-403"],
)
def test_server_errors_and_rate_limits_are_transient(
    github_api: LocalGitHubApi, status: int, headers: dict[str, str]
) -> None:
    github_api.routes[ALERT_PATH] = (status, headers, json.dumps({"message": "try later"}).encode())

    with pytest.raises(GitHubUnavailable) as raised:
        fetch_alert_secret(github_api.url, GITHUB_TOKEN, "octo-org/octo-repo", 42)

    assert isinstance(raised.value, TransientError)
    assert GITHUB_TOKEN not in str(raised.value)


def test_a_refused_token_is_terminal(github_api: LocalGitHubApi) -> None:
    github_api.routes[ALERT_PATH] = (401, {}, json.dumps({"message": "Bad credentials"}).encode())

    with pytest.raises(ActionFailed) as raised:
        fetch_alert_secret(github_api.url, GITHUB_TOKEN, "octo-org/octo-repo", 42)

    assert not isinstance(raised.value, TransientError)


def test_a_slow_server_is_transient(github_api: LocalGitHubApi) -> None:
    github_api.delay_seconds = 1.0
    github_api.routes[ALERT_PATH] = (200, {}, json.dumps({"secret": LEAKED_VALUE}).encode())

    with pytest.raises(GitHubUnavailable):
        fetch_alert_secret(github_api.url, GITHUB_TOKEN, "octo-org/octo-repo", 42, timeout=0.2)


def test_nothing_listening_is_transient() -> None:
    api, server = _serve()
    server.shutdown()
    server.server_close()

    with pytest.raises(GitHubUnavailable):
        fetch_alert_secret(api.url, GITHUB_TOKEN, "octo-org/octo-repo", 42, timeout=1.0)


def test_an_answer_without_a_value_is_refused_without_echoing_it(github_api: LocalGitHubApi) -> None:
    document = _alert_document("octo-org/octo-repo", 42, LEAKED_VALUE)
    del document["secret"]
    document["resolution_comment"] = LEAKED_VALUE
    github_api.routes[ALERT_PATH] = (200, {}, json.dumps(document).encode())

    with pytest.raises(ActionFailed) as raised:
        fetch_alert_secret(github_api.url, GITHUB_TOKEN, "octo-org/octo-repo", 42)

    assert LEAKED_VALUE not in str(raised.value)


def test_a_same_host_redirect_is_followed_with_the_token(github_api: LocalGitHubApi) -> None:
    # GitHub answers 301 for a renamed repository
    moved = "/repositories/715268843/secret-scanning/alerts/42"
    github_api.routes[ALERT_PATH] = (301, {"location": f"{github_api.url}{moved}"}, b"")
    github_api.routes[moved] = (200, {}, json.dumps({"secret": LEAKED_VALUE}).encode())

    assert fetch_alert_secret(github_api.url, GITHUB_TOKEN, "octo-org/octo-repo", 42) == LEAKED_VALUE
    assert github_api.requests[-1][1]["authorization"] == f"Bearer {GITHUB_TOKEN}"


def test_a_redirect_to_another_host_is_not_followed(github_api: LocalGitHubApi, other_host: LocalGitHubApi) -> None:
    other_host.routes[ALERT_PATH] = (200, {}, json.dumps({"secret": "captured"}).encode())
    github_api.routes[ALERT_PATH] = (302, {"location": f"{other_host.url}{ALERT_PATH}"}, b"")

    with pytest.raises(ActionFailed):
        fetch_alert_secret(github_api.url, GITHUB_TOKEN, "octo-org/octo-repo", 42)

    assert other_host.requests == []  # the token never left for the other host


def test_bad_arguments_never_reach_the_server(github_api: LocalGitHubApi) -> None:
    with pytest.raises(InvalidInput):
        fetch_alert_secret(github_api.url, GITHUB_TOKEN, "octo-org/../../user", 42)

    assert github_api.requests == []


# --- an AWS secret access key's pair, found beside it in the alert's file -----------------------------------

CORPUS_GITHUB = Path(__file__).resolve().parents[2] / "corpus" / "github"


def published_locations(blob_sha: str, start_line: int) -> list[dict[str, Any]]:
    """GitHub's published example of an alert's locations, its commit location pointing at our file."""
    locations: list[dict[str, Any]] = json.loads((CORPUS_GITHUB / "rest_locations.json").read_text())
    commit = next(location for location in locations if location["type"] == "commit")
    commit["details"].update(blob_sha=blob_sha, start_line=start_line, end_line=start_line)
    # The answer's own blob_url is never followed: the blob is read by its sha on the configured API.
    commit["details"]["blob_url"] = "https://attacker.example/repos/x/y/git/blobs/" + blob_sha
    return locations


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        (
            "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\nAWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n",
            1,
            ["AKIAIOSFODNN7EXAMPLE"],
        ),
        (
            "key: AKIAIOSFODNN7EXAMPLE\n"
            "secret: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
            "other: AKIAI44QH8DHBEXAMPLE\n",
            2,
            ["AKIAIOSFODNN7EXAMPLE", "AKIAI44QH8DHBEXAMPLE"],
        ),
        ("AKIAIOSFODNN7EXAMPLE\n" + "\n" * 10 + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n", 12, []),
        ("id=XAKIAIOSFODNN7EXAMPLE secret=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n", 1, []),
    ],
    ids=["the pair", "two keys near it", "a key far away", "a key inside a longer word"],
)
def test_the_key_ids_beside_a_secret_are_read_from_the_alerts_committed_file(
    text: str, line: int, expected: list[str]
) -> None:
    from rescind.leaks.github import find_access_key_ids_beside_alert
    from rescind_local.github import local_github_api

    with local_github_api() as github:
        sha = github.add_blob("octo-org/octo-repo", text)
        github.add_locations("octo-org/octo-repo", 7, published_locations(sha, line))

        found = find_access_key_ids_beside_alert(github.url, "ghp_reader", "octo-org/octo-repo", 7)

    assert found == expected
    assert all("attacker.example" not in request for request in github.requests)
