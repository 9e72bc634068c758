"""moto's TransactWriteItems made to cost what one transaction costs, for the local stack only.

moto 5.2.5 keeps a copy of a table to roll a cancelled transaction back, but takes it once per item of the
transaction rather than once per table: a transaction of 50 puts deep-copies the whole table 50 times. On a ledger
of a thousand attempts that is seconds per call, which made the Revoke batches' `record_attempts` (one conditional
transaction per 100 attempts) slower on moto than 50 single puts, the opposite of DynamoDB. `transaction_patches()`
keeps moto's behaviour (all or nothing, the same cancellation reasons) and copies each table once per call.
"""

from __future__ import annotations

import copy
import threading
from typing import Any
from unittest import mock

_CALL = threading.local()


class _CopyEachTableOnce:
    """Stands in for the `copy` module inside moto's DynamoDB backend: within a transaction, a table is copied once."""

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        copies: dict[int, Any] | None = getattr(_CALL, "copies", None)
        if copies is None or type(value).__name__ != "Table":
            return copy.deepcopy(value, memo)
        if id(value) not in copies:
            copies[id(value)] = copy.deepcopy(value, memo)
        return copies[id(value)]


def transaction_patches() -> list[Any]:
    """The patches (not yet started): moto's backend module sees the shim, and each transaction has its copies."""
    from moto.dynamodb import models

    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        _CALL.copies = {}
        try:
            original(self, transact_items)
        finally:
            _CALL.copies = None

    return [
        mock.patch.object(models, "copy", _CopyEachTableOnce()),
        mock.patch.object(models.DynamoDBBackend, "transact_write_items", transact_write_items),
    ]
