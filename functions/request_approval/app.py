"""Approval task (waitForTaskToken): tell the approvers a run waits for them. The token stays in the execution.

AnswerApprovalFunction (`rescind approve EXECUTION`) reads the token from the execution's history and answers it as
the IAM principal that signed the request; the token is never published, so whoever can read the notification
cannot approve by it.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.approval import ApprovalRequest, request_approval
from rescind.runtime import TRACED_LIBRARIES, get_settings, get_sns_client
from rescind.validation import parse_model

logger = Logger()
tracer = Tracer(patch_modules=TRACED_LIBRARIES)
metrics = Metrics()
get_settings()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_model(ApprovalRequest, event, what="approval request")
    notice = request_approval(request, sns=get_sns_client(), topic_arn=get_settings().notification_topic_arn)
    logger.info("approval requested", extra={"incident_id": request.incident_id, "execution": request.execution_arn})
    metrics.add_metric(name="ApprovalRequested", unit=MetricUnit.Count, value=1)
    return notice
