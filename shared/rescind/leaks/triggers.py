"""The leak triggers: an EventBridge event, in its real format, decided into a LeakEvent.

- `rescind` / `Secret Leaked`: the generic event (README): a value, its SHA-256, or a key id. Acts.
- `rescind.github` / `Secret Scanning Alert`, put on the bus by the webhook function: acts on the types in
  GITHUB_SECRET_TYPES; records an alert resolved as false_positive or used_in_tests, or validated inactive;
  any other type is unresolved.
- `aws.health` / `AWS Health Event`, AWS_RISK_* codes: acts on each access key id and each IAM user (ARN or name)
  of the affected account; other entities, or none at all, are unresolved.
- `aws.guardduty` / `GuardDuty Finding`: instance-credential exfiltration of a role's AccessKey acts; a sample
  finding is recorded.

A LeakEvent always leaves an incident: a response per located credential, and one record for what is
unresolved or only recorded. What is not a leak (another Health code, another finding or resource type) is
refused with NOT_A_LEAK, and a broken event with MALFORMED, both as LeakAlertRejected (an InvalidInput): the
message names the field and never echoes a value, because a value here may be the leaked secret itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, ValidationError

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.exceptions import InvalidInput
from rescind.leaks.types import (
    ACCESS_KEY_ID,
    AWS_EVENT_ONLY_TYPES,
    GITHUB_REPOSITORY_PATTERN,
    LeakAlert,
    LeakEvent,
    SecretType,
)
from rescind.response.events import (
    EventDetail,
    EventEnvelope,
    SharedRejection,
    clean_text,
    clip_reason,
    parse_event,
    validated,
)
from rescind.validation import IamName, describe_validation_error

# A leak alert is small (a PEM certificate is the largest thing in one); anything bigger is not one.
MAX_LEAK_EVENT_BYTES = 64 * 1024

GENERIC_SOURCE, GENERIC_DETAIL_TYPE = "rescind", "Secret Leaked"
GITHUB_SOURCE, GITHUB_DETAIL_TYPE = "rescind.github", "Secret Scanning Alert"
HEALTH_SOURCE, HEALTH_DETAIL_TYPE = "aws.health", "AWS Health Event"
GUARDDUTY_SOURCE, GUARDDUTY_DETAIL_TYPE = "aws.guardduty", "GuardDuty Finding"

# Every AWS Health risk code that means an access key is, or may be, in someone else's hands.
HEALTH_RISK_CODES = frozenset(
    {
        "AWS_RISK_CREDENTIALS_EXPOSED",
        "AWS_RISK_CREDENTIALS_EXPOSURE_SUSPECTED",
        "AWS_RISK_CREDENTIALS_COMPROMISED",
        "AWS_RISK_CREDENTIALS_COMPROMISE_SUSPECTED",
        "AWS_RISK_IAM_QUARANTINE",
    }
)
GUARDDUTY_EXFILTRATION_TYPES = frozenset(
    {
        "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
        "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.InsideAWS",
    }
)

# GitHub's secret types that Rescind can locate; the rest are recorded as unresolved.
GITHUB_SECRET_TYPES: dict[str, SecretType] = {
    "hashicorp_vault_service_token": SecretType.VAULT_TOKEN,
    "hashicorp_vault_batch_token": SecretType.VAULT_TOKEN,
    "hashicorp_vault_root_service_token": SecretType.VAULT_TOKEN,
    "openbao_service_token": SecretType.VAULT_TOKEN,
    "aws_access_key_id": SecretType.AWS_ACCESS_KEY,
    # The secret half: its key id is found beside it in the alert's file (GitHub alerts on the pair only).
    "aws_secret_access_key": SecretType.AWS_ACCESS_KEY,
    # A role session's key: its account is named, its role is not (recorded as unresolved, with what to do).
    "aws_temporary_access_key_id": SecretType.AWS_ACCESS_KEY,
}


class LeakRejectionReason(StrEnum):
    OVERSIZED = "oversized"
    NOT_A_TRIGGER = "not_a_trigger"  # another source or detail-type
    NOT_A_LEAK = "not_a_leak"  # a trigger's event that reports no leak (another Health code, another finding)
    UNKNOWN_TYPE = "unknown_type"  # a secret_type Rescind does not know
    MALFORMED = "malformed"


class LeakAlertRejected(InvalidInput):
    """A leak event was refused. `reason` is the kind of refusal, for metrics."""

    def __init__(self, reason: LeakRejectionReason, problem: str) -> None:
        super().__init__(f"leak event refused ({reason}): {problem}")
        self.reason = reason


def _rejected(reason: SharedRejection, problem: str) -> LeakAlertRejected:
    return LeakAlertRejected(LeakRejectionReason(reason), problem)


# --- the generic event ------------------------------------------------------------------------------------------


class SecretLeakedDetail(BaseModel):
    """The generic event's detail, documented in the README. Strict: unknown fields are refused."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    secret_type: str
    secret: Annotated[SecretStr, Field(min_length=1, max_length=16 * 1024)] | None = None
    secret_sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = None
    source_url: Annotated[str, Field(min_length=1, max_length=2000)]
    scanner: Annotated[str, Field(min_length=1, max_length=200)]
    found_at: AwareDatetime
    account_id: Annotated[str, Field(pattern=r"^[0-9]{12}$")] | None = None  # for aws_access_key, optional


