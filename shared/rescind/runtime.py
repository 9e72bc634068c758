"""Cached factories for the deployed functions: settings, the Vault client, the engine and the ledger.

Only handlers call these. Domain logic takes what it needs as arguments, so tests inject their own.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from rescind.config import RuntimeSettings, VaultAuthMethod

if TYPE_CHECKING:
    import hvac

    from rescind.engine.executor import ActionEngine
    from rescind.ledger.dynamodb import DynamoDbLedger


@cache
def get_settings() -> RuntimeSettings:
    return RuntimeSettings.from_environ()


@cache
def get_vault_client() -> hvac.Client:
    from rescind.vault.client import build_vault_client, build_vault_client_with_aws_iam

    settings = get_settings()
    if settings.vault_auth_method is VaultAuthMethod.TOKEN:
        assert settings.vault_token is not None  # checked by RuntimeSettings
        return build_vault_client(
            settings.vault_addr, settings.vault_token.get_secret_value(), namespace=settings.vault_namespace
        )
    assert settings.vault_aws_auth_role is not None  # checked by RuntimeSettings
    return build_vault_client_with_aws_iam(
        settings.vault_addr,
        settings.vault_aws_auth_role,
        mount_point=settings.vault_aws_auth_mount,
        namespace=settings.vault_namespace,
        header_value=settings.vault_aws_auth_header,
    )


@cache
def get_ledger() -> DynamoDbLedger:
    import boto3

    from rescind.ledger.dynamodb import DynamoDbLedger

    return DynamoDbLedger(get_settings().ledger_table_name, boto3.client("dynamodb"))


@cache
def get_engine() -> ActionEngine:
    from rescind.engine.factory import build_engine

    settings = get_settings()
    return build_engine(
        get_vault_client(),
        cross_account_role_name=settings.cross_account_role_name,
        cross_account_external_id=settings.cross_account_external_id,
    )


def reset_caches() -> None:
    """For tests that change the environment between invocations."""
    for factory in (get_settings, get_vault_client, get_ledger, get_engine):
        factory.cache_clear()
