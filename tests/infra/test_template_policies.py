"""The function's IAM policy: least privilege, append-only ledger, and every AWS call the adapters make granted.

The adapters' calls are read from their source (boto3 method names are the operations' snake_case names), so
a new call in shared/rescind/aws/ fails here until the template grants it or this file says why it is not.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import cfnlint.data.AdditionalSpecs
import pytest
from cfnlint.helpers import load_resource

from rescind_local.template import load_template
from tests.infra.policy_scan import (
    AWS_SERVICES,
    allowed_resources,
    as_list,
    boto3_calls,
    resource_text,
    role_statements,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNTIME = REPO_ROOT / "shared" / "rescind"
# Every module the deployed functions can run that calls AWS.
ADAPTER_SOURCES = [
    *sorted((RUNTIME / "aws").glob("*.py")),
    *sorted((RUNTIME / "ledger").glob("*.py")),
    *sorted((RUNTIME / "offboarding").glob("*.py")),
    *sorted((RUNTIME / "leaks").rglob("*.py")),
    *sorted((RUNTIME / "fingerprints").glob("*.py")),
    *sorted((RUNTIME / "schedules").glob("*.py")),
    *sorted((RUNTIME / "issuance").glob("*.py")),
    *sorted((RUNTIME / "rotation").glob("*.py")),
    RUNTIME / "inventory" / "dynamodb.py",
    RUNTIME / "approval.py",
    RUNTIME / "guard.py",
]
ADAPTER_SERVICES = AWS_SERVICES
# Calls the adapters can make that the deployed function is deliberately not allowed to make.
NOT_GRANTED = {
    # SecretsManagerSecretHandler(generate_when_unmanaged=True) only: writing a random value into a secret
    # without rotation revokes nothing where the old value is accepted, so the deployed engine refuses instead.
    # (PutSecretValue is granted for the rotation contract's AWSPENDING version, on declared secrets only.)
    "secretsmanager:GetRandomPassword",
}
LEDGER_WRITES_FORBIDDEN = (
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:DeleteTable",
    "dynamodb:UpdateTable",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PartiQLDelete",
    "dynamodb:PartiQLInsert",
)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(REPO_ROOT / "template.yaml")


@pytest.fixture(scope="module")
def statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement of every SAM function's policies: inline, and the template's managed policies attached."""
    resources = template["Resources"]
    found: list[dict[str, Any]] = []
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for policy in resource["Properties"].get("Policies", []):
            assert isinstance(policy, dict), "use policy documents, not AWS managed policy names"
            attached = resources.get(policy.get("Ref"), {}).get("Type") == "AWS::IAM::ManagedPolicy"
            assert "Statement" in policy or attached, "use policy documents or the template's managed policies"
        found.extend(role_statements(template, name))
    return found


