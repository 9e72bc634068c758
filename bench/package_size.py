"""4. Package size: the layer as `sam build` builds it (aarch64 wheels plus shared/), without the packages the
Lambda runtime provides, against the 10 MB target; and each function folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.harness import FUNCTIONS_DIR, SHARED_DIR, log, mb, ratio, verdict

WANTED = "at most 10 MB unzipped without boto3"
LAYER_LIMIT_BYTES = 10 * 1000 * 1000
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")


def tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file() and "__pycache__" not in item.parts)


def _distribution_name(entry: Path) -> str:
    return entry.name.split("-")[0].lower().replace("_", "-") if entry.name.endswith(".dist-info") else ""


def package_size() -> dict[str, Any]:
    """The layer as `sam build` builds it (BuildMethod python3.12, arm64): aarch64 wheels into python/, plus
    the contents of shared/; boto3, botocore and s3transfer removed (the runtime provides them)."""
    workdir = Path(tempfile.mkdtemp(prefix="rescind-bench-layer-"))
    try:
        target = workdir / "python"
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--disable-pip-version-check",
            "--platform", "manylinux2014_aarch64", "--implementation", "cp", "--python-version", "3.12",
            "--only-binary=:all:", "--target", str(target), "-r", str(SHARED_DIR / "requirements.txt"),
        ]  # fmt: skip
        log("package size: pip install (manylinux2014_aarch64, cp312) into a temporary folder")
        installed = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)  # noqa: S603
        if installed.returncode != 0:
            raise RuntimeError(f"pip install failed: {installed.stderr.strip()[-800:]}")
        for item in SHARED_DIR.iterdir():
            if item.name == "__pycache__":
                continue
            if item.is_dir():
                shutil.copytree(item, target / item.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(item, target / item.name)
        with_runtime = tree_bytes(target)
        removed: dict[str, int] = {}
        for entry in sorted(target.iterdir()):
            distribution = _distribution_name(entry)
            if entry.name in RUNTIME_PROVIDED or distribution in RUNTIME_PROVIDED:
                removed[entry.name] = tree_bytes(entry)
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        total = tree_bytes(target)
        entries = {entry.name: tree_bytes(entry) for entry in target.iterdir()}
        biggest = dict(sorted(entries.items(), key=lambda item: -item[1])[:12])
        archive = shutil.make_archive(str(workdir / "layer"), "zip", root_dir=workdir, base_dir="python")
        functions = {folder.name: tree_bytes(folder) for folder in sorted(FUNCTIONS_DIR.iterdir()) if folder.is_dir()}
        return {
            "measured": True,
            "layer_bytes": total,
            "layer_mb": round(total / 1e6, 2),
            "layer_zipped_bytes": Path(archive).stat().st_size,
            "layer_with_runtime_packages_bytes": with_runtime,
            "removed_runtime_packages_bytes": removed,
            "biggest_entries_bytes": biggest,
            "rescind_package_bytes": entries.get("rescind", 0),
            "function_folders_bytes": functions,
            "limit_bytes": LAYER_LIMIT_BYTES,
            "ratio_to_limit": ratio(total, LAYER_LIMIT_BYTES),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def verdicts(layer: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One verdict: the layer's unzipped size without what the runtime provides, against Lambda's limit."""
    if not layer:
        return []
    if not layer.get("measured"):
        return [verdict("layer", WANTED, None, layer.get("reason", ""))]
    met = layer["layer_bytes"] <= LAYER_LIMIT_BYTES
    return [verdict("layer", WANTED, met, f"{layer['layer_mb']} MB, {layer['ratio_to_limit']}x the 10 MB limit")]


def render(layer: dict[str, Any] | None) -> list[str]:
    if not layer:
        return []
    lines = ["## 4. Package size", ""]
    if layer.get("measured"):
        lines += [
            "The layer as `sam build` builds it: wheels for manylinux2014_aarch64 / cp312 installed into "
            "`python/`, plus the contents of `shared/`; boto3, botocore and s3transfer removed (the runtime "
            "provides them). Sizes are unzipped file bytes (no `__pycache__`).",
            "",
            f"- **Layer**: {mb(layer['layer_bytes'])} unzipped (limit 10 MB: {layer['ratio_to_limit']}x), "
            f"{mb(layer['layer_zipped_bytes'])} zipped; {mb(layer['layer_with_runtime_packages_bytes'])} before "
            "removing "
            + ", ".join(f"{name} ({mb(size)})" for name, size in layer["removed_runtime_packages_bytes"].items()),
            f"- **rescind package itself**: {mb(layer['rescind_package_bytes'])}",
            "- **Biggest entries**: "
            + ", ".join(f"{name} {mb(size)}" for name, size in layer["biggest_entries_bytes"].items()),
            "- **Function folders**: "
            + ", ".join(f"{name} {size} B" for name, size in layer["function_folders_bytes"].items()),
            "",
        ]
    else:
        lines += [layer.get("reason", "not measured"), ""]
    return lines
