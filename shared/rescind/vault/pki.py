"""PKI certificates, by mount + serial: locate by URI SAN, revoke, verify against the parsed CRL.

A certificate is proved dead only by what a relying party would see: its serial on the CRL that the
mount publishes, and `<mount>/cert/<serial>` recording a revocation time (or the certificate having
expired). The revoke answer is never proof: with `auto_rebuild` (and in Vault issue #12227) a revoke
answers "revoked" while the CRL does not change.

A serial that the mount does not store is reported as absent by `act`, but `verify` does not confirm
it: a certificate issued by a `no_store` role, or by another mount, is not stored and is still usable.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

import hvac
import hvac.exceptions

from rescind.concurrent_reads import ReadAfter
from rescind.engine.base import KindHandler, Step, seen_state
from rescind.exceptions import ActionFailed, InvalidInput
from rescind.holds import GuardFacts
from rescind.kinds import Backends, GuardRead, InventoryScan, InventorySection, KindSpec, ValueLocator
from rescind.leaks.types import LocatedLeak, SecretType, Unlocated
from rescind.models import (
    Action,
    ActionKind,
    ActOutcome,
    CredentialKind,
    Evidence,
    PkiCertificateRef,
)
from rescind.vault.client import read_data, vault_errors
from rescind.vault.common import list_keys

if TYPE_CHECKING:
    from cryptography import x509

    from rescind.discovery import DiscoveryScope
    from rescind.kinds import LeakSearch
    from rescind.leaks.types import LeakAlert

# OpenBao's 400 for a revoke of a serial it does not store.
_NOT_FOUND = "not found"
# OpenBao's warning when it refuses to put an expired certificate on the CRL.
_ALREADY_EXPIRED = "already expired"
_NO_ROUTE = "no handler for route"
# A mount's CRL, as the serials it lists (`fetch_revoked_serials`).
CrlRead = Callable[[str], frozenset[str]]


@dataclass(frozen=True)
class CertificateRecord:
    """What `<mount>/cert/<serial>` says. The certificate is public; no private key is ever read."""

    serial: str
    revocation_time: int  # unix seconds, 0 when not revoked
    not_after: datetime
    uri_sans: tuple[str, ...]
    not_before: datetime
    is_ca: bool  # the mount's own issuer, not a workload's credential
    der: bytes = field(repr=False, compare=False)  # the public certificate, to tell it from another of this serial

    @property
    def revoked(self) -> bool:
        return self.revocation_time > 0

    @property
    def lifetime(self) -> timedelta:
        return self.not_after - self.not_before

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


@dataclass(frozen=True)
class PublishedCrl:
    this_update: datetime | None  # None: the mount publishes no CRL yet
    next_update: datetime | None
    serials: frozenset[str]  # in Vault's serial form


def read_published_crl(client: hvac.Client, mount: str) -> PublishedCrl:
    """The mount's current CRL, parsed. An empty answer (no CA yet, or the CRL disabled) lists nothing."""
    with vault_errors(f"fetch CRL of {mount}"):
        try:
            response = client.adapter.get(f"/v1/{mount}/crl")
        except hvac.exceptions.InvalidPath as error:
            if _is_missing_mount(error):
                raise _missing_mount(mount) from None
            return PublishedCrl(None, None, frozenset())
    content = getattr(response, "content", b"")
    if not content:
        return PublishedCrl(None, None, frozenset())
    from cryptography import x509  # on use: most cold starts parse no certificate

    try:
        crl = x509.load_der_x509_crl(content)
    except ValueError as error:
        raise ActionFailed(f"the CRL of {mount!r} is not a DER CRL: {error}") from None
    return PublishedCrl(
        this_update=crl.last_update_utc,
        next_update=crl.next_update_utc,
        serials=frozenset(serial_from_int(entry.serial_number) for entry in crl),
    )


def fetch_revoked_serials(client: hvac.Client, mount: str) -> frozenset[str]:
    """Every serial on the mount's current CRL, from one fetch: one fetch verifies any number of serials.

    An empty answer is an empty set: nothing is proved revoked by it.
    """
    return read_published_crl(client, mount).serials


