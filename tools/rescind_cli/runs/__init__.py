"""The run commands: `rescind plan | revoke | approve | deny | status | ledger | report | replay`.

    rescind plan --workload spiffe://example.org/ns/payments/sa/api
    rescind revoke --credential vault-token:accessor:CaTti28wsXOQA02COE2ygP2B --reason "leaked in #1234" --yes
    rescind approve manual-3f9c0d1e2a4b5c6d7e8f
    rescind report manual-3f9c0d1e2a4b5c6d7e8f --format html --output incident.html

Each acts on the local stack by default, or on a deployed stack with `--stack NAME` (or RESCIND_STACK); see
`rescind_cli.targets`. `register(app)` adds them to the top-level `rescind` app.

Exit codes: 0 done (a revoke: every planned credential verified dead), 1 failed or something left alive,
2 bad input or a refusal (one line on stderr, no traceback), 3 the run waits for approval, 4 still running
when --timeout ran out, 130 interrupted (the run goes on). With --json, stdout holds one JSON document,
also for an error.

An EXECUTION is an execution ARN, or the name of an execution of the manual-revocation or offboarding
state machine (its incident id, e.g. `manual-...` or `offboard-...`).

The package, by concern: `boundary` (how a command starts on its target and ends: one line or one JSON
document, and an exit code), `subject` and `planning` (what a run is about and its plan), `stack_functions`
(the signed calls to the stack's function URLs), `history` (an execution's progress read from its history),
`following` (following a run to its end), `event_delivery` (an event handed to the stack's rules or its
webhook), `render` (the tables), and one `commands_*` module for each group of commands.
"""

from __future__ import annotations

import typer

from rescind_cli.runs.commands_approval import approve_command, deny_command
from rescind_cli.runs.commands_ledger import ledger_command, ledger_push_command
from rescind_cli.runs.commands_replay import replay_command
from rescind_cli.runs.commands_report import report_command
from rescind_cli.runs.commands_revoke import plan_command, revoke_command
from rescind_cli.runs.commands_status import status_command


def register(app: typer.Typer) -> None:
    """Add the run commands to the top-level `rescind` app."""
    app.command("plan")(plan_command)
    app.command("revoke")(revoke_command)
    app.command("approve")(approve_command)
    app.command("deny")(deny_command)
    app.command("status")(status_command)
    ledger_app = typer.Typer()
    ledger_app.callback(invoke_without_command=True)(ledger_command)
    ledger_app.command("push")(ledger_push_command)
    app.add_typer(ledger_app, name="ledger")
    app.command("report")(report_command)
    app.command("replay")(replay_command)
