"""The kill-first decision (rescind.leaks.kill.decide_kill): kill or not, from the plan the run will make, the
locate's exactness and each target's hold and owners as the locate read them. Pure: nothing is called."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rescind.guard import GuardPolicy
from rescind.holds import NO_GUARD_FACTS, GuardFacts
from rescind.leaks.kill import KILL_FIRST, KillDecision, decide_kill
from rescind.leaks.plan import plan_to_contain_leak
from rescind.leaks.types import LocatedLeak
from rescind.models import (
    ActionKind,
    AppRoleSecretIdRef,
    CredentialRef,
    IamAccessKeyRef,
    KvSecretRef,
    PkiCertificateRef,
    Plan,
    VaultEntityRef,
    VaultTokenRef,
)

pytestmark = pytest.mark.unit

FOUND_AT = datetime(2026, 12, 1, tzinfo=UTC)
TOKEN = VaultTokenRef(accessor="A" * 24)
ENTITY = VaultEntityRef(entity_id=str(uuid.UUID(int=1)))
SECRET_ID = AppRoleSecretIdRef(role_name="app", accessor=str(uuid.UUID(int=2)))
KEY = IamAccessKeyRef(account_id="123456789012", user_name="deploy-bot", access_key_id="AKIA" + "B" * 16)
KV = KvSecretRef(path="apps/db")
CERT = PkiCertificateRef(serial="1a:2b:3c")
OWNER = "spiffe://prod.example/app"
POLICY = GuardPolicy(protected_workloads=frozenset({"spiffe://prod.example/vault-itself"}), blast_radius_cap=4)


def in_scope(_ref: CredentialRef) -> str | None:
    return None


def decide(
    *refs: CredentialRef,
    exact: bool = True,
    facts: dict[str, GuardFacts] | None = None,
    workload_id: str = OWNER,
    dry_run: bool = False,
    policy: GuardPolicy = POLICY,
    scope: Callable[[CredentialRef], str | None] = in_scope,
) -> tuple[Plan, KillDecision]:
    plan = plan_to_contain_leak("leak-" + "c" * 24 + "-1", refs, reason="leaked", found_at=FOUND_AT, dry_run=dry_run)
    seen = {ref.key: GuardFacts(hold=None, owners=frozenset({OWNER})) for ref in refs} if facts is None else facts
    located = LocatedLeak(credentials=refs, owner=OWNER, evidence="lookup matched", exact=exact, guard_facts=seen)
    return plan, decide_kill(plan, located, seen, workload_id=workload_id, policy=policy, in_scope=scope)


@pytest.mark.parametrize(
    ("refs", "killed"),
    [
        ((TOKEN,), [(ActionKind.REVOKE, TOKEN)]),
        ((ENTITY, TOKEN), [(ActionKind.REVOKE, TOKEN)]),  # the entity is the run's, once it read every token
        ((SECRET_ID,), [(ActionKind.REVOKE, SECRET_ID)]),
        ((KEY,), [(ActionKind.DISABLE, KEY)]),  # deactivated; the delete stays the run's
    ],
    ids=["token", "token and its entity", "secret-id", "access key"],
)
def test_an_exact_locate_within_policy_is_killed_by_its_reversible_step(
    refs: tuple[CredentialRef, ...], killed: list[tuple[ActionKind, CredentialRef]]
) -> None:
    plan, decision = decide(*refs)
    assert decision.kill, decision.why
    assert [(action.kind, action.target) for action in decision.actions] == killed
    # the same actions, so the same ids, as the plan the run makes
    assert {action.action_id for action in decision.actions} <= {action.action_id for action in plan.actions}


def test_an_access_keys_deletion_is_never_made_first() -> None:
    plan, decision = decide(KEY)
    assert [action.kind for action in plan.actions] == [ActionKind.DISABLE, ActionKind.DELETE]
    assert ActionKind.DELETE not in {action.kind for action in decision.actions}


@pytest.mark.parametrize("ref", [KV, CERT], ids=["kv rotation", "certificate revocation"])
def test_what_has_no_reversible_kill_is_left_to_the_run(ref: CredentialRef) -> None:
    _, decision = decide(ref)
    assert not decision.kill
    assert decision.actions == ()
    assert "no step of the plan is a reversible kill" in decision.why


def test_a_locate_that_is_not_exact_kills_nothing() -> None:
    _, decision = decide(KEY, exact=False)
    assert not decision.kill
    assert "not exact" in decision.why


HELD = GuardFacts(hold="metadata rescind_hold", owners=frozenset({OWNER}))


@pytest.mark.parametrize(
    ("facts", "why"),
    [
        ({TOKEN.key: HELD, ENTITY.key: NO_GUARD_FACTS}, "on hold"),
        ({TOKEN.key: NO_GUARD_FACTS, ENTITY.key: HELD}, "on hold"),  # a hold on anything stops the whole plan
        (
            {
                TOKEN.key: GuardFacts(hold=None, owners=frozenset({"spiffe://prod.example/vault-itself"})),
                ENTITY.key: NO_GUARD_FACTS,
            },
            "protected workload",
        ),
        ({TOKEN.key: NO_GUARD_FACTS}, "were not read"),  # the entity's facts are unknown: never assumed clear
    ],
    ids=["token held", "entity held", "owner protected", "facts missing"],
)
def test_a_hold_or_a_protected_owner_on_any_target_kills_nothing(facts: dict[str, GuardFacts], why: str) -> None:
    _, decision = decide(ENTITY, TOKEN, facts=facts)
    assert not decision.kill
    assert decision.actions == ()
    assert decision.why.startswith("guard: refuse")
    assert why in decision.why


def test_a_protected_workload_kills_nothing() -> None:
    _, decision = decide(TOKEN, workload_id="spiffe://prod.example/vault-itself")
    assert not decision.kill
    assert "protected workload" in decision.why


def test_a_dry_run_kills_nothing() -> None:
    _, decision = decide(TOKEN, dry_run=True)
    assert not decision.kill
    assert decision.why.startswith("guard: dry_run")


def test_a_plan_above_the_cap_waits_for_approval_and_kills_nothing() -> None:
    keys = [KEY.model_copy(update={"access_key_id": f"AKIA{index:016d}"}) for index in range(3)]  # 6 actions > 4
    _, decision = decide(*keys)
    assert not decision.kill
    assert decision.why.startswith("guard: needs_approval")


def test_a_target_out_of_scope_kills_nothing() -> None:
    _, decision = decide(SECRET_ID, scope=lambda ref: f"target out of scope: {ref.key}")
    assert not decision.kill
    assert "out of scope" in decision.why


@given(
    st.lists(st.sampled_from([TOKEN, ENTITY, SECRET_ID, KEY, KV, CERT]), min_size=1, max_size=6, unique=True),
    st.booleans(),
    st.booleans(),
)
def test_only_the_reversible_kills_of_an_exact_unheld_plan_are_ever_made_first(
    refs: list[CredentialRef], exact: bool, held: bool
) -> None:
    facts = {ref.key: HELD if held else NO_GUARD_FACTS for ref in refs}
    plan, decision = decide(*refs, exact=exact, facts=facts, policy=GuardPolicy(blast_radius_cap=25))
    assert all(KILL_FIRST[action.target.kind] is action.kind for action in decision.actions)
    assert set(decision.actions) <= set(plan.actions)
    assert decision.kill == (exact and not held and any(a.target.kind in KILL_FIRST for a in plan.actions))
