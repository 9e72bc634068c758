"""Bad input at every entry point: refused with a clear error, no planted secret repeated, and zero backend calls.

Entry points, each called the way its caller calls it, on the template deployed to moto (handlers in-process,
with the environment a deployed function has):

- termination events, StartOffboardingFunction: InvalidInput raised (the errorType Lambda reports);
- leak events, StartLeakResponseFunction: {"status": "rejected", "reason": ..., "problem": ...} returned;
- the GitHub webhook, GitHubWebhookFunction (function URL events): HTTP 4xx, {"status": "rejected", ...};
- Step Functions tasks, ExecuteAction, PlanOffboarding, PlanLeakResponse, VerifyResponse, CloseIncident and
  RequestApproval: InvalidInput raised;
- the CLI, `rescind revoke|plan --credential REF`, `--workload ID` and `rescind replay EVENT.json`: exit 2 with one
  line `error: ...` and no traceback.

Inputs: the real samples in events/, valid task documents and valid references, broken by construction against
each format's contract (tests/reliability/strategies.py `Contract`, `broken`: a required field dropped, a wrong
type, a traversal, wildcard or foreign account, an unknown key in a closed object, an oversized document), plus
hand-written cases. Every one must be refused: no parser is asked which inputs are invalid. Calls are counted on
hvac's adapter and botocore's `_make_api_call`, per example.

Sizes: the fast run (CI) draws RESCIND_FUZZ_FAST_EXAMPLES (default 40) generated examples per test, derandomized,
plus every hand-written case (about 300 events, 28 credential targets, 45 CLI references): a few hundred in all.
`pytest -m slow tests/reliability/test_bad_input.py` draws RESCIND_FUZZ_EXAMPLES (default 10,000) per test, so
each entry-point family gets at least 10,000 generated examples (the task handlers' family 10,000 for each of its
six handlers, the CLI 10,000 for each command).

Exceptions to "zero calls", by design: a webhook delivery replaying an already-forwarded X-GitHub-Delivery is
only known to be a replay by reading Rescind's own ledger, so exactly one dynamodb:GetItem is allowed there, and
nothing else. The webhook secret is cached by the function (as on AWS); it is loaded once before counting.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rescind import observability
from rescind.approval import ApprovalRequest
from rescind.aws.stored_secrets import forget_cached_secrets
from rescind.engine.tasks import ExecuteActionRequest
from rescind.leaks.github import claim_delivery
from rescind.leaks.triggers import parse_leak_event
from rescind.ledger.closing import CloseRequest
from rescind.offboarding.triggers import parse_termination_event
from rescind.response.plan_store import VerifyBatchRequest
from rescind.response.types import ResponseRequest
from rescind.validation import parse_model
from rescind_local import LocalOpenBao, local_aws
from rescind_local.github import SAMPLE_WEBHOOK_SECRET, sign_delivery
from rescind_local.lambdas import forget_loaded_handlers, invoke_in_process
from rescind_local.stack import LocalStack
from tests.conftest import deploy_local_stack
from tests.reliability import strategies as bad

FAST = settings(
    max_examples=bad.FAST_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)
SLOW = settings(FAST, max_examples=bad.SLOW_EXAMPLES, derandomize=False)

TASK_HANDLERS = (
    "ExecuteActionFunction",
    "PlanOffboardingFunction",
    "PlanLeakResponseFunction",
    "VerifyResponseFunction",
    "CloseIncidentFunction",
    "RequestApprovalFunction",
)
ENTRY_FUNCTIONS = ("StartOffboardingFunction", "StartLeakResponseFunction", "GitHubWebhookFunction", *TASK_HANDLERS)


# --- the harness: one deployed stack for the module, calls counted per example --------------------------------


class LogCapture(logging.Handler):
    """Every record the handlers' Powertools loggers emit, formatted as they are (JSON, with extra keys)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass(repr=False)
