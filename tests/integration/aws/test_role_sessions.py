"""IAM role sessions on moto: a deny-before-issue-time inline policy, read back, never moved backwards, and only
on a role that opted in with the tag rescind:managed=true."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from rescind.aws.role_sessions import (
    MANAGED_TAG,
    REVOKE_POLICY_NAME,
    IamRoleSessionsHandler,
    cutoff_in_policy,
)
from rescind.aws.session import AwsClientFactory
from rescind.exceptions import PolicyRefusal
from rescind.models import Action, ActionKind, ActionParams, IamRoleSessionsRef
from tests.conftest import TEST_EXTERNAL_ID, BackendCalls

OWN = "123456789012"
OTHER = "111111111111"
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
)
APP_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
)


def _iam_in(account_id: str) -> Any:
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


def _role(iam: Any, name: str, *, tags: dict[str, str] | None = None) -> None:
    """A role with an application policy; it opts in to having its sessions cut unless `tags` says otherwise."""
    tags = {MANAGED_TAG: "true"} if tags is None else tags
    iam.create_role(
        RoleName=name,
        AssumeRolePolicyDocument=TRUST,
        Tags=[{"Key": key, "Value": value} for key, value in tags.items()],
    )
    iam.put_role_policy(RoleName=name, PolicyName="app", PolicyDocument=APP_POLICY)


def _revoke(account_id: str, role: str, **params: Any) -> Action:
    ref = IamRoleSessionsRef(account_id=account_id, role_name=role)
    return Action(kind=ActionKind.REVOKE, target=ref, reason="credential exfiltration", params=ActionParams(**params))


def _cutoff(iam: Any, role: str) -> datetime | None:
    document = iam.get_role_policy(RoleName=role, PolicyName=REVOKE_POLICY_NAME)["PolicyDocument"]
    return cutoff_in_policy(document)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_revoke_with_given_cutoff_is_idempotent_and_keeps_other_policies(aws: None) -> None:
    # Given a role with an application inline policy
    iam = _iam_in(OWN)
    _role(iam, "app-role")
    handler = IamRoleSessionsHandler(AwsClientFactory(external_id=TEST_EXTERNAL_ID))
    cutoff = datetime(2025, 11, 3, 10, 15, 30, 250000, tzinfo=UTC)
    action = _revoke(OWN, "app-role", not_before=cutoff)

    # When its sessions are revoked twice with the same cut-off
    first = handler.act(action)
    evidence = handler.verify(action)
    second = handler.act(action)

    # Then the deny policy is attached (cut-off rounded up to the second), once, and the app policy is kept
    assert first.changed
    assert evidence.confirmed
    assert "2025-11-03T10:15:31Z" in evidence.observed
    assert not second.changed
    assert "already applied" in second.detail
    assert _cutoff(iam, "app-role") == datetime(2025, 11, 3, 10, 15, 31, tzinfo=UTC)
    assert set(iam.list_role_policies(RoleName="app-role")["PolicyNames"]) == {"app", REVOKE_POLICY_NAME}
    statement = iam.get_role_policy(RoleName="app-role", PolicyName=REVOKE_POLICY_NAME)["PolicyDocument"]["Statement"]
    assert statement == [
        {
            "Effect": "Deny",
            "Action": ["*"],
            "Resource": ["*"],
            "Condition": {"DateLessThan": {"aws:TokenIssueTime": "2025-11-03T10:15:31Z"}},
        }
    ]


def test_cutoff_moves_forward_never_backward(aws: None) -> None:
    iam = _iam_in(OWN)
    _role(iam, "worker-role")
    start = datetime(2026, 11, 3, 12, 0, 0, 500000, tzinfo=UTC)
    clock = Clock(start)
    handler = IamRoleSessionsHandler(AwsClientFactory(external_id=TEST_EXTERNAL_ID), clock=clock)
    now_action = _revoke(OWN, "worker-role")

    # A revoke without a cut-off uses the moment of acting
    assert handler.act(now_action).changed
    assert handler.verify(now_action).confirmed
    assert _cutoff(iam, "worker-role") == datetime(2026, 11, 3, 12, 0, 1, tzinfo=UTC)

    # An earlier requested cut-off does not move it back (it would re-admit revoked sessions)
    earlier = _revoke(OWN, "worker-role", not_before=start - timedelta(hours=1))
    outcome = handler.act(earlier)
    assert not outcome.changed
    assert "already applied" in outcome.detail
    assert handler.verify(earlier).confirmed
    assert _cutoff(iam, "worker-role") == datetime(2026, 11, 3, 12, 0, 1, tzinfo=UTC)

    # A later revoke moves it forward: sessions issued since the first revoke die too
    clock.now = start + timedelta(minutes=10)
    assert handler.act(now_action).changed
    assert _cutoff(iam, "worker-role") == datetime(2026, 11, 3, 12, 10, 1, tzinfo=UTC)
    assert handler.verify(now_action).confirmed


def test_verify_fails_when_policy_is_missing_or_weaker(aws: None) -> None:
    iam = _iam_in(OWN)
    _role(iam, "audit-role")
    handler = IamRoleSessionsHandler(AwsClientFactory(external_id=TEST_EXTERNAL_ID))
    action = _revoke(OWN, "audit-role", not_before=datetime(2025, 11, 3, 9, 0, tzinfo=UTC))
    assert not handler.verify(action).confirmed

    # A policy of that name whose deny is narrowed by another condition does not count
    narrowed = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {
                    "DateLessThan": {"aws:TokenIssueTime": "2025-11-03T09:00:00Z"},
                    "Bool": {"aws:MultiFactorAuthPresent": "true"},
                },
            }
        ],
    }
    iam.put_role_policy(RoleName="audit-role", PolicyName=REVOKE_POLICY_NAME, PolicyDocument=json.dumps(narrowed))
    assert not handler.verify(action).confirmed
    # ...and act replaces it with a real one
    assert handler.act(action).changed
    assert handler.verify(action).confirmed


def test_cross_account_revoke_touches_only_the_target_account(aws: None) -> None:
    theirs = _iam_in(OTHER)
    ours = _iam_in(OWN)
    _role(theirs, "shared-name")
    _role(ours, "shared-name")
    handler = IamRoleSessionsHandler(AwsClientFactory(external_id=TEST_EXTERNAL_ID))
    action = _revoke(OTHER, "shared-name", not_before=datetime(2025, 11, 3, 8, 0, tzinfo=UTC))

    assert handler.act(action).changed
    assert handler.verify(action).confirmed
    assert not handler.act(action).changed
    assert REVOKE_POLICY_NAME in theirs.list_role_policies(RoleName="shared-name")["PolicyNames"]
    assert ours.list_role_policies(RoleName="shared-name")["PolicyNames"] == ["app"]


def test_missing_role_is_absent(aws: None) -> None:
    handler = IamRoleSessionsHandler(AwsClientFactory(external_id=TEST_EXTERNAL_ID))
    action = _revoke(OWN, "gone-role")
    outcome = handler.act(action)
    assert outcome.absent
    assert not outcome.changed
    assert handler.verify(action).confirmed


def test_refusals_change_nothing(aws: None) -> None:
    iam = _iam_in(OWN)
    _role(iam, "RescindExecutionRole")
    _role(iam, "app-role")
    handler = IamRoleSessionsHandler(AwsClientFactory(external_id=TEST_EXTERNAL_ID))

    # Rescind's own execution role: revoking it would lock Rescind out
    with pytest.raises(PolicyRefusal, match="own execution role"):
        handler.act(_revoke(OWN, "RescindExecutionRole"))
    # A cut-off in the future would deny every new session until then
    future = datetime.now(UTC) + timedelta(hours=2)
    with pytest.raises(PolicyRefusal, match="in the future"):
        handler.act(_revoke(OWN, "app-role", not_before=future))

    for role in ("RescindExecutionRole", "app-role"):
        assert iam.list_role_policies(RoleName=role)["PolicyNames"] == ["app"]


@pytest.mark.parametrize(
    "tags",
    [{}, {MANAGED_TAG: "false"}, {MANAGED_TAG: "True"}, {MANAGED_TAG: ""}, {"rescind:workload": "spiffe://x/y"}],
    ids=["untagged", "false", "True-not-true", "empty", "other-rescind-tag"],
)
@pytest.mark.parametrize("account_id", [OWN, OTHER], ids=["own-account", "other-account"])
def test_a_role_that_has_not_opted_in_is_refused_before_any_write(
    aws: None, backend_calls: BackendCalls, tags: dict[str, str], account_id: str
) -> None:
    # Given a role without rescind:managed=true (the IAM condition compares the value exactly)
    iam = _iam_in(account_id)
    _role(iam, "payroll-role", tags=tags)
    handler = IamRoleSessionsHandler(AwsClientFactory(external_id=TEST_EXTERNAL_ID))
    backend_calls.aws.clear()

    # When its sessions are to be cut
    with pytest.raises(PolicyRefusal) as refused:
        handler.act(_revoke(account_id, "payroll-role", not_before=datetime(2025, 11, 3, 8, 0, tzinfo=UTC)))

    # Then the refusal names the role and the tag, nothing was written, and only the role was read
    assert "payroll-role" in str(refused.value)
    assert f"{MANAGED_TAG}=true" in str(refused.value)
    assert iam.list_role_policies(RoleName="payroll-role")["PolicyNames"] == ["app"]
    assert [call for call in backend_calls.aws if call.startswith("iam:")] == [
        "iam:GetRole",
        "iam:ListRolePolicies",  # the assertion's own read
    ]
    assert not handler.verify(_revoke(account_id, "payroll-role")).confirmed


def test_a_role_that_opted_in_since_a_refusal_is_cut(aws: None) -> None:
    # The tag is read at every act: an owner who opts in after a refusal needs no restart of anything.
    iam = _iam_in(OWN)
    _role(iam, "batch-role", tags={})
    handler = IamRoleSessionsHandler(AwsClientFactory(external_id=TEST_EXTERNAL_ID))
    action = _revoke(OWN, "batch-role", not_before=datetime(2025, 11, 3, 8, 0, tzinfo=UTC))
    with pytest.raises(PolicyRefusal):
        handler.act(action)

    iam.tag_role(RoleName="batch-role", Tags=[{"Key": MANAGED_TAG, "Value": "true"}])

    assert handler.act(action).changed
    assert handler.verify(action).confirmed
