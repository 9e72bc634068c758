"""Issue 15.12: nothing fails silently in production. Every dead-letter and on-failure queue, every state machine and
every function has an alarm; the alarms publish to the notification topic, whose key (not alias/aws/sns) lets
CloudWatch in; every role that publishes may use the key; one dashboard shows it all; the README says what to do
when each alarm fires."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from rescind_local.template import load_template, translate_template
from tests.infra.policy_scan import as_list, role_statements
from tests.infra.readme import readme_section
from tests.infra.test_iam_scope import ACCOUNT, STACK, boundary_statements, central_resolver, decide

REPO_ROOT = Path(__file__).resolve().parents[2]
TOPIC = {"Ref": "NotificationTopic"}
REGION = "us-east-1"
EVERYTHING = [{"Effect": "Allow", "Action": "*", "Resource": "*"}]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(REPO_ROOT / "template.yaml")


def of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: body["Properties"] for name, body in template["Resources"].items() if body["Type"] == resource_type}


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return of_type(template, "AWS::CloudWatch::Alarm")


def watched(alarm: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(namespace, metric, dimension value) of each metric the alarm reads, plain or in its metric math."""
    if "MetricName" in alarm:
        ((dimension,),) = [alarm["Dimensions"]]
        return [(alarm["Namespace"], alarm["MetricName"], dimension["Value"])]
    found = []
    for query in alarm["Metrics"]:
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            (dimension,) = metric["Dimensions"]
            found.append((metric["Namespace"], metric["MetricName"], dimension["Value"]))
    return found


def fires_on_any(alarm: dict[str, Any]) -> bool:
    return alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_every_queue_has_an_alarm_on_a_message_waiting(template: dict[str, Any]) -> None:
    # Every queue of the stack, SAM's included, is a dead-letter or an on-failure queue.
    queues = set(of_type(translate_template(template), "AWS::SQS::Queue"))
    watching = {
        value["Fn::GetAtt"][0]: alarm
        for alarm in alarms(template).values()
        for namespace, metric, value in watched(alarm)
        if (namespace, metric) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    }

    assert len(queues) >= 7
    assert set(watching) == queues
    for queue, alarm in watching.items():
        assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
        assert alarm["Statistic"] == "Maximum"
        assert fires_on_any(alarm), queue


def test_every_state_machine_has_an_alarm_on_failed_or_timed_out_runs(template: dict[str, Any]) -> None:
    machines = set(of_type(template, "AWS::Serverless::StateMachine"))
    watching: dict[str, set[str]] = {}
    for alarm in alarms(template).values():
        for namespace, metric, value in watched(alarm):
            if namespace == "AWS/States":
                watching.setdefault(value["Ref"], set()).add(metric)
                assert fires_on_any(alarm)
                (expression,) = [query for query in alarm["Metrics"] if query.get("ReturnData")]
                assert expression["Expression"] == "FILL(failed, 0) + FILL(timedout, 0)"

    assert len(machines) == 3
    assert watching == {machine: {"ExecutionsFailed", "ExecutionsTimedOut"} for machine in machines}


def test_every_function_has_an_alarm_on_its_errors(template: dict[str, Any]) -> None:
    functions = set(of_type(template, "AWS::Serverless::Function"))
    watching = {
        value["Ref"]: alarm
        for alarm in alarms(template).values()
        for namespace, metric, value in watched(alarm)
        if (namespace, metric) == ("AWS/Lambda", "Errors")
    }

    assert set(watching) == functions
    for function, alarm in watching.items():
        assert alarm["Statistic"] == "Sum"
        assert fires_on_any(alarm), function


def test_every_alarm_notifies_the_topic_and_stays_quiet_without_data(template: dict[str, Any]) -> None:
    names = [alarm["AlarmName"]["Fn::Sub"] for alarm in alarms(template).values()]

    assert len(names) == len(set(names))
    for name, alarm in alarms(template).items():
        assert alarm["AlarmActions"] == [TOPIC], name
        assert alarm["TreatMissingData"] == "notBreaching", name  # an idle queue or function publishes nothing
        assert alarm["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-"), name


# --- the topic's key ------------------------------------------------------------------------------------------


def key_policy(template: dict[str, Any]) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = central_resolver(template).resolve(
        template["Resources"]["NotificationKey"]["Properties"]["KeyPolicy"]
    )["Statement"]
    return statements


