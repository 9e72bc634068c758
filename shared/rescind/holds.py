"""Hold markers and owners: what the guard reads of one credential, in the form every credential kind gives it.

A hold is a marker an owner puts on a credential or identity to say "not now": the `rescind:hold` tag on an IAM
user or secret, or a `rescind_hold` key in the metadata of a Vault entity, token, AppRole secret-id or KV secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

VAULT_HOLD_KEY = "rescind_hold"
AWS_HOLD_TAG = "rescind:hold"
AWS_WORKLOAD_TAG = "rescind:workload"


def is_set(value: object) -> bool:
    """A marker counts unless it is absent, empty or says false."""
    return value not in (None, "", "false", "False", "0")


@dataclass(frozen=True)
class GuardFacts:
    """What the guard reads of one credential: its hold marker, and the workloads its metadata or tags name."""

    hold: str | None  # where a hold was found, or None
    owners: frozenset[str]
    # Whether the read found the credential at all; None: the reader does not say (or made no read).
    found: bool | None = field(default=None, compare=False)
    # What the read returned, in the kind's own form (a CertificateRecord, a TokenState...), when it found the
    # credential: the same action's act takes it rather than making the same request again (engine.base.seen_state).
    state: object = field(default=None, compare=False, repr=False)


NO_GUARD_FACTS = GuardFacts(hold=None, owners=frozenset())


def facts_from_vault_metadata(metadata: Mapping[str, object], metadata_key: str) -> GuardFacts:
    """A Vault object's metadata: the hold key, and the workload its `metadata_key` names."""
    named = metadata.get(metadata_key)
    return GuardFacts(
        hold=f"metadata {VAULT_HOLD_KEY}" if is_set(metadata.get(VAULT_HOLD_KEY)) else None,
        owners=frozenset({str(named)} if named else ()),
    )


def facts_from_aws_tags(tags: Mapping[str, str], holder: str) -> GuardFacts:
    """An AWS resource's tags (`holder` says which resource, for the hold's description)."""
    tagged = tags.get(AWS_WORKLOAD_TAG)
    return GuardFacts(
        hold=f"tag {AWS_HOLD_TAG} on {holder}" if is_set(tags.get(AWS_HOLD_TAG)) else None,
        owners=frozenset({tagged} if tagged else ()),
    )
