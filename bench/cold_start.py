"""3. Cold start, as Lambda runs it: each handler imported by python3.12 in a whole process of its own, from the
layers and functions as `sam build` builds them (with the layers' bytecode, and without it as SAM shipped them
before), with the
runtime's boto3 from a folder of its own, against `import boto3` alone and a bare hvac + boto3 floor."""

from __future__ import annotations

import os
import resource
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness import REPO_ROOT, log, median, ratio, verdict
from bench.layers import (
    layer_names,
    python312,
    runtime_folder,
    sam_build,
    template_layers,
    this_machines_platform,
    without_bytecode,
)

WANTED = "at most 1.5x `import boto3` to import a handler and build its clients"
VARIANTS = ("bytecode", "source")  # the layer as built now; the same layer without its __pycache__ folders

# Import the handler, then build what the first event builds: every zero-argument `get_*` factory it imports
# (settings, the hvac client, the boto3 clients, the engine). Prints the two times and the factories built.
_HANDLER_SNIPPET = """
import sys, time
started = time.perf_counter()
import {module} as handler
imported = time.perf_counter()
built = []
for name, factory in sorted(vars(handler).items()):
    if name.startswith("get_") and callable(factory) and name not in {network_factories!r}:
        factory()
        built.append(name)
print(imported - started, time.perf_counter() - started, ",".join(built))
"""
# Factories that call AWS when built; the rest only construct clients, so the process needs no network.
NETWORK_FACTORIES = ("get_fingerprint_key",)
# With these, building the clients makes no call: a token client needs no login (the deployed IAM login is one
# round trip to Vault, not measured), and named accounts need no sts:GetCallerIdentity.
CLIENT_BUILD_ENVIRONMENT = {
    "VAULT_AUTH_METHOD": "token",
    "VAULT_TOKEN": "bench-not-a-real-token",
    "AWS_ACCOUNT_IDS": "123456789012",
    "AWS_EC2_METADATA_DISABLED": "true",
}
_BOTO3_SNIPPET = """
import time
started = time.perf_counter()
import boto3
print(time.perf_counter() - started)
"""
# The bare floor: what a handler written with hvac and boto3 alone builds before its first call.
_BARE_SNIPPET = """
import time
started = time.perf_counter()
import boto3, hvac
hvac.Client(url="https://vault.example.com:8200", token="bench-not-a-real-token")
boto3.client("dynamodb")
print(time.perf_counter() - started)
"""
# The libraries every handler imports, as a handler does, with the Tracer patching what the handlers patch.
_DEPENDENCIES_SNIPPET = """
import time
started = time.perf_counter()
from aws_lambda_powertools import Logger, Metrics, Tracer
import boto3, hvac, pydantic
Tracer(patch_modules=("botocore", "requests"))
print(time.perf_counter() - started)
"""


def function_environments(build_dir: Path | None = None) -> dict[str, tuple[Path, str, dict[str, str]]]:
    """Each function's folder (its copy in `build_dir`, a `sam build` output, when given), handler module and
    environment as the template deploys it, X-Ray on."""
    from rescind.config import RuntimeSettings
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
        # The stored settings come as values (CLIENT_BUILD_ENVIRONMENT), not as Parameter Store names: their read
        # is one GetParameters round trip, not measured, like the Vault login.
        for variable in RuntimeSettings.parameter_variables():
            environment.pop(variable, None)
        code_dir = build_dir / spec.logical_id if build_dir is not None else spec.code_dir
        found[spec.code_dir.name] = (code_dir, spec.handler.rsplit(".", 1)[0], environment)
    return found


def _base_environment() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    base = {name: os.environ[name] for name in keep if name in os.environ}
    base.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONDONTWRITEBYTECODE": "1",  # /var/task, /opt and /var/runtime are read-only in Lambda
        }
    )
    return base


