"""An application keeps working while Rescind rotates the PostgreSQL password it reads from KV v2 (issue 16).

The template is deployed to moto (handlers in-process, the state machines' ASL run by moto's interpreter) against
a real OpenBao and a real PostgreSQL. The application is a thread of this test: it reads the secret from KV, logs in
to PostgreSQL with it and runs `SELECT 1`, over and over. When a login is refused it does what an application that
reads its password from Vault does: it reads the secret again, and waits for a newer version than the one that
failed before it logs in again (it never retries a password PostgreSQL refused).

Rescind rotates the secret through the rotation contract and the stack's PostgreSQL hook (RotatePostgresFunction):
once by the rotation-by-age schedule (RotationByAgeFunction, as EventBridge Scheduler invokes it), once by a leak
response (a `Secret Leaked` event carrying the current password's SHA-256, through the rule, the start function,
the leak-response state machine and ExecuteActionFunction). The new password is on PostgreSQL from setSecret and
in KV from finishSecret; between the two, a login with the value KV still serves fails. The application must never
fail more than that one login per rotation, must log in with the new password after each, and the old password
must be refused.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import hvac
import psycopg
import pytest

from rescind.fingerprints.dynamodb import DynamoDbFingerprintIndex
from rescind.fingerprints.indexing import index_kv_mount
from rescind.fingerprints.runtime import read_fingerprint_key
from rescind.ledger import DynamoDbLedger, IncidentStatus
from rescind.models import Outcome
from rescind.schedules import runtime as schedules_runtime
from rescind_local import LocalOpenBao
from rescind_local.lambdas import forget_loaded_handlers
from rescind_local.stack import LocalStack
from rescind_local.stepfunctions import wait_for_execution
from tests.conftest import deploy_local_stack, load_event
from tests.postgres import PostgresServer, postgres_server

__all__ = ["postgres_server"]  # the fixture, imported for pytest

pytestmark = pytest.mark.timeout(300)

MOUNT = "secret"
POLICY = {"rotation_max_age": [{"kv_prefix": f"{MOUNT}/apps/", "max_age_days": 30}]}
LOGIN_REFUSED = "28P01"  # invalid_password


@dataclass
class Application:
    """A client that logs in with the password it reads from KV, in a loop, until stopped."""

    vault: hvac.Client
    postgres: PostgresServer
    path: str
    logins: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)  # (the version it used, what PostgreSQL said)
    errors: list[str] = field(default_factory=list)  # anything but a refused login: the test fails on it
    versions_used: set[int] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def read(self) -> tuple[int, dict[str, Any]]:
        answer = self.vault.secrets.kv.v2.read_secret_version(
            self.path, mount_point=MOUNT, raise_on_deleted_version=True
        )
        return int(answer["data"]["metadata"]["version"]), answer["data"]["data"]

    def log_in_once(self, value: dict[str, Any]) -> None:
        with self.postgres.connect(value["username"], value["password"]) as connection:
            connection.execute("SELECT 1")

    def run(self) -> None:
        try:
            while not self._stop.is_set():
                version, value = self.read()
                try:
                    self.log_in_once(value)
                except psycopg.OperationalError as refused:
                    if getattr(refused, "sqlstate", None) not in (LOGIN_REFUSED, None):
                        raise
                    self.failures.append((version, str(getattr(refused, "sqlstate", "") or "refused")))
                    self.wait_for_a_version_after(version)
                    continue
                self.logins += 1
                self.versions_used.add(version)
                time.sleep(0.01)
        except Exception as error:  # reported to the test, which fails on it
            self.errors.append(f"{type(error).__name__}: {error}")

    def wait_for_a_version_after(self, version: int) -> None:
        """A refused password is not tried again: read the secret until a newer version is current."""
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            if self.read()[0] > version:
                return
            time.sleep(0.01)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="application", daemon=True)
        self._thread.start()

    def logins_after(self, count: int, timeout: float = 30) -> None:
        """Wait until it has logged in `count` more times (it is still working)."""
        target = self.logins + count
        deadline = time.monotonic() + timeout
        while self.logins < target and time.monotonic() < deadline and not self.errors:
            time.sleep(0.01)
        assert self.logins >= target, (self.logins, target, self.failures, self.errors)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


@dataclass
class Estate:
    stack: LocalStack
    vault: hvac.Client
    postgres: PostgresServer
    path: str
    user: str


@pytest.fixture
def estate(aws: None, postgres_server: PostgresServer) -> Iterator[Estate]:
    with (
        LocalOpenBao() as bao,
        deploy_local_stack(
            bao,
            SchedulePolicy=json.dumps(POLICY),
            KvMounts=MOUNT,
            environment={"ROTATION_HOOK_POSTGRES_TLS": "disable"},  # the local PostgreSQL has no TLS
        ) as stack,
    ):
        vault = hvac.Client(url=bao.addr, token=bao.root_token, timeout=10)
        # Given an application's PostgreSQL login, kept in KV, whose owner declared its password to rotate through
        # the stack's PostgreSQL hook
        user, password = f"app_{secrets.token_hex(4)}", secrets.token_urlsafe(18)
        postgres_server.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        path = f"apps/{user}/db"
        value = {"username": user, "password": password, "host": postgres_server.host, "port": postgres_server.port}
        vault.secrets.kv.v2.create_or_update_secret(path, secret=value, mount_point=MOUNT)
        hook = stack.functions["RotatePostgresFunction"].function_arn()
        declared = {"rescind_rotate": "password", "rescind_rotation_hook": hook, "spiffe_id": "spiffe://flows/app"}
        vault.secrets.kv.v2.update_metadata(path, mount_point=MOUNT, custom_metadata=declared)
        yield Estate(stack, vault, postgres_server, path, user)


def current(estate: Estate) -> tuple[int, dict[str, Any]]:
    answer = estate.vault.secrets.kv.v2.read_secret_version(
        estate.path, mount_point=MOUNT, raise_on_deleted_version=True
    )
    return int(answer["data"]["metadata"]["version"]), answer["data"]["data"]


def run_rotation_by_age(estate: Estate, days_ahead: int) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as patch:
        # The sweep's clock runs ahead (KV's created_time cannot be set in the past); the handler binds it when it
        # is imported, so forget the loaded handlers for this run.
        patch.setattr(schedules_runtime, "current_time", lambda: datetime.now(UTC) + timedelta(days=days_ahead))
        forget_loaded_handlers()
        payload, error = estate.stack.run_schedule("RotationByAgeSchedule")
    forget_loaded_handlers()
    assert error is None, payload
    assert isinstance(payload, dict)
    return payload


def leak_the_current_password(estate: Estate) -> dict[str, Any]:
    """A `Secret Leaked` event naming the current password by its SHA-256, found through the fingerprint index."""
    key = read_fingerprint_key(boto3.client("secretsmanager"), estate.stack.physical_id("FingerprintKeySecret"))
    index = DynamoDbFingerprintIndex(estate.stack.physical_id("FingerprintTable"), boto3.client("dynamodb"))
    index_kv_mount(estate.vault, index, key, MOUNT, prefix=f"apps/{estate.user}/")
    event = load_event("secret_leaked.json")
    event["detail"]["secret_type"] = "kv_value"
    del event["detail"]["secret"]
    event["detail"]["secret_sha256"] = hashlib.sha256(current(estate)[1]["password"].encode()).hexdigest()
    estate.stack.route_event(event)
    sfn = boto3.client("stepfunctions")
    machine = estate.stack.state_machine_arn("LeakResponseStateMachine")
    (listed,) = sfn.list_executions(stateMachineArn=machine)["executions"]
    return wait_for_execution(sfn, listed["executionArn"], 120)


def assert_rotated_once_through_the_hook(estate: Estate, before: tuple[int, dict[str, Any]]) -> None:
    version, value = current(estate)
    assert version == before[0] + 1
    assert value["password"] != before[1]["password"]
    assert {k: v for k, v in value.items() if k != "password"} == {
        k: v for k, v in before[1].items() if k != "password"
    }
    assert estate.postgres.can_log_in(estate.user, value["password"])
    assert not estate.postgres.can_log_in(estate.user, before[1]["password"])


def test_an_application_keeps_working_while_the_schedule_and_a_leak_response_rotate_its_password(
    estate: Estate,
) -> None:
    application = Application(estate.vault, estate.postgres, estate.path)
    application.start()
    try:
        application.logins_after(20)

        # When the rotation-by-age schedule finds the secret 40 days old
        before = current(estate)
        report = run_rotation_by_age(estate, days_ahead=40)

        # Then it is rotated through the hook, and the application went on, failing at most one login
        (change,) = [c for c in report["changes"] if c["target"] == f"kv_secret:{MOUNT}:{estate.path}"]
        assert change["status"] == "applied", change
        assert "hook passed setSecret" in change["detail"]
        assert "hook passed testSecret" in change["detail"]
        assert_rotated_once_through_the_hook(estate, before)
        application.logins_after(20)
        assert len(application.failures) <= 1, application.failures
        assert application.errors == []
        failures_by_schedule = len(application.failures)

        # When the new password leaks and the leak response runs through the state machine
        before = current(estate)
        execution = leak_the_current_password(estate)

        # Then it completes, rotating the password again through the hook, and the application failed at most one
        # more login
        assert execution["status"] == "SUCCEEDED", execution
        view = DynamoDbLedger(estate.stack.physical_id("LedgerTable"), boto3.client("dynamodb")).read_incident(
            execution["name"]
        )
        assert view.closure is not None
        assert view.closure.status is IncidentStatus.COMPLETED
        assert {attempt.result.outcome for attempt in view.attempts} == {Outcome.SUCCEEDED}
        assert_rotated_once_through_the_hook(estate, before)
        application.logins_after(20)
        assert len(application.failures) - failures_by_schedule <= 1, application.failures
        assert application.errors == []
        # It logged in with every version it was ever served: the first, the scheduled one and the leak's
        assert {before[0] - 1, before[0], before[0] + 1} <= application.versions_used
    finally:
        application.stop()
