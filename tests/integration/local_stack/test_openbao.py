"""LocalOpenBao in both storage modes: healthy, audited, and (file mode) surviving a restart and a crash.

These tests start their own servers: restarts and kills must never touch the session's shared one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import hvac
import hvac.exceptions
import pytest
import requests

from rescind_local import LocalOpenBao
from rescind_local.openbao import PERSISTENT_BACKEND, StorageMode

SECRET_VALUE = "contract-test-value-5b1e9c"


def client_for(server: LocalOpenBao, token: str | None = None) -> hvac.Client:
    return hvac.Client(url=server.addr, token=token or server.root_token, timeout=5)


def health(server: LocalOpenBao) -> requests.Response:
    return requests.get(f"{server.addr}/v1/sys/health", timeout=2)


def pid_is_alive(pid: int) -> bool:
    """True while a process with this PID exists (and is not a zombie: stopped servers are reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def processes_using(path: Path) -> list[int]:
    """PIDs whose command line names `path` (the server's config file): finds a server we lost track of."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(path) in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def write_kv(server: LocalOpenBao, path: str) -> None:
    client_for(server).secrets.kv.v2.create_or_update_secret(path, secret={"value": SECRET_VALUE}, mount_point="secret")


def read_kv(server: LocalOpenBao, path: str) -> str:
    response = client_for(server).secrets.kv.v2.read_secret_version(
        path, mount_point="secret", raise_on_deleted_version=True
    )
    value: str = response["data"]["data"]["value"]
    return value


@pytest.fixture(scope="module", params=["dev", "file"])
def server(request: pytest.FixtureRequest) -> Iterator[LocalOpenBao]:
    """One server per mode for the tests that leave it running (a graceful stop takes OpenBao ~0.5 s)."""
    storage: StorageMode = request.param
    with LocalOpenBao(storage=storage) as started:
        yield started


@pytest.fixture
def file_server() -> Iterator[LocalOpenBao]:
    with LocalOpenBao(storage="file") as started:
        yield started


# --- both modes --------------------------------------------------------------------------------


def test_the_server_is_healthy_with_a_root_token_and_kv_v2_at_secret(server: LocalOpenBao) -> None:
    # Given a started server, Then it is initialised, unsealed and active
    answer = health(server)
    assert answer.status_code == 200
    assert answer.json()["initialized"] is True
    assert answer.json()["sealed"] is False
    # and its root token is a root token, and secret/ is KV v2, as in dev mode
    vault = client_for(server)
    assert vault.auth.token.lookup_self()["data"]["policies"] == ["root"]
    assert vault.sys.list_mounted_secrets_engines()["data"]["secret/"]["options"] == {"version": "2"}
    write_kv(server, "contract/kv")
    assert read_kv(server, "contract/kv") == SECRET_VALUE


def test_the_storage_mode_is_the_one_asked_for(server: LocalOpenBao) -> None:
    status = requests.get(f"{server.addr}/v1/sys/seal-status", timeout=2).json()
    expected = "inmem" if server.storage == "dev" else PERSISTENT_BACKEND
    assert status["storage_type"] == expected


def test_the_audit_log_records_requests_without_their_values(server: LocalOpenBao) -> None:
    # When a secret is written
    write_kv(server, "contract/audited")

    # Then the audit device declared in the config recorded the request, with the value HMAC'd
    audit = server.audit_log.read_text()
    assert "secret/data/contract/audited" in audit
    assert SECRET_VALUE not in audit


def test_the_root_token_is_not_in_the_repr(server: LocalOpenBao) -> None:
    assert server.root_token not in repr(server)


def test_a_restarted_server_answers_on_the_same_port_with_a_new_pid(server: LocalOpenBao) -> None:
    port, old_pid = server.port, server.pid
    assert old_pid is not None

    server.restart()

    assert server.port == port
    assert server.pid is not None
    assert server.pid != old_pid
    assert not pid_is_alive(old_pid)
    assert health(server).status_code == 200


def test_a_dev_server_loses_its_state_on_restart() -> None:
    # Given dev mode, which keeps everything in memory
    with LocalOpenBao() as dev:
        write_kv(dev, "contract/forgotten")

        # When it restarts, Then the same root token works but the secret is gone
        dev.restart()
        with pytest.raises(hvac.exceptions.InvalidPath):
            read_kv(dev, "contract/forgotten")


def test_stop_ends_only_its_own_process_and_leaves_nothing_behind() -> None:
    # Given two servers, one of each mode
    with LocalOpenBao(storage="file") as neighbour:
        first = LocalOpenBao(storage="file").start()
        pid, workdir = first.pid, first.workdir
        assert pid is not None
        assert workdir is not None

        # When the first one stops
        first.stop()

        # Then its process is gone (and reaped), its workdir (storage, logs, config) is removed,
        assert not pid_is_alive(pid)
        assert first.process is None
        assert not workdir.exists()
        # and the neighbour still answers
        assert neighbour.pid is not None
        assert pid_is_alive(neighbour.pid)
        assert health(neighbour).status_code == 200


def test_stop_after_kill_and_stop_twice_are_harmless(file_server: LocalOpenBao) -> None:
    file_server.kill()
    file_server.stop()
    file_server.stop()
    assert file_server.process is None


def test_a_storage_mode_that_does_not_exist_is_refused() -> None:
    with pytest.raises(ValueError, match="storage must be"):
        LocalOpenBao(storage="raft")  # type: ignore[arg-type]


# --- file mode: state survives -----------------------------------------------------------------


def test_a_kv_secret_and_a_token_survive_a_restart(file_server: LocalOpenBao) -> None:
    # Given a secret, a live token and a revoked token
    write_kv(file_server, "contract/durable")
    vault = client_for(file_server)
    live = vault.auth.token.create(policies=["default"], ttl="1h")["auth"]
    revoked = vault.auth.token.create(policies=["default"], ttl="1h")["auth"]
    vault.auth.token.revoke_accessor(revoked["accessor"])
    root_token = file_server.root_token

    # When the server restarts
    file_server.restart()

    # Then the root token is the same, the secret reads back, the live token still works by use,
    assert file_server.root_token == root_token
    assert read_kv(file_server, "contract/durable") == SECRET_VALUE
    assert (
        client_for(file_server, live["client_token"]).auth.token.lookup_self()["data"]["accessor"] == (live["accessor"])
    )
    # and the revoked token stays dead
    with pytest.raises(hvac.exceptions.Forbidden):
        client_for(file_server, revoked["client_token"]).auth.token.lookup_self()


def test_a_killed_server_restarts_unsealed_with_its_state(file_server: LocalOpenBao) -> None:
    # Given a secret, and a crash (SIGKILL: no shutdown at all)
    write_kv(file_server, "contract/crash")
    pid = file_server.pid
    assert pid is not None
    file_server.kill()

    # Then the process is gone and the address refuses connections
    assert not pid_is_alive(pid)
    assert not file_server.is_running
    with pytest.raises(requests.ConnectionError):
        health(file_server)

    # When it restarts, Then it is unsealed and active on the same port, and the secret is there
    file_server.restart()
    answer = health(file_server)
    assert answer.status_code == 200
    assert answer.json()["sealed"] is False
    assert read_kv(file_server, "contract/crash") == SECRET_VALUE


def test_kill_ends_only_its_own_process(file_server: LocalOpenBao) -> None:
    with LocalOpenBao() as neighbour:
        file_server.kill()
        assert neighbour.pid is not None
        assert pid_is_alive(neighbour.pid)
        assert health(neighbour).status_code == 200


def test_the_unseal_key_and_root_token_are_kept_in_memory_only(file_server: LocalOpenBao) -> None:
    # Given a file-mode server that was initialised, used and restarted
    unseal_key = file_server._unseal_key
    assert unseal_key
    write_kv(file_server, "contract/memory")
    file_server.restart()

    # Then neither the unseal key nor the root token is in any file of its workdir (storage, logs, config)
    assert file_server.workdir is not None
    for path in file_server.workdir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert unseal_key.encode() not in content, path
            assert file_server.root_token.encode() not in content, path


def test_storage_initialised_by_another_object_is_refused_and_nothing_is_left_running(
    file_server: LocalOpenBao, tmp_path: Path
) -> None:
    # Given the storage of a file-mode server, stopped, whose unseal key lives in that object only
    assert file_server.workdir is not None
    storage_copy = tmp_path / "copy"
    file_server.kill()
    os.makedirs(storage_copy)
    os.rename(file_server.data_dir, storage_copy / "data")

    # When a new object starts on it, Then it refuses (it cannot unseal)
    stranger = LocalOpenBao(storage="file", workdir=storage_copy)
    with pytest.raises(RuntimeError, match="unseal key is unknown"):
        stranger.start()

    # and it stopped the process it started, and kept the workdir it was given
    assert stranger.process is None
    assert processes_using(stranger.config_file) == []
    assert (storage_copy / "data").exists()
