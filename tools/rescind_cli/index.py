"""`rescind index kv`: (re)build the KV fingerprint index from Vault, so a leaked value resolves to its secret.
`rescind index vault`: back-fill the issuance index from a live scan of Vault (what was issued before its audit log
was shipped), so discovery may read the index instead of scanning.

`index_kv_body` takes its dependencies (Vault, the index, the key) and draws a progress bar on stderr; the
thin Typer command finds them on the target: the local stack by default (its FingerprintTable, and the key
secret its functions are configured with), or a deployed stack (`--stack NAME`, read from its resources).
`--table` and `--key-secret-arn` (FINGERPRINT_TABLE_NAME, FINGERPRINT_KEY_SECRET_ARN) override both.

Values are read from Vault, fingerprinted in memory and dropped: nothing printed holds a value or a fingerprint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rescind.exceptions import InvalidInput
from rescind.fingerprints.types import IndexProgress, IndexReport
from rescind_cli.options import JsonOption, ProfileOption, StackOption, StateDirOption, console_for, exit_on_typed_error
from rescind_cli.progress import step_progress
from rescind_cli.targets import PLAN_FUNCTION, STACK_ENV, DeployedStackTarget, LocalStackTarget, Target, resolve_target

if TYPE_CHECKING:
    import hvac

    from rescind.discovery import DiscoveryScope
    from rescind.fingerprints.base import FingerprintIndex
    from rescind.issuance.backfill import BackfillProgress, BackfillReport
    from rescind.issuance.base import IssuanceIndex
    from rescind.issuance.state import IndexStateStore

index_app = typer.Typer(
    help="The indexes: keyed fingerprints of KV v2 values, and what Vault issued to each workload; never a value.",
    no_args_is_help=True,
    add_completion=False,
)
_stderr = Console(stderr=True, emoji=False)


@index_app.callback()
def index_main() -> None:
    """Build the fingerprint indexes that leak alerts are resolved with."""


TABLE_LOGICAL_ID = "FingerprintTable"
KEY_SECRET_LOGICAL_ID = "FingerprintKeySecret"
ISSUANCE_TABLE_LOGICAL_ID = "IssuanceTable"


# --- the work -----------------------------------------------------------------------------------


def index_kv_body(
    vault: hvac.Client,
    index: FingerprintIndex,
    key: bytes,
    mounts: Sequence[str],
    *,
    prefix: str = "",
    show_progress: bool = True,
    console: Console | None = None,
) -> IndexReport:
    """Index every mount in turn; one progress bar per mount on `console` (stderr) unless told not to."""
    from rescind.fingerprints.indexing import index_kv_mount

    if not mounts:
        raise InvalidInput("name at least one KV v2 mount (--mount)")
    report = IndexReport()
    if not show_progress:
        for mount in mounts:
            report = report.combined_with(index_kv_mount(vault, index, key, mount, prefix=prefix))
        return report
    with _index_progress(console or _stderr) as on_progress:
        for mount in mounts:
            report = report.combined_with(
                index_kv_mount(vault, index, key, mount, prefix=prefix, on_progress=on_progress)
            )
    return report


@contextmanager
def _index_progress(console: Console) -> Iterator[Callable[[IndexProgress], None]]:
    with step_progress(console, item=True) as progress:
        tasks: dict[str, Any] = {}

        def on_progress(step: IndexProgress) -> None:
            if step.mount not in tasks:
                tasks[step.mount] = progress.add_task(step.mount, total=step.total, item="")
            progress.update(tasks[step.mount], total=step.total, completed=step.done, item=step.item)

        yield on_progress


def index_report_document(report: IndexReport, *, prefix: str, table: str) -> dict[str, Any]:
    return {"ok": True, "table": table, "prefix": prefix, **report.model_dump(mode="json")}


def print_index_report(report: IndexReport, *, prefix: str, table: str, console: Console) -> None:
    summary = Table(title=f"KV fingerprint index ({table})")
    summary.add_column("what")
    summary.add_column("count", justify="right")
    summary.add_row("secrets", str(report.secrets))
    summary.add_row("versions indexed", str(report.versions))
    summary.add_row("fingerprints written", str(report.fingerprints))
    summary.add_row("fields too short to index", str(report.fields_skipped))
    console.print(summary)
    where = ", ".join(report.mounts) + (f" under {prefix}" if prefix else "")
    console.print(f"mounts: {where}")


# --- finding the table, the key and the mounts on the target ------------------------------------


def _local_function_settings(target: LocalStackTarget) -> dict[str, str]:
    """The functions' environment in the local moto (every function shares the template's Globals)."""
    try:
        name = target.local.function_name(PLAN_FUNCTION)
    except KeyError:
        return {}
    configuration = target.client("lambda").get_function_configuration(FunctionName=name)
    variables = (configuration.get("Environment") or {}).get("Variables") or {}
    return {str(key): str(value) for key, value in variables.items()}


def _stack_physical_id(target: DeployedStackTarget, logical_id: str) -> str:
    from botocore.exceptions import ClientError

    try:
        detail = target.client("cloudformation").describe_stack_resource(
            StackName=target.stack_name, LogicalResourceId=logical_id
        )["StackResourceDetail"]
    except ClientError:
        return ""
    return str(detail.get("PhysicalResourceId") or "")


def index_location(target: Target, table: str | None, key_secret_arn: str | None) -> tuple[str, str]:
    """The index table and the key secret's ARN: the options, else what the target was deployed with."""
    if not table or not key_secret_arn:
        if isinstance(target, LocalStackTarget):
            settings = _local_function_settings(target)
            table = table or target.local.state.tables.get(TABLE_LOGICAL_ID) or settings.get("FINGERPRINT_TABLE_NAME")
            key_secret_arn = key_secret_arn or settings.get("FINGERPRINT_KEY_SECRET_ARN")
        elif isinstance(target, DeployedStackTarget):
            table = table or _stack_physical_id(target, TABLE_LOGICAL_ID)
            key_secret_arn = key_secret_arn or _stack_physical_id(target, KEY_SECRET_LOGICAL_ID)
    if not table:
        raise InvalidInput(f"{target.description} has no {TABLE_LOGICAL_ID}: give --table (FINGERPRINT_TABLE_NAME)")
    if not key_secret_arn:
        raise InvalidInput(
            f"{target.description} has no {KEY_SECRET_LOGICAL_ID}: give --key-secret-arn (FINGERPRINT_KEY_SECRET_ARN)"
        )
    return table, key_secret_arn


