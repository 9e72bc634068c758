"""Discovery: what does one workload hold, found live by the conventions in design.md, and the plan to end it.

The conventions: Vault entities, tokens and secret-ids whose metadata `spiffe_id` (configurable) names the
workload; PKI certificates whose URI SAN is the SPIFFE ID; KV v2 secrets whose custom_metadata names it; AWS
IAM users tagged `rescind:workload`.

With an issuance index (Vault's audit log, `rescind.issuance`), what discovery does depends on its marker
(`rescind.issuance.state`):
- back-filled and not stale: the kinds the index records (tokens, secret-ids, certificates, leases) are read from it
  by workload instead of scanned (O(what the workload holds)), each candidate confirmed live;
- otherwise: every kind is scanned by its convention and the index only adds what no convention finds (leases, a
  token without the workload's metadata).
The plan's reason says which, and why. Leases are found only through the index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from rescind.concurrent_reads import DEFAULT_READ_WORKERS, read_each
from rescind.kinds import Backends, GuardRead, PlanReads, kind_spec, registered_kinds
from rescind.models import (
    ROTATED_SINCE_KINDS,
    Action,
    ActionKind,
    ActionParams,
    CredentialKind,
    CredentialRef,
    Plan,
    PreviousVersions,
)

if TYPE_CHECKING:
    from datetime import datetime

    import hvac

    from rescind.aws.session import AwsClientFactory
    from rescind.holds import GuardFacts
    from rescind.issuance.base import IssuanceIndex
    from rescind.issuance.state import IndexStateStore, IndexTrust

# How long a back-fill (or the last drift check that confirmed it) keeps the index trusted by default.
DEFAULT_INDEX_MAX_AGE = timedelta(hours=72)


@dataclass(frozen=True)
class DiscoveryScope:
    """Where to look. Discovery never walks a mount or account it was not told about."""

    pki_mounts: Sequence[str] = ("pki",)
    approle_mounts: Sequence[str] = ("approle",)
    kv_mounts: Sequence[str] = ("secret",)
    aws_account_ids: Sequence[str] = field(default_factory=tuple)
    # Secrets engines whose leases may be revoked (a database mount...), beside PKI and AppRole logins.
    lease_mounts: Sequence[str] = field(default_factory=tuple)
    # How many static roles' current passwords a leaked database password is compared with, at most.
    database_leak_max_roles: int = 200
    metadata_key: str = "spiffe_id"
    aws_tag_key: str = "rescind:workload"
    # What Vault issued, by workload (the deployed stack's IssuanceTable); None: the live scan alone.
    issuance_index: IssuanceIndex | None = None
    # The index's back-fill marker and drift (the same table); None: the index is never read alone.
    index_state: IndexStateStore | None = None
    index_max_age: timedelta = DEFAULT_INDEX_MAX_AGE
    # How many of the plan's live reads (one per credential) run at once (rescind.concurrent_reads).
    live_read_workers: int = DEFAULT_READ_WORKERS


@dataclass(frozen=True)
class Discovery:
    """What discovery found, and where it looked for each kind (for the plan's reason)."""

    refs: list[CredentialRef]
    sources: str  # empty without an issuance index
    reads: PlanReads = field(default_factory=PlanReads)  # what the scans read, for the plan's guard


def discover_workload_credentials(
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    workload_id: str,
    scope: DiscoveryScope,
) -> list[CredentialRef]:
    """Every credential the workload holds that Rescind can see now, in Vault and AWS, kind by kind."""
    return discover_workload(vault, aws, workload_id, scope).refs


def discover_workload(
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    workload_id: str,
    scope: DiscoveryScope,
) -> Discovery:
    """As `discover_workload_credentials`, saying where each kind was looked for (the plan's reason).

    The index replaces the scan of the kinds it records only once it is back-filled and not stale, so a workload's
    credentials issued before the audit log was shipped are never missed; until then it only adds to the scan.
    """
    from rescind.issuance.types import INDEXED_KINDS

    reads = PlanReads()
    backends = Backends(vault, aws, reads=reads)
    trust = index_trust_of(scope)
    reads_index = trust is not None and trust.usable
    found: dict[str, CredentialRef] = {}
    for spec in registered_kinds():
        if spec.discover is not None and not (reads_index and spec.kind in INDEXED_KINDS):
            for ref in spec.discover(backends, workload_id, scope):
                found.setdefault(ref.key, ref)
    if trust is None:
        return Discovery(list(found.values()), "", reads)  # the default: nothing to say
    candidates = _indexed_candidates(backends, workload_id, scope, trust_ttl=not reads_index)
    counts: dict[str, int] = {}
    for kind, refs in candidates.items():
        for ref in refs:
            if ref.key not in found:
                found[ref.key] = ref
                counts[str(kind)] = counts.get(str(kind), 0) + 1
    listed = ", ".join(f"{kind} {count}" for kind, count in counts.items()) or "nothing"
    if reads_index:
        kinds = ", ".join(sorted(str(kind) for kind in INDEXED_KINDS))
        return Discovery(
            list(found.values()),
            f"discovery: read {kinds} by workload from {trust.why}, each confirmed live: {listed}; "
            "live scan of the other kinds",
            reads,
        )
    return Discovery(
        list(found.values()),
        f"discovery: live scan of every kind; the issuance index added {listed} (not read alone: {trust.why})",
        reads,
    )


def index_trust_of(scope: DiscoveryScope) -> IndexTrust | None:
    """None without an index; else whether its marker lets discovery read it alone."""
    from rescind.issuance.state import IndexTrust, index_trust
    from rescind.models.results import utc_now

    if scope.issuance_index is None:
        return None
    if scope.index_state is None:
        return IndexTrust(usable=False, why="no back-fill marker is configured for the issuance index")
    return index_trust(scope.index_state.read_marker(), now=utc_now(), max_age=scope.index_max_age)


def _indexed_candidates(
    backends: Backends, workload_id: str, scope: DiscoveryScope, *, trust_ttl: bool = True
) -> dict[CredentialKind, list[CredentialRef]]:
    """Per kind the index has records of for the workload, its records not seen revoked (nor past their TTL when
    `trust_ttl`: read alone, a renewal the log did not show must not hide a live one), within the configured mounts,
    that Vault still has (a record may outlive what the log did not show: a tidy)."""
    from rescind.engine.factory import build_engine
    from rescind.engine.scope import TargetOutOfScope, check_target_in_scope
    from rescind.guard import read_guard_facts
    from rescind.models.results import utc_now

    assert scope.issuance_index is not None
    now = utc_now()
    engine = build_engine(backends.vault, aws_factory=backends.aws)
    candidates: dict[CredentialKind, dict[str, CredentialRef]] = {}
    for record in scope.issuance_index.by_workload(workload_id):
        of_kind = candidates.setdefault(record.kind, {})
        alive = record.is_alive(now) if trust_ttl else record.revoked_at is None
        ref = record.credential_ref() if alive else None
        if ref is None:
            continue
        try:
            check_target_in_scope(ref, scope)
        except TargetOutOfScope:
            continue
        of_kind.setdefault(ref.key, ref)
    read = GuardRead(backends, metadata_key=scope.metadata_key)

    def still_held(ref: CredentialRef) -> tuple[bool, GuardFacts | None]:
        """Vault still has it: the guard's own read of it where its kind makes one (kept for the plan's guard, which
        then reads it no more), else the engine's look-up."""
        facts = read_guard_facts(read, ref)
        if facts.found is None:
            return engine.exists(ref) is not False, None
        return facts.found, facts if facts.found else None

    listed = [ref for refs in candidates.values() for ref in refs.values()]
    confirmed = read_each(still_held, listed, workers=scope.live_read_workers)
    held: set[str] = set()
    for ref, (found, facts) in zip(listed, confirmed, strict=True):
        if facts is not None:
            backends.keep_guard_facts(ref, facts)
        if found:
            held.add(ref.key)
    return {kind: [ref for ref in refs.values() if ref.key in held] for kind, refs in candidates.items()}


def plan_to_end(
    plan_id: str,
    refs: Sequence[CredentialRef],
    *,
    run_id: str,
    reason: str,
    rotated_since: datetime,
    dry_run: bool = False,
) -> Plan:
    """Contain first (disable entity and keys), then rotate shared secrets and destroy what they were, then revoke.

    Each kind names the action that ends it; role and mount TTLs name none (they are not a workload's credential),
    so they are never in such a plan. A rotation Vault times itself (a database static role) counts from
    `rotated_since`, the run's start: one already done since then is this one.
    """
    actions: list[Action] = []
    for ref in refs:
        ending = kind_spec(ref.kind).ending_action
        if ending is None:
            continue
        rotating = ending is ActionKind.ROTATE
        params = ActionParams(previous_versions=PreviousVersions.DESTROY, run_id=run_id) if rotating else ActionParams()
        if ref.kind in ROTATED_SINCE_KINDS:
            params = params.model_copy(update={"rotated_since": rotated_since})
        actions.append(Action(kind=ending, target=ref, reason=reason, params=params))
    return Plan.ordered(plan_id, actions, dry_run=dry_run)
