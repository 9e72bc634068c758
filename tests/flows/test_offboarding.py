"""Offboarding through the template's state machine (moto's interpreter running the ASL file, the handlers
in-process) against real OpenBao: everything the workload held ends, its neighbour is untouched."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import hvac
import pytest
from botocore.credentials import Credentials

from rescind.ledger import ApprovalVerdict, DynamoDbLedger, IncidentStatus, Trigger
from rescind.models import CredentialKind, Outcome
from rescind.offboarding.types import offboarding_execution_name
from rescind.response.types import ResponseRequest
from rescind_cli.function_url import post_signed
from rescind_local import LocalOpenBao
from rescind_local.aws import LOCAL_ACCOUNT_ID, LOCAL_REGION
from rescind_local.function_urls import serve_function_urls
from rescind_local.proof import prove_by_use
from rescind_local.seed import SeededWorkload, prepare_vault, seed_workload
from rescind_local.stack import LocalStack
from rescind_local.stepfunctions import wait_for_execution
from tests.conftest import CREDENTIAL_SERVICES, BackendCalls, aws_writes, deploy_local_stack, load_event, vault_writes
from tests.flows.state_limits import assert_execution_within_state_limit


@dataclass
class Estate:
    target: SeededWorkload
    neighbour: SeededWorkload
    protected: SeededWorkload


@pytest.fixture
def estate(aws: None, vault: hvac.Client, unique: str) -> Estate:
    prepare_vault(vault)
    iam = boto3.client("iam")
    return Estate(
        target=seed_workload(vault, iam, f"api-{unique}", f"spiffe://flows.rescind/api-{unique}"),
        neighbour=seed_workload(vault, iam, f"worker-{unique}", f"spiffe://flows.rescind/worker-{unique}"),
        protected=seed_workload(vault, iam, f"ca-{unique}", f"spiffe://flows.rescind/ca-{unique}"),
    )


def deploy(openbao: LocalOpenBao, estate: Estate, stack_name: str = "rescind-local", **parameters: str) -> LocalStack:
    return deploy_local_stack(
        openbao, stack_name=stack_name, **{"ProtectedWorkloads": estate.protected.spiffe_id, **parameters}
    )


@pytest.fixture
def stack(openbao: LocalOpenBao, estate: Estate) -> Iterator[LocalStack]:
    with deploy(openbao, estate) as deployed:
        yield deployed


def offboarding_request(workload: SeededWorkload, event_id: str | None = None) -> ResponseRequest:
    event_id = event_id or str(uuid.uuid4())
    return ResponseRequest(
        incident_id=offboarding_execution_name(workload.spiffe_id, event_id),
        workload_id=workload.spiffe_id,
        reason="workload terminated",
        trigger=Trigger(
            source="rescind", detail_type="Workload Terminated", event_id=event_id, workload_id=workload.spiffe_id
        ),
        terminated_at=datetime.now(UTC),
    )


def run(stack: LocalStack, request: ResponseRequest) -> dict[str, Any]:
    execution = stack.run_execution(
        "OffboardingStateMachine", request.model_dump(mode="json"), name=request.incident_id, timeout=60
    )
    assert_execution_within_state_limit(execution["executionArn"])
    return execution


def test_offboarding_ends_every_credential_and_touches_no_neighbour(
    stack: LocalStack, estate: Estate, vault: hvac.Client, openbao: LocalOpenBao
) -> None:
    # Given a workload holding a token pair, a secret-id, a certificate, a KV secret, an entity and an IAM key
    request = offboarding_request(estate.target)

    # When its offboarding runs
    execution = run(stack, request)

    # Then the execution succeeded, and using any of its credentials fails
    assert execution["status"] == "SUCCEEDED", execution
    iam = boto3.client("iam")
    dead = prove_by_use(vault, openbao.addr, iam, estate.target, expected="dead")
    alive = prove_by_use(vault, openbao.addr, iam, estate.neighbour, expected="alive")
    assert [p for p in dead + alive if not p.passed] == []

    # And the ledger holds one incident with one verified result per credential, and a completed closure
    ledger = DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb"))
    view = ledger.read_incident(request.incident_id)
    assert view.incident is not None
    planned = {action.target.key for action in view.incident.plan.actions}
    assert len(planned) == 7
    assert {a.result.target.key for a in view.attempts} == planned
    assert {a.result.outcome for a in view.attempts} == {Outcome.SUCCEEDED}
    assert all(a.result.evidence and a.result.evidence[0].confirmed for a in view.attempts)
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.COMPLETED
    assert view.closure.still_alive == ()
    assert {a.result.target.kind for a in view.attempts} == {
        CredentialKind.VAULT_ENTITY,
        CredentialKind.IAM_ACCESS_KEY,
        CredentialKind.KV_SECRET,
        CredentialKind.VAULT_TOKEN,
        CredentialKind.APPROLE_SECRET_ID,
        CredentialKind.PKI_CERTIFICATE,
    }


def test_a_duplicate_start_is_reported_as_a_duplicate_and_runs_once(
    stack: LocalStack, estate: Estate, unique: str
) -> None:
    # Given the termination of the target workload, delivered to the start function as EventBridge would
    event = load_event("workload_terminated.json")
    event["id"] = f"evt-duplicate-{unique}"
    event["detail"]["workload_id"] = estate.target.spiffe_id
    sfn = boto3.client("stepfunctions")
    machine = stack.state_machine_arn("OffboardingStateMachine")

    # When it is delivered again at once, again a moment later, and again after its run finished
    first, first_error = stack.invoke("StartOffboardingFunction", event)
    in_a_row, in_a_row_error = stack.invoke("StartOffboardingFunction", event)
    time.sleep(1.2)  # past the start function's clock slack (offboarding/start.py _RUNNING_DUPLICATE_SLACK)
    later, later_error = stack.invoke("StartOffboardingFunction", event)
    finished = wait_for_execution(sfn, first["execution_arn"], 60)
    after, after_error = stack.invoke("StartOffboardingFunction", event)

    # Then the first started the run, and every later delivery named that same run
    assert (first_error, in_a_row_error, later_error, after_error) == (None, None, None, None)
    assert first["status"] == "started", first
    for again in (in_a_row, later, after):
        assert (again["incident_id"], again["execution_arn"]) == (first["incident_id"], first["execution_arn"])
    # A delivery within a second of the start is answered by Step Functions with the running execution and is
    # told from a fresh start by its age only, so only the later ones are reported as duplicates.
    assert [later["status"], after["status"]] == ["duplicate", "duplicate"], (later, after)
    assert finished["status"] == "SUCCEEDED", finished
    # And there is one execution, one incident record with one closure, and one attempt per planned action
    assert [e["executionArn"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]] == [
        first["execution_arn"]
    ]
    ledger = DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb"))
    incidents = [i for i in ledger.list_incidents() if i.trigger.workload_id == estate.target.spiffe_id]
    assert [i.incident_id for i in incidents] == [first["incident_id"]]
    items = boto3.client("dynamodb").query(
        TableName=stack.physical_id("LedgerTable"),
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"INCIDENT#{first['incident_id']}"}},
    )["Items"]
    kinds = sorted(item["sk"]["S"].split("#")[0] for item in items)
    view = ledger.read_incident(first["incident_id"])
    assert view.incident is not None
    planned = len(view.incident.plan.actions)
    assert kinds == ["A"] + ["B"] * planned + ["C"], kinds  # incident, one attempt per action, one closure
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.COMPLETED


def test_a_protected_workload_is_refused_and_nothing_changes(
    stack: LocalStack, estate: Estate, vault: hvac.Client, openbao: LocalOpenBao
) -> None:
    request = offboarding_request(estate.protected)
    execution = run(stack, request)

    assert execution["status"] == "FAILED"
    assert execution.get("error") == "OffboardingIncomplete"
    proofs = prove_by_use(vault, openbao.addr, boto3.client("iam"), estate.protected, expected="alive")
    assert [p for p in proofs if not p.passed] == []
    view = DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb")).read_incident(request.incident_id)
    assert view.attempts == ()
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.REFUSED


def test_a_hold_on_one_credential_refuses_the_whole_plan(
    stack: LocalStack, estate: Estate, vault: hvac.Client, openbao: LocalOpenBao, backend_calls: BackendCalls
) -> None:
    # Given an owner put a hold on the workload's KV secret
    held_path = estate.target.kv_paths[0]
    vault.adapter.request(
        "PATCH",
        f"/v1/secret/metadata/{held_path}",
        json={"custom_metadata": {"rescind_hold": "incident-review"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    request = offboarding_request(estate.target)
    backend_calls.vault.clear()
    backend_calls.aws.clear()

    # When its offboarding runs
    execution = run(stack, request)

    # Then the guard refused the plan for that hold, by name, and the run ended refused
    sfn = boto3.client("stepfunctions")
    history = sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
    assert "Refused" in entered, entered
    assert not {"Contain", "Revoke", "ContainInline", "RevokeInline", "RequestApproval"} & set(entered), entered
    assert (execution["status"], execution.get("error")) == ("FAILED", "OffboardingIncomplete"), execution
    why = f"on hold: kv_secret:secret:{held_path} (metadata rescind_hold)"
    # And the ledger holds the plan, no attempt, and a refused closure that names the hold
    view = DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb")).read_incident(request.incident_id)
    assert view.incident is not None
    assert view.attempts == ()
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.REFUSED
    assert f"reason: {why}" in view.closure.summary, view.closure.summary
    # And nothing was written to OpenBao: every request was a read, and every credential still works
    assert vault_writes(backend_calls) == []
    assert aws_writes(backend_calls, CREDENTIAL_SERVICES) == []
    assert backend_calls.vault, "the plan read nothing from OpenBao: the hold cannot have been seen"
    proofs = prove_by_use(vault, openbao.addr, boto3.client("iam"), estate.target, expected="alive")
    assert [p for p in proofs if not p.passed] == []


def principal(name: str) -> tuple[str, Credentials]:
    """An IAM user in moto with an access key: whoever signs with the key is that user, as on AWS."""
    iam = boto3.client("iam")
    arn = str(iam.create_user(UserName=name)["User"]["Arn"])
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return arn, Credentials(key["AccessKeyId"], key["SecretAccessKey"])


def answer(url: str, signer: Credentials, execution_arn: str, decision: str, reason: str = "") -> tuple[int, Any]:
    """POST an answer to AnswerApprovalFunction's URL, SigV4-signed by `signer`, as `rescind approve` does."""
    document = {"execution": execution_arn, "decision": decision, "reason": reason}
    return post_signed(url, document, credentials=signer, region=LOCAL_REGION)


