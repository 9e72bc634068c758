"""1. Leak to dead: for a Vault token (also one with an identity entity, among thousands of other tokens), an AppRole
secret-id, a KV value and an AWS access key, the generic `Secret Leaked` event through the template's rule, the start
function and the leak-response state machine (moto, handlers in-process and warm, real OpenBao) until the credential
is verified dead, beside the bare hvac/boto3 calls that do the same.

Clocks from the event in: time to kill, when a watcher outside Rescind (its own thread and client) first sees the
leaked credential refused (the start function kills first), and time to verified and recorded, when the execution
has succeeded and its ledger closure reads back completed. Time to kill is also taken from the start function's
invocation (`StartFunctionClock`): from `route_event`, it includes the local EventBridge's rule matching and moto's
Lambda invoke, which stand in for AWS's delivery and have no counterpart in the floor. The floor is watched by the
same watcher."""

from __future__ import annotations

import gc
import hashlib
import json
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench.calls import UNCOUNTED_THREAD_PREFIX, CallCounts, counting_calls
from bench.harness import (
    REPO_ROOT,
    cell,
    log,
    median,
    phases_from_history,
    ratio,
    spread,
    stdout_to_file,
    verdict,
    verdict_text,
)

WANTED = "verified and recorded at most 10x the bare floor"
WANTED_KILL = "killed (refused, seen from outside) at most 1.5x the bare lookup-and-kill floor"
ENTITY_BACKGROUND_TOKENS = 2_000  # the other live tokens on the server when a token with an entity leaks
LEAK_KINDS: dict[str, str] = {
    "vault_token": "a Vault token leaked by value: `auth/token/lookup` → accessor, revoke by accessor, read back",
    "vault_token_entity": (
        "an AppRole login's token (it has an identity entity, the only live token of it) leaked by value, on a "
        f"server with {ENTITY_BACKGROUND_TOKENS:,} other live tokens: `auth/token/lookup` → accessor and entity, "
        "revoke by accessor, read back; whether the entity holds no other token (then it is disabled) is read "
        "after the kill"
    ),
    "vault_secret_id": (
        "an AppRole secret-id leaked by value: `secret-id/lookup` on the mount's roles → accessor, destroyed by "
        "accessor, read back"
    ),
    "kv_value": (
        "a KV v2 field value leaked by its SHA-256 (`secret_sha256`), found through the fingerprint index: the "
        "secret rotated (4 steps) and its previous versions destroyed, read back"
    ),
    "aws_access_key": (
        "an IAM access key id (moto): `get_access_key_last_used` → user, deactivated, deleted (a leak has no "
        "grace period), read back"
    ),
}
# The smoke run's kinds: all but the one that seeds thousands of tokens first.
SMOKE_LEAK_KINDS = ("vault_token", "vault_secret_id", "kv_value", "aws_access_key")
LEAK_FLOORS: dict[str, str] = {
    "vault_token": "`auth/token/lookup` (value → accessor), `revoke-accessor`, `lookup-accessor` (fails)",
    "vault_token_entity": "as vault_token: `auth/token/lookup`, `revoke-accessor`, `lookup-accessor` (fails)",
    "vault_secret_id": "`secret-id/lookup` on its role (value → accessor), `secret-id-accessor/destroy`, "
    "`secret-id-accessor/lookup` (fails)",
    "kv_value": "read metadata, write a new version (cas), destroy the previous versions, read metadata back",
    "aws_access_key": "`get_access_key_last_used` (→ user), `update_access_key` Inactive, `delete_access_key`, "
    "`list_access_keys`",
}
LEAK_TARGET_RATIO = 10.0  # leak → verified and recorded (issue 18)
KILL_TARGET_RATIO = 1.5  # leak → killed, seen from outside (issue 18)
# How each kind is seen refused from outside; a KV value has no reversible kill (it is rotated by the run).
KILL_WATCHED: dict[str, str] = {
    "vault_token": "`auth/token/lookup-self` with the leaked token answers 403",
    "vault_token_entity": "`auth/token/lookup-self` with the leaked token answers 403",
    "vault_secret_id": "`secret-id/lookup` of the leaked value on its role (the watcher's own client) finds nothing "
    "(a login with it would be refused; polling logins would mint a token each time)",
    "aws_access_key": (
        "the key's status, read by IAM `list-access-keys` on the watcher's own client, is not Active (moto does not "
        "authenticate requests, so a call made with the leaked key itself would not fail)"
    ),
}
KILL_WATCH_PAUSE_SECONDS = 0.0005  # between the watcher's checks: its resolution is this plus one check
# The interpreter's thread switch interval while a watch runs, on both sides alike (Python's default is 5 ms). The
# watcher shares the process with moto, whose in-process answers hold the GIL where AWS's would wait on the network:
# at the default, each step of a check could wait a whole interval behind them, after the kill.
KILL_WATCH_SWITCH_SECONDS = 0.0002
TOKEN_KINDS = frozenset({"vault_token", "vault_token_entity"})  # leaked as the generic event's `vault_token`
WATCHED_FROM_A_PROCESS = TOKEN_KINDS | {"vault_secret_id"}  # see KillWatch
LEAK_KV_MOUNT = "secret"
LEAK_APPROLE_MOUNT = "approle"  # the template's default AppRoleMounts
LEAK_APPROLE_ROLE = "bench-leak"
START_FUNCTION = "start-leak-response"  # the start function's name, after the stack's prefix
LEAK_KV_FOLDER = "bench-leak"
KILL_FIRST_ATTEMPT = ".kill-first."  # the start function's attempts (rescind.leaks.kill)
# The leak response's timed states, in order: the same definition as offboarding.
LEAK_PHASES = ("Plan", "Contain", "Revoke", "Verify", "Close", "Notify", "PublishEvent")
LEAK_POLL_SECONDS = 0.005  # describe_execution polling: the clock's resolution on the state machine path
LEAK_TIMEOUT_SECONDS = 120.0


