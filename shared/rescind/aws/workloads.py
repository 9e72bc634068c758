"""Is a workload's cloud resource still there? EC2 instances, ECS tasks and Lambda functions, read in the account
and region of their binding through the AwsClientFactory. Only reads: the orphan sweep decides what follows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from rescind.aws.errors import aws_errors, error_code
from rescind.inventory.types import CloudResourceKind, WorkloadBinding

if TYPE_CHECKING:
    from rescind.aws.session import AwsClientFactory

# EC2 states after which the instance never runs again.
_EC2_GONE_STATES = frozenset({"shutting-down", "terminated"})
_EC2_MISSING_CODES = frozenset({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"})
# "User initiated (2024-01-31 12:00:00 GMT)": AWS's only record of when an instance was terminated.
_EC2_TRANSITION_TIME = re.compile(r"\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (?:GMT|UTC)\)")


@dataclass(frozen=True)
class ResourceState:
    """What AWS says about one bound resource now. `gone_since` is None while it is alive."""

    cloud_id: str
    alive: bool
    gone_since: datetime | None
    observed: str


def ec2_instance_state(aws: AwsClientFactory, binding: WorkloadBinding) -> ResourceState:
    ec2 = aws.client("ec2", binding.account_id, region_name=binding.region)
    with aws_errors(f"ec2 describe-instances {binding.cloud_id}"):
        try:
            answer = ec2.describe_instances(InstanceIds=[binding.cloud_id])
        except ClientError as error:
            if error_code(error) in _EC2_MISSING_CODES:
                return ResourceState(binding.cloud_id, False, binding.seen_at, "instance unknown to EC2")
            raise
    instances = [instance for reservation in answer.get("Reservations", []) for instance in reservation["Instances"]]
    if not instances:
        return ResourceState(binding.cloud_id, False, binding.seen_at, "instance unknown to EC2")
    state = str(instances[0].get("State", {}).get("Name", ""))
    if state not in _EC2_GONE_STATES:
        return ResourceState(binding.cloud_id, True, None, f"instance {state}")
    reported = _EC2_TRANSITION_TIME.search(str(instances[0].get("StateTransitionReason") or ""))
    gone_since = (
        datetime.strptime(reported.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC) if reported else binding.seen_at
    )
    return ResourceState(binding.cloud_id, False, gone_since, f"instance {state}")


def _ecs_cluster_of(task_arn: str) -> str:
    """`...:task/<cluster>/<id>` (the current ARN form) or `...:task/<id>` (the old one, default cluster)."""
    resource = task_arn.split(":", 5)[-1]
    parts = resource.split("/")
    return parts[1] if len(parts) == 3 else "default"


def ecs_task_state(aws: AwsClientFactory, binding: WorkloadBinding) -> ResourceState:
    ecs = aws.client("ecs", binding.account_id, region_name=binding.region)
    cluster = _ecs_cluster_of(binding.cloud_id)
    with aws_errors(f"ecs describe-tasks {binding.cloud_id}"):
        try:
            answer = ecs.describe_tasks(cluster=cluster, tasks=[binding.cloud_id])
        except ClientError as error:
            if error_code(error) == "ClusterNotFoundException":
                return ResourceState(binding.cloud_id, False, binding.seen_at, f"cluster {cluster} not found")
            raise
    tasks = [task for task in answer.get("tasks", []) if task.get("taskArn") == binding.cloud_id]
    if not tasks:
        return ResourceState(binding.cloud_id, False, binding.seen_at, "task unknown to ECS")
    status = str(tasks[0].get("lastStatus", ""))
    if status != "STOPPED":
        return ResourceState(binding.cloud_id, True, None, f"task {status}")
    stopped_at = tasks[0].get("stoppedAt")
    gone_since = stopped_at if isinstance(stopped_at, datetime) else binding.seen_at
    return ResourceState(binding.cloud_id, False, gone_since, "task STOPPED")


def lambda_function_state(aws: AwsClientFactory, binding: WorkloadBinding) -> ResourceState:
    lambda_client = aws.client("lambda", binding.account_id, region_name=binding.region)
    with aws_errors(f"lambda get-function {binding.cloud_id}"):
        try:
            lambda_client.get_function(FunctionName=binding.cloud_id)
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                return ResourceState(binding.cloud_id, False, binding.seen_at, "function not found")
            raise
    return ResourceState(binding.cloud_id, True, None, "function exists")


def cloud_resource_state(aws: AwsClientFactory, binding: WorkloadBinding) -> ResourceState:
    if binding.kind is CloudResourceKind.EC2_INSTANCE:
        return ec2_instance_state(aws, binding)
    if binding.kind is CloudResourceKind.ECS_TASK:
        return ecs_task_state(aws, binding)
    return lambda_function_state(aws, binding)