def history_types(sfn: Any, execution_arn: str) -> list[str]:
    return [event["type"] for event in sfn.get_execution_history(executionArn=execution_arn)["events"]]


def test_a_plan_above_the_cap_waits_for_approval_and_runs_once_approved(
    openbao: LocalOpenBao, estate: Estate, vault: hvac.Client
) -> None:
    with deploy(openbao, estate, BlastRadiusCap="3") as stack, serve_function_urls(stack) as urls:
        request = offboarding_request(estate.target)
        arn = stack.start_execution("OffboardingStateMachine", request.model_dump(mode="json"), request.incident_id)
        sfn = boto3.client("stepfunctions")
        wait_for_task_token(sfn, arn)
        # Nothing was touched while waiting
        waiting = prove_by_use(vault, openbao.addr, boto3.client("iam"), estate.target, expected="alive")
        assert [p for p in waiting if not p.passed] == []

        approver_arn, approver = principal(f"approver-{request.incident_id[-8:]}")
        status, body = answer(urls["AnswerApprovalFunction"], approver, arn, "approve")
        assert status == 200, body
        finished = wait_for_execution(sfn, arn, 60)
        # A second answer, even from another principal, is refused: the run had its one answer
        late_status, _ = answer(urls["AnswerApprovalFunction"], principal("late")[1], arn, "deny", "too late")
        view = DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb")).read_incident(
            request.incident_id
        )
        history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    assert finished["status"] == "SUCCEEDED", finished
    # The approved plan is small: after the approval, PlanSize sent it through the INLINE Maps
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
    assert entered[entered.index("RequestApproval") + 1] == "PlanSize", entered
    assert {"RevokeInline", "VerifyInline"} <= set(entered), entered
    assert late_status == 409
    assert [(a.verdict, a.decided_by) for a in view.approvals] == [(ApprovalVerdict.APPROVED, approver_arn)]
    dead = prove_by_use(vault, openbao.addr, boto3.client("iam"), estate.target, expected="dead")
    assert [p for p in dead if not p.passed] == []


