"""Helpers shared by the CLI test modules: one local stack daemon per module, and the run commands on it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner, Result

from rescind_cli.local import local_app, stop_local_stack
from rescind_cli.runs import register
from rescind_local.proof import ProofByUse, prove_by_use
from rescind_local.seed import SeededWorkload, prepare_vault, seed_workload
from rescind_local.target import LocalTarget, pid_is_running, read_state


def run_commands_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """The run commands, as `rescind` registers them."""

    register(app)
    return app


APP = run_commands_app()


@contextlib.contextmanager
def local_stack(state_dir: Path, *parameters: str) -> Iterator[LocalTarget]:
    """`rescind local up` (with template parameter overrides), then `down`, whatever the tests did."""
    arguments = ["up", "--state-dir", str(state_dir), "--time-scale", "0.01", "--timeout", "60", "--json"]
    for parameter in parameters:
        arguments += ["-p", parameter]
    result = CliRunner().invoke(local_app, arguments)
    assert result.exit_code == 0, result.output
    try:
        yield LocalTarget.load(state_dir)
    finally:
        left = read_state(state_dir)
        with contextlib.suppress(Exception):
            stop_local_stack(state_dir, timeout=10)
        if left is not None and left.openbao_pid and pid_is_running(left.openbao_pid):
            os.kill(left.openbao_pid, signal.SIGKILL)  # the OpenBao this module's daemon started


@dataclass
class Cli:
    """Invokes the run commands on one local stack."""

    target: LocalTarget

    def __call__(
        self, *arguments: str, env: Mapping[str, str | None] | None = None, input: str | None = None
    ) -> Result:
        result = CliRunner().invoke(
            APP, [*arguments, "--state-dir", str(self.target.state_dir)], env=dict(env or {}), input=input
        )
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result

    def json(self, *arguments: str, env: Mapping[str, str | None] | None = None) -> tuple[int, dict[str, Any]]:
        result = self(*arguments, "--json", env=env)
        return result.exit_code, json.loads(result.stdout)


def seed(target: LocalTarget, label: str) -> SeededWorkload:
    vault = target.vault_client()
    prepare_vault(vault)
    suffix = uuid.uuid4().hex[:8]
    return seed_workload(
        vault, target.boto3_client("iam"), f"{label}-{suffix}", f"spiffe://cli.rescind/{label}-{suffix}"
    )


def proofs(target: LocalTarget, workload: SeededWorkload, expected: str) -> list[ProofByUse]:
    return prove_by_use(
        target.vault_client(), target.openbao_addr, target.boto3_client("iam"), workload, expected=expected
    )


def wrong(checks: list[ProofByUse]) -> list[ProofByUse]:
    return [check for check in checks if not check.passed]


def second_principal(target: LocalTarget, name: str) -> tuple[str, dict[str, str]]:
    """An IAM user in the local moto with an access key: the CLI, given its key, acts as that user."""
    iam = target.boto3_client("iam")
    user = iam.create_user(UserName=name)["User"]
    key = iam.create_access_key(UserName=name)["AccessKey"]
    env = {
        "RESCIND_LOCAL_AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "RESCIND_LOCAL_AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }
    return str(user["Arn"]), env


def wait_until_finished(target: LocalTarget, name: str, timeout: float = 60.0) -> dict[str, Any]:
    sfn = target.boto3_client("stepfunctions")
    arn = target.state_machine_arn("ManualRevocationStateMachine").replace(":stateMachine:", ":execution:") + f":{name}"
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described
        time.sleep(0.1)


def assert_one_line_error(result: Result, *fragments: str) -> None:
    # Every run says first which target it acts on, and why; the error itself is one line.
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("target: ")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
