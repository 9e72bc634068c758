"""Where an execution is, read from DescribeExecution and its history: actions done of planned, the guard's
decision, and whether it waits for approval."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# A DISTRIBUTED Map's items run as child executions, whose events are not in this history: the Contain and Revoke
# Maps' items are counted from their Map runs (`Label` names them). Each item is a batch of the plan's
# `revoke_batch_size` actions (the last of each Map may hold fewer, so a count taken mid-run may be ahead by part of
# one batch). An item whose actions failed and was caught is a finished item; the ledger and the closure say how
# each action ended.
CONTAIN_MAP_LABEL, ACTION_MAP_LABEL = "Contain", "Revoke"
# A small plan's INLINE Maps (ContainInline, RevokeInline) run their items in this history: an item is finished when
# its batch task succeeds, or when its failure is caught.
_INLINE_ITEM_ENDS = {
    f"{label}{state}Inline": label
    for label in (CONTAIN_MAP_LABEL, ACTION_MAP_LABEL)
    for state in ("Batch", "BatchFailed")
}
_TASK_ENDED = frozenset({"TaskSucceeded", "TaskFailed", "TaskTimedOut", "TaskSubmitFailed", "TaskStartFailed"})


@dataclass
class RunProgress:
    """Where one execution is, read from DescribeExecution and its history."""

    execution_arn: str
    name: str
    incident_id: str
    status: str
    current_state: str = ""
    planned: int | None = None
    done: int = 0
    failed: int = 0
    decision: str | None = None
    decision_reason: str | None = None
    waiting_for_approval: bool = False
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    error: str | None = None
    _task_token: str | None = field(default=None, repr=False)  # never printed or returned

    @property
    def finished(self) -> bool:
        return self.status != "RUNNING"

    def document(self) -> dict[str, Any]:
        return {
            "execution_arn": self.execution_arn,
            "name": self.name,
            "incident_id": self.incident_id,
            "status": self.status,
            "current_state": self.current_state,
            "actions_planned": self.planned,
            "actions_done": self.done,
            "actions_failed": self.failed,
            "decision": self.decision,
            "decision_reason": self.decision_reason,
            "waiting_for_approval": self.waiting_for_approval,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "stopped_at": self.stopped_at.isoformat() if self.stopped_at else None,
            "error": self.error,
        }


def execution_history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    request = {"executionArn": execution_arn, "maxResults": 1000}
    return list(pages(sfn.get_execution_history, "events", request, continuation="nextToken"))


def _json(text: str | None) -> Any:
    try:
        return json.loads(text or "null")
    except ValueError:
        return None


def read_progress(sfn: Any, execution_arn: str) -> RunProgress:
    described = sfn.describe_execution(executionArn=execution_arn)
    execution_input = _json(described.get("input")) or {}
    progress = RunProgress(
        execution_arn=execution_arn,
        name=described.get("name", execution_arn.rsplit(":", 1)[-1]),
        incident_id=str(execution_input.get("incident_id") or described.get("name", "")),
        status=described["status"],
        started_at=described.get("startDate"),
        stopped_at=described.get("stopDate"),
        error=described.get("error"),
    )
    pending_token: str | None = None
    map_run_started = False
    contained, batch_size = 0, 1
    inline_items: dict[str, tuple[int, int]] = {}  # finished items of the INLINE Maps, by label (none failed)
    for event in execution_history(sfn, execution_arn):
        kind = event["type"]
        details: dict[str, Any]
        if kind == "MapRunStarted":
            map_run_started = True
        elif kind.endswith("StateEntered"):
            progress.current_state = event.get("stateEnteredEventDetails", {}).get("name", "")
            if progress.current_state.endswith("BatchFailedInline"):  # a caught item: finished
                _count_inline_item(inline_items, progress.current_state)
        elif kind == "TaskScheduled":
            details = event.get("taskScheduledEventDetails", {})
            if "waitForTaskToken" in details.get("resource", ""):
                payload = (_json(details.get("parameters")) or {}).get("Payload") or {}
                pending_token = payload.get("task_token") or None
        elif kind in _TASK_ENDED:
            details = next((value for key, value in event.items() if key.endswith("EventDetails")), {})
            if "waitForTaskToken" in str(details.get("resource", "")):
                pending_token = None
            if kind == "TaskSucceeded":
                if progress.current_state.endswith("BatchInline"):
                    _count_inline_item(inline_items, progress.current_state)
                payload = (_json(details.get("output")) or {}).get("Payload")
                if isinstance(payload, dict) and "decision" in payload and "containment_count" in payload:
                    progress.planned = int(payload["action_count"])
                    contained, batch_size = int(payload["containment_count"]), int(payload.get("revoke_batch_size", 1))
                    progress.decision = str(payload["decision"])
                    progress.decision_reason = str(payload.get("decision_reason") or "")
    # A Map run exists once the history says it started; before that there is nothing to list (and moto fails
    # ListMapRuns on an execution whose interpreter has not started or has been let go).
    items = _map_run_items(sfn, execution_arn) if map_run_started else inline_items
    for label, actions in ((CONTAIN_MAP_LABEL, contained), (ACTION_MAP_LABEL, (progress.planned or 0) - contained)):
        finished, failed = items.get(label, (0, 0))
        progress.done += min(finished * batch_size, max(actions, 0))
        progress.failed += min(failed * batch_size, max(actions, 0))
    if progress.status == "RUNNING" and pending_token:
        progress.waiting_for_approval = True
        progress._task_token = pending_token
    return progress


def _count_inline_item(counted: dict[str, tuple[int, int]], state: str) -> None:
    label = _INLINE_ITEM_ENDS.get(state)
    if label is not None:
        finished, failed = counted.get(label, (0, 0))
        counted[label] = (finished + 1, failed)


def _map_run_items(sfn: Any, execution_arn: str) -> dict[str, tuple[int, int]]:
    """(items finished, items failed) of the execution's Map runs, by the Map's label."""
    counted: dict[str, tuple[int, int]] = {}
    for run in sfn.list_map_runs(executionArn=execution_arn).get("mapRuns", []):
        label = run["mapRunArn"].rsplit("/", 1)[-1].split(":", 1)[0]
        counts = sfn.describe_map_run(mapRunArn=run["mapRunArn"]).get("itemCounts", {})
        unfinished = counts.get("failed", 0) + counts.get("timedOut", 0) + counts.get("aborted", 0)
        finished, failed = counted.get(label, (0, 0))
        counted[label] = (finished + counts.get("succeeded", 0) + unfinished, failed + unfinished)
    return counted


def execution_arns(sfn: Any, machine_arn: str) -> list[str]:
    request = {"stateMachineArn": machine_arn, "maxResults": 1000}
    return [
        item["executionArn"] for item in pages(sfn.list_executions, "executions", request, continuation="nextToken")
    ]


def pages(call: Any, key: str, request: dict[str, Any], *, continuation: str = "NextToken") -> Iterator[dict[str, Any]]:
    """Every item under `key` of every page of a paginated AWS call (`continuation` is nextToken for Step Functions)."""
    token: str | None = None
    while True:
        page = call(**request, **({continuation: token} if token else {}))
        yield from page.get(key, [])
        token = page.get(continuation)
        if not token:
            return
