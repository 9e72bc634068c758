"""Plan time with the issuance index against the live scan (issue 17): one workload holding 100 credentials on a
server holding many other tokens.

    python -m bench.index_vs_scan                          # 1,000 and 10,000 other tokens, 3 runs each
    python -m bench.index_vs_scan --background 1000,10000,30000 --runs 3
    python -m bench.index_vs_scan --smoke --output-dir /tmp/bench    # 50 other tokens, 10 credentials, one run

On its own OpenBao: the workload's credentials (45% tokens with its `spiffe_id` metadata, 25% AppRole secret-ids
with it, 15% PKI certificates with its URI SAN, and their 15% leases), then N other live service tokens (created
from 16 threads). The index (moto DynamoDB, in process) gets the audit log's lines of the workload's issuances (as
the subscription delivers them: the leases are filed under the workload that asked for them), then is back-filled
once with `backfill_index`, timed as the one-off cost. Then, interleaved run by run, the offboarding plan
(`build_offboarding_plan`: discovery, plan, guard) is built with the back-filled index in the scope (discovery
reads it by workload, each candidate confirmed live) and without it (discovery looks up every token on the
server). Figures: the medians, their ratio, and what each plan found (the scan cannot find leases). Nothing is
revoked, so the estate serves every run. Writes index_vs_scan.json into --output-dir and prints a table. Nothing
here fails on a time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "bench"
WORKLOAD = "spiffe://bench.example/ns/billing/sa/api"
COMPOSITION = (("tokens", 0.45), ("secret_ids", 0.25), ("certificates", 0.15), ("leases", 0.15))
TABLE = "rescind-bench-issuance"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def composition(credentials: int) -> dict[str, int]:
    counts = {name: int(credentials * share) for name, share in COMPOSITION}
    counts["leases"] = counts["certificates"]  # one lease per certificate
    counts["tokens"] += credentials - sum(counts.values())
    return counts


def seed_workload(vault: Any, addr: str, counts: dict[str, int]) -> None:
    """The workload's credentials; certificates and their leases come from one `generate_lease` role."""
    import hvac

    vault.sys.enable_auth_method("approle")
    vault.write("auth/approle/role/api", token_policies="default", secret_id_ttl="2h")  # noqa: S106 - names
    vault.sys.enable_secrets_engine("pki", path="pki")
    vault.sys.tune_mount_configuration("pki", max_lease_ttl="87600h")
    vault.write("pki/root/generate/internal", common_name="bench", ttl="87600h", key_type="ec")
    vault.write(
        "pki/roles/web",
        allow_any_name=True,
        generate_lease=True,
        max_ttl="72h",
        key_type="ec",
        allowed_uri_sans="spiffe://*",
    )
    vault.sys.create_or_update_policy("bench-issuer", 'path "pki/issue/web" { capabilities = ["update"] }')
    for _ in range(counts["tokens"] - 1):
        vault.auth.token.create(policies=["default"], meta={"spiffe_id": WORKLOAD}, ttl="2h")
    for _ in range(counts["secret_ids"]):
        vault.write("auth/approle/role/api/secret-id", metadata=json.dumps({"spiffe_id": WORKLOAD}))
    # Each issue is a certificate (URI SAN = the workload) and its lease, asked for by the workload's own token: the
    # audit log names the workload as the lease's holder (the live server names none).
    issuer = vault.auth.token.create(policies=["default", "bench-issuer"], meta={"spiffe_id": WORKLOAD}, ttl="2h")
    workload = hvac.Client(addr, token=issuer["auth"]["client_token"], timeout=30)
    for index in range(counts["certificates"]):
        workload.write("pki/issue/web", common_name=f"api-{index}.bench", uri_sans=WORKLOAD, ttl="2h")


def seed_background(vault: Any, count: int) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda _: vault.auth.token.create(policies=["default"], ttl="2h", no_parent=True), range(count)))


def issuance_table(dynamodb: Any, table: str = TABLE) -> tuple[Any, Any]:
    """The template's IssuanceTable on the active moto: the index and its back-fill marker (the same table)."""
    from rescind.issuance.reading import IssuanceTableReader
    from rescind.issuance.state import DynamoDbIndexState
    from rescind_local import create_table_from_template

    create_table_from_template(dynamodb, "IssuanceTable", table)
    return IssuanceTableReader(table, dynamodb), DynamoDbIndexState(table, dynamodb)


def backfill(vault: Any, index: Any, state: Any, scope: Any) -> Any:
    """`rescind index vault`'s walk of the whole server, unthrottled; marks the index back-filled."""
    from rescind.issuance.backfill import backfill_index
    from rescind.models.results import utc_now

    return backfill_index(vault, index, state, scope, now=utc_now, requests_per_second=1_000_000)


def with_index(scope: Any, index: Any, state: Any) -> Any:
    """The scope with the back-filled index: discovery reads the indexed kinds from it alone."""
    from rescind.discovery import DiscoveryScope

    return DiscoveryScope(**{**scope.__dict__, "issuance_index": index, "index_state": state})


def audit_lines_since(audit_log: Path, offset: int) -> list[str]:
    """The audit log's lines written after `offset` (its size before), as the subscription delivers them."""
    with audit_log.open("rb") as handle:
        handle.seek(offset)
        return [line.decode() for line in handle.read().splitlines() if line.strip()]


