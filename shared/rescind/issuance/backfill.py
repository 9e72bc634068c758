"""Back-fill the issuance index from a live scan: what Vault issued before its audit log was shipped.

Four phases, in order, each in groups walked in sorted order: token accessors (one group), AppRole secret-id
accessors (a group per mount and role), PKI certificates (a group per mount) and leases (a group per lease mount).
Each credential is looked up and recorded with what the live server can tell of it:

- its workload: a token's or secret-id's metadata (`scope.metadata_key`), a certificate's URI SAN; a lease names no
  holder, so it is kept under `unattributed`, and found again by lease id;
- its entity (a token's), its issue time (creation time, not_before, the lease's issue_time) and its TTL.

Nothing learnt here names a parent token: the audit log alone tells that. Records are written a page at a time with
`put_issuances` (a record the index already holds is left as it is, so an audit-log record is never overwritten),
and after each page the cursor `<phase>|<group>|<item>` is saved: `resume` starts after it. Every Vault request
waits on the rate limiter first. When the last phase is done the index is marked back-filled (`IndexStateStore`).

No value is read: references, metadata, times and TTLs only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.exceptions import InvalidInput
from rescind.issuance.types import IssuanceRecord
from rescind.models import (
    AppRoleSecretIdRef,
    CredentialKind,
    CredentialRef,
    PkiCertificateRef,
    VaultLeaseRef,
    VaultTokenRef,
)
from rescind.models.refs import format_ref
from rescind.schedules.base import RateLimiter

if TYPE_CHECKING:
    import hvac

    from rescind.discovery import DiscoveryScope
    from rescind.issuance.base import IssuanceIndex
    from rescind.issuance.state import IndexStateStore

BACKFILL_REQUEST_ID = "backfill"  # the request id of every back-filled record: it came from no audited request
PHASES = ("tokens", "secret_ids", "certificates", "leases")
DEFAULT_PAGE_SIZE = 100


class BackfillProgress(BaseModel):
    """Where the back-fill is: one group (`tokens`, `secret_ids approle/api`...), done of total, the item."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, frozen=True)

    group: str
    done: int
    total: int
    item: str = ""


