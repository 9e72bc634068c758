"""Cached factories for the functions that start or answer runs: the Step Functions client and the notifier.

Settings, the ledger, the inventory and the SNS client come from `rescind.runtime`. Only handlers call these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rescind.aws.errors import aws_errors
from rescind.runtime import get_aws_client, get_settings, get_sns_client

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

    from rescind.response.start import Notify

SNS_SUBJECT_LIMIT = 100
SNS_MESSAGE_LIMIT = 256 * 1024


def get_sfn_client() -> SFNClient:
    """Step Functions: starting, reading and answering runs."""
    return cast("SFNClient", get_aws_client("stepfunctions"))


def get_offboarding_state_machine_arn() -> str:
    return get_settings().required("offboarding_state_machine_arn")


def sns_subject(subject: str) -> str:
    """SNS subjects are printable ASCII on one line, at most 100 characters."""
    cleaned = "".join(c if c.isascii() and c.isprintable() else " " for c in subject)
    return " ".join(cleaned.split())[:SNS_SUBJECT_LIMIT] or "Rescind"


def get_notifier() -> Notify:
    """Publishes to the notification topic; does nothing when none is configured (the ledger still records)."""
    topic_arn = get_settings().notification_topic_arn
    if not topic_arn:
        return _no_topic
    client = get_sns_client()

    def publish(subject: str, message: str) -> None:
        with aws_errors("sns:Publish"):
            client.publish(
                TopicArn=topic_arn,
                Subject=sns_subject(subject),
                Message=message.encode()[:SNS_MESSAGE_LIMIT].decode(errors="ignore"),
            )

    return publish


def _no_topic(subject: str, message: str) -> None:
    return None
