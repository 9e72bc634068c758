"""`rescind doctor --stack NAME`: is this account ready for the deployed stack? Reads only; writes nothing.

Each check prints one line, `ok`, `warn` or `fail`, and for anything but ok the fix; `--json` prints one
document. Exit codes: 0 no check failed (warnings allowed), 1 a check failed, 2 bad input (no such stack).

- vault: sys/health, and auth/token/lookup-self with the operator's token (fail);
- rules: the stack's `AWS::Events::Rule` resources are enabled, events:DescribeRule (fail);
- cloudtrail: when a rule matches `AWS API Call via CloudTrail`, a trail covering the region logs write
  management events (fail);
- guardduty: when a rule matches aws.guardduty, an enabled detector in the region (fail);
- autoscaling-hooks: when a rule matches the terminate lifecycle action, each Auto Scaling group has a
  termination lifecycle hook (warn per group);
- health: when a rule matches aws.health, the stack is in us-east-1 or a rule there forwards aws.health (warn);
- queues: the stack's `AWS::SQS::Queue` resources hold no message (fail);
- executions: the state machines' FAILED and TIMED_OUT executions since --since (warn);
- forwarding: in each `--regions` region, rules forwarding the stack's sources to it (warn), and the
  cloudtrail, guardduty and autoscaling-hooks checks there.

Rules are found by resource type in the stack, never by logical id (SAM names the rules it generates from a
function's `Events`), and what each one needs by its event pattern. A check that AWS refuses (AccessDenied)
or that the endpoint does not implement says "could not check" as a warning, never ok.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from rescind_cli.options import JsonOption, ProfileOption, StackOption
from rescind_cli.runs.boundary import EXIT_FAILED, EXIT_OK, CommandFailed, command_boundary, emit, one_line, say
from rescind_cli.runs.commands_ledger import parse_since
from rescind_cli.targets import STACK_ENV, Target

if TYPE_CHECKING:
    from rescind_cli.targets import DeployedStackTarget

OK, WARN, FAIL = "ok", "warn", "fail"
HEALTH_GLOBAL_REGION = "us-east-1"
CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
TERMINATE_LIFECYCLE_DETAIL_TYPE = "EC2 Instance-terminate Lifecycle Action"
TERMINATING_TRANSITION = "autoscaling:EC2_INSTANCE_TERMINATING"
FAILED_STATUSES = ("FAILED", "TIMED_OUT")


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's answer."""

    check: str
    outcome: str  # ok | warn | fail
    message: str
    fix: str = ""
    region: str = ""

    def document(self) -> dict[str, str]:
        return {
            "check": self.check,
            "outcome": self.outcome,
            "message": self.message,
            "fix": self.fix,
            "region": self.region,
        }


@dataclass(frozen=True)
class StackResource:
    logical_id: str
    resource_type: str
    physical_id: str


@dataclass(frozen=True)
class DeployedRule:
    """One of the stack's EventBridge rules as EventBridge holds it."""

    logical_id: str
    name: str
    bus: str
    state: str
    pattern: dict[str, Any]

    def field_values(self, name: str) -> set[str]:
        values = self.pattern.get(name) or []
        return {value for value in values if isinstance(value, str)}

    def matches(self, source: str, detail_type: str | None = None) -> bool:
        if source not in self.field_values("source"):
            return False
        return detail_type is None or detail_type in self.field_values("detail-type")


class RulesUnknown(Exception):
    """The stack's rules could not be read: no check can tell what they need, nor say "not needed"."""


