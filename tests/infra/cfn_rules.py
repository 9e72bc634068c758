"""What CloudFormation refuses before it creates anything: a parameter value outside its AllowedPattern, a required
parameter left out, and a failed assertion of the template's `Rules`. Evaluated here because neither moto nor the
local stack evaluates them, and cfn-lint only checks their syntax."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
# CloudFormation's quota on one parameter's value.
PARAMETER_VALUE_LIMIT_BYTES = 4096


def parameter_values(template: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str | list[str]]:
    """Each parameter's value as CloudFormation sees it: the given text or the default, a list for a
    CommaDelimitedList (CloudFormation splits "" into [""])."""
    values: dict[str, str | list[str]] = {}
    for name, spec in (template.get("Parameters") or {}).items():
        if name not in given and "Default" not in spec:
            continue
        text = str(given.get(name, spec.get("Default")))
        values[name] = text.split(",") if spec["Type"] == "CommaDelimitedList" else text
    return values


def parameter_refusals(template: Mapping[str, Any], given: Mapping[str, str]) -> list[str]:
    """CloudFormation's own checks of the parameters: a value for each one without a default, no value over
    CloudFormation's 4,096 bytes, and AllowedPattern (on each member of a list)."""
    values = parameter_values(template, given)
    refusals: list[str] = []
    for name, spec in (template.get("Parameters") or {}).items():
        if name not in values:
            refusals.append(f"Parameters: [{name}] must have values")
            continue
        if len(str(given.get(name, "")).encode()) > PARAMETER_VALUE_LIMIT_BYTES:
            refusals.append(f"Parameter {name} is longer than {PARAMETER_VALUE_LIMIT_BYTES} bytes")
            continue
        pattern = spec.get("AllowedPattern")
        members = values[name] if isinstance(values[name], list) else [values[name]]
        if pattern and not all(re.fullmatch(pattern, str(member)) for member in members):
            refusals.append(f"Parameter {name} failed to satisfy constraint: {spec.get('ConstraintDescription')}")
    return refusals


def rule_refusals(
    template: Mapping[str, Any], given: Mapping[str, str], *, account_id: str = ACCOUNT, region: str = REGION
) -> list[str]:
    """The AssertDescription of every assertion that fails, in the rules whose RuleCondition holds."""
    values: dict[str, Any] = {**parameter_values(template, given), "AWS::AccountId": account_id, "AWS::Region": region}
    refusals: list[str] = []
    for name, rule in (template.get("Rules") or {}).items():
        if "RuleCondition" in rule and not _evaluate(rule["RuleCondition"], values):
            continue
        for assertion in rule["Assertions"]:
            if not _evaluate(assertion["Assert"], values):
                refusals.append(f"{name}: {assertion.get('AssertDescription', '')}")
    return refusals


def refusals(template: Mapping[str, Any], given: Mapping[str, str]) -> list[str]:
    """Everything CloudFormation would refuse about these parameter values; [] when it would go on."""
    found = parameter_refusals(template, given)
    return found or rule_refusals(template, given)


def _evaluate(expression: Any, values: Mapping[str, Any]) -> Any:
    """The rule functions the template uses; anything else fails the test that reached it, naming it."""
    if isinstance(expression, list):
        return [_evaluate(item, values) for item in expression]
    if not isinstance(expression, dict):
        return expression
    ((function, argument),) = expression.items()
    if function == "Ref":
        if argument not in values:
            raise AssertionError(f"Ref {argument}: no value (give the parameter or extend the pseudo parameters)")
        return values[argument]
    arguments = _evaluate(argument, values)
    if function == "Fn::Equals":
        left, right = arguments
        return left == right
    if function == "Fn::Not":
        return not arguments[0]
    if function == "Fn::And":
        return all(arguments)
    if function == "Fn::Or":
        return any(arguments)
    if function == "Fn::Contains":
        candidates, value = arguments
        return value in candidates
    if function == "Fn::EachMemberEquals":
        members, value = arguments
        return all(member == value for member in members)
    if function == "Fn::EachMemberIn":
        members, allowed = arguments
        return all(member in allowed for member in members)
    raise AssertionError(f"the rule evaluator does not know {function}: extend it")
