"""The persistent local stack: one long-lived process that other processes (the `rescind` CLI) talk to.

    python -m rescind_local.daemon --state-dir .rescind-local [--parameter BlastRadiusCap=3] [--time-scale 0.01]

Normally started by `rescind local up` and stopped by `rescind local down` (SIGTERM). It runs:

- OpenBao in file mode (pebbledb storage under `<state dir>/openbao/`), a child process stopped by its PID.
  Its storage, unseal key and root token survive a restart of the daemon; `--wipe-on-exit` removes them.
- moto, in this process: `mock_aws` (via `local_aws()`) plus moto's ThreadedMotoServer on a free
  127.0.0.1 port. Both use the same module-level backends (`moto.backends.get_backend` returns the
  BackendDicts that the in-process mock uses, and the server's Step Functions picks the ASL-executing
  parser backend from the process-wide `default_user_config` that `mock_aws(config=...)` patched), so:
  * requests from other processes arrive over HTTP at the server;
  * calls made inside this process (Step Functions tasks invoking Lambda, handlers writing the ledger)
    go through mock_aws's botocore stubber to the same backends;
  * the class-level patches that `deploy_template_to_moto` installs (handlers in-process through
    `LambdaFunction._invoke_lambda`, the Step Functions fixes, EventBridge targets) apply to both.
- template.yaml, deployed onto that moto with `deploy_template_to_moto`, the functions pointed at the
  local OpenBao with its root token (VAULT_AUTH_METHOD=token: local only; deployed functions use AWS IAM auth).

The state file `<state dir>/state.json` (mode 0600) says where everything is; `rescind_local.target` reads it.
moto keeps its data in memory: a restarted daemon starts with empty tables and no executions.
The daemon holds an exclusive flock on `<state dir>/daemon.lock` while it lives, so a second daemon on the
same directory refuses to start, and a state file whose daemon died (the kernel dropped the lock) is stale.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from rescind_local.target import (
    LocalStackState,
    lock_file,
    log_file,
    openbao_dir,
    read_state,
    state_file,
    write_private_json,
)

logger = logging.getLogger("rescind_local.daemon")

EXIT_ALREADY_RUNNING = 3
EXIT_FAILED = 1
INIT_FILE_NAME = "init.json"  # beside OpenBao's storage: the unseal key and root token that storage needs
WATCH_INTERVAL_SECONDS = 0.5
LOCAL_VAULT_AWS_AUTH_ROLE = "rescind-local"  # a template parameter the local functions never use (token auth)


class StopRequested(BaseException):
    """SIGTERM or SIGINT arrived: unwind everything that was started (a BaseException, like SystemExit)."""


class DaemonAlreadyRunning(RuntimeError):
    """Another daemon holds this state directory's lock."""


@dataclass
class DaemonOptions:
    state_dir: Path
    parameters: Mapping[str, str] = field(default_factory=dict)
    time_scale: float | None = None
    stack_name: str = "rescind-local"
    wipe_on_exit: bool = False


# --- the lock -------------------------------------------------------------------------------------------


def acquire_daemon_lock(state_dir: Path) -> IO[bytes]:
    """An exclusive flock on daemon.lock, held until this process exits (even by SIGKILL)."""
    handle = lock_file(state_dir).open("a+b")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        running = read_state(state_dir)
        where = f" (pid {running.pid})" if running else ""
        raise DaemonAlreadyRunning(f"a local stack daemon already runs on {state_dir}{where}") from None
    return handle


# --- OpenBao on persistent storage ------------------------------------------------------------------------


def _init_file(state_dir: Path) -> Path:
    return openbao_dir(state_dir) / INIT_FILE_NAME


def start_openbao(state_dir: Path) -> Any:
    """LocalOpenBao in file mode under <state dir>/openbao, unsealed with the key saved at its first start."""
    from rescind_local.openbao import LocalOpenBao

    workdir = openbao_dir(state_dir)
    workdir.mkdir(mode=0o700, exist_ok=True)
    saved: dict[str, str] = {}
    init_path = _init_file(state_dir)
    if init_path.exists():
        saved = json.loads(init_path.read_text())
    elif (workdir / "data").exists() and any((workdir / "data").iterdir()):
        raise RuntimeError(
            f"OpenBao storage in {workdir / 'data'} has no {INIT_FILE_NAME} (its unseal key):"
            " run `rescind local up --fresh` to start from empty storage"
        )
    bao = LocalOpenBao(storage="file", workdir=workdir)
    if saved:
        # LocalOpenBao keeps the unseal key private and in memory; the daemon restores it from init.json.
        bao.root_token = saved["root_token"]
        bao._unseal_key = saved["unseal_key"]
    bao.start()
    if not saved:
        # The unseal key and root token of a local dev server's storage, kept beside it (0600) so that the
        # next `rescind local up` can unseal the same storage.
        write_private_json(init_path, {"unseal_key": bao._unseal_key, "root_token": bao.root_token})
    return bao


