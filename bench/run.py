"""Rescind's benchmarks (issue 7), every figure beside its bare floor measured in the same run.

    python -m bench.run                       # leak to dead, offboarding at N=100,1000, cold start, package size
    python -m bench.run --skip-offboarding --skip-cold-start --skip-package \
        --output-dir /tmp/leak --merge-into bench/results.json   # one section, merged into the committed results
    python -m bench.run --sizes 100,1000,10000
    python -m bench.run --smoke --output-dir /tmp/bench   # smallest size, one run: proves the harness works

Writes results.json and results.md (rendered from the JSON) into --output-dir (bench/ by default).
Progress goes to stderr. The handlers' own log lines (Powertools Logger and Metrics print to stdout, as in
Lambda) go to a temporary file while a state machine runs, so they cost what they cost and do not flood the
terminal. Nothing here fails on a time: a figure that misses its target is reported, with the reason.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "bench"
FUNCTIONS_DIR = REPO_ROOT / "functions"
SHARED_DIR = REPO_ROOT / "shared"

MAP_CONCURRENCY = 10  # MaxConcurrency of the offboarding state machine's Contain and Revoke maps
STATE_LIMIT_BYTES = 256 * 1024  # a Standard execution's state (input/output of one state)
SEED_THREADS = 16
LAYER_LIMIT_BYTES = 10 * 1000 * 1000
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")

# Realistic proportions for one workload: mostly tokens, then secret-ids, certificates and leased certificates.
CREDENTIAL_MIX: tuple[tuple[str, int], ...] = (
    ("vault_token", 40),
    ("approle_secret_id", 25),
    ("pki_certificate", 20),
    ("vault_lease", 15),
)

TARGETS = {
    "leak_to_dead": "at most 1.5x the bare floor",
    "offboarding": "at least 0.8x the bare concurrent loop's rate at every N",
    "cold_start": "at most 1.5x `import boto3` to import a handler and build its clients",
    "layer": "at most 10 MB unzipped without boto3",
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 6) if values else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


# --- machine and versions ---------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    memory_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "memory_mb": memory_kb // 1024,
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
    }


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for name in ("hvac", "boto3", "botocore", "moto", "aws-lambda-powertools", "pydantic", "cryptography"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    try:
        from rescind_local.openbao import find_bao_binary

        answer = subprocess.run(  # noqa: S603 - our own binary, fixed arguments
            [find_bao_binary(), "version"], capture_output=True, text=True, timeout=30, check=False
        )
        found["openbao"] = answer.stdout.strip().split(" (")[0]
    except Exception as error:  # a missing binary is reported, not fatal here
        found["openbao"] = f"unknown ({type(error).__name__})"
    return found


# --- 1. leak to dead -----------------------------------------------------------------------------------

LEAK_KINDS: dict[str, str] = {
    "vault_token": "a Vault token leaked by value: `auth/token/lookup` → accessor, revoke by accessor, read back",
    "kv_value": (
        "a KV v2 field value leaked by its SHA-256 (`secret_sha256`), found through the fingerprint index: the "
        "secret rotated (4 steps) and its previous versions destroyed, read back"
    ),
    "aws_access_key": (
        "an IAM access key id (moto): `get_access_key_last_used` → user, deactivated, deleted (a leak has no "
        "grace period), read back"
    ),
}
LEAK_FLOORS: dict[str, str] = {
    "vault_token": "`auth/token/lookup` (value → accessor), `revoke-accessor`, `lookup-accessor` (fails)",
    "kv_value": "read metadata, write a new version (cas), destroy the previous versions, read metadata back",
    "aws_access_key": "`get_access_key_last_used` (→ user), `update_access_key` Inactive, `delete_access_key`, "
    "`list_access_keys`",
}
LEAK_TARGET_RATIO = 1.5
LEAK_KV_MOUNT = "secret"
LEAK_KV_FOLDER = "bench-leak"
# The leak response's timed states, in order: the same definition as offboarding.
LEAK_PHASES = ("Plan", "Contain", "Revoke", "Verify", "Close", "Notify", "PublishEvent")
LEAK_POLL_SECONDS = 0.005  # describe_execution polling: the clock's resolution on the state machine path
LEAK_TIMEOUT_SECONDS = 120.0


@dataclass
class Leak:
    """One fresh credential to leak. `secret` (a token value) stays in this process, for the event and the bare
    floor's lookup only: it is never logged, and never written to the results."""

    kind: str
    reference: str  # what the results may name: the accessor, mount/path or key id
    secret: str = field(default="", repr=False)
    sha256: str = ""  # of the leaked KV field value
    kv_path: str = ""
    kv_username: str = ""  # the KV secret's other field, which a rotation keeps
    iam_user: str = ""  # for the harness's own check afterwards; the floor looks the user up


def seed_leak(kind: str, vault: Any, iam: Any) -> Leak:
    """A fresh credential of `kind`, as a workload would hold it."""
    suffix = uuid.uuid4().hex[:12]
    if kind == "vault_token":
        created = vault.auth.token.create(
            policies=["default"], ttl="2h", meta={"spiffe_id": f"spiffe://bench.rescind/leak/{suffix}"}
        )
        return Leak(kind, str(created["auth"]["accessor"]), secret=str(created["auth"]["client_token"]))
    if kind == "kv_value":
        path = f"{LEAK_KV_FOLDER}/{suffix}/database"
        password = secrets.token_urlsafe(24)
        username = f"app_{suffix}"
        vault.secrets.kv.v2.create_or_update_secret(
            path, secret={"username": username, "password": password}, mount_point=LEAK_KV_MOUNT
        )
        return Leak(
            kind,
            f"{LEAK_KV_MOUNT}/{path}",
            sha256=hashlib.sha256(password.encode()).hexdigest(),
            kv_path=path,
            kv_username=username,
        )
    if kind == "aws_access_key":
        user_name = f"bench-leak-{suffix}"
        iam.create_user(UserName=user_name)
        key_id = str(iam.create_access_key(UserName=user_name)["AccessKey"]["AccessKeyId"])
        return Leak(kind, key_id, iam_user=user_name)
    raise ValueError(f"unknown leak kind {kind!r}")


def leak_event(leak: Leak) -> dict[str, Any]:
    """The generic `Secret Leaked` sample event (events/secret_leaked.json) naming `leak`, with a fresh id."""
    event: dict[str, Any] = json.loads((REPO_ROOT / "events" / "secret_leaked.json").read_text())
    event["id"] = str(uuid.uuid4())
    detail = event["detail"]
    detail["secret_type"] = leak.kind
    if leak.kind == "kv_value":
        del detail["secret"]
        detail["secret_sha256"] = leak.sha256
    else:
        detail["secret"] = leak.secret if leak.kind == "vault_token" else leak.reference
    return event


def _redacted(text: str, leak: Leak) -> str:
    return text.replace(leak.secret, "<redacted>") if leak.secret else text


def _gone(attempt: Callable[[], Any]) -> bool:
    """True when the read-back says the thing is gone (Vault answers 400/404 for a dead accessor)."""
    import hvac.exceptions

    try:
        attempt()
    except (hvac.exceptions.InvalidRequest, hvac.exceptions.InvalidPath, hvac.exceptions.Forbidden):
        return True
    return False


def bare_leak_floor(leak: Leak, vault: Any, iam: Any) -> dict[str, Any]:
    """The least a person with hvac or boto3 does to kill `leak`, knowing where it lives: lookup, kill, read back."""
    started = time.perf_counter()
    if leak.kind == "vault_token":
        accessor = str(vault.auth.token.lookup(token=leak.secret)["data"]["accessor"])
        vault.auth.token.revoke_accessor(accessor)
        dead = _gone(lambda: vault.auth.token.lookup_accessor(accessor))
        calls = 3
    elif leak.kind == "kv_value":
        kv = vault.secrets.kv.v2
        current = int(kv.read_secret_metadata(leak.kv_path, mount_point=LEAK_KV_MOUNT)["data"]["current_version"])
        new_value = {"username": leak.kv_username, "password": secrets.token_urlsafe(32)}
        kv.create_or_update_secret(leak.kv_path, secret=new_value, cas=current, mount_point=LEAK_KV_MOUNT)
        previous = list(range(1, current + 1))
        kv.destroy_secret_versions(leak.kv_path, versions=previous, mount_point=LEAK_KV_MOUNT)
        after = kv.read_secret_metadata(leak.kv_path, mount_point=LEAK_KV_MOUNT)["data"]
        dead = after["current_version"] == current + 1 and all(
            after["versions"][str(version)]["destroyed"] for version in previous
        )
        calls = 4
    else:
        user_name = iam.get_access_key_last_used(AccessKeyId=leak.reference)["UserName"]
        iam.update_access_key(UserName=user_name, AccessKeyId=leak.reference, Status="Inactive")
        iam.delete_access_key(UserName=user_name, AccessKeyId=leak.reference)
        listed = iam.list_access_keys(UserName=user_name)["AccessKeyMetadata"]
        dead = all(item["AccessKeyId"] != leak.reference for item in listed)
        calls = 4
    return {"seconds": round(time.perf_counter() - started, 4), "calls": calls, "dead": dead}


