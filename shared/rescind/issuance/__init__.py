"""The issuance index: what Vault issued to each workload, fed by Vault's audit log.

Light to import (no hvac, no boto3): the DynamoDB store lives in `dynamodb`.
"""

from rescind.issuance.audit import parse_audit_line
from rescind.issuance.base import IssuanceIndex, index_audit_lines
from rescind.issuance.types import AuditLineResult, IndexingReport, IssuanceRecord, IssuanceRevocation

__all__ = [
    "AuditLineResult",
    "IndexingReport",
    "IssuanceIndex",
    "IssuanceRecord",
    "IssuanceRevocation",
    "index_audit_lines",
    "parse_audit_line",
]
