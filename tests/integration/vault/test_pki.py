"""PKI certificates against a real OpenBao: revoke by serial, verify on the parsed CRL and the cert record."""

from __future__ import annotations

import time
from collections.abc import Callable

import hvac
import pytest
from cryptography import x509

from rescind.engine.base import CredentialHandler
from rescind.exceptions import ActionFailed, InvalidInput, UnsupportedAction
from rescind.models import Action, ActionKind, KvSecretRef, PkiCertificateRef
from rescind.vault.pki import (
    PkiCertificateHandler,
    canonical_serial,
    fetch_revoked_serials,
    find_certificates_by_uri_san,
    read_certificate_record,
    serial_from_int,
    verify_certificate_revoked,
)

Issue = Callable[..., str]


@pytest.fixture
def pki_mount(vault: hvac.Client, unique: str) -> str:
    """A PKI mount of its own with an EC root and a role allowing SPIFFE URI SANs."""
    mount = f"pki-{unique}"
    vault.sys.enable_secrets_engine("pki", path=mount, config={"max_lease_ttl": "48h"})
    vault.secrets.pki.generate_root(
        "internal", "rescind-test.example", extra_params={"key_type": "ec", "ttl": "24h"}, mount_point=mount
    )
    for role, no_store in (("workload", False), ("ephemeral", True)):
        vault.secrets.pki.create_or_update_role(
            role,
            {
                "allow_any_name": True,
                "allowed_uri_sans": "spiffe://*",
                "key_type": "ec",
                "ttl": "1h",
                "no_store": no_store,
            },
            mount_point=mount,
        )
    return mount


@pytest.fixture
def issue(vault: hvac.Client, pki_mount: str) -> Issue:
    """Issue a certificate and return its serial (the private key is dropped at once)."""

    def issue_certificate(spiffe_id: str | None = None, *, role: str = "workload", ttl: str = "1h") -> str:
        extra: dict[str, str] = {"ttl": ttl}
        if spiffe_id is not None:
            extra["uri_sans"] = spiffe_id
        issued = vault.secrets.pki.generate_certificate(role, "svc.example", extra_params=extra, mount_point=pki_mount)
        return str(issued["data"]["serial_number"])

    return issue_certificate


def revoke(ref: PkiCertificateRef) -> Action:
    return Action(kind=ActionKind.REVOKE, target=ref, reason="test: leaked certificate")


def crl_serials_as_ints(vault: hvac.Client, mount: str) -> set[int]:
    """The test's own read of the CRL, independent of the module under test."""
    response = vault.adapter.get(f"/v1/{mount}/crl")
    return {entry.serial_number for entry in x509.load_der_x509_crl(response.content)}


def test_handler_implements_the_protocol(vault: hvac.Client) -> None:
    assert isinstance(PkiCertificateHandler(vault), CredentialHandler)


def test_revoke_twice_is_verified_on_the_crl_and_the_cert_record(
    vault: hvac.Client, pki_mount: str, issue: Issue
) -> None:
    # Given a live certificate
    serial = issue("spiffe://td.example/ns/a/sa/web")
    handler = PkiCertificateHandler(vault)
    action = revoke(PkiCertificateRef(mount=pki_mount, serial=serial))
    assert handler.verify(action).confirmed is False

    # When it is revoked
    first = handler.act(action)

    # Then the serial is on the parsed CRL and the record has a revocation time
    assert first.changed is True
    assert int(serial.replace(":", ""), 16) in crl_serials_as_ints(vault, pki_mount)
    assert vault.secrets.pki.read_certificate(serial, mount_point=pki_mount)["data"]["revocation_time"] > 0
    evidence = handler.verify(action)
    assert evidence.confirmed is True
    assert "on the CRL" in evidence.observed

    # And a second run changes nothing
    second = handler.act(action)
    assert second.changed is False
    assert second.absent is False
    assert "already absent" in second.detail
    assert handler.verify(action).confirmed is True


def test_a_stale_crl_is_not_proof_and_act_rebuilds_it(vault: hvac.Client, pki_mount: str, issue: Issue) -> None:
    # Given a mount that rebuilds its CRL lazily: a revoke answers "revoked" but the CRL does not change
    # (the shape of Vault issue #12227)
    vault.write(f"{pki_mount}/config/crl", auto_rebuild=True, auto_rebuild_grace_period="1h", expiry="72h")
    serial = issue()
    action = revoke(PkiCertificateRef(mount=pki_mount, serial=serial))

    # When it is revoked without repairing the CRL
    acted = PkiCertificateHandler(vault, rebuild_stale_crl=False).act(action)

    # Then verification does not trust the revoke answer
    assert acted.changed is True
    assert int(serial.replace(":", ""), 16) not in crl_serials_as_ints(vault, pki_mount)
    stale = PkiCertificateHandler(vault).verify(action)
    assert stale.confirmed is False
    assert "stale CRL" in stale.observed

    # When act runs again (default: repair a stale CRL), the CRL is rebuilt and the proof holds
    repaired = PkiCertificateHandler(vault).act(action)
    assert repaired.changed is True
    assert int(serial.replace(":", ""), 16) in crl_serials_as_ints(vault, pki_mount)
    assert PkiCertificateHandler(vault).verify(action).confirmed is True
    assert PkiCertificateHandler(vault).act(action).changed is False


