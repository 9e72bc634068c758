"""The text form of credential references: every kind round-trips, and bad input is refused unrepeated."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rescind.exceptions import InvalidInput
from rescind.models import (
    AcmPcaCertificateRef,
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
    refs,
)
from rescind.models import credentials as credential_models
from rescind.models.refs import REF_FORMS, format_ref, parse_ref

pytestmark = pytest.mark.unit

UUID = "0c1b2f9e-1111-2222-3333-444455556666"
ACCESSOR = "CaTti28wsXOQA02COE2ygP2B"
KEY_ID = "AKIA" + "Q" * 16
PCA_ARN = f"arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/{UUID}"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:billing/db-AbCdEf"
TOKEN_VALUE = "hvs.CAESIJzT2x9pQe8L0vWmYkRb3sNdHfUa7cXgQ1tZ"
LEGACY_TOKEN_VALUE = "s.AbCdEfGhIjKlMnOpQrStUvWx"
AWS_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

EXAMPLES: list[tuple[str, CredentialRef]] = [
    (f"vault-token:accessor:{ACCESSOR}", VaultTokenRef(accessor=ACCESSOR)),
    (
        f"approle:auth/approle:billing:{UUID}",
        AppRoleSecretIdRef(mount="auth/approle", role_name="billing", accessor=UUID),
    ),
    ("vault-lease:database/creds/app/AbCd1234", VaultLeaseRef(lease_id="database/creds/app/AbCd1234")),
    ("pki:pki_int:74:fe:3b:fb", PkiCertificateRef(mount="pki_int", serial="74:fe:3b:fb")),
    ("kv:secret:apps/billing/db", KvSecretRef(mount="secret", path="apps/billing/db")),
    (f"vault-entity:{UUID}", VaultEntityRef(entity_id=UUID)),
    (
        "vault-ttl:pki-role:pki:web",
        VaultTtlTargetRef(target_type=TtlTargetType.PKI_ROLE, mount="pki", role_name="web"),
    ),
    (
        "vault-ttl:approle-role:approle:billing",
        VaultTtlTargetRef(target_type=TtlTargetType.APPROLE_ROLE, mount="approle", role_name="billing"),
    ),
    (
        "vault-ttl:token-role:token:ci",
        VaultTtlTargetRef(target_type=TtlTargetType.TOKEN_ROLE, mount="token", role_name="ci"),
    ),
    ("vault-ttl:mount:pki", VaultTtlTargetRef(target_type=TtlTargetType.MOUNT, mount="pki")),
    (
        f"aws-key:123456789012:deploy-bot:{KEY_ID}",
        IamAccessKeyRef(account_id="123456789012", user_name="deploy-bot", access_key_id=KEY_ID),
    ),
    ("aws-role-sessions:123456789012:app-role", IamRoleSessionsRef(account_id="123456789012", role_name="app-role")),
    (f"aws-secret:{SECRET_ARN}", SecretsManagerSecretRef(secret_arn=SECRET_ARN)),
    (f"acm-pca:{PCA_ARN}:0a:1b", AcmPcaCertificateRef(ca_arn=PCA_ARN, serial="0a:1b")),
    ("vault-db-static:database:billing", DatabaseStaticRoleRef(mount="database", role="billing")),
    ("vault-db-root:db/team:billing-pg", DatabaseRootRef(mount="db/team", connection="billing-pg")),
]


@pytest.mark.parametrize(
    ("text", "ref"), EXAMPLES, ids=[text.split(":")[0] + ":" + str(i) for i, (text, _) in enumerate(EXAMPLES)]
)
def test_every_kind_parses_and_formats_back_to_the_same_text(text: str, ref: CredentialRef) -> None:
    # Given the documented text form of one reference
    # When it is parsed, and the result formatted
    parsed = parse_ref(text)
    # Then it is the expected model, and formatting gives the same text back
    assert parsed == ref
    assert format_ref(parsed) == text
    assert parse_ref(format_ref(ref)) == ref


def test_the_examples_cover_every_kind_and_every_prefix() -> None:
    assert {ref.kind for _, ref in EXAMPLES} == set(CredentialKind)
    assert {text.split(":")[0] for text, _ in EXAMPLES} == set(REF_FORMS)


def test_the_examples_in_the_module_docstring_parse() -> None:
    # The documentation cannot drift from the parser: every example line in it is read back.
    assert refs.__doc__ is not None
    lines = [line.strip() for line in refs.__doc__.splitlines() if line.startswith("    ") and ":" in line]
    examples = [line.replace("<uuid>", UUID) for line in lines]
    assert len(examples) >= len(REF_FORMS)
    for example in examples:
        assert format_ref(parse_ref(example)) == example


def test_serials_are_normalised_so_the_formatted_form_is_canonical() -> None:
    ref = parse_ref("pki:pki:74-FE-3B")
    assert ref == PkiCertificateRef(mount="pki", serial="74:fe:3b")
    assert format_ref(ref) == "pki:pki:74:fe:3b"


def test_surrounding_whitespace_and_prefix_case_are_forgiven() -> None:
    assert parse_ref(f"  VAULT-TOKEN:accessor:{ACCESSOR}\n") == VaultTokenRef(accessor=ACCESSOR)


# --- the property: every valid reference survives format then parse ------------------------------

_alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_segment = st.from_regex(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,12}", fullmatch=True)
_mounts = st.lists(_segment, min_size=1, max_size=3).map("/".join)
_paths = st.lists(_segment, min_size=1, max_size=5).map("/".join)
_lease_ids = st.lists(_segment, min_size=3, max_size=6).map("/".join)


def _not_token_shaped(value: str) -> bool:
    # parse_ref refuses anything shaped like a Vault token value, whatever the field (tested below).
    return re.fullmatch(r"(hv[sbr]|[sbr])\.[A-Za-z0-9_\-]{20,}", value) is None


_vault_names = st.from_regex(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-@]{0,40}", fullmatch=True).filter(_not_token_shaped)
_uuids = st.uuids().map(str)
_accessors = st.from_regex(r"[A-Za-z0-9]{24}(\.[A-Za-z0-9]{5,8})?", fullmatch=True)
_accounts = st.from_regex(r"[0-9]{12}", fullmatch=True)
_iam_names = st.from_regex(r"[A-Za-z0-9_+=,.@\-]{1,64}", fullmatch=True).filter(_not_token_shaped)
_key_ids = st.from_regex(r"AKIA[A-Z0-9]{16}", fullmatch=True)
_partitions = st.sampled_from(["aws", "aws-cn", "aws-us-gov"])
_regions = st.sampled_from(["us-east-1", "eu-west-2", "ap-southeast-1", "us-gov-west-1", "cn-north-1"])


def _serials(min_pairs: int) -> st.SearchStrategy[str]:
    return st.binary(min_size=min_pairs, max_size=20).map(lambda raw: ":".join(f"{byte:02x}" for byte in raw))


_secret_arns = st.builds(
    lambda partition, region, account, name, suffix: (
        f"arn:{partition}:secretsmanager:{region}:{account}:secret:{name}-{suffix}"
    ),
    _partitions,
    _regions,
    _accounts,
    st.from_regex(r"[A-Za-z0-9_/+=.@\-]{1,40}", fullmatch=True),
    st.text(alphabet=_alnum, min_size=6, max_size=6),
)
_pca_arns = st.builds(
    lambda partition, region, account, ca_id: (
        f"arn:{partition}:acm-pca:{region}:{account}:certificate-authority/{ca_id}"
    ),
    _partitions,
    _regions,
    _accounts,
    _uuids,
)
_ttl_targets = st.one_of(
    st.builds(VaultTtlTargetRef, target_type=st.just(TtlTargetType.MOUNT), mount=_mounts),
    st.builds(
        VaultTtlTargetRef,
        target_type=st.sampled_from([t for t in TtlTargetType if t is not TtlTargetType.MOUNT]),
        mount=_mounts,
        role_name=_vault_names,
    ),
)

any_ref: st.SearchStrategy[CredentialRef] = st.one_of(
    st.builds(VaultTokenRef, accessor=_accessors),
    st.builds(AppRoleSecretIdRef, mount=_mounts, role_name=_vault_names, accessor=_uuids),
    st.builds(VaultLeaseRef, lease_id=_lease_ids),
    st.builds(PkiCertificateRef, mount=_mounts, serial=_serials(2)),
    st.builds(KvSecretRef, mount=_mounts, path=_paths),
    st.builds(VaultEntityRef, entity_id=_uuids),
    _ttl_targets,
    st.builds(IamAccessKeyRef, account_id=_accounts, user_name=_iam_names, access_key_id=_key_ids),
    st.builds(IamRoleSessionsRef, account_id=_accounts, role_name=_iam_names),
    st.builds(SecretsManagerSecretRef, secret_arn=_secret_arns),
    st.builds(AcmPcaCertificateRef, ca_arn=_pca_arns, serial=_serials(1)),
)


@settings(max_examples=400, deadline=None)
@given(any_ref)
def test_parse_of_format_is_the_identity_for_every_valid_reference(ref: CredentialRef) -> None:
    text = format_ref(ref)
    assert parse_ref(text) == ref
    assert format_ref(parse_ref(text)) == text


def _own_wording(*modules: object) -> tuple[str, ...]:
    """Every string literal (and literal part of an f-string) in the modules that word the refusals."""
    found: list[str] = []
    for module in modules:
        tree = ast.parse(Path(str(getattr(module, "__file__", ""))).read_text())
        found += [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and type(node.value) is str]
    return tuple(found)


# Hypothesis also draws the code's own string constants: a text whose rest is Rescind's own wording ("prefix") is
# found in the message because the message says it, not because it repeats the text.
OWN_WORDING = _own_wording(refs, credential_models)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_arbitrary_text_either_parses_or_raises_invalid_input_without_repeating_it(text: str) -> None:
    try:
        ref = parse_ref(text)
    except InvalidInput as error:
        message = str(error)
        assert "\n" not in message
        rest = text.strip().partition(":")[2]
        if len(rest) >= 6 and not any(rest in wording for wording in OWN_WORDING):
            assert rest not in message
    else:
        assert parse_ref(format_ref(ref)) == ref


# --- bad input ---------------------------------------------------------------------------------

BAD_INPUTS: list[tuple[str, str]] = [
    ("", "empty credential reference"),
    ("   ", "empty credential reference"),
    (TOKEN_VALUE, "unknown credential reference form"),
    (f"vault-token:accessor:{TOKEN_VALUE}", "looks like a Vault token value"),
    (f"vault-token:{TOKEN_VALUE}", "looks like a Vault token value"),
    (f"vault-token:accessor:{LEGACY_TOKEN_VALUE}", "looks like a Vault token value"),
    (f"vault-token:{ACCESSOR}", "introduced by 'accessor:'"),
    ("vault-token:accessor:", "accessor is empty"),
    ("vault-token:accessor:tooShortToBeOne", "accessor is malformed"),
    ("kv:secret:apps/../root", "path traversal"),
    ("kv:..:apps", "path traversal"),
    ("kv:secret:apps/*", "no wildcard"),
    ("kv:secret:/etc/passwd", "no leading"),
    ("kv::apps", "mount is empty"),
    ("kv:secret:", "path is empty"),
    ("kv:secret:apps:db", "needs 2 parts"),
    ("vault-lease:database/creds", "at least 3 path segments"),
    ("vault-lease:database/creds/../../sys/x", "path traversal"),
    ("vault-lease:database/creds/*", "no wildcard"),
    ("pki:pki", "needs a mount and a serial"),
    ("pki:pki:not-hex", "serial is malformed"),
    ("pki:pki:*", "serial is malformed"),
    ("approle:approle:web", "needs 3 parts"),
    ("approle:approle:web:not-a-uuid", "accessor: id is malformed"),
    ("vault-entity:*", "entity_id: id is malformed"),
    ("vault-entity:", "entity_id is empty"),
    ("vault-ttl:role:pki:web", "target type must be one of"),
    ("vault-ttl:mount:pki:web", "needs 1 part"),
    ("vault-ttl:pki-role:pki", "needs 2 parts"),
    ("aws-key:123456789012:AKIAIOSFODNN7EXAMPLE", "needs the IAM user name"),
    (f"aws-key:123456789012:bob:{AWS_SECRET_KEY}", "looks like a secret access key"),
    (f"aws-key:12345:bob:{KEY_ID}", "account is malformed"),
    (f"aws-key:123456789012:*:{KEY_ID}", "user_name is malformed"),
    ("aws-role-sessions:123456789012:*", "role_name is malformed"),
    ("aws-role-sessions:123456789012:", "role_name is empty"),
    ("aws-secret:arn:aws:secretsmanager:us-east-1:123456789012:secret:*", "secret_arn is malformed"),
    ("aws-secret:arn:aws:s3:::a-bucket", "secret_arn is malformed"),
    (f"acm-pca:{PCA_ARN}", "needs a CA ARN"),
    ("acm-pca:arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/*:0a", "ca_arn is malformed"),
    ("password:hunter2hunter2", "unknown credential reference form"),
    ("kv:secret:apps\x00db", "whitespace or a control character"),
    ("kv:secret:apps db", "whitespace or a control character"),
    # Look-alikes: a Cyrillic a (U+0430) in the prefix, Arabic-Indic digits in an account, a fullwidth colon.
    (f"v\u0430ult-token:accessor:{ACCESSOR}", "non-ASCII"),
    (f"aws-key:\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661\u0662:bob:{KEY_ID}", "non-ASCII"),
    ("kv\uff1asecret\uff1aapps", "non-ASCII"),
    ("aws-role-sessions:123456789012:b\u043eb", "non-ASCII"),
    ("kv:secret:" + "a" * 3000, "longer than 2048"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_INPUTS, ids=[f"{i}" for i in range(len(BAD_INPUTS))])
def test_bad_input_is_refused_with_one_line_that_says_what_is_expected(text: str, expected: str) -> None:
    # When a malformed reference is parsed
    with pytest.raises(InvalidInput) as refused:
        parse_ref(text)
    message = str(refused.value)
    # Then the message names the problem, on one line
    assert expected in message
    assert "\n" not in message
    # And it says what form is expected: the prefix's form, or the list of known prefixes
    prefix, _, rest = text.strip().partition(":")
    if expected in ("unknown credential reference form", "empty credential reference"):
        assert all(known in message for known in REF_FORMS)
    elif not any(generic in expected for generic in ("non-ASCII", "longer than", "whitespace")):
        assert f"expected {REF_FORMS[prefix].form}" in message
    # And it never repeats what was typed after the prefix
    if len(rest) >= 6 and rest not in REF_FORMS.get(prefix, REF_FORMS["kv"]).form:
        assert rest not in message


PASTED_SECRETS: list[tuple[str, str]] = [
    (TOKEN_VALUE, TOKEN_VALUE),
    (f"vault-token:accessor:{TOKEN_VALUE}", TOKEN_VALUE),
    (f"vault-token:{TOKEN_VALUE}", TOKEN_VALUE),
    (f"vault-token:accessor:{LEGACY_TOKEN_VALUE}", LEGACY_TOKEN_VALUE),
    (f"kv:secret:{TOKEN_VALUE}", TOKEN_VALUE),
    (f"kv:secret:apps/{LEGACY_TOKEN_VALUE}", LEGACY_TOKEN_VALUE),
    (f"vault-lease:auth/token/{TOKEN_VALUE}", TOKEN_VALUE),
    (f"approle:approle:{TOKEN_VALUE}:{UUID}", TOKEN_VALUE),
    (f"aws-key:123456789012:bob:{AWS_SECRET_KEY}", AWS_SECRET_KEY),
    (f"aws-key:123456789012:{AWS_SECRET_KEY}", AWS_SECRET_KEY),
    (f"{AWS_SECRET_KEY}:x", AWS_SECRET_KEY),
    ("hunter2hunter2:x", "hunter2hunter2"),
]


@pytest.mark.parametrize(("text", "pasted"), PASTED_SECRETS, ids=[f"{i}" for i in range(len(PASTED_SECRETS))])
def test_a_pasted_secret_is_refused_and_never_reaches_the_message(text: str, pasted: str) -> None:
    # A token value is refused wherever it appears, even where its shape would pass as a Vault path:
    # accepting it would carry the secret into plans, logs and the ledger as a "reference".
    with pytest.raises(InvalidInput) as refused:
        parse_ref(text)
    assert pasted not in str(refused.value)
    assert re.search(r"hvs\.|s\.AbCd|wJalr|hunter2", str(refused.value)) is None


def test_the_error_is_not_chained_to_a_validation_error_that_holds_the_input() -> None:
    # pydantic's ValidationError keeps the input; a traceback printing the chain would show it.
    with pytest.raises(InvalidInput) as refused:
        parse_ref(f"vault-token:accessor:{TOKEN_VALUE}")
    assert refused.value.__cause__ is None
    assert refused.value.__suppress_context__
