"""The report as one standalone HTML document: inline CSS, no external resource, no script; every value escaped,
and a Content-Security-Policy that forbids loading or running anything should escaping ever miss."""

from __future__ import annotations

import html

from rescind.ledger.report.structure import Cell, Report, Table, visible

_CSS = """
:root { color-scheme: light; --ink: #1f2328; --muted: #656d76; --line: #d0d7de; --head: #f6f8fa;
  --good: #1a7f37; --good-bg: #dafbe1; --bad: #cf222e; --bad-bg: #ffebe9; --warn: #9a6700; --warn-bg: #fff8c5; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1200px; padding: 24px; color: var(--ink); background: #fff;
  font: 14px/1.5 -apple-system, "Segoe UI", "Noto Sans", "DejaVu Sans", Helvetica, Arial, sans-serif; }
h1 { font-size: 22px; margin: 0 0 8px; overflow-wrap: anywhere; }
h2 { font-size: 17px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
p { margin: 6px 0 10px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; table-layout: auto; }
th, td { border: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top;
  overflow-wrap: anywhere; }
thead th { background: var(--head); font-weight: 600; white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fbfcfd; }
table.key-value { width: auto; min-width: 50%; }
table.compact { width: auto; min-width: 30%; }
td.nowrap { white-space: nowrap; }
table.key-value th[scope=row] { background: var(--head); font-weight: 600; white-space: nowrap; width: 1%; }
code { font: 12.5px/1.4 ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600; }
.tone-good { color: var(--good); } .tone-bad { color: var(--bad); font-weight: 600; }
.tone-warn { color: var(--warn); } .tone-muted { color: var(--muted); }
.badge.tone-good { background: var(--good-bg); } .badge.tone-bad { background: var(--bad-bg); }
.badge.tone-warn { background: var(--warn-bg); } .badge.tone-muted { background: var(--head); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
@media print {
  body { max-width: none; padding: 0; font-size: 10.5px; }
  h2 { break-after: avoid; }
  thead { display: table-header-group; }
  tr { break-inside: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""

# Nothing may load or run: inline styles only. A second line of defence behind the escaping.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'none'; base-uri 'none'"
_NUMERIC_HEADERS = frozenset({"#", "Actions", "Act ms", "Verify ms", "Total ms"})
# Short values that read badly when broken: the free text and references take the remaining width.
_NOWRAP_HEADERS = _NUMERIC_HEADERS | {"Started (UTC)", "Action", "Outcome", "Reversible", "Confirmed"}


def _e(text: str) -> str:
    return html.escape(visible(text), quote=True)


def _html_cell(cell: Cell, *, tag: str = "td", numeric: bool = False, nowrap: bool = False, scope: str = "") -> str:
    content = f"<code>{_e(cell.text)}</code>" if cell.code and cell.text else _e(cell.text)
    classes = []
    if cell.tone is not None:
        classes.append(f"tone-{cell.tone}")
    if numeric:
        classes.append("num")
    if nowrap:
        classes.append("nowrap")
    class_attr = f' class="{_e(" ".join(classes))}"' if classes else ""
    scope_attr = f' scope="{_e(scope)}"' if scope else ""
    return f"<{tag}{scope_attr}{class_attr}>{content}</{tag}>"


def _html_table(table: Table) -> str:
    classes = [name for name, wanted in (("key-value", table.key_value), ("compact", table.compact)) if wanted]
    table_class = f' class="{" ".join(classes)}"' if classes else ""
    parts = [f"<table{table_class}>", "<thead><tr>"]
    parts += [f'<th scope="col">{_e(header)}</th>' for header in table.headers]
    parts += ["</tr></thead>", "<tbody>"]
    for index, row in enumerate(table.rows):
        row_id = f' id="{_e(table.row_ids[index])}"' if index < len(table.row_ids) else ""
        row_class = f' class="{_e(table.row_class)}"' if table.row_class else ""
        cells = []
        for column, cell in enumerate(row):
            if table.key_value and column == 0:
                cells.append(_html_cell(cell, tag="th", scope="row"))
            else:
                header = table.headers[column]
                cells.append(_html_cell(cell, numeric=header in _NUMERIC_HEADERS, nowrap=header in _NOWRAP_HEADERS))
        parts.append(f"<tr{row_id}{row_class}>{''.join(cells)}</tr>")
    parts += ["</tbody>", "</table>"]
    return "\n".join(parts)


def render_html(report: Report) -> str:
    body = [
        "<header>",
        f"<h1>{_e(report.title)}</h1>",
        f'<p>Status: <span class="badge tone-{_e(report.status_tone)}" id="status">{_e(report.status_text)}</span></p>',
        "</header>",
        "<main>",
    ]
    for section in report.sections:
        body.append(f'<section id="{_e(section.section_id)}">')
        body.append(f"<h2>{_e(section.title)}</h2>")
        body += [_html_table(block) if isinstance(block, Table) else f"<p>{_e(block)}</p>" for block in section.blocks]
        body.append("</section>")
    body += ["</main>", "<footer>Generated by Rescind from the audit ledger. Times are UTC.</footer>"]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="referrer" content="no-referrer">',
            f"<title>{_e(report.title)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
            *body,
            "</body>",
            "</html>",
            "",
        ]
    )
