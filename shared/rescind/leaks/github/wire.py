"""A GitHub webhook delivery as sent: its headers, its payload, and the notice Rescind builds from it.

The webhook's documented `alert` object (`secret-scanning-alert-webhook` in GitHub's REST API description) carries
no secret value. The notice is built field by field from the payload, so a value is dropped even if some payload
carried one. Every refusal is a WebhookRejected whose reason maps to the HTTP status the function answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.exceptions import InvalidInput
from rescind.leaks.types import GITHUB_REPOSITORY_PATTERN
from rescind.models.results import utc_now
from rescind.validation import describe_validation_error

# Alerts are a few KiB; GitHub caps payloads at 25 MB, far above anything this endpoint should parse.
MAX_BODY_BYTES = 64 * 1024

SECRET_SCANNING_EVENT = "secret_scanning_alert"  # noqa: S105 - an event name
PING_EVENT = "ping"
# A new place where a known alert's secret was found: the alert's own delivery is what Rescind answers.
LOCATION_EVENT = "secret_scanning_alert_location"

SIGNATURE_HEADER = "x-hub-signature-256"
CONTENT_TYPE_HEADER = "content-type"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
FORM_ENCODED_ADVICE = (
    "the webhook sends application/x-www-form-urlencoded: in the webhook's settings on GitHub, "
    "choose Content type application/json"
)
EVENT_HEADER = "x-github-event"
DELIVERY_HEADER = "x-github-delivery"

# Actions that mean a secret is, or is again, exposed. Others (resolved, assigned, unassigned, and any action
# GitHub adds later) are acknowledged and not forwarded.
LEAK_ACTIONS = frozenset({"created", "reopened", "publicly_leaked", "validated"})

# GitHub's delivery id is a GUID; the event name and action are snake_case words.
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9-]{1,100}$")
_EVENT_NAME = re.compile(r"^[a-z_]{1,64}$")
# The leak responder's parser (rescind.leaks.triggers.GitHubAlertDetail) accepts exactly these.
_SECRET_TYPE = r"^[a-z0-9_]{1,100}$"  # noqa: S105 - a pattern
REPOSITORY_PATTERN = GITHUB_REPOSITORY_PATTERN

# --- rejections -----------------------------------------------------------------------------------------------


class WebhookRejectionReason(StrEnum):
    UNSIGNED = "unsigned"  # no X-Hub-Signature-256
    BAD_SIGNATURE = "bad_signature"  # another algorithm, or not the body's HMAC under the secret
    REPLAYED = "replayed"  # this X-GitHub-Delivery was already forwarded
    OVERSIZED = "oversized"  # body over MAX_BODY_BYTES
    MALFORMED = "malformed"  # not JSON, a missing or wrong field, a missing header
    UNSUPPORTED_EVENT = "unsupported_event"  # an event other than secret_scanning_alert or ping
    METHOD_NOT_ALLOWED = "method_not_allowed"  # not a POST
    FORM_ENCODED = "form_encoded"  # the webhook was set up with application/x-www-form-urlencoded


REJECTION_STATUS: Mapping[WebhookRejectionReason, int] = {
    WebhookRejectionReason.UNSIGNED: 401,
    WebhookRejectionReason.BAD_SIGNATURE: 401,
    WebhookRejectionReason.REPLAYED: 409,
    WebhookRejectionReason.OVERSIZED: 413,
    WebhookRejectionReason.MALFORMED: 400,
    WebhookRejectionReason.UNSUPPORTED_EVENT: 400,
    WebhookRejectionReason.METHOD_NOT_ALLOWED: 405,
    WebhookRejectionReason.FORM_ENCODED: 415,
}


class WebhookRejected(InvalidInput):
    """A delivery was refused before anything was forwarded. The message never echoes the request."""

    def __init__(self, reason: WebhookRejectionReason, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason

    @property
    def http_status(self) -> int:
        return REJECTION_STATUS[self.reason]


# --- the notice -----------------------------------------------------------------------------------------------

Validity = Literal["active", "inactive", "unknown"]


class GitHubAlertNotice(BaseModel):
    """One secret scanning alert delivery, as put on the bus: references only, never a value or the body."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    delivery_id: Annotated[str, Field(pattern=_DELIVERY_ID.pattern)]
    action: Annotated[str, Field(pattern=_EVENT_NAME.pattern)]
    alert_number: Annotated[int, Field(ge=1, le=2**53)]
    secret_type: Annotated[str, Field(pattern=_SECRET_TYPE)]
    secret_type_display_name: Annotated[str, Field(max_length=200)] | None = None
    # The length is its own constraint: a bounded repetition of the Unicode [^\s] in the pattern compiles into a
    # large automaton in pydantic's Rust regex (~18 ms at cold start). At most 1990 after the scheme, as before
    # (an http:// address may now be one character longer).
    html_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=1998)] | None = None
    repository: Annotated[str, Field(pattern=REPOSITORY_PATTERN, max_length=201)]
    # The alert's creation time; the receipt time when GitHub left it out (its `reopened` example does).
    created_at: AwareDatetime
    received_at: AwareDatetime
    validity: Validity | None = None
    publicly_leaked: bool | None = None
    # The alert's state after this action; the leak responder records, rather than answers, an alert a human
    # resolved as not a secret.
    state: Annotated[str, Field(pattern=_EVENT_NAME.pattern)] | None = None
    resolution: Annotated[str, Field(pattern=_EVENT_NAME.pattern)] | None = None

    @property
    def is_leak(self) -> bool:
        return self.action in LEAK_ACTIONS


