"""Every flow run under Vault tokens that carry only the policy of the function running each step, never root.

The policies are the ones `rescind vault setup` writes (tools/rescind_cli/vault_policies/, rendered for this
stack's mounts). Each function of the template gets its own token (as each deployed function logs in to its own
AWS auth role): the planners the planner's, ExecuteAction the actor's, and so on; a function that has no Vault
role gets a token that may do nothing. Then: an offboarding (plan, execute, verify), six leaks (locate, revoke
or rotate, verify), a manual run on two leases, every schedule that touches Vault, and a responder's direct revocation
under the responder policy. OpenBao's audit log (its own server, so only this module's requests) then shows:
no request of any of them was denied, each role was used by its functions, and each grant was used by a flow.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import hvac
import pytest

from rescind.ledger import DynamoDbLedger, IncidentStatus
from rescind.models import DatabaseRootRef, DatabaseStaticRoleRef, VaultLeaseRef
from rescind.offboarding.manual import build_manual_request
from rescind.schedules import runtime as schedules_runtime
from rescind_cli.function_url import post_signed
from rescind_cli.vault_access import (
    FUNCTION_ROLES,
    PolicyRule,
    VaultMounts,
    expand,
    policy_name,
    read_policy_template,
    render_hcl,
)
from rescind_local import LocalOpenBao, local_aws
from rescind_local.aws import LOCAL_REGION
from rescind_local.function_urls import serve_function_urls
from rescind_local.lambdas import forget_loaded_handlers
from rescind_local.proof import prove_by_use
from rescind_local.seed import KV_ROTATION, SeededWorkload, prepare_vault, seed_workload
from rescind_local.stack import LocalStack, deploy_template_to_moto
from rescind_local.stepfunctions import wait_for_execution
from rescind_local.template import load_template
from tests.conftest import load_event
from tests.flows.test_leak_alerts import assert_each_action_acted_once
from tests.flows.test_offboarding import offboarding_request, principal, wait_for_task_token
from tests.integration.cli.test_direct import Direct
from tests.integration.issuance.test_audit_index import audit_lines, subscription_event
from tests.integration.schedules.test_ttl_ceilings import seed_estate
from tests.integration.vault.redis_server import mount_redis_database, running_redis
from tests.postgres import PostgresServer, postgres_server

__all__ = ["postgres_server"]  # the fixture, imported for pytest

pytestmark = pytest.mark.timeout(600)

PREFIX = "rescind-least"
KV = "kv-least"
DATABASE = "db-least"
POSTGRES = "pg-least"  # a database mount on PostgreSQL: a static role and the connection's root are rotated
APP_USER = "least_app"  # an application's PostgreSQL login, kept in KV and rotated through the PostgreSQL hook
PARAMETERS = {
    "VaultAwsAuthRole": PREFIX,
    "PkiMounts": "pki",
    "AppRoleMounts": "approle",
    "KvMounts": f"secret,{KV}",
    "LeaseMounts": f"{DATABASE},{POSTGRES}",
    # The locator hashes a leaked value with this device and finds its issuance in the index.
    "VaultAuditDevicePath": "to-file",
    # The drift check compares every live credential, so each of its grants is used whatever the draw.
    "IssuanceDriftSampleSize": "10000",
    "SchedulePolicy": json.dumps(
        {
            "rotation_max_age": [
                {"kv_prefix": f"{KV}/apps/", "max_age_days": 30},
                {"static_role_prefix": f"{POSTGRES}/", "max_age_days": 30},
            ],
            "ttl_ceilings": {"lease_seconds": 3600, "mount_seconds": 14 * 86400},
        }
    ),
}
MOUNTS = VaultMounts.from_parameters(PARAMETERS)
NO_VAULT = "no-vault"  # the token of the functions that never call Vault
# Granted, and needed, but no flow on a local stack reaches them: the reason for each.
NOT_REACHED_LOCALLY = {
    # The functions here get a static token (VAULT_AUTH_METHOD=token); renewals are VaultSession's, tested in
    # tests/integration/vault/test_session.py under the same grants.
    *{(role.name, "auth/token/renew-self", "update") for role in FUNCTION_ROLES if role.functions},
    # VaultSession's lookup-self after a 403 (a dead token, or a denial?); no flow here is refused. The actor, the
    # locator (killing first) and the sweeper also look themselves up (never to revoke or lower their own token).
    *{
        (role, "auth/token/lookup-self", "read")
        for role in ("planner", "verifier", "reporter", "drift", "rotation-hook")
    },
    # The kill first's live bound on a leaked token's tree, read only without the issuance index (this stack has one):
    # may it create tokens (capabilities-accessor, through a token role), then every live token.
    *{("locator", "auth/token/accessors", capability) for capability in ("list", "sudo")},
    ("locator", "auth/token/roles", "list"),
    ("locator", "sys/capabilities-accessor", "update"),
    # A rerun of a crashed createSecret writes the staging copy again (an update); tests/reliability crashes it.
    *{(role, "{kv}/data/_rescind-pending/*", "update") for role in ("actor", "sweeper")},
}


# --- the audit log: who asked what, and what was answered ---------------------------------------------------


@dataclass(frozen=True)
class Request:
    policies: frozenset[str]
    operation: str
    path: str
    error: str


def audit_responses(log: Path) -> list[Request]:
    """Every answered request of the module's OpenBao, with the token's policies and the error it got."""
    found = []
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("type") != "response":
            continue
        auth = entry.get("auth") or {}
        request = entry.get("request") or {}
        found.append(
            Request(
                policies=frozenset(auth.get("token_policies") or auth.get("policies") or ()),
                operation=str(request.get("operation") or ""),
                path=str(request.get("path") or ""),
                error=str(entry.get("error") or ""),
            )
        )
    return found


def rule_covers(rule: PolicyRule, request: Request) -> bool:
    """Vault's matching: `+` is one segment, a trailing `*` any suffix, else the whole path (a LIST's slash aside)."""
    parts = re.split(r"(\+|\*$)", rule.path)
    regex = "".join("[^/]+" if part == "+" else ".*" if part == "*" else re.escape(part) for part in parts)
    path = request.path.rstrip("/") if request.operation == "list" and not rule.path.endswith("*") else request.path
    return re.fullmatch(regex, path) is not None


def capabilities_used(rule: PolicyRule, requests: list[Request]) -> set[str]:
    used = {request.operation for request in requests if rule_covers(rule, request)}
    return (used & rule.capabilities) | ({"sudo"} if used and "sudo" in rule.capabilities else set())


# --- the deployment: one token per function role --------------------------------------------------------------


def role_tokens(root: hvac.Client) -> dict[str, str]:
    """Writes each role's rendered policy, and mints a token that carries only it (no default policy)."""
    tokens = {}
    for role in FUNCTION_ROLES:
        name = policy_name(PREFIX, role)
        root.sys.create_or_update_policy(name, render_hcl(role, MOUNTS))
        tokens[role.name] = mint(root, name)
    root.sys.create_or_update_policy(f"{PREFIX}-{NO_VAULT}", 'path "*" {\n  capabilities = ["deny"]\n}\n')
    tokens[NO_VAULT] = mint(root, f"{PREFIX}-{NO_VAULT}")
    return tokens


