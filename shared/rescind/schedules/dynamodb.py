"""Where each sweep left off, in SweepStateTable: one item per sweep, pk `SWEEP#<name>`, sk `CHECKPOINT`.

This table is not the ledger: a checkpoint is overwritten as the sweep moves on. It is only ever put and read
(clearing puts an item without a cursor), so the functions need no UpdateItem or DeleteItem. A cursor is a
path or a reference's text form, never a value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rescind.aws.errors import aws_errors
from rescind.schedules.types import SweepName

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

CHECKPOINT_SK = "CHECKPOINT"
_MAX_CURSOR_LENGTH = 2048


def checkpoint_key(sweep: SweepName) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"SWEEP#{sweep}"}, "sk": {"S": CHECKPOINT_SK}}


class DynamoDbCheckpointStore:
    """CheckpointStore on DynamoDB. Reads are strongly consistent: a run resumes exactly where the last stopped."""

    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._table = table_name
        self._client = client

    def load(self, sweep: SweepName) -> str | None:
        with aws_errors(f"dynamodb get-item checkpoint of {sweep}"):
            answer = self._client.get_item(TableName=self._table, Key=checkpoint_key(sweep), ConsistentRead=True)
        cursor = answer.get("Item", {}).get("cursor", {}).get("S")
        return cursor or None

    def save(self, sweep: SweepName, cursor: str) -> None:
        if not cursor or len(cursor) > _MAX_CURSOR_LENGTH:
            raise ValueError(f"a checkpoint cursor is 1-{_MAX_CURSOR_LENGTH} characters")
        self._put(sweep, {"cursor": {"S": cursor}})

    def clear(self, sweep: SweepName) -> None:
        """The sweep finished a whole pass: the next run starts from the beginning."""
        self._put(sweep, {})

    def _put(self, sweep: SweepName, extra: dict[str, dict[str, str]]) -> None:
        item = {**checkpoint_key(sweep), "updated_at": {"S": datetime.now(UTC).isoformat()}, **extra}
        with aws_errors(f"dynamodb put-item checkpoint of {sweep}"):
            self._client.put_item(TableName=self._table, Item=item)
