"""`rescind doctor --stack NAME` against moto and a real OpenBao: a healthy set-up passes every check, and each
prerequisite taken away makes its check fail or warn, with its fix.

The stack is template.yaml deployed onto moto by `rescind_local.stack` (the local stack's deployment), then
registered with moto's CloudFormation under a stack name: a stack whose resources are those same rules, queues,
state machines and functions, so the doctor finds them as on AWS, with ListStackResources.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
import hvac
import pytest
from typer.testing import CliRunner, Result

from rescind_cli.main import app
from rescind_local import LocalOpenBao, local_aws
from rescind_local.stack import LocalStack, deploy_template_to_moto

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

CHECKS = {"vault", "rules", "cloudtrail", "guardduty", "autoscaling-hooks", "health", "queues", "executions"}
TRAIL_BUCKET = "doctor-trail-logs"


def register_stack(stack: LocalStack, name: str, region: str | None = None) -> None:
    """A CloudFormation stack in moto made of the local stack's own resources (moto's CloudFormation puts a rule,
    queue or state machine that already exists again, keeping its targets; a function is put again with the
    same configuration). In another region, the same resources are created anew there (the targets left out).

    (The local stack itself deploys in us-east-1 only: it creates its buckets with no location constraint.)
    """
    lambda_client = boto3.client("lambda", region_name=stack.region)
    sfn = boto3.client("stepfunctions", region_name=stack.region)
    resources: dict[str, Any] = {}
    if region not in (None, stack.region):
        for logical_id, resource in stack.resources.items():
            if resource.resource_type == "AWS::Events::EventBus":
                resources[logical_id] = {"Type": "AWS::Events::EventBus", "Properties": {"Name": resource.ref}}
    for rule in stack.rules:
        props: dict[str, Any] = {"Name": rule.name, "State": rule.state}
        if rule.event_bus_name != "default":
            props["EventBusName"] = rule.event_bus_name
        if rule.event_pattern is not None:
            props["EventPattern"] = rule.event_pattern
        if rule.schedule_expression:
            props["ScheduleExpression"] = rule.schedule_expression
        resources[rule.logical_id] = {"Type": "AWS::Events::Rule", "Properties": props}
    for logical_id, resource in stack.resources.items():
        if resource.resource_type == "AWS::SQS::Queue":
            queue = {"QueueName": resource.attributes["QueueName"]}
            resources[logical_id] = {"Type": "AWS::SQS::Queue", "Properties": queue}
    for logical_id, arn in stack.state_machines.items():
        described = sfn.describe_state_machine(stateMachineArn=arn)
        machine = {
            "StateMachineName": described["name"],
            "DefinitionString": described["definition"],
            "RoleArn": described["roleArn"],
        }
        resources[logical_id] = {"Type": "AWS::StepFunctions::StateMachine", "Properties": machine}
    for logical_id, spec in stack.functions.items():
        configuration = lambda_client.get_function_configuration(FunctionName=spec.function_name)
        function = {
            "FunctionName": spec.function_name,
            "Role": configuration["Role"],
            "Handler": configuration["Handler"],
            "Runtime": configuration["Runtime"],
            "Code": {"ZipFile": "# the local stack runs the handler in-process"},
            "Environment": {"Variables": configuration["Environment"]["Variables"]},
        }
        resources[logical_id] = {"Type": "AWS::Lambda::Function", "Properties": function}
    outputs = {
        "LedgerTableName": stack.physical_id("LedgerTable"),
        "InventoryTableName": stack.physical_id("InventoryTable"),
        "ManualRevocationStateMachineArn": stack.state_machine_arn("ManualRevocationStateMachine"),
        "OffboardingStateMachineArn": stack.state_machine_arn("OffboardingStateMachine"),
    }
    template = {"Resources": resources, "Outputs": {key: {"Value": value} for key, value in outputs.items()}}
    cloudformation = boto3.client("cloudformation", region_name=region or stack.region)
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))


@dataclass
class Account:
    """The account as the tests shape it: the stack (registered in `region`), and the operator's Vault token."""

    stack: LocalStack
    name: str
    token: str
    openbao: LocalOpenBao
    region: str = "us-east-1"

    def client(self, service: str, region: str | None = None) -> Any:
        return boto3.client(service, region_name=region or self.region)

    def doctor(self, *arguments: str, env: Mapping[str, str | None] | None = None) -> Result:
        environment = {
            "VAULT_TOKEN": self.token,
            "VAULT_ADDR": None,
            "VAULT_NAMESPACE": None,
            "AWS_PROFILE": None,
            "RESCIND_STACK": None,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            **(env or {}),
        }
        result = CliRunner().invoke(app, ["doctor", "--stack", self.name, *arguments], env=environment)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result

    def report(self, *arguments: str, env: Mapping[str, str | None] | None = None) -> tuple[int, dict[str, Any]]:
        result = self.doctor(*arguments, "--json", env=env)
        return result.exit_code, json.loads(result.stdout)

    def rule_matching(self, source: str) -> Any:
        """The stack's rule for a source, found by its pattern (SAM may name the rules it generates)."""
        return next(rule for rule in self.stack.rules if source in (rule.event_pattern or {}).get("source", []))