def mint(root: hvac.Client, policy: str) -> str:
    return str(root.auth.token.create(policies=[policy], no_default_policy=True, ttl="2h")["auth"]["client_token"])


def template_with_function_tokens(tokens: dict[str, str]) -> dict[str, Any]:
    """template.yaml with each function's VAULT_TOKEN its role's, as each deployed function logs in as its own."""
    template = copy.deepcopy(load_template())
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        role = next((role.name for role in FUNCTION_ROLES if logical_id in role.functions), NO_VAULT)
        variables = resource.setdefault("Properties", {}).setdefault("Environment", {}).setdefault("Variables", {})
        variables["VAULT_TOKEN"] = tokens[role]
    return template


# --- the flows --------------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    bao: LocalOpenBao
    root: hvac.Client
    workloads: dict[str, SeededWorkload]
    executions: dict[str, dict[str, Any]] = field(default_factory=dict)
    incidents: dict[str, Any] = field(default_factory=dict)
    schedules: dict[str, dict[str, Any]] = field(default_factory=dict)
    direct: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    leases: dict[str, str] = field(default_factory=dict)
    login_tokens: dict[str, str] = field(default_factory=dict, repr=False)
    child_token: str = field(default="", repr=False)
    static_user: str = ""
    postgres: PostgresServer | None = None
    requests: list[Request] = field(default_factory=list)

    def under(self, role: str) -> list[Request]:
        name = f"{PREFIX}-{role}"
        return [request for request in self.requests if name in request.policies]