class SecretLeakedEvent(EventEnvelope):
    detail: SecretLeakedDetail


# --- GitHub, as the webhook function puts it on the bus ---------------------------------------------------------


class GitHubAlertDetail(EventDetail):
    delivery_id: Annotated[str, Field(min_length=1, max_length=100)]
    action: Annotated[str, Field(pattern=r"^[a-z_]{1,40}$")]
    alert_number: Annotated[int, Field(ge=1)]
    secret_type: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,100}$")]
    secret_type_display_name: Annotated[str | None, Field(max_length=200)] = None
    repository: Annotated[str, Field(pattern=GITHUB_REPOSITORY_PATTERN, max_length=201)]
    html_url: Annotated[str | None, Field(max_length=2000)] = None
    created_at: AwareDatetime
    # The alert's own state, as the delivery carried it (older notices on the bus have none of these).
    state: Annotated[str | None, Field(pattern=r"^[a-z_]{1,40}$")] = None
    resolution: Annotated[str | None, Field(pattern=r"^[a-z_]{1,40}$")] = None
    validity: Annotated[str | None, Field(pattern=r"^[a-z_]{1,40}$")] = None
    publicly_leaked: bool | None = None


class GitHubAlertEvent(EventEnvelope):
    detail: GitHubAlertDetail


# --- AWS Health ---------------------------------------------------------------------------------------------------


class HealthAffectedEntity(EventDetail):
    entity_value: Annotated[str, Field(alias="entityValue", min_length=1, max_length=1224)]


class HealthDetail(EventDetail):
    event_arn: Annotated[str, Field(alias="eventArn", max_length=1600)]
    service: Annotated[str, Field(max_length=100)]
    event_type_code: Annotated[str, Field(alias="eventTypeCode", pattern=r"^[A-Z0-9_]{1,100}$")]
    affected_account: Annotated[str | None, Field(alias="affectedAccount", pattern=r"^[0-9]{12}$")] = None
    affected_entities: Annotated[
        list[HealthAffectedEntity], Field(alias="affectedEntities", max_length=1000, default_factory=list)
    ]
    event_metadata: Annotated[dict[str, Any] | None, Field(alias="eventMetadata")] = None
    # AWS splits an event with many entities over several events; each page is answered on its own.
    page: Annotated[int | None, Field(ge=1)] = None
    total_pages: Annotated[int | None, Field(alias="totalPages", ge=1)] = None


class HealthEvent(EventEnvelope):
    detail: HealthDetail


# --- GuardDuty ----------------------------------------------------------------------------------------------------


class GuardDutyAccessKeyDetails(EventDetail):
    access_key_id: Annotated[str | None, Field(alias="accessKeyId", max_length=128)] = None
    principal_id: Annotated[str | None, Field(alias="principalId", max_length=256)] = None
    user_name: Annotated[IamName, Field(alias="userName")]
    user_type: Annotated[str, Field(alias="userType", max_length=64)]


