"""E9005: state machine logging never includes execution data.

With IncludeExecutionData true, every state's input and output goes to CloudWatch Logs. Rescind's state
machines carry references only, but a log of inputs is one mistake away from a log of secrets, so the
setting must be the literal false (or left out: false is the default).
"""

from __future__ import annotations

from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

# Where each state machine type keeps its logging configuration.
LOGGING_PROPERTY = {
    "AWS::Serverless::StateMachine": "Logging",
    "AWS::StepFunctions::StateMachine": "LoggingConfiguration",
}


def _is_literal_false(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.strip().lower() == "false")


class StateMachineLogsNoExecutionData(CloudFormationLintRule):
    id = "E9005"
    shortdesc = "State machine logging has IncludeExecutionData false"
    description = (
        "Step Functions logging with IncludeExecutionData true writes every state's input and output to "
        "CloudWatch Logs; it must be false."
    )
    source_url = "https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html"
    tags: ClassVar[list[str]] = ["rescind", "stepfunctions", "logs"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches: list[RuleMatch] = []
        for logical_id, resource in cfn.get_resources(list(LOGGING_PROPERTY)).items():
            logging_property = LOGGING_PROPERTY[resource["Type"]]
            logging = (resource.get("Properties") or {}).get(logging_property)
            if not isinstance(logging, dict) or "IncludeExecutionData" not in logging:
                continue
            if not _is_literal_false(logging["IncludeExecutionData"]):
                matches.append(
                    RuleMatch(
                        ["Resources", logical_id, "Properties", logging_property, "IncludeExecutionData"],
                        f"State machine {logical_id} logs execution data: set {logging_property}."
                        "IncludeExecutionData to false so inputs and outputs stay out of CloudWatch Logs",
                    )
                )
        return matches
