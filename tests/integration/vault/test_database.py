"""Vault's database secrets engine against a real PostgreSQL: a static role's password rotated, a dynamic
credential's lease revoked, and a connection's root credential rotated only by a manual run with approval.

Each rotation or revocation is read back from OpenBao (the engine's verify), and then from PostgreSQL itself: the
old password is refused, the new one accepted, a revoked dynamic user is gone from pg_roles. Passwords read from
OpenBao here are the test's own probes; Rescind's code never reads one.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import hvac
import pytest
from pydantic import SecretStr

from rescind.discovery import DiscoveryScope
from rescind.engine.factory import build_engine
from rescind.engine.tasks import ExecuteActionRequest, execute_and_record
from rescind.guard import GuardPolicy, refuse_guarded_target
from rescind.leaks.locate import LeakLocator
from rescind.leaks.types import LeakAlert, LocatedLeak, SecretType, Unlocated
from rescind.ledger.sqlite import SqliteLedger
from rescind.ledger.types import ApprovalDecision, ApprovalVerdict, Trigger
from rescind.models import (
    Action,
    ActionKind,
    ActionParams,
    ActionResult,
    DatabaseRootRef,
    DatabaseStaticRoleRef,
    Outcome,
    VaultLeaseRef,
)
from rescind.offboarding.manual import build_manual_request
from rescind.offboarding.plan import build_offboarding_plan
from rescind.response.types import GuardDecision, ResponseRequest
from rescind_local import LocalOpenBao
from tests.conftest import BackendCalls, vault_writes
from tests.integration.cli.test_direct import Direct
from tests.postgres import PostgresServer, postgres_server

__all__ = ["postgres_server"]  # the fixture, imported for pytest

CONNECTION = "pg"
CREATE_USER = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"


@dataclass(frozen=True)
class DatabaseMount:
    mount: str
    admin_user: str  # the connection's root user, a role of its own so rotating it leaves the test superuser alone
    admin_password: str


@pytest.fixture
def database(vault: hvac.Client, postgres_server: PostgresServer, unique: str) -> Iterator[DatabaseMount]:
    """A database mount of its own, connected to PostgreSQL as a CREATEROLE admin made for this test."""
    admin, password = f"vault_admin_{unique}", secrets.token_urlsafe(18)
    postgres_server.execute(f"CREATE ROLE {admin} LOGIN CREATEROLE PASSWORD '{password}'")
    mount = f"db-{unique}"
    vault.sys.enable_secrets_engine("database", path=mount)
    vault.write(
        f"{mount}/config/{CONNECTION}",
        plugin_name="postgresql-database-plugin",
        connection_url=postgres_server.connection_url,
        username=admin,
        password=password,
        allowed_roles="*",
    )
    yield DatabaseMount(mount, admin, password)
    vault.sys.disable_secrets_engine(mount)


def _static_role(vault: hvac.Client, postgres: PostgresServer, database: DatabaseMount, name: str) -> str:
    """A database user and the static role that owns its password; the user's name."""
    user = f"{name}_{database.mount.replace('-', '_')}"
    postgres.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{secrets.token_urlsafe(18)}'")
    postgres.execute(f"GRANT {user} TO {database.admin_user} WITH ADMIN OPTION")
    vault.write(f"{database.mount}/static-roles/{name}", db_name=CONNECTION, username=user, rotation_period="720h")
    return user


def _current_password(vault: hvac.Client, mount: str, role: str) -> str:
    return str(vault.read(f"{mount}/static-creds/{role}")["data"]["password"])


def _rotate(ref: DatabaseStaticRoleRef, since: datetime) -> Action:
    return Action(
        kind=ActionKind.ROTATE,
        target=ref,
        reason="test: leaked database password",
        params=ActionParams(run_id="incident-1", rotated_since=since),
    )


