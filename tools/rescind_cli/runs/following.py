"""Following a run: poll its execution until it ends or waits for approval, then say where it ended and exit
with that end's code; and find an execution by its ARN or its name."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, NoReturn

import typer
from rich.markup import escape

from rescind.exceptions import InvalidInput
from rescind_cli.runs.boundary import (
    EXIT_AWAITING_APPROVAL,
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STILL_RUNNING,
    CommandFailed,
    emit,
    say,
    stderr_console,
)
from rescind_cli.runs.history import RunProgress, execution_arns, read_progress
from rescind_cli.targets import INCIDENT_MACHINES, Target

POLL_SECONDS = 0.25

Sleep = Callable[[float], None]


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def follow_execution(
    sfn: Any,
    execution_arn: str,
    *,
    show_progress: bool,
    timeout: float | None = None,
    sleep: Sleep | None = None,
) -> RunProgress:
    """Poll until the execution ends or waits for approval (or `timeout` passes), drawing a progress bar."""
    from rescind_cli.progress import step_progress

    pause = sleep or _sleep
    deadline = None if timeout is None else time.monotonic() + timeout
    with step_progress(
        stderr_console, description="{task.description:<18}", disable=not show_progress, transient=False
    ) as bar:
        task = bar.add_task("starting", total=None)
        while True:
            progress = read_progress(sfn, execution_arn)
            bar.update(task, description=progress.current_state or "starting", total=progress.planned)
            bar.update(task, completed=progress.done)
            if progress.finished or progress.waiting_for_approval:
                return progress
            if deadline is not None and time.monotonic() > deadline:
                return progress
            pause(POLL_SECONDS)


def closure_document(target: Target, incident_id: str) -> dict[str, Any] | None:
    from rescind.ledger.closing import describe_alive
    from rescind.ledger.types import CredentialState
    from rescind.models.refs import format_ref

    closure = target.ledger().read_incident(incident_id).closure
    if closure is None:
        return None
    return {
        "status": str(closure.status),
        "still_alive": [format_ref(ref) for ref in closure.still_alive],
        # Never read back: they may be alive. `alive_is_unknown` is true when "nothing alive" cannot be said.
        "unknown": [format_ref(ref) for ref in closure.in_state(CredentialState.UNKNOWN)],
        "alive_is_unknown": closure.alive_is_unknown,
        "credentials": {format_ref(s.target): str(s.state) for s in closure.credentials},
        "alive_text": describe_alive(closure),
        "summary": closure.summary,
        "closed_at": closure.closed_at.isoformat(),
    }


def status_command_hint(target: Target, name: str) -> str:
    return f"rescind status {name} {target.selector}"


def approval_hint(target: Target, name: str) -> str:
    return (
        f"it waits for approval by another principal: `rescind approve {name} {target.selector}` "
        f"or `rescind deny {name} --reason TEXT {target.selector}`"
    )


def finish_run(
    target: Target, progress: RunProgress, *, json_output: bool, extra: dict[str, Any] | None = None
) -> NoReturn:
    """Report where a followed run ended, and exit with its code."""
    closure = closure_document(target, progress.incident_id) if progress.finished else None
    document = {**(extra or {}), "run": progress.document(), "closure": closure}
    if progress.waiting_for_approval:
        code, line = EXIT_AWAITING_APPROVAL, approval_hint(target, progress.name)
    elif not progress.finished:
        code = EXIT_STILL_RUNNING
        line = f"still running; follow it with `{status_command_hint(target, progress.name)}`"
    elif progress.status == "SUCCEEDED":
        code = EXIT_OK
        line = (
            "dry run recorded: nothing was changed"
            if closure and closure["status"] == "dry_run"
            else "done: every planned credential is verified dead"
        )
    else:
        status = closure["status"] if closure else progress.status
        # README: a run the guard or an approver refused touched nothing, which is exit 2, not a failure.
        code = EXIT_BAD_INPUT if status == "refused" else EXIT_FAILED
        line = f"ended {progress.status} ({status})"
        if closure and (closure["still_alive"] or closure["alive_is_unknown"]):
            line += f"; {closure['alive_text']}"
    document["ok"] = code == EXIT_OK
    document["message"] = line
    if json_output:
        emit(document)
    else:
        tone = (
            "green"
            if code == EXIT_OK
            else ("yellow" if code in (EXIT_AWAITING_APPROVAL, EXIT_STILL_RUNNING) else "red")
        )
        planned = "?" if progress.planned is None else str(progress.planned)
        say(f"{progress.name}: {progress.status}, {progress.done}/{planned} action(s) done")
        say(f"[{tone}]{escape(line)}[/]")
    raise typer.Exit(code)


def resolve_execution(target: Target, text: str) -> str:
    """An execution ARN, or the name of an execution of the manual or offboarding machine."""
    sfn = target.client("stepfunctions")
    name = text.strip()
    if not name:
        raise InvalidInput("name the execution: its ARN or its name (the incident id)")
    if name.startswith("arn:"):
        candidates = [name]
    else:
        if not re.fullmatch(r"[A-Za-z0-9_\-]{1,80}", name):
            raise InvalidInput("an execution is named by its ARN or its name (letters, digits, '-' and '_')")
        candidates = []
        for logical_id in INCIDENT_MACHINES:
            machine = target.state_machine_arn(logical_id)
            candidates.append(machine.replace(":stateMachine:", ":execution:", 1) + f":{name}")
    for arn in candidates:
        try:
            sfn.describe_execution(executionArn=arn)
        except sfn.exceptions.ExecutionDoesNotExist:
            continue
        except sfn.exceptions.InvalidArn:
            raise InvalidInput("not an execution ARN: check it, or give the execution's name") from None
        return arn
    raise CommandFailed(
        f"no execution {name} in {target.description}: list runs with `rescind ledger {target.selector}`"
    )


def wait_for_new_executions(sfn: Any, machines: list[str], before: set[str], deadline: float) -> list[str]:
    """The webhook answers before the bus delivers: wait until a run appears, or the deadline."""
    while True:
        started = [arn for machine in machines for arn in execution_arns(sfn, machine) if arn not in before]
        if started or time.monotonic() > deadline:
            return started
        _sleep(POLL_SECONDS)
