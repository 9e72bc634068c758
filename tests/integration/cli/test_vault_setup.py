"""`rescind vault setup --stack NAME`: the Vault side of a deployed stack, written from code.

The stack is a CloudFormation stack in moto holding what the command reads of a real one: the parameters
(VaultAwsAuthRole, VaultAwsAuthMount, the mounts) and each function's generated role, by the logical id SAM gives
it (`<Function>Role`). Vault is a real OpenBao. OpenBao has no AWS auth method, so the AWS auth roles are
checked as the dry run renders them, and the writing on OpenBao is of the policies (`--policies-only`); that a
missing AWS auth method is refused, naming it, before anything is written, is checked on OpenBao too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
import hvac
import hvac.exceptions
import pytest
from typer.testing import CliRunner, Result

from rescind_cli.main import app
from rescind_cli.vault_access import FUNCTION_ROLES, VaultMounts, function_role, render_hcl
from rescind_local import LocalOpenBao
from rescind_local.template import load_template

pytestmark = pytest.mark.integration
OTHER_FUNCTION_ROLES = ("GitHubWebhookFunctionRole", "CloseIncidentFunctionRole", "OrphansFunctionRole")


@dataclass
class Stack:
    name: str
    prefix: str
    parameters: dict[str, str]

    def role_arn(self, logical_id: str) -> str:
        cloudformation, iam = boto3.client("cloudformation"), boto3.client("iam")
        name = cloudformation.describe_stack_resource(StackName=self.name, LogicalResourceId=logical_id)[
            "StackResourceDetail"
        ]["PhysicalResourceId"]
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])


def create_stack(name: str, parameters: dict[str, str]) -> Stack:
    """A stack with the parameters and function roles `vault setup` reads, and the outputs any Rescind stack has."""
    logical_ids = [logical for role in FUNCTION_ROLES for logical in role.iam_role_logical_ids()]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    outputs = ("LedgerTableName", "ManualRevocationStateMachineArn", "OffboardingStateMachineArn")
    template = {
        "Parameters": {key: {"Type": "String"} for key in parameters},
        "Resources": {
            logical: {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": trust}}
            for logical in (*logical_ids, *OTHER_FUNCTION_ROLES)
        },
        "Outputs": {key: {"Value": f"placeholder-{key}"} for key in outputs},
    }
    boto3.client("cloudformation").create_stack(
        StackName=name,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()],
    )
    return Stack(name=name, prefix=parameters["VaultAwsAuthRole"], parameters=parameters)


@pytest.fixture
def stack(aws: None, unique: str) -> Stack:
    return create_stack(
        f"rescind-{unique}",
        {
            "VaultAddr": "https://vault.example.com",
            "VaultAwsAuthRole": f"rescind-{unique}",
            "VaultAwsAuthMount": "aws",
            "PkiMounts": "pki,pki-int",
            "AppRoleMounts": "approle",
            "KvMounts": "secret",
            "LeaseMounts": "database",
        },
    )


@pytest.fixture
def operator(openbao: LocalOpenBao) -> dict[str, str | None]:
    """The operator's environment: VAULT_ADDR and VAULT_TOKEN of the local OpenBao, moto's AWS."""
    return {"VAULT_ADDR": openbao.addr, "VAULT_TOKEN": openbao.root_token, "AWS_PROFILE": None}


def setup(*arguments: str, env: dict[str, str | None]) -> Result:
    return CliRunner().invoke(app, ["vault", "setup", *arguments], env=env, catch_exceptions=False)


def setup_json(*arguments: str, env: dict[str, str | None]) -> tuple[int, dict[str, Any]]:
    result = setup(*arguments, "--json", env=env)
    return result.exit_code, json.loads(result.stdout)


def test_the_dry_run_binds_each_role_to_exactly_its_functions_roles_and_writes_nothing(
    stack: Stack, vault: hvac.Client
) -> None:
    # When the operator asks what would be written, with no Vault token at all
    code, document = setup_json("--stack", stack.name, "--dry-run", env={"VAULT_TOKEN": None, "AWS_PROFILE": None})

    # Then one policy per role, rendered for the stack's mounts
    assert code == 0, document
    mounts = VaultMounts(pki=("pki", "pki-int"), approle=("approle",), kv=("secret",), lease=("database",))
    assert {p["name"]: p["policy"] for p in document["policies"]} == {
        f"{stack.prefix}-{role.name}": render_hcl(role, mounts) for role in FUNCTION_ROLES
    }
    # And one AWS auth role per function role, bound to the ARNs of its functions' roles and nothing else
    roles = {role["name"]: role for role in document["aws_auth_roles"]}
    assert set(roles) == {f"{stack.prefix}-{role.name}" for role in FUNCTION_ROLES if role.functions}
    for role in FUNCTION_ROLES:
        if not role.functions:
            continue
        written = roles[f"{stack.prefix}-{role.name}"]
        assert written["path"] == f"auth/aws/role/{stack.prefix}-{role.name}"
        assert written["settings"] == {
            "auth_type": "iam",
            "bound_iam_principal_arn": sorted(stack.role_arn(logical) for logical in role.iam_role_logical_ids()),
            "token_policies": [f"{stack.prefix}-{role.name}"],
            "token_no_default_policy": True,
            "token_type": "service",
            "token_ttl": 900,
            "token_max_ttl": 3600,
        }
    bound = {arn for role in roles.values() for arn in role["settings"]["bound_iam_principal_arn"]}
    assert not {stack.role_arn(logical) for logical in OTHER_FUNCTION_ROLES} & bound  # no Vault for them
    # And each function is told which role it logs in as
    assert document["function_login_roles"]["ExecuteActionFunction"] == f"{stack.prefix}-actor"
    # And nothing was written
    with pytest.raises(hvac.exceptions.InvalidPath):
        vault.sys.read_acl_policy(f"{stack.prefix}-actor")


def test_every_function_that_calls_vault_has_a_role_and_the_others_none() -> None:
    """The template's functions, against the roles: a function whose handler reaches Vault has one."""
    from pathlib import Path

    reaches_vault = ("get_vault_client", "get_engine", "get_leak_locator", "get_action_guard")
    template = load_template()
    functions = {
        logical: resource["Properties"]["CodeUri"]
        for logical, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    for role in FUNCTION_ROLES:
        assert set(role.functions) <= set(functions), role
    for logical, code_uri in functions.items():
        source = (Path(__file__).resolve().parents[3] / code_uri / "app.py").read_text()
        has_role = any(logical in role.functions for role in FUNCTION_ROLES)
        assert has_role == any(name in source for name in reaches_vault), logical


def test_the_policies_are_written_once_and_a_second_run_changes_nothing(
    stack: Stack, operator: dict[str, str | None], vault: hvac.Client
) -> None:
    # When the policies are written (OpenBao has no AWS auth method: --policies-only)
    code, first = setup_json("--stack", stack.name, "--policies-only", env=operator)

    # Then each is in Vault as rendered, and created
    assert code == 0, first
    assert first["vault"].rstrip("/") == operator["VAULT_ADDR"]
    assert {p["status"] for p in first["policies"]} == {"created"}
    assert first["aws_auth_roles"] == []
    for policy in first["policies"]:
        assert vault.sys.read_acl_policy(policy["name"])["data"]["policy"] == policy["policy"]

    # And a second run writes nothing; a policy changed by hand is put back
    vault.sys.create_or_update_acl_policy(f"{stack.prefix}-planner", 'path "sys/*" {\n  capabilities = ["sudo"]\n}\n')
    code, second = setup_json("--stack", stack.name, "--policies-only", env=operator)
    assert code == 0, second
    statuses = {p["name"]: p["status"] for p in second["policies"]}
    assert statuses.pop(f"{stack.prefix}-planner") == "updated"
    assert set(statuses.values()) == {"unchanged"}
    planner = vault.sys.read_acl_policy(f"{stack.prefix}-planner")["data"]["policy"]
    assert planner == render_hcl(function_role("planner"), VaultMounts.from_parameters(stack.parameters))


def test_without_an_aws_auth_method_nothing_is_written_and_the_message_says_what_to_enable(
    stack: Stack, operator: dict[str, str | None], vault: hvac.Client
) -> None:
    result = setup("--stack", stack.name, env=operator)

    assert result.exit_code == 1
    assert "no AWS auth method at auth/aws/" in result.output
    assert "--policies-only" in result.output
    with pytest.raises(hvac.exceptions.InvalidPath):
        vault.sys.read_acl_policy(f"{stack.prefix}-actor")


@pytest.mark.parametrize(
    ("parameter", "value", "named"),
    [
        ("PkiMounts", "pki,*", "PkiMounts"),
        ("KvMounts", 'kv"}', "KvMounts"),
        ("LeaseMounts", "db/../sys", "LeaseMounts"),
        ("VaultAwsAuthRole", "a b", "VaultAwsAuthRole"),
    ],
)
def test_a_mount_or_name_a_policy_cannot_hold_is_refused_before_any_vault_call(
    aws: None, unique: str, operator: dict[str, str | None], vault: hvac.Client, parameter: str, value: str, named: str
) -> None:
    parameters = {"VaultAwsAuthRole": f"rescind-{unique}", "PkiMounts": "pki", "KvMounts": "secret", parameter: value}
    bad = create_stack(f"rescind-{unique}", parameters)

    result = setup("--stack", bad.name, "--policies-only", env=operator)

    assert result.exit_code == 2
    assert named in result.output
    written = [key for key in vault.sys.list_acl_policies()["data"]["keys"] if key.startswith(f"rescind-{unique}")]
    assert written == []


def test_a_stack_that_does_not_exist_is_one_line(aws: None, operator: dict[str, str | None]) -> None:
    result = setup("--stack", "no-such-stack", "--dry-run", env=operator)

    assert result.exit_code == 1
    assert "stack 'no-such-stack' does not exist" in result.output


def test_the_text_output_names_each_role_and_the_login_role_of_each_function(stack: Stack) -> None:
    result = setup("--stack", stack.name, "--dry-run", env={"VAULT_TOKEN": None, "AWS_PROFILE": None})

    assert result.exit_code == 0, result.output
    assert 'path "pki-int/revoke"' in result.output
    assert f"auth/aws/role/{stack.prefix}-sweeper" in result.output
    assert "VAULT_AWS_AUTH_ROLE" in result.output
    assert f"{stack.prefix}-planner: PlanOffboardingFunction, PlanLeakResponseFunction" in result.output


# --- the AWS auth method's client configuration -----------------------------------------------------------------


def test_the_dry_run_sets_the_server_id_header_the_stack_sends_and_nothing_else(aws: None, unique: str) -> None:
    # Given a stack whose functions send X-Vault-AWS-IAM-Server-ID (VaultAwsAuthServerId)
    stack = create_stack(
        f"rescind-{unique}",
        {
            "VaultAwsAuthRole": f"rescind-{unique}",
            "VaultAwsAuthMount": "aws-prod",
            "VaultAwsAuthServerId": "vault.corp",
        },
    )

    # When the operator asks what would be written
    code, document = setup_json("--stack", stack.name, "--dry-run", env={"VAULT_TOKEN": None, "AWS_PROFILE": None})
    text = setup("--stack", stack.name, "--dry-run", env={"VAULT_TOKEN": None, "AWS_PROFILE": None}).output

    # Then the method's client configuration requires that header, on the stack's mount, and nothing else is set
    assert code == 0, document
    assert document["aws_auth_client_config"] == {
        "path": "auth/aws-prod/config/client",
        "settings": {"iam_server_id_header_value": "vault.corp"},
        "status": "to write",
    }
    assert "# auth/aws-prod/config/client" in text
    assert '"iam_server_id_header_value": "vault.corp"' in text


def test_without_a_server_id_or_with_policies_only_the_client_configuration_is_left_alone(stack: Stack) -> None:
    env: dict[str, str | None] = {"VAULT_TOKEN": None, "AWS_PROFILE": None}

    _, without = setup_json("--stack", stack.name, "--dry-run", env=env)
    _, policies_only = setup_json("--stack", stack.name, "--dry-run", "--policies-only", env=env)

    assert without["aws_auth_client_config"]["settings"] == {}
    assert "config/client" not in setup("--stack", stack.name, "--dry-run", env=env).output
    assert policies_only["aws_auth_client_config"] is None


def test_on_a_vault_without_an_aws_auth_method_the_client_configuration_is_not_written_either(
    aws: None, unique: str, operator: dict[str, str | None], vault: hvac.Client
) -> None:
    # OpenBao has no AWS auth method: the command stops before the configuration, a policy or a role is written
    stack = create_stack(
        f"rescind-{unique}", {"VaultAwsAuthRole": f"rescind-{unique}", "VaultAwsAuthServerId": "vault.corp"}
    )

    result = setup("--stack", stack.name, env=operator)

    assert result.exit_code == 1
    assert "no AWS auth method at auth/aws/" in result.output
    assert "aws/" not in vault.sys.list_auth_methods()["data"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        vault.sys.read_acl_policy(f"{stack.prefix}-actor")
