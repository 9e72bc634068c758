"""Direct mode: the CLI acts on a Vault (and the AWS account of the usual credential chain) with no stack.

For the responder at 3 a.m. whose Rescind stack is not deployed, is in another account, or is what broke. The
same plan, guard, engine, verification and closure as the state machine, run in-process; the record goes to a
local ledger (`rescind.ledger.sqlite`, under the user's state directory) that `rescind ledger` reads.

- Vault: VAULT_ADDR, with VAULT_TOKEN or ~/.vault-token (what `bao login` / `vault login` write).
- AWS: the usual chain (AWS_PROFILE, ~/.aws, the environment). With no credentials at all the run is
  Vault-only and says so once; AWS references are then refused rather than skipped silently.
- Scope and guard: the same settings the functions read (rescind.config.PlanSettings: PKI_MOUNTS, KV_MOUNTS,
  APPROLE_MOUNTS, LEASE_MOUNTS, AWS_ACCOUNT_IDS, WORKLOAD_METADATA_KEY, BLAST_RADIUS_CAP, PROTECTED_WORKLOADS),
  from the environment or, in lower case, ~/.config/rescind/config.toml.
- Above the blast-radius cap there is no approver to wait for: the run is refused unless a second person's
  name and the ticket are given (`--approved-by NAME --ticket ID`), and both are recorded.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rescind.config import CrossAccountSettings, GitHubSettings, PlanSettings
from rescind.discovery import DiscoveryScope
from rescind.exceptions import ConfigurationError, InvalidInput
from rescind.guard import GuardFacts, GuardPolicy
from rescind_cli.targets import TargetUnavailable

if TYPE_CHECKING:
    import boto3
    import hvac

    from rescind.aws.session import AwsClientFactory
    from rescind.inventory.base import Inventory
    from rescind.ledger.sqlite import SqliteLedger
    from rescind.models import Action, ActionResult
    from rescind.response.types import ResponseRequest

LEDGER_FILE_ENV = "RESCIND_LEDGER_FILE"
# A throttled or unreachable backend, tried again as the state machine's Retry would (rescind.retrying).
_TRANSIENT_ATTEMPTS = 3
_RETRY_DELAY_SECONDS = 0.5
CONFIG_FILE_ENV = "RESCIND_CONFIG_FILE"


def local_ledger_path(environ: Mapping[str, str]) -> Path:
    """RESCIND_LEDGER_FILE, else the user's state directory (rescind.ledger.sqlite.default_ledger_path)."""
    from rescind.ledger.sqlite import default_ledger_path

    named = environ.get(LEDGER_FILE_ENV)
    return Path(named) if named else default_ledger_path()


def token_from_cli_helper(environ: Mapping[str, str]) -> str:
    """The token `bao print token` (or `vault print token`) would use: its configured token helper. "" if none.

    The value goes from the helper's stdout into the client and nowhere else; a failing helper says nothing.
    """
    import shutil
    import subprocess

    for name in ("bao", "vault"):
        binary = shutil.which(name)
        if binary is None:
            continue
        try:
            # The user's own Vault CLI, no shell, fixed arguments.
            printed = subprocess.run(
                [binary, "print", "token"], capture_output=True, text=True, timeout=10, env=dict(environ), check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        token = printed.stdout.strip()
        if printed.returncode == 0 and token:
            return token
    return ""


def default_config_path() -> Path:
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "rescind" / "config.toml"


def read_config_file(path: Path) -> dict[str, str]:
    """The settings of ~/.config/rescind/config.toml as the variables they stand for; {} when there is none."""
    if not path.is_file():
        return {}
    try:
        document = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"{path} is not valid TOML: {str(error)[:200]}") from None
    known = PlanSettings.variables()
    settings: dict[str, str] = {}
    for key, value in document.items():
        variable = key.upper()
        if variable not in known:
            raise ConfigurationError(
                f"{path}: unknown setting {key!r} (known: {', '.join(name.lower() for name in known)})"
            )
        settings[variable] = ",".join(str(item) for item in value) if isinstance(value, list) else str(value)
    return settings