def findings(document: dict[str, Any], check: str) -> list[dict[str, str]]:
    return [finding for finding in document["checks"] if finding["check"] == check]


def outcomes(document: dict[str, Any], check: str) -> list[str]:
    return [finding["outcome"] for finding in findings(document, check)]


def make_healthy(account: Account, region: str | None = None) -> None:
    """Every prerequisite in place: a logging multi-region trail, an enabled GuardDuty detector, an Auto Scaling
    group with a termination hook."""
    region = region or account.region
    s3 = account.client("s3", region)
    if region == "us-east-1":
        s3.create_bucket(Bucket=TRAIL_BUCKET)
    else:
        s3.create_bucket(Bucket=TRAIL_BUCKET, CreateBucketConfiguration={"LocationConstraint": region})
    cloudtrail = account.client("cloudtrail", region)
    cloudtrail.create_trail(Name="management", S3BucketName=TRAIL_BUCKET, IsMultiRegionTrail=True)
    cloudtrail.start_logging(Name="management")
    account.client("guardduty", region).create_detector(Enable=True)
    add_group(account, "web", hook=True, region=region)


def add_group(account: Account, name: str, *, hook: bool, region: str | None = None) -> None:
    autoscaling = account.client("autoscaling", region)
    autoscaling.create_launch_configuration(
        LaunchConfigurationName=f"{name}-launch", ImageId="ami-12c6146b", InstanceType="t3.micro"
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchConfigurationName=f"{name}-launch",
        MinSize=0,
        MaxSize=1,
        DesiredCapacity=0,
        AvailabilityZones=[f"{region or account.region}a"],
    )
    if hook:
        autoscaling.put_lifecycle_hook(
            AutoScalingGroupName=name,
            LifecycleHookName="rescind-offboard",
            LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING",
            HeartbeatTimeout=30,
            DefaultResult="CONTINUE",
        )


def responder_token(openbao: LocalOpenBao) -> str:
    root = hvac.Client(url=openbao.addr, token=openbao.root_token, timeout=10)
    root.sys.create_or_update_policy("rescind-responder", 'path "auth/token/lookup-self" { capabilities = ["read"] }')
    created = root.auth.token.create(policies=["rescind-responder"], ttl="1h")
    return str(created["auth"]["client_token"])


def deployed(openbao: LocalOpenBao, region: str) -> Iterator[Account]:
    with (
        local_aws(),
        deploy_template_to_moto(
            parameters={"VaultAddr": openbao.addr, "VaultAwsAuthRole": "rescind"}, time_scale=0.01
        ) as stack,
    ):
        name = f"rescind-doctor-{uuid.uuid4().hex[:6]}"
        register_stack(stack, name, region)
        yield Account(stack, name, responder_token(openbao), openbao, region)