def _parse_certificate(pem: str) -> x509.Certificate:
    from cryptography import x509

    return x509.load_pem_x509_certificate(pem.encode())


def uri_sans(certificate: x509.Certificate) -> tuple[str, ...]:
    """The certificate's URI SANs (a workload's SPIFFE ID), or ()."""
    from cryptography import x509

    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(extension.value.get_values_for_type(x509.UniformResourceIdentifier))


def _is_ca(certificate: x509.Certificate) -> bool:
    from cryptography import x509

    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def read_certificate_record(
    client: hvac.Client, mount: str, serial: str, *, missing_mount_is_absent: bool = False
) -> CertificateRecord | None:
    """The stored certificate and its revocation time; None when the mount does not store the serial.

    A mount that does not exist raises ActionFailed, unless `missing_mount_is_absent` (it then stores nothing).
    """
    serial = canonical_serial(serial)
    with vault_errors(f"read certificate {serial} on {mount}"):
        try:
            response = client.secrets.pki.read_certificate(serial, mount_point=mount)
        except hvac.exceptions.InvalidPath as error:
            if _is_missing_mount(error) and not missing_mount_is_absent:
                raise _missing_mount(mount) from None
            return None
    data = read_data(response)
    pem = data.get("certificate")
    if not isinstance(pem, str) or not pem.strip():
        return None
    certificate = _parse_certificate(pem)
    from cryptography.hazmat.primitives.serialization import Encoding

    return CertificateRecord(
        serial=serial,
        revocation_time=int(data.get("revocation_time") or 0),
        not_after=certificate.not_valid_after_utc,
        uri_sans=uri_sans(certificate),
        not_before=certificate.not_valid_before_utc,
        is_ca=_is_ca(certificate),
        der=certificate.public_bytes(Encoding.DER),
    )


def list_certificate_serials(client: hvac.Client, mount: str, *, revoked: bool = False) -> list[str]:
    """The serials the mount stores (or its revoked ones), in Vault's form, sorted. A missing mount raises."""
    path = f"/v1/{mount}/certs/revoked" if revoked else f"/v1/{mount}/certs"
    with vault_errors(f"list {path}"):
        try:
            keys = list_keys(client, path, paged=False)  # OpenBao pages `certs` by `aa-bb`, lists `aa:bb`
        except hvac.exceptions.InvalidPath as error:
            raise _missing_mount(mount) from error
    return sorted({canonical_serial(key) for key in keys})


# --- locate -----------------------------------------------------------------------------------


def find_certificates_by_uri_san(client: hvac.Client, mount: str, spiffe_id: str) -> list[PkiCertificateRef]:
    """Live certificates of the mount whose URI SAN is exactly `spiffe_id`.

    Revoked and expired certificates are left out: they are already dead. This reads every stored
    certificate of the mount (LIST certs, then one read each); serials on `certs/revoked` are skipped
    without a read.
    """
    return [ref for ref, _record in find_certificate_records_by_uri_san(client, mount, spiffe_id)]


def find_certificate_records_by_uri_san(
    client: hvac.Client, mount: str, spiffe_id: str
) -> list[tuple[PkiCertificateRef, CertificateRecord]]:
    """As `find_certificates_by_uri_san`, with the record each certificate was found in."""
    if not spiffe_id.startswith("spiffe://"):
        raise InvalidInput(f"{spiffe_id!r} is not a SPIFFE ID (spiffe://trust-domain/...)")
    revoked = set(list_certificate_serials(client, mount, revoked=True))
    now = datetime.now(UTC)
    found: list[tuple[PkiCertificateRef, CertificateRecord]] = []
    for serial in list_certificate_serials(client, mount):
        if serial in revoked:
            continue
        record = read_certificate_record(client, mount, serial)
        if record is None or record.revoked or record.expired(now):
            continue
        if spiffe_id in record.uri_sans:
            found.append((PkiCertificateRef(mount=mount, serial=serial), record))
    return found


# --- act --------------------------------------------------------------------------------------


