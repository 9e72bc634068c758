"""The leak triggers: an EventBridge event, in its real format, parsed into LeakAlerts.

| source         | detail-type           | what it names                                              |
|----------------|-----------------------|------------------------------------------------------------|
| rescind        | Secret Leaked         | the generic event (README): a value, its SHA-256, or a key id |
| rescind.github | Secret Scanning Alert | a GitHub alert, put on the bus by the webhook function     |
| aws.health     | AWS Health Event      | AWS_RISK_* codes: every access key in affectedEntities     |
| aws.guardduty  | GuardDuty Finding     | instance-credential exfiltration: the role's sessions      |

Anything else is refused with LeakAlertRejected (an InvalidInput): the message names the field and never
echoes a value, because a value here may be the leaked secret itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, ValidationError

from rescind.exceptions import InvalidInput
from rescind.leaks.types import LeakAlert, SecretType
from rescind.offboarding.triggers import EventEnvelope, event_json_size
from rescind.validation import describe_validation_error

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
    "aws_temporary_access_key_id": SecretType.AWS_ACCESS_KEY,
}

_ACCESS_KEY_ID = re.compile(r"(AKIA|ASIA)[A-Z0-9]{12,124}")
ModelT = TypeVar("ModelT", bound=BaseModel)


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


class _Detail(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# --- the generic event ------------------------------------------------------------------------------------------


class SecretLeakedDetail(BaseModel):
    """The generic event's detail, documented in the README. Strict: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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


class GitHubAlertDetail(_Detail):
    delivery_id: Annotated[str, Field(min_length=1, max_length=100)]
    action: Annotated[str, Field(pattern=r"^[a-z_]{1,40}$")]
    alert_number: Annotated[int, Field(ge=1)]
    secret_type: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,100}$")]
    repository: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")]
    html_url: Annotated[str | None, Field(max_length=2000)] = None
    created_at: AwareDatetime


class GitHubAlertEvent(EventEnvelope):
    detail: GitHubAlertDetail


# --- AWS Health ---------------------------------------------------------------------------------------------------


class HealthAffectedEntity(_Detail):
    entity_value: Annotated[str, Field(alias="entityValue", min_length=1, max_length=1224)]


class HealthDetail(_Detail):
    event_arn: Annotated[str, Field(alias="eventArn", max_length=1600)]
    service: Annotated[str, Field(max_length=100)]
    event_type_code: Annotated[str, Field(alias="eventTypeCode", pattern=r"^[A-Z0-9_]{1,100}$")]
    affected_account: Annotated[str | None, Field(alias="affectedAccount", pattern=r"^[0-9]{12}$")] = None
    affected_entities: Annotated[list[HealthAffectedEntity], Field(alias="affectedEntities", max_length=1000)] = []


class HealthEvent(EventEnvelope):
    detail: HealthDetail


# --- GuardDuty ----------------------------------------------------------------------------------------------------


class GuardDutyAccessKeyDetails(_Detail):
    access_key_id: Annotated[str | None, Field(alias="accessKeyId", max_length=128)] = None
    principal_id: Annotated[str | None, Field(alias="principalId", max_length=256)] = None
    user_name: Annotated[str, Field(alias="userName", pattern=r"^[\w+=,.@\-]{1,64}$")]
    user_type: Annotated[str, Field(alias="userType", max_length=64)]


class GuardDutyResource(_Detail):
    resource_type: Annotated[str, Field(alias="resourceType", max_length=64)]
    access_key_details: Annotated[GuardDutyAccessKeyDetails, Field(alias="accessKeyDetails")]


class GuardDutyDetail(_Detail):
    finding_id: Annotated[str, Field(alias="id", pattern=r"^[A-Za-z0-9]{1,300}$")]
    account_id: Annotated[str, Field(alias="accountId", pattern=r"^[0-9]{12}$")]
    finding_type: Annotated[str, Field(alias="type", max_length=200)]
    resource: GuardDutyResource
    created_at: Annotated[AwareDatetime, Field(alias="createdAt")]


class GuardDutyEvent(EventEnvelope):
    detail: GuardDutyDetail


# --- parsing ------------------------------------------------------------------------------------------------------


def parse_leak_event(event: Any) -> list[LeakAlert]:
    """One EventBridge event → the leaked credentials it reports (Health may name several), or LeakAlertRejected."""
    _refuse_oversized(event)
    if not isinstance(event, dict):
        raise LeakAlertRejected(LeakRejectionReason.MALFORMED, "(root): not a JSON object")
    source, detail_type = event.get("source"), event.get("detail-type")
    parser = _PARSERS.get((source, detail_type)) if isinstance(source, str) and isinstance(detail_type, str) else None
    if parser is None:
        raise LeakAlertRejected(LeakRejectionReason.NOT_A_TRIGGER, "source, detail-type: not a leak trigger")
    return parser(event)


def _refuse_oversized(event: Any) -> None:
    try:
        size = event_json_size(event)
    except ValueError:
        raise LeakAlertRejected(LeakRejectionReason.MALFORMED, "(root): not a JSON document") from None
    if size > MAX_LEAK_EVENT_BYTES:
        raise LeakAlertRejected(LeakRejectionReason.OVERSIZED, f"(root): larger than {MAX_LEAK_EVENT_BYTES} bytes")


def _validate(model: type[ModelT], event: dict[str, Any]) -> ModelT:
    try:
        return model.model_validate(event)
    except ValidationError as error:
        raise LeakAlertRejected(LeakRejectionReason.MALFORMED, describe_validation_error(error)) from None


