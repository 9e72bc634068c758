"""Each leak trigger's sample event through the template's rule, the start function and the leak-response state
machine (moto's interpreter running the ASL, handlers in-process), against real OpenBao and moto.

Each test leaks exactly one credential of a seeded workload and proves, by use, that it is dead and that every
sibling (the same workload's other tokens, keys and secrets, and a neighbour workload) is alive.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import boto3
import hvac
import hvac.exceptions
import pytest

from rescind.leaks.triggers import LeakRejectionReason
from rescind.ledger import ActionAttemptRecord, DynamoDbLedger, IncidentStatus
from rescind.ledger.proofs import KILL_FIRST_MARK
from rescind.models import ActionKind, Outcome
from rescind_local import LocalOpenBao
from rescind_local.github import SAMPLE_WEBHOOK_SECRET, LocalGitHubApi, local_github_api, sign_delivery
from rescind_local.proof import ProofByUse, prove_by_use
from rescind_local.seed import (
    APPROLE_MOUNT,
    MANAGED_ROLE_TAGS,
    SeededWorkload,
    health_event_naming,
    prepare_vault,
    seed_workload,
)
from rescind_local.stack import LocalStack
from rescind_local.stepfunctions import wait_for_execution
from tests.conftest import deploy_local_stack, load_event
from tests.emf import counted
from tests.flows.state_limits import assert_execution_within_state_limit


@pytest.fixture
def workloads(stack: LocalStack, vault: hvac.Client, unique: str) -> tuple[SeededWorkload, SeededWorkload]:
    prepare_vault(vault)
    iam = boto3.client("iam")
    target = seed_workload(vault, iam, f"l-{unique}", f"spiffe://flows.rescind/l-{unique}")
    neighbour = seed_workload(vault, iam, f"m-{unique}", f"spiffe://flows.rescind/m-{unique}")
    return target, neighbour


def generic_event(secret_type: str, secret: str) -> dict[str, Any]:
    event = load_event("secret_leaked.json")
    event["id"] = str(uuid.uuid4())
    event["detail"]["secret_type"] = secret_type
    event["detail"]["secret"] = secret
    return event


def executions(stack: LocalStack) -> list[dict[str, Any]]:
    """Every leak-response execution, each waited for until it ends."""
    sfn = boto3.client("stepfunctions")
    listed = sfn.list_executions(stateMachineArn=stack.state_machine_arn("LeakResponseStateMachine"))["executions"]
    return [wait_for_execution(sfn, item["executionArn"], 60) for item in listed]


def only_execution(stack: LocalStack) -> dict[str, Any]:
    (execution,) = executions(stack)
    return execution


def failures(proofs: list[ProofByUse]) -> list[ProofByUse]:
    return [proof for proof in proofs if not proof.passed]


def ledger(stack: LocalStack) -> DynamoDbLedger:
    return DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb"))


KILL_FIRST_ATTEMPT = KILL_FIRST_MARK  # the start function's attempts (rescind.leaks.kill)


def assert_completed(stack: LocalStack, execution: dict[str, Any]) -> None:
    assert execution["status"] == "SUCCEEDED", execution
    assert_execution_within_state_limit(execution["executionArn"])
    view = ledger(stack).read_incident(execution["name"])
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.COMPLETED
    assert view.attempts
    assert_each_action_acted_once(view.attempts)


def assert_each_action_acted_once(attempts: Sequence[ActionAttemptRecord]) -> None:
    """Each action succeeded once: what the start function killed first, the run's step (and a duplicate alert's
    kill) found done and read back again; every other action succeeded."""
    killed_first = {attempt.result.action_id for attempt in attempts if KILL_FIRST_ATTEMPT in attempt.attempt_id}
    succeeded = [attempt.result.action_id for attempt in attempts if attempt.result.outcome is Outcome.SUCCEEDED]
    assert sorted(succeeded) == sorted(set(succeeded)), "an action succeeded twice"
    for attempt in attempts:
        result = attempt.result
        if result.action_id in killed_first and result.outcome is not Outcome.SUCCEEDED:
            assert result.outcome in (Outcome.ALREADY_ABSENT, Outcome.ALREADY_APPLIED), attempt
            assert result.evidence
            assert all(evidence.confirmed for evidence in result.evidence)
        else:
            assert result.outcome is Outcome.SUCCEEDED, attempt


def test_a_leaked_vault_token_is_revoked_and_its_siblings_live(
    stack: LocalStack, workloads: tuple[SeededWorkload, SeededWorkload], vault: hvac.Client, openbao: LocalOpenBao
) -> None:
    # Given a workload with two tokens, and one of them in a scanner's generic event
    target, neighbour = workloads
    leaked, sibling = target.token_accessors
    event = generic_event("vault_token", target.token_value(leaked))

    # When the event goes through the template's rules
    (match,) = stack.route_event(event)
    assert [delivery.error_type for delivery in match.deliveries] == [None]

    # Then one response ran, and only the leaked token is dead
    assert_completed(stack, only_execution(stack))
    proofs = {p.credential: p for p in prove_by_use(vault, openbao.addr, boto3.client("iam"), target, expected="alive")}
    assert not proofs[f"token {leaked}"].passed  # dead
    assert [p for c, p in proofs.items() if c != f"token {leaked}" and not p.passed] == []
    assert failures(prove_by_use(vault, openbao.addr, boto3.client("iam"), neighbour, expected="alive")) == []
    assert vault.read(f"identity/entity/id/{target.entity_id}")["data"]["disabled"] is False
    assert sibling in target.token_accessors


def approle_login(vault: hvac.Client, workload: SeededWorkload) -> dict[str, Any]:
    """A login with the workload's AppRole secret-id: a token with an identity entity (the role's login entity)."""
    (secret_id_accessor,) = workload.secret_id_accessors
    role_id = vault.auth.approle.read_role_id(workload.name, mount_point=APPROLE_MOUNT)["data"]["role_id"]
    anonymous = hvac.Client(url=vault.url, timeout=10)
    secret_id = workload.secret_id_value(secret_id_accessor)
    return dict(anonymous.auth.approle.login(role_id, secret_id, mount_point=APPROLE_MOUNT, use_token=False)["auth"])


@pytest.mark.parametrize("other_session", [False, True], ids=["its only token", "another live token"])
def test_a_leaked_login_token_is_killed_and_the_run_disables_its_entity_only_when_it_held_nothing_else(
    stack: LocalStack,
    workloads: tuple[SeededWorkload, SeededWorkload],
    vault: hvac.Client,
    openbao: LocalOpenBao,
    other_session: bool,
) -> None:
    # Given a workload's AppRole login token in a scanner's generic event, its entity holding another session or not
    target, neighbour = workloads
    leaked = approle_login(vault, target)
    other = approle_login(vault, target) if other_session else None
    assert other is None or other["entity_id"] == leaked["entity_id"]

    # When the event goes through the template's rule, the start function and the state machine
    (match,) = stack.route_event(generic_event("vault_token", leaked["client_token"]))
    assert [delivery.error_type for delivery in match.deliveries] == [None]

    # Then the token is dead, and the run disabled its entity only when the entity held nothing else
    assert_completed(stack, only_execution(stack))
    with pytest.raises(hvac.exceptions.InvalidRequest):
        vault.auth.token.lookup_accessor(leaked["accessor"])
    disabled = vault.read(f"identity/entity/id/{leaked['entity_id']}")["data"]["disabled"]
    assert disabled is not other_session
    if other is not None:
        assert vault.auth.token.lookup_accessor(other["accessor"])["data"]["accessor"] == other["accessor"]
    assert failures(prove_by_use(vault, openbao.addr, boto3.client("iam"), neighbour, expected="alive")) == []


def test_a_held_key_is_not_killed_first_and_the_run_refuses_it(
    stack: LocalStack, workloads: tuple[SeededWorkload, SeededWorkload]
) -> None:
    # Given a workload's access key whose user is on hold, leaked
    target, _ = workloads
    iam = boto3.client("iam")
    iam.tag_user(UserName=target.iam_user, Tags=[{"Key": "rescind:hold", "Value": "true"}])
    key_id = target.access_key_ids[0]

    stack.route_event(generic_event("aws_access_key", key_id))

    # Then nothing was killed first, the run refused it, and the key is untouched
    execution = only_execution(stack)
    view = ledger(stack).read_incident(execution["name"])
    assert view.attempts == ()
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.REFUSED
    statuses = {
        key["AccessKeyId"]: key["Status"] for key in iam.list_access_keys(UserName=target.iam_user)["AccessKeyMetadata"]
    }
    assert statuses[key_id] == "Active"


def alive_except(
    vault: hvac.Client, openbao: LocalOpenBao, workload: SeededWorkload, dead: set[str]
) -> tuple[list[ProofByUse], list[ProofByUse]]:
    """(credentials expected dead but alive, credentials expected alive but dead), by use."""
    proofs = prove_by_use(vault, openbao.addr, boto3.client("iam"), workload, expected="alive")
    still_alive = [p for p in proofs if p.credential in dead and p.passed]
    killed = [p for p in proofs if p.credential not in dead and not p.passed]
    assert {p.credential for p in proofs} >= dead, "a credential named dead was not proved at all"
    return still_alive, killed


def test_a_leaked_secret_id_is_destroyed_and_nothing_else(
    stack: LocalStack, workloads: tuple[SeededWorkload, SeededWorkload], vault: hvac.Client, openbao: LocalOpenBao
) -> None:
    target, neighbour = workloads
    (accessor,) = target.secret_id_accessors
    stack.route_event(generic_event("vault_secret_id", target.secret_id_value(accessor)))
    assert_completed(stack, only_execution(stack))
    assert alive_except(vault, openbao, target, {f"secret-id {accessor}"}) == ([], [])
    assert alive_except(vault, openbao, neighbour, set()) == ([], [])


def test_a_leaked_certificate_is_revoked_and_nothing_else(
    stack: LocalStack, workloads: tuple[SeededWorkload, SeededWorkload], vault: hvac.Client, openbao: LocalOpenBao
) -> None:
    target, neighbour = workloads
    (serial,) = target.certificate_serials
    stack.route_event(generic_event("certificate", target.certificate_pem(serial)))
    assert_completed(stack, only_execution(stack))
    assert alive_except(vault, openbao, target, {f"certificate {serial}"}) == ([], [])
    assert alive_except(vault, openbao, neighbour, set()) == ([], [])


def test_a_leaked_access_key_is_deactivated_then_deleted_and_nothing_else(
    stack: LocalStack, workloads: tuple[SeededWorkload, SeededWorkload], vault: hvac.Client, openbao: LocalOpenBao
) -> None:
    target, neighbour = workloads
    (key_id,) = target.access_key_ids
    stack.route_event(generic_event("aws_access_key", key_id))
    assert_completed(stack, only_execution(stack))
    keys = boto3.client("iam").list_access_keys(UserName=target.iam_user)["AccessKeyMetadata"]
    assert keys == []  # deleted: a leaked key has no grace period
    assert alive_except(vault, openbao, target, set()) == ([], [])
    assert alive_except(vault, openbao, neighbour, set()) == ([], [])


def test_aws_health_responds_to_every_affected_key(
    stack: LocalStack, workloads: tuple[SeededWorkload, SeededWorkload], vault: hvac.Client, openbao: LocalOpenBao
) -> None:
    # Given a Health event naming both workloads' keys (every entity, not only the first)
    target, neighbour = workloads
    event = load_event("health_risk_credentials_exposed.json")
    event["id"] = str(uuid.uuid4())
    account = boto3.client("sts").get_caller_identity()["Account"]
    health_event_naming(event, account, [target.access_key_ids[0], neighbour.access_key_ids[0]])
    stack.route_event(event)
    runs = executions(stack)
    assert len(runs) == 2
    for run in runs:
        assert_completed(stack, run)
    iam = boto3.client("iam")
    assert iam.list_access_keys(UserName=target.iam_user)["AccessKeyMetadata"] == []
    assert iam.list_access_keys(UserName=neighbour.iam_user)["AccessKeyMetadata"] == []
    assert alive_except(vault, openbao, target, set()) == ([], [])


def test_guardduty_exfiltration_denies_the_roles_earlier_sessions(stack: LocalStack) -> None:
    # Given a role GuardDuty says had its instance credentials used from outside
    iam = boto3.client("iam")
    event = load_event("guardduty_instance_credential_exfiltration.json")
    role_name = event["detail"]["resource"]["accessKeyDetails"]["userName"]
    # (both opted in to having their sessions cut: only the named one may be)
    iam.create_role(
        RoleName=role_name, AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[]}', Tags=MANAGED_ROLE_TAGS
    )
    other = iam.create_role(RoleName=f"{role_name}-other", AssumeRolePolicyDocument="{}", Tags=MANAGED_ROLE_TAGS)[
        "Role"
    ]["RoleName"]
    event["account"] = event["detail"]["accountId"] = boto3.client("sts").get_caller_identity()["Account"]

    stack.route_event(event)

    assert_completed(stack, only_execution(stack))
    policy = iam.get_role_policy(RoleName=role_name, PolicyName="RescindRevokeOlderSessions")["PolicyDocument"]
    (statement,) = policy["Statement"]
    cutoff = statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
    assert cutoff.startswith(event["detail"]["createdAt"][:19])  # sessions before the finding, not before now
    assert iam.list_role_policies(RoleName=other)["PolicyNames"] == []


def test_guardduty_naming_a_role_that_has_not_opted_in_writes_nothing_to_it(stack: LocalStack) -> None:
    # Given a role without the rescind:managed=true tag, named by a GuardDuty exfiltration finding
    iam = boto3.client("iam")
    event = load_event("guardduty_instance_credential_exfiltration.json")
    role_name = event["detail"]["resource"]["accessKeyDetails"]["userName"]
    iam.create_role(RoleName=role_name, AssumeRolePolicyDocument="{}", Tags=[{"Key": "team", "Value": "payments"}])
    event["account"] = event["detail"]["accountId"] = boto3.client("sts").get_caller_identity()["Account"]

    stack.route_event(event)

    # Then the acting task refused it (PolicyRefusal, named in the ledger), and the role has no policy from Rescind
    execution = only_execution(stack)
    assert iam.list_role_policies(RoleName=role_name)["PolicyNames"] == []
    view = ledger(stack).read_incident(execution["name"])
    (attempt,) = view.attempts
    assert attempt.result.outcome is Outcome.FAILED
    assert attempt.result.error_type == "PolicyRefusal"
    assert "rescind:managed=true" in attempt.result.detail
    assert view.closure is not None
    assert view.closure.status is not IncidentStatus.COMPLETED


def test_a_kv_value_found_by_its_fingerprint_is_rotated_and_its_old_versions_destroyed(
    stack: LocalStack,
    workloads: tuple[SeededWorkload, SeededWorkload],
    vault: hvac.Client,
    openbao: LocalOpenBao,
    backend_calls: Any,
) -> None:
    from rescind.fingerprints.dynamodb import DynamoDbFingerprintIndex
    from rescind.fingerprints.indexing import index_kv_mount
    from rescind.fingerprints.runtime import read_fingerprint_key

    target, neighbour = workloads
    (path,) = target.kv_paths
    secretsmanager = boto3.client("secretsmanager")
    key = read_fingerprint_key(secretsmanager, stack.physical_id("FingerprintKeySecret"))
    index = DynamoDbFingerprintIndex(stack.physical_id("FingerprintTable"), boto3.client("dynamodb"))
    index_kv_mount(vault, index, key, "secret", prefix=f"apps/{target.name}/")
    index_kv_mount(vault, index, key, "secret", prefix=f"apps/{neighbour.name}/")
    leaked = target.kv_before(path)["password"]

    event = generic_event("kv_value", "")
    del event["detail"]["secret"]
    event["detail"]["secret_sha256"] = hashlib.sha256(leaked.encode()).hexdigest()
    backend_calls.vault.clear()
    stack.route_event(event)

    assert_completed(stack, only_execution(stack))
    # And the whole leak made these Vault requests, each of the secret or its staging copy: the fingerprint hit
    # confirmed (its value read), the plan's guard and the acting task's guard (the act takes its read), then the
    # rotation and its read-back (tests/integration/test_action_requests.py pins their order)
    secret, staged = f"/v1/secret/data/{path}", f"/v1/secret/data/_rescind-pending/{path}"
    metadata, staged_metadata = secret.replace("/data/", "/metadata/", 1), staged.replace("/data/", "/metadata/", 1)
    requests = [call.split("?", 1)[0].replace(openbao.addr, "") for call in backend_calls.vault]
    assert requests[:4] == [f"GET {secret}", f"GET {metadata}", f"GET {metadata}", f"GET {secret}"]
    assert Counter(requests) == Counter(
        {
            f"GET {secret}": 3,
            f"GET {metadata}": 4,
            f"PATCH {metadata}": 4,
            f"POST {secret}": 1,
            f"POST /v1/secret/destroy/{path}": 1,
            f"POST {staged}": 1,
            f"PATCH {staged_metadata}": 1,
            f"GET {staged}": 1,
            f"DELETE {staged_metadata}": 1,
            f"GET {staged_metadata}": 1,
        }
    )
    metadata = vault.secrets.kv.v2.read_secret_metadata(path, mount_point="secret")["data"]
    assert metadata["current_version"] == 2
    assert metadata["versions"]["1"]["destroyed"] is True
    current = vault.secrets.kv.v2.read_secret_version(path, mount_point="secret", raise_on_deleted_version=True)
    assert current["data"]["data"]["password"] != leaked
    assert alive_except(vault, openbao, target, {f"kv secret/{path}", f"kv secret/{path} v1"}) == ([], [])
    other = neighbour.kv_paths[0]
    assert vault.secrets.kv.v2.read_secret_metadata(other, mount_point="secret")["data"]["current_version"] == 1


def test_the_same_credential_from_three_sources_starts_one_response(
    stack: LocalStack, workloads: tuple[SeededWorkload, SeededWorkload]
) -> None:
    # Given a key reported by a scanner, by AWS Health and again by the scanner (another event id)
    target, _ = workloads
    key_id = target.access_key_ids[0]
    health = load_event("health_risk_credentials_exposed.json")
    health_event_naming(health, boto3.client("sts").get_caller_identity()["Account"], [key_id])
    events = [generic_event("aws_access_key", key_id), health, generic_event("aws_access_key", key_id)]

    for event in events:
        stack.route_event(event)

    (run,) = executions(stack)
    assert_completed(stack, run)


def test_replaying_every_sample_three_times_in_shuffled_order_acts_once(
    stack: LocalStack, workloads: tuple[SeededWorkload, SeededWorkload], vault: hvac.Client
) -> None:
    # Given every leak sample (the generic event for each locatable kind, AWS Health naming the same key as the
    # generic event, GuardDuty naming a role), each delivered three times in a shuffled order
    target, _ = workloads
    account = boto3.client("sts").get_caller_identity()["Account"]
    health = load_event("health_risk_credentials_exposed.json")
    health_event_naming(health, account, [target.access_key_ids[0]])
    guardduty = load_event("guardduty_instance_credential_exfiltration.json")
    guardduty["account"] = guardduty["detail"]["accountId"] = account
    boto3.client("iam").create_role(
        RoleName=guardduty["detail"]["resource"]["accessKeyDetails"]["userName"],
        AssumeRolePolicyDocument="{}",
        Tags=MANAGED_ROLE_TAGS,
    )
    samples = [
        generic_event("vault_token", target.token_value(target.token_accessors[0])),
        generic_event("vault_secret_id", target.secret_id_value(target.secret_id_accessors[0])),
        generic_event("aws_access_key", target.access_key_ids[0]),
        generic_event("certificate", target.certificate_pem(target.certificate_serials[0])),
        health,
        guardduty,
    ]
    deliveries = samples * 3
    random.Random(7).shuffle(deliveries)

    # When they are all routed through the template's rules
    for event in deliveries:
        stack.route_event(event)

    # Then one response per credential ran (Health and the generic event name one key), and each action was
    # attempted exactly once across every delivery: the runs acted only on what no kill first had proven (the key's
    # delete, the certificate, the role's sessions)
    runs = executions(stack)
    assert len(runs) == 5
    for run in runs:
        assert_completed(stack, run)
    attempts = [attempt for run in runs for attempt in ledger(stack).read_incident(run["name"]).attempts]
    by_runs = sorted(str(a.result.action_kind) for a in attempts if KILL_FIRST_ATTEMPT not in a.attempt_id)
    assert by_runs == ["delete", "revoke", "revoke"]
    # The first delivery of each killed its key, token or secret-id first. A duplicate that still located it (the
    # key, deactivated but not yet deleted) killed again before its claim named it a duplicate: already applied,
    # read back, under the same incident. A revoked token or secret-id is no longer located
    killed_first = [a.result for a in attempts if KILL_FIRST_ATTEMPT in a.attempt_id]
    assert sorted(str(r.action_kind) for r in killed_first if r.outcome is Outcome.SUCCEEDED) == [
        "disable",
        "revoke",
        "revoke",
    ]
    again = [r for r in killed_first if r.outcome is not Outcome.SUCCEEDED]
    assert all((r.action_kind, r.outcome) == (ActionKind.DISABLE, Outcome.ALREADY_APPLIED) for r in again), again
    by_run_outcomes = {a.result.outcome for a in attempts if KILL_FIRST_ATTEMPT not in a.attempt_id}
    assert by_run_outcomes == {Outcome.SUCCEEDED}


def test_an_alert_that_matches_nothing_is_an_unresolved_incident_and_touches_nothing(stack: LocalStack) -> None:
    stack.route_event(generic_event("vault_token", "hvs.this-token-never-existed-000000"))
    assert executions(stack) == []
    (incident,) = ledger(stack).list_incidents()
    closure = ledger(stack).read_incident(incident.incident_id).closure
    assert closure is not None
    assert closure.status is IncidentStatus.UNRESOLVED
    assert "hvs." not in closure.summary


def test_no_leaked_value_reaches_the_history_the_ledger_the_bus_or_the_logs(
    stack: LocalStack,
    workloads: tuple[SeededWorkload, SeededWorkload],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given leaks of a token, a secret-id and a certificate, by value
    target, _ = workloads
    values = [
        target.token_value(target.token_accessors[0]),
        target.secret_id_value(target.secret_id_accessors[0]),
        target.certificate_pem(target.certificate_serials[0]).splitlines()[1],  # a line of the PEM body
    ]
    events = [
        generic_event("vault_token", values[0]),
        generic_event("vault_secret_id", values[1]),
        generic_event("certificate", target.certificate_pem(target.certificate_serials[0])),
    ]
    sqs = boto3.client("sqs")
    bus_copy = sqs.create_queue(QueueName="bus-copy")["QueueUrl"]
    events_client = boto3.client("events")
    events_client.put_rule(Name="copy-rescind-events", EventPattern='{"source": ["rescind"]}')
    queue_arn = sqs.get_queue_attributes(QueueUrl=bus_copy, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events_client.put_targets(Rule="copy-rescind-events", Targets=[{"Id": "copy", "Arn": queue_arn}])

    # When they are handled
    for event in events:
        stack.route_event(event)
    runs = executions(stack)
    for run in runs:
        assert_completed(stack, run)

    # Then no value is in any execution's history, any ledger item, any event put on the bus, or any log line
    sfn = boto3.client("stepfunctions")
    history = [
        str(sfn.get_execution_history(executionArn=run["executionArn"], maxResults=1000)["events"]) for run in runs
    ]
    ledger_items = str(boto3.client("dynamodb").scan(TableName=stack.physical_id("LedgerTable"))["Items"])
    published = str(sqs.receive_message(QueueUrl=bus_copy, MaxNumberOfMessages=10).get("Messages", []))
    assert "Credential Revoked" in published
    output = capsys.readouterr()
    logs = output.out + output.err + caplog.text
    places = {"history": " ".join(history), "ledger": ledger_items, "bus": published, "logs": logs}
    for value in values:
        for place, text in places.items():
            assert value not in text, f"a leaked value reached the {place}"


@pytest.mark.parametrize(
    "spoil",
    [
        lambda e: e["detail"].update(secret_type="slack_token"),
        lambda e: e["detail"].pop("found_at"),
        lambda e: e["detail"].update(source_url="x" * 70_000),
    ],
    ids=["unknown type", "malformed", "oversized"],
)
def test_a_bad_leak_event_is_refused_and_calls_nothing(
    stack: LocalStack,
    backend_calls: Any,
    spoil: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a generic event that is wrong in one way
    event = generic_event("vault_token", "hvs.EXAMPLE-bad-input-0000000000")
    spoil(event)

    # When it goes through the rule to the start function
    backend_calls.vault.clear()
    backend_calls.aws.clear()
    (match,) = stack.route_event(event)

    # Then it is refused by name and counted, and nothing reached Vault or any AWS service but the invocation (and
    # the function's cold start reading its stored settings, whatever the event)
    (delivery,) = match.deliveries
    assert delivery.error_type is None  # refused, not failed: it is not kept in the failure queue with its value
    assert backend_calls.vault == []
    assert [call for call in backend_calls.aws if not call.startswith("lambda:") and call != "ssm:GetParameters"] == []
    output = capsys.readouterr().out + caplog.text
    assert "leak event refused" in output
    assert sum(counted(output, "LeakRejected", reason=reason) for reason in LeakRejectionReason) == 1.0
    assert "hvs.EXAMPLE-bad-input" not in output
    assert executions(stack) == []


@contextmanager
def github_stack(openbao: LocalOpenBao, unique: str) -> Iterator[tuple[LocalStack, LocalGitHubApi]]:
    """The stack with a GitHub stand-in for its REST API, a token to read alerts, and the webhook secret the
    sample delivery is signed with."""
    secretsmanager = boto3.client("secretsmanager")
    token_arn = secretsmanager.create_secret(Name=f"github-token-{unique}", SecretString="ghp_local_reader")["ARN"]
    with (
        local_github_api() as github,
        deploy_local_stack(openbao, GitHubTokenSecretArn=token_arn, GitHubApiUrl=github.url) as stack,
    ):
        secretsmanager.put_secret_value(
            SecretId=stack.physical_id("GitHubWebhookSecret"), SecretString=SAMPLE_WEBHOOK_SECRET.decode()
        )
        yield stack, github


def test_a_github_alert_through_the_webhook_revokes_the_token_github_found(
    aws: None, openbao: LocalOpenBao, vault: hvac.Client, unique: str
) -> None:
    # Given GitHub (a local stand-in for its REST API) holding an alert whose secret is a workload's token,
    # the stack's webhook secret set to the one the sample delivery is signed with, and a token to read alerts
    with github_stack(openbao, unique) as (stack, github):
        prepare_vault(vault)
        target = seed_workload(vault, boto3.client("iam"), f"g-{unique}", f"spiffe://flows.rescind/g-{unique}")
        leaked, sibling = target.token_accessors
        delivery = load_event("github_secret_scanning_webhook.json")
        alert = json.loads(delivery["body"])
        github.add_alert(alert["repository"]["full_name"], alert["alert"]["number"], target.token_value(leaked))

        # When GitHub delivers the sample to the function URL, and delivers it again
        first, _ = stack.invoke("GitHubWebhookFunction", delivery)
        again, _ = stack.invoke("GitHubWebhookFunction", delivery)

        # Then it was accepted once and refused as a replay, and one response revoked exactly that token
        assert (first["statusCode"], again["statusCode"]) == (202, 409)
        assert_completed(stack, only_execution(stack))
        alive = {
            p.credential: p.passed
            for p in prove_by_use(vault, openbao.addr, boto3.client("iam"), target, expected="alive")
        }
        assert alive.pop(f"token {leaked}") is False
        assert all(alive.values()), alive
        assert sibling in target.token_accessors
        assert len(github.requests) == 1


def test_a_github_alert_on_an_aws_secret_key_kills_the_key_written_beside_it(
    aws: None, openbao: LocalOpenBao, vault: hvac.Client, unique: str
) -> None:
    # Given a key pair committed to a file, GitHub's alert on its secret half (aws_secret_access_key: the alert's
    # value is the secret key, which names no key id), the alert's locations pointing at that file, and the
    # same user's other key, which must live on
    iam = boto3.client("iam")
    iam.create_user(UserName=f"ci-{unique}")
    leaked = iam.create_access_key(UserName=f"ci-{unique}")["AccessKey"]
    other = iam.create_access_key(UserName=f"ci-{unique}")["AccessKey"]["AccessKeyId"]
    with github_stack(openbao, unique) as (stack, github):
        prepare_vault(vault)
        delivery = load_event("github_secret_scanning_webhook.json")
        body = json.loads(delivery["body"])
        body["alert"]["secret_type"] = "aws_secret_access_key"
        body["alert"]["secret_type_display_name"] = "Amazon AWS Secret Access Key"
        delivery["body"] = json.dumps(body)
        repository, number = body["repository"]["full_name"], body["alert"]["number"]
        github.add_alert(repository, number, leaked["SecretAccessKey"])
        sha = github.add_blob(
            repository,
            f"AWS_SECRET_ACCESS_KEY={leaked['SecretAccessKey']}\nAWS_ACCESS_KEY_ID={leaked['AccessKeyId']}\n",
        )
        github.add_locations(
            repository,
            number,
            [{"type": "commit", "details": {"path": "deploy/.env", "start_line": 1, "end_line": 1, "blob_sha": sha}}],
        )

        # When GitHub delivers the alert
        answer, _ = stack.invoke("GitHubWebhookFunction", sign_delivery(delivery, SAMPLE_WEBHOOK_SECRET))

        # Then the key written beside the secret is dead, the user's other key lives, and no value was kept
        assert answer["statusCode"] == 202
        assert_completed(stack, only_execution(stack))
        keys = {
            k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=f"ci-{unique}")["AccessKeyMetadata"]
        }
        assert keys == {other: "Active"}
        ledger_items = str(boto3.client("dynamodb").scan(TableName=stack.physical_id("LedgerTable"))["Items"])
        assert leaked["SecretAccessKey"] not in ledger_items
        assert leaked["AccessKeyId"] in ledger_items
