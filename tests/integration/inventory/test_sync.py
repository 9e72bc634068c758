"""sync_inventory against moto (EC2, ECS, Lambda, IAM, DynamoDB) and the session's real OpenBao server."""

from __future__ import annotations

import io
import json
import socket
import zipfile
from dataclasses import dataclass, field
from typing import Any

import boto3
import hvac
import pytest

from rescind.aws.session import AwsClientFactory
from rescind.discovery import DiscoveryScope
from rescind.exceptions import InvalidInput
from rescind.inventory import CloudResourceKind, DynamoDbInventory, SyncPhase, SyncProgress, sync_inventory
from rescind.models import (
    AppRoleSecretIdRef,
    CredentialKind,
    IamAccessKeyRef,
    KvSecretRef,
    PkiCertificateRef,
    VaultEntityRef,
    VaultTokenRef,
    parse_credential_ref,
)
from rescind_local import create_table_from_template
from rescind_local.seed import SeededWorkload, prepare_vault, seed_workload
from tests.conftest import TEST_EXTERNAL_ID, BackendCalls

OWN = "123456789012"
OTHER = "111111111111"
REGION = "us-east-1"
TABLE = "rescind-inventory"
TAG = "rescind:workload"
IMAGE_ID = "ami-12c6146b"  # one of moto's built-in AMIs: DescribeImages would cost a second a test


# --- the estate ---------------------------------------------------------------------------------


def _tags(workload_id: str | None) -> list[dict[str, str]]:
    return [] if workload_id is None else [{"Key": TAG, "Value": workload_id}]


def launch_instance(ec2: Any, workload_id: str | None) -> str:
    tags = [{"ResourceType": "instance", "Tags": _tags(workload_id)}] if workload_id is not None else []
    launched = ec2.run_instances(ImageId=IMAGE_ID, MinCount=1, MaxCount=1, TagSpecifications=tags)
    return str(launched["Instances"][0]["InstanceId"])


def run_task(ec2: Any, ecs: Any, workload_id: str | None, cluster: str = "apps") -> str:
    ecs.create_cluster(clusterName=cluster)
    ecs.register_task_definition(
        family="api",
        containerDefinitions=[{"name": "api", "image": "public.ecr.aws/docker/library/busybox", "memory": 128}],
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
    )
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    group = ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"]
    started = ecs.run_task(
        cluster=cluster,
        taskDefinition="api",
        launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}},
        tags=[{"key": tag["Key"], "value": tag["Value"]} for tag in _tags(workload_id)],
    )
    return str(started["tasks"][0]["taskArn"])


def create_function(iam: Any, lam: Any, name: str, workload_id: str | None) -> str:
    try:
        role = iam.get_role(RoleName="fn-role")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role = iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return None\n")
    created = lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": code.getvalue()},
        Tags={TAG: workload_id} if workload_id is not None else {},
    )
    return str(created["FunctionArn"])


@dataclass
class Estate:
    """One workload with Vault and AWS credentials and three kinds of cloud resource, a neighbour, and noise."""

    workload: SeededWorkload
    neighbour_id: str
    instance_id: str
    neighbour_instance_id: str
    untagged_instance_id: str
    task_arn: str
    function_arn: str
    untagged_function_arn: str
    secret_access_key: str = field(repr=False)

    @property
    def workload_id(self) -> str:
        return self.workload.spiffe_id


def build_estate(vault: hvac.Client, unique: str) -> Estate:
    """Seed the estate (moto must be active). Shared with the CLI tests."""
    ec2, ecs, lam, iam = (boto3.client(name, region_name=REGION) for name in ("ec2", "ecs", "lambda", "iam"))
    prepare_vault(vault)
    # The OpenBao server is shared by the session: a unique name and SPIFFE id keep this test's own.
    workload = seed_workload(vault, iam, f"inv-{unique}", f"spiffe://inventory.test/{unique}/api")
    # A second key for the tagged user, whose secret the test keeps to prove it is never stored.
    extra_key = iam.create_access_key(UserName=workload.iam_user)["AccessKey"]
    workload.access_key_ids.append(extra_key["AccessKeyId"])
    neighbour_id = f"spiffe://inventory.test/{unique}/neighbour"
    return Estate(
        workload=workload,
        neighbour_id=neighbour_id,
        instance_id=launch_instance(ec2, workload.spiffe_id),
        neighbour_instance_id=launch_instance(ec2, neighbour_id),
        untagged_instance_id=launch_instance(ec2, None),
        task_arn=run_task(ec2, ecs, workload.spiffe_id),
        function_arn=create_function(iam, lam, f"api-{unique}", workload.spiffe_id),
        untagged_function_arn=create_function(iam, lam, f"other-{unique}", None),
        secret_access_key=extra_key["SecretAccessKey"],
    )


