"""Every handler, through its real entry point, fed malformed and hostile-but-valid input that it then executes.

Each Lambda function of template.yaml (functions/*/app.py) is invoked in-process on the template deployed to moto
with a real OpenBao, as test_bad_input.py does (its `open_harness`). Inputs, per handler:

- malformed: the mutations of test_bad_input.py (tests/reliability/strategies.py `mutated`, the webhook's bad
  deliveries);
- hostile but valid: well-shaped documents whose fields name what must never be touched (strategies.py
  `hostile_targets`): the mounts `sys`, `sys/raw`, `auth/token`, `identity`, `cubbyhole`; paths with `..`,
  `%2e%2e`, `//`, look-alike unicode and NUL; lease ids under `auth/token/revoke-prefix/` and
  `sys/leases/revoke-force/`; accessor-shaped strings; KV paths and PKI serials on unconfigured mounts; ARNs of
  other accounts and partitions; and the credentials and SPIFFE id of a protected workload seeded for the test.

What a parser accepts runs for real: against OpenBao and moto, Step Functions executions included (the start
handlers start them; their tasks run in-process and are recorded too). For every example:

(a) no unhandled exception: the handler answers, or raises one of Rescind's typed errors (a RescindError, which the
    state machines Retry or Catch by name); AttributeError, KeyError, TypeError, RecursionError... fail;
(b) no call outside the configured scope: every Vault request (method, path and JSON body, on hvac's adapter) and
    every AWS call (operation and parameters, on botocore) is checked against a scope derived from the deployed
    functions' own configuration (PKI_MOUNTS, APPROLE_MOUNTS, KV_MOUNTS, LEASE_MOUNTS, AWS_ACCOUNT_IDS,
    PROTECTED_WORKLOADS; see `Scope`); no write ever reaches `sys/` beyond lease and mount-tune endpoints under
    those mounts, `revoke-orphan`, `revoke-force`, or a protected workload's credentials.

After the examples, the protected workload's credentials are proven alive by use.

Sizes: RESCIND_FUZZ_FAST_EXAMPLES (default 40) per handler derandomized in the default run; under
`pytest -m slow`, RESCIND_FUZZ_EXAMPLES (default 10,000) across the handlers, each getting an equal share.
"""

from __future__ import annotations

import importlib
import json
import math
import pkgutil
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
import hvac
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import rescind
from rescind.config import RuntimeSettings
from rescind.exceptions import RescindError
from rescind_local import LOCAL_ACCOUNT_ID, LocalOpenBao
from rescind_local.github import local_github_api
from rescind_local.proof import prove_by_use
from rescind_local.seed import prepare_vault, seed_workload
from rescind_local.stack import LocalStack
from tests.reliability import strategies as bad
from tests.reliability.strategies import Protected
from tests.reliability.test_bad_input import (
    Harness,
    alert_fields,
    bad_webhook_deliveries,
    delivery,
    open_harness,
)

HANDLERS = (
    "ExecuteActionFunction",
    "PlanOffboardingFunction",
    "PlanLeakResponseFunction",
    "VerifyResponseFunction",
    "CloseIncidentFunction",
    "RequestApprovalFunction",
    "StartOffboardingFunction",
    "StartLeakResponseFunction",
    "GitHubWebhookFunction",
    "RotationByAgeFunction",
    "TtlCeilingsFunction",
    "OrphansFunction",
    "PkiHygieneFunction",
    "InventoryReportFunction",
    "AnswerApprovalFunction",
    "StartManualRevocationFunction",
    "LedgerArchiveFunction",
    "IndexAuditLogFunction",
    "IndexDriftFunction",
    "RotatePostgresFunction",
)
PER_HANDLER_FAST = bad.FAST_EXAMPLES
# The sweeps take three optional fields, and each run reads the whole estate (this module's own OpenBao, about
# 0.3 s a run): a few examples say what forty would.
SWEEPS = frozenset(
    {
        "RotationByAgeFunction",
        "TtlCeilingsFunction",
        "OrphansFunction",
        "PkiHygieneFunction",
        "InventoryReportFunction",
        "IndexDriftFunction",
    }
)
SWEEP_EXAMPLES_FAST = 6
SWEEP_EXAMPLES_FULL = 40
# At scale the sweeps keep their few examples; the other handlers share the rest of RESCIND_FUZZ_EXAMPLES.
PER_HANDLER_FULL = math.ceil((bad.SLOW_EXAMPLES - SWEEP_EXAMPLES_FULL * len(SWEEPS)) / (len(HANDLERS) - len(SWEEPS)))
PROTECTED_SPIFFE_ID = f"spiffe://protected.rescind/ns/core/sa/fuzz-{uuid.uuid4().hex[:8]}"
STACK_PARAMETERS = {
    "PkiMounts": "pki",
    "AppRoleMounts": "approle",
    "KvMounts": "secret",
    "LeaseMounts": "database",
    "ProtectedWorkloads": PROTECTED_SPIFFE_ID,
}


def handled_error_names() -> frozenset[str]:
    """Every RescindError subclass of the layer: the typed errors the state machines and queues expect."""
    for module in pkgutil.walk_packages(rescind.__path__, "rescind."):
        importlib.import_module(module.name)
    found, todo = set(), [RescindError]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return frozenset(found)