def test_a_static_roles_password_is_rotated_and_the_old_one_refused(
    vault: hvac.Client, postgres_server: PostgresServer, database: DatabaseMount
) -> None:
    user = _static_role(vault, postgres_server, database, "billing")
    old = _current_password(vault, database.mount, "billing")
    assert postgres_server.can_log_in(user, old)
    ref = DatabaseStaticRoleRef(mount=database.mount, role="billing")
    action = _rotate(ref, datetime.now(UTC))

    result = build_engine(vault).execute(action)

    assert result.outcome is Outcome.SUCCEEDED, result.detail
    assert result.evidence[0].confirmed
    assert "last_vault_rotation" in result.evidence[0].check
    new = _current_password(vault, database.mount, "billing")
    assert new != old
    assert not postgres_server.can_log_in(user, old)
    assert postgres_server.can_log_in(user, new)
    assert old not in result.model_dump_json()
    assert new not in result.model_dump_json()

    # The same request again: already applied, with the earlier rotation's time, and no second rotation.
    again = build_engine(vault).execute(action)

    assert again.outcome is Outcome.ALREADY_APPLIED, again.detail
    assert again.detail.startswith(f"already applied: {database.mount} rotated {user}'s password at ")
    assert again.evidence[0].confirmed
    assert _current_password(vault, database.mount, "billing") == new


def test_a_rotation_before_the_runs_start_does_not_count(
    vault: hvac.Client, postgres_server: PostgresServer, database: DatabaseMount
) -> None:
    """Vault rotated the password when the role was made: a run that starts later still rotates it."""
    _static_role(vault, postgres_server, database, "reports")
    ref = DatabaseStaticRoleRef(mount=database.mount, role="reports")
    before = _current_password(vault, database.mount, "reports")

    result = build_engine(vault).execute(_rotate(ref, datetime.now(UTC)))

    assert result.outcome is Outcome.SUCCEEDED
    assert _current_password(vault, database.mount, "reports") != before


def test_rotating_a_static_role_that_does_not_exist_fails_naming_it(
    vault: hvac.Client, database: DatabaseMount
) -> None:
    ref = DatabaseStaticRoleRef(mount=database.mount, role="nobody")

    result = build_engine(vault).execute_or_fail(_rotate(ref, datetime.now(UTC)))

    assert result.outcome is Outcome.FAILED
    assert f"static role nobody not found on database mount {database.mount} of {vault.url}" in result.detail


def test_a_dynamic_credentials_lease_is_revoked_and_its_user_dropped(
    vault: hvac.Client, postgres_server: PostgresServer, database: DatabaseMount
) -> None:
    vault.write(
        f"{database.mount}/roles/app",
        db_name=CONNECTION,
        creation_statements=[CREATE_USER],
        default_ttl="1h",
    )
    issued = vault.read(f"{database.mount}/creds/app")
    user, password = issued["data"]["username"], issued["data"]["password"]
    assert postgres_server.can_log_in(user, password)
    ref = VaultLeaseRef(lease_id=issued["lease_id"])

    result = build_engine(vault).execute(Action(kind=ActionKind.REVOKE, target=ref, reason="test: workload ended"))

    assert result.outcome is Outcome.SUCCEEDED, result.detail
    assert result.evidence[0].observed == "invalid lease: the lease is gone"
    assert not postgres_server.role_exists(user)
    assert not postgres_server.can_log_in(user, password)


def _request(root: DatabaseRootRef, *, manual: bool) -> ResponseRequest:
    if manual:
        return build_manual_request(
            workload_id=None,
            credentials=[root],
            reason="rotate the database root after the admin left",
            ticket="SEC-1",
            requested_by="arn:aws:iam::123456789012:user/responder",
            dry_run=False,
        )
    trigger = Trigger(source="github.secret_scanning", detail_type="Secret Leaked", event_id="e-1")
    return ResponseRequest(
        incident_id="leak-root-1",
        workload_id="spiffe://example.org/db",
        reason="leak",
        trigger=trigger,
        terminated_at=datetime.now(UTC),
        credentials=(root,),
    )


def test_a_root_rotation_is_refused_automatically_and_waits_for_approval_when_asked_for(
    vault: hvac.Client, postgres_server: PostgresServer, database: DatabaseMount
) -> None:
    root = DatabaseRootRef(mount=database.mount, connection=CONNECTION)
    scope = DiscoveryScope(lease_mounts=(database.mount,))
    policy = GuardPolicy(blast_radius_cap=25)

    _, automated = build_offboarding_plan(
        _request(root, manual=False), vault=vault, aws=None, inventory=None, scope=scope, policy=policy
    )
    plan, manual = build_offboarding_plan(
        _request(root, manual=True), vault=vault, aws=None, inventory=None, scope=scope, policy=policy
    )

    assert automated.decision is GuardDecision.REFUSE
    assert "never automated" in automated.decision_reason
    assert manual.decision is GuardDecision.NEEDS_APPROVAL
    assert manual.decision_reason.startswith("a plan that rotates a database root credential waits for approval")
    assert postgres_server.can_log_in(database.admin_user, database.admin_password)  # nothing was touched

    # Approved: the run executes its plan.
    (action,) = plan.actions
    result = build_engine(vault).execute(action)

    assert result.outcome is Outcome.SUCCEEDED, result.detail
    assert result.evidence[0].confirmed
    assert not postgres_server.can_log_in(database.admin_user, database.admin_password)
    vault.write(f"{database.mount}/roles/probe", db_name=CONNECTION, creation_statements=[CREATE_USER])
    assert vault.read(f"{database.mount}/creds/probe")["data"]["username"]  # Vault still connects, as root


