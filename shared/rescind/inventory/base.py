"""The inventory: which workload a cloud resource was, and what credentials Rescind has seen it hold.

It outlives the resources it names: a termination event is resolved through it after the instance, task
or function is gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from rescind.inventory.types import WorkloadBinding
from rescind.models import CredentialRef


class Inventory(Protocol):
    def bind(self, binding: WorkloadBinding) -> None:
        """Record that a cloud resource (instance, task, function) runs as a workload. Idempotent."""
        ...

    def workload_for(self, cloud_id: str) -> WorkloadBinding | None:
        """The workload a cloud resource ran as, whether or not the resource still exists."""
        ...

    def record_credentials(self, workload_id: str, refs: Sequence[CredentialRef]) -> None:
        """Add credentials seen held by a workload. Idempotent; never stores a value."""
        ...

    def credentials_of(self, workload_id: str) -> list[CredentialRef]: ...

    def bindings(self) -> list[WorkloadBinding]: ...

    def resources_of(self, workload_id: str) -> list[WorkloadBinding]:
        """The cloud resources bound to one workload, and so the accounts it ran in."""
        ...