def rebuild_crl(client: hvac.Client, mount: str) -> None:
    """Force the mount to rebuild its CRL now (`<mount>/crl/rotate`)."""
    with vault_errors(f"rebuild CRL of {mount}"):
        client.adapter.get(f"/v1/{mount}/crl/rotate")


def _ensure_on_crl(client: hvac.Client, mount: str, serial: str, read_crl: CrlRead) -> bool:
    """Rebuild a CRL that does not list a revoked serial. True when a rebuild was requested."""
    if serial in read_crl(mount):
        return False
    rebuild_crl(client, mount)
    return True


def revoke_certificate_by_serial(
    client: hvac.Client,
    ref: PkiCertificateRef,
    *,
    rebuild_stale_crl: bool = True,
    seen: GuardFacts | None = None,
    read_crl: CrlRead | None = None,
) -> ActOutcome:
    """Revoke one certificate. Idempotent: revoked, expired or unknown serials change nothing.

    With `rebuild_stale_crl`, a revoked serial missing from the published CRL (auto_rebuild, or a revoke
    that did not reach the CRL) triggers a CRL rebuild, so a rerun repairs a stale CRL. `seen`: what the action's
    guard read of `<mount>/cert/<serial>` moments before, the record this act tells the certificate apart by.
    `read_crl`: the CRL fetch, begun after it is asked for (the handler's, shared by the revokes that end together).
    """
    read_crl = read_crl or partial(fetch_revoked_serials, client)
    mount, serial = ref.mount, canonical_serial(ref.serial)
    record = seen_state(seen, CertificateRecord, lambda: read_certificate_record(client, mount, serial))
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
        if rebuild_stale_crl and _ensure_on_crl(client, mount, serial, read_crl):
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
    answer = response if isinstance(response, dict) else {}
    if any(_ALREADY_EXPIRED in str(warning) for warning in answer.get("warnings") or []):
        return ActOutcome(changed=False, detail=f"already absent: certificate {serial} expired before the revoke")
    on_crl = read_crl(mount)
    if rebuild_stale_crl and serial not in on_crl:
        rebuild_crl(client, mount)
        on_crl = read_crl(mount)
    # The read-back: the CRL fetched after the revoke (what a relying party sees), beside the revocation time the
    # revoke answered from the record it stored. `<mount>/cert/<serial>` is not read again: the read before the
    # revoke told this certificate apart (stored, not revoked, not expired), and the revoke answered its new state.
    revoked_at = int(read_data(answer).get("revocation_time") or 0)
    return ActOutcome(
        changed=True,
        detail=f"revoked certificate {serial} on {mount}",
        read_back=_revoke_read_back(ref, serial, revoked_at, on_crl=serial in on_crl),
    )


def _revoke_read_back(ref: PkiCertificateRef, serial: str, revoked_at: int, *, on_crl: bool) -> Evidence:
    """A revocation's proof: the serial on the CRL read after it, and a revocation time in the revoke's answer."""
    observed = f"revocation_time={revoked_at} (the revoke's answer); " + ("on the CRL" if on_crl else "not on the CRL")
    if not on_crl:
        observed += " (stale CRL: the revoke did not reach it; act again to rebuild it)"
    return Evidence(
        check=f"CRL of {ref.mount} after the revoke of {serial}", observed=observed, confirmed=on_crl and revoked_at > 0
    )


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


# --- a leaked value --------------------------------------------------------------------------


