"""The ledger on DynamoDB: one partition per incident, conditional puts only.

Layout (the table is defined in template.yaml as LedgerTable):
  pk = INCIDENT#<id>   sk = A#INCIDENT                      the trigger and the plan
                       sk = B#ACTION#<action_id>#<attempt>  one per action attempt of a run
                       sk = B#KILL#<attempt>                one per kill-first attempt (rescind.ledger.proofs)
                       sk = C#CLOSURE#<closed_at>           one per finished run
                       sk = D#APPROVAL#<execution name>     who approved or denied, and why: one per run
  pk = CLAIM#<dedup key> sk = <number, 8 digits>            a leak response claimed for one credential
  pk = GITHUB_DELIVERY#<id>                                 a webhook delivery seen (replay protection)
  pk = GITHUB_BODY#<sha256 of the signed body>              the same, by what the signature covers
  gsi1 (by_time): gsi1pk = INCIDENTS, gsi1sk = <opened_at>#<id>, on incident records only.
A record larger than one item (a plan of thousands of actions, the closure of its run) is stored in chunks
under its own key (rescind.ledger.chunks): `<sk>#PART#<digest>#<n>`, then the head at `<sk>`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from rescind.aws.errors import aws_errors
from rescind.exceptions import AwsThrottled, InvalidInput, LedgerConflict
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

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TIME_INDEX = "by_time"
_INCIDENT_SK = "A#INCIDENT"
# The record and the kill-first attempts are read in one page of this many items when the incident holds no more up
# to the kill-first range: a leak's, before and after its run (rescind.ledger.base.read_record_and_kill_first).
SMALL_INCIDENT_ITEMS = 25
_AFTER_KILL_FIRST_SK = KILL_FIRST_SK_PREFIX[:-1] + chr(ord(KILL_FIRST_SK_PREFIX[-1]) + 1)  # "B#KILL$"
_INCIDENTS = "INCIDENTS"


_DEDUP_KEY = re.compile(r"[0-9a-f]{24,64}")


def _pk(incident_id: str) -> str:
    return f"INCIDENT#{incident_id}"


def _utc_text(moment: datetime) -> str:
    """Sortable text: every stored time is UTC, so string order is time order."""
    return moment.astimezone(UTC).isoformat()


def _attempt_item(record: ActionAttemptRecord) -> dict[str, str]:
    return {
        "pk": _pk(record.incident_id),
        "sk": attempt_sort_key(record),
        "record_type": "attempt",
        "outcome": str(record.result.outcome),
        "body": record.model_dump_json(),
    }


class DynamoDbLedger:
    """Raises the typed errors of rescind.aws.errors (AwsThrottled, AwsUnavailable, ActionFailed...), never
    botocore's."""

    def __init__(self, table_name: str, client: DynamoDBClient, chunk_chars: int = DEFAULT_CHUNK_CHARS) -> None:
        self._table = table_name
        self._client = client
        self._chunk_chars = chunk_chars

    def _put_once(self, item: dict[str, str]) -> bool:
        from rescind.aws.conditional_puts import put_once

        return put_once(self._client, self._table, item, what=f"ledger write to {self._table}")

    def _put_record(self, pk: str, sk: str, record_type: str, body: str, **attributes: str) -> bool:
        """Write one record once, in chunks when it is larger than one item: the chunks, then its head."""
        chunks, head = split_record(sk, record_type, body, self._chunk_chars)
        for chunk in chunks:  # the same content under the same key: a retry writes none twice
            self._put_once({"pk": pk, "sk": chunk.sk, "record_type": chunk.record_type, "body": chunk.body})
        return self._put_once({"pk": pk, "sk": sk, "record_type": record_type, **attributes, "body": head.body})

    def open_incident(self, record: IncidentRecord) -> bool:
        written = self._put_record(
            _pk(record.incident_id),
            _INCIDENT_SK,
            "incident",
            record.model_dump_json(),
            gsi1pk=_INCIDENTS,
            gsi1sk=f"{_utc_text(record.opened_at)}#{record.incident_id}",
        )
        if not written:
            existing = self.read_incident_record(record.incident_id)
            if existing is not None and existing.plan != record.plan:
                raise LedgerConflict(f"incident {record.incident_id} already exists with a different plan")
        return written

    def record_attempt(self, record: ActionAttemptRecord) -> bool:
        return self._put_once(_attempt_item(record))

    def record_attempts(self, records: Sequence[ActionAttemptRecord]) -> list[bool]:
        """Many attempts, each still written once: conditional puts in TransactWriteItems, 100 a call
        (rescind.aws.conditional_puts: an attempt recorded before is never overwritten, and is False)."""
        from rescind.aws.conditional_puts import put_each_once

        items = [_attempt_item(record) for record in records]
        return put_each_once(self._client, self._table, items, what=f"ledger write to {self._table}")

    def close_incident(self, closure: IncidentClosure) -> bool:
        return self._put_record(
            _pk(closure.incident_id),
            f"C#CLOSURE#{_utc_text(closure.closed_at)}",
            "closure",
            closure.model_dump_json(),
            status=str(closure.status),
        )

    def record_approval(self, decision: ApprovalDecision) -> bool:
        """One answer per execution: keyed by its name, so a second answer (even a second later) is refused."""
        return self._put_once(
            {
                "pk": _pk(decision.incident_id),
                "sk": f"D#APPROVAL#{decision.execution_arn.rsplit(':', 1)[-1]}",
                "record_type": "approval",
                "verdict": str(decision.verdict),
                "body": decision.model_dump_json(),
            }
        )

    def claim_response(self, dedup_key: str, now: datetime, window: timedelta) -> ResponseClaim:
        """Claims are numbered per credential: the newest decides. A claim inside the window is a duplicate;
        after it, the next number is claimed with a conditional put, so two racing alerts start one response.
        A credential's first claim is put at once, read nothing before it (a leak's first alert, which waits on it):
        only when that number is taken is the newest claim read."""
        if not _DEDUP_KEY.fullmatch(dedup_key):
            raise InvalidInput("deduplication key is malformed")
        pk = f"CLAIM#{dedup_key}"
        number = 0
        for _ in range(3):  # lost races re-read the winner
            incident_id = f"leak-{dedup_key[:24]}-{number + 1}"
            written = self._put_once(
                {
                    "pk": pk,
                    "sk": f"{number + 1:08d}",
                    "record_type": "claim",
                    "incident_id": incident_id,
                    "claimed_at": _utc_text(now),
                }
            )
            if written:
                return ResponseClaim(incident_id=incident_id, is_new=True, claimed_at=now)
            newest = self._query(
                max_items=1,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": pk}},
                ScanIndexForward=False,
                Limit=1,
                ConsistentRead=True,
            )
            if not newest:  # taken, then gone: never in an append-only table
                raise LedgerConflict(f"claim {dedup_key}: claim {number + 1} is taken but cannot be read; retry")
            number = int(newest[0]["sk"]["S"])
            claimed_at = datetime.fromisoformat(newest[0]["claimed_at"]["S"])
            if now - claimed_at < window:
                return ResponseClaim(incident_id=newest[0]["incident_id"]["S"], is_new=False, claimed_at=claimed_at)
        raise AwsThrottled("ledger claim: lost three races in a row; retry")

    def _query(self, max_items: int | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        paginator = self._client.get_paginator("query")
        with aws_errors(f"ledger read of {self._table}"):
            for page in paginator.paginate(TableName=self._table, **kwargs):
                items.extend(page.get("Items", []))
                if max_items is not None and len(items) >= max_items:
                    return items[:max_items]
        return items

    def read_incident(self, incident_id: str) -> IncidentView:
        items = self._query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": _pk(incident_id)}},
            ConsistentRead=True,
        )
        # Sorted by sk: the incident, attempts, closures oldest first, approvals; chunks joined to their records.
        stored = ((item["sk"]["S"], item["record_type"]["S"], item["body"]["S"]) for item in items)
        return incident_view_from_records(join_records(stored))

    def _read_key_range(self, incident_id: str, sk_prefix: str) -> IncidentView:
        """The records of one incident whose sort key begins with `sk_prefix`, and their chunks: one Query, paged."""
        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": _pk(incident_id)}, ":prefix": {"S": sk_prefix}},
            ConsistentRead=True,
        )
        stored = ((item["sk"]["S"], item["record_type"]["S"], item["body"]["S"]) for item in items)
        return incident_view_from_records(join_records(stored))

    def read_incident_record(self, incident_id: str) -> IncidentRecord | None:
        # the record and its chunks (`A#INCIDENT#PART#...`), not the attempts after them
        return self._read_key_range(incident_id, _INCIDENT_SK).incident

    def read_kill_first_attempts(self, incident_id: str) -> tuple[ActionAttemptRecord, ...]:
        return self._read_key_range(incident_id, KILL_FIRST_SK_PREFIX).attempts

    def read_record_and_kill_first(self, incident_id: str) -> IncidentView:
        """One Query, newest sort key first, up to the end of the kill-first range: the kill-first attempts, then
        the run's (`B#ACTION#`, skipped here), then the record. A leak's incident (its record, a kill or two, a
        few attempts of its run) ends within the first SMALL_INCIDENT_ITEMS: one read. A larger one (a run's
        thousands of attempts) stops there: its kill-first attempts are in that page (they come first), and the
        record's key range is read on its own, two reads as before, never the rest of the run's attempts."""
        pk = _pk(incident_id)
        with aws_errors(f"ledger read of {self._table}"):
            page = self._client.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND sk < :after_kills",
                ExpressionAttributeValues={":pk": {"S": pk}, ":after_kills": {"S": _AFTER_KILL_FIRST_SK}},
                ScanIndexForward=False,
                ConsistentRead=True,
                Limit=SMALL_INCIDENT_ITEMS,
            )
        items = page.get("Items", [])
        kept = [item for item in items if item["sk"]["S"].startswith((_INCIDENT_SK, KILL_FIRST_SK_PREFIX))]
        stored = [(item["sk"]["S"], item["record_type"]["S"], item["body"]["S"]) for item in reversed(kept)]
        view = incident_view_from_records(join_records(stored))
        stopped_at = page.get("LastEvaluatedKey", {}).get("sk", {}).get("S")
        if stopped_at is None:
            return IncidentView(incident=view.incident, attempts=view.attempts, closure=None)
        attempts = view.attempts
        if stopped_at >= KILL_FIRST_SK_PREFIX:  # more kill-first attempts than one page: read them all
            attempts = self.read_kill_first_attempts(incident_id)
        return IncidentView(incident=self.read_incident_record(incident_id), attempts=attempts, closure=None)

    def list_incidents(self, since: datetime | None = None, limit: int = 100) -> list[IncidentRecord]:
        condition = "gsi1pk = :all"
        values: dict[str, Any] = {":all": {"S": _INCIDENTS}}
        if since is not None:
            condition += " AND gsi1sk >= :since"
            values[":since"] = {"S": _utc_text(since)}
        items = self._query(
            max_items=limit,
            IndexName=TIME_INDEX,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
        )
        records = []
        for item in items:
            body = item["body"]["S"]
            if is_chunked_head(body):  # a plan too large for one item: its chunks are in its partition
                whole = self.read_incident_record(item["pk"]["S"].removeprefix("INCIDENT#"))
                if whole is not None:
                    records.append(whole)
            else:
                records.append(IncidentRecord.model_validate_json(body))
        return records
