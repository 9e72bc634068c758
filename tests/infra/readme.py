"""Reading README.md's sections, for the tests that keep it in step with the template."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def readme_section(title: str) -> str:
    """The README's text under the heading `title` (any level), up to the next heading of the same or a higher
    level; lines in fenced code blocks are never headings."""
    lines = README.splitlines(keepends=True)
    level = 0
    body: list[str] = []
    in_fence = False
    for line in lines:
        if line.startswith("```"):
            in_fence = not in_fence
        heading = None if in_fence else re.match(r"(#+) (.*)", line)
        if heading and level and len(heading.group(1)) <= level:
            break
        if level:
            body.append(line)
        elif heading and heading.group(2).strip() == title:
            level = len(heading.group(1))
    assert level, f"README has no section {title!r}"
    return "".join(body)
