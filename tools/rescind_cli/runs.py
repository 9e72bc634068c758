"""The run commands: `rescind plan | revoke | approve | deny | status | ledger | report | replay`.

    rescind plan --workload spiffe://example.org/ns/payments/sa/api
    rescind revoke --credential vault-token:accessor:CaTti28wsXOQA02COE2ygP2B --reason "leaked in #1234" --yes
    rescind approve manual-3f9c0d1e2a4b5c6d7e8f
    rescind report manual-3f9c0d1e2a4b5c6d7e8f --format html --output incident.html

Each acts on the local stack by default, or on a deployed stack with `--stack NAME` (or RESCIND_STACK); see
`rescind_cli.targets`. `register(app)` adds them to the top-level `rescind` app.

Exit codes: 0 done (a revoke: every planned credential verified dead), 1 failed or something left alive,
2 bad input or a refusal (one line on stderr, no traceback), 3 the run waits for approval, 4 still running
when --timeout ran out, 130 interrupted (the run goes on). With --json, stdout holds one JSON document,
also for an error.

An EXECUTION is an execution ARN, or the name of an execution of the manual-revocation or offboarding
state machine (its incident id, e.g. `manual-...` or `offboard-...`).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rescind.exceptions import ConfigurationError, InvalidInput, LedgerConflict, RescindError, VaultUnavailable
from rescind_cli.direct import DirectTarget, ScanMeter
from rescind_cli.options import (
    DirectOption,
    JsonOption,
    MaxRateOption,
    ProfileOption,
    ProtectedOption,
    StackOption,
    StateDirOption,
    console_for,
)
from rescind_cli.targets import (
    INCIDENT_MACHINES,
    LEAK_MACHINE,
    OFFBOARDING_MACHINE,
    STACK_ENV,
    WEBHOOK_FUNCTION,
    Target,
    TargetUnavailable,
    resolve_target,
)

if TYPE_CHECKING:
    from rescind.inventory.base import Inventory
    from rescind.ledger.types import IncidentView
    from rescind.models import CredentialRef
    from rescind.offboarding.manual import ManualRunStarted
    from rescind.offboarding.types import OffboardingPlan, OffboardingRequest

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_AWAITING_APPROVAL = 3
EXIT_STILL_RUNNING = 4
EXIT_INTERRUPTED = 130

POLL_SECONDS = 0.25
ACTION_STATES = frozenset({"ContainOne", "RevokeOne", "ContainOneFailed", "RevokeOneFailed"})
_TASK_ENDED = frozenset({"TaskSucceeded", "TaskFailed", "TaskTimedOut", "TaskSubmitFailed", "TaskStartFailed"})

_stderr = Console(stderr=True, soft_wrap=True, highlight=False, emoji=False)


def _stdout() -> Console:
    # emoji=False: a reference like `kv:secret:path` must not turn into an emoji.
    return console_for(highlight=False)


WorkloadOption = Annotated[
    str | None, typer.Option("--workload", help="The workload: its SPIFFE ID or cloud id. Everything it holds.")
]
CredentialOption = Annotated[
    list[str] | None,
    typer.Option(
        "--credential",
        help="A credential reference (repeatable), e.g. vault-token:accessor:<accessor>, pki:<mount>:<serial>, "
        "aws-key:<account>:<user>:<key id>, kv:<mount>:<path>.",
    ),
]
TimeoutOption = Annotated[
    float | None, typer.Option("--timeout", help="Stop following after this many seconds (the run goes on).")
]


class CommandFailed(Exception):
    """Ends a command with one line and an exit code."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT, **document: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.document = document


def _one_line(text: str, limit: int = 400) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _say(text: str) -> None:
    _stderr.print(text)


def _emit(document: dict[str, Any]) -> None:
    typer.echo(json.dumps(document, indent=2, default=str))


@contextmanager
def _command(json_output: bool, target_holder: list[Target] | None = None) -> Iterator[None]:
    """The command boundary: every expected failure becomes one line (or one JSON document) and an exit code."""
    import botocore.exceptions
    import requests.exceptions

    try:
        try:
            yield
        finally:
            for target in target_holder or ():
                if isinstance(target, DirectTarget) and isinstance(target.meter, ScanMeter):
                    target.meter.close()
    except CommandFailed as failure:
        _fail(failure.message, failure.code, json_output, "CommandFailed", failure.document)
    except TargetUnavailable as error:
        _fail(str(error), EXIT_BAD_INPUT, json_output, "TargetUnavailable")
    except VaultUnavailable as error:
        _fail(f"{_vault_hint(target_holder)}: {error}", EXIT_FAILED, json_output, "VaultUnavailable")
    except RescindError as error:
        code = EXIT_BAD_INPUT if isinstance(error, (InvalidInput, ConfigurationError)) else EXIT_FAILED
        _fail(str(error), code, json_output, type(error).__name__)
    except requests.exceptions.RequestException as error:
        _fail(f"{_vault_hint(target_holder)}: {type(error).__name__}", EXIT_FAILED, json_output, "VaultUnavailable")
    except botocore.exceptions.NoCredentialsError:
        _fail(
            "no AWS credentials found: set AWS_PROFILE (or run `aws sso login`), or omit --stack for the local stack",
            EXIT_BAD_INPUT,
            json_output,
            "NoCredentialsError",
        )
    except botocore.exceptions.EndpointConnectionError as error:
        _fail(
            f"AWS endpoint unreachable ({error}): if this is the local stack, run `rescind local up`",
            EXIT_FAILED,
            json_output,
            "EndpointConnectionError",
        )
    except botocore.exceptions.ClientError as error:
        info = error.response.get("Error", {})
        _fail(
            f"AWS refused {error.operation_name}: {info.get('Code', '')}: {info.get('Message', '')}",
            EXIT_FAILED,
            json_output,
            str(info.get("Code") or "ClientError"),
        )
    except botocore.exceptions.BotoCoreError as error:
        _fail(f"AWS call failed: {error}", EXIT_FAILED, json_output, type(error).__name__)
    except _vault_error_types() as error:
        _fail(f"Vault refused the call: {type(error).__name__}: {error}", EXIT_FAILED, json_output, "VaultError")


