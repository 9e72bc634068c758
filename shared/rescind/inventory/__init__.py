"""The inventory: which workload each cloud resource ran as, and what credentials Rescind has seen it hold."""

from rescind.inventory.base import Inventory
from rescind.inventory.dynamodb import DynamoDbInventory
from rescind.inventory.sync import SyncFailure, SyncPhase, SyncProgress, SyncReport, sync_inventory
from rescind.inventory.types import CloudResourceKind, WorkloadBinding

__all__ = [
    "CloudResourceKind",
    "DynamoDbInventory",
    "Inventory",
    "SyncFailure",
    "SyncPhase",
    "SyncProgress",
    "SyncReport",
    "WorkloadBinding",
    "sync_inventory",
]
