"""The guard, under property tests against real OpenBao and moto: holds and protected workloads are never
touched, a plan above the blast-radius cap always waits for approval, nothing ever calls revoke-force, and
revoke-prefix refuses any prefix broader than mount + endpoint + role.

Hypothesis drives the guard code itself (`build_offboarding_plan`, `build_leak_plan`, `revoke_prefix`) with the
calls it makes to Vault and AWS counted; a few whole runs through the template's state machines show the
decision is what the state machine obeys. Example counts: small and derandomized in the CI run, and the same
tests at full size under `pytest -m slow tests/reliability` (RESCIND_FUZZ_EXAMPLES, default 10,000).
"""

from __future__ import annotations

import ast
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import hvac
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rescind.aws.session import AwsClientFactory
from rescind.discovery import DiscoveryScope, discover_workload_credentials
from rescind.exceptions import UnsafePrefix
from rescind.guard import AWS_HOLD_TAG, VAULT_HOLD_KEY, GuardPolicy
from rescind.leaks.plan import build_leak_plan
from rescind.ledger import DynamoDbLedger, IncidentStatus, Trigger
from rescind.models import CredentialRef, IamAccessKeyRef, KvSecretRef, VaultEntityRef
from rescind.offboarding.plan import build_offboarding_plan
from rescind.offboarding.types import offboarding_execution_name
from rescind.response.types import GuardDecision, ResponseRequest
from rescind.vault.leases import list_leases_under, revoke_prefix
from rescind_local import LOCAL_ACCOUNT_ID, LocalOpenBao
from rescind_local.proof import prove_by_use
from rescind_local.seed import APPROLE_MOUNT, KV_MOUNT, SeededWorkload, prepare_vault, seed_workload
from rescind_local.stack import LocalStack
from rescind_local.stepfunctions import wait_for_execution
from tests.conftest import (
    CREDENTIAL_SERVICES,
    REPO_ROOT,
    BackendCalls,
    aws_writes,
    deploy_local_stack,
    load_event,
    vault_writes,
)
from tests.flows.test_offboarding import wait_for_task_token

FAST_EXAMPLES = 40
FULL_EXAMPLES = int(os.environ.get("RESCIND_FUZZ_EXAMPLES", "10000"))
SIZES = [
    pytest.param(FAST_EXAMPLES, id="fast"),
    pytest.param(FULL_EXAMPLES, id="full", marks=[pytest.mark.slow, pytest.mark.timeout(1800)]),
]


