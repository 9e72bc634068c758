"""The local stack's parsed-program cache (rescind_local.asl_programs) runs executions exactly as moto does when it
parses the definition at each execution: the same histories (event types, order, states, inputs and outputs), in
sequence and concurrently; the program an execution ran is left as a fresh parse makes it; an updated definition
is the one that runs; and a definition is parsed once, not once per execution. Its JSONPath cache reads and writes
the same values, and fails the same way, as moto's parse at each use, and parses each path once."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from enum import Enum
from types import SimpleNamespace
from typing import Any
from unittest import mock

import boto3
import hvac
import pytest
from moto import mock_aws
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from rescind_local import LocalOpenBao
from rescind_local.asl_programs import (
    idle_worker_patches,
    json_path_cache_patches,
    program_cache_patches,
    program_components,
    sdk_client_cache_patches,
)
from rescind_local.seed import prepare_vault, seed_workload
from rescind_local.stack import LocalStack
from rescind_local.stepfunctions import local_stepfunctions_fixes, wait_for_execution
from tests.conftest import load_event
from tests.integration.local_stack import moto_patched_by

pytestmark = pytest.mark.integration

MOTO_ENTRYPOINT = ExecutionWorker._get_evaluation_entrypoint  # moto's own: read before any local_aws() starts
ROLE_ARN = "arn:aws:iam::123456789012:role/sfn"
REQUEST_ID = re.compile(r"Request ID: \w+")

# A small machine with every kind of state the cache could carry state between executions in: a Pass with a
# literal Result (an object later states write beside), a Task retried (attempt counts on the heap) then caught,
# a Choice on the input, an inline Map, and a Fail.
SMALL_MACHINE: dict[str, Any] = {
    "StartAt": "Literal",
    "States": {
        "Literal": {"Type": "Pass", "Result": {"fixed": {"list": [1, 2]}}, "ResultPath": "$.literal", "Next": "Call"},
        "Call": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "absent-function", "Payload.$": "$"},
            "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 2.0}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.caught", "Next": "Each"}],
            "End": True,
        },
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 1,  # one at a time: concurrent iterations interleave differently at each run
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Double",
                "States": {
                    "Double": {
                        "Type": "Pass",
                        "Parameters": {"n.$": "$.n", "twice.$": "States.MathAdd($.n, $.n)"},
                        "End": True,
                    }
                },
            },
            "ResultPath": "$.doubled",
            "Next": "Which",
        },
        "Which": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.fail", "BooleanEquals": True, "Next": "Failed"}],
            "Default": "Done",
        },
        "Failed": {"Type": "Fail", "Error": "Asked.ToFail", "Cause": "the input asked"},
        "Done": {"Type": "Pass", "Parameters": {"literal.$": "$.literal", "doubled.$": "$.doubled"}, "End": True},
    },
}
INPUTS = {
    "succeeds": {"items": [{"n": 1}, {"n": 2}, {"n": 3}], "fail": False},
    "fails": {"items": [{"n": 5}], "fail": True},
}


def program_shape(value: Any) -> Any:
    """A parsed program as plain data: each object's class and fields (not the heap key, a UID made on use)."""
    if isinstance(value, Enum):
        return repr(value)
    if isinstance(value, dict):
        return {repr(key): program_shape(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [program_shape(item) for item in value]
    if hasattr(value, "__dict__"):
        fields = {name: item for name, item in vars(value).items() if not name.endswith("__heap_key")}
        return [type(value).__qualname__, program_shape(fields)]
    return value


def cached_program(definition: str) -> Any:
    """The program the patched entry point gives an execution of `definition` now."""
    details = SimpleNamespace(state_machine_details=SimpleNamespace(definition=definition))
    return ExecutionWorker._get_evaluation_entrypoint(SimpleNamespace(_evaluation_details=details))  # type: ignore[arg-type]


def history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    """An execution's events without their timestamps and moto's random request ids (the execution ARN is the
    same in each moto)."""
    events = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    kept = [{key: item for key, item in event.items() if key != "timestamp"} for event in events]
    return list(json.loads(REQUEST_ID.sub("Request ID: -", json.dumps(kept))))


@contextmanager
def moto_stepfunctions(cached: bool) -> Iterator[Any]:
    """A fresh moto running executions (retry intervals at 1/100), with or without the program cache."""
    with ExitStack() as stack:
        stack.enter_context(mock_aws(config={"stepfunctions": {"execute_state_machine": True}}))
        stack.enter_context(local_stepfunctions_fixes(time_scale=0.01))
        if cached:
            for patch in (
                *program_cache_patches(),
                *json_path_cache_patches(),
                *sdk_client_cache_patches(),
                *idle_worker_patches(),
            ):
                stack.enter_context(patch)
        yield boto3.client("stepfunctions", region_name="us-east-1")


def small_machine_runs(cached: bool) -> dict[str, Any]:
    """Each input run twice in sequence, then both at once: every history, and the program left in the cache."""
    with moto_stepfunctions(cached) as sfn:
        definition = json.dumps(SMALL_MACHINE)
        arn = sfn.create_state_machine(name="small", definition=definition, roleArn=ROLE_ARN)["stateMachineArn"]

        def start(name: str, label: str) -> str:
            started: str = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(INPUTS[label]))[
                "executionArn"
            ]
            return started

        runs: dict[str, Any] = {}
        for round_ in ("first", "second"):
            for label in INPUTS:
                execution_arn = start(f"{round_}-{label}", label)
                wait_for_execution(sfn, execution_arn)
                runs[f"{round_}-{label}"] = history(sfn, execution_arn)
        together = {label: start(f"together-{label}", label) for label in INPUTS}
        for label, execution_arn in together.items():
            wait_for_execution(sfn, execution_arn)
            runs[f"together-{label}"] = history(sfn, execution_arn)
        program = cached_program(definition) if cached else None
        return {"runs": runs, "program": program, "definition": definition}


def test_the_small_machine_runs_the_same_with_the_cache_in_sequence_and_concurrently() -> None:
    # Given the same machine run by moto as it is, and with the caches (programs, JSONPaths, SDK clients)
    plain = small_machine_runs(cached=False)
    cached = small_machine_runs(cached=True)

    # Then every history is the same, event for event, and the paths ran as written
    assert cached["runs"] == plain["runs"]
    for name, events in plain["runs"].items():
        expected_end = "ExecutionFailed" if name.endswith("fails") else "ExecutionSucceeded"
        assert events[-1]["type"] == expected_end, (name, events[-1])
        assert [event["type"] for event in events].count("LambdaFunctionFailed") + [
            event["type"] for event in events
        ].count("TaskFailed") == 3  # the first call and its two retries
    assert json.loads(plain["runs"]["second-succeeds"][-1]["executionSucceededEventDetails"]["output"]) == {
        "literal": {"fixed": {"list": [1, 2]}},
        "doubled": [{"n": 1, "twice": 2}, {"n": 2, "twice": 4}, {"n": 3, "twice": 6}],
    }

    # And the program six executions ran is still what a fresh parse makes
    fresh = AmazonStateLanguageParser.parse(cached["definition"])[0]
    assert program_shape(cached["program"]) == program_shape(fresh)


def test_a_definition_is_parsed_once_and_an_updated_definition_is_the_one_that_runs() -> None:
    parses = 0
    parse = AmazonStateLanguageParser.parse

    def counted(definition: str) -> Any:
        nonlocal parses
        parses += 1
        return parse(definition)

    def machine(result: str) -> str:
        return json.dumps(
            {"StartAt": "Say", "States": {"Say": {"Type": "Pass", "Result": {"version": result}, "End": True}}}
        )

    with moto_stepfunctions(cached=True) as sfn, mock.patch.object(AmazonStateLanguageParser, "parse", counted):
        arn = sfn.create_state_machine(name="m", definition=machine("v1"), roleArn=ROLE_ARN)["stateMachineArn"]
        outputs = []
        for _ in range(3):
            started = sfn.start_execution(stateMachineArn=arn)["executionArn"]
            outputs.append(json.loads(wait_for_execution(sfn, started)["output"]))
        parses_for_v1 = parses

        # When the definition is updated
        sfn.update_state_machine(stateMachineArn=arn, definition=machine("v2"))
        started = sfn.start_execution(stateMachineArn=arn)["executionArn"]
        outputs.append(json.loads(wait_for_execution(sfn, started)["output"]))

    # Then v1 was parsed at creation and at its first execution only, and v2 is what ran after the update
    assert parses_for_v1 == 2
    assert [output["version"] for output in outputs] == ["v1", "v1", "v1", "v2"]


# --- the service integrations' SDK clients --------------------------------------------------------------------

# Each integration the response machines use, twice (the second call on the kept client): SNS, EventBridge, and a
# Lambda invoke that fails (no such function) and is caught.
SERVICES_MACHINE: dict[str, Any] = {
    "StartAt": "Notify",
    "States": {
        "Notify": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sns:publish",
            "Parameters": {"TopicArn.$": "$.topic", "Subject": "run", "Message.$": "$.message"},
            "ResultSelector": {"sent.$": "States.ArrayLength(States.Array($.MessageId))"},
            "ResultPath": "$.notified",
            "Next": "Publish",
        },
        "Publish": {
            "Type": "Task",
            "Resource": "arn:aws:states:::events:putEvents",
            "Parameters": {
                "Entries": [{"Source": "rescind", "DetailType": "Run", "Detail.$": "States.JsonToString($)"}]
            },
            "ResultSelector": {"failed.$": "$.FailedEntryCount"},
            "ResultPath": "$.published",
            "Next": "Call",
        },
        "Call": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "absent-function", "Payload.$": "$"},
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.caught", "Next": "Again"}],
            "Next": "Again",
        },
        "Again": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sns:publish",
            "Parameters": {"TopicArn.$": "$.topic", "Message": "again"},
            "ResultPath": None,
            "End": True,
        },
    },
}


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def services_machine_runs(cached: bool) -> dict[str, Any]:
    """Two executions in sequence, then two at once: every history (moto's random message and event ids masked),
    and what the topic was sent."""
    from moto.sns.models import sns_backends

    with moto_stepfunctions(cached) as sfn:
        topic = boto3.client("sns", region_name="us-east-1").create_topic(Name="runs")["TopicArn"]
        definition = json.dumps(SERVICES_MACHINE)
        arn = sfn.create_state_machine(name="services", definition=definition, roleArn=ROLE_ARN)["stateMachineArn"]

        def start(name: str) -> str:
            started: str = sfn.start_execution(
                stateMachineArn=arn, name=name, input=json.dumps({"topic": topic, "message": name})
            )["executionArn"]
            return started

        def masked(execution_arn: str) -> Any:
            wait_for_execution(sfn, execution_arn)
            return json.loads(UUID.sub("<id>", json.dumps(history(sfn, execution_arn))))

        runs = {name: masked(start(name)) for name in ("first", "second")}
        together = {name: start(name) for name in ("third", "fourth")}
        runs.update({name: masked(execution_arn) for name, execution_arn in together.items()})
        notifications = sns_backends["123456789012"]["us-east-1"].topics[topic].sent_notifications
        return {"runs": runs, "sent": sorted(str(notification[1]) for notification in notifications)}


