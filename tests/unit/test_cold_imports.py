"""What a cold start imports: the modules a first event does not use stay unloaded.

Each check runs in a fresh interpreter (this one has imported everything by now), with the project's layer
package on its path and nothing else in its environment that would change what is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT / "shared"


def loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` a fresh interpreter has imported after running `code`."""
    report = f"import json, sys\n{code}\nprint(json.dumps(sorted(m for m in {modules!r} if m in sys.modules)))"
    found: list[str] = last_json_line(report, {"PYTHONDONTWRITEBYTECODE": "1"})
    return found


def last_json_line(script: str, environment: dict[str, str]) -> Any:
    """The last line `script` prints, as JSON, run by a fresh interpreter with only the layer's package importable."""
    variables = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(SHARED), **environment}
    finished = subprocess.run(  # noqa: S603 - this interpreter, the project's own package
        [sys.executable, "-c", script], capture_output=True, text=True, env=variables, timeout=120, check=False
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return json.loads(finished.stdout.strip().splitlines()[-1])


def test_registering_every_credential_kind_parses_no_certificate_library() -> None:
    # Given a fresh interpreter
    # When every kind is registered (what an engine, the kill first and discovery do at cold start)
    # (pyOpenSSL, which the development tools bring and which imports the X.509 parser, is not in the layer)
    code = "sys.modules['OpenSSL'] = None\nfrom rescind.kinds import registered_kinds\nregistered_kinds()"

    # Then cryptography's X.509 parser is not imported: only a certificate or CRL read needs it
    assert loaded_after(code, ("rescind.vault.pki", "rescind.aws.acm_pca", "cryptography.x509")) == [
        "rescind.aws.acm_pca",
        "rescind.vault.pki",
    ]


def collector_states(code: str, environment: dict[str, str]) -> list[bool]:
    """What gc.isenabled() was at each `states.append(gc.isenabled())` of `code`, in a fresh interpreter."""
    states: list[bool] = last_json_line(f"import gc, json\nstates = []\n{code}\nprint(json.dumps(states))", environment)
    return states


HANDLER_MODULE = """
import rescind
states.append(gc.isenabled())
from rescind.observability import observed_handler
states.append(gc.isenabled())

@observed_handler
def lambda_handler(event, context):
    return event

states.append(gc.isenabled())
"""


def test_in_lambda_the_collector_pauses_while_the_handler_module_loads() -> None:
    # Given Lambda's environment (a function name, not sam local)
    lambda_environment = {"AWS_LAMBDA_FUNCTION_NAME": "rescind-start-leak-response", "AWS_DEFAULT_REGION": "us-east-1"}

    # When a handler module imports rescind and wraps its handler
    # Then the collector is off from the first import of rescind until the handler is wrapped, and on after
    assert collector_states(HANDLER_MODULE, lambda_environment) == [False, False, True]


@pytest.mark.parametrize(
    "environment",
    [{}, {"AWS_LAMBDA_FUNCTION_NAME": "rescind-start-leak-response", "AWS_SAM_LOCAL": "true"}],
    ids=["outside Lambda", "sam local and the local stack"],
)
def test_outside_lambda_the_collector_is_never_paused(environment: dict[str, str]) -> None:
    assert collector_states(HANDLER_MODULE, {"AWS_DEFAULT_REGION": "us-east-1", **environment}) == [True] * 3


# Every credential kind's module: an event names the kinds it needs, and a cold start loads no other.
KIND_MODULES = (
    "rescind.vault.identity",
    "rescind.vault.tokens",
    "rescind.vault.approle",
    "rescind.vault.pki",
    "rescind.vault.kv",
    "rescind.vault.leases",
    "rescind.vault.ttl",
    "rescind.vault.database",
    "rescind.aws.iam_keys",
    "rescind.aws.role_sessions",
    "rescind.aws.secrets_manager",
    "rescind.aws.acm_pca",
)
ENGINE = """
import hvac
from rescind.aws.session import AwsClientFactory
from rescind.engine.factory import build_engine
from rescind.kinds import Backends
from rescind.leaks.kill import kill_first_engine
from rescind.models import CredentialKind
vault = hvac.Client(url="http://127.0.0.1:9", token="unused")
"""


@pytest.mark.parametrize(
    ("code", "loaded"),
    [
        # Building an engine, the kill first's or the whole one, loads no kind: each handler is built on first use.
        ("kill_first_engine(Backends(vault, AwsClientFactory()), None)", ()),
        ("build_engine(vault, aws_factory=AwsClientFactory())", ()),
        # An action on one kind loads that kind's module (and what it imports), no other.
        ("build_engine(vault).handler_for(CredentialKind.IAM_ACCESS_KEY)", ("rescind.aws.iam_keys",)),
        (
            "kill_first_engine(Backends(vault), None).handler_for(CredentialKind.VAULT_TOKEN)",
            (
                "rescind.vault.tokens",
                "rescind.vault.ttl",
            ),
        ),
        # A leak alert loads the kind that locates its type.
        ("from rescind.kinds import value_locator\nvalue_locator('aws_access_key')", ("rescind.aws.iam_keys",)),
        ("from rescind.kinds import value_locator\nvalue_locator('certificate')", ("rescind.vault.pki",)),
    ],
    ids=["kill-first engine", "engine", "an IAM key's handler", "a token's kill", "a key's locator", "a PEM's locator"],
)
def test_an_engine_or_a_leak_loads_only_the_kinds_it_acts_on(code: str, loaded: tuple[str, ...]) -> None:
    assert loaded_after(ENGINE + code, KIND_MODULES) == sorted(loaded)
