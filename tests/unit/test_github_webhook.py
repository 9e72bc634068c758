"""The GitHub webhook's pure logic: signature, parsing, action filter, value stripping, settings, arguments."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rescind.config import GitHubSettings
from rescind.exceptions import ConfigurationError, InvalidInput
from rescind.leaks.github import (
    LEAK_ACTIONS,
    MAX_BODY_BYTES,
    ReceiptStatus,
    WebhookRejected,
    WebhookRejectionReason,
    fetch_alert_secret,
    github_event_name,
    github_signature,
    loggable_header,
    parse_secret_scanning_delivery,
    receive_github_delivery,
    validate_repository,
    verify_github_signature,
)
from tests.conftest import load_event

# The secret events/github_secret_scanning_webhook.json is signed with. A sample, not a credential.
SAMPLE_WEBHOOK_SECRET = b"rescind-sample-github-webhook-secret"
SAMPLE_DELIVERY_ID = "3f1c9a40-b7e2-11f0-8a5e-6d2c4b1e9f07"
RECEIVED_AT = datetime(2026, 11, 2, 14, 5, 12, tzinfo=UTC)
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rescind/github-webhook-AbCdEf"
LEAKED_VALUE = "hvs.CAESIJlWh4mZ0rQ7sample0leaked0value0never0forwarded"


def _sample() -> tuple[dict[str, str], bytes]:
    event = load_event("github_secret_scanning_webhook.json")
    return dict(event["headers"]), event["body"].encode()


def _payload() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(_sample()[1])
    return loaded


def _signed(payload: dict[str, Any], *, event: str = "secret_scanning_alert") -> tuple[dict[str, str], bytes]:
    body = json.dumps(payload).encode()
    headers = {
        "x-github-event": event,
        "x-github-delivery": SAMPLE_DELIVERY_ID,
        "x-hub-signature-256": github_signature(SAMPLE_WEBHOOK_SECRET, body),
    }
    return headers, body


class _MustNotBeCalled:
    """Stands where a client goes in checks that must fail before any AWS call: any use fails the test."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"{name} was called on a delivery that should have been refused first")


# --- signature ---------------------------------------------------------------------------------------------------


def test_the_signature_matches_githubs_documented_example() -> None:
    # GitHub's "Validating webhook deliveries" test values
    secret, body = b"It's a Secret to Everybody", b"Hello, World!"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

    assert github_signature(secret, body) == expected
    verify_github_signature(secret, body, expected)


def test_the_sample_events_signature_is_valid() -> None:
    headers, body = _sample()

    verify_github_signature(SAMPLE_WEBHOOK_SECRET, body, headers["x-hub-signature-256"])


@pytest.mark.parametrize("header", [None, "", "   "])
def test_a_missing_signature_is_unsigned(header: str | None) -> None:
    _, body = _sample()

    with pytest.raises(WebhookRejected) as raised:
        verify_github_signature(SAMPLE_WEBHOOK_SECRET, body, header)

    assert raised.value.reason is WebhookRejectionReason.UNSIGNED
    assert raised.value.http_status == 401


def test_a_signature_of_another_body_is_refused() -> None:
    headers, body = _sample()
    tampered = body.replace(b'"number":42', b'"number":43')

    with pytest.raises(WebhookRejected) as raised:
        verify_github_signature(SAMPLE_WEBHOOK_SECRET, tampered, headers["x-hub-signature-256"])

    assert raised.value.reason is WebhookRejectionReason.BAD_SIGNATURE


def test_a_signature_under_another_secret_is_refused() -> None:
    _, body = _sample()

    with pytest.raises(WebhookRejected) as raised:
        verify_github_signature(SAMPLE_WEBHOOK_SECRET, body, github_signature(b"another secret", body))

    assert raised.value.reason is WebhookRejectionReason.BAD_SIGNATURE


@pytest.mark.parametrize(
    "header",
    [
        # GitHub's legacy header, correctly computed: still refused, only SHA-256 is accepted
        "sha1=" + hmac.new(SAMPLE_WEBHOOK_SECRET, b"{}", hashlib.sha1).hexdigest(),
        "sha512=" + hmac.new(SAMPLE_WEBHOOK_SECRET, b"{}", hashlib.sha512).hexdigest(),
        hmac.new(SAMPLE_WEBHOOK_SECRET, b"{}", hashlib.sha256).hexdigest(),  # no algorithm prefix
        "sha256=",
        "sha256=zz",
        "sha256=\u00e9\u00e9",  # not ASCII: refused, not a TypeError from compare_digest
    ],
)
def test_other_algorithms_and_shapes_are_refused(header: str) -> None:
    with pytest.raises(WebhookRejected) as raised:
        verify_github_signature(SAMPLE_WEBHOOK_SECRET, b"{}", header)

    assert raised.value.reason is WebhookRejectionReason.BAD_SIGNATURE
    assert header not in str(raised.value)


