"""`rescind plan | revoke | status | ledger | report | replay` on a local stack (default blast-radius cap),
against real OpenBao; proof by use that what was revoked is dead and what was not still works."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rescind_local.target import LocalTarget
from tests.integration.cli.stack import (
    Cli,
    assert_one_line_error,
    local_stack,
    proofs,
    seed,
    wait_until_finished,
    wrong,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTarget]:
    with local_stack(tmp_path_factory.mktemp("cli-runs") / "stack") as running:
        yield running


@pytest.fixture
def cli(target: LocalTarget) -> Cli:
    return Cli(target)


def manual_executions(target: LocalTarget) -> list[str]:
    sfn = target.boto3_client("stepfunctions")
    machine = target.state_machine_arn("ManualRevocationStateMachine")
    return [item["name"] for item in sfn.list_executions(stateMachineArn=machine)["executions"]]


def test_plan_shows_every_action_in_order_with_counts_and_changes_nothing(target: LocalTarget, cli: Cli) -> None:
    workload = seed(target, "plan")
    incidents_before = cli.json("ledger")[1]["incidents"]

    code, document = cli.json("plan", "--workload", workload.spiffe_id)

    assert code == 0, document
    assert document["decision"] == "proceed"
    assert document["total"] == 7
    assert document["counts_by_kind"] == {
        "vault_entity": 1,
        "iam_access_key": 1,
        "kv_secret": 1,
        "vault_token": 2,
        "approle_secret_id": 1,
        "pki_certificate": 1,
    }
    # Reversible containment first, then the rest
    phases = [action["phase"] for action in document["actions"]]
    assert phases == sorted(phases)  # "contain" < "revoke"
    assert {a["target"] for a in document["actions"]} >= {f"vault-token:accessor:{a}" for a in workload.token_accessors}
    # Nothing changed: every credential still works, nothing was started or recorded
    assert wrong(proofs(target, workload, "alive")) == []
    assert cli.json("ledger")[1]["incidents"] == incidents_before

    human = cli("plan", "--workload", workload.spiffe_id)
    assert human.exit_code == 0
    assert f"kv:secret:{workload.kv_paths[0]}" in human.stdout  # a reference is never turned into an emoji


def test_answering_no_at_the_prompt_starts_nothing(target: LocalTarget, cli: Cli) -> None:
    workload = seed(target, "prompt")
    before = manual_executions(target)

    result = cli("revoke", "--workload", workload.spiffe_id, "--reason", "offboarding by hand", input="n\n")

    assert result.exit_code == 2  # README: the input refused it; nothing was started
    assert "Start revoking 7 action(s)" in result.stderr
    assert "nothing was started" in result.stderr
    assert manual_executions(target) == before
    assert wrong(proofs(target, workload, "alive")) == []


def test_json_without_yes_and_no_terminal_is_refused_as_json(target: LocalTarget, cli: Cli) -> None:
    workload = seed(target, "json-prompt")
    before = manual_executions(target)

    code, document = cli.json("revoke", "--workload", workload.spiffe_id, "--reason", "x")

    assert code == 2
    assert "add --yes" in document["message"]
    assert manual_executions(target) == before


def test_dry_run_records_the_plan_and_changes_nothing(target: LocalTarget, cli: Cli) -> None:
    workload = seed(target, "dry")

    code, document = cli.json("revoke", "--workload", workload.spiffe_id, "--reason", "what if", "--dry-run", "--yes")

    assert code == 0, document
    assert document["run"]["status"] == "SUCCEEDED"
    assert document["closure"]["status"] == "dry_run"
    assert wrong(proofs(target, workload, "alive")) == []
    view = cli.json("ledger", "--incident", document["incident_id"])[1]["incident"]
    assert view["incident"]["plan"]["dry_run"] is True
    assert view["attempts"] == []


def test_revoke_one_named_token_kills_it_and_nothing_else(target: LocalTarget, cli: Cli) -> None:
    workload = seed(target, "one")
    leaked, other = workload.token_accessors

    code, document = cli.json(
        "revoke", "--credential", f"vault-token:accessor:{leaked}", "--reason", "leaked in a log", "--yes"
    )

    assert code == 0, document
    assert document["plan"]["total"] == 1
    assert document["run"]["actions_done"] == 1
    assert document["closure"] == {
        "status": "completed",
        "still_alive": [],
        "unknown": [],
        "alive_is_unknown": False,
        "credentials": {f"vault-token:accessor:{leaked}": "dead"},
        "alive_text": "still alive: nothing; verified dead: 1",
        "summary": document["closure"]["summary"],
        "closed_at": document["closure"]["closed_at"],
    }
    checks = {check.credential: check for check in proofs(target, workload, "dead")}
    assert checks[f"token {leaked}"].observed.startswith("refused")
    assert checks[f"token {other}"].observed == "accepted"
    # The ledger records who asked and why, with the named reference
    trigger = cli.json("ledger", "--incident", document["incident_id"])[1]["incident"]["incident"]["trigger"]
    assert trigger["requested_by"] == target.boto3_client("sts").get_caller_identity()["Arn"]
    assert trigger["reason"] == "leaked in a log"
    assert trigger["source"] == "rescind.cli"


def test_revoke_a_workload_then_report_lists_every_action(target: LocalTarget, cli: Cli, tmp_path: Path) -> None:
    workload = seed(target, "workload")
    neighbour = seed(target, "neighbour")

    code, document = cli.json(
        "revoke", "--workload", workload.spiffe_id, "--reason", "pod deleted", "--ticket", "INC-42", "--yes"
    )

    assert code == 0, document
    assert document["run"]["status"] == "SUCCEEDED"
    assert document["run"]["actions_done"] == document["run"]["actions_planned"] == 7
    assert wrong(proofs(target, workload, "dead")) == []
    assert wrong(proofs(target, neighbour, "alive")) == []

    incident = document["incident_id"]
    planned = {action["target"] for action in document["plan"]["actions"]}
    code, report = cli.json("report", incident, "--format", "json")
    assert code == 0
    rendered = json.loads(report["content"])
    assert rendered["status"] == "completed"
    assert len(rendered["timeline"]) == 7
    assert rendered["execution"]["status"] == "SUCCEEDED"
    markdown = cli("report", incident, "--format", "md")
    assert markdown.exit_code == 0
    for reference in planned:
        assert f"`{reference}`" in markdown.stdout
    html_file = tmp_path / "report.html"
    written = cli("report", incident, "--format", "html", "--output", str(html_file))
    assert written.exit_code == 0
    html = html_file.read_text()
    assert html.count('class="attempt"') == 7

    code, status = cli.json("status", incident)
    assert (code, status["run"]["status"], status["run"]["actions_done"]) == (0, "SUCCEEDED", 7)
    assert status["closure"]["still_alive"] == []
    code, listed = cli.json("ledger", "--since", "1h")
    assert code == 0
    assert incident in {row["incident_id"] for row in listed["incidents"]}
    assert cli.json("ledger", "--since", "2000-01-01T00:00:00Z")[0] == 0


def test_replay_of_a_termination_event_offboards_the_workload(target: LocalTarget, cli: Cli, tmp_path: Path) -> None:
    workload = seed(target, "replay")
    event = json.loads((REPO / "events" / "workload_terminated.json").read_text())
    event["id"] = str(uuid.uuid4())
    event["detail"]["workload_id"] = workload.spiffe_id
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event))

    code, document = cli.json("replay", str(event_file), "--timeout", "60")

    assert code == 0, document
    assert [run["status"] for run in document["runs"]] == ["SUCCEEDED"]
    assert document["runs"][0]["name"].startswith("offboard-")
    assert document["runs"][0]["closure"]["status"] == "completed"
    assert wrong(proofs(target, workload, "dead")) == []


def test_ctrl_c_while_following_leaves_the_run_going(
    target: LocalTarget, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rescind_cli.runs.following

    workload = seed(target, "interrupt")

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(rescind_cli.runs.following, "_sleep", interrupted)
    result = cli("revoke", "--workload", workload.spiffe_id, "--reason", "interrupted", "--yes")

    assert result.exit_code == 130, result.output
    assert "goes on" in result.stderr
    assert "rescind status manual-" in result.stderr
    name = result.stderr.split("rescind status ", 1)[1].split()[0]
    assert wait_until_finished(target, name)["status"] == "SUCCEEDED"
    assert wrong(proofs(target, workload, "dead")) == []


# --- bad input: one line, what to do next, no traceback ----------------------------------------------


def test_an_unknown_reference_form_is_one_line(cli: Cli) -> None:
    result = cli("revoke", "--credential", "github-token:ghp_abc", "--reason", "x", "--yes")
    assert result.exit_code == 2
    assert_one_line_error(result, "unknown credential reference form")
    assert "ghp_abc" not in result.output  # a pasted value is never repeated


def test_a_workload_with_no_credentials_is_one_line(target: LocalTarget, cli: Cli) -> None:
    before = manual_executions(target)
    result = cli(
        "revoke", "--workload", f"spiffe://cli.rescind/nobody-{uuid.uuid4().hex[:6]}", "--reason", "x", "--yes"
    )
    assert result.exit_code == 2
    assert_one_line_error(result, "nothing to revoke", "rescind inventory")
    assert manual_executions(target) == before
    assert cli("plan", "--workload", "spiffe://cli.rescind/nobody").exit_code == 2


def test_a_typo_in_a_named_accessor_is_not_found_and_never_verified_dead(target: LocalTarget, cli: Cli) -> None:
    """Given an accessor that names no token (one character off a live one)
    When a responder revokes it by name
    Then nothing starts, the answer names the Vault it looked in, and the live token still works."""
    workload = seed(target, "typo")
    live = workload.token_accessors[0]
    typo = live[:-1] + ("A" if live[-1] != "A" else "B")
    before = manual_executions(target)

    code, document = cli.json("revoke", "--credential", f"vault-token:accessor:{typo}", "--reason", "typo", "--yes")

    assert code == 2, document
    assert "not found in Vault http://127.0.0.1:" in document["message"]
    assert typo in document["message"]
    assert "verified dead" not in json.dumps(document)
    assert manual_executions(target) == before
    assert wrong(proofs(target, workload, "alive")) == []


@pytest.mark.parametrize("reason", [None, "   "])
def test_a_missing_reason_is_one_line(target: LocalTarget, cli: Cli, reason: str | None) -> None:
    before = manual_executions(target)
    arguments = ["revoke", "--credential", "vault-token:accessor:abcdefghijklmnopqrstuvwx", "--yes"]
    result = cli(*arguments, *(["--reason", reason] if reason is not None else []))
    assert result.exit_code == 2
    assert_one_line_error(result, "a reason is required")
    assert manual_executions(target) == before


def test_status_of_an_unknown_execution_is_one_line(cli: Cli) -> None:
    result = cli("status", "manual-doesnotexist")
    assert result.exit_code == 2
    assert_one_line_error(result, "no execution manual-doesnotexist")


def _aws_env(target: LocalTarget) -> dict[str, str | None]:
    return {**target.aws_environment(), "AWS_PROFILE": None, "RESCIND_LOCAL_DIR": None, "RESCIND_STACK": None}


def test_a_stack_that_does_not_exist_is_one_line(target: LocalTarget) -> None:
    from typer.testing import CliRunner

    from tests.integration.cli.stack import APP

    result = CliRunner().invoke(
        APP, ["plan", "--workload", "spiffe://x/y", "--stack", "no-such-stack"], env=_aws_env(target)
    )
    assert result.exit_code == 2
    assert_one_line_error(result, "stack 'no-such-stack' does not exist", "sam deploy")


def test_an_unreachable_vault_is_one_line(target: LocalTarget) -> None:
    from typer.testing import CliRunner

    from tests.integration.cli.stack import APP

    # Given a deployed-looking stack (in the local moto) whose outputs point at the local resources
    name = f"rescind-cli-{uuid.uuid4().hex[:6]}"
    outputs = {
        "LedgerTableName": target.ledger_table,
        "InventoryTableName": target.inventory_table,
        "ManualRevocationStateMachineArn": target.state_machine_arn("ManualRevocationStateMachine"),
        "OffboardingStateMachineArn": target.state_machine_arn("OffboardingStateMachine"),
        "NotificationTopicArn": target.topic_arn,
    }
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    target.boto3_client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))
    # And a Vault address nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    env = {**_aws_env(target), "VAULT_ADDR": f"http://127.0.0.1:{closed_port}", "VAULT_TOKEN": "not-a-real-token"}

    result = CliRunner().invoke(APP, ["plan", "--workload", "spiffe://x/y", "--stack", name], env=env)

    assert result.exit_code == 1, result.output
    assert_one_line_error(result, "Vault is unreachable", "VAULT_ADDR")
    assert "not-a-real-token" not in result.output

    # And the deployed target reads the ledger through the stack's outputs
    listed = CliRunner().invoke(APP, ["ledger", "--stack", name, "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout)["ok"] is True


def test_replay_of_a_leak_event_revokes_the_leaked_token(target: LocalTarget, cli: Cli, tmp_path: Path) -> None:
    # Given the generic `Secret Leaked` sample carrying one of a workload's tokens
    workload = seed(target, "leak")
    leaked = workload.token_accessors[0]
    event = json.loads((REPO / "events" / "secret_leaked.json").read_text())
    event["detail"]["secret"] = workload.token_value(leaked)
    event_file = tmp_path / "leak.json"
    event_file.write_text(json.dumps(event))

    # When it is replayed through the local stack's bus
    code, document = cli.json("replay", str(event_file), "--timeout", "60")

    # Then one leak response ran and the token is dead; no value is in what the command printed
    assert code == 0, document
    assert [run["status"] for run in document["runs"]] == ["SUCCEEDED"]
    assert document["runs"][0]["name"].startswith("leak-")
    assert workload.token_value(leaked) not in json.dumps(document)
    dead = [p for p in proofs(target, workload, "alive") if not p.passed]
    assert [p.credential for p in dead] == [f"token {leaked}"]


def test_replay_keeps_a_cloudtrail_events_own_account_and_region(target: LocalTarget, cli: Cli) -> None:
    # Given AWS's own CloudTrail DeleteFunction example (account 111122223333), its function bound to a workload
    from datetime import UTC, datetime

    from rescind.inventory import DynamoDbInventory
    from rescind.inventory.types import CloudResourceKind, WorkloadBinding

    event_file = REPO / "tests" / "corpus" / "aws" / "lambda" / "delete_function_20150331_wrapped.json"
    event = json.loads(event_file.read_text())
    workload = seed(target, "cloudtrail")
    DynamoDbInventory(target.inventory_table, target.boto3_client("dynamodb")).bind(
        WorkloadBinding(
            cloud_id=f"arn:aws:lambda:{event['region']}:{event['account']}:function:"
            + event["detail"]["requestParameters"]["functionName"],
            kind=CloudResourceKind.LAMBDA_FUNCTION,
            workload_id=workload.spiffe_id,
            account_id=event["account"],
            region=event["region"],
            seen_at=datetime.now(UTC),
        )
    )

    # When it is replayed as published
    code, document = cli.json("replay", str(event_file), "--timeout", "60")

    # Then it kept its envelope, so the binding in its own account matched and the workload was offboarded
    assert code == 0, document
    assert document["event_id"] == event["id"]
    assert [run["status"] for run in document["runs"]] == ["SUCCEEDED"]
    assert wrong(proofs(target, workload, "dead")) == []


def test_replay_of_an_event_that_ends_nothing_says_so_at_once(target: LocalTarget, cli: Cli) -> None:
    # AWS's example of scale-in into a warm pool: the instance is kept, so nothing matches
    event_file = REPO / "tests/corpus/aws/autoscaling/warm_pool_terminate_lifecycle_action_asg_to_warmpool.json"
    code, document = cli.json("replay", str(event_file), "--timeout", "60")
    assert code == 1
    assert "it matched no rule of the stack" in document["message"]


def test_replay_of_the_github_webhook_sample_is_signed_for_the_stack_and_recorded(
    target: LocalTarget, cli: Cli
) -> None:
    # The local stack has no GitHub token, so the alert cannot be read: the webhook accepts the delivery and the
    # response is recorded as unresolved, with nothing started.
    code, document = cli.json("replay", str(REPO / "events" / "github_secret_scanning_webhook.json"), "--timeout", "5")
    assert code == 1
    assert "started no run" in json.dumps(document)


def test_a_direct_run_is_pushed_into_the_stacks_ledger_once(target: LocalTarget, cli: Cli, tmp_path: Path) -> None:
    """Given a run made in direct mode (no stack: only the Vault) and recorded in the local ledger
    When the local ledger is pushed into the stack's ledger twice
    Then the stack's ledger holds the same incident, attempts and closure, written once."""
    from typer.testing import CliRunner

    from rescind_cli.main import app

    workload = seed(target, "push")
    direct_env = {
        "VAULT_ADDR": target.openbao_addr,
        "VAULT_TOKEN": target.state.root_token,
        "RESCIND_LEDGER_FILE": str(tmp_path / "ledger.sqlite3"),
        "RESCIND_CONFIG_FILE": str(tmp_path / "none.toml"),
        "AWS_ACCESS_KEY_ID": None,
        "AWS_SECRET_ACCESS_KEY": None,
        "AWS_PROFILE": None,
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    accessor = workload.token_accessors[0]
    ran = CliRunner().invoke(
        app,
        ["revoke", "--credential", f"vault-token:accessor:{accessor}", "--reason", "from a laptop", "--yes", "--json"],
        env=direct_env,
    )
    assert ran.exit_code == 0, ran.output
    incident_id = json.loads(ran.stdout)["incident_id"]
    assert cli.json("ledger", "--incident", incident_id)[0] == 2  # not in the stack's ledger yet

    pushes = [cli.json("ledger", "push", env={"RESCIND_LEDGER_FILE": direct_env["RESCIND_LEDGER_FILE"]}) for _ in "12"]

    assert [code for code, _ in pushes] == [0, 0]
    first, second = (document for _, document in pushes)
    assert first["written"] == 3  # the incident, one attempt, the closure
    assert (second["written"], second["already_there"]) == (0, 3)
    code, shown = cli.json("ledger", "--incident", incident_id)
    assert code == 0
    assert shown["incident"]["closure"]["status"] == "completed"
    assert [attempt["result"]["outcome"] for attempt in shown["incident"]["attempts"]] == ["succeeded"]


def test_local_seed_gives_the_readme_examples_an_estate_and_is_safe_twice(target: LocalTarget, cli: Cli) -> None:
    from typer.testing import CliRunner

    from rescind_cli.main import app

    def local_seed() -> tuple[int, dict[str, Any]]:
        result = CliRunner().invoke(app, ["local", "seed", "--json", "--state-dir", str(target.state_dir)])
        return result.exit_code, json.loads(result.stdout)

    # Given the running local stack: `rescind local seed`, as the README's examples begin
    code, first = local_seed()
    assert code == 0, first
    by_id = {entry["workload_id"]: entry for entry in first["workloads"]}
    payments = by_id["spiffe://example.org/ns/payments/sa/api"]
    assert len(payments["credentials"]) == 7  # entity, 2 tokens, secret-id, certificate, KV secret, access key

    # When it runs again, nothing is seeded twice
    code, second = local_seed()
    assert code == 0
    assert {entry["seeded_now"] for entry in second["workloads"]} == {False}

    # Then the README's next examples work as written: the plan, and a revoke of one printed reference
    code, plan = cli.json("plan", "--workload", "spiffe://example.org/ns/payments/sa/api")
    assert (code, plan["total"]) == (0, 7)
    token = next(reference for reference in payments["credentials"] if reference.startswith("vault-token:"))
    code, revoked = cli.json("revoke", "--credential", token, "--reason", "leaked in a ticket", "--yes")
    assert code == 0, revoked
