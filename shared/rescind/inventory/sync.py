"""Building and refreshing the inventory: find tagged cloud resources, bind them, and record what each workload holds.

A resource runs as a workload when it carries the tag `rescind:workload=<workload id>` (the key is
configurable). The sweep reads, in each account and region it is given:
  - EC2 instances: DescribeInstances filtered on the tag key;
  - ECS tasks: ListClusters, ListTasks, DescribeTasks with include=TAGS;
  - Lambda functions: the Resource Groups Tagging API (GetResources, type lambda:function), one paginated
    call instead of ListTags per function.
Then, for every workload found and every workload already bound, live discovery (Vault and AWS conventions)
runs and the references it finds are recorded. Running it again adds nothing that is already there.

A failure in one account, region or service, or in one workload's discovery, is reported and the rest goes on:
the sweep is idempotent, so running it again fills the gap.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from rescind.aws.errors import aws_errors
from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.discovery import DiscoveryScope, discover_workload_credentials
from rescind.exceptions import InvalidInput, RescindError
from rescind.inventory.types import CloudResourceKind, WorkloadBinding
from rescind.models import CredentialKind, CredentialRef
from rescind.models.results import utc_now

if TYPE_CHECKING:
    import hvac

    from rescind.aws.session import AwsClientFactory
    from rescind.inventory.base import Inventory

DEFAULT_TAG_KEY = "rescind:workload"

_ACCOUNT_RE = re.compile(r"^\d{12}$")
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
# The same rule offboarding applies to a workload id: printable ASCII, no spaces, at most 500 characters.
_WORKLOAD_ID_RE = re.compile(r"^[\x21-\x7e]{1,500}$")
_DESCRIBE_TASKS_BATCH = 100  # DescribeTasks takes at most 100 task ARNs


class SyncPhase(StrEnum):
    SWEEP = "sweep"  # one step per (account, region, resource kind)
    DISCOVER = "discover"  # one step per workload


@dataclass(frozen=True)
class SyncProgress:
    """Reported after each step, so a caller can draw a progress bar."""

    phase: SyncPhase
    done: int
    total: int
    item: str


class SyncFailure(BaseModel):
    """One part of the sweep that failed; the message names the operation, never a value."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    phase: SyncPhase
    where: str
    error_type: str
    message: str


