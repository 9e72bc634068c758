"""Step Functions task: execute one action of a plan, or a batch of them (a Contain or Revoke item), verify each by
reading back, and record the attempts."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.engine.batch import ExecuteBatchRequest, execute_batch
from rescind.engine.tasks import ExecuteActionRequest, execute_and_record
from rescind.exceptions import InvalidInput
from rescind.observability import add_count, logger, observed_handler, tracer
from rescind.response.plan_store import S3ReadBackStore
from rescind.runtime import (
    get_action_guard,
    get_discovery_scope,
    get_engine,
    get_ledger,
    get_s3_client,
    get_settings,
)

get_settings()  # fail at cold start, not on the first event, when configuration is wrong


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        if isinstance(event, dict) and "actions" in event:  # a Contain or Revoke item; the leak path sends one
            return _execute_batch(ExecuteBatchRequest.parse(event), context)
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


def _execute_batch(request: ExecuteBatchRequest, context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    read_backs = S3ReadBackStore(get_s3_client(), settings.plan_bucket_name) if request.read_back_key else None
    result = execute_batch(
        request,
        engine=get_engine(),
        ledger=get_ledger(),
        scope=get_discovery_scope(),
        refuse_if_guarded=get_action_guard(),
        read_backs=read_backs,
        workers=settings.revoke_batch_workers,
        remaining_ms=context.get_remaining_time_in_millis,  # stops starting actions before the function's timeout
    )
    logger.info("batch finished", extra={"incident_id": request.incident_id, **result.model_dump(mode="json")})
    tracer.put_annotation("outcome", ",".join(sorted(result.outcomes)))  # the batch's outcomes, as one action's
    for kind, outcomes in result.outcomes_by_kind.items():  # the dimensions of the single-action path's count
        for outcome, count in outcomes.items():
            add_count("ActionOutcome", count, outcome=outcome, kind=kind)
    return result.model_dump(mode="json")
