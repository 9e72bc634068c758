"""`rescind replay`: an event run through the stack's rules as EventBridge would (or a GitHub delivery through
the webhook function), and the runs it starts followed; in direct mode a leak event answered in this process."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from rescind.exceptions import InvalidInput
from rescind_cli.direct import DirectTarget
from rescind_cli.options import DirectOption, JsonOption, ProfileOption, StackOption, StateDirOption
from rescind_cli.runs.boundary import (
    EXIT_AWAITING_APPROVAL,
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STILL_RUNNING,
    CommandFailed,
    command_boundary,
    emit,
    open_target,
    say,
)
from rescind_cli.runs.event_delivery import deliver_through_rules, deliver_to_webhook, is_webhook_delivery, load_event
from rescind_cli.runs.following import (
    approval_hint,
    closure_document,
    follow_execution,
    wait_for_new_executions,
)
from rescind_cli.runs.history import execution_arns
from rescind_cli.runs.render import direct_result_printer
from rescind_cli.targets import LEAK_MACHINE, OFFBOARDING_MACHINE, Target


def replay_command(
    event_file: Annotated[Path, typer.Argument(metavar="EVENT.json", help="An event, e.g. events/ec2_*.json.")],
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for runs to start and end.")] = 120.0,
    stack: StackOption = None,
    state_dir: StateDirOption = None,
    direct: DirectOption = False,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Run an event through the stack's rules, as EventBridge would, and follow the runs it starts.

    In direct mode a leak event (the generic Secret Leaked, an AWS Health risk event, a GuardDuty finding) is
    answered in this process instead: located, guarded, killed, verified and recorded in the local ledger.

    The event keeps its whole envelope (id, account, region, time): it is matched against each rule with
    EventBridge's TestEventPattern and handed to the rule's function, so a real AWS event is decided as it
    would be on the bus, and replaying one file twice is one incident, like a redelivery. A GitHub webhook
    delivery goes to the webhook function instead, signed for the stack.

    Exits 0 when every run it started succeeded, 1 when one failed or none started (what was decided instead is
    printed: ignored, recorded, unresolved, rejected), 3 when one waits for approval.
    """
    holder: list[Target] = []
    with command_boundary(json_output, holder):
        event = load_event(event_file)
        target = open_target(stack, state_dir, profile, holder, direct=direct, json_output=json_output)
        if isinstance(target, DirectTarget):
            replay_leak_event_directly(target, event, json_output=json_output)
            return
        sfn = target.client("stepfunctions")
        machines = [target.state_machine_arn(machine) for machine in (OFFBOARDING_MACHINE, LEAK_MACHINE)]
        decided: list[str] = []
        if is_webhook_delivery(event):
            before = {arn for machine in machines for arn in execution_arns(sfn, machine)}
            event_id, status = deliver_to_webhook(target, event)
            if not json_output:
                say(f"delivered the GitHub webhook to {escape(target.description)}: {status} (delivery {event_id})")
            started = wait_for_new_executions(sfn, machines, before, time.monotonic() + timeout)
        else:
            event_id = str(event.get("id", ""))
            deliveries = deliver_through_rules(target, event)
            if not json_output:
                where = escape(target.description)
                rules = ", ".join(d.rule for d in deliveries) or "no rule"
                say(f"{event['detail-type']} from {event['source']} (id {escape(event_id)}) on {where}: {rules}")
            started = list(dict.fromkeys(arn for d in deliveries for arn in d.execution_arns))
            decided = [line for d in deliveries for line in d.outcomes]
        deadline = time.monotonic() + timeout
        if not started:
            said = "; ".join(decided) or "it matched no rule of the stack"
            raise CommandFailed(
                f"the event started no run: {said} (the ledger: `rescind ledger --since 10m {target.selector}`)",
                EXIT_FAILED,
                event_id=event_id,
                decided=decided,
            )
        runs = []
        try:
            for arn in sorted(started):
                remaining = max(1.0, deadline - time.monotonic())
                runs.append(follow_execution(sfn, arn, show_progress=not json_output, timeout=remaining))
        except KeyboardInterrupt:
            say(f"interrupted: the runs go on; follow them with `rescind status NAME {target.selector}`")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        documents = [{**run.document(), "closure": closure_document(target, run.incident_id)} for run in runs]
        if any(run.finished and run.status != "SUCCEEDED" for run in runs):
            code = EXIT_FAILED
        elif any(run.waiting_for_approval for run in runs):
            code = EXIT_AWAITING_APPROVAL
        elif any(not run.finished for run in runs):
            code = EXIT_STILL_RUNNING
        else:
            code = EXIT_OK
        if json_output:
            emit({"ok": code == EXIT_OK, "event_id": event_id, "runs": documents, "decided": decided})
        else:
            for line in decided:
                say(escape(line))
            for run in runs:
                note = " (waits for approval)" if run.waiting_for_approval else ""
                tone = "green" if run.status == "SUCCEEDED" else ("yellow" if not run.finished else "red")
                say(f"[{tone}]{run.name}[/]: {run.status}{note}, {run.done}/{run.planned} action(s) done")
                if run.waiting_for_approval:
                    say(escape(approval_hint(target, run.name)))
        raise typer.Exit(code)


def replay_leak_event_directly(target: DirectTarget, event: dict[str, Any], *, json_output: bool) -> None:
    """A leak event answered in this process; exit 0 when every run completed, 2 when none could start."""
    from rescind.leaks.triggers import LeakAlertRejected
    from rescind_cli.direct import answer_leak_event_directly

    try:
        answer = answer_leak_event_directly(target, event, on_result=direct_result_printer(json_output))
    except LeakAlertRejected as error:
        raise InvalidInput(f"not a leak event Rescind can answer: {error}") from None
    runs = [
        {"incident_id": run.incident_id, "status": run.status, "still_alive": list(run.still_alive)}
        for run in answer.runs
    ]
    completed = bool(answer.runs) and all(run.status == "completed" for run in answer.runs)
    code = EXIT_OK if completed else (EXIT_BAD_INPUT if not answer.runs else EXIT_FAILED)
    if json_output:
        emit(
            {
                "ok": code == EXIT_OK,
                "target": target.description,
                "runs": runs,
                "unresolved": list(answer.unresolved),
                "recorded": answer.recorded,
                "ledger": str(target.ledger_path()),
            }
        )
    else:
        for run in answer.runs:
            say(f"{run.incident_id}: {run.status}; {escape(run.summary.splitlines()[0] if run.summary else '')}")
        for why in answer.unresolved:
            say(f"unresolved: {escape(why)}")
        if answer.recorded:
            say(f"recorded, nothing to act on: {escape(answer.recorded)}")
        say(f"recorded in {target.ledger_path()}")
    raise typer.Exit(code)
