"""`rescind status`: where a run is (its execution, or in direct mode its incident in the local ledger)."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer
from rich.markup import escape

from rescind_cli.direct import DirectTarget
from rescind_cli.options import DirectOption, JsonOption, ProfileOption, StackOption, StateDirOption, TimeoutOption
from rescind_cli.runs.boundary import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    CommandFailed,
    command_boundary,
    emit,
    exit_code_of_closure,
    open_target,
    say,
)
from rescind_cli.runs.following import finish_run, follow_execution, resolve_execution
from rescind_cli.runs.history import read_progress
from rescind_cli.runs.render import print_status
from rescind_cli.targets import Target


def status_command(
    execution: Annotated[str, typer.Argument(help="The execution's ARN or name.")],
    follow: Annotated[bool, typer.Option("--follow", help="Keep following until it ends or waits.")] = False,
    timeout: TimeoutOption = None,
    stack: StackOption = None,
    state_dir: StateDirOption = None,
    direct: DirectOption = False,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Where a run is: its status, current state, actions done of planned, and what is still alive once closed.

    Exits like `revoke`: 0 succeeded, 1 failed, 2 refused, 3 waiting for approval, 4 still running. In direct
    mode the run is an incident of the local ledger (it ran in the CLI's process, so it has ended).
    """
    holder: list[Target] = []
    with command_boundary(json_output, holder):
        target = open_target(stack, state_dir, profile, holder, direct=direct, json_output=json_output)
        if isinstance(target, DirectTarget):
            direct_run_status(target, execution.strip(), json_output=json_output)
        arn = resolve_execution(target, execution)
        sfn = target.client("stepfunctions")
        if follow:
            try:
                progress = follow_execution(sfn, arn, show_progress=not json_output, timeout=timeout)
            except KeyboardInterrupt:
                say("interrupted: the run goes on")
                raise typer.Exit(EXIT_INTERRUPTED) from None
        else:
            progress = read_progress(sfn, arn)
        if not json_output:
            print_status(progress)
        finish_run(target, progress, json_output=json_output)


def direct_run_status(target: DirectTarget, incident_id: str, *, json_output: bool) -> NoReturn:
    """A direct run's end, from the local ledger: its closure, or that it stopped before closing."""
    view = target.ledger().read_incident(incident_id)
    if view.incident is None:
        raise CommandFailed(f"no incident {incident_id} in the local ledger {target.ledger_path()}")
    closure = view.closure
    status = str(closure.status) if closure is not None else "not closed"
    code = exit_code_of_closure(status)
    line = closure.summary if closure is not None else "the run stopped before it closed: run it again to finish it"
    document = {
        "ok": code == EXIT_OK,
        "incident_id": incident_id,
        "status": status,
        "actions_planned": len(view.incident.plan.actions),
        "attempts": len(view.attempts),
        "still_alive": [str(ref.key) for ref in closure.still_alive] if closure is not None else None,
        "message": line,
    }
    if json_output:
        emit(document)
    else:
        say(f"{incident_id}: {status}, {len(view.attempts)} attempt(s) of {document['actions_planned']} action(s)")
        say(escape(line))
    raise typer.Exit(code)
