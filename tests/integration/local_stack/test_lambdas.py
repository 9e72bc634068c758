"""In-process Lambda: moto's `_invoke_lambda` replaced by the real handler, loaded from its own folder."""

from __future__ import annotations

import json
import os
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest

from rescind_local.lambdas import (
    FunctionSpec,
    InProcessLambdas,
    create_local_function,
    in_process_lambdas,
    invoke_in_process,
    load_handler,
    local_execution_role,
)
from tests.integration.local_stack import write_function

pytestmark = pytest.mark.usefixtures("aws")

ECHO_FOLDER = """
    FOLDER = {folder!r}

    def lambda_handler(event, context):
        return {{"folder": FOLDER, "event": event}}
"""

RAISES_NAMED_ERROR = """
    class VaultUnavailable(Exception):
        pass

    def lambda_handler(event, context):
        raise VaultUnavailable("vault at 127.0.0.1:1 did not answer")
"""


def _deploy(registry: InProcessLambdas, spec: FunctionSpec) -> str:
    registry.register(spec)
    return create_local_function(boto3.client("lambda"), spec, local_execution_role(boto3.client("iam")))


def _invoke(function_name: str, event: Any) -> tuple[Any, str | None]:
    answer = boto3.client("lambda").invoke(FunctionName=function_name, Payload=json.dumps(event).encode())
    return json.loads(answer["Payload"].read()), answer.get("FunctionError")


def test_two_handlers_both_named_app_are_each_resolved_from_their_own_folder(tmp_path: Path) -> None:
    # Given two functions whose code is in app.py, in two folders
    first = write_function(tmp_path, "first", ECHO_FOLDER.format(folder="first"))
    second = write_function(tmp_path, "second", ECHO_FOLDER.format(folder="second"))
    registry = InProcessLambdas()
    with in_process_lambdas(registry):
        _deploy(registry, FunctionSpec("fn-first", first))
        _deploy(registry, FunctionSpec("fn-second", second))

        # When each is invoked through moto's Lambda API
        first_payload, first_error = _invoke("fn-first", {"n": 1})
        second_payload, second_error = _invoke("fn-second", {"n": 2})

    # Then each ran its own module, with the event as sent
    assert (first_payload, first_error) == ({"folder": "first", "event": {"n": 1}}, None)
    assert (second_payload, second_error) == ({"folder": "second", "event": {"n": 2}}, None)
    assert [run.function_name for run in registry.invocations] == ["fn-first", "fn-second"]


def test_a_handler_error_is_reported_the_way_the_lambda_runtime_reports_it(tmp_path: Path) -> None:
    code_dir = write_function(tmp_path, "raises", RAISES_NAMED_ERROR)
    registry = InProcessLambdas()
    with in_process_lambdas(registry):
        _deploy(registry, FunctionSpec("fn-raises", code_dir))
        payload, function_error = _invoke("fn-raises", {})

    # Step Functions reads errorType from this document: it is what ASL Retry/Catch match on
    assert function_error == "Handled"
    assert payload["errorType"] == "VaultUnavailable"
    assert payload["errorMessage"] == "vault at 127.0.0.1:1 did not answer"
    assert registry.invocations[0].error_type == "VaultUnavailable"


def test_the_handler_sees_its_environment_and_a_lambda_context_and_the_process_gets_its_own_back(
    tmp_path: Path,
) -> None:
    code_dir = write_function(
        tmp_path,
        "context",
        """
        import os

        def lambda_handler(event, context):
            return {
                "table": os.environ["LEDGER_TABLE_NAME"],
                "function_name_variable": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
                "function_name": context.function_name,
                "memory": context.memory_limit_in_mb,
                "arn": context.invoked_function_arn,
                "request_id": context.aws_request_id,
                "remaining": context.get_remaining_time_in_millis(),
            }
        """,
    )
    os.environ.pop("LEDGER_TABLE_NAME", None)
    spec = FunctionSpec("fn-context", code_dir, environment={"LEDGER_TABLE_NAME": "ledger-local"}, memory_size=256)

    result = invoke_in_process(spec, {})

    answer = json.loads(result.payload)
    assert not result.errored
    assert answer["table"] == "ledger-local"
    assert answer["function_name"] == answer["function_name_variable"] == "fn-context"
    assert answer["memory"] == 256
    assert answer["arn"] == spec.function_arn()
    assert answer["request_id"] == result.invocation.request_id
    assert 0 < answer["remaining"] <= 3000
    # and the process environment is as it was
    assert "LEDGER_TABLE_NAME" not in os.environ
    assert "AWS_LAMBDA_FUNCTION_NAME" not in os.environ