def test_a_denied_approval_touches_nothing(openbao: LocalOpenBao, estate: Estate, vault: hvac.Client) -> None:
    with deploy(openbao, estate, BlastRadiusCap="3") as stack, serve_function_urls(stack) as urls:
        request = offboarding_request(estate.target)
        arn = stack.start_execution("OffboardingStateMachine", request.model_dump(mode="json"), request.incident_id)
        sfn = boto3.client("stepfunctions")
        wait_for_task_token(sfn, arn)
        denier_arn, denier = principal(f"denier-{request.incident_id[-8:]}")
        status, body = answer(urls["AnswerApprovalFunction"], denier, arn, "deny", "not now")
        assert status == 200, body
        finished = wait_for_execution(sfn, arn, 60)
        view = DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb")).read_incident(
            request.incident_id
        )
    assert finished["status"] == "FAILED"
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.REFUSED
    assert [(a.verdict, a.decided_by, a.reason) for a in view.approvals] == [
        (ApprovalVerdict.DENIED, denier_arn, "not now")
    ]
    proofs = prove_by_use(vault, openbao.addr, boto3.client("iam"), estate.target, expected="alive")
    assert [p for p in proofs if not p.passed] == []


def test_the_requester_cannot_approve_their_own_run(openbao: LocalOpenBao, estate: Estate, vault: hvac.Client) -> None:
    with deploy(openbao, estate, BlastRadiusCap="3") as stack, serve_function_urls(stack) as urls:
        requester_arn, requester = principal("requester")
        # The run is started through StartManualRevocationFunction's URL, as `rescind revoke` does: the
        # signer is the requester. A body that names someone else as requester is refused, and nothing starts.
        start_url = urls["StartManualRevocationFunction"]
        run = {"workload": estate.target.spiffe_id, "reason": "compromised host"}
        forged = post_signed(
            start_url,
            {**run, "requested_by": "arn:aws:iam::123456789012:user/someone"},
            credentials=requester,
            region=LOCAL_REGION,
        )
        assert forged[0] == 400, forged
        assert "requested_by" in forged[1]["message"]
        assert post_signed(start_url, run, credentials=Credentials("AKIAUNKNOWN", "x"), region=LOCAL_REGION)[0] == 403
        sfn = boto3.client("stepfunctions")
        manual_machine = stack.state_machine_arn("ManualRevocationStateMachine")
        assert sfn.list_executions(stateMachineArn=manual_machine)["executions"] == []
        status, body = post_signed(start_url, run, credentials=requester, region=LOCAL_REGION)
        assert status == 200, body
        arn, incident_id = body["run"]["execution_arn"], body["run"]["incident_id"]
        assert body["run"]["requested_by"] == requester_arn
        wait_for_task_token(sfn, arn)
        ledger = DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb"))
        recorded = ledger.read_incident(incident_id).incident
        assert recorded is not None
        assert recorded.trigger.requested_by == requester_arn

        # The requester is refused, whatever the body says; nothing is recorded or sent
        status, body = answer(urls["AnswerApprovalFunction"], requester, arn, "approve")
        assert (status, body["error"]) == (403, "ApprovalRefused"), body
        assert "another principal" in body["message"]
        # A body that claims another identity changes nothing: the signature says who asks
        forged = post_signed(
            urls["AnswerApprovalFunction"],
            {"execution": arn, "decision": "approve", "decided_by": "arn:aws:iam::123456789012:user/someone"},
            credentials=requester,
            region=LOCAL_REGION,
        )
        assert forged[0] == 400
        # An unsigned or mis-signed request never reaches the function
        assert answer(urls["AnswerApprovalFunction"], Credentials("AKIAUNKNOWN", "x"), arn, "approve")[0] == 403
        assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
        assert "TaskSucceeded" not in history_types(sfn, arn)[-3:]
        assert ledger.read_incident(incident_id).approvals == ()
        alive = prove_by_use(vault, openbao.addr, boto3.client("iam"), estate.target, expected="alive")
        assert [p for p in alive if not p.passed] == []

        # A second principal can; the ledger says who
        approver_arn, approver = principal("second-approver")
        status, body = answer(urls["AnswerApprovalFunction"], approver, arn, "approve")
        assert status == 200, body
        finished = wait_for_execution(sfn, arn, 60)
        approvals = ledger.read_incident(incident_id).approvals
    assert finished["status"] == "SUCCEEDED", finished
    assert [(a.verdict, a.decided_by) for a in approvals] == [(ApprovalVerdict.APPROVED, approver_arn)]