def _vault_error_types() -> tuple[type[Exception], ...]:
    import hvac.exceptions

    return (hvac.exceptions.VaultError,)


def _vault_hint(target_holder: list[Target] | None) -> str:
    from rescind_cli.targets import LocalStackTarget

    target = target_holder[0] if target_holder else None
    if isinstance(target, LocalStackTarget):
        return (
            f"OpenBao of the local stack at {target.local.openbao_addr} is unreachable: "
            "see `rescind local status`, restart it with `rescind local down` and `rescind local up`"
        )
    return "Vault is unreachable: check VAULT_ADDR and VAULT_TOKEN (or run `rescind local up` and omit --stack)"


def _fail(message: str, code: int, json_output: bool, error_type: str, extra: dict[str, Any] | None = None) -> NoReturn:
    line = _one_line(message)
    if json_output:
        _emit({"ok": False, "error_type": error_type, "message": line, **(extra or {})})
    _stderr.print(f"[red]error:[/] {escape(line)}")
    raise typer.Exit(code)


def _target(
    stack: str | None,
    state_dir: Path | None,
    profile: str | None,
    holder: list[Target],
    *,
    direct: bool = False,
    protected: Sequence[str] | None = None,
    json_output: bool = False,
    max_requests_per_second: float | None = None,
) -> Target:
    """The target by TARGET_RULE; the first line of every run says which, and why (stderr; `target` in JSON)."""
    if stack is None and state_dir is None and not direct:
        stack = os.environ.get(STACK_ENV) or None
    target, why = resolve_target(
        stack=stack, state_dir=state_dir, profile=profile, direct=direct, protected=tuple(protected or ())
    )
    holder.append(target)
    if isinstance(target, DirectTarget):
        target.meter = ScanMeter(max_requests_per_second, None if json_output else ScanProgress(_stderr))
    elif max_requests_per_second is not None:
        raise InvalidInput("--max-requests-per-second paces direct mode only: a stack's functions pace themselves")
    if not json_output:
        _say(f"target: {escape(target.description)} ({why})")
    return target


class ScanProgress:
    """Discovery's scan of every token (direct mode), as a progress bar on stderr with an estimate of the rest."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress: Any = None
        self._task: Any = None

    def __call__(self, done: int, total: int | None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        if self._progress is None:
            columns = (TextColumn("looking up every token"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            self._progress = Progress(*columns, console=self._console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task("scan", total=total)
        self._progress.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


# --- what the run is about: a workload, or named credentials ---------------------------------------------


@dataclass(frozen=True)
class Subject:
    workload_id: str  # the workload, or the first REF's text form
    refs: tuple[CredentialRef, ...]
    from_workload: bool

    @property
    def text(self) -> str:
        if self.from_workload:
            return f"workload {self.workload_id}"
        return f"{len(self.refs)} named credential(s)"


def parse_subject(workload: str | None, credentials: Sequence[str] | None) -> Subject:
    from rescind.models.refs import format_ref, parse_ref
    from rescind.offboarding.types import workload_id_problem

    texts = [text for text in (credentials or []) if text is not None]
    if workload and texts:
        raise InvalidInput("give --workload ID or --credential REF, not both")
    if workload is not None:
        workload_id = workload.strip()
        problem = workload_id_problem(workload_id) if len(workload_id) <= 500 else "longer than 500 characters"
        if problem is not None:
            raise InvalidInput(f"--workload must name one workload (a SPIFFE ID, an ARN or a cloud id): {problem}")
        return Subject(workload_id, (), True)
    if not texts:
        raise InvalidInput("say what to act on: --workload ID, or --credential REF (repeatable)")
    refs: list[CredentialRef] = []
    for text in texts:
        ref = parse_ref(text)
        if ref not in refs:
            refs.append(ref)
    return Subject(format_ref(refs[0]), tuple(refs), False)


def manual_incident_id(subject: Subject, reason: str, moment: datetime) -> str:
    """`manual-` and a short hash of what is revoked, why and when: unique per start, stable in the ledger."""
    from rescind.offboarding.manual import manual_incident_id as incident_id_of

    return incident_id_of(subject.refs, subject.workload_id, reason, moment)


def build_request(
    subject: Subject, *, reason: str, ticket: str | None, requested_by: str, dry_run: bool
) -> OffboardingRequest:
    """The manual machine's input, built here for a plan preview and for direct mode (no stack). With a stack, the
    run is started by StartManualRevocationFunction, which builds it with the request's signer as requester."""
    from rescind.offboarding.manual import build_manual_request

    return build_manual_request(
        workload_id=subject.workload_id if subject.from_workload else None,
        credentials=subject.refs,
        reason=reason,
        ticket=ticket,
        requested_by=requested_by[:200],
        dry_run=dry_run,
    )


