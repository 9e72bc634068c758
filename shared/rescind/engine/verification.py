"""Verifying a whole plan after it ran: every target read back, and the list of what is still alive."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.discovery import DiscoveryScope
from rescind.engine.executor import ActionEngine
from rescind.engine.scope import TargetOutOfScope, check_target_in_scope
from rescind.models import Action, CredentialRef, Evidence


class ProofSource(StrEnum):
    """Where a target's evidence came from."""

    ACT_READ_BACK = "act_read_back"  # the acting task's own read-back after it acted (rescind.engine.batch)
    VERIFY_READ = "verify_read"  # read again here
    NOT_READ = "not_read"  # outside the scope: not read at all


class VerifiedTarget(BaseModel):
    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    action_id: str
    target: CredentialRef
    evidence: Evidence
    source: ProofSource = ProofSource.VERIFY_READ


class VerificationReport(BaseModel):
    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    verified: tuple[VerifiedTarget, ...]
    still_alive: tuple[CredentialRef, ...]

    @property
    def all_dead(self) -> bool:
        return not self.still_alive

    def count(self, source: ProofSource) -> int:
        return sum(1 for target in self.verified if target.source is source)


def verify_actions(
    engine: ActionEngine,
    actions: Sequence[Action],
    *,
    scope: DiscoveryScope | None = None,
    proven: Mapping[str, Evidence] | None = None,
) -> VerificationReport:
    """Read back every action's target. Only reads; a transient error is raised for the caller to retry.

    With `scope`, a target outside the configured mounts is not read at all (the acting task refused it, so it
    was not ended): it is reported alive, with evidence saying why it was not read. The targets are read kind by
    kind (ActionEngine.verify_each): a PKI mount's CRL is fetched once for all its certificates.

    `proven` maps action ids to the confirmed evidence of the act's own read-back (rescind.engine.batch.proven_for
    checked it names the same target): those targets are dead without another read. Only the rest are read.
    """
    readable: list[Action] = []
    refused: dict[str, Evidence] = {}
    from_act = {key: evidence for key, evidence in (proven or {}).items() if evidence.confirmed}
    for action in actions:
        if action.action_id in from_act:
            continue
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
        if action.action_id in from_act:
            evidence, source = from_act[action.action_id], ProofSource.ACT_READ_BACK
        elif action.action_id in refused:
            evidence, source = refused[action.action_id], ProofSource.NOT_READ
        else:
            evidence, source = read[action.action_id], ProofSource.VERIFY_READ
        verified.append(
            VerifiedTarget(action_id=action.action_id, target=action.target, evidence=evidence, source=source)
        )
        if not evidence.confirmed:
            alive.append(action.target)
    return VerificationReport(verified=tuple(verified), still_alive=tuple(alive))
