"""What every sweep leans on: a checkpoint store and a rate limit against Vault."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from rescind.schedules.types import SweepName


class CheckpointStore(Protocol):
    """Where a bounded sweep left off. `None` means start from the beginning."""

    def load(self, sweep: SweepName) -> str | None: ...

    def save(self, sweep: SweepName, cursor: str) -> None: ...

    def clear(self, sweep: SweepName) -> None: ...


class RateLimiter:
    """At most `per_second` calls per second, by sleeping: a sweep must never crowd out Vault's real traffic."""

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self._interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next = clock()

    def wait(self) -> None:
        now = self._clock()
        if now < self._next:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self._interval
