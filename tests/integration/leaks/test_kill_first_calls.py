"""The calls the start function makes before it kills, in number and order, against real OpenBao and moto, counted
where every request leaves (hvac's adapter, botocore's API call: tests.conftest.backend_calls), as a warm function
makes them: one locator, one AWS client factory and one kill first, kept between events.

The floor for a leaked secret-id is its `secret-id/lookup` on its role, then `secret-id-accessor/destroy`; for an
access key, `get_access_key_last_used` (its user), then `update_access_key` Inactive. Rescind adds only what
safety needs before the kill: for a key, the user's own listing of it (exact in that account, and its status) and
the user's tags (the guard's hold and owner), read together: two round trips before the kill, not three. A held
or protected credential is still refused before any kill."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from rescind.aws.session import AwsClientFactory
from rescind.guard import GuardPolicy
from rescind.kinds import Backends, GuardRead
from rescind.leaks.kill import KillFirst, kill_first_engine
from rescind.leaks.locate import LeakLocator
from rescind.leaks.start import LeakStartResult, start_leak_response
from rescind.leaks.types import LeakAlert, SecretType, Unlocated
from rescind.ledger.base import Ledger
from rescind.models import Outcome
from tests.conftest import BackendCalls, aws_writes, vault_writes
from tests.integration.leaks.test_kill_first import (
    PROTECTED,
    WORKLOAD,
    Setting,
    alert,
    calls_before,
    dynamodb_ledger,
)
from tests.integration.leaks.test_kill_first import setting as kill_first_setting  # noqa: F401  # its fixture

pytestmark = pytest.mark.integration

DESTROY = "secret-id-accessor/destroy"
DEACTIVATE = "iam:UpdateAccessKey"


@dataclass
class WarmFunction:
    """The start function's collaborators as its execution environment keeps them between events."""

    setting: Setting
    locator: LeakLocator
    kill: KillFirst
    ledger: Ledger

    def start(self, leak: LeakAlert) -> LeakStartResult:
        return start_leak_response(
            leak,
            locator=self.locator,
            ledger=self.ledger,
            sfn_client=boto3.client("stepfunctions", region_name="us-east-1"),
            state_machine_arn=self.setting.machine_arn,
            notify=lambda subject, message: self.setting.notes.append((subject, message)),
            kill=self.kill,
        )


@pytest.fixture
def warm(kill_first_setting: Setting) -> WarmFunction:  # noqa: F811  # the fixture imported above
    setting = kill_first_setting
    factory = AwsClientFactory(region_name="us-east-1")
    factory.caller_identity()  # the cold start's: a warm function has it
    backends = Backends(setting.vault, factory)
    kill = KillFirst(
        engine=kill_first_engine(backends, None),
        read=GuardRead(backends),
        scope=setting.scope(),
        policy=GuardPolicy(protected_workloads=frozenset({PROTECTED})),
        vault_address=str(setting.vault.url),
    )
    locator = LeakLocator(setting.vault, setting.scope(), aws=factory)
    return WarmFunction(setting, locator, kill, dynamodb_ledger())


def forget(calls: BackendCalls) -> None:
    """Count from here."""
    for made_so_far in (calls.vault, calls.aws, calls.in_order):
        made_so_far.clear()


def made(calls: BackendCalls) -> list[str]:
    """The calls in order, the query string dropped, the Vault mount's unique suffix kept."""
    return [call.split("?")[0] for call in calls.in_order]


def secret_id(setting: Setting, role: str = "app", **metadata: str) -> dict[str, str]:
    generated = setting.vault.auth.approle.generate_secret_id(
        role, metadata={"spiffe_id": WORKLOAD, **metadata}, mount_point=setting.approle_mount
    )
    return dict(generated["data"])