# --- the scope, from the deployed configuration ---------------------------------------------------------------

_ARN = re.compile(r"arn:([^:\s]*):([^:\s]*):([^:\s]*):([^:\s]*):")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_CANONICAL_SEGMENT = re.compile(r"^[A-Za-z0-9_.\-:@]+$")
# POSTs that only read: Vault takes what they look up in the body.
_READ_POSTS = frozenset(
    {
        "auth/token/lookup-accessor",
        "auth/token/lookup",
        "sys/leases/lookup",
        "sys/capabilities-accessor",
        "sys/capabilities-self",
        "identity/lookup/entity",
    }
)
_READ_POST_SUFFIXES = ("/secret-id-accessor/lookup", "/secret-id/lookup")
# The token store's endpoints Rescind may use: by accessor, on its own token, the accessor list and token roles.
_TOKEN_STORE = ("lookup-accessor", "revoke-accessor", "renew-accessor", "lookup-self", "renew-self", "lookup")
_AWS_READS = ("Get", "List", "Describe")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


# The parameters of an AWS call that address a resource (RoleArn, TopicArn, SecretId...), not the data it carries
# (a notification's Message, an event's Detail, a ledger item): an ARN quoted in data touches nothing.
_ADDRESSING = re.compile(r"(Arn|ARN|SecretId|ResourceId|Name)$")


def _addressing(params: Any) -> Iterator[str]:
    if isinstance(params, dict):
        for key, value in params.items():
            if isinstance(key, str) and _ADDRESSING.search(key):
                yield from _strings(value)
            elif isinstance(value, dict | list):
                yield from _addressing(value)
    elif isinstance(params, list):
        for item in params:
            yield from _addressing(item)


@dataclass(frozen=True)
class Scope:
    """What the deployed functions are configured to act on. Vault: their mounts, the token store by accessor,
    entities by id, leases under their mounts; AWS: their accounts, partition `aws`. Protected: never written."""

    pki: frozenset[str]
    approle: frozenset[str]
    kv: frozenset[str]
    leases: frozenset[str]
    accounts: frozenset[str]
    protected: Protected

    @classmethod
    def of(cls, stack: LocalStack, protected: Protected) -> Scope:
        environment = {**stack.functions["ExecuteActionFunction"].environment, "VAULT_TOKEN": "x"}
        configured = RuntimeSettings.from_environ(environment)
        assert configured.protected_workloads == (protected.spiffe_id,)

        def names(values: tuple[str, ...]) -> frozenset[str]:
            return frozenset(value.strip("/").removeprefix("auth/") for value in values)

        return cls(
            pki=names(configured.pki_mounts),
            approle=names(configured.approle_mounts),
            kv=names(configured.kv_mounts),
            leases=names(configured.lease_mounts),
            accounts=frozenset(configured.aws_account_ids) | {LOCAL_ACCOUNT_ID},
            protected=protected,
        )

    def lease_prefixes(self) -> tuple[str, ...]:
        return (*(f"{m}/" for m in self.pki | self.leases), *(f"auth/{m}/login/" for m in self.approle))

    def _under_lease_prefix(self, lease: Any) -> bool:
        return isinstance(lease, str) and self._canonical(lease.rstrip("/")) and lease.startswith(self.lease_prefixes())

    @staticmethod
    def _canonical(path: str) -> bool:
        return all(segment not in (".", "..") and _CANONICAL_SEGMENT.fullmatch(segment) for segment in path.split("/"))

    def vault_problem(self, method: str, url: str, body: Any) -> str | None:
        """Why this Vault request is outside the scope, or None."""
        raw = urlsplit(url).path
        path = unquote(raw).removeprefix("/").removeprefix("v1/").rstrip("/")
        if "revoke-force" in path or "revoke-orphan" in path:
            return "revoke-force and revoke-orphan are never called"
        if not self._canonical(path) or re.search(r"%(2e|2f|5c|25|00)", raw, re.IGNORECASE):
            return "a path that is not canonical (encoded, dot, empty or odd segments) may resolve elsewhere"
        reads = method in ("GET", "LIST") or (
            method in ("POST", "PUT") and (path in _READ_POSTS or path.endswith(_READ_POST_SUFFIXES))
        )
        text = json.dumps(body) if body is not None else ""
        if not reads:
            touched = [i for i in self.protected.identifiers() if i in path or i in text]
            if touched:
                return f"a write naming a protected workload's credential ({touched[0]})"
        first = path.split("/")[0]
        if first in self.pki | self.kv | self.leases:
            return None
        if path.startswith(tuple(f"auth/{m}/" for m in self.approle)):
            return None
        if path.startswith("auth/token/"):
            rest = path.removeprefix("auth/token/")
            listing = reads and rest in ("accessors", "roles")
            if rest in _TOKEN_STORE or listing or re.fullmatch(r"roles/[\w.\-]+", rest):
                return None
            return f"token store endpoint auth/token/{rest} is not Rescind's"
        if path.startswith("identity/"):
            if reads and path.startswith(("identity/entity/", "identity/entity-alias/", "identity/lookup/")):
                return None
            entity = path.removeprefix("identity/entity/id/")
            if entity != path and _UUID.fullmatch(entity):
                return None  # disable / enable one entity by id
            return f"identity path {path} is outside entity-by-id"
        if path.startswith("sys/"):
            return self._sys_problem(path, reads, body)
        return f"{path} is under no configured mount"

    def _sys_problem(self, path: str, reads: bool, body: Any) -> str | None:
        body = body if isinstance(body, dict) else {}
        mounts = self.pki | self.kv | self.leases
        if path in ("sys/leases/lookup", "sys/leases/renew", "sys/leases/revoke"):
            ok = self._under_lease_prefix(body.get("lease_id"))
            return None if ok else f"{path} of a lease outside the configured lease prefixes"
        for endpoint in ("sys/leases/lookup/", "sys/leases/revoke-prefix/"):
            if path.startswith(endpoint):
                ok = self._under_lease_prefix(path.removeprefix(endpoint).rstrip("/") + "/")
                return None if ok else f"{endpoint} outside the configured lease prefixes"
        tune = re.fullmatch(r"sys/(mounts/auth|auth|mounts)/(.+)/tune", path)
        if tune:
            kind, name = tune.groups()
            ok = name in self.pki if kind == "mounts" else name in self.approle
            return None if ok else f"{path}: the TTL of a mount outside PkiMounts/AppRoleMounts"
        if reads and path in ("sys/mounts", "sys/auth", "sys/capabilities-accessor", "sys/capabilities-self"):
            return None
        if reads and path.startswith("sys/internal/ui/mounts/"):
            inside = path.removeprefix("sys/internal/ui/mounts/").split("/")[0]
            return None if inside in mounts or inside == "auth" else f"mount lookup of {path}"
        if path.startswith("sys/audit-hash/") or (reads and path == "sys/audit"):
            return None  # the audit device's HMAC of a leaked value (a read); the device list
        return f"{path} is a system endpoint Rescind never needs"

    def aws_problem(self, service: str, operation: str, params: Any) -> str | None:
        for text in _addressing(params):
            for partition, _, _, account in _ARN.findall(text):
                if partition != "aws":
                    return f"{service}:{operation} names partition {partition}"
                if account and account not in self.accounts:
                    return f"{service}:{operation} names account {account}, not a configured one"
        if service in ("iam", "secretsmanager", "acm-pca") and not operation.startswith(_AWS_READS):
            text = json.dumps(params, default=str)
            protected = [
                *self.protected.access_key_ids,
                *((self.protected.iam_user,) if self.protected.iam_user else ()),
            ]
            touched = [value for value in protected if value in text]
            if touched:
                return f"{service}:{operation} writes to a protected workload's {touched[0]}"
        return None