def create_inventory_table() -> Any:
    """The inventory table as template.yaml defines it (moto must be active); its DynamoDB client."""
    client = boto3.client("dynamodb", region_name=REGION)
    create_table_from_template(client, "InventoryTable", TABLE)
    return client


@pytest.fixture
def estate(aws: None, vault: hvac.Client, unique: str) -> Estate:
    return build_estate(vault, unique)


@pytest.fixture
def dynamodb(aws: None) -> Any:
    return create_inventory_table()


@pytest.fixture
def inventory(dynamodb: Any) -> DynamoDbInventory:
    return DynamoDbInventory(TABLE, dynamodb)


SCOPE = DiscoveryScope(aws_account_ids=(OWN,))


def expected_refs(workload: SeededWorkload) -> set[str]:
    refs = [
        VaultEntityRef(entity_id=workload.entity_id),
        *(VaultTokenRef(accessor=accessor) for accessor in workload.token_accessors),
        *(AppRoleSecretIdRef(role_name=workload.name, accessor=accessor) for accessor in workload.secret_id_accessors),
        *(PkiCertificateRef(serial=serial) for serial in workload.certificate_serials),
        *(KvSecretRef(path=path) for path in workload.kv_paths),
        *(
            IamAccessKeyRef(account_id=OWN, user_name=workload.iam_user, access_key_id=key_id)
            for key_id in workload.access_key_ids
        ),
    ]
    return {ref.key for ref in refs}


def all_items(dynamodb: Any) -> list[dict[str, Any]]:
    return [item for page in dynamodb.get_paginator("scan").paginate(TableName=TABLE) for item in page["Items"]]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the tests ----------------------------------------------------------------------------------


def test_sync_binds_tagged_resources_and_records_what_each_workload_holds(
    estate: Estate, vault: hvac.Client, inventory: DynamoDbInventory
) -> None:
    # When the inventory is synced for the account and region
    report = sync_inventory(AwsClientFactory(), vault, inventory, SCOPE, account_ids=[OWN], regions=[REGION])

    # Then every tagged resource is bound to its workload, and untagged ones are not
    assert report.ok, report.failures
    assert report.resources_by_kind == {
        CloudResourceKind.EC2_INSTANCE: 2,
        CloudResourceKind.ECS_TASK: 1,
        CloudResourceKind.LAMBDA_FUNCTION: 1,
    }
    assert report.resources_bound == report.bindings_new == 4
    bound = {binding.cloud_id: binding for binding in inventory.bindings()}
    assert set(bound) == {estate.instance_id, estate.neighbour_instance_id, estate.task_arn, estate.function_arn}
    assert bound[estate.task_arn].kind is CloudResourceKind.ECS_TASK
    assert bound[estate.function_arn].kind is CloudResourceKind.LAMBDA_FUNCTION
    assert {bound[cloud_id].workload_id for cloud_id in (estate.instance_id, estate.task_arn, estate.function_arn)} == {
        estate.workload_id
    }
    assert bound[estate.neighbour_instance_id].workload_id == estate.neighbour_id
    assert all(binding.account_id == OWN and binding.region == REGION for binding in bound.values())

    # And the workload's credentials, found live in Vault and IAM, are recorded; the neighbour holds none
    assert report.workloads == 2
    assert {ref.key for ref in inventory.credentials_of(estate.workload_id)} == expected_refs(estate.workload)
    assert inventory.credentials_of(estate.neighbour_id) == []
    assert report.credentials_by_kind == {
        CredentialKind.VAULT_ENTITY: 1,
        CredentialKind.VAULT_TOKEN: 2,
        CredentialKind.APPROLE_SECRET_ID: 1,
        CredentialKind.PKI_CERTIFICATE: 1,
        CredentialKind.KV_SECRET: 1,
        CredentialKind.IAM_ACCESS_KEY: 2,
    }
    assert report.credentials_new == report.credentials_seen == 8
    assert report.credentials_new_by_kind == report.credentials_by_kind


