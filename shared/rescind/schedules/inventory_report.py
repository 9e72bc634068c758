"""The inventory report: what credentials exist, how old they are, who owns them, and what breaks the policy.

Each credential kind reads its own part (`KindSpec.inventory`, in its module), within the DiscoveryScope only
(its mounts and accounts):
  - Vault tokens (every accessor of the token store): age from creation_time; owner from metadata;
  - AppRole secret-ids (each role of each AppRole mount): age from creation_time; owner from metadata;
  - PKI certificates (live ones of each PKI mount, CAs left out): age from not_before; owner from the URI SAN;
  - KV v2 secrets (each KV mount): age of the current version; owner from custom_metadata;
  - IAM access keys (Active ones, each account) and Secrets Manager secrets (each account, the factory's
    region): age from CreateDate / LastRotatedDate; owner from the workload tag.
A credential recorded for a workload in the inventory has an owner whatever its metadata says.

With the issuance index (Vault's audit log and its back-fill), the report also says per workload what it holds, who
issued each credential (the requesting token's accessor or entity), its age and TTL, leases included
(`holdings`); a credential the index attributes to a workload has an owner, and a live one the index files under no
workload (an entity, a token, unattributed) is listed with no owner.

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
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, computed_field, model_validator

from rescind.aws.errors import aws_errors
from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.discovery import DiscoveryScope
from rescind.exceptions import ActionFailed, TransientError
from rescind.inventory.base import Inventory
from rescind.issuance.holdings import HeldCredential, WorkloadHoldings, holdings_by_workload
from rescind.kinds import Backends, InventoryRow, InventoryScan, registered_kinds
from rescind.models import CredentialKind
from rescind.models.refs import format_ref
from rescind.schedules.base import RateLimiter
from rescind.schedules.policy import SchedulePolicy

if TYPE_CHECKING:
    import hvac

    from rescind.aws.session import AwsClientFactory
    from rescind.issuance.reading import IssuanceTableReader

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
_DERIVED_FIELDS = frozenset(
    {"total", "by_kind", "by_age", "no_owner_count", "standing_privilege_count", "ttl_violation_count"}
)

ReportText = Annotated[str, Field(max_length=1000)]


class Finding(BaseModel):
    """One credential, role or mount in a report category, by reference; never a value."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    target: ReportText  # a reference's text form (`format_ref`) or a Vault path
    kind: str
    detail: ReportText = ""


class ReportScope(BaseModel):
    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    pki_mounts: tuple[str, ...]
    approle_mounts: tuple[str, ...]
    kv_mounts: tuple[str, ...]
    aws_account_ids: tuple[str, ...]
    metadata_key: str
    aws_tag_key: str


class InventoryReport(BaseModel):
    """Counts of the estate, and the references behind the counts that need a human."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    generated_at: AwareDatetime
    scope: ReportScope
    by_kind_and_age: dict[CredentialKind, dict[str, int]]  # every kind seen, every bucket present
    no_owner: tuple[Finding, ...] = ()
    standing_privilege: tuple[Finding, ...] = ()
    ttl_violations: tuple[Finding, ...] = ()
    errors: tuple[ReportText, ...] = ()  # parts that could not be read: the counts miss them
    # From the issuance index when there is one: each workload's live credentials, issuer, age and TTL.
    holdings: tuple[WorkloadHoldings, ...] = ()
    index: ReportText = "no issuance index"

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
    """Accumulates the report while the kinds' readers walk the estate."""

    def __init__(self, *, owned: frozenset[str], now: datetime) -> None:
        self.owned = owned
        self.now = now
        self.ages: dict[CredentialKind, Counter[str]] = {}
        self.no_owner: list[Finding] = []
        self.standing: list[Finding] = []
        self.violations: list[Finding] = []
        self.errors: list[str] = []

    def add(self, row: InventoryRow) -> None:
        if row.created_at is not None:
            self.ages.setdefault(row.kind, Counter())[age_bucket(row.created_at, self.now)] += 1
            if not row.owner and row.target not in self.owned:
                self.no_owner.append(
                    Finding(target=row.target, kind=row.kind, detail="no workload metadata, URI SAN or tag")
                )
        if row.standing:
            self.standing.append(Finding(target=row.target, kind=row.kind, detail=row.standing))
        if row.ttl_violation:
            self.violations.append(Finding(target=row.target, kind=row.kind, detail=row.ttl_violation))

    def section(self, what: str, rows: Callable[[], Iterable[InventoryRow]]) -> None:
        """Count one part; a part that cannot be read is listed in `errors`, and what it gave so far is kept."""
        try:
            for row in rows():
                self.add(row)
        except (ActionFailed, TransientError) as error:
            self.errors.append(f"{what}: {type(error).__name__}: {error}"[:1000])


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
    issuance: IssuanceTableReader | None = None,
) -> InventoryReport:
    """Read the estate in scope (reads only), each credential kind its own part, and count it; with the issuance
    index, each workload's holdings from it."""
    holdings, unowned, index_note, index_error = _read_index(issuance, now)
    held = frozenset(credential.target for holding in holdings for credential in holding.credentials)
    report = _Collector(owned=_inventoried(inventory) | held, now=now)
    if index_error:
        report.errors.append(index_error)
    limiter = RateLimiter(policy.vault_requests_per_second)
    scan = InventoryScan(Backends(vault, aws), scope, policy, now, wait=limiter.wait)
    for spec in registered_kinds():
        for what, rows in spec.inventory(scan) if spec.inventory is not None else ():
            report.section(what, rows)
    listed = {finding.target for finding in report.no_owner}
    report.no_owner.extend(
        Finding(target=credential.target, kind=credential.kind, detail=f"the issuance index files it under {holder}")
        for holder, credential in unowned
        if credential.target not in listed
    )
    return InventoryReport(
        generated_at=now,
        holdings=holdings,
        index=index_note,
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


def _read_index(
    issuance: IssuanceTableReader | None, now: datetime
) -> tuple[tuple[WorkloadHoldings, ...], tuple[tuple[str, HeldCredential], ...], str, str | None]:
    """(holdings, credentials of no workload, what the report says of the index, an error reading it)."""
    if issuance is None:
        return (), (), "no issuance index", None
    try:
        holdings, unowned = holdings_by_workload(issuance.records(), now)
    except (ActionFailed, TransientError) as error:
        return (), (), "the issuance index could not be read", f"issuance index: {type(error).__name__}: {error}"[:1000]
    count = sum(len(holding.credentials) for holding in holdings)
    return (
        holdings,
        unowned,
        f"issuance index {issuance.table_name}: {count} live credentials of {len(holdings)} workloads",
        None,
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
    lines += ["", "## What each workload holds (from the issuance index)", "", f"{report.index}."]
    for holding in report.holdings:
        lines += [
            "",
            f"### `{holding.workload_id}`",
            "",
            "| credential | kind | issued by | issued | age (days) | TTL |",
        ]
        lines.append("|---|---|---|---|---:|---:|")
        lines += [
            f"| `{c.target}` | {c.kind} | {c.issued_by} | {c.issued_at.isoformat(timespec='seconds')} | {c.age_days} | "
            f"{f'{c.ttl_seconds}s' if c.ttl_seconds else 'none'} |"
            for c in holding.credentials
        ]
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
