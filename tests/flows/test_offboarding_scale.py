"""Offboarding a workload that holds hundreds or thousands of credentials, through the template's state machine
(moto's interpreter, the handlers in-process, the local stack's DISTRIBUTED Map) against real OpenBao.

The plan's actions travel through S3 (the state carries only their keys), the ledger keeps the plan in chunks, and
the close task sums the Verify Map's results from S3. The default-tier test forces a tiny chunk size and Verify
batch through the functions' settings, so the chunked and batched paths run with a few hundred credentials."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import boto3
import hvac
import pytest

from rescind.ledger import DynamoDbLedger, IncidentStatus, Trigger
from rescind.ledger.closing import CredentialState
from rescind.models import ActionKind, Outcome
from rescind.offboarding.types import offboarding_execution_name
from rescind.response.plan_store import INLINE_MAX_ACTIONS
from rescind.response.types import ResponseRequest
from rescind_cli.runs.history import execution_history
from rescind_local import LocalOpenBao
from rescind_local.seed import WORKLOAD_TAG, prepare_vault
from rescind_local.stack import LocalStack
from tests.conftest import deploy_local_stack
from tests.flows.state_limits import STATE_LIMIT_BYTES, assert_within_state_limit, largest_state_bytes


def seed_tokens(openbao: LocalOpenBao, workload_id: str, count: int) -> list[str]:
    """`count` tokens carrying the workload's `spiffe_id` (the discovery convention); their accessors only."""

    def create(_: int) -> str:
        client = hvac.Client(url=openbao.addr, token=openbao.root_token, timeout=60)
        created = client.auth.token.create(policies=["default"], ttl="2h", meta={"spiffe_id": workload_id})
        return str(created["auth"]["accessor"])

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(create, range(count)))


def offboard(stack: LocalStack, workload_id: str, timeout: float) -> tuple[ResponseRequest, dict[str, Any]]:
    event_id = str(uuid.uuid4())
    request = ResponseRequest(
        incident_id=offboarding_execution_name(workload_id, event_id),
        workload_id=workload_id,
        reason="workload terminated",
        trigger=Trigger(
            source="rescind", detail_type="Workload Terminated", event_id=event_id, workload_id=workload_id
        ),
        terminated_at=datetime.now(UTC),
    )
    described = stack.run_execution(
        "OffboardingStateMachine", request.model_dump(mode="json"), name=request.incident_id, timeout=timeout
    )
    return request, described


def assert_every_token_refused(openbao: LocalOpenBao, accessors: list[str]) -> None:
    root = hvac.Client(url=openbao.addr, token=openbao.root_token)
    alive = []
    for accessor in accessors:
        try:
            root.auth.token.lookup_accessor(accessor)
            alive.append(accessor)
        except hvac.exceptions.Forbidden:
            pass
        except hvac.exceptions.InvalidRequest:
            pass
    assert alive == []


def run_at_scale(openbao: LocalOpenBao, count: int, environment: dict[str, str], timeout: float) -> dict[str, Any]:
    prepare_vault(hvac.Client(url=openbao.addr, token=openbao.root_token))  # the mounts discovery looks in
    workload_id = f"spiffe://scale.rescind/ns/bulk/sa/api-{uuid.uuid4().hex[:10]}"
    accessors = seed_tokens(openbao, workload_id, count)
    with deploy_local_stack(openbao, BlastRadiusCap="100000", environment=environment) as stack:
        started = time.perf_counter()
        request, described = offboard(stack, workload_id, timeout)
        seconds = time.perf_counter() - started
        events = execution_history(boto3.client("stepfunctions"), described["executionArn"])
        dynamodb = boto3.client("dynamodb")
        table = stack.physical_id("LedgerTable")
        chunk_size = int(environment.get("LEDGER_CHUNK_CHARS", "90000"))
        view = DynamoDbLedger(table, dynamodb, chunk_chars=chunk_size).read_incident(request.incident_id)
        s3 = boto3.client("s3")
        bucket = stack.physical_id("PlanBucket")
        keys = [
            item["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", [])
        ]
        chunk_items = dynamodb.query(
            TableName=table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :head)",
            ExpressionAttributeValues={
                ":pk": {"S": f"INCIDENT#{request.incident_id}"},
                ":head": {"S": "A#INCIDENT#PART#"},
            },
            Select="COUNT",
        )["Count"]
    return {
        "accessors": accessors,
        "request": request,
        "described": described,
        "events": events,
        "view": view,
        "keys": keys,
        "chunk_items": chunk_items,
        "seconds": seconds,
    }


