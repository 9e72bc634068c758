"""One Revoke item of a response state machine: a batch of a plan's actions, run a few at a time, recorded as they end.

Each action goes through `rescind.engine.tasks.execute_checked`, as `execute_and_record` does for one (scope,
guard, act, the act's own read-back), on a small thread pool sharing the one engine: its Vault client is one
requests session (urllib3's pool is thread-safe; `revoke_batch_workers` stays within its 10 connections, so none is
dropped) whose token renewal is locked (rescind.vault.client.VaultSession), and boto3 clients are thread-safe (the
AwsClientFactory locks its sessions). The attempts go to the ledger as they end, `RECORD_EVERY` at a time in one
`record_attempts` call (conditional puts in one transaction), so a batch killed part-way (its function's timeout, a
crash) leaves at most that chunk and the actions in flight unrecorded. Then the confirmed read-backs go to the
batch's read-back object, which the Verify item of the same targets counts as proof (rescind.engine.verification)
and a retry of this batch reads so as not to act again.

Given the Lambda context's remaining time, the batch starts no action with less than `STOP_MARGIN_SECONDS` left:
it records what it did, writes its read-back, and raises BatchOutOfTime, which the Map retries as a new
invocation that acts on the actions not attempted (and not on those proven).

A transient error of one action does not lose the others: every attempt is recorded and the confirmed read-backs
written before the first transient error is raised again for the state machine's Retry (an unexpected exception,
a defect, is recorded as FAILED and raised the same way, for the Catch). The retry is a new
attempt (its attempt id has the retry count) and acts only on what no earlier attempt of the batch confirmed.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.discovery import DiscoveryScope
from rescind.engine.executor import ActionEngine
from rescind.engine.tasks import execute_checked
from rescind.exceptions import BatchOutOfTime, RescindError
from rescind.guard import ActionGuard
from rescind.ledger.base import Ledger
from rescind.ledger.types import ActionAttemptRecord
from rescind.models import Action, ActionKind, ActionResult, CredentialRef, Evidence, Outcome
from rescind.models.results import utc_now
from rescind.validation import parse_model

READ_BACK_FOLDER = "read-back"
# Attempts per ledger write: 2 writes for a batch of 50 (rather than 1); a batch killed part-way leaves at most 24
# attempts unrecorded, and those in flight (10 a write cost 5 writes a batch: 0.96 DynamoDB writes per credential
# of an offboarding rather than 0.88, and on moto each transaction copies the ledger table).
RECORD_EVERY = 25
# No action starts with less left: the ones in flight (a few Vault calls of 10 s at most) and the records fit.
STOP_MARGIN_SECONDS = 30.0
# plans/<incident id>/<plan digest>/read-back/<batch number>.json (rescind.response.plan_store names them).
ReadBackKey = Annotated[
    str, Field(pattern=rf"^plans/[A-Za-z0-9_\-]{{1,80}}/[0-9a-f]{{24}}/{READ_BACK_FOLDER}/[0-9]{{1,6}}\.json$")
]


class ExecuteBatchRequest(BaseModel):
    """One item of the Revoke Map: a batch of the plan's actions and where their read-back goes."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    incident_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,80}$")]
    # Execution name, item index and retry count; each action's attempt adds its position in the batch.
    attempt_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-.:]{1,190}$")]
    actions: Annotated[tuple[Action, ...], Field(min_length=1, max_length=1000)]
    read_back_key: ReadBackKey | None = None
    dry_run: bool = False

    @classmethod
    def parse(cls, event: Any) -> ExecuteBatchRequest:
        return parse_model(cls, event, what="execute-batch request")


class ProvenReadBack(BaseModel):
    """An action whose own read-back confirmed its end, and the attempt that recorded it. References only."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    action_id: str
    target: CredentialRef
    outcome: Outcome
    evidence: Annotated[tuple[Evidence, ...], Field(min_length=1)]
    attempt_id: str


class ReadBackRecord(BaseModel):
    """A Revoke batch's read-back object: what its actions' own read-backs confirmed, nothing else."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    incident_id: str
    proven: tuple[ProvenReadBack, ...] = ()

    def by_action(self) -> dict[str, ProvenReadBack]:
        return {entry.action_id: entry for entry in self.proven}


class ReadBackStore(Protocol):
    """Where a batch's read-back object is kept (rescind.response.plan_store.S3ReadBackStore)."""

    def read(self, key: str) -> ReadBackRecord | None: ...

    def write(self, key: str, record: ReadBackRecord) -> None: ...


