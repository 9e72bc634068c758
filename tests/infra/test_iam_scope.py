"""Issue 13.6: Rescind's IAM rights reach only what may be cut, only in the organisation, only from its own roles.

- `iam:PutRolePolicy` (cutting role sessions) only on roles tagged `rescind:managed` = `true`, in template.yaml's
  functions and member-account.yaml's execution role, and again in their permissions boundaries.
- `sts:AssumeRole` only on the execution role, in the organisation when `OrganizationId` is set.
- The member trust: the central function roles by exact ARN, with a required external id.

The templates are resolved as CloudFormation would (parameters, conditions, AWS::NoValue), then the identity
policy and the boundary are evaluated together by `decide` below: an action is allowed when both allow it and
neither denies it. moto 5.2.5 evaluates neither resource tags nor boundaries, so these checks are the IAM half
of the guarantee; tests/integration/aws/test_role_sessions.py holds the code half.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

from rescind.aws.external_id import EXTERNAL_ID_PATTERN, MAX_EXTERNAL_ID_LENGTH, MIN_EXTERNAL_ID_LENGTH
from rescind.aws.role_sessions import MANAGED_TAG, MANAGED_TAG_VALUE
from rescind_local.stack import IntrinsicResolver, plan_local_resources
from rescind_local.template import load_template, translate_template
from tests.infra.policy_scan import as_list, resource_text, role_statements

REPO_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
MEMBER = "111111111111"
ORGANISATION = "o-a1b2c3d4e5"
STACK = "rescind"
MEMBER_STACK = "StackSet-rescind-member-0001"
EXECUTION_ROLE = "RescindExecutionRole"
FUNCTION_ROLE_ARNS = [
    f"arn:aws:iam::{ACCOUNT}:role/rescind-ExecuteActionFunctionRole-A1B2C3",
    f"arn:aws:iam::{ACCOUNT}:role/rescind-PlanLeakResponseFunctionRole-D4E5F6",
]
MEMBER_PARAMETERS: dict[str, Any] = {
    "CentralAccountId": ACCOUNT,
    "CentralEventBusArn": f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/default",
    "CentralFunctionRoleArns": FUNCTION_ROLE_ARNS,
    "ExternalId": "rescind-org-7f3a-2c9d",
}
OPTED_IN = {MANAGED_TAG: MANAGED_TAG_VALUE}
# The functions that reach other accounts: the ones granted sts:AssumeRole.
CROSS_ACCOUNT_OUTPUT = "CrossAccountFunctionRoleArns"


# --- a small IAM evaluator: enough for the conditions these templates use, failing on any other ---------------


RequestContext = Mapping[str, str | list[str]]


def _condition_holds(conditions: dict[str, Any], context: RequestContext) -> bool:
    for operator, tests in conditions.items():
        for key, expected in tests.items():
            values = [str(value) for value in as_list(expected)]
            actual = context.get(key)
            if operator.startswith(("ForAllValues:", "ForAnyValue:")):
                # Multi-valued keys (dynamodb:LeadingKeys). IAM: ForAllValues holds when every request value matches,
                # and also when the key is absent (an empty set); ForAnyValue needs at least one match.
                request_values = [] if actual is None else as_list(actual)
                qualifier, _, inner = operator.partition(":")
                if inner != "StringLike":
                    raise AssertionError(f"the test's evaluator does not know {operator}: extend it")
                matching = [any(fnmatchcase(value, pattern) for pattern in values) for value in request_values]
                holds = all(matching) if qualifier == "ForAllValues" else any(matching)
                if not holds:
                    return False
                continue
            if isinstance(actual, list):
                raise AssertionError(f"{key} has several values: use a ForAllValues/ForAnyValue operator")
            if operator == "StringEquals":
                holds = actual is not None and actual in values
            elif operator == "StringNotEquals":
                holds = actual is None or actual not in values  # a missing key matches a negated operator
            elif operator in ("ArnLike", "StringLike"):
                holds = actual is not None and any(fnmatchcase(actual, value) for value in values)
            elif operator == "Bool":
                holds = actual is not None and actual in values
            elif operator == "Null":
                holds = (actual is None) == (values == ["true"])
            else:
                raise AssertionError(f"the test's evaluator does not know {operator}: extend it")
            if not holds:
                return False
    return True


def _matches(statement: dict[str, Any], action: str, resource: str, context: RequestContext) -> bool:
    if not any(fnmatchcase(action.lower(), pattern.lower()) for pattern in as_list(statement["Action"])):
        return False
    if "NotResource" in statement:
        if any(fnmatchcase(resource, pattern) for pattern in as_list(statement["NotResource"])):
            return False
    elif not any(fnmatchcase(resource, pattern) for pattern in as_list(statement["Resource"])):
        return False
    return _condition_holds(statement.get("Condition", {}), context)


def decide(
    identity: list[dict[str, Any]], boundary: list[dict[str, Any]], action: str, resource: str, context: RequestContext
) -> bool:
    """Whether a role with this identity policy and this permissions boundary may call `action` on `resource`."""
    everything = identity + boundary
    if any(s["Effect"] == "Deny" and _matches(s, action, resource, context) for s in everything):
        return False

    def allows(statements: list[dict[str, Any]]) -> bool:
        return any(s["Effect"] == "Allow" and _matches(s, action, resource, context) for s in statements)

    return allows(identity) and allows(boundary)


def _role_context(tags: dict[str, str], **extra: str) -> dict[str, str]:
    return {**{f"aws:ResourceTag/{key}": value for key, value in tags.items()}, **extra}


# --- the resolved templates ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def central() -> dict[str, Any]:
    return load_template(REPO_ROOT / "template.yaml")


@pytest.fixture(scope="module")
def member() -> dict[str, Any]:
    return load_template(REPO_ROOT / "member-account.yaml")


def central_resolver(template: dict[str, Any], **parameters: str) -> IntrinsicResolver:
    parameters = {"VaultAddr": "https://vault.example.com", "VaultAwsAuthRole": "rescind", **parameters}
    resources = plan_local_resources(template, STACK, account_id=ACCOUNT, parameters=parameters)
    return IntrinsicResolver(template, resources, STACK, account_id=ACCOUNT, parameters=parameters)


def function_statements(template: dict[str, Any], resolver: IntrinsicResolver, function: str) -> list[dict[str, Any]]:
    """What the function's role is granted: its inline policy and the template's managed policies attached to it."""
    statements: list[dict[str, Any]] = resolver.resolve(role_statements(template, function))
    return statements


def boundary_statements(template: dict[str, Any], resolver: IntrinsicResolver, logical_id: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = resolver.resolve(template["Resources"][logical_id]["Properties"])[
        "PolicyDocument"
    ]["Statement"]
    return statements


def member_role(member: dict[str, Any], **parameters: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """ExecutionRole's resolved properties, and its boundary's statements."""
    resolver = IntrinsicResolver(
        member, {}, MEMBER_STACK, account_id=MEMBER, parameters={**MEMBER_PARAMETERS, **parameters}
    )
    properties = member["Resources"]["ExecutionRole"]["Properties"]
    resolved: dict[str, Any] = resolver.resolve({k: v for k, v in properties.items() if k != "PermissionsBoundary"})
    has_boundary = "ExecutionRoleBoundary" in member["Resources"]  # so the trust checks fail on the trust alone
    return resolved, boundary_statements(member, resolver, "ExecutionRoleBoundary") if has_boundary else []


def member_identity(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [statement for policy in role["Policies"] for statement in policy["PolicyDocument"]["Statement"]]


def functions(template: dict[str, Any]) -> list[str]:
    return [name for name, body in template["Resources"].items() if body["Type"] == "AWS::Serverless::Function"]


def granting(template: dict[str, Any], action: str) -> list[str]:
    """The functions whose policies (inline or attached) allow `action`."""
    return [
        name
        for name in functions(template)
        if any(s["Effect"] == "Allow" and action in as_list(s["Action"]) for s in role_statements(template, name))
    ]


# --- iam:PutRolePolicy: only on roles that opted in ----------------------------------------------------------


def _put_role_policy_grants(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in statements if s["Effect"] == "Allow" and "iam:PutRolePolicy" in as_list(s["Action"])]


def test_put_role_policy_is_granted_only_with_the_opt_in_tag_condition(
    central: dict[str, Any], member: dict[str, Any]
) -> None:
    expected = {"StringEquals": {f"aws:ResourceTag/{MANAGED_TAG}": MANAGED_TAG_VALUE}}
    central_grants = [
        statement
        for name in functions(central)
        for statement in _put_role_policy_grants(role_statements(central, name))
    ]
    member_grants = _put_role_policy_grants(member_identity(member["Resources"]["ExecutionRole"]["Properties"]))

    assert central_grants  # the session-cutting code needs it somewhere
    assert member_grants
    for statement in central_grants + member_grants:
        assert statement.get("Condition") == expected, statement
        assert as_list(statement["Action"]) == ["iam:PutRolePolicy"], "other actions would carry the condition too"


@pytest.mark.parametrize(
    ("tags", "role", "allowed"),
    [
        (OPTED_IN, "payments-worker", True),
        ({}, "payments-worker", False),
        ({MANAGED_TAG: "false"}, "payments-worker", False),
        ({MANAGED_TAG: "True"}, "payments-worker", False),
        ({**OPTED_IN, "rescind:hold": "incident-42"}, "payments-worker", False),
        # Rescind's own roles, even when someone tags them
        (OPTED_IN, f"{STACK}-ExecuteActionFunctionRole-A1B2C3", False),
    ],
    ids=["opted-in", "untagged", "false", "True", "held", "own-role-tagged"],
)
def test_the_central_function_cuts_only_roles_that_opted_in(
    central: dict[str, Any], tags: dict[str, str], role: str, allowed: bool
) -> None:
    resolver = central_resolver(central)
    identity = function_statements(central, resolver, "ExecuteActionFunction")
    boundary = boundary_statements(central, resolver, "RescindFunctionsBoundary")
    arn = f"arn:aws:iam::{ACCOUNT}:role/{role}"

    assert decide(identity, boundary, "iam:PutRolePolicy", arn, _role_context(tags)) is allowed
    # The boundary alone says the same: a policy later granting PutRolePolicy on every role changes nothing.
    anything = [{"Effect": "Allow", "Action": "iam:PutRolePolicy", "Resource": "*"}]
    assert decide(anything, boundary, "iam:PutRolePolicy", arn, _role_context(tags)) is allowed


@pytest.mark.parametrize(
    ("tags", "role", "allowed"),
    [
        (OPTED_IN, "payments-worker", True),
        ({}, "payments-worker", False),
        ({MANAGED_TAG: "yes"}, "payments-worker", False),
        ({**OPTED_IN, "rescind:hold": "true"}, "payments-worker", False),
        (OPTED_IN, EXECUTION_ROLE, False),
        (OPTED_IN, f"{MEMBER_STACK}-SomeRole", False),
        (OPTED_IN, "rescind-forwarder-us-east-1", False),
    ],
    ids=["opted-in", "untagged", "yes", "held", "itself", "member-stack-role", "forwarder"],
)
def test_the_member_execution_role_cuts_only_roles_that_opted_in(
    member: dict[str, Any], tags: dict[str, str], role: str, allowed: bool
) -> None:
    resolved, boundary = member_role(member)
    arn = f"arn:aws:iam::{MEMBER}:role/{role}"

    assert decide(member_identity(resolved), boundary, "iam:PutRolePolicy", arn, _role_context(tags)) is allowed
    anything = [{"Effect": "Allow", "Action": "iam:PutRolePolicy", "Resource": "*"}]
    assert decide(anything, boundary, "iam:PutRolePolicy", arn, _role_context(tags)) is allowed


# --- sts:AssumeRole: the execution role, in the organisation --------------------------------------------------


def test_assume_role_names_the_execution_role_never_a_wildcard_role_or_an_account(central: dict[str, Any]) -> None:
    assuming = granting(central, "sts:AssumeRole")
    assert assuming

    for name in assuming:
        for statement in role_statements(central, name):
            if "sts:AssumeRole" not in as_list(statement["Action"]) or statement["Effect"] != "Allow":
                continue
            resources = [resource_text(resource) for resource in as_list(statement["Resource"])]
            assert resources == ["arn:${AWS::Partition}:iam::*:role/${CrossAccountRoleName}"], name
            assert statement["Condition"] == {
                "Fn::If": [
                    "HasOrganizationId",
                    {"StringEquals": {"aws:ResourceOrgID": {"Ref": "OrganizationId"}}},
                    {"Ref": "AWS::NoValue"},
                ]
            }, name


def test_the_organisation_condition_applies_only_when_an_organisation_is_given(central: dict[str, Any]) -> None:
    assert central["Conditions"]["HasOrganizationId"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "OrganizationId"}, ""]}]}
    assert central["Parameters"]["OrganizationId"]["Default"] == ""
    assert re.fullmatch(central["Parameters"]["OrganizationId"]["AllowedPattern"], ORGANISATION)
    role = f"arn:aws:iam::{MEMBER}:role/{EXECUTION_ROLE}"
    inside, outside = {"aws:ResourceOrgID": ORGANISATION}, {"aws:ResourceOrgID": "o-zzzzzzzzzz"}

    for name in granting(central, "sts:AssumeRole"):
        # With an organisation: the execution role of its accounts only
        resolver = central_resolver(central, OrganizationId=ORGANISATION)
        identity = function_statements(central, resolver, name)
        boundary = boundary_statements(central, resolver, "RescindFunctionsBoundary")
        assert decide(identity, boundary, "sts:AssumeRole", role, inside), name
        assert not decide(identity, boundary, "sts:AssumeRole", role, outside), name
        assert not decide(identity, boundary, "sts:AssumeRole", f"arn:aws:iam::{MEMBER}:role/Admin", inside), name
        # Without one: no organisation condition at all (AWS::NoValue), still only the execution role
        resolver = central_resolver(central)
        identity = function_statements(central, resolver, name)
        boundary = boundary_statements(central, resolver, "RescindFunctionsBoundary")
        assert all("Condition" not in s for s in identity if "sts:AssumeRole" in as_list(s["Action"])), name
        assert decide(identity, boundary, "sts:AssumeRole", role, outside), name
        assert not decide(identity, boundary, "sts:AssumeRole", f"arn:aws:iam::{MEMBER}:role/Admin", {}), name


def test_the_cross_account_roles_output_names_every_function_that_assumes_the_role(central: dict[str, Any]) -> None:
    output = central["Outputs"][CROSS_ACCOUNT_OUTPUT]["Value"]
    separator, parts = output["Fn::Join"]

    assert separator == ","
    assert sorted(part["Fn::GetAtt"] for part in parts) == sorted(
        [f"{name}Role", "Arn"] for name in granting(central, "sts:AssumeRole")
    )


# --- the member trust: exact roles, a required external id -----------------------------------------------------


def test_the_member_trust_names_the_exact_function_roles_and_requires_the_external_id(member: dict[str, Any]) -> None:
    resolved, _ = member_role(member)

    (statement,) = resolved["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Principal"] == {"AWS": FUNCTION_ROLE_ARNS}
    assert ":root" not in str(statement)
    assert "*" not in str(statement["Principal"])
    assert statement["Condition"] == {
        "StringEquals": {"sts:ExternalId": MEMBER_PARAMETERS["ExternalId"], "aws:PrincipalAccount": ACCOUNT}
    }


def test_the_external_id_is_required_secret_and_as_long_as_the_code_asks(
    member: dict[str, Any], central: dict[str, Any]
) -> None:
    parameter = member["Parameters"]["ExternalId"]
    assert "Default" not in parameter  # required: no stack without one
    assert parameter["NoEcho"] is True
    assert (parameter["MinLength"], parameter["MaxLength"]) == (MIN_EXTERNAL_ID_LENGTH, MAX_EXTERNAL_ID_LENGTH)
    # The central stack's parameter takes what the code takes (or empty, for a stack with no member account). It is
    # not NoEcho: `sam deploy --guided` would re-prompt it until something is typed (tests/infra/test_deploy.py).
    central_pattern = central["Parameters"]["CrossAccountExternalId"]["AllowedPattern"]
    assert central["Parameters"]["CrossAccountExternalId"]["Default"] == ""
    for candidate in ("", "x" * 15, "x" * 16, "rescind-org-7f3a", "has space 0000000", "x" * 1224, "x" * 1225):
        code_accepts = candidate == "" or re.fullmatch(EXTERNAL_ID_PATTERN, candidate) is not None
        assert (re.fullmatch(central_pattern, candidate) is not None) is code_accepts, candidate
    for candidate in ("x" * 16, "rescind-org-7f3a", "a:b/c=d,e.f@g+h-i_j"):
        assert re.fullmatch(parameter["AllowedPattern"], candidate), candidate
        assert re.fullmatch(EXTERNAL_ID_PATTERN, candidate), candidate


def test_the_function_role_arns_parameter_takes_only_role_arns(member: dict[str, Any]) -> None:
    parameter = member["Parameters"]["CentralFunctionRoleArns"]
    assert parameter["Type"] == "CommaDelimitedList"
    assert "Default" not in parameter
    for arn in FUNCTION_ROLE_ARNS:
        assert re.fullmatch(parameter["AllowedPattern"], arn)
    for wrong in (f"arn:aws:iam::{ACCOUNT}:root", "*", f"arn:aws:iam::{ACCOUNT}:user/admin", "rescind-*"):
        assert not re.fullmatch(parameter["AllowedPattern"], wrong), wrong


# --- permissions boundaries: Rescind cannot grant itself more -------------------------------------------------


@pytest.fixture(scope="module")
def translated(central: dict[str, Any]) -> dict[str, Any]:
    return translate_template(central)


# What SAM attaches to every function role beside its inline policy (AWSLambdaBasicExecutionRole,
# AWSXrayWriteOnlyAccess, and AWSLambdaVPCAccessExecutionRole where the function has a VpcConfig), read from AWS's
# managed policies.
MANAGED_POLICY_ACTIONS = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": {
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    },
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
    },
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole": {
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    },
}


def boundary_allow_statements(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The boundary's Allow statements, a conditional one (an Fn::If, e.g. the VPC network interfaces under UseVpc)
    counted by its true branch: what the boundary allows in some deployment."""
    found: list[dict[str, Any]] = []
    for statement in statements:
        if "Fn::If" in statement:
            statement = statement["Fn::If"][1]
        if isinstance(statement, dict) and statement.get("Effect") == "Allow":
            found.append(statement)
    return found


