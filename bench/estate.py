"""The estate the offboarding benchmark revokes: one workload holding N credentials in realistic proportions,
plus a neighbour's tokens that discovery must scan past, seeded into OpenBao (by reference only, no value kept)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SEED_THREADS = 16

# Realistic proportions for one workload: mostly tokens, then secret-ids, certificates and leased certificates.
CREDENTIAL_MIX: tuple[tuple[str, int], ...] = (
    ("vault_token", 40),
    ("approle_secret_id", 25),
    ("pki_certificate", 20),
    ("vault_lease", 15),
)


def composition(n: int) -> dict[str, int]:
    """N credentials split by CREDENTIAL_MIX; the rounding remainder goes to tokens."""
    counts = {kind: n * share // 100 for kind, share in CREDENTIAL_MIX}
    counts["vault_token"] += n - sum(counts.values())
    return counts


class Retries:
    """Counts retried 5xx answers. OpenBao answers concurrent writes under one AppRole role with
    500 "transaction commit failed"; a caller must retry them (Rescind's engine does, as VaultUnavailable)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def call(self, attempt: Callable[[], Any], tries: int = 8) -> Any:
        import hvac.exceptions

        for index in range(tries):
            try:
                return attempt()
            except hvac.exceptions.InternalServerError:
                if index == tries - 1:
                    raise
                with self._lock:
                    self.count += 1
                time.sleep(0.01 * (2**index))
        raise AssertionError("unreachable")


def thread_local_clients(addr: str, token: str) -> Callable[[], Any]:
    """One hvac client per thread: a requests.Session is not meant to be shared by threads."""
    import hvac

    local = threading.local()

    def client() -> Any:
        existing = getattr(local, "client", None)
        if existing is None:
            existing = local.client = hvac.Client(url=addr, token=token, timeout=60)
        return existing

    return client


@dataclass
class Estate:
    """What one seeded workload holds, by reference only (no value is kept)."""

    workload_id: str
    tokens: list[str] = field(default_factory=list)  # accessors
    secret_ids: list[tuple[str, str]] = field(default_factory=list)  # (role, accessor)
    certificates: list[str] = field(default_factory=list)  # serials, URI SAN = the workload
    leases: list[str] = field(default_factory=list)  # lease ids of certificates from a generate_lease role
    seed_seconds: float = 0.0

    @property
    def size(self) -> int:
        return len(self.tokens) + len(self.secret_ids) + len(self.certificates) + len(self.leases)


def planned_short(estate: Estate, targets: Iterable[Any]) -> str | None:
    """Which seeded kinds the plan holds fewer of than were seeded (a discovery that silently missed some would
    leave them alive and still verify "0 alive": it reads back only what it planned); None when none is short."""
    seeded = {
        "vault_token": len(estate.tokens),
        "approle_secret_id": len(estate.secret_ids),
        "pki_certificate": len(estate.certificates),
        "vault_lease": len(estate.leases),
    }
    planned: dict[str, set[str]] = {}
    for target in targets:
        planned.setdefault(str(target.kind), set()).add(target.key)
    found = {kind: len(planned.get(kind, ())) for kind in seeded}
    short = [f"{kind} {found[kind]}/{count}" for kind, count in seeded.items() if found[kind] < count]
    return "the plan is short of what was seeded: " + ", ".join(short) if short else None


APPROLE_ROLE = "bench-workload"
LEASED_PKI_ROLE = "leased"


NEIGHBOUR = {"spiffe_id": "spiffe://bench.rescind/ns/bench/sa/neighbour"}


def seed_background_tokens(addr: str, token: str, count: int) -> float:
    """`count` tokens of a neighbour that discovery must scan past, created from SEED_THREADS threads; the seconds
    it took. Seeded once per server: nothing a run does touches them (their TTL outlasts any run)."""
    client = thread_local_clients(addr, token)
    retries = Retries()
    started = time.perf_counter()

    def create(_: int) -> None:
        retries.call(lambda: client().auth.token.create(policies=["default"], ttl="24h", meta=NEIGHBOUR))

    with ThreadPoolExecutor(SEED_THREADS) as pool:
        list(pool.map(create, range(count)))
    return round(time.perf_counter() - started, 3)


def reset_workload_mounts(addr: str, token: str) -> None:
    """Unmount PKI and AppRole, so that the next estate starts on an empty certificate store and CRL, as on a
    fresh server: a revoked certificate stays listed and on the CRL (OpenBao rebuilds it on each revocation, in
    time linear in its length), so runs on one server would otherwise each pay for the runs before them.
    Revoked tokens, secret-ids and leases leave nothing behind; the background tokens are kept."""
    import hvac

    from rescind_local.seed import APPROLE_MOUNT, PKI_MOUNT

    root = hvac.Client(url=addr, token=token, timeout=600)
    if f"{PKI_MOUNT}/" in root.sys.list_mounted_secrets_engines()["data"]:
        root.sys.disable_secrets_engine(PKI_MOUNT)
    if f"{APPROLE_MOUNT}/" in root.sys.list_auth_methods()["data"]:
        root.sys.disable_auth_method(APPROLE_MOUNT)


ISSUER_POLICY = "bench-workload-issuer"
ISSUER_RULES = (
    f'path "auth/approle/role/{APPROLE_ROLE}/secret-id" {{ capabilities = ["update"] }}\n'
    'path "pki/issue/workload" { capabilities = ["update"] }\n'
)


def tune_for_issuance_index(root: Any) -> None:
    """The audit settings the issuance index needs (README "The issuance index"): secret-id accessors and serials
    logged in the clear, in responses and in revocation requests, as are token accessors in revoke-accessor.
    The mounts are re-created every run (reset_workload_mounts), so they are tuned every run."""
    from rescind_local.seed import APPROLE_MOUNT, PKI_MOUNT

    root.sys.tune_mount_configuration(
        PKI_MOUNT, audit_non_hmac_response_keys=["serial_number"], audit_non_hmac_request_keys=["serial_number"]
    )
    root.sys.tune_auth_method(
        APPROLE_MOUNT,
        audit_non_hmac_response_keys=["secret_id_accessor"],
        audit_non_hmac_request_keys=["secret_id_accessor"],
    )
    root.sys.tune_auth_method("token", audit_non_hmac_request_keys=["accessor"])


def seed_estate(addr: str, token: str, n: int) -> Estate:
    """A workload holding N credentials in CREDENTIAL_MIX (the neighbour's tokens: seed_background_tokens).

    Tokens, secret-ids and certificates carry the discovery conventions (metadata `spiffe_id`, URI SAN); one of
    the tokens asks for the secret-ids and certificates, so the audit log names the workload as their holder.
    A lease cannot be found by workload in Vault, so the leased certificates carry no URI SAN and reach the
    plan through the inventory, as credentials issued to a workload are recorded there.
    """
    import hvac

    from rescind_local.seed import APPROLE_MOUNT, PKI_MOUNT, prepare_vault

    started = time.perf_counter()
    root = hvac.Client(url=addr, token=token, timeout=60)
    prepare_vault(root)
    root.secrets.pki.create_or_update_role(
        LEASED_PKI_ROLE,
        {
            "allowed_domains": "rescind.demo",
            "allow_subdomains": True,
            "key_type": "ec",
            "ttl": "24h",
            "generate_lease": True,
        },
        mount_point=PKI_MOUNT,
    )
    root.auth.approle.create_or_update_approle(APPROLE_ROLE, token_ttl="1h", mount_point=APPROLE_MOUNT)  # noqa: S106
    tune_for_issuance_index(root)

    estate = Estate(workload_id=f"spiffe://bench.rescind/ns/bench/sa/api-{uuid.uuid4().hex[:8]}")
    meta = {"spiffe_id": estate.workload_id}
    counts = composition(n)
    client = thread_local_clients(addr, token)
    retries = Retries()
    # The workload asks for its own secret-ids and certificates with one of its tokens, as a deployed workload does:
    # the audit log then files them under it (a request's own metadata is HMAC'd in the log; its token's is not).
    root.sys.create_or_update_policy(ISSUER_POLICY, ISSUER_RULES)
    issuer = root.auth.token.create(policies=["default", ISSUER_POLICY], ttl="2h", meta=meta)["auth"]
    as_workload = thread_local_clients(addr, issuer["client_token"])
    estate.tokens.append(str(issuer["accessor"]))

    def create_token(metadata: dict[str, str]) -> str:
        created = client().auth.token.create(policies=["default"], ttl="2h", meta=metadata)
        return str(created["auth"]["accessor"])  # the token itself is dropped here

    def create_secret_id(_: int) -> tuple[str, str]:
        made = as_workload().auth.approle.generate_secret_id(APPROLE_ROLE, metadata=meta, mount_point=APPROLE_MOUNT)
        return APPROLE_ROLE, str(made["data"]["secret_id_accessor"])

    def issue_certificate(index: int) -> str:
        issued = as_workload().secrets.pki.generate_certificate(
            "workload", f"c{index}.rescind.demo", extra_params={"uri_sans": estate.workload_id}, mount_point=PKI_MOUNT
        )
        return str(issued["data"]["serial_number"])

    def issue_leased_certificate(index: int) -> str:
        issued = client().secrets.pki.generate_certificate(
            LEASED_PKI_ROLE, f"l{index}.rescind.demo", mount_point=PKI_MOUNT
        )
        lease_id = str(issued.get("lease_id") or "")
        if not lease_id:
            raise RuntimeError("the generate_lease role issued a certificate without a lease")
        return lease_id

    def retried(make: Callable[[int], Any]) -> Callable[[int], Any]:
        return lambda index: retries.call(lambda: make(index))

    with ThreadPoolExecutor(SEED_THREADS) as pool:
        estate.tokens += pool.map(retried(lambda _: create_token(meta)), range(counts["vault_token"] - 1))
        estate.secret_ids = list(pool.map(retried(create_secret_id), range(counts["approle_secret_id"])))
        estate.certificates = list(pool.map(retried(issue_certificate), range(counts["pki_certificate"])))
        estate.leases = list(pool.map(retried(issue_leased_certificate), range(counts["vault_lease"])))
    estate.seed_seconds = round(time.perf_counter() - started, 3)
    return estate


def lease_refs(estate: Estate) -> list[Any]:
    from rescind.models import VaultLeaseRef

    return [VaultLeaseRef(lease_id=lease_id) for lease_id in estate.leases]


def offboarding_request(estate: Estate) -> Any:
    from rescind.ledger import Trigger
    from rescind.offboarding.types import offboarding_execution_name
    from rescind.response.types import ResponseRequest

    event_id = str(uuid.uuid4())
    return ResponseRequest(
        incident_id=offboarding_execution_name(estate.workload_id, event_id),
        workload_id=estate.workload_id,
        reason="workload terminated (benchmark)",
        trigger=Trigger(
            source="rescind", detail_type="Workload Terminated", event_id=event_id, workload_id=estate.workload_id
        ),
        terminated_at=datetime.now(UTC),
    )