# --- the harness ------------------------------------------------------------------------------------------------


@dataclass(repr=False)
class Fuzz:
    harness: Harness
    scope: Scope
    protected: Protected
    handled: frozenset[str]
    examples: Counter[str] = field(default_factory=Counter)
    raised: Counter[str] = field(default_factory=Counter)
    checked: tuple[int, int] = (0, 0)

    def __repr__(self) -> str:
        return "Fuzz(stack)"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def out_of_scope(self) -> list[str]:
        """Every request since the last check that is outside the scope (background executions included)."""
        vault, aws = self.harness.vault_requests, self.harness.aws_requests
        start_vault, start_aws = self.checked
        end_vault, end_aws = len(vault), len(aws)
        self.checked = (end_vault, end_aws)
        problems = []
        for method, url, body in vault[start_vault:end_vault]:
            problem = self.scope.vault_problem(method, url, body)
            if problem:
                problems.append(f"vault {method} {url}: {problem}")
        for service, operation, params in aws[start_aws:end_aws]:
            problem = self.scope.aws_problem(service, operation, params)
            if problem:
                problems.append(f"aws {problem}")
        return problems

    def run(self, logical_id: str, event: Any) -> None:
        payload, error_type = self.harness.invoke(logical_id, event)
        self.examples[logical_id] += 1
        if error_type is not None:
            self.raised[f"{logical_id}:{error_type}"] += 1
        assert error_type is None or error_type in self.handled, (
            f"{logical_id} raised {error_type}: {payload.get('errorMessage')}\n"
            + "".join(payload.get("stackTrace") or [])
        )
        problems = self.out_of_scope()
        assert problems == [], f"{logical_id} made calls outside its scope:\n" + "\n".join(problems)


UNCONFIGURED_MOUNT = f"pki-unconfigured-{uuid.uuid4().hex[:6]}"


def seed_unconfigured_lease(vault: hvac.Client) -> None:
    """A lease on a mount outside PkiMounts and LeaseMounts, with a TTL above every ceiling: not Rescind's."""
    vault.sys.enable_secrets_engine("pki", path=UNCONFIGURED_MOUNT, config={"max_lease_ttl": "87600h"})
    vault.secrets.pki.generate_root(
        "internal", "other.team", extra_params={"key_type": "ec", "ttl": "87600h"}, mount_point=UNCONFIGURED_MOUNT
    )
    role = {"allowed_domains": "other.team", "allow_subdomains": True, "key_type": "ec", "generate_lease": True}
    vault.secrets.pki.create_or_update_role("svc", {**role, "ttl": "720h", "max_ttl": "720h"}, UNCONFIGURED_MOUNT)
    vault.secrets.pki.generate_certificate("svc", "a.other.team", mount_point=UNCONFIGURED_MOUNT)