class BackfillReport(BaseModel):
    """Counts only: never a value, never metadata."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    examined: int = 0
    written: int = 0  # new records; the others were already in the index
    gone: int = 0  # listed, then gone before their lookup
    skipped: int = 0  # CA certificates, and revoked or expired ones
    without_workload: int = 0  # recorded with no workload the live server names
    by_kind: dict[str, int] = Field(default_factory=dict)
    complete: bool = False
    resumed_after: Annotated[str, Field(max_length=2048)] | None = None
    checkpoint: Annotated[str, Field(max_length=2048)] | None = None
    backfilled_at: AwareDatetime | None = None


@dataclass(frozen=True)
class LiveGroup:
    """One listing of live credentials (token accessors, a role's secret-ids, a mount's certificates or leases)."""

    phase: int
    name: str  # sorted within its phase
    list_items: Callable[[], list[str]]
    record_of: Callable[[str], IssuanceRecord | str]  # the record, or why there is none ("gone", "skipped")


def _cursor(phase: int, group: str, item: str) -> str:
    return f"{phase}|{group}|{item}"


def _parse_cursor(cursor: str) -> tuple[int, str, str]:
    phase, group, item = cursor.split("|", 2)
    return int(phase), group, item


class LiveScan:
    """The live readers, each behind the rate limiter: what the back-fill records and the drift check samples."""

    def __init__(self, vault: hvac.Client, scope: DiscoveryScope, wait: Callable[[], None], now: datetime) -> None:
        self.vault = vault
        self.scope = scope
        self.wait = wait
        self.now = now

    def _base(self, kind: CredentialKind, reference: str, mount: str, path: str) -> dict[str, object]:
        return {"kind": kind, "reference": reference, "mount": mount, "path": path, "request_id": BACKFILL_REQUEST_ID}

    # --- tokens ---

    def token_groups(self) -> Iterator[LiveGroup]:
        from rescind.vault.tokens import list_token_accessors

        def listing() -> list[str]:
            self.wait()
            return sorted(list_token_accessors(self.vault))

        yield LiveGroup(0, "token", listing, self.token_record)

    def token_record(self, accessor: str) -> IssuanceRecord | str:
        from rescind.vault.tokens import lookup_token_by_accessor

        self.wait()
        state = lookup_token_by_accessor(self.vault, accessor)
        if state is None:
            return "gone"
        issued = datetime.fromtimestamp(state.creation_time, self.now.tzinfo) if state.creation_time else self.now
        # lookup gives the TTL left: the record's TTL runs from its issue time to the same expiry.
        ttl = int((self.now - issued).total_seconds()) + state.ttl_seconds if state.ttl_seconds > 0 else 0
        fields = self._base(
            CredentialKind.VAULT_TOKEN,
            format_ref(VaultTokenRef(accessor=state.accessor)),
            "token",
            state.path or "auth/token/accessors",
        )
        return IssuanceRecord.model_validate(
            {
                **fields,
                "workload_id": state.metadata.get(self.scope.metadata_key) or None,
                "entity_id": state.entity_id or None,
                "issued_at": issued,
                "ttl_seconds": max(ttl, 0),
            }
        )

    # --- AppRole secret-ids ---

    def secret_id_groups(self) -> Iterator[LiveGroup]:
        from rescind.vault.approle import list_approle_roles

        for mount in sorted(self.scope.approle_mounts):
            self.wait()
            for role in sorted(list_approle_roles(self.vault, mount)):
                yield self._secret_id_group(mount, role)

    def _secret_id_group(self, mount: str, role: str) -> LiveGroup:
        from rescind.vault.approle import list_secret_id_accessors, lookup_secret_id
        from rescind.vault.common import parse_vault_time

        def listing() -> list[str]:
            self.wait()
            return sorted(ref.accessor for ref in list_secret_id_accessors(self.vault, role, mount))

        def record_of(accessor: str) -> IssuanceRecord | str:
            ref = AppRoleSecretIdRef(mount=mount, role_name=role, accessor=accessor)
            self.wait()
            state = lookup_secret_id(self.vault, ref)
            if state is None:
                return "gone"
            fields = self._base(
                CredentialKind.APPROLE_SECRET_ID, format_ref(ref), mount, f"auth/{mount}/role/{role}/secret-id"
            )
            return IssuanceRecord.model_validate(
                {
                    **fields,
                    "workload_id": state.metadata.get(self.scope.metadata_key) or None,
                    "issued_at": parse_vault_time(state.creation_time) or self.now,
                    "ttl_seconds": max(state.ttl_seconds, 0),
                }
            )

        return LiveGroup(1, f"{mount}/{role}", listing, record_of)

    # --- PKI certificates ---

    def certificate_groups(self) -> Iterator[LiveGroup]:
        for mount in sorted(self.scope.pki_mounts):
            yield self._certificate_group(mount)

    def _certificate_group(self, mount: str) -> LiveGroup:
        from rescind.vault.pki import list_certificate_serials, read_certificate_record

        def listing() -> list[str]:
            self.wait()
            revoked = set(list_certificate_serials(self.vault, mount, revoked=True))
            self.wait()
            return [serial for serial in list_certificate_serials(self.vault, mount) if serial not in revoked]

        def record_of(serial: str) -> IssuanceRecord | str:
            self.wait()
            record = read_certificate_record(self.vault, mount, serial)
            if record is None:
                return "gone"
            if record.is_ca or record.revoked or record.expired(self.now):
                return "skipped"
            fields = self._base(
                CredentialKind.PKI_CERTIFICATE,
                format_ref(PkiCertificateRef(mount=mount, serial=serial)),
                mount,
                f"{mount}/cert/{serial}",
            )
            return IssuanceRecord.model_validate(
                {
                    **fields,
                    "workload_id": record.uri_sans[0] if record.uri_sans else None,
                    "issued_at": record.not_before,
                    "ttl_seconds": int(record.lifetime / timedelta(seconds=1)),
                }
            )

        return LiveGroup(2, mount, listing, record_of)

    # --- leases ---

    def lease_groups(self) -> Iterator[LiveGroup]:
        for mount in sorted({mount.strip().strip("/") for mount in self.scope.lease_mounts if mount.strip("/ ")}):
            yield self._lease_group(mount)

    def _lease_group(self, mount: str) -> LiveGroup:
        from rescind.vault.common import parse_vault_time
        from rescind.vault.leases import list_lease_ids, lookup_lease

        def listing() -> list[str]:
            return sorted(list_lease_ids(self.vault, [mount], before_request=self.wait))

        def record_of(lease_id: str) -> IssuanceRecord | str:
            ref = VaultLeaseRef(lease_id=lease_id)
            self.wait()
            state = lookup_lease(self.vault, ref)
            if state is None:
                return "gone"
            issued = parse_vault_time(state.issue_time) or self.now
            expires = parse_vault_time(state.expire_time)
            ttl = int((expires - issued).total_seconds()) if expires is not None else 0
            fields = self._base(CredentialKind.VAULT_LEASE, format_ref(ref), mount, lease_id.rsplit("/", 1)[0])
            return IssuanceRecord.model_validate({**fields, "issued_at": issued, "ttl_seconds": max(ttl, 0)})

        return LiveGroup(3, mount, listing, record_of)

    def live_record(self, ref: CredentialRef) -> IssuanceRecord | str:
        """What the back-fill would record of this credential now, or why nothing ("gone", "skipped")."""
        if isinstance(ref, VaultTokenRef):
            return self.token_record(ref.accessor)
        if isinstance(ref, AppRoleSecretIdRef):
            return self._secret_id_group(ref.mount, ref.role_name).record_of(ref.accessor)
        if isinstance(ref, PkiCertificateRef):
            return self._certificate_group(ref.mount).record_of(ref.serial)
        if isinstance(ref, VaultLeaseRef):
            return self._lease_group(ref.lease_id.split("/", 1)[0]).record_of(ref.lease_id)
        return "skipped"  # not a kind the index records

    def groups(self) -> Iterator[LiveGroup]:
        """Phase by phase; within a phase by name, the order the cursor compares in."""
        for phase in (self.token_groups, self.secret_id_groups, self.certificate_groups, self.lease_groups):
            yield from sorted(phase(), key=lambda group: group.name)


class _Pages:
    """Records waiting to be written; a page is written, then its last cursor saved."""

    def __init__(self, index: IssuanceIndex, state: IndexStateStore, page_size: int) -> None:
        self.index = index
        self.state = state
        self.page_size = page_size
        self.records: list[IssuanceRecord] = []
        self.pending = 0
        self.last_cursor: str | None = None
        self.written = 0

    def add(self, record: IssuanceRecord | None, cursor: str) -> None:
        if record is not None:
            self.records.append(record)
        self.pending += 1
        self.last_cursor = cursor
        if self.pending >= self.page_size:
            self.flush()

    def flush(self) -> None:
        if self.records:
            self.written += self.index.put_issuances(self.records)
        if self.pending and self.last_cursor is not None:
            self.state.save_checkpoint(self.last_cursor)
        self.records, self.pending = [], 0


def backfill_index(
    vault: hvac.Client,
    index: IssuanceIndex,
    state: IndexStateStore,
    scope: DiscoveryScope,
    *,
    now: Callable[[], datetime],
    requests_per_second: float,
    resume: bool = False,
    page_size: int = DEFAULT_PAGE_SIZE,
    max_items: int | None = None,
    on_progress: Callable[[BackfillProgress], None] | None = None,
) -> BackfillReport:
    """Walk every phase (after the checkpoint when `resume`), write the records, mark the index when done.

    `max_items` stops the run after that many credentials (the checkpoint says where): a bounded run, resumed later.
    A phase that fails (a missing mount, Vault unavailable) raises; what was written is kept and the checkpoint
    names the last page written, so `resume` goes on from there.
    """
    if requests_per_second <= 0:
        raise InvalidInput("the back-fill's rate must be a positive number of Vault requests per second")
    if page_size < 1 or (max_items is not None and max_items < 1):
        raise InvalidInput("the page size and the item limit must be at least 1")
    resumed_after = state.load_checkpoint() if resume else None
    after = _parse_cursor(resumed_after) if resumed_after else None
    scan = LiveScan(vault, scope, RateLimiter(requests_per_second).wait, now())
    pages = _Pages(index, state, page_size)
    counts = {"examined": 0, "gone": 0, "skipped": 0, "without_workload": 0}
    by_kind: dict[str, int] = {}
    stopped = False
    for group in scan.groups():
        if after is not None and (group.phase, group.name) < after[:2]:
            continue
        items = group.list_items()
        if after is not None and (group.phase, group.name) == after[:2]:
            items = [item for item in items if item > after[2]]
        label = f"{PHASES[group.phase]} {group.name}"
        for done, item in enumerate(items, start=1):
            if max_items is not None and counts["examined"] >= max_items:
                stopped = True
                break
            outcome = group.record_of(item)
            counts["examined"] += 1
            if isinstance(outcome, str):
                counts[outcome] += 1
                pages.add(None, _cursor(group.phase, group.name, item))
            else:
                by_kind[str(outcome.kind)] = by_kind.get(str(outcome.kind), 0) + 1
                counts["without_workload"] += int(outcome.workload_id is None)
                pages.add(outcome, _cursor(group.phase, group.name, item))
            if on_progress is not None:
                on_progress(BackfillProgress(group=label, done=done, total=len(items), item=item))
        if stopped:
            break
    pages.flush()
    backfilled_at = None
    if not stopped:
        backfilled_at = now()
        state.mark_backfilled(backfilled_at)
        state.clear_checkpoint()
    return BackfillReport(
        **counts,
        written=pages.written,
        by_kind=by_kind,
        complete=not stopped,
        resumed_after=resumed_after,
        checkpoint=None if not stopped else pages.last_cursor or resumed_after,
        backfilled_at=backfilled_at,
    )