class LambdaLayout:
    """python3.12 -S with PYTHONPATH as Lambda orders it: the function's folder, its layers' python/ folders
    (/opt/python), the runtime's boto3 (/var/runtime), then the standard library."""

    def __init__(self, interpreter: Path, layers: dict[str, dict[str, Path]], runtime: Path, build_dir: Path) -> None:
        self.interpreter = interpreter
        self.layers = layers  # variant -> layer name -> python/ folder
        self.runtime = runtime
        self.build_dir = build_dir  # the sam build output: the layers' and the functions' folders

    def run(
        self,
        code: str,
        environment: dict[str, str],
        *,
        task_root: Path | None = None,
        layers: Sequence[Path] = (),
        flags: Sequence[str] = (),
    ) -> tuple[float, float, str, str]:
        """(whole process wall seconds, its CPU seconds, stdout, stderr) of one fresh interpreter."""
        folders = [*([task_root] if task_root else []), *layers, self.runtime]
        environment = {**environment, "PYTHONPATH": os.pathsep.join(str(folder) for folder in folders)}
        # The CPU the child used, user and system: what a loaded, shared machine does not inflate as it does wall time
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        answer = subprocess.run(  # noqa: S603 - the runtime's Python, our own snippet
            [str(self.interpreter), "-S", *flags, "-c", code],
            capture_output=True,
            text=True,
            env=environment,
            cwd=str(task_root or REPO_ROOT),
            timeout=120,
            check=False,
        )
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if answer.returncode != 0:
            raise RuntimeError(f"cold start failed: {answer.stderr.strip()[-800:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return elapsed, cpu, answer.stdout, answer.stderr


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
        if root in {"app", "encodings"}:  # the handler module's own body, and interpreter start-up
            continue
        totals[root] = totals.get(root, 0.0) + int(self_us) / 1000.0
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:limit]
    return {name: round(value, 1) for name, value in ranked}


def _ms(seconds: float | None) -> float | None:
    return round(1000 * seconds, 1) if seconds is not None else None


MEASURES = ("process", "cpu", "in_process")  # whole process wall time, its CPU time, the import + clients inside


