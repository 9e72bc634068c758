"""Kill first against real OpenBao and moto: the start function (rescind.leaks.start.start_leak_response) locates a
leaked credential, kills it with its reversible step and reads it back, then claims the incident, records the kill
under the plan's action id and starts the run (a real moto state machine). Seen from outside, the leaked credential
is refused at once, before the claim's ledger round trip. A guard refusal touches nothing; a kill Vault does not
answer is recorded failed, and the run still starts; a claim that fails after the kill leaves it dead and says so."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import hvac
import hvac.exceptions
import pytest
from botocore.config import Config

from rescind.aws.session import AwsClientFactory
from rescind.discovery import DiscoveryScope
from rescind.engine.factory import build_engine
from rescind.guard import GuardPolicy
from rescind.issuance.base import IssuanceIndex
from rescind.issuance.dynamodb import DynamoDbIssuanceIndex
from rescind.kinds import Backends, GuardRead
from rescind.leaks.kill import KillFirst, UnclaimedKill, kill_first_engine
from rescind.leaks.locate import LeakLocator
from rescind.leaks.plan import plan_leak_response
from rescind.leaks.start import LeakStartResult, start_leak_response
from rescind.leaks.types import LeakAlert, SecretType
from rescind.ledger import DynamoDbLedger
from rescind.ledger.base import Ledger
from rescind.ledger.sqlite import SqliteLedger
from rescind.models import Action, Outcome
from rescind.models.results import utc_now
from rescind.response.start import StartStatus
from rescind.response.types import GuardDecision, ResponsePlan, ResponseRequest
from rescind.vault.client import own_token_accessor
from rescind_local import create_table_from_template, local_aws
from tests.conftest import BackendCalls, aws_writes, vault_writes
from tests.integration.issuance.test_audit_index import create_table

pytestmark = pytest.mark.integration

WORKLOAD = "spiffe://kill.rescind/app"
PROTECTED = "spiffe://kill.rescind/vault-itself"


@dataclass
class Setting:
    vault: hvac.Client
    approle_mount: str
    account: str
    ledger: SqliteLedger
    machine_arn: str
    notes: list[tuple[str, str]]

    def scope(self) -> DiscoveryScope:
        return DiscoveryScope(approle_mounts=(self.approle_mount,), aws_account_ids=(self.account,))

    def kill_first(self, vault: hvac.Client | None = None, index: IssuanceIndex | None = None) -> KillFirst:
        backends = Backends(vault or self.vault, AwsClientFactory(region_name="us-east-1"))
        return KillFirst(
            engine=kill_first_engine(backends, index),
            read=GuardRead(backends),
            scope=self.scope(),
            policy=GuardPolicy(protected_workloads=frozenset({PROTECTED})),
            vault_address=str(backends.vault.url),
        )

    def start(
        self,
        alert: LeakAlert,
        *,
        kill_vault: hvac.Client | None = None,
        index: IssuanceIndex | None = None,
        ledger: Ledger | None = None,
    ) -> LeakStartResult:
        return start_leak_response(
            alert,
            locator=LeakLocator(self.vault, self.scope(), aws=AwsClientFactory(region_name="us-east-1")),
            ledger=ledger or self.ledger,
            sfn_client=boto3.client("stepfunctions", region_name="us-east-1"),
            state_machine_arn=self.machine_arn,
            notify=lambda subject, message: self.notes.append((subject, message)),
            kill=self.kill_first(kill_vault, index),
        )


@pytest.fixture
def setting(vault: hvac.Client, unique: str, tmp_path: Path) -> Iterator[Setting]:
    mount = f"approle-{unique}"
    vault.sys.enable_auth_method("approle", path=mount)
    vault.auth.approle.create_or_update_approle("app", token_ttl="1h", mount_point=mount)
    with local_aws():
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        machine = sfn.create_state_machine(
            name=f"leak-{unique}",
            definition=json.dumps({"StartAt": "Run", "States": {"Run": {"Type": "Pass", "End": True}}}),
            roleArn="arn:aws:iam::123456789012:role/rescind-leak-response",
        )
        account = boto3.client("sts", region_name="us-east-1").get_caller_identity()["Account"]
        yield Setting(vault, mount, account, SqliteLedger(tmp_path / "ledger.sqlite3"), machine["stateMachineArn"], [])


def alert(secret_type: SecretType, secret: str) -> LeakAlert:
    return LeakAlert(
        source="rescind",
        detail_type="Secret Leaked",
        event_id=str(uuid.uuid4()),
        secret_type=secret_type,
        secret=secret,  # type: ignore[arg-type]  # pydantic coerces to SecretStr
        found_at=utc_now(),
    )


def token_works(vault: hvac.Client, token: str) -> bool:
    """From outside: the leaked token's own lookup-self."""
    try:
        hvac.Client(url=vault.url, token=token, timeout=10).auth.token.lookup_self()
    except hvac.exceptions.Forbidden:
        return False
    return True


