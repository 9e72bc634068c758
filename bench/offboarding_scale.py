"""2. Offboarding scale: one workload holding N credentials revoked by each path (the state machine on moto with
its handlers in-process, the engine serial and concurrent) beside bare hvac revocations, the paths alternated run
by run on one OpenBao per size that holds the neighbour's background tokens, each run on a freshly seeded estate."""

from __future__ import annotations

import json
import statistics
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.calls import CallCounts, counting_calls
from bench.estate import (
    CREDENTIAL_MIX,
    Estate,
    Retries,
    composition,
    lease_refs,
    offboarding_request,
    planned_short,
    reset_workload_mounts,
    seed_background_tokens,
    seed_estate,
    thread_local_clients,
)
from bench.harness import REPO_ROOT, cell, log, median, phases_from_history, ratio, stdout_to_file, verdict
from bench.index_vs_scan import audit_lines_since, backfill, issuance_table, with_index
from rescind_local.audit_subscription import subscription_event

WANTED = "at least 0.8x the rate of the bare revoke-and-read-back loop (10 threads) at every N"
MAX_VAULT_CALLS_PER_CREDENTIAL = 2.5
CALLS_WANTED = f"at most {MAX_VAULT_CALLS_PER_CREDENTIAL} Vault calls per credential at every N"
MAP_CONCURRENCY = 10  # MaxConcurrency of the offboarding state machine's Contain and Revoke maps
STATE_LIMIT_BYTES = 256 * 1024  # a Standard execution's state (input/output of one state)
DISCOVERY_MODES = ("index", "scan")
INDEX_READ_ALONE = "by workload from"  # in the plan's reason when discovery read the indexed kinds from the index
AUDIT_LINES_PER_DELIVERY = 2000  # audit lines per subscription delivery to IndexAuditLogFunction


@dataclass
class BackfilledIndex:
    """A size's issuance index as `rescind index vault` left it: the background tokens' records and the back-fill
    marker; and the server's audit log, whose lines of each run's seeding are delivered after.

    Each run's table gets the marker only. moto answers a Query by sorting and filtering every item of the table
    (measured here: 56 ms at 6,000 items, 737 ms at 60,000), where DynamoDB reads the one partition asked for; the
    neighbour's records are in partitions no run reads (its workload, its references), so copying them would only
    charge the plan moto's cost, in the server's tokens, for every Query it makes."""

    audit_log: Path
    marker: list[dict[str, Any]]  # the raw DynamoDB items of the back-fill marker (STATE#index)
    items: int  # every item the back-fill wrote
    seconds: float
    examined: int


@dataclass
class IndexFeed:
    """What one run gives its index: the back-filled items, then the audit lines of its workload's seeding."""

    backfilled: BackfilledIndex
    lines: list[str]


def backfill_background(addr: str, token: str, audit_log: Path) -> BackfilledIndex:
    """Back-fill a moto issuance index from the server once (timed, the one-off cost), and keep its items."""
    import boto3
    import hvac

    from rescind.discovery import DiscoveryScope
    from rescind.issuance.state import STATE_PK
    from rescind_local import local_aws
    from rescind_local.seed import prepare_vault

    root = hvac.Client(url=addr, token=token, timeout=600)
    prepare_vault(root)  # the back-fill walks the PKI and AppRole mounts: they must exist
    with local_aws():
        dynamodb = boto3.client("dynamodb")
        index, state = issuance_table(dynamodb)
        started = time.perf_counter()
        report = backfill(root, index, state, DiscoveryScope())
        seconds = round(time.perf_counter() - started, 3)
        pages = dynamodb.get_paginator("scan").paginate(TableName=index.table_name)
        items = [item for page in pages for item in page["Items"]]
    marker = [item for item in items if item["pk"]["S"] == STATE_PK]
    return BackfilledIndex(audit_log, marker, len(items), seconds, report.examined)


