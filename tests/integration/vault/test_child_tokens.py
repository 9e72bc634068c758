"""The tree under a token, against the real OpenBao server.

revoke-accessor ends a token and every token created under it. Vault names neither a token's parent nor its
children, so Rescind bounds the tree from above (see `rescind.vault.tokens`): the guard sees every held or
protected token that may die, and a revocation records every token that did die with it.

Workload tokens here come from a userpass login, as real workloads' do from an auth method: an orphan with an
identity entity, whose children inherit the entity.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import hvac
import hvac.exceptions
import pytest

from rescind.discovery import DiscoveryScope
from rescind.engine.factory import build_engine
from rescind.guard import VAULT_HOLD_KEY, GuardPolicy
from rescind.leaks.plan import build_leak_plan
from rescind.ledger import Trigger
from rescind.models import Action, ActionKind, Outcome, VaultTokenRef
from rescind.offboarding.plan import build_offboarding_plan
from rescind.response.types import GuardDecision, ResponseRequest
from rescind.vault.token_tree import find_possible_child_tokens
from rescind.vault.tokens import lookup_token_by_accessor
from rescind_local import LocalOpenBao
from tests.conftest import BackendCalls

pytestmark = pytest.mark.integration

WORKLOAD = "spiffe://rescind.test/ns/jobs/sa/child-maker"
PROTECTED = "spiffe://rescind.test/ns/vault/sa/unseal"


@dataclass
class Token:
    value: str  # stays in the test: it only proves by use whether the token is alive
    accessor: str

    @property
    def ref(self) -> VaultTokenRef:
        return VaultTokenRef(accessor=self.accessor)

    def client(self, openbao: LocalOpenBao) -> hvac.Client:
        return hvac.Client(openbao.addr, token=self.value)

    def works(self, openbao: LocalOpenBao) -> bool:
        try:
            self.client(openbao).auth.token.lookup_self()
        except hvac.exceptions.Forbidden:
            return False
        return True


@pytest.fixture
def token_maker(vault: hvac.Client, unique: str) -> Iterator[str]:
    """A userpass mount whose users may create tokens: its name, for `login`."""
    mount = f"userpass-{unique}"
    vault.sys.enable_auth_method("userpass", path=mount)
    vault.sys.create_or_update_policy(
        f"child-maker-{unique}", 'path "auth/token/create" { capabilities = ["create", "update"] }'
    )
    vault.write_data(
        f"auth/{mount}/users/workload", data={"password": unique, "token_policies": f"default,child-maker-{unique}"}
    )
    yield mount
    vault.sys.disable_auth_method(mount)


def login(openbao: LocalOpenBao, mount: str, password: str) -> Token:
    auth = hvac.Client(openbao.addr).auth.userpass.login("workload", password, mount_point=mount)["auth"]
    return Token(auth["client_token"], auth["accessor"])


def create_child(openbao: LocalOpenBao, parent: Token, **options: object) -> Token:
    auth = parent.client(openbao).auth.token.create(ttl="1h", **options)["auth"]
    return Token(auth["client_token"], auth["accessor"])


def named_request(*tokens: Token) -> ResponseRequest:
    return ResponseRequest(
        incident_id=f"manual-child-{tokens[0].accessor[:8]}",
        workload_id=WORKLOAD,
        reason="child tokens",
        trigger=Trigger(source="rescind.cli", detail_type="Manual Revocation", event_id="child-tokens"),
        terminated_at=datetime.now(UTC),
        credentials=tuple(token.ref for token in tokens),
    )


def test_an_offboarding_is_refused_when_a_held_token_may_die_with_its_parent(
    vault: hvac.Client, openbao: LocalOpenBao, token_maker: str, unique: str
) -> None:
    # Given a workload token that created a token its owner holds
    parent = login(openbao, token_maker, unique)
    held = create_child(openbao, parent, policies=["default"], meta={VAULT_HOLD_KEY: "incident-review"})

    # When its end is planned
    _, planned = build_offboarding_plan(
        named_request(parent), vault=vault, aws=None, inventory=None, scope=DiscoveryScope(), policy=GuardPolicy()
    )

    # Then the guard refuses, naming the held token, and both still work
    assert planned.decision is GuardDecision.REFUSE
    assert held.accessor in planned.decision_reason
    assert VAULT_HOLD_KEY in planned.decision_reason
    assert parent.works(openbao)
    assert held.works(openbao)


def test_an_offboarding_is_refused_when_a_protected_workloads_token_may_die_with_its_parent(
    vault: hvac.Client, openbao: LocalOpenBao, token_maker: str, unique: str
) -> None:
    parent = login(openbao, token_maker, unique)
    create_child(openbao, parent, policies=["default"], meta={"spiffe_id": PROTECTED})

    _, planned = build_offboarding_plan(
        named_request(parent),
        vault=vault,
        aws=None,
        inventory=None,
        scope=DiscoveryScope(),
        policy=GuardPolicy(protected_workloads=frozenset({PROTECTED})),
    )

    assert planned.decision is GuardDecision.REFUSE
    assert f"protected workload {PROTECTED}" in planned.decision_reason


def test_a_revocation_records_every_token_that_died_with_it_and_nothing_else_dies(
    vault: hvac.Client, openbao: LocalOpenBao, token_maker: str, unique: str
) -> None:
    # Given a workload token with a child and a grandchild, and tokens of another login of the same user and
    # of the root token, made after it
    parent = login(openbao, token_maker, unique)
    child = create_child(openbao, parent, policies=["default", f"child-maker-{unique}"])
    grandchild = create_child(openbao, child, policies=["default"])
    sibling_login = login(openbao, token_maker, unique)
    root_made = vault.auth.token.create(ttl="1h")["auth"]
    unrelated = Token(root_made["client_token"], root_made["accessor"])

    # When the parent is revoked
    result = build_engine(vault).execute(Action(kind=ActionKind.REVOKE, target=parent.ref, reason="test"))

    # Then the result names exactly the two tokens that died with it, and every other token still works
    assert result.outcome is Outcome.SUCCEEDED
    assert set(result.also_ended) == {child.ref, grandchild.ref}
    assert "2 token(s) it could have created" in result.detail
    # each with its own read-back, saying only what the live bound knows: it could have been created under it
    assert {item.observed for item in result.also_ended_evidence} == {
        f"invalid accessor: alive before revoking {parent.accessor}, which could have created it"
    }
    assert not any(token.works(openbao) for token in (parent, child, grandchild))
    assert sibling_login.works(openbao)
    assert unrelated.works(openbao)


def test_a_possible_child_whose_own_ttl_ran_out_meanwhile_is_recorded_as_maybe_expired(
    vault: hvac.Client, openbao: LocalOpenBao, token_maker: str, unique: str
) -> None:
    for _ in range(5):  # a child that expires before the revocation reads it is not a candidate: try again
        # Given a workload token whose child has a second or less left
        parent = login(openbao, token_maker, unique)
        child = parent.client(openbao).auth.token.create(ttl="3s", policies=["default"])["auth"]["accessor"]
        while (state := lookup_token_by_accessor(vault, child)) is not None and state.ttl_seconds > 1:
            time.sleep(0.05)

        # When the parent is revoked
        result = build_engine(vault).execute(Action(kind=ActionKind.REVOKE, target=parent.ref, reason="test"))

        # Then the child is recorded dead, and its evidence says it may have expired rather than died with its parent
        assert result.outcome is Outcome.SUCCEEDED
        if result.also_ended:
            (evidence,) = result.also_ended_evidence
            assert evidence.confirmed
            assert evidence.observed.endswith("its own TTL ran out meanwhile: it may have expired instead")
            return
    pytest.fail("the child expired before each revocation read it")


def test_a_token_whose_entity_was_disabled_first_is_revoked_with_its_tree(
    vault: hvac.Client, openbao: LocalOpenBao, token_maker: str, unique: str
) -> None:
    # Given a workload token with a child, whose entity containment has already disabled (a leak's plan does)
    parent = login(openbao, token_maker, unique)
    child = create_child(openbao, parent, policies=["default"])
    entity_id = vault.auth.token.lookup_accessor(parent.accessor)["data"]["entity_id"]
    vault.write_data(f"identity/entity/id/{entity_id}", data={"disabled": True})

    # When the token is revoked (OpenBao will not evaluate its capabilities while its entity is disabled)
    result = build_engine(vault).execute(Action(kind=ActionKind.REVOKE, target=parent.ref, reason="test"))

    # Then it and its child are dead, and the result says so
    assert result.outcome is Outcome.SUCCEEDED, result.detail
    assert result.also_ended == (child.ref,)
    vault.write_data(f"identity/entity/id/{entity_id}", data={"disabled": False})
    assert not parent.works(openbao)
    assert not child.works(openbao)


def test_a_leak_kills_the_tree_under_the_leaked_token_even_a_held_child_and_records_it(
    vault: hvac.Client, openbao: LocalOpenBao, token_maker: str, unique: str
) -> None:
    # Given a leaked token under which a token marked "held" was created: its holder may be the attacker
    leaked = login(openbao, token_maker, unique)
    held = create_child(openbao, leaked, policies=["default"], meta={VAULT_HOLD_KEY: "true"})

    # When the leak response is planned and run
    plan, planned = build_leak_plan(named_request(leaked), vault=vault, aws=None, policy=GuardPolicy())
    assert planned.decision is GuardDecision.PROCEED
    results = build_engine(vault).run_plan(plan)

    # Then the held child died with it, and the result says so
    assert [result.outcome for result in results] == [Outcome.SUCCEEDED]
    assert results[0].also_ended == (held.ref,)
    assert not held.works(openbao)


def test_a_token_that_cannot_create_tokens_is_not_looked_under(
    vault: hvac.Client, openbao: LocalOpenBao, backend_calls: BackendCalls
) -> None:
    auth = vault.auth.token.create(ttl="1h", policies=["default"], no_parent=True)["auth"]

    parent = lookup_token_by_accessor(vault, auth["accessor"])
    assert parent is not None
    assert find_possible_child_tokens(vault, parent) == []
    assert not any("/auth/token/accessors" in call for call in backend_calls.vault)  # no scan of every token


def test_when_the_tree_cannot_be_told_apart_the_guard_errs_towards_refusing(
    vault: hvac.Client, openbao: LocalOpenBao, token_maker: str, unique: str
) -> None:
    """Tokens with no entity, made by the root token after a parent that could have made them, may be its
    children: Vault does not say. A held one among them stops an offboarding rather than risk killing it."""
    parent_auth = vault.auth.token.create(ttl="1h", policies=["default", f"child-maker-{unique}"])["auth"]
    parent = Token(parent_auth["client_token"], parent_auth["accessor"])
    held_elsewhere = vault.auth.token.create(ttl="1h", policies=["default"], meta={VAULT_HOLD_KEY: "true"})["auth"]

    _, planned = build_offboarding_plan(
        named_request(parent), vault=vault, aws=None, inventory=None, scope=DiscoveryScope(), policy=GuardPolicy()
    )

    assert planned.decision is GuardDecision.REFUSE
    assert held_elsewhere["accessor"] in planned.decision_reason
    vault.auth.token.revoke_accessor(held_elsewhere["accessor"])
