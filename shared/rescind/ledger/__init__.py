"""The audit ledger: an append-only record of every incident, action attempt and closure."""

from rescind.ledger.base import Ledger
from rescind.ledger.dynamodb import DynamoDbLedger
from rescind.ledger.types import (
    ActionAttemptRecord,
    ApprovalDecision,
    ApprovalVerdict,
    CredentialStanding,
    CredentialState,
    IncidentClosure,
    IncidentRecord,
    IncidentStatus,
    IncidentView,
    Trigger,
)

__all__ = [
    "ActionAttemptRecord",
    "ApprovalDecision",
    "ApprovalVerdict",
    "CredentialStanding",
    "CredentialState",
    "DynamoDbLedger",
    "IncidentClosure",
    "IncidentRecord",
    "IncidentStatus",
    "IncidentView",
    "Ledger",
    "Trigger",
]
