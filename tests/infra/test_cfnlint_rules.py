"""Rescind's cfn-lint rules (tools/cfnlint_rules): each flags a small bad template and passes a good one.

Every template here is otherwise valid, and each test asserts the complete list of findings, so a rule that
fires on the wrong thing fails as surely as one that stays silent.
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent, indent

import pytest
from cfnlint.api import lint
from cfnlint.core import get_rules
from cfnlint.rules import Match, RulesCollection

REPO_ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = REPO_ROOT / "tools" / "cfnlint_rules"
HEADER = 'AWSTemplateFormatVersion: "2010-09-09"\nTransform: AWS::Serverless-2016-10-31\nResources:\n'
ROLE_ARN = "arn:aws:iam::123456789012:role/example"


@pytest.fixture(scope="module")
def rules() -> RulesCollection:
    return get_rules([str(RULES_DIR)], [], [])


def template(*resources: str) -> str:
    return HEADER + indent("".join(dedent(resource).lstrip("\n") for resource in resources), "  ")


def function(name: str = "Fn", properties: str = "", *, log_group: bool = True) -> str:
    """A SAM function; with its log group (retention 30 days) unless told otherwise."""
    body = "Runtime: python3.12\nHandler: app.handler\nCodeUri: src/\n" + dedent(properties).lstrip("\n")
    text = f"{name}:\n  Type: AWS::Serverless::Function\n  Properties:\n" + indent(body, "    ")
    if log_group:
        text += log_group_for(name)
    return text


def log_group_for(name: str, retention: bool = True) -> str:
    text = f"{name}Logs:\n  Type: AWS::Logs::LogGroup\n  Properties:\n    LogGroupName: !Sub /aws/lambda/${{{name}}}\n"
    return text + ("    RetentionInDays: 30\n" if retention else "")


QUEUE = """
Dlq:
  Type: AWS::SQS::Queue
"""
STATE_MACHINE_DEFINITION = """
Definition:
  StartAt: Done
  States:
    Done:
      Type: Succeed
"""


def state_machine(properties: str = "") -> str:
    body = dedent(STATE_MACHINE_DEFINITION).lstrip("\n") + dedent(properties).lstrip("\n")
    return "Sm:\n  Type: AWS::Serverless::StateMachine\n  Properties:\n" + indent(body, "    ")


def findings(rules: RulesCollection, text: str) -> list[tuple[str, str]]:
    """(rule id, path) of every finding, sorted."""
    matches: list[Match] = lint(text, rules=rules, regions=["us-east-1"])
    return sorted((match.rule.id, "/".join(map(str, match.path or []))) for match in matches)


def ids(rules: RulesCollection, text: str) -> list[str]:
    return [rule_id for rule_id, _ in findings(rules, text)]


def messages(rules: RulesCollection, text: str, rule_id: str) -> list[str]:
    return [match.message for match in lint(text, rules=rules, regions=["us-east-1"]) if match.rule.id == rule_id]


def test_the_rules_load_with_their_ids(rules: RulesCollection) -> None:
    loaded = {rule.id for rule in rules}

    assert {"E9001", "E9002", "E9003", "E9004", "E9005"} <= loaded


# --- E9001: a log group with retention for every function ----------------------------------------------------


def test_e9001_flags_a_function_without_a_log_group(rules: RulesCollection) -> None:
    text = template(function(log_group=False))

    assert findings(rules, text) == [("E9001", "Resources/Fn")]
    assert "keeps logs forever" in messages(rules, text, "E9001")[0]


def test_e9001_flags_a_log_group_without_retention(rules: RulesCollection) -> None:
    text = template(function(log_group=False), log_group_for("Fn", retention=False))

    assert findings(rules, text) == [("E9001", "Resources/FnLogs/Properties")]
    assert "no RetentionInDays" in messages(rules, text, "E9001")[0]


def test_e9001_flags_a_logging_config_pointing_at_an_undeclared_log_group(rules: RulesCollection) -> None:
    # The /aws/lambda log group exists, but Lambda writes where LoggingConfig says.
    text = template(function(properties="LoggingConfig:\n  LogGroup: /custom/fn\n"))

    assert findings(rules, text) == [("E9001", "Resources/Fn")]


def test_e9001_flags_a_plain_lambda_function_without_a_log_group(rules: RulesCollection) -> None:
    text = template(
        f"""
        Plain:
          Type: AWS::Lambda::Function
          Properties:
            Runtime: python3.12
            Handler: app.handler
            Role: {ROLE_ARN}
            Code:
              ZipFile: "def handler(event, context): return event"
        """
    )

    assert ids(rules, text) == ["E9001"]


def test_e9001_passes_a_log_group_named_after_the_function(rules: RulesCollection) -> None:
    assert findings(rules, template(function())) == []


def test_e9001_passes_a_named_function_whose_logging_config_refers_to_its_log_group(rules: RulesCollection) -> None:
    text = template(
        function(
            properties="""
            FunctionName: !Sub ${AWS::StackName}-fn
            LoggingConfig:
              LogGroup: !Ref FnLogs
            """,
            log_group=False,
        ),
        """
        FnLogs:
          Type: AWS::Logs::LogGroup
          Properties:
            LogGroupName: !Sub /aws/lambda/${AWS::StackName}-fn
            RetentionInDays: 7
        """,
    )

    assert findings(rules, text) == []


def test_e9001_passes_a_plain_lambda_function_with_a_joined_log_group_name(rules: RulesCollection) -> None:
    text = template(
        f"""
        Plain:
          Type: AWS::Lambda::Function
          Properties:
            FunctionName: plain-fn
            Runtime: python3.12
            Handler: app.handler
            Role: {ROLE_ARN}
            Code:
              ZipFile: "def handler(event, context): return event"
        PlainLogs:
          Type: AWS::Logs::LogGroup
          Properties:
            LogGroupName: !Join ["", ["/aws/lambda/", "plain-fn"]]
            RetentionInDays: 14
        """
    )

    assert findings(rules, text) == []


# --- E9002: asynchronous invocations capture failures ---------------------------------------------------------

EVENTBRIDGE_EVENT = """
Events:
  OnAlert:
    Type: EventBridgeRule
    Properties:
      Pattern:
        source: [example.alerts]
      DeadLetterConfig:
        Arn: !GetAtt Dlq.Arn