class _WireRepository(BaseModel):
    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="ignore")

    full_name: str


class _WireAlert(BaseModel):
    """The fields of GitHub's webhook `alert` object that Rescind reads. Everything else is dropped."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="ignore")

    number: int
    secret_type: str
    secret_type_display_name: str | None = None
    html_url: str | None = None
    created_at: AwareDatetime | None = None
    validity: Validity | None = None
    publicly_leaked: bool | None = None
    state: str | None = None
    resolution: str | None = None

    @field_validator("validity", mode="before")
    @classmethod
    def _known_validity(cls, value: object) -> object:
        # GitHub may add states; an unknown one is no reason to drop an alert.
        return value if value in ("active", "inactive", "unknown") else None

    @field_validator("state", "resolution", mode="before")
    @classmethod
    def _word_or_none(cls, value: object) -> object:
        # Read for a decision, never echoed: anything but a snake_case word is as good as absent.
        return value if isinstance(value, str) and _EVENT_NAME.fullmatch(value) else None


class _WirePayload(BaseModel):
    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="ignore")

    action: str
    alert: _WireAlert
    repository: _WireRepository


def lower_case_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    # Function URLs lower-case header names already; other callers (tests, API Gateway v1) may not.
    return {str(name).lower(): str(value) for name, value in (headers or {}).items()}


def github_event_name(headers: Mapping[str, str] | None) -> str:
    """X-GitHub-Event, or WebhookRejected(malformed) when it is missing or not an event name."""
    name = lower_case_headers(headers).get(EVENT_HEADER, "").strip()
    if not _EVENT_NAME.fullmatch(name):
        raise WebhookRejected(WebhookRejectionReason.MALFORMED, "X-GitHub-Event is missing or not an event name")
    return name


def github_delivery_id(headers: Mapping[str, str] | None) -> str:
    """X-GitHub-Delivery, or WebhookRejected(malformed) when it is missing or not a GUID-like id."""
    delivery_id = lower_case_headers(headers).get(DELIVERY_HEADER, "").strip()
    if not _DELIVERY_ID.fullmatch(delivery_id):
        raise WebhookRejected(WebhookRejectionReason.MALFORMED, "X-GitHub-Delivery is missing or not a delivery id")
    return delivery_id


def loggable_header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A delivery id or event name fit for a log line: the header when it has the expected shape, else None."""
    value = lower_case_headers(headers).get(name, "").strip()
    pattern = _DELIVERY_ID if name == DELIVERY_HEADER else _EVENT_NAME
    return value if pattern.fullmatch(value) else None


def parse_secret_scanning_delivery(
    headers: Mapping[str, str], body: bytes, *, received_at: datetime | None = None
) -> GitHubAlertNotice:
    """The notice of a `secret_scanning_alert` delivery (any action; `is_leak` says whether to forward it).

    Call only after verify_github_signature. Raises WebhookRejected: unsupported_event for any other event
    (`ping` included: callers answer it before parsing), malformed for a bad header, body or field.
    """
    event_name = github_event_name(headers)
    if event_name != SECRET_SCANNING_EVENT:
        raise WebhookRejected(WebhookRejectionReason.UNSUPPORTED_EVENT, "only secret_scanning_alert is accepted")
    delivery_id = github_delivery_id(headers)
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WebhookRejected(WebhookRejectionReason.MALFORMED, "the body is not JSON") from None
    except RecursionError:  # a validly signed body nested thousands deep
        raise WebhookRejected(WebhookRejectionReason.MALFORMED, "the body is nested too deep") from None
    if not isinstance(document, dict):
        raise WebhookRejected(WebhookRejectionReason.MALFORMED, "the body is not a JSON object")
    received = received_at or utc_now()
    try:
        payload = _WirePayload.model_validate(document)
        # Field by field: nothing of the payload but these references reaches the notice.
        return GitHubAlertNotice(
            delivery_id=delivery_id,
            action=payload.action,
            alert_number=payload.alert.number,
            secret_type=payload.alert.secret_type,
            secret_type_display_name=payload.alert.secret_type_display_name,
            html_url=payload.alert.html_url,
            repository=payload.repository.full_name,
            created_at=payload.alert.created_at or received,
            received_at=received,
            validity=payload.alert.validity,
            publicly_leaked=payload.alert.publicly_leaked,
            state=payload.alert.state,
            resolution=payload.alert.resolution,
        )
    except ValidationError as error:
        raise WebhookRejected(
            WebhookRejectionReason.MALFORMED, f"invalid alert: {describe_validation_error(error)}"
        ) from None