def start_manual_run(
    target: Target, subject: Subject, *, reason: str, ticket: str | None, dry_run: bool
) -> tuple[ManualRunStarted, str]:
    """Ask StartManualRevocationFunction to start the run, in a request signed with the caller's credentials.

    The function records the signer as the run's requester (the approval function refuses that principal); the
    CLI holds no right to start the manual machine itself. Returns the function's answer and the execution ARN.
    """
    from rescind.models.refs import format_ref
    from rescind.offboarding.manual import ManualRunStarted
    from rescind_cli.function_url import post_signed
    from rescind_cli.targets import START_MANUAL_REVOCATION_FUNCTION

    body: dict[str, Any] = {"reason": reason, "dry_run": dry_run}
    if subject.from_workload:
        body["workload"] = subject.workload_id
    else:
        body["credentials"] = [format_ref(ref) for ref in subject.refs]
    if ticket:
        body["ticket"] = ticket
    credentials, region = target.signing_credentials()
    status, answer = post_signed(
        target.function_url(START_MANUAL_REVOCATION_FUNCTION), body, credentials=credentials, region=region
    )
    run = answer.get("run")
    if status != 200 or not isinstance(run, dict):
        message = " ".join(str(answer.get("message") or f"the start function answered HTTP {status}").split())
        raise CommandFailed(message[:500], EXIT_BAD_INPUT if 400 <= status < 500 else EXIT_FAILED)
    started = ManualRunStarted.model_validate(run)
    if started.execution_arn is None:
        raise CommandFailed(f"the start function started no execution for {started.incident_id}", EXIT_FAILED)
    return started, started.execution_arn


class _ReadOnlyInventory:
    """The inventory as `plan` and `revoke` read it: what discovery finds is not written back from the CLI."""

    def __init__(self, inventory: Inventory) -> None:
        self._inventory = inventory

    def bind(self, binding: Any) -> None:
        return None

    def workload_for(self, cloud_id: str) -> Any:
        return self._inventory.workload_for(cloud_id)

    def record_credentials(self, workload_id: str, refs: Sequence[CredentialRef]) -> None:
        return None

    def credentials_of(self, workload_id: str) -> list[CredentialRef]:
        return self._inventory.credentials_of(workload_id)

    def bindings(self) -> list[Any]:
        return self._inventory.bindings()

    def resources_of(self, workload_id: str) -> list[Any]:
        return self._inventory.resources_of(workload_id)


def plan_for(target: Target, request: OffboardingRequest) -> OffboardingPlan:
    """The plan and the guard's decision, exactly as the plan task will make them. Reads only."""
    from rescind.offboarding.plan import build_offboarding_plan

    inventory = target.inventory()
    _, planned = build_offboarding_plan(
        request,
        vault=target.vault(),
        aws=target.aws_factory(),
        inventory=_ReadOnlyInventory(inventory) if inventory is not None else None,
        scope=target.discovery_scope(),
        policy=target.guard_policy(),
    )
    return planned


def plan_document(planned: OffboardingPlan, subject: Subject, cap: int) -> dict[str, Any]:
    from rescind.models.refs import format_ref

    ordered = [("contain", action) for action in planned.containment] + [("revoke", a) for a in planned.actions]
    return {
        "subject": subject.workload_id,
        "by": "workload" if subject.from_workload else "credentials",
        "credentials": [format_ref(ref) for ref in subject.refs],
        "decision": str(planned.decision),
        "decision_reason": planned.decision_reason,
        "blast_radius_cap": cap,
        "total": len(ordered),
        "counts_by_kind": planned.counts_by_kind,
        "actions": [
            {
                "order": number,
                "phase": phase,
                "kind": str(action.kind),
                "target_kind": str(action.target.kind),
                "target": format_ref(action.target),
                "reversible": action.reversible,
                "action_id": action.action_id,
            }
            for number, (phase, action) in enumerate(ordered, start=1)
        ],
    }


def print_plan(document: dict[str, Any], console: Console) -> None:
    table = Table(title=f"Plan for {escape(document['subject'])}", title_justify="left")
    for column in ("#", "phase", "action", "credential", "reversible"):
        table.add_column(column, overflow="fold")
    for action in document["actions"]:
        table.add_row(
            str(action["order"]),
            action["phase"],
            action["kind"],
            escape(action["target"]),
            "yes" if action["reversible"] else "no",
        )
    console.print(table)
    counts = ", ".join(f"{kind} {count}" for kind, count in sorted(document["counts_by_kind"].items()))
    console.print(f"{document['total']} action(s): {counts or 'none'}")
    tone = {"proceed": "green", "needs_approval": "yellow", "dry_run": "cyan"}.get(document["decision"], "red")
    console.print(
        f"guard: [{tone}]{document['decision']}[/] ({escape(document['decision_reason'])});"
        f" blast-radius cap {document['blast_radius_cap']}"
    )


def _refuse_if_nothing_to_do(planned: OffboardingPlan, subject: Subject, document: dict[str, Any]) -> None:
    from rescind.offboarding.types import GuardDecision

    if planned.decision is GuardDecision.NOTHING_TO_DO:
        where = (
            "check the id with `rescind inventory show --workload ID`, or run `rescind inventory sync`"
            if subject.from_workload
            else "the named credentials need no action (a shared secret was already rotated since)"
        )
        raise CommandFailed(f"nothing to revoke: no live credential found for {subject.text}; {where}", plan=document)
    if planned.decision is GuardDecision.REFUSE:
        raise CommandFailed(f"refused by the guard: {planned.decision_reason}; nothing was started", plan=document)


# --- following an execution -----------------------------------------------------------------------------


@dataclass
class RunProgress:
    """Where one execution is, read from DescribeExecution and its history."""

    execution_arn: str
    name: str
    incident_id: str
    status: str
    current_state: str = ""
    planned: int | None = None
    done: int = 0
    failed: int = 0
    decision: str | None = None
    decision_reason: str | None = None
    waiting_for_approval: bool = False
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    error: str | None = None
    _task_token: str | None = field(default=None, repr=False)  # never printed or returned

    @property
    def finished(self) -> bool:
        return self.status != "RUNNING"

    def document(self) -> dict[str, Any]:
        return {
            "execution_arn": self.execution_arn,
            "name": self.name,
            "incident_id": self.incident_id,
            "status": self.status,
            "current_state": self.current_state,
            "actions_planned": self.planned,
            "actions_done": self.done,
            "actions_failed": self.failed,
            "decision": self.decision,
            "decision_reason": self.decision_reason,
            "waiting_for_approval": self.waiting_for_approval,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "stopped_at": self.stopped_at.isoformat() if self.stopped_at else None,
            "error": self.error,
        }