def confirm_leak_dead(leak: Leak, vault: Any, iam: Any) -> bool:
    """The harness's own check, outside the timing, that the state machine left the credential dead."""
    if leak.kind == "vault_token":
        return _gone(lambda: vault.auth.token.lookup_accessor(leak.reference))
    if leak.kind == "kv_value":
        metadata = vault.secrets.kv.v2.read_secret_metadata(leak.kv_path, mount_point=LEAK_KV_MOUNT)["data"]
        return bool(metadata["current_version"] >= 2 and metadata["versions"]["1"]["destroyed"])
    listed = iam.list_access_keys(UserName=leak.iam_user)["AccessKeyMetadata"]
    return all(item["AccessKeyId"] != leak.reference for item in listed)


def _execution_arns(sfn: Any, state_machine_arn: str) -> set[str]:
    arns: set[str] = set()
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine_arn):
        arns.update(item["executionArn"] for item in page["executions"])
    return arns


def _wait_until_done(sfn: Any, execution_arn: str) -> dict[str, Any]:
    """describe_execution every LEAK_POLL_SECONDS until the execution leaves RUNNING."""
    deadline = time.perf_counter() + LEAK_TIMEOUT_SECONDS
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{execution_arn} still RUNNING after {LEAK_TIMEOUT_SECONDS} s")
        time.sleep(LEAK_POLL_SECONDS)


def leak_through_state_machine(stack: Any, leak: Leak, ledger: Any, sfn: Any) -> dict[str, Any]:
    """Time one leak from `stack.route_event` to the execution SUCCEEDED and its ledger closure COMPLETED."""
    from rescind.ledger import IncidentStatus
    from rescind.models import Outcome

    machine_arn = stack.state_machine_arn("LeakResponseStateMachine")
    before = _execution_arns(sfn, machine_arn)
    invocations_before = len(stack.lambdas.invocations)
    event = leak_event(leak)
    with stdout_to_file():
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        matches = stack.route_event(event)
        routed = time.perf_counter() - started
        new = _execution_arns(sfn, machine_arn) - before
        if len(new) != 1:
            errors = [delivery.error_type for match in matches for delivery in match.deliveries]
            raise RuntimeError(f"{len(new)} executions started (rules matched {len(matches)}, errors {errors})")
        (execution_arn,) = new
        described = _wait_until_done(sfn, execution_arn)
        view = ledger.read_incident(described["name"])
        seconds = time.perf_counter() - started
    closure = view.closure
    handler_seconds: dict[str, float] = {}
    for invocation in stack.lambdas.invocations[invocations_before:]:
        name = invocation.function_name.removeprefix("bench-")
        handler_seconds[name] = round(handler_seconds.get(name, 0.0) + invocation.duration_seconds, 4)
    events = _history(sfn, execution_arn)
    phases, _ = _phases_from_history(events, set(LEAK_PHASES), names=LEAK_PHASES)
    execution_started = next(e["timestamp"] for e in events if e["type"] == "ExecutionStarted")
    execution_ended = events[-1]["timestamp"]
    return {
        "seconds": round(seconds, 4),
        "status": described["status"],
        "closure": str(closure.status) if closure is not None else None,
        "completed": described["status"] == "SUCCEEDED"
        and closure is not None
        and closure.status is IncidentStatus.COMPLETED,
        "actions": [str(attempt.result.action_kind) for attempt in view.attempts],
        "all_actions_succeeded": all(attempt.result.outcome is Outcome.SUCCEEDED for attempt in view.attempts),
        "still_alive": len(closure.still_alive) if closure is not None else None,
        "start_function_seconds": round(routed, 4),
        "execution_started_after_seconds": round((execution_started - started_at).total_seconds(), 4),
        "execution_ended_after_seconds": round((execution_ended - started_at).total_seconds(), 4),
        "phases": phases,
        "handler_seconds": handler_seconds,  # inside the handlers, by function (the rest is moto and waiting)
        "history_events": len(events),
        "retried_tasks": sum(1 for e in events if e["type"] in {"TaskFailed", "LambdaFunctionFailed"}),
    }


def _spread(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "median_seconds": median(values),
        "min_seconds": round(min(values), 4) if values else None,
        "max_seconds": round(max(values), 4) if values else None,
    }


def summarise_leak_kind(
    kind: str, machine_runs: list[dict[str, Any]], bare_runs: list[dict[str, Any]]
) -> dict[str, Any]:
    good = [run for run in machine_runs if run.get("completed") and run.get("confirmed_dead")]
    good_bare = [run for run in bare_runs if run.get("dead")]
    machine = _spread([run["seconds"] for run in good])
    bare = _spread([run["seconds"] for run in good_bare])
    measured_ratio = ratio(machine["median_seconds"], bare["median_seconds"])
    typical = min(good, key=lambda run: abs(run["seconds"] - (machine["median_seconds"] or 0.0)), default=None)
    summary: dict[str, Any] = {
        "what": LEAK_KINDS[kind],
        "floor": LEAK_FLOORS[kind],
        "completed_runs": len(good),
        **machine,
        "bare_completed_runs": len(good_bare),
        "bare_median_seconds": bare["median_seconds"],
        "bare_min_seconds": bare["min_seconds"],
        "bare_max_seconds": bare["max_seconds"],
        "ratio_to_bare": measured_ratio,
        "met": None if measured_ratio is None else measured_ratio <= LEAK_TARGET_RATIO,
        "median_start_function_seconds": median([run["start_function_seconds"] for run in good]),
        "median_phases": {
            name: median([run["phases"][name] for run in good if name in run["phases"]])
            for name in LEAK_PHASES
            if any(name in run["phases"] for run in good)
        },
        "median_handler_seconds": median([sum(run["handler_seconds"].values()) for run in good]),
        "phases_of_median_run": typical["phases"] if typical else {},
        "handler_seconds_of_median_run": typical["handler_seconds"] if typical else {},
        "actions": typical["actions"] if typical else [],
        "runs": machine_runs,
        "bare_runs": bare_runs,
    }
    errors = [run["error"] for run in [*machine_runs, *bare_runs] if "error" in run]
    if errors:
        summary["errors"] = errors
    return summary


def leak_to_dead(addr: str, token: str, runs: int) -> dict[str, Any]:
    """Leak to dead for each kind: the generic `Secret Leaked` event through the template's rule, the start
    function, the leak-response state machine and its handlers (moto, handlers in-process, real OpenBao), beside
    the bare hvac/boto3 calls that do the same, interleaved run by run. A fresh credential for every run."""
    import boto3
    import hvac

    from rescind.fingerprints.dynamodb import DynamoDbFingerprintIndex
    from rescind.fingerprints.indexing import index_kv_mount
    from rescind.fingerprints.runtime import read_fingerprint_key
    from rescind.ledger.dynamodb import DynamoDbLedger
    from rescind_local import local_aws
    from rescind_local.stack import deploy_template_to_moto

    vault = hvac.Client(url=addr, token=token, timeout=60)
    with local_aws():
        stack = deploy_template_to_moto(
            stack_name="bench",
            parameters={"VaultAddr": addr, "VaultAwsAuthRole": "rescind-local"},
            function_environment={"VAULT_AUTH_METHOD": "token", "VAULT_TOKEN": token},
            time_scale=0.01,
            warm_functions=True,  # clients kept between events, as a warm Lambda keeps them
        )
        with stack:
            iam, sfn, dynamodb = boto3.client("iam"), boto3.client("stepfunctions"), boto3.client("dynamodb")
            ledger = DynamoDbLedger(stack.physical_id("LedgerTable"), dynamodb)
            index = DynamoDbFingerprintIndex(stack.physical_id("FingerprintTable"), dynamodb)
            key = read_fingerprint_key(boto3.client("secretsmanager"), stack.physical_id("FingerprintKeySecret"))

            def seeded(kind: str) -> Leak:
                leak = seed_leak(kind, vault, iam)
                if kind == "kv_value":  # the index knows the value before the leak (outside the timing)
                    index_kv_mount(vault, index, key, LEAK_KV_MOUNT, prefix=leak.kv_path.rsplit("/", 1)[0] + "/")
                return leak

            def machine_run(kind: str) -> dict[str, Any]:
                leak = seeded(kind)
                try:
                    measured = leak_through_state_machine(stack, leak, ledger, sfn)
                    measured["confirmed_dead"] = confirm_leak_dead(leak, vault, iam)
                except Exception as error:  # reported with the reason, never with the value
                    measured = {"error": _redacted(f"{type(error).__name__}: {str(error)[:500]}", leak)}
                measured["credential"] = leak.reference
                return measured

            def bare_run(kind: str) -> dict[str, Any]:
                leak = seeded(kind)
                try:
                    measured = bare_leak_floor(leak, vault, iam)
                except Exception as error:
                    measured = {"error": _redacted(f"{type(error).__name__}: {str(error)[:500]}", leak)}
                measured["credential"] = leak.reference
                return measured

            # One untimed run of each first: it imports the handlers and builds their clients (cold start is
            # section 3), and warms moto and the hvac connection pool for the floor alike.
            warmup: dict[str, Any] = {}
            for kind in LEAK_KINDS:
                log(f"leak to dead: {kind} warm-up")
                warmup[kind] = {"state_machine": machine_run(kind), "bare": bare_run(kind)}
            machine_runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in LEAK_KINDS}
            bare_runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in LEAK_KINDS}
            for index_of_run in range(runs):
                for kind in LEAK_KINDS:
                    machine_runs[kind].append(machine_run(kind))
                    bare_runs[kind].append(bare_run(kind))
                    last, floor = machine_runs[kind][-1], bare_runs[kind][-1]
                    log(
                        f"leak to dead: {kind} run {index_of_run + 1}/{runs} -> {last.get('seconds', 'ERROR')} s, "
                        f"bare {floor.get('seconds', 'ERROR')} s"
                        + (f" ERROR {last['error']}" if "error" in last else "")
                        + (f" bare ERROR {floor['error']}" if "error" in floor else "")
                    )
    kinds = {kind: summarise_leak_kind(kind, machine_runs[kind], bare_runs[kind]) for kind in LEAK_KINDS}
    for kind, summary in kinds.items():
        summary["warmup_seconds"] = warmup[kind]["state_machine"].get("seconds")
        summary["bare_warmup_seconds"] = warmup[kind]["bare"].get("seconds")
    return {
        "measured": True,
        "runs_per_kind": runs,
        "target_ratio": LEAK_TARGET_RATIO,
        "poll_interval_seconds": LEAK_POLL_SECONDS,
        "phase_names": list(LEAK_PHASES),
        "kinds": kinds,
    }


