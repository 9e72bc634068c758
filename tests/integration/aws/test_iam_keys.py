"""IAM access keys on moto: deactivate, delete after a grace period, only the named key, across accounts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import boto3
import pytest

from rescind.aws.iam_keys import IamAccessKeyHandler, find_access_keys_by_workload_tag
from rescind.aws.session import AwsClientFactory
from rescind.exceptions import InvalidInput, PolicyRefusal
from rescind.models import Action, ActionKind, ActionParams, IamAccessKeyRef
from rescind.models.results import utc_now
from tests.conftest import TEST_EXTERNAL_ID

OWN = "123456789012"
OTHER = "111111111111"


def _iam_in(account_id: str) -> Any:
    """An IAM client acting in `account_id` (moto maps assumed-role credentials to the role's account)."""
    if account_id == OWN:
        return boto3.client("iam", region_name="us-east-1")
    creds = boto3.client("sts", region_name="us-east-1").assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/setup", RoleSessionName="test-setup"
    )["Credentials"]
    return boto3.client(
        "iam",
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def _user_with_two_keys(iam: Any, user_name: str, tags: list[dict[str, str]] | None = None) -> tuple[str, str]:
    iam.create_user(UserName=user_name, Tags=tags or [])
    first = iam.create_access_key(UserName=user_name)["AccessKey"]["AccessKeyId"]
    second = iam.create_access_key(UserName=user_name)["AccessKey"]["AccessKeyId"]
    return first, second


def _statuses(iam: Any, user_name: str) -> dict[str, str]:
    keys = iam.list_access_keys(UserName=user_name)["AccessKeyMetadata"]
    return {key["AccessKeyId"]: key["Status"] for key in keys}


def _action(kind: ActionKind, account_id: str, user: str, key_id: str, **params: Any) -> Action:
    ref = IamAccessKeyRef(account_id=account_id, user_name=user, access_key_id=key_id)
    return Action(kind=kind, target=ref, reason="leaked in a public repository", params=ActionParams(**params))


@pytest.fixture
def handler(aws: None) -> IamAccessKeyHandler:
    return IamAccessKeyHandler(AwsClientFactory(external_id=TEST_EXTERNAL_ID))


def test_disable_deactivates_only_the_named_key_and_is_idempotent(handler: IamAccessKeyHandler) -> None:
    # Given a user with two active keys
    iam = _iam_in(OWN)
    leaked, other = _user_with_two_keys(iam, "deploy-bot")
    action = _action(ActionKind.DISABLE, OWN, "deploy-bot", leaked)

    # When the leaked key is disabled, twice
    first = handler.act(action)
    evidence = handler.verify(action)
    second = handler.act(action)

    # Then only that key is Inactive, the read-back says so, and the rerun is already applied
    assert first.changed
    assert evidence.confirmed
    assert "Inactive" in evidence.observed
    assert not second.changed
    assert not second.absent
    assert "already applied" in second.detail
    assert _statuses(iam, "deploy-bot") == {leaked: "Inactive", other: "Active"}
    assert handler.verify(action).confirmed


def test_delete_refused_while_active_then_deletes_after_grace(handler: IamAccessKeyHandler) -> None:
    iam = _iam_in(OWN)
    leaked, other = _user_with_two_keys(iam, "ci-user")
    delete = _action(ActionKind.DELETE, OWN, "ci-user", leaked, not_before=utc_now() - timedelta(minutes=1))

    # An Active key is never deleted
    with pytest.raises(PolicyRefusal, match="deactivate and verify first"):
        handler.act(delete)
    assert _statuses(iam, "ci-user") == {leaked: "Active", other: "Active"}
    assert not handler.verify(delete).confirmed

    # After a verified disable, and once the grace period is over, it is deleted, once
    disable = _action(ActionKind.DISABLE, OWN, "ci-user", leaked)
    handler.act(disable)
    assert handler.verify(disable).confirmed
    first = handler.act(delete)
    evidence = handler.verify(delete)
    second = handler.act(delete)

    assert first.changed
    assert evidence.confirmed
    assert "absent" in evidence.observed
    assert not second.changed
    assert second.absent
    assert "already absent" in second.detail
    assert _statuses(iam, "ci-user") == {other: "Active"}
    # A disable of the deleted key is "already absent", and its verify is confirmed (gone is more than inactive)
    assert handler.act(disable).absent
    assert handler.verify(disable).confirmed


def test_delete_refused_before_the_grace_period_ends(handler: IamAccessKeyHandler) -> None:
    iam = _iam_in(OWN)
    leaked, _ = _user_with_two_keys(iam, "grace-user")
    handler.act(_action(ActionKind.DISABLE, OWN, "grace-user", leaked))
    delete = _action(ActionKind.DELETE, OWN, "grace-user", leaked, not_before=utc_now() + timedelta(hours=1))
    with pytest.raises(PolicyRefusal, match="grace period"):
        handler.act(delete)
    assert _statuses(iam, "grace-user")[leaked] == "Inactive"


def test_key_of_another_user_is_refused_and_nothing_changes(handler: IamAccessKeyHandler) -> None:
    # Given two users, and a reference that pairs one user's name with the other's key id
    iam = _iam_in(OWN)
    alice_keys = _user_with_two_keys(iam, "alice")
    bob_key, bob_other = _user_with_two_keys(iam, "bob")
    mismatched = _action(ActionKind.DISABLE, OWN, "alice", bob_key)

    # Then the action is refused (not reported "already absent"), and no key changed
    with pytest.raises(InvalidInput, match="belongs to user 'bob'"):
        handler.act(mismatched)
    evidence = handler.verify(mismatched)
    assert not evidence.confirmed
    assert "bob" in evidence.observed
    assert _statuses(iam, "alice") == dict.fromkeys(alice_keys, "Active")
    assert _statuses(iam, "bob") == {bob_key: "Active", bob_other: "Active"}


def test_unknown_key_and_unknown_user_are_absent(handler: IamAccessKeyHandler) -> None:
    iam = _iam_in(OWN)
    iam.create_user(UserName="lonely")
    never_issued = "AKIA" + "Z" * 16
    for user in ("lonely", "no-such-user"):
        outcome = handler.act(_action(ActionKind.DISABLE, OWN, user, never_issued))
        assert outcome.absent
        assert not outcome.changed


def test_cross_account_acts_only_in_the_target_account(handler: IamAccessKeyHandler) -> None:
    # Given the same user name in two accounts, each with two keys
    theirs = _iam_in(OTHER)
    ours = _iam_in(OWN)
    their_leaked, their_other = _user_with_two_keys(theirs, "deploy-bot")
    our_first, our_second = _user_with_two_keys(ours, "deploy-bot")
    action = _action(ActionKind.DISABLE, OTHER, "deploy-bot", their_leaked)

    # When the other account's key is disabled through the factory (assumed role), twice
    assert handler.act(action).changed
    assert handler.verify(action).confirmed
    assert not handler.act(action).changed

    # Then only that key changed; the caller's account is untouched
    assert _statuses(theirs, "deploy-bot") == {their_leaked: "Inactive", their_other: "Active"}
    assert _statuses(ours, "deploy-bot") == {our_first: "Active", our_second: "Active"}

    # And a key id from the other account, named under our account, is absent here, not acted on
    crossed = _action(ActionKind.DISABLE, OWN, "deploy-bot", their_other)
    assert handler.act(crossed).absent
    assert _statuses(theirs, "deploy-bot")[their_other] == "Active"


def test_find_access_keys_by_workload_tag(aws: None) -> None:
    iam = _iam_in(OTHER)
    workload = "spiffe://example.org/ns/prod/sa/payments"
    tagged = _user_with_two_keys(iam, "payments-bot", [{"Key": "rescind:workload", "Value": workload}])
    _user_with_two_keys(iam, "other-bot", [{"Key": "rescind:workload", "Value": "spiffe://example.org/other"}])
    _user_with_two_keys(iam, "untagged-bot")

    found = find_access_keys_by_workload_tag(AwsClientFactory(external_id=TEST_EXTERNAL_ID), OTHER, workload)

    assert {(ref.account_id, ref.user_name, ref.access_key_id) for ref in found} == {
        (OTHER, "payments-bot", key) for key in tagged
    }
    assert find_access_keys_by_workload_tag(AwsClientFactory(), OWN, workload) == []
