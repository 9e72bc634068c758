"""The execute-action task: one action executed, verified and recorded; bad input refused before any call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import hvac
import pytest

from rescind.discovery import DiscoveryScope
from rescind.engine.factory import build_engine
from rescind.engine.tasks import ExecuteActionRequest, execute_and_record
from rescind.exceptions import InvalidInput, VaultUnavailable
from rescind.guard import VAULT_HOLD_KEY, GuardPolicy, refuse_guarded_target
from rescind.ledger import DynamoDbLedger
from rescind.models import Action, Outcome
from rescind_local import create_table_from_template
from tests.conftest import BackendCalls

SCOPE = DiscoveryScope()  # the template's defaults: pki, approle, secret


def guard_for(vault: hvac.Client, protected: tuple[str, ...] = ()) -> Callable[[Action], None]:
    """The acting task's guard as the function builds it (rescind.runtime.get_action_guard), on this Vault."""
    policy = GuardPolicy(protected_workloads=frozenset(protected))
    return lambda action: refuse_guarded_target(vault, None, action, policy)


@pytest.fixture
def ledger(aws: None) -> DynamoDbLedger:
    client = boto3.client("dynamodb")
    return DynamoDbLedger(create_table_from_template(client, "LedgerTable", "ledger"), client)


def _revoke_request(accessor: str, attempt: str) -> dict[str, Any]:
    return {
        "incident_id": "inc-task",
        "attempt_id": attempt,
        "action": {"kind": "revoke", "target": {"kind": "vault_token", "accessor": accessor}, "reason": "leak"},
    }


def test_an_action_is_executed_verified_and_recorded_and_a_replay_is_already_absent(
    vault: hvac.Client, ledger: DynamoDbLedger, backend_calls: BackendCalls
) -> None:
    # Given a live token
    accessor = vault.auth.token.create(ttl="1h")["auth"]["accessor"]
    engine = build_engine(vault)

    # When the task runs twice (a second delivery with a new attempt id)
    first = execute_and_record(
        ExecuteActionRequest.parse(_revoke_request(accessor, "exec-0-0")),
        engine=engine,
        ledger=ledger,
        scope=SCOPE,
        refuse_if_guarded=guard_for(vault),
    )
    second = execute_and_record(
        ExecuteActionRequest.parse(_revoke_request(accessor, "exec-0-1")),
        engine=engine,
        ledger=ledger,
        scope=SCOPE,
        refuse_if_guarded=guard_for(vault),
    )

    # Then the token is dead, the replay says so, and both attempts are in the ledger
    assert first.outcome is Outcome.SUCCEEDED
    assert second.outcome is Outcome.ALREADY_ABSENT
    with pytest.raises(hvac.exceptions.InvalidRequest):
        vault.auth.token.lookup_accessor(accessor)
    attempts = ledger.read_incident("inc-task").attempts
    assert [a.result.outcome for a in attempts] == [Outcome.SUCCEEDED, Outcome.ALREADY_ABSENT]
    # And the counting hook the bad-input tests rely on does see real calls
    assert any("revoke-accessor" in call for call in backend_calls.vault)
    assert "dynamodb:PutItem" in backend_calls.aws


def test_a_transient_failure_is_recorded_and_raised_for_the_state_machine_to_retry(ledger: DynamoDbLedger) -> None:
    unreachable = hvac.Client(url="http://127.0.0.1:9", token="unused", timeout=1)
    request = ExecuteActionRequest.parse(_revoke_request("A" * 24, "exec-1-0"))
    with pytest.raises(VaultUnavailable):
        execute_and_record(
            request,
            engine=build_engine(unreachable),
            ledger=ledger,
            scope=SCOPE,
            refuse_if_guarded=guard_for(unreachable),
        )
    (attempt,) = ledger.read_incident("inc-task").attempts
    assert attempt.result.outcome is Outcome.FAILED
    assert attempt.result.error_type == "VaultUnavailable"


