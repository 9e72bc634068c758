"""3. Cold start: each handler module imported in a fresh interpreter with its function's environment from the
template, alone and with the clients its first event builds, against `import boto3` alone."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness import REPO_ROOT, log, median, ratio, verdict

WANTED = "at most 1.5x `import boto3` to import a handler and build its clients"

_IMPORT_SNIPPET = """
import sys, time
sys.path.insert(0, {code_dir!r})
started = time.perf_counter()
import {module}
print(time.perf_counter() - started)
"""

# Import, then build what the first event builds: every zero-argument `get_*` factory the handler imports (settings,
# the hvac client, the boto3 clients, the engine). The factory names go to stderr.
_CLIENTS_SNIPPET = """
import sys, time
sys.path.insert(0, {code_dir!r})
started = time.perf_counter()
import {module} as handler
built = []
for name, factory in sorted(vars(handler).items()):
    if name.startswith("get_") and callable(factory) and name not in {network_factories!r}:
        factory()
        built.append(name)
elapsed = time.perf_counter() - started
print(",".join(built), file=sys.stderr)
print(elapsed)
"""
# Factories that call AWS when built; the rest only construct clients, so the fresh interpreter needs no network.
NETWORK_FACTORIES = ("get_fingerprint_key",)
# With these, building the clients makes no call: a token client needs no login (the deployed IAM login is one
# round trip to Vault, not measured), and named accounts need no sts:GetCallerIdentity.
CLIENT_BUILD_ENVIRONMENT = {
    "VAULT_AUTH_METHOD": "token",
    "VAULT_TOKEN": "bench-not-a-real-token",
    "AWS_ACCOUNT_IDS": "123456789012",
    "AWS_EC2_METADATA_DISABLED": "true",
}
# The libraries every handler needs, imported as a handler does, with the Tracer patching what the handlers patch:
# the floor below which no handler built on them can start.
_DEPENDENCIES_SNIPPET = """
import time
started = time.perf_counter()
from aws_lambda_powertools import Logger, Metrics, Tracer
import boto3, hvac, pydantic
Tracer(patch_modules=("botocore", "requests"))
print(time.perf_counter() - started)
"""
_BOTO3_SNIPPET = "import time\nstarted = time.perf_counter()\nimport boto3\nprint(time.perf_counter() - started)\n"


def function_environments() -> dict[str, tuple[Path, str, dict[str, str]]]:
    """Each function's folder, handler module and environment as the template deploys it (local names)."""
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
        found[spec.code_dir.name] = (spec.code_dir, spec.handler.rsplit(".", 1)[0], environment)
    return found


def _base_environment() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    base = {name: os.environ[name] for name in keep if name in os.environ}
    base.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONDONTWRITEBYTECODE": "",
        }
    )
    return base


def time_import(code: str, environment: dict[str, str], extra_flags: Sequence[str] = ()) -> tuple[float, str]:
    answer = subprocess.run(  # noqa: S603 - this interpreter, our own snippet
        [sys.executable, *extra_flags, "-c", code],
        capture_output=True,
        text=True,
        env=environment,
        cwd=str(REPO_ROOT),
        timeout=120,
        check=False,
    )
    if answer.returncode != 0:
        raise RuntimeError(f"import failed: {answer.stderr.strip()[-800:]}")
    return float(answer.stdout.strip().splitlines()[-1]), answer.stderr


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
        if root in {"app", "site", "encodings"}:  # the handler module's own body, and interpreter start-up
            continue
        totals[root] = totals.get(root, 0.0) + int(self_us) / 1000.0
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:limit]
    return {name: round(value, 1) for name, value in ranked}


def _ms(seconds: float | None) -> float | None:
    return round(1000 * seconds, 1) if seconds is not None else None


