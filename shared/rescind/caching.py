"""The runtime factories' cache: one Lambda execution environment's settings and clients, built once.

On AWS each function has its own process, so a process-wide cache is the execution environment's cache. The
local stack runs every function in one process: it clears this cache between invocations (each one a cold
start), or keeps one snapshot per function (`snapshot_caches`/`restore_caches`) to run them warm.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable
from typing import Any, ParamSpec, TypeVar, cast

P = ParamSpec("P")
R = TypeVar("R")
# (factory, its arguments) -> what it built
CacheState = dict[tuple[str, tuple[Hashable, ...]], Any]

_values: CacheState = {}
# Re-entrant: factories build on each other (the engine on the Vault client on the settings).
_lock = threading.RLock()


def runtime_cache(factory: Callable[P, R]) -> Callable[P, R]:
    """Like functools.cache (an error is not cached), over one clearable and restorable store."""
    name = f"{factory.__module__}.{factory.__qualname__}"

    @functools.wraps(factory)
    def cached(*args: P.args, **kwargs: P.kwargs) -> R:
        key = (name, (*args, *sorted(kwargs.items())))
        with _lock:
            if key not in _values:
                _values[key] = factory(*args, **kwargs)
            return cast("R", _values[key])

    return cached


def clear_caches() -> None:
    with _lock:
        _values.clear()


def snapshot_caches() -> CacheState:
    with _lock:
        return dict(_values)


def restore_caches(state: CacheState) -> None:
    with _lock:
        _values.clear()
        _values.update(state)
