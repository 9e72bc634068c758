"""The model refuses what it must refuse, and never has room for a secret value."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rescind.exceptions import InvalidInput
from rescind.models import (
    Action,
    ActionKind,
    ActionParams,
    CredentialKind,
    KvSecretRef,
    PkiCertificateRef,
    Plan,
    VaultTokenRef,
    parse_credential_ref,
)
from rescind.models.credentials import credential_ref_adapter
from rescind.validation import parse_with

ACCESSOR = "CaTti28wsXOQA02COE2ygP2B"
IAM_KEY = {
    "kind": "iam_access_key",
    "account_id": "123456789012",
    "user_name": "ci",
    "access_key_id": "AKIA" + "B" * 16,
}
VALID_REFS = [
    {"kind": "vault_token", "accessor": ACCESSOR},
    {"kind": "approle_secret_id", "role_name": "app", "accessor": "0c1b2f9e-1111-2222-3333-444455556666"},
    {"kind": "vault_lease", "lease_id": "database/creds/app/AbCd1234"},
    {"kind": "pki_certificate", "mount": "pki", "serial": "74:FE:3b:fb"},
    {"kind": "kv_secret", "mount": "secret", "path": "apps/billing/db"},
    {"kind": "vault_entity", "entity_id": "0c1b2f9e-1111-2222-3333-444455556666"},
    {"kind": "vault_ttl_target", "target_type": "pki_role", "mount": "pki", "role_name": "web"},
    {"kind": "vault_ttl_target", "target_type": "mount", "mount": "pki"},
    {"kind": "iam_access_key", "account_id": "123456789012", "user_name": "ci", "access_key_id": "AKIA" + "A" * 16},
    {"kind": "iam_role_sessions", "account_id": "123456789012", "role_name": "app-role"},
    {
        "kind": "secrets_manager_secret",
        "secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:billing/db-AbCdEf",
    },
    {
        "kind": "acm_pca_certificate",
        "ca_arn": "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/0c1b2f9e-1111-2222-3333-444455556666",
        "serial": "0a:1b",
    },
    {"kind": "vault_database_static_role", "mount": "database", "role": "billing"},
    {"kind": "vault_database_root", "connection": "billing-pg"},
]


@pytest.mark.parametrize("data", VALID_REFS, ids=lambda d: d["kind"])
def test_every_kind_round_trips_through_json(data: dict[str, str]) -> None:
    ref = parse_credential_ref(data)
    again = credential_ref_adapter.validate_json(credential_ref_adapter.dump_json(ref))
    assert again == ref
    assert ref.key.startswith(f"{data['kind']}:")


def test_the_closed_set_covers_every_kind() -> None:
    assert {d["kind"] for d in VALID_REFS} == {str(kind) for kind in CredentialKind}


def test_serials_are_normalised_to_lowercase_colon_hex() -> None:
    assert PkiCertificateRef(serial="74-FE-3B").serial == "74:fe:3b"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"kind": "password"}, "kind"),
        ({"accessor": ACCESSOR}, "kind"),
        ({"kind": "vault_token", "accessor": "hvs.CAESIthisIsATokenValueNotAnAccessor"}, "vault_token.accessor"),
        ({"kind": "vault_token", "accessor": ACCESSOR, "token": "s.x"}, "vault_token.token"),
        ({"kind": "kv_secret", "path": "apps/../root"}, "kv_secret.path"),
        ({"kind": "kv_secret", "path": ""}, "kv_secret.path"),
        ({"kind": "kv_secret", "path": "/"}, "kv_secret.path"),
        ({"kind": "kv_secret", "path": "apps/*"}, "kv_secret.path"),
        ({"kind": "kv_secret", "mount": "..", "path": "a"}, "kv_secret.mount"),
        ({"kind": "vault_lease", "lease_id": "database/creds"}, "vault_lease.lease_id"),
        ({"kind": "vault_lease", "lease_id": ""}, "vault_lease.lease_id"),
        ({"kind": "pki_certificate", "serial": "not-hex"}, "pki_certificate.serial"),
        (
            {"kind": "iam_access_key", "account_id": "12345", "user_name": "u", "access_key_id": "AKIA" + "A" * 16},
            "iam_access_key.account_id",
        ),
        (
            {
                "kind": "iam_access_key",
                "account_id": "123456789012",
                "user_name": "u",
                "access_key_id": "ASIA" + "A" * 16,
            },
            "iam_access_key.access_key_id",
        ),
        ({"kind": "secrets_manager_secret", "secret_arn": "arn:aws:s3:::bucket"}, "secrets_manager_secret.secret_arn"),
        ({"kind": "vault_ttl_target", "target_type": "mount", "mount": "pki", "role_name": "x"}, "vault_ttl_target"),
    ],
)
def test_bad_references_are_refused_naming_the_field(data: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_with(credential_ref_adapter, data, what="credential reference")
    assert f"{field}:" in str(refused.value)


def test_a_refusal_never_echoes_the_input() -> None:
    # Given a token value pasted where an accessor belongs
    pasted = "hvs.CAESIMyLeakedTokenValue0123456789"
    # When it is refused, Then the message does not contain it
    with pytest.raises(InvalidInput) as refused:
        parse_with(credential_ref_adapter, {"kind": "vault_token", "accessor": pasted}, what="reference")
    assert pasted not in str(refused.value)


def test_no_credential_model_has_a_field_for_a_value() -> None:
    forbidden = {"value", "secret", "token", "secret_id", "password", "private_key", "secret_access_key", "data"}
    for data in VALID_REFS:
        assert not forbidden & set(type(parse_credential_ref(data)).model_fields)


def test_an_action_that_does_not_apply_to_the_kind_is_refused() -> None:
    with pytest.raises(ValidationError, match="does not apply"):
        Action(kind=ActionKind.ROTATE, target=VaultTokenRef(accessor=ACCESSOR), reason="x")


def test_shorten_ttl_needs_a_ttl() -> None:
    with pytest.raises(ValidationError, match="ttl_seconds"):
        Action(kind=ActionKind.SHORTEN_TTL, target=VaultTokenRef(accessor=ACCESSOR), reason="x")


def test_action_ids_are_deterministic_and_survive_a_round_trip() -> None:
    first = Action(kind=ActionKind.REVOKE, target=VaultTokenRef(accessor=ACCESSOR), reason="leak")
    second = Action(kind=ActionKind.REVOKE, target=VaultTokenRef(accessor=ACCESSOR), reason="leak")
    assert first.action_id == second.action_id
    dumped = first.model_dump(mode="json")
    assert dumped["reversible"] is False
    assert Action.model_validate(dumped) == first


def test_a_remembered_action_id_follows_the_object_not_a_copy_with_other_params() -> None:
    # Given an action whose id (and its target's key) were already asked for
    first = Action(kind=ActionKind.REVOKE, target=VaultTokenRef(accessor=ACCESSOR), reason="leak")
    remembered, key = first.action_id, first.target.key
    assert first.action_id == remembered
    assert first.target.key == key == f"vault_token:{ACCESSOR}"
    # When a copy changes what the id is made of, the copy gets its own id
    copied = first.model_copy(update={"params": ActionParams(cannot_create_tokens=True)})
    retargeted = first.model_copy(update={"target": VaultTokenRef(accessor="B" * 24)})
    assert len({first.action_id, copied.action_id, retargeted.action_id}) == 3
    assert retargeted.target.key == "vault_token:" + "B" * 24
    # And equal actions whose params serialise differently keep their own ids, as they had before
    utc = Action(kind="delete", target=IAM_KEY, reason="x", params={"not_before": "2026-01-01T00:00:00+00:00"})
    paris = Action(kind="delete", target=IAM_KEY, reason="x", params={"not_before": "2026-01-01T01:00:00+01:00"})
    assert utc == paris
    assert utc.action_id != paris.action_id


def test_a_plan_puts_reversible_steps_first_and_collapses_duplicates() -> None:
    key = {"account_id": "123456789012", "user_name": "ci", "access_key_id": "AKIA" + "B" * 16}
    delete = Action(kind="delete", target={"kind": "iam_access_key", **key}, reason="leak")
    revoke = Action(kind="revoke", target=VaultTokenRef(accessor=ACCESSOR), reason="leak")
    disable = Action(kind="disable", target={"kind": "iam_access_key", **key}, reason="leak")
    rotate = Action(kind="rotate", target=KvSecretRef(path="apps/db"), reason="leak", params={"run_id": "inc-1"})
    plan = Plan.ordered("p1", [delete, revoke, disable, rotate, revoke])
    assert [a.kind for a in plan.actions] == ["disable", "rotate", "revoke", "delete"]
    assert plan.actions[0].reversible


def test_a_plan_out_of_order_is_refused() -> None:
    key = {"account_id": "123456789012", "user_name": "ci", "access_key_id": "AKIA" + "B" * 16}
    delete = Action(kind="delete", target={"kind": "iam_access_key", **key}, reason="leak")
    disable = Action(kind="disable", target={"kind": "iam_access_key", **key}, reason="leak")
    with pytest.raises(ValidationError, match="out of order"):
        Plan(plan_id="p", actions=(delete, disable))


def test_a_rotation_belongs_to_a_run_so_a_replay_is_one_rotation_and_the_next_run_another() -> None:
    with pytest.raises(ValidationError, match="run_id"):
        Action(kind="rotate", target=KvSecretRef(path="apps/db"), reason="leak")
    first = Action(kind="rotate", target=KvSecretRef(path="apps/db"), reason="leak", params={"run_id": "inc-1"})
    replay = Action(kind="rotate", target=KvSecretRef(path="apps/db"), reason="leak", params={"run_id": "inc-1"})
    next_run = Action(kind="rotate", target=KvSecretRef(path="apps/db"), reason="leak", params={"run_id": "inc-2"})
    assert first.action_id == replay.action_id != next_run.action_id


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "iam_role_sessions", "account_id": "١٢٣٤٥٦٧٨٩٠١٢", "role_name": "app"},  # Arabic-Indic digits
        {
            "kind": "iam_access_key",
            "account_id": "123456789012",
            "user_name": "b\u043eb",
            "access_key_id": "AKIA" + "A" * 16,
        },
        {"kind": "iam_role_sessions", "account_id": "123456789012", "role_name": "\u0430pp"},  # Cyrillic a
    ],
)
def test_look_alike_unicode_is_refused(data: dict[str, str]) -> None:
    with pytest.raises(InvalidInput):
        parse_with(credential_ref_adapter, data, what="reference")


@pytest.mark.parametrize(
    ("kind", "target"),
    [
        (ActionKind.SHORTEN_TTL, VaultTokenRef(accessor=ACCESSOR)),  # a token, but not its revocation
        (ActionKind.REVOKE, PkiCertificateRef(mount="pki", serial="74:fe:3b:fb")),  # revoked, but not fixed metadata
        (ActionKind.ROTATE, KvSecretRef(mount="secret", path="apps/billing/db")),  # custom metadata can change
    ],
)
def test_the_plans_read_rides_only_with_a_revocation_whose_metadata_is_fixed_at_issue(
    kind: ActionKind, target: VaultTokenRef | PkiCertificateRef | KvSecretRef
) -> None:
    params = ActionParams(
        owners_read_at_plan=("spiffe://x/y",),
        ttl_seconds=60 if kind is ActionKind.SHORTEN_TTL else None,
        run_id="run-1" if kind is ActionKind.ROTATE else None,
    )
    with pytest.raises(ValidationError, match="owners_read_at_plan applies only"):
        Action(kind=kind, target=target, reason="x", params=params)


def test_the_plans_read_is_part_of_the_action_id() -> None:
    # A revocation that carries the plan's read is another action than one that does not: a recorded plan's actions
    # keep the ids they were recorded with.
    plain = Action(kind=ActionKind.REVOKE, target=VaultTokenRef(accessor=ACCESSOR), reason="x")
    read = plain.model_copy(update={"params": ActionParams(owners_read_at_plan=())})
    assert plain.action_id != read.action_id
    assert Action.model_validate(read.model_dump(mode="json")).params.owners_read_at_plan == ()