@dataclass
class Account:
    """The stack and the account as the doctor reads them: clients per region, the stack's resources and rules."""

    target: DeployedStackTarget
    profile: str | None
    resources: list[StackResource]
    rules: list[DeployedRule] | None = None  # None until read: a check that needs them cannot say "not needed"
    _identity: dict[str, str] = field(default_factory=dict)
    _sessions: dict[str, Any] = field(default_factory=dict)

    @property
    def region(self) -> str:
        return str(self.target.client("cloudformation").meta.region_name)

    def client(self, service: str, region: str | None = None) -> Any:
        if region is None or region == self.region:
            return self.target.client(service)
        if region not in self._sessions:
            import boto3

            self._sessions[region] = boto3.Session(profile_name=self.profile, region_name=region)
        return self._sessions[region].client(service)

    @property
    def stack_rules(self) -> list[DeployedRule]:
        if self.rules is None:
            raise RulesUnknown("could not check: the stack's rules could not be read (see the rules check)")
        return self.rules

    def of_type(self, resource_type: str) -> list[StackResource]:
        return [item for item in self.resources if item.resource_type == resource_type]

    def default_bus_arn(self, region: str | None = None) -> str:
        if not self._identity:
            self._identity = dict(self.client("sts").get_caller_identity())
        partition = str(self._identity["Arn"]).split(":")[1]
        return f"arn:{partition}:events:{region or self.region}:{self._identity['Account']}:event-bus/default"


# --- reading the stack -----------------------------------------------------------------------------------


def stack_resources(cloudformation: Any, stack_name: str) -> list[StackResource]:
    """Every resource of the stack (ListStackResources pages; DescribeStackResources stops at 100)."""
    found = []
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for item in page.get("StackResourceSummaries", []):
            found.append(
                StackResource(
                    item["LogicalResourceId"], item["ResourceType"], str(item.get("PhysicalResourceId") or "")
                )
            )
    return found


def read_rules(account: Account) -> list[DeployedRule]:
    """The stack's rules, each looked up on its bus. A rule's physical id is `bus|name` on a custom bus, else its
    name (older stacks give the name alone for a custom bus too: then the default bus, the stack's buses and the
    account's other buses are tried in turn)."""
    events = account.client("events")
    stack_buses = [bus.physical_id for bus in account.of_type("AWS::Events::EventBus") if bus.physical_id]

    def every_bus() -> Iterator[str]:
        tried = ["default", *stack_buses]
        yield from tried
        request: dict[str, str] = {}
        while True:  # ListEventBuses has no paginator
            page = events.list_event_buses(**request)
            yield from (bus["Name"] for bus in page.get("EventBuses", []) if bus["Name"] not in tried)
            if not page.get("NextToken"):
                return
            request["NextToken"] = page["NextToken"]

    rules = []
    for resource in account.of_type("AWS::Events::Rule"):
        bus, _, name = resource.physical_id.rpartition("|")
        described = None
        for candidate in [bus] if bus else every_bus():
            try:
                described = events.describe_rule(Name=name, EventBusName=candidate)
                break
            except events.exceptions.ResourceNotFoundException:
                continue
        if described is None:
            rules.append(DeployedRule(resource.logical_id, name, bus or "default", "MISSING", {}))
            continue
        pattern = json.loads(described["EventPattern"]) if described.get("EventPattern") else {}
        rules.append(
            DeployedRule(
                resource.logical_id, name, str(described.get("EventBusName") or "default"), described["State"], pattern
            )
        )
    return rules


# --- the checks ----------------------------------------------------------------------------------------


def check_rules(account: Account) -> Iterator[Finding]:
    if not account.stack_rules:
        yield Finding("rules", FAIL, "the stack has no EventBridge rules", "redeploy the stack: `sam deploy`")
        return
    missing = [rule for rule in account.stack_rules if rule.state == "MISSING"]
    disabled = [rule for rule in account.stack_rules if rule.state == "DISABLED"]
    for rule in missing:
        yield Finding(
            "rules",
            FAIL,
            f"rule {rule.logical_id} ({rule.name}) is not in EventBridge",
            "redeploy the stack: `sam deploy`",
        )
    for rule in disabled:
        bus = "" if rule.bus == "default" else f" --event-bus-name {rule.bus}"
        yield Finding(
            "rules",
            FAIL,
            f"rule {rule.logical_id} ({rule.name}) is DISABLED: its events start nothing",
            f"aws events enable-rule --name {rule.name}{bus}",
        )
    if not missing and not disabled:
        yield Finding("rules", OK, f"{len(account.stack_rules)} rules enabled")


