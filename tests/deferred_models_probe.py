"""A deferred Rescind model first used from many threads at once validates as itself (rescind.deferred_builds).

Runs in the tests' environment and, as a script, under python3.12 with the built layer's pydantic
(tests/integration/test_lambda_build.py): `python -m tests.deferred_models_probe` prints a JSON report. No pytest
here: the layer has none.
"""

from __future__ import annotations

import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pydantic

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.leaks.types import LeakAlert, SecretType

THREADS = 16
ROUNDS = 25


def first_use_from_many_threads(rounds: int = ROUNDS, threads: int = THREADS) -> None:
    """Raise AssertionError unless every thread's first use of a fresh deferred model validates as that model."""
    for round_number in range(rounds):
        # Given a model not built yet (a fresh subclass of a Rescind model inherits its deferred config), whose
        # parent is built: a thread that saw the half-built child would validate with the parent's validator
        class Reported(LeakAlert):
            reporter: str

        LeakAlert.model_validate(_alert(0))
        assert not Reported.__pydantic_complete__, "the model was built before its first use"

        # When every thread validates with it at once
        validated = _validated_at_once(Reported, threads)

        # Then each validated as the child: its own field kept, the parent's rules (extra="forbid") applied
        got = [(type(item), item.event_id, getattr(item, "reporter", None)) for item in validated]
        wanted = [(Reported, f"event-{index}", f"scanner-{index}") for index in range(threads)]
        assert got == wanted, f"round {round_number}: {got}"
        refused = ""
        try:
            Reported.model_validate({**_alert(1), "reporter": "scanner", "unexpected": True})
        except pydantic.ValidationError as error:
            refused = str(error)
        assert "Extra inputs are not permitted" in refused, f"round {round_number}: {refused or 'accepted'}"


def _validated_at_once(model: type[LeakAlert], threads: int) -> list[LeakAlert]:
    start = threading.Barrier(threads)

    def validate(index: int) -> LeakAlert:
        start.wait()
        return model.model_validate({**_alert(index), "reporter": f"scanner-{index}"})

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(validate, range(threads)))


def _alert(index: int) -> dict[str, Any]:
    return {
        "source": "bench",
        "detail_type": "leak",
        "event_id": f"event-{index}",
        "secret_type": SecretType.AWS_ACCESS_KEY,
        "access_key_id": "AKIAABCDEFGHIJKLMNOP",
        "found_at": datetime(2026, 12, 5, tzinfo=UTC),
    }


if __name__ == "__main__":
    report: dict[str, Any] = {"pydantic": pydantic.VERSION, "deferred": DEFER_MODEL_BUILDS}
    if DEFER_MODEL_BUILDS:
        first_use_from_many_threads()
        report["validated_as_itself"] = True
    sys.stdout.write(json.dumps(report) + "\n")
