"""E9002 and E9003: nothing invoked asynchronously may fail silently.

E9002 looks from the invoked side: a function invoked asynchronously (an EventBridge rule or schedule target,
an SNS subscription, a SAM push event, or one that declares an EventInvokeConfig) needs an on-failure
destination or a dead-letter queue, because Lambda drops the event after its retries. A function fed by SQS
needs a redrive policy on the queue. A state machine started by a rule or a schedule needs that target's
DeadLetterConfig, because a start that fails is otherwise lost.

E9003 looks from the sending side: every AWS::Events::Rule target, every AWS::Scheduler::Schedule target and
every SAM EventBridgeRule/CloudWatchEvent/Schedule/ScheduleV2 event has a DeadLetterConfig.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar, NamedTuple

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

SAM_FUNCTION = "AWS::Serverless::Function"
LAMBDA_FUNCTION = "AWS::Lambda::Function"
SAM_STATE_MACHINE = "AWS::Serverless::StateMachine"
STATE_MACHINE = "AWS::StepFunctions::StateMachine"
FUNCTION_TYPES = (SAM_FUNCTION, LAMBDA_FUNCTION)
STATE_MACHINE_TYPES = (SAM_STATE_MACHINE, STATE_MACHINE)

# SAM event types through which Lambda (or EventBridge, for state machines) invokes asynchronously.
ASYNC_FUNCTION_EVENTS = frozenset(
    {
        "EventBridgeRule",
        "CloudWatchEvent",
        "Schedule",
        "ScheduleV2",
        "SNS",
        "S3",
        "CloudWatchLogs",
        "IoTRule",
        "Cognito",
        "AlexaSkill",
    }
)
RULE_EVENTS = frozenset({"EventBridgeRule", "CloudWatchEvent", "Schedule", "ScheduleV2"})

_SUB_VARIABLE = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}")


def referenced_ids(value: Any) -> set[str]:
    """Logical ids that `value` names through Ref, Fn::GetAtt or Fn::Sub (pseudo parameters left out)."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= referenced_ids(item)
    elif isinstance(value, dict):
        for key, argument in value.items():
            if key == "Ref" and isinstance(argument, str):
                found.add(argument)
            elif key == "Fn::GetAtt":
                parts = argument.split(".", 1) if isinstance(argument, str) else argument
                if isinstance(parts, list) and parts and isinstance(parts[0], str):
                    found.add(parts[0])
            elif key == "Fn::Sub":
                text = argument if isinstance(argument, str) else (argument or [None])[0]
                if isinstance(text, str):
                    found |= set(_SUB_VARIABLE.findall(text))
                if isinstance(argument, list) and len(argument) > 1:
                    found |= referenced_ids(argument[1])
            else:
                found |= referenced_ids(argument)
    return {name for name in found if not name.startswith("AWS::")}


def _is_set(value: Any) -> bool:
    return value is not None and value != {} and value != ""


def _dead_letter_arn(config: Any) -> bool:
    return isinstance(config, dict) and _is_set(config.get("Arn"))


def _sam_dead_letter(config: Any) -> bool:
    """SAM events take DeadLetterConfig with an Arn, or with Type SQS to have SAM create the queue."""
    return isinstance(config, dict) and (_is_set(config.get("Arn")) or _is_set(config.get("Type")))


# A NamedTuple, not a dataclass: cfn-lint loads this module by path without registering it in sys.modules.
class AsyncUse(NamedTuple):
    """One way a function or state machine is invoked asynchronously."""

    invoked_id: str
    how: str
    # For state machines and SQS: whether this path itself captures failures (a DLQ or redrive policy).
    captured: bool
    path: tuple[str | int, ...]
    via_queue: bool = False


