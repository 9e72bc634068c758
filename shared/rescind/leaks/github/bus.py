"""The bus: a forwarded delivery's notice, put on EventBridge (Source rescind.github)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from rescind.aws.errors import aws_errors, error_type_for
from rescind.exceptions import AwsUnavailable
from rescind.leaks.github.wire import GitHubAlertNotice

EVENT_SOURCE = "rescind.github"
DETAIL_TYPE = "Secret Scanning Alert"


class EventPublisher(Protocol):
    """The one call of boto3's EventBridge client used here (boto3-stubs has no events extra in this project)."""

    def put_events(self, *, Entries: list[dict[str, Any]]) -> Mapping[str, Any]: ...


def put_alert_notice(events: EventPublisher, notice: GitHubAlertNotice, event_bus_name: str) -> str:
    """Put the notice on the bus (Source rescind.github, DetailType Secret Scanning Alert); its event id.

    A failed entry raises its error code's typed error (rescind.aws.errors: AwsThrottled, AwsUnavailable, else
    ActionFailed; AwsUnavailable when AWS gave no code): either way the function answers 5xx and nothing is
    claimed, so a redelivery is accepted.
    """
    entry = {
        "Source": EVENT_SOURCE,
        "DetailType": DETAIL_TYPE,
        "Detail": notice.model_dump_json(),
        "EventBusName": event_bus_name,
    }
    with aws_errors("events:PutEvents"):
        answer = events.put_events(Entries=[entry])
    entries = answer.get("Entries") or [{}]
    result = entries[0]
    event_id = result.get("EventId")
    if int(answer.get("FailedEntryCount", 0) or 0) == 0 and event_id:
        return str(event_id)
    code = str(result.get("ErrorCode") or "")
    error = error_type_for(code) if code else AwsUnavailable
    raise error(f"events:PutEvents: the entry failed with {code or 'no error code'}")
