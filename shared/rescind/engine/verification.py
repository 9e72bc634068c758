"""Verifying a whole plan after it ran: every target read back, and the list of what is still alive."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from rescind.discovery import DiscoveryScope
from rescind.engine.executor import ActionEngine
from rescind.engine.scope import TargetOutOfScope, check_target_in_scope
from rescind.models import Action, CredentialRef, Evidence


class VerifiedTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action_id: str
    target: CredentialRef
    evidence: Evidence


class VerificationReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    verified: tuple[VerifiedTarget, ...]
    still_alive: tuple[CredentialRef, ...]

    @property
    def all_dead(self) -> bool:
        return not self.still_alive


def verify_actions(
    engine: ActionEngine, actions: Sequence[Action], *, scope: DiscoveryScope | None = None
) -> VerificationReport:
    """Read back every action's target. Only reads; a transient error is raised for the caller to retry.

    With `scope`, a target outside the configured mounts is not read at all (the acting task refused it, so it
    was not ended): it is reported alive, with evidence saying why it was not read. The targets are read kind by
    kind (ActionEngine.verify_each): a PKI mount's CRL is fetched once for all its certificates.
    """
    readable: list[Action] = []
    refused: dict[str, Evidence] = {}
    for action in actions:
        try:
            if scope is not None:
                check_target_in_scope(action.target, scope)
        except TargetOutOfScope as out_of_scope:
            refused[action.action_id] = Evidence(
                check="target in the configured scope", observed=str(out_of_scope)[:1000], confirmed=False
            )
        else:
            readable.append(action)
    read = dict(zip((action.action_id for action in readable), engine.verify_each(readable), strict=True))
    verified: list[VerifiedTarget] = []
    alive: list[CredentialRef] = []
    for action in actions:
        evidence = refused.get(action.action_id) or read[action.action_id]
        verified.append(VerifiedTarget(action_id=action.action_id, target=action.target, evidence=evidence))
        if not evidence.confirmed:
            alive.append(action.target)
    return VerificationReport(verified=tuple(verified), still_alive=tuple(alive))
