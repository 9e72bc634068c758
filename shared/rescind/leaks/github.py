"""GitHub secret scanning alerts: the webhook's signature, its parsing, replay protection and the bus event.

GitHub posts `secret_scanning_alert` webhooks to the function URL. A delivery is accepted only when its
`X-Hub-Signature-256` is the HMAC-SHA256 of the exact body under the webhook secret. What goes on the bus is a
`GitHubAlertNotice`: references only (repository, alert number, secret type). The webhook's documented `alert`
object (`secret-scanning-alert-webhook` in GitHub's REST API description) carries no secret value; the REST
API's `GET /repos/{owner}/{repo}/secret-scanning/alerts/{n}` does (`secret`). The notice is built field by
field from the payload, so a value is dropped even if some payload carried one.

`fetch_alert_secret` reads that value for the leak responder, in-process only.

Order of a delivery, and why:
1. size, then signature: nothing unauthenticated reaches a parser or a table;
2. event and payload parsed; `ping` and actions that are not a leak are answered and dropped;
3. replay check: consistent reads of the delivery's ledger item, and of its signed body's (the delivery id
   header is not signed, so a captured body resent under a fresh id is caught by its SHA-256);
4. PutEvents;
5. the delivery and its body claimed in the ledger with conditional puts.
Claiming after the put never loses an alert: a failed put leaves nothing claimed, so GitHub's redelivery
(which reuses X-GitHub-Delivery) is accepted. Two concurrent copies of one delivery can both pass step 3 and
both be put; the conditional claim refuses the second, and the leak responder deduplicates on the
credential, so the duplicate event costs nothing. A delivery is thus forwarded at least once, and its replay
is refused once it was forwarded.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from rescind.aws.errors import aws_errors, error_code
from rescind.exceptions import ActionFailed, AwsThrottled, InvalidInput, TransientError
from rescind.models.results import utc_now
from rescind.validation import describe_validation_error

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

# Alerts are a few KiB; GitHub caps payloads at 25 MB, far above anything this endpoint should parse.
MAX_BODY_BYTES = 64 * 1024

EVENT_SOURCE = "rescind.github"
DETAIL_TYPE = "Secret Scanning Alert"
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
_SIGNATURE_PREFIX = "sha256="

# Actions that mean a secret is, or is again, exposed. Others (resolved, assigned, unassigned, and any action
# GitHub adds later) are acknowledged and not forwarded.
LEAK_ACTIONS = frozenset({"created", "reopened", "publicly_leaked", "validated"})

DELIVERY_PK_PREFIX = "GITHUB_DELIVERY#"
BODY_PK_PREFIX = "GITHUB_BODY#"
DELIVERY_SK = "#"

GITHUB_API_VERSION = "2022-11-28"
DEFAULT_GITHUB_API_URL = "https://api.github.com"
_MAX_ALERT_RESPONSE_BYTES = 1024 * 1024

# GitHub's delivery id is a GUID; the event name and action are snake_case words.
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9-]{1,100}$")
_EVENT_NAME = re.compile(r"^[a-z_]{1,64}$")
# The leak responder's parser (rescind.leaks.triggers.GitHubAlertDetail) accepts exactly these.
_SECRET_TYPE = r"^[a-z0-9_]{1,100}$"  # noqa: S105 - a pattern
_REPOSITORY_PATTERN = r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$"
_REPOSITORY = re.compile(_REPOSITORY_PATTERN)
_SECRETS_MANAGER_ARN = r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}$"


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


class GitHubAlertNotFound(ActionFailed):
    """GitHub answered 404: no such alert, or the token cannot see the repository. The leak stays unresolved."""


class GitHubUnavailable(TransientError):
    """GitHub's API answered 429 or 5xx, was rate limited, or could not be reached in time."""


# --- signature ------------------------------------------------------------------------------------------------


