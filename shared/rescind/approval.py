"""Asking for approval of a run above the blast-radius cap."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rescind.aws.errors import aws_errors
from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.exceptions import ActionFailed, InvalidInput, RescindError, TransientError
from rescind.ledger.types import ApprovalDecision, ApprovalVerdict, IncidentView
from rescind.validation import parse_model

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_stepfunctions import SFNClient


class ApprovalRequest(BaseModel):
    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    task_token: Annotated[str, Field(min_length=1, max_length=8192)]  # stays in the execution; never published
    incident_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,80}$")]
    execution_arn: Annotated[str, Field(pattern=r"^arn:[\w-]+:states:[a-z0-9-]+:\d{12}:execution:[\w\-]+:[\w\-]+$")]
    subject: Annotated[str, Field(max_length=500)]
    reason: Annotated[str, Field(max_length=1000)]
    counts_by_kind: dict[str, int]


def request_approval(request: ApprovalRequest, *, sns: SNSClient, topic_arn: str | None) -> dict[str, Any]:
    """Notify the approvers. Returns what was said, without the token."""
    total = sum(request.counts_by_kind.values())
    counts = ", ".join(f"{count} {kind}" for kind, count in sorted(request.counts_by_kind.items()))
    message = (
        f"Rescind waits for approval of incident {request.incident_id} for {request.subject}.\n"
        f"Why: {request.reason}\nPlanned: {total} actions ({counts}).\n"
        f"Approve:  rescind approve {request.execution_arn}\n"
        f"Deny:     rescind deny {request.execution_arn} --reason TEXT\n"
        "If nobody answers before the timeout, the run ends refused and the timeout is escalated."
    )
    subject = f"Rescind approval needed: {total} actions"
    if topic_arn:
        with aws_errors("publish approval request"):
            sns.publish(TopicArn=topic_arn, Subject=subject, Message=message)
    return {"incident_id": request.incident_id, "notified": bool(topic_arn), "subject": subject}


# --- answering: a server-side decision -------------------------------------------------------------------
#
# The answer is given by AnswerApprovalFunction, behind a function URL with AuthType AWS_IAM: Lambda checks the
# request's SigV4 signature and puts the signer's identity in the request context. That identity, never the
# request body, says who answers. The function holds the only right to SendTaskSuccess/SendTaskFailure.

_ASSUMED_ROLE_ARN = re.compile(
    r"^arn:(?P<partition>[\w-]+):sts::(?P<account>\d{12}):assumed-role/(?P<role>[\w+=,.@-]+)/(?P<session>[\w+=,.@-]+)$"
)
_IAM_PRINCIPAL_ARN = re.compile(r"^arn:[\w-]+:(iam|sts)::(?P<account>\d{12}):(?P<rest>[\w+=,.@/:-]+)$")
_EXECUTION_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,80}$")
_EXECUTION_ARN = re.compile(r"^arn:[\w-]+:states:[a-z0-9-]+:\d{12}:execution:[\w\-]+:[\w\-]{1,80}$")
_ENDED_TASK_EVENTS = frozenset({"TaskSucceeded", "TaskFailed", "TaskTimedOut", "TaskSubmitFailed", "TaskStartFailed"})


class ApprovalRefused(RescindError):
    """The answer is refused (the requester answering, an answer already given): nothing is sent or recorded."""


class NotAwaitingApproval(RescindError):
    """The execution does not wait for approval (it ended, or is elsewhere): there is nothing to answer."""


class ApprovalNotDelivered(RescindError):
    """The decision is in the ledger, but Step Functions did not take it (the wait timed out meanwhile)."""


class CallerNotAuthenticated(RescindError):
    """The request carries no IAM identity: the function URL must use AuthType AWS_IAM."""


class CallerIdentity(BaseModel):
    """Who signed the request, as IAM reports it.

    `arn` is what IAM authenticated. For an assumed role it is `assumed-role/<role>/<session>`: the role is
    IAM's, the session name is whatever the caller gave AssumeRole unless the role's trust policy pins it.
    """

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    arn: Annotated[str, Field(min_length=1, max_length=2048)]
    account_id: Annotated[str, Field(pattern=r"^\d{12}$")]

    @property
    def role_name(self) -> str | None:
        match = _ASSUMED_ROLE_ARN.match(self.arn)
        return match["role"] if match else None

    @property
    def session_name(self) -> str | None:
        match = _ASSUMED_ROLE_ARN.match(self.arn)
        return match["session"] if match else None

    @property
    def principal_arn(self) -> str:
        """The ARN that names this principal in the ledger: a user's without its path (its name is unique in the
        account, and the path could make it too long to record whole), anything else as IAM gave it."""
        principal = _IAM_PRINCIPAL_ARN.match(self.arn)
        if principal and principal["rest"].startswith("user/"):
            return self.arn.split(":user/", 1)[0] + ":user/" + principal["rest"].rsplit("/", 1)[-1]
        return self.arn

    def is_same_principal(self, other_arn: str) -> bool:
        """True when `other_arn` names this principal: the same user, or the same role and session name.

        An assumed role's ARN carries no path, while the role's own ARN may: both are reduced to the name.
        """
        return _principal_key(self.arn) == _principal_key(other_arn)


def _principal_key(arn: str) -> str:
    """`<account>:user/<name>` or `<account>:role/<role>/<session>`, whichever service (iam, sts) named it."""
    assumed = _ASSUMED_ROLE_ARN.match(arn)
    if assumed:
        return f"{assumed['account']}:role/{assumed['role']}/{assumed['session']}".lower()
    principal = _IAM_PRINCIPAL_ARN.match(arn)
    if principal:
        resource = principal["rest"]
        if resource.startswith("user/"):  # a user's name is unique in its account, whatever its path
            resource = "user/" + resource.rsplit("/", 1)[-1]
        return f"{principal['account']}:{resource}".lower()
    return arn.lower()


def caller_from_function_url(event: Any) -> CallerIdentity:
    """The signer of a function URL request (AuthType AWS_IAM): `requestContext.authorizer.iam`, set by Lambda."""
    context = event.get("requestContext") if isinstance(event, dict) else None
    authorizer = context.get("authorizer") if isinstance(context, dict) else None
    iam = authorizer.get("iam") if isinstance(authorizer, dict) else None
    if not isinstance(iam, dict) or not isinstance(iam.get("userArn"), str):
        raise CallerNotAuthenticated("the request carries no IAM identity (the function URL must use AWS_IAM)")
    arn = iam["userArn"]
    match = _IAM_PRINCIPAL_ARN.match(arn)
    if not match:
        raise CallerNotAuthenticated("the request's IAM identity is not a principal ARN")
    return CallerIdentity(arn=arn, account_id=match["account"])


class ApprovalVerb(StrEnum):
    APPROVE = "approve"
    DENY = "deny"


class ApprovalAnswer(BaseModel):
    """The request body: which run, and the answer. Nothing in it says who answers."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    execution: Annotated[str, Field(min_length=1, max_length=2048)]  # an execution ARN or its name
    decision: ApprovalVerb
    reason: Annotated[str, Field(max_length=1000)] = ""

    @model_validator(mode="after")
    def _named_and_reasoned(self) -> ApprovalAnswer:
        if not (_EXECUTION_ARN.match(self.execution) or _EXECUTION_NAME.match(self.execution)):
            raise ValueError("execution is an execution ARN or its name (letters, digits, '-' and '_')")
        if self.decision is ApprovalVerb.DENY and not self.reason.strip():
            raise ValueError("a denial needs a reason: it goes into the ledger")
        return self


