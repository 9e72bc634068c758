"""The contract every credential kind implements: act, then verify by reading the real state."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Generic, Protocol, TypeVar, runtime_checkable

from rescind.exceptions import UnsupportedAction
from rescind.holds import GuardFacts
from rescind.models import Action, ActionKind, ActOutcome, CredentialKind, CredentialRef, Evidence


@runtime_checkable
class CredentialHandler(Protocol):
    """One per credential kind. `act` changes state; `verify` only reads it.

    `act` must be idempotent: acting on a credential that is already dead or already in the wanted state
    returns `ActOutcome(changed=False, ...)` instead of raising. Transient backend failures raise
    `TransientError` subclasses so the caller can retry. `seen`: what this action's own guard read of the target
    moments before (rescind.guard.refuse_guarded_target), which the act takes rather than make the same request
    again (`seen_state`); None: nothing was read, the act reads for itself.
    """

    kinds: frozenset[CredentialKind]

    def act(self, action: Action, *, seen: GuardFacts | None = None) -> ActOutcome: ...

    def verify(self, action: Action) -> Evidence: ...

    def exists(self, ref: CredentialRef) -> bool | None:
        """Does the reference name a credential this system holds (alive, or ended but still on record)?

        Only reads. None when it cannot be known before acting. A reference that names nothing (a typo) is
        False, so nobody reports "already absent" for a credential that never existed.
        """
        ...


RefT = TypeVar("RefT")
ClientT = TypeVar("ClientT")
StateT = TypeVar("StateT")


def seen_state(seen: GuardFacts | None, state_type: type[StateT], read: Callable[[], StateT | None]) -> StateT | None:
    """The target's state as this action's guard read it moments before (`seen`: found, or found absent), else
    `read()`: one action makes a request of its target once, not once for its guard and again for its act.

    Only a read before any change may come from here; a read-back after the act is always a new request.
    """
    if seen is not None and seen.found is False:
        return None
    if seen is not None and seen.found and isinstance(seen.state, state_type):
        return seen.state
    return read()


@dataclass(frozen=True)
class Step(Generic[RefT]):
    """What one action kind does to a reference, and how it is read back. `act` takes what the action's guard read
    of the target (None: nothing), for its read before any change (`seen_state`)."""

    act: Callable[[RefT, Action, GuardFacts | None], ActOutcome]
    verify: Callable[[RefT, Action], Evidence]

    @classmethod
    def reads_alone(
        cls, act: Callable[[RefT, Action], ActOutcome], verify: Callable[[RefT, Action], Evidence]
    ) -> Step[RefT]:
        """A step whose act makes no request its guard made (its guard reads nothing, or something else): it is
        not given what the guard read."""
        return cls(lambda ref, action, _seen: act(ref, action), verify)

    @classmethod
    def on_ref(
        cls,
        client: ClientT,
        act: Callable[[ClientT, RefT], ActOutcome],
        verify: Callable[[ClientT, RefT], Evidence],
    ) -> Step[RefT]:
        """A step whose act and verify need only the client and the reference, not the action's parameters (nor
        what the guard read: `reads_alone`)."""
        return cls.reads_alone(lambda ref, _action: act(client, ref), lambda ref, _action: verify(client, ref))


class KindHandler(Generic[RefT]):
    """A CredentialHandler for one kind: each action kind it supports maps to its Step; any other is refused here.

    Subclasses pass their reference model and steps, and implement `look_up` (the read behind `exists`).
    """

    def __init__(self, kind: CredentialKind, ref_type: type[RefT], steps: Mapping[ActionKind, Step[RefT]]) -> None:
        self.kinds: frozenset[CredentialKind] = frozenset({kind})
        self.steps: Mapping[ActionKind, Step[RefT]] = MappingProxyType(dict(steps))
        self._ref_type = ref_type

    def _dispatch(self, action: Action) -> tuple[RefT, Step[RefT]]:
        target, step = action.target, self.steps.get(action.kind)
        if step is None or not isinstance(target, self._ref_type):
            raise UnsupportedAction(f"{type(self).__name__} cannot {action.kind!s} a {action.target.kind!s}")
        return target, step

    def act(self, action: Action, *, seen: GuardFacts | None = None) -> ActOutcome:
        ref, step = self._dispatch(action)
        return step.act(ref, action, seen)

    def verify(self, action: Action) -> Evidence:
        ref, step = self._dispatch(action)
        return step.verify(ref, action)

    def verify_many(self, actions: Sequence[Action]) -> list[Evidence]:
        """Every action's read-back, in order. A kind whose proof is shared by many targets (a PKI mount's CRL)
        reads that once for all of them."""
        return [self.verify(action) for action in actions]

    def exists(self, ref: CredentialRef) -> bool | None:
        return self.look_up(ref) if isinstance(ref, self._ref_type) else False

    def look_up(self, ref: RefT) -> bool | None:
        """Whether the credential is on record (see CredentialHandler.exists); None when it cannot be known."""
        raise NotImplementedError
