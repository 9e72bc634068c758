"""What a report is made of: the execution summary the caller may give, and one neutral structure (sections of
paragraphs and tables of cells) that each format renders."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from rescind.deferred_builds import DEFER_MODEL_BUILDS


class ExecutionSummary(BaseModel):
    """What Step Functions knows about the run: the CLI fills it from DescribeExecution and the history."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

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


def visible(text: str) -> str:
    """Control and format characters (a bidi override, a zero-width space) shown as escapes, not obeyed."""
    return "".join(
        f"\\u{ord(char):04x}" if unicodedata.category(char) in ("Cc", "Cf") and char not in "\n\r\t" else char
        for char in text
    )
