"""Both templates on moto in two accounts: template.yaml in the central account, member-account.yaml's execution
role in a member account, and a revocation that crosses from one to the other through that role.

moto keeps one backend per account and maps assumed-role credentials to the role's account, so the member
account is reached exactly as on AWS: AwsClientFactory assumes arn:aws:iam::<member>:role/<CrossAccountRoleName>.
moto 5.2.5 does not check AssumeRole at all (the role need not exist, its trust is never read), so
`moto_checks_cross_account_trust` adds that check for cross-account AssumeRole, failing closed on any trust
policy element it does not understand; the contract test below shows the gap it fills.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import botocore.client
import pytest
from moto.core.exceptions import AccessDeniedError
from moto.iam.exceptions import NotFoundException
from moto.iam.models import iam_backends
from moto.sts.models import sts_backends
from moto.sts.responses import TokenResponse

from rescind.ledger import DynamoDbLedger
from rescind_local.stack import IntrinsicResolver, LocalResource, LocalStack, deploy_template_to_moto
from rescind_local.template import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
CENTRAL = "123456789012"  # moto's default account: the local stack deploys there
MEMBER = "111111111111"
CENTRAL_STACK = "rescind"
MEMBER_ROLE = "RescindExecutionRole"
EXTERNAL_ID = "rescind-org-7f3a"
# The central stack's CrossAccountFunctionRoleArns, as the member StackSet is given them.
CENTRAL_FUNCTION_ROLE = f"{CENTRAL_STACK}-ExecuteActionFunctionRole-LOCAL1"
CENTRAL_FUNCTION_ROLE_ARNS = [
    f"arn:aws:iam::{CENTRAL}:role/{CENTRAL_FUNCTION_ROLE}",
    f"arn:aws:iam::{CENTRAL}:role/{CENTRAL_STACK}-PlanLeakResponseFunctionRole-LOCAL2",
]
USER = "deploy-bot"
VAULT_UNUSED = {"VAULT_AUTH_METHOD": "token", "VAULT_TOKEN": "unused", "VAULT_ADDR": "http://127.0.0.1:9"}


# --- moto: cross-account AssumeRole checked against the role's trust policy ---------------------------------


def _caller_principal_arn(access_key_id: str, account_id: str) -> str:
    """aws:PrincipalArn of the caller: the role's ARN for a role session, otherwise moto's default user."""
    assumed = sts_backends[account_id]["aws"].get_assumed_role_from_access_key(access_key_id)
    return str(assumed.role_arn) if assumed is not None else f"arn:aws:iam::{account_id}:user/moto"


def _principal_matches(expected: Any, principal_arn: str) -> bool:
    if expected == "*":
        return True
    aws = expected.get("AWS", []) if isinstance(expected, dict) else []
    for value in aws if isinstance(aws, list) else [aws]:
        if value.endswith(":root") and value.split(":")[4] == principal_arn.split(":")[4]:
            return True  # the account: any of its principals, as far as their own policies allow
        if value == principal_arn:
            return True
    return False


_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda actual, expected: actual == expected,
    "ArnEquals": lambda actual, expected: actual == expected,
    "StringLike": fnmatchcase,
    "ArnLike": fnmatchcase,
}


def _conditions_hold(conditions: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, tests in conditions.items():
        if operator not in _OPERATORS:
            raise AssertionError(f"the test's trust check does not know {operator}: extend it")
        for key, expected in tests.items():
            if key not in context:
                raise AssertionError(f"the test's trust check does not know {key}: extend it")
            values = expected if isinstance(expected, list) else [expected]
            if not any(_OPERATORS[operator](context[key], str(value)) for value in values):
                return False
    return True


def trust_refusal(role_arn: str, principal_arn: str, external_id: str | None) -> str | None:
    """Why AWS would refuse this AssumeRole (None: it would allow it, as far as the role's trust goes)."""
    account_id, role_name = role_arn.split(":")[4], role_arn.split("/")[-1]
    try:
        role = iam_backends[account_id]["aws"].get_role(role_name)
    except NotFoundException:
        return "no such role"
    context = {"aws:PrincipalArn": principal_arn, "aws:PrincipalAccount": principal_arn.split(":")[4]}
    if external_id is not None:
        context["sts:ExternalId"] = external_id
    allowed = False
    for statement in json.loads(role.assume_role_policy_document)["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if "sts:AssumeRole" not in actions or not _principal_matches(statement["Principal"], principal_arn):
            continue
        if "sts:ExternalId" not in context and "sts:ExternalId" in json.dumps(statement.get("Condition", {})):
            continue  # a condition on a key the request does not carry does not match
        if _conditions_hold(statement.get("Condition", {}), context):
            if statement["Effect"] == "Deny":
                return "denied by the trust policy"
            allowed = True
    return None if allowed else "the trust policy does not admit this principal"


@dataclass
class TrustChecks:
    refusals: list[tuple[str, str, str]]


@contextmanager
def moto_checks_cross_account_trust() -> Iterator[TrustChecks]:
    checks = TrustChecks(refusals=[])
    real_assume_role = TokenResponse.assume_role

    def assume_role(self: TokenResponse) -> Any:
        role_arn = str(self._get_param("RoleArn"))
        caller_account = self.get_current_account()
        if role_arn.split(":")[4] != caller_account:
            principal = _caller_principal_arn(self.get_access_key(), caller_account)
            refusal = trust_refusal(role_arn, principal, self._get_param("ExternalId"))
            if refusal is not None:
                checks.refusals.append((principal, role_arn, refusal))
                raise AccessDeniedError(user_arn=principal, action=f"sts:AssumeRole on resource: {role_arn}")
        return real_assume_role(self)

    with mock.patch.object(TokenResponse, "assume_role", assume_role):
        yield checks


@pytest.mark.usefixtures("aws")
def test_contract_moto_assumes_a_role_that_does_not_exist_unless_checked() -> None:
    # The gap: moto hands out credentials for any role ARN. If this starts failing, moto checks trust itself.
    sts = boto3.client("sts")
    missing = f"arn:aws:iam::{MEMBER}:role/NobodyCreatedThis"
    assert sts.assume_role(RoleArn=missing, RoleSessionName="probe")["Credentials"]["AccessKeyId"]

    with moto_checks_cross_account_trust() as checks, pytest.raises(sts.exceptions.ClientError) as refused:
        sts.assume_role(RoleArn=missing, RoleSessionName="probe")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert checks.refusals == [(f"arn:aws:iam::{CENTRAL}:user/moto", missing, "no such role")]


# --- the two accounts -----------------------------------------------------------------------------------------


def session_in(account_id: str, role_name: str) -> boto3.Session:
    """Credentials in `account_id`: a session of one of its roles (moto maps them to that account)."""
    credentials = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/{role_name}", RoleSessionName="rescind-test"
    )["Credentials"]
    return boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name="us-east-1",
    )


