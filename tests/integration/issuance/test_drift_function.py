"""The IndexDrift function (functions/check_index_drift) as the schedule runs it, against a real OpenBao and moto.

Given a back-filled issuance index, and then tokens issued that the audit log never delivered,
When the scheduled drift check runs,
Then it publishes IssuanceIndexDrift (one metric, the direction a dimension) and IssuanceIndexSampled, marks the
index stale, and a dry run compares and publishes but marks nothing.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import hvac
import pytest

from rescind.exceptions import ConfigurationError
from rescind.issuance.backfill import backfill_index
from rescind.issuance.reading import IssuanceTableReader
from rescind.issuance.state import DynamoDbIndexState
from rescind_local import LocalOpenBao
from tests.emf import counted
from tests.integration.issuance.functions import invoke_function
from tests.integration.issuance.test_audit_index import TABLE, create_table
from tests.integration.issuance.test_backfill import Estate, estate, now

__all__ = ["estate"]  # the fixture, imported for pytest


def invoke(
    openbao: LocalOpenBao, estate: Estate, monkeypatch: pytest.MonkeyPatch, event: dict[str, Any], **extra: str
) -> dict[str, Any]:
    environment = {
        "LEDGER_TABLE_NAME": "rescind-ledger",
        "VAULT_ADDR": openbao.addr,
        "VAULT_AUTH_METHOD": "token",
        "VAULT_TOKEN": openbao.root_token,
        "ISSUANCE_TABLE_NAME": TABLE,
        "ISSUANCE_DRIFT_SAMPLE_SIZE": "1000",
        "ISSUANCE_DRIFT_THRESHOLD": "0.1",
        "SWEEP_STATE_TABLE_NAME": "rescind-sweeps",
        "PKI_MOUNTS": ",".join(estate.scope.pki_mounts),
        "APPROLE_MOUNTS": ",".join(estate.scope.approle_mounts),
        "LEASE_MOUNTS": ",".join(estate.scope.lease_mounts),
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_NAMESPACE": "Rescind",
        "POWERTOOLS_SERVICE_NAME": "rescind",
        **extra,
    }
    return invoke_function("check_index_drift", event, environment, monkeypatch)


def test_the_scheduled_check_publishes_the_drift_and_marks_a_drifted_index_stale(
    openbao: LocalOpenBao,
    vault: hvac.Client,
    aws: None,
    estate: Estate,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    create_table()
    client = boto3.client("dynamodb", region_name="us-east-1")
    state = DynamoDbIndexState(TABLE, client)
    backfill_index(vault, IssuanceTableReader(TABLE, client), state, estate.scope, now=now, requests_per_second=10_000)
    count = len(vault.list("auth/token/accessors")["data"]["keys"])
    late = [vault.auth.token.create(policies=["default"], ttl="10m")["auth"]["accessor"] for _ in range(count)]
    try:
        capsys.readouterr()
        dry = invoke(openbao, estate, monkeypatch, {"dry_run": True})
        assert dry["dry_run"] is True
        assert dry["missing_from_index"] >= count
        assert dry["stale"] is True
        marker = state.read_marker()
        assert marker is not None
        assert marker.stale_since is None  # a dry run marks nothing

        result = invoke(openbao, estate, monkeypatch, {"dry_run": False})

        assert result["missing_from_index"] >= count
        assert result["ratio"] > 0.1
        assert result["stale"] is True
        marker = state.read_marker()
        assert marker is not None
        assert marker.stale_since is not None
        output = capsys.readouterr().out
        assert counted(output, "IssuanceIndexDrift", direction="missing_from_index") >= 2 * count
        # The server is shared with earlier tests, whose short-lived tokens may expire between the back-fill and
        # the check: "dead in Vault" may count those, but each one it names must really be gone, and none is ours.
        dead = dry["dead_in_vault"] + result["dead_in_vault"]
        assert counted(output, "IssuanceIndexDrift", direction="dead_in_vault") == dead
        for example in result["dead_examples"]:
            accessor = example.removeprefix("vault-token:accessor:")
            assert accessor not in late
            with pytest.raises(hvac.exceptions.InvalidRequest):
                vault.auth.token.lookup_accessor(accessor)
        assert counted(output, "IssuanceIndexSampled", side="live") == result["sampled_live"] + dry["sampled_live"]
        assert json.dumps(result).count("vault-token:accessor:") <= 10  # a few examples, never the whole sample
    finally:
        for accessor in late:
            vault.auth.token.revoke_accessor(accessor)


def test_without_the_issuance_table_the_check_is_a_configuration_error(
    openbao: LocalOpenBao, aws: None, estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError, match="ISSUANCE_TABLE_NAME"):
        invoke(openbao, estate, monkeypatch, {"dry_run": False}, ISSUANCE_TABLE_NAME="")