def test_an_empty_webhook_secret_is_a_configuration_error_not_a_rejection() -> None:
    body = b"{}"

    with pytest.raises(ConfigurationError) as raised:
        verify_github_signature(b"", body, github_signature(b"", body))

    assert not isinstance(raised.value, WebhookRejected)


# --- parsing -----------------------------------------------------------------------------------------------------


def test_the_sample_parses_to_references_only() -> None:
    headers, body = _sample()

    notice = parse_secret_scanning_delivery(headers, body, received_at=RECEIVED_AT)

    assert notice.delivery_id == SAMPLE_DELIVERY_ID
    assert notice.action == "created"
    assert notice.is_leak
    assert notice.alert_number == 42
    assert notice.secret_type == "hashicorp_vault_service_token"
    assert notice.secret_type_display_name == "HashiCorp Vault Service Token"
    assert notice.repository == "octo-org/octo-repo"
    assert notice.html_url == "https://github.com/octo-org/octo-repo/security/secret-scanning/42"
    assert notice.created_at == datetime(2026, 11, 2, 14, 5, 11, tzinfo=UTC)
    assert notice.received_at == RECEIVED_AT
    assert notice.validity == "unknown"
    assert notice.publicly_leaked is False


def test_header_names_are_matched_whatever_their_case() -> None:
    headers, body = _sample()
    mixed = {name.title(): value for name, value in headers.items()}

    assert parse_secret_scanning_delivery(mixed, body).delivery_id == SAMPLE_DELIVERY_ID


def test_a_value_in_the_payload_never_reaches_the_notice() -> None:
    # Given a payload that (unlike GitHub's documented webhook) carries the leaked value, as the REST API does
    payload = _payload()
    payload["alert"]["secret"] = LEAKED_VALUE
    payload["alert"]["resolution_comment"] = LEAKED_VALUE
    headers, body = _signed(payload)

    notice = parse_secret_scanning_delivery(headers, body)

    # Then nothing of it is in the notice, whichever way it is serialized
    assert "secret" not in type(notice).model_fields
    assert LEAKED_VALUE not in notice.model_dump_json()
    assert LEAKED_VALUE not in repr(notice)


@pytest.mark.parametrize("action", sorted(LEAK_ACTIONS))
def test_leak_actions_are_forwarded(action: str) -> None:
    payload = _payload()
    payload["action"] = action

    assert parse_secret_scanning_delivery(*_signed(payload)).is_leak


@pytest.mark.parametrize("action", ["resolved", "assigned", "unassigned", "a_future_action"])
def test_other_actions_are_accepted_but_not_forwarded(action: str) -> None:
    payload = _payload()
    payload["action"] = action

    assert not parse_secret_scanning_delivery(*_signed(payload)).is_leak


def test_an_alert_without_created_at_is_dated_by_its_receipt() -> None:
    # GitHub's own `reopened` example carries only number, secret_type and the resolution fields
    payload = _payload()
    payload["action"] = "reopened"
    payload["alert"] = {"number": 191, "secret_type": "adafruit_io_key", "resolution": None}

    notice = parse_secret_scanning_delivery(*_signed(payload), received_at=RECEIVED_AT)

    assert notice.created_at == RECEIVED_AT
    assert notice.html_url is None


def test_an_unknown_validity_state_is_dropped_not_refused() -> None:
    payload = _payload()
    payload["alert"]["validity"] = "a_future_state"

    assert parse_secret_scanning_delivery(*_signed(payload)).validity is None


@pytest.mark.parametrize("event", ["issues", "push", "secret_scanning_alert_location", "ping"])
def test_other_events_are_unsupported(event: str) -> None:
    headers, body = _signed(_payload(), event=event)

    with pytest.raises(WebhookRejected) as raised:
        parse_secret_scanning_delivery(headers, body)

    assert raised.value.reason is WebhookRejectionReason.UNSUPPORTED_EVENT
    assert raised.value.http_status == 400