def deploy_member_execution_role(iam: Any, parameters: dict[str, Any], stack_name: str) -> str:
    """Create ExecutionRole and its permissions boundary exactly as member-account.yaml declares them,
    intrinsics resolved, in iam's account."""
    template = load_template(REPO_ROOT / "member-account.yaml")
    resolver = IntrinsicResolver(template, {}, stack_name, account_id=MEMBER, parameters=parameters)
    boundary = template["Resources"]["ExecutionRoleBoundary"]
    assert resolver.condition(boundary["Condition"]), "the member stack would not create the boundary"
    boundary_properties = resolver.resolve(boundary["Properties"])
    boundary_arn = iam.create_policy(
        PolicyName=f"{stack_name}-ExecutionRoleBoundary",
        PolicyDocument=json.dumps(boundary_properties["PolicyDocument"]),
        Description=boundary_properties["Description"],
    )["Policy"]["Arn"]
    resolver = IntrinsicResolver(
        template,
        {"ExecutionRoleBoundary": LocalResource("ExecutionRoleBoundary", boundary["Type"], boundary_arn)},
        stack_name,
        account_id=MEMBER,
        parameters=parameters,
    )
    resource = template["Resources"]["ExecutionRole"]
    assert resolver.condition(resource["Condition"]), "the member stack would not create the role"
    properties = resolver.resolve(resource["Properties"])
    iam.create_role(
        RoleName=properties["RoleName"],
        AssumeRolePolicyDocument=json.dumps(properties["AssumeRolePolicyDocument"]),
        Description=properties["Description"],
        MaxSessionDuration=properties["MaxSessionDuration"],
        PermissionsBoundary=properties["PermissionsBoundary"],
    )
    for policy in properties["Policies"]:
        iam.put_role_policy(
            RoleName=properties["RoleName"],
            PolicyName=policy["PolicyName"],
            PolicyDocument=json.dumps(policy["PolicyDocument"]),
        )
    return str(properties["RoleName"])


def user_with_keys(iam: Any, count: int) -> list[str]:
    iam.create_user(UserName=USER)
    return [iam.create_access_key(UserName=USER)["AccessKey"]["AccessKeyId"] for _ in range(count)]


