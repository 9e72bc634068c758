"""The client factory: own account directly, other accounts through the execution role, one botocore Config.

The error map itself: tests/unit/test_aws_errors.py."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest
from moto.sts.models import sts_backends

from rescind.aws.session import AWS_CLIENT_CONFIG, AwsClientFactory
from rescind.exceptions import ConfigurationError, InvalidInput
from rescind.models.results import utc_now
from tests.conftest import TEST_EXTERNAL_ID

OWN = "123456789012"
OTHER = "111111111111"


def _assumed_roles(account_id: str) -> list[object]:
    return list(sts_backends[account_id]["aws"].assumed_roles)


@pytest.mark.usefixtures("aws")
def test_own_account_uses_the_default_session() -> None:
    factory = AwsClientFactory(external_id=TEST_EXTERNAL_ID)
    identity = factory.client("sts", OWN).get_caller_identity()
    assert identity["Account"] == OWN
    assert ":assumed-role/" not in identity["Arn"]
    assert _assumed_roles(OWN) == []


@pytest.mark.usefixtures("aws")
def test_other_account_assumes_the_configured_role_and_caches_it() -> None:
    # Given a factory configured with a role name and an external id
    factory = AwsClientFactory(role_name="RescindExecutionRole", external_id=TEST_EXTERNAL_ID, purpose="leak")

    # When a client for another account is asked for twice
    first = factory.client("sts", OTHER)
    second = factory.client("sts", OTHER)

    # Then it acts as the assumed role in that account, and the role was assumed once
    identity = first.get_caller_identity()
    assert identity["Account"] == OTHER
    assert identity["Arn"] == f"arn:aws:sts::{OTHER}:assumed-role/RescindExecutionRole/rescind-leak"
    assert second is first
    assumed = _assumed_roles(OTHER)
    assert len(assumed) == 1
    assert assumed[0].role_arn == f"arn:aws:iam::{OTHER}:role/RescindExecutionRole"  # type: ignore[attr-defined]
    assert assumed[0].external_id == TEST_EXTERNAL_ID  # type: ignore[attr-defined]
    assert factory.role_arn(OTHER) == f"arn:aws:iam::{OTHER}:role/RescindExecutionRole"


@pytest.mark.usefixtures("aws")
def test_assumed_session_is_renewed_shortly_before_expiry() -> None:
    now = utc_now()
    clock_value = [now]
    factory = AwsClientFactory(
        external_id=TEST_EXTERNAL_ID,
        duration_seconds=900,
        refresh_margin=timedelta(minutes=5),
        clock=lambda: clock_value[0],
    )
    first = factory.client("iam", OTHER)
    clock_value[0] = now + timedelta(minutes=9)  # 6 minutes left: still fresh
    assert factory.client("iam", OTHER) is first
    clock_value[0] = now + timedelta(minutes=11)  # 4 minutes left: inside the margin
    assert factory.client("iam", OTHER) is not first
    assert len(_assumed_roles(OTHER)) == 2


@pytest.mark.usefixtures("aws")
def test_injected_client_wins_and_bad_account_is_refused() -> None:
    factory = AwsClientFactory(external_id=TEST_EXTERNAL_ID)
    injected = boto3.client("iam", region_name="us-east-1")
    factory.inject_client("iam", OTHER, injected)
    assert factory.client("iam", OTHER) is injected
    assert _assumed_roles(OTHER) == []
    with pytest.raises(InvalidInput):
        factory.client("iam", "12345")
    with pytest.raises(InvalidInput):
        AwsClientFactory(role_name="bad role name")


@pytest.mark.usefixtures("aws")
def test_every_client_the_factory_builds_takes_the_one_botocore_config() -> None:
    # Standard retry mode, in its own account and through an assumed role alike (rescind.aws.session)
    factory = AwsClientFactory(external_id=TEST_EXTERNAL_ID)

    for client in (factory.client("iam", OWN), factory.client("iam", OTHER), factory.client("sts", OTHER)):
        assert client.meta.config.retries == AWS_CLIENT_CONFIG.retries == {"mode": "standard"}


@pytest.mark.usefixtures("aws")
def test_without_an_external_id_no_role_is_assumed_and_the_setting_is_named() -> None:
    # The member execution role requires sts:ExternalId: refuse before STS, rather than fail as AccessDenied.
    factory = AwsClientFactory()
    with pytest.raises(ConfigurationError) as refused:
        factory.client("iam", OTHER)
    assert "CROSS_ACCOUNT_EXTERNAL_ID" in str(refused.value)
    assert _assumed_roles(OTHER) == []
    # its own account needs none
    assert factory.client("sts", OWN).get_caller_identity()["Account"] == OWN


@pytest.mark.parametrize("external_id", ["", "ext-123", "sixteen chars!!!"])
def test_a_malformed_external_id_is_refused_when_the_factory_is_built(external_id: str) -> None:
    with pytest.raises(InvalidInput, match="external id is malformed"):
        AwsClientFactory(external_id=external_id)
