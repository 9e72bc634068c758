"""The leak-response run after the start function's kill first: what the kill proved dead (its read-back recorded in
the ledger under the plan's own action id) is not acted on or read again, and the closure names it dead with the
kill's attempt, evidence and the Vault or account; what it did not prove goes through Contain, Revoke and Verify.

Each test sends a generic `Secret Leaked` event through the template's rule, the start function and the
leak-response state machine (moto's interpreter running the ASL, handlers in-process), against real OpenBao and moto.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import boto3
import hvac
import hvac.exceptions
import pytest

from rescind.ledger import CredentialState, IncidentStatus, IncidentView
from rescind.ledger.proofs import is_kill_first
from rescind.models import ActionKind, Outcome
from rescind_local import LocalOpenBao
from rescind_local.lambdas import forget_loaded_handlers
from rescind_local.seed import SeededWorkload, prepare_vault, seed_workload
from rescind_local.stack import LocalStack, deploy_template_to_moto
from rescind_local.template import load_template
from tests.conftest import BackendCalls
from tests.flows.test_leak_alerts import (
    approle_login,
    assert_completed,
    generic_event,
    ledger,
    only_execution,
)

# A leak's plan is small: it runs through the INLINE Maps (the DISTRIBUTED ones, for big plans: test_offboarding_scale)
ACTING_STATES = frozenset({"Contain", "Revoke", "Verify", "ContainInline", "RevokeInline", "VerifyInline"})


def entered_states(execution: dict[str, Any]) -> list[str]:
    history = boto3.client("stepfunctions").get_execution_history(executionArn=execution["executionArn"])["events"]
    return [event["stateEnteredEventDetails"]["name"] for event in history if "stateEnteredEventDetails" in event]


def kill_and_run_attempts(view: IncidentView) -> tuple[list[Any], list[Any]]:
    killed = [attempt for attempt in view.attempts if is_kill_first(attempt.attempt_id)]
    by_run = [attempt for attempt in view.attempts if not is_kill_first(attempt.attempt_id)]
    return killed, by_run


@pytest.fixture
def target(stack: LocalStack, vault: hvac.Client, unique: str) -> SeededWorkload:
    prepare_vault(vault)
    return seed_workload(vault, boto3.client("iam"), f"k-{unique}", f"spiffe://flows.rescind/k-{unique}")


def test_a_token_killed_first_is_not_acted_on_again_and_the_closure_names_it_dead_with_the_kills_evidence(
    stack: LocalStack, target: SeededWorkload, vault: hvac.Client, openbao: LocalOpenBao
) -> None:
    # Given a workload's token in a scanner's generic event
    leaked = target.token_accessors[0]

    # When the event goes through the template's rule, the start function and the state machine
    stack.route_event(generic_event("vault_token", target.token_value(leaked)))

    # Then the start function's kill is the only attempt: the run neither revoked nor read the token again
    execution = only_execution(stack)
    assert_completed(stack, execution)
    assert not ACTING_STATES & set(entered_states(execution)), entered_states(execution)
    view = ledger(stack).read_incident(execution["name"])
    killed, by_run = kill_and_run_attempts(view)
    assert by_run == []
    (kill,) = killed
    assert kill.result.outcome is Outcome.SUCCEEDED
    assert kill.result.finished_at <= execution["startDate"]  # killed and read back before the run started
    assert view.incident is not None
    assert [action.action_id for action in view.incident.plan.actions] == [kill.result.action_id]
    # And the closure names it dead by the kill's own attempt, its read-back evidence and the Vault it acted on
    assert view.closure is not None
    (standing,) = view.closure.credentials
    assert (standing.target.key, standing.state) == (kill.result.target.key, CredentialState.DEAD)
    assert standing.proven_before_run is not None
    assert standing.proven_before_run.attempt_id == kill.attempt_id
    assert standing.proven_before_run.evidence == kill.result.evidence
    assert all(evidence.confirmed for evidence in standing.proven_before_run.evidence)
    assert standing.proven_before_run.acted_on == f"Vault {openbao.addr}"
    # And it is dead, seen by use
    with pytest.raises(hvac.exceptions.InvalidRequest):
        vault.auth.token.lookup_accessor(leaked)


def test_a_key_deactivated_first_is_deleted_by_the_run_and_not_deactivated_again(
    stack: LocalStack, target: SeededWorkload, backend_calls: BackendCalls
) -> None:
    # Given a workload's access key id in a scanner's generic event
    key_id = target.access_key_ids[0]
    backend_calls.aws.clear()

    # When the event goes through the template's rule, the start function and the state machine
    stack.route_event(generic_event("aws_access_key", key_id))

    # Then the start function deactivated it; the run did not contain it again, but deleted it and read it back
    execution = only_execution(stack)
    assert_completed(stack, execution)
    entered = entered_states(execution)
    assert not {"Contain", "ContainInline"} & set(entered), entered
    assert {"RevokeInline", "VerifyInline"} <= set(entered), entered
    view = ledger(stack).read_incident(execution["name"])
    killed, by_run = kill_and_run_attempts(view)
    assert [(a.result.action_kind, a.result.outcome) for a in killed] == [(ActionKind.DISABLE, Outcome.SUCCEEDED)]
    assert [(a.result.action_kind, a.result.outcome) for a in by_run] == [(ActionKind.DELETE, Outcome.SUCCEEDED)]
    # And the closure names it dead by the run's own read-back (the key is gone), not by the kill's
    assert view.closure is not None
    (standing,) = view.closure.credentials
    assert standing.state is CredentialState.DEAD
    assert standing.proven_before_run is None
    keys = boto3.client("iam").list_access_keys(UserName=target.iam_user)["AccessKeyMetadata"]
    assert key_id not in {key["AccessKeyId"] for key in keys}
    # And S3 saw only the batch's read-back: written empty by the plan, read and written by the delete's batch, read
    # by Verify (the plan's items rode in the state; no Map Run wrote results for Close to read)
    s3_calls = [call for call in backend_calls.aws if call.startswith("s3:")]
    assert sorted(s3_calls) == ["s3:GetObject", "s3:GetObject", "s3:PutObject", "s3:PutObject"]


def test_a_login_token_killed_first_is_left_alone_while_the_run_disables_its_entity(
    stack: LocalStack, target: SeededWorkload, vault: hvac.Client
) -> None:
    # Given a workload's AppRole login token, its entity's only one, in a scanner's generic event
    leaked = approle_login(vault, target)

    # When the event goes through the template's rule, the start function and the state machine
    stack.route_event(generic_event("vault_token", leaked["client_token"]))

    # Then the run contained the entity (its own decision, after the kill) and verified it, and left the token alone
    execution = only_execution(stack)
    assert_completed(stack, execution)
    assert {"ContainInline", "VerifyInline"} <= set(entered_states(execution))
    view = ledger(stack).read_incident(execution["name"])
    killed, by_run = kill_and_run_attempts(view)
    assert [a.result.action_kind for a in killed] == [ActionKind.REVOKE]
    assert [(a.result.action_kind, a.result.outcome) for a in by_run] == [(ActionKind.DISABLE, Outcome.SUCCEEDED)]
    assert vault.read(f"identity/entity/id/{leaked['entity_id']}")["data"]["disabled"] is True
    # And the closure names both dead: the token by the kill's proof, the entity by the run's read-back
    assert view.closure is not None
    proofs = {standing.target.kind: standing.proven_before_run for standing in view.closure.credentials}
    assert {standing.state for standing in view.closure.credentials} == {CredentialState.DEAD}
    assert proofs["vault_token"] is not None
    assert proofs["vault_token"].attempt_id == killed[0].attempt_id
    assert proofs["vault_entity"] is None


# --- a kill whose read-back did not prove it dead -------------------------------------------------------------

# As a deployment before `rescind vault setup` gave the locator its kill-first policy: the start function locates,
# and Vault refuses its revocation.
NO_KILL_POLICY = """
path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }
path "auth/token/revoke-accessor" { capabilities = ["deny"] }
"""


@pytest.fixture
def stack_whose_kill_vault_refuses(aws: None, openbao: LocalOpenBao, vault: hvac.Client) -> Iterator[LocalStack]:
    """The template on moto, every function under the root token but the start function, whose token may do
    everything but revoke a token by accessor."""
    vault.sys.create_or_update_policy("rescind-no-kill", NO_KILL_POLICY)
    no_kill = vault.auth.token.create(policies=["rescind-no-kill"], no_default_policy=True, ttl="1h")
    template = copy.deepcopy(load_template())
    functions = template.setdefault("Globals", {}).setdefault("Function", {})
    functions.setdefault("Environment", {}).setdefault("Variables", {})["VAULT_TOKEN"] = openbao.root_token
    start = template["Resources"]["StartLeakResponseFunction"]["Properties"]
    start.setdefault("Environment", {}).setdefault("Variables", {})["VAULT_TOKEN"] = no_kill["auth"]["client_token"]
    forget_loaded_handlers()
    with deploy_template_to_moto(
        template,
        parameters={"VaultAddr": openbao.addr, "VaultAwsAuthRole": "rescind-local"},
        function_environment={"VAULT_AUTH_METHOD": "token"},
        time_scale=0.01,
    ) as deployed:
        yield deployed


def test_a_kill_vault_refused_is_still_revoked_and_verified_by_the_run(
    stack_whose_kill_vault_refuses: LocalStack, vault: hvac.Client, unique: str
) -> None:
    # Given a workload's token in a scanner's generic event, and a start function Vault refuses to revoke with
    stack = stack_whose_kill_vault_refuses
    prepare_vault(vault)
    target = seed_workload(vault, boto3.client("iam"), f"r-{unique}", f"spiffe://flows.rescind/r-{unique}")
    leaked = target.token_accessors[0]

    # When the event goes through the template's rule, the start function and the state machine
    stack.route_event(generic_event("vault_token", target.token_value(leaked)))

    # Then the kill is recorded failed, not proven; the run revoked the token and Verify read it back
    execution = only_execution(stack)
    assert execution["status"] == "SUCCEEDED", execution
    assert {"RevokeInline", "VerifyInline"} <= set(entered_states(execution))
    view = ledger(stack).read_incident(execution["name"])
    killed, by_run = kill_and_run_attempts(view)
    (kill,) = killed
    assert kill.result.outcome is Outcome.FAILED
    (revoked,) = by_run
    assert (revoked.result.action_id, revoked.result.outcome) == (kill.result.action_id, Outcome.SUCCEEDED)
    assert revoked.result.evidence
    assert all(evidence.confirmed for evidence in revoked.result.evidence)
    # And the closure names it dead by the run's read-back, not by the kill
    assert view.closure is not None
    assert view.closure.status is IncidentStatus.COMPLETED
    (standing,) = view.closure.credentials
    assert (standing.state, standing.proven_before_run) == (CredentialState.DEAD, None)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        vault.auth.token.lookup_accessor(leaked)


def test_a_resumed_plan_reads_the_kill_from_the_ledger_among_the_runs_attempts_and_still_leaves_it_out(
    stack: LocalStack, target: SeededWorkload
) -> None:
    # Given a key the start function deactivated and the run then deleted: the incident holds its recorded plan, the
    # kill's attempt and the run's
    key_id = target.access_key_ids[0]
    stack.route_event(generic_event("aws_access_key", key_id))
    execution = only_execution(stack)
    assert_completed(stack, execution)
    killed, by_run = kill_and_run_attempts(ledger(stack).read_incident(execution["name"]))
    assert (len(killed), len(by_run)) == (1, 1)

    # When the plan task runs again on the same request (a resumed run: the plan is read from the ledger)
    arn = execution["executionArn"]
    request = json.loads(boto3.client("stepfunctions").describe_execution(executionArn=arn)["input"])
    reference, error = stack.invoke("PlanLeakResponseFunction", request)

    # Then the deactivation the kill proved is still left out, and the delete is planned again (idempotent)
    assert error is None, reference
    assert (reference["proven_before_run_count"], reference["containment_count"]) == (1, 0), reference
    assert reference["action_count"] == 1, reference
