"""The template's EventBridge rules on moto: the real patterns, matched by moto's own matcher.

moto 5.2.5's `test_event_pattern` is a stub, but its internal `EventPattern` matcher handles prefix, suffix,
anything-but, exists, numeric, wildcard, `$or` and cidr. Its `put_events` delivers to SQS targets, and raises
NotImplementedError for Lambda and Step Functions targets. This module:

- reads the rules from template.yaml after the SAM transform (`rescind_local.template.translate_template`): the
  `AWS::Events::Rule` resources, written by hand or made by SAM of `EventBridgeRule`, `CloudWatchEvent` and
  `Schedule` events, never a copy of them;
- `deploy_rules` puts them on moto's buses, so `put_events` routes through them;
- `eventbridge_targets()` patches moto's Rule delivery so a Lambda target runs the in-process handler and a
  state machine target starts an execution, with the rule's Input, InputPath or InputTransformer;
- `eventbridge_targets()` also answers `test_event_pattern` with that same matcher (moto's is a stub that
  answers nothing), so `rescind replay` can match a whole event against the stack's rules as on AWS;
- `route_event` matches a whole event (as in events/*.json, whose `source` may be `aws.*`, which
  `put_events` cannot send) against the rules and delivers it to their targets the same way.

Delivery is synchronous here (AWS delivers asynchronously). A handler error is recorded on the Delivery,
never raised to the sender, as on AWS.
"""

from __future__ import annotations

import datetime
import functools
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock
from uuid import uuid4

from rescind_local.aws import LOCAL_REGION

Resolver = Callable[[Any], Any]


@dataclass(frozen=True)
class TargetSpec:
    target_id: str
    arn: str
    input: str | None = None
    input_path: str | None = None
    input_transformer: Mapping[str, Any] | None = None
    role_arn: str | None = None

    @property
    def service(self) -> str:
        parts = self.arn.split(":")
        return parts[2] if len(parts) > 2 else ""

    def as_moto_target(self) -> dict[str, Any]:
        target: dict[str, Any] = {"Id": self.target_id, "Arn": self.arn}
        if self.input is not None:
            target["Input"] = self.input
        if self.input_path is not None:
            target["InputPath"] = self.input_path
        if self.input_transformer is not None:
            target["InputTransformer"] = dict(self.input_transformer)
        if self.role_arn is not None:
            target["RoleArn"] = self.role_arn
        return target


@dataclass(frozen=True)
class RuleSpec:
    logical_id: str
    name: str
    event_pattern: Mapping[str, Any] | None = None
    schedule_expression: str | None = None
    event_bus_name: str = "default"
    state: str = "ENABLED"
    targets: tuple[TargetSpec, ...] = ()

    def matches(self, event: Mapping[str, Any]) -> bool:
        """A scheduled rule matches no event; a pattern rule matches as EventBridge's matcher says."""
        if self.state != "ENABLED" or self.event_pattern is None:
            return False
        return event_pattern_matches(self.event_pattern, event)


@dataclass(frozen=True)
class Delivery:
    """One event handed to one target. `error_type` is the handler's error class name, if it failed."""

    rule_name: str
    target_id: str
    target_arn: str
    input: str
    execution_arn: str | None = None
    error_type: str | None = None


@dataclass(frozen=True)
class RuleMatch:
    rule: RuleSpec
    deliveries: tuple[Delivery, ...]


@dataclass
class DeliveryLog:
    deliveries: list[Delivery] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, delivery: Delivery) -> None:
        with self._lock:
            self.deliveries.append(delivery)

    def for_rule(self, rule_name: str) -> list[Delivery]:
        with self._lock:
            return [delivery for delivery in self.deliveries if delivery.rule_name == rule_name]


# --- matching and input ---------------------------------------------------------------------------------


def event_pattern_matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """moto's EventBridge matcher (the one behind put_events). Raises on a pattern EventBridge would reject."""
    from moto.events.models import EventPattern

    return bool(EventPattern.load(json.dumps(pattern)).matches_event(dict(event)))  # type: ignore[arg-type]


_PATH_TOKEN = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\['([^']+)'\]")


def _select_json_path(document: Any, path: str) -> Any:
    """EventBridge InputPath: `$`, `$.detail`, `$.detail.items[0]`, `$['detail-type']`."""
    if not path.startswith("$"):
        raise ValueError(f"InputPath {path!r} must start with $")
    position, value = 1, document
    while position < len(path):
        match = _PATH_TOKEN.match(path, position)
        if match is None:
            raise ValueError(f"unsupported InputPath {path!r}")
        key, index, quoted = match.groups()
        if index is not None:
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
        else:
            value = value.get(key or quoted) if isinstance(value, dict) else None
        position = match.end()
    return value