class _Invocations:
    """Who invokes what asynchronously, read from one template."""

    def __init__(self, cfn: Template) -> None:
        self.resources: dict[str, dict[str, Any]] = cfn.get_resources()

    def type_of(self, logical_id: str) -> str | None:
        resource = self.resources.get(logical_id)
        return resource.get("Type") if resource else None

    def properties(self, logical_id: str) -> dict[str, Any]:
        return self.resources.get(logical_id, {}).get("Properties") or {}

    def invoked_by(self, value: Any) -> set[str]:
        """The functions and state machines that an ARN or name expression designates."""
        invoked: set[str] = set()
        for logical_id in referenced_ids(value):
            resource_type = self.type_of(logical_id)
            if resource_type in FUNCTION_TYPES or resource_type in STATE_MACHINE_TYPES:
                invoked.add(logical_id)
            elif resource_type in ("AWS::Lambda::Alias", "AWS::Lambda::Version"):
                invoked |= self.invoked_by(self.properties(logical_id).get("FunctionName"))
            elif resource_type is None:
                # SAM's AutoPublishAlias makes <Function>Alias<Name>, which the SAM template does not list.
                invoked |= {
                    owner
                    for owner, resource in self.resources.items()
                    if resource.get("Type") in (SAM_FUNCTION, SAM_STATE_MACHINE)
                    and (resource.get("Properties") or {}).get("AutoPublishAlias")
                    and logical_id.startswith(owner + "Alias")
                }
        return invoked

    def uses(self) -> Iterator[AsyncUse]:
        for logical_id, resource in self.resources.items():
            resource_type = resource.get("Type")
            properties = resource.get("Properties") or {}
            if resource_type == "AWS::Events::Rule":
                yield from self._rule_targets(logical_id, properties)
            elif resource_type == "AWS::Scheduler::Schedule":
                target = properties.get("Target") or {}
                for invoked in self.invoked_by(target.get("Arn")):
                    yield AsyncUse(
                        invoked,
                        f"target of schedule {logical_id}",
                        _dead_letter_arn(target.get("DeadLetterConfig")),
                        ("Resources", logical_id, "Properties", "Target"),
                    )
            elif resource_type == "AWS::SNS::Subscription" and str(properties.get("Protocol")).lower() == "lambda":
                for invoked in self.invoked_by(properties.get("Endpoint")):
                    yield AsyncUse(invoked, f"SNS subscription {logical_id}", False, ("Resources", logical_id))
            elif resource_type == "AWS::SNS::Topic":
                for index, subscription in enumerate(properties.get("Subscription") or []):
                    if isinstance(subscription, dict) and str(subscription.get("Protocol")).lower() == "lambda":
                        for invoked in self.invoked_by(subscription.get("Endpoint")):
                            path = ("Resources", logical_id, "Properties", "Subscription", index)
                            yield AsyncUse(invoked, f"subscription to topic {logical_id}", False, path)
            elif resource_type == "AWS::Lambda::EventInvokeConfig":
                for invoked in self.invoked_by(properties.get("FunctionName")):
                    yield AsyncUse(invoked, f"EventInvokeConfig {logical_id}", False, ("Resources", logical_id))
            elif resource_type == "AWS::Lambda::EventSourceMapping":
                queue_ids = self._queues(properties.get("EventSourceArn"))
                for invoked in self.invoked_by(properties.get("FunctionName")):
                    for queue_id in queue_ids:
                        yield AsyncUse(
                            invoked,
                            f"SQS queue {queue_id} through {logical_id}",
                            self._has_redrive_policy(queue_id),
                            ("Resources", logical_id),
                            via_queue=True,
                        )
            elif resource_type in (SAM_FUNCTION, SAM_STATE_MACHINE):
                yield from self._sam_events(logical_id, resource_type, properties)

    def _rule_targets(self, rule_id: str, properties: dict[str, Any]) -> Iterator[AsyncUse]:
        for index, target in enumerate(properties.get("Targets") or []):
            if not isinstance(target, dict):
                continue
            for invoked in self.invoked_by(target.get("Arn")):
                yield AsyncUse(
                    invoked,
                    f"target of rule {rule_id}",
                    _dead_letter_arn(target.get("DeadLetterConfig")),
                    ("Resources", rule_id, "Properties", "Targets", index),
                )

    def _sam_events(self, owner_id: str, owner_type: str, properties: dict[str, Any]) -> Iterator[AsyncUse]:
        if owner_type == SAM_FUNCTION and _is_set(properties.get("EventInvokeConfig")):
            yield AsyncUse(owner_id, "its EventInvokeConfig", False, ("Resources", owner_id, "Properties"))
        events = properties.get("Events") or {}
        if not isinstance(events, dict):
            return
        for event_id, event in events.items():
            if not isinstance(event, dict):
                continue
            event_type = event.get("Type")
            event_properties = event.get("Properties") or {}
            path = ("Resources", owner_id, "Properties", "Events", event_id)
            if owner_type == SAM_FUNCTION and event_type == "SQS":
                for queue_id in self._queues(event_properties.get("Queue")) or {""}:
                    yield AsyncUse(
                        owner_id,
                        f"its SQS event {event_id}",
                        bool(queue_id) and self._has_redrive_policy(queue_id),
                        path,
                        via_queue=True,
                    )
            elif owner_type == SAM_FUNCTION and event_type in ASYNC_FUNCTION_EVENTS:
                yield AsyncUse(owner_id, f"its {event_type} event {event_id}", False, path)
            elif owner_type == SAM_STATE_MACHINE and event_type in RULE_EVENTS:
                captured = _sam_dead_letter(event_properties.get("DeadLetterConfig"))
                yield AsyncUse(owner_id, f"its {event_type} event {event_id}", captured, path)

    def _queues(self, value: Any) -> set[str]:
        return {logical_id for logical_id in referenced_ids(value) if self.type_of(logical_id) == "AWS::SQS::Queue"}

    def _has_redrive_policy(self, queue_id: str) -> bool:
        redrive = self.properties(queue_id).get("RedrivePolicy")
        return isinstance(redrive, dict) and _is_set(redrive.get("deadLetterTargetArn"))

    def function_captures_failures(self, function_id: str) -> bool:
        """An on-failure destination or a dead-letter queue for asynchronous invocations of this function."""
        properties = self.properties(function_id)
        if self.type_of(function_id) == SAM_FUNCTION:
            dead_letter = properties.get("DeadLetterQueue")
            if isinstance(dead_letter, dict) and _is_set(dead_letter.get("TargetArn")):
                return True
            invoke_config = properties.get("EventInvokeConfig") or {}
            if _is_set((invoke_config.get("DestinationConfig") or {}).get("OnFailure")):
                return True
        dead_letter_config = properties.get("DeadLetterConfig")
        if isinstance(dead_letter_config, dict) and _is_set(dead_letter_config.get("TargetArn")):
            return True
        for resource in self.resources.values():
            if resource.get("Type") != "AWS::Lambda::EventInvokeConfig":
                continue
            config = resource.get("Properties") or {}
            on_failure = (config.get("DestinationConfig") or {}).get("OnFailure") or {}
            if function_id in self.invoked_by(config.get("FunctionName")) and _is_set(on_failure.get("Destination")):
                return True
        return False