def check_cloudtrail(account: Account, region: str) -> Iterator[Finding]:
    needing = [rule for rule in account.stack_rules if CLOUDTRAIL_DETAIL_TYPE in rule.field_values("detail-type")]
    if not needing:
        yield Finding("cloudtrail", OK, "not needed: no rule matches CloudTrail API calls")
        return
    sources = set().union(*(_detail_values(rule, "eventSource") for rule in needing))
    cloudtrail = account.client("cloudtrail", region)
    trails = cloudtrail.describe_trails(includeShadowTrails=True).get("trailList", [])
    covering = [trail for trail in trails if trail.get("IsMultiRegionTrail") or trail.get("HomeRegion") == region]
    reasons = []
    for trail in covering:
        arn, name = trail["TrailARN"], trail["Name"]
        # A multi-region trail seen from another region is a shadow: ask its home region about it.
        home = account.client("cloudtrail", trail.get("HomeRegion") or region)
        if not home.get_trail_status(Name=arn).get("IsLogging"):
            reasons.append(f"trail {name} is not logging")
            continue
        selectors = home.get_event_selectors(TrailName=arn)
        if logs_write_management_events(selectors, sources):
            names = ", ".join(rule.logical_id for rule in needing)
            yield Finding("cloudtrail", OK, f"trail {name} logs the management events {names} match")
            return
        reasons.append(f"trail {name} records no write management events of {', '.join(sorted(sources))}")
    found = "; ".join(reasons) if reasons else f"no trail covers {region}"
    rules = ", ".join(rule.logical_id for rule in needing)
    yield Finding(
        "cloudtrail",
        FAIL,
        f"{found}: EventBridge gets no CloudTrail API call events, so {rules} never fires",
        "log management events with a trail in this region (a multi-region trail covers all): `aws cloudtrail "
        "create-trail --name rescind-management --s3-bucket-name <bucket> --is-multi-region-trail` then `aws "
        "cloudtrail start-logging --name rescind-management`; or start-logging on the trail above, or give it "
        "management events (ReadWriteType All or WriteOnly) with `aws cloudtrail put-event-selectors`",
    )


def _detail_values(rule: DeployedRule, name: str) -> set[str]:
    values = (rule.pattern.get("detail") or {}).get(name) or []
    return {value for value in values if isinstance(value, str)}


def logs_write_management_events(selectors: dict[str, Any], sources: set[str]) -> bool:
    """Whether a trail's selectors record write management events from these event sources.

    A trail that never had selectors put on it logs every management event (CloudTrail's default; moto answers
    such a trail with no selectors at all, AWS with the default selector).
    """
    basic = selectors.get("EventSelectors") or []
    advanced = selectors.get("AdvancedEventSelectors") or []
    if not basic and not advanced:
        return True
    for selector in basic:
        excluded = set(selector.get("ExcludeManagementEventSources") or [])
        if (
            selector.get("IncludeManagementEvents", True)
            and selector.get("ReadWriteType", "All") in {"All", "WriteOnly"}
            and not sources & excluded
        ):
            return True
    return any(_advanced_selects(selector, sources) for selector in advanced)


def _advanced_selects(selector: dict[str, Any], sources: set[str]) -> bool:
    fields = {item["Field"]: item for item in selector.get("FieldSelectors") or []}
    category = fields.get("eventCategory") or {}
    if "Management" not in (category.get("Equals") or []):
        return False
    read_only = fields.get("readOnly") or {}
    if "true" in (read_only.get("Equals") or []) or "false" in (read_only.get("NotEquals") or []):
        return False
    source = fields.get("eventSource") or {}
    if source.get("Equals") and not sources <= set(source["Equals"]):
        return False
    return not sources & set(source.get("NotEquals") or [])


def check_guardduty(account: Account, region: str) -> Iterator[Finding]:
    needing = [rule for rule in account.stack_rules if rule.matches("aws.guardduty")]
    if not needing:
        yield Finding("guardduty", OK, "not needed: no rule matches GuardDuty findings")
        return
    guardduty = account.client("guardduty", region)
    detectors = guardduty.list_detectors().get("DetectorIds", [])
    for detector in detectors:
        if guardduty.get_detector(DetectorId=detector).get("Status") == "ENABLED":
            yield Finding("guardduty", OK, f"detector {detector} is enabled")
            return
    rules = ", ".join(rule.logical_id for rule in needing)
    if detectors:
        yield Finding(
            "guardduty",
            FAIL,
            f"GuardDuty detector {detectors[0]} is disabled: no findings, so {rules} never fires",
            f"aws guardduty update-detector --detector-id {detectors[0]} --enable",
        )
    else:
        yield Finding(
            "guardduty",
            FAIL,
            f"GuardDuty has no detector here: no findings, so {rules} never fires",
            "aws guardduty create-detector --enable (or enable GuardDuty for the organisation)",
        )