def test_the_service_integrations_call_the_same_with_kept_clients_as_with_new_ones() -> None:
    # Given a machine calling SNS, EventBridge and Lambda, run by moto as it is, and with the caches
    plain = services_machine_runs(cached=False)
    cached = services_machine_runs(cached=True)

    # Then every history is the same, event for event, each run published twice and its Lambda call was caught
    assert cached == plain
    assert plain["sent"] == sorted(["first", "second", "third", "fourth", *["again"] * 4])
    for events in plain["runs"].values():
        types = [event["type"] for event in events]
        assert types[-1] == "ExecutionSucceeded"
        assert types.count("TaskSucceeded") == 3
        assert "LambdaFunctionFailed" in types or "TaskFailed" in types


def test_a_kept_client_is_one_per_region_service_and_role() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.credentials import StateCredentials
    from moto.stepfunctions.parser.asl.utils import boto_client

    with moto_patched_by(sdk_client_cache_patches()):
        kept = vars(lambda_eval_utils)["boto_client_for"]
        first = kept(region="us-east-1", service="lambda", state_credentials=StateCredentials(role_arn=ROLE_ARN))
        assert (
            kept(region="us-east-1", service="lambda", state_credentials=StateCredentials(role_arn=ROLE_ARN)) is first
        )
        assert boto_client.boto_client_for(region="us-east-1", service="lambda") is not first  # no role: another
        assert kept(region="eu-west-1", service="lambda") is not kept(region="us-east-1", service="lambda")
        assert kept(region="us-east-1", service="sns") is not kept(region="us-east-1", service="lambda")


