"""The doctor's pure parts: which trail selectors record the events a rule needs, what a rule needs by its
pattern, and that a check that could not run is a warning, never ok."""

from __future__ import annotations

from collections.abc import Iterator

import botocore.exceptions
import pytest

from rescind_cli.doctor import WARN, DeployedRule, Finding, RulesUnknown, guarded
from rescind_cli.doctor_aws import logs_write_management_events

pytestmark = pytest.mark.unit
LAMBDA = {"lambda.amazonaws.com"}


def advanced(*fields: dict[str, object]) -> dict[str, object]:
    return {"AdvancedEventSelectors": [{"Name": "selector", "FieldSelectors": list(fields)}]}


MANAGEMENT = {"Field": "eventCategory", "Equals": ["Management"]}


@pytest.mark.parametrize(
    ("selectors", "records"),
    [
        ({}, True),  # a trail that never had selectors put: CloudTrail logs every management event
        ({"EventSelectors": [{"ReadWriteType": "All", "IncludeManagementEvents": True}]}, True),
        ({"EventSelectors": [{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}]}, True),
        ({"EventSelectors": [{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}]}, False),
        ({"EventSelectors": [{"ReadWriteType": "All", "IncludeManagementEvents": False}]}, False),
        (
            {
                "EventSelectors": [
                    {"ReadWriteType": "All", "IncludeManagementEvents": True},
                    {"ReadWriteType": "All", "IncludeManagementEvents": False},
                ]
            },
            True,
        ),
        (
            {
                "EventSelectors": [
                    {"ReadWriteType": "All", "IncludeManagementEvents": True, "ExcludeManagementEventSources": []}
                ]
            },
            True,
        ),
        (advanced(MANAGEMENT), True),
        (advanced(MANAGEMENT, {"Field": "readOnly", "Equals": ["false"]}), True),
        (advanced(MANAGEMENT, {"Field": "readOnly", "Equals": ["true"]}), False),
        (advanced(MANAGEMENT, {"Field": "readOnly", "NotEquals": ["false"]}), False),
        (advanced(MANAGEMENT, {"Field": "eventSource", "NotEquals": ["lambda.amazonaws.com"]}), False),
        (advanced(MANAGEMENT, {"Field": "eventSource", "NotEquals": ["kms.amazonaws.com"]}), True),
        (advanced(MANAGEMENT, {"Field": "eventSource", "Equals": ["lambda.amazonaws.com"]}), True),
        (advanced(MANAGEMENT, {"Field": "eventSource", "Equals": ["s3.amazonaws.com"]}), False),
        (advanced({"Field": "eventCategory", "Equals": ["Data"]}), False),  # data events only
    ],
)
def test_which_trail_selectors_record_write_management_events(selectors: dict[str, object], records: bool) -> None:
    assert logs_write_management_events(selectors, LAMBDA) is records


def test_a_rule_needs_what_its_pattern_matches() -> None:
    rule = DeployedRule(
        "AnyName",
        "rescind-StartOffboardingFunctionAutoScaling",
        "default",
        "ENABLED",
        {"source": ["aws.autoscaling"], "detail-type": ["EC2 Instance-terminate Lifecycle Action"]},
    )
    assert rule.matches("aws.autoscaling")
    assert rule.matches("aws.autoscaling", "EC2 Instance-terminate Lifecycle Action")
    assert not rule.matches("aws.autoscaling", "EC2 Instance-launch Lifecycle Action")
    assert not rule.matches("aws.ec2")


def test_a_check_that_could_not_run_is_a_warning_that_says_why() -> None:
    def refused() -> Iterator[Finding]:
        error = {"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}
        raise botocore.exceptions.ClientError(error, "ListDetectors")  # type: ignore[arg-type]
        yield  # a generator, as every check is

    def rules_unread() -> Iterator[Finding]:
        raise RulesUnknown("could not check: the stack's rules could not be read (see the rules check)")
        yield

    [denied] = guarded("guardduty", "eu-west-1", refused)
    assert denied.outcome == WARN
    assert denied.region == "eu-west-1"
    assert denied.message == "could not check: ListDetectors refused: AccessDeniedException: not allowed"
    assert "ListDetectors" in denied.fix

    [unknown] = guarded("cloudtrail", "eu-west-1", rules_unread)
    assert unknown.outcome == WARN
    assert "rules could not be read" in unknown.message


def test_findings_keep_their_own_region_and_get_the_checks_otherwise() -> None:
    def mixed() -> Iterator[Finding]:
        yield Finding("health", "ok", "a")
        yield Finding("health", "ok", "b", region="us-east-1")

    assert [finding.region for finding in guarded("health", "eu-west-1", mixed)] == ["eu-west-1", "us-east-1"]
