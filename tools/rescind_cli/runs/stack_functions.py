"""The two calls the CLI makes to the stack's function URLs: start a manual run, and answer an approval.

Each request is signed with the caller's credentials; the function, not the CLI, takes the caller from the
signature. The CLI holds no right to start the manual machine or to answer a task token itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rescind_cli.runs.boundary import EXIT_BAD_INPUT, EXIT_FAILED, CommandFailed
from rescind_cli.runs.following import resolve_execution
from rescind_cli.runs.history import RunProgress, read_progress
from rescind_cli.runs.subject import Subject
from rescind_cli.targets import Target

if TYPE_CHECKING:
    from rescind.offboarding.manual import ManualRunStarted


def ask_stack_function(
    target: Target, logical_id: str, body: dict[str, Any], *, wanted: str, named: str, server_error_code: int
) -> dict[str, Any]:
    """POST `body` to the function's URL, signed; its answer's `wanted` object, or one line with its refusal.

    A 4xx is bad input (exit 2); another failure exits `server_error_code`.
    """
    from rescind_cli.function_url import post_signed

    credentials, region = target.signing_credentials()
    status, answer = post_signed(target.function_url(logical_id), body, credentials=credentials, region=region)
    found = answer.get(wanted)
    if status != 200 or not isinstance(found, dict):
        message = " ".join(str(answer.get("message") or f"the {named} function answered HTTP {status}").split())
        raise CommandFailed(message[:500], EXIT_BAD_INPUT if 400 <= status < 500 else server_error_code)
    return found


def start_manual_run(
    target: Target, subject: Subject, *, reason: str, ticket: str | None, dry_run: bool
) -> tuple[ManualRunStarted, str]:
    """Ask StartManualRevocationFunction to start the run, in a request signed with the caller's credentials.

    The function records the signer as the run's requester (the approval function refuses that principal); the
    CLI holds no right to start the manual machine itself. Returns the function's answer and the execution ARN.
    """
    from rescind.models.refs import format_ref
    from rescind.offboarding.manual import ManualRunStarted
    from rescind_cli.targets import START_MANUAL_REVOCATION_FUNCTION

    body: dict[str, Any] = {"reason": reason, "dry_run": dry_run}
    if subject.from_workload:
        body["workload"] = subject.workload_id
    else:
        body["credentials"] = [format_ref(ref) for ref in subject.refs]
    if ticket:
        body["ticket"] = ticket
    run = ask_stack_function(
        target, START_MANUAL_REVOCATION_FUNCTION, body, wanted="run", named="start", server_error_code=EXIT_FAILED
    )
    started = ManualRunStarted.model_validate(run)
    if started.execution_arn is None:
        raise CommandFailed(f"the start function started no execution for {started.incident_id}", EXIT_FAILED)
    return started, started.execution_arn


def answer_approval(
    target: Target, execution: str, *, approve: bool, reason: str
) -> tuple[RunProgress, str, dict[str, Any]]:
    """Ask AnswerApprovalFunction to answer, in a request signed with the caller's credentials.

    The function, not the CLI, decides: it takes the caller from the signature, refuses the requester, records
    the decision and answers the task token. The CLI holds no right to answer a token itself.
    """
    from rescind_cli.targets import ANSWER_APPROVAL_FUNCTION

    sfn = target.client("stepfunctions")
    arn = resolve_execution(target, execution)
    progress = read_progress(sfn, arn)
    if progress.finished:
        raise CommandFailed(f"execution {progress.name} is {progress.status}: there is nothing to answer")
    if not progress.waiting_for_approval:
        raise CommandFailed(
            f"execution {progress.name} is not waiting for approval (it is at {progress.current_state or 'start'})"
        )
    decision = ask_stack_function(
        target,
        ANSWER_APPROVAL_FUNCTION,
        {"execution": arn, "decision": "approve" if approve else "deny", "reason": reason},
        wanted="decision",
        named="approval",
        server_error_code=EXIT_BAD_INPUT,  # the approval function's refusals all end a command with exit 2
    )
    return progress, str(decision.get("decided_by", "")), decision