def github_signature(secret: bytes, body: bytes) -> str:
    """The X-Hub-Signature-256 value GitHub sends for `body` under `secret`."""
    return _SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_github_signature(secret: bytes, body: bytes, header: str | None) -> None:
    """Raise WebhookRejected unless `header` is `sha256=<hex HMAC-SHA256 of body under secret>`.

    The comparison is constant-time. Only SHA-256 is accepted: GitHub's legacy X-Hub-Signature (SHA-1) is not.
    """
    if not secret:
        # An empty key would make every signature computable by anyone: a configuration error, not a rejection.
        raise InvalidInput("the GitHub webhook secret is empty")
    if header is None or not header.strip():
        raise WebhookRejected(WebhookRejectionReason.UNSIGNED, "X-Hub-Signature-256 is missing")
    algorithm, separator, _ = header.strip().partition("=")
    if not separator or algorithm.lower() != "sha256":
        raise WebhookRejected(WebhookRejectionReason.BAD_SIGNATURE, "X-Hub-Signature-256 is not a sha256= signature")
    expected = github_signature(secret, body).encode("ascii")
    presented = header.strip().lower().encode("utf-8", "replace")
    if not hmac.compare_digest(expected, presented):
        raise WebhookRejected(WebhookRejectionReason.BAD_SIGNATURE, "X-Hub-Signature-256 does not match the body")


# --- the notice -----------------------------------------------------------------------------------------------

Validity = Literal["active", "inactive", "unknown"]


class GitHubAlertNotice(BaseModel):
    """One secret scanning alert delivery, as put on the bus: references only, never a value or the body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delivery_id: Annotated[str, Field(pattern=_DELIVERY_ID.pattern)]
    action: Annotated[str, Field(pattern=_EVENT_NAME.pattern)]
    alert_number: Annotated[int, Field(ge=1, le=2**53)]
    secret_type: Annotated[str, Field(pattern=_SECRET_TYPE)]
    secret_type_display_name: Annotated[str, Field(max_length=200)] | None = None
    html_url: Annotated[str, Field(pattern=r"^https?://[^\s]{1,1990}$")] | None = None
    repository: Annotated[str, Field(pattern=_REPOSITORY_PATTERN)]
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
    model_config = ConfigDict(extra="ignore")

    full_name: str


class _WireAlert(BaseModel):
    """The fields of GitHub's webhook `alert` object that Rescind reads. Everything else is dropped."""

    model_config = ConfigDict(extra="ignore")

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
    model_config = ConfigDict(extra="ignore")

    action: str
    alert: _WireAlert
    repository: _WireRepository


def _lower_keys(headers: Mapping[str, str] | None) -> dict[str, str]:
    # Function URLs lower-case header names already; other callers (tests, API Gateway v1) may not.
    return {str(name).lower(): str(value) for name, value in (headers or {}).items()}


def github_event_name(headers: Mapping[str, str] | None) -> str:
    """X-GitHub-Event, or WebhookRejected(malformed) when it is missing or not an event name."""
    name = _lower_keys(headers).get(EVENT_HEADER, "").strip()
    if not _EVENT_NAME.fullmatch(name):
        raise WebhookRejected(WebhookRejectionReason.MALFORMED, "X-GitHub-Event is missing or not an event name")
    return name


def github_delivery_id(headers: Mapping[str, str] | None) -> str:
    """X-GitHub-Delivery, or WebhookRejected(malformed) when it is missing or not a GUID-like id."""
    delivery_id = _lower_keys(headers).get(DELIVERY_HEADER, "").strip()
    if not _DELIVERY_ID.fullmatch(delivery_id):
        raise WebhookRejected(WebhookRejectionReason.MALFORMED, "X-GitHub-Delivery is missing or not a delivery id")
    return delivery_id


