"""`rescind plan | revoke | ledger` in direct mode: a real OpenBao, no stack, no AWS credentials at all.

The responder has VAULT_ADDR and a token and nothing else. The run plans, guards, acts, verifies and closes in
the CLI's own process, and records into a local SQLite ledger; proof by use says what died and what lives.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import hvac
import pytest
from typer.testing import CliRunner, Result

from rescind_cli.main import app
from rescind_local import LocalOpenBao
from rescind_local.proof import prove_by_use
from rescind_local.seed import SeededWorkload, prepare_vault, seed_workload

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class Direct:
    """The CLI with only a Vault: no stack, no AWS credentials, the ledger in a temporary file."""

    def __init__(self, openbao: LocalOpenBao, tmp_path: Path) -> None:
        self.ledger_file = tmp_path / "state" / "ledger.sqlite3"
        self.env: dict[str, str | None] = {
            "VAULT_ADDR": openbao.addr,
            "VAULT_TOKEN": openbao.root_token,
            "RESCIND_LEDGER_FILE": str(self.ledger_file),
            "RESCIND_CONFIG_FILE": str(tmp_path / "config.toml"),
            "RESCIND_STACK": None,
            "BLAST_RADIUS_CAP": "25",
            # No AWS side at all: no keys, no profile, no files, no instance metadata.
            "AWS_ACCESS_KEY_ID": None,
            "AWS_SECRET_ACCESS_KEY": None,
            "AWS_SESSION_TOKEN": None,
            "AWS_PROFILE": None,
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
            "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": None,
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": None,
            "AWS_WEB_IDENTITY_TOKEN_FILE": None,
        }

    def __call__(self, *arguments: str, env: dict[str, str | None] | None = None) -> Result:
        return CliRunner().invoke(app, list(arguments), env={**self.env, **(env or {})}, catch_exceptions=False)

    def json(self, *arguments: str, env: dict[str, str | None] | None = None) -> tuple[int, dict[str, Any]]:
        result = self(*arguments, "--json", env=env)
        return result.exit_code, json.loads(result.stdout)


@pytest.fixture
def direct(openbao: LocalOpenBao, tmp_path: Path) -> Direct:
    return Direct(openbao, tmp_path)


@pytest.fixture
def workloads(vault: hvac.Client, unique: str) -> tuple[SeededWorkload, SeededWorkload]:
    prepare_vault(vault)
    return (
        seed_workload(vault, None, f"d-{unique}", f"spiffe://direct.rescind/d-{unique}"),
        seed_workload(vault, None, f"n-{unique}", f"spiffe://direct.rescind/n-{unique}"),
    )


def failed_proofs(vault: hvac.Client, openbao: LocalOpenBao, workload: SeededWorkload, expected: str) -> list[Any]:
    return [proof for proof in prove_by_use(vault, openbao.addr, None, workload, expected=expected) if not proof.passed]


def test_a_responder_with_only_a_vault_revokes_everything_a_workload_holds_and_its_neighbour_lives(
    direct: Direct, vault: hvac.Client, openbao: LocalOpenBao, workloads: tuple[SeededWorkload, SeededWorkload]
) -> None:
    target, neighbour = workloads

    # When the responder revokes the workload, with no stack and no AWS credentials
    code, document = direct.json("revoke", "--workload", target.spiffe_id, "--reason", "compromised host", "--yes")

    # Then the run completed in-process against that Vault, and said where it acted
    assert code == 0, document
    assert document["target"] == f"Vault {openbao.addr} directly, no AWS side"
    assert document["closure"]["status"] == "completed"
    assert document["closure"]["still_alive"] == []
    assert {result["outcome"] for result in document["results"]} == {"succeeded"}
    assert len(document["results"]) == 6  # entity, 2 tokens, secret-id, certificate, KV secret

    # And proof by use: everything it held is dead, everything its neighbour holds works
    assert failed_proofs(vault, openbao, target, "dead") == []
    assert failed_proofs(vault, openbao, neighbour, "alive") == []

    # And the local ledger has the incident, each attempt and the closure, readable by `rescind ledger`
    code, listed = direct.json("ledger")
    assert code == 0
    (summary,) = [item for item in listed["incidents"] if item["incident_id"] == document["incident_id"]]
    code, shown = direct.json("ledger", "--incident", document["incident_id"])
    assert len(shown["incident"]["attempts"]) == 6
    assert shown["incident"]["closure"]["status"] == "completed"
    assert summary is not None


def test_the_first_line_says_which_target_and_why(
    direct: Direct, workloads: tuple[SeededWorkload, SeededWorkload], openbao: LocalOpenBao
) -> None:
    result = direct("plan", "--workload", workloads[0].spiffe_id)
    assert result.exit_code == 0, result.output
    assert f"target: Vault {openbao.addr} directly, no AWS side (VAULT_ADDR is set" in result.stderr
    assert "nothing was changed" in result.stderr


def test_a_typo_in_an_accessor_is_not_found_in_that_vault_and_nothing_is_recorded_as_dead(
    direct: Direct, workloads: tuple[SeededWorkload, SeededWorkload], openbao: LocalOpenBao
) -> None:
    live = workloads[0].token_accessors[0]
    typo = live[:-1] + ("A" if live[-1] != "A" else "B")

    code, document = direct.json("revoke", "--credential", f"vault-token:accessor:{typo}", "--reason", "x", "--yes")

    assert code == 2
    assert f"not found in Vault {openbao.addr}" in document["message"]


def test_a_protected_workload_is_refused_and_nothing_is_touched(
    direct: Direct, vault: hvac.Client, openbao: LocalOpenBao, workloads: tuple[SeededWorkload, SeededWorkload]
) -> None:
    target = workloads[0]
    code, document = direct.json(
        "revoke", "--workload", target.spiffe_id, "--reason", "x", "--yes", "--protected", target.spiffe_id
    )
    assert code == 2
    assert "protected" in document["message"]
    assert failed_proofs(vault, openbao, target, "alive") == []


def test_above_the_cap_a_second_person_must_be_named_and_is_recorded(
    direct: Direct, vault: hvac.Client, openbao: LocalOpenBao, workloads: tuple[SeededWorkload, SeededWorkload]
) -> None:
    target = workloads[0]
    small_cap = {"BLAST_RADIUS_CAP": "2"}

    # Without a second person the run is refused and nothing is touched
    code, refused = direct.json("revoke", "--workload", target.spiffe_id, "--reason", "x", "--yes", env=small_cap)
    assert code == 2, refused
    assert refused["closure"]["status"] == "refused"
    assert failed_proofs(vault, openbao, target, "alive") == []

    # Named with the ticket, it runs and the approval is in the ledger
    code, approved = direct.json(
        "revoke", "--workload", target.spiffe_id, "--reason", "x", "--yes",
        "--approved-by", "bob", "--ticket", "INC-4242", env=small_cap,
    )  # fmt: skip
    assert code == 0, approved
    _, shown = direct.json("ledger", "--incident", approved["incident_id"])
    (approval,) = shown["incident"]["approvals"]
    assert approval["decided_by"].startswith("bob")
    assert "INC-4242" in approval["reason"]
    assert failed_proofs(vault, openbao, target, "dead") == []


def test_a_ledger_changed_outside_rescind_is_reported(
    direct: Direct, workloads: tuple[SeededWorkload, SeededWorkload]
) -> None:
    code, _ = direct.json("revoke", "--workload", workloads[0].spiffe_id, "--reason", "x", "--yes")
    assert code == 0
    with sqlite3.connect(direct.ledger_file) as connection:
        connection.execute("DROP TRIGGER records_are_never_updated")
        connection.execute("UPDATE records SET body = replace(body, 'succeeded', 'failed') WHERE seq = 2")

    code, document = direct.json("ledger")

    assert code == 1
    assert "changed outside Rescind" in document["message"]


def test_a_leaked_token_in_a_secret_leaked_event_dies_and_nothing_else_does(
    direct: Direct,
    vault: hvac.Client,
    openbao: LocalOpenBao,
    workloads: tuple[SeededWorkload, SeededWorkload],
    tmp_path: Path,
) -> None:
    # Given the generic Secret Leaked event (events/secret_leaked.json) carrying one of a workload's token values
    target, neighbour = workloads
    leaked, kept = target.token_accessors
    value = target.token_value(leaked)
    event = json.loads((Path(__file__).resolve().parents[3] / "events" / "secret_leaked.json").read_text())
    event["id"] = f"direct-{leaked}"
    event["detail"]["secret"] = value
    event_file = tmp_path / "leak.json"
    event_file.write_text(json.dumps(event))

    # When a responder replays it from the laptop
    code, document = direct.json("replay", str(event_file))

    # Then one run completed; that token is dead, the workload's other token and its neighbour live
    assert code == 0, document
    (run,) = document["runs"]
    assert run["status"] == "completed"
    proofs = {proof.credential: proof for proof in prove_by_use(vault, openbao.addr, None, target, expected="alive")}
    assert not proofs[f"token {leaked}"].passed  # dead
    assert proofs[f"token {kept}"].passed
    assert failed_proofs(vault, openbao, neighbour, "alive") == []

    # And the value went nowhere: not in the output, not in the local ledger
    assert value not in json.dumps(document)
    assert value.encode() not in direct.ledger_file.read_bytes()


def test_a_paced_plan_is_the_same_plan(direct: Direct, workloads: tuple[SeededWorkload, SeededWorkload]) -> None:
    workload = workloads[0].spiffe_id
    code, paced = direct.json("plan", "--workload", workload, "--max-requests-per-second", "1000")
    assert code == 0, paced
    unpaced = direct.json("plan", "--workload", workload)[1]
    # The same actions on the same targets (a rotation's id names its run, so ids differ between two plans)
    assert [(a["kind"], a["target"]) for a in paced["actions"]] == [
        (a["kind"], a["target"]) for a in unpaced["actions"]
    ]
    assert paced["total"] == 6


def test_a_piped_plan_keeps_every_reference_on_one_line(
    direct: Direct, workloads: tuple[SeededWorkload, SeededWorkload]
) -> None:
    # Not a terminal (CliRunner is not one): rows are not folded at 80 columns, so a grep finds each reference
    workload = workloads[0].spiffe_id
    references = [action["target"] for action in direct.json("plan", "--workload", workload)[1]["actions"]]
    printed = direct("plan", "--workload", workload).stdout
    assert [reference for reference in references if reference not in printed] == []


def test_the_report_of_a_direct_run_reads_the_local_ledger(
    direct: Direct, workloads: tuple[SeededWorkload, SeededWorkload]
) -> None:
    code, run = direct.json("revoke", "--workload", workloads[0].spiffe_id, "--reason", "compromised host", "--yes")
    assert code == 0

    report = direct("report", run["incident_id"], "--format", "md")

    assert report.exit_code == 0, report.output
    assert run["incident_id"] in report.stdout
    assert "compromised host" in report.stdout


def test_the_status_of_a_direct_run_is_its_closure_in_the_local_ledger(
    direct: Direct, workloads: tuple[SeededWorkload, SeededWorkload]
) -> None:
    code, run = direct.json("revoke", "--workload", workloads[0].spiffe_id, "--reason", "x", "--yes")
    assert code == 0
    code, status = direct.json("status", run["incident_id"])
    assert (code, status["status"], status["attempts"]) == (0, "completed", 6)
    assert direct.json("status", "manual-0000000000")[0] == 2  # unknown incident: one line, exit 2


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        pytest.param(("plan", "--workload", "{workload}"), 0, id="plan"),
        pytest.param(("revoke", "--workload", "{workload}", "--reason", "x", "--yes"), 0, id="revoke"),
        pytest.param(("revoke", "--workload", "{workload}", "--reason", "x", "--yes", "--dry-run"), 0, id="dry-run"),
        pytest.param(("ledger",), 0, id="ledger"),
        pytest.param(("revoke", "--credential", "github-token:ghp_x", "--reason", "x", "--yes"), 2, id="bad-ref"),
        pytest.param(("revoke", "--workload", "{workload}", "--yes"), 2, id="no-reason"),
        pytest.param(("revoke", "--workload", "{workload}", "--reason", "x"), 2, id="json-without-yes"),
        pytest.param(
            ("revoke", "--workload", "{workload}", "--reason", "x", "--yes", "--protected", "{workload}"), 2, id="guard"
        ),
        pytest.param(("plan", "--workload", "spiffe://direct.rescind/nobody"), 2, id="nothing-to-do"),
        pytest.param(("status", "manual-0000000000"), 2, id="unknown-incident"),
        pytest.param(("plan", "--workload", "{workload}", "--max-requests-per-second", "0"), 2, id="bad-rate"),
        pytest.param(("approve", "manual-0000000000"), 2, id="no-stack-to-approve"),
        pytest.param(
            ("revoke", "--credential", "vault-lease:auth/token/revoke-prefix/x", "--reason", "x", "--yes"),
            2,
            id="out-of-scope",
        ),
    ],
)
def test_every_exit_code_is_the_documented_one_and_every_json_output_parses(
    direct: Direct, workloads: tuple[SeededWorkload, SeededWorkload], arguments: tuple[str, ...], code: int
) -> None:
    # README: 0 done, 1 left alive or failed, 2 the input or the guard refused, 3 waits for approval, 4 timed out
    filled = [argument.replace("{workload}", workloads[0].spiffe_id) for argument in arguments]
    result = direct(*filled, "--json")
    assert result.exit_code == code, result.output
    document = json.loads(result.stdout)  # exactly one JSON document, whatever the outcome
    assert document["ok"] is (code == 0)


def test_the_config_file_protects_a_workload(
    direct: Direct, vault: hvac.Client, openbao: LocalOpenBao, workloads: tuple[SeededWorkload, SeededWorkload]
) -> None:
    target = workloads[0]
    Path(direct.env["RESCIND_CONFIG_FILE"] or "").write_text(f'protected_workloads = ["{target.spiffe_id}"]\n')

    code, document = direct.json("revoke", "--workload", target.spiffe_id, "--reason", "x", "--yes")

    assert code == 2
    assert "protected" in document["message"]
    assert failed_proofs(vault, openbao, target, "alive") == []


def test_a_config_file_with_an_unknown_setting_is_refused_naming_it(direct: Direct) -> None:
    Path(direct.env["RESCIND_CONFIG_FILE"] or "").write_text('protected_workload = ["spiffe://x/y"]\n')
    code, document = direct.json("plan", "--workload", "spiffe://direct.rescind/anyone")
    assert code == 2
    assert "unknown setting 'protected_workload'" in document["message"]


def test_the_token_comes_from_the_vault_clis_token_helper_when_nothing_else_gives_one(
    direct: Direct, openbao: LocalOpenBao, workloads: tuple[SeededWorkload, SeededWorkload], tmp_path: Path
) -> None:
    # Given no VAULT_TOKEN and no ~/.vault-token, but `bao` configured with a token helper (as `bao login` users are)
    import shutil
    import sys

    helper = tmp_path / "token-helper"
    helper.write_text(f'#!/bin/sh\n[ "$1" = get ] && printf %s "{openbao.root_token}"\n')
    helper.chmod(0o700)
    config = tmp_path / "bao.hcl"
    config.write_text(f'token_helper = "{helper}"\n')
    bao = shutil.which("bao", path=str(Path(sys.executable).parent))
    assert bao is not None
    env = {
        "VAULT_TOKEN": None,
        "HOME": str(tmp_path / "home"),
        "BAO_CONFIG_PATH": str(config),
        "PATH": f"{Path(bao).parent}:/usr/bin:/bin",
    }

    # When a responder plans, Then the helper's token is used, and never printed
    code, document = direct.json("plan", "--workload", workloads[0].spiffe_id, env=env)
    assert code == 0, document
    assert openbao.root_token not in json.dumps(document)


def test_a_github_delivery_is_answered_from_the_laptop_with_the_responders_github_token(
    direct: Direct,
    vault: hvac.Client,
    openbao: LocalOpenBao,
    workloads: tuple[SeededWorkload, SeededWorkload],
    tmp_path: Path,
) -> None:
    """Given the captured delivery events/github_secret_scanning_webhook.json (alert 42 of octo-org/octo-repo), and
    GitHub (here its stand-in) holding one of a workload's token values as that alert's secret
    When the responder replays the delivery with their GITHUB_TOKEN
    Then that token dies, the workload's other token lives, and the value is nowhere in the output or ledger."""
    from rescind_local.github import local_github_api

    target = workloads[0]
    leaked, kept = target.token_accessors
    value = target.token_value(leaked)
    delivery = Path(__file__).resolve().parents[3] / "events" / "github_secret_scanning_webhook.json"
    with local_github_api() as github:
        github.add_alert("octo-org/octo-repo", 42, value)
        env = {"GITHUB_TOKEN": "ghp_responder", "GITHUB_API_URL": github.url}
        code, document = direct.json("replay", str(delivery), env=env)

    assert code == 0, document
    assert [run["status"] for run in document["runs"]] == ["completed"]
    proofs = {proof.credential: proof for proof in prove_by_use(vault, openbao.addr, None, target, expected="alive")}
    assert not proofs[f"token {leaked}"].passed
    assert proofs[f"token {kept}"].passed
    assert value not in json.dumps(document)
    assert value.encode() not in direct.ledger_file.read_bytes()


def test_a_held_credential_refuses_the_run_and_nothing_is_touched(
    direct: Direct, vault: hvac.Client, openbao: LocalOpenBao, workloads: tuple[SeededWorkload, SeededWorkload]
) -> None:
    # Given the workload's owner put a hold on one of its tokens
    target = workloads[0]
    held = vault.auth.token.create(ttl="1h", meta={"spiffe_id": target.spiffe_id, "rescind_hold": "incident-review"})

    code, document = direct.json("revoke", "--workload", target.spiffe_id, "--reason", "x", "--yes")

    assert code == 2
    assert "on hold" in document["message"]
    assert failed_proofs(vault, openbao, target, "alive") == []
    assert vault.auth.token.lookup_accessor(held["auth"]["accessor"])["data"]["meta"]["rescind_hold"]
