"""Parse OpenBao/Vault audit log lines (the file or socket device's JSON, one object a line) into issuances and
revocations.

What the audit device must be configured with (README "Issuance index"):

- `hmac_accessor=false`: token accessors are then logged in the clear and become references Rescind can act on.
  Otherwise `response.auth.accessor` is HMAC'd too: the record keeps only that HMAC, says it is unactionable, and
  can still be matched by a revocation or a leaked value, but not revoked by reference.
- Response data is HMAC'd per key unless the mount lists the key in `audit_non_hmac_response_keys`: tune PKI
  mounts with `serial_number` and AppRole mounts with `secret_id_accessor`, or those records keep only HMACs.
- Request data is HMAC'd likewise: a revocation names its target by HMAC unless the mount lists the key in
  `audit_non_hmac_request_keys` (`accessor` on `auth/token`, `secret_id_accessor` on AppRole, `serial_number` on
  PKI). A revocation by HMAC still matches a record that kept that HMAC (a secret-id accessor, a serial, a token
  revoked by its value); one that matches nothing leaves the record alive, and discovery's live lookup decides.
- Never `log_raw=true`: every line whose response carries a secret value in the clear is refused, with nothing
  kept from it, and the refusal says why.

Nothing here logs, returns or raises with a value read from a line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from rescind.issuance.types import AuditLineResult, IssuanceRecord, IssuanceRevocation, is_audit_hmac
from rescind.models import (
    AppRoleSecretIdRef,
    CredentialKind,
    PkiCertificateRef,
    VaultLeaseRef,
    VaultTokenRef,
)
from rescind.models.refs import format_ref

# Response fields that hold a secret value: each must be HMAC'd, or the whole line is refused.
SECRET_RESPONSE_KEYS = frozenset(
    {"client_token", "secret_id", "password", "private_key", "secret_key", "token", "security_token", "value"}
)
LOG_RAW_REFUSAL = (
    "the audit device logged a secret response value in the clear (log_raw=true?): the line is refused and "
    "nothing of it is kept; configure the device without log_raw"
)
_SECRET_ID_PATH = re.compile(r"^auth/(?P<mount>.+)/role/(?P<role>[^/]+)/(?:custom-)?secret-id$")
_SECRET_ID_DESTROY_PATH = re.compile(r"^auth/(?P<mount>.+)/role/(?P<role>[^/]+)/secret-id(?P<by>-accessor)?/destroy$")
_PKI_ISSUE_PATH = re.compile(r"^(?P<mount>.+)/(?:issue|sign|issuer/[^/]+/(?:issue|sign))/[^/]+$")
_LEASE_REVOKE_PATH = re.compile(r"^sys/(?:leases/)?revoke(?:/(?P<lease>.+))?$")
_TOKEN_REVOKE_BY_VALUE = frozenset({"auth/token/revoke", "auth/token/revoke-orphan"})


def _ref_text(build: Callable[[], BaseModel]) -> str | None:
    """The reference's text form, or None when what the log shows is not a valid reference."""
    try:
        return format_ref(build())  # type: ignore[arg-type]  # every builder returns a CredentialRef member
    except (ValidationError, ValueError):
        return None


def _parse_time(text: object) -> datetime:
    if not isinstance(text, str):
        raise ValueError("no time")
    # Vault writes RFC 3339 with nanoseconds; Python reads microseconds.
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    parsed = datetime.fromisoformat(trimmed)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _has_clear_secret(section: Mapping[str, Any]) -> bool:
    return any(
        key in SECRET_RESPONSE_KEYS and isinstance(value, str) and value and not is_audit_hmac(value)
        for key, value in section.items()
    )


def _hmacs(prefix: str, section: Mapping[str, Any]) -> dict[str, str]:
    return {f"{prefix}.{key}": value for key, value in section.items() if is_audit_hmac(value)}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _mount_name(mount_point: object) -> str | None:
    text = _text(mount_point)
    return text.removeprefix("auth/").strip("/") if text else None


