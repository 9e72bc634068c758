"""The persistent local stack: a daemon process started by `rescind local up`, used from this (another)
process through LocalTarget, and stopped by `rescind local down`.

The daemon is a real subprocess (a real OpenBao child, moto's HTTP server, the template deployed, handlers
in-process in the daemon); this test process reaches it only over HTTP.
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
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
from typer.testing import CliRunner

from rescind.ledger import DynamoDbLedger, IncidentStatus, Trigger
from rescind.models import Outcome
from rescind.offboarding.types import offboarding_execution_name
from rescind.response.types import ResponseRequest
from rescind_cli.local import local_app, stop_local_stack
from rescind_local.daemon import EXIT_ALREADY_RUNNING
from rescind_local.seed import prepare_vault, seed_workload
from rescind_local.stepfunctions import wait_for_execution
from rescind_local.target import LocalStackNotRunning, LocalTarget, pid_is_running, read_state, state_file

pytestmark = pytest.mark.timeout(120)

UP_TIMEOUT = "60"


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """A state directory whose daemon (and its OpenBao) is stopped at the end, whatever the test did."""
    directory = tmp_path / "stack"
    yield directory
    left = read_state(directory)
    with contextlib.suppress(Exception):
        stop_local_stack(directory, timeout=10)
    if left is not None and left.openbao_pid and pid_is_running(left.openbao_pid):
        os.kill(left.openbao_pid, signal.SIGKILL)  # the OpenBao this test's daemon started


def cli(*arguments: str) -> tuple[int, dict[str, Any]]:
    """Run `rescind local ...` with --json; returns (exit code, the parsed document)."""
    result = CliRunner().invoke(local_app, [*arguments, "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)


def up(state_dir: Path) -> tuple[int, dict[str, Any]]:
    return cli("up", "--state-dir", str(state_dir), "--time-scale", "0.01", "--timeout", UP_TIMEOUT)


def port_is_open(url: str) -> bool:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while pid_is_running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def offboarding_request(spiffe_id: str) -> ResponseRequest:
    event_id = str(uuid.uuid4())
    return ResponseRequest(
        incident_id=offboarding_execution_name(spiffe_id, event_id),
        workload_id=spiffe_id,
        reason="workload terminated",
        trigger=Trigger(source="rescind", detail_type="Workload Terminated", event_id=event_id, workload_id=spiffe_id),
        terminated_at=datetime.now(UTC),
    )


def test_the_daemon_serves_another_process_and_stops_cleanly(state_dir: Path) -> None:
    # Given the local stack started in the background
    code, started = up(state_dir)
    assert code == 0, started
    assert started["status"] == "started"
    assert "root_token" not in started["state"]  # printed output never carries the token
    target = LocalTarget.load(state_dir)
    assert target.state.pid == started["state"]["pid"] != os.getpid()
    assert state_file(state_dir).stat().st_mode & 0o777 == 0o600
    assert target.moto_endpoint.startswith("http://127.0.0.1:")

    # And a second `up` finds it running, and a second daemon on the same directory refuses to start
    code, again = up(state_dir)
    assert (code, again["status"], again["state"]["pid"]) == (0, "already_running", target.state.pid)
    second = subprocess.run(  # noqa: S603 (this interpreter, our module)
        [sys.executable, "-m", "rescind_local.daemon", "--state-dir", str(state_dir)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert second.returncode == EXIT_ALREADY_RUNNING
    code, status = cli("status", "--state-dir", str(state_dir))
    assert (code, status["status"], status["moto_answering"], status["openbao_health"]) == (0, "running", True, 200)

    # And, from this process, a workload seeded in the daemon's OpenBao and moto, and a token outside it
    vault = target.vault_client()
    prepare_vault(vault)
    name = f"api-{uuid.uuid4().hex[:8]}"
    workload = seed_workload(vault, target.boto3_client("iam"), name, f"spiffe://daemon.rescind/{name}")
    control = vault.auth.token.create(policies=["workload"], ttl="1h")["auth"]

    # When its offboarding is started through boto3 against the moto endpoint
    sfn = target.boto3_client("stepfunctions")
    request = offboarding_request(workload.spiffe_id)
    execution_arn = sfn.start_execution(
        stateMachineArn=target.state_machine_arn("OffboardingStateMachine"),
        name=request.incident_id,
        input=json.dumps(request.model_dump(mode="json")),
    )["executionArn"]
    described = wait_for_execution(sfn, execution_arn, timeout=30)

    # Then it succeeded, the ledger (read through the endpoint) has a verified result per credential
    assert described["status"] == "SUCCEEDED", described
    view = DynamoDbLedger(target.ledger_table, target.boto3_client("dynamodb")).read_incident(request.incident_id)
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.COMPLETED
    assert view.attempts
    assert {attempt.result.outcome for attempt in view.attempts} == {Outcome.SUCCEEDED}

    # And the workload's tokens are dead in OpenBao (by accessor and by use), and the other token lives
    for accessor in workload.token_accessors:
        with pytest.raises(hvac.exceptions.InvalidRequest):
            vault.auth.token.lookup_accessor(accessor)
        with pytest.raises(hvac.exceptions.Forbidden):
            hvac.Client(url=target.openbao_addr, token=workload.token_value(accessor)).auth.token.lookup_self()
    assert vault.auth.token.lookup_accessor(control["accessor"])["data"]["accessor"] == control["accessor"]

    # When it is stopped
    openbao_pid = target.state.openbao_pid
    assert openbao_pid is not None
    code, stopped = cli("down", "--state-dir", str(state_dir))

    # Then both processes are gone, both ports closed, the state file removed and OpenBao's storage kept
    assert (code, stopped["status"]) == (0, "stopped")
    assert set(stopped["stopped_pids"]) == {target.state.pid, openbao_pid}
    assert not pid_is_running(target.state.pid)
    assert not pid_is_running(openbao_pid)
    assert not port_is_open(target.moto_endpoint)
    assert not port_is_open(target.openbao_addr)
    assert not state_file(state_dir).exists()
    assert (state_dir / "openbao" / "data").is_dir()
    assert "stopped" in (state_dir / "daemon.log").read_text()

    # And a second `down`, and `status`, say nothing runs
    assert cli("down", "--state-dir", str(state_dir)) == (
        0,
        {"status": "not_running", "state_dir": str(state_dir), "stopped_pids": [], "storage_wiped": False, "notes": []},
    )
    code, status = cli("status", "--state-dir", str(state_dir))
    assert (code, status["status"]) == (1, "stopped")
    with pytest.raises(LocalStackNotRunning, match="rescind local up"):
        LocalTarget.load(state_dir)


def test_down_when_nothing_ever_ran(tmp_path: Path) -> None:
    code, document = cli("down", "--state-dir", str(tmp_path / "never"))
    assert (code, document["status"]) == (0, "not_running")
    code, status = cli("status", "--state-dir", str(tmp_path / "never"))
    assert (code, status["status"], status["state"]) == (1, "stopped", None)


def test_a_crashed_daemon_is_detected_cleaned_up_and_restarted_on_the_same_storage(state_dir: Path) -> None:
    # Given a running stack holding a KV secret
    code, started = up(state_dir)
    assert code == 0, started
    first = LocalTarget.load(state_dir)
    first.vault_client().secrets.kv.v2.create_or_update_secret("survives/crash", secret={"n": "1"})
    crashed_openbao = first.state.openbao_pid
    assert crashed_openbao is not None

    # When the daemon dies without cleaning up (its OpenBao, in its own session, is left running)
    os.kill(first.state.pid, signal.SIGKILL)
    assert wait_until_gone(first.state.pid)

    # Then its state file is detected as stale
    code, status = cli("status", "--state-dir", str(state_dir))
    assert (code, status["status"]) == (1, "stale")
    with pytest.raises(LocalStackNotRunning, match="stale"):
        LocalTarget.load(state_dir)

    # When `up` runs again
    code, restarted = up(state_dir)

    # Then it stopped the orphaned OpenBao, started a new daemon, and OpenBao's storage came back unsealed
    assert code == 0, restarted
    assert restarted["status"] == "started"
    assert any("stopped the OpenBao" in note for note in restarted["notes"])
    assert not pid_is_running(crashed_openbao)
    second = LocalTarget.load(state_dir)
    assert second.state.pid != first.state.pid
    read = second.vault_client().secrets.kv.v2.read_secret_version("survives/crash", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"n": "1"}

    # And `down --wipe` stops it and removes the storage
    code, stopped = cli("down", "--state-dir", str(state_dir), "--wipe")
    assert (code, stopped["status"], stopped["storage_wiped"]) == (0, "stopped", True)
    assert not (state_dir / "openbao").exists()
