"""E9006: every function has its own execution role.

A role shared by two functions holds the union of what both need, so a bug in the webhook could do what the
action executor may do. SAM gives each function without a `Role` its own generated role (SAM's Globals cannot
set one); a function's `Role` property must not name a role that another function also uses.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
_SUB_ROLE = re.compile(r"^\$\{([A-Za-z0-9]+)(?:\.Arn)?\}$")


def role_identity(value: Any) -> str:
    """One key per role, however the template spells it: `!Ref R`, `!GetAtt R.Arn`, `!Sub ${R.Arn}` are all R."""
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref" and isinstance(argument, str):
            return f"resource:{argument}"
        if function == "Fn::GetAtt":
            parts = argument.split(".", 1) if isinstance(argument, str) else argument
            if isinstance(parts, list) and parts and isinstance(parts[0], str):
                return f"resource:{parts[0]}"
        if function == "Fn::Sub":
            text = argument if isinstance(argument, str) else argument[0] if isinstance(argument, list) else None
            found = _SUB_ROLE.match(text) if isinstance(text, str) else None
            if found:
                return f"resource:{found.group(1)}"
    if isinstance(value, str):
        return f"literal:{value.strip()}"
    return "expression:" + json.dumps(value, sort_keys=True, default=str)


class FunctionHasItsOwnRole(CloudFormationLintRule):
    id = "E9006"
    shortdesc = "Every function has its own role"
    description = (
        "No two AWS::Serverless::Function or AWS::Lambda::Function resources may name the same execution role: "
        "each function's permissions are exactly what it needs."
    )
    source_url = "https://docs.aws.amazon.com/lambda/latest/dg/lambda-intro-execution-role.html"
    tags: ClassVar[list[str]] = ["rescind", "lambda", "iam"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        by_role: dict[str, list[str]] = {}
        for function_id, function in cfn.get_resources(list(FUNCTION_TYPES)).items():
            properties = function.get("Properties") or {}
            if isinstance(properties, dict) and "Role" in properties:
                by_role.setdefault(role_identity(properties["Role"]), []).append(function_id)
        matches: list[RuleMatch] = []
        for sharing in by_role.values():
            if len(sharing) < 2:
                continue
            for function_id in sharing:
                others = ", ".join(other for other in sharing if other != function_id)
                matches.append(
                    RuleMatch(
                        ["Resources", function_id, "Properties", "Role"],
                        f"Function {function_id} shares its role with {others}: give each function its own role "
                        "(or leave Role out so SAM generates one per function)",
                    )
                )
        return matches
