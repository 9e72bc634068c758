"""Leak events in their real formats → LeakAlerts; anything else refused by name, never echoing a value."""

from __future__ import annotations

import copy
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
