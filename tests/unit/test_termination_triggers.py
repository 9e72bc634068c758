"""Termination triggers: every sample event parses, and malformed or foreign events are refused by name."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from rescind.exceptions import InvalidInput
from rescind.offboarding.triggers import (
    MAX_EVENT_BYTES,
    RejectionReason,
    TriggerRejected,
    lambda_function_arn,
    parse_termination_event,
)
from tests.conftest import EVENTS_DIR, load_event

EC2 = "ec2_instance_terminated.json"
ECS = "ecs_task_stopped.json"
LAMBDA = "lambda_function_deleted.json"
ASG = "autoscaling_instance_terminating.json"
GENERIC = "workload_terminated.json"

FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:invoice-export"
TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/payments/0f8e3c5a7b2d4e6f9a1b3c5d7e9f1a2b"
SPIFFE_ID = "spiffe://example.org/ns/payments/sa/batch-worker"


@pytest.mark.parametrize(
    ("name", "source", "cloud_id", "workload_id", "terminated_at"),
    [
        (EC2, "aws.ec2", "i-0abc1234def567890", None, datetime(2026, 11, 11, 21, 29, 54, tzinfo=UTC)),
        (ECS, "aws.ecs", TASK_ARN, None, datetime(2026, 11, 11, 21, 31, 5, 512000, tzinfo=UTC)),
        (LAMBDA, "aws.lambda", FUNCTION_ARN, None, datetime(2026, 11, 11, 21, 40, 11, tzinfo=UTC)),
        (ASG, "aws.autoscaling", "i-0fed9876cba543210", None, datetime(2026, 11, 11, 21, 45, 30, tzinfo=UTC)),
        (GENERIC, "rescind", None, SPIFFE_ID, datetime(2026, 11, 11, 21, 49, 58, tzinfo=UTC)),
    ],
)
def test_each_sample_event_parses_into_a_notice(
    name: str, source: str, cloud_id: str | None, workload_id: str | None, terminated_at: datetime
) -> None:
    event = load_event(name)
    notice = parse_termination_event(event)
    assert notice.source == source
    assert notice.detail_type == event["detail-type"]
    assert notice.event_id == event["id"]
    assert (notice.account_id, notice.region) == ("123456789012", "us-east-1")
    assert (notice.cloud_id, notice.workload_id) == (cloud_id, workload_id)
    assert notice.terminated_at == terminated_at
    assert notice.reason


def test_every_trigger_sample_in_events_is_covered() -> None:
    samples = {path.name for path in EVENTS_DIR.glob("*.json")}
    assert {EC2, ECS, LAMBDA, ASG, GENERIC} <= samples


def test_reasons_name_what_ended_and_never_the_lifecycle_token() -> None:
    asg = load_event(ASG)
    notice = parse_termination_event(asg)
    assert "batch-workers" in notice.reason
    assert "i-0fed9876cba543210" in notice.reason
    assert asg["detail"]["LifecycleActionToken"] not in notice.model_dump_json()
    ecs = parse_termination_event(load_event(ECS))
    assert ecs.reason.startswith("ECS task stopped: ServiceSchedulerInitiated: Scaling activity")


# --- the Lambda function ARN ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "function_name",
    [
        "invoice-export",
        "123456789012:function:invoice-export",
        "arn:aws:lambda:us-east-1:123456789012:function:invoice-export",
    ],
)
def test_a_function_name_partial_or_full_arn_normalises_to_one_arn(function_name: str) -> None:
    event = load_event(LAMBDA)
    event["detail"]["requestParameters"]["functionName"] = function_name
    assert parse_termination_event(event).cloud_id == FUNCTION_ARN


def test_the_partition_follows_the_region() -> None:
    arn = lambda_function_arn("reports", qualifier=None, account_id="123456789012", region="cn-north-1")
    assert arn == "arn:aws-cn:lambda:cn-north-1:123456789012:function:reports"


# --- defaults ---------------------------------------------------------------------------------------------------


def test_without_a_stop_time_or_terminated_at_the_event_time_is_used() -> None:
    ecs = load_event(ECS)
    del ecs["detail"]["stoppedAt"]
    assert parse_termination_event(ecs).terminated_at == datetime(2026, 11, 11, 21, 31, 7, tzinfo=UTC)
    generic = load_event(GENERIC)
    del generic["detail"]["terminated_at"]
    assert parse_termination_event(generic).terminated_at == datetime(2026, 11, 11, 21, 50, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    "workload_id",
    [
        "spiffe://example.org/ns/payments/sa/batch-worker",
        "arn:aws:ecs:us-east-1:123456789012:task/payments/0f8e3c5a7b2d4e6f9a1b3c5d7e9f1a2b",
        "i-0abc1234def567890",
        "agent-session-7f3a91",
    ],
)
def test_the_generic_event_accepts_spiffe_ids_arns_and_cloud_ids(workload_id: str) -> None:
    event = load_event(GENERIC)
    event["detail"]["workload_id"] = workload_id
    assert parse_termination_event(event).workload_id == workload_id


@pytest.mark.parametrize("workload_id", ["spifee:/example.org/ns/x", "spifee://example.org/ns/x", "k8s://ns/pod"])
def test_a_mistyped_spiffe_id_or_another_uri_is_not_taken_for_a_cloud_id(workload_id: str) -> None:
    event = load_event(GENERIC)
    event["detail"]["workload_id"] = workload_id
    with pytest.raises(TriggerRejected) as refused:
        parse_termination_event(event)
    assert "a URI that is not a SPIFFE ID" in str(refused.value)


def test_unknown_fields_that_aws_adds_to_its_events_are_ignored() -> None:
    event = load_event(EC2)
    event["detail"]["new-field-from-2030"] = {"anything": True}
    event["replay-name"] = "archive-replay"
    assert parse_termination_event(event).cloud_id == "i-0abc1234def567890"


# --- refusals ---------------------------------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(*path_and_value: Any) -> Mutation:
    *path, value = path_and_value

    def mutate(event: dict[str, Any]) -> None:
        target = event
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _delete(*path: str) -> Mutation:
    def mutate(event: dict[str, Any]) -> None:
        target = event
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


MALFORMED = RejectionReason.MALFORMED
NOT_A_TRIGGER = RejectionReason.NOT_A_TRIGGER
NOT_A_TERMINATION = RejectionReason.NOT_A_TERMINATION

# (sample, mutation, kind of refusal, field the message names, value that must not be echoed)
BAD_VARIANTS: dict[str, tuple[str, Mutation, RejectionReason, str, str | None]] = {
    "ec2 running": (EC2, _set("detail", "state", "running"), NOT_A_TERMINATION, "detail.state", None),
    "ec2 shutting-down": (EC2, _set("detail", "state", "shutting-down"), NOT_A_TERMINATION, "detail.state", None),
    "ec2 state wrong type": (EC2, _set("detail", "state", ["terminated"]), MALFORMED, "detail.state", None),
    "ec2 wrong source": (EC2, _set("source", "aws.ec2x"), NOT_A_TRIGGER, "source", None),
    "ec2 spot warning": (
        EC2,
        _set("detail-type", "EC2 Spot Instance Interruption Warning"),
        NOT_A_TRIGGER,
        "detail-type",
        None,
    ),
    "look-alike source": (EC2, _set("source", "aws.ec\u0440"), NOT_A_TRIGGER, "source", None),
    "no source": (EC2, _delete("source"), NOT_A_TRIGGER, "source", None),
    "missing detail": (EC2, _delete("detail"), MALFORMED, "detail", None),
    "detail is text": (EC2, _set("detail", "terminated"), MALFORMED, "detail", None),
    "instance id traversal": (
        EC2,
        _set("detail", "instance-id", "i-../../etc/passwd"),
        MALFORMED,
        "detail.instance-id",
        "passwd",
    ),
    "instance id wildcard": (EC2, _set("detail", "instance-id", "i-*"), MALFORMED, "detail.instance-id", None),
    "instance id unicode digit": (
        EC2,
        _set("detail", "instance-id", "i-0abc1234def56789\u0660"),
        MALFORMED,
        "detail.instance-id",
        "\u0660",
    ),
    "account as a number": (EC2, _set("account", 123456789012), MALFORMED, "account", None),
    "account in other digits": (EC2, _set("account", "\u0661" * 12), MALFORMED, "account", "\u0661"),
    "naive time": (EC2, _set("time", "2026-11-11T21:29:54"), MALFORMED, "time", None),
    "unknown envelope version": (EC2, _set("version", "1"), MALFORMED, "version", None),
    "resources not a list": (EC2, _set("resources", "arn:aws:ec2"), MALFORMED, "resources", None),
    "ecs task running": (ECS, _set("detail", "lastStatus", "RUNNING"), NOT_A_TERMINATION, "detail.lastStatus", None),
    "ecs task arn not an arn": (
        ECS,
        _set("detail", "taskArn", "task/payments/../../admin"),
        MALFORMED,
        "detail.taskArn",
        "admin",
    ),
    "ecs task in another account": (
        ECS,
        _set("detail", "taskArn", TASK_ARN.replace("123456789012", "999999999999")),
        MALFORMED,
        "detail.taskArn",
        "999999999999",
    ),
    "ecs task without arn": (ECS, _delete("detail", "taskArn"), MALFORMED, "detail.taskArn", None),
    "lambda failed delete": (
        LAMBDA,
        _set("detail", "errorCode", "AccessDenied"),
        NOT_A_TERMINATION,
        "detail.errorCode",
        "AccessDenied",
    ),
    "lambda not found": (
        LAMBDA,
        _set("detail", "errorCode", "ResourceNotFoundException"),
        NOT_A_TERMINATION,
        "detail.errorCode",
        None,
    ),
    "lambda other call": (
        LAMBDA,
        _set("detail", "eventName", "GetFunction20150331v2"),
        NOT_A_TERMINATION,
        "detail.eventName",
        "GetFunction",
    ),
    "lambda other service": (
        LAMBDA,
        _set("detail", "eventSource", "ec2.amazonaws.com"),
        NOT_A_TRIGGER,
        "detail.eventSource",
        "ec2.amazonaws.com",
    ),
    "lambda version delete": (
        LAMBDA,
        _set("detail", "requestParameters", "functionName", "invoice-export:3"),
        NOT_A_TERMINATION,
        "detail.requestParameters",
        None,
    ),
    "lambda qualifier parameter": (
        LAMBDA,
        _set("detail", "requestParameters", "qualifier", "3"),
        NOT_A_TERMINATION,
        "detail.requestParameters",
        None,
    ),
    "lambda wildcard name": (
        LAMBDA,
        _set("detail", "requestParameters", "functionName", "invoice-*"),
        MALFORMED,
        "detail.requestParameters.functionName",
        "invoice-*",
    ),
    "lambda traversal name": (
        LAMBDA,
        _set("detail", "requestParameters", "functionName", "../invoice-export"),
        MALFORMED,
        "detail.requestParameters.functionName",
        "../invoice",
    ),
    "lambda arn in another account": (
        LAMBDA,
        _set("detail", "requestParameters", "functionName", FUNCTION_ARN.replace("123456789012", "999999999999")),
        MALFORMED,
        "detail.requestParameters.functionName",
        "999999999999",
    ),
    "lambda call in another region": (LAMBDA, _set("detail", "awsRegion", "eu-west-1"), MALFORMED, "awsRegion", None),
    "lambda without request parameters": (
        LAMBDA,
        _set("detail", "requestParameters", None),
        MALFORMED,
        "detail.requestParameters",
        None,
    ),
    "asg launching": (
        ASG,
        _set("detail", "LifecycleTransition", "autoscaling:EC2_INSTANCE_LAUNCHING"),
        NOT_A_TERMINATION,
        "detail.LifecycleTransition",
        None,
    ),
    "asg without instance": (ASG, _delete("detail", "EC2InstanceId"), MALFORMED, "detail.EC2InstanceId", None),
    # The same detail-type when scale-in returns the instance to a warm pool, or instance refresh replaces its
    # root volume (tests/corpus/aws/autoscaling has AWS's own examples): the instance lives on.
    "asg into the warm pool": (ASG, _set("detail", "Destination", "WarmPool"), NOT_A_TERMINATION, "Destination", None),
    "asg root volume replaced": (
        ASG,
        _set("detail", "Action", "ReplaceRootVolume"),
        NOT_A_TERMINATION,
        "detail.Action",
        None,
    ),
    "asg to an unknown destination": (
        ASG,
        _set("detail", "Destination", "Elsewhere"),
        NOT_A_TERMINATION,
        "detail.Destination",
        None,
    ),
    "generic empty id": (GENERIC, _set("detail", "workload_id", ""), MALFORMED, "detail.workload_id", None),
    "generic whitespace id": (GENERIC, _set("detail", "workload_id", "   "), MALFORMED, "detail.workload_id", None),
    "generic wildcard id": (GENERIC, _set("detail", "workload_id", "*"), MALFORMED, "detail.workload_id", None),
    "generic wildcard path": (
        GENERIC,
        _set("detail", "workload_id", "spiffe://example.org/ns/payments/*"),
        MALFORMED,
        "detail.workload_id",
        "payments",
    ),
    "generic traversal": (
        GENERIC,
        _set("detail", "workload_id", "spiffe://example.org/ns/../admin"),
        MALFORMED,
        "detail.workload_id",
        "admin",
    ),
    "generic encoded traversal": (
        GENERIC,
        _set("detail", "workload_id", "spiffe://example.org/ns/%2e%2e/admin"),
        MALFORMED,
        "detail.workload_id",
        "admin",
    ),
    "generic mixed unicode": (
        GENERIC,
        _set("detail", "workload_id", "spiffe://ex\u0430mple.org/ns/payments"),  # a Cyrillic a
        MALFORMED,
        "detail.workload_id",
        "mple.org",
    ),
    "generic zero-width id": (
        GENERIC,
        _set("detail", "workload_id", "spiffe://example.org/ns/pay\u200bments"),
        MALFORMED,
        "detail.workload_id",
        "pay",
    ),
    "generic bad spiffe id": (
        GENERIC,
        _set("detail", "workload_id", "spiffe://Example.org//ns"),
        MALFORMED,
        "detail.workload_id",
        "Example",
    ),
    "generic id not text": (GENERIC, _set("detail", "workload_id", 42), MALFORMED, "detail.workload_id", None),
    "generic bidi reason": (
        GENERIC,
        _set("detail", "reason", "pod deleted \u202edetaler"),
        MALFORMED,
        "detail.reason",
        "detaler",
    ),
    "generic empty reason": (GENERIC, _set("detail", "reason", " "), MALFORMED, "detail.reason", None),
    "generic naive terminated_at": (
        GENERIC,
        _set("detail", "terminated_at", "2026-11-11T21:49:58"),
        MALFORMED,
        "detail.terminated_at",
        None,
    ),
    "generic unknown field": (GENERIC, _set("detail", "token", "hvs.SECRET"), MALFORMED, "detail.token", "hvs."),
    "oversized": (
        GENERIC,
        _set("resources", ["arn:aws:ec2:us-east-1:123456789012:instance/i-0abc1234def567890"] * 5000),
        RejectionReason.OVERSIZED,
        "(root)",
        None,
    ),
    "not json": (EC2, _set("detail", "instance-id", math.nan), MALFORMED, "(root)", None),
}


@pytest.mark.parametrize("case", sorted(BAD_VARIANTS))
def test_a_bad_event_is_refused_naming_the_field_without_echoing_it(case: str) -> None:
    # Given a sample event, altered
    name, mutate, expected_reason, field, secret = BAD_VARIANTS[case]
    event = copy.deepcopy(load_event(name))
    mutate(event)

    # When it is parsed, then it is refused with the kind of refusal and the field named
    with pytest.raises(TriggerRejected) as refused:
        parse_termination_event(event)
    assert isinstance(refused.value, InvalidInput)
    assert refused.value.reason is expected_reason
    message = str(refused.value)
    assert field in message
    # and the offending value is never echoed
    if secret is not None:
        assert secret not in message


def test_the_oversized_limit_is_eventbridges() -> None:
    event = load_event(GENERIC)
    event["detail"]["reason"] = "x"
    padding = MAX_EVENT_BYTES - len(str(event).encode())
    event["resources"] = ["r" * 1000] * (padding // 1000 + 2)
    with pytest.raises(TriggerRejected) as refused:
        parse_termination_event(event)
    assert refused.value.reason is RejectionReason.OVERSIZED


@pytest.mark.parametrize("event", [None, [], "event", 42, {"source": "rescind"}])
def test_something_that_is_not_an_event_is_refused(event: Any) -> None:
    with pytest.raises(TriggerRejected):
        parse_termination_event(event)
