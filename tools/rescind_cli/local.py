"""`rescind local up|down|status`: the persistent local stack that other `rescind` commands talk to by default.

`up` starts `python -m rescind_local.daemon` in the background (its own session, so it outlives the shell's
command) and waits until its state file says ready. `down` sends SIGTERM to the PID in the state file and waits
for it to go. The state directory is `.rescind-local/` under the current directory, or `--state-dir`, or
RESCIND_LOCAL_DIR. Each command is a plain function (`start_local_stack`, `stop_local_stack`,
`local_stack_status`) plus a thin Typer command.

Only processes this stack started are ever signalled: the daemon's PID is trusted only while the daemon's
lock file is held (the kernel drops the lock when the process dies, so a reused PID is never mistaken for
it), and an OpenBao left behind by a crashed daemon is stopped only if its command line names this state
directory's config file.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console

from rescind_cli.options import JsonOption
from rescind_local.target import (
    STATE_DIR_ENV,
    LocalStackState,
    daemon_is_alive,
    default_state_dir,
    log_file,
    openbao_dir,
    pid_is_running,
    process_command_line,
    read_state,
    state_file,
)

DAEMON_MODULE = "rescind_local.daemon"
EXIT_ALREADY_RUNNING = 3  # rescind_local.daemon's exit code when another daemon holds the lock
DEFAULT_UP_TIMEOUT_SECONDS = 90.0
DEFAULT_DOWN_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.05

local_app = typer.Typer(
    help="The local stack (OpenBao and moto with the template deployed), kept running between commands.",
    no_args_is_help=True,
    add_completion=False,
)
_stderr = Console(stderr=True, emoji=False)

StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar=STATE_DIR_ENV,
        help="Where the local stack keeps its state file, logs and OpenBao storage (default: ./.rescind-local).",
    ),
]

StackCondition = Literal["running", "starting", "stale", "stopped"]


class LocalStackError(RuntimeError):
    """`up` or `down` could not do what was asked. The message is one line saying what to do next."""


def resolve_state_dir(option: Path | None) -> Path:
    return option.expanduser().resolve() if option is not None else default_state_dir()


# --- status ----------------------------------------------------------------------------------------------


@dataclass
class StackStatus:
    condition: StackCondition
    state_dir: Path
    state: LocalStackState | None = None
    moto_answering: bool = False
    openbao_health: int | None = None  # sys/health's status code: 200 active, 503 sealed

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.condition,
            "state_dir": str(self.state_dir),
            "state": self.state.public_view() if self.state else None,
            "moto_answering": self.moto_answering,
            "openbao_health": self.openbao_health,
        }


def _port_answers(url: str, timeout: float = 0.5) -> bool:
    host_port = url.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        return False
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _openbao_health(addr: str, timeout: float = 1.0) -> int | None:
    if not addr:
        return None
    try:
        with urllib.request.urlopen(f"{addr}/v1/sys/health", timeout=timeout) as answer:  # noqa: S310 (loopback)
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, ValueError):
        return None


def local_stack_status(state_dir: Path) -> StackStatus:
    """What runs behind `state_dir`: running (ready), starting, stale (its daemon died) or stopped."""
    state = read_state(state_dir)
    if state is None:
        return StackStatus("stopped", state_dir)
    if not daemon_is_alive(state):
        return StackStatus("stale", state_dir, state)
    condition: StackCondition = "running" if state.status == "ready" else "starting"
    return StackStatus(
        condition,
        state_dir,
        state,
        moto_answering=bool(state.moto_endpoint) and _port_answers(state.moto_endpoint),
        openbao_health=_openbao_health(state.openbao_addr),
    )


# --- cleaning up after a crashed daemon ---------------------------------------------------------------------


def _is_our_openbao(state: LocalStackState) -> bool:
    """The PID in the state file is still the OpenBao this stack started (its argv names our config file)."""
    if state.openbao_pid is None or not state.openbao_config or not pid_is_running(state.openbao_pid):
        return False
    command = process_command_line(state.openbao_pid)
    return command is not None and f"-config={state.openbao_config}" in command


def _is_our_daemon(state: LocalStackState) -> bool:
    if not daemon_is_alive(state):
        return False
    command = process_command_line(state.pid)
    return command is None or (DAEMON_MODULE in command and state.state_dir in command)


def _wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_is_running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


def _signal_and_wait(pid: int, timeout: float) -> bool:
    """SIGTERM, wait up to `timeout`; then SIGKILL and wait a little more. True once the process is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait_for_exit(pid, timeout):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return _wait_for_exit(pid, 5.0)


