"""Step Functions' limit on a Standard execution's state, checked on an execution's history.

AWS fails a run whose state input or output, or a task's result, is over 256 KB (`States.DataLimitExceeded`);
moto 5.2.5 enforces none of it, so a flow that passes locally could fail on AWS. These read every input, output
and task result the history recorded and measure it in UTF-8 bytes, as AWS does."""

from __future__ import annotations

import json
from typing import Any

import boto3

from rescind_cli.runs.history import execution_history

STATE_LIMIT_BYTES = 256 * 1024
_MEASURED = ("input", "output", "parameters")


def state_sizes(events: list[dict[str, Any]]) -> list[tuple[int, str, int]]:
    """(event id, event type, bytes) of every input, output and task parameters or result in the history."""
    sizes = []
    for event in events:
        for key, details in event.items():
            if not (key.endswith("EventDetails") and isinstance(details, dict)):
                continue
            for field in _MEASURED:
                text = details.get(field)
                if isinstance(text, str):
                    sizes.append((int(event.get("id", 0)), str(event["type"]), len(text.encode())))
    return sizes


def largest_state_bytes(events: list[dict[str, Any]]) -> int:
    return max((size for _, _, size in state_sizes(events)), default=0)


def assert_within_state_limit(events: list[dict[str, Any]]) -> None:
    """Every state of the execution stayed within AWS's 256 KB, as it must to run there (`events`: its history)."""
    assert events, "no history to measure"
    over = [entry for entry in state_sizes(events) if entry[2] > STATE_LIMIT_BYTES]
    assert over == [], json.dumps(over[:5])


def assert_execution_within_state_limit(execution_arn: str) -> None:
    """`assert_within_state_limit` on the history of the execution, read from the active moto."""
    assert_within_state_limit(execution_history(boto3.client("stepfunctions"), execution_arn))
