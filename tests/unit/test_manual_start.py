"""The start of a manual run: the body says what and why, the request's signer says who; nothing else does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rescind.approval import CallerIdentity, caller_from_function_url
from rescind.exceptions import InvalidInput
from rescind.offboarding.manual import build_manual_request, manual_run_from_request


def request(body: Any, *, method: str = "POST", caller: str | None = "arn:aws:iam::123456789012:user/alice") -> Any:
    context: dict[str, Any] = {"http": {"method": method}}
    if caller is not None:
        context["authorizer"] = {"iam": {"userArn": caller}}
    return {"requestContext": context, "body": body if isinstance(body, str) else json.dumps(body)}


def test_a_body_naming_a_requester_is_refused_by_name() -> None:
    body = {"workload": "spiffe://x.rescind/a", "reason": "leak", "requested_by": "arn:aws:iam::123456789012:user/b"}
    with pytest.raises(InvalidInput, match="requested_by"):
        manual_run_from_request(request(body))


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"reason": "leak"}, "exactly one"),
        ({"workload": "spiffe://x.rescind/a", "credentials": ["vault-token:accessor:x"], "reason": "r"}, "exactly one"),
        ({"workload": "spiffe://x.rescind/../a", "reason": "leak"}, "workload"),
        ({"workload": "spiffe://x.rescind/a", "reason": "   "}, "reason"),
        ({"workload": "spiffe://x.rescind/a"}, "reason"),
        ({"workload": "spiffe://x.rescind/a", "reason": "leak", "dry_run": "maybe"}, "dry_run"),
        ("not json", "not JSON"),
    ],
)
def test_a_bad_body_is_refused_with_the_problem_named(body: Any, named: str) -> None:
    with pytest.raises(InvalidInput, match=named):
        manual_run_from_request(request(body))


def test_only_post_is_accepted() -> None:
    with pytest.raises(InvalidInput, match="POST"):
        manual_run_from_request(request({"workload": "spiffe://x.rescind/a", "reason": "r"}, method="GET"))


@pytest.mark.parametrize(
    ("arn", "recorded"),
    [
        ("arn:aws:iam::123456789012:user/ops/team/alice", "arn:aws:iam::123456789012:user/alice"),
        ("arn:aws:iam::123456789012:user/alice", "arn:aws:iam::123456789012:user/alice"),
        (
            "arn:aws:sts::123456789012:assumed-role/responder/alice@example.org",
            "arn:aws:sts::123456789012:assumed-role/responder/alice@example.org",
        ),
    ],
)
def test_the_requester_is_recorded_as_the_approval_check_compares_it(arn: str, recorded: str) -> None:
    caller = caller_from_function_url(request({}, caller=arn))
    assert caller.principal_arn == recorded
    assert caller.is_same_principal(recorded)
    built = build_manual_request(
        workload_id="spiffe://x.rescind/a",
        credentials=(),
        reason="leak",
        ticket=None,
        requested_by=caller.principal_arn,
        dry_run=False,
    )
    assert built.trigger.requested_by == recorded
    assert built.incident_id.startswith("manual-")


def test_an_unsigned_request_names_no_caller() -> None:
    from rescind.approval import CallerNotAuthenticated

    with pytest.raises(CallerNotAuthenticated):
        caller_from_function_url(request({}, caller=None))
    assert CallerIdentity(arn="arn:aws:iam::123456789012:root", account_id="123456789012").principal_arn.endswith(
        ":root"
    )
