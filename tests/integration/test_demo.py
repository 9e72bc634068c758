"""The README's first command: the demo must end the target workload's credentials and nothing else."""

from __future__ import annotations

from typer.testing import CliRunner

from rescind.models import CredentialKind, Outcome
from rescind_cli.demo import run_demo
from rescind_cli.main import app


def test_the_demo_kills_the_target_and_leaves_the_control_alive() -> None:
    # Given the local stack and a seeded estate, When the demo runs
    steps: list[str] = []
    report = run_demo(steps.append, lambda _result: None)

    # Then every planned action was verified, every kind the target holds was acted on,
    assert report.ok
    assert {r.outcome for r in report.results} == {Outcome.SUCCEEDED}
    assert {r.target.kind for r in report.results} == {
        CredentialKind.VAULT_ENTITY,
        CredentialKind.IAM_ACCESS_KEY,
        CredentialKind.KV_SECRET,
        CredentialKind.VAULT_TOKEN,
        CredentialKind.APPROLE_SECRET_ID,
        CredentialKind.PKI_CERTIFICATE,
    }
    # and proof by use shows the target dead and the control alive
    by_workload = {(p.workload, p.expected) for p in report.proofs}
    assert by_workload == {("payments-api", "dead"), ("billing-worker", "alive")}
    assert all(p.passed for p in report.proofs)


def test_the_cli_help_names_the_demo() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output
