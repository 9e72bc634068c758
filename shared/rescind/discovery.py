"""Discovery: what does one workload hold, found live by the conventions in design.md, and the plan to end it.

The conventions: Vault entities, tokens and secret-ids whose metadata `spiffe_id` (configurable) names the
workload; PKI certificates whose URI SAN is the SPIFFE ID; KV v2 secrets whose custom_metadata names it; AWS
IAM users tagged `rescind:workload`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rescind.kinds import Backends, kind_spec, registered_kinds
from rescind.models import ROTATED_SINCE_KINDS, Action, ActionKind, ActionParams, CredentialRef, Plan, PreviousVersions

if TYPE_CHECKING:
    from datetime import datetime

    import hvac

    from rescind.aws.session import AwsClientFactory


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


def discover_workload_credentials(
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    workload_id: str,
    scope: DiscoveryScope,
) -> list[CredentialRef]:
    """Every credential the workload holds that Rescind can see now, in Vault and AWS, kind by kind."""
    backends = Backends(vault, aws)
    found: list[CredentialRef] = []
    for spec in registered_kinds():
        if spec.discover is not None:
            found.extend(spec.discover(backends, workload_id, scope))
    return found


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