def loggable_header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A delivery id or event name fit for a log line: the header when it has the expected shape, else None."""
    value = _lower_keys(headers).get(name, "").strip()
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


# --- replay protection in the ledger ----------------------------------------------------------------------------


def _delivery_key(delivery_id: str) -> dict[str, Any]:
    # GUIDs compare without case: "ABC…" and "abc…" are one delivery.
    return {"pk": {"S": f"{DELIVERY_PK_PREFIX}{delivery_id.lower()}"}, "sk": {"S": DELIVERY_SK}}


def _body_key(body_digest: str) -> dict[str, Any]:
    return {"pk": {"S": f"{BODY_PK_PREFIX}{body_digest}"}, "sk": {"S": DELIVERY_SK}}


def signed_body_digest(body: bytes) -> str:
    """What the signature covers, as a replay key: X-GitHub-Delivery is not signed, so a captured body sent again
    under a fresh delivery id is still the same delivery."""
    return hashlib.sha256(body).hexdigest()


def delivery_already_claimed(
    dynamodb: DynamoDBClient, table_name: str, delivery_id: str, *, body_digest: str | None = None
) -> bool:
    """Whether this delivery, or this signed body under any delivery id, was forwarded before (strongly
    consistent reads of their ledger items; the body is read only when the id is new)."""
    keys = [_delivery_key(delivery_id)] + ([_body_key(body_digest)] if body_digest else [])
    for key in keys:
        with aws_errors("dynamodb:GetItem"):
            answer = dynamodb.get_item(TableName=table_name, Key=key, ConsistentRead=True, ProjectionExpression="pk")
        if "Item" in answer:
            return True
    return False


def claim_delivery(
    dynamodb: DynamoDBClient,
    table_name: str,
    delivery_id: str,
    now: datetime,
    *,
    notice: GitHubAlertNotice | None = None,
    body_digest: str | None = None,
) -> bool:
    """Record the delivery (and its signed body) in the append-only ledger; False when either was recorded.

    Conditional puts (attribute_not_exists(pk)), never an update or a delete. The items name the alert by
    reference only.
    """
    item: dict[str, Any] = {"record_type": {"S": "github_delivery"}, "received_at": {"S": now.isoformat()}}
    if notice is not None:
        item["repository"] = {"S": notice.repository}
        item["alert_number"] = {"N": str(notice.alert_number)}
        item["action"] = {"S": notice.action}
        item["secret_type"] = {"S": notice.secret_type}
    keys = [_delivery_key(delivery_id)] + ([_body_key(body_digest)] if body_digest else [])
    return all([_put_once(dynamodb, table_name, {**key, **item}) for key in keys])  # both put, whatever the first


def _put_once(dynamodb: DynamoDBClient, table_name: str, item: dict[str, Any]) -> bool:
    from botocore.exceptions import ClientError

    with aws_errors("dynamodb:PutItem"):
        try:
            dynamodb.put_item(TableName=table_name, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
    return True


# --- the bus ----------------------------------------------------------------------------------------------------


class EventPublisher(Protocol):
    """The one call of boto3's EventBridge client used here (boto3-stubs has no events extra in this project)."""

    def put_events(self, *, Entries: list[dict[str, Any]]) -> Mapping[str, Any]: ...


# PutEvents per-entry error codes a retry (GitHub's redelivery) can fix.
_TRANSIENT_ENTRY_ERRORS = frozenset({"ThrottlingException", "InternalFailure", "InternalException"})


