"""Vault tokens, always by accessor: locate by metadata, revoke, shorten the TTL, verify.

The token value is never read, held or returned. Every call names the accessor, which is safe to log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

import hvac
import hvac.exceptions

from rescind.concurrent_reads import ReadAfter
from rescind.engine.base import KindHandler, Step, seen_state
from rescind.exceptions import ActionFailed, InvalidInput, PolicyRefusal, RescindError
from rescind.holds import GuardFacts, facts_from_vault_metadata
from rescind.kinds import Backends, GuardRead, InventoryRow, InventoryScan, InventorySection, KindSpec, ValueLocator
from rescind.leaks.types import LocatedLeak, SecretType, Unlocated
from rescind.models import (
    Action,
    ActionKind,
    ActOutcome,
    CredentialKind,
    CredentialRef,
    Evidence,
    TtlTargetType,
    VaultEntityRef,
    VaultTokenRef,
)
from rescind.models.refs import format_ref
from rescind.vault.client import own_token_accessor, read_data, vault_errors
from rescind.vault.common import as_int, list_keys, ttl_is_at_or_below, ttl_target
from rescind.vault.ttl import list_role_names

if TYPE_CHECKING:
    from rescind.discovery import DiscoveryScope
    from rescind.kinds import LeakSearch
    from rescind.leaks.types import LeakAlert

DEFAULT_METADATA_KEY = "spiffe_id"

# OpenBao answers a lookup, renew or revoke of an accessor that names no live token with this 400.
_INVALID_ACCESSOR = "invalid accessor"
INVALID_TOKEN = "invalid token"  # noqa: S105 - OpenBao's error text
_TOKEN_NOT_FOUND = "token not found"  # noqa: S105 - OpenBao's 400 to a revoke-accessor racing the token's end


@dataclass(frozen=True)
class TokenState:
    """What lookup-accessor says about a live token. No field can hold the token itself."""

    accessor: str
    ttl_seconds: int  # 0 means the token never expires (root tokens), or expires within the second (`expires`)
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
    creation_time: int = 0  # unix seconds
    explicit_max_ttl_seconds: int = 0  # 0: no explicit max
    expires: bool = False  # lookup-accessor's expire_time is set
    revocation_pending: bool = False  # num_uses -1: OpenBao has begun revoking it (it can no longer be used)


def is_invalid_accessor(error: hvac.exceptions.VaultError) -> bool:
    return isinstance(error, hvac.exceptions.InvalidRequest) and _INVALID_ACCESSOR in str(error)


# --- locate ---------------------------------------------------------------------------------------


# OpenBao answers 403 ("permission denied"), not "invalid accessor", to a lookup-accessor that finds the accessor
# of a token dying at that moment (expiring, its last use spent, revoked with its parent) but no longer its entry.
# Asked again (at once, then after LOOKUP_PAUSE_ON_FORBIDDEN_SECONDS), it says "invalid accessor". A denial by policy
# answers 403 every time.
LOOKUP_ASKS_ON_FORBIDDEN = 3
LOOKUP_PAUSE_ON_FORBIDDEN_SECONDS = 0.05


def lookup_token_by_accessor(client: hvac.Client, accessor: str) -> TokenState | None:
    """The token's state, or None when OpenBao says the accessor is invalid (the token is gone). A 403 is asked
    again (see LOOKUP_ASKS_ON_FORBIDDEN); only a 403 to every ask raises, as ActionFailed (permission denied)."""
    with vault_errors(f"lookup token accessor {accessor}"):
        for ask in range(1, LOOKUP_ASKS_ON_FORBIDDEN + 1):
            try:
                response = client.auth.token.lookup_accessor(accessor)
                break
            except hvac.exceptions.InvalidRequest as error:
                if is_invalid_accessor(error):
                    return None
                raise ActionFailed(f"lookup token accessor {accessor}: {str(error)[:300]}") from error
            except hvac.exceptions.Forbidden:
                if ask == LOOKUP_ASKS_ON_FORBIDDEN:
                    raise
                time.sleep(LOOKUP_PAUSE_ON_FORBIDDEN_SECONDS * (ask - 1))
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
        creation_time=as_int(data.get("creation_time")),
        explicit_max_ttl_seconds=as_int(data.get("explicit_max_ttl")),
        expires=bool(data.get("expire_time")),
        revocation_pending=as_int(data.get("num_uses")) == -1,
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
    """Tokens whose metadata `key` equals `value` exactly, found by scanning auth/token/accessors. Only a metadata
    match selects a token: a root token or the caller's own is never found unless its own metadata names the workload.
    """
    return [VaultTokenRef(accessor=state.accessor) for state in find_tokens_by_metadata(client, key, value)]


def _require_metadata_match(key: str, value: str) -> None:
    if not key or not value:
        raise InvalidInput("token discovery needs a non-empty metadata key and value")


def find_tokens_by_metadata(
    client: hvac.Client, key: str, value: str, *, live: Sequence[TokenState] | None = None
) -> list[TokenState]:
    """The states of the tokens whose metadata `key` equals `value`, from `live` (a scan already made) or a new scan."""
    _require_metadata_match(key, value)
    return [state for state in (scan_live_tokens(client) if live is None else live) if state.metadata.get(key) == value]


def find_token_accessors_by_spiffe_id(
    client: hvac.Client, spiffe_id: str, *, metadata_key: str = DEFAULT_METADATA_KEY
) -> list[VaultTokenRef]:
    """The workload's tokens by its SPIFFE ID, under the configurable metadata key."""
    return find_token_accessors_by_metadata(client, metadata_key, spiffe_id)


