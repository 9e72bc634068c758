"""Typed runtime configuration, read from the environment once at cold start and validated then."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from rescind.aws.external_id import EXTERNAL_ID_PATTERN, EXTERNAL_ID_RULE
from rescind.exceptions import InvalidInput
from rescind.validation import describe_validation_error


class VaultAuthMethod(StrEnum):
    AWS_IAM = "aws_iam"  # deployed functions: Vault's AWS IAM auth, no static token
    TOKEN = "token"  # noqa: S105 - the method name; local stack, or a responder's own VAULT_TOKEN


class RuntimeSettings(BaseModel):
    """Everything a function or the CLI needs to know about where things are."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ledger_table_name: Annotated[str, Field(min_length=3, max_length=255)]
    notification_topic_arn: str | None = None
    # https, or http to this machine only (the local stack): the Vault login and every token cross this link.
    vault_addr: Annotated[
        str, Field(pattern=r"^(?:https://[^\s/]+|http://(?:127\.0\.0\.1|localhost|\[::1\]))(?::\d+)?/?$")
    ]
    vault_auth_method: VaultAuthMethod = VaultAuthMethod.AWS_IAM
    vault_token: SecretStr | None = None
    vault_namespace: str | None = None
    vault_aws_auth_role: str | None = None
    vault_aws_auth_mount: str = "aws"
    vault_aws_auth_header: str | None = None
    cross_account_role_name: Annotated[str, Field(pattern=r"^[\w+=,.@\-]{1,64}$")] = "RescindExecutionRole"
    # Required to cross accounts: member-account.yaml's execution role trusts no AssumeRole without it.
    cross_account_external_id: str | None = None
    workload_metadata_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")] = "spiffe_id"
    inventory_table_name: str | None = None
    offboarding_state_machine_arn: str | None = None
    leak_response_state_machine_arn: str | None = None
    # One response per leaked credential within this window, whichever sources report it.
    leak_dedup_window_seconds: Annotated[int, Field(ge=60, le=30 * 86400)] = 3600
    event_bus_name: str = "default"
    # Guard: these workloads are never touched; a plan larger than the cap waits for approval.
    protected_workloads: tuple[str, ...] = ()
    blast_radius_cap: Annotated[int, Field(ge=1, le=100_000)] = 25
    # Discovery scope: where live discovery looks (comma-separated in the environment).
    pki_mounts: tuple[str, ...] = ("pki",)
    approle_mounts: tuple[str, ...] = ("approle",)
    kv_mounts: tuple[str, ...] = ("secret",)
    # Where the acting task may revoke leases, beside PKI mounts and AppRole logins (e.g. a database mount).
    lease_mounts: tuple[str, ...] = ()
    aws_account_ids: tuple[str, ...] = ()
    # Who may end a workload by the generic event: the stack's own account, and per trust domain
    # (`prod.example=111111111111 222222222222;staging.example=333333333333`, `*` for every one).
    stack_account_id: Annotated[str, Field(pattern=r"^\d{12}$")] | None = None
    trust_domain_accounts: dict[str, frozenset[str]] = Field(default_factory=dict)
    # The KV fingerprint index (leak alerts carrying a KV value): its table and the HMAC key's secret.
    fingerprint_table_name: str | None = None
    fingerprint_key_secret_arn: str | None = None
    # The issuance index fed by Vault's audit log, and the audit device whose HMAC (`sys/audit-hash/<device>`)
    # it holds: a leaked Vault-issued value is located through it.
    issuance_table_name: str | None = None
    audit_device_path: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*/?$")] | None = None
    # GitHub alerts: the webhook does not carry the secret, so the responder reads it from the REST API.
    github_api_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] = "https://api.github.com"
    github_token_secret_arn: str | None = None

    @field_validator(
        "protected_workloads",
        "pki_mounts",
        "approle_mounts",
        "kv_mounts",
        "lease_mounts",
        "aws_account_ids",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("trust_domain_accounts", mode="before")
    @classmethod
    def _trust_domain_map(cls, value: object) -> object:
        from rescind.offboarding.accounts import parse_trust_domain_accounts

        return parse_trust_domain_accounts(value) if isinstance(value, str) else value

    @field_validator("cross_account_external_id")
    @classmethod
    def _external_id_is_well_formed(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(EXTERNAL_ID_PATTERN, value):
            raise ValueError(f"must be {EXTERNAL_ID_RULE}")
        return value

    @model_validator(mode="after")
    def _auth_is_complete(self) -> RuntimeSettings:
        if self.vault_auth_method is VaultAuthMethod.TOKEN and self.vault_token is None:
            raise ValueError("VAULT_AUTH_METHOD=token needs VAULT_TOKEN")
        if self.vault_auth_method is VaultAuthMethod.AWS_IAM and not self.vault_aws_auth_role:
            raise ValueError("VAULT_AUTH_METHOD=aws_iam needs VAULT_AWS_AUTH_ROLE")
        return self

    @model_validator(mode="after")
    def _cross_account_access_is_complete(self) -> RuntimeSettings:
        # Two accounts or more: at least one is not this one, and Rescind reaches it only through a member
        # execution role, which requires the external id. (One listed account may be this one; the client
        # factory refuses, naming the setting, if it is not.)
        if len(set(self.aws_account_ids)) > 1 and self.cross_account_external_id is None:
            raise ValueError(
                "AWS_ACCOUNT_IDS lists other accounts, whose execution roles require an external id: set "
                f"CROSS_ACCOUNT_EXTERNAL_ID: {EXTERNAL_ID_RULE}"
            )
        return self

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> RuntimeSettings:
        """Field `x_y` comes from variable `X_Y`. Raises InvalidInput naming what is missing or wrong."""
        source = os.environ if environ is None else environ
        values = {name: source[name.upper()] for name in cls.model_fields if source.get(name.upper())}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise InvalidInput(f"invalid configuration: {describe_validation_error(error)}") from None