"""
ON_FAILURE_DESTINATION = """
EventInvokeConfig:
  MaximumRetryAttempts: 2
  DestinationConfig:
    OnFailure:
      Type: SQS
      Destination: !GetAtt Dlq.Arn
"""


def test_e9002_flags_a_function_with_an_eventbridge_event_and_no_on_failure_destination(
    rules: RulesCollection,
) -> None:
    text = template(QUEUE, function(properties=EVENTBRIDGE_EVENT))

    assert findings(rules, text) == [("E9002", "Resources/Fn")]
    assert "EventBridgeRule event OnAlert" in messages(rules, text, "E9002")[0]


def test_e9002_passes_the_function_once_it_has_an_on_failure_destination(rules: RulesCollection) -> None:
    text = template(QUEUE, function(properties=EVENTBRIDGE_EVENT + ON_FAILURE_DESTINATION))

    assert findings(rules, text) == []


def test_e9002_passes_the_function_with_a_dead_letter_queue(rules: RulesCollection) -> None:
    dead_letter_queue = "DeadLetterQueue:\n  Type: SQS\n  TargetArn: !GetAtt Dlq.Arn\n"
    text = template(QUEUE, function(properties=EVENTBRIDGE_EVENT + dead_letter_queue))

    assert findings(rules, text) == []


RULE_TARGETING_THE_FUNCTION = """
Rule:
  Type: AWS::Events::Rule
  Properties:
    EventPattern:
      source: [example.alerts]
    Targets:
      - Id: fn
        Arn: !GetAtt Fn.Arn
        DeadLetterConfig:
          Arn: !GetAtt Dlq.Arn