def seed_protected(openbao: LocalOpenBao) -> Callable[[LocalStack], Protected]:
    holder: dict[str, Protected] = {}

    def seed(stack: LocalStack) -> None:
        vault = hvac.Client(url=openbao.addr, token=openbao.root_token, timeout=10)
        prepare_vault(vault)
        name = PROTECTED_SPIFFE_ID.rsplit("/", 1)[1]
        workload = seed_workload(vault, boto3.client("iam"), name, PROTECTED_SPIFFE_ID)
        holder["workload"] = workload  # type: ignore[assignment]
        seed_unconfigured_lease(vault)
        holder["protected"] = Protected(
            spiffe_id=PROTECTED_SPIFFE_ID,
            token_accessors=tuple(workload.token_accessors),
            entity_id=workload.entity_id,
            secret_id_accessors=tuple(workload.secret_id_accessors),
            role_name=workload.name,
            serials=tuple(workload.certificate_serials),
            kv_paths=tuple(workload.kv_paths),
            iam_user=workload.iam_user,
            access_key_ids=tuple(workload.access_key_ids),
            token_values=tuple(workload.token_value(a) for a in workload.token_accessors),
        )

    seed.holder = holder  # type: ignore[attr-defined]
    return seed  # type: ignore[return-value]


@pytest.fixture(scope="module")
def fuzz_openbao() -> Iterator[LocalOpenBao]:
    """An OpenBao of this module's own: the sweeps (TTL ceilings, PKI hygiene, the inventory report) walk the whole
    server, and on the session's server they would walk whatever every earlier test on this worker left there."""
    with LocalOpenBao() as server:
        yield server


@pytest.fixture(scope="module")
def fuzz(fuzz_openbao: LocalOpenBao) -> Iterator[Fuzz]:
    openbao = fuzz_openbao
    seed = seed_protected(openbao)
    with local_github_api() as github:
        parameters = {**STACK_PARAMETERS, "GitHubApiUrl": github.url}
        with open_harness(openbao, parameters=parameters, functions=HANDLERS, before_counting=seed) as harness:
            protected: Protected = seed.holder["protected"]  # type: ignore[attr-defined]
            state = Fuzz(harness, Scope.of(harness.stack, protected), protected, handled_error_names())
            yield state
            # Whatever the examples started (executions in the background) has finished or been checked.
            time.sleep(1)
            assert state.out_of_scope() == []
            vault = hvac.Client(url=openbao.addr, token=openbao.root_token, timeout=10)
            workload = seed.holder["workload"]  # type: ignore[attr-defined]
            proofs = prove_by_use(vault, openbao.addr, boto3.client("iam"), workload, expected="alive")
            assert [proof for proof in proofs if not proof.passed] == [], "a protected credential was killed"
            sys.stderr.write(f"\nhandler fuzz: examples {dict(state.examples)}; typed errors {dict(state.raised)}\n")


# --- inputs per handler ---------------------------------------------------------------------------------------

INCIDENT_IDS = st.sampled_from(("offboard-0123456789abcdef", "leak-fuzz-1", "a" * 80, "fuzz_incident-2"))
SOMETIMES = st.sampled_from((False, False, False, True))


def execute_action_inputs(protected: Protected) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {
            "incident_id": INCIDENT_IDS,
            "attempt_id": st.sampled_from(("offboard-x.0.0", "a:b.1", "x" * 200)),
            "action": bad.hostile_actions(protected),
            "dry_run": SOMETIMES,
        }
    )


def workload_ids(protected: Protected) -> st.SearchStrategy[str]:
    return st.sampled_from((*bad.HOSTILE_WORKLOAD_IDS, protected.spiffe_id, protected.spiffe_id + "/"))


def plan_inputs(protected: Protected) -> st.SearchStrategy[Any]:
    def build(workload_id: str, credentials: list[dict[str, Any]], dry_run: bool) -> dict[str, Any]:
        document = bad.valid_offboarding_request()
        document.update(workload_id=workload_id, credentials=credentials, dry_run=dry_run)
        return document

    return st.builds(build, workload_ids(protected), st.lists(bad.hostile_targets(protected), max_size=3), SOMETIMES)


def verify_inputs(protected: Protected) -> st.SearchStrategy[Any]:
    def build(actions: list[dict[str, Any]]) -> dict[str, Any]:
        document = bad.valid_verify_batch()
        document.update(actions=actions)
        return document

    return st.builds(build, st.lists(bad.hostile_actions(protected), min_size=1, max_size=3))


def close_inputs(protected: Protected) -> st.SearchStrategy[Any]:
    def build(incident_id: str, outcome: str, subject: str, alive: list[dict[str, Any]]) -> dict[str, Any]:
        document = bad.valid_close_request()
        document.update(incident_id=incident_id, outcome=outcome, subject=subject, still_alive=alive)
        return document

    return st.builds(
        build,
        INCIDENT_IDS,
        st.sampled_from(("verified", "failed", "refused", "dry_run", "needs_approval")),
        workload_ids(protected),
        st.lists(bad.hostile_targets(protected), max_size=3),
    )


