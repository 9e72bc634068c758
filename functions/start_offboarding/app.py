"""EventBridge target: a workload ended (EC2, ECS, Lambda, Auto Scaling, or the generic event); start its offboarding.

Invoked asynchronously by the termination rules. An event that ended nothing (an instance going into a warm
pool, a task still running) is logged, counted and answered `ignored`. A refused event (malformed, oversized,
of no known trigger) is recorded as a REJECTED incident and notified, then raised, so it also lands whole in
the on-failure destination (termination events carry no secret). Transient failures are raised, so Lambda
retries them. The event body is never logged.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.exceptions import InvalidInput, TransientError
from rescind.observability import add_count, logger, observed_handler, tracer
from rescind.offboarding.runtime import get_notifier, get_offboarding_state_machine_arn, get_sfn_client
from rescind.offboarding.start import start_offboarding
from rescind.offboarding.triggers import RejectionReason, TriggerRejected, parse_termination_event
from rescind.runtime import get_inventory, get_ledger, get_settings, get_workload_accounts

get_settings()  # fail at cold start, not on the first event, when configuration is wrong
get_offboarding_state_machine_arn()


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        notice = parse_termination_event(event)
    except TriggerRejected as error:
        logger.warning("termination event refused", extra={"rejection": str(error.reason), "problem": str(error)})
        add_count("TriggerRejected", reason=str(error.reason))
        if error.reason is RejectionReason.NOT_A_TERMINATION:
            return {"status": "ignored", "reason": str(error.reason), "problem": str(error)}
        from rescind.ledger.closing import record_rejected_event  # the rejection branch alone needs it

        record_rejected_event(event, flow="offboarding", problem=str(error), ledger=get_ledger(), notify=get_notifier())
        raise InvalidInput(str(error)) from None
    event_fields = {
        "source": notice.source,
        "detail_type": notice.detail_type,
        "event_id": notice.event_id,
        "cloud_id": notice.cloud_id,
    }
    try:
        result = start_offboarding(
            notice,
            inventory=get_inventory(),
            ledger=get_ledger(),
            sfn_client=get_sfn_client(),
            state_machine_arn=get_offboarding_state_machine_arn(),
            notify=get_notifier(),
            workload_accounts=get_workload_accounts(),
        )
    except TransientError as error:
        logger.warning("offboarding start failed, to be retried", extra={**event_fields, "error": str(error)})
        add_count("OffboardingStartTransientError")
        raise
    logger.info(
        "offboarding start",
        extra={
            **event_fields,
            "status": str(result.status),
            "incident_id": result.incident_id,
            "workload_id": result.workload_id,
            "execution_arn": result.execution_arn,
        },
    )
    tracer.put_annotation("start_status", str(result.status))
    add_count("OffboardingStarted", status=str(result.status))
    return result.model_dump(mode="json")
