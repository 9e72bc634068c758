"""The close task's reading of the Verify Map's ResultWriter output (AWS's documented format, on moto's S3): a target
read back by a succeeded item is dead or alive as the item found it; one in a failed item, or in none, is unknown."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from rescind.exceptions import InvalidInput
from rescind.ledger import DynamoDbLedger, IncidentRecord, IncidentStatus, Trigger
from rescind.ledger.closing import CloseRequest, CredentialState, MapResultsLocation, RunOutcome, close_incident
from rescind.models import Action, Plan, VaultTokenRef
from rescind.response.map_results import inline_verify_results, read_verify_results
from rescind_local import create_table_from_template

BUCKET = "rescind-plan-bucket"
MAP_RUN = "arn:aws:states:us-east-1:123456789012:mapRun:rescind-offboarding/Verify:run-1"


def _actions(count: int) -> list[Action]:
    return [
        Action(kind="revoke", target=VaultTokenRef(accessor=f"acc{index:021d}"), reason="workload terminated")
        for index in range(count)
    ]


def _child(
    status: str, incident_id: str, batch: list[Action], alive: list[Action], from_act: int = 0
) -> dict[str, object]:
    child: dict[str, object] = {
        "ExecutionArn": f"{MAP_RUN}:child",
        "Input": json.dumps({"incident_id": incident_id, "actions": [a.model_dump(mode="json") for a in batch]}),
        "InputDetails": {"Included": True},
        "Name": "child",
        "Status": status,
    }
    if status == "SUCCEEDED":
        still_alive = [a.target.model_dump(mode="json") for a in alive]
        output = {
            "still_alive": still_alive,
            "verified_count": len(batch),
            "still_alive_count": len(alive),
            "proven_by_act_read_back_count": from_act,
            "read_again_count": len(batch) - from_act,
        }
        child["Output"] = json.dumps(output)
    else:
        child.update(Error="Lambda.Unknown", Cause="the verify task timed out")
    return child


def _write_results(s3: Any, files: dict[str, list[dict[str, object]]]) -> MapResultsLocation:
    listed: dict[str, list[dict[str, object]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    for status, children in files.items():
        key = f"results/run-1/{status}_0.json"
        body = json.dumps(children).encode()
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        listed[status].append({"Key": key, "Size": len(body)})
    manifest = {"DestinationBucket": BUCKET, "MapRunArn": MAP_RUN, "ResultFiles": listed}
    s3.put_object(Bucket=BUCKET, Key="results/run-1/manifest.json", Body=json.dumps(manifest).encode())
    return MapResultsLocation(Bucket=BUCKET, Key="results/run-1/manifest.json")


def test_a_failed_verify_item_leaves_its_targets_unknown_and_the_run_partial(aws: None) -> None:
    # Given a plan of six tokens, verified in three batches: one proven dead by its act's read-back, one read
    # again that found a token alive, one failed outright
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    client = boto3.client("dynamodb")
    create_table_from_template(client, "LedgerTable", "ledger")
    ledger = DynamoDbLedger("ledger", client)
    actions = _actions(6)
    ledger.open_incident(
        IncidentRecord(
            incident_id="inc-map",
            trigger=Trigger(source="rescind", detail_type="Workload Terminated", event_id="evt-1"),
            plan=Plan.ordered("plan-inc-map", actions),
            opened_at=datetime.now(UTC),
        )
    )
    location = _write_results(
        s3,
        {
            "SUCCEEDED": [
                _child("SUCCEEDED", "inc-map", actions[0:2], alive=[], from_act=2),
                _child("SUCCEEDED", "inc-map", actions[2:4], alive=[actions[3]]),
            ],
            "FAILED": [_child("FAILED", "inc-map", actions[4:6], alive=[])],
        },
    )

    # When the close task sums the results and closes the run
    verified = read_verify_results(s3, location, BUCKET)
    result = close_incident(
        CloseRequest(incident_id="inc-map", outcome=RunOutcome.VERIFIED, verify_results=location), ledger, verified
    )

    # Then the run is partial, not completed: one token is alive, two were never read back
    assert verified.failed_items == 1
    assert result.status is IncidentStatus.PARTIAL
    assert not result.succeeded
    closure = ledger.read_incident("inc-map").closure
    assert closure is not None
    by_key = {standing.target.key: standing.state for standing in closure.credentials}
    assert [by_key[action.target.key] for action in actions] == [
        CredentialState.DEAD,
        CredentialState.DEAD,
        CredentialState.DEAD,
        CredentialState.ALIVE,
        CredentialState.UNKNOWN,
        CredentialState.UNKNOWN,
    ]
    assert closure.still_alive == (actions[3].target,)
    # And the summary names where the proofs came from
    assert (verified.proven_by_act_read_back, verified.read_again) == (2, 2)
    assert "read back: 2 by the action's own read-back, 2 read again by Verify; unfinished Verify items: 1" in (
        closure.summary
    )


def test_results_outside_the_plan_bucket_or_its_results_prefix_are_refused(aws: None) -> None:
    s3 = boto3.client("s3")
    with pytest.raises(InvalidInput, match="plan bucket"):
        read_verify_results(s3, MapResultsLocation(Bucket="someone-elses", Key="results/x/manifest.json"), BUCKET)
    with pytest.raises(InvalidInput, match="outside results/"):
        read_verify_results(s3, MapResultsLocation(Bucket=BUCKET, Key="plans/x/manifest.json"), BUCKET)


def _inline_item(child: dict[str, object]) -> dict[str, object]:
    """The INLINE Verify Map's item for the same batch: its input, with the batch's result in `verified`."""
    return {**json.loads(str(child["Input"])), "verified": json.loads(str(child["Output"]))}


def test_the_inline_verify_items_sum_as_the_result_writers_do(aws: None) -> None:
    # Given the same two finished Verify batches, once from the ResultWriter in S3 and once from an inline Map
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    actions = _actions(4)
    children = [
        _child("SUCCEEDED", "inc-map", actions[0:2], alive=[], from_act=2),
        _child("SUCCEEDED", "inc-map", actions[2:4], alive=[actions[3]]),
    ]
    from_s3 = read_verify_results(s3, _write_results(s3, {"SUCCEEDED": children}), BUCKET)

    # When the inline items are summed
    inline = inline_verify_results([_inline_item(child) for child in children])

    # Then both say the same: all four read back, one alive, two proven by the act's read-back
    assert inline == from_s3
    assert inline.still_alive == (actions[3].target,)
    assert (inline.proven_by_act_read_back, inline.read_again, inline.failed_items) == (2, 2, 0)


def test_a_malformed_inline_verify_item_is_refused() -> None:
    with pytest.raises(InvalidInput, match="inline Verify item is malformed"):
        inline_verify_results([{"incident_id": "inc-map", "actions": []}])
