"""Asking for approval of a run above the blast-radius cap."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from rescind.aws.errors import aws_errors

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


class ApprovalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

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
