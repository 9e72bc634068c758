"""The KV fingerprint index: keyed HMAC fingerprints of KV v2 values, so a leaked value (or its SHA-256)
resolves to the secrets that hold it without any value being stored.

Light to import (no hvac, no boto3): the Vault-side functions live in `indexing` and `locate`.
"""

from rescind.fingerprints.base import (
    MIN_INDEXED_LENGTH,
    FingerprintIndex,
    entries_for_version,
    fingerprint_of_sha256,
    fingerprint_of_value,
)
from rescind.fingerprints.types import FingerprintEntry, FingerprintHit, IndexProgress, IndexReport

__all__ = [
    "MIN_INDEXED_LENGTH",
    "FingerprintEntry",
    "FingerprintHit",
    "FingerprintIndex",
    "IndexProgress",
    "IndexReport",
    "entries_for_version",
    "fingerprint_of_sha256",
    "fingerprint_of_value",
]
