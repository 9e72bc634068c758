"""Offboarding task: discover what the workload holds, plan its end, and apply the guard."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.observability import add_count, logger, observed_handler
from rescind.offboarding.plan import plan_offboarding
from rescind.response.plan_store import store_plan
from rescind.response.types import ResponseRequest
from rescind.runtime import (
    get_aws_factory,
    get_discovery_scope,
    get_guard_policy,
    get_inventory,
    get_ledger,
    get_s3_client,
    get_settings,
    get_vault_client,
)
from rescind.validation import parse_model

get_settings()  # fail at cold start when configuration is wrong


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_model(ResponseRequest, event, what="offboarding request")
    plan = plan_offboarding(
        request,
        vault=get_vault_client(),
        aws=get_aws_factory(),
        inventory=get_inventory(),
        ledger=get_ledger(),
        scope=get_discovery_scope(),
        policy=get_guard_policy(),
    )
    logger.info(
        "offboarding planned",
        extra={
            "incident_id": plan.incident_id,
            "workload_id": plan.workload_id,
            "decision": str(plan.decision),
            "counts": plan.counts_by_kind,
        },
    )
    add_count("OffboardingPlanned", decision=str(plan.decision))
    settings = get_settings()  # the actions go to S3; the state carries where (a plan can outgrow the state)
    reference = store_plan(plan, get_s3_client(), settings.plan_bucket_name, settings.revoke_batch_size)
    return reference.model_dump(mode="json")
