"""`rescind report`: an incident report (Markdown, HTML or JSON) from the ledger and, for a stack's run, what Step
Functions knows about its execution."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rescind.exceptions import InvalidInput
from rescind_cli.direct import DirectTarget
from rescind_cli.options import DirectOption, JsonOption, ProfileOption, StackOption, StateDirOption
from rescind_cli.runs.boundary import CommandFailed, command_boundary, emit, open_target, say
from rescind_cli.runs.commands_ledger import read_recorded_incident
from rescind_cli.targets import INCIDENT_MACHINES, Target

if TYPE_CHECKING:
    from rescind.ledger.types import IncidentView


def execution_summary(target: Target, incident_id: str, view: IncidentView) -> Any:
    """What Step Functions knows about the incident's execution, if the incident is one; else None."""
    from rescind.ledger.report import ExecutionSummary
    from rescind.ledger.types import ApprovalVerdict

    if not re.fullmatch(r"[A-Za-z0-9_\-]{1,80}", incident_id):
        return None
    sfn = target.client("stepfunctions")
    for logical_id in INCIDENT_MACHINES:
        machine = target.state_machine_arn(logical_id)
        arn = machine.replace(":stateMachine:", ":execution:", 1) + f":{incident_id}"
        try:
            described = sfn.describe_execution(executionArn=arn)
        except sfn.exceptions.ExecutionDoesNotExist:
            continue
        latest = view.approvals[-1] if view.approvals else None
        return ExecutionSummary(
            execution_arn=arn,
            status=described["status"],
            started_at=described.get("startDate"),
            stopped_at=described.get("stopDate"),
            approved_by=(latest.decided_by[:200] if latest and latest.verdict is ApprovalVerdict.APPROVED else None),
            denied_by=(latest.decided_by[:200] if latest and latest.verdict is ApprovalVerdict.DENIED else None),
        )
    return None


def report_command(
    incident: Annotated[str, typer.Argument(help="The incident id (a manual run's or offboarding's execution name).")],
    fmt: Annotated[str, typer.Option("--format", help="md, html or json.")] = "md",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")] = None,
    stack: StackOption = None,
    state_dir: StateDirOption = None,
    direct: DirectOption = False,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Write an incident report: trigger, who asked and approved, the plan, every action with its verification.

    In direct mode the incident is read from the local ledger (a run made from this machine with no stack).
    """
    from rescind.ledger.report import render_report

    holder: list[Target] = []
    with command_boundary(json_output, holder):
        if fmt not in ("md", "html", "json"):
            raise InvalidInput("--format must be md, html or json")
        incident_id = incident.strip()
        target = open_target(stack, state_dir, profile, holder, direct=direct, json_output=json_output)
        view = read_recorded_incident(target, incident_id)
        # A direct run had no execution: the ledger is the whole record.
        summary = None if isinstance(target, DirectTarget) else execution_summary(target, incident_id, view)
        text = render_report(view, fmt=fmt, execution=summary)  # type: ignore[arg-type]
        if output is not None:
            try:
                output.write_text(text, encoding="utf-8")
            except OSError as error:
                raise CommandFailed(f"cannot write {output}: {error.strerror}") from None
        if json_output:
            emit(
                {
                    "ok": True,
                    "incident_id": incident_id,
                    "format": fmt,
                    "output": str(output) if output is not None else None,
                    "content": None if output is not None else text,
                }
            )
        elif output is not None:
            say(f"wrote the {fmt} report of {incident_id} to {output}")
        else:
            typer.echo(text, nl=not text.endswith("\n"))
