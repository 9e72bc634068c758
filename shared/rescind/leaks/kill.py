"""Kill first: the start function ends a located leak's credential at once, before the state machine starts.

Attackers use a leaked key within about a minute; the state machine's plan, guard and Map states take seconds.
So the function that located the credential makes the one step that stops it working (revoke a token or an AppRole
secret-id, deactivate an IAM access key) and reads it back, before it even claims the incident
(`kill_before_claim`); once claimed, it records each step under the action id the state machine's plan gives the
same step (`record_kill`). The run that starts next acts on the same plan: that step finds the credential already
dead (already absent or applied, read back again), and the run rotates, deletes, verifies, records and notifies as
before, and disables a leaked token's entity when it held nothing else (rescind.leaks.plan).

Nothing is killed first unless all of these hold, and then the state machine alone decides, as it always did:
- the locate was exact (the value or key id itself matched the credential, `LocatedLeak.exact`);
- the guard passes on the whole plan: no hold and no protected owner on anything it touches (read from the
  locate's own lookup where it made one, `LocatedLeak.guard_facts`; else one read by the credential's kind),
  not a dry run, not above the blast-radius cap, nothing that needs approval;
- every target is in the configured scope.
Only the steps in `KILL_FIRST` are made here: deletion, rotation and certificate revocation stay in the state
machine. A kill that fails (Vault unavailable) is recorded as failed and the run starts anyway, and kills itself.
No call to Vault or AWS comes before the kill but the locate's own lookup and the guard's facts it did not read:
a token's tree is named after its revocation, from the issuance index (`kill_first_engine`), and whether its entity
holds no other live token (then it is disabled too) is the run's plan's to read (rescind.leaks.plan). In a warm
function (pinned by tests/integration/leaks/test_kill_first_calls.py): a token, `auth/token/lookup`; a secret-id,
`secret-id/lookup` on the roles it last listed; an access key, `get-access-key-last-used` (its user),
`list-access-keys` of that user (exact in that account, and its status) and `list-user-tags` (hold and owner),
the last two read together (both need only the user's name).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.engine.executor import ActionEngine, record_result
from rescind.engine.tasks import Executed, execute_checked
from rescind.exceptions import PolicyRefusal, RescindError, TransientError
from rescind.guard import GuardPolicy, guard_refusal, is_protected, read_guard_facts
from rescind.holds import GuardFacts
from rescind.leaks.types import LocatedLeak
from rescind.ledger.proofs import kill_first_attempt_id
from rescind.models import Action, ActionKind, CredentialKind, CredentialRef, Outcome, Plan
from rescind.models.refs import acted_on
from rescind.models.results import utc_now
from rescind.response.plan import decide_guard
from rescind.response.types import GuardDecision

if TYPE_CHECKING:
    from rescind.discovery import DiscoveryScope
    from rescind.engine.base import CredentialHandler
    from rescind.issuance.base import IssuanceIndex
    from rescind.kinds import Backends, GuardRead
    from rescind.ledger.base import Ledger

# The step that stops each kind working at once. Each is the one its plan already starts with for that kind. A leaked
# token's entity is not here: whether it may be disabled needs every live token read, after the kill (leaks.plan).
KILL_FIRST: Mapping[CredentialKind, ActionKind] = {
    CredentialKind.VAULT_TOKEN: ActionKind.REVOKE,
    CredentialKind.APPROLE_SECRET_ID: ActionKind.REVOKE,
    CredentialKind.IAM_ACCESS_KEY: ActionKind.DISABLE,
}


def kills_first(action: Action) -> bool:
    return KILL_FIRST.get(action.target.kind) is action.kind


class KillDecision(BaseModel):
    """Whether the start function kills, which planned steps, and why (or why not)."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    kill: bool
    why: Annotated[str, Field(max_length=1000)]
    actions: tuple[Action, ...] = ()


