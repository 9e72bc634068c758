"""Rescind's pydantic models are built on first use (defer_build) exactly where that is safe: with a pydantic whose
lazy build is thread-safe (rescind.deferred_builds; the layer pins one). The python3.11 environment's pydantic is held
at 2.13 by aws-sam-translator, so there the models build at import; the python3.12 tier (`make test312`) installs the
layer's lock over it, so there they defer, as in Lambda. tests/integration/test_lambda_build.py also runs the
concurrent first use on the built layer itself."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import threading
from importlib import metadata

import pydantic
import pytest
from pydantic import BaseModel

import rescind
from rescind.deferred_builds import DEFER_MODEL_BUILDS, THREAD_SAFE_LAZY_BUILD, release_of
from tests.deferred_models_probe import first_use_from_many_threads
from tests.locked import locked_versions

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("version", "release"), [("2.14.4", (2, 14, 4)), ("2.13.5", (2, 13, 5)), ("2.15.0b1", (2, 15, 0)), ("x", (0, 0, 0))]
)
def test_a_pydantic_version_is_read_as_its_release(version: str, release: tuple[int, int, int]) -> None:
    assert release_of(version) == release


def test_models_defer_exactly_when_the_pydantic_in_use_builds_them_under_a_lock() -> None:
    assert DEFER_MODEL_BUILDS is (release_of(pydantic.VERSION) >= THREAD_SAFE_LAZY_BUILD)
    if DEFER_MODEL_BUILDS:  # the release with PR #13438: model_rebuild() holds one lock
        from pydantic import main

        assert isinstance(main._rebuild_lock, type(threading.RLock()))


def test_every_rescind_model_follows_the_setting() -> None:
    for module in pkgutil.walk_packages(rescind.__path__, "rescind."):
        importlib.import_module(module.name)
    models = [
        model
        for model in _subclasses(BaseModel)
        if model.__module__.startswith("rescind.") and not model.__name__.startswith("_")
    ]
    assert len(models) > 50  # an empty walk would make this vacuous
    deferred = {model.__qualname__: bool(model.model_config.get("defer_build")) for model in models}
    assert {name for name, defers in deferred.items() if defers is not DEFER_MODEL_BUILDS} == set()


def _subclasses(model: type[BaseModel]) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    for child in model.__subclasses__():
        found += [child, *_subclasses(child)]
    return found


@pytest.mark.skipif(not DEFER_MODEL_BUILDS, reason="built at import here; test_lambda_build runs it on the layer")
def test_a_deferred_model_first_used_from_many_threads_at_once_validates_as_itself() -> None:
    first_use_from_many_threads()


@pytest.mark.skipif(sys.version_info[:2] != (3, 12), reason="only the python3.12 tier installs the layer's lock")
def test_the_lambda_runtimes_python_tier_runs_the_layers_locked_versions() -> None:
    # The Makefile's .venv312 takes shared/requirements.lock over the development tools' choices: the unit and
    # integration tests then run the models as Lambda does, built on first use.
    installed = {name: metadata.version(name) for name in locked_versions()}
    assert installed == locked_versions(), "an older .venv312? `make clean` and run `make test312` again"
    assert DEFER_MODEL_BUILDS
