"""template.yaml as written: parameters, globals, the ledger table, the topic, the function, outputs, samconfig."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from rescind.ledger.dynamodb import TIME_INDEX
from rescind_local.template import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
VALID_RETENTION_DAYS = {
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
}  # fmt: skip


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(REPO_ROOT / "template.yaml")


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: body for name, body in template["Resources"].items() if body["Type"] == resource_type}


def has_intrinsic(value: Any) -> bool:
    if isinstance(value, dict):
        return any(key == "Ref" or key.startswith("Fn::") or has_intrinsic(item) for key, item in value.items())
    if isinstance(value, list):
        return any(has_intrinsic(item) for item in value)
    return False


def test_it_is_a_sam_template(template: dict[str, Any]) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"


def test_parameters_and_their_defaults(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]

    assert {"VaultAddr", "VaultAwsAuthRole"} <= set(parameters)
    assert "Default" not in parameters["VaultAddr"]
    assert "Default" not in parameters["VaultAwsAuthRole"]
    assert parameters["VaultAwsAuthMount"]["Default"] == "aws"
    assert parameters["VaultNamespace"]["Default"] == ""
    assert parameters["CrossAccountRoleName"]["Default"] == "RescindExecutionRole"
    assert parameters["LogRetentionDays"]["Default"] == 90
    assert set(parameters["LogRetentionDays"]["AllowedValues"]) == VALID_RETENTION_DAYS
    assert parameters["NotificationEmail"]["Default"] == ""


def test_the_email_subscription_exists_only_when_an_address_is_given(template: dict[str, Any]) -> None:
    condition = template["Conditions"]["HasNotificationEmail"]
    subscriptions = resources_of_type(template, "AWS::SNS::Subscription")

    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": "NotificationEmail"}, ""]}]}
    assert [body.get("Condition") for body in subscriptions.values()] == ["HasNotificationEmail"]
    (subscription,) = subscriptions.values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["TopicArn"] == {"Ref": "NotificationTopic"}


def test_globals_run_every_function_on_arm64_python_312_with_tracing_and_the_layer(template: dict[str, Any]) -> None:
    function_globals = template["Globals"]["Function"]

    assert function_globals["Runtime"] == "python3.12"
    assert function_globals["Architectures"] == ["arm64"]
    assert function_globals["Tracing"] == "Active"
    assert function_globals["Layers"] == [{"Ref": "RescindLayer"}, {"Ref": "CryptographyLayer"}]
    assert isinstance(function_globals["Timeout"], int)
    assert isinstance(function_globals["MemorySize"], int)


def test_globals_environment(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]

    assert variables == {
        "POWERTOOLS_SERVICE_NAME": "rescind",
        "POWERTOOLS_METRICS_NAMESPACE": "Rescind",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "POWERTOOLS_LOGGER_LOG_EVENT": "false",
        "LEDGER_TABLE_NAME": {"Ref": "LedgerTable"},
        "PLAN_BUCKET_NAME": {"Ref": "PlanBucket"},
        "INVENTORY_TABLE_NAME": {"Ref": "InventoryTable"},
        "NOTIFICATION_TOPIC_ARN": {"Ref": "NotificationTopic"},
        "VAULT_ADDR": {"Ref": "VaultAddr"},
        "VAULT_AUTH_METHOD": "aws_iam",
        "VAULT_AWS_AUTH_ROLE": {"Ref": "VaultAwsAuthRole"},
        "VAULT_AWS_AUTH_MOUNT": {"Ref": "VaultAwsAuthMount"},
        "VAULT_AWS_AUTH_HEADER": {"Ref": "VaultAwsAuthServerId"},
        "VAULT_NAMESPACE": {"Ref": "VaultNamespace"},
        "CROSS_ACCOUNT_ROLE_NAME": {"Ref": "CrossAccountRoleName"},
        "CROSS_ACCOUNT_EXTERNAL_ID": {"Ref": "CrossAccountExternalId"},
        "BLAST_RADIUS_CAP": {"Ref": "BlastRadiusCap"},
        "PKI_MOUNTS": {"Ref": "PkiMounts"},
        "APPROLE_MOUNTS": {"Ref": "AppRoleMounts"},
        "KV_MOUNTS": {"Ref": "KvMounts"},
        "LEASE_MOUNTS": {"Ref": "LeaseMounts"},
        "DATABASE_LEAK_MAX_ROLES": {"Ref": "DatabaseLeakMaxRoles"},
        "FINGERPRINT_TABLE_NAME": {"Ref": "FingerprintTable"},
        "FINGERPRINT_KEY_SECRET_ARN": {"Ref": "FingerprintKeySecret"},
        # Settings that grow with the organisation: only their SSM parameters' names (test_stored_settings.py).
        "PROTECTED_WORKLOADS_PARAMETER": {"Ref": "ProtectedWorkloadsParameter"},
        "AWS_ACCOUNT_IDS_PARAMETER": {"Ref": "DiscoveryAccountIdsParameter"},
    }
    # Deployed functions log in with Vault's AWS IAM auth: no static token anywhere in the template.
    assert "VAULT_TOKEN" not in (REPO_ROOT / "template.yaml").read_text()


@pytest.mark.parametrize("name", ["RescindLayer", "CryptographyLayer"])
def test_the_layers_are_built_from_shared_for_arm64_python_312(template: dict[str, Any], name: str) -> None:
    layer = template["Resources"][name]

    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "shared/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "ContextPath": ".", "BuildArchitecture": "arm64"}
    # `sam build` runs the root Makefile's build-<name>: the locked wheels for arm64 (and the package), compiled.
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert f"\nbuild-{name}:" in makefile
    assert "\nLAYER_PLATFORM ?= manylinux2014_aarch64\n" in makefile
    assert (REPO_ROOT / "shared" / "requirements.lock").is_file()
    assert (REPO_ROOT / "shared" / "rescind" / "__init__.py").is_file()


def test_the_ledger_table_has_the_key_layout_the_ledger_code_writes(template: dict[str, Any]) -> None:
    table = template["Resources"]["LedgerTable"]
    properties = table["Properties"]

    assert table["Type"] == "AWS::DynamoDB::Table"
    assert properties["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert {(item["AttributeName"], item["AttributeType"]) for item in properties["AttributeDefinitions"]} == {
        ("pk", "S"),
        ("sk", "S"),
        ("gsi1pk", "S"),
        ("gsi1sk", "S"),
    }
    (index,) = properties["GlobalSecondaryIndexes"]
    assert index["IndexName"] == TIME_INDEX == "by_time"
    assert index["KeySchema"] == [
        {"AttributeName": "gsi1pk", "KeyType": "HASH"},
        {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    assert properties["BillingMode"] == "PAY_PER_REQUEST"


def test_the_ledger_table_is_protected(template: dict[str, Any]) -> None:
    table = template["Resources"]["LedgerTable"]

    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    assert table["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["Properties"]["SSESpecification"] == {"SSEEnabled": True}
    assert table["Properties"]["DeletionProtectionEnabled"] is True


def test_the_local_stack_can_read_the_table_definition_as_plain_data(template: dict[str, Any]) -> None:
    # tools/rescind_local creates its table from these four properties without resolving intrinsics.
    properties = template["Resources"]["LedgerTable"]["Properties"]

    for name in ("AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes"):
        assert not has_intrinsic(properties[name]), name


def test_the_topic_is_encrypted(template: dict[str, Any]) -> None:
    topic = template["Resources"]["NotificationTopic"]

    assert topic["Type"] == "AWS::SNS::Topic"
    # A key of the stack, not alias/aws/sns: CloudWatch alarms publish to it (tests/infra/test_alarms.py).
    assert topic["Properties"]["KmsMasterKeyId"] == {"Ref": "NotificationKey"}
    key = template["Resources"]["NotificationKey"]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True


def test_the_execute_action_function(template: dict[str, Any]) -> None:
    function = template["Resources"]["ExecuteActionFunction"]
    properties = function["Properties"]

    assert function["Type"] == "AWS::Serverless::Function"
    assert properties["CodeUri"] == "functions/execute_action/"
    assert properties["Handler"] == "app.lambda_handler"
    assert properties["LoggingConfig"] == {"LogGroup": {"Ref": "ExecuteActionLogGroup"}}
    # Invoked synchronously by Step Functions: no async configuration, and the template says why.
    assert "EventInvokeConfig" not in properties
    assert "Events" not in properties
    assert "Step Functions" in function["Metadata"]["Invocation"]


def test_every_function_has_a_log_group_named_after_it_with_the_retention_parameter(
    template: dict[str, Any],
) -> None:
    functions = resources_of_type(template, "AWS::Serverless::Function")

    assert functions
    for function in functions.values():
        properties = function["Properties"]
        log_group_id = properties["LoggingConfig"]["LogGroup"]["Ref"]
        log_group = template["Resources"][log_group_id]
        assert log_group["Type"] == "AWS::Logs::LogGroup"
        assert log_group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert log_group["Properties"]["LogGroupName"] == {
            "Fn::Sub": "/aws/lambda/" + properties["FunctionName"]["Fn::Sub"]
        }


def test_outputs_name_the_table_topic_layer_and_function(template: dict[str, Any]) -> None:
    values = [output["Value"] for output in template["Outputs"].values()]

    assert {"Ref": "LedgerTable"} in values
    assert {"Ref": "NotificationTopic"} in values
    assert {"Ref": "RescindLayer"} in values
    assert {"Fn::GetAtt": ["ExecuteActionFunction", "Arn"]} in values


def test_samconfig_deploys_the_rescind_stack_with_a_reviewed_changeset() -> None:
    config = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text())
    deploy = config["default"]["deploy"]["parameters"]
    build = config["default"]["build"]["parameters"]

    stack_name = deploy.get("stack_name", config["default"].get("global", {}).get("parameters", {}).get("stack_name"))
    assert stack_name == "rescind"
    # The responder role has a fixed name, so the stack needs the named-IAM capability as well.
    assert deploy["capabilities"] == "CAPABILITY_IAM CAPABILITY_NAMED_IAM"
    assert deploy["confirm_changeset"] is True
    assert deploy["resolve_s3"] is True
    # No VaultAddr: a plain `sam deploy` once used a placeholder without a word; now it stops, asking for it.
    assert "VaultAddr" not in deploy["parameter_overrides"]
    assert "example" not in (REPO_ROOT / "samconfig.toml").read_text()
    assert "VaultAwsAuthRole=" in deploy["parameter_overrides"]
    assert build == {"cached": True, "parallel": True}
