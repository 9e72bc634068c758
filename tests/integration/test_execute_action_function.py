"""The ExecuteAction function as template.yaml deploys it: invoked through moto's Lambda API, against real OpenBao."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import boto3
import hvac
import pytest

from rescind.guard import VAULT_HOLD_KEY
from rescind.ledger import DynamoDbLedger
from rescind_local.lambdas import invoke_in_process
from rescind_local.stack import LocalStack
from tests.conftest import load_task_input
from tests.emf import counted


def _event_for(accessor: str, attempt: str) -> dict[str, Any]:
    event = load_task_input("execute_action.json")
    event["action"]["target"]["accessor"] = accessor
    event["attempt_id"] = attempt
    return event


def test_the_sample_event_revokes_verifies_and_records(stack: LocalStack, vault: hvac.Client) -> None:
    # Given a live token and the sample task payload naming it
    accessor = vault.auth.token.create(ttl="1h")["auth"]["accessor"]

    # When the deployed function is invoked twice (a retry)
    first, first_error = stack.invoke("ExecuteActionFunction", _event_for(accessor, "exec.0.0"))
    second, second_error = stack.invoke("ExecuteActionFunction", _event_for(accessor, "exec.0.1"))

    # Then the token is dead, the retry says so, and both attempts are in the template's ledger table
    assert (first_error, second_error) == (None, None)
    assert first["outcome"] == "succeeded"
    assert second["outcome"] == "already_absent"
    assert first["evidence"][0]["confirmed"] is True
    with pytest.raises(hvac.exceptions.InvalidRequest):
        vault.auth.token.lookup_accessor(accessor)
    ledger = DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb"))
    incident = load_task_input("execute_action.json")["incident_id"]
    assert [a.attempt_id for a in ledger.read_incident(incident).attempts] == ["exec.0.0", "exec.0.1"]


def test_a_malformed_payload_fails_with_a_named_error_and_records_nothing(stack: LocalStack) -> None:
    event = load_task_input("execute_action.json")
    event["action"]["target"] = {"kind": "kv_secret", "path": "apps/../../sys/raw"}
    payload, function_error = stack.invoke("ExecuteActionFunction", event)
    assert function_error == "Handled"
    assert payload["errorType"] == "InvalidInput"
    assert "path traversal" in payload["errorMessage"]
    items = boto3.client("dynamodb").scan(TableName=stack.physical_id("LedgerTable"))["Items"]
    assert items == []


def test_the_token_stores_ttl_is_out_of_the_deployed_functions_scope(stack: LocalStack, vault: hvac.Client) -> None:
    # Given the token store's TTLs, and a well-formed action to lower them to 60 s
    before = vault.sys.read_auth_method_tuning("token")["data"]
    event = load_task_input("execute_action.json")
    event["action"] = {
        "kind": "shorten_ttl",
        "target": {"kind": "vault_ttl_target", "target_type": "mount", "mount": "auth/token"},
        "reason": "hostile but well-formed",
        "params": {"ttl_seconds": 60},
    }

    # When the deployed function (PkiMounts, AppRoleMounts, KvMounts at their defaults) is asked to run it
    payload, function_error = stack.invoke("ExecuteActionFunction", event)

    # Then it is refused as out of scope, recorded, and the token store is as it was
    assert function_error is None, payload
    assert (payload["outcome"], payload["error_type"]) == ("failed", "TargetOutOfScope")
    assert vault.sys.read_auth_method_tuning("token")["data"] == before


def _batch_event(accessors: list[str], attempt: str) -> dict[str, Any]:
    one = load_task_input("execute_action.json")
    actions = [{**one["action"], "target": {"kind": "vault_token", "accessor": accessor}} for accessor in accessors]
    return {"incident_id": one["incident_id"], "attempt_id": attempt, "actions": actions}


def test_a_batch_counts_its_outcomes_by_kind_as_one_action_does(
    stack: LocalStack, vault: hvac.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a batch of three tokens, one of them held
    live = [vault.auth.token.create(ttl="1h")["auth"]["accessor"] for _ in range(2)]
    held = vault.auth.token.create(ttl="1h", meta={VAULT_HOLD_KEY: "true"})["auth"]["accessor"]

    # When the deployed function runs it, and then one action alone
    payload, function_error = stack.invoke("ExecuteActionFunction", _batch_event([*live, held], "exec.revoke.0.0"))
    single = vault.auth.token.create(ttl="1h")["auth"]["accessor"]
    _, single_error = stack.invoke("ExecuteActionFunction", _event_for(single, "exec.1.0"))

    # Then both paths count ActionOutcome with the same dimensions: the outcome and the credential kind
    assert (function_error, single_error) == (None, None), payload
    assert payload["outcomes_by_kind"] == {"vault_token": {"succeeded": 2, "failed": 1}}
    metrics = capsys.readouterr().out
    assert counted(metrics, "ActionOutcome", outcome="succeeded", kind="vault_token") == 3.0
    assert counted(metrics, "ActionOutcome", outcome="failed", kind="vault_token") == 1.0


def test_a_batch_invoked_too_close_to_its_timeout_starts_nothing_and_asks_for_a_retry(
    stack: LocalStack, vault: hvac.Client
) -> None:
    # Given the function as deployed but with 20 s to run (under the batch's 30 s margin), and a live token
    accessor = vault.auth.token.create(ttl="1h")["auth"]["accessor"]
    short = replace(stack.functions["ExecuteActionFunction"], timeout=20)

    # When it is invoked with a batch naming the token
    result = invoke_in_process(short, _batch_event([accessor], "exec.revoke.0.0"))

    # Then it fails with the error the Map retries, the token is alive, and nothing was recorded
    assert result.errored
    assert result.invocation.error_type == "BatchOutOfTime"
    assert "1 of 1 action(s) not attempted" in json.loads(result.payload)["errorMessage"]
    assert vault.auth.token.lookup_accessor(accessor)["data"]["accessor"] == accessor
    items = boto3.client("dynamodb").scan(TableName=stack.physical_id("LedgerTable"))["Items"]
    assert items == []
