"""The build for the Lambda runtime (`make sam-build`: sam build, the layer from the Makefile's build-RescindLayer).

Every handler in the build output imports under python3.12 as Lambda lays it out: the function's folder, then the
layer's python/ folder (/opt/python), then boto3 and its dependencies from the runtime. The layer holds exactly
the wheels shared/requirements.lock pins, for the template's architecture, and no boto3 or botocore.

Marked integration, not slow, so CI runs it: sam build, a second layer build for this machine and 17 cold imports
take about 30 s of CPU (60-80 s of wall time on 2 cores shared with other test runs); the wheels come from PyPI,
or pip's cache.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
from packaging import tags
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.infra.test_functions import FUNCTIONS, TEMPLATE, deployed_environment

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCK_FILE = REPO_ROOT / "shared" / "requirements.lock"
LAYER = "RescindLayer"
# What the python3.12 runtime provides beside the standard library: boto3 and what it needs. The layer may carry
# its own copy of the small ones its own packages ask for (jmespath for Powertools, urllib3 for requests)...
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
# ...but never these: 25 MB that would drift from the runtime's boto3.
NEVER_IN_LAYER = {"boto3", "botocore", "s3transfer", "python-dateutil", "six"}
MACHINE_OF_ARCHITECTURE = {"arm64": "aarch64", "x86_64": "x86_64"}
ARCHITECTURE = TEMPLATE["Globals"]["Function"]["Architectures"][0]

# Imports one handler ("module.attribute") and prints where every loaded module came from.
IMPORT_HANDLER = """
import importlib, json, sys
module_name, attribute = sys.argv[1].rsplit(".", 1)
handler = getattr(importlib.import_module(module_name), attribute)
print(json.dumps({
    "callable": callable(handler),
    "version": list(sys.version_info[:2]),
    "stdlib": sys.base_prefix,
    "dont_write_bytecode": sys.dont_write_bytecode,
    "modules": {name: getattr(module, "__file__", None) for name, module in list(sys.modules.items())},
}))
"""


def run_make(*arguments: str, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None) -> CompletedProcess[str]:
    command = ["make", "--no-print-directory", "--makefile", str(REPO_ROOT / "Makefile"), *arguments]
    return subprocess.run(  # noqa: S603 - the project's own Makefile
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def make(*arguments: str, cwd: Path = REPO_ROOT) -> str:
    finished = run_make(*arguments, cwd=cwd)
    assert finished.returncode == 0, (
        f"make {' '.join(arguments)}:\n{finished.stdout[-3000:]}\n{finished.stderr[-3000:]}"
    )
    return finished.stdout


@pytest.fixture(scope="module")
def python312() -> Path:
    """python3.12, found as `make build` finds it; the Makefile names what is missing when there is none."""
    return Path(make("-s", "python312").strip().splitlines()[-1])


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory, python312: Path) -> Path:
    """`sam build` of template.yaml, fresh (no cache), by the Makefile's own recipe."""
    sam = Path(sys.executable).parent / "sam"
    assert sam.is_file(), f"no sam beside {sys.executable}: `make setup` installs aws-sam-cli (a dev dependency)"
    target = tmp_path_factory.mktemp("sam-build")
    make("sam-build", f"BUILD_DIR={target}", f"SAM={sam}", "SAM_BUILD_OPTIONS=--no-cached")
    return target


@pytest.fixture(scope="module")
def layer(build_dir: Path) -> Path:
    """The layer's python/ folder, as sam build left it (for the template's architecture)."""
    return build_dir / LAYER / "python"


@pytest.fixture(scope="module")
def importable_layer(layer: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The layer as /opt/python for this machine. Its native wheels are for the template's architecture; on
    another machine, the same recipe and lock build one for this machine's (the tests below prove both hold
    the same distributions)."""
    machine = platform.machine()
    if machine == MACHINE_OF_ARCHITECTURE[ARCHITECTURE]:
        return layer
    artifacts = tmp_path_factory.mktemp("layer-for-this-machine")
    make(
        "build-RescindLayer",
        f"ARTIFACTS_DIR={artifacts}",
        f"LAYER_PLATFORM=manylinux2014_{machine}",
        cwd=REPO_ROOT / "shared",
    )
    return artifacts / "python"


@pytest.fixture(scope="module")
def runtime_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the runtime provides (boto3 and its dependencies, pure Python): this interpreter's copies."""
    folder = tmp_path_factory.mktemp("var-runtime")
    for name in RUNTIME_MODULES:
        spec = find_spec(name)
        assert spec is not None, f"{name} is not installed beside the tests"
        assert spec.origin is not None
        source = Path(spec.origin).parent if spec.submodule_search_locations else Path(spec.origin)
        (folder / source.name).symlink_to(source)
    return folder


