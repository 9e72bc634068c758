"""What every sweep leans on: a checkpoint store and a rate limit against Vault."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Protocol

from rescind.schedules.policy import SchedulePolicy
from rescind.schedules.types import Change, SweepName, SweepReport, SweepRequest, sweep_run_id


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


class SweepProgress:
    """One run's walk over a sweep's candidates: resume after the checkpoint, stop at the bound, report.

    Candidates are named by sortable keys (a path or a reference's text form) and walked in sorted order, so
    the checkpoint is simply the last key done. A dry run reads the checkpoint but never writes it.
    """

    def __init__(
        self,
        sweep: SweepName,
        request: SweepRequest,
        *,
        policy: SchedulePolicy,
        checkpoints: CheckpointStore,
        now: datetime,
    ) -> None:
        self.sweep = sweep
        self.dry_run = request.dry_run
        self.started_at = now
        self.run_id = sweep_run_id(sweep, now)
        self.budget = min(request.max_actions or policy.max_actions_per_run, policy.max_actions_per_run)
        self.start_after = checkpoints.load(sweep) if request.resume else None
        self.changes: list[Change] = []
        self.examined = 0
        self.actions = 0
        self._checkpoints = checkpoints
        self._last_done: str | None = None
        self._stopped_early = False

    def walk(self, keys: Iterable[str]) -> Iterator[str]:
        """The keys after the checkpoint, in order, until the run has used its actions."""
        for key in sorted(set(keys)):
            if self.start_after is not None and key <= self.start_after:
                continue
            if self.actions >= self.budget:
                self._stopped_early = True
                return
            yield key
            self.examined += 1
            self._last_done = key

    def add(self, change: Change, *, counts_as_action: bool) -> None:
        self.changes.append(change)
        if counts_as_action:
            self.actions += 1

    def finish(self, finished_at: datetime) -> SweepReport:
        """Save the checkpoint (bounded stop) or clear it (whole pass done); a dry run leaves it alone."""
        checkpoint = self._last_done if self._stopped_early else None
        if not self.dry_run:
            if checkpoint is not None:
                self._checkpoints.save(self.sweep, checkpoint)
            elif self.start_after is not None or self._last_done is not None:
                self._checkpoints.clear(self.sweep)
        return SweepReport(
            sweep=self.sweep,
            run_id=self.run_id,
            dry_run=self.dry_run,
            started_at=self.started_at,
            finished_at=finished_at,
            examined=self.examined,
            changes=tuple(self.changes),
            complete=checkpoint is None,
            checkpoint=checkpoint,
        )
