"""`rescind approve | deny` on a local stack whose blast-radius cap is 3: a workload's run (7 actions) waits
for approval, the principal that asked for it cannot approve it, and a second principal can."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rescind_local.target import LocalTarget
from tests.integration.cli.stack import (
    Cli,
    assert_one_line_error,
    local_stack,
    proofs,
    second_principal,
    seed,
    wait_until_finished,
    wrong,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTarget]:
    with local_stack(tmp_path_factory.mktemp("cli-approvals") / "stack", "BlastRadiusCap=3") as running:
        yield running


@pytest.fixture
def cli(target: LocalTarget) -> Cli:
    return Cli(target)


def start_waiting_run(cli: Cli, spiffe_id: str) -> str:
    code, document = cli.json("revoke", "--workload", spiffe_id, "--reason", "compromised host", "--yes")
    assert code == 3, document
    assert document["run"]["waiting_for_approval"] is True
    assert document["run"]["decision"] == "needs_approval"
    assert "rescind approve" in document["message"]
    return str(document["incident_id"])


def test_plan_says_the_run_needs_approval(target: LocalTarget, cli: Cli) -> None:
    workload = seed(target, "capped")
    code, document = cli.json("plan", "--workload", workload.spiffe_id)
    assert code == 0
    assert (document["decision"], document["blast_radius_cap"], document["total"]) == ("needs_approval", 3, 7)


def test_the_requester_cannot_approve_and_a_second_principal_can(target: LocalTarget, cli: Cli) -> None:
    workload = seed(target, "approve")
    name = start_waiting_run(cli, workload.spiffe_id)
    # Nothing was touched while it waits
    assert wrong(proofs(target, workload, "alive")) == []

    # The requester is refused, in one line, and nothing is recorded or sent
    refused = cli("approve", name)
    assert refused.exit_code == 2
    assert_one_line_error(refused, "refused", "another principal")
    assert cli.json("status", name)[1]["run"]["waiting_for_approval"] is True

    # A second principal approves; the run goes on and ends verified
    approver_arn, approver = second_principal(target, f"approver-{name[-8:]}")
    code, document = cli.json("approve", name, "--follow", "--timeout", "60", env=approver)
    assert code == 0, document
    assert document["approval"]["decided_by"] == approver_arn
    assert document["run"]["status"] == "SUCCEEDED"
    assert wrong(proofs(target, workload, "dead")) == []

    # The ledger and the report say who asked and who approved
    view = cli.json("ledger", "--incident", name)[1]["incident"]
    assert [(a["verdict"], a["decided_by"]) for a in view["approvals"]] == [("approved", approver_arn)]
    report = cli("report", name, "--format", "md")
    assert f"approved by {approver_arn}" in report.stdout

    # A finished run has nothing to approve
    again = cli("approve", name, env=approver)
    assert again.exit_code == 2
    assert_one_line_error(again, "SUCCEEDED", "nothing to answer")


def test_a_denied_run_touches_nothing(target: LocalTarget, cli: Cli) -> None:
    workload = seed(target, "deny")
    name = start_waiting_run(cli, workload.spiffe_id)
    denier_arn, denier = second_principal(target, f"denier-{name[-8:]}")

    missing_reason = cli("deny", name, env=denier)
    assert missing_reason.exit_code == 2
    assert_one_line_error(missing_reason, "a reason is required")

    code, document = cli.json("deny", name, "--reason", "false positive", env=denier)
    assert code == 0, document
    assert document["approval"]["verdict"] == "denied"

    finished = wait_until_finished(target, name)
    assert finished["status"] == "FAILED"
    code, status = cli.json("status", name)
    assert code == 2  # README: refused, nothing touched
    assert status["closure"]["status"] == "refused"
    assert wrong(proofs(target, workload, "alive")) == []
    report = cli("report", name, "--format", "md")
    assert f"denied by {denier_arn}" in report.stdout


def test_approving_a_run_that_does_not_wait_is_one_line(target: LocalTarget, cli: Cli) -> None:
    workload = seed(target, "small")
    code, document = cli.json(
        "revoke", "--credential", f"vault-token:accessor:{workload.token_accessors[0]}", "--reason", "leak", "--yes"
    )
    assert code == 0, document
    result = cli("deny", document["incident_id"], "--reason", "too late")
    assert result.exit_code == 2
    assert_one_line_error(result, "nothing to answer")


def test_the_requester_may_cancel_their_own_waiting_run(target: LocalTarget, cli: Cli) -> None:
    # A second person is needed to act, not to stop: the requester denies, the run ends refused, nothing touched
    workload = seed(target, "cancel")
    name = start_waiting_run(cli, workload.spiffe_id)

    code, document = cli.json("deny", name, "--reason", "started it on the wrong workload")

    assert code == 0, document
    assert document["approval"]["verdict"] == "denied"
    assert wait_until_finished(target, name)["status"] == "FAILED"
    assert cli.json("status", name)[1]["closure"]["status"] == "refused"
    assert wrong(proofs(target, workload, "alive")) == []


def test_the_requester_is_who_signed_the_start_whatever_the_body_says(target: LocalTarget, cli: Cli) -> None:
    # `rescind revoke` starts the run through StartManualRevocationFunction's URL: the ledger's requester is the
    # principal that signed the request, so that principal (A) cannot approve, and another (B) can.
    from botocore.credentials import Credentials

    from rescind_cli.function_url import post_signed

    workload = seed(target, "signed")
    requester_arn, requester = second_principal(target, f"requester-{workload.name[-8:]}")
    approver_arn, approver = second_principal(target, f"second-{workload.name[-8:]}")

    # A body naming another requester is refused, and nothing is started
    url = target.state.function_urls["StartManualRevocationFunction"]
    credentials = Credentials(
        requester["RESCIND_LOCAL_AWS_ACCESS_KEY_ID"], requester["RESCIND_LOCAL_AWS_SECRET_ACCESS_KEY"]
    )
    status, body = post_signed(
        url,
        {"workload": workload.spiffe_id, "reason": "x", "requested_by": approver_arn},
        credentials=credentials,
        region=target.region,
    )
    assert status == 400, body
    assert "requested_by" in body["message"]

    code, document = cli.json(
        "revoke", "--workload", workload.spiffe_id, "--reason", "compromised host", "--yes", env=requester
    )
    assert code == 3, document
    name = str(document["incident_id"])
    assert document["requested_by"] == requester_arn
    view = cli.json("ledger", "--incident", name)[1]["incident"]
    assert view["incident"]["trigger"]["requested_by"] == requester_arn

    refused = cli("approve", name, env=requester)
    assert refused.exit_code == 2
    assert_one_line_error(refused, "refused", "another principal")

    code, approved = cli.json("approve", name, "--follow", "--timeout", "60", env=approver)
    assert code == 0, approved
    assert approved["approval"]["decided_by"] == approver_arn
    assert wrong(proofs(target, workload, "dead")) == []
