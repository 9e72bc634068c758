"""The inventory report: what credentials exist, how old they are, who owns them, and what breaks the policy.

It reads, within the DiscoveryScope only (its mounts and accounts):
  - Vault tokens (every accessor of the token store): age from creation_time; owner from metadata;
  - AppRole secret-ids (each role of each AppRole mount): age from creation_time; owner from metadata;
  - PKI certificates (live ones of each PKI mount, CAs left out): age from not_before; owner from the URI SAN;
  - KV v2 secrets (each KV mount): age of the current version; owner from custom_metadata;
  - IAM access keys (Active ones, each account) and Secrets Manager secrets (each account, the factory's
    region): age from CreateDate / LastRotatedDate; owner from the workload tag.
A credential recorded for a workload in the inventory has an owner whatever its metadata says.

Counted: credentials by kind and age bucket; credentials with no owner; standing privilege (tokens with ttl 0
and no explicit max, secret-ids that never expire); TTL violations (live tokens above the token ceiling,
certificates living longer than pki_max_certificate_days, PKI and AppRole roles and those mounts whose TTL
fields are above the role or mount ceiling; a role field of 0 means "the system default" and counts as above).
Leases and token roles are not counted.

The report holds references and counts only: an accessor, a serial, a path, an ARN, never a value. A part that
cannot be read (a missing mount, access denied in an account) is listed in `errors` and the rest goes on.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

import hvac
import hvac.exceptions
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, computed_field, model_validator

from rescind.aws.errors import aws_errors
from rescind.discovery import DiscoveryScope
from rescind.exceptions import ActionFailed, TransientError
from rescind.inventory.base import Inventory
from rescind.models import (
    AppRoleSecretIdRef,
    CredentialKind,
    IamAccessKeyRef,
    KvSecretRef,
    PkiCertificateRef,
    SecretsManagerSecretRef,
    TtlTargetType,
    VaultTokenRef,
    VaultTtlTargetRef,
)
from rescind.models.refs import format_ref
from rescind.schedules.base import RateLimiter
from rescind.schedules.policy import SchedulePolicy
from rescind.vault.client import read_data, vault_errors
from rescind.vault.common import as_int, list_keys
from rescind.vault.pki import uri_sans
from rescind.vault.ttl import TtlTargets, read_ttl_settings

if TYPE_CHECKING:
    from rescind.aws.session import AwsClientFactory

# Upper bounds of the age buckets, in order; the last bucket is everything older.
AGE_BUCKETS: tuple[tuple[str, timedelta | None], ...] = (
    ("lt_1d", timedelta(days=1)),
    ("lt_7d", timedelta(days=7)),
    ("lt_30d", timedelta(days=30)),
    ("lt_90d", timedelta(days=90)),
    ("ge_90d", None),
)
_BUCKET_LABELS = {
    "lt_1d": "< 1 day",
    "lt_7d": "< 7 days",
    "lt_30d": "< 30 days",
    "lt_90d": "< 90 days",
    "ge_90d": ">= 90 days",
}
# What OpenBao says for a secret-id that never expires.
_NEVER_EXPIRES = {"", "0001-01-01T00:00:00Z"}
_DERIVED_FIELDS = frozenset(
    {"total", "by_kind", "by_age", "no_owner_count", "standing_privilege_count", "ttl_violation_count"}
)
_FRACTION = re.compile(r"\.\d+")

ReportText = Annotated[str, Field(max_length=1000)]


class Finding(BaseModel):
    """One credential, role or mount in a report category, by reference; never a value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: ReportText  # a reference's text form (`format_ref`) or a Vault path
    kind: str
    detail: ReportText = ""


class ReportScope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pki_mounts: tuple[str, ...]
    approle_mounts: tuple[str, ...]
    kv_mounts: tuple[str, ...]
    aws_account_ids: tuple[str, ...]
    metadata_key: str
    aws_tag_key: str


