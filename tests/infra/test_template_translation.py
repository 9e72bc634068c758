"""template.yaml through the SAM translator, offline: what CloudFormation would really be asked to create."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from rescind_local.template import load_template, sam_event_resource_ids, translate_template

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def source() -> dict[str, Any]:
    return load_template(REPO_ROOT / "template.yaml")


@pytest.fixture(scope="module")
def translated(source: dict[str, Any]) -> dict[str, Any]:
    # No AWS call: a session that only knows its region, and a managed-policy loader that knows no policies.
    return translate_template(source)


def test_the_translation_reads_the_template_as_sams_own_parser_does(source: dict[str, Any]) -> None:
    # load_template (which the local stack and the tests use) and SAM's yaml_parse give the same document.
    parsed = yaml_parse((REPO_ROOT / "template.yaml").read_text())
    assert json.loads(json.dumps(parsed)) == source


def of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: body for name, body in template["Resources"].items() if body["Type"] == resource_type}


def test_no_serverless_resource_is_left(translated: dict[str, Any]) -> None:
    types = {body["Type"] for body in translated["Resources"].values()}

    assert not [name for name in types if name.startswith("AWS::Serverless::")]
    assert "Transform" not in translated


def test_every_function_becomes_a_lambda_function_with_its_own_role(
    source: dict[str, Any], translated: dict[str, Any]
) -> None:
    functions = of_type(source, "AWS::Serverless::Function")

    assert functions
    for name in functions:
        function = translated["Resources"][name]
        assert function["Type"] == "AWS::Lambda::Function"
        assert function["Properties"]["Role"] == {"Fn::GetAtt": [f"{name}Role", "Arn"]}
        role = translated["Resources"][f"{name}Role"]
        assert role["Type"] == "AWS::IAM::Role"
        (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": ["lambda.amazonaws.com"]}


def test_the_function_role_gets_logging_tracing_the_shared_policies_and_the_inline_policy(
    translated: dict[str, Any],
) -> None:
    role = translated["Resources"]["ExecuteActionFunctionRole"]["Properties"]
    (policy,) = role["Policies"]
    sids = {statement.get("Sid") for statement in policy["PolicyDocument"]["Statement"]}

    assert role["ManagedPolicyArns"] == [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
        # SAM attaches it for the VpcConfig, even when UseVpc leaves the VpcConfig out; the boundary then denies it.
        "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
        {"Ref": "StoredSettingsReadPolicy"},
        {"Ref": "VaultLoginPolicy"},
        {"Ref": "CrossAccountExecutionPolicy"},
        {"Ref": "LedgerReadPolicy"},
        {"Ref": "FingerprintRotationIndexPolicy"},
        {"Ref": "RotationHookInvokePolicy"},
    ]
    assert {"LedgerAppendRunRecords", "IamAccessKeys", "AcmPcaRevoke"} <= sids
    for shared in ("VaultLoginPolicy", "CrossAccountExecutionPolicy", "LedgerReadPolicy"):
        assert translated["Resources"][shared]["Type"] == "AWS::IAM::ManagedPolicy"


# The EventBridgeRule events of the start functions → (bus, DLQ, maximum event age): the rules SAM makes of them.
RULE_EVENTS = {
    "StartOffboardingFunction": {
        "Ec2InstanceTerminatedRule": ("default", "TerminationEventsDeadLetterQueue", 86400),
        "EcsTaskStoppedRule": ("default", "TerminationEventsDeadLetterQueue", 86400),
        "LambdaFunctionDeletedRule": ("default", "TerminationEventsDeadLetterQueue", 86400),
        "AutoScalingInstanceTerminatingRule": ("default", "TerminationEventsDeadLetterQueue", 86400),
        "WorkloadTerminatedRule": ("TriggerEventBus", "TerminationEventsDeadLetterQueue", 86400),
    },
    "StartLeakResponseFunction": {
        "SecretLeakedRule": ("TriggerEventBus", "LeakEventsDeadLetterQueue", 3600),
        "GitHubSecretScanningRule": ("TriggerEventBus", "LeakEventsDeadLetterQueue", 3600),
        "HealthCredentialRiskRule": ("default", "LeakEventsDeadLetterQueue", 3600),
        "GuardDutyCredentialExfiltrationRule": ("default", "LeakEventsDeadLetterQueue", 3600),
    },
}


def test_the_start_functions_events_become_their_rules_with_dlq_retries_and_permission(
    source: dict[str, Any], translated: dict[str, Any]
) -> None:
    resources = translated["Resources"]
    rules = {name for name, body in resources.items() if body["Type"] == "AWS::Events::Rule"}
    assert rules == {function + event for function, events in RULE_EVENTS.items() for event in events}

    for function, events in RULE_EVENTS.items():
        declared = source["Resources"][function]["Properties"]["Events"]
        for event, (bus, queue, max_age) in events.items():
            rule = resources[function + event]["Properties"]
            (target,) = rule["Targets"]
            assert rule["EventPattern"] == declared[event]["Properties"]["Pattern"]
            assert rule.get("EventBusName", "default") == (bus if bus == "default" else {"Ref": bus})
            assert target["Arn"] == {"Fn::GetAtt": [function, "Arn"]}
            assert target["Id"] == function.removesuffix("Function")  # the id the hand-written rules had
            assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue, "Arn"]}}
            assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": max_age}
            permission = resources[f"{function}{event}Permission"]["Properties"]
            assert permission == {
                "Action": "lambda:InvokeFunction",
                "FunctionName": {"Ref": function},
                "Principal": "events.amazonaws.com",
                "SourceArn": {"Fn::GetAtt": [function + event, "Arn"]},
            }
            # EventBridge may write to the DLQ only for these rules (a DLQ given by ARN gets no policy from SAM).
            policy = next(
                body["Properties"]
                for body in resources.values()
                if body["Type"] == "AWS::SQS::QueuePolicy" and body["Properties"]["Queues"] == [{"Ref": queue}]
            )
            (statement,) = policy["PolicyDocument"]["Statement"]
            assert {"Fn::GetAtt": [function + event, "Arn"]} in statement["Condition"]["ArnEquals"]["aws:SourceArn"]


def test_sam_names_each_event_resource_after_its_owner_and_the_event(
    source: dict[str, Any], translated: dict[str, Any]
) -> None:
    made = sam_event_resource_ids(source)

    assert len(made) == 15  # nine rules, six schedules
    for logical_id, event in made.items():
        assert translated["Resources"][logical_id]["Type"] in ("AWS::Events::Rule", "AWS::Scheduler::Schedule")
        assert logical_id.endswith(event)


def test_the_function_runs_on_arm64_python_312_with_the_globals(translated: dict[str, Any]) -> None:
    properties = translated["Resources"]["ExecuteActionFunction"]["Properties"]

    assert properties["Runtime"] == "python3.12"
    assert properties["Architectures"] == ["arm64"]
    assert properties["Handler"] == "app.lambda_handler"
    assert properties["TracingConfig"] == {"Mode": "Active"}
    assert properties["Code"] == {"S3Bucket": "rescind-artifacts", "S3Key": "functions/execute_action"}
    assert properties["Environment"]["Variables"]["LEDGER_TABLE_NAME"] == {"Ref": "LedgerTable"}
    assert properties["Environment"]["Variables"]["VAULT_AUTH_METHOD"] == "aws_iam"


def test_the_function_logs_to_its_own_log_group(translated: dict[str, Any]) -> None:
    properties = translated["Resources"]["ExecuteActionFunction"]["Properties"]
    log_group = translated["Resources"]["ExecuteActionLogGroup"]

    assert properties["LoggingConfig"] == {"LogGroup": {"Ref": "ExecuteActionLogGroup"}}
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert log_group["Properties"]["LogGroupName"] == {"Fn::Sub": "/aws/lambda/${AWS::StackName}-execute-action"}
    assert properties["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-execute-action"}


def test_the_layers_are_versioned_layers_that_the_functions_and_the_output_use(translated: dict[str, Any]) -> None:
    layers = of_type(translated, "AWS::Lambda::LayerVersion")

    # SAM appends a content hash to each layer's logical id
    by_name = {
        name: next(found for found in layers if found.startswith(name))
        for name in ("RescindLayer", "CryptographyLayer", "PostgresDriverLayer")
    }
    assert len(layers) == 3
    for layer_id in by_name.values():
        layer = layers[layer_id]["Properties"]
        assert layer["Content"] == {"S3Bucket": "rescind-artifacts", "S3Key": "shared"}
        assert layer["CompatibleRuntimes"] == ["python3.12"]
        assert layer["CompatibleArchitectures"] == ["arm64"]
    # Both from the Globals, in order (tests/infra/test_layers.py says why every function has cryptography)
    rescind, cryptography = {"Ref": by_name["RescindLayer"]}, {"Ref": by_name["CryptographyLayer"]}
    assert translated["Resources"]["ExecuteActionFunction"]["Properties"]["Layers"] == [rescind, cryptography]
    assert translated["Resources"]["CloseIncidentFunction"]["Properties"]["Layers"] == [rescind, cryptography]
    # The PostgreSQL driver only where the rotation hook needs it, after the Globals' layers
    postgres = {"Ref": by_name["PostgresDriverLayer"]}
    assert translated["Resources"]["RotatePostgresFunction"]["Properties"]["Layers"] == [
        rescind,
        cryptography,
        postgres,
    ]
    assert translated["Outputs"]["RescindLayerArn"]["Value"] == rescind


def test_the_table_and_topic_pass_through_unchanged(source: dict[str, Any], translated: dict[str, Any]) -> None:
    for name in ("LedgerTable", "NotificationTopic", "NotificationEmailSubscription"):
        assert translated["Resources"][name]["Type"] == source["Resources"][name]["Type"]
    assert translated["Resources"]["NotificationEmailSubscription"]["Condition"] == "HasNotificationEmail"
    assert translated["Resources"]["LedgerTable"]["DeletionPolicy"] == "Retain"
