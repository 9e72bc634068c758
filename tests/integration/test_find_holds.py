"""The plan guard's read of every hold marker (`find_holds`), as a resumed plan makes it (nothing known from a
discovery): a few references at a time, like the plan's other live reads, the holds in the references' order and
the first reference's error in that order raised. On a real OpenBao."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import hvac
import hvac.adapters
import pytest

from rescind.aws.session import AwsClientFactory
from rescind.exceptions import ActionFailed
from rescind.guard import AWS_HOLD_TAG, VAULT_HOLD_KEY, Hold, find_holds
from rescind.models import CredentialRef, IamAccessKeyRef, PkiCertificateRef, VaultTokenRef
from rescind_local import LOCAL_ACCOUNT_ID
from tests.conftest import BackendCalls

pytestmark = pytest.mark.integration


def _token(vault: hvac.Client, *, held: bool = False) -> str:
    meta = {VAULT_HOLD_KEY: "true"} if held else {}
    return str(vault.auth.token.create(ttl="1h", meta=meta)["auth"]["accessor"])


@pytest.fixture
def request_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of the thread each Vault request was sent from."""
    names: list[str] = []
    real_request = hvac.adapters.RawAdapter.request

    def recording_request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        names.append(threading.current_thread().name)
        return real_request(self, method, url, *args, **kwargs)

    monkeypatch.setattr(hvac.adapters.RawAdapter, "request", recording_request)
    return names


def test_a_resumed_plans_holds_are_read_a_few_at_a_time_in_the_references_order(
    vault: hvac.Client, request_threads: list[str]
) -> None:
    # Given a recorded plan's twelve tokens, three of them held
    held_at = {2, 7, 11}
    accessors = [_token(vault, held=index in held_at) for index in range(12)]
    refs: list[CredentialRef] = [VaultTokenRef(accessor=accessor) for accessor in accessors]

    # When its guard reads their holds again (nothing known from a discovery), four at a time
    request_threads.clear()
    holds = find_holds(vault, None, refs, workers=4)

    # Then each token is read once, on the plan's read threads, and the holds come in the plan's order
    assert len(request_threads) == len(refs)
    assert all(name.startswith("plan-read") for name in request_threads), request_threads
    assert holds == [Hold(refs[index].key, f"metadata {VAULT_HOLD_KEY}") for index in sorted(held_at)]


def test_the_first_references_error_in_order_is_raised(vault: hvac.Client, unique: str) -> None:
    # Given references where the third and the sixth cannot be read (PKI mounts that do not exist)
    refs: list[CredentialRef] = [VaultTokenRef(accessor=_token(vault)) for _ in range(8)]
    refs[2] = PkiCertificateRef(mount=f"gone-first-{unique}", serial="01:02")
    refs[5] = PkiCertificateRef(mount=f"gone-second-{unique}", serial="01:02")

    # When the guard reads their holds, several at a time
    # Then the error raised is the third's, as a reference-by-reference loop would raise it
    with pytest.raises(ActionFailed, match=f"gone-first-{unique}"):
        find_holds(vault, None, refs, workers=8)


def test_keys_of_one_iam_user_read_its_tags_once_when_read_a_few_at_a_time(
    aws: None, vault: hvac.Client, backend_calls: BackendCalls
) -> None:
    # Given an IAM user its owner holds, with two access keys, and another user with one
    iam = boto3.client("iam")
    refs: list[CredentialRef] = []
    for user, held in (("held-user", True), ("other-user", False)):
        tags = [{"Key": AWS_HOLD_TAG, "Value": "true"}] if held else []
        iam.create_user(UserName=user, Tags=tags)
        for _ in range(2 if held else 1):
            key = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
            refs.append(IamAccessKeyRef(account_id=LOCAL_ACCOUNT_ID, user_name=user, access_key_id=key))

    # When a resumed plan's guard reads their holds, four at a time
    backend_calls.aws.clear()
    holds = find_holds(vault, AwsClientFactory(), refs, workers=4)

    # Then each user's tags were read once, and both of the held user's keys are held
    assert sorted(call for call in backend_calls.aws if call.startswith("iam:")) == ["iam:ListUserTags"] * 2
    assert holds == [Hold(ref.key, f"tag {AWS_HOLD_TAG} on IAM user held-user") for ref in refs[:2]]
