"""What only the issuance index gives, through the template's state machines (moto's interpreter running the ASL,
the handlers in-process) against a real OpenBao (file audit device, hmac_accessor=false) and a real PostgreSQL.

The audit lines reach IndexAuditLogFunction as the CloudWatch Logs subscription delivers them. Then:
- an offboarding revokes the workload's dynamic database credential (a lease: no convention finds it) and the child
  token its token made (no metadata names the workload), both found only through the index;
- a leaked dynamic database password, reported as `vault_issued_value`, is located through `sys/audit-hash` and its
  lease revoked by the leak response.
Each is verified by lease lookup, by PostgreSQL (the user is gone) and by use.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import boto3
import hvac
import hvac.exceptions
import pytest

from rescind.ledger import DynamoDbLedger, IncidentStatus, Trigger
from rescind.models import Outcome, VaultLeaseRef, VaultTokenRef
from rescind.models.refs import format_ref
from rescind.offboarding.types import offboarding_execution_name
from rescind.response.types import ResponseRequest
from rescind_local import LocalOpenBao
from rescind_local.seed import prepare_vault
from rescind_local.stack import LocalStack
from rescind_local.stepfunctions import wait_for_execution
from tests.conftest import deploy_local_stack, load_event
from tests.integration.issuance.test_audit_index import audit_lines, subscription_event
from tests.postgres import PostgresServer, mount_dynamic_database, postgres_server

__all__ = ["postgres_server"]  # the fixture, imported for pytest

pytestmark = [pytest.mark.flows, pytest.mark.timeout(300)]

WORKLOAD = "spiffe://flows.rescind/ns/orders/sa/api"
MOUNT = "db-orders"


@pytest.fixture(scope="module")
def bao() -> Iterator[LocalOpenBao]:
    with LocalOpenBao(audit_options={"hmac_accessor": "false"}) as server:
        yield server


@dataclass
class Workload:
    token: str  # the workload's token: the test's probe, never given to Rescind
    accessor: str
    client: hvac.Client


@pytest.fixture(scope="module")
def database(bao: LocalOpenBao, postgres_server: PostgresServer) -> str:
    vault = hvac.Client(url=bao.addr, token=bao.root_token, timeout=10)
    prepare_vault(vault)  # the mounts discovery walks (PKI, AppRole, KV)
    mount_dynamic_database(vault, postgres_server, MOUNT)
    vault.sys.create_or_update_policy(
        "orders",
        f'path "{MOUNT}/creds/app" {{ capabilities = ["read"] }}\n'
        'path "auth/token/create" { capabilities = ["update"] }\n',
    )
    return MOUNT


def workload_token(bao: LocalOpenBao) -> Workload:
    vault = hvac.Client(url=bao.addr, token=bao.root_token, timeout=10)
    auth = vault.auth.token.create(policies=["orders"], meta={"spiffe_id": WORKLOAD}, ttl="1h")["auth"]
    return Workload(auth["client_token"], auth["accessor"], hvac.Client(url=bao.addr, token=auth["client_token"]))


def deliver_audit_log(stack: LocalStack, bao: LocalOpenBao, since: int) -> None:
    """The lines since `since`, as the subscription filter on the audit log group hands them to the function."""
    report, error = stack.invoke("IndexAuditLogFunction", subscription_event(audit_lines(bao.audit_log, since)))
    assert error is None, report
    assert report["refused"] == 0


def lease_is_gone(vault: hvac.Client, lease_id: str) -> bool:
    try:
        vault.write("sys/leases/lookup", lease_id=lease_id)
    except hvac.exceptions.InvalidRequest as error:
        return "invalid lease" in str(error)
    return False


def token_works(bao: LocalOpenBao, token: str) -> bool:
    try:
        hvac.Client(url=bao.addr, token=token).auth.token.lookup_self()
    except hvac.exceptions.Forbidden:
        return False
    return True


def test_an_offboarding_revokes_the_leases_and_children_found_only_through_the_index(
    bao: LocalOpenBao, database: str, postgres_server: PostgresServer, aws: None
) -> None:
    vault = hvac.Client(url=bao.addr, token=bao.root_token, timeout=10)
    with deploy_local_stack(bao, LeaseMounts=database) as stack:
        # Given a workload token that checked out a database credential and made a child token without metadata
        start = bao.audit_log.stat().st_size
        workload = workload_token(bao)
        creds = workload.client.read(f"{database}/creds/app")
        lease_id, user, password = creds["lease_id"], creds["data"]["username"], creds["data"]["password"]
        child = workload.client.auth.token.create(policies=["default"], ttl="30m")["auth"]
        deliver_audit_log(stack, bao, start)
        assert postgres_server.can_log_in(user, password)

        # When the workload ends
        event_id = str(uuid.uuid4())
        request = ResponseRequest(
            incident_id=offboarding_execution_name(WORKLOAD, event_id),
            workload_id=WORKLOAD,
            reason="workload terminated",
            trigger=Trigger(source="rescind", detail_type="Workload Terminated", event_id=event_id),
            terminated_at=datetime.now(UTC),
        )
        execution = stack.run_execution(
            "OffboardingStateMachine", request.model_dump(mode="json"), name=request.incident_id, timeout=120
        )
        view = DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb")).read_incident(
            request.incident_id
        )
        history = boto3.client("stepfunctions").get_execution_history(executionArn=execution["executionArn"])
        failures = [event for event in history["events"] if "Failed" in event["type"]]
        assert execution["status"] == "SUCCEEDED", str(failures[:1])

    # Then the plan held the lease and the child token (the live scan finds only the token) and listed the child
    # under its parent's revocation
    assert view.incident is not None
    targets = {format_ref(action.target): action for action in view.incident.plan.actions}
    lease, child_ref, parent_ref = (
        VaultLeaseRef(lease_id=lease_id),
        VaultTokenRef(accessor=child["accessor"]),
        VaultTokenRef(accessor=workload.accessor),
    )
    assert set(targets) == {format_ref(lease), format_ref(child_ref), format_ref(parent_ref)}
    assert targets[format_ref(parent_ref)].params.child_tokens == (child["accessor"],)
    # And every action succeeded, each verified; the incident closed resolved
    assert {attempt.result.target.key: attempt.result.outcome.is_success for attempt in view.attempts} == {
        ref.key: True for ref in (lease, child_ref, parent_ref)
    }
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.COMPLETED
    # And the real state: the lease is gone, its database user dropped, both tokens dead
    assert lease_is_gone(vault, lease_id)
    assert not postgres_server.role_exists(user)
    assert not token_works(bao, child["client_token"])
    assert not token_works(bao, workload.token)


def test_a_leaked_database_password_is_located_through_the_audit_hash_and_its_lease_revoked(
    bao: LocalOpenBao, database: str, postgres_server: PostgresServer, aws: None
) -> None:
    vault = hvac.Client(url=bao.addr, token=bao.root_token, timeout=10)
    with deploy_local_stack(bao, LeaseMounts=database, VaultAuditDevicePath="to-file") as stack:
        start = bao.audit_log.stat().st_size
        workload = workload_token(bao)
        creds = workload.client.read(f"{database}/creds/app")
        lease_id, user, password = creds["lease_id"], creds["data"]["username"], creds["data"]["password"]
        kept = workload.client.read(f"{database}/creds/app")
        deliver_audit_log(stack, bao, start)

        # When a scanner reports the password as a value Vault issued
        event = load_event("secret_leaked.json")
        event["id"] = str(uuid.uuid4())
        event["detail"].update({"secret_type": "vault_issued_value", "secret": password})
        sfn = boto3.client("stepfunctions")
        machine = stack.state_machine_arn("LeakResponseStateMachine")
        (match,) = stack.route_event(event)
        assert [delivery.error_type for delivery in match.deliveries] == [None]
        (started,) = sfn.list_executions(stateMachineArn=machine)["executions"]
        execution = wait_for_execution(sfn, started["executionArn"], 120)
        assert execution["status"] == "SUCCEEDED", execution
        view = DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb")).read_incident(
            execution["name"]
        )

    # Then the incident names the lease and its workload, never the value, and the lease is revoked
    assert view.incident is not None
    assert view.incident.trigger.workload_id == WORKLOAD
    assert [action.target for action in view.incident.plan.actions] == [VaultLeaseRef(lease_id=lease_id)]
    assert [attempt.result.outcome for attempt in view.attempts] == [Outcome.SUCCEEDED]
    assert password not in view.model_dump_json()
    assert lease_is_gone(vault, lease_id)
    assert not postgres_server.role_exists(user)
    assert not postgres_server.can_log_in(user, password)
    assert postgres_server.can_log_in(kept["data"]["username"], kept["data"]["password"])
