"""The HTML incident report in a real browser: Debian's headless Chromium parses it, renders it and prints it.

The browser is `$RESCIND_CHROMIUM` when set, else Debian's `chromium-headless-shell` (what
tools/install_browser.sh installs), else a full `chromium` already on the machine.
"""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rescind.ledger.report import render_report
from rescind.models.refs import format_ref
from tests.unit.test_report import EXECUTION, HOSTILE_REASON, sample_view

BROWSERS = (Path("/usr/bin/chromium-headless-shell"), Path("/usr/bin/chromium"))


def _find_chromium() -> Path:
    chosen = os.environ.get("RESCIND_CHROMIUM")
    if chosen:
        return Path(chosen)
    return next((browser for browser in BROWSERS if browser.exists()), BROWSERS[0])


CHROMIUM = _find_chromium()

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no headless Chromium at {CHROMIUM}: run tools/install_browser.sh (or `make browser`) to install it",
    ),
]

WINDOW = (1280, 1800)


def _chromium(profile: Path, *arguments: str) -> subprocess.CompletedProcess[bytes]:
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        *arguments,
    ]
    # A fixed binary and our own arguments, no shell.
    completed = subprocess.run(command, capture_output=True, timeout=120, check=False)  # noqa: S603
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")[-2000:]
    return completed


class _Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attempt_ids: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        attributes = dict(attrs)
        if tag == "tr" and attributes.get("class") == "attempt":
            self.attempt_ids.append(attributes.get("id") or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _png_pixels(png: bytes) -> tuple[int, int, bytes]:
    """Width, height and the inflated scanlines of a PNG: enough to tell a rendered page from a blank one."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    data, offset = b"", 8
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        if kind == b"IDAT":
            data += png[offset + 8 : offset + 8 + length]
        offset += 12 + length
    return width, height, zlib.decompress(data)


@pytest.fixture
def report_file(tmp_path: Path) -> Path:
    path = tmp_path / "report.html"
    path.write_text(render_report(sample_view(), fmt="html", execution=EXECUTION), encoding="utf-8")
    return path


def test_chromium_parses_a_row_for_every_attempt_and_no_script(report_file: Path, tmp_path: Path) -> None:
    # Given the HTML report of an incident with seven attempts and hostile text in its trigger
    view = sample_view()
    # When Chromium loads it and dumps the DOM it built
    dom_text = _chromium(tmp_path / "profile", "--dump-dom", report_file.as_uri()).stdout.decode()
    dom = _Rows()
    dom.feed(dom_text)
    # Then every attempt is a row, in time order, and the escaped markup stayed text
    assert dom.attempt_ids == [f"attempt-{number}" for number in range(1, len(view.attempts) + 1)]
    text = "".join(dom.text)
    for attempt in view.attempts:
        assert format_ref(attempt.result.target) in text
    assert "script" not in dom.tags
    assert "img" not in dom.tags
    assert HOSTILE_REASON in text


def test_chromium_renders_a_screenshot_that_is_not_blank(report_file: Path, tmp_path: Path) -> None:
    screenshot = tmp_path / "report.png"
    _chromium(tmp_path / "profile", f"--screenshot={screenshot}", report_file.as_uri())
    png = screenshot.read_bytes()
    width, height, pixels = _png_pixels(png)
    assert (width, height) == WINDOW
    # A blank page inflates to almost one byte value; text and tables give many.
    assert len(set(pixels)) > 32
    assert len(png) > 20_000


def test_chromium_prints_the_report_to_pdf(report_file: Path, tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    _chromium(tmp_path / "profile", "--no-pdf-header-footer", f"--print-to-pdf={pdf}", report_file.as_uri())
    content = pdf.read_bytes()
    assert content.startswith(b"%PDF-")
    assert content.count(b"/Type /Page") - content.count(b"/Type /Pages") >= 1
