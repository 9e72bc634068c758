"""moto's DISTRIBUTED Map made to keep the promises Rescind's state machines rely on, as AWS documents them.

moto 5.2.5 runs a DISTRIBUTED Map's items, but:
- a failed item is swallowed: the Map succeeds whatever ToleratedFailurePercentage says (the parser logs that
  the field "has no effect");
- its ResultWriter writes a manifest that lists no result file (`ResultFiles` all empty), so nothing after the
  Map can learn which items succeeded, with what output, or which failed.

`distributed_map_fixes()` (part of `local_stepfunctions_fixes`) patches both, for the local stack only:
- each item's child input (after ItemSelector), status, output or error and cause are kept on the Map run;
- after the items, the Map fails with `States.ExceedToleratedFailureThreshold` when the failed share is above
  the tolerated percentage (or above the tolerated count: either tolerance suffices, a simplification of AWS,
  where a Map that sets both fails when either is exceeded; Rescind sets only the percentage);
- the ResultWriter writes `SUCCEEDED_0.json` / `FAILED_0.json` beside the manifest, in the documented format
  (a JSON array of child executions with `Input`, `Output` or `Error`/`Cause` as JSON text, `Status`...), and
  the manifest lists them with their sizes.

What stays on paper (not checked against AWS from here): AWS splits result files at 5 GB and writes PENDING
files for items not started when a Map fails; the local version writes one file per status and no PENDING.
Contract tests: tests/integration/local_stack/test_distributed_map.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from typing import Any
from unittest import mock

_RESULTS = "rescind_child_results"
_CHILD_INPUT = "rescind_child_input"
_LOCK = threading.Lock()


def _child_results(map_run_record: Any) -> list[dict[str, Any]]:
    with _LOCK:
        results: list[dict[str, Any]] = map_run_record.__dict__.setdefault(_RESULTS, [])
    return results


def _patch_item_results() -> list[Any]:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor.distributed_item_processor_worker import (  # noqa: E501
        DistributedItemProcessorWorker,
    )
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramError

    original_eval_input = DistributedItemProcessorWorker._eval_input
    original_eval_job = DistributedItemProcessorWorker._eval_job

    def eval_input(self: Any, env_frame: Any) -> None:
        original_eval_input(self, env_frame)
        env_frame.__dict__[_CHILD_INPUT] = env_frame.states.get_input()  # the child's input, after ItemSelector

    def eval_job(self: Any, env: Any, job: Any) -> None:
        started = datetime.now(UTC)
        original_eval_job(self, env, job)
        result: dict[str, Any] = {
            "index": job.job_index,
            "input": env.__dict__.get(_CHILD_INPUT, job.job_input),
            "started": started,
            "stopped": datetime.now(UTC),
        }
        if job.job_output is not None:
            result.update(status="SUCCEEDED", output=job.job_output)
        else:
            state = env.program_state()
            details = state.error if isinstance(state, ProgramError) and state.error else {}
            result.update(
                status="FAILED",
                error=details.get("error", "States.Runtime"),
                cause=details.get("cause", "the child execution failed"),
            )
        _child_results(self._map_run_record).append(result)

    return [
        mock.patch.object(DistributedItemProcessorWorker, "_eval_input", eval_input),
        mock.patch.object(DistributedItemProcessorWorker, "_eval_job", eval_job),
    ]


def _patch_tolerance() -> list[Any]:
    from moto.stepfunctions.parser.api import HistoryEventType, MapRunFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
        DistributedIterationComponent,
    )

    original_map_run = DistributedIterationComponent._map_run

    def map_run(self: Any, env: Any, eval_input: Any) -> None:
        original_map_run(self, env, eval_input)
        results = _child_results(eval_input.map_run_record)
        failed = sum(1 for result in results if result["status"] == "FAILED")
        if not failed:
            return
        percentage = 100.0 * failed / len(results)
        if percentage <= eval_input.tolerated_failure_percentage or failed <= eval_input.tolerated_failure_count:
            return
        error = StatesErrorNameType.StatesExceedToleratedFailureThreshold.to_name()
        cause = (
            f"The specified tolerated failure threshold was exceeded: {failed} of {len(results)} items failed "
            f"({percentage:.1f}% > {eval_input.tolerated_failure_percentage}%)"
        )
        details: Any = {"mapRunFailedEventDetails": MapRunFailedEventDetails(error=error, cause=cause)}
        raise FailureEventException(
            FailureEvent(
                env=env,
                error_name=StatesErrorName(typ=StatesErrorNameType.StatesExceedToleratedFailureThreshold),
                event_type=HistoryEventType.MapRunFailed,
                event_details=details,
            )
        )

    return [mock.patch.object(DistributedIterationComponent, "_map_run", map_run)]


def _child_record(map_run_arn: str, result: dict[str, Any]) -> dict[str, Any]:
    """One child execution as AWS's ResultWriter lists it."""
    name = f"{result['index']:08d}"
    execution_arn = map_run_arn.replace(":mapRun:", ":execution:") + f":{name}"
    record: dict[str, Any] = {
        "ExecutionArn": execution_arn,
        "Input": json.dumps(result["input"]),
        "InputDetails": {"Included": True},
        "Name": name,
        "RedriveCount": 0,
        "RedriveStatus": "NOT_REDRIVABLE",
        "StartDate": result["started"].isoformat(),
        "StateMachineArn": map_run_arn.rsplit(":", 1)[0].replace(":mapRun:", ":stateMachine:"),
        "Status": result["status"],
        "StopDate": result["stopped"].isoformat(),
    }
    if result["status"] == "SUCCEEDED":
        record.update(Output=json.dumps(result["output"]), OutputDetails={"Included": True})
    else:
        record.update(Error=result["error"], Cause=result["cause"])
    return record


