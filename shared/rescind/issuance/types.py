"""Issuance index records: what Vault issued, to whom, and the audit device's HMAC of what it returned.

None of these models has a field that can hold a secret value: references (accessors, lease ids, serials,
secret-id accessors) are not secrets, and every returned value is kept only as the audit device's HMAC
(`hmac-sha256:<hex>`), which the device's key alone can produce (`sys/audit-hash/<device>`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.models import CredentialKind, CredentialRef
from rescind.models.refs import parse_ref

AuditHmac = Annotated[str, Field(pattern=r"^hmac-sha256:[0-9a-f]{64}$")]
HMAC_PREFIX = "hmac-sha256:"

# The kinds the audit log shows being issued.
INDEXED_KINDS = frozenset(
    {
        CredentialKind.VAULT_TOKEN,
        CredentialKind.APPROLE_SECRET_ID,
        CredentialKind.VAULT_LEASE,
        CredentialKind.PKI_CERTIFICATE,
    }
)


def is_audit_hmac(value: object) -> bool:
    return isinstance(value, str) and value.startswith(HMAC_PREFIX)


class IssuanceRecord(BaseModel):
    """One credential Vault issued, as its audit device logged the response.

    `reference` is the credential's text form (`format_ref`) when the log shows it in the clear; when the device
    HMAC'd it (an accessor under `hmac_accessor=true`, a serial or secret-id accessor in response data that the
    mount does not list in `audit_non_hmac_response_keys`) only `reference_hmac` is known, `reference` is None and
    `unactionable` says why: such a record can be matched (by a revocation, a leaked value) but not acted on.
    """

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    kind: CredentialKind
    reference: Annotated[str, Field(max_length=2048)] | None = None
    reference_hmac: AuditHmac | None = None
    # Who holds it: the SPIFFE ID in the issued token's metadata, else the requester's; None when neither names one.
    workload_id: Annotated[str, Field(max_length=2048)] | None = None
    entity_id: Annotated[str, Field(max_length=200)] | None = None
    # The requesting token's accessor (`auth.accessor`): a child token's parent, or who checked out the lease.
    parent_accessor: Annotated[str, Field(max_length=200)] | None = None
    mount: Annotated[str, Field(max_length=500)] | None = None
    path: Annotated[str, Field(max_length=2048)]  # the request path that issued it
    request_id: Annotated[str, Field(max_length=200)]
    issued_at: AwareDatetime
    ttl_seconds: Annotated[int, Field(ge=0)] | None = None
    # Response field (dotted path) → the audit device's HMAC of its value. Never the value.
    response_hmacs: dict[str, AuditHmac] = Field(default_factory=dict)
    unactionable: Annotated[str, Field(max_length=500)] | None = None
    revoked_at: AwareDatetime | None = None

    @property
    def key(self) -> str:
        """Unique within a workload: `<kind>#<reference>`, or `<kind>#<hmac>` when only the HMAC is known."""
        return f"{self.kind}#{self.reference or self.reference_hmac}"

    @property
    def expires_at(self) -> datetime | None:
        if not self.ttl_seconds:
            return None  # 0 or unknown: no expiry the log can tell
        return self.issued_at + timedelta(seconds=self.ttl_seconds)

    def is_alive(self, now: datetime) -> bool:
        """Not seen revoked and not past its TTL (a renewal may have extended it: callers confirm live)."""
        if self.revoked_at is not None:
            return False
        expires = self.expires_at
        return expires is None or expires > now

    def credential_ref(self) -> CredentialRef | None:
        """The reference Rescind can act on; None when the log gave only its HMAC."""
        return parse_ref(self.reference) if self.reference else None


class IssuanceRevocation(BaseModel):
    """A revocation the audit log shows: the credential by reference, or by an HMAC (of its reference or value)."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    kind: CredentialKind
    reference: Annotated[str, Field(max_length=2048)] | None = None
    hmac: AuditHmac | None = None
    path: Annotated[str, Field(max_length=2048)]
    revoked_at: AwareDatetime


class AuditLineResult(BaseModel):
    """What one audit line gave: issuances, revocations, or why it was refused (never echoing the line)."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    issuances: tuple[IssuanceRecord, ...] = ()
    revocations: tuple[IssuanceRevocation, ...] = ()
    refused: Annotated[str, Field(max_length=500)] | None = None


class IndexingReport(BaseModel):
    """Counts of one indexing batch. Never a value, never an HMAC."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    lines: int = 0
    issuances: int = 0
    revocations_seen: int = 0
    revocations_matched: int = 0
    refused: int = 0
    refusals: tuple[Annotated[str, Field(max_length=500)], ...] = ()  # distinct reasons, at most a few
