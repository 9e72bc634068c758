"""Paged LISTs against a real OpenBao: discovery finds every certificate and secret-id whatever the page size.

OpenBao pages a LIST by its storage keys, which PKI `certs` (listed `aa:bb`, stored `aa-bb`) and AppRole
`secret-id` (listed by accessor, stored by HMAC) list in another form: paging them by the listed key skipped
credentials (the offboarding benchmark planned 1,996 of 2,000: four certificates past a 500-key page).
A page of 2 makes every page boundary show it with a few dozen credentials.
"""

from __future__ import annotations

import hvac
import pytest

import rescind.vault.common as common
from rescind.discovery import DiscoveryScope, discover_workload
from rescind.models import AppRoleSecretIdRef, PkiCertificateRef
from rescind.vault.pki import canonical_serial

pytestmark = pytest.mark.integration

CERTIFICATES = 60
SECRET_IDS = 20


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "LIST_PAGE_SIZE", 2)


def test_discovery_finds_every_certificate_and_secret_id_when_lists_are_paged(
    vault: hvac.Client, unique: str, small_pages: None
) -> None:
    # Given a workload holding 60 certificates on a PKI mount and 20 secret-ids on an AppRole mount
    workload = f"spiffe://rescind.test/ns/pages/sa/{unique}"
    pki, approle = f"pki-pages-{unique}", f"approle-pages-{unique}"
    vault.sys.enable_secrets_engine("pki", path=pki, config={"max_lease_ttl": "48h"})
    vault.secrets.pki.generate_root("internal", "pages.example", extra_params={"key_type": "ec"}, mount_point=pki)
    vault.secrets.pki.create_or_update_role(
        "workload",
        {"allow_any_name": True, "allowed_uri_sans": "spiffe://*", "key_type": "ec", "ttl": "1h"},
        mount_point=pki,
    )
    serials = {
        str(
            vault.secrets.pki.generate_certificate(
                "workload", f"c{index}.pages.example", extra_params={"uri_sans": workload}, mount_point=pki
            )["data"]["serial_number"]
        )
        for index in range(CERTIFICATES)
    }
    vault.sys.enable_auth_method("approle", path=approle)
    vault.auth.approle.create_or_update_approle("workload", mount_point=approle)
    accessors = {
        str(
            vault.auth.approle.generate_secret_id("workload", metadata={"spiffe_id": workload}, mount_point=approle)[
                "data"
            ]["secret_id_accessor"]
        )
        for _ in range(SECRET_IDS)
    }

    # When discovery looks for it with LIST pages of 2 keys
    found = discover_workload(vault, None, workload, DiscoveryScope(pki_mounts=(pki,), approle_mounts=(approle,)))

    # Then it finds every one of them
    found_serials = {canonical_serial(ref.serial) for ref in found.refs if isinstance(ref, PkiCertificateRef)}
    found_accessors = {ref.accessor for ref in found.refs if isinstance(ref, AppRoleSecretIdRef)}
    assert len(serials) == CERTIFICATES
    assert found_serials == {canonical_serial(serial) for serial in serials}, f"{len(found_serials)} of {CERTIFICATES}"
    assert found_accessors == accessors, f"{len(found_accessors)} of {SECRET_IDS}"