def execution_history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        if token:
            kwargs["nextToken"] = token
        page = sfn.get_execution_history(**kwargs)
        events.extend(page.get("events", []))
        token = page.get("nextToken")
        if not token:
            return events


def _json(text: str | None) -> Any:
    try:
        return json.loads(text or "null")
    except ValueError:
        return None


def read_progress(sfn: Any, execution_arn: str) -> RunProgress:
    described = sfn.describe_execution(executionArn=execution_arn)
    execution_input = _json(described.get("input")) or {}
    progress = RunProgress(
        execution_arn=execution_arn,
        name=described.get("name", execution_arn.rsplit(":", 1)[-1]),
        incident_id=str(execution_input.get("incident_id") or described.get("name", "")),
        status=described["status"],
        started_at=described.get("startDate"),
        stopped_at=described.get("stopDate"),
        error=described.get("error"),
    )
    action_outcomes: dict[str, str] = {}
    pending_token: str | None = None
    for event in execution_history(sfn, execution_arn):
        kind = event["type"]
        details: dict[str, Any]
        if kind.endswith("StateEntered"):
            progress.current_state = event.get("stateEnteredEventDetails", {}).get("name", "")
        elif kind.endswith("StateExited"):
            details = event.get("stateExitedEventDetails", {})
            if details.get("name") in ACTION_STATES:
                output = _json(details.get("output")) or {}
                if output.get("action_id"):
                    action_outcomes[str(output["action_id"])] = str(output.get("outcome", ""))
        elif kind == "TaskScheduled":
            details = event.get("taskScheduledEventDetails", {})
            if "waitForTaskToken" in details.get("resource", ""):
                payload = (_json(details.get("parameters")) or {}).get("Payload") or {}
                pending_token = payload.get("task_token") or None
        elif kind in _TASK_ENDED:
            details = next((value for key, value in event.items() if key.endswith("EventDetails")), {})
            if "waitForTaskToken" in str(details.get("resource", "")):
                pending_token = None
            if kind == "TaskSucceeded":
                payload = (_json(details.get("output")) or {}).get("Payload")
                if isinstance(payload, dict) and "decision" in payload and "containment" in payload:
                    progress.planned = len(payload.get("containment") or []) + len(payload.get("actions") or [])
                    progress.decision = str(payload["decision"])
                    progress.decision_reason = str(payload.get("decision_reason") or "")
    progress.done = len(action_outcomes)
    progress.failed = sum(1 for outcome in action_outcomes.values() if outcome == "failed")
    if progress.status == "RUNNING" and pending_token:
        progress.waiting_for_approval = True
        progress._task_token = pending_token
    return progress


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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    pause = sleep or _sleep
    deadline = None if timeout is None else time.monotonic() + timeout
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=_stderr, disable=not show_progress, transient=False) as bar:
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


def _status_command_hint(target: Target, name: str) -> str:
    return f"rescind status {name} {target.selector}"


def _approval_hint(target: Target, name: str) -> str:
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
        code, line = EXIT_AWAITING_APPROVAL, _approval_hint(target, progress.name)
    elif not progress.finished:
        code = EXIT_STILL_RUNNING
        line = f"still running; follow it with `{_status_command_hint(target, progress.name)}`"
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
        _emit(document)
    else:
        tone = (
            "green"
            if code == EXIT_OK
            else ("yellow" if code in (EXIT_AWAITING_APPROVAL, EXIT_STILL_RUNNING) else "red")
        )
        planned = "?" if progress.planned is None else str(progress.planned)
        _say(f"{progress.name}: {progress.status}, {progress.done}/{planned} action(s) done")
        _say(f"[{tone}]{escape(line)}[/]")
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


