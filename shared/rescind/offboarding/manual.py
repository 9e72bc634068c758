"""Manual revocation runs: what a responder asks for, and starting it with the requester IAM authenticated.

`rescind revoke` (stack and local-stack targets) sends the request to StartManualRevocationFunction's function URL
(AuthType AWS_IAM). Lambda names the signer in the request context; that principal, never the body, becomes the
run's `requested_by`, which AnswerApprovalFunction later refuses as an approver. Responders hold no
states:StartExecution on the manual machine, so the function is the only way a manual run starts.
Direct mode (no stack) builds the same request in-process with `build_manual_request`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rescind.approval import CallerIdentity, json_body_of
from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.exceptions import InvalidInput
from rescind.ledger.types import Trigger
from rescind.response.start import StartStatus, StepFunctionsStarter, start_execution_once
from rescind.response.types import ResponseRequest, WorkloadId
from rescind.validation import describe_validation_error, parse_model

if TYPE_CHECKING:
    from rescind.ledger.base import Ledger
    from rescind.models import CredentialRef

MANUAL_SOURCE = "rescind.cli"
MANUAL_DETAIL_TYPE = "Manual Revocation"
MAX_CREDENTIALS_PER_RUN = 100
REQUESTED_BY_MAX_LENGTH = 200  # Trigger.requested_by


def manual_incident_id(named: Sequence[CredentialRef], workload_id: str, reason: str, moment: datetime) -> str:
    """`manual-` and a short hash of what is revoked, why and when: unique per start, stable in the ledger."""
    from rescind.models.refs import format_ref

    what = "\n".join(format_ref(ref) for ref in named) or workload_id
    digest = hashlib.sha256(f"{what}\n{reason}\n{moment.isoformat()}".encode()).hexdigest()[:20]
    return f"manual-{digest}"


def build_manual_request(
    *,
    workload_id: str | None,
    credentials: Sequence[CredentialRef],
    reason: str,
    ticket: str | None,
    requested_by: str,
    dry_run: bool,
    moment: datetime | None = None,
) -> ResponseRequest:
    """The manual state machine's input: a workload (everything it holds) or the named credentials only."""
    from rescind.models.refs import format_ref

    if bool(workload_id) == bool(credentials):
        raise InvalidInput("a manual run names a workload or credentials, exactly one of the two")
    started_at = moment or datetime.now(UTC)
    subject = workload_id or format_ref(credentials[0])
    incident_id = manual_incident_id(credentials, subject, reason, started_at)
    try:
        return ResponseRequest(
            incident_id=incident_id,
            workload_id=subject,
            reason=reason,
            trigger=Trigger(
                source=MANUAL_SOURCE,
                detail_type=MANUAL_DETAIL_TYPE,
                event_id=incident_id,
                workload_id=workload_id,
                references=tuple(credentials),
                requested_by=requested_by,
                reason=reason,
                ticket=ticket,
            ),
            terminated_at=started_at,
            dry_run=dry_run,
            credentials=tuple(credentials),
        )
    except ValidationError as error:
        raise InvalidInput(f"invalid run: {describe_validation_error(error)}") from None


class ManualRunBody(BaseModel):
    """The body `rescind revoke` posts. Nothing in it says who asks: that is the request's signer."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    workload: WorkloadId | None = None
    # Text references (`vault-token:accessor:...`, `pki:<mount>:<serial>`), as `rescind revoke --credential`.
    credentials: Annotated[tuple[Annotated[str, Field(min_length=1, max_length=2048)], ...], Field(max_length=100)] = ()
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    ticket: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    dry_run: bool = False

    @model_validator(mode="after")
    def _one_subject_and_a_reason(self) -> ManualRunBody:
        if (self.workload is None) == (not self.credentials):
            raise ValueError("name a workload or credentials, exactly one of the two")
        if not self.reason.strip():
            raise ValueError("a reason is required: it goes into the ledger")
        return self


class ManualRunStarted(BaseModel):
    """The function's answer: the run, which `rescind revoke` then follows."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    status: StartStatus
    incident_id: str
    execution_arn: str | None
    requested_by: str
    dry_run: bool


def manual_run_from_request(event: Any) -> ManualRunBody:
    """The body of a function URL request. `requested_by` is refused by name: a body cannot say who asks."""
    document = json_body_of(event)
    if isinstance(document, dict) and "requested_by" in document:
        raise InvalidInput("requested_by is not the body's to give: the run's requester is who signed the request")
    return parse_model(ManualRunBody, document, what="manual run")


def start_manual_revocation(
    body: ManualRunBody,
    caller: CallerIdentity,
    *,
    sfn: StepFunctionsStarter,
    ledger: Ledger,
    state_machine_arn: str,
    now: datetime | None = None,
) -> ManualRunStarted:
    """Start the manual revocation run that `body` asks for, requested by `caller`, once."""
    from rescind.models.refs import parse_ref

    requested_by = caller.principal_arn
    if len(requested_by) > REQUESTED_BY_MAX_LENGTH:
        # Cut short it could no longer be matched against the approver: refuse rather than record less.
        raise InvalidInput(f"the caller's ARN is longer than the {REQUESTED_BY_MAX_LENGTH} characters the ledger keeps")
    refs: list[CredentialRef] = []
    for text in body.credentials:
        ref = parse_ref(text)
        if ref not in refs:
            refs.append(ref)
    request = build_manual_request(
        workload_id=body.workload,
        credentials=refs,
        reason=" ".join(body.reason.split()),
        ticket=(body.ticket or "").strip() or None,
        requested_by=requested_by,
        dry_run=body.dry_run,
        moment=now,
    )
    status, execution_arn = start_execution_once(
        sfn, state_machine_arn, incident_id=request.incident_id, payload=request.model_dump_json(), ledger=ledger
    )
    return ManualRunStarted(
        status=status,
        incident_id=request.incident_id,
        execution_arn=execution_arn,
        requested_by=requested_by,
        dry_run=body.dry_run,
    )