class Harness:
    stack: LocalStack
    vault_calls: list[str] = field(default_factory=list)
    aws_calls: list[str] = field(default_factory=list)
    logs: LogCapture = field(default_factory=LogCapture)
    # Every request since the harness opened, never reset, with what it carried: (method, url, JSON body) for
    # Vault, (service, operation, parameters) for AWS. Background runs (the state machines a start handler
    # starts) land here too. test_handler_fuzz checks their scope.
    vault_requests: list[tuple[str, str, Any]] = field(default_factory=list)
    aws_requests: list[tuple[str, str, Any]] = field(default_factory=list)

    def __repr__(self) -> str:  # hypothesis prints it with each failing example
        return "Harness(stack)"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def reset(self) -> None:
        self.vault_calls.clear()
        self.aws_calls.clear()
        self.logs.lines.clear()

    @property
    def calls(self) -> list[str]:
        return self.vault_calls + self.aws_calls

    def invoke(self, logical_id: str, event: Any) -> tuple[dict[str, Any] | Any, str | None]:
        """Run the function in-process as Lambda would; (payload, errorType or None). Calls counted from here."""
        self.reset()
        result = invoke_in_process(self.stack.functions[logical_id], event)
        payload = json.loads(result.payload)
        return payload, result.invocation.error_type

    def log_text(self) -> str:
        return "\n".join(self.logs.lines)


@contextmanager
def open_harness(
    openbao: LocalOpenBao,
    *,
    parameters: dict[str, str] | None = None,
    functions: tuple[str, ...] = ENTRY_FUNCTIONS,
    before_counting: Callable[[LocalStack], None] | None = None,
) -> Iterator[Harness]:
    """The template deployed to moto with `parameters`, `functions` warmed up, and every call counted."""
    import botocore.client
    import hvac.adapters

    from rescind.aws import stored_secrets

    forget_loaded_handlers()  # cold starts in this stack's environment, not another module's
    forget_cached_secrets()
    with (
        local_aws(),
        deploy_local_stack(openbao, **(parameters or {})) as stack,
        mock.patch.object(stored_secrets, "SECRET_CACHE_SECONDS", 10**9),  # a slow run outlasts the 5-minute cache
    ):
        boto3.client("secretsmanager").put_secret_value(
            SecretId=stack.physical_id("GitHubWebhookSecret"), SecretString=SAMPLE_WEBHOOK_SECRET.decode()
        )
        if before_counting is not None:
            before_counting(stack)
        state = Harness(stack)
        # Cold starts and the webhook's secret cache, before anything is counted: a signed ping.
        for logical_id in functions:
            invoke_in_process(stack.functions[logical_id], {"warm": "up"})
        ping = sign_delivery(webhook_sample(), SAMPLE_WEBHOOK_SECRET, delivery_id=str(uuid.uuid4()))
        ping["headers"]["x-github-event"] = "ping"
        answer = json.loads(invoke_in_process(stack.functions["GitHubWebhookFunction"], ping).payload)
        assert answer["statusCode"] == 200, answer
        # Every handler logs through the one logger of rescind.observability
        state.logs.setFormatter(observability.logger.registered_formatter)
        observability.logger._logger.addHandler(state.logs)

        real_request = hvac.adapters.RawAdapter.request
        real_api_call = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

        def counting_request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            state.vault_calls.append(f"{method.upper()} {url}")
            state.vault_requests.append((method.upper(), url, kwargs.get("json")))
            return real_request(self, method, url, *args, **kwargs)

        def counting_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
            service = self.meta.service_model.service_name
            state.aws_calls.append(f"{service}:{operation_name}")
            state.aws_requests.append((service, operation_name, api_params))
            return real_api_call(self, operation_name, api_params)

        with (
            mock.patch.object(hvac.adapters.RawAdapter, "request", counting_request),
            mock.patch.object(botocore.client.BaseClient, "_make_api_call", counting_api_call),
        ):
            yield state
    forget_loaded_handlers()
    forget_cached_secrets()


@pytest.fixture(scope="module")
def harness(openbao: LocalOpenBao) -> Iterator[Harness]:
    with open_harness(openbao) as state:
        yield state


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for planted in bad.PLANTED_SECRETS:
            assert planted not in text, "a refusal repeated a planted secret value"


def assert_refused_by_raise(harness: Harness, logical_id: str, event: Any, message: re.Pattern[str]) -> None:
    payload, error_type = harness.invoke(logical_id, event)
    assert error_type == "InvalidInput", (logical_id, error_type, payload)
    assert message.search(payload["errorMessage"]), payload["errorMessage"]
    assert_no_secret(json.dumps(payload), harness.log_text())
    assert harness.calls == [], f"{logical_id} called a backend before refusing: {harness.calls}"


