"""Shared fixtures: one real OpenBao server per test session (per worker under pytest-xdist), and moto per test.

Tests that share the server keep out of each other's way by using their own mounts and paths (see `unique`).
Under xdist each worker is its own session: its own OpenBao on a free loopback port, stopped by its PID when
the worker ends. Nothing here binds a fixed port or writes a fixed path.
"""

from __future__ import annotations

import copy
import functools
import json
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import hvac
import pytest

from rescind_local import LocalOpenBao, local_aws
from rescind_local.lambdas import forget_loaded_handlers
from rescind_local.stack import LocalStack, deploy_template_to_moto
from rescind_local.template import load_template

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


@pytest.fixture(scope="session", autouse=True)
def asl_parse_trees_kept() -> Iterator[None]:
    """moto's Step Functions interpreter parses the whole ASL with ANTLR at every CreateStateMachine and again at
    every execution (measured: about 5% of a flow test's CPU). The parse tree depends on the definition's text
    alone, so it is kept per text. Under `local_aws()` an execution does not reach this parse: the local stack keeps
    each definition's program (rescind_local.asl_programs), so this saves the parse at CreateStateMachine and for
    tests that run moto without the local stack, where the components are still built afresh for each execution
    (moto's own Preprocessor). A definition that does not parse is parsed again each time and raises as before."""
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    parse_text = AmazonStateLanguageParser.parse
    trees: dict[str, Any] = {}

    def parse(definition: str) -> tuple[Any, Any]:
        tree = trees.get(definition)
        if tree is None:
            program, tree = parse_text(definition)
            trees[definition] = tree
            return program, tree
        return Preprocessor().visit(tree), tree

    with mock.patch.object(AmazonStateLanguageParser, "parse", staticmethod(parse)):
        yield


class _SearchPathsOnce(list[str]):
    """A loader's search paths, where adding a path already there changes nothing (boto3 adds its own data
    folder to the loader of every Session it creates; a shared loader would otherwise grow a path a Session)."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)

    def insert(self, index: Any, path: str) -> None:  # type: ignore[override]
        if path not in self:
            super().insert(index, path)


@pytest.fixture(scope="session", autouse=True)
def botocore_models_read_once() -> Iterator[None]:
    """The in-process Lambda functions start cold at every invocation, as on AWS, so each builds new boto3
    sessions and clients; each new session's loader finds, reads and decodes botocore's service models (JSON files
    of up to megabytes) again (measured: 40% of the duplicate-delivery test's CPU). Here every session shares one
    loader per data path, so a model file is decoded once per process. The models are botocore's files, unchanged;
    only their reading is shared (as it already is between the clients of one session)."""
    import threading

    import botocore.loaders
    import botocore.session

    loaders: dict[str | None, botocore.loaders.Loader] = {}
    lock = threading.Lock()

    def shared_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
        with lock:
            loader = loaders.get(search_path_string)
            if loader is None:
                loader = botocore.loaders.create_loader(search_path_string)
                loader._search_paths = _SearchPathsOnce(loader.search_paths)
                loaders[search_path_string] = loader
            return loader

    with mock.patch.object(botocore.session, "create_loader", shared_loader):
        yield


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


@functools.cache
def _template_yaml() -> dict[str, Any]:
    return load_template()


def deploy_local_stack(
    openbao: LocalOpenBao,
    *,
    stack_name: str = "rescind-local",
    vault_token: str | None = None,
    environment: Mapping[str, str] | None = None,
    **parameters: str,
) -> LocalStack:
    """template.yaml deployed onto the active moto against `openbao`, as the flow tests run it: the functions log
    in with `vault_token` (the root token by default), and the state machines' waits and retry intervals run at
    1/100 of their time. `parameters` are added to the template's, `environment` to every function's variables
    (settings a test lowers, e.g. chunk sizes). Use it as `with deploy_local_stack(...) as s:`.

    The template is read once per session (per worker) and each deployment gets its own copy. The handler modules
    a previous stack loaded are dropped first: a handler reads some settings at import (its cold start), so a module
    kept from another stack in this process would act with that stack's ARNs (a fresh deployment is fresh
    containers on AWS)."""
    forget_loaded_handlers()
    return deploy_template_to_moto(
        copy.deepcopy(_template_yaml()),
        stack_name=stack_name,
        parameters={"VaultAddr": openbao.addr, "VaultAwsAuthRole": "rescind-local", **parameters},
        function_environment={
            "VAULT_AUTH_METHOD": "token",
            "VAULT_TOKEN": vault_token or openbao.root_token,
            **(environment or {}),
        },
        time_scale=0.01,
    )


@pytest.fixture
def stack(aws: None, openbao: LocalOpenBao) -> Iterator[LocalStack]:
    """The template deployed onto this test's moto against the session's OpenBao (see `deploy_local_stack`)."""
    with deploy_local_stack(openbao) as deployed:
        yield deployed


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
        self.in_order: list[str] = []  # both, as they were made: "vault METHOD url" and "aws service:Operation"

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
        calls.in_order.append(f"vault {method.upper()} {url}")
        return real_request(self, method, url, *args, **kwargs)

    def counting_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        calls.aws.append(f"{self.meta.service_model.service_name}:{operation_name}")
        calls.in_order.append(f"aws {self.meta.service_model.service_name}:{operation_name}")
        return real_api_call(self, operation_name, api_params)

    monkeypatch.setattr(hvac.adapters.RawAdapter, "request", counting_request)
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting_api_call)
    return calls
