"""Task logic behind the functions that Step Functions calls. No environment access here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from rescind.discovery import DiscoveryScope
from rescind.engine.executor import ActionEngine, record_result
from rescind.engine.scope import check_target_in_scope
from rescind.exceptions import RescindError, TransientError
from rescind.guard import refuse_unapproved_root_rotation, rotates_database_root
from rescind.ledger.base import Ledger
from rescind.models import Action, ActionResult, CredentialRef, Outcome
from rescind.models.results import utc_now
from rescind.validation import parse_model


class ExecuteActionRequest(BaseModel):
    """One item of a plan's Map state."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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
    refuse_if_guarded: Callable[[CredentialRef], None],
) -> ActionResult:
    """Check the target is in scope and not guarded, then execute, verify and record one action.

    A target outside the configured mounts (TargetOutOfScope) is recorded as FAILED before any call to Vault; a
    held or protected one (PolicyRefusal, from `refuse_if_guarded`: rescind.guard.refuse_guarded_target) before
    any change, whoever wrote the action; so is a database root rotation in a run the ledger records no approval
    for (rescind.guard.refuse_unapproved_root_rotation).
    A transient error is recorded and raised again, so the state machine's Retry runs a new attempt.
    Any other Rescind error is recorded and returned as a FAILED result, so the rest of the plan runs.
    """
    started_at = utc_now()
    try:
        check_target_in_scope(request.action.target, scope)
        if not request.dry_run:
            if rotates_database_root(request.action):
                refuse_unapproved_root_rotation(request.action, ledger.read_incident(request.incident_id).approvals)
            refuse_if_guarded(request.action.target)
        result = engine.execute(request.action, dry_run=request.dry_run)
    except TransientError as error:
        record_result(ledger, request.incident_id, request.attempt_id, _failed(request, error, started_at))
        raise
    except RescindError as error:
        result = _failed(request, error, started_at)
    record_result(ledger, request.incident_id, request.attempt_id, result)
    return result


def _failed(request: ExecuteActionRequest, error: RescindError, started_at: Any) -> ActionResult:
    return ActionResult(
        action_id=request.action.action_id,
        action_kind=request.action.kind,
        target=request.action.target,
        outcome=Outcome.FAILED,
        detail=str(error)[:2000],
        error_type=type(error).__name__,
        started_at=started_at,
        finished_at=utc_now(),
    )
