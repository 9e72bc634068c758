"""The report as Markdown (GitHub-flavoured tables): every value escaped so it cannot start markup."""

from __future__ import annotations

from rescind.ledger.report.structure import Cell, Report, Table, visible

# CommonMark lets any ASCII punctuation be escaped with a backslash. These are the ones that could
# start emphasis, a link or an image, inline HTML or an entity, code, strike-through or a table cell.
# ('#' only matters at the start of a line, where no value is written; '_' inside a word is literal in GFM.)
_MARKDOWN_SPECIAL = {char: "\\" + char for char in "\\`*[]<>|&~"}


def _markdown_text(text: str) -> str:
    flat = " ".join(visible(text).split())  # newlines and tabs would break a table row
    return "".join(_MARKDOWN_SPECIAL.get(char, char) for char in flat)


def _markdown_cell(cell: Cell) -> str:
    flat = " ".join(visible(cell.text).split())
    if not flat:
        return ""
    if cell.code and "`" not in flat and "|" not in flat:
        return f"`{flat}`"
    return _markdown_text(flat)


def _markdown_table(table: Table) -> list[str]:
    lines = [
        "| " + " | ".join(_markdown_text(header) for header in table.headers) + " |",
        "|" + "|".join("---" for _ in table.headers) + "|",
    ]
    for row in table.rows:
        cells = [_markdown_cell(cell) for cell in row]
        if table.key_value:
            cells[0] = f"**{cells[0]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(report: Report) -> str:
    lines = [f"# {_markdown_text(report.title)}", "", f"**Status: {_markdown_text(report.status_text)}**", ""]
    for section in report.sections:
        lines += [f"## {_markdown_text(section.title)}", ""]
        for block in section.blocks:
            lines += [*(_markdown_table(block) if isinstance(block, Table) else [_markdown_text(block)]), ""]
    return "\n".join(lines).rstrip("\n") + "\n"