def test_every_module_that_builds_a_client_per_task_is_patched() -> None:
    import importlib
    import pkgutil

    import moto.stepfunctions.parser as parser
    from moto.stepfunctions.parser.asl.utils import boto_client

    build = boto_client.boto_client_for  # moto's own, before any patch
    builders = set()
    for module_info in pkgutil.walk_packages(parser.__path__, f"{parser.__name__}."):
        try:
            module = importlib.import_module(module_info.name)
        except ImportError:
            continue
        if getattr(module, "boto_client_for", None) is build:
            builders.add(module_info.name)
    with ExitStack() as stack:
        for patch in sdk_client_cache_patches():
            stack.enter_context(patch)
        unpatched = {name for name in builders if importlib.import_module(name).boto_client_for is build}
    assert unpatched == set()
    assert len(builders) >= 10  # the walk found moto's integrations


# --- a Map's workers ----------------------------------------------------------------------------------------

# An INLINE and a DISTRIBUTED Map over the same items, each allowed far more workers than it has items.
MAPS_MACHINE: dict[str, Any] = {
    "StartAt": "Inline",
    "States": {
        "Inline": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 40,
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Twice",
                "States": {
                    "Twice": {"Type": "Pass", "Parameters": {"twice.$": "States.MathAdd($.n, $.n)"}, "End": True}
                },
            },
            "ResultPath": "$.inline",
            "Next": "Distributed",
        },
        "Distributed": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 40,
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Thrice",
                "States": {
                    "Thrice": {
                        "Type": "Pass",
                        "Parameters": {"thrice.$": "States.MathAdd(States.MathAdd($.n, $.n), $.n)"},
                        "End": True,
                    }
                },
            },
            "ResultPath": "$.distributed",
            "End": True,
        },
    },
}
ITEM_COUNTS = (0, 1, 3, 50)  # none, one, a few, more than MaxConcurrency


