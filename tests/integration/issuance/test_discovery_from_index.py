"""Offboarding's discovery reads the issuance index: a lease, which no convention finds, is planned and revoked.

Given an OpenBao whose file audit device logs references in the clear, a workload token that checks out a PKI
certificate with a lease, and the audit lines indexed through the IndexAuditLog handler into moto DynamoDB,
When offboarding plans with the index in its discovery scope and the plan's actions run,
Then the plan holds the lease (and the token and certificate from the index), says where discovery looked, and
the lease is gone by lease lookup; without the index the same plan has no lease (the live scan cannot see it).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import hvac
import pytest

from rescind.discovery import DiscoveryScope
from rescind.engine.factory import build_engine
from rescind.guard import GuardPolicy
from rescind.ledger.types import Trigger
from rescind.models import ActionKind, CredentialKind
from rescind.models.refs import format_ref
from rescind.offboarding.plan import build_offboarding_plan
from rescind.offboarding.types import offboarding_execution_name
from rescind.response.types import GuardDecision, ResponseRequest
from rescind_local import LocalOpenBao
from tests.integration.issuance.test_audit_index import (
    WORKLOAD,
    audit_lines,
    bao,  # noqa: F401  (the module's OpenBao, hmac_accessor=false)
    create_table,
    invoke,
    issue_estate,
    subscription_event,
)

SCOPE = DiscoveryScope(pki_mounts=("pki",), approle_mounts=("approle",), kv_mounts=())


def request() -> ResponseRequest:
    event_id = str(uuid.uuid4())
    return ResponseRequest(
        incident_id=offboarding_execution_name(WORKLOAD, event_id),
        workload_id=WORKLOAD,
        reason="workload terminated",
        trigger=Trigger(source="rescind", detail_type="Workload Terminated", event_id=event_id),
        terminated_at=datetime.now(UTC),
    )


def test_offboarding_plans_and_revokes_a_lease_found_only_in_the_issuance_index(
    bao: LocalOpenBao,  # noqa: F811
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vault = hvac.Client(url=bao.addr, token=bao.root_token, timeout=10)
    start = bao.audit_log.stat().st_size
    issued = issue_estate(vault, bao.addr)
    index = create_table()  # the handler's table (ISSUANCE_TABLE_NAME)
    invoke(subscription_event(audit_lines(bao.audit_log, start)), monkeypatch)
    lease_id = issued.refs["lease"].removeprefix("vault-lease:")
    policy = GuardPolicy(protected_workloads=frozenset(), blast_radius_cap=100)

    # Without the index: the live scan, which cannot see a lease.
    _, live = build_offboarding_plan(request(), vault=vault, aws=None, inventory=None, scope=SCOPE, policy=policy)
    assert issued.refs["lease"] not in {format_ref(action.target) for action in live.actions}

    scope = DiscoveryScope(**{**SCOPE.__dict__, "issuance_index": index})
    plan, planned = build_offboarding_plan(request(), vault=vault, aws=None, inventory=None, scope=scope, policy=policy)

    targets = {format_ref(action.target): action for action in planned.actions}
    assert issued.refs["lease"] in targets
    assert targets[issued.refs["lease"]].kind is ActionKind.REVOKE
    assert {issued.refs["token"], issued.refs["cert"]} <= set(targets)
    assert issued.refs["revoked_child"] not in targets  # the index saw it revoked
    assert planned.decision is GuardDecision.PROCEED
    # What the index added to the scan of every kind (which still runs), by kind: the lease, which no convention
    # finds
    assert "discovery: live scan of every kind; the issuance index added" in planned.decision_reason
    assert f"{CredentialKind.VAULT_LEASE} 1" in planned.decision_reason

    engine = build_engine(vault)
    results = {format_ref(action.target): engine.execute_or_fail(action) for action in plan.actions}
    assert all(any(evidence.confirmed for evidence in result.evidence) for result in results.values()), results

    with pytest.raises(hvac.exceptions.InvalidRequest):
        vault.write("sys/leases/lookup", lease_id=lease_id)
