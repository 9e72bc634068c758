"""The contract every credential kind implements: act, then verify by reading the real state."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from rescind.models import Action, ActOutcome, CredentialKind, CredentialRef, Evidence


@runtime_checkable
class CredentialHandler(Protocol):
    """One per credential kind. `act` changes state; `verify` only reads it.

    `act` must be idempotent: acting on a credential that is already dead or already in the wanted state
    returns `ActOutcome(changed=False, ...)` instead of raising. Transient backend failures raise
    `TransientError` subclasses so the caller can retry.
    """

    kinds: frozenset[CredentialKind]

    def act(self, action: Action) -> ActOutcome: ...

    def verify(self, action: Action) -> Evidence: ...

    def exists(self, ref: CredentialRef) -> bool | None:
        """Does the reference name a credential this system holds (alive, or ended but still on record)?

        Only reads. None when it cannot be known before acting. A reference that names nothing (a typo) is
        False, so nobody reports "already absent" for a credential that never existed.
        """
        ...
