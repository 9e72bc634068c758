"""The plan task's S3 items (moto): the containment and the rest each in batches with their own read-back object,
Verify's batches naming the same objects, and a reference whose size does not grow with the plan."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from rescind.models import Action, ActionKind
from rescind.models.credentials import IamAccessKeyRef, VaultTokenRef
from rescind.response.plan_store import INLINE_MAX_ACTIONS, store_plan
from rescind.response.types import GuardDecision, ResponsePlan

BUCKET = "rescind-plan-bucket"


def _plan(keys: int, tokens: int, decision: GuardDecision = GuardDecision.PROCEED) -> ResponsePlan:
    containment = tuple(
        Action(
            kind=ActionKind.DISABLE,
            target=IamAccessKeyRef(account_id="123456789012", user_name="deployer", access_key_id=f"AKIA{n:016d}"),
            reason="workload terminated",
        )
        for n in range(keys)
    )
    actions = tuple(
        Action(kind=ActionKind.REVOKE, target=VaultTokenRef(accessor=f"accessor{n:016d}"), reason="terminated")
        for n in range(tokens)
    )
    return ResponsePlan(
        incident_id="inc-store",
        workload_id="spiffe://flows.rescind/api",
        decision=decision,
        decision_reason="within policy",
        containment=containment,
        actions=actions,
        counts_by_kind={"iam_access_key": keys, "vault_token": tokens},
    )


def _read(key: str | None) -> Any:
    assert key is not None
    return json.loads(boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())


@pytest.fixture
def s3(aws: None) -> Any:
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def test_containment_and_the_rest_go_in_batches_each_with_its_own_read_back(s3: Any) -> None:
    # Given a plan of 3 keys to deactivate and 5 tokens to revoke, in batches of 2
    reference = store_plan(_plan(3, 5), s3, BUCKET, revoke_batch_size=2)

    # Then the reference carries counts and keys, never an action
    assert (reference.action_count, reference.containment_count, reference.verify_item_count) == (8, 3, 5)
    assert not {"actions", "containment"} & reference.model_dump().keys()
    assert str(reference.containment_items_key).endswith("/contain.json")
    contain, revoke = _read(reference.containment_items_key), _read(reference.revoke_items_key)
    # Contain's items hold only the reversible actions, Revoke's the rest, numbered on from Contain's read-backs
    assert [len(item["actions"]) for item in contain] == [2, 1]
    assert {action["kind"] for item in contain for action in item["actions"]} == {"disable"}
    assert [len(item["actions"]) for item in revoke] == [2, 2, 1]
    assert {action["kind"] for item in revoke for action in item["actions"]} == {"revoke"}
    keys = [item["read_back_key"] for item in contain + revoke]
    assert [key.rsplit("/", 1)[-1] for key in keys] == ["0.json", "1.json", "2.json", "3.json", "4.json"]
    # Verify reads the same batches and counts each from the same read-back object, which starts empty
    assert _read(reference.verify_items_key) == contain + revoke
    assert all(_read(key) == {"incident_id": "inc-store", "proven": []} for key in keys)


def test_the_reference_stays_small_however_large_the_containment(s3: Any) -> None:
    # Given 2,000 keys to deactivate: about 1 MB of actions
    reference = store_plan(_plan(2000, 0), s3, BUCKET, revoke_batch_size=50)

    # Then the reference the state carries is a few hundred bytes, and Contain reads 40 items from S3
    assert len(reference.model_dump_json()) < 1024
    assert len(_read(reference.containment_items_key)) == 40
    # And nothing is written for Revoke, which has no item: the state machine skips it (revoke_count is 0)
    assert (reference.revoke_items_key, reference.revoke_count) == (None, 0)


def test_a_plan_that_will_not_act_writes_nothing(s3: Any) -> None:
    reference = store_plan(_plan(3, 1, GuardDecision.DRY_RUN), s3, BUCKET)
    assert (reference.revoke_items_key, reference.verify_items_key, reference.verify_item_count) == (None, None, 0)
    assert (reference.containment_items_key, reference.action_count, reference.containment_count) == (None, 4, 3)
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_a_plan_of_one_batch_each_rides_in_the_state_and_only_its_read_backs_are_written(s3: Any) -> None:
    # Given a plan of 2 keys to deactivate and 3 tokens to revoke, in batches of 50: one item each
    reference = store_plan(_plan(2, 3), s3, BUCKET, revoke_batch_size=50)

    # Then its items are in the reference (the state), and the state machine's INLINE Maps run them
    assert reference.inline
    assert reference.inline_items is not None
    assert (reference.containment_items_key, reference.revoke_items_key, reference.verify_items_key) == (None,) * 3
    contain, revoke = reference.inline_items.contain, reference.inline_items.revoke
    assert [len(item["actions"]) for item in contain + revoke] == [2, 3]  # type: ignore[arg-type]
    assert reference.inline_items.verify == contain + revoke
    assert reference.verify_item_count == 2
    # And S3 holds only the two read-back objects, empty, which the batches write and Verify reads
    written = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert sorted(written) == sorted(str(item["read_back_key"]) for item in contain + revoke)
    assert all(_read(key) == {"incident_id": "inc-store", "proven": []} for key in written)


@pytest.mark.parametrize(
    ("keys", "tokens", "batch"),
    [(0, INLINE_MAX_ACTIONS + 1, 50), (0, 3, 2)],
    ids=["over the limit", "two batches"],
)
def test_a_plan_over_the_limit_or_of_two_batches_goes_to_s3(s3: Any, keys: int, tokens: int, batch: int) -> None:
    reference = store_plan(_plan(keys, tokens), s3, BUCKET, revoke_batch_size=batch)

    assert not reference.inline
    assert reference.inline_items is None
    assert _read(reference.verify_items_key)
