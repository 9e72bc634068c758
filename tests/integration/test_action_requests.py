"""The Vault requests one action of a Revoke batch makes (issue 18), in order, counted on a real OpenBao.

Each action is guarded by the acting task's own guard (the runtime's `refuse_guarded_target`: it reads the target
live, whoever wrote the action), then acted on and read back. Where the act would first read what the guard has just
read (a certificate's record, a token's lookup, an entity, a KV secret's metadata), it takes the guard's answer: one
request of each kind per target per action. The read-back after the act is always a request of its own, and a held
or protected target is refused after the guard's read with nothing written.

Per kind (Rescind's own token looked up once per client, before counting):
- certificate: GET cert/<serial> (guard), POST revoke, GET crl (the read-back: the revoke's answer and the CRL);
- token: lookup-accessor (guard), revoke-accessor, lookup-accessor (read-back); a token whose tree the plan lists
  is not looked up again before its children are;
- secret-id: secret-id-accessor/lookup (guard), destroy, lookup (read-back);
- lease (no hold to read): lookup (its revoke answers 204 for an unknown lease too), revoke, lookup (read-back);
- entity: GET entity (guard), POST entity (disable), GET entity (read-back);
- KV secret, a declared rotation with no hook: 16 (guard, value, three to stage, one read-back, the record read
  once before the finish's five, three reads back at once), down from 29 when each step read the record back.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import boto3
import hvac
import hvac.adapters
import pytest

from rescind.discovery import DiscoveryScope
from rescind.engine.batch import ExecuteBatchRequest, execute_batch
from rescind.engine.executor import ActionEngine
from rescind.engine.factory import build_engine
from rescind.guard import VAULT_HOLD_KEY, GuardPolicy, refuse_guarded_target
from rescind.ledger import DynamoDbLedger
from rescind.models import (
    Action,
    ActionKind,
    ActionParams,
    ActionResult,
    AppRoleSecretIdRef,
    CredentialRef,
    KvSecretRef,
    Outcome,
    PkiCertificateRef,
    VaultEntityRef,
    VaultLeaseRef,
    VaultTokenRef,
)
from rescind.vault.client import own_token_accessor
from rescind.vault.pki import canonical_serial, read_certificate_record
from rescind_local import create_table_from_template
from tests.integration.test_execute_batch_task import _alive

pytestmark = pytest.mark.integration

SPIFFE_ID = "spiffe://prod.example/payments"
# The body fields that name a target, shown after the path (a lookup names its target in the body).
_NAMING_FIELDS = ("accessor", "serial_number", "lease_id", "secret_id_accessor")


@dataclass(frozen=True)
class Estate:
    """Mounts of this test's own: PKI (a stored role, and a role whose certificates carry a lease), AppRole, KV v2."""

    pki: str
    approle: str
    kv: str

    def scope(self) -> DiscoveryScope:
        return DiscoveryScope(pki_mounts=(self.pki,), approle_mounts=(self.approle,), kv_mounts=(self.kv,))

    def certificate(self, vault: hvac.Client, *, role: str = "workload") -> tuple[str, dict[str, Any]]:
        issued = vault.secrets.pki.generate_certificate(
            role, "svc.example.com", extra_params={"uri_sans": SPIFFE_ID, "ttl": "1h"}, mount_point=self.pki
        )
        return canonical_serial(str(issued["data"]["serial_number"])), issued


@pytest.fixture
def estate(vault: hvac.Client, unique: str) -> Estate:
    pki, approle, kv = f"pki-{unique}", f"approle-{unique}", f"kv-{unique}"
    vault.sys.enable_secrets_engine("pki", path=pki, config={"max_lease_ttl": "24h"})
    vault.secrets.pki.generate_root("internal", "root.example", extra_params={"key_type": "ec"}, mount_point=pki)
    for role, leased in (("workload", False), ("leased", True)):
        vault.secrets.pki.create_or_update_role(
            role,
            {
                "allowed_domains": ["example.com"],
                "allow_subdomains": True,
                "allowed_uri_sans": "spiffe://*",
                "generate_lease": leased,
                "key_type": "ec",
                "ttl": "1h",
            },
            mount_point=pki,
        )
    vault.sys.enable_auth_method("approle", path=approle)
    vault.auth.approle.create_or_update_approle("app", token_policies=["default"], mount_point=approle)
    vault.sys.enable_secrets_engine("kv", path=kv, options={"version": "2"})
    return Estate(pki=pki, approle=approle, kv=kv)