def approval_inputs(protected: Protected) -> st.SearchStrategy[Any]:
    def build(arn: str, subject: str) -> dict[str, Any]:
        document = bad.valid_approval_request()
        document.update(execution_arn=arn, subject=subject)
        return document

    return st.builds(
        build,
        bad.other_arns("states", st.sampled_from(("execution:rescind-offboarding:x", "execution:other:y"))),
        workload_ids(protected),
    )


def termination_inputs(protected: Protected) -> st.SearchStrategy[Any]:
    accounts = st.sampled_from((LOCAL_ACCOUNT_ID, *bad.OTHER_ACCOUNTS))

    def generic(workload_id: str, account: str) -> dict[str, Any]:
        event = bad.load_sample("workload_terminated.json")
        event["id"] = str(uuid.uuid4())
        event["account"] = account
        event["detail"]["workload_id"] = workload_id
        return event

    def ecs(arn: str) -> dict[str, Any]:
        event = bad.load_sample("ecs_task_stopped.json")
        event["id"] = str(uuid.uuid4())
        event["detail"]["taskArn"] = arn
        return event

    return st.one_of(
        st.builds(generic, workload_ids(protected), accounts),
        st.builds(ecs, bad.other_arns("ecs", st.just("task/c/0123456789abcdef0123456789abcdef"))),
    )


def leak_inputs(protected: Protected) -> st.SearchStrategy[Any]:
    accounts = st.sampled_from((LOCAL_ACCOUNT_ID, *bad.OTHER_ACCOUNTS))
    secrets = st.one_of(
        st.tuples(st.just("vault_token"), st.sampled_from((*protected.token_values, "hvs.FUZZ00notissued0000000000"))),
        st.tuples(st.just("aws_access_key"), st.sampled_from((*protected.access_key_ids, "AKIAFUZZ000000000000"))),
        st.tuples(st.just("vault_secret_id"), st.sampled_from(("../sys/raw", "0c1b2f9e-0000-4000-8000-000000000000"))),
        st.tuples(st.just("kv_value"), st.sampled_from(("s3cr3t-FUZZ-value", "sys/raw"))),
        st.tuples(st.just("certificate"), st.sampled_from(("-----BEGIN CERTIFICATE-----\nMIIB\n", "sys/raw"))),
    )

    def generic(secret: tuple[str, str], account: str) -> dict[str, Any]:
        event = bad.load_sample("secret_leaked.json")
        event["id"] = str(uuid.uuid4())
        event["account"] = account
        event["detail"]["secret_type"], event["detail"]["secret"] = secret
        return event

    def health(account: str, key_id: str) -> dict[str, Any]:
        from rescind_local.seed import health_event_naming

        event = health_event_naming(bad.load_sample("health_risk_credentials_exposed.json"), account, [key_id])
        event["id"] = str(uuid.uuid4())
        return event

    keys = st.sampled_from((*protected.access_key_ids, "AKIAFUZZ000000000001"))
    return st.one_of(st.builds(generic, secrets, accounts), st.builds(health, accounts, keys))


def webhook_inputs(protected: Protected) -> st.SearchStrategy[Any]:
    def build(repository: str, secret_type: str, number: int, action: str) -> dict[str, Any]:
        fields = alert_fields()
        fields["repository"]["full_name"] = repository
        fields["alert"]["secret_type"] = secret_type
        fields["alert"]["number"] = number
        fields["action"] = action
        return delivery(json.dumps(fields))

    return st.builds(
        build,
        st.sampled_from(("octo-org/octo-repo", "../../sys", "a/" + "b" * 300, "org/r\u0435po", "x/%2e%2e")),
        st.sampled_from(("aws_access_key_id", "hashicorp_vault_service_token", "github_personal_access_token")),
        st.integers(-1, 2**40),
        st.sampled_from(("created", "reopened", "publicly_leaked", "validated", "resolved")),
    )


def function_url_request(caller: str, document: Any, method: str, encoded: bool) -> dict[str, Any]:
    """A function URL request (AuthType AWS_IAM, payload 2.0): the signer in requestContext, `document` the body."""
    body = json.dumps(document)
    if encoded:
        import base64

        body = base64.b64encode(body.encode()).decode()
    return {
        "version": "2.0",
        "rawPath": "/",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "http": {"method": method, "path": "/"},
            "authorizer": {
                "iam": {"userArn": caller, "accountId": caller.split(":")[4] if caller.count(":") > 4 else ""}
            },
        },
        "body": body,
        "isBase64Encoded": encoded,
    }


def callers() -> st.SearchStrategy[str]:
    other = bad.OTHER_ACCOUNTS[0]
    return st.sampled_from(
        (
            f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:user/approver",
            f"arn:aws:sts::{LOCAL_ACCOUNT_ID}:assumed-role/responder/alice",
            f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:user/{'p/' * 120}long-path",
            f"arn:aws:iam::{other}:user/outsider",
            "",
            "arn:aws:iam::../user/x",
        )
    )


