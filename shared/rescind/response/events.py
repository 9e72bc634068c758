"""What every trigger's parser shares: EventBridge's envelope, the checks before any parsing, and the cleaning of
free text taken from an event.

Each flow keeps its own refusal (TriggerRejected, LeakAlertRejected: their reasons are each flow's metrics) and
passes it in as `reject`; the reasons used here (`oversized`, `malformed`, `not_a_trigger`) are in both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.validation import describe_validation_error

# ASCII classes only: `\d` would also match other scripts' digits.
ACCOUNT_PATTERN = r"[0-9]{12}"
REGION_PATTERN = r"[a-z]{2}(?:-[a-z]+)+-[0-9]"
MAX_REASON = 500  # a notice's reason, an event's summary: what the ledger's Trigger keeps

_EVENT_ID = r"^[A-Za-z0-9_.:-]{1,200}$"

ModelT = TypeVar("ModelT", bound=BaseModel)
ParsedT = TypeVar("ParsedT")
SharedRejection = Literal["oversized", "malformed", "not_a_trigger"]
Reject = Callable[[SharedRejection, str], Exception]
"""reject(reason, problem): the flow's refusal; `problem` names the field and never echoes a value."""


class EventEnvelope(BaseModel):
    """EventBridge's envelope. Unknown fields are ignored: AWS adds fields to its events over time."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="ignore", frozen=True)

    version: Literal["0"]
    id: Annotated[str, Field(pattern=_EVENT_ID)]
    detail_type: Annotated[str, Field(alias="detail-type", min_length=1, max_length=128)]
    source: Annotated[str, Field(min_length=1, max_length=256)]
    account: Annotated[str, Field(pattern=rf"^{ACCOUNT_PATTERN}$")]
    time: AwareDatetime
    region: Annotated[str, Field(pattern=rf"^{REGION_PATTERN}$")]
    resources: list[Annotated[str, Field(max_length=2048)]]


class EventDetail(BaseModel):
    """An event's detail, or a part of it. Unknown fields are ignored, as in the envelope."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="ignore", frozen=True)


def event_json_size(event: Any) -> int:
    """Bytes of the event as compact JSON; ValueError when it is not a JSON document at all."""
    try:
        return len(json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
    except (TypeError, ValueError, RecursionError):
        raise ValueError("not a JSON document") from None


def parse_event(
    event: Any,
    parsers: Mapping[tuple[str, str], Callable[[dict[str, Any]], ParsedT]],
    *,
    max_bytes: int,
    trigger: str,
    reject: Reject,
) -> ParsedT:
    """One EventBridge event, as Lambda receives it, handed to the parser of its source and detail-type; refused
    first when it is too large, not a JSON object, or not one of `parsers` (`trigger` says whose)."""
    try:
        size = event_json_size(event)
    except ValueError:
        raise reject("malformed", "(root): not a JSON document") from None
    if size > max_bytes:
        raise reject("oversized", f"(root): larger than {max_bytes} bytes")
    if not isinstance(event, dict):
        raise reject("malformed", "(root): not a JSON object")
    source, detail_type = event.get("source"), event.get("detail-type")
    parser = parsers.get((source, detail_type)) if isinstance(source, str) and isinstance(detail_type, str) else None
    if parser is None:
        raise reject("not_a_trigger", f"source, detail-type: not a {trigger} trigger")
    return parser(event)


def validated(model: type[ModelT], document: Mapping[str, Any], reject: Reject) -> ModelT:
    """The model, or the flow's MALFORMED refusal naming the fields that are wrong (never their values)."""
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise reject("malformed", describe_validation_error(error)) from None


def clean_text(text: str, limit: int) -> str:
    """Free text from an event (a stop reason, a display name), made safe to log and record: what is not printable
    (control, invisible format characters) becomes a space, on one line, clipped."""
    cleaned = "".join(c if c.isprintable() else " " for c in text)  # Cc, Cf (bidi overrides, zero-width) among them
    return " ".join(cleaned.split())[:limit]


def clip_reason(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"
