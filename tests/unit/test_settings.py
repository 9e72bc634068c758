"""RuntimeSettings: the Vault address the functions log in to, and the login's replay protection."""

from __future__ import annotations

import pytest

from rescind.config import RuntimeSettings
from rescind.exceptions import ConfigurationError

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
