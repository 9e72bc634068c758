"""Leak events in their real formats → LeakAlerts; anything else refused by name, never echoing a value."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from rescind.leaks.triggers import LeakAlertRejected, LeakRejectionReason, parse_leak_event
from rescind.leaks.types import SecretType
from tests.conftest import load_event

LEAKED = "hvs.EXAMPLE-not-a-real-token-0000000000"


def refused(event: Any) -> LeakAlertRejected:
    with pytest.raises(LeakAlertRejected) as caught:
        parse_leak_event(event)
    assert LEAKED not in str(caught.value)
    return caught.value


def test_the_generic_sample_is_one_token_alert_whose_value_never_serializes() -> None:
    (alert,) = parse_leak_event(load_event("secret_leaked.json")).alerts
    assert alert.secret_type is SecretType.VAULT_TOKEN
    assert alert.secret is not None
    assert alert.secret.get_secret_value() == LEAKED
    assert LEAKED not in alert.model_dump_json()
    assert LEAKED not in repr(alert)
    assert LEAKED not in alert.describe


def test_health_names_every_affected_key_once() -> None:
    event = load_event("health_risk_credentials_exposed.json")
    event["detail"]["affectedEntities"].append({"entityValue": "AKIAIOSFODNN7EXAMPLE"})
    alerts = parse_leak_event(event).alerts
    assert [a.access_key_id for a in alerts] == ["AKIAIOSFODNN7EXAMPLE", "AKIAI44QH8DHBEXAMPLE"]
    assert {a.account_id for a in alerts} == {"123456789012"}


@pytest.mark.parametrize(
    "code",
    [
        "AWS_RISK_CREDENTIALS_EXPOSED",
        "AWS_RISK_CREDENTIALS_EXPOSURE_SUSPECTED",
        "AWS_RISK_CREDENTIALS_COMPROMISED",
        "AWS_RISK_CREDENTIALS_COMPROMISE_SUSPECTED",
        "AWS_RISK_IAM_QUARANTINE",
    ],
)
def test_every_health_risk_code_is_a_leak(code: str) -> None:
    event = load_event("health_risk_credentials_exposed.json")
    event["detail"]["eventTypeCode"] = code
    assert len(parse_leak_event(event).alerts) == 2


def test_another_health_code_is_not_a_leak() -> None:
    event = load_event("health_risk_credentials_exposed.json")
    event["detail"]["eventTypeCode"] = "AWS_EC2_INSTANCE_STORE_DRIVE_PERFORMANCE_DEGRADED"
    assert refused(event).reason is LeakRejectionReason.NOT_A_LEAK


def test_guardduty_names_the_role_and_the_finding_time() -> None:
    (alert,) = parse_leak_event(load_event("guardduty_instance_credential_exfiltration.json")).alerts
    assert alert.secret_type is SecretType.AWS_ROLE_SESSIONS
    assert alert.role_name == "payments-worker-instance"
    assert alert.found_at.isoformat().startswith("2026-11-24T09:19:58")


def test_another_guardduty_finding_is_not_a_leak() -> None:
    event = load_event("guardduty_instance_credential_exfiltration.json")
    event["detail"]["type"] = "Recon:EC2/PortProbeUnprotectedPort"
    assert refused(event).reason is LeakRejectionReason.NOT_A_LEAK


def test_an_unknown_secret_type_is_named_as_such() -> None:
    event = load_event("secret_leaked.json")
    event["detail"]["secret_type"] = "slack_token"
    problem = refused(event)
    assert problem.reason is LeakRejectionReason.UNKNOWN_TYPE
    assert "secret_type" in str(problem)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: e["detail"].pop("found_at"), "found_at"),
        (lambda e: e["detail"].update(found_at="yesterday"), "found_at"),
        (lambda e: e["detail"].update(extra="field"), "extra"),
        (lambda e: e["detail"].pop("secret"), "secret"),
        (lambda e: e.update(account="12345"), "account"),
        (lambda e: e["detail"].update(secret_type="aws_access_key"), "access key"),
    ],
)
def test_a_malformed_generic_event_is_refused_by_field(change: Any, field: str) -> None:
    event = copy.deepcopy(load_event("secret_leaked.json"))
    change(event)
    problem = refused(event)
    assert problem.reason is LeakRejectionReason.MALFORMED
    assert field in str(problem)


def test_an_oversized_event_is_refused() -> None:
    event = load_event("secret_leaked.json")
    event["detail"]["source_url"] = "x" * 70_000
    assert refused(event).reason is LeakRejectionReason.OVERSIZED


@pytest.mark.parametrize("event", [None, [], "text", {"source": "rescind", "detail-type": "Workload Terminated"}])
def test_what_is_not_a_leak_trigger_is_refused(event: Any) -> None:
    assert refused(event).reason in {LeakRejectionReason.MALFORMED, LeakRejectionReason.NOT_A_TRIGGER}


def test_a_digest_alone_is_enough_for_a_kv_value() -> None:
    event = load_event("secret_leaked.json")
    event["detail"]["secret_type"] = "kv_value"
    del event["detail"]["secret"]
    event["detail"]["secret_sha256"] = "A" * 64
    (alert,) = parse_leak_event(event).alerts
    assert alert.secret is None
    assert alert.secret_sha256 == "a" * 64


# --- decided whole: what acts, what is unresolved, what is only recorded --------------------------------------

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def health_with_entities(*values: str) -> dict[str, Any]:
    event = load_event("health_risk_credentials_exposed.json")
    event["resources"] = []
    event["detail"].pop("eventMetadata")
    event["detail"]["affectedEntities"] = [{"entityValue": value} for value in values]
    return event


def test_health_reads_the_real_shape_keys_from_entities_resources_and_metadata_once() -> None:
    event = load_event("health_risk_credentials_exposed.json")
    event["detail"]["eventMetadata"]["publicKey"] = "AKIAJEXAMPLEKEY00003"
    decided = parse_leak_event(event)
    keys = [alert.access_key_id for alert in decided.alerts]
    assert keys == ["AKIAIOSFODNN7EXAMPLE", "AKIAI44QH8DHBEXAMPLE", "AKIAJEXAMPLEKEY00003"]
    assert decided.unresolved == ()
    assert "page 1 of 1" in decided.summary
    assert "exposed at https://github.com/octo-org/octo-repo/blob/3f2a1c9/deploy/.env" in decided.summary


def test_health_takes_a_user_of_the_affected_account_and_records_the_rest_as_unresolved() -> None:
    # Given a Health event naming a key, a user by ARN, a user in another account, and an instance ARN
    event = health_with_entities(
        "AKIAIOSFODNN7EXAMPLE",
        "arn:aws:iam::123456789012:user/ops/deploy-bot",
        "arn:aws:iam::210987654321:user/elsewhere",
        "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc",
    )

    decided = parse_leak_event(event)

    # Then the key and the user act, and what is neither, or elsewhere, is unresolved with a reason each
    assert [(a.secret_type, a.access_key_id, a.user_name) for a in decided.alerts] == [
        (SecretType.AWS_ACCESS_KEY, "AKIAIOSFODNN7EXAMPLE", None),
        (SecretType.AWS_IAM_USER, None, "deploy-bot"),
    ]
    assert {a.account_id for a in decided.alerts} == {"123456789012"}
    assert len(decided.unresolved) == 2
    assert "not in the affected account 123456789012" in decided.unresolved[0]
    assert "neither an access key id nor an IAM user" in decided.unresolved[1]


def test_health_naming_nothing_is_still_an_incident() -> None:
    decided = parse_leak_event(health_with_entities())
    assert decided.alerts == ()
    assert decided.unresolved == ("the event names no affected entity: find the exposed key from the Health console",)


def test_health_names_an_unprintable_entity_by_position_only() -> None:
    decided = parse_leak_event(health_with_entities("AKIAIOSFODNN7EXAMPLE", "bad\u202evalue with spaces"))
    assert decided.unresolved == ("affected entity #2 is neither an access key id nor an IAM user",)


def test_a_guardduty_sample_finding_is_recorded_and_never_acted_on() -> None:
    event = load_event("guardduty_instance_credential_exfiltration.json")
    event["detail"]["service"]["additionalInfo"] = {"sample": True, "value": "{}", "type": "default"}
    decided = parse_leak_event(event)
    assert decided.alerts == ()
    assert decided.record_only == "a sample finding (GuardDuty's Generate sample findings)"


def test_a_guardduty_finding_on_another_resource_type_is_not_a_leak() -> None:
    event = load_event("guardduty_instance_credential_exfiltration.json")
    event["detail"]["resource"] = {"resourceType": "Instance", "instanceDetails": {"instanceId": "i-0abc1234def567890"}}
    assert refused(event).reason is LeakRejectionReason.NOT_A_LEAK


def github_event(**detail: Any) -> dict[str, Any]:
    """A Secret Scanning Alert as the webhook puts it on the bus, from GitHub's published `reopened` example."""
    published = json.loads((CORPUS / "github" / "reopened.json").read_text())
    notice = {
        "delivery_id": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "action": published["action"],
        "alert_number": published["alert"]["number"],
        "secret_type": published["alert"]["secret_type"],
        "repository": published["repository"]["full_name"],
        "created_at": "2026-11-02T14:05:11Z",
        "received_at": "2026-11-02T14:05:12Z",
        "state": "open",
        **detail,
    }
    return {
        "version": "0",
        "id": "0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6",
        "detail-type": "Secret Scanning Alert",
        "source": "rescind.github",
        "account": "123456789012",
        "time": "2026-11-02T14:05:12Z",
        "region": "us-east-1",
        "resources": [],
        "detail": notice,
    }


