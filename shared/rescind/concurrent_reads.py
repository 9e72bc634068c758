"""A plan's live reads of many credentials (one each: the safety rule), a few at a time.

The reads share the plan's clients: an hvac client is one requests session, whose urllib3 pool is thread-safe and
keeps 10 connections (so at most 10 workers: `revoke_batch_workers`, the Revoke batches' count, whose module
rescind.engine.batch says the same), and whose token renewal is locked (rescind.vault.client.VaultSession); boto3
clients are thread-safe and the AwsClientFactory locks its sessions. Only reads go through here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(min(workers, len(items)), thread_name_prefix="plan-read")
    try:
        return list(pool.map(read, items))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
