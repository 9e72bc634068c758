"""Issue 15.10: settings that grow with the organisation live in SSM Parameter Store, never in the functions'
environment, which Lambda caps at 4 KB for all variables together.

- Each stored setting (rescind.parameter_store.STORED_SETTINGS) is an AWS::SSM::Parameter of the template, built
  from its CloudFormation parameter, in the standard tier; the functions get only its name (`<VARIABLE>_PARAMETER`).
- Each function may read exactly the parameters its environment names, and no other.
- Every function's environment stays under 4 KB with every parameter at its worst case, a few hundred accounts
  included, and such an organisation's parameters pass CloudFormation's checks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from rescind.config import RuntimeSettings
from rescind.parameter_store import PARAMETER_SUFFIX, STORED_SETTINGS
from rescind_local.stack import IntrinsicResolver, plan_local_resources
from rescind_local.template import load_template
from tests.infra.cfn_rules import PARAMETER_VALUE_LIMIT_BYTES, refusals
from tests.infra.test_iam_scope import ACCOUNT, decide, function_statements

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
FUNCTIONS = sorted(name for name, body in RESOURCES.items() if body["Type"] == "AWS::Serverless::Function")
GLOBAL_VARIABLES: dict[str, Any] = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
LAMBDA_ENVIRONMENT_LIMIT_BYTES = 4096
# Parameter Store's standard tier holds 4 KB, as much as one CloudFormation parameter: the advanced tier is not needed.
STANDARD_TIER_LIMIT_BYTES = 4096
# Each stored setting's CloudFormation parameter.
SOURCES = {
    "AWS_ACCOUNT_IDS": "DiscoveryAccountIds",
    "PROTECTED_WORKLOADS": "ProtectedWorkloads",
    "SCHEDULE_POLICY": "SchedulePolicy",
    "TRUST_DOMAIN_ACCOUNTS": "TrustDomainAccounts",
}
REAL = {"VaultAddr": "https://vault.internal.example:8200", "VaultAwsAuthRole": "rescind"}
EXTERNAL_ID = "o-a1b2c3d4e5-rescind-external"
# As many accounts as one CloudFormation parameter holds (315 x 13 bytes - 1 = 4,094).
ORGANISATION = ",".join(f"{100000000000 + n:012d}" for n in range(315))


def environment(function: str) -> dict[str, Any]:
    own = ((RESOURCES[function]["Properties"].get("Environment")) or {}).get("Variables") or {}
    return {**GLOBAL_VARIABLES, **own}


def stored_parameters(function: str) -> dict[str, str]:
    """The stored settings' variables the function is given -> the AWS::SSM::Parameter each names."""
    return {
        variable: value["Ref"]
        for variable, value in environment(function).items()
        if variable.endswith(PARAMETER_SUFFIX) and isinstance(value, dict) and "Ref" in value
    }


# --- what is stored, and where ---------------------------------------------------------------------------------


def test_every_stored_setting_is_in_parameter_store_and_no_function_is_given_its_value() -> None:
    assert {setting.upper() for setting in STORED_SETTINGS} == set(SOURCES)
    for function in FUNCTIONS:
        assert set(environment(function)) & set(SOURCES) == set(), function
        assert set(stored_parameters(function)) <= {f"{variable}{PARAMETER_SUFFIX}" for variable in SOURCES}
        settings = {*RuntimeSettings.variables(), *RuntimeSettings.parameter_variables()}
        assert set(environment(function)) <= {*settings, *_powertools(function)}
    given = {variable for function in FUNCTIONS for variable in stored_parameters(function)}
    assert given == {f"{variable}{PARAMETER_SUFFIX}" for variable in SOURCES}


def _powertools(function: str) -> set[str]:
    return {variable for variable in environment(function) if variable.startswith("POWERTOOLS_")}


@pytest.mark.parametrize("variable", sorted(SOURCES))
def test_each_parameter_holds_its_cloudformation_parameter_in_the_standard_tier(variable: str) -> None:
    (logical_id,) = {
        stored_parameters(f)[f"{variable}{PARAMETER_SUFFIX}"]
        for f in FUNCTIONS
        if stored_parameters(f).get(f"{variable}{PARAMETER_SUFFIX}")
    }
    parameter = RESOURCES[logical_id]

    assert parameter["Type"] == "AWS::SSM::Parameter"
    properties = parameter["Properties"]
    assert properties["Tier"] == "Standard"
    assert properties["Type"] in ("String", "StringList")
    # The CloudFormation parameter's value when it is given, something that means the same when it is empty
    condition, given, empty = properties["Value"]["Fn::If"]
    assert given == {"Ref": SOURCES[variable]}
    assert TEMPLATE["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": SOURCES[variable]}, ""]}]}
    assert empty != ""
    # A String parameter the functions read: never a CommaDelimitedList, whose value CloudFormation would reshape
    assert TEMPLATE["Parameters"][SOURCES[variable]]["Type"] == "String"
    assert PARAMETER_VALUE_LIMIT_BYTES <= STANDARD_TIER_LIMIT_BYTES


# --- who may read them -------------------------------------------------------------------------------------------


def _resolver(**parameters: str) -> IntrinsicResolver:
    given = {**REAL, **parameters}
    resources = plan_local_resources(TEMPLATE, "rescind", account_id=ACCOUNT, parameters=given)
    return IntrinsicResolver(TEMPLATE, resources, "rescind", account_id=ACCOUNT, parameters=given)


