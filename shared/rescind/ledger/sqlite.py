"""A local ledger in SQLite, for runs made from a laptop with no stack (the CLI's direct mode).

The same records as the DynamoDB ledger, under the same keys, append-only in three ways: the code has no
statement that changes or removes a row; triggers make SQLite refuse both; and every row carries the SHA-256 of
its content and of the row before it, so a row changed or removed outside Rescind breaks the chain
(`verify_chain`). `rescind ledger push` copies the rows into a stack's ledger later, keys and all, so a row
pushed twice is written once.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from rescind.exceptions import InvalidInput, LedgerConflict
from rescind.ledger.base import Ledger
from rescind.ledger.chunks import DEFAULT_CHUNK_CHARS, is_chunked_head, join_records, split_record
from rescind.ledger.proofs import KILL_FIRST_SK_PREFIX, attempt_sort_key
from rescind.ledger.types import (
    ActionAttemptRecord,
    ApprovalDecision,
    IncidentClosure,
    IncidentRecord,
    IncidentView,
    ResponseClaim,
    incident_view_from_records,
)

_GENESIS = "0" * 64
_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    pk TEXT NOT NULL,
    sk TEXT NOT NULL,
    record_type TEXT NOT NULL,
    sort_key TEXT NOT NULL,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    UNIQUE (pk, sk)
);
CREATE TRIGGER IF NOT EXISTS records_are_never_updated BEFORE UPDATE ON records
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS records_are_never_deleted BEFORE DELETE ON records
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
"""


def default_ledger_path() -> Path:
    """`$XDG_STATE_HOME/rescind/ledger.sqlite3`, or `~/.local/state/rescind/ledger.sqlite3`."""
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "rescind" / "ledger.sqlite3"


def record_hash(prev_hash: str, pk: str, sk: str, record_type: str, body: str) -> str:
    content = "\x1f".join((prev_hash, pk, sk, record_type, body))
    return hashlib.sha256(content.encode()).hexdigest()


@dataclass(frozen=True)
class LedgerRow:
    """One stored record, as `rescind ledger push` copies it."""

    seq: int
    pk: str
    sk: str
    record_type: str
    sort_key: str
    body: str