def answer_inputs(protected: Protected) -> st.SearchStrategy[Any]:
    """Function URL requests (AuthType AWS_IAM): the signer in requestContext, the answer in the body."""

    def build(caller: str, execution: str, decision: str, reason: str, method: str, encoded: bool) -> dict[str, Any]:
        return function_url_request(
            caller, {"execution": execution, "decision": decision, "reason": reason}, method, encoded
        )

    other = bad.OTHER_ACCOUNTS[0]
    return st.builds(
        build,
        callers(),
        st.sampled_from(
            (
                "offboard-0123abcd",
                f"arn:aws:states:us-east-1:{other}:execution:rescind-offboarding:offboard-0123abcd",
                f"arn:aws-cn:states:cn-north-1:{LOCAL_ACCOUNT_ID}:execution:x:y",
                "../../sys",
                "a" * 5000,
                "",
            )
        ),
        st.sampled_from(("approve", "deny", "APPROVE", "", "force")),
        st.sampled_from(("", "looks fine", "x" * 3000)),
        st.sampled_from(("POST", "GET")),
        st.booleans(),
    )


def start_manual_inputs(protected: Protected) -> st.SearchStrategy[Any]:
    """`rescind revoke`'s request to the start URL: hostile workloads and references, a requester in the body."""

    def build(
        caller: str, subject: dict[str, Any], extra: dict[str, Any], dry_run: bool, method: str, encoded: bool
    ) -> dict[str, Any]:
        document = {**subject, "reason": "fuzz", "dry_run": dry_run, **extra}
        return function_url_request(caller, document, method, encoded)

    accessor = protected.token_accessors[0] if protected.token_accessors else "A" * 24
    references = st.one_of(
        st.sampled_from(
            (
                f"vault-token:accessor:{accessor}",
                f"pki:sys:{protected.serials[0] if protected.serials else '01'}",
                "kv:sys/raw:x",
                "kv:secret:../../sys",
                "vault-lease:auth/token/revoke-prefix/x",
                "vault-lease:sys/leases/revoke-force/x",
                f"aws-key:{bad.OTHER_ACCOUNTS[0]}:someone:AKIAFUZZ000000000001",
            )
        ),
        bad.malformed_refs(),
    )
    subjects = st.one_of(
        st.builds(lambda workload: {"workload": workload}, workload_ids(protected)),
        st.builds(lambda refs: {"credentials": refs}, st.lists(references, min_size=0, max_size=3)),
        st.just({"workload": protected.spiffe_id, "credentials": [f"vault-token:accessor:{accessor}"]}),
    )
    extras = st.sampled_from(
        (
            {},
            {"requested_by": f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:user/someone-else"},
            {"ticket": "INC-1"},
            {"ticket": "x" * 300},
            {"reason": "   "},
            {"reason": "x" * 3000},
        )
    )
    return st.builds(build, callers(), subjects, extras, SOMETIMES, st.sampled_from(("POST", "GET")), st.booleans())


def sweep_inputs(protected: Protected) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {},
        optional={
            "dry_run": st.booleans(),
            "max_actions": st.sampled_from((1, 2, 100_000)),
            "resume": st.booleans(),
        },
    )


def rotation_hook_inputs(protected: Protected) -> st.SearchStrategy[Any]:
    """Secrets Manager's rotation event with hostile steps, secret ids (KV paths with traversal, ARNs of other
    regions and accounts, planted values) and tokens: each is refused, or fails for want of a pending value."""
    secret_ids = st.one_of(
        bad.hostile_strings,
        bad.hostile_strings.map(lambda path: f"vault:secret/{path}"),
        st.sampled_from(
            (
                "vault:secret/apps/never-staged",
                "vault:../secret/x",
                f"vault:secret/{protected.spiffe_id}",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:rescind/none-AbCdEf",
                "arn:aws:secretsmanager:eu-west-1:210987654321:secret:other-AbCdEf",
            )
        ),
    )
    steps = st.one_of(st.sampled_from(("createSecret", "setSecret", "testSecret", "finishSecret")), bad.hostile_strings)
    tokens = st.one_of(st.uuids().map(str), bad.hostile_strings, st.sampled_from(bad.PLANTED_SECRETS))
    return st.fixed_dictionaries({"Step": steps, "SecretId": secret_ids, "ClientRequestToken": tokens})


def ledger_stream_inputs(protected: Protected) -> st.SearchStrategy[Any]:
    """Stream records of every kind, keyed with hostile strings (traversal, NUL, look-alikes, a protected workload's
    id), their images carrying planted secrets: each is archived under its escaped key, or refused."""
    keys = st.one_of(bad.hostile_strings, st.sampled_from((f"INCIDENT#{protected.spiffe_id}", "A#INCIDENT", "#")))

    def build(event_name: str, pk: str, sk: str, sequence: str, image: Any) -> dict[str, Any]:
        change: dict[str, Any] = {"Keys": {"pk": {"S": pk}, "sk": {"S": sk}}, "SequenceNumber": sequence}
        if event_name != "REMOVE":
            change["NewImage"] = {"pk": {"S": pk}, "sk": {"S": sk}, "body": {"S": image}}
        return {"Records": [{"eventID": "1", "eventName": event_name, "dynamodb": change}]}

    return st.builds(
        build,
        st.sampled_from(("INSERT", "MODIFY", "REMOVE")),
        keys,
        keys,
        st.one_of(st.from_regex(r"\A[0-9]{1,30}\Z"), bad.hostile_strings),
        st.one_of(bad.hostile_strings, st.sampled_from(bad.PLANTED_SECRETS)),
    )