def restore_index(dynamodb: Any, table: str, items: Sequence[dict[str, Any]]) -> None:
    """Back-filled items (the marker) written into a run's (empty) issuance table, 25 to a BatchWriteItem."""
    for start in range(0, len(items), 25):
        pending: dict[str, Any] = {table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def index_read_alone(reason: str | None) -> str | None:
    """None when the plan's reason says discovery read the indexed kinds from the index; else why not."""
    if reason and INDEX_READ_ALONE in reason:
        return None
    return f"the plan did not read the issuance index alone: {(reason or 'no reason recorded')[:400]}"


def plan_reason_from_history(events: Sequence[dict[str, Any]]) -> str | None:
    """The plan's `decision_reason`, from the execution history: the Plan state's output puts it at $.plan."""
    for event in events:
        details = event.get("stateExitedEventDetails") or {}
        if details.get("name") == "Plan" and details.get("output"):
            return str((json.loads(details["output"]).get("plan") or {}).get("decision_reason") or "") or None
    return None


def read_back_dead(client: Any, job: tuple[str, Any]) -> bool:
    """One read of a bare-revoked credential, True only on the answer that proves it gone, as Rescind's verify
    reads it: 400 "invalid accessor" or "invalid lease", 404 "failed to find accessor entry", or a certificate
    whose revocation_time is set. Any other answer is a live credential."""
    import hvac.exceptions

    kind, target = job
    try:
        if kind == "token":
            client.auth.token.lookup_accessor(target)
        elif kind == "secret_id":
            role, accessor = target
            client.auth.approle.read_secret_id_accessor(role, accessor, mount_point="approle")
        elif kind == "certificate":
            read = client.secrets.pki.read_certificate(target, mount_point="pki")
            return int((read.get("data") or {}).get("revocation_time") or 0) > 0
        else:
            client.sys.read_lease(target)
    except hvac.exceptions.InvalidRequest as error:
        return kind in ("token", "lease") and ("invalid accessor" in str(error) or "invalid lease" in str(error))
    except hvac.exceptions.InvalidPath as error:
        return kind == "secret_id" and "failed to find accessor entry" in str(error)
    return False  # it answered: alive


def estate_jobs(estate: Estate) -> list[tuple[str, Any]]:
    """The estate's credentials as (kind, reference) jobs for the bare loops."""
    return [
        *(("token", accessor) for accessor in estate.tokens),
        *(("secret_id", pair) for pair in estate.secret_ids),
        *(("certificate", serial) for serial in estate.certificates),
        *(("lease", lease_id) for lease_id in estate.leases),
    ]


def bare_revocations(
    addr: str, token: str, estate: Estate, concurrency: int, *, read_back: bool = False
) -> dict[str, Any]:
    """The floor: the same revocations with plain hvac calls, no discovery, no ledger; with `read_back`, one read
    per credential afterwards that checks what it reads (the least a verified revocation costs): a credential the
    read finds alive is counted in `still_alive`, and a run that leaves one is an error."""
    client = thread_local_clients(addr, token)
    retries = Retries()
    jobs = estate_jobs(estate)

    def revoke(job: tuple[str, Any]) -> bool:
        retries.call(lambda: revoke_once(job))
        return read_back_dead(client(), job) if read_back else True

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

    with counting_calls() as counter:
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            dead = list(pool.map(revoke, jobs))
        seconds = time.perf_counter() - started
    measured: dict[str, Any] = {
        "seconds": round(seconds, 4),
        "credentials": len(jobs),
        "phases": {"revoke_and_read_back" if read_back else "revoke": round(seconds, 4)},
        "retried_5xx": retries.count,
        "calls": counter.snapshot().summary(len(jobs), kind_counts(estate)),
    }
    if read_back:
        measured["still_alive"] = dead.count(False)
        if measured["still_alive"]:
            measured["error"] = f"the read-back found {measured['still_alive']} of {len(jobs)} credentials alive"
    return measured


def wrapper_cost(addr: str, token: str, calls: int = 300, rounds: int = 5) -> dict[str, Any]:
    """What the local wrappers add to one hvac call (`lookup-self`, one thread): none, bench.calls' counting
    patch, moto's mock (`local_aws`, whose `responses` patch sees every requests call) and both, interleaved
    round by round after a warm-up; the best round of each (the least noise a shared machine adds), and the median.
    Every path runs under both, so the figure is context, not a correction."""
    import hvac

    from rescind_local import local_aws

    client = hvac.Client(url=addr, token=token, timeout=60)

    @contextmanager
    def moto_and_counting() -> Iterator[None]:
        with local_aws(), counting_calls():
            yield

    wrappers: dict[str, Callable[[], AbstractContextManager[Any]]] = {
        "none": nullcontext,
        "counting": counting_calls,
        "moto": local_aws,
        "moto_and_counting": moto_and_counting,
    }

    def microseconds_per_call() -> float:
        started = time.perf_counter()
        for _ in range(calls):
            client.auth.token.lookup_self()
        return (time.perf_counter() - started) / calls * 1e6

    microseconds_per_call()  # warm-up: the connection pool
    samples: dict[str, list[float]] = {name: [] for name in wrappers}
    for _ in range(rounds):
        for name, wrapper in wrappers.items():
            with wrapper():
                samples[name].append(microseconds_per_call())
    per_call = {name: round(min(values), 1) for name, values in samples.items()}
    return {
        "calls": calls,
        "rounds": rounds,
        "microseconds_per_call": per_call,
        "median_microseconds_per_call": {name: round(statistics.median(values), 1) for name, values in samples.items()},
        "overhead_microseconds_per_call": {
            name: round(value - per_call["none"], 1) for name, value in per_call.items() if name != "none"
        },
    }


def kind_counts(estate: Estate) -> dict[str, int]:
    """The estate's credentials of each kind, named as bench.calls attributes endpoints to kinds."""
    return {
        "vault_token": len(estate.tokens),
        "approle_secret_id": len(estate.secret_ids),
        "pki_certificate": len(estate.certificates),
        "vault_lease": len(estate.leases),
    }


def call_summary(estate: Estate, credentials: int, total: CallCounts, phases: dict[str, CallCounts]) -> dict[str, Any]:
    """The run's calls (bench.calls), per credential overall, by kind, and by phase."""
    found = total.summary(credentials, kind_counts(estate))
    found["phases"] = {
        name: {
            "vault_per_credential": round(counts.vault_total / credentials, 3),
            "dynamodb_writes_per_credential": round(counts.aws_writes() / credentials, 3),
            "vault_per_credential_by_kind": counts.summary(credentials, kind_counts(estate))[
                "vault_per_credential_by_kind"
            ],
        }
        for name, counts in phases.items()
    }
    return found


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


def engine_offboarding(
    addr: str, token: str, estate: Estate, concurrency: int, feed: IndexFeed | None = None
) -> dict[str, Any]:
    """Discovery + plan (with the inventory and the ledger on moto) + act/verify/record per action + verify all.

    The same domain calls the state machine's tasks make, without the interpreter. With concurrency > 1,
    each thread has its own engine and Vault client, as each concurrent Lambda would. With `feed`, discovery
    reads the back-filled issuance index, fed the workload's audit lines first (untimed: `index_seconds`).
    """
    import boto3

    from rescind.discovery import DiscoveryScope, discover_workload_credentials
    from rescind.engine.executor import record_result
    from rescind.engine.factory import build_engine
    from rescind.engine.verification import verify_actions
    from rescind.guard import GuardPolicy
    from rescind.issuance import index_audit_lines
    from rescind.models import Outcome
    from rescind.offboarding.plan import plan_offboarding
    from rescind.response.types import GuardDecision
    from rescind.vault.client import build_vault_client
    from rescind.vault.tokens import list_token_accessors
    from rescind_local import local_aws

    with local_aws(), counting_calls() as counter:
        inventory, ledger = local_tables()
        inventory.record_credentials(estate.workload_id, lease_refs(estate))
        vault = build_vault_client(addr, token, timeout=60)
        request = offboarding_request(estate)
        scope = DiscoveryScope()
        index_seconds = None
        if feed is not None:
            started = time.perf_counter()
            dynamodb = boto3.client("dynamodb")
            index, state = issuance_table(dynamodb, "bench-issuance")
            restore_index(dynamodb, "bench-issuance", feed.backfilled.marker)
            index_audit_lines(index, feed.lines, metadata_key=scope.metadata_key)
            scope = with_index(scope, index, state)
            index_seconds = round(time.perf_counter() - started, 3)

        # Discovery alone, once, to show its cost; the plan below discovers again, as the plan task does.
        scanned_tokens = 0 if feed is not None else len(list_token_accessors(vault))
        before_discovery = counter.snapshot()
        started = time.perf_counter()
        discovered = discover_workload_credentials(vault, None, estate.workload_id, scope)
        discovery_seconds = time.perf_counter() - started

        before_plan = counter.snapshot()
        discovery_calls = (before_plan - before_discovery).vault_total
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
        after_plan = counter.snapshot() - before_plan
        if planned.decision is not GuardDecision.PROCEED:
            raise RuntimeError(f"the guard said {planned.decision}: {planned.decision_reason}")
        actions = [*planned.containment, *planned.actions]
        short = planned_short(estate, (action.target for action in actions))
        if short is not None:
            raise RuntimeError(short)
        not_indexed = index_read_alone(planned.decision_reason) if feed is not None else None
        if not_indexed is not None:
            raise RuntimeError(not_indexed)

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
        after_act = counter.snapshot() - before_plan

        started = time.perf_counter()
        report = verify_actions(engine(), actions)
        verify_seconds = time.perf_counter() - started
        after_verify = counter.snapshot() - before_plan

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
            "vault_calls": discovery_calls,
            "certificates_scanned": len(estate.certificates) + len(estate.leases),
        },
        "plan_state_bytes": len(planned.model_dump_json().encode()),
        "plan_reason": planned.decision_reason[:1000],
        "index_seconds": index_seconds,
        "succeeded": sum(1 for result in results if result.outcome is Outcome.SUCCEEDED),
        "still_alive": len(report.still_alive),
        "calls": call_summary(
            estate,
            len(actions),
            after_verify,
            {"plan": after_plan, "act": after_act - after_plan, "verify_all": after_verify - after_act},
        ),
    }


