"""`ReadAfter`: one read shared by the callers that ask at about the same time, each answered by a read begun after
it asked (a Revoke batch's certificate revokes share the CRL they are read back on, never one fetched before their
revoke answered)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from rescind.concurrent_reads import ReadAfter

pytestmark = pytest.mark.unit


class Gated:
    """A read whose answers are numbered in the order the reads began; each read waits for its gate."""

    def __init__(self) -> None:
        self.began: list[str] = []
        self.gates: list[threading.Event] = [threading.Event() for _ in range(5)]
        self.fail_at: int | None = None

    def __call__(self, key: str) -> int:
        number = len(self.began)
        self.began.append(key)
        assert self.gates[number].wait(5)
        if number == self.fail_at:
            raise RuntimeError(f"read {number} failed")
        return number


def _wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_callers_asking_while_a_read_is_in_flight_share_the_next_read_not_that_one() -> None:
    # Given a read of the CRL in flight for one caller
    read = Gated()
    shared = ReadAfter(read)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(shared, "pki")
        _wait_until(lambda: len(read.began) == 1)

        # When two more callers ask for it meanwhile (after their own change)
        asked = [threading.Event(), threading.Event()]

        def ask(index: int) -> int:
            asked[index].set()
            return shared("pki")

        later = [pool.submit(ask, index) for index in range(2)]
        _wait_until(lambda: all(event.is_set() for event in asked))
        time.sleep(0.1)  # both are inside, waiting
        read.gates[0].set()
        read.gates[1].set()

        # Then the first caller has the read it began; the two others one read begun after they asked, together
        assert first.result(5) == 0
        assert [future.result(5) for future in later] == [1, 1]
    assert read.began == ["pki", "pki"]


def test_a_caller_after_a_read_ended_gets_a_new_read_and_keys_are_apart() -> None:
    # Given reads that answer at once
    read = Gated()
    for gate in read.gates:
        gate.set()
    shared = ReadAfter(read)

    # When callers ask one after the other, on two mounts
    answers = [shared("pki"), shared("pki"), shared("pki-int")]

    # Then nothing is kept between them: each asked for a read of its own
    assert answers == [0, 1, 2]
    assert read.began == ["pki", "pki", "pki-int"]


def test_a_failed_read_is_raised_to_its_caller_and_the_waiting_callers_get_the_next() -> None:
    # Given a read in flight that will fail
    read = Gated()
    read.fail_at = 0
    shared = ReadAfter(read)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(shared, "pki")
        _wait_until(lambda: len(read.began) == 1)
        asked = threading.Event()

        def ask() -> int:
            asked.set()
            return shared("pki")

        waiting = pool.submit(ask)
        _wait_until(asked.is_set)
        time.sleep(0.1)

        # When it fails
        read.gates[0].set()
        read.gates[1].set()

        # Then its caller gets the error, and the caller waiting gets a read of its own
        with pytest.raises(RuntimeError, match="read 0 failed"):
            first.result(5)
        assert waiting.result(5) == 1
