"""What every response run carries: its input, the guard's decision, and the plan task's output.

Offboarding, leak response and manual revocation all run statemachines/response.asl.json on these shapes; the
field names are the JSON the ASL, the ledger and recorded executions carry.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.ledger.types import Trigger
from rescind.models import Action, CredentialRef

_SPIFFE_ID = re.compile(r"spiffe://[a-z0-9._-]{1,255}(?:/[A-Za-z0-9._-]+)*")
_ARN = re.compile(
    r"arn:aws(?:-[a-z]+)*:[a-z0-9-]{1,64}:(?:[a-z]{2}(?:-[a-z]+)+-[0-9])?:(?:[0-9]{12})?:[A-Za-z0-9_./:@+=,-]+"
)
_OTHER_WORKLOAD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./:@+=,-]*")
_WILDCARDS = frozenset("*?[]{}")
_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/")


def workload_id_problem(workload_id: str) -> str | None:
    """Why this is not exactly one workload's id (a wildcard, traversal, look-alike characters), or None."""
    if not workload_id.strip():
        return "empty"
    if not workload_id.isascii() or not workload_id.isprintable() or any(c.isspace() for c in workload_id):
        return "must be printable ASCII without spaces"
    if _WILDCARDS.intersection(workload_id):
        return "wildcards are not allowed"
    if "%" in workload_id or "\\" in workload_id:
        return "escapes are not allowed"
    body = workload_id.split("://", 1)[-1]
    if any(segment in (".", "..") for segment in body.split("/")):
        return "path traversal is not allowed"
    lowered = workload_id.lower()
    if lowered.startswith("spiffe:"):
        return None if _SPIFFE_ID.fullmatch(workload_id) else "not a valid SPIFFE ID"
    if lowered.startswith("arn:"):
        return None if _ARN.fullmatch(workload_id) else "not a valid ARN"
    if _URI_SCHEME.match(workload_id):
        # "spifee:/td/x" is a mistyped SPIFFE ID, not a cloud id: taking it for one would name nothing, silently.
        return "a URI that is not a SPIFFE ID (spiffe://trust-domain/path)"
    return None if _OTHER_WORKLOAD_ID.fullmatch(workload_id) else "not a SPIFFE ID, an ARN or a cloud id"


def _valid_workload_id(value: str) -> str:
    problem = workload_id_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


WorkloadId = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_valid_workload_id)]


class ResponseRequest(BaseModel):
    """A response run's input (offboarding, leak response, manual revocation). `incident_id` is the execution name."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    incident_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,80}$")]
    workload_id: WorkloadId
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    trigger: Trigger
    terminated_at: AwareDatetime
    dry_run: bool = False
    # A manual run names its credentials: then only these are planned, and nothing is discovered.
    credentials: tuple[CredentialRef, ...] = ()


class GuardDecision(StrEnum):
    PROCEED = "proceed"
    NEEDS_APPROVAL = "needs_approval"  # above the blast-radius cap, or a database root rotation
    REFUSE = "refuse"  # a protected workload, or a hold on something it holds
    NOTHING_TO_DO = "nothing_to_do"
    DRY_RUN = "dry_run"


class ResponsePlan(BaseModel):
    """The plan task's output: what the guard decided, and the actions split into contain and the rest."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    incident_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,80}$")]
    workload_id: WorkloadId
    decision: GuardDecision
    decision_reason: Annotated[str, Field(max_length=1000)]
    containment: tuple[Action, ...]  # reversible: disable the entity, deactivate keys
    actions: tuple[Action, ...]  # rotate, revoke, then delete
    counts_by_kind: dict[str, int]
    # Planned, and already proven done before the run (a leak's kill first, read back: rescind.ledger.proofs): in
    # neither list above, so the run does not act on them or read them again; the closure names them dead.
    proven_before_run: tuple[Action, ...] = ()
