"""One webhook delivery, end to end: verified, parsed, deduplicated and forwarded, in this order, and why:

1. size, then signature (an unsigned delivery before the secret is even read): nothing unauthenticated reaches
   a parser or a table;
2. event and payload parsed; `ping` and actions that are not a leak are answered and dropped;
3. replay check: consistent reads of the delivery's ledger item, and of its signed body's;
4. PutEvents;
5. the delivery and its body claimed in the ledger with conditional puts.
Claiming after the put never loses an alert: a failed put leaves nothing claimed, so GitHub's redelivery
(which reuses X-GitHub-Delivery) is accepted. Two concurrent copies of one delivery can both pass step 3 and
both be put; the conditional claim refuses the second, and the leak responder deduplicates on the
credential, so the duplicate event costs nothing. A delivery is thus forwarded at least once, and its replay
is refused once it was forwarded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.leaks.github.bus import EventPublisher, put_alert_notice
from rescind.leaks.github.replay import claim_delivery, delivery_already_claimed, signed_body_digest
from rescind.leaks.github.signature import presented_signature, verify_github_signature
from rescind.leaks.github.wire import (
    CONTENT_TYPE_HEADER,
    FORM_CONTENT_TYPE,
    FORM_ENCODED_ADVICE,
    LOCATION_EVENT,
    MAX_BODY_BYTES,
    PING_EVENT,
    SIGNATURE_HEADER,
    WebhookRejected,
    WebhookRejectionReason,
    github_delivery_id,
    github_event_name,
    lower_case_headers,
    parse_secret_scanning_delivery,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class ReceiptStatus(StrEnum):
    ACCEPTED = "accepted"  # forwarded to the bus (202)
    IGNORED = "ignored"  # a secret_scanning_alert action that is not a leak (200)
    PING = "ping"  # GitHub's hook test (200)


RECEIPT_STATUS: Mapping[ReceiptStatus, int] = {
    ReceiptStatus.ACCEPTED: 202,
    ReceiptStatus.IGNORED: 200,
    ReceiptStatus.PING: 200,
}


class DeliveryReceipt(BaseModel):
    """What the function answers and logs about a delivery it did not reject. References only."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    status: ReceiptStatus
    delivery_id: str
    event_name: str
    action: str | None = None
    repository: str | None = None
    alert_number: int | None = None
    event_id: str | None = None  # the bus event's id, when forwarded
    # True when a concurrent copy of this delivery claimed it between our read and our claim: both were put.
    duplicate_put: bool = False

    @property
    def http_status(self) -> int:
        return RECEIPT_STATUS[self.status]


def _refuse_form_encoding(headers: Mapping[str, str], body: bytes) -> None:
    """GitHub's other content type wraps the JSON in `payload=`: say how to fix the hook, not "not JSON"."""
    content_type = lower_case_headers(headers).get(CONTENT_TYPE_HEADER, "").split(";")[0].strip().lower()
    if content_type == FORM_CONTENT_TYPE or body.startswith(b"payload="):
        raise WebhookRejected(WebhookRejectionReason.FORM_ENCODED, FORM_ENCODED_ADVICE)


def receive_github_delivery(
    headers: Mapping[str, str],
    body: bytes,
    *,
    webhook_secret: Callable[[], bytes],
    dynamodb: DynamoDBClient,
    ledger_table_name: str,
    events: EventPublisher,
    event_bus_name: str,
    now: datetime,
) -> DeliveryReceipt:
    """Verify, parse, deduplicate and forward one webhook delivery (see the module docstring for the order).

    `webhook_secret` is read only for a delivery that carries a signature: an unsigned one is refused first.

    Raises WebhookRejected for a refused delivery, TransientError (AwsThrottled, AwsUnavailable) when AWS failed
    in a way a redelivery can fix, ActionFailed (AwsAccessDenied...) for a permission problem, and
    ConfigurationError for an empty webhook secret.
    """
    if len(body) > MAX_BODY_BYTES:
        raise WebhookRejected(WebhookRejectionReason.OVERSIZED, f"the body is over {MAX_BODY_BYTES} bytes")
    signature = presented_signature(lower_case_headers(headers).get(SIGNATURE_HEADER))
    verify_github_signature(webhook_secret(), body, signature)
    event_name = github_event_name(headers)
    _refuse_form_encoding(headers, body)
    if event_name == PING_EVENT:
        return DeliveryReceipt(
            status=ReceiptStatus.PING, delivery_id=github_delivery_id(headers), event_name=event_name
        )
    if event_name == LOCATION_EVENT:
        return DeliveryReceipt(
            status=ReceiptStatus.IGNORED, delivery_id=github_delivery_id(headers), event_name=event_name
        )
    notice = parse_secret_scanning_delivery(headers, body, received_at=now)
    ignored = DeliveryReceipt(
        status=ReceiptStatus.IGNORED,
        delivery_id=notice.delivery_id,
        event_name=event_name,
        action=notice.action,
        repository=notice.repository,
        alert_number=notice.alert_number,
    )
    if not notice.is_leak:
        return ignored
    digest = signed_body_digest(body)
    if delivery_already_claimed(dynamodb, ledger_table_name, notice.delivery_id, body_digest=digest):
        raise WebhookRejected(
            WebhookRejectionReason.REPLAYED, "this delivery (or its signed body) was already forwarded"
        )
    event_id = put_alert_notice(events, notice, event_bus_name)
    claimed = claim_delivery(dynamodb, ledger_table_name, notice.delivery_id, now, notice=notice, body_digest=digest)
    return ignored.model_copy(
        update={"status": ReceiptStatus.ACCEPTED, "event_id": event_id, "duplicate_put": not claimed}
    )
