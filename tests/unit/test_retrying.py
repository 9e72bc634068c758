"""In-process retries (the sweeps, the CLI's direct mode): bounded, jittered, transient errors only."""

from __future__ import annotations

import pytest

from rescind.exceptions import ActionFailed, AwsThrottled, VaultUnavailable
from rescind.retrying import retry_transient


def test_a_transient_error_is_tried_again_with_jittered_backoff_and_the_last_one_raised() -> None:
    slept: list[float] = []
    tried: list[int] = []

    def attempt(number: int) -> str:
        tried.append(number)
        raise VaultUnavailable("sealed")

    with pytest.raises(VaultUnavailable):
        retry_transient(attempt, attempts=4, base_delay_seconds=0.5, sleep=slept.append)

    assert tried == [0, 1, 2, 3]
    assert len(slept) == 3  # between attempts, not after the last
    for number, pause in enumerate(slept):
        assert 0 <= pause <= 0.5 * 2**number  # full jitter: anywhere up to the exponential bound


def test_it_stops_at_the_first_answer() -> None:
    answers = iter([AwsThrottled("rate"), "revoked"])

    def attempt(number: int) -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert retry_transient(attempt, attempts=3, base_delay_seconds=0, sleep=lambda _: None) == "revoked"


def test_a_refusal_is_not_retried() -> None:
    tried: list[int] = []

    def attempt(number: int) -> str:
        tried.append(number)
        raise ActionFailed("access denied")

    with pytest.raises(ActionFailed):
        retry_transient(attempt, attempts=3, base_delay_seconds=0, sleep=lambda _: None)
    assert tried == [0]
