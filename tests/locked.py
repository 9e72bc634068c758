"""The layer's lock (shared/requirements.lock): the exact versions the Lambda functions run."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.utils import canonicalize_name

LOCK_FILE = Path(__file__).resolve().parents[1] / "shared" / "requirements.lock"


def locked_versions() -> dict[str, str]:
    """Each locked distribution's canonical name and its pinned version."""
    pins = re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", LOCK_FILE.read_text(), flags=re.MULTILINE)
    return {canonicalize_name(name): version for name, version in pins}
