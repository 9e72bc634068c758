"""Back-filling the issuance index from a live OpenBao, discovery reading it alone once it is back-filled, and the
drift check that marks it stale.

Given a real OpenBao holding, for one workload, a token (metadata), an AppRole secret-id (metadata) and a PKI
certificate (URI SAN) with its lease, and an issuance table on moto,
When the index is back-filled (whole, or bounded and resumed),
Then each credential is recorded under the workload with its TTL and issue time, the lease unattributed, the index is
marked back-filled, no value is stored; discovery then reads the index by workload instead of scanning (each
candidate confirmed live) and says so; and a drift check that finds live credentials the index lacks marks it stale,
so discovery scans again and says why.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import boto3
import hvac
import pytest

from rescind.discovery import DiscoveryScope, discover_workload
from rescind.issuance.backfill import BACKFILL_REQUEST_ID, backfill_index
from rescind.issuance.drift import check_index_drift
from rescind.issuance.reading import IssuanceTableReader
from rescind.issuance.state import DynamoDbIndexState
from rescind.models import CredentialKind
from rescind.models.refs import format_ref, parse_ref
from rescind_local.openbao import LocalOpenBao
from tests.conftest import BackendCalls
from tests.integration.issuance.test_audit_index import TABLE, create_table


@dataclass
class Estate:
    workload: str
    scope: DiscoveryScope
    refs: dict[str, str]
    values: list[str]


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def estate(vault: hvac.Client, unique: str) -> Iterator[Estate]:
    with seeded_estate(vault, unique) as seeded:
        yield seeded


@pytest.fixture
def own_vault() -> Iterator[hvac.Client]:
    """A server of its own, for a test that counts or samples every token on it: on the shared one, other tests'
    tokens expire while it runs."""
    with LocalOpenBao() as server:
        yield hvac.Client(url=server.addr, token=server.root_token, timeout=10)


@pytest.fixture
def own_estate(own_vault: hvac.Client, unique: str) -> Iterator[Estate]:
    with seeded_estate(own_vault, unique) as seeded:
        yield seeded


@contextmanager
def seeded_estate(vault: hvac.Client, unique: str) -> Iterator[Estate]:
    workload = f"spiffe://backfill.example/{unique}"
    approle, pki = f"approle-{unique}", f"pki-{unique}"
    vault.sys.enable_auth_method("approle", path=approle)
    vault.write(f"auth/{approle}/role/api", token_policies="default", secret_id_ttl="2h")
    vault.sys.enable_secrets_engine("pki", path=pki)
    vault.sys.tune_mount_configuration(pki, max_lease_ttl="87600h")
    vault.write(f"{pki}/root/generate/internal", common_name="backfill", ttl="87600h")
    vault.write(
        f"{pki}/roles/web", allow_any_name=True, generate_lease=True, max_ttl="72h", allowed_uri_sans="spiffe://*"
    )
    token = vault.auth.token.create(policies=["default"], meta={"spiffe_id": workload}, ttl="1h")["auth"]
    secret_id = vault.write(f"auth/{approle}/role/api/secret-id", metadata=json.dumps({"spiffe_id": workload}))["data"]
    cert = vault.write(f"{pki}/issue/web", common_name="api.example", uri_sans=workload, ttl="1h")
    scope = DiscoveryScope(pki_mounts=(pki,), approle_mounts=(approle,), kv_mounts=(), lease_mounts=(pki,))
    yield Estate(
        workload=workload,
        scope=scope,
        refs={
            "token": f"vault-token:accessor:{token['accessor']}",
            "secret_id": f"approle:{approle}:api:{secret_id['secret_id_accessor']}",
            "cert": f"pki:{pki}:{cert['data']['serial_number']}",
            "lease": f"vault-lease:{cert['lease_id']}",
        },
        values=[token["client_token"], secret_id["secret_id"], cert["data"]["private_key"]],
    )
    vault.auth.token.revoke_accessor(token["accessor"])
    vault.sys.disable_secrets_engine(pki)
    vault.sys.disable_auth_method(approle)


def backfilled(vault: hvac.Client, estate: Estate, **options: object) -> tuple[IssuanceTableReader, DynamoDbIndexState]:
    create_table()
    client = boto3.client("dynamodb", region_name="us-east-1")
    index, state = IssuanceTableReader(TABLE, client), DynamoDbIndexState(TABLE, client)
    backfill_index(vault, index, state, estate.scope, now=now, requests_per_second=10_000, **options)  # type: ignore[arg-type]
    return index, state


def test_the_backfill_records_each_live_credential_under_its_workload_and_marks_the_index(
    vault: hvac.Client, aws: None, estate: Estate
) -> None:
    started = now()
    index, state = backfilled(vault, estate)

    records = {record.reference: record for record in index.by_workload(estate.workload)}
    assert set(records) == {estate.refs[name] for name in ("token", "secret_id", "cert")}
    token = records[estate.refs["token"]]
    assert token.kind is CredentialKind.VAULT_TOKEN
    assert token.request_id == BACKFILL_REQUEST_ID
    assert token.expires_at is not None
    assert abs((token.expires_at - (started + timedelta(hours=1))).total_seconds()) < 30
    assert records[estate.refs["secret_id"]].ttl_seconds == 7200
    assert records[estate.refs["cert"]].ttl_seconds is not None
    assert 3500 <= (records[estate.refs["cert"]].ttl_seconds or 0) <= 3700
    # The lease names no holder on the live server: it is kept unattributed, found by its reference
    (lease,) = index.by_reference(estate.refs["lease"])
    assert lease.workload_id is None
    assert lease.kind is CredentialKind.VAULT_LEASE
    marker = state.read_marker()
    assert marker is not None
    assert marker.backfilled_at is not None
    assert marker.backfilled_at >= started
    assert state.load_checkpoint() is None
    scanned = json.dumps(boto3.client("dynamodb", region_name="us-east-1").scan(TableName=TABLE)["Items"])
    assert all(value not in scanned for value in estate.values)


def test_a_bounded_backfill_stops_with_a_checkpoint_and_a_resumed_one_finishes_it(
    own_vault: hvac.Client, aws: None, own_estate: Estate
) -> None:
    vault, estate = own_vault, own_estate
    create_table()
    client = boto3.client("dynamodb", region_name="us-east-1")
    index, state = IssuanceTableReader(TABLE, client), DynamoDbIndexState(TABLE, client)
    total = backfill_index(vault, index, state, estate.scope, now=now, requests_per_second=10_000, max_items=10**6)
    assert total.complete
    create_table("rescind-issuance-bounded")
    bounded = IssuanceTableReader("rescind-issuance-bounded", client)
    bounded_state = DynamoDbIndexState("rescind-issuance-bounded", client)

    first = backfill_index(
        vault, bounded, bounded_state, estate.scope, now=now, requests_per_second=10_000, page_size=2, max_items=3
    )
    assert (first.complete, first.examined) == (False, 3)
    assert first.checkpoint is not None
    assert bounded_state.load_checkpoint() == first.checkpoint
    assert bounded_state.read_marker() is None  # not back-filled until the last phase is done

    rest = backfill_index(vault, bounded, bounded_state, estate.scope, now=now, requests_per_second=10_000, resume=True)

    assert rest.complete
    assert rest.resumed_after == first.checkpoint
    assert first.examined + rest.examined == total.examined
    assert {r.reference for r in bounded.by_workload(estate.workload)} == {
        r.reference for r in index.by_workload(estate.workload)
    }
    marker = bounded_state.read_marker()
    assert marker is not None
    assert marker.backfilled_at is not None


def test_a_backfilled_index_is_read_by_workload_instead_of_scanned_and_a_stale_one_is_not(
    vault: hvac.Client, aws: None, estate: Estate
) -> None:
    live = discover_workload(vault, None, estate.workload, estate.scope)
    index, state = backfilled(vault, estate)
    scope = replace(estate.scope, issuance_index=index, index_state=state)

    # When discovery runs on the back-filled index
    from_index = discover_workload(vault, None, estate.workload, scope)

    # Then it finds what the live scan finds, from the index, and says so
    assert {format_ref(ref) for ref in from_index.refs} == {format_ref(ref) for ref in live.refs}
    assert "from the issuance index, back-filled" in from_index.sources
    assert "each confirmed live" in from_index.sources
    # A token created after the back-fill that the audit log never delivered is not scanned for: the index is read
    late = vault.auth.token.create(policies=["default"], meta={"spiffe_id": estate.workload}, ttl="1h")["auth"]
    assert f"vault-token:accessor:{late['accessor']}" not in {
        format_ref(ref) for ref in discover_workload(vault, None, estate.workload, scope).refs
    }
    # A credential revoked since is confirmed dead and left out
    vault.auth.token.revoke_accessor(parse_ref(estate.refs["token"]).accessor)  # type: ignore[union-attr]
    assert estate.refs["token"] not in {
        format_ref(r) for r in discover_workload(vault, None, estate.workload, scope).refs
    }

    # And once the marker is older than allowed, discovery scans again (finding the late token) and says why
    old = replace(scope, index_max_age=timedelta(seconds=0))
    scanned = discover_workload(vault, None, estate.workload, old)
    assert f"vault-token:accessor:{late['accessor']}" in {format_ref(ref) for ref in scanned.refs}
    assert "discovery: live scan of every kind" in scanned.sources
    assert "longer ago than" in scanned.sources
    vault.auth.token.revoke_accessor(late["accessor"])


def test_the_drift_check_confirms_an_index_in_step_and_marks_a_drifted_one_stale(
    own_vault: hvac.Client, aws: None, own_estate: Estate
) -> None:
    vault, estate = own_vault, own_estate  # "in step" means no token on the server died or appeared meanwhile
    index, state = backfilled(vault, estate)
    scope = replace(estate.scope, issuance_index=index, index_state=state)
    rng = random.Random(17)

    in_step = check_index_drift(
        vault, index, state, scope, sample_size=20, threshold=0.2, now=now(), wait=lambda: None, rng=rng
    )
    assert (in_step.missing_from_index, in_step.dead_in_vault, in_step.stale) == (0, 0, False)
    assert in_step.sampled_index > 0
    assert in_step.sampled_live > 0
    marker = state.read_marker()
    assert marker is not None
    assert marker.confirmed_at == in_step.checked_at

    # Given tokens issued after the back-fill that the audit log never delivered
    late = [
        vault.auth.token.create(policies=["default"], ttl="10m")["auth"]["accessor"]
        for _ in range(2 * len(vault.list("auth/token/accessors")["data"]["keys"]))
    ]
    try:
        drifted = check_index_drift(
            vault, index, state, scope, sample_size=20, threshold=0.1, now=now(), wait=lambda: None, rng=rng
        )
        assert drifted.missing_from_index > 0
        assert drifted.stale is True
        assert set(drifted.missing_examples) <= {f"vault-token:accessor:{accessor}" for accessor in late}
        assert "above 10.0%" in drifted.why
        # Then discovery no longer reads the index alone, and says why
        scanned = discover_workload(vault, None, estate.workload, scope)
        assert "discovery: live scan of every kind" in scanned.sources
        assert "stale since" in scanned.sources
        # And only a complete back-fill trusts it again
        backfill_index(vault, index, state, estate.scope, now=now, requests_per_second=10_000)
        assert "from the issuance index" in discover_workload(vault, None, estate.workload, scope).sources
    finally:
        for accessor in late:
            vault.auth.token.revoke_accessor(accessor)


def test_a_plan_on_the_backfilled_index_reads_each_candidate_once_and_its_guard_reads_nothing_again(
    vault: hvac.Client, aws: None, estate: Estate, backend_calls: BackendCalls
) -> None:
    from rescind.guard import GuardPolicy
    from rescind.ledger import Trigger
    from rescind.offboarding.plan import build_offboarding_plan
    from rescind.response.types import GuardDecision, ResponseRequest

    # Given a back-filled index holding the workload's token, secret-id and certificate
    index, state = backfilled(vault, estate)
    scope = replace(estate.scope, issuance_index=index, index_state=state)
    request = ResponseRequest(
        incident_id=f"index-calls-{estate.workload.rsplit('/', 1)[-1]}",
        workload_id=estate.workload,
        reason="test: calls of a plan on the index",
        trigger=Trigger(source="rescind", detail_type="Workload Terminated", event_id="x", workload_id=estate.workload),
        terminated_at=now(),
    )
    backend_calls.vault.clear()

    # When its end is planned and guarded
    _, planned = build_offboarding_plan(
        request, vault=vault, aws=None, inventory=None, scope=scope, policy=GuardPolicy()
    )

    # Then each candidate was read once, by the read that confirmed it live (the guard took its hold and owner from
    # it), and whether the token may create tokens was asked once: its revoke will not ask again
    def reads_of(endpoint: str) -> int:
        return sum(1 for call in backend_calls.vault if endpoint in call)

    assert planned.decision is GuardDecision.PROCEED
    assert len(planned.actions) == 3
    assert reads_of("/auth/token/lookup-accessor") == 1
    assert reads_of("/secret-id-accessor/lookup") == 1
    assert reads_of(f"/{estate.scope.pki_mounts[0]}/cert/") == 1
    assert reads_of("/sys/capabilities-accessor") == 1
    (token_action,) = [action for action in planned.actions if action.target.kind is CredentialKind.VAULT_TOKEN]
    assert token_action.params.cannot_create_tokens
