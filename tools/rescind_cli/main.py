"""The `rescind` command line. Incident responders' tool; installed by the project, never deployed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from rescind.models import ActionResult
from rescind_cli.inventory import inventory_app
from rescind_cli.local import local_app
from rescind_cli.runs import register as register_run_commands

if TYPE_CHECKING:
    from rescind_local.proof import ProofByUse  # the CLI's --help must not import hvac

app = typer.Typer(
    help="Rescind: revoke and rotate non-human credentials in Vault/OpenBao and AWS, verified by reading back.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True, emoji=False)
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout, for scripts.")]


app.add_typer(inventory_app, name="inventory")
app.add_typer(local_app, name="local")
register_run_commands(app)


@app.callback()
def main() -> None:
    """Rescind's command line."""


@app.command()
def demo(json_output: JsonOption = False) -> None:
    """Run the demo on the embedded local stack.

    It starts a real OpenBao server and moto, seeds two workloads' credentials, ends one workload's
    credentials through the action engine, and proves by use that they are dead and the other's still work.
    Exits 0 only when both hold.
    """
    from rescind_cli.demo import run_demo  # starts servers: imported only when asked

    with console.status("starting") as status:

        def on_step(text: str) -> None:
            status.update(text)
            if not json_output:
                console.log(text)

        def on_result(result: ActionResult) -> None:
            if not json_output:
                console.log(f"{result.outcome:>15}  {result.action_kind:<8} {result.target.key}")

        report = run_demo(on_step, on_result)

    if json_output:
        document = {
            "ok": report.ok,
            "incident_id": report.incident_id,
            "results": [result.model_dump(mode="json") for result in report.results],
            "proofs": [proof.__dict__ for proof in report.proofs],
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        _print_results(report.results)
        _print_proofs(report.proofs)
        verdict = (
            "[green]every target credential is dead and every control credential works[/]"
            if report.ok
            else "[red]something is still alive or was wrongly touched[/]"
        )
        Console(emoji=False).print(f"\nincident {report.incident_id}: {verdict}")
    raise typer.Exit(0 if report.ok else 1)


def _print_results(results: list[ActionResult]) -> None:
    table = Table(title="Actions, each verified by reading back")
    for column in ("action", "credential", "outcome", "verified by", "observed", "ms"):
        table.add_column(column)
    for result in results:
        evidence = result.evidence[0] if result.evidence else None
        style = "green" if result.outcome.is_success else "red"
        table.add_row(
            str(result.action_kind),
            result.target.key,
            f"[{style}]{result.outcome}[/]",
            evidence.check if evidence else (result.error_type or ""),
            evidence.observed if evidence else result.detail,
            f"{result.act_ms + result.verify_ms:.0f}",
        )
    Console(emoji=False).print(table)


def _print_proofs(proofs: Sequence[ProofByUse]) -> None:
    table = Table(title="Proof by use")
    for column in ("workload", "credential", "check", "expected", "observed", ""):
        table.add_column(column)
    for proof in proofs:
        values = proof.__dict__
        mark = "[green]ok[/]" if values["passed"] else "[red]WRONG[/]"
        table.add_row(
            values["workload"], values["credential"], values["check"], values["expected"], values["observed"], mark
        )
    Console(emoji=False).print(table)


if __name__ == "__main__":
    app()
