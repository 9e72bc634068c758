"""`rescind index kv` on a local stack (`rescind local up`): the table and the key secret come from the stack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from rescind.fingerprints.dynamodb import DynamoDbFingerprintIndex
from rescind.fingerprints.locate import locate_kv_secrets_by_value
from rescind.fingerprints.runtime import read_fingerprint_key
from rescind.models import KvSecretRef
from rescind_cli.index import index_app
from rescind_local.target import LocalTarget
from tests.integration.cli.stack import local_stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

LEAKED = "leaked-by-cli-7d2e0b"


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTarget]:
    with local_stack(tmp_path_factory.mktemp("cli-index") / "stack") as running:
        yield running


@pytest.fixture(scope="module")
def mount(target: LocalTarget) -> str:
    vault = target.vault_client()
    mount = "kv-cli-index"
    vault.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    for path, data in (
        ("app/db", {"password": LEAKED, "user": "svc"}),
        ("app/db", {"password": "second-version-pass", "user": "svc"}),
        ("team/api", {"token": "api-token-abcdef012"}),
    ):
        vault.secrets.kv.v2.create_or_update_secret(path, secret=data, mount_point=mount)
    return mount


def invoke(target: LocalTarget, *arguments: str, env: dict[str, str] | None = None) -> Result:
    # HOME: never a developer's ~/.vault-token; COLUMNS: rich must not fold the summary.
    environment = {"HOME": str(target.state_dir), "COLUMNS": "200", "RESCIND_STACK": "", **(env or {})}
    result = CliRunner().invoke(index_app, [*arguments, "--state-dir", str(target.state_dir)], env=environment)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def document(result: Result) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def test_index_kv_prints_json_and_the_value_becomes_locatable(target: LocalTarget, mount: str) -> None:
    # When the mount is indexed from the command line, twice
    first = invoke(target, "kv", "--mount", mount, "--json")
    second = invoke(target, "kv", "--mount", mount, "--json")

    # Then it reports what it wrote, the same both times, and never a value
    assert first.exit_code == 0, first.output
    report = document(first)
    assert report["ok"] is True
    assert report["mounts"] == [mount]
    assert (report["secrets"], report["versions"], report["fingerprints"], report["fields_skipped"]) == (2, 3, 3, 2)
    assert report["table"] == target.state.tables["FingerprintTable"]
    assert document(second) == report
    assert LEAKED not in first.output

    # And the leaked value resolves to its secret through the stack's table and key
    functions = target.boto3_client("lambda").get_function_configuration(
        FunctionName=target.function_name("PlanOffboardingFunction")
    )
    arn = functions["Environment"]["Variables"]["FINGERPRINT_KEY_SECRET_ARN"]
    key = read_fingerprint_key(target.boto3_client("secretsmanager"), arn)
    index = DynamoDbFingerprintIndex(report["table"], target.boto3_client("dynamodb"))
    located = locate_kv_secrets_by_value(target.vault_client(), index, key, value=LEAKED)
    assert located == [KvSecretRef(mount=mount, path="app/db")]


def test_index_kv_draws_progress_and_a_summary_without_json(target: LocalTarget, mount: str) -> None:
    result = invoke(target, "kv", "--mount", mount, "--prefix", "team")

    assert result.exit_code == 0, result.output
    assert mount in result.stderr  # the progress bar names the mount
    assert "KV fingerprint index" in result.stdout
    assert "fingerprints written" in result.stdout
    assert "under team" in result.stdout


def test_default_mounts_come_from_the_stack(target: LocalTarget, mount: str) -> None:
    result = invoke(target, "kv", "--json")

    assert result.exit_code == 0, result.output
    assert document(result)["mounts"] == ["secret"]  # the template's KvMounts default


@pytest.mark.parametrize(
    ("arguments", "code", "error_type"),
    [
        (("--prefix", "../x"), 2, "UnsafePrefix"),
        (("--mount", "no-such-kv-mount"), 1, "ActionFailed"),
    ],
)
def test_bad_input_exits_with_a_typed_error(
    target: LocalTarget, mount: str, arguments: tuple[str, ...], code: int, error_type: str
) -> None:
    result = invoke(target, "kv", *arguments, "--json")

    assert result.exit_code == code, result.output
    assert document(result)["error_type"] == error_type


def test_no_local_stack_is_a_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(index_app, ["kv", "--state-dir", str(tmp_path), "--json"], env={"RESCIND_STACK": ""})

    assert result.exit_code == 1, result.output
    assert document(result)["error_type"] == "TargetUnavailable"
