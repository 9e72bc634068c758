"""Step Functions on moto: the interpreter runs our in-process handlers, and our patches close its gaps."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from rescind_local.lambdas import FunctionSpec, InProcessLambdas, create_local_function, in_process_lambdas
from rescind_local.lambdas import local_execution_role as execution_role
from rescind_local.stepfunctions import (
    UnresolvedSubstitution,
    check_asl_next_targets,
    create_local_state_machine,
    find_distributed_maps,
    local_stepfunctions_fixes,
    substitute_definition,
    wait_for_execution,
)
from tests.integration.local_stack import write_function

FLAKY_HANDLER = """
    from pathlib import Path


    class VaultUnavailable(Exception):
        pass


    class PolicyRefusal(Exception):
        pass


    def lambda_handler(event, context):
        counter = Path(event["counter"])
        attempt = int(counter.read_text() or "0") + 1 if counter.exists() else 1
        counter.write_text(str(attempt))
        if event.get("refuse"):
            raise PolicyRefusal("on hold")
        if attempt <= event.get("fail_times", 0):
            raise VaultUnavailable("vault did not answer")
        return {"attempt": attempt, "item": event.get("item")}
"""


class Local:
    def __init__(self, function_arn: str, role_arn: str) -> None:
        self.function_arn = function_arn
        self.role_arn = role_arn
        self.sfn = boto3.client("stepfunctions")

    def run(self, definition: dict[str, Any], execution_input: dict[str, Any]) -> dict[str, Any]:
        name = f"sm-{time.monotonic_ns()}"
        arn = create_local_state_machine(self.sfn, name, definition, self.role_arn)
        started = self.sfn.start_execution(stateMachineArn=arn, input=json.dumps(execution_input))
        return wait_for_execution(self.sfn, started["executionArn"], timeout=20)


@pytest.fixture
def local(aws: None, tmp_path: Path) -> Iterator[Local]:
    registry = InProcessLambdas()
    with in_process_lambdas(registry), local_stepfunctions_fixes(time_scale=0.01):
        role = execution_role(boto3.client("iam"))
        spec = FunctionSpec("flaky", write_function(tmp_path, "flaky", FLAKY_HANDLER))
        registry.register(spec)
        yield Local(create_local_function(boto3.client("lambda"), spec, role), role)


def _task(local: Local, **extra: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": local.function_arn, **extra}


def test_catch_by_the_handler_errors_class_name_fires(local: Local, tmp_path: Path) -> None:
    definition = {
        "StartAt": "Act",
        "States": {
            "Act": _task(
                local,
                Catch=[{"ErrorEquals": ["PolicyRefusal"], "ResultPath": "$.error", "Next": "Refused"}],
                End=True,
            ),
            "Refused": {"Type": "Pass", "End": True},
        },
    }

    described = local.run(definition, {"counter": str(tmp_path / "c"), "refuse": True})

    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"])["error"]["Error"] == "PolicyRefusal"


def test_retry_by_the_handler_errors_class_name_retries_and_time_scale_shortens_the_interval(
    local: Local, tmp_path: Path
) -> None:
    retry = [{"ErrorEquals": ["VaultUnavailable"], "IntervalSeconds": 2, "BackoffRate": 2, "MaxAttempts": 3}]
    definition = {"StartAt": "Act", "States": {"Act": _task(local, Retry=retry, End=True)}}
    counter = tmp_path / "c"

    started = time.monotonic()
    described = local.run(definition, {"counter": str(counter), "fail_times": 2})
    elapsed = time.monotonic() - started

    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"])["attempt"] == 3
    assert elapsed < 2, "2 s + 4 s of Retry intervals at time_scale=0.01 should take well under 2 s"


def test_an_error_no_retrier_names_fails_the_execution_with_that_error(local: Local, tmp_path: Path) -> None:
    retry = [{"ErrorEquals": ["VaultUnavailable"], "MaxAttempts": 3}]
    definition = {"StartAt": "Act", "States": {"Act": _task(local, Retry=retry, End=True)}}

    described = local.run(definition, {"counter": str(tmp_path / "c"), "refuse": True})

    assert described["status"] == "FAILED"
    assert described["error"] == "PolicyRefusal"
    assert (tmp_path / "c").read_text() == "1"


def test_an_inline_map_runs_the_handler_for_each_item_and_fails_when_one_fails(local: Local, tmp_path: Path) -> None:
    def map_over(items_key: str) -> dict[str, Any]:
        return {
            "StartAt": "Each",
            "States": {
                "Each": {
                    "Type": "Map",
                    "ItemsPath": f"$.{items_key}",
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "INLINE"},
                        "StartAt": "Act",
                        "States": {"Act": _task(local, End=True)},
                    },
                    "End": True,
                }
            },
        }

    items = [{"counter": str(tmp_path / f"c{n}"), "item": n} for n in range(3)]
    described = local.run(map_over("items"), {"items": items})
    assert described["status"] == "SUCCEEDED"
    assert [result["item"] for result in json.loads(described["output"])] == [0, 1, 2]

    failing = [*items[:1], {"counter": str(tmp_path / "bad"), "refuse": True}]
    assert local.run(map_over("items"), {"items": failing})["error"] == "PolicyRefusal"


def test_a_wait_state_is_shortened_by_time_scale(local: Local) -> None:
    definition = {"StartAt": "Pause", "States": {"Pause": {"Type": "Wait", "Seconds": 30, "End": True}}}

    started = time.monotonic()
    described = local.run(definition, {})

    assert described["status"] == "SUCCEEDED"
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("integration", ["startExecution.sync", "startExecution.sync:2"])
def test_a_nested_sync_execution_takes_the_asl_parameters_and_returns_the_aws_shape(
    local: Local, integration: str
) -> None:
    # moto alone passes the PascalCase ASL parameters to boto3 and fails with States.Runtime 'StateMachineArn'
    child = create_local_state_machine(
        local.sfn,
        f"child-{time.monotonic_ns()}",
        {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "Parameters": {"got.$": "$.a"}, "End": True}}},
        local.role_arn,
    )
    definition = {
        "StartAt": "Child",
        "States": {
            "Child": {
                "Type": "Task",
                "Resource": f"arn:aws:states:::states:{integration}",
                "Parameters": {"StateMachineArn": child, "Input": {"a": 1}},
                "End": True,
            }
        },
    }

    described = local.run(definition, {})

    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["Status"] == "SUCCEEDED"
    assert output["StateMachineArn"] == child
    assert isinstance(output["StartDate"], int)
    child_output = output["Output"] if integration.endswith(":2") else json.loads(output["Output"])
    assert child_output == {"got": 1}


def test_start_execution_without_a_name_gets_a_uuid_name(local: Local) -> None:
    arn = create_local_state_machine(
        local.sfn, "named", {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}, local.role_arn
    )
    first = local.sfn.start_execution(stateMachineArn=arn)["executionArn"]
    second = local.sfn.start_execution(stateMachineArn=arn)["executionArn"]

    assert not first.endswith(":None")
    assert first != second


# --- gaps we do not patch: these tests pin moto's behaviour, so a moto upgrade that changes it is noticed -----


def test_a_distributed_map_with_a_failed_item_and_no_tolerance_fails_as_on_aws(local: Local, tmp_path: Path) -> None:
    # moto alone reports success (tests/integration/local_stack/test_distributed_map.py pins that); patched here.
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Act",
                    "States": {"Act": _task(local, End=True)},
                },
                "End": True,
            }
        },
    }

    described = local.run(definition, {"items": [{"counter": str(tmp_path / "x"), "refuse": True}]})

    assert described["status"] == "FAILED"
    assert described["error"] == "States.ExceedToleratedFailureThreshold"
    assert find_distributed_maps(definition) == ["Each"]


def test_gap_express_start_sync_execution_is_not_implemented(local: Local) -> None:
    arn = local.sfn.create_state_machine(
        name="express",
        roleArn=local.role_arn,
        type="EXPRESS",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
    )["stateMachineArn"]

    with pytest.raises(ClientError, match="Not yet implemented"):
        local.sfn.start_sync_execution(stateMachineArn=arn, input="{}")


def test_gap_moto_accepts_a_next_to_a_missing_state_and_the_checker_finds_every_kind(local: Local) -> None:
    definition = {
        "StartAt": "Decide",
        "States": {
            "Decide": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "Gone"}],
                "Default": "Fan",
            },
            "Fan": {
                "Type": "Parallel",
                "Branches": [{"StartAt": "Nowhere", "States": {"Inner": {"Type": "Pass", "Next": "Missing"}}}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Absent"}],
                "Next": "Done",
            },
            "Done": {"Type": "Succeed"},
        },
    }

    create_local_state_machine(local.sfn, "dangling", definition, local.role_arn)  # moto accepts it

    problems = check_asl_next_targets(definition)
    assert len(problems) == 4
    assert any("Choices[0].Next: 'Gone'" in problem for problem in problems)
    assert any("Catch[0].Next: 'Absent'" in problem for problem in problems)
    assert any("Fan.Branches[0].Inner.Next: 'Missing'" in problem for problem in problems)
    assert any("StartAt 'Nowhere'" in problem for problem in problems)
    assert check_asl_next_targets({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}) == []


def test_substitute_definition_applies_definition_substitutions_and_names_missing_ones() -> None:
    # moto's CloudFormation ignores DefinitionSubstitutions (and needs openapi_spec_validator, not installed
    # here), so the local stack substitutes itself and creates the machine with create_state_machine.
    text = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "${Greeting}", "End": True}}})

    assert json.loads(substitute_definition(text, {"Greeting": "hello"}))["States"]["P"]["Result"] == "hello"
    with pytest.raises(UnresolvedSubstitution, match="Greeting"):
        substitute_definition(text, {})