def leaked_token(vault: hvac.Client, **meta: str) -> dict[str, Any]:
    created = vault.auth.token.create(policies=["default"], ttl="1h", meta={"spiffe_id": WORKLOAD, **meta})
    return dict(created["auth"])


def run_step_finds_it_done(setting: Setting, result: LeakStartResult) -> list[Outcome]:
    """Each kill is recorded under the plan's own action id (the kind, target and parameters the run's plan gives
    it), and the run's step, executing that action again, finds it done and reads it back: idempotent."""
    attempts = setting.ledger.read_incident(result.incident_id).attempts
    outcomes = []
    for attempt in attempts:
        action = Action(kind=attempt.result.action_kind, target=attempt.result.target, reason="the run's step")
        assert attempt.result.action_id == action.action_id
        assert attempt.result.outcome is Outcome.SUCCEEDED
        assert all(evidence.confirmed for evidence in attempt.result.evidence)
        again = setting.kill_first().engine.execute(action)
        assert again.evidence
        assert all(evidence.confirmed for evidence in again.evidence)
        outcomes.append(again.outcome)
    return outcomes


def test_a_leaked_token_is_revoked_before_the_run_starts(setting: Setting) -> None:
    # Given a live token, leaked by value
    token = leaked_token(setting.vault)

    # When the start function answers the alert
    result = setting.start(alert(SecretType.VAULT_TOKEN, token["client_token"]))

    # Then the token is refused, seen from outside; the kill was read back, recorded and names this Vault
    assert not token_works(setting.vault, token["client_token"])
    assert result.kill is not None
    assert result.kill.killed, result.kill
    assert [(step.target, step.outcome, step.acted_on) for step in result.kill.steps] == [
        (f"vault_token:{token['accessor']}", Outcome.SUCCEEDED, f"Vault {setting.vault.url}")
    ]
    # And the run started, and its step on the token finds it already absent
    assert result.status is StartStatus.STARTED
    assert run_step_finds_it_done(setting, result) == [Outcome.ALREADY_ABSENT]


def approle_login(setting: Setting) -> dict[str, Any]:
    """A fresh AppRole login's auth: a token with an identity entity (the role's, shared by its logins)."""
    mount = setting.approle_mount
    role_id = setting.vault.auth.approle.read_role_id("app", mount_point=mount)["data"]["role_id"]
    secret_id = setting.vault.auth.approle.generate_secret_id("app", mount_point=mount)["data"]["secret_id"]
    anonymous = hvac.Client(url=setting.vault.url, timeout=10)
    return dict(anonymous.auth.approle.login(role_id, secret_id, mount_point=mount, use_token=False)["auth"])


def the_runs_plan(setting: Setting, result: LeakStartResult) -> ResponsePlan:
    """The run the start function started: its plan task, on the execution's own input."""
    assert result.execution_arn is not None
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    started = ResponseRequest.model_validate_json(sfn.describe_execution(executionArn=result.execution_arn)["input"])
    return plan_leak_response(
        started,
        vault=setting.vault,
        aws=AwsClientFactory(region_name="us-east-1"),
        ledger=setting.ledger,
        policy=GuardPolicy(protected_workloads=frozenset({PROTECTED})),
    )


