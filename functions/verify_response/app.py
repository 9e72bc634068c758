"""Response task (offboarding, leak response, manual revocation): one item of the Verify Map. Count dead the
targets whose act read them back dead (the Revoke batch's read-back object), read back the rest, and list what
is still alive."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.engine.batch import proven_evidence, proven_for
from rescind.engine.verification import ProofSource, verify_actions
from rescind.models import Evidence
from rescind.observability import add_count, logger, observed_handler
from rescind.response.plan_store import S3ReadBackStore, VerifyBatchRequest
from rescind.runtime import get_discovery_scope, get_engine, get_s3_client, get_settings
from rescind.validation import parse_model

get_settings()


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch = parse_model(VerifyBatchRequest, event, what="verify batch")
    proven: dict[str, Evidence] = {}
    if batch.read_back_key is not None:
        store = S3ReadBackStore(get_s3_client(), get_settings().plan_bucket_name)
        proven = proven_evidence(proven_for(batch.actions, store.read(batch.read_back_key)))
    report = verify_actions(get_engine(), batch.actions, scope=get_discovery_scope(), proven=proven)
    from_act, read_again = report.count(ProofSource.ACT_READ_BACK), report.count(ProofSource.VERIFY_READ)
    logger.info(
        "response verified",
        extra={
            "incident_id": batch.incident_id,
            "verified": len(report.verified),
            "still_alive": len(report.still_alive),
            "proven_by_act_read_back": from_act,
            "read_again": read_again,
        },
    )
    add_count("CredentialsStillAlive", len(report.still_alive))
    return {
        "still_alive": [ref.model_dump(mode="json") for ref in report.still_alive],
        "verified_count": len(report.verified),
        "still_alive_count": len(report.still_alive),
        "proven_by_act_read_back_count": from_act,
        "read_again_count": read_again,
    }