class _Line:
    """One response entry's parts, read defensively (any field may be absent)."""

    def __init__(self, entry: Mapping[str, Any], metadata_key: str) -> None:
        self.auth: Mapping[str, Any] = entry.get("auth") or {}
        self.request: Mapping[str, Any] = entry.get("request") or {}
        self.response: Mapping[str, Any] = entry.get("response") or {}
        self.request_data: Mapping[str, Any] = self.request.get("data") or {}
        self.response_auth: Mapping[str, Any] = self.response.get("auth") or {}
        self.response_data: Mapping[str, Any] = self.response.get("data") or {}
        self.path: str = str(self.request.get("path") or "")
        self.time = _parse_time(entry.get("time"))
        self.metadata_key = metadata_key

    def requester_workload(self) -> str | None:
        return _text((self.auth.get("metadata") or {}).get(self.metadata_key))

    def requester_accessor(self) -> str | None:
        return _text(self.auth.get("accessor"))

    def base(self, kind: CredentialKind, mount: str | None) -> dict[str, Any]:
        return {
            "kind": kind,
            "workload_id": self.requester_workload(),
            "entity_id": _text(self.auth.get("entity_id")),
            "parent_accessor": self.requester_accessor(),
            "mount": mount,
            "path": self.path,
            "request_id": str(self.request.get("id") or ""),
            "issued_at": self.time,
        }


def _token_issued(line: _Line) -> IssuanceRecord:
    auth = line.response_auth
    accessor = str(auth.get("accessor") or "")
    fields = line.base(CredentialKind.VAULT_TOKEN, _mount_name(line.response.get("mount_point")))
    # The issued token's own metadata names its holder; a login's requester is the new token itself.
    holder = _text((auth.get("metadata") or {}).get(line.metadata_key))
    fields["workload_id"] = holder or fields["workload_id"]
    fields["entity_id"] = _text(auth.get("entity_id")) or fields["entity_id"]
    if fields["parent_accessor"] == accessor or not line.request.get("client_token"):
        fields["parent_accessor"] = None  # a login: no parent token
    fields["ttl_seconds"] = auth.get("token_ttl") if isinstance(auth.get("token_ttl"), int) else None
    fields["response_hmacs"] = _hmacs("auth", auth)
    if is_audit_hmac(accessor):
        fields["reference_hmac"] = accessor
        fields["unactionable"] = (
            "the audit device HMACs accessors (hmac_accessor=true): only the accessor's HMAC is known"
        )
    else:
        fields["reference"] = _ref_text(lambda: VaultTokenRef(accessor=accessor))
        if fields["reference"] is None:
            fields["unactionable"] = "the logged accessor is not a token accessor"
    return IssuanceRecord.model_validate(fields)


def _keyed_in_data(
    line: _Line, kind: CredentialKind, mount: str | None, key: str, build: Callable[[str], BaseModel], tune: str
) -> IssuanceRecord:
    value = str(line.response_data.get(key) or "")
    fields = line.base(kind, mount)
    fields["response_hmacs"] = _hmacs("data", line.response_data)
    if is_audit_hmac(value):
        fields["reference_hmac"] = value
        fields["unactionable"] = f"{key} is HMAC'd in the audit log: {tune}"
        fields["response_hmacs"].pop(f"data.{key}", None)
    else:
        fields["reference"] = _ref_text(lambda: build(value))
        if fields["reference"] is None:
            fields["unactionable"] = f"the logged {key} is not a valid reference"
    return IssuanceRecord.model_validate(fields)


def _issuances(line: _Line) -> list[IssuanceRecord]:
    found: list[IssuanceRecord] = []
    if line.response_auth.get("accessor"):
        found.append(_token_issued(line))
    lease_id = _text((line.response.get("secret") or {}).get("lease_id"))
    if lease_id:
        fields = line.base(CredentialKind.VAULT_LEASE, _mount_name(line.response.get("mount_point")))
        fields["reference"] = _ref_text(lambda: VaultLeaseRef(lease_id=lease_id))
        fields["response_hmacs"] = _hmacs("data", line.response_data)
        ttl = (line.response.get("secret") or {}).get("lease_duration")
        fields["ttl_seconds"] = ttl if isinstance(ttl, int) else None
        if fields["reference"] is None:
            fields["unactionable"] = "the logged lease id is not a valid lease reference"
        found.append(IssuanceRecord.model_validate(fields))
    pki = _PKI_ISSUE_PATH.match(line.path)
    if pki and line.request.get("mount_type") == "pki" and "serial_number" in line.response_data:
        mount = pki["mount"]
        record = _keyed_in_data(
            line,
            CredentialKind.PKI_CERTIFICATE,
            mount,
            "serial_number",
            lambda serial: PkiCertificateRef(mount=mount, serial=serial),
            f"tune {mount} with audit_non_hmac_response_keys=serial_number",
        )
        expiration = line.response_data.get("expiration")
        ttl = int(expiration - line.time.timestamp()) if isinstance(expiration, int) else None
        found.append(record.model_copy(update={"ttl_seconds": max(ttl, 0) if ttl is not None else None}))
    secret_id = _SECRET_ID_PATH.match(line.path)
    if secret_id and "secret_id_accessor" in line.response_data:
        mount, role = secret_id["mount"], secret_id["role"]
        record = _keyed_in_data(
            line,
            CredentialKind.APPROLE_SECRET_ID,
            mount,
            "secret_id_accessor",
            lambda accessor: AppRoleSecretIdRef(mount=mount, role_name=role, accessor=accessor),
            f"tune auth/{mount} with audit_non_hmac_response_keys=secret_id_accessor",
        )
        ttl = line.response_data.get("secret_id_ttl")
        found.append(record.model_copy(update={"ttl_seconds": ttl if isinstance(ttl, int) else None}))
    return found


