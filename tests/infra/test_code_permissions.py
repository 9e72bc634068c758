"""Issue 15.8: every AWS call a deployed function's code can make is allowed to its role, on the resource it names.

For each function of template.yaml, tests/infra/code_paths.py follows `functions/<name>/app.py` through the
`rescind` modules it can run to the boto3 calls there, and each call's resource argument to where it comes from:
an environment variable (which the template sets to one of the stack's resources, or a parameter), or data (a
reference from the event). The role's identity policy (inline and attached) and RescindFunctionsBoundary are then
evaluated together (`decide`, test_iam_scope.py) for the action on that resource:

- a resource of the stack: its ARN, as the template resolves it (an index, an execution or an object below it:
  some ARN of that kind under it);
- data: some ARN of the action's resource type, in this account (the service authorization reference that
  cfn-lint ships gives the ARN formats);
- an action without a resource type: `*`.

tests/infra/test_template_policies.py is the other half: every call in the adapters' source is granted somewhere,
and nothing is granted that no code calls.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import cfnlint.data.AdditionalSpecs
import pytest
from cfnlint.helpers import load_resource

from rescind_cli.targets import INCIDENT_MACHINES
from rescind_local.stack import IntrinsicResolver
from rescind_local.template import load_template
from tests.infra.code_paths import Data, EnvVar, Literal, Source, Tracer, aws_calls, reachable
from tests.infra.policy_scan import as_list, role_statements
from tests.infra.test_iam_scope import ACCOUNT, boundary_statements, central_resolver, decide, function_statements
from tests.infra.test_template_policies import NOT_GRANTED

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(REPO_ROOT / "template.yaml")
FUNCTIONS = sorted(name for name, body in TEMPLATE["Resources"].items() if body["Type"] == "AWS::Serverless::Function")
REGION = "us-east-1"
# Optional parameters that switch a code path on, given a value so that path is checked too.
SAMPLE_PARAMETERS = {
    "GitHubTokenSecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rescind/github-token-AbCdEf",
}
# The arguments that name the resource a call acts on, and the request condition keys some of them set.
RESOURCE_ARGUMENTS = (
    "TableName",
    "RequestItems",
    "SecretId",
    "TopicArn",
    "Bucket",
    "stateMachineArn",
    "executionArn",
    "Entries",
    "RoleArn",
    "FunctionName",
)
CONDITION_KEYS_OF_ARGUMENTS = {"IfNoneMatch": "s3:if-none-match"}
# What the code can reach, by its structure, but never runs in that function; each is also not granted to it.
NEVER_RUN: dict[str, dict[str, str]] = {
    "TtlCeilingsFunction": {
        # get_engine() builds every handler with the fingerprint hook and the cross-account factory; the sweep
        # plans only Vault TTL changes (tokens, leases, roles, mounts), so neither is used.
        "secretsmanager:GetSecretValue": "the fingerprint key: read on a KV rotation only",
        "dynamodb:BatchWriteItem": "the fingerprint index: written on a KV rotation only",
        "sts:AssumeRole": "other accounts: only AWS credential kinds are acted on there",
        "iam:ListUserTags": "find_holds reads IAM tags of IAM access key references only",
    },
    "RotationByAgeFunction": {
        "iam:ListUserTags": "find_holds reads IAM tags of IAM access key references only; it rotates secrets",
    },
    "VerifyResponseFunction": {
        # It reads back (engine.verify) and never rotates, so the engine's KV rotation hook never runs.
        "secretsmanager:GetSecretValue": "the fingerprint key on a KV rotation, a value on a Secrets Manager one",
        "dynamodb:BatchWriteItem": "the fingerprint index: written on a KV rotation only",
        # A KindHandler's constructor lists each step's act and verify together (Step(self._rotate, ...)).
        "secretsmanager:RotateSecret": "rotate_secret_now is the act step; it only runs the verify step",
        "lambda:InvokeFunction": "a secret's rotation hook runs in the KV rotation's act step, never in verify",
        "secretsmanager:PutSecretValue": "the rotation contract's AWSPENDING version: an act step",
        "secretsmanager:UpdateSecretVersionStage": "the rotation contract's finish: an act step",
    },
    "StartLeakResponseFunction": {
        # The kill first builds the handlers of KILL_FIRST's kinds only (tokens, secret-ids, entities, IAM keys)
        # through kind_spec(kind).build_handler, which the tracer follows to every kind's handler.
        "dynamodb:BatchWriteItem": "the fingerprint index: written on a KV rotation only, never killed first",
        "s3:GetObject": "the CRL of an ACM PCA certificate: no handler of it is built here",
        "secretsmanager:DescribeSecret": "a Secrets Manager rotation: no handler of it is built here",
        "secretsmanager:ListSecretVersionIds": "a Secrets Manager rotation: no handler of it is built here",
        "secretsmanager:RotateSecret": "a Secrets Manager rotation: no handler of it is built here",
        "secretsmanager:PutSecretValue": "the rotation contract's AWSPENDING version: no rotation is killed first",
        "secretsmanager:UpdateSecretVersionStage": "the rotation contract's finish: no rotation is killed first",
        "lambda:InvokeFunction": "a secret's rotation hook: no rotation is killed first",
    },
    "PlanOffboardingFunction": {
        # It plans: the handlers are built (their constructors name every act and verify step) for look_up only.
        "secretsmanager:RotateSecret": "rotate_secret_now is the act step; planning never acts",
        "secretsmanager:ListSecretVersionIds": "read when verifying a rotation; planning never verifies",
        "s3:GetObject": "the CRL, read when revoking or verifying an ACM PCA certificate; planning does neither",
        "lambda:InvokeFunction": "a secret's rotation hook runs when a KV rotation acts; planning never acts",
        "secretsmanager:GetSecretValue": "the current value, read by a Secrets Manager rotation's act step",
        "secretsmanager:PutSecretValue": "the rotation contract's AWSPENDING version: an act step",
        "secretsmanager:UpdateSecretVersionStage": "the rotation contract's finish: an act step",
    },
}


@cache
def resolver() -> IntrinsicResolver:
    return central_resolver(TEMPLATE, **SAMPLE_PARAMETERS)


@cache
def service_reference() -> dict[str, Any]:
    loaded: dict[str, Any] = load_resource(cfnlint.data.AdditionalSpecs, "Policies.json")
    return loaded


def environment(function: str) -> dict[str, Any]:
    """The function's variables as written (Globals, then its own): a Ref names a resource or a parameter."""
    own = ((TEMPLATE["Resources"][function]["Properties"].get("Environment")) or {}).get("Variables") or {}
    return {**TEMPLATE["Globals"]["Function"]["Environment"]["Variables"], **own}