def run_leak_to_dead(runs: int) -> dict[str, Any]:
    """leak_to_dead on its own fresh OpenBao; a failure is reported in the results, not raised."""
    from rescind_local import LocalOpenBao

    try:
        with LocalOpenBao() as server:
            return leak_to_dead(server.addr, server.root_token, runs)
    except Exception as error:
        return {"measured": False, "reason": f"failed: {type(error).__name__}: {str(error)[:500]}"}


# --- 2. offboarding scale -----------------------------------------------------------------------------


def composition(n: int) -> dict[str, int]:
    """N credentials split by CREDENTIAL_MIX; the rounding remainder goes to tokens."""
    counts = {kind: n * share // 100 for kind, share in CREDENTIAL_MIX}
    counts["vault_token"] += n - sum(counts.values())
    return counts


class Retries:
    """Counts retried 5xx answers. OpenBao answers concurrent writes under one AppRole role with
    500 "transaction commit failed"; a caller must retry them (Rescind's engine does, as VaultUnavailable)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def call(self, attempt: Callable[[], Any], tries: int = 8) -> Any:
        import hvac.exceptions

        for index in range(tries):
            try:
                return attempt()
            except hvac.exceptions.InternalServerError:
                if index == tries - 1:
                    raise
                with self._lock:
                    self.count += 1
                time.sleep(0.01 * (2**index))
        raise AssertionError("unreachable")


def thread_local_clients(addr: str, token: str) -> Callable[[], Any]:
    """One hvac client per thread: a requests.Session is not meant to be shared by threads."""
    import hvac

    local = threading.local()

    def client() -> Any:
        existing = getattr(local, "client", None)
        if existing is None:
            existing = local.client = hvac.Client(url=addr, token=token, timeout=60)
        return existing

    return client


@dataclass
class Estate:
    """What one seeded workload holds, by reference only (no value is kept)."""

    workload_id: str
    tokens: list[str] = field(default_factory=list)  # accessors
    secret_ids: list[tuple[str, str]] = field(default_factory=list)  # (role, accessor)
    certificates: list[str] = field(default_factory=list)  # serials, URI SAN = the workload
    leases: list[str] = field(default_factory=list)  # lease ids of certificates from a generate_lease role
    background_tokens: int = 0
    seed_seconds: float = 0.0

    @property
    def size(self) -> int:
        return len(self.tokens) + len(self.secret_ids) + len(self.certificates) + len(self.leases)


APPROLE_ROLE = "bench-workload"
LEASED_PKI_ROLE = "leased"


def seed_estate(addr: str, token: str, n: int, background_tokens: int) -> Estate:
    """A workload holding N credentials in CREDENTIAL_MIX, plus a neighbour's tokens that discovery must scan.

    Tokens, secret-ids and certificates carry the discovery conventions (metadata `spiffe_id`, URI SAN).
    A lease cannot be found by workload in Vault, so the leased certificates carry no URI SAN and reach the
    plan through the inventory, as credentials issued to a workload are recorded there.
    """
    import hvac

    from rescind_local.seed import APPROLE_MOUNT, PKI_MOUNT, prepare_vault

    started = time.perf_counter()
    root = hvac.Client(url=addr, token=token, timeout=60)
    prepare_vault(root)
    root.secrets.pki.create_or_update_role(
        LEASED_PKI_ROLE,
        {
            "allowed_domains": "rescind.demo",
            "allow_subdomains": True,
            "key_type": "ec",
            "ttl": "24h",
            "generate_lease": True,
        },
        mount_point=PKI_MOUNT,
    )
    root.auth.approle.create_or_update_approle(APPROLE_ROLE, token_ttl="1h", mount_point=APPROLE_MOUNT)  # noqa: S106

    estate = Estate(workload_id=f"spiffe://bench.rescind/ns/bench/sa/api-{uuid.uuid4().hex[:8]}")
    meta = {"spiffe_id": estate.workload_id}
    neighbour = {"spiffe_id": "spiffe://bench.rescind/ns/bench/sa/neighbour"}
    counts = composition(n)
    client = thread_local_clients(addr, token)
    retries = Retries()

    def create_token(metadata: dict[str, str]) -> str:
        created = client().auth.token.create(policies=["default"], ttl="2h", meta=metadata)
        return str(created["auth"]["accessor"])  # the token itself is dropped here

    def create_secret_id(_: int) -> tuple[str, str]:
        made = client().auth.approle.generate_secret_id(APPROLE_ROLE, metadata=meta, mount_point=APPROLE_MOUNT)
        return APPROLE_ROLE, str(made["data"]["secret_id_accessor"])

    def issue_certificate(index: int) -> str:
        issued = client().secrets.pki.generate_certificate(
            "workload", f"c{index}.rescind.demo", extra_params={"uri_sans": estate.workload_id}, mount_point=PKI_MOUNT
        )
        return str(issued["data"]["serial_number"])

    def issue_leased_certificate(index: int) -> str:
        issued = client().secrets.pki.generate_certificate(
            LEASED_PKI_ROLE, f"l{index}.rescind.demo", mount_point=PKI_MOUNT
        )
        lease_id = str(issued.get("lease_id") or "")
        if not lease_id:
            raise RuntimeError("the generate_lease role issued a certificate without a lease")
        return lease_id

    def retried(make: Callable[[int], Any]) -> Callable[[int], Any]:
        return lambda index: retries.call(lambda: make(index))

    with ThreadPoolExecutor(SEED_THREADS) as pool:
        estate.tokens = list(pool.map(retried(lambda _: create_token(meta)), range(counts["vault_token"])))
        estate.secret_ids = list(pool.map(retried(create_secret_id), range(counts["approle_secret_id"])))
        estate.certificates = list(pool.map(retried(issue_certificate), range(counts["pki_certificate"])))
        estate.leases = list(pool.map(retried(issue_leased_certificate), range(counts["vault_lease"])))
        list(pool.map(retried(lambda _: create_token(neighbour)), range(background_tokens)))
    estate.background_tokens = background_tokens
    estate.seed_seconds = round(time.perf_counter() - started, 3)
    return estate


def lease_refs(estate: Estate) -> list[Any]:
    from rescind.models import VaultLeaseRef

    return [VaultLeaseRef(lease_id=lease_id) for lease_id in estate.leases]


def offboarding_request(estate: Estate) -> Any:
    from rescind.ledger import Trigger
    from rescind.offboarding.types import OffboardingRequest, offboarding_execution_name

    event_id = str(uuid.uuid4())
    return OffboardingRequest(
        incident_id=offboarding_execution_name(estate.workload_id, event_id),
        workload_id=estate.workload_id,
        reason="workload terminated (benchmark)",
        trigger=Trigger(
            source="rescind", detail_type="Workload Terminated", event_id=event_id, workload_id=estate.workload_id
        ),
        terminated_at=datetime.now(UTC),
    )


@contextmanager
def stdout_to_file() -> Iterator[Path]:
    """Point file descriptor 1 at a temporary file (all threads share it), and back afterwards."""
    sys.stdout.flush()
    handle, name = tempfile.mkstemp(prefix="rescind-bench-handlers-", suffix=".log")
    saved = os.dup(1)
    os.dup2(handle, 1)
    try:
        yield Path(name)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(handle)
        Path(name).unlink(missing_ok=True)


def bare_revocations(
    addr: str, token: str, estate: Estate, concurrency: int, *, read_back: bool = False
) -> dict[str, Any]:
    """The floor: the same revocations with plain hvac calls, no discovery, no ledger; with `read_back`,
    one read per credential afterwards (the least a verified revocation costs)."""
    client = thread_local_clients(addr, token)
    retries = Retries()
    jobs: list[tuple[str, Any]] = [
        *(("token", accessor) for accessor in estate.tokens),
        *(("secret_id", pair) for pair in estate.secret_ids),
        *(("certificate", serial) for serial in estate.certificates),
        *(("lease", lease_id) for lease_id in estate.leases),
    ]

    def revoke(job: tuple[str, Any]) -> None:
        retries.call(lambda: revoke_once(job))
        if read_back:
            read_back_once(job)

    def read_back_once(job: tuple[str, Any]) -> None:
        import hvac.exceptions

        kind, target = job
        try:
            if kind == "token":
                client().auth.token.lookup_accessor(target)
            elif kind == "secret_id":
                role, accessor = target
                client().auth.approle.read_secret_id_accessor(role, accessor, mount_point="approle")
            elif kind == "certificate":
                client().secrets.pki.read_certificate(target, mount_point="pki")
            else:
                client().sys.read_lease(target)
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.InvalidPath):
            return  # gone: what a read-back of a dead credential answers

    def revoke_once(job: tuple[str, Any]) -> None:
        kind, target = job
        if kind == "token":
            client().auth.token.revoke_accessor(target)
        elif kind == "secret_id":
            role, accessor = target
            client().auth.approle.destroy_secret_id_accessor(role, accessor, mount_point="approle")
        elif kind == "certificate":
            client().secrets.pki.revoke_certificate(target, mount_point="pki")
        else:
            client().sys.revoke_lease(target)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(revoke, jobs))
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 4),
        "credentials": len(jobs),
        "phases": {"revoke_and_read_back" if read_back else "revoke": round(seconds, 4)},
        "retried_5xx": retries.count,
    }


def local_tables() -> tuple[Any, Any]:
    """The template's ledger and inventory tables on the active moto."""
    import boto3

    from rescind.inventory.dynamodb import DynamoDbInventory
    from rescind.ledger.dynamodb import DynamoDbLedger
    from rescind_local import LOCAL_REGION, create_table_from_template, load_template

    dynamodb = boto3.client("dynamodb", region_name=LOCAL_REGION)
    template = load_template()
    create_table_from_template(dynamodb, "InventoryTable", "bench-inventory", template)
    create_table_from_template(dynamodb, "LedgerTable", "bench-ledger", template)
    return DynamoDbInventory("bench-inventory", dynamodb), DynamoDbLedger("bench-ledger", dynamodb)


def engine_offboarding(addr: str, token: str, estate: Estate, concurrency: int) -> dict[str, Any]:
    """Discovery + plan (with the inventory and the ledger on moto) + act/verify/record per action + verify all.

    The same domain calls the state machine's tasks make, without the interpreter. With concurrency > 1,
    each thread has its own engine and Vault client, as each concurrent Lambda would.
    """
    from rescind.discovery import DiscoveryScope, discover_workload_credentials
    from rescind.engine.executor import record_result
    from rescind.engine.factory import build_engine
    from rescind.engine.verification import verify_actions
    from rescind.guard import GuardPolicy
    from rescind.models import Outcome
    from rescind.offboarding.plan import plan_offboarding
    from rescind.offboarding.types import GuardDecision
    from rescind.vault.client import build_vault_client
    from rescind.vault.tokens import list_token_accessors
    from rescind_local import local_aws

    with local_aws():
        inventory, ledger = local_tables()
        inventory.record_credentials(estate.workload_id, lease_refs(estate))
        vault = build_vault_client(addr, token, timeout=60)
        request = offboarding_request(estate)
        scope = DiscoveryScope()

        # Discovery alone, once, to show its cost; the plan below discovers again, as the plan task does.
        scanned_tokens = len(list_token_accessors(vault))
        started = time.perf_counter()
        discovered = discover_workload_credentials(vault, None, estate.workload_id, scope)
        discovery_seconds = time.perf_counter() - started

        started = time.perf_counter()
        planned = plan_offboarding(
            request,
            vault=vault,
            aws=None,
            inventory=inventory,
            ledger=ledger,
            scope=scope,
            policy=GuardPolicy(blast_radius_cap=100_000),
        )
        plan_seconds = time.perf_counter() - started
        if planned.decision is not GuardDecision.PROCEED:
            raise RuntimeError(f"the guard said {planned.decision}: {planned.decision_reason}")
        actions = [*planned.containment, *planned.actions]

        local = threading.local()

        def engine() -> Any:
            existing = getattr(local, "engine", None)
            if existing is None:
                existing = local.engine = build_engine(build_vault_client(addr, token, timeout=60))
            return existing

        def act(indexed: tuple[int, Any]) -> Any:
            index, action = indexed
            result = engine().execute_or_fail(action)
            record_result(ledger, request.incident_id, f"{request.incident_id}.revoke.{index}.0", result)
            return result

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(act, enumerate(actions)))
        act_seconds = time.perf_counter() - started

        started = time.perf_counter()
        report = verify_actions(engine(), actions)
        verify_seconds = time.perf_counter() - started

    total = plan_seconds + act_seconds + verify_seconds
    return {
        "seconds": round(total, 4),
        "credentials": len(actions),
        "phases": {
            "plan": round(plan_seconds, 4),
            "act_verify_record": round(act_seconds, 4),
            "verify_all": round(verify_seconds, 4),
        },
        "discovery": {
            "seconds": round(discovery_seconds, 4),
            "found": len(discovered),
            "tokens_scanned": scanned_tokens,
            "certificates_scanned": len(estate.certificates) + len(estate.leases),
        },
        "plan_state_bytes": len(planned.model_dump_json().encode()),
        "succeeded": sum(1 for result in results if result.outcome is Outcome.SUCCEEDED),
        "still_alive": len(report.still_alive),
    }


