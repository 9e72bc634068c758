"""EventBridge Scheduler target: compare a sample of the issuance index with a sample of the live Vault, publish the
drift as a metric (IssuanceIndexDrift, by direction), and mark the index stale above the threshold, so discovery
scans again until the next back-fill (`rescind index vault`).

Input: a SweepRequest (`{"dry_run": false}` from the schedule; a dry run compares and publishes, marks nothing).
Errors are raised, so the asynchronous invocation is retried and then lands in the failure queue.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.exceptions import ConfigurationError
from rescind.issuance.drift import check_index_drift, publish_drift
from rescind.issuance.reading import IssuanceTableReader
from rescind.issuance.runtime import get_index_state
from rescind.observability import observed_handler
from rescind.runtime import get_dynamodb_client, get_settings, get_vault_client
from rescind.schedules.base import RateLimiter
from rescind.schedules.runtime import current_time, get_schedule_policy
from rescind.schedules.types import SweepRequest
from rescind.validation import parse_model

get_settings()  # fail at cold start, not on the first run, when configuration is wrong
get_schedule_policy()


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_model(SweepRequest, event, what="sweep request")
    settings = get_settings()
    state = get_index_state()
    if state is None or not settings.issuance_table_name:
        raise ConfigurationError("invalid configuration: the index drift check needs ISSUANCE_TABLE_NAME")
    check = check_index_drift(
        get_vault_client(),
        IssuanceTableReader(settings.issuance_table_name, get_dynamodb_client()),
        state,
        settings.discovery_scope(default_account=None),  # Vault's mounts only: no AWS account is read
        sample_size=settings.issuance_drift_sample_size,
        threshold=settings.issuance_drift_threshold,
        now=current_time(),
        wait=RateLimiter(get_schedule_policy().vault_requests_per_second).wait,
        dry_run=request.dry_run,
    )
    publish_drift(check)
    return {**check.model_dump(mode="json"), "ratio": check.ratio}