@pytest.fixture
def account(openbao: LocalOpenBao) -> Iterator[Account]:
    """The stack in us-east-1, with no prerequisite in place yet."""
    yield from deployed(openbao, "us-east-1")


@pytest.fixture
def healthy(account: Account) -> Account:
    make_healthy(account)
    return account


# --- a healthy set-up ------------------------------------------------------------------------------------


def test_a_healthy_set_up_passes_every_check(healthy: Account) -> None:
    code, document = healthy.report()

    assert code == 0, document["checks"]
    assert document["ok"] is True
    assert {finding["check"] for finding in document["checks"]} == CHECKS
    assert {finding["outcome"] for finding in document["checks"]} == {"ok"}, document["checks"]
    assert document["counts"] == {"ok": len(document["checks"]), "warn": 0, "fail": 0}
    vault = findings(document, "vault")[0]
    assert healthy.openbao.addr in vault["message"]
    assert "rescind-responder" in vault["message"]
    assert f"{len(healthy.stack.rules)} rules enabled" in findings(document, "rules")[0]["message"]
    queues = [item for item in healthy.stack.resources.values() if item.resource_type == "AWS::SQS::Queue"]
    assert f"{len(queues)} dead-letter and failure queues empty" in findings(document, "queues")[0]["message"]
    # The token is read, never shown
    assert healthy.token not in json.dumps(document)

    human = healthy.doctor()
    assert human.exit_code == 0
    lines = human.stdout.splitlines()
    assert len(lines) == len(CHECKS)
    assert all(line.startswith("ok ") for line in lines), human.stdout
    assert "0 failed, 0 warning(s)" in human.stderr


# --- each prerequisite taken away -------------------------------------------------------------------------


def test_no_trail_fails_the_cloudtrail_check_with_its_fix(account: Account) -> None:
    account.client("guardduty").create_detector(Enable=True)

    code, document = account.report()

    assert code == 1
    assert document["ok"] is False
    [cloudtrail] = findings(document, "cloudtrail")
    assert cloudtrail["outcome"] == "fail"
    assert "no trail covers us-east-1" in cloudtrail["message"]
    assert f"{account.rule_matching('aws.lambda').logical_id} never fires" in cloudtrail["message"]
    assert "create-trail" in cloudtrail["fix"]
    assert "start-logging" in cloudtrail["fix"]
    # The rest is unaffected: GuardDuty is on, there is no group to hook
    assert outcomes(document, "guardduty") == ["ok"]
    assert outcomes(document, "autoscaling-hooks") == ["ok"]


def test_a_trail_that_is_not_logging_fails(healthy: Account) -> None:
    healthy.client("cloudtrail").stop_logging(Name="management")

    code, document = healthy.report()

    assert code == 1
    [cloudtrail] = findings(document, "cloudtrail")
    assert cloudtrail["outcome"] == "fail"
    assert "trail management is not logging" in cloudtrail["message"]

    human = healthy.doctor()
    assert human.exit_code == 1
    assert any(line.startswith("fail cloudtrail") for line in human.stdout.splitlines()), human.stdout
    assert "fix: " in human.stdout


def test_a_trail_recording_only_read_events_fails(healthy: Account) -> None:
    healthy.client("cloudtrail").put_event_selectors(
        TrailName="management",
        EventSelectors=[{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}],
    )

    code, document = healthy.report()

    assert code == 1
    [cloudtrail] = findings(document, "cloudtrail")
    assert cloudtrail["outcome"] == "fail"
    assert "records no write management events of lambda.amazonaws.com" in cloudtrail["message"]


