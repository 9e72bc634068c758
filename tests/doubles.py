"""Test doubles shared across tiers: storage only, never a stand-in for Vault or AWS behaviour."""

from __future__ import annotations

from collections.abc import Sequence

from rescind.inventory import WorkloadBinding
from rescind.models import CredentialRef


class InMemoryInventory:
    """The Inventory protocol over dicts, faithful to its contract (bindings outlive resources, refs deduplicated)."""

    def __init__(self) -> None:
        self.by_cloud_id: dict[str, WorkloadBinding] = {}
        self.credentials: dict[str, dict[str, CredentialRef]] = {}
        self.lookups: list[str] = []

    def bind(self, binding: WorkloadBinding) -> None:
        current = self.by_cloud_id.get(binding.cloud_id)
        if current is None or current.seen_at <= binding.seen_at:
            self.by_cloud_id[binding.cloud_id] = binding

    def workload_for(self, cloud_id: str) -> WorkloadBinding | None:
        self.lookups.append(cloud_id)
        return self.by_cloud_id.get(cloud_id)

    def record_credentials(self, workload_id: str, refs: Sequence[CredentialRef]) -> None:
        held = self.credentials.setdefault(workload_id, {})
        for ref in refs:
            held.setdefault(ref.key, ref)

    def credentials_of(self, workload_id: str) -> list[CredentialRef]:
        return list(self.credentials.get(workload_id, {}).values())

    def bindings(self) -> list[WorkloadBinding]:
        return sorted(self.by_cloud_id.values(), key=lambda binding: (binding.workload_id, binding.cloud_id))

    def resources_of(self, workload_id: str) -> list[WorkloadBinding]:
        return [binding for binding in self.bindings() if binding.workload_id == workload_id]


class BotocoreResponse:
    """The raw response botocore's `before-call` hook returns with the parsed answer, in place of AWS's (moto
    cannot throttle or fail): botocore reads only its status code."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}
        self.content = b""
        self.text = ""
        self.raw = None
