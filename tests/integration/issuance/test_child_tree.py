"""A token's tree from the issuance index, against a real OpenBao (file audit device, hmac_accessor=false).

The live bound on a token's tree (`rescind.vault.tokens`) looks under a token only while its policy lets it create
tokens. Here every parent's policy is narrowed after it made its children, as an owner tightening a policy would:
the live bound then sees no child, and only the index (each issuance's parent accessor) knows the tree.

Given the audit lines indexed through the IndexAuditLog handler into moto DynamoDB,
When a revocation of the parent is planned and run,
Then the plan lists every descendant under the parent's revoke action, a held child refuses it, the blast-radius cap
counts the children, and the ledger records each child that died with its own read-back.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest

from rescind.aws.session import AwsClientFactory
from rescind.discovery import DiscoveryScope
from rescind.engine.factory import build_engine
from rescind.engine.tasks import ExecuteActionRequest, execute_and_record
from rescind.guard import VAULT_HOLD_KEY, GuardPolicy, refuse_guarded_target
from rescind.issuance.dynamodb import DynamoDbIssuanceIndex
from rescind.kinds import Backends
from rescind.leaks.kill import kill_first_engine
from rescind.leaks.plan import build_leak_plan
from rescind.ledger.sqlite import SqliteLedger
from rescind.models import Action, ActionKind, Outcome
from rescind.offboarding.plan import build_offboarding_plan, plan_offboarding
from rescind.response.types import GuardDecision
from rescind.vault.client import own_token_accessor
from rescind_local import LocalOpenBao
from tests.conftest import BackendCalls
from tests.integration.issuance.test_audit_index import (
    audit_lines,
    bao,  # noqa: F401  (the module's OpenBao, hmac_accessor=false)
    create_table,
    invoke,
    subscription_event,
)
from tests.integration.vault.test_child_tokens import Token, create_child, named_request

pytestmark = pytest.mark.integration

WORKLOAD = "spiffe://rescind.test/ns/jobs/sa/child-maker"


@dataclass
class Tree:
    vault: hvac.Client
    parent: Token
    children: dict[str, Token]
    index: DynamoDbIssuanceIndex


def grow_tree(
    bao: LocalOpenBao,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    *,
    held: bool,
) -> Tree:
    """A parent token with a child (held, or not), a second child and its grandchild; then the parent's policy no
    longer lets it create tokens, and the audit lines are indexed."""
    vault = hvac.Client(url=bao.addr, token=bao.root_token, timeout=10)
    maker = f"maker-{secrets.token_hex(4)}"
    vault.sys.create_or_update_policy(maker, 'path "auth/token/create" { capabilities = ["update"] }')
    start = bao.audit_log.stat().st_size
    auth = vault.auth.token.create(policies=[maker], meta={"spiffe_id": WORKLOAD}, ttl="1h")["auth"]
    parent = Token(auth["client_token"], auth["accessor"])
    first_meta = {VAULT_HOLD_KEY: "incident-review"} if held else {}
    children = {"first": create_child(bao, parent, policies=["default"], meta=first_meta)}
    children["second"] = create_child(bao, parent, policies=["default", maker])
    children["grandchild"] = create_child(bao, children["second"], policies=["default"])
    vault.sys.create_or_update_policy(maker, 'path "auth/token/create" { capabilities = ["deny"] }')
    index = create_table()
    assert invoke(subscription_event(audit_lines(bao.audit_log, start)), monkeypatch)["refused"] == 0
    return Tree(vault, parent, children, index)


def test_a_held_child_known_only_from_the_index_refuses_its_parents_revocation(
    bao: LocalOpenBao,  # noqa: F811
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tree = grow_tree(bao, monkeypatch, held=True)
    scope = DiscoveryScope(issuance_index=tree.index)

    _, planned = build_offboarding_plan(
        named_request(tree.parent), vault=tree.vault, aws=None, inventory=None, scope=scope, policy=GuardPolicy()
    )

    assert planned.decision is GuardDecision.REFUSE, planned.decision_reason
    held = tree.children["first"].accessor
    assert f"token accessor {held} (metadata {VAULT_HOLD_KEY}) was created under {tree.parent.accessor}" in (
        planned.decision_reason
    )
    assert "the issuance index lists 3 child token(s)" in planned.decision_reason
    assert tree.parent.works(bao)
    assert all(child.works(bao) for child in tree.children.values())

    # Without the index the live bound sees no child under a token that can no longer create tokens
    _, blind = build_offboarding_plan(
        named_request(tree.parent),
        vault=tree.vault,
        aws=None,
        inventory=None,
        scope=DiscoveryScope(),
        policy=GuardPolicy(),
    )
    assert blind.decision is GuardDecision.PROCEED


def test_the_cap_counts_the_children_and_the_ledger_records_each_with_its_own_read_back(
    bao: LocalOpenBao,  # noqa: F811
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    tree = grow_tree(bao, monkeypatch, held=False)
    scope = DiscoveryScope(issuance_index=tree.index)
    accessors = {child.accessor for child in tree.children.values()}

    # One action, three children ending with it: above a cap of 3
    _, capped = build_offboarding_plan(
        named_request(tree.parent),
        vault=tree.vault,
        aws=None,
        inventory=None,
        scope=scope,
        policy=GuardPolicy(blast_radius_cap=3),
    )
    assert capped.decision is GuardDecision.NEEDS_APPROVAL
    assert "1 actions and 3 child token(s) ending with their parents exceed the blast-radius cap of 3" in (
        capped.decision_reason
    )

    # Within the cap, the incident opens with the plan listing the tree under the revoke action
    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    policy = GuardPolicy(blast_radius_cap=4)
    request = named_request(tree.parent)
    planned = plan_offboarding(
        request, vault=tree.vault, aws=None, inventory=None, ledger=ledger, scope=scope, policy=policy
    )
    assert planned.decision is GuardDecision.PROCEED, planned.decision_reason
    (action,) = planned.actions
    assert set(action.params.child_tokens) == accessors
    recorded = ledger.read_incident(request.incident_id).incident
    assert recorded is not None
    assert set(recorded.plan.actions[0].params.child_tokens) == accessors

    result = execute_and_record(
        ExecuteActionRequest(incident_id=request.incident_id, attempt_id="run:0:0", action=action),
        engine=build_engine(tree.vault),
        ledger=ledger,
        scope=scope,
        refuse_if_guarded=lambda action: refuse_guarded_target(tree.vault, None, action, policy),
    )

    assert result.outcome is Outcome.SUCCEEDED, result.detail
    (attempt,) = ledger.read_incident(request.incident_id).attempts
    assert attempt.result == result
    assert {ref.accessor for ref in result.also_ended} == accessors  # type: ignore[union-attr]
    evidence = {item.check: item for item in result.also_ended_evidence}
    assert set(evidence) == {f"lookup-accessor {accessor}" for accessor in accessors}
    assert all(item.confirmed for item in evidence.values())
    assert all("a child in the issuance index" in item.observed for item in evidence.values())
    assert not tree.parent.works(bao)
    assert not any(child.works(bao) for child in tree.children.values())


def test_a_leaked_tokens_tree_from_the_index_dies_with_it_uncounted_and_each_child_is_recorded(
    bao: LocalOpenBao,  # noqa: F811
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a leaked token whose tree (a held child among it) only the index knows
    tree = grow_tree(bao, monkeypatch, held=True)
    accessors = {child.accessor for child in tree.children.values()}

    # When its leak response is planned with a cap of one credential
    plan, planned = build_leak_plan(
        named_request(tree.parent), vault=tree.vault, aws=None, policy=GuardPolicy(blast_radius_cap=1), index=tree.index
    )

    # Then the tree is listed but neither refuses nor counts (the attacker may grow it), and it dies recorded
    assert planned.decision is GuardDecision.PROCEED, planned.decision_reason
    assert set(plan.actions[0].params.child_tokens) == accessors
    (result,) = build_engine(tree.vault).run_plan(plan)
    assert result.outcome is Outcome.SUCCEEDED, result.detail
    assert {ref.accessor for ref in result.also_ended} == accessors  # type: ignore[union-attr]
    assert [item.check for item in result.also_ended_evidence] == [
        f"lookup-accessor {ref.accessor}"  # type: ignore[union-attr]
        for ref in result.also_ended
    ]
    assert not any(child.works(bao) for child in tree.children.values())


def test_a_leaked_tokens_kill_first_reads_nothing_before_the_revoke_and_records_its_indexed_tree_after(
    bao: LocalOpenBao,  # noqa: F811
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
    backend_calls: BackendCalls,
) -> None:
    # Given a leaked token whose tree only the index knows, and the start function's kill-first engine, warm
    tree = grow_tree(bao, monkeypatch, held=False)
    accessors = {child.accessor for child in tree.children.values()}
    engine = kill_first_engine(Backends(tree.vault, AwsClientFactory(region_name="us-east-1")), tree.index)
    own_token_accessor(tree.vault)
    backend_calls.in_order.clear()

    # When it kills the token first (the plan's revoke, made before the claim: no tree listed in it)
    result = engine.execute(Action(kind=ActionKind.REVOKE, target=tree.parent.ref, reason="leaked"))

    # Then the revoke is the first call; the index is read after it, and each child is read back dead after it
    assert backend_calls.in_order[0].endswith("/v1/auth/token/revoke-accessor"), backend_calls.in_order
    assert result.outcome is Outcome.SUCCEEDED, result.detail
    assert {ref.accessor for ref in result.also_ended} == accessors  # type: ignore[union-attr]
    assert all(item.confirmed for item in result.also_ended_evidence)
    assert all("issuance index" in item.observed for item in result.also_ended_evidence)
    assert result.evidence[0].confirmed
    assert not tree.parent.works(bao)
    assert not any(child.works(bao) for child in tree.children.values())
