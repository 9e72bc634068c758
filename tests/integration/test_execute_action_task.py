"""The execute-action task: one action executed, verified and recorded; bad input refused before any call."""

from __future__ import annotations

from typing import Any

import boto3
import hvac
import pytest

from rescind.discovery import DiscoveryScope
from rescind.engine.factory import build_engine
from rescind.engine.tasks import ExecuteActionRequest, execute_and_record
from rescind.exceptions import InvalidInput, VaultUnavailable
from rescind.ledger import DynamoDbLedger
from rescind.models import Outcome
from rescind_local import create_table_from_template
from tests.conftest import BackendCalls

SCOPE = DiscoveryScope()  # the template's defaults: pki, approle, secret


@pytest.fixture
def ledger(aws: None) -> DynamoDbLedger:
    client = boto3.client("dynamodb")
    return DynamoDbLedger(create_table_from_template(client, "LedgerTable", "ledger"), client)


def _revoke_request(accessor: str, attempt: str) -> dict[str, Any]:
    return {
        "incident_id": "inc-task",
        "attempt_id": attempt,
        "action": {"kind": "revoke", "target": {"kind": "vault_token", "accessor": accessor}, "reason": "leak"},
    }


def test_an_action_is_executed_verified_and_recorded_and_a_replay_is_already_absent(
    vault: hvac.Client, ledger: DynamoDbLedger, backend_calls: BackendCalls
) -> None:
    # Given a live token
    accessor = vault.auth.token.create(ttl="1h")["auth"]["accessor"]
    engine = build_engine(vault)

    # When the task runs twice (a second delivery with a new attempt id)
    first = execute_and_record(
        ExecuteActionRequest.parse(_revoke_request(accessor, "exec-0-0")), engine=engine, ledger=ledger, scope=SCOPE
    )
    second = execute_and_record(
        ExecuteActionRequest.parse(_revoke_request(accessor, "exec-0-1")), engine=engine, ledger=ledger, scope=SCOPE
    )

    # Then the token is dead, the replay says so, and both attempts are in the ledger
    assert first.outcome is Outcome.SUCCEEDED
    assert second.outcome is Outcome.ALREADY_ABSENT
    with pytest.raises(hvac.exceptions.InvalidRequest):
        vault.auth.token.lookup_accessor(accessor)
    attempts = ledger.read_incident("inc-task").attempts
    assert [a.result.outcome for a in attempts] == [Outcome.SUCCEEDED, Outcome.ALREADY_ABSENT]
    # And the counting hook the bad-input tests rely on does see real calls
    assert any("revoke-accessor" in call for call in backend_calls.vault)
    assert "dynamodb:PutItem" in backend_calls.aws


def test_a_transient_failure_is_recorded_and_raised_for_the_state_machine_to_retry(ledger: DynamoDbLedger) -> None:
    unreachable = hvac.Client(url="http://127.0.0.1:9", token="unused", timeout=1)
    request = ExecuteActionRequest.parse(_revoke_request("A" * 24, "exec-1-0"))
    with pytest.raises(VaultUnavailable):
        execute_and_record(request, engine=build_engine(unreachable), ledger=ledger, scope=SCOPE)
    (attempt,) = ledger.read_incident("inc-task").attempts
    assert attempt.result.outcome is Outcome.FAILED
    assert attempt.result.error_type == "VaultUnavailable"


ACCESSOR = "CaTti28wsXOQA02COE2ygP2B"
BAD_REQUESTS: list[tuple[str, Any]] = [
    ("not an object", "revoke everything"),
    ("empty", {}),
    (
        "unknown kind",
        _revoke_request(ACCESSOR, "a")
        | {"action": {"kind": "revoke", "reason": "x", "target": {"kind": "root_token"}}},
    ),
    ("token value as accessor", _revoke_request("hvs.CAESIAbCdEfGhIjKlMnOpQrStUv", "a")),
    (
        "path traversal",
        _revoke_request(ACCESSOR, "a")
        | {
            "action": {
                "kind": "rotate",
                "reason": "x",
                "params": {"run_id": "r"},
                "target": {"kind": "kv_secret", "path": "../sys"},
            }
        },
    ),
    (
        "root prefix lease",
        _revoke_request(ACCESSOR, "a")
        | {"action": {"kind": "revoke", "reason": "x", "target": {"kind": "vault_lease", "lease_id": "/"}}},
    ),
    (
        "empty lease",
        _revoke_request(ACCESSOR, "a")
        | {"action": {"kind": "revoke", "reason": "x", "target": {"kind": "vault_lease", "lease_id": ""}}},
    ),
    (
        "action not for kind",
        _revoke_request(ACCESSOR, "a")
        | {"action": {"kind": "delete", "reason": "x", "target": {"kind": "vault_token", "accessor": ACCESSOR}}},
    ),
    (
        "missing reason",
        _revoke_request(ACCESSOR, "a")
        | {"action": {"kind": "revoke", "target": {"kind": "vault_token", "accessor": ACCESSOR}}},
    ),
    ("bad incident id", _revoke_request(ACCESSOR, "a") | {"incident_id": "inc/../x"}),
    ("extra field", _revoke_request(ACCESSOR, "a") | {"token": "s.secret"}),
]


