"""moto's TransactWriteItems made to cost what one transaction costs, for the local stack only.

moto 5.2.5 deep-copies every table a transaction names before it writes, to roll a cancelled transaction back by
putting the copies in place (and takes the copy once per item of the transaction, not once per table). On a ledger
of a thousand attempts each Revoke batch's `record_attempts` (one conditional transaction per 25 attempts) then
copied the whole ledger: a fifth of a Revoke phase went to that copy, and the cost grew with the ledger, which
DynamoDB's does not. `transaction_patches()` keeps moto's behaviour (all or nothing, the same cancellation
reasons, no stream record from a cancelled transaction) and keeps instead a copy of each item the transaction
names, before it writes, which a cancelled transaction puts back.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from typing import Any
from unittest import mock

_CALL = threading.local()


class _NoTableCopies:
    """Stands in for the `copy` module inside moto's DynamoDB backend: within a patched transaction a table is not
    copied (moto's own rollback then puts the same table back; the items it named are restored here)."""

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if getattr(_CALL, "active", False) and type(value).__name__ == "Table":
            return value
        return copy.deepcopy(value, memo)


@dataclass(frozen=True)
class _ItemBefore:
    """One item a transaction names, as it was before the transaction: None when there was none."""

    table: Any
    hash_value: Any
    range_value: Any
    item: Any


def _items_before(backend: Any, transact_items: list[dict[str, Any]]) -> tuple[list[_ItemBefore], dict[int, int]]:
    """A copy of every item the transaction names, and each named table's stream length, before it writes. An
    operation whose table or key moto will refuse is skipped: moto cancels the transaction before writing it."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    before: list[_ItemBefore] = []
    streams: dict[int, int] = {}
    for transact_item in transact_items:
        try:
            op_type, op = next(iter(transact_item.items()))
            table = backend.tables[op["TableName"]]
            attrs = op["Item"] if op_type == "Put" else op["Key"]
            hash_value = DynamoType(attrs[table.hash_key_attr])
            range_value = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr is not None else None
        except (KeyError, TypeError, AttributeError, StopIteration):
            continue
        current = table.get_item(hash_value, range_value)
        before.append(_ItemBefore(table, hash_value, range_value, copy.deepcopy(current)))
        if table.stream_shard is not None:
            streams.setdefault(id(table), len(table.stream_shard.items))
    return before, streams


def _put_back(before: list[_ItemBefore], streams: dict[int, int]) -> None:
    """Every named item as it was (the first copy of a key is the one from before any write), and no stream
    record from the transaction."""
    for entry in reversed(before):
        items = entry.table.items
        if entry.range_value is not None:
            by_range = items.setdefault(entry.hash_value, {})
            if entry.item is None:
                by_range.pop(entry.range_value, None)
            else:
                by_range[entry.range_value] = entry.item
        elif entry.item is None:
            items.pop(entry.hash_value, None)
        else:
            items[entry.hash_value] = entry.item
        shard = entry.table.stream_shard
        if shard is not None and id(entry.table) in streams:
            del shard.items[streams[id(entry.table)] :]


def transaction_patches() -> list[Any]:
    """The patches (not yet started): moto's backend module sees the shim, and each transaction keeps its items."""
    from moto.dynamodb import models

    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        before, streams = _items_before(self, transact_items)
        _CALL.active = True
        try:
            original(self, transact_items)
        except BaseException:
            _put_back(before, streams)
            raise
        finally:
            _CALL.active = False

    return [
        mock.patch.object(models, "copy", _NoTableCopies()),
        mock.patch.object(models.DynamoDBBackend, "transact_write_items", transact_write_items),
    ]
