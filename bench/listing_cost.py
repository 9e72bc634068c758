"""What one LIST costs against one lookup per credential (issue 18's "≤ 2.5 Vault calls per credential"): could a
batch of revoked tokens or AppRole secret-ids be read back with one listing instead of a lookup each?

    python -m bench.listing_cost                                    # 7 runs a size; the committed figures
    python -m bench.listing_cost --tokens 50 --secret-ids 20 --runs 1 --output-dir /tmp/bench   # a smoke

On its own OpenBao, grown size by size, each run times one LIST then 20 lookups of other credentials: LIST
auth/token/accessors (every token on the server) and lookup-accessor; LIST of one AppRole role's secret-id accessors
and secret-id-accessor/lookup. A listing says only "present" or "absent"; a lookup also reads the TTL and metadata.
The break-even batch is the LIST's median over a lookup's: a batch must read back more credentials than that for one
LIST to cost less than their lookups. Writes listing_cost.json into --output-dir and prints a table. Nothing here
fails on a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import hvac

REPO_ROOT = Path(__file__).resolve().parents[1]
MOUNT = "approle"
ROLE = "listed"
SEED_THREADS = 16
LOOKUPS_PER_RUN = 20  # after each listing


def _median_ms(timed: list[float]) -> float:
    return round(statistics.median(timed) * 1000, 2)


def _timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measure(runs: int, list_call: Callable[[], list[str]], lookups: Sequence[Callable[[], Any]]) -> dict[str, Any]:
    """`runs` rounds of one listing then each of `lookups` (credentials of their own, so no answer is a repeat);
    medians, the count listed, and the break-even batch."""
    listed: list[float] = []
    looked_up: list[float] = []
    count = 0
    for _ in range(runs):
        started = time.perf_counter()
        count = len(list_call())
        listed.append(time.perf_counter() - started)
        looked_up += [_timed(lookup) for lookup in lookups]
    list_ms, lookup_ms = _median_ms(listed), _median_ms(looked_up)
    return {
        "listed": count,
        "list_median_ms": list_ms,
        "lookup_median_ms": lookup_ms,
        "list_us_per_entry": round(list_ms * 1000 / max(count, 1), 2),
        "break_even_batch": round(list_ms / lookup_ms, 1) if lookup_ms else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", default="1000,5000,20000", help="tokens on the server at each size")
    parser.add_argument("--secret-ids", default="100,1000,5000", help="secret-ids under the role at each size")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "bench")
    args = parser.parse_args()

    from bench.estate import Retries, thread_local_clients
    from rescind_local import LocalOpenBao

    report: dict[str, list[dict[str, Any]]] = {"tokens": [], "secret_ids": []}
    with LocalOpenBao() as bao:
        vault = hvac.Client(url=bao.addr, token=bao.root_token, timeout=60)
        vault.sys.enable_auth_method("approle", path=MOUNT)
        vault.write(f"auth/{MOUNT}/role/{ROLE}", token_policies="default", secret_id_ttl="2h")  # noqa: S106
        approle = vault.auth.approle
        # concurrent secret-id writes under one role can meet OpenBao's 500 "transaction commit failed": retried
        seeding, retries = thread_local_clients(bao.addr, bao.root_token), Retries()

        tokens: list[str] = []
        for size in (int(value) for value in args.tokens.split(",")):
            with ThreadPoolExecutor(SEED_THREADS) as pool:  # the root token is one of them
                tokens += pool.map(
                    lambda _: seeding().auth.token.create(policies=["default"], ttl="2h")["auth"]["accessor"],
                    range(max(size - 1 - len(tokens), 0)),
                )
            figures = measure(
                args.runs,
                lambda: vault.list("auth/token/accessors")["data"]["keys"],
                [partial(vault.auth.token.lookup_accessor, accessor) for accessor in tokens[-LOOKUPS_PER_RUN:]],
            )
            report["tokens"].append({"on_server": size, **figures})

        secret_ids: list[str] = []
        for size in (int(value) for value in args.secret_ids.split(",")):
            with ThreadPoolExecutor(SEED_THREADS) as pool:
                secret_ids += pool.map(
                    lambda _: retries.call(
                        lambda: seeding().auth.approle.generate_secret_id(ROLE, mount_point=MOUNT)["data"][
                            "secret_id_accessor"
                        ]
                    ),
                    range(size - len(secret_ids)),
                )
            figures = measure(
                args.runs,
                lambda: approle.list_secret_id_accessors(ROLE, mount_point=MOUNT)["data"]["keys"],
                [
                    partial(approle.read_secret_id_accessor, ROLE, accessor, mount_point=MOUNT)
                    for accessor in secret_ids[-LOOKUPS_PER_RUN:]
                ],
            )
            report["secret_ids"].append({"under_role": size, **figures})

    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "listing_cost.json").write_text(json.dumps({"runs": args.runs, **report}, indent=2) + "\n")
    print(f"{'listing':34} {'listed':>7} {'LIST ms':>8} {'lookup ms':>10} {'break-even batch':>17}")
    for kind, rows in report.items():
        for row in rows:
            name = "auth/token/accessors" if kind == "tokens" else f"role/{ROLE}/secret-id"
            print(
                f"{name:34} {row['listed']:7} {row['list_median_ms']:8} {row['lookup_median_ms']:10} "
                f"{row['break_even_batch']:>17}"
            )


if __name__ == "__main__":
    main()
