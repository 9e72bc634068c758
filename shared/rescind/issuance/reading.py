"""Reading the whole issuance table: every record (the inventory report), a random sample (the drift check), and the
records of one reference. Reads only; the layout is `rescind.issuance.dynamodb`'s."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

from rescind.aws.errors import aws_errors
from rescind.issuance.dynamodb import DynamoDbIssuanceIndex
from rescind.issuance.types import IssuanceRecord

WORKLOAD_PREFIX = "WORKLOAD#"
# A sample reads segments of the table in a random order until it has this many times the records it needs.
_SAMPLE_SEGMENTS = 16
_SAMPLE_POOL_FACTOR = 4


class IssuanceTableReader(DynamoDbIssuanceIndex):
    """The index, with the reads that walk the table rather than one workload's partition."""

    def records(self) -> Iterator[tuple[str, IssuanceRecord]]:
        """Every record with its holder (`<spiffe id>`, `entity:<id>`, `token:<accessor>` or `unattributed`)."""
        for item in self._scan_records():
            yield item["pk"]["S"].removeprefix(WORKLOAD_PREFIX), self._record(item)

    def sample(self, count: int, rng: random.Random) -> list[IssuanceRecord]:
        """About `count` records drawn at random (segments of the table in a random order, then a draw)."""
        pool: list[dict[str, Any]] = []
        for segment in rng.sample(range(_SAMPLE_SEGMENTS), _SAMPLE_SEGMENTS):
            pool.extend(self._scan_records(segment=segment))
            if len(pool) >= count * _SAMPLE_POOL_FACTOR:
                break
        drawn = rng.sample(pool, min(count, len(pool)))
        return [self._record(item) for item in drawn]

    def by_reference(self, reference: str) -> list[IssuanceRecord]:
        """Every record of the reference (one per holder it was recorded under)."""
        return self._follow(f"REF#{reference}")

    def by_references(self, references: Sequence[str]) -> dict[str, list[IssuanceRecord]]:
        """`by_reference` of each, the records of all of them read in pages."""
        followed = self._follow_many([f"REF#{reference}" for reference in dict.fromkeys(references)])
        return {pk.removeprefix("REF#"): records for pk, records in followed.items()}

    def _scan_records(self, *, segment: int | None = None) -> Iterator[dict[str, Any]]:
        options: dict[str, Any] = {
            "TableName": self.table_name,
            "FilterExpression": "begins_with(pk, :workload)",
            "ExpressionAttributeValues": {":workload": {"S": WORKLOAD_PREFIX}},
        }
        if segment is not None:
            options |= {"Segment": segment, "TotalSegments": _SAMPLE_SEGMENTS}
        paginator = self._client.get_paginator("scan")
        with aws_errors(f"scan {self.table_name}"):
            for page in paginator.paginate(**options):
                yield from page.get("Items", [])
