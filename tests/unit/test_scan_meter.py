"""Direct mode's pacing and scan count (`rescind_cli.direct.ScanMeter`), with an injected clock: pure."""

from __future__ import annotations

from typing import Any

import pytest

from rescind.exceptions import InvalidInput
from rescind_cli.direct import ScanMeter

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


class Adapter:
    """Stands in for hvac's adapter only as the thing whose `request` the meter wraps; answers like JSONAdapter."""

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if method == "LIST":
            return {"data": {"keys": [f"accessor-{n}" for n in range(self.tokens)]}}
        return {"data": {}}


class Client:
    def __init__(self, tokens: int) -> None:
        self.adapter = Adapter(tokens)


def test_requests_are_paced_to_the_rate_and_the_scan_is_counted() -> None:
    clock = FakeClock()
    seen: list[tuple[int, int | None]] = []
    meter = ScanMeter(10.0, lambda done, total: seen.append((done, total)), clock=clock, sleep=clock.sleep)
    client: Any = meter.attach(Client(tokens=3))  # type: ignore[arg-type]

    client.adapter.request("LIST", "/v1/auth/token/accessors")
    for _ in range(3):
        client.adapter.request("POST", "/v1/auth/token/lookup-accessor")

    assert meter.requests == 4
    assert clock.slept == [0.1, 0.1, 0.1]  # 10 per second: each request waits its turn, the first none
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_without_a_rate_nothing_waits() -> None:
    clock = FakeClock()
    meter = ScanMeter(None, clock=clock, sleep=clock.sleep)
    client: Any = meter.attach(Client(tokens=1))  # type: ignore[arg-type]
    for _ in range(5):
        client.adapter.request("POST", "/v1/auth/token/lookup-accessor")
    assert clock.slept == []
    assert meter.tokens_looked_up == 5


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_a_rate_that_is_not_positive_is_refused(rate: float) -> None:
    with pytest.raises(InvalidInput, match="more than 0"):
        ScanMeter(rate)