class GuardDutyResource(EventDetail):
    resource_type: Annotated[str, Field(alias="resourceType", max_length=64)]
    access_key_details: Annotated[dict[str, Any] | None, Field(alias="accessKeyDetails")] = None


class GuardDutyService(EventDetail):
    additional_info: Annotated[dict[str, Any] | None, Field(alias="additionalInfo")] = None

    @property
    def is_sample(self) -> bool:
        # The console's "Generate sample findings" marks each finding; the value has been seen as true and "true".
        sample = (self.additional_info or {}).get("sample")
        return sample is True or (isinstance(sample, str) and sample.lower() == "true")


class GuardDutyDetail(EventDetail):
    finding_id: Annotated[str, Field(alias="id", pattern=r"^[A-Za-z0-9]{1,300}$")]
    account_id: Annotated[str, Field(alias="accountId", pattern=r"^[0-9]{12}$")]
    finding_type: Annotated[str, Field(alias="type", max_length=200)]
    resource: GuardDutyResource
    service: GuardDutyService | None = None
    created_at: Annotated[AwareDatetime, Field(alias="createdAt")]


class GuardDutyEvent(EventEnvelope):
    detail: GuardDutyDetail


# --- parsing ------------------------------------------------------------------------------------------------------


def parse_leak_event(event: Any) -> LeakEvent:
    """One EventBridge event → a LeakEvent (what to answer, what is unresolved, or why it is only recorded), or
    LeakAlertRejected."""
    return parse_event(event, _PARSERS, max_bytes=MAX_LEAK_EVENT_BYTES, trigger="leak", reject=_rejected)


def _alert(**fields: Any) -> LeakAlert:
    return validated(LeakAlert, fields, _rejected)


def _event(envelope: EventEnvelope, summary: str, **fields: Any) -> LeakEvent:
    return LeakEvent(
        source=envelope.source,
        detail_type=envelope.detail_type,
        event_id=envelope.id,
        summary=clip_reason(summary),
        **fields,
    )


def parse_secret_leaked(event: dict[str, Any]) -> LeakEvent:
    # The type is checked first, so an unknown type is named as such rather than as a malformed event.
    detail = event.get("detail")
    secret_type = detail.get("secret_type") if isinstance(detail, dict) else None
    generic_types = [t for t in SecretType if t not in AWS_EVENT_ONLY_TYPES]
    if isinstance(secret_type, str) and secret_type not in {t.value for t in generic_types}:
        allowed = ", ".join(t.value for t in generic_types)
        raise LeakAlertRejected(LeakRejectionReason.UNKNOWN_TYPE, f"detail.secret_type: not one of {allowed}")
    parsed = validated(SecretLeakedEvent, event, _rejected)
    kind = SecretType(parsed.detail.secret_type)
    if parsed.detail.secret is None and parsed.detail.secret_sha256 is None:
        raise LeakAlertRejected(LeakRejectionReason.MALFORMED, "detail: needs secret or secret_sha256")
    secret, access_key_id = parsed.detail.secret, None
    if kind is SecretType.AWS_ACCESS_KEY:
        # An access key id is what a scanner reports for AWS; it is not the secret half.
        key_id = secret.get_secret_value().strip() if secret is not None else ""
        if not _matches(ACCESS_KEY_ID, key_id):
            raise LeakAlertRejected(LeakRejectionReason.MALFORMED, "detail.secret: not an AWS access key id")
        secret, access_key_id = None, key_id
    alert = _alert(
        source=parsed.source,
        detail_type=parsed.detail_type,
        event_id=parsed.id,
        secret_type=kind,
        secret=secret,
        secret_sha256=parsed.detail.secret_sha256.lower() if parsed.detail.secret_sha256 else None,
        access_key_id=access_key_id,
        account_id=parsed.detail.account_id,
        source_url=parsed.detail.source_url,
        scanner=parsed.detail.scanner,
        found_at=parsed.detail.found_at,
    )
    return _event(parsed, alert.describe, alerts=(alert,))