# A refusal touches nothing of the estate: no Vault call, and no AWS call but the trace it leaves in Rescind's own
# ledger and topic (an incident recorded as rejected, and its notification).
RECORDING_CALLS = frozenset({"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query", "sns:Publish"})
# Nor the function's own configuration, read at cold start whatever the event (every local invocation is a cold
# start): its stored settings in Parameter Store (rescind.parameter_store).
COLD_START_CALLS = frozenset({"ssm:GetParameters"})


def assert_only_recorded(harness: Harness, who: str) -> None:
    assert harness.vault_calls == [], f"{who} called Vault before refusing: {harness.vault_calls}"
    outside = [call for call in harness.aws_calls if call not in RECORDING_CALLS | COLD_START_CALLS]
    assert outside == [], f"{who} called AWS beyond its ledger and topic before refusing: {outside}"


def assert_termination_event_refused(harness: Harness, event: Any, *, may_be_ignored: bool = True) -> None:
    """Refused (raised, and recorded as a rejected incident), or ignored when it ended nothing; no other call."""
    payload, error_type = harness.invoke("StartOffboardingFunction", event)
    if error_type is None:
        assert may_be_ignored, f"a malformed termination event was not refused: {payload}"
        assert payload["status"] == "ignored", payload
        assert payload["reason"] == "not_a_termination", payload
        assert harness.calls == [], f"an ignored event made calls: {harness.calls}"
        return
    assert error_type == "InvalidInput", (error_type, payload)
    assert TERMINATION_REFUSAL.search(payload["errorMessage"]), payload["errorMessage"]
    assert_no_secret(json.dumps(payload), harness.log_text())
    assert_only_recorded(harness, "StartOffboardingFunction")
    assert "dynamodb:PutItem" in harness.aws_calls, "a refused termination event left no record in the ledger"


TERMINATION_REFUSAL = re.compile(
    r"^termination event refused \((malformed|oversized|not_a_trigger|not_a_termination)\): \S"
)
TASK_REFUSAL = re.compile(r"^invalid [a-z -]+: \S.*: \S")  # "invalid <what>: <field path>: <problem>"


# --- termination events -----------------------------------------------------------------------------------------


def test_every_hand_written_bad_termination_event_is_refused_without_a_call(harness: Harness) -> None:
    cases = [*bad.termination_field_cases(), *bad.NOT_AN_EVENT]
    for event in cases:
        assert_termination_event_refused(harness, event)
    assert len(cases) > 150


termination_events = st.sampled_from(bad.TERMINATION_CONTRACTS).flatmap(bad.broken)


def check_termination_event(harness: Harness, event: Any) -> None:
    # Broken by construction: refused as malformed, never "ignored" as if it were a valid non-termination.
    assert_termination_event_refused(harness, event, may_be_ignored=False)


@FAST
@given(event=termination_events)
def test_generated_bad_termination_events_are_refused_without_a_call(harness: Harness, event: Any) -> None:
    check_termination_event(harness, event)


@pytest.mark.slow
# A refused AWS event now writes its rejected incident and notification: 10,000 of them outlast the default.
@pytest.mark.timeout(3600)
@SLOW
@given(event=termination_events)
def test_generated_bad_termination_events_are_refused_without_a_call_at_scale(harness: Harness, event: Any) -> None:
    check_termination_event(harness, event)


# --- leak events --------------------------------------------------------------------------------------------------


def assert_leak_event_rejected(harness: Harness, event: Any) -> None:
    payload, error_type = harness.invoke("StartLeakResponseFunction", event)
    assert error_type is None, payload  # refused, not raised: a raised event would be kept whole in the DLQ
    assert payload["reason"] in {"oversized", "not_a_trigger", "not_a_leak", "unknown_type", "malformed"}
    assert payload["status"] == ("ignored" if payload["reason"] in {"not_a_trigger", "not_a_leak"} else "rejected")
    assert re.search(r"\S+: \S", payload["problem"]), payload["problem"]
    assert_no_secret(json.dumps(payload), harness.log_text())
    assert "leak event refused" in harness.log_text()
    # The generic event may carry the value: it is only logged and counted. AWS's own events are also recorded.
    recorded = "incident_id" in payload
    generic = isinstance(event, dict) and event.get("source") == "rescind"
    assert recorded == (payload["status"] == "rejected" and isinstance(event, dict) and not generic), payload
    if recorded:
        assert_only_recorded(harness, "the leak start")
    else:
        assert harness.calls == [], f"the leak start called a backend before refusing: {harness.calls}"