class ScanMeter:
    """Paces every Vault request to a rate, and counts the token lookups of discovery's scan for a progress bar.

    Vault names no workload's tokens, so discovery without the issuance index looks up every token on the
    server: on a large Vault that is the longest part of a run, and it should neither hide nor flood the server.
    """

    def __init__(
        self,
        max_requests_per_second: float | None,
        on_progress: Callable[[int, int | None], None] | None = None,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        import time

        if max_requests_per_second is not None and max_requests_per_second <= 0:
            raise InvalidInput("--max-requests-per-second must be more than 0")
        self._interval = 1.0 / max_requests_per_second if max_requests_per_second else 0.0
        self._on_progress = on_progress
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        self._next_at = 0.0
        self.requests = 0
        self.tokens_total: int | None = None
        self.tokens_looked_up = 0

    def close(self) -> None:
        """End the progress display, if any (the command is over)."""
        close = getattr(self._on_progress, "close", None)
        if callable(close):
            close()

    def attach(self, client: hvac.Client) -> hvac.Client:
        send = client.adapter.request

        def paced(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            self._wait_turn()
            response = send(method, url, *args, **kwargs)
            self._count(method, url, response)
            return response

        client.adapter.request = paced
        return client

    def _wait_turn(self) -> None:
        if self._interval:
            now = self._clock()
            if now < self._next_at:
                self._sleep(self._next_at - now)
            self._next_at = max(now, self._next_at) + self._interval
        self.requests += 1

    def _count(self, method: str, url: str, response: Any) -> None:
        if method.upper() == "LIST" and url.rstrip("/").endswith("auth/token/accessors"):
            # hvac's JSON adapter answers a 200 with the decoded body; each page adds its keys.
            data = response.get("data") if isinstance(response, dict) else None
            keys = data.get("keys") if isinstance(data, dict) else None
            self.tokens_total = (self.tokens_total or 0) + len(keys or [])
        elif url.rstrip("/").endswith("auth/token/lookup-accessor"):
            self.tokens_looked_up += 1
        else:
            return
        if self._on_progress is not None:
            self._on_progress(self.tokens_looked_up, self.tokens_total)


@dataclass
class DirectTarget:
    """A Vault and the usual AWS chain, acted on in-process; the record goes to a local SQLite ledger."""

    vault_addr: str
    environ: Mapping[str, str]
    profile: str | None = None
    extra_protected: tuple[str, ...] = ()
    meter: ScanMeter | None = None
    _session: boto3.Session | None = None
    _factory: AwsClientFactory | None = None
    _aws_checked: bool = False
    _read_settings: PlanSettings | None = None

    @classmethod
    def load(
        cls, *, profile: str | None = None, protected: tuple[str, ...] = (), environ: Mapping[str, str] | None = None
    ) -> DirectTarget:
        source = dict(os.environ if environ is None else environ)
        addr = source.get("VAULT_ADDR", "").strip()
        if not addr:
            raise InvalidInput("direct mode needs VAULT_ADDR: the Vault or OpenBao to act on")
        return cls(vault_addr=addr, environ=source, profile=profile, extra_protected=protected)

    # --- where -----------------------------------------------------------------------------------------

    @property
    def description(self) -> str:
        account = self.aws_account_id()
        aws = f"AWS account {account}" if account else "no AWS side"
        return f"Vault {self.vault_addr} directly, {aws}"

    @property
    def selector(self) -> str:
        return "--direct"

    def ledger_path(self) -> Path:
        return local_ledger_path(self.environ)

    # --- clients ---------------------------------------------------------------------------------------

    def vault(self) -> hvac.Client:
        from rescind.vault.client import build_vault_client

        token = self.environ.get("VAULT_TOKEN", "")
        token_file = Path.home() / ".vault-token"
        if not token and token_file.is_file():
            token = token_file.read_text().strip()
        if not token:
            token = token_from_cli_helper(self.environ)
        if not token:
            raise InvalidInput("set VAULT_TOKEN (or log in with `bao login` / `vault login`) to act on Vault")
        client = build_vault_client(self.vault_addr, token, namespace=self.environ.get("VAULT_NAMESPACE") or None)
        return self.meter.attach(client) if self.meter is not None else client

    def aws_skipped_because(self) -> str | None:
        """Why there is no AWS side (no credentials in the usual chain), or None when there is one."""
        return None if self.aws_factory() is not None else "no AWS credentials in the usual chain"

    def aws_factory(self) -> AwsClientFactory | None:
        if not self._aws_checked:
            import boto3

            from rescind.aws.session import AwsClientFactory

            self._aws_checked = True
            session = boto3.Session(profile_name=self.profile)
            if session.get_credentials() is not None:
                self._session = session
                self._factory = AwsClientFactory(
                    purpose="cli-direct",
                    external_id=CrossAccountSettings.from_environ(self.environ).cross_account_external_id,
                    session=session,
                )
        return self._factory

    def aws_account_id(self) -> str | None:
        factory = self.aws_factory()
        return factory.caller_identity().account_id if factory is not None else None

    def client(self, service: str) -> Any:
        factory = self.aws_factory()
        if factory is None or self._session is None:
            raise TargetUnavailable("direct mode has no AWS credentials: set AWS_PROFILE (or run `aws sso login`)")
        return self._session.client(service)  # type: ignore[call-overload]

    def ledger(self) -> SqliteLedger:
        from rescind.ledger.sqlite import SqliteLedger

        return SqliteLedger(self.ledger_path())

    def inventory(self) -> Inventory | None:
        return None

    def state_machine_arn(self, logical_id: str) -> str:
        raise TargetUnavailable(f"direct mode runs in-process and has no {logical_id}: give --stack NAME for it")

    def function_name(self, logical_id: str) -> str:
        raise TargetUnavailable(f"direct mode runs in-process and has no {logical_id}: give --stack NAME for it")

    def function_url(self, logical_id: str) -> str:
        raise TargetUnavailable(f"direct mode runs in-process and has no {logical_id}: give --stack NAME for it")

    def signing_credentials(self) -> tuple[Any, str]:
        raise TargetUnavailable("direct mode has no stack to answer: approvals are given with --approved-by")

    def caller_arn(self) -> str:
        factory = self.aws_factory()
        if factory is not None:
            return factory.caller_identity().arn
        return f"local user {getpass.getuser()}"

    # --- scope and guard ---------------------------------------------------------------------------------

    def _settings(self) -> PlanSettings:
        """Read once per command: the plan, the guard and the acting step see the same configuration. The
        environment overrides the config file."""
        if self._read_settings is None:
            settings = read_config_file(Path(self.environ.get(CONFIG_FILE_ENV) or default_config_path()))
            settings.update({name: self.environ[name] for name in PlanSettings.variables() if self.environ.get(name)})
            self._read_settings = PlanSettings.from_environ(settings)
        return self._read_settings

    def discovery_scope(self) -> DiscoveryScope:
        scope = self._settings().discovery_scope(default_account=self.aws_account_id())
        # Without AWS credentials there is no account to look in.
        return scope if self.aws_factory() is not None else DiscoveryScope(**{**scope.__dict__, "aws_account_ids": ()})

    def guard_policy(self) -> GuardPolicy:
        return self._settings().guard_policy(also_protected=self.extra_protected)


# --- the run, in-process --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirectRun:
    """How a direct run ended: what the closure says, and every action's result."""

    incident_id: str
    status: str
    summary: str
    still_alive: tuple[str, ...]
    results: tuple[ActionResult, ...]


def run_direct_revocation(
    target: DirectTarget,
    request: ResponseRequest,
    *,
    approved_by: str | None,
    ticket: str | None,
    on_result: Callable[[ActionResult], None] | None = None,
    flow: str = "manual_revocation",
) -> DirectRun:
    """Plan task, approval, contain, revoke, verify and close, as the state machine runs them, in this process.

    The incident, every attempt and the closure go to the local ledger. The guard decides again here, on the
    same reads, in the flow's own plan task (`plan_offboarding`, or `plan_leak_response` for a leak), which
    records the plan (the caller showed a preview of it before any confirmation).
    """
    from rescind.engine.factory import build_engine
    from rescind.engine.tasks import ExecuteActionRequest, execute_and_record
    from rescind.engine.verification import verify_actions
    from rescind.exceptions import TransientError
    from rescind.guard import refuse_guarded_target, rotates_database_root
    from rescind.leaks.plan import plan_leak_response
    from rescind.ledger.closing import CloseRequest, RunOutcome, close_incident
    from rescind.ledger.types import ApprovalDecision, ApprovalVerdict
    from rescind.models.refs import format_ref
    from rescind.models.results import utc_now
    from rescind.offboarding.plan import plan_offboarding
    from rescind.response.types import GuardDecision
    from rescind.retrying import retry_transient

    vault, aws, ledger = target.vault(), target.aws_factory(), target.ledger()
    if flow == "leak_response":
        recorded = plan_leak_response(request, vault=vault, aws=aws, ledger=ledger, policy=target.guard_policy())
    else:
        recorded = plan_offboarding(
            request,
            vault=vault,
            aws=aws,
            inventory=None,
            ledger=ledger,
            scope=target.discovery_scope(),
            policy=target.guard_policy(),
        )
    subject = request.workload_id

    def close(outcome: RunOutcome, reason: str, results: tuple[ActionResult, ...] = (), **extra: Any) -> DirectRun:
        request_to_close = CloseRequest(
            incident_id=request.incident_id,
            flow=flow,
            subject=subject,
            outcome=outcome,
            reason=reason[:1000],
            **extra,
        )
        closed = close_incident(request_to_close, ledger)
        closure = ledger.read_incident(request.incident_id).closure
        alive = tuple(format_ref(ref) for ref in closure.still_alive) if closure is not None else ()
        return DirectRun(request.incident_id, str(closed.status), closed.notification.message, alive, results)

    if recorded.decision is GuardDecision.REFUSE:
        return close(RunOutcome.REFUSED, recorded.decision_reason)
    if recorded.decision is GuardDecision.NOTHING_TO_DO:
        return close(RunOutcome.NOTHING_TO_DO, recorded.decision_reason)
    if recorded.decision is GuardDecision.DRY_RUN:
        return close(RunOutcome.DRY_RUN, recorded.decision_reason)
    aws_targets = [a for a in (*recorded.containment, *recorded.actions) if getattr(a.target, "account_id", None)]
    if aws is None and aws_targets:
        return close(
            RunOutcome.REFUSED, f"{len(aws_targets)} AWS credential(s) named, and {target.aws_skipped_because()}"
        )
    roots = [action.target.key for action in recorded.actions if rotates_database_root(action)]
    if roots:
        # --approved-by is a name typed by the responder: a root rotation needs an approval the stack records
        return close(
            RunOutcome.REFUSED,
            f"rotating a database root credential ({', '.join(roots[:10])}) is never done in direct mode, which "
            "has no approval step: run it through the stack's manual run (rescind revoke --credential "
            "vault-db-root:<mount>:<connection> without --direct), which waits for a second person's approval",
        )
    if recorded.decision is GuardDecision.NEEDS_APPROVAL:
        if not approved_by or not ticket:
            return close(
                RunOutcome.DENIED,
                f"{recorded.decision_reason}; direct mode has no approver to wait for: run again with "
                "--approved-by NAME --ticket ID once a second person agreed",
            )
        if approved_by.strip().lower() == (request.trigger.requested_by or "").strip().lower():
            return close(RunOutcome.DENIED, "the approver must be another person than the requester")
        ledger.record_approval(
            ApprovalDecision(
                incident_id=request.incident_id,
                execution_arn=f"direct:{request.incident_id}",
                verdict=ApprovalVerdict.APPROVED,
                decided_by=f"{approved_by} (named with --approved-by, ticket {ticket})"[:500],
                decided_at=utc_now(),
                reason=f"ticket {ticket}",
            )
        )

    engine = build_engine(vault, aws_factory=aws)
    actions = (*recorded.containment, *recorded.actions)
    scope, policy = target.discovery_scope(), target.guard_policy()

    def refuse_if_guarded(action: Action) -> GuardFacts:
        return refuse_guarded_target(vault, aws, action, policy, metadata_key=scope.metadata_key)

    # The acting task's own path, action by action: scope check, guard, act, verify, record.
    results: list[ActionResult] = []
    for number, action in enumerate(actions):

        def attempt(attempt: int, number: int = number, action: Action = action) -> ActionResult:
            request_one = ExecuteActionRequest(
                incident_id=request.incident_id, attempt_id=f"direct-{number}-{attempt}", action=action
            )
            return execute_and_record(
                request_one, engine=engine, ledger=ledger, scope=scope, refuse_if_guarded=refuse_if_guarded
            )

        try:
            result = retry_transient(attempt, attempts=_TRANSIENT_ATTEMPTS, base_delay_seconds=_RETRY_DELAY_SECONDS)
        except TransientError:
            continue  # each attempt recorded as failed; the read-back below says where it stands
        results.append(result)
        if on_result is not None:
            on_result(result)
    report = verify_actions(engine, actions, scope=scope)
    return close(RunOutcome.VERIFIED, "", tuple(results), still_alive=report.still_alive)


# --- a leak event, answered from the laptop ----------------------------------------------------------------


@dataclass(frozen=True)
class DirectLeakAnswer:
    """What a direct replay of a leak event did for each alert: a run, or why there was none."""

    runs: tuple[DirectRun, ...]
    unresolved: tuple[str, ...]  # one line per alert or entity Rescind could not act on
    recorded: str | None  # the event asks for no action (a sample finding, a resolved alert): why


def answer_leak_event_directly(
    target: DirectTarget, event: Any, *, on_result: Callable[[ActionResult], None] | None = None
) -> DirectLeakAnswer:
    """Parse, locate, guard, kill, verify and record a leak event in this process, as the leak flow does.

    `event` is an EventBridge event, or a GitHub webhook delivery as the function URL receives it (the
    responder holds it; the stack's signature check does not apply here): its alert's value is read from
    GitHub with GITHUB_TOKEN (GITHUB_API_URL for GitHub Enterprise Server). There is no fingerprint index here:
    a KV value is reported unresolved, with why. Every incident goes to the local ledger.
    """
    from rescind.leaks.locate import LeakLocator
    from rescind.leaks.start import (
        DEFAULT_DEDUP_WINDOW,
        leak_response_request,
        record_event_only,
        record_unresolved_entities,
        record_unresolved_leak,
    )
    from rescind.leaks.triggers import parse_leak_event
    from rescind.leaks.types import LocatedLeak
    from rescind.models.results import utc_now

    parsed = parse_leak_event(github_delivery_as_bus_event(target, event) if _is_github_delivery(event) else event)
    ledger = target.ledger()

    def notify(subject: str, message: str) -> None:
        return None  # the CLI prints the answer itself

    if parsed.record_only is not None:
        record_event_only(parsed, ledger=ledger, notify=notify)
        return DirectLeakAnswer(runs=(), unresolved=(), recorded=parsed.record_only)
    fetcher, key_id_finder = _github_readers(target.environ)
    locator = LeakLocator(
        target.vault(),
        target.discovery_scope(),
        aws=target.aws_factory(),
        github_fetcher=fetcher,
        github_key_id_finder=key_id_finder,
    )
    runs: list[DirectRun] = []
    unresolved: list[str] = []
    for alert in parsed.alerts:
        located = locator.locate(alert)
        if not isinstance(located, LocatedLeak):
            record_unresolved_leak(alert, located.why, ledger=ledger, notify=notify)
            unresolved.append(located.why)
            continue
        claim = ledger.claim_response(located.dedup_key, utc_now(), DEFAULT_DEDUP_WINDOW)
        request = leak_response_request(alert, located, claim.incident_id)
        runs.append(
            run_direct_revocation(
                target, request, approved_by=None, ticket=None, on_result=on_result, flow="leak_response"
            )
        )
    if parsed.unresolved:
        record_unresolved_entities(parsed, ledger=ledger, notify=notify)
        unresolved.extend(parsed.unresolved)
    return DirectLeakAnswer(runs=tuple(runs), unresolved=tuple(unresolved), recorded=None)


def _is_github_delivery(document: Any) -> bool:
    headers = document.get("headers") if isinstance(document, dict) else None
    return isinstance(headers, dict) and "x-github-event" in {str(key).lower() for key in headers}


def github_delivery_as_bus_event(target: DirectTarget, delivery: dict[str, Any]) -> dict[str, Any]:
    """The event the webhook function would put on the trigger bus for this delivery, built by the same parser."""
    import base64
    import json

    from rescind.leaks.github import DETAIL_TYPE, EVENT_SOURCE, parse_secret_scanning_delivery

    body = str(delivery.get("body") or "")
    raw = base64.b64decode(body) if delivery.get("isBase64Encoded") else body.encode()
    notice = parse_secret_scanning_delivery({str(k): str(v) for k, v in delivery["headers"].items()}, raw)
    return {
        "version": "0",
        "id": notice.delivery_id,
        "detail-type": DETAIL_TYPE,
        "source": EVENT_SOURCE,
        "account": target.aws_account_id() or "000000000000",
        "time": notice.received_at.isoformat().replace("+00:00", "Z"),
        "region": os.environ.get("AWS_REGION") or "us-east-1",
        "resources": [],
        "detail": json.loads(notice.model_dump_json()),
    }


def _github_readers(environ: Mapping[str, str]) -> tuple[Any, Any]:
    """GitHub's alert value and the key id beside an AWS secret key, read with the responder's GITHUB_TOKEN (its
    own token, not the stack's secret) on the functions' GITHUB_API_URL setting."""
    token = environ.get("GITHUB_TOKEN", "")
    if not token:
        return None, None
    api_url = GitHubSettings.from_environ(environ).github_api_url

    def fetch(repository: str, alert_number: int) -> str:
        from rescind.leaks.github import fetch_alert_secret

        return fetch_alert_secret(api_url, token, repository, alert_number)

    def find(repository: str, alert_number: int) -> list[str]:
        from rescind.leaks.github import find_access_key_ids_beside_alert

        return find_access_key_ids_beside_alert(api_url, token, repository, alert_number)

    return fetch, find
