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

The checks are in `doctor_aws` (AWS) and `doctor_vault` (Vault); this module reads the stack, runs them, and
prints. Rules are found by resource type in the stack, never by logical id (SAM names the rules it generates from a
function's `Events`), and what each one needs by its event pattern. A check that AWS refuses (AccessDenied)
or that the endpoint does not implement says "could not check" as a warning, never ok.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from rescind_cli.options import JsonOption, ProfileOption
from rescind_cli.runs.boundary import EXIT_FAILED, EXIT_OK, CommandFailed, command_boundary, emit, one_line, say
from rescind_cli.runs.commands_ledger import parse_since
from rescind_cli.targets import STACK_ENV, Target

if TYPE_CHECKING:
    from rescind_cli.targets import DeployedStackTarget

OK, WARN, FAIL = "ok", "warn", "fail"


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


def run_checks(
    account: Account, *, vault_addr: str | None, since: datetime, since_text: str, regions: Sequence[str]
) -> list[Finding]:
    """Every check, in the stack's region and then in each other region asked for."""
    from rescind_cli.doctor_aws import (
        check_autoscaling_hooks,
        check_cloudtrail,
        check_executions,
        check_forwarding,
        check_guardduty,
        check_health,
        check_queues,
        check_rules,
    )
    from rescind_cli.doctor_vault import check_vault

    here = account.region
    findings = check_vault(account, vault_addr)

    def read_and_check_rules() -> Iterator[Finding]:
        account.rules = read_rules(account)
        yield from check_rules(account)

    findings += guarded("rules", here, read_and_check_rules)
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

DoctorStackOption = Annotated[
    str | None, typer.Option("--stack", help=f"The deployed stack to check (or {STACK_ENV}).")
]
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
    stack: DoctorStackOption = None,
    profile: ProfileOption = None,
    vault_addr: VaultAddrOption = None,
    regions: RegionsOption = None,
    since: SinceOption = "7d",
    json_output: JsonOption = False,
) -> None:
    """Check the account is ready for a deployed stack (reads only, writes nothing).

    Vault, the stack's rules, CloudTrail, GuardDuty, Auto Scaling termination hooks, Health in us-east-1,
    dead-letter queues, failed executions, and forwarding from --regions. One line per check: ok, warn or fail,
    with the fix. Exits 0 when no check failed (warnings allowed), 1 when one did, 2 on bad input.
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
    # A finding in another region than the stack's names it: `cloudtrail [us-west-2]`.
    labels = [finding.check + (f" [{finding.region}]" if finding.region != region else "") for finding in findings]
    width = max(len(label) for label in labels)
    for finding, label in zip(findings, labels, strict=True):
        outcome = f"[{_TONE[finding.outcome]}]{finding.outcome:<4}[/]"
        out.print(f"{outcome} {escape(f'{label:<{width}}')}  {escape(finding.message)}")
        if finding.fix:
            out.print(f"     {'':<{width}}  fix: {escape(finding.fix)}")
    say(f"stack {stack} ({region}): {counts[FAIL]} failed, {counts[WARN]} warning(s), {counts[OK]} ok")
