"""`rescind index vault` on a local stack (`rescind local up`): the issuance table and the mounts come from the stack.

Given a workload token, a secret-id and a certificate in the stack's OpenBao,
When the index is back-filled from the command line in two bounded runs (the second resuming),
Then the JSON reports say where each stopped, the second marks the index back-filled, and the stack's issuance
table holds the credentials under the workload; without --json a progress bar and a summary are drawn.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from rescind.issuance.dynamodb import DynamoDbIssuanceIndex
from rescind.issuance.state import DynamoDbIndexState
from rescind_cli.index import index_app
from rescind_cli.inventory import inventory_app
from rescind_local.seed import prepare_vault
from rescind_local.target import LocalTarget
from tests.integration.cli.stack import local_stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

WORKLOAD = f"spiffe://cli-backfill.example/{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTarget]:
    with local_stack(tmp_path_factory.mktemp("cli-backfill") / "stack") as running:
        yield running


@pytest.fixture(scope="module")
def accessor(target: LocalTarget) -> str:
    vault = target.vault_client()
    prepare_vault(vault)  # the stack's PKI and AppRole mounts, which the back-fill walks
    token = vault.auth.token.create(policies=["default"], meta={"spiffe_id": WORKLOAD}, ttl="1h")["auth"]
    return str(token["accessor"])


def invoke(target: LocalTarget, *arguments: str, app: typer.Typer = index_app) -> Result:
    environment = {"HOME": str(target.state_dir), "COLUMNS": "200", "RESCIND_STACK": "", "ISSUANCE_TABLE_NAME": ""}
    result = CliRunner().invoke(app, [*arguments, "--state-dir", str(target.state_dir)], env=environment)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def document(result: Result) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def test_a_bounded_backfill_then_a_resumed_one_fill_the_stacks_issuance_table(
    target: LocalTarget, accessor: str
) -> None:
    table = target.state.tables["IssuanceTable"]
    state = DynamoDbIndexState(table, target.boto3_client("dynamodb"))

    first = invoke(target, "vault", "--limit", "1", "--rate", "500", "--json")
    assert first.exit_code == 0, first.output
    bounded = document(first)
    assert (bounded["ok"], bounded["table"], bounded["complete"], bounded["examined"]) == (True, table, False, 1)
    assert bounded["checkpoint"]
    assert state.read_marker() is None

    rest = invoke(target, "vault", "--resume", "--rate", "500", "--json")
    assert rest.exit_code == 0, rest.output
    finished = document(rest)
    assert finished["complete"] is True
    assert finished["resumed_after"] == bounded["checkpoint"]
    assert finished["backfilled_at"]
    marker = state.read_marker()
    assert marker is not None
    assert marker.backfilled_at is not None

    index = DynamoDbIssuanceIndex(table, target.boto3_client("dynamodb"))
    assert f"vault-token:accessor:{accessor}" in {record.reference for record in index.by_workload(WORKLOAD)}


def test_without_json_it_draws_progress_and_a_summary(target: LocalTarget, accessor: str) -> None:
    result = invoke(target, "vault", "--rate", "500")

    assert result.exit_code == 0, result.output
    assert "tokens token" in result.stderr  # the progress bar names the group
    assert "Issuance index back-fill" in result.stdout
    assert "the index is marked back-filled at" in result.stdout


def test_a_rate_of_zero_is_refused_before_anything_is_read(target: LocalTarget) -> None:
    result = invoke(target, "vault", "--rate", "0", "--json")

    assert result.exit_code == 2, result.output


def test_the_inventory_report_lists_the_workloads_holdings_from_the_index(target: LocalTarget, accessor: str) -> None:
    invoke(target, "vault", "--rate", "500", "--json")

    result = invoke(target, "report", "--workload", WORKLOAD, "--rate", "500", "--json", app=inventory_app)

    assert result.exit_code == 0, result.output
    report = document(result)
    (holding,) = report["holdings"]
    assert holding["workload_id"] == WORKLOAD
    (credential,) = holding["credentials"]
    assert credential["target"] == f"vault-token:accessor:{accessor}"
    assert credential["source"] == "back-fill"
    assert credential["ttl_seconds"] > 3000
    assert report["index"].startswith("issuance index")

    text = invoke(target, "report", "--rate", "500", app=inventory_app)
    assert text.exit_code == 0, text.output
    assert WORKLOAD in text.stdout
    assert "what it holds" in text.stdout
    assert "no owner (" in text.stdout

    unknown = invoke(
        target, "report", "--workload", "spiffe://nobody.example/x", "--rate", "500", "--json", app=inventory_app
    )
    assert unknown.exit_code == 1
