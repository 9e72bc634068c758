"""Secrets Manager on moto: rotate now, once per action, verified by the version the action created."""

from __future__ import annotations

from typing import Any

import boto3

from rescind.aws.secrets_manager import SecretsManagerSecretHandler, rotation_token
from rescind.aws.session import AwsClientFactory
from rescind.models import Action, ActionKind, ActionParams, SecretsManagerSecretRef
from tests.conftest import TEST_EXTERNAL_ID

OWN = "123456789012"
OTHER = "111111111111"
OLD_VALUE = "old-value-that-leaked-0123456789"


def _sm_in(account_id: str) -> Any:
    if account_id == OWN:
        return boto3.client("secretsmanager", region_name="us-east-1")
    creds = boto3.client("sts", region_name="us-east-1").assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/setup", RoleSessionName="test-setup"
    )["Credentials"]
    return boto3.client(
        "secretsmanager",
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def _secret(sm: Any, name: str, *, rotation: bool) -> str:
    arn: str = sm.create_secret(Name=name, SecretString=OLD_VALUE)["ARN"]
    if rotation:
        # moto accepts rotation rules without a Lambda and rotates by relabelling; AWS needs a rotation
        # function (or managed rotation). Either way DescribeSecret then reports RotationEnabled.
        sm.rotate_secret(SecretId=arn, RotationRules={"AutomaticallyAfterDays": 30}, RotateImmediately=False)
        assert sm.describe_secret(SecretId=arn)["RotationEnabled"]
    return arn


def _stages(sm: Any, arn: str) -> dict[str, list[str]]:
    stages: dict[str, list[str]] = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
    return stages


def _rotate(arn: str, run_id: str = "incident-1") -> Action:
    return Action(
        kind=ActionKind.ROTATE,
        target=SecretsManagerSecretRef(secret_arn=arn),
        reason="leak",
        params=ActionParams(run_id=run_id),
    )


def _assert_no_value(*texts: str) -> None:
    for text in texts:
        assert OLD_VALUE not in text


def test_rotation_configured_rotates_once_per_action(aws: None) -> None:
    # Given a secret with rotation configured
    sm = _sm_in(OWN)
    arn = _secret(sm, "db/password", rotation=True)
    before = _stages(sm, arn)
    current_before = next(v for v, s in before.items() if "AWSCURRENT" in s)
    handler = SecretsManagerSecretHandler(AwsClientFactory())
    action = _rotate(arn)

    # When it is rotated twice by the same action
    first = handler.act(action)
    evidence = handler.verify(action)
    second = handler.act(action)

    # Then the version the action created is AWSCURRENT, the old one AWSPREVIOUS, and there was one rotation
    token = rotation_token(action)
    after = _stages(sm, arn)
    assert first.changed
    assert evidence.confirmed
    assert f"version {token} is AWSCURRENT" in evidence.observed
    assert not second.changed
    assert "already applied" in second.detail
    assert "AWSCURRENT" in after[token]
    assert "AWSPREVIOUS" in after[current_before]
    assert len(after) == len(before) + 1
    _assert_no_value(first.detail, second.detail, evidence.observed)

    # And the next run (another incident or schedule) rotates again, to a new version
    next_run = _rotate(arn, run_id="incident-2")
    assert rotation_token(next_run) != token
    assert handler.act(next_run).changed
    assert handler.verify(next_run).confirmed
    assert handler.verify(action).confirmed  # the first run's version was superseded by a newer one


def test_an_undeclared_secret_without_rotation_needs_an_owner_and_is_unchanged(aws: None) -> None:
    sm = _sm_in(OWN)
    arn = _secret(sm, "api/key", rotation=False)
    before = _stages(sm, arn)
    handler = SecretsManagerSecretHandler(AwsClientFactory())
    action = _rotate(arn)

    outcome = handler.act(action)
    assert (outcome.changed, outcome.needs_owner) == (False, True)
    assert outcome.detail.startswith("rotation needs an owner: declare rescind:rotate and rescind:rotation-hook on")
    assert _stages(sm, arn) == before
    assert not handler.verify(action).confirmed


def test_unmanaged_secret_gets_a_generated_value_when_allowed(aws: None) -> None:
    sm = _sm_in(OWN)
    arn = _secret(sm, "hmac/key", rotation=False)
    handler = SecretsManagerSecretHandler(AwsClientFactory(), generate_when_unmanaged=True, generated_length=40)
    action = _rotate(arn)

    first = handler.act(action)
    evidence = handler.verify(action)
    second = handler.act(action)

    new_value = sm.get_secret_value(SecretId=arn)["SecretString"]
    assert first.changed
    assert evidence.confirmed
    assert not second.changed
    assert new_value != OLD_VALUE
    assert len(new_value) == 40
    assert sm.get_secret_value(SecretId=arn)["VersionId"] == rotation_token(action)
    assert sm.get_secret_value(SecretId=arn, VersionStage="AWSPREVIOUS")["SecretString"] == OLD_VALUE
    for text in (first.detail, second.detail, evidence.observed, evidence.check):
        assert new_value not in text
        assert OLD_VALUE not in text


def test_pending_rotation_is_not_confirmed_until_current(aws: None) -> None:
    # Given a rotation function stopped half-way: our version exists, labelled only AWSPENDING
    sm = _sm_in(OWN)
    arn = _secret(sm, "slow/rotation", rotation=True)
    action = _rotate(arn)
    token = rotation_token(action)
    sm.put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString="pending", VersionStages=["AWSPENDING"])
    sleeps: list[float] = []
    handler = SecretsManagerSecretHandler(
        AwsClientFactory(), verify_timeout_seconds=0.05, poll_interval_seconds=0.01, sleep=sleeps.append
    )

    # Then act does not start a second rotation, and verify waits and then reports "still pending"
    outcome = handler.act(action)
    assert not outcome.changed
    assert "in progress" in outcome.detail
    evidence = handler.verify(action)
    assert not evidence.confirmed
    assert "AWSPENDING" in evidence.observed

    # When the rotation finishes (finishSecret moves AWSCURRENT), verify confirms
    current = next(v for v, s in _stages(sm, arn).items() if "AWSCURRENT" in s)
    sm.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current
    )
    assert handler.verify(action).confirmed


