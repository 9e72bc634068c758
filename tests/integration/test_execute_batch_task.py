"""A Revoke item: a batch of actions executed a few at a time on real OpenBao, recorded together in the ledger
(moto), the confirmed read-backs kept in the plan bucket; a retry acts only on what is not proven, and Verify
counts the proven targets dead without asking Vault again."""

from __future__ import annotations

from collections.abc import Callable

import boto3
import hvac
import pytest

from rescind.engine.batch import (
    RECORD_EVERY,
    BatchResult,
    ExecuteBatchRequest,
    execute_batch,
    proven_evidence,
    proven_for,
)
from rescind.engine.factory import build_engine
from rescind.engine.verification import ProofSource, verify_actions
from rescind.exceptions import BatchOutOfTime, InvalidInput, VaultUnavailable
from rescind.guard import VAULT_HOLD_KEY, GuardFacts, GuardPolicy, refuse_guarded_target
from rescind.ledger import DynamoDbLedger
from rescind.models import Action, ActionResult, Outcome
from rescind.response.plan_store import S3ReadBackStore
from rescind_local import create_table_from_template
from tests.conftest import BackendCalls
from tests.integration.test_execute_action_task import SCOPE

BUCKET = "rescind-plan-bucket"
READ_BACK_KEY = "plans/inc-batch/0123456789abcdef01234567/read-back/0.json"
UNREACHABLE = "http://127.0.0.1:9"


@pytest.fixture
def ledger(aws: None) -> DynamoDbLedger:
    client = boto3.client("dynamodb")
    return DynamoDbLedger(create_table_from_template(client, "LedgerTable", "ledger"), client)


@pytest.fixture
def store(aws: None) -> S3ReadBackStore:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    return S3ReadBackStore(s3, BUCKET)


def _token(vault: hvac.Client, *, held: bool = False) -> str:
    meta = {VAULT_HOLD_KEY: "true"} if held else {}
    return str(vault.auth.token.create(ttl="1h", meta=meta)["auth"]["accessor"])


def _batch(accessors: list[str], attempt: str) -> ExecuteBatchRequest:
    return ExecuteBatchRequest.parse(
        {
            "incident_id": "inc-batch",
            "attempt_id": attempt,
            "read_back_key": READ_BACK_KEY,
            "actions": [
                {"kind": "revoke", "target": {"kind": "vault_token", "accessor": accessor}, "reason": "offboarded"}
                for accessor in accessors
            ],
        }
    )


def _guard(vault: hvac.Client, unreachable_for: str | None = None) -> Callable[[Action], None]:
    """The acting task's guard, reading the target on `vault`; for one target, on a Vault nobody answers at."""
    dead = hvac.Client(url=UNREACHABLE, token="unused", timeout=1)
    policy = GuardPolicy()
    return lambda action: refuse_guarded_target(
        dead if unreachable_for and unreachable_for in action.target.key else vault, None, action, policy
    )


def _alive(vault: hvac.Client, accessor: str) -> bool:
    try:
        vault.auth.token.lookup_accessor(accessor)
    except hvac.exceptions.InvalidRequest:
        return False
    return True


def _run(
    request: ExecuteBatchRequest,
    vault: hvac.Client,
    ledger: DynamoDbLedger,
    store: S3ReadBackStore,
    guard: Callable[[Action], None],
) -> BatchResult:
    return execute_batch(
        request,
        engine=build_engine(vault),
        ledger=ledger,
        scope=SCOPE,
        refuse_if_guarded=guard,
        read_backs=store,
        workers=4,
    )


