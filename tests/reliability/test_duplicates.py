"""At-least-once delivery: every sample event delivered three times, in any interleaving, acts once.

EventBridge may deliver an event more than once, and the leak sources report one credential several times (a
scanner and AWS Health name the same key). Hypothesis draws the order in which all deliveries arrive; each example
deploys the template to a fresh moto, seeds fresh workloads on the session's OpenBao, routes every delivery through
the template's rules, waits for every execution, and then reads the ledger and the real state.

The workload layout: each termination sample names its own workload (bound through the inventory, as
tests/flows/test_termination_triggers.py does; the generic event names its SPIFFE ID), the leak samples leak
credentials of one more workload (as tests/flows/test_leak_alerts.py does), and a neighbour is never named.
Distinct workloads mean no two incidents plan the same target, so the expectation is strict: every action id has
exactly one attempt in the whole ledger, and it changed something (SUCCEEDED). An already_absent or
already_applied attempt would mean a duplicate delivery reached the engine, which the start functions' execution
names (offboarding: workload + event id) and the leak dedup claim (one response per credential within the window)
exist to prevent.

Sizes: RESCIND_DUPLICATE_EXAMPLES (default 1, derandomized: one example costs about 25 s) in the fast run;
`pytest -m slow` runs RESCIND_DUPLICATE_SLOW_EXAMPLES (default 20) random orders.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import hvac
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rescind.inventory import DynamoDbInventory
from rescind.inventory.types import CloudResourceKind, WorkloadBinding
from rescind.ledger import DynamoDbLedger, IncidentStatus
from rescind.offboarding.triggers import parse_termination_event
from rescind_local import LOCAL_ACCOUNT_ID, LOCAL_REGION, LocalOpenBao, local_aws
from rescind_local.lambdas import forget_loaded_handlers
from rescind_local.proof import prove_by_use
from rescind_local.seed import MANAGED_ROLE_TAGS, SeededWorkload, health_event_naming, prepare_vault, seed_workload
from rescind_local.stack import LocalStack
from rescind_local.stepfunctions import wait_for_execution
from tests.conftest import deploy_local_stack
from tests.flows.test_leak_alerts import KILL_FIRST_ATTEMPT, assert_each_action_acted_once
from tests.reliability.strategies import load_sample

FAST_EXAMPLES = int(os.environ.get("RESCIND_DUPLICATE_EXAMPLES", "1"))
SLOW_EXAMPLES = int(os.environ.get("RESCIND_DUPLICATE_SLOW_EXAMPLES", "20"))
DELIVERIES_PER_EVENT = 3

TERMINATIONS = {
    "ec2_instance_terminated.json": CloudResourceKind.EC2_INSTANCE,
    "ecs_task_stopped.json": CloudResourceKind.ECS_TASK,
    "lambda_function_deleted.json": CloudResourceKind.LAMBDA_FUNCTION,
    "autoscaling_instance_terminating.json": CloudResourceKind.EC2_INSTANCE,
    "workload_terminated.json": None,
}
# The four generic leak events, AWS Health (naming the generic event's key again) and GuardDuty.
LEAK_EVENT_COUNT = 6
EVENT_COUNT = len(TERMINATIONS) + LEAK_EVENT_COUNT

# Every event delivered three times: a permutation of (event index, copy) pairs.
delivery_orders = st.permutations([index for index in range(EVENT_COUNT) for _ in range(DELIVERIES_PER_EVENT)])

FAST = settings(
    max_examples=FAST_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
SLOW = settings(FAST, max_examples=SLOW_EXAMPLES, derandomize=False)


@dataclass
class Estate:
    stack: LocalStack
    terminated: list[SeededWorkload]
    leaked: SeededWorkload
    neighbour: SeededWorkload
    events: list[dict[str, Any]]
    guardduty_role: str


@contextmanager
def fresh_estate(openbao: LocalOpenBao, vault: hvac.Client) -> Iterator[Estate]:
    """A fresh moto with the template deployed, fresh workloads, and one event per sample bound to them."""
    forget_loaded_handlers()
    with (
        local_aws(),
        deploy_local_stack(openbao) as stack,
    ):
        prepare_vault(vault)
        iam = boto3.client("iam")
        suffix = uuid.uuid4().hex[:8]

        def seed(name: str) -> SeededWorkload:
            return seed_workload(vault, iam, f"{name}-{suffix}", f"spiffe://dups.rescind/{name}-{suffix}")

        inventory = DynamoDbInventory(stack.physical_id("InventoryTable"), boto3.client("dynamodb"))
        events: list[dict[str, Any]] = []
        terminated: list[SeededWorkload] = []
        for index, (sample, kind) in enumerate(sorted(TERMINATIONS.items())):
            workload = seed(f"t{index}")
            terminated.append(workload)
            event = load_sample(sample)
            event["id"] = str(uuid.uuid4())
            if kind is None:
                event["detail"]["workload_id"] = workload.spiffe_id
            else:
                # Each sample names one resource; give each its own, so each names its own workload.
                event = with_own_resource(event, index)
                cloud_id = parse_termination_event(event).cloud_id
                assert cloud_id is not None
                inventory.bind(
                    WorkloadBinding(
                        cloud_id=cloud_id,
                        kind=kind,
                        workload_id=workload.spiffe_id,
                        account_id=LOCAL_ACCOUNT_ID,
                        region=LOCAL_REGION,
                        seen_at=datetime.now(UTC),
                    )
                )
            events.append(event)

        leaked = seed("leak")
        neighbour = seed("neighbour")
        account = boto3.client("sts").get_caller_identity()["Account"]
        health = load_sample("health_risk_credentials_exposed.json")
        health["id"] = str(uuid.uuid4())
        health_event_naming(health, account, [leaked.access_key_ids[0]])
        guardduty = load_sample("guardduty_instance_credential_exfiltration.json")
        guardduty["id"] = str(uuid.uuid4())
        guardduty["account"] = guardduty["detail"]["accountId"] = account
        role = guardduty["detail"]["resource"]["accessKeyDetails"]["userName"]
        iam.create_role(RoleName=role, AssumeRolePolicyDocument="{}", Tags=MANAGED_ROLE_TAGS)
        iam.create_role(RoleName=f"{role}-other", AssumeRolePolicyDocument="{}", Tags=MANAGED_ROLE_TAGS)
        events += [
            generic_leak("vault_token", leaked.token_value(leaked.token_accessors[0])),
            generic_leak("vault_secret_id", leaked.secret_id_value(leaked.secret_id_accessors[0])),
            generic_leak("aws_access_key", leaked.access_key_ids[0]),
            generic_leak("certificate", leaked.certificate_pem(leaked.certificate_serials[0])),
            health,
            guardduty,
        ]
        assert len(events) == EVENT_COUNT
        yield Estate(stack, terminated, leaked, neighbour, events, role)
    forget_loaded_handlers()


def with_own_resource(event: dict[str, Any], index: int) -> dict[str, Any]:
    """The sample with its instance id / task / function made distinct (the other samples keep theirs)."""
    detail = event["detail"]
    if "instance-id" in detail:
        detail["instance-id"] = f"i-0{index:016x}"
    elif "EC2InstanceId" in detail:
        detail["EC2InstanceId"] = f"i-0{index + 100:016x}"
    elif "taskArn" in detail:
        detail["taskArn"] = detail["taskArn"].rsplit("/", 1)[0] + f"/{uuid.uuid4().hex}"
    elif "requestParameters" in detail:
        detail["requestParameters"]["functionName"] = f"dups-fn-{uuid.uuid4().hex[:8]}"
    return event


def generic_leak(secret_type: str, secret: str) -> dict[str, Any]:
    event = load_sample("secret_leaked.json")
    event["id"] = str(uuid.uuid4())
    event["detail"]["secret_type"] = secret_type
    event["detail"]["secret"] = secret
    return event


def finished_executions(stack: LocalStack, machine: str) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions")
    listed = sfn.list_executions(stateMachineArn=stack.state_machine_arn(machine))["executions"]
    return [wait_for_execution(sfn, item["executionArn"], 120) for item in listed]


def check_every_delivery_acts_once(estate: Estate, order: list[int]) -> None:
    stack = estate.stack
    # When every event is routed through the template's rules three times, in the drawn order
    for index in order:
        for match in stack.route_event(estate.events[index]):
            assert [delivery.error_type for delivery in match.deliveries] == [None] * len(match.deliveries)

    # Then one offboarding per terminated workload and one leak response per leaked credential (Health and the
    # generic event name one key) ran, and each succeeded
    offboardings = finished_executions(stack, "OffboardingStateMachine")
    responses = finished_executions(stack, "LeakResponseStateMachine")
    assert len(offboardings) == len(TERMINATIONS)
    assert len(responses) == 5
    for run in offboardings + responses:
        assert run["status"] == "SUCCEEDED", run

    # And the ledger holds exactly one attempt per action id across every incident, each one that changed
    # something; no target was acted on twice under another action id either
    ledger = DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb"))
    attempts = []
    for run in offboardings + responses:
        view = ledger.read_incident(run["name"])
        assert view.closure is not None
        assert view.closure.status is IncidentStatus.COMPLETED
        assert view.incident is not None
        planned = {action.action_id for action in view.incident.plan.actions}
        assert {attempt.result.action_id for attempt in view.attempts} == planned
        # a leak's start function kills first, under the plan's own action id; the run leaves a proven kill out
        assert_each_action_acted_once(view.attempts)
        attempts += [attempt.result for attempt in view.attempts if KILL_FIRST_ATTEMPT not in attempt.attempt_id]
    per_action = Counter(result.action_id for result in attempts)
    assert [action_id for action_id, count in per_action.items() if count != 1] == []
    per_target = Counter((str(result.action_kind), result.target.key) for result in attempts)
    assert [key for key, count in per_target.items() if count != 1] == []
    # seven steps per termination; of the leaks' six steps, the three the kill first proved (the token's revoke, the
    # secret-id's destroy, the key's deactivation) have the kill's attempt only: the run does not act on them again
    assert len(attempts) == 7 * len(TERMINATIONS) + 3

    # And the real state agrees: the terminated workloads' credentials are dead, the leaked ones only are dead
    # on their workload, the neighbour is untouched, and only the named role's sessions are denied
    openbao_addr = vault_addr(stack)
    iam = boto3.client("iam")
    vault = hvac.Client(url=openbao_addr, token=stack.function_environment["VAULT_TOKEN"], timeout=10)
    for workload in estate.terminated:
        assert [p for p in prove_by_use(vault, openbao_addr, iam, workload, expected="dead") if not p.passed] == []
    assert [p for p in prove_by_use(vault, openbao_addr, iam, estate.neighbour, expected="alive") if not p.passed] == []
    leaked = estate.leaked
    dead = {
        f"token {leaked.token_accessors[0]}",
        f"secret-id {leaked.secret_id_accessors[0]}",
        f"certificate {leaked.certificate_serials[0]}",
    }
    proofs = prove_by_use(vault, openbao_addr, iam, leaked, expected="alive")
    assert {p.credential for p in proofs} >= dead
    assert [p.credential for p in proofs if p.credential in dead and p.passed] == []  # still alive
    assert [p.credential for p in proofs if p.credential not in dead and not p.passed] == []  # wrongly killed
    assert iam.list_access_keys(UserName=leaked.iam_user)["AccessKeyMetadata"] == []
    assert iam.list_role_policies(RoleName=estate.guardduty_role)["PolicyNames"] == ["RescindRevokeOlderSessions"]
    assert iam.list_role_policies(RoleName=f"{estate.guardduty_role}-other")["PolicyNames"] == []


def vault_addr(stack: LocalStack) -> str:
    addr = str(stack.parameters["VaultAddr"])
    return addr


@FAST
@given(order=delivery_orders)
def test_every_sample_delivered_three_times_in_any_order_acts_once(
    openbao: LocalOpenBao, vault: hvac.Client, order: list[int]
) -> None:
    with fresh_estate(openbao, vault) as estate:
        check_every_delivery_acts_once(estate, order)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # about 20 s an example: the default 300 s stops it at the 15th
@SLOW
@given(order=delivery_orders)
def test_every_sample_delivered_three_times_in_any_order_acts_once_at_scale(
    openbao: LocalOpenBao, vault: hvac.Client, order: list[int]
) -> None:
    with fresh_estate(openbao, vault) as estate:
        check_every_delivery_acts_once(estate, order)