class Samples:
    """Every sample of every measured thing (a baseline, a floor, a function with one variant of the layers)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], list[float]] = {}

    def add(self, key: str, **measures: float) -> None:
        for measure, value in measures.items():
            self.values.setdefault((key, measure), []).append(value)

    def median(self, key: str, measure: str) -> float | None:
        return median(self.values.get((key, measure), []))

    def summary(self, key: str, measures: tuple[str, ...] = MEASURES) -> dict[str, Any]:
        """Per measure: the median, the samples and the ratio to `import boto3` measured the same way."""
        found: dict[str, Any] = {}
        for measure in measures:
            samples = self.values[(key, measure)]
            value = median(samples)
            baseline = self.median("boto3", "in_process" if measure == "import_only" else measure)
            found[measure] = {
                "median_ms": _ms(value),
                "samples_ms": [_ms(item) for item in samples],
                "ratio_to_boto3": ratio(value, baseline),
            }
        return found


def _build_layout(workdir: Path) -> LambdaLayout:
    interpreter = python312()
    # sam build itself, with this machine's wheels (the arm64 ones would not load here): the same recipe and lock
    build_dir = sam_build(workdir / "sam-build", this_machines_platform())
    built = {name: build_dir / name / "python" for name in layer_names()}
    source = {name: without_bytecode(folder, workdir / "source" / name / "python") for name, folder in built.items()}
    log("cold start: boto3 and its dependencies compiled for python3.12, as /var/runtime")
    runtime = runtime_folder(workdir / "var-runtime", interpreter)
    return LambdaLayout(interpreter, {"bytecode": built, "source": source}, runtime, build_dir)


def cold_start(runs: int, breakdown: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rescind-bench-cold-") as scratch:
        layout = _build_layout(Path(scratch))
        return _measure(layout, runs, breakdown)


def _measure(layout: LambdaLayout, runs: int, breakdown: bool) -> dict[str, Any]:
    base = _base_environment()
    functions = function_environments(layout.build_dir)
    layers_of = template_layers()
    any_environment = next(iter(functions.values()))[2]
    every_layer = {variant: list(folders.values()) for variant, folders in layout.layers.items()}
    samples = Samples()
    built: dict[str, list[str]] = {}
    # Interleaved, so drift of a shared machine hits the baselines and the handlers alike.
    for index in range(runs):
        log(f"cold start run {index + 1}/{runs}")
        wall, cpu, out, _ = layout.run(_BOTO3_SNIPPET, base)
        samples.add("boto3", process=wall, cpu=cpu, in_process=float(out.split()[-1]))
        for variant in VARIANTS:
            for floor, code in (("bare", _BARE_SNIPPET), ("dependencies", _DEPENDENCIES_SNIPPET)):
                wall, cpu, out, _ = layout.run(code, {**base, **any_environment}, layers=every_layer[variant])
                samples.add(f"{floor}/{variant}", process=wall, cpu=cpu, in_process=float(out.split()[-1]))
            for name, (code_dir, module, environment) in functions.items():
                layers = [layout.layers[variant][layer] for layer in layers_of[name]]
                code = _HANDLER_SNIPPET.format(module=module, network_factories=NETWORK_FACTORIES)
                environment = {**base, **environment, **CLIENT_BUILD_ENVIRONMENT}
                wall, cpu, out, _ = layout.run(code, environment, task_root=code_dir, layers=layers)
                imported, with_clients, factories = [*out.split(), ""][:3]
                key = f"{name}/{variant}"
                samples.add(key, process=wall, cpu=cpu, in_process=float(with_clients), import_only=float(imported))
                built[name] = [item for item in factories.split(",") if item]

    per_function: dict[str, Any] = {}
    for name, (code_dir, module, environment) in functions.items():
        entry: dict[str, Any] = {"layers": layers_of[name], "factories_built": built[name]}
        for variant in VARIANTS:
            key = f"{name}/{variant}"
            entry[variant] = samples.summary(key, (*MEASURES, "import_only"))
            for measure in ("process", "cpu"):
                bare = samples.median(f"bare/{variant}", measure)
                entry[variant][measure]["ratio_to_bare"] = ratio(samples.median(key, measure), bare)
        if breakdown:
            layers = [layout.layers["bytecode"][layer] for layer in layers_of[name]]
            code = _HANDLER_SNIPPET.format(module=module, network_factories=NETWORK_FACTORIES)
            environment = {**base, **environment, **CLIENT_BUILD_ENVIRONMENT}
            report = layout.run(code, environment, task_root=code_dir, layers=layers, flags=["-X", "importtime"])[3]
            entry["top_imports_ms"] = top_imports(report)
        per_function[name] = entry
    return {
        "runs": runs,
        "python": layout.run("import platform; print(platform.python_version())", base)[2].strip(),
        "layout": "python3.12 -S, PYTHONDONTWRITEBYTECODE=1, PYTHONPATH = the function's folder, its layers' "
        "python/ folders (as /opt/python), boto3 and its dependencies compiled for 3.12 (as /var/runtime)",
        "built_by": "sam build --no-cached (make sam-build), the layers' wheels for this machine "
        f"({this_machines_platform()}); functions and layers from its output",
        "boto3": samples.summary("boto3"),
        "floors": {
            floor: {variant: samples.summary(f"{floor}/{variant}") for variant in VARIANTS}
            for floor in ("bare", "dependencies")
        },
        "functions": per_function,
    }


def verdicts(cold: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One verdict: the slowest handler's whole process (import and clients, layers with bytecode) against a whole
    process that imports boto3, on CPU time (wall time beside it: a shared machine inflates it unevenly)."""
    if not cold:
        return []
    if "floors" not in cold:  # results from before the Lambda layout: in-process figures only
        return [verdict("cold_start", WANTED, None, "measured before the Lambda layout; run the section again")]

    def ratios(variant: str, measure: str) -> dict[str, float]:
        return {name: entry[variant][measure]["ratio_to_boto3"] for name, entry in cold["functions"].items()}

    cpu = ratios("bytecode", "cpu")
    worst = max(cpu, key=lambda name: cpu[name] or 0.0)
    met = all(value is not None and value <= 1.5 for value in cpu.values())
    wall, source = ratios("bytecode", "process"), ratios("source", "cpu")
    bare = cold["floors"]["bare"]["bytecode"]["cpu"]["ratio_to_boto3"]
    detail = (
        f"whole processes' CPU, layers with bytecode: {min(cpu.values())}x to {cpu[worst]}x (worst {worst}; wall "
        f"{min(wall.values())}x to {max(wall.values())}x); without bytecode {min(source.values())}x to "
        f"{max(source.values())}x; the bare hvac + boto3 floor {bare}x"
    )
    return [verdict("cold_start", WANTED, met, detail)]


