"""Counting the calls a benchmark makes: every HTTP request hvac sends to Vault, by method and path template, and
every botocore API call, by service and operation.

Both hooks are process-wide (the handlers build their own clients, deep inside), installed for the duration of a
`counting_calls()` block and removed after: hvac's `RawAdapter.request` (the one place every hvac client, a
VaultSession's own included, sends a request) and botocore's `BaseClient._make_api_call` (every boto3 client;
moto answers below it, so a call to moto counts as one call). Benchmark code only: nothing in the layer imports it.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

# Path segments that name one credential, replaced so that calls group by endpoint.
_VARIABLE_SEGMENTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(/v1/sys/leases/(?:revoke|renew))/.+$"), r"\1/{lease_id}"),
    (re.compile(r"^(/v1/sys/leases/lookup)/.+$"), r"\1/{prefix}/"),
    (re.compile(r"^(/v1/[^?]+/cert)/[0-9a-fA-F:-]+$"), r"\1/{serial}"),
    (re.compile(r"^(/v1/auth/[^/]+/role)/[^/]+/(.+)$"), r"\1/{role}/\2"),
)

# Which credential kind of the offboarding estate an endpoint serves (the bench's mounts: approle, pki).
_KIND_OF_PATH: tuple[tuple[str, str], ...] = (
    ("/v1/auth/token/", "vault_token"),
    ("/v1/sys/capabilities-accessor", "vault_token"),
    ("/v1/auth/approle/", "approle_secret_id"),
    ("/v1/pki/", "pki_certificate"),
    ("/v1/sys/leases/", "vault_lease"),
)


def path_template(url: str) -> str:
    """`/v1/pki/cert/1a:2b` -> `/v1/pki/cert/{serial}`; the query string dropped."""
    path = unquote(url.split("?", 1)[0])
    if "://" in path:
        path = "/" + path.split("://", 1)[1].split("/", 1)[-1]
    for pattern, replacement in _VARIABLE_SEGMENTS:
        path = pattern.sub(replacement, path)
    return path


def kind_of_path(template: str) -> str:
    return next((kind for prefix, kind in _KIND_OF_PATH if template.startswith(prefix)), "other")


@dataclass
class CallCounts:
    """Counts taken at one moment: Vault requests by "METHOD /path/template", AWS calls by "service.Operation"."""

    vault: Counter[str] = field(default_factory=Counter)
    aws: Counter[str] = field(default_factory=Counter)

    def __sub__(self, earlier: CallCounts) -> CallCounts:
        return CallCounts(self.vault - earlier.vault, self.aws - earlier.aws)

    @property
    def vault_total(self) -> int:
        return sum(self.vault.values())

    def vault_by_kind(self) -> dict[str, int]:
        found: Counter[str] = Counter()
        for key, count in self.vault.items():
            found[kind_of_path(key.split(" ", 1)[1])] += count
        return dict(found)

    def aws_by_service(self) -> dict[str, int]:
        found: Counter[str] = Counter()
        for key, count in self.aws.items():
            found[key.split(".", 1)[0]] += count
        return dict(found)

    def aws_writes(self, service: str = "dynamodb") -> int:
        writes = ("PutItem", "BatchWriteItem", "TransactWriteItems", "UpdateItem", "DeleteItem")
        return sum(count for key, count in self.aws.items() if key.startswith(f"{service}.") and key.endswith(writes))

    def summary(self, credentials: int, per_kind: Mapping[str, int] | None = None) -> dict[str, Any]:
        """Totals and per-credential figures; with `per_kind` (credentials of each kind), calls per credential of
        each kind, counting an endpoint's calls against the kind it serves."""
        found: dict[str, Any] = {
            "vault_calls": self.vault_total,
            "vault_per_credential": round(self.vault_total / credentials, 3) if credentials else None,
            "dynamodb_writes": self.aws_writes(),
            "dynamodb_writes_per_credential": round(self.aws_writes() / credentials, 3) if credentials else None,
            "aws_per_credential_by_service": {
                service: round(count / credentials, 3) for service, count in sorted(self.aws_by_service().items())
            }
            if credentials
            else {},
            "vault_by_path": dict(self.vault.most_common()),
            "aws_by_operation": dict(self.aws.most_common()),
        }
        if per_kind:
            by_kind = self.vault_by_kind()
            found["vault_per_credential_by_kind"] = {
                kind: round(by_kind.get(kind, 0) / count, 3) for kind, count in per_kind.items() if count
            }
            found["vault_unattributed"] = by_kind.get("other", 0)
        return found


UNCOUNTED_THREAD_PREFIX = "bench-uncounted"  # a thread so named (an outside watcher) is not counted


class CallCounter:
    """The running counts of one `counting_calls()` block. Thread-safe; calls from threads whose name starts with
    UNCOUNTED_THREAD_PREFIX are left out."""

    def __init__(self) -> None:
        self._counts = CallCounts()
        self._lock = threading.Lock()

    def vault(self, method: str, url: str) -> None:
        if threading.current_thread().name.startswith(UNCOUNTED_THREAD_PREFIX):
            return
        with self._lock:
            self._counts.vault[f"{method.upper()} {path_template(url)}"] += 1

    def aws(self, service: str, operation: str) -> None:
        if threading.current_thread().name.startswith(UNCOUNTED_THREAD_PREFIX):
            return
        with self._lock:
            self._counts.aws[f"{service}.{operation}"] += 1

    def snapshot(self) -> CallCounts:
        with self._lock:
            return CallCounts(Counter(self._counts.vault), Counter(self._counts.aws))


@contextmanager
def counting_calls() -> Iterator[CallCounter]:
    """Count every hvac request and botocore call made in this process until the block ends."""
    import botocore.client
    import hvac.adapters

    counter = CallCounter()
    original_request = hvac.adapters.RawAdapter.request
    original_call = getattr(botocore.client.BaseClient, "_make_api_call")  # noqa: B009 - a private name

    def counted_request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        counter.vault(method, url)
        return original_request(self, method, url, *args, **kwargs)

    def counted_call(self: Any, operation_name: str, api_params: Any) -> Any:
        counter.aws(self.meta.service_model.service_name, operation_name)
        return original_call(self, operation_name, api_params)

    hvac.adapters.RawAdapter.request = counted_request
    setattr(botocore.client.BaseClient, "_make_api_call", counted_call)  # noqa: B010 - a private name
    try:
        yield counter
    finally:
        hvac.adapters.RawAdapter.request = original_request
        setattr(botocore.client.BaseClient, "_make_api_call", original_call)  # noqa: B010 - a private name