class InventoryReport(BaseModel):
    """Counts of the estate, and the references behind the counts that need a human."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generated_at: AwareDatetime
    scope: ReportScope
    by_kind_and_age: dict[CredentialKind, dict[str, int]]  # every kind seen, every bucket present
    no_owner: tuple[Finding, ...] = ()
    standing_privilege: tuple[Finding, ...] = ()
    ttl_violations: tuple[Finding, ...] = ()
    errors: tuple[ReportText, ...] = ()  # parts that could not be read: the counts miss them

    @model_validator(mode="before")
    @classmethod
    def _drop_derived_counts(cls, data: Any) -> Any:
        """The JSON carries the derived counts for readers; reading it back derives them again."""
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if key not in _DERIVED_FIELDS}
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> int:
        return sum(sum(buckets.values()) for buckets in self.by_kind_and_age.values())

    @computed_field  # type: ignore[prop-decorator]
    @property
    def by_kind(self) -> dict[CredentialKind, int]:
        return {kind: sum(buckets.values()) for kind, buckets in self.by_kind_and_age.items()}

    @computed_field  # type: ignore[prop-decorator]
    @property
    def by_age(self) -> dict[str, int]:
        return {name: sum(buckets.get(name, 0) for buckets in self.by_kind_and_age.values()) for name, _ in AGE_BUCKETS}

    @computed_field  # type: ignore[prop-decorator]
    @property
    def no_owner_count(self) -> int:
        return len(self.no_owner)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def standing_privilege_count(self) -> int:
        return len(self.standing_privilege)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ttl_violation_count(self) -> int:
        return len(self.ttl_violations)


def age_bucket(created_at: datetime, now: datetime) -> str:
    age = now - created_at
    for name, upper in AGE_BUCKETS:
        if upper is None or age < upper:
            return name
    return AGE_BUCKETS[-1][0]  # pragma: no cover - the last bucket has no upper bound


class _Collector:
    """Accumulates the report while the readers walk the estate."""

    def __init__(self, *, policy: SchedulePolicy, scope: DiscoveryScope, owned: frozenset[str], now: datetime) -> None:
        self.policy = policy
        self.scope = scope
        self.owned = owned
        self.now = now
        self.ages: dict[CredentialKind, Counter[str]] = {}
        self.no_owner: list[Finding] = []
        self.standing: list[Finding] = []
        self.violations: list[Finding] = []
        self.errors: list[str] = []

    def credential(self, ref_text: str, kind: CredentialKind, created_at: datetime, owner: str | None) -> None:
        self.ages.setdefault(kind, Counter())[age_bucket(created_at, self.now)] += 1
        if not owner and ref_text not in self.owned:
            self.no_owner.append(Finding(target=ref_text, kind=kind, detail="no workload metadata, URI SAN or tag"))

    def section(self, what: str, read: Callable[[], None]) -> None:
        try:
            read()
        except (ActionFailed, TransientError) as error:
            self.errors.append(f"{what}: {type(error).__name__}: {error}"[:1000])


class _Vault:
    def __init__(self, client: hvac.Client, limiter: RateLimiter) -> None:
        self.client = client
        self._limiter = limiter

    def wait(self) -> None:
        self._limiter.wait()

    def call(self, operation: str, request: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self._limiter.wait()
        with vault_errors(operation):
            return request(*args, **kwargs)

    def keys(self, path: str) -> list[str]:
        try:
            return [str(key) for key in self.call(f"list {path}", lambda: list_keys(self.client, f"/v1/{path}"))]
        except hvac.exceptions.InvalidPath as error:
            raise ActionFailed(f"nothing is mounted at {path!r}") from error


def _timestamp(value: Any) -> datetime:
    """Vault's times: unix seconds (tokens) or RFC 3339 with nanoseconds (everything else). Always aware."""
    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(int(value), UTC)
    # Python 3.11 reads at most microseconds and no "Z".
    text = _FRACTION.sub(lambda match: match.group(0)[:7], str(value).replace("Z", "+00:00"))
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --- Vault readers ----------------------------------------------------------------------------------


def _read_tokens(vault: _Vault, report: _Collector) -> None:
    for accessor in vault.keys("auth/token/accessors"):
        try:
            response = vault.call(
                f"lookup token accessor {accessor}", vault.client.auth.token.lookup_accessor, accessor
            )
        except hvac.exceptions.InvalidRequest:
            continue  # died during the scan
        data = read_data(response)
        ref = format_ref(VaultTokenRef(accessor=accessor))
        meta = data.get("meta") or {}
        report.credential(
            ref,
            CredentialKind.VAULT_TOKEN,
            _timestamp(data.get("creation_time") or 0),
            meta.get(report.scope.metadata_key),
        )
        ttl, explicit_max = as_int(data.get("ttl")), as_int(data.get("explicit_max_ttl"))
        if ttl == 0 and explicit_max == 0:
            report.standing.append(
                Finding(target=ref, kind=CredentialKind.VAULT_TOKEN, detail="ttl 0 and no explicit max: never expires")
            )
        elif ttl > report.policy.ttl_ceilings.token_seconds:
            report.violations.append(
                Finding(
                    target=ref,
                    kind=CredentialKind.VAULT_TOKEN,
                    detail=f"ttl {ttl}s > token ceiling {report.policy.ttl_ceilings.token_seconds}s",
                )
            )


