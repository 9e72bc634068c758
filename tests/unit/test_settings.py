"""The settings: one model per concern composed into RuntimeSettings, and ConfigurationError naming the variable."""

from __future__ import annotations

from typing import get_args

import pytest

from rescind.config import (
    ArchiveSettings,
    CrossAccountSettings,
    DiscoveryScopeSettings,
    FlowSettings,
    FunctionSetting,
    GitHubSettings,
    GuardSettings,
    IndexSettings,
    PlanSettings,
    RecordSettings,
    RotationHookSettings,
    RuntimeSettings,
    ScheduleSettings,
    VaultSettings,
    WorkloadAccountSettings,
)
from rescind.exceptions import ConfigurationError, InvalidInput

BASE = {"LEDGER_TABLE_NAME": "ledger", "VAULT_AUTH_METHOD": "aws_iam", "VAULT_AWS_AUTH_ROLE": "rescind"}


@pytest.mark.parametrize(
    "address",
    ["https://vault.example.com:8200", "https://vault.example.com", "http://127.0.0.1:8200", "http://localhost:8200"],
)
def test_https_or_plain_http_to_this_machine_is_accepted(address: str) -> None:
    assert RuntimeSettings.from_environ({**BASE, "VAULT_ADDR": address}).vault_addr == address


@pytest.mark.parametrize(
    "address",
    ["http://vault.example.com:8200", "http://10.0.0.5:8200", "http://127.0.0.1.evil.example:8200", "ftp://vault"],
)
def test_plain_http_to_another_host_is_refused_naming_the_field(address: str) -> None:
    # The AWS IAM login and every token would cross that link in clear
    with pytest.raises(ConfigurationError) as refused:
        RuntimeSettings.from_environ({**BASE, "VAULT_ADDR": address})
    assert "VAULT_ADDR" in str(refused.value)


def test_the_server_id_header_is_read_from_the_environment() -> None:
    settings = RuntimeSettings.from_environ(
        {**BASE, "VAULT_ADDR": "https://vault.example.com", "VAULT_AWS_AUTH_HEADER": "vault.example.com"}
    )
    assert settings.vault_aws_auth_header == "vault.example.com"


def test_the_trust_domain_accounts_map_is_read_from_the_environment() -> None:
    settings = RuntimeSettings.from_environ(
        {
            **BASE,
            "VAULT_ADDR": "https://vault.example.com",
            "TRUST_DOMAIN_ACCOUNTS": "prod.example=111111111111 222222222222; Staging.Example=333333333333",
            "STACK_ACCOUNT_ID": "999999999999",
        }
    )
    assert settings.trust_domain_accounts == {
        "prod.example": frozenset({"111111111111", "222222222222"}),
        "staging.example": frozenset({"333333333333"}),
    }
    assert settings.stack_account_id == "999999999999"


@pytest.mark.parametrize(
    "text", ["prod.example", "prod.example=", "prod.example=12345", "../x=111111111111", "=111111111111"]
)
def test_a_malformed_trust_domain_accounts_map_is_refused_at_cold_start(text: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        RuntimeSettings.from_environ({**BASE, "VAULT_ADDR": "https://vault.example.com", "TRUST_DOMAIN_ACCOUNTS": text})
    assert "TRUST_DOMAIN_ACCOUNTS" in str(refused.value)


# --- cross-account access: member-account.yaml's execution role requires an external id ----------------------

VAULT = {**BASE, "VAULT_ADDR": "https://vault.example.com"}
TWO_ACCOUNTS = {"AWS_ACCOUNT_IDS": "111111111111,222222222222"}


def test_other_accounts_without_an_external_id_are_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError) as refused:
        RuntimeSettings.from_environ({**VAULT, **TWO_ACCOUNTS})
    assert "CROSS_ACCOUNT_EXTERNAL_ID" in str(refused.value)


def test_other_accounts_with_an_external_id_are_accepted() -> None:
    settings = RuntimeSettings.from_environ(
        {**VAULT, **TWO_ACCOUNTS, "CROSS_ACCOUNT_EXTERNAL_ID": "o-a1b2c3d4e5-rescind"}
    )
    assert settings.cross_account_external_id == "o-a1b2c3d4e5-rescind"


def test_one_account_needs_no_external_id() -> None:
    # It may be this one; the client factory refuses, naming the setting, if Rescind ever assumes a role.
    settings = RuntimeSettings.from_environ({**VAULT, "AWS_ACCOUNT_IDS": "111111111111"})
    assert settings.cross_account_external_id is None


