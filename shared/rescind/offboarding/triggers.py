"""The termination triggers: an EventBridge event, in its real format, parsed into a TerminationNotice.

One pydantic model per trigger. Anything else is refused with TriggerRejected (an InvalidInput) whose
message names the field and never echoes a value:

| source          | detail-type                              | cloud id                         |
|-----------------|------------------------------------------|----------------------------------|
| aws.ec2         | EC2 Instance State-change Notification   | instance id, state `terminated`  |
| aws.ecs         | ECS Task State Change                    | task ARN, lastStatus `STOPPED`   |
| aws.lambda      | AWS API Call via CloudTrail              | unqualified function ARN         |
| aws.autoscaling | EC2 Instance-terminate Lifecycle Action  | instance id, Destination `EC2` (or none) |
| rescind         | Workload Terminated                      | (names the workload itself)      |

Plain pydantic rather than Powertools' EventBridgeModel: it costs about 60 ms of import at cold start and
its fields are looser than these (a naive `time`, any `account`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, ConfigDict, Field

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.exceptions import InvalidInput
from rescind.offboarding.types import TerminationNotice
from rescind.response.events import (
    ACCOUNT_PATTERN,
    MAX_REASON,
    REGION_PATTERN,
    EventDetail,
    EventEnvelope,
    SharedRejection,
    clean_text,
    clip_reason,
    parse_event,
    validated,
)
from rescind.response.types import workload_id_problem

MAX_EVENT_BYTES = 256 * 1024  # EventBridge's own limit on an event

EC2_SOURCE, EC2_DETAIL_TYPE = "aws.ec2", "EC2 Instance State-change Notification"
ECS_SOURCE, ECS_DETAIL_TYPE = "aws.ecs", "ECS Task State Change"
LAMBDA_SOURCE, CLOUDTRAIL_DETAIL_TYPE = "aws.lambda", "AWS API Call via CloudTrail"
AUTOSCALING_SOURCE, AUTOSCALING_DETAIL_TYPE = "aws.autoscaling", "EC2 Instance-terminate Lifecycle Action"
GENERIC_SOURCE, GENERIC_DETAIL_TYPE = "rescind", "Workload Terminated"

TERMINATING_TRANSITION = "autoscaling:EC2_INSTANCE_TERMINATING"
TERMINATED_DESTINATION = "EC2"
REPLACE_ROOT_VOLUME_ACTION = "ReplaceRootVolume"

_PARTITION = r"aws(?:-[a-z]+)*"
_INSTANCE_ID = r"^i-[0-9a-f]{8}(?:[0-9a-f]{9})?$"
_TASK_ARN = re.compile(
    rf"arn:(?P<partition>{_PARTITION}):ecs:(?P<region>{REGION_PATTERN}):(?P<account>{ACCOUNT_PATTERN}):"
    r"task/(?:[A-Za-z0-9_-]{1,255}/)?[A-Za-z0-9-]{1,64}"
)
_FUNCTION_NAME = r"(?P<name>[A-Za-z0-9_-]{1,64})(?::(?P<qualifier>\$LATEST|[A-Za-z0-9_-]{1,128}))?"
_FUNCTION_FULL_ARN = re.compile(
    rf"arn:(?P<partition>{_PARTITION}):lambda:(?P<region>{REGION_PATTERN}):(?P<account>{ACCOUNT_PATTERN}):function:{_FUNCTION_NAME}"
)
_FUNCTION_PARTIAL_ARN = re.compile(rf"(?P<account>{ACCOUNT_PATTERN}):function:{_FUNCTION_NAME}")
_FUNCTION_BARE_NAME = re.compile(_FUNCTION_NAME)

# The generic event names its workload: a SPIFFE ID, an ARN, or another cloud id.
_MAX_WORKLOAD_ID = 500


class RejectionReason(StrEnum):
    OVERSIZED = "oversized"  # larger than EventBridge allows
    NOT_A_TRIGGER = "not_a_trigger"  # another source or detail-type
    NOT_A_TERMINATION = "not_a_termination"  # a trigger's event that ended nothing
    MALFORMED = "malformed"  # a missing field, a wrong type, a bad id


class TriggerRejected(InvalidInput):
    """A termination event was refused. `reason` is the kind of refusal, for metrics."""

    def __init__(self, reason: RejectionReason, problem: str) -> None:
        super().__init__(f"termination event refused ({reason}): {problem}")
        self.reason = reason


def _rejected(reason: SharedRejection, problem: str) -> TriggerRejected:
    return TriggerRejected(RejectionReason(reason), problem)


# --- one model per trigger --------------------------------------------------------------------------------------


class Ec2StateChangeDetail(EventDetail):
    instance_id: Annotated[str, Field(alias="instance-id", pattern=_INSTANCE_ID)]
    state: Annotated[str, Field(pattern=r"^[a-z-]{1,32}$")]


class Ec2StateChangeEvent(EventEnvelope):
    detail: Ec2StateChangeDetail


class EcsTaskStateChangeDetail(EventDetail):
    task_arn: Annotated[str, Field(alias="taskArn", min_length=1, max_length=1600)]
    cluster_arn: Annotated[str, Field(alias="clusterArn", min_length=1, max_length=1600)]
    last_status: Annotated[str, Field(alias="lastStatus", pattern=r"^[A-Z_]{1,32}$")]
    group: Annotated[str | None, Field(max_length=1024)] = None
    stop_code: Annotated[str | None, Field(alias="stopCode", pattern=r"^[A-Za-z]{1,64}$")] = None
    stopped_reason: Annotated[str | None, Field(alias="stoppedReason", max_length=2048)] = None
    stopped_at: Annotated[AwareDatetime | None, Field(alias="stoppedAt")] = None


class EcsTaskStateChangeEvent(EventEnvelope):
    detail: EcsTaskStateChangeDetail


class LambdaDeleteRequestParameters(EventDetail):
    function_name: Annotated[str, Field(alias="functionName", min_length=1, max_length=256)]
    qualifier: Annotated[str | None, Field(max_length=128)] = None


class CloudTrailIdentity(EventDetail):
    arn: Annotated[str | None, Field(max_length=2048)] = None


class LambdaDeleteDetail(EventDetail):
    event_source: Annotated[str, Field(alias="eventSource", max_length=128)]
    event_name: Annotated[str, Field(alias="eventName", pattern=r"^[A-Za-z0-9_]{1,128}$")]
    event_time: Annotated[AwareDatetime, Field(alias="eventTime")]
    aws_region: Annotated[str, Field(alias="awsRegion", pattern=rf"^{REGION_PATTERN}$")]
    error_code: Annotated[str | None, Field(alias="errorCode", max_length=256)] = None
    request_parameters: Annotated[LambdaDeleteRequestParameters, Field(alias="requestParameters")]
    recipient_account_id: Annotated[str | None, Field(alias="recipientAccountId", pattern=rf"^{ACCOUNT_PATTERN}$")] = (
        None
    )
    user_identity: Annotated[CloudTrailIdentity | None, Field(alias="userIdentity")] = None


class LambdaDeleteEvent(EventEnvelope):
    detail: LambdaDeleteDetail


class AutoScalingTerminateDetail(EventDetail):
    instance_id: Annotated[str, Field(alias="EC2InstanceId", pattern=_INSTANCE_ID)]
    auto_scaling_group_name: Annotated[str, Field(alias="AutoScalingGroupName", pattern=r"^[\x20-\x7e]{1,255}$")]
    lifecycle_hook_name: Annotated[str, Field(alias="LifecycleHookName", pattern=r"^[A-Za-z0-9_./-]{1,255}$")]
    lifecycle_transition: Annotated[str, Field(alias="LifecycleTransition", pattern=r"^[A-Za-z0-9_:]{1,128}$")]
    # Present in the real event; never copied anywhere: it completes the lifecycle action.
    lifecycle_action_token: Annotated[str, Field(alias="LifecycleActionToken", pattern=r"^[A-Za-z0-9-]{1,64}$")]
    # Where the instance comes from and goes to (warm pools): EC2 means terminated; WarmPool means it is kept.
    # Events from before warm pools carry neither.
    origin: Annotated[str | None, Field(alias="Origin", pattern=r"^[A-Za-z0-9]{1,64}$")] = None
    destination: Annotated[str | None, Field(alias="Destination", pattern=r"^[A-Za-z0-9]{1,64}$")] = None
    # Instance refresh replacing the root volume keeps the instance running: it is no termination.
    action: Annotated[str | None, Field(alias="Action", pattern=r"^[A-Za-z0-9]{1,64}$")] = None


class AutoScalingTerminateEvent(EventEnvelope):
    detail: AutoScalingTerminateDetail


class WorkloadTerminatedDetail(EventDetail):
    """The generic trigger's detail, documented in the README. Strict: a sender we do not know is not AWS."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    workload_id: Annotated[str, Field(max_length=_MAX_WORKLOAD_ID)]
    reason: Annotated[str, Field(max_length=MAX_REASON)]
    terminated_at: AwareDatetime | None = None


