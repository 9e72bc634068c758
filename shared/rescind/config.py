"""Typed configuration: one model per concern, composed into RuntimeSettings, read from the environment once.

Each concern (Vault, the records, cross-account access, the plan's scope and guard, the workload accounts, the
state machines, the indexes, GitHub, the schedules, the archive) is a model of its own; each field is defined
once, in its concern, with its strict validation. RuntimeSettings is all of them: a function reads
`get_settings().x` whatever the concern, and the CLI reads the concerns it needs (`PlanSettings`) from the
same models. Field `x_y` is variable `X_Y`; `from_environ` is the only reader of the environment, and a
problem raises ConfigurationError naming the variable, never its value. A setting that grows with the
organisation (rescind.parameter_store.STORED_SETTINGS) is deployed in SSM Parameter Store: variable `X_Y_PARAMETER`
names the parameter, which `from_environ` reads, and a problem names the parameter.

Every function reads RuntimeSettings at cold start (`rescind.runtime.get_settings`), so a malformed value stops
the function there. A variable only some functions are given is optional here; the functions that need it ask
for it with `require`/`required`, also at cold start.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from rescind.aws.external_id import EXTERNAL_ID_PATTERN, EXTERNAL_ID_RULE
from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.exceptions import ConfigurationError
from rescind.parameter_store import PARAMETER_SUFFIX, STORED_SETTINGS, parameter_label, read_parameters
from rescind.schedules.policy import SchedulePolicy
from rescind.validation import IamName, describe_validation_error

if TYPE_CHECKING:
    from rescind.discovery import DiscoveryScope
    from rescind.guard import GuardPolicy

# A Secrets Manager secret's ARN: what the template passes for every secret the functions read.
SecretArn = Annotated[
    str, Field(pattern=r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}$")
]
DEFAULT_GITHUB_API_URL = "https://api.github.com"

# Variables only some functions are given (template.yaml), which those functions `require` at cold start.
FunctionSetting = Literal[
    "offboarding_state_machine_arn",
    "leak_response_state_machine_arn",
    "manual_state_machine_arn",
    "sweep_state_table_name",
    "inventory_report_bucket",
    "ledger_archive_bucket",
    "github_webhook_secret_arn",
]


def _variable(field_name: str) -> str:
    return field_name.upper()


def _parameter_variable(field_name: str) -> str:
    """The variable carrying the name of the Parameter Store parameter that holds a stored setting."""
    return f"{_variable(field_name)}{PARAMETER_SUFFIX}"


class EnvironmentSettings(BaseModel):
    """A concern's settings: field `x_y` from variable `X_Y`, an empty variable meaning unset."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="ignore", frozen=True)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, *, ssm_client: Any = None) -> Self:
        """The settings, from `environ` (the process's environment by default), and the stored settings from the
        Parameter Store parameters it names (rescind.parameter_store), read with `ssm_client` if given (the CLI's,
        for a stack's), else the runtime's. ConfigurationError names each variable or parameter that is missing
        or malformed."""
        source = os.environ if environ is None else environ
        values = {name: source[_variable(name)] for name in cls.model_fields if source.get(_variable(name))}
        stored = {
            _parameter_variable(name): source[_parameter_variable(name)]
            for name in sorted(STORED_SETTINGS & set(cls.model_fields))
            if source.get(_parameter_variable(name))
        }
        both = sorted(
            variable.removesuffix(PARAMETER_SUFFIX)
            for variable in stored
            if source.get(variable.removesuffix(PARAMETER_SUFFIX))
        )
        if both:
            raise ConfigurationError(
                f"invalid configuration: {', '.join(f'{v} and {v}{PARAMETER_SUFFIX}' for v in both)} are both set; "
                "give the value or its parameter's name, not both"
            )
        if stored:
            for variable, value in read_parameters(stored, ssm_client=ssm_client).items():
                values[variable.removesuffix(PARAMETER_SUFFIX).lower()] = value

        def field_name(name: str) -> str:
            variable = _parameter_variable(name)
            return parameter_label(variable, stored[variable]) if variable in stored else _variable(name)

        try:
            return cls.model_validate(values)
        except ValidationError as error:
            problems = describe_validation_error(error, field_name=field_name)
            raise ConfigurationError(f"invalid configuration: {problems}") from None

    @classmethod
    def variables(cls) -> tuple[str, ...]:
        """The environment variables that hold these settings' values."""
        return tuple(_variable(name) for name in cls.model_fields)

    @classmethod
    def parameter_variables(cls) -> tuple[str, ...]:
        """The environment variables that name the Parameter Store parameter of one of these stored settings."""
        return tuple(_parameter_variable(name) for name in cls.model_fields if name in STORED_SETTINGS)

    def require(self, *names: FunctionSetting) -> None:
        """ConfigurationError naming every one of these variables that is not set."""
        missing = [_variable(name) for name in names if not getattr(self, name, None)]
        if missing:
            raise ConfigurationError(
                f"invalid configuration: this function needs {', '.join(missing)} (set by template.yaml)"
            )

    def required(self, name: FunctionSetting) -> str:
        """The value of a variable this function needs; ConfigurationError naming it when it is not set."""
        self.require(name)
        return str(getattr(self, name))


