"""The persistent local stack as another process sees it: its state file, and clients pointed at it.

`rescind_local.daemon` runs OpenBao and moto (as an HTTP server) in one long-lived process and describes
them in `<state dir>/state.json`. CLI commands, which run in other processes, load that file:

    target = LocalTarget.load()                      # .rescind-local/ or RESCIND_LOCAL_DIR
    sfn = target.boto3_client("stepfunctions")       # endpoint_url = the daemon's moto server
    vault = target.vault_client()                    # the daemon's OpenBao, root token
    target.state_machine_arn("OffboardingStateMachine")

This module imports neither boto3 nor hvac until a client is asked for, so a CLI's --help stays fast.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import hvac

STATE_DIR_ENV = "RESCIND_LOCAL_DIR"
DEFAULT_STATE_DIR_NAME = ".rescind-local"
STATE_FILE_NAME = "state.json"
LOCK_FILE_NAME = "daemon.lock"
LOG_FILE_NAME = "daemon.log"
OPENBAO_DIR_NAME = "openbao"
STATE_FORMAT_VERSION = 1

# moto accepts any credentials; these are the same fake ones `local_aws()` sets in-process.
FAKE_AWS_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "aws_session_token": "testing",
}

DaemonStatus = Literal["starting", "ready"]


class LocalStackNotRunning(RuntimeError):
    """No live local stack daemon behind the state directory. The message says what to run."""


class LocalStackState(BaseModel):
    """The daemon's state file. Written by the daemon only; everyone else reads it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    format_version: int = STATE_FORMAT_VERSION
    status: DaemonStatus
    pid: int
    state_dir: str
    log_file: str
    started_at: str
    stack_name: str = ""
    region: str = ""
    account_id: str = ""
    moto_endpoint: str = ""
    openbao_addr: str = ""
    openbao_pid: int | None = None
    openbao_config: str = ""
    # The root token of a local, throw-away OpenBao server (never a real Vault's): the file is mode 0600.
    root_token: str = Field(default="", repr=False)
    ledger_table: str = ""
    inventory_table: str = ""
    topic_arn: str = ""
    state_machines: dict[str, str] = Field(default_factory=dict)
    functions: dict[str, str] = Field(default_factory=dict)
    # Function URLs with AuthType AWS_IAM, served by the daemon (rescind_local.function_urls).
    function_urls: dict[str, str] = Field(default_factory=dict)
    tables: dict[str, str] = Field(default_factory=dict)
    topics: dict[str, str] = Field(default_factory=dict)
    queues: dict[str, str] = Field(default_factory=dict)

    def public_view(self) -> dict[str, Any]:
        """Everything but the root token: what `rescind local status --json` prints."""
        return self.model_dump(mode="json", exclude={"root_token"})


# --- where things are ---------------------------------------------------------------------------------


def default_state_dir() -> Path:
    """RESCIND_LOCAL_DIR, else `.rescind-local/` under the current directory; always absolute."""
    configured = os.environ.get(STATE_DIR_ENV)
    return Path(configured).expanduser().resolve() if configured else (Path.cwd() / DEFAULT_STATE_DIR_NAME).resolve()


def state_file(state_dir: Path) -> Path:
    return state_dir / STATE_FILE_NAME


def lock_file(state_dir: Path) -> Path:
    return state_dir / LOCK_FILE_NAME


def log_file(state_dir: Path) -> Path:
    return state_dir / LOG_FILE_NAME


def openbao_dir(state_dir: Path) -> Path:
    return state_dir / OPENBAO_DIR_NAME


def read_state(state_dir: Path) -> LocalStackState | None:
    """The state file, or None when there is none (or it is being replaced and unreadable for a moment)."""
    try:
        text = state_file(state_dir).read_text()
    except FileNotFoundError:
        return None
    try:
        return LocalStackState.model_validate_json(text)
    except ValueError:
        return None


def write_private_json(path: Path, document: dict[str, Any]) -> None:
    """Write atomically (temp file + rename), created mode 0600 from the start: it may hold a token."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")
    os.replace(temporary, path)


# --- is it alive? ---------------------------------------------------------------------------------------


def pid_is_running(pid: int) -> bool:
    """True while the process exists and is not a zombie (a zombie child is reaped here if it is ours)."""
    if pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        reaped, _ = os.waitpid(pid, os.WNOHANG)  # only succeeds for our own children
        if reaped == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        # Field 3 is the state; 'Z' (zombie) and 'X' (dead) mean it has exited.
        return stat.read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    return True


def process_command_line(pid: int) -> list[str] | None:
    """The process's argv from /proc, or None where /proc is not available or the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def daemon_lock_is_held(state_dir: Path) -> bool:
    """The daemon holds an exclusive flock on daemon.lock for its whole life; the kernel drops it on exit."""
    path = lock_file(state_dir)
    if not path.exists():
        return False
    descriptor = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return True
        raise
    else:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return False
    finally:
        os.close(descriptor)


