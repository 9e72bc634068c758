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

Each section is a module: `leak_to_dead`, `offboarding_scale` (with `estate`, the seeding), `cold_start` and
`package_size` (with `layers`, the layers as the Makefile builds them); `harness` holds what they share
(medians, ratios, the machine, phases from a history) and `results` the targets, results.md and merging. This
module is the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.cold_start import cold_start
from bench.harness import BENCH_DIR, log, machine_info, versions
from bench.leak_to_dead import LEAK_KINDS, SMOKE_LEAK_KINDS, run_leak_to_dead
from bench.offboarding_scale import DISCOVERY_MODES, PATHS, offboarding_scale
from bench.package_size import package_size
from bench.results import evaluate_targets, merge_results, render_markdown


def parse_sizes(text: str) -> list[int]:
    sizes = [int(part) for part in text.split(",") if part.strip()]
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError("sizes are positive integers, comma-separated, e.g. 100,1000")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_sizes, default=[100, 1000], help="credential counts, e.g. 100,1000,10000")
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help="rounds per size: each runs every path once, the order alternating (default 3; fewer for a quick run)",
    )
    parser.add_argument(
        "--background-tokens",
        type=int,
        default=20_000,
        help="a neighbour's tokens that discovery scans past, seeded once per size's server (default 20000)",
    )
    parser.add_argument("--paths", default=",".join(PATHS), help="which offboarding paths, comma-separated")
    parser.add_argument(
        "--discovery",
        choices=DISCOVERY_MODES,
        default="index",
        help="how Rescind's offboarding paths discover: from the issuance index, back-filled once per size and fed "
        "each run's audit lines, as deployed (default), or by scanning every token on the server",
    )
    parser.add_argument("--cold-start-runs", type=int, default=9)
    parser.add_argument("--leak-runs", type=int, default=5, help="leak-to-dead runs per credential kind")
    parser.add_argument("--skip-leak", action="store_true")
    parser.add_argument("--skip-offboarding", action="store_true")
    parser.add_argument("--skip-cold-start", action="store_true")
    parser.add_argument("--skip-package", action="store_true", help="skip building the layers for arm64")
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
    leak_kinds = SMOKE_LEAK_KINDS if args.smoke else tuple(LEAK_KINDS)
    results["leak_to_dead"] = (
        {"measured": False, "reason": "skipped (--skip-leak)"}
        if args.skip_leak
        else run_leak_to_dead(args.leak_runs, leak_kinds)
    )

    if not args.skip_offboarding:
        results["offboarding"] = offboarding_scale(
            args.sizes,
            args.runs,
            args.background_tokens,
            paths,
            wrapper_calls=20 if args.smoke else 300,
            discovery=args.discovery,
        )
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


if __name__ == "__main__":
    raise SystemExit(main())
