"""The `rescind` command line. Incident responders' tool; installed by the project, never deployed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rescind_cli.doctor import doctor_command
from rescind_cli.index import index_app
from rescind_cli.inventory import inventory_app
from rescind_cli.local import local_app
from rescind_cli.options import JsonOption, console_for
from rescind_cli.runs import register as register_run_commands
from rescind_cli.targets import TARGET_RULE
from rescind_cli.vault_setup import vault_app

if TYPE_CHECKING:
    from rescind_cli.demo import ScenarioRun  # the CLI's --help must not import hvac
    from rescind_local.proof import ProofByUse

app = typer.Typer(
    help="Rescind: revoke and rotate non-human credentials in Vault/OpenBao and AWS, verified by reading back.",
    epilog=TARGET_RULE,
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True, emoji=False)


app.add_typer(index_app, name="index")
app.add_typer(inventory_app, name="inventory")
app.add_typer(local_app, name="local")
app.add_typer(vault_app, name="vault")
register_run_commands(app)
app.command("doctor")(doctor_command)


@app.callback()
def main() -> None:
    """Rescind's command line."""


@app.command()
def demo(json_output: JsonOption = False) -> None:
    """Run the demo on the embedded local stack, in this process (no `rescind local up` needed).

    It starts a real OpenBao server and moto, deploys template.yaml onto moto, seeds a small estate (one
    workload protected, one a control that nothing targets), replays the termination samples of events/
    through the template's rules, a termination of the protected workload and a manual run on one token,
    then uses every seeded credential. Exits 0 only when every run ended as expected, every target
    credential is verified dead and every other credential still works.
    """
    from rescind_cli.demo import run_demo  # starts servers: imported only when asked

    steps = Console(stderr=True, emoji=False, highlight=False, log_path=False)
    with steps.status("starting", spinner="dots") as status:

        def on_step(text: str) -> None:
            status.update(escape(text))
            if not json_output:
                steps.log(escape(text))

        def on_update(text: str) -> None:
            status.update(escape(text))

        def on_run(run: ScenarioRun) -> None:
            if not json_output:
                verdict = "[green]as expected[/]" if run.ok else f"[red]WRONG: {escape('; '.join(run.problems))}[/]"
                ended = f"{run.status}, {', '.join(run.closures) or 'no closure'}"
                steps.log(f"    {escape(run.scenario)}: {escape(ended)}: {verdict}")

        try:
            report = run_demo(on_step, on_update, on_run)
        except Exception as error:  # the local stack could not start: one line, not a traceback
            line = f"the demo could not run: {type(error).__name__}: {' '.join(str(error).split())[:300]}"
            if json_output:
                typer.echo(json.dumps({"ok": False, "error_type": type(error).__name__, "message": line}))
            steps.print(f"[red]error:[/] {escape(line)}")
            raise typer.Exit(1) from None

    if json_output:
        typer.echo(json.dumps(report.document(), indent=2, default=str))
    else:
        _print_results(report.runs)
        _print_proofs(report.proofs)
        out = console_for(highlight=False)
        for problem in report.problems:
            out.print(f"[red]{escape(problem)}[/]")
        for run in report.runs:
            for incident_id in run.incident_ids:
                out.print(f"incident {escape(incident_id)}: {escape(run.trigger)} for {escape(run.workload)}")
        out.print(f"function logs: {escape(report.function_log or '-')}")
        verdict = (
            "[green]every target credential is verified dead and every other credential still works[/]"
            if report.ok
            else "[red]something is still alive, was wrongly touched, or a run ended unexpectedly[/]"
        )
        out.print(f"\n{verdict}")
    raise typer.Exit(0 if report.ok else 1)


def _print_results(runs: Sequence[ScenarioRun]) -> None:
    table = Table(title="Runs: each trigger replayed through the template", title_justify="left")
    for column in ("trigger", "workload", "expected", "execution", "closed", "actions", "verified dead", ""):
        table.add_column(column, overflow="fold")
    for run in runs:
        tone = "green" if run.ok else "red"
        table.add_row(
            escape(run.trigger),
            escape(run.workload),
            escape(run.expected),
            escape(run.status),
            escape(", ".join(run.closures) or "-"),
            f"{run.actions_done}/{run.actions_planned}",
            str(run.verified_dead),
            f"[{tone}]{'ok' if run.ok else 'WRONG'}[/]",
        )
    console_for(highlight=False).print(table)


def _print_proofs(proofs: Sequence[ProofByUse]) -> None:
    table = Table(title="Proof by use: every seeded credential, used as its holder would", title_justify="left")
    for column in ("workload", "credential", "check", "expected", "observed", ""):
        table.add_column(column, overflow="fold")
    for proof in proofs:
        mark = "[green]ok[/]" if proof.passed else "[red]WRONG[/]"
        table.add_row(
            escape(proof.workload),
            escape(proof.credential),
            escape(proof.check),
            proof.expected,
            escape(proof.observed),
            mark,
        )
    console_for(highlight=False).print(table)


if __name__ == "__main__":
    app()