def clean_stale_state(state_dir: Path, state: LocalStackState) -> list[str]:
    """After a daemon died without cleaning up: stop the OpenBao it left running, remove its state file."""
    notes = []
    if _is_our_openbao(state) and state.openbao_pid is not None:
        stopped = _signal_and_wait(state.openbao_pid, 10.0)
        notes.append(
            f"stopped the OpenBao (pid {state.openbao_pid}) the crashed daemon left running"
            if stopped
            else f"could not stop the OpenBao (pid {state.openbao_pid}) the crashed daemon left running"
        )
    with contextlib.suppress(FileNotFoundError):
        state_file(state_dir).unlink()
    notes.append(f"removed the stale state file of daemon pid {state.pid}")
    return notes


# --- up ----------------------------------------------------------------------------------------------------


@dataclass
class UpResult:
    started: bool  # False: one was already running
    state: LocalStackState
    elapsed_seconds: float
    notes: list[str] = field(default_factory=list)


def _log_tail(state_dir: Path, lines: int = 15) -> str:
    try:
        text = log_file(state_dir).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def daemon_command(
    state_dir: Path, parameters: Mapping[str, str], time_scale: float | None, stack_name: str | None = None
) -> list[str]:
    command = [sys.executable, "-m", DAEMON_MODULE, "--state-dir", str(state_dir)]
    for name, value in parameters.items():
        command += ["--parameter", f"{name}={value}"]
    if time_scale is not None:
        command += ["--time-scale", str(time_scale)]
    if stack_name is not None:
        command += ["--stack-name", stack_name]
    return command


def _wait_until_ready(
    state_dir: Path, pid: int, process: subprocess.Popen[bytes] | None, timeout: float
) -> LocalStackState:
    deadline = time.monotonic() + timeout
    while True:
        state = read_state(state_dir)
        if state is not None and state.pid == pid and state.status == "ready":
            return state
        exited = process.poll() if process is not None else (None if pid_is_running(pid) else -1)
        if exited is not None:
            if exited == EXIT_ALREADY_RUNNING:
                raise LocalStackError(f"another local stack daemon took {state_dir} first: run `rescind local status`")
            tail = _log_tail(state_dir)
            raise LocalStackError(
                f"the local stack daemon exited (code {exited}) before it was ready; see {log_file(state_dir)}"
                + (f"\n{tail}" if tail else "")
            )
        if time.monotonic() > deadline:
            if process is not None:
                _signal_and_wait(process.pid, 15.0)  # the daemon we just started: stop it and what it started
            raise LocalStackError(f"the local stack was not ready within {timeout:.0f} s; see {log_file(state_dir)}")
        time.sleep(POLL_SECONDS)


def start_local_stack(
    state_dir: Path,
    *,
    parameters: Mapping[str, str] | None = None,
    time_scale: float | None = None,
    fresh: bool = False,
    timeout: float = DEFAULT_UP_TIMEOUT_SECONDS,
    stack_name: str | None = None,
) -> UpResult:
    """Start the daemon in the background and wait until it is ready; a running one is left as it is."""
    began = time.monotonic()
    notes: list[str] = []
    current = local_stack_status(state_dir)
    if current.condition in ("running", "starting") and current.state is not None:
        state = _wait_until_ready(state_dir, current.state.pid, None, timeout)
        notes = ["already running"] + (["--fresh ignored: stop it first with `rescind local down`"] if fresh else [])
        return UpResult(False, state, time.monotonic() - began, notes)
    if current.condition == "stale" and current.state is not None:
        notes += clean_stale_state(state_dir, current.state)
    if fresh:
        import shutil

        shutil.rmtree(openbao_dir(state_dir), ignore_errors=True)
        notes.append("OpenBao storage wiped (--fresh)")

    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with log_file(state_dir).open("ab") as log:
        # Its own session: Ctrl-C in the shell that ran `up` does not reach it, and it outlives `up`.
        process = subprocess.Popen(
            daemon_command(state_dir, parameters or {}, time_scale, stack_name),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=state_dir,
            start_new_session=True,
        )
    state = _wait_until_ready(state_dir, process.pid, process, timeout)
    return UpResult(True, state, time.monotonic() - began, notes)


# --- down --------------------------------------------------------------------------------------------------


@dataclass
class DownResult:
    was_running: bool
    stopped_pids: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    storage_wiped: bool = False


