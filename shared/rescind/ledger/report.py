"""An incident report for pasting into a ticket: Markdown, standalone HTML, or JSON.

It says what triggered the run and who asked, what was planned (with counts by kind), every action
attempt in time order with its verification evidence and timings, who approved if known, what is still
alive, and how the run ended. Everything comes from the ledger (`IncidentView`) plus, when the caller
has it, what Step Functions knows about the execution (`ExecutionSummary`).

Values in the ledger come from events and could contain markup: every text value is escaped for the
format it lands in. The HTML document is standalone (inline CSS, no external resource, no script) and
its Content-Security-Policy forbids both, should escaping ever miss something.
"""

from __future__ import annotations

import html
import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from rescind.ledger.types import ActionAttemptRecord, CredentialState, IncidentClosure, IncidentStatus, IncidentView
from rescind.models import CredentialRef, Outcome
from rescind.models.refs import format_ref

__all__ = ["ExecutionSummary", "ReportFormat", "render_report"]

ReportFormat = Literal["md", "html", "json"]


class ExecutionSummary(BaseModel):
    """What Step Functions knows about the run: the CLI fills it from DescribeExecution and the history."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    execution_arn: Annotated[str, Field(min_length=1, max_length=2048)]
    status: Annotated[str, Field(pattern=r"^[A-Z_]{1,40}$")]  # RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED...
    started_at: AwareDatetime | None = None
    stopped_at: AwareDatetime | None = None
    approved_by: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    denied_by: Annotated[str, Field(min_length=1, max_length=200)] | None = None

    @model_validator(mode="after")
    def _not_both_approved_and_denied(self) -> ExecutionSummary:
        if self.approved_by is not None and self.denied_by is not None:
            raise ValueError("an execution is approved or denied, not both")
        return self


def render_report(view: IncidentView, *, fmt: ReportFormat, execution: ExecutionSummary | None = None) -> str:
    """The report on one incident, as Markdown (`md`), a standalone HTML document (`html`) or JSON (`json`)."""
    if fmt == "json":
        return _render_json(view, execution)
    report = _build(view, execution)
    if fmt == "md":
        return _render_markdown(report)
    if fmt == "html":
        return _render_html(report)
    raise ValueError(f"unknown report format {fmt!r}: use md, html or json")


# --- one neutral structure, rendered into each format --------------------------------------------

Tone = Literal["good", "bad", "warn", "muted"]


@dataclass(frozen=True)
class Cell:
    text: str
    code: bool = False  # an identifier: shown in a monospace font
    tone: Tone | None = None


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    row_class: str = ""  # HTML: lets a reader (or a test) find every row of a kind
    row_ids: tuple[str, ...] = ()
    key_value: bool = False  # the first column names the row
    compact: bool = False  # HTML: as wide as its content, not the page


@dataclass(frozen=True)
class Section:
    section_id: str
    title: str
    blocks: tuple[str | Table, ...] = ()  # paragraphs and tables, in reading order


@dataclass(frozen=True)
class Report:
    title: str
    status_text: str
    status_tone: Tone
    sections: tuple[Section, ...] = field(default=())


_STATUS_TONE: dict[IncidentStatus, Tone] = {
    IncidentStatus.COMPLETED: "good",
    IncidentStatus.PARTIAL: "bad",
    IncidentStatus.FAILED: "bad",
    IncidentStatus.UNRESOLVED: "warn",
    IncidentStatus.REFUSED: "warn",
    IncidentStatus.DRY_RUN: "muted",
    IncidentStatus.RECORDED: "muted",
    IncidentStatus.REJECTED: "warn",
}
_OUTCOME_TONE: dict[Outcome, Tone] = {
    Outcome.SUCCEEDED: "good",
    Outcome.ALREADY_ABSENT: "good",
    Outcome.ALREADY_APPLIED: "good",
    Outcome.SKIPPED: "muted",
    Outcome.FAILED: "bad",
}
_NOTHING_ALIVE: dict[IncidentStatus, str] = {
    IncidentStatus.COMPLETED: "Nothing is still alive: every planned action was verified.",
    IncidentStatus.PARTIAL: "The run ended partial, but no still-alive reference was recorded.",
    IncidentStatus.FAILED: "The run failed before verification named what is alive: what was planned may still be.",
    IncidentStatus.UNRESOLVED: "The trigger could not be resolved to a credential: nothing was acted on.",
    IncidentStatus.REFUSED: "The run was refused (a hold, a protected identity, or a denied approval): "
    "nothing was changed.",
    IncidentStatus.DRY_RUN: "Dry run: nothing was changed, so everything planned is still alive by design.",
    IncidentStatus.RECORDED: "The event asked for no action (a sample, or an alert resolved or inactive): "
    "it was recorded, nothing was changed.",
    IncidentStatus.REJECTED: "The event was refused (malformed, or of a kind Rescind does not know): "
    "nothing was changed.",
}
_FAILED_ALL_READ_BACK_DEAD = "The run failed, but every planned credential was read back dead: nothing is still alive."
NOT_FINISHED = "The run is not finished: no closure has been recorded, so what is still alive is not known yet."


def _visible(text: str) -> str:
    """Control and format characters (a bidi override, a zero-width space) shown as escapes, not obeyed."""
    return "".join(
        f"\\u{ord(char):04x}" if unicodedata.category(char) in ("Cc", "Cf") and char not in "\n\r\t" else char
        for char in text
    )


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "not recorded"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _ms(value: float) -> str:
    return f"{value:.1f}"


def _or_not_recorded(value: str | None) -> Cell:
    return Cell(value) if value else Cell("not recorded", tone="muted")


def _ref_text(ref: CredentialRef) -> str:
    return format_ref(ref)


def _incident_id(view: IncidentView) -> str:
    if view.incident is not None:
        return view.incident.incident_id
    if view.closure is not None:
        return view.closure.incident_id
    if view.attempts:
        return view.attempts[0].incident_id
    return "unknown"


def _in_time_order(attempts: Sequence[ActionAttemptRecord]) -> list[ActionAttemptRecord]:
    return sorted(attempts, key=lambda a: (a.result.started_at, a.result.finished_at, a.attempt_id))


def _build(view: IncidentView, execution: ExecutionSummary | None) -> Report:
    incident_id = _incident_id(view)
    status_text: str
    status_tone: Tone
    if view.closure is None:
        status_text, status_tone = "not finished", "warn"
    else:
        status_text, status_tone = str(view.closure.status), _STATUS_TONE[view.closure.status]
    sections = (
        _summary_section(view, status_text, status_tone),
        _trigger_section(view),
        _approval_section(execution),
        _plan_section(view),
        _timeline_section(view),
        _still_alive_section(view),
        _final_section(view, status_text, status_tone),
    )
    return Report(
        title=f"Rescind incident report: {incident_id}",
        status_text=status_text,
        status_tone=status_tone,
        sections=sections,
    )


def _summary_section(view: IncidentView, status_text: str, status_tone: Tone) -> Section:
    incident, closure = view.incident, view.closure
    rows = [
        (Cell("Incident"), Cell(_incident_id(view), code=True)),
        (Cell("Status"), Cell(status_text, tone=status_tone)),
        (Cell("Opened"), Cell(_when(incident.opened_at if incident else None))),
        (Cell("Closed"), Cell(_when(closure.closed_at) if closure else "not yet")),
        (Cell("Actions planned"), Cell(str(len(incident.plan.actions)) if incident else "unknown")),
        (Cell("Attempts recorded"), Cell(str(len(view.attempts)))),
        (Cell("Still alive"), _alive_cell(closure)),
    ]
    if closure is not None and closure.credentials:
        unknown = closure.in_state(CredentialState.UNKNOWN)
        rows.append((Cell("Verified dead"), Cell(str(len(closure.in_state(CredentialState.DEAD))))))
        rows.append((Cell("Not read back (unknown)"), Cell(str(len(unknown)), tone="warn" if unknown else "good")))
    return Section("summary", "Summary", blocks=(Table(("Field", "Value"), tuple(rows), key_value=True),))


def _alive_cell(closure: IncidentClosure | None) -> Cell:
    """A count of the living only where it is known: a credential never read back makes it "at least"."""
    if closure is None:
        return Cell("unknown (not finished)", tone="warn")
    if closure.alive_is_unknown:
        known = f"at least {len(closure.still_alive)}" if closure.still_alive else "unknown"
        return Cell(f"{known} (not everything was read back)", tone="warn")
    return Cell(str(len(closure.still_alive)), tone="bad" if closure.still_alive else "good")


def _trigger_section(view: IncidentView) -> Section:
    if view.incident is None:
        return Section("trigger", "Trigger", blocks=("No incident record: the trigger is not known.",))
    trigger = view.incident.trigger
    references = ", ".join(_ref_text(ref) for ref in trigger.references)
    rows = [
        (Cell("Source"), Cell(trigger.source, code=True)),
        (Cell("Detail type"), Cell(trigger.detail_type)),
        (Cell("Event id"), Cell(trigger.event_id, code=True)),
        (Cell("Workload"), _or_not_recorded(trigger.workload_id)),
        (Cell("Reason"), _or_not_recorded(trigger.reason)),
        (Cell("Requested by"), _or_not_recorded(trigger.requested_by)),
        (Cell("Ticket"), _or_not_recorded(trigger.ticket)),
        (Cell("References named"), Cell(references, code=True) if references else Cell("none", tone="muted")),
    ]
    return Section("trigger", "Trigger", blocks=(Table(("Field", "Value"), tuple(rows), key_value=True),))


def _approval_section(execution: ExecutionSummary | None) -> Section:
    if execution is None:
        return Section(
            "approval",
            "Execution and approval",
            blocks=("No execution summary was given: who approved, if anyone, is not known from the ledger.",),
        )
    if execution.approved_by:
        decision = Cell(f"approved by {execution.approved_by}", tone="good")
    elif execution.denied_by:
        decision = Cell(f"denied by {execution.denied_by}", tone="bad")
    else:
        decision = Cell("no approval recorded", tone="muted")
    rows = [
        (Cell("Execution"), Cell(execution.execution_arn, code=True)),
        (Cell("Execution status"), Cell(execution.status)),
        (Cell("Started"), Cell(_when(execution.started_at))),
        (Cell("Stopped"), Cell(_when(execution.stopped_at) if execution.stopped_at else "still running")),
        (Cell("Approval"), decision),
    ]
    return Section(
        "approval", "Execution and approval", blocks=(Table(("Field", "Value"), tuple(rows), key_value=True),)
    )


def _plan_section(view: IncidentView) -> Section:
    if view.incident is None:
        return Section("plan", "Plan", blocks=("No incident record: the plan is not known.",))
    plan = view.incident.plan
    intro = f"Plan {plan.plan_id}: {len(plan.actions)} action(s)" + (", dry run." if plan.dry_run else ".")
    counts = Table(
        ("Credential kind", "Actions"),
        tuple((Cell(kind, code=True), Cell(str(count))) for kind, count in sorted(plan.counts_by_kind.items())),
        row_class="plan-count",
        compact=True,
    )
    actions = Table(
        ("#", "Action", "Target", "Reversible", "Reason"),
        tuple(
            (
                Cell(str(number)),
                Cell(str(action.kind)),
                Cell(_ref_text(action.target), code=True),
                Cell("yes" if action.reversible else "no"),
                Cell(action.reason),
            )
            for number, action in enumerate(plan.actions, start=1)
        ),
        row_class="plan-action",
    )
    return Section("plan", "Plan", blocks=(intro, counts, actions))


def _timeline_section(view: IncidentView) -> Section:
    attempts = _in_time_order(view.attempts)
    if not attempts:
        return Section("timeline", "Timeline", blocks=("No action attempt has been recorded.",))
    timeline_rows = []
    evidence_rows = []
    for number, attempt in enumerate(attempts, start=1):
        result = attempt.result
        detail = f"{result.error_type}: {result.detail}" if result.error_type else result.detail
        timeline_rows.append(
            (
                Cell(str(number)),
                Cell(_when(result.started_at)),
                Cell(str(result.action_kind)),
                Cell(_ref_text(result.target), code=True),
                Cell(str(result.outcome), tone=_OUTCOME_TONE[result.outcome]),
                Cell(_ms(result.act_ms)),
                Cell(_ms(result.verify_ms)),
                Cell(_ms(result.duration_ms)),
                Cell(detail),
            )
        )
        if not result.evidence:
            evidence_rows.append((Cell(str(number)), Cell("none recorded", tone="muted"), Cell(""), Cell("")))
        for evidence in result.evidence:
            evidence_rows.append(
                (
                    Cell(str(number)),
                    Cell(evidence.check),
                    Cell(evidence.observed),
                    Cell("yes", tone="good") if evidence.confirmed else Cell("no", tone="bad"),
                )
            )
    timeline = Table(
        (
            "#",
            "Started (UTC)",
            "Action",
            "Target",
            "Outcome",
            "Act ms",
            "Verify ms",
            "Total ms",
            "Detail",
        ),
        tuple(timeline_rows),
        row_class="attempt",
        row_ids=tuple(f"attempt-{number}" for number in range(1, len(attempts) + 1)),
    )
    verification = Table(("#", "Check", "Observed", "Confirmed"), tuple(evidence_rows), row_class="evidence")
    return Section(
        "timeline",
        "Timeline",
        blocks=(
            f"{len(attempts)} attempt(s), in the order they started.",
            timeline,
            "Verification evidence, read back from the target system, by attempt number:",
            verification,
        ),
    )


def _still_alive_section(view: IncidentView) -> Section:
    blocks: list[str | Table] = []
    if view.closure is None:
        blocks.append(NOT_FINISHED)
    elif view.closure.still_alive:
        blocks.append(f"{len(view.closure.still_alive)} credential(s) are still alive and need attention.")
        blocks.append(
            Table(
                ("Credential kind", "Reference"),
                tuple(
                    (Cell(str(ref.kind), code=True), Cell(_ref_text(ref), code=True, tone="bad"))
                    for ref in view.closure.still_alive
                ),
                row_class="still-alive",
            )
        )
    elif not view.closure.alive_is_unknown:
        failed_but_all_dead = view.closure.status is IncidentStatus.FAILED and view.closure.credentials
        blocks.append(_FAILED_ALL_READ_BACK_DEAD if failed_but_all_dead else _NOTHING_ALIVE[view.closure.status])
    unknown = view.closure.in_state(CredentialState.UNKNOWN) if view.closure is not None else ()
    if unknown:
        blocks.append(f"{len(unknown)} credential(s) were never read back: they may be alive.")
        blocks.append(
            Table(
                ("Credential kind", "Reference"),
                tuple(
                    (Cell(str(ref.kind), code=True), Cell(_ref_text(ref), code=True, tone="warn")) for ref in unknown
                ),
                row_class="unknown",
            )
        )
    elif view.closure is not None and view.closure.alive_is_unknown and not view.closure.still_alive:
        blocks.append(_NOTHING_ALIVE[view.closure.status])
    if view.incident is not None:
        attempted = {attempt.result.action_id for attempt in view.attempts}
        never = [action for action in view.incident.plan.actions if action.action_id not in attempted]
        if never:
            blocks.append(f"{len(never)} planned action(s) have no recorded attempt.")
            blocks.append(
                Table(
                    ("Action", "Target"),
                    tuple((Cell(str(action.kind)), Cell(_ref_text(action.target), code=True)) for action in never),
                    row_class="not-attempted",
                )
            )
    return Section("still-alive", "Still alive", blocks=tuple(blocks))


def _final_section(view: IncidentView, status_text: str, status_tone: Tone) -> Section:
    rows = [(Cell("Final status"), Cell(status_text, tone=status_tone))]
    if view.closure is not None and view.closure.summary:
        rows.append((Cell("Closure summary"), Cell(view.closure.summary)))
    return Section("final", "Final status", blocks=(Table(("Field", "Value"), tuple(rows), key_value=True),))


# --- Markdown --------------------------------------------------------------------------------------

# CommonMark lets any ASCII punctuation be escaped with a backslash. These are the ones that could
# start emphasis, a link or an image, inline HTML or an entity, code, strike-through or a table cell.
# ('#' only matters at the start of a line, where no value is written; '_' inside a word is literal in GFM.)
_MARKDOWN_SPECIAL = {char: "\\" + char for char in "\\`*[]<>|&~"}


def _markdown_text(text: str) -> str:
    flat = " ".join(_visible(text).split())  # newlines and tabs would break a table row
    return "".join(_MARKDOWN_SPECIAL.get(char, char) for char in flat)


def _markdown_cell(cell: Cell) -> str:
    flat = " ".join(_visible(cell.text).split())
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


def _render_markdown(report: Report) -> str:
    lines = [f"# {_markdown_text(report.title)}", "", f"**Status: {_markdown_text(report.status_text)}**", ""]
    for section in report.sections:
        lines += [f"## {_markdown_text(section.title)}", ""]
        for block in section.blocks:
            lines += [*(_markdown_table(block) if isinstance(block, Table) else [_markdown_text(block)]), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# --- HTML ------------------------------------------------------------------------------------------

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
    return html.escape(_visible(text), quote=True)


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


def _render_html(report: Report) -> str:
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


# --- JSON ------------------------------------------------------------------------------------------


def _render_json(view: IncidentView, execution: ExecutionSummary | None) -> str:
    document = {
        "report": "rescind-incident-report",
        "version": 1,
        "incident_id": _incident_id(view),
        "finished": view.closure is not None,
        "status": str(view.closure.status) if view.closure is not None else "not_finished",
        "still_alive": [_ref_text(ref) for ref in view.closure.still_alive] if view.closure is not None else None,
        "unknown": [_ref_text(ref) for ref in view.closure.in_state(CredentialState.UNKNOWN)]
        if view.closure is not None
        else None,
        "alive_is_unknown": view.closure.alive_is_unknown if view.closure is not None else True,
        "timeline": [attempt.attempt_id for attempt in _in_time_order(view.attempts)],
        "view": view.model_dump(mode="json"),
        "execution": execution.model_dump(mode="json") if execution is not None else None,
    }
    return json.dumps(document, indent=2) + "\n"