def _figure(measured: dict[str, Any]) -> str:
    return f"{measured['median_ms']} ms ({measured['ratio_to_boto3']}x)"


def render(cold: dict[str, Any] | None) -> list[str]:
    if not cold:
        return []
    lines = ["## 3. Cold start", ""]
    if "floors" not in cold:
        return [*lines, "Measured before the Lambda layout; run `python -m bench.run` for this section again.", ""]
    boto3 = cold["boto3"]
    lines += [
        f"As Lambda runs it: {cold['layout']}; Python {cold['python']}. "
        + (f"Built by {cold['built_by']}. " if cold.get("built_by") else "")
        + "Every figure is a fresh interpreter, the "
        f"median of {cold['runs']} interleaved runs, and its ratio to `import boto3` measured the same way. **CPU** "
        "is the whole process's user and system time (interpreter start, import, clients, exit), which the other "
        "work on a shared machine does not inflate; **wall** the same process's wall time; **in process** the "
        "import plus what the first event builds (every zero-argument `get_*` factory the handler imports; the hvac "
        "client with a token, so no login is timed), timed inside. **bytecode** is the layers as sam build "
        "builds them now (compiled for 3.12, unchecked-hash .pyc); **source** the same layers without their "
        "`__pycache__` folders, as SAM shipped them before: /opt is read-only, so such a cold start compiles every "
        "module it imports, every time.",
        "",
        f"- `import boto3` alone: CPU {boto3['cpu']['median_ms']} ms, wall {boto3['process']['median_ms']} ms, in "
        f"process {boto3['in_process']['median_ms']} ms.",
    ]
    for floor, label in (
        ("bare", "Bare floor, `import hvac, boto3` and one hvac client and one boto3 client (dynamodb)"),
        ("dependencies", "Every handler's libraries, Powertools Logger, Metrics and a Tracer patching botocore and "
         "requests, boto3, hvac, pydantic"),
    ):  # fmt: skip
        figures = cold["floors"][floor]
        lines.append(
            f"- {label}: "
            + "; ".join(
                f"{variant} CPU {_figure(figures[variant]['cpu'])}, wall {_figure(figures[variant]['process'])}"
                for variant in VARIANTS
            )
        )
    lines += [
        "",
        "| function | layers | CPU, bytecode | x bare | CPU, source | wall, bytecode | wall, source "
        "| in process, bytecode / source (ms) | import only, bytecode (ms) | self time by package (ms, bytecode) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in cold["functions"].items():
        fast, slow = entry["bytecode"], entry["source"]
        tops = ", ".join(f"{module} {ms}" for module, ms in (entry.get("top_imports_ms") or {}).items())
        lines.append(
            f"| {name} | {', '.join(entry['layers'])} | {_figure(fast['cpu'])} | {fast['cpu']['ratio_to_bare']} | "
            f"{_figure(slow['cpu'])} | {_figure(fast['process'])} | {_figure(slow['process'])} | "
            f"{fast['in_process']['median_ms']} / {slow['in_process']['median_ms']} | "
            f"{fast['import_only']['median_ms']} | {tops} |"
        )
    lines.append("")
    return lines
