"""E9001: every function has its own AWS::Logs::LogGroup with RetentionInDays.

Without one, Lambda creates `/aws/lambda/<name>` on first use with no retention: the logs are kept forever,
and the stack cannot manage or delete them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
LOG_GROUP_TYPE = "AWS::Logs::LogGroup"


def _as_sub_text(value: Any) -> str | None:
    """A name as `${...}` text, so `!Sub`, `!Join` and literal spellings of one name compare equal."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict) or len(value) != 1:
        return None
    (function, argument), *_ = value.items()
    if function == "Ref" and isinstance(argument, str):
        return "${" + argument + "}"
    if function == "Fn::GetAtt":
        parts = argument.split(".", 1) if isinstance(argument, str) else argument
        if isinstance(parts, list) and len(parts) == 2 and all(isinstance(part, str) for part in parts):
            return "${" + parts[0] + "." + parts[1] + "}"
        return None
    if function == "Fn::Sub":
        if isinstance(argument, str):
            return argument
        if isinstance(argument, list) and argument and isinstance(argument[0], str):
            return argument[0]
        return None
    if function == "Fn::Join" and isinstance(argument, list) and len(argument) == 2:
        delimiter, items = argument
        if not isinstance(delimiter, str) or not isinstance(items, list):
            return None
        texts = [_as_sub_text(item) for item in items]
        if any(text is None for text in texts):
            return None
        return delimiter.join(text for text in texts if text is not None)
    return None


class FunctionLogGroupWithRetention(CloudFormationLintRule):
    id = "E9001"
    shortdesc = "Every function has its own log group with a retention"
    description = (
        "Each AWS::Serverless::Function or AWS::Lambda::Function needs an AWS::Logs::LogGroup for it "
        "(named /aws/lambda/<function name>, or the one its LoggingConfig.LogGroup names) with RetentionInDays."
    )
    source_url = "https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-loggroups.html"
    tags: ClassVar[list[str]] = ["rescind", "lambda", "logs"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        log_groups = cfn.get_resources([LOG_GROUP_TYPE])
        names = {
            logical_id: _as_sub_text(resource.get("Properties", {}).get("LogGroupName"))
            for logical_id, resource in log_groups.items()
        }
        matches: list[RuleMatch] = []
        for function_id, function in cfn.get_resources(list(FUNCTION_TYPES)).items():
            properties = function.get("Properties") or {}
            log_group_id = self._log_group_of(function_id, properties, names)
            if log_group_id is None:
                matches.append(RuleMatch(["Resources", function_id], self._missing_message(function_id, properties)))
                continue
            if "RetentionInDays" not in (log_groups[log_group_id].get("Properties") or {}):
                matches.append(
                    RuleMatch(
                        ["Resources", log_group_id, "Properties"],
                        f"Log group {log_group_id} of function {function_id} has no RetentionInDays: "
                        "its logs would be kept forever",
                    )
                )
        return matches

    @staticmethod
    def _log_group_of(function_id: str, properties: dict[str, Any], names: dict[str, str | None]) -> str | None:
        configured = (properties.get("LoggingConfig") or {}).get("LogGroup")
        if configured is not None:
            # Lambda writes where LoggingConfig says, so only that log group counts.
            if isinstance(configured, dict) and configured.get("Ref") in names:
                return str(configured["Ref"])
            wanted = {_as_sub_text(configured)} - {None}
        else:
            wanted = {"/aws/lambda/${" + function_id + "}"}
            function_name = _as_sub_text(properties.get("FunctionName"))
            if function_name is not None:
                wanted.add("/aws/lambda/" + function_name)
        for log_group_id, name in names.items():
            if name is not None and name in wanted:
                return log_group_id
        return None

    @staticmethod
    def _missing_message(function_id: str, properties: dict[str, Any]) -> str:
        if (properties.get("LoggingConfig") or {}).get("LogGroup") is not None:
            return (
                f"Function {function_id}: LoggingConfig.LogGroup names a log group this template does not declare; "
                "declare it as an AWS::Logs::LogGroup with RetentionInDays"
            )
        return (
            f"Function {function_id} has no AWS::Logs::LogGroup named /aws/lambda/<its name>: Lambda would create "
            "one that keeps logs forever; declare it with RetentionInDays (and point LoggingConfig.LogGroup at it)"
        )