def check_autoscaling_hooks(account: Account, region: str) -> Iterator[Finding]:
    if not any(rule.matches("aws.autoscaling", TERMINATE_LIFECYCLE_DETAIL_TYPE) for rule in account.stack_rules):
        yield Finding("autoscaling-hooks", OK, "not needed: no rule matches the terminate lifecycle action")
        return
    autoscaling = account.client("autoscaling", region)
    groups = [
        group["AutoScalingGroupName"]
        for page in autoscaling.get_paginator("describe_auto_scaling_groups").paginate()
        for group in page.get("AutoScalingGroups", [])
    ]
    without = []
    for group in groups:
        hooks = autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=group).get("LifecycleHooks", [])
        if not any(hook.get("LifecycleTransition") == TERMINATING_TRANSITION for hook in hooks):
            without.append(group)
    for group in without:
        yield Finding(
            "autoscaling-hooks",
            WARN,
            f"group {group} has no termination lifecycle hook: its scale-in is seen only when the instance is "
            "already terminated (the EC2 state-change rule)",
            f"aws autoscaling put-lifecycle-hook --auto-scaling-group-name {group} --lifecycle-hook-name "
            f"rescind-offboard --lifecycle-transition {TERMINATING_TRANSITION} --heartbeat-timeout 30 "
            "--default-result CONTINUE",
        )
    if not without:
        message = f"{len(groups)} groups, each with a termination hook" if groups else "no Auto Scaling groups"
        yield Finding("autoscaling-hooks", OK, message)


def forwarded_sources(account: Account, region: str, destination: str) -> set[str]:
    """The event sources that enabled rules on `region`'s default bus send to the bus `destination`."""
    events = account.client("events", region)
    sources: set[str] = set()
    for page in events.get_paginator("list_rules").paginate(EventBusName="default"):
        for rule in page.get("Rules", []):
            if rule.get("State") == "DISABLED" or not rule.get("EventPattern"):
                continue
            targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName="default").get("Targets", [])
            if any(target.get("Arn") == destination for target in targets):
                values = json.loads(rule["EventPattern"]).get("source") or []
                sources.update(value for value in values if isinstance(value, str))
    return sources


def forwarding_fix(region: str, destination: str) -> str:
    return (
        f"deploy member-account.yaml in {region} of this account as its forwarding rules (CreateExecutionRole=false, "
        f"CentralEventBusArn={destination}, the other parameters as for a member; README, Many accounts)"
    )


def check_health(account: Account) -> Iterator[Finding]:
    needing = [rule for rule in account.stack_rules if rule.matches("aws.health")]
    if not needing:
        yield Finding("health", OK, "not needed: no rule matches AWS Health events")
        return
    if account.region == HEALTH_GLOBAL_REGION:
        yield Finding("health", OK, f"the stack is in {HEALTH_GLOBAL_REGION}, where Health's global events arrive")
        return
    destination = account.default_bus_arn()
    if "aws.health" in forwarded_sources(account, HEALTH_GLOBAL_REGION, destination):
        yield Finding("health", OK, f"a rule in {HEALTH_GLOBAL_REGION} forwards aws.health to this stack's bus")
        return
    yield Finding(
        "health",
        WARN,
        f"the stack is in {account.region} and no rule in {HEALTH_GLOBAL_REGION} forwards aws.health to it: AWS Health "
        "sends its global events (AWS_RISK_CREDENTIALS_EXPOSED for an IAM key) to us-east-1 only",
        f"{forwarding_fix(HEALTH_GLOBAL_REGION, destination)}, or deploy the stack in {HEALTH_GLOBAL_REGION}",
    )