def _history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = sfn.get_execution_history(
            executionArn=execution_arn, maxResults=1000, **({"nextToken": token} if token else {})
        )
        events.extend(page["events"])
        token = page.get("nextToken")
        if not token:
            return events


def _phases_from_history(
    events: Sequence[dict[str, Any]],
    top_level: set[str],
    names: Sequence[str] = ("Plan", "Contain", "Revoke", "Verify", "Close"),
) -> tuple[dict[str, float], int]:
    """Seconds spent in each of `names` (top-level states), and the largest state output seen (bytes)."""
    entered: dict[str, datetime] = {}
    exited: dict[str, datetime] = {}
    largest = 0
    for event in events:
        details = event.get("stateEnteredEventDetails") or event.get("stateExitedEventDetails")
        if not details:
            continue
        name = details.get("name", "")
        largest = max(largest, len(str(details.get("output") or details.get("input") or "").encode()))
        if name not in top_level:
            continue
        if "stateEnteredEventDetails" in event:
            entered.setdefault(name, event["timestamp"])
        else:
            exited[name] = event["timestamp"]
    phases = {
        name: round((exited[name] - entered[name]).total_seconds(), 4)
        for name in names
        if name in entered and name in exited
    }
    return phases, largest


def state_machine_offboarding(addr: str, token: str, estate: Estate) -> dict[str, Any]:
    """The real path: the offboarding ASL on moto's interpreter, the handlers in-process, ledger on moto."""
    import boto3

    from rescind.inventory.dynamodb import DynamoDbInventory
    from rescind.ledger.dynamodb import DynamoDbLedger
    from rescind.models import Outcome
    from rescind_local import local_aws
    from rescind_local.stack import deploy_template_to_moto

    definition = json.loads((REPO_ROOT / "statemachines" / "offboarding.asl.json").read_text())
    with local_aws():
        stack = deploy_template_to_moto(
            stack_name="bench",
            parameters={
                "VaultAddr": addr,
                "VaultAwsAuthRole": "rescind-local",
                "BlastRadiusCap": "100000",
            },
            function_environment={"VAULT_AUTH_METHOD": "token", "VAULT_TOKEN": token},
            time_scale=0.01,
            warm_functions=True,  # clients kept between events, as a warm Lambda keeps them
        )
        with stack:
            dynamodb = boto3.client("dynamodb")
            DynamoDbInventory(stack.physical_id("InventoryTable"), dynamodb).record_credentials(
                estate.workload_id, lease_refs(estate)
            )
            request = offboarding_request(estate)
            timeout = 300.0 + 2.0 * estate.size
            with stdout_to_file():
                started = time.perf_counter()
                described = stack.run_execution(
                    "OffboardingStateMachine",
                    request.model_dump(mode="json"),
                    name=request.incident_id,
                    timeout=timeout,
                )
                seconds = time.perf_counter() - started
            sfn = boto3.client("stepfunctions")
            events = _history(sfn, described["executionArn"])
            phases, largest_state = _phases_from_history(events, set(definition["States"]))
            view = DynamoDbLedger(stack.physical_id("LedgerTable"), dynamodb).read_incident(request.incident_id)

    planned = len(view.incident.plan.actions) if view.incident is not None else 0
    outcome: dict[str, Any] = {
        "seconds": round(seconds, 4),
        "credentials": planned,
        "status": described["status"],
        "phases": phases,
        "largest_state_bytes": largest_state,
        "history_events": len(events),
        "succeeded": sum(1 for attempt in view.attempts if attempt.result.outcome is Outcome.SUCCEEDED),
        "still_alive": len(view.closure.still_alive) if view.closure is not None else None,
    }
    if described["status"] != "SUCCEEDED":
        failures = [
            f"{event['type']}: " + json.dumps({k: v for k, v in event.items() if k.endswith("EventDetails")})[:400]
            for event in events
            if event["type"].endswith("Failed") and event["type"] != "ExecutionFailed"
        ]
        closure = view.closure
        outcome["error"] = (
            f"{described.get('error')}; closure {closure.status if closure else 'missing'}; "
            + (failures[0] if failures else "no failed task in the history")
        )[:1200]
    return outcome


