"""`rescind approve` and `rescind deny`: answer a run that waits for approval, through the approval function."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from rescind.exceptions import InvalidInput
from rescind_cli.options import JsonOption, ProfileOption, StackOption, StateDirOption, TimeoutOption
from rescind_cli.runs.boundary import command_boundary, emit, open_target, say
from rescind_cli.runs.following import finish_run, follow_execution, status_command_hint
from rescind_cli.runs.stack_functions import answer_approval
from rescind_cli.targets import Target


def approve_command(
    execution: Annotated[str, typer.Argument(help="The execution's ARN or name.")],
    follow: Annotated[bool, typer.Option("--follow", help="Follow the run to its end after approving.")] = False,
    timeout: TimeoutOption = None,
    stack: StackOption = None,
    state_dir: StateDirOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Approve a run waiting for approval. Refused when you are the principal that asked for it."""
    holder: list[Target] = []
    with command_boundary(json_output, holder):
        target = open_target(stack, state_dir, profile, holder)
        progress, caller, decision = answer_approval(target, execution, approve=True, reason="")
        if not json_output:
            say(f"[green]approved[/] {progress.name} as {escape(caller)}")
        if follow:
            followed = follow_execution(
                target.client("stepfunctions"),
                progress.execution_arn,
                show_progress=not json_output,
                timeout=timeout,
            )
            finish_run(target, followed, json_output=json_output, extra={"approval": decision})
        if json_output:
            emit({"ok": True, "approval": decision, "run": progress.document()})
        else:
            say(f"follow it with `{status_command_hint(target, progress.name)}`")


def deny_command(
    execution: Annotated[str, typer.Argument(help="The execution's ARN or name.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (required): it goes into the ledger.")] = None,
    stack: StackOption = None,
    state_dir: StateDirOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Deny a run waiting for approval: it ends refused and touches nothing."""
    holder: list[Target] = []
    with command_boundary(json_output, holder):
        reason_text = " ".join((reason or "").split())
        if not reason_text:
            raise InvalidInput("a reason is required: --reason TEXT (it is recorded in the ledger)")
        target = open_target(stack, state_dir, profile, holder)
        progress, caller, decision = answer_approval(target, execution, approve=False, reason=reason_text)
        if json_output:
            emit({"ok": True, "approval": decision, "run": progress.document()})
        else:
            say(f"[yellow]denied[/] {progress.name} as {escape(caller)}: it ends refused and touches nothing")
