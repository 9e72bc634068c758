"""The tree under a Vault token: which live tokens may die with its revocation.

revoke-accessor ends a token's whole child tree, and Vault names neither a token's parent nor its children. So the
tree is bounded from above: a token that cannot create tokens has no children; else its possible descendants are
the live tokens that token/create could have made under it (not orphans, the same entity, issued no earlier,
policies within its own unless a token role granted them). The list may hold a token that is not in the tree,
never miss one that is. The issuance index, where it is trusted, names the tree exactly (rescind.issuance.tree).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import hvac
import hvac.exceptions

from rescind.exceptions import ActionFailed
from rescind.models import TtlTargetType
from rescind.vault.client import read_data, vault_errors
from rescind.vault.common import parse_vault_time
from rescind.vault.tokens import INVALID_TOKEN, TokenState, is_invalid_accessor, scan_live_tokens
from rescind.vault.ttl import list_role_names

_CREATE_CAPABILITIES = frozenset({"create", "update", "sudo", "root"})


def can_create_child_tokens(client: hvac.Client, accessor: str, *, roles: Sequence[str] | None = None) -> bool:
    """Whether the token's policies let it call auth/token/create (or a token role's create path) now. `roles`: the
    token roles as listed for this question (listed here when None)."""
    listed = list_role_names(client, TtlTargetType.TOKEN_ROLE) if roles is None else roles
    return bool(_create_capability(client, accessor, listed))


def _create_capability(client: hvac.Client, accessor: str, roles: Sequence[str]) -> bool | None:
    """As `can_create_child_tokens`; None when the accessor names no live token (its answer says nothing of others)."""
    paths = ["auth/token/create", *(f"auth/token/create/{role}" for role in roles)]
    with vault_errors(f"capabilities of token accessor {accessor}"):
        try:
            response = client.adapter.post("/v1/sys/capabilities-accessor", json={"accessor": accessor, "paths": paths})
        except hvac.exceptions.InvalidRequest as error:
            if is_invalid_accessor(error):
                return None
            if INVALID_TOKEN in str(error):
                # OpenBao will not evaluate a token whose entity is disabled (containment does that first). It
                # cannot create tokens now, but may have before: its tree is looked for, as an upper bound.
                return True
            raise ActionFailed(f"capabilities of token accessor {accessor}: {str(error)[:300]}") from error
    data = read_data(response)
    return any(_CREATE_CAPABILITIES & {str(cap) for cap in data.get(path) or ()} for path in paths)


@dataclass
class TokenCreators:
    """Whether tokens may create tokens, asked once per ACL: capabilities-accessor evaluates a token's own policies
    with its entity's (and its groups'), so tokens sharing both get the same answer. Token roles are listed once."""

    client: hvac.Client
    _roles: list[str] | None = None
    _answers: dict[tuple[frozenset[str], str], bool] = field(default_factory=dict)

    def can_create(self, token: TokenState) -> bool:
        key = (token.policies, token.entity_id)
        if key in self._answers:
            return self._answers[key]
        self._roles = list_role_names(self.client, TtlTargetType.TOKEN_ROLE) if self._roles is None else self._roles
        answer = _create_capability(self.client, token.accessor, self._roles)
        if answer is None:
            return False  # gone since the scan: nothing can die with it, and its ACL's answer is still unknown
        self._answers[key] = answer
        return answer


def could_descend_from(candidate: TokenState, parent: TokenState) -> bool:
    """Whether token/create could have made `candidate` somewhere under `parent`. Pure."""
    if candidate.accessor == parent.accessor or candidate.orphan or candidate.entity_id != parent.entity_id:
        return False
    if not candidate.path.startswith("auth/token/create"):
        return False
    born, parent_born = parse_vault_time(candidate.issue_time), parse_vault_time(parent.issue_time)
    if born is not None and parent_born is not None and born < parent_born:
        return False
    through_role = candidate.path.startswith("auth/token/create/")
    return through_role or "root" in parent.policies or candidate.policies <= parent.policies | {"default"}


def ran_out_since(token: TokenState, seconds: float) -> bool:
    """Whether `token`'s TTL, as read, may have run out `seconds` later: Vault counts TTLs in whole seconds, down to
    0 for a token expiring now (a token that never expires reads 0 too, with no expire time). Pure."""
    return token.expires and token.ttl_seconds <= seconds + 1


def find_possible_child_tokens(
    client: hvac.Client,
    parent: TokenState,
    *,
    live: Callable[[], Sequence[TokenState]] | None = None,
    creators: TokenCreators | None = None,
) -> list[TokenState]:
    """Every live token that may die with `parent`'s revocation: empty when it cannot create tokens.

    `parent` is the caller's own lookup of the token; `live` gives a scan (scan_live_tokens) to share between
    several parents, called only when needed; `creators`, the answers to "may it create tokens" shared likewise.
    """
    if not (creators or TokenCreators(client)).can_create(parent):
        return []
    tokens = live() if live is not None else scan_live_tokens(client)
    return [state for state in tokens if could_descend_from(state, parent)]