def test_ping_is_recognised_by_its_event_name() -> None:
    assert github_event_name({"X-GitHub-Event": "ping"}) == "ping"


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"\xff\xfe", b"[]", b'"text"', b"{}", b'{"action": "created"}'],
    ids=["not-json", "not-utf8", "array", "string", "empty-object", "no-alert"],
)
def test_a_malformed_body_is_refused(body: bytes) -> None:
    headers, _ = _signed(_payload())

    with pytest.raises(WebhookRejected) as raised:
        parse_secret_scanning_delivery(headers, body)

    assert raised.value.reason is WebhookRejectionReason.MALFORMED
    assert raised.value.http_status == 400


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("alert", "number"), 0),
        (("alert", "number"), "forty-two"),
        (("alert", "secret_type"), "Secret Type With Spaces"),
        (("repository", "full_name"), "octo-org/octo-repo/../x"),
        (("alert", "html_url"), "javascript:alert(1)"),
        (("action",), "Created!"),
    ],
)
def test_a_bad_field_is_malformed_and_its_value_is_not_echoed(path: tuple[str, ...], value: object) -> None:
    payload = _payload()
    target = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value

    with pytest.raises(WebhookRejected) as raised:
        parse_secret_scanning_delivery(*_signed(payload))

    assert raised.value.reason is WebhookRejectionReason.MALFORMED
    assert str(value) not in str(raised.value)


@pytest.mark.parametrize("delivery_id", [None, "", "not a guid!", "x" * 101])
def test_a_missing_or_odd_delivery_id_is_malformed(delivery_id: str | None) -> None:
    headers, body = _signed(_payload())
    if delivery_id is None:
        del headers["x-github-delivery"]
    else:
        headers["x-github-delivery"] = delivery_id

    with pytest.raises(WebhookRejected) as raised:
        parse_secret_scanning_delivery(headers, body)

    assert raised.value.reason is WebhookRejectionReason.MALFORMED


def test_only_well_formed_headers_are_fit_to_log() -> None:
    headers = {"X-GitHub-Delivery": "id with spaces\nand a new line", "X-GitHub-Event": "secret_scanning_alert"}

    assert loggable_header(headers, "x-github-delivery") is None
    assert loggable_header(headers, "x-github-event") == "secret_scanning_alert"


# --- the whole delivery, up to the first AWS call ---------------------------------------------------------------


def _receive(headers: dict[str, str], body: bytes) -> None:
    untouchable: Any = _MustNotBeCalled()
    receive_github_delivery(
        headers,
        body,
        webhook_secret=lambda: SAMPLE_WEBHOOK_SECRET,
        dynamodb=untouchable,
        ledger_table_name="ledger",
        events=untouchable,
        event_bus_name="default",
        now=RECEIVED_AT,
    )


def test_an_oversized_body_is_refused_before_its_signature_is_checked() -> None:
    payload = _payload()
    payload["padding"] = "x" * MAX_BODY_BYTES
    headers, body = _signed(payload)  # correctly signed, still too big

    with pytest.raises(WebhookRejected) as raised:
        _receive(headers, body)

    assert raised.value.reason is WebhookRejectionReason.OVERSIZED
    assert raised.value.http_status == 413


def test_a_mis_signed_delivery_never_reaches_aws() -> None:
    headers, body = _sample()
    headers["x-hub-signature-256"] = github_signature(b"guessed", body)

    with pytest.raises(WebhookRejected) as raised:
        _receive(headers, body)

    assert raised.value.reason is WebhookRejectionReason.BAD_SIGNATURE


def test_a_signed_unsupported_event_never_reaches_aws() -> None:
    headers, body = _signed(_payload(), event="issues")

    with pytest.raises(WebhookRejected) as raised:
        _receive(headers, body)

    assert raised.value.reason is WebhookRejectionReason.UNSUPPORTED_EVENT


def test_a_form_encoded_delivery_is_refused_with_how_to_fix_the_hook() -> None:
    # Given the sample delivery as GitHub sends it when the hook's content type is form-urlencoded
    import urllib.parse

    body = ("payload=" + urllib.parse.quote_plus(_sample()[1].decode())).encode()
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-github-event": "secret_scanning_alert",
        "x-github-delivery": SAMPLE_DELIVERY_ID,
        "x-hub-signature-256": github_signature(SAMPLE_WEBHOOK_SECRET, body),
    }

    with pytest.raises(WebhookRejected) as raised:
        _receive(headers, body)

    assert raised.value.reason is WebhookRejectionReason.FORM_ENCODED
    assert raised.value.http_status == 415
    assert "choose Content type application/json" in str(raised.value)


def test_a_location_event_is_acknowledged_and_goes_no_further() -> None:
    # GitHub's published secret_scanning_alert_location example: the alert's own delivery is the trigger
    published = (Path(__file__).resolve().parents[1] / "corpus" / "github" / "location_created.json").read_bytes()
    headers = {
        "x-github-event": "secret_scanning_alert_location",
        "x-github-delivery": SAMPLE_DELIVERY_ID,
        "x-hub-signature-256": github_signature(SAMPLE_WEBHOOK_SECRET, published),
    }
    untouchable: Any = _MustNotBeCalled()
    receipt = receive_github_delivery(
        headers,
        published,
        webhook_secret=lambda: SAMPLE_WEBHOOK_SECRET,
        dynamodb=untouchable,
        ledger_table_name="ledger",
        events=untouchable,
        event_bus_name="default",
        now=RECEIVED_AT,
    )
    assert (receipt.status, receipt.http_status) == (ReceiptStatus.IGNORED, 200)