def sized(examples: int) -> settings:
    """Derandomized (reproducible) in the CI run; random at full size, where breadth is the point."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=examples <= FAST_EXAMPLES,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        database=None,
    )


# --- an estate where every holdable kind has a held and a free credential --------------------------------------


@dataclass
class HeldEstate:
    workload: SeededWorkload
    refs: list[CredentialRef]
    held_token: str  # accessor of a token created with a hold in its metadata
    held_secret_id: str  # accessor of a secret-id created with a hold in its metadata


def seed_held_estate(vault: hvac.Client, name: str) -> HeldEstate:
    prepare_vault(vault)
    workload = seed_workload(vault, boto3.client("iam"), name, f"spiffe://guards.rescind/{name}")
    meta = {"spiffe_id": workload.spiffe_id, VAULT_HOLD_KEY: "incident-review"}
    held_token = vault.auth.token.create(policies=["workload"], ttl="2h", meta=meta)["auth"]["accessor"]
    held_secret_id = vault.auth.approle.generate_secret_id(name, metadata=meta, mount_point=APPROLE_MOUNT)["data"][
        "secret_id_accessor"
    ]
    scope = DiscoveryScope(aws_account_ids=(LOCAL_ACCOUNT_ID,))
    refs = discover_workload_credentials(vault, AwsClientFactory(), workload.spiffe_id, scope)
    return HeldEstate(workload, refs, held_token, held_secret_id)


def set_entity_hold(vault: hvac.Client, workload: SeededWorkload, hold: str | None) -> None:
    metadata = {"spiffe_id": workload.spiffe_id} | ({VAULT_HOLD_KEY: hold} if hold else {})
    vault.write(f"identity/entity/id/{workload.entity_id}", metadata=metadata)


def set_kv_hold(vault: hvac.Client, workload: SeededWorkload, hold: str | None) -> None:
    metadata = {"spiffe_id": workload.spiffe_id} | ({VAULT_HOLD_KEY: hold} if hold else {})
    vault.secrets.kv.v2.update_metadata(workload.kv_paths[0], custom_metadata=metadata, mount_point=KV_MOUNT)


def set_iam_hold(workload: SeededWorkload, hold: str | None) -> None:
    iam = boto3.client("iam")
    if hold:
        iam.tag_user(UserName=workload.iam_user, Tags=[{"Key": AWS_HOLD_TAG, "Value": hold}])
    else:
        iam.untag_user(UserName=workload.iam_user, TagKeys=[AWS_HOLD_TAG])


def guard_request(workload_id: str, refs: list[CredentialRef], *, dry_run: bool) -> ResponseRequest:
    event_id = str(uuid.uuid4())
    return ResponseRequest(
        incident_id=offboarding_execution_name(workload_id, event_id),
        workload_id=workload_id,
        reason="guard property",
        trigger=Trigger(source="rescind", detail_type="Workload Terminated", event_id=event_id),
        terminated_at=datetime.now(UTC),
        dry_run=dry_run,
        credentials=tuple(refs),
    )


HOLD_VALUES = st.sampled_from(["incident-review", "true", "1", "legal hold 2026", "yes"])
NO_HOLD = st.none()
# Rare enough that most examples reach the cap, common enough that every branch is drawn.
SOMETIMES = st.sampled_from([False, False, False, True])


@pytest.mark.parametrize("examples", SIZES)
def test_holds_protection_and_the_cap_decide_every_plan_and_the_guard_writes_nothing(
    aws: None, vault: hvac.Client, unique: str, backend_calls: BackendCalls, examples: int
) -> None:
    estate = seed_held_estate(vault, f"guard-{unique}")
    workload = estate.workload
    assert len(estate.refs) == 9  # entity, 3 tokens, 2 secret-ids, certificate, KV secret, IAM key
    aws_factory = AwsClientFactory()
    scope = DiscoveryScope(aws_account_ids=(LOCAL_ACCOUNT_ID,))

    @sized(examples)
    @given(
        chosen=st.sets(st.integers(0, len(estate.refs) - 1), min_size=1),
        entity_hold=NO_HOLD | NO_HOLD | HOLD_VALUES,
        kv_hold=NO_HOLD | NO_HOLD | HOLD_VALUES,
        iam_hold=NO_HOLD | NO_HOLD | HOLD_VALUES,
        protected=SOMETIMES,
        flow=st.sampled_from(["offboarding", "leak"]),
        cap=st.integers(1, 12),
        dry_run=SOMETIMES,
    )
    def property_holds(
        chosen: set[int],
        entity_hold: str | None,
        kv_hold: str | None,
        iam_hold: str | None,
        protected: bool,
        flow: str,
        cap: int,
        dry_run: bool,
    ) -> None:
        # Given holds placed by owners (outside the counted window) and any plan over the workload's credentials
        set_entity_hold(vault, workload, entity_hold)
        set_kv_hold(vault, workload, kv_hold)
        set_iam_hold(workload, iam_hold)
        refs = [estate.refs[index] for index in sorted(chosen)]
        policy = GuardPolicy(
            protected_workloads=frozenset({workload.spiffe_id} if protected else set()), blast_radius_cap=cap
        )
        request = guard_request(workload.spiffe_id, refs, dry_run=dry_run)

        # When the guard decides
        backend_calls.vault.clear()
        backend_calls.aws.clear()
        if flow == "offboarding":
            plan, decided = build_offboarding_plan(
                request, vault=vault, aws=aws_factory, inventory=None, scope=scope, policy=policy
            )
        else:
            plan, decided = build_leak_plan(request, vault=vault, aws=aws_factory, policy=policy)

        # Then it wrote nothing anywhere,
        assert vault_writes(backend_calls) == []
        assert aws_writes(backend_calls) == []
        # and a protected workload or any held credential in the plan refuses the whole plan,
        held = {
            ref.key
            for ref in estate.refs
            if (isinstance(ref, VaultEntityRef) and entity_hold)
            or (isinstance(ref, KvSecretRef) and kv_hold)
            or (isinstance(ref, IamAccessKeyRef) and iam_hold)
            or ref.key.endswith((estate.held_token, estate.held_secret_id))
        }
        if protected or held & {ref.key for ref in refs}:
            assert decided.decision is GuardDecision.REFUSE, decided.decision_reason
            return
        # while a plan with no hold is never refused, and above the cap it always waits for approval
        assert plan.actions
        expected = (
            GuardDecision.DRY_RUN
            if dry_run
            else GuardDecision.NEEDS_APPROVAL
            if len(plan.actions) > cap
            else GuardDecision.PROCEED
        )
        assert decided.decision is expected, (len(plan.actions), cap, decided.decision_reason)

    property_holds()

    # And after every example, each credential of the estate still works
    set_entity_hold(vault, workload, None)
    set_kv_hold(vault, workload, None)
    set_iam_hold(workload, None)
    proofs = prove_by_use(vault, vault.url, boto3.client("iam"), workload, expected="alive")
    assert [proof for proof in proofs if not proof.passed] == []
    assert vault.auth.token.lookup_accessor(estate.held_token)["data"]["meta"][VAULT_HOLD_KEY] == "incident-review"


# --- whole runs through the state machines -------------------------------------------------------------------


def deploy(openbao: LocalOpenBao, **parameters: str) -> LocalStack:
    return deploy_local_stack(openbao, **parameters)


def offboarding_input(workload: SeededWorkload) -> ResponseRequest:
    event_id = str(uuid.uuid4())
    return ResponseRequest(
        incident_id=offboarding_execution_name(workload.spiffe_id, event_id),
        workload_id=workload.spiffe_id,
        reason="workload terminated",
        trigger=Trigger(
            source="rescind", detail_type="Workload Terminated", event_id=event_id, workload_id=workload.spiffe_id
        ),
        terminated_at=datetime.now(UTC),
    )


def leak_event(secret_type: str, secret: str) -> dict[str, Any]:
    event = load_event("secret_leaked.json")
    event["id"] = str(uuid.uuid4())
    event["detail"]["secret_type"] = secret_type
    event["detail"]["secret"] = secret
    return event


def leak_execution_arns(stack: LocalStack) -> list[str]:
    sfn = boto3.client("stepfunctions")
    listed = sfn.list_executions(stateMachineArn=stack.state_machine_arn("LeakResponseStateMachine"))["executions"]
    return [item["executionArn"] for item in listed]


HOLD_PLACEMENTS: dict[str, Callable[[hvac.Client, SeededWorkload], None]] = {
    "tag rescind:hold on the IAM user": lambda vault, w: set_iam_hold(w, "incident-review"),
    "rescind_hold on the KV secret": lambda vault, w: set_kv_hold(vault, w, "incident-review"),
    "rescind_hold on the entity": lambda vault, w: set_entity_hold(vault, w, "incident-review"),
}


@pytest.fixture
def guarded_workload(aws: None, vault: hvac.Client, unique: str) -> SeededWorkload:
    prepare_vault(vault)
    return seed_workload(vault, boto3.client("iam"), f"sm-{unique}", f"spiffe://guards.rescind/sm-{unique}")


@pytest.mark.parametrize("placement", list(HOLD_PLACEMENTS))
def test_an_offboarding_run_with_a_hold_is_refused_and_writes_to_no_credential(
    openbao: LocalOpenBao,
    vault: hvac.Client,
    guarded_workload: SeededWorkload,
    backend_calls: BackendCalls,
    placement: str,
) -> None:
    # Given an owner's hold on one of the workload's credentials
    HOLD_PLACEMENTS[placement](vault, guarded_workload)
    request = offboarding_input(guarded_workload)
    with deploy(openbao) as stack:
        # When its offboarding runs through the state machine
        backend_calls.vault.clear()
        backend_calls.aws.clear()
        execution = stack.run_execution(
            "OffboardingStateMachine", request.model_dump(mode="json"), name=request.incident_id, timeout=60
        )
        writes = vault_writes(backend_calls), aws_writes(backend_calls, CREDENTIAL_SERVICES)
        view = DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb")).read_incident(
            request.incident_id
        )

    # Then it is refused, recorded as refused with no attempt, and nothing was written to Vault or IAM
    assert execution["status"] == "FAILED"
    assert writes == ([], [])
    assert view.attempts == ()
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.REFUSED
    proofs = prove_by_use(vault, openbao.addr, boto3.client("iam"), guarded_workload, expected="alive")
    assert [proof for proof in proofs if not proof.passed] == []


def test_a_leak_of_a_protected_workloads_token_is_refused_and_the_token_lives(
    openbao: LocalOpenBao, vault: hvac.Client, guarded_workload: SeededWorkload, backend_calls: BackendCalls
) -> None:
    accessor = guarded_workload.token_accessors[0]
    with deploy(openbao, ProtectedWorkloads=guarded_workload.spiffe_id) as stack:
        backend_calls.vault.clear()
        backend_calls.aws.clear()
        stack.route_event(leak_event("vault_token", guarded_workload.token_value(accessor)))
        (arn,) = leak_execution_arns(stack)
        execution = wait_for_execution(boto3.client("stepfunctions"), arn, 60)
        writes = vault_writes(backend_calls), aws_writes(backend_calls, CREDENTIAL_SERVICES)

    assert execution["status"] == "FAILED"
    assert writes == ([], [])
    proofs = prove_by_use(vault, openbao.addr, boto3.client("iam"), guarded_workload, expected="alive")
    assert [proof for proof in proofs if not proof.passed] == []


def test_a_leak_response_above_the_cap_waits_for_approval_and_touches_nothing_while_it_waits(
    openbao: LocalOpenBao, vault: hvac.Client, guarded_workload: SeededWorkload, backend_calls: BackendCalls
) -> None:
    # Given a cap of one action, and a leaked access key (deactivate, then delete: two actions)
    (key_id,) = guarded_workload.access_key_ids
    with deploy(openbao, BlastRadiusCap="1") as stack:
        backend_calls.vault.clear()
        backend_calls.aws.clear()
        # When the leak is reported
        stack.route_event(leak_event("aws_access_key", key_id))
        (arn,) = leak_execution_arns(stack)
        sfn = boto3.client("stepfunctions")

        # Then the execution waits at the approval task, the plan says why, and the key is still active
        token = wait_for_task_token(sfn, arn)
        assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
        planned = [
            json.loads(event["taskSucceededEventDetails"]["output"])
            for event in sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
            if event["type"] == "TaskSucceeded"
        ]
        assert any(item.get("Payload", {}).get("decision") == "needs_approval" for item in planned), planned
        keys = boto3.client("iam").list_access_keys(UserName=guarded_workload.iam_user)["AccessKeyMetadata"]
        assert [key["Status"] for key in keys] == ["Active"]
        assert aws_writes(backend_calls, CREDENTIAL_SERVICES) == []

        # And a denied approval ends it refused, the key untouched
        sfn.send_task_failure(taskToken=token, error="ApprovalDenied", cause="not now")
        finished = wait_for_execution(sfn, arn, 60)
    assert finished["status"] == "FAILED"
    assert vault_writes(backend_calls) == []
    assert aws_writes(backend_calls, CREDENTIAL_SERVICES) == []
    keys = boto3.client("iam").list_access_keys(UserName=guarded_workload.iam_user)["AccessKeyMetadata"]
    assert [key["Status"] for key in keys] == ["Active"]


# --- revoke-force is never called ---------------------------------------------------------------------------

SOURCE_ROOTS = ["shared", "functions", "tools/rescind_cli", "tools/rescind_local", "statemachines"]
FORCE_SPELLINGS = ("revoke-force", "revoke_force", "revokeforce")


def code_strings_and_names(path: Path) -> Iterator[str]:
    """Every identifier, attribute and string literal of a module, docstrings excepted (they may explain the rule)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value
        elif isinstance(node, ast.Attribute):
            yield node.attr
        elif isinstance(node, ast.Name):
            yield node.id


