"""PKI certificates, by mount + serial: locate by URI SAN, revoke, verify against the parsed CRL.

A certificate is proved dead only by what a relying party would see: its serial on the CRL that the
mount publishes, and `<mount>/cert/<serial>` recording a revocation time (or the certificate having
expired). The revoke answer is never proof: with `auto_rebuild` (and in Vault issue #12227) a revoke
answers "revoked" while the CRL does not change.

A serial that the mount does not store is reported as absent by `act`, but `verify` does not confirm
it: a certificate issued by a `no_store` role, or by another mount, is not stored and is still usable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import hvac
import hvac.exceptions
from cryptography import x509

from rescind.exceptions import ActionFailed, InvalidInput, UnsupportedAction
from rescind.models import Action, ActionKind, ActOutcome, CredentialKind, CredentialRef, Evidence, PkiCertificateRef
from rescind.vault.client import read_data, vault_errors

# OpenBao's 400 for a revoke of a serial it does not store.
_NOT_FOUND = "not found"
# OpenBao's warning when it refuses to put an expired certificate on the CRL.
_ALREADY_EXPIRED = "already expired"
_NO_ROUTE = "no handler for route"


@dataclass(frozen=True)
class CertificateRecord:
    """What `<mount>/cert/<serial>` says. The certificate is public; no private key is ever read."""

    serial: str
    revocation_time: int  # unix seconds, 0 when not revoked
    not_after: datetime
    uri_sans: tuple[str, ...]

    @property
    def revoked(self) -> bool:
        return self.revocation_time > 0

    def expired(self, now: datetime | None = None) -> bool:
        return self.not_after <= (now or datetime.now(UTC))


# --- serials ----------------------------------------------------------------------------------


def serial_from_int(number: int) -> str:
    """Vault's form of a serial: the big-endian bytes with no leading zero byte, as lowercase colon hex.

    The CRL gives integers. A DER serial with its high bit set carries a leading 00 that Vault's form
    (Go's big.Int.Bytes) drops, so both sides must be built from the integer, never from raw bytes.
    """
    if number < 0:
        raise InvalidInput("a certificate serial cannot be negative")
    raw = number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big")
    return ":".join(f"{byte:02x}" for byte in raw)


def canonical_serial(serial: str) -> str:
    """Any colon/dash hex serial (as PkiCertificateRef keeps it) in Vault's form, leading 00 bytes dropped."""
    digits = serial.replace(":", "").replace("-", "").strip()
    try:
        return serial_from_int(int(digits, 16))
    except ValueError:
        raise InvalidInput(f"serial {serial!r} is not hexadecimal") from None


# --- reads ------------------------------------------------------------------------------------


def _is_missing_mount(error: hvac.exceptions.VaultError) -> bool:
    return any(_NO_ROUTE in str(message) for message in error.errors or [])


def _missing_mount(mount: str) -> ActionFailed:
    return ActionFailed(f"no PKI secrets engine is mounted at {mount!r}")


def fetch_revoked_serials(client: hvac.Client, mount: str) -> frozenset[str]:
    """Every serial on the mount's current CRL, from one fetch, in Vault's serial form.

    One fetch verifies any number of serials of the mount. An empty answer (no CA yet, or the CRL
    disabled) is an empty set: nothing is proved revoked by it.
    """
    with vault_errors(f"fetch CRL of {mount}"):
        try:
            response = client.adapter.get(f"/v1/{mount}/crl")
        except hvac.exceptions.InvalidPath as error:
            if _is_missing_mount(error):
                raise _missing_mount(mount) from None
            return frozenset()
    content = getattr(response, "content", b"")
    if not content:
        return frozenset()
    try:
        crl = x509.load_der_x509_crl(content)
    except ValueError as error:
        raise ActionFailed(f"the CRL of {mount!r} is not a DER CRL: {error}") from None
    return frozenset(serial_from_int(entry.serial_number) for entry in crl)


def _parse_certificate(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def uri_sans(certificate: x509.Certificate) -> tuple[str, ...]:
    """The certificate's URI SANs (a workload's SPIFFE ID), or ()."""
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(extension.value.get_values_for_type(x509.UniformResourceIdentifier))


def read_certificate_record(client: hvac.Client, mount: str, serial: str) -> CertificateRecord | None:
    """The stored certificate and its revocation time; None when the mount does not store the serial."""
    serial = canonical_serial(serial)
    with vault_errors(f"read certificate {serial} on {mount}"):
        try:
            response = client.secrets.pki.read_certificate(serial, mount_point=mount)
        except hvac.exceptions.InvalidPath as error:
            if _is_missing_mount(error):
                raise _missing_mount(mount) from None
            return None
    data = read_data(response)
    pem = data.get("certificate")
    if not isinstance(pem, str) or not pem.strip():
        return None
    certificate = _parse_certificate(pem)
    return CertificateRecord(
        serial=serial,
        revocation_time=int(data.get("revocation_time") or 0),
        not_after=certificate.not_valid_after_utc,
        uri_sans=uri_sans(certificate),
    )


def _list_keys(client: hvac.Client, path: str) -> list[str]:
    """The keys of a LIST endpoint; an empty listing (404 without errors) is []."""
    with vault_errors(f"list {path}"):
        try:
            response: Any = client.adapter.list(f"/v1/{path}")
        except hvac.exceptions.InvalidPath as error:
            if error.errors and _is_missing_mount(error):
                raise ActionFailed(f"nothing is mounted at {path!r}") from None
            return []
    return [str(key) for key in read_data(response).get("keys") or []]


# --- locate -----------------------------------------------------------------------------------


def find_certificates_by_uri_san(client: hvac.Client, mount: str, spiffe_id: str) -> list[PkiCertificateRef]:
    """Live certificates of the mount whose URI SAN is exactly `spiffe_id`.

    Revoked and expired certificates are left out: they are already dead. This reads every stored
    certificate of the mount (LIST certs, then one read each); serials on `certs/revoked` are skipped
    without a read.
    """
    if not spiffe_id.startswith("spiffe://"):
        raise InvalidInput(f"{spiffe_id!r} is not a SPIFFE ID (spiffe://trust-domain/...)")
    revoked = {canonical_serial(key) for key in _list_keys(client, f"{mount}/certs/revoked")}
    now = datetime.now(UTC)
    found: list[PkiCertificateRef] = []
    for key in _list_keys(client, f"{mount}/certs"):
        serial = canonical_serial(key)
        if serial in revoked:
            continue
        record = read_certificate_record(client, mount, serial)
        if record is None or record.revoked or record.expired(now):
            continue
        if spiffe_id in record.uri_sans:
            found.append(PkiCertificateRef(mount=mount, serial=serial))
    return found


# --- act --------------------------------------------------------------------------------------


def rebuild_crl(client: hvac.Client, mount: str) -> None:
    """Force the mount to rebuild its CRL now (`<mount>/crl/rotate`)."""
    with vault_errors(f"rebuild CRL of {mount}"):
        client.adapter.get(f"/v1/{mount}/crl/rotate")


def _ensure_on_crl(client: hvac.Client, mount: str, serial: str) -> bool:
    """Rebuild a CRL that does not list a revoked serial. True when a rebuild was requested."""
    if serial in fetch_revoked_serials(client, mount):
        return False
    rebuild_crl(client, mount)
    return True


def revoke_certificate_by_serial(
    client: hvac.Client, ref: PkiCertificateRef, *, rebuild_stale_crl: bool = True
) -> ActOutcome:
    """Revoke one certificate. Idempotent: revoked, expired or unknown serials change nothing.

    With `rebuild_stale_crl`, a revoked serial missing from the published CRL (auto_rebuild, or a revoke
    that did not reach the CRL) triggers a CRL rebuild, so a rerun repairs a stale CRL.
    """
    mount, serial = ref.mount, canonical_serial(ref.serial)
    record = read_certificate_record(client, mount, serial)
    if record is None:
        return ActOutcome(
            changed=False,
            absent=True,
            detail=(
                f"already absent: no certificate {serial} is stored on {mount} (never issued there, tidied, "
                "or issued by a no_store role); nothing to revoke"
            ),
        )
    if record.revoked:
        if rebuild_stale_crl and _ensure_on_crl(client, mount, serial):
            return ActOutcome(
                changed=True,
                detail=f"certificate {serial} was already revoked but missing from the CRL; rebuilt the CRL",
            )
        return ActOutcome(
            changed=False, detail=f"already absent: certificate {serial} was revoked at {record.revocation_time}"
        )
    if record.expired():
        return ActOutcome(
            changed=False, detail=f"already absent: certificate {serial} expired at {record.not_after.isoformat()}"
        )

    with vault_errors(f"revoke certificate {serial} on {mount}"):
        try:
            response = client.secrets.pki.revoke_certificate(serial, mount_point=mount)
        except hvac.exceptions.InvalidRequest as error:
            if any(_NOT_FOUND in str(message) for message in error.errors or []):
                return ActOutcome(changed=False, absent=True, detail=f"already absent: {serial} vanished from {mount}")
            raise ActionFailed(f"revoke certificate {serial} on {mount} refused: {error.errors}") from None
    warnings = response.get("warnings") if isinstance(response, dict) else None
    if any(_ALREADY_EXPIRED in str(warning) for warning in warnings or []):
        return ActOutcome(changed=False, detail=f"already absent: certificate {serial} expired before the revoke")
    if rebuild_stale_crl:
        _ensure_on_crl(client, mount, serial)
    return ActOutcome(changed=True, detail=f"revoked certificate {serial} on {mount}")


# --- verify -----------------------------------------------------------------------------------


def verify_certificate_revoked(
    client: hvac.Client, ref: PkiCertificateRef, *, revoked_serials: Iterable[str] | None = None
) -> Evidence:
    """Read back both proofs: the serial on the parsed CRL, and `cert/<serial>` with a revocation time.

    Pass `revoked_serials` (from one `fetch_revoked_serials`) to verify many serials of a mount with one
    CRL fetch. An expired certificate is confirmed dead even though Vault keeps it off the CRL.
    """
    mount, serial = ref.mount, canonical_serial(ref.serial)
    on_crl_set = fetch_revoked_serials(client, mount) if revoked_serials is None else set(revoked_serials)
    on_crl = serial in on_crl_set
    record = read_certificate_record(client, mount, serial)
    check = f"CRL of {mount} and {mount}/cert/{serial}"
    crl_text = "on the CRL" if on_crl else "not on the CRL"
    if record is None:
        return Evidence(
            check=check,
            observed=f"{crl_text}; no stored certificate with this serial"
            + ("" if on_crl else " (a no_store or foreign certificate would still be usable)"),
            confirmed=on_crl,
        )
    if record.revoked:
        observed = f"revocation_time={record.revocation_time}; {crl_text}"
        if not on_crl:
            observed += " (stale CRL: the revoke did not reach it; act again to rebuild it)"
        return Evidence(check=check, observed=observed, confirmed=on_crl)
    if record.expired():
        return Evidence(
            check=check, observed=f"not revoked but expired at {record.not_after.isoformat()}", confirmed=True
        )
    return Evidence(check=check, observed=f"revocation_time=0; {crl_text}; still valid", confirmed=False)


# --- handler ----------------------------------------------------------------------------------


class PkiCertificateHandler:
    """CredentialHandler for PKI certificates: revoke by serial, verify against the CRL and the cert record."""

    kinds: frozenset[CredentialKind] = frozenset({CredentialKind.PKI_CERTIFICATE})

    def __init__(self, client: hvac.Client, *, rebuild_stale_crl: bool = True) -> None:
        self._client = client
        self._rebuild_stale_crl = rebuild_stale_crl

    @staticmethod
    def _target(action: Action) -> PkiCertificateRef:
        if not isinstance(action.target, PkiCertificateRef) or action.kind is not ActionKind.REVOKE:
            raise UnsupportedAction(f"PkiCertificateHandler cannot {action.kind} a {action.target.kind}")
        return action.target

    def act(self, action: Action) -> ActOutcome:
        return revoke_certificate_by_serial(
            self._client, self._target(action), rebuild_stale_crl=self._rebuild_stale_crl
        )

    def verify(self, action: Action) -> Evidence:
        return verify_certificate_revoked(self._client, self._target(action))

    def exists(self, ref: CredentialRef) -> bool | None:
        # A revoked certificate keeps its record: it existed, so "already absent" is honest for it.
        return (
            isinstance(ref, PkiCertificateRef)
            and read_certificate_record(self._client, ref.mount, ref.serial) is not None
        )