# --- act ------------------------------------------------------------------------------------------


def _refuse_own_token(client: hvac.Client, ref: VaultTokenRef) -> None:
    """Rescind must not cut the branch it sits on: its own token is never acted on."""
    if own_token_accessor(client) == ref.accessor:
        raise PolicyRefusal(f"token accessor {ref.accessor} is the token Rescind itself is using")


def revoke_token_by_accessor(
    client: hvac.Client,
    ref: VaultTokenRef,
    *,
    listed_children: Sequence[str] = (),
    cannot_create_tokens: bool = False,
    seen: GuardFacts | None = None,
    token_roles: Callable[[], Sequence[str]] | None = None,
) -> ActOutcome:
    """Revoke the token (and, as Vault does, its child tokens and leases) through revoke-accessor, then read it back.

    The tokens that may die with it are read before and after, so the outcome names every token that died with it,
    each with its own read-back: the possible children of a token that can create tokens, and `listed_children`
    (the tree the issuance index knows, from the plan; a token whose policy no longer lets it create tokens may
    still have them). One not alive before is not claimed. A possible child's evidence says only that it could have
    been created under this one, and any whose own TTL ran out meanwhile says it may have expired instead. Without
    either, no lookup comes first: a token gone already is told by revoke-accessor's own answer ("invalid
    accessor"). The lookup after the revoke is the action's read-back (`ActOutcome.read_back`), the same read
    `verify_token_revoked` makes.
    With `cannot_create_tokens` (the planner asked, TokenCreators), the act is the revoke and its read-back.
    `seen`: what the action's guard looked up of the token moments before, the lookup this act would make first;
    `token_roles`: the token roles, listed after it is asked (the handler's: shared by the acts that ask together).
    """
    _refuse_own_token(client, ref)
    from rescind.vault.token_tree import can_create_child_tokens, could_descend_from, ran_out_since  # a cycle

    may_have_children = not cannot_create_tokens and can_create_child_tokens(
        client, ref.accessor, roles=token_roles() if token_roles is not None else None
    )
    possible: dict[str, TokenState] = {}  # the live bound's candidates, as read before
    listed: dict[str, TokenState] = {}  # the plan's children from the issuance index, as read before
    read_at = time.monotonic()  # before any of them is read: the time since each read is never under-estimated
    if may_have_children or listed_children:
        state = seen_state(seen, TokenState, lambda: lookup_token_by_accessor(client, ref.accessor))
        if state is None:
            return ActOutcome(changed=False, absent=True, detail="already absent")
        if may_have_children:
            possible = {token.accessor: token for token in scan_live_tokens(client) if could_descend_from(token, state)}
        for accessor in listed_children:
            child = possible.get(accessor) or (
                lookup_token_by_accessor(client, accessor) if accessor != ref.accessor else None
            )
            if child is not None:
                listed[accessor] = child
    if not _revoke_accessor(client, ref):
        return ActOutcome(changed=False, absent=True, detail="already absent")
    elapsed = time.monotonic() - read_at
    observed = {
        accessor: (_LISTED_CHILD_ENDED if accessor in listed else _POSSIBLE_CHILD_ENDED)
        + (_OWN_TTL_RAN_OUT if ran_out_since(token, elapsed) else "")
        for accessor, token in (possible | listed).items()
    }
    return _revoked(client, ref, observed)


