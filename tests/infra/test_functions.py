"""Every function in template.yaml has its code, its handler, and the configuration it reads at cold start."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, get_args

import boto3
import pytest

from rescind import runtime
from rescind.config import FunctionSetting, RuntimeSettings, VaultAuthMethod
from rescind.exceptions import ConfigurationError
from rescind.observability import observed_handler
from rescind_local.aws import local_aws
from rescind_local.stack import IntrinsicResolver
from rescind_local.template import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(REPO_ROOT / "template.yaml")
FUNCTIONS = {
    name: body["Properties"]
    for name, body in TEMPLATE["Resources"].items()
    if body["Type"] == "AWS::Serverless::Function"
}
GLOBAL_VARIABLES: dict[str, Any] = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
# What a deployment would pass for the parameters without a default, and what the resources resolve to.
SAMPLE_PARAMETERS = {"VaultAddr": "https://vault.example.com:8200", "VaultAwsAuthRole": "rescind-functions"}
SAMPLE_RESOURCES = {
    "LedgerTable": "rescind-LedgerTable-1A2B3C4D5E6F",
    "InventoryTable": "rescind-InventoryTable-6F5E4D3C2B1A",
    "OffboardingStateMachine": "arn:aws:states:us-east-1:123456789012:stateMachine:rescind-offboarding",
    "ManualRevocationStateMachine": "arn:aws:states:us-east-1:123456789012:stateMachine:rescind-manual-revocation",
    "NotificationTopic": "arn:aws:sns:us-east-1:123456789012:rescind-NotificationTopic-1A2B3C4D5E6F",
    "FingerprintTable": "rescind-FingerprintTable-1A2B3C4D5E6F",
    "FingerprintKeySecret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:FingerprintKeySecret-AbCdEf",
    "GitHubWebhookSecret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:GitHubWebhookSecret-AbCdEf",
    "LeakResponseStateMachine": "arn:aws:states:us-east-1:123456789012:stateMachine:rescind-leak-response",
    "SweepStateTable": "rescind-SweepStateTable-1A2B3C4D5E6F",
    "InventoryReportBucket": "rescind-inventoryreportbucket-1a2b3c4d5e6f",
    "LedgerArchiveBucket": "rescind-ledgerarchivebucket-1a2b3c4d5e6f",
    "PlanBucket": "rescind-planbucket-1a2b3c4d5e6f",
    "IssuanceTable": "rescind-IssuanceTable-1A2B3C4D5E6F",
    "AWS::AccountId": "123456789012",
    "TriggerEventBus": "rescind-triggers",
    # The stored settings' parameters (Ref is the name), which `stored_settings` creates in moto.
    "ProtectedWorkloadsParameter": "/rescind/protected-workloads",
    "DiscoveryAccountIdsParameter": "/rescind/discovery-account-ids",
    "SchedulePolicyParameter": "/rescind/schedule-policy",
    "TrustDomainAccountsParameter": "/rescind/trust-domain-accounts",
}


def resolve(value: Any) -> str:
    """An environment value as the function would see it once deployed with the sample values."""
    if isinstance(value, str):
        return value
    if "Fn::Sub" in value:  # a name built from parameters, such as the function's own Vault role
        return re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda match: resolve({"Ref": match.group(1)}), value["Fn::Sub"])
    name = value["Ref"]  # otherwise only plain Refs belong in the environment
    if name in SAMPLE_RESOURCES:
        return SAMPLE_RESOURCES[name]
    if name in SAMPLE_PARAMETERS:
        return SAMPLE_PARAMETERS[name]
    return str(TEMPLATE["Parameters"][name]["Default"])


def deployed_environment(function: dict[str, Any]) -> dict[str, str]:
    variables = {**GLOBAL_VARIABLES, **(function.get("Environment") or {}).get("Variables", {})}
    return {name: resolve(value) for name, value in variables.items()}


def handler_location(function: dict[str, Any]) -> tuple[Path, Path, str]:
    """(code folder, module file, attribute) of a function's Handler `package.module.attribute`."""
    code_dir = REPO_ROOT / function["CodeUri"]
    module_path, _, attribute = function["Handler"].rpartition(".")
    return code_dir, code_dir.joinpath(*module_path.split(".")).with_suffix(".py"), attribute


