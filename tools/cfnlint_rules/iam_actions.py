"""E9004: no Allow statement grants a whole service that can hand out or read credentials.

Rescind acts on credentials; a role that may do `iam:*`, `secretsmanager:*`, `kms:*` or `states:*` (or
everything) turns any bug into a takeover. Deny statements may use wildcards: they only take away.
Allow with NotAction is flagged too, since it grants every action it does not list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

FORBIDDEN_ACTIONS = frozenset({"*", "iam:*", "secretsmanager:*", "kms:*", "states:*"})
# AWS managed policies that grant one of the forbidden wildcards (or NotAction, for PowerUserAccess).
FORBIDDEN_MANAGED_POLICIES = frozenset(
    {"AdministratorAccess", "PowerUserAccess", "IAMFullAccess", "SecretsManagerReadWrite", "AWSStepFunctionsFullAccess"}
)

Path = list[str | int]


def _forbidden(action: str) -> bool:
    normalized = action.strip().lower()  # IAM action names are case-insensitive
    return normalized in FORBIDDEN_ACTIONS or normalized.split(":", 1)[0] == "*"


def _statements(value: Any, path: Path) -> Iterator[tuple[dict[str, Any], Path]]:
    """Statements of a policy document, following Fn::If branches and lists."""
    if isinstance(value, str):
        try:
            value = json.loads(value)  # a document given as a JSON string
        except ValueError:
            return
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from _statements(item, [*path, index])
    elif isinstance(value, dict):
        if "Fn::If" in value and isinstance(value["Fn::If"], list) and len(value["Fn::If"]) == 3:
            for branch in (1, 2):
                yield from _statements(value["Fn::If"][branch], [*path, "Fn::If", branch])
        elif "Effect" in value:
            yield value, path
        elif "Statement" in value:
            yield from _statements(value["Statement"], [*path, "Statement"])


def _documents(resource_type: str, properties: dict[str, Any], base: Path) -> Iterator[tuple[Any, Path]]:
    """The identity policy documents a resource declares, with their paths."""
    if resource_type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") or resource_type.endswith(
        ("::RolePolicy", "::UserPolicy", "::GroupPolicy")
    ):
        yield properties.get("PolicyDocument"), [*base, "PolicyDocument"]
    elif resource_type in ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group"):
        for index, policy in enumerate(properties.get("Policies") or []):
            if isinstance(policy, dict):
                yield policy.get("PolicyDocument"), [*base, "Policies", index, "PolicyDocument"]
    elif resource_type in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
        policies = properties.get("Policies")
        items = policies if isinstance(policies, list) else [policies]
        for index, policy in enumerate(items):
            path = [*base, "Policies", index] if isinstance(policies, list) else [*base, "Policies"]
            if isinstance(policy, dict) and "Statement" in policy:  # an inline document, not a policy template
                yield policy, path


def _managed_policies(resource_type: str, properties: dict[str, Any], base: Path) -> Iterator[tuple[str, Path]]:
    if resource_type in ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group"):
        for index, arn in enumerate(properties.get("ManagedPolicyArns") or []):
            if isinstance(arn, str):
                yield arn, [*base, "ManagedPolicyArns", index]
    elif resource_type in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
        policies = properties.get("Policies")
        if isinstance(policies, str):
            yield policies, [*base, "Policies"]
        elif isinstance(policies, list):
            for index, policy in enumerate(policies):
                if isinstance(policy, str):
                    yield policy, [*base, "Policies", index]


class NoWildcardActions(CloudFormationLintRule):
    id = "E9004"
    shortdesc = "No wildcard actions on IAM, Secrets Manager, KMS, Step Functions or everything"
    description = (
        'No Allow statement may grant "*", "iam:*", "secretsmanager:*", "kms:*" or "states:*", use NotAction, '
        "or attach an AWS managed policy that does; name the actions the role needs."
    )
    source_url = "https://docs.aws.amazon.com/IAM/latest/UserGuide/best-practices.html#grant-least-privilege"
    tags: ClassVar[list[str]] = ["rescind", "iam", "least-privilege"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches: list[RuleMatch] = []
        for logical_id, resource in cfn.get_resources().items():
            resource_type = str(resource.get("Type"))
            properties = resource.get("Properties")
            if not isinstance(properties, dict):
                continue
            base: Path = ["Resources", logical_id, "Properties"]
            for document, path in _documents(resource_type, properties, base):
                for statement, statement_path in _statements(document, path):
                    matches.extend(self._check_statement(logical_id, statement, statement_path))
            for arn, path in _managed_policies(resource_type, properties, base):
                name = arn.rsplit("/", 1)[-1]
                if name in FORBIDDEN_MANAGED_POLICIES:
                    matches.append(
                        RuleMatch(
                            path, f"{logical_id} attaches {name}, which grants wildcard actions: name the actions"
                        )
                    )
        return matches

    @staticmethod
    def _check_statement(logical_id: str, statement: dict[str, Any], path: Path) -> Iterator[RuleMatch]:
        if statement.get("Effect") != "Allow":
            return
        if "NotAction" in statement:
            yield RuleMatch(
                [*path, "NotAction"],
                f"{logical_id}: an Allow statement with NotAction grants every other action; list the actions",
            )
        actions = statement.get("Action")
        listed = actions if isinstance(actions, list) else [actions]
        for index, action in enumerate(listed):
            if isinstance(action, str) and _forbidden(action):
                action_path = [*path, "Action", index] if isinstance(actions, list) else [*path, "Action"]
                yield RuleMatch(
                    action_path,
                    f"{logical_id}: an Allow statement grants {action!r}; name the actions it needs "
                    f"(forbidden: {', '.join(sorted(FORBIDDEN_ACTIONS))})",
                )