def test_a_serial_the_mount_does_not_store_is_absent_but_never_confirmed(
    vault: hvac.Client, pki_mount: str, issue: Issue
) -> None:
    # Given a certificate from a no_store role (valid, usable, but not stored) and a serial never issued
    unstored = issue(role="ephemeral")
    never_issued = "0f:" + ":".join(["ab"] * 19)
    handler = PkiCertificateHandler(vault)
    for serial in (unstored, never_issued):
        action = revoke(PkiCertificateRef(mount=pki_mount, serial=serial))

        # When it is revoked, twice
        outcomes = [handler.act(action), handler.act(action)]

        # Then act reports it absent, but verify refuses to call it dead: nothing proves it unusable
        assert all(o.changed is False and o.absent is True and "already absent" in o.detail for o in outcomes)
        evidence = handler.verify(action)
        assert evidence.confirmed is False
        assert "no stored certificate" in evidence.observed


def test_an_expired_certificate_is_already_dead(vault: hvac.Client, pki_mount: str, issue: Issue) -> None:
    # Given a certificate that has expired (OpenBao refuses to put it on the CRL)
    serial = issue(ttl="1s")
    time.sleep(2.1)
    action = revoke(PkiCertificateRef(mount=pki_mount, serial=serial))

    outcome = PkiCertificateHandler(vault).act(action)

    assert outcome.changed is False
    assert "expired" in outcome.detail
    evidence = PkiCertificateHandler(vault).verify(action)
    assert evidence.confirmed is True
    assert "expired" in evidence.observed


def test_serials_convert_between_crl_integers_and_vault_form() -> None:
    # A DER serial with its high bit set carries a leading 00; Vault's form drops leading zero bytes
    assert serial_from_int(0xFF01) == "ff:01"
    assert serial_from_int(0x0A00FF) == "0a:00:ff"
    assert serial_from_int(0) == "00"
    assert canonical_serial("00:ff:01") == "ff:01"
    assert canonical_serial("00-0a-00-ff") == "0a:00:ff"
    with pytest.raises(InvalidInput):
        serial_from_int(-1)


def test_a_ref_with_a_leading_zero_byte_names_the_same_certificate(
    vault: hvac.Client, pki_mount: str, issue: Issue
) -> None:
    # Given a serial written as openssl prints high-bit serials: with a leading 00 byte
    serial = issue()
    action = revoke(PkiCertificateRef(mount=pki_mount, serial="00:" + serial.upper()))

    assert PkiCertificateHandler(vault).act(action).changed is True
    assert PkiCertificateHandler(vault).verify(action).confirmed is True
    assert serial in fetch_revoked_serials(vault, pki_mount)


def test_one_crl_fetch_verifies_many_serials(vault: hvac.Client, pki_mount: str, issue: Issue) -> None:
    serials = [issue() for _ in range(4)]
    handler = PkiCertificateHandler(vault)
    for serial in serials[:3]:
        handler.act(revoke(PkiCertificateRef(mount=pki_mount, serial=serial)))

    revoked = fetch_revoked_serials(vault, pki_mount)

    results = [
        verify_certificate_revoked(vault, PkiCertificateRef(mount=pki_mount, serial=s), revoked_serials=revoked)
        for s in serials
    ]
    assert [r.confirmed for r in results] == [True, True, True, False]
    assert revoked == {serial_from_int(n) for n in crl_serials_as_ints(vault, pki_mount)}


def test_find_certificates_by_uri_san_skips_revoked_and_other_workloads(
    vault: hvac.Client, pki_mount: str, issue: Issue
) -> None:
    # Given two live certificates of one workload, one revoked, and one of another workload
    spiffe_id = "spiffe://td.example/ns/pay/sa/api"
    live = {issue(spiffe_id), issue(spiffe_id)}
    revoked = issue(spiffe_id)
    issue("spiffe://td.example/ns/pay/sa/api-admin")  # a longer ID with the same prefix
    issue()
    PkiCertificateHandler(vault).act(revoke(PkiCertificateRef(mount=pki_mount, serial=revoked)))

    found = find_certificates_by_uri_san(vault, pki_mount, spiffe_id)

    assert {ref.serial for ref in found} == live
    assert all(ref.mount == pki_mount for ref in found)
    record = read_certificate_record(vault, pki_mount, found[0].serial)
    assert record is not None
    assert spiffe_id in record.uri_sans


def test_bad_inputs_are_refused_and_change_nothing(vault: hvac.Client, pki_mount: str, issue: Issue) -> None:
    serial = issue()
    handler = PkiCertificateHandler(vault)

    with pytest.raises(InvalidInput):
        find_certificates_by_uri_san(vault, pki_mount, "https://not-a-spiffe-id")
    with pytest.raises(UnsupportedAction):
        handler.act(
            Action(kind=ActionKind.ROTATE, target=KvSecretRef(path="a/b"), reason="wrong kind", params={"run_id": "r"})
        )
    # A mount that does not exist is an error, not "already absent": the real certificate may be elsewhere
    with pytest.raises(ActionFailed, match="no PKI secrets engine"):
        handler.act(revoke(PkiCertificateRef(mount=f"{pki_mount}-typo", serial=serial)))
    # The CA cannot revoke its own certificate: refused, not reported as done
    ca_pem = vault.secrets.pki.read_ca_certificate(mount_point=pki_mount)
    ca_serial = serial_from_int(x509.load_pem_x509_certificate(ca_pem.encode()).serial_number)
    with pytest.raises(ActionFailed, match="refused"):
        handler.act(revoke(PkiCertificateRef(mount=pki_mount, serial=ca_serial)))

    # Nothing was revoked
    assert fetch_revoked_serials(vault, pki_mount) == frozenset()
    record = read_certificate_record(vault, pki_mount, serial)
    assert record is not None
    assert record.revoked is False
