"""Typed models. None of them can hold a secret value: they carry references.

The names are imported from their module on first use: each module builds its pydantic models when imported,
and a cold start that needs only the credential references (the settings' validation, a webhook) should not
build the actions' and the results' too.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rescind.models.actions import (
        ACTION_ORDER,
        ROTATED_SINCE_KINDS,
        SUPPORTED_ACTIONS,
        Action,
        ActionKind,
        ActionParams,
        Plan,
        PreviousVersions,
    )
    from rescind.models.credentials import (
        AcmPcaCertificateRef,
        AppRoleSecretIdRef,
        CredentialKind,
        CredentialRef,
        DatabaseRootRef,
        DatabaseStaticRoleRef,
        IamAccessKeyRef,
        IamRoleSessionsRef,
        KvSecretRef,
        PkiCertificateRef,
        SecretsManagerSecretRef,
        TtlTargetType,
        VaultEntityRef,
        VaultLeaseRef,
        VaultTokenRef,
        VaultTtlTargetRef,
        parse_credential_ref,
    )
    from rescind.models.results import ActionResult, ActOutcome, Evidence, Outcome

# Each exported name -> the module that defines it.
_EXPORTED_FROM = {
    "ACTION_ORDER": "rescind.models.actions",
    "ROTATED_SINCE_KINDS": "rescind.models.actions",
    "SUPPORTED_ACTIONS": "rescind.models.actions",
    "Action": "rescind.models.actions",
    "ActionKind": "rescind.models.actions",
    "ActionParams": "rescind.models.actions",
    "Plan": "rescind.models.actions",
    "PreviousVersions": "rescind.models.actions",
    "AcmPcaCertificateRef": "rescind.models.credentials",
    "AppRoleSecretIdRef": "rescind.models.credentials",
    "CredentialKind": "rescind.models.credentials",
    "CredentialRef": "rescind.models.credentials",
    "DatabaseRootRef": "rescind.models.credentials",
    "DatabaseStaticRoleRef": "rescind.models.credentials",
    "IamAccessKeyRef": "rescind.models.credentials",
    "IamRoleSessionsRef": "rescind.models.credentials",
    "KvSecretRef": "rescind.models.credentials",
    "PkiCertificateRef": "rescind.models.credentials",
    "SecretsManagerSecretRef": "rescind.models.credentials",
    "TtlTargetType": "rescind.models.credentials",
    "VaultEntityRef": "rescind.models.credentials",
    "VaultLeaseRef": "rescind.models.credentials",
    "VaultTokenRef": "rescind.models.credentials",
    "VaultTtlTargetRef": "rescind.models.credentials",
    "parse_credential_ref": "rescind.models.credentials",
    "ActionResult": "rescind.models.results",
    "ActOutcome": "rescind.models.results",
    "Evidence": "rescind.models.results",
    "Outcome": "rescind.models.results",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTED_FROM.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: later lookups find it without this function
    return value


__all__ = [
    "ACTION_ORDER",
    "ROTATED_SINCE_KINDS",
    "SUPPORTED_ACTIONS",
    "AcmPcaCertificateRef",
    "ActOutcome",
    "Action",
    "ActionKind",
    "ActionParams",
    "ActionResult",
    "AppRoleSecretIdRef",
    "CredentialKind",
    "CredentialRef",
    "DatabaseRootRef",
    "DatabaseStaticRoleRef",
    "Evidence",
    "IamAccessKeyRef",
    "IamRoleSessionsRef",
    "KvSecretRef",
    "Outcome",
    "PkiCertificateRef",
    "Plan",
    "PreviousVersions",
    "SecretsManagerSecretRef",
    "TtlTargetType",
    "VaultEntityRef",
    "VaultLeaseRef",
    "VaultTokenRef",
    "VaultTtlTargetRef",
    "parse_credential_ref",
]