@dataclass
class Leak:
    """One fresh credential to leak. `secret` (a token value) stays in this process, for the event and the bare
    floor's lookup only: it is never logged, and never written to the results."""

    kind: str
    reference: str  # what the results may name: the accessor, mount/path or key id
    secret: str = field(default="", repr=False)
    sha256: str = ""  # of the leaked KV field value
    kv_path: str = ""
    kv_username: str = ""  # the KV secret's other field, which a rotation keeps
    iam_user: str = ""  # for the harness's own check afterwards; the floor looks the user up
    entity_id: str = ""  # a login token's entity, for the harness's own check that the run disabled it


def seed_leak(kind: str, vault: Any, iam: Any) -> Leak:
    """A fresh credential of `kind`, as a workload would hold it."""
    suffix = uuid.uuid4().hex[:12]
    if kind == "vault_token":
        created = vault.auth.token.create(
            policies=["default"], ttl="2h", meta={"spiffe_id": f"spiffe://bench.rescind/leak/{suffix}"}
        )
        return Leak(kind, str(created["auth"]["accessor"]), secret=str(created["auth"]["client_token"]))
    if kind == "vault_token_entity":
        auth = _approle_login(vault, f"{LEAK_APPROLE_ROLE}-entity-{suffix}")
        return Leak(kind, str(auth["accessor"]), secret=str(auth["client_token"]), entity_id=str(auth["entity_id"]))
    if kind == "kv_value":
        path = f"{LEAK_KV_FOLDER}/{suffix}/database"
        password = secrets.token_urlsafe(24)
        username = f"app_{suffix}"
        vault.secrets.kv.v2.create_or_update_secret(
            path, secret={"username": username, "password": password}, mount_point=LEAK_KV_MOUNT
        )
        # Its owner declares the rotation (the password; no external system checks it), as the seeded secrets do:
        # an undeclared secret is never written.
        from rescind_local.seed import KV_ROTATION

        vault.secrets.kv.v2.update_metadata(path, custom_metadata=KV_ROTATION, mount_point=LEAK_KV_MOUNT)
        return Leak(
            kind,
            f"{LEAK_KV_MOUNT}/{path}",
            sha256=hashlib.sha256(password.encode()).hexdigest(),
            kv_path=path,
            kv_username=username,
        )
    if kind == "vault_secret_id":
        _ensure_approle_role(vault)
        generated = vault.auth.approle.generate_secret_id(
            LEAK_APPROLE_ROLE,
            metadata={"spiffe_id": f"spiffe://bench.rescind/leak/{suffix}"},
            mount_point=LEAK_APPROLE_MOUNT,
        )["data"]
        return Leak(kind, str(generated["secret_id_accessor"]), secret=str(generated["secret_id"]))
    if kind == "aws_access_key":
        user_name = f"bench-leak-{suffix}"
        iam.create_user(UserName=user_name)
        key_id = str(iam.create_access_key(UserName=user_name)["AccessKey"]["AccessKeyId"])
        return Leak(kind, key_id, iam_user=user_name)
    raise ValueError(f"unknown leak kind {kind!r}")


def _approle_login(vault: Any, role: str) -> dict[str, Any]:
    """A login to a role of its own (so an entity of its own, its only token), as a workload logs in."""
    import hvac

    _ensure_approle_role(vault)
    approle = vault.auth.approle
    approle.create_or_update_approle(role, token_ttl="1h", mount_point=LEAK_APPROLE_MOUNT)  # noqa: S106
    role_id = approle.read_role_id(role, mount_point=LEAK_APPROLE_MOUNT)["data"]["role_id"]
    secret_id = approle.generate_secret_id(role, mount_point=LEAK_APPROLE_MOUNT)["data"]["secret_id"]
    anonymous = hvac.Client(url=vault.url, timeout=10)
    login = anonymous.auth.approle.login(role_id, secret_id, mount_point=LEAK_APPROLE_MOUNT, use_token=False)
    return dict(login["auth"])


def seed_background_tokens(vault: Any, count: int) -> None:
    """`count` other live tokens on the server (outside the timing): what every token scan reads."""
    for _ in range(count):
        vault.auth.token.create(policies=["default"], ttl="2h", meta={"spiffe_id": "spiffe://bench.rescind/other"})


def _ensure_approle_role(vault: Any) -> None:
    """The AppRole mount (the template's default) and the role whose secret-ids leak; outside the timing."""
    if f"{LEAK_APPROLE_MOUNT}/" not in vault.sys.list_auth_methods()["data"]:
        vault.sys.enable_auth_method("approle", path=LEAK_APPROLE_MOUNT)
    approle = vault.auth.approle
    approle.create_or_update_approle(LEAK_APPROLE_ROLE, token_ttl="1h", mount_point=LEAK_APPROLE_MOUNT)  # noqa: S106


def leak_event(leak: Leak) -> dict[str, Any]:
    """The generic `Secret Leaked` sample event (events/secret_leaked.json) naming `leak`, with a fresh id."""
    event: dict[str, Any] = json.loads((REPO_ROOT / "events" / "secret_leaked.json").read_text())
    event["id"] = str(uuid.uuid4())
    detail = event["detail"]
    detail["secret_type"] = "vault_token" if leak.kind in TOKEN_KINDS else leak.kind
    if leak.kind == "kv_value":
        del detail["secret"]
        detail["secret_sha256"] = leak.sha256
    else:
        detail["secret"] = leak.secret or leak.reference
    return event


def _redacted(text: str, leak: Leak) -> str:
    return text.replace(leak.secret, "<redacted>") if leak.secret else text


