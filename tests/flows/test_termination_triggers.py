"""Each termination trigger's sample event through the template's rule, the start function and the offboarding
state machine (moto's interpreter running the ASL, handlers in-process), against real OpenBao."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
import hvac
import pytest

from rescind.inventory import DynamoDbInventory
from rescind.inventory.types import CloudResourceKind, WorkloadBinding
from rescind.ledger import DynamoDbLedger, IncidentStatus
from rescind.models import Outcome
from rescind.offboarding.triggers import parse_termination_event
from rescind_local import LOCAL_ACCOUNT_ID, LOCAL_REGION, LocalOpenBao
from rescind_local.proof import prove_by_use
from rescind_local.seed import prepare_vault, seed_workload
from rescind_local.stack import LocalStack
from rescind_local.stepfunctions import wait_for_execution
from tests.conftest import load_event

TRIGGERS = {
    "ec2_instance_terminated.json": CloudResourceKind.EC2_INSTANCE,
    "ecs_task_stopped.json": CloudResourceKind.ECS_TASK,
    "lambda_function_deleted.json": CloudResourceKind.LAMBDA_FUNCTION,
    "autoscaling_instance_terminating.json": CloudResourceKind.EC2_INSTANCE,
    "workload_terminated.json": None,
}


@pytest.mark.parametrize("sample", sorted(TRIGGERS))
def test_each_trigger_offboards_its_workload_and_nothing_else(
    sample: str, stack: LocalStack, vault: hvac.Client, openbao: LocalOpenBao, unique: str
) -> None:
    # Given a workload and its neighbour, and the sample event naming the workload (through the inventory
    # for cloud ids: the resource itself no longer exists)
    prepare_vault(vault)
    iam = boto3.client("iam")
    target = seed_workload(vault, iam, f"t-{unique}", f"spiffe://flows.rescind/t-{unique}")
    neighbour = seed_workload(vault, iam, f"n-{unique}", f"spiffe://flows.rescind/n-{unique}")
    event = load_event(sample)
    event["id"] = str(uuid.uuid4())
    kind = TRIGGERS[sample]
    if kind is None:
        event["detail"]["workload_id"] = target.spiffe_id
    else:
        cloud_id = parse_termination_event(event).cloud_id
        assert cloud_id is not None
        inventory = DynamoDbInventory(stack.physical_id("InventoryTable"), boto3.client("dynamodb"))
        inventory.bind(
            WorkloadBinding(
                cloud_id=cloud_id,
                kind=kind,
                workload_id=target.spiffe_id,
                account_id=LOCAL_ACCOUNT_ID,
                region=LOCAL_REGION,
                seen_at=datetime.now(UTC),
            )
        )

    # When the event is put through the template's rules
    matches = stack.route_event(event)

    # Then exactly one rule took it, the start function started one offboarding, and it succeeded
    assert len(matches) == 1
    (delivery,) = matches[0].deliveries
    assert delivery.error_type is None
    execution = only_execution(stack)
    assert execution["status"] == "SUCCEEDED", execution
    dead = prove_by_use(vault, openbao.addr, iam, target, expected="dead")
    alive = prove_by_use(vault, openbao.addr, iam, neighbour, expected="alive")
    assert [p for p in dead + alive if not p.passed] == []
    view = DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb")).read_incident(execution["name"])
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.COMPLETED
    assert view.incident is not None
    assert len(view.attempts) == len(view.incident.plan.actions) == 7
    assert {a.result.outcome for a in view.attempts} == {Outcome.SUCCEEDED}


def test_a_replayed_event_starts_nothing_new(stack: LocalStack, vault: hvac.Client, unique: str) -> None:
    prepare_vault(vault)
    target = seed_workload(vault, boto3.client("iam"), f"r-{unique}", f"spiffe://flows.rescind/r-{unique}")
    event = load_event("workload_terminated.json")
    event["detail"]["workload_id"] = target.spiffe_id
    stack.route_event(event)
    first = only_execution(stack)

    stack.route_event(event)
    stack.route_event(event)

    assert only_execution(stack)["executionArn"] == first["executionArn"]


def test_an_event_for_an_unknown_resource_is_an_unresolved_incident_and_touches_nothing(stack: LocalStack) -> None:
    event = load_event("ec2_instance_terminated.json")
    matches = stack.route_event(event)
    assert [d.error_type for m in matches for d in m.deliveries] == [None]
    sfn = boto3.client("stepfunctions")
    assert sfn.list_executions(stateMachineArn=stack.state_machine_arn("OffboardingStateMachine"))["executions"] == []
    ledger = DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb"))
    (incident,) = ledger.list_incidents()
    closure = ledger.read_incident(incident.incident_id).closure
    assert closure is not None
    assert closure.status is IncidentStatus.UNRESOLVED
    assert incident.plan.actions == ()


def test_a_generic_event_put_on_the_default_bus_starts_nothing(stack: LocalStack) -> None:
    # Given the generic event, put on the account's default bus instead of Rescind's trigger bus
    event = load_event("workload_terminated.json")

    # When it goes through the template's rules on that bus, and on the trigger bus
    on_default = stack.route_event(event, event_bus_name="default")
    on_trigger_bus = stack.route_event(event, event_bus_name=stack.physical_id("TriggerEventBus"))

    # Then no rule of the default bus takes it; the trigger bus's rule does
    assert on_default == []
    assert [match.rule for match in on_trigger_bus] == [stack.rule("WorkloadTerminatedRule")]
    assert on_trigger_bus[0].rule.logical_id == "StartOffboardingFunctionWorkloadTerminatedRule"


def test_a_generic_event_from_a_member_account_nothing_binds_is_refused_and_touches_nothing(
    stack: LocalStack, vault: hvac.Client, openbao: LocalOpenBao, unique: str
) -> None:
    # Given a workload, and the generic event naming it, put in another account of the organisation
    prepare_vault(vault)
    iam = boto3.client("iam")
    target = seed_workload(vault, iam, f"m-{unique}", f"spiffe://flows.rescind/m-{unique}")
    event = load_event("workload_terminated.json")
    event.update(id=str(uuid.uuid4()), account="210987654321")
    event["detail"]["workload_id"] = target.spiffe_id

    # When it goes through the template's rule
    (match,) = stack.route_event(event)

    # Then nothing starts, the refusal is in the ledger, and every credential still works
    assert [delivery.error_type for delivery in match.deliveries] == [None]
    sfn = boto3.client("stepfunctions")
    assert sfn.list_executions(stateMachineArn=stack.state_machine_arn("OffboardingStateMachine"))["executions"] == []
    ledger = DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb"))
    (incident,) = ledger.list_incidents()
    closure = ledger.read_incident(incident.incident_id).closure
    assert closure is not None
    assert closure.status is IncidentStatus.REFUSED
    assert [p for p in prove_by_use(vault, openbao.addr, iam, target, expected="alive") if not p.passed] == []


def only_execution(stack: LocalStack) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions")
    (listed,) = sfn.list_executions(stateMachineArn=stack.state_machine_arn("OffboardingStateMachine"))["executions"]
    return wait_for_execution(sfn, listed["executionArn"], 60)
