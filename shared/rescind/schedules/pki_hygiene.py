"""PKI hygiene: per mount, tidy the certificate store and rebuild a stale CRL; flag certificates for a human.

For each mount, in order:
  1. tidy (`<mount>/tidy` with tidy_cert_store, tidy_revoked_certs and the policy's safety buffer). Tidy runs in
     the background, so `<mount>/tidy-status` is polled until a run that began after our request has finished.
     APPLIED when it deleted something, ALREADY when there was nothing to delete.
  2. the CRL (`<mount>/crl`, parsed): rebuilt (`crl/rotate`) when it misses a serial of `certs/revoked`, when
     tidy removed revoked certificates, or when it is past half of its validity. Verified by parsing it again:
     every revoked serial listed, and this_update not older than the rebuild request. Otherwise ALREADY.
  3. every live stored certificate (not a CA, not revoked, not expired) is FLAGGED, never revoked, when its
     lifetime (not_after - not_before) exceeds `pki_max_certificate_days`, or when it has no owner: no URI SAN
     and not recorded for any workload in the inventory.

A flag is a finding, not a change: it is reported again on every run while it holds. Each tidy, rebuild and
flag counts as one of the run's actions; the checkpoint is `<mount>#0` (the mount's tidy and CRL done) or
`<mount>#1#<serial>` (certificates examined up to that serial). Every Vault request waits for the rate limit.
A dry run reads the CRL and the certificates and reports what it would do, and writes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import ValidationError

from rescind.exceptions import ActionFailed, InvalidInput, TransientError
from rescind.inventory.base import Inventory
from rescind.models import PkiCertificateRef
from rescind.models.refs import format_ref
from rescind.schedules.base import CheckpointStore, RateLimiter, SweepProgress
from rescind.schedules.policy import SchedulePolicy
from rescind.schedules.types import Change, ChangeStatus, SweepName, SweepReport, SweepRequest
from rescind.vault.pki import (
    CertificateRecord,
    PublishedCrl,
    canonical_serial,
    list_certificate_serials,
    read_certificate_record,
    read_published_crl,
    rebuild_crl,
)
from rescind.vault.pki_tidy import TidyStatus, read_tidy_status, start_tidy

if TYPE_CHECKING:
    import hvac

_MAINTENANCE = "#0"
_CERTIFICATE = "#1#"
_TIDY_DONE_STATES = frozenset({"Finished", "Error", "Cancelled"})


@dataclass(frozen=True)
class _VaultReader:
    """The sweep's Vault client and its rate limit: every request waits for it."""

    vault: hvac.Client
    limiter: RateLimiter

    def wait(self) -> None:
        self.limiter.wait()


def inventoried_certificates(inventory: Inventory | None) -> frozenset[tuple[str, str]]:
    """(mount, serial) of every PKI certificate the inventory records for a bound workload."""
    if inventory is None:
        return frozenset()
    owned: set[tuple[str, str]] = set()
    for workload_id in sorted({binding.workload_id for binding in inventory.bindings()}):
        for ref in inventory.credentials_of(workload_id):
            if isinstance(ref, PkiCertificateRef):
                owned.add((ref.mount, canonical_serial(ref.serial)))
    return frozenset(owned)


# --- act: tidy and the CRL ---------------------------------------------------------------------------


def tidy_mount(
    reader: _VaultReader, mount: str, *, safety_buffer_seconds: int, dry_run: bool, timeout_seconds: float
) -> tuple[Change, TidyStatus | None]:
    """Run tidy and wait for its status to say it finished. The status is None for a dry run."""
    reader.wait()
    before = read_tidy_status(reader.vault, mount)
    before_text = f"last tidy {before.state or 'never'} {before.time_started or ''}".strip()
    if dry_run:
        return _maintenance(
            mount, "tidy", ChangeStatus.PLANNED, before_text, f"would tidy with safety_buffer {safety_buffer_seconds}s"
        ), None
    reader.wait()
    refused = start_tidy(reader.vault, mount, safety_buffer_seconds=safety_buffer_seconds)
    if refused is not None:
        return _maintenance(mount, "tidy", ChangeStatus.FAILED, before_text, f"tidy refused: {refused}"), None
    deadline = time.monotonic() + timeout_seconds
    reader.wait()
    status = read_tidy_status(reader.vault, mount)
    # A run of ours has a new start time; tidy is asynchronous, so wait for that run to end.
    while status.time_started == before.time_started or status.state not in _TIDY_DONE_STATES:
        if time.monotonic() > deadline:
            detail = f"tidy did not finish within {timeout_seconds:.0f}s (state {status.state}); a rerun checks again"
            return _maintenance(mount, "tidy", ChangeStatus.FAILED, before_text, detail), None
        time.sleep(0.05)
        reader.wait()
        status = read_tidy_status(reader.vault, mount)
    verified = (
        status.state == "Finished"
        and status.tidy_cert_store
        and status.tidy_revoked_certs
        and status.safety_buffer_seconds == safety_buffer_seconds
    )
    deleted_text = f"deleted {status.cert_store_deleted} stored, {status.revoked_deleted} revoked"
    after = f"{status.state} {status.time_started}; {deleted_text}"
    if not verified:
        detail = f"tidy-status does not show our tidy finished: state {status.state} {status.error}".strip()
        return _maintenance(mount, "tidy", ChangeStatus.FAILED, before_text, detail, after=after), status
    deleted = status.cert_store_deleted + status.revoked_deleted
    if deleted == 0:
        return _maintenance(
            mount,
            "tidy",
            ChangeStatus.ALREADY,
            before_text,
            "already applied: tidy found nothing to delete",
            after=after,
        ), status
    return _maintenance(
        mount, "tidy", ChangeStatus.APPLIED, before_text, "tidy finished (verified by tidy-status)", after=after
    ), status


