"""3. Cold start, as Lambda runs it: each handler imported by python3.12 in a whole process of its own, from the
layers and functions as `sam build` builds them (with the layers' bytecode, and without it as SAM shipped them
before), with the runtime's boto3 from a folder of its own and its stored settings read from Parameter Store
(moto's server), against `import boto3` alone and against its own floor: a handler written with boto3 and hvac
alone that reads the same parameters and builds the same clients."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
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

WANTED = (
    "at most 1.5x a hand-written handler (boto3 and hvac alone: the same stored settings read, the same clients "
    "built) to import a handler and build its clients"
)
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
# round trip to Vault, not measured), and the discovery accounts are named (their stored setting is the stack's
# account), so no sts:GetCallerIdentity. The one call is the stored settings' GetParameters, to moto's server.
CLIENT_BUILD_ENVIRONMENT = {
    "VAULT_AUTH_METHOD": "token",
    "VAULT_TOKEN": "bench-not-a-real-token",
    "AWS_EC2_METADATA_DISABLED": "true",
}
# Run once per function, not timed: which boto3 clients (by service) and whether an hvac client its cold start
# built, and the parameters it read, for its hand-written floor. The last line printed is that record.
_RECORD_PREFIX = """
import json, botocore.session, hvac
_services, _vault = [], []
_create_client = botocore.session.Session.create_client
def _recording_create_client(self, service_name, *args, **kwargs):
    _services.append(service_name)
    return _create_client(self, service_name, *args, **kwargs)
botocore.session.Session.create_client = _recording_create_client
_client_init = hvac.Client.__init__
def _recording_client_init(self, *args, **kwargs):
    _vault.append(True)
    _client_init(self, *args, **kwargs)
hvac.Client.__init__ = _recording_client_init
"""
_RECORD_SUFFIX = """
print(json.dumps({"services": list(dict.fromkeys(_services)), "vault": bool(_vault)}))
"""
# A function's floor: a handler written with boto3 (and hvac when the handler builds a Vault client) alone. It
# reads the same parameters with one GetParameters, as the handler's settings do, and builds one client for each
# service the handler's cold start built one for.
_FLOOR_SNIPPET = """
import time
started = time.perf_counter()
import boto3{import_hvac}
settings = {read_parameters}
{build_vault}
clients = [boto3.client(service) for service in {services!r}]
print(time.perf_counter() - started)
"""
STACK_PARAMETERS = {"VaultAddr": "https://vault.example.com:8200", "VaultAwsAuthRole": "rescind"}
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
    environment as the template deploys it, X-Ray on, with the names of its stored settings' parameters
    (`stored_settings` gives their values)."""
    from rescind_local.aws import LOCAL_REGION
    from rescind_local.lambdas import runtime_environment
    from rescind_local.stack import IntrinsicResolver, _function_specs, plan_local_resources
    from rescind_local.template import load_template

    template = load_template()
    resources = plan_local_resources(template, "rescind", parameters=STACK_PARAMETERS)
    resolver = IntrinsicResolver(template, resources, "rescind", parameters=STACK_PARAMETERS)
    found: dict[str, tuple[Path, str, dict[str, str]]] = {}
    for spec in _function_specs(template, resources, resolver, REPO_ROOT, {}):
        environment = {**spec.environment, **runtime_environment(spec, LOCAL_REGION)}
        environment.pop("AWS_SAM_LOCAL", None)  # as deployed: the Tracer is on, so aws_xray_sdk is imported
        code_dir = build_dir / spec.logical_id if build_dir is not None else spec.code_dir
        found[spec.code_dir.name] = (code_dir, spec.handler.rsplit(".", 1)[0], environment)
    return found


def stored_settings() -> dict[str, tuple[str, str]]:
    """The template's stored settings as a deploy with the bench's parameters creates them: name -> (value, type)."""
    from rescind_local.stack import IntrinsicResolver, plan_local_resources
    from rescind_local.template import load_template

    template = load_template()
    resources = plan_local_resources(template, "rescind", parameters=STACK_PARAMETERS)
    resolver = IntrinsicResolver(template, resources, "rescind", parameters=STACK_PARAMETERS)
    return {
        resources[logical_id].ref: (str(resolver.resolve(body["Properties"]["Value"])), body["Properties"]["Type"])
        for logical_id, body in template["Resources"].items()
        if body["Type"] == "AWS::SSM::Parameter"
    }