def test_no_source_file_calls_revoke_force() -> None:
    scanned, found = 0, []
    for root in SOURCE_ROOTS:
        for path in sorted((REPO_ROOT / root).rglob("*")):
            if path.suffix == ".py":
                texts = list(code_strings_and_names(path))
            elif path.suffix in {".json", ".yaml", ".yml"}:
                texts = [path.read_text()]
            else:
                continue
            scanned += 1
            found += [f"{path.relative_to(REPO_ROOT)}: {text[:80]!r}" for text in texts if _names_force(text)]
    found += [
        f"template.yaml: {line}"
        for line in (REPO_ROOT / "template.yaml").read_text().splitlines()
        if _names_force(line)
    ]
    assert scanned > 50
    assert found == []


def _names_force(text: str) -> bool:
    folded = text.lower().replace(" ", "")
    return any(spelling in folded for spelling in FORCE_SPELLINGS)


def test_the_source_scan_would_see_a_revoke_force_call(tmp_path: Path) -> None:
    # The scan above must be able to fail: a call hidden in code is found, the same words in a docstring are not.
    module = tmp_path / "bad.py"
    module.write_text('"""revoke-force is never used."""\n\ndef drop(c):\n    c.sys.revoke_force("pki/")\n')
    assert [text for text in code_strings_and_names(module) if _names_force(text)] == ["revoke_force"]


