"""EventBridge on moto: its own pattern matcher, and delivery to in-process Lambda and Step Functions targets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from rescind_local.eventbridge import (
    DeliveryLog,
    RuleSpec,
    TargetSpec,
    apply_input_template,
    deploy_rules,
    event_pattern_matches,
    eventbridge_targets,
    put_one_event,
    route_event,
    rules_from_template,
)
from rescind_local.lambdas import FunctionSpec, InProcessLambdas, create_local_function, in_process_lambdas
from rescind_local.lambdas import local_execution_role as execution_role
from rescind_local.stepfunctions import create_local_state_machine, local_stepfunctions_fixes, wait_for_execution
from rescind_local.template import translate_template
from tests.integration.local_stack import write_function

GUARDDUTY_LIKE = {
    "version": "0",
    "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    "detail-type": "GuardDuty Finding",
    "source": "aws.guardduty",
    "account": "123456789012",
    "time": "2026-11-24T10:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {
        "type": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
        "severity": 8.0,
        "resource": {"accessKeyDetails": {"accessKeyId": "AKIAEXAMPLE", "userName": "deployer"}},
        "service": {"action": {"awsApiCallAction": {"remoteIpDetails": {"ipAddressV4": "198.51.100.7"}}}},
    },
}


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ({"source": ["aws.guardduty"]}, True),
        ({"source": [{"prefix": "aws."}]}, True),
        ({"detail": {"type": [{"suffix": ".OutsideAWS"}]}}, True),
        ({"detail": {"type": [{"wildcard": "UnauthorizedAccess:*Exfiltration*"}]}}, True),
        ({"detail": {"severity": [{"numeric": [">=", 7]}]}}, True),
        ({"detail": {"severity": [{"numeric": [">=", 9]}]}}, False),
        ({"source": [{"anything-but": ["aws.guardduty"]}]}, False),
        ({"detail": {"resource": {"accessKeyDetails": {"accessKeyId": [{"exists": True}]}}}}, True),
        ({"detail": {"resource": {"instanceDetails": [{"exists": True}]}}}, False),
        ({"$or": [{"source": ["aws.health"]}, {"detail-type": ["GuardDuty Finding"]}]}, True),
        (
            {
                "detail": {
                    "service": {
                        "action": {
                            "awsApiCallAction": {"remoteIpDetails": {"ipAddressV4": [{"cidr": "198.51.100.0/24"}]}}
                        }
                    }
                }
            },
            True,
        ),
        ({"detail": {"type": [{"prefix": "Recon:"}]}}, False),
    ],
)
def test_moto_matcher_handles_the_pattern_operators_rescind_uses(pattern: dict[str, Any], matches: bool) -> None:
    assert event_pattern_matches(pattern, GUARDDUTY_LIKE) is matches


def test_gap_test_event_pattern_is_a_stub(aws: None) -> None:
    # Why the local stack calls moto's matcher directly instead of the TestEventPattern API
    answer = boto3.client("events").test_event_pattern(
        EventPattern=json.dumps({"source": ["aws.guardduty"]}), Event=json.dumps(GUARDDUTY_LIKE)
    )

    assert "Result" not in answer


def test_input_template_quotes_strings_outside_json_strings_only() -> None:
    values = {"key": "AKIAEXAMPLE", "severity": 8.0}

    assert json.loads(apply_input_template('{"k": <key>, "s": <severity>, "m": "key <key>"}', values)) == {
        "k": "AKIAEXAMPLE",
        "s": 8.0,
        "m": "key AKIAEXAMPLE",
    }
    assert apply_input_template("key <key> leaked", values) == "key AKIAEXAMPLE leaked"


@dataclass
class Targets:
    function_arn: str
    state_machine_arn: str
    log: DeliveryLog
    registry: InProcessLambdas


@pytest.fixture
def targets(aws: None, tmp_path: Path) -> Iterator[Targets]:
    code_dir = write_function(
        tmp_path,
        "record",
        """
        import json
        from pathlib import Path

        OUT = Path(__file__).parent / "received.json"

        def lambda_handler(event, context):
            OUT.write_text(json.dumps(event))
            if event.get("fail"):
                raise KeyError("fail")
            return {"ok": True}
        """,
    )
    registry = InProcessLambdas()
    with in_process_lambdas(registry), local_stepfunctions_fixes(time_scale=0.01), eventbridge_targets() as log:
        role = execution_role(boto3.client("iam"))
        spec = FunctionSpec("record", code_dir)
        registry.register(spec)
        function_arn = create_local_function(boto3.client("lambda"), spec, role)
        machine = create_local_state_machine(
            boto3.client("stepfunctions"),
            "echo",
            {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": True}}},
            role,
        )
        yield Targets(function_arn, machine, log, registry)


def _received(tmp_path: Path) -> Any:
    return json.loads((tmp_path / "record" / "received.json").read_text())


def test_put_events_runs_a_lambda_target_in_process_with_the_rules_input_transformer(
    targets: Targets, tmp_path: Path
) -> None:
    rule = RuleSpec(
        logical_id="LeakRule",
        name="leak",
        event_pattern={"source": ["rescind.test"], "detail": {"severity": [{"numeric": [">=", 7]}]}},
        targets=(
            TargetSpec(
                "fn",
                targets.function_arn,
                input_transformer={
                    "InputPathsMap": {"key": "$.detail.key", "kind": "$.detail-type"},
                    "InputTemplate": '{"access_key_id": <key>, "trigger": "<kind>"}',
                },
            ),
        ),
    )
    deploy_rules(boto3.client("events"), [rule])

    put_one_event(boto3.client("events"), "rescind.test", "Key Leaked", {"key": "AKIAEXAMPLE", "severity": 8})
    put_one_event(boto3.client("events"), "rescind.test", "Key Leaked", {"key": "AKIAOTHER", "severity": 2})

    assert _received(tmp_path) == {"access_key_id": "AKIAEXAMPLE", "trigger": "Key Leaked"}
    assert [delivery.error_type for delivery in targets.log.for_rule("leak")] == [None]
    assert len(targets.registry.invocations) == 1


def test_put_events_starts_a_state_machine_target_with_the_rules_input_path(targets: Targets) -> None:
    rule = RuleSpec(
        logical_id="Start",
        name="start",
        event_pattern={"detail-type": ["Manual Revocation"]},
        targets=(TargetSpec("sm", targets.state_machine_arn, input_path="$.detail"),),
    )
    deploy_rules(boto3.client("events"), [rule])

    put_one_event(boto3.client("events"), "rescind.test", "Manual Revocation", {"incident": "INC-1"})

    (delivery,) = targets.log.for_rule("start")
    assert delivery.execution_arn is not None
    described = wait_for_execution(boto3.client("stepfunctions"), delivery.execution_arn)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {"incident": "INC-1"}


def test_route_event_delivers_an_aws_sourced_event_and_records_a_handler_error(
    targets: Targets, tmp_path: Path
) -> None:
    rules = [
        RuleSpec("Whole", "whole", {"source": ["aws.guardduty"]}, targets=(TargetSpec("fn", targets.function_arn),)),
        RuleSpec(
            "Failing",
            "failing",
            {"source": ["aws.guardduty"]},
            targets=(TargetSpec("fn", targets.function_arn, input='{"fail": true}'),),
        ),
        RuleSpec("Other", "other", {"source": ["aws.health"]}, targets=(TargetSpec("fn", targets.function_arn),)),
    ]

    matched = route_event(GUARDDUTY_LIKE, rules)

    assert [match.rule.name for match in matched] == ["whole", "failing"]
    assert matched[0].deliveries[0].error_type is None
    assert matched[1].deliveries[0].error_type == "KeyError"
    assert _received(tmp_path) == {"fail": True}


def test_rules_are_read_from_the_translated_template_sam_events_and_plain_rules() -> None:
    # Given a SAM template with rule events on a function and a state machine, beside a plain rule
    function = {"Runtime": "python3.12", "Handler": "app.handler", "CodeUri": "functions/responder/"}
    template = {
        "Transform": "AWS::Serverless-2016-10-31",
        "Resources": {
            "Responder": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    **function,
                    "Events": {
                        "Leak": {
                            "Type": "EventBridgeRule",
                            "Properties": {
                                "Pattern": {"source": ["aws.guardduty"]},
                                "InputPath": "$.detail",
                                "Target": {"Id": "Responder"},
                            },
                        },
                        "Queue": {"Type": "SQS", "Properties": {"Queue": "arn:aws:sqs:us-east-1:123456789012:q"}},
                    },
                },
            },
            "Flow": {
                "Type": "AWS::Serverless::StateMachine",
                "Properties": {
                    "Definition": {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}},
                    "Events": {"Nightly": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 day)"}}},
                },
            },
            "Plain": {
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "EventPattern": {"source": ["aws.health"]},
                    "Targets": [{"Id": "flow", "Arn": {"Ref": "Flow"}}],
                },
            },
        },
    }
    arns = {
        "Responder": "arn:aws:lambda:us-east-1:123456789012:function:responder",
        "Flow": "arn:aws:states:us-east-1:123456789012:stateMachine:flow",
        "FlowNightlyRole": "arn:aws:iam::123456789012:role/flow-nightly",
    }

    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            return arns[value["Fn::GetAtt"][0]]
        if isinstance(value, dict) and "Ref" in value:
            return arns[value["Ref"]]
        return value

    # When the rules are read from what the SAM translator makes of it
    rules = {
        rule.logical_id: rule for rule in rules_from_template(translate_template(template), resolve, stack_name="s")
    }

    # Then SAM's rules (named <owner><event>) and the plain one are there, with their targets and inputs
    assert set(rules) == {"ResponderLeak", "FlowNightly", "Plain"}
    assert rules["ResponderLeak"].targets[0].arn == arns["Responder"]
    assert rules["ResponderLeak"].targets[0].target_id == "Responder"
    assert rules["ResponderLeak"].targets[0].input_path == "$.detail"
    assert rules["ResponderLeak"].matches(GUARDDUTY_LIKE)
    assert rules["FlowNightly"].schedule_expression == "rate(1 day)"
    assert rules["FlowNightly"].targets[0].role_arn == arns["FlowNightlyRole"]
    assert not rules["FlowNightly"].matches(GUARDDUTY_LIKE)
    assert rules["Plain"].targets[0].arn == arns["Flow"]
    assert rules["Plain"].name == "s-Plain"