def revoke_token_first(
    client: hvac.Client,
    ref: VaultTokenRef,
    *,
    indexed_children: Callable[[str], Sequence[str]],
    listed_children: Sequence[str] = (),
) -> ActOutcome:
    """Kill first (a leak: its tree neither refuses nor counts): revoke-accessor with no read before it but Rescind's
    own accessor (remembered); then the token, and each child the issuance index (`indexed_children`, queried after)
    or the plan lists, read back. The live bound would need the tree alive, before the kill: it is not read."""
    _refuse_own_token(client, ref)
    if not _revoke_accessor(client, ref):
        return ActOutcome(changed=False, absent=True, detail="already absent")
    try:
        indexed, unread = indexed_children(ref.accessor), ""
    except RescindError as error:  # the kill stands: only its tree goes unnamed, and the outcome says so
        indexed, unread = [], f"; its tree is not named: the issuance index could not be read ({type(error).__name__})"
    children = dict.fromkeys(
        (child for child in (*listed_children, *indexed) if child != ref.accessor), _INDEXED_CHILD_ENDED
    )
    revoked = _revoked(client, ref, children)
    return revoked.model_copy(update={"detail": revoked.detail + unread}) if unread else revoked


# What each claimed child's read-back says: the index knows a child; the live bound only that it could be one (a
# sibling revoked at the same moment would read the same).
_INDEXED_CHILD_ENDED = "invalid accessor after revoking {parent}, its parent in the issuance index"
_LISTED_CHILD_ENDED = "invalid accessor: alive before, ended with its parent {parent} (a child in the issuance index)"
_POSSIBLE_CHILD_ENDED = "invalid accessor: alive before revoking {parent}, which could have created it"
_OWN_TTL_RAN_OUT = "; its own TTL ran out meanwhile: it may have expired instead"


def _revoke_accessor(client: hvac.Client, ref: VaultTokenRef) -> bool:
    """revoke-accessor; False when OpenBao says no such token (already absent)."""
    with vault_errors(f"revoke token accessor {ref.accessor}"):
        try:
            response = client.auth.token.revoke_accessor(ref.accessor)
        except hvac.exceptions.InvalidRequest as error:
            # "token not found": the accessor of a token dying at that moment was found, its entry no longer was
            if is_invalid_accessor(error) or _TOKEN_NOT_FOUND in str(error):
                return False
            raise ActionFailed(f"revoke token accessor {ref.accessor}: {str(error)[:300]}") from error
    # OpenBao answers 200 with this warning instead of an error when the token died in between.
    warnings = response.get("warnings") if isinstance(response, dict) else None
    return not any("No token found" in str(warning) for warning in warnings or [])


def _revoked(client: hvac.Client, ref: VaultTokenRef, candidates: Mapping[str, str]) -> ActOutcome:
    """A revocation made: the token read back; each candidate (accessor -> what its death is read as, `{parent}`)
    read dead is named ended, with that as its evidence."""
    ended = [child for child in candidates if lookup_token_by_accessor(client, child) is None]
    evidence = tuple(
        Evidence(
            check=f"lookup-accessor {child}", observed=candidates[child].format(parent=ref.accessor), confirmed=True
        )
        for child in ended
    )
    possible = sum(candidates[child].startswith(_POSSIBLE_CHILD_ENDED) for child in ended)
    died_with = [
        f"{count} token(s) {how}"
        for count, how in ((len(ended) - possible, "created under it"), (possible, "it could have created"))
        if count
    ]
    return ActOutcome(
        changed=True,
        detail=" and ".join([f"revoked token accessor {ref.accessor}", *died_with]),
        also_ended=tuple(VaultTokenRef(accessor=child) for child in ended),
        also_ended_evidence=evidence,
        read_back=verify_token_revoked(client, ref),
    )


