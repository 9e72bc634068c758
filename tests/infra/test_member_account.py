"""member-account.yaml: lint clean with our rules, forwarding the central template's patterns, and a role that
grants exactly what the AWS adapters do in a member account, to the central stack's roles only.

The adapters' calls are read from their source, as tests/infra/test_template_policies.py does for the central
template, so a new call in shared/rescind/aws/ fails here until the member role grants it too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cfnlint.data.AdditionalSpecs
import pytest
from cfnlint.helpers import load_resource

from rescind_local.eventbridge import event_pattern_matches
from rescind_local.template import load_template, sam_event_resource_ids, translate_template
from tests.conftest import load_event
from tests.infra.policy_scan import allowed_resources, as_list, boto3_calls, resource_text, role_statements

REPO_ROOT = Path(__file__).resolve().parents[2]
MEMBER_TEMPLATE = REPO_ROOT / "member-account.yaml"
RUNTIME = REPO_ROOT / "shared" / "rescind"
# Modules whose AWS calls can run in a member account (through AwsClientFactory.client(service, account)).
# session.py only calls STS in the central account (GetCallerIdentity, AssumeRole).
MEMBER_CALL_SOURCES = [
    *sorted(path for path in (RUNTIME / "aws").glob("*.py") if path.name != "session.py"),
    RUNTIME / "guard.py",
]
MEMBER_SERVICES = ("iam", "secretsmanager", "acm-pca", "s3")
# Left out on purpose, as in the central template (see test_template_policies.NOT_GRANTED). ListSecrets is the
# sweeps' listing (rotation by age, the inventory report), now in aws/secrets_manager.py: the member role mirrors
# ExecuteActionFunction's grants, which do not include it, so a sweep cannot list a member account's secrets yet.
NOT_GRANTED = {"secretsmanager:GetRandomPassword", "secretsmanager:ListSecrets"}
LEAK_RULES = {"HealthRiskEventRule", "GuardDutyCredentialExfiltrationRule"}
CENTRAL_TERMINATION_TARGET = "StartOffboardingFunction"


@pytest.fixture(scope="module")
def member() -> dict[str, Any]:
    return load_template(MEMBER_TEMPLATE)


@pytest.fixture(scope="module")
def central() -> dict[str, Any]:
    return load_template(REPO_ROOT / "template.yaml")


def member_account_calls() -> set[str]:
    """`service:Operation` for every boto3 call (direct or through get_paginator) in the member-side modules."""
    return boto3_calls(MEMBER_CALL_SOURCES, MEMBER_SERVICES)


def rules(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Events::Rule"
    }


def central_termination_rules(central: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The rules SAM makes of the central start function's events, by the event's name (the member rule's name)."""
    event_names = sam_event_resource_ids(central)
    return {
        event_names[logical_id]: rule
        for logical_id, rule in rules(translate_template(central)).items()
        if any(
            target["Arn"] == {"Fn::GetAtt": [CENTRAL_TERMINATION_TARGET, "Arn"]}
            for target in rule["Properties"]["Targets"]
        )
    }


# --- lint -------------------------------------------------------------------------------------------------


