"""moto's Step Functions made to parse a state machine's definition once, not once per execution: local stack only.

moto 5.2 (LocalStack's interpreter) turns the definition's ASL text into its program tree (ANTLR parse, then the
preprocessor) at the start of every execution: about 0.2 s for the response state machine, most of what an
execution costs locally. AWS parses a definition when it is created or updated; the figures measured moto.
`program_cache_patches()` keeps the parsed program per exact definition text, so an execution reuses it, and an
updated definition (other text) is parsed afresh.

Sharing is safe because an execution does not write to its program: every per-execution value (the stack, the
heap of Retry attempt counts and backoff multipliers, Map job pools, map-run records, branch workers) lives in the
execution's `Environment` or in objects made by `eval`, keyed on the heap by each component's `heap_key`. That key
is a UID made lazily on first use, so it is made here, once, before a program is shared: two executions reading it
at once would otherwise each make their own. Unpatched, a Map's concurrent iterations already share one program.
Contract test: tests/integration/local_stack/test_asl_programs.py (same histories patched and unpatched, in
sequence and concurrently; the cached program after executions equals a fresh parse; an update is honoured).

The same holds for the JSONPath expressions in a definition (`$.plan.decision`, `$.Payload.incident_id`): moto
parses each one with jsonpath_ng (a PLY parser built afresh at each call, about 0.75 ms) every time a state reads
or writes through it, some fifty times in one leak response, where AWS reads them with the definition.
`json_path_cache_patches()` keeps each parsed expression by its text. A parsed expression is a tree its `find` and
`update_or_create` only read (their fields are set once, in `__init__`), so executions share it; a path that fails
to parse is not kept and fails again, as before. Contract test: the same file (same histories, and the same
values and errors for each kind of path moto's states read).

And for the SDK clients of its service integrations: moto builds a new boto3 client (5 to 8 ms) for every Task
state it runs (`lambda:invoke`, `sns:publish`, `events:putEvents`, a Map's S3 reader and writer), where AWS calls
the service. `sdk_client_cache_patches()` keeps one per region, service and task role for the life of the patch.
A boto3 client is safe to share between threads, and moto's interception is per request (its stubber, registered
on every client, asks whether the mock is on at each call), so a kept client reaches moto as a new one does.
Contract test: the same file (the same histories through Lambda, SNS and EventBridge tasks, patched and not).

And for a Map's workers: moto starts MaxConcurrency threads for every Map it runs (40 for Revoke), however few its
items, and each thread without an item ends at once. AWS runs the items. `idle_worker_patches()` starts at most one
worker per item (never more than moto would): the same items run, at most MaxConcurrency at a time, and a Map with
no item waits for none. Contract test: the same file (the same histories for INLINE and DISTRIBUTED Maps of no,
one and several items, patched and not).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any
from unittest import mock

# The template has a handful of state machines; tests create a few more. Oldest unused programs go first.
_PROGRAMS_KEPT = 32
_PATHS_KEPT = 4096  # distinct JSONPath texts: the template's definitions hold a few hundred


def program_components(program: Any) -> Iterator[Any]:
    """Every component of a parsed program, each once (the tree's attributes, lists and dicts, walked)."""
    from moto.stepfunctions.parser.asl.component.component import Component

    seen: set[int] = set()
    pending: list[Any] = [program]
    while pending:
        value = pending.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, Component):
            yield value
            pending.extend(vars(value).values())
        elif isinstance(value, list | tuple | set | frozenset):
            pending.extend(value)
        elif isinstance(value, dict):
            pending.extend(value.values())


class _ProgramCache:
    """Parsed programs by definition text; a definition is parsed by one thread while others asking wait."""

    def __init__(self) -> None:
        self._programs: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def program(self, definition: str) -> Any:
        from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
        from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

        with self._lock:
            if definition in self._programs:
                self._programs.move_to_end(definition)
                return self._programs[definition]
            program = AmazonStateLanguageParser.parse(definition)[0]
            for component in program_components(program):
                if isinstance(component, EvalComponent):
                    _ = component.heap_key  # made now, once, rather than raced for by two executions
            self._programs[definition] = program
            if len(self._programs) > _PROGRAMS_KEPT:
                self._programs.popitem(last=False)
            return program


def json_path_cache_patches() -> list[Any]:
    """The patches (not yet started): moto's two JSONPath parsers (jsonpath_ng's extended one, which reads paths,
    and its plain one, which ResultPath writes through) answer each text from a cache made for these patches."""
    from functools import lru_cache

    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    return [
        mock.patch.object(module, "parse", lru_cache(maxsize=_PATHS_KEPT)(vars(module)["parse"]))
        for module in (json_path, result_path)
    ]


# The modules of moto's interpreter that build a client per task (each imported `boto_client_for` by name).
_CLIENT_BUILDERS = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval.resource_eval_s3",
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval.resource_eval_s3",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_dynamodb",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_events",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_glue",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sns",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sqs",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_unsupported",
)


def sdk_client_cache_patches() -> list[Any]:
    """The patches (not yet started): every module in `_CLIENT_BUILDERS` gets its clients from one cache, made for
    these patches, by region, service, task role and whether moto intercepts calls (else it names its server)."""
    import importlib

    from moto.core.models import botocore_stubber
    from moto.stepfunctions.parser.asl.utils import boto_client

    build = boto_client.boto_client_for
    clients: dict[tuple[str, str, str | None, bool], Any] = {}
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        key = (region, service, getattr(state_credentials, "role_arn", None), bool(botocore_stubber.enabled))
        with lock:
            if key not in clients:
                clients[key] = build(region=region, service=service, state_credentials=state_credentials)
            return clients[key]

    return [
        mock.patch.object(importlib.import_module(name), "boto_client_for", boto_client_for)
        for name in (boto_client.__name__, *_CLIENT_BUILDERS)
    ]


_WORKERS_STARTED = "rescind_workers_started"


def idle_worker_patches() -> list[Any]:
    """The patch (not yet started): a Map's job pool gets no more workers than it has items."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.inline_iteration_component import (
        InlineIterationComponent,
    )

    launch = InlineIterationComponent._launch_worker
    lock = threading.Lock()

    def launch_worker(self: Any, env: Any, eval_input: Any, job_pool: Any) -> Any:
        with lock:
            started: int = job_pool.__dict__.get(_WORKERS_STARTED, 0)
            job_pool.__dict__[_WORKERS_STARTED] = started + 1
        if started >= job_pool._jobs_number:  # every item has its worker: this one would find none
            return None
        return launch(self, env=env, eval_input=eval_input, job_pool=job_pool)

    return [mock.patch.object(InlineIterationComponent, "_launch_worker", launch_worker)]


def program_cache_patches() -> list[Any]:
    """The patch (not yet started): an execution's entry point comes from a cache made for this patch."""
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    cache = _ProgramCache()

    def get_evaluation_entrypoint(self: Any) -> Any:
        return cache.program(self._evaluation_details.state_machine_details.definition)

    # TestState's worker overrides this method with its own parser and is left as moto runs it.
    return [mock.patch.object(ExecutionWorker, "_get_evaluation_entrypoint", get_evaluation_entrypoint)]
