"""Lambda function URL: GitHub's `secret_scanning_alert` webhook, verified and put on the bus as references.

Invoked synchronously by the function URL (payload format 2.0). Every outcome is an HTTP answer: GitHub shows
it in the hook's recent deliveries, and a 5xx lets it be redelivered. The request body and the signature are
never logged; a log line names the reason, the delivery id and the event name.

| status | when                                                                  |
|--------|-----------------------------------------------------------------------|
| 202    | a leak (created, reopened, publicly_leaked, validated) was put on the bus |
| 200    | a ping, a location of a known alert, or an alert action that is not a leak |
| 400    | malformed, or an event other than secret_scanning_alert               |
| 401    | unsigned or mis-signed                                                |
| 405    | not a POST                                                            |
| 409    | replayed: this X-GitHub-Delivery was already forwarded                |
| 413    | body over 64 KiB                                                      |
| 415    | form-encoded: the hook must be set to Content type application/json   |
| 503    | AWS failed in a way a redelivery can fix                              |
| 500    | configuration or permission problem                                   |
"""

from __future__ import annotations

import base64
import binascii
import json
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.exceptions import RescindError, TransientError
from rescind.leaks.github import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    MAX_BODY_BYTES,
    GitHubSettings,
    WebhookRejected,
    WebhookRejectionReason,
    load_webhook_secret,
    loggable_header,
    receive_github_delivery,
)
from rescind.models.results import utc_now
from rescind.observability import logger, metrics, observed_handler, tracer
from rescind.runtime import get_settings

get_settings()  # fail at cold start, not on the first delivery, when configuration is wrong
_WEBHOOK_SECRET_ARN = GitHubSettings.from_environ().webhook_secret_arn


@cache
def _dynamodb() -> Any:
    return boto3.client("dynamodb")


@cache
def _events() -> Any:
    return boto3.client("events")


@cache
def _secrets() -> Any:
    return boto3.client("secretsmanager")


def _answer(status_code: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status_code, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def _mapping(value: Any) -> dict[str, Any]:
    """A part of the request that should be an object; an empty one when it is not (it is then refused)."""
    return value if isinstance(value, dict) else {}


def _request_body(event: dict[str, Any]) -> bytes:
    """The raw body GitHub signed. Function URLs base64-encode bodies they do not treat as text."""
    text = event.get("body") or ""
    if not isinstance(text, str):
        raise WebhookRejected(WebhookRejectionReason.MALFORMED, "the request has no text body")
    if not event.get("isBase64Encoded"):
        raw = text.encode("utf-8")
        if len(raw) > MAX_BODY_BYTES:
            raise WebhookRejected(WebhookRejectionReason.OVERSIZED, f"the body is over {MAX_BODY_BYTES} bytes")
        return raw
    if len(text) > (MAX_BODY_BYTES + 2) // 3 * 4:  # decoding more would only be thrown away
        raise WebhookRejected(WebhookRejectionReason.OVERSIZED, f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookRejected(WebhookRejectionReason.MALFORMED, "the body is not valid base64") from None


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    event = event if isinstance(event, dict) else {}  # whatever invoked us, the answer is an HTTP status
    headers = _mapping(event.get("headers"))
    request = {
        "delivery_id": loggable_header(headers, DELIVERY_HEADER),
        "event_name": loggable_header(headers, EVENT_HEADER),
    }
    method = str(_mapping(_mapping(event.get("requestContext")).get("http")).get("method", "")).upper()
    try:
        if method != "POST":
            raise WebhookRejected(WebhookRejectionReason.METHOD_NOT_ALLOWED, "only POST is accepted")
        body = _request_body(event)
        receipt = receive_github_delivery(
            headers,
            body,
            webhook_secret=load_webhook_secret(_secrets(), _WEBHOOK_SECRET_ARN),
            dynamodb=_dynamodb(),
            ledger_table_name=get_settings().ledger_table_name,
            events=_events(),
            event_bus_name=get_settings().event_bus_name,
            now=utc_now(),
        )
    except WebhookRejected as error:
        logger.warning(
            "github delivery rejected", extra={**request, "rejection": str(error.reason), "problem": str(error)}
        )
        metrics.add_metric(name=f"WebhookRejected_{error.reason}", unit=MetricUnit.Count, value=1)
        return _answer(error.http_status, {"status": "rejected", "reason": str(error.reason), "message": str(error)})
    except TransientError as error:
        logger.warning("github delivery not forwarded, redeliver it", extra={**request, "error": str(error)})
        metrics.add_metric(name="GitHubWebhookTransientError", unit=MetricUnit.Count, value=1)
        return _answer(503, {"status": "unavailable", "message": "not forwarded; redeliver later"})
    except RescindError as error:
        logger.error(
            "github delivery failed", extra={**request, "error_type": type(error).__name__, "error": str(error)}
        )
        metrics.add_metric(name="GitHubWebhookError", unit=MetricUnit.Count, value=1)
        return _answer(500, {"status": "error", "message": "not forwarded"})
    fields = receipt.model_dump(mode="json", exclude_none=True)
    if receipt.duplicate_put:
        # A concurrent copy of this delivery was forwarded too; the leak responder deduplicates on the credential.
        logger.warning("github delivery forwarded twice by concurrent copies", extra=fields)
        metrics.add_metric(name="GitHubDeliveryDuplicatePut", unit=MetricUnit.Count, value=1)
    else:
        logger.info("github delivery", extra=fields)
    tracer.put_annotation("github_delivery_status", str(receipt.status))
    metrics.add_metric(name=f"GitHubDelivery_{receipt.status}", unit=MetricUnit.Count, value=1)
    return _answer(receipt.http_status, fields)
