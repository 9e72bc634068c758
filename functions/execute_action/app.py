"""Step Functions task: execute one action of a plan, verify it by reading back, and record the attempt."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.engine.tasks import ExecuteActionRequest, execute_and_record
from rescind.exceptions import InvalidInput
from rescind.observability import add_count, logger, observed_handler, tracer
from rescind.runtime import (
    get_action_guard,
    get_discovery_scope,
    get_engine,
    get_ledger,
    get_settings,
)

get_settings()  # fail at cold start, not on the first event, when configuration is wrong


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        request = ExecuteActionRequest.parse(event)
    except InvalidInput as refused:
        logger.warning("request refused", extra={"problem": str(refused)})  # the message never echoes values
        add_count("RequestRefused")
        raise
    result = execute_and_record(
        request,
        engine=get_engine(),
        ledger=get_ledger(),
        scope=get_discovery_scope(),
        refuse_if_guarded=get_action_guard(),
    )
    logger.info(
        "action finished",
        extra={
            "incident_id": request.incident_id,
            "action_id": result.action_id,
            "target": result.target.key,
            "outcome": str(result.outcome),
            "error_type": result.error_type,
        },
    )
    tracer.put_annotation("outcome", str(result.outcome))
    add_count("ActionOutcome", outcome=str(result.outcome), kind=str(result.target.kind))
    return result.model_dump(mode="json")
