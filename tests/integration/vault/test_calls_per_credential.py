"""How many Vault calls an action, a plan and a verify pass make (issue 18): what Rescind read once it does not ask
again, and every "dead" still rests on a read-back. Counted on a real OpenBao (`backend_calls` sees every request)."""

from __future__ import annotations

from datetime import UTC, datetime

import hvac
import hvac.exceptions
import pytest

from rescind.discovery import DiscoveryScope, discover_workload_credentials
from rescind.engine.factory import build_engine
from rescind.engine.tasks import execute_checked
from rescind.engine.verification import verify_actions
from rescind.guard import VAULT_HOLD_KEY, GuardPolicy, refuse_guarded_target
from rescind.ledger import Trigger
from rescind.models import Action, ActionKind, Outcome, PkiCertificateRef, VaultTokenRef
from rescind.offboarding.plan import build_offboarding_plan
from rescind.response.types import GuardDecision, ResponsePlan, ResponseRequest
from rescind.vault.client import own_token_accessor
from tests.conftest import BackendCalls
from tests.integration.vault.test_approle import AppRoleMount, _issue, approle  # noqa: F401 - the fixture
from tests.integration.vault.test_child_tokens import token_maker  # noqa: F401 - the fixture
from tests.integration.vault.test_pki import Issue, issue, pki_mount  # noqa: F401 - the fixtures

pytestmark = pytest.mark.integration


def calls_to(calls: BackendCalls, endpoint: str) -> int:
    """How many requests went to a path ending with `endpoint` (the query string aside)."""
    return sum(1 for call in calls.vault if call.partition(" ")[2].split("?")[0].rstrip("/").endswith(endpoint))


def revoke(target: VaultTokenRef | PkiCertificateRef) -> Action:
    return Action(kind=ActionKind.REVOKE, target=target, reason="test: calls per credential")


def token(vault: hvac.Client, **options: object) -> str:
    return str(vault.auth.token.create(ttl="1h", **options)["auth"]["accessor"])


def test_revoking_tokens_asks_for_its_own_token_once_and_reads_each_back_once(
    vault: hvac.Client, backend_calls: BackendCalls
) -> None:
    # Given three tokens that cannot create tokens, and an engine on a new client
    accessors = [token(vault, policies=["default"]) for _ in range(3)]
    engine = build_engine(hvac.Client(url=vault.url, token=vault.token))
    backend_calls.vault.clear()

    # When each is revoked
    results = [engine.execute(revoke(VaultTokenRef(accessor=accessor))) for accessor in accessors]

    # Then each is verified dead by the read after its revoke, its own token looked up once for all three
    assert [result.outcome for result in results] == [Outcome.SUCCEEDED] * 3
    assert all(result.evidence[0].confirmed for result in results)
    assert calls_to(backend_calls, "/auth/token/lookup-self") == 1
    assert calls_to(backend_calls, "/auth/token/lookup-accessor") == 3
    assert calls_to(backend_calls, "/auth/token/revoke-accessor") == 3
    # and each is really dead
    for accessor in accessors:
        with pytest.raises(hvac.exceptions.InvalidRequest):
            vault.auth.token.lookup_accessor(accessor)


def test_its_own_accessor_is_asked_again_when_its_token_changes(vault: hvac.Client) -> None:
    client = hvac.Client(url=vault.url, token=vault.token)
    first = own_token_accessor(client)
    created = vault.auth.token.create(policies=["default"], ttl="10m")["auth"]

    client.token = created["client_token"]

    assert own_token_accessor(client) == created["accessor"] != first


def test_a_verify_pass_fetches_a_mounts_crl_once_for_all_its_certificates(
    vault: hvac.Client,
    pki_mount: str,  # noqa: F811 - the fixture
    issue: Issue,  # noqa: F811 - the fixture
    backend_calls: BackendCalls,
) -> None:
    # Given three revoked certificates of one mount
    actions = [revoke(PkiCertificateRef(mount=pki_mount, serial=issue())) for _ in range(3)]
    engine = build_engine(vault)
    assert all(engine.execute(action).outcome is Outcome.SUCCEEDED for action in actions)
    backend_calls.vault.clear()

    # When the pass reads them back
    report = verify_actions(engine, actions)

    # Then all are confirmed from one CRL and each one's own record
    assert report.all_dead
    assert calls_to(backend_calls, f"/{pki_mount}/crl") == 1
    assert sum(1 for call in backend_calls.vault if f"/{pki_mount}/cert/" in call) == 3


