"""Locate a leaked value that Vault issued (a dynamic database password, a token, a secret-id) through the audit
device's HMAC: `sys/audit-hash/<device>` of the value, in memory, then the issuance whose logged response field has
that HMAC (the index's HMAC pointers), then the lease, token or secret-id that issuance names.

What it needs (README "The issuance index"): the index fed by the audit device named by AUDIT_DEVICE_PATH (each device
has its own salt, so another device's HMAC matches nothing); response values HMAC'd, as they are by default (a key
listed in a mount's `audit_non_hmac_response_keys`, or `log_raw=true`, logs the value in the clear: the indexer
refuses such a line, so nothing of it is found); `hmac_accessor=false` for a token to be acted on by accessor.
When any of it is missing the answer is "not found" or says what is unactionable; never a guess.

The value goes to Vault's audit-hash endpoint only; it is never logged, stored or returned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import hvac
import hvac.exceptions

from rescind.engine.scope import TargetOutOfScope, check_target_in_scope
from rescind.exceptions import ActionFailed
from rescind.issuance.types import is_audit_hmac
from rescind.leaks.types import LocatedLeak, Unlocated
from rescind.models import CredentialRef, VaultLeaseRef, VaultTokenRef
from rescind.models.refs import format_ref
from rescind.models.results import utc_now
from rescind.vault.client import read_data, vault_errors
from rescind.vault.leases import lookup_lease
from rescind.vault.tokens import lookup_token_by_accessor

if TYPE_CHECKING:
    from rescind.issuance.types import IssuanceRecord
    from rescind.kinds import LeakSearch
    from rescind.leaks.types import LeakAlert

NOT_CONFIGURED = (
    "not found: locating a value Vault issued needs the issuance index and the audit device that feeds it "
    "(ISSUANCE_TABLE_NAME and AUDIT_DEVICE_PATH)"
)


def audit_hash(vault: hvac.Client, device: str, value: str) -> str:
    """The audit device's HMAC of `value` (`hmac-sha256:<hex>`). Raises ActionFailed, never echoing the value."""
    device = device.strip("/")
    with vault_errors(f"sys/audit-hash/{device}"):
        try:
            response = vault.adapter.post(f"/v1/sys/audit-hash/{device}", json={"input": value})
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden, hvac.exceptions.InvalidPath) as error:
            # Vault's message names the device or the permission, never the input; still, only its type is kept.
            raise ActionFailed(
                f"sys/audit-hash/{device} on {vault.url} refused ({type(error).__name__}): is AUDIT_DEVICE_PATH the "
                "path of an enabled audit device, and does its policy grant update on sys/audit-hash/<device>?"
            ) from None
    digest = read_data(response).get("hash")
    if not is_audit_hmac(digest):
        raise ActionFailed(f"sys/audit-hash/{device} on {vault.url} answered without an HMAC")
    return str(digest)


def _matched_field(record: IssuanceRecord, digest: str) -> str:
    fields = [name for name, value in record.response_hmacs.items() if value == digest]
    if record.reference_hmac == digest:
        fields.append("its reference")
    return ", ".join(sorted(fields)) or "a logged field"


def _actionable(search: LeakSearch, record: IssuanceRecord) -> tuple[CredentialRef | None, str]:
    """The record's credential when Rescind may act on it now, else None and why not."""
    ref = record.credential_ref()
    issued = f"{record.kind} issued at {record.issued_at.isoformat()} on {record.path[:200]}"
    if ref is None:
        return None, f"{issued}: {record.unactionable or 'its reference is not in the log'}"
    if not record.is_alive(utc_now()):
        return None, f"{format_ref(ref)}: the index saw it revoked or past its TTL"
    try:
        check_target_in_scope(ref, search.scope)
    except TargetOutOfScope as error:
        return None, f"{format_ref(ref)}: {error}"
    if _gone_from_vault(search.backends.vault, ref):
        return None, f"{format_ref(ref)}: no longer in Vault (expired, or ended without a line in the log)"
    return ref, ""


def _gone_from_vault(vault: hvac.Client, ref: CredentialRef) -> bool:
    """A lease or a token is looked up (a token's tree dies unlogged with it); a secret-id or a certificate is read
    back by the act step, and the index's record is the evidence that it existed."""
    if isinstance(ref, VaultLeaseRef):
        return lookup_lease(vault, ref) is None
    if isinstance(ref, VaultTokenRef):
        return lookup_token_by_accessor(vault, ref.accessor) is None
    return False


def locate_issued_value(search: LeakSearch, alert: LeakAlert, value: str | None) -> LocatedLeak | Unlocated:
    """The issuance whose response carried this value, through the audit device's HMAC; its live credential."""
    index, device = search.scope.issuance_index, search.audit_device
    if index is None or not device:
        return Unlocated(why=NOT_CONFIGURED)
    if not value:
        return Unlocated(why="a Vault-issued value is located by its audit HMAC, which needs the value itself")
    vault = search.backends.vault
    digest = audit_hash(vault, device, value)
    records = index.by_hmac(digest)
    if not records:
        return Unlocated(
            why=(
                f"not found: no issuance in the index has this value's HMAC under audit device {device} of {vault.url}"
                " (not issued by that Vault since its audit log shipped to the index, or logged without an HMAC)"
            )
        )
    located: dict[str, tuple[CredentialRef, IssuanceRecord]] = {}
    not_actionable: list[str] = []
    for record in records:
        ref, why = _actionable(search, record)
        if ref is None:
            not_actionable.append(why)
        else:
            located.setdefault(ref.key, (ref, record))
    if not located:
        return Unlocated(why=f"issued by {vault.url}, but nothing to act on: {'; '.join(not_actionable)}"[:500])
    owners = {record.workload_id for _, record in located.values() if record.workload_id}
    matched = "; ".join(
        f"{_matched_field(record, digest)} of {format_ref(ref)} issued at {record.issued_at.isoformat()}"
        for ref, record in located.values()
    )
    return LocatedLeak(
        credentials=tuple(ref for ref, _ in located.values()),
        owner=owners.pop() if len(owners) == 1 else None,
        evidence=f"sys/audit-hash/{device} of the value matched {matched} in the issuance index"[:1000],
    )
