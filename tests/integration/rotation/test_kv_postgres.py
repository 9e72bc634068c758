"""KV v2 rotation under the rotation contract, against a real OpenBao and a real PostgreSQL.

The secret holds username, password and host; only `password` is declared to rotate, and the PostgreSQL hook
(functions/rotate_postgres, invoked through moto's Lambda and run in-process) sets and tests it on the database.
"""

from __future__ import annotations

import secrets
from typing import Any

import hvac
import pytest

from rescind.aws.session import AwsClientFactory
from rescind.engine.factory import build_engine
from rescind.models import Action, ActionKind, ActionParams, KvSecretRef, Outcome, PreviousVersions
from rescind.rotation.contract import LambdaHookInvoker, RotationHookFailed
from rescind.vault.kv_rotation import rotate_kv_secret
from rescind.vault.kv_rotation_state import ROTATION_STEP_KEY, staging_ref
from tests.postgres import PostgresServer

LEAK = ActionParams(previous_versions=PreviousVersions.DESTROY, run_id="incident-1")


def read_current(vault: hvac.Client, ref: KvSecretRef) -> dict[str, Any]:
    data: dict[str, Any] = vault.secrets.kv.v2.read_secret_version(
        ref.path, mount_point=ref.mount, raise_on_deleted_version=True
    )["data"]["data"]
    return data


def custom_metadata(vault: hvac.Client, ref: KvSecretRef) -> dict[str, str]:
    found: dict[str, str] = (
        vault.secrets.kv.v2.read_secret_metadata(ref.path, mount_point=ref.mount)["data"]["custom_metadata"] or {}
    )
    return found


@pytest.fixture
def role(postgres_server: PostgresServer, unique: str) -> tuple[str, str]:
    """An application role on PostgreSQL, with a name that needs quoting, and its password."""
    name, password = f'app-{unique} "x"', secrets.token_urlsafe(16)
    quoted = '"' + name.replace('"', '""') + '"'
    postgres_server.execute(f"CREATE ROLE {quoted} LOGIN PASSWORD '{password}'")
    return name, password


def seed(vault: hvac.Client, ref: KvSecretRef, value: dict[str, Any], metadata: dict[str, str]) -> None:
    vault.secrets.kv.v2.create_or_update_secret(ref.path, secret=value, mount_point=ref.mount)
    vault.secrets.kv.v2.update_metadata(ref.path, mount_point=ref.mount, custom_metadata=metadata)


@pytest.fixture
def app_secret(
    vault: hvac.Client, unique: str, role: tuple[str, str], postgres_server: PostgresServer, postgres_hook_arn: str
) -> KvSecretRef:
    ref = KvSecretRef(mount="secret", path=f"rot-{unique}/db")
    name, password = role
    seed(
        vault,
        ref,
        {"username": name, "password": password, "host": postgres_server.host, "port": postgres_server.port},
        {"rescind_rotate": "password", "rescind_rotation_hook": postgres_hook_arn, "spiffe_id": "spiffe://td/x"},
    )
    return ref


def hooks() -> LambdaHookInvoker:
    return LambdaHookInvoker(AwsClientFactory(region_name="us-east-1"))


def test_leak_rotation_changes_the_password_on_postgres_and_only_the_declared_field(
    vault: hvac.Client, app_secret: KvSecretRef, role: tuple[str, str], postgres_server: PostgresServer
) -> None:
    # Given an application secret whose password is declared to rotate by the PostgreSQL hook
    name, old_password = role
    before = read_current(vault, app_secret)
    indexed: list[tuple[int, str]] = []
    engine = build_engine(
        vault,
        aws_factory=AwsClientFactory(region_name="us-east-1"),
        kv_on_new_value=lambda ref, version, value: indexed.append((version, str(value["password"]))),
    )
    action = Action(kind=ActionKind.ROTATE, target=app_secret, reason="leak", params=LEAK)

    # When the leak response rotates it
    result = engine.execute_or_fail(action)

    # Then the old password fails on PostgreSQL, the new current one works, and only the password changed
    assert result.outcome is Outcome.SUCCEEDED, result.detail
    after = read_current(vault, app_secret)
    assert after["password"] != old_password
    assert {k: v for k, v in after.items() if k != "password"} == {k: v for k, v in before.items() if k != "password"}
    assert not postgres_server.can_log_in(name, old_password)
    assert postgres_server.can_log_in(name, after["password"])
    # the fingerprint index saw the value that became current, once
    assert indexed == [(2, after["password"])]
    # the old version is destroyed, and the staging copy is gone
    assert vault.secrets.kv.v2.read_secret_metadata(app_secret.path, mount_point="secret")["data"]["versions"]["1"][
        "destroyed"
    ]
    staging = staging_ref(app_secret)
    with pytest.raises(hvac.exceptions.InvalidPath):
        vault.secrets.kv.v2.read_secret_metadata(staging.path, mount_point=staging.mount)

    # And a replay of the same action changes nothing
    again = engine.execute_or_fail(action)
    assert again.outcome is Outcome.ALREADY_APPLIED
    assert read_current(vault, app_secret) == after