def resource_type(action: str, keywords: set[str]) -> str | None:
    service, name = action.split(":", 1)
    types = service_reference()[service]["Actions"][name.lower()].get("Resources", [])
    if "IndexName" in keywords and "index" in types:
        return "index"
    plain = [t for t in types if t not in ("index", "express", "accesspointobject") and not t.endswith("v2")]
    return plain[0] if plain else None


def _resource_types(service: str) -> dict[str, Any]:
    return {name.lower(): spec for name, spec in service_reference()[service]["Resources"].items()}


def arn_pattern(action: str, kind: str) -> re.Pattern[str]:
    """What an ARN of the action's resource type looks like in this stack's account (any region)."""
    service = action.split(":", 1)[0]
    formats = _resource_types(service)[kind.lower()]["ARNFormats"]
    texts = [
        re.escape(f).replace(r"\.\*", ".+").replace(r"\$\{Partition\}", "aws").replace(r"\$\{Region\}", "[^:]*")
        for f in formats
    ]
    return re.compile("|".join(t.replace(r"\$\{Account\}", ACCOUNT) for t in texts))


def stack_resource_arn(action: str, kind: str, value: str, index: bool) -> tuple[str, bool]:
    """(ARN, exact?) of a stack resource named by a variable's value: its ARN, or the prefix of what lies below."""
    service = action.split(":", 1)[0]
    if value.startswith("arn:"):
        if kind == "execution" and ":stateMachine:" in value:
            return value.replace(":stateMachine:", ":execution:", 1) + ":", False
        return value, True
    if service == "dynamodb":
        table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{value}"
        return (f"{table}/index/", False) if index else (table, True)
    if service == "s3":
        return f"arn:aws:s3:::{value}/", False
    format_ = _resource_types(service)[kind.lower()]["ARNFormats"][0]
    arn = format_.replace("${Partition}", "aws").replace("${Region}", REGION).replace("${Account}", ACCOUNT)
    return arn.replace(".*", value, 1), True


