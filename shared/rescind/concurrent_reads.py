"""Reads of many credentials a few at a time: a plan's live reads (one each: the safety rule, `read_each`) and a
scan that may stop early (the leak run's entity decision, `reads_as_answered`); a few reads of different things at
once (`read_together`: a leaked key's listing and its user's tags); and one read shared by the acts that need it at
about the same time, each given a read begun after it asked (`ReadAfter`: a Revoke batch's CRL).

The reads share the plan's clients: an hvac client is one requests session, whose urllib3 pool is thread-safe and
keeps 10 connections (so at most 10 workers: `revoke_batch_workers`, the Revoke batches' count, whose module
rescind.engine.batch says the same), and whose token renewal is locked (rescind.vault.client.VaultSession); boto3
clients are thread-safe and the AwsClientFactory locks its sessions. Only reads go through here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Hashable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Generic, TypeVar, cast, overload

# The Revoke batches' default (RuntimeSettings.revoke_batch_workers); the functions pass the configured count.
DEFAULT_READ_WORKERS = 8

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")
KeyT = TypeVar("KeyT", bound=Hashable)
FirstT = TypeVar("FirstT")
SecondT = TypeVar("SecondT")
ThirdT = TypeVar("ThirdT")


def read_each(read: Callable[[ItemT], ResultT], items: Sequence[ItemT], *, workers: int) -> list[ResultT]:
    """`[read(item) for item in items]`, on up to `workers` threads: the results in the items' order, and the error
    of the first item in that order whose read failed raised, as the loop would (the reads not started are dropped).
    """
    if workers <= 1 or len(items) <= 1:
        return [read(item) for item in items]
    pool = ThreadPoolExecutor(min(workers, len(items)), thread_name_prefix="plan-read")
    try:
        return list(pool.map(read, items))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@overload
def read_together(first: Callable[[], FirstT], second: Callable[[], SecondT], /) -> tuple[FirstT, SecondT]: ...


@overload
def read_together(
    first: Callable[[], FirstT], second: Callable[[], SecondT], third: Callable[[], ThirdT], /
) -> tuple[FirstT, SecondT, ThirdT]: ...


def read_together(*reads: Callable[[], Any]) -> tuple[Any, ...]:
    """Independent reads of different things at once, the first on this thread: their answers in order, and the
    error of the first read in that order that failed raised, as reading them one after another would."""
    with ThreadPoolExecutor(len(reads) - 1, thread_name_prefix="read-together") as pool:
        others = [pool.submit(read) for read in reads[1:]]
        first = reads[0]()
        return (first, *(other.result() for other in others))


def reads_as_answered(
    read: Callable[[ItemT], ResultT], items: Iterable[ItemT], *, workers: int
) -> Generator[ResultT, None, None]:
    """`read(item)` of each item, `workers` in flight, yielded as they are answered (not in order): for a scan that
    may stop early. An error raises at once; closing the iterator cancels the reads not started and waits for those
    in flight."""
    queue = iter(items)
    pending: set[Future[ResultT]] = set()
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="scan-read") as pool:
        try:
            while True:
                pending.update(pool.submit(read, item) for item in islice(queue, max(1, workers) - len(pending)))
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()


@dataclass
class _Reads(Generic[ResultT]):
    """One key's reads, one at a time: how many began, the last that ended well (its number and answer)."""

    began: int = 0
    in_flight: bool = False
    ended: int = 0
    answer: ResultT | None = None


@dataclass
class ReadAfter(Generic[KeyT, ResultT]):
    """`read(key)`, shared: each caller gets the answer of a read begun after it asked, so whatever it changed before
    asking is in it; the callers that ask while a read of the key is in flight share the next one. One read of a key
    at a time. A read that fails is raised to the caller that made it; the others wait for the next.

    A Revoke batch's certificate revokes on one mount read the CRL back so: the revokes that end together share one
    fetch, and none is proved by a CRL fetched before its revoke answered.
    """

    read: Callable[[KeyT], ResultT]
    _lock: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)
    _reads: dict[KeyT, _Reads[ResultT]] = field(default_factory=dict, init=False, repr=False)

    def __call__(self, key: KeyT) -> ResultT:
        with self._lock:
            reads = self._reads.setdefault(key, _Reads())
            wanted = reads.began + 1  # the read in flight, if any, began before this call: not it, the next
            while reads.ended < wanted:
                if reads.in_flight:
                    self._lock.wait()
                    continue
                reads.began += 1
                number, reads.in_flight = reads.began, True
                self._lock.release()
                try:
                    answer = self.read(key)
                finally:
                    self._lock.acquire()
                    reads.in_flight = False
                    self._lock.notify_all()
                reads.ended, reads.answer = number, answer
            return cast(ResultT, reads.answer)  # set with `ended`, by a read begun after this call
