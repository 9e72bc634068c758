"""The orphan sweep on moto: EC2, ECS, Lambda, Step Functions and the DynamoDB inventory, all real moto services."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest

from rescind.aws.session import AwsClientFactory
from rescind.inventory import CloudResourceKind, DynamoDbInventory, WorkloadBinding
from rescind.models import KvSecretRef, VaultTokenRef
from rescind.models.results import utc_now
from rescind.response.types import ResponseRequest
from rescind.schedules.orphans import run_orphan_sweep
from rescind.schedules.policy import SchedulePolicy
from rescind.schedules.types import ChangeStatus, SweepName, SweepReport, SweepRequest
from rescind_local import LOCAL_ACCOUNT_ID, LOCAL_REGION, create_table_from_template

PASS_ONLY = {"StartAt": "Received", "States": {"Received": {"Type": "Pass", "End": True}}}
ORPHAN = "spiffe://example.org/ns/fleet/sa/orphan"
HEALTHY = "spiffe://example.org/ns/fleet/sa/healthy"
PROTECTED = "spiffe://example.org/ns/payments/sa/ledger"
LONG_AGO = timedelta(hours=3)
IMAGE_ID = "ami-12c6146b"  # one of moto's built-in images: listing them all takes a second


class DictCheckpoints:
    """The CheckpointStore protocol on a dict: a storage double only."""

    def __init__(self) -> None:
        self.cursors: dict[SweepName, str] = {}

    def load(self, sweep: SweepName) -> str | None:
        return self.cursors.get(sweep)

    def save(self, sweep: SweepName, cursor: str) -> None:
        self.cursors[sweep] = cursor

    def clear(self, sweep: SweepName) -> None:
        self.cursors.pop(sweep, None)


@dataclass
class Estate:
    inventory: DynamoDbInventory
    state_machine_arn: str
    sfn: Any
    ec2: Any
    image_id: str
    seen_at: datetime

    def instance(self, workload_id: str, *, terminate: bool) -> str:
        instance_id: str = self.ec2.run_instances(ImageId=self.image_id, MinCount=1, MaxCount=1)["Instances"][0][
            "InstanceId"
        ]
        if terminate:
            self.ec2.terminate_instances(InstanceIds=[instance_id])
        self.bind(instance_id, CloudResourceKind.EC2_INSTANCE, workload_id)
        return instance_id

    def bind(self, cloud_id: str, kind: CloudResourceKind, workload_id: str) -> None:
        self.inventory.bind(
            WorkloadBinding(
                cloud_id=cloud_id,
                kind=kind,
                workload_id=workload_id,
                account_id=LOCAL_ACCOUNT_ID,
                region=LOCAL_REGION,
                seen_at=self.seen_at,
            )
        )
        # A reference only: the sweep never acts on it, the offboarding state machine would.
        accessor = ("A" * 24 + str(abs(hash(workload_id))))[-24:]
        self.inventory.record_credentials(workload_id, [VaultTokenRef(accessor=accessor)])

    def executions(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.sfn.list_executions(stateMachineArn=self.state_machine_arn)["executions"]
        return found


@pytest.fixture
def estate(aws: None) -> Estate:
    dynamodb = boto3.client("dynamodb")
    create_table_from_template(dynamodb, "InventoryTable", "inventory")
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="offboarding",
        definition=json.dumps(PASS_ONLY),
        roleArn=f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/offboarding-state-machine",
        type="STANDARD",
    )["stateMachineArn"]
    ec2 = boto3.client("ec2")
    return Estate(
        inventory=DynamoDbInventory("inventory", dynamodb),
        state_machine_arn=arn,
        sfn=sfn,
        ec2=ec2,
        image_id=IMAGE_ID,
        seen_at=utc_now() - LONG_AGO,
    )


def _sweep(
    estate: Estate,
    *,
    request: SweepRequest | None = None,
    policy: SchedulePolicy | None = None,
    checkpoints: DictCheckpoints | None = None,
    now: datetime | None = None,
) -> SweepReport:
    return run_orphan_sweep(
        request or SweepRequest(),
        policy=policy or SchedulePolicy(protected_paths=(PROTECTED,)),
        inventory=estate.inventory,
        aws=AwsClientFactory(),
        sfn_client=estate.sfn,
        state_machine_arn=estate.state_machine_arn,
        checkpoints=checkpoints or DictCheckpoints(),
        # moto stamps a termination with the wall clock: the sweep runs "two hours later", past the grace.
        now=now or utc_now() + timedelta(hours=2),
    )


def _by_target(report: SweepReport) -> dict[str, ChangeStatus]:
    return {change.target: change.status for change in report.changes}


def test_terminated_instance_is_offboarded_once_healthy_and_protected_untouched(estate: Estate) -> None:
    # Given an orphaned, a healthy (running) and a protected (terminated) workload
    estate.instance(ORPHAN, terminate=True)
    estate.instance(HEALTHY, terminate=False)
    estate.instance(PROTECTED, terminate=True)

    # When the sweep runs
    first = _sweep(estate)

    # Then only the orphan's offboarding is started, with its request as the execution's input
    assert _by_target(first) == {ORPHAN: ChangeStatus.STARTED, PROTECTED: ChangeStatus.SKIPPED}
    assert first.examined == 3
    assert first.complete
    assert first.checkpoint is None
    executions = estate.executions()
    assert len(executions) == 1
    described = estate.sfn.describe_execution(executionArn=executions[0]["executionArn"])
    request = ResponseRequest.model_validate_json(described["input"])
    assert request.workload_id == ORPHAN
    assert request.incident_id == executions[0]["name"]
    assert request.trigger.source == "rescind.schedules"
    assert request.credentials == ()  # the state machine discovers and guards; the sweep never acts

    # When it runs again, Then nothing new is started
    second = _sweep(estate)
    assert _by_target(second) == {ORPHAN: ChangeStatus.ALREADY, PROTECTED: ChangeStatus.SKIPPED}
    assert len(estate.executions()) == 1


def test_dry_run_starts_nothing(estate: Estate) -> None:
    estate.instance(ORPHAN, terminate=True)

    report = _sweep(estate, request=SweepRequest(dry_run=True))

    assert report.dry_run
    assert _by_target(report) == {ORPHAN: ChangeStatus.PLANNED}
    assert estate.executions() == []


def test_within_the_grace_period_nothing_is_started(estate: Estate) -> None:
    # Given an instance terminated just now (moto records the wall-clock time of the termination)
    estate.instance(ORPHAN, terminate=True)

    # When the sweep runs now with a 60-minute grace
    report = _sweep(estate, now=utc_now())

    # Then it is not an orphan yet
    assert report.changes == ()
    assert estate.executions() == []


def test_missing_ecs_task_and_lambda_function_are_gone(estate: Estate) -> None:
    # Given a workload whose ECS task and a workload whose Lambda function AWS no longer knows
    task_arn = f"arn:aws:ecs:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:task/batch/0123456789abcdef0123456789abcdef"
    function_arn = f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:gone-worker"
    estate.bind(task_arn, CloudResourceKind.ECS_TASK, "spiffe://example.org/ns/batch/sa/job")
    estate.bind(function_arn, CloudResourceKind.LAMBDA_FUNCTION, "spiffe://example.org/ns/fn/sa/worker")

    # When the sweep runs (the inventory last saw both alive three hours ago)
    report = _sweep(estate, now=utc_now())

    # Then both are offboarded
    assert set(_by_target(report).values()) == {ChangeStatus.STARTED}
    assert len(report.changes) == 2
    assert len(estate.executions()) == 2


def test_a_workload_with_one_resource_still_running_is_not_an_orphan(estate: Estate) -> None:
    estate.instance(ORPHAN, terminate=True)
    estate.instance(ORPHAN, terminate=False)  # the same workload, scaled to two instances, one still running

    report = _sweep(estate)

    assert report.changes == ()
    assert estate.executions() == []


def test_protected_by_a_credential_path_is_skipped(estate: Estate) -> None:
    # Given an orphan holding a KV secret under a protected path
    estate.instance(ORPHAN, terminate=True)
    estate.inventory.record_credentials(ORPHAN, [KvSecretRef(mount="secret", path="payments/db")])

    report = _sweep(estate, policy=SchedulePolicy(protected_paths=("secret/payments/",)))

    assert _by_target(report) == {ORPHAN: ChangeStatus.SKIPPED}
    assert "kv:secret:payments/db" in report.changes[0].detail
    assert estate.executions() == []


def test_bounded_run_resumes_from_the_checkpoint(estate: Estate) -> None:
    # Given two orphans and a bound of one action per run
    first_orphan, second_orphan = ORPHAN + "-a", ORPHAN + "-b"
    estate.instance(first_orphan, terminate=True)
    estate.instance(second_orphan, terminate=True)
    checkpoints = DictCheckpoints()
    bounded = SweepRequest(max_actions=1)

    # When the sweep runs, Then it starts one and stops, its checkpoint naming that workload
    first = _sweep(estate, request=bounded, checkpoints=checkpoints)
    assert _by_target(first) == {first_orphan: ChangeStatus.STARTED}
    assert not first.complete
    assert first.checkpoint == first_orphan
    assert checkpoints.cursors == {SweepName.ORPHANS: first_orphan}

    # When it runs again, Then it resumes after the checkpoint and finishes the pass
    second = _sweep(estate, request=bounded, checkpoints=checkpoints)
    assert _by_target(second) == {second_orphan: ChangeStatus.STARTED}
    assert second.complete
    assert checkpoints.cursors == {}
    assert len(estate.executions()) == 2

    # And a third run starts over and finds both already offboarded
    third = _sweep(estate, request=bounded, checkpoints=checkpoints)
    assert set(_by_target(third).values()) == {ChangeStatus.ALREADY}
    assert len(estate.executions()) == 2


def test_a_workload_with_no_recorded_credentials_is_left_alone(estate: Estate) -> None:
    instance_id: str = estate.ec2.run_instances(ImageId=estate.image_id, MinCount=1, MaxCount=1)["Instances"][0][
        "InstanceId"
    ]
    estate.ec2.terminate_instances(InstanceIds=[instance_id])
    estate.inventory.bind(
        WorkloadBinding(
            cloud_id=instance_id,
            kind=CloudResourceKind.EC2_INSTANCE,
            workload_id=ORPHAN,
            account_id=LOCAL_ACCOUNT_ID,
            region=LOCAL_REGION,
            seen_at=estate.seen_at,
        )
    )

    report = _sweep(estate)

    assert report.changes == ()
    assert report.examined == 1
    assert estate.executions() == []