def leak_event(secret_type: str, secret: str | None = None, sha256: str | None = None) -> dict[str, Any]:
    event = load_event("secret_leaked.json")
    event["id"] = str(uuid.uuid4())
    event["detail"]["secret_type"] = secret_type
    event["detail"].pop("secret", None)
    if secret is not None:
        event["detail"]["secret"] = secret
    if sha256 is not None:
        event["detail"]["secret_sha256"] = sha256
    return event


def run_leaks(stack: LocalStack, scenario: Scenario) -> None:
    from rescind.fingerprints.dynamodb import DynamoDbFingerprintIndex
    from rescind.fingerprints.indexing import index_kv_mount
    from rescind.fingerprints.runtime import read_fingerprint_key

    leak = scenario.workloads["leak"]
    key = read_fingerprint_key(boto3.client("secretsmanager"), stack.physical_id("FingerprintKeySecret"))
    index = DynamoDbFingerprintIndex(stack.physical_id("FingerprintTable"), boto3.client("dynamodb"))
    index_kv_mount(scenario.root, index, key, "secret", prefix=f"apps/{leak.name}/")
    kv_value = leak.kv_before(leak.kv_paths[0])["password"]
    events = {
        "leak_token": leak_event("vault_token", scenario.login_tokens["leak"]),
        "leak_secret_id": leak_event("vault_secret_id", leak.secret_id_value(leak.secret_id_accessors[0])),
        "leak_certificate": leak_event("certificate", leak.certificate_pem(leak.certificate_serials[0])),
        "leak_kv": leak_event("kv_value", sha256=hashlib.sha256(kv_value.encode()).hexdigest()),
        "leak_database": leak_event(
            "database_password", scenario.root.read(f"{POSTGRES}/static-creds/billing")["data"]["password"]
        ),
        "leak_issued_value": leak_event("vault_issued_value", issued_value(stack, scenario)),
    }
    sfn = boto3.client("stepfunctions")
    machine = stack.state_machine_arn("LeakResponseStateMachine")
    for name, event in events.items():
        seen = {item["executionArn"] for item in sfn.list_executions(stateMachineArn=machine)["executions"]}
        (match,) = stack.route_event(event)
        assert [delivery.error_type for delivery in match.deliveries] == [None], name
        (started,) = [
            item["executionArn"]
            for item in sfn.list_executions(stateMachineArn=machine)["executions"]
            if item["executionArn"] not in seen
        ]
        scenario.executions[name] = wait_for_execution(sfn, started, 60)


def issued_value(stack: LocalStack, scenario: Scenario) -> str:
    """A dynamic database password, its issuance delivered to the index as the audit log subscription would."""
    start = scenario.bao.audit_log.stat().st_size
    issued = scenario.root.secrets.database.generate_credentials("app", mount_point=DATABASE)
    scenario.leases["leaked"] = issued["lease_id"]
    lines = audit_lines(scenario.bao.audit_log, start)
    report, error = stack.invoke("IndexAuditLogFunction", subscription_event(lines))
    assert error is None, report
    return str(issued["data"]["password"])


def run_schedules(stack: LocalStack, scenario: Scenario) -> None:
    def run(schedule: str, days_ahead: int = 0, label: str = "") -> None:
        with pytest.MonkeyPatch.context() as patch:
            # The sweeps' clock runs ahead (KV's created_time cannot be set in the past). The handler binds
            # current_time when it is imported: forget loaded handlers so this run imports it under this clock.
            patch.setattr(schedules_runtime, "current_time", lambda: datetime.now(UTC) + timedelta(days=days_ahead))
            forget_loaded_handlers()
            payload, error = stack.run_schedule(schedule)
        forget_loaded_handlers()
        assert error is None, payload
        scenario.schedules[label or schedule] = payload

    # 40 days on, the stale secret is rotated; 10 days after its rotation (not yet due again), the grace period
    # of its previous version is over: destroyed
    run("RotationByAgeSchedule", 40)
    run("RotationByAgeSchedule", 10, "RotationByAgeScheduleAfterGrace")
    for schedule in ("TtlCeilingsSchedule", "PkiHygieneSchedule", "InventoryReportSchedule", "IndexDriftSchedule"):
        run(schedule)