def cold_start(runs: int, breakdown: bool) -> dict[str, Any]:
    base = _base_environment()
    functions = function_environments()
    any_environment = next(iter(functions.values()))[2]
    samples: dict[str, list[float]] = {"boto3": [], "dependencies": []}
    built: dict[str, list[str]] = {}
    for name in functions:
        samples[name] = []
        samples[f"{name}+clients"] = []
    # Interleaved, so drift of a shared machine hits the baselines and the handlers alike.
    for index in range(runs):
        log(f"cold start run {index + 1}/{runs}")
        samples["boto3"].append(time_import(_BOTO3_SNIPPET, base)[0])
        samples["dependencies"].append(time_import(_DEPENDENCIES_SNIPPET, {**base, **any_environment})[0])
        for name, (code_dir, module, environment) in functions.items():
            code = _IMPORT_SNIPPET.format(code_dir=str(code_dir), module=module)
            samples[name].append(time_import(code, {**base, **environment})[0])
            code = _CLIENTS_SNIPPET.format(code_dir=str(code_dir), module=module, network_factories=NETWORK_FACTORIES)
            seconds, stderr = time_import(code, {**base, **environment, **CLIENT_BUILD_ENVIRONMENT})
            samples[f"{name}+clients"].append(seconds)
            built[name] = [item for item in stderr.strip().splitlines()[-1].split(",") if item]
    baseline = median(samples["boto3"])
    per_function: dict[str, Any] = {}
    for name, (code_dir, module, environment) in functions.items():
        seconds = median(samples[name])
        with_clients = median(samples[f"{name}+clients"])
        entry: dict[str, Any] = {
            "median_ms": _ms(seconds),
            "samples_ms": [_ms(value) for value in samples[name]],
            "ratio_to_boto3": ratio(seconds, baseline),
            "with_clients_median_ms": _ms(with_clients),
            "with_clients_samples_ms": [_ms(value) for value in samples[f"{name}+clients"]],
            "with_clients_ratio_to_boto3": ratio(with_clients, baseline),
            "factories_built": built[name],
        }
        if breakdown:
            code = _IMPORT_SNIPPET.format(code_dir=str(code_dir), module=module)
            _, report = time_import(code, {**base, **environment}, ["-X", "importtime"])
            entry["top_imports_ms"] = top_imports(report)
        per_function[name] = entry
    dependencies = median(samples["dependencies"])
    result: dict[str, Any] = {
        "runs": runs,
        "python": platform.python_version(),
        "boto3_median_ms": _ms(baseline),
        "boto3_samples_ms": [_ms(value) for value in samples["boto3"]],
        "dependencies_median_ms": _ms(dependencies),
        "dependencies_samples_ms": [_ms(value) for value in samples["dependencies"]],
        "dependencies_ratio_to_boto3": ratio(dependencies, baseline),
        "functions": per_function,
    }
    if breakdown:
        _, report = time_import(_BOTO3_SNIPPET, base, ["-X", "importtime"])
        result["boto3_top_imports_ms"] = top_imports(report)
    return result


def verdicts(cold: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One verdict: the slowest handler to import and build its clients, against `import boto3`."""
    if not cold:
        return []
    # The measure is the import and the clients it builds; results before that measure had import only.
    measure = "with_clients_ratio_to_boto3"
    if not all(measure in entry for entry in cold["functions"].values()):
        measure = "ratio_to_boto3"
    ratios = {name: entry[measure] for name, entry in cold["functions"].items()}
    worst_name = max(ratios, key=lambda name: ratios[name] or 0.0)
    met = all(value is not None and value <= 1.5 for value in ratios.values())
    floor = cold.get("dependencies_ratio_to_boto3")
    detail = f"import and build clients: worst {worst_name} at {ratios[worst_name]}x"
    if measure == "with_clients_ratio_to_boto3":
        imports = [entry["ratio_to_boto3"] for entry in cold["functions"].values()]
        detail += f"; import alone {min(imports)}x to {max(imports)}x"
    if floor is not None:
        detail += f"; the dependencies alone (Powertools, boto3, hvac, pydantic, Tracer) are {floor}x"
    return [verdict("cold_start", WANTED, met, detail)]


def render(cold: dict[str, Any] | None) -> list[str]:
    if not cold:
        return []
    lines = [
        "## 3. Cold start",
        "",
        "Each handler module in a fresh interpreter, with the function's environment from the template (settings "
        "are validated at import; the Tracer is on, as deployed), timed with perf_counter: the import alone, and "
        "the import plus what the first event builds (every zero-argument `get_*` factory the handler imports: "
        "settings, the hvac client, the boto3 clients, the engine; the hvac client with a token, so no login is "
        f"timed). Against `import boto3` alone. Median of {cold['runs']} runs, interleaved. "
        f"Python {cold['python']}.",
        "",
    ]
    if cold.get("dependencies_median_ms") is not None:
        lines += [
            f"The floor of the libraries every handler needs (Powertools Logger, Metrics and Tracer with its "
            f"patches, boto3, hvac, pydantic), imported the same way: {cold['dependencies_median_ms']} ms, "
            f"{cold['dependencies_ratio_to_boto3']}x `import boto3`.",
            "",
        ]
    lines += [
        "| function | import ms | ratio | import + clients ms | ratio | `import boto3` ms | factories built "
        "| self time by package (ms, one -X importtime run of the import) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in cold["functions"].items():
        tops = ", ".join(f"{module} {ms}" for module, ms in (entry.get("top_imports_ms") or {}).items())
        factories = ", ".join(entry.get("factories_built", []))
        lines.append(
            f"| {name} | {entry['median_ms']} | {entry['ratio_to_boto3']} | "
            f"{entry.get('with_clients_median_ms', '-')} | {entry.get('with_clients_ratio_to_boto3', '-')} | "
            f"{cold['boto3_median_ms']} | {factories} | {tops} |"
        )
    lines.append("")
    return lines