def audit_paths(openbao: LocalOpenBao, since: int) -> list[str]:
    """The request paths OpenBao's audit device logged after byte offset `since`."""
    with openbao.audit_log.open("rb") as log:
        log.seek(since)
        lines = log.read().decode(errors="replace").splitlines()
    return [str((json.loads(line).get("request") or {}).get("path", "")) for line in lines if line.strip()]


def test_a_whole_offboarding_and_a_lease_clean_up_never_reach_revoke_force_in_the_audit_log(
    openbao: LocalOpenBao, vault: hvac.Client, guarded_workload: SeededWorkload, unique: str
) -> None:
    start = openbao.audit_log.stat().st_size
    lease_prefix = issue_leased_certificates(vault, unique, count=2)
    with deploy(openbao) as stack:
        request = offboarding_input(guarded_workload)
        execution = stack.run_execution(
            "OffboardingStateMachine", request.model_dump(mode="json"), name=request.incident_id, timeout=60
        )
    assert execution["status"] == "SUCCEEDED", execution
    assert revoke_prefix(vault, lease_prefix).changed is True

    paths = audit_paths(openbao, start)
    assert any(path.startswith("auth/token/revoke-accessor") for path in paths)  # the log is the run's
    assert any(path.startswith("sys/leases/revoke-prefix/") for path in paths)
    assert [path for path in paths if "revoke-force" in path] == []


