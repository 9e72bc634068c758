"""Fixtures for the fingerprint index tests: a KV v2 mount of their own on the session's OpenBao, and moto
with FingerprintTable created from template.yaml and the HMAC key in a Secrets Manager secret."""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import hvac
import pytest

from rescind.fingerprints.dynamodb import DynamoDbFingerprintIndex
from rescind.fingerprints.runtime import read_fingerprint_key
from rescind_local.aws import LOCAL_REGION
from rescind_local.template import create_table_from_template


@dataclass(frozen=True)
class IndexSetup:
    table_name: str
    key_secret_arn: str
    key: bytes
    index: DynamoDbFingerprintIndex


@pytest.fixture
def kv_mount(vault: hvac.Client, unique: str) -> Iterator[str]:
    """A KV v2 mount used by this test only, so indexing a whole mount sees only this test's secrets."""
    mount = f"kv-fp-{unique}"
    vault.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    yield mount
    vault.sys.disable_secrets_engine(mount)


@pytest.fixture
def fingerprints(aws: None, unique: str) -> IndexSetup:
    table = create_table_from_template(
        boto3.client("dynamodb", region_name=LOCAL_REGION), "FingerprintTable", f"fingerprints-{unique}"
    )
    key_text = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(64))
    secretsmanager = boto3.client("secretsmanager", region_name=LOCAL_REGION)
    arn = secretsmanager.create_secret(Name=f"fingerprint-key-{unique}", SecretString=key_text)["ARN"]
    key = read_fingerprint_key(secretsmanager, arn)
    return IndexSetup(
        table, arn, key, DynamoDbFingerprintIndex(table, boto3.client("dynamodb", region_name=LOCAL_REGION))
    )
