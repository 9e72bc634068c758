"""What every `rescind` command shares: its options, and how a typed error ends it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from rescind.exceptions import ConfigurationError, InvalidInput, RescindError
from rescind_cli.targets import STACK_ENV

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout, for scripts.")]
StackOption = Annotated[
    str | None,
    typer.Option("--stack", help=f"A deployed stack's name (or {STACK_ENV}); default: the local stack."),
]
StateDirOption = Annotated[
    Path | None,
    typer.Option("--state-dir", help="The local stack's directory (default: RESCIND_LOCAL_DIR or ./.rescind-local)."),
]
DirectOption = Annotated[
    bool,
    typer.Option(
        "--direct",
        help="Act on the Vault at VAULT_ADDR directly, with no stack (also chosen when VAULT_ADDR is set and no "
        "--stack or --state-dir is given); AWS from the usual chain; the record goes to a local ledger.",
    ),
]
ProtectedOption = Annotated[
    list[str] | None,
    typer.Option("--protected", help="Direct mode: a workload never to touch (repeatable), beside the config file's."),
]
MaxRateOption = Annotated[
    float | None,
    typer.Option(
        "--max-requests-per-second",
        help="Direct mode: pace the calls to Vault (discovery looks up every token on the server without a stack).",
    ),
]
ProfileOption = Annotated[str | None, typer.Option("--profile", help="AWS profile for --stack (default: the chain).")]
WorkloadOption = Annotated[
    str | None, typer.Option("--workload", help="The workload: its SPIFFE ID or cloud id. Everything it holds.")
]
CredentialOption = Annotated[
    list[str] | None,
    typer.Option(
        "--credential",
        help="A credential reference (repeatable), e.g. vault-token:accessor:<accessor>, pki:<mount>:<serial>, "
        "aws-key:<account>:<user>:<key id>, kv:<mount>:<path>.",
    ),
]
TimeoutOption = Annotated[
    float | None, typer.Option("--timeout", help="Stop following after this many seconds (the run goes on).")
]

# Piped output is read by scripts and greps: rows are never folded at Rich's default 80 columns.
PIPED_WIDTH = 10_000


def console_for(*, stderr: bool = False, **options: Any) -> Console:
    """A Console at the terminal's width, or one wide enough that no row wraps when the stream is not a tty."""
    import sys

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else PIPED_WIDTH
    return Console(stderr=stderr, width=width, emoji=False, **options)


_stderr = Console(stderr=True, emoji=False)


@contextmanager
def exit_on_typed_error(json_output: bool) -> Iterator[None]:
    """A typed error ends the command with its message (exit 2 for bad input or configuration, 1 otherwise), JSON
    when asked."""
    try:
        yield
    except RescindError as error:
        code = 2 if isinstance(error, (InvalidInput, ConfigurationError)) else 1
        if json_output:
            typer.echo(json.dumps({"ok": False, "error_type": type(error).__name__, "message": str(error)}, indent=2))
        else:
            _stderr.print(f"[red]{type(error).__name__}[/]: {error}")
        raise typer.Exit(code) from None