def state_machine_offboarding(addr: str, token: str, estate: Estate, feed: IndexFeed | None = None) -> dict[str, Any]:
    """The real path: the offboarding ASL on moto's interpreter, the handlers in-process, ledger on moto. With
    `feed`, the stack's IssuanceTable gets the back-filled items, then the workload's audit lines through
    IndexAuditLogFunction as the subscription delivers them (untimed: `index_seconds`), so the plan task's
    discovery reads the index, as a deployed stack's does."""
    import boto3

    from rescind.inventory.dynamodb import DynamoDbInventory
    from rescind.ledger.dynamodb import DynamoDbLedger
    from rescind.models import Outcome
    from rescind_cli.runs.history import execution_history
    from rescind_local import local_aws
    from rescind_local.stack import deploy_template_to_moto

    definition = json.loads((REPO_ROOT / "statemachines" / "response.asl.json").read_text())
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
            index_seconds = feed_stack_index(stack, feed) if feed is not None else None
            request = offboarding_request(estate)
            timeout = 300.0 + 2.0 * estate.size
            invocations_before = len(stack.lambdas.invocations)
            with stdout_to_file(), counting_calls() as counter:
                started = time.perf_counter()
                described = stack.run_execution(
                    "OffboardingStateMachine",
                    request.model_dump(mode="json"),
                    name=request.incident_id,
                    timeout=timeout,
                )
                seconds = time.perf_counter() - started
            calls = counter.snapshot()
            invocations = len(stack.lambdas.invocations) - invocations_before
            sfn = boto3.client("stepfunctions")
            events = execution_history(sfn, described["executionArn"])
            phases, largest_state = phases_from_history(events, set(definition["States"]))
            view = DynamoDbLedger(stack.physical_id("LedgerTable"), dynamodb).read_incident(request.incident_id)

    planned = len(view.incident.plan.actions) if view.incident is not None else 0
    reason = plan_reason_from_history(events)
    outcome: dict[str, Any] = {
        "seconds": round(seconds, 4),
        "plan_reason": (reason or "")[:1000],
        "index_seconds": index_seconds,
        "credentials": planned,
        "status": described["status"],
        "phases": phases,
        "largest_state_bytes": largest_state,
        "history_events": len(events),
        "succeeded": sum(1 for attempt in view.attempts if attempt.result.outcome is Outcome.SUCCEEDED),
        "still_alive": len(view.closure.still_alive) if view.closure is not None else None,
        "calls": {
            **call_summary(estate, planned or estate.size, calls, {}),
            "lambda_invocations": invocations,  # in-process, not through botocore: counted by the local stack
            "lambda_invocations_per_credential": round(invocations / (planned or estate.size), 3),
        },
    }
    short = planned_short(estate, (action.target for action in view.incident.plan.actions)) if view.incident else None
    if short is None and feed is not None:
        short = index_read_alone(reason)
    if short is not None:
        outcome["error"] = short
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


