"""Rescind's own trigger events have a bus of their own, which only the webhook and the listed senders may use.

Whoever may put events on the account's default bus must not be able to offboard a workload or revoke a
credential by sending the generic events (issue 13).
"""

from __future__ import annotations

from typing import Any

import pytest

from rescind_local.template import load_template, translate_template
from tests.infra.policy_scan import as_list, role_statements

pytestmark = pytest.mark.infra

TEMPLATE: dict[str, Any] = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
# The rules SAM makes of the start functions' EventBridgeRule events.
TRIGGER_RULES = {
    "StartOffboardingFunctionWorkloadTerminatedRule",
    "StartLeakResponseFunctionSecretLeakedRule",
    "StartLeakResponseFunctionGitHubSecretScanningRule",
}


def test_the_generic_and_github_rules_are_on_the_trigger_bus_and_aws_events_on_the_default_bus() -> None:
    buses = {
        logical_id: resource["Properties"].get("EventBusName", "default")
        for logical_id, resource in translate_template(TEMPLATE)["Resources"].items()
        if resource["Type"] == "AWS::Events::Rule" and "EventPattern" in resource["Properties"]
    }
    assert {rule for rule, bus in buses.items() if bus == {"Ref": "TriggerEventBus"}} == TRIGGER_RULES
    assert all(bus == "default" for rule, bus in buses.items() if rule not in TRIGGER_RULES)


def test_the_trigger_bus_denies_every_sender_but_the_webhook_and_the_listed_ones() -> None:
    policy = RESOURCES["TriggerEventBusPolicy"]["Properties"]
    statement = policy["Statement"]
    assert policy["EventBusName"] == {"Ref": "TriggerEventBus"}
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == ("Deny", "*", "events:PutEvents")
    allowed = statement["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
    assert allowed == {
        "Fn::Split": [
            ",",
            {
                "Fn::Join": [
                    ",",
                    [
                        {"Fn::GetAtt": ["GitHubWebhookFunctionRole", "Arn"]},
                        {"Fn::Join": [",", {"Ref": "TriggerEventSenders"}]},
                    ],
                ]
            },
        ]
    }


def test_the_webhook_puts_its_alerts_on_the_trigger_bus_only() -> None:
    webhook = RESOURCES["GitHubWebhookFunction"]["Properties"]
    assert webhook["Environment"]["Variables"]["EVENT_BUS_NAME"] == {"Ref": "TriggerEventBus"}
    puts = [
        statement
        for statement in role_statements(TEMPLATE, "GitHubWebhookFunction")
        if "events:PutEvents" in as_list(statement["Action"])
    ]
    assert [statement["Resource"] for statement in puts] == [{"Fn::GetAtt": ["TriggerEventBus", "Arn"]}]