def assert_offboarded(openbao: LocalOpenBao, run: dict[str, Any], count: int, revoke_batch: int = 50) -> None:
    view = run["view"]
    # The execution succeeded, and never carried the plan: every state stayed far under the limit
    failures = [event for event in run["events"] if event["type"].endswith("Failed")]
    assert run["described"]["status"] == "SUCCEEDED", json.dumps(failures[:3], default=str)[:3000]
    assert largest_state_bytes(run["events"]) < 16 * 1024
    assert_within_state_limit(run["events"])
    # The plan was read back whole from the ledger, with one action per token, and each was executed once
    assert view.incident is not None
    assert len(view.incident.plan.actions) == count
    assert {attempt.result.target.key for attempt in view.attempts} == {
        a.target.key for a in view.incident.plan.actions
    }
    assert {attempt.result.outcome for attempt in view.attempts} == {Outcome.SUCCEEDED}
    # The closure names every credential dead, as the Verify Map's results in S3 read them back
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.COMPLETED
    assert len(view.closure.in_state(CredentialState.DEAD)) == count
    # The plan's items (Revoke's and Verify's: tokens have no Contain item, so none is written), one read-back object
    # per Revoke batch, and each Map's results are in the plan bucket
    read_backs = [key for key in run["keys"] if key.startswith("plans/") and "/read-back/" in key]
    assert not [key for key in run["keys"] if key.endswith("/contain.json")]
    assert sum(key.startswith("plans/") for key in run["keys"]) == 2 + len(read_backs)
    assert len(read_backs) == -(-count // revoke_batch)
    # Every target was proven dead by its act's own read-back: Verify read none of them again
    assert f"read back: {count} by the action's own read-back, 0 read again" in view.closure.summary
    # Each action was recorded once, under its batch's attempt id and its place in the batch
    assert len(view.attempts) == count
    assert all(attempt.attempt_id.count(".revoke.") == 1 for attempt in view.attempts)
    # Revoke and Verify each wrote a manifest; Contain (no item: tokens have no reversible step) was skipped
    assert sum(key.startswith("results/") and key.endswith("manifest.json") for key in run["keys"]) == 2
    # And using any of the tokens fails
    assert_every_token_refused(openbao, run["accessors"])


def entered_states(events: list[dict[str, Any]]) -> set[str]:
    return {event["stateEnteredEventDetails"]["name"] for event in events if "stateEnteredEventDetails" in event}


def test_a_plan_of_at_most_the_inline_limit_runs_from_the_state(aws: None, openbao: LocalOpenBao) -> None:
    # Given a workload holding as many tokens as a plan may carry in the state
    small = run_at_scale(openbao, INLINE_MAX_ACTIONS, {}, timeout=300)

    # Then it ran through the INLINE Maps: no item object, no Map result in S3, only its read-back, which its Revoke
    # batch wrote and its Verify read (every token proven by its act's own read-back)
    view = small["view"]
    assert small["described"]["status"] == "SUCCEEDED"
    assert_within_state_limit(small["events"])
    assert {"RevokeInline", "VerifyInline"} <= entered_states(small["events"])
    assert not {"Contain", "Revoke", "Verify"} & entered_states(small["events"])
    assert [key.rsplit("/", 2)[-2:] for key in small["keys"]] == [["read-back", "0.json"]]
    assert view.incident is not None
    assert len(view.incident.plan.actions) == len(view.attempts) == INLINE_MAX_ACTIONS
    assert {attempt.result.outcome for attempt in view.attempts} == {Outcome.SUCCEEDED}
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.COMPLETED
    assert len(view.closure.in_state(CredentialState.DEAD)) == INLINE_MAX_ACTIONS
    assert f"read back: {INLINE_MAX_ACTIONS} by the action's own read-back, 0 read again" in view.closure.summary
    assert_every_token_refused(openbao, small["accessors"])


def test_a_plan_one_action_over_the_inline_limit_runs_from_s3(aws: None, openbao: LocalOpenBao) -> None:
    # Given a workload holding one token more than a plan may carry in the state, in one Revoke batch
    big = run_at_scale(openbao, INLINE_MAX_ACTIONS + 1, {"REVOKE_BATCH_SIZE": "40"}, timeout=300)

    # Then it ran through the DISTRIBUTED Maps, its items and results in S3
    assert_offboarded(openbao, big, INLINE_MAX_ACTIONS + 1, revoke_batch=40)
    assert {"Revoke", "Verify"} <= entered_states(big["events"])
    assert not {"RevokeInline", "VerifyInline"} & entered_states(big["events"])


def test_a_few_hundred_credentials_go_through_s3_and_a_chunked_ledger(aws: None, openbao: LocalOpenBao) -> None:
    # Given a workload holding 200 tokens, a ledger that chunks every record over 2,000 characters, and Revoke
    # (and so Verify) items of 40 targets
    environment = {"LEDGER_CHUNK_CHARS": "2000", "REVOKE_BATCH_SIZE": "40"}

    # When it is offboarded through the state machine
    run = run_at_scale(openbao, 200, environment, timeout=300)

    # Then everything ended and was verified, and the ledger holds the plan in chunks
    assert_offboarded(openbao, run, 200, revoke_batch=40)
    assert run["chunk_items"] > 10
    verify_items = [key for key in run["keys"] if key.endswith("/verify.json")]
    assert len(verify_items) == 1


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_two_thousand_credentials_through_the_state_machine(aws: None, openbao: LocalOpenBao) -> None:
    # Given a workload holding 2,000 tokens: beyond what the state (about 730) and one ledger item (about 1,100)
    # could carry before
    run = run_at_scale(openbao, 2000, {}, timeout=2700)

    # Then the offboarding ends and verifies every one of them, with the default chunk size and Verify batch
    assert_offboarded(openbao, run, 2000)
    assert run["chunk_items"] >= 2  # the plan of 2,000 actions is over one item's 90,000 characters


def seed_access_keys(workload_id: str, users: int) -> list[str]:
    """`users` IAM users tagged with the workload (the discovery convention), two access keys each (IAM's limit)."""
    iam = boto3.client("iam")
    key_ids = []
    for number in range(users):
        name = f"deployer-{number:04d}"
        iam.create_user(UserName=name, Tags=[{"Key": WORKLOAD_TAG, "Value": workload_id}])
        key_ids += [iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"] for _ in range(2)]
    return key_ids


def test_a_containment_over_the_state_limit_runs_from_s3_before_any_revocation(
    aws: None, openbao: LocalOpenBao
) -> None:
    # Given a workload holding 600 IAM access keys (each deactivated by a containment action), its identity entity
    # and 20 tokens, and Contain and Revoke items of 50 actions
    vault = hvac.Client(url=openbao.addr, token=openbao.root_token)
    prepare_vault(vault)
    workload_id = f"spiffe://scale.rescind/ns/bulk/sa/keys-{uuid.uuid4().hex[:10]}"
    key_ids = seed_access_keys(workload_id, 300)
    vault.secrets.identity.create_or_update_entity(
        name=f"keys-{uuid.uuid4().hex[:10]}", metadata={"spiffe_id": workload_id}
    )
    accessors = seed_tokens(openbao, workload_id, 20)

    # When it is offboarded through the state machine
    with deploy_local_stack(openbao, BlastRadiusCap="100000", environment={"REVOKE_BATCH_SIZE": "50"}) as stack:
        request, described = offboard(stack, workload_id, timeout=900)
        events = execution_history(boto3.client("stepfunctions"), described["executionArn"])
        view = DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb")).read_incident(
            request.incident_id
        )

    # Then it succeeded, and no state carried the containment: carried in the state, it alone is over the limit
    failures = [event for event in events if event["type"].endswith("Failed")]
    assert described["status"] == "SUCCEEDED", json.dumps(failures[:3], default=str)[:3000]
    assert view.incident is not None
    containment = [action for action in view.incident.plan.actions if action.kind is ActionKind.DISABLE]
    assert len(containment) == 601
    assert len(json.dumps([action.model_dump(mode="json") for action in containment])) > STATE_LIMIT_BYTES
    assert largest_state_bytes(events) < 16 * 1024
    assert_within_state_limit(events)
    # Every key is inactive and every token refused
    iam = boto3.client("iam")
    statuses = {
        key["AccessKeyId"]: key["Status"]
        for user in iam.list_users()["Users"]
        for key in iam.list_access_keys(UserName=user["UserName"])["AccessKeyMetadata"]
    }
    assert statuses == dict.fromkeys(key_ids, "Inactive")
    assert_every_token_refused(openbao, accessors)
    # Each action was recorded once, the 601 reversible ones in Contain items, all of them finished before the first
    # revocation started
    contained = [attempt for attempt in view.attempts if ".contain." in attempt.attempt_id]
    revoked = [attempt for attempt in view.attempts if ".revoke." in attempt.attempt_id]
    assert (len(contained), len(revoked), len(view.attempts)) == (601, 20, 621)
    assert {attempt.result.outcome for attempt in view.attempts} == {Outcome.SUCCEEDED}
    assert max(a.result.finished_at for a in contained) <= min(a.result.started_at for a in revoked)
    # And Verify counted every target dead from its act's own read-back, the containment's included
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.COMPLETED
    assert len(view.closure.in_state(CredentialState.DEAD)) == 621
    assert "read back: 621 by the action's own read-back, 0 read again" in view.closure.summary
