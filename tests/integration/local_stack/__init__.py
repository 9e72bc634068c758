"""Contract tests for the local stack: each proves a moto behaviour the local stack relies on or patches."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write_function(root: Path, folder: str, source: str, module: str = "app") -> Path:
    """A function folder like functions/<name>/, holding `<module>.py` with the given source."""
    code_dir = root / folder
    code_dir.mkdir(parents=True, exist_ok=True)
    (code_dir / f"{module}.py").write_text(textwrap.dedent(source))
    return code_dir
