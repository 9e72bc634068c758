"""Issue 15.10: settings that grow with the organisation are read from SSM Parameter Store (moto) at cold start,
validated like any variable, and a missing or malformed parameter is named, its value never repeated."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from rescind import runtime
from rescind.config import GuardSettings, RuntimeSettings, ScheduleSettings, WorkloadAccountSettings
from rescind.exceptions import ConfigurationError
from rescind.parameter_store import read_parameters
from rescind_local.aws import local_aws

BASE = {
    "LEDGER_TABLE_NAME": "ledger",
    "VAULT_ADDR": "https://vault.internal.example:8200",
    "VAULT_AUTH_METHOD": "aws_iam",
    "VAULT_AWS_AUTH_ROLE": "rescind",
    "CROSS_ACCOUNT_EXTERNAL_ID": "o-a1b2c3d4e5-rescind",
}
# A few hundred accounts: as many as one CloudFormation parameter (4,096 bytes) holds.
ORGANISATION = tuple(f"{100000000000 + n:012d}" for n in range(315))


@pytest.fixture
def ssm() -> Iterator[Any]:
    with local_aws():
        runtime.reset_caches()
        yield boto3.client("ssm")
        runtime.reset_caches()


def put(ssm: Any, name: str, value: str, kind: str = "String") -> str:
    ssm.put_parameter(Name=name, Value=value, Type=kind, Overwrite=True)
    return name


def test_the_stored_settings_are_read_from_their_parameters(ssm: Any) -> None:
    # Given a stack's parameters, as template.yaml creates them, and only their names in the environment
    policy = {"max_actions_per_run": 7, "protected_paths": ["secret/payments/"]}
    environ = {
        **BASE,
        "AWS_ACCOUNT_IDS_PARAMETER": put(ssm, "/rescind/discovery-account-ids", ",".join(ORGANISATION), "StringList"),
        "PROTECTED_WORKLOADS_PARAMETER": put(ssm, "/rescind/protected-workloads", "spiffe://a/ca,arn:aws:ecs:x"),
        "SCHEDULE_POLICY_PARAMETER": put(ssm, "/rescind/schedule-policy", json.dumps(policy)),
        "TRUST_DOMAIN_ACCOUNTS_PARAMETER": put(ssm, "/rescind/trust-domains", "prod.example=111111111111"),
    }

    # When a function starts
    settings = RuntimeSettings.from_environ(environ)

    # Then each setting holds its parameter's value, typed
    assert settings.aws_account_ids == ORGANISATION
    assert settings.protected_workloads == ("spiffe://a/ca", "arn:aws:ecs:x")
    assert settings.schedule_policy.max_actions_per_run == 7
    assert settings.schedule_policy.protected_paths == ("secret/payments/",)
    assert settings.trust_domain_accounts == {"prod.example": frozenset({"111111111111"})}


@pytest.mark.parametrize(
    ("settings", "variable", "stored", "empty"),
    [
        (GuardSettings, "PROTECTED_WORKLOADS", ",", ("protected_workloads", ())),
        (ScheduleSettings, "SCHEDULE_POLICY", "{}", ("schedule_policy", ScheduleSettings().schedule_policy)),
        (WorkloadAccountSettings, "TRUST_DOMAIN_ACCOUNTS", ";", ("trust_domain_accounts", {})),
    ],
)
def test_what_the_template_stores_for_an_empty_parameter_means_none(
    ssm: Any, settings: type[Any], variable: str, stored: str, empty: tuple[str, Any]
) -> None:
    # Parameter Store refuses an empty value, so the template stores one that means the same.
    read = settings.from_environ({f"{variable}_PARAMETER": put(ssm, f"/rescind/{variable.lower()}", stored)})

    field, expected = empty
    assert getattr(read, field) == expected


def test_a_missing_parameter_is_named_with_the_variable_that_named_it(ssm: Any) -> None:
    put(ssm, "/rescind/protected-workloads", "spiffe://a/ca")
    environ = {
        **BASE,
        "PROTECTED_WORKLOADS_PARAMETER": "/rescind/protected-workloads",
        "AWS_ACCOUNT_IDS_PARAMETER": "/rescind/deleted-by-hand",
    }

    with pytest.raises(ConfigurationError) as refused:
        RuntimeSettings.from_environ(environ)

    message = str(refused.value)
    assert "SSM parameter /rescind/deleted-by-hand (AWS_ACCOUNT_IDS_PARAMETER) was not found" in message
    assert "protected-workloads" not in message  # the one that exists is not blamed


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("AWS_ACCOUNT_IDS", "111111111111,hunter2-secret", "AWS_ACCOUNT_IDS_PARAMETER"),
        ("SCHEDULE_POLICY", '{"max_actions_per_run": "hunter2-secret"}', "max_actions_per_run"),
        ("SCHEDULE_POLICY", "{hunter2-secret", "is not JSON"),
        ("TRUST_DOMAIN_ACCOUNTS", "prod.example=hunter2-secret", "entry 1 needs 12-digit account ids"),
    ],
)
def test_a_malformed_parameter_is_named_and_its_value_never_repeated(
    ssm: Any, variable: str, value: str, problem: str
) -> None:
    name = put(ssm, f"/rescind/{variable.lower()}", value)

    with pytest.raises(ConfigurationError) as refused:
        RuntimeSettings.from_environ({**BASE, f"{variable}_PARAMETER": name})

    message = str(refused.value)
    assert f"SSM parameter {name} ({variable}_PARAMETER)" in message
    assert problem in message
    assert "hunter2" not in message


def test_a_setting_given_both_directly_and_by_parameter_is_refused(ssm: Any) -> None:
    name = put(ssm, "/rescind/protected-workloads", "spiffe://a/ca")

    with pytest.raises(ConfigurationError, match="PROTECTED_WORKLOADS and PROTECTED_WORKLOADS_PARAMETER"):
        GuardSettings.from_environ({"PROTECTED_WORKLOADS": "spiffe://a/b", "PROTECTED_WORKLOADS_PARAMETER": name})


def test_a_value_read_is_kept_for_its_max_age_and_read_again_at_the_next_cold_start(ssm: Any) -> None:
    # Given a warm function that has read its protected workloads
    name = put(ssm, "/rescind/protected-workloads", "spiffe://a/ca")
    environ = {"PROTECTED_WORKLOADS_PARAMETER": name}
    assert GuardSettings.from_environ(environ).protected_workloads == ("spiffe://a/ca",)

    # When the parameter changes, the warm function keeps what it read (for PARAMETER_MAX_AGE_SECONDS)
    put(ssm, name, "spiffe://a/ca,spiffe://a/db")
    assert GuardSettings.from_environ(environ).protected_workloads == ("spiffe://a/ca",)

    # And a new execution environment reads the new value
    runtime.reset_caches()
    assert GuardSettings.from_environ(environ).protected_workloads == ("spiffe://a/ca", "spiffe://a/db")


def test_more_names_than_one_get_parameters_takes_are_read_in_calls_of_ten(ssm: Any) -> None:
    # Given twelve parameters that exist and one that does not
    names = {f"SETTING_{index}": put(ssm, f"/rescind/setting-{index}", f"value-{index}") for index in range(12)}
    calls: list[int] = []
    client = boto3.client("ssm")
    client.meta.events.register(
        "provide-client-params.ssm.GetParameters", lambda params, **_: calls.append(len(params["Names"]))
    )

    # When all twelve are read: each value by the variable that named it, in two calls (GetParameters takes ten)
    assert read_parameters(names, ssm_client=client) == {variable: f"value-{variable[8:]}" for variable in names}
    assert sorted(calls) == [2, 10]

    # And the missing one is named with its variable, its neighbours' values never repeated
    with pytest.raises(ConfigurationError, match=r"^invalid configuration: SSM parameter /rescind/gone \(GONE\)"):
        read_parameters({**names, "GONE": "/rescind/gone"}, ssm_client=client)