class WorkloadTerminatedEvent(EventEnvelope):
    detail: WorkloadTerminatedDetail


# --- parsing ----------------------------------------------------------------------------------------------------


def parse_termination_event(event: Any) -> TerminationNotice:
    """Turn one EventBridge event (as Lambda receives it) into a TerminationNotice, or raise TriggerRejected."""
    return parse_event(event, _PARSERS, max_bytes=MAX_EVENT_BYTES, trigger="termination", reject=_rejected)


def _notice(envelope: EventEnvelope, **fields: Any) -> TerminationNotice:
    envelope_fields = {
        "source": envelope.source,
        "detail_type": envelope.detail_type,
        "event_id": envelope.id,
        "account_id": envelope.account,
        "region": envelope.region,
    }
    return validated(TerminationNotice, {**envelope_fields, **fields}, _rejected)


def parse_ec2_state_change(event: dict[str, Any]) -> TerminationNotice:
    parsed = validated(Ec2StateChangeEvent, event, _rejected)
    if parsed.detail.state != "terminated":
        raise TriggerRejected(RejectionReason.NOT_A_TERMINATION, "detail.state: not terminated")
    return _notice(
        parsed,
        cloud_id=parsed.detail.instance_id,
        reason=f"EC2 instance {parsed.detail.instance_id} terminated",
        terminated_at=parsed.time,
    )