def import_by_path(name: str, path: Path, code_dir: Path) -> ModuleType:
    """Import a handler module under a unique name: every function folder has its own `app`."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(code_dir))  # as Lambda does, for modules beside the handler
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(code_dir))
    return module


def _handler_shape(event: Any, context: Any) -> None:
    """A handler for observed_handler to wrap, so its wrapper can be told apart from any other function."""


@pytest.fixture
def fresh_runtime(stored_settings: None) -> Iterator[None]:
    runtime.reset_caches()
    yield
    runtime.reset_caches()


def put_stored_settings(ssm: Any) -> None:
    """The template's stored settings (its AWS::SSM::Parameter resources), as a deploy with the sample values
    creates them under the names `deployed_environment` gives the functions."""
    resolver = IntrinsicResolver(TEMPLATE, {}, "rescind", parameters=SAMPLE_PARAMETERS)
    for logical_id, body in TEMPLATE["Resources"].items():
        if body["Type"] == "AWS::SSM::Parameter":
            value = resolver.resolve(body["Properties"]["Value"])
            ssm.put_parameter(Name=SAMPLE_RESOURCES[logical_id], Value=value, Type=body["Properties"]["Type"])


@pytest.fixture
def stored_settings() -> Iterator[None]:
    """moto, holding the template's stored settings."""
    with local_aws():
        put_stored_settings(boto3.client("ssm"))
        yield


def test_the_template_has_functions() -> None:
    assert "ExecuteActionFunction" in FUNCTIONS


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_the_code_folder_and_the_handler_module_exist(name: str) -> None:
    code_dir, module_file, attribute = handler_location(FUNCTIONS[name])

    assert code_dir.is_dir(), f"{name}: CodeUri {code_dir} is not a folder"
    assert module_file.is_file(), f"{name}: handler module {module_file} does not exist"
    assert attribute.isidentifier(), f"{name}: handler attribute {attribute!r}"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_the_handler_imports_with_the_deployed_configuration_and_is_callable(
    name: str, monkeypatch: pytest.MonkeyPatch, fresh_runtime: None
) -> None:
    # When the module is imported as Lambda would at cold start, with the environment the template gives it
    # (the handler validates it at import)
    handler = _import_handler_with(name, deployed_environment(FUNCTIONS[name]), monkeypatch)

    # Then the handler exists, and it is wrapped by the one observability decorator (every wrapper it makes
    # shares its code) around the module's own function
    assert callable(handler), f"{name}: no callable handler"
    assert handler.__code__ is observed_handler(_handler_shape).__code__, f"{name}: not wrapped by observed_handler"
    assert handler.__wrapped__.__module__ == f"rescind_function_{name}"


