"""A Secrets Manager secret under the rotation contract, on moto, with the real PostgreSQL hook.

The secret (no Secrets Manager rotation of its own) declares by tags that its `password` rotates through the
PostgreSQL hook (functions/rotate_postgres, deployed to moto's Lambda and run in-process with its real handler, so
Rescind invokes it through lambda:Invoke and the hook reads AWSPENDING from moto itself). Rescind stages the new
value AWSPENDING, the hook sets it on a real PostgreSQL and logs in with it, and AWSCURRENT moves at finish.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

import boto3
import pytest

from rescind.aws.secrets_manager import rotation_token
from rescind.aws.session import AwsClientFactory
from rescind.engine.factory import build_engine
from rescind.models import Action, ActionKind, ActionParams, Outcome, SecretsManagerSecretRef
from rescind.rotation.contract import HookStep, LambdaHookInvoker
from tests.postgres import PostgresServer

LEAK = ActionParams(run_id="incident-sm-1")


@pytest.fixture
def role(postgres_server: PostgresServer, unique: str) -> tuple[str, str]:
    name, password = f"sm_app_{unique}".replace("-", "_"), secrets.token_urlsafe(16)
    postgres_server.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    return name, password


def create_secret(postgres: PostgresServer, role: tuple[str, str], tags: Mapping[str, str], unique: str) -> str:
    value = {"username": role[0], "password": role[1], "host": postgres.host, "port": postgres.port}
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    arn: str = sm.create_secret(
        Name=f"apps/{unique}/db",
        SecretString=json.dumps(value),
        Tags=[{"Key": key, "Value": text} for key, text in tags.items()],
    )["ARN"]
    return arn


def value_at(arn: str, **version: str) -> dict[str, Any]:
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    loaded: dict[str, Any] = json.loads(sm.get_secret_value(SecretId=arn, **version)["SecretString"])
    return loaded


def stages(arn: str) -> dict[str, list[str]]:
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    found: dict[str, list[str]] = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
    return found


def rotate(arn: str, params: ActionParams = LEAK) -> Action:
    return Action(kind=ActionKind.ROTATE, target=SecretsManagerSecretRef(secret_arn=arn), reason="leak", params=params)


def test_a_declared_secret_rotates_through_the_hook_with_secrets_managers_labels(
    postgres_server: PostgresServer, postgres_hook_arn: str, role: tuple[str, str], unique: str
) -> None:
    # Given a secret whose password is declared to rotate through the PostgreSQL hook
    arn = create_secret(
        postgres_server, role, {"rescind:rotate": "password", "rescind:rotation-hook": postgres_hook_arn}, unique
    )
    before = value_at(arn, VersionStage="AWSCURRENT")
    engine = build_engine(None, aws_factory=AwsClientFactory(region_name="us-east-1"))  # type: ignore[arg-type]

    # When a leak response rotates it
    action = rotate(arn)
    result = engine.execute(action)

    # Then the new password is AWSCURRENT (the version the action made), only the password changed, PostgreSQL
    # takes it and refuses the old one, and no version is left AWSPENDING
    assert result.outcome is Outcome.SUCCEEDED, result
    assert "hook passed setSecret" in result.detail
    assert "hook passed testSecret" in result.detail
    token = rotation_token(action)
    assert stages(arn)[token] == ["AWSCURRENT"]
    after = value_at(arn, VersionStage="AWSCURRENT")
    assert after["password"] != before["password"]
    assert {k: v for k, v in after.items() if k != "password"} == {k: v for k, v in before.items() if k != "password"}
    assert postgres_server.can_log_in(role[0], after["password"])
    assert not postgres_server.can_log_in(role[0], before["password"])
    assert before["password"] not in result.model_dump_json()
    assert after["password"] not in result.model_dump_json()

    # And the same action again changes nothing
    again = engine.execute(action)
    assert again.outcome is Outcome.ALREADY_APPLIED
    assert value_at(arn, VersionStage="AWSCURRENT") == after


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({}, "rotation needs an owner: declare rescind:rotate and rescind:rotation-hook"),
        ({"rescind:rotate": "password", "rescind:rotation-hook": "my-function"}, "a Lambda function ARN or 'none'"),
        (
            {"rescind:rotate": "password", "rescind:rotation-hook": "none", "rescind:generator": "x"},
            "rescind:generator on",
        ),
        ({"rescind:rotate": "pin", "rescind:rotation-hook": "none"}, "declares rescind:rotate=pin, which it does not"),
    ],
)
def test_an_undeclared_or_malformed_secret_is_never_written(
    aws: None, postgres_server: PostgresServer, role: tuple[str, str], unique: str, tags: dict[str, str], expected: str
) -> None:
    arn = create_secret(postgres_server, role, tags, unique)
    before = stages(arn)
    engine = build_engine(None, aws_factory=AwsClientFactory(region_name="us-east-1"))  # type: ignore[arg-type]

    result = engine.execute(rotate(arn))

    assert result.outcome is Outcome.SKIPPED
    assert expected in result.detail
    assert stages(arn) == before
    assert postgres_server.can_log_in(*role)


class WriterDuringTest:
    """The real hook; while its testSecret runs, the application puts a value of its own (made AWSCURRENT)."""

    def __init__(self, hooks: LambdaHookInvoker, arn: str, value: dict[str, Any]) -> None:
        self.hooks, self.arn, self.value = hooks, arn, value

    def invoke(self, hook_arn: str, event: Mapping[str, str]) -> None:
        self.hooks.invoke(hook_arn, event)
        if event["Step"] == HookStep.TEST:
            sm = boto3.client("secretsmanager", region_name="us-east-1")
            sm.put_secret_value(SecretId=self.arn, SecretString=json.dumps(self.value))


def test_a_concurrent_writer_is_not_overwritten(
    postgres_server: PostgresServer, postgres_hook_arn: str, role: tuple[str, str], unique: str
) -> None:
    # Given a declared secret, and an application that writes a new value between create and finish
    arn = create_secret(
        postgres_server, role, {"rescind:rotate": "password", "rescind:rotation-hook": postgres_hook_arn}, unique
    )
    theirs = {**value_at(arn, VersionStage="AWSCURRENT"), "password": "the-applications-own"}
    factory = AwsClientFactory(region_name="us-east-1")
    hooks = WriterDuringTest(LambdaHookInvoker(factory), arn, theirs)
    engine = build_engine(None, aws_factory=factory, hook_invoker=hooks)  # type: ignore[arg-type]

    # When the rotation finishes
    action = rotate(arn)
    result = engine.execute_or_fail(action)

    # Then it is abandoned (not "rotated"): the writer's value stays AWSCURRENT, the pending version holds no label
    assert result.outcome is Outcome.FAILED
    assert result.error_type == "RotationAbandoned"
    assert "nothing was overwritten" in result.detail
    assert value_at(arn, VersionStage="AWSCURRENT") == theirs
    assert stages(arn)[rotation_token(action)] == []
