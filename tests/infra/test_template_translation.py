"""template.yaml through the SAM translator, offline: what CloudFormation would really be asked to create."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

from rescind_local.template import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_URI_PROPERTIES = ("CodeUri", "ContentUri", "DefinitionUri")


def with_s3_uris(template: dict[str, Any]) -> dict[str, Any]:
    """Local folders become s3:// locations, as `sam package` would make them; the translator needs that."""
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties") or {}
        for name in LOCAL_URI_PROPERTIES:
            if isinstance(properties.get(name), str) and not properties[name].startswith("s3://"):
                properties[name] = "s3://rescind-artifacts/" + properties[name].strip("/")
    return template


@pytest.fixture(scope="module")
def source() -> dict[str, Any]:
    return load_template(REPO_ROOT / "template.yaml")


@pytest.fixture(scope="module")
def translated() -> dict[str, Any]:
    template = with_s3_uris(yaml_parse((REPO_ROOT / "template.yaml").read_text()))
    # No AWS call: a session that only knows its region, and a managed-policy loader that knows no policies.
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name="us-east-1"))
    result: dict[str, Any] = translator.translate(template, parameter_values={}, get_managed_policy_map=lambda: {})
    return result


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


def test_the_function_role_gets_logging_and_tracing_and_the_inline_policy(translated: dict[str, Any]) -> None:
    role = translated["Resources"]["ExecuteActionFunctionRole"]["Properties"]
    (policy,) = role["Policies"]
    sids = {statement.get("Sid") for statement in policy["PolicyDocument"]["Statement"]}

    assert "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole" in role["ManagedPolicyArns"]
    assert "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess" in role["ManagedPolicyArns"]
    assert {
        "LedgerRead",
        "LedgerAppendRunRecords",
        "AssumeCrossAccountExecutionRole",
        "IamAccessKeys",
        "AcmPcaRevoke",
    } <= sids


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


def test_the_layer_is_one_versioned_layer_that_the_function_and_the_output_use(translated: dict[str, Any]) -> None:
    layers = of_type(translated, "AWS::Lambda::LayerVersion")

    (layer_id,) = layers
    assert layer_id.startswith("RescindLayer")  # SAM appends a content hash to the logical id
    layer = layers[layer_id]["Properties"]
    assert layer["Content"] == {"S3Bucket": "rescind-artifacts", "S3Key": "shared"}
    assert layer["CompatibleRuntimes"] == ["python3.12"]
    assert layer["CompatibleArchitectures"] == ["arm64"]
    assert translated["Resources"]["ExecuteActionFunction"]["Properties"]["Layers"] == [{"Ref": layer_id}]
    assert translated["Outputs"]["RescindLayerArn"]["Value"] == {"Ref": layer_id}


def test_the_table_and_topic_pass_through_unchanged(source: dict[str, Any], translated: dict[str, Any]) -> None:
    for name in ("LedgerTable", "NotificationTopic", "NotificationEmailSubscription"):
        assert translated["Resources"][name]["Type"] == source["Resources"][name]["Type"]
    assert translated["Resources"]["NotificationEmailSubscription"]["Condition"] == "HasNotificationEmail"
    assert translated["Resources"]["LedgerTable"]["DeletionPolicy"] == "Retain"