def test_a_disabled_rule_fails_with_the_command_that_enables_it(healthy: Account) -> None:
    lambda_rule = healthy.rule_matching("aws.lambda")
    leak_rule = healthy.rule_matching("rescind")  # on the stack's own trigger bus
    events = healthy.client("events")
    events.disable_rule(Name=lambda_rule.name)
    events.disable_rule(Name=leak_rule.name, EventBusName=leak_rule.event_bus_name)

    code, document = healthy.report()

    assert code == 1
    rules = findings(document, "rules")
    assert [finding["outcome"] for finding in rules] == ["fail", "fail"]
    fixes = {finding["fix"] for finding in rules}
    assert f"aws events enable-rule --name {lambda_rule.name}" in fixes
    assert f"aws events enable-rule --name {leak_rule.name} --event-bus-name {leak_rule.event_bus_name}" in fixes
    assert all("DISABLED" in finding["message"] for finding in rules)


def test_a_message_in_a_dead_letter_queue_fails_and_is_never_read(healthy: Account) -> None:
    queue_url = healthy.stack.physical_id("LeakEventsDeadLetterQueue")
    body = json.dumps({"detail-type": "Secret Leaked", "detail": {"secret": "hvs.doctor-must-not-print-this"}})
    healthy.client("sqs").send_message(QueueUrl=queue_url, MessageBody=body)

    code, document = healthy.report()

    assert code == 1
    [queues] = findings(document, "queues")
    assert queues["outcome"] == "fail"
    assert "LeakEventsDeadLetterQueue holds 1 message(s)" in queues["message"]
    assert queue_url in queues["fix"]
    assert "hvs.doctor-must-not-print-this" not in json.dumps(document)
    # Counting does not take the message: it is still there, visible
    attributes = healthy.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "1"


def test_no_guardduty_detector_fails_and_a_disabled_one_too(account: Account) -> None:
    code, document = account.report()

    assert code == 1
    [guardduty] = findings(document, "guardduty")
    assert guardduty["outcome"] == "fail"
    assert "no detector" in guardduty["message"]
    assert f"{account.rule_matching('aws.guardduty').logical_id} never fires" in guardduty["message"]
    assert guardduty["fix"].startswith("aws guardduty create-detector --enable")

    detector = account.client("guardduty").create_detector(Enable=False)["DetectorId"]
    [guardduty] = findings(account.report()[1], "guardduty")
    assert guardduty["outcome"] == "fail"
    assert f"aws guardduty update-detector --detector-id {detector} --enable" == guardduty["fix"]


def test_an_auto_scaling_group_without_a_hook_warns_for_that_group(healthy: Account) -> None:
    add_group(healthy, "batch", hook=False)
    add_group(healthy, "workers", hook=False)

    code, document = healthy.report()

    assert code == 0, document  # a warning, not a failure
    hooks = findings(document, "autoscaling-hooks")
    assert [finding["outcome"] for finding in hooks] == ["warn", "warn"]
    assert ["batch" in hooks[0]["message"], "workers" in hooks[1]["message"]] == [True, True]
    assert "--auto-scaling-group-name batch" in hooks[0]["fix"]
    assert "autoscaling:EC2_INSTANCE_TERMINATING" in hooks[0]["fix"]
    assert "web" not in " ".join(finding["message"] for finding in hooks)


def test_a_wrong_vault_token_fails_and_is_never_shown(healthy: Account) -> None:
    code, document = healthy.report(env={"VAULT_TOKEN": "s.not-a-real-token-doctor"})

    assert code == 1
    [vault] = findings(document, "vault")
    assert vault["outcome"] == "fail"
    assert "refuses the token" in vault["message"]
    assert "login" in vault["fix"]
    assert "not-a-real-token-doctor" not in healthy.doctor(env={"VAULT_TOKEN": "s.not-a-real-token-doctor"}).output


def test_a_token_without_rescinds_policy_warns(healthy: Account) -> None:
    code, document = healthy.report(env={"VAULT_TOKEN": healthy.openbao.root_token})

    assert code == 0
    [vault] = findings(document, "vault")
    assert vault["outcome"] == "warn"
    assert "policies root" in vault["message"]
    assert "names checked by prefix" in vault["message"]
    assert "rescind-* policy" in vault["fix"]


