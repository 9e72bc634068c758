"""Vault tokens, always by accessor: locate by metadata, revoke, shorten the TTL, verify.

The token value is never read, held or returned. Every call names the accessor, which is safe to log.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import hvac
import hvac.exceptions

from rescind.exceptions import ActionFailed, InvalidInput, PolicyRefusal, UnsupportedAction
from rescind.models import Action, ActionKind, ActOutcome, CredentialKind, CredentialRef, Evidence, VaultTokenRef
from rescind.vault.client import read_data, vault_errors
from rescind.vault.common import as_int, list_keys, ttl_is_at_or_below, ttl_target

DEFAULT_METADATA_KEY = "spiffe_id"

# OpenBao answers a lookup, renew or revoke of an accessor that names no live token with this 400.
_INVALID_ACCESSOR = "invalid accessor"
_INVALID_TOKEN = "invalid token"  # noqa: S105 - OpenBao's error text


@dataclass(frozen=True)
class TokenState:
    """What lookup-accessor says about a live token. No field can hold the token itself."""

    accessor: str
    ttl_seconds: int  # 0 means the token never expires (root tokens)
    renewable: bool
    period_seconds: int  # >0 for a periodic token: every renewal resets its TTL to the period
    token_type: str
    metadata: dict[str, str]
    # What is known of the token's place in its tree (no API names a token's parent or children).
    entity_id: str = ""
    orphan: bool = True
    path: str = ""
    issue_time: str = ""
    policies: frozenset[str] = frozenset()


def _is_invalid_accessor(error: hvac.exceptions.VaultError) -> bool:
    return isinstance(error, hvac.exceptions.InvalidRequest) and _INVALID_ACCESSOR in str(error)


# --- locate ---------------------------------------------------------------------------------------


def lookup_token_by_accessor(client: hvac.Client, accessor: str) -> TokenState | None:
    """The token's state, or None when OpenBao says the accessor is invalid (the token is gone)."""
    with vault_errors(f"lookup token accessor {accessor}"):
        try:
            response = client.auth.token.lookup_accessor(accessor)
        except hvac.exceptions.InvalidRequest as error:
            if _is_invalid_accessor(error):
                return None
            raise ActionFailed(f"lookup token accessor {accessor}: {str(error)[:300]}") from error
    data = read_data(response)
    metadata = data.get("meta") or {}
    return TokenState(
        accessor=str(data.get("accessor") or accessor),
        ttl_seconds=as_int(data.get("ttl")),
        renewable=bool(data.get("renewable")),
        period_seconds=as_int(data.get("period")),
        token_type=str(data.get("type") or ""),
        metadata={str(key): str(value) for key, value in metadata.items()},
        entity_id=str(data.get("entity_id") or ""),
        orphan=bool(data.get("orphan")),
        path=str(data.get("path") or ""),
        issue_time=str(data.get("issue_time") or ""),
        policies=frozenset(str(policy) for policy in data.get("policies") or ()),
    )


def list_token_accessors(client: hvac.Client) -> list[str]:
    """Every accessor of a live service token (batch tokens have none)."""
    with vault_errors("list token accessors"):
        return list_keys(client, "/v1/auth/token/accessors")


def scan_live_tokens(client: hvac.Client) -> list[TokenState]:
    """Every live service token's state: one LIST and one lookup per token. Tokens that die meanwhile are skipped."""
    states = (lookup_token_by_accessor(client, accessor) for accessor in list_token_accessors(client))
    return [state for state in states if state is not None]


def find_token_accessors_by_metadata(client: hvac.Client, key: str, value: str) -> list[VaultTokenRef]:
    """Tokens whose metadata `key` equals `value` exactly, found by scanning auth/token/accessors.

    Only a metadata match selects a token, so a root token or the caller's own token is never found
    unless its own metadata names the workload.
    """
    if not key or not value:
        raise InvalidInput("token discovery needs a non-empty metadata key and value")
    return [
        VaultTokenRef(accessor=state.accessor) for state in scan_live_tokens(client) if state.metadata.get(key) == value
    ]


# --- the tree under a token -----------------------------------------------------------------------
# revoke-accessor ends a token's whole child tree, and Vault names neither a token's parent nor its
# children. So the tree is bounded from above: a token that cannot create tokens has no children; else
# its possible descendants are the live tokens that token/create could have made under it (not orphans,
# the same entity, issued no earlier, policies within its own unless a token role granted them). The
# list may hold a token that is not in the tree, never miss one that is.

_CREATE_CAPABILITIES = frozenset({"create", "update", "sudo", "root"})


def _token_role_names(client: hvac.Client) -> list[str]:
    with vault_errors("list token roles"):
        return list_keys(client, "/v1/auth/token/roles")