def run_direct(scenario: Scenario, tokens: dict[str, str], workdir: Path) -> None:
    direct = Direct(scenario.bao, workdir)
    env: dict[str, str | None] = {
        "VAULT_TOKEN": tokens["responder"],
        "KV_MOUNTS": f"secret,{KV}",
        "LEASE_MOUNTS": DATABASE,
    }
    target = scenario.workloads["direct"]
    scenario.direct["workload"] = direct.json(
        "revoke", "--workload", target.spiffe_id, "--reason", "compromised host", "--yes", env=env
    )
    lease = f"vault-lease:{scenario.leases['direct']}"
    scenario.direct["lease"] = direct.json("revoke", "--credential", lease, "--reason", "leaked", "--yes", env=env)


def mount_postgres_database(root: hvac.Client, postgres: PostgresServer) -> str:
    """The PostgreSQL mount: a connection whose root is a CREATEROLE admin of its own (so rotating it leaves the
    test superuser alone) and a static role `billing`; the static role's database user."""
    admin, user, password = "least_vault_admin", "least_billing", uuid.uuid4().hex
    postgres.execute(f"CREATE ROLE {admin} LOGIN CREATEROLE PASSWORD '{password}'")
    postgres.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{uuid.uuid4().hex}'")
    postgres.execute(f"GRANT {user} TO {admin} WITH ADMIN OPTION")
    root.sys.enable_secrets_engine("database", path=POSTGRES)
    root.write(
        f"{POSTGRES}/config/pg",
        plugin_name="postgresql-database-plugin",
        connection_url=postgres.connection_url,
        username=admin,
        password=password,
        allowed_roles="*",
    )
    root.write(f"{POSTGRES}/static-roles/billing", db_name="pg", username=user, rotation_period="720h")
    return user


def run_database_rotations(stack: LocalStack, scenario: Scenario) -> None:
    """A responder rotates the static role in a manual run, then the connection's root in one a second person
    approves (the plan waits for it; the acting task checks the ledger's approval again)."""
    responder = "arn:aws:iam::123456789012:user/least-responder"

    def manual(ref: DatabaseStaticRoleRef | DatabaseRootRef, reason: str) -> Any:
        return build_manual_request(
            workload_id=None, credentials=[ref], reason=reason, ticket="SEC-7", requested_by=responder, dry_run=False
        )

    static = manual(DatabaseStaticRoleRef(mount=POSTGRES, role="billing"), "billing password in a log")
    scenario.executions["manual_static"] = stack.run_execution(
        "ManualRevocationStateMachine", static.model_dump(mode="json"), name=static.incident_id, timeout=120
    )
    root = manual(DatabaseRootRef(mount=POSTGRES, connection="pg"), "the admin who set the database up left")
    sfn = boto3.client("stepfunctions")
    with serve_function_urls(stack) as urls:
        arn = stack.start_execution("ManualRevocationStateMachine", root.model_dump(mode="json"), root.incident_id)
        wait_for_task_token(sfn, arn)
        _, approver = principal("least-approver")
        document = {"execution": arn, "decision": "approve", "reason": ""}
        status, body = post_signed(urls["AnswerApprovalFunction"], document, credentials=approver, region=LOCAL_REGION)
        assert status == 200, body
        scenario.executions["manual_root"] = wait_for_execution(sfn, arn, 120)


