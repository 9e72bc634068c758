"""Issue 13.5: each writer of the append-only ledger may put items only in its own key space.

IAM has no condition key on a ConditionExpression, so it cannot forbid an overwrite as such: the code's conditional
put (`attribute_not_exists(pk)`) does. What IAM can do is bound each role's `dynamodb:PutItem` by partition key
(`dynamodb:LeadingKeys`), so that a role, whatever its code does, can overwrite records only in its own space,
never one another writer wrote. These tests evaluate every role's policy and the permissions boundary, resolved as
CloudFormation would, with the evaluator of test_iam_scope.py (`decide`): moto evaluates no IAM condition, so this
is proved on the template, not by a call to moto.

What it leaves open (README "Guarantees"): the sort key cannot be bounded, so the functions that share a space (the
state machines' tasks on INCIDENT#offboard-/manual-/leak-; both start functions on INCIDENT#rejected-) can still
overwrite each other's records there, and any role its own; the ledger's stream to the object-locked archive
(LedgerArchiveFunction) is what shows such an overwrite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rescind.leaks.github import BODY_PK_PREFIX, DELIVERY_PK_PREFIX, signed_body_digest
from rescind.offboarding.start import unresolved_incident_id
from rescind.offboarding.types import TerminationNotice, offboarding_execution_name
from rescind_local.stack import IntrinsicResolver
from rescind_local.template import load_template
from tests.infra.policy_scan import as_list
from tests.infra.test_iam_scope import (
    ACCOUNT,
    REPO_ROOT,
    boundary_statements,
    central_resolver,
    decide,
    function_statements,
    functions,
)

HEX40 = "0123456789abcdef" * 2 + "01234567"
NOTICE = TerminationNotice(
    source="aws.ec2",
    detail_type="EC2 Instance State-change Notification",
    event_id="7bf73129-1428-4cd3-a780-95db273d1602",
    account_id=ACCOUNT,
    region="us-east-1",
    cloud_id="i-0123456789abcdef0",
    reason="terminated",
    terminated_at=datetime(2025, 1, 1, tzinfo=UTC),
)


def incident(incident_id: str) -> str:
    return f"INCIDENT#{incident_id}"


# One partition key of each kind the code writes, named by who writes it (traced from each function's code).
WEBHOOK_DELIVERY = DELIVERY_PK_PREFIX + "72d3162e-cc78-11e3-81ab-4c9367dc0958"  # leaks/github/replay.py claim_delivery
WEBHOOK_BODY = BODY_PK_PREFIX + signed_body_digest(b"{}")
OFFBOARDING_UNRESOLVED = incident(unresolved_incident_id(NOTICE))  # offboarding/start.py record_unresolved
OFFBOARDING_REFUSED = incident("refused-" + HEX40)  # record_refused_by_account
REJECTED = incident("rejected-" + HEX40)  # ledger/closing.py record_rejected_event: both start functions
LEAK_CLAIM = "CLAIM#" + HEX40  # ledger/dynamodb.py claim_response
LEAK_UNRESOLVED = incident("unresolved-leak-" + HEX40)  # leaks/start.py record_unresolved_leak, _record_event
LEAK_RECORDED = incident("recorded-leak-" + HEX40)  # leaks/start.py record_event_only
OFFBOARDING_RUN = incident(offboarding_execution_name("spiffe://prod.example/ns/a/sa/b", NOTICE.event_id))
MANUAL_RUN = incident("manual-" + HEX40[:20])  # rescind_cli/runs/subject.py manual_incident_id
LEAK_RUN = incident(f"leak-{HEX40[:24]}-1")  # the claim's incident id
RUNS = {OFFBOARDING_RUN, MANUAL_RUN, LEAK_RUN}

# Each writer's own space: what it may put. Every other key above must be refused to it.
WRITER_SPACES: dict[str, set[str]] = {
    "GitHubWebhookFunction": {WEBHOOK_DELIVERY, WEBHOOK_BODY},
    "StartOffboardingFunction": {OFFBOARDING_UNRESOLVED, OFFBOARDING_REFUSED, REJECTED},
    "StartLeakResponseFunction": {LEAK_CLAIM, LEAK_UNRESOLVED, LEAK_RECORDED, REJECTED},
    "PlanOffboardingFunction": {OFFBOARDING_RUN, MANUAL_RUN},  # offboarding and manual runs share the machine
    "PlanLeakResponseFunction": {LEAK_RUN},
    "ExecuteActionFunction": RUNS,
    "CloseIncidentFunction": RUNS,
    "AnswerApprovalFunction": RUNS,
}
EVERY_KEY = set().union(*WRITER_SPACES.values())
# Keys no writer has: a crafted prefix, and look-alikes of the spaces above.
STRAY_KEYS = {
    "INCIDENTS",
    "INCIDENT#",
    "incident#offboard-" + HEX40,
    "INCIDENT#unresolved-" + HEX40 + "x",
    "GITHUB_DELIVERY",
    "CLAIM",
    "SWEEP#orphans",
}
LEDGER_WRITES_OUTSIDE_PUTITEM = (
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:PartiQLInsert",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PartiQLDelete",
)


@pytest.fixture(scope="module")
def central() -> dict[str, Any]:
    return load_template(REPO_ROOT / "template.yaml")


@pytest.fixture(scope="module")
def resolver(central: dict[str, Any]) -> IntrinsicResolver:
    return central_resolver(central)


@pytest.fixture(scope="module")
def ledger_arn(resolver: IntrinsicResolver) -> str:
    return str(resolver.resolve({"Fn::GetAtt": ["LedgerTable", "Arn"]}))


@pytest.fixture(scope="module")
def boundary(central: dict[str, Any], resolver: IntrinsicResolver) -> list[dict[str, Any]]:
    return boundary_statements(central, resolver, "RescindFunctionsBoundary")


def may_put(identity: list[dict[str, Any]], boundary: list[dict[str, Any]] | None, arn: str, pk: str) -> bool:
    context = {"dynamodb:LeadingKeys": [pk]}
    if boundary is None:  # a role without a boundary: its identity policy alone decides
        boundary = [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
    return decide(identity, boundary, "dynamodb:PutItem", arn, context)


def test_the_writers_listed_here_are_every_role_that_may_put_into_the_ledger(
    central: dict[str, Any], resolver: IntrinsicResolver, boundary: list[dict[str, Any]], ledger_arn: str
) -> None:
    writers = {
        name
        for name in functions(central)
        if any(may_put(function_statements(central, resolver, name), boundary, ledger_arn, pk) for pk in EVERY_KEY)
    }
    assert writers == set(WRITER_SPACES)


@pytest.mark.parametrize("writer", sorted(WRITER_SPACES))
def test_each_writer_may_put_into_its_own_space_and_no_other(
    central: dict[str, Any], resolver: IntrinsicResolver, boundary: list[dict[str, Any]], ledger_arn: str, writer: str
) -> None:
    identity = function_statements(central, resolver, writer)
    own = WRITER_SPACES[writer]

    assert {pk for pk in own if not may_put(identity, boundary, ledger_arn, pk)} == set(), "its code writes these"
    others = (EVERY_KEY - own) | STRAY_KEYS
    assert {pk for pk in others if may_put(identity, boundary, ledger_arn, pk)} == set(), "another writer's records"


@pytest.mark.parametrize("writer", sorted(WRITER_SPACES))
def test_every_ledger_put_grant_is_bounded_by_leading_keys(
    central: dict[str, Any], resolver: IntrinsicResolver, ledger_arn: str, writer: str
) -> None:
    grants = [
        statement
        for statement in function_statements(central, resolver, writer)
        if statement["Effect"] == "Allow"
        and "dynamodb:PutItem" in as_list(statement["Action"])
        and ledger_arn in as_list(statement["Resource"])
    ]
    assert grants
    for statement in grants:
        # Only PutItem carries the condition: a read with it would need its keys named too.
        assert as_list(statement["Action"]) == ["dynamodb:PutItem"], statement
        (leading_keys,) = statement["Condition"]["ForAllValues:StringLike"].values()
        assert list(statement["Condition"]["ForAllValues:StringLike"]) == ["dynamodb:LeadingKeys"]
        assert all(pattern not in ("*", "INCIDENT#*") for pattern in as_list(leading_keys)), statement


@pytest.mark.parametrize(
    "role", ["ResponderRole", "VerifyResponseFunction", "RequestApprovalFunction", "LedgerArchiveFunction"]
)
def test_readers_put_nothing_into_the_ledger(
    central: dict[str, Any], resolver: IntrinsicResolver, boundary: list[dict[str, Any]], ledger_arn: str, role: str
) -> None:
    identity = function_statements(central, resolver, role)  # ResponderRole's too: a plain role
    role_boundary = None if role == "ResponderRole" else boundary
    assert not any(may_put(identity, role_boundary, ledger_arn, pk) for pk in EVERY_KEY | STRAY_KEYS)


@pytest.mark.parametrize("action", LEDGER_WRITES_OUTSIDE_PUTITEM)
def test_the_boundary_refuses_every_ledger_write_but_a_put_whatever_a_role_is_granted(
    boundary: list[dict[str, Any]], ledger_arn: str, action: str
) -> None:
    # A policy written onto a function role later (by hand, or by a template edit) cannot rewrite the ledger.
    anything = [{"Effect": "Allow", "Action": action, "Resource": "*"}]
    for pk in (OFFBOARDING_RUN, WEBHOOK_DELIVERY):
        assert not decide(anything, boundary, action, ledger_arn, {"dynamodb:LeadingKeys": [pk]}), action


def test_the_evaluator_reads_leading_keys_as_iam_does() -> None:
    # Guards the evaluator itself: ForAllValues holds for an absent key (IAM's empty set), so a PutItem grant must
    # never rely on it for an action that can be called without a partition key.
    grant = [
        {
            "Effect": "Allow",
            "Action": "dynamodb:PutItem",
            "Resource": "arn:aws:dynamodb:us-east-1:123456789012:table/t",
            "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["A#*", "B#?"]}},
        }
    ]
    everything = [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/t"

    def put(keys: list[str] | None) -> bool:
        return decide(
            grant, everything, "dynamodb:PutItem", arn, {} if keys is None else {"dynamodb:LeadingKeys": keys}
        )

    for allowed in (["A#1"], ["B#1"], ["A#1", "B#2"]):
        assert put(allowed), allowed
    for refused in (["B#12"], ["C#1"], ["A#1", "C#1"]):
        assert not put(refused), refused
    assert put(None)  # IAM's documented ForAllValues pitfall


# --- the archive: objects are added, never replaced or deleted ---------------------------------------------------


def test_the_archive_function_only_adds_objects_and_nothing_can_delete_them(
    central: dict[str, Any], resolver: IntrinsicResolver, boundary: list[dict[str, Any]]
) -> None:
    identity = function_statements(central, resolver, "LedgerArchiveFunction")
    bucket_arn = str(resolver.resolve({"Fn::GetAtt": ["LedgerArchiveBucket", "Arn"]}))
    policy = resolver.resolve(central["Resources"]["LedgerArchiveBucketPolicy"]["Properties"])["PolicyDocument"]
    bucket_denies = [statement for statement in policy["Statement"] if statement["Effect"] == "Deny"]
    record = f"{bucket_arn}/records/INCIDENT%23manual-1/A%23INCIDENT/1.json"
    conditional = {"s3:if-none-match": "*", "aws:SecureTransport": "true"}
    plain = {"aws:SecureTransport": "true"}

    assert decide(identity + bucket_denies, boundary, "s3:PutObject", record, conditional)
    assert not decide(identity + bucket_denies, boundary, "s3:PutObject", record, plain), "a put that could replace"
    anything = [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
    for action in ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectRetention", "s3:PutBucketPolicy"):
        assert not decide(anything, boundary, action, record if "Object" in action else bucket_arn, plain), action
    # The bucket's own policy binds every principal, the account's administrators included.
    for action in ("s3:DeleteObject", "s3:DeleteObjectVersion"):
        assert not decide(anything + bucket_denies, anything, action, record, plain), action
    assert not decide(anything + bucket_denies, anything, "s3:PutObject", record, plain)
