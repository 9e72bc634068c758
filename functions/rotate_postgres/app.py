"""Rotation hook for PostgreSQL roles (the rotation contract's setSecret and testSecret).

Named on a secret by `rescind_rotation_hook=<this function's ARN>` (KV custom_metadata) or the tag
`rescind:rotation-hook` (Secrets Manager), and invoked by Rescind, synchronously, with Secrets Manager's rotation
event. The logic is in rescind.rotation.postgres; its driver, pg8000, is in PostgresDriverLayer (template.yaml), built
from shared/requirements.lock like the other layers. No value is logged.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.observability import observed_handler
from rescind.rotation.postgres import PostgresConnection, handle_rotation_event
from rescind.runtime import get_secretsmanager_client, get_settings, get_vault_client

get_settings()  # fail at cold start, not on the first rotation, when configuration is wrong


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    settings = get_settings()
    return handle_rotation_event(
        event,
        vault=get_vault_client,
        secretsmanager=get_secretsmanager_client,
        postgres=PostgresConnection(
            tls=settings.rotation_hook_postgres_tls, timeout_seconds=settings.rotation_hook_connect_timeout_seconds
        ),
    )
