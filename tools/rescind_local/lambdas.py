"""The template's Lambda functions, run in-process on moto.

moto's Lambda backend runs code in Docker, and there is no Docker here. Every path that runs a function
(`lambda.Invoke`, Step Functions Lambda tasks, EventBridge and SNS Lambda targets) goes through one method,
`moto.awslambda.models.LambdaFunction._invoke_lambda`. `in_process_lambdas()` replaces that method with a call
of the function's real handler, loaded from its own CodeUri folder.

Contract with moto (see `_invoke_lambda` and the Step Functions parser's `lambda_eval_utils`):
`_invoke_lambda(event)` returns `(payload, errored, logs)`. On error the payload is the Lambda runtime's
error document, `{"errorType": <exception class name>, "errorMessage": ..., ...}`; Step Functions reads
`errorType` from it, so ASL `Retry`/`Catch` match on the exception's class name, as on AWS.

Environment: os.environ is process-wide, and Map/Parallel run tasks in threads. Each invocation (and each
handler's first import, its cold start) therefore holds one process-wide re-entrant lock while the function's
variables are applied to os.environ; the previous values are restored afterwards. Handlers run one at a time,
which is slower than AWS but never mixes two functions' environments. A handler that blocks waiting for
another function to run in a different thread would deadlock; Rescind's handlers never wait on each other
(the state machines orchestrate). Threads that do not hold the lock (a test polling an execution) still read
os.environ; `items()` and `values()` are therefore made to read one snapshot (see `_SnapshotEnviron`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import re
import sys
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, ItemsView, Iterator, Mapping, ValuesView
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

from rescind_local.aws import LOCAL_ACCOUNT_ID, LOCAL_REGION

Handler = Callable[[Any, Any], Any]

DEFAULT_RUNTIME = "python3.12"
DEFAULT_MEMORY_MB = 128
DEFAULT_TIMEOUT_SECONDS = 3

# One lock for the environment of every in-process handler (see the module docstring).
_HANDLER_LOCK = threading.RLock()
_MODULE_CACHE: dict[Path, ModuleType] = {}
_MODULE_CACHE_LOCK = threading.Lock()


class HandlerNotFound(RuntimeError):
    """The Handler setting does not name a callable in the function's CodeUri folder."""


@dataclass(frozen=True)
class FunctionSpec:
    """What the local stack needs to run one function: where its code is and what it runs with."""

    function_name: str
    code_dir: Path
    handler: str = "app.lambda_handler"
    environment: Mapping[str, str] = field(default_factory=dict)
    runtime: str = DEFAULT_RUNTIME
    memory_size: int = DEFAULT_MEMORY_MB
    timeout: int = DEFAULT_TIMEOUT_SECONDS
    logical_id: str = ""

    def function_arn(self, account_id: str = LOCAL_ACCOUNT_ID, region: str = LOCAL_REGION) -> str:
        return f"arn:aws:lambda:{region}:{account_id}:function:{self.function_name}"


@dataclass
class LocalLambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline_monotonic: float
    identity: Any = None
    client_context: Any = None
    tenant_id: str | None = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline_monotonic - time.monotonic()) * 1000))


@dataclass(frozen=True)
class Invocation:
    """One in-process run of a handler. Holds no payloads: those may carry more than references."""

    function_name: str
    request_id: str
    error_type: str | None
    duration_seconds: float


@dataclass(frozen=True)
class InvocationResult:
    payload: str
    errored: bool
    logs: str
    invocation: Invocation


