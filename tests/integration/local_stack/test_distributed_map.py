"""moto's DISTRIBUTED Map, as it is (pinned, so an upgrade that changes it is noticed) and as the local stack patches
it (rescind_local.distributed_map): failures past the tolerance fail the Map, and the ResultWriter writes each
item's input, output or error in AWS's documented format, which the close task reads."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import boto3
import pytest

from rescind_local.lambdas import FunctionSpec, InProcessLambdas, create_local_function, in_process_lambdas
from rescind_local.lambdas import local_execution_role as execution_role
from rescind_local.stepfunctions import create_local_state_machine, local_stepfunctions_fixes, wait_for_execution
from tests.integration.local_stack import write_function
from tests.integration.local_stack.test_stepfunctions import FLAKY_HANDLER

BUCKET = "rescind-map-results"


class Machine:
    def __init__(self, function_arn: str, role_arn: str) -> None:
        self.function_arn = function_arn
        self.role_arn = role_arn
        self.sfn = boto3.client("stepfunctions")
        self.s3 = boto3.client("s3")

    def run(self, definition: dict[str, Any], execution_input: dict[str, Any]) -> dict[str, Any]:
        arn = create_local_state_machine(self.sfn, f"dm-{time.monotonic_ns()}", definition, self.role_arn)
        started = self.sfn.start_execution(stateMachineArn=arn, input=json.dumps(execution_input))
        return wait_for_execution(self.sfn, started["executionArn"], timeout=30)

    def read(self, key: str) -> Any:
        return json.loads(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def _machine(tmp_path: Path, patched: bool) -> Iterator[Machine]:
    registry = InProcessLambdas()
    with ExitStack() as stack:
        stack.enter_context(in_process_lambdas(registry))
        if patched:
            stack.enter_context(local_stepfunctions_fixes(time_scale=0.01))
        role = execution_role(boto3.client("iam"))
        spec = FunctionSpec("flaky", write_function(tmp_path, "flaky", FLAKY_HANDLER))
        registry.register(spec)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield Machine(create_local_function(boto3.client("lambda"), spec, role), role)


@pytest.fixture
def patched(aws: None, tmp_path: Path) -> Iterator[Machine]:
    yield from _machine(tmp_path, patched=True)


@pytest.fixture
def raw_moto(aws: None, tmp_path: Path) -> Iterator[Machine]:
    yield from _machine(tmp_path, patched=False)


def _definition(machine: Machine, tolerated: float) -> dict[str, Any]:
    """Items from S3 (as the response state machine reads a plan), results to S3, failures caught at the Map."""
    return {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "JSON"},
                    "Parameters": {"Bucket": BUCKET, "Key.$": "$.items_key"},
                },
                "ItemSelector": {
                    "run.$": "$.run",
                    "counter.$": "$$.Map.Item.Value.counter",
                    "item.$": "$$.Map.Item.Value.item",
                    "refuse.$": "$$.Map.Item.Value.refuse",
                },
                "MaxConcurrency": 2,
                "ToleratedFailurePercentage": tolerated,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Act",
                    "States": {"Act": {"Type": "Task", "Resource": machine.function_arn, "End": True}},
                },
                "ResultWriter": {
                    "Resource": "arn:aws:states:::s3:putObject",
                    "Parameters": {"Bucket": BUCKET, "Prefix": "results/run-1"},
                },
                "ResultPath": "$.results",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }


def _items(machine: Machine, tmp_path: Path, refused: set[int]) -> dict[str, str]:
    items = [{"counter": str(tmp_path / f"c{index}"), "item": index, "refuse": index in refused} for index in range(5)]
    machine.s3.put_object(Bucket=BUCKET, Key="plans/items.json", Body=json.dumps(items).encode())
    return {"items_key": "plans/items.json", "run": "run-1"}


def test_pinned_raw_moto_swallows_a_failed_item_and_writes_an_empty_manifest(raw_moto: Machine, tmp_path: Path) -> None:
    described = raw_moto.run(_definition(raw_moto, 0.0), _items(raw_moto, tmp_path, refused={3}))

    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    assert "error" not in output  # AWS would fail the Map (0% tolerated) and the Catch would run
    manifest = raw_moto.read(output["results"]["ResultWriterDetails"]["Key"])
    assert manifest["ResultFiles"] == {"FAILED": [], "PENDING": [], "SUCCEEDED": []}


def test_within_the_tolerance_the_results_name_every_item_with_its_input_and_output_or_error(
    patched: Machine, tmp_path: Path
) -> None:
    # Given five items, one of which fails, and 50% tolerated
    described = patched.run(_definition(patched, 50.0), _items(patched, tmp_path, refused={3}))

    # Then the Map succeeds, and its manifest lists a SUCCEEDED and a FAILED file in AWS's format
    assert described["status"] == "SUCCEEDED"
    details = json.loads(described["output"])["results"]["ResultWriterDetails"]
    assert details["Bucket"] == BUCKET
    assert details["Key"].startswith("results/run-1/")
    assert details["Key"].endswith("/manifest.json")
    manifest = patched.read(details["Key"])
    assert manifest["DestinationBucket"] == BUCKET
    assert manifest["ResultFiles"]["PENDING"] == []
    succeeded = [child for entry in manifest["ResultFiles"]["SUCCEEDED"] for child in patched.read(entry["Key"])]
    failed = [child for entry in manifest["ResultFiles"]["FAILED"] for child in patched.read(entry["Key"])]
    assert sorted(json.loads(child["Input"])["item"] for child in succeeded) == [0, 1, 2, 4]
    assert {child["Status"] for child in succeeded} == {"SUCCEEDED"}
    assert all(json.loads(child["Output"])["item"] == json.loads(child["Input"])["item"] for child in succeeded)
    assert json.loads(succeeded[0]["Input"])["run"] == "run-1"  # the input after ItemSelector
    assert [(json.loads(child["Input"])["item"], child["Status"], child["Error"]) for child in failed] == [
        (3, "FAILED", "PolicyRefusal")
    ]
    assert "Output" not in failed[0]


def test_above_the_tolerance_the_map_fails_and_its_catch_runs(patched: Machine, tmp_path: Path) -> None:
    described = patched.run(_definition(patched, 20.0), _items(patched, tmp_path, refused={1, 3}))

    assert described["status"] == "SUCCEEDED"  # through the Catch
    output = json.loads(described["output"])
    assert output["error"]["Error"] == "States.ExceedToleratedFailureThreshold"
    assert "2 of 5 items failed" in output["error"]["Cause"]
