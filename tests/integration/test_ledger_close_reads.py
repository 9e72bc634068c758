"""What Close reads of a large incident and of a leak's small one, counted on moto's DynamoDB: the items its Queries
return."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from rescind.ledger import ActionAttemptRecord, CredentialState, DynamoDbLedger, IncidentRecord, IncidentStatus, Trigger
from rescind.ledger.closing import CloseRequest, RunOutcome, VerifiedTargets, close_incident
from rescind.ledger.dynamodb import SMALL_INCIDENT_ITEMS
from rescind.ledger.proofs import kill_first_attempt_id
from rescind.models import Action, ActionResult, Evidence, Outcome, Plan, VaultTokenRef
from rescind_local import create_table_from_template
from tests.records import action_result

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
RUN_ATTEMPTS = 300
DEAD = Evidence(check="lookup-accessor", observed="invalid accessor: no live token", confirmed=True)


class QueryCounter:
    """The sort keys of every item DynamoDB returned to a Query, and how many Queries there were."""

    def __init__(self) -> None:
        self.calls = 0
        self.sort_keys: list[str] = []

    def __call__(self, parsed: dict[str, Any], **_: object) -> None:
        self.calls += 1
        self.sort_keys.extend(item["sk"]["S"] for item in parsed.get("Items", []))


@pytest.fixture
def counted(aws: None) -> tuple[DynamoDbLedger, QueryCounter]:
    client = boto3.client("dynamodb")
    create_table_from_template(client, "LedgerTable", "ledger")
    counter = QueryCounter()
    client.meta.events.register("after-call.dynamodb.Query", counter)
    return DynamoDbLedger("ledger", client), counter


def _result(action: Action, outcome: Outcome, evidence: tuple[Evidence, ...], started: datetime) -> ActionResult:
    return action_result(action, outcome, evidence=evidence, started_at=started)


def _incident_with_many_attempts(
    ledger: DynamoDbLedger, run_attempts: int = RUN_ATTEMPTS
) -> tuple[list[Action], ActionAttemptRecord]:
    """A leak incident of `run_attempts` + 1 tokens: the first killed first and read back dead; the run acted on
    every other one (an attempt each) and failed each first try (a second attempt each)."""
    tokens = [VaultTokenRef(accessor=f"{n:024d}") for n in range(run_attempts + 1)]
    actions = [Action(kind="revoke", target=token, reason="leaked") for token in tokens]
    incident = IncidentRecord(
        incident_id="inc-big",
        trigger=Trigger(source="rescind", detail_type="Secret Leaked", event_id="evt-big", references=(tokens[0],)),
        plan=Plan.ordered("inc-big", actions),
        opened_at=T0,
    )
    assert ledger.open_incident(incident)
    kill = ActionAttemptRecord(
        incident_id="inc-big",
        attempt_id=kill_first_attempt_id("inc-big", "20261124T120000000000", 0),
        result=_result(actions[0], Outcome.SUCCEEDED, (DEAD,), T0),
    )
    assert ledger.record_attempt(kill)
    later = T0 + timedelta(seconds=5)
    run = [
        ActionAttemptRecord(
            incident_id="inc-big", attempt_id=f"exec-1.{n}.{try_}", result=_result(action, outcome, (), later)
        )
        for n, action in enumerate(actions[1:])
        for try_, outcome in enumerate((Outcome.FAILED, Outcome.SUCCEEDED))
    ]
    assert all(ledger.record_attempts(run))
    return actions, kill


def test_a_verified_close_reads_the_record_and_the_kill_first_attempts_alone(
    counted: tuple[DynamoDbLedger, QueryCounter],
) -> None:
    # Given an incident with hundreds of run attempts and one kill first that proved its credential dead
    ledger, counter = counted
    actions, kill = _incident_with_many_attempts(ledger)
    record_items = [sk for sk in _all_sort_keys() if sk.startswith("A#INCIDENT")]  # unhooked: not counted
    counter.sort_keys.clear()
    counter.calls = 0

    # When the run closes as verified: Verify read back every credential the run acted on
    request = CloseRequest(incident_id="inc-big", flow="leak_response", outcome=RunOutcome.VERIFIED)
    verified = VerifiedTargets(read_back=frozenset(a.target.key for a in actions[1:]), still_alive=())
    result = close_incident(request, ledger, verified, vault_address="http://127.0.0.1:8200")

    # Then DynamoDB returned the record and the kill-first attempt, and of the run's 600 attempts only those in
    # the first read's one page (it reads the kill-first range first, then stops), in two reads
    run_items = [sk for sk in counter.sort_keys if sk.startswith("B#ACTION#")]
    assert len(run_items) < SMALL_INCIDENT_ITEMS
    assert sorted(sk for sk in counter.sort_keys if not sk.startswith("B#ACTION#")) == sorted(
        [*record_items, f"B#KILL#{kill.attempt_id}"]
    )
    assert counter.calls == 2
    # And the killed credential is still named dead with the kill's attempt, evidence and Vault
    assert result.status is IncidentStatus.COMPLETED
    closure = ledger.read_incident("inc-big").closure
    assert closure is not None
    killed = closure.credentials[0]
    assert killed.target == actions[0].target
    assert killed.state is CredentialState.DEAD
    assert killed.proven_before_run is not None
    assert killed.proven_before_run.attempt_id == kill.attempt_id
    assert killed.proven_before_run.evidence == (DEAD,)
    assert killed.proven_before_run.acted_on == "Vault http://127.0.0.1:8200"
    assert all(standing.state is CredentialState.DEAD for standing in closure.credentials)
    assert len(closure.credentials) == RUN_ATTEMPTS + 1


def test_a_verified_close_of_a_small_incident_reads_it_in_one_query(
    counted: tuple[DynamoDbLedger, QueryCounter],
) -> None:
    # Given a leak's incident: its record, one kill first that proved its credential dead, and two attempts of
    # its run on the other credential
    ledger, counter = counted
    actions, kill = _incident_with_many_attempts(ledger, run_attempts=1)
    counter.sort_keys.clear()
    counter.calls = 0

    # When the run closes as verified
    request = CloseRequest(incident_id="inc-big", flow="leak_response", outcome=RunOutcome.VERIFIED)
    verified = VerifiedTargets(read_back=frozenset({actions[1].target.key}), still_alive=())
    result = close_incident(request, ledger, verified, vault_address="http://127.0.0.1:8200")

    # Then one Query read it, and the killed credential is named dead with the kill's attempt
    assert counter.calls == 1
    assert f"B#KILL#{kill.attempt_id}" in counter.sort_keys
    assert result.status is IncidentStatus.COMPLETED
    closure = ledger.read_incident("inc-big").closure
    assert closure is not None
    killed, acted = closure.credentials
    assert killed.proven_before_run is not None
    assert killed.proven_before_run.attempt_id == kill.attempt_id
    assert (killed.state, acted.state) == (CredentialState.DEAD, CredentialState.DEAD)


def test_a_failed_close_still_reads_every_attempt(counted: tuple[DynamoDbLedger, QueryCounter]) -> None:
    # Given the same incident, when its run closes as failed (nothing verified)
    ledger, counter = counted
    actions, _ = _incident_with_many_attempts(ledger)
    counter.sort_keys.clear()
    result = close_incident(CloseRequest(incident_id="inc-big", outcome=RunOutcome.FAILED), ledger)

    # Then each action's newest attempt decides, so every attempt was read: the run's succeeded without a
    # read-back are unknown, and the kill first's is dead
    assert sum(sk.startswith("B#") for sk in counter.sort_keys) == 2 * RUN_ATTEMPTS + 1  # the run's, the kill's
    closure = ledger.read_incident("inc-big").closure
    assert closure is not None
    assert result.status is IncidentStatus.FAILED
    states = [standing.state for standing in closure.credentials]
    assert states == [CredentialState.DEAD] + [CredentialState.UNKNOWN] * RUN_ATTEMPTS
    assert closure.credentials[0].target == actions[0].target


def _all_sort_keys() -> list[str]:
    client = boto3.client("dynamodb")
    pages = client.get_paginator("query").paginate(
        TableName="ledger",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "INCIDENT#inc-big"}},
    )
    return [item["sk"]["S"] for page in pages for item in page["Items"]]