class SyncReport(BaseModel):
    """What one sync saw and what it added. Counts only: no value, and no reference is repeated here."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid")

    started_at: AwareDatetime
    finished_at: AwareDatetime | None = None
    resources_bound: int = 0
    resources_by_kind: dict[CloudResourceKind, int] = Field(default_factory=dict)
    bindings_new: int = 0  # resources not bound before, or bound to another workload before
    resources_skipped: int = 0  # tagged, but the tag value is not a usable workload id
    workloads: int = 0
    credentials_seen: int = 0
    credentials_by_kind: dict[CredentialKind, int] = Field(default_factory=dict)
    credentials_new: int = 0
    credentials_new_by_kind: dict[CredentialKind, int] = Field(default_factory=dict)
    failures: list[SyncFailure] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class _TaggedResource:
    cloud_id: str
    kind: CloudResourceKind
    workload_id: str


def sync_inventory(
    aws: AwsClientFactory,
    vault: hvac.Client,
    inventory: Inventory,
    scope: DiscoveryScope,
    *,
    account_ids: Sequence[str],
    regions: Sequence[str],
    tag_key: str = DEFAULT_TAG_KEY,
    on_progress: Callable[[SyncProgress], None] | None = None,
) -> SyncReport:
    """Bind every tagged resource in the accounts and regions given, then record what each workload holds now."""
    _check_sweep_scope(account_ids, regions, tag_key)
    report = SyncReport(started_at=utc_now())
    progress = on_progress or (lambda _: None)
    found = _sweep_and_bind(aws, inventory, report, account_ids, regions, tag_key, progress)
    workloads = sorted(found | {binding.workload_id for binding in inventory.bindings()})
    _discover_and_record(aws, vault, inventory, scope, report, workloads, progress)
    report.finished_at = utc_now()
    return report


def _sweep_and_bind(
    aws: AwsClientFactory,
    inventory: Inventory,
    report: SyncReport,
    account_ids: Sequence[str],
    regions: Sequence[str],
    tag_key: str,
    progress: Callable[[SyncProgress], None],
) -> set[str]:
    """Bind each tagged resource; returns the workload ids found."""
    sweeps = [(account, region, kind) for account in account_ids for region in regions for kind in CloudResourceKind]
    found: set[str] = set()
    by_kind: Counter[CloudResourceKind] = Counter()
    for done, (account_id, region, kind) in enumerate(sweeps, start=1):
        where = f"{kind} in {account_id}/{region}"
        try:
            tagged = list(_SWEEPERS[kind](aws, account_id, region, tag_key))
        except RescindError as error:
            report.failures.append(_failure(SyncPhase.SWEEP, where, error))
            tagged = []
        for resource in tagged:
            if not _WORKLOAD_ID_RE.fullmatch(resource.workload_id):
                report.resources_skipped += 1
                continue
            before = inventory.workload_for(resource.cloud_id)
            binding = WorkloadBinding(
                cloud_id=resource.cloud_id,
                kind=resource.kind,
                workload_id=resource.workload_id,
                account_id=account_id,
                region=region,
                seen_at=utc_now(),
            )
            inventory.bind(binding)
            if before is None or before.workload_id != binding.workload_id:
                report.bindings_new += 1
            by_kind[resource.kind] += 1
            found.add(resource.workload_id)
        progress(SyncProgress(SyncPhase.SWEEP, done, len(sweeps), where))
    report.resources_bound = sum(by_kind.values())
    report.resources_by_kind = dict(by_kind)
    return found


def _discover_and_record(
    aws: AwsClientFactory,
    vault: hvac.Client,
    inventory: Inventory,
    scope: DiscoveryScope,
    report: SyncReport,
    workloads: Sequence[str],
    progress: Callable[[SyncProgress], None],
) -> None:
    report.workloads = len(workloads)
    seen: Counter[CredentialKind] = Counter()
    new: Counter[CredentialKind] = Counter()
    for done, workload_id in enumerate(workloads, start=1):
        try:
            refs = _unique(discover_workload_credentials(vault, aws, workload_id, scope))
        except RescindError as error:
            report.failures.append(_failure(SyncPhase.DISCOVER, workload_id, error))
        else:
            known = {ref.key for ref in inventory.credentials_of(workload_id)}
            inventory.record_credentials(workload_id, refs)
            seen.update(ref.kind for ref in refs)
            new.update(ref.kind for ref in refs if ref.key not in known)
        progress(SyncProgress(SyncPhase.DISCOVER, done, len(workloads), workload_id))
    report.credentials_seen = sum(seen.values())
    report.credentials_by_kind = dict(seen)
    report.credentials_new = sum(new.values())
    report.credentials_new_by_kind = dict(new)


def _check_sweep_scope(account_ids: Sequence[str], regions: Sequence[str], tag_key: str) -> None:
    if isinstance(account_ids, str) or isinstance(regions, str):
        raise InvalidInput("account_ids and regions are lists, not one string")
    if not account_ids or not regions:
        raise InvalidInput("sync needs at least one account and one region")
    if bad := [account for account in account_ids if not _ACCOUNT_RE.fullmatch(account)]:
        raise InvalidInput(f"account ids must be 12 digits ({len(bad)} malformed)")
    if bad := [region for region in regions if not _REGION_RE.fullmatch(region)]:
        raise InvalidInput(f"malformed region name(s): {', '.join(repr(region[:30]) for region in bad)}")
    if not 1 <= len(tag_key) <= 128:
        raise InvalidInput("the workload tag key must be 1 to 128 characters")


def _failure(phase: SyncPhase, where: str, error: RescindError) -> SyncFailure:
    return SyncFailure(phase=phase, where=where, error_type=type(error).__name__, message=str(error)[:500])


def _unique(refs: Sequence[CredentialRef]) -> list[CredentialRef]:
    by_key: dict[str, CredentialRef] = {}
    for ref in refs:
        by_key.setdefault(ref.key, ref)
    return list(by_key.values())


# --- the sweepers: one per resource kind ------------------------------------------------------------


def _tag_value(
    tags: Sequence[dict[str, Any]] | None, tag_key: str, *, key: str = "Key", value: str = "Value"
) -> str | None:
    """The tag's value ('' when empty), or None when the resource does not carry the tag."""
    for tag in tags or ():
        if tag.get(key) == tag_key:
            return str(tag.get(value) or "")
    return None