def maps_machine_runs(cached: bool) -> tuple[dict[int, Any], int]:
    """One execution per item count: every history (moto's random map-run ids masked), and the worker threads
    started."""
    import threading

    started = 0
    start = threading.Thread.start

    def counted(thread: threading.Thread) -> None:
        nonlocal started
        worker = getattr(getattr(thread, "_target", None), "__self__", None)  # a bound `worker.eval`
        if worker is not None and type(worker).__name__.endswith("ProcessorWorker"):
            started += 1
        start(thread)

    with moto_stepfunctions(cached) as sfn, mock.patch.object(threading.Thread, "start", counted):
        definition = json.dumps(MAPS_MACHINE)
        arn = sfn.create_state_machine(name="maps", definition=definition, roleArn=ROLE_ARN)["stateMachineArn"]
        runs = {}
        for count in ITEM_COUNTS:
            items = [{"n": n} for n in range(count)]
            execution_arn = sfn.start_execution(
                stateMachineArn=arn, name=f"items-{count}", input=json.dumps({"items": items})
            )["executionArn"]
            wait_for_execution(sfn, execution_arn)
            runs[count] = json.loads(UUID.sub("<id>", json.dumps(history(sfn, execution_arn))))
    return runs, started


def _unordered(events: list[dict[str, Any]]) -> list[str]:
    """The events without their place in the history: each as sorted JSON, without its id and previous id."""
    return sorted(
        json.dumps({key: item for key, item in event.items() if key not in ("id", "previousEventId")}, sort_keys=True)
        for event in events
    )


