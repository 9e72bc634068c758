"""A database static role rotated while an application keeps using it: through the template deployed to moto (the
schedule's function, the leak rule, the start function and the leak-response state machine, handlers in-process),
against a real OpenBao whose database engine drives a real PostgreSQL.

The application is a thread of the test: it logs in to PostgreSQL with the password it reads from Vault
(`<mount>/static-creds/<role>`, under a token that may read only that), and reads it again only when a login is
refused. Vault's rotate-role changes the password in PostgreSQL and in Vault in one request, so each rotation costs
the application at most one refused login. After each rotation PostgreSQL refuses the old password and takes the
new one. A crash between the rotation and its read-back converges: the retried task finds it already applied, with
Vault's rotation time as the evidence, and Vault rotated once.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import hvac
import pytest

from rescind.exceptions import VaultUnavailable
from rescind.ledger import DynamoDbLedger, IncidentStatus
from rescind.models import DatabaseStaticRoleRef, Evidence, Outcome
from rescind.schedules import runtime as schedules_runtime
from rescind.vault import database as database_kind
from rescind_local import LocalOpenBao
from rescind_local.lambdas import forget_loaded_handlers
from rescind_local.stack import LocalStack
from rescind_local.stepfunctions import wait_for_execution
from tests.conftest import deploy_local_stack, load_event
from tests.integration.vault.test_database import DatabaseMount, _current_password, _static_role, database
from tests.postgres import PostgresServer, postgres_server

__all__ = ["database", "postgres_server"]  # the fixtures, imported for pytest

pytestmark = pytest.mark.timeout(300)

ROLE = "app"
SETTLED = 5  # logins with the new password that show the application settled on it


@dataclass
class Application:
    """A database client that keeps logging in with the password it reads from Vault."""

    vault_addr: str
    token: str = field(repr=False)
    mount: str
    postgres: PostgresServer
    user: str
    logins: int = 0
    refused: int = 0
    longest_refusal_streak: int = 0
    errors: list[str] = field(default_factory=list)
    password: str | None = field(default=None, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        vault = hvac.Client(url=self.vault_addr, token=self.token, timeout=10)
        streak = 0
        while not self._stop.is_set():
            try:
                if self.password is None:
                    self.password = str(vault.read(f"{self.mount}/static-creds/{ROLE}")["data"]["password"])
                if self.postgres.can_log_in(self.user, self.password):
                    self.logins, streak = self.logins + 1, 0
                else:  # refused: read the password again before the next login
                    self.refused, streak, self.password = self.refused + 1, streak + 1, None
                    self.longest_refusal_streak = max(self.longest_refusal_streak, streak)
            except Exception as error:  # the test asserts there were none
                self.errors.append(repr(error))
            time.sleep(0.02)

    def wait_for_logins(self, count: int, timeout: float = 30.0) -> None:
        deadline, target = time.monotonic() + timeout, self.logins + count
        while self.logins < target:
            assert time.monotonic() < deadline, f"the application logged in {self.logins} times, not {target}"
            assert not self.errors, self.errors
            time.sleep(0.02)


@contextmanager
def running(application: Application) -> Iterator[Application]:
    thread = threading.Thread(target=application.run, name="database-application", daemon=True)
    thread.start()
    try:
        application.wait_for_logins(SETTLED)
        yield application
    finally:
        application._stop.set()
        thread.join(10)


@dataclass
class Estate:
    stack: LocalStack
    vault: hvac.Client
    database: DatabaseMount
    user: str
    application: Application

    @property
    def ref(self) -> DatabaseStaticRoleRef:
        return DatabaseStaticRoleRef(mount=self.database.mount, role=ROLE)

    def password(self) -> str:
        return _current_password(self.vault, self.database.mount, ROLE)

    def last_rotation(self) -> datetime:
        state = database_kind.read_static_role(self.vault, self.ref)
        assert state is not None
        assert state.last_vault_rotation is not None
        return state.last_vault_rotation


@pytest.fixture
def estate(
    aws: None, openbao: LocalOpenBao, vault: hvac.Client, postgres_server: PostgresServer, database: DatabaseMount
) -> Iterator[Estate]:
    # Given a static role on a database mount in LeaseMounts, a 30-day rule for its roles, and its application
    user = _static_role(vault, postgres_server, database, ROLE)
    policy = f"app-{database.mount}"
    vault.sys.create_or_update_policy(
        policy, f'path "{database.mount}/static-creds/{ROLE}" {{ capabilities = ["read"] }}'
    )
    token = vault.auth.token.create(policies=[policy], no_default_policy=True, ttl="1h")["auth"]["client_token"]
    schedule_policy = {"rotation_max_age": [{"static_role_prefix": f"{database.mount}/", "max_age_days": 30}]}
    with deploy_local_stack(openbao, LeaseMounts=database.mount, SchedulePolicy=json.dumps(schedule_policy)) as stack:
        application = Application(openbao.addr, token, database.mount, postgres_server, user)
        yield Estate(stack, vault, database, user, application)
    forget_loaded_handlers()


def assert_rotated_under_the_application(estate: Estate, old: str, rotate: Callable[[], None]) -> str:
    """Rotate while the application runs; it settles on the new password after at most one refused login."""
    with running(estate.application) as application:
        rotate()
        new = estate.password()
        assert new != old
        application.wait_for_logins(SETTLED)
        assert application.password == new
    assert application.errors == []
    # It reads the password again only after a refused login, so it took the new one after exactly one refusal
    assert application.refused == 1, application
    assert application.longest_refusal_streak == 1
    return new


def leak_event(password: str) -> dict[str, Any]:
    event = load_event("secret_leaked.json")  # found 2026-11-24: before the role's password was made
    event["id"] = str(uuid.uuid4())
    event["detail"]["secret_type"] = "database_password"
    event["detail"]["secret"] = password
    return event


def run_leak(stack: LocalStack, password: str) -> dict[str, Any]:
    (match,) = stack.route_event(leak_event(password))
    assert [delivery.error_type for delivery in match.deliveries] == [None]
    sfn = boto3.client("stepfunctions")
    machine = stack.state_machine_arn("LeakResponseStateMachine")
    (listed,) = sfn.list_executions(stateMachineArn=machine)["executions"]
    return wait_for_execution(sfn, listed["executionArn"], 120)


def ledger(stack: LocalStack) -> DynamoDbLedger:
    return DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb"))


def test_rotation_by_age_rotates_a_stale_static_role_while_its_application_keeps_connecting(
    estate: Estate, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = estate.password()

    def scheduled_rotation() -> None:
        # The sweep's clock runs 40 days ahead (Vault's last_vault_rotation cannot be set in the past); the handler
        # binds current_time when it is imported
        monkeypatch.setattr(schedules_runtime, "current_time", lambda: datetime.now(UTC) + timedelta(days=40))
        forget_loaded_handlers()
        payload, error = estate.stack.run_schedule("RotationByAgeSchedule")
        assert error is None, payload
        (change,) = payload["changes"]
        assert (change["target"], change["status"]) == (estate.ref.key, "applied"), change
        assert "last_vault_rotation" in change["detail"]

    # When the schedule fires while the application runs
    new = assert_rotated_under_the_application(estate, old, scheduled_rotation)

    # Then PostgreSQL refuses the old password and takes the new one
    assert not postgres_server.can_log_in(estate.user, old)
    assert postgres_server.can_log_in(estate.user, new)


def test_a_leaked_static_role_password_is_rotated_while_its_application_keeps_connecting(
    estate: Estate,
    postgres_server: PostgresServer,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    leaked = estate.password()
    executions: list[dict[str, Any]] = []

    # When the current password leaks, in an alert found before Vault made it, while the application runs
    new = assert_rotated_under_the_application(
        estate, leaked, lambda: executions.append(run_leak(estate.stack, leaked))
    )

    # Then the leak response located the role and rotated it, verified by Vault's last rotation
    (execution,) = executions
    assert execution["status"] == "SUCCEEDED", execution
    view = ledger(estate.stack).read_incident(execution["name"])
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.COMPLETED
    (attempt,) = view.attempts
    assert (attempt.result.target, attempt.result.outcome) == (estate.ref, Outcome.SUCCEEDED)
    assert "last_vault_rotation" in attempt.result.evidence[0].check
    # And PostgreSQL refuses the leaked password and takes the new one
    assert not postgres_server.can_log_in(estate.user, leaked)
    assert postgres_server.can_log_in(estate.user, new)
    # And neither password is in the execution's history, the ledger or the logs
    sfn = boto3.client("stepfunctions")
    output = capsys.readouterr()
    places = {
        "history": str(sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)["events"]),
        "ledger": str(boto3.client("dynamodb").scan(TableName=estate.stack.physical_id("LedgerTable"))["Items"]),
        "logs": output.out + output.err + caplog.text,
    }
    for place, text in places.items():
        assert leaked not in text, f"the leaked password reached the {place}"
        assert new not in text, f"the new password reached the {place}"


def test_a_crash_between_the_rotation_and_its_read_back_converges_on_the_retry_without_a_second_rotation(
    estate: Estate, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Vault becomes unreachable right after it rotated the leaked password, before the read-back
    leaked = estate.password()
    rotated_at: list[datetime] = []
    verify = database_kind.verify_static_role_rotated

    def crash_once(client: hvac.Client, ref: DatabaseStaticRoleRef, since: datetime) -> Evidence:
        if not rotated_at:
            rotated_at.append(estate.last_rotation())
            raise VaultUnavailable("test: the connection to Vault dropped after rotate-role")
        return verify(client, ref, since)

    monkeypatch.setattr(database_kind, "verify_static_role_rotated", crash_once)

    # When the leak response runs (its task is retried on VaultUnavailable)
    execution = run_leak(estate.stack, leaked)

    # Then the retry finds the rotation applied, with Vault's rotation time as evidence, and Vault rotated once
    assert execution["status"] == "SUCCEEDED", execution
    view = ledger(estate.stack).read_incident(execution["name"])
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.COMPLETED, view.closure
    crashed, retried = view.attempts
    assert (crashed.result.outcome, crashed.result.error_type) == (Outcome.FAILED, "VaultUnavailable")
    assert retried.result.outcome is Outcome.ALREADY_APPLIED, retried.result.detail
    assert retried.result.detail.startswith(
        f"already applied: {estate.database.mount} rotated {estate.user}'s password at {rotated_at[0].isoformat()}"
    )
    assert retried.result.evidence[0].confirmed
    assert estate.last_rotation() == rotated_at[0]
    assert not postgres_server.can_log_in(estate.user, leaked)
    assert postgres_server.can_log_in(estate.user, estate.password())
