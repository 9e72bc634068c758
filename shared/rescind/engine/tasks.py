"""Task logic behind the functions that Step Functions calls. No environment access here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.discovery import DiscoveryScope
from rescind.engine.executor import ActionEngine, record_result
from rescind.engine.scope import check_target_in_scope
from rescind.exceptions import RescindError, TransientError
from rescind.guard import ActionGuard, refuse_unapproved_root_rotation, rotates_database_root
from rescind.ledger.base import Ledger
from rescind.ledger.types import ApprovalDecision
from rescind.models import Action, ActionResult
from rescind.models.results import utc_now
from rescind.validation import parse_model


class ExecuteActionRequest(BaseModel):
    """One item of a plan's Map state."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    incident_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,80}$")]
    # Execution name, item index and retry count: a retry is a new attempt, a re-delivery is not.
    attempt_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-.:]{1,200}$")]
    action: Action
    dry_run: bool = False

    @classmethod
    def parse(cls, event: Any) -> ExecuteActionRequest:
        return parse_model(cls, event, what="execute-action request")


def execute_and_record(
    request: ExecuteActionRequest,
    *,
    engine: ActionEngine,
    ledger: Ledger,
    scope: DiscoveryScope,
    refuse_if_guarded: ActionGuard,
) -> ActionResult:
    """Check the target is in scope and not guarded, then execute, verify and record one action.

    A target outside the configured mounts (TargetOutOfScope) is recorded as FAILED before any call to Vault; a
    held or protected one (PolicyRefusal, from `refuse_if_guarded`: rescind.guard.refuse_guarded_target) before
    any change, whoever wrote the action (what it read of the target, the act takes: the same request is not made
    twice in one action); so is a database root rotation in a run the ledger records no approval
    for (rescind.guard.refuse_unapproved_root_rotation).
    A transient error is recorded and raised again, so the state machine's Retry runs a new attempt.
    Any other Rescind error is recorded and returned as a FAILED result, so the rest of the plan runs.
    """
    executed = execute_checked(
        request.action,
        dry_run=request.dry_run,
        engine=engine,
        scope=scope,
        refuse_if_guarded=refuse_if_guarded,
        approvals=lambda: ledger.read_incident(request.incident_id).approvals,
    )
    return record_executed(ledger, request.incident_id, request.attempt_id, executed)


@dataclass(frozen=True)
class Executed:
    """One action checked, executed and read back, not yet recorded. `transient`: the error to raise once the
    failed result is recorded (the caller's retry runs a new attempt)."""

    result: ActionResult
    transient: TransientError | None = None


def execute_checked(
    action: Action,
    *,
    dry_run: bool,
    engine: ActionEngine,
    scope: DiscoveryScope,
    refuse_if_guarded: ActionGuard,
    approvals: Callable[[], Sequence[ApprovalDecision]],
) -> Executed:
    """The acting half of `execute_and_record`: every check, then act and read back; nothing is recorded, so a
    caller may act before it has an incident to record under (the leak start's kill first). `approvals` is read
    only for a database root rotation."""
    started_at = utc_now()
    try:
        check_target_in_scope(action.target, scope)
        seen = None
        if not dry_run:
            if rotates_database_root(action):
                refuse_unapproved_root_rotation(action, approvals())
            seen = refuse_if_guarded(action)
        return Executed(engine.execute(action, dry_run=dry_run, seen=seen))
    except TransientError as error:
        return Executed(engine.failed(action, started_at, error), transient=error)
    except RescindError as error:
        return Executed(engine.failed(action, started_at, error))


def record_executed(ledger: Ledger, incident_id: str, attempt_id: str, executed: Executed) -> ActionResult:
    """The recording half: write the attempt, then raise its transient error again, if any."""
    record_result(ledger, incident_id, attempt_id, executed.result)
    if executed.transient is not None:
        raise executed.transient
    return executed.result