def parse_ecs_task_stopped(event: dict[str, Any]) -> TerminationNotice:
    parsed = validated(EcsTaskStateChangeEvent, event, _rejected)
    detail = parsed.detail
    if detail.last_status != "STOPPED":
        raise TriggerRejected(RejectionReason.NOT_A_TERMINATION, "detail.lastStatus: not STOPPED")
    task = _TASK_ARN.fullmatch(detail.task_arn)
    if task is None:
        raise TriggerRejected(RejectionReason.MALFORMED, "detail.taskArn: not an ECS task ARN")
    if (task["account"], task["region"]) != (parsed.account, parsed.region):
        raise TriggerRejected(RejectionReason.MALFORMED, "detail.taskArn: not in the event's account and region")
    why = ": ".join(clean_text(part, 200) for part in (detail.stop_code, detail.stopped_reason) if part)
    return _notice(
        parsed,
        cloud_id=detail.task_arn,
        reason=clip_reason(f"ECS task stopped{': ' + why if why else ''}"),
        terminated_at=detail.stopped_at or parsed.time,
    )


def parse_lambda_function_deleted(event: dict[str, Any]) -> TerminationNotice:
    parsed = validated(LambdaDeleteEvent, event, _rejected)
    detail = parsed.detail
    if detail.event_source != "lambda.amazonaws.com":
        raise TriggerRejected(RejectionReason.NOT_A_TRIGGER, "detail.eventSource: not lambda.amazonaws.com")
    if not detail.event_name.startswith("DeleteFunction"):
        raise TriggerRejected(RejectionReason.NOT_A_TERMINATION, "detail.eventName: not a DeleteFunction call")
    if detail.error_code is not None:
        raise TriggerRejected(RejectionReason.NOT_A_TERMINATION, "detail.errorCode: the delete failed")
    if detail.aws_region != parsed.region or detail.recipient_account_id not in (None, parsed.account):
        raise TriggerRejected(RejectionReason.MALFORMED, "detail.awsRegion, detail.recipientAccountId: not the event's")
    function_arn = lambda_function_arn(
        detail.request_parameters.function_name,
        qualifier=detail.request_parameters.qualifier,
        account_id=parsed.account,
        region=parsed.region,
    )
    return _notice(
        parsed,
        cloud_id=function_arn,
        reason=clip_reason(f"Lambda function {function_arn} deleted ({detail.event_name})"),
        terminated_at=detail.event_time,
    )


