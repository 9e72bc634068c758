"""A token's tree from the issuance index: every descendant token, known from the parent accessor each issuance
records (`auth.accessor` of the request that created it).

Vault names neither a token's parent nor its children; the live bound (`rescind.vault.tokens`) guesses from what
the token could have created, and sees nothing under a token whose policy no longer lets it create tokens, or a
child given another entity by a token role. The index knows what each token did create, so the planner lists that
tree in the token's revoke action (`params.child_tokens`): the guard reads each listed child's hold and owner, the
blast-radius cap counts them (neither for a leak: the tree is the attacker's to grow), and the act step reads each
one back after the revocation.

It needs the audit device's `hmac_accessor=false`: with accessors HMAC'd the index knows no parent in the clear,
and the tree is empty (the live bound still applies).
"""

from __future__ import annotations

from collections import deque
from datetime import datetime
from typing import TYPE_CHECKING

from rescind.concurrent_reads import DEFAULT_READ_WORKERS, read_each
from rescind.models import Action, ActionKind, CredentialKind, Plan, VaultTokenRef
from rescind.models.actions import MAX_LISTED_CHILD_TOKENS

if TYPE_CHECKING:
    import hvac

    from rescind.issuance.base import IssuanceIndex


def indexed_descendant_tokens(
    index: IssuanceIndex, accessor: str, *, now: datetime, limit: int = MAX_LISTED_CHILD_TOKENS
) -> list[str]:
    """The accessors of every token the index shows created under `accessor`, at any depth, breadth first, not
    seen revoked or expired; at most `limit`. Reads the index only."""
    found: list[str] = []
    seen = {accessor}
    parents = deque([accessor])
    while parents and len(found) < limit:
        for record in index.by_parent(parents.popleft()):
            ref = record.credential_ref() if record.kind is CredentialKind.VAULT_TOKEN else None
            if not isinstance(ref, VaultTokenRef) or ref.accessor in seen or not record.is_alive(now):
                continue
            seen.add(ref.accessor)
            found.append(ref.accessor)
            parents.append(ref.accessor)
            if len(found) >= limit:
                break
    return found


def list_indexed_child_tokens(
    plan: Plan, vault: hvac.Client, index: IssuanceIndex, *, workers: int = DEFAULT_READ_WORKERS
) -> tuple[Plan, int]:
    """The plan with each token revocation listing its live descendant tokens (looked up, so a child the log did not
    see end is not listed), and how many distinct tokens were listed. Reads only, `workers` token trees at a time."""
    from rescind.models.results import utc_now
    from rescind.vault.tokens import lookup_token_by_accessor

    now = utc_now()

    def live_children(action: Action) -> tuple[str, ...]:
        if action.kind is not ActionKind.REVOKE or not isinstance(action.target, VaultTokenRef):
            return ()
        return tuple(
            child
            for child in indexed_descendant_tokens(index, action.target.accessor, now=now)
            if lookup_token_by_accessor(vault, child) is not None
        )

    listed: set[str] = set()
    actions: list[Action] = []
    for action, children in zip(plan.actions, read_each(live_children, plan.actions, workers=workers), strict=True):
        if children:
            listed.update(children)
            params = action.params.model_copy(update={"child_tokens": children})
            action = Action(kind=action.kind, target=action.target, reason=action.reason, params=params)
        actions.append(action)
    return Plan(plan_id=plan.plan_id, actions=tuple(actions), dry_run=plan.dry_run), len(listed)