PATHS: dict[str, str] = {
    "state_machine": "offboarding state machine on moto, handlers in-process and warm (MaxConcurrency 10, "
    "serialised)",
    "engine": "discovery + plan + ActionEngine per action + verify, serial (concurrency 1)",
    "engine_concurrent": f"the same engine path with {MAP_CONCURRENCY} threads, one engine each",
    "bare_concurrent": f"bare hvac revocations, {MAP_CONCURRENCY} threads (the floor of the target)",
    "bare_serial": "bare hvac revocations, one thread (the floor for the serialised in-process Map)",
    "bare_verified_concurrent": f"bare hvac revocation + one read-back each, {MAP_CONCURRENCY} threads",
}


def run_path(path: str, n: int, background_tokens: int) -> dict[str, Any]:
    """One run of one path on a fresh OpenBao with a freshly seeded estate (revocations are destructive)."""
    from rescind_local import LocalOpenBao

    with LocalOpenBao() as server:
        estate = seed_estate(server.addr, server.root_token, n, background_tokens)
        try:
            if path == "state_machine":
                measured = state_machine_offboarding(server.addr, server.root_token, estate)
            elif path == "engine":
                measured = engine_offboarding(server.addr, server.root_token, estate, 1)
            elif path == "engine_concurrent":
                measured = engine_offboarding(server.addr, server.root_token, estate, MAP_CONCURRENCY)
            elif path == "bare_concurrent":
                measured = bare_revocations(server.addr, server.root_token, estate, MAP_CONCURRENCY)
            elif path == "bare_serial":
                measured = bare_revocations(server.addr, server.root_token, estate, 1)
            else:
                measured = bare_revocations(server.addr, server.root_token, estate, MAP_CONCURRENCY, read_back=True)
        except Exception as error:  # a path that fails at a size is reported, with the reason
            measured = {"error": f"{type(error).__name__}: {str(error)[:500]}", "trace": traceback.format_exc()[-1500:]}
    measured["seed_seconds"] = estate.seed_seconds
    return measured


def summarise_path(runs: list[dict[str, Any]], n: int) -> dict[str, Any]:
    good = [run for run in runs if "error" not in run and run.get("status", "SUCCEEDED") == "SUCCEEDED"]
    seconds = median([run["seconds"] for run in good])
    summary: dict[str, Any] = {
        "runs": runs,
        "completed_runs": len(good),
        "median_seconds": seconds,
        "credentials_per_second": round(n / seconds, 2) if seconds else None,
        "ms_per_credential": round(1000 * seconds / n, 3) if seconds else None,
    }
    phase_names = sorted({name for run in good for name in run.get("phases", {})})
    summary["median_phases"] = {
        name: median([run["phases"][name] for run in good if name in run["phases"]]) for name in phase_names
    }
    if good and "discovery" in good[0]:
        summary["median_discovery_seconds"] = median([run["discovery"]["seconds"] for run in good])
        summary["tokens_scanned"] = good[0]["discovery"]["tokens_scanned"]
        summary["discovery_found"] = good[0]["discovery"]["found"]
    errors = [run["error"] for run in runs if "error" in run]
    if errors:
        summary["errors"] = errors
    return summary


def runs_for(n: int, requested: int | None) -> int:
    if requested is not None:
        return requested
    return 3 if n <= 100 else 2 if n <= 1000 else 1


def offboarding_scale(
    sizes: Sequence[int], runs: int | None, background_tokens: int, paths: Sequence[str]
) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for n in sizes:
        count = runs_for(n, runs)
        per_path: dict[str, dict[str, Any]] = {}
        for path in paths:
            attempts = []
            for index in range(count):
                log(f"offboarding N={n} {path} run {index + 1}/{count}")
                attempts.append(run_path(path, n, background_tokens))
                last = attempts[-1]
                log(f"  -> {last.get('seconds', '-')} s" + (f" ERROR {last['error']}" if "error" in last else ""))
            per_path[path] = summarise_path(attempts, n)
        floor = per_path.get("bare_concurrent", {}).get("credentials_per_second")
        serial_floor = per_path.get("bare_serial", {}).get("credentials_per_second")
        verified_floor = per_path.get("bare_verified_concurrent", {}).get("credentials_per_second")
        results.append(
            {
                "n": n,
                "composition": composition(n),
                "runs": count,
                "paths": per_path,
                "rate_vs_bare_concurrent": {
                    path: ratio(summary.get("credentials_per_second"), floor) for path, summary in per_path.items()
                },
                "rate_vs_bare_serial": {
                    path: ratio(summary.get("credentials_per_second"), serial_floor)
                    for path, summary in per_path.items()
                },
                "rate_vs_bare_verified": {
                    path: ratio(summary.get("credentials_per_second"), verified_floor)
                    for path, summary in per_path.items()
                },
            }
        )
    # The plan task's result carries every action: its size per credential bounds what INLINE Maps can take.
    per_credential = [
        run["plan_state_bytes"] / size["n"]
        for size in results
        for run in size["paths"].get("engine", {}).get("runs", [])
        if "plan_state_bytes" in run
    ]
    plan_bytes_per_credential = round(statistics.median(per_credential), 1) if per_credential else None
    return {
        "plan_bytes_per_credential": plan_bytes_per_credential,
        "estimated_max_inline_credentials": int(STATE_LIMIT_BYTES // plan_bytes_per_credential)
        if plan_bytes_per_credential
        else None,
        "mix_percent": dict(CREDENTIAL_MIX),
        "background_tokens": background_tokens,
        "map_concurrency": MAP_CONCURRENCY,
        "paths": {path: PATHS[path] for path in paths},
        "sizes": results,
    }


# --- 3. cold start ------------------------------------------------------------------------------------

_IMPORT_SNIPPET = """
import sys, time
sys.path.insert(0, {code_dir!r})
started = time.perf_counter()
import {module}
print(time.perf_counter() - started)
"""

# Import, then build what the first event builds: every zero-argument `get_*` factory the handler imports (settings,
# the hvac client, the boto3 clients, the engine). The factory names go to stderr.
_CLIENTS_SNIPPET = """
import sys, time
sys.path.insert(0, {code_dir!r})
started = time.perf_counter()
import {module} as handler
built = []
for name, factory in sorted(vars(handler).items()):
    if name.startswith("get_") and callable(factory) and name not in {network_factories!r}:
        factory()
        built.append(name)
elapsed = time.perf_counter() - started
print(",".join(built), file=sys.stderr)
print(elapsed)
"""
# Factories that call AWS when built; the rest only construct clients, so the fresh interpreter needs no network.
NETWORK_FACTORIES = ("get_fingerprint_key",)
# With these, building the clients makes no call: a token client needs no login (the deployed IAM login is one
# round trip to Vault, not measured), and named accounts need no sts:GetCallerIdentity.
CLIENT_BUILD_ENVIRONMENT = {
    "VAULT_AUTH_METHOD": "token",
    "VAULT_TOKEN": "bench-not-a-real-token",
    "AWS_ACCOUNT_IDS": "123456789012",
    "AWS_EC2_METADATA_DISABLED": "true",
}
# The libraries every handler needs, imported as a handler does, with the Tracer patching what the handlers patch:
# the floor below which no handler built on them can start.
_DEPENDENCIES_SNIPPET = """
import time
started = time.perf_counter()
from aws_lambda_powertools import Logger, Metrics, Tracer
import boto3, hvac, pydantic
Tracer(patch_modules=("botocore", "requests"))
print(time.perf_counter() - started)
"""
_BOTO3_SNIPPET = "import time\nstarted = time.perf_counter()\nimport boto3\nprint(time.perf_counter() - started)\n"


def function_environments() -> dict[str, tuple[Path, str, dict[str, str]]]:
    """Each function's folder, handler module and environment as the template deploys it (local names)."""
    from rescind_local.aws import LOCAL_REGION
    from rescind_local.lambdas import runtime_environment
    from rescind_local.stack import IntrinsicResolver, _function_specs, plan_local_resources
    from rescind_local.template import load_template

    template = load_template()
    parameters = {"VaultAddr": "https://vault.example.com:8200", "VaultAwsAuthRole": "rescind"}
    resources = plan_local_resources(template, "rescind", parameters=parameters)
    resolver = IntrinsicResolver(template, resources, "rescind", parameters=parameters)
    found: dict[str, tuple[Path, str, dict[str, str]]] = {}
    for spec in _function_specs(template, resources, resolver, REPO_ROOT, {}):
        environment = {**spec.environment, **runtime_environment(spec, LOCAL_REGION)}
        environment.pop("AWS_SAM_LOCAL", None)  # as deployed: the Tracer is on, so aws_xray_sdk is imported
        found[spec.code_dir.name] = (spec.code_dir, spec.handler.rsplit(".", 1)[0], environment)
    return found


def _base_environment() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    base = {name: os.environ[name] for name in keep if name in os.environ}
    base.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONDONTWRITEBYTECODE": "",
        }
    )
    return base


