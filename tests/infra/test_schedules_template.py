"""The schedules in template.yaml: six EventBridge Scheduler schedules (each sweep function's ScheduleV2 event, which
SAM makes an AWS::Scheduler::Schedule), each with its expression and time zone parameters, a DLQ, a retry policy, the
sweep's input and a target that exists; the sweep functions' failure destination, log groups and least-privilege
policies; the checkpoint table and the report bucket."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from rescind.schedules.types import SweepRequest
from rescind_local.stack import IntrinsicResolver, plan_local_resources, schedules_from_template
from rescind_local.template import load_template, translate_template
from tests.infra.policy_scan import allowed_resources, as_list, boto3_calls, resource_text, role_statements

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNTIME = REPO_ROOT / "shared" / "rescind"
TEMPLATE = load_template(REPO_ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
TRANSLATED: dict[str, Any] = translate_template(TEMPLATE)["Resources"]
# The ScheduleV2 event's name → the function it belongs to. SAM names the schedule <function><event>.
SCHEDULES = {
    "RotationByAgeSchedule": "RotationByAgeFunction",
    "TtlCeilingsSchedule": "TtlCeilingsFunction",
    "OrphansSchedule": "OrphansFunction",
    "PkiHygieneSchedule": "PkiHygieneFunction",
    "InventoryReportSchedule": "InventoryReportFunction",
    "IndexDriftSchedule": "IndexDriftFunction",
}
SERVICES = ("iam", "secretsmanager", "s3", "sts", "dynamodb", "stepfunctions", "ec2", "ecs", "lambda")
SESSION = RUNTIME / "aws" / "session.py"
CHECKPOINTS = RUNTIME / "schedules" / "dynamodb.py"
INVENTORY = RUNTIME / "inventory" / "dynamodb.py"
# The modules each sweep function runs that call AWS (besides Vault, which IAM does not govern).
SWEEP_SOURCES = {
    "RotationByAgeFunction": [
        RUNTIME / "schedules" / "rotation_by_age.py",
        CHECKPOINTS,
        SESSION,
        RUNTIME / "aws" / "secrets_manager.py",
        RUNTIME / "aws" / "sm_rotation.py",
        RUNTIME / "rotation" / "contract.py",
        RUNTIME / "fingerprints" / "runtime.py",
        RUNTIME / "fingerprints" / "dynamodb.py",
    ],
    "TtlCeilingsFunction": [RUNTIME / "schedules" / "ttl_ceilings.py", CHECKPOINTS],
    "OrphansFunction": [
        RUNTIME / "schedules" / "orphans.py",
        CHECKPOINTS,
        INVENTORY,
        SESSION,
        RUNTIME / "aws" / "workloads.py",
    ],
    "PkiHygieneFunction": [RUNTIME / "schedules" / "pki_hygiene.py", CHECKPOINTS, INVENTORY],
    # The report's readers live in the credential kinds' modules (KindSpec.inventory).
    "InventoryReportFunction": [
        RUNTIME / "schedules" / "inventory_report.py",
        INVENTORY,
        SESSION,
        RUNTIME / "aws" / "iam_keys.py",
        RUNTIME / "aws" / "secrets_manager.py",
        RUNTIME / "issuance" / "reading.py",
    ],
    # The issuance index's drift check: a sample of the table, the pointers of a reference, the marker.
    "IndexDriftFunction": [
        RUNTIME / "issuance" / "drift.py",
        RUNTIME / "issuance" / "reading.py",
        RUNTIME / "issuance" / "dynamodb.py",
        RUNTIME / "issuance" / "state.py",
    ],
}
# Calls a module makes through a helper that takes the operation's name as a string, which the scan cannot see.
INDIRECT_CALLS = {INVENTORY: {"dynamodb:Query", "dynamodb:Scan"}}  # DynamoDbInventory._paginate("query"|"scan")
# Calls a module can make that this function never reaches, and why.
NOT_REACHED = {
    # SecretsManagerSecretHandler's opt-in generated values: the deployed engine refuses unmanaged secrets.
    "secretsmanager:GetRandomPassword",
}
NOT_REACHED_BY = {
    # The inventory's writers (bind, record_credentials) serve other functions; the report only reads, and it
    # keeps no checkpoint (it is one pass every time). Of the IAM key and Secrets Manager kinds it runs only the
    # listings (their `inventory` part), never their locate, act or verify.
    "InventoryReportFunction": {
        "dynamodb:PutItem",
        "iam:UpdateAccessKey",
        "iam:DeleteAccessKey",
        "iam:GetAccessKeyLastUsed",
        "sts:GetAccessKeyInfo",
        "secretsmanager:DescribeSecret",
        "secretsmanager:RotateSecret",
        "secretsmanager:ListSecretVersionIds",
        "secretsmanager:PutSecretValue",
    },
    # A KV rotation only writes the new version's fingerprints (kv_rotation_indexer); looking one up is the leak
    # responder's (tests/infra/test_code_permissions.py follows the calls the function really reaches).
    "RotationByAgeFunction": {"dynamodb:Query"},
    # The index's writer marks revocations the audit log shows (IndexAuditLogFunction); the drift check reads.
    "IndexDriftFunction": {"dynamodb:UpdateItem"},
}
# Granted without a boto3 call in the function's code: Secrets Manager checks that the caller of RotateSecret may
# invoke the rotation function; Vault's AWS IAM login signs an sts:GetCallerIdentity request itself; Powertools
# `parameters` reads the stored settings (tests/infra/test_stored_settings.py checks those grants exactly).
GRANTED_WITHOUT_A_CALL = {"lambda:invokefunction", "sts:getcalleridentity", "ssm:getparameters"}


def statements_of(function: str) -> list[dict[str, Any]]:
    return role_statements(TEMPLATE, function)


def schedule_properties(event: str) -> dict[str, Any]:
    """The AWS::Scheduler::Schedule SAM makes of the function's event."""
    schedule = TRANSLATED[SCHEDULES[event] + event]
    assert schedule["Type"] == "AWS::Scheduler::Schedule"
    properties: dict[str, Any] = schedule["Properties"]
    return properties


