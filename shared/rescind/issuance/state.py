"""Whether the issuance index may be read alone: its back-fill marker, its drift, and the back-fill's checkpoint.

The index holds what the audit log showed since it was shipped; `rescind index vault` back-fills what was issued
before. Only once that back-fill has completed can discovery read the index instead of scanning, and only while the
drift schedule keeps finding it in step with the live server:

- never back-filled: the live scan, with the index adding what it knows;
- a drift check found more drift than the threshold: stale until the next complete back-fill;
- neither back-filled nor confirmed by a drift check for longer than the allowed age: stale too;
- otherwise trusted.

Stored in the index table itself, under `pk = STATE#index` (no workload partition starts with `STATE#`):
`sk = MARKER` (the marker and the last drift check) and `sk = CHECKPOINT` (where a back-fill stopped).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from rescind.aws.errors import aws_errors
from rescind.deferred_builds import DEFER_MODEL_BUILDS

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

STATE_PK = "STATE#index"
MARKER_SK = "MARKER"
CHECKPOINT_SK = "CHECKPOINT"
_MAX_CURSOR_LENGTH = 2048


class IndexMarker(BaseModel):
    """What is known of the index's completeness. Times are UTC; a ratio is drifted / sampled."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    backfilled_at: AwareDatetime | None = None
    stale_since: AwareDatetime | None = None
    stale_reason: Annotated[str, Field(max_length=500)] | None = None
    drift_checked_at: AwareDatetime | None = None
    drift_ratio: Annotated[float, Field(ge=0, le=1)] | None = None
    # The last drift check at or below the threshold: it confirms the back-fill still holds.
    confirmed_at: AwareDatetime | None = None


class IndexTrust(BaseModel):
    """Whether discovery may read the index alone, and why (one sentence for the plan's reason)."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    usable: bool
    why: str


def index_trust(marker: IndexMarker | None, *, now: datetime, max_age: timedelta) -> IndexTrust:
    """Pure: the rules of the module docstring."""
    if marker is None or marker.backfilled_at is None:
        return IndexTrust(usable=False, why="the issuance index was never back-filled (`rescind index vault`)")
    if marker.stale_since is not None:
        reason = f": {marker.stale_reason}" if marker.stale_reason else ""
        return IndexTrust(
            usable=False,
            why=f"the issuance index is stale since {marker.stale_since.isoformat(timespec='seconds')}{reason}",
        )
    last = max(moment for moment in (marker.backfilled_at, marker.confirmed_at) if moment is not None)
    if now - last > max_age:
        hours = max_age.total_seconds() / 3600
        return IndexTrust(
            usable=False,
            why=f"the issuance index was last back-filled or confirmed by a drift check at "
            f"{last.isoformat(timespec='seconds')}, longer ago than {hours:g} hours",
        )
    drift = "" if marker.drift_ratio is None else f", drift {marker.drift_ratio:.1%} at the last check"
    return IndexTrust(
        usable=True, why=f"the issuance index, back-filled {marker.backfilled_at.isoformat(timespec='seconds')}{drift}"
    )


class IndexStateStore(Protocol):
    """The marker and the back-fill checkpoint. Writes are puts of the whole item (idempotent)."""

    def read_marker(self) -> IndexMarker | None: ...

    def mark_backfilled(self, at: datetime) -> IndexMarker:
        """A complete back-fill: the index is trusted again (a stale mark is cleared)."""
        ...

    def record_drift(self, *, ratio: float, stale: bool, reason: str, at: datetime) -> IndexMarker:
        """A drift check: above the threshold marks the index stale (until a back-fill), else confirms it."""
        ...

    def load_checkpoint(self) -> str | None: ...

    def save_checkpoint(self, cursor: str) -> None: ...

    def clear_checkpoint(self) -> None: ...


class DynamoDbIndexState:
    """IndexStateStore in the issuance table (IssuanceTable). Reads are strongly consistent."""

    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._table = table_name
        self._client = client

    @property
    def table_name(self) -> str:
        return self._table

    def read_marker(self) -> IndexMarker | None:
        item = self._get(MARKER_SK)
        if item is None or "marker" not in item:
            return None
        return IndexMarker.model_validate_json(item["marker"]["S"])

    def mark_backfilled(self, at: datetime) -> IndexMarker:
        before = self.read_marker() or IndexMarker()
        marker = before.model_copy(update={"backfilled_at": at, "stale_since": None, "stale_reason": None})
        self._put(MARKER_SK, {"marker": {"S": marker.model_dump_json()}})
        return marker

    def record_drift(self, *, ratio: float, stale: bool, reason: str, at: datetime) -> IndexMarker:
        before = self.read_marker() or IndexMarker()
        update: dict[str, Any] = {"drift_checked_at": at, "drift_ratio": ratio}
        if stale and before.stale_since is None:
            update |= {"stale_since": at, "stale_reason": reason[:500]}
        elif not stale and before.stale_since is None:
            update["confirmed_at"] = at
        marker = before.model_copy(update=update)
        self._put(MARKER_SK, {"marker": {"S": marker.model_dump_json()}})
        return marker

    def load_checkpoint(self) -> str | None:
        item = self._get(CHECKPOINT_SK)
        cursor = (item or {}).get("cursor", {}).get("S")
        return str(cursor) if cursor else None

    def save_checkpoint(self, cursor: str) -> None:
        if not cursor or len(cursor) > _MAX_CURSOR_LENGTH:
            raise ValueError(f"a back-fill checkpoint is 1-{_MAX_CURSOR_LENGTH} characters")
        self._put(CHECKPOINT_SK, {"cursor": {"S": cursor}})

    def clear_checkpoint(self) -> None:
        self._put(CHECKPOINT_SK, {})

    def _get(self, sk: str) -> dict[str, Any] | None:
        with aws_errors(f"read the issuance index's {sk.lower()} from {self._table}"):
            answer = self._client.get_item(
                TableName=self._table, Key={"pk": {"S": STATE_PK}, "sk": {"S": sk}}, ConsistentRead=True
            )
        return answer.get("Item")

    def _put(self, sk: str, extra: dict[str, Any]) -> None:
        item = {"pk": {"S": STATE_PK}, "sk": {"S": sk}, **extra}
        with aws_errors(f"write the issuance index's {sk.lower()} to {self._table}"):
            self._client.put_item(TableName=self._table, Item=item)