def seed_reachable_edges(scenario: Scenario) -> None:
    """What makes the flows reach every grant: a CRL rebuilt only on demand (so the actor rebuilds it after a
    revoke), a token that made a child (so the revocation looks for the tree), AppRole logins whose token has an
    entity (so the leak's locator checks what else the entity holds) and whose lease a manual run names."""
    root, addr = scenario.root, scenario.bao.addr
    root.write("pki/config/crl", auto_rebuild=True, auto_rebuild_grace_period="12h")

    offboard = scenario.workloads["offboard"]
    root.sys.create_or_update_policy("token-parent", 'path "auth/token/create" {\n  capabilities = ["update"]\n}\n')
    parent = root.auth.token.create(
        policies=["workload", "token-parent"], ttl="2h", meta={"spiffe_id": offboard.spiffe_id}
    )["auth"]
    user = hvac.Client(url=addr, token=parent["client_token"], timeout=10)
    scenario.child_token = user.auth.token.create(policies=["workload"], ttl="1h")["auth"]["client_token"]

    def approle_login(workload: SeededWorkload) -> str:
        role_id = root.auth.approle.read_role_id(workload.name, mount_point="approle")["data"]["role_id"]
        secret_id = workload.secret_id_value(workload.secret_id_accessors[0])
        anonymous = hvac.Client(url=addr, timeout=10)
        login = anonymous.auth.approle.login(role_id, secret_id, mount_point="approle", use_token=False)
        return str(login["auth"]["client_token"])

    scenario.login_tokens["leak"] = approle_login(scenario.workloads["leak"])
    before = set(root.adapter.list("/v1/sys/leases/lookup/auth/approle/login/")["data"]["keys"])
    approle_login(scenario.workloads["direct"])
    (new,) = set(root.adapter.list("/v1/sys/leases/lookup/auth/approle/login/")["data"]["keys"]) - before
    scenario.leases["manual_login"] = f"auth/approle/login/{new}"


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer) -> Iterator[Scenario]:
    with LocalOpenBao() as bao, running_redis() as redis_server, local_aws():
        root = hvac.Client(url=bao.addr, token=bao.root_token, timeout=10)
        # Given an estate: over-long TTLs (the TTL sweep's), the demo's mounts, a database of renewable leases,
        # stale KV secrets, and three workloads: one offboarded, one whose credentials leak, one revoked directly
        seed_estate(root)
        prepare_vault(root)
        mount_redis_database(root, DATABASE, redis_server)
        scenario_static_user = mount_postgres_database(root, postgres_server)
        root.sys.enable_secrets_engine("kv", path=KV, options={"version": "2"})
        # An application's PostgreSQL login in KV, rotated by the stack's PostgreSQL hook (declared once deployed)
        app_password = uuid.uuid4().hex
        postgres_server.execute(f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{app_password}'")
        app_value = {"username": APP_USER, "password": app_password, "host": postgres_server.host}
        app_value["port"] = str(postgres_server.port)
        root.secrets.kv.v2.create_or_update_secret("apps/db", secret=app_value, mount_point=KV)
        iam = boto3.client("iam")
        workloads = {
            "offboard": seed_workload(root, iam, "offboard", "spiffe://least.rescind/offboard"),
            "leak": seed_workload(root, iam, "leak", "spiffe://least.rescind/leak"),
            "direct": seed_workload(root, None, "direct", "spiffe://least.rescind/direct"),
        }
        scenario = Scenario(
            bao=bao, root=root, workloads=workloads, static_user=scenario_static_user, postgres=postgres_server
        )
        seed_reachable_edges(scenario)
        for name in ("manual", "direct", "swept"):
            scenario.leases[name] = root.secrets.database.generate_credentials("app", mount_point=DATABASE)["lease_id"]
        scenario.leases["manual_pki"] = root.write("pki/issue/web", common_name="manual.least.rescind", ttl="1h")[
            "lease_id"
        ]
        tokens = role_tokens(root)

        with deploy_template_to_moto(
            template=template_with_function_tokens(tokens),
            parameters={"VaultAddr": bao.addr, **PARAMETERS},
            # The local PostgreSQL has no TLS
            function_environment={"VAULT_AUTH_METHOD": "token", "ROTATION_HOOK_POSTGRES_TLS": "disable"},
            time_scale=0.01,
        ) as stack:
            ledger = DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb"))
            hook = stack.functions["RotatePostgresFunction"].function_arn()
            declared = {**KV_ROTATION, "rescind_rotation_hook": hook, "rescind_rotate": "password"}
            root.secrets.kv.v2.update_metadata("apps/db", mount_point=KV, custom_metadata=declared)
            # When a workload is offboarded: plan (planner), contain and revoke (actor), verify (verifier)
            request = offboarding_request(workloads["offboard"])
            scenario.executions["offboarding"] = stack.run_execution(
                "OffboardingStateMachine", request.model_dump(mode="json"), name=request.incident_id, timeout=120
            )
            # And six credentials leak (a static role's database password, a value Vault issued): locate (locator),
            # plan (planner), act (actor), verify (verifier)
            run_leaks(stack, scenario)
            # And a responder revokes two leases by name through the stack
            leases = tuple(VaultLeaseRef(lease_id=scenario.leases[n]) for n in ("manual", "manual_pki", "manual_login"))
            manual = offboarding_request(workloads["direct"]).model_copy(update={"credentials": leases})
            scenario.executions["manual"] = stack.run_execution(
                "ManualRevocationStateMachine", manual.model_dump(mode="json"), name=manual.incident_id, timeout=120
            )
            # And a responder rotates a database static role, then (approved) the connection's root
            run_database_rotations(stack, scenario)
            # And every schedule that touches Vault fires (sweeper, reporter)
            run_schedules(stack, scenario)
            for name, execution in scenario.executions.items():
                scenario.incidents[name] = ledger.read_incident(execution["name"])
            # And Verify reads again (verifier) what no act's read-back proved, as it does after an acting batch
            # failed its retries: the targets of the offboarding and the manual runs (the runs above proved them all)
            for name in ("offboarding", "manual", "manual_static", "manual_root"):
                incident = scenario.incidents[name].incident
                assert incident is not None
                actions = [action.model_dump(mode="json") for action in incident.plan.actions]
                verified, error = stack.invoke(
                    "VerifyResponseFunction", {"incident_id": incident.incident_id, "actions": actions}
                )
                assert (error, verified["read_again_count"], verified["still_alive"]) == (None, len(actions), []), name
        # And a responder revokes a workload and a lease in direct mode, with a token carrying the responder policy
        run_direct(scenario, tokens, tmp_path_factory.mktemp("direct"))

        scenario.requests = audit_responses(bao.audit_log)
        yield scenario


# --- what the flows did ----------------------------------------------------------------------------------------


def assert_completed(scenario: Scenario, name: str) -> None:
    execution, view = scenario.executions[name], scenario.incidents[name]
    failed = [(a.result.target.key, a.result.error_type, a.result.detail) for a in view.attempts if a.result.error_type]
    assert execution["status"] == "SUCCEEDED", (name, failed, view.closure)
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.COMPLETED, (name, view.closure)
    assert view.attempts
    assert_each_action_acted_once(view.attempts)  # a leak's start function kills first


def test_an_offboarding_plans_acts_and_verifies_under_the_functions_policies(scenario: Scenario) -> None:
    assert_completed(scenario, "offboarding")
    workload = scenario.workloads["offboard"]
    dead = prove_by_use(scenario.root, scenario.bao.addr, boto3.client("iam"), workload, expected="dead")
    assert [proof for proof in dead if not proof.passed] == []
    # And the child its token had made died with it
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=scenario.bao.addr, token=scenario.child_token, timeout=10).auth.token.lookup_self()