def stop_local_stack(
    state_dir: Path, *, wipe: bool = False, timeout: float = DEFAULT_DOWN_TIMEOUT_SECONDS
) -> DownResult:
    """SIGTERM the daemon named in the state file and wait for it (and its OpenBao) to go."""
    status = local_stack_status(state_dir)
    result = DownResult(was_running=status.condition in ("running", "starting"))
    state = status.state
    if status.condition == "stale" and state is not None:
        result.notes += clean_stale_state(state_dir, state)
    elif state is not None and status.condition in ("running", "starting"):
        if not _is_our_daemon(state):
            raise LocalStackError(
                f"pid {state.pid} holds the lock of {state_dir} but is not its daemon: stop it by hand"
            )
        if not _signal_and_wait(state.pid, timeout):
            raise LocalStackError(f"the local stack daemon (pid {state.pid}) did not stop, even after SIGKILL")
        result.stopped_pids.append(state.pid)
        if state.openbao_pid is not None:
            if _is_our_openbao(state):  # the daemon was killed before it could stop OpenBao
                result.notes += clean_stale_state(state_dir, state)
            if not pid_is_running(state.openbao_pid):
                result.stopped_pids.append(state.openbao_pid)
        with contextlib.suppress(FileNotFoundError):
            if (left := read_state(state_dir)) is not None and left.pid == state.pid:
                state_file(state_dir).unlink()
    if wipe:
        import shutil

        shutil.rmtree(openbao_dir(state_dir), ignore_errors=True)
        result.storage_wiped = True
    return result


# --- commands ------------------------------------------------------------------------------------------------


def _parse_parameters(values: Sequence[str]) -> dict[str, str]:
    parameters = {}
    for text in values:
        name, separator, value = text.partition("=")
        if not separator or not name:
            raise typer.BadParameter(f"expected Name=Value, got {text!r}", param_hint="--parameter")
        parameters[name] = value
    return parameters


def _say(text: str) -> None:
    _stderr.print(text, soft_wrap=True, highlight=False)


def _where(state: LocalStackState, state_dir: Path) -> None:
    _say(f"  moto (AWS)   {state.moto_endpoint}  (export AWS_ENDPOINT_URL={state.moto_endpoint})")
    _say(f"  OpenBao      {state.openbao_addr}  (root token in {state_file(state_dir)}, mode 0600)")
    _say(f"  region       {state.region}, account {state.account_id}")
    _say(f"  ledger       {state.ledger_table}")
    for logical_id, arn in state.state_machines.items():
        _say(f"  {logical_id}  {arn}")
    _say(f"  log          {state.log_file}")