class ApprovalLedger(Protocol):
    def read_incident(self, incident_id: str) -> IncidentView: ...

    def record_approval(self, decision: ApprovalDecision) -> bool: ...


def _execution_arns(execution: str, machine_arns: Sequence[str]) -> list[str]:
    if execution.startswith("arn:"):
        machines = {arn.replace(":stateMachine:", ":execution:", 1) + ":" for arn in machine_arns}
        if not any(execution.startswith(prefix) for prefix in machines):
            raise InvalidInput("the execution is not a run of this stack's state machines")
        return [execution]
    return [arn.replace(":stateMachine:", ":execution:", 1) + f":{execution}" for arn in machine_arns]


def _find_execution(sfn: SFNClient, execution: str, machine_arns: Sequence[str]) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    for arn in _execution_arns(execution, machine_arns):
        try:
            with aws_errors("describe execution"):
                described: dict[str, Any] = dict(sfn.describe_execution(executionArn=arn))
        except ActionFailed as error:
            cause = error.__cause__
            if (
                isinstance(cause, ClientError)
                and cause.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist"
            ):
                continue
            raise
        return described
    raise NotAwaitingApproval(f"no execution {execution} of this stack's state machines")


def _pending_task_token(sfn: SFNClient, execution_arn: str) -> str | None:
    """The token of the waitForTaskToken task the execution waits on, read from its history. Never logged."""
    pending: str | None = None
    next_token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        if next_token:
            kwargs["nextToken"] = next_token
        with aws_errors("read execution history"):
            page = sfn.get_execution_history(**kwargs)
        for event in page.get("events", []):
            history_event: dict[str, Any] = dict(event)
            kind = history_event["type"]
            if kind == "TaskScheduled":
                scheduled: dict[str, Any] = history_event.get("taskScheduledEventDetails") or {}
                if "waitForTaskToken" in str(scheduled.get("resource", "")):
                    payload = _json_object(scheduled.get("parameters")).get("Payload")
                    token = payload.get("task_token") if isinstance(payload, dict) else None
                    pending = token if isinstance(token, str) and token else None
            elif kind in _ENDED_TASK_EVENTS:
                ended: Any = next((value for key, value in history_event.items() if key.endswith("EventDetails")), {})
                if isinstance(ended, dict) and "waitForTaskToken" in str(ended.get("resource", "")):
                    pending = None
        next_token = page.get("nextToken")
        if not next_token:
            return pending


