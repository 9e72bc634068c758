"""The doctor's AWS checks: each reads the account for one prerequisite of the stack's rules and yields one or
more findings (see `rescind_cli.doctor` for the list). What a rule needs is read from its event pattern.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from rescind_cli.doctor import FAIL, OK, WARN, Account, DeployedRule, Finding

HEALTH_GLOBAL_REGION = "us-east-1"
CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
TERMINATE_LIFECYCLE_DETAIL_TYPE = "EC2 Instance-terminate Lifecycle Action"
TERMINATING_TRANSITION = "autoscaling:EC2_INSTANCE_TERMINATING"
FAILED_STATUSES = ("FAILED", "TIMED_OUT")


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
            f"GuardDuty has no detector in {region}: no findings, so {rules} never fires",
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
        message = f"{len(groups)} group(s), each with a termination hook" if groups else "no Auto Scaling groups"
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
        "delivers its global events (AWS_RISK_CREDENTIALS_EXPOSED for an IAM key) in us-east-1",
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
    if not wanted:
        yield Finding("forwarding", OK, "not needed: the stack has no rule on the default bus")
        return
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
