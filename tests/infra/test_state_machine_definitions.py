"""The ASL files deploy in every partition: no ARN names `aws` outright, and every `${...}` is substituted.

The service integrations' ARNs are written `arn:${Partition}:states:::lambda:invoke` and the template substitutes
`Partition` with `AWS::Partition`, so the same definition runs in aws-cn and aws-us-gov. Locally the partition is
`aws`, which is what moto's interpreter matches (tests/flows run the substituted definitions).

Every Task retries transient errors and is caught, by its own Catch or by the Map or Parallel it runs in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rescind_local.stack import STATE_MACHINE_TYPES, state_machine_definition
from rescind_local.stepfunctions import _SUBSTITUTION
from rescind_local.template import load_template
from tests.infra.test_iam_scope import REPO_ROOT, central_resolver

ASL_FILES = sorted((REPO_ROOT / "statemachines").glob("*.asl.json"))
TEMPLATE = load_template(REPO_ROOT / "template.yaml")
STATE_MACHINES = {
    name: body["Properties"] for name, body in TEMPLATE["Resources"].items() if body["Type"] in STATE_MACHINE_TYPES
}


def _task_resources(states: dict[str, Any]) -> Iterator[str]:
    """The Resource of every Task, in Parallel branches and Map processors too."""
    for state in states.values():
        if state.get("Type") == "Task":
            yield state["Resource"]
        for branch in state.get("Branches", []):
            yield from _task_resources(branch["States"])
        for processor in ("ItemProcessor", "Iterator"):
            if processor in state:
                yield from _task_resources(state[processor]["States"])


def test_there_are_asl_files_and_state_machines_using_them() -> None:
    assert ASL_FILES
    assert {Path(props["DefinitionUri"]).name for props in STATE_MACHINES.values()} == {p.name for p in ASL_FILES}


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda path: path.name)
def test_no_asl_file_names_the_aws_partition(path: Path) -> None:
    lines = [number for number, line in enumerate(path.read_text().splitlines(), 1) if "arn:aws:" in line]
    assert lines == [], f"{path.name} lines {lines}: write arn:${{Partition}}:..., substituted with AWS::Partition"


@pytest.mark.parametrize("name", sorted(STATE_MACHINES))
def test_every_placeholder_of_the_definition_has_a_substitution(name: str) -> None:
    props = STATE_MACHINES[name]
    used = set(_SUBSTITUTION.findall((REPO_ROOT / props["DefinitionUri"]).read_text()))
    substitutions = props.get("DefinitionSubstitutions") or {}

    assert used - set(substitutions) == set(), f"{name} leaves these ${{...}} in its definition"
    if "Partition" in used:
        assert substitutions["Partition"] == {"Ref": "AWS::Partition"}, name


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
@pytest.mark.parametrize("name", sorted(STATE_MACHINES))
def test_the_integrations_take_the_stacks_partition(name: str, partition: str) -> None:
    resolver = central_resolver(TEMPLATE)
    resolver.pseudo["AWS::Partition"] = partition

    definition = state_machine_definition(TEMPLATE, name, resolver)

    integrations = [arn for arn in _task_resources(definition["States"]) if ":states:::" in arn]
    assert integrations, "the definition calls Lambda, SNS and EventBridge through service integrations"
    assert all(arn.startswith(f"arn:{partition}:states:::") for arn in integrations), integrations
    assert "${" not in json.dumps(definition)


def _tasks_and_their_catch(states: dict[str, Any], caught_outside: bool = False) -> Iterator[tuple[str, bool, bool]]:
    """(name, has a Retry, is caught: by its own Catch or by the Map or Parallel it runs in) of every Task."""
    for name, state in states.items():
        caught = caught_outside or bool(state.get("Catch"))
        if state.get("Type") == "Task":
            yield name, bool(state.get("Retry")), caught
        for branch in state.get("Branches", []):
            yield from _tasks_and_their_catch(branch["States"], caught)
        for processor in ("ItemProcessor", "Iterator"):
            if processor in state:
                yield from _tasks_and_their_catch(state[processor]["States"], caught)


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda path: path.name)
def test_every_task_retries_transient_errors_and_is_caught(path: Path) -> None:
    # The saga pattern: a transient error is retried, anything else goes to an undo or notify step, in the inline
    # and distributed Maps alike.
    definition = json.loads(path.read_text())
    tasks = list(_tasks_and_their_catch(definition["States"]))
    assert len(tasks) > 5
    assert [name for name, retries, _ in tasks if not retries] == []
    assert [name for name, _, caught in tasks if not caught] == []