@pytest.mark.parametrize(("case", "event"), BAD_REQUESTS, ids=[case for case, _ in BAD_REQUESTS])
def test_bad_input_is_refused_naming_the_problem_and_touches_nothing(
    case: str, event: Any, vault: hvac.Client, ledger: DynamoDbLedger, backend_calls: BackendCalls
) -> None:
    engine = build_engine(vault)
    with pytest.raises(InvalidInput) as refused:
        execute_and_record(ExecuteActionRequest.parse(event), engine=engine, ledger=ledger, scope=SCOPE)
    assert "invalid execute-action request" in str(refused.value)
    assert ":" in str(refused.value).removeprefix("invalid execute-action request:")
    assert backend_calls.total == 0
    assert "hvs.CAESIAbCdEfGhIjKlMnOpQrStUv" not in str(refused.value)


# --- targets outside the configured mounts (issue 13: each of these was accepted, and the first lowered the
# token store's TTLs to 60 s on a real OpenBao) ------------------------------------------------------------------

OUT_OF_SCOPE = [
    ("token mount TTL", "shorten_ttl", {"kind": "vault_ttl_target", "target_type": "mount", "mount": "auth/token"}),
    ("sys mount TTL", "shorten_ttl", {"kind": "vault_ttl_target", "target_type": "mount", "mount": "sys"}),
    (
        "PKI role on another mount",
        "shorten_ttl",
        {"kind": "vault_ttl_target", "target_type": "pki_role", "mount": "pki-other", "role_name": "web"},
    ),
    (
        "token role outside the token store",
        "shorten_ttl",
        {"kind": "vault_ttl_target", "target_type": "token_role", "mount": "approle", "role_name": "r"},
    ),
    ("certificate on sys/raw", "revoke", {"kind": "pki_certificate", "mount": "sys/raw", "serial": "1f:0a"}),
    ("KV secret on sys", "rotate", {"kind": "kv_secret", "mount": "sys", "path": "policy/root"}),
    (
        "secret-id on another AppRole",
        "revoke",
        {
            "kind": "approle_secret_id",
            "mount": "other",
            "role_name": "r",
            "accessor": "0c1b2f9e-1111-2222-3333-444455556666",
        },
    ),
    ("lease under auth/token", "revoke", {"kind": "vault_lease", "lease_id": "auth/token/revoke-prefix/x"}),
    ("lease under sys", "revoke", {"kind": "vault_lease", "lease_id": "sys/leases/revoke-force/x"}),
    ("lease on an unconfigured mount", "revoke", {"kind": "vault_lease", "lease_id": "database/creds/app/abc"}),
]


@pytest.mark.parametrize(("case", "kind", "target"), OUT_OF_SCOPE, ids=[case for case, _, _ in OUT_OF_SCOPE])
def test_a_target_outside_the_configured_mounts_is_refused_before_any_vault_call(
    case: str,
    kind: str,
    target: dict[str, Any],
    vault: hvac.Client,
    ledger: DynamoDbLedger,
    backend_calls: BackendCalls,
) -> None:
    # Given a well-formed action whose target lies outside PkiMounts, AppRoleMounts, KvMounts and LeaseMounts
    params = {"shorten_ttl": {"ttl_seconds": 60}, "rotate": {"run_id": "inc-scope"}}.get(kind, {})
    action = {"kind": kind, "target": target, "reason": case, "params": params}
    event = {"incident_id": "inc-scope", "attempt_id": "a", "action": action}
    request = ExecuteActionRequest.parse(event)

    # When the acting task runs it
    result = execute_and_record(request, engine=build_engine(vault), ledger=ledger, scope=SCOPE)

    # Then it failed as out of scope, with no call to Vault; the refusal is recorded
    assert result.outcome is Outcome.FAILED
    assert result.error_type == "TargetOutOfScope"
    assert result.detail.startswith("target out of scope: ")
    assert backend_calls.vault == []
    assert [a.result.error_type for a in ledger.read_incident("inc-scope").attempts] == ["TargetOutOfScope"]


def test_a_lease_on_a_configured_lease_mount_is_in_scope(
    vault: hvac.Client, ledger: DynamoDbLedger, backend_calls: BackendCalls
) -> None:
    event = {
        "incident_id": "inc-scope-lease",
        "attempt_id": "a",
        "action": {
            "kind": "revoke",
            "target": {"kind": "vault_lease", "lease_id": "database/creds/app/abc"},
            "reason": "a database lease",
        },
    }
    scope = DiscoveryScope(lease_mounts=("database",))
    result = execute_and_record(
        ExecuteActionRequest.parse(event), engine=build_engine(vault), ledger=ledger, scope=scope
    )
    assert result.error_type != "TargetOutOfScope"
    assert backend_calls.vault  # it was looked up: "not found" is the engine's answer, not the scope's
