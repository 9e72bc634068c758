"""`rescind plan` and `rescind revoke`: what a revocation would do, and a manual revocation run followed to its end
(on a stack's state machine, or in this process in direct mode)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from rich.markup import escape

from rescind.exceptions import InvalidInput
from rescind_cli.direct import DirectTarget
from rescind_cli.options import (
    CredentialOption,
    DirectOption,
    JsonOption,
    MaxRateOption,
    ProfileOption,
    ProtectedOption,
    StackOption,
    StateDirOption,
    TimeoutOption,
    WorkloadOption,
)
from rescind_cli.runs.boundary import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CommandFailed,
    command_boundary,
    emit,
    exit_code_of_closure,
    open_target,
    say,
    stderr_console,
    stdout_console,
)
from rescind_cli.runs.following import finish_run, follow_execution, status_command_hint
from rescind_cli.runs.planning import checked_plan
from rescind_cli.runs.render import direct_result_printer, print_plan
from rescind_cli.runs.stack_functions import start_manual_run
from rescind_cli.runs.subject import build_request, parse_subject
from rescind_cli.targets import Target

if TYPE_CHECKING:
    from rescind.response.types import ResponseRequest


def plan_command(
    workload: WorkloadOption = None,
    credential: CredentialOption = None,
    stack: StackOption = None,
    state_dir: StateDirOption = None,
    direct: DirectOption = False,
    protected: ProtectedOption = None,
    max_requests_per_second: MaxRateOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show exactly what a revocation would do (the guard's decision, the actions in order, counts by kind).

    Changes nothing: it reads Vault and AWS, and writes nowhere.
    """
    holder: list[Target] = []
    with command_boundary(json_output, holder):
        subject = parse_subject(workload, credential)
        target = open_target(
            stack,
            state_dir,
            profile,
            holder,
            direct=direct,
            protected=protected,
            json_output=json_output,
            max_requests_per_second=max_requests_per_second,
        )
        request = build_request(subject, reason="plan preview", ticket=None, requested_by="rescind plan", dry_run=False)
        document = checked_plan(target, request, subject)
        if json_output:
            emit({"ok": True, "target": target.description, **document})
        else:
            print_plan(document, stdout_console())
            say("nothing was changed")


def revoke_command(
    workload: WorkloadOption = None,
    credential: CredentialOption = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (required): it goes into the ledger.")] = None,
    ticket: Annotated[str | None, typer.Option("--ticket", help="The incident ticket, e.g. INC-1234.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Record the plan in the ledger; change nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    approved_by: Annotated[
        str | None,
        typer.Option(
            "--approved-by",
            help="Direct mode, above the blast-radius cap: the second person who agreed (with --ticket).",
        ),
    ] = None,
    timeout: TimeoutOption = None,
    stack: StackOption = None,
    state_dir: StateDirOption = None,
    direct: DirectOption = False,
    protected: ProtectedOption = None,
    max_requests_per_second: MaxRateOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Start a manual revocation run: show the plan, confirm, start it, and follow it to the end.

    With a stack, the run is the manual revocation state machine; in direct mode it runs in this process and
    its record goes to the local ledger. Exits 0 only when every planned credential is verified dead (or a dry
    run was recorded), 2 when the input or the guard refused it (or the prompt was answered no), 3 when the run
    waits for approval (a plan above the blast-radius cap), 1 when something is left alive or failed.
    """
    holder: list[Target] = []
    with command_boundary(json_output, holder):
        subject = parse_subject(workload, credential)
        reason_text = " ".join((reason or "").split())
        if not reason_text:
            raise InvalidInput("a reason is required: --reason TEXT (it is recorded in the ledger and notifications)")
        if json_output and not yes and not sys.stdin.isatty():
            raise InvalidInput("--json without --yes would wait for an answer no terminal can give: add --yes")
        target = open_target(
            stack,
            state_dir,
            profile,
            holder,
            direct=direct,
            protected=protected,
            json_output=json_output,
            max_requests_per_second=max_requests_per_second,
        )
        request = build_request(
            subject, reason=reason_text, ticket=ticket, requested_by=target.caller_arn(), dry_run=dry_run
        )
        document = checked_plan(target, request, subject)
        if not json_output:
            print_plan(document, stderr_console)
        if not yes:
            what = "Record this dry run" if dry_run else f"Start revoking {document['total']} action(s)"
            try:
                confirmed = typer.confirm(f"{what} for {subject.text}?", default=False, err=True)
            except click.exceptions.Abort:  # end of input: no answer is not a yes
                confirmed = False
            if not confirmed:
                raise CommandFailed("aborted: nothing was started", EXIT_BAD_INPUT, plan=document)
        if isinstance(target, DirectTarget):
            finish_direct_run(target, request, document, approved_by=approved_by, json_output=json_output)
            return
        started, execution_arn = start_manual_run(target, subject, reason=reason_text, ticket=ticket, dry_run=dry_run)
        incident_id = started.incident_id
        if not json_output:
            say(f"started {incident_id} on {escape(target.description)} as {escape(started.requested_by)}")
        sfn = target.client("stepfunctions")
        try:
            progress = follow_execution(sfn, execution_arn, show_progress=not json_output, timeout=timeout)
        except KeyboardInterrupt:
            say(
                f"interrupted: the run {incident_id} goes on; follow it with "
                f"`{status_command_hint(target, incident_id)}`"
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None
        finish_run(
            target,
            progress,
            json_output=json_output,
            extra={"incident_id": incident_id, "requested_by": started.requested_by, "plan": document},
        )


def finish_direct_run(
    target: DirectTarget,
    request: ResponseRequest,
    document: dict[str, Any],
    *,
    approved_by: str | None,
    json_output: bool,
) -> None:
    """Run in this process, print each result as it lands, then the closure; exit as the README says."""
    from rescind.models.refs import format_ref
    from rescind_cli.direct import run_direct_revocation

    if not json_output:
        skipped = target.aws_skipped_because()
        if skipped:
            say(f"AWS side skipped: {skipped}; only Vault credentials are acted on")
    show = direct_result_printer(json_output)
    run = run_direct_revocation(target, request, approved_by=approved_by, ticket=request.trigger.ticket, on_result=show)
    code = exit_code_of_closure(run.status)
    result_document = {
        "ok": code == EXIT_OK,
        "target": target.description,
        "incident_id": run.incident_id,
        "plan": document,
        "closure": {"status": run.status, "still_alive": list(run.still_alive), "summary": run.summary},
        "ledger": str(target.ledger_path()),
        "results": [
            {"action_id": r.action_id, "outcome": str(r.outcome), "target": format_ref(r.target), "detail": r.detail}
            for r in run.results
        ],
    }
    if json_output:
        emit(result_document)
    else:
        say(f"{run.incident_id}: {run.status}; recorded in {target.ledger_path()}")
        say(escape(run.summary))
    raise typer.Exit(code)