@pytest.fixture
def ledger(aws: None) -> DynamoDbLedger:
    client = boto3.client("dynamodb")
    return DynamoDbLedger(create_table_from_template(client, "LedgerTable", "ledger"), client)


@pytest.fixture
def vault_requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every request that reaches Vault, as "METHOD /path field=value" (the body's field naming the target)."""
    seen: list[str] = []
    real_request = hvac.adapters.RawAdapter.request

    def counting_request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        body = kwargs.get("json") or {}
        named = "".join(f" {key}={body[key]}" for key in _NAMING_FIELDS if isinstance(body, dict) and key in body)
        seen.append(f"{method.upper()} {unquote(url)}{named}")
        return real_request(self, method, url, *args, **kwargs)

    monkeypatch.setattr(hvac.adapters.RawAdapter, "request", counting_request)
    return seen


def _run(
    vault: hvac.Client,
    ledger: DynamoDbLedger,
    estate: Estate,
    requests: list[str],
    actions: list[Action],
    *,
    protected: tuple[str, ...] = (),
    workers: int = 1,
    own_token_known: bool = True,
) -> tuple[list[ActionResult], list[str]]:
    """The actions as one Revoke batch (the runtime's guard on this Vault), and the Vault requests it made."""
    engine: ActionEngine = build_engine(vault)
    if own_token_known:
        own_token_accessor(vault)  # Rescind's own token: looked up once per client, not per action
    policy = GuardPolicy(protected_workloads=frozenset(protected))

    def refuse_if_guarded(action: Action) -> Any:
        return refuse_guarded_target(vault, None, action, policy)

    request = ExecuteBatchRequest(incident_id="inc-reads", attempt_id="exec.revoke.0.0", actions=tuple(actions))
    requests.clear()
    execute_batch(
        request,
        engine=engine,
        ledger=ledger,
        scope=estate.scope(),
        refuse_if_guarded=refuse_if_guarded,
        read_backs=None,
        workers=workers,
    )
    made = list(requests)
    attempts = ledger.read_incident("inc-reads").attempts
    by_action = {attempt.result.action_id: attempt.result for attempt in attempts}
    return [by_action[action.action_id] for action in actions], made


def _revoke(target: CredentialRef, **params: Any) -> Action:
    return Action(kind=ActionKind.REVOKE, target=target, reason="offboarded", params=ActionParams(**params))


def _token(vault: hvac.Client, meta: dict[str, str] | None = None) -> str:
    return str(vault.auth.token.create(ttl="1h", meta=meta or {})["auth"]["accessor"])


# --- one action, per kind ------------------------------------------------------------------------------------


def test_a_certificate_revoke_reads_its_record_once_for_the_guard_and_the_act(
    vault: hvac.Client, ledger: DynamoDbLedger, estate: Estate, vault_requests: list[str]
) -> None:
    # Given a live certificate of the workload
    serial, _ = estate.certificate(vault)

    # When one Revoke batch revokes it
    (result,), made = _run(
        vault, ledger, estate, vault_requests, [_revoke(PkiCertificateRef(mount=estate.pki, serial=serial))]
    )

    # Then the guard's read of its record is the act's: read once, revoked, and read back on the CRL
    assert result.outcome is Outcome.SUCCEEDED, result.detail
    assert made == [
        f"GET /v1/{estate.pki}/cert/{serial}",
        f"POST /v1/{estate.pki}/revoke serial_number={serial}",
        f"GET /v1/{estate.pki}/crl",
    ]
    record = read_certificate_record(vault, estate.pki, serial)
    assert record is not None
    assert record.revoked


def test_a_token_revoke_is_the_guards_lookup_the_revoke_and_its_read_back(
    vault: hvac.Client, ledger: DynamoDbLedger, estate: Estate, vault_requests: list[str]
) -> None:
    # Given a token the plan found cannot create tokens
    accessor = _token(vault, {"spiffe_id": SPIFFE_ID})

    # When one Revoke batch revokes it
    (result,), made = _run(
        vault, ledger, estate, vault_requests, [_revoke(VaultTokenRef(accessor=accessor), cannot_create_tokens=True)]
    )

    # Then: the guard's lookup, the revoke, the read-back
    assert result.outcome is Outcome.SUCCEEDED, result.detail
    assert made == [
        f"POST /v1/auth/token/lookup-accessor accessor={accessor}",
        f"POST /v1/auth/token/revoke-accessor accessor={accessor}",
        f"POST /v1/auth/token/lookup-accessor accessor={accessor}",
    ]


def test_a_token_the_planner_did_not_ask_about_is_asked_whether_it_may_create_tokens(
    vault: hvac.Client, ledger: DynamoDbLedger, estate: Estate, vault_requests: list[str]
) -> None:
    # Given a token named directly (no plan asked whether it may create tokens): its default policy may not
    accessor = str(vault.auth.token.create(ttl="1h", policies=["default"])["auth"]["accessor"])

    # When one Revoke batch revokes it
    (result,), made = _run(vault, ledger, estate, vault_requests, [_revoke(VaultTokenRef(accessor=accessor))])

    # Then: the guard's lookup, the token roles and its capabilities (nothing can die with it), the revoke, the
    # read-back
    assert result.outcome is Outcome.SUCCEEDED, result.detail
    assert made == [
        f"POST /v1/auth/token/lookup-accessor accessor={accessor}",
        "LIST /v1/auth/token/roles",
        f"POST /v1/sys/capabilities-accessor accessor={accessor}",
        f"POST /v1/auth/token/revoke-accessor accessor={accessor}",
        f"POST /v1/auth/token/lookup-accessor accessor={accessor}",
    ]


def test_a_token_whose_tree_the_plan_lists_is_not_looked_up_again_before_its_children(
    vault: hvac.Client, ledger: DynamoDbLedger, estate: Estate, vault_requests: list[str]
) -> None:
    # Given a token, and a token the issuance index lists under it (here not really its child: it must survive)
    accessor, listed = _token(vault), _token(vault)

    # When one Revoke batch revokes the first
    action = _revoke(VaultTokenRef(accessor=accessor), cannot_create_tokens=True, child_tokens=(listed,))
    (result,), made = _run(vault, ledger, estate, vault_requests, [action])

    # Then the token is looked up once before the revoke (the guard's read), the listed one before and after it
    assert result.outcome is Outcome.SUCCEEDED, result.detail
    assert made == [
        f"POST /v1/auth/token/lookup-accessor accessor={accessor}",
        f"POST /v1/auth/token/lookup-accessor accessor={listed}",
        f"POST /v1/auth/token/revoke-accessor accessor={accessor}",
        f"POST /v1/auth/token/lookup-accessor accessor={listed}",
        f"POST /v1/auth/token/lookup-accessor accessor={accessor}",
    ]
    # And the listed token, alive after, is not claimed as ended with it
    assert result.also_ended == ()
    assert _alive(vault, listed)


def test_a_secret_id_destroy_and_a_lease_revoke_make_one_read_before_and_one_after(
    vault: hvac.Client, ledger: DynamoDbLedger, estate: Estate, vault_requests: list[str]
) -> None:
    # Given a secret-id of the workload, and a certificate's lease
    issued = vault.auth.approle.generate_secret_id("app", metadata={"spiffe_id": SPIFFE_ID}, mount_point=estate.approle)
    secret_id = AppRoleSecretIdRef(mount=estate.approle, role_name="app", accessor=issued["data"]["secret_id_accessor"])
    _, leased = estate.certificate(vault, role="leased")
    lease_id = str(leased["lease_id"])

    # When one Revoke batch ends both, one at a time
    results, made = _run(
        vault, ledger, estate, vault_requests, [_revoke(secret_id), _revoke(VaultLeaseRef(lease_id=lease_id))]
    )

    # Then the secret-id: the guard's lookup, the destroy, the read-back; the lease (no hold to read): its lookup
    # (a revoke of an unknown lease answers like a real one), the revoke, the read-back
    assert [result.outcome for result in results] == [Outcome.SUCCEEDED, Outcome.SUCCEEDED]
    accessor_path = f"/v1/auth/{estate.approle}/role/app/secret-id-accessor"
    assert made == [
        f"POST {accessor_path}/lookup secret_id_accessor={secret_id.accessor}",
        f"POST {accessor_path}/destroy secret_id_accessor={secret_id.accessor}",
        f"POST {accessor_path}/lookup secret_id_accessor={secret_id.accessor}",
        f"PUT /v1/sys/leases/lookup lease_id={lease_id}",
        f"PUT /v1/sys/leases/revoke/{lease_id}",
        f"PUT /v1/sys/leases/lookup lease_id={lease_id}",
    ]


def test_an_entity_disable_reads_the_entity_once_before_and_once_after(
    vault: hvac.Client, ledger: DynamoDbLedger, estate: Estate, vault_requests: list[str], unique: str
) -> None:
    # Given an entity of the workload
    entity = vault.secrets.identity.create_or_update_entity(
        name=f"payments-{unique}", metadata={"spiffe_id": SPIFFE_ID}
    )
    entity_id = str(entity["data"]["id"])

    # When one Revoke batch disables it (containment)
    action = Action(kind=ActionKind.DISABLE, target=VaultEntityRef(entity_id=entity_id), reason="offboarded")
    (result,), made = _run(vault, ledger, estate, vault_requests, [action])

    # Then: the guard's read (the act's too), the disable, the read-back
    assert result.outcome is Outcome.SUCCEEDED, result.detail
    path = f"/v1/identity/entity/id/{entity_id}"
    assert made == [f"GET {path}", f"POST {path}", f"GET {path}"]
    assert vault.secrets.identity.read_entity(entity_id)["data"]["disabled"] is True


def test_a_kv_rotation_takes_the_guards_read_of_the_secrets_metadata(
    vault: hvac.Client, ledger: DynamoDbLedger, estate: Estate, vault_requests: list[str]
) -> None:
    # Given a shared secret of the workload that declares no rotation
    vault.secrets.kv.v2.create_or_update_secret("payments/db", secret={"password": "old"}, mount_point=estate.kv)
    vault.secrets.kv.v2.update_metadata("payments/db", custom_metadata={"spiffe_id": SPIFFE_ID}, mount_point=estate.kv)

    # When one Revoke batch is to rotate it
    action = Action(
        kind=ActionKind.ROTATE,
        target=KvSecretRef(mount=estate.kv, path="payments/db"),
        reason="offboarded",
        params=ActionParams(run_id="inc-reads"),
    )
    (result,), made = _run(vault, ledger, estate, vault_requests, [action])

    # Then its metadata is read once (the guard's read, which tells the act that no rotation is declared): nothing
    # is written, and the result asks its owner
    assert result.outcome is Outcome.SKIPPED, result.detail
    assert made == [f"GET /v1/{estate.kv}/metadata/payments/db"]


def test_a_declared_kv_rotation_reads_the_metadata_once_before_its_first_write(
    vault: hvac.Client, ledger: DynamoDbLedger, estate: Estate, vault_requests: list[str]
) -> None:
    # Given a shared secret of the workload whose owner declares `password` rotated with no hook
    vault.secrets.kv.v2.create_or_update_secret("payments/db", secret={"password": "old"}, mount_point=estate.kv)
    vault.secrets.kv.v2.update_metadata(
        "payments/db",
        custom_metadata={"spiffe_id": SPIFFE_ID, "rescind_rotate": "password", "rescind_rotation_hook": "none"},
        mount_point=estate.kv,
    )

    # When one Revoke batch rotates it
    action = Action(
        kind=ActionKind.ROTATE,
        target=KvSecretRef(mount=estate.kv, path="payments/db"),
        reason="offboarded",
        params=ActionParams(run_id="inc-reads"),
    )
    (result,), made = _run(vault, ledger, estate, vault_requests, [action])

    # Then before its first write it read the metadata once (the guard's read, which the act and the create step
    # take) and the current value once
    assert result.outcome is Outcome.SUCCEEDED, result.detail
    first_write = next(index for index, call in enumerate(made) if not call.startswith("GET "))
    assert made[:first_write] == [
        f"GET /v1/{estate.kv}/metadata/payments/db",
        f"GET /v1/{estate.kv}/data/payments/db",
    ]


def test_a_declared_kv_rotation_makes_these_requests_in_this_order(
    vault: hvac.Client, ledger: DynamoDbLedger, estate: Estate, vault_requests: list[str]
) -> None:
    # Given a shared secret with two versions whose owner declares `password` rotated with no hook
    kv = estate.kv
    for password in ("first-old", "second-old"):
        vault.secrets.kv.v2.create_or_update_secret("payments/db", secret={"password": password}, mount_point=kv)
    vault.secrets.kv.v2.update_metadata(
        "payments/db",
        custom_metadata={"spiffe_id": SPIFFE_ID, "rescind_rotate": "password", "rescind_rotation_hook": "none"},
        mount_point=kv,
    )

    # When one Revoke batch rotates it (a leak's policy: every previous version destroyed)
    action = Action(
        kind=ActionKind.ROTATE,
        target=KvSecretRef(mount=kv, path="payments/db"),
        reason="leaked",
        params=ActionParams(run_id="inc-reads"),
    )
    (result,), made = _run(vault, ledger, estate, vault_requests, [action])

    # Then it made exactly these requests: the guard's metadata read (the act takes it), the current value (the
    # pending value keeps its other fields), the staging copy written and marked, the rotation recorded, the staged
    # value read back once (setSecret and testSecret with no external system), the record read once (no other
    # rotation has taken it), the finish recorded, the staged value
    # written with cas = the base version, the new version recorded as landed, then the old versions destroyed,
    # the staging copy deleted, the rotation recorded finished; then the read-back, its three reads at once:
    # metadata, the current value and the staging copy (gone)
    assert result.outcome is Outcome.SUCCEEDED, result.detail
    secret, metadata = f"/v1/{kv}/data/payments/db", f"/v1/{kv}/metadata/payments/db"
    staged = f"/v1/{kv}/data/_rescind-pending/payments/db"
    staged_metadata = f"/v1/{kv}/metadata/_rescind-pending/payments/db"
    assert made[:13] == [
        f"GET {metadata}",
        f"GET {secret}",
        f"POST {staged}",
        f"PATCH {staged_metadata}",
        f"PATCH {metadata}",
        f"GET {staged}",
        f"GET {metadata}",
        f"PATCH {metadata}",
        f"POST {secret}",
        f"PATCH {metadata}",
        f"POST /v1/{kv}/destroy/payments/db",
        f"DELETE {staged_metadata}",
        f"PATCH {metadata}",
    ]
    assert Counter(made[13:]) == Counter([f"GET {metadata}", f"GET {secret}", f"GET {staged_metadata}"])
    after = vault.secrets.kv.v2.read_secret_metadata("payments/db", mount_point=kv)["data"]
    assert after["current_version"] == 3
    assert [after["versions"][str(version)]["destroyed"] for version in (1, 2, 3)] == [True, True, False]


# --- a batch of them ----------------------------------------------------------------------------------------


def test_a_batch_makes_no_request_twice_for_one_target_before_acting(
    vault: hvac.Client, ledger: DynamoDbLedger, estate: Estate, vault_requests: list[str]
) -> None:
    # Given two certificates and two tokens of the workload
    serials = [estate.certificate(vault)[0] for _ in range(2)]
    accessors = [_token(vault, {"spiffe_id": SPIFFE_ID}) for _ in range(2)]
    actions = [_revoke(PkiCertificateRef(mount=estate.pki, serial=serial)) for serial in serials] + [
        _revoke(VaultTokenRef(accessor=accessor), cannot_create_tokens=True) for accessor in accessors
    ]

    # When one Revoke batch ends them, four at a time
    results, made = _run(vault, ledger, estate, vault_requests, actions, workers=4)

    # Then each was read once before its change, changed once, and read back once (two revokes that end together
    # share the CRL fetched after both, so one fetch or two)
    assert {result.outcome for result in results} == {Outcome.SUCCEEDED}
    expected = Counter(
        [f"GET /v1/{estate.pki}/cert/{serial}" for serial in serials]
        + [f"POST /v1/{estate.pki}/revoke serial_number={serial}" for serial in serials]
        + [f"POST /v1/auth/token/lookup-accessor accessor={accessor}" for accessor in accessors] * 2
        + [f"POST /v1/auth/token/revoke-accessor accessor={accessor}" for accessor in accessors]
    )
    crl_fetches = made.count(f"GET /v1/{estate.pki}/crl")
    assert 1 <= crl_fetches <= 2
    assert Counter(call for call in made if not call.endswith("/crl")) == expected
    assert all(result.evidence[0].confirmed for result in results[:2])  # each serial on the CRL it was read back on


def test_certificate_revokes_that_end_together_share_the_crl_fetched_after_them(
    vault: hvac.Client, ledger: DynamoDbLedger, estate: Estate, vault_requests: list[str]
) -> None:
    # Given six live certificates
    serials = [estate.certificate(vault)[0] for _ in range(6)]

    # When one Revoke batch revokes them, six at a time
    actions = [_revoke(PkiCertificateRef(mount=estate.pki, serial=serial)) for serial in serials]
    results, made = _run(vault, ledger, estate, vault_requests, actions, workers=6)

    # Then each is proved by a CRL fetched after its revoke answered, which lists it; no more fetches than revokes
    assert {result.outcome for result in results} == {Outcome.SUCCEEDED}
    assert all(result.evidence[0].confirmed for result in results)
    fetches = [index for index, call in enumerate(made) if call == f"GET /v1/{estate.pki}/crl"]
    assert 1 <= len(fetches) <= len(serials)
    revokes = [index for index, call in enumerate(made) if "/revoke serial_number=" in call]
    assert max(revokes) < max(fetches)  # the last revoke is read back on a fetch sent after it


def test_the_acts_of_a_batch_that_start_together_look_up_rescinds_own_token_once(
    vault: hvac.Client, ledger: DynamoDbLedger, estate: Estate, vault_requests: list[str]
) -> None:
    # Given a client that has not looked its own token up yet (a new function instance), and six tokens to end
    client = hvac.Client(url=vault.url, token=vault.token)
    accessors = [_token(vault) for _ in range(6)]

    # When one Revoke batch revokes them, six at a time (each act first refuses Rescind's own token)
    actions = [_revoke(VaultTokenRef(accessor=accessor), cannot_create_tokens=True) for accessor in accessors]
    results, made = _run(client, ledger, estate, vault_requests, actions, workers=6, own_token_known=False)

    # Then its own token was looked up once for all of them
    assert {result.outcome for result in results} == {Outcome.SUCCEEDED}
    assert made.count("GET /v1/auth/token/lookup-self") == 1
    assert len(made) == 1 + 3 * len(accessors)


# --- what the guard refuses --------------------------------------------------------------------------------


def test_a_protected_certificate_is_refused_after_one_read_with_nothing_written(
    vault: hvac.Client, ledger: DynamoDbLedger, estate: Estate, vault_requests: list[str]
) -> None:
    # Given a certificate whose URI SAN names a protected workload
    serial, _ = estate.certificate(vault)

    # When a Revoke batch is to revoke it
    (result,), made = _run(
        vault,
        ledger,
        estate,
        vault_requests,
        [_revoke(PkiCertificateRef(mount=estate.pki, serial=serial))],
        protected=(SPIFFE_ID,),
    )

    # Then the guard's read refuses it: nothing else is asked, nothing written, the certificate still valid
    assert result.outcome is Outcome.FAILED
    assert result.error_type == "PolicyRefusal"
    assert SPIFFE_ID in result.detail
    assert made == [f"GET /v1/{estate.pki}/cert/{serial}"]
    record = read_certificate_record(vault, estate.pki, serial)
    assert record is not None
    assert not record.revoked


def test_a_held_token_is_refused_after_one_lookup_with_nothing_written(
    vault: hvac.Client, ledger: DynamoDbLedger, estate: Estate, vault_requests: list[str]
) -> None:
    # Given a token its owner holds, which the plan also lists a child token under
    accessor, listed = _token(vault, {VAULT_HOLD_KEY: "true"}), _token(vault)

    # When a Revoke batch is to revoke it
    action = _revoke(VaultTokenRef(accessor=accessor), child_tokens=(listed,))
    (result,), made = _run(vault, ledger, estate, vault_requests, [action])

    # Then the guard's lookup refuses it: nothing else is asked, nothing written, both tokens alive
    assert result.outcome is Outcome.FAILED
    assert result.error_type == "PolicyRefusal"
    assert "on hold" in result.detail
    assert made == [f"POST /v1/auth/token/lookup-accessor accessor={accessor}"]
    assert _alive(vault, accessor)
    assert _alive(vault, listed)


def test_a_certificate_the_guard_finds_no_record_of_is_not_claimed_dead(
    vault: hvac.Client, ledger: DynamoDbLedger, estate: Estate, vault_requests: list[str]
) -> None:
    # Given a serial the mount does not store (never issued there, or a no_store certificate still usable)
    serial = "7f:00:00:00:00:00:00:01"

    # When a Revoke batch is to revoke it
    (result,), made = _run(
        vault, ledger, estate, vault_requests, [_revoke(PkiCertificateRef(mount=estate.pki, serial=serial))]
    )

    # Then the guard found no record, so the act has nothing to revoke and reads nothing more before it; the
    # verification (CRL and record) does not confirm a certificate that may still be usable
    assert result.outcome is Outcome.FAILED
    assert result.error_type == "CredentialStillAlive"
    assert "no certificate" in result.detail
    assert made == [
        f"GET /v1/{estate.pki}/cert/{serial}",
        f"GET /v1/{estate.pki}/crl",
        f"GET /v1/{estate.pki}/cert/{serial}",
    ]
    assert not [call for call in made if not call.startswith("GET ")]


def test_a_token_gone_before_its_guard_read_is_already_absent_only_by_its_own_answer(
    vault: hvac.Client, ledger: DynamoDbLedger, estate: Estate, vault_requests: list[str]
) -> None:
    # Given a token revoked since the plan read it alive, with a child token listed under it
    accessor, listed = _token(vault), _token(vault)
    vault.auth.token.revoke_accessor(accessor)

    # When a Revoke batch is to revoke it
    action = _revoke(VaultTokenRef(accessor=accessor), cannot_create_tokens=True, child_tokens=(listed,))
    (result,), made = _run(vault, ledger, estate, vault_requests, [action])

    # Then the guard's lookup found no token, which the act takes (no second lookup, no revoke): already absent,
    # read back; the listed token is not touched
    assert result.outcome is Outcome.ALREADY_ABSENT, result.detail
    assert made == [
        f"POST /v1/auth/token/lookup-accessor accessor={accessor}",
        f"POST /v1/auth/token/lookup-accessor accessor={accessor}",
    ]
    assert _alive(vault, listed)