ACCESSOR = "CaTti28wsXOQA02COE2ygP2B"
BAD_REQUESTS: list[tuple[str, Any]] = [
    ("not an object", "revoke everything"),
    ("empty", {}),
    (
        "unknown kind",
        _revoke_request(ACCESSOR, "a")
        | {"action": {"kind": "revoke", "reason": "x", "target": {"kind": "root_token"}}},
    ),
    ("token value as accessor", _revoke_request("hvs.CAESIAbCdEfGhIjKlMnOpQrStUv", "a")),
    (
        "path traversal",
        _revoke_request(ACCESSOR, "a")
        | {
            "action": {
                "kind": "rotate",
                "reason": "x",
                "params": {"run_id": "r"},
                "target": {"kind": "kv_secret", "path": "../sys"},
            }
        },
    ),
    (
        "root prefix lease",
        _revoke_request(ACCESSOR, "a")
        | {"action": {"kind": "revoke", "reason": "x", "target": {"kind": "vault_lease", "lease_id": "/"}}},
    ),
    (
        "empty lease",
        _revoke_request(ACCESSOR, "a")
        | {"action": {"kind": "revoke", "reason": "x", "target": {"kind": "vault_lease", "lease_id": ""}}},
    ),
    (
        "action not for kind",
        _revoke_request(ACCESSOR, "a")
        | {"action": {"kind": "delete", "reason": "x", "target": {"kind": "vault_token", "accessor": ACCESSOR}}},
    ),
    (
        "missing reason",
        _revoke_request(ACCESSOR, "a")
        | {"action": {"kind": "revoke", "target": {"kind": "vault_token", "accessor": ACCESSOR}}},
    ),
    ("bad incident id", _revoke_request(ACCESSOR, "a") | {"incident_id": "inc/../x"}),
    ("extra field", _revoke_request(ACCESSOR, "a") | {"token": "s.secret"}),
]


@pytest.mark.parametrize(("case", "event"), BAD_REQUESTS, ids=[case for case, _ in BAD_REQUESTS])
def test_bad_input_is_refused_naming_the_problem_and_touches_nothing(
    case: str, event: Any, vault: hvac.Client, ledger: DynamoDbLedger, backend_calls: BackendCalls
) -> None:
    engine = build_engine(vault)
    with pytest.raises(InvalidInput) as refused:
        execute_and_record(
            ExecuteActionRequest.parse(event),
            engine=engine,
            ledger=ledger,
            scope=SCOPE,
            refuse_if_guarded=guard_for(vault),
        )
    assert "invalid execute-action request" in str(refused.value)
    assert ":" in str(refused.value).removeprefix("invalid execute-action request:")
    assert backend_calls.total == 0
    assert "hvs.CAESIAbCdEfGhIjKlMnOpQrStUv" not in str(refused.value)


# --- targets outside the configured mounts (issue 13: each of these was accepted, and the first lowered the
# token store's TTLs to 60 s on a real OpenBao) ------------------------------------------------------------------

OUT_OF_SCOPE = [
    ("token mount TTL", "shorten_ttl", {"kind": "vault_ttl_target", "target_type": "mount", "mount": "auth/token"}),
    ("sys mount TTL", "shorten_ttl", {"kind": "vault_ttl_target", "target_type": "mount", "mount": "sys"}),
    (
        "PKI role on another mount",
        "shorten_ttl",
        {"kind": "vault_ttl_target", "target_type": "pki_role", "mount": "pki-other", "role_name": "web"},
    ),
    (
        "token role outside the token store",
        "shorten_ttl",
        {"kind": "vault_ttl_target", "target_type": "token_role", "mount": "approle", "role_name": "r"},
    ),
    ("certificate on sys/raw", "revoke", {"kind": "pki_certificate", "mount": "sys/raw", "serial": "1f:0a"}),
    ("KV secret on sys", "rotate", {"kind": "kv_secret", "mount": "sys", "path": "policy/root"}),
    (
        "secret-id on another AppRole",
        "revoke",
        {
            "kind": "approle_secret_id",
            "mount": "other",
            "role_name": "r",
            "accessor": "0c1b2f9e-1111-2222-3333-444455556666",
        },
    ),
    ("lease under auth/token", "revoke", {"kind": "vault_lease", "lease_id": "auth/token/revoke-prefix/x"}),
    ("lease under sys", "revoke", {"kind": "vault_lease", "lease_id": "sys/leases/revoke-force/x"}),
    ("lease on an unconfigured mount", "revoke", {"kind": "vault_lease", "lease_id": "database/creds/app/abc"}),
]


@pytest.mark.parametrize(("case", "kind", "target"), OUT_OF_SCOPE, ids=[case for case, _, _ in OUT_OF_SCOPE])
def test_a_target_outside_the_configured_mounts_is_refused_before_any_vault_call(
    case: str,
    kind: str,
    target: dict[str, Any],
    vault: hvac.Client,
    ledger: DynamoDbLedger,
    backend_calls: BackendCalls,
) -> None:
    # Given a well-formed action whose target lies outside PkiMounts, AppRoleMounts, KvMounts and LeaseMounts
    params = {"shorten_ttl": {"ttl_seconds": 60}, "rotate": {"run_id": "inc-scope"}}.get(kind, {})
    action = {"kind": kind, "target": target, "reason": case, "params": params}
    event = {"incident_id": "inc-scope", "attempt_id": "a", "action": action}
    request = ExecuteActionRequest.parse(event)

    # When the acting task runs it
    result = execute_and_record(
        request, engine=build_engine(vault), ledger=ledger, scope=SCOPE, refuse_if_guarded=guard_for(vault)
    )

    # Then it failed as out of scope, with no call to Vault; the refusal is recorded
    assert result.outcome is Outcome.FAILED
    assert result.error_type == "TargetOutOfScope"
    assert result.detail.startswith("target out of scope: ")
    assert backend_calls.vault == []
    assert [a.result.error_type for a in ledger.read_incident("inc-scope").attempts] == ["TargetOutOfScope"]