def feed_stack_index(stack: Any, feed: IndexFeed) -> float:
    """The back-fill's marker into the stack's IssuanceTable, then the audit lines through IndexAuditLogFunction
    (a subscription delivery at a time); the seconds it took."""
    import boto3

    started = time.perf_counter()
    restore_index(boto3.client("dynamodb"), stack.physical_id("IssuanceTable"), feed.backfilled.marker)
    with stdout_to_file():
        for start in range(0, len(feed.lines), AUDIT_LINES_PER_DELIVERY):
            chunk = feed.lines[start : start + AUDIT_LINES_PER_DELIVERY]
            report, error = stack.invoke("IndexAuditLogFunction", subscription_event(chunk))
            if error is not None or report.get("refused"):
                raise RuntimeError(f"IndexAuditLogFunction: {error or ''} {str(report)[:400]}")
    return round(time.perf_counter() - started, 3)


PATHS: dict[str, str] = {
    "state_machine": "offboarding state machine on moto (plan in S3, DISTRIBUTED Maps), handlers in-process, warm",
    "engine": "discovery + plan + ActionEngine per action + verify, serial (concurrency 1)",
    "engine_concurrent": f"the same engine path with {MAP_CONCURRENCY} threads, one engine each",
    "bare_concurrent": f"bare hvac revocations, {MAP_CONCURRENCY} threads, no read-back",
    "bare_serial": "bare hvac revocations, one thread (the floor for the serialised in-process Map)",
    "bare_verified_concurrent": (
        f"bare hvac revocation + one read-back each that checks what it reads, {MAP_CONCURRENCY} threads "
        "(the floor of the target)"
    ),
}
TARGET_FLOOR = "bare_verified_concurrent"
DEFAULT_RUNS = 3  # per size and path, at every size
FLAT_WITHIN = 1.25  # ms per credential at the largest N against the smallest
FLAT_WANTED = f"ms per credential at the largest N at most {FLAT_WITHIN}x the smallest N's"


