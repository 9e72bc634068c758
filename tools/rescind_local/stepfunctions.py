"""The template's state machines, from the real ASL files, executed by moto's Step Functions interpreter.

moto 5.2.5 (with `execute_state_machine`) runs ASL with LocalStack's interpreter. What this module adds:

- `substitute_definition`: state machines created through moto's CloudFormation ignore
  DefinitionSubstitutions, so the local stack substitutes `${...}` itself and calls create_state_machine.
- `check_asl_next_targets`, `find_distributed_maps`: static checks moto does not make (it accepts a `Next`
  naming a missing state), and where the DISTRIBUTED Maps are, for the infra tests.
- `local_stepfunctions_fixes()`: patches for moto gaps, each proved by a contract test in
  tests/integration/local_stack/:
  * StartExecution without a name gets a UUID name, as on AWS (moto makes the ARN end in `:None`);
  * the `states:startExecution` integration (and `.sync`, `.sync:2`) gets camelCase API parameters and
    returns PascalCase fields with epoch-millisecond dates, as on AWS (moto passes the ASL's PascalCase
    parameters to boto3 and fails);
  * a DISTRIBUTED Map fails above its ToleratedFailurePercentage and its ResultWriter writes the items'
    results in AWS's format (moto swallows failed items and writes an empty manifest):
    `rescind_local.distributed_map`;
  * LOCAL-ONLY SPEED-UP, opt in with `time_scale`: Retry intervals, Wait states and the `.sync` polling
    delay are multiplied by `time_scale`. The definitions stay exactly as written; only the interpreter's
    sleeping is shortened. ASL forbids `IntervalSeconds: 0`, so rewriting the definition cannot do this.
- Installed by `local_aws()` rather than here, as a speed patch: a definition is parsed once, not at each
  execution (`rescind_local.asl_programs`).
- Not patched, and documented by contract tests: EXPRESS StartSyncExecution is not implemented; moto cannot
  parse `ItemBatcher` or `ResultWriter.WriterConfig`, and wants ToleratedFailurePercentage written as a
  decimal (`100.0`).
"""

from __future__ import annotations

import datetime
import json
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock
from uuid import uuid4

_SUBSTITUTION = re.compile(r"\$\{([^}!][^}]*)\}")


class UnresolvedSubstitution(ValueError):
    """A `${name}` in an ASL file has no DefinitionSubstitutions entry."""


class ExecutionTimedOut(TimeoutError):
    """A local execution was still RUNNING when the wait ended."""


# --- definitions -------------------------------------------------------------------------------------


def substitute_definition(text: str, substitutions: Mapping[str, str]) -> str:
    """Replace each `${name}` with its substitution, as CloudFormation does for DefinitionSubstitutions.

    Raises UnresolvedSubstitution naming every placeholder left without a value.
    """
    missing = sorted({name for name in _SUBSTITUTION.findall(text) if name not in substitutions})
    if missing:
        raise UnresolvedSubstitution(f"no DefinitionSubstitutions for: {', '.join(missing)}")
    return _SUBSTITUTION.sub(lambda match: str(substitutions[match.group(1)]), text)