def _import_handler_with(name: str, environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The function's handler, imported as Lambda would at cold start with exactly `environment`."""
    for variable in (*RuntimeSettings.variables(), *RuntimeSettings.parameter_variables()):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")  # no X-Ray patching of botocore in this process
    code_dir, module_file, attribute = handler_location(FUNCTIONS[name])
    module_name = f"rescind_function_{name}"
    try:
        return getattr(import_by_path(module_name, module_file, code_dir), attribute, None)
    finally:
        sys.modules.pop(module_name, None)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_variable_a_function_is_given_is_one_its_settings_read(name: str) -> None:
    # A variable no settings model reads is ignored silently, leaving the function without it (the approval
    # function was given LEAK_STATE_MACHINE_ARN while the settings read LEAK_RESPONSE_STATE_MACHINE_ARN).
    own = (FUNCTIONS[name].get("Environment") or {}).get("Variables", {})

    assert set(own) - {*RuntimeSettings.variables(), *RuntimeSettings.parameter_variables()} == set()


FUNCTION_VARIABLES = {setting.upper() for setting in get_args(FunctionSetting)}
NEEDED = sorted(
    (name, variable)
    for name, function in FUNCTIONS.items()
    for variable in (function.get("Environment") or {}).get("Variables", {})
    if variable in FUNCTION_VARIABLES
)


@pytest.mark.parametrize(("name", "variable"), NEEDED, ids=[f"{name}-{variable}" for name, variable in NEEDED])
def test_a_function_deployed_without_a_variable_it_needs_fails_at_cold_start_naming_it(
    name: str, variable: str, monkeypatch: pytest.MonkeyPatch, fresh_runtime: None
) -> None:
    # Given the deployed environment less one variable the template gives this function only
    environment = deployed_environment(FUNCTIONS[name])
    del environment[variable]

    # When Lambda imports the handler, then the import fails, naming the variable
    with pytest.raises(ConfigurationError, match=variable):
        _import_handler_with(name, environment, monkeypatch)


def test_globals_set_every_variable_runtime_settings_requires() -> None:
    required = {field.upper() for field, info in RuntimeSettings.model_fields.items() if info.is_required()}

    assert required  # the model has required fields; an empty set would make this test vacuous
    assert required <= set(GLOBAL_VARIABLES)
    # Conditionally required: the AWS IAM auth method needs its role.
    assert GLOBAL_VARIABLES["VAULT_AUTH_METHOD"] == VaultAuthMethod.AWS_IAM.value
    assert "VAULT_AWS_AUTH_ROLE" in GLOBAL_VARIABLES


def test_every_configuration_variable_in_globals_is_one_runtime_settings_reads() -> None:
    # A misspelt variable would be ignored silently (extra="ignore"), leaving the default in force.
    configuration = {name for name in GLOBAL_VARIABLES if not name.startswith("POWERTOOLS_")}

    assert configuration - {*RuntimeSettings.variables(), *RuntimeSettings.parameter_variables()} == set()


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_the_deployed_environment_validates(name: str, fresh_runtime: None) -> None:
    settings = RuntimeSettings.from_environ(deployed_environment(FUNCTIONS[name]))

    assert settings.ledger_table_name == SAMPLE_RESOURCES["LedgerTable"]
    assert settings.notification_topic_arn == SAMPLE_RESOURCES["NotificationTopic"]
    assert settings.vault_addr == SAMPLE_PARAMETERS["VaultAddr"]
    assert settings.vault_auth_method is VaultAuthMethod.AWS_IAM
    assert settings.vault_token is None
    # The prefix, and for a function that calls Vault its own role's name after it
    assert (settings.vault_aws_auth_role or "").startswith(SAMPLE_PARAMETERS["VaultAwsAuthRole"])
    assert settings.vault_aws_auth_mount == "aws"
    assert settings.vault_namespace is None  # the empty default means "no namespace"
    assert settings.cross_account_role_name == "RescindExecutionRole"


@pytest.mark.parametrize(
    ("parameter", "field"), [("VaultAddr", "vault_addr"), ("CrossAccountRoleName", "cross_account_role_name")]
)
def test_parameters_accept_exactly_what_the_functions_accept(parameter: str, field: str) -> None:
    # A value CloudFormation accepts but RuntimeSettings refuses would deploy and then fail at every cold start.
    metadata = RuntimeSettings.model_fields[field].metadata
    patterns = [getattr(item, "pattern", None) for item in metadata]
    longest = [item.max_length for item in metadata if getattr(item, "max_length", None) is not None]
    if longest:  # the field bounds the length apart (rescind.validation.IamName): the pattern's `+` is {1,longest}
        patterns = [pattern.replace("]+$", f"]{{1,{longest[0]}}}$") for pattern in patterns if pattern]

    assert TEMPLATE["Parameters"][parameter]["AllowedPattern"] in patterns


def _calls_named(tree: ast.AST, name: str) -> list[ast.Call]:
    def called(node: ast.Call) -> str:
        function = node.func
        return function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")

    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and called(node) == name]


def test_the_tracer_patches_only_the_traced_libraries_and_never_captures_responses() -> None:
    # Responses can carry references to credentials, and patching every library X-Ray knows costs cold start.
    # Every handler's tracer is rescind.observability's (tests/unit/test_observability.py checks the wiring).
    tree = ast.parse((REPO_ROOT / "shared" / "rescind" / "observability.py").read_text())

    (tracer,) = _calls_named(tree, "Tracer")
    keywords = {keyword.arg: keyword.value for keyword in tracer.keywords}
    assert isinstance(keywords.get("patch_modules"), ast.Name), "Tracer() without patch_modules"
    assert keywords["patch_modules"].id == "TRACED_AT_IMPORT"  # type: ignore[attr-defined]
    # and the rest of the traced libraries when they are first imported (test_lambda_build checks it runs)
    assert set(runtime.TRACED_AT_IMPORT) < set(runtime.TRACED_LIBRARIES) == {"botocore", "requests"}
    captures = _calls_named(tree, "capture_lambda_handler") + _calls_named(tree, "capture_method")
    assert captures
    for capture in captures:
        keywords = {keyword.arg: keyword.value for keyword in capture.keywords}
        response = keywords.get("capture_response")
        assert isinstance(response, ast.Constant), "a capture without capture_response=False"
        assert response.value is False
