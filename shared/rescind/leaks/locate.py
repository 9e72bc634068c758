"""Locate: resolve a leak alert to the credential it names, by reading Vault and AWS, and drop the value.

| secret type      | how it is located                                                          |
|------------------|----------------------------------------------------------------------------|
| vault_token      | `auth/token/lookup` of the value → its accessor (and its entity)           |
| vault_secret_id  | `secret-id/lookup` of the value on each AppRole role in scope → accessor  |
|                  | (the roles a warm function last listed; the mount listed again on a miss) |
| aws_access_key   | the key id → its account (the alert's; Rescind's own when the scope names |
|                  | no other, if it lists the key; else `sts:GetAccessKeyInfo`) → user        |
| certificate      | the PEM's serial → the PKI mount in scope that issued exactly this one     |
| kv_value         | the keyed-HMAC fingerprint index → KV v2 secrets, confirmed by reading    |
| database_password| each static role's current password on the database mounts in scope,     |
|                  | compared by HMAC in memory (at most DATABASE_LEAK_MAX_ROLES roles)        |
| aws_role_sessions| GuardDuty's role, confirmed to exist in its account                         |
| aws_iam_user     | AWS Health's user → its active access keys, listed in the affected account |
| vault_issued_value | `sys/audit-hash` of the value → the issuance index's record → its lease,  |
|                  | token or secret-id (rescind.issuance.locate)                               |

Any alert with a value that its own locator does not find is tried the same way, when the issuance index and its
audit device are configured: a leaked value Vault issued but Rescind never indexed (a dynamic database password).

A temporary key (ASIA…) is a role session: STS names its account but not its role, so it is unresolved
with the account and what to do.

Each type is resolved by the credential kind that registers it (`KindSpec.locate_leaked`, in rescind/vault and
rescind/aws); this module fetches the value where the alert does not carry it, and hands the alert over.

Every function returns `LocatedLeak` or `Unlocated`; none returns, logs or raises with the value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from rescind.exceptions import ActionFailed, ConfigurationError, InvalidInput
from rescind.kinds import Backends, LeakSearch, value_locator
from rescind.leaks.types import LeakAlert, LocatedLeak, SecretType, Unlocated
from rescind.models import KvSecretRef

if TYPE_CHECKING:
    import hvac

    from rescind.aws.session import AwsClientFactory
    from rescind.discovery import DiscoveryScope

# (repository, alert number) → the alert's secret, fetched from GitHub's REST API in-process.
GitHubSecretFetcher = Callable[[str, int], str]
# (repository, alert number) → the AWS access key ids written beside the alert's secret in its committed files.
GitHubKeyIdFinder = Callable[[str, int], list[str]]


class KvValueLocator(Protocol):
    """The fingerprint index's lookup, confirmed against Vault (rescind.fingerprints.locate)."""

    def __call__(self, *, value: str | None = None, sha256: str | None = None) -> list[KvSecretRef]: ...


class LeakLocator:
    """Resolves alerts with the injected clients; each collaborator may be absent, and then says so."""

    def __init__(
        self,
        vault: hvac.Client,
        scope: DiscoveryScope,
        *,
        aws: AwsClientFactory | None = None,
        kv_locator: KvValueLocator | None = None,
        github_fetcher: GitHubSecretFetcher | None = None,
        github_key_id_finder: GitHubKeyIdFinder | None = None,
        audit_device: str | None = None,
    ) -> None:
        self._search = LeakSearch(
            Backends(vault, aws),
            scope,
            kv_locator=kv_locator,
            github_key_id_finder=github_key_id_finder,
            audit_device=audit_device,
        )
        self._github_fetcher = github_fetcher

    def locate(self, alert: LeakAlert) -> LocatedLeak | Unlocated:
        value = self._value_of(alert)
        if isinstance(value, Unlocated):
            return value
        locator = value_locator(alert.secret_type)
        if locator.needs_value and not value:
            return Unlocated(why=f"a {alert.secret_type} is located by its value; the alert carries only a digest")
        located = locator.locate(self._search, alert, value)
        if isinstance(located, Unlocated) and value and alert.secret_type is not SecretType.VAULT_ISSUED_VALUE:
            return self._issued_by_vault(alert, value, located)
        return located

    def _issued_by_vault(self, alert: LeakAlert, value: str, unlocated: Unlocated) -> LocatedLeak | Unlocated:
        """What the alert's own locator did not find may be a value Vault issued: its audit HMAC, in the index."""
        if self._search.scope.issuance_index is None or not self._search.audit_device:
            return unlocated
        from rescind.issuance.locate import locate_issued_value

        try:
            issued = locate_issued_value(self._search, alert, value)
        except ActionFailed as error:  # the alert's own answer stands; why the index could not help is added
            issued = Unlocated(why=str(error)[:300])
        if isinstance(issued, Unlocated):
            return Unlocated(why=f"{unlocated.why}; the issuance index: {issued.why}"[:500])
        evidence = f"{alert.secret_type} not located ({unlocated.why}); {issued.evidence}"[:1000]
        return issued.model_copy(update={"evidence": evidence})

    # --- the value, where the alert does not carry it --------------------------------------------------------

    def _value_of(self, alert: LeakAlert) -> str | Unlocated | None:
        if alert.secret is not None:
            return alert.secret.get_secret_value().strip()
        if alert.github_repository is None or alert.github_alert_number is None:
            return None
        if self._github_fetcher is None:
            return Unlocated(why="GitHub alerts need GITHUB_TOKEN_SECRET_ARN to read the alert's secret")
        try:
            return self._github_fetcher(alert.github_repository, alert.github_alert_number).strip()
        except (InvalidInput, ActionFailed, ConfigurationError) as error:
            # the alert is gone, the token may not read it, or its secret is misconfigured: recorded unresolved
            return Unlocated(why=f"GitHub alert {alert.github_alert_number} could not be read: {error}"[:500])