def test_a_failing_test_step_leaves_the_current_value_and_a_rerun_finishes(
    vault: hvac.Client, app_secret: KvSecretRef, role: tuple[str, str], postgres_server: PostgresServer
) -> None:
    name, old_password = role
    quoted = '"' + name.replace('"', '""') + '"'
    before = read_current(vault, app_secret)

    # Given PostgreSQL refuses the role's logins after the set step (its validity has expired)
    class ExpireAfterSet(LambdaHookInvoker):
        def invoke(self, hook_arn: str, event: Any) -> None:
            super().invoke(hook_arn, event)
            if event["Step"] == "setSecret":
                # while pending, applications still read the old value
                assert read_current(vault, app_secret) == before
                postgres_server.execute(f"ALTER ROLE {quoted} VALID UNTIL '2000-01-01'")

    # When the rotation runs, its testSecret fails: the run reports it and the current value is untouched
    with pytest.raises(RotationHookFailed, match="testSecret"):
        rotate_kv_secret(
            vault, app_secret, "rot-1", LEAK, hooks=ExpireAfterSet(AwsClientFactory(region_name="us-east-1"))
        )
    assert read_current(vault, app_secret) == before
    assert custom_metadata(vault, app_secret)[ROTATION_STEP_KEY] == "set"

    # When the role is valid again and the same rotation runs again, it resumes at testSecret and finishes
    postgres_server.execute(f"ALTER ROLE {quoted} VALID UNTIL 'infinity'")
    outcome = rotate_kv_secret(vault, app_secret, "rot-1", LEAK, hooks=hooks())
    assert outcome.changed
    after = read_current(vault, app_secret)
    assert after["password"] != old_password
    assert postgres_server.can_log_in(name, after["password"])
    assert not postgres_server.can_log_in(name, old_password)


def test_a_failing_set_step_leaves_the_old_password_working(
    vault: hvac.Client, app_secret: KvSecretRef, role: tuple[str, str], postgres_server: PostgresServer
) -> None:
    # Given the secret's host points at a port where no PostgreSQL listens: setSecret cannot reach the database
    name, old_password = role
    value = read_current(vault, app_secret)
    vault.secrets.kv.v2.create_or_update_secret(
        app_secret.path, secret={**value, "port": 1}, mount_point=app_secret.mount
    )
    before = read_current(vault, app_secret)
    with pytest.raises(RotationHookFailed, match="setSecret"):
        rotate_kv_secret(vault, app_secret, "rot-2", LEAK, hooks=hooks())
    # Then readers get the old value, and the old password still works
    assert read_current(vault, app_secret) == before
    assert postgres_server.can_log_in(name, old_password)


def test_an_undeclared_secret_is_never_written_and_needs_an_owner(vault: hvac.Client, unique: str) -> None:
    ref = KvSecretRef(mount="secret", path=f"rot-{unique}/plain")
    seed(vault, ref, {"username": "u", "password": "p", "host": "h"}, {"spiffe_id": "spiffe://td/x"})
    engine = build_engine(vault, aws_factory=AwsClientFactory(region_name="us-east-1"))

    result = engine.execute_or_fail(Action(kind=ActionKind.ROTATE, target=ref, reason="leak", params=LEAK))

    assert result.outcome is Outcome.SKIPPED
    assert "rotation needs an owner: declare rescind_rotate and rescind_rotation_hook on secret/" in result.detail
    assert not result.evidence[0].confirmed
    metadata = vault.secrets.kv.v2.read_secret_metadata(ref.path, mount_point="secret")["data"]
    assert metadata["current_version"] == 1
    assert "rescind_rotation_id" not in (metadata["custom_metadata"] or {})


def test_a_malformed_declaration_is_refused_before_any_write(vault: hvac.Client, unique: str) -> None:
    ref = KvSecretRef(mount="secret", path=f"rot-{unique}/bad")
    seed(vault, ref, {"password": "p"}, {"rescind_rotate": "password", "rescind_rotation_hook": "not-an-arn"})
    outcome = rotate_kv_secret(vault, ref, "rot-3", LEAK, hooks=hooks())
    assert outcome.needs_owner is True
    assert "rotation declaration refused: rescind_rotation_hook on secret/" in outcome.detail
    assert "must be a Lambda function ARN" in outcome.detail
    assert read_current(vault, ref) == {"password": "p"}