def test_an_unreachable_vault_fails(healthy: Account) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"

    code, document = healthy.report("--vault-addr", closed)

    assert code == 1
    [vault] = findings(document, "vault")
    assert vault["outcome"] == "fail"
    assert f"Vault at {closed} (from --vault-addr) is unreachable" in vault["message"]


def test_a_failed_execution_warns(healthy: Account) -> None:
    sfn = healthy.client("stepfunctions")
    machine = healthy.stack.state_machine_arn("ManualRevocationStateMachine")
    described = healthy.stack.run_execution("ManualRevocationStateMachine", {"not": "a manual revocation"})
    assert described["status"] == "FAILED", described  # the input is refused by the first task, uncaught

    code, document = healthy.report()

    assert code == 0
    [executions] = findings(document, "executions")
    assert executions["outcome"] == "warn"
    assert "ManualRevocationStateMachine: 1 failed or timed out since 7d" in executions["message"]
    assert f"rescind status {described['name']}" in executions["fix"]
    assert sfn.list_executions(stateMachineArn=machine)["executions"]  # read, nothing removed


# --- Health and other regions -----------------------------------------------------------------------------


@pytest.fixture
def elsewhere(openbao: LocalOpenBao) -> Iterator[Account]:
    """The stack's resources registered as a stack in eu-west-1, every prerequisite there in place."""
    for account in deployed(openbao, "eu-west-1"):
        make_healthy(account)
        yield account


def test_a_stack_outside_us_east_1_warns_about_health_until_a_rule_forwards_it(elsewhere: Account) -> None:
    code, document = elsewhere.report()

    assert code == 0
    [health] = findings(document, "health")
    assert health["outcome"] == "warn", document["checks"]
    assert "global events (AWS_RISK_CREDENTIALS_EXPOSED for an IAM key) in us-east-1" in health["message"]
    bus = "arn:aws:events:eu-west-1:123456789012:event-bus/default"
    assert f"CentralEventBusArn={bus}" in health["fix"]

    # When a rule in us-east-1 forwards aws.health to the stack's bus
    events = elsewhere.client("events", "us-east-1")
    events.put_rule(Name="forward-health", EventPattern=json.dumps({"source": ["aws.health"]}), State="ENABLED")
    events.put_targets(Rule="forward-health", Targets=[{"Id": "central", "Arn": bus}])

    code, document = elsewhere.report()
    assert code == 0
    assert outcomes(document, "health") == ["ok"]


def test_another_region_is_checked_for_forwarding_and_its_own_prerequisites(healthy: Account) -> None:
    code, document = healthy.report("--regions", "us-west-2")

    assert code == 1  # no GuardDuty detector in us-west-2
    [forwarding] = findings(document, "forwarding")
    assert forwarding["outcome"] == "warn"
    assert forwarding["region"] == "us-west-2"
    assert "aws.autoscaling, aws.ec2, aws.ecs, aws.guardduty, aws.lambda" in forwarding["message"]
    west = [finding for finding in document["checks"] if finding["region"] == "us-west-2"]
    assert {finding["check"]: finding["outcome"] for finding in west} == {
        "forwarding": "warn",
        "cloudtrail": "ok",  # the multi-region trail covers it
        "guardduty": "fail",
        "autoscaling-hooks": "ok",
    }


# --- bad input ---------------------------------------------------------------------------------------------


def test_no_stack_is_one_line_and_exit_2(account: Account) -> None:
    result = CliRunner().invoke(app, ["doctor"], env={"RESCIND_STACK": None})
    assert result.exit_code == 2
    assert "give --stack NAME" in result.stderr
    assert "Traceback" not in result.output

    missing = CliRunner().invoke(app, ["doctor", "--stack", "no-such-stack"], env={"AWS_PROFILE": None})
    assert missing.exit_code == 2
    assert "stack 'no-such-stack' does not exist" in missing.stderr