@pytest.mark.parametrize(
    "leak", ["leak_token", "leak_secret_id", "leak_certificate", "leak_kv", "leak_database", "leak_issued_value"]
)
def test_each_leak_is_located_revoked_and_verified_under_the_functions_policies(scenario: Scenario, leak: str) -> None:
    assert_completed(scenario, leak)


def test_a_leaked_value_vault_issued_is_located_through_the_audit_hash_and_its_lease_revoked(
    scenario: Scenario,
) -> None:
    assert [action.target for action in scenario.incidents["leak_issued_value"].incident.plan.actions] == [
        VaultLeaseRef(lease_id=scenario.leases["leaked"])
    ]
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid lease"):
        scenario.root.sys.read_lease(scenario.leases["leaked"])


def test_a_manual_run_revokes_leases_under_the_functions_policies(scenario: Scenario) -> None:
    assert_completed(scenario, "manual")
    for name in ("manual", "manual_pki", "manual_login"):
        with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid lease"):
            scenario.root.sys.read_lease(scenario.leases[name])


def test_manual_runs_rotate_a_database_static_role_and_an_approved_root_under_the_functions_policies(
    scenario: Scenario,
) -> None:
    for name in ("manual_static", "manual_root"):
        assert_completed(scenario, name)
    rotated = {
        name: {attempt.result.target for attempt in scenario.incidents[name].attempts}
        for name in ("manual_static", "manual_root")
    }
    assert rotated == {
        "manual_static": {DatabaseStaticRoleRef(mount=POSTGRES, role="billing")},
        "manual_root": {DatabaseRootRef(mount=POSTGRES, connection="pg")},
    }
    assert [approval.verdict.value for approval in scenario.incidents["manual_root"].approvals] == ["approved"]