def check_queues(account: Account) -> Iterator[Finding]:
    """Counts only: a dead letter may hold a leak event with its secret, so no message is read."""
    sqs = account.client("sqs")
    queues = account.of_type("AWS::SQS::Queue")
    holding = []
    for queue in queues:
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue.physical_id,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        ).get("Attributes", {})
        waiting = int(attributes.get("ApproximateNumberOfMessages", 0))
        in_flight = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
        if waiting or in_flight:
            holding.append(queue)
            yield Finding(
                "queues",
                FAIL,
                f"{queue.logical_id} holds {waiting} message(s) ({in_flight} in flight): events or runs that failed",
                f"read them (aws sqs receive-message --queue-url {queue.physical_id} --max-number-of-messages 10), "
                "act on each (`rescind replay FILE` takes an EventBridge event; a failure record's requestPayload "
                "holds the event), then delete it",
            )
    if not holding:
        yield Finding("queues", OK, f"{len(queues)} dead-letter and failure queues empty")


def check_executions(account: Account, since: datetime, since_text: str) -> Iterator[Finding]:
    sfn = account.client("stepfunctions")
    machines = account.of_type("AWS::StepFunctions::StateMachine")
    quiet = True
    for machine in machines:
        failed = []
        for status in FAILED_STATUSES:
            failed += recent_executions(sfn, machine.physical_id, status, since)
        if failed:
            quiet = False
            latest = max(failed, key=lambda item: item["startDate"])
            yield Finding(
                "executions",
                WARN,
                f"{machine.logical_id}: {len(failed)} failed or timed out since {since_text} "
                f"(latest {latest['name']}, {latest['status']})",
                f"rescind status {latest['name']} --stack {account.target.stack_name}, and its report: "
                f"rescind report {latest['name']} --stack {account.target.stack_name}",
            )
    if quiet:
        yield Finding("executions", OK, f"{len(machines)} state machines, none failed since {since_text}")


def recent_executions(sfn: Any, machine_arn: str, status: str, since: datetime) -> list[dict[str, Any]]:
    """Executions in one status started since `since` (ListExecutions answers newest first)."""
    found: list[dict[str, Any]] = []
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine_arn, statusFilter=status):
        for execution in page.get("executions", []):
            started = execution["startDate"]
            if started.tzinfo is None:
                started = started.replace(tzinfo=UTC)
            if started < since:
                return found
            found.append(execution)
    return found


def check_forwarding(account: Account, region: str) -> Iterator[Finding]:
    """Another region of this account: its events reach the stack only through forwarding rules."""
    wanted = set().union(*(rule.field_values("source") for rule in account.stack_rules if rule.bus == "default"))
    wanted.discard("aws.health")  # Health's global events come from us-east-1: the health check
    destination = account.default_bus_arn()
    missing = sorted(wanted - forwarded_sources(account, region, destination))
    if not missing:
        yield Finding("forwarding", OK, f"{region} forwards {', '.join(sorted(wanted))} to the stack's bus")
        return
    yield Finding(
        "forwarding",
        WARN,
        f"no rule in {region} forwards {', '.join(missing)} to the stack's bus: workloads there end unseen",
        forwarding_fix(region, destination),
    )


# --- running them ---------------------------------------------------------------------------------------


def guarded(check: str, region: str, run: Callable[[], Iterable[Finding]]) -> list[Finding]:
    """Run one check in one region. A check AWS refuses or does not implement is a warning that says so, and the
    other checks go on."""
    import botocore.exceptions

    try:
        return [replace(finding, region=finding.region or region) for finding in run()]
    except botocore.exceptions.ClientError as error:
        info = error.response.get("Error", {})
        message = f"could not check: {error.operation_name} refused: {info.get('Code', '')}: {info.get('Message', '')}"
        fix = f"allow the doctor's principal {error.operation_name} (README, Before you deploy)"
    except (NotImplementedError, botocore.exceptions.BotoCoreError) as error:
        message = f"could not check: the API is not available here ({type(error).__name__}: {error})"
        fix = ""
    except RulesUnknown as error:
        message, fix = str(error), ""
    return [Finding(check, WARN, one_line(message), fix, region)]


def read_and_check_rules(account: Account) -> Iterator[Finding]:
    account.rules = read_rules(account)
    yield from check_rules(account)