def _cfn_lint(*paths: str) -> list[dict[str, Any]]:
    completed = subprocess.run(  # noqa: S603 - our own venv's cfn-lint on our own files
        [str(Path(sys.executable).with_name("cfn-lint")), "--format", "json", "--include-checks", "I", "--", *paths],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.stdout, completed.stderr
    findings: list[dict[str, Any]] = json.loads(completed.stdout)
    return findings


def test_cfn_lint_is_clean_and_runs_our_rules_on_it(member: dict[str, Any], tmp_path: Path) -> None:
    # Given a copy that breaks two of our rules (a forwarding target without its dead-letter queue, a wildcard)
    broken = json.loads(json.dumps(member))
    del broken["Resources"]["HealthRiskEventRule"]["Properties"]["Targets"][0]["DeadLetterConfig"]
    statements = broken["Resources"]["ExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    statements[0]["Action"] = "iam:*"
    broken_path = tmp_path / "broken-member-account.json"
    broken_path.write_text(json.dumps(broken))

    # When cfn-lint runs as a user runs it, from the repository root (.cfnlintrc adds our rules)
    findings = _cfn_lint("member-account.yaml", str(broken_path))

    # Then the template has no finding at all, and the broken copy trips E9003 and E9004
    by_file: dict[str, set[str]] = {}
    for finding in findings:
        by_file.setdefault(Path(finding["Filename"]).name, set()).add(finding["Rule"]["Id"])
    assert "member-account.yaml" not in by_file, findings
    assert {"E9003", "E9004"} <= by_file["broken-member-account.json"]


def test_it_is_plain_cloudformation_for_stacksets(member: dict[str, Any]) -> None:
    # StackSets deploy plain CloudFormation; a transform would need CAPABILITY_AUTO_EXPAND on every instance.
    assert "Transform" not in member
    assert not any(resource["Type"].startswith("AWS::Serverless::") for resource in member["Resources"].values())


# --- forwarding rules -------------------------------------------------------------------------------------


def test_the_generic_termination_event_is_forwarded_only_when_opted_in(member: dict[str, Any]) -> None:
    # Anyone with events:PutEvents in the member account can send it: forwarding it is a choice, not a default.
    assert member["Parameters"]["ForwardWorkloadTerminatedEvents"]["Default"] == "false"
    assert member["Resources"]["WorkloadTerminatedRule"]["Condition"] == "ForwardsWorkloadTerminated"


def test_termination_patterns_are_the_central_templates(member: dict[str, Any], central: dict[str, Any]) -> None:
    central_rules = central_termination_rules(central)
    member_rules = rules(member)

    assert len(central_rules) >= 5  # guards the selection itself
    assert set(member_rules) == set(central_rules) | LEAK_RULES
    for logical_id, central_rule in central_rules.items():
        assert member_rules[logical_id]["Properties"]["EventPattern"] == central_rule["Properties"]["EventPattern"], (
            f"{logical_id}: member-account.yaml forwards a different pattern than template.yaml acts on"
        )


@pytest.mark.parametrize(
    "sample",
    [
        "ec2_instance_terminated.json",
        "ecs_task_stopped.json",
        "lambda_function_deleted.json",
        "autoscaling_instance_terminating.json",
        "workload_terminated.json",
    ],
)
def test_every_termination_sample_is_forwarded_once(member: dict[str, Any], sample: str) -> None:
    event = load_event(sample)
    matched = [
        logical_id
        for logical_id, rule in rules(member).items()
        if event_pattern_matches(rule["Properties"]["EventPattern"], event)
    ]
    assert len(matched) == 1, matched


def _health_event(event_type_code: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "AWS Health Event",
        "source": "aws.health",
        "account": "111111111111",
        "time": "2026-11-24T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventArn": f"arn:aws:health:global::event/RISK/{event_type_code}/{event_type_code}_ABC",
            "service": "RISK",
            "eventTypeCode": event_type_code,
            "eventTypeCategory": "issue",
            "affectedEntities": [{"entityValue": "AKIAIOSFODNN7EXAMPLE"}],
        },
    }


def _guardduty_finding(finding_type: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "c8c4daa7-a20c-2f03-0070-b7393dd542ad",
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "account": "111111111111",
        "time": "2026-11-24T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "schemaVersion": "2.0",
            "accountId": "111111111111",
            "type": finding_type,
            "resource": {"resourceType": "AccessKey", "accessKeyDetails": {"accessKeyId": "ASIAEXAMPLE"}},
            "severity": 8,
        },
    }


