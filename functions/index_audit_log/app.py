"""Vault's audit log (CloudWatch Logs subscription) → the issuance index.

Input: a CloudWatch Logs subscription event (`awslogs.data`: base64 gzip JSON whose `logEvents[].message` is one
audit line). Each line's issuances and revocations are written to IssuanceTable. Lines refused (a device with
log_raw=true) are counted and their reasons logged, never their content. Errors raise, so Lambda retries the
batch (writes are idempotent) and then sends it to the on-failure queue.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser.models import CloudWatchLogsModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.exceptions import InvalidInput
from rescind.issuance import index_audit_lines
from rescind.issuance.runtime import get_issuance_index
from rescind.observability import add_count, logger, observed_handler
from rescind.runtime import get_settings
from rescind.validation import parse_model

get_settings()  # fail at cold start when configuration is wrong


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logs = parse_model(CloudWatchLogsModel, event, what="CloudWatch Logs subscription event").awslogs.decoded_data
    index = get_issuance_index()
    if index is None:
        raise InvalidInput("invalid configuration: the audit log indexer needs ISSUANCE_TABLE_NAME")
    messages = [log_event.message for log_event in logs.logEvents] if logs.messageType == "DATA_MESSAGE" else []
    report = index_audit_lines(index, messages, metadata_key=get_settings().workload_metadata_key)
    add_count("IssuancesIndexed", report.issuances)
    add_count("AuditLinesRefused", report.refused)
    if report.refused:
        logger.warning("audit lines refused", extra={"refused": report.refused, "reasons": list(report.refusals)})
    return report.model_dump(mode="json")