def key_statuses(iam: Any) -> dict[str, str]:
    return {key["AccessKeyId"]: key["Status"] for key in iam.list_access_keys(UserName=USER)["AccessKeyMetadata"]}


@dataclass
class Estate:
    member_iam: Any
    central_iam: Any
    member_keys: list[str]
    central_keys: list[str]
    member_calls: list[str]


@pytest.fixture
def estate(aws: None, monkeypatch: pytest.MonkeyPatch) -> Estate:
    # Given the member stack's execution role in the member account, created with that account's credentials
    # (the StackSet's part), and a user there with two keys; and a user of the same name in the central account
    member_iam = session_in(MEMBER, "OrganizationAccountAccessRole").client("iam")
    deploy_member_execution_role(
        member_iam,
        {
            "CentralAccountId": CENTRAL,
            "CentralEventBusArn": f"arn:aws:events:us-east-1:{CENTRAL}:event-bus/default",
            "CentralFunctionRoleArns": CENTRAL_FUNCTION_ROLE_ARNS,
            "RoleName": MEMBER_ROLE,
            "ExternalId": EXTERNAL_ID,
        },
        stack_name="StackSet-rescind-member-0001",
    )
    central_iam = boto3.client("iam")
    estate = Estate(member_iam, central_iam, user_with_keys(member_iam, 2), user_with_keys(central_iam, 1), [])

    # Record every call made with the member role's credentials, to hold them against its policy.
    real_api_call = botocore.client.BaseClient._make_api_call

    def recording_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        credentials = self._request_signer._credentials
        key = credentials.get_frozen_credentials().access_key if credentials is not None else ""
        assumed = sts_backends[MEMBER]["aws"].get_assumed_role_from_access_key(key)
        if assumed is not None and assumed.role_arn.endswith(f":role/{MEMBER_ROLE}"):
            estate.member_calls.append(f"{self.meta.service_model.signing_name}:{operation_name}")
        return real_api_call(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording_api_call)
    return estate


@contextmanager
def central_stack(*, role_name: str, external_id: str, function_role: str) -> Iterator[LocalStack]:
    """template.yaml on moto in the central account; its functions run as `function_role` of that account,
    as a deployed function runs as its execution role (`<stack>-ExecuteActionFunctionRole-<suffix>`)."""
    boto3.client("iam").create_role(
        RoleName=function_role,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )
    found = session_in(CENTRAL, function_role).get_credentials()
    assert found is not None
    credentials = found.get_frozen_credentials()
    environment = {
        **VAULT_UNUSED,
        "CROSS_ACCOUNT_EXTERNAL_ID": external_id,
        "AWS_ACCESS_KEY_ID": credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
        "AWS_SESSION_TOKEN": credentials.token or "",
    }
    with deploy_template_to_moto(
        stack_name=CENTRAL_STACK,
        parameters={
            "VaultAddr": "http://127.0.0.1:9",
            "VaultAwsAuthRole": "rescind",
            "CrossAccountRoleName": role_name,
        },
        function_environment=environment,
    ) as stack:
        yield stack


def disable_request(key_id: str, attempt: str) -> dict[str, Any]:
    return {
        "incident_id": "inc-member-0001",
        "attempt_id": attempt,
        "action": {
            "kind": "disable",
            "target": {"kind": "iam_access_key", "account_id": MEMBER, "user_name": USER, "access_key_id": key_id},
            "reason": "leaked: AWS Health AWS_RISK_CREDENTIALS_EXPOSED in the member account",
        },
        "dry_run": False,
    }


def _policy_allows(document: dict[str, Any], action: str, resource: str) -> bool:
    """Whether an Allow statement names `action` on `resource` (the member calls here carry no conditions)."""
    for statement in document["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if (
            statement["Effect"] == "Allow"
            and any(fnmatchcase(action.lower(), pattern.lower()) for pattern in actions)
            and any(fnmatchcase(resource, pattern) for pattern in resources)
        ):
            return True
    return False


# --- the revocation -----------------------------------------------------------------------------------------


