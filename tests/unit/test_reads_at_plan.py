"""What a plan read of a token or secret-id rides with its revocation, and what the acting guard makes of it.

Vault cannot change a token's or an AppRole secret-id's metadata once issued, so the plan's read of one (its hold,
its owner) is still true when the act comes: the acting guard judges it on that read. Any other target is read again.
"""

from __future__ import annotations

import pytest

from rescind.exceptions import PolicyRefusal
from rescind.guard import GuardPolicy, facts_read_at_plan, mark_reads_at_plan, refuse_guarded_target
from rescind.holds import GuardFacts
from rescind.models import (
    Action,
    ActionKind,
    ActionParams,
    AppRoleSecretIdRef,
    CredentialRef,
    PkiCertificateRef,
    Plan,
    VaultTokenRef,
)

WORKLOAD = "spiffe://rescind.test/ns/apps/sa/billing"


def revoke(target: CredentialRef) -> Action:
    return Action(kind=ActionKind.REVOKE, target=target, reason="test")


TOKEN = VaultTokenRef(accessor="CaTti28wsXOQA02COE2ygP2B")
HELD_TOKEN = VaultTokenRef(accessor="HeLd28wsXOQA02COE2ygP2Bx")
GONE_TOKEN = VaultTokenRef(accessor="GoNe28wsXOQA02COE2ygP2Bx")
UNREAD_TOKEN = VaultTokenRef(accessor="UnRd28wsXOQA02COE2ygP2Bx")
SECRET_ID = AppRoleSecretIdRef(mount="approle", role_name="app", accessor="0c1b2f9e-1111-2222-3333-444455556666")
CERTIFICATE = PkiCertificateRef(mount="pki", serial="74:fe:3b:fb")


def test_a_plan_marks_each_token_and_secret_id_it_found_unheld_and_nothing_else() -> None:
    # Given a plan, and what its discovery read of each target
    plan = Plan.ordered(
        "inc-1", [revoke(ref) for ref in (TOKEN, HELD_TOKEN, GONE_TOKEN, UNREAD_TOKEN, SECRET_ID, CERTIFICATE)]
    )
    owned = GuardFacts(hold=None, owners=frozenset({WORKLOAD}), found=True)
    read = {
        TOKEN.key: owned,
        HELD_TOKEN.key: GuardFacts(hold="metadata rescind_hold", owners=frozenset({WORKLOAD}), found=True),
        GONE_TOKEN.key: GuardFacts(hold=None, owners=frozenset(), found=False),
        SECRET_ID.key: GuardFacts(hold=None, owners=frozenset(), found=None),  # a listing found it: found unsaid
        CERTIFICATE.key: owned,
    }

    # When the reads are marked on it
    marked = {action.target.key: action.params.owners_read_at_plan for action in mark_reads_at_plan(plan, read).actions}

    # Then the token and the secret-id found unheld carry their owners; the held one, the one read absent, the one
    # not read and the certificate (not fixed at issue: its revocation state can change) carry nothing
    assert marked == {
        TOKEN.key: (WORKLOAD,),
        HELD_TOKEN.key: None,
        GONE_TOKEN.key: None,
        UNREAD_TOKEN.key: None,
        SECRET_ID.key: (),
        CERTIFICATE.key: None,
    }


class NoVault:
    """Any attribute is a call the test did not expect."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the acting guard reached Vault ({name}) for a target its plan read")


def test_the_acting_guard_judges_a_marked_target_on_the_plans_read_without_reaching_vault() -> None:
    action = revoke(TOKEN).model_copy(update={"params": ActionParams(owners_read_at_plan=(WORKLOAD,))})

    facts = refuse_guarded_target(NoVault(), None, action, GuardPolicy())  # type: ignore[arg-type]

    assert facts == GuardFacts(hold=None, owners=frozenset({WORKLOAD}))
    assert facts.found is True
    assert facts.state is None  # the act reads the state for itself when it needs it
    protecting = GuardPolicy(protected_workloads=frozenset({WORKLOAD}))
    with pytest.raises(PolicyRefusal, match="protected workload"):
        refuse_guarded_target(NoVault(), None, action, protecting)  # type: ignore[arg-type]


def test_an_unmarked_action_has_no_read_from_its_plan() -> None:
    assert facts_read_at_plan(revoke(TOKEN)) is None
    assert facts_read_at_plan(revoke(CERTIFICATE)) is None