def denied_resources(statements: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [
        statement
        for statement in statements
        if statement["Effect"] == "Deny"
        and any(fnmatchcase(action.lower(), pattern.lower()) for pattern in as_list(statement["Action"]))
    ]


@pytest.fixture(scope="module")
def calls() -> set[str]:
    return adapter_calls()


# IAM has no action for a transaction: each put in TransactWriteItems is authorized as a PutItem on its table.
AUTHORIZED_AS = {"dynamodb:TransactWriteItems": "dynamodb:PutItem"}


def adapter_calls() -> set[str]:
    """`service:Operation` for every boto3 call (direct or through get_paginator) in the adapters' source, named
    as IAM authorizes it."""
    return {AUTHORIZED_AS.get(call, call) for call in boto3_calls(ADAPTER_SOURCES, ADAPTER_SERVICES)}


def test_the_source_scan_finds_the_calls_it_should(calls: set[str]) -> None:
    # Guards the scan itself: if it found nothing, the coverage test below would pass vacuously.
    assert {"dynamodb:PutItem", "dynamodb:Query", "sts:AssumeRole"} <= calls


def test_every_aws_call_the_adapters_make_is_granted(statements: list[dict[str, Any]], calls: set[str]) -> None:
    missing = sorted(call for call in calls - NOT_GRANTED if not allowed_resources(statements, call))
    assert missing == [], f"template.yaml does not grant {missing}"


def test_calls_left_out_on_purpose_are_really_not_granted(statements: list[dict[str, Any]]) -> None:
    for action in NOT_GRANTED:
        assert allowed_resources(statements, action) == [], action


def test_nothing_is_granted_that_no_adapter_calls(statements: list[dict[str, Any]], calls: set[str]) -> None:
    # Granted without a direct boto3 call: what Lambda's event source mapping does as LedgerArchiveFunction's role
    # (read the ledger's stream, send a failed batch to its on-failure queue); the notification key, which SNS uses
    # with the publisher's rights when it encrypts a published message (NotificationPublishPolicy); the stored
    # settings, which Powertools `parameters` reads (tests/infra/test_stored_settings.py checks those grants
    # exactly). (lambda:InvokeFunction, which RotateSecret also checks on the caller, is now a call: the hooks.)
    expected_extra = {
        "ssm:getparameters",
        "kms:decrypt",
        "kms:generatedatakey",
        "dynamodb:describestream",
        "dynamodb:getrecords",
        "dynamodb:getsharditerator",
        "dynamodb:liststreams",
        "sqs:sendmessage",
    }

    granted = {
        action.lower()
        for statement in statements
        if statement["Effect"] == "Allow"
        for action in as_list(statement["Action"])
    }
    assert granted - {call.lower() for call in calls} == expected_extra


def test_the_ledger_is_append_only(statements: list[dict[str, Any]]) -> None:
    # Other tables (sweep checkpoints, the fingerprint index) take ordinary writes; these two never do.
    append_only = {
        "${LedgerTable.Arn}",
        "${LedgerTable.Arn}/index/*",
        "${InventoryTable.Arn}",
        "${InventoryTable.Arn}/index/*",
    }
    for action in ("dynamodb:PutItem", "dynamodb:Query", "dynamodb:GetItem"):
        assert "${LedgerTable.Arn}" in allowed_resources(statements, action), action
    for action in LEDGER_WRITES_FORBIDDEN:
        assert set(allowed_resources(statements, action)) & append_only == set(), action


def test_other_accounts_are_reached_only_through_the_configured_role(statements: list[dict[str, Any]]) -> None:
    assert set(allowed_resources(statements, "sts:AssumeRole")) == {
        "arn:${AWS::Partition}:iam::*:role/${CrossAccountRoleName}"
    }


def test_every_action_is_scoped_to_the_resources_it_can_name(statements: list[dict[str, Any]]) -> None:
    # cfn-lint ships the service authorization reference: which actions take a resource type at all.
    services = load_resource(cfnlint.data.AdditionalSpecs, "Policies.json")
    for statement in statements:
        if statement["Effect"] != "Allow":
            continue
        for action in as_list(statement["Action"]):
            service, name = action.split(":", 1)
            assert "*" not in name, f"{action}: name the action"
            resource_types = services[service]["Actions"][name.lower()].get("Resources", [])
            resources = [resource_text(resource) for resource in as_list(statement["Resource"])]
            if resource_types:
                assert "*" not in resources, f"{action} can be scoped to {resource_types} but is granted on *"
            else:
                assert resources == ["*"], f"{action} has no resource type, so only * can match it"


def test_identity_writes_are_denied_on_held_resources(statements: list[dict[str, Any]]) -> None:
    for action in ("iam:UpdateAccessKey", "iam:DeleteAccessKey", "iam:PutRolePolicy", "secretsmanager:RotateSecret"):
        conditions = [statement.get("Condition") for statement in denied_resources(statements, action)]
        assert {"Null": {"aws:ResourceTag/rescind:hold": "false"}} in conditions, action


def test_the_function_cannot_rewrite_the_policies_of_this_stack(statements: list[dict[str, Any]]) -> None:
    unconditional = [
        resource_text(statement["Resource"])
        for statement in denied_resources(statements, "iam:PutRolePolicy")
        if "Condition" not in statement
    ]

    assert unconditional == ["arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${AWS::StackName}-*"]


def test_functions_are_invoked_only_through_secrets_manager_or_as_a_named_rotation_hook(
    statements: list[dict[str, Any]],
) -> None:
    invoking = [s for s in statements if "lambda:InvokeFunction" in as_list(s["Action"])]
    hooks = [s for s in invoking if s.get("Sid") == "InvokeRotationHooks"]

    assert invoking
    assert hooks  # the rotation contract's setSecret and testSecret
    for statement in invoking:
        if statement in hooks:
            # Only the shipped hook and the functions named with the prefix, in this account: never `*`
            assert sorted(resource_text(r) for r in as_list(statement["Resource"])) == [
                "${RotatePostgresFunction.Arn}",
                "arn:${AWS::Partition}:lambda:*:${AWS::AccountId}:function:${RotationHookNamePrefix}*",
            ]
            assert "Condition" not in statement
        else:
            assert statement["Condition"] == {"Bool": {"aws:ViaAWSService": "true"}}


def test_crls_are_read_only_from_this_accounts_buckets(statements: list[dict[str, Any]]) -> None:
    reads = [s for s in statements if "s3:GetObject" in as_list(s["Action"])]
    # Besides CRLs, a function reads only the Verify Map's results in the plan bucket (the close task) and the
    # Revoke batches' read-back objects (the acting task's retry, and the verify task)
    map_results = [s for s in reads if resource_text(s["Resource"]) == "${PlanBucket.Arn}/results/*"]
    read_backs = [s for s in reads if resource_text(s["Resource"]) == "${PlanBucket.Arn}/plans/*/read-back/*"]
    crl_reads = [s for s in reads if s not in map_results and s not in read_backs]

    assert crl_reads
    assert len(map_results) == 1
    assert len(read_backs) == 2
    for statement in crl_reads:
        assert resource_text(statement["Resource"]).endswith("/*.crl")
        assert statement["Condition"] == {"StringEquals": {"aws:ResourceAccount": {"Ref": "AWS::AccountId"}}}


def _allows(statement: dict[str, Any], action: str) -> bool:
    return statement.get("Effect") == "Allow" and any(
        fnmatchcase(action.lower(), str(pattern).lower()) for pattern in as_list(statement.get("Action", []))
    )


@pytest.mark.parametrize("action", ["states:SendTaskSuccess", "states:SendTaskFailure"])
def test_only_the_approval_function_may_answer_a_task_token(template: dict[str, Any], action: str) -> None:
    # A responder who could answer a token could approve their own run: the answer is the function's alone.
    answering = sorted(
        logical_id
        for logical_id, resource in template["Resources"].items()
        if any(_allows(statement, action) for statement in role_statements(template, logical_id))
    )
    assert answering == ["AnswerApprovalFunction"]


def test_responders_answer_approvals_only_through_the_iam_authenticated_url(template: dict[str, Any]) -> None:
    function = template["Resources"]["AnswerApprovalFunction"]["Properties"]
    assert function["FunctionUrlConfig"]["AuthType"] == "AWS_IAM"
    responder = role_statements(template, "ResponderRole")
    invoking = [statement for statement in responder if _allows(statement, "lambda:InvokeFunctionUrl")]
    assert sorted(statement["Resource"]["Fn::GetAtt"][0] for statement in invoking) == [
        "AnswerApprovalFunction",
        "StartManualRevocationFunction",
    ]
    for statement in invoking:
        assert statement["Resource"]["Fn::GetAtt"][1] == "Arn"
        assert statement["Condition"] == {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}
    # Nor may a responder write the ledger, where the decisions are: the function appends them.
    assert not any(_allows(statement, "dynamodb:PutItem") for statement in responder)
    assert not any(
        _allows(statement, "lambda:InvokeFunction") and "AnswerApproval" in str(statement) for statement in responder
    )


def test_responders_start_manual_runs_only_through_the_iam_authenticated_url(template: dict[str, Any]) -> None:
    # A responder who could start the machine could name someone else as requester, then approve the run.
    responder = role_statements(template, "ResponderRole")
    assert not any(_allows(statement, "states:StartExecution") for statement in responder)
    function = template["Resources"]["StartManualRevocationFunction"]["Properties"]
    assert function["FunctionUrlConfig"]["AuthType"] == "AWS_IAM"
    assert not any(
        _allows(statement, "lambda:InvokeFunction") and "StartManualRevocation" in str(statement)
        for statement in responder
    )
    starting = sorted(
        logical_id
        for logical_id, resource in template["Resources"].items()
        if any(
            _allows(statement, "states:StartExecution") and "ManualRevocationStateMachine" in str(statement["Resource"])
            for statement in role_statements(template, logical_id)
        )
    )
    assert starting == ["StartManualRevocationFunction"]
    outputs = template["Outputs"]["StartManualRevocationUrl"]["Value"]
    assert outputs == {"Fn::GetAtt": ["StartManualRevocationFunctionUrl", "FunctionUrl"]}


def test_only_the_plan_tasks_write_a_plan_and_only_the_state_machines_hand_it_to_the_acting_task(
    template: dict[str, Any],
) -> None:
    # A token's or secret-id's revocation carries what its plan read (ActionParams.owners_read_at_plan), which the
    # acting guard takes instead of reading again: so only a plan task may write a plan's items, and only the state
    # machines (which read them) may invoke the acting task. The acting and verify tasks write read-backs only.
    def granted(logical_id: str, action: str) -> list[str]:
        return [
            resource_text(resource)
            for statement in role_statements(template, logical_id)
            if _allows(statement, action)
            for resource in as_list(statement["Resource"])
        ]

    plan_writers, other_plan_bucket_writes, invokers = [], set(), []
    for logical_id in template["Resources"]:
        for resource in granted(logical_id, "s3:PutObject"):
            if resource == "${PlanBucket.Arn}/plans/*":
                plan_writers.append(logical_id)
            elif "PlanBucket" in resource or resource == "*":
                other_plan_bucket_writes.add(resource)
        if any("ExecuteActionFunction" in resource for resource in granted(logical_id, "lambda:InvokeFunction")):
            invokers.append(logical_id)

    assert sorted(plan_writers) == ["PlanLeakResponseFunction", "PlanOffboardingFunction"]
    assert other_plan_bucket_writes == {"${PlanBucket.Arn}/plans/*/read-back/*", "${PlanBucket.Arn}/results/*"}
    assert invokers
    assert all(template["Resources"][logical_id]["Type"] == "AWS::Serverless::StateMachine" for logical_id in invokers)
