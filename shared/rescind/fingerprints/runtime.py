"""Cached factories for the deployed functions: the fingerprint index, its HMAC key, and the rotation hook.

Each returns None when the stack is not configured with FINGERPRINT_TABLE_NAME / FINGERPRINT_KEY_SECRET_ARN.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rescind.aws.errors import aws_errors
from rescind.caching import runtime_cache
from rescind.exceptions import ActionFailed, RescindError
from rescind.runtime import get_dynamodb_client, get_secretsmanager_client, get_settings

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from rescind.fingerprints.dynamodb import DynamoDbFingerprintIndex
    from rescind.models import KvSecretRef
    from rescind.vault.kv_rotation_state import SecretValueHook

logger = logging.getLogger(__name__)

# A shorter key would make the fingerprints of short secrets easier to brute force.
MIN_KEY_BYTES = 32


def read_fingerprint_key(client: SecretsManagerClient, secret_arn: str) -> bytes:
    """The HMAC key held in a Secrets Manager secret (SecretString as UTF-8, or SecretBinary)."""
    with aws_errors(f"read the fingerprint key {secret_arn}"):
        answer = client.get_secret_value(SecretId=secret_arn)
    key = answer["SecretString"].encode("utf-8") if "SecretString" in answer else bytes(answer["SecretBinary"])
    if len(key) < MIN_KEY_BYTES:
        raise ActionFailed(f"the fingerprint key {secret_arn} is shorter than {MIN_KEY_BYTES} bytes")
    return key


@runtime_cache
def get_fingerprint_index() -> DynamoDbFingerprintIndex | None:
    table = get_settings().fingerprint_table_name
    if not table:
        return None
    from rescind.fingerprints.dynamodb import DynamoDbFingerprintIndex

    return DynamoDbFingerprintIndex(table, get_dynamodb_client())


@runtime_cache
def get_fingerprint_key() -> bytes | None:
    """Read once per cold start, and only when first needed."""
    secret_arn = get_settings().fingerprint_key_secret_arn
    if not secret_arn:
        return None
    return read_fingerprint_key(get_secretsmanager_client(), secret_arn)


def get_rotation_indexer() -> SecretValueHook | None:
    """The hook that keeps the index current on every KV rotation; None when the index is not configured.

    The key is fetched on the first rotation, not when the engine is built, so functions that never rotate a
    KV secret never call Secrets Manager.
    """
    settings = get_settings()
    if not settings.fingerprint_table_name or not settings.fingerprint_key_secret_arn:
        return None

    def index_new_version(ref: KvSecretRef, version: int, value: Mapping[str, Any]) -> None:
        from rescind.fingerprints.indexing import kv_rotation_indexer

        index = get_fingerprint_index()
        try:
            key = get_fingerprint_key()
        except RescindError as error:  # as for a failed write: the rotation goes on, `rescind index kv` rebuilds
            logger.warning(
                "fingerprint index not updated for %s/%s version %d: key unreadable: %s",
                ref.mount,
                ref.path,
                version,
                type(error).__name__,
            )
            return
        if index is not None and key is not None:
            kv_rotation_indexer(index, key)(ref, version, value)

    return index_new_version