def run_path(path: str, addr: str, token: str, n: int, index: BackfilledIndex | None = None) -> dict[str, Any]:
    """One run of one path on a freshly seeded estate, on a server whose PKI and AppRole mounts are reset first
    (revocations are destructive; the background tokens are kept). Every path runs under the same wrappers:
    moto's mock (`local_aws`), the handlers' stdout to a file, and bench.calls' counting patch. With `index`,
    Rescind's paths discover from the back-filled issuance index, fed the audit lines of this run's seeding."""
    from rescind_local import local_aws

    reset_workload_mounts(addr, token)
    offset = index.audit_log.stat().st_size if index is not None else 0
    estate = seed_estate(addr, token, n)
    feed = IndexFeed(index, audit_lines_since(index.audit_log, offset)) if index is not None else None
    try:
        if path == "state_machine":
            measured = state_machine_offboarding(addr, token, estate, feed)
        elif path in ("engine", "engine_concurrent"):
            measured = engine_offboarding(addr, token, estate, 1 if path == "engine" else MAP_CONCURRENCY, feed)
        else:
            with local_aws(), stdout_to_file():
                measured = bare_revocations(
                    addr,
                    token,
                    estate,
                    1 if path == "bare_serial" else MAP_CONCURRENCY,
                    read_back=path == "bare_verified_concurrent",
                )
    except Exception as error:  # a path that fails at a size is reported, with the reason
        measured = {"error": f"{type(error).__name__}: {str(error)[:500]}", "trace": traceback.format_exc()[-1500:]}
    measured["seed_seconds"] = estate.seed_seconds
    return measured


def run_order(paths: Sequence[str], round_index: int) -> list[str]:
    """The paths of one round: in order, then reversed in the next round (A B, B A, A B ...), so that no path
    always runs first or last after the others."""
    return list(paths) if round_index % 2 == 0 else list(reversed(paths))


