"""Vault tokens by accessor, against the real OpenBao server."""

from __future__ import annotations

import contextlib
import threading

import hvac
import hvac.exceptions
import pytest

from rescind.engine.base import CredentialHandler
from rescind.engine.factory import build_engine
from rescind.exceptions import ActionFailed, InvalidInput, PolicyRefusal, UnsupportedAction, VaultUnavailable
from rescind.models import Action, ActionKind, ActionParams, AppRoleSecretIdRef, Outcome, VaultTokenRef
from rescind.vault.tokens import (
    LOOKUP_ASKS_ON_FORBIDDEN,
    VaultTokenHandler,
    find_token_accessors_by_metadata,
    find_token_accessors_by_spiffe_id,
    lookup_token_by_accessor,
)
from tests.conftest import BackendCalls

# A well-formed accessor that no token on the server has.
UNKNOWN_ACCESSOR = "A" * 24


def _create_token(vault: hvac.Client, **kwargs: object) -> tuple[str, str]:
    """(token value, accessor). The value stays in the test: it only proves the token is dead."""
    options: dict[str, object] = {"ttl": "2h", "policies": ["default"]}
    options.update(kwargs)
    auth = vault.auth.token.create(**options)["auth"]
    return auth["client_token"], auth["accessor"]


def _ttl(vault: hvac.Client, accessor: str) -> int:
    return int(vault.auth.token.lookup_accessor(accessor)["data"]["ttl"])


def _revoke(accessor: str) -> Action:
    return Action(kind=ActionKind.REVOKE, target=VaultTokenRef(accessor=accessor), reason="test")


def _shorten(accessor: str, ttl_seconds: int) -> Action:
    return Action(
        kind=ActionKind.SHORTEN_TTL,
        target=VaultTokenRef(accessor=accessor),
        reason="test",
        params=ActionParams(ttl_seconds=ttl_seconds),
    )


def test_handler_implements_the_protocol(vault: hvac.Client) -> None:
    assert isinstance(VaultTokenHandler(vault), CredentialHandler)


def test_revoke_twice_then_verified_and_the_token_no_longer_works(vault: hvac.Client) -> None:
    # Given a live token
    token, accessor = _create_token(vault)
    handler = VaultTokenHandler(vault)
    action = _revoke(accessor)
    assert handler.verify(action).confirmed is False

    # When it is revoked twice
    first = handler.act(action)
    second = handler.act(action)

    # Then the first run changed it, the second found it already absent, and the read-back proves it
    assert first.changed is True
    assert (second.changed, second.absent, second.detail) == (False, True, "already absent")
    evidence = handler.verify(action)
    assert evidence.confirmed is True
    assert "invalid accessor" in evidence.observed
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=vault.url, token=token).auth.token.lookup_self()
    for model in (first, second, evidence):
        assert token not in model.model_dump_json()


def test_revoke_of_an_unknown_accessor_is_already_absent(vault: hvac.Client) -> None:
    outcome = VaultTokenHandler(vault).act(_revoke(UNKNOWN_ACCESSOR))
    assert (outcome.changed, outcome.absent, outcome.detail) == (False, True, "already absent")


def test_revoke_leaves_other_tokens_alone(vault: hvac.Client) -> None:
    _, target = _create_token(vault)
    _, bystander = _create_token(vault)
    VaultTokenHandler(vault).act(_revoke(target))
    assert lookup_token_by_accessor(vault, target) is None
    assert lookup_token_by_accessor(vault, bystander) is not None


def test_shorten_lowers_the_ttl_then_is_already_applied(vault: hvac.Client) -> None:
    # Given a token with 2 hours left
    _, accessor = _create_token(vault, ttl="2h")
    handler = VaultTokenHandler(vault)
    action = _shorten(accessor, 300)
    assert handler.verify(action).confirmed is False

    # When its TTL is shortened to 5 minutes, twice
    first = handler.act(action)
    second = handler.act(action)

    # Then it was lowered once, left alone the second time, and reads back at or below 5 minutes
    assert first.changed is True
    assert second.changed is False
    assert second.detail.startswith("already applied")
    assert handler.verify(action).confirmed is True
    assert 0 < _ttl(vault, accessor) <= 300


