"""Records too large for one ledger item (a DynamoDB item is at most 400 KB): stored in chunks, read back whole.

A record whose body is longer than the chunk size is written as its chunks first, each an item of its own
(`<sk>#PART#<digest>#<n>`, record type `chunk`, the body's text in order), then its head under the record's own
key, whose body names the chunks: `{"chunked_body": {"digest": <sha256>, "count": n}}`. The head is written
last and conditionally, so a record exists only once all its chunks do; a retried write finds the same chunks
(the key carries the digest of the content) and writes nothing twice. Reading joins the chunks back and checks
the digest, so a record read back is byte for byte the record written, or an error naming what is missing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from rescind.exceptions import LedgerConflict

# Characters per chunk: at most 4 bytes each in UTF-8, so a chunk and its keys stay under 400 KB.
DEFAULT_CHUNK_CHARS = 90_000
MIN_CHUNK_CHARS = 200
MAX_CHUNK_CHARS = 95_000
CHUNK_RECORD_TYPE = "chunk"
_HEAD_MARK = '{"chunked_body":'
_PART = "#PART#"


@dataclass(frozen=True)
class StoredPart:
    """One item to write: a chunk, or the head that names them (or the whole record when it fits)."""

    sk: str
    record_type: str
    body: str


def split_record(sk: str, record_type: str, body: str, chunk_chars: int) -> tuple[list[StoredPart], StoredPart]:
    """(the chunks to write first, in order; the head to write last). No chunk when the body fits in one."""
    if len(body) <= chunk_chars:
        return [], StoredPart(sk, record_type, body)
    digest = hashlib.sha256(body.encode()).hexdigest()
    texts = [body[start : start + chunk_chars] for start in range(0, len(body), chunk_chars)]
    chunks = [
        StoredPart(f"{sk}{_PART}{digest[:16]}#{index:05d}", CHUNK_RECORD_TYPE, text) for index, text in enumerate(texts)
    ]
    head = json.dumps({"chunked_body": {"digest": digest, "count": len(texts)}}, separators=(",", ":"))
    return chunks, StoredPart(sk, record_type, head)


def join_records(records: Iterable[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """(sk, record type, body) as stored, in key order → (record type, whole body) for every record but chunks."""
    stored = list(records)
    texts: dict[str, str] = {sk: body for sk, record_type, body in stored if record_type == CHUNK_RECORD_TYPE}
    joined: list[tuple[str, str]] = []
    for sk, record_type, body in stored:
        if record_type == CHUNK_RECORD_TYPE:
            continue
        joined.append((record_type, _whole_body(sk, body, texts) if body.startswith(_HEAD_MARK) else body))
    return joined


def _whole_body(sk: str, head: str, texts: dict[str, str]) -> str:
    manifest = json.loads(head)["chunked_body"]
    digest, count = str(manifest["digest"]), int(manifest["count"])
    keys = [f"{sk}{_PART}{digest[:16]}#{index:05d}" for index in range(count)]
    missing = [key for key in keys if key not in texts]
    if missing:
        raise LedgerConflict(f"ledger record {sk}: {len(missing)} of its {count} chunks are missing ({missing[0]})")
    body = "".join(texts[key] for key in keys)
    if hashlib.sha256(body.encode()).hexdigest() != digest:
        raise LedgerConflict(f"ledger record {sk}: its chunks do not add up to the record written (digest differs)")
    return body


def is_chunked_head(body: str) -> bool:
    return body.startswith(_HEAD_MARK)