def parameter_of(value: Any) -> dict[str, Any]:
    assert isinstance(value, dict), f"{value!r} must be a Ref to a parameter"
    assert "Ref" in value, f"{value!r} must be a Ref to a parameter"
    assert value["Ref"] in TEMPLATE["Parameters"], value
    parameter: dict[str, Any] = TEMPLATE["Parameters"][value["Ref"]]
    return parameter


def get_att_target(value: Any) -> str:
    assert isinstance(value, dict), value
    assert "Fn::GetAtt" in value, value
    logical_id, attribute = value["Fn::GetAtt"]
    assert attribute == "Arn"
    return str(logical_id)


def test_there_are_exactly_the_six_schedules_each_a_scheduler_event_of_its_function() -> None:
    found = {name for name, body in TRANSLATED.items() if body["Type"] == "AWS::Scheduler::Schedule"}
    events = {
        name: event["Type"]
        for function in SCHEDULES.values()
        for name, event in RESOURCES[function]["Properties"]["Events"].items()
    }

    assert found == {function + event for event, function in SCHEDULES.items()}
    assert events == dict.fromkeys(SCHEDULES, "ScheduleV2")
    # Unnamed, as before: CloudFormation names each, so two stacks in one account do not collide.
    assert all("Name" not in TRANSLATED[name]["Properties"] for name in found)


@pytest.mark.parametrize(("schedule", "function"), sorted(SCHEDULES.items()))
def test_each_schedule_targets_its_function_with_a_dlq_a_retry_policy_and_the_sweep_input(
    schedule: str, function: str
) -> None:
    props = schedule_properties(schedule)
    target = props["Target"]

    assert get_att_target(target["Arn"]) == function
    assert RESOURCES[function]["Type"] == "AWS::Serverless::Function"
    assert RESOURCES[get_att_target(target["DeadLetterConfig"]["Arn"])]["Type"] == "AWS::SQS::Queue"
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] >= 60
    assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert props.get("State", "ENABLED") == "ENABLED"
    # The input is what the handler parses: a real run, not a dry run
    request = SweepRequest.model_validate(json.loads(target["Input"]))
    assert request == SweepRequest(dry_run=False)


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_each_schedule_has_an_expression_and_a_time_zone_parameter(schedule: str) -> None:
    props = schedule_properties(schedule)

    expression = parameter_of(props["ScheduleExpression"])
    time_zone = parameter_of(props["ScheduleExpressionTimezone"])

    assert re.fullmatch(expression["AllowedPattern"], expression["Default"])
    assert re.fullmatch(r"(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(.+\))", expression["Default"])
    assert not re.fullmatch(expression["AllowedPattern"], "every day")
    assert time_zone["Default"] == "UTC"
    assert re.fullmatch(time_zone["AllowedPattern"], "Europe/Paris")


