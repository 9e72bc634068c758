"""Flows reach Vault and AWS only through the adapters (rescind/vault/*.py, rescind/aws/*.py): an AST scan.

A flow module (the guard, discovery, leak location, the schedules, offboarding) may import the adapters and call
their functions. It may not import hvac or boto3 (an import for type annotations only, under TYPE_CHECKING, is
fine), touch an hvac client's API (`.secrets`, `.auth`, `.sys`, `.adapter`, or `read`/`write`/`list`/`delete` on
a Vault client), build an AWS service client (`aws.client("iam", ...)`), page through one (`get_paginator`), or
call an operation of the services that hold credentials and workloads (IAM, STS, Secrets Manager, ACM PCA, EC2,
ECS, Lambda).

Left to the flows: Rescind's own stores and orchestration (the checkpoint table's adapter, the report bucket,
the state machines), and the `runtime.py` modules that build the clients for the handlers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name

pytestmark = pytest.mark.unit

RUNTIME = Path(__file__).resolve().parents[2] / "shared" / "rescind"
# Rescind's own stores and the handlers' wiring, which build and use clients by design.
NOT_FLOWS = {"runtime.py", "dynamodb.py"}
FORBIDDEN_IMPORTS = ("hvac", "boto3")
# hvac.Client's API: its namespaces, and its generic calls when made on a Vault client.
HVAC_NAMESPACES = frozenset({"secrets", "auth", "sys", "adapter"})
HVAC_CALLS = frozenset({"read", "write", "write_data", "list", "delete", "lookup_token"})
VAULT_CLIENT_NAMES = frozenset({"vault", "_vault", "client", "_client"})
CREDENTIAL_SERVICES = ("iam", "sts", "secretsmanager", "acm-pca", "ec2", "ecs", "lambda")
# Same names, other objects: pydantic's SecretStr.get_secret_value (a leak alert's value, in-process).
NOT_AWS_CALLS = frozenset({"get_secret_value"})


def flow_modules(root: Path = RUNTIME) -> list[Path]:
    found = [root / "guard.py", root / "discovery.py", root / "leaks" / "locate.py"]
    for package in ("schedules", "offboarding"):
        found += [path for path in sorted((root / package).glob("*.py")) if path.name not in NOT_FLOWS]
    return found


def _operation_names() -> frozenset[str]:
    session = botocore.session.get_session()
    return (
        frozenset(
            xform_name(operation)
            for service in CREDENTIAL_SERVICES
            for operation in session.get_service_model(service).operation_names
        )
        - NOT_AWS_CALLS
    )


def _type_checking_only(tree: ast.Module) -> set[ast.AST]:
    """Nodes under `if TYPE_CHECKING:`: imports for annotations, never run."""
    inside: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                inside.update(ast.walk(statement))
    return inside


def _receiver_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def direct_backend_use(source: str, operations: frozenset[str]) -> list[str]:
    """Every place the source imports hvac or boto3, or reaches Vault or AWS without an adapter, one line each."""
    tree = ast.parse(source)
    annotations_only = _type_checking_only(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        where = f"line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import | ast.ImportFrom) and node not in annotations_only:
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{where}: imports {name}" for name in names if name.split(".")[0] in FORBIDDEN_IMPORTS]
        elif isinstance(node, ast.Attribute) and node.attr in HVAC_NAMESPACES:
            found.append(f"{where}: hvac client API .{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method, receiver = node.func.attr, _receiver_name(node.func.value)
            if method in HVAC_CALLS and receiver in VAULT_CLIENT_NAMES:
                found.append(f"{where}: Vault client call {receiver}.{method}")
            elif method == "get_paginator" or method in operations:
                found.append(f"{where}: AWS client call .{method}")
            elif method == "client" and node.args and isinstance(node.args[0], ast.Constant):
                found.append(f"{where}: builds an AWS {node.args[0].value} client")
    return found


def test_the_scan_sees_what_it_forbids() -> None:
    # Guards the scan itself: each kind of direct use it must catch, as the flows used to write them.
    source = """
import hvac
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    import boto3
def f(vault, aws, reader, iam):
    vault.secrets.kv.v2.read_secret_metadata("p", mount_point="m")
    reader.vault.adapter.get("/v1/pki/crl")
    vault.read("sys/mounts")
    aws.client("iam", "123456789012").list_user_tags(UserName="u")
    iam.get_paginator("list_users")
    call(vault.auth.token.lookup_accessor, "a")
"""
    found = direct_backend_use(source, _operation_names())

    assert {line.split(": ", 1)[1] for line in found} == {
        "imports hvac",
        "hvac client API .secrets",
        "hvac client API .adapter",
        "hvac client API .auth",
        "Vault client call vault.read",
        "AWS client call .list_user_tags",
        "builds an AWS iam client",
        "AWS client call .get_paginator",
    }


@pytest.mark.parametrize("module", flow_modules(), ids=lambda path: str(path.relative_to(RUNTIME)))
def test_a_flow_reaches_vault_and_aws_only_through_the_adapters(module: Path) -> None:
    assert direct_backend_use(module.read_text(), _operation_names()) == []