# --- revoke-prefix refuses anything broader than mount + endpoint + role -------------------------------------------


def issue_leased_certificates(vault: hvac.Client, unique: str, *, count: int) -> str:
    """A PKI mount whose certificates carry leases; returns the lease prefix mount/issue/role."""
    mount = f"leased-{unique}"
    vault.sys.enable_secrets_engine("pki", path=mount, config={"max_lease_ttl": "87600h"})
    vault.secrets.pki.generate_root(
        "internal", "guards.rescind", extra_params={"key_type": "ec", "ttl": "87600h"}, mount_point=mount
    )
    vault.secrets.pki.create_or_update_role(
        "svc",
        {
            "allowed_domains": "guards.rescind",
            "allow_subdomains": True,
            "key_type": "ec",
            "ttl": "1h",
            "generate_lease": True,
        },
        mount_point=mount,
    )
    for index in range(count):
        vault.secrets.pki.generate_certificate("svc", f"c{index}.guards.rescind", mount_point=mount)
    return f"{mount}/issue/svc"


def unsafe_prefixes(mount: str, nested_mount: str) -> st.SearchStrategy[str]:
    """Prefixes that each break one rule: too short, traversal, odd segments, system mounts, no role."""
    plain = st.from_regex(r"[A-Za-z0-9_\-]{1,12}", fullmatch=True)
    odd = st.sampled_from(["..", ".", "", "*", "+", "a b", "é", "%2e%2e", "~", "$", "\t"])
    return st.one_of(
        st.sampled_from(["", " ", "/", "//", "*", "..", ".", "../..", mount, f"{mount}/", f"{mount}/issue"]),
        st.lists(plain, min_size=0, max_size=2).map("/".join),  # shorter than mount + role
        st.lists(plain, min_size=0, max_size=1).map(lambda rest: "/".join([mount, *rest])),
        st.tuples(st.lists(plain, min_size=3, max_size=5), st.integers(0, 5), odd).map(
            lambda t: "/".join([*t[0][: t[1]], t[2], *t[0][t[1] :]])
        ),
        st.lists(plain, min_size=2, max_size=4).map(lambda rest: "/" + "/".join(rest)),  # leading '/'
        st.lists(plain, min_size=2, max_size=4).map(lambda rest: f"{mount}/issue/{'/'.join(rest)}/../../.."),
        st.sampled_from(["sys", "identity", "cubbyhole"]).flatmap(
            lambda system: st.lists(plain, min_size=2, max_size=3).map(lambda rest: "/".join([system, *rest]))
        ),
        st.just(f"{nested_mount}/issue"),  # a two-segment mount: three segments, but no role below it
        st.just(f"{nested_mount}/issue/"),
    )


