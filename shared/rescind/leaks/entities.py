"""Whether a leaked token's identity entity holds another live token: the leak run disables the entity too only
with proof that it holds nothing else (a workload's other sessions are never taken down).

1. The issuance index names the entity's tokens (its `ENTITY#` pointers): one `lookup-accessor` finding one of them
   alive, and still of the entity, proves the entity holds something else, in O(the entity's tokens), no scan.
2. The index naming none is no proof: the audit feed lags by seconds, and tokens indexed before the pointer existed
   have none. Every live token is then looked up, a bounded pool of them at a time, and the scan stops as soon as
   each entity left is seen holding one. Only an entity no live token names after the whole scan holds nothing
   else: O(every token on the server), after the kill, never before it.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from rescind.concurrent_reads import DEFAULT_READ_WORKERS, reads_as_answered
from rescind.models import CredentialKind, VaultEntityRef, VaultTokenRef
from rescind.models.results import utc_now
from rescind.vault.tokens import TokenState, list_token_accessors, lookup_token_by_accessor

if TYPE_CHECKING:
    import hvac

    from rescind.issuance.base import IssuanceIndex
    from rescind.response.types import ResponseRequest


def entities_holding_nothing_else(
    request: ResponseRequest,
    vault: hvac.Client,
    *,
    index: IssuanceIndex | None = None,
    workers: int = DEFAULT_READ_WORKERS,
) -> frozenset[str]:
    """The located tokens' entities that hold no live token but the leaked ones (killed first, or not yet)."""
    entities = {ref.entity_id for ref in request.credentials if isinstance(ref, VaultEntityRef)}
    if not entities:
        return frozenset()
    leaked = {ref.accessor for ref in request.credentials if isinstance(ref, VaultTokenRef)}
    looked_up: dict[str, TokenState | None] = dict.fromkeys(leaked)  # the leaked tokens never count
    if index is not None:
        entities -= {entity for entity in entities if _indexed_token_held(vault, index, entity, looked_up)}
    if entities:
        entities -= _held_by_scan(vault, entities, looked_up, workers=workers)
    return frozenset(entities)


def _indexed_token_held(
    vault: hvac.Client, index: IssuanceIndex, entity_id: str, looked_up: dict[str, TokenState | None]
) -> bool:
    """Whether a token the index shows issued to the entity, not seen revoked or expired, is alive and of it (newest
    first: the likeliest alive). Each lookup is kept, so the scan does not make it again."""
    now = utc_now()
    records = sorted(index.by_entity(entity_id), key=lambda record: record.issued_at, reverse=True)
    for record in records:
        ref = record.credential_ref() if record.kind is CredentialKind.VAULT_TOKEN else None
        if not isinstance(ref, VaultTokenRef) or ref.accessor in looked_up or not record.is_alive(now):
            continue
        state = looked_up[ref.accessor] = lookup_token_by_accessor(vault, ref.accessor)
        if state is not None and state.entity_id == entity_id:
            return True
    return False


def _held_by_scan(
    vault: hvac.Client, entities: set[str], looked_up: dict[str, TokenState | None], *, workers: int
) -> set[str]:
    """Which of `entities` a live token names: every token not looked up yet, until each entity is seen."""
    held = {state.entity_id for state in looked_up.values() if state is not None} & entities
    if held == entities:
        return held
    accessors = [accessor for accessor in list_token_accessors(vault) if accessor not in looked_up]
    states = reads_as_answered(partial(lookup_token_by_accessor, vault), accessors, workers=workers)
    try:
        for state in states:
            if state is not None and state.entity_id in entities:  # None: the token died since the listing
                held.add(state.entity_id)
                if held == entities:
                    break  # the rest of the scan could only find more of what is known
    finally:
        states.close()  # stops the lookups not yet made
    return held
