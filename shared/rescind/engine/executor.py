"""The action engine: act, then verify by reading back, then say honestly what happened."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

from rescind.engine.base import CredentialHandler
from rescind.exceptions import CredentialStillAlive, RescindError, UnsupportedAction
from rescind.holds import GuardFacts
from rescind.ledger.base import Ledger
from rescind.ledger.types import ActionAttemptRecord
from rescind.models import Action, ActionResult, CredentialKind, CredentialRef, Evidence, Outcome, Plan
from rescind.models.results import utc_now
from rescind.retrying import retry_transient


def _elapsed_ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000.0, 3)


class ActionEngine:
    """Runs actions through the handler of their credential kind.

    `execute` raises TransientError so a caller with its own retry policy (a Step Functions Retry) can
    retry; `execute_or_fail` and `run_plan`, for the paths no state machine retries (rescind.retrying), retry
    transient errors themselves and never raise for one action's failure.
    """

    def __init__(
        self,
        handlers: Iterable[CredentialHandler],
        *,
        builders: Mapping[CredentialKind, Callable[[], CredentialHandler]] | None = None,
        clock: Callable[[], datetime] = utc_now,
        transient_retries: int = 3,
        retry_backoff_seconds: float = 0.2,
    ) -> None:
        """`builders`: the handler of each kind `handlers` lack, built on its first use (a cold start builds, and
        imports, only the kinds its actions name)."""
        self._handlers: dict[CredentialKind, CredentialHandler] = {
            kind: handler for handler in handlers for kind in handler.kinds
        }
        self._builders = builders or {}
        self._building = threading.Lock()  # verify and discovery reach the engine from several threads
        self._clock = clock
        self._transient_retries = transient_retries
        self._retry_backoff = retry_backoff_seconds

    def handler_for(self, kind: CredentialKind) -> CredentialHandler:
        handler = self._handlers.get(kind)
        if handler is not None:
            return handler
        build = self._builders.get(kind)
        if build is None:
            raise UnsupportedAction(f"no handler is configured for credential kind {kind!s}")
        with self._building:
            if kind not in self._handlers:
                self._handlers[kind] = build()
            return self._handlers[kind]

    def exists(self, ref: CredentialRef) -> bool | None:
        """Whether the reference names a credential on record (see CredentialHandler.exists). Reads only."""
        return self.handler_for(ref.kind).exists(ref)

    def verify_each(self, actions: Sequence[Action]) -> list[Evidence]:
        """Read back every action's target, in order. Only reads. A handler with `verify_many` reads its kind's
        targets together (a PKI mount's CRL once for all its certificates); any other, one by one."""
        by_kind: dict[CredentialKind, list[int]] = {}
        for index, action in enumerate(actions):
            by_kind.setdefault(action.target.kind, []).append(index)
        found: dict[int, Evidence] = {}
        for kind, indexes in by_kind.items():
            handler = self.handler_for(kind)
            batch = [actions[index] for index in indexes]
            verify_many = getattr(handler, "verify_many", None)
            evidence = verify_many(batch) if verify_many is not None else [handler.verify(one) for one in batch]
            found.update(zip(indexes, evidence, strict=True))
        return [found[index] for index in range(len(actions))]

    def execute(self, action: Action, *, dry_run: bool = False, seen: GuardFacts | None = None) -> ActionResult:
        """Act, then read back. `seen`: what this action's guard just read of the target, for the act's read before
        any change (CredentialHandler.act)."""
        handler = self.handler_for(action.target.kind)
        started_at = self._clock()
        if dry_run:
            return self._result(action, Outcome.SKIPPED, started_at, detail="dry run: nothing was called")

        act_start = time.perf_counter()
        acted = handler.act(action, seen=seen)
        act_ms = _elapsed_ms(act_start)
        if acted.needs_owner:  # nothing was written: say what a human must declare, and do not fail the run
            evidence = Evidence(
                check="the credential's declaration of how it rotates", observed=acted.detail[:1000], confirmed=False
            )
            return self._result(
                action, Outcome.SKIPPED, started_at, evidence=(evidence,), detail=acted.detail, act_ms=act_ms
            )

        # The act's own read-back, when it made one, is this action's verification: the same read, not repeated.
        verify_start = time.perf_counter()
        evidence = acted.read_back if acted.read_back is not None else handler.verify(action)
        verify_ms = _elapsed_ms(verify_start)

        if not evidence.confirmed:
            return self._result(
                action,
                Outcome.FAILED,
                started_at,
                evidence=(evidence,),
                detail=f"verification failed after {acted.detail or 'acting'}",
                error_type=CredentialStillAlive.__name__,
                act_ms=act_ms,
                verify_ms=verify_ms,
            )
        if acted.changed:
            outcome = Outcome.SUCCEEDED
        elif acted.absent:
            outcome = Outcome.ALREADY_ABSENT
        else:
            outcome = Outcome.ALREADY_APPLIED
        return self._result(
            action,
            outcome,
            started_at,
            evidence=(evidence,),
            detail=acted.detail,
            also_ended=acted.also_ended,
            also_ended_evidence=acted.also_ended_evidence,
            act_ms=act_ms,
            verify_ms=verify_ms,
        )

    def execute_or_fail(self, action: Action, *, dry_run: bool = False) -> ActionResult:
        """Like `execute`, with bounded retries of transient errors, and any Rescind error as a FAILED result."""
        started_at = self._clock()
        try:
            return retry_transient(
                lambda _: self.execute(action, dry_run=dry_run),
                attempts=self._transient_retries + 1,
                base_delay_seconds=self._retry_backoff,
            )
        except RescindError as error:
            return self.failed(action, started_at, error)

    def run_plan(
        self,
        plan: Plan,
        *,
        on_result: Callable[[ActionResult], None] | None = None,
    ) -> list[ActionResult]:
        """Run every action in the plan's (safe) order. One failure does not stop the others."""
        results: list[ActionResult] = []
        for action in plan.actions:
            result = self.execute_or_fail(action, dry_run=plan.dry_run)
            results.append(result)
            if on_result is not None:
                on_result(result)
        return results

    def failed(self, action: Action, started_at: datetime, error: RescindError) -> ActionResult:
        """The FAILED result of an action that raised `error` (its type named, so the ledger says which)."""
        return self._result(
            action, Outcome.FAILED, started_at, detail=str(error)[:2000], error_type=type(error).__name__
        )

    def _result(
        self,
        action: Action,
        outcome: Outcome,
        started_at: datetime,
        *,
        evidence: tuple[Evidence, ...] = (),
        detail: str = "",
        error_type: str | None = None,
        also_ended: tuple[CredentialRef, ...] = (),
        also_ended_evidence: tuple[Evidence, ...] = (),
        act_ms: float = 0.0,
        verify_ms: float = 0.0,
    ) -> ActionResult:
        return ActionResult(
            action_id=action.action_id,
            action_kind=action.kind,
            target=action.target,
            outcome=outcome,
            evidence=evidence,
            detail=detail[:2000],
            error_type=error_type,
            also_ended=also_ended,
            also_ended_evidence=also_ended_evidence,
            started_at=started_at,
            finished_at=self._clock(),
            act_ms=act_ms,
            verify_ms=verify_ms,
        )


def record_result(ledger: Ledger, incident_id: str, attempt_id: str, result: ActionResult) -> bool:
    """Write one attempt to the ledger; False when this attempt was already recorded."""
    return ledger.record_attempt(ActionAttemptRecord(incident_id=incident_id, attempt_id=attempt_id, result=result))