# A human closed the alert as not a real secret: answering it would revoke something on a false alarm.
GITHUB_NOT_A_SECRET_RESOLUTIONS = frozenset({"false_positive", "used_in_tests"})


def parse_github_alert(event: dict[str, Any]) -> LeakEvent:
    parsed = validated(GitHubAlertEvent, event, _rejected)
    detail = parsed.detail
    name = detail.secret_type_display_name or detail.secret_type
    alert_name = f"{detail.repository}#{detail.alert_number} ({detail.action})"
    summary = f"GitHub secret scanning alert {alert_name}: {clean_text(name, 100)}"
    if detail.state == "resolved" and detail.resolution in GITHUB_NOT_A_SECRET_RESOLUTIONS:
        return _event(parsed, summary, record_only=f"the alert was resolved as {detail.resolution} on GitHub")
    if detail.action == "validated" and detail.validity == "inactive":
        return _event(parsed, summary, record_only="GitHub validated the secret as inactive")
    kind = GITHUB_SECRET_TYPES.get(detail.secret_type)
    if kind is None:
        why = (
            f"GitHub secret type {detail.secret_type} is not a kind Rescind acts on: "
            "revoke it with its issuer, then resolve the alert on GitHub"
        )
        return _event(parsed, summary, unresolved=(why,))
    alert = _alert(
        source=parsed.source,
        detail_type=parsed.detail_type,
        event_id=parsed.id,
        secret_type=kind,
        github_repository=detail.repository,
        github_alert_number=detail.alert_number,
        source_url=detail.html_url,
        scanner="github",
        found_at=detail.created_at,
    )
    return _event(parsed, summary, alerts=(alert,))


# arn:aws:iam::123456789012:user/path/name: a user AWS Health names instead of (or beside) a key.
_USER_ARN = re.compile(r"arn:aws[a-z-]*:iam::(?P<account>[0-9]{12}):user/(?:[\w+=,.@/-]*/)?(?P<name>[\w+=,.@-]{1,64})")
_USER_NAME = re.compile(r"[\w+=,.@-]{1,64}")
_PRINTABLE_ID = re.compile(r"[\w:/+=,.@-]{1,200}")
_EXPOSED_URL = re.compile(r"https://[\x21-\x7e]{1,500}")


def parse_health_event(event: dict[str, Any]) -> LeakEvent:
    parsed = validated(HealthEvent, event, _rejected)
    detail = parsed.detail
    if detail.event_type_code not in HEALTH_RISK_CODES:
        raise LeakAlertRejected(LeakRejectionReason.NOT_A_LEAK, "detail.eventTypeCode: not a credential risk code")
    metadata = _health_metadata(detail.event_metadata)
    account = detail.affected_account or metadata.get("accountId") or parsed.account
    page = f" (page {detail.page} of {detail.total_pages})" if detail.page and detail.total_pages else ""
    exposed = f", exposed at {metadata['exposedUrl']}" if "exposedUrl" in metadata else ""
    summary = f"AWS Health {detail.event_type_code} for account {account}{page}{exposed}: {detail.event_arn}"
    common = {
        "source": parsed.source,
        "detail_type": parsed.detail_type,
        "event_id": parsed.id,
        "account_id": account,
        "source_url": detail.event_arn,
        "scanner": f"aws.health {detail.event_type_code}",
        "found_at": parsed.time,
    }
    alerts: list[LeakAlert] = []
    unresolved: list[str] = []
    # Every entity once, in order. The envelope's resources and the risk metadata's publicKey name the same
    # key, or one more.
    named = [entity.entity_value.strip() for entity in detail.affected_entities]
    named += [resource.strip() for resource in parsed.resources]
    named += [metadata["publicKey"]] if "publicKey" in metadata else []
    for position, value in enumerate(dict.fromkeys(v for v in named if v), start=1):
        user = _USER_ARN.fullmatch(value)
        if _matches(ACCESS_KEY_ID, value):
            alerts.append(_alert(secret_type=SecretType.AWS_ACCESS_KEY, access_key_id=value, **common))
        elif user is not None and user["account"] == account:
            alerts.append(_alert(secret_type=SecretType.AWS_IAM_USER, user_name=user["name"], **common))
        elif user is not None:
            unresolved.append(f"IAM user {value} is not in the affected account {account}")
        elif _matches(_USER_NAME, value):
            # A bare name is taken for an IAM user of the affected account; the locator confirms that it exists.
            alerts.append(_alert(secret_type=SecretType.AWS_IAM_USER, user_name=value, **common))
        else:
            shown = value if _matches(_PRINTABLE_ID, value) else f"#{position}"
            unresolved.append(f"affected entity {shown} is neither an access key id nor an IAM user")
    if not alerts and not unresolved:
        unresolved.append("the event names no affected entity: find the exposed key from the Health console")
    return _event(parsed, summary, alerts=tuple(alerts), unresolved=tuple(unresolved))