@pytest.mark.parametrize("examples", SIZES)
def test_revoke_prefix_refuses_every_unsafe_prefix_before_any_change(
    vault: hvac.Client, unique: str, backend_calls: BackendCalls, examples: int
) -> None:
    # Given leases under a real role, and a mount two segments deep
    lease_prefix = issue_leased_certificates(vault, unique, count=2)
    mount = lease_prefix.split("/")[0]
    nested_mount = f"team-{unique}/pki"
    vault.sys.enable_secrets_engine("pki", path=nested_mount)
    before = list_leases_under(vault, lease_prefix)
    assert len(before) == 2

    @sized(examples)
    @given(prefix=unsafe_prefixes(mount, nested_mount))
    def property_refuses(prefix: str) -> None:
        backend_calls.vault.clear()
        # When revoke-prefix is asked for it, Then it is refused by name, having only read (mount lookups)
        with pytest.raises(UnsafePrefix):
            revoke_prefix(vault, prefix)
        assert [call for call in backend_calls.vault if not call.startswith("GET ")] == []

    property_refuses()

    # And every lease is still there; the narrowest safe prefix revokes them, and again finds none
    assert list_leases_under(vault, lease_prefix) == before
    first, second = revoke_prefix(vault, lease_prefix), revoke_prefix(vault, lease_prefix)
    assert (first.changed, second.changed, second.detail) == (True, False, "already absent: no lease under the prefix")
    assert list_leases_under(vault, lease_prefix) == []