def _crl_text(crl: PublishedCrl, revoked: frozenset[str]) -> str:
    if crl.this_update is None:
        return "no CRL published"
    listed = len(revoked & crl.serials)
    return f"this_update {crl.this_update.isoformat()}; lists {listed} of {len(revoked)} revoked"


def crl_staleness(crl: PublishedCrl, revoked: frozenset[str], *, tidied_revoked: bool, now: datetime) -> str | None:
    """Why the published CRL needs a rebuild, or None when it is current."""
    if crl.this_update is None:
        return "no CRL is published" if revoked else None
    missing = revoked - crl.serials
    if missing:
        return f"{len(missing)} revoked serial(s) missing from the CRL"
    if tidied_revoked:
        return "tidy removed revoked certificates"
    if crl.next_update is not None and now >= crl.this_update + (crl.next_update - crl.this_update) / 2:
        return f"past half of its validity (next_update {crl.next_update.isoformat()})"
    return None


def rebuild_stale_crl(
    reader: _VaultReader, mount: str, *, tidied_revoked: bool, dry_run: bool, now: datetime
) -> Change:
    reader.wait()
    revoked = frozenset(list_certificate_serials(reader.vault, mount, revoked=True))
    reader.wait()
    crl = read_published_crl(reader.vault, mount)
    before = _crl_text(crl, revoked)
    why = crl_staleness(crl, revoked, tidied_revoked=tidied_revoked, now=now)
    if why is None:
        return _maintenance(mount, "rebuild_crl", ChangeStatus.ALREADY, before, "already applied: the CRL is current")
    if dry_run:
        return _maintenance(mount, "rebuild_crl", ChangeStatus.PLANNED, before, f"would rebuild: {why}")
    requested_at = datetime.now(UTC).replace(microsecond=0)  # a CRL's times have whole seconds
    reader.wait()
    rebuild_crl(reader.vault, mount)
    reader.wait()
    rebuilt = read_published_crl(reader.vault, mount)
    after = _crl_text(rebuilt, revoked)
    missing = revoked - rebuilt.serials
    if rebuilt.this_update is None or rebuilt.this_update < requested_at or missing:
        detail = f"rebuilt ({why}) but the CRL read back is not new and complete: {len(missing)} serial(s) missing"
        return _maintenance(mount, "rebuild_crl", ChangeStatus.FAILED, before, detail, after=after)
    return _maintenance(
        mount, "rebuild_crl", ChangeStatus.APPLIED, before, f"rebuilt ({why}); verified by parsing the CRL", after=after
    )


def _maintenance(
    mount: str, what: str, status: ChangeStatus, before: str, detail: str, *, after: str | None = None
) -> Change:
    return Change(
        target=mount,
        what=what,
        status=status,
        before=before[:200],
        after=None if after is None else after[:200],
        detail=detail[:1000],
    )


# --- flag -------------------------------------------------------------------------------------------


def certificate_findings(
    certificate: CertificateRecord,
    ref: PkiCertificateRef,
    *,
    max_days: int,
    owned: frozenset[tuple[str, str]],
    now: datetime,
) -> list[Change]:
    """FLAGGED changes for one certificate: over-long lifetime, no owner. Nothing for CAs and dead ones."""
    if certificate.is_ca or certificate.revoked or certificate.not_after <= now:
        return []
    target = format_ref(ref)
    found: list[Change] = []
    lifetime_days = certificate.lifetime / timedelta(days=1)
    if certificate.lifetime > timedelta(days=max_days):
        found.append(
            Change(
                target=target,
                what="flag certificate_lifetime",
                status=ChangeStatus.FLAGGED,
                before=f"lifetime {lifetime_days:.1f} days",
                after=f"policy maximum {max_days} days",
                detail=f"lives until {certificate.not_after.isoformat()}; flagged for its owner, not revoked",
            )
        )
    if not certificate.uri_sans and (ref.mount, certificate.serial) not in owned:
        found.append(
            Change(
                target=target,
                what="flag certificate_owner",
                status=ChangeStatus.FLAGGED,
                before="no URI SAN; not in the inventory",
                detail="no workload owns this certificate; flagged for a human, not revoked",
            )
        )
    return found