def _ec2_instances(aws: AwsClientFactory, account_id: str, region: str, tag_key: str) -> Iterator[_TaggedResource]:
    ec2 = aws.client("ec2", account_id, region_name=region)
    with aws_errors(f"ec2 describe-instances in {account_id}/{region}"):
        paginator = ec2.get_paginator("describe_instances")
        for page in paginator.paginate(Filters=[{"Name": "tag-key", "Values": [tag_key]}]):
            for reservation in page.get("Reservations", []):
                for instance in reservation.get("Instances", []):
                    workload_id = _tag_value(instance.get("Tags"), tag_key)
                    if workload_id is not None:
                        yield _TaggedResource(instance["InstanceId"], CloudResourceKind.EC2_INSTANCE, workload_id)


def _ecs_tasks(aws: AwsClientFactory, account_id: str, region: str, tag_key: str) -> Iterator[_TaggedResource]:
    ecs = aws.client("ecs", account_id, region_name=region)
    with aws_errors(f"ecs list-clusters/list-tasks/describe-tasks in {account_id}/{region}"):
        clusters = [
            arn for page in ecs.get_paginator("list_clusters").paginate() for arn in page.get("clusterArns", [])
        ]
        for cluster in clusters:
            task_arns = [
                arn
                for page in ecs.get_paginator("list_tasks").paginate(cluster=cluster)
                for arn in page.get("taskArns", [])
            ]
            for start in range(0, len(task_arns), _DESCRIBE_TASKS_BATCH):
                batch = task_arns[start : start + _DESCRIBE_TASKS_BATCH]
                described = ecs.describe_tasks(cluster=cluster, tasks=batch, include=["TAGS"])
                for task in described.get("tasks", []):
                    workload_id = _tag_value(task.get("tags"), tag_key, key="key", value="value")
                    if workload_id is not None:
                        yield _TaggedResource(task["taskArn"], CloudResourceKind.ECS_TASK, workload_id)


def _lambda_functions(aws: AwsClientFactory, account_id: str, region: str, tag_key: str) -> Iterator[_TaggedResource]:
    tagging = aws.client("resourcegroupstaggingapi", account_id, region_name=region)
    with aws_errors(f"tag get-resources lambda:function in {account_id}/{region}"):
        paginator = tagging.get_paginator("get_resources")
        pages = paginator.paginate(TagFilters=[{"Key": tag_key}], ResourceTypeFilters=["lambda:function"])
        for page in pages:
            for mapping in page.get("ResourceTagMappingList", []):
                workload_id = _tag_value(mapping.get("Tags"), tag_key)
                if workload_id is not None:
                    yield _TaggedResource(mapping["ResourceARN"], CloudResourceKind.LAMBDA_FUNCTION, workload_id)


_SWEEPERS: dict[CloudResourceKind, Callable[[AwsClientFactory, str, str, str], Iterator[_TaggedResource]]] = {
    CloudResourceKind.EC2_INSTANCE: _ec2_instances,
    CloudResourceKind.ECS_TASK: _ecs_tasks,
    CloudResourceKind.LAMBDA_FUNCTION: _lambda_functions,
}