"""


def test_e9002_flags_a_function_that_a_rule_targets(rules: RulesCollection) -> None:
    text = template(QUEUE, function(), RULE_TARGETING_THE_FUNCTION)

    assert findings(rules, text) == [("E9002", "Resources/Fn")]
    assert "target of rule Rule" in messages(rules, text, "E9002")[0]


def test_e9002_follows_a_rule_target_through_the_functions_alias(rules: RulesCollection) -> None:
    # SAM's AutoPublishAlias makes FnAliaslive, which the template refers to but does not declare.
    text = template(
        QUEUE,
        function(properties="AutoPublishAlias: live\n"),
        RULE_TARGETING_THE_FUNCTION.replace("!GetAtt Fn.Arn", "!Ref FnAliaslive"),
    )

    assert findings(rules, text) == [("E9002", "Resources/Fn")]


def test_e9002_passes_a_rule_target_with_an_event_invoke_config_resource(rules: RulesCollection) -> None:
    invoke_config = """
    FnInvokeConfig:
      Type: AWS::Lambda::EventInvokeConfig
      Properties:
        FunctionName: !Ref Fn
        Qualifier: $LATEST
        DestinationConfig:
          OnFailure:
            Destination: !GetAtt Dlq.Arn
    """
    text = template(QUEUE, function(), RULE_TARGETING_THE_FUNCTION, invoke_config)

    assert findings(rules, text) == []


def test_e9002_flags_a_function_subscribed_to_sns(rules: RulesCollection) -> None:
    topic = "Topic:\n  Type: AWS::SNS::Topic\n"
    sns_event = "Events:\n  Alerts:\n    Type: SNS\n    Properties:\n      Topic: !Ref Topic\n"
    text = template(topic, function(properties=sns_event))

    assert findings(rules, text) == [("E9002", "Resources/Fn")]


def test_e9002_flags_an_event_invoke_config_without_on_failure(rules: RulesCollection) -> None:
    text = template(function(properties="EventInvokeConfig:\n  MaximumRetryAttempts: 0\n"))

    assert findings(rules, text) == [("E9002", "Resources/Fn")]


SQS_EVENT = "Events:\n  Work:\n    Type: SQS\n    Properties:\n      Queue: !GetAtt Work.Arn\n"


def test_e9002_flags_an_sqs_source_queue_without_a_redrive_policy(rules: RulesCollection) -> None:
    text = template("Work:\n  Type: AWS::SQS::Queue\n", function(properties=SQS_EVENT))

    assert findings(rules, text) == [("E9002", "Resources/Fn/Properties/Events/Work")]
    assert "RedrivePolicy" in messages(rules, text, "E9002")[0]


def test_e9002_passes_an_sqs_source_queue_with_a_redrive_policy(rules: RulesCollection) -> None:
    queue = """
    Work:
      Type: AWS::SQS::Queue
      Properties:
        RedrivePolicy:
          deadLetterTargetArn: !GetAtt Dlq.Arn
          maxReceiveCount: 5
    """
    text = template(QUEUE, queue, function(properties=SQS_EVENT))

    assert findings(rules, text) == []


def test_e9002_and_e9003_flag_a_state_machine_schedule_without_a_dead_letter_config(rules: RulesCollection) -> None:
    schedule = "Events:\n  Nightly:\n    Type: Schedule\n    Properties:\n      Schedule: rate(1 day)\n"
    text = template(state_machine(schedule))

    assert findings(rules, text) == [
        ("E9002", "Resources/Sm/Properties/Events/Nightly"),
        ("E9003", "Resources/Sm/Properties/Events/Nightly"),
    ]


def test_e9002_and_e9003_pass_a_state_machine_schedule_with_a_dead_letter_config(rules: RulesCollection) -> None:
    schedule = """
    Events:
      Nightly:
        Type: Schedule
        Properties:
          Schedule: rate(1 day)
          DeadLetterConfig:
            Type: SQS
    """
    text = template(state_machine(schedule))

    assert findings(rules, text) == []


# The forms template.yaml uses: a function's EventBridgeRule and ScheduleV2 events, each with a DeadLetterConfig
# by ARN and a RetryPolicy, on a function with an on-failure destination.
SCHEDULE_V2_EVENT = """
Events:
  Sweep:
    Type: ScheduleV2
    Properties:
      ScheduleExpression: rate(1 day)
      OmitName: true
      Input: '{"dry_run": false}'
      DeadLetterConfig:
        Arn: !GetAtt Dlq.Arn
      RetryPolicy:
        MaximumRetryAttempts: 3