def test_maps_run_the_same_items_with_a_worker_per_item_as_with_max_concurrency_workers() -> None:
    # Given Maps of no, one, a few and many items run by moto as it is, and with a worker per item at most
    plain, plain_workers = maps_machine_runs(cached=False)
    cached, cached_workers = maps_machine_runs(cached=True)

    # Then every history holds the same events (a Map's iterations interleave differently from run to run, so
    # they are compared in any order; a Map of one item or none, event for event), and each Map's output is its
    # items' in order
    assert {count: _unordered(events) for count, events in cached.items()} == {
        count: _unordered(events) for count, events in plain.items()
    }
    assert (cached[0], cached[1]) == (plain[0], plain[1])
    for count, events in plain.items():
        assert events[-1]["type"] == "ExecutionSucceeded", count
        output = json.loads(events[-1]["executionSucceededEventDetails"]["output"])
        assert output["inline"] == [{"twice": 2 * n} for n in range(count)]
        assert output["distributed"] == [{"thrice": 3 * n} for n in range(count)]
    # And moto started 40 workers a Map (50 for the Map of 50); with the patch, one an item, at most 40
    assert plain_workers == 2 * (40 * 3 + 40)
    assert cached_workers == 2 * (0 + 1 + 3 + 40)


# --- JSONPath expressions --------------------------------------------------------------------------------------

# Each kind of path a state reads: a field, nested fields, the root, an index (AWS unpacks a literal singleton), a
# wildcard, a slice, a filter, a path that is missing, a missing path with a wildcard (an empty list), and one
# that does not parse.
PATH_DATA: dict[str, Any] = {
    "plan": {"decision": "proceed", "counts": {"vault_token": 2}},
    "items": [{"n": 1, "tag": "a"}, {"n": 2, "tag": "b"}, {"n": 3, "tag": "a"}],
    "empty": [],
}
READ_PATHS = (
    "$.plan",
    "$.plan.decision",
    "$.plan.counts.vault_token",
    "$",
    "$.items[0]",
    "$.items[1].n",
    "$.items[*].n",
    "$.items[1:]",
    "$.items[?(@.tag == 'a')].n",
    "$.plan.absent",
    "$.empty[*].n",
    "$.plan.[",
)
WRITE_PATHS = ("$.result", "$.plan.result", "$.plan", "$.items[0].n", "$.new.nested.value")


def _read_and_write(paths_cached: bool) -> list[Any]:
    """What moto's extract_json answers (or raises) for each read path, and what ResultPath writes for each write
    path, twice each (the second from the cache when there is one)."""
    import copy

    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    answers: list[Any] = []
    with ExitStack() as stack:
        if paths_cached:
            for patch in json_path_cache_patches():
                stack.enter_context(patch)
        for _ in range(2):
            for path in READ_PATHS:
                data = copy.deepcopy(PATH_DATA)
                try:
                    answers.append((path, json_path.extract_json(path, data)))
                except Exception as error:  # the error itself is what is compared
                    answers.append((path, type(error).__name__, str(error)))
                assert data == PATH_DATA, path  # a read leaves its input as it was
            for path in WRITE_PATHS:
                data = copy.deepcopy(PATH_DATA)
                written = vars(result_path)["parse"](path).update_or_create(data, {"written": path})
                answers.append((path, written))
    return answers


def test_json_paths_read_write_and_fail_the_same_with_the_cache_as_without() -> None:
    # Given each kind of path read and written by moto as it is, and with the cache
    plain = _read_and_write(paths_cached=False)
    cached = _read_and_write(paths_cached=True)

    # Then every value read, every document written and every error is the same
    assert cached == plain
    by_path = dict(answer[:2] for answer in plain[: len(READ_PATHS)])
    assert by_path["$.items[*].n"] == [1, 2, 3]
    assert by_path["$.items[?(@.tag == 'a')].n"] == [1, 3]
    assert by_path["$.plan.absent"] == "NoSuchJsonPathError"
    assert by_path["$.empty[*].n"] == []
    assert by_path["$.plan.["] not in ("NoSuchJsonPathError", None)  # it does not parse, and says so


