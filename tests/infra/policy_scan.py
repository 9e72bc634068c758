"""Shared by the policy tests: which AWS calls the code makes, and what an IAM policy grants."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import botocore.session
from botocore import xform_name

# The AWS services Rescind's code calls (boto3 client names).
AWS_SERVICES = (
    "iam",
    "secretsmanager",
    "acm-pca",
    "s3",
    "sts",
    "dynamodb",
    "sns",
    "stepfunctions",
    "events",
    "ec2",
    "ecs",
    "lambda",
)

# Operations whose IAM action is named otherwise than the API operation: lambda's Invoke is lambda:InvokeFunction.
IAM_ACTION_OF_OPERATION = {"lambda:Invoke": "lambda:InvokeFunction"}


def boto3_calls(sources: Iterable[Path], services: Iterable[str]) -> set[str]:
    """`service:Operation` for every boto3 call (direct or through get_paginator) in the given source files.

    boto3 method names are the operations' snake_case names, so the scan reads them from the source.
    """
    session = botocore.session.get_session()
    operations: dict[str, set[str]] = {}
    for service in services:
        model = session.get_service_model(service)
        for operation in model.operation_names:
            action = f"{model.signing_name}:{operation}"
            operations.setdefault(xform_name(operation), set()).add(IAM_ACTION_OF_OPERATION.get(action, action))
    calls: set[str] = set()
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name = node.func.attr
            # get_paginator("op"), and the adapters' own `_paginate("op", ...)` wrappers around it
            if name in ("get_paginator", "_paginate") and node.args and isinstance(node.args[0], ast.Constant):
                name = str(node.args[0].value)
            calls |= operations.get(name, set())
    return calls


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resource_text(resource: Any) -> str:
    """A Resource as text: `!Sub` strings as written, `!Ref X` as ${X}, `!GetAtt X.Arn` as ${X.Arn}."""
    if isinstance(resource, str):
        return resource
    if "Fn::Sub" in resource:
        return str(resource["Fn::Sub"])
    if "Ref" in resource:
        return "${" + str(resource["Ref"]) + "}"
    if "Fn::GetAtt" in resource:
        return "${" + ".".join(resource["Fn::GetAtt"]) + "}"
    return json.dumps(resource)


def allowed_resources(statements: list[dict[str, Any]], action: str) -> list[str]:
    """The resources on which Allow statements grant `action` (IAM action names are case-insensitive)."""
    granted: list[str] = []
    for statement in statements:
        if statement["Effect"] != "Allow":
            continue
        if any(fnmatchcase(action.lower(), pattern.lower()) for pattern in as_list(statement["Action"])):
            granted.extend(resource_text(resource) for resource in as_list(statement["Resource"]))
    return granted


def role_statements(template: Mapping[str, Any], logical_id: str) -> list[dict[str, Any]]:
    """The statements the template gives a role, unresolved: its inline policy documents (a SAM function's or state
    machine's `Policies`, an IAM role's `Policies`) and those of the template's own managed policies attached to it
    (a `!Ref` in `Policies` or `ManagedPolicyArns`). SAM policy templates and AWS managed policies are left out.

    Works on the template as written and on its translation (where each SAM resource's role is an AWS::IAM::Role).
    """
    resources = template["Resources"]
    properties = resources[logical_id].get("Properties") or {}
    found: list[dict[str, Any]] = []
    for policy in [*as_list(properties.get("Policies", [])), *properties.get("ManagedPolicyArns", [])]:
        if not isinstance(policy, dict):
            continue  # an AWS managed policy's name or ARN
        attached = resources.get(policy.get("Ref")) if set(policy) == {"Ref"} else None
        if attached is not None and attached["Type"] == "AWS::IAM::ManagedPolicy":
            policy = attached["Properties"]
        document = policy.get("PolicyDocument", policy)
        found.extend(as_list(document.get("Statement", [])) if isinstance(document, dict) else [])
    return found
