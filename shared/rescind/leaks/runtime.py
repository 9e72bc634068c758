"""Cached factories for the leak-response functions: the locator (with its optional index and GitHub reader)
and the state machine's ARN. Only handlers call these."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from rescind.caching import runtime_cache
from rescind.leaks.locate import GitHubKeyIdFinder, GitHubSecretFetcher, KvValueLocator, LeakLocator
from rescind.models import KvSecretRef
from rescind.runtime import get_aws_factory, get_discovery_scope, get_guard_policy, get_settings, get_vault_client

if TYPE_CHECKING:
    from rescind.leaks.kill import KillFirst


def get_leak_state_machine_arn() -> str:
    return get_settings().required("leak_response_state_machine_arn")


def get_dedup_window() -> timedelta:
    return timedelta(seconds=get_settings().leak_dedup_window_seconds)


@runtime_cache
def get_leak_locator() -> LeakLocator:
    return LeakLocator(
        get_vault_client(),
        get_discovery_scope(),
        aws=get_aws_factory(),
        kv_locator=_kv_locator(),
        github_fetcher=_github_fetcher(),
        github_key_id_finder=_github_key_id_finder(),
        audit_device=get_settings().audit_device_path,
    )


@runtime_cache
def get_kill_first() -> KillFirst:
    """The kill first's engine holds only the handlers of the kinds it kills: nothing else can be acted on here."""
    from rescind.kinds import Backends, GuardRead
    from rescind.leaks.kill import KillFirst, kill_first_engine

    settings = get_settings()
    backends = Backends(get_vault_client(), get_aws_factory())
    scope = get_discovery_scope()
    return KillFirst(
        engine=kill_first_engine(backends, scope.issuance_index),
        read=GuardRead(backends, metadata_key=settings.workload_metadata_key),
        scope=scope,
        policy=get_guard_policy(),
        vault_address=settings.vault_addr,
    )


def _kv_locator() -> KvValueLocator | None:
    from rescind.fingerprints.runtime import get_fingerprint_index, get_fingerprint_key

    index = get_fingerprint_index()
    if index is None:
        return None

    def locate(*, value: str | None = None, sha256: str | None = None) -> list[KvSecretRef]:
        key = get_fingerprint_key()  # read on first use: most leaks are not KV values
        if key is None:
            return []
        from rescind.fingerprints.locate import locate_kv_secrets_by_value

        return locate_kv_secrets_by_value(get_vault_client(), index, key, value=value, sha256=sha256)

    return locate


def _github_fetcher() -> GitHubSecretFetcher | None:
    settings = get_settings()
    token_arn = settings.github_token_secret_arn
    if not token_arn:
        return None

    def fetch(repository: str, alert_number: int) -> str:
        from rescind.leaks.github import fetch_alert_secret, load_github_token

        token = load_github_token(token_arn)
        return fetch_alert_secret(settings.github_api_url, token, repository, alert_number)

    return fetch


def _github_key_id_finder() -> GitHubKeyIdFinder | None:
    settings = get_settings()
    token_arn = settings.github_token_secret_arn
    if not token_arn:
        return None

    def find(repository: str, alert_number: int) -> list[str]:
        from rescind.leaks.github import find_access_key_ids_beside_alert, load_github_token

        token = load_github_token(token_arn)
        return find_access_key_ids_beside_alert(settings.github_api_url, token, repository, alert_number)

    return find
