"""The local stack deploys a template onto moto: resources under local names, intrinsics resolved, functions
in-process, state machines from their ASL files with substitutions, rules from the template's patterns."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from rescind_local.lambdas import function_environment, load_handler, resolve_handler_file, runtime_environment
from rescind_local.stack import (
    FUNCTION_TYPES,
    STATE_MACHINE_TYPES,
    IntrinsicResolver,
    LocalStack,
    UnresolvableIntrinsic,
    deploy_template_to_moto,
    iter_template_resources,
    plan_local_resources,
    state_machine_definition,
)
from rescind_local.stepfunctions import check_asl_next_targets, find_distributed_maps, wait_for_execution
from rescind_local.template import REPO_ROOT, TEMPLATE_PATH, load_template
from tests.integration.local_stack import write_function

MINI_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  VaultAddr:
    Type: String
    Default: http://127.0.0.1:8200
  Required:
    Type: String
Globals:
  Function:
    Runtime: python3.12
    Timeout: 10
    Handler: app.lambda_handler
    Environment:
      Variables:
        LEDGER_TABLE_NAME: !Ref Ledger
        VAULT_ADDR: !Ref VaultAddr
        SHARED: from-globals
Resources:
  Ledger:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      BillingMode: PAY_PER_REQUEST
  Topic:
    Type: AWS::SNS::Topic
  DeadLetters:
    Type: AWS::SQS::Queue
  PlanFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/plan/
      Environment:
        Variables:
          SHARED: from-function
          TOPIC_ARN: !Ref Topic
          DLQ_ARN: !GetAtt DeadLetters.Arn
          LABEL: !Sub "${AWS::StackName}-plan-${Ledger}"
  ActFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/act/
  Flow:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: statemachines/flow.asl.json
      DefinitionSubstitutions:
        PlanFunctionArn: !GetAtt PlanFunction.Arn
        ActFunctionArn: !GetAtt ActFunction.Arn
        LedgerTable: !Ref Ledger
      Events:
        Leak:
          Type: EventBridgeRule
          Properties:
            Pattern:
              source: [aws.guardduty]
              detail:
                severity: [{numeric: [">=", 7]}]
            InputPath: $.detail
"""

PLAN = """
    import os

    def lambda_handler(event, context):
        names = ("LEDGER_TABLE_NAME", "VAULT_ADDR", "SHARED", "TOPIC_ARN", "DLQ_ARN", "LABEL", "LOCAL_ONLY")
        return {"key": event["key"], "environment": {name: os.environ.get(name) for name in names}}
"""

ACT = """
    import os

    import boto3


    class VaultUnavailable(Exception):
        pass


    def lambda_handler(event, context):
        table = boto3.resource("dynamodb").Table(os.environ["LEDGER_TABLE_NAME"])
        seen = table.get_item(Key={"pk": "attempts"}).get("Item", {}).get("n", 0)
        table.put_item(Item={"pk": "attempts", "n": seen + 1})
        if seen == 0:
            raise VaultUnavailable("first attempt fails")
        return {"acted_on": event["key"]}
"""

FLOW = {
    "StartAt": "Plan",
    "States": {
        "Plan": {"Type": "Task", "Resource": "${PlanFunctionArn}", "ResultPath": "$.plan", "Next": "Act"},
        "Act": {
            "Type": "Task",
            "Resource": "${ActFunctionArn}",
            "Parameters": {"key.$": "$.plan.key"},
            "ResultPath": "$.act",
            "Retry": [{"ErrorEquals": ["VaultUnavailable"], "IntervalSeconds": 5, "MaxAttempts": 2}],
            "Next": "Record",
        },
        "Record": {
            "Type": "Task",
            "Resource": "arn:aws:states:::dynamodb:putItem",
            "Parameters": {
                "TableName": "${LedgerTable}",
                "Item": {"pk": {"S": "done"}, "key": {"S.$": "$.act.acted_on"}},
            },
            "ResultPath": None,
            "End": True,
        },
    },
}