def summarise_path(runs: list[dict[str, Any]], n: int) -> dict[str, Any]:
    good = [run for run in runs if "error" not in run and run.get("status", "SUCCEEDED") == "SUCCEEDED"]
    seconds = median([run["seconds"] for run in good])
    summary: dict[str, Any] = {
        "runs": runs,
        "completed_runs": len(good),
        "median_seconds": seconds,
        "min_seconds": min((run["seconds"] for run in good), default=None),
        "max_seconds": max((run["seconds"] for run in good), default=None),
        "median_seed_seconds": median([run["seed_seconds"] for run in runs if "seed_seconds" in run]),
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
    index_feeds = [run["index_seconds"] for run in runs if run.get("index_seconds") is not None]
    if index_feeds:
        summary["median_index_seconds"] = median(index_feeds)
    reasons = [run["plan_reason"] for run in good if run.get("plan_reason")]
    if reasons:
        summary["plan_reason"] = reasons[0]
    counted = [run["calls"] for run in good if "calls" in run]
    if counted:
        summary["calls_per_credential"] = median_calls(counted)
    errors = [run["error"] for run in runs if "error" in run]
    if errors:
        summary["errors"] = errors
    return summary


def median_calls(counted: list[dict[str, Any]]) -> dict[str, Any]:
    """The median run's calls per credential: Vault overall, by kind and by phase; DynamoDB writes; AWS calls by
    service; the state machine's Lambda invocations."""

    def middle(values: list[float | None]) -> float | None:
        known = [value for value in values if value is not None]
        return median(known) if known else None

    kinds = sorted({kind for calls in counted for kind in calls.get("vault_per_credential_by_kind", {})})
    phases = sorted({phase for calls in counted for phase in calls.get("phases", {})})
    services = sorted({service for calls in counted for service in calls.get("aws_per_credential_by_service", {})})
    return {
        "vault": middle([calls["vault_per_credential"] for calls in counted]),
        "dynamodb_writes": middle([calls["dynamodb_writes_per_credential"] for calls in counted]),
        "aws_by_service": {
            service: middle([calls["aws_per_credential_by_service"].get(service, 0.0) for calls in counted])
            for service in services
        },
        "lambda_invocations": middle([calls.get("lambda_invocations_per_credential") for calls in counted]),
        "vault_by_kind": {
            kind: middle([calls["vault_per_credential_by_kind"].get(kind) for calls in counted]) for kind in kinds
        },
        "vault_by_phase": {
            phase: middle(
                [calls["phases"][phase]["vault_per_credential"] for calls in counted if phase in calls["phases"]]
            )
            for phase in phases
        },
    }


def runs_for(n: int, requested: int | None) -> int:
    return DEFAULT_RUNS if requested is None else requested


def offboarding_scale(
    sizes: Sequence[int],
    runs: int | None,
    background_tokens: int,
    paths: Sequence[str],
    *,
    wrapper_calls: int = 300,
    discovery: str = "index",
) -> dict[str, Any]:
    """Per size: one OpenBao, the background tokens seeded once (and, with `discovery="index"`, back-filled once
    into an issuance index), then `runs` rounds of every path in alternating order (run_order), each run on a
    freshly seeded estate."""
    if discovery not in DISCOVERY_MODES:
        raise ValueError(f"discovery is one of {DISCOVERY_MODES}, not {discovery!r}")
    from rescind_local import LocalOpenBao

    results: list[dict[str, Any]] = []
    wrappers: dict[str, Any] | None = None
    for n in sizes:
        count = runs_for(n, runs)
        attempts: dict[str, list[dict[str, Any]]] = {path: [] for path in paths}
        order: list[str] = []
        index: BackfilledIndex | None = None
        # Accessors logged in the clear, as the issuance index needs (README "The issuance index"), in either mode.
        with LocalOpenBao(audit_options={"hmac_accessor": "false"}) as server:
            log(f"offboarding N={n}: seeding {background_tokens} background tokens")
            background_seconds = seed_background_tokens(server.addr, server.root_token, background_tokens)
            log(f"  -> {background_seconds} s")
            if discovery == "index" and any(path in RESCIND_PATHS for path in paths):
                log(f"offboarding N={n}: back-filling the issuance index (rescind index vault)")
                index = backfill_background(server.addr, server.root_token, server.audit_log)
                log(f"  -> {index.seconds} s, {index.examined} credentials examined")
            if wrappers is None:
                wrappers = wrapper_cost(server.addr, server.root_token, wrapper_calls)
                log(f"offboarding: wrappers' cost per hvac call {wrappers['overhead_microseconds_per_call']} us")
            for round_index in range(count):
                for path in run_order(paths, round_index):
                    log(f"offboarding N={n} round {round_index + 1}/{count} {path}")
                    last = run_path(path, server.addr, server.root_token, n, index)
                    last["round"] = round_index + 1
                    attempts[path].append(last)
                    order.append(path)
                    log(
                        f"  -> {last.get('seconds', '-')} s (seeded in {last['seed_seconds']} s)"
                        + (f" ERROR {last['error']}" if "error" in last else "")
                    )
        per_path = {path: summarise_path(attempts[path], n) for path in paths}
        size: dict[str, Any] = {
            "n": n,
            "composition": composition(n),
            "runs": count,
            "order": order,
            "background_tokens": background_tokens,
            "background_seed_seconds": background_seconds,
            "index_backfill_seconds": index.seconds if index is not None else None,
            "index_backfill_examined": index.examined if index is not None else None,
            "index_backfill_items": index.items if index is not None else None,
            "paths": per_path,
        }
        floors = {"bare_concurrent": "bare_concurrent", "bare_serial": "bare_serial", "bare_verified": TARGET_FLOOR}
        for name, floor_path in floors.items():
            floor_rate = per_path.get(floor_path, {}).get("credentials_per_second")
            size[f"rate_vs_{name}"] = {
                path: ratio(summary.get("credentials_per_second"), floor_rate) for path, summary in per_path.items()
            }
        results.append(size)
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
        "discovery": discovery,
        "mix_percent": dict(CREDENTIAL_MIX),
        "background_tokens": background_tokens,
        "map_concurrency": MAP_CONCURRENCY,
        "target_floor": TARGET_FLOOR,
        "wrapper_cost": wrappers,
        "paths": {path: PATHS[path] for path in paths},
        "sizes": results,
    }


RESCIND_PATHS = ("state_machine", "engine", "engine_concurrent")


