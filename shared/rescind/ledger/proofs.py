"""Actions the ledger already proves done before a run acts: a leak's kill first, read back.

The start function kills a located leak's credential and records each step under the plan's own action id, as
attempt `<incident>.kill-first.<time>.<n>` (rescind.leaks.kill). The run's plan is made from the same request, so
its step on that credential has the same id. `proven_by_kill` finds those steps whose kill the ledger holds with
read-back evidence: the run leaves them out of Contain, Revoke and Verify, and the closure names each one dead
with the kill's attempt and evidence. Anything else (no kill attempt, a kill whose read-back did not confirm it, a
step the kill did not make: a rotation, a key's delete, an entity the run decided to disable, a revocation that
lists child tokens) goes through the run as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from rescind.ledger.types import ActionAttemptRecord
from rescind.models import Action

KILL_FIRST_MARK = ".kill-first."
# Where attempts sit in their incident's partition (DynamoDB and SQLite alike). A kill-first attempt has a key
# range of its own, so a verified run's closure and a resumed leak run read those alone, never the run's
# thousands: `B#KILL#<attempt id>`; every other attempt `B#ACTION#<action id>#<attempt id>`.
KILL_FIRST_SK_PREFIX = "B#KILL#"
_ACTION_SK_PREFIX = "B#ACTION#"


def kill_first_attempt_id(incident_id: str, stamp: str, position: int) -> str:
    """The attempt id of the `position`th step of one kill-first invocation (`stamp`: its start, to the µs)."""
    return f"{incident_id}{KILL_FIRST_MARK}{stamp}.{position}"


def is_kill_first(attempt_id: str) -> bool:
    return KILL_FIRST_MARK in attempt_id


def attempt_sort_key(record: ActionAttemptRecord) -> str:
    """The attempt's sort key: under KILL_FIRST_SK_PREFIX exactly when `is_kill_first` says it is one."""
    if is_kill_first(record.attempt_id):
        return f"{KILL_FIRST_SK_PREFIX}{record.attempt_id}"
    return f"{_ACTION_SK_PREFIX}{record.result.action_id}#{record.attempt_id}"


def proven_by_kill(
    attempts: Sequence[ActionAttemptRecord], actions: Sequence[Action]
) -> dict[str, ActionAttemptRecord]:
    """The kill-first attempt that proves each of `actions` done, by action id. Its newest kill-first attempt
    decides (a later kill that failed is not outweighed by an earlier one), and proves only when it is the same
    step on the same target, succeeded, and every read-back it made (the credential's, and each token that died
    with it) confirmed the end."""
    newest: dict[str, ActionAttemptRecord] = {}
    for attempt in attempts:
        if not is_kill_first(attempt.attempt_id):
            continue
        seen = newest.get(attempt.result.action_id)
        if seen is None or attempt.result.finished_at >= seen.result.finished_at:
            newest[attempt.result.action_id] = attempt
    proven: dict[str, ActionAttemptRecord] = {}
    for action in actions:
        kill = newest.get(action.action_id)
        if kill is None:
            continue
        result = kill.result
        if (
            result.target.key == action.target.key
            and result.action_kind is action.kind
            and result.outcome.is_success
            and result.evidence
            and all(evidence.confirmed for evidence in (*result.evidence, *result.also_ended_evidence))
            and len(result.also_ended_evidence) == len(result.also_ended)
        ):
            proven[action.action_id] = kill
    return proven