def test_the_central_stack_disables_a_key_in_the_member_account(estate: Estate) -> None:
    target, sibling = estate.member_keys

    # When the central ExecuteActionFunction is asked to disable one key in the member account, then again
    with (
        central_stack(
            role_name=MEMBER_ROLE,
            external_id=EXTERNAL_ID,
            function_role=CENTRAL_FUNCTION_ROLE,
        ) as stack,
        moto_checks_cross_account_trust() as checks,
    ):
        first, first_error = stack.invoke("ExecuteActionFunction", disable_request(target, "member.0.0"))
        second, second_error = stack.invoke("ExecuteActionFunction", disable_request(target, "member.0.1"))
        ledger_table = stack.physical_id("LedgerTable")

    # Then the key is Inactive in the member account, verified by reading it back, and a re-run is a no-op
    assert (first_error, second_error) == (None, None)
    assert checks.refusals == []
    assert first["outcome"] == "succeeded", first
    assert first["evidence"][0]["confirmed"] is True
    assert second["outcome"] == "already_applied", second
    assert key_statuses(estate.member_iam) == {target: "Inactive", sibling: "Active"}
    # the same-named user in the central account is untouched
    assert key_statuses(estate.central_iam) == {estate.central_keys[0]: "Active"}
    # the central ledger recorded both attempts, the first verified
    attempts = DynamoDbLedger(ledger_table, boto3.client("dynamodb")).read_incident("inc-member-0001").attempts
    assert [attempt.attempt_id for attempt in attempts] == ["member.0.0", "member.0.1"]
    assert attempts[0].result.evidence[0].confirmed is True
    assert ledger_table in boto3.client("dynamodb").list_tables()["TableNames"]
    assert session_in(MEMBER, "OrganizationAccountAccessRole").client("dynamodb").list_tables()["TableNames"] == []
    # and every call made in the member account is one the member role's deployed policy grants
    assert "iam:UpdateAccessKey" in estate.member_calls
    deployed = estate.member_iam.get_role_policy(RoleName=MEMBER_ROLE, PolicyName="rescind-act")["PolicyDocument"]
    user_arn = f"arn:aws:iam::{MEMBER}:user/{USER}"
    for call in set(estate.member_calls):
        assert _policy_allows(deployed, call, "*" if call == "iam:ListUsers" else user_arn), call


@pytest.mark.parametrize(
    ("role_name", "external_id", "function_role", "why"),
    [
        ("RescindReadOnlyRole", EXTERNAL_ID, CENTRAL_FUNCTION_ROLE, "no such role"),
        (MEMBER_ROLE, "rescind-org-guessed-0000", CENTRAL_FUNCTION_ROLE, "does not admit"),
        (MEMBER_ROLE, EXTERNAL_ID, "other-stack-ExecuteActionFunctionRole-LOCAL1", "does not admit"),
        # The central stack's own name prefix is no longer enough: only the roles the StackSet was given.
        (MEMBER_ROLE, EXTERNAL_ID, f"{CENTRAL_STACK}-GitHubWebhookFunctionRole-LOCAL3", "does not admit"),
    ],
    ids=[
        "role-the-member-template-did-not-create",
        "wrong-external-id",
        "a-role-outside-the-central-stack",
        "a-central-stack-role-not-named-in-the-trust",
    ],
)
def test_a_role_the_member_stack_does_not_trust_fails_and_changes_nothing(
    estate: Estate, role_name: str, external_id: str, function_role: str, why: str
) -> None:
    target, sibling = estate.member_keys

    with (
        central_stack(role_name=role_name, external_id=external_id, function_role=function_role) as stack,
        moto_checks_cross_account_trust() as checks,
    ):
        result, function_error = stack.invoke("ExecuteActionFunction", disable_request(target, "member.1.0"))
        ledger_table = stack.physical_id("LedgerTable")

    # Then the action failed with a clear AwsAccessDenied (an ActionFailed) naming the role it could not assume
    assert function_error is None
    assert result["outcome"] == "failed"
    assert result["error_type"] == "AwsAccessDenied"
    assert f"sts assume-role arn:aws:iam::{MEMBER}:role/{role_name}" in result["detail"]
    assert "AccessDenied" in result["detail"] or "not authorized" in result["detail"]
    refusals = [refusal for _, _, refusal in checks.refusals]
    assert refusals
    assert all(why in refusal for refusal in refusals), refusals
    # and nothing changed in either account; nothing was even called in the member account
    assert key_statuses(estate.member_iam) == {target: "Active", sibling: "Active"}
    assert key_statuses(estate.central_iam) == {estate.central_keys[0]: "Active"}
    assert estate.member_calls == []
    attempts = DynamoDbLedger(ledger_table, boto3.client("dynamodb")).read_incident("inc-member-0001").attempts
    assert [(attempt.attempt_id, attempt.result.outcome) for attempt in attempts] == [("member.1.0", "failed")]