def offboarding(workload: str) -> ResponseRequest:
    return ResponseRequest(
        incident_id=f"calls-{workload.rsplit('/', 1)[-1]}",
        workload_id=workload,
        reason="test: calls per credential",
        trigger=Trigger(source="rescind", detail_type="Workload Terminated", event_id="calls", workload_id=workload),
        terminated_at=datetime.now(UTC),
    )


def seed_workload(vault: hvac.Client, approle: AppRoleMount, issue: Issue, workload: str, *, each: int) -> None:  # noqa: F811
    """`each` tokens and as many AppRole secret-ids whose metadata names the workload, and one certificate for it."""
    meta = {"spiffe_id": workload}
    for _ in range(each):
        token(vault, policies=["default"], meta=meta)
        _issue(vault, approle, metadata=meta)
    issue(workload)


def plan_end(vault: hvac.Client, workload: str, scope: DiscoveryScope) -> ResponsePlan:
    """The offboarding plan task's plan and guard, with no protected workload."""
    _, planned = build_offboarding_plan(
        offboarding(workload), vault=vault, aws=None, inventory=None, scope=scope, policy=GuardPolicy()
    )
    return planned


def test_the_plans_guard_reads_nothing_discovery_read_already(
    vault: hvac.Client,
    unique: str,
    approle: AppRoleMount,  # noqa: F811 - the fixture
    pki_mount: str,  # noqa: F811 - the fixture
    issue: Issue,  # noqa: F811 - the fixture
    backend_calls: BackendCalls,
) -> None:
    # Given a workload holding two tokens, two secret-ids and a certificate
    workload = f"spiffe://rescind.test/ns/calls/sa/{unique}"
    seed_workload(vault, approle, issue, workload, each=2)
    scope = DiscoveryScope(pki_mounts=(pki_mount,), approle_mounts=(approle.mount,))
    backend_calls.vault.clear()
    discovered = discover_workload_credentials(vault, None, workload, scope)
    discovery_calls = list(backend_calls.vault)
    backend_calls.vault.clear()

    # When its end is planned (discovery, then the guard)
    planned = plan_end(vault, workload, scope)

    # Then the plan holds all five, and the guard made no read of its own: the plan's calls are discovery's, and
    # one question for both tokens (they share their policies and entity) of whether they may create tokens
    assert planned.decision is GuardDecision.PROCEED
    assert len(discovered) == len(planned.actions) == 5
    asked_once = ["LIST /v1/auth/token/roles", "POST /v1/sys/capabilities-accessor"]
    assert sorted(call.split("?")[0] for call in backend_calls.vault) == sorted(
        [*(call.split("?")[0] for call in discovery_calls), *asked_once]
    )
    assert all(action.params.cannot_create_tokens for action in planned.actions if action.target.kind == "vault_token")


def test_a_discovered_token_whose_held_child_would_die_with_it_still_stops_the_plan(
    vault: hvac.Client,
    unique: str,
    token_maker: str,  # noqa: F811 - the fixture: a policy that may create tokens
) -> None:
    # Given a workload token that may create tokens, and a token it created that its owner holds
    workload = f"spiffe://rescind.test/ns/calls/sa/maker-{unique}"
    created = vault.auth.token.create(
        ttl="1h", policies=["default", f"child-maker-{unique}"], meta={"spiffe_id": workload}
    )["auth"]
    parent = hvac.Client(url=vault.url, token=created["client_token"])
    held = parent.auth.token.create(ttl="1h", policies=["default"], meta={VAULT_HOLD_KEY: "incident-review"})["auth"]

    # When its end is planned from discovery
    planned = plan_end(vault, workload, DiscoveryScope(pki_mounts=(), approle_mounts=(), kv_mounts=()))

    # Then the guard refuses, naming the held token, and both live
    assert planned.decision is GuardDecision.REFUSE
    assert held["accessor"] in planned.decision_reason
    assert vault.auth.token.lookup_accessor(created["accessor"])["data"]["accessor"] == created["accessor"]
    assert vault.auth.token.lookup_accessor(held["accessor"])["data"]["accessor"] == held["accessor"]


