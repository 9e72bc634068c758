"""Closing task: append the incident's closure to the ledger and say how the run ended."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.ledger.closing import CloseRequest, close_incident
from rescind.runtime import TRACED_LIBRARIES, get_ledger, get_settings
from rescind.validation import parse_model

logger = Logger()
tracer = Tracer(patch_modules=TRACED_LIBRARIES)
metrics = Metrics()
get_settings()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_model(CloseRequest, event, what="close request")
    result = close_incident(request, get_ledger())
    logger.info(
        "incident closed",
        extra={
            "incident_id": result.incident_id,
            "status": str(result.status),
            "still_alive": result.still_alive_count,
        },
    )
    metrics.add_metric(name=f"Incident_{result.status}", unit=MetricUnit.Count, value=1)
    return result.model_dump(mode="json")