def _comma_separated(value: object) -> object:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


# A list in one variable: `a, b,c`.
CommaSeparated = Annotated[tuple[str, ...], BeforeValidator(_comma_separated)]
AccountIds = Annotated[tuple[Annotated[str, Field(pattern=r"^\d{12}$")], ...], BeforeValidator(_comma_separated)]


def validated_github_api_url(value: str) -> str:
    """https, or http to a loopback host only (the request carries a bearer token); ValueError otherwise. The
    URL without a trailing slash, its path kept (GitHub Enterprise's `/api/v3`)."""
    parsed = urllib.parse.urlsplit(value.strip())
    if not parsed.hostname or parsed.query or parsed.fragment or parsed.username or parsed.password:
        raise ValueError("GITHUB_API_URL must be a plain http(s) URL")
    if parsed.scheme == "http":
        host = parsed.hostname
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise ValueError("GITHUB_API_URL must use https (http only to a loopback address)")
    elif parsed.scheme != "https":
        raise ValueError("GITHUB_API_URL must use https")
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path.rstrip("/"), "", ""))


# --- the concerns ---------------------------------------------------------------------------------------------


class VaultAuthMethod(StrEnum):
    AWS_IAM = "aws_iam"  # deployed functions: Vault's AWS IAM auth, no static token
    TOKEN = "token"  # noqa: S105 - the method name; local stack, or a responder's own VAULT_TOKEN


class VaultSettings(EnvironmentSettings):
    """The Vault or OpenBao the functions act on, and how they log in."""

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

    @model_validator(mode="after")
    def _auth_is_complete(self) -> Self:
        if self.vault_auth_method is VaultAuthMethod.TOKEN and self.vault_token is None:
            raise ValueError("VAULT_AUTH_METHOD=token needs VAULT_TOKEN")
        if self.vault_auth_method is VaultAuthMethod.AWS_IAM and not self.vault_aws_auth_role:
            raise ValueError("VAULT_AUTH_METHOD=aws_iam needs VAULT_AWS_AUTH_ROLE")
        return self


class RecordSettings(EnvironmentSettings):
    """Where what happened goes: the ledger, the notification topic and the bus."""

    ledger_table_name: Annotated[str, Field(min_length=3, max_length=255)]
    notification_topic_arn: str | None = None
    event_bus_name: str = "default"
    # Characters per ledger item before a record is stored in chunks (rescind.ledger.chunks); tests lower it.
    ledger_chunk_chars: Annotated[int, Field(ge=200, le=95_000)] = 90_000
    # Where a plan's actions go for the state machines' DISTRIBUTED Maps (rescind.response.plan_store), how
    # many actions one Contain or Revoke item executes (Verify reads back the same batches), and how many at once
    # (at most requests' 10 pooled connections to Vault: the batch's threads share the one client).
    plan_bucket_name: Annotated[str, Field(min_length=3, max_length=63)] | None = None
    revoke_batch_size: Annotated[int, Field(ge=1, le=1000)] = 50
    revoke_batch_workers: Annotated[int, Field(ge=1, le=10)] = 8