def distributions(layer: Path) -> dict[str, metadata.Distribution]:
    """The layer's installed distributions, by canonical name."""
    found = metadata.distributions(path=[str(layer)])
    return {canonicalize_name(distribution.metadata["Name"]): distribution for distribution in found}


def locked_versions() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", LOCK_FILE.read_text(), flags=re.MULTILINE)
    return {canonicalize_name(name): version for name, version in pins}


def target_environment(machine: str) -> dict[str, str]:
    """Marker values for the Lambda runtime: CPython 3.12 on Linux, on the template's architecture."""
    return {
        **{name: str(value) for name, value in default_environment().items()},
        "python_version": "3.12",
        "python_full_version": "3.12.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": machine,
    }


def tags_of(distribution: metadata.Distribution) -> set[tags.Tag]:
    wheel = distribution.read_text("WHEEL") or ""
    return {tag for line in re.findall(r"^Tag: (\S+)", wheel, flags=re.MULTILINE) for tag in tags.parse_tag(line)}


def dependencies(distribution: metadata.Distribution, environment: dict[str, str]) -> list[Requirement]:
    requirements = [Requirement(line) for line in distribution.requires or []]
    return [item for item in requirements if item.marker is None or item.marker.evaluate({**environment, "extra": ""})]


def test_the_layer_holds_no_boto3_botocore_or_what_only_they_need(layer: Path) -> None:
    present = set(distributions(layer))
    entries = {entry.name for entry in layer.iterdir()}

    assert present & NEVER_IN_LAYER == set()
    assert entries & {"boto3", "botocore", "s3transfer", "dateutil", "six.py"} == set()


def test_the_layer_holds_exactly_the_locked_wheels_and_the_rescind_package(layer: Path) -> None:
    installed = {name: distribution.version for name, distribution in distributions(layer).items()}

    assert installed == locked_versions()
    shipped = {path.relative_to(layer / "rescind") for path in (layer / "rescind").rglob("*") if path.is_file()}
    source = REPO_ROOT / "shared" / "rescind"
    expected = {
        path.relative_to(source) for path in source.rglob("*") if path.is_file() and "__pycache__" not in path.parts
    }
    assert shipped == expected
    assert not (layer / "bin").exists()


def test_every_wheel_is_for_python312_on_the_templates_architecture(layer: Path) -> None:
    # What pip's --platform manylinux2014_<machine> --python-version 3.12 accepts: manylinux 2.17 and older
    machine = MACHINE_OF_ARCHITECTURE[ARCHITECTURE]
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in range(17, 4, -1)] + [f"manylinux2014_{machine}"]
    supported = set(tags.cpython_tags((3, 12), platforms=platforms))
    supported |= set(tags.compatible_tags((3, 12), "cp312", platforms))
    for name, distribution in distributions(layer).items():
        wheel = tags_of(distribution)
        assert wheel, f"{name}: no wheel tags"
        assert wheel & supported, f"{name}: {sorted(map(str, wheel))} does not run on CPython 3.12, {machine}"


def test_every_dependency_is_in_the_layer_or_provided_by_the_runtime(layer: Path) -> None:
    # --no-deps installs only what the lock pins: a dependency missing from it would fail at the first import.
    installed = distributions(layer)
    environment = target_environment(MACHINE_OF_ARCHITECTURE[ARCHITECTURE])
    for name, distribution in installed.items():
        for requirement in dependencies(distribution, environment):
            needed = canonicalize_name(requirement.name)
            if needed in installed:
                assert installed[needed].version in requirement.specifier, f"{name} needs {requirement}"
            else:
                assert needed in RUNTIME_PROVIDED, (
                    f"{name} needs {requirement}, which neither the layer nor the runtime has"
                )

    # And the runtime's botocore accepts the copies the layer puts before it on the path
    for requirement in dependencies(metadata.distribution("botocore"), environment):
        if canonicalize_name(requirement.name) in installed:
            assert installed[canonicalize_name(requirement.name)].version in requirement.specifier, str(requirement)