def verdicts(scale: dict[str, Any] | None) -> list[dict[str, Any]]:
    """For each Rescind path measured: its rate against the bare revoke-and-read-back loop's at every N, its time
    per credential flat from the smallest N to the largest, and its counted Vault calls per credential."""
    if not scale:
        return []
    found = []
    for path in RESCIND_PATHS:
        if path not in scale["paths"]:
            continue
        ratios = {str(size["n"]): size["rate_vs_bare_verified"].get(path) for size in scale["sizes"]}
        known = [value for value in ratios.values() if value is not None]
        met = bool(known) and len(known) == len(ratios) and all(value >= 0.8 for value in known)
        worst = min(known) if known else None
        detail = ", ".join(f"N={n}: {value}x" if value is not None else f"N={n}: failed" for n, value in ratios.items())
        if worst is not None and not met:
            detail += f"; worst {worst}x is {round(0.8 / worst, 1) if worst else 'inf'}x short of 0.8x"
        found.append(verdict(f"offboarding ({path})", WANTED, met, detail))
    for path in RESCIND_PATHS:
        flat = flatness(scale, path)
        if flat is not None:
            found.append(verdict(f"offboarding time per credential ({path})", FLAT_WANTED, *flat))
    for path in ("state_machine", "engine"):
        counted = {
            str(size["n"]): ((size["paths"].get(path) or {}).get("calls_per_credential") or {}).get("vault")
            for size in scale["sizes"]
        }
        known = [value for value in counted.values() if value is not None]
        if path not in scale["paths"] or not known:
            continue
        detail = ", ".join(f"N={n}: {value}" if value is not None else f"N={n}: failed" for n, value in counted.items())
        met = len(known) == len(counted) and all(value <= MAX_VAULT_CALLS_PER_CREDENTIAL for value in known)
        found.append(verdict(f"offboarding Vault calls ({path})", CALLS_WANTED, met, detail))
    return found


def flatness(scale: dict[str, Any], path: str) -> tuple[bool | None, str] | None:
    """ms per credential at the largest N against the smallest N, for `path`; None with fewer than two sizes."""
    sizes = sorted(scale["sizes"], key=lambda size: size["n"])
    if len(sizes) < 2 or path not in scale["paths"]:
        return None
    smallest, largest = (size["paths"].get(path, {}).get("ms_per_credential") for size in (sizes[0], sizes[-1]))
    detail = ", ".join(f"N={size['n']}: {cell(size['paths'].get(path, {}).get('ms_per_credential'))}" for size in sizes)
    growth = ratio(largest, smallest)
    if growth is None:
        return None, detail + " ms/cred (a size failed)"
    return growth <= FLAT_WITHIN, f"{detail} ms/cred: {growth}x"


