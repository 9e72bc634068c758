"""What every benchmark section shares: where things are, progress lines, medians and ratios, the machine and
versions the figures came from, a state machine's history read into phases, and the Markdown cells and verdicts
of the results."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "bench"
FUNCTIONS_DIR = REPO_ROOT / "functions"
SHARED_DIR = REPO_ROOT / "shared"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 6) if values else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def spread(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "median_seconds": median(values),
        "min_seconds": round(min(values), 4) if values else None,
        "max_seconds": round(max(values), 4) if values else None,
    }


def verdict(target: str, wanted: str, met: bool | None, detail: str) -> dict[str, Any]:
    """One target's verdict in results.json: met, missed, or None when it was not measured."""
    return {"target": target, "wanted": wanted, "met": met, "detail": detail}


# --- machine and versions ---------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    memory_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "memory_mb": memory_kb // 1024,
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
    }


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for name in ("hvac", "boto3", "botocore", "moto", "aws-lambda-powertools", "pydantic", "cryptography"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    try:
        from rescind_local.openbao import find_bao_binary

        answer = subprocess.run(  # noqa: S603 - our own binary, fixed arguments
            [find_bao_binary(), "version"], capture_output=True, text=True, timeout=30, check=False
        )
        found["openbao"] = answer.stdout.strip().split(" (")[0]
    except Exception as error:  # a missing binary is reported, not fatal here
        found["openbao"] = f"unknown ({type(error).__name__})"
    return found


# --- running the handlers and reading a state machine's history ----------------------------------------


@contextmanager
def stdout_to_file() -> Iterator[Path]:
    """Point file descriptor 1 at a temporary file (all threads share it), and back afterwards."""
    sys.stdout.flush()
    handle, name = tempfile.mkstemp(prefix="rescind-bench-handlers-", suffix=".log")
    saved = os.dup(1)
    os.dup2(handle, 1)
    try:
        yield Path(name)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(handle)
        Path(name).unlink(missing_ok=True)


def phases_from_history(
    events: Sequence[dict[str, Any]],
    top_level: set[str],
    names: Sequence[str] = ("Plan", "Contain", "Revoke", "Verify", "Close"),
) -> tuple[dict[str, float], int]:
    """Seconds spent in each of `names` (top-level states), and the largest state output seen (bytes)."""
    entered: dict[str, datetime] = {}
    exited: dict[str, datetime] = {}
    largest = 0
    for event in events:
        details = event.get("stateEnteredEventDetails") or event.get("stateExitedEventDetails")
        if not details:
            continue
        name = details.get("name", "").removesuffix("Inline")  # a small plan's INLINE Maps count as theirs
        largest = max(largest, len(str(details.get("output") or details.get("input") or "").encode()))
        if name not in top_level:
            continue
        if "stateEnteredEventDetails" in event:
            entered.setdefault(name, event["timestamp"])
        else:
            exited[name] = event["timestamp"]
    phases = {
        name: round((exited[name] - entered[name]).total_seconds(), 4)
        for name in names
        if name in entered and name in exited
    }
    return phases, largest


# --- Markdown cells ---------------------------------------------------------------------------------


def mb(value: int) -> str:
    return f"{value / 1e6:.2f} MB"


def cell(value: Any) -> str:
    return "failed" if value is None else str(value)


def verdict_text(met: bool | None) -> str:
    return "not measured" if met is None else "met" if met else "MISSED"