@pytest.mark.parametrize(
    ("event", "forwarded"),
    [
        (_health_event("AWS_RISK_CREDENTIALS_EXPOSED"), True),
        (_health_event("AWS_RISK_CREDENTIALS_EXPOSURE_SUSPECTED"), True),
        (_health_event("AWS_EC2_INSTANCE_STORE_DRIVE_PERFORMANCE_DEGRADED"), False),
        (_guardduty_finding("UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS"), True),
        (_guardduty_finding("UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.InsideAWS"), True),
        (_guardduty_finding("Recon:EC2/PortProbeUnprotectedPort"), False),
    ],
)
def test_leak_events_are_forwarded_and_nothing_else(
    member: dict[str, Any], event: dict[str, Any], forwarded: bool
) -> None:
    matched = [
        logical_id
        for logical_id, rule in rules(member).items()
        if event_pattern_matches(rule["Properties"]["EventPattern"], event)
    ]
    assert len(matched) == (1 if forwarded else 0), matched
    assert set(matched) <= LEAK_RULES


def test_every_target_forwards_to_the_central_bus_with_retries_and_a_dead_letter_queue(member: dict[str, Any]) -> None:
    for logical_id, rule in rules(member).items():
        (target,) = rule["Properties"]["Targets"]
        # The generic event goes to the central trigger bus, where it is acted on; AWS's events to the default bus.
        bus = "CentralTriggerEventBusArn" if logical_id == "WorkloadTerminatedRule" else "CentralEventBusArn"
        assert target["Arn"] == {"Ref": bus}, logical_id
        assert target["RoleArn"] == {"Fn::GetAtt": ["ForwardToCentralBusRole", "Arn"]}, logical_id
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["ForwardingDeadLetterQueue", "Arn"]}}
        assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0, logical_id
        assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] > 0, logical_id


