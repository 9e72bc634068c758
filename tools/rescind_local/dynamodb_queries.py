"""moto's DynamoDB Query made to read one partition, as DynamoDB does, for the local stack only.

moto 5.2 answers a Query on a table's key by sorting every item of the table and keeping those of the partition
asked for: 56 ms a Query at 6,000 items, 0.7 s at 60,000. DynamoDB reads only the partition. An offboarding
plan queries the issuance index once per token (its children), so at a thousand credentials the local figures
measured moto's sort, not Rescind. `query_patches()` keeps moto's own Query (conditions, order, pages, filters,
projections) and hands it only the partition's items; a Query on a secondary index is left as moto runs it.
"""

from __future__ import annotations

import threading
from typing import Any
from unittest import mock

_QUERY = threading.local()
# Table.query(hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
#             projection_expressions, index_name, ...): index_name is the 7th after hash_key.
_INDEX_NAME_POSITION = 6


def query_patches() -> list[Any]:
    """The patches (not yet started): a base-table Query sees only its partition through `all_items`."""
    from moto.dynamodb.models.table import Table

    original_query, original_all_items = Table.query, Table.all_items

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        positional_index = args[_INDEX_NAME_POSITION] if len(args) > _INDEX_NAME_POSITION else None
        index_name = kwargs.get("index_name", positional_index)
        if index_name is not None or hash_key is None:
            return original_query(self, hash_key, *args, **kwargs)
        _QUERY.partition = (self, hash_key)
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            _QUERY.partition = None

    def all_items(self: Any) -> list[Any]:
        asked = getattr(_QUERY, "partition", None)
        if asked is None or asked[0] is not self:
            return original_all_items(self)
        found = self.items.get(asked[1])  # .get: the table's defaultdict must not grow an empty partition
        if found is None:
            return []
        if not self.range_key_attr:
            return [found]
        return sorted(found.values(), key=lambda item: item.range_key)

    return [mock.patch.object(Table, "query", query), mock.patch.object(Table, "all_items", all_items)]
