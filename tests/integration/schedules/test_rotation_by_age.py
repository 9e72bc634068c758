"""Rotation by age against the real OpenBao (KV v2) and moto (Secrets Manager): stale secrets are rotated and
verified by read-back, protected, held and healthy ones are untouched, previous versions die after the grace
period, a second run changes nothing, a dry run writes nothing, and a bounded run resumes from its checkpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import hvac
import pytest

from rescind.aws.session import AwsClientFactory
from rescind.engine.factory import build_engine
from rescind.exceptions import ActionFailed
from rescind.models import KvSecretRef
from rescind.schedules.dynamodb import DynamoDbCheckpointStore
from rescind.schedules.policy import MaxAgeRule, SchedulePolicy
from rescind.schedules.rotation_by_age import kv_rule_for, run_rotation_by_age
from rescind.schedules.types import ChangeStatus, SweepName, SweepReport, SweepRequest
from rescind.vault.kv_store import read_secret_metadata
from rescind_local import LOCAL_ACCOUNT_ID

TABLE = "sweep-state"
LATER = timedelta(days=40)  # the sweep's clock: KV's created_time cannot be set in the past, so "now" moves on


@pytest.fixture
def checkpoints(aws: None) -> DynamoDbCheckpointStore:
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=TABLE,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return DynamoDbCheckpointStore(TABLE, client)


@pytest.fixture
def kv_mount(vault: hvac.Client, unique: str) -> Iterator[str]:
    mount = f"kv-age-{unique}"
    vault.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    yield mount
    vault.sys.disable_secrets_engine(mount)


@pytest.fixture
def factory(aws: None) -> AwsClientFactory:
    return AwsClientFactory(region_name="us-east-1")


def policy_for(mount: str, **overrides: Any) -> SchedulePolicy:
    values: dict[str, Any] = {
        "rotation_max_age": (
            MaxAgeRule(kv_prefix=f"{mount}/apps/", max_age_days=30),
            MaxAgeRule(kv_prefix=f"{mount}/apps/slow/", max_age_days=90),  # longer prefix wins
            MaxAgeRule(tag="rotation=monthly", max_age_days=30),
        ),
        "protected_paths": (f"{mount}/apps/protected",),
        "rotation_grace_days": 7,
        **overrides,
    }
    return SchedulePolicy(**values)


# The owner's declaration: `password` rotates, and nothing but its readers checks it (rescind_rotation_hook=none).
DECLARED = {"rescind_rotate": "password", "rescind_rotation_hook": "none"}


def write(vault: hvac.Client, mount: str, path: str, value: str, versions: int = 1, *, declared: bool = True) -> None:
    for number in range(versions):
        vault.secrets.kv.v2.create_or_update_secret(path, secret={"password": f"{value}-{number}"}, mount_point=mount)
    if declared:
        vault.secrets.kv.v2.update_metadata(path, mount_point=mount, custom_metadata=DECLARED)


def current_version(vault: hvac.Client, mount: str, path: str) -> int:
    data = vault.secrets.kv.v2.read_secret_metadata(path, mount_point=mount)["data"]
    return int(data["current_version"])


def destroyed_versions(vault: hvac.Client, mount: str, path: str) -> set[int]:
    versions = vault.secrets.kv.v2.read_secret_metadata(path, mount_point=mount)["data"]["versions"]
    return {int(n) for n, info in versions.items() if info["destroyed"]}


def sweep(
    vault: hvac.Client,
    factory: AwsClientFactory,
    checkpoints: DynamoDbCheckpointStore,
    policy: SchedulePolicy,
    mount: str,
    now: datetime,
    **request: Any,
) -> SweepReport:
    return run_rotation_by_age(
        SweepRequest(**request),
        policy=policy,
        vault=vault,
        aws=factory,
        engine=build_engine(vault, aws_factory=factory),
        checkpoints=checkpoints,
        kv_mounts=[mount, "secret"],
        account_ids=[LOCAL_ACCOUNT_ID],
        now=now,
    )


def by_target(report: SweepReport) -> dict[str, ChangeStatus]:
    return {change.target: change.status for change in report.changes}


def test_the_longest_matching_prefix_decides_the_maximum_age() -> None:
    policy = policy_for("kv")

    rule = kv_rule_for(policy, "kv/apps/slow/db")
    assert rule is not None
    assert rule.max_age_days == 90
    assert kv_rule_for(policy, "kv/other/db") is None


def test_stale_kv_secrets_are_rotated_once_and_the_rest_untouched(
    vault: hvac.Client, factory: AwsClientFactory, checkpoints: DynamoDbCheckpointStore, kv_mount: str
) -> None:
    # Given stale (by the sweep's clock), slow-rule, protected, held and out-of-scope secrets
    write(vault, kv_mount, "apps/db", "db", versions=3)
    write(vault, kv_mount, "apps/slow/archive", "archive")
    write(vault, kv_mount, "apps/protected", "crown-jewels")
    write(vault, kv_mount, "apps/held", "held")
    vault.secrets.kv.v2.update_metadata("apps/held", mount_point=kv_mount, custom_metadata={"rescind_hold": "true"})
    write(vault, kv_mount, "other/thing", "other")
    write(vault, kv_mount, "apps/undeclared", "nobody-owns-me", declared=False)
    now = datetime.now(UTC) + LATER
    policy = policy_for(kv_mount)

    # When the sweep runs
    report = sweep(vault, factory, checkpoints, policy, kv_mount, now)

    # Then the stale secret is rotated (verified by the engine's read-back), the previous version kept, the older
    # ones destroyed; protected and held are skipped; the 90-day rule and unmatched paths are untouched
    statuses = by_target(report)
    assert statuses[f"kv_secret:{kv_mount}:apps/db"] is ChangeStatus.APPLIED
    assert statuses[f"kv_secret:{kv_mount}:apps/protected"] is ChangeStatus.SKIPPED
    assert statuses[f"kv_secret:{kv_mount}:apps/held"] is ChangeStatus.SKIPPED
    # a stale secret whose owner declared no rotation is flagged for a human, never written
    assert statuses[f"kv_secret:{kv_mount}:apps/undeclared"] is ChangeStatus.FLAGGED
    assert f"kv_secret:{kv_mount}:apps/slow/archive" not in statuses
    assert f"kv_secret:{kv_mount}:other/thing" not in statuses
    assert current_version(vault, kv_mount, "apps/db") == 4
    assert destroyed_versions(vault, kv_mount, "apps/db") == {1, 2}  # 3 is kept for the grace period
    for path in ("apps/protected", "apps/held", "apps/slow/archive", "other/thing", "apps/undeclared"):
        assert current_version(vault, kv_mount, path) == 1
    (change,) = [c for c in report.changes if c.status is ChangeStatus.APPLIED]
    assert (change.before or "").startswith("version 3")
    assert change.after == "version 4"
    assert "crown-jewels" not in report.model_dump_json()
    assert "db-0" not in report.model_dump_json()
    assert report.complete
    assert report.checkpoint is None

    # When it runs again in the same run window: the rotation is already applied, nothing new is written
    again = sweep(vault, factory, checkpoints, policy, kv_mount, now)
    assert by_target(again)[f"kv_secret:{kv_mount}:apps/db"] is ChangeStatus.ALREADY
    assert again.count(ChangeStatus.APPLIED) == 0
    assert current_version(vault, kv_mount, "apps/db") == 4

    # And a run on the real clock finds the new version fresh: nothing to do
    fresh = sweep(vault, factory, checkpoints, policy, kv_mount, datetime.now(UTC) + timedelta(minutes=5))
    assert [c for c in fresh.changes if c.status is not ChangeStatus.SKIPPED] == []


def test_a_malformed_declaration_is_flagged_with_its_reason_and_the_sweep_goes_on(
    vault: hvac.Client, factory: AwsClientFactory, checkpoints: DynamoDbCheckpointStore, kv_mount: str
) -> None:
    # Given stale secrets whose declarations are malformed, walked before and after a well-declared one
    malformed = {
        "apps/a-field": ({"rescind_rotate": "pass word", "rescind_rotation_hook": "none"}, "rescind_rotate on"),
        "apps/b-generator": ({**DECLARED, "rescind_generator": "diceware"}, "rescind_generator on"),
        "apps/c-hook": ({**DECLARED, "rescind_rotation_hook": "my-lambda"}, "a Lambda function ARN or 'none'"),
        "apps/e-missing": ({**DECLARED, "rescind_rotate": "api_key"}, "rescind_rotate=api_key, which it does not"),
    }
    for path, (custom, _) in malformed.items():
        write(vault, kv_mount, path, "bad", declared=False)
        vault.secrets.kv.v2.update_metadata(path, mount_point=kv_mount, custom_metadata=custom)
    write(vault, kv_mount, "apps/d-good", "good")

    # When the sweep runs
    report = sweep(vault, factory, checkpoints, policy_for(kv_mount), kv_mount, datetime.now(UTC) + LATER)

    # Then each malformed one is flagged with what is wrong and left unwritten, and the good one is rotated
    changes = {change.target: change for change in report.changes}
    for path, (_, reason) in malformed.items():
        change = changes[f"kv_secret:{kv_mount}:{path}"]
        assert change.status is ChangeStatus.FLAGGED, path
        assert "rotation declaration refused: " in change.detail
        assert reason in change.detail, path
        assert current_version(vault, kv_mount, path) == 1
    assert changes[f"kv_secret:{kv_mount}:apps/d-good"].status is ChangeStatus.APPLIED
    assert current_version(vault, kv_mount, "apps/d-good") == 2
    assert report.complete


def test_the_previous_version_is_destroyed_once_the_grace_period_is_over(
    vault: hvac.Client, factory: AwsClientFactory, checkpoints: DynamoDbCheckpointStore, kv_mount: str
) -> None:
    # Given a secret rotated by a scheduled run, its previous version kept
    write(vault, kv_mount, "apps/api", "api")
    policy = policy_for(kv_mount)
    sweep(vault, factory, checkpoints, policy, kv_mount, datetime.now(UTC) + LATER)
    assert current_version(vault, kv_mount, "apps/api") == 2
    assert destroyed_versions(vault, kv_mount, "apps/api") == set()

    # When a run comes within the grace period: the previous version stays
    within = sweep(vault, factory, checkpoints, policy, kv_mount, datetime.now(UTC) + timedelta(days=6))
    assert within.changes == ()
    assert destroyed_versions(vault, kv_mount, "apps/api") == set()

    # When a run comes after it (the new version is not stale yet): the previous version is destroyed
    after = sweep(vault, factory, checkpoints, policy, kv_mount, datetime.now(UTC) + timedelta(days=8))
    (change,) = after.changes
    assert change.what == "destroy previous versions"
    assert change.status is ChangeStatus.APPLIED
    assert destroyed_versions(vault, kv_mount, "apps/api") == {1}
    secret = read_secret_metadata(vault, KvSecretRef(mount=kv_mount, path="apps/api"))
    assert secret is not None
    assert secret.current_version == 2

    # And again: nothing left to destroy
    assert sweep(vault, factory, checkpoints, policy, kv_mount, datetime.now(UTC) + timedelta(days=8)).changes == ()


def test_dry_run_reports_and_writes_nothing(
    vault: hvac.Client, factory: AwsClientFactory, checkpoints: DynamoDbCheckpointStore, kv_mount: str
) -> None:
    write(vault, kv_mount, "apps/a", "a")
    write(vault, kv_mount, "apps/b", "b")
    before = vault.secrets.kv.v2.read_secret_metadata("apps/a", mount_point=kv_mount)["data"]

    report = sweep(
        vault,
        factory,
        checkpoints,
        policy_for(kv_mount),
        kv_mount,
        datetime.now(UTC) + LATER,
        dry_run=True,
        max_actions=1,
    )

    assert report.dry_run
    assert [c.status for c in report.changes] == [ChangeStatus.PLANNED]
    assert not report.complete
    assert report.checkpoint == f"kv:{kv_mount}/apps/a"
    assert vault.secrets.kv.v2.read_secret_metadata("apps/a", mount_point=kv_mount)["data"] == before
    assert current_version(vault, kv_mount, "apps/b") == 1
    assert checkpoints.load(SweepName.ROTATION_BY_AGE) is None  # a dry run never moves the checkpoint


def test_a_bounded_run_stops_at_its_bound_and_the_next_run_resumes(
    vault: hvac.Client, factory: AwsClientFactory, checkpoints: DynamoDbCheckpointStore, kv_mount: str
) -> None:
    # Given three stale secrets and a bound of two actions per run
    for name in ("a", "b", "c"):
        write(vault, kv_mount, f"apps/{name}", name)
    policy = policy_for(kv_mount, max_actions_per_run=2)
    now = datetime.now(UTC) + LATER

    first = sweep(vault, factory, checkpoints, policy, kv_mount, now)
    assert first.count(ChangeStatus.APPLIED) == 2
    assert not first.complete
    assert checkpoints.load(SweepName.ROTATION_BY_AGE) == f"kv:{kv_mount}/apps/b"
    assert current_version(vault, kv_mount, "apps/c") == 1

    # When the next run comes, it resumes after the checkpoint and finishes the pass
    second = sweep(vault, factory, checkpoints, policy, kv_mount, now + timedelta(minutes=1))
    assert by_target(second) == {f"kv_secret:{kv_mount}:apps/c": ChangeStatus.APPLIED}
    assert second.complete
    assert checkpoints.load(SweepName.ROTATION_BY_AGE) is None
    assert {current_version(vault, kv_mount, f"apps/{n}") for n in "abc"} == {2}

    # A request can lower the bound (never raise it), and resume=False starts from the beginning
    third = sweep(
        vault, factory, checkpoints, policy, kv_mount, now + timedelta(minutes=2), max_actions=1, resume=False
    )
    assert [c.target for c in third.changes] == [f"kv_secret:{kv_mount}:apps/a"]


def test_stale_secrets_manager_secrets_are_rotated_by_tag(
    vault: hvac.Client, factory: AwsClientFactory, checkpoints: DynamoDbCheckpointStore, kv_mount: str
) -> None:
    sm = boto3.client("secretsmanager", region_name="us-east-1")

    def secret(name: str, tags: dict[str, str], *, rotation: bool = True) -> str:
        arn: str = sm.create_secret(
            Name=name, SecretString="old-value", Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
        )["ARN"]
        if rotation:
            sm.rotate_secret(SecretId=arn, RotationRules={"AutomaticallyAfterDays": 30}, RotateImmediately=False)
        return arn

    stale = secret("app/db", {"rotation": "monthly"})
    untagged = secret("app/other", {})
    held = secret("app/held", {"rotation": "monthly", "rescind:hold": "true"})
    unmanaged = secret("app/manual", {"rotation": "monthly"}, rotation=False)
    versions = {arn: set(sm.describe_secret(SecretId=arn)["VersionIdsToStages"]) for arn in (untagged, held)}
    current_before = current_version_id(sm, stale)
    now = datetime.now(UTC) + LATER

    report = sweep(vault, factory, checkpoints, policy_for(kv_mount), kv_mount, now)

    statuses = by_target(report)
    assert statuses[f"secrets_manager_secret:{stale}"] is ChangeStatus.APPLIED
    assert statuses[f"secrets_manager_secret:{held}"] is ChangeStatus.SKIPPED
    assert statuses[f"secrets_manager_secret:{unmanaged}"] is ChangeStatus.FLAGGED
    assert f"secrets_manager_secret:{untagged}" not in statuses
    # The engine verified the new AWSCURRENT; read it back here too
    rotated = current_version_id(sm, stale)
    assert rotated != current_before
    assert "AWSPREVIOUS" in sm.describe_secret(SecretId=stale)["VersionIdsToStages"][current_before]
    for arn, known in versions.items():
        assert set(sm.describe_secret(SecretId=arn)["VersionIdsToStages"]) == known
    assert "old-value" not in report.model_dump_json()

    again = sweep(vault, factory, checkpoints, policy_for(kv_mount), kv_mount, now)
    assert by_target(again)[f"secrets_manager_secret:{stale}"] is ChangeStatus.ALREADY
    assert current_version_id(sm, stale) == rotated


def current_version_id(sm: Any, arn: str) -> str:
    stages = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
    (current,) = [version for version, labels in stages.items() if "AWSCURRENT" in labels]
    return str(current)


def test_a_missing_kv_mount_is_refused_and_nothing_is_written(
    vault: hvac.Client, factory: AwsClientFactory, checkpoints: DynamoDbCheckpointStore, unique: str
) -> None:
    with pytest.raises(ActionFailed, match="cannot list"):
        sweep(vault, factory, checkpoints, policy_for(f"nowhere-{unique}"), f"nowhere-{unique}", datetime.now(UTC))
    assert checkpoints.load(SweepName.ROTATION_BY_AGE) is None


def test_a_policy_with_an_unsafe_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="prefix"):
        MaxAgeRule(kv_prefix="secret", max_age_days=30)


def test_a_secrets_manager_secret_without_its_own_rotation_rotates_by_its_declared_contract(
    vault: hvac.Client, factory: AwsClientFactory, checkpoints: DynamoDbCheckpointStore, kv_mount: str
) -> None:
    # Given stale tagged secrets with no Secrets Manager rotation of their own: one declares its rotation by tags
    # (no external system checks it), one declares a hook that is no Lambda ARN, one declares nothing
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    value = json.dumps({"username": "app", "password": "old-password-value"})

    def secret(name: str, tags: dict[str, str]) -> str:
        tagged = {"rotation": "monthly", **tags}
        arn: str = sm.create_secret(
            Name=name, SecretString=value, Tags=[{"Key": k, "Value": v} for k, v in tagged.items()]
        )["ARN"]
        return arn

    declared = secret("contract/declared", {"rescind:rotate": "password", "rescind:rotation-hook": "none"})
    malformed = secret("contract/malformed", {"rescind:rotate": "password", "rescind:rotation-hook": "a-script"})
    undeclared = secret("contract/undeclared", {})
    untouched = {arn: set(sm.describe_secret(SecretId=arn)["VersionIdsToStages"]) for arn in (malformed, undeclared)}
    now = datetime.now(UTC) + LATER

    # When the sweep runs
    report = sweep(vault, factory, checkpoints, policy_for(kv_mount), kv_mount, now)

    # Then the declared one rotates (only its password), the other two are flagged with their reasons, unwritten
    changes = {change.target: change for change in report.changes}
    assert changes[f"secrets_manager_secret:{declared}"].status is ChangeStatus.APPLIED
    rotated = json.loads(sm.get_secret_value(SecretId=declared, VersionStage="AWSCURRENT")["SecretString"])
    assert rotated["username"] == "app"
    assert rotated["password"] != "old-password-value"
    assert changes[f"secrets_manager_secret:{malformed}"].status is ChangeStatus.FLAGGED
    assert "rotation declaration refused" in changes[f"secrets_manager_secret:{malformed}"].detail
    assert changes[f"secrets_manager_secret:{undeclared}"].status is ChangeStatus.FLAGGED
    assert "rotation needs an owner" in changes[f"secrets_manager_secret:{undeclared}"].detail
    for arn, known in untouched.items():
        assert set(sm.describe_secret(SecretId=arn)["VersionIdsToStages"]) == known
    assert "old-password-value" not in report.model_dump_json()
