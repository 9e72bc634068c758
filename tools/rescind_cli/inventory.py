"""`rescind inventory sync|show|report`: build and refresh the inventory on demand, read it, and report what each
workload holds (the issuance index) and what has no owner.

Each command is a function taking its dependencies (`sync_command_body`, `show_inventory`), plus a thin Typer
command that builds them: the table from `--table` (or INVENTORY_TABLE_NAME), Vault from VAULT_ADDR and
VAULT_TOKEN (or ~/.vault-token), AWS from the usual profile and region. It works the same against the local
stack and a deployed one.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rescind.aws.session import DEFAULT_REGION, AwsClientFactory
from rescind.discovery import DiscoveryScope
from rescind.exceptions import InvalidInput
from rescind.inventory import Inventory, SyncPhase, SyncProgress, SyncReport, WorkloadBinding, sync_inventory
from rescind.inventory.sync import DEFAULT_TAG_KEY
from rescind.models import CredentialRef
from rescind.models.refs import format_ref
from rescind_cli.options import JsonOption, StackOption, StateDirOption, console_for, exit_on_typed_error
from rescind_cli.progress import step_progress

if TYPE_CHECKING:
    import boto3
    import hvac

    from rescind.schedules.inventory_report import InventoryReport

inventory_app = typer.Typer(
    help="The inventory: which workload each cloud resource ran as, and the credentials it was seen holding.",
    no_args_is_help=True,
    add_completion=False,
)
_stderr = Console(stderr=True, emoji=False)

TableOption = Annotated[
    str,
    typer.Option("--table", envvar="INVENTORY_TABLE_NAME", help="The inventory DynamoDB table (InventoryTable)."),
]
ProfileOption = Annotated[str | None, typer.Option("--profile", help="AWS profile (default: the usual chain).")]


# --- sync ---------------------------------------------------------------------------------------


def sync_command_body(
    inventory: Inventory,
    aws: AwsClientFactory,
    vault: hvac.Client,
    scope: DiscoveryScope,
    *,
    account_ids: Sequence[str],
    regions: Sequence[str],
    tag_key: str = DEFAULT_TAG_KEY,
    show_progress: bool = True,
    console: Console | None = None,
) -> SyncReport:
    """Run the sync, drawing a progress bar on `console` (stderr by default) unless told not to."""
    if not show_progress:
        return sync_inventory(aws, vault, inventory, scope, account_ids=account_ids, regions=regions, tag_key=tag_key)
    with _sync_progress(console or _stderr) as on_progress:
        return sync_inventory(
            aws,
            vault,
            inventory,
            scope,
            account_ids=account_ids,
            regions=regions,
            tag_key=tag_key,
            on_progress=on_progress,
        )


@contextmanager
def _sync_progress(console: Console) -> Iterator[Callable[[SyncProgress], None]]:
    with step_progress(console, description="{task.description:<9}", item=True) as progress:
        tasks = {
            SyncPhase.SWEEP: progress.add_task("sweep", total=None, item=""),
            SyncPhase.DISCOVER: progress.add_task("discover", total=None, item="", start=False),
        }

        def on_progress(step: SyncProgress) -> None:
            task = tasks[step.phase]
            if step.phase is SyncPhase.DISCOVER:
                progress.start_task(task)
            progress.update(task, total=step.total, completed=step.done, item=step.item)

        yield on_progress


def sync_report_document(report: SyncReport) -> dict[str, Any]:
    return {"ok": report.ok, **report.model_dump(mode="json")}


def print_sync_report(report: SyncReport, console: Console) -> None:
    table = Table(title="Inventory sync")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_column("by kind")
    table.add_row("resources bound", str(report.resources_bound), _by_kind(report.resources_by_kind))
    table.add_row("  of which new", str(report.bindings_new), "")
    if report.resources_skipped:
        table.add_row("tagged, skipped (unusable workload id)", str(report.resources_skipped), "")
    table.add_row("workloads", str(report.workloads), "")
    table.add_row("credentials seen", str(report.credentials_seen), _by_kind(report.credentials_by_kind))
    table.add_row("  of which new", str(report.credentials_new), _by_kind(report.credentials_new_by_kind))
    console.print(table)
    for failure in report.failures:
        console.print(f"[red]failed[/] {failure.phase} {failure.where}: {failure.error_type}: {failure.message}")


def _by_kind(counts: dict[Any, int]) -> str:
    return ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items()))


# --- show ---------------------------------------------------------------------------------------


@dataclass
class WorkloadView:
    workload_id: str
    resources: list[WorkloadBinding] = field(default_factory=list)
    credentials: list[CredentialRef] = field(default_factory=list)


def show_inventory(
    inventory: Inventory, *, workload_id: str | None = None, cloud_id: str | None = None
) -> list[WorkloadView]:
    """The workloads asked for (by id, by one of their cloud resources, or all bound) with resources and credentials.

    A cloud id that was never bound gives an empty list.
    """
    if cloud_id is not None:
        binding = inventory.workload_for(cloud_id)
        if binding is None:
            return []
        workload_id = binding.workload_id
    bindings = inventory.bindings()
    wanted = [workload_id] if workload_id is not None else sorted({binding.workload_id for binding in bindings})
    return [
        WorkloadView(
            workload_id=wanted_id,
            resources=[binding for binding in bindings if binding.workload_id == wanted_id],
            credentials=sorted(inventory.credentials_of(wanted_id), key=lambda ref: ref.key),
        )
        for wanted_id in wanted
    ]


def show_document(views: Sequence[WorkloadView]) -> dict[str, Any]:
    return {
        "workloads": [
            {
                "workload_id": view.workload_id,
                "resources": [binding.model_dump(mode="json") for binding in view.resources],
                # `reference`: the form `rescind revoke --credential` takes, so a listed credential can be pasted.
                "credentials": [
                    {**ref.model_dump(mode="json"), "reference": format_ref(ref)} for ref in view.credentials
                ],
            }
            for view in views
        ]
    }


def print_inventory(views: Sequence[WorkloadView], console: Console) -> None:
    for view in views:
        console.rule(f"[bold]{view.workload_id}[/]")
        resources = Table(title="cloud resources it ran as", title_justify="left")
        for column in ("kind", "cloud id", "account", "region", "last seen"):
            resources.add_column(column, overflow="fold")
        for binding in view.resources:
            resources.add_row(
                str(binding.kind),
                binding.cloud_id,
                binding.account_id,
                binding.region,
                binding.seen_at.isoformat(timespec="seconds"),
            )
        credentials = Table(title="credentials seen held (references, never values)", title_justify="left")
        for column in ("kind", "reference (as --credential takes it)"):
            credentials.add_column(column, overflow="fold")
        for ref in view.credentials:
            credentials.add_row(str(ref.kind), escape(format_ref(ref)))
        console.print(resources if view.resources else "[dim]no cloud resource bound[/]")
        console.print(credentials if view.credentials else "[dim]no credential recorded[/]")
    kinds = Counter(str(ref.kind) for view in views for ref in view.credentials)
    console.print(f"{len(views)} workload(s), {sum(kinds.values())} credential(s): {_by_kind(dict(kinds))}")


# --- the Typer commands: build the dependencies, call the functions above -------------------------


@inventory_app.command("sync")
def sync_command(
    table: TableOption,
    account: Annotated[
        list[str] | None,
        typer.Option(
            "--account",
            envvar="AWS_ACCOUNT_IDS",
            help="Account to sweep and look for IAM keys in; repeat or comma-separate (default: your own).",
        ),
    ] = None,
    region: Annotated[
        list[str] | None,
        typer.Option("--region", help="Region to sweep; repeat or comma-separate (default: your AWS region)."),
    ] = None,
    pki_mount: Annotated[
        list[str] | None, typer.Option("--pki-mount", envvar="PKI_MOUNTS", help="PKI mounts to search [default: pki].")
    ] = None,
    approle_mount: Annotated[
        list[str] | None,
        typer.Option("--approle-mount", envvar="APPROLE_MOUNTS", help="AppRole mounts [default: approle]."),
    ] = None,
    kv_mount: Annotated[
        list[str] | None,
        typer.Option("--kv-mount", envvar="KV_MOUNTS", help="KV v2 mounts to search [default: secret]."),
    ] = None,
    metadata_key: Annotated[
        str, typer.Option("--metadata-key", envvar="WORKLOAD_METADATA_KEY", help="Vault metadata naming a workload.")
    ] = "spiffe_id",
    tag_key: Annotated[str, typer.Option("--tag-key", help="AWS tag naming a workload.")] = DEFAULT_TAG_KEY,
    role_name: Annotated[
        str, typer.Option("--role-name", envvar="CROSS_ACCOUNT_ROLE_NAME", help="Role assumed in other accounts.")
    ] = "RescindExecutionRole",
    external_id: Annotated[str | None, typer.Option("--external-id", envvar="CROSS_ACCOUNT_EXTERNAL_ID")] = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Find the cloud resources tagged with a workload, bind them, and record what each workload holds now.

    Sweeps EC2 instances, ECS tasks and Lambda functions in each account and region, then runs live discovery
    in Vault and AWS for every workload found or already bound. Idempotent: run it as often as you like.
    Exits 1 when some part of the sweep failed (the rest is still recorded).
    """
    with exit_on_typed_error(json_output):
        session = _aws_session(profile)
        aws = AwsClientFactory(role_name=role_name, external_id=external_id, purpose="inventory-sync", session=session)
        account_ids = _split(account) or [aws.caller_identity().account_id]
        regions = _split(region) or [aws.region_name]
        if not json_output:
            _say_target(table, session, f"AWS account(s) {', '.join(account_ids)} from {_chain(profile)}")
        scope = DiscoveryScope(
            pki_mounts=tuple(_split(pki_mount) or ("pki",)),
            approle_mounts=tuple(_split(approle_mount) or ("approle",)),
            kv_mounts=tuple(_split(kv_mount) or ("secret",)),
            aws_account_ids=tuple(account_ids),
            metadata_key=metadata_key,
            aws_tag_key=tag_key,
        )
        report = sync_command_body(
            _inventory(table, session),
            aws,
            _vault_from_environment(),
            scope,
            account_ids=account_ids,
            regions=regions,
            tag_key=tag_key,
            show_progress=not json_output,
        )
    if json_output:
        typer.echo(json.dumps(sync_report_document(report), indent=2))
    else:
        print_sync_report(report, console_for())
    raise typer.Exit(0 if report.ok else 1)


