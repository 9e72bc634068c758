"""Shared fixtures: one real OpenBao server per test session, and moto per test.

Tests that share the server keep out of each other's way by using their own mounts and paths
(see `unique`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest

from rescind_local import LocalOpenBao, local_aws

REPO_ROOT = Path(__file__).resolve().parents[1]
EVENTS_DIR = REPO_ROOT / "events"
# What the member accounts' execution roles require (member-account.yaml ExternalId): every cross-account
# factory in the tests presents it, as the deployed functions do.
TEST_EXTERNAL_ID = "rescind-test-external-0001"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test is marked with its tier from its folder, so `-m integration` selects by tier."""
    for item in items:
        parts = Path(str(item.fspath)).relative_to(REPO_ROOT / "tests").parts
        if parts and parts[0] in {"unit", "integration", "flows", "infra"}:
            item.add_marker(getattr(pytest.mark, parts[0]))


@pytest.fixture(scope="session")
def openbao() -> Iterator[LocalOpenBao]:
    with LocalOpenBao() as server:
        yield server


@pytest.fixture
def vault(openbao: LocalOpenBao) -> hvac.Client:
    """A root client on the session's OpenBao server."""
    return hvac.Client(url=openbao.addr, token=openbao.root_token, timeout=10)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for mounts, roles and paths, so tests on one server don't collide."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def aws() -> Iterator[None]:
    with local_aws():
        yield


def load_event(name: str) -> dict[str, Any]:
    """A sample event from events/, in its real format."""
    loaded: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text())
    return loaded


def load_task_input(name: str) -> dict[str, Any]:
    """A Step Functions task's input from tests/task_inputs/ (not an event: `rescind replay` does not take it)."""
    loaded: dict[str, Any] = json.loads((Path(__file__).parent / "task_inputs" / name).read_text())
    return loaded


class BackendCalls:
    """Counts every request that reaches Vault (hvac's adapter) or AWS (botocore's API call), calling through."""

    def __init__(self) -> None:
        self.vault: list[str] = []
        self.aws: list[str] = []

    @property
    def total(self) -> int:
        return len(self.vault) + len(self.aws)


# --- what counts as a write ------------------------------------------------------------------------------------

# POSTs that only read: Vault looks these up by a value in the body, so they are POSTs.
VAULT_READ_POSTS = (
    "/auth/token/lookup-accessor",
    "/auth/token/lookup",
    "/secret-id-accessor/lookup",
    "/secret-id/lookup",
    "/sys/leases/lookup",
    "/sys/capabilities-accessor",
)
AWS_READ_PREFIXES = ("Get", "List", "Describe")
# Services that hold the credentials Rescind acts on (the ledger, topic and bus are Rescind's own).
CREDENTIAL_SERVICES = frozenset({"iam", "secretsmanager", "acm-pca", "sts"})


def vault_writes(calls: BackendCalls) -> list[str]:
    """The Vault requests among `calls` that may change something (every one but a read)."""
    writes = []
    for call in calls.vault:
        method, _, url = call.partition(" ")
        if method in {"GET", "LIST"}:
            continue
        if method == "POST" and url.rstrip("/").endswith(VAULT_READ_POSTS):
            continue
        writes.append(call)
    return writes


def aws_writes(calls: BackendCalls, services: frozenset[str] | None = None) -> list[str]:
    """The AWS calls among `calls` that may change something, of `services` when given."""
    return [
        call
        for call in calls.aws
        if not call.partition(":")[2].startswith(AWS_READ_PREFIXES)
        and (services is None or call.partition(":")[0] in services)
    ]


@pytest.fixture
def backend_calls(monkeypatch: pytest.MonkeyPatch) -> BackendCalls:
    import botocore.client
    import hvac.adapters

    calls = BackendCalls()
    real_request = hvac.adapters.RawAdapter.request
    real_api_call = botocore.client.BaseClient._make_api_call

    def counting_request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        calls.vault.append(f"{method.upper()} {url}")
        return real_request(self, method, url, *args, **kwargs)

    def counting_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        calls.aws.append(f"{self.meta.service_model.service_name}:{operation_name}")
        return real_api_call(self, operation_name, api_params)

    monkeypatch.setattr(hvac.adapters.RawAdapter, "request", counting_request)
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting_api_call)
    return calls
