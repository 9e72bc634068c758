"""Actions and plans: what Rescind will do, in the order it will do it."""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, computed_field, model_validator

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.models.credentials import CredentialKind, CredentialRef, memoised_by_identity


class ActionKind(StrEnum):
    DISABLE = "disable"
    ROTATE = "rotate"
    REVOKE = "revoke"
    SHORTEN_TTL = "shorten_ttl"
    DELETE = "delete"


# Plans run in this order: reversible containment first, deletion last.
ACTION_ORDER: dict[ActionKind, int] = {
    ActionKind.DISABLE: 0,
    ActionKind.ROTATE: 1,
    ActionKind.REVOKE: 2,
    ActionKind.SHORTEN_TTL: 3,
    ActionKind.DELETE: 4,
}

# What each credential kind supports. Anything else is refused before a call is made.
SUPPORTED_ACTIONS: dict[CredentialKind, frozenset[ActionKind]] = {
    CredentialKind.VAULT_TOKEN: frozenset({ActionKind.REVOKE, ActionKind.SHORTEN_TTL}),
    CredentialKind.APPROLE_SECRET_ID: frozenset({ActionKind.REVOKE}),
    CredentialKind.VAULT_LEASE: frozenset({ActionKind.REVOKE, ActionKind.SHORTEN_TTL}),
    CredentialKind.PKI_CERTIFICATE: frozenset({ActionKind.REVOKE}),
    CredentialKind.KV_SECRET: frozenset({ActionKind.ROTATE}),
    CredentialKind.VAULT_ENTITY: frozenset({ActionKind.DISABLE}),
    CredentialKind.VAULT_TTL_TARGET: frozenset({ActionKind.SHORTEN_TTL}),
    CredentialKind.IAM_ACCESS_KEY: frozenset({ActionKind.DISABLE, ActionKind.DELETE}),
    CredentialKind.IAM_ROLE_SESSIONS: frozenset({ActionKind.REVOKE}),
    CredentialKind.SECRETS_MANAGER_SECRET: frozenset({ActionKind.ROTATE}),
    CredentialKind.ACM_PCA_CERTIFICATE: frozenset({ActionKind.REVOKE}),
    CredentialKind.DATABASE_STATIC_ROLE: frozenset({ActionKind.ROTATE}),
    CredentialKind.DATABASE_ROOT: frozenset({ActionKind.ROTATE}),
}

# A token's tree listed in its revoke action: beyond this many, the plan is not one to run unattended anyway.
MAX_LISTED_CHILD_TOKENS = 1000

# Vault offers no way to change these credentials' metadata once issued (a token's meta, a secret-id's metadata): a
# hold marker or owner the plan read of one is still true when the act comes (ActionParams.owners_read_at_plan).
METADATA_FIXED_AT_ISSUE = frozenset({CredentialKind.VAULT_TOKEN, CredentialKind.APPROLE_SECRET_ID})

# Rotated by Vault in one call, with no version to compare: a rotation at or after `rotated_since` is this one.
ROTATED_SINCE_KINDS = frozenset({CredentialKind.DATABASE_STATIC_ROLE})


class PreviousVersions(StrEnum):
    """What a rotation does with the versions it replaces."""

    KEEP = "keep"  # scheduled rotation: the previous version stays for a grace period
    DESTROY = "destroy"  # leak response: the previous versions die with the rotation


