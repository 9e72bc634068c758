"""Closing task: append the incident's closure to the ledger and say how the run ended."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.ledger.closing import CloseRequest, close_incident
from rescind.observability import add_count, logger, observed_handler
from rescind.runtime import get_ledger, get_s3_client, get_settings
from rescind.validation import parse_model

get_settings()


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_model(CloseRequest, event, what="close request")
    verified = None
    if request.verify_results is not None:  # the Verify Map's summary, read from its ResultWriter output
        from rescind.response.map_results import read_verify_results

        verified = read_verify_results(get_s3_client(), request.verify_results, get_settings().plan_bucket_name)
    elif request.verify_inline is not None:  # a small plan's inline Verify Map: its items, in the state
        from rescind.response.map_results import inline_verify_results

        verified = inline_verify_results(request.verify_inline)
    result = close_incident(request, get_ledger(), verified, vault_address=get_settings().vault_addr)
    logger.info(
        "incident closed",
        extra={
            "incident_id": result.incident_id,
            "status": str(result.status),
            "still_alive": result.still_alive_count,
            "unknown": result.unknown_count,
        },
    )
    add_count("IncidentClosed", status=str(result.status))
    return result.model_dump(mode="json")
