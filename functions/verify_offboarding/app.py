"""Offboarding task: read back every target of the plan and list what is still alive."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.engine.verification import verify_actions
from rescind.offboarding.types import OffboardingPlan
from rescind.runtime import TRACED_LIBRARIES, get_discovery_scope, get_engine, get_settings
from rescind.validation import parse_model

logger = Logger()
tracer = Tracer(patch_modules=TRACED_LIBRARIES)
metrics = Metrics()
get_settings()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    plan = parse_model(OffboardingPlan, event, what="offboarding plan")
    report = verify_actions(get_engine(), [*plan.containment, *plan.actions], scope=get_discovery_scope())
    logger.info(
        "offboarding verified",
        extra={
            "incident_id": plan.incident_id,
            "verified": len(report.verified),
            "still_alive": len(report.still_alive),
        },
    )
    metrics.add_metric(name="CredentialsStillAlive", unit=MetricUnit.Count, value=len(report.still_alive))
    return {
        "still_alive": [ref.model_dump(mode="json") for ref in report.still_alive],
        "verified_count": len(report.verified),
        "still_alive_count": len(report.still_alive),
    }