def test_a_json_path_is_parsed_once_and_a_bad_one_fails_every_time() -> None:
    from jsonpath_ng.ext.parser import parse
    from moto.stepfunctions.parser.asl.utils import json_path

    parses: list[str] = []

    def counted(path: str) -> Any:
        parses.append(path)
        return parse(path)

    with mock.patch.object(json_path, "parse", counted), ExitStack() as stack:
        for patch in json_path_cache_patches():  # made while the counting parse is moto's
            stack.enter_context(patch)
        for _ in range(3):
            assert json_path.extract_json("$.plan.decision", PATH_DATA) == "proceed"
        failures = 0
        for _ in range(2):
            try:
                json_path.extract_json("$.plan.[", PATH_DATA)
            except Exception:  # jsonpath_ng's own parse error
                failures += 1

    assert parses == ["$.plan.decision", "$.plan.[", "$.plan.["]
    assert failures == 2


# --- the template's response machine, through the whole local stack ---------------------------------------------


def _leak_event(access_key_id: str) -> dict[str, Any]:
    event = load_event("secret_leaked.json")
    event["id"] = str(uuid.uuid4())
    event["detail"]["secret_type"] = "aws_access_key"
    event["detail"]["secret"] = access_key_id
    return event


def _steps(sfn: Any, execution_arn: str) -> list[tuple[Any, ...]]:
    """The states an execution went through, in order: each event's type, state name and Map iteration index
    (the inputs and outputs name each run's own incident and credentials)."""
    steps = []
    for event in history(sfn, execution_arn):
        details: dict[str, Any] = next((item for key, item in event.items() if key.endswith("EventDetails")), {})
        steps.append((event["type"], details.get("name"), details.get("index")))
    return steps


def test_the_response_machine_runs_the_same_with_the_cache_as_without(
    stack: LocalStack, vault: hvac.Client, openbao: LocalOpenBao, unique: str
) -> None:
    # Given workloads, each with an access key to leak (killed first by deactivation, deleted by the run's Map)
    prepare_vault(vault)
    iam = boto3.client("iam")
    workloads = [seed_workload(vault, iam, f"p{n}-{unique}", f"spiffe://flows.rescind/p{n}-{unique}") for n in range(5)]
    sfn = boto3.client("stepfunctions")
    machine = stack.state_machine_arn("LeakResponseStateMachine")

    def respond(workload: Any) -> None:
        (match,) = stack.route_event(_leak_event(workload.access_key_ids[0]))
        assert [delivery.error_type for delivery in match.deliveries] == [None]

    def finished() -> dict[str, list[tuple[Any, ...]]]:
        listed = sfn.list_executions(stateMachineArn=machine)["executions"]
        for item in listed:
            assert wait_for_execution(sfn, item["executionArn"], 60)["status"] == "SUCCEEDED"
        return {item["executionArn"]: _steps(sfn, item["executionArn"]) for item in listed}

    # When one leak is answered by moto as it is, then one with the cache (its first parse), one reusing the
    # cached program, and two at once on it
    with mock.patch.object(ExecutionWorker, "_get_evaluation_entrypoint", MOTO_ENTRYPOINT):
        respond(workloads[0])
        (plain_arn,) = finished()
    for workload in workloads[1:3]:
        respond(workload)
        finished()
    for workload in workloads[3:]:
        respond(workload)
    steps = finished()

    # Then every execution went through the same states in the same order
    plain = steps.pop(plain_arn)
    assert len(steps) == 4
    # its Maps ran: INLINE ones, a leak's plan being small (the DISTRIBUTED ones run in tests/flows, at scale)
    assert {"RevokeInline", "VerifyInline", "Close"} <= {name for _, name, _ in plain}
    for execution_arn, cached_steps in steps.items():
        assert cached_steps == plain, execution_arn

    # And the program they ran is still what a fresh parse makes
    definition = sfn.describe_state_machine(stateMachineArn=machine)["definition"]
    fresh = AmazonStateLanguageParser.parse(definition)[0]
    assert program_shape(cached_program(definition)) == program_shape(fresh)
    assert len(list(program_components(fresh))) > 500