# --- approval, checked again where the rotation runs ----------------------------------------------------------


def _root_rotation_task(
    vault: hvac.Client, ledger: SqliteLedger, database: DatabaseMount, incident_id: str
) -> ActionResult:
    """The acting task (ExecuteAction's logic) on a planned root rotation of `incident_id`."""
    root = DatabaseRootRef(mount=database.mount, connection=CONNECTION)
    request = ExecuteActionRequest(
        incident_id=incident_id,
        attempt_id=f"{incident_id}-0",
        action=Action(
            kind=ActionKind.ROTATE, target=root, reason="test: the admin left", params=ActionParams(run_id=incident_id)
        ),
    )
    scope = DiscoveryScope(lease_mounts=(database.mount,))
    policy = GuardPolicy()
    return execute_and_record(
        request,
        engine=build_engine(vault),
        ledger=ledger,
        scope=scope,
        refuse_if_guarded=lambda action: refuse_guarded_target(vault, None, action, policy),
    )


def _approval(incident_id: str, verdict: ApprovalVerdict) -> ApprovalDecision:
    return ApprovalDecision(
        incident_id=incident_id,
        execution_arn=f"arn:aws:states:us-east-1:123456789012:execution:manual:{incident_id}",
        verdict=verdict,
        decided_by="arn:aws:iam::123456789012:user/approver",
        decided_at=datetime.now(UTC),
    )


def test_the_acting_task_rotates_a_root_only_in_a_run_the_ledger_records_approved(
    vault: hvac.Client, postgres_server: PostgresServer, database: DatabaseMount, tmp_path: Path
) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    # Given a root rotation handed to the acting task in a run nobody approved, and in one somebody denied
    ledger.record_approval(_approval("denied-run", ApprovalVerdict.DENIED))
    unapproved = _root_rotation_task(vault, ledger, database, "unapproved-run")
    denied = _root_rotation_task(vault, ledger, database, "denied-run")

    # Then both are refused before any call, and the root still logs in
    for result in (unapproved, denied):
        assert result.outcome is Outcome.FAILED
        assert result.error_type == "PolicyRefusal"
        assert "needs this run's plan approved" in result.detail
        assert "manual run" in result.detail
    assert postgres_server.can_log_in(database.admin_user, database.admin_password)

    # When the run's plan was approved, the same task rotates it
    ledger.record_approval(_approval("approved-run", ApprovalVerdict.APPROVED))
    approved = _root_rotation_task(vault, ledger, database, "approved-run")

    assert approved.outcome is Outcome.SUCCEEDED, approved.detail
    assert not postgres_server.can_log_in(database.admin_user, database.admin_password)


def test_direct_mode_refuses_a_root_rotation_even_with_a_named_approver(
    openbao: LocalOpenBao, postgres_server: PostgresServer, database: DatabaseMount, tmp_path: Path
) -> None:
    direct = Direct(openbao, tmp_path)
    root = f"vault-db-root:{database.mount}:{CONNECTION}"
    env: dict[str, str | None] = {"LEASE_MOUNTS": database.mount}

    code, document = direct.json(
        "revoke", "--credential", root, "--reason", "admin left", "--yes",
        "--approved-by", "bob", "--ticket", "INC-1", env=env,
    )  # fmt: skip

    assert code == 2, document
    assert document["closure"]["status"] == "refused", document
    said = json.dumps(document)
    assert "never done in direct mode, which has no approval step" in said, document
    assert "the stack's manual run" in said
    assert postgres_server.can_log_in(database.admin_user, database.admin_password)


