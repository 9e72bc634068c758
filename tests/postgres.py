"""A real PostgreSQL for the tests, from the binaries the `pgserver` wheel ships.

`postgres_server` (session scope) initialises a data directory in a temporary folder, starts `postgres` on a
free port bound to 127.0.0.1 with password authentication, and stops it by its PID at the end. Import the
fixture into a test module (`from tests.postgres import postgres_server`) to use it.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from rescind_local.openbao import find_free_port

_START_TIMEOUT_SECONDS = 30
_STOP_TIMEOUT_SECONDS = 15


def _bin(name: str) -> str:
    from pgserver._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _system_user(root: Path) -> str | None:
    """PostgreSQL refuses to run as root: then it runs as pgserver's own `pgserver` user, as pgserver does."""
    if os.geteuid() != 0:
        return None
    import stat

    from pgserver._commands import POSTGRES_BIN_PATH
    from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    user = "pgserver"
    entry = ensure_user_exists(user)
    assert entry is not None
    ensure_prefix_permissions(root)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, stat.S_IXGRP | stat.S_IXOTH | readable)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
    for path in (root, *root.rglob("*")):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return user


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    superuser: str
    password: str
    pid: int

    def connect(self, user: str | None = None, password: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=user or self.superuser,
            password=password if password is not None else self.password,
            dbname="postgres",
            connect_timeout=5,
            autocommit=True,
        )

    def can_log_in(self, user: str, password: str) -> bool:
        """Whether PostgreSQL accepts this user and password over TCP (scram-sha-256)."""
        try:
            with self.connect(user, password) as connection:
                connection.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def role_exists(self, user: str) -> bool:
        with self.connect() as connection:
            row = connection.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
        return bool(row and row[0])

    def execute(self, statement: str) -> None:
        """Run one statement as the superuser (test set-up only: the statement is the test's own text)."""
        with self.connect() as connection:
            connection.execute(statement.encode())

    @property
    def connection_url(self) -> str:
        """The templated URL OpenBao's database engine takes: it fills in the username and password itself."""
        return f"postgresql://{{{{username}}}}:{{{{password}}}}@{self.host}:{self.port}/postgres?sslmode=disable"


def _wait_until_accepting(server: PostgresServer, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited with {process.returncode}: {log.read_text()[-2000:]}")
        if server.can_log_in(server.superuser, server.password):
            return
        time.sleep(0.2)
    tail = log.read_text()[-2000:]
    raise RuntimeError(f"postgres did not accept connections within {_START_TIMEOUT_SECONDS}s: {tail}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT) of the postmaster we started, by its PID; SIGKILL if it hangs."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGINT)
    try:
        process.wait(_STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(_STOP_TIMEOUT_SECONDS)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with tempfile.TemporaryDirectory(prefix="rescind-pg-") as folder:
        root = Path(folder)
        data, sockets, log = root / "data", root / "sockets", root / "postgres.log"
        sockets.mkdir()
        password = secrets.token_urlsafe(18)
        password_file = root / "superuser-password"
        password_file.write_text(password)
        user = _system_user(root)
        subprocess.run(  # noqa: S603 - the wheel's own initdb, arguments of our making
            [_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={password_file}"],
            check=True,
            capture_output=True,
            user=user,
        )
        password_file.unlink()
        port = find_free_port()
        with log.open("wb") as log_stream:
            process = subprocess.Popen(  # noqa: S603 - the wheel's own postgres, arguments of our making
                [_bin("postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(sockets)],
                stdout=log_stream,
                stderr=subprocess.STDOUT,
                user=user,
            )
        server = PostgresServer(host="127.0.0.1", port=port, superuser="postgres", password=password, pid=process.pid)
        try:
            _wait_until_accepting(server, process, log)
            yield server
        finally:
            _stop(process)
