"""Discover what a terminated workload holds, plan its end, and decide what the guard allows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from rescind.concurrent_reads import DEFAULT_READ_WORKERS, read_each
from rescind.discovery import Discovery, DiscoveryScope, discover_workload, plan_to_end
from rescind.engine.scope import check_target_in_scope
from rescind.guard import GuardPolicy, is_protected
from rescind.ledger.base import Ledger
from rescind.ledger.types import IncidentRecord
from rescind.models import CredentialRef, KvSecretRef, Plan
from rescind.models.results import utc_now
from rescind.response.plan import guard_decision, guard_recorded_plan, is_manual_run, recorded_plan, split_guarded_plan
from rescind.response.types import ResponsePlan, ResponseRequest

if TYPE_CHECKING:
    import hvac

    from rescind.aws.session import AwsClientFactory
    from rescind.inventory.base import Inventory
    from rescind.kinds import PlanReads


def gather_credentials(
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    inventory: Inventory | None,
    workload_id: str,
    scope: DiscoveryScope,
) -> Discovery:
    """Discovery plus what the inventory saw earlier, once each (either alone can miss something), where discovery
    looked, and what it read on the way (for the plan's guard)."""
    found: dict[str, CredentialRef] = {}
    discovery = discover_workload(vault, aws, workload_id, scope)
    for ref in discovery.refs:
        found.setdefault(ref.key, ref)
    if inventory is not None:
        for ref in inventory.credentials_of(workload_id):
            found.setdefault(ref.key, ref)
        inventory.record_credentials(workload_id, list(found.values()))
    return Discovery(list(found.values()), discovery.sources, discovery.reads)


def named_credentials_not_found(
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    refs: Sequence[CredentialRef],
    *,
    workers: int = DEFAULT_READ_WORKERS,
) -> list[CredentialRef]:
    """The named references that name nothing on record (a typo, a token of another Vault). Reads only.

    Discovery found its credentials alive; a named one has only this lookup as evidence it existed, and
    without it a typo would end as "already absent, verified dead". An AWS reference is checked only
    when there is an AWS side to ask; what cannot be known before acting (ACM PCA serials) is kept.
    `workers` references are looked up at a time.
    """
    from rescind.engine.factory import build_engine

    engine = build_engine(vault, aws_factory=aws)

    def names_nothing(ref: CredentialRef) -> bool:
        return not (aws is None and getattr(ref, "account_id", None) is not None) and engine.exists(ref) is False

    return [ref for ref, missing in zip(refs, read_each(names_nothing, refs, workers=workers), strict=True) if missing]


def describe_not_found(vault: hvac.Client, missing: Sequence[CredentialRef]) -> str:
    """The refusal for named references that name nothing: which ones, and where they were looked for."""
    from rescind.models.refs import acted_on, format_ref

    # The Vault first, then each AWS account, as acted_on names them.
    places = sorted({acted_on(ref, vault.url) for ref in missing}, key=lambda place: (place.startswith("AWS"), place))
    named = ", ".join(format_ref(ref) for ref in missing[:10])
    more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    return f"not found in {' or '.join(places)}: {named}{more}; nothing was touched"


def rotated_since(vault: hvac.Client, ref: KvSecretRef, moment: datetime) -> bool:
    """A shared secret rotated (to the end) after the workload ended is no longer something it knows."""
    from rescind.vault.kv_rotation_state import ROTATED_AT_KEY, RotationStep, rotation_of
    from rescind.vault.kv_store import read_secret_metadata

    metadata = read_secret_metadata(vault, ref)
    if metadata is None or rotation_of(metadata).step is not RotationStep.FINISHED:
        return False
    stamp = metadata.custom_metadata.get(ROTATED_AT_KEY)
    try:
        rotated_at = datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        return False
    return rotated_at is not None and rotated_at >= moment


def protected_workload(request: ResponseRequest, policy: GuardPolicy) -> str | None:
    """Why the guard refuses the whole workload, or None."""
    return f"workload {request.workload_id} is protected" if is_protected(request.workload_id, policy) else None


def build_offboarding_plan(
    request: ResponseRequest,
    *,
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    inventory: Inventory | None,
    scope: DiscoveryScope,
    policy: GuardPolicy,
) -> tuple[Plan, ResponsePlan]:
    """Plan and guard, reading only: what `rescind plan` shows and what the plan task records."""
    refused = protected_workload(request, policy)
    sources = ""
    reads: PlanReads | None = None
    if refused is not None:
        refs: list[CredentialRef] = []
    else:
        if request.credentials:
            gathered = list(request.credentials)
            for ref in gathered:  # before any lookup: a named target outside the configured mounts is refused
                check_target_in_scope(ref, scope)
            missing = named_credentials_not_found(vault, aws, gathered, workers=scope.live_read_workers)
            if missing:
                refused = describe_not_found(vault, missing)
        else:
            gathering = gather_credentials(vault, aws, inventory, request.workload_id, scope)
            gathered, sources, reads = gathering.refs, gathering.sources, gathering.reads
        # A re-run, or a second trigger for the same end, does not rotate a shared secret twice.
        secrets = [ref for ref in gathered if isinstance(ref, KvSecretRef)]
        rotated = read_each(
            lambda ref: rotated_since(vault, ref, request.terminated_at), secrets, workers=scope.live_read_workers
        )
        done = {ref.key for ref, was_rotated in zip(secrets, rotated, strict=True) if was_rotated}
        refs = [ref for ref in gathered if ref.key not in done]

    plan = plan_to_end(
        request.incident_id,
        refs,
        run_id=request.incident_id,
        reason=request.reason,
        rotated_since=request.terminated_at,
        dry_run=request.dry_run,
    )
    if scope.issuance_index is not None:
        from rescind.issuance.tree import list_indexed_child_tokens

        plan, children = list_indexed_child_tokens(plan, vault, scope.issuance_index, workers=scope.live_read_workers)
        if children:
            tree = f"the issuance index lists {children} child token(s) under the planned tokens"
            sources = f"{sources}; {tree}" if sources else tree
    if reads is not None:
        from rescind.guard import mark_reads_at_plan, mark_tokens_that_cannot_create_tokens
        from rescind.vault.token_tree import TokenCreators

        # Asked once per ACL here, of the token states the plan read (its scan, or the index's candidates confirmed
        # live), so no token revocation asks at act time (and the guard reuses the answers).
        read_tokens = reads.live_tokens if reads.live_tokens is not None else list(reads.token_states.values())
        reads.token_creators = reads.token_creators or TokenCreators(vault)
        plan = mark_tokens_that_cannot_create_tokens(plan, read_tokens, reads.token_creators)
        # What discovery read of each token and secret-id (metadata Vault cannot change) goes with its revocation:
        # the acting guard judges it on that read rather than make it again.
        plan = mark_reads_at_plan(plan, reads.guard_facts)
    decision, why = guard_decision(
        plan,
        refs,
        refused=refused,
        nothing_to_do="no live credential found",
        vault=vault,
        aws=aws,
        policy=policy,
        manual_run=is_manual_run(request),
        reads=reads,
        read_workers=scope.live_read_workers,
    )
    return plan, split_guarded_plan(request, plan, decision, f"{why}; {sources}" if sources else why)


def plan_offboarding(
    request: ResponseRequest,
    *,
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    inventory: Inventory | None,
    ledger: Ledger,
    scope: DiscoveryScope,
    policy: GuardPolicy,
) -> ResponsePlan:
    """Plan and guard, then open the incident in the ledger with the full plan, whatever the guard decided.

    A resumed run (the incident is already in the ledger) acts on the recorded plan again, guarded anew."""
    recorded = recorded_plan(ledger, request.incident_id)
    if recorded is not None:
        refused = protected_workload(request, policy)
        return guard_recorded_plan(
            request,
            recorded,
            refused=refused,
            vault=vault,
            aws=aws,
            policy=policy,
            read_workers=scope.live_read_workers,
        )
    plan, planned = build_offboarding_plan(
        request, vault=vault, aws=aws, inventory=inventory, scope=scope, policy=policy
    )
    ledger.open_incident(
        IncidentRecord(incident_id=request.incident_id, trigger=request.trigger, plan=plan, opened_at=utc_now())
    )
    return planned