@inventory_app.command("show")
def show_command(
    table: TableOption,
    workload: Annotated[str | None, typer.Option("--workload", help="Only this workload (a SPIFFE ID or id).")] = None,
    cloud_id: Annotated[
        str | None, typer.Option("--cloud-id", help="Only the workload this instance id / task or function ARN ran as.")
    ] = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show the bindings and the recorded credential references (never values). Reads only the inventory table.

    Exits 1 when a --workload or --cloud-id was asked for and the inventory knows nothing of it.
    """
    with exit_on_typed_error(json_output):
        if workload is not None and cloud_id is not None:
            raise InvalidInput("give --workload or --cloud-id, not both")
        session = _aws_session(profile)
        inventory = _inventory(table, session)
        if not json_output:
            _say_target(table, session, _chain(profile))
        views = show_inventory(inventory, workload_id=workload, cloud_id=cloud_id)
    if json_output:
        typer.echo(json.dumps(show_document(views), indent=2))
    else:
        print_inventory(views, console_for())
    asked = workload is not None or cloud_id is not None
    known = any(view.resources or view.credentials for view in views)
    raise typer.Exit(1 if asked and not known else 0)


# --- building the dependencies ------------------------------------------------------------------


def _split(values: Sequence[str] | None) -> list[str]:
    """Repeated options and comma-separated lists (as in the functions' environment) both work."""
    return [item.strip() for value in values or () for item in value.split(",") if item.strip()]


def _chain(profile: str | None) -> str:
    return f"AWS profile {profile}" if profile else "the usual AWS credential chain"


def _say_target(table: str, session: boto3.Session, where: str) -> None:
    """Inventory commands act where --table (INVENTORY_TABLE_NAME) and the AWS credentials point: say so first."""
    region = session.region_name or DEFAULT_REGION
    _stderr.print(
        f"target: inventory table {escape(table)} in {region}, {escape(where)} (--table or INVENTORY_TABLE_NAME)"
    )


def _aws_session(profile: str | None) -> boto3.Session:
    """The usual credential chain and region (AWS_PROFILE, AWS_REGION, ~/.aws), or the named profile."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        return boto3.Session(profile_name=profile)
    except ProfileNotFound:
        raise InvalidInput(f"AWS profile {profile!r} is not configured") from None


def _inventory(table: str, session: boto3.Session) -> Inventory:
    from rescind.inventory.dynamodb import DynamoDbInventory

    if not 3 <= len(table) <= 255:
        raise InvalidInput("--table must name a DynamoDB table (3 to 255 characters)")
    return DynamoDbInventory(table, session.client("dynamodb", region_name=session.region_name or DEFAULT_REGION))


def _vault_from_environment() -> hvac.Client:
    from rescind.vault.client import build_vault_client

    addr = os.environ.get("VAULT_ADDR", "")
    token = os.environ.get("VAULT_TOKEN", "")
    token_file = Path.home() / ".vault-token"
    if not token and token_file.is_file():
        token = token_file.read_text().strip()
    if not addr or not token:
        raise InvalidInput("set VAULT_ADDR and VAULT_TOKEN (or log in with `bao login` / `vault login`)")
    return build_vault_client(addr, token, namespace=os.environ.get("VAULT_NAMESPACE") or None)


# --- report: what each workload holds, from the issuance index -----------------------------------


def print_holdings(report: InventoryReport, console: Console, *, workload_id: str | None = None) -> None:
    """Per workload: its credentials, who issued each, age and TTL (from the issuance index); then no owner."""
    console.print(f"[dim]{escape(report.index)}[/]")
    for holding in report.holdings:
        if workload_id is not None and holding.workload_id != workload_id:
            continue
        console.rule(f"[bold]{escape(holding.workload_id)}[/]")
        table = Table(title="what it holds (references, never values)", title_justify="left")
        for column in ("kind", "reference", "issued by", "issued", "age (days)", "ttl"):
            table.add_column(column, overflow="fold")
        for credential in holding.credentials:
            table.add_row(
                credential.kind,
                escape(credential.target),
                escape(credential.issued_by),
                credential.issued_at.isoformat(timespec="seconds"),
                f"{credential.age_days:g}",
                f"{credential.ttl_seconds}s" if credential.ttl_seconds else "none",
            )
        console.print(table)
    if workload_id is None:
        console.rule(f"[bold]no owner ({report.no_owner_count})[/]")
        for finding in report.no_owner:
            console.print(f"{escape(finding.target)} ({finding.kind}): {escape(finding.detail)}")
    for error in report.errors:
        console.print(f"[red]not read[/] {escape(error)}")


def report_document(report: InventoryReport, *, workload_id: str | None = None) -> dict[str, Any]:
    document = report.model_dump(mode="json")
    if workload_id is not None:
        document["holdings"] = [item for item in document["holdings"] if item["workload_id"] == workload_id]
    return document


@inventory_app.command("report")
def report_command(
    workload: Annotated[str | None, typer.Option("--workload", help="Only this workload's holdings.")] = None,
    rate: Annotated[
        float | None,
        typer.Option("--rate", min=0.1, help="At most this many Vault requests per second (default: the policy's)."),
    ] = None,
    issuance_table: Annotated[
        str | None,
        typer.Option(
            "--issuance-table", envvar="ISSUANCE_TABLE_NAME", help="The issuance table (default: the target's)."
        ),
    ] = None,
    stack: StackOption = None,
    state_dir: StateDirOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """The inventory report on the target: per workload what it holds, who issued it, its age and TTL (from the
    issuance index), and which credentials have no owner; reads only, as the InventoryReport schedule does.

    Exits 1 when --workload was asked for and the index holds nothing live of it.
    """
    from rescind.issuance.reading import IssuanceTableReader
    from rescind.models.results import utc_now
    from rescind.schedules.inventory_report import build_inventory_report
    from rescind.schedules.policy import SchedulePolicy
    from rescind_cli.index import issuance_table_location
    from rescind_cli.targets import STACK_ENV, resolve_target

    with exit_on_typed_error(json_output):
        if stack is None and state_dir is None:
            stack = os.environ.get(STACK_ENV) or None
        target, _ = resolve_target(stack=stack, state_dir=state_dir, profile=profile)
        table = issuance_table_location(target, issuance_table)
        policy = SchedulePolicy() if rate is None else SchedulePolicy(vault_requests_per_second=rate)
        report = build_inventory_report(
            policy=policy,
            vault=target.vault(),
            aws=target.aws_factory(),
            scope=target.discovery_scope(),
            inventory=target.inventory(),
            now=utc_now(),
            issuance=IssuanceTableReader(table, target.client("dynamodb")),
        )
    if json_output:
        typer.echo(json.dumps(report_document(report, workload_id=workload), indent=2))
    else:
        print_holdings(report, console_for(), workload_id=workload)
    known = workload is None or any(holding.workload_id == workload for holding in report.holdings)
    raise typer.Exit(0 if known else 1)