def decide_kill(
    plan: Plan,
    located: LocatedLeak,
    facts: Mapping[str, GuardFacts],
    *,
    workload_id: str,
    policy: GuardPolicy,
    in_scope: Callable[[CredentialRef], str | None],
) -> KillDecision:
    """Kill or not, from the plan the state machine will make, the locate's exactness and every target's facts.

    `facts` holds each planned target's hold and owners; `in_scope` says why a target is outside the configured
    scope (None when inside). Pure: it reads nothing."""
    not_worth = nothing_to_kill(plan, located)
    if not_worth is not None:
        return KillDecision(kill=False, why=not_worth)
    refused = _refused(plan, facts, workload_id=workload_id, policy=policy)
    decision, why = decide_guard(
        plan,
        refused=refused,
        nothing_to_do="no action applies to the located credential",
        holds=lambda: [],  # a hold is a refusal in `_refused`, read from the same facts
        guarded_children=lambda: [],  # a leaked token's tree dies with it (see guard_decision)
        policy=policy,
        count_children=False,
    )
    if decision is not GuardDecision.PROCEED:
        return KillDecision(kill=False, why=f"guard: {decision}: {why}")
    actions = tuple(action for action in plan.actions if kills_first(action))
    for action in actions:
        outside = in_scope(action.target)
        if outside is not None:
            return KillDecision(kill=False, why=f"{outside}: the run records it")
    return KillDecision(kill=True, why="guard passed on the locate's lookup", actions=actions)


def nothing_to_kill(plan: Plan, located: LocatedLeak) -> str | None:
    """Why nothing is killed first whatever the guard says (then no fact is read); None when the guard decides."""
    if not located.exact:
        return "the locate is not exact (not the leaked value itself): the run decides"
    if not any(kills_first(action) for action in plan.actions):
        return "no step of the plan is a reversible kill: the run acts"
    return None


def _refused(plan: Plan, facts: Mapping[str, GuardFacts], *, workload_id: str, policy: GuardPolicy) -> str | None:
    """A protected workload, or a hold or protected owner on any target of the plan: the whole plan stops."""
    if is_protected(workload_id, policy):
        return f"the credential belongs to protected workload {workload_id}"
    for target in {action.target.key: action.target for action in plan.actions}.values():
        seen = facts.get(target.key)
        if seen is None:
            return f"{target.key}: its hold and owners were not read"
        refusal = guard_refusal(target, seen, policy)
        if refusal is not None:
            return refusal
    return None


def facts_of_plan(plan: Plan, located: LocatedLeak, read: GuardRead) -> dict[str, GuardFacts]:
    """Each planned target's hold and owners: the locate's own lookup's where it made one, else one read by kind."""
    facts = dict(located.guard_facts)
    for action in plan.actions:
        if action.target.key not in facts:
            facts[action.target.key] = read_guard_facts(read, action.target)
    return facts


class KillOutcome(BaseModel):
    """One kill-first step, as the start function's result names it: references and where, never a value."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    action_id: str
    target: str  # the reference's key
    outcome: Outcome
    acted_on: Annotated[str, Field(max_length=500)]  # the Vault (address) or AWS account acted on
    detail: Annotated[str, Field(max_length=2000)] = ""
    error_type: str | None = None


class KillReport(BaseModel):
    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    killed: bool  # every kill-first step succeeded and was read back dead
    why: Annotated[str, Field(max_length=1000)]
    steps: tuple[KillOutcome, ...] = ()


@dataclass(frozen=True)
class KillFirst:
    """What the start function kills with: an engine holding only the kill-first kinds' handlers
    (`kill_first_engine`), the guard's read for facts the locate did not see, the scope and policy, and the Vault's
    address to name."""

    engine: ActionEngine
    read: GuardRead
    scope: DiscoveryScope
    policy: GuardPolicy
    vault_address: str

    def acted_on(self, ref: CredentialRef) -> str:
        return acted_on(ref, self.vault_address)


def kill_first_engine(backends: Backends, index: IssuanceIndex | None) -> ActionEngine:
    """The kill-first kinds' handlers, nothing else. With the issuance index, a token's revocation reads nothing
    before it and names the tree the index lists under it after (rescind.vault.tokens.revoke_token_first); without,
    the live bound on the tree is read before it, as the run's revocation does."""
    from rescind.kinds import kind_spec

    def build(kind: CredentialKind) -> CredentialHandler:  # on the first kill of its kind: its module loads then
        if kind is not CredentialKind.VAULT_TOKEN or index is None:
            return kind_spec(kind).build_handler(backends)
        from rescind.vault.tokens import VaultTokenHandler

        def indexed_children(accessor: str) -> list[str]:
            from rescind.issuance.tree import indexed_descendant_tokens

            return indexed_descendant_tokens(index, accessor, now=utc_now())

        return VaultTokenHandler(backends.vault, indexed_children=indexed_children)

    return ActionEngine((), builders={kind: partial(build, kind) for kind in KILL_FIRST})


@dataclass(frozen=True)
class KillMade:
    """The kill first, made before the incident is claimed: each step's outcome, read back, not yet recorded."""

    why: str
    steps: tuple[tuple[Action, Executed], ...] = ()


