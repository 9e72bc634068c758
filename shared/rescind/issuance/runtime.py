"""Cached factory for the deployed functions: the issuance index, or None without ISSUANCE_TABLE_NAME."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rescind.caching import runtime_cache
from rescind.runtime import get_dynamodb_client, get_settings

if TYPE_CHECKING:
    from rescind.issuance.dynamodb import DynamoDbIssuanceIndex


@runtime_cache
def get_issuance_index() -> DynamoDbIssuanceIndex | None:
    table = get_settings().issuance_table_name
    if not table:
        return None
    from rescind.issuance.dynamodb import DynamoDbIssuanceIndex

    return DynamoDbIssuanceIndex(table, get_dynamodb_client())
