"""Reads of many credentials a few at a time: a plan's live reads (one each: the safety rule, `read_each`) and a
scan that may stop early (the leak run's entity decision, `reads_as_answered`).

The reads share the plan's clients: an hvac client is one requests session, whose urllib3 pool is thread-safe and
keeps 10 connections (so at most 10 workers: `revoke_batch_workers`, the Revoke batches' count, whose module
rescind.engine.batch says the same), and whose token renewal is locked (rescind.vault.client.VaultSession); boto3
clients are thread-safe and the AwsClientFactory locks its sessions. Only reads go through here.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import islice
from typing import TypeVar

# The Revoke batches' default (RuntimeSettings.revoke_batch_workers); the functions pass the configured count.
DEFAULT_READ_WORKERS = 8

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


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