def _patch_result_writer() -> list[Any]:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval.resource_eval_s3 import (  # noqa: E501
        ResourceEvalS3,
    )

    def handle_put_object(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
        parameters = env.stack.pop()
        env.stack.pop()  # the items' outputs: written below from the Map run's own record of them
        s3 = ResourceEvalS3._get_s3_client(
            resource_runtime_part=resource_runtime_part, state_credentials=state_credentials
        )
        map_run_record = env.map_run_record_pool_manager.get_all().pop()
        map_run_arn = map_run_record.map_run_arn
        prefix = parameters.get("Prefix", "")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        folder = f"{prefix}{map_run_arn.split(':')[-1]}/"
        files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
        results = sorted(_child_results(map_run_record), key=lambda result: result["index"])
        for status in ("SUCCEEDED", "FAILED"):
            records = [_child_record(map_run_arn, result) for result in results if result["status"] == status]
            if records:
                body = json.dumps(records).encode()
                key = f"{folder}{status}_0.json"
                s3.put_object(Bucket=parameters["Bucket"], Key=key, Body=body)
                files[status].append({"Key": key, "Size": len(body)})
        manifest = {"DestinationBucket": parameters["Bucket"], "MapRunArn": map_run_arn, "ResultFiles": files}
        key = f"{folder}manifest.json"
        s3.put_object(Bucket=parameters["Bucket"], Key=key, Body=json.dumps(manifest, indent=2).encode())
        env.stack.append(
            {"MapRunArn": map_run_arn, "ResultWriterDetails": {"Bucket": parameters["Bucket"], "Key": key}}
        )

    return [mock.patch.object(ResourceEvalS3, "_handle_put_object", staticmethod(handle_put_object))]


def distributed_map_patches() -> list[Any]:
    """The patches of moto's DISTRIBUTED Map (see the module docstring), not yet started."""
    return _patch_item_results() + _patch_tolerance() + _patch_result_writer()


@contextmanager
def distributed_map_fixes() -> Iterator[None]:
    """Patch moto's DISTRIBUTED Map while the block runs."""
    with ExitStack() as stack:
        for patch in distributed_map_patches():
            stack.enter_context(patch)
        yield