def audit_log_inputs(protected: Protected) -> st.SearchStrategy[Any]:
    """CloudWatch Logs envelopes of audit lines (the sample's, each field then set to a hostile string, a planted
    secret or a protected workload's id) and of raw hostile lines: indexed by reference, or refused, never acted on."""
    import base64
    import gzip

    sample = bad.load_sample("cloudwatch_logs_vault_audit.json")
    envelope = json.loads(gzip.decompress(base64.b64decode(sample["awslogs"]["data"])))
    lines = [json.loads(log_event["message"]) for log_event in envelope["logEvents"]]
    values = st.one_of(
        bad.hostile_strings,
        st.sampled_from((*bad.PLANTED_SECRETS, protected.spiffe_id, *protected.token_accessors)),
    )

    @st.composite
    def line(draw: st.DrawFn) -> str:
        if draw(st.integers(0, 4)) == 0:
            return draw(st.one_of(bad.hostile_strings, st.sampled_from(bad.PLANTED_SECRETS)))
        document = json.loads(json.dumps(draw(st.sampled_from(lines))))
        for section, key in draw(st.lists(st.sampled_from(AUDIT_FIELDS), max_size=3)):
            document.setdefault(section, {})[key] = draw(values)
        return json.dumps(document)

    def build(messages: list[str], message_type: str) -> dict[str, Any]:
        data = {
            **envelope,
            "messageType": message_type,
            "logEvents": [{"id": str(i), "timestamp": 1796428633000, "message": m} for i, m in enumerate(messages)],
        }
        return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(data).encode())).decode()}}

    return st.builds(build, st.lists(line(), min_size=0, max_size=4), st.sampled_from(("DATA_MESSAGE", "CONTROL")))


# (section, field) of an audit line that the indexer reads: what it would key or link an issuance by.
AUDIT_FIELDS = (
    ("auth", "accessor"),
    ("auth", "client_token"),
    ("auth", "token_type"),
    ("request", "path"),
    ("request", "client_token_accessor"),
    ("request", "operation"),
    ("request", "mount_type"),
    ("response", "mount_type"),
    ("response", "secret"),
    ("response", "auth"),
    ("response", "data"),
)


def sample_for(logical_id: str) -> Callable[[], Any]:
    if logical_id in bad.TASK_CONTRACTS:
        return bad.TASK_CONTRACTS[logical_id].valid
    if logical_id == "StartOffboardingFunction":
        return lambda: bad.load_sample("workload_terminated.json")
    if logical_id == "StartLeakResponseFunction":
        return lambda: bad.load_sample("secret_leaked.json")
    if logical_id == "LedgerArchiveFunction":
        return lambda: bad.load_sample("ledger_stream_insert.json")
    if logical_id == "IndexAuditLogFunction":
        return lambda: bad.load_sample("cloudwatch_logs_vault_audit.json")
    if logical_id == "RotatePostgresFunction":
        return lambda: {"Step": "setSecret", "SecretId": "vault:secret/apps/db", "ClientRequestToken": "rot-1"}
    return lambda: {"dry_run": True}


HOSTILE: dict[str, Callable[[Protected], st.SearchStrategy[Any]]] = {
    "ExecuteActionFunction": execute_action_inputs,
    "PlanOffboardingFunction": plan_inputs,
    "PlanLeakResponseFunction": plan_inputs,
    "VerifyResponseFunction": verify_inputs,
    "CloseIncidentFunction": close_inputs,
    "RequestApprovalFunction": approval_inputs,
    "StartOffboardingFunction": termination_inputs,
    "StartLeakResponseFunction": leak_inputs,
    "GitHubWebhookFunction": webhook_inputs,
    "RotationByAgeFunction": sweep_inputs,
    "TtlCeilingsFunction": sweep_inputs,
    "OrphansFunction": sweep_inputs,
    "PkiHygieneFunction": sweep_inputs,
    "InventoryReportFunction": sweep_inputs,
    "AnswerApprovalFunction": answer_inputs,
    "StartManualRevocationFunction": start_manual_inputs,
    "LedgerArchiveFunction": ledger_stream_inputs,
    "IndexAuditLogFunction": audit_log_inputs,
    "IndexDriftFunction": sweep_inputs,
    "RotatePostgresFunction": rotation_hook_inputs,
}


def inputs(logical_id: str, protected: Protected) -> st.SearchStrategy[Any]:
    """Hostile but valid two times in three, malformed otherwise."""
    if logical_id == "GitHubWebhookFunction":
        malformed = bad_webhook_deliveries().map(lambda case: case[1])
    else:
        malformed = bad.mutated(sample_for(logical_id)())
    hostile = HOSTILE[logical_id](protected)
    return st.one_of(hostile, hostile, malformed)


def fuzz_handler(fuzz: Fuzz, logical_id: str, examples: int, *, derandomize: bool) -> None:
    before = fuzz.examples[logical_id]

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=derandomize,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(event=inputs(logical_id, fuzz.protected))
    def property_handled_and_in_scope(event: Any) -> None:
        fuzz.run(logical_id, event)

    property_handled_and_in_scope()
    assert fuzz.examples[logical_id] - before >= min(examples, 10)


