"""Rescind's pydantic models are built on first use (defer_build), not at import: a cold start builds the schemas
of the models its first event uses and no others. That is safe only with a pydantic whose lazy build is
thread-safe (pydantic PR #13438, in 2.14.4: before it, a model built from two threads at once could validate with
its parent's validator, pydantic issue #11849), and Rescind validates in thread pools. pyproject.toml and
shared/requirements.txt require that release."""

from __future__ import annotations

import importlib
import pkgutil
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pydantic
import pytest
from pydantic import BaseModel, ValidationError

import rescind
from rescind.leaks.types import LeakAlert, SecretType

pytestmark = pytest.mark.unit

THREADS = 16
ROUNDS = 25


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3])


def test_the_pydantic_in_use_builds_deferred_models_under_a_lock() -> None:
    # The release with PR #13438: model_rebuild() holds one lock, so a model is built by one thread at a time
    assert _release(pydantic.VERSION) >= (2, 14, 4)
    from pydantic import main

    assert isinstance(main._rebuild_lock, type(threading.RLock()))


def test_every_rescind_model_defers_its_build() -> None:
    for module in pkgutil.walk_packages(rescind.__path__, "rescind."):
        importlib.import_module(module.name)
    models = [
        model
        for model in _subclasses(BaseModel)
        if model.__module__.startswith("rescind.") and not model.__name__.startswith("_")
    ]
    assert len(models) > 50  # an empty walk would make this vacuous
    assert [model.__qualname__ for model in models if not model.model_config.get("defer_build")] == []


def _subclasses(model: type[BaseModel]) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    for child in model.__subclasses__():
        found += [child, *_subclasses(child)]
    return found


def test_a_deferred_model_first_used_from_many_threads_at_once_validates_as_itself() -> None:
    for round_number in range(ROUNDS):
        # Given a model not built yet (a fresh subclass of a Rescind model inherits its deferred config), whose
        # parent is built: a thread that saw the half-built child would validate with the parent's validator
        class Reported(LeakAlert):
            reporter: str

        LeakAlert.model_validate(_alert(0))
        assert not Reported.__pydantic_complete__

        # When every thread validates with it at once
        validated = _validated_at_once(Reported)

        # Then each validated as the child: its own field kept, the parent's rules (extra="forbid") applied
        assert [(type(item), item.event_id, getattr(item, "reporter", None)) for item in validated] == [
            (Reported, f"event-{index}", f"scanner-{index}") for index in range(THREADS)
        ], f"round {round_number}"
        with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
            Reported.model_validate({**_alert(1), "reporter": "scanner", "unexpected": True})


def _validated_at_once(model: type[LeakAlert]) -> list[LeakAlert]:
    start = threading.Barrier(THREADS)

    def validate(index: int) -> LeakAlert:
        start.wait()
        return model.model_validate({**_alert(index), "reporter": f"scanner-{index}"})

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(validate, range(THREADS)))


def _alert(index: int) -> dict[str, object]:
    return {
        "source": "bench",
        "detail_type": "leak",
        "event_id": f"event-{index}",
        "secret_type": SecretType.AWS_ACCESS_KEY,
        "access_key_id": "AKIAABCDEFGHIJKLMNOP",
        "found_at": datetime(2026, 12, 5, tzinfo=UTC),
    }
