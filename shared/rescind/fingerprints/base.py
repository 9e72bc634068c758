"""Keyed fingerprints of secret values, and the index that maps them to where the values live.

fingerprint = HMAC-SHA256(key, SHA-256(value as UTF-8)).hexdigest()

Hashing the SHA-256 rather than the value lets an alert that carries only `secret_sha256` resolve too, and
the key means a fingerprint read from the table cannot be tested against guesses by whoever reads it.
Nothing here keeps, logs or returns a value.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from rescind.exceptions import InvalidInput
from rescind.fingerprints.types import FingerprintEntry, FingerprintHit

# Values shorter than this are too guessable to be a secret (flags, ports, "true"), and a fingerprint of
# one would let a key holder confirm it by brute force; they are not indexed.
MIN_INDEXED_LENGTH = 8

_SHA256_HEX_RE = re.compile(r"^[0-9a-fA-F]{64}$")


def _sha256_digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


def fingerprint_of_digest(key: bytes, digest: bytes) -> str:
    """HMAC-SHA256 of a SHA-256 digest (32 bytes) under the index key."""
    if not key:
        raise InvalidInput("the fingerprint key is empty")
    return hmac.new(key, digest, hashlib.sha256).hexdigest()


def sha256_digest_of_hex(sha256_hex: str) -> bytes:
    """The 32 bytes of a SHA-256 given as 64 hex characters. The message never echoes the input."""
    if not isinstance(sha256_hex, str) or not _SHA256_HEX_RE.fullmatch(sha256_hex.strip()):
        raise InvalidInput("sha256 must be 64 hexadecimal characters")
    return bytes.fromhex(sha256_hex.strip())


def fingerprint_of_value(key: bytes, value: str) -> str:
    return fingerprint_of_digest(key, _sha256_digest(value))


def fingerprint_of_sha256(key: bytes, sha256_hex: str) -> str:
    """The same fingerprint as `fingerprint_of_value` for the value whose SHA-256 this is."""
    return fingerprint_of_digest(key, sha256_digest_of_hex(sha256_hex))


def field_text(value: Any) -> str:
    """A field's value as text: a string as is, anything else as canonical JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def is_indexable(text: str) -> bool:
    return len(text) >= MIN_INDEXED_LENGTH


def entries_for_version(
    key: bytes, mount: str, path: str, version: int, data: Mapping[str, Any]
) -> tuple[list[FingerprintEntry], int]:
    """The index entries of one KV v2 version, and how many fields were too short to index."""
    entries: list[FingerprintEntry] = []
    skipped = 0
    for field_name, raw in data.items():
        text = field_text(raw)
        if not is_indexable(text):
            skipped += 1
            continue
        hit = FingerprintHit(mount=mount, path=path, version=version, field=str(field_name))
        entries.append(FingerprintEntry(fingerprint=fingerprint_of_value(key, text), hit=hit))
    return entries, skipped


class FingerprintIndex(Protocol):
    """Where fingerprints are kept. Writes are idempotent: putting an entry again changes nothing."""

    def put(self, entries: Sequence[FingerprintEntry]) -> int:
        """Store the entries; returns how many distinct entries were written."""
        ...

    def lookup(self, fingerprint: str) -> list[FingerprintHit]:
        """Every place the fingerprint was indexed, possibly stale (callers confirm against Vault)."""
        ...
