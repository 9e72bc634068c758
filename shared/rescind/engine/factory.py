"""Building the engine with one handler per credential kind, all sharing the injected clients."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from rescind.engine.executor import ActionEngine
from rescind.models import CredentialKind

if TYPE_CHECKING:
    import hvac

    from rescind.aws.session import AwsClientFactory
    from rescind.engine.base import CredentialHandler
    from rescind.kinds import Backends
    from rescind.rotation.contract import RotationHookInvoker
    from rescind.vault.kv_rotation_state import SecretValueHook


def build_engine(
    vault: hvac.Client,
    *,
    aws_factory: AwsClientFactory | None = None,
    cross_account_role_name: str = "RescindExecutionRole",
    cross_account_external_id: str | None = None,
    kv_on_new_value: SecretValueHook | None = None,
    hook_invoker: RotationHookInvoker | None = None,
) -> ActionEngine:
    """Every credential kind of the closed set gets its handler, built on its first use; AWS ones reach other
    accounts by role.

    `kv_on_new_value` sees each KV version a rotation makes current (the fingerprint index keeps itself current).
    `hook_invoker` runs the secrets' rotation hooks; by default they are Lambda functions invoked through AWS.
    """
    from rescind.aws.session import AwsClientFactory
    from rescind.kinds import Backends

    aws = aws_factory or AwsClientFactory(role_name=cross_account_role_name, external_id=cross_account_external_id)
    backends = Backends(vault, aws, kv_on_new_value=kv_on_new_value, hook_invoker=hook_invoker)
    # Each kind's handler is built, and its module imported, when an action first names the kind.
    return ActionEngine((), builders={kind: partial(_kind_handler, kind, backends) for kind in CredentialKind})


def _kind_handler(kind: CredentialKind, backends: Backends) -> CredentialHandler:
    from rescind.kinds import kind_spec

    return kind_spec(kind).build_handler(backends)
