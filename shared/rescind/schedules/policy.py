"""The schedules' policy: maximum ages, TTL ceilings, grace periods, protected paths and per-run bounds.

One typed model, read from the SCHEDULE_POLICY environment variable (JSON) by the settings
(rescind.config.ScheduleSettings) and validated at cold start. The README documents every field.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rescind.deferred_builds import DEFER_MODEL_BUILDS

_DAY = 86400
_TEN_YEARS = 10 * 365 * _DAY


def _safe_prefix(value: str) -> str:
    """`mount/path/prefix`: never empty, never the root, never `..` (an empty prefix would match everything)."""
    segments = value.split("/")
    if not value or value.startswith("/") or any(segment in ("", ".", "..") for segment in segments[:-1]):
        raise ValueError("a prefix is `mount/path...` with no empty, `.` or `..` segment and no leading slash")
    if segments[-1] in (".", ".."):
        raise ValueError("a prefix may not end in `.` or `..`")
    if len(segments) < 2 or not segments[1]:
        raise ValueError("a prefix names a mount and at least the start of a path (a whole mount is too broad)")
    return value


def _static_role_prefix(value: str) -> str:
    """`mount/role-prefix`; `mount/` alone is every static role of the mount (Vault's rotate-role changes the
    database and Vault together, so no application is left with a password the database refuses)."""
    mount, slash, role_prefix = value.partition("/")
    if not slash or not mount or any(part in (".", "..") for part in (mount, *role_prefix.split("/"))):
        raise ValueError("a static role prefix is `mount/role-prefix` with no `.` or `..` segment")
    return value


class MaxAgeRule(BaseModel):
    """Rotate what this rule matches once it is older than `max_age_days`. Exactly one of `kv_prefix`/`tag`/
    `static_role_prefix`."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    kv_prefix: str | None = None  # KV v2 `mount/path-prefix` (e.g. `secret/apps/`)
    tag: str | None = None  # Secrets Manager tag `key=value`
    # Database static roles `mount/role-prefix` (e.g. `database/`), on LeaseMounts; age: `last_vault_rotation`.
    static_role_prefix: str | None = None
    max_age_days: Annotated[int, Field(ge=1, le=3650)]

    @field_validator("kv_prefix")
    @classmethod
    def _check_prefix(cls, value: str | None) -> str | None:
        return None if value is None else _safe_prefix(value)

    @field_validator("static_role_prefix")
    @classmethod
    def _check_static_role_prefix(cls, value: str | None) -> str | None:
        return None if value is None else _static_role_prefix(value)

    @field_validator("tag")
    @classmethod
    def _check_tag(cls, value: str | None) -> str | None:
        if value is not None and (value.count("=") != 1 or value.startswith("=")):
            raise ValueError("a tag is `key=value`")
        return value

    @model_validator(mode="after")
    def _one_selector(self) -> MaxAgeRule:
        if [self.kv_prefix, self.tag, self.static_role_prefix].count(None) != 2:
            raise ValueError("a max-age rule has exactly one of kv_prefix, tag and static_role_prefix")
        return self


class TtlCeilings(BaseModel):
    """The longest TTL allowed, in seconds. Anything longer is lowered to the ceiling; nothing is ever raised."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    token_seconds: Annotated[int, Field(ge=60, le=_TEN_YEARS)] = 7 * _DAY  # live tokens and token roles
    lease_seconds: Annotated[int, Field(ge=60, le=_TEN_YEARS)] = 7 * _DAY  # live leases
    role_seconds: Annotated[int, Field(ge=60, le=_TEN_YEARS)] = 7 * _DAY  # PKI, AppRole and token roles' max TTL
    mount_seconds: Annotated[int, Field(ge=60, le=_TEN_YEARS)] = 30 * _DAY  # mounts' max_lease_ttl


class SchedulePolicy(BaseModel):
    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    rotation_max_age: tuple[MaxAgeRule, ...] = ()
    # Scheduled rotation keeps the previous version this long; a leak response destroys it at once.
    rotation_grace_days: Annotated[int, Field(ge=0, le=365)] = 7
    ttl_ceilings: TtlCeilings = TtlCeilings()
    # A credential's workload must have been gone this long before it counts as an orphan.
    orphan_grace_minutes: Annotated[int, Field(ge=0, le=30 * 24 * 60)] = 60
    pki_max_certificate_days: Annotated[int, Field(ge=1, le=3650)] = 90
    # PKI tidy removes certificates expired longer ago than this (Vault's own default is 72 hours).
    pki_tidy_safety_buffer_seconds: Annotated[int, Field(ge=1, le=_TEN_YEARS)] = 3 * _DAY
    # Vault paths (`mount/path-prefix`) and reference-key prefixes (`iam-key:…`) no sweep ever touches.
    protected_paths: tuple[str, ...] = ()
    max_actions_per_run: Annotated[int, Field(ge=1, le=100_000)] = 100
    vault_requests_per_second: Annotated[float, Field(gt=0, le=10_000)] = 50.0

    @field_validator("protected_paths")
    @classmethod
    def _no_empty_protected(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not item.strip() for item in value):
            raise ValueError("a protected path may not be empty")
        return value

    def is_protected(self, target: str) -> bool:
        """`target` is a Vault path (`mount/path`) or a reference's text form."""
        return any(target == item or target.startswith(item) for item in self.protected_paths)