def test_a_second_sync_adds_no_row(
    estate: Estate, vault: hvac.Client, inventory: DynamoDbInventory, dynamodb: Any
) -> None:
    # Given a synced inventory
    aws = AwsClientFactory()
    first = sync_inventory(aws, vault, inventory, SCOPE, account_ids=[OWN], regions=[REGION])
    rows = {(item["pk"]["S"], item["sk"]["S"]) for item in all_items(dynamodb)}

    # When it is synced again with nothing changed
    second = sync_inventory(aws, vault, inventory, SCOPE, account_ids=[OWN], regions=[REGION])

    # Then it sees the same things and adds nothing
    assert first.ok
    assert second.ok
    assert (second.resources_bound, second.workloads, second.credentials_seen) == (4, 2, 8)
    assert second.bindings_new == 0
    assert second.credentials_new == 0
    assert second.credentials_new_by_kind == {}
    assert {(item["pk"]["S"], item["sk"]["S"]) for item in all_items(dynamodb)} == rows
    assert len(rows) == 4 + 8


def test_bindings_survive_the_resources_termination(
    estate: Estate, vault: hvac.Client, inventory: DynamoDbInventory
) -> None:
    # Given a synced inventory
    aws = AwsClientFactory()
    sync_inventory(aws, vault, inventory, SCOPE, account_ids=[OWN], regions=[REGION])

    # When the instance is terminated, the task stopped and the function deleted, and the inventory synced again
    boto3.client("ec2", region_name=REGION).terminate_instances(InstanceIds=[estate.instance_id])
    boto3.client("ecs", region_name=REGION).stop_task(cluster="apps", task=estate.task_arn, reason="scaled in")
    boto3.client("lambda", region_name=REGION).delete_function(FunctionName=estate.function_arn)
    after = sync_inventory(aws, vault, inventory, SCOPE, account_ids=[OWN], regions=[REGION])

    # Then each resource still resolves to its workload, and that workload's credentials are still known
    assert after.ok
    for cloud_id in (estate.instance_id, estate.task_arn, estate.function_arn):
        binding = inventory.workload_for(cloud_id)
        assert binding is not None, cloud_id
        assert binding.workload_id == estate.workload_id
    assert {ref.key for ref in inventory.credentials_of(estate.workload_id)} == expected_refs(estate.workload)
    # already-bound workloads are still discovered although their function is gone
    assert after.workloads == 2


def test_no_secret_value_is_ever_stored(
    estate: Estate, vault: hvac.Client, inventory: DynamoDbInventory, dynamodb: Any
) -> None:
    # Given a synced inventory
    report = sync_inventory(AwsClientFactory(), vault, inventory, SCOPE, account_ids=[OWN], regions=[REGION])
    assert report.credentials_seen == 8

    # Then no seeded value appears anywhere in the table or the report
    workload = estate.workload
    values = [
        *(workload.token_value(accessor) for accessor in workload.token_accessors),
        *(workload.secret_id_value(accessor) for accessor in workload.secret_id_accessors),
        *(str(field_value) for path in workload.kv_paths for field_value in workload.kv_before(path).values()),
        estate.secret_access_key,
    ]
    stored = json.dumps(all_items(dynamodb)) + report.model_dump_json()
    for value in values:
        assert len(value) >= 8
        assert value not in stored
    assert "PRIVATE KEY" not in stored
    # and every credential item is a reference model, which has no field that could hold a value
    for item in all_items(dynamodb):
        if item["record_type"]["S"] == "credential":
            parse_credential_ref(json.loads(item["body"]["S"]))
            assert set(item) == {"pk", "sk", "record_type", "workload_id", "kind", "first_seen_at", "body"}


