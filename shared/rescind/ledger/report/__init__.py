"""An incident report for pasting into a ticket: Markdown, standalone HTML, or JSON.

It says what triggered the run and who asked, what was planned (with counts by kind), every action
attempt in time order with its verification evidence and timings, who approved if known, what is still
alive, and how the run ended. Everything comes from the ledger (`IncidentView`) plus, when the caller
has it, what Step Functions knows about the execution (`ExecutionSummary`).

Values in the ledger come from events and could contain markup: every text value is escaped for the
format it lands in. The HTML document is standalone (inline CSS, no external resource, no script) and
its Content-Security-Policy forbids both, should escaping ever miss something.

The package: `structure` (the execution summary and the neutral structure every format renders), `sections`
(the sections built from the ledger), and one module per format: `markdown_format`, `html_format`,
`json_format`.
"""

from __future__ import annotations

from typing import Literal

from rescind.ledger.report.html_format import render_html
from rescind.ledger.report.json_format import render_json
from rescind.ledger.report.markdown_format import render_markdown
from rescind.ledger.report.sections import NOT_FINISHED, build_report
from rescind.ledger.report.structure import ExecutionSummary
from rescind.ledger.types import IncidentView

__all__ = ["NOT_FINISHED", "ExecutionSummary", "ReportFormat", "render_report"]

ReportFormat = Literal["md", "html", "json"]


def render_report(view: IncidentView, *, fmt: ReportFormat, execution: ExecutionSummary | None = None) -> str:
    """The report on one incident, as Markdown (`md`), a standalone HTML document (`html`) or JSON (`json`)."""
    if fmt == "json":
        return render_json(view, execution)
    report = build_report(view, execution)
    if fmt == "md":
        return render_markdown(report)
    if fmt == "html":
        return render_html(report)
    raise ValueError(f"unknown report format {fmt!r}: use md, html or json")
