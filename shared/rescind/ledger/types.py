"""What the audit ledger stores: incidents, action attempts, and closures. References only, never values."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.models import ActionResult, CredentialRef, Evidence, Plan

IncidentId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,80}$")]


class Trigger(BaseModel):
    """Where an incident came from. It names the event and what it pointed at, not what it contained."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    source: Annotated[str, Field(min_length=1, max_length=200)]  # e.g. "aws.health", "rescind.cli"
    detail_type: Annotated[str, Field(min_length=1, max_length=200)]
    event_id: Annotated[str, Field(min_length=1, max_length=200)]
    workload_id: Annotated[str, Field(max_length=500)] | None = None
    references: tuple[CredentialRef, ...] = ()
    requested_by: Annotated[str, Field(max_length=200)] | None = None
    reason: Annotated[str, Field(max_length=500)] | None = None
    ticket: Annotated[str, Field(max_length=200)] | None = None


class IncidentStatus(StrEnum):
    COMPLETED = "completed"  # every action verified
    PARTIAL = "partial"  # something is still alive
    FAILED = "failed"  # the plan, the approval or the verification failed: nothing is named alive or dead
    UNRESOLVED = "unresolved"  # the trigger could not be resolved to a credential
    REFUSED = "refused"  # a guard stopped it: hold, protection, or a denied approval
    RECORDED = "recorded"  # a real event that asks for no action: a sample finding, an alert resolved or inactive
    REJECTED = "rejected"  # the event was refused as malformed or of an unknown kind: nothing was acted on
    DRY_RUN = "dry_run"


class IncidentRecord(BaseModel):
    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    incident_id: IncidentId
    trigger: Trigger
    plan: Plan
    opened_at: AwareDatetime


class ActionAttemptRecord(BaseModel):
    """One attempt at one action. `attempt_id` is given by the caller (an execution and retry count), so
    a re-delivered write of the same attempt lands once."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    incident_id: IncidentId
    attempt_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-.:]{1,200}$")]
    result: ActionResult


class CredentialState(StrEnum):
    """What the ledger knows of one planned credential when a run closes."""

    DEAD = "dead"  # read back dead: by the run's verification, or by its own action's read-back
    ALIVE = "alive"  # read back, and it still works
    UNKNOWN = "unknown"  # never read back (the run stopped before): it may well be alive


class ProofBeforeRun(BaseModel):
    """Where a credential's end was proven before the run acted: the kill first's attempt in this incident's ledger
    (rescind.ledger.proofs), its read-back evidence, and the Vault (address) or AWS account it acted on."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    attempt_id: Annotated[str, Field(max_length=200)]
    evidence: Annotated[tuple[Evidence, ...], Field(min_length=1)]
    acted_on: Annotated[str, Field(max_length=500)]


class CredentialStanding(BaseModel):
    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    target: CredentialRef
    state: CredentialState
    # Set when it is dead by the kill first's read-back, which the run neither repeated nor read again.
    proven_before_run: ProofBeforeRun | None = None


class IncidentClosure(BaseModel):
    """How one run of an incident ended. `credentials` has one standing per planned credential for a run
    that acted (verified or failed); closures written before it existed, and decisions (refused, dry run),
    have none."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    incident_id: IncidentId
    status: IncidentStatus
    still_alive: tuple[CredentialRef, ...] = ()
    closed_at: AwareDatetime
    summary: Annotated[str, Field(max_length=2000)] = ""
    credentials: tuple[CredentialStanding, ...] = ()

    def in_state(self, state: CredentialState) -> tuple[CredentialRef, ...]:
        return tuple(standing.target for standing in self.credentials if standing.state is state)

    @property
    def alive_is_unknown(self) -> bool:
        """True when the closure cannot say that nothing is alive: some credential was never read back, or
        a failed run recorded no standing at all."""
        if self.credentials:
            return bool(self.in_state(CredentialState.UNKNOWN))
        return self.status is IncidentStatus.FAILED


class ApprovalVerdict(StrEnum):
    APPROVED = "approved"
    DENIED = "denied"


class ApprovalDecision(BaseModel):
    """Who answered a pending approval, and how. Written before the answer is sent to the execution."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    incident_id: IncidentId
    execution_arn: Annotated[str, Field(min_length=1, max_length=2048)]
    verdict: ApprovalVerdict
    decided_by: Annotated[str, Field(min_length=1, max_length=2048)]  # the caller's ARN
    reason: Annotated[str, Field(max_length=1000)] = ""
    decided_at: AwareDatetime


class IncidentView(BaseModel):
    """Everything the ledger holds on one incident, read back in order."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    incident: IncidentRecord | None
    attempts: tuple[ActionAttemptRecord, ...]
    closure: IncidentClosure | None
    approvals: tuple[ApprovalDecision, ...] = ()


class ResponseClaim(BaseModel):
    """The answer to "may this credential's response start?": the incident it belongs to, and whether it is new."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    incident_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,80}$")]
    is_new: bool
    claimed_at: AwareDatetime


def incident_view_from_records(records: Iterable[tuple[str, str]]) -> IncidentView:
    """One incident's (record type, JSON body) pairs, in key order, as a view: every ledger store reads through it.

    Closures come oldest first, so the last one read is the newest and wins.
    """
    incident: IncidentRecord | None = None
    attempts: list[ActionAttemptRecord] = []
    closure: IncidentClosure | None = None
    approvals: list[ApprovalDecision] = []
    for record_type, body in records:
        if record_type == "incident":
            incident = IncidentRecord.model_validate_json(body)
        elif record_type == "attempt":
            attempts.append(ActionAttemptRecord.model_validate_json(body))
        elif record_type == "closure":
            closure = IncidentClosure.model_validate_json(body)
        elif record_type == "approval":
            approvals.append(ApprovalDecision.model_validate_json(body))
    attempts.sort(key=lambda attempt: attempt.result.started_at)
    return IncidentView(incident=incident, attempts=tuple(attempts), closure=closure, approvals=tuple(approvals))