def _json_object(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def answer_approval(
    answer: ApprovalAnswer,
    caller: CallerIdentity,
    *,
    sfn: SFNClient,
    ledger: ApprovalLedger,
    machine_arns: Sequence[str],
    now: datetime | None = None,
) -> ApprovalDecision:
    """Record and deliver one answer to a run waiting for approval.

    Refused (nothing recorded, nothing sent) when the run does not wait, when the caller approves a run it asked
    for itself, or when an answer was already recorded for this execution (the ledger's conditional put). The
    requester may deny (cancel) their own run: a second person is needed to act, not to stop.
    The decision is written before it is sent, so the ledger never misses who answered.
    """
    described = _find_execution(sfn, answer.execution, machine_arns)
    execution_arn = str(described["executionArn"])
    name = str(described.get("name") or execution_arn.rsplit(":", 1)[-1])
    if described.get("status") != "RUNNING":
        raise NotAwaitingApproval(f"execution {name} is {described.get('status')}: there is nothing to answer")
    token = _pending_task_token(sfn, execution_arn)
    if token is None:
        raise NotAwaitingApproval(f"execution {name} is not waiting for approval")
    incident_id = str(_json_object(described.get("input")).get("incident_id") or name)
    view = ledger.read_incident(incident_id)
    requested_by = view.incident.trigger.requested_by if view.incident is not None else None
    if answer.decision is ApprovalVerb.APPROVE and requested_by and caller.is_same_principal(requested_by):
        raise ApprovalRefused(
            f"refused: {caller.arn} asked for this run, and a run above the cap needs approval by another principal"
        )
    decision = ApprovalDecision(
        incident_id=incident_id,
        execution_arn=execution_arn,
        verdict=ApprovalVerdict.APPROVED if answer.decision is ApprovalVerb.APPROVE else ApprovalVerdict.DENIED,
        decided_by=caller.arn,
        reason=answer.reason.strip(),
        decided_at=now or datetime.now(UTC),
    )
    if not ledger.record_approval(decision):
        raise ApprovalRefused(f"refused: execution {name} was already answered")
    _send_answer(sfn, token, decision)
    return decision


def _send_answer(sfn: SFNClient, token: str, decision: ApprovalDecision) -> None:
    """SendTaskSuccess/Failure. An error's own message may quote the token, so only its code is kept."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        if decision.verdict is ApprovalVerdict.APPROVED:
            sfn.send_task_success(taskToken=token, output=json.dumps({"approved_by": decision.decided_by}))
        else:
            sfn.send_task_failure(taskToken=token, error="ApprovalDenied", cause=decision.reason[:256])
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "unknown")
        raise ApprovalNotDelivered(f"the answer was recorded but Step Functions refused it: {code}") from None
    except BotoCoreError as error:
        raise ApprovalNotDelivered(f"the answer was recorded but not delivered: {type(error).__name__}") from None


MAX_ANSWER_BODY_BYTES = 16 * 1024


def answer_from_request(event: Any) -> ApprovalAnswer:
    """The answer in a function URL request's JSON body (payload format 2.0)."""
    return parse_model(ApprovalAnswer, json_body_of(event), what="approval answer")


def json_body_of(event: Any) -> Any:
    """The JSON document in a function URL request's body (payload format 2.0): POST only, at most 16 KiB."""
    if not isinstance(event, dict):
        raise InvalidInput("not a function URL request")
    method = ((event.get("requestContext") or {}).get("http") or {}).get("method", "")
    if str(method).upper() != "POST":
        raise InvalidInput("only POST is accepted")
    body = event.get("body") or ""
    if not isinstance(body, str) or len(body) > MAX_ANSWER_BODY_BYTES * 2:
        raise InvalidInput("the request has no JSON body, or one too long")
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise InvalidInput("the body is not valid base64 UTF-8") from None
    if len(body.encode()) > MAX_ANSWER_BODY_BYTES:
        raise InvalidInput(f"the body is over {MAX_ANSWER_BODY_BYTES} bytes")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidInput("the body is not JSON") from None


def function_url_answer(status_code: int, body: dict[str, Any]) -> dict[str, Any]:
    """A function URL's JSON answer (the approval and manual-start functions answer alike)."""
    return {"statusCode": status_code, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def refusal_body(error: RescindError) -> dict[str, Any]:
    """What a function URL says of a refusal: its type and message, never a value the request carried."""
    return {"status": "refused", "error": type(error).__name__, "message": str(error)}


def http_status_of(error: RescindError) -> int:
    """The function URL's answer to each refusal: the CLI turns it back into a one-line error."""
    if isinstance(error, CallerNotAuthenticated):
        return 401
    if isinstance(error, ApprovalRefused):
        return 403
    if isinstance(error, NotAwaitingApproval):
        return 409
    if isinstance(error, InvalidInput):
        return 400
    if isinstance(error, TransientError):
        return 503
    return 502 if isinstance(error, ApprovalNotDelivered) else 500