def shorten_token_ttl(
    client: hvac.Client, ref: VaultTokenRef, ttl_seconds: int, *, seen: GuardFacts | None = None
) -> ActOutcome:
    """Lower the token's remaining TTL to `ttl_seconds` through renew-accessor, never raising it.

    renew-accessor sets the TTL to the increment, whatever it was, so the current TTL is read first: a
    token already at or below the target is left alone. Tokens whose TTL cannot be lowered this way
    (not renewable, never expiring, periodic) raise ActionFailed: revoke them instead. `seen`: as for a revoke.
    """
    _refuse_own_token(client, ref)
    state = seen_state(seen, TokenState, lambda: lookup_token_by_accessor(client, ref.accessor))
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
            if is_invalid_accessor(error):
                return ActOutcome(changed=False, absent=True, detail="already absent")
            raise ActionFailed(f"renew token accessor {ref.accessor}: {str(error)[:300]}") from error
    granted = as_int((response.get("auth") or {}).get("lease_duration")) if isinstance(response, dict) else 0
    if not ttl_is_at_or_below(granted, ttl_seconds):
        raise ActionFailed(f"renew token accessor {ref.accessor}: asked for {ttl_seconds}s, OpenBao granted {granted}s")
    return ActOutcome(
        changed=True, detail=f"lowered ttl of token accessor {ref.accessor} from {state.ttl_seconds}s to {granted}s"
    )


# --- verify ---------------------------------------------------------------------------------------


# A token OpenBao is revoking (its last use spent, expired, revoked by another caller) reads num_uses -1 until its
# entry is gone, moments later: verification reads it again, a few times, before it calls it alive.
PENDING_REVOCATION_REREADS = 3
PENDING_REVOCATION_PAUSE_SECONDS = 0.05


def verify_token_revoked(client: hvac.Client, ref: VaultTokenRef) -> Evidence:
    """Confirmed only by OpenBao's "invalid accessor" answer to lookup-accessor; other errors raise. A token whose
    revocation OpenBao has begun is read again (PENDING_REVOCATION_REREADS) and, still there, is not confirmed."""
    check = f"lookup-accessor {ref.accessor}"
    state = lookup_token_by_accessor(client, ref.accessor)
    for _ in range(PENDING_REVOCATION_REREADS):
        if state is None or not state.revocation_pending:
            break
        time.sleep(PENDING_REVOCATION_PAUSE_SECONDS)
        state = lookup_token_by_accessor(client, ref.accessor)
    if state is None:
        return Evidence(check=check, observed="invalid accessor: no live token", confirmed=True)
    if state.revocation_pending:
        return Evidence(check=check, observed="OpenBao is still revoking it (num_uses -1)", confirmed=False)
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


# --- a leaked value ------------------------------------------------------------------------------


def locate_leaked_token(search: LeakSearch, alert: LeakAlert, token: str | None) -> LocatedLeak | Unlocated:
    """`auth/token/lookup` of the value: its accessor, and the entity it logged in as. Nothing else is read: the
    token is killed first, and whether its entity holds no other live token (then it is disabled too) is the run's
    plan to decide, after the kill (rescind.leaks.plan): a scan of every token must not keep the leaked one alive."""
    vault = search.backends.vault
    with vault_errors("lookup of a leaked token"):
        try:
            response = vault.auth.token.lookup(token=token)
        except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest) as error:
            if "permission denied" in str(error) and "bad token" not in str(error):
                raise ActionFailed("lookup of a leaked token: permission denied (auth/token/lookup)") from None
            return Unlocated(why="no live Vault token has this value (already revoked or expired)")
    data = read_data(response)
    accessor = str(data.get("accessor") or "")
    if not accessor:
        return Unlocated(why="the token has no accessor (a batch token cannot be revoked by accessor)")
    refs: list[CredentialRef] = [VaultTokenRef(accessor=accessor)]
    entity_id = str(data.get("entity_id") or "")
    evidence = "auth/token/lookup matched a live token"
    if entity_id:
        refs.insert(0, VaultEntityRef(entity_id=entity_id))
        evidence += f"; its entity {entity_id} is disabled too if it holds no other live token (decided after the kill)"
    meta = data.get("meta") or {}
    metadata = {str(key): str(value) for key, value in meta.items()} if isinstance(meta, dict) else {}
    owner = metadata.get(search.scope.metadata_key)
    return LocatedLeak(
        credentials=tuple(refs),
        owner=owner or None,
        evidence=evidence,
        exact=True,
        guard_facts={refs[-1].key: facts_from_vault_metadata(metadata, search.scope.metadata_key)},
    )


# --- the inventory report -------------------------------------------------------------------------


def _inventory(scan: InventoryScan) -> list[InventorySection]:
    return [("vault tokens", lambda: _token_rows(scan))]


