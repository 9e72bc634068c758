"""The ledger on moto's DynamoDB, with the table as template.yaml defines it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from rescind.exceptions import AwsAccessDenied, AwsNotFound, AwsThrottled, AwsUnavailable, LedgerConflict
from rescind.ledger import (
    ActionAttemptRecord,
    CredentialState,
    DynamoDbLedger,
    IncidentClosure,
    IncidentRecord,
    IncidentStatus,
    Trigger,
)
from rescind.ledger.base import Ledger
from rescind.ledger.closing import CloseRequest, RunOutcome, close_incident
from rescind.ledger.proofs import kill_first_attempt_id
from rescind.ledger.sqlite import SqliteLedger
from rescind.models import Action, Evidence, Outcome, Plan, VaultTokenRef
from rescind_local import create_table_from_template
from tests.doubles import BotocoreResponse
from tests.records import attempt_record

ACCESSOR = "CaTti28wsXOQA02COE2ygP2B"
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["dynamodb", "sqlite"])
def ledger(request: pytest.FixtureRequest, aws: None, tmp_path: Path) -> Ledger:
    """Both stores keep the same promises: the stack's table, and the CLI's local file (direct mode)."""
    if request.param == "sqlite":
        return SqliteLedger(tmp_path / "ledger.sqlite3")
    client = boto3.client("dynamodb")
    create_table_from_template(client, "LedgerTable", "ledger")
    return DynamoDbLedger("ledger", client)


def _incident(incident_id: str = "inc-1", opened_at: datetime = T0) -> IncidentRecord:
    action = Action(kind="revoke", target=VaultTokenRef(accessor=ACCESSOR), reason="leaked in a public repo")
    return IncidentRecord(
        incident_id=incident_id,
        trigger=Trigger(source="rescind", detail_type="Secret Leaked", event_id="evt-1", references=(action.target,)),
        plan=Plan.ordered(f"plan-{incident_id}", [action]),
        opened_at=opened_at,
    )


def _attempt(incident: IncidentRecord, attempt_id: str, outcome: Outcome = Outcome.SUCCEEDED) -> ActionAttemptRecord:
    return attempt_record(
        incident.incident_id, attempt_id, incident.plan.actions[0], outcome, started_at=T0, took_ms=40
    )


def test_an_incident_links_trigger_plan_attempts_and_closure(ledger: Ledger) -> None:
    # Given an incident with a failed attempt, a retried attempt, and a closure
    incident = _incident()
    assert ledger.open_incident(incident)
    assert ledger.record_attempt(_attempt(incident, "exec-1-0-0", Outcome.FAILED))
    assert ledger.record_attempt(_attempt(incident, "exec-1-0-1"))
    closure = IncidentClosure(incident_id="inc-1", status=IncidentStatus.COMPLETED, closed_at=T0 + timedelta(seconds=2))
    assert ledger.close_incident(closure)

    # When it is read back
    view = ledger.read_incident("inc-1")

    # Then everything is there, linked by the incident id
    assert view.incident == incident
    assert [a.attempt_id for a in view.attempts] == ["exec-1-0-0", "exec-1-0-1"]
    assert view.closure == closure
    # and the record alone is the same, read without the attempts and the closure after it
    assert ledger.read_incident_record("inc-1") == incident


def test_a_redelivered_write_lands_once(ledger: Ledger) -> None:
    incident = _incident()
    ledger.open_incident(incident)
    attempt = _attempt(incident, "exec-1-0-0")
    assert ledger.record_attempt(attempt) is True
    assert ledger.record_attempt(attempt) is False
    assert ledger.open_incident(incident) is False
    assert len(ledger.read_incident("inc-1").attempts) == 1


def test_attempts_written_together_each_land_once_and_never_replace_one_recorded_before(ledger: Ledger) -> None:
    # Given an incident with one attempt already recorded, in a batch larger than one DynamoDB transaction
    incident = _incident()
    ledger.open_incident(incident)
    first = _attempt(incident, "exec-1-0-0", Outcome.FAILED)
    assert ledger.record_attempt(first)
    batch = [_attempt(incident, f"exec-1-0-{number}") for number in range(150)]

    # When the batch is written, with one attempt named twice
    written = ledger.record_attempts([*batch, batch[3]])

    # Then each new attempt lands once, the one recorded before is kept as it was, and the repeat is refused
    assert written == [False, *[True] * 149, False]
    attempts = {attempt.attempt_id: attempt for attempt in ledger.read_incident("inc-1").attempts}
    assert len(attempts) == 150
    assert attempts["exec-1-0-0"].result.outcome is Outcome.FAILED


def test_an_incident_id_reused_for_another_plan_is_a_conflict(ledger: Ledger) -> None:
    ledger.open_incident(_incident())
    other = _incident().model_copy(update={"plan": Plan.ordered("other", [])})
    with pytest.raises(LedgerConflict):
        ledger.open_incident(other)


def test_the_ledger_never_updates_or_deletes(ledger: Ledger) -> None:
    # The first write of a key wins: a second, different write of the same attempt does not replace it.
    incident = _incident()
    ledger.open_incident(incident)
    ledger.record_attempt(_attempt(incident, "exec-1-0-0", Outcome.SUCCEEDED))
    ledger.record_attempt(_attempt(incident, "exec-1-0-0", Outcome.FAILED))
    (only,) = ledger.read_incident("inc-1").attempts
    assert only.result.outcome is Outcome.SUCCEEDED


def test_incidents_are_listed_newest_first_and_since_a_moment(ledger: Ledger) -> None:
    for day in range(3):
        ledger.open_incident(_incident(f"inc-{day}", T0 + timedelta(days=day)))
    assert [i.incident_id for i in ledger.list_incidents()] == ["inc-2", "inc-1", "inc-0"]
    assert [i.incident_id for i in ledger.list_incidents(since=T0 + timedelta(days=1))] == ["inc-2", "inc-1"]
    assert len(ledger.list_incidents(limit=1)) == 1


def test_approval_decisions_are_appended_and_read_back(ledger: Ledger) -> None:
    from rescind.ledger import ApprovalDecision, ApprovalVerdict

    ledger.open_incident(_incident())
    decision = ApprovalDecision(
        incident_id="inc-1",
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:rescind-manual-revocation:inc-1",
        verdict=ApprovalVerdict.APPROVED,
        decided_by="arn:aws:sts::123456789012:assumed-role/responder/alice",
        decided_at=T0,
    )
    assert ledger.record_approval(decision) is True
    assert ledger.record_approval(decision) is False
    # One answer per run: a later, different answer to the same execution is refused, not appended
    overruled = decision.model_copy(
        update={"verdict": ApprovalVerdict.DENIED, "decided_at": T0 + timedelta(seconds=1), "reason": "no"}
    )
    assert ledger.record_approval(overruled) is False
    assert ledger.read_incident("inc-1").approvals == (decision,)


@pytest.mark.parametrize(
    ("outcome", "still_alive", "status", "detail_type"),
    [
        (RunOutcome.VERIFIED, (), IncidentStatus.COMPLETED, "Offboarding Completed"),
        (RunOutcome.VERIFIED, (VaultTokenRef(accessor=ACCESSOR),), IncidentStatus.PARTIAL, "Action Failed"),
        (RunOutcome.FAILED, (VaultTokenRef(accessor=ACCESSOR),), IncidentStatus.PARTIAL, "Action Failed"),
        # the plan task failed: nothing acted on, nothing named alive, and the closure must not say "partial"
        (RunOutcome.FAILED, (), IncidentStatus.FAILED, "Offboarding Failed"),
        (RunOutcome.DENIED, (), IncidentStatus.REFUSED, "Offboarding Refused"),
    ],
)
def test_the_closure_says_how_the_run_ended(
    ledger: Ledger,
    outcome: RunOutcome,
    still_alive: tuple[VaultTokenRef, ...],
    status: IncidentStatus,
    detail_type: str,
) -> None:
    # Given an open incident
    incident = _incident()
    assert ledger.open_incident(incident)

    # When the state machine closes it
    result = close_incident(
        CloseRequest(incident_id="inc-1", outcome=outcome, still_alive=still_alive, error_type="VaultUnavailable"),
        ledger,
    )

    # Then the closure, the notification and the event agree on the status
    view = ledger.read_incident("inc-1")
    assert view.closure is not None
    assert view.closure.status is result.status is status
    assert result.event_detail_type == detail_type
    assert result.succeeded is (status is IncidentStatus.COMPLETED)
    assert str(status) in result.notification.subject


# --- the local file's own promises -------------------------------------------------------------------------


def test_the_local_ledger_chains_every_record_and_a_change_made_outside_rescind_shows(tmp_path: Path) -> None:
    import sqlite3

    # Given a local ledger with an incident, an attempt and a closure
    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    incident = _incident()
    ledger.open_incident(incident)
    ledger.record_attempt(_attempt(incident, "direct-0"))
    ledger.close_incident(
        IncidentClosure(incident_id="inc-1", status=IncidentStatus.COMPLETED, closed_at=T0, summary="done")
    )
    assert ledger.verify_chain() == []

    # When someone edits a row with sqlite3 (the triggers refuse it, so they drop them first)
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as connection:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            connection.execute("UPDATE records SET body = '{}' WHERE seq = 2")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            connection.execute("DELETE FROM records WHERE seq = 2")
        connection.execute("DROP TRIGGER records_are_never_updated")
        connection.execute("UPDATE records SET body = replace(body, 'succeeded', 'failed') WHERE seq = 2")

    # Then the chain names the changed row
    assert ledger.verify_chain() == [
        "row 2 (INCIDENT#inc-1 B#ACTION#"
        + incident.plan.actions[0].action_id
        + "#direct-0) was changed after it was written"
    ]


def test_the_local_ledger_has_no_statement_that_changes_or_removes_a_record() -> None:
    import inspect
    import re

    import rescind.ledger.sqlite as module

    code = "\n".join(line for line in inspect.getsource(module).splitlines() if "RAISE(ABORT" not in line)
    assert not re.search(r"\b(UPDATE|DELETE|REPLACE|DROP)\b(?! ON records)", code)


@pytest.mark.parametrize(
    ("operation", "status", "code", "expected"),
    [
        ("PutItem", 400, "ProvisionedThroughputExceededException", AwsThrottled),
        ("PutItem", 500, "InternalServerError", AwsUnavailable),
        ("PutItem", 400, "AccessDeniedException", AwsAccessDenied),
        ("PutItem", 400, "ResourceNotFoundException", AwsNotFound),
        ("Query", 400, "ThrottlingException", AwsThrottled),
        ("Query", 503, "ServiceUnavailable", AwsUnavailable),
    ],
)
def test_the_ledger_raises_typed_errors_never_botocores(
    aws: None, operation: str, status: int, code: str, expected: type[Exception]
) -> None:
    # Given DynamoDB answering the ledger's writes or reads with an error (moto cannot: botocore's before-call
    # hook returns the response AWS would send)
    client = boto3.client("dynamodb")
    create_table_from_template(client, "LedgerTable", "ledger")

    def fail(**_: object) -> tuple[BotocoreResponse, dict[str, object]]:
        body = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return BotocoreResponse(status), body

    client.meta.events.register(f"before-call.dynamodb.{operation}", fail)
    ledger = DynamoDbLedger("ledger", client)

    # When the ledger writes, or reads, then the error is Rescind's, typed by the one error map
    call = (
        (lambda: ledger.open_incident(_incident())) if operation == "PutItem" else (lambda: ledger.read_incident("x"))
    )
    with pytest.raises(expected) as raised:
        call()
    assert type(raised.value) is expected
    assert "ledger" in str(raised.value)


def test_a_run_with_nothing_left_to_read_names_dead_only_what_the_kill_first_proved(ledger: Ledger) -> None:
    # Given an incident of three tokens: one killed first and read back dead, one whose kill Vault refused, one the
    # kill never touched; and a run that closes with nothing left for Verify to read
    tokens = [VaultTokenRef(accessor=letter * 24) for letter in "KRU"]
    actions = [Action(kind="revoke", target=token, reason="leaked") for token in tokens]
    incident = IncidentRecord(
        incident_id="inc-kill",
        trigger=Trigger(source="rescind", detail_type="Secret Leaked", event_id="evt-k", references=tuple(tokens)),
        plan=Plan.ordered("inc-kill", actions),
        opened_at=T0,
    )
    assert ledger.open_incident(incident)
    dead = Evidence(check="lookup-accessor", observed="invalid accessor: no live token", confirmed=True)
    kills = [
        attempt_record(
            "inc-kill",
            kill_first_attempt_id("inc-kill", "20261124T120000000000", position),
            action,
            outcome,
            evidence=evidence,
            started_at=T0,
        )
        for position, (action, outcome, evidence) in enumerate(
            [(actions[0], Outcome.SUCCEEDED, (dead,)), (actions[1], Outcome.FAILED, ())]
        )
    ]
    ledger.record_attempts(kills)

    # When the run closes it as verified before the run
    request = CloseRequest(incident_id="inc-kill", flow="leak_response", outcome="verified", verified_before_run=True)
    result = close_incident(request, ledger, vault_address="http://127.0.0.1:8200")

    # Then only the killed token is dead, named with the kill's attempt, evidence and Vault; the others are unknown
    closure = ledger.read_incident("inc-kill").closure
    assert closure is not None
    assert closure.status is result.status is IncidentStatus.PARTIAL
    standings = {standing.target.key: standing for standing in closure.credentials}
    killed, refused, untouched = (standings[token.key] for token in tokens)
    assert killed.state is CredentialState.DEAD
    assert killed.proven_before_run is not None
    assert killed.proven_before_run.attempt_id == kills[0].attempt_id
    assert killed.proven_before_run.evidence == (dead,)
    assert killed.proven_before_run.acted_on == "Vault http://127.0.0.1:8200"
    assert (refused.state, refused.proven_before_run) == (CredentialState.UNKNOWN, None)
    assert (untouched.state, untouched.proven_before_run) == (CredentialState.UNKNOWN, None)


def test_the_kill_first_attempts_are_read_alone_in_the_order_they_started(ledger: Ledger) -> None:
    # Given an incident with a run's attempts and two kill-first attempts, the second started first
    incident = _incident("inc-kills")
    assert ledger.open_incident(incident)
    run = [_attempt(incident, f"exec-1.{n}") for n in range(3)]
    stamps = ("20261124T120001000000", "20261124T120000000000")
    later, earlier = (_attempt(incident, kill_first_attempt_id("inc-kills", stamp, 0)) for stamp in stamps)
    later = later.model_copy(
        update={"result": later.result.model_copy(update={"started_at": T0 + timedelta(seconds=1)})}
    )
    assert ledger.record_attempts([*run, later, earlier]) == [True] * 5
    assert not ledger.record_attempt(earlier)  # a retried kill-first write lands once, under the same key

    # When the kill-first attempts are read, then they are there alone, as the whole incident holds them
    kills = ledger.read_kill_first_attempts("inc-kills")
    assert kills == (earlier, later)
    assert kills == tuple(a for a in ledger.read_incident("inc-kills").attempts if ".kill-first." in a.attempt_id)
    assert len(ledger.read_incident("inc-kills").attempts) == 5
    assert ledger.read_kill_first_attempts("no-such-incident") == ()


@pytest.mark.parametrize("run_attempts", [0, 3, 60])
def test_the_record_and_the_kill_first_attempts_are_read_together(ledger: Ledger, run_attempts: int) -> None:
    # Given an incident with a run's attempts (none, a few, more than one small read's page), two kill-first
    # attempts and a closure
    incident = _incident("inc-both")
    assert ledger.open_incident(incident)
    run = [_attempt(incident, f"exec-1.{n}") for n in range(run_attempts)]
    kills = [_attempt(incident, kill_first_attempt_id("inc-both", f"2026112412000{n}000000", 0)) for n in range(2)]
    assert all(ledger.record_attempts([*run, *kills]))
    assert ledger.close_incident(IncidentClosure(incident_id="inc-both", status=IncidentStatus.COMPLETED, closed_at=T0))

    # When the record and the kill-first attempts are read together
    view = ledger.read_record_and_kill_first("inc-both")

    # Then they are what the two reads of each give, and nothing else of the incident
    assert view.incident == ledger.read_incident_record("inc-both") == incident
    assert view.attempts == ledger.read_kill_first_attempts("inc-both") == tuple(kills)
    assert view.closure is None
    missing = ledger.read_record_and_kill_first("no-such-incident")
    assert (missing.incident, missing.attempts) == (None, ())


def test_the_record_and_many_kill_first_attempts_are_read_together(ledger: Ledger) -> None:
    # Given more kill-first attempts than one small read's page (a redelivered alert, again and again)
    incident = _incident("inc-kills-many")
    assert ledger.open_incident(incident)
    kills = [
        _attempt(incident, kill_first_attempt_id("inc-kills-many", f"20261124T12{n:04d}000000", 0)) for n in range(40)
    ]
    assert all(ledger.record_attempts(kills))

    # Then every one is read, and the record
    view = ledger.read_record_and_kill_first("inc-kills-many")
    assert view.attempts == tuple(kills)
    assert view.incident == incident


DEDUP_KEY = "ab" * 20


def test_a_credential_is_claimed_once_per_window_and_again_after_it(ledger: Ledger) -> None:
    window = timedelta(hours=1)

    # Given a first claim, when the same credential is claimed within the window and after it
    first = ledger.claim_response(DEDUP_KEY, T0, window)
    duplicate = ledger.claim_response(DEDUP_KEY, T0 + timedelta(minutes=59), window)
    second = ledger.claim_response(DEDUP_KEY, T0 + timedelta(hours=2), window)
    second_duplicate = ledger.claim_response(DEDUP_KEY, T0 + timedelta(hours=2, minutes=1), window)
    third = ledger.claim_response(DEDUP_KEY, T0 + timedelta(hours=4), window)

    # Then the first is new, the one within the window names it, and each one after the window is the next
    assert (first.is_new, first.incident_id) == (True, f"leak-{DEDUP_KEY[:24]}-1")
    assert (duplicate.is_new, duplicate.incident_id, duplicate.claimed_at) == (False, first.incident_id, T0)
    assert (second.is_new, second.incident_id) == (True, f"leak-{DEDUP_KEY[:24]}-2")
    assert (second_duplicate.is_new, second_duplicate.incident_id) == (False, second.incident_id)
    assert (third.is_new, third.incident_id) == (True, f"leak-{DEDUP_KEY[:24]}-3")


def test_a_first_claim_is_one_conditional_put_and_nothing_read(aws: None) -> None:
    # Given the ledger on DynamoDB, its calls counted
    client = boto3.client("dynamodb")
    create_table_from_template(client, "LedgerTable", "ledger")
    calls: list[str] = []
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    ledger = DynamoDbLedger("ledger", client)

    # When a credential is claimed for the first time, then again within the window
    assert ledger.claim_response(DEDUP_KEY, T0, timedelta(hours=1)).is_new
    first_calls = list(calls)
    assert not ledger.claim_response(DEDUP_KEY, T0 + timedelta(minutes=1), timedelta(hours=1)).is_new

    # Then the first claim was one put; the duplicate's put was refused, and the claim it duplicates read
    assert first_calls == ["PutItem"]
    assert calls[1:] == ["PutItem", "Query"]