def put_alert_notice(events: EventPublisher, notice: GitHubAlertNotice, event_bus_name: str) -> str:
    """Put the notice on the bus (Source rescind.github, DetailType Secret Scanning Alert); its event id.

    A throttled or failed entry raises AwsThrottled, any other refused entry ActionFailed: either way the
    function answers 5xx and nothing is claimed, so a redelivery is accepted.
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
    code = str(result.get("ErrorCode") or "unknown")
    if code in _TRANSIENT_ENTRY_ERRORS or code == "unknown":
        raise AwsThrottled(f"events:PutEvents: the entry failed with {code}")
    raise ActionFailed(f"events:PutEvents: the entry was refused with {code}")


# --- one delivery, end to end -----------------------------------------------------------------------------------


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

    model_config = ConfigDict(extra="forbid", frozen=True)

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
    content_type = _lower_keys(headers).get(CONTENT_TYPE_HEADER, "").split(";")[0].strip().lower()
    if content_type == FORM_CONTENT_TYPE or body.startswith(b"payload="):
        raise WebhookRejected(WebhookRejectionReason.FORM_ENCODED, FORM_ENCODED_ADVICE)


def receive_github_delivery(
    headers: Mapping[str, str],
    body: bytes,
    *,
    webhook_secret: bytes,
    dynamodb: DynamoDBClient,
    ledger_table_name: str,
    events: EventPublisher,
    event_bus_name: str,
    now: datetime,
) -> DeliveryReceipt:
    """Verify, parse, deduplicate and forward one webhook delivery (see the module docstring for the order).

    Raises WebhookRejected for a refused delivery, TransientError (AwsThrottled) when AWS failed in a way a
    redelivery can fix, ActionFailed or InvalidInput for a configuration or permission problem.
    """
    if len(body) > MAX_BODY_BYTES:
        raise WebhookRejected(WebhookRejectionReason.OVERSIZED, f"the body is over {MAX_BODY_BYTES} bytes")
    verify_github_signature(webhook_secret, body, _lower_keys(headers).get(SIGNATURE_HEADER))
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


# --- GitHub's REST API: the alert's value ------------------------------------------------------------------------


def _validated_api_url(api_url: str) -> str:
    """https, or http to a loopback host only: the request carries a bearer token."""
    parsed = urllib.parse.urlsplit(api_url.strip())
    if not parsed.hostname or parsed.query or parsed.fragment or parsed.username or parsed.password:
        raise InvalidInput("GITHUB_API_URL must be a plain http(s) URL")
    if parsed.scheme == "http":
        host = parsed.hostname
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise InvalidInput("GITHUB_API_URL must use https (http only to a loopback address)")
    elif parsed.scheme != "https":
        raise InvalidInput("GITHUB_API_URL must use https")
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path.rstrip("/"), "", ""))


def validate_repository(repository: str) -> tuple[str, str]:
    """`owner/name` split in two, or InvalidInput when it is not a GitHub repository name."""
    if not isinstance(repository, str) or not _REPOSITORY.fullmatch(repository):
        raise InvalidInput("repository must be owner/name (letters, digits, '.', '_', '-')")
    owner, name = repository.split("/")
    if owner in (".", "..") or name in (".", ".."):
        raise InvalidInput("repository must be owner/name, not a relative path")
    return owner, name


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect (a renamed repository) only on the same scheme and host: the token must not leave."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        old, new = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(newurl)
        if (old.scheme, old.netloc) != (new.scheme, new.netloc):
            return None  # urllib then raises HTTPError with the 3xx status
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch_alert_secret(api_url: str, token: str, repository: str, alert_number: int, *, timeout: float = 5.0) -> str:
    """The leaked value of a secret scanning alert, read from GitHub's REST API. Use it in-process only.

    GET {api_url}/repos/{owner}/{repo}/secret-scanning/alerts/{n}. Raises InvalidInput for a bad argument,
    GitHubAlertNotFound on 404, GitHubUnavailable on 429, 5xx, rate limiting or a network failure, and
    ActionFailed on any other refusal or a response without a value. Messages never carry the token or body.
    """
    _, alert_url, where = _alert_url(api_url, repository, alert_number)
    document = _github_get(alert_url, token, where, timeout=timeout)
    value = document.get("secret") if isinstance(document, dict) else None
    if not isinstance(value, str) or not value:
        raise ActionFailed(f"GitHub's answer for {where} carries no secret value")
    return value


# GitHub alerts on a paired secret (an AWS secret access key) only when both halves are in one file: the key id
# is written near the secret. Only this many lines around each location are read, so that another key in the
# same file is not taken for the pair.
KEY_ID_SEARCH_LINES = 3
_MAX_LOCATIONS = 10
_KEY_ID_IN_TEXT = re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])")
_BLOB_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")


def find_access_key_ids_beside_alert(
    api_url: str, token: str, repository: str, alert_number: int, *, timeout: float = 5.0
) -> list[str]:
    """The AWS access key ids written within KEY_ID_SEARCH_LINES lines of the alert's committed locations.

    Reads the alert's locations, then each location's blob, from GitHub's REST API (the blob by its sha on the
    configured API, never by a URL from the answer, so the token goes nowhere else). The files' text stays in
    memory and is dropped; only key ids (which are not secret) are returned, each once, in order.
    """
    repository_url, alert_url, where = _alert_url(api_url, repository, alert_number)
    locations = _github_get(f"{alert_url}/locations?per_page={_MAX_LOCATIONS}", token, where, timeout=timeout)
    found: list[str] = []
    for location in locations[:_MAX_LOCATIONS] if isinstance(locations, list) else []:
        details = location.get("details") if isinstance(location, dict) and location.get("type") == "commit" else None
        if not isinstance(details, dict):
            continue
        blob_sha, first, last = details.get("blob_sha"), details.get("start_line"), details.get("end_line")
        if not (isinstance(blob_sha, str) and _BLOB_SHA.fullmatch(blob_sha)):
            continue
        if not (isinstance(first, int) and isinstance(last, int) and 1 <= first <= last):
            continue
        try:
            blob = _github_get(f"{repository_url}/git/blobs/{blob_sha}", token, f"{where} blob", timeout=timeout)
        except GitHubAlertNotFound:
            continue
        except ActionFailed:
            continue  # a blob larger than any .env, or unreadable: no pair to be found there (GitHub down raises)
        lines = _blob_text(blob).splitlines()
        window = lines[max(0, first - 1 - KEY_ID_SEARCH_LINES) : last + KEY_ID_SEARCH_LINES]
        found.extend(match.group(0) for line in window for match in _KEY_ID_IN_TEXT.finditer(line))
    return list(dict.fromkeys(found))


def _blob_text(blob: Any) -> str:
    import base64
    import binascii

    content = blob.get("content") if isinstance(blob, dict) else None
    if not isinstance(content, str):
        return ""
    if blob.get("encoding") != "base64":
        return content
    try:
        return base64.b64decode(content, validate=False).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""


def _alert_url(api_url: str, repository: str, alert_number: int) -> tuple[str, str, str]:
    """(the repository's REST URL, the alert's, and "owner/name alert n" for messages); InvalidInput for a bad
    argument. Every URL the token is sent to is built here, on the configured API."""
    base = _validated_api_url(api_url)
    owner, name = validate_repository(repository)
    if isinstance(alert_number, bool) or not isinstance(alert_number, int) or alert_number < 1:
        raise InvalidInput("alert_number must be a positive integer")
    repository_url = f"{base}/repos/{urllib.parse.quote(owner, safe='')}/{urllib.parse.quote(name, safe='')}"
    return (
        repository_url,
        f"{repository_url}/secret-scanning/alerts/{alert_number}",
        f"{owner}/{name} alert {alert_number}",
    )


def _github_get(url: str, token: str, where: str, *, timeout: float) -> Any:
    """One authenticated GET on GitHub's REST API, parsed. Errors as for fetch_alert_secret; never the token."""
    if not token:
        raise InvalidInput("a GitHub token is needed to read the alert's value")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked by _validated_api_url
        url,
        method="GET",
        headers={
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": GITHUB_API_VERSION,
            "Authorization": f"Bearer {token}",
            "User-Agent": "rescind",
        },
    )
    opener = urllib.request.build_opener(_SameOriginRedirects())
    try:
        with opener.open(request, timeout=timeout) as response:
            raw = response.read(_MAX_ALERT_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as error:
        status = error.code
        rate_limited = status == 403 and error.headers.get("x-ratelimit-remaining") == "0"
        error.close()
        if status == 404:
            raise GitHubAlertNotFound(f"GitHub has no {where} visible to this token (404)") from None
        if status == 429 or status >= 500 or rate_limited:
            raise GitHubUnavailable(f"GitHub answered {status} for {where}") from None
        raise ActionFailed(f"GitHub refused to read {where} ({status})") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise GitHubUnavailable(f"GitHub could not be reached for {where}: {type(error).__name__}") from None
    if len(raw) > _MAX_ALERT_RESPONSE_BYTES:
        raise ActionFailed(f"GitHub's answer for {where} is larger than an alert")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ActionFailed(f"GitHub's answer for {where} is not JSON") from None


# --- configuration ----------------------------------------------------------------------------------------------


class GitHubSettings(BaseModel):
    """GitHub configuration, read from the environment at cold start.

    The webhook function needs the webhook secret; the leak responder needs the API URL and the token.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    github_webhook_secret_arn: Annotated[str, Field(pattern=_SECRETS_MANAGER_ARN)] | None = None
    github_api_url: str = DEFAULT_GITHUB_API_URL
    github_token_secret_arn: Annotated[str, Field(pattern=_SECRETS_MANAGER_ARN)] | None = None

    @field_validator("github_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        try:
            return _validated_api_url(value)
        except InvalidInput as error:
            raise ValueError(str(error)) from None

    @property
    def webhook_secret_arn(self) -> str:
        """GITHUB_WEBHOOK_SECRET_ARN, or InvalidInput when this function was deployed without it."""
        if self.github_webhook_secret_arn is None:
            raise InvalidInput("invalid GitHub configuration: GITHUB_WEBHOOK_SECRET_ARN is not set")
        return self.github_webhook_secret_arn

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> GitHubSettings:
        """Field `x_y` from variable `X_Y`; empty means unset. Raises InvalidInput naming what is wrong."""
        source = os.environ if environ is None else environ
        values = {name: source[name.upper()] for name in cls.model_fields if source.get(name.upper())}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise InvalidInput(f"invalid GitHub configuration: {describe_validation_error(error)}") from None


# Secrets are cached for a while rather than for the container's life, so a rotated webhook secret is picked
# up within minutes without a redeploy.
SECRET_CACHE_SECONDS = 300.0
_secret_cache: dict[str, tuple[float, str]] = {}
_secret_cache_lock = threading.Lock()


def _read_secret_string(secrets: SecretsManagerClient, secret_arn: str, what: str) -> str:
    with _secret_cache_lock:
        cached = _secret_cache.get(secret_arn)
        if cached is not None and time.monotonic() - cached[0] < SECRET_CACHE_SECONDS:
            return cached[1]
    with aws_errors("secretsmanager:GetSecretValue"):
        answer = secrets.get_secret_value(SecretId=secret_arn)
    value = answer.get("SecretString")
    if not value:
        raise InvalidInput(f"the {what} secret {secret_arn} has no string value")
    with _secret_cache_lock:
        _secret_cache[secret_arn] = (time.monotonic(), value)
    return value


def load_webhook_secret(secrets: SecretsManagerClient, secret_arn: str) -> bytes:
    """The webhook secret (cached for SECRET_CACHE_SECONDS), as the bytes GitHub keys its HMAC with."""
    return _read_secret_string(secrets, secret_arn, "GitHub webhook").encode("utf-8")


def load_github_token(secrets: SecretsManagerClient, secret_arn: str) -> str:
    """The GitHub token that reads alerts (cached for SECRET_CACHE_SECONDS)."""
    return _read_secret_string(secrets, secret_arn, "GitHub token").strip()


def forget_cached_secrets() -> None:
    """For tests, and after a rotation that must apply at once."""
    with _secret_cache_lock:
        _secret_cache.clear()