# --- the sweep --------------------------------------------------------------------------------------


def _checked_mount(mount: str) -> str:
    try:
        PkiCertificateRef(mount=mount, serial="01:02")
    except ValidationError:
        raise InvalidInput("a PKI mount is a relative Vault path (letters, digits, '_', '-', '.', '/')") from None
    return mount


def run_pki_hygiene(
    request: SweepRequest,
    *,
    policy: SchedulePolicy,
    vault: hvac.Client,
    pki_mounts: Sequence[str],
    inventory: Inventory | None,
    checkpoints: CheckpointStore,
    now: datetime,
    tidy_timeout_seconds: float = 30.0,
) -> SweepReport:
    """Tidy, rebuild stale CRLs and flag certificates on each mount; bounded, resumable, with a dry run."""
    mounts = [_checked_mount(mount) for mount in pki_mounts]  # refused before any call
    clock = time.monotonic()
    progress = SweepProgress(SweepName.PKI_HYGIENE, request, policy=policy, checkpoints=checkpoints, now=now)
    reader = _VaultReader(vault, RateLimiter(policy.vault_requests_per_second))
    owned = inventoried_certificates(inventory)

    keys: list[str] = []
    for mount in mounts:
        try:
            reader.wait()
            serials = list_certificate_serials(reader.vault, mount)
        except (ActionFailed, TransientError) as error:
            # One missing or unreachable mount is reported; the other mounts are still looked after.
            failed = _maintenance(
                mount, "list certificates", ChangeStatus.FAILED, "", f"{type(error).__name__}: {error}"
            )
            progress.add(failed, counts_as_action=True)
            continue
        keys.append(f"{mount}{_MAINTENANCE}")
        keys.extend(f"{mount}{_CERTIFICATE}{serial}" for serial in serials)

    for key in progress.walk(keys):
        if key.endswith(_MAINTENANCE):
            for change in _maintain_mount(
                reader,
                key.removesuffix(_MAINTENANCE),
                policy=policy,
                request=request,
                now=now,
                timeout_seconds=tidy_timeout_seconds,
            ):
                progress.add(change, counts_as_action=change.status is not ChangeStatus.ALREADY)
            continue
        mount, _, serial = key.partition(_CERTIFICATE)
        try:
            reader.wait()
            certificate = read_certificate_record(reader.vault, mount, serial)
        except (ActionFailed, TransientError) as error:
            failed = Change(
                target=f"pki:{mount}:{serial}",
                what="read certificate",
                status=ChangeStatus.FAILED,
                detail=f"{type(error).__name__}: {error}"[:1000],
            )
            progress.add(failed, counts_as_action=True)
            continue
        if certificate is None:
            continue  # tidied since the listing
        ref = PkiCertificateRef(mount=mount, serial=serial)
        for change in certificate_findings(
            certificate, ref, max_days=policy.pki_max_certificate_days, owned=owned, now=now
        ):
            progress.add(change, counts_as_action=True)
    return progress.finish(now + timedelta(seconds=time.monotonic() - clock))


def _maintain_mount(
    reader: _VaultReader,
    mount: str,
    *,
    policy: SchedulePolicy,
    request: SweepRequest,
    now: datetime,
    timeout_seconds: float,
) -> list[Change]:
    if policy.is_protected(mount) or policy.is_protected(f"{mount}/"):
        return [_maintenance(mount, "tidy", ChangeStatus.SKIPPED, "protected", f"{mount} is in protected_paths")]
    try:
        tidy, status = tidy_mount(
            reader,
            mount,
            safety_buffer_seconds=policy.pki_tidy_safety_buffer_seconds,
            dry_run=request.dry_run,
            timeout_seconds=timeout_seconds,
        )
        crl = rebuild_stale_crl(
            reader,
            mount,
            tidied_revoked=status is not None and status.revoked_deleted > 0,
            dry_run=request.dry_run,
            now=now,
        )
    except (ActionFailed, TransientError) as error:
        return [_maintenance(mount, "tidy", ChangeStatus.FAILED, "", f"{type(error).__name__}: {error}")]
    return [tidy, crl]
