"""An event handed to the stack as the cloud would hand it: an EventBridge event to each matching rule's function
(as EventBridge would), or a GitHub delivery to the webhook function, signed for the stack."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rescind.exceptions import InvalidInput
from rescind_cli.runs.boundary import EXIT_FAILED, CommandFailed
from rescind_cli.runs.history import pages
from rescind_cli.targets import WEBHOOK_FUNCTION, Target


def load_event(path: Path) -> dict[str, Any]:
    """An EventBridge event as the samples in events/ hold it: source, detail-type, detail (and resources)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InvalidInput(f"cannot read {path}: {error.strerror}") from None
    except ValueError:
        raise InvalidInput(f"{path} is not JSON: give an EventBridge event like the samples in events/") from None
    if not isinstance(document, dict):
        raise InvalidInput(f"{path} is not one EventBridge event (a JSON object)")
    if is_webhook_delivery(document):
        return document
    missing = [key for key in ("source", "detail-type", "detail") if key not in document]
    if missing or not isinstance(document.get("detail"), dict):
        raise InvalidInput(
            f"{path} is not an EventBridge event (it needs source, detail-type and a detail object) nor a "
            "GitHub webhook delivery to a function URL"
        )
    return document


def is_webhook_delivery(document: dict[str, Any]) -> bool:
    """A function URL event carrying a GitHub delivery, like events/github_secret_scanning_webhook.json."""
    headers = document.get("headers")
    return isinstance(headers, dict) and "x-github-event" in headers and isinstance(document.get("body"), str)


def deliver_to_webhook(target: Target, delivery: dict[str, Any]) -> tuple[str, int]:
    """Invoke GitHubWebhookFunction with the delivery, signed again with the stack's own webhook secret (as GitHub
    would sign it for this stack) under a fresh delivery id. Returns (delivery id, HTTP status)."""
    from rescind_local.github import sign_delivery

    function = target.function_name(WEBHOOK_FUNCTION)
    lambda_client = target.client("lambda")
    environment = lambda_client.get_function_configuration(FunctionName=function).get("Environment") or {}
    secret_arn = (environment.get("Variables") or {}).get("GITHUB_WEBHOOK_SECRET_ARN")
    if not secret_arn:
        raise CommandFailed(f"{WEBHOOK_FUNCTION} has no GITHUB_WEBHOOK_SECRET_ARN", EXIT_FAILED)
    secret = target.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"].strip()
    delivery_id = str(uuid.uuid4())
    signed = sign_delivery(delivery, secret.encode(), delivery_id=delivery_id)
    answer = lambda_client.invoke(FunctionName=function, Payload=json.dumps(signed).encode())
    payload = json.loads(answer["Payload"].read() or b"{}")
    status = int(payload.get("statusCode", 500)) if isinstance(payload, dict) else 500
    if answer.get("FunctionError") or status >= 300:
        raise CommandFailed(f"the webhook answered {status}: {str(payload.get('body', ''))[:300]}", EXIT_FAILED)
    return delivery_id, status


# The functions the termination and leak rules target: replay hands them the event as EventBridge would.
RULE_TARGET_FUNCTIONS = ("StartOffboardingFunction", "StartLeakResponseFunction")


@dataclass(frozen=True)
class RuleDelivery:
    """One rule of the stack that matched the event, and what its target function answered."""

    rule: str
    function: str
    answer: dict[str, Any]
    error: str | None = None

    @property
    def execution_arns(self) -> list[str]:
        """The runs the answer names: started now, or started before for the same incident (a duplicate)."""
        answers = [self.answer, *(self.answer.get("responses") or [])]
        return [str(a["execution_arn"]) for a in answers if isinstance(a, dict) and a.get("execution_arn")]

    @property
    def outcomes(self) -> list[str]:
        """What the function decided, one line each: 'unresolved (incident ...)', 'ignored: ...'."""
        if self.error:
            return [f"failed: {self.error}"]
        answers = [self.answer, *(self.answer.get("responses") or []), self.answer.get("recorded")]
        lines = []
        for answer in answers:
            if not isinstance(answer, dict) or answer.get("status") in (None, "accepted"):
                continue
            status, incident = str(answer["status"]), answer.get("incident_id")
            why = answer.get("why") or answer.get("problem") or ""
            lines.append(f"{status}" + (f" (incident {incident})" if incident else "") + (f": {why}" if why else ""))
        return lines


def deliver_through_rules(target: Target, event: dict[str, Any]) -> list[RuleDelivery]:
    """Match the whole event against the stack's rules and hand it, envelope and all, to each matching rule's
    function, as EventBridge would. PutEvents cannot do this: it sets `account` and `region` to the caller's and
    refuses `aws.*` sources, so a real AWS event would reach the functions changed."""
    events, lambda_client = target.client("events"), target.client("lambda")
    functions = {target.function_name(logical_id) for logical_id in RULE_TARGET_FUNCTIONS}
    document = json.dumps(event)
    deliveries = []
    for bus, rule in _rules(events):
        if rule.get("State") != "ENABLED" or not rule.get("EventPattern"):
            continue
        targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]
        ours = [t for t in targets if str(t["Arn"]).rsplit(":", 1)[-1] in functions]
        if not ours or not events.test_event_pattern(EventPattern=rule["EventPattern"], Event=document)["Result"]:
            continue
        for rule_target in ours:
            answer = lambda_client.invoke(FunctionName=rule_target["Arn"], Payload=document.encode())
            payload = json.loads(answer["Payload"].read() or b"{}")
            error = None
            if answer.get("FunctionError"):
                error = f"{payload.get('errorType', 'error')}: {str(payload.get('errorMessage', ''))[:300]}"
            deliveries.append(
                RuleDelivery(
                    rule=str(rule["Name"]),
                    function=str(rule_target["Arn"]).rsplit(":", 1)[-1],
                    answer=payload if isinstance(payload, dict) else {},
                    error=error,
                )
            )
    return deliveries


def _rules(events: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(bus name, rule) for every rule on every bus of the account: the default bus and Rescind's trigger bus."""
    for bus in pages(events.list_event_buses, "EventBuses", {}):
        yield from (
            (str(bus["Name"]), rule) for rule in pages(events.list_rules, "Rules", {"EventBusName": bus["Name"]})
        )
