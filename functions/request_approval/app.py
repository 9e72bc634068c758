"""Approval task (waitForTaskToken): tell the approvers a run waits for them. The token stays in the execution.

AnswerApprovalFunction (`rescind approve EXECUTION`) reads the token from the execution's history and answers it as
the IAM principal that signed the request; the token is never published, so whoever can read the notification
cannot approve by it.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.approval import ApprovalRequest, request_approval
from rescind.observability import add_count, logger, observed_handler
from rescind.runtime import get_settings, get_sns_client
from rescind.validation import parse_model

get_settings()


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_model(ApprovalRequest, event, what="approval request")
    notice = request_approval(request, sns=get_sns_client(), topic_arn=get_settings().notification_topic_arn)
    logger.info("approval requested", extra={"incident_id": request.incident_id, "execution": request.execution_arn})
    add_count("ApprovalRequested")
    return notice
