"""LeakLocator against real OpenBao and moto: a value becomes a reference, or a reason; the entity rule."""

from __future__ import annotations

import hvac
import pytest

from rescind.discovery import DiscoveryScope
from rescind.leaks.locate import LeakLocator
from rescind.leaks.types import LeakAlert, LocatedLeak, SecretType, Unlocated
from rescind.models import VaultEntityRef, VaultTokenRef
from rescind.models.results import utc_now
from tests.conftest import BackendCalls


def token_alert(value: str) -> LeakAlert:
    return LeakAlert(
        source="rescind",
        detail_type="Secret Leaked",
        event_id="e-1",
        secret_type=SecretType.VAULT_TOKEN,
        secret=value,  # type: ignore[arg-type]  # pydantic coerces to SecretStr
        found_at=utc_now(),
    )


@pytest.fixture
def approle(vault: hvac.Client, unique: str) -> tuple[str, str, str]:
    mount = f"approle-{unique}"
    vault.sys.enable_auth_method("approle", path=mount)
    vault.auth.approle.create_or_update_approle("app", token_ttl="1h", mount_point=mount)
    role_id = vault.auth.approle.read_role_id("app", mount_point=mount)["data"]["role_id"]
    return mount, "app", role_id


def login(vault: hvac.Client, mount: str, role_id: str) -> dict[str, str]:
    secret_id = vault.auth.approle.generate_secret_id("app", mount_point=mount)["data"]["secret_id"]
    anonymous = hvac.Client(url=vault.url, timeout=10)
    auth = anonymous.auth.approle.login(role_id, secret_id, mount_point=mount, use_token=False)["auth"]
    return {"token": auth["client_token"], "accessor": auth["accessor"], "entity_id": auth["entity_id"]}


def test_a_token_is_located_with_its_entity_by_its_own_lookup_alone(
    vault: hvac.Client, approle: tuple[str, str, str], backend_calls: BackendCalls
) -> None:
    # Given a leaked AppRole login's token whose entity holds another live token
    mount, _, role_id = approle
    leaked = login(vault, mount, role_id)
    other = login(vault, mount, role_id)
    assert other["entity_id"] == leaked["entity_id"]
    backend_calls.in_order.clear()

    located = LeakLocator(vault, DiscoveryScope(approle_mounts=(mount,))).locate(token_alert(leaked["token"]))

    # Then the token and its entity are named from the value's lookup alone: no token is listed before the kill
    # (whether the entity holds another token is the run's plan's, after it: rescind.leaks.plan)
    assert isinstance(located, LocatedLeak)
    assert located.credentials == (
        VaultEntityRef(entity_id=leaked["entity_id"]),
        VaultTokenRef(accessor=leaked["accessor"]),
    )
    assert [call.split("?")[0] for call in backend_calls.in_order] == ["vault POST /v1/auth/token/lookup"]


def test_a_dead_token_is_unlocated_and_the_reason_does_not_echo_it(vault: hvac.Client) -> None:
    created = vault.auth.token.create(ttl="1h")["auth"]
    vault.auth.token.revoke_accessor(created["accessor"])
    located = LeakLocator(vault, DiscoveryScope()).locate(token_alert(created["client_token"]))
    assert isinstance(located, Unlocated)
    assert created["client_token"] not in located.why


def test_a_secret_id_is_found_on_its_role_and_a_wrong_one_is_not(
    vault: hvac.Client, approle: tuple[str, str, str]
) -> None:
    mount, role, _ = approle
    issued = vault.auth.approle.generate_secret_id(role, mount_point=mount)["data"]
    locator = LeakLocator(vault, DiscoveryScope(approle_mounts=(mount,)))

    def alert(value: str) -> LeakAlert:
        return token_alert(value).model_copy(update={"secret_type": SecretType.VAULT_SECRET_ID})

    found = locator.locate(alert(issued["secret_id"]))
    assert isinstance(found, LocatedLeak)
    expected = f"approle_secret_id:{mount}:{role}:{issued['secret_id_accessor']}"
    assert [ref.key for ref in found.credentials] == [expected]
    missing = locator.locate(alert("00000000-0000-0000-0000-000000000000"))
    assert isinstance(missing, Unlocated)


# --- AWS Health's users and temporary keys (moto) --------------------------------------------------------------


def health_alert(**fields: object) -> LeakAlert:
    defaults: dict[str, object] = {"account_id": "123456789012"}
    return LeakAlert(
        source="aws.health",
        detail_type="AWS Health Event",
        event_id="e-health",
        found_at=utc_now(),
        **{**defaults, **fields},  # type: ignore[arg-type]
    )


def aws_locator(vault: hvac.Client) -> LeakLocator:
    from rescind.aws.session import AwsClientFactory

    return LeakLocator(vault, DiscoveryScope(), aws=AwsClientFactory())


def test_a_user_named_by_health_resolves_to_its_active_keys_only(aws: None, vault: hvac.Client) -> None:
    import boto3

    from rescind.models import IamAccessKeyRef

    # Given a user with an active and an inactive key, and another user with a key
    iam = boto3.client("iam")
    iam.create_user(UserName="deploy-bot")
    active = iam.create_access_key(UserName="deploy-bot")["AccessKey"]["AccessKeyId"]
    inactive = iam.create_access_key(UserName="deploy-bot")["AccessKey"]["AccessKeyId"]
    iam.update_access_key(UserName="deploy-bot", AccessKeyId=inactive, Status="Inactive")
    iam.create_user(UserName="neighbour")
    iam.create_access_key(UserName="neighbour")

    located = aws_locator(vault).locate(health_alert(secret_type=SecretType.AWS_IAM_USER, user_name="deploy-bot"))

    assert isinstance(located, LocatedLeak)
    assert located.credentials == (
        IamAccessKeyRef(account_id="123456789012", user_name="deploy-bot", access_key_id=active),
    )


def test_a_user_that_does_not_exist_is_unlocated_by_name(aws: None, vault: hvac.Client) -> None:
    located = aws_locator(vault).locate(health_alert(secret_type=SecretType.AWS_IAM_USER, user_name="i-0abc1234"))
    assert located == Unlocated(why="no IAM user i-0abc1234 in account 123456789012")


def test_a_temporary_key_is_unlocated_with_its_account_and_what_to_do(aws: None, vault: hvac.Client) -> None:
    import boto3

    # Given a role session's temporary key (ASIA...), whose account STS can name
    role_arn = boto3.client("iam").create_role(RoleName="worker", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    session = boto3.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="session")["Credentials"]
    key_id = session["AccessKeyId"]
    assert key_id.startswith("ASIA")

    located = aws_locator(vault).locate(
        health_alert(secret_type=SecretType.AWS_ACCESS_KEY, access_key_id=key_id, account_id=None)
    )

    assert isinstance(located, Unlocated)
    assert f"{key_id} is a temporary key of a role session in account 123456789012" in located.why
    assert "aws-role-sessions:123456789012:ROLE" in located.why