def _read_secret_ids(vault: _Vault, report: _Collector, mount: str) -> None:
    for role in vault.keys(f"auth/{mount}/role"):
        _role_ttl_violation(
            vault, report, VaultTtlTargetRef(target_type=TtlTargetType.APPROLE_ROLE, mount=mount, role_name=role)
        )
        for accessor in vault.keys(f"auth/{mount}/role/{role}/secret-id"):
            ref = AppRoleSecretIdRef(mount=mount, role_name=role, accessor=accessor)
            try:
                response = vault.call(
                    f"lookup secret-id accessor {accessor}",
                    vault.client.auth.approle.read_secret_id_accessor,
                    role,
                    accessor,
                    mount_point=mount,
                )
            except hvac.exceptions.InvalidPath:
                continue  # destroyed during the scan
            data = read_data(response)
            text = format_ref(ref)
            report.credential(
                text,
                CredentialKind.APPROLE_SECRET_ID,
                _timestamp(data.get("creation_time")),
                (data.get("metadata") or {}).get(report.scope.metadata_key),
            )
            if as_int(data.get("secret_id_ttl")) == 0 or str(data.get("expiration_time") or "") in _NEVER_EXPIRES:
                report.standing.append(
                    Finding(target=text, kind=CredentialKind.APPROLE_SECRET_ID, detail="secret_id_ttl 0: never expires")
                )
    _role_ttl_violation(vault, report, VaultTtlTargetRef(target_type=TtlTargetType.MOUNT, mount=f"auth/{mount}"))


def _role_ttl_violation(vault: _Vault, report: _Collector, ref: VaultTtlTargetRef) -> None:
    ceilings = report.policy.ttl_ceilings
    ceiling = ceilings.mount_seconds if ref.target_type is TtlTargetType.MOUNT else ceilings.role_seconds
    vault.wait()  # read_ttl_settings makes one request
    settings = read_ttl_settings(vault.client, ref)
    if settings is None:
        return
    above = settings.lowerings(TtlTargets(ttl_seconds=ceiling, ceiling_seconds=ceiling))
    if above:
        fields = " ".join(f"{name}={settings.values[name]}" for name in sorted(above))
        report.violations.append(
            Finding(
                target=format_ref(ref),
                kind=CredentialKind.VAULT_TTL_TARGET,
                detail=f"{fields} above {ceiling}s (0 = system default)",
            )
        )


def _read_certificates(vault: _Vault, report: _Collector, mount: str) -> None:
    from cryptography import x509

    from rescind.vault.pki import canonical_serial

    for role in vault.keys(f"{mount}/roles"):
        _role_ttl_violation(
            vault, report, VaultTtlTargetRef(target_type=TtlTargetType.PKI_ROLE, mount=mount, role_name=role)
        )
    _role_ttl_violation(vault, report, VaultTtlTargetRef(target_type=TtlTargetType.MOUNT, mount=mount))
    max_lifetime = timedelta(days=report.policy.pki_max_certificate_days)
    for key in vault.keys(f"{mount}/certs"):
        serial = canonical_serial(key)
        try:
            response = vault.call(
                f"read certificate {serial} on {mount}",
                vault.client.secrets.pki.read_certificate,
                serial,
                mount_point=mount,
            )
        except hvac.exceptions.InvalidPath:
            continue  # tidied during the scan
        data = read_data(response)
        pem = data.get("certificate")
        if not isinstance(pem, str) or not pem.strip() or as_int(data.get("revocation_time")) > 0:
            continue
        certificate = x509.load_pem_x509_certificate(pem.encode())
        try:
            if certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                continue  # the mount's own issuer, not a workload's credential
        except x509.ExtensionNotFound:
            pass
        if certificate.not_valid_after_utc <= report.now:
            continue
        uris = uri_sans(certificate)
        text = format_ref(PkiCertificateRef(mount=mount, serial=serial))
        report.credential(
            text, CredentialKind.PKI_CERTIFICATE, certificate.not_valid_before_utc, uris[0] if uris else None
        )
        lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
        if lifetime > max_lifetime:
            report.violations.append(
                Finding(
                    target=text,
                    kind=CredentialKind.PKI_CERTIFICATE,
                    detail=f"lifetime {lifetime / timedelta(days=1):.1f} days > {max_lifetime.days} days",
                )
            )