def test_a_thread_building_clients_while_handlers_run_never_finds_a_variable_gone_mid_read(tmp_path: Path) -> None:
    # Given a handler invoked over and over in one thread, each time adding and then removing its variables
    code_dir = write_function(tmp_path, "quiet", "def lambda_handler(event, context):\n    return {}\n")
    spec = FunctionSpec("fn-quiet", code_dir, environment={f"RESCIND_CHURN_{n}": "1" for n in range(200)})
    invocations = 200

    def invoke_repeatedly() -> None:
        for _ in range(invocations):
            invoke_in_process(spec, {})

    churn = threading.Thread(target=invoke_repeatedly)
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so reads land inside a restore
    churn.start()
    # When another thread reads the environment the way botocore does each time it builds a client
    failures = 0
    try:
        while churn.is_alive():
            try:
                urllib.request.getproxies_environment()
            except KeyError:
                failures += 1
    finally:
        churn.join()
        sys.setswitchinterval(switch_interval)

    # Then no read ever found a key listed and then gone
    assert failures == 0


COUNTS_CLIENT_BUILDS = """
    import itertools

    from rescind.caching import runtime_cache

    BUILDS = itertools.count(1)

    @runtime_cache
    def get_client():
        return next(BUILDS)

    def lambda_handler(event, context):
        return {"client": get_client()}
"""


def test_each_invocation_is_a_cold_start_unless_the_functions_are_kept_warm(tmp_path: Path) -> None:
    # Given two functions sharing one handler whose cached factory counts how often it builds its client
    code_dir = write_function(tmp_path, "builds", COUNTS_CLIENT_BUILDS)
    first = FunctionSpec("fn-first", code_dir, environment={"RESCIND_ROLE": "first"})
    second = FunctionSpec("fn-second", code_dir, environment={"RESCIND_ROLE": "second"})

    def clients(warm: dict[Any, Any] | None) -> list[int]:
        order = [first, second, first, second]
        return [json.loads(invoke_in_process(spec, {}, warm=warm).payload)["client"] for spec in order]

    # When they run cold (the default), every invocation builds its client again
    cold = clients(None)
    assert cold == sorted(set(cold))
    # When they run warm, each function builds once and keeps its own client, never the other's
    warm = clients({})
    assert warm[0] == warm[2] != warm[1] == warm[3]


def test_powertools_inject_lambda_context_accepts_the_local_context(tmp_path: Path) -> None:
    code_dir = write_function(
        tmp_path,
        "powertools",
        """
        from aws_lambda_powertools import Logger

        logger = Logger(service="contract")

        @logger.inject_lambda_context(log_event=False)
        def lambda_handler(event, context):
            return {"cold_start_key": "cold_start" in logger.get_current_keys()}
        """,
    )

    result = invoke_in_process(FunctionSpec("fn-powertools", code_dir), {})

    assert not result.errored, result.payload
    assert json.loads(result.payload) == {"cold_start_key": True}


def test_a_result_json_cannot_carry_is_a_marshal_error(tmp_path: Path) -> None:
    code_dir = write_function(tmp_path, "marshal", "def lambda_handler(event, context):\n    return {1, 2}\n")

    result = invoke_in_process(FunctionSpec("fn-marshal", code_dir), {})

    assert result.errored
    assert json.loads(result.payload)["errorType"] == "Runtime.MarshalError"


def test_a_function_without_local_code_fails_clearly_instead_of_calling_docker(tmp_path: Path) -> None:
    registry = InProcessLambdas()
    with in_process_lambdas(registry):
        role = local_execution_role(boto3.client("iam"))
        boto3.client("lambda").create_function(
            FunctionName="not-local",
            Runtime="python3.12",
            Role=role,
            Handler="app.lambda_handler",
            Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
        )
        payload, function_error = _invoke("not-local", {})

    assert function_error == "Handled"
    assert payload["errorType"] == "Runtime.HandlerNotFound"


def test_a_missing_handler_is_named(tmp_path: Path) -> None:
    code_dir = write_function(tmp_path, "nohandler", "x = 1\n")

    with pytest.raises(Exception, match="no callable 'lambda_handler'"):
        load_handler(code_dir, "app.lambda_handler")
    result = invoke_in_process(FunctionSpec("fn-missing", code_dir, handler="nope.lambda_handler"), {})
    assert json.loads(result.payload)["errorType"] == "Runtime.HandlerNotFound"
