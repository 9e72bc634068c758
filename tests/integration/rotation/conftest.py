"""The rotation contract's fixtures: a real PostgreSQL, and the PostgreSQL hook deployed to moto's Lambda and run
in-process (rescind_local.lambdas) with its real handler, so Rescind invokes it through lambda:Invoke."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from rescind_local import LocalOpenBao
from rescind_local.lambdas import (
    FunctionSpec,
    InProcessLambdas,
    create_local_function,
    in_process_lambdas,
    local_execution_role,
)
from tests.postgres import postgres_server  # noqa: F401 - the session fixture

HOOK_DIR = Path(__file__).resolve().parents[3] / "functions" / "rotate_postgres"


@pytest.fixture
def postgres_hook_arn(aws: None, openbao: LocalOpenBao) -> Iterator[str]:
    """The PostgreSQL rotation hook, as a Lambda function whose invocations run its real handler in-process."""
    spec = FunctionSpec(
        function_name="rescind-rotate-postgres",
        code_dir=HOOK_DIR,
        timeout=30,
        environment={
            "VAULT_ADDR": openbao.addr,
            "VAULT_AUTH_METHOD": "token",
            "VAULT_TOKEN": openbao.root_token,
            "LEDGER_TABLE_NAME": "rescind-ledger",
            "POWERTOOLS_SERVICE_NAME": "rescind",
            "POWERTOOLS_METRICS_NAMESPACE": "Rescind",
            "ROTATION_HOOK_POSTGRES_TLS": "disable",  # the local PostgreSQL has no TLS
        },
    )
    registry = InProcessLambdas()
    registry.register(spec)
    role = local_execution_role(boto3.client("iam"))
    with in_process_lambdas(registry):
        yield create_local_function(boto3.client("lambda"), spec, role)