def lambda_function_arn(function_name: str, *, qualifier: str | None, account_id: str, region: str) -> str:
    """The unqualified function ARN that a DeleteFunction call's `functionName` designates.

    `functionName` may be a name, a partial ARN (account:function:name) or a full ARN. A call with a
    qualifier (`:3`, or the `qualifier` parameter) deletes that one version and leaves the function
    running, so it is not a termination and is refused.
    """
    match = (
        _FUNCTION_FULL_ARN.fullmatch(function_name)
        or _FUNCTION_PARTIAL_ARN.fullmatch(function_name)
        or _FUNCTION_BARE_NAME.fullmatch(function_name)
    )
    if match is None:
        raise TriggerRejected(
            RejectionReason.MALFORMED, "detail.requestParameters.functionName: not a function name or ARN"
        )
    groups = match.groupdict()
    if groups.get("qualifier") or qualifier:
        raise TriggerRejected(
            RejectionReason.NOT_A_TERMINATION,
            "detail.requestParameters: a qualified delete removes one version, not the function",
        )
    if groups.get("region", region) != region or groups.get("account", account_id) != account_id:
        raise TriggerRejected(
            RejectionReason.MALFORMED,
            "detail.requestParameters.functionName: not in the event's account and region",
        )
    partition = groups.get("partition") or _partition_of(region)
    return f"arn:{partition}:lambda:{region}:{account_id}:function:{groups['name']}"


def parse_autoscaling_terminating(event: dict[str, Any]) -> TerminationNotice:
    parsed = validated(AutoScalingTerminateEvent, event, _rejected)
    detail = parsed.detail
    if detail.lifecycle_transition != TERMINATING_TRANSITION:
        raise TriggerRejected(RejectionReason.NOT_A_TERMINATION, "detail.LifecycleTransition: not terminating")
    if detail.action == REPLACE_ROOT_VOLUME_ACTION:
        raise TriggerRejected(
            RejectionReason.NOT_A_TERMINATION, "detail.Action: the root volume is replaced, the instance runs on"
        )
    if detail.destination not in (None, TERMINATED_DESTINATION):
        # Scale-in into a warm pool stops the instance and keeps it, credentials and all, to serve again.
        raise TriggerRejected(
            RejectionReason.NOT_A_TERMINATION, "detail.Destination: the instance is kept (a warm pool), not terminated"
        )
    return _notice(
        parsed,
        cloud_id=detail.instance_id,
        reason=clip_reason(
            f"Auto Scaling group {clean_text(detail.auto_scaling_group_name, 255)} is terminating instance "
            f"{detail.instance_id} (lifecycle hook {detail.lifecycle_hook_name})"
        ),
        terminated_at=parsed.time,
    )


def parse_workload_terminated(event: dict[str, Any]) -> TerminationNotice:
    parsed = validated(WorkloadTerminatedEvent, event, _rejected)
    detail = parsed.detail
    check_workload_id(detail.workload_id, field="detail.workload_id")
    if _has_control_characters(detail.reason):
        raise TriggerRejected(RejectionReason.MALFORMED, "detail.reason: control or invisible characters")
    if not detail.reason.strip():
        raise TriggerRejected(RejectionReason.MALFORMED, "detail.reason: empty")
    return _notice(
        parsed,
        workload_id=detail.workload_id,
        reason=detail.reason.strip(),
        terminated_at=detail.terminated_at or parsed.time,
    )


def check_workload_id(workload_id: str, *, field: str) -> None:
    """A workload id names exactly one workload: no wildcard, no traversal, no look-alike characters."""
    problem = workload_id_problem(workload_id)
    if problem is not None:
        raise TriggerRejected(RejectionReason.MALFORMED, f"{field}: {problem}")


def _partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _has_control_characters(text: str) -> bool:
    # Cc: control characters; Cf: invisible format characters such as bidi overrides and zero-width joiners.
    return any(unicodedata.category(character) in ("Cc", "Cf") for character in text)


_PARSERS: dict[tuple[str, str], Callable[[dict[str, Any]], TerminationNotice]] = {
    (EC2_SOURCE, EC2_DETAIL_TYPE): parse_ec2_state_change,
    (ECS_SOURCE, ECS_DETAIL_TYPE): parse_ecs_task_stopped,
    (LAMBDA_SOURCE, CLOUDTRAIL_DETAIL_TYPE): parse_lambda_function_deleted,
    (AUTOSCALING_SOURCE, AUTOSCALING_DETAIL_TYPE): parse_autoscaling_terminating,
    (GENERIC_SOURCE, GENERIC_DETAIL_TYPE): parse_workload_terminated,
}

__all__ = [
    "MAX_EVENT_BYTES",
    "RejectionReason",
    "TriggerRejected",
    "check_workload_id",
    "lambda_function_arn",
    "parse_termination_event",
]