def measure(
    addr: str, root_token: str, audit_log: Path, background: int, credentials: int, runs: int
) -> dict[str, Any]:
    import boto3
    import hvac

    from rescind.discovery import DiscoveryScope
    from rescind.guard import GuardPolicy
    from rescind.issuance import index_audit_lines
    from rescind.ledger.types import Trigger
    from rescind.models import CredentialKind
    from rescind.offboarding.plan import build_offboarding_plan
    from rescind.offboarding.types import offboarding_execution_name
    from rescind.response.types import ResponseRequest
    from rescind_local import local_aws

    vault = hvac.Client(addr, token=root_token, timeout=30)
    counts = composition(credentials)
    log(f"index vs scan: the workload's {credentials} credentials {counts}")
    start = audit_log.stat().st_size
    seed_workload(vault, addr, counts)
    workload_lines = audit_lines_since(audit_log, start)
    log(f"index vs scan: {background:,} other tokens")
    seeding, _ = _timed(lambda: seed_background(vault, background))
    live_tokens = len(vault.list("auth/token/accessors")["data"]["keys"])
    scope = DiscoveryScope(pki_mounts=("pki",), approle_mounts=("approle",), kv_mounts=(), lease_mounts=("pki",))
    policy = GuardPolicy(protected_workloads=frozenset(), blast_radius_cap=10_000)

    def plan(with_scope: DiscoveryScope) -> dict[str, int]:
        event_id = str(uuid.uuid4())
        request = ResponseRequest(
            incident_id=offboarding_execution_name(WORKLOAD, event_id),
            workload_id=WORKLOAD,
            reason="bench",
            trigger=Trigger(source="rescind", detail_type="Workload Terminated", event_id=event_id),
            terminated_at=datetime.now(UTC),
        )
        _, planned = build_offboarding_plan(
            request, vault=vault, aws=None, inventory=None, scope=with_scope, policy=policy
        )
        found: dict[str, int] = {}
        for action in planned.actions:
            found[str(action.target.kind)] = found.get(str(action.target.kind), 0) + 1
        return found

    with local_aws():
        index, state = issuance_table(boto3.client("dynamodb", region_name="us-east-1"))
        # What the audit log delivered of the workload's issuances (as the subscription would), then the back-fill.
        index_audit_lines(index, workload_lines, metadata_key="spiffe_id")
        log(f"index vs scan: back-fill of {live_tokens:,} live tokens and the rest")
        backfill_seconds, report = _timed(lambda: backfill(vault, index, state, scope))
        indexed = with_index(scope, index, state)
        times: dict[str, list[float]] = {"index": [], "scan": []}
        found: dict[str, dict[str, int]] = {}
        for run in range(runs + 1):  # the first of each is an untimed warm-up
            for path, with_scope in (("index", indexed), ("scan", scope)):
                seconds, kinds = _timed(partial(plan, with_scope))
                found[path] = kinds
                if run:
                    times[path].append(seconds)
            log(f"index vs scan: run {run}: index {times['index'][-1:]} scan {times['scan'][-1:]}")

    from bench.harness import median, ratio

    index_median, scan_median = median(times["index"]), median(times["scan"])
    return {
        "background_tokens": background,
        "live_tokens": live_tokens,
        "workload_credentials": counts,
        "runs": runs,
        "seed_background_seconds": round(seeding, 2),
        "backfill_seconds": round(backfill_seconds, 2),
        "backfill_examined": report.examined,
        "index_plan": {"median_seconds": index_median, "seconds": [round(t, 4) for t in times["index"]]},
        "scan_plan": {"median_seconds": scan_median, "seconds": [round(t, 4) for t in times["scan"]]},
        "scan_over_index": ratio(scan_median, index_median),
        "found": found,
        "leases_found_by_index": found["index"].get(str(CredentialKind.VAULT_LEASE), 0),
        "leases_found_by_scan": found["scan"].get(str(CredentialKind.VAULT_LEASE), 0),
    }


def render(results: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| other live tokens | plan with the index | plan with the scan | scan / index | back-fill (once) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in results:
        lines.append(
            f"| {row['background_tokens']:,} | {row['index_plan']['median_seconds']} s "
            f"| {row['scan_plan']['median_seconds']} s | {row['scan_over_index']}x | {row['backfill_seconds']} s |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from rescind_local import LocalOpenBao

    parser = argparse.ArgumentParser(prog="python -m bench.index_vs_scan", description=__doc__.splitlines()[0])
    parser.add_argument("--background", default="1000,10000", help="other live tokens on the server, comma-separated")
    parser.add_argument("--credentials", type=int, default=100, help="the workload's credentials")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="50 other tokens, 10 credentials, one run")
    parser.add_argument("--output-dir", type=Path, default=BENCH_DIR)
    args = parser.parse_args(argv)
    sizes = [50] if args.smoke else [int(part) for part in args.background.split(",") if part.strip()]
    runs = 1 if args.smoke else args.runs
    credentials = 10 if args.smoke else args.credentials

    results = []
    for size in sizes:
        # A fresh server per size: the estate is the same, only the other tokens grow.
        with (
            tempfile.TemporaryDirectory() as workdir,
            LocalOpenBao(workdir=Path(workdir), audit_options={"hmac_accessor": "false"}) as openbao,
        ):
            results.append(measure(openbao.addr, openbao.root_token, openbao.audit_log, size, credentials, runs))
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "index_vs_scan.json").write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
