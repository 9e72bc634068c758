"""Leak-response task: plan the end of the located credential (contain, rotate, revoke) and apply the guard."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.issuance.runtime import get_issuance_index
from rescind.leaks.plan import plan_leak_response
from rescind.observability import add_count, logger, observed_handler
from rescind.response.plan_store import store_plan
from rescind.response.types import ResponseRequest
from rescind.runtime import (
    get_aws_factory,
    get_guard_policy,
    get_ledger,
    get_s3_client,
    get_settings,
    get_vault_client,
)
from rescind.validation import parse_model

get_settings()  # fail at cold start when configuration is wrong


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_model(ResponseRequest, event, what="leak response request")
    plan = plan_leak_response(
        request,
        vault=get_vault_client(),
        aws=get_aws_factory(),
        ledger=get_ledger(),
        policy=get_guard_policy(),
        index=get_issuance_index(),
    )
    logger.info(
        "leak response planned",
        extra={"incident_id": plan.incident_id, "decision": str(plan.decision), "counts": plan.counts_by_kind},
    )
    add_count("LeakResponsePlanned", decision=str(plan.decision))
    settings = get_settings()  # the actions go to S3; the state carries where (a plan can outgrow the state)
    reference = store_plan(plan, get_s3_client(), settings.plan_bucket_name, settings.revoke_batch_size)
    return reference.model_dump(mode="json")
