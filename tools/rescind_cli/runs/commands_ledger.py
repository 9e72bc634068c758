"""`rescind ledger` (the incidents, newest first, or one incident's records) and `rescind ledger push` (a local
ledger copied into a stack's)."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from rescind.exceptions import InvalidInput, LedgerConflict
from rescind_cli.direct import DirectTarget
from rescind_cli.options import DirectOption, JsonOption, ProfileOption, StackOption, StateDirOption
from rescind_cli.runs.boundary import EXIT_FAILED, CommandFailed, command_boundary, emit, open_target, say
from rescind_cli.runs.render import incident_summary, print_incident, print_incidents
from rescind_cli.targets import STACK_ENV, Target

if TYPE_CHECKING:
    from rescind.ledger.types import IncidentView

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """ISO 8601 (a time without zone is UTC), or a span back from now: 30m, 2h, 1d, 1w."""
    value = text.strip()
    relative = _RELATIVE.match(value.lower())
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: amount})
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("--since takes ISO 8601 (2026-11-24T10:00:00Z) or a span like 30m, 2h, 1d, 1w") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def ledger_command(
    context: typer.Context,
    incident: Annotated[str | None, typer.Option("--incident", help="Show this incident's records.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO 8601, or 30m, 2h, 1d, 1w.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many incidents.")] = 50,
    stack: StackOption = None,
    state_dir: StateDirOption = None,
    direct: DirectOption = False,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the ledger's incidents (newest first), or one incident's records; `rescind ledger push` copies a local one.

    In direct mode, the local ledger (RESCIND_LEDGER_FILE, else ~/.local/state/rescind/ledger.sqlite3), whose hash
    chain is checked first: a record changed outside Rescind is reported (exit 1).
    """
    if context.invoked_subcommand is not None:
        return
    holder: list[Target] = []
    with command_boundary(json_output, holder):
        moment = parse_since(since) if since else None
        target = open_target(stack, state_dir, profile, holder, direct=direct, json_output=json_output)
        if isinstance(target, DirectTarget):
            broken = target.ledger().verify_chain()
            if broken:
                raise CommandFailed(
                    f"the local ledger {target.ledger_path()} was changed outside Rescind: {broken[0]}",
                    EXIT_FAILED,
                    chain=broken,
                )
        ledger = target.ledger()
        if incident is not None:
            view = read_recorded_incident(target, incident.strip())
            if json_output:
                emit({"ok": True, "incident": view.model_dump(mode="json")})
            else:
                print_incident(view)
            return
        records = ledger.list_incidents(since=moment, limit=limit)
        summaries = [incident_summary(ledger.read_incident(record.incident_id)) for record in records]
        if json_output:
            emit({"ok": True, "since": moment.isoformat() if moment else None, "incidents": summaries})
        else:
            print_incidents(summaries)


def ledger_push_command(
    stack: StackOption = None,
    state_dir: StateDirOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Copy the local ledger (direct-mode runs) into a stack's ledger. Pushing twice writes each record once.

    The local ledger is RESCIND_LEDGER_FILE, else ~/.local/state/rescind/ledger.sqlite3. Its hash chain is checked
    first: a ledger changed outside Rescind is copied nowhere (exit 1).
    """
    from rescind.ledger.sqlite import SqliteLedger, push_local_ledger
    from rescind_cli.direct import local_ledger_path

    holder: list[Target] = []
    with command_boundary(json_output, holder):
        if not stack and state_dir is None and not os.environ.get(STACK_ENV):
            raise InvalidInput("say which stack receives the records: --stack NAME (or --state-dir for the local one)")
        target = open_target(stack, state_dir, profile, holder, json_output=json_output)
        path = local_ledger_path(os.environ)
        if not path.is_file():
            raise CommandFailed(f"no local ledger at {path}: nothing to push")
        try:
            report = push_local_ledger(SqliteLedger(path), target.ledger())
        except LedgerConflict as error:
            raise CommandFailed(str(error), EXIT_FAILED) from None
        document = {
            "ok": True,
            "from": str(path),
            "to": target.description,
            "written": report.written,
            "already_there": report.already_there,
            "local_claims_kept_local": report.skipped_claims,
        }
        if json_output:
            emit(document)
        else:
            written, already = report.written, report.already_there
            say(f"pushed {path} to {escape(target.description)}: {written} written, {already} already there")


def read_recorded_incident(target: Target, incident_id: str) -> IncidentView:
    """The incident's records in the target's ledger; a command failure when the ledger holds none of them."""
    view = target.ledger().read_incident(incident_id)
    if view.incident is None and not view.attempts and view.closure is None:
        raise CommandFailed(f"no incident {incident_id} in the ledger of {target.description}")
    return view
