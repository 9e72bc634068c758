"""Discovery: what does one workload hold, found live by the conventions in design.md, and the plan to end it.

The conventions: Vault entities, tokens and secret-ids whose metadata `spiffe_id` (configurable) names the
workload; PKI certificates whose URI SAN is the SPIFFE ID; KV v2 secrets whose custom_metadata names it; AWS
IAM users tagged `rescind:workload`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rescind.models import Action, ActionKind, ActionParams, CredentialKind, CredentialRef, Plan, PreviousVersions

if TYPE_CHECKING:
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
    """Every credential the workload holds that Rescind can see now, in Vault and AWS."""
    from rescind.vault.approle import find_secret_ids_by_metadata
    from rescind.vault.identity import find_entities_by_workload
    from rescind.vault.kv import find_kv_secrets_by_custom_metadata
    from rescind.vault.pki import find_certificates_by_uri_san
    from rescind.vault.tokens import find_token_accessors_by_metadata

    found: list[CredentialRef] = []
    found.extend(find_entities_by_workload(vault, workload_id, metadata_key=scope.metadata_key))
    found.extend(find_token_accessors_by_metadata(vault, scope.metadata_key, workload_id))
    for mount in scope.approle_mounts:
        found.extend(find_secret_ids_by_metadata(vault, scope.metadata_key, workload_id, mount=mount))
    if workload_id.startswith("spiffe://"):
        for mount in scope.pki_mounts:
            found.extend(find_certificates_by_uri_san(vault, mount, workload_id))
    for mount in scope.kv_mounts:
        found.extend(find_kv_secrets_by_custom_metadata(vault, mount, scope.metadata_key, workload_id))
    if aws is not None:
        from rescind.aws.iam_keys import find_access_keys_by_workload_tag

        for account_id in scope.aws_account_ids:
            found.extend(find_access_keys_by_workload_tag(aws, account_id, workload_id, tag_key=scope.aws_tag_key))
    return found


# The action that ends each kind of credential when its workload ends or it leaks.
_ENDING_ACTION: dict[CredentialKind, ActionKind] = {
    CredentialKind.VAULT_ENTITY: ActionKind.DISABLE,
    CredentialKind.IAM_ACCESS_KEY: ActionKind.DISABLE,
    CredentialKind.KV_SECRET: ActionKind.ROTATE,
    CredentialKind.SECRETS_MANAGER_SECRET: ActionKind.ROTATE,
    CredentialKind.VAULT_TOKEN: ActionKind.REVOKE,
    CredentialKind.APPROLE_SECRET_ID: ActionKind.REVOKE,
    CredentialKind.VAULT_LEASE: ActionKind.REVOKE,
    CredentialKind.PKI_CERTIFICATE: ActionKind.REVOKE,
    CredentialKind.IAM_ROLE_SESSIONS: ActionKind.REVOKE,
    CredentialKind.ACM_PCA_CERTIFICATE: ActionKind.REVOKE,
}


def plan_to_end(
    plan_id: str, refs: Sequence[CredentialRef], *, run_id: str, reason: str, dry_run: bool = False
) -> Plan:
    """Contain first (disable entity and keys), then rotate shared secrets and destroy what they were, then revoke.

    Role and mount TTLs are not a workload's credential, so they are never in such a plan.
    """
    actions = [
        Action(
            kind=_ENDING_ACTION[ref.kind],
            target=ref,
            reason=reason,
            params=ActionParams(previous_versions=PreviousVersions.DESTROY, run_id=run_id)
            if _ENDING_ACTION[ref.kind] is ActionKind.ROTATE
            else ActionParams(),
        )
        for ref in refs
        if ref.kind in _ENDING_ACTION
    ]
    return Plan.ordered(plan_id, actions, dry_run=dry_run)
