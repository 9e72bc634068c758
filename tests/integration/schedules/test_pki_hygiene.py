"""PKI hygiene on the real OpenBao server: tidy, the CRL rebuilt and parsed, certificates flagged, never revoked."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import hvac
import pytest
from cryptography import x509

from rescind.exceptions import InvalidInput
from rescind.inventory import CloudResourceKind, WorkloadBinding
from rescind.models import PkiCertificateRef
from rescind.models.results import utc_now
from rescind.schedules.pki_hygiene import run_pki_hygiene
from rescind.schedules.policy import SchedulePolicy
from rescind.schedules.types import ChangeStatus, SweepName, SweepReport, SweepRequest
from rescind.vault.pki import fetch_revoked_serials
from tests.doubles import InMemoryInventory

POLICY = SchedulePolicy(pki_max_certificate_days=90, pki_tidy_safety_buffer_seconds=1, vault_requests_per_second=1000)
WORKLOAD = "spiffe://example.org/ns/shop/sa/cart"


class DictCheckpoints:
    """The CheckpointStore protocol on a dict: a storage double only."""

    def __init__(self) -> None:
        self.cursors: dict[SweepName, str] = {}

    def load(self, sweep: SweepName) -> str | None:
        return self.cursors.get(sweep)

    def save(self, sweep: SweepName, cursor: str) -> None:
        self.cursors[sweep] = cursor

    def clear(self, sweep: SweepName) -> None:
        self.cursors.pop(sweep, None)


@dataclass
class PkiMount:
    vault: hvac.Client
    mount: str

    def issue(self, ttl: str, *, uri: str | None = None) -> tuple[str, datetime]:
        extra = {"uri_sans": uri} if uri else {}
        data = self.vault.write(f"{self.mount}/issue/svc", common_name="svc.example.org", ttl=ttl, **extra)["data"]
        return str(data["serial_number"]), datetime.fromtimestamp(int(data["expiration"]), UTC)

    def ref(self, serial: str) -> PkiCertificateRef:
        return PkiCertificateRef(mount=self.mount, serial=serial)

    def stored_serials(self) -> set[str]:
        return set(self.vault.list(f"{self.mount}/certs")["data"]["keys"])

    def crl_this_update(self) -> datetime:
        return x509.load_der_x509_crl(self.vault.adapter.get(f"/v1/{self.mount}/crl").content).last_update_utc


def _enable_pki(vault: hvac.Client, mount: str) -> PkiMount:
    vault.sys.enable_secrets_engine("pki", path=mount, config={"max_lease_ttl": "87600h"})
    vault.write(f"{mount}/root/generate/internal", common_name="Example Root", key_type="ec", ttl="87600h")
    vault.write(
        f"{mount}/roles/svc",
        allow_any_name=True,
        allowed_uri_sans="spiffe://example.org/*",
        key_type="ec",
        max_ttl="87600h",
    )
    # With auto_rebuild a revoke leaves the published CRL as it was: the stale CRL hygiene must repair.
    vault.write(f"{mount}/config/crl", auto_rebuild=True)
    return PkiMount(vault, mount)


@pytest.fixture
def pki(vault: hvac.Client, unique: str) -> PkiMount:
    return _enable_pki(vault, f"pki-hyg-{unique}")


def _run(
    pki_mounts: Sequence[str],
    vault: hvac.Client,
    *,
    request: SweepRequest | None = None,
    inventory: InMemoryInventory | None = None,
    checkpoints: DictCheckpoints | None = None,
) -> SweepReport:
    return run_pki_hygiene(
        request or SweepRequest(),
        policy=POLICY,
        vault=vault,
        pki_mounts=pki_mounts,
        inventory=inventory,
        checkpoints=checkpoints or DictCheckpoints(),
        now=utc_now(),
    )


def _flags(report: SweepReport) -> set[tuple[str, str]]:
    return {(change.target, change.what) for change in report.changes if change.status is ChangeStatus.FLAGGED}


def _maintenance(report: SweepReport, mount: str) -> dict[str, ChangeStatus]:
    return {change.what: change.status for change in report.changes if change.target == mount}


def test_tidy_and_crl_repaired_certificates_flagged_then_nothing_new(pki: PkiMount, vault: hvac.Client) -> None:
    # Given: an over-long certificate (100 days, with an owner), an owner-less one, one owned through the
    # inventory only, a healthy one, one already expired (tidy's work) and one revoked but missing from the CRL
    over_long, _ = pki.issue("2400h", uri=WORKLOAD)
    owner_less, _ = pki.issue("24h")
    inventoried, _ = pki.issue("24h")
    healthy, _ = pki.issue("24h", uri=WORKLOAD)
    expired, expires_at = pki.issue("1s")
    revoked, _ = pki.issue("24h")
    vault.write(f"{pki.mount}/revoke", serial_number=revoked)
    assert revoked not in fetch_revoked_serials(vault, pki.mount)  # the CRL is stale
    inventory = InMemoryInventory()
    inventory.bind(
        WorkloadBinding(
            cloud_id="i-0123456789abcdef0",
            kind=CloudResourceKind.EC2_INSTANCE,
            workload_id=WORKLOAD,
            account_id="123456789012",
            region="us-east-1",
            seen_at=utc_now(),
        )
    )
    inventory.record_credentials(WORKLOAD, [pki.ref(inventoried)])
    time.sleep(max(0.0, (expires_at - utc_now()).total_seconds()) + 1.2)  # past not_after and the 1 s buffer
    crl_before = pki.crl_this_update()

    # When hygiene runs
    first = _run([pki.mount], vault, inventory=inventory)

    # Then tidy removed the expired certificate and the CRL now lists the revoked one
    assert _maintenance(first, pki.mount) == {"tidy": ChangeStatus.APPLIED, "rebuild_crl": ChangeStatus.APPLIED}
    assert expired not in pki.stored_serials()
    assert revoked in fetch_revoked_serials(vault, pki.mount)
    assert pki.crl_this_update() >= crl_before
    # And exactly the over-long and the owner-less certificates are flagged, and none is revoked
    assert _flags(first) == {
        (f"pki:{pki.mount}:{over_long}", "flag certificate_lifetime"),
        (f"pki:{pki.mount}:{owner_less}", "flag certificate_owner"),
    }
    assert set(vault.list(f"{pki.mount}/certs/revoked")["data"]["keys"]) == {revoked}
    assert {over_long, owner_less, inventoried, healthy} <= pki.stored_serials()
    assert first.complete
    assert first.count(ChangeStatus.FAILED) == 0

    # When it runs again, Then nothing new changes; the findings are reported again
    second = _run([pki.mount], vault, inventory=inventory)
    assert _maintenance(second, pki.mount) == {"tidy": ChangeStatus.ALREADY, "rebuild_crl": ChangeStatus.ALREADY}
    assert second.count(ChangeStatus.APPLIED) == 0
    assert _flags(second) == _flags(first)


def test_dry_run_writes_nothing(pki: PkiMount, vault: hvac.Client) -> None:
    # Given a revoked certificate missing from the CRL, and an owner-less live one
    revoked, _ = pki.issue("24h")
    vault.write(f"{pki.mount}/revoke", serial_number=revoked)
    owner_less, _ = pki.issue("24h")
    status_before = vault.read(f"{pki.mount}/tidy-status")["data"]

    # When hygiene runs as a dry run
    report = _run([pki.mount], vault, request=SweepRequest(dry_run=True))

    # Then it plans the tidy and the rebuild but neither happened
    assert report.dry_run
    assert _maintenance(report, pki.mount) == {"tidy": ChangeStatus.PLANNED, "rebuild_crl": ChangeStatus.PLANNED}
    assert revoked not in fetch_revoked_serials(vault, pki.mount)
    status_after = vault.read(f"{pki.mount}/tidy-status")["data"]
    assert (status_after["state"], status_after["time_started"]) == (
        status_before["state"],
        status_before["time_started"],
    )
    # And the findings are reported as they would be (flags are read-only anyway)
    assert _flags(report) == {(f"pki:{pki.mount}:{owner_less}", "flag certificate_owner")}


def test_bounded_runs_resume_until_every_certificate_is_examined(pki: PkiMount, vault: hvac.Client) -> None:
    owner_less = {pki.issue("24h")[0] for _ in range(3)}
    checkpoints = DictCheckpoints()
    flagged: set[tuple[str, str]] = set()
    reports: list[SweepReport] = []

    # When hygiene runs with one action per run until it says the pass is complete
    for _ in range(6):
        report = _run([pki.mount], vault, request=SweepRequest(max_actions=1), checkpoints=checkpoints)
        reports.append(report)
        flagged |= _flags(report)
        if report.complete:
            break

    # Then each run flagged at most one certificate and saved where it stopped, and the last finished the pass
    # (a fourth run happens when the CA's serial sorts last: the third run stops at its bound before reading it)
    assert [report.complete for report in reports] == [False] * (len(reports) - 1) + [True]
    assert len(reports) in (3, 4)
    assert [len(_flags(report)) for report in reports][:3] == [1, 1, 1]
    assert all(report.checkpoint and report.checkpoint.startswith(f"{pki.mount}#1#") for report in reports[:-1])
    assert flagged == {(f"pki:{pki.mount}:{serial}", "flag certificate_owner") for serial in owner_less}
    assert checkpoints.cursors == {}


def test_a_missing_mount_is_reported_and_the_others_still_looked_after(
    pki: PkiMount, vault: hvac.Client, unique: str
) -> None:
    report = _run([f"no-such-pki-{unique}", pki.mount], vault)

    assert _maintenance(report, f"no-such-pki-{unique}") == {"list certificates": ChangeStatus.FAILED}
    assert _maintenance(report, pki.mount) == {"tidy": ChangeStatus.ALREADY, "rebuild_crl": ChangeStatus.ALREADY}


def test_a_malformed_mount_is_refused_before_any_call(vault: hvac.Client, pki: PkiMount) -> None:
    status_before = vault.read(f"{pki.mount}/tidy-status")["data"]["time_started"]

    with pytest.raises(InvalidInput):
        _run([pki.mount, "../sys"], vault)

    assert vault.read(f"{pki.mount}/tidy-status")["data"]["time_started"] == status_before
