"""Discovery: what does one workload hold, found live by the conventions in design.md, and the plan to end it.

The conventions: Vault entities, tokens and secret-ids whose metadata `spiffe_id` (configurable) names the
workload; PKI certificates whose URI SAN is the SPIFFE ID; KV v2 secrets whose custom_metadata names it; AWS
IAM users tagged `rescind:workload`.

With an issuance index (Vault's audit log, `rescind.issuance`), the kinds it records (tokens, secret-ids,
certificates, leases) are read from it by workload instead of scanned, each candidate then confirmed live; a
kind the index holds nothing of for the workload falls back to the live scan. Leases are found only there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rescind.kinds import Backends, PlanReads, kind_spec, registered_kinds
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
    from rescind.issuance.base import IssuanceIndex


@dataclass(frozen=True)
class DiscoveryScope:
    """Where to look. Discovery never walks a mount or account it was not told about."""

    pki_mounts: Sequence[str] = ("pki",)
    approle_mounts: Sequence[str] = ("approle",)
    kv_mounts: Sequence[str] = ("secret",)
    aws_account_ids: Sequence[str] = field(default_factory=tuple)
    # Secrets engines whose leases may be revoked (a database mount...), beside PKI and AppRole logins.
    lease_mounts: Sequence[str] = field(default_factory=tuple)
    metadata_key: str = "spiffe_id"
    aws_tag_key: str = "rescind:workload"
    # What Vault issued, by workload (the deployed stack's IssuanceTable); None: the live scan alone.
    issuance_index: IssuanceIndex | None = None


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
    """As `discover_workload_credentials`, saying what the issuance index added to the live scan.

    The index only adds: every kind is still scanned by its convention, and the index contributes what no
    convention finds (leases, a token without the workload's metadata). It replaces no scan until it can prove it
    holds everything issued before the audit log was shipped (a back-fill), so a workload's older credentials are
    never missed.
    """
    reads = PlanReads()
    backends = Backends(vault, aws, reads=reads)
    found: dict[str, CredentialRef] = {}
    for spec in registered_kinds():
        if spec.discover is not None:
            for ref in spec.discover(backends, workload_id, scope):
                found.setdefault(ref.key, ref)
    if scope.issuance_index is None:
        return Discovery(list(found.values()), "", reads)  # the default: nothing to say
    added: dict[str, int] = {}
    for kind, refs in _indexed_candidates(backends, workload_id, scope).items():
        for ref in refs:
            if ref.key not in found:
                found[ref.key] = ref
                added[str(kind)] = added.get(str(kind), 0) + 1
    from_index = ", ".join(f"{kind} {count}" for kind, count in added.items()) or "nothing"
    sources = f"discovery: live scan of every kind; the issuance index added {from_index}"
    return Discovery(list(found.values()), sources, reads)


def _indexed_candidates(
    backends: Backends, workload_id: str, scope: DiscoveryScope
) -> dict[CredentialKind, list[CredentialRef]]:
    """Per kind the index has records of for the workload, its records not seen revoked or expired, within the
    configured mounts, that Vault still has (a record may outlive what the log did not show: a renewal, a tidy)."""
    from rescind.engine.factory import build_engine
    from rescind.engine.scope import TargetOutOfScope, check_target_in_scope
    from rescind.models.results import utc_now

    assert scope.issuance_index is not None
    now = utc_now()
    engine = build_engine(backends.vault, aws_factory=backends.aws)
    candidates: dict[CredentialKind, dict[str, CredentialRef]] = {}
    for record in scope.issuance_index.by_workload(workload_id):
        of_kind = candidates.setdefault(record.kind, {})
        ref = record.credential_ref() if record.is_alive(now) else None
        if ref is None:
            continue
        try:
            check_target_in_scope(ref, scope)
        except TargetOutOfScope:
            continue
        of_kind.setdefault(ref.key, ref)
    return {
        kind: [ref for ref in refs.values() if engine.exists(ref) is not False] for kind, refs in candidates.items()
    }


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
