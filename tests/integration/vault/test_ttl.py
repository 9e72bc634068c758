"""Lowering role and mount TTLs against a real OpenBao: only lower, never raise, touch nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import hvac
import pytest
from cryptography import x509

from rescind.engine.base import CredentialHandler
from rescind.exceptions import InvalidInput, UnsupportedAction
from rescind.models import Action, ActionKind, ActionParams, TtlTargetType, VaultTokenRef, VaultTtlTargetRef
from rescind.vault.ttl import VaultTtlTargetHandler, read_ttl_settings

DAY = 86400


def shorten(ref: VaultTtlTargetRef, ttl: int, max_ttl: int | None = None) -> Action:
    return Action(
        kind=ActionKind.SHORTEN_TTL,
        target=ref,
        reason="test: contain a leak",
        params=ActionParams(ttl_seconds=ttl, max_ttl_seconds=max_ttl),
    )


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    return {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}


@pytest.fixture
def pki_mount(vault: hvac.Client, unique: str) -> Iterator[str]:
    mount = f"pki-{unique}"
    vault.sys.enable_secrets_engine("pki", path=mount)
    vault.write(f"{mount}/root/generate/internal", common_name="rescind test CA", key_type="ec", ttl="48h")
    yield mount
    vault.sys.disable_secrets_engine(mount)


@pytest.fixture
def approle_mount(vault: hvac.Client, unique: str) -> Iterator[str]:
    mount = f"approle-{unique}"
    vault.sys.enable_auth_method("approle", path=mount)
    yield mount
    vault.sys.disable_auth_method(mount)


@pytest.fixture
def handler(vault: hvac.Client) -> VaultTtlTargetHandler:
    return VaultTtlTargetHandler(vault)


# A PKI role with many non-default fields, so a reset by a partial write would show.
PKI_ROLE_FIELDS: dict[str, Any] = {
    "allowed_domains": ["example.com"],
    "allow_subdomains": True,
    "allow_bare_domains": True,
    "key_type": "ec",
    "key_bits": 256,
    "organization": ["Rescind"],
    "ou": ["Security"],
    "allowed_uri_sans": ["spiffe://example.org/*"],
    "server_flag": False,
    "no_store": False,
    "generate_lease": False,
    "ttl": 3600,
    "max_ttl": 7200,
}


def test_handler_implements_the_credential_handler_protocol(handler: VaultTtlTargetHandler) -> None:
    assert isinstance(handler, CredentialHandler)


def test_lowering_a_pki_role_changes_only_its_ttl_fields_and_caps_new_certificates(
    vault: hvac.Client, pki_mount: str, handler: VaultTtlTargetHandler
) -> None:
    # Given a PKI role with a 1 h ttl, a 2 h max_ttl and many other non-default fields
    vault.write_data(f"{pki_mount}/roles/web", data=PKI_ROLE_FIELDS)
    before = vault.read(f"{pki_mount}/roles/web")["data"]
    action = shorten(VaultTtlTargetRef(target_type=TtlTargetType.PKI_ROLE, mount=pki_mount, role_name="web"), 300)

    # When the TTL is shortened to 5 minutes (the ceiling defaults to the ttl)
    first = handler.act(action)

    # Then ttl and max_ttl are lowered, before/after values are reported, and no other field moved
    assert first.changed is True
    assert "ttl 3600->300" in first.detail
    assert "max_ttl 7200->300" in first.detail
    after = vault.read(f"{pki_mount}/roles/web")["data"]
    assert changed_fields(before, after) == {"ttl", "max_ttl"}
    assert (after["ttl"], after["max_ttl"]) == (300, 300)
    evidence = handler.verify(action)
    assert evidence.confirmed is True
    assert "max_ttl=300" in evidence.observed

    # And a certificate asking for 2 h gets at most the new ceiling (plus the 30 s not_before backdate)
    issued = vault.write(f"{pki_mount}/issue/web", common_name="api.example.com", ttl="2h")["data"]
    certificate = x509.load_pem_x509_certificate(issued["certificate"].encode())
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime <= timedelta(seconds=300 + 30)

    # And a second run is already applied and changes nothing
    second = handler.act(action)
    assert second.changed is False
    assert second.absent is False
    assert second.detail.startswith("already at or below")
    assert vault.read(f"{pki_mount}/roles/web")["data"] == after


def test_a_target_above_the_current_value_is_ignored_for_that_field(
    vault: hvac.Client, pki_mount: str, handler: VaultTtlTargetHandler
) -> None:
    # Given a role whose ttl (5 min) is already below the wanted ttl, but whose max_ttl (2 h) is not
    vault.write_data(f"{pki_mount}/roles/mixed", data={**PKI_ROLE_FIELDS, "ttl": 300, "max_ttl": 7200})
    action = shorten(
        VaultTtlTargetRef(target_type=TtlTargetType.PKI_ROLE, mount=pki_mount, role_name="mixed"), 1800, 3600
    )

    # When it is shortened to ttl 30 min / max 1 h
    outcome = handler.act(action)

    # Then only max_ttl moved: the ttl was never raised
    assert outcome.changed is True
    assert "max_ttl 7200->3600" in outcome.detail
    assert "ttl 300->" not in outcome.detail
    after = vault.read(f"{pki_mount}/roles/mixed")["data"]
    assert (after["ttl"], after["max_ttl"]) == (300, 3600)
    assert handler.verify(action).confirmed is True


def test_a_target_above_every_current_value_is_already_applied_and_raises_nothing(
    vault: hvac.Client, pki_mount: str, handler: VaultTtlTargetHandler
) -> None:
    # Given a role with short TTLs
    vault.write_data(f"{pki_mount}/roles/short", data={**PKI_ROLE_FIELDS, "ttl": 60, "max_ttl": 120})
    before = vault.read(f"{pki_mount}/roles/short")["data"]
    action = shorten(
        VaultTtlTargetRef(target_type=TtlTargetType.PKI_ROLE, mount=pki_mount, role_name="short"), 3600, 7200
    )

    # When asked to "shorten" to longer values
    outcome = handler.act(action)

    # Then nothing is written: the act is already applied
    assert outcome.changed is False
    assert outcome.detail == f"already at or below: {pki_mount}/roles/short ttl=60 max_ttl=120"
    assert vault.read(f"{pki_mount}/roles/short")["data"] == before
    assert handler.verify(action).confirmed is True


def test_an_unset_pki_ttl_of_zero_counts_as_unlimited_and_is_lowered(
    vault: hvac.Client, pki_mount: str, handler: VaultTtlTargetHandler
) -> None:
    # Given a role with ttl and max_ttl unset (0: the mount's defaults, 32 days here)
    fields = {key: value for key, value in PKI_ROLE_FIELDS.items() if key not in ("ttl", "max_ttl")}
    vault.write_data(f"{pki_mount}/roles/unset", data=fields)
    ref = VaultTtlTargetRef(target_type=TtlTargetType.PKI_ROLE, mount=pki_mount, role_name="unset")
    settings = read_ttl_settings(vault, ref)
    assert settings is not None
    assert dict(settings.values) == {"ttl": 0, "max_ttl": 0}
    action = shorten(ref, 600, 1200)

    # Then verify sees 0 as above any target before the act
    assert handler.verify(action).confirmed is False

    # When shortened, both are lowered from 0
    outcome = handler.act(action)
    assert outcome.changed is True
    assert "ttl 0->600" in outcome.detail
    assert "max_ttl 0->1200" in outcome.detail
    assert handler.verify(action).confirmed is True


def test_a_ceiling_below_the_ttl_pulls_the_ttl_down_with_it(
    vault: hvac.Client, pki_mount: str, handler: VaultTtlTargetHandler
) -> None:
    # Given a role at 1 h / 2 h, and an action whose ceiling (10 min) is below its ttl (30 min)
    vault.write_data(f"{pki_mount}/roles/clamp", data=PKI_ROLE_FIELDS)
    action = shorten(
        VaultTtlTargetRef(target_type=TtlTargetType.PKI_ROLE, mount=pki_mount, role_name="clamp"), 1800, 600
    )

    # When shortened
    handler.act(action)

    # Then the ttl never exceeds the ceiling (Vault refuses ttl > max_ttl anyway)
    after = vault.read(f"{pki_mount}/roles/clamp")["data"]
    assert (after["ttl"], after["max_ttl"]) == (600, 600)
    assert handler.verify(action).confirmed is True


def test_lowering_an_approle_role_changes_only_its_token_ttls_and_keeps_secret_id_ttl(
    vault: hvac.Client, approle_mount: str, handler: VaultTtlTargetHandler
) -> None:
    # Given an AppRole role with long token TTLs and other settings
    vault.write_data(
        f"auth/{approle_mount}/role/app",
        data={
            "token_ttl": 3600,
            "token_max_ttl": 4 * 3600,
            "secret_id_ttl": DAY,
            "secret_id_num_uses": 5,
            "token_policies": ["default", "app"],
            "token_num_uses": 10,
            "token_bound_cidrs": ["127.0.0.1/32"],
        },
    )
    before = vault.read(f"auth/{approle_mount}/role/app")["data"]
    action = shorten(
        VaultTtlTargetRef(target_type=TtlTargetType.APPROLE_ROLE, mount=approle_mount, role_name="app"), 300, 900
    )

    # When shortened to 5 min / 15 min
    first = handler.act(action)

    # Then the token TTLs are lowered (the explicit max from unlimited 0), and nothing else moved
    assert first.changed is True
    assert "token_ttl 3600->300" in first.detail
    assert "token_max_ttl 14400->900" in first.detail
    assert "token_explicit_max_ttl 0->900" in first.detail
    after = vault.read(f"auth/{approle_mount}/role/app")["data"]
    assert changed_fields(before, after) == {"token_ttl", "token_max_ttl", "token_explicit_max_ttl"}
    assert after["secret_id_ttl"] == DAY
    assert after["token_period"] == 0  # 0 means "not periodic": never turned into a period
    assert handler.verify(action).confirmed is True

    # And a new login gets a token within the new ttl
    role_id = vault.read(f"auth/{approle_mount}/role/app/role-id")["data"]["role_id"]
    secret_id = vault.write(f"auth/{approle_mount}/role/app/secret-id")["data"]["secret_id"]
    login = vault.write_data(f"auth/{approle_mount}/login", data={"role_id": role_id, "secret_id": secret_id})
    assert 0 < login["auth"]["lease_duration"] <= 300

    # And a second run is already applied
    second = handler.act(action)
    assert second.changed is False
    assert second.detail.startswith("already at or below")
    assert vault.read(f"auth/{approle_mount}/role/app")["data"] == after


def test_a_periodic_approle_role_has_its_period_lowered(
    vault: hvac.Client, approle_mount: str, handler: VaultTtlTargetHandler, unique: str
) -> None:
    # Given an AppRole role issuing periodic tokens (a period of 1 day, renewable forever)
    vault.write_data(f"auth/{approle_mount}/role/periodic", data={"token_period": DAY, "token_policies": ["default"]})
    ref = VaultTtlTargetRef(target_type=TtlTargetType.APPROLE_ROLE, mount=f"auth/{approle_mount}", role_name="periodic")

    # When shortened to 10 minutes (the mount is given with its auth/ prefix: accepted too)
    outcome = handler.act(shorten(ref, 600))

    # Then the period and the explicit max (the only ceiling a periodic token obeys) are lowered
    assert outcome.changed is True
    after = vault.read(f"auth/{approle_mount}/role/periodic")["data"]
    assert after["token_period"] == 600
    assert after["token_explicit_max_ttl"] == 600
    assert handler.verify(shorten(ref, 600)).confirmed is True


def test_lowering_a_token_role_lowers_its_period_and_explicit_max_ttl(
    vault: hvac.Client, handler: VaultTtlTargetHandler, unique: str
) -> None:
    # Given a periodic token role with no explicit max (unlimited) and other settings
    name = f"periodic-{unique}"
    vault.write_data(
        f"auth/token/roles/{name}",
        data={"allowed_policies": ["default"], "orphan": True, "token_period": DAY, "token_num_uses": 4},
    )
    before = vault.read(f"auth/token/roles/{name}")["data"]
    action = shorten(VaultTtlTargetRef(target_type=TtlTargetType.TOKEN_ROLE, mount="token", role_name=name), 300)

    try:
        # When shortened to 5 minutes
        first = handler.act(action)

        # Then the period and the explicit max are lowered and nothing else moved
        assert first.changed is True
        assert "token_period 86400->300" in first.detail
        assert "token_explicit_max_ttl 0->300" in first.detail
        after = vault.read(f"auth/token/roles/{name}")["data"]
        assert changed_fields(before, after) == {"token_period", "token_explicit_max_ttl"}
        assert handler.verify(action).confirmed is True

        # And a token created from the role lives at most 5 minutes
        created = vault.auth.token.create(role_name=name, policies=["default"])
        assert 0 < created["auth"]["lease_duration"] <= 300
        vault.auth.token.revoke_accessor(created["auth"]["accessor"])

        # And a second run is already applied
        assert handler.act(action).changed is False
    finally:
        vault.delete(f"auth/token/roles/{name}")


def test_a_non_periodic_token_role_is_not_made_periodic(
    vault: hvac.Client, handler: VaultTtlTargetHandler, unique: str
) -> None:
    # Given a token role without a period
    name = f"plain-{unique}"
    vault.write_data(f"auth/token/roles/{name}", data={"allowed_policies": ["default"]})
    action = shorten(VaultTtlTargetRef(target_type=TtlTargetType.TOKEN_ROLE, mount="auth/token", role_name=name), 300)
    try:
        # When shortened
        outcome = handler.act(action)

        # Then only the explicit max is set: token_period stays 0 ("not periodic")
        assert outcome.detail.endswith("token_explicit_max_ttl 0->300")
        after = vault.read(f"auth/token/roles/{name}")["data"]
        assert (after["token_period"], after["token_explicit_max_ttl"]) == (0, 300)
        assert handler.verify(action).confirmed is True
    finally:
        vault.delete(f"auth/token/roles/{name}")


def test_lowering_a_secrets_mount_tunes_its_lease_ttls(
    vault: hvac.Client, pki_mount: str, handler: VaultTtlTargetHandler
) -> None:
    # Given a mount at the system defaults (32 days)
    before = vault.read(f"sys/mounts/{pki_mount}/tune")["data"]
    assert before["max_lease_ttl"] == 32 * DAY
    action = shorten(VaultTtlTargetRef(target_type=TtlTargetType.MOUNT, mount=pki_mount), 3600, 2 * 3600)

    # When shortened to 1 h / 2 h
    first = handler.act(action)

    # Then both lease TTLs are lowered and the rest of the mount config is untouched
    assert first.changed is True
    assert f"max_lease_ttl {32 * DAY}->7200" in first.detail
    after = vault.read(f"sys/mounts/{pki_mount}/tune")["data"]
    assert changed_fields(before, after) == {"default_lease_ttl", "max_lease_ttl"}
    assert (after["default_lease_ttl"], after["max_lease_ttl"]) == (3600, 7200)
    assert handler.verify(action).confirmed is True

    # And a second run is already applied
    second = handler.act(action)
    assert second.changed is False
    assert second.detail.startswith("already at or below")


def test_lowering_an_auth_mount_tunes_it_through_sys_mounts_auth(
    vault: hvac.Client, approle_mount: str, handler: VaultTtlTargetHandler
) -> None:
    # Given an auth mount, named with its auth/ prefix
    action = shorten(VaultTtlTargetRef(target_type=TtlTargetType.MOUNT, mount=f"auth/{approle_mount}"), 600)

    # When shortened
    assert handler.act(action).changed is True

    # Then sys/auth/<mount>/tune (the auth-specific view) shows the lowered values
    tuned = vault.read(f"sys/auth/{approle_mount}/tune")["data"]
    assert (tuned["default_lease_ttl"], tuned["max_lease_ttl"]) == (600, 600)
    assert handler.verify(action).confirmed is True
    assert handler.act(action).changed is False


@pytest.mark.parametrize(
    ("target_type", "mount", "role_name"),
    [
        (TtlTargetType.PKI_ROLE, "pki-{unique}", "missing"),
        (TtlTargetType.PKI_ROLE, "no-such-mount-{unique}", "missing"),
        (TtlTargetType.APPROLE_ROLE, "approle-{unique}", "missing"),
        (TtlTargetType.TOKEN_ROLE, "token", "missing-{unique}"),
        (TtlTargetType.MOUNT, "no-such-mount-{unique}", None),
        (TtlTargetType.MOUNT, "auth/no-such-auth-{unique}", None),
    ],
)
def test_a_missing_role_or_mount_is_already_absent(
    vault: hvac.Client,
    pki_mount: str,
    approle_mount: str,
    handler: VaultTtlTargetHandler,
    unique: str,
    target_type: TtlTargetType,
    mount: str,
    role_name: str | None,
) -> None:
    ref = VaultTtlTargetRef(
        target_type=target_type,
        mount=mount.format(unique=unique),
        role_name=None if role_name is None else role_name.format(unique=unique),
    )
    action = shorten(ref, 300)
    for _ in range(2):
        outcome = handler.act(action)
        assert (outcome.changed, outcome.absent) == (False, True)
        assert outcome.detail.startswith("already absent")
    assert read_ttl_settings(vault, ref) is None
    # Nothing was created by the attempt
    if target_type is TtlTargetType.APPROLE_ROLE:
        assert vault.read(f"auth/{ref.mount}/role/missing") is None
    if target_type is TtlTargetType.TOKEN_ROLE:
        assert vault.read(f"auth/token/roles/{ref.role_name}") is None
    assert handler.verify(action).confirmed is True


def test_a_token_role_outside_the_token_store_is_refused_before_any_call(
    vault: hvac.Client, approle_mount: str, handler: VaultTtlTargetHandler
) -> None:
    # Given an AppRole role, referenced by mistake as a token role on the AppRole mount
    vault.write_data(f"auth/{approle_mount}/role/app", data={"token_ttl": 3600})
    before = vault.read(f"auth/{approle_mount}/role/app")["data"]
    ref = VaultTtlTargetRef(target_type=TtlTargetType.TOKEN_ROLE, mount=approle_mount, role_name="app")

    # When acted on, Then it is refused and the role is unchanged
    with pytest.raises(InvalidInput, match="token store"):
        handler.act(shorten(ref, 60))
    assert vault.read(f"auth/{approle_mount}/role/app")["data"] == before


def test_a_pki_role_on_an_auth_mount_is_refused(handler: VaultTtlTargetHandler) -> None:
    ref = VaultTtlTargetRef(target_type=TtlTargetType.PKI_ROLE, mount="auth/approle", role_name="web")
    with pytest.raises(InvalidInput, match="auth mount"):
        handler.act(shorten(ref, 60))


def test_the_handler_refuses_an_action_for_another_kind(handler: VaultTtlTargetHandler) -> None:
    action = Action(kind=ActionKind.REVOKE, target=VaultTokenRef(accessor="a" * 24), reason="wrong handler")
    with pytest.raises(UnsupportedAction):
        handler.act(action)
    with pytest.raises(UnsupportedAction):
        handler.verify(action)
