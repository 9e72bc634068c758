"""Resolving a leaked KV value (or only its SHA-256) to the KV v2 secrets that hold it.

The index says where a fingerprint was seen; each hit is then confirmed against real Vault by reading that
version and comparing SHA-256 digests in constant time. A hit whose version is gone, or whose field no longer
holds the value, is stale and dropped. The value is compared in memory only.
"""

from __future__ import annotations

import hashlib
import hmac

import hvac

from rescind.exceptions import InvalidInput
from rescind.fingerprints.base import FingerprintIndex, field_text, fingerprint_of_digest, sha256_digest_of_hex
from rescind.fingerprints.types import FingerprintHit
from rescind.models import KvSecretRef
from rescind.vault.kv_store import read_secret_version


def _leaked_digest(value: str | None, sha256: str | None) -> bytes:
    if value is None and sha256 is None:
        raise InvalidInput("give the leaked value or its sha256")
    if value is not None and sha256 is not None:
        raise InvalidInput("give the leaked value or its sha256, not both")
    if value is not None:
        if not value:
            raise InvalidInput("the leaked value is empty")
        return hashlib.sha256(value.encode("utf-8")).digest()
    assert sha256 is not None
    return sha256_digest_of_hex(sha256)


def confirmed_kv_hits(
    vault: hvac.Client, index: FingerprintIndex, key: bytes, *, value: str | None = None, sha256: str | None = None
) -> list[FingerprintHit]:
    """The index's hits for the value that Vault confirms still hold it, sorted by mount, path, version."""
    digest = _leaked_digest(value, sha256)
    hits = index.lookup(fingerprint_of_digest(key, digest))
    versions: dict[tuple[str, str, int], dict[str, object] | None] = {}
    confirmed: list[FingerprintHit] = []
    for hit in hits:
        where = (hit.mount, hit.path, hit.version)
        if where not in versions:
            try:
                ref = hit.ref
            except ValueError:  # not a valid reference any more: cannot be read, so not confirmed
                versions[where] = None
            else:
                # A stale hit on a mount removed since is not confirmed either.
                versions[where] = read_secret_version(vault, ref, hit.version, missing_mount_is_absent=True)
        data = versions[where]
        if data is None or hit.field not in data:
            continue
        held = hashlib.sha256(field_text(data[hit.field]).encode("utf-8")).digest()
        if hmac.compare_digest(held, digest):
            confirmed.append(hit)
    return sorted(set(confirmed), key=lambda hit: (hit.mount, hit.path, hit.version, hit.field))


def locate_kv_secrets_by_value(
    vault: hvac.Client, index: FingerprintIndex, key: bytes, *, value: str | None = None, sha256: str | None = None
) -> list[KvSecretRef]:
    """Each KV v2 secret (mount + path) that Vault confirms holds the value in a live version, once."""
    refs: dict[tuple[str, str], KvSecretRef] = {}
    for hit in confirmed_kv_hits(vault, index, key, value=value, sha256=sha256):
        refs.setdefault((hit.mount, hit.path), hit.ref)
    return list(refs.values())
