"""Vault audit lines in the envelope a CloudWatch Logs subscription hands IndexAuditLogFunction
(events/cloudwatch_logs_vault_audit.md): the tests and the benchmarks feed the indexer through this one builder."""

from __future__ import annotations

import base64
import gzip
import json
import time
from collections.abc import Sequence
from typing import Any


def subscription_event(
    lines: Sequence[str], log_group: str = "/vault/audit", *, timestamp_ms: int | None = None
) -> dict[str, Any]:
    """The lines as one subscription delivery; each log event stamped `timestamp_ms` (now when not given)."""
    stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": log_group,
        "logStream": "vault-0",
        "subscriptionFilters": ["rescind-issuance-index"],
        "logEvents": [{"id": str(index), "timestamp": stamp, "message": line} for index, line in enumerate(lines)],
    }
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()}}