def _partitioned(arn: Any) -> str:
    return arn if isinstance(arn, str) else str(arn["Fn::Sub"]).replace("${AWS::Partition}", "aws")


def test_every_function_role_carries_the_boundary(translated: dict[str, Any]) -> None:
    roles = {name: body for name, body in translated["Resources"].items() if body["Type"] == "AWS::IAM::Role"}
    function_roles = [
        translated["Resources"][name]["Properties"]["Role"]["Fn::GetAtt"][0]
        for name, body in translated["Resources"].items()
        if body["Type"] == "AWS::Lambda::Function"
    ]
    assert len(function_roles) >= 10
    for role in function_roles:
        assert roles[role]["Properties"]["PermissionsBoundary"] == {"Ref": "RescindFunctionsBoundary"}, role


def test_the_boundary_allows_what_the_function_roles_use_and_nothing_else(translated: dict[str, Any]) -> None:
    boundary = translated["Resources"]["RescindFunctionsBoundary"]["Properties"]["PolicyDocument"]["Statement"]
    boundary_allows = {
        action.lower() for statement in boundary_allow_statements(boundary) for action in statement["Action"]
    }
    used: set[str] = set()
    for name, body in translated["Resources"].items():
        if body["Type"] != "AWS::IAM::Role" or "PermissionsBoundary" not in body["Properties"]:
            continue
        # Its inline policies and the template's own managed policies attached to it
        for statement in role_statements(translated, name):
            if statement["Effect"] == "Allow":
                used |= {action.lower() for action in as_list(statement["Action"])}
        # and the AWS managed policies SAM attaches
        for arn in body["Properties"].get("ManagedPolicyArns", []):
            if isinstance(arn, dict) and translated["Resources"][arn["Ref"]]["Type"] == "AWS::IAM::ManagedPolicy":
                continue
            assert _partitioned(arn) in MANAGED_POLICY_ACTIONS, f"{name}: what does {arn} grant?"
            used |= {action.lower() for action in MANAGED_POLICY_ACTIONS[_partitioned(arn)]}

    assert used - boundary_allows == set(), "the boundary would silently take these away"
    assert boundary_allows - used == set(), "the boundary allows what no function uses"
    assert not any("*" in action for action in boundary_allows)