def wipe_openbao_storage(state_dir: Path) -> None:
    shutil.rmtree(openbao_dir(state_dir), ignore_errors=True)


# --- moto as an HTTP server, in this process ----------------------------------------------------------------


def _import_moto_server() -> Any:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as error:  # moto's server mode needs Flask, which plain moto does not install
        raise RuntimeError(
            f"moto's server mode cannot be imported ({error}): install flask and flask-cors (moto[server])"
        ) from error
    return ThreadedMotoServer


@contextlib.contextmanager
def moto_http_server() -> Iterator[str]:
    """moto's ThreadedMotoServer on 127.0.0.1, on a port the kernel picks (no probe-then-bind race)."""
    server_class = _import_moto_server()
    server = server_class(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _hide_outside_aws_settings() -> None:
    """An AWS_ENDPOINT_URL (or profile) from the caller's shell would send in-process calls past mock_aws."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            os.environ.pop(name, None)


# --- the state file ---------------------------------------------------------------------------------------


def _base_state(options: DaemonOptions, started_at: str) -> dict[str, Any]:
    return {
        "status": "starting",
        "pid": os.getpid(),
        "state_dir": str(options.state_dir),
        "log_file": str(log_file(options.state_dir)),
        "started_at": started_at,
        "stack_name": options.stack_name,
    }


def _ready_state(
    options: DaemonOptions,
    started_at: str,
    bao: Any,
    moto_endpoint: str,
    stack: Any,
    function_urls: dict[str, str] | None = None,
) -> dict[str, Any]:
    def physical_ids(*types: str) -> dict[str, str]:
        return {
            logical: resource.ref for logical, resource in stack.resources.items() if resource.resource_type in types
        }

    tables = physical_ids("AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable")
    topics = physical_ids("AWS::SNS::Topic")
    document = {
        **_base_state(options, started_at),
        "status": "ready",
        "region": stack.region,
        "account_id": stack.account_id,
        "moto_endpoint": moto_endpoint,
        "openbao_addr": bao.addr,
        "openbao_pid": bao.pid,
        "openbao_config": str(bao.config_file),
        "root_token": bao.root_token,
        "ledger_table": tables.get("LedgerTable", ""),
        "inventory_table": tables.get("InventoryTable", ""),
        "topic_arn": topics.get("NotificationTopic", next(iter(topics.values()), "")),
        "state_machines": dict(stack.state_machines),
        "functions": {logical: spec.function_name for logical, spec in stack.functions.items()},
        "function_urls": dict(function_urls or {}),
        "tables": tables,
        "topics": topics,
        "queues": physical_ids("AWS::SQS::Queue"),
    }
    LocalStackState.model_validate(document)  # the daemon never writes a file its readers would reject
    return document


def _remove_own_state_file(state_dir: Path) -> None:
    current = read_state(state_dir)
    if current is None or current.pid == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            state_file(state_dir).unlink()


# --- running ---------------------------------------------------------------------------------------------


def _install_signal_handlers() -> None:
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            logger.info("signal %s while stopping: ignored", signal.Signals(signum).name)
            return
        stopping = True
        logger.info("signal %s: stopping", signal.Signals(signum).name)
        raise StopRequested

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def run_daemon(options: DaemonOptions) -> int:
    """Start everything, write the ready state, serve until SIGTERM, then stop everything. Returns the exit code."""
    state_dir = options.state_dir
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        lock = acquire_daemon_lock(state_dir)
    except DaemonAlreadyRunning as error:
        logger.error("%s", error)
        return EXIT_ALREADY_RUNNING
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    exit_code = 0
    try:
        _install_signal_handlers()
        with ExitStack() as running:
            running.callback(_remove_own_state_file, state_dir)
            write_private_json(state_file(state_dir), _base_state(options, started_at))
            _serve(options, started_at, running)
    except StopRequested:
        logger.info("stopped")
    except Exception:
        logger.exception("the local stack failed")
        exit_code = EXIT_FAILED
    finally:
        if options.wipe_on_exit:
            wipe_openbao_storage(state_dir)
            logger.info("OpenBao storage wiped")
        lock.close()
    return exit_code


def _serve(options: DaemonOptions, started_at: str, running: ExitStack) -> None:
    from rescind_local.aws import local_aws
    from rescind_local.function_urls import serve_function_urls
    from rescind_local.stack import deploy_template_to_moto

    _hide_outside_aws_settings()
    _import_moto_server()  # fail before starting anything
    began = time.monotonic()
    bao = start_openbao(options.state_dir)
    running.callback(_stop_openbao, bao)
    logger.info("OpenBao (pid %s) on %s, storage %s", bao.pid, bao.addr, bao.data_dir)

    running.enter_context(local_aws())
    stack = deploy_template_to_moto(
        stack_name=options.stack_name,
        parameters={"VaultAddr": bao.addr, "VaultAwsAuthRole": LOCAL_VAULT_AWS_AUTH_ROLE, **options.parameters},
        function_environment={"VAULT_AUTH_METHOD": "token", "VAULT_TOKEN": bao.root_token, "VAULT_ADDR": bao.addr},
        time_scale=options.time_scale,
    )
    running.callback(stack.stop)
    logger.info("template deployed: %d functions, %d state machines", len(stack.functions), len(stack.state_machines))

    moto_endpoint = running.enter_context(moto_http_server())
    logger.info("moto on %s", moto_endpoint)
    function_urls = running.enter_context(serve_function_urls(stack))
    logger.info("function URLs (AWS_IAM) on %s", ", ".join(function_urls.values()) or "none")

    write_private_json(
        state_file(options.state_dir), _ready_state(options, started_at, bao, moto_endpoint, stack, function_urls)
    )
    logger.info("ready in %.1f s (pid %s)", time.monotonic() - began, os.getpid())
    while True:
        time.sleep(WATCH_INTERVAL_SECONDS)
        if not bao.is_running:
            raise RuntimeError(f"OpenBao (pid {bao.pid}) exited on its own; see {bao.server_log}")


def _stop_openbao(bao: Any) -> None:
    pid = bao.pid
    bao.stop()  # SIGTERM to its PID; the workdir is ours, so LocalOpenBao leaves the storage in place
    logger.info("OpenBao (pid %s) stopped", pid)


# --- command line -----------------------------------------------------------------------------------------


def _parse_parameter(text: str) -> tuple[str, str]:
    name, separator, value = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"expected Name=Value, got {text!r}")
    return name, value


def parse_arguments(argv: Sequence[str] | None = None) -> DaemonOptions:
    parser = argparse.ArgumentParser(prog="python -m rescind_local.daemon", description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", required=True, type=Path, help="where the state file, logs and storage live")
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        type=_parse_parameter,
        metavar="NAME=VALUE",
        help="a template parameter override (repeatable), e.g. BlastRadiusCap=3",
    )
    parser.add_argument("--time-scale", type=float, default=None, help="LOCAL-ONLY: scale Retry/Wait sleeps")
    parser.add_argument("--stack-name", default="rescind-local")
    parser.add_argument("--wipe-on-exit", action="store_true", help="remove OpenBao's storage when stopping")
    arguments = parser.parse_args(argv)
    return DaemonOptions(
        state_dir=arguments.state_dir.expanduser().resolve(),
        parameters=dict(arguments.parameter),
        time_scale=arguments.time_scale,
        stack_name=arguments.stack_name,
        wipe_on_exit=arguments.wipe_on_exit,
    )


def _configure_logging(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Two handlers on the same file: Powertools' Logger(service="rescind") adds, to every root handler, a filter
    # dropping records whose logger name contains "rescind", so the daemon's own logger keeps its own handler.
    own, libraries = logging.FileHandler(log_file(state_dir)), logging.FileHandler(log_file(state_dir))
    own.setFormatter(formatter)
    libraries.setFormatter(formatter)
    logger.addHandler(own)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    root = logging.getLogger()
    root.addHandler(libraries)
    root.setLevel(logging.WARNING)  # libraries: warnings and errors only
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # werkzeug sets INFO (a line per request) if unset


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_arguments(argv)
    _configure_logging(options.state_dir)
    return run_daemon(options)


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything was stopped above; a leftover non-daemon thread (an execution mid-task) must not keep the
    # process alive after SIGTERM.
    os._exit(code)