def can_create_child_tokens(client: hvac.Client, accessor: str) -> bool:
    """Whether the token's policies let it call auth/token/create (or a token role's create path) now."""
    paths = ["auth/token/create", *(f"auth/token/create/{role}" for role in _token_role_names(client))]
    with vault_errors(f"capabilities of token accessor {accessor}"):
        try:
            response = client.adapter.post("/v1/sys/capabilities-accessor", json={"accessor": accessor, "paths": paths})
        except hvac.exceptions.InvalidRequest as error:
            if _is_invalid_accessor(error):
                return False
            if _INVALID_TOKEN in str(error):
                # OpenBao will not evaluate a token whose entity is disabled (containment does that first). It
                # cannot create tokens now, but may have before: its tree is looked for, as an upper bound.
                return True
            raise ActionFailed(f"capabilities of token accessor {accessor}: {str(error)[:300]}") from error
    data = read_data(response)
    return any(_CREATE_CAPABILITIES & {str(cap) for cap in data.get(path) or ()} for path in paths)


def _issued_at(state: TokenState) -> datetime | None:
    """OpenBao's issue_time has nanoseconds, which fromisoformat does not take: keep microseconds."""
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", state.issue_time)
    if match is None:
        return None
    fraction = (match.group(2) or ".0")[:7]
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    return datetime.fromisoformat(f"{match.group(1)}{fraction}{zone}")


def could_descend_from(candidate: TokenState, parent: TokenState) -> bool:
    """Whether token/create could have made `candidate` somewhere under `parent`. Pure."""
    if candidate.accessor == parent.accessor or candidate.orphan or candidate.entity_id != parent.entity_id:
        return False
    if not candidate.path.startswith("auth/token/create"):
        return False
    born, parent_born = _issued_at(candidate), _issued_at(parent)
    if born is not None and parent_born is not None and born < parent_born:
        return False
    through_role = candidate.path.startswith("auth/token/create/")
    return through_role or "root" in parent.policies or candidate.policies <= parent.policies | {"default"}


def find_possible_child_tokens(
    client: hvac.Client, parent: TokenState, *, live: Callable[[], Sequence[TokenState]] | None = None
) -> list[TokenState]:
    """Every live token that may die with `parent`'s revocation: empty when it cannot create tokens.

    `parent` is the caller's own lookup of the token; `live` gives a scan (scan_live_tokens) to share between
    several parents, called only when needed.
    """
    if not can_create_child_tokens(client, parent.accessor):
        return []
    tokens = live() if live is not None else scan_live_tokens(client)
    return [state for state in tokens if could_descend_from(state, parent)]


def find_token_accessors_by_spiffe_id(
    client: hvac.Client, spiffe_id: str, *, metadata_key: str = DEFAULT_METADATA_KEY
) -> list[VaultTokenRef]:
    """The workload's tokens by its SPIFFE ID, under the configurable metadata key."""
    return find_token_accessors_by_metadata(client, metadata_key, spiffe_id)


# --- act ------------------------------------------------------------------------------------------


def _refuse_own_token(client: hvac.Client, ref: VaultTokenRef) -> None:
    """Rescind must not cut the branch it sits on: its own token is never acted on."""
    with vault_errors("lookup own token"):
        own = read_data(client.auth.token.lookup_self()).get("accessor")
    if own == ref.accessor:
        raise PolicyRefusal(f"token accessor {ref.accessor} is the token Rescind itself is using")


def revoke_token_by_accessor(client: hvac.Client, ref: VaultTokenRef) -> ActOutcome:
    """Revoke the token (and, as Vault does, its child tokens and leases) through revoke-accessor.

    The possible children are read before and after, so the outcome names every token that died with it.
    """
    _refuse_own_token(client, ref)
    state = lookup_token_by_accessor(client, ref.accessor)
    if state is None:
        return ActOutcome(changed=False, absent=True, detail="already absent")
    possible_children = find_possible_child_tokens(client, state)
    with vault_errors(f"revoke token accessor {ref.accessor}"):
        try:
            response = client.auth.token.revoke_accessor(ref.accessor)
        except hvac.exceptions.InvalidRequest as error:
            if _is_invalid_accessor(error):
                return ActOutcome(changed=False, absent=True, detail="already absent")
            raise ActionFailed(f"revoke token accessor {ref.accessor}: {str(error)[:300]}") from error
    # OpenBao answers 200 with this warning instead of an error when the token died in between.
    warnings = response.get("warnings") if isinstance(response, dict) else None
    if any("No token found" in str(warning) for warning in warnings or []):
        return ActOutcome(changed=False, absent=True, detail="already absent")
    ended = tuple(
        VaultTokenRef(accessor=child.accessor)
        for child in possible_children
        if lookup_token_by_accessor(client, child.accessor) is None
    )
    died_with = f" and {len(ended)} token(s) created under it" if ended else ""
    return ActOutcome(changed=True, detail=f"revoked token accessor {ref.accessor}{died_with}", also_ended=ended)