def _revocation(line: _Line) -> IssuanceRevocation | None:
    def by(kind: CredentialKind, value: object, build: Callable[[str], BaseModel]) -> IssuanceRevocation | None:
        text = _text(value)
        if text is None:
            return None
        fields: dict[str, Any] = {"kind": kind, "path": line.path, "revoked_at": line.time}
        if is_audit_hmac(text):
            fields["hmac"] = text
        else:
            fields["reference"] = _ref_text(lambda: build(text))
            if fields["reference"] is None:
                return None
        return IssuanceRevocation.model_validate(fields)

    data = line.request_data
    path = line.path
    if path == "auth/token/revoke-accessor":
        return by(CredentialKind.VAULT_TOKEN, data.get("accessor"), lambda a: VaultTokenRef(accessor=a))
    if path == "auth/token/revoke-self":
        return by(CredentialKind.VAULT_TOKEN, line.requester_accessor(), lambda a: VaultTokenRef(accessor=a))
    if path in _TOKEN_REVOKE_BY_VALUE:
        return by(CredentialKind.VAULT_TOKEN, data.get("token"), lambda _: VaultTokenRef(accessor="-"))
    lease = _LEASE_REVOKE_PATH.match(path)
    if lease:
        value = lease["lease"] or data.get("lease_id")
        return by(CredentialKind.VAULT_LEASE, value, lambda lease_id: VaultLeaseRef(lease_id=lease_id))
    destroy = _SECRET_ID_DESTROY_PATH.match(path)
    if destroy:
        mount, role = destroy["mount"], destroy["role"]
        value = data.get("secret_id_accessor") if destroy["by"] else data.get("secret_id")
        return by(
            CredentialKind.APPROLE_SECRET_ID,
            value,
            lambda accessor: AppRoleSecretIdRef(mount=mount, role_name=role, accessor=accessor),
        )
    if line.request.get("mount_type") == "pki" and path.endswith("/revoke"):
        mount = path.removesuffix("/revoke")
        return by(
            CredentialKind.PKI_CERTIFICATE,
            data.get("serial_number"),
            lambda serial: PkiCertificateRef(mount=mount, serial=serial),
        )
    return None


def parse_audit_line(text: str, *, metadata_key: str = "spiffe_id") -> AuditLineResult:
    """One audit line → what it issued and revoked. Requests, failed responses and other paths give nothing."""
    try:
        entry = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return AuditLineResult(refused="not a JSON audit entry")
    if not isinstance(entry, dict):
        return AuditLineResult(refused="not a JSON audit entry")
    if entry.get("type") != "response" or entry.get("error"):
        return AuditLineResult()
    try:
        line = _Line(entry, metadata_key)
    except (ValueError, AttributeError, TypeError):
        return AuditLineResult(refused="an audit response entry without a readable time or shape")
    if _has_clear_secret(line.response_auth) or _has_clear_secret(line.response_data):
        return AuditLineResult(refused=LOG_RAW_REFUSAL)
    try:
        revocation = _revocation(line)
        return AuditLineResult(issuances=tuple(_issuances(line)), revocations=(revocation,) if revocation else ())
    except (ValidationError, AttributeError, TypeError):
        return AuditLineResult(refused=f"an audit response entry on {line.path[:200]} that is not of the known shape")