def test_the_acting_guard_takes_the_plans_read_of_a_token_and_a_secret_id_and_reads_the_rest(
    vault: hvac.Client,
    unique: str,
    approle: AppRoleMount,  # noqa: F811 - the fixture
    pki_mount: str,  # noqa: F811 - the fixture
    issue: Issue,  # noqa: F811 - the fixture
    backend_calls: BackendCalls,
) -> None:
    # Given the planned end of a workload holding a token, a secret-id and a certificate
    workload = f"spiffe://rescind.test/ns/calls/sa/acting-{unique}"
    seed_workload(vault, approle, issue, workload, each=1)
    scope = DiscoveryScope(pki_mounts=(pki_mount,), approle_mounts=(approle.mount,))
    planned = plan_end(vault, workload, scope)
    assert planned.decision is GuardDecision.PROCEED
    by_kind = {str(action.target.kind): action for action in planned.actions}
    # Vault cannot change a token's or a secret-id's metadata once issued: their revocations carry the plan's read
    assert by_kind["vault_token"].params.owners_read_at_plan == (workload,)
    assert by_kind["approle_secret_id"].params.owners_read_at_plan == (workload,)
    assert by_kind["pki_certificate"].params.owners_read_at_plan is None
    client = hvac.Client(url=vault.url, token=vault.token)
    engine = build_engine(client)
    own_token_accessor(client)  # Rescind's own token, looked up once per client: not this action's call

    def act(action: Action) -> list[str]:
        backend_calls.vault.clear()
        executed = execute_checked(
            action,
            dry_run=False,
            engine=engine,
            scope=scope,
            refuse_if_guarded=lambda acting: refuse_guarded_target(vault, None, acting, GuardPolicy()),
            approvals=lambda: (),
        )
        assert executed.result.outcome is Outcome.SUCCEEDED, executed.result.detail
        return [call.split(" ")[0] + " " + call.split(" ")[1].split("?")[0] for call in backend_calls.vault]

    # When each is acted on through the acting task's guard
    # Then the token and the secret-id each take their revoke and its read-back, nothing read before
    assert act(by_kind["vault_token"]) == [
        "POST /v1/auth/token/revoke-accessor",
        "POST /v1/auth/token/lookup-accessor",
    ]
    role = f"/v1/auth/{approle.mount}/role/{approle.role_name}"
    assert act(by_kind["approle_secret_id"]) == [
        f"POST {role}/secret-id-accessor/destroy",
        f"POST {role}/secret-id-accessor/lookup",
    ]
    # and the certificate, which carries no such read, is read before its revoke as before
    read_first, revoked = act(by_kind["pki_certificate"])[:2]
    assert read_first.startswith(f"GET /v1/{pki_mount}/cert/")
    assert revoked == f"POST /v1/{pki_mount}/revoke"


def test_a_workload_protected_since_its_plan_is_refused_on_the_plans_read_with_no_call(
    vault: hvac.Client, unique: str, backend_calls: BackendCalls
) -> None:
    # Given a token revocation planned while its workload was not protected
    workload = f"spiffe://rescind.test/ns/calls/sa/protected-{unique}"
    accessor = token(vault, policies=["default"], meta={"spiffe_id": workload})
    scope = DiscoveryScope(pki_mounts=(), approle_mounts=(), kv_mounts=())
    (action,) = plan_end(vault, workload, scope).actions
    assert action.params.owners_read_at_plan == (workload,)
    backend_calls.vault.clear()

    # When it is acted on under a policy that now protects the workload
    executed = execute_checked(
        action,
        dry_run=False,
        engine=build_engine(vault),
        scope=scope,
        refuse_if_guarded=lambda acting: refuse_guarded_target(
            vault, None, acting, GuardPolicy(protected_workloads=frozenset({workload}))
        ),
        approvals=lambda: (),
    )

    # Then the guard refuses on the owner the plan read, before any call, and the token lives
    assert executed.result.outcome is Outcome.FAILED
    assert executed.result.error_type == "PolicyRefusal"
    assert workload in executed.result.detail
    assert backend_calls.vault == []
    assert vault.auth.token.lookup_accessor(accessor)["data"]["accessor"] == accessor


def test_an_action_carrying_no_read_from_its_plan_is_read_by_the_acting_guard(
    vault: hvac.Client, backend_calls: BackendCalls
) -> None:
    # Given a token its owner holds, and a revocation of it that no plan read (a recorded plan from before, or one
    # whose discovery did not read it)
    accessor = token(vault, policies=["default"], meta={VAULT_HOLD_KEY: "incident-review"})
    action = revoke(VaultTokenRef(accessor=accessor))
    backend_calls.vault.clear()

    # When it is acted on
    executed = execute_checked(
        action,
        dry_run=False,
        engine=build_engine(vault),
        scope=DiscoveryScope(),
        refuse_if_guarded=lambda acting: refuse_guarded_target(vault, None, acting, GuardPolicy()),
        approvals=lambda: (),
    )

    # Then the guard read it, found the hold and refused: one lookup, no revoke
    assert executed.result.error_type == "PolicyRefusal"
    assert calls_to(backend_calls, "/auth/token/lookup-accessor") == 1
    assert calls_to(backend_calls, "/auth/token/revoke-accessor") == 0
    assert vault.auth.token.lookup_accessor(accessor)["data"]["accessor"] == accessor
