"""The plan's live read of each credential (one each, the safety rule) runs on a few threads, and decides as one by one.

Given a real OpenBao where a workload holds tokens, AppRole secret-ids and PKI certificates, one token held by its
owner (`rescind_hold`), and a back-filled issuance index (moto) that discovery reads alone, confirming each candidate
live,
When the offboarding plan is built with its reads on 8 threads and on one,
Then both refuse the plan for the one held token, by name, after the same Vault calls (each credential read once);
and once the held token and another are gone, both plan every other credential, in the same order, and proceed.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import boto3
import hvac
import pytest

from rescind.concurrent_reads import read_each
from rescind.discovery import DiscoveryScope
from rescind.guard import VAULT_HOLD_KEY, GuardPolicy
from rescind.issuance.backfill import backfill_index
from rescind.issuance.reading import IssuanceTableReader
from rescind.issuance.state import DynamoDbIndexState
from rescind.ledger.types import Trigger
from rescind.models.refs import format_ref
from rescind.offboarding.plan import build_offboarding_plan
from rescind.response.types import GuardDecision, ResponsePlan, ResponseRequest
from tests.conftest import BackendCalls
from tests.integration.issuance.test_audit_index import TABLE, create_table

TOKENS, SECRET_IDS, CERTIFICATES = 9, 4, 3


@dataclass
class Estate:
    workload: str
    scope: DiscoveryScope
    tokens: list[str]  # accessors, in the order they were created
    held: str  # the accessor of the held token


@pytest.fixture
def estate(vault: hvac.Client, unique: str) -> Iterator[Estate]:
    workload = f"spiffe://concurrent.example/{unique}"
    approle, pki = f"approle-{unique}", f"pki-{unique}"
    vault.sys.enable_auth_method("approle", path=approle)
    vault.write(f"auth/{approle}/role/api", token_policies="default", secret_id_ttl="2h")
    vault.sys.enable_secrets_engine("pki", path=pki)
    vault.write(f"{pki}/root/generate/internal", common_name="concurrent", ttl="87600h")
    vault.write(f"{pki}/roles/web", allow_any_name=True, max_ttl="72h", allowed_uri_sans="spiffe://*")
    meta = {"spiffe_id": workload}
    tokens = []
    for number in range(TOKENS):
        held = {VAULT_HOLD_KEY: "owner is migrating"} if number == TOKENS // 2 else {}
        created = vault.auth.token.create(policies=["default"], meta={**meta, **held}, ttl="1h")["auth"]
        tokens.append(created["accessor"])
    for _ in range(SECRET_IDS):
        vault.write(f"auth/{approle}/role/api/secret-id", metadata=json.dumps(meta))
    for _ in range(CERTIFICATES):
        vault.write(f"{pki}/issue/web", common_name="api.example", uri_sans=workload, ttl="1h")
    scope = DiscoveryScope(pki_mounts=(pki,), approle_mounts=(approle,), kv_mounts=(), lease_mounts=(pki,))
    yield Estate(workload=workload, scope=scope, tokens=tokens, held=tokens[TOKENS // 2])
    for accessor in tokens:
        with contextlib.suppress(hvac.exceptions.InvalidRequest):  # revoked by the test
            vault.auth.token.revoke_accessor(accessor)
    vault.sys.disable_secrets_engine(pki)
    vault.sys.disable_auth_method(approle)


def indexed(vault: hvac.Client, estate: Estate) -> DiscoveryScope:
    """The estate's scope with a back-filled issuance index, which discovery reads alone."""
    create_table()
    client = boto3.client("dynamodb", region_name="us-east-1")
    index, state = IssuanceTableReader(TABLE, client), DynamoDbIndexState(TABLE, client)
    backfill_index(vault, index, state, estate.scope, now=lambda: datetime.now(UTC), requests_per_second=10_000)
    return replace(estate.scope, issuance_index=index, index_state=state)