def daemon_is_alive(state: LocalStackState) -> bool:
    """The PID in the state file runs, and it (not a process that reused the PID) holds the daemon's lock."""
    return pid_is_running(state.pid) and daemon_lock_is_held(Path(state.state_dir))


# --- the target ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalTarget:
    """A running local stack, loaded from its state file, with clients pointed at it."""

    state_dir: Path
    state: LocalStackState

    @classmethod
    def load(cls, state_dir: Path | str | None = None, *, require_alive: bool = True) -> LocalTarget:
        """Read the state file of the daemon behind `state_dir` (default: `default_state_dir()`).

        Raises LocalStackNotRunning, with what to run next, when there is no state file, the daemon is still
        starting, or the daemon has died (a stale state file).
        """
        directory = Path(state_dir).expanduser().resolve() if state_dir is not None else default_state_dir()
        state = read_state(directory)
        if state is None:
            raise LocalStackNotRunning(
                f"no local stack is running in {directory}: start one with `rescind local up`"
                f" (or set {STATE_DIR_ENV} to the directory of a running one)"
            )
        if require_alive and not daemon_is_alive(state):
            raise LocalStackNotRunning(
                f"the local stack in {directory} is not running (pid {state.pid} is gone; stale state file):"
                " run `rescind local up` to start it again"
            )
        if require_alive and state.status != "ready":
            raise LocalStackNotRunning(
                f"the local stack in {directory} is still starting: wait for `rescind local up` to finish"
            )
        return cls(state_dir=directory, state=state)

    # --- where things are ---

    @property
    def moto_endpoint(self) -> str:
        return self.state.moto_endpoint

    @property
    def openbao_addr(self) -> str:
        return self.state.openbao_addr

    @property
    def region(self) -> str:
        return self.state.region

    @property
    def account_id(self) -> str:
        return self.state.account_id

    @property
    def ledger_table(self) -> str:
        return self.state.ledger_table

    @property
    def inventory_table(self) -> str:
        return self.state.inventory_table

    @property
    def topic_arn(self) -> str:
        return self.state.topic_arn

    def state_machine_arn(self, logical_id: str) -> str:
        try:
            return self.state.state_machines[logical_id]
        except KeyError:
            raise KeyError(f"the local stack has no state machine {logical_id!r}") from None

    def function_name(self, logical_id: str) -> str:
        try:
            return self.state.functions[logical_id]
        except KeyError:
            raise KeyError(f"the local stack has no function {logical_id!r}") from None

    # --- clients ---

    def aws_environment(self) -> dict[str, str]:
        """Variables that point any AWS SDK or the aws CLI at the local moto server."""
        return {
            "AWS_ENDPOINT_URL": self.moto_endpoint,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": FAKE_AWS_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": FAKE_AWS_CREDENTIALS["aws_secret_access_key"],
            "AWS_SESSION_TOKEN": FAKE_AWS_CREDENTIALS["aws_session_token"],
        }

    def boto3_session(self) -> Any:
        """A session with the fake credentials and the stack's region (no profile is read)."""
        import boto3
        import botocore.session

        # An AWS_PROFILE in the caller's shell names a real account's profile, irrelevant here (and fatal
        # when it does not exist): this session never reads one.
        botocore_session = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
        return boto3.session.Session(
            botocore_session=botocore_session,
            region_name=self.region,
            aws_access_key_id=FAKE_AWS_CREDENTIALS["aws_access_key_id"],
            aws_secret_access_key=FAKE_AWS_CREDENTIALS["aws_secret_access_key"],
            aws_session_token=FAKE_AWS_CREDENTIALS["aws_session_token"],
        )

    def boto3_client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for `service` whose every call goes to the daemon's moto server."""
        return self.boto3_session().client(service, endpoint_url=self.moto_endpoint, **kwargs)

    def vault_client(self, *, timeout: float = 10.0) -> hvac.Client:
        """An hvac client on the daemon's OpenBao, with its root token."""
        import hvac

        return hvac.Client(url=self.openbao_addr, token=self.state.root_token, timeout=timeout)