def locate_leaked_certificate(search: LeakSearch, alert: LeakAlert, pem: str | None) -> LocatedLeak | Unlocated:
    """The PEM's serial, on the PKI mount in scope that issued exactly this certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        leaked = x509.load_pem_x509_certificate((pem or "").encode())
    except ValueError:
        return Unlocated(why="the value is not a PEM certificate")
    serial = serial_from_int(leaked.serial_number)
    for mount in search.scope.pki_mounts:
        # A mount in scope that does not exist issued nothing.
        record = read_certificate_record(search.backends.vault, mount, serial, missing_mount_is_absent=True)
        # The same serial on another CA is another certificate: only the exact one is ours to revoke.
        if record is None or not hmac.compare_digest(record.der, leaked.public_bytes(Encoding.DER)):
            continue
        return LocatedLeak(
            credentials=(PkiCertificateRef(mount=mount, serial=serial),),
            owner=record.uri_sans[0] if record.uri_sans else None,
            evidence=f"certificate {serial} was issued by PKI mount {mount}",
        )
    return Unlocated(why=f"no PKI mount in scope issued certificate {serial}")


# --- the inventory report ---------------------------------------------------------------------


def _inventory(scan: InventoryScan) -> list[InventorySection]:
    from rescind.vault.pki_inventory import certificate_sections  # only the report reads it

    return certificate_sections(scan)


# --- the kind ---------------------------------------------------------------------------------


class PkiCertificateHandler(KindHandler[PkiCertificateRef]):
    """CredentialHandler for PKI certificates: revoke by serial, verify against the CRL and the cert record."""

    def __init__(self, client: hvac.Client, *, rebuild_stale_crl: bool = True) -> None:
        # A revoke's read-back CRL, begun after its revoke answered: the revokes of a batch that end together share it.
        crls: ReadAfter[str, frozenset[str]] = ReadAfter(partial(fetch_revoked_serials, client))
        super().__init__(
            CredentialKind.PKI_CERTIFICATE,
            PkiCertificateRef,
            {
                ActionKind.REVOKE: Step(
                    lambda ref, _action, seen: revoke_certificate_by_serial(
                        client, ref, rebuild_stale_crl=rebuild_stale_crl, seen=seen, read_crl=crls
                    ),
                    lambda ref, _action: verify_certificate_revoked(client, ref),
                )
            },
        )
        self._client = client

    def verify_many(self, actions: Sequence[Action]) -> list[Evidence]:
        """Each certificate's record, against its mount's CRL fetched and parsed once for the whole pass."""
        crls: dict[str, frozenset[str]] = {}
        found: list[Evidence] = []
        for action in actions:
            ref, _step = self._dispatch(action)
            if ref.mount not in crls:
                crls[ref.mount] = fetch_revoked_serials(self._client, ref.mount)
            found.append(verify_certificate_revoked(self._client, ref, revoked_serials=crls[ref.mount]))
        return found

    def look_up(self, ref: PkiCertificateRef) -> bool | None:
        # A revoked certificate keeps its record: it existed, so "already absent" is honest for it.
        return read_certificate_record(self._client, ref.mount, ref.serial) is not None


def _guard_facts(read: GuardRead, ref: PkiCertificateRef) -> GuardFacts:
    """A certificate carries no hold; its URI SANs name the workloads it belongs to. The record read is kept for
    the same action's revoke."""
    return _facts_of(read_certificate_record(read.backends.vault, ref.mount, ref.serial))


def _facts_of(record: CertificateRecord | None) -> GuardFacts:
    owners = frozenset(record.uri_sans) if record is not None else frozenset()
    return GuardFacts(hold=None, owners=owners, found=record is not None, state=record)


def _discover(backends: Backends, workload_id: str, scope: DiscoveryScope) -> list[PkiCertificateRef]:
    if not workload_id.startswith("spiffe://"):
        return []  # only a SPIFFE ID is a URI SAN
    found: list[PkiCertificateRef] = []
    for mount in scope.pki_mounts:
        for ref, record in find_certificate_records_by_uri_san(backends.vault, mount, workload_id):
            backends.keep_guard_facts(ref, _facts_of(record))
            found.append(ref)
    return found


KIND = KindSpec(
    kind=CredentialKind.PKI_CERTIFICATE,
    ref_type=PkiCertificateRef,
    ending_action=ActionKind.REVOKE,
    build_handler=lambda backends: PkiCertificateHandler(backends.vault),
    read_guard_facts=_guard_facts,
    discover=_discover,
    locate_leaked={SecretType.CERTIFICATE: ValueLocator(locate_leaked_certificate, needs_value=True)},
    inventory=_inventory,
)