def test_the_layer_for_this_machine_holds_the_same_distributions(layer: Path, importable_layer: Path) -> None:
    def versions(folder: Path) -> dict[str, str]:
        return {name: distribution.version for name, distribution in distributions(folder).items()}

    assert versions(importable_layer) == versions(layer)


def cold_start(name: str, task_root: Path, layer: Path, runtime_packages: Path, python312: Path) -> str:
    """python3.12, without its own site-packages (-S), imports the function's handler as Lambda does at cold start:
    the function's folder, the layer at /opt/python, the runtime's boto3, the deployed environment, and X-Ray on
    (LAMBDA_TASK_ROOT set: the Tracer patches the runtime's botocore). Returns what IMPORT_HANDLER printed."""
    environment = {
        **deployed_environment(FUNCTIONS[name]),
        "PATH": os.environ["PATH"],
        "PYTHONPATH": os.pathsep.join(str(folder) for folder in (task_root, layer, runtime_packages)),
        "PYTHONDONTWRITEBYTECODE": "1",  # /var/task and /opt are read-only in Lambda
        "LAMBDA_TASK_ROOT": str(task_root),
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    finished = subprocess.run(  # noqa: S603 - the runtime's Python on the project's own build output
        [str(python312), "-S", "-c", IMPORT_HANDLER, FUNCTIONS[name]["Handler"]],
        cwd=task_root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert finished.returncode == 0, f"{name}: {finished.stderr[-3000:]}"
    return finished.stdout


@pytest.fixture(scope="module")
def cold_starts(build_dir: Path, importable_layer: Path, runtime_packages: Path, python312: Path) -> dict[str, str]:
    """Every function's cold import, side by side (each compiles its imports from source: about 2 s here)."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        started = {
            name: pool.submit(cold_start, name, build_dir / name, importable_layer, runtime_packages, python312)
            for name in FUNCTIONS
        }
        return {name: future.result() for name, future in started.items()}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_the_handler_imports_from_the_build_output_under_python312(
    name: str, cold_starts: dict[str, str], build_dir: Path, importable_layer: Path, runtime_packages: Path
) -> None:
    # Given the function's folder from the build, and the layer for this machine
    task_root = build_dir / name

    # When python3.12 imported its handler as Lambda does at cold start (cold_start)
    loaded: dict[str, Any] = json.loads(cold_starts[name])

    # Then the handler is there, and every module came from the function, the layer, the runtime or the stdlib
    assert loaded["callable"] is True
    assert loaded["version"] == [3, 12]
    assert loaded["dont_write_bytecode"] is True
    origins = {"function": task_root, "layer": importable_layer, "runtime": runtime_packages}
    where: dict[str, str] = {}
    for module, file in loaded["modules"].items():
        if file is None:
            continue  # built-in and namespace modules
        path = Path(file)
        found = [origin for origin, folder in origins.items() if path.is_relative_to(folder)]
        if not found and path.is_relative_to(loaded["stdlib"]) and "site-packages" not in path.parts:
            found = ["stdlib"]
        assert found, f"{module} came from {file}, outside the function, the layer, the runtime and the stdlib"
        where[module] = found[0]
    assert where["botocore"] == "runtime"  # the Tracer patched it; the layer has none of its own
    for module in ("boto3", "s3transfer", "dateutil", "six"):
        assert where.get(module, "runtime") == "runtime", module
    assert (where["rescind"], where["pydantic_core"], where["aws_xray_sdk"]) == ("layer", "layer", "layer")

    # And nothing was written beside the code
    assert list(task_root.rglob("__pycache__")) == []
    assert list(importable_layer.rglob("__pycache__")) == []


def test_a_missing_python312_is_named(tmp_path: Path) -> None:
    # Given no pyenv 3.12 and no python3.12 on PATH
    environment = {**os.environ, "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    environment.pop("PYTHON312", None)

    # When the build looks for it
    finished = run_make("-s", "python312", env=environment)

    # Then it stops, naming what is missing and where it looked
    assert finished.returncode != 0
    assert "python3.12 not found" in finished.stderr
    assert f"{tmp_path}/.pyenv/versions/3.12.*/bin/python3.12" in finished.stderr
