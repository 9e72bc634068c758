"""`rescind demo`, the README's first command: the sample triggers through the template on the local stack, then
proof by use. Its exit code must be honest: a wrongly touched control credential, or a run that ends otherwise
than expected, fails it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from rescind.ledger import IncidentStatus
from rescind_cli import demo as demo_module
from rescind_cli.demo import DemoContext, Scenario, default_scenarios, replay_termination, run_demo
from rescind_cli.main import app
from rescind_local.seed import SeededWorkload

TERMINATED = {"web-frontend", "payments-api", "invoice-export", "etl-node", "batch-worker"}
OFFBOARDED = TERMINATED | {"nightly-export"}  # the orphan sweep offboards nightly-export


def test_the_demo_ends_every_target_spares_everything_else_and_prints_json() -> None:
    # Given nothing running, When `rescind demo --json` runs
    result = CliRunner().invoke(app, ["demo", "--json"])

    # Then it exits 0 and stdout is one JSON document saying so
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["ok"] is True
    assert document["problems"] == []

    # and every termination sample, the protected workload's termination and the manual run ran as expected
    runs = {run["workload"]: run for run in document["runs"]}
    assert set(runs) == OFFBOARDED | {"pki-issuer", "ci-runner", "deploy-bot", "reporting-job"}
    for name in OFFBOARDED:
        assert (runs[name]["status"], runs[name]["closures"]) == ("SUCCEEDED", ["completed"])
        assert runs[name]["actions_planned"] == runs[name]["verified_dead"] == 7
    assert (runs["pki-issuer"]["status"], runs["pki-issuer"]["closures"]) == ("FAILED", ["refused"])
    assert runs["pki-issuer"]["actions_done"] == 0
    assert runs["ci-runner"]["incident_ids"][0].startswith("manual-")
    assert runs["ci-runner"]["verified_dead"] == runs["ci-runner"]["actions_planned"] == 1
    for leaked in ("deploy-bot", "reporting-job"):
        assert (runs[leaked]["status"], runs[leaked]["closures"]) == ("SUCCEEDED", ["completed"])
        assert runs[leaked]["incident_ids"][0].startswith("leak-")
    assert runs["nightly-export"]["trigger"] == "OrphansSchedule"
    assert len(document["incident_ids"]) == 10

    # and proof by use: the terminated workloads' credentials fail, the protected one's and the control's work,
    # and of the manual run's workload only the named token is dead
    proofs: list[dict[str, Any]] = document["proofs"]
    assert all(proof["passed"] for proof in proofs)
    by_workload: dict[str, set[str]] = {}
    for proof in proofs:
        by_workload.setdefault(proof["workload"], set()).add(proof["expected"])
    assert {name for name, expected in by_workload.items() if expected == {"dead"}} == OFFBOARDED
    assert by_workload["pki-issuer"] == by_workload["ledger-db"] == {"alive"}
    ci_dead = [p["credential"] for p in proofs if p["workload"] == "ci-runner" and p["expected"] == "dead"]
    assert len(ci_dead) == 1
    assert ci_dead[0].startswith("token ")
    # and of the leaks, exactly the leaked credential is dead: the workload's other credentials work
    for leaked, kind in (("deploy-bot", "token "), ("reporting-job", "access key ")):
        dead = [p["credential"] for p in proofs if p["workload"] == leaked and p["expected"] == "dead"]
        assert len(dead) == 1
        assert dead[0].startswith(kind)
    kinds = {proof["credential"].split()[0] for proof in proofs if proof["workload"] == "ledger-db"}
    assert kinds == {"token", "secret-id", "certificate", "kv", "entity", "access"}


def test_a_control_credential_killed_outside_rescind_fails_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a scenario that, outside Rescind, revokes one of the control workload's tokens and expects nothing
    seeded: list[SeededWorkload] = []

    def revoke_a_control_token(context: DemoContext, workload: SeededWorkload) -> list[str]:
        seeded.extend(context.workloads.values())
        context.vault.auth.token.revoke_accessor(workload.token_accessors[0])
        return []

    tamper = Scenario(
        name="outside Rescind: a control token revoked",
        trigger="bao token revoke -accessor",
        workload="ledger-db",
        replay=revoke_a_control_token,
        ends="none",
        expected_status=None,
        expected_closure=None,
    )
    manual_run = next(s for s in default_scenarios() if s.workload == "ci-runner")
    monkeypatch.setattr(demo_module, "default_scenarios", lambda: [manual_run, tamper])

    # When the demo runs
    result = CliRunner().invoke(app, ["demo", "--json"])

    # Then it exits 1: every run went as expected, but the control's token is dead, and that is the one proof
    # that failed
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert all(run["ok"] for run in document["runs"])
    control = next(w for w in seeded if w.name == "ledger-db")
    failed = [proof for proof in document["proofs"] if not proof["passed"]]
    assert [(p["workload"], p["credential"], p["expected"]) for p in failed] == [
        ("ledger-db", f"token {control.token_accessors[0]}", "alive")
    ]
    # and no seeded secret value appears in what the demo printed
    values = [w.token_value(a) for w in seeded for a in w.token_accessors]
    values += [w.secret_id_value(a) for w in seeded for a in w.secret_id_accessors]
    values += [str(w.kv_before(path)["password"]) for w in seeded for path in w.kv_paths]
    assert not [value for value in values if value in result.output]


def test_a_wrong_expectation_fails_the_demo_through_the_same_checks() -> None:
    # Given a scenario expecting the protected workload's termination to succeed and end all it holds
    wrong = Scenario(
        name="terminated: a protected workload, wrongly expected to end",
        trigger="workload_terminated.json",
        workload="pki-issuer",
        replay=replay_termination("workload_terminated.json", None),
    )

    # When the demo runs it
    report = run_demo(scenarios=[wrong])

    # Then the run is reported as not what was expected (the guard refused it), every one of the protected
    # workload's credentials is reported alive where death was expected, and the demo fails
    assert not report.ok
    (run,) = report.runs
    assert run.status == "FAILED"
    assert run.closures == [str(IncidentStatus.REFUSED)]
    assert any("expected SUCCEEDED" in problem for problem in run.problems)
    protected = [proof for proof in report.proofs if proof.workload == "pki-issuer"]
    assert protected
    assert all(proof.expected == "dead" and not proof.passed for proof in protected)
    others = [proof for proof in report.proofs if proof.workload != "pki-issuer"]
    assert others
    assert all(proof.expected == "alive" and proof.passed for proof in others)


def test_the_cli_help_names_the_demo() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output
