"""Rotation hook for PostgreSQL roles (the rotation contract's setSecret and testSecret).

Named on a secret by `rescind_rotation_hook=<this function's ARN>` (KV custom_metadata or Secrets Manager tag)
and invoked by Rescind with Secrets Manager's rotation event. The logic is in rescind.rotation.postgres; its
driver, pg8000, is packaged with this function (requirements.txt), not in the layer. No value is logged.
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.observability import observed_handler
from rescind.rotation.postgres import handle_rotation_event
from rescind.runtime import get_settings, get_vault_client

get_settings()  # fail at cold start, not on the first rotation, when configuration is wrong


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    return handle_rotation_event(
        event,
        vault=get_vault_client,
        secretsmanager=lambda region: boto3.client("secretsmanager", region_name=region),
    )
