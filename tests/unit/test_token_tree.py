"""The upper bound on a token's tree (`could_descend_from`): pure, one rule per way a token cannot be a child."""

from __future__ import annotations

import pytest

from rescind.vault.token_tree import could_descend_from, ran_out_since
from rescind.vault.tokens import TokenState

pytestmark = pytest.mark.unit


def token(accessor: str, **fields: object) -> TokenState:
    values: dict[str, object] = {
        "accessor": accessor,
        "ttl_seconds": 3600,
        "renewable": True,
        "period_seconds": 0,
        "token_type": "service",
        "metadata": {},
        "entity_id": "entity-1",
        "orphan": False,
        "path": "auth/token/create",
        "issue_time": "2026-12-04T20:25:50.685745271Z",
        "policies": frozenset({"default"}),
    }
    values.update(fields)
    return TokenState(**values)  # type: ignore[arg-type]


PARENT = token(
    "parent",
    orphan=True,
    path="auth/userpass/login/app",
    issue_time="2026-12-04T20:25:50.1Z",
    policies=frozenset({"default", "maker"}),
)


def test_a_token_created_under_it_later_with_its_entity_and_policies_may_be_a_child() -> None:
    assert could_descend_from(token("child"), PARENT)


@pytest.mark.parametrize(
    ("why", "candidate"),
    [
        ("itself", token("parent")),
        ("an orphan has no parent", token("child", orphan=True)),
        ("another entity", token("child", entity_id="entity-2")),
        ("not made by token/create", token("child", path="auth/approle/login")),
        ("issued before the parent", token("child", issue_time="2026-12-04T20:25:49.999999999Z")),
        ("a policy the parent lacks", token("child", policies=frozenset({"default", "admin"}))),
    ],
)
def test_a_token_that_cannot_be_under_it_is_not(why: str, candidate: TokenState) -> None:
    assert not could_descend_from(candidate, PARENT), why


def test_nanosecond_issue_times_compare_as_times_not_text() -> None:
    # As text, "50.1Z" sorts after "50.10000001Z"; as times it is earlier.
    parent = token("parent", issue_time="2026-12-04T20:25:50.1Z")
    assert could_descend_from(token("child", issue_time="2026-12-04T20:25:50.100001Z"), parent)


def test_a_token_role_or_a_root_parent_may_grant_any_policy() -> None:
    assert could_descend_from(token("child", path="auth/token/create/ops", policies=frozenset({"admin"})), PARENT)
    root = token("root-made", orphan=True, policies=frozenset({"root"}), issue_time="2026-12-04T20:25:50Z")
    assert could_descend_from(token("child", policies=frozenset({"admin"})), root)


def test_an_unreadable_issue_time_never_rules_a_child_out() -> None:
    assert could_descend_from(token("child", issue_time="soon"), PARENT)


def test_a_tokens_ttl_may_have_run_out_only_if_it_expires_and_its_seconds_have_passed() -> None:
    expiring = token("expiring", ttl_seconds=5, expires=True)
    assert not ran_out_since(expiring, 3.9)
    assert ran_out_since(expiring, 4.0)  # TTLs are read in whole seconds: 5 may be 4.01
    assert ran_out_since(token("now", ttl_seconds=0, expires=True), 0.0)
    assert not ran_out_since(token("never", ttl_seconds=0, expires=False), 3600.0)  # a root token reads 0 forever