def _alert(**fields: Any) -> LeakAlert:
    try:
        return LeakAlert(**fields)
    except ValidationError as error:
        raise LeakAlertRejected(LeakRejectionReason.MALFORMED, describe_validation_error(error)) from None


def parse_secret_leaked(event: dict[str, Any]) -> list[LeakAlert]:
    # The type is checked first, so an unknown type is named as such rather than as a malformed event.
    detail = event.get("detail")
    secret_type = detail.get("secret_type") if isinstance(detail, dict) else None
    if isinstance(secret_type, str) and secret_type not in {t.value for t in SecretType} - {"aws_role_sessions"}:
        allowed = ", ".join(t.value for t in SecretType if t is not SecretType.AWS_ROLE_SESSIONS)
        raise LeakAlertRejected(LeakRejectionReason.UNKNOWN_TYPE, f"detail.secret_type: not one of {allowed}")
    parsed = _validate(SecretLeakedEvent, event)
    kind = SecretType(parsed.detail.secret_type)
    if parsed.detail.secret is None and parsed.detail.secret_sha256 is None:
        raise LeakAlertRejected(LeakRejectionReason.MALFORMED, "detail: needs secret or secret_sha256")
    secret, access_key_id = parsed.detail.secret, None
    if kind is SecretType.AWS_ACCESS_KEY:
        # An access key id is what a scanner reports for AWS; it is not the secret half.
        key_id = secret.get_secret_value().strip() if secret is not None else ""
        if not _matches(_ACCESS_KEY_ID, key_id):
            raise LeakAlertRejected(LeakRejectionReason.MALFORMED, "detail.secret: not an AWS access key id")
        secret, access_key_id = None, key_id
    return [
        _alert(
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
    ]


def parse_github_alert(event: dict[str, Any]) -> list[LeakAlert]:
    parsed = _validate(GitHubAlertEvent, event)
    kind = GITHUB_SECRET_TYPES.get(parsed.detail.secret_type)
    if kind is None:
        raise LeakAlertRejected(
            LeakRejectionReason.UNKNOWN_TYPE, "detail.secret_type: a GitHub secret type Rescind cannot locate"
        )
    return [
        _alert(
            source=parsed.source,
            detail_type=parsed.detail_type,
            event_id=parsed.id,
            secret_type=kind,
            github_repository=parsed.detail.repository,
            github_alert_number=parsed.detail.alert_number,
            source_url=parsed.detail.html_url,
            scanner="github",
            found_at=parsed.detail.created_at,
        )
    ]


def parse_health_event(event: dict[str, Any]) -> list[LeakAlert]:
    parsed = _validate(HealthEvent, event)
    if parsed.detail.event_type_code not in HEALTH_RISK_CODES:
        raise LeakAlertRejected(LeakRejectionReason.NOT_A_LEAK, "detail.eventTypeCode: not a credential risk code")
    key_ids = [entity.entity_value for entity in parsed.detail.affected_entities]
    if not key_ids or not all(_matches(_ACCESS_KEY_ID, key_id) for key_id in key_ids):
        raise LeakAlertRejected(
            LeakRejectionReason.MALFORMED, "detail.affectedEntities: needs one or more access key ids"
        )
    account = parsed.detail.affected_account or parsed.account
    return [
        _alert(
            source=parsed.source,
            detail_type=parsed.detail_type,
            event_id=parsed.id,
            secret_type=SecretType.AWS_ACCESS_KEY,
            access_key_id=key_id,
            account_id=account,
            source_url=parsed.detail.event_arn,
            scanner=f"aws.health {parsed.detail.event_type_code}",
            found_at=parsed.time,
        )
        for key_id in dict.fromkeys(key_ids)  # every entity, once each, in order
    ]


def parse_guardduty_finding(event: dict[str, Any]) -> list[LeakAlert]:
    parsed = _validate(GuardDutyEvent, event)
    if parsed.detail.finding_type not in GUARDDUTY_EXFILTRATION_TYPES:
        raise LeakAlertRejected(LeakRejectionReason.NOT_A_LEAK, "detail.type: not a credential exfiltration finding")
    details = parsed.detail.resource.access_key_details
    if details.user_type != "AssumedRole":
        raise LeakAlertRejected(LeakRejectionReason.MALFORMED, "detail.resource.accessKeyDetails.userType: not a role")
    return [
        _alert(
            source=parsed.source,
            detail_type=parsed.detail_type,
            event_id=parsed.id,
            secret_type=SecretType.AWS_ROLE_SESSIONS,
            account_id=parsed.detail.account_id,
            role_name=details.user_name,
            scanner=f"aws.guardduty {parsed.detail.finding_type}",
            source_url=f"guardduty finding {parsed.detail.finding_id}",
            # Sessions issued before the finding are denied; the instance's next credentials are not.
            found_at=parsed.detail.created_at,
        )
    ]


def _matches(pattern: re.Pattern[str], value: str) -> bool:
    return pattern.fullmatch(value) is not None


_PARSERS: dict[tuple[str, str], Callable[[dict[str, Any]], list[LeakAlert]]] = {
    (GENERIC_SOURCE, GENERIC_DETAIL_TYPE): parse_secret_leaked,
    (GITHUB_SOURCE, GITHUB_DETAIL_TYPE): parse_github_alert,
    (HEALTH_SOURCE, HEALTH_DETAIL_TYPE): parse_health_event,
    (GUARDDUTY_SOURCE, GUARDDUTY_DETAIL_TYPE): parse_guardduty_finding,
}

__all__ = ["LeakAlertRejected", "LeakRejectionReason", "parse_leak_event"]
