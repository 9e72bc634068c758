"""What finding a token's children costs (issue 13): Rescind's token revocation beside the bare revoke-accessor.

    python -m bench.child_tokens                       # 200 and 2,000 other tokens on the server, 5 runs each
    python -m bench.child_tokens --background 200,20000 --runs 3
    python -m bench.child_tokens --smoke --output-dir /tmp/bench   # 20 other tokens, one run

Vault names no token's children, so before and after revoking a token that can create tokens, Rescind scans
every live token (one LIST and one lookup each); a token that cannot create tokens costs one capabilities
read instead. Each case is measured against the bare floor in the same run: hvac's revoke-accessor and one
lookup-accessor to read it back. Writes child_tokens.json into --output-dir and prints a table. Nothing here
fails on a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "bench"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000.0


def measure(addr: str, root_token: str, background: int, runs: int) -> dict[str, Any]:
    """Medians (ms) of three revocations against `background` other live tokens, each with its bare floor."""
    import hvac

    from rescind.engine.factory import build_engine
    from rescind.models import Action, ActionKind, VaultTokenRef

    vault = hvac.Client(addr, token=root_token)
    unique = uuid.uuid4().hex[:8]
    policy = f"bench-maker-{unique}"
    vault.sys.create_or_update_policy(policy, 'path "auth/token/create" { capabilities = ["create", "update"] }')

    def create(**options: Any) -> dict[str, Any]:
        return dict(vault.auth.token.create(ttl="1h", **options)["auth"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        background_accessors = list(pool.map(lambda _: create(policies=["default"])["accessor"], range(background)))
    engine = build_engine(vault)

    def bare(accessor: str) -> None:
        vault.auth.token.revoke_accessor(accessor)
        try:
            vault.auth.token.lookup_accessor(accessor)
        except hvac.exceptions.InvalidRequest:
            return
        raise RuntimeError("bare floor: the token is still alive")

    def rescind(accessor: str) -> None:
        result = engine.execute(Action(kind=ActionKind.REVOKE, target=VaultTokenRef(accessor=accessor), reason="bench"))
        if not result.outcome.is_success:
            raise RuntimeError(f"rescind: {result.outcome}: {result.detail}")

    cases: dict[str, dict[str, list[float]]] = {
        "cannot_create_tokens": {"rescind": [], "bare": []},
        "can_create_tokens": {"rescind": [], "bare": []},
    }
    for _ in range(runs):
        for case, options in (
            ("cannot_create_tokens", {"policies": ["default"]}),
            ("can_create_tokens", {"policies": ["default", policy], "no_parent": True}),
        ):
            for path, revoke in (("bare", bare), ("rescind", rescind)):
                accessor = create(**options)["accessor"]
                cases[case][path].append(_timed(lambda accessor=accessor, revoke=revoke: revoke(accessor)))

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(vault.auth.token.revoke_accessor, background_accessors))
    vault.sys.delete_policy(policy)

    summary: dict[str, Any] = {"background_tokens": background, "runs": runs}
    for case, paths in cases.items():
        rescind_ms, bare_ms = statistics.median(paths["rescind"]), statistics.median(paths["bare"])
        summary[case] = {
            "rescind_median_ms": round(rescind_ms, 2),
            "bare_median_ms": round(bare_ms, 2),
            "ratio": round(rescind_ms / bare_ms, 1) if bare_ms else None,
        }
    return summary


def render(results: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| other live tokens | case | Rescind median | bare revoke + read-back | ratio |",
        "|---:|---|---:|---:|---:|",
    ]
    for row in results:
        for case in ("cannot_create_tokens", "can_create_tokens"):
            figures = row[case]
            lines.append(
                f"| {row['background_tokens']:,} | {case.replace('_', ' ')} | {figures['rescind_median_ms']} ms "
                f"| {figures['bare_median_ms']} ms | {figures['ratio']}x |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from rescind_local import LocalOpenBao

    parser = argparse.ArgumentParser(prog="python -m bench.child_tokens", description=__doc__.splitlines()[0])
    parser.add_argument("--background", default="200,2000", help="other live tokens on the server, comma-separated")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="20 other tokens, one run")
    parser.add_argument("--output-dir", type=Path, default=BENCH_DIR)
    args = parser.parse_args(argv)
    sizes = [20] if args.smoke else [int(part) for part in args.background.split(",") if part.strip()]
    runs = 1 if args.smoke else args.runs

    results = []
    with tempfile.TemporaryDirectory() as workdir, LocalOpenBao(workdir=Path(workdir)) as openbao:
        for size in sizes:
            log(f"child tokens: {size} other tokens, {runs} run(s)")
            results.append(measure(openbao.addr, openbao.root_token, size, runs))
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "child_tokens.json").write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
