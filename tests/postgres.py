"""A real PostgreSQL for the tests, from PyPI `pgserver`'s binaries (no Docker, no system install).

pgserver's own server listens on a Unix socket with trust auth; a rotation test needs passwords that are
really checked, so this fixture runs the same binaries itself: `initdb` with scram-sha-256 for every
connection, then `postgres` on 127.0.0.1 at a free port, in a tmp dir, stopped by its PID at the end.

API: the session-scoped `postgres_server` fixture yields a `PostgresServer` (host, port, superuser, password,
and `can_log_in(user, password) -> bool`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

START_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    superuser: str
    password: str
    pid: int

    def connect(self, user: str, password: str, database: str = "postgres") -> object:
        import pg8000.native

        return pg8000.native.Connection(
            user, host=self.host, port=self.port, password=password, database=database, timeout=10
        )

    def can_log_in(self, user: str, password: str) -> bool:
        """Whether PostgreSQL accepts this password for this role (a real login, over TCP)."""
        import pg8000.exceptions

        try:
            connection = self.connect(user, password)
        except pg8000.exceptions.DatabaseError as error:
            if error.args and isinstance(error.args[0], dict) and error.args[0].get("C") == "28P01":
                return False  # invalid_password
            raise
        connection.close()  # type: ignore[attr-defined]
        return True

    def run_as_superuser(self, sql: str, **params: object) -> list[list[object]]:
        connection = self.connect(self.superuser, self.password)
        try:
            return list(connection.run(sql, **params) or [])  # type: ignore[attr-defined]
        finally:
            connection.close()  # type: ignore[attr-defined]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_as(system_user: str | None) -> dict[str, object]:
    return {"user": system_user} if system_user else {}


def start_postgres(data_root: Path) -> tuple[PostgresServer, subprocess.Popen[bytes]]:
    from pgserver._commands import POSTGRES_BIN_PATH
    from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

    system_user = None
    data_root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:  # postgres refuses to run as root: run it as pgserver's own system user
        system_user = "pgserver"
        ensure_user_exists(system_user)
        ensure_prefix_permissions(data_root)
        shutil.chown(data_root, system_user, system_user)
    password = secrets.token_urlsafe(16)
    pwfile = data_root / "pwfile"
    pwfile.write_text(password + "\n")
    pgdata, sockets, log = data_root / "pgdata", data_root / "sockets", data_root / "postgres.log"
    sockets.mkdir()
    if system_user:
        shutil.chown(pwfile, system_user, system_user)
        shutil.chown(sockets, system_user, system_user)
    subprocess.run(  # noqa: S603 - pgserver's own initdb, fixed arguments
        [
            str(POSTGRES_BIN_PATH / "initdb"),
            "-D",
            str(pgdata),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "--encoding=utf8",
        ],
        check=True,
        capture_output=True,
        **_run_as(system_user),  # type: ignore[call-overload]
    )
    port = _free_port()
    with open(log, "wb") as log_file:
        process = subprocess.Popen(  # noqa: S603 - pgserver's own postgres, fixed arguments
            [
                str(POSTGRES_BIN_PATH / "postgres"),
                "-D",
                str(pgdata),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-k",
                str(sockets),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            **_run_as(system_user),  # type: ignore[call-overload]
        )
    server = PostgresServer(host="127.0.0.1", port=port, superuser="postgres", password=password, pid=process.pid)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            if server.can_log_in("postgres", password):
                return server, process
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_postgres(process)
                raise RuntimeError(f"PostgreSQL did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.2)


def stop_postgres(process: subprocess.Popen[bytes]) -> None:
    """Fast shutdown of the postmaster we started (by its PID), then wait for it."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    server, process = start_postgres(tmp_path_factory.mktemp("postgres"))
    try:
        yield server
    finally:
        stop_postgres(process)
