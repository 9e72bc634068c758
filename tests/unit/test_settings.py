"""RuntimeSettings: the Vault address the functions log in to, and the login's replay protection."""

from __future__ import annotations

import pytest

from rescind.config import RuntimeSettings
from rescind.exceptions import InvalidInput

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
    with pytest.raises(InvalidInput) as refused:
        RuntimeSettings.from_environ({**BASE, "VAULT_ADDR": address})
    assert "vault_addr" in str(refused.value)


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
    with pytest.raises(InvalidInput) as refused:
        RuntimeSettings.from_environ({**BASE, "VAULT_ADDR": "https://vault.example.com", "TRUST_DOMAIN_ACCOUNTS": text})
    assert "trust" in str(refused.value)
