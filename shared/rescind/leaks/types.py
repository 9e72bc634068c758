"""What a leak alert says, in-process only, and what is left of it once the credential is located.

A `LeakAlert` may hold the leaked value (`secret`). It lives only inside the function that receives the event:
it is never serialized, logged, put in the ledger or passed to the state machine. What leaves the function is a
`LeakResponse`-bound `ResponseRequest` naming the credential by reference.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.holds import GuardFacts
from rescind.models import CredentialRef
from rescind.validation import IamName

# owner/name as GitHub spells them (at most 201 characters); each part has a character other than a dot, so `..`
# is refused: the name is put into API paths. (pydantic's regex engine has no look-ahead.)
_GITHUB_NAME = r"[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*"
GITHUB_REPOSITORY_PATTERN = rf"^{_GITHUB_NAME}/{_GITHUB_NAME}$"


class SecretType(StrEnum):
    """The generic event's `secret_type`; every other trigger is mapped onto one of these."""

    VAULT_TOKEN = "vault_token"  # noqa: S105 - a type name
    VAULT_SECRET_ID = "vault_secret_id"  # noqa: S105 - a type name
    AWS_ACCESS_KEY = "aws_access_key"
    KV_VALUE = "kv_value"
    CERTIFICATE = "certificate"
    # The current password of a database secrets engine's static role.
    DATABASE_PASSWORD = "database_password"  # noqa: S105 - a type name
    # GuardDuty's instance-credential exfiltration: the role's sessions, not one key.
    AWS_ROLE_SESSIONS = "aws_role_sessions"
    # AWS Health naming a user rather than a key: that user's active keys in that account.
    AWS_IAM_USER = "aws_iam_user"
    # Any value Vault issued (a dynamic database password, a generated secret): its audit HMAC in the issuance index.
    VAULT_ISSUED_VALUE = "vault_issued_value"


# An AWS access key id: a user's (AKIA) or a role session's (ASIA). One pattern for the parsers, the locator
# and the alert model.
ACCESS_KEY_ID = re.compile(r"(?:AKIA|ASIA)[A-Z0-9]{12,124}")

# Types only AWS's own events produce; the generic event cannot name them.
AWS_EVENT_ONLY_TYPES = frozenset({SecretType.AWS_ROLE_SESSIONS, SecretType.AWS_IAM_USER})


class LeakAlert(BaseModel):
    """One leaked credential as one trigger reported it. `secret` never leaves the process."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    source: Annotated[str, Field(min_length=1, max_length=200)]
    detail_type: Annotated[str, Field(min_length=1, max_length=200)]
    event_id: Annotated[str, Field(min_length=1, max_length=200)]
    secret_type: SecretType
    secret: SecretStr | None = Field(default=None, exclude=True, repr=False)
    secret_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    # Not secret: an access key id, the account it lives in, a role named by GuardDuty.
    access_key_id: Annotated[str, Field(pattern=f"^{ACCESS_KEY_ID.pattern}$")] | None = None
    account_id: Annotated[str, Field(pattern=r"^[0-9]{12}$")] | None = None
    role_name: IamName | None = None
    user_name: IamName | None = None
    # GitHub: the alert to fetch the value from (the webhook does not carry it).
    github_repository: Annotated[str, Field(pattern=GITHUB_REPOSITORY_PATTERN, max_length=201)] | None = None
    github_alert_number: Annotated[int, Field(ge=1)] | None = None
    source_url: Annotated[str, Field(max_length=2000)] | None = None
    scanner: Annotated[str, Field(max_length=200)] | None = None
    found_at: AwareDatetime

    @property
    def describe(self) -> str:
        """A line for logs and notifications: where it came from and what kind, never the value."""
        where = f" at {self.source_url}" if self.source_url else ""
        return f"{self.secret_type} reported by {self.scanner or self.source} ({self.event_id}){where}"[:500]


class LeakEvent(BaseModel):
    """One leak event, decided: the alerts to answer, what it named that resolves to nothing Rescind can act on,
    or why it is recorded and nothing is acted on. Every event that gets here leaves an incident."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    source: Annotated[str, Field(min_length=1, max_length=200)]
    detail_type: Annotated[str, Field(min_length=1, max_length=200)]
    event_id: Annotated[str, Field(min_length=1, max_length=200)]
    summary: Annotated[str, Field(min_length=1, max_length=500)]  # what the event is, for records; never a value
    alerts: tuple[LeakAlert, ...] = ()
    unresolved: tuple[Annotated[str, Field(max_length=500)], ...] = ()  # each: what was named, and why not
    record_only: Annotated[str, Field(max_length=500)] | None = None  # why nothing is acted on (a sample...)


class LocatedLeak(BaseModel):
    """The credential(s) an alert resolved to, and whose they are. References only."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    credentials: tuple[CredentialRef, ...]
    owner: Annotated[str, Field(max_length=500)] | None = None  # the workload, when the credential names one
    evidence: Annotated[str, Field(max_length=1000)]  # how it was located (which lookup matched)
    # The value (or key id) itself matched these credentials in the system that holds them: they are what leaked,
    # not a guess (a key id found beside the secret, every key of a user). Only an exact locate is killed first.
    exact: bool = False
    # What the locate's own lookup showed of each credential's hold marker and owners, by reference key; one it
    # did not read (a token's entity) is absent. The kill first guards on these, with no second read.
    guard_facts: dict[str, GuardFacts] = Field(default_factory=dict)
    # Each IAM access key's status (Active, Inactive) as the locate's own listing showed it under its user, by
    # reference key: the kill first deactivates from it, with no second listing (its read-back lists it after).
    key_status: dict[str, Annotated[str, Field(pattern=r"^(Active|Inactive)$")]] = Field(default_factory=dict)

    @property
    def dedup_key(self) -> str:
        """The credential, not the alert: GitHub, a scanner and AWS Health reporting one key start one response."""
        keys = "\n".join(sorted(ref.key for ref in self.credentials))
        return hashlib.sha256(keys.encode()).hexdigest()[:32]


class Unlocated(BaseModel):
    """Why an alert resolved to nothing. Recorded as an UNRESOLVED incident and notified; nothing is touched."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    why: Annotated[str, Field(min_length=1, max_length=500)]