class ArchiveSettings(EnvironmentSettings):
    """The ledger's object-locked copy (the archive function only)."""

    ledger_archive_bucket: Annotated[str, Field(min_length=3, max_length=63)] | None = None


class CrossAccountSettings(EnvironmentSettings):
    """How Rescind acts in another account: the member stacks' execution role and its external id."""

    cross_account_role_name: IamName = "RescindExecutionRole"
    # Required to cross accounts: member-account.yaml's execution role trusts no AssumeRole without it.
    cross_account_external_id: str | None = None

    @field_validator("cross_account_external_id")
    @classmethod
    def _external_id_is_well_formed(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(EXTERNAL_ID_PATTERN, value):
            raise ValueError(f"must be {EXTERNAL_ID_RULE}")
        return value


class DiscoveryScopeSettings(EnvironmentSettings):
    """Where live discovery looks (comma-separated in the environment), and the workload metadata key."""

    pki_mounts: CommaSeparated = ("pki",)
    approle_mounts: CommaSeparated = ("approle",)
    kv_mounts: CommaSeparated = ("secret",)
    # Where the acting task may revoke leases, beside PKI mounts and AppRole logins (e.g. a database mount).
    lease_mounts: CommaSeparated = ()
    # A leaked database password is compared with the current password of at most this many static roles.
    database_leak_max_roles: Annotated[int, Field(ge=1, le=10_000)] = 200
    aws_account_ids: AccountIds = ()
    workload_metadata_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")] = "spiffe_id"

    def discovery_scope(self, *, default_account: str | None) -> DiscoveryScope:
        """The scope; its AWS accounts are AWS_ACCOUNT_IDS, else `default_account` (the caller's own) if any."""
        from rescind.discovery import DiscoveryScope

        accounts: Sequence[str] = self.aws_account_ids or ((default_account,) if default_account else ())
        return DiscoveryScope(
            pki_mounts=self.pki_mounts,
            approle_mounts=self.approle_mounts,
            kv_mounts=self.kv_mounts,
            lease_mounts=self.lease_mounts,
            database_leak_max_roles=self.database_leak_max_roles,
            aws_account_ids=tuple(accounts),
            metadata_key=self.workload_metadata_key,
        )


class GuardSettings(EnvironmentSettings):
    """The guard: these workloads are never touched; a plan larger than the cap waits for approval."""

    protected_workloads: CommaSeparated = ()
    blast_radius_cap: Annotated[int, Field(ge=1, le=100_000)] = 25

    def guard_policy(self, *, also_protected: Sequence[str] = ()) -> GuardPolicy:
        from rescind.guard import GuardPolicy

        return GuardPolicy(
            protected_workloads=frozenset((*self.protected_workloads, *also_protected)),
            blast_radius_cap=self.blast_radius_cap,
        )


class PlanSettings(DiscoveryScopeSettings, GuardSettings):
    """What shapes a plan, and all the CLI reads of the functions' settings: the scope and the guard."""


class WorkloadAccountSettings(EnvironmentSettings):
    """Who may end a workload by the generic event: the stack's own account, and per trust domain
    (`prod.example=111111111111 222222222222;staging.example=333333333333`, `*` for every one)."""

    stack_account_id: Annotated[str, Field(pattern=r"^\d{12}$")] | None = None
    trust_domain_accounts: dict[str, frozenset[str]] = Field(default_factory=dict)

    @field_validator("trust_domain_accounts", mode="before")
    @classmethod
    def _trust_domain_map(cls, value: object) -> object:
        from rescind.offboarding.accounts import parse_trust_domain_accounts

        return parse_trust_domain_accounts(value) if isinstance(value, str) else value


class FlowSettings(EnvironmentSettings):
    """The state machines the functions start or answer, and the leak responder's deduplication window."""

    offboarding_state_machine_arn: str | None = None
    leak_response_state_machine_arn: str | None = None
    manual_state_machine_arn: str | None = None
    # One response per leaked credential within this window, whichever sources report it.
    leak_dedup_window_seconds: Annotated[int, Field(ge=60, le=30 * 86400)] = 3600

    def incident_machine_arns(self) -> tuple[str, ...]:
        """The three machines whose runs are incidents (manual, offboarding, leak response), each required."""
        names: tuple[FunctionSetting, ...] = (
            "manual_state_machine_arn",
            "offboarding_state_machine_arn",
            "leak_response_state_machine_arn",
        )
        self.require(*names)
        return tuple(self.required(name) for name in names)


class IndexSettings(EnvironmentSettings):
    """The inventory table, the KV fingerprint index (leak alerts carrying a KV value) with its HMAC key, and the
    issuance index."""

    inventory_table_name: str | None = None
    fingerprint_table_name: str | None = None
    fingerprint_key_secret_arn: SecretArn | None = None
    # The issuance index fed by Vault's audit log, and the audit device whose HMAC (`sys/audit-hash/<device>`)
    # it holds: a leaked Vault-issued value is located through it.
    issuance_table_name: str | None = None
    audit_device_path: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*/?$")] | None = None
    # When discovery may read the issuance index alone (README "Offboarding"): the back-fill, or the last drift
    # check that confirmed it, is trusted this many hours. A drift check compares this many index records and this
    # many live credentials; above this share of mismatches it marks the index stale until the next back-fill.
    issuance_index_max_age_hours: Annotated[int, Field(ge=1, le=8760)] = 72
    issuance_drift_sample_size: Annotated[int, Field(ge=1, le=10_000)] = 50
    issuance_drift_threshold: Annotated[float, Field(ge=0, le=1)] = 0.05


class GitHubSettings(EnvironmentSettings):
    """GitHub alerts. The webhook function reads the webhook secret; the leak responder reads the alert's value
    from the REST API (the webhook does not carry it) with the token."""

    github_webhook_secret_arn: SecretArn | None = None
    github_api_url: str = DEFAULT_GITHUB_API_URL
    github_token_secret_arn: SecretArn | None = None

    @field_validator("github_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return validated_github_api_url(value)


class ScheduleSettings(EnvironmentSettings):
    """The sweeps: their policy (JSON, its defaults when absent), checkpoints and the inventory report's bucket."""

    schedule_policy: SchedulePolicy = Field(default_factory=SchedulePolicy)
    sweep_state_table_name: str | None = None
    inventory_report_bucket: str | None = None

    @field_validator("schedule_policy", mode="before")
    @classmethod
    def _policy_json(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        if not value.strip():
            return {}
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"is not JSON ({error.msg})") from None


class RotationHookSettings(EnvironmentSettings):
    """The PostgreSQL rotation hook (functions/rotate_postgres): how it connects to the database it rotates on.

    `verify-full` (default): TLS, the server's certificate and host name checked against the trusted CAs (point
    `SSL_CERT_FILE` at a bundle with your database's CA, e.g. RDS's); `disable`: no TLS, only for a database on a
    link you trust (the tests' local PostgreSQL).
    """

    rotation_hook_postgres_tls: Literal["verify-full", "disable"] = "verify-full"
    rotation_hook_connect_timeout_seconds: Annotated[int, Field(ge=1, le=60)] = 10


# --- all of them ----------------------------------------------------------------------------------------------


class RuntimeSettings(
    VaultSettings,
    RecordSettings,
    ArchiveSettings,
    CrossAccountSettings,
    PlanSettings,
    WorkloadAccountSettings,
    FlowSettings,
    IndexSettings,
    GitHubSettings,
    ScheduleSettings,
    RotationHookSettings,
):
    """Everything a function needs to know about where things are: every concern's fields, validated together."""

    @model_validator(mode="after")
    def _cross_account_access_is_complete(self) -> Self:
        # Two accounts or more: at least one is not this one, and Rescind reaches it only through a member
        # execution role, which requires the external id. (One listed account may be this one; the client
        # factory refuses, naming the setting, if it is not.)
        if len(set(self.aws_account_ids)) > 1 and self.cross_account_external_id is None:
            raise ValueError(
                "AWS_ACCOUNT_IDS lists other accounts, whose execution roles require an external id: set "
                f"CROSS_ACCOUNT_EXTERNAL_ID: {EXTERNAL_ID_RULE}"
            )
        return self