def allowed_to_service(statements: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    return [s for s in statements if service in as_list((s.get("Principal") or {}).get("Service", []))]


def test_the_topic_is_encrypted_with_the_stacks_key_not_the_aws_managed_one(template: dict[str, Any]) -> None:
    topic = template["Resources"]["NotificationTopic"]["Properties"]

    # An alarm cannot publish to a topic under alias/aws/sns: nobody can add CloudWatch to that key's policy.
    assert topic["KmsMasterKeyId"] == {"Ref": "NotificationKey"}
    assert template["Resources"]["NotificationKey"]["Type"] == "AWS::KMS::Key"


def test_the_keys_policy_lets_cloudwatch_encrypt_for_this_stacks_alarms_only(template: dict[str, Any]) -> None:
    cloudwatch = allowed_to_service(key_policy(template), "cloudwatch.amazonaws.com")
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
    resolver = central_resolver(template)

    assert cloudwatch
    for name, alarm in alarms(template).items():
        arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{resolver.resolve(alarm['AlarmName'])}"
        context = {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": arn}
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            assert decide(cloudwatch, EVERYTHING, action, key, context), (name, action)
    # Another stack's alarm, or another account's, gets nothing from it.
    other_stack = {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:x-y"}
    other_account = {
        "aws:SourceAccount": "999999999999",
        "aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:999999999999:alarm:{STACK}-sweep-failures",
    }
    for context in (other_stack, other_account):
        assert not decide(cloudwatch, EVERYTHING, "kms:GenerateDataKey", key, context)


def _publish_grants(template: dict[str, Any], statements: list[dict[str, Any]]) -> bool:
    topic = central_resolver(template).resolve(TOPIC)
    return any(
        s["Effect"] == "Allow" and "sns:Publish" in as_list(s["Action"]) and topic in as_list(s["Resource"])
        for s in statements
    )


def test_every_role_that_publishes_to_the_topic_may_use_its_key_through_sns_only(template: dict[str, Any]) -> None:
    resolver = central_resolver(template)
    boundary = boundary_statements(template, resolver, "RescindFunctionsBoundary")
    key = resolver.resolve(template["Resources"]["NotificationPublishPolicy"]["Properties"]["PolicyDocument"])[
        "Statement"
    ][1]["Resource"]
    roles = {
        name: (resolver.resolve(role_statements(template, name)), boundary if kind.endswith("Function") else EVERYTHING)
        for name, body in template["Resources"].items()
        if (kind := body["Type"]) in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine")
    }
    publishers = {name for name, (identity, _) in roles.items() if _publish_grants(template, identity)}
    via_sns = {"kms:ViaService": f"sns.{REGION}.amazonaws.com"}

    assert {
        "StartOffboardingFunction",
        "StartLeakResponseFunction",
        "RequestApprovalFunction",
        "LedgerArchiveFunction",
        "OffboardingStateMachine",
        "ManualRevocationStateMachine",
        "LeakResponseStateMachine",
    } <= publishers
    assert key == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{resolver.resolve({'Ref': 'NotificationKey'})}"
    for name in publishers:
        identity, bound = roles[name]
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            assert decide(identity, bound, action, key, via_sns), (name, action)
            assert not decide(identity, bound, action, key, {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}), name
    # The key is used for nothing else: no role that does not publish holds it.
    for name, (identity, bound) in roles.items():
        if name not in publishers:
            assert not decide(identity, bound, "kms:Decrypt", key, via_sns), name


# --- the dashboard and the runbook ----------------------------------------------------------------------------


def test_one_dashboard_shows_every_alarm_queue_state_machine_and_function(template: dict[str, Any]) -> None:
    (dashboard,) = of_type(template, "AWS::CloudWatch::Dashboard").values()
    text = dashboard["DashboardBody"]["Fn::Sub"]
    named = set(re.findall(r"\$\{(\w+)(?:\.\w+)?\}", text))
    body = json.loads(re.sub(r"\$\{[^}]+\}", "x", text))

    assert {widget["type"] for widget in body["widgets"]} == {"alarm", "metric"}
    assert set(alarms(template)) <= named
    for resource_type in ("AWS::SQS::Queue", "AWS::Serverless::StateMachine", "AWS::Serverless::Function"):
        assert set(of_type(template, resource_type)) <= named, resource_type


def test_the_readme_says_what_to_do_when_each_alarm_fires(template: dict[str, Any]) -> None:
    runbook = readme_section("When an alarm fires")

    for name, alarm in alarms(template).items():
        suffix = alarm["AlarmName"]["Fn::Sub"].removeprefix("${AWS::StackName}")
        assert f"`<stack>{suffix}`" in runbook, f"{name}: no runbook line for <stack>{suffix}"
    assert "rescind replay" in runbook
