"""Plans and closures larger than one DynamoDB item (400 KB): stored in chunks, read back as the same records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from rescind.exceptions import LedgerConflict
from rescind.ledger import (
    CredentialStanding,
    CredentialState,
    DynamoDbLedger,
    IncidentClosure,
    IncidentRecord,
    IncidentStatus,
    Trigger,
)
from rescind.ledger.base import Ledger
from rescind.ledger.sqlite import SqliteLedger, push_local_ledger
from rescind.models import Action, Plan, VaultTokenRef
from rescind_local import create_table_from_template

T0 = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
ITEM_LIMIT_BYTES = 400 * 1024


def _accessor(index: int) -> str:
    return f"acc{index:021d}"


def _large_incident(incident_id: str, actions: int) -> IncidentRecord:
    planned = [
        Action(kind="revoke", target=VaultTokenRef(accessor=_accessor(index)), reason="workload terminated")
        for index in range(actions)
    ]
    return IncidentRecord(
        incident_id=incident_id,
        trigger=Trigger(source="rescind", detail_type="Workload Terminated", event_id="evt-1"),
        plan=Plan.ordered(f"plan-{incident_id}", planned),
        opened_at=T0,
    )


def _closure(incident: IncidentRecord) -> IncidentClosure:
    return IncidentClosure(
        incident_id=incident.incident_id,
        status=IncidentStatus.COMPLETED,
        closed_at=T0 + timedelta(minutes=1),
        credentials=tuple(
            CredentialStanding(target=action.target, state=CredentialState.DEAD) for action in incident.plan.actions
        ),
    )


@pytest.fixture
def dynamodb_table(aws: None) -> str:
    create_table_from_template(boto3.client("dynamodb"), "LedgerTable", "ledger")
    return "ledger"


@pytest.fixture(params=["dynamodb", "sqlite"])
def small_chunk_ledger(request: pytest.FixtureRequest, dynamodb_table: str, tmp_path: Path) -> Ledger:
    """Both stores with a tiny chunk size, so a plan of a few dozen actions is chunked."""
    if request.param == "sqlite":
        return SqliteLedger(tmp_path / "ledger.sqlite3", chunk_chars=500)
    return DynamoDbLedger(dynamodb_table, boto3.client("dynamodb"), chunk_chars=500)


def _items(table: str, incident_id: str) -> list[dict[str, dict[str, str]]]:
    pages = (
        boto3.client("dynamodb")
        .get_paginator("query")
        .paginate(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"INCIDENT#{incident_id}"}},
        )
    )
    return [item for page in pages for item in page["Items"]]


def test_a_chunked_plan_and_closure_read_back_as_the_records_written(small_chunk_ledger: Ledger) -> None:
    # Given a plan and a closure far larger than one chunk
    incident = _large_incident("inc-chunked", 60)
    closure = _closure(incident)

    # When they are written (and written again, as a retry would)
    assert small_chunk_ledger.open_incident(incident)
    assert not small_chunk_ledger.open_incident(incident)
    assert small_chunk_ledger.close_incident(closure)

    # Then reading them back gives the same Plan and closure, and the incident is listed whole
    view = small_chunk_ledger.read_incident("inc-chunked")
    assert view.incident == incident
    assert view.closure == closure
    assert small_chunk_ledger.list_incidents() == [incident]
    # and the record alone (its chunks, none of the records after it) is the same record; none for another id
    assert small_chunk_ledger.read_incident_record("inc-chunked") == incident
    assert small_chunk_ledger.read_incident_record("inc-never-opened") is None
    # and so is the record read with the kill-first attempts (more chunks than one small read's page)
    assert small_chunk_ledger.read_record_and_kill_first("inc-chunked").incident == incident


def test_a_chunked_plan_within_one_small_read_reads_back_whole(small_chunk_ledger: Ledger) -> None:
    # Given a plan of a few chunks (fewer than one small read's page), and its closure
    incident = _large_incident("inc-few-chunks", 6)
    assert small_chunk_ledger.open_incident(incident)
    assert small_chunk_ledger.close_incident(_closure(incident))

    # Then the record read with the kill-first attempts is the record written
    view = small_chunk_ledger.read_record_and_kill_first("inc-few-chunks")
    assert (view.incident, view.attempts, view.closure) == (incident, (), None)


def test_a_different_plan_under_a_chunked_incident_is_a_conflict(small_chunk_ledger: Ledger) -> None:
    small_chunk_ledger.open_incident(_large_incident("inc-conflict", 40))

    with pytest.raises(LedgerConflict, match="different plan"):
        small_chunk_ledger.open_incident(_large_incident("inc-conflict", 41))


def test_ten_thousand_actions_fit_under_the_item_limit_with_the_default_chunk_size(dynamodb_table: str) -> None:
    # Given the plan of a workload holding 10,000 tokens (about 3 MB as one record)
    ledger = DynamoDbLedger(dynamodb_table, boto3.client("dynamodb"))
    incident = _large_incident("inc-10k", 10_000)
    assert len(incident.model_dump_json()) > 3 * ITEM_LIMIT_BYTES

    # When it and its closure are written
    ledger.open_incident(incident)
    ledger.close_incident(_closure(incident))

    # Then every item is under DynamoDB's limit, and the plan reads back equal
    sizes = [sum(len(k) + len(v["S"].encode()) for k, v in item.items()) for item in _items(dynamodb_table, "inc-10k")]
    assert len(sizes) > 10
    assert max(sizes) < ITEM_LIMIT_BYTES
    assert ledger.read_incident("inc-10k").incident == incident


def test_a_missing_chunk_is_an_error_naming_it_never_a_shorter_plan(dynamodb_table: str) -> None:
    client = boto3.client("dynamodb")
    ledger = DynamoDbLedger(dynamodb_table, client, chunk_chars=500)
    ledger.open_incident(_large_incident("inc-torn", 30))
    chunk = next(item for item in _items(dynamodb_table, "inc-torn") if item["record_type"]["S"] == "chunk")
    client.delete_item(TableName=dynamodb_table, Key={"pk": chunk["pk"], "sk": chunk["sk"]})

    with pytest.raises(LedgerConflict, match="chunks are missing"):
        ledger.read_incident("inc-torn")


def test_a_local_chunked_ledger_pushes_whole_records_to_the_stack(dynamodb_table: str, tmp_path: Path) -> None:
    # Given a local ledger that stored a plan in chunks
    local = SqliteLedger(tmp_path / "ledger.sqlite3", chunk_chars=500)
    incident = _large_incident("inc-pushed", 50)
    local.open_incident(incident)
    local.close_incident(_closure(incident))
    remote = DynamoDbLedger(dynamodb_table, boto3.client("dynamodb"))

    # When it is pushed to the stack's ledger (which needs no chunks at its own size)
    report = push_local_ledger(local, remote)

    # Then the stack's ledger holds the same records, and the local chain is intact
    assert (report.written, report.already_there) == (2, 0)
    assert remote.read_incident("inc-pushed").incident == incident
    assert local.verify_chain() == []