def allowed_somewhere(
    identity: list[dict[str, Any]],
    boundary: list[dict[str, Any]],
    action: str,
    prefix: str,
    pattern: re.Pattern[str],
    context: dict[str, str],
) -> bool:
    """Whether some ARN that starts with `prefix` and has the action's resource type is allowed: tried on the
    resources the identity grants the action on, made concrete."""
    candidates = {prefix + "x"}
    for statement in identity:
        if statement["Effect"] == "Allow":
            for resource in (
                statement.get("Resource", [])
                if isinstance(statement.get("Resource"), list)
                else [statement.get("Resource", "")]
            ):
                candidates.add(str(resource).replace("*", "x").replace("?", "x"))
    return any(
        candidate.startswith(prefix)
        and pattern.fullmatch(candidate)
        and decide(identity, boundary, action, candidate, context)
        for candidate in candidates
    )


def needed_resources(function: str, call: Any, tracer: Tracer) -> list[tuple[str, bool]]:
    """(resource, exact?) the call needs: the stack resources its arguments come from, else data."""
    variables = environment(function)
    values: set[str] = set()
    data = False
    for argument in RESOURCE_ARGUMENTS:
        for module, expression in call.keywords.get(argument, []):
            for origin in tracer.origins(module, expression):
                if isinstance(origin, EnvVar) and origin.name in variables:
                    value = str(resolver().resolve(variables[origin.name]))
                    if value and _names_a_resource_of(variables[origin.name], call.action):
                        values.add(value)
                elif isinstance(origin, Data):
                    data = True
            origins = tracer.origins(module, expression)
            if origins and all(isinstance(o, Literal) for o in origins) and argument != "Entries":
                values |= {o.value for o in origins if isinstance(o, Literal)}  # a constant resource name
    kind = resource_type(call.action, set(call.keywords))
    if kind is None:
        return [("*", True)]
    if values:
        return [stack_resource_arn(call.action, kind, value, "IndexName" in call.keywords) for value in sorted(values)]
    return [("", False)] if data else []


# The resource types of the template that each service acts on.
SERVICE_OF_RESOURCE_TYPE = {
    "AWS::DynamoDB::Table": "dynamodb",
    "AWS::SecretsManager::Secret": "secretsmanager",
    "AWS::SNS::Topic": "sns",
    "AWS::S3::Bucket": "s3",
    "AWS::Serverless::StateMachine": "states",
    "AWS::Events::EventBus": "events",
}


def _names_a_resource_of(value: Any, action: str) -> bool:
    """A variable set to one of the stack's resources counts for that resource's service only; one set to a
    parameter counts for a service whose ARNs it looks like, or as a name (a role's, a bus's)."""
    service = action.split(":", 1)[0]
    name = value.get("Ref") if isinstance(value, dict) else None
    if name in TEMPLATE["Resources"]:
        return SERVICE_OF_RESOURCE_TYPE.get(TEMPLATE["Resources"][name]["Type"]) == service
    resolved = str(resolver().resolve(value))
    if resolved.startswith("arn:"):
        return resolved.split(":")[2] == service
    return service in ("sts", "iam", "events")


@cache
def derived_calls(function: str) -> tuple[list[Any], Tracer]:
    code_uri = TEMPLATE["Resources"][function]["Properties"]["CodeUri"]
    source = Source(REPO_ROOT / code_uri / "app.py")
    reach = reachable(source)
    tracer = Tracer(reach)
    return aws_calls(reach, tracer), tracer


# IAM has no action for a transaction: each put in TransactWriteItems is authorized as a PutItem on its table (the
# ledger's, which the same class's own PutItem names and is checked for).
AUTHORIZED_AS = {"dynamodb:TransactWriteItems": "dynamodb:PutItem"}


