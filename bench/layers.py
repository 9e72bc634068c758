"""The layers and functions as `sam build` builds them (the layers by the Makefile's build-<Layer> targets), zipped
as `sam deploy` zips them, and the folders that stand in for the Lambda runtime: what the cold start and package
size sections measure."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from bench.harness import REPO_ROOT, log

TEMPLATE_ARCHITECTURE_PLATFORM = "manylinux2014_aarch64"  # template.yaml Architectures: [arm64]
# What the python3.12 runtime provides beside the standard library, in /var/runtime: boto3 and what it needs.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")


def make(*arguments: str, cwd: Path = REPO_ROOT) -> str:
    command = ["make", "--no-print-directory", "--makefile", str(REPO_ROOT / "Makefile"), *arguments]
    finished = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900, check=False)  # noqa: S603
    if finished.returncode != 0:
        raise RuntimeError(f"make {' '.join(arguments)} failed: {finished.stderr.strip()[-800:]}")
    return finished.stdout


def python312() -> Path:
    """The Lambda runtime's Python, found as `make build` finds it."""
    return Path(make("-s", "python312").strip().splitlines()[-1])


def template_layers() -> dict[str, list[str]]:
    """Each function's folder name and the layers it runs with (Globals first, then its own), by logical id."""
    from rescind_local.template import load_template

    template = load_template()
    global_layers = [item["Ref"] for item in template["Globals"]["Function"].get("Layers", [])]
    found: dict[str, list[str]] = {}
    for body in template["Resources"].values():
        if body["Type"] == "AWS::Serverless::Function":
            own = [item["Ref"] for item in body["Properties"].get("Layers", [])]
            found[Path(body["Properties"]["CodeUri"]).name] = global_layers + own
    return found


def layer_names() -> list[str]:
    """Every layer of the template, in the order the functions list them."""
    return list(dict.fromkeys(name for layers in template_layers().values() for name in layers))


def sam_build(build_dir: Path, layer_platform: str = TEMPLATE_ARCHITECTURE_PLATFORM) -> Path:
    """`make sam-build`: `sam build` of template.yaml into `build_dir`, uncached, each layer by its Makefile
    target (BuildMethod makefile) with the wheels for `layer_platform`, each function's CodeUri copied; returns
    `build_dir`, which holds one folder per logical id (a layer's `<name>/python`, a function's code)."""
    log(f"sam build ({layer_platform}) into {build_dir}")
    sam = Path(sys.executable).parent / "sam"  # SAM CLI of the venv that runs the benchmarks
    make(
        "sam-build",
        f"BUILD_DIR={build_dir}",
        f"LAYER_PLATFORM={layer_platform}",
        "SAM_BUILD_OPTIONS=--no-cached",
        *([f"SAM={sam}"] if sam.is_file() else []),
    )
    machine = layer_platform.removeprefix("manylinux2014_")
    for name in layer_names():
        others = [
            extension.name
            for extension in (build_dir / name / "python").rglob("*.so")
            if "-linux-gnu" in extension.name and f"-{machine}-linux-gnu" not in extension.name
        ]
        if others:  # the platform did not reach the layer's make: its wheels are another machine's
            raise RuntimeError(f"sam build made {name} with extensions not for {machine}: {others[:3]}")
    return build_dir


def this_machines_platform() -> str:
    return f"manylinux2014_{platform.machine()}"


def without_bytecode(layer_python: Path, target: Path) -> Path:
    """A copy of a built layer without its __pycache__ folders: the layer as SAM shipped it before bytecode."""
    shutil.copytree(layer_python, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def runtime_folder(target: Path, interpreter: Path) -> Path:
    """boto3 and its dependencies (this venv's copies, pure Python) compiled for `interpreter`, as the runtime's
    /var/runtime ships them with their bytecode."""
    target.mkdir(parents=True)
    for name in RUNTIME_MODULES:
        spec = find_spec(name)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"{name} is not installed beside the benchmarks")
        source = Path(spec.origin).parent if spec.submodule_search_locations else Path(spec.origin)
        copy = target / source.name
        if source.is_dir():
            shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, copy)
    compiled = subprocess.run(  # noqa: S603 - the runtime's Python on our own copy
        [str(interpreter), "-m", "compileall", "-q", "-j", "0", str(target)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if compiled.returncode != 0:
        raise RuntimeError(f"compileall of the runtime folder failed: {compiled.stdout[-800:]}")
    return target


def sam_zip_bytes(artifacts_dir: Path) -> int:
    """The size of the zip `sam deploy` uploads for this build folder, made by SAM CLI's own function."""
    from samcli.lib.package.utils import make_zip

    with tempfile.TemporaryDirectory(prefix="rescind-bench-zip-") as scratch:
        return Path(make_zip(str(Path(scratch) / "layer"), str(artifacts_dir))).stat().st_size


def tree_bytes(path: Path, *, bytecode: bool = True) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(
        item.stat().st_size
        for item in path.rglob("*")
        if item.is_file() and (bytecode or "__pycache__" not in item.parts)
    )


def size_of(artifacts_dir: Path) -> dict[str, Any]:
    """Zipped and unzipped bytes of one built layer, with and without its bytecode, and its biggest entries."""
    python = artifacts_dir / "python"
    entries = {entry.name: tree_bytes(entry) for entry in python.iterdir()}
    with tempfile.TemporaryDirectory(prefix="rescind-bench-source-") as scratch:
        source_only = Path(scratch) / "layer"
        without_bytecode(python, source_only / "python")
        zipped_without = sam_zip_bytes(source_only)
    return {
        "files": sum(1 for item in python.rglob("*") if item.is_file()),
        "unzipped_bytes": tree_bytes(python),
        "zipped_bytes": sam_zip_bytes(artifacts_dir),
        "bytecode_bytes": tree_bytes(python) - tree_bytes(python, bytecode=False),
        "zipped_without_bytecode_bytes": zipped_without,
        "biggest_entries_bytes": dict(sorted(entries.items(), key=lambda item: -item[1])[:10]),
        "rescind_package_bytes": entries.get("rescind", 0),
    }