def target_input(target: TargetSpec, event: Mapping[str, Any], rule_name: str = "") -> str:
    """What the target receives, as EventBridge computes it: Input, else InputPath, else InputTransformer."""
    if target.input is not None:
        return target.input
    if target.input_path is not None:
        return json.dumps(_select_json_path(dict(event), target.input_path))
    if target.input_transformer is not None:
        paths = dict(target.input_transformer.get("InputPathsMap") or {})
        values = {name: _select_json_path(dict(event), str(path)) for name, path in paths.items()}
        values["aws.events.event"] = values["aws.events.event.json"] = dict(event)
        values["aws.events.rule-name"] = rule_name
        return apply_input_template(str(target.input_transformer.get("InputTemplate", "")), values)
    return json.dumps(event)


_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")


def apply_input_template(template: str, values: Mapping[str, Any]) -> str:
    """EventBridge's InputTemplate: a placeholder inside a JSON string gets the bare text, elsewhere in a
    JSON template the JSON value (so strings are quoted); in a plain-text template, the bare text."""
    is_json = template.lstrip().startswith(("{", "["))
    output: list[str] = []
    in_string = False
    position = 0
    while position < len(template):
        character = template[position]
        placeholder = _PLACEHOLDER.match(template, position) if character == "<" else None
        if placeholder is not None and placeholder.group(1) in values:
            value = values[placeholder.group(1)]
            if is_json and not in_string:
                output.append(json.dumps(value))
            elif is_json:
                output.append(json.dumps(value if isinstance(value, str) else json.dumps(value))[1:-1])
            else:
                output.append(value if isinstance(value, str) else json.dumps(value))
            position = placeholder.end()
            continue
        if is_json and in_string and character == "\\":
            output.append(template[position : position + 2])
            position += 2
            continue
        if is_json and character == '"':
            in_string = not in_string
        output.append(character)
        position += 1
    return "".join(output)


