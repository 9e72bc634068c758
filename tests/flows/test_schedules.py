"""Each schedule of template.yaml run as EventBridge Scheduler would run it: the schedule's target function (in
process, from its CodeUri) invoked with the schedule's Input, on the template deployed to moto, against a real
OpenBao of the test's own (the sweeps look at every token, token role and lease of the server they are given)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import hvac
import pytest

from rescind.inventory import CloudResourceKind, DynamoDbInventory, WorkloadBinding
from rescind.models import VaultTokenRef
from rescind.runtime import reset_caches
from rescind.schedules import runtime as schedules_runtime
from rescind.schedules.dynamodb import DynamoDbCheckpointStore
from rescind.schedules.types import ChangeStatus, SweepName
from rescind_local import LOCAL_ACCOUNT_ID, LOCAL_REGION, LocalOpenBao
from rescind_local.proof import prove_by_use
from rescind_local.seed import KV_ROTATION, prepare_vault, seed_workload
from rescind_local.stack import LocalStack
from rescind_local.stepfunctions import wait_for_execution
from tests.conftest import deploy_local_stack
from tests.integration.schedules.test_ttl_ceilings import seed_estate

SCHEDULES: dict[str, tuple[str, SweepName | None]] = {
    "RotationByAgeSchedule": ("RotationByAgeFunction", SweepName.ROTATION_BY_AGE),
    "TtlCeilingsSchedule": ("TtlCeilingsFunction", SweepName.TTL_CEILINGS),
    "OrphansSchedule": ("OrphansFunction", SweepName.ORPHANS),
    "PkiHygieneSchedule": ("PkiHygieneFunction", SweepName.PKI_HYGIENE),
    "InventoryReportSchedule": ("InventoryReportFunction", SweepName.INVENTORY_REPORT),
    "IndexDriftSchedule": ("IndexDriftFunction", None),  # a check, not a sweep: no checkpoint
}
KV = "kv-flow"
POLICY = {
    "rotation_max_age": [
        {"kv_prefix": f"{KV}/apps/", "max_age_days": 30},
        {"kv_prefix": f"{KV}/apps/archive/", "max_age_days": 90},
        {"tag": "rotation=monthly", "max_age_days": 30},
    ],
    "protected_paths": [f"{KV}/apps/protected", "pki-protected/"],
    "orphan_grace_minutes": 0,
}
LATER = timedelta(days=40)


@dataclass
class Deployed:
    stack: LocalStack
    bao: LocalOpenBao
    vault: hvac.Client

    def run(self, schedule: str) -> dict[str, Any]:
        payload, error = self.stack.run_schedule(schedule)
        assert error is None, payload
        assert isinstance(payload, dict)
        return payload

    def invoke(self, function: str, event: Any) -> tuple[Any, str | None]:
        return self.stack.invoke(function, event)


@pytest.fixture
def deployed(aws: None) -> Iterator[Deployed]:
    with LocalOpenBao() as bao:
        vault = hvac.Client(url=bao.addr, token=bao.root_token, timeout=10)
        with deploy_local_stack(
            bao, SchedulePolicy=json.dumps(POLICY), KvMounts=f"{KV},secret", PkiMounts="pki,pki-protected"
        ) as stack:
            yield Deployed(stack, bao, vault)
    reset_caches()


def statuses(report: dict[str, Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for change in report["changes"]:
        found.setdefault(change["target"], set()).add(change["status"])
    return found


def kv_version(vault: hvac.Client, path: str) -> int:
    return int(vault.secrets.kv.v2.read_secret_metadata(path, mount_point=KV)["data"]["current_version"])


def test_the_template_declares_the_six_schedules_the_local_stack_runs(deployed: Deployed) -> None:
    # The schedules SAM makes of the sweep functions' ScheduleV2 events, named <function><event>
    found = {schedule.logical_id: schedule for schedule in deployed.stack.schedules}

    assert set(found) == {function + event for event, (function, _sweep) in SCHEDULES.items()}
    for event, (function, _sweep) in SCHEDULES.items():
        schedule = deployed.stack.schedule(event)
        assert schedule is found[function + event]
        assert schedule.target_logical_id == function
        assert schedule.input == {"dry_run": False}
        assert schedule.dead_letter_arn == deployed.stack.resources["SchedulesDeadLetterQueue"].attributes["Arn"]


def test_rotation_by_age_schedule_rotates_stale_secrets_and_nothing_else(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given stale, healthy (90-day rule), protected and held KV secrets and tagged Secrets Manager secrets
    vault = deployed.vault
    vault.sys.enable_secrets_engine("kv", path=KV, options={"version": "2"})
    for path in ("apps/db", "apps/archive/2019", "apps/protected", "apps/held"):
        vault.secrets.kv.v2.create_or_update_secret(path, secret={"password": "seeded-value"}, mount_point=KV)
    vault.secrets.kv.v2.update_metadata("apps/held", mount_point=KV, custom_metadata={"rescind_hold": "true"})
    # apps/db's owner declared how it rotates (its password, checked by nothing but its readers); the undeclared
    # secret beside it is flagged for a human, never written (the rotation contract, README "Rotation")
    vault.secrets.kv.v2.update_metadata("apps/db", mount_point=KV, custom_metadata=KV_ROTATION)
    vault.secrets.kv.v2.create_or_update_secret("apps/undeclared", secret={"password": "seeded-value"}, mount_point=KV)
    sm = boto3.client("secretsmanager", region_name=LOCAL_REGION)
    stale = sm.create_secret(Name="app/api", SecretString="seeded", Tags=[{"Key": "rotation", "Value": "monthly"}])
    sm.rotate_secret(SecretId=stale["ARN"], RotationRules={"AutomaticallyAfterDays": 30}, RotateImmediately=False)
    # The sweep's clock runs 40 days ahead (KV's created_time cannot be set in the past)
    monkeypatch.setattr(schedules_runtime, "current_time", lambda: datetime.now(UTC) + LATER)

    # When the schedule fires
    report = deployed.run("RotationByAgeSchedule")

    # Then the stale ones are rotated and verified, the rest untouched
    found = statuses(report)
    assert found[f"kv_secret:{KV}:apps/db"] == {"applied"}
    assert found[f"secrets_manager_secret:{stale['ARN']}"] == {"applied"}
    assert found[f"kv_secret:{KV}:apps/protected"] == {"skipped"}
    assert found[f"kv_secret:{KV}:apps/held"] == {"skipped"}
    assert found[f"kv_secret:{KV}:apps/undeclared"] == {"flagged"}
    assert f"kv_secret:{KV}:apps/archive/2019" not in found
    assert kv_version(vault, "apps/db") == 2
    for path in ("apps/archive/2019", "apps/protected", "apps/held", "apps/undeclared"):
        assert kv_version(vault, path) == 1
    assert "seeded" not in json.dumps(report)

    # And the next firing changes nothing
    again = deployed.run("RotationByAgeSchedule")
    assert {c["status"] for c in again["changes"]} <= {"already", "skipped", "flagged"}
    assert kv_version(vault, "apps/db") == 2


def test_ttl_ceilings_schedule_lowers_what_is_over_and_a_second_run_changes_nothing(deployed: Deployed) -> None:
    estate = seed_estate(deployed.vault)

    report = deployed.run("TtlCeilingsSchedule")

    applied = {target for target, found in statuses(report).items() if "applied" in found}
    assert applied == {
        "vault_ttl_target:mount:pki:",
        "vault_ttl_target:pki_role:pki:web",
        "vault_ttl_target:approle_role:approle:over",
        "vault_ttl_target:token_role:token:forever",
        f"vault_token:{estate.tokens['over']}",
        f"vault_token:{estate.tokens['protected']}",  # the flow's policy does not protect this token
    }
    assert statuses(report)["vault_ttl_target:pki_role:pki-protected:ca-ops"] == {"skipped"}
    assert deployed.vault.read("pki/roles/web")["data"]["max_ttl"] == 7 * 86400
    assert int(deployed.vault.auth.token.lookup_accessor(estate.tokens["over"])["data"]["ttl"]) <= 7 * 86400

    again = deployed.run("TtlCeilingsSchedule")
    assert {c["status"] for c in again["changes"]} <= {"flagged", "skipped"}


def test_a_dry_run_plans_and_a_bounded_run_resumes_from_the_template_table(deployed: Deployed) -> None:
    seed_estate(deployed.vault)
    checkpoints = DynamoDbCheckpointStore(deployed.stack.physical_id("SweepStateTable"), boto3.client("dynamodb"))
    before = deployed.vault.read("pki/roles/web")["data"]

    dry, error = deployed.invoke("TtlCeilingsFunction", {"dry_run": True})
    assert error is None
    assert {c["status"] for c in dry["changes"]} >= {"planned"}
    assert deployed.vault.read("pki/roles/web")["data"] == before

    first, error = deployed.invoke("TtlCeilingsFunction", {"max_actions": 2})
    assert error is None
    assert not first["complete"]
    assert checkpoints.load(SweepName.TTL_CEILINGS) == first["checkpoint"]
    runs = 1
    while not deployed.run("TtlCeilingsSchedule")["complete"]:
        runs += 1
        assert runs < 10
    assert checkpoints.load(SweepName.TTL_CEILINGS) is None
    assert deployed.vault.read("pki/roles/web")["data"]["max_ttl"] == 7 * 86400


def test_a_malformed_request_is_refused_and_touches_nothing(deployed: Deployed) -> None:
    seed_estate(deployed.vault)
    before = deployed.vault.read("pki/roles/web")["data"]

    payload, error = deployed.invoke("TtlCeilingsFunction", {"dry_run": "perhaps", "everything": True})

    assert error is not None
    assert payload["errorType"] == "InvalidInput"
    assert deployed.vault.read("pki/roles/web")["data"] == before


def test_orphans_schedule_offboards_a_workload_whose_instance_is_gone(deployed: Deployed) -> None:
    # Given a workload whose EC2 instance was terminated long ago, and its neighbour, still running
    vault, stack = deployed.vault, deployed.stack
    prepare_vault(vault)
    # (the other mounts the flow's discovery scope names)
    vault.sys.enable_secrets_engine("kv", path=KV, options={"version": "2"})
    vault.sys.enable_secrets_engine("pki", path="pki-protected")
    iam = boto3.client("iam")
    orphan = seed_workload(vault, iam, "orphan", "spiffe://flows.rescind/orphan")
    neighbour = seed_workload(vault, iam, "neighbour", "spiffe://flows.rescind/neighbour")
    ec2 = boto3.client("ec2", region_name=LOCAL_REGION)
    image = "ami-12c6146b"
    gone, running = (
        ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"] for _ in range(2)
    )
    ec2.terminate_instances(InstanceIds=[gone])
    inventory = DynamoDbInventory(stack.physical_id("InventoryTable"), boto3.client("dynamodb"))
    for cloud_id, workload in ((gone, orphan), (running, neighbour)):
        inventory.bind(
            WorkloadBinding(
                cloud_id=cloud_id,
                kind=CloudResourceKind.EC2_INSTANCE,
                workload_id=workload.spiffe_id,
                account_id=LOCAL_ACCOUNT_ID,
                region=LOCAL_REGION,
                seen_at=datetime.now(UTC) - timedelta(hours=3),
            )
        )
        inventory.record_credentials(
            workload.spiffe_id, [VaultTokenRef(accessor=accessor) for accessor in workload.token_accessors]
        )

    report = deployed.run("OrphansSchedule")

    assert statuses(report).get(orphan.spiffe_id) == {"started"}
    assert neighbour.spiffe_id not in statuses(report)
    sfn = boto3.client("stepfunctions")
    (listed,) = sfn.list_executions(stateMachineArn=stack.state_machine_arn("OffboardingStateMachine"))["executions"]
    assert wait_for_execution(sfn, listed["executionArn"], 60)["status"] == "SUCCEEDED"
    dead = prove_by_use(vault, deployed.bao.addr, iam, orphan, expected="dead")
    alive = prove_by_use(vault, deployed.bao.addr, iam, neighbour, expected="alive")
    assert [proof for proof in dead + alive if not proof.passed] == []

    # A second firing starts nothing new
    again = deployed.run("OrphansSchedule")
    assert "started" not in {c["status"] for c in again["changes"]}
    assert (
        len(sfn.list_executions(stateMachineArn=stack.state_machine_arn("OffboardingStateMachine"))["executions"]) == 1
    )


def test_pki_hygiene_and_inventory_report_schedules_run_and_the_report_lands_in_the_bucket(deployed: Deployed) -> None:
    estate = seed_estate(deployed.vault)

    hygiene = deployed.run("PkiHygieneSchedule")
    assert hygiene["sweep"] == "pki_hygiene"
    assert ChangeStatus.FAILED.value not in {c["status"] for c in hygiene["changes"]}

    report = deployed.run("InventoryReportSchedule")
    s3 = boto3.client("s3")
    bucket = deployed.stack.physical_id("InventoryReportBucket")
    keys = {item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert set(report["s3_keys"]) == keys
    assert {key.rsplit(".", 1)[1] for key in keys} == {"json", "md"}
    stored = json.loads(s3.get_object(Bucket=bucket, Key=next(k for k in keys if k.endswith(".json")))["Body"].read())
    assert stored["total"] == report["total"]
    # The five seeded tokens (and the root token) are in the count; no value ever is
    assert report["total"] >= len(estate.tokens)
    assert deployed.bao.root_token not in json.dumps(stored)


def test_the_index_drift_schedule_marks_a_never_backfilled_index_stale_and_discovery_then_scans(
    deployed: Deployed,
) -> None:
    # Given live tokens the stack's issuance index never heard of (no audit log shipped, no back-fill)
    seed_estate(deployed.vault)

    # When the drift schedule fires
    check = deployed.run("IndexDriftSchedule")

    # Then every live credential it sampled is missing from the index, and the index is marked stale in its table
    assert check["sampled_live"] > 0
    assert check["missing_from_index"] == check["sampled_live"]
    assert check["stale"] is True
    from rescind.issuance.state import DynamoDbIndexState

    state = DynamoDbIndexState(deployed.stack.physical_id("IssuanceTable"), boto3.client("dynamodb"))
    marker = state.read_marker()
    assert marker is not None
    assert marker.stale_since is not None
    assert marker.backfilled_at is None