def test_later_rotation_supersedes_and_still_confirms(aws: None) -> None:
    sm = _sm_in(OWN)
    arn = _secret(sm, "superseded", rotation=True)
    handler = SecretsManagerSecretHandler(AwsClientFactory())
    action = _rotate(arn)
    handler.act(action)
    sm.put_secret_value(SecretId=arn, SecretString="an even newer value 0123456789")
    evidence = handler.verify(action)
    assert evidence.confirmed
    assert "superseded" in evidence.observed
    assert not handler.act(action).changed


def test_cross_account_rotation_touches_only_the_target_account(aws: None) -> None:
    theirs = _sm_in(OTHER)
    ours = _sm_in(OWN)
    their_arn = _secret(theirs, "shared/name", rotation=True)
    our_arn = _secret(ours, "shared/name", rotation=True)
    assert f":{OTHER}:" in their_arn
    ours_before = _stages(ours, our_arn)
    handler = SecretsManagerSecretHandler(AwsClientFactory(external_id=TEST_EXTERNAL_ID))
    action = _rotate(their_arn)

    assert handler.act(action).changed
    assert handler.verify(action).confirmed
    assert not handler.act(action).changed
    assert "AWSCURRENT" in _stages(theirs, their_arn)[rotation_token(action)]
    assert _stages(ours, our_arn) == ours_before


def test_missing_and_deleted_secrets_are_absent(aws: None) -> None:
    sm = _sm_in(OWN)
    arn = _secret(sm, "to/delete", rotation=True)
    sm.delete_secret(SecretId=arn, RecoveryWindowInDays=7)
    handler = SecretsManagerSecretHandler(AwsClientFactory())
    for target in (arn, f"arn:aws:secretsmanager:us-east-1:{OWN}:secret:never-AbCdEf"):
        outcome = handler.act(_rotate(target))
        assert outcome.absent
        assert not outcome.changed