@pytest.mark.parametrize(
    ("detail", "decision"),
    [
        ({}, "unresolved"),  # adafruit_io_key, as published: not a kind Rescind holds
        ({"secret_type": "hashicorp_vault_service_token"}, "act"),
        ({"secret_type": "aws_access_key_id", "action": "publicly_leaked"}, "act"),
        ({"secret_type": "aws_access_key_id", "action": "validated", "validity": "active"}, "act"),
        ({"secret_type": "aws_access_key_id", "action": "validated", "validity": "inactive"}, "recorded"),
        ({"secret_type": "aws_access_key_id", "state": "resolved", "resolution": "false_positive"}, "recorded"),
        ({"secret_type": "aws_access_key_id", "state": "resolved", "resolution": "used_in_tests"}, "recorded"),
        ({"secret_type": "aws_access_key_id", "state": "resolved", "resolution": "revoked"}, "act"),
        ({"secret_type": "aws_secret_access_key"}, "act"),  # its key id is found beside it (test_locate)
        ({"secret_type": "aws_session_token"}, "unresolved"),
        ({"secret_type": "github_personal_access_token"}, "unresolved"),
    ],
)
def test_a_github_alert_is_decided_by_its_type_state_resolution_and_validity(
    detail: dict[str, Any], decision: str
) -> None:
    decided = parse_leak_event(github_event(**detail))
    got = "recorded" if decided.record_only else ("act" if decided.alerts else "unresolved")
    assert got == decision, decided
    if decision == "unresolved":
        assert "is not a kind Rescind acts on" in decided.unresolved[0]


@pytest.mark.parametrize("repository", ["../..", "octo/..", "../repo", "./x", "octo/."])
def test_a_github_repository_of_dots_is_refused_since_it_would_walk_the_api_path(repository: str) -> None:
    # Given GitHub's published alert, as the webhook puts it on the bus, naming a repository of dots
    event = github_event(repository=repository)

    # Then it is refused as malformed before anything reads the alert from GitHub's API
    with pytest.raises(LeakAlertRejected):
        parse_leak_event(event)