def test_every_rejection_reason_has_an_http_status() -> None:
    statuses = {reason: WebhookRejected(reason, "x").http_status for reason in WebhookRejectionReason}

    assert statuses[WebhookRejectionReason.REPLAYED] == 409
    assert all(400 <= status < 500 for status in statuses.values())
    assert issubclass(WebhookRejected, InvalidInput)


# --- settings and arguments ---------------------------------------------------------------------------------------


def test_settings_read_the_environment() -> None:
    settings = GitHubSettings.from_environ({"GITHUB_WEBHOOK_SECRET_ARN": SECRET_ARN, "GITHUB_TOKEN_SECRET_ARN": ""})

    assert settings.required("github_webhook_secret_arn") == SECRET_ARN
    assert settings.github_api_url == "https://api.github.com"
    assert settings.github_token_secret_arn is None  # the template's empty default means "none"


def test_the_webhook_secret_is_required_only_where_it_is_used() -> None:
    # The leak responder reads the API URL and the token only
    settings = GitHubSettings.from_environ({"GITHUB_TOKEN_SECRET_ARN": SECRET_ARN})

    assert settings.github_token_secret_arn == SECRET_ARN
    with pytest.raises(ConfigurationError, match="GITHUB_WEBHOOK_SECRET_ARN"):
        settings.required("github_webhook_secret_arn")


@pytest.mark.parametrize(
    "environ",
    [
        {"GITHUB_WEBHOOK_SECRET_ARN": "rescind/github-webhook"},
        {"GITHUB_TOKEN_SECRET_ARN": "ghp_a0token0in0the0wrong0place"},
        {"GITHUB_WEBHOOK_SECRET_ARN": SECRET_ARN, "GITHUB_API_URL": "http://github.example.com"},
        {"GITHUB_WEBHOOK_SECRET_ARN": SECRET_ARN, "GITHUB_API_URL": "ftp://api.github.com"},
    ],
    ids=["not-an-arn", "token-not-an-arn", "plain-http", "not-http"],
)
def test_bad_settings_are_refused(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError) as raised:
        GitHubSettings.from_environ(environ)

    for value in environ.values():
        assert value not in str(raised.value)


def test_a_github_enterprise_api_url_keeps_its_path() -> None:
    settings = GitHubSettings.from_environ(
        {"GITHUB_WEBHOOK_SECRET_ARN": SECRET_ARN, "GITHUB_API_URL": "https://ghe.example.com/api/v3/"}
    )

    assert settings.github_api_url == "https://ghe.example.com/api/v3"


@pytest.mark.parametrize("repository", ["octo-repo", "a/b/c", "../octo-repo", "octo-org/..", "octo org/repo", ""])
def test_a_bad_repository_is_refused(repository: str) -> None:
    with pytest.raises(InvalidInput):
        validate_repository(repository)


@pytest.mark.parametrize(
    ("api_url", "repository", "alert_number", "token"),
    [
        ("https://api.github.com", "octo-org/../../user", 42, "t"),
        ("https://api.github.com", "octo-org/octo-repo", 0, "t"),
        ("https://api.github.com", "octo-org/octo-repo", True, "t"),
        ("https://api.github.com", "octo-org/octo-repo", 42, ""),
        ("http://api.github.com", "octo-org/octo-repo", 42, "t"),  # the token must not travel in clear
        ("https://user:pass@api.github.com", "octo-org/octo-repo", 42, "t"),
    ],
)
def test_fetch_alert_secret_refuses_bad_arguments_before_any_request(
    api_url: str, repository: str, alert_number: int, token: str
) -> None:
    # No server listens anywhere here: reaching the network would raise GitHubUnavailable, not InvalidInput
    with pytest.raises(InvalidInput):
        fetch_alert_secret(api_url, token, repository, alert_number, timeout=0.1)


def test_the_sample_event_is_a_function_url_event() -> None:
    event = load_event("github_secret_scanning_webhook.json")

    assert event["version"] == "2.0"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["isBase64Encoded"] is False
    assert all(name == name.lower() for name in event["headers"])
    assert event["headers"]["user-agent"].startswith("GitHub-Hookshot/")
    assert int(event["headers"]["content-length"]) == len(event["body"].encode())
    assert "secret" not in json.loads(event["body"])["alert"]  # GitHub's webhook alert carries no value