def render_calls(scale: dict[str, Any]) -> list[str]:
    """Calls per credential (bench.calls), median run: Vault overall, by kind and by phase; DynamoDB writes."""
    rows = []
    for size in scale["sizes"]:
        for path, summary in size["paths"].items():
            calls = summary.get("calls_per_credential")
            if not calls:
                continue
            kinds = ", ".join(f"{kind} {cell(value)}" for kind, value in calls["vault_by_kind"].items())
            phases = ", ".join(f"{phase} {cell(value)}" for phase, value in calls["vault_by_phase"].items()) or "-"
            aws = ", ".join(f"{service} {value}" for service, value in (calls.get("aws_by_service") or {}).items())
            rows.append(
                f"| {size['n']} | {path} | {cell(calls['vault'])} | {kinds} | {phases} "
                f"| {cell(calls['dynamodb_writes'])} | {aws or '0'} | {calls.get('lambda_invocations') or '-'} |"
            )
    if not rows:
        return []
    return [
        "Calls per credential, counted (bench/calls.py: every hvac request and every botocore call in the process; "
        "an endpoint's calls are counted against the kind it serves, so a kind's figure includes discovery's scan "
        "of the neighbour's tokens for tokens; the state machine's Lambda invocations are in-process, counted by "
        "the local stack):",
        "",
        "| N | path | Vault calls | Vault by kind | Vault by phase | DynamoDB writes | AWS calls by service "
        "| Lambda invocations |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def discovery_text(scale: dict[str, Any]) -> str:
    """How Rescind's paths discovered, and what the index cost once per size."""
    if scale.get("discovery", "scan") == "scan":
        return (
            "Discovery (`--discovery scan`) scans every token on the server: no issuance index is back-filled, so "
            "the plan looks up the neighbour's tokens too."
        )
    backfills = ", ".join(
        f"N={size['n']}: {size['index_backfill_seconds']} s for {size['index_backfill_examined']} credentials"
        for size in scale["sizes"]
        if size.get("index_backfill_seconds") is not None
    )
    return (
        "Discovery (`--discovery index`) reads the issuance index, as a deployed Rescind does: the neighbour's "
        "tokens are back-filled into it once per size (`backfill_index`, as `rescind index vault`; a one-off cost"
        + (f": {backfills}" if backfills else "")
        + "), and each run's table (moto) gets its back-fill marker (not the neighbour's records, in partitions no "
        "run reads: moto answers a Query by scanning the whole table, DynamoDB reads one partition), then the "
        "audit lines of the run's own seeding through "
        "the indexer (IndexAuditLogFunction as the subscription delivers them for the state machine, "
        "`index_audit_lines` for the engine), untimed, before the clock starts; the plan then reads the indexed "
        "kinds from the index alone (its reason says so, checked every run) and confirms each candidate live. "
        "The bare floors are given the list and need no discovery."
    )


def render(scale: dict[str, Any] | None) -> list[str]:
    if not scale:
        return []
    seeding = ", ".join(
        f"N={size['n']}: {size['background_seed_seconds']} s"
        for size in scale["sizes"]
        if "background_seed_seconds" in size
    )
    lines = [
        "## 2. Offboarding scale",
        "",
        "One workload holding N credentials ("
        + ", ".join(f"{share}% {kind}" for kind, share in scale["mix_percent"].items())
        + f"), plus {scale['background_tokens']} tokens of a neighbour. "
        + discovery_text(scale)
        + " "
        "One OpenBao per size: the neighbour's tokens are seeded once on it"
        + (f" ({seeding}, 16 threads)" if seeding else "")
        + ", and kept; before every run its PKI and AppRole mounts are unmounted and the workload is seeded afresh "
        "(timed apart), so every run starts from the same server: the same background tokens, an empty certificate "
        "store and CRL, and nothing left of the runs before (revoked tokens, secret-ids and leases leave nothing). "
        "The paths alternate run by run, in order and then reversed (A B, B A, A B ...); every path runs under "
        "the same local wrappers: moto's mock (`local_aws`), the handlers' stdout to a file, and the call "
        "counting of bench/calls.py. Paths:",
        "",
    ]
    lines += [f"- `{path}`: {text}" for path, text in scale["paths"].items()]
    wrappers = scale.get("wrapper_cost")
    if wrappers:
        per_call = wrappers["microseconds_per_call"]
        lines += [
            "",
            f"What the wrappers cost, per hvac call (`lookup-self`, one thread, the best of {wrappers['rounds']} "
            f"interleaved rounds of {wrappers['calls']} calls): {per_call['none']} us bare, "
            f"{per_call['counting']} us under the counting patch, {per_call['moto']} us under moto's mock, "
            f"{per_call['moto_and_counting']} us under both. Both sides pay it alike.",
        ]
    lines += [
        "",
        "| N | runs | path | median s (min-max) | cred/s | ms/cred | vs bare+read x10 (target) | vs bare x10 "
        "| vs bare x1 | Vault calls/cred | AWS calls/cred | phases (median s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size in scale["sizes"]:
        for path, summary in size["paths"].items():
            phases = ", ".join(f"{name} {value}" for name, value in summary["median_phases"].items())
            if summary.get("median_discovery_seconds") is not None:
                phases += (
                    f"; discovery alone {summary['median_discovery_seconds']} "
                    f"({summary['tokens_scanned']} tokens scanned)"
                )
            if summary.get("median_index_seconds") is not None:
                phases += f"; index fed in {summary['median_index_seconds']} (untimed)"
            if summary.get("errors"):
                phases += f"; FAILED: {summary['errors'][0][:200]}"
            ratios = [
                cell(size.get(f"rate_vs_{key}", {}).get(path)) if floor in size["paths"] else "-"
                for key, floor in (
                    ("bare_verified", TARGET_FLOOR),
                    ("bare_concurrent", "bare_concurrent"),
                    ("bare_serial", "bare_serial"),
                )
            ]
            calls = summary.get("calls_per_credential") or {}
            aws = ", ".join(f"{service} {value}" for service, value in (calls.get("aws_by_service") or {}).items())
            if calls.get("lambda_invocations") is not None:
                aws += f"; Lambda invocations {calls['lambda_invocations']}"
            cells = [
                str(size["n"]),
                f"{summary['completed_runs']}/{size['runs']}",
                path,
                f"{cell(summary['median_seconds'])} ({cell(summary.get('min_seconds'))}-"
                f"{cell(summary.get('max_seconds'))})",
                *(cell(summary[key]) for key in ("credentials_per_second", "ms_per_credential")),
                *ratios,
                cell(calls.get("vault")),
                aws or "0",
                phases,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += render_calls(scale)
    state_rows = []
    for size in scale["sizes"]:
        machine_path = size["paths"].get("state_machine", {})
        engine_path = size["paths"].get("engine", {})
        largest = [
            run.get("largest_state_bytes") for run in machine_path.get("runs", []) if "largest_state_bytes" in run
        ]
        plan_bytes = [run.get("plan_state_bytes") for run in engine_path.get("runs", []) if "plan_state_bytes" in run]
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
            "| N | largest state in the local execution (bytes) | ResponsePlan JSON (bytes) | on AWS |",
            "|---|---|---|---|",
            *state_rows,
            "",
        ]
    return lines
