"""4. Package size: each layer from `sam build`'s output (it runs the Makefile's build-<Layer> targets, arm64
wheels from shared/requirements.lock, compiled for python3.12), zipped as `sam deploy` zips it, against the 10 MB
target; what each function carries; and each function folder."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench.harness import FUNCTIONS_DIR, mb, ratio, verdict
from bench.layers import layer_names, sam_build, size_of, template_layers, tree_bytes

WANTED = "every layer at most 10 MB zipped, without boto3 and botocore"
LAYER_LIMIT_BYTES = 10 * 1000 * 1000


def package_size() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rescind-bench-layers-") as scratch:
        build_dir = sam_build(Path(scratch) / "sam-build")  # for the template's architecture, as deployed
        layers: dict[str, Any] = {}
        for name in layer_names():
            artifacts = build_dir / name
            layers[name] = {**size_of(artifacts), "ratio_to_limit": None}
            layers[name]["ratio_to_limit"] = ratio(layers[name]["zipped_bytes"], LAYER_LIMIT_BYTES)
    carried = {
        function: sum(layers[name]["zipped_bytes"] for name in names) for function, names in template_layers().items()
    }
    return {
        "measured": True,
        "built_by": "sam build --no-cached (make sam-build), arm64 wheels, as `sam deploy` uploads it",
        "layers": layers,
        "function_layers": template_layers(),
        "function_layers_zipped_bytes": carried,
        "function_folders_bytes": {
            folder.name: tree_bytes(folder, bytecode=False)
            for folder in sorted(FUNCTIONS_DIR.iterdir())
            if folder.is_dir()
        },
        "limit_bytes": LAYER_LIMIT_BYTES,
    }


def verdicts(package: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One verdict: each layer's zip, as sam deploy uploads it, against 10 MB."""
    if not package:
        return []
    if not package.get("measured"):
        return [verdict("layer", WANTED, None, package.get("reason", ""))]
    if "layers" not in package:  # results from before the layers were built by the Makefile
        return [verdict("layer", WANTED, None, "measured before the Makefile's layers; run the section again")]
    layers = package["layers"]
    met = all(layer["zipped_bytes"] <= package["limit_bytes"] for layer in layers.values())
    detail = "; ".join(f"{name} {mb(layer['zipped_bytes'])} zipped" for name, layer in layers.items())
    heaviest = max(package["function_layers_zipped_bytes"].values())
    return [verdict("layer", WANTED, met, f"{detail}; a function carries at most {mb(heaviest)}")]


def render(package: dict[str, Any] | None) -> list[str]:
    if not package:
        return []
    lines = ["## 4. Package size", ""]
    if not package.get("measured") or "layers" not in package:
        return [*lines, package.get("reason", "measured before the Makefile's layers"), ""]
    lines += [
        "Each layer from the output of `sam build` (uncached), which builds it with the Makefile's `build-<Layer>` "
        "(the wheels shared/requirements.lock "
        "pins, for manylinux2014_aarch64 / cp312, no boto3 or botocore; the RescindLayer also the rescind package), "
        "compiled for python3.12. Zipped by SAM CLI's own `make_zip`, as `sam deploy` uploads it.",
        "",
        "| layer | files | unzipped | of which bytecode | zipped | zipped without bytecode | x 10 MB | biggest |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, layer in package["layers"].items():
        biggest = ", ".join(f"{entry} {mb(size)}" for entry, size in list(layer["biggest_entries_bytes"].items())[:5])
        lines.append(
            f"| {name} | {layer['files']:,} | {mb(layer['unzipped_bytes'])} | {mb(layer['bytecode_bytes'])} | "
            f"{mb(layer['zipped_bytes'])} | {mb(layer['zipped_without_bytecode_bytes'])} | "
            f"{layer['ratio_to_limit']} | {biggest} |"
        )
    by_layers: dict[tuple[str, ...], list[str]] = {}
    for function, names in package["function_layers"].items():
        by_layers.setdefault(tuple(names), []).append(function)
    lines += [""]
    for names, functions in by_layers.items():
        carried = package["function_layers_zipped_bytes"][functions[0]]
        lines.append(f"- **{' + '.join(names)}** ({mb(carried)} zipped): {', '.join(sorted(functions))}")
    lines += [
        "- **Function folders**: "
        + ", ".join(f"{name} {size} B" for name, size in package["function_folders_bytes"].items()),
        "",
    ]
    return lines