def test_shorten_never_raises_a_smaller_ttl(vault: hvac.Client) -> None:
    # Given a token with 2 minutes left, which renew-accessor with 10 minutes would extend
    _, accessor = _create_token(vault, ttl="120s")

    outcome = VaultTokenHandler(vault).act(_shorten(accessor, 600))

    assert outcome.changed is False
    assert outcome.detail.startswith("already applied")
    assert 0 < _ttl(vault, accessor) <= 120


def test_shorten_of_a_non_renewable_token_fails_clearly_and_changes_nothing(vault: hvac.Client) -> None:
    _, accessor = _create_token(vault, ttl="1h", renewable=False)
    handler = VaultTokenHandler(vault)

    with pytest.raises(ActionFailed, match="not renewable"):
        handler.act(_shorten(accessor, 60))
    assert _ttl(vault, accessor) > 3000
    assert handler.verify(_shorten(accessor, 60)).confirmed is False


def test_shorten_of_a_periodic_token_is_refused_because_renewal_would_reset_it(vault: hvac.Client) -> None:
    _, accessor = _create_token(vault, period="1h")
    with pytest.raises(ActionFailed, match="periodic"):
        VaultTokenHandler(vault).act(_shorten(accessor, 60))
    assert _ttl(vault, accessor) > 3000


def test_shorten_of_a_revoked_token_is_already_absent_and_verified(vault: hvac.Client) -> None:
    _, accessor = _create_token(vault)
    vault.auth.token.revoke_accessor(accessor)
    handler = VaultTokenHandler(vault)

    outcome = handler.act(_shorten(accessor, 60))

    assert (outcome.changed, outcome.absent, outcome.detail) == (False, True, "already absent")
    assert handler.verify(_shorten(accessor, 60)).confirmed is True


def test_refuses_to_act_on_its_own_token(vault: hvac.Client) -> None:
    own = vault.auth.token.lookup_self()["data"]["accessor"]
    handler = VaultTokenHandler(vault)

    with pytest.raises(PolicyRefusal):
        handler.act(_revoke(own))
    with pytest.raises(PolicyRefusal):
        handler.act(_shorten(own, 60))

    assert vault.auth.token.lookup_self()["data"]["accessor"] == own


def test_find_by_metadata_returns_only_matching_tokens(vault: hvac.Client, unique: str) -> None:
    # Given two tokens of the workload, one of another workload, one without metadata, and the root token
    spiffe_id = f"spiffe://example.org/ns/test/sa/{unique}"
    _, first = _create_token(vault, meta={"spiffe_id": spiffe_id})
    _, second = _create_token(vault, meta={"spiffe_id": spiffe_id, "team": "a"})
    _, other = _create_token(vault, meta={"spiffe_id": spiffe_id + "-other"})
    _create_token(vault)
    own = vault.auth.token.lookup_self()["data"]["accessor"]

    # When the workload's tokens are looked for
    found = find_token_accessors_by_spiffe_id(vault, spiffe_id)

    # Then exactly its two tokens are found
    assert {ref.accessor for ref in found} == {first, second}
    assert own not in {ref.accessor for ref in found}
    assert other not in {ref.accessor for ref in found}


def test_find_by_metadata_uses_the_given_key(vault: hvac.Client, unique: str) -> None:
    _, accessor = _create_token(vault, meta={"workload": unique})
    assert find_token_accessors_by_metadata(vault, "workload", unique) == [VaultTokenRef(accessor=accessor)]
    assert find_token_accessors_by_metadata(vault, "spiffe_id", unique) == []


