"""Cold start counted in CPU instructions, which a shared, loaded machine does not change: each handler's whole
process (import and the first event's clients, as bench.cold_start runs it) and its own hand-written floor's,
each under valgrind's cachegrind (no cache simulation), and their ratio. The same layout, snippets and floors as
section 3 of the results, one run each (an instruction count barely moves from run to run).

    python -m bench.cold_start_instructions --build-dir /tmp/cs/build                  # sam build there first
    python -m bench.cold_start_instructions --build-dir /tmp/cs/build --reuse --refresh start_leak_response

--reuse takes the sam build output already in --build-dir; --refresh then copies this checkout's shared/rescind
and functions/*/app.py over it and compiles them as the Makefile's layer targets do (a quick loop while editing;
the figures to report come from a fresh sam build). Prints one line per function and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.cold_start import (
    CLIENT_BUILD_ENVIRONMENT,
    LambdaLayout,
    _base_environment,
    _floors,
    _handler_code,
    function_environments,
    parameter_store,
)
from bench.harness import REPO_ROOT, log
from bench.layers import layer_names, python312, runtime_folder, sam_build, template_layers, this_machines_platform

VALGRIND = ("valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null")
_INSTRUCTIONS = re.compile(r"I\s+refs:\s+([\d,]+)")


def instructions(stderr: str) -> int:
    """The instructions cachegrind counted in the whole process (its `I refs` line)."""
    found = _INSTRUCTIONS.search(stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output: {stderr[-400:]}")
    return int(found.group(1).replace(",", ""))


def refresh(build_dir: Path, interpreter: Path) -> None:
    """This checkout's rescind package and handlers over a sam build output, compiled as the layer target does."""
    layer = build_dir / "RescindLayer" / "python"
    shutil.rmtree(layer / "rescind")
    shutil.copytree(REPO_ROOT / "shared" / "rescind", layer / "rescind", ignore=shutil.ignore_patterns("__pycache__"))
    compile_all = [str(interpreter), "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash"]
    compile_all += ["-s", str(layer), "-p", "/opt/python", str(layer / "rescind")]
    subprocess.run(compile_all, check=True, timeout=600)  # noqa: S603 - the runtime's Python, our own sources
    built = function_environments(build_dir)
    for name, (code_dir, _module, _environment) in function_environments().items():
        for handler in code_dir.glob("*.py"):
            shutil.copy2(handler, built[name][0] / handler.name)


def layout_of(build_dir: Path, reuse: bool, runtime: Path) -> LambdaLayout:
    interpreter = python312()
    if not reuse:
        sam_build(build_dir, this_machines_platform())
    if not runtime.exists():
        log(f"boto3 and its dependencies compiled for python3.12 into {runtime}")
        runtime_folder(runtime, interpreter)
    built = {name: build_dir / name / "python" for name in layer_names()}
    return LambdaLayout(interpreter, {"bytecode": built}, runtime, build_dir)


def count(layout: LambdaLayout, names: Sequence[str], endpoint: str) -> dict[str, dict[str, Any]]:
    base = {**_base_environment(), "AWS_ENDPOINT_URL_SSM": endpoint}
    functions = {
        name: (code_dir, module, {**environment, **CLIENT_BUILD_ENVIRONMENT})
        for name, (code_dir, module, environment) in function_environments(layout.build_dir).items()
        if not names or name in names
    }
    layers_of = template_layers()
    floors = _floors(layout, base, functions)
    found: dict[str, dict[str, Any]] = {}
    for name, (code_dir, module, environment) in functions.items():
        layers = [layout.layers["bytecode"][layer] for layer in layers_of[name]]
        environment = {**base, **environment}
        runs = {
            "handler": _handler_code(module),
            "floor": floors[name]["code"],
        }
        counts = {
            what: instructions(layout.run(code, environment, task_root=code_dir, layers=layers, wrapper=VALGRIND)[3])
            for what, code in runs.items()
        }
        found[name] = {**counts, "ratio": round(counts["handler"] / counts["floor"], 3)}
        print(
            f"{name:26} handler {counts['handler'] / 1e6:9.1f} M  floor {counts['floor'] / 1e6:9.1f} M  "
            f"ratio {found[name]['ratio']:.3f}",
            flush=True,
        )
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cold_start_instructions", description=__doc__.splitlines()[0]
    )
    parser.add_argument("functions", nargs="*", help="function folders (default: every function)")
    parser.add_argument("--build-dir", type=Path, required=True, help="where sam build builds (or built, --reuse)")
    parser.add_argument("--reuse", action="store_true", help="take the sam build output already in --build-dir")
    parser.add_argument("--refresh", action="store_true", help="copy this checkout's rescind and handlers over it")
    parser.add_argument("--runtime-dir", type=Path, default=None, help="boto3 compiled for 3.12 (made if absent)")
    options = parser.parse_args(argv)
    runtime = options.runtime_dir or options.build_dir.parent / "var-runtime"
    layout = layout_of(options.build_dir, options.reuse, runtime)
    if options.refresh:
        refresh(options.build_dir, layout.interpreter)
    with parameter_store() as endpoint:
        found = count(layout, options.functions, endpoint)
    ratios = [entry["ratio"] for entry in found.values()]
    print(json.dumps({"worst": max(ratios), "best": min(ratios), "functions": found}, indent=1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
