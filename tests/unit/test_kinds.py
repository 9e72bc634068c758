"""The registry of credential kinds: every kind of the closed set registered exactly once, with every part.

A new kind that forgets a part fails here, before any flow meets it. No call reaches Vault or AWS: the clients
are built against an address nothing listens on, and only handlers' refusals are exercised.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any, get_args

import hvac
import pytest

from rescind.aws.session import AwsClientFactory
from rescind.engine.base import CredentialHandler, KindHandler
from rescind.engine.factory import build_engine
from rescind.exceptions import UnsupportedAction
from rescind.kinds import LOCATED_BY, Backends, KindSpec, kind_spec, registered_kinds
from rescind.leaks.types import SecretType
from rescind.models import (
    SUPPORTED_ACTIONS,
    AcmPcaCertificateRef,
    Action,
    ActionKind,
    ActionParams,
    AppRoleSecretIdRef,
    CredentialKind,
    CredentialRef,
    DatabaseRootRef,
    DatabaseStaticRoleRef,
    IamAccessKeyRef,
    IamRoleSessionsRef,
    KvSecretRef,
    PkiCertificateRef,
    SecretsManagerSecretRef,
    TtlTargetType,
    VaultEntityRef,
    VaultLeaseRef,
    VaultTokenRef,
    VaultTtlTargetRef,
)
from rescind.models.refs import format_ref, parse_ref

pytestmark = pytest.mark.unit

UUID = "0c1b2f9e-1111-2222-3333-444455556666"
# One reference of each kind. A new kind adds its own here: the text form must round-trip.
EXAMPLES: dict[CredentialKind, CredentialRef] = {
    CredentialKind.VAULT_TOKEN: VaultTokenRef(accessor="CaTti28wsXOQA02COE2ygP2B"),
    CredentialKind.APPROLE_SECRET_ID: AppRoleSecretIdRef(mount="approle", role_name="billing", accessor=UUID),
    CredentialKind.VAULT_LEASE: VaultLeaseRef(lease_id="database/creds/app/AbCd1234"),
    CredentialKind.PKI_CERTIFICATE: PkiCertificateRef(mount="pki", serial="74:fe:3b:fb"),
    CredentialKind.KV_SECRET: KvSecretRef(mount="secret", path="apps/billing/db"),
    CredentialKind.VAULT_ENTITY: VaultEntityRef(entity_id=UUID),
    CredentialKind.VAULT_TTL_TARGET: VaultTtlTargetRef(
        target_type=TtlTargetType.PKI_ROLE, mount="pki", role_name="web"
    ),
    CredentialKind.IAM_ACCESS_KEY: IamAccessKeyRef(
        account_id="123456789012", user_name="deploy-bot", access_key_id="AKIA" + "Q" * 16
    ),
    CredentialKind.IAM_ROLE_SESSIONS: IamRoleSessionsRef(account_id="123456789012", role_name="app-role"),
    CredentialKind.SECRETS_MANAGER_SECRET: SecretsManagerSecretRef(
        secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:billing/db-AbCdEf"
    ),
    CredentialKind.ACM_PCA_CERTIFICATE: AcmPcaCertificateRef(
        ca_arn=f"arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/{UUID}", serial="0a:1b"
    ),
    CredentialKind.DATABASE_STATIC_ROLE: DatabaseStaticRoleRef(mount="database", role="billing"),
    CredentialKind.DATABASE_ROOT: DatabaseRootRef(mount="database", connection="billing-pg"),
}
SPECS = registered_kinds()


def _backends() -> Backends:
    """Clients that are never called: nothing listens on port 9, and no AWS call is made by these tests."""
    return Backends(hvac.Client(url="http://127.0.0.1:9", token="unused", timeout=1), AwsClientFactory())


def _union_members() -> tuple[Any, ...]:
    union = get_args(CredentialRef)[0]  # Annotated[Union[...], Field(discriminator="kind")]
    return get_args(union)


def test_every_kind_of_the_closed_set_is_registered_exactly_once() -> None:
    registered = Counter(spec.kind for spec in SPECS)

    assert set(registered) == set(CredentialKind)
    assert [kind for kind, count in registered.items() if count > 1] == []
    assert {kind: kind_spec(kind).kind for kind in CredentialKind} == {kind: kind for kind in CredentialKind}


def test_a_registration_names_every_part_it_has_no_default_to_forget() -> None:
    missing_default = dataclasses.MISSING
    defaulted = [
        field.name
        for field in dataclasses.fields(KindSpec)
        if field.default is not missing_default or field.default_factory is not missing_default
    ]

    assert defaulted == []


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: str(spec.kind))
def test_each_kind_has_every_part(spec: KindSpec[Any]) -> None:
    example = EXAMPLES[spec.kind]
    # Its reference model is its member of the pydantic discriminated union, and has a text form.
    assert spec.ref_type in _union_members()
    assert isinstance(example, spec.ref_type)
    assert parse_ref(format_ref(example)) == example
    # Its handler is the engine's for this kind, with one step for exactly the actions the kind supports.
    handler = spec.build_handler(_backends())
    assert isinstance(handler, CredentialHandler)
    assert isinstance(handler, KindHandler)
    assert handler.kinds == frozenset({spec.kind})
    assert set(handler.steps) == set(SUPPORTED_ACTIONS[spec.kind])
    # What ends it is an action it supports; the other parts are there, or said to be absent.
    assert spec.ending_action is None or spec.ending_action in SUPPORTED_ACTIONS[spec.kind]
    assert callable(spec.read_guard_facts)
    assert spec.discover is None or callable(spec.discover)
    assert spec.inventory is None or callable(spec.inventory)
    for secret_type, locator in spec.locate_leaked.items():
        assert isinstance(secret_type, SecretType)
        assert callable(locator.locate)


def test_every_leak_alert_type_is_located_by_exactly_one_kind() -> None:
    located = Counter(secret_type for spec in SPECS for secret_type in spec.locate_leaked)

    assert set(located) == set(SecretType)
    assert [secret_type for secret_type, count in located.items() if count > 1] == []
    # and the kind named as locating each type (which a leak alert loads alone) is the one that registers it
    assert {SecretType(name): kind for name, kind in LOCATED_BY.items()} == {
        secret_type: spec.kind for spec in SPECS for secret_type in spec.locate_leaked
    }


def test_the_engine_has_every_kinds_handler() -> None:
    engine = build_engine(_backends().vault, aws_factory=AwsClientFactory())

    assert {kind: engine.handler_for(kind).kinds for kind in CredentialKind} == {
        kind: frozenset({kind}) for kind in CredentialKind
    }


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: str(spec.kind))
def test_an_action_a_kind_does_not_support_is_refused_before_any_call(spec: KindSpec[Any]) -> None:
    handler = spec.build_handler(_backends())
    unsupported = sorted(set(ActionKind) - SUPPORTED_ACTIONS[spec.kind])
    # model_construct: a validated Action cannot carry such a pair, a hand-built or replayed one might.
    for action_kind in unsupported:
        action = Action.model_construct(
            kind=action_kind, target=EXAMPLES[spec.kind], reason="test", params=ActionParams()
        )
        with pytest.raises(UnsupportedAction, match=f"cannot {action_kind}"):
            handler.act(action)
        with pytest.raises(UnsupportedAction, match=f"cannot {action_kind}"):
            handler.verify(action)
    # A reference of another kind is refused as well, and is not on record for this handler.
    other = next(ref for kind, ref in EXAMPLES.items() if kind is not spec.kind)
    supported = sorted(SUPPORTED_ACTIONS[spec.kind])[0]
    stray = Action.model_construct(kind=supported, target=other, reason="test", params=ActionParams())
    with pytest.raises(UnsupportedAction):
        handler.act(stray)
    assert handler.exists(other) is False
