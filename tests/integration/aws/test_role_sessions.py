"""IAM role sessions on moto: a deny-before-issue-time inline policy, read back, never moved backwards."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from rescind.aws.role_sessions import REVOKE_POLICY_NAME, IamRoleSessionsHandler, cutoff_in_policy
from rescind.aws.session import AwsClientFactory
from rescind.exceptions import PolicyRefusal
from rescind.models import Action, ActionKind, ActionParams, IamRoleSessionsRef

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


def _role(iam: Any, name: str) -> None:
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)
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
    handler = IamRoleSessionsHandler(AwsClientFactory())
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
    handler = IamRoleSessionsHandler(AwsClientFactory(), clock=clock)
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
    handler = IamRoleSessionsHandler(AwsClientFactory())
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
    handler = IamRoleSessionsHandler(AwsClientFactory())
    action = _revoke(OTHER, "shared-name", not_before=datetime(2025, 11, 3, 8, 0, tzinfo=UTC))

    assert handler.act(action).changed
    assert handler.verify(action).confirmed
    assert not handler.act(action).changed
    assert REVOKE_POLICY_NAME in theirs.list_role_policies(RoleName="shared-name")["PolicyNames"]
    assert ours.list_role_policies(RoleName="shared-name")["PolicyNames"] == ["app"]


def test_missing_role_is_absent(aws: None) -> None:
    handler = IamRoleSessionsHandler(AwsClientFactory())
    action = _revoke(OWN, "gone-role")
    outcome = handler.act(action)
    assert outcome.absent
    assert not outcome.changed
    assert handler.verify(action).confirmed


def test_refusals_change_nothing(aws: None) -> None:
    iam = _iam_in(OWN)
    _role(iam, "RescindExecutionRole")
    _role(iam, "app-role")
    handler = IamRoleSessionsHandler(AwsClientFactory())

    # Rescind's own execution role: revoking it would lock Rescind out
    with pytest.raises(PolicyRefusal, match="own execution role"):
        handler.act(_revoke(OWN, "RescindExecutionRole"))
    # A cut-off in the future would deny every new session until then
    future = datetime.now(UTC) + timedelta(hours=2)
    with pytest.raises(PolicyRefusal, match="in the future"):
        handler.act(_revoke(OWN, "app-role", not_before=future))

    for role in ("RescindExecutionRole", "app-role"):
        assert iam.list_role_policies(RoleName=role)["PolicyNames"] == ["app"]