def load_definition(path: Path, substitutions: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An ASL file, with its substitutions applied, as a dict."""
    text = path.read_text()
    if substitutions is not None:
        text = substitute_definition(text, substitutions)
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@dataclass(frozen=True)
class StateLocation:
    """A state and the scope it lives in: the top level, a Parallel branch or a Map's processor."""

    scope: str  # e.g. "" for the top level, "Fan.Branches[0]", "Each.ItemProcessor"
    name: str
    state: dict[str, Any]
    scope_state_names: frozenset[str]

    @property
    def path(self) -> str:
        return f"{self.scope}.{self.name}" if self.scope else self.name


def iter_states(definition: Mapping[str, Any], scope: str = "") -> Iterator[StateLocation]:
    """Every state of a definition, nested scopes included."""
    states: dict[str, Any] = dict(definition.get("States") or {})
    names = frozenset(states)
    for name, state in states.items():
        if not isinstance(state, dict):
            continue
        location = StateLocation(scope, name, state, names)
        yield location
        for index, branch in enumerate(state.get("Branches") or []):
            yield from iter_states(branch, f"{location.path}.Branches[{index}]")
        for key in ("ItemProcessor", "Iterator"):
            if isinstance(state.get(key), dict):
                yield from iter_states(state[key], f"{location.path}.{key}")


def _scopes(definition: Mapping[str, Any], scope: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield scope, definition
    for location in iter_states(definition, scope):
        for index, branch in enumerate(location.state.get("Branches") or []):
            yield f"{location.path}.Branches[{index}]", branch
        for key in ("ItemProcessor", "Iterator"):
            if isinstance(location.state.get(key), dict):
                yield f"{location.path}.{key}", location.state[key]


def check_asl_next_targets(definition: Mapping[str, Any]) -> list[str]:
    """Transitions to states that do not exist in their scope (moto and cfn-lint both accept them).

    Checks StartAt, Next, Choice `Default` and `Choices[].Next`, and `Catch[].Next`, in every scope.
    Returns one readable problem per bad target; empty means every target exists.
    """
    problems: list[str] = []
    seen_scopes: set[str] = set()
    for scope, body in _scopes(definition):
        if scope in seen_scopes:
            continue
        seen_scopes.add(scope)
        start_at = body.get("StartAt")
        if start_at not in (body.get("States") or {}):
            problems.append(f"{scope or '(top level)'}: StartAt {start_at!r} is not a state in this scope")
    for location in iter_states(definition):
        targets: list[tuple[str, Any]] = []
        if "Next" in location.state:
            targets.append(("Next", location.state["Next"]))
        if "Default" in location.state:
            targets.append(("Default", location.state["Default"]))
        for index, choice in enumerate(location.state.get("Choices") or []):
            if isinstance(choice, dict) and "Next" in choice:
                targets.append((f"Choices[{index}].Next", choice["Next"]))
        for index, catcher in enumerate(location.state.get("Catch") or []):
            if isinstance(catcher, dict) and "Next" in catcher:
                targets.append((f"Catch[{index}].Next", catcher["Next"]))
        for field_name, target in targets:
            if target not in location.scope_state_names:
                problems.append(f"{location.path}.{field_name}: {target!r} is not a state in this scope")
    return problems


def find_distributed_maps(definition: Mapping[str, Any]) -> list[str]:
    """Map states in DISTRIBUTED mode (unpatched moto reports them as succeeded even when an item fails)."""
    found = []
    for location in iter_states(definition):
        processor = location.state.get("ItemProcessor") or {}
        mode = (processor.get("ProcessorConfig") or {}).get("Mode") if isinstance(processor, dict) else None
        if location.state.get("Type") == "Map" and mode == "DISTRIBUTED":
            found.append(location.path)
    return found


# --- deploying and running -----------------------------------------------------------------------------


def create_local_state_machine(
    sfn_client: Any, name: str, definition: Mapping[str, Any], role_arn: str, machine_type: str = "STANDARD"
) -> str:
    created = sfn_client.create_state_machine(
        name=name, definition=json.dumps(definition), roleArn=role_arn, type=machine_type
    )
    arn: str = created["stateMachineArn"]
    return arn


def wait_for_execution(sfn_client: Any, execution_arn: str, timeout: float = 30.0) -> dict[str, Any]:
    """describe_execution once the execution has left RUNNING (moto runs executions in a thread)."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        described: dict[str, Any] = sfn_client.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        if time.monotonic() > deadline:
            raise ExecutionTimedOut(f"{execution_arn} still RUNNING after {timeout} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def failed_states(sfn_client: Any, execution_arn: str) -> list[dict[str, Any]]:
    """The failure events of an execution's history (TaskFailed, LambdaFunctionFailed, ExecutionFailed...)."""
    events = sfn_client.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    return [event for event in events if event["type"].endswith("Failed")]


# --- patches for moto's gaps ------------------------------------------------------------------------------


def _epoch_millis(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    return value


def _pascal_case_api_fields(response: dict[str, Any]) -> None:
    """camelCase API fields → PascalCase, datetimes → epoch millis, as the Step Functions integration returns.

    Only the API's own fields are renamed: the child's Input/Output documents are left as they are.
    """
    for key in list(response):
        value = _epoch_millis(response.pop(key))
        if key.endswith("Details") and isinstance(value, dict):
            value = {inner[:1].upper() + inner[1:]: item for inner, item in value.items()}
        response[key[:1].upper() + key[1:]] = value


def _patch_sfn_integration() -> list[Any]:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_sfn

    service = state_task_service_sfn.StateTaskServiceSfn
    original_normalise_parameters = service._normalise_parameters

    def normalise_parameters(
        self: Any,
        parameters: dict[str, Any],
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        original_normalise_parameters(self, parameters, boto_service_name, service_action_name)
        if service_action_name is None:  # the ASL's own parameters, not the resolver's describe call
            for key in list(parameters):
                parameters[key[:1].lower() + key[1:]] = parameters.pop(key)

    def normalise_response(
        self: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None
    ) -> None:
        if isinstance(response, dict):
            _pascal_case_api_fields(response)

    return [
        mock.patch.object(service, "_normalise_parameters", normalise_parameters),
        mock.patch.object(service, "_normalise_response", normalise_response),
    ]


def _patch_execution_names() -> list[Any]:
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution

    def start_execution(
        self: Any,
        state_machine_arn: str,
        name: str | None = None,
        execution_input: Any = None,
        trace_header: Any = None,
    ) -> Any:
        return original(self, state_machine_arn, name or str(uuid4()), execution_input, trace_header)

    return [mock.patch.object(StepFunctionsParserBackend, "start_execution", start_execution)]


def _patch_time_scale(time_scale: float) -> list[Any]:
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_callback
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    scaled_time = SimpleNamespace(sleep=lambda seconds: time.sleep(seconds * time_scale), time=time.time)

    def wait_interval(self: Any, env: Any, wait_seconds: float) -> None:
        # The event is set when the execution stops, which ends the wait early, as in moto's own version.
        if wait_seconds > 0:
            env.program_state_event.wait(wait_seconds * time_scale)

    return [
        mock.patch.object(retrier_decl, "time", scaled_time),
        mock.patch.object(WaitFunction, "_wait_interval", wait_interval),
        mock.patch.object(
            state_task_service_callback,
            "_DELAY_SECONDS_SYNC_CONDITION_CHECK",
            state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK * time_scale,
        ),
    ]


@contextmanager
def local_stepfunctions_fixes(time_scale: float | None = None) -> Iterator[None]:
    """Patch moto's Step Functions gaps (see the module docstring) while the block runs.

    `time_scale` (e.g. 0.01) is a LOCAL-ONLY speed-up for tests: Retry intervals, Wait states and `.sync`
    polling sleep that fraction of their real time. None keeps real timing.
    """
    from rescind_local.distributed_map import distributed_map_patches

    patches = _patch_execution_names() + _patch_sfn_integration() + distributed_map_patches()
    if time_scale is not None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        patches += _patch_time_scale(time_scale)
    with ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        yield
