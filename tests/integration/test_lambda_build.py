"""The build for the Lambda runtime (`make sam-build`: sam build, the layers from the Makefile's build-RescindLayer,
build-CryptographyLayer and build-PostgresDriverLayer).

Every handler in the build output imports under python3.12 as Lambda lays it out: the function's folder, then its
layers' python/ folders (/opt/python), then boto3 and its dependencies from the runtime, loading the layers'
bytecode without compiling anything. The three layers hold exactly the wheels shared/requirements.lock pins, for
the template's architecture, split between them (cryptography and pg8000, each with what only it needs, in their
own), with no boto3 or botocore, each compiled for python3.12 and at most 10 MB zipped.

Marked integration, not slow, so CI runs it: sam build, a second build of the layers for this machine and 17 cold
imports take about 40 s of CPU (60-90 s of wall time on 2 cores shared with other test runs); the wheels come from
PyPI, or pip's cache.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import boto3
import pytest
from packaging import tags
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from rescind_local.daemon import moto_http_server
from tests.infra.test_functions import FUNCTIONS, TEMPLATE, deployed_environment, put_stored_settings
from tests.locked import locked_versions
from tests.unit.test_cold_imports import KIND_MODULES

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("RescindLayer", "CryptographyLayer", "PostgresDriverLayer")
GLOBAL_LAYERS = [item["Ref"] for item in TEMPLATE["Globals"]["Function"]["Layers"]]
# The target the issue set for a layer, zipped as `sam deploy` zips it (decimal megabytes, below Lambda's MiB).
LAYER_ZIP_LIMIT_BYTES = 10_000_000
# What the python3.12 runtime provides beside the standard library: boto3 and what it needs. The layer may carry
# its own copy of the small ones its own packages ask for (jmespath for Powertools, urllib3 for requests)...
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
# ...but never these: 25 MB that would drift from the runtime's boto3.
NEVER_IN_LAYER = {"boto3", "botocore", "s3transfer", "python-dateutil", "six"}
# What a handler's import loads of the credential kinds and of the closing module (rescind.ledger.closing): only
# what its own flow always uses. Every other function loads a kind when an event names it, the closing module on
# the branch that closes (tests/integration/test_cold_imports.py follows the first event's clients too).
LOADED_AT_IMPORT = {
    "CloseIncidentFunction": ("rescind.ledger.closing",),
    "PkiHygieneFunction": ("rescind.vault.pki",),
    "RotationByAgeFunction": ("rescind.vault.database", "rescind.aws.secrets_manager"),
    "TtlCeilingsFunction": (
        "rescind.vault.tokens",
        "rescind.vault.leases",
        "rescind.vault.ttl",
        "rescind.vault.database",
        "rescind.aws.secrets_manager",
    ),
}
MACHINE_OF_ARCHITECTURE = {"arm64": "aarch64", "x86_64": "x86_64"}
ARCHITECTURE = TEMPLATE["Globals"]["Function"]["Architectures"][0]

# Imports one handler ("module.attribute") and prints where every loaded module came from, which source files were
# compiled on the way (SourceLoader.source_to_code runs only when no usable .pyc exists), and what X-Ray patched.
IMPORT_HANDLER = """
import importlib, importlib.machinery, json, sys
compiled = []
compile_source = importlib.machinery.SourceFileLoader.source_to_code
def recording(self, data, path, *args, **kwargs):
    compiled.append(path)
    return compile_source(self, data, path, *args, **kwargs)
importlib.machinery.SourceFileLoader.source_to_code = recording
module_name, attribute = sys.argv[1].rsplit(".", 1)
handler = getattr(importlib.import_module(module_name), attribute)
def patched(module, owner, method):
    import wrapt
    found = sys.modules.get(module)
    return None if found is None else isinstance(vars(getattr(found, owner))[method], wrapt.FunctionWrapper)