def test_every_hand_written_bad_leak_event_is_refused_without_a_call(harness: Harness) -> None:
    cases = [*bad.leak_field_cases(), *bad.NOT_AN_EVENT]
    for event in cases:
        assert_leak_event_rejected(harness, event)
    assert len(cases) > 80


leak_events = st.sampled_from(bad.LEAK_CONTRACTS).flatmap(bad.broken)


def check_leak_event(harness: Harness, event: Any) -> None:
    assert_leak_event_rejected(harness, event)


@FAST
@given(event=leak_events)
def test_generated_bad_leak_events_are_refused_without_a_call(harness: Harness, event: Any) -> None:
    check_leak_event(harness, event)


@pytest.mark.slow
# A refused AWS event now writes its rejected incident and notification: 10,000 of them outlast the default.
@pytest.mark.timeout(3600)
@SLOW
@given(event=leak_events)
def test_generated_bad_leak_events_are_refused_without_a_call_at_scale(harness: Harness, event: Any) -> None:
    check_leak_event(harness, event)


# --- the GitHub webhook ---------------------------------------------------------------------------------------


def webhook_sample() -> dict[str, Any]:
    return bad.load_sample("github_secret_scanning_webhook.json")


def alert_fields() -> dict[str, Any]:
    """Only the fields the webhook reads, so a mutation lands on something that matters."""
    body = json.loads(webhook_sample()["body"])
    alert = body["alert"]
    keep = ("number", "created_at", "secret_type", "secret_type_display_name", "html_url", "validity")
    return {
        "action": body["action"],
        "alert": {key: alert[key] for key in keep if key in alert} | {"publicly_leaked": False},
        "repository": {"full_name": body["repository"]["full_name"]},
    }


def optional(path: tuple[str, ...], type_: str, refused: tuple[Any, ...] = ()) -> bad.FieldRule:
    return bad.FieldRule(path, type_, required=False, nullable=True, refused=refused)


# The webhook body's contract: the fields of a `secret_scanning_alert` delivery the webhook reads (GitHub's
# documented payload), on `alert_fields()`.
WEBHOOK_BODY = bad.Contract(
    name="secret_scanning_alert delivery",
    valid=alert_fields,
    fields=(
        bad.FieldRule(("action",), "string", refused=("", "Created", "../x", "x" * 65)),
        bad.FieldRule(("alert",), "object"),
        bad.FieldRule(("alert", "number"), "integer", refused=(0, -1, 2**53 + 1)),
        bad.FieldRule(("alert", "secret_type"), "string", refused=("", "Vault Token", "../x", "x" * 101)),
        optional(("alert", "secret_type_display_name"), "string", refused=("x" * 201,)),
        optional(("alert", "created_at"), "datetime"),
        optional(("alert", "html_url"), "string", refused=("", "javascript:x", "http://a b")),
        # No rule for `alert.validity`: GitHub may add states, and an unknown one is read as none, not refused.
        optional(("alert", "publicly_leaked"), "boolean"),
        bad.FieldRule(("repository",), "object"),
        bad.FieldRule(("repository", "full_name"), "string", refused=("", "octo", "a/b/c", "a b/c", "x" * 101 + "/y")),
    ),
)


def delivery(body: str | bytes, *, sign: bool = True, delivery_id: str | None = None) -> dict[str, Any]:
    event = webhook_sample()
    event["body"] = body if isinstance(body, str) else body.decode("utf-8", "replace")
    event["headers"]["content-length"] = str(len(event["body"].encode()))
    if sign:
        fresh = str(uuid.uuid4()) if delivery_id is None else delivery_id
        return sign_delivery(event, SAMPLE_WEBHOOK_SECRET, delivery_id=fresh)
    event["headers"]["x-github-delivery"] = str(uuid.uuid4()) if delivery_id is None else delivery_id
    return event