# --- the commands -----------------------------------------------------------------------------------------


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
    with _command(json_output, holder):
        subject = parse_subject(workload, credential)
        target = _target(
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
        planned = plan_for(target, request)
        document = plan_document(planned, subject, target.guard_policy().blast_radius_cap)
        _refuse_if_nothing_to_do(planned, subject, document)
        if json_output:
            _emit({"ok": True, "target": target.description, **document})
        else:
            print_plan(document, _stdout())
            _say("nothing was changed")


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
    with _command(json_output, holder):
        subject = parse_subject(workload, credential)
        reason_text = " ".join((reason or "").split())
        if not reason_text:
            raise InvalidInput("a reason is required: --reason TEXT (it is recorded in the ledger and notifications)")
        if json_output and not yes and not sys.stdin.isatty():
            raise InvalidInput("--json without --yes would wait for an answer no terminal can give: add --yes")
        target = _target(
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
        planned = plan_for(target, request)
        document = plan_document(planned, subject, target.guard_policy().blast_radius_cap)
        _refuse_if_nothing_to_do(planned, subject, document)
        if not json_output:
            print_plan(document, _stderr)
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
            _say(f"started {incident_id} on {escape(target.description)} as {escape(started.requested_by)}")
        sfn = target.client("stepfunctions")
        try:
            progress = follow_execution(sfn, execution_arn, show_progress=not json_output, timeout=timeout)
        except KeyboardInterrupt:
            _say(
                f"interrupted: the run {incident_id} goes on; follow it with "
                f"`{_status_command_hint(target, incident_id)}`"
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
    request: OffboardingRequest,
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
            _say(f"AWS side skipped: {skipped}; only Vault credentials are acted on")

    def show(result: Any) -> None:
        if not json_output:
            _say(f"  {result.outcome}: {result.action_kind} {escape(format_ref(result.target))}")

    run = run_direct_revocation(target, request, approved_by=approved_by, ticket=request.trigger.ticket, on_result=show)
    code = {"completed": EXIT_OK, "dry_run": EXIT_OK, "refused": EXIT_BAD_INPUT}.get(run.status, EXIT_FAILED)
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
        _emit(result_document)
    else:
        _say(f"{run.incident_id}: {run.status}; recorded in {target.ledger_path()}")
        _say(escape(run.summary))
    raise typer.Exit(code)


def replay_leak_event_directly(target: DirectTarget, event: dict[str, Any], *, json_output: bool) -> None:
    """A leak event answered in this process; exit 0 when every run completed, 2 when none could start."""
    from rescind.leaks.triggers import LeakAlertRejected
    from rescind.models.refs import format_ref
    from rescind_cli.direct import answer_leak_event_directly

    def show(result: Any) -> None:
        if not json_output:
            _say(f"  {result.outcome}: {result.action_kind} {escape(format_ref(result.target))}")

    try:
        answer = answer_leak_event_directly(target, event, on_result=show)
    except LeakAlertRejected as error:
        raise InvalidInput(f"not a leak event Rescind can answer: {error}") from None
    runs = [
        {"incident_id": run.incident_id, "status": run.status, "still_alive": list(run.still_alive)}
        for run in answer.runs
    ]
    completed = bool(answer.runs) and all(run.status == "completed" for run in answer.runs)
    code = EXIT_OK if completed else (EXIT_BAD_INPUT if not answer.runs else EXIT_FAILED)
    if json_output:
        _emit(
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
            _say(f"{run.incident_id}: {run.status}; {escape(run.summary.splitlines()[0] if run.summary else '')}")
        for why in answer.unresolved:
            _say(f"unresolved: {escape(why)}")
        if answer.recorded:
            _say(f"recorded, nothing to act on: {escape(answer.recorded)}")
        _say(f"recorded in {target.ledger_path()}")
    raise typer.Exit(code)


def _answer_approval(
    target: Target, execution: str, *, approve: bool, reason: str
) -> tuple[RunProgress, str, dict[str, Any]]:
    """Ask AnswerApprovalFunction to answer, in a request signed with the caller's credentials.

    The function, not the CLI, decides: it takes the caller from the signature, refuses the requester, records
    the decision and answers the task token. The CLI holds no right to answer a token itself.
    """
    from rescind_cli.function_url import post_signed
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
    credentials, region = target.signing_credentials()
    status, answer = post_signed(
        target.function_url(ANSWER_APPROVAL_FUNCTION),
        {"execution": arn, "decision": "approve" if approve else "deny", "reason": reason},
        credentials=credentials,
        region=region,
    )
    decision = answer.get("decision")
    if status != 200 or not isinstance(decision, dict):
        message = " ".join(str(answer.get("message") or f"the approval function answered HTTP {status}").split())
        raise CommandFailed(message[:500])
    return progress, str(decision.get("decided_by", "")), decision


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
    with _command(json_output, holder):
        target = _target(stack, state_dir, profile, holder)
        progress, caller, decision = _answer_approval(target, execution, approve=True, reason="")
        if not json_output:
            _say(f"[green]approved[/] {progress.name} as {escape(caller)}")
        if follow:
            followed = follow_execution(
                target.client("stepfunctions"),
                progress.execution_arn,
                show_progress=not json_output,
                timeout=timeout,
            )
            finish_run(target, followed, json_output=json_output, extra={"approval": decision})
        if json_output:
            _emit({"ok": True, "approval": decision, "run": progress.document()})
        else:
            _say(f"follow it with `{_status_command_hint(target, progress.name)}`")


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
    with _command(json_output, holder):
        reason_text = " ".join((reason or "").split())
        if not reason_text:
            raise InvalidInput("a reason is required: --reason TEXT (it is recorded in the ledger)")
        target = _target(stack, state_dir, profile, holder)
        progress, caller, decision = _answer_approval(target, execution, approve=False, reason=reason_text)
        if json_output:
            _emit({"ok": True, "approval": decision, "run": progress.document()})
        else:
            _say(f"[yellow]denied[/] {progress.name} as {escape(caller)}: it ends refused and touches nothing")


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
    with _command(json_output, holder):
        target = _target(stack, state_dir, profile, holder, direct=direct, json_output=json_output)
        if isinstance(target, DirectTarget):
            direct_run_status(target, execution.strip(), json_output=json_output)
        arn = resolve_execution(target, execution)
        sfn = target.client("stepfunctions")
        if follow:
            try:
                progress = follow_execution(sfn, arn, show_progress=not json_output, timeout=timeout)
            except KeyboardInterrupt:
                _say("interrupted: the run goes on")
                raise typer.Exit(EXIT_INTERRUPTED) from None
        else:
            progress = read_progress(sfn, arn)
        if not json_output:
            _print_status(progress)
        finish_run(target, progress, json_output=json_output)


def direct_run_status(target: DirectTarget, incident_id: str, *, json_output: bool) -> NoReturn:
    """A direct run's end, from the local ledger: its closure, or that it stopped before closing."""
    view = target.ledger().read_incident(incident_id)
    if view.incident is None:
        raise CommandFailed(f"no incident {incident_id} in the local ledger {target.ledger_path()}")
    closure = view.closure
    status = str(closure.status) if closure is not None else "not closed"
    code = {"completed": EXIT_OK, "dry_run": EXIT_OK, "refused": EXIT_BAD_INPUT}.get(status, EXIT_FAILED)
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
        _emit(document)
    else:
        _say(f"{incident_id}: {status}, {len(view.attempts)} attempt(s) of {document['actions_planned']} action(s)")
        _say(escape(line))
    raise typer.Exit(code)


def _print_status(progress: RunProgress) -> None:
    table = Table(title=f"Run {progress.name}", title_justify="left", show_header=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    planned = "?" if progress.planned is None else str(progress.planned)
    rows = [
        ("execution", progress.execution_arn),
        ("status", progress.status),
        ("current state", progress.current_state),
        ("actions", f"{progress.done} of {planned} done, {progress.failed} failed"),
        ("guard", f"{progress.decision or '?'}: {progress.decision_reason or ''}"),
        ("waiting for approval", "yes" if progress.waiting_for_approval else "no"),
    ]
    for name, value in rows:
        table.add_row(name, escape(value))
    _stderr.print(table)


_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """ISO 8601 (a time without zone is UTC), or a span back from now: 30m, 2h, 1d, 1w."""
    value = text.strip()
    relative = _RELATIVE.match(value.lower())
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: amount})
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("--since takes ISO 8601 (2026-11-24T10:00:00Z) or a span like 30m, 2h, 1d, 1w") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _incident_summary(view: IncidentView) -> dict[str, Any]:
    incident = view.incident
    return {
        "incident_id": incident.incident_id if incident else None,
        "opened_at": incident.opened_at.isoformat() if incident else None,
        "source": incident.trigger.source if incident else None,
        "detail_type": incident.trigger.detail_type if incident else None,
        "workload_id": incident.trigger.workload_id if incident else None,
        "requested_by": incident.trigger.requested_by if incident else None,
        "actions_planned": len(incident.plan.actions) if incident else None,
        "attempts": len(view.attempts),
        "status": str(view.closure.status) if view.closure else "open",
        "still_alive": len(view.closure.still_alive) if view.closure else None,
        # True when the closure cannot say nothing is alive (a credential was never read back).
        "alive_is_unknown": view.closure.alive_is_unknown if view.closure else True,
    }


def ledger_command(
    context: typer.Context,
    incident: Annotated[str | None, typer.Option("--incident", help="Show this incident's records.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO 8601, or 30m, 2h, 1d, 1w.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many incidents.")] = 50,
    stack: StackOption = None,
    state_dir: StateDirOption = None,
    direct: DirectOption = False,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the ledger's incidents (newest first), or one incident's records; `rescind ledger push` copies a local one.

    In direct mode, the local ledger (RESCIND_LEDGER_FILE, else ~/.local/state/rescind/ledger.sqlite3), whose hash
    chain is checked first: a record changed outside Rescind is reported (exit 1).
    """
    if context.invoked_subcommand is not None:
        return
    holder: list[Target] = []
    with _command(json_output, holder):
        moment = parse_since(since) if since else None
        target = _target(stack, state_dir, profile, holder, direct=direct, json_output=json_output)
        if isinstance(target, DirectTarget):
            broken = target.ledger().verify_chain()
            if broken:
                raise CommandFailed(
                    f"the local ledger {target.ledger_path()} was changed outside Rescind: {broken[0]}",
                    EXIT_FAILED,
                    chain=broken,
                )
        ledger = target.ledger()
        if incident is not None:
            view = ledger.read_incident(incident.strip())
            if view.incident is None and not view.attempts and view.closure is None:
                raise CommandFailed(f"no incident {incident.strip()} in the ledger of {target.description}")
            if json_output:
                _emit({"ok": True, "incident": view.model_dump(mode="json")})
            else:
                _print_incident(view)
            return
        records = ledger.list_incidents(since=moment, limit=limit)
        summaries = [_incident_summary(ledger.read_incident(record.incident_id)) for record in records]
        if json_output:
            _emit({"ok": True, "since": moment.isoformat() if moment else None, "incidents": summaries})
        else:
            _print_incidents(summaries)


def ledger_push_command(
    stack: StackOption = None,
    state_dir: StateDirOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Copy the local ledger (direct-mode runs) into a stack's ledger. Pushing twice writes each record once.

    The local ledger is RESCIND_LEDGER_FILE, else ~/.local/state/rescind/ledger.sqlite3. Its hash chain is checked
    first: a ledger changed outside Rescind is copied nowhere (exit 1).
    """
    from rescind.ledger.sqlite import SqliteLedger, push_local_ledger
    from rescind_cli.direct import local_ledger_path

    holder: list[Target] = []
    with _command(json_output, holder):
        if not stack and state_dir is None and not os.environ.get(STACK_ENV):
            raise InvalidInput("say which stack receives the records: --stack NAME (or --state-dir for the local one)")
        target = _target(stack, state_dir, profile, holder, json_output=json_output)
        path = local_ledger_path(os.environ)
        if not path.is_file():
            raise CommandFailed(f"no local ledger at {path}: nothing to push")
        try:
            report = push_local_ledger(SqliteLedger(path), target.ledger())
        except LedgerConflict as error:
            raise CommandFailed(str(error), EXIT_FAILED) from None
        document = {
            "ok": True,
            "from": str(path),
            "to": target.description,
            "written": report.written,
            "already_there": report.already_there,
            "local_claims_kept_local": report.skipped_claims,
        }
        if json_output:
            _emit(document)
        else:
            written, already = report.written, report.already_there
            _say(f"pushed {path} to {escape(target.description)}: {written} written, {already} already there")


def _print_incidents(summaries: Sequence[dict[str, Any]]) -> None:
    table = Table(title="Incidents, newest first", title_justify="left")
    for column in ("incident", "opened", "trigger", "subject", "actions", "status"):
        table.add_column(column, overflow="fold")
    for row in summaries:
        table.add_row(
            escape(str(row["incident_id"])),
            str(row["opened_at"] or "")[:19],
            escape(f"{row['source']} / {row['detail_type']}"),
            escape(str(row["workload_id"] or "")),
            f"{row['attempts']}/{row['actions_planned']}",
            str(row["status"]),
        )
    _stdout().print(table)
    _say(f"{len(summaries)} incident(s)")


def _print_incident(view: IncidentView) -> None:
    from rescind.ledger.closing import describe_alive
    from rescind.models.refs import format_ref

    console = _stdout()
    summary = _incident_summary(view)
    console.print(f"[bold]{escape(str(summary['incident_id']))}[/] {summary['status']}")
    if view.incident is not None:
        trigger = view.incident.trigger
        console.print(
            escape(
                f"trigger: {trigger.source} / {trigger.detail_type}, by {trigger.requested_by or 'an event'}"
                f", reason: {trigger.reason or '-'}, ticket: {trigger.ticket or '-'}"
            )
        )
    table = Table(title="Attempts", title_justify="left")
    for column in ("started", "action", "credential", "outcome", "verified"):
        table.add_column(column, overflow="fold")
    for attempt in view.attempts:
        result = attempt.result
        confirmed = all(evidence.confirmed for evidence in result.evidence) if result.evidence else False
        table.add_row(
            result.started_at.isoformat(timespec="seconds"),
            str(result.action_kind),
            escape(format_ref(result.target)),
            str(result.outcome),
            "yes" if confirmed else "no",
        )
    console.print(table)
    for approval in view.approvals:
        console.print(escape(f"{approval.verdict} by {approval.decided_by} at {approval.decided_at.isoformat()}"))
    if view.closure is not None:
        console.print(escape(f"closed {view.closure.status}; {describe_alive(view.closure)}"))


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
    with _command(json_output, holder):
        if fmt not in ("md", "html", "json"):
            raise InvalidInput("--format must be md, html or json")
        incident_id = incident.strip()
        target = _target(stack, state_dir, profile, holder, direct=direct, json_output=json_output)
        view = target.ledger().read_incident(incident_id)
        if view.incident is None and not view.attempts and view.closure is None:
            raise CommandFailed(f"no incident {incident_id} in the ledger of {target.description}")
        # A direct run had no execution: the ledger is the whole record.
        summary = None if isinstance(target, DirectTarget) else execution_summary(target, incident_id, view)
        text = render_report(view, fmt=fmt, execution=summary)  # type: ignore[arg-type]
        if output is not None:
            try:
                output.write_text(text, encoding="utf-8")
            except OSError as error:
                raise CommandFailed(f"cannot write {output}: {error.strerror}") from None
        if json_output:
            _emit(
                {
                    "ok": True,
                    "incident_id": incident_id,
                    "format": fmt,
                    "output": str(output) if output is not None else None,
                    "content": None if output is not None else text,
                }
            )
        elif output is not None:
            _say(f"wrote the {fmt} report of {incident_id} to {output}")
        else:
            typer.echo(text, nl=not text.endswith("\n"))


def load_event(path: Path) -> dict[str, Any]:
    """An EventBridge event as the samples in events/ hold it: source, detail-type, detail (and resources)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InvalidInput(f"cannot read {path}: {error.strerror}") from None
    except ValueError:
        raise InvalidInput(f"{path} is not JSON: give an EventBridge event like the samples in events/") from None
    if not isinstance(document, dict):
        raise InvalidInput(f"{path} is not one EventBridge event (a JSON object)")
    if is_webhook_delivery(document):
        return document
    missing = [key for key in ("source", "detail-type", "detail") if key not in document]
    if missing or not isinstance(document.get("detail"), dict):
        raise InvalidInput(
            f"{path} is not an EventBridge event (it needs source, detail-type and a detail object) nor a "
            "GitHub webhook delivery to a function URL"
        )
    return document


def is_webhook_delivery(document: dict[str, Any]) -> bool:
    """A function URL event carrying a GitHub delivery, like events/github_secret_scanning_webhook.json."""
    headers = document.get("headers")
    return isinstance(headers, dict) and "x-github-event" in headers and isinstance(document.get("body"), str)


def deliver_to_webhook(target: Target, delivery: dict[str, Any]) -> tuple[str, int]:
    """Invoke GitHubWebhookFunction with the delivery, signed again with the stack's own webhook secret (as GitHub
    would sign it for this stack) under a fresh delivery id. Returns (delivery id, HTTP status)."""
    from rescind_local.github import sign_delivery

    function = target.function_name(WEBHOOK_FUNCTION)
    lambda_client = target.client("lambda")
    environment = lambda_client.get_function_configuration(FunctionName=function).get("Environment") or {}
    secret_arn = (environment.get("Variables") or {}).get("GITHUB_WEBHOOK_SECRET_ARN")
    if not secret_arn:
        raise CommandFailed(f"{WEBHOOK_FUNCTION} has no GITHUB_WEBHOOK_SECRET_ARN", EXIT_FAILED)
    secret = target.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"].strip()
    delivery_id = str(uuid.uuid4())
    signed = sign_delivery(delivery, secret.encode(), delivery_id=delivery_id)
    answer = lambda_client.invoke(FunctionName=function, Payload=json.dumps(signed).encode())
    payload = json.loads(answer["Payload"].read() or b"{}")
    status = int(payload.get("statusCode", 500)) if isinstance(payload, dict) else 500
    if answer.get("FunctionError") or status >= 300:
        raise CommandFailed(f"the webhook answered {status}: {str(payload.get('body', ''))[:300]}", EXIT_FAILED)
    return delivery_id, status


# The functions the termination and leak rules target: replay hands them the event as EventBridge would.
RULE_TARGET_FUNCTIONS = ("StartOffboardingFunction", "StartLeakResponseFunction")


@dataclass(frozen=True)
class RuleDelivery:
    """One rule of the stack that matched the event, and what its target function answered."""

    rule: str
    function: str
    answer: dict[str, Any]
    error: str | None = None

    @property
    def execution_arns(self) -> list[str]:
        """The runs the answer names: started now, or started before for the same incident (a duplicate)."""
        answers = [self.answer, *(self.answer.get("responses") or [])]
        return [str(a["execution_arn"]) for a in answers if isinstance(a, dict) and a.get("execution_arn")]

    @property
    def outcomes(self) -> list[str]:
        """What the function decided, one line each: 'unresolved (incident ...)', 'ignored: ...'."""
        if self.error:
            return [f"failed: {self.error}"]
        answers = [self.answer, *(self.answer.get("responses") or []), self.answer.get("recorded")]
        lines = []
        for answer in answers:
            if not isinstance(answer, dict) or answer.get("status") in (None, "accepted"):
                continue
            status, incident = str(answer["status"]), answer.get("incident_id")
            why = answer.get("why") or answer.get("problem") or ""
            lines.append(f"{status}" + (f" (incident {incident})" if incident else "") + (f": {why}" if why else ""))
        return lines


def deliver_through_rules(target: Target, event: dict[str, Any]) -> list[RuleDelivery]:
    """Match the whole event against the stack's rules and hand it, envelope and all, to each matching rule's
    function, as EventBridge would. PutEvents cannot do this: it sets `account` and `region` to the caller's and
    refuses `aws.*` sources, so a real AWS event would reach the functions changed."""
    events, lambda_client = target.client("events"), target.client("lambda")
    functions = {target.function_name(logical_id) for logical_id in RULE_TARGET_FUNCTIONS}
    document = json.dumps(event)
    deliveries = []
    for bus, rule in _rules(events):
        if rule.get("State") != "ENABLED" or not rule.get("EventPattern"):
            continue
        targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]
        ours = [t for t in targets if str(t["Arn"]).rsplit(":", 1)[-1] in functions]
        if not ours or not events.test_event_pattern(EventPattern=rule["EventPattern"], Event=document)["Result"]:
            continue
        for rule_target in ours:
            answer = lambda_client.invoke(FunctionName=rule_target["Arn"], Payload=document.encode())
            payload = json.loads(answer["Payload"].read() or b"{}")
            error = None
            if answer.get("FunctionError"):
                error = f"{payload.get('errorType', 'error')}: {str(payload.get('errorMessage', ''))[:300]}"
            deliveries.append(
                RuleDelivery(
                    rule=str(rule["Name"]),
                    function=str(rule_target["Arn"]).rsplit(":", 1)[-1],
                    answer=payload if isinstance(payload, dict) else {},
                    error=error,
                )
            )
    return deliveries


def _rules(events: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(bus name, rule) for every rule on every bus of the account: the default bus and Rescind's trigger bus."""
    for bus in _pages(events.list_event_buses, "EventBuses", {}):
        yield from (
            (str(bus["Name"]), rule) for rule in _pages(events.list_rules, "Rules", {"EventBusName": bus["Name"]})
        )


def _pages(call: Any, key: str, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        yield from page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return


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
    with _command(json_output, holder):
        event = load_event(event_file)
        target = _target(stack, state_dir, profile, holder, direct=direct, json_output=json_output)
        if isinstance(target, DirectTarget):
            replay_leak_event_directly(target, event, json_output=json_output)
            return
        sfn = target.client("stepfunctions")
        machines = [target.state_machine_arn(machine) for machine in (OFFBOARDING_MACHINE, LEAK_MACHINE)]
        decided: list[str] = []
        if is_webhook_delivery(event):
            before = {arn for machine in machines for arn in _execution_arns(sfn, machine)}
            event_id, status = deliver_to_webhook(target, event)
            if not json_output:
                _say(f"delivered the GitHub webhook to {escape(target.description)}: {status} (delivery {event_id})")
            started = _wait_for_new_executions(sfn, machines, before, time.monotonic() + timeout)
        else:
            event_id = str(event.get("id", ""))
            deliveries = deliver_through_rules(target, event)
            if not json_output:
                where = escape(target.description)
                rules = ", ".join(d.rule for d in deliveries) or "no rule"
                _say(f"{event['detail-type']} from {event['source']} (id {escape(event_id)}) on {where}: {rules}")
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
            _say(f"interrupted: the runs go on; follow them with `rescind status NAME {target.selector}`")
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
            _emit({"ok": code == EXIT_OK, "event_id": event_id, "runs": documents, "decided": decided})
        else:
            for line in decided:
                _say(escape(line))
            for run in runs:
                note = " (waits for approval)" if run.waiting_for_approval else ""
                tone = "green" if run.status == "SUCCEEDED" else ("yellow" if not run.finished else "red")
                _say(f"[{tone}]{run.name}[/]: {run.status}{note}, {run.done}/{run.planned} action(s) done")
                if run.waiting_for_approval:
                    _say(escape(_approval_hint(target, run.name)))
        raise typer.Exit(code)


def _wait_for_new_executions(sfn: Any, machines: list[str], before: set[str], deadline: float) -> list[str]:
    """The webhook answers before the bus delivers: wait until a run appears, or the deadline."""
    while True:
        started = [arn for machine in machines for arn in _execution_arns(sfn, machine) if arn not in before]
        if started or time.monotonic() > deadline:
            return started
        _sleep(POLL_SECONDS)


def _execution_arns(sfn: Any, machine_arn: str) -> list[str]:
    arns: list[str] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"stateMachineArn": machine_arn, "maxResults": 1000}
        if token:
            kwargs["nextToken"] = token
        page = sfn.list_executions(**kwargs)
        arns.extend(item["executionArn"] for item in page.get("executions", []))
        token = page.get("nextToken")
        if not token:
            return arns


def register(app: typer.Typer) -> None:
    """Add the run commands to the top-level `rescind` app."""
    app.command("plan")(plan_command)
    app.command("revoke")(revoke_command)
    app.command("approve")(approve_command)
    app.command("deny")(deny_command)
    app.command("status")(status_command)
    ledger_app = typer.Typer()
    ledger_app.callback(invoke_without_command=True)(ledger_command)
    ledger_app.command("push")(ledger_push_command)
    app.add_typer(ledger_app, name="ledger")
    app.command("report")(report_command)
    app.command("replay")(replay_command)