@pytest.fixture
def mini(aws: None, tmp_path: Path) -> Iterator[LocalStack]:
    (tmp_path / "template.yaml").write_text(textwrap.dedent(MINI_TEMPLATE))
    write_function(tmp_path / "functions", "plan", PLAN)
    write_function(tmp_path / "functions", "act", ACT)
    (tmp_path / "statemachines").mkdir()
    (tmp_path / "statemachines" / "flow.asl.json").write_text(json.dumps(FLOW))
    with deploy_template_to_moto(
        load_template(tmp_path / "template.yaml"),
        stack_name="mini",
        base_dir=tmp_path,
        parameters={"Required": "given"},
        function_environment={"LOCAL_ONLY": "yes"},
        time_scale=0.01,
    ) as stack:
        yield stack


def test_an_event_goes_through_the_templates_rule_state_machine_and_handlers(mini: LocalStack) -> None:
    event = {
        "version": "0",
        "id": "e1",
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "account": "123456789012",
        "time": "2026-11-24T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"severity": 8, "key": "AKIAEXAMPLE"},
    }

    (match,) = mini.route_event(event)
    (delivery,) = match.deliveries
    assert delivery.execution_arn is not None
    described = wait_for_execution(boto3.client("stepfunctions"), delivery.execution_arn)

    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["act"] == {"acted_on": "AKIAEXAMPLE"}  # retried once on VaultUnavailable
    ledger = boto3.resource("dynamodb").Table(mini.physical_id("Ledger"))
    assert ledger.get_item(Key={"pk": "done"})["Item"]["key"] == "AKIAEXAMPLE"
    assert ledger.get_item(Key={"pk": "attempts"})["Item"]["n"] == 2
    assert mini.route_event({**event, "detail": {"severity": 2, "key": "AKIALOW"}}) == []


def test_function_environment_is_globals_merged_with_the_functions_own_resolved_locally(mini: LocalStack) -> None:
    payload, error = mini.invoke("PlanFunction", {"key": "k"})

    assert error is None
    assert payload["environment"] == {
        "LEDGER_TABLE_NAME": "mini-Ledger",
        "VAULT_ADDR": "http://127.0.0.1:8200",
        "SHARED": "from-function",
        "TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:mini-Topic",
        "DLQ_ARN": "arn:aws:sqs:us-east-1:123456789012:mini-DeadLetters",
        "LABEL": "mini-plan-mini-Ledger",
        "LOCAL_ONLY": "yes",
    }
    assert mini.physical_id("Ledger") in boto3.client("dynamodb").list_tables()["TableNames"]
    assert boto3.client("sqs").get_queue_url(QueueName="mini-DeadLetters")["QueueUrl"] == mini.physical_id(
        "DeadLetters"
    )


def test_the_state_machine_is_created_from_its_asl_file_with_substitutions(mini: LocalStack) -> None:
    deployed = boto3.client("stepfunctions").describe_state_machine(stateMachineArn=mini.state_machine_arn("Flow"))

    definition = json.loads(deployed["definition"])
    assert definition["States"]["Plan"]["Resource"] == mini.functions["PlanFunction"].function_arn()
    assert definition["States"]["Record"]["Parameters"]["TableName"] == "mini-Ledger"


def test_put_events_reaches_the_templates_rule_too(mini: LocalStack) -> None:
    boto3.client("events").put_events(
        Entries=[
            {
                "Source": "aws.guardduty",
                "DetailType": "GuardDuty Finding",
                "Detail": json.dumps({"severity": 9, "key": "AKIAPUT"}),
            }
        ]
    )

    (delivery,) = mini.deliveries.for_rule(mini.rule("FlowLeak").name)
    assert json.loads(delivery.input) == {"severity": 9, "key": "AKIAPUT"}
    assert delivery.execution_arn is not None
    assert wait_for_execution(boto3.client("stepfunctions"), delivery.execution_arn)["status"] == "SUCCEEDED"