def time_import(code: str, environment: dict[str, str], extra_flags: Sequence[str] = ()) -> tuple[float, str]:
    answer = subprocess.run(  # noqa: S603 - this interpreter, our own snippet
        [sys.executable, *extra_flags, "-c", code],
        capture_output=True,
        text=True,
        env=environment,
        cwd=str(REPO_ROOT),
        timeout=120,
        check=False,
    )
    if answer.returncode != 0:
        raise RuntimeError(f"import failed: {answer.stderr.strip()[-800:]}")
    return float(answer.stdout.strip().splitlines()[-1]), answer.stderr


def top_imports(importtime_stderr: str, limit: int = 8) -> dict[str, float]:
    """Self time (ms) summed per top-level package in a `-X importtime` report: each module counted once."""
    totals: dict[str, float] = {}
    for line in importtime_stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) < 3:
            continue
        self_us = parts[0].removeprefix("import time:").strip()
        if not self_us.isdigit():
            continue
        root = parts[2].strip().split(".")[0]
        if root in {"app", "site", "encodings"}:  # the handler module's own body, and interpreter start-up
            continue
        totals[root] = totals.get(root, 0.0) + int(self_us) / 1000.0
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:limit]
    return {name: round(value, 1) for name, value in ranked}


def _ms(seconds: float | None) -> float | None:
    return round(1000 * seconds, 1) if seconds is not None else None


def cold_start(runs: int, breakdown: bool) -> dict[str, Any]:
    base = _base_environment()
    functions = function_environments()
    any_environment = next(iter(functions.values()))[2]
    samples: dict[str, list[float]] = {"boto3": [], "dependencies": []}
    built: dict[str, list[str]] = {}
    for name in functions:
        samples[name] = []
        samples[f"{name}+clients"] = []
    # Interleaved, so drift of a shared machine hits the baselines and the handlers alike.
    for index in range(runs):
        log(f"cold start run {index + 1}/{runs}")
        samples["boto3"].append(time_import(_BOTO3_SNIPPET, base)[0])
        samples["dependencies"].append(time_import(_DEPENDENCIES_SNIPPET, {**base, **any_environment})[0])
        for name, (code_dir, module, environment) in functions.items():
            code = _IMPORT_SNIPPET.format(code_dir=str(code_dir), module=module)
            samples[name].append(time_import(code, {**base, **environment})[0])
            code = _CLIENTS_SNIPPET.format(code_dir=str(code_dir), module=module, network_factories=NETWORK_FACTORIES)
            seconds, stderr = time_import(code, {**base, **environment, **CLIENT_BUILD_ENVIRONMENT})
            samples[f"{name}+clients"].append(seconds)
            built[name] = [item for item in stderr.strip().splitlines()[-1].split(",") if item]
    baseline = median(samples["boto3"])
    per_function: dict[str, Any] = {}
    for name, (code_dir, module, environment) in functions.items():
        seconds = median(samples[name])
        with_clients = median(samples[f"{name}+clients"])
        entry: dict[str, Any] = {
            "median_ms": _ms(seconds),
            "samples_ms": [_ms(value) for value in samples[name]],
            "ratio_to_boto3": ratio(seconds, baseline),
            "with_clients_median_ms": _ms(with_clients),
            "with_clients_samples_ms": [_ms(value) for value in samples[f"{name}+clients"]],
            "with_clients_ratio_to_boto3": ratio(with_clients, baseline),
            "factories_built": built[name],
        }
        if breakdown:
            code = _IMPORT_SNIPPET.format(code_dir=str(code_dir), module=module)
            _, report = time_import(code, {**base, **environment}, ["-X", "importtime"])
            entry["top_imports_ms"] = top_imports(report)
        per_function[name] = entry
    dependencies = median(samples["dependencies"])
    result: dict[str, Any] = {
        "runs": runs,
        "python": platform.python_version(),
        "boto3_median_ms": _ms(baseline),
        "boto3_samples_ms": [_ms(value) for value in samples["boto3"]],
        "dependencies_median_ms": _ms(dependencies),
        "dependencies_samples_ms": [_ms(value) for value in samples["dependencies"]],
        "dependencies_ratio_to_boto3": ratio(dependencies, baseline),
        "functions": per_function,
    }
    if breakdown:
        _, report = time_import(_BOTO3_SNIPPET, base, ["-X", "importtime"])
        result["boto3_top_imports_ms"] = top_imports(report)
    return result


# --- 4. package size ------------------------------------------------------------------------------------


def tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file() and "__pycache__" not in item.parts)


def _distribution_name(entry: Path) -> str:
    return entry.name.split("-")[0].lower().replace("_", "-") if entry.name.endswith(".dist-info") else ""


