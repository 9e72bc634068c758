"""Lambda function URL (AuthType AWS_IAM): approve or deny a run that waits for approval.

Lambda verifies the request's SigV4 signature and names the signer in `requestContext.authorizer.iam`; that,
never the body, is who answers. The function reads the task token from the execution's history, refuses the
principal that asked for the run, appends the decision to the ledger (once per execution), then answers the
task. Only this function's role may call SendTaskSuccess/SendTaskFailure. The token is never logged or returned.

| status | when                                                          |
|--------|---------------------------------------------------------------|
| 200    | the decision was recorded and sent                            |
| 400    | malformed body, not a POST                                    |
| 401    | no IAM identity in the request (the URL is not AWS_IAM)       |
| 403    | the requester answering, or the run was already answered      |
| 409    | the run does not wait for approval                            |
| 502    | recorded, but Step Functions refused the answer (timed out)   |
| 503    | AWS failed in a way a retry can fix                           |
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.approval import (
    answer_approval,
    answer_from_request,
    caller_from_function_url,
    function_url_answer,
    http_status_of,
    refusal_body,
)
from rescind.exceptions import RescindError
from rescind.observability import add_count, logger, observed_handler
from rescind.offboarding.runtime import get_sfn_client
from rescind.runtime import get_ledger, get_settings

_MACHINE_ARNS = get_settings().incident_machine_arns()  # fail at cold start when the template left one out


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        caller = caller_from_function_url(event)
        answer = answer_from_request(event)
        decision = answer_approval(
            answer, caller, sfn=get_sfn_client(), ledger=get_ledger(), machine_arns=_MACHINE_ARNS
        )
    except RescindError as error:
        status = http_status_of(error)
        logger.warning("approval answer refused", extra={"status": status, "error_type": type(error).__name__})
        add_count("ApprovalAnswerRefused")
        return function_url_answer(status, refusal_body(error))
    logger.info(
        "approval answered",
        extra={
            "incident_id": decision.incident_id,
            "verdict": str(decision.verdict),
            "decided_by": decision.decided_by,
        },
    )
    add_count("ApprovalAnswered", verdict=str(decision.verdict))
    return function_url_answer(200, {"status": "answered", "decision": decision.model_dump(mode="json")})