def test_the_schedules_sweep_under_the_sweeper_reporter_and_drift_policies(scenario: Scenario) -> None:
    for name in ("RotationByAgeSchedule", "TtlCeilingsSchedule", "PkiHygieneSchedule"):
        statuses = {change["status"] for change in scenario.schedules[name]["changes"]}
        assert "failed" not in statuses, (name, scenario.schedules[name])
    for name in ("RotationByAgeSchedule", "RotationByAgeScheduleAfterGrace"):
        applied = {c["target"] for c in scenario.schedules[name]["changes"] if c["status"] == "applied"}
        assert f"kv_secret:{KV}:apps/db" in applied, scenario.schedules[name]["changes"]
    rotated = {c["target"] for c in scenario.schedules["RotationByAgeSchedule"]["changes"] if c["status"] == "applied"}
    assert DatabaseStaticRoleRef(mount=POSTGRES, role="billing").key in rotated
    versions = scenario.root.secrets.kv.v2.read_secret_metadata("apps/db", mount_point=KV)["data"]["versions"]
    assert versions["1"]["destroyed"] is True
    # The rotation went through the PostgreSQL hook (under the rotation-hook policy): the new password logs in
    current = scenario.root.secrets.kv.v2.read_secret_version("apps/db", mount_point=KV, raise_on_deleted_version=True)
    current = current["data"]["data"]
    assert scenario.postgres is not None
    assert scenario.postgres.can_log_in(APP_USER, current["password"])
    lowered = {c["target"] for c in scenario.schedules["TtlCeilingsSchedule"]["changes"] if c["status"] == "applied"}
    assert f"vault_lease:{scenario.leases['swept']}" in lowered
    assert {"vault_ttl_target:mount:pki:", "vault_ttl_target:mount:auth/approle:"} <= lowered
    assert scenario.schedules["InventoryReportSchedule"]["total"] > 0
    # The index was never back-filled here: every live credential sampled is missing from it, so it is stale
    drift = scenario.schedules["IndexDriftSchedule"]
    assert drift["sampled_live"] > 0
    assert drift["missing_from_index"] == drift["sampled_live"]
    assert drift["stale"] is True


def test_a_direct_revocation_runs_under_the_responder_policy(scenario: Scenario) -> None:
    for name in ("workload", "lease"):
        code, document = scenario.direct[name]
        assert code == 0, document
        assert document["closure"]["status"] == "completed", document
    workload = scenario.workloads["direct"]
    dead = prove_by_use(scenario.root, scenario.bao.addr, None, workload, expected="dead")
    assert [proof for proof in dead if not proof.passed] == []


# --- what the audit log says ----------------------------------------------------------------------------------


def test_no_request_of_any_flow_was_denied(scenario: Scenario) -> None:
    ours = [request for request in scenario.requests if any(p.startswith(PREFIX) for p in request.policies)]
    assert ours
    denied = sorted({(sorted(r.policies)[0], r.operation, r.path) for r in ours if "permission denied" in r.error})
    assert denied == [], "denied:\n" + "\n".join(map(str, denied))


def test_each_function_called_vault_only_through_its_own_role(scenario: Scenario) -> None:
    for role in FUNCTION_ROLES:
        assert scenario.under(role.name), f"no request was made under the {role.name} policy"
    assert scenario.under(NO_VAULT) == []


def test_every_capability_each_policy_grants_was_used_by_some_flow(scenario: Scenario) -> None:
    """Each function role's policy (the responder's is their union by construction, checked through them)."""
    unused = set()
    for role in FUNCTION_ROLES:
        if not role.functions:
            continue
        requests = scenario.under(role.name)
        for name in role.templates():
            for rule in read_policy_template(name):
                used = set().union(*(capabilities_used(each, requests) for each in expand(rule, MOUNTS)))
                unused.update((role.name, rule.path, capability) for capability in rule.capabilities - used)
    assert unused == NOT_REACHED_LOCALLY, (
        "granted, never used:\n"
        + "\n".join(map(str, sorted(unused - NOT_REACHED_LOCALLY)))
        + "\nused after all:\n"
        + "\n".join(map(str, sorted(NOT_REACHED_LOCALLY - unused)))
    )