def test_the_scheduler_role_may_invoke_exactly_the_targets_and_write_to_their_dlq() -> None:
    role = RESOURCES["SchedulesRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    invoked = {get_att_target(r) for r in allowed_resources_raw(statements, "lambda:InvokeFunction")}
    assert invoked == set(SCHEDULES.values())
    for schedule in SCHEDULES:
        props = schedule_properties(schedule)
        assert get_att_target(props["Target"]["RoleArn"]) == "SchedulesRole"
        queue = props["Target"]["DeadLetterConfig"]["Arn"]
        assert queue in allowed_resources_raw(statements, "sqs:SendMessage")


def allowed_resources_raw(statements: list[dict[str, Any]], action: str) -> list[Any]:
    return [
        resource
        for statement in statements
        if statement["Effect"] == "Allow" and action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    ]


@pytest.mark.parametrize("function", sorted(SCHEDULES.values()))
def test_each_sweep_function_captures_failed_runs_and_has_its_own_log_group(function: str) -> None:
    props = RESOURCES[function]["Properties"]

    on_failure = props["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
    assert on_failure["Type"] == "SQS"
    assert get_att_target(on_failure["Destination"]) == "SweepFailureQueue"
    log_group = RESOURCES[props["LoggingConfig"]["LogGroup"]["Ref"]]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert props["Timeout"] == 900
    variables = props["Environment"]["Variables"]
    assert variables["SCHEDULE_POLICY_PARAMETER"] == {"Ref": "SchedulePolicyParameter"}
    assert variables["SWEEP_STATE_TABLE_NAME"] == {"Ref": "SweepStateTable"}


@pytest.mark.parametrize("function", sorted(SWEEP_SOURCES))
def test_each_sweep_function_is_granted_what_its_code_calls_and_nothing_more(function: str) -> None:
    statements = statements_of(function)
    sources = SWEEP_SOURCES[function]
    calls = boto3_calls(sources, SERVICES).union(*(INDIRECT_CALLS.get(source, set()) for source in sources))
    calls -= NOT_REACHED | NOT_REACHED_BY.get(function, set())
    assert calls, "the scan found no call: it would pass vacuously"

    missing = sorted(call for call in calls if not allowed_resources(statements, call))
    granted = {
        action.lower()
        for statement in statements
        if statement["Effect"] == "Allow"
        for action in as_list(statement["Action"])
    }

    assert missing == [], f"{function} is not granted {missing}"
    assert granted - {call.lower() for call in calls} <= GRANTED_WITHOUT_A_CALL


def test_checkpoints_are_only_read_and_put_and_only_in_their_table() -> None:
    for function in SCHEDULES.values():
        statements = statements_of(function)
        for action in ("dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:DeleteTable"):
            assert allowed_resources(statements, action) == [], (function, action)
        assert "${LedgerTable.Arn}" not in allowed_resources(statements, "dynamodb:PutItem"), function
    for function in ("RotationByAgeFunction", "TtlCeilingsFunction", "OrphansFunction", "PkiHygieneFunction"):
        assert allowed_resources(statements_of(function), "dynamodb:PutItem") == ["${SweepStateTable.Arn}"]


def test_orphans_are_only_offboarded_through_the_state_machine() -> None:
    statements = statements_of("OrphansFunction")

    assert allowed_resources(statements, "states:StartExecution") == ["${OffboardingStateMachine}"]
    env = RESOURCES["OrphansFunction"]["Properties"]["Environment"]["Variables"]
    assert env["OFFBOARDING_STATE_MACHINE_ARN"] == {"Ref": "OffboardingStateMachine"}


def test_the_report_is_written_only_to_the_report_bucket() -> None:
    assert allowed_resources(statements_of("InventoryReportFunction"), "s3:PutObject") == [
        "${InventoryReportBucket.Arn}/reports/*"
    ]
    env = RESOURCES["InventoryReportFunction"]["Properties"]["Environment"]["Variables"]
    assert env["INVENTORY_REPORT_BUCKET"] == {"Ref": "InventoryReportBucket"}


def test_the_checkpoint_table_matches_what_the_store_writes() -> None:
    table = RESOURCES["SweepStateTable"]["Properties"]

    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {
        ("pk", "S"),
        ("sk", "S"),
    }
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_the_report_bucket_is_encrypted_private_versioned_and_tls_only() -> None:
    bucket = RESOURCES["InventoryReportBucket"]
    props = bucket["Properties"]

    assert bucket["DeletionPolicy"] == "Retain"
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    (statement,) = RESOURCES["InventoryReportBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_local_stack_reads_every_schedule_as_the_template_declares_it() -> None:
    resolver = IntrinsicResolver(
        TEMPLATE,
        plan_local_resources(
            TEMPLATE, "rescind-local", parameters={"VaultAddr": "http://v:1", "VaultAwsAuthRole": "r"}
        ),
        "rescind-local",
        parameters={"VaultAddr": "http://v:1", "VaultAwsAuthRole": "r"},
    )

    found = {spec.logical_id: spec for spec in schedules_from_template(translate_template(TEMPLATE), resolver.resolve)}

    assert {name: spec.target_logical_id for name, spec in found.items()} == {
        function + event: function for event, function in SCHEDULES.items()
    }
    for spec in found.values():
        assert spec.input == {"dry_run": False}
        assert spec.time_zone == "UTC"
        assert spec.dead_letter_arn is not None
        assert spec.dead_letter_arn.endswith(":rescind-local-SchedulesDeadLetterQueue")
        assert spec.retry_policy is not None
        assert resource_text(spec.expression).startswith(("rate(", "cron("))