def test_one_failing_action_does_not_lose_the_others_and_the_retry_acts_only_on_the_unproven(
    vault: hvac.Client,
    ledger: DynamoDbLedger,
    store: S3ReadBackStore,
    backend_calls: BackendCalls,
) -> None:
    # Given a batch of four live tokens: one held, one whose guard read meets an unreachable Vault
    first, held, flaky, last = _token(vault), _token(vault, held=True), _token(vault), _token(vault)
    accessors = [first, held, flaky, last]

    # When the batch runs: the transient error is raised for the state machine's Retry
    with pytest.raises(VaultUnavailable):
        _run(_batch(accessors, "exec.revoke.0.0"), vault, ledger, store, _guard(vault, flaky))

    # Then every attempt was recorded, under the batch's attempt id and its place in the batch
    recorded = {a.attempt_id: a.result for a in ledger.read_incident("inc-batch").attempts}
    assert {
        key: (result.target.key.rsplit(":", 1)[-1], result.outcome, result.error_type)
        for key, result in recorded.items()
    } == {
        "exec.revoke.0.0.0": (first, Outcome.SUCCEEDED, None),
        "exec.revoke.0.0.1": (held, Outcome.FAILED, "PolicyRefusal"),
        "exec.revoke.0.0.2": (flaky, Outcome.FAILED, "VaultUnavailable"),
        "exec.revoke.0.0.3": (last, Outcome.SUCCEEDED, None),
    }
    assert [_alive(vault, accessor) for accessor in accessors] == [False, True, True, False]
    # And the read-back object proves only what the act confirmed: references and evidence, no values
    proof = store.read(READ_BACK_KEY)
    assert proof is not None
    assert [entry.target.key.rsplit(":", 1)[-1] for entry in proof.proven] == [first, last]
    assert all(entry.evidence[0].confirmed for entry in proof.proven)

    # When the Retry runs the batch again (a new attempt), with Vault reachable
    backend_calls.vault.clear()
    result = _run(_batch(accessors, "exec.revoke.0.1"), vault, ledger, store, _guard(vault))

    # Then it acted only on the two not proven: no new attempt, and no Vault call, for the first and the last
    assert result.carried_over == 2
    assert result.outcomes == {"succeeded": 1, "failed": 1}
    assert sum("revoke-accessor" in call for call in backend_calls.vault) == 1
    newer = {a.attempt_id for a in ledger.read_incident("inc-batch").attempts} - recorded.keys()
    assert newer == {"exec.revoke.0.1.1", "exec.revoke.0.1.2"}
    assert [_alive(vault, accessor) for accessor in accessors] == [False, True, False, False]
    proof = store.read(READ_BACK_KEY)
    assert proof is not None
    assert len(proof.proven) == 3


def test_verify_makes_no_vault_call_for_a_target_its_act_read_back_dead(
    vault: hvac.Client,
    ledger: DynamoDbLedger,
    store: S3ReadBackStore,
    backend_calls: BackendCalls,
) -> None:
    # Given a batch of three tokens run to the end: two revoked (their act read them back dead), one held
    dead_one, held, dead_two = _token(vault), _token(vault, held=True), _token(vault)
    request = _batch([dead_one, held, dead_two], "exec.revoke.3.0")
    _run(request, vault, ledger, store, _guard(vault))

    # When the Verify item of the same targets runs with the batch's read-back
    backend_calls.vault.clear()
    proven = proven_evidence(proven_for(request.actions, store.read(READ_BACK_KEY)))
    report = verify_actions(build_engine(vault), request.actions, scope=SCOPE, proven=proven)

    # Then only the held token was read from Vault (one lookup), and it is reported alive
    assert sum("lookup-accessor" in call for call in backend_calls.vault) == 1
    assert len(backend_calls.vault) == 1
    assert [ref.key.rsplit(":", 1)[-1] for ref in report.still_alive] == [held]
    assert [target.source for target in report.verified] == [
        ProofSource.ACT_READ_BACK,
        ProofSource.VERIFY_READ,
        ProofSource.ACT_READ_BACK,
    ]
    assert report.count(ProofSource.ACT_READ_BACK) == 2


def test_a_read_back_for_another_target_proves_nothing(
    vault: hvac.Client,
    ledger: DynamoDbLedger,
    store: S3ReadBackStore,
) -> None:
    # Given a batch's read-back, and a Verify item whose action ids match it but name other targets
    revoked, other = _token(vault), _token(vault)
    request = _batch([revoked], "exec.revoke.4.0")
    _run(request, vault, ledger, store, _guard(vault))
    swapped = _batch([other], "exec.revoke.4.0")
    forged = swapped.actions[0].model_copy(update={"action_id": request.actions[0].action_id})

    # Then that read-back proves nothing for it: it is read, and found alive
    proven = proven_evidence(proven_for([forged], store.read(READ_BACK_KEY)))
    assert proven == {}
    report = verify_actions(build_engine(vault), [forged], scope=SCOPE, proven=proven)
    assert [ref.key for ref in report.still_alive] == [forged.target.key]


def test_a_read_back_key_outside_a_plans_read_back_folder_is_refused_before_any_call(
    store: S3ReadBackStore, backend_calls: BackendCalls
) -> None:
    with pytest.raises(InvalidInput):
        ExecuteBatchRequest.parse(
            {
                "incident_id": "inc-batch",
                "attempt_id": "exec.revoke.0.0",
                "read_back_key": "plans/inc-batch/../../results/manifest.json",
                "actions": [{"kind": "revoke", "target": {"kind": "vault_token", "accessor": "A" * 24}, "reason": "x"}],
            }
        )
    with pytest.raises(InvalidInput):
        store.read("results/run-1/manifest.json")
    assert backend_calls.total == 0


