"""The leak run's entity decision (rescind.leaks.entities, issue 18): how long deciding whether a leaked login token's
entity holds another live token takes, on a server holding many other live tokens.

    python -m bench.entity_decision                        # 2,000 other tokens, 5 runs a case
    python -m bench.entity_decision --background 200 --runs 1 --output-dir /tmp/bench   # a smoke

On its own OpenBao (file audit device, hmac_accessor=false) and the issuance index in moto DynamoDB (fed the audit
lines of each login, as the subscription delivers them): each run logs in to a fresh AppRole role (its own entity),
kills the leaked login (revoke-accessor) and times `entities_holding_nothing_else`, interleaved case by case:
- before: the sequential scan of every token (the decision this replaced), the entity holding nothing else;
- scan, N workers: the entity holding nothing else, no index: every token looked up, N at a time;
- early stop: another session of the entity that the index does not know yet: the scan stops once it sees it;
- index: another session the index names: one lookup, no scan.
Each figure is the median and range of the runs, with the lookups each made (counted by an hvac adapter wrapper).
Writes entity_decision.json into --output-dir and prints a table. Nothing here fails on a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import hvac
import hvac.adapters

REPO_ROOT = Path(__file__).resolve().parents[1]
MOUNT = "approle"
TABLE = "rescind-bench-entity"


class CountingAdapter(hvac.adapters.JSONAdapter):  # type: ignore[misc]
    """hvac's own adapter, counting the lookups it sends (the decision's cost in Vault requests)."""

    lookups = 0

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if url.endswith("lookup-accessor"):
            CountingAdapter.lookups += 1
        return super().request(method, url, *args, **kwargs)


def before(request: Any, vault: hvac.Client) -> frozenset[str]:
    """The decision as it was: every live token looked up, one after another."""
    from rescind.models import VaultEntityRef, VaultTokenRef
    from rescind.vault.tokens import scan_live_tokens

    entities = {ref.entity_id for ref in request.credentials if isinstance(ref, VaultEntityRef)}
    leaked = {ref.accessor for ref in request.credentials if isinstance(ref, VaultTokenRef)}
    return frozenset(entities - {token.entity_id for token in scan_live_tokens(vault) if token.accessor not in leaked})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--background", type=int, default=2000, help="other live tokens on the server")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", default="1,4,8", help="the scan's pool sizes, comma-separated")
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "bench")
    args = parser.parse_args()
    workers = [int(value) for value in args.workers.split(",")]

    import boto3

    from rescind.issuance.base import index_audit_lines
    from rescind.issuance.dynamodb import DynamoDbIssuanceIndex
    from rescind.leaks.entities import entities_holding_nothing_else
    from rescind.ledger import Trigger
    from rescind.models import VaultEntityRef, VaultTokenRef
    from rescind.response.types import ResponseRequest
    from rescind_local import LocalOpenBao, create_table_from_template, local_aws

    with LocalOpenBao(audit_options={"hmac_accessor": "false"}) as bao, local_aws():
        vault = hvac.Client(url=bao.addr, token=bao.root_token, timeout=30, adapter=CountingAdapter)
        vault.sys.enable_auth_method("approle", path=MOUNT)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda _: vault.auth.token.create(policies=["default"], ttl="2h"), range(args.background)))
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table_from_template(dynamodb, "IssuanceTable", TABLE)
        index = DynamoDbIssuanceIndex(TABLE, dynamodb)

        def logins(count: int, *, indexed: int) -> list[dict[str, Any]]:
            """`count` logins of a fresh role (one entity); the first `indexed` of them fed to the index."""
            role = f"leak-{uuid.uuid4().hex[:10]}"
            vault.write(f"auth/{MOUNT}/role/{role}", token_policies="default", token_ttl="1h")  # noqa: S106
            role_id = vault.auth.approle.read_role_id(role, mount_point=MOUNT)["data"]["role_id"]
            anonymous = hvac.Client(url=bao.addr, timeout=30)
            made = []
            for position in range(count):
                start = bao.audit_log.stat().st_size
                secret_id = vault.auth.approle.generate_secret_id(role, mount_point=MOUNT)["data"]["secret_id"]
                auth = anonymous.auth.approle.login(role_id, secret_id, mount_point=MOUNT, use_token=False)["auth"]
                if position < indexed:
                    with bao.audit_log.open("rb") as log:
                        log.seek(start)
                        lines = [line.decode() for line in log.read().splitlines() if line.strip()]
                    index_audit_lines(index, lines, metadata_key="spiffe_id")
                made.append(dict(auth))
            vault.auth.token.revoke_accessor(made[0]["accessor"])  # the kill first
            return made

        def request_for(auth: dict[str, Any]) -> ResponseRequest:
            return ResponseRequest(
                incident_id=f"leak-{auth['accessor'][:8]}",
                workload_id="spiffe://bench.rescind/entity",
                reason="bench",
                trigger=Trigger(source="rescind", detail_type="Secret Leaked", event_id=auth["accessor"][:12]),
                terminated_at=datetime.now(UTC),
                credentials=(VaultEntityRef(entity_id=auth["entity_id"]), VaultTokenRef(accessor=auth["accessor"])),
            )

        Case = tuple[int, int, Callable[[ResponseRequest], frozenset[str]], bool]
        with_index = partial(entities_holding_nothing_else, vault=vault, index=index)
        cases: dict[str, Case] = {"before: sequential scan": (1, 1, partial(before, vault=vault), True)}
        for count in workers:
            cases[f"scan, {count} workers"] = (
                1,
                1,
                partial(entities_holding_nothing_else, vault=vault, workers=count),
                True,
            )
        cases["early stop, 8 workers (other session not indexed)"] = (2, 1, with_index, False)
        cases["index (other session indexed)"] = (2, 2, with_index, False)
        figures: dict[str, dict[str, list[float]]] = {name: {"seconds": [], "lookups": []} for name in cases}
        for _ in range(args.runs):
            for name, (count, indexed, decide, disabled) in cases.items():
                made = logins(count, indexed=indexed)
                request = request_for(made[0])
                CountingAdapter.lookups = 0
                started = time.perf_counter()
                decided = decide(request)
                figures[name]["seconds"].append(time.perf_counter() - started)
                figures[name]["lookups"].append(CountingAdapter.lookups)
                assert (made[0]["entity_id"] in decided) is disabled, (name, decided)
                for other in made[1:]:
                    vault.auth.token.revoke_accessor(other["accessor"])  # the server keeps its token count

    report: dict[str, dict[str, Any]] = {
        name: {
            "median_s": round(statistics.median(values["seconds"]), 4),
            "range_s": [round(min(values["seconds"]), 4), round(max(values["seconds"]), 4)],
            "lookups_median": statistics.median(values["lookups"]),
            "lookups_range": [min(values["lookups"]), max(values["lookups"])],
        }
        for name, values in figures.items()
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "entity_decision.json").write_text(
        json.dumps({"background_tokens": args.background, "runs": args.runs, "cases": report}, indent=2) + "\n"
    )
    print(f"{'case':55} {'median s':>9} {'range s':>17} {'lookups':>9}")
    for name, row in report.items():
        low, high = row["range_s"]
        print(f"{name:55} {row['median_s']:9.4f} {f'{low:.4f}-{high:.4f}':>17} {row['lookups_median']:9}")


if __name__ == "__main__":
    main()
