"""The database secrets engine's kinds: their references, the rotation's `rotated_since`, and the guard's rule that
a database root rotation is never automated and always waits for a person's approval.

No call reaches Vault: the client is built against an address nothing listens on, and the root rule is decided
before anything is read.
"""

from __future__ import annotations

from datetime import UTC, datetime

import hvac
import pytest
from pydantic import ValidationError

from rescind.discovery import DiscoveryScope, plan_to_end
from rescind.engine.scope import TargetOutOfScope, check_target_in_scope
from rescind.exceptions import InvalidInput
from rescind.guard import GuardPolicy
from rescind.models import (
    Action,
    ActionKind,
    ActionParams,
    DatabaseRootRef,
    DatabaseStaticRoleRef,
    KvSecretRef,
    Plan,
    parse_credential_ref,
)
from rescind.models.refs import format_ref, parse_ref
from rescind.response.plan import guard_decision
from rescind.response.types import GuardDecision

pytestmark = pytest.mark.unit

STARTED = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
STATIC = DatabaseStaticRoleRef(mount="database", role="billing")
ROOT = DatabaseRootRef(mount="database", connection="billing-pg")
UNREACHABLE = hvac.Client(url="http://127.0.0.1:9", token="unused", timeout=1)


def _rotate(target: DatabaseStaticRoleRef | DatabaseRootRef | KvSecretRef, **params: object) -> Action:
    return Action(kind=ActionKind.ROTATE, target=target, reason="test", params=ActionParams(run_id="run-1", **params))


def test_a_static_role_rotation_carries_the_runs_start() -> None:
    with pytest.raises(ValidationError, match="rotated_since is required"):
        _rotate(STATIC)

    action = _rotate(STATIC, rotated_since=STARTED)

    assert action.params.rotated_since == STARTED
    assert action.action_id == _rotate(STATIC, rotated_since=STARTED).action_id  # a replay is the same action


@pytest.mark.parametrize("target", [ROOT, KvSecretRef(mount="secret", path="apps/db")], ids=["root", "kv"])
def test_rotated_since_applies_to_static_roles_only(target: DatabaseRootRef | KvSecretRef) -> None:
    with pytest.raises(ValidationError, match="applies to nothing else"):
        _rotate(target, rotated_since=STARTED)


@pytest.mark.parametrize("kind", [ActionKind.REVOKE, ActionKind.DELETE, ActionKind.DISABLE])
def test_database_kinds_are_only_rotated(kind: ActionKind) -> None:
    with pytest.raises(ValidationError, match="does not apply"):
        Action(kind=kind, target=ROOT, reason="test")


def test_references_have_a_text_form_and_refuse_traversal() -> None:
    assert format_ref(STATIC) == "vault-db-static:database:billing"
    assert parse_ref("vault-db-root:database:billing-pg") == ROOT
    with pytest.raises(InvalidInput, match="expected vault-db-static:<mount>:<role>"):
        parse_ref("vault-db-static:database")
    with pytest.raises(ValidationError, match="path traversal"):
        parse_credential_ref({"kind": "vault_database_static_role", "mount": "../sys", "role": "x"})
    with pytest.raises(ValidationError):
        parse_credential_ref({"kind": "vault_database_root", "connection": "pg", "password": "nope"})


def test_plan_to_end_rotates_a_static_role_from_the_runs_start() -> None:
    plan = plan_to_end("p1", [STATIC], run_id="p1", reason="leak", rotated_since=STARTED)

    (action,) = plan.actions
    assert (action.kind, action.target, action.params.rotated_since) == (ActionKind.ROTATE, STATIC, STARTED)


def test_a_database_mount_must_be_a_lease_mount() -> None:
    check_target_in_scope(STATIC, DiscoveryScope(lease_mounts=("database/",)))
    with pytest.raises(TargetOutOfScope, match="database mount database is not in LeaseMounts"):
        check_target_in_scope(ROOT, DiscoveryScope(lease_mounts=("db-other",)))


def _decide(plan: Plan, *, manual_run: bool, cap: int = 25) -> tuple[GuardDecision, str]:
    return guard_decision(
        plan,
        [action.target for action in plan.actions],
        refused=None,
        nothing_to_do="nothing",
        vault=UNREACHABLE,
        aws=None,
        policy=GuardPolicy(blast_radius_cap=cap),
        manual_run=manual_run,
    )


def _root_plan(*, dry_run: bool = False) -> Plan:
    return plan_to_end("p1", [ROOT], run_id="p1", reason="rotate root", rotated_since=STARTED, dry_run=dry_run)


def test_a_database_root_rotation_is_refused_in_an_automated_flow() -> None:
    decision, why = _decide(_root_plan(), manual_run=False)

    assert decision is GuardDecision.REFUSE
    assert "database/rotate-root/billing-pg" in why
    assert "never automated" in why


def test_a_manual_database_root_rotation_waits_for_approval_under_the_cap() -> None:
    decision, why = _decide(_root_plan(), manual_run=True, cap=25)

    assert decision is GuardDecision.NEEDS_APPROVAL
    assert why.startswith("a plan that rotates a database root credential waits for approval")


def test_a_manual_dry_run_of_a_root_rotation_only_records() -> None:
    assert _decide(_root_plan(dry_run=True), manual_run=True)[0] is GuardDecision.DRY_RUN


def test_a_static_role_rotation_needs_no_approval() -> None:
    plan = plan_to_end("p1", [STATIC], run_id="p1", reason="leak", rotated_since=STARTED)

    assert _decide(plan, manual_run=False) == (GuardDecision.PROCEED, "within policy")
