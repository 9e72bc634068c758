"""What a function's cold start loads, with its stored settings in moto: the kinds and the paths its first event
does not use stay unloaded (tests/unit/test_cold_imports.py checks the parts on their own)."""

from __future__ import annotations

import os

import pytest

from tests.unit.test_cold_imports import KIND_MODULES, REPO_ROOT, SHARED, last_json_line

pytestmark = pytest.mark.integration

# The modules only some paths of a first event use.
PATH_MODULES = ("rescind.ledger.closing", "rescind.fingerprints.locate")

# A function's cold start as bench/cold_start.py measures it, in moto holding the stored settings: import the
# handler with the deployed environment, then build what the first event builds (each zero-argument `get_*` factory
# it imports, but the one that reads a secret). A token client, so building the Vault client calls nothing.
COLD_START = """
import importlib, os
import boto3
from rescind_local.aws import local_aws
from tests.infra.test_functions import FUNCTIONS, deployed_environment, handler_location, put_stored_settings

function = FUNCTIONS[{name!r}]
watched = {watched!r}
with local_aws():
    put_stored_settings(boto3.client("ssm"))
    os.environ.update(deployed_environment(function))
    os.environ.update({{"VAULT_AUTH_METHOD": "token", "VAULT_TOKEN": "not-a-real-token", "AWS_REGION": "us-east-1"}})
    assert not [module for module in watched if module in sys.modules], "loaded before the handler"
    code_dir, module_file, _attribute = handler_location(function)
    sys.path.insert(0, str(code_dir))
    handler = importlib.import_module(module_file.stem)
    for name, factory in sorted(vars(handler).items()):
        if name.startswith("get_") and callable(factory) and name != "get_fingerprint_key":
            factory()
"""


def cold_start_loaded(function: str) -> list[str]:
    """Which kind modules and path modules `function`'s cold start loaded (COLD_START)."""
    watched = KIND_MODULES + PATH_MODULES
    code = COLD_START.format(name=function, watched=watched)
    found: list[str] = last_json_line(
        f"import json, sys\n{code}\nprint(json.dumps(sorted(m for m in {watched!r} if m in sys.modules)))",
        {"PYTHONPATH": os.pathsep.join(str(folder) for folder in (SHARED, REPO_ROOT / "tools", REPO_ROOT))},
    )
    return found


@pytest.mark.parametrize(
    ("function", "loaded"),
    [
        # The leak's kind is known only from the event: no kind module until one arrives, nor the closing module
        # (the rejection branch's) nor the fingerprint index's lookup (a KV value's).
        ("StartLeakResponseFunction", []),
        # The engine builds a kind's handler when an action first names the kind.
        ("VerifyResponseFunction", []),
        ("ExecuteActionFunction", []),
        ("StartOffboardingFunction", []),
        # Its own flow names the kinds it rotates (and their owner reads, from the database and TTL kinds).
        (
            "TtlCeilingsFunction",
            [
                "rescind.aws.secrets_manager",
                "rescind.vault.database",
                "rescind.vault.leases",
                "rescind.vault.tokens",
                "rescind.vault.ttl",
            ],
        ),
    ],
)
def test_a_cold_start_loads_no_credential_kind_its_first_event_does_not_name(function: str, loaded: list[str]) -> None:
    assert cold_start_loaded(function) == sorted(loaded)
