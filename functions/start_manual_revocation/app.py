"""Lambda function URL (AuthType AWS_IAM): start a manual revocation run, requested by whoever signed the request.

Lambda verifies the request's SigV4 signature and names the signer in `requestContext.authorizer.iam`; that
principal, never the body, is recorded as the run's `requested_by`, so AnswerApprovalFunction can refuse it as
approver. A body that names a requester is refused. Only this function's role may start the manual machine.

| status | when                                                                 |
|--------|----------------------------------------------------------------------|
| 200    | the run was started (or this very run already exists)               |
| 400    | malformed body (names the field), not a POST, a requester in the body |
| 401    | no IAM identity in the request (the URL is not AWS_IAM)              |
| 503    | AWS failed in a way a retry can fix                                  |
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.approval import caller_from_function_url, function_url_answer, http_status_of, refusal_body
from rescind.exceptions import RescindError
from rescind.observability import add_count, logger, observed_handler
from rescind.offboarding.manual import (
    manual_run_from_request,
    start_manual_revocation,
)
from rescind.offboarding.runtime import get_sfn_client
from rescind.runtime import get_ledger, get_settings

_MACHINE_ARN = get_settings().required("manual_state_machine_arn")  # fail at cold start when the template left it out


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        caller = caller_from_function_url(event)
        body = manual_run_from_request(event)
        started = start_manual_revocation(
            body, caller, sfn=get_sfn_client(), ledger=get_ledger(), state_machine_arn=_MACHINE_ARN
        )
    except RescindError as error:
        status = http_status_of(error)
        logger.warning("manual run refused", extra={"status": status, "error_type": type(error).__name__})
        add_count("ManualRunRefused")
        return function_url_answer(status, refusal_body(error))
    logger.info(
        "manual run started",
        extra={
            "incident_id": started.incident_id,
            "execution_arn": started.execution_arn,
            "requested_by": started.requested_by,
            "start_status": str(started.status),
            "dry_run": started.dry_run,
        },
    )
    add_count("ManualRunStarted", status=str(started.status))
    return function_url_answer(200, {"status": str(started.status), "run": started.model_dump(mode="json")})
