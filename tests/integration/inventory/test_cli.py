"""`rescind inventory sync|show` through Typer's CliRunner, against moto and the session's OpenBao server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import hvac
import pytest
from typer.testing import CliRunner

from rescind.models.refs import format_ref, parse_ref
from rescind_cli.inventory import inventory_app
from rescind_local import LocalOpenBao
from tests.conftest import BackendCalls
from tests.integration.inventory.test_sync import (
    OWN,
    REGION,
    TABLE,
    Estate,
    build_estate,
    create_inventory_table,
    expected_refs,
)


@pytest.fixture
def dynamodb(aws: None) -> Any:
    return create_inventory_table()


@pytest.fixture
def estate(aws: None, vault: hvac.Client, unique: str) -> Estate:
    return build_estate(vault, unique)


@pytest.fixture
def runner(openbao: LocalOpenBao, tmp_path: Path) -> CliRunner:
    # HOME points at an empty folder so that a developer's ~/.vault-token is never read; COLUMNS keeps rich
    # from folding ids.
    env = {"VAULT_ADDR": openbao.addr, "VAULT_TOKEN": openbao.root_token, "HOME": str(tmp_path), "COLUMNS": "200"}
    return CliRunner(env=env)


def invoke_json(runner: CliRunner, *args: str, exit_code: int = 0) -> Any:
    result = runner.invoke(inventory_app, [*args, "--json"])
    assert result.exit_code == exit_code, result.output
    return json.loads(result.stdout)


@pytest.mark.usefixtures("dynamodb")
def test_sync_then_show_as_json(runner: CliRunner, estate: Estate) -> None:
    # When the inventory is synced from the command line, twice
    first = invoke_json(runner, "sync", "--table", TABLE, "--account", OWN, "--region", REGION)
    second = invoke_json(runner, "sync", "--table", TABLE)

    # Then the JSON reports what was bound and recorded, and the second run (defaults: own account and region)
    # added nothing
    assert first["ok"] is True
    assert first["resources_bound"] == 4
    assert first["resources_by_kind"] == {"ec2_instance": 2, "ecs_task": 1, "lambda_function": 1}
    assert first["credentials_new"] == 8
    assert first["credentials_by_kind"]["iam_access_key"] == 2
    assert (second["ok"], second["resources_bound"], second["bindings_new"], second["credentials_new"]) == (
        True,
        4,
        0,
        0,
    )

    # And show lists every bound workload with its resources and its credential references
    shown = invoke_json(runner, "show", "--table", TABLE)
    by_workload = {view["workload_id"]: view for view in shown["workloads"]}
    assert set(by_workload) == {estate.workload_id, estate.neighbour_id}
    mine = by_workload[estate.workload_id]
    assert {resource["cloud_id"] for resource in mine["resources"]} == {
        estate.instance_id,
        estate.task_arn,
        estate.function_arn,
    }
    assert len(mine["credentials"]) == len(expected_refs(estate.workload))
    assert by_workload[estate.neighbour_id]["credentials"] == []
    # And each reference is shown in the form `rescind revoke --credential` takes, so it can be pasted
    for credential in mine["credentials"]:
        assert format_ref(parse_ref(credential["reference"])) == credential["reference"]


@pytest.mark.usefixtures("dynamodb")
def test_show_resolves_a_terminated_instance_to_its_workload(runner: CliRunner, estate: Estate) -> None:
    # Given a synced inventory, and then the instance terminated
    invoke_json(runner, "sync", "--table", TABLE)
    boto3.client("ec2", region_name=REGION).terminate_instances(InstanceIds=[estate.instance_id])

    # When the inventory is asked about the instance
    shown = invoke_json(runner, "show", "--table", TABLE, "--cloud-id", estate.instance_id)

    # Then it names the workload and what it held
    [view] = shown["workloads"]
    assert view["workload_id"] == estate.workload_id
    assert {ref["kind"] for ref in view["credentials"]} >= {"vault_token", "pki_certificate", "iam_access_key"}


@pytest.mark.usefixtures("dynamodb")
def test_sync_draws_progress_and_a_summary_without_json(runner: CliRunner, estate: Estate) -> None:
    result = runner.invoke(inventory_app, ["sync", "--table", TABLE])

    assert result.exit_code == 0, result.output
    assert "sweep" in result.stderr
    assert "discover" in result.stderr
    assert "Inventory sync" in result.stdout
    assert "resources bound" in result.stdout

    shown = runner.invoke(inventory_app, ["show", "--table", TABLE, "--workload", estate.workload_id])
    assert shown.exit_code == 0, shown.output
    assert estate.instance_id in shown.stdout
    assert "vault_token" in shown.stdout


@pytest.mark.usefixtures("dynamodb")
def test_unknown_cloud_id_exits_1_with_nothing_shown(runner: CliRunner) -> None:
    shown = invoke_json(runner, "show", "--table", TABLE, "--cloud-id", "i-0000000000000dead", exit_code=1)
    assert shown == {"workloads": []}


@pytest.mark.usefixtures("dynamodb")
def test_bad_input_exits_2_with_a_json_error_and_calls_nothing(runner: CliRunner, backend_calls: BackendCalls) -> None:
    refused = invoke_json(runner, "sync", "--table", TABLE, "--account", "12345", "--region", REGION, exit_code=2)

    assert refused["ok"] is False
    assert refused["error_type"] == "InvalidInput"
    assert "12 digits" in refused["message"]
    assert backend_calls.total == 0


def test_an_unknown_aws_profile_is_bad_input(runner: CliRunner) -> None:
    refused = invoke_json(runner, "show", "--table", TABLE, "--profile", "no-such-profile", exit_code=2)
    assert refused["error_type"] == "InvalidInput"


@pytest.mark.usefixtures("dynamodb")
def test_sync_without_vault_settings_says_what_is_missing(openbao: LocalOpenBao, tmp_path: Path) -> None:
    runner = CliRunner(env={"VAULT_ADDR": openbao.addr, "VAULT_TOKEN": None, "HOME": str(tmp_path)})
    result = runner.invoke(inventory_app, ["sync", "--table", TABLE])
    assert result.exit_code == 2
    assert "VAULT_TOKEN" in result.stderr


@pytest.mark.usefixtures("dynamodb")
def test_partial_failure_exits_1_and_reports_it(openbao: LocalOpenBao, estate: Estate, vault: hvac.Client) -> None:
    # Given a token that cannot read what discovery needs (a real OpenBao refusal, not a stub)
    limited = vault.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    runner = CliRunner(env={"VAULT_ADDR": openbao.addr, "VAULT_TOKEN": limited, "HOME": "/nonexistent"})

    # When the inventory is synced with it
    result = runner.invoke(inventory_app, ["sync", "--table", TABLE, "--json"])

    # Then the bindings are recorded, each workload's discovery failure is reported, and the exit code says so
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["resources_bound"] == 4
    assert {failure["where"] for failure in report["failures"]} == {estate.workload_id, estate.neighbour_id}
    assert limited not in result.output