def parameter_names(environment: dict[str, str]) -> list[str]:
    """The parameters a function's settings read at cold start: the values of its `<VARIABLE>_PARAMETER`s."""
    from rescind.config import RuntimeSettings

    return sorted(environment[name] for name in RuntimeSettings.parameter_variables() if environment.get(name))


@contextlib.contextmanager
def parameter_store() -> Iterator[str]:
    """moto's server holding the stored settings, on loopback: its endpoint, for AWS_ENDPOINT_URL_SSM. The
    children's CPU time does not include it (it runs in this process)."""
    import boto3

    from rescind_local.daemon import moto_http_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    with moto_http_server() as endpoint:
        ssm = boto3.client(
            "ssm",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106 - moto's, not a credential
        )
        for name, (value, kind) in stored_settings().items():
            ssm.put_parameter(Name=name, Value=value, Type=kind)
        yield endpoint


def floor_clients(services: Sequence[str], parameters: Sequence[str]) -> list[str]:
    """The clients a floor builds beside its settings' read (whose ssm client the read builds)."""
    return [service for service in services if service != "ssm" or not parameters]


def floor_snippet(record: dict[str, Any], parameters: Sequence[str]) -> str:
    """The hand-written floor of one function, from what its cold start read and built (`_RECORD_PREFIX`)."""
    read = f'boto3.client("ssm").get_parameters(Names={list(parameters)!r})["Parameters"]' if parameters else "{}"
    vault = 'hvac.Client(url="https://vault.example.com:8200", token="bench-not-a-real-token")'
    return _FLOOR_SNIPPET.format(
        import_hvac=", hvac" if record["vault"] else "",
        read_parameters=read,
        build_vault=vault if record["vault"] else "",
        services=floor_clients(record["services"], parameters),
    )


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
        wrapper: Sequence[str] = (),
    ) -> tuple[float, float, str, str]:
        """(whole process wall seconds, its CPU seconds, stdout, stderr) of one fresh interpreter, run under
        `wrapper` when given (a command that runs the interpreter, e.g. valgrind's, for counting instructions)."""
        folders = [*([task_root] if task_root else []), *layers, self.runtime]
        environment = {**environment, "PYTHONPATH": os.pathsep.join(str(folder) for folder in folders)}
        # The CPU the child used, user and system: what a loaded, shared machine does not inflate as it does wall time
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        answer = subprocess.run(  # noqa: S603 - the runtime's Python, our own snippet
            [*wrapper, str(self.interpreter), "-S", *flags, "-c", code],
            capture_output=True,
            text=True,
            env=environment,
            cwd=str(task_root or REPO_ROOT),
            timeout=600 if wrapper else 120,
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


def cold_start(runs: int, breakdown: bool, variants: Sequence[str] = VARIANTS) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rescind-bench-cold-") as scratch, parameter_store() as endpoint:
        layout = _build_layout(Path(scratch))
        return _measure(layout, runs, breakdown, endpoint, tuple(variants))


def _handler_code(module: str) -> str:
    return _HANDLER_SNIPPET.format(module=module, network_factories=NETWORK_FACTORIES)


def _floors(
    layout: LambdaLayout, base: dict[str, str], functions: dict[str, tuple[Path, str, dict[str, str]]]
) -> dict[str, dict[str, Any]]:
    """Each function's hand-written floor: what its cold start read and built (one untimed run), and the code."""
    layers_of = template_layers()
    floors: dict[str, dict[str, Any]] = {}
    for name, (code_dir, module, environment) in functions.items():
        layers = [layout.layers["bytecode"][layer] for layer in layers_of[name]]
        code = _RECORD_PREFIX + _handler_code(module) + _RECORD_SUFFIX
        output = layout.run(code, {**base, **environment}, task_root=code_dir, layers=layers)[2]
        record = json.loads(output.strip().splitlines()[-1])
        parameters = parameter_names(environment)
        floors[name] = {**record, "parameters": parameters, "code": floor_snippet(record, parameters)}
    return floors


def _measure(
    layout: LambdaLayout, runs: int, breakdown: bool, endpoint: str, variants: tuple[str, ...] = VARIANTS
) -> dict[str, Any]:
    base = {**_base_environment(), "AWS_ENDPOINT_URL_SSM": endpoint}
    functions = {
        name: (code_dir, module, {**environment, **CLIENT_BUILD_ENVIRONMENT})
        for name, (code_dir, module, environment) in function_environments(layout.build_dir).items()
    }
    layers_of = template_layers()
    any_environment = next(iter(functions.values()))[2]
    every_layer = {variant: list(folders.values()) for variant, folders in layout.layers.items()}
    floors = _floors(layout, base, functions)
    samples = Samples()
    built: dict[str, list[str]] = {}
    # Interleaved, so drift of a shared machine hits the baselines, the floors and the handlers alike.
    for index in range(runs):
        log(f"cold start run {index + 1}/{runs}")
        wall, cpu, out, _ = layout.run(_BOTO3_SNIPPET, base)
        samples.add("boto3", process=wall, cpu=cpu, in_process=float(out.split()[-1]))
        for variant in variants:
            for floor, code in (("bare", _BARE_SNIPPET), ("dependencies", _DEPENDENCIES_SNIPPET)):
                wall, cpu, out, _ = layout.run(code, {**base, **any_environment}, layers=every_layer[variant])
                samples.add(f"{floor}/{variant}", process=wall, cpu=cpu, in_process=float(out.split()[-1]))
            for name, (code_dir, module, environment) in functions.items():
                layers = [layout.layers[variant][layer] for layer in layers_of[name]]
                environment = {**base, **environment}
                wall, cpu, out, _ = layout.run(_handler_code(module), environment, task_root=code_dir, layers=layers)
                imported, with_clients, factories = [*out.split(), ""][:3]
                key = f"{name}/{variant}"
                samples.add(key, process=wall, cpu=cpu, in_process=float(with_clients), import_only=float(imported))
                built[name] = [item for item in factories.split(",") if item]
                # The floor with the same layers on the path: boto3 from the runtime, hvac from the layer.
                wall, cpu, out, _ = layout.run(floors[name]["code"], environment, task_root=code_dir, layers=layers)
                samples.add(f"floor/{key}", process=wall, cpu=cpu, in_process=float(out.split()[-1]))

    per_function: dict[str, Any] = {}
    for name, (code_dir, module, environment) in functions.items():
        record = {field: value for field, value in floors[name].items() if field != "code"}
        entry: dict[str, Any] = {"layers": layers_of[name], "factories_built": built[name], "floor": record}
        for variant in variants:
            key = f"{name}/{variant}"
            entry[variant] = samples.summary(key, (*MEASURES, "import_only"))
            entry[variant]["floor"] = samples.summary(f"floor/{key}")
            for measure in ("process", "cpu", "in_process"):
                own_floor = samples.median(f"floor/{key}", measure)
                entry[variant][measure]["ratio_to_floor"] = ratio(samples.median(key, measure), own_floor)
            for measure in ("process", "cpu"):
                bare = samples.median(f"bare/{variant}", measure)
                entry[variant][measure]["ratio_to_bare"] = ratio(samples.median(key, measure), bare)
        if breakdown:
            layers = [layout.layers["bytecode"][layer] for layer in layers_of[name]]
            environment = {**base, **environment}
            code = _handler_code(module)
            report = layout.run(code, environment, task_root=code_dir, layers=layers, flags=["-X", "importtime"])[3]
            entry["top_imports_ms"] = top_imports(report)
        per_function[name] = entry
    return {
        "runs": runs,
        "variants": list(variants),
        "python": layout.run("import platform; print(platform.python_version())", base)[2].strip(),
        "layout": "python3.12 -S, PYTHONDONTWRITEBYTECODE=1, PYTHONPATH = the function's folder, its layers' "
        "python/ folders (as /opt/python), boto3 and its dependencies compiled for 3.12 (as /var/runtime), the "
        "stored settings in Parameter Store (moto's server on loopback)",
        "built_by": "sam build --no-cached (make sam-build), the layers' wheels for this machine "
        f"({this_machines_platform()}); functions and layers from its output",
        "boto3": samples.summary("boto3"),
        "floors": {
            floor: {variant: samples.summary(f"{floor}/{variant}") for variant in variants}
            for floor in ("bare", "dependencies")
        },
        "functions": per_function,
    }


def _has_own_floors(cold: dict[str, Any]) -> bool:
    """Whether these results are from after each handler was measured beside its own floor."""
    return all("floor" in entry for entry in cold["functions"].values())


def verdicts(cold: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One verdict: each handler's whole process (import, stored settings and clients, layers with bytecode)
    against its own hand-written floor, on CPU time (wall time beside it: a shared machine inflates it unevenly)."""
    if not cold:
        return []
    if "floors" not in cold:  # results from before the Lambda layout: in-process figures only
        return [verdict("cold_start", WANTED, None, "measured before the Lambda layout; run the section again")]
    if not _has_own_floors(cold):
        return [verdict("cold_start", WANTED, None, "measured before each handler had its own floor; run it again")]

    def ratios(variant: str, measure: str, against: str = "ratio_to_floor") -> dict[str, float]:
        return {name: entry[variant][measure][against] for name, entry in cold["functions"].items()}

    cpu = ratios("bytecode", "cpu")
    worst = max(cpu, key=lambda name: cpu[name] or 0.0)
    met = all(value is not None and value <= 1.5 for value in cpu.values())
    wall, boto3 = ratios("bytecode", "process"), ratios("bytecode", "cpu", "ratio_to_boto3")
    detail = (
        f"whole processes' CPU against each handler's own boto3 + hvac floor, layers with bytecode: "
        f"{min(cpu.values())}x to {cpu[worst]}x (worst {worst}; wall {min(wall.values())}x to {max(wall.values())}x); "
        f"against `import boto3` alone {min(boto3.values())}x to {max(boto3.values())}x"
    )
    if "source" in cold.get("variants", VARIANTS):
        source = ratios("source", "cpu")
        detail += f"; without bytecode {min(source.values())}x to {max(source.values())}x of the floor"
    return [verdict("cold_start", WANTED, met, detail)]


def _figure(measured: dict[str, Any]) -> str:
    return f"{measured['median_ms']} ms ({measured['ratio_to_boto3']}x)"


def render(cold: dict[str, Any] | None) -> list[str]:
    if not cold:
        return []
    lines = ["## 3. Cold start", ""]
    if "floors" not in cold:
        return [*lines, "Measured before the Lambda layout; run `python -m bench.run` for this section again.", ""]
    if not _has_own_floors(cold):
        return [*lines, "Measured before each handler had its own floor; run this section again.", ""]
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
                for variant in cold.get("variants", VARIANTS)
            )
        )
    lines += [
        "",
        "Each function's **floor** is a handler written with boto3 (and hvac when the function builds a Vault "
        "client) alone: it reads the same stored settings with one GetParameters and builds one client for each "
        "service the function's cold start built one for (listed). **x floor** is the function's figure over its "
        "floor's, measured in the same runs.",
        "",
        "| function | layers | CPU, bytecode | x floor (CPU) | x floor (wall) | floor CPU / wall, bytecode "
        "| CPU, source | x floor (CPU, source) | wall, bytecode | in process, bytecode (ms) "
        "| import only, bytecode (ms) | floor builds | self time by package (ms, bytecode) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in cold["functions"].items():
        fast = entry["bytecode"]
        slow = entry.get("source")
        tops = ", ".join(f"{module} {ms}" for module, ms in (entry.get("top_imports_ms") or {}).items())
        floor = entry["floor"]
        builds = ", ".join(
            [
                *(["GetParameters"] if floor["parameters"] else []),
                *(["hvac"] if floor["vault"] else []),
                *floor_clients(floor["services"], floor["parameters"]),
            ]
        )
        lines.append(
            f"| {name} | {', '.join(entry['layers'])} | {_figure(fast['cpu'])} | {fast['cpu']['ratio_to_floor']} | "
            f"{fast['process']['ratio_to_floor']} | {fast['floor']['cpu']['median_ms']} / "
            f"{fast['floor']['process']['median_ms']} ms | {_figure(slow['cpu']) if slow else '-'} | "
            f"{slow['cpu']['ratio_to_floor'] if slow else '-'} | {_figure(fast['process'])} | "
            f"{fast['in_process']['median_ms']} | {fast['import_only']['median_ms']} | {builds} | {tops} |"
        )
    lines.append("")
    return lines
