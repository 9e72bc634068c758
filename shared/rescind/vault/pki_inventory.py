"""What the inventory report counts of a PKI mount: its roles' and its own TTLs above ceiling, and every live
certificate (not a CA) with its lifetime. Read through rescind.vault.pki."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from functools import partial

from rescind.kinds import InventoryRow, InventoryScan, InventorySection
from rescind.models import CredentialKind, PkiCertificateRef, TtlTargetType, VaultTtlTargetRef
from rescind.models.refs import format_ref
from rescind.vault.pki import list_certificate_serials, read_certificate_record
from rescind.vault.ttl import list_role_names, ttl_target_rows


def certificate_sections(scan: InventoryScan) -> list[InventorySection]:
    """One section per PKI mount in scope: its roles' and its own TTLs, and its live certificates."""
    return [(f"pki mount {mount}", partial(_certificate_rows, scan, mount)) for mount in scan.scope.pki_mounts]


def _certificate_rows(scan: InventoryScan, mount: str) -> Iterator[InventoryRow]:
    """The mount's roles and its own TTLs above ceiling, then every live certificate (not a CA) and its lifetime."""
    vault = scan.backends.vault
    scan.wait()
    for role in list_role_names(vault, TtlTargetType.PKI_ROLE, mount):
        yield from ttl_target_rows(
            scan, VaultTtlTargetRef(target_type=TtlTargetType.PKI_ROLE, mount=mount, role_name=role)
        )
    yield from ttl_target_rows(scan, VaultTtlTargetRef(target_type=TtlTargetType.MOUNT, mount=mount))
    max_lifetime = timedelta(days=scan.policy.pki_max_certificate_days)
    scan.wait()
    for serial in list_certificate_serials(vault, mount):
        scan.wait()
        record = read_certificate_record(vault, mount, serial)
        if record is None or record.revoked or record.is_ca or record.not_after <= scan.now:
            continue  # tidied during the scan, dead, or the mount's own issuer
        days = record.lifetime / timedelta(days=1)
        yield InventoryRow(
            target=format_ref(PkiCertificateRef(mount=mount, serial=serial)),
            kind=CredentialKind.PKI_CERTIFICATE,
            created_at=record.not_before,
            owner=record.uri_sans[0] if record.uri_sans else None,
            ttl_violation=f"lifetime {days:.1f} days > {max_lifetime.days} days"
            if record.lifetime > max_lifetime
            else None,
        )
