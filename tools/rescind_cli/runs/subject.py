"""What a run is about: one workload (everything it holds), or named credentials; and the request built from it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from rescind.exceptions import InvalidInput

if TYPE_CHECKING:
    from rescind.models import CredentialRef
    from rescind.response.types import ResponseRequest


@dataclass(frozen=True)
class Subject:
    workload_id: str  # the workload, or the first REF's text form
    refs: tuple[CredentialRef, ...]
    from_workload: bool

    @property
    def text(self) -> str:
        if self.from_workload:
            return f"workload {self.workload_id}"
        return f"{len(self.refs)} named credential(s)"


def parse_subject(workload: str | None, credentials: Sequence[str] | None) -> Subject:
    from rescind.models.refs import format_ref, parse_ref
    from rescind.response.types import workload_id_problem

    texts = [text for text in (credentials or []) if text is not None]
    if workload and texts:
        raise InvalidInput("give --workload ID or --credential REF, not both")
    if workload is not None:
        workload_id = workload.strip()
        problem = workload_id_problem(workload_id) if len(workload_id) <= 500 else "longer than 500 characters"
        if problem is not None:
            raise InvalidInput(f"--workload must name one workload (a SPIFFE ID, an ARN or a cloud id): {problem}")
        return Subject(workload_id, (), True)
    if not texts:
        raise InvalidInput("say what to act on: --workload ID, or --credential REF (repeatable)")
    refs: list[CredentialRef] = []
    for text in texts:
        ref = parse_ref(text)
        if ref not in refs:
            refs.append(ref)
    return Subject(format_ref(refs[0]), tuple(refs), False)


def manual_incident_id(subject: Subject, reason: str, moment: datetime) -> str:
    """`manual-` and a short hash of what is revoked, why and when: unique per start, stable in the ledger."""
    from rescind.offboarding.manual import manual_incident_id as incident_id_of

    return incident_id_of(subject.refs, subject.workload_id, reason, moment)


def build_request(
    subject: Subject, *, reason: str, ticket: str | None, requested_by: str, dry_run: bool
) -> ResponseRequest:
    """The manual machine's input, built here for a plan preview and for direct mode (no stack). With a stack, the
    run is started by StartManualRevocationFunction, which builds it with the request's signer as requester."""
    from rescind.offboarding.manual import build_manual_request

    return build_manual_request(
        workload_id=subject.workload_id if subject.from_workload else None,
        credentials=subject.refs,
        reason=reason,
        ticket=ticket,
        requested_by=requested_by[:200],
        dry_run=dry_run,
    )
