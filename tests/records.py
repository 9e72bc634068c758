"""Ledger records for tests: an action's result and its attempt, with what a test does not look at filled in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from rescind.ledger.types import ActionAttemptRecord
from rescind.models import Action, ActionResult, Evidence, Outcome


def action_result(
    action: Action,
    outcome: Outcome = Outcome.SUCCEEDED,
    *,
    started_at: datetime,
    evidence: Sequence[Evidence] = (),
    took_ms: float = 5.0,
    **fields: Any,
) -> ActionResult:
    """`action`'s result: `outcome` with `evidence`, ended `took_ms` after `started_at`; `fields` set the rest."""
    return ActionResult(
        action_id=action.action_id,
        action_kind=action.kind,
        target=action.target,
        outcome=outcome,
        evidence=tuple(evidence),
        started_at=started_at,
        finished_at=started_at + timedelta(milliseconds=took_ms),
        **fields,
    )


def attempt_record(
    incident_id: str,
    attempt_id: str,
    action: Action,
    outcome: Outcome = Outcome.SUCCEEDED,
    *,
    started_at: datetime,
    evidence: Sequence[Evidence] = (),
    took_ms: float = 5.0,
    **fields: Any,
) -> ActionAttemptRecord:
    """One attempt of `action` in incident `incident_id`, its result as `action_result` builds it."""
    result = action_result(action, outcome, started_at=started_at, evidence=evidence, took_ms=took_ms, **fields)
    return ActionAttemptRecord(incident_id=incident_id, attempt_id=attempt_id, result=result)