def shorten_token_ttl(client: hvac.Client, ref: VaultTokenRef, ttl_seconds: int) -> ActOutcome:
    """Lower the token's remaining TTL to `ttl_seconds` through renew-accessor, never raising it.

    renew-accessor sets the TTL to the increment, whatever it was, so the current TTL is read first: a
    token already at or below the target is left alone. Tokens whose TTL cannot be lowered this way
    (not renewable, never expiring, periodic) raise ActionFailed: revoke them instead.
    """
    _refuse_own_token(client, ref)
    state = lookup_token_by_accessor(client, ref.accessor)
    if state is None:
        return ActOutcome(changed=False, absent=True, detail="already absent")
    if ttl_is_at_or_below(state.ttl_seconds, ttl_seconds):
        return ActOutcome(
            changed=False, detail=f"already applied: ttl {state.ttl_seconds}s is at or below {ttl_seconds}s"
        )
    if not state.renewable:
        raise ActionFailed(
            f"token accessor {ref.accessor} is not renewable (ttl {state.ttl_seconds}s, 0 = never expires), "
            "so its TTL cannot be lowered; revoke it instead"
        )
    if state.period_seconds > 0:
        # A renewal resets a periodic token to its full period, which would raise its TTL.
        raise ActionFailed(
            f"token accessor {ref.accessor} is periodic ({state.period_seconds}s): renewing would reset, not "
            "lower, its TTL; revoke it instead"
        )
    with vault_errors(f"renew token accessor {ref.accessor}"):
        try:
            response = client.auth.token.renew_accessor(ref.accessor, increment=f"{ttl_seconds}s")
        except hvac.exceptions.InvalidRequest as error:
            if _is_invalid_accessor(error):
                return ActOutcome(changed=False, absent=True, detail="already absent")
            raise ActionFailed(f"renew token accessor {ref.accessor}: {str(error)[:300]}") from error
    granted = as_int((response.get("auth") or {}).get("lease_duration")) if isinstance(response, dict) else 0
    if not ttl_is_at_or_below(granted, ttl_seconds):
        raise ActionFailed(f"renew token accessor {ref.accessor}: asked for {ttl_seconds}s, OpenBao granted {granted}s")
    return ActOutcome(
        changed=True, detail=f"lowered ttl of token accessor {ref.accessor} from {state.ttl_seconds}s to {granted}s"
    )


# --- verify ---------------------------------------------------------------------------------------


def verify_token_revoked(client: hvac.Client, ref: VaultTokenRef) -> Evidence:
    """Confirmed only by OpenBao's "invalid accessor" answer to lookup-accessor; other errors raise."""
    check = f"lookup-accessor {ref.accessor}"
    state = lookup_token_by_accessor(client, ref.accessor)
    if state is None:
        return Evidence(check=check, observed="invalid accessor: no live token", confirmed=True)
    return Evidence(check=check, observed=f"token still alive, ttl {state.ttl_seconds}s", confirmed=False)


def verify_token_ttl(client: hvac.Client, ref: VaultTokenRef, ttl_seconds: int) -> Evidence:
    """Read the TTL back. A token that no longer exists satisfies "at or below" too."""
    check = f"lookup-accessor {ref.accessor} ttl <= {ttl_seconds}s"
    state = lookup_token_by_accessor(client, ref.accessor)
    if state is None:
        return Evidence(check=check, observed="invalid accessor: the token no longer exists", confirmed=True)
    return Evidence(
        check=check,
        observed=f"ttl {state.ttl_seconds}s (0 = never expires)",
        confirmed=ttl_is_at_or_below(state.ttl_seconds, ttl_seconds),
    )


# --- handler --------------------------------------------------------------------------------------


class VaultTokenHandler:
    """CredentialHandler for Vault tokens: revoke and shorten_ttl, by accessor."""

    kinds: frozenset[CredentialKind] = frozenset({CredentialKind.VAULT_TOKEN})

    def __init__(self, client: hvac.Client) -> None:
        self._client = client

    def act(self, action: Action) -> ActOutcome:
        ref = _token_ref(action)
        if action.kind is ActionKind.REVOKE:
            return revoke_token_by_accessor(self._client, ref)
        if action.kind is ActionKind.SHORTEN_TTL:
            return shorten_token_ttl(self._client, ref, ttl_target(action))
        raise UnsupportedAction(f"{action.kind!s} does not apply to a Vault token")

    def verify(self, action: Action) -> Evidence:
        ref = _token_ref(action)
        if action.kind is ActionKind.REVOKE:
            return verify_token_revoked(self._client, ref)
        if action.kind is ActionKind.SHORTEN_TTL:
            return verify_token_ttl(self._client, ref, ttl_target(action))
        raise UnsupportedAction(f"{action.kind!s} does not apply to a Vault token")

    def exists(self, ref: CredentialRef) -> bool | None:
        return isinstance(ref, VaultTokenRef) and lookup_token_by_accessor(self._client, ref.accessor) is not None


def _token_ref(action: Action) -> VaultTokenRef:
    if not isinstance(action.target, VaultTokenRef):
        raise UnsupportedAction(f"VaultTokenHandler cannot act on {action.target.kind!s}")
    return action.target