def _split(values: Sequence[str] | None) -> list[str]:
    """Repeated options and comma-separated lists (as in the functions' environment) both work."""
    return [item.strip() for value in values or () for item in value.split(",") if item.strip()]


# --- the Typer command --------------------------------------------------------------------------


@index_app.command("kv")
def index_kv_command(
    mount: Annotated[
        list[str] | None,
        typer.Option(
            "--mount",
            envvar="KV_MOUNTS",
            help="KV v2 mount to index; repeat or comma-separate (default: the target's KV mounts).",
        ),
    ] = None,
    prefix: Annotated[str, typer.Option("--prefix", help="Only this folder of each mount (e.g. team/app).")] = "",
    table: Annotated[
        str | None,
        typer.Option("--table", envvar="FINGERPRINT_TABLE_NAME", help="The index table (default: the target's)."),
    ] = None,
    key_secret_arn: Annotated[
        str | None,
        typer.Option(
            "--key-secret-arn",
            envvar="FINGERPRINT_KEY_SECRET_ARN",
            help="The Secrets Manager secret holding the HMAC key (default: the target's).",
        ),
    ] = None,
    stack: StackOption = None,
    state_dir: StateDirOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Fingerprint every live version of every secret in the KV v2 mounts, so leak alerts resolve to secrets.

    Idempotent: run it as often as you like (rotations Rescind performs keep the index current between runs).
    Versions that are deleted or destroyed are not indexed. Values are never stored or printed.
    """
    from rescind.fingerprints.dynamodb import DynamoDbFingerprintIndex
    from rescind.fingerprints.runtime import read_fingerprint_key

    with exit_on_typed_error(json_output):
        if stack is None and state_dir is None:
            stack = os.environ.get(STACK_ENV) or None
        target, _ = resolve_target(stack=stack, state_dir=state_dir, profile=profile)
        table_name, secret_arn = index_location(target, table, key_secret_arn)
        mounts = _split(mount) or list(target.discovery_scope().kv_mounts)
        key = read_fingerprint_key(target.client("secretsmanager"), secret_arn)
        index = DynamoDbFingerprintIndex(table_name, target.client("dynamodb"))
        report = index_kv_body(target.vault(), index, key, mounts, prefix=prefix, show_progress=not json_output)
    if json_output:
        typer.echo(json.dumps(index_report_document(report, prefix=prefix, table=table_name), indent=2))
    else:
        print_index_report(report, prefix=prefix, table=table_name, console=console_for())


# --- rescind index vault: the issuance index's back-fill ------------------------------------------------


def index_vault_body(
    vault: hvac.Client,
    index: IssuanceIndex,
    state: IndexStateStore,
    scope: DiscoveryScope,
    *,
    requests_per_second: float,
    resume: bool = False,
    limit: int | None = None,
    page_size: int | None = None,
    show_progress: bool = True,
    console: Console | None = None,
) -> BackfillReport:
    """Back-fill the index (one progress bar per group on `console`, stderr, unless told not to)."""
    from rescind.issuance.backfill import DEFAULT_PAGE_SIZE, backfill_index
    from rescind.models.results import utc_now

    def run(on_progress: Callable[[BackfillProgress], None] | None) -> BackfillReport:
        return backfill_index(
            vault,
            index,
            state,
            scope,
            now=utc_now,
            requests_per_second=requests_per_second,
            resume=resume,
            max_items=limit,
            page_size=page_size or DEFAULT_PAGE_SIZE,
            on_progress=on_progress,
        )

    if not show_progress:
        return run(None)
    with step_progress(console or _stderr, item=True) as progress:
        tasks: dict[str, Any] = {}

        def on_progress(step: BackfillProgress) -> None:
            if step.group not in tasks:
                tasks[step.group] = progress.add_task(step.group, total=step.total, item="")
            progress.update(tasks[step.group], total=step.total, completed=step.done, item=step.item)

        return run(on_progress)


def backfill_document(report: BackfillReport, *, table: str) -> dict[str, Any]:
    return {"ok": True, "table": table, **report.model_dump(mode="json")}


def print_backfill_report(report: BackfillReport, *, table: str, console: Console) -> None:
    summary = Table(title=f"Issuance index back-fill ({table})")
    summary.add_column("what")
    summary.add_column("count", justify="right")
    summary.add_row("credentials examined", str(report.examined))
    for kind, count in sorted(report.by_kind.items()):
        summary.add_row(f"  {kind}", str(count))
    summary.add_row("records written (new)", str(report.written))
    summary.add_row("recorded with no workload", str(report.without_workload))
    summary.add_row("gone before their lookup", str(report.gone))
    summary.add_row("skipped (CA, revoked or expired certificates)", str(report.skipped))
    console.print(summary)
    if report.resumed_after:
        console.print(f"resumed after {escape(report.resumed_after)}")
    if report.complete and report.backfilled_at is not None:
        console.print(f"the index is marked back-filled at {report.backfilled_at.isoformat(timespec='seconds')}")
    else:
        console.print(f"stopped at the limit after {escape(report.checkpoint or '-')}: run again with --resume")


def issuance_table_location(target: Target, table: str | None) -> str:
    """The issuance table: the option, else the target's IssuanceTable."""
    if not table:
        if isinstance(target, LocalStackTarget):
            table = target.local.state.tables.get(ISSUANCE_TABLE_LOGICAL_ID) or _local_function_settings(target).get(
                "ISSUANCE_TABLE_NAME"
            )
        elif isinstance(target, DeployedStackTarget):
            table = _stack_physical_id(target, ISSUANCE_TABLE_LOGICAL_ID)
    if not table:
        raise InvalidInput(
            f"{target.description} has no {ISSUANCE_TABLE_LOGICAL_ID}: give --table (ISSUANCE_TABLE_NAME)"
        )
    return table


@index_app.command("vault")
def index_vault_command(
    rate: Annotated[
        float,
        typer.Option(
            "--rate", min=0.1, help="At most this many Vault requests per second (a scan must not crowd Vault)."
        ),
    ] = 50.0,
    resume: Annotated[
        bool, typer.Option("--resume", help="Go on after the checkpoint a bounded or interrupted run left.")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Stop after this many credentials (resume with --resume).")
    ] = None,
    page_size: Annotated[
        int | None, typer.Option("--page-size", min=1, help="Credentials written per page, each page checkpointed.")
    ] = None,
    table: Annotated[
        str | None,
        typer.Option("--table", envvar="ISSUANCE_TABLE_NAME", help="The issuance table (default: the target's)."),
    ] = None,
    stack: StackOption = None,
    state_dir: StateDirOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Back-fill the issuance index from a live scan: token accessors, AppRole secret-ids, PKI certificates and
    leases under the target's mounts, each with its workload (metadata, URI SAN), TTL and issue time.

    Paginated (a checkpoint after each page), rate-limited (--rate) and resumable (--resume). When the whole scan is
    done the index is marked back-filled, and discovery reads it instead of scanning while the drift schedule keeps
    it in step. Idempotent: what the index already holds (from the audit log) is kept as it is. No value is read.
    """
    from rescind.issuance.reading import IssuanceTableReader
    from rescind.issuance.state import DynamoDbIndexState

    with exit_on_typed_error(json_output):
        if stack is None and state_dir is None:
            stack = os.environ.get(STACK_ENV) or None
        target, _ = resolve_target(stack=stack, state_dir=state_dir, profile=profile)
        table_name = issuance_table_location(target, table)
        client = target.client("dynamodb")
        report = index_vault_body(
            target.vault(),
            IssuanceTableReader(table_name, client),
            DynamoDbIndexState(table_name, client),
            target.discovery_scope(),
            requests_per_second=rate,
            resume=resume,
            limit=limit,
            page_size=page_size,
            show_progress=not json_output,
        )
    if json_output:
        typer.echo(json.dumps(backfill_document(report, table=table_name), indent=2))
    else:
        print_backfill_report(report, table=table_name, console=console_for())