def the_run_plans_and_contains(setting: Setting, result: LeakStartResult) -> ResponsePlan:
    """The run's plan task, then its containment."""
    planned = the_runs_plan(setting, result)
    assert planned.decision is GuardDecision.PROCEED, planned
    engine = build_engine(setting.vault, aws_factory=AwsClientFactory(region_name="us-east-1"))  # the run's
    for action in planned.containment:
        assert engine.execute(action).outcome.is_success
    return planned


@pytest.mark.parametrize("other_session", [False, True], ids=["its only token", "another live token"])
def test_a_token_with_an_entity_is_revoked_before_any_token_is_listed_and_the_run_decides_the_entity(
    setting: Setting, backend_calls: BackendCalls, other_session: bool
) -> None:
    # Given an AppRole login's token on a server with other tokens, its entity holding another session or not
    for _ in range(3):
        leaked_token(setting.vault)
    auth = approle_login(setting)
    other = approle_login(setting) if other_session else None
    assert other is None or other["entity_id"] == auth["entity_id"]
    backend_calls.in_order.clear()

    # When the start function answers the alert
    result = setting.start(alert(SecretType.VAULT_TOKEN, auth["client_token"]))

    # Then the token is revoked before any token is listed (the entity's decision does not keep it alive)
    calls = [call.split("?")[0] for call in backend_calls.in_order]
    before = calls_before(calls, "auth/token/revoke-accessor")
    assert not [call for call in before if "auth/token/accessors" in call], before
    assert not token_works(setting.vault, auth["client_token"])
    assert result.kill is not None
    assert result.kill.killed, result.kill
    assert [step.target for step in result.kill.steps] == [f"vault_token:{auth['accessor']}"]

    # And the run disables the entity when it held only the leaked token, and leaves another session alone
    planned = the_run_plans_and_contains(setting, result)
    entity = f"vault_entity:{auth['entity_id']}"
    assert [action.target.key for action in planned.containment] == ([] if other_session else [entity])
    disabled = setting.vault.read(f"identity/entity/id/{auth['entity_id']}")["data"]["disabled"]
    assert disabled is not other_session
    if other is not None:
        assert token_works(setting.vault, other["client_token"])
    assert run_step_finds_it_done(setting, result) == [Outcome.ALREADY_ABSENT]


def test_a_held_entity_is_not_disabled_by_the_run_and_its_leaked_token_is_still_killed(setting: Setting) -> None:
    # Given a login token, the only one of its entity, whose entity is on hold (the token itself is not)
    auth = approle_login(setting)
    setting.vault.write(f"identity/entity/id/{auth['entity_id']}", metadata={"rescind_hold": "true"})

    result = setting.start(alert(SecretType.VAULT_TOKEN, auth["client_token"]))

    # Then the token is killed first (the entity's hold guards the entity, as when it holds other tokens too)
    assert result.kill is not None
    assert result.kill.killed, result.kill
    assert not token_works(setting.vault, auth["client_token"])
    # And the run's guard reads the entity's hold before disabling it: refused, the entity left enabled
    planned = the_runs_plan(setting, result)
    assert planned.decision is GuardDecision.REFUSE
    assert "hold" in planned.decision_reason
    assert setting.vault.read(f"identity/entity/id/{auth['entity_id']}")["data"]["disabled"] is False


