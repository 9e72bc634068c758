"""Building the engine with one handler per credential kind, all sharing the injected clients."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rescind.engine.executor import ActionEngine

if TYPE_CHECKING:
    import hvac

    from rescind.aws.session import AwsClientFactory
    from rescind.vault.kv import SecretValueHook


def build_engine(
    vault: hvac.Client,
    *,
    aws_factory: AwsClientFactory | None = None,
    cross_account_role_name: str = "RescindExecutionRole",
    cross_account_external_id: str | None = None,
    kv_on_new_value: SecretValueHook | None = None,
) -> ActionEngine:
    """Every credential kind of the closed set gets its handler; AWS ones reach other accounts by role.

    `kv_on_new_value` sees each KV version a rotation writes (the fingerprint index keeps itself current).
    """
    from rescind.aws.acm_pca import AcmPcaCertificateHandler
    from rescind.aws.iam_keys import IamAccessKeyHandler
    from rescind.aws.role_sessions import IamRoleSessionsHandler
    from rescind.aws.secrets_manager import SecretsManagerSecretHandler
    from rescind.aws.session import AwsClientFactory
    from rescind.vault.approle import AppRoleSecretIdHandler
    from rescind.vault.identity import VaultEntityHandler
    from rescind.vault.kv import KvSecretHandler
    from rescind.vault.leases import VaultLeaseHandler
    from rescind.vault.pki import PkiCertificateHandler
    from rescind.vault.tokens import VaultTokenHandler
    from rescind.vault.ttl import VaultTtlTargetHandler

    aws = aws_factory or AwsClientFactory(role_name=cross_account_role_name, external_id=cross_account_external_id)
    return ActionEngine(
        [
            VaultTokenHandler(vault),
            AppRoleSecretIdHandler(vault),
            VaultLeaseHandler(vault),
            PkiCertificateHandler(vault),
            KvSecretHandler(vault, on_new_value=kv_on_new_value),
            VaultEntityHandler(vault),
            VaultTtlTargetHandler(vault),
            IamAccessKeyHandler(aws),
            IamRoleSessionsHandler(aws),
            SecretsManagerSecretHandler(aws),
            AcmPcaCertificateHandler(aws),
        ]
    )
