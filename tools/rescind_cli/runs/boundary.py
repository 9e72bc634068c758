"""How a run command starts and ends: the target it acts on, and one line (or one JSON document) and an exit code.

Exit codes: 0 done, 1 failed or something left alive, 2 bad input or a refusal, 3 the run waits for approval,
4 still running when --timeout ran out, 130 interrupted (the run goes on).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from rescind.exceptions import ConfigurationError, InvalidInput, RescindError, VaultUnavailable
from rescind_cli.direct import DirectTarget, ScanMeter
from rescind_cli.options import console_for
from rescind_cli.progress import ScanProgress
from rescind_cli.targets import STACK_ENV, Target, TargetUnavailable, resolve_target

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_AWAITING_APPROVAL = 3
EXIT_STILL_RUNNING = 4
EXIT_INTERRUPTED = 130

stderr_console = Console(stderr=True, soft_wrap=True, highlight=False, emoji=False)


def stdout_console() -> Console:
    # emoji=False: a reference like `kv:secret:path` must not turn into an emoji.
    return console_for(highlight=False)


class CommandFailed(Exception):
    """Ends a command with one line and an exit code."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT, **document: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.document = document


def exit_code_of_closure(status: str) -> int:
    """How a run that ended in this process (direct mode) exits: 0 completed or a dry run, 2 refused, else 1."""
    return {"completed": EXIT_OK, "dry_run": EXIT_OK, "refused": EXIT_BAD_INPUT}.get(status, EXIT_FAILED)


def one_line(text: str, limit: int = 400) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def say(text: str) -> None:
    stderr_console.print(text)


def emit(document: dict[str, Any]) -> None:
    typer.echo(json.dumps(document, indent=2, default=str))


@contextmanager
def command_boundary(json_output: bool, target_holder: list[Target] | None = None) -> Iterator[None]:
    """The command boundary: every expected failure becomes one line (or one JSON document) and an exit code."""
    import botocore.exceptions
    import requests.exceptions

    try:
        try:
            yield
        finally:
            for target in target_holder or ():
                if isinstance(target, DirectTarget) and isinstance(target.meter, ScanMeter):
                    target.meter.close()
    except CommandFailed as failure:
        _fail(failure.message, failure.code, json_output, "CommandFailed", failure.document)
    except TargetUnavailable as error:
        _fail(str(error), EXIT_BAD_INPUT, json_output, "TargetUnavailable")
    except VaultUnavailable as error:
        _fail(f"{_vault_hint(target_holder)}: {error}", EXIT_FAILED, json_output, "VaultUnavailable")
    except RescindError as error:
        code = EXIT_BAD_INPUT if isinstance(error, (InvalidInput, ConfigurationError)) else EXIT_FAILED
        _fail(str(error), code, json_output, type(error).__name__)
    except requests.exceptions.RequestException as error:
        _fail(f"{_vault_hint(target_holder)}: {type(error).__name__}", EXIT_FAILED, json_output, "VaultUnavailable")
    except botocore.exceptions.NoCredentialsError:
        _fail(
            "no AWS credentials found: set AWS_PROFILE (or run `aws sso login`), or omit --stack for the local stack",
            EXIT_BAD_INPUT,
            json_output,
            "NoCredentialsError",
        )
    except botocore.exceptions.EndpointConnectionError as error:
        _fail(
            f"AWS endpoint unreachable ({error}): if this is the local stack, run `rescind local up`",
            EXIT_FAILED,
            json_output,
            "EndpointConnectionError",
        )
    except botocore.exceptions.ClientError as error:
        info = error.response.get("Error", {})
        _fail(
            f"AWS refused {error.operation_name}: {info.get('Code', '')}: {info.get('Message', '')}",
            EXIT_FAILED,
            json_output,
            str(info.get("Code") or "ClientError"),
        )
    except botocore.exceptions.BotoCoreError as error:
        _fail(f"AWS call failed: {error}", EXIT_FAILED, json_output, type(error).__name__)
    except _vault_error_types() as error:
        _fail(f"Vault refused the call: {type(error).__name__}: {error}", EXIT_FAILED, json_output, "VaultError")


def _vault_error_types() -> tuple[type[Exception], ...]:
    import hvac.exceptions

    return (hvac.exceptions.VaultError,)


def _vault_hint(target_holder: list[Target] | None) -> str:
    from rescind_cli.targets import LocalStackTarget

    target = target_holder[0] if target_holder else None
    if isinstance(target, LocalStackTarget):
        return (
            f"OpenBao of the local stack at {target.local.openbao_addr} is unreachable: "
            "see `rescind local status`, restart it with `rescind local down` and `rescind local up`"
        )
    return "Vault is unreachable: check VAULT_ADDR and VAULT_TOKEN (or run `rescind local up` and omit --stack)"


def _fail(message: str, code: int, json_output: bool, error_type: str, extra: dict[str, Any] | None = None) -> NoReturn:
    line = one_line(message)
    if json_output:
        emit({"ok": False, "error_type": error_type, "message": line, **(extra or {})})
    stderr_console.print(f"[red]error:[/] {escape(line)}")
    raise typer.Exit(code)


def open_target(
    stack: str | None,
    state_dir: Path | None,
    profile: str | None,
    holder: list[Target],
    *,
    direct: bool = False,
    protected: Sequence[str] | None = None,
    json_output: bool = False,
    max_requests_per_second: float | None = None,
) -> Target:
    """The target by TARGET_RULE; the first line of every run says which, and why (stderr; `target` in JSON)."""
    if stack is None and state_dir is None and not direct:
        stack = os.environ.get(STACK_ENV) or None
    target, why = resolve_target(
        stack=stack, state_dir=state_dir, profile=profile, direct=direct, protected=tuple(protected or ())
    )
    holder.append(target)
    if isinstance(target, DirectTarget):
        target.meter = ScanMeter(max_requests_per_second, None if json_output else ScanProgress(stderr_console))
    elif max_requests_per_second is not None:
        raise InvalidInput("--max-requests-per-second paces direct mode only: a stack's functions pace themselves")
    if not json_output:
        say(f"target: {escape(target.description)} ({why})")
    return target