class BatchResult(BaseModel):
    """The Revoke item's output: counts only (the attempts are in the ledger, the proofs in S3)."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    action_count: int
    outcomes: dict[str, int]
    outcomes_by_kind: dict[str, dict[str, int]]  # credential kind -> outcome -> count, for the ActionOutcome metric
    carried_over: int  # confirmed by an earlier attempt of this batch: not acted on again
    proven: int  # in the read-back object after this attempt
    read_back_key: str | None


def proven_for(actions: Sequence[Action], record: ReadBackRecord | None) -> dict[str, ProvenReadBack]:
    """The entries of `record` that prove one of `actions` dead: the same action on the same target, confirmed."""
    if record is None:
        return {}
    entries = record.by_action()
    found: dict[str, ProvenReadBack] = {}
    for action in actions:
        entry = entries.get(action.action_id)
        if (
            entry is not None
            and entry.target.key == action.target.key
            and entry.outcome.is_success
            and all(evidence.confirmed for evidence in entry.evidence)
        ):
            found[action.action_id] = entry
    return found


_Ran = tuple[int, ActionResult, Exception | None]  # position in the batch, result, the error to raise after


def execute_batch(
    request: ExecuteBatchRequest,
    *,
    engine: ActionEngine,
    ledger: Ledger,
    scope: DiscoveryScope,
    refuse_if_guarded: ActionGuard,
    read_backs: ReadBackStore | None,
    workers: int = 8,
    remaining_ms: Callable[[], int] | None = None,
    stop_margin_seconds: float = STOP_MARGIN_SECONDS,
    record_every: int = RECORD_EVERY,
) -> BatchResult:
    """Run the batch's actions not yet proven, record every attempt as it ends, keep the proofs; see the module
    docstring. `remaining_ms`: the Lambda context's get_remaining_time_in_millis (None: no time limit)."""
    store_key = request.read_back_key if read_backs is not None else None
    earlier = read_backs.read(store_key) if read_backs is not None and store_key is not None else None
    carried = proven_for(request.actions, earlier)
    pending = [(position, action) for position, action in enumerate(request.actions) if action.action_id not in carried]

    going_down = threading.Event()  # the batch is raising out (a failed ledger write, the process ending)

    def run(item: tuple[int, Action]) -> _Ran | None:
        if going_down.is_set() or (remaining_ms is not None and remaining_ms() < stop_margin_seconds * 1000):
            return None  # not attempted: the retry acts on it
        position, action = item
        started_at = utc_now()
        try:
            executed = execute_checked(
                action,
                dry_run=request.dry_run,
                engine=engine,
                scope=scope,
                refuse_if_guarded=refuse_if_guarded,
                approvals=lambda: ledger.read_incident(request.incident_id).approvals,
            )
            return position, executed.result, executed.transient
        except Exception as unexpected:  # a defect: recorded with the others, then raised for the Catch
            error = RescindError(f"{type(unexpected).__name__} while acting")
            return position, engine.failed(action, started_at, error), unexpected
        except BaseException:
            going_down.set()  # start nothing more
            raise

    ran: list[_Ran] = []
    unrecorded: list[_Ran] = []

    def ended(entry: _Ran | None, *, flush: bool = False) -> None:
        if entry is not None:
            ran.append(entry)
            unrecorded.append(entry)
        if unrecorded and (flush or len(unrecorded) >= record_every):
            _record(ledger, request, unrecorded)
            unrecorded.clear()

    # A rotation waits on its owner's hook (a Lambda invoke): those run in the task's own thread, one at a time,
    # after the pool. The local stack invokes a hook in-process under one lock per process (the environment it
    # swaps is the process's), which a pool thread could not take while this task holds it.
    pooled = [item for item in pending if item[1].kind is not ActionKind.ROTATE]
    with ThreadPoolExecutor(max(1, min(workers, len(pooled) or 1))) as pool:
        futures = [pool.submit(run, item) for item in pooled]
        try:
            for future in as_completed(futures):
                ended(future.result())  # recorded here, in this thread, while the pool acts on the next ones
        except BaseException:
            going_down.set()  # start nothing more
            for future in futures:
                future.cancel()
            raise
    for item in pending:
        if item[1].kind is ActionKind.ROTATE:
            ended(run(item))
    ended(None, flush=True)
    ran.sort(key=lambda entry: entry[0])

    proven = dict(carried)
    for position, result, _ in ran:
        if result.outcome.is_success and result.evidence and all(evidence.confirmed for evidence in result.evidence):
            proven[result.action_id] = ProvenReadBack(
                action_id=result.action_id,
                target=result.target,
                outcome=result.outcome,
                evidence=result.evidence,
                attempt_id=_attempt_id(request, position),
            )
    if read_backs is not None and store_key is not None and len(proven) > len(carried):
        in_order = tuple(proven[action.action_id] for action in request.actions if action.action_id in proven)
        read_backs.write(store_key, ReadBackRecord(incident_id=request.incident_id, proven=in_order))
    not_attempted = len(pending) - len(ran)
    if not_attempted:  # before any other error: the retry must get to them (and meets that error again)
        raise BatchOutOfTime(
            f"batch {request.attempt_id} of incident {request.incident_id}: {not_attempted} of "
            f"{len(request.actions)} action(s) not attempted with under {stop_margin_seconds:g} s left; "
            f"{len(ran)} attempted and recorded"
        )
    raised = next((error for _, _, error in ran if error is not None), None)
    if raised is not None:
        raise raised  # after recording: a Retry (transient) acts only on what is not proven; anything else is caught
    return BatchResult(
        action_count=len(request.actions),
        outcomes=dict(Counter(str(result.outcome) for _, result, _ in ran)),
        outcomes_by_kind=_outcomes_by_kind(result for _, result, _ in ran),
        carried_over=len(carried),
        proven=len(proven),
        read_back_key=store_key,
    )


def _record(ledger: Ledger, request: ExecuteBatchRequest, entries: Sequence[_Ran]) -> None:
    ledger.record_attempts(
        [
            ActionAttemptRecord(
                incident_id=request.incident_id, attempt_id=_attempt_id(request, position), result=result
            )
            for position, result, _ in entries
        ]
    )


def _outcomes_by_kind(results: Iterable[ActionResult]) -> dict[str, dict[str, int]]:
    """Outcome counts per credential kind, the dimensions the single-action path's ActionOutcome metric has."""
    counts: dict[str, Counter[str]] = {}
    for result in results:
        counts.setdefault(str(result.target.kind), Counter())[str(result.outcome)] += 1
    return {kind: dict(outcomes) for kind, outcomes in sorted(counts.items())}


def _attempt_id(request: ExecuteBatchRequest, position: int) -> str:
    return f"{request.attempt_id}.{position}"


def proven_evidence(proven: Mapping[str, ProvenReadBack]) -> dict[str, Evidence]:
    """One evidence per proven action, for the Verify batch: the act's read-back (the first, when several)."""
    return {action_id: entry.evidence[0] for action_id, entry in proven.items()}
