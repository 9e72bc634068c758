"""Response task (offboarding, leak response, manual revocation): one item of the Verify Map. Read back a batch of
the plan's targets and list what is still alive."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.engine.verification import verify_actions
from rescind.observability import add_count, logger, observed_handler
from rescind.response.plan_store import VerifyBatchRequest
from rescind.runtime import get_discovery_scope, get_engine, get_settings
from rescind.validation import parse_model

get_settings()


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch = parse_model(VerifyBatchRequest, event, what="verify batch")
    report = verify_actions(get_engine(), batch.actions, scope=get_discovery_scope())
    logger.info(
        "response verified",
        extra={
            "incident_id": batch.incident_id,
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