print(json.dumps({
    "callable": callable(handler),
    "version": list(sys.version_info[:2]),
    "stdlib": sys.base_prefix,
    "dont_write_bytecode": sys.dont_write_bytecode,
    "modules": {name: getattr(module, "__file__", None) for name, module in list(sys.modules.items())},
    "compiled": compiled,
    "patched": {"botocore": patched("botocore.client", "BaseClient", "_make_api_call"),
                "requests": patched("requests", "Session", "request")},
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
def layers(build_dir: Path) -> dict[str, Path]:
    """Each layer's python/ folder, as sam build left it (for the template's architecture)."""
    return {name: build_dir / name / "python" for name in LAYERS}


@pytest.fixture(scope="module")
def importable_layers(layers: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The layers for this machine. Their native wheels are for the template's architecture; on another machine,
    the same recipes and lock build them for this machine's (the tests below prove both hold the same
    distributions)."""
    machine = platform.machine()
    if machine == MACHINE_OF_ARCHITECTURE[ARCHITECTURE]:
        return layers
    built = {}
    for name in LAYERS:
        artifacts = tmp_path_factory.mktemp(f"{name}-for-this-machine")
        make(
            f"build-{name}",
            f"ARTIFACTS_DIR={artifacts}",
            f"LAYER_PLATFORM=manylinux2014_{machine}",
            cwd=REPO_ROOT / "shared",
        )
        built[name] = artifacts / "python"
    return built


def layers_of(function_name: str) -> list[str]:
    """The layers a function runs with: Globals', then its own."""
    return GLOBAL_LAYERS + [item["Ref"] for item in FUNCTIONS[function_name].get("Layers", [])]


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


def test_no_layer_holds_boto3_botocore_or_what_only_they_need(layers: dict[str, Path]) -> None:
    for layer in layers.values():
        present = set(distributions(layer))
        entries = {entry.name for entry in layer.iterdir()}

        assert present & NEVER_IN_LAYER == set()
        assert entries & {"boto3", "botocore", "s3transfer", "dateutil", "six.py"} == set()


def requirement_closure(
    root: str, installed: dict[str, metadata.Distribution], environment: dict[str, str]
) -> set[str]:
    """`root` and every distribution of `installed` it needs, directly or not."""
    found, pending = set(), [root]
    while pending:
        name = pending.pop()
        if name in found or name not in installed:
            continue
        found.add(name)
        pending += [canonicalize_name(item.name) for item in dependencies(installed[name], environment)]
    return found


def test_the_layers_hold_exactly_the_locked_wheels_split_and_the_rescind_package(layers: dict[str, Path]) -> None:
    installed = {name: distributions(layer) for name, layer in layers.items()}
    environment = target_environment(MACHINE_OF_ARCHITECTURE[ARCHITECTURE])

    # Between them, exactly the lock
    versions = {layer: {name: found.version for name, found in held.items()} for layer, held in installed.items()}
    for one, other in (("RescindLayer", "CryptographyLayer"), ("RescindLayer", "PostgresDriverLayer")):
        assert versions[one].keys().isdisjoint(versions[other])
    assert versions["CryptographyLayer"].keys().isdisjoint(versions["PostgresDriverLayer"])
    everything = installed["RescindLayer"] | installed["CryptographyLayer"] | installed["PostgresDriverLayer"]
    assert {name: found.version for name, found in everything.items()} == locked_versions()
    # cryptography's own: cryptography and what it needs that the RescindLayer does not hold; pg8000's likewise
    assert set(installed["CryptographyLayer"]) == requirement_closure("cryptography", everything, environment)
    assert set(installed["PostgresDriverLayer"]) == requirement_closure("pg8000", everything, environment)

    # And the rescind package, whole, in the RescindLayer only
    layer = layers["RescindLayer"]
    shipped = {
        path.relative_to(layer / "rescind")
        for path in (layer / "rescind").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    source = REPO_ROOT / "shared" / "rescind"
    expected = {
        path.relative_to(source) for path in source.rglob("*") if path.is_file() and "__pycache__" not in path.parts
    }
    assert shipped == expected
    assert not (layers["CryptographyLayer"] / "rescind").exists()
    assert not (layers["PostgresDriverLayer"] / "rescind").exists()
    assert not any((folder / "bin").exists() for folder in layers.values())


def test_every_wheel_is_for_python312_on_the_templates_architecture(layers: dict[str, Path]) -> None:
    # What pip's --platform manylinux2014_<machine> --python-version 3.12 accepts: manylinux 2.17 and older
    machine = MACHINE_OF_ARCHITECTURE[ARCHITECTURE]
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in range(17, 4, -1)] + [f"manylinux2014_{machine}"]
    supported = set(tags.cpython_tags((3, 12), platforms=platforms))
    supported |= set(tags.compatible_tags((3, 12), "cp312", platforms))
    for layer in layers.values():
        for name, distribution in distributions(layer).items():
            wheel = tags_of(distribution)
            assert wheel, f"{name}: no wheel tags"
            assert wheel & supported, f"{name}: {sorted(map(str, wheel))} does not run on CPython 3.12, {machine}"


def test_every_dependency_is_in_the_functions_layers_or_provided_by_the_runtime(layers: dict[str, Path]) -> None:
    # --no-deps installs only what the lock pins: a dependency missing from it would fail at the first import. A
    # function has the RescindLayer alone, or both: what the RescindLayer holds needs nothing from the other.
    # The rotation hook has all three.
    rescind = distributions(layers["RescindLayer"])
    both = rescind | distributions(layers["CryptographyLayer"])
    hook = both | distributions(layers["PostgresDriverLayer"])
    environment = target_environment(MACHINE_OF_ARCHITECTURE[ARCHITECTURE])
    for available, required_by in ((rescind, rescind), (both, both), (hook, hook)):
        for name, distribution in required_by.items():
            for requirement in dependencies(distribution, environment):
                needed = canonicalize_name(requirement.name)
                if needed in available:
                    assert available[needed].version in requirement.specifier, f"{name} needs {requirement}"
                else:
                    assert needed in RUNTIME_PROVIDED, (
                        f"{name} needs {requirement}, which neither its layers nor the runtime have"
                    )

    # And the runtime's botocore accepts the copies the layers put before it on the path
    for requirement in dependencies(metadata.distribution("botocore"), environment):
        if canonicalize_name(requirement.name) in both:
            assert both[canonicalize_name(requirement.name)].version in requirement.specifier, str(requirement)


def test_the_layers_for_this_machine_hold_the_same_distributions(
    layers: dict[str, Path], importable_layers: dict[str, Path]
) -> None:
    def versions(folder: Path) -> dict[str, str]:
        return {name: distribution.version for name, distribution in distributions(folder).items()}

    for name in LAYERS:
        assert versions(importable_layers[name]) == versions(layers[name]), name


# For each .py file of a folder, what is wrong with its bytecode for this interpreter (run by python3.12): none,
# or missing, or the header says another Python, a timestamp .pyc or a checked one, or another source's hash.
CHECK_BYTECODE = """
import importlib.util, json, sys
from pathlib import Path
problems = {}
sources = sorted(Path(sys.argv[1]).rglob("*.py"))
for source in sources:
    cached = Path(importlib.util.cache_from_source(str(source)))
    if not cached.is_file():
        problems[str(source)] = "no " + cached.name
        continue
    header = cached.read_bytes()[:16]
    if header[:4] != importlib.util.MAGIC_NUMBER:
        problems[str(source)] = "magic number " + header[:4].hex()
    elif int.from_bytes(header[4:8], "little") != 0b01:
        problems[str(source)] = "not an unchecked-hash .pyc: flags " + str(int.from_bytes(header[4:8], "little"))
    elif header[8:16] != importlib.util.source_hash(source.read_bytes()):
        problems[str(source)] = "compiled from another source"
print(json.dumps({"tag": sys.implementation.cache_tag, "sources": len(sources), "problems": problems}))
"""


@pytest.mark.parametrize("name", LAYERS)
def test_every_module_of_the_layer_is_compiled_for_python312_unchecked(
    name: str, layers: dict[str, Path], python312: Path
) -> None:
    # Given the layer as sam build left it
    layer = layers[name]

    # When python3.12 reads the bytecode beside each source
    finished = subprocess.run(  # noqa: S603 - the runtime's Python on the project's own build output
        [str(python312), "-S", "-c", CHECK_BYTECODE, str(layer)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    found = json.loads(finished.stdout)

    # Then every module has its cpython-312 .pyc in __pycache__, compiled from that very source, that the runtime
    # loads without a look at the source (unchecked-hash: Lambda's files carry the zip's timestamps)
    assert found["tag"] == "cpython-312"
    assert found["sources"] > 0
    assert found["problems"] == {}
    if name == "RescindLayer":
        modules = list((layer / "rescind").rglob("*.py"))
        assert len(modules) > 50
        assert all((module.parent / "__pycache__" / f"{module.stem}.cpython-312.pyc").is_file() for module in modules)


@pytest.mark.parametrize("name", LAYERS)
def test_the_layer_is_at_most_10_mb_zipped_as_sam_deploy_zips_it(name: str, build_dir: Path) -> None:
    from samcli.lib.package.utils import make_zip

    archive = Path(make_zip(str(build_dir / f"{name}-upload"), str(build_dir / name)))

    assert 0 < archive.stat().st_size <= LAYER_ZIP_LIMIT_BYTES, f"{name}: {archive.stat().st_size:,} bytes zipped"


@pytest.fixture(scope="module")
def parameter_store() -> Iterator[str]:
    """moto's HTTP server holding the template's stored settings, which every handler reads at cold start: its
    endpoint, for the cold starts' AWS_ENDPOINT_URL_SSM."""
    with moto_http_server() as endpoint:
        put_stored_settings(
            boto3.client(
                "ssm",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            )
        )
        yield endpoint


FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def cold_start(
    name: str, task_root: Path, layers: list[Path], runtime_packages: Path, python312: Path, parameter_store: str
) -> str:
    """python3.12, without its own site-packages (-S), imports the function's handler as Lambda does at cold start:
    the function's folder, its layers at /opt/python, the runtime's boto3, the deployed environment, its stored
    settings from Parameter Store (moto's server), and X-Ray on (LAMBDA_TASK_ROOT set: the Tracer patches the
    runtime's botocore). Returns what IMPORT_HANDLER printed."""
    environment = {
        **deployed_environment(FUNCTIONS[name]),
        **FAKE_CREDENTIALS,
        "AWS_ENDPOINT_URL_SSM": parameter_store,
        "PATH": os.environ["PATH"],
        "PYTHONPATH": os.pathsep.join(str(folder) for folder in (task_root, *layers, runtime_packages)),
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
def cold_starts(
    build_dir: Path, importable_layers: dict[str, Path], runtime_packages: Path, python312: Path, parameter_store: str
) -> dict[str, str]:
    """Every function's cold import with its own layers, side by side."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        started = {
            name: pool.submit(
                cold_start,
                name,
                build_dir / name,
                [importable_layers[layer] for layer in layers_of(name)],
                runtime_packages,
                python312,
                parameter_store,
            )
            for name in FUNCTIONS
        }
        return {name: future.result() for name, future in started.items()}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_the_handler_imports_from_the_build_output_under_python312(
    name: str,
    cold_starts: dict[str, str],
    build_dir: Path,
    importable_layers: dict[str, Path],
    runtime_packages: Path,
) -> None:
    # Given the function's folder from the build, and its layers for this machine
    task_root = build_dir / name

    # When python3.12 imported its handler as Lambda does at cold start (cold_start)
    loaded: dict[str, Any] = json.loads(cold_starts[name])

    # Then the handler is there, and every module came from the function, its layers, the runtime or the stdlib
    assert loaded["callable"] is True
    assert loaded["version"] == [3, 12]
    assert loaded["dont_write_bytecode"] is True
    origins = {"function": task_root, **{layer: importable_layers[layer] for layer in layers_of(name)}}
    origins["runtime"] = runtime_packages
    where: dict[str, str] = {}
    for module, file in loaded["modules"].items():
        if file is None:
            continue  # built-in and namespace modules
        path = Path(file)
        found = [origin for origin, folder in origins.items() if path.is_relative_to(folder)]
        if not found and path.is_relative_to(loaded["stdlib"]) and "site-packages" not in path.parts:
            found = ["stdlib"]
        assert found, f"{module} came from {file}, outside the function, its layers, the runtime and the stdlib"
        where[module] = found[0]
    assert where["botocore"] == "runtime"  # the Tracer patched it; the layers have none of its own
    for module in ("boto3", "s3transfer", "dateutil", "six"):
        assert where.get(module, "runtime") == "runtime", module
    assert (where["rescind"], where["pydantic_core"], where["aws_xray_sdk"]) == ("RescindLayer",) * 3
    assert where.get("cryptography", "CryptographyLayer") == "CryptographyLayer"

    # And no module of a layer was compiled: each came from the layer's bytecode
    layer_folders = [importable_layers[layer] for layer in layers_of(name)]
    compiled = [path for path in loaded["compiled"] if any(Path(path).is_relative_to(f) for f in layer_folders)]
    assert compiled == []
    assert sum(origin == "RescindLayer" for origin in where.values()) > 20

    # And X-Ray traces boto3's calls, and hvac's once it is imported, which only a function that talks to Vault does
    assert loaded["patched"]["botocore"] is True
    assert ("requests" in where) == ("hvac" in where)
    assert loaded["patched"]["requests"] is (True if "requests" in where else None)

    # And the import loaded no credential kind, nor the closing module, but those its handler's own flow names
    watched = (*KIND_MODULES, "rescind.ledger.closing")
    assert sorted(module for module in watched if module in where) == sorted(LOADED_AT_IMPORT.get(name, ()))

    # And nothing was written beside the code
    assert list(task_root.rglob("__pycache__")) == []


def json_printed_under(python312: Path, folders: list[Path], *arguments: str, timeout: float = 120) -> Any:
    """What python3.12 -S prints as JSON, with only `folders` importable (as the Lambda runtime runs a function)."""
    finished = subprocess.run(  # noqa: S603 - the build's own interpreter and this repository's code
        [str(python312), "-S", *arguments],
        env={"PYTHONPATH": os.pathsep.join(map(str, folders)), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return json.loads(finished.stdout)


def test_the_rotation_hooks_driver_imports_from_its_own_layer_under_python312(
    importable_layers: dict[str, Path], runtime_packages: Path, python312: Path
) -> None:
    # The hook imports pg8000 only when it rotates (not at cold start): import it as that moment does
    folders = [importable_layers[layer] for layer in layers_of("RotatePostgresFunction")] + [runtime_packages]
    code = "import json, sys, pg8000.native, scramp, asn1crypto; print(json.dumps([m.__file__ for m in "
    code += "(pg8000.native, scramp, asn1crypto)]))"
    for file in json_printed_under(python312, folders, "-c", code):
        assert Path(file).is_relative_to(importable_layers["PostgresDriverLayer"]), file


def test_the_layers_pydantic_builds_rescinds_models_on_first_use_safely_from_many_threads(
    importable_layers: dict[str, Path], runtime_packages: Path, python312: Path
) -> None:
    # Given the layer's pydantic (the lock's, whose lazy build is thread-safe) under python3.12
    folders = [importable_layers["RescindLayer"], runtime_packages, REPO_ROOT]  # REPO_ROOT: the probe's module
    # When a fresh deferred model is first used from many threads at once
    report = json_printed_under(python312, folders, "-m", "tests.deferred_models_probe", timeout=300)
    # Then the models defer there, and each thread validated as the model itself
    assert report["pydantic"] == locked_versions()["pydantic"]
    assert (report["deferred"], report.get("validated_as_itself")) == (True, True)


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