class SqliteLedger:
    """The Ledger protocol on one SQLite file; safe for one process at a time per write (BEGIN IMMEDIATE)."""

    def __init__(self, path: Path, chunk_chars: int = DEFAULT_CHUNK_CHARS) -> None:
        self.path = path
        self._chunk_chars = chunk_chars
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._connection() as connection:
            connection.executescript(_SCHEMA)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            yield connection
        finally:
            connection.close()

    def _append(self, pk: str, sk: str, record_type: str, sort_key: str, body: str) -> bool:
        """Insert one row chained to the last; False when (pk, sk) is already there."""
        with self._connection() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                if connection.execute("SELECT 1 FROM records WHERE pk = ? AND sk = ?", (pk, sk)).fetchone():
                    connection.execute("ROLLBACK")
                    return False
                last = connection.execute("SELECT hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
                prev_hash = last[0] if last else _GENESIS
                connection.execute(
                    "INSERT INTO records (pk, sk, record_type, sort_key, body, prev_hash, hash) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (pk, sk, record_type, sort_key, body, prev_hash, record_hash(prev_hash, pk, sk, record_type, body)),
                )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return True

    def _append_record(self, pk: str, sk: str, record_type: str, sort_key: str, body: str) -> bool:
        """One record, in chunks as the stack's ledger stores it when it is larger than one DynamoDB item."""
        chunks, head = split_record(sk, record_type, body, self._chunk_chars)
        for chunk in chunks:
            self._append(pk, chunk.sk, chunk.record_type, sort_key, chunk.body)
        return self._append(pk, sk, record_type, sort_key, head.body)

    # --- the Ledger protocol ------------------------------------------------------------------------------

    def open_incident(self, record: IncidentRecord) -> bool:
        pk = f"INCIDENT#{record.incident_id}"
        body = record.model_dump_json()
        written = self._append_record(pk, "A#INCIDENT", "incident", record.opened_at.isoformat(), body)
        if not written:
            existing = self.read_incident_record(record.incident_id)
            if existing is not None and existing.plan != record.plan:
                raise LedgerConflict(f"incident {record.incident_id} already exists with a different plan")
        return written

    def record_attempt(self, record: ActionAttemptRecord) -> bool:
        started = record.result.started_at.isoformat()
        pk, sk = f"INCIDENT#{record.incident_id}", attempt_sort_key(record)
        return self._append(pk, sk, "attempt", started, record.model_dump_json())

    def record_attempts(self, records: Sequence[ActionAttemptRecord]) -> list[bool]:
        """One by one: each row is chained to the one before it, in its own transaction."""
        return [self.record_attempt(record) for record in records]

    def close_incident(self, closure: IncidentClosure) -> bool:
        closed = closure.closed_at.isoformat()
        pk = f"INCIDENT#{closure.incident_id}"
        return self._append_record(pk, f"C#CLOSURE#{closed}", "closure", closed, closure.model_dump_json())

    def record_approval(self, decision: ApprovalDecision) -> bool:
        """One answer per run, keyed by its execution name as in the stack's ledger."""
        pk, name = f"INCIDENT#{decision.incident_id}", decision.execution_arn.rsplit(":", 1)[-1]
        decided = decision.decided_at.isoformat()
        return self._append(pk, f"D#APPROVAL#{name}", "approval", decided, decision.model_dump_json())

    def claim_response(self, dedup_key: str, now: datetime, window: timedelta) -> ResponseClaim:
        if not dedup_key or len(dedup_key) > 200:
            raise InvalidInput("deduplication key is malformed")
        pk = f"CLAIM#{dedup_key}"
        with self._connection() as connection:
            newest = connection.execute(
                "SELECT sk, sort_key, body FROM records WHERE pk = ? ORDER BY sk DESC LIMIT 1", (pk,)
            ).fetchone()
        number = 0
        if newest:
            number = int(newest[0])
            claimed_at = datetime.fromisoformat(newest[1])
            if now - claimed_at < window:
                return ResponseClaim(incident_id=newest[2], is_new=False, claimed_at=claimed_at)
        incident_id = f"leak-{dedup_key[:24]}-{number + 1}"
        if not self._append(pk, f"{number + 1:08d}", "claim", now.isoformat(), incident_id):
            raise LedgerConflict(f"claim {dedup_key}: another process claimed it at the same moment; retry")
        return ResponseClaim(incident_id=incident_id, is_new=True, claimed_at=now)

    def read_incident(self, incident_id: str) -> IncidentView:
        with self._connection() as connection:
            rows = connection.execute(
                "SELECT sk, record_type, body FROM records WHERE pk = ? ORDER BY sk", (f"INCIDENT#{incident_id}",)
            ).fetchall()
        return incident_view_from_records(join_records(rows))

    def _read_key_range(self, incident_id: str, sk_prefix: str) -> IncidentView:
        """The records of one incident whose sort key begins with `sk_prefix`, and their chunks, as DynamoDB's
        begins_with reads them (substr, not LIKE: a key may hold `_` or `%`). Only those rows' bodies are parsed."""
        with self._connection() as connection:
            rows = connection.execute(
                "SELECT sk, record_type, body FROM records WHERE pk = ? AND substr(sk, 1, ?) = ? ORDER BY sk",
                (f"INCIDENT#{incident_id}", len(sk_prefix), sk_prefix),
            ).fetchall()
        return incident_view_from_records(join_records(rows))

    def read_incident_record(self, incident_id: str) -> IncidentRecord | None:
        # the record and its chunks (`A#INCIDENT#PART#...`) only
        return self._read_key_range(incident_id, "A#INCIDENT").incident

    def read_kill_first_attempts(self, incident_id: str) -> tuple[ActionAttemptRecord, ...]:
        return self._read_key_range(incident_id, KILL_FIRST_SK_PREFIX).attempts

    def read_record_and_kill_first(self, incident_id: str) -> IncidentView:
        # a local file: two reads cost nothing worth saving
        return IncidentView(
            incident=self.read_incident_record(incident_id),
            attempts=self.read_kill_first_attempts(incident_id),
            closure=None,
        )

    def list_incidents(self, since: datetime | None = None, limit: int = 100) -> list[IncidentRecord]:
        query = "SELECT pk, body FROM records WHERE record_type = 'incident'"
        parameters: tuple[str | int, ...] = ()
        if since is not None:
            query += " AND sort_key >= ?"
            parameters = (since.isoformat(),)
        with self._connection() as connection:
            rows = connection.execute(f"{query} ORDER BY sort_key DESC LIMIT ?", (*parameters, limit)).fetchall()
        return [self._whole_incident(pk, body) for pk, body in rows]

    def _whole_incident(self, pk: str, body: str) -> IncidentRecord:
        whole = self.read_incident_record(pk.removeprefix("INCIDENT#")) if is_chunked_head(body) else None
        return whole if whole is not None else IncidentRecord.model_validate_json(body)

    # --- the local file's own -----------------------------------------------------------------------------

    def rows(self) -> list[LedgerRow]:
        with self._connection() as connection:
            rows = connection.execute(
                "SELECT seq, pk, sk, record_type, sort_key, body FROM records ORDER BY seq"
            ).fetchall()
        return [LedgerRow(*row) for row in rows]

    def verify_chain(self) -> list[str]:
        """Every break in the hash chain, in order: a row changed, removed or inserted outside Rescind."""
        problems: list[str] = []
        expected_prev = _GENESIS
        with self._connection() as connection:
            rows = connection.execute(
                "SELECT seq, pk, sk, record_type, body, prev_hash, hash FROM records ORDER BY seq"
            ).fetchall()
        for seq, pk, sk, record_type, body, prev_hash, stored in rows:
            if prev_hash != expected_prev:
                problems.append(f"row {seq} ({pk} {sk}) does not follow the row before it: one was removed or changed")
            if record_hash(prev_hash, pk, sk, record_type, body) != stored:
                problems.append(f"row {seq} ({pk} {sk}) was changed after it was written")
            expected_prev = stored
        return problems


@dataclass(frozen=True)
class PushReport:
    """What `rescind ledger push` did: records written to the stack's ledger, and those already there."""

    written: int
    already_there: int
    skipped_claims: int


def push_local_ledger(local: SqliteLedger, remote: Ledger) -> PushReport:
    """Copy every incident record of the local ledger into another ledger, oldest first, under the same keys.

    Each write is the remote's own conditional put, so a record pushed twice is written once. Claims (the local
    leak de-duplication) stay local: the remote keeps its own. The chain is checked first: a local ledger changed
    outside Rescind is not copied anywhere.
    """
    broken = local.verify_chain()
    if broken:
        raise LedgerConflict(f"the local ledger {local.path} was changed outside Rescind: {broken[0]}")
    written = already = claims = 0
    # Chunks are joined to their records here; the remote chunks what it must under its own item limit.
    whole = join_records((row.sk, row.record_type, row.body) for row in local.rows())
    for record_type, body in whole:
        if record_type == "incident":
            done = remote.open_incident(IncidentRecord.model_validate_json(body))
        elif record_type == "attempt":
            done = remote.record_attempt(ActionAttemptRecord.model_validate_json(body))
        elif record_type == "closure":
            done = remote.close_incident(IncidentClosure.model_validate_json(body))
        elif record_type == "approval":
            done = remote.record_approval(ApprovalDecision.model_validate_json(body))
        else:
            claims += 1
            continue
        written, already = (written + 1, already) if done else (written, already + 1)
    return PushReport(written=written, already_there=already, skipped_claims=claims)