class ActionParams(BaseModel):
    """Knobs for the actions that take them. Every field is optional and checked against the kind."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    ttl_seconds: Annotated[int, Field(ge=1, le=10 * 365 * 86400)] | None = None
    max_ttl_seconds: Annotated[int, Field(ge=1, le=10 * 365 * 86400)] | None = None
    previous_versions: PreviousVersions = PreviousVersions.DESTROY
    keep_versions: Annotated[int, Field(ge=0, le=100)] = 0
    # rotate: the incident or schedule run this rotation belongs to. It is part of the action id, so a
    # replay of one run never rotates twice while the next run rotates again.
    run_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-.:]{1,120}$")] | None = None
    # delete: refused before this moment (the end of the grace period after a verified disable)
    not_before: AwareDatetime | None = None
    # rotate (database static role): a rotation Vault records at or after this moment already is this
    # action, so a replay finds it applied instead of rotating again. The run's start, not the acting moment.
    rotated_since: AwareDatetime | None = None
    # revoke (Vault token): the live descendant tokens the issuance index knows (their accessors), listed by the
    # planner so the guard sees each one and the act step reads each one back after the revocation ends it.
    child_tokens: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9._\-]{1,200}$")], ...] = Field(
        default=(), max_length=MAX_LISTED_CHILD_TOKENS
    )
    # revoke (Vault token): the planner asked Vault whether this token may create tokens and it may not, so no token
    # can die with it: the act reads no tree before revoking. Unset (the default), the act asks for itself.
    cannot_create_tokens: bool = False
    # revoke (a kind in METADATA_FIXED_AT_ISSUE): the plan's own read found the target with no hold, its metadata
    # naming these workloads. The acting guard checks them against its policy rather than read the target again (the
    # read could not differ). None (the default): the acting guard reads the target.
    owners_read_at_plan: tuple[Annotated[str, Field(min_length=1, max_length=2048)], ...] | None = Field(
        default=None, max_length=8
    )


class Action(BaseModel):
    """One step of a plan. It carries a reference, never a value."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    kind: ActionKind
    target: CredentialRef
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    params: ActionParams = ActionParams()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reversible(self) -> bool:
        return self.kind is ActionKind.DISABLE

    @computed_field  # type: ignore[prop-decorator]
    @property
    def action_id(self) -> str:
        """Deterministic, so a retried or duplicated action has the same id and the ledger sees it once."""
        return _action_id(self)

    @model_validator(mode="before")
    @classmethod
    def _drop_computed(cls, data: object) -> object:
        # A dumped action carries its computed fields; accept them back without trusting them.
        if isinstance(data, dict) and ("reversible" in data or "action_id" in data):
            data = {k: v for k, v in data.items() if k not in ("reversible", "action_id")}
        return data

    @model_validator(mode="after")
    def _kind_supported(self) -> Action:
        supported = SUPPORTED_ACTIONS[self.target.kind]
        if self.kind not in supported:
            allowed = ", ".join(sorted(supported))
            raise ValueError(f"action {self.kind!s} does not apply to {self.target.kind!s} (allowed: {allowed})")
        if self.kind is ActionKind.SHORTEN_TTL and self.params.ttl_seconds is None:
            raise ValueError("shorten_ttl needs params.ttl_seconds")
        if self.kind is ActionKind.ROTATE and self.params.run_id is None:
            raise ValueError("rotate needs params.run_id (the incident or schedule run), so a replay rotates once")
        if self.params.child_tokens and (
            self.kind is not ActionKind.REVOKE or self.target.kind is not CredentialKind.VAULT_TOKEN
        ):
            raise ValueError("params.child_tokens applies only to the revocation of a Vault token")
        if self.params.owners_read_at_plan is not None and (
            self.kind is not ActionKind.REVOKE or self.target.kind not in METADATA_FIXED_AT_ISSUE
        ):
            raise ValueError(
                "params.owners_read_at_plan applies only to the revocation of a credential whose metadata is fixed "
                "at issue (a Vault token, an AppRole secret-id)"
            )
        if (self.target.kind in ROTATED_SINCE_KINDS) != (self.params.rotated_since is not None):
            raise ValueError(
                "params.rotated_since is required for a database static role rotation (the run's start, "
                "so a replay finds the rotation applied) and applies to nothing else"
            )
        return self


@memoised_by_identity
def _action_id(action: Action) -> str:
    params = action.params.model_dump_json(exclude_defaults=True)
    digest = hashlib.sha256(f"{action.kind}|{action.target.key}|{params}".encode()).hexdigest()
    return f"{action.kind}-{digest[:20]}"


class Plan(BaseModel):
    """An ordered list of actions. The order is checked, not trusted: reversible steps first, deletion last."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    plan_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,80}$")]
    actions: tuple[Action, ...]
    dry_run: bool = False

    @classmethod
    def ordered(cls, plan_id: str, actions: list[Action], *, dry_run: bool = False) -> Plan:
        """Build a plan with the safe order; duplicates collapse to one action."""
        unique = {action.action_id: action for action in actions}
        in_order = sorted(unique.values(), key=lambda action: ACTION_ORDER[action.kind])
        return cls(plan_id=plan_id, actions=tuple(in_order), dry_run=dry_run)

    @model_validator(mode="after")
    def _safe_order(self) -> Plan:
        ranks = [ACTION_ORDER[action.kind] for action in self.actions]
        if ranks != sorted(ranks):
            raise ValueError("actions are out of order: disable, rotate, revoke, shorten_ttl, delete")
        ids = [action.action_id for action in self.actions]
        if len(ids) != len(set(ids)):
            raise ValueError("actions contain duplicates")
        return self

    @property
    def counts_by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for action in self.actions:
            counts[action.target.kind] = counts.get(action.target.kind, 0) + 1
        return counts