def test_the_templates_managed_policies_are_attached_by_the_roles_that_hold_them(translated: dict[str, Any]) -> None:
    # What a role may do is read from the role alone (role_statements): a policy that attached itself to roles,
    # users or groups would grant what no role declares, and one attached nowhere would be dead weight.
    resources = translated["Resources"]
    policies = {name for name, body in resources.items() if body["Type"] == "AWS::IAM::ManagedPolicy"}
    boundaries = {
        body["Properties"]["PermissionsBoundary"]["Ref"]
        for body in resources.values()
        if body["Type"] == "AWS::IAM::Role" and "PermissionsBoundary" in body["Properties"]
    }
    attached = {
        arn["Ref"]
        for body in resources.values()
        if body["Type"] == "AWS::IAM::Role"
        for arn in body["Properties"].get("ManagedPolicyArns", [])
        if isinstance(arn, dict) and "Ref" in arn
    }

    assert boundaries == {"RescindFunctionsBoundary"}
    assert attached == policies - boundaries
    assert len(attached) >= 2  # the shared ones: the test sees them
    for name in policies:
        assert not {"Roles", "Users", "Groups"} & set(resources[name]["Properties"]), name


def test_the_member_boundary_allows_what_the_role_grants_and_nothing_else(member: dict[str, Any]) -> None:
    resolved, boundary = member_role(member)
    granted = {
        action.lower()
        for statement in member_identity(resolved)
        if statement["Effect"] == "Allow"
        for action in as_list(statement["Action"])
    }
    boundary_allows = {
        action.lower() for statement in boundary if statement["Effect"] == "Allow" for action in statement["Action"]
    }

    assert granted == boundary_allows
    assert "sts:assumerole" not in boundary_allows  # the member role reaches no further
    properties = member["Resources"]["ExecutionRole"]["Properties"]
    assert properties["PermissionsBoundary"] == {"Ref": "ExecutionRoleBoundary"}
    assert member["Resources"]["ExecutionRoleBoundary"]["Condition"] == "CreatesExecutionRole"


@pytest.mark.parametrize(
    "action",
    [
        "iam:PutRolePermissionsBoundary",
        "iam:DeleteRolePermissionsBoundary",
        "iam:CreatePolicyVersion",
        "iam:AttachRolePolicy",
        "iam:TagRole",
        "iam:UntagRole",
        "iam:UpdateAssumeRolePolicy",
        "iam:CreateRole",
        "iam:PassRole",
    ],
)
def test_no_role_can_lift_its_boundary_or_opt_a_role_in(
    central: dict[str, Any], member: dict[str, Any], action: str
) -> None:
    # Neither boundary allows these, so no policy written onto a Rescind role can grant them.
    resolver = central_resolver(central)
    central_boundary = boundary_statements(central, resolver, "RescindFunctionsBoundary")
    _, member_boundary = member_role(member)
    anything = [{"Effect": "Allow", "Action": action, "Resource": "*"}]
    for boundary in (central_boundary, member_boundary):
        arn = f"arn:aws:iam::{ACCOUNT}:role/payments-worker"
        assert not decide(anything, boundary, action, arn, _role_context(OPTED_IN)), action
