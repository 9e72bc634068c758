"""Cached factories for the deployed functions: settings, the Vault client, the engine and the ledger.

Only handlers call these. Domain logic takes what it needs as arguments, so tests inject their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rescind.caching import clear_caches, runtime_cache
from rescind.config import RuntimeSettings, VaultAuthMethod

# The libraries whose calls X-Ray traces: boto3 (through botocore) and hvac (through requests). The Tracer's
# default patches every library aws_xray_sdk knows, importing each at cold start; see bench/results.md.
TRACED_LIBRARIES: tuple[str, ...] = ("botocore", "requests")
# Patched when the Tracer is made: every handler builds boto3 clients. The others are patched when something
# first imports them (rescind.observability), so a handler that never talks to Vault never imports requests.
TRACED_AT_IMPORT: tuple[str, ...] = ("botocore",)

if TYPE_CHECKING:
    from collections.abc import Callable

    import hvac
    from mypy_boto3_sns import SNSClient

    from rescind.aws.session import AwsClientFactory
    from rescind.discovery import DiscoveryScope
    from rescind.engine.executor import ActionEngine
    from rescind.guard import GuardPolicy
    from rescind.inventory.dynamodb import DynamoDbInventory
    from rescind.ledger.dynamodb import DynamoDbLedger
    from rescind.models import CredentialRef
    from rescind.offboarding.accounts import WorkloadAccounts


@runtime_cache
def get_settings() -> RuntimeSettings:
    return RuntimeSettings.from_environ()


@runtime_cache
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


@runtime_cache
def get_ledger() -> DynamoDbLedger:
    import boto3

    from rescind.ledger.dynamodb import DynamoDbLedger

    return DynamoDbLedger(get_settings().ledger_table_name, boto3.client("dynamodb"))


@runtime_cache
def get_sns_client() -> SNSClient:
    import boto3

    return boto3.client("sns")


@runtime_cache
def get_aws_factory() -> AwsClientFactory:
    from rescind.aws.session import AwsClientFactory

    settings = get_settings()
    return AwsClientFactory(role_name=settings.cross_account_role_name, external_id=settings.cross_account_external_id)


@runtime_cache
def get_engine() -> ActionEngine:
    from rescind.engine.factory import build_engine
    from rescind.fingerprints.runtime import get_rotation_indexer

    return build_engine(get_vault_client(), aws_factory=get_aws_factory(), kv_on_new_value=get_rotation_indexer())


@runtime_cache
def get_inventory() -> DynamoDbInventory | None:
    import boto3

    from rescind.inventory.dynamodb import DynamoDbInventory

    table = get_settings().inventory_table_name
    return DynamoDbInventory(table, boto3.client("dynamodb")) if table else None


@runtime_cache
def get_discovery_scope() -> DiscoveryScope:
    from rescind.discovery import DiscoveryScope

    settings = get_settings()
    accounts = settings.aws_account_ids or (get_aws_factory().caller_identity().account_id,)
    return DiscoveryScope(
        pki_mounts=settings.pki_mounts,
        approle_mounts=settings.approle_mounts,
        kv_mounts=settings.kv_mounts,
        lease_mounts=settings.lease_mounts,
        aws_account_ids=accounts,
        metadata_key=settings.workload_metadata_key,
    )


@runtime_cache
def get_guard_policy() -> GuardPolicy:
    from rescind.guard import GuardPolicy

    settings = get_settings()
    return GuardPolicy(
        protected_workloads=frozenset(settings.protected_workloads), blast_radius_cap=settings.blast_radius_cap
    )


@runtime_cache
def get_action_guard() -> Callable[[CredentialRef], None]:
    """The acting task's own guard (holds, protected owners), on the functions' clients and settings."""
    from rescind.guard import refuse_guarded_target

    settings, policy = get_settings(), get_guard_policy()

    def refuse_if_guarded(ref: CredentialRef) -> None:
        refuse_guarded_target(
            get_vault_client(), get_aws_factory(), ref, policy, metadata_key=settings.workload_metadata_key
        )

    return refuse_if_guarded


@runtime_cache
def get_workload_accounts() -> WorkloadAccounts:
    from rescind.offboarding.accounts import WorkloadAccounts

    settings = get_settings()
    return WorkloadAccounts(home_account=settings.stack_account_id, by_trust_domain=settings.trust_domain_accounts)


def reset_caches() -> None:
    """Drop every cached setting and client (tests that change the environment between invocations)."""
    clear_caches()