def test_every_function_of_the_template_is_fuzzed() -> None:
    from rescind_local.template import load_template

    functions = {
        logical_id
        for logical_id, resource in load_template()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    assert functions == set(HANDLERS) == set(HOSTILE)


@pytest.mark.parametrize("logical_id", HANDLERS)
def test_every_handler_answers_hostile_input_within_its_scope(fuzz: Fuzz, logical_id: str) -> None:
    examples = SWEEP_EXAMPLES_FAST if logical_id in SWEEPS else PER_HANDLER_FAST
    fuzz_handler(fuzz, logical_id, examples, derandomize=True)


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
def test_every_handler_answers_hostile_input_within_its_scope_at_scale(fuzz: Fuzz) -> None:
    before = sum(fuzz.examples.values())
    for logical_id in HANDLERS:
        examples = SWEEP_EXAMPLES_FULL if logical_id in SWEEPS else PER_HANDLER_FULL
        fuzz_handler(fuzz, logical_id, examples, derandomize=False)
    ran = sum(fuzz.examples.values()) - before
    sys.stderr.write(f"\nhandler fuzz at scale: {ran} examples, {dict(fuzz.examples)}\n")
    assert ran >= bad.SLOW_EXAMPLES * 0.9, ran


# --- regressions the fuzz found, pinned -----------------------------------------------------------------------


def test_regression_the_ttl_sweep_lists_and_lowers_no_lease_outside_its_mounts(fuzz: Fuzz) -> None:
    # Found by the fuzz: the TTL ceilings sweep walked sys/leases/lookup from the root and looked up (and would
    # have renewed) the leases of every mount; the seeded lease on an unconfigured PKI mount must stay unseen.
    fuzz.run("TtlCeilingsFunction", {"dry_run": False, "resume": False})
    seen = [url for _, url, _ in fuzz.harness.vault_requests if UNCONFIGURED_MOUNT in url]
    assert seen == []


def test_regression_a_leaked_key_of_a_protected_workload_is_not_deactivated(fuzz: Fuzz) -> None:
    # Found by the fuzz: the leak locator named no owner for an access key, so the guard never saw that the key's
    # IAM user runs as a protected workload (its rescind:workload tag), and the run deactivated the key.
    event = bad.load_sample("secret_leaked.json")
    event["id"] = str(uuid.uuid4())
    event["account"] = LOCAL_ACCOUNT_ID
    event["detail"]["secret_type"], event["detail"]["secret"] = "aws_access_key", fuzz.protected.access_key_ids[0]
    fuzz.run("StartLeakResponseFunction", event)
    time.sleep(1)  # the leak response's execution runs in the background
    assert fuzz.out_of_scope() == []
    keys = boto3.client("iam").list_access_keys(UserName=fuzz.protected.iam_user)["AccessKeyMetadata"]
    assert [key["Status"] for key in keys] == ["Active"]


# --- the scope check can fail ---------------------------------------------------------------------------------


def test_the_scope_refuses_what_it_must(fuzz: Fuzz) -> None:
    scope, p = fuzz.scope, fuzz.protected
    outside = [
        ("POST", "/v1/sys/leases/revoke-force/pki", None),
        ("POST", "/v1/auth/token/revoke-orphan", {"token": "x"}),
        ("POST", "/v1/sys/mounts/auth/token/tune", {"max_lease_ttl": "60"}),
        ("POST", "/v1/sys/raw/cert/1f", None),
        ("GET", "/v1/sys/raw/core/x", None),
        ("POST", "/v1/sys/leases/revoke", {"lease_id": "auth/token/create/abc"}),
        ("POST", "/v1/sys/leases/revoke-prefix/sys", None),
        ("GET", "/v1/cubbyhole/x", None),
        ("POST", "/v1/kv/data/x", {}),
        ("POST", "/v1/pki/../sys/seal", None),
        ("POST", "/v1/pki/%2e%2e/sys/seal", None),
        ("POST", "/v1/auth/token/revoke-accessor", {"accessor": p.token_accessors[0]}),
        ("POST", f"/v1/identity/entity/id/{p.entity_id}", {"disabled": True}),
        ("POST", "/v1/pki/revoke", {"serial_number": p.serials[0]}),
        ("POST", "/v1/identity/group/name/admins", {}),
    ]
    for method, url, body in outside:
        assert scope.vault_problem(method, url, body) is not None, (method, url)
    inside = [
        ("POST", "/v1/auth/token/revoke-accessor", {"accessor": "CaTti28wsXOQA02COE2ygP2B"}),
        ("GET", "/v1/secret/metadata/apps/x", None),
        ("POST", "/v1/sys/leases/revoke", {"lease_id": "pki/issue/workload/abc"}),
        ("POST", "/v1/auth/token/lookup-accessor", {"accessor": p.token_accessors[0]}),
    ]
    for method, url, body in inside:
        assert scope.vault_problem(method, url, body) is None, (method, url)
    assert scope.aws_problem("sts", "AssumeRole", {"RoleArn": "arn:aws:iam::999999999999:role/R"}) is not None
    assert scope.aws_problem("iam", "UpdateAccessKey", {"AccessKeyId": p.access_key_ids[0]}) is not None
    assert scope.aws_problem("sns", "Publish", {"TopicArn": "arn:aws-cn:sns:cn-north-1:123456789012:t"}) is not None
    assert scope.aws_problem("iam", "ListAccessKeys", {"UserName": p.iam_user}) is None


_ = example  # regression examples are pinned below with @example, once the fuzz finds one