@st.composite
def bad_webhook_deliveries(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """(what is wrong, the function URL event). Signed bodies that GitHub's parser refuses; altered, wrong or
    missing signatures; other methods, oversized and non-base64 bodies; bad headers."""
    kind = draw(st.sampled_from(("signed_malformed", "altered", "wrong_signature", "missing_signature", "other")))
    valid_body = json.dumps(alert_fields())
    if kind == "signed_malformed":  # broken by construction, or cut short (no JSON object is a prefix of itself)
        text = json.dumps(draw(bad.broken(WEBHOOK_BODY)))
        return kind, delivery(draw(st.sampled_from((text, text[: draw(st.integers(0, len(text) - 1))]))))
    if kind == "altered":
        event = delivery(valid_body)
        altered = draw(bad.broken(WEBHOOK_BODY))
        assume(json.dumps(altered) != valid_body)
        event["body"] = json.dumps(altered)
        return kind, event
    if kind == "wrong_signature":
        event = delivery(valid_body)
        event["headers"]["x-hub-signature-256"] = draw(
            st.one_of(
                st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map(lambda h: "sha256=" + h),
                st.sampled_from(("", "sha256=", "sha1=" + "0" * 40, event["headers"]["x-hub-signature"])),
                bad.hostile_strings,
            )
        )
        # The right HMAC in another case or with spaces around it is the same signature, not a wrong one.
        right = delivery(valid_body)["headers"]["x-hub-signature-256"]
        assume(event["headers"]["x-hub-signature-256"].strip().lower() != right)
        return kind, event
    if kind == "missing_signature":
        event = delivery(valid_body)
        del event["headers"]["x-hub-signature-256"]
        return kind, event
    event = delivery(valid_body)
    change = draw(st.sampled_from(("method", "oversized", "base64", "event_name", "delivery_id", "no_body")))
    if change == "method":
        event["requestContext"]["http"]["method"] = draw(st.sampled_from(("GET", "PUT", "DELETE", "", "post ")))
    elif change == "oversized":
        event = delivery(json.dumps({**alert_fields(), "padding": bad.huge_text(70 * 1024)}))
    elif change == "base64":
        event["isBase64Encoded"] = True
        event["body"] = draw(st.sampled_from(("***", "not base64!", "a", "====")))
    elif change == "event_name":
        event["headers"]["x-github-event"] = draw(st.sampled_from(("push", "", "SECRET_SCANNING_ALERT", "../x")))
    elif change == "delivery_id":
        event = delivery(valid_body, delivery_id=draw(st.sampled_from(("", "../../x", "a b", "x" * 101, "ǆ"))))
    else:
        event.pop("body")
    return kind, event


def assert_webhook_rejected(harness: Harness, event: dict[str, Any], *, allowed_calls: tuple[str, ...] = ()) -> int:
    answer, error_type = harness.invoke("GitHubWebhookFunction", event)
    assert error_type is None, answer
    assert 400 <= answer["statusCode"] < 500, answer
    body = json.loads(answer["body"])
    assert body["status"] == "rejected", body
    assert body["reason"], body
    assert body["message"], body
    assert_no_secret(answer["body"], harness.log_text())
    assert "github delivery rejected" in harness.log_text()
    calls = tuple(call for call in harness.calls if call not in COLD_START_CALLS)
    assert calls == allowed_calls, f"the webhook called a backend before refusing: {calls}"
    status: int = answer["statusCode"]
    return status


def check_webhook(harness: Harness, case: tuple[str, dict[str, Any]]) -> None:
    kind, event = case
    status = assert_webhook_rejected(harness, event)
    if kind in ("altered", "wrong_signature", "missing_signature"):
        assert status == 401, (kind, status)
    if kind == "signed_malformed":
        assert status == 400, (kind, status)


def test_a_replayed_delivery_is_refused_after_one_ledger_read_and_nothing_else(harness: Harness) -> None:
    # Given a delivery id already forwarded (its claim is in the ledger)
    delivery_id = str(uuid.uuid4())
    claim_delivery(boto3.client("dynamodb"), harness.stack.physical_id("LedgerTable"), delivery_id, datetime.now(UTC))
    # When GitHub (or someone who captured it) sends it again, correctly signed
    event = delivery(json.dumps(alert_fields()), delivery_id=delivery_id)
    # Then it is refused as a replay; the only call is the read that finds the claim: no put on the bus
    assert assert_webhook_rejected(harness, event, allowed_calls=("dynamodb:GetItem",)) == 409


@pytest.mark.parametrize(
    "spoil",
    [
        lambda e: e.update(headers=["x-github-event", "secret_scanning_alert"]),
        lambda e: e.update(headers="x-github-event: ping"),
        lambda e: e.update(requestContext="POST"),
        lambda e: e["requestContext"].update(http=["POST"]),
        lambda e: e.update(headers=None, requestContext=None, body=None),
    ],
    ids=["headers a list", "headers a string", "requestContext a string", "http a list", "all null"],
)
def test_a_request_whose_parts_are_not_objects_is_answered_not_raised(harness: Harness, spoil: Any) -> None:
    event = delivery(json.dumps(alert_fields()))
    spoil(event)
    status = assert_webhook_rejected(harness, event)
    assert status in (400, 401, 405)


@pytest.mark.parametrize("event", [None, [], "POST /", 42], ids=["null", "a list", "a string", "a number"])
def test_an_invocation_that_is_not_an_object_is_answered_not_raised(harness: Harness, event: Any) -> None:
    assert assert_webhook_rejected(harness, event) == 405


def test_a_validly_signed_body_nested_thousands_deep_is_malformed_not_a_crash(harness: Harness) -> None:
    # Given a body GitHub's signature covers (the attacker has the webhook secret, or GitHub relays it)
    body = '{"action": "created", "alert": ' + "[" * 5000 + "]" * 5000 + "}"
    status = assert_webhook_rejected(harness, delivery(body))
    assert status == 400


def test_the_wrong_missing_and_altered_signatures_are_each_refused_as_unsigned(harness: Harness) -> None:
    valid_body = json.dumps(alert_fields())
    signed = delivery(valid_body)
    altered = dict(signed, body=valid_body.replace('"number": 42', '"number": 43'))
    assert altered["body"] != valid_body
    missing = delivery(valid_body)
    del missing["headers"]["x-hub-signature-256"]
    wrong = delivery(valid_body)
    wrong["headers"]["x-hub-signature-256"] = "sha256=" + "0" * 64
    other_secret = sign_delivery(delivery(valid_body, sign=False), b"not-the-stack-secret")
    for event in (altered, missing, wrong, other_secret):
        assert assert_webhook_rejected(harness, event) == 401


@FAST
@given(case=bad_webhook_deliveries())
def test_generated_bad_webhook_deliveries_are_refused_without_a_call(
    harness: Harness, case: tuple[str, dict[str, Any]]
) -> None:
    check_webhook(harness, case)


@pytest.mark.slow
@SLOW
@given(case=bad_webhook_deliveries())
def test_generated_bad_webhook_deliveries_are_refused_without_a_call_at_scale(
    harness: Harness, case: tuple[str, dict[str, Any]]
) -> None:
    check_webhook(harness, case)


# --- Step Functions task handlers --------------------------------------------------------------------------------

TASK_MODELS: dict[str, Any] = {
    "ExecuteActionFunction": ExecuteActionRequest,
    "PlanOffboardingFunction": ResponseRequest,
    "PlanLeakResponseFunction": ResponseRequest,
    "VerifyResponseFunction": VerifyBatchRequest,
    "CloseIncidentFunction": CloseRequest,
    "RequestApprovalFunction": ApprovalRequest,
}


def contract_paths_hold(contract: bad.Contract) -> None:
    """Every rule names a field of the valid document (a rule on nothing would break nothing)."""
    document = contract.valid()
    for rule in contract.fields:
        assert bad.breakages(bad.Contract(contract.name, contract.valid, (rule,)), document), (contract.name, rule.path)


def test_the_documents_the_breakages_start_from_are_valid_and_every_rule_names_one_of_their_fields() -> None:
    # The parsers only confirm the starting points are valid; they never decide what is invalid.
    assert TASK_MODELS.keys() == bad.TASK_CONTRACTS.keys() == set(TASK_HANDLERS)
    for logical_id, contract in bad.TASK_CONTRACTS.items():
        parse_model(TASK_MODELS[logical_id], contract.valid(), what="task input")
        contract_paths_hold(contract)
    for contract in bad.TERMINATION_CONTRACTS:
        parse_termination_event(contract.valid())
        contract_paths_hold(contract)
    for contract in (*bad.LEAK_CONTRACTS, WEBHOOK_BODY):
        if contract is not WEBHOOK_BODY:
            parse_leak_event(contract.valid())
        contract_paths_hold(contract)


BAD_INCIDENT_IDS = ("", "../x", "a/b", "*", "x" * 81, "inc\u200b1", bad.PLANTED_SECRETS[0])


def bad_incident_ids(valid: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
    cases = []
    for incident_id in BAD_INCIDENT_IDS:
        document = valid()
        document["incident_id"] = incident_id
        cases.append(document)
    return cases


def test_verify_response_refuses_a_malformed_incident_id_without_a_call(harness: Harness) -> None:
    for document in bad_incident_ids(bad.valid_verify_batch):
        assert_refused_by_raise(harness, "VerifyResponseFunction", document, TASK_REFUSAL)


def hand_written_task_inputs(logical_id: str) -> list[Any]:
    """Targets that must never be acted on, in every task input that carries one; and not-a-document inputs."""
    valid = bad.TASK_CONTRACTS[logical_id].valid
    cases: list[Any] = [None, [], "", bad.PLANTED_SECRETS[0], 0, {}, {"unexpected": bad.PLANTED_SECRETS[1]}]
    for target in bad.BAD_TARGETS:
        document = valid()
        if logical_id == "ExecuteActionFunction":
            document["action"]["target"] = target
        elif logical_id in ("PlanOffboardingFunction", "PlanLeakResponseFunction"):
            document["credentials"] = [target]
        elif logical_id == "VerifyResponseFunction":
            document["actions"][0]["target"] = target
        elif logical_id == "CloseIncidentFunction":
            document["still_alive"] = [target]
        else:
            document["counts_by_kind"] = {"vault_token": target}
        cases.append(document)
    cases.extend(bad_incident_ids(valid))
    document = valid()
    document["padding"] = bad.huge_text()
    cases.append(document)
    return cases


@pytest.mark.parametrize("logical_id", TASK_HANDLERS)
def test_every_hand_written_bad_task_input_is_refused_without_a_call(harness: Harness, logical_id: str) -> None:
    for document in hand_written_task_inputs(logical_id):
        assert_refused_by_raise(harness, logical_id, document, TASK_REFUSAL)


BAD_WORKLOAD_IDS = ("*", "spiffe://td/*", "spiffe://td/../admin", "..", "/", "%2e%2e")


@pytest.mark.parametrize("logical_id", ["PlanOffboardingFunction", "PlanLeakResponseFunction"])
def test_a_plan_task_refuses_a_wildcard_or_traversal_workload_id_without_a_call(
    harness: Harness, logical_id: str
) -> None:
    for workload_id in BAD_WORKLOAD_IDS:
        document = bad.valid_offboarding_request()
        document["workload_id"] = workload_id
        assert_refused_by_raise(harness, logical_id, document, TASK_REFUSAL)


task_cases = st.sampled_from(TASK_HANDLERS).flatmap(
    lambda logical_id: st.tuples(st.just(logical_id), bad.broken(bad.TASK_CONTRACTS[logical_id]))
)


def check_task(harness: Harness, case: tuple[str, Any]) -> None:
    logical_id, document = case
    assert_refused_by_raise(harness, logical_id, document, TASK_REFUSAL)


@FAST
@given(case=task_cases)
def test_generated_bad_task_inputs_are_refused_without_a_call(harness: Harness, case: tuple[str, Any]) -> None:
    check_task(harness, case)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 60,000 examples at about 6 ms each outlast the default 300 s
@settings(SLOW, max_examples=bad.SLOW_EXAMPLES * len(TASK_HANDLERS))
@given(case=task_cases)
def test_generated_bad_task_inputs_are_refused_without_a_call_at_scale(harness: Harness, case: tuple[str, Any]) -> None:
    check_task(harness, case)


# --- the CLI ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def replay_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rescind-bad-replay-") as folder:
        yield Path(folder)


def run_cli(harness: Harness, arguments: list[str]) -> tuple[int, str]:
    from typer.testing import CliRunner

    from rescind_cli.main import app

    harness.reset()
    # A wide terminal, so rich does not wrap the one line; no stack named in the environment.
    environment = {"COLUMNS": "2000", "RESCIND_STACK": ""}
    result = CliRunner().invoke(app, arguments, env=environment, catch_exceptions=False)
    return result.exit_code, result.output


def assert_cli_refused(harness: Harness, arguments: list[str], names: re.Pattern[str]) -> None:
    code, output = run_cli(harness, arguments)
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == 2, (arguments, code, output)
    assert "Traceback" not in output
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    assert names.search(lines[0]), lines[0]
    assert_no_secret(output)
    assert harness.calls == [], f"the CLI called a backend before refusing: {harness.calls}"


REF_PROBLEM = re.compile(r"credential reference|invalid [a-z-]+ reference|--workload ID, or --credential REF")
WORKLOAD_PROBLEM = re.compile(r"--workload")
REPLAY_PROBLEM = re.compile(r"is not JSON|is not one EventBridge event|is not an EventBridge event|cannot read")


def credential_commands(ref: str) -> list[list[str]]:
    return [["revoke", "--credential", ref, "--reason", "bad input test", "--yes"], ["plan", "--credential", ref]]


def test_every_hand_written_bad_reference_and_workload_is_refused_by_the_cli(harness: Harness) -> None:
    for ref in bad.HAND_WRITTEN_REFS:
        if ref.strip() == "":
            continue  # an empty --credential is "say what to act on", checked below
        for arguments in credential_commands(ref):
            assert_cli_refused(harness, arguments, REF_PROBLEM)
    assert_cli_refused(harness, ["plan"], REF_PROBLEM)
    assert_cli_refused(harness, ["revoke", "--reason", "x", "--yes"], REF_PROBLEM)
    for workload in ("", " ", "two words", "x" * 600, "a\nb", "i-\uff10\uff11\uff12\uff13", "spiffe://td/\u0455vc"):
        assert_cli_refused(harness, ["plan", "--workload", workload], WORKLOAD_PROBLEM)
        assert_cli_refused(harness, ["revoke", "--workload", workload, "--reason", "x", "--yes"], WORKLOAD_PROBLEM)


@pytest.mark.parametrize("workload", BAD_WORKLOAD_IDS)
def test_the_cli_refuses_a_wildcard_or_traversal_workload(harness: Harness, workload: str) -> None:
    assert_cli_refused(harness, ["plan", "--workload", workload], WORKLOAD_PROBLEM)


def test_the_cli_refuses_each_malformed_replay_file(harness: Harness, replay_dir: Path) -> None:
    assert_cli_refused(harness, ["replay", str(replay_dir / "missing.json")], REPLAY_PROBLEM)
    for text in ("", "{", "[]", "null", "42", f'"{bad.PLANTED_SECRETS[0]}"', '{"detail": {}}'):
        path = replay_dir / f"{uuid.uuid4().hex}.json"
        path.write_text(text)
        assert_cli_refused(harness, ["replay", str(path)], REPLAY_PROBLEM)
    path = replay_dir / "not-utf8.json"
    path.write_bytes(b"\xff\xfe{not json")
    assert_cli_refused(harness, ["replay", str(path)], REPLAY_PROBLEM)


def check_cli_ref(harness: Harness, ref: str) -> None:
    for arguments in credential_commands(ref):
        assert_cli_refused(harness, arguments, REF_PROBLEM)


def check_cli_replay(harness: Harness, replay_dir: Path, text: str) -> None:
    path = replay_dir / f"{uuid.uuid4().hex}.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        assert_cli_refused(harness, ["replay", str(path)], REPLAY_PROBLEM)
    finally:
        os.unlink(path)


@FAST
@given(ref=bad.malformed_refs())
def test_generated_bad_references_are_refused_by_the_cli(harness: Harness, ref: str) -> None:
    check_cli_ref(harness, ref)


@FAST
@given(text=bad.malformed_replay_files())
def test_generated_bad_replay_files_are_refused_by_the_cli(harness: Harness, replay_dir: Path, text: str) -> None:
    check_cli_replay(harness, replay_dir, text)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # two CLI commands an example: 10,000 take about 20 minutes on two cores
@SLOW
@given(ref=bad.malformed_refs())
def test_generated_bad_references_are_refused_by_the_cli_at_scale(harness: Harness, ref: str) -> None:
    check_cli_ref(harness, ref)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 10,000 files written and replayed outlast the default 300 s
@SLOW
@given(text=bad.malformed_replay_files())
def test_generated_bad_replay_files_are_refused_by_the_cli_at_scale(
    harness: Harness, replay_dir: Path, text: str
) -> None:
    check_cli_replay(harness, replay_dir, text)
