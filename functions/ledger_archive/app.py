"""Ledger stream → object-locked archive: the tamper-evident copy of the append-only ledger.

Invoked by the event source mapping on LedgerTable's stream (NEW_IMAGE). Each INSERT is written once to the archive
bucket; a MODIFY or REMOVE (which Rescind never writes) is archived too, counted (LedgerTampering) and notified.
Any failure raises: the mapping retries the batch (the puts are conditional, so nothing is written twice) and
then sends its description to LedgerArchiveFailureQueue.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.aws.errors import aws_errors
from rescind.ledger.archive import archive_stream_records, describe_tampering, parse_stream_records
from rescind.observability import add_count, logger, observed_handler
from rescind.runtime import get_s3_client, get_settings, get_sns_client

get_settings().require("ledger_archive_bucket")  # fail at cold start when configuration is wrong


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    bucket = get_settings().required("ledger_archive_bucket")
    records = parse_stream_records(event)
    result = archive_stream_records(records, s3=get_s3_client(), bucket=bucket)
    add_count("LedgerRecordsArchived", result.archived)
    if result.tampering:
        add_count("LedgerTampering", len(result.tampering))
        logger.warning(
            "ledger record modified or removed",
            extra={"changes": [item.model_dump(mode="json") for item in result.tampering[:50]]},
        )
        subject, message = describe_tampering(result.tampering, bucket)
        with aws_errors("sns:Publish"):
            get_sns_client().publish(TopicArn=get_settings().notification_topic_arn, Subject=subject, Message=message)
    logger.info(
        "ledger changes archived",
        extra={"archived": result.archived, "already_archived": result.already_archived},
    )
    return result.model_dump(mode="json")
