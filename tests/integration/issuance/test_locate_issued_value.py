"""A leaked value Vault issued, located through `sys/audit-hash` and the issuance index, against a real OpenBao
(file audit device, hmac_accessor=false) and a real PostgreSQL.

Given a workload token that checks out a dynamic database credential, and the audit lines indexed through the
IndexAuditLog handler into moto DynamoDB,
When the credential's password leaks (as `vault_issued_value`, or misreported as a KV value),
Then the locator hashes it with the audit device, finds the lease that returned it and its workload, and the leak
plan revokes the lease: lease lookup fails and the database user is gone. A value Vault never issued, or a
locator without the device configured, is "not found", never a guess.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import hvac
import hvac.exceptions
import pytest
from pydantic import SecretStr

from rescind.discovery import DiscoveryScope
from rescind.engine.factory import build_engine
from rescind.exceptions import ActionFailed
from rescind.guard import GuardPolicy
from rescind.issuance import index_audit_lines
from rescind.issuance.dynamodb import DynamoDbIssuanceIndex
from rescind.issuance.locate import NOT_CONFIGURED
from rescind.leaks.locate import LeakLocator
from rescind.leaks.plan import build_leak_plan
from rescind.leaks.start import leak_response_request
from rescind.leaks.types import LeakAlert, LocatedLeak, SecretType, Unlocated
from rescind.models import Outcome, VaultLeaseRef, VaultTokenRef
from rescind.response.types import GuardDecision
from rescind_local import LocalOpenBao
from tests.integration.issuance.test_audit_index import (
    audit_lines,
    bao,  # noqa: F401  (the module's OpenBao, hmac_accessor=false)
    create_table,
    invoke,
    subscription_event,
)
from tests.postgres import PostgresServer, mount_dynamic_database, postgres_server

__all__ = ["postgres_server"]  # the fixture, imported for pytest

pytestmark = pytest.mark.integration

WORKLOAD = "spiffe://prod.example/ns/orders/sa/api"
DEVICE = "to-file"  # LocalOpenBao's file audit device


@dataclass
class Issued:
    lease_id: str
    username: str
    password: str = ""  # the test's probe only: it proves by use whether the user is alive


@dataclass
class Estate:
    vault: hvac.Client
    mount: str
    workload: hvac.Client  # the workload's own token, which checks credentials out
    token_value: str
    token_accessor: str


@pytest.fixture
def estate(bao: LocalOpenBao, postgres_server: PostgresServer) -> Iterator[Estate]:  # noqa: F811
    vault = hvac.Client(url=bao.addr, token=bao.root_token, timeout=10)
    suffix = secrets.token_hex(4)
    mount = f"db-{suffix}"
    mount_dynamic_database(vault, postgres_server, mount)
    vault.sys.create_or_update_policy(f"orders-{suffix}", f'path "{mount}/creds/app" {{ capabilities = ["read"] }}')
    token = vault.auth.token.create(policies=[f"orders-{suffix}"], meta={"spiffe_id": WORKLOAD}, ttl="1h")["auth"]
    workload = hvac.Client(url=bao.addr, token=token["client_token"], timeout=10)
    yield Estate(vault, mount, workload, token["client_token"], token["accessor"])
    vault.sys.disable_secrets_engine(mount)


def check_out(estate: Estate) -> Issued:
    issued = estate.workload.read(f"{estate.mount}/creds/app")
    return Issued(issued["lease_id"], issued["data"]["username"], issued["data"]["password"])


def indexed(bao: LocalOpenBao, since: int, monkeypatch: pytest.MonkeyPatch) -> DynamoDbIssuanceIndex:  # noqa: F811
    """The audit lines written since `since`, delivered to the IndexAuditLog handler as a subscription would."""
    index = create_table()
    report = invoke(subscription_event(audit_lines(bao.audit_log, since)), monkeypatch)
    assert report["refused"] == 0
    return index


@pytest.fixture
def leased(
    bao: LocalOpenBao,  # noqa: F811
    estate: Estate,
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Issued, DynamoDbIssuanceIndex]:
    """A database credential the workload checked out, and the index its issuance was delivered to."""
    start = bao.audit_log.stat().st_size
    issued = check_out(estate)
    return issued, indexed(bao, start, monkeypatch)


def alert(value: str, secret_type: SecretType = SecretType.VAULT_ISSUED_VALUE) -> LeakAlert:
    return LeakAlert(
        source="rescind",
        detail_type="Secret Leaked",
        event_id=f"e-{secrets.token_hex(4)}",
        secret_type=secret_type,
        secret=SecretStr(value),
        source_url="https://github.com/example/orders/blob/main/.env",
        scanner="trufflehog",
        found_at=datetime.now(UTC),
    )


def locator(estate: Estate, index: DynamoDbIssuanceIndex | None, device: str | None = DEVICE) -> LeakLocator:
    scope = DiscoveryScope(kv_mounts=(), lease_mounts=(estate.mount,), issuance_index=index)
    return LeakLocator(estate.vault, scope, audit_device=device)


def test_a_leaked_dynamic_database_password_is_located_by_its_audit_hash_and_its_lease_revoked(
    estate: Estate,
    leased: tuple[Issued, DynamoDbIssuanceIndex],
    postgres_server: PostgresServer,
) -> None:
    # Given a dynamic database credential the workload checked out, its issuance indexed, and another one
    issued, index = leased
    bystander = check_out(estate)
    assert postgres_server.can_log_in(issued.username, issued.password)

    # When its password leaks
    leaked = alert(issued.password)
    located = locator(estate, index).locate(leaked)

    # Then it is located as its lease, owned by the workload, by the audit HMAC of the password field
    assert isinstance(located, LocatedLeak), located
    assert located.credentials == (VaultLeaseRef(lease_id=issued.lease_id),)
    assert located.owner == WORKLOAD
    assert f"sys/audit-hash/{DEVICE}" in located.evidence
    assert "data.password" in located.evidence
    assert issued.password not in located.model_dump_json()

    # And the leak plan revokes that lease, verified by lease lookup and by PostgreSQL
    request = leak_response_request(leaked, located, "leak-issued-value-1")
    assert issued.password not in request.model_dump_json()
    plan, planned = build_leak_plan(request, vault=estate.vault, aws=None, policy=GuardPolicy())
    assert planned.decision is GuardDecision.PROCEED, planned.decision_reason
    results = build_engine(estate.vault).run_plan(plan)
    assert [result.outcome for result in results] == [Outcome.SUCCEEDED], results
    assert results[0].evidence[0].observed == "invalid lease: the lease is gone"
    with pytest.raises(hvac.exceptions.InvalidRequest):
        estate.vault.write("sys/leases/lookup", lease_id=issued.lease_id)
    assert not postgres_server.role_exists(issued.username)
    assert not postgres_server.can_log_in(issued.username, issued.password)
    # Only that credential: the workload's other one still logs in
    assert postgres_server.can_log_in(bystander.username, bystander.password)


def test_a_value_its_own_locator_cannot_find_is_tried_through_the_issuance_index(
    estate: Estate, leased: tuple[Issued, DynamoDbIssuanceIndex]
) -> None:
    # Given a database password a scanner reported as a KV value (no fingerprint index knows it)
    issued, index = leased

    located = locator(estate, index).locate(alert(issued.password, SecretType.KV_VALUE))

    assert isinstance(located, LocatedLeak), located
    assert located.credentials == (VaultLeaseRef(lease_id=issued.lease_id),)
    assert located.evidence.startswith("kv_value not located (")
    assert "sys/audit-hash" in located.evidence


def test_a_leaked_token_value_is_located_as_its_accessor(
    bao: LocalOpenBao,  # noqa: F811
    estate: Estate,
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The token was issued before the test: its issuance is the fixture's line, so index the whole log
    index = indexed(bao, 0, monkeypatch)

    located = locator(estate, index).locate(alert(estate.token_value))

    assert isinstance(located, LocatedLeak), located
    assert located.credentials == (VaultTokenRef(accessor=estate.token_accessor),)
    assert "auth.client_token" in located.evidence


def test_a_value_vault_never_issued_is_not_found_and_nothing_is_guessed(
    estate: Estate, leased: tuple[Issued, DynamoDbIssuanceIndex]
) -> None:
    located = locator(estate, leased[1]).locate(alert(secrets.token_urlsafe(24)))

    assert isinstance(located, Unlocated)
    assert located.why.startswith("not found: no issuance in the index has this value's HMAC")
    assert f"audit device {DEVICE}" in located.why


def test_without_the_audit_device_configured_it_says_not_found_and_asks_nothing_of_vault(
    bao: LocalOpenBao,  # noqa: F811
    estate: Estate,
    leased: tuple[Issued, DynamoDbIssuanceIndex],
) -> None:
    issued, index = leased
    before = bao.audit_log.stat().st_size

    located = locator(estate, index, device=None).locate(alert(issued.password))

    assert located == Unlocated(why=NOT_CONFIGURED)
    assert bao.audit_log.stat().st_size == before  # no request reached Vault


def test_with_hmac_accessor_left_on_a_leaked_token_is_found_but_named_unactionable(
    openbao: LocalOpenBao, vault: hvac.Client, aws: None
) -> None:
    """The session's OpenBao keeps the default (accessors HMAC'd): the issuance is found, and the answer says why
    it cannot be acted on by accessor, instead of guessing one."""
    start = openbao.audit_log.stat().st_size
    token = vault.auth.token.create(policies=["default"], meta={"spiffe_id": WORKLOAD}, ttl="5m")["auth"]
    index = create_table("rescind-issuance-hmac-accessor")
    index_audit_lines(index, audit_lines(openbao.audit_log, start), metadata_key="spiffe_id")
    scope = DiscoveryScope(kv_mounts=(), issuance_index=index)

    located = LeakLocator(vault, scope, audit_device=DEVICE).locate(alert(token["client_token"]))

    assert isinstance(located, Unlocated)
    assert "hmac_accessor" in located.why
    assert token["client_token"] not in located.why


def test_a_device_path_vault_does_not_have_fails_naming_it_and_an_alerts_own_answer_stands(
    estate: Estate, leased: tuple[Issued, DynamoDbIssuanceIndex]
) -> None:
    issued, index = leased
    wrong = locator(estate, index, device="no-such-device")

    with pytest.raises(ActionFailed, match=r"sys/audit-hash/no-such-device on .* refused") as raised:
        wrong.locate(alert(issued.password))
    assert issued.password not in str(raised.value)

    # As a fallback it never turns an alert's own "not found" into an error: the reason is added
    fallback = wrong.locate(alert(issued.password, SecretType.KV_VALUE))
    assert isinstance(fallback, Unlocated)
    assert "the issuance index: sys/audit-hash/no-such-device" in fallback.why
    assert issued.password not in fallback.why