class UnclaimedKill(TransientError):
    """A kill was made, but the incident to record it under could not be claimed: raised so the event is retried."""


def kill_before_claim(plan: Plan, located: LocatedLeak, *, workload_id: str, kill: KillFirst) -> KillMade:
    """Decide, then make each kill-first step through the acting task's own checks (scope, guard on the locate's
    facts, act, read back), with no incident yet: `record_kill` records them once it is claimed. Never raises for
    a step: a failed kill is kept as failed (recorded after), and the run kills it again."""
    from rescind.engine.scope import check_target_in_scope

    def outside_scope(ref: CredentialRef) -> str | None:
        try:
            check_target_in_scope(ref, kill.scope)
        except RescindError as error:
            return str(error)
        return None

    not_worth = nothing_to_kill(plan, located)
    if not_worth is not None:  # decided before any read: a KV value or a certificate costs the start nothing
        return KillMade(why=not_worth)
    try:
        facts = facts_of_plan(plan, located, kill.read)
    except RescindError as error:  # the facts could not be read: no kill, the run reads them again
        return KillMade(why=f"the guard's facts could not be read ({type(error).__name__}): {error}")
    decision = decide_kill(plan, located, facts, workload_id=workload_id, policy=kill.policy, in_scope=outside_scope)
    if not decision.kill:
        return KillMade(why=decision.why)

    def refuse_if_guarded(action: Action) -> None:  # the facts just decided on: no second read
        refusal = guard_refusal(action.target, facts[action.target.key], kill.policy)
        if refusal is not None:
            raise PolicyRefusal(refusal)

    engine = _engine_for(kill, located)
    steps = tuple(
        (
            action,
            execute_checked(
                action,
                dry_run=plan.dry_run,  # never true here: decide_kill refused a dry run
                engine=engine,
                scope=kill.scope,
                refuse_if_guarded=refuse_if_guarded,
                approvals=lambda: (),  # read only for a database root rotation, which is never killed first
            ),
        )
        for action in decision.actions
    )
    return KillMade(why=decision.why, steps=steps)


def _engine_for(kill: KillFirst, located: LocatedLeak) -> ActionEngine:
    """The kill engine, its IAM keys' handler given what the locate listed of each key (its user and status), so
    the deactivation does not list the user's keys again."""
    aws = kill.read.backends.aws
    if not located.key_status or aws is None:
        return kill.engine
    from rescind.aws.iam_keys import IamAccessKeyHandler

    others = {kind: partial(kill.engine.handler_for, kind) for kind in KILL_FIRST}  # built only if used
    return ActionEngine([IamAccessKeyHandler(aws, listed=located.key_status)], builders=others)


def record_kill(made: KillMade, *, incident_id: str, duplicate: bool, kill: KillFirst, ledger: Ledger) -> KillReport:
    """Record each step made under the claimed incident, as its own attempt of the plan's action id. A duplicate
    delivery's steps (the same actions again: already applied or absent, read back) go under the incident it
    duplicates. A write the ledger refuses for now is reported, not raised: the run starts and records its own."""
    stamp = utc_now().strftime("%Y%m%dT%H%M%S%f")  # each invocation is its own attempt
    steps = []
    unrecorded = []
    for index, (action, executed) in enumerate(made.steps):
        try:
            record_result(ledger, incident_id, kill_first_attempt_id(incident_id, stamp, index), executed.result)
        except TransientError as error:
            unrecorded.append(f"{action.target.key} ({type(error).__name__})")
        result = executed.result
        steps.append(
            KillOutcome(
                action_id=result.action_id,
                target=action.target.key,
                outcome=result.outcome,
                acted_on=kill.acted_on(action.target),
                detail=result.detail,
                error_type=result.error_type,
            )
        )
    killed = bool(steps) and all(step.outcome.is_success for step in steps)
    why = made.why if killed or not steps else "a kill-first step failed: the run makes it again"
    if duplicate:
        why = f"a duplicate of incident {incident_id}: {why}; recorded under it"
    if unrecorded:
        why += f"; not recorded (the run records its own): {', '.join(unrecorded)}"
    return KillReport(killed=killed, why=why[:1000], steps=tuple(steps))


def describe_unclaimed(made: KillMade) -> str:
    """What an unclaimed kill did, for the error raised: references, outcomes and where, never a value."""
    return "; ".join(f"{action.kind} {action.target.key}: {executed.result.outcome}" for action, executed in made.steps)