def _dead_and_recorded(vault: hvac.Client, ledger: DynamoDbLedger, accessors: list[str]) -> tuple[set[str], set[str]]:
    """The accessors Vault no longer knows, and those the ledger holds a succeeded attempt for."""
    dead = {accessor for accessor in accessors if not _alive(vault, accessor)}
    recorded = {
        attempt.result.target.key.rsplit(":", 1)[-1]
        for attempt in ledger.read_incident("inc-batch").attempts
        if attempt.result.outcome is Outcome.SUCCEEDED
    }
    return dead, recorded


def test_a_batch_near_its_timeout_stops_records_what_it_did_and_its_retry_does_the_rest(
    vault: hvac.Client, ledger: DynamoDbLedger, store: S3ReadBackStore, backend_calls: BackendCalls
) -> None:
    # Given a batch of six live tokens, and a function whose remaining time falls under the margin after three
    # actions have started (the Lambda context's clock, as get_remaining_time_in_millis answers it)
    accessors = [_token(vault) for _ in range(6)]
    answers = iter([200_000, 150_000, 100_000])

    def remaining_ms() -> int:
        return next(answers, 20_000)  # then 20 s: under the 30 s margin

    # When the batch runs, recording every two attempts
    with pytest.raises(BatchOutOfTime, match="3 of 6 action"):
        execute_batch(
            _batch(accessors, "exec.revoke.5.0"),
            engine=build_engine(vault),
            ledger=ledger,
            scope=SCOPE,
            refuse_if_guarded=_guard(vault),
            read_backs=store,
            workers=4,
            remaining_ms=remaining_ms,
            record_every=2,
        )

    # Then it acted on three, recorded exactly those three, and proved them in its read-back; the rest are alive
    dead, recorded = _dead_and_recorded(vault, ledger, accessors)
    assert len(dead) == 3
    assert recorded == dead
    proof = store.read(READ_BACK_KEY)
    assert proof is not None
    assert {entry.target.key.rsplit(":", 1)[-1] for entry in proof.proven} == dead

    # When the Map retries it (BatchOutOfTime is in its Retry list) in a new invocation with time to spare
    backend_calls.vault.clear()
    result = _run(_batch(accessors, "exec.revoke.5.1"), vault, ledger, store, _guard(vault))

    # Then it acted on the three not attempted only: all six are dead, each with one succeeded attempt
    assert (result.carried_over, result.outcomes) == (3, {"succeeded": 3})
    assert result.outcomes_by_kind == {"vault_token": {"succeeded": 3}}
    assert sum("revoke-accessor" in call for call in backend_calls.vault) == 3
    dead, recorded = _dead_and_recorded(vault, ledger, accessors)
    assert dead == recorded == set(accessors)
    assert len(ledger.read_incident("inc-batch").attempts) == 6


class FunctionKilled(BaseException):
    """The Lambda runtime ending the invocation (its timeout, a crash): nothing after it runs in the batch."""


def test_a_batch_killed_part_way_has_recorded_the_actions_it_completed(
    vault: hvac.Client, ledger: DynamoDbLedger, store: S3ReadBackStore
) -> None:
    # Given a batch of live tokens, on an engine whose invocation is killed as it starts the action after a chunk
    # of RECORD_EVERY has ended
    accessors = [_token(vault) for _ in range(RECORD_EVERY + 2)]
    engine = build_engine(vault)
    execute = engine.execute
    started: list[str] = []

    def killed_after_a_chunk(action: Action, *, dry_run: bool = False, seen: GuardFacts | None = None) -> ActionResult:
        started.append(action.action_id)
        if len(started) == RECORD_EVERY + 1:
            raise FunctionKilled
        return execute(action, dry_run=dry_run, seen=seen)

    engine.execute = killed_after_a_chunk  # type: ignore[method-assign]

    # When the batch runs one action at a time (so the order is the batch's)
    with pytest.raises(FunctionKilled):
        execute_batch(
            _batch(accessors, "exec.revoke.6.0"),
            engine=engine,
            ledger=ledger,
            scope=SCOPE,
            refuse_if_guarded=_guard(vault),
            read_backs=store,
            workers=1,
        )

    # Then the chunk it completed is dead and recorded as it ended (the old batch recorded nothing: its retry
    # would have found them gone with no record of who ended them); nothing after the kill was started
    dead, recorded = _dead_and_recorded(vault, ledger, accessors)
    assert dead == recorded == set(accessors[:RECORD_EVERY])
    assert len(started) == RECORD_EVERY + 1
