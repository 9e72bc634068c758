"""What counts as proven by the kill first (rescind.ledger.proofs.proven_by_kill): the same step on the same target,
its newest kill attempt succeeded, and every read-back it made confirmed the end. Nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rescind.ledger.proofs import kill_first_attempt_id, proven_by_kill
from rescind.ledger.types import ActionAttemptRecord
from rescind.models import Action, ActionKind, Evidence, Outcome, VaultTokenRef
from tests.records import attempt_record

pytestmark = pytest.mark.unit

INCIDENT = "leak-abc-1"
TOKEN = VaultTokenRef(accessor="A" * 24)
CHILD = VaultTokenRef(accessor="C" * 24)
REVOKE = Action(kind=ActionKind.REVOKE, target=TOKEN, reason="leaked")
DEAD = Evidence(check=f"lookup-accessor {TOKEN.accessor}", observed="invalid accessor: no live token", confirmed=True)
ALIVE = Evidence(check=f"lookup-accessor {TOKEN.accessor}", observed="token still alive, ttl 60s", confirmed=False)
START = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def attempt(
    outcome: Outcome = Outcome.SUCCEEDED,
    evidence: tuple[Evidence, ...] = (DEAD,),
    *,
    kill: bool = True,
    seconds: int = 0,
    action: Action = REVOKE,
    children: tuple[Evidence, ...] = (),
) -> ActionAttemptRecord:
    at = START + timedelta(seconds=seconds)
    attempt_id = kill_first_attempt_id(INCIDENT, f"s{seconds}", 0) if kill else f"{INCIDENT}-run.revoke.0.0.0"
    also_ended = {"also_ended": (CHILD,) * len(children), "also_ended_evidence": children}
    return attempt_record(
        INCIDENT, attempt_id, action, outcome, evidence=evidence, started_at=at, took_ms=0, **also_ended
    )


def test_a_kill_read_back_dead_proves_the_same_action() -> None:
    recorded = attempt()
    assert proven_by_kill([recorded], [REVOKE]) == {REVOKE.action_id: recorded}


@pytest.mark.parametrize(
    "recorded",
    [
        attempt(Outcome.FAILED, ()),  # Vault refused the kill: no read-back
        attempt(Outcome.FAILED, (ALIVE,)),  # read back alive
        attempt(Outcome.SUCCEEDED, ()),  # no evidence at all
        attempt(children=(ALIVE,)),  # a token that died with it was read back alive
        attempt(kill=False),  # the run's own attempt, not the kill's
    ],
    ids=["refused", "read back alive", "no evidence", "child alive", "not a kill"],
)
def test_anything_short_of_a_confirmed_kill_proves_nothing(recorded: ActionAttemptRecord) -> None:
    assert proven_by_kill([recorded], [REVOKE]) == {}


def test_a_planned_step_the_kill_did_not_make_is_not_proven_by_it() -> None:
    # The run's plan lists the token's tree: another action id, so the kill of the bare revocation does not prove it
    listing = REVOKE.model_copy(update={"params": REVOKE.params.model_copy(update={"child_tokens": (CHILD.accessor,)})})
    listing = Action.model_validate(listing.model_dump())
    assert proven_by_kill([attempt()], [listing]) == {}


def test_the_newest_kill_decides() -> None:
    # A duplicate delivery's later kill failed: the earlier success does not outweigh it, and the run acts
    assert proven_by_kill([attempt(seconds=0), attempt(Outcome.FAILED, (), seconds=5)], [REVOKE]) == {}
    later = attempt(Outcome.ALREADY_ABSENT, seconds=5)
    assert proven_by_kill([attempt(Outcome.FAILED, (), seconds=0), later], [REVOKE]) == {REVOKE.action_id: later}
