"""`read_together`: a few reads of different things at once, answered in order, the first failure in that order
raised (a leaked key's listing and its user's tags; a KV rotation's three read-backs)."""

from __future__ import annotations

import threading

import pytest

from rescind.concurrent_reads import read_together

pytestmark = pytest.mark.unit


def test_the_reads_are_in_flight_at_once_and_answered_in_order() -> None:
    # Each read waits until all three have begun: read one after another, the first would wait alone and fail
    meeting = threading.Barrier(3, timeout=5)

    def read(answer: object) -> object:
        meeting.wait()
        return answer

    assert read_together(lambda: read("listing"), lambda: read(2), lambda: read(None)) == ("listing", 2, None)


def test_the_first_failed_read_in_order_is_raised() -> None:
    def fails(message: str) -> str:
        raise LookupError(message)

    with pytest.raises(LookupError, match="first"):
        read_together(lambda: fails("first"), lambda: fails("second"))
    with pytest.raises(LookupError, match="second"):
        read_together(lambda: "fine", lambda: fails("second"), lambda: fails("third"))