@pytest.mark.parametrize("external_id", ["short-7f3a", "has a space in it 0001", "x" * 1225])
def test_a_malformed_external_id_is_refused_without_repeating_it(external_id: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        RuntimeSettings.from_environ({**VAULT, "CROSS_ACCOUNT_EXTERNAL_ID": external_id})
    assert "CROSS_ACCOUNT_EXTERNAL_ID" in str(refused.value)
    assert "at least" in str(refused.value) or "16 to 1224" in str(refused.value)
    assert external_id not in str(refused.value)


# --- one model per concern, ConfigurationError naming the variable ---------------------------------------------


def test_a_missing_variable_is_a_configuration_error_naming_it_not_bad_input() -> None:
    with pytest.raises(ConfigurationError) as refused:
        RuntimeSettings.from_environ(BASE)  # no VAULT_ADDR

    assert "VAULT_ADDR" in str(refused.value)
    assert not isinstance(refused.value, InvalidInput)  # the event is not at fault: no retry, no other event fixes it


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AWS_ACCOUNT_IDS", "111111111111,hunter2-not-an-account"),
        ("BLAST_RADIUS_CAP", "hunter2-not-a-number"),
        ("GITHUB_TOKEN_SECRET_ARN", "ghp_hunter2-a-token-in-the-wrong-place"),
        ("LEAK_DEDUP_WINDOW_SECONDS", "hunter2"),
        ("SCHEDULE_POLICY", '{"max_actions_per_run": "hunter2"}'),
    ],
)
def test_a_malformed_variable_is_named_and_its_value_never_repeated(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        RuntimeSettings.from_environ({**VAULT, variable: value})

    assert variable in str(refused.value)
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize("setting", get_args(FunctionSetting))
def test_a_variable_only_some_functions_need_is_named_when_one_of_them_lacks_it(setting: str) -> None:
    settings = RuntimeSettings.from_environ(VAULT)

    with pytest.raises(ConfigurationError, match=setting.upper()):
        settings.required(setting)  # type: ignore[arg-type]


def test_require_names_every_missing_variable_at_once() -> None:
    settings = RuntimeSettings.from_environ({**VAULT, "MANUAL_STATE_MACHINE_ARN": "arn:aws:states:x"})

    with pytest.raises(ConfigurationError) as refused:
        settings.incident_machine_arns()

    assert "OFFBOARDING_STATE_MACHINE_ARN" in str(refused.value)
    assert "LEAK_RESPONSE_STATE_MACHINE_ARN" in str(refused.value)
    assert "MANUAL_STATE_MACHINE_ARN" not in str(refused.value)


CONCERNS = (
    VaultSettings,
    RecordSettings,
    ArchiveSettings,
    CrossAccountSettings,
    DiscoveryScopeSettings,
    GuardSettings,
    WorkloadAccountSettings,
    FlowSettings,
    IndexSettings,
    GitHubSettings,
    ScheduleSettings,
    RotationHookSettings,
)


def test_every_setting_is_defined_once_in_one_concern_and_the_runtime_settings_are_all_of_them() -> None:
    declared = [name for concern in CONCERNS for name in concern.__annotations__ if not name.startswith("_")]

    assert len(declared) == len(set(declared))  # no field in two concerns
    assert set(declared) == set(RuntimeSettings.model_fields)
    for concern in CONCERNS:
        assert issubclass(RuntimeSettings, concern)


def test_a_concern_reads_its_own_variables_and_validates_them_as_the_runtime_does() -> None:
    # The CLI reads the scope and the guard alone, from the same models: the same value is refused the same way
    environ = {"BLAST_RADIUS_CAP": "0", "PKI_MOUNTS": "pki, pki_int"}

    with pytest.raises(ConfigurationError, match="BLAST_RADIUS_CAP"):
        PlanSettings.from_environ(environ)
    with pytest.raises(ConfigurationError, match="BLAST_RADIUS_CAP"):
        RuntimeSettings.from_environ({**VAULT, **environ})
    plan = PlanSettings.from_environ({**environ, "BLAST_RADIUS_CAP": "3", "PROTECTED_WORKLOADS": "spiffe://a/b"})
    assert plan.discovery_scope(default_account="111111111111").pki_mounts == ("pki", "pki_int")
    assert plan.discovery_scope(default_account=None).aws_account_ids == ()
    policy = plan.guard_policy(also_protected=("spiffe://c/d",))
    assert (policy.blast_radius_cap, policy.protected_workloads) == (3, frozenset({"spiffe://a/b", "spiffe://c/d"}))


def test_the_github_api_url_is_validated_once_strictly_wherever_it_is_read() -> None:
    # It was defined twice, and the looser copy (any http URL) was the one the leak responder used
    with pytest.raises(ConfigurationError, match="GITHUB_API_URL"):
        RuntimeSettings.from_environ({**VAULT, "GITHUB_API_URL": "http://github.example.com"})
    settings = RuntimeSettings.from_environ({**VAULT, "GITHUB_API_URL": "https://ghe.example.com/api/v3/"})
    assert settings.github_api_url == "https://ghe.example.com/api/v3"


# --- settings that grow with the organisation: in Parameter Store when deployed ---------------------------------


def test_each_stored_setting_is_read_from_its_variable_or_from_the_parameter_its_parameter_variable_names() -> None:
    from rescind.parameter_store import STORED_SETTINGS

    assert set(RuntimeSettings.model_fields) >= STORED_SETTINGS
    assert {setting.upper() for setting in STORED_SETTINGS} <= set(RuntimeSettings.variables())
    # Only the stored settings have a parameter variable, and a concern has those of its own settings
    assert set(RuntimeSettings.parameter_variables()) == {f"{setting.upper()}_PARAMETER" for setting in STORED_SETTINGS}
    assert GuardSettings.parameter_variables() == ("PROTECTED_WORKLOADS_PARAMETER",)


def test_a_stored_setting_given_in_the_environment_needs_no_parameter_store() -> None:
    # The CLI and the local tools give the values themselves; nothing reads AWS (there is none here)
    settings = RuntimeSettings.from_environ(
        {**VAULT, "PROTECTED_WORKLOADS": "spiffe://a/b", "SCHEDULE_POLICY": '{"max_actions_per_run": 3}'}
    )

    assert settings.protected_workloads == ("spiffe://a/b",)
    assert settings.schedule_policy.max_actions_per_run == 3