def _as_delivered_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """moto keeps `time` as epoch seconds and adds `ingestion-time`; targets get the documented envelope."""
    delivered = {key: value for key, value in event.items() if key != "ingestion-time"}
    when = delivered.get("time")
    if isinstance(when, int | float):
        stamp = datetime.datetime.fromtimestamp(when, tz=datetime.UTC)
        delivered["time"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    return delivered


# --- delivery ---------------------------------------------------------------------------------------------


def _as_json_document(payload: str) -> str:
    """A plain-text InputTemplate result reaches Lambda and Step Functions as a JSON string."""
    try:
        json.loads(payload)
    except ValueError:
        return json.dumps(payload)
    return payload


@functools.lru_cache(maxsize=16)
def _delivery_client(service: str, region: str) -> Any:
    """One client per service and region, built once (5 to 8 ms each): EventBridge delivers without building one.
    moto intercepts each request of it while a mock is on, as it does a new client's."""
    import boto3

    return boto3.client(service, region_name=region)  # type: ignore[call-overload]


def deliver(target: TargetSpec, rule_name: str, event: Mapping[str, Any], region: str = LOCAL_REGION) -> Delivery:
    """Hand the event to a Lambda or Step Functions target, through moto (so in-process handlers run)."""
    payload = _as_json_document(target_input(target, event, rule_name))
    if target.service == "lambda":
        answer = _delivery_client("lambda", region).invoke(
            FunctionName=target.arn, InvocationType="RequestResponse", Payload=payload.encode()
        )
        error_type = None
        if answer.get("FunctionError"):
            document = json.loads(answer["Payload"].read() or b"{}")
            error_type = str(document.get("errorType", "Exception")) if isinstance(document, dict) else "Exception"
        return Delivery(rule_name, target.target_id, target.arn, payload, error_type=error_type)
    if target.service == "states":
        started = _delivery_client("stepfunctions", region).start_execution(
            stateMachineArn=target.arn, name=str(uuid4()), input=payload
        )
        return Delivery(rule_name, target.target_id, target.arn, payload, execution_arn=started["executionArn"])
    raise NotImplementedError(f"local delivery to {target.service} targets is not supported: {target.arn}")


def route_event(
    event: Mapping[str, Any], rules: Sequence[RuleSpec], *, event_bus_name: str = "default", region: str = LOCAL_REGION
) -> list[RuleMatch]:
    """Match a whole event against `rules` on one bus and deliver it to every matching rule's targets."""
    matches = []
    for rule in rules:
        if rule.event_bus_name != event_bus_name or not rule.matches(event):
            continue
        deliveries = tuple(deliver(target, rule.name, event, region) for target in rule.targets)
        matches.append(RuleMatch(rule, deliveries))
    return matches


def deploy_rules(events_client: Any, rules: Sequence[RuleSpec]) -> dict[str, str]:
    """Put the rules and their targets on moto's buses; returns rule name → ARN."""
    existing_buses = {bus["Name"] for bus in events_client.list_event_buses()["EventBuses"]}
    arns = {}
    for rule in rules:
        if rule.event_bus_name not in existing_buses:
            events_client.create_event_bus(Name=rule.event_bus_name)
            existing_buses.add(rule.event_bus_name)
        request: dict[str, Any] = {"Name": rule.name, "EventBusName": rule.event_bus_name, "State": rule.state}
        if rule.event_pattern is not None:
            request["EventPattern"] = json.dumps(rule.event_pattern)
        if rule.schedule_expression is not None:
            request["ScheduleExpression"] = rule.schedule_expression
        arns[rule.name] = events_client.put_rule(**request)["RuleArn"]
        if rule.targets:
            events_client.put_targets(
                Rule=rule.name,
                EventBusName=rule.event_bus_name,
                Targets=[target.as_moto_target() for target in rule.targets],
            )
    return arns


@contextmanager
def eventbridge_targets(log: DeliveryLog | None = None) -> Iterator[DeliveryLog]:
    """While active, moto's put_events delivers to Lambda and Step Functions targets (see `deliver`)."""
    import copy

    from moto.events.models import Rule
    from moto.events.responses import EventsHandler

    deliveries = log if log is not None else DeliveryLog()
    original = Rule.send_to_targets

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        if not self.event_pattern.matches_event(original_event):
            return
        for raw_target in self.targets:
            target = TargetSpec(
                target_id=raw_target["Id"],
                arn=raw_target["Arn"],
                input=raw_target.get("Input"),
                input_path=raw_target.get("InputPath"),
                input_transformer=raw_target.get("InputTransformer"),
            )
            if target.service in {"lambda", "states"}:
                event = _as_delivered_event(original_event)
                deliveries.add(deliver(target, self.name, event, self.region_name))
            else:  # moto's own delivery, one target at a time
                single = copy.copy(self)
                single.targets = [raw_target]
                original(single, original_event, transform_input)

    with (
        mock.patch.object(Rule, "send_to_targets", send_to_targets),
        mock.patch.object(EventsHandler, "test_event_pattern", _test_event_pattern, create=True),
    ):
        yield deliveries


def _test_event_pattern(self: Any) -> str:
    """TestEventPattern as EventBridge answers it: {"Result": true|false}, with the matcher behind put_events."""
    pattern = json.loads(self._get_param("EventPattern"))
    event = json.loads(self._get_param("Event"))
    return json.dumps({"Result": event_pattern_matches(pattern, event)})


# --- from the template ------------------------------------------------------------------------------------


def _rule_name(stack_name: str, logical_id: str) -> str:
    return f"{stack_name}-{logical_id}"[:64]


def rules_from_template(
    template: Mapping[str, Any], resolve: Resolver, *, stack_name: str = "rescind-local"
) -> list[RuleSpec]:
    """Every `AWS::Events::Rule` of a CloudFormation template, with intrinsics resolved by `resolve`.

    Give it the template after the SAM transform (`translate_template`), which holds the rules SAM makes of the
    functions' and state machines' events. `resolve` turns a template value (a Ref, GetAtt, Sub...) into its
    local value; see `rescind_local.stack`.
    """
    rules: list[RuleSpec] = []
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Events::Rule":
            continue
        properties = resource.get("Properties") or {}
        rules.append(
            RuleSpec(
                logical_id=logical_id,
                name=str(resolve(properties.get("Name") or _rule_name(stack_name, logical_id))),
                event_pattern=resolve(properties["EventPattern"]) if "EventPattern" in properties else None,
                schedule_expression=resolve(properties.get("ScheduleExpression")),
                event_bus_name=_bus_name(resolve(properties.get("EventBusName") or "default")),
                state=str(resolve(properties.get("State") or "ENABLED")),
                targets=tuple(
                    TargetSpec(
                        target_id=str(resolve(target["Id"])),
                        arn=str(resolve(target["Arn"])),
                        input=resolve(target.get("Input")),
                        input_path=resolve(target.get("InputPath")),
                        input_transformer=resolve(target.get("InputTransformer")),
                        role_arn=resolve(target.get("RoleArn")),
                    )
                    for target in properties.get("Targets") or []
                ),
            )
        )
    return rules


def _bus_name(name_or_arn: Any) -> str:
    text = str(name_or_arn)
    return text.split("event-bus/", 1)[1] if "event-bus/" in text else text


def put_one_event(
    events_client: Any, source: str, detail_type: str, detail: Mapping[str, Any], event_bus_name: str = "default"
) -> str:
    """put_events with one entry; returns its event id (raises if EventBridge refused the entry)."""
    answer = events_client.put_events(
        Entries=[
            {
                "Source": source,
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "EventBusName": event_bus_name,
            }
        ]
    )
    entry = answer["Entries"][0]
    if "EventId" not in entry:
        raise ValueError(f"put_events refused the entry: {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")
    event_id: str = entry["EventId"]
    return event_id
