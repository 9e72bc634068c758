"""Response task (offboarding, leak response, manual revocation): read back every target of the plan and list what
is still alive."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.engine.verification import verify_actions
from rescind.observability import add_count, logger, observed_handler
from rescind.response.types import ResponsePlan
from rescind.runtime import get_discovery_scope, get_engine, get_settings
from rescind.validation import parse_model

get_settings()


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    plan = parse_model(ResponsePlan, event, what="response plan")
    report = verify_actions(get_engine(), [*plan.containment, *plan.actions], scope=get_discovery_scope())
    logger.info(
        "response verified",
        extra={
            "incident_id": plan.incident_id,
            "verified": len(report.verified),
            "still_alive": len(report.still_alive),
        },
    )
    add_count("CredentialsStillAlive", len(report.still_alive))
    return {
        "still_alive": [ref.model_dump(mode="json") for ref in report.still_alive],
        "verified_count": len(report.verified),
        "still_alive_count": len(report.still_alive),
    }