def wait_for_task_token(sfn: Any, execution_arn: str, timeout: float = 30.0) -> str:
    """The approval task's token, read from the execution history as `rescind approve` does."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in sfn.get_execution_history(executionArn=execution_arn)["events"]:
            details = event.get("taskScheduledEventDetails")
            if details and "waitForTaskToken" in details.get("resource", ""):
                return str(json.loads(details["parameters"])["Payload"]["task_token"])
        time.sleep(0.05)
    raise AssertionError("the execution never reached the approval task")


def test_a_partial_failure_fails_the_execution_lists_what_is_alive_and_a_rerun_finishes_the_rest(
    openbao: LocalOpenBao, estate: Estate, vault: hvac.Client
) -> None:
    # Given the functions' Vault token may do everything except destroy AppRole secret-ids
    vault.sys.create_or_update_policy(
        "rescind-partial",
        'path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo", "patch"] }\n'
        'path "auth/approle/role/+/secret-id-accessor/destroy" { capabilities = ["deny"] }\n',
    )
    limited = vault.auth.token.create(policies=["rescind-partial"], ttl="1h")["auth"]["client_token"]
    terminated = offboarding_request(estate.target)
    with deploy_local_stack(openbao, vault_token=limited) as stack:
        # When the offboarding runs
        first = run(stack, terminated)
        view = DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb")).read_incident(
            terminated.incident_id
        )

    # Then it ends FAILED, and its closure lists exactly the secret-id as still alive
    assert first["status"] == "FAILED"
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.PARTIAL
    assert [ref.kind for ref in view.closure.still_alive] == [CredentialKind.APPROLE_SECRET_ID]
    failed = [a for a in view.attempts if a.result.outcome is Outcome.FAILED]
    assert [a.result.error_type for a in failed] == ["ActionFailed"]

    # When it runs again with the permission restored (a new start: a new incident)
    with deploy(openbao, estate, stack_name="rescind-rerun") as stack:
        rerun = offboarding_request(estate.target, event_id="rerun")
        rerun = rerun.model_copy(update={"terminated_at": terminated.terminated_at})
        second = run(stack, rerun)
        again = DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb")).read_incident(
            rerun.incident_id
        )

    # Then it finishes the rest: everything is dead, and the shared secret was not rotated a second time
    assert second["status"] == "SUCCEEDED", second
    dead = prove_by_use(vault, openbao.addr, boto3.client("iam"), estate.target, expected="dead")
    assert [p for p in dead if not p.passed] == []
    assert again.incident is not None
    assert CredentialKind.KV_SECRET not in {a.target.kind for a in again.incident.plan.actions}
    assert CredentialKind.APPROLE_SECRET_ID in {a.target.kind for a in again.incident.plan.actions}


# --- an organisation of a few hundred accounts (issue 15.10: those settings are in Parameter Store) -------------


def test_an_organisation_of_a_few_hundred_accounts_plans_from_parameter_store(
    openbao: LocalOpenBao, estate: Estate, vault: hvac.Client
) -> None:
    # Given a stack searching 315 accounts (as many as one CloudFormation parameter holds: more than Lambda's 4 KB
    # environment would), this one among them, and guarding a hundred workloads, the protected one among them
    accounts = [LOCAL_ACCOUNT_ID, *(f"{200000000000 + n:012d}" for n in range(314))]
    protected = [estate.protected.spiffe_id, *(f"spiffe://flows.rescind/team-{n:03d}/api" for n in range(99))]
    with deploy(
        openbao,
        estate,
        DiscoveryAccountIds=",".join(accounts),
        CrossAccountExternalId="rescind-flows-organisation",
        ProtectedWorkloads=",".join(protected),
    ) as stack:
        # Then the functions are given only the parameters' names, and the parameters hold the settings
        environment = stack.functions["PlanOffboardingFunction"].environment
        assert "AWS_ACCOUNT_IDS" not in environment
        assert "PROTECTED_WORKLOADS" not in environment
        ssm = boto3.client("ssm")
        stored = ssm.get_parameter(Name=environment["AWS_ACCOUNT_IDS_PARAMETER"])["Parameter"]
        assert stored["Value"].split(",") == accounts
        assert len(json.dumps(environment)) < 4096

        # When the target's offboarding runs, it is planned and carried out
        request = offboarding_request(estate.target)
        execution = run(stack, request)
        assert execution["status"] == "SUCCEEDED", execution
        view = DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb")).read_incident(
            request.incident_id
        )
        assert view.incident is not None
        assert len(view.incident.plan.actions) == 7

        # And the protected workload, read from the same parameter, is refused and untouched
        refused = offboarding_request(estate.protected)
        assert run(stack, refused)["status"] == "FAILED"
        closure = (
            DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb"))
            .read_incident(refused.incident_id)
            .closure
        )
        assert closure is not None
        assert closure.status is IncidentStatus.REFUSED
        proofs = prove_by_use(vault, openbao.addr, boto3.client("iam"), estate.protected, expected="alive")
        assert [proof for proof in proofs if not proof.passed] == []