def run_checks(
    account: Account, *, vault_addr: str | None, since: datetime, since_text: str, regions: Sequence[str]
) -> list[Finding]:
    """Every check, in the stack's region and then in each other region asked for."""
    from rescind_cli.doctor_vault import check_vault

    here = account.region
    findings = check_vault(account, vault_addr)
    findings += guarded("rules", here, lambda: read_and_check_rules(account))
    for region in [here, *(item for item in regions if item != here)]:
        if region != here:
            findings += guarded("forwarding", region, partial(check_forwarding, account, region))
        findings += guarded("cloudtrail", region, partial(check_cloudtrail, account, region))
        findings += guarded("guardduty", region, partial(check_guardduty, account, region))
        findings += guarded("autoscaling-hooks", region, partial(check_autoscaling_hooks, account, region))
    findings += guarded("health", here, lambda: check_health(account))
    findings += guarded("queues", here, lambda: check_queues(account))
    findings += guarded("executions", here, lambda: check_executions(account, since, since_text))
    return findings


# --- the command ----------------------------------------------------------------------------------------

VaultAddrOption = Annotated[
    str | None,
    typer.Option("--vault-addr", help="The Vault to check (default: the stack's functions' VAULT_ADDR)."),
]
RegionsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--regions",
        help="Other regions of this account where workloads run (repeatable, or comma-separated): check that "
        "they forward to the stack, and their trail, GuardDuty and hooks.",
    ),
]
SinceOption = Annotated[str, typer.Option("--since", help="Failed executions since: ISO 8601, or 30m, 2h, 1d, 1w.")]


def doctor_command(
    stack: StackOption = None,
    profile: ProfileOption = None,
    vault_addr: VaultAddrOption = None,
    regions: RegionsOption = None,
    since: SinceOption = "7d",
    json_output: JsonOption = False,
) -> None:
    """Check that the account is ready for a deployed stack: Vault, rules, CloudTrail, GuardDuty, Auto Scaling
    hooks, Health in us-east-1, dead-letter queues, failed executions. Reads only.

    One line per check (ok, warn, fail, with the fix). Exits 0 when no check failed (warnings allowed), 1 when
    one did, 2 on bad input.
    """
    import os

    from rescind_cli.targets import DeployedStackTarget

    holder: list[Target] = []
    with command_boundary(json_output, holder):
        name = (stack or os.environ.get(STACK_ENV) or "").strip()
        if not name:
            raise CommandFailed(f"doctor checks a deployed stack: give --stack NAME (or {STACK_ENV})")
        since_moment = parse_since(since)
        target = DeployedStackTarget.load(name, profile=profile)
        holder.append(target)
        account = Account(target, profile, stack_resources(target.client("cloudformation"), name))
        other_regions = [item.strip() for value in regions or () for item in value.split(",") if item.strip()]
        findings = run_checks(
            account, vault_addr=vault_addr, since=since_moment, since_text=since, regions=other_regions
        )
    failed = any(finding.outcome == FAIL for finding in findings)
    counts = {outcome: sum(finding.outcome == outcome for finding in findings) for outcome in (OK, WARN, FAIL)}
    if json_output:
        emit(
            {
                "ok": not failed,
                "stack": name,
                "region": account.region,
                "counts": counts,
                "checks": [finding.document() for finding in findings],
            }
        )
    else:
        print_findings(findings, name, account.region, counts)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


_TONE = {OK: "green", WARN: "yellow", FAIL: "red"}


def print_findings(findings: Sequence[Finding], stack: str, region: str, counts: dict[str, int]) -> None:
    from rescind_cli.runs.boundary import stdout_console

    out = stdout_console()
    width = max(len(finding.check) for finding in findings)
    for finding in findings:
        where = f" [{finding.region}]" if finding.region != region else ""
        outcome = f"[{_TONE[finding.outcome]}]{finding.outcome:<4}[/]"
        out.print(f"{outcome} {finding.check:<{width}}{escape(where)}  {escape(finding.message)}")
        if finding.fix:
            out.print(f"     {'':<{width}}  fix: {escape(finding.fix)}")
    say(f"stack {stack} ({region}): {counts[FAIL]} failed, {counts[WARN]} warning(s), {counts[OK]} ok")
