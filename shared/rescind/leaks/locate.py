"""Locate: resolve a leak alert to the credential it names, by reading Vault and AWS, and drop the value.

| secret type      | how it is located                                                          |
|------------------|----------------------------------------------------------------------------|
| vault_token      | `auth/token/lookup` of the value → its accessor (and its entity)           |
| vault_secret_id  | `secret-id/lookup` of the value on each AppRole role in scope → accessor  |
| aws_access_key   | the key id → its account (the alert's, or `sts:GetAccessKeyInfo`) → user |
| certificate      | the PEM's serial → the PKI mount in scope that issued exactly this one     |
| kv_value         | the keyed-HMAC fingerprint index → KV v2 secrets, confirmed by reading    |
| aws_role_sessions| GuardDuty's role, confirmed to exist in its account                         |
| aws_iam_user     | AWS Health's user → its active access keys, listed in the affected account |

A temporary key (ASIA…) is a role session: STS names its account but not its role, so it is unresolved
with the account and what to do.

Every function returns `LocatedLeak` or `Unlocated`; none returns, logs or raises with the value.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import hvac

from rescind.exceptions import ActionFailed, ConfigurationError, InvalidInput
from rescind.leaks.types import ACCESS_KEY_ID, LeakAlert, LocatedLeak, SecretType, Unlocated
from rescind.models import (
    AppRoleSecretIdRef,
    CredentialRef,
    IamAccessKeyRef,
    IamRoleSessionsRef,
    KvSecretRef,
    PkiCertificateRef,
    VaultEntityRef,
    VaultTokenRef,
)
from rescind.vault.client import read_data, vault_errors

if TYPE_CHECKING:
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
    ) -> None:
        self._vault = vault
        self._scope = scope
        self._aws = aws
        self._kv_locator = kv_locator
        self._github_fetcher = github_fetcher
        self._github_key_id_finder = github_key_id_finder

    def locate(self, alert: LeakAlert) -> LocatedLeak | Unlocated:
        value = self._value_of(alert)
        if isinstance(value, Unlocated):
            return value
        match alert.secret_type:
            case SecretType.VAULT_TOKEN:
                return self._vault_token(value) if value else _needs_value(alert)
            case SecretType.VAULT_SECRET_ID:
                return self._secret_id(value) if value else _needs_value(alert)
            case SecretType.CERTIFICATE:
                return self._certificate(value) if value else _needs_value(alert)
            case SecretType.KV_VALUE:
                return self._kv_value(value, alert.secret_sha256)
            case SecretType.AWS_ACCESS_KEY:
                return self._access_key(alert, value)
            case SecretType.AWS_ROLE_SESSIONS:
                return self._role_sessions(alert)
            case SecretType.AWS_IAM_USER:
                return self._user_keys(alert)

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

    # --- Vault ---------------------------------------------------------------------------------------------

    def _vault_token(self, token: str) -> LocatedLeak | Unlocated:
        with vault_errors("lookup of a leaked token"):
            try:
                response = self._vault.auth.token.lookup(token=token)
            except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest) as error:
                if "permission denied" in str(error) and "bad token" not in str(error):
                    raise ActionFailed("lookup of a leaked token: permission denied (auth/token/lookup)") from None
                return Unlocated(why="no live Vault token has this value (already revoked or expired)")
        data = read_data(response)
        accessor = str(data.get("accessor") or "")
        if not accessor:
            return Unlocated(why="the token has no accessor (a batch token cannot be revoked by accessor)")
        token_ref = VaultTokenRef(accessor=accessor)
        refs: list[CredentialRef] = [token_ref]
        entity_id = str(data.get("entity_id") or "")
        evidence = "auth/token/lookup matched a live token"
        if entity_id and self._entity_holds_only(entity_id, accessor):
            refs.insert(0, VaultEntityRef(entity_id=entity_id))
            evidence += "; its entity holds no other live token, so it is disabled too"
        meta = data.get("meta") or {}
        owner = meta.get(self._scope.metadata_key) if isinstance(meta, dict) else None
        return LocatedLeak(credentials=tuple(refs), owner=str(owner) if owner else None, evidence=evidence)

    def _entity_holds_only(self, entity_id: str, accessor: str) -> bool:
        """True when no live token but this one belongs to the entity. It reads every accessor: a leak is rare."""
        from rescind.vault.tokens import list_token_accessors

        for other in list_token_accessors(self._vault):
            if other == accessor:
                continue
            with vault_errors("lookup token accessor"):
                try:
                    data = read_data(self._vault.auth.token.lookup_accessor(other))
                except hvac.exceptions.InvalidRequest:
                    continue  # expired since the listing
            if str(data.get("entity_id") or "") == entity_id:
                return False
        return True

    def _secret_id(self, secret_id: str) -> LocatedLeak | Unlocated:
        from rescind.vault.approle import list_approle_roles

        for mount in self._scope.approle_mounts:
            for role_name in list_approle_roles(self._vault, mount):
                with vault_errors(f"secret-id lookup on {mount} role {role_name}"):
                    try:
                        response = self._vault.auth.approle.read_secret_id(
                            role_name=role_name, secret_id=secret_id, mount_point=mount
                        )
                    except (hvac.exceptions.InvalidPath, hvac.exceptions.InvalidRequest):
                        continue
                data = read_data(response)
                accessor = str(data.get("secret_id_accessor") or "")
                if not accessor:
                    continue
                metadata = data.get("metadata") or {}
                owner = metadata.get(self._scope.metadata_key) if isinstance(metadata, dict) else None
                return LocatedLeak(
                    credentials=(AppRoleSecretIdRef(mount=mount, role_name=role_name, accessor=accessor),),
                    owner=str(owner) if owner else None,
                    evidence=f"secret-id lookup matched on {mount} role {role_name}",
                )
        mounts = ", ".join(self._scope.approle_mounts) or "(none)"
        return Unlocated(why=f"no AppRole role on the mounts in scope ({mounts}) has this secret-id")

    def _certificate(self, pem: str) -> LocatedLeak | Unlocated:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        from rescind.vault.pki import serial_from_int, uri_sans

        try:
            leaked = x509.load_pem_x509_certificate(pem.encode())
        except ValueError:
            return Unlocated(why="the value is not a PEM certificate")
        serial = serial_from_int(leaked.serial_number)
        leaked_der = leaked.public_bytes(Encoding.DER)
        for mount in self._scope.pki_mounts:
            with vault_errors(f"read certificate {serial} on {mount}"):
                try:
                    response = self._vault.secrets.pki.read_certificate(serial, mount_point=mount)
                except hvac.exceptions.InvalidPath:
                    continue
            stored = read_data(response).get("certificate")
            if not isinstance(stored, str) or not stored.strip():
                continue
            stored_certificate = x509.load_pem_x509_certificate(stored.encode())
            # The same serial on another CA is another certificate: only the exact one is ours to revoke.
            if not hmac.compare_digest(stored_certificate.public_bytes(Encoding.DER), leaked_der):
                continue
            uris = uri_sans(stored_certificate)
            return LocatedLeak(
                credentials=(PkiCertificateRef(mount=mount, serial=serial),),
                owner=uris[0] if uris else None,
                evidence=f"certificate {serial} was issued by PKI mount {mount}",
            )
        return Unlocated(why=f"no PKI mount in scope issued certificate {serial}")

    def _kv_value(self, value: str | None, sha256: str | None) -> LocatedLeak | Unlocated:
        if self._kv_locator is None:
            return Unlocated(why="no fingerprint index is configured (FINGERPRINT_TABLE_NAME)")
        refs = self._kv_locator(value=value or None, sha256=None if value else sha256)
        if not refs:
            return Unlocated(why="no KV v2 secret in the fingerprint index holds this value (run `rescind index kv`)")
        return LocatedLeak(
            credentials=tuple(refs), evidence=f"the fingerprint index matched {len(refs)} KV v2 secret(s)"
        )

    # --- AWS ----------------------------------------------------------------------------------------------

    def _access_key(self, alert: LeakAlert, value: str | None) -> LocatedLeak | Unlocated:
        key_id, found_by = alert.access_key_id or (value or ""), ""
        if self._aws is None:
            return Unlocated(why="no AWS access is configured")
        if not ACCESS_KEY_ID.fullmatch(key_id):
            beside = self._key_id_beside_github_secret(alert)
            if isinstance(beside, Unlocated):
                return beside
            key_id, found_by = beside, "the key id written beside the leaked secret in the alert's file; "
        account = alert.account_id or self._account_of_key(key_id)
        if account is None:
            return Unlocated(why=f"access key {key_id} belongs to no account Rescind can see")
        if key_id.startswith("ASIA"):
            return Unlocated(
                why=f"{key_id} is a temporary key of a role session in account {account}; STS does not name its "
                f"role: find it in CloudTrail (lookup-events AccessKeyId={key_id}) and cut the role's sessions "
                f"(rescind revoke --credential aws-role-sessions:{account}:ROLE)"
            )
        if not self._in_scope(account):
            return Unlocated(why=f"access key {key_id} is in account {account}, outside the discovery scope")
        user_name = self._user_of_key(account, key_id)
        if user_name is None:
            return Unlocated(why=f"access key {key_id} does not exist in account {account} (already deleted?)")
        return LocatedLeak(
            credentials=(IamAccessKeyRef(account_id=account, user_name=user_name, access_key_id=key_id),),
            # The workload the user runs as (its tag): the guard refuses a protected one, as for a Vault token.
            owner=self._workload_of_user(account, user_name),
            evidence=f"{found_by}IAM lists access key {key_id} under user {user_name} in account {account}",
        )

    def _workload_of_user(self, account: str, user_name: str) -> str | None:
        """The `rescind:workload` tag (DiscoveryScope.aws_tag_key) of the key's IAM user, if it has one."""
        from botocore.exceptions import ClientError

        from rescind.aws.errors import aws_errors

        assert self._aws is not None
        iam = self._aws.client("iam", account)
        with aws_errors(f"iam list-user-tags {user_name}"):
            try:
                tags = iam.list_user_tags(UserName=user_name)["Tags"]
            except ClientError:
                return None
        values = [tag["Value"] for tag in tags if tag["Key"] == self._scope.aws_tag_key and tag["Value"]]
        return values[0] if values else None

    def _key_id_beside_github_secret(self, alert: LeakAlert) -> str | Unlocated:
        """A secret access key does not name its key id; GitHub alerts on it only beside its key id, in one file."""
        if alert.github_repository is None or alert.github_alert_number is None:
            return Unlocated(why="the alert names no access key id")
        if self._github_key_id_finder is None:
            return Unlocated(why="GitHub alerts need GITHUB_TOKEN_SECRET_ARN to read the alert's locations")
        try:
            key_ids = self._github_key_id_finder(alert.github_repository, alert.github_alert_number)
        except (InvalidInput, ActionFailed, ConfigurationError) as error:
            return Unlocated(
                why=f"GitHub alert {alert.github_alert_number}'s locations could not be read: {error}"[:500]
            )
        if len(key_ids) != 1:
            found = f"{len(key_ids)} access key ids ({', '.join(key_ids[:5])})" if key_ids else "no access key id"
            return Unlocated(
                why=f"{found} written beside the secret in the alert's committed files: its pair cannot be told"[:500]
            )
        return key_ids[0]

    def _in_scope(self, account: str) -> bool:
        assert self._aws is not None
        return account in self._scope.aws_account_ids or account == self._aws.caller_identity().account_id

    def _account_of_key(self, key_id: str) -> str | None:
        from botocore.exceptions import ClientError

        from rescind.aws.errors import aws_errors

        assert self._aws is not None
        sts = self._aws.client("sts", self._aws.caller_identity().account_id)
        with aws_errors("sts get-access-key-info"):
            try:
                account: str = sts.get_access_key_info(AccessKeyId=key_id)["Account"]
            except ClientError:
                return None
        return account

    def _user_of_key(self, account: str, key_id: str) -> str | None:
        from botocore.exceptions import ClientError

        from rescind.aws.errors import aws_errors

        assert self._aws is not None
        iam = self._aws.client("iam", account)
        with aws_errors(f"iam get-access-key-last-used {key_id}"):
            try:
                user_name = iam.get_access_key_last_used(AccessKeyId=key_id).get("UserName")
            except ClientError:
                return None
            if not user_name:
                return None
            # Confirm in the account itself: the key must be listed under that user.
            try:
                listed = iam.list_access_keys(UserName=user_name)["AccessKeyMetadata"]
            except ClientError:
                return None
        return user_name if any(item.get("AccessKeyId") == key_id for item in listed) else None

    def _user_keys(self, alert: LeakAlert) -> LocatedLeak | Unlocated:
        """Every active key of the user AWS Health named. Inactive keys are left: they open nothing now."""
        from botocore.exceptions import ClientError

        from rescind.aws.errors import aws_errors, error_code

        if self._aws is None:
            return Unlocated(why="no AWS access is configured")
        account, user_name = alert.account_id, alert.user_name
        if account is None or user_name is None:
            return Unlocated(why="the event names no IAM user")
        if not self._in_scope(account):
            return Unlocated(why=f"IAM user {user_name} is in account {account}, outside the discovery scope")
        iam = self._aws.client("iam", account)
        with aws_errors(f"iam list-access-keys {user_name}"):
            try:
                listed = iam.list_access_keys(UserName=user_name)["AccessKeyMetadata"]
            except ClientError as error:
                if error_code(error) != "NoSuchEntity":
                    raise
                return Unlocated(why=f"no IAM user {user_name} in account {account}")
        keys = [str(item["AccessKeyId"]) for item in listed if item.get("Status") == "Active"]
        if not keys:
            return Unlocated(why=f"IAM user {user_name} in account {account} has no active access key")
        return LocatedLeak(
            credentials=tuple(
                IamAccessKeyRef(account_id=account, user_name=user_name, access_key_id=key) for key in keys
            ),
            evidence=f"IAM lists {len(keys)} active access key(s) under user {user_name} in account {account}",
        )

    def _role_sessions(self, alert: LeakAlert) -> LocatedLeak | Unlocated:
        from botocore.exceptions import ClientError

        from rescind.aws.errors import aws_errors

        if self._aws is None:
            return Unlocated(why="no AWS access is configured")
        if alert.account_id is None or alert.role_name is None:
            return Unlocated(why="the finding names no role")
        if not self._in_scope(alert.account_id):
            return Unlocated(why=f"role {alert.role_name} is in account {alert.account_id}, outside the scope")
        iam = self._aws.client("iam", alert.account_id)
        with aws_errors(f"iam get-role {alert.role_name}"):
            try:
                iam.get_role(RoleName=alert.role_name)
            except ClientError:
                return Unlocated(why=f"role {alert.role_name} does not exist in account {alert.account_id}")
        return LocatedLeak(
            credentials=(IamRoleSessionsRef(account_id=alert.account_id, role_name=alert.role_name),),
            evidence=f"GuardDuty named role {alert.role_name} in account {alert.account_id}",
        )


def _needs_value(alert: LeakAlert) -> Unlocated:
    return Unlocated(why=f"a {alert.secret_type} is located by its value; the alert carries only a digest")
