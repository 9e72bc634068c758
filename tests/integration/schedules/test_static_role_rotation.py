"""Rotation by age of database static roles, against a real OpenBao whose database engine drives a real PostgreSQL:
a stale role is rotated by Vault's rotate-role and verified by `last_vault_rotation`, PostgreSQL then refuses the
old password and takes the new one; protected and unmatched roles are untouched, a dry run rotates nothing, a run
replayed (the run's start is the same) finds the rotation applied (no second rotation), and a later run finds the
role young."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import hvac
import pytest

from rescind.engine.factory import build_engine
from rescind.models import DatabaseStaticRoleRef
from rescind.schedules import rotation_by_age
from rescind.schedules.dynamodb import DynamoDbCheckpointStore
from rescind.schedules.policy import MaxAgeRule, SchedulePolicy
from rescind.schedules.rotation_by_age import run_rotation_by_age
from rescind.schedules.static_role_rotation import static_role_rule_for
from rescind.schedules.types import ChangeStatus, SweepReport, SweepRequest
from tests.integration.schedules.test_rotation_by_age import checkpoints
from tests.integration.vault.test_database import DatabaseMount, _current_password, _static_role, database
from tests.postgres import PostgresServer, postgres_server

__all__ = ["checkpoints", "database", "postgres_server"]  # the fixtures, imported for pytest

LATER = timedelta(days=40)  # the sweep's clock: Vault's last_vault_rotation cannot be set in the past


def policy_for(mount: str) -> SchedulePolicy:
    return SchedulePolicy(
        rotation_max_age=(
            MaxAgeRule(static_role_prefix=f"{mount}/app_", max_age_days=30),
            MaxAgeRule(static_role_prefix=f"{mount}/app_slow", max_age_days=90),  # the longer prefix wins
        ),
        protected_paths=(f"{mount}/app_protected",),
    )


def sweep(
    vault: hvac.Client,
    checkpoints: DynamoDbCheckpointStore,
    mount: str,
    now: datetime,
    *,
    dry_run: bool = False,
    policy: SchedulePolicy | None = None,
) -> SweepReport:
    return run_rotation_by_age(
        SweepRequest(dry_run=dry_run),
        policy=policy or policy_for(mount),
        vault=vault,
        aws=None,
        engine=build_engine(vault),
        checkpoints=checkpoints,
        kv_mounts=(),
        account_ids=(),
        now=now,
        lease_mounts=(mount,),
    )


def by_target(report: SweepReport) -> dict[str, ChangeStatus]:
    return {change.target: change.status for change in report.changes}


def test_the_longest_matching_static_role_prefix_decides_the_maximum_age() -> None:
    policy = policy_for("db")

    slow = static_role_rule_for(policy, DatabaseStaticRoleRef(mount="db", role="app_slow-reports"))
    assert slow is not None
    assert slow.max_age_days == 90
    assert static_role_rule_for(policy, DatabaseStaticRoleRef(mount="db", role="misc")) is None
    assert static_role_rule_for(policy, DatabaseStaticRoleRef(mount="other", role="app_web")) is None


def test_stale_static_roles_are_rotated_by_vault_once_and_the_rest_untouched(
    vault: hvac.Client,
    postgres_server: PostgresServer,
    database: DatabaseMount,
    checkpoints: DynamoDbCheckpointStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given stale (by the sweep's clock), slow-rule, protected and unmatched static roles
    users = {name: _static_role(vault, postgres_server, database, name) for name in ("app_web", "app_slow", "misc")}
    users["app_protected"] = _static_role(vault, postgres_server, database, "app_protected")
    before = {name: _current_password(vault, database.mount, name) for name in users}
    now = datetime.now(UTC) + LATER
    # The run's start on the wall clock, which a static role's rotation counts from
    started = datetime.now(UTC)
    monkeypatch.setattr(rotation_by_age, "utc_now", lambda: started)
    web = f"vault_database_static_role:{database.mount}:app_web"

    # When a dry run goes first: planned, nothing rotated
    dry = sweep(vault, checkpoints, database.mount, now, dry_run=True)
    assert by_target(dry)[web] is ChangeStatus.PLANNED
    assert _current_password(vault, database.mount, "app_web") == before["app_web"]

    # When the sweep runs
    report = sweep(vault, checkpoints, database.mount, now)

    # Then the stale role is rotated and verified, PostgreSQL refuses the old password and takes the new one
    statuses = by_target(report)
    assert statuses == {web: ChangeStatus.APPLIED, web.replace("app_web", "app_protected"): ChangeStatus.SKIPPED}
    (change,) = [c for c in report.changes if c.status is ChangeStatus.APPLIED]
    assert "last_vault_rotation" in change.detail
    assert (change.after or "").startswith("last_vault_rotation ")
    rotated = _current_password(vault, database.mount, "app_web")
    assert rotated != before["app_web"]
    assert not postgres_server.can_log_in(users["app_web"], before["app_web"])
    assert postgres_server.can_log_in(users["app_web"], rotated)
    for name in ("app_slow", "misc", "app_protected"):
        assert _current_password(vault, database.mount, name) == before[name]
    assert not any(password in report.model_dump_json() for password in (*before.values(), rotated))

    # When the run is replayed (its start the same): already applied, with Vault's time as evidence; no second rotation
    again = sweep(vault, checkpoints, database.mount, now)
    assert by_target(again)[web] is ChangeStatus.ALREADY
    (repeat,) = [c for c in again.changes if c.target == web]
    assert f"already applied: {database.mount} rotated {users['app_web']}'s password at " in repeat.detail
    assert _current_password(vault, database.mount, "app_web") == rotated

    # And a run on the real clock finds the role young: nothing to do
    monkeypatch.setattr(rotation_by_age, "utc_now", lambda: datetime.now(UTC))
    fresh = sweep(vault, checkpoints, database.mount, datetime.now(UTC) + timedelta(minutes=5))
    assert [c for c in fresh.changes if c.status is not ChangeStatus.SKIPPED] == []


def test_a_rule_on_a_mount_outside_lease_mounts_or_not_a_database_engine_is_flagged(
    vault: hvac.Client, checkpoints: DynamoDbCheckpointStore, unique: str
) -> None:
    # Given rules on a mount LeaseMounts does not name, and on a PKI mount it does
    pki = f"pki-{unique}"
    vault.sys.enable_secrets_engine("pki", path=pki)
    policy = SchedulePolicy(
        rotation_max_age=(
            MaxAgeRule(static_role_prefix=f"elsewhere-{unique}/", max_age_days=30),
            MaxAgeRule(static_role_prefix=f"{pki}/", max_age_days=30),
        )
    )

    # When the sweep runs
    report = sweep(vault, checkpoints, pki, datetime.now(UTC) + LATER, policy=policy)

    # Then both are flagged with the reason, and nothing else happened
    assert {(c.target, c.status, c.detail) for c in report.changes} == {
        (
            f"elsewhere-{unique}/",
            ChangeStatus.FLAGGED,
            "a static_role_prefix rule names a mount that is not in LeaseMounts: its static roles are not rotated",
        ),
        (f"{pki}/", ChangeStatus.FLAGGED, "not a database secrets engine"),
    }
    vault.sys.disable_secrets_engine(pki)
