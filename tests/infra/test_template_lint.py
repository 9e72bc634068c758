"""`cfn-lint template.yaml`, run as a user runs it from the repository root, with .cfnlintrc adding our rules."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# One template that breaks each of Rescind's rules once, to prove .cfnlintrc loads them for the plain command.
BREAKS_EVERY_RULE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.12
      Handler: app.handler
      CodeUri: src/
      Policies:
        - Version: "2012-10-17"
          Statement:
            - Effect: Allow
              Action: iam:*
              Resource: "*"
      Events:
        OnAlert:
          Type: EventBridgeRule
          Properties:
            Pattern:
              source: [example.alerts]
  Sm:
    Type: AWS::Serverless::StateMachine
    Properties:
      Definition:
        StartAt: Done
        States:
          Done:
            Type: Succeed
      Logging:
        Level: ALL
        IncludeExecutionData: true
        Destinations:
          - CloudWatchLogsLogGroup:
              LogGroupArn: !GetAtt SmLogs.Arn
  SmLogs:
    Type: AWS::Logs::LogGroup
    Properties:
      RetentionInDays: 30
"""


def cfn_lint_executable() -> str:
    beside_python = Path(sys.executable).with_name("cfn-lint")
    found = str(beside_python) if beside_python.exists() else shutil.which("cfn-lint")
    assert found, "cfn-lint is not installed (pip install -e '.[dev]')"
    return found


@pytest.fixture(scope="module")
def findings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """cfn-lint's findings (all levels, informational included) per file, from one run."""
    bad = tmp_path_factory.mktemp("cfnlint") / "breaks_every_rule.yaml"
    bad.write_text(BREAKS_EVERY_RULE)
    completed = subprocess.run(  # noqa: S603 - our own venv's cfn-lint on our own files
        [cfn_lint_executable(), "--format", "json", "--include-checks", "I", "--", "template.yaml", str(bad)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.stdout, completed.stderr
    by_file: dict[str, list[dict[str, Any]]] = {"template.yaml": [], "bad": []}
    for finding in json.loads(completed.stdout):
        by_file["bad" if Path(finding["Filename"]) == bad else "template.yaml"].append(finding)
    return by_file


def describe(findings: list[dict[str, Any]]) -> list[str]:
    return [f"{f['Rule']['Id']} line {f['Location']['Start']['LineNumber']}: {f['Message']}" for f in findings]


def test_template_yaml_has_no_findings_at_any_level(findings: dict[str, list[dict[str, Any]]]) -> None:
    assert describe(findings["template.yaml"]) == []


def test_cfnlintrc_appends_rescinds_rules_to_the_plain_command(findings: dict[str, list[dict[str, Any]]]) -> None:
    rule_ids = sorted({finding["Rule"]["Id"] for finding in findings["bad"]} - {"I3011"})  # the log group's policies

    assert rule_ids == ["E9001", "E9002", "E9003", "E9004", "E9005"], describe(findings["bad"])


# --- CI (.ci/run: `make test`) lints both templates with cfn-lint and `sam validate --lint`, and builds for 3.12 -


def make_dry_run(target: str) -> str:
    """The commands `make <target>` runs, printed and not run."""
    completed = subprocess.run(  # noqa: S603 - the project's own Makefile, dry run
        ["make", "--no-print-directory", "-n", target],  # noqa: S607 - make from PATH, as CI runs it
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_ci_runs_make_test() -> None:
    assert (REPO_ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == "make test"


def test_make_test_lints_both_templates_with_cfn_lint_and_sam_validate_offline() -> None:
    commands = make_dry_run("test")

    assert "cfn-lint template.yaml member-account.yaml" in commands
    sam = next(line for line in commands.splitlines() if "sam validate --lint" in line)
    assert "for template in template.yaml member-account.yaml" in sam
    # With no credentials of the caller's (a stale profile would fail it) and a fixed region
    assert "-u AWS_PROFILE" in sam
    assert "AWS_DEFAULT_REGION=us-east-1" in sam


def test_make_test_runs_the_python312_build_check() -> None:
    # tests/integration/test_lambda_build.py (sam build, every handler imported from the build under python3.12)
    # is marked integration by its folder and never slow, so both pytest runs of `make test` include it.
    commands = make_dry_run("test")
    build_test = (REPO_ROOT / "tests" / "integration" / "test_lambda_build.py").read_text()

    assert "mark.slow" not in build_test
    assert '-m "not slow"' in commands
    assert '-m "(unit or integration) and not slow"' in commands
