"""Offboarding task: discover what the workload holds, plan its end, and apply the guard."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.offboarding.plan import plan_offboarding
from rescind.offboarding.types import OffboardingRequest
from rescind.runtime import (
    TRACED_LIBRARIES,
    get_aws_factory,
    get_discovery_scope,
    get_guard_policy,
    get_inventory,
    get_ledger,
    get_settings,
    get_vault_client,
)
from rescind.validation import parse_model

logger = Logger()
tracer = Tracer(patch_modules=TRACED_LIBRARIES)
metrics = Metrics()
get_settings()  # fail at cold start when configuration is wrong


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_model(OffboardingRequest, event, what="offboarding request")
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
    metrics.add_metric(name=f"Offboarding_{plan.decision}", unit=MetricUnit.Count, value=1)
    return plan.model_dump(mode="json")
