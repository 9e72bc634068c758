"""Cached factories for the deployed functions: settings, the Vault client, the AWS clients, the engine and the
ledger.

Only handlers call these. Domain logic takes what it needs as arguments, so tests inject their own. Every AWS
client is built here (or by AwsClientFactory) with rescind.aws.session.AWS_CLIENT_CONFIG, one per service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from rescind.caching import clear_caches, runtime_cache
from rescind.config import RuntimeSettings, VaultAuthMethod

# The libraries whose calls X-Ray traces: boto3 (through botocore) and hvac (through requests). The Tracer's
# default patches every library aws_xray_sdk knows, importing each at cold start; see bench/results.md.
TRACED_LIBRARIES: tuple[str, ...] = ("botocore", "requests")
# Patched when the Tracer is made: every handler builds boto3 clients. The others are patched when something
# first imports them (rescind.observability), so a handler that never talks to Vault never imports requests.
TRACED_AT_IMPORT: tuple[str, ...] = ("botocore",)

if TYPE_CHECKING:
    import hvac
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sns import SNSClient

    from rescind.aws.session import AwsClientFactory
    from rescind.discovery import DiscoveryScope
    from rescind.engine.executor import ActionEngine
    from rescind.guard import ActionGuard, GuardPolicy
    from rescind.holds import GuardFacts
    from rescind.inventory.dynamodb import DynamoDbInventory
    from rescind.ledger.dynamodb import DynamoDbLedger
    from rescind.models import Action
    from rescind.offboarding.accounts import WorkloadAccounts


@runtime_cache
def get_settings() -> RuntimeSettings:
    """Every concern's settings, read from the environment and validated: ConfigurationError names what is
    wrong. Handlers call it at cold start."""
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


# --- AWS clients (the default credentials, this account and region) ----------------------------------------


@runtime_cache
def get_aws_client(service: str) -> Any:
    """A boto3 client for `service`, one per execution environment, with the one botocore Config. The getters
    below give it its boto3-stubs type."""
    import boto3

    from rescind.aws.session import AWS_CLIENT_CONFIG

    return boto3.client(service, config=AWS_CLIENT_CONFIG)  # type: ignore[call-overload]


def get_dynamodb_client() -> DynamoDBClient:
    return cast("DynamoDBClient", get_aws_client("dynamodb"))


def get_sns_client() -> SNSClient:
    return cast("SNSClient", get_aws_client("sns"))


def get_s3_client() -> S3Client:
    return cast("S3Client", get_aws_client("s3"))


def get_secretsmanager_client() -> SecretsManagerClient:
    return cast("SecretsManagerClient", get_aws_client("secretsmanager"))


def get_events_client() -> Any:
    """EventBridge (boto3-stubs has no events extra in this project)."""
    return get_aws_client("events")


# --- what the functions act with -------------------------------------------------------------------------------


@runtime_cache
def get_ledger() -> DynamoDbLedger:
    from rescind.ledger.dynamodb import DynamoDbLedger

    settings = get_settings()
    return DynamoDbLedger(settings.ledger_table_name, get_dynamodb_client(), chunk_chars=settings.ledger_chunk_chars)


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
    from rescind.inventory.dynamodb import DynamoDbInventory

    table = get_settings().inventory_table_name
    return DynamoDbInventory(table, get_dynamodb_client()) if table else None


@runtime_cache
def get_discovery_scope() -> DiscoveryScope:
    from dataclasses import replace
    from datetime import timedelta

    from rescind.issuance.runtime import get_index_state, get_issuance_index

    settings = get_settings()
    # The functions' own account when AWS_ACCOUNT_IDS names none (asked only then: it is an STS call).
    own = None if settings.aws_account_ids else get_aws_factory().caller_identity().account_id
    return replace(
        settings.discovery_scope(default_account=own),
        issuance_index=get_issuance_index(),
        index_state=get_index_state(),
        index_max_age=timedelta(hours=settings.issuance_index_max_age_hours),
        live_read_workers=settings.revoke_batch_workers,  # the plan's reads share the client as a batch's acts do
    )


@runtime_cache
def get_guard_policy() -> GuardPolicy:
    return get_settings().guard_policy()


@runtime_cache
def get_action_guard() -> ActionGuard:
    """The acting task's own guard (holds, protected owners), on the functions' clients and settings."""
    from rescind.guard import refuse_guarded_target

    settings, policy = get_settings(), get_guard_policy()

    def refuse_if_guarded(action: Action) -> GuardFacts:
        return refuse_guarded_target(
            get_vault_client(), get_aws_factory(), action, policy, metadata_key=settings.workload_metadata_key
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