def resolve_handler_file(code_dir: Path, handler: str) -> tuple[Path, str]:
    """`app.lambda_handler` → (code_dir/app.py, "lambda_handler"); `pkg/mod.fn` and `pkg.mod.fn` also work."""
    module_part, _, attribute = handler.rpartition(".")
    if not module_part or not attribute:
        raise HandlerNotFound(f"Handler {handler!r} is not of the form module.function")
    relative = module_part.replace(".", "/")
    candidates = [code_dir / f"{relative}.py", code_dir / relative / "__init__.py"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve(), attribute
    raise HandlerNotFound(f"Handler {handler!r}: no {relative}.py in {code_dir}")


def _module_name_for(path: Path) -> str:
    # The folder name keeps tracebacks readable; the hash keeps two folders of the same name apart.
    folder = re.sub(r"\W", "_", path.parent.name)
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    return f"rescind_fn_{folder}_{digest}"


def load_handler(code_dir: Path, handler: str) -> Handler:
    """The handler callable, loaded from its own file under a unique module name (several are `app.py`).

    Modules are cached per file for the life of the process, like a warm Lambda container. Import a handler
    inside `function_environment` when its module reads configuration at import time (a cold start).
    """
    path, attribute = resolve_handler_file(code_dir, handler)
    with _MODULE_CACHE_LOCK:
        module = _MODULE_CACHE.get(path)
        if module is None:
            name = _module_name_for(path)
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise HandlerNotFound(f"cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # pydantic and dataclasses look their module up here
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
            _MODULE_CACHE[path] = module
    function = getattr(module, attribute, None)
    if not callable(function):
        raise HandlerNotFound(f"Handler {handler!r}: {path.name} has no callable {attribute!r}")
    handler_function: Handler = function
    return handler_function


def forget_loaded_handlers() -> None:
    """Drop cached handler modules, so the next invocation is a cold start again."""
    with _MODULE_CACHE_LOCK:
        for module in _MODULE_CACHE.values():
            sys.modules.pop(module.__name__, None)
        _MODULE_CACHE.clear()


def runtime_environment(spec: FunctionSpec, region: str = LOCAL_REGION) -> dict[str, str]:
    """The variables the Lambda runtime sets, as far as in-process code needs them.

    AWS_SAM_LOCAL is what `sam local` sets; Powertools Tracer reads it and stays off (no X-Ray daemon here).
    Credentials are left alone: moto's fake ones from `local_aws()` apply.
    """
    return {
        "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "LAMBDA_TASK_ROOT": str(spec.code_dir),
        "_HANDLER": spec.handler,
        "AWS_SAM_LOCAL": "true",
    }


# One cache snapshot per (function, environment): what a warm execution environment keeps between events.
WarmCaches = dict[tuple[str, tuple[tuple[str, str], ...]], Any]


def _rescind_caching() -> Any:
    # Looked up, not imported: a handler that never imports rescind has no cache to reset.
    return sys.modules.get("rescind.caching")


def reset_rescind_caches() -> None:
    """The runtime's cached settings and clients depend on the environment a function is given."""
    caching = _rescind_caching()
    if caching is not None:
        caching.clear_caches()


class _SnapshotEnviron(os._Environ[str]):
    """os.environ whose `items()` and `values()` read one atomic copy of the variables.

    The stock views list the keys, then read each one: a handler restoring its environment in another thread
    can remove a key in between, and the reader gets a KeyError. botocore reads proxies through `items()` each
    time a client is built, so a test that builds a client while an execution runs would fail at random.
    """

    def items(self) -> ItemsView[str, str]:
        data: dict[str, str] = self.__dict__["_data"]  # the encoded variables; private in typeshed
        snapshot = dict(data)  # one C-level copy, atomic under the GIL
        return {self.decodekey(key): self.decodevalue(value) for key, value in snapshot.items()}.items()

    def values(self) -> ValuesView[str]:
        return {key: value for key, value in self.items()}.values()

    def copy(self) -> dict[str, str]:
        return dict(self.items())


def _snapshot_reads_of_environ() -> None:
    if type(os.environ) is os._Environ:
        os.environ.__class__ = _SnapshotEnviron


@contextmanager
def function_environment(
    variables: Mapping[str, str], *, function_name: str = "", warm: WarmCaches | None = None
) -> Iterator[None]:
    """Apply `variables` to os.environ under the handler lock, and restore what was there afterwards.

    In AWS each function has its own process; here they share one, so no function may see the settings and
    clients another function's environment built. Without `warm` every invocation starts cold (the caches are
    cleared); with it, each function finds the caches its last invocation with the same environment left.
    """
    with _HANDLER_LOCK:
        _snapshot_reads_of_environ()
        saved = {name: os.environ.get(name) for name in variables}
        os.environ.update(variables)
        container = (function_name, tuple(sorted(variables.items())))
        caching = _rescind_caching()
        if warm is not None and caching is not None:
            caching.restore_caches(warm.get(container, {}))
        else:
            reset_rescind_caches()
        try:
            yield
        finally:
            caching = _rescind_caching()
            if warm is not None and caching is not None:
                warm[container] = caching.snapshot_caches()
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _error_document(error: BaseException, request_id: str) -> dict[str, Any]:
    """The Python runtime's error payload. Messages of Rescind's typed errors carry references only."""
    return {
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


def _normalise_event(event: Any) -> Any:
    # moto passes "{}" (a string) when the invoke request had no payload.
    if event is None or event == "{}":
        return {}
    return event


def invoke_in_process(
    spec: FunctionSpec,
    event: Any,
    *,
    account_id: str = LOCAL_ACCOUNT_ID,
    region: str = LOCAL_REGION,
    warm: WarmCaches | None = None,
) -> InvocationResult:
    """Run the function's handler on `event` the way the Lambda runtime would, and never raise.

    `warm`: keep the function's cached settings and clients between invocations (see `function_environment`).
    """
    request_id = str(uuid.uuid4())
    started = time.monotonic()
    context = LocalLambdaContext(
        function_name=spec.function_name,
        function_version="$LATEST",
        invoked_function_arn=spec.function_arn(account_id, region),
        memory_limit_in_mb=spec.memory_size,
        aws_request_id=request_id,
        log_group_name=f"/aws/lambda/{spec.function_name}",
        log_stream_name=f"{time.strftime('%Y/%m/%d')}/[$LATEST]{request_id.replace('-', '')}",
        deadline_monotonic=started + spec.timeout,
    )
    variables = {**runtime_environment(spec, region), **spec.environment}
    error_type: str | None = None
    with function_environment(variables, function_name=spec.function_name, warm=warm):
        try:
            handler = load_handler(spec.code_dir, spec.handler)
            result = handler(_normalise_event(event), context)
        except HandlerNotFound as error:
            error_type = "Runtime.HandlerNotFound"
            payload = json.dumps({**_error_document(error, request_id), "errorType": error_type})
        except Exception as error:  # the runtime reports every handler error in the payload
            error_type = type(error).__name__
            payload = json.dumps(_error_document(error, request_id))
        else:
            try:
                payload = json.dumps(result)
            except (TypeError, ValueError) as error:
                error_type = "Runtime.MarshalError"  # what the runtime says when a result is not JSON
                payload = json.dumps({"errorMessage": f"Unable to marshal response: {error}", "errorType": error_type})
    duration = time.monotonic() - started
    invocation = Invocation(spec.function_name, request_id, error_type, duration)
    logs = (
        f"START RequestId: {request_id} Version: $LATEST\n"
        f"END RequestId: {request_id}\n"
        f"REPORT RequestId: {request_id}\tDuration: {duration * 1000:.2f} ms"
    )
    return InvocationResult(payload=payload, errored=error_type is not None, logs=logs, invocation=invocation)


@dataclass
class InProcessLambdas:
    """The functions the local stack runs in-process, by function name, and a record of their runs."""

    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    invocations: list[Invocation] = field(default_factory=list)
    # None: every invocation is a cold start (tests). A dict: functions stay warm, as on AWS between events.
    warm_caches: WarmCaches | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def register(self, spec: FunctionSpec) -> None:
        self.functions[spec.function_name] = spec

    def invocations_of(self, function_name: str) -> list[Invocation]:
        with self._lock:
            return [run for run in self.invocations if run.function_name == function_name]

    def run(self, function_name: str, event: Any, account_id: str, region: str) -> tuple[str, bool, str]:
        spec = self.functions.get(function_name)
        if spec is None:
            document = {
                "errorType": "Runtime.HandlerNotFound",
                "errorMessage": f"{function_name} was not deployed by rescind_local, so it has no local code",
            }
            return json.dumps(document), True, ""
        result = invoke_in_process(spec, event, account_id=account_id, region=region, warm=self.warm_caches)
        with self._lock:
            self.invocations.append(result.invocation)
        return result.payload, result.errored, result.logs


@contextmanager
def in_process_lambdas(registry: InProcessLambdas) -> Iterator[InProcessLambdas]:
    """While active, every moto Lambda invocation runs the registered function's real handler in-process."""
    from moto.awslambda.models import LambdaFunction

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        return registry.run(self.function_name, event, self.account_id, self.region)

    with mock.patch.object(LambdaFunction, "_invoke_lambda", _invoke_lambda):
        yield registry


def _code_zip(code_dir: Path) -> bytes:
    """A zip of the function's folder: moto stores it; the code that runs is always the folder itself."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(code_dir.rglob("*.py")):
            archive.write(path, path.relative_to(code_dir).as_posix())
        if not archive.namelist():
            archive.writestr("empty.py", "")
    return buffer.getvalue()


def create_local_function(lambda_client: Any, spec: FunctionSpec, role_arn: str) -> str:
    """Create the function in moto (so ARNs, Invoke and targets work) and return its ARN."""
    created = lambda_client.create_function(
        FunctionName=spec.function_name,
        Runtime=spec.runtime,
        Role=role_arn,
        Handler=spec.handler,
        Code={"ZipFile": _code_zip(spec.code_dir)},
        Timeout=spec.timeout,
        MemorySize=spec.memory_size,
        Environment={"Variables": dict(spec.environment)},
    )
    arn: str = created["FunctionArn"]
    return arn


def local_execution_role(iam_client: Any, name: str = "rescind-local-execution") -> str:
    """One role for every local function and state machine: moto checks that a role exists, not what it allows."""
    try:
        role = iam_client.get_role(RoleName=name)["Role"]
    except iam_client.exceptions.NoSuchEntityException:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com", "events.amazonaws.com"]},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role = iam_client.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    arn: str = role["Arn"]
    return arn
