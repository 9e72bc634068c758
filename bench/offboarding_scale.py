"""2. Offboarding scale: one workload holding N credentials revoked by each path (the state machine on moto with
its handlers in-process, the engine serial and concurrent) beside bare hvac revocations, each run on a fresh
OpenBao with a freshly seeded estate."""

from __future__ import annotations

import json
import statistics
import threading
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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
    seed_estate,
    thread_local_clients,
)
from bench.harness import REPO_ROOT, cell, log, median, phases_from_history, ratio, stdout_to_file, verdict

WANTED = "at least 0.8x the bare concurrent loop's rate at every N"
MAX_VAULT_CALLS_PER_CREDENTIAL = 2.5
CALLS_WANTED = f"at most {MAX_VAULT_CALLS_PER_CREDENTIAL} Vault calls per credential at every N"
MAP_CONCURRENCY = 10  # MaxConcurrency of the offboarding state machine's Contain and Revoke maps
STATE_LIMIT_BYTES = 256 * 1024  # a Standard execution's state (input/output of one state)


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

    with counting_calls() as counter:
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(revoke, jobs))
        seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 4),
        "credentials": len(jobs),
        "phases": {"revoke_and_read_back" if read_back else "revoke": round(seconds, 4)},
        "retried_5xx": retries.count,
        "calls": counter.snapshot().summary(len(jobs), kind_counts(estate)),
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

        # Discovery alone, once, to show its cost; the plan below discovers again, as the plan task does.
        scanned_tokens = len(list_token_accessors(vault))
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
        "succeeded": sum(1 for result in results if result.outcome is Outcome.SUCCEEDED),
        "still_alive": len(report.still_alive),
        "calls": call_summary(
            estate,
            len(actions),
            after_verify,
            {"plan": after_plan, "act": after_act - after_plan, "verify_all": after_verify - after_act},
        ),
    }


def state_machine_offboarding(addr: str, token: str, estate: Estate) -> dict[str, Any]:
    """The real path: the offboarding ASL on moto's interpreter, the handlers in-process, ledger on moto."""
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
            request = offboarding_request(estate)
            timeout = 300.0 + 2.0 * estate.size
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
            sfn = boto3.client("stepfunctions")
            events = execution_history(sfn, described["executionArn"])
            phases, largest_state = phases_from_history(events, set(definition["States"]))
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
        "calls": call_summary(estate, planned or estate.size, calls, {}),
    }
    short = planned_short(estate, (action.target for action in view.incident.plan.actions)) if view.incident else None
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


PATHS: dict[str, str] = {
    "state_machine": "offboarding state machine on moto (plan in S3, DISTRIBUTED Maps), handlers in-process, warm",
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
    counted = [run["calls"] for run in good if "calls" in run]
    if counted:
        summary["calls_per_credential"] = median_calls(counted)
    errors = [run["error"] for run in runs if "error" in run]
    if errors:
        summary["errors"] = errors
    return summary


def median_calls(counted: list[dict[str, Any]]) -> dict[str, Any]:
    """The median run's calls per credential: Vault overall, by kind and by phase; DynamoDB writes."""

    def middle(values: list[float | None]) -> float | None:
        known = [value for value in values if value is not None]
        return median(known) if known else None

    kinds = sorted({kind for calls in counted for kind in calls.get("vault_per_credential_by_kind", {})})
    phases = sorted({phase for calls in counted for phase in calls.get("phases", {})})
    return {
        "vault": middle([calls["vault_per_credential"] for calls in counted]),
        "dynamodb_writes": middle([calls["dynamodb_writes_per_credential"] for calls in counted]),
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


def verdicts(scale: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A verdict for each Rescind path measured: its rate against the bare concurrent loop's at every N."""
    if not scale:
        return []
    found = []
    for path in ("state_machine", "engine", "engine_concurrent"):
        ratios = {str(size["n"]): size["rate_vs_bare_concurrent"].get(path) for size in scale["sizes"]}
        if path not in scale["paths"]:
            continue
        known = [value for value in ratios.values() if value is not None]
        met = bool(known) and len(known) == len(ratios) and all(value >= 0.8 for value in known)
        worst = min(known) if known else None
        detail = ", ".join(f"N={n}: {value}x" if value is not None else f"N={n}: failed" for n, value in ratios.items())
        if worst is not None and not met:
            detail += f"; worst {worst}x is {round(0.8 / worst, 1) if worst else 'inf'}x short of 0.8x"
        found.append(verdict(f"offboarding ({path})", WANTED, met, detail))
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
            rows.append(
                f"| {size['n']} | {path} | {cell(calls['vault'])} | {kinds} | {phases} "
                f"| {cell(calls['dynamodb_writes'])} |"
            )
    if not rows:
        return []
    return [
        "Calls per credential, counted (bench/calls.py: every hvac request and every botocore call in the process; "
        "an endpoint's calls are counted against the kind it serves, so a kind's figure includes discovery's scan "
        "of the neighbour's tokens for tokens):",
        "",
        "| N | path | Vault calls | Vault by kind | Vault by phase | DynamoDB writes |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def render(scale: dict[str, Any] | None) -> list[str]:
    if not scale:
        return []
    lines = [
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
                *(cell(summary[key]) for key in ("median_seconds", "credentials_per_second", "ms_per_credential")),
                *(cell(value) for value in ratios),
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