def test_find_refuses_an_empty_value(vault: hvac.Client) -> None:
    with pytest.raises(InvalidInput):
        find_token_accessors_by_metadata(vault, "spiffe_id", "")


def test_wrong_target_kind_is_unsupported(vault: hvac.Client) -> None:
    action = Action(
        kind=ActionKind.REVOKE,
        target=AppRoleSecretIdRef(role_name="r", accessor="0c1b2f9e-0000-0000-0000-000000000000"),
        reason="test",
    )
    with pytest.raises(UnsupportedAction):
        VaultTokenHandler(vault).act(action)


def test_unreachable_vault_is_transient() -> None:
    offline = hvac.Client(url="http://127.0.0.1:9", token="unused", timeout=2)
    with pytest.raises(VaultUnavailable):
        VaultTokenHandler(offline).verify(_revoke(UNKNOWN_ACCESSOR))


def _spend_last_use(url: str, value: str) -> None:
    """A use-limited token's last use: refused (403) if the revocation came first, or a 500 if the two met."""
    with contextlib.suppress(hvac.exceptions.VaultError):
        hvac.Client(url=url, token=value).auth.token.lookup_self()


def test_a_token_dying_as_it_is_looked_up_is_gone_not_an_error(vault: hvac.Client) -> None:
    # Given use-limited tokens whose last use is spent while each is looked up: OpenBao revokes such a token then,
    # and a lookup-accessor at that moment can find the accessor but not the token, and answer 403
    seen: set[str] = set()
    for _ in range(150):
        value, accessor = _create_token(vault, num_uses=1)
        last_use = threading.Thread(target=_spend_last_use, args=(vault.url, value))
        last_use.start()
        # When the token is looked up as it dies
        answers = ["alive" if lookup_token_by_accessor(vault, accessor) is not None else "gone" for _ in range(3)]
        last_use.join()
        # Then each answer is alive or gone, never an error; once gone, it stays gone
        assert answers == sorted(answers), answers
        seen.update(answers)
    assert seen == {"alive", "gone"}  # the lookups met tokens on both sides of their death


def test_a_lookup_denied_by_policy_is_asked_again_then_fails_as_permission_denied(
    vault: hvac.Client, unique: str, backend_calls: BackendCalls
) -> None:
    # Given a caller whose policy does not allow lookup-accessor, and a live token
    vault.sys.create_or_update_policy(unique, 'path "auth/token/lookup-self" { capabilities = ["read"] }')
    caller, _ = _create_token(vault, policies=[unique])
    _, accessor = _create_token(vault)
    denied = hvac.Client(url=vault.url, token=caller)
    backend_calls.vault.clear()

    # When it looks the token up, it is refused every time it asks: an error, not "gone"
    with pytest.raises(ActionFailed, match="permission denied"):
        lookup_token_by_accessor(denied, accessor)
    assert sum("lookup-accessor" in call for call in backend_calls.vault) == LOOKUP_ASKS_ON_FORBIDDEN
    assert lookup_token_by_accessor(vault, accessor) is not None


def test_a_token_dying_as_it_is_revoked_is_revoked_or_already_absent_never_failed(vault: hvac.Client) -> None:
    # Given use-limited tokens whose last use is spent while each is revoked: a revoke-accessor at that moment can
    # find the accessor but not the token, and answer "token not found"
    engine = build_engine(vault)
    for _ in range(400):  # the race falls in about one revocation in 50
        value, accessor = _create_token(vault, num_uses=1)
        last_use = threading.Thread(target=_spend_last_use, args=(vault.url, value))
        last_use.start()
        # When it is revoked as it dies
        result = engine.execute(_revoke(accessor))
        last_use.join()
        # Then it is revoked or already absent, read back dead either way
        assert result.outcome in (Outcome.SUCCEEDED, Outcome.ALREADY_ABSENT), (result.detail, result.evidence)
        assert result.evidence[0].confirmed
