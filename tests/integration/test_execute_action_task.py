"""The execute-action task: one action executed, verified and recorded; bad input refused before any call."""

from __future__ import annotations

from typing import Any

import boto3
import hvac
import pytest

from rescind.engine.factory import build_engine
from rescind.engine.tasks import ExecuteActionRequest, execute_and_record
from rescind.exceptions import InvalidInput, VaultUnavailable
from rescind.ledger import DynamoDbLedger
from rescind.models import Outcome
from rescind_local import create_table_from_template
from tests.conftest import BackendCalls


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
        ExecuteActionRequest.parse(_revoke_request(accessor, "exec-0-0")), engine=engine, ledger=ledger
    )
    second = execute_and_record(
        ExecuteActionRequest.parse(_revoke_request(accessor, "exec-0-1")), engine=engine, ledger=ledger
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
        execute_and_record(request, engine=build_engine(unreachable), ledger=ledger)
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
        execute_and_record(ExecuteActionRequest.parse(event), engine=engine, ledger=ledger)
    assert "invalid execute-action request" in str(refused.value)
    assert ":" in str(refused.value).removeprefix("invalid execute-action request:")
    assert backend_calls.total == 0
    assert "hvs.CAESIAbCdEfGhIjKlMnOpQrStUv" not in str(refused.value)