def test_the_dead_letter_queue_accepts_only_the_forwarding_rules(member: dict[str, Any]) -> None:
    policy = member["Resources"]["ForwardingDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]
    (statement,) = policy["Statement"]
    sources = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    named = set()
    for source in sources:
        if "Fn::If" in source:  # the optional rule: its ARN when it exists
            source = source["Fn::If"][1]
        named.add(source["Fn::GetAtt"][0])
    assert named == set(rules(member))
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"


def test_eventbridge_may_only_put_events_on_the_central_bus(member: dict[str, Any]) -> None:
    role = member["Resources"]["ForwardToCentralBusRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    (statement,) = role_statements(member, "ForwardToCentralBusRole")
    assert (statement["Effect"], statement["Action"]) == ("Allow", "events:PutEvents")
    assert statement["Resource"] == [
        {"Ref": "CentralEventBusArn"},
        {"Fn::If": ["ForwardsWorkloadTerminated", {"Ref": "CentralTriggerEventBusArn"}, {"Ref": "AWS::NoValue"}]},
    ]


# --- the execution role -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def statements(member: dict[str, Any]) -> list[dict[str, Any]]:
    return role_statements(member, "ExecutionRole")


def test_the_source_scan_finds_the_calls_it_should() -> None:
    # Guards the scan itself: if it found nothing, the coverage test below would pass vacuously.
    assert {"iam:UpdateAccessKey", "iam:PutRolePolicy", "secretsmanager:RotateSecret", "s3:GetObject"} <= (
        member_account_calls()
    )


def test_every_call_the_adapters_make_in_a_member_account_is_granted(statements: list[dict[str, Any]]) -> None:
    calls = member_account_calls()
    missing = sorted(call for call in calls - NOT_GRANTED if not allowed_resources(statements, call))
    assert missing == [], f"member-account.yaml does not grant {missing}"
    for action in NOT_GRANTED:
        assert allowed_resources(statements, action) == [], action


def test_nothing_is_granted_that_no_adapter_calls(statements: list[dict[str, Any]]) -> None:
    # lambda:InvokeFunction: Secrets Manager's RotateSecret checks it on the caller (aws:ViaAWSService).
    granted = {
        action.lower()
        for statement in statements
        if statement["Effect"] == "Allow"
        for action in as_list(statement["Action"])
    }
    assert granted - {call.lower() for call in member_account_calls()} == {"lambda:invokefunction"}


def test_no_wildcard_action_and_every_action_scoped_to_this_account(statements: list[dict[str, Any]]) -> None:
    services = load_resource(cfnlint.data.AdditionalSpecs, "Policies.json")
    for statement in statements:
        if statement["Effect"] != "Allow":
            continue
        for action in as_list(statement["Action"]):
            service, name = action.split(":", 1)
            assert "*" not in action, f"{action}: name the action"
            resource_types = services[service]["Actions"][name.lower()].get("Resources", [])
            resources = [resource_text(resource) for resource in as_list(statement["Resource"])]
            if not resource_types:
                assert resources == ["*"], f"{action} has no resource type, so only * can match it"
                continue
            for resource in resources:
                # S3 object ARNs carry no account: the condition scopes them instead.
                in_this_account = ":${AWS::AccountId}:" in resource or (
                    statement.get("Condition") == {"StringEquals": {"aws:ResourceAccount": {"Ref": "AWS::AccountId"}}}
                )
                assert in_this_account, f"{action} on {resource} is not scoped to the member account"


def test_the_grants_are_the_central_functions_own_for_its_account(
    statements: list[dict[str, Any]], central: dict[str, Any]
) -> None:
    # What ExecuteActionFunction may do in its own account, the member role may do in its: same actions,
    # same resource patterns, same conditions. The central stack's own resources (the fingerprint key, the plan
    # bucket's read-back objects) stay there.
    central_statements = role_statements(central, "ExecuteActionFunction")
    own = tuple("${" + name + end for name in central["Resources"] for end in ("}", "."))

    def grants(found: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
        return {
            (action.lower(), resource_text(resource), json.dumps(statement.get("Condition"), sort_keys=True))
            for statement in found
            # Rotation hooks run in the central account only (RotationHookInvokePolicy): the member role has none.
            if statement["Effect"] == "Allow" and statement.get("Sid") != "InvokeRotationHooks"
            for action in as_list(statement["Action"])
            if action.split(":", 1)[0] in (*MEMBER_SERVICES, "lambda")
            for resource in as_list(statement["Resource"])
            if not resource_text(resource).startswith(own)
        }

    assert grants(statements) == grants(central_statements)


def test_writes_to_held_identities_are_denied_as_in_the_central_template(
    statements: list[dict[str, Any]], central: dict[str, Any]
) -> None:
    central_statements = role_statements(central, "ExecuteActionFunction")
    (central_hold,) = [s for s in central_statements if s.get("Sid") == "NeverTouchHeldIdentities"]
    (member_hold,) = [s for s in statements if s.get("Sid") == "NeverTouchHeldIdentities"]
    assert member_hold == central_hold


def test_the_role_cannot_rewrite_its_own_policies(member: dict[str, Any], statements: list[dict[str, Any]]) -> None:
    unconditional = {
        resource_text(resource)
        for statement in statements
        if statement["Effect"] == "Deny" and "Condition" not in statement
        for action in as_list(statement["Action"])
        if action == "iam:PutRolePolicy"
        for resource in as_list(statement["Resource"])
    }
    assert "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${RoleName}" in unconditional
    assert "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${AWS::StackName}-*" in unconditional
    # the forwarding role has a fixed name (the central bus policy admits it by name), outside the stack prefix
    forwarder = member["Resources"]["ForwardToCentralBusRole"]["Properties"]["RoleName"]
    assert forwarder == {"Fn::Sub": "rescind-forwarder-${AWS::Region}"}
    assert "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/rescind-forwarder-*" in unconditional


def test_the_role_name_is_the_one_the_central_stack_assumes(member: dict[str, Any], central: dict[str, Any]) -> None:
    role = member["Resources"]["ExecutionRole"]["Properties"]
    assert role["RoleName"] == {"Ref": "RoleName"}
    central_parameter = central["Parameters"]["CrossAccountRoleName"]
    member_parameter = member["Parameters"]["RoleName"]
    assert member_parameter["Default"] == central_parameter["Default"]
    assert member_parameter["AllowedPattern"] == central_parameter["AllowedPattern"]


# --- the trust ----------------------------------------------------------------------------------------------
# Exact central function roles and a required external id: tests/infra/test_iam_scope.py.