def _parameter_arn(resolver: IntrinsicResolver, logical_id: str) -> str:
    return f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter{resolver.resolve({'Ref': logical_id})}"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_may_read_exactly_the_parameters_its_environment_names(function: str) -> None:
    resolver = _resolver()
    identity = function_statements(TEMPLATE, resolver, function)
    boundary = resolver.resolve(RESOURCES["RescindFunctionsBoundary"]["Properties"])["PolicyDocument"]["Statement"]
    named = {stored_parameters(function)[variable] for variable in stored_parameters(function)}
    every = sorted(name for name, body in RESOURCES.items() if body["Type"] == "AWS::SSM::Parameter")

    readable = {
        logical_id
        for logical_id in every
        if decide(identity, boundary, "ssm:GetParameters", _parameter_arn(resolver, logical_id), {})
    }

    assert named, f"{function} reads no stored setting: every function is given the protected workloads"
    assert readable == named
    # Nothing else in Parameter Store, and nothing but reads
    assert not decide(identity, boundary, "ssm:GetParameters", f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/other", {})
    granted = {
        action
        for statement in identity
        for action in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
        if action.startswith("ssm:")
    }
    assert granted == {"ssm:GetParameters"}


# --- the environment's size, and an organisation of a few hundred accounts --------------------------------------

# The stored settings at the most one CloudFormation parameter holds; the small settings at generous real-world
# lengths (their constraints would admit more: CrossAccountExternalId, 1,224 characters as STS allows, alone would
# take a third of the environment), every name built from the longest stack name the function names leave room for.
FUNCTION_NAME_LIMIT = 64
LONGEST_STACK_NAME = "s" * (
    FUNCTION_NAME_LIMIT
    - max(
        len(body["Properties"]["FunctionName"]["Fn::Sub"].removeprefix("${AWS::StackName}"))
        for body in RESOURCES.values()
        if "Fn::Sub" in str(body.get("Properties", {}).get("FunctionName", ""))
    )
)
WORST_CASE = {
    "VaultAddr": f"https://{'v' * 128}:65535",
    "VaultAwsAuthRole": "r" * 64,
    "VaultAwsAuthMount": "m" * 64,
    "VaultAwsAuthServerId": "h" * 128,
    "VaultNamespace": "n" * 128,
    "CrossAccountRoleName": "x" * 64,
    "CrossAccountExternalId": "e" * 128,
    "PkiMounts": ",".join(f"pki-{n}" for n in range(10)),
    "AppRoleMounts": ",".join(f"approle-{n}" for n in range(10)),
    "KvMounts": ",".join(f"kv-{n}" for n in range(10)),
    "LeaseMounts": ",".join(f"database-{n}" for n in range(10)),
    "GitHubApiUrl": f"https://{'g' * 100}/api/v3",
    "GitHubTokenSecretArn": f"arn:aws:secretsmanager:ap-southeast-4:{ACCOUNT}:secret:{'t' * 128}",
    "DiscoveryAccountIds": ORGANISATION,
    "ProtectedWorkloads": ",".join(f"spiffe://prod.example/ns/team-{n:04d}/sa/api" for n in range(97)),
    "SchedulePolicy": json.dumps({"protected_paths": [f"secret/team-{n:04d}/" for n in range(190)]}),
    "TrustDomainAccounts": "prod.example=" + " ".join(ORGANISATION.split(",")[:314]),
}


def environment_size(function: str, parameters: dict[str, str]) -> int:
    """The function's variables as deployed, in bytes as JSON: more than Lambda counts (names and values)."""
    resources = plan_local_resources(
        TEMPLATE, LONGEST_STACK_NAME, account_id=ACCOUNT, region="ap-southeast-4", parameters=parameters
    )
    resolver = IntrinsicResolver(
        TEMPLATE, resources, LONGEST_STACK_NAME, account_id=ACCOUNT, region="ap-southeast-4", parameters=parameters
    )
    variables = {name: str(value) for name, value in resolver.resolve(environment(function)).items()}
    return len(json.dumps(variables, separators=(",", ":")).encode())


def test_the_worst_case_values_are_what_cloudformation_accepts_at_most() -> None:
    assert len(LONGEST_STACK_NAME) >= 32
    for name in ("DiscoveryAccountIds", "ProtectedWorkloads", "SchedulePolicy", "TrustDomainAccounts"):
        assert PARAMETER_VALUE_LIMIT_BYTES - 200 < len(WORST_CASE[name].encode()) <= PARAMETER_VALUE_LIMIT_BYTES


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_functions_environment_stays_under_4_kb_with_the_worst_case_values(function: str) -> None:
    worst = environment_size(function, {**REAL, **WORST_CASE})
    # The stored settings take no room: a few hundred accounts cost what none do
    without_them = environment_size(
        function, {**REAL, **{k: v for k, v in WORST_CASE.items() if k not in SOURCES.values()}}
    )

    assert worst < LAMBDA_ENVIRONMENT_LIMIT_BYTES, f"{function}: {worst} bytes"
    assert worst == without_them


def test_an_organisation_of_a_few_hundred_accounts_deploys() -> None:
    given = {**REAL, "DiscoveryAccountIds": ORGANISATION, "CrossAccountExternalId": EXTERNAL_ID}

    assert len(ORGANISATION.split(",")) == 315
    assert refusals(TEMPLATE, given) == []
    # One account more would be over CloudFormation's limit on a parameter's value
    assert refusals(TEMPLATE, {**given, "DiscoveryAccountIds": f"{ORGANISATION},999999999999"}) != []