def _gone(attempt: Callable[[], Any]) -> bool:
    """True when the read-back says the thing is gone (Vault answers 400/404 for a dead accessor)."""
    import hvac.exceptions

    try:
        attempt()
    except (hvac.exceptions.InvalidRequest, hvac.exceptions.InvalidPath, hvac.exceptions.Forbidden):
        return True
    return False


@contextmanager
def without_collections() -> Iterator[None]:
    """Collect, then no garbage collection while a run is timed, on both sides alike (as `timeit` does): this process
    holds moto's state and every function's, which a Lambda's own process does not, so a collection that falls in a
    run here costs many times what it would there (a full one, hundreds of milliseconds)."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# How long a run's end waits for the watcher process to report (the CI's test suite ran beside a smoke run whose
# watcher had not been scheduled within 2 s).
WATCHER_PROCESS_WAIT_SECONDS = 30


class KillWatch:
    """From outside Rescind, with its own client: polls until the leaked credential is refused, and keeps the moment
    it first saw it. A kind without a reversible kill is not watched.

    A Vault credential is watched from a process of its own (`WATCHED_FROM_A_PROCESS`): a thread would share the GIL
    with the path it times, and each of its checks' Python work would slow a path that does more of it (the start
    function, moto) more than the floor's, which mostly waits on Vault. The clocks agree: perf_counter is
    CLOCK_MONOTONIC on Linux, one clock for every process. An IAM key lives in moto, in this process: its watcher is
    a thread, with the switch interval lowered on both sides alike."""

    def __init__(self, leak: Leak, addr: str, token: str) -> None:
        self._leak, self._addr, self._token = leak, addr, token
        self._process: subprocess.Popen[str] | None = None
        self._refused = None if leak.kind in WATCHED_FROM_A_PROCESS else _refused_check(leak, addr, token)
        self._stop = threading.Event()
        self.seen_at: float | None = None
        # Named so that bench.calls leaves its checks out of the counted calls of the run it watches.
        self._thread = threading.Thread(target=self._watch, daemon=True, name=f"{UNCOUNTED_THREAD_PREFIX}-kill-watch")

    def __enter__(self) -> KillWatch:
        self._switch = sys.getswitchinterval()
        if self._leak.kind in WATCHED_FROM_A_PROCESS:
            self._start_process()
        elif self._refused is not None:
            sys.setswitchinterval(KILL_WATCH_SWITCH_SECONDS)
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        sys.setswitchinterval(self._switch)
        if self._process is not None:
            try:  # it ends once it sees the credential refused; a loaded machine may not run it for seconds
                self._process.wait(timeout=WATCHER_PROCESS_WAIT_SECONDS)
            except subprocess.TimeoutExpired:  # never seen refused: the run failed, and says so
                self._process.kill()
                self._process.wait()
            assert self._process.stdout is not None
            out = self._process.stdout.read()
            self._process.stdout.close()
            seen = out.strip().splitlines()[-1:] if out else []
            self.seen_at = float(seen[0]) if seen and seen[0] != "ready" else None

    def seconds_after(self, started: float) -> float | None:
        return None if self.seen_at is None else round(self.seen_at - started, 4)

    def _watch(self) -> None:
        """Check, pause, check again; once told to stop, one last check: a check that began before a fast kill
        (the floor takes a few ms, about one check) must not leave a dead credential unseen."""
        assert self._refused is not None
        while True:
            stopping = self._stop.is_set()
            if self._refused():
                self.seen_at = time.perf_counter()
                return
            if stopping:
                return
            time.sleep(KILL_WATCH_PAUSE_SECONDS)

    def _start_process(self) -> None:
        """The watcher process, given the leak on its stdin (never its arguments), ready once it has seen the
        credential alive through a warm connection."""
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from bench.leak_to_dead import watch_from_stdin; watch_from_stdin()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
        )
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        leak = {"kind": self._leak.kind, "reference": self._leak.reference, "secret": self._leak.secret}
        self._process.stdin.write(json.dumps({"leak": leak, "addr": self._addr, "token": self._token}) + "\n")
        self._process.stdin.close()
        first = self._process.stdout.readline().strip()
        if first != "ready":
            raise RuntimeError(f"the watcher process did not start watching: {first[:200]!r}")


def watch_from_stdin() -> None:
    """The watcher process's body: the same check as the thread's, until refused; prints "ready", then the moment."""
    given = json.loads(sys.stdin.readline())
    refused = _refused_check(Leak(**given["leak"]), given["addr"], given["token"])
    if refused is None or refused():
        print("refused before the clock started", flush=True)
        return
    print("ready", flush=True)
    while not refused():
        time.sleep(KILL_WATCH_PAUSE_SECONDS)
    print(time.perf_counter(), flush=True)


def _refused_check(leak: Leak, addr: str, token: str) -> Callable[[], bool] | None:
    """The outside check of `leak`'s kind (KILL_WATCHED), on a client of its own (`token`: the watcher's, where the
    check is not made with the leaked credential itself); None for a kind not watched."""
    if leak.kind in TOKEN_KINDS:
        import hvac

        leaked = hvac.Client(url=addr, token=leak.secret, timeout=10)
        return asked_again_on_server_errors(lambda: _gone(leaked.auth.token.lookup_self))
    if leak.kind == "vault_secret_id":
        import hvac

        watcher = hvac.Client(url=addr, token=token, timeout=10)
        return asked_again_on_server_errors(
            lambda: (
                not isinstance(
                    watcher.auth.approle.read_secret_id(LEAK_APPROLE_ROLE, leak.secret, mount_point=LEAK_APPROLE_MOUNT),
                    dict,
                )
            )
        )
    if leak.kind == "aws_access_key":
        import boto3

        iam = boto3.client("iam")

        def key_refused() -> bool:
            listed = iam.list_access_keys(UserName=leak.iam_user)["AccessKeyMetadata"]
            return all(item["AccessKeyId"] != leak.reference or item["Status"] != "Active" for item in listed)

        return key_refused
    return None


def asked_again_on_server_errors(check: Callable[[], bool]) -> Callable[[], bool]:
    """A Vault check that counts a 5xx as "not refused yet", to be asked again: OpenBao can answer 500 ("transaction
    commit failed") to a secret-id read racing its destroy, and the watcher must not die of it unseen."""
    import hvac.exceptions

    def checked() -> bool:
        try:
            return check()
        except (hvac.exceptions.InternalServerError, hvac.exceptions.VaultDown, hvac.exceptions.BadGateway):
            return False

    return checked


class StartFunctionClock:
    """When the start function's in-process invocation began and ended (rescind_local.lambdas.invoke_in_process,
    wrapped for the block, as bench.calls wraps hvac): its time to kill, without the local delivery before it."""

    def __init__(self) -> None:
        self.started_at: float | None = None
        self.ended_at: float | None = None

    def __enter__(self) -> StartFunctionClock:
        import rescind_local.lambdas as lambdas

        self._lambdas, self._original = lambdas, lambdas.invoke_in_process

        def timed(spec: Any, *args: Any, **kwargs: Any) -> Any:
            if not spec.function_name.endswith(START_FUNCTION) or self.started_at is not None:
                return self._original(spec, *args, **kwargs)
            self.started_at = time.perf_counter()
            try:
                return self._original(spec, *args, **kwargs)
            finally:
                self.ended_at = time.perf_counter()

        lambdas.invoke_in_process = timed
        return self

    def __exit__(self, *_: object) -> None:
        self._lambdas.invoke_in_process = self._original

    def seconds_to(self, moment: float | None) -> float | None:
        return None if moment is None or self.started_at is None else round(moment - self.started_at, 4)


def bare_leak_floor(leak: Leak, vault: Any, iam: Any) -> dict[str, Any]:
    """The least a person with hvac or boto3 does to kill `leak`, knowing where it lives: lookup, kill, read back."""
    started = time.perf_counter()
    if leak.kind in TOKEN_KINDS:
        accessor = str(vault.auth.token.lookup(token=leak.secret)["data"]["accessor"])
        vault.auth.token.revoke_accessor(accessor)
        dead = _gone(lambda: vault.auth.token.lookup_accessor(accessor))
    elif leak.kind == "vault_secret_id":
        approle = vault.auth.approle
        found = approle.read_secret_id(LEAK_APPROLE_ROLE, leak.secret, mount_point=LEAK_APPROLE_MOUNT)
        accessor = str(found["data"]["secret_id_accessor"])
        approle.destroy_secret_id_accessor(LEAK_APPROLE_ROLE, accessor, mount_point=LEAK_APPROLE_MOUNT)
        dead = _gone(
            lambda: approle.read_secret_id_accessor(LEAK_APPROLE_ROLE, accessor, mount_point=LEAK_APPROLE_MOUNT)
        )
    elif leak.kind == "kv_value":
        kv = vault.secrets.kv.v2
        current = int(kv.read_secret_metadata(leak.kv_path, mount_point=LEAK_KV_MOUNT)["data"]["current_version"])
        new_value = {"username": leak.kv_username, "password": secrets.token_urlsafe(32)}
        kv.create_or_update_secret(leak.kv_path, secret=new_value, cas=current, mount_point=LEAK_KV_MOUNT)
        previous = list(range(1, current + 1))
        kv.destroy_secret_versions(leak.kv_path, versions=previous, mount_point=LEAK_KV_MOUNT)
        after = kv.read_secret_metadata(leak.kv_path, mount_point=LEAK_KV_MOUNT)["data"]
        dead = after["current_version"] == current + 1 and all(
            after["versions"][str(version)]["destroyed"] for version in previous
        )
    else:
        user_name = iam.get_access_key_last_used(AccessKeyId=leak.reference)["UserName"]
        iam.update_access_key(UserName=user_name, AccessKeyId=leak.reference, Status="Inactive")
        iam.delete_access_key(UserName=user_name, AccessKeyId=leak.reference)
        listed = iam.list_access_keys(UserName=user_name)["AccessKeyMetadata"]
        dead = all(item["AccessKeyId"] != leak.reference for item in listed)
    return {"seconds": round(time.perf_counter() - started, 4), "dead": dead}


def counted_calls(counts: CallCounts) -> dict[str, Any]:
    """One leak's counted calls (bench.calls): Vault requests and AWS calls in all, and by endpoint/operation."""
    return {
        "vault": counts.vault_total,
        "aws": sum(counts.aws.values()),
        "vault_by_path": dict(counts.vault.most_common()),
        "aws_by_operation": dict(counts.aws.most_common()),
    }


def confirm_leak_dead(leak: Leak, vault: Any, iam: Any) -> bool:
    """The harness's own check, outside the timing, that the state machine left the credential dead."""
    if leak.kind in TOKEN_KINDS:
        dead = _gone(lambda: vault.auth.token.lookup_accessor(leak.reference))
        # its entity held only it: the run disabled the entity too
        return dead and (not leak.entity_id or vault.read(f"identity/entity/id/{leak.entity_id}")["data"]["disabled"])
    if leak.kind == "vault_secret_id":
        approle = vault.auth.approle
        return _gone(
            lambda: approle.read_secret_id_accessor(LEAK_APPROLE_ROLE, leak.reference, mount_point=LEAK_APPROLE_MOUNT)
        )
    if leak.kind == "kv_value":
        metadata = vault.secrets.kv.v2.read_secret_metadata(leak.kv_path, mount_point=LEAK_KV_MOUNT)["data"]
        return bool(metadata["current_version"] >= 2 and metadata["versions"]["1"]["destroyed"])
    listed = iam.list_access_keys(UserName=leak.iam_user)["AccessKeyMetadata"]
    return all(item["AccessKeyId"] != leak.reference for item in listed)


def _wait_until_done(sfn: Any, execution_arn: str) -> dict[str, Any]:
    """describe_execution every LEAK_POLL_SECONDS until the execution leaves RUNNING."""
    deadline = time.perf_counter() + LEAK_TIMEOUT_SECONDS
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{execution_arn} still RUNNING after {LEAK_TIMEOUT_SECONDS} s")
        time.sleep(LEAK_POLL_SECONDS)


def leak_through_state_machine(stack: Any, leak: Leak, ledger: Any, sfn: Any, addr: str, token: str) -> dict[str, Any]:
    """Time one leak from `stack.route_event` to the credential seen refused from outside (time to kill; also from
    the start function's invocation), and to the execution SUCCEEDED and its ledger closure COMPLETED (time to
    verified and recorded)."""
    from rescind.ledger import IncidentStatus
    from rescind.models import Outcome
    from rescind_cli.runs.history import execution_arns, execution_history

    machine_arn = stack.state_machine_arn("LeakResponseStateMachine")
    before = set(execution_arns(sfn, machine_arn))
    invocations_before = len(stack.lambdas.invocations)
    event = leak_event(leak)
    with (
        stdout_to_file(),
        without_collections(),
        KillWatch(leak, addr, token) as watch,
        StartFunctionClock() as clock,
        counting_calls() as counter,
    ):
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        matches = stack.route_event(event)
        routed = time.perf_counter() - started
        new = set(execution_arns(sfn, machine_arn)) - before
        if len(new) != 1:
            errors = [delivery.error_type for match in matches for delivery in match.deliveries]
            raise RuntimeError(f"{len(new)} executions started (rules matched {len(matches)}, errors {errors})")
        (execution_arn,) = new
        described = _wait_until_done(sfn, execution_arn)
        view = ledger.read_incident(described["name"])
        seconds = time.perf_counter() - started
        calls = counter.snapshot()
    seconds_to_kill = watch.seconds_after(started)
    in_function_to_kill = clock.seconds_to(watch.seen_at)
    closure = view.closure
    killed_first = [a.result for a in view.attempts if KILL_FIRST_ATTEMPT in a.attempt_id]
    by_run = [a.result for a in view.attempts if KILL_FIRST_ATTEMPT not in a.attempt_id]
    succeeded = [a.result.action_id for a in view.attempts if a.result.outcome is Outcome.SUCCEEDED]
    handler_seconds: dict[str, float] = {}
    for invocation in stack.lambdas.invocations[invocations_before:]:
        name = invocation.function_name.removeprefix("bench-")
        handler_seconds[name] = round(handler_seconds.get(name, 0.0) + invocation.duration_seconds, 4)
    events = execution_history(sfn, execution_arn)
    phases, _ = phases_from_history(events, set(LEAK_PHASES), names=LEAK_PHASES)
    execution_started = next(e["timestamp"] for e in events if e["type"] == "ExecutionStarted")
    execution_ended = events[-1]["timestamp"]
    return {
        "seconds": round(seconds, 4),
        "status": described["status"],
        "closure": str(closure.status) if closure is not None else None,
        "completed": described["status"] == "SUCCEEDED"
        and closure is not None
        and closure.status is IncidentStatus.COMPLETED,
        "seconds_to_kill": seconds_to_kill,  # None: not watched (no reversible kill), or never seen refused
        # from the start function's invocation, not route_event: without the local delivery before it
        "seconds_to_kill_in_function": in_function_to_kill,
        # the start function's whole run: killed, read back, claimed, recorded and the execution started
        "start_function_done_seconds": clock.seconds_to(clock.ended_at),
        "actions": [str(result.action_kind) for result in by_run],  # what the run acted on (not what the kill proved)
        "killed_first": [str(result.action_kind) for result in killed_first if result.outcome.is_success],
        # each planned action succeeded once: by the start function's kill (then the run leaves it), or by the run
        "all_actions_succeeded": all(result.outcome.is_success for result in [*killed_first, *by_run])
        and sorted(succeeded) == sorted({result.action_id for result in [*killed_first, *by_run]}),
        "still_alive": len(closure.still_alive) if closure is not None else None,
        "start_function_seconds": round(routed, 4),
        "execution_started_after_seconds": round((execution_started - started_at).total_seconds(), 4),
        "execution_ended_after_seconds": round((execution_ended - started_at).total_seconds(), 4),
        "phases": phases,
        "handler_seconds": handler_seconds,  # inside the handlers, by function (the rest is moto and waiting)
        "calls": counted_calls(calls),
        "history_events": len(events),
        "retried_tasks": sum(1 for e in events if e["type"] in {"TaskFailed", "LambdaFunctionFailed"}),
    }


def summarise_leak_kind(
    kind: str, machine_runs: list[dict[str, Any]], bare_runs: list[dict[str, Any]]
) -> dict[str, Any]:
    good = [run for run in machine_runs if run.get("completed") and run.get("confirmed_dead")]
    good_bare = [run for run in bare_runs if run.get("dead")]
    machine = spread([run["seconds"] for run in good])
    bare = spread([run["seconds"] for run in good_bare])
    measured_ratio = ratio(machine["median_seconds"], bare["median_seconds"])
    kills = [run["seconds_to_kill"] for run in good if run.get("seconds_to_kill") is not None]
    bare_kills = [run["seconds_to_kill"] for run in good_bare if run.get("seconds_to_kill") is not None]
    kill_ratio = ratio(median(kills), median(bare_kills)) if kills and bare_kills else None
    in_function = [run["seconds_to_kill_in_function"] for run in good if run.get("seconds_to_kill_in_function")]
    in_function_ratio = ratio(median(in_function), median(bare_kills)) if in_function and bare_kills else None
    done = [run["start_function_done_seconds"] for run in good if run.get("start_function_done_seconds")]
    done_ratio = ratio(median(done), bare["median_seconds"]) if done and bare["median_seconds"] else None
    typical = min(good, key=lambda run: abs(run["seconds"] - (machine["median_seconds"] or 0.0)), default=None)
    summary: dict[str, Any] = {
        "what": LEAK_KINDS[kind],
        "floor": LEAK_FLOORS[kind],
        "completed_runs": len(good),
        **machine,
        "bare_completed_runs": len(good_bare),
        "bare_median_seconds": bare["median_seconds"],
        "bare_min_seconds": bare["min_seconds"],
        "bare_max_seconds": bare["max_seconds"],
        "ratio_to_bare": measured_ratio,
        "met": None if measured_ratio is None else measured_ratio <= LEAK_TARGET_RATIO,
        "kill_watched": KILL_WATCHED.get(kind),
        "killed_runs": len(kills),
        "median_seconds_to_kill": median(kills) if kills else None,
        "bare_median_seconds_to_kill": median(bare_kills) if bare_kills else None,
        "kill_ratio_to_bare": kill_ratio,
        "kill_met": None if kill_ratio is None else kill_ratio <= KILL_TARGET_RATIO,
        "median_vault_calls": median([run["calls"]["vault"] for run in good if "calls" in run]),
        "median_aws_calls": median([run["calls"]["aws"] for run in good if "calls" in run]),
        "bare_median_vault_calls": median([run["calls"]["vault"] for run in good_bare if "calls" in run]),
        "bare_median_aws_calls": median([run["calls"]["aws"] for run in good_bare if "calls" in run]),
        "median_seconds_to_kill_in_function": median(in_function) if in_function else None,
        "kill_in_function_ratio_to_bare": in_function_ratio,
        "kill_in_function_met": None if in_function_ratio is None else in_function_ratio <= KILL_TARGET_RATIO,
        # the start function's kill read back and recorded (and the run started) beside the floor's lookup, kill
        # and read-back
        "median_start_function_done_seconds": median(done) if done else None,
        "start_function_done_ratio_to_bare": done_ratio,
        "killed_first": typical["killed_first"] if typical else [],
        "median_start_function_seconds": median([run["start_function_seconds"] for run in good]),
        "median_phases": {
            name: median([run["phases"][name] for run in good if name in run["phases"]])
            for name in LEAK_PHASES
            if any(name in run["phases"] for run in good)
        },
        "median_handler_seconds": median([sum(run["handler_seconds"].values()) for run in good]),
        "phases_of_median_run": typical["phases"] if typical else {},
        "handler_seconds_of_median_run": typical["handler_seconds"] if typical else {},
        "actions": typical["actions"] if typical else [],
        "runs": machine_runs,
        "bare_runs": bare_runs,
    }
    errors = [run["error"] for run in [*machine_runs, *bare_runs] if "error" in run]
    if errors:
        summary["errors"] = errors
    return summary


def leak_to_dead(addr: str, token: str, runs: int, kinds: tuple[str, ...] = tuple(LEAK_KINDS)) -> dict[str, Any]:
    """Leak to dead for each kind: the generic `Secret Leaked` event through the template's rule, the start
    function, the leak-response state machine and its handlers (moto, handlers in-process, real OpenBao), beside
    the bare hvac/boto3 calls that do the same, interleaved run by run. A fresh credential for every run."""
    import boto3
    import hvac

    from rescind.fingerprints.dynamodb import DynamoDbFingerprintIndex
    from rescind.fingerprints.indexing import index_kv_mount
    from rescind.fingerprints.runtime import read_fingerprint_key
    from rescind.ledger.dynamodb import DynamoDbLedger
    from rescind_local import local_aws
    from rescind_local.stack import deploy_template_to_moto

    vault = hvac.Client(url=addr, token=token, timeout=60)
    with local_aws():
        stack = deploy_template_to_moto(
            stack_name="bench",
            parameters={"VaultAddr": addr, "VaultAwsAuthRole": "rescind-local"},
            function_environment={"VAULT_AUTH_METHOD": "token", "VAULT_TOKEN": token},
            time_scale=0.01,
            warm_functions=True,  # clients kept between events, as a warm Lambda keeps them
        )
        with stack:
            iam, sfn, dynamodb = boto3.client("iam"), boto3.client("stepfunctions"), boto3.client("dynamodb")
            ledger = DynamoDbLedger(stack.physical_id("LedgerTable"), dynamodb)
            index = DynamoDbFingerprintIndex(stack.physical_id("FingerprintTable"), dynamodb)
            key = read_fingerprint_key(boto3.client("secretsmanager"), stack.physical_id("FingerprintKeySecret"))

            def seeded(kind: str) -> Leak:
                leak = seed_leak(kind, vault, iam)
                if kind == "kv_value":  # the index knows the value before the leak (outside the timing)
                    index_kv_mount(vault, index, key, LEAK_KV_MOUNT, prefix=leak.kv_path.rsplit("/", 1)[0] + "/")
                return leak

            def machine_run(kind: str) -> dict[str, Any]:
                leak = seeded(kind)
                try:
                    measured = leak_through_state_machine(stack, leak, ledger, sfn, addr, token)
                    measured["confirmed_dead"] = confirm_leak_dead(leak, vault, iam)
                except Exception as error:  # reported with the reason, never with the value
                    measured = {"error": _redacted(f"{type(error).__name__}: {str(error)[:500]}", leak)}
                measured["credential"] = leak.reference
                return measured

            def bare_run(kind: str) -> dict[str, Any]:
                leak = seeded(kind)
                try:
                    with without_collections(), KillWatch(leak, addr, token) as watch, counting_calls() as counter:
                        started = time.perf_counter()
                        measured = bare_leak_floor(leak, vault, iam)
                    measured["seconds_to_kill"] = watch.seconds_after(started)
                    measured["calls"] = counted_calls(counter.snapshot())
                except Exception as error:
                    measured = {"error": _redacted(f"{type(error).__name__}: {str(error)[:500]}", leak)}
                measured["credential"] = leak.reference
                return measured

            # One untimed run of each first: it imports the handlers and builds their clients (cold start is
            # section 3), and warms moto and the hvac connection pool for the floor alike.
            warmup: dict[str, Any] = {}
            if "vault_token_entity" in kinds:
                log(f"leak to dead: seeding {ENTITY_BACKGROUND_TOKENS} other live tokens")
                seed_background_tokens(vault, ENTITY_BACKGROUND_TOKENS)
            for kind in kinds:
                log(f"leak to dead: {kind} warm-up")
                warmup[kind] = {"state_machine": machine_run(kind), "bare": bare_run(kind)}
            machine_runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
            bare_runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
            for index_of_run in range(runs):
                for kind in kinds:
                    machine_runs[kind].append(machine_run(kind))
                    bare_runs[kind].append(bare_run(kind))
                    last, floor = machine_runs[kind][-1], bare_runs[kind][-1]
                    log(
                        f"leak to dead: {kind} run {index_of_run + 1}/{runs} -> {last.get('seconds', 'ERROR')} s, "
                        f"bare {floor.get('seconds', 'ERROR')} s; killed after {last.get('seconds_to_kill')} s, "
                        f"bare {floor.get('seconds_to_kill')} s"
                        + (f" ERROR {last['error']}" if "error" in last else "")
                        + (f" bare ERROR {floor['error']}" if "error" in floor else "")
                    )
    summaries = {kind: summarise_leak_kind(kind, machine_runs[kind], bare_runs[kind]) for kind in kinds}
    for kind, summary in summaries.items():
        summary["warmup_seconds"] = warmup[kind]["state_machine"].get("seconds")
        summary["bare_warmup_seconds"] = warmup[kind]["bare"].get("seconds")
    return {
        "measured": True,
        "runs_per_kind": runs,
        "target_ratio": LEAK_TARGET_RATIO,
        "kill_target_ratio": KILL_TARGET_RATIO,
        "kill_watch_pause_seconds": KILL_WATCH_PAUSE_SECONDS,
        "kill_watch_switch_seconds": KILL_WATCH_SWITCH_SECONDS,
        "poll_interval_seconds": LEAK_POLL_SECONDS,
        "phase_names": list(LEAK_PHASES),
        "kinds": summaries,
    }


def run_leak_to_dead(runs: int, kinds: tuple[str, ...] = tuple(LEAK_KINDS)) -> dict[str, Any]:
    """leak_to_dead on its own fresh OpenBao; a failure is reported in the results, not raised."""
    from rescind_local import LocalOpenBao

    try:
        with LocalOpenBao() as server:
            return leak_to_dead(server.addr, server.root_token, runs, kinds)
    except Exception as error:
        return {"measured": False, "reason": f"failed: {type(error).__name__}: {str(error)[:500]}"}


def verdicts(leak: dict[str, Any]) -> list[dict[str, Any]]:
    """The target's verdict for each kind (or one saying why nothing was measured)."""
    if not leak.get("measured"):
        return [verdict("leak_to_dead", WANTED, None, leak.get("reason", "not measured"))]
    found = []
    for kind, summary in leak["kinds"].items():
        measured_ratio = summary.get("ratio_to_bare")
        if measured_ratio is None:
            detail = f"failed: {(summary.get('errors') or ['no completed run'])[0][:200]}"
        else:
            detail = (
                f"median {summary['median_seconds']} s against bare {summary['bare_median_seconds']} s: "
                f"{measured_ratio}x"
            )
            if measured_ratio > LEAK_TARGET_RATIO:
                detail += f", {round(measured_ratio / LEAK_TARGET_RATIO, 1)}x over the {LEAK_TARGET_RATIO:g}x target"
        found.append(verdict(f"leak_to_dead ({kind})", WANTED, summary.get("met"), detail))
        if summary.get("kill_watched") is None:
            continue
        for name, clock, suffix in (
            ("leak_to_kill", "", "from route_event, with the local delivery"),
            ("leak_to_kill_in_function", "_in_function", "from the start function's invocation"),
        ):
            kill_ratio = summary.get(f"kill{clock}_ratio_to_bare")
            if kill_ratio is None:
                kill_detail = "not measured: the credential was never seen refused in a completed run"
            else:
                kill_detail = (
                    f"median {summary[f'median_seconds_to_kill{clock}']} s {suffix}, against bare "
                    f"{summary['bare_median_seconds_to_kill']} s: {kill_ratio}x"
                )
            found.append(verdict(f"{name} ({kind})", WANTED_KILL, summary.get(f"kill{clock}_met"), kill_detail))
    return found


def render(leak: dict[str, Any]) -> list[str]:
    lines = ["## 1. Leak to dead", ""]
    if not leak.get("measured"):
        return [*lines, str(leak.get("reason", "not measured")).rstrip(".") + ".", ""]
    if leak.get("command"):
        lines += [f"Measured by `{leak['command']}` at {leak['generated_at']}, merged into this file.", ""]
    lines += [
        "The generic `Secret Leaked` event (events/secret_leaked.json, a fresh id each run) put through the "
        "template's real rule with `route_event`, then the start function (parse, locate, kill first, claim, "
        "start), the leak-response state machine on moto's interpreter and its handlers in-process, against real "
        "OpenBao and moto. The functions are warm: each keeps the settings and clients its first event built, as a "
        "Lambda execution environment does between events (the first event's cost is section 3). The clock runs "
        "from `route_event` to the execution SUCCEEDED and its ledger closure read back "
        f"COMPLETED (describe_execution polled every {leak['poll_interval_seconds'] * 1000:g} ms). Every run "
        "leaks a fresh credential, seeded before the clock starts; the harness then checks the credential is "
        "dead itself. The bare floor, measured in the same run on a fresh credential of the same kind, "
        "interleaved: "
        + "; ".join(f"{kind}: {summary['floor']}" for kind, summary in leak["kinds"].items())
        + f". Median of {leak['runs_per_kind']} runs per kind, after one untimed warm-up each.",
        "",
        "| kind | runs | to verified and recorded: median s (min-max) | bare median s (min-max) | ratio | target "
        "| verdict | to kill: median s | bare s | ratio | target | verdict | Vault + AWS calls (bare) "
        "| start function s | in handlers s | actions |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, summary in leak["kinds"].items():
        cells = [
            kind,
            f"{summary['completed_runs']}/{leak['runs_per_kind']}",
            f"{cell(summary['median_seconds'])} ({cell(summary['min_seconds'])}-{cell(summary['max_seconds'])})",
            f"{cell(summary['bare_median_seconds'])} "
            f"({cell(summary['bare_min_seconds'])}-{cell(summary['bare_max_seconds'])})",
            f"{cell(summary['ratio_to_bare'])}x",
            f"<= {leak['target_ratio']}x",
            verdict_text(summary["met"]),
            *(
                (
                    cell(summary.get("median_seconds_to_kill")),
                    cell(summary.get("bare_median_seconds_to_kill")),
                    f"{cell(summary.get('kill_ratio_to_bare'))}x",
                    f"<= {leak.get('kill_target_ratio')}x",
                    verdict_text(summary.get("kill_met")),
                )
                if summary.get("kill_watched")
                else ("not watched",) + ("-",) * 4
            ),
            f"{cell(summary.get('median_vault_calls'))} + {cell(summary.get('median_aws_calls'))} "
            f"({cell(summary.get('bare_median_vault_calls'))} + {cell(summary.get('bare_median_aws_calls'))})",
            cell(summary["median_start_function_seconds"]),
            cell(summary["median_handler_seconds"]),
            f"killed first: {', '.join(summary['killed_first']) or '-'}; run: {', '.join(summary['actions']) or '-'}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Time to kill: from `route_event` (the floor: its first call) until a watcher outside Rescind, in its own "
        "thread with its own client, first sees the leaked credential refused: "
        + "; ".join(
            f"{kind}: {summary['kill_watched']}"
            for kind, summary in leak["kinds"].items()
            if summary.get("kill_watched")
        )
        + f". It checks, pauses {leak.get('kill_watch_pause_seconds', 0) * 1000:g} ms, and checks again, on both "
        f"sides alike, with the thread switch interval at {leak.get('kill_watch_switch_seconds', 0.005) * 1000:g} ms "
        "(moto's in-process answers hold the GIL where AWS's would wait on the network). The start function kills "
        "first (revoke, deactivate, disable; read back), then claims the incident, records the kill and starts "
        "the run; a KV value has no reversible kill and is not watched. "
        "In function: the same moment, from the start function's in-process invocation rather than `route_event` "
        "(the local EventBridge's rule matching and moto's Lambda invoke stand in for AWS's delivery, which the "
        "floor has no counterpart of). Start function done: killed, read back, claimed, recorded and the run "
        "started, from its invocation, beside the whole floor (lookup, kill, read back).",
        "",
        "| kind | killed first | runs seen refused | median s to kill | bare median s to kill | ratio | target "
        "| verdict | in function s | ratio | verdict | start function done s | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, summary in leak["kinds"].items():
        if not summary.get("kill_watched"):
            continue
        cells = [
            kind,
            ", ".join(summary.get("killed_first") or []) or "-",
            f"{summary['killed_runs']}/{leak['runs_per_kind']}",
            cell(summary["median_seconds_to_kill"]),
            cell(summary["bare_median_seconds_to_kill"]),
            f"{cell(summary['kill_ratio_to_bare'])}x",
            f"<= {leak.get('kill_target_ratio')}x",
            verdict_text(summary["kill_met"]),
            cell(summary.get("median_seconds_to_kill_in_function")),
            f"{cell(summary.get('kill_in_function_ratio_to_bare'))}x",
            verdict_text(summary.get("kill_in_function_met")),
            cell(summary.get("median_start_function_done_seconds")),
            f"{cell(summary.get('start_function_done_ratio_to_bare'))}x",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    names = leak["phase_names"]
    lines += [
        "",
        "Where the time of the median run goes: seconds in each top-level state (from the execution history), and "
        "inside each handler (the in-process invocations). The start function runs before the execution exists.",
        "",
        "| kind | " + " | ".join(names) + " | handlers (s) |",
        "|---|" + "---|" * len(names) + "---|",
    ]
    for kind, summary in leak["kinds"].items():
        phases = summary["phases_of_median_run"]
        handlers = ", ".join(f"{name} {value}" for name, value in summary["handler_seconds_of_median_run"].items())
        # a state the run did not enter (nothing left for that Map after the kill first) is skipped, not failed
        spent = [cell(phases[name]) if name in phases else "skipped" for name in names]
        lines.append(f"| {kind} | " + " | ".join(spent) + f" | {handlers} |")
    errors = [f"{kind}: {summary['errors'][0][:300]}" for kind, summary in leak["kinds"].items() if "errors" in summary]
    if errors:
        lines += ["", "Failed runs: " + "; ".join(errors)]
    return [*lines, ""]