def _health_metadata(metadata: dict[str, Any] | None) -> dict[str, str]:
    """The risk events' eventMetadata fields Rescind reads, where they have the expected shape; others dropped."""
    shapes = {"publicKey": ACCESS_KEY_ID, "accountId": re.compile(r"[0-9]{12}"), "exposedUrl": _EXPOSED_URL}
    found = {}
    for name, shape in shapes.items():
        value = (metadata or {}).get(name)
        if isinstance(value, str) and shape.fullmatch(value.strip()):
            found[name] = value.strip()
    return found


def parse_guardduty_finding(event: dict[str, Any]) -> LeakEvent:
    parsed = validated(GuardDutyEvent, event, _rejected)
    detail = parsed.detail
    if detail.finding_type not in GUARDDUTY_EXFILTRATION_TYPES:
        raise LeakAlertRejected(LeakRejectionReason.NOT_A_LEAK, "detail.type: not a credential exfiltration finding")
    summary = f"GuardDuty {detail.finding_type} in account {detail.account_id} (finding {detail.finding_id})"
    if detail.service is not None and detail.service.is_sample:
        return _event(parsed, summary, record_only="a sample finding (GuardDuty's Generate sample findings)")
    if detail.resource.resource_type != "AccessKey" or detail.resource.access_key_details is None:
        raise LeakAlertRejected(LeakRejectionReason.NOT_A_LEAK, "detail.resource.resourceType: not an access key")
    try:
        key_details = GuardDutyAccessKeyDetails.model_validate(detail.resource.access_key_details)
    except ValidationError as error:
        problem = describe_validation_error(error)
        raise LeakAlertRejected(LeakRejectionReason.MALFORMED, f"detail.resource.accessKeyDetails: {problem}") from None
    if key_details.user_type != "AssumedRole":
        raise LeakAlertRejected(LeakRejectionReason.MALFORMED, "detail.resource.accessKeyDetails.userType: not a role")
    alert = _alert(
        source=parsed.source,
        detail_type=parsed.detail_type,
        event_id=parsed.id,
        secret_type=SecretType.AWS_ROLE_SESSIONS,
        account_id=detail.account_id,
        role_name=key_details.user_name,
        scanner=f"aws.guardduty {detail.finding_type}",
        source_url=f"guardduty finding {detail.finding_id}",
        # Sessions issued before the finding are denied; the instance's next credentials are not.
        found_at=detail.created_at,
    )
    return _event(parsed, summary, alerts=(alert,))


def _matches(pattern: re.Pattern[str], value: str) -> bool:
    return pattern.fullmatch(value) is not None


_PARSERS: dict[tuple[str, str], Callable[[dict[str, Any]], LeakEvent]] = {
    (GENERIC_SOURCE, GENERIC_DETAIL_TYPE): parse_secret_leaked,
    (GITHUB_SOURCE, GITHUB_DETAIL_TYPE): parse_github_alert,
    (HEALTH_SOURCE, HEALTH_DETAIL_TYPE): parse_health_event,
    (GUARDDUTY_SOURCE, GUARDDUTY_DETAIL_TYPE): parse_guardduty_finding,
}

__all__ = ["LeakAlertRejected", "LeakRejectionReason", "parse_leak_event"]