def plan(vault: hvac.Client, estate: Estate, scope: DiscoveryScope, workers: int) -> ResponsePlan:
    event_id = str(uuid.uuid4())
    request = ResponseRequest(
        incident_id=f"concurrent-{event_id}",
        workload_id=estate.workload,
        reason="workload terminated",
        trigger=Trigger(source="rescind", detail_type="Workload Terminated", event_id=event_id),
        terminated_at=datetime.now(UTC),
    )
    _, planned = build_offboarding_plan(
        request,
        vault=vault,
        aws=None,
        inventory=None,
        scope=replace(scope, live_read_workers=workers),
        policy=GuardPolicy(blast_radius_cap=100),
    )
    return planned


def targets(planned: ResponsePlan) -> list[str]:
    return [format_ref(action.target) for action in (*planned.containment, *planned.actions)]


def test_concurrent_plan_reads_refuse_a_held_token_and_plan_the_rest_in_the_serial_order(
    vault: hvac.Client, aws: None, estate: Estate, backend_calls: BackendCalls
) -> None:
    scope = indexed(vault, estate)

    # When the plan reads each credential on 8 threads, and on one
    backend_calls.vault.clear()
    concurrent = plan(vault, estate, scope, workers=8)
    concurrent_calls = Counter(call.split("?")[0] for call in backend_calls.vault)
    backend_calls.vault.clear()
    serial = plan(vault, estate, scope, workers=1)
    serial_calls = Counter(call.split("?")[0] for call in backend_calls.vault)

    # Then both read the index alone, confirm each candidate live once, and refuse for the held token, by name
    assert "each confirmed live" in concurrent.decision_reason
    assert concurrent.decision is serial.decision is GuardDecision.REFUSE
    assert concurrent.decision_reason == serial.decision_reason
    assert concurrent.decision_reason.startswith(f"on hold: vault_token:{estate.held} (metadata {VAULT_HOLD_KEY})")
    assert targets(concurrent) == targets(serial)
    assert len(targets(concurrent)) == TOKENS + SECRET_IDS + CERTIFICATES
    assert concurrent_calls == serial_calls
    assert concurrent_calls["POST /v1/auth/token/lookup-accessor"] == TOKENS

    # And once the held token and another have ended, both plan every other credential in the same order
    gone = {estate.held, estate.tokens[0]}
    for accessor in gone:
        vault.auth.token.revoke_accessor(accessor)
    concurrent, serial = plan(vault, estate, scope, workers=8), plan(vault, estate, scope, workers=1)
    assert concurrent.decision is serial.decision is GuardDecision.PROCEED
    assert targets(concurrent) == targets(serial)
    assert len(targets(concurrent)) == TOKENS + SECRET_IDS + CERTIFICATES - len(gone)
    assert not {f"vault-token:accessor:{accessor}" for accessor in gone} & set(targets(concurrent))


def test_reads_run_at_once_in_order_and_raise_the_first_error_in_that_order() -> None:
    # Given reads that each wait for a second read to arrive (one thread alone would break the barrier)
    both_waiting = threading.Barrier(2, timeout=30)

    def read(item: int) -> int:
        both_waiting.wait()
        return item * 10

    # When they run on 2 threads, the results come in the items' order
    assert read_each(read, [1, 2, 3, 4], workers=2) == [10, 20, 30, 40]
    # On one thread, the first read waits for a second that never comes
    alone = threading.Barrier(2, timeout=1)
    with pytest.raises(threading.BrokenBarrierError):
        read_each(lambda item: alone.wait(), [1, 2], workers=1)

    # And of several failing reads, the first in the items' order is raised, whichever failed first in time
    def failing(item: int) -> int:
        if item in (3, 6):
            raise ValueError(f"read {item} failed")
        return item

    with pytest.raises(ValueError, match="read 3 failed"):
        read_each(failing, list(range(10)), workers=4)