"""


def test_e9002_flags_a_function_with_a_scheduler_event_and_no_on_failure_destination(rules: RulesCollection) -> None:
    text = template(QUEUE, function(properties=SCHEDULE_V2_EVENT))

    assert findings(rules, text) == [("E9002", "Resources/Fn")]
    assert "ScheduleV2 event Sweep" in messages(rules, text, "E9002")[0]


@pytest.mark.parametrize(("event", "name"), [(EVENTBRIDGE_EVENT, "OnAlert"), (SCHEDULE_V2_EVENT, "Sweep")])
def test_e9003_flags_a_function_rule_or_scheduler_event_without_a_dead_letter_config(
    rules: RulesCollection, event: str, name: str
) -> None:
    without_dead_letters = event.replace("      DeadLetterConfig:\n        Arn: !GetAtt Dlq.Arn\n", "")
    assert without_dead_letters != event

    text = template(QUEUE, function(properties=without_dead_letters + ON_FAILURE_DESTINATION))

    assert findings(rules, text) == [("E9003", f"Resources/Fn/Properties/Events/{name}")]
    assert f"event {name} of Fn has no DeadLetterConfig" in messages(rules, text, "E9003")[0]


@pytest.mark.parametrize("event", [EVENTBRIDGE_EVENT, SCHEDULE_V2_EVENT])
def test_e9002_and_e9003_pass_a_function_event_with_a_dead_letter_config_and_an_on_failure_destination(
    rules: RulesCollection, event: str
) -> None:
    text = template(QUEUE, function(properties=event + ON_FAILURE_DESTINATION))

    assert findings(rules, text) == []


@pytest.mark.parametrize(
    "event",
    [
        "Type: EventBridgeRule\n    Properties:\n      Pattern:\n        source: [example.alerts]\n",
        "Type: ScheduleV2\n    Properties:\n      ScheduleExpression: rate(1 day)\n",
    ],
    ids=["EventBridgeRule", "ScheduleV2"],
)
def test_e9002_and_e9003_flag_a_state_machine_event_without_a_dead_letter_config(
    rules: RulesCollection, event: str
) -> None:
    text = template(state_machine("Events:\n  Start:\n    " + event))

    assert findings(rules, text) == [
        ("E9002", "Resources/Sm/Properties/Events/Start"),
        ("E9003", "Resources/Sm/Properties/Events/Start"),
    ]


def test_e9002_and_e9003_flag_a_rule_starting_a_state_machine_without_a_dead_letter_config(
    rules: RulesCollection,
) -> None:
    rule = f"""
    Rule:
      Type: AWS::Events::Rule
      Properties:
        EventPattern:
          source: [example.alerts]
        Targets:
          - Id: sm
            Arn: !Ref Sm
            RoleArn: {ROLE_ARN}
    """
    text = template(state_machine(), rule)

    assert findings(rules, text) == [
        ("E9002", "Resources/Rule/Properties/Targets/0"),
        ("E9003", "Resources/Rule/Properties/Targets/0"),
    ]


def test_e9002_passes_a_function_invoked_only_synchronously(rules: RulesCollection) -> None:
    assert findings(rules, template(function())) == []


# --- E9003: a DeadLetterConfig on every rule target and rule event --------------------------------------------


def rule_to_queue(dead_letter: str = "") -> str:
    return (
        dedent(
            """
            Rule:
              Type: AWS::Events::Rule
              Properties:
                ScheduleExpression: rate(5 minutes)
                Targets:
                  - Id: queue
                    Arn: !GetAtt Work.Arn
            """
        ).lstrip("\n")
        + indent(dedent(dead_letter).lstrip("\n"), "        ")
        + "Work:\n  Type: AWS::SQS::Queue\n"
    )


def test_e9003_flags_a_rule_target_without_a_dead_letter_config(rules: RulesCollection) -> None:
    text = template(rule_to_queue())

    assert findings(rules, text) == [("E9003", "Resources/Rule/Properties/Targets/0")]
    assert "Rule Rule target queue" in messages(rules, text, "E9003")[0]


def test_e9003_passes_a_rule_target_with_a_dead_letter_config(rules: RulesCollection) -> None:
    text = template(QUEUE, rule_to_queue("DeadLetterConfig:\n  Arn: !GetAtt Dlq.Arn\n"))

    assert findings(rules, text) == []


def test_e9003_flags_a_function_schedule_event_without_a_dead_letter_config(rules: RulesCollection) -> None:
    schedule = "Events:\n  Tick:\n    Type: Schedule\n    Properties:\n      Schedule: rate(1 hour)\n"
    text = template(QUEUE, function(properties=schedule + ON_FAILURE_DESTINATION))

    assert findings(rules, text) == [("E9003", "Resources/Fn/Properties/Events/Tick")]


def test_e9003_flags_a_scheduler_schedule_without_a_dead_letter_config(rules: RulesCollection) -> None:
    schedule = f"""
    Tick:
      Type: AWS::Scheduler::Schedule
      Properties:
        ScheduleExpression: rate(1 hour)
        FlexibleTimeWindow:
          Mode: "OFF"
        Target:
          Arn: !GetAtt Work.Arn
          RoleArn: {ROLE_ARN}
    Work:
      Type: AWS::SQS::Queue
    """
    text = template(schedule)

    assert findings(rules, text) == [("E9003", "Resources/Tick/Properties/Target")]


# --- E9004: no wildcard actions on IAM, Secrets Manager, KMS, Step Functions or everything ---------------------


def function_with_statement(statement: str) -> str:
    policy = "Policies:\n  - Version: '2012-10-17'\n    Statement:\n" + indent(dedent(statement).lstrip("\n"), "      ")
    return template(function(properties=policy))


@pytest.mark.parametrize("action", ["*", "iam:*", "secretsmanager:*", "kms:*", "states:*", "IAM:*"])
def test_e9004_flags_each_forbidden_wildcard(rules: RulesCollection, action: str) -> None:
    text = function_with_statement(f"- Effect: Allow\n  Action: ['{action}']\n  Resource: '*'\n")

    assert findings(rules, text) == [("E9004", "Resources/Fn/Properties/Policies/0/Statement/0/Action/0")]
    assert repr(action) in messages(rules, text, "E9004")[0]


def test_e9004_flags_allow_with_not_action(rules: RulesCollection) -> None:
    text = function_with_statement("- Effect: Allow\n  NotAction: iam:*\n  Resource: '*'\n")

    assert ids(rules, text) == ["E9004"]


def test_e9004_flags_an_iam_role_a_managed_policy_and_a_conditional_statement(rules: RulesCollection) -> None:
    text = (
        'AWSTemplateFormatVersion: "2010-09-09"\n'
        "Parameters:\n  Stage:\n    Type: String\n    Default: dev\n"
        "Conditions:\n  IsProd: !Equals [!Ref Stage, prod]\n"
        + "Resources:\n"
        + indent(
            dedent(
                """
                Role:
                  Type: AWS::IAM::Role
                  Properties:
                    AssumeRolePolicyDocument:
                      Version: "2012-10-17"
                      Statement:
                        - Effect: Allow
                          Principal: {Service: lambda.amazonaws.com}
                          Action: sts:AssumeRole
                    ManagedPolicyArns:
                      - arn:aws:iam::aws:policy/AdministratorAccess
                    Policies:
                      - PolicyName: inline
                        PolicyDocument:
                          Version: "2012-10-17"
                          Statement:
                            - !If
                              - IsProd
                              - Effect: Allow
                                Action: states:*
                                Resource: "*"
                              - !Ref AWS::NoValue
                Managed:
                  Type: AWS::IAM::ManagedPolicy
                  Properties:
                    PolicyDocument:
                      Version: "2012-10-17"
                      Statement:
                        - Effect: Allow
                          Action: [kms:Decrypt, kms:*]
                          Resource: "*"
                """
            ).lstrip("\n"),
            "  ",
        )
    )

    assert findings(rules, text) == [
        ("E9004", "Resources/Managed/Properties/PolicyDocument/Statement/0/Action/1"),
        ("E9004", "Resources/Role/Properties/ManagedPolicyArns/0"),
        ("E9004", "Resources/Role/Properties/Policies/0/PolicyDocument/Statement/0/Fn::If/1/Action"),
    ]


def test_e9004_passes_named_actions_denied_wildcards_and_policy_templates(rules: RulesCollection) -> None:
    policies = """
    Policies:
      - DynamoDBReadPolicy:
          TableName: ledger
      - Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Action: [iam:GetRole, s3:Get*]
            Resource: "*"
          - Effect: Deny
            Action: [iam:*, kms:*]
            Resource: "*"
    """
    text = template(function(properties=policies))

    assert findings(rules, text) == []


# --- E9005: state machine logs never include execution data ---------------------------------------------------


def sam_state_machine_logging(include_execution_data: str) -> str:
    logging = f"""
    Logging:
      Level: ALL
      IncludeExecutionData: {include_execution_data}
      Destinations:
        - CloudWatchLogsLogGroup:
            LogGroupArn: !GetAtt SmLogs.Arn
    """
    log_group = "SmLogs:\n  Type: AWS::Logs::LogGroup\n  Properties:\n    RetentionInDays: 30\n"
    return template(state_machine(logging), log_group)


def test_e9005_flags_a_sam_state_machine_logging_execution_data(rules: RulesCollection) -> None:
    text = sam_state_machine_logging("true")

    assert findings(rules, text) == [("E9005", "Resources/Sm/Properties/Logging/IncludeExecutionData")]


def test_e9005_passes_a_sam_state_machine_logging_without_execution_data(rules: RulesCollection) -> None:
    assert findings(rules, sam_state_machine_logging("false")) == []


def cfn_state_machine_logging(include_execution_data: str) -> str:
    return template(
        f"""
        Sm:
          Type: AWS::StepFunctions::StateMachine
          Properties:
            RoleArn: {ROLE_ARN}
            DefinitionString: '{{"StartAt": "Done", "States": {{"Done": {{"Type": "Succeed"}}}}}}'
            LoggingConfiguration:
              Level: ERROR
              IncludeExecutionData: {include_execution_data}
              Destinations:
                - CloudWatchLogsLogGroup:
                    LogGroupArn: !GetAtt SmLogs.Arn
        SmLogs:
          Type: AWS::Logs::LogGroup
          Properties:
            RetentionInDays: 30
        """
    )


def test_e9005_flags_a_cloudformation_state_machine_logging_execution_data(rules: RulesCollection) -> None:
    text = cfn_state_machine_logging("true")

    assert findings(rules, text) == [("E9005", "Resources/Sm/Properties/LoggingConfiguration/IncludeExecutionData")]


def test_e9005_passes_a_cloudformation_state_machine_logging_without_execution_data(rules: RulesCollection) -> None:
    assert findings(rules, cfn_state_machine_logging("false")) == []


# --- E9006: every function has its own role ------------------------------------------------------------------

EXECUTION_ROLE = """
{name}:
  Type: AWS::IAM::Role
  Properties:
    AssumeRolePolicyDocument:
      Version: "2012-10-17"
      Statement:
        - Effect: Allow
          Principal: {{Service: lambda.amazonaws.com}}
          Action: sts:AssumeRole