def test_a_leaked_secret_id_is_destroyed_before_the_run_starts(setting: Setting) -> None:
    mount = setting.approle_mount
    generated = setting.vault.auth.approle.generate_secret_id(
        "app", metadata={"spiffe_id": WORKLOAD}, mount_point=mount
    )
    role_id = setting.vault.auth.approle.read_role_id("app", mount_point=mount)["data"]["role_id"]

    result = setting.start(alert(SecretType.VAULT_SECRET_ID, generated["data"]["secret_id"]))

    assert result.kill is not None
    assert result.kill.killed, result.kill
    accessor = generated["data"]["secret_id_accessor"]
    assert [(step.target, step.acted_on) for step in result.kill.steps] == [
        (f"approle_secret_id:{mount}:app:{accessor}", f"Vault {setting.vault.url}")
    ]
    # Seen from outside: a login with it is refused
    anonymous = hvac.Client(url=setting.vault.url, timeout=10)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        anonymous.auth.approle.login(role_id, generated["data"]["secret_id"], mount_point=mount, use_token=False)
    assert run_step_finds_it_done(setting, result) == [Outcome.ALREADY_ABSENT]


def test_a_leaked_access_key_is_deactivated_before_the_run_starts_and_not_deleted(setting: Setting) -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    user = f"kill-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user, Tags=[{"Key": "rescind:workload", "Value": WORKLOAD}])
    key_id = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]

    result = setting.start(alert(SecretType.AWS_ACCESS_KEY, key_id))

    assert result.kill is not None
    assert result.kill.killed, result.kill
    assert [(step.target, step.acted_on) for step in result.kill.steps] == [
        (f"iam_access_key:{setting.account}:{user}:{key_id}", f"AWS account {setting.account}")
    ]
    # Deactivated, not deleted: deletion is the run's, after it verified
    (listed,) = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    assert listed["Status"] == "Inactive"
    assert run_step_finds_it_done(setting, result) == [Outcome.ALREADY_APPLIED]


def test_a_key_the_locate_listed_inactive_is_already_applied_and_read_back(setting: Setting) -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    user = f"kill-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    key_id = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    iam.update_access_key(UserName=user, AccessKeyId=key_id, Status="Inactive")

    result = setting.start(alert(SecretType.AWS_ACCESS_KEY, key_id))

    assert result.kill is not None
    assert result.kill.killed, result.kill
    (step,) = result.kill.steps
    assert step.outcome is Outcome.ALREADY_APPLIED
    assert "Inactive (as listed moments before)" in step.detail
    (attempt,) = setting.ledger.read_incident(result.incident_id).attempts
    assert [evidence.confirmed for evidence in attempt.result.evidence] == [True]


@pytest.mark.parametrize(
    ("meta", "why"),
    [({"rescind_hold": "true"}, "on hold"), ({"spiffe_id": PROTECTED}, "protected workload")],
    ids=["held", "protected"],
)
def test_a_guard_refusal_touches_nothing_and_the_run_decides(
    setting: Setting, backend_calls: BackendCalls, meta: dict[str, str], why: str
) -> None:
    token = leaked_token(setting.vault, **meta)
    backend_calls.vault.clear()

    result = setting.start(alert(SecretType.VAULT_TOKEN, token["client_token"]))

    assert result.kill is not None
    assert not result.kill.killed
    assert result.kill.steps == ()
    assert why in result.kill.why
    assert vault_writes(backend_calls) == []
    assert aws_writes(backend_calls, frozenset({"iam"})) == []
    assert token_works(setting.vault, token["client_token"])
    assert setting.ledger.read_incident(result.incident_id).attempts == ()
    assert result.status is StartStatus.STARTED  # the run's own guard records the refusal


def test_a_key_found_only_by_a_guess_is_not_killed_first(setting: Setting, backend_calls: BackendCalls) -> None:
    # Given AWS Health naming a user, not a key: which of its keys leaked is not known
    iam = boto3.client("iam", region_name="us-east-1")
    user = f"kill-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.create_access_key(UserName=user)
    named = alert(SecretType.AWS_IAM_USER, "").model_copy(
        update={"secret": None, "account_id": setting.account, "user_name": user}
    )
    backend_calls.aws.clear()

    result = setting.start(named)

    assert result.kill is not None
    assert not result.kill.killed
    assert "not exact" in result.kill.why
    assert aws_writes(backend_calls, frozenset({"iam"})) == []
    assert result.status is StartStatus.STARTED