def test_the_resolver_names_what_it_cannot_resolve() -> None:
    template = load_template_text(MINI_TEMPLATE)
    resolver = IntrinsicResolver(template, {}, "mini")

    with pytest.raises(UnresolvableIntrinsic, match="'Required', which has no Default"):
        resolver.resolve({"Ref": "Required"})
    with pytest.raises(UnresolvableIntrinsic, match="Fn::GetAZs"):
        resolver.resolve({"Fn::GetAZs": ""})
    assert resolver.resolve({"Fn::Sub": "${AWS::Region}/${!Literal}"}) == "us-east-1/${Literal}"


def load_template_text(text: str) -> dict[str, Any]:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "template.yaml"
        path.write_text(textwrap.dedent(text))
        return load_template(path)


# --- the real template.yaml -----------------------------------------------------------------------------------

REAL_PARAMETERS = {"VaultAddr": "http://127.0.0.1:8200", "VaultAwsAuthRole": "rescind-local"}


def _real_template() -> dict[str, Any]:
    assert TEMPLATE_PATH.exists(), f"{TEMPLATE_PATH} is missing: the local stack has no template to deploy"
    return load_template()


def _resources(types: frozenset[str], what: str) -> list[tuple[str, dict[str, Any]]]:
    """The template's resources of these types; none at all is a broken template, not a reason to skip."""
    found = list(iter_template_resources(_real_template(), types))
    assert found, f"template.yaml declares no {what} (types {sorted(types)}): the checks below would prove nothing"
    return found


def test_every_function_of_the_template_cold_starts_from_its_own_folder_with_the_templates_environment(
    aws: None,
) -> None:
    functions = _resources(FUNCTION_TYPES, "function")
    with deploy_template_to_moto(parameters=REAL_PARAMETERS) as stack:
        assert set(stack.functions) == {logical_id for logical_id, _resource in functions}
        for spec in stack.functions.values():
            resolve_handler_file(spec.code_dir, spec.handler)
            # the module-level code (e.g. settings validated at cold start) runs with the function's variables
            with function_environment({**runtime_environment(spec), **spec.environment}):
                load_handler(spec.code_dir, spec.handler)


def test_every_state_machine_of_the_template_has_no_dangling_transition_and_bounded_distributed_maps() -> None:
    machines = _resources(STATE_MACHINE_TYPES, "state machine")
    template = _real_template()
    planned = plan_local_resources(template, "rescind-local", parameters=REAL_PARAMETERS)
    resolver = IntrinsicResolver(template, planned, "rescind-local", parameters=REAL_PARAMETERS)
    for logical_id, _resource in machines:
        definition = state_machine_definition(template, logical_id, resolver, REPO_ROOT)
        assert check_asl_next_targets(definition) == [], logical_id
        # Contain, Revoke and Verify read the plan from S3 and write their results there; the local stack patches
        # moto so that their failures and results behave as on AWS (rescind_local.distributed_map).
        assert find_distributed_maps(definition) == ["Contain", "Revoke", "Verify"], logical_id
        for name in ("Contain", "Revoke", "Verify"):
            state = definition["States"][name]
            assert {"ItemReader", "ToleratedFailurePercentage", "ResultWriter", "Catch"} <= state.keys(), name


def test_every_rule_of_the_template_is_deployed_on_moto_with_its_own_pattern(aws: None) -> None:
    _real_template()
    with deploy_template_to_moto(parameters=REAL_PARAMETERS) as stack:
        assert stack.rules, "template.yaml deployed no EventBridge rule: the check below would prove nothing"
        events = boto3.client("events")
        for rule in stack.rules:
            described = events.describe_rule(Name=rule.name, EventBusName=rule.event_bus_name)
            if rule.event_pattern is not None:
                assert json.loads(described["EventPattern"]) == rule.event_pattern
            targets = events.list_targets_by_rule(Rule=rule.name, EventBusName=rule.event_bus_name)["Targets"]
            assert {target["Arn"] for target in targets} == {target.arn for target in rule.targets}
