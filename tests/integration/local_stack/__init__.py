"""Contract tests for the local stack: each proves a moto behaviour the local stack relies on or patches."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from moto import mock_aws


@contextmanager
def moto_patched_by(patches: Iterable[Any]) -> Iterator[ExitStack]:
    """moto's mock with these local-stack patches started inside it (none: moto as it is); the stack is yielded for
    the test's own patches, stopped with the rest."""
    with ExitStack() as stack:
        stack.enter_context(mock_aws())
        for patch in patches:
            stack.enter_context(patch)
        yield stack


def write_function(root: Path, folder: str, source: str, module: str = "app") -> Path:
    """A function folder like functions/<name>/, holding `<module>.py` with the given source."""
    code_dir = root / folder
    code_dir.mkdir(parents=True, exist_ok=True)
    (code_dir / f"{module}.py").write_text(textwrap.dedent(source))
    return code_dir