def test_the_inventory_counts_static_roles_and_skips_lease_mounts_that_are_not_database_engines(
    vault: hvac.Client, postgres_server: PostgresServer, database: DatabaseMount, unique: str
) -> None:
    from rescind.schedules.inventory_report import build_inventory_report
    from rescind.schedules.policy import SchedulePolicy

    # Given LeaseMounts naming a PKI mount (its leases are revocable, it has no static roles) and a database mount
    other = f"pki-{unique}"
    vault.sys.enable_secrets_engine("pki", path=other)
    _static_role(vault, postgres_server, database, "ledger")
    scope = DiscoveryScope(pki_mounts=(), approle_mounts=(), kv_mounts=(), lease_mounts=(other, database.mount))

    report = build_inventory_report(
        policy=SchedulePolicy(), vault=vault, aws=None, scope=scope, inventory=None, now=datetime.now(UTC)
    )

    assert [error for error in report.errors if "database mount" in error] == []
    assert sum(report.by_kind_and_age["vault_database_static_role"].values()) == 1
    vault.sys.disable_secrets_engine(other)


# --- a leaked static role password ----------------------------------------------------------------------------


def _leak(password: str) -> LeakAlert:
    return LeakAlert(
        source="rescind",
        detail_type="Secret Leaked",
        event_id="e-db",
        secret_type=SecretType.DATABASE_PASSWORD,
        secret=SecretStr(password),
        found_at=datetime.now(UTC),
    )


def test_a_leaked_static_role_password_is_located_by_comparing_the_current_passwords_in_scope(
    vault: hvac.Client, postgres_server: PostgresServer, database: DatabaseMount, unique: str
) -> None:
    # Given two static roles on a database mount in scope, beside a PKI mount (no static roles) in LeaseMounts
    other = f"pki-{unique}"
    vault.sys.enable_secrets_engine("pki", path=other)
    _static_role(vault, postgres_server, database, "alpha")
    _static_role(vault, postgres_server, database, "beta")
    leaked = _current_password(vault, database.mount, "beta")
    scope = DiscoveryScope(lease_mounts=(other, database.mount))

    # When the password of one is leaked
    located = LeakLocator(vault, scope).locate(_leak(leaked))

    # Then that role is located, by reference only
    assert isinstance(located, LocatedLeak), located
    assert located.credentials == (DatabaseStaticRoleRef(mount=database.mount, role="beta"),)
    assert f"static role beta on {database.mount}" in located.evidence
    assert leaked not in located.model_dump_json()

    # And a mount not in scope, an old password and a value nobody has locate nothing
    assert isinstance(LeakLocator(vault, DiscoveryScope(lease_mounts=(other,))).locate(_leak(leaked)), Unlocated)
    build_engine(vault).execute(_rotate(DatabaseStaticRoleRef(mount=database.mount, role="beta"), datetime.now(UTC)))
    stale = LeakLocator(vault, scope).locate(_leak(leaked))
    assert isinstance(stale, Unlocated)
    assert stale.why == f"no static role on the database mounts in scope ({database.mount}) has this password (2 read)"
    vault.sys.disable_secrets_engine(other)


def test_the_leak_locator_reads_at_most_the_cap_of_static_roles(
    vault: hvac.Client, postgres_server: PostgresServer, database: DatabaseMount, backend_calls: BackendCalls
) -> None:
    # Given three static roles, the leaked password the last one's in sorted order, and a cap of two
    for name in ("r1", "r2", "r3"):
        _static_role(vault, postgres_server, database, name)
    leaked = _current_password(vault, database.mount, "r3")
    backend_calls.vault.clear()
    capped = DiscoveryScope(lease_mounts=(database.mount,), database_leak_max_roles=2)

    # When it is located
    located = LeakLocator(vault, capped).locate(_leak(leaked))

    # Then two credentials were read, the third never, and the answer names the cap
    assert isinstance(located, Unlocated)
    assert "DATABASE_LEAK_MAX_ROLES=2" in located.why
    reads = [call for call in backend_calls.vault if "/static-creds/" in call]
    assert [call.rsplit("/", 1)[-1] for call in reads] == ["r1", "r2"]
    assert backend_calls.vault
    assert not vault_writes(backend_calls)
    assert LeakLocator(vault, DiscoveryScope(lease_mounts=(database.mount,))).locate(_leak(leaked)) == LocatedLeak(
        credentials=(DatabaseStaticRoleRef(mount=database.mount, role="r3"),),
        evidence=f"the current password of static role r3 on {database.mount} of {vault.url} matched "
        "(HMAC compared; 3 role(s) read)",
    )