def missing_permissions(function: str) -> list[str]:
    calls, tracer = derived_calls(function)
    calls = [replace(call, action=AUTHORIZED_AS.get(call.action, call.action)) for call in calls]
    identity = function_statements(TEMPLATE, resolver(), function)
    boundary = boundary_statements(TEMPLATE, resolver(), "RescindFunctionsBoundary")
    never_run = NEVER_RUN.get(function, {})
    missing: set[str] = set()
    for call in calls:
        if call.action in NOT_GRANTED or call.action in never_run:
            continue
        kind = resource_type(call.action, set(call.keywords))
        # The resource opted in: a role tagged rescind:managed, a secret that declares its rotation hook.
        context = {
            "aws:ResourceTag/rescind:managed": "true",
            "aws:ResourceTag/rescind:rotation-hook": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:hook",
            "aws:ResourceTag/rescind:rotate": "password",
            "aws:ResourceAccount": ACCOUNT,
        }
        context |= {key: "*" for argument, key in CONDITION_KEYS_OF_ARGUMENTS.items() if argument in call.keywords}
        where = f"{call.module}.{getattr(call.function, 'name', '?')}"
        for resource, exact in needed_resources(function, call, tracer):
            if exact:
                allowed = decide(identity, boundary, call.action, resource, context)
            else:
                assert kind is not None
                allowed = allowed_somewhere(
                    identity, boundary, call.action, resource, arn_pattern(call.action, kind), context
                )
            if not allowed:
                missing.add(f"{call.action} on {resource or 'any ' + str(kind)}{'' if exact else '*'} ({where})")
    return sorted(missing)


def test_the_derivation_finds_the_calls_and_resources_it_should() -> None:
    # Guards the derivation itself: were it to find nothing, the test below would pass on any template.
    calls, tracer = derived_calls("ExecuteActionFunction")
    actions = {call.action for call in calls}
    assert {"dynamodb:PutItem", "iam:UpdateAccessKey", "sts:AssumeRole", "dynamodb:BatchWriteItem"} <= actions
    fingerprints = [c for c in calls if c.action == "dynamodb:BatchWriteItem"]
    origins = {o for c in fingerprints for m, e in c.keywords["RequestItems"] for o in tracer.origins(m, e)}
    assert EnvVar("FINGERPRINT_TABLE_NAME") in origins
    # A function reaches only what its handler runs: the close task never touches IAM or the fingerprint index
    # (it reads the Verify Map's results from S3).
    closing = {call.action for call in derived_calls("CloseIncidentFunction")[0]}
    assert closing == {"dynamodb:PutItem", "dynamodb:Query", "s3:GetObject"}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_call_the_functions_code_can_make_is_allowed_on_its_resource(function: str) -> None:
    assert missing_permissions(function) == []


@pytest.mark.parametrize(
    ("function", "action"), [(f, a) for f, actions in NEVER_RUN.items() for a in actions], ids=lambda v: str(v)
)
def test_what_a_function_never_runs_is_still_reached_and_not_granted(function: str, action: str) -> None:
    # An entry here that the derivation no longer finds, or that the role now holds, is stale: remove it.
    assert action in {call.action for call in derived_calls(function)[0]}
    identity = function_statements(TEMPLATE, resolver(), function)
    assert not any(statement["Effect"] == "Allow" and action in as_list(statement["Action"]) for statement in identity)


@pytest.mark.parametrize("machine", INCIDENT_MACHINES)
def test_responders_can_follow_and_list_the_runs_of_every_machine_the_cli_follows(machine: str) -> None:
    # `rescind status NAME` looks the run up in each of these machines, `rescind replay` lists their executions.
    role = TEMPLATE["Resources"]["ResponderRole"]["Properties"]
    assert "PermissionsBoundary" not in role  # else the boundary would take part below
    identity: list[dict[str, Any]] = resolver().resolve(role_statements(TEMPLATE, "ResponderRole"))
    no_boundary = [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
    machine_arn = str(resolver().resolve({"Ref": machine}))
    execution_arn = machine_arn.replace(":stateMachine:", ":execution:", 1) + ":leak-0123456789abcdef01234567-1"

    for action in ("states:DescribeExecution", "states:GetExecutionHistory"):
        assert decide(identity, no_boundary, action, execution_arn, {}), (action, machine)
    assert decide(identity, no_boundary, "states:ListExecutions", machine_arn, {}), machine
