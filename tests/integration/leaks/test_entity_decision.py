"""Whether a leaked token's entity is disabled too (rescind.leaks.entities), against a real OpenBao (file audit
device, hmac_accessor=false) and the issuance index in moto DynamoDB, fed the audit lines by the IndexAuditLog
handler.

Given an AppRole role's login entity, the leaked login among its tokens, and the leaked token revoked (the kill first),
When the leak run's plan decides the entity,
Then an entity holding another live indexed token is left enabled with one lookup and no scan; one whose other token
the index does not know yet is left enabled by the scan; one holding nothing else, or only tokens revoked or expired,
is disabled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import hvac
import pytest

from rescind.discovery import DiscoveryScope
from rescind.engine.factory import build_engine
from rescind.exceptions import ActionFailed
from rescind.guard import GuardPolicy
from rescind.issuance.backfill import backfill_index
from rescind.issuance.dynamodb import DynamoDbIssuanceIndex
from rescind.issuance.state import DynamoDbIndexState
from rescind.leaks.entities import entities_holding_nothing_else
from rescind.leaks.plan import build_leak_plan
from rescind.ledger import Trigger
from rescind.models import VaultEntityRef, VaultTokenRef
from rescind.response.types import GuardDecision, ResponseRequest
from rescind.vault.tokens import lookup_token_by_accessor
from rescind_local import LocalOpenBao
from tests.conftest import BackendCalls
from tests.integration.issuance.test_audit_index import (
    TABLE,
    audit_lines,
    bao,  # noqa: F401  (the module's OpenBao, hmac_accessor=false)
    create_table,
    invoke,
    subscription_event,
)

pytestmark = pytest.mark.integration

WORKLOAD = "spiffe://entity.rescind/app"
SCAN = "LIST"  # list_token_accessors: the scan's first call


@dataclass
class Role:
    bao: LocalOpenBao
    vault: hvac.Client
    mount: str
    index: DynamoDbIssuanceIndex
    indexed_up_to: int  # the audit log's size when last indexed

    def login(self) -> dict[str, Any]:
        """A fresh login: a token of the role's one entity."""
        role_id = self.vault.auth.approle.read_role_id("app", mount_point=self.mount)["data"]["role_id"]
        secret_id = self.vault.auth.approle.generate_secret_id("app", mount_point=self.mount)["data"]["secret_id"]
        anonymous = hvac.Client(url=self.bao.addr, timeout=10)
        return dict(anonymous.auth.approle.login(role_id, secret_id, mount_point=self.mount, use_token=False)["auth"])

    def feed_index(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The audit lines written since the last call, through the IndexAuditLog handler."""
        lines = audit_lines(self.bao.audit_log, self.indexed_up_to)
        self.indexed_up_to = self.bao.audit_log.stat().st_size
        assert invoke(subscription_event(lines), monkeypatch)["refused"] == 0

    def entity_disabled(self, entity_id: str) -> bool:
        return bool(self.vault.read(f"identity/entity/id/{entity_id}")["data"]["disabled"])


@pytest.fixture
def role(bao: LocalOpenBao, aws: None, unique: str) -> Role:  # noqa: F811
    vault = hvac.Client(url=bao.addr, token=bao.root_token, timeout=10)
    mount = f"approle-{unique}"
    vault.sys.enable_auth_method("approle", path=mount)
    vault.write(f"auth/{mount}/role/app", token_policies="default", token_ttl="1h")
    vault.auth.token.create(policies=["default"], ttl="1h", meta={"spiffe_id": WORKLOAD})  # a token of no entity
    return Role(bao, vault, mount, create_table(), bao.audit_log.stat().st_size)


def leaked_request(auth: dict[str, Any]) -> ResponseRequest:
    """The start function's request for a leaked login token: the token and its entity, as it located them."""
    return ResponseRequest(
        incident_id=f"leak-{auth['accessor'][:8]}",
        workload_id=WORKLOAD,
        reason="leaked token",
        trigger=Trigger(source="rescind", detail_type="Secret Leaked", event_id=auth["accessor"][:12]),
        terminated_at=datetime.now(UTC),
        credentials=(VaultEntityRef(entity_id=auth["entity_id"]), VaultTokenRef(accessor=auth["accessor"])),
    )


def kill_first(role: Role, auth: dict[str, Any]) -> None:
    role.vault.auth.token.revoke_accessor(auth["accessor"])


def scans(calls: BackendCalls) -> list[str]:
    return [call for call in calls.vault if call.startswith(SCAN) and "auth/token/accessors" in call]


def lookups(calls: BackendCalls) -> list[str]:
    return [call for call in calls.vault if call.endswith("auth/token/lookup-accessor")]


def held_by_the_index_alone(role: Role, leaked: dict[str, Any], backend_calls: BackendCalls) -> None:
    """The leaked token killed, the decision leaves its entity enabled with one lookup and no token listed."""
    kill_first(role, leaked)
    backend_calls.vault.clear()
    decided = entities_holding_nothing_else(leaked_request(leaked), role.vault, index=role.index)
    assert decided == frozenset()
    assert scans(backend_calls) == []
    assert len(lookups(backend_calls)) == 1, backend_calls.vault


def test_an_entity_holding_another_live_indexed_token_is_left_enabled_with_one_lookup_and_no_scan(
    role: Role, monkeypatch: pytest.MonkeyPatch, backend_calls: BackendCalls
) -> None:
    # Given the leaked login and another session of its entity, both indexed
    leaked, other = role.login(), role.login()
    assert other["entity_id"] == leaked["entity_id"]
    role.feed_index(monkeypatch)

    # When the leaked one is killed and the run's plan decides the entity
    # Then the entity holds something else: one lookup of the other session, no token listed
    held_by_the_index_alone(role, leaked, backend_calls)

    # And the leak run's plan leaves the entity out; the other session still works
    plan, planned = build_leak_plan(
        leaked_request(leaked), vault=role.vault, aws=None, policy=GuardPolicy(), index=role.index
    )
    assert [action.target.key for action in plan.actions] == [f"vault_token:{leaked['accessor']}"]
    assert planned.decision is GuardDecision.PROCEED, planned.decision_reason
    assert lookup_token_by_accessor(role.vault, other["accessor"]) is not None
    assert not role.entity_disabled(leaked["entity_id"])


def test_an_entity_whose_other_token_is_not_indexed_yet_is_left_enabled_by_the_scan(
    role: Role, monkeypatch: pytest.MonkeyPatch, backend_calls: BackendCalls
) -> None:
    # Given the leaked login indexed, and another session the audit feed has not delivered yet
    leaked = role.login()
    role.feed_index(monkeypatch)
    other = role.login()
    kill_first(role, leaked)
    assert role.index.by_entity(leaked["entity_id"])  # the index knows the entity, only not this session
    backend_calls.vault.clear()

    decided = entities_holding_nothing_else(leaked_request(leaked), role.vault, index=role.index)

    # Then the index's silence was no proof: the scan found the other session and the entity stays enabled
    assert decided == frozenset()
    assert len(scans(backend_calls)) == 1
    assert lookup_token_by_accessor(role.vault, other["accessor"]) is not None


def test_an_entity_holding_nothing_else_is_disabled(
    role: Role, monkeypatch: pytest.MonkeyPatch, backend_calls: BackendCalls
) -> None:
    # Given the leaked login, the only token of its entity, indexed and killed
    leaked = role.login()
    role.feed_index(monkeypatch)
    kill_first(role, leaked)
    backend_calls.vault.clear()

    # When the leak run plans and contains
    _, planned = build_leak_plan(
        leaked_request(leaked), vault=role.vault, aws=None, policy=GuardPolicy(), index=role.index
    )

    # Then only the whole scan proved it holds nothing else, and the entity is disabled
    assert len(scans(backend_calls)) == 1
    entity = f"vault_entity:{leaked['entity_id']}"
    assert planned.decision is GuardDecision.PROCEED, planned.decision_reason
    assert [action.target.key for action in planned.containment] == [entity]
    engine = build_engine(role.vault)
    assert all(engine.execute(action).outcome.is_success for action in planned.containment)
    assert role.entity_disabled(leaked["entity_id"])


def test_a_back_filled_index_names_the_entitys_other_session_too(role: Role, backend_calls: BackendCalls) -> None:
    # Given two sessions of an entity that predate the audit feed, back-filled from the live tokens
    leaked, other = role.login(), role.login()
    client = boto3.client("dynamodb", region_name="us-east-1")
    backfill_index(
        role.vault,
        role.index,
        DynamoDbIndexState(TABLE, client),
        DiscoveryScope(approle_mounts=(role.mount,), pki_mounts=(), lease_mounts=(), kv_mounts=()),
        now=lambda: datetime.now(UTC),
        requests_per_second=10_000,
    )

    # Then the back-filled record's entity pointer decides it: one lookup, no scan
    held_by_the_index_alone(role, leaked, backend_calls)
    assert lookup_token_by_accessor(role.vault, other["accessor"]) is not None


def expire(role: Role, auth: dict[str, Any]) -> None:
    """Wait until OpenBao's expiration has revoked the token (its TTL is 1 s)."""
    deadline = time.monotonic() + 15
    while lookup_token_by_accessor(role.vault, auth["accessor"]) is not None:
        assert time.monotonic() < deadline, "the 1 s token did not expire"
        time.sleep(0.2)


@pytest.mark.parametrize("ended", ["revoked, seen in the index", "revoked, not seen yet", "expired"])
def test_an_indexed_token_revoked_or_expired_is_not_held(
    role: Role, monkeypatch: pytest.MonkeyPatch, backend_calls: BackendCalls, ended: str
) -> None:
    # Given another session of the entity, indexed, that has ended since
    if ended == "expired":
        role.vault.write(f"auth/{role.mount}/role/app", token_ttl="1s", token_max_ttl="1s")
    other = role.login()
    if ended == "expired":
        role.vault.write(f"auth/{role.mount}/role/app", token_ttl="1h", token_max_ttl="1h")
    leaked = role.login()
    role.feed_index(monkeypatch)
    if ended == "expired":
        expire(role, other)
    else:
        role.vault.auth.token.revoke_accessor(other["accessor"])
        if ended == "revoked, seen in the index":
            role.feed_index(monkeypatch)
    kill_first(role, leaked)
    backend_calls.vault.clear()

    decided = entities_holding_nothing_else(leaked_request(leaked), role.vault, index=role.index)

    # Then the ended session does not count as held: the scan proves nothing else is, and the entity is disabled
    assert decided == frozenset({leaked["entity_id"]})
    assert len(scans(backend_calls)) == 1


def test_a_scan_whose_lookups_are_refused_raises_and_decides_nothing(role: Role) -> None:
    # Given a client that may list the accessors but not look them up, and a leaked login that held nothing else
    role.vault.sys.create_or_update_policy(
        "list-only", 'path "auth/token/accessors" { capabilities = ["list", "sudo"] }'
    )
    lister = hvac.Client(
        url=role.bao.addr, token=role.vault.auth.token.create(policies=["list-only"], ttl="10m")["auth"]["client_token"]
    )
    leaked = role.login()
    kill_first(role, leaked)

    # When the run's plan decides the entity on it, Then the refused lookups raise: no entity is taken as empty
    with pytest.raises(ActionFailed, match=r"lookup token accessor .*permission denied"):
        entities_holding_nothing_else(leaked_request(leaked), lister, index=role.index, workers=4)
    assert not role.entity_disabled(leaked["entity_id"])
