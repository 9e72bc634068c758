"""The orphan sweep: credentials whose workload no longer exists are offboarded through the state machine.

A workload is an orphan when it has credentials recorded in the inventory and *every* cloud resource bound to
it is gone (an Auto Scaling group that lost one of three instances still runs the workload):
  - EC2 instance: DescribeInstances says terminated or shutting-down, or does not know the id;
  - ECS task: DescribeTasks says STOPPED, or does not know the task (or its cluster);
  - Lambda function: GetFunction answers ResourceNotFoundException.
Each resource is read in the account and region of its binding (rescind.aws.workloads).

Grace: the workload must have been gone for `orphan_grace_minutes`. Gone since when: the time AWS reports
(the EC2 state transition time, the ECS task's stoppedAt) where there is one, otherwise the binding's
`seen_at`, the last time the inventory saw the resource alive. So with no reported time the first sweep that
finds the resource gone acts only if the inventory has not seen it alive within the grace period; a resource
bound moments ago that is not yet visible (eventual consistency) is never mistaken for an orphan.

The sweep never touches a credential. It starts the offboarding state machine with an ResponseRequest,
whose execution name is derived from the workload and the set of resources it ran as: a second sweep (or a
retried one) finds the execution already there (ALREADY), and a workload that comes back on new resources
and dies again gets a new offboarding. The state machine applies the guard (holds, the blast-radius cap).
Workloads in `protected_paths` (by id, or by any of their credentials) are SKIPPED before anything starts.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from rescind.aws.errors import aws_errors, error_code
from rescind.aws.workloads import cloud_resource_state
from rescind.exceptions import ActionFailed, TransientError
from rescind.inventory.types import WorkloadBinding
from rescind.ledger.types import Trigger
from rescind.models import CredentialRef, KvSecretRef
from rescind.models.refs import format_ref
from rescind.offboarding.types import offboarding_execution_name
from rescind.response.start import execution_arn_for
from rescind.response.types import ResponseRequest
from rescind.schedules.base import CheckpointStore, SweepProgress
from rescind.schedules.policy import SchedulePolicy
from rescind.schedules.types import Change, ChangeStatus, SweepName, SweepReport, SweepRequest

if TYPE_CHECKING:
    from rescind.aws.session import AwsClientFactory
    from rescind.inventory.base import Inventory
    from rescind.response.start import StepFunctionsStarter

TRIGGER_SOURCE = "rescind.schedules"
TRIGGER_DETAIL_TYPE = "Orphaned Workload"

# A Standard machine answers a start with the same name and input as a RUNNING execution with that execution.
_RUNNING_DUPLICATE_SLACK = timedelta(seconds=1)


# --- plan: which workloads are orphans --------------------------------------------------------------


def orphan_event_id(bindings: Sequence[WorkloadBinding]) -> str:
    """Names the set of resources the workload ran as: the same set gives the same execution name."""
    resources = "\n".join(sorted(f"{b.account_id}/{b.region}/{b.cloud_id}" for b in bindings))
    return f"orphan-sweep-{hashlib.sha256(resources.encode()).hexdigest()[:40]}"


def protection_of(policy: SchedulePolicy, workload_id: str, refs: Sequence[CredentialRef]) -> str | None:
    """What protects the workload: its id, or one of its credentials by text form, key or Vault path."""
    if policy.is_protected(workload_id):
        return f"workload {workload_id} is protected"
    for ref in refs:
        forms = [format_ref(ref), ref.key]
        if isinstance(ref, KvSecretRef):
            forms.append(f"{ref.mount}/{ref.path}")
        if any(policy.is_protected(form) for form in forms):
            return f"credential {format_ref(ref)} is protected"
    return None


# --- act: start the offboarding ---------------------------------------------------------------------


def start_orphan_offboarding(
    request: ResponseRequest, *, sfn_client: StepFunctionsStarter, state_machine_arn: str
) -> tuple[ChangeStatus, str | None]:
    """(STARTED or ALREADY, execution ARN). A start of an existing execution name starts nothing new."""
    requested_at = datetime.now(UTC)
    with aws_errors("states:StartExecution"):
        try:
            answer = sfn_client.start_execution(
                stateMachineArn=state_machine_arn, name=request.incident_id, input=request.model_dump_json()
            )
        except ClientError as error:
            if error_code(error) == "ExecutionAlreadyExists":
                return ChangeStatus.ALREADY, execution_arn_for(state_machine_arn, request.incident_id)
            raise
    started_at: Any = answer.get("startDate")
    execution_arn = str(answer.get("executionArn") or "") or None
    running_duplicate = (
        isinstance(started_at, datetime)
        and started_at.tzinfo is not None
        and started_at < requested_at - _RUNNING_DUPLICATE_SLACK
    )
    if running_duplicate:
        return ChangeStatus.ALREADY, execution_arn
    return ChangeStatus.STARTED, execution_arn


def run_orphan_sweep(
    request: SweepRequest,
    *,
    policy: SchedulePolicy,
    inventory: Inventory,
    aws: AwsClientFactory,
    sfn_client: StepFunctionsStarter,
    state_machine_arn: str,
    checkpoints: CheckpointStore,
    now: datetime,
) -> SweepReport:
    """One bounded, resumable pass over the inventory's workloads, in workload id order.

    Every start, planned start and failure counts towards the run's bound; the checkpoint is the last
    workload id examined. A dry run reads everything, starts nothing and reports PLANNED.
    """
    clock = time.monotonic()
    progress = SweepProgress(SweepName.ORPHANS, request, policy=policy, checkpoints=checkpoints, now=now)
    grace = timedelta(minutes=policy.orphan_grace_minutes)
    by_workload: dict[str, list[WorkloadBinding]] = {}
    for binding in inventory.bindings():
        by_workload.setdefault(binding.workload_id, []).append(binding)

    for workload_id in progress.walk(by_workload):
        change = _sweep_workload(
            workload_id,
            by_workload[workload_id],
            request=request,
            policy=policy,
            inventory=inventory,
            aws=aws,
            sfn_client=sfn_client,
            state_machine_arn=state_machine_arn,
            now=now,
            grace=grace,
        )
        if change is not None:
            counts = change.status in (ChangeStatus.STARTED, ChangeStatus.PLANNED, ChangeStatus.FAILED)
            progress.add(change, counts_as_action=counts)
    return progress.finish(now + timedelta(seconds=time.monotonic() - clock))


def _sweep_workload(
    workload_id: str,
    bindings: list[WorkloadBinding],
    *,
    request: SweepRequest,
    policy: SchedulePolicy,
    inventory: Inventory,
    aws: AwsClientFactory,
    sfn_client: StepFunctionsStarter,
    state_machine_arn: str,
    now: datetime,
    grace: timedelta,
) -> Change | None:
    """The change for one workload, or None when it is healthy, holds nothing, or is still in its grace."""
    try:
        refs = inventory.credentials_of(workload_id)
        if not refs:
            return None
        states = [cloud_resource_state(aws, binding) for binding in bindings]
        if any(state.alive for state in states):
            return None
        gone_since = max(state.gone_since or now for state in states)
        if now - gone_since < grace:
            return None
        observed = "; ".join(f"{state.cloud_id}: {state.observed}" for state in states)
        before = f"{len(refs)} credentials; every bound resource gone since {gone_since.isoformat()}"
        protected = protection_of(policy, workload_id, refs)
        if protected is not None:
            return _change(workload_id, ChangeStatus.SKIPPED, before, f"{protected}; {observed}")
        if request.dry_run:
            return _change(workload_id, ChangeStatus.PLANNED, before, f"would start offboarding; {observed}")
        offboarding = ResponseRequest(
            incident_id=offboarding_execution_name(workload_id, orphan_event_id(bindings)),
            workload_id=workload_id,
            reason=f"orphan sweep: every resource of the workload gone for over {policy.orphan_grace_minutes} minutes",
            trigger=Trigger(
                source=TRIGGER_SOURCE,
                detail_type=TRIGGER_DETAIL_TYPE,
                event_id=orphan_event_id(bindings),
                workload_id=workload_id,
                reason=observed[:500],
            ),
            terminated_at=gone_since,
        )
        status, execution_arn = start_orphan_offboarding(
            offboarding, sfn_client=sfn_client, state_machine_arn=state_machine_arn
        )
        verb = "started" if status is ChangeStatus.STARTED else "already started"
        return _change(
            workload_id,
            status,
            before,
            f"offboarding {verb}: {execution_arn or offboarding.incident_id}; {observed}",
            after=offboarding.incident_id,
        )
    except (ActionFailed, TransientError) as error:
        # One account refusing (or throttling) must not stop the sweep of the others; a rerun retries it.
        return _change(workload_id, ChangeStatus.FAILED, None, f"{type(error).__name__}: {error}")


def _change(
    workload_id: str, status: ChangeStatus, before: str | None, detail: str, after: str | None = None
) -> Change:
    return Change(
        target=workload_id[:1000],
        what="offboard",
        status=status,
        before=None if before is None else before[:200],
        after=after,
        detail=detail[:1000],
    )