def _kv_paths(vault: _Vault, mount: str, folder: str = "") -> Iterator[str]:
    try:
        response = vault.call(
            f"list {mount}/metadata/{folder}",
            lambda: vault.client.secrets.kv.v2.list_secrets(folder, mount_point=mount),
        )
    except hvac.exceptions.InvalidPath as error:
        if error.errors and any("no handler for route" in str(message) for message in error.errors):
            raise ActionFailed(f"no KV v2 secrets engine is mounted at {mount!r}") from error
        return
    for entry in sorted(str(key) for key in read_data(response).get("keys") or []):
        path = f"{folder}{entry}"
        if entry.endswith("/"):
            yield from _kv_paths(vault, mount, path)
        else:
            yield path


def _read_kv_secrets(vault: _Vault, report: _Collector, mount: str) -> None:
    for path in _kv_paths(vault, mount):
        try:
            response = vault.call(
                f"read metadata of {mount}/{path}",
                vault.client.secrets.kv.v2.read_secret_metadata,
                path,
                mount_point=mount,
            )
        except hvac.exceptions.InvalidPath:
            continue
        data = read_data(response)
        current = (data.get("versions") or {}).get(str(data.get("current_version") or 0)) or {}
        if current.get("destroyed") or current.get("deletion_time"):
            continue  # no live value
        custom = data.get("custom_metadata") or {}
        report.credential(
            format_ref(KvSecretRef(mount=mount, path=path)),
            CredentialKind.KV_SECRET,
            _timestamp(current.get("created_time") or data.get("created_time")),
            custom.get(report.scope.metadata_key),
        )


# --- AWS readers ------------------------------------------------------------------------------------


def _tag(tags: list[Any] | None, key: str) -> str | None:
    for tag in tags or []:
        if tag.get("Key") == key and tag.get("Value"):
            return str(tag["Value"])
    return None


def _read_iam_keys(aws: AwsClientFactory, report: _Collector, account_id: str) -> None:
    iam = aws.client("iam", account_id)
    with aws_errors(f"iam list-users/list-access-keys in {account_id}"):
        for page in iam.get_paginator("list_users").paginate():
            for user in page["Users"]:
                name = user["UserName"]
                owner = _tag(iam.list_user_tags(UserName=name).get("Tags"), report.scope.aws_tag_key)
                for key_page in iam.get_paginator("list_access_keys").paginate(UserName=name):
                    for key in key_page["AccessKeyMetadata"]:
                        if key.get("Status") != "Active":
                            continue  # an inactive key grants nothing
                        ref = IamAccessKeyRef(account_id=account_id, user_name=name, access_key_id=key["AccessKeyId"])
                        report.credential(format_ref(ref), CredentialKind.IAM_ACCESS_KEY, key["CreateDate"], owner)


def _read_secrets_manager(aws: AwsClientFactory, report: _Collector, account_id: str) -> None:
    secrets = aws.client("secretsmanager", account_id)
    with aws_errors(f"secretsmanager list-secrets in {account_id}"):
        for page in secrets.get_paginator("list_secrets").paginate():
            for secret in page["SecretList"]:
                created = secret.get("LastRotatedDate") or secret.get("CreatedDate") or report.now
                ref = SecretsManagerSecretRef(secret_arn=secret["ARN"])
                report.credential(
                    format_ref(ref),
                    CredentialKind.SECRETS_MANAGER_SECRET,
                    created,
                    _tag(secret.get("Tags"), report.scope.aws_tag_key),
                )


# --- the report -------------------------------------------------------------------------------------


def _inventoried(inventory: Inventory | None) -> frozenset[str]:
    if inventory is None:
        return frozenset()
    owned: set[str] = set()
    for workload_id in sorted({binding.workload_id for binding in inventory.bindings()}):
        owned.update(format_ref(ref) for ref in inventory.credentials_of(workload_id))
    return frozenset(owned)


