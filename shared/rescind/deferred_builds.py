"""Whether Rescind's pydantic models build their schemas on first use (`defer_build`), not at import.

A cold start then builds only the models its first event uses. That is safe only with a pydantic whose lazy
build is thread-safe (PR #13438, in 2.14.4; before it, a model first used from two threads at once could validate
with its parent's validator, issue #11849), and Rescind validates in thread pools. The layer pins such a release
(shared/requirements.lock); the development tools hold the test environment at 2.13 (aws-sam-translator asks for
pydantic ~=2.13.3), where the models are built at import, as before.
"""

from __future__ import annotations

import re

import pydantic

# The first pydantic release whose lazy model build holds a lock (pydantic.main._rebuild_lock).
THREAD_SAFE_LAZY_BUILD = (2, 14, 4)


def release_of(version: str) -> tuple[int, int, int]:
    """A pydantic version's release numbers ("2.14.4" → (2, 14, 4); a pre-release counts as its release)."""
    found = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    if found is None:
        return (0, 0, 0)
    major, minor, patch = (int(part) for part in found.groups())
    return (major, minor, patch)


DEFER_MODEL_BUILDS: bool = release_of(pydantic.VERSION) >= THREAD_SAFE_LAZY_BUILD