@local_app.command("up")
def up_command(
    state_dir: StateDirOption = None,
    parameter: Annotated[
        list[str] | None,
        typer.Option("--parameter", "-p", help="Template parameter override, Name=Value (repeatable)."),
    ] = None,
    time_scale: Annotated[
        float | None, typer.Option("--time-scale", help="LOCAL-ONLY: multiply Retry and Wait sleeps (e.g. 0.01).")
    ] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start OpenBao from empty storage.")] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for ready.")
    ] = DEFAULT_UP_TIMEOUT_SECONDS,
    json_output: JsonOption = False,
) -> None:
    """Start the local stack in the background (or report the one already running)."""
    directory = resolve_state_dir(state_dir)
    parameters = _parse_parameters(parameter or [])
    try:
        if json_output:
            result = start_local_stack(
                directory, parameters=parameters, time_scale=time_scale, fresh=fresh, timeout=timeout
            )
        else:
            with _stderr.status(f"starting the local stack in {directory}"):
                result = start_local_stack(
                    directory, parameters=parameters, time_scale=time_scale, fresh=fresh, timeout=timeout
                )
    except LocalStackError as error:
        _say(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        _say(
            "interrupted: the daemon may still be starting in the background;"
            " see `rescind local status`, stop it with `rescind local down`"
        )
        raise typer.Exit(130) from None
    if json_output:
        document = {
            "status": "started" if result.started else "already_running",
            "state_dir": str(directory),
            "elapsed_seconds": round(result.elapsed_seconds, 2),
            "notes": result.notes,
            "state": result.state.public_view(),
        }
        typer.echo(json.dumps(document, indent=2))
        return
    for note in result.notes:
        if note != "already running":
            _say(f"  note: {note}")
    if result.started:
        _say(f"[green]local stack started[/] (pid {result.state.pid}) in {result.elapsed_seconds:.1f} s")
    else:
        _say(f"local stack already running (pid {result.state.pid})")
    _where(result.state, directory)


@local_app.command("down")
def down_command(
    state_dir: StateDirOption = None,
    wipe: Annotated[bool, typer.Option("--wipe", help="Also delete OpenBao's storage.")] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait after SIGTERM before SIGKILL.")
    ] = DEFAULT_DOWN_TIMEOUT_SECONDS,
    json_output: JsonOption = False,
) -> None:
    """Stop the local stack (SIGTERM to its daemon). OpenBao's storage is kept unless --wipe."""
    directory = resolve_state_dir(state_dir)
    try:
        result = stop_local_stack(directory, wipe=wipe, timeout=timeout)
    except LocalStackError as error:
        _say(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None
    if json_output:
        document = {
            "status": "stopped" if result.was_running else "not_running",
            "state_dir": str(directory),
            "stopped_pids": result.stopped_pids,
            "storage_wiped": result.storage_wiped,
            "notes": result.notes,
        }
        typer.echo(json.dumps(document, indent=2))
        return
    for note in result.notes:
        _say(f"  note: {note}")
    if result.was_running:
        _say(f"local stack stopped (pids {', '.join(map(str, result.stopped_pids))})")
    else:
        _say(f"no local stack was running in {directory}")
    if result.storage_wiped:
        _say("OpenBao storage wiped")


@local_app.command("seed")
def seed_command(state_dir: StateDirOption = None, json_output: JsonOption = False) -> None:
    """Seed the running local stack with the demo's estate (the README's examples act on it); safe to run twice.

    Each workload gets an identity entity, two tokens, an AppRole secret-id, a certificate, a KV secret and an IAM
    user with an access key, under the discovery conventions. Prints each workload's credential references in the
    form `rescind revoke --credential` takes. A workload already seeded is listed, not seeded again.
    """
    from rescind.models.refs import format_ref
    from rescind_cli.demo import ESTATE
    from rescind_cli.options import console_for
    from rescind_cli.targets import LocalStackTarget, TargetUnavailable
    from rescind_local.seed import prepare_vault, seed_workload

    try:
        target = LocalStackTarget.load(resolve_state_dir(state_dir))
    except TargetUnavailable as error:
        _say(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None
    vault, iam = target.vault(), target.client("iam")
    prepare_vault(vault)
    existing = {user["UserName"] for page in iam.get_paginator("list_users").paginate() for user in page["Users"]}
    seeded: list[dict[str, Any]] = []
    for workload in ESTATE:
        fresh = f"{workload.name}-deployer" not in existing
        if fresh:
            seed_workload(vault, iam, workload.name, workload.spiffe_id)
        request_refs = discover_references(target, workload.spiffe_id)
        seeded.append(
            {
                "workload_id": workload.spiffe_id,
                "seeded_now": fresh,
                "credentials": [format_ref(ref) for ref in request_refs],
            }
        )
    if json_output:
        typer.echo(json.dumps({"ok": True, "workloads": seeded}, indent=2))
        return
    out = console_for(highlight=False)
    for entry in seeded:
        state = "seeded" if entry["seeded_now"] else "already seeded"
        out.print(f"[bold]{entry['workload_id']}[/] ({state})")
        for reference in entry["credentials"]:
            out.print(f"  {reference}", markup=False)


def discover_references(target: Any, workload_id: str) -> list[Any]:
    """What live discovery finds for the workload, as `rescind plan` would."""
    from rescind.discovery import discover_workload_credentials

    return discover_workload_credentials(target.vault(), target.aws_factory(), workload_id, target.discovery_scope())


@local_app.command("status")
def status_command(state_dir: StateDirOption = None, json_output: JsonOption = False) -> None:
    """Show whether the local stack runs and where. Exits 1 unless it is running."""
    directory = resolve_state_dir(state_dir)
    status = local_stack_status(directory)
    if json_output:
        typer.echo(json.dumps(status.as_json(), indent=2))
    elif status.condition == "stopped":
        _say(f"no local stack in {directory}: start one with `rescind local up`")
    elif status.condition == "stale" and status.state is not None:
        _say(
            f"[red]stale[/]: the daemon (pid {status.state.pid}) died without cleaning up;"
            " `rescind local up` cleans up and starts a new one"
        )
    elif status.state is not None:
        answering = "answering" if status.moto_answering and status.openbao_health == 200 else "[red]not answering[/]"
        _say(f"local stack {status.condition} (pid {status.state.pid}), {answering}")
        _where(status.state, directory)
    raise typer.Exit(0 if status.condition == "running" else 1)
