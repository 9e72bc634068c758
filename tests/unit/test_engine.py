"""The engine's own logic: act, verify, retry, dry run. Backends here are small in-memory stores that
keep real state, so verification reads what act did (or did not do); the real backends are tested in
tests/integration."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from rescind.engine.executor import ActionEngine
from rescind.exceptions import ActionFailed, VaultUnavailable
from rescind.holds import GuardFacts
from rescind.models import Action, ActOutcome, CredentialKind, Evidence, Outcome, Plan, VaultTokenRef

ACCESSORS = ["A" * 24, "B" * 24, "C" * 24]


@dataclass
class TokenStore:
    """Live accessors; revoke removes one unless told to lie, or to fail a number of times first."""

    alive: set[str] = field(default_factory=lambda: set(ACCESSORS))
    kinds: frozenset[CredentialKind] = frozenset({CredentialKind.VAULT_TOKEN})
    lie: bool = False
    transient_failures: int = 0
    acted: list[str] = field(default_factory=list)

    def act(self, action: Action, *, seen: GuardFacts | None = None) -> ActOutcome:
        assert isinstance(action.target, VaultTokenRef)
        accessor = action.target.accessor
        self.acted.append(accessor)
        if self.transient_failures:
            self.transient_failures -= 1
            raise VaultUnavailable("503 from the test store")
        if accessor not in self.alive:
            return ActOutcome(changed=False, absent=True, detail="already absent")
        if not self.lie:
            self.alive.discard(accessor)
        return ActOutcome(changed=True, detail="revoked")

    def verify(self, action: Action) -> Evidence:
        assert isinstance(action.target, VaultTokenRef)
        dead = action.target.accessor not in self.alive
        return Evidence(check="store lookup", observed="absent" if dead else "still present", confirmed=dead)


def _revoke(accessor: str) -> Action:
    return Action(kind="revoke", target=VaultTokenRef(accessor=accessor), reason="test")


def test_an_action_is_verified_and_a_second_run_is_already_absent() -> None:
    store = TokenStore()
    engine = ActionEngine([store])
    first = engine.execute(_revoke(ACCESSORS[0]))
    second = engine.execute(_revoke(ACCESSORS[0]))
    assert first.outcome is Outcome.SUCCEEDED
    assert second.outcome is Outcome.ALREADY_ABSENT
    assert second.evidence[0].confirmed
    assert ACCESSORS[0] not in store.alive


def test_a_backend_that_says_done_but_did_nothing_is_caught_by_verification() -> None:
    engine = ActionEngine([TokenStore(lie=True)])
    result = engine.execute(_revoke(ACCESSORS[0]))
    assert result.outcome is Outcome.FAILED
    assert result.error_type == "CredentialStillAlive"


def test_transient_errors_raise_from_execute_and_are_retried_by_run_plan() -> None:
    store = TokenStore(transient_failures=2)
    engine = ActionEngine([store], retry_backoff_seconds=0)
    with pytest.raises(VaultUnavailable):
        engine.execute(_revoke(ACCESSORS[0]))
    (result,) = engine.run_plan(Plan.ordered("p", [_revoke(ACCESSORS[0])]))
    assert result.outcome is Outcome.SUCCEEDED


def test_transient_errors_that_outlast_the_retries_fail_the_action_not_the_plan() -> None:
    store = TokenStore(transient_failures=100)
    engine = ActionEngine([store], transient_retries=2, retry_backoff_seconds=0)
    results = engine.run_plan(Plan.ordered("p", [_revoke(ACCESSORS[0]), _revoke(ACCESSORS[1])]))
    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.FAILED]
    assert results[0].error_type == "VaultUnavailable"
    assert len(store.acted) == 6  # 1 + 2 retries per action, and no more


def test_a_dry_run_calls_nothing() -> None:
    store = TokenStore()
    results = ActionEngine([store]).run_plan(Plan.ordered("p", [_revoke(a) for a in ACCESSORS], dry_run=True))
    assert {r.outcome for r in results} == {Outcome.SKIPPED}
    assert store.acted == []
    assert store.alive == set(ACCESSORS)


def test_a_kind_without_a_handler_fails_that_action_only() -> None:
    engine = ActionEngine([TokenStore()])
    other = Action(
        kind="disable",
        target={"kind": "vault_entity", "entity_id": "0" * 8 + "-0000-0000-0000-" + "0" * 12},
        reason="test",
    )
    results = engine.run_plan(Plan.ordered("p", [other, _revoke(ACCESSORS[0])]))
    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.SUCCEEDED]
    assert results[0].error_type == "UnsupportedAction"


def test_a_refusal_from_the_backend_is_a_failed_result_with_its_type() -> None:
    class Refusing(TokenStore):
        def act(self, action: Action, *, seen: GuardFacts | None = None) -> ActOutcome:
            raise ActionFailed("permission denied on auth/token/revoke-accessor")

    (result,) = ActionEngine([Refusing()]).run_plan(Plan.ordered("p", [_revoke(ACCESSORS[0])]))
    assert result.outcome is Outcome.FAILED
    assert result.error_type == "ActionFailed"
    assert "permission denied" in result.detail