def test_other_accounts_and_regions_are_swept_through_the_execution_role(
    aws: None, vault: hvac.Client, inventory: DynamoDbInventory, unique: str
) -> None:
    # Given tagged instances in our account (us-east-1) and in another account (eu-west-1)
    own_id = launch_instance(boto3.client("ec2", region_name=REGION), f"spiffe://inventory.test/{unique}/own")
    credentials = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{OTHER}:role/setup", RoleSessionName="test-setup"
    )["Credentials"]
    other_ec2 = boto3.client(
        "ec2",
        region_name="eu-west-1",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    other_id = launch_instance(other_ec2, f"spiffe://inventory.test/{unique}/other")

    # When both accounts and both regions are swept
    report = sync_inventory(
        AwsClientFactory(external_id=TEST_EXTERNAL_ID),
        vault,
        inventory,
        DiscoveryScope(aws_account_ids=(OWN, OTHER)),
        account_ids=[OWN, OTHER],
        regions=[REGION, "eu-west-1"],
    )

    # Then each instance is bound with the account and region it lives in
    assert report.ok, report.failures
    assert report.resources_bound == 2
    own = inventory.workload_for(own_id)
    other = inventory.workload_for(other_id)
    assert own is not None
    assert (own.account_id, own.region) == (OWN, REGION)
    assert other is not None
    assert (other.account_id, other.region) == (OTHER, "eu-west-1")


def test_progress_is_reported_step_by_step(estate: Estate, vault: hvac.Client, inventory: DynamoDbInventory) -> None:
    steps: list[SyncProgress] = []
    sync_inventory(
        AwsClientFactory(), vault, inventory, SCOPE, account_ids=[OWN], regions=[REGION], on_progress=steps.append
    )

    sweep = [step for step in steps if step.phase is SyncPhase.SWEEP]
    discover = [step for step in steps if step.phase is SyncPhase.DISCOVER]
    assert [(step.done, step.total) for step in sweep] == [(1, 3), (2, 3), (3, 3)]
    assert [(step.done, step.total) for step in discover] == [(1, 2), (2, 2)]
    assert {step.item for step in discover} == {estate.workload_id, estate.neighbour_id}


def test_a_tag_value_that_is_no_workload_id_is_skipped(
    aws: None, vault: hvac.Client, inventory: DynamoDbInventory
) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    launch_instance(ec2, "")
    launch_instance(ec2, "two words")

    report = sync_inventory(AwsClientFactory(), vault, inventory, SCOPE, account_ids=[OWN], regions=[REGION])

    assert report.ok
    assert report.resources_skipped == 2
    assert report.resources_bound == 0
    assert inventory.bindings() == []


def test_vault_down_is_reported_and_the_bindings_are_still_recorded(
    estate: Estate, inventory: DynamoDbInventory
) -> None:
    # Given a Vault address nothing listens on
    unreachable = hvac.Client(url=f"http://127.0.0.1:{closed_port()}", token="unused", timeout=2)

    # When the inventory is synced
    report = sync_inventory(AwsClientFactory(), unreachable, inventory, SCOPE, account_ids=[OWN], regions=[REGION])

    # Then the sweep is recorded, and each workload's discovery is a reported, typed failure
    assert not report.ok
    assert report.resources_bound == 4
    assert {failure.where for failure in report.failures} == {estate.workload_id, estate.neighbour_id}
    assert {failure.error_type for failure in report.failures} == {"VaultUnavailable"}
    assert all(failure.phase is SyncPhase.DISCOVER for failure in report.failures)
    assert inventory.workload_for(estate.instance_id) is not None
    assert report.credentials_seen == 0


@pytest.mark.parametrize(
    ("account_ids", "regions", "message"),
    [
        (["12345"], [REGION], "12 digits"),
        ([OWN], ["us-east-1; rm -rf"], "malformed region"),
        ([], [REGION], "at least one account"),
        (OWN, [REGION], "lists"),
    ],
)
def test_bad_input_is_refused_before_any_call(
    aws: None,
    inventory: DynamoDbInventory,
    vault: hvac.Client,
    backend_calls: BackendCalls,
    account_ids: Any,
    regions: list[str],
    message: str,
) -> None:
    with pytest.raises(InvalidInput, match=message):
        sync_inventory(AwsClientFactory(), vault, inventory, SCOPE, account_ids=account_ids, regions=regions)
    assert backend_calls.total == 0
