"""Lambda function URL: GitHub's `secret_scanning_alert` webhook, verified and put on the bus as references.

Invoked synchronously by the function URL (payload format 2.0), read and answered through Powertools'
LambdaFunctionUrlResolver. Every outcome is an HTTP answer: GitHub shows it in the hook's recent deliveries, and
a 5xx lets it be redelivered. The HMAC is verified over the exact raw body before anything else reads it. The
request body and the signature are never logged; a log line names the reason, the delivery id and the event
name.

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
from typing import Any

from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.exceptions import RescindError, TransientError
from rescind.leaks.github import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    MAX_BODY_BYTES,
    WebhookRejected,
    WebhookRejectionReason,
    load_webhook_secret,
    loggable_header,
    receive_github_delivery,
)
from rescind.models.results import utc_now
from rescind.observability import add_count, logger, observed_handler, tracer
from rescind.runtime import get_dynamodb_client, get_events_client, get_settings

_WEBHOOK_SECRET_ARN = get_settings().required("github_webhook_secret_arn")  # fail at cold start, not on a delivery
app = LambdaFunctionUrlResolver()


def _answer(status_code: int, body: dict[str, Any]) -> Response[str]:
    return Response(status_code=status_code, content_type=content_types.APPLICATION_JSON, body=json.dumps(body))


def _request_fields() -> dict[str, str | None]:
    """The delivery id and event name, for a log line, when they have their expected shape."""
    headers = app.current_event.headers
    return {
        "delivery_id": loggable_header(headers, DELIVERY_HEADER),
        "event_name": loggable_header(headers, EVENT_HEADER),
    }


def _request_body() -> bytes:
    """The raw body GitHub signed. Function URLs base64-encode bodies they do not treat as text."""
    text = app.current_event.body or ""
    if not isinstance(text, str):
        raise WebhookRejected(WebhookRejectionReason.MALFORMED, "the request has no text body")
    if not app.current_event.is_base64_encoded:
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


@app.post(".+")  # any path: the function URL is the webhook
def deliver() -> Response[str]:
    receipt = receive_github_delivery(
        dict(app.current_event.headers),
        _request_body(),
        webhook_secret=lambda: load_webhook_secret(_WEBHOOK_SECRET_ARN),
        dynamodb=get_dynamodb_client(),
        ledger_table_name=get_settings().ledger_table_name,
        events=get_events_client(),
        event_bus_name=get_settings().event_bus_name,
        now=utc_now(),
    )
    fields = receipt.model_dump(mode="json", exclude_none=True)
    if receipt.duplicate_put:
        # A concurrent copy of this delivery was forwarded too; the leak responder deduplicates on the credential.
        logger.warning("github delivery forwarded twice by concurrent copies", extra=fields)
        add_count("GitHubDeliveryDuplicatePut")
    else:
        logger.info("github delivery", extra=fields)
    tracer.put_annotation("github_delivery_status", str(receipt.status))
    add_count("GitHubDelivery", status=str(receipt.status))
    return _answer(receipt.http_status, fields)


@app.exception_handler(WebhookRejected)
def rejected(error: WebhookRejected) -> Response[str]:
    logger.warning(
        "github delivery rejected", extra={**_request_fields(), "rejection": str(error.reason), "problem": str(error)}
    )
    add_count("WebhookRejected", reason=str(error.reason))
    return _answer(error.http_status, {"status": "rejected", "reason": str(error.reason), "message": str(error)})


@app.not_found
def not_a_post(_: NotFoundError) -> Response[str]:
    return rejected(WebhookRejected(WebhookRejectionReason.METHOD_NOT_ALLOWED, "only POST is accepted"))


@app.exception_handler(TransientError)
def unavailable(error: TransientError) -> Response[str]:
    logger.warning("github delivery not forwarded, redeliver it", extra={**_request_fields(), "error": str(error)})
    add_count("GitHubWebhookTransientError")
    return _answer(503, {"status": "unavailable", "message": "not forwarded; redeliver later"})


@app.exception_handler(RescindError)
def failed(error: RescindError) -> Response[str]:
    logger.error(
        "github delivery failed",
        extra={**_request_fields(), "error_type": type(error).__name__, "error": str(error)},
    )
    add_count("GitHubWebhookError")
    return _answer(500, {"status": "error", "message": "not forwarded"})


# Whatever invoked the function, the answer is an HTTP status: anything but a function URL request is resolved as
# a request without a method, and refused (405).
_NOT_A_REQUEST: dict[str, Any] = {"rawPath": "/", "requestContext": {"stage": "$default", "http": {"method": ""}}}


def _as_request(event: Any) -> dict[str, Any]:
    try:
        context = event["requestContext"]
        shaped = all(
            isinstance(value, str) for value in (event["rawPath"], context["stage"], context["http"]["method"])
        )
        if shaped and isinstance(event.get("headers") or {}, dict):
            return dict(event)
    except (KeyError, TypeError):
        pass
    return _NOT_A_REQUEST


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(_as_request(event), context)
