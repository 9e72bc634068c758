"""What a cold start imports and builds: the modules and pydantic models a first event does not use stay unloaded.

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

# The least environment the settings validate from.
READ_SETTINGS = (
    "from rescind.config import RuntimeSettings\n"
    "RuntimeSettings.from_environ({'VAULT_ADDR': 'https://vault.example.com:8200', 'VAULT_AUTH_METHOD': 'token', "
    "'VAULT_TOKEN': 't', "
    "'LEDGER_TABLE_NAME': 'ledger'})\n"
)


def fresh_interpreter(code: str) -> Any:
    """What `code`, run by a fresh interpreter, printed as JSON on its last line."""
    environment = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(SHARED), "PYTHONDONTWRITEBYTECODE": "1"}
    finished = subprocess.run(  # noqa: S603 - this interpreter, the project's own package
        [sys.executable, "-c", f"import json, sys\n{code}"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return json.loads(finished.stdout.strip().splitlines()[-1])


def loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` a fresh interpreter has imported after running `code`."""
    found: list[str] = fresh_interpreter(
        f"{code}\nprint(json.dumps(sorted(m for m in {modules!r} if m in sys.modules)))"
    )
    return found


def test_the_settings_build_no_action_or_result_model() -> None:
    # Given a fresh interpreter (every function reads its settings at cold start, through rescind.config)
    # When it imports the settings and validates them from an environment
    code = READ_SETTINGS

    # Then the credential references are imported (the settings name kinds), the actions and results are not
    assert loaded_after(code, ("rescind.models.credentials", "rescind.models.actions", "rescind.models.results")) == [
        "rescind.models.credentials"
    ]


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


def test_a_models_name_still_comes_from_the_package() -> None:
    # Given the package's names, which come from their modules on first use
    import rescind.models as models
    from rescind.models import actions, credentials, results

    # Then each is the very object its module defines, and an unknown name is an AttributeError
    assert models.Action is actions.Action
    assert models.CredentialRef is credentials.CredentialRef
    assert models.Evidence is results.Evidence
    assert {name for name in models.__all__ if not hasattr(models, name)} == set()
    with pytest.raises(AttributeError, match="no attribute 'NotAModel'"):
        _ = models.NotAModel
