"""When discovery may read the issuance index alone: the marker's rules (rescind.issuance.state.index_trust)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rescind.issuance.state import IndexMarker, index_trust

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
MAX_AGE = timedelta(hours=72)


@pytest.mark.parametrize(
    ("marker", "usable", "said"),
    [
        (None, False, "never back-filled"),
        (IndexMarker(), False, "never back-filled"),
        (IndexMarker(backfilled_at=NOW - DAY), True, "back-filled 2026-12-04T12:00:00+00:00"),
        # Older than allowed, unless a drift check confirmed it since
        (IndexMarker(backfilled_at=NOW - 4 * DAY), False, "longer ago than 72 hours"),
        (IndexMarker(backfilled_at=NOW - 4 * DAY, confirmed_at=NOW - DAY, drift_ratio=0.01), True, "drift 1.0%"),
        # Stale wins over everything until the next back-fill clears it
        (
            IndexMarker(backfilled_at=NOW - DAY, confirmed_at=NOW, stale_since=NOW - DAY / 2, stale_reason="drift 9%"),
            False,
            "stale since 2026-12-05T00:00:00+00:00: drift 9%",
        ),
    ],
)
def test_the_marker_decides_whether_the_index_is_read_alone(
    marker: IndexMarker | None, usable: bool, said: str
) -> None:
    trust = index_trust(marker, now=NOW, max_age=MAX_AGE)

    assert trust.usable is usable
    assert said in trust.why