"""


def execution_role(name: str) -> str:
    return EXECUTION_ROLE.format(name=name)


def test_e9006_flags_two_functions_naming_the_same_role(rules: RulesCollection) -> None:
    text = template(
        execution_role("Shared"),
        function("Webhook", "Role: !GetAtt Shared.Arn\n"),
        function("Executor", "Role: !GetAtt Shared.Arn\n"),
    )

    assert findings(rules, text) == [
        ("E9006", "Resources/Executor/Properties/Role"),
        ("E9006", "Resources/Webhook/Properties/Role"),
    ]
    assert sorted(messages(rules, text, "E9006"))[0].startswith("Function Executor shares its role with Webhook")


def test_e9006_sees_one_role_through_different_spellings(rules: RulesCollection) -> None:
    # !GetAtt R.Arn, the list form of GetAtt and !Sub ${R.Arn} all name the role R
    text = template(
        execution_role("Shared"),
        function("A", "Role: !GetAtt Shared.Arn\n"),
        function("B", "Role: !Sub ${Shared.Arn}\n"),
        function("C", "Role:\n  Fn::GetAtt: [Shared, Arn]\n"),
    )

    assert ids(rules, text) == ["E9006", "E9006", "E9006"]


def test_e9006_flags_plain_lambda_functions_sharing_a_literal_role_arn(rules: RulesCollection) -> None:
    plain = """
    {name}:
      Type: AWS::Lambda::Function
      Properties:
        Runtime: python3.12
        Handler: app.handler
        Role: {role}
        Code:
          ZipFile: "def handler(event, context): return None"
    """
    text = template(
        dedent(plain.format(name="A", role=ROLE_ARN)) + log_group_for("A"),
        dedent(plain.format(name="B", role=ROLE_ARN)) + log_group_for("B"),
    )

    assert ids(rules, text) == ["E9006", "E9006"]


def test_e9006_passes_functions_with_their_own_roles_or_generated_ones(rules: RulesCollection) -> None:
    text = template(
        execution_role("WebhookRole"),
        execution_role("ExecutorRole"),
        function("Webhook", "Role: !GetAtt WebhookRole.Arn\n"),
        function("Executor", "Role: !GetAtt ExecutorRole.Arn\n"),
        function("Planner"),  # no Role: SAM generates one for it alone
        function("Closer"),
    )

    assert findings(rules, text) == []


def test_e9006_passes_template_yaml(rules: RulesCollection) -> None:
    text = (REPO_ROOT / "template.yaml").read_text()

    assert [finding for finding in findings(rules, text) if finding[0] == "E9006"] == []