def package_size() -> dict[str, Any]:
    """The layer as `sam build` builds it (BuildMethod python3.12, arm64): aarch64 wheels into python/, plus
    the contents of shared/; boto3, botocore and s3transfer removed (the runtime provides them)."""
    workdir = Path(tempfile.mkdtemp(prefix="rescind-bench-layer-"))
    try:
        target = workdir / "python"
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--disable-pip-version-check",
            "--platform", "manylinux2014_aarch64", "--implementation", "cp", "--python-version", "3.12",
            "--only-binary=:all:", "--target", str(target), "-r", str(SHARED_DIR / "requirements.txt"),
        ]  # fmt: skip
        log("package size: pip install (manylinux2014_aarch64, cp312) into a temporary folder")
        installed = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)  # noqa: S603
        if installed.returncode != 0:
            raise RuntimeError(f"pip install failed: {installed.stderr.strip()[-800:]}")
        for item in SHARED_DIR.iterdir():
            if item.name == "__pycache__":
                continue
            if item.is_dir():
                shutil.copytree(item, target / item.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(item, target / item.name)
        with_runtime = tree_bytes(target)
        removed: dict[str, int] = {}
        for entry in sorted(target.iterdir()):
            distribution = _distribution_name(entry)
            if entry.name in RUNTIME_PROVIDED or distribution in RUNTIME_PROVIDED:
                removed[entry.name] = tree_bytes(entry)
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        total = tree_bytes(target)
        entries = {entry.name: tree_bytes(entry) for entry in target.iterdir()}
        biggest = dict(sorted(entries.items(), key=lambda item: -item[1])[:12])
        archive = shutil.make_archive(str(workdir / "layer"), "zip", root_dir=workdir, base_dir="python")
        functions = {folder.name: tree_bytes(folder) for folder in sorted(FUNCTIONS_DIR.iterdir()) if folder.is_dir()}
        return {
            "measured": True,
            "layer_bytes": total,
            "layer_mb": round(total / 1e6, 2),
            "layer_zipped_bytes": Path(archive).stat().st_size,
            "layer_with_runtime_packages_bytes": with_runtime,
            "removed_runtime_packages_bytes": removed,
            "biggest_entries_bytes": biggest,
            "rescind_package_bytes": entries.get("rescind", 0),
            "function_folders_bytes": functions,
            "limit_bytes": LAYER_LIMIT_BYTES,
            "ratio_to_limit": ratio(total, LAYER_LIMIT_BYTES),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --- targets and rendering ------------------------------------------------------------------------------


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    verdicts: list[dict[str, Any]] = []
    leak = results.get("leak_to_dead") or {}
    if leak.get("measured"):
        for kind, summary in leak["kinds"].items():
            measured_ratio = summary.get("ratio_to_bare")
            if measured_ratio is None:
                detail = f"failed: {(summary.get('errors') or ['no completed run'])[0][:200]}"
            else:
                detail = (
                    f"median {summary['median_seconds']} s against bare {summary['bare_median_seconds']} s: "
                    f"{measured_ratio}x"
                )
                if measured_ratio > LEAK_TARGET_RATIO:
                    detail += f", {round(measured_ratio / LEAK_TARGET_RATIO, 1)}x over the 1.5x target"
            verdicts.append(
                {
                    "target": f"leak_to_dead ({kind})",
                    "wanted": TARGETS["leak_to_dead"],
                    "met": summary.get("met"),
                    "detail": detail,
                }
            )
    else:
        verdicts.append(
            {
                "target": "leak_to_dead",
                "wanted": TARGETS["leak_to_dead"],
                "met": None,
                "detail": leak.get("reason", "not measured"),
            }
        )
    scale = results.get("offboarding")
    if scale:
        for path in ("state_machine", "engine", "engine_concurrent"):
            ratios = {str(size["n"]): size["rate_vs_bare_concurrent"].get(path) for size in scale["sizes"]}
            if path not in scale["paths"]:
                continue
            known = [value for value in ratios.values() if value is not None]
            met = bool(known) and len(known) == len(ratios) and all(value >= 0.8 for value in known)
            worst = min(known) if known else None
            detail = ", ".join(
                f"N={n}: {value}x" if value is not None else f"N={n}: failed" for n, value in ratios.items()
            )
            if worst is not None and not met:
                detail += f"; worst {worst}x is {round(0.8 / worst, 1) if worst else 'inf'}x short of 0.8x"
            verdicts.append(
                {"target": f"offboarding ({path})", "wanted": TARGETS["offboarding"], "met": met, "detail": detail}
            )
    cold = results.get("cold_start")
    if cold:
        # The issue's measure is the import and the clients it builds; results before that measure had import only.
        measure = "with_clients_ratio_to_boto3"
        if not all(measure in entry for entry in cold["functions"].values()):
            measure = "ratio_to_boto3"
        ratios = {name: entry[measure] for name, entry in cold["functions"].items()}
        worst_name = max(ratios, key=lambda name: ratios[name] or 0.0)
        met = all(value is not None and value <= 1.5 for value in ratios.values())
        floor = cold.get("dependencies_ratio_to_boto3")
        detail = f"import and build clients: worst {worst_name} at {ratios[worst_name]}x"
        if measure == "with_clients_ratio_to_boto3":
            imports = [entry["ratio_to_boto3"] for entry in cold["functions"].values()]
            detail += f"; import alone {min(imports)}x to {max(imports)}x"
        if floor is not None:
            detail += f"; the dependencies alone (Powertools, boto3, hvac, pydantic, Tracer) are {floor}x"
        verdicts.append({"target": "cold_start", "wanted": TARGETS["cold_start"], "met": met, "detail": detail})
    layer = results.get("package_size")
    if layer and layer.get("measured"):
        met = layer["layer_bytes"] <= LAYER_LIMIT_BYTES
        verdicts.append(
            {
                "target": "layer",
                "wanted": TARGETS["layer"],
                "met": met,
                "detail": f"{layer['layer_mb']} MB, {layer['ratio_to_limit']}x the 10 MB limit",
            }
        )
    elif layer:
        verdicts.append({"target": "layer", "wanted": TARGETS["layer"], "met": None, "detail": layer.get("reason", "")})
    return verdicts


def _mb(value: int) -> str:
    return f"{value / 1e6:.2f} MB"


def _cell(value: Any) -> str:
    return "failed" if value is None else str(value)


def _verdict(met: bool | None) -> str:
    return "not measured" if met is None else "met" if met else "MISSED"


def render_leak_to_dead(leak: dict[str, Any]) -> list[str]:
    lines = ["## 1. Leak to dead", ""]
    if not leak.get("measured"):
        return [*lines, str(leak.get("reason", "not measured")).rstrip(".") + ".", ""]
    if leak.get("command"):
        lines += [f"Measured by `{leak['command']}` at {leak['generated_at']}, merged into this file.", ""]
    lines += [
        "The generic `Secret Leaked` event (events/secret_leaked.json, a fresh id each run) put through the "
        "template's real rule with `route_event`, then the start function (parse, locate, claim, start), the "
        "leak-response state machine on moto's interpreter and its handlers in-process, against real OpenBao and "
        "moto. The functions are warm: each keeps the settings and clients its first event built, as a Lambda "
        "execution environment does between events (the first event's cost is section 3). The clock runs "
        "from `route_event` to the execution SUCCEEDED and its ledger closure read back "
        f"COMPLETED (describe_execution polled every {leak['poll_interval_seconds'] * 1000:g} ms). Every run "
        "leaks a fresh credential, seeded before the clock starts; the harness then checks the credential is "
        "dead itself. The bare floor, measured in the same run on a fresh credential of the same kind, "
        "interleaved: "
        + "; ".join(f"{kind}: {summary['floor']}" for kind, summary in leak["kinds"].items())
        + f". Median of {leak['runs_per_kind']} runs per kind, after one untimed warm-up each.",
        "",
        "| kind | runs | median s (min-max) | bare median s (min-max) | ratio | target | verdict "
        "| start function s | in handlers s | actions |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, summary in leak["kinds"].items():
        cells = [
            kind,
            f"{summary['completed_runs']}/{leak['runs_per_kind']}",
            f"{_cell(summary['median_seconds'])} ({_cell(summary['min_seconds'])}-{_cell(summary['max_seconds'])})",
            f"{_cell(summary['bare_median_seconds'])} "
            f"({_cell(summary['bare_min_seconds'])}-{_cell(summary['bare_max_seconds'])})",
            f"{_cell(summary['ratio_to_bare'])}x",
            f"<= {leak['target_ratio']}x",
            _verdict(summary["met"]),
            _cell(summary["median_start_function_seconds"]),
            _cell(summary["median_handler_seconds"]),
            ", ".join(summary["actions"]) or "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    names = leak["phase_names"]
    lines += [
        "",
        "Where the time of the median run goes: seconds in each top-level state (from the execution history), and "
        "inside each handler (the in-process invocations). The start function runs before the execution exists.",
        "",
        "| kind | " + " | ".join(names) + " | handlers (s) |",
        "|---|" + "---|" * len(names) + "---|",
    ]
    for kind, summary in leak["kinds"].items():
        phases = summary["phases_of_median_run"]
        handlers = ", ".join(f"{name} {value}" for name, value in summary["handler_seconds_of_median_run"].items())
        lines.append(f"| {kind} | " + " | ".join(_cell(phases.get(name)) for name in names) + f" | {handlers} |")
    errors = [f"{kind}: {summary['errors'][0][:300]}" for kind, summary in leak["kinds"].items() if "errors" in summary]
    if errors:
        lines += ["", "Failed runs: " + "; ".join(errors)]
    return [*lines, ""]


def render_markdown(results: dict[str, Any], notes: str) -> str:
    machine, tool_versions = results["machine"], results["versions"]
    lines = [
        "# Rescind benchmarks",
        "",
        f"Generated {results['generated_at']} by `{results['command']}` in {results['wall_seconds']} s.",
        "",
        f"- **Machine**: {machine['nproc']} CPUs, {machine['memory_mb']} MB memory, {machine['platform']}, "
        f"Python {machine['python']} (the Lambda runtime is 3.12).",
        "- **Versions**: " + ", ".join(f"{name} {value}" for name, value in tool_versions.items()),
        "",
        "Every figure stands beside its bare floor, measured in the same run on the same (shared, noisy) machine.",
        "",
        "## Targets",
        "",
        "| target | wanted | verdict | measured |",
        "|---|---|---|---|",
    ]
    for verdict in results["targets"]:
        lines.append(
            f"| {verdict['target']} | {verdict['wanted']} | {_verdict(verdict['met'])} | {verdict['detail']} |"
        )
    lines += ["", *render_leak_to_dead(results.get("leak_to_dead") or {})]

    scale = results.get("offboarding")
    if scale:
        lines += [
            "## 2. Offboarding scale",
            "",
            "One workload holding N credentials ("
            + ", ".join(f"{share}% {kind}" for kind, share in scale["mix_percent"].items())
            + f"), plus {scale['background_tokens']} tokens of a neighbour that discovery must scan past. "
            "Each run of each path gets a fresh OpenBao and a freshly seeded estate. Paths:",
            "",
        ]
        lines += [f"- `{path}`: {text}" for path, text in scale["paths"].items()]
        lines += [
            "",
            "| N | runs | path | median s | cred/s | ms/cred | vs bare x10 | vs bare x1 | vs bare+read x10 "
            "| phases (median s) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for size in scale["sizes"]:
            for path, summary in size["paths"].items():
                phases = ", ".join(f"{name} {value}" for name, value in summary["median_phases"].items())
                if summary.get("median_discovery_seconds") is not None:
                    phases += (
                        f"; discovery alone {summary['median_discovery_seconds']} "
                        f"({summary['tokens_scanned']} tokens scanned)"
                    )
                if summary.get("errors"):
                    phases += f"; FAILED: {summary['errors'][0][:200]}"
                ratios = [
                    size.get(key, {}).get(path)
                    for key in ("rate_vs_bare_concurrent", "rate_vs_bare_serial", "rate_vs_bare_verified")
                ]
                cells = [
                    str(size["n"]),
                    f"{summary['completed_runs']}/{size['runs']}",
                    path,
                    *(_cell(summary[key]) for key in ("median_seconds", "credentials_per_second", "ms_per_credential")),
                    *(_cell(value) for value in ratios),
                    phases,
                ]
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        state_rows = []
        for size in scale["sizes"]:
            machine_path = size["paths"].get("state_machine", {})
            engine_path = size["paths"].get("engine", {})
            largest = [
                run.get("largest_state_bytes") for run in machine_path.get("runs", []) if "largest_state_bytes" in run
            ]
            plan_bytes = [
                run.get("plan_state_bytes") for run in engine_path.get("runs", []) if "plan_state_bytes" in run
            ]
            if any(run.get("status") == "FAILED" for run in machine_path.get("runs", [])):
                largest = []  # the failed run never held the plan: its largest state says nothing
            if largest or plan_bytes:
                biggest = max(largest + plan_bytes)
                state_rows.append(
                    f"| {size['n']} | {max(largest) if largest else 'run failed'} "
                    f"| {max(plan_bytes) if plan_bytes else '-'} "
                    f"| {'over' if biggest > STATE_LIMIT_BYTES else 'within'} 256 KB |"
                )
        if state_rows:
            if scale.get("plan_bytes_per_credential"):
                lines += [
                    f"The plan task's result takes about {scale['plan_bytes_per_credential']} bytes per credential, "
                    f"so the INLINE path can carry at most about {scale['estimated_max_inline_credentials']} "
                    "credentials before `States.DataLimitExceeded` (moto enforces the limit on task results).",
                    "",
                ]
            lines += [
                "Execution state size (Step Functions limits one state's input/output to 256 KB; moto does not "
                "enforce it, so a local success above the limit would fail on AWS):",
                "",
                "| N | largest state in the local execution (bytes) | OffboardingPlan JSON (bytes) | on AWS |",
                "|---|---|---|---|",
                *state_rows,
                "",
            ]
    cold = results.get("cold_start")
    if cold:
        lines += [
            "## 3. Cold start",
            "",
            "Each handler module in a fresh interpreter, with the function's environment from the template (settings "
            "are validated at import; the Tracer is on, as deployed), timed with perf_counter: the import alone, and "
            "the import plus what the first event builds (every zero-argument `get_*` factory the handler imports: "
            "settings, the hvac client, the boto3 clients, the engine; the hvac client with a token, so no login is "
            f"timed). Against `import boto3` alone. Median of {cold['runs']} runs, interleaved. "
            f"Python {cold['python']}.",
            "",
        ]
        if cold.get("dependencies_median_ms") is not None:
            lines += [
                f"The floor of the libraries every handler needs (Powertools Logger, Metrics and Tracer with its "
                f"patches, boto3, hvac, pydantic), imported the same way: {cold['dependencies_median_ms']} ms, "
                f"{cold['dependencies_ratio_to_boto3']}x `import boto3`.",
                "",
            ]
        lines += [
            "| function | import ms | ratio | import + clients ms | ratio | `import boto3` ms | factories built "
            "| self time by package (ms, one -X importtime run of the import) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, entry in cold["functions"].items():
            tops = ", ".join(f"{module} {ms}" for module, ms in (entry.get("top_imports_ms") or {}).items())
            factories = ", ".join(entry.get("factories_built", []))
            lines.append(
                f"| {name} | {entry['median_ms']} | {entry['ratio_to_boto3']} | "
                f"{entry.get('with_clients_median_ms', '-')} | {entry.get('with_clients_ratio_to_boto3', '-')} | "
                f"{cold['boto3_median_ms']} | {factories} | {tops} |"
            )
        lines.append("")
    layer = results.get("package_size")
    if layer:
        lines += ["## 4. Package size", ""]
        if layer.get("measured"):
            lines += [
                "The layer as `sam build` builds it: wheels for manylinux2014_aarch64 / cp312 installed into "
                "`python/`, plus the contents of `shared/`; boto3, botocore and s3transfer removed (the runtime "
                "provides them). Sizes are unzipped file bytes (no `__pycache__`).",
                "",
                f"- **Layer**: {_mb(layer['layer_bytes'])} unzipped (limit 10 MB: {layer['ratio_to_limit']}x), "
                f"{_mb(layer['layer_zipped_bytes'])} zipped; {_mb(layer['layer_with_runtime_packages_bytes'])} before "
                "removing "
                + ", ".join(f"{name} ({_mb(size)})" for name, size in layer["removed_runtime_packages_bytes"].items()),
                f"- **rescind package itself**: {_mb(layer['rescind_package_bytes'])}",
                "- **Biggest entries**: "
                + ", ".join(f"{name} {_mb(size)}" for name, size in layer["biggest_entries_bytes"].items()),
                "- **Function folders**: "
                + ", ".join(f"{name} {size} B" for name, size in layer["function_folders_bytes"].items()),
                "",
            ]
        else:
            lines += [layer.get("reason", "not measured"), ""]
    if notes:
        lines += ["## Findings", "", notes.strip(), ""]
    return "\n".join(lines) + "\n"


def parse_sizes(text: str) -> list[int]:
    sizes = [int(part) for part in text.split(",") if part.strip()]
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError("sizes are positive integers, comma-separated, e.g. 100,1000")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_sizes, default=[100, 1000], help="credential counts, e.g. 100,1000,10000")
    parser.add_argument(
        "--runs", type=int, default=None, help="runs per size and path (default: 3 at N<=100, 2 at N<=1000, else 1)"
    )
    parser.add_argument(
        "--background-tokens", type=int, default=200, help="a neighbour's tokens that discovery scans past"
    )
    parser.add_argument("--paths", default=",".join(PATHS), help="which offboarding paths, comma-separated")
    parser.add_argument("--cold-start-runs", type=int, default=9)
    parser.add_argument("--leak-runs", type=int, default=5, help="leak-to-dead runs per credential kind")
    parser.add_argument("--skip-leak", action="store_true")
    parser.add_argument("--skip-offboarding", action="store_true")
    parser.add_argument("--skip-cold-start", action="store_true")
    parser.add_argument("--skip-package", action="store_true", help="skip the aarch64 pip install")
    parser.add_argument("--smoke", action="store_true", help="N=10, one run, one cold-start run, no package size")
    parser.add_argument("--output-dir", type=Path, default=BENCH_DIR)
    parser.add_argument(
        "--render-from", type=Path, default=None, help="measure nothing: re-render results.md from a results.json"
    )
    parser.add_argument(
        "--merge-into",
        type=Path,
        default=None,
        help="also write the sections this run measured into that results.json (keeping its other sections), "
        "and re-render the results.md beside it",
    )
    parser.add_argument("--notes", type=Path, default=BENCH_DIR / "findings.md", help="Markdown added to results.md")
    args = parser.parse_args(argv)

    paths = [path for path in args.paths.split(",") if path]
    unknown = sorted(set(paths) - set(PATHS))
    if unknown:
        parser.error(f"unknown paths {unknown}; known: {sorted(PATHS)}")
    if args.smoke:
        args.sizes, args.runs, args.cold_start_runs, args.background_tokens = [10], 1, 1, 10
        args.leak_runs = 1
        args.skip_package = args.skip_package or os.environ.get("RESCIND_BENCH_PACKAGE") != "1"

    notes = args.notes.read_text() if args.notes and args.notes.is_file() and not args.smoke else ""
    args.output_dir.mkdir(parents=True, exist_ok=True)
    if args.render_from is not None:
        rendered = json.loads(args.render_from.read_text())
        (args.output_dir / "results.md").write_text(render_markdown(rendered, notes))
        log(f"rendered {args.output_dir / 'results.md'} from {args.render_from}")
        return 0

    started = time.perf_counter()
    results: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.run " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_info(),
        "versions": versions(),
    }
    results["leak_to_dead"] = (
        {"measured": False, "reason": "skipped (--skip-leak)"} if args.skip_leak else run_leak_to_dead(args.leak_runs)
    )
    if not args.skip_offboarding:
        results["offboarding"] = offboarding_scale(args.sizes, args.runs, args.background_tokens, paths)
    if not args.skip_cold_start:
        results["cold_start"] = cold_start(args.cold_start_runs, breakdown=not args.smoke)
    if args.skip_package:
        results["package_size"] = {
            "measured": False,
            "reason": "skipped (--skip-package, or --smoke without RESCIND_BENCH_PACKAGE=1)",
        }
    else:
        try:
            results["package_size"] = package_size()
        except Exception as error:  # no network for pip, say so
            results["package_size"] = {
                "measured": False,
                "reason": f"failed: {type(error).__name__}: {str(error)[:500]}",
            }
    results["targets"] = evaluate_targets(results)
    results["wall_seconds"] = round(time.perf_counter() - started, 1)

    (args.output_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (args.output_dir / "results.md").write_text(render_markdown(results, notes))
    log(f"wrote {args.output_dir / 'results.json'} and results.md in {results['wall_seconds']} s")
    if args.merge_into is not None:
        measured = [
            section
            for section, skipped in (
                ("leak_to_dead", args.skip_leak),
                ("offboarding", args.skip_offboarding),
                ("cold_start", args.skip_cold_start),
                ("package_size", args.skip_package),
            )
            if not skipped
        ]
        merge_results(args.merge_into, results, measured, notes)
    return 0


def merge_results(target: Path, results: dict[str, Any], sections: Sequence[str], notes: str) -> None:
    """Put `sections` of this run into the results.json at `target`, keeping its other sections (a partial run
    never loses the figures of a longer one), re-evaluate the targets and re-render the results.md beside it."""
    merged: dict[str, Any] = json.loads(target.read_text())
    stamp = {"command": results["command"], "generated_at": results["generated_at"]}
    for section in sections:
        merged[section] = {**results[section], **stamp}
    merged.setdefault("merged", []).append(
        {**stamp, "sections": list(sections), "wall_seconds": results["wall_seconds"]}
    )
    merged["targets"] = evaluate_targets(merged)
    target.write_text(json.dumps(merged, indent=2, default=str) + "\n")
    target.with_name("results.md").write_text(render_markdown(merged, notes))
    log(f"merged {', '.join(sections) or 'nothing'} into {target} and re-rendered {target.with_name('results.md')}")


if __name__ == "__main__":
    raise SystemExit(main())