def access_key(tag: tuple[str, str] | None = None) -> tuple[str, str]:
    """A fresh IAM user (tagged with its workload, or as `tag` says) and its one access key id."""
    iam = boto3.client("iam", region_name="us-east-1")
    user = f"calls-{uuid.uuid4().hex[:8]}"
    tags = {"rescind:workload": WORKLOAD, **dict([tag] if tag else [])}
    iam.create_user(UserName=user, Tags=[{"Key": key, "Value": value} for key, value in tags.items()])
    return user, str(iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"])


def key_status(user: str) -> str:
    (listed,) = boto3.client("iam", region_name="us-east-1").list_access_keys(UserName=user)["AccessKeyMetadata"]
    return str(listed["Status"])


def test_a_warm_function_destroys_a_leaked_secret_id_after_its_lookup_alone(
    warm: WarmFunction, backend_calls: BackendCalls
) -> None:
    # Given a warm function that has answered a leaked secret-id before (it listed the mount's roles then)
    setting, mount = warm.setting, warm.setting.approle_mount
    earlier = secret_id(setting)
    forget(backend_calls)
    first = warm.start(alert(SecretType.VAULT_SECRET_ID, earlier["secret_id"]))
    assert calls_before(made(backend_calls), DESTROY) == [
        f"vault LIST /v1/auth/{mount}/role",
        f"vault POST /v1/auth/{mount}/role/app/secret-id/lookup",
    ]
    assert first.kill is not None
    assert first.kill.killed, first.kill

    # When another secret-id of the role leaks
    leaked = secret_id(setting)
    forget(backend_calls)
    result = warm.start(alert(SecretType.VAULT_SECRET_ID, leaked["secret_id"]))

    # Then the floor's own calls come first: its lookup on its role, then the destroy; the read-back and the ledger
    # come after
    calls = made(backend_calls)
    before = calls_before(calls, DESTROY)
    assert before == [f"vault POST /v1/auth/{mount}/role/app/secret-id/lookup"]
    assert calls[len(before) : len(before) + 2] == [
        f"vault POST /v1/auth/{mount}/role/app/{DESTROY}",
        f"vault POST /v1/auth/{mount}/role/app/secret-id-accessor/lookup",
    ]
    assert "aws dynamodb:PutItem" in calls[len(before) :]
    assert result.kill is not None
    assert result.kill.killed, result.kill
    assert [(step.target, step.outcome) for step in result.kill.steps] == [
        (f"approle_secret_id:{mount}:app:{leaked['secret_id_accessor']}", Outcome.SUCCEEDED)
    ]


def test_a_secret_id_of_a_role_made_after_the_remembered_listing_is_found_and_a_deleted_role_is_passed(
    warm: WarmFunction, backend_calls: BackendCalls
) -> None:
    # Given a warm function that listed the mount's roles ("app" and "gone"), then "gone" deleted and "new" made
    setting, mount = warm.setting, warm.setting.approle_mount
    approle = setting.vault.auth.approle
    approle.create_or_update_approle("gone", token_ttl="1h", mount_point=mount)
    warm.start(alert(SecretType.VAULT_SECRET_ID, secret_id(setting)["secret_id"]))
    approle.delete_role("gone", mount_point=mount)
    approle.create_or_update_approle("new", token_ttl="1h", mount_point=mount)
    leaked = secret_id(setting, role="new")
    forget(backend_calls)

    # When a secret-id of the new role leaks
    result = warm.start(alert(SecretType.VAULT_SECRET_ID, leaked["secret_id"]))

    # Then the remembered roles are looked up (the deleted one holds nothing), the mount listed again, and only the
    # role it adds looked up before the destroy
    assert calls_before(made(backend_calls), DESTROY) == [
        f"vault POST /v1/auth/{mount}/role/app/secret-id/lookup",
        f"vault POST /v1/auth/{mount}/role/gone/secret-id/lookup",
        f"vault LIST /v1/auth/{mount}/role",
        f"vault POST /v1/auth/{mount}/role/new/secret-id/lookup",
    ]
    assert result.kill is not None
    assert result.kill.killed, result.kill
    assert [step.target for step in result.kill.steps] == [
        f"approle_secret_id:{mount}:new:{leaked['secret_id_accessor']}"
    ]


def key_reads_in_two_round_trips(calls: list[str]) -> bool:
    """The key's user first; then its user's listing and tags, which need only the user's name, in either order
    (they are read together)."""
    first, *together = calls
    return first == "aws iam:GetAccessKeyLastUsed" and sorted(together) == [
        "aws iam:ListAccessKeys",
        "aws iam:ListUserTags",
    ]


@contextmanager
def reads_meeting(iam: Any, operations: tuple[str, ...]) -> Iterator[None]:
    """The first call of each of `operations` on `iam` waits until all of them have been sent: read one after
    another, the first waits alone and fails (BrokenBarrierError), so only reads made together pass. Later calls
    (the read-back after the kill) pass at once."""
    meeting = threading.Barrier(len(operations), timeout=5)
    waiting = set(operations)

    def wait_for_the_others(model: Any, **_: object) -> None:
        if model.name in waiting:
            waiting.discard(model.name)
            meeting.wait()

    for operation in operations:
        iam.meta.events.register(f"before-call.iam.{operation}", wait_for_the_others)
    try:
        yield
    finally:
        for operation in operations:
            iam.meta.events.unregister(f"before-call.iam.{operation}", wait_for_the_others)


def test_a_leaked_keys_listing_and_its_users_tags_are_read_together_before_the_kill(
    warm: WarmFunction, backend_calls: BackendCalls
) -> None:
    # Given a leaked key of a tagged user, and a warm function whose IAM client holds each of the two reads that
    # need only the user's name until the other has been sent
    user, key_id = access_key()
    aws = warm.kill.read.backends.require_aws()
    forget(backend_calls)

    # When it leaks
    with reads_meeting(aws.client("iam", warm.setting.account), ("ListAccessKeys", "ListUserTags")):
        result = warm.start(alert(SecretType.AWS_ACCESS_KEY, key_id))

    # Then both were in flight at once: two round trips before the deactivation, not three
    assert key_reads_in_two_round_trips(calls_before(made(backend_calls), DEACTIVATE))
    assert result.kill is not None
    assert result.kill.killed, result.kill
    assert key_status(user) == "Inactive"


def test_a_warm_function_deactivates_a_leaked_key_after_its_user_its_listing_and_its_tags(
    warm: WarmFunction, backend_calls: BackendCalls
) -> None:
    # Given a leaked access key id, named by the generic event without its account, and a warm function
    user, key_id = access_key()
    forget(backend_calls)

    result = warm.start(alert(SecretType.AWS_ACCESS_KEY, key_id))

    # Then before the deactivation: the key's user, the user's own listing of it in Rescind's account (the only one
    # in sight: its identity is cached, STS is not asked the key's account) and the user's tags (the guard's)
    calls = made(backend_calls)
    before = calls_before(calls, DEACTIVATE)
    assert key_reads_in_two_round_trips(before)
    assert calls[len(before) + 1] == "aws iam:ListAccessKeys"  # the read-back
    assert "aws dynamodb:PutItem" in calls[len(before) :]
    assert key_status(user) == "Inactive"
    assert result.kill is not None
    assert result.kill.killed, result.kill
    assert [(step.outcome, step.acted_on) for step in result.kill.steps] == [
        (Outcome.SUCCEEDED, f"AWS account {warm.setting.account}")
    ]


def test_a_key_whose_account_the_event_states_is_not_asked_of_sts(
    warm: WarmFunction, backend_calls: BackendCalls
) -> None:
    # Given a leaked key id whose account the event states (as AWS Health does), in a scope of several accounts
    user, key_id = access_key()
    scope = warm.setting.scope()
    wide = LeakLocator(
        warm.setting.vault,
        replace(scope, aws_account_ids=(warm.setting.account, "210987654321")),
        aws=warm.kill.read.backends.aws,
    )
    stated = alert(SecretType.AWS_ACCESS_KEY, key_id).model_copy(update={"account_id": warm.setting.account})
    forget(backend_calls)

    result = WarmFunction(warm.setting, wide, warm.kill, warm.ledger).start(stated)

    assert key_reads_in_two_round_trips(calls_before(made(backend_calls), DEACTIVATE))
    assert result.kill is not None
    assert result.kill.killed, result.kill
    assert key_status(user) == "Inactive"


def test_a_key_in_another_account_is_not_taken_for_one_of_rescinds_own(
    warm: WarmFunction, backend_calls: BackendCalls
) -> None:
    # Given a key of a user in another account (moto answers get_access_key_last_used from every account)
    sts = boto3.client("sts", region_name="us-east-1")
    other = sts.assume_role(RoleArn="arn:aws:iam::210987654321:role/any", RoleSessionName="other")["Credentials"]
    iam_there = boto3.client(
        "iam",
        region_name="us-east-1",
        aws_access_key_id=other["AccessKeyId"],
        aws_secret_access_key=other["SecretAccessKey"],
        aws_session_token=other["SessionToken"],
    )
    user = f"elsewhere-{uuid.uuid4().hex[:8]}"
    iam_there.create_user(UserName=user)
    key_id = iam_there.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    forget(backend_calls)

    # When it leaks, to a Rescind whose scope is its own account alone
    located = warm.locator.locate(alert(SecretType.AWS_ACCESS_KEY, key_id))

    # Then Rescind's account does not list it, so STS is asked its account: outside the scope, nothing touched
    assert located == Unlocated(why=f"access key {key_id} is in account 210987654321, outside the discovery scope")
    assert "aws sts:GetAccessKeyInfo" in made(backend_calls)
    assert aws_writes(backend_calls) == []
    (listed,) = iam_there.list_access_keys(UserName=user)["AccessKeyMetadata"]
    assert listed["Status"] == "Active"


@pytest.mark.parametrize(
    ("tag", "why"),
    [(("rescind:hold", "true"), "on hold"), (("rescind:workload", PROTECTED), "protected workload")],
    ids=["held", "protected"],
)
def test_a_held_or_protected_key_is_refused_before_any_kill_call(
    warm: WarmFunction, backend_calls: BackendCalls, tag: tuple[str, str], why: str
) -> None:
    user, key_id = access_key(tag)
    forget(backend_calls)

    result = warm.start(alert(SecretType.AWS_ACCESS_KEY, key_id))

    # Then the guard read the user's tags and refused: no IAM write, the key still Active, the run decides
    assert result.kill is not None
    assert not result.kill.killed
    assert result.kill.steps == ()
    assert why in result.kill.why
    assert key_reads_in_two_round_trips(made(backend_calls)[:3])
    assert "aws iam:UpdateAccessKey" not in made(backend_calls)
    assert aws_writes(backend_calls, frozenset({"iam", "sts"})) == []
    assert key_status(user) == "Active"


@pytest.mark.parametrize(
    ("metadata", "why"),
    [({"rescind_hold": "true"}, "on hold"), ({"spiffe_id": PROTECTED}, "protected workload")],
    ids=["held", "protected"],
)
def test_a_held_or_protected_secret_id_is_refused_before_any_kill_call(
    warm: WarmFunction, backend_calls: BackendCalls, metadata: dict[str, str], why: str
) -> None:
    setting = warm.setting
    warm.start(alert(SecretType.VAULT_SECRET_ID, secret_id(setting)["secret_id"]))  # warm: the roles are listed
    leaked = secret_id(setting, **metadata)
    forget(backend_calls)

    result = warm.start(alert(SecretType.VAULT_SECRET_ID, leaked["secret_id"]))

    assert result.kill is not None
    assert not result.kill.killed
    assert result.kill.steps == ()
    assert why in result.kill.why
    assert vault_writes(backend_calls) == []
    assert made(backend_calls)[0] == f"vault POST /v1/auth/{setting.approle_mount}/role/app/secret-id/lookup"
    state = setting.vault.auth.approle.read_secret_id_accessor(
        "app", leaked["secret_id_accessor"], mount_point=setting.approle_mount
    )
    assert state["data"]["secret_id_accessor"] == leaked["secret_id_accessor"]


def test_a_key_whose_users_tags_cannot_be_read_is_not_killed_first(
    warm: WarmFunction, backend_calls: BackendCalls
) -> None:
    # Given a leaked key whose user's tags Rescind may not read (AccessDenied), read beside its listing
    user, key_id = access_key()
    iam = warm.kill.read.backends.require_aws().client("iam", warm.setting.account)

    def denied(**_: object) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "ListUserTags")

    iam.meta.events.register("before-call.iam.ListUserTags", denied)
    forget(backend_calls)
    try:
        result = warm.start(alert(SecretType.AWS_ACCESS_KEY, key_id))
    finally:
        iam.meta.events.unregister("before-call.iam.ListUserTags", denied)

    # Then it is located (the listing holds it) without the guard's facts; the guard's own read of them fails too,
    # so nothing is deactivated here and the run decides
    assert result.credentials == (f"iam_access_key:{warm.setting.account}:{user}:{key_id}",)
    assert result.kill is not None
    assert not result.kill.killed
    assert result.kill.steps == ()
    assert "the guard's facts could not be read" in result.kill.why
    assert aws_writes(backend_calls, frozenset({"iam", "sts"})) == []
    assert key_status(user) == "Active"
