"""EventBridge target: a secret leaked (GitHub, AWS Health, GuardDuty, or the generic event); start its response.

Invoked asynchronously by the leak rules. A refused event is logged by its reason and counted, and returned
rather than raised: the generic event may carry the leaked value, and a raised event would be kept whole in
the on-failure queue. Transient failures are raised, so Lambda retries them. The event body is never logged.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.exceptions import TransientError
from rescind.leaks.runtime import get_dedup_window, get_leak_locator, get_leak_state_machine_arn
from rescind.leaks.start import start_leak_response
from rescind.leaks.triggers import LeakAlertRejected, parse_leak_event
from rescind.offboarding.runtime import get_notifier, get_sfn_client
from rescind.runtime import TRACED_LIBRARIES, get_ledger, get_settings

logger = Logger()
tracer = Tracer(patch_modules=TRACED_LIBRARIES)
metrics = Metrics()
get_settings()  # fail at cold start, not on the first alert, when configuration is wrong
get_leak_state_machine_arn()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        alerts = parse_leak_event(event)
    except LeakAlertRejected as error:
        logger.warning("leak event refused", extra={"rejection": str(error.reason), "problem": str(error)})
        metrics.add_metric(name=f"LeakRejected_{error.reason}", unit=MetricUnit.Count, value=1)
        return {"status": "rejected", "reason": str(error.reason), "problem": str(error)}
    results = []
    for alert in alerts:
        fields = {"source": alert.source, "event_id": alert.event_id, "secret_type": str(alert.secret_type)}
        try:
            result = start_leak_response(
                alert,
                locator=get_leak_locator(),
                ledger=get_ledger(),
                sfn_client=get_sfn_client(),
                state_machine_arn=get_leak_state_machine_arn(),
                notify=get_notifier(),
                window=get_dedup_window(),
            )
        except TransientError as error:
            logger.warning("leak response start failed, to be retried", extra={**fields, "error": str(error)})
            metrics.add_metric(name="LeakStartTransientError", unit=MetricUnit.Count, value=1)
            raise
        logger.info(
            "leak response start",
            extra={
                **fields,
                "status": str(result.status),
                "incident_id": result.incident_id,
                "credentials": list(result.credentials),
                "execution_arn": result.execution_arn,
            },
        )
        metrics.add_metric(name=f"LeakResponse_{result.status}", unit=MetricUnit.Count, value=1)
        results.append(result.model_dump(mode="json"))
    return {"status": "accepted", "responses": results}