def build_inventory_report(
    *,
    policy: SchedulePolicy,
    vault: hvac.Client,
    aws: AwsClientFactory | None,
    scope: DiscoveryScope,
    inventory: Inventory | None,
    now: datetime,
) -> InventoryReport:
    """Read the estate in scope (reads only) and count it."""
    report = _Collector(policy=policy, scope=scope, owned=_inventoried(inventory), now=now)
    reader = _Vault(vault, RateLimiter(policy.vault_requests_per_second))
    report.section("vault tokens", lambda: _read_tokens(reader, report))
    for mount in scope.approle_mounts:
        report.section(f"approle mount {mount}", partial(_read_secret_ids, reader, report, mount))
    for mount in scope.pki_mounts:
        report.section(f"pki mount {mount}", partial(_read_certificates, reader, report, mount))
    for mount in scope.kv_mounts:
        report.section(f"kv mount {mount}", partial(_read_kv_secrets, reader, report, mount))
    if aws is not None:
        for account_id in scope.aws_account_ids:
            report.section(f"iam keys in {account_id}", partial(_read_iam_keys, aws, report, account_id))
            report.section(f"secrets in {account_id}", partial(_read_secrets_manager, aws, report, account_id))
    return InventoryReport(
        generated_at=now,
        scope=ReportScope(
            pki_mounts=tuple(scope.pki_mounts),
            approle_mounts=tuple(scope.approle_mounts),
            kv_mounts=tuple(scope.kv_mounts),
            aws_account_ids=tuple(scope.aws_account_ids),
            metadata_key=scope.metadata_key,
            aws_tag_key=scope.aws_tag_key,
        ),
        by_kind_and_age={
            kind: {name: counts.get(name, 0) for name, _ in AGE_BUCKETS} for kind, counts in sorted(report.ages.items())
        },
        no_owner=tuple(sorted(report.no_owner, key=lambda finding: finding.target)),
        standing_privilege=tuple(sorted(report.standing, key=lambda finding: finding.target)),
        ttl_violations=tuple(sorted(report.violations, key=lambda finding: finding.target)),
        errors=tuple(report.errors),
    )


# --- output -----------------------------------------------------------------------------------------


def render_markdown(report: InventoryReport) -> str:
    lines = [
        f"# Rescind inventory report, {report.generated_at.astimezone(UTC).isoformat()}",
        "",
        f"{report.total} credentials; {report.no_owner_count} with no owner; "
        f"{report.standing_privilege_count} standing privilege; {report.ttl_violation_count} TTL violations.",
        "",
        "## Credentials by kind and age",
        "",
        "| kind | " + " | ".join(_BUCKET_LABELS[name] for name, _ in AGE_BUCKETS) + " | total |",
        "|---|" + "---:|" * (len(AGE_BUCKETS) + 1),
    ]
    for kind, buckets in report.by_kind_and_age.items():
        cells = " | ".join(str(buckets[name]) for name, _ in AGE_BUCKETS)
        lines.append(f"| {kind} | {cells} | {sum(buckets.values())} |")
    for title, findings in (
        ("No owner", report.no_owner),
        ("Standing privilege", report.standing_privilege),
        ("TTL violations", report.ttl_violations),
    ):
        lines += ["", f"## {title} ({len(findings)})", ""]
        lines += [f"- `{finding.target}` ({finding.kind}): {finding.detail}" for finding in findings] or ["None."]
    if report.errors:
        lines += ["", f"## Not read ({len(report.errors)})", ""] + [f"- {error}" for error in report.errors]
    return "\n".join(lines) + "\n"


def write_inventory_report(
    report: InventoryReport, s3_client: Any, bucket: str, *, prefix: str = "reports/"
) -> list[str]:
    """Write the report as JSON and Markdown under dated keys; the same report always gets the same keys."""
    moment = report.generated_at.astimezone(UTC)
    stem = f"{prefix}inventory/{moment:%Y/%m/%d}/inventory-{moment:%Y%m%dT%H%M%SZ}"
    bodies = (
        (f"{stem}.json", json.dumps(report.model_dump(mode="json"), indent=2, sort_keys=True), "application/json"),
        (f"{stem}.md", render_markdown(report), "text/markdown; charset=utf-8"),
    )
    written: list[str] = []
    for key, body, content_type in bodies:
        with aws_errors(f"s3 put-object s3://{bucket}/{key}"):
            s3_client.put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType=content_type)
        written.append(key)
    return written