def test_a_lease_on_a_configured_lease_mount_is_in_scope(
    vault: hvac.Client, ledger: DynamoDbLedger, backend_calls: BackendCalls
) -> None:
    event = {
        "incident_id": "inc-scope-lease",
        "attempt_id": "a",
        "action": {
            "kind": "revoke",
            "target": {"kind": "vault_lease", "lease_id": "database/creds/app/abc"},
            "reason": "a database lease",
        },
    }
    scope = DiscoveryScope(lease_mounts=("database",))
    result = execute_and_record(
        ExecuteActionRequest.parse(event),
        engine=build_engine(vault),
        ledger=ledger,
        scope=scope,
        refuse_if_guarded=guard_for(vault),
    )
    assert result.error_type != "TargetOutOfScope"
    assert backend_calls.vault  # it was looked up: "not found" is the engine's answer, not the scope's


def test_a_held_token_named_by_an_action_is_refused_and_lives(vault: hvac.Client, ledger: DynamoDbLedger) -> None:
    # Given a token its owner holds, and an action naming it that no planner guarded
    accessor = vault.auth.token.create(ttl="1h", meta={VAULT_HOLD_KEY: "incident-review"})["auth"]["accessor"]
    request = ExecuteActionRequest.parse(_revoke_request(accessor, "exec-held"))

    # When the acting task runs it
    result = execute_and_record(
        request, engine=build_engine(vault), ledger=ledger, scope=SCOPE, refuse_if_guarded=guard_for(vault)
    )

    # Then it is refused and recorded, and the token lives
    assert (result.outcome, result.error_type) == (Outcome.FAILED, "PolicyRefusal")
    assert "on hold" in result.detail
    assert vault.auth.token.lookup_accessor(accessor)["data"]["accessor"] == accessor


def test_a_protected_workloads_certificate_named_by_an_action_is_not_revoked(
    vault: hvac.Client, ledger: DynamoDbLedger, unique: str
) -> None:
    """The fuzz test's find: ExecuteAction revoked a protected workload's certificate named directly."""
    from rescind_local.seed import PKI_MOUNT, prepare_vault

    prepare_vault(vault)
    protected = f"spiffe://protected.rescind/ns/core/sa/{unique}"
    issued = vault.secrets.pki.generate_certificate(
        "workload", f"{unique}.rescind.demo", extra_params={"uri_sans": protected}, mount_point=PKI_MOUNT
    )["data"]
    event = {
        "incident_id": "inc-protected",
        "attempt_id": "a",
        "action": {
            "kind": "revoke",
            "target": {"kind": "pki_certificate", "mount": PKI_MOUNT, "serial": issued["serial_number"]},
            "reason": "named directly",
        },
    }

    result = execute_and_record(
        ExecuteActionRequest.parse(event),
        engine=build_engine(vault),
        ledger=ledger,
        scope=SCOPE,
        refuse_if_guarded=guard_for(vault, protected=(protected,)),
    )

    assert (result.outcome, result.error_type) == (Outcome.FAILED, "PolicyRefusal")
    assert f"protected workload {protected}" in result.detail
    record = vault.secrets.pki.read_certificate(issued["serial_number"], mount_point=PKI_MOUNT)["data"]
    assert not record.get("revocation_time")


def test_verification_never_reads_a_target_outside_the_configured_mounts(
    vault: hvac.Client, backend_calls: BackendCalls
) -> None:
    """Found by the fuzz at full size: the verify task looked up a lease under auth/token/ that the acting task had
    refused. It is reported not ended, with why, and nothing is read."""
    from rescind.engine.verification import verify_actions
    from rescind.models import ActionKind, VaultLeaseRef

    action = Action(kind=ActionKind.REVOKE, target=VaultLeaseRef(lease_id="auth/token/revoke-prefix/x"), reason="x")

    report = verify_actions(build_engine(vault), [action], scope=SCOPE)

    assert report.still_alive == (action.target,)
    (verified,) = report.verified
    assert verified.evidence.confirmed is False
    assert "out of scope" in verified.evidence.observed
    assert backend_calls.vault == []
