"""The cached factories: configured from the environment, None when not, the key read once, and get_engine's
KV rotations keeping the index current."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import hvac
import pytest

from rescind import runtime
from rescind.exceptions import ActionFailed
from rescind.fingerprints import fingerprint_of_value
from rescind.fingerprints.runtime import (
    get_fingerprint_index,
    get_fingerprint_key,
    get_rotation_indexer,
    read_fingerprint_key,
)
from rescind.models import Action, ActionKind, ActionParams, KvSecretRef, Outcome
from rescind_local import LocalOpenBao
from rescind_local.aws import LOCAL_REGION
from tests.conftest import BackendCalls
from tests.integration.fingerprints.conftest import IndexSetup


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, openbao: LocalOpenBao) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv("LEDGER_TABLE_NAME", "ledger-unused")
    monkeypatch.setenv("VAULT_ADDR", openbao.addr)
    monkeypatch.setenv("VAULT_AUTH_METHOD", "token")
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    monkeypatch.delenv("FINGERPRINT_TABLE_NAME", raising=False)
    monkeypatch.delenv("FINGERPRINT_KEY_SECRET_ARN", raising=False)
    runtime.reset_caches()
    yield monkeypatch
    runtime.reset_caches()


def configure(environment: pytest.MonkeyPatch, fingerprints: IndexSetup) -> None:
    environment.setenv("FINGERPRINT_TABLE_NAME", fingerprints.table_name)
    environment.setenv("FINGERPRINT_KEY_SECRET_ARN", fingerprints.key_secret_arn)
    runtime.reset_caches()


@pytest.mark.usefixtures("aws")
def test_nothing_is_built_when_the_index_is_not_configured(environment: pytest.MonkeyPatch) -> None:
    assert get_fingerprint_index() is None
    assert get_fingerprint_key() is None
    assert get_rotation_indexer() is None


def test_the_key_is_read_from_secrets_manager_once(
    environment: pytest.MonkeyPatch, fingerprints: IndexSetup, backend_calls: BackendCalls
) -> None:
    configure(environment, fingerprints)

    first = get_fingerprint_key()
    second = get_fingerprint_key()

    assert first == second == fingerprints.key
    assert backend_calls.aws.count("secretsmanager:GetSecretValue") == 1
    index = get_fingerprint_index()
    assert index is not None
    assert index is get_fingerprint_index()


def test_a_short_or_missing_key_is_refused_without_the_value(aws: None, unique: str) -> None:
    client = boto3.client("secretsmanager", region_name=LOCAL_REGION)
    arn = client.create_secret(Name=f"short-{unique}", SecretString="too-short-key")["ARN"]

    with pytest.raises(ActionFailed) as refused:
        read_fingerprint_key(client, arn)
    assert "too-short-key" not in str(refused.value)
    with pytest.raises(ActionFailed):
        read_fingerprint_key(client, arn.replace(f"short-{unique}", f"missing-{unique}"))


def declare_rotation(vault: hvac.Client, ref: KvSecretRef, field: str) -> None:
    """The owner's declaration: `field` rotates, and nothing but its readers checks it."""
    custom = {"rescind_rotate": field, "rescind_rotation_hook": "none"}
    vault.secrets.kv.v2.update_metadata(ref.path, mount_point=ref.mount, custom_metadata=custom)


def test_get_engine_rotations_index_the_new_value(
    environment: pytest.MonkeyPatch, fingerprints: IndexSetup, vault: hvac.Client, unique: str
) -> None:
    # Given a configured index and a KV secret
    configure(environment, fingerprints)
    ref = KvSecretRef(mount="secret", path=f"fp-runtime-{unique}/db")
    vault.secrets.kv.v2.create_or_update_secret(ref.path, secret={"password": "old-password-1"}, mount_point="secret")
    declare_rotation(vault, ref, "password")
    action = Action(kind=ActionKind.ROTATE, target=ref, reason="scheduled", params=ActionParams(run_id=f"run-{unique}"))

    # When the runtime's engine rotates it, twice
    engine = runtime.get_engine()
    first = engine.execute(action)
    second = engine.execute(action)
    assert (first.outcome, second.outcome) == (Outcome.SUCCEEDED, Outcome.ALREADY_APPLIED), (first, second)

    # Then the value now in Vault is in the index, at version 2 only
    new_value = vault.secrets.kv.v2.read_secret_version(ref.path, mount_point="secret", raise_on_deleted_version=True)[
        "data"
    ]["data"]["password"]
    hits = fingerprints.index.lookup(fingerprint_of_value(fingerprints.key, new_value))
    assert [(hit.path, hit.version, hit.field) for hit in hits] == [(ref.path, 2, "password")]


def test_an_unreadable_key_does_not_stop_a_rotation(
    environment: pytest.MonkeyPatch, fingerprints: IndexSetup, vault: hvac.Client, unique: str
) -> None:
    # Given the key secret's ARN is wrong
    configure(environment, fingerprints)
    environment.setenv("FINGERPRINT_KEY_SECRET_ARN", fingerprints.key_secret_arn[:-6] + "Zzzzzz")
    runtime.reset_caches()
    ref = KvSecretRef(mount="secret", path=f"fp-runtime-{unique}/api")
    vault.secrets.kv.v2.create_or_update_secret(ref.path, secret={"token": "old-token-123456"}, mount_point="secret")
    declare_rotation(vault, ref, "token")
    action = Action(kind=ActionKind.ROTATE, target=ref, reason="scheduled", params=ActionParams(run_id=f"run-{unique}"))

    # Then the rotation still finishes and verifies
    result = runtime.get_engine().execute(action)
    assert result.outcome is Outcome.SUCCEEDED, result
    assert all(evidence.confirmed for evidence in result.evidence)