def _token_rows(scan: InventoryScan) -> Iterator[InventoryRow]:
    """Every live token: its age, owner, and whether it never expires or lives above the token ceiling."""
    vault, ceiling = scan.backends.vault, scan.policy.ttl_ceilings.token_seconds
    scan.wait()
    for accessor in list_token_accessors(vault):
        scan.wait()
        state = lookup_token_by_accessor(vault, accessor)
        if state is None:
            continue  # died during the scan
        ttl = state.ttl_seconds
        yield InventoryRow(
            target=format_ref(VaultTokenRef(accessor=accessor)),
            kind=CredentialKind.VAULT_TOKEN,
            created_at=datetime.fromtimestamp(state.creation_time, UTC),
            owner=state.metadata.get(scan.scope.metadata_key),
            standing="ttl 0 and no explicit max: never expires"
            if ttl == 0 and state.explicit_max_ttl_seconds == 0
            else None,
            ttl_violation=f"ttl {ttl}s > token ceiling {ceiling}s" if ttl > ceiling else None,
        )


# --- the kind -------------------------------------------------------------------------------------


class VaultTokenHandler(KindHandler[VaultTokenRef]):
    """CredentialHandler for Vault tokens: revoke and shorten_ttl, by accessor. With `indexed_children` (the kill
    first's, rescind.leaks.kill) a revocation reads nothing before it (`revoke_token_first`)."""

    def __init__(self, client: hvac.Client, *, indexed_children: Callable[[str], Sequence[str]] | None = None) -> None:
        # The token roles (which create paths a token may use), listed after an act asks: those asking together share.
        roles: ReadAfter[str, list[str]] = ReadAfter(lambda _: list_role_names(client, TtlTargetType.TOKEN_ROLE))

        def revoke(ref: VaultTokenRef, action: Action, seen: GuardFacts | None) -> ActOutcome:
            listed = action.params.child_tokens
            if indexed_children is None:
                return revoke_token_by_accessor(
                    client,
                    ref,
                    listed_children=listed,
                    cannot_create_tokens=action.params.cannot_create_tokens,
                    seen=seen,
                    token_roles=partial(roles, "auth/token"),
                )
            return revoke_token_first(client, ref, indexed_children=indexed_children, listed_children=listed)

        super().__init__(
            CredentialKind.VAULT_TOKEN,
            VaultTokenRef,
            {
                ActionKind.REVOKE: Step(revoke, lambda ref, _action: verify_token_revoked(client, ref)),
                ActionKind.SHORTEN_TTL: Step(
                    lambda ref, action, seen: shorten_token_ttl(client, ref, ttl_target(action), seen=seen),
                    lambda ref, action: verify_token_ttl(client, ref, ttl_target(action)),
                ),
            },
        )
        self._client = client

    def look_up(self, ref: VaultTokenRef) -> bool | None:
        return lookup_token_by_accessor(self._client, ref.accessor) is not None


def _guard_facts(read: GuardRead, ref: VaultTokenRef) -> GuardFacts:
    """Its metadata's hold and owner; the state read is kept for the same plan's guard (its tree, its ACL) and for
    the same action's act."""
    token = lookup_token_by_accessor(read.backends.vault, ref.accessor)
    if token is not None and read.backends.reads is not None:
        read.backends.reads.token_states[token.accessor] = token
    facts = facts_from_vault_metadata(token.metadata if token is not None else {}, read.metadata_key)
    return replace(facts, found=token is not None, state=token)


def _discover(backends: Backends, workload_id: str, scope: DiscoveryScope) -> list[VaultTokenRef]:
    """The workload's tokens; the scan and each found token's guard facts are kept for the plan's guard."""
    _require_metadata_match(scope.metadata_key, workload_id)  # bad input is refused before any call
    live = scan_live_tokens(backends.vault)
    if backends.reads is not None:
        backends.reads.live_tokens = live
    found: list[VaultTokenRef] = []
    for state in find_tokens_by_metadata(backends.vault, scope.metadata_key, workload_id, live=live):
        ref = VaultTokenRef(accessor=state.accessor)
        backends.keep_guard_facts(ref, facts_from_vault_metadata(state.metadata, scope.metadata_key))
        found.append(ref)
    return found


KIND = KindSpec(
    kind=CredentialKind.VAULT_TOKEN,
    ref_type=VaultTokenRef,
    ending_action=ActionKind.REVOKE,
    build_handler=lambda backends: VaultTokenHandler(backends.vault),
    read_guard_facts=_guard_facts,
    discover=_discover,
    locate_leaked={SecretType.VAULT_TOKEN: ValueLocator(locate_leaked_token, needs_value=True)},
    inventory=_inventory,
)