class AsyncInvocationHasFailureDestination(CloudFormationLintRule):
    id = "E9002"
    shortdesc = "Asynchronously invoked functions and state machines capture failures"
    description = (
        "A function invoked asynchronously (EventBridge rule or schedule target, SNS, SAM push events, "
        "EventInvokeConfig) needs EventInvokeConfig.DestinationConfig.OnFailure or a DeadLetterQueue; one fed by "
        "SQS needs a redrive policy on the queue; a state machine started by a rule or schedule needs that "
        "target's DeadLetterConfig."
    )
    source_url = "https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html"
    tags: ClassVar[list[str]] = ["rescind", "lambda", "stepfunctions", "events"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        invocations = _Invocations(cfn)
        matches: list[RuleMatch] = []
        pushed: dict[str, list[str]] = {}
        for use in invocations.uses():
            invoked_type = invocations.type_of(use.invoked_id)
            if invoked_type in STATE_MACHINE_TYPES and not use.captured:
                matches.append(
                    RuleMatch(
                        list(use.path),
                        f"State machine {use.invoked_id} is started asynchronously ({use.how}) with no "
                        "DeadLetterConfig: a start that fails is lost",
                    )
                )
            elif invoked_type in FUNCTION_TYPES and use.via_queue:
                if not use.captured:
                    matches.append(
                        RuleMatch(
                            list(use.path),
                            f"Function {use.invoked_id} is fed by SQS ({use.how}) from a queue with no RedrivePolicy "
                            "declared in this template: messages that keep failing are never set aside",
                        )
                    )
            elif invoked_type in FUNCTION_TYPES:
                pushed.setdefault(use.invoked_id, []).append(use.how)
        for function_id, hows in pushed.items():
            if not invocations.function_captures_failures(function_id):
                matches.append(
                    RuleMatch(
                        ["Resources", function_id],
                        f"Function {function_id} is invoked asynchronously ({'; '.join(sorted(set(hows)))}) but has "
                        "no on-failure destination or dead-letter queue: Lambda drops a failed event after its "
                        "retries. Set EventInvokeConfig.DestinationConfig.OnFailure or DeadLetterQueue",
                    )
                )
        return matches


class EventTargetHasDeadLetterConfig(CloudFormationLintRule):
    id = "E9003"
    shortdesc = "EventBridge rule and schedule targets have a DeadLetterConfig"
    description = (
        "Every AWS::Events::Rule target, AWS::Scheduler::Schedule target and SAM EventBridgeRule, "
        "CloudWatchEvent, Schedule or ScheduleV2 event has a DeadLetterConfig, so an event EventBridge cannot "
        "deliver is kept."
    )
    source_url = "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html"
    tags: ClassVar[list[str]] = ["rescind", "events"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches: list[RuleMatch] = []
        for rule_id, rule in cfn.get_resources(["AWS::Events::Rule"]).items():
            for index, target in enumerate((rule.get("Properties") or {}).get("Targets") or []):
                if isinstance(target, dict) and not _dead_letter_arn(target.get("DeadLetterConfig")):
                    target_id = target.get("Id", index)
                    matches.append(
                        RuleMatch(
                            ["Resources", rule_id, "Properties", "Targets", index],
                            f"Rule {rule_id} target {target_id} has no DeadLetterConfig: an event that cannot "
                            "be delivered is dropped",
                        )
                    )
        for schedule_id, schedule in cfn.get_resources(["AWS::Scheduler::Schedule"]).items():
            target = (schedule.get("Properties") or {}).get("Target")
            if isinstance(target, dict) and not _dead_letter_arn(target.get("DeadLetterConfig")):
                matches.append(
                    RuleMatch(
                        ["Resources", schedule_id, "Properties", "Target"],
                        f"Schedule {schedule_id} target has no DeadLetterConfig: an invocation that cannot be "
                        "delivered is dropped",
                    )
                )
        for owner_id, owner in cfn.get_resources([SAM_FUNCTION, SAM_STATE_MACHINE]).items():
            events = (owner.get("Properties") or {}).get("Events") or {}
            if not isinstance(events, dict):
                continue
            for event_id, event in events.items():
                if not isinstance(event, dict) or event.get("Type") not in RULE_EVENTS:
                    continue
                if not _sam_dead_letter((event.get("Properties") or {}).get("DeadLetterConfig")):
                    matches.append(
                        RuleMatch(
                            ["Resources", owner_id, "Properties", "Events", event_id],
                            f"{event.get('Type')} event {event_id} of {owner_id} has no DeadLetterConfig: an "
                            "event that cannot be delivered is dropped",
                        )
                    )
        return matches
