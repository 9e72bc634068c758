"""Issue 15.1: a Vault reachable only inside a VPC. The functions that call Vault run in `VaultSubnetIds` when it is
given (Condition UseVpc), and no other function does; Lambda may manage their network interfaces only then, and the
functions' own code never may. Off by default, so the local stack and a plain deploy run outside any VPC."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from rescind_local.template import load_template
from tests.infra.cfn_rules import refusals
from tests.infra.readme import readme_section
from tests.infra.test_iam_scope import (
    ACCOUNT,
    MANAGED_POLICY_ACTIONS,
    boundary_statements,
    central_resolver,
    decide,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNTIME = REPO_ROOT / "shared" / "rescind"
VPC_CONFIG = {
    "Fn::If": [
        "UseVpc",
        {"SubnetIds": {"Ref": "VaultSubnetIds"}, "SecurityGroupIds": {"Ref": "VaultSecurityGroupIds"}},
        {"Ref": "AWS::NoValue"},
    ]
}
VPC_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
REAL = {"VaultAddr": "https://vault.internal.example:8200", "VaultAwsAuthRole": "rescind"}
SUBNETS = "subnet-0a1b2c3d4e5f60718,subnet-0f1e2d3c4b5a69788"
SECURITY_GROUPS = "sg-0123456789abcdef0"
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
ENI_ACTIONS = sorted(action for action in MANAGED_POLICY_ACTIONS[VPC_POLICY] if action.startswith("ec2:"))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(REPO_ROOT / "template.yaml")


def _referenced_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    }


def names_reaching_the_vault_client() -> set[str]:
    """Every cached factory of the layer (the `runtime` modules, the only code handlers call for clients) that
    builds the Vault client (`rescind.runtime.get_vault_client`), directly or through another, by name: the fixed
    point of "refers to a name already reaching it". Domain code is left out: it takes the client as an argument,
    and its common names (`request`, `token`) would join unrelated functions."""
    refers: dict[str, set[str]] = {}
    for source in RUNTIME.rglob("runtime.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, DEFINITIONS) and not node.name.startswith("__"):  # __init__ is everyone's
                refers.setdefault(node.name, set()).update(_referenced_names(node))
    reaching = {"get_vault_client"}
    while grown := {name for name, names in refers.items() if name not in reaching and names & reaching}:
        reaching |= grown
    return reaching


def vault_callers(template: dict[str, Any]) -> set[str]:
    """The functions whose handler module names something that builds the Vault client."""
    reaching = names_reaching_the_vault_client()
    callers = set()
    for name, body in template["Resources"].items():
        if body["Type"] != "AWS::Serverless::Function":
            continue
        module = body["Properties"]["Handler"].rsplit(".", 1)[0]
        handler = REPO_ROOT / body["Properties"]["CodeUri"] / f"{module}.py"
        if _referenced_names(ast.parse(handler.read_text())) & reaching:
            callers.add(name)
    return callers


def test_the_vault_callers_are_found(template: dict[str, Any]) -> None:
    # The analysis below must see the obvious ones, or the next test would pass on nothing.
    callers = vault_callers(template)

    assert {"ExecuteActionFunction", "PlanOffboardingFunction", "StartLeakResponseFunction"} <= callers
    assert not {"GitHubWebhookFunction", "CloseIncidentFunction", "AnswerApprovalFunction"} & callers


def test_every_vault_caller_runs_in_the_vpc_under_use_vpc_and_no_other_function_does(template: dict[str, Any]) -> None:
    functions = {
        name: body["Properties"]
        for name, body in template["Resources"].items()
        if body["Type"] == "AWS::Serverless::Function"
    }
    in_vpc = {name for name, properties in functions.items() if "VpcConfig" in properties}

    assert in_vpc == vault_callers(template)
    for name in in_vpc:
        assert functions[name]["VpcConfig"] == VPC_CONFIG, name
    assert "VpcConfig" not in template["Globals"]["Function"]


def test_the_vpc_is_off_by_default_and_on_with_subnets(template: dict[str, Any]) -> None:
    for name in ("VaultSubnetIds", "VaultSecurityGroupIds"):
        assert template["Parameters"][name]["Type"] == "CommaDelimitedList"
        assert template["Parameters"][name]["Default"] == ""

    assert central_resolver(template).condition("UseVpc") is False
    on = central_resolver(template, VaultSubnetIds=SUBNETS.split(","), VaultSecurityGroupIds=[SECURITY_GROUPS])
    assert on.condition("UseVpc") is True
    vpc = on.resolve(template["Resources"]["ExecuteActionFunction"]["Properties"]["VpcConfig"])
    assert vpc == {"SubnetIds": SUBNETS.split(","), "SecurityGroupIds": [SECURITY_GROUPS]}


@pytest.mark.parametrize(
    ("subnets", "security_groups", "refused"),
    [("", "", False), (SUBNETS, SECURITY_GROUPS, False), (SUBNETS, "", True), ("subnet-1", SECURITY_GROUPS, True)],
    ids=["no-vpc", "vpc", "subnets-without-security-groups", "not-a-subnet-id"],
)
def test_subnets_need_security_groups_and_well_formed_ids(
    template: dict[str, Any], subnets: str, security_groups: str, refused: bool
) -> None:
    found = refusals(template, {**REAL, "VaultSubnetIds": subnets, "VaultSecurityGroupIds": security_groups})

    assert bool(found) is refused, found


@pytest.mark.parametrize("use_vpc", [False, True], ids=["no-vpc", "vpc"])
def test_lambda_manages_the_network_interfaces_only_under_use_vpc_and_the_code_never(
    template: dict[str, Any], use_vpc: bool
) -> None:
    parameters: dict[str, Any] = {"VaultSubnetIds": SUBNETS.split(",")} if use_vpc else {}
    boundary = boundary_statements(template, central_resolver(template, **parameters), "RescindFunctionsBoundary")
    # What SAM attaches to a Vault caller's role for its VpcConfig, whatever UseVpc says.
    identity = [{"Effect": "Allow", "Action": ENI_ACTIONS, "Resource": "*"}]
    lambda_itself: dict[str, str] = {}
    function_code = {"lambda:SourceFunctionArn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:rescind-execute-action"}
    interface = f"arn:aws:ec2:us-east-1:{ACCOUNT}:network-interface/eni-0123456789abcdef0"

    for action in ENI_ACTIONS:
        assert decide(identity, boundary, action, interface, lambda_itself) is use_vpc, action
    for action in ("ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses"):
        assert not decide(identity, boundary, action, interface, function_code), action


def test_the_readme_says_how_a_private_vault_is_reached() -> None:
    section = readme_section("Private Vault")

    for needed in ("VaultSubnetIds", "VaultSecurityGroupIds", "NAT", "IAM", "GitHub"):
        assert needed in section, needed
    assert re.search(r"IAM[^.]*global[^.]*no [^.]*endpoint", section), "say why NAT is needed"


def test_every_vault_caller_logs_in_as_the_vault_role_rescind_vault_setup_writes_for_it(
    template: dict[str, Any],
) -> None:
    # Given the roles `rescind vault setup` writes, one per function role, bound to exactly those functions
    from rescind_cli.vault_access import FUNCTION_ROLES

    role_of = {function: role.name for role in FUNCTION_ROLES for function in role.functions}

    # Then every function that calls Vault has one, and logs in as `<VaultAwsAuthRole>-<role>`: a login as any
    # other name fails, since no such Vault role exists
    assert vault_callers(template) == set(role_of)
    for function, role in role_of.items():
        variables = template["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert variables["VAULT_AWS_AUTH_ROLE"] == {"Fn::Sub": f"${{VaultAwsAuthRole}}-{role}"}, function