def test_a_kill_vault_does_not_answer_is_recorded_failed_and_the_run_still_starts(setting: Setting) -> None:
    # Given a leaked token, and Vault unreachable once the token is located
    token = leaked_token(setting.vault)
    unreachable = hvac.Client(url="http://127.0.0.1:9", token="unused", timeout=2)

    result = setting.start(alert(SecretType.VAULT_TOKEN, token["client_token"]), kill_vault=unreachable)

    # Then the kill is recorded failed, transiently, naming the Vault; the token still works; the run started
    assert result.kill is not None
    assert not result.kill.killed
    (step,) = result.kill.steps
    assert (step.outcome, step.error_type, step.acted_on) == (
        Outcome.FAILED,
        "VaultUnavailable",
        "Vault http://127.0.0.1:9",
    )
    assert token_works(setting.vault, token["client_token"])
    (attempt,) = setting.ledger.read_incident(result.incident_id).attempts
    assert attempt.result.outcome is Outcome.FAILED
    assert result.status is StartStatus.STARTED
    assert result.execution_arn is not None


def dynamodb_ledger() -> DynamoDbLedger:
    """The deployed stack's ledger table, on this test's moto."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    return DynamoDbLedger(create_table_from_template(client, "LedgerTable", "ledger"), client)


def calls_before(calls: list[str], kill: str) -> list[str]:
    """The calls made before the first one whose text contains `kill` (which must be there)."""
    at = next(index for index, call in enumerate(calls) if kill in call)
    return calls[:at]


def test_a_leaked_token_is_revoked_with_no_call_before_but_the_locates_lookup(
    setting: Setting, backend_calls: BackendCalls
) -> None:
    # Given a leaked token, a warm function (its own accessor already known) and the stack's ledger and index
    token = leaked_token(setting.vault)
    own_token_accessor(setting.vault)
    ledger, index = dynamodb_ledger(), create_table(f"issuance-{uuid.uuid4().hex[:8]}")
    backend_calls.in_order.clear()

    # When the start function answers the alert
    result = setting.start(alert(SecretType.VAULT_TOKEN, token["client_token"]), index=index, ledger=ledger)

    # Then the only Vault call before the revoke is the locate's lookup of the value, and nothing reached AWS
    # (neither the claim nor the index) before it: the floor's own two calls
    calls = [call.split("?")[0] for call in backend_calls.in_order]
    assert calls_before(calls, "auth/token/revoke-accessor") == ["vault POST /v1/auth/token/lookup"]
    after = calls[len(calls_before(calls, "auth/token/revoke-accessor")) :]
    assert "aws dynamodb:PutItem" in after  # the claim and the record
    assert not token_works(setting.vault, token["client_token"])
    # And the kill was read back, recorded under the claimed incident, and the run started
    assert result.kill is not None
    assert result.kill.killed, result.kill
    (attempt,) = ledger.read_incident(result.incident_id).attempts
    assert (attempt.result.outcome, attempt.result.evidence[0].confirmed) == (Outcome.SUCCEEDED, True)
    assert result.status is StartStatus.STARTED


def test_a_leaked_access_key_is_deactivated_before_the_incident_is_claimed(
    setting: Setting, backend_calls: BackendCalls
) -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    user = f"kill-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user, Tags=[{"Key": "rescind:workload", "Value": WORKLOAD}])
    key_id = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    ledger = dynamodb_ledger()
    backend_calls.in_order.clear()

    result = setting.start(alert(SecretType.AWS_ACCESS_KEY, key_id), ledger=ledger)

    # Before the deactivation, the locate's calls alone: the key's user, the user's listing of it in Rescind's own
    # account (the only one in scope: STS is not asked the key's account) and the user's tags (the guard's), the last
    # two together. The key is not listed again: the deactivation starts from the locate's listing, and its
    # read-back after lists the real state. The ledger comes only after. (Rescind's own identity is left out: a warm
    # function has it cached, this test's fresh clients do not.)
    calls = [call for call in backend_calls.in_order if call != "aws sts:GetCallerIdentity"]
    before = calls_before(calls, "iam:UpdateAccessKey")
    assert before[0] == "aws iam:GetAccessKeyLastUsed"
    assert sorted(before[1:]) == ["aws iam:ListAccessKeys", "aws iam:ListUserTags"]  # read together
    assert calls[len(before) + 1] == "aws iam:ListAccessKeys"  # the read-back
    assert result.kill is not None
    assert result.kill.killed, result.kill
    (listed,) = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    assert listed["Status"] == "Inactive"
    assert [a.result.outcome for a in ledger.read_incident(result.incident_id).attempts] == [Outcome.SUCCEEDED]


def test_a_claim_that_fails_after_the_kill_leaves_the_token_dead_and_raises_naming_it(setting: Setting) -> None:
    # Given a leaked token, and a ledger DynamoDB does not answer (no endpoint listens there)
    token = leaked_token(setting.vault)
    unreachable = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=1),
    )

    # When the start function answers the alert, it raises (so Lambda delivers the event again)
    with pytest.raises(UnclaimedKill) as raised:
        setting.start(
            alert(SecretType.VAULT_TOKEN, token["client_token"]), ledger=DynamoDbLedger("ledger", unreachable)
        )

    # Then the token is already refused, seen from outside, and the error says what was killed and unrecorded
    assert not token_works(setting.vault, token["client_token"])
    assert f"revoke vault_token:{token['accessor']}: succeeded" in str(raised.value)
    assert "could not be claimed" in str(raised.value)
    assert token["client_token"] not in str(raised.value)


def test_a_duplicate_alert_kills_again_idempotently_and_records_it_under_the_first_incident(setting: Setting) -> None:
    # Given a leaked access key, reported twice (deactivated, it is still located: it exists)
    iam = boto3.client("iam", region_name="us-east-1")
    user = f"kill-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user, Tags=[{"Key": "rescind:workload", "Value": WORKLOAD}])
    key_id = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]

    first = setting.start(alert(SecretType.AWS_ACCESS_KEY, key_id))
    second = setting.start(alert(SecretType.AWS_ACCESS_KEY, key_id))

    # Then the duplicate found the key already deactivated, read it back, and recorded that under the same incident
    assert second.incident_id == first.incident_id
    assert second.kill is not None
    assert second.kill.why.startswith(f"a duplicate of incident {first.incident_id}")
    assert [step.outcome for step in second.kill.steps] == [Outcome.ALREADY_APPLIED]
    attempts = setting.ledger.read_incident(first.incident_id).attempts
    assert sorted(a.result.outcome for a in attempts) == sorted([Outcome.SUCCEEDED, Outcome.ALREADY_APPLIED])
    assert len({a.result.action_id for a in attempts}) == 1
    assert all(evidence.confirmed for a in attempts for evidence in a.result.evidence)
    # And one run: the duplicate's start is a no-op
    assert second.execution_arn == first.execution_arn


def test_a_tokens_kill_stands_when_the_index_cannot_be_read_after_it_and_says_its_tree_is_not_named(
    setting: Setting,
) -> None:
    # Given a leaked token, and an issuance index whose table is not there
    token = leaked_token(setting.vault)
    missing = DynamoDbIssuanceIndex("no-such-table", boto3.client("dynamodb", region_name="us-east-1"))

    result = setting.start(alert(SecretType.VAULT_TOKEN, token["client_token"]), index=missing)

    # Then the revocation is read back and recorded as made, saying its tree could not be named
    assert not token_works(setting.vault, token["client_token"])
    assert result.kill is not None
    assert result.kill.killed, result.kill
    (step,) = result.kill.steps
    assert step.outcome is Outcome.SUCCEEDED
    assert "its tree is not named: the issuance index could not be read" in step.detail
