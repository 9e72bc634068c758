"""The report as JSON: the ledger's view whole, with the verdicts a script wants first."""

from __future__ import annotations

import json

from rescind.ledger.report.sections import in_time_order, incident_id_of, ref_text
from rescind.ledger.report.structure import ExecutionSummary
from rescind.ledger.types import CredentialState, IncidentView


def render_json(view: IncidentView, execution: ExecutionSummary | None) -> str:
    document = {
        "report": "rescind-incident-report",
        "version": 1,
        "incident_id": incident_id_of(view),
        "finished": view.closure is not None,
        "status": str(view.closure.status) if view.closure is not None else "not_finished",
        "still_alive": [ref_text(ref) for ref in view.closure.still_alive] if view.closure is not None else None,
        "unknown": [ref_text(ref) for ref in view.closure.in_state(CredentialState.UNKNOWN)]
        if view.closure is not None
        else None,
        "alive_is_unknown": view.closure.alive_is_unknown if view.closure is not None else True,
        "timeline": [attempt.attempt_id for attempt in in_time_order(view.attempts)],
        "view": view.model_dump(mode="json"),
        "execution": execution.model_dump(mode="json") if execution is not None else None,
    }
    return json.dumps(document, indent=2) + "\n"
