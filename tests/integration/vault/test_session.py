"""VaultSession on a real OpenBao: the functions' login is kept alive for as long as the container lives.

The AWS IAM login is stood in for by a login that mints a new short-TTL token from root at each call: the server
does the real renewals and the real expiry, nothing is mocked. Each test reads a KV secret its token may read, and
one it may not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import hvac
import hvac.exceptions
import pytest

from rescind.exceptions import ActionFailed
from rescind.vault.client import VaultLogin, VaultSession, own_token_accessor, vault_errors
from rescind.vault.common import list_keys
from rescind_local import LocalOpenBao
from tests.conftest import BackendCalls

pytestmark = pytest.mark.timeout(60)


@dataclass
class MintingLogin:
    """Each call mints a new token from root (the stand-in for a login) and remembers its accessor."""

    root: hvac.Client
    policy: str
    ttl: str
    explicit_max_ttl: str = "1h"
    renewable: bool = True
    minted: list[str] = field(default_factory=list)

    def __call__(self) -> VaultLogin:
        auth = self.root.auth.token.create(
            policies=[self.policy],
            no_default_policy=True,
            ttl=self.ttl,
            explicit_max_ttl=self.explicit_max_ttl,
            renewable=self.renewable,
        )["auth"]
        self.minted.append(auth["accessor"])
        return VaultLogin.from_auth(auth)


@dataclass
class Paths:
    allowed: str
    denied: str
    policy: str


@pytest.fixture
def paths(vault: hvac.Client, unique: str) -> Paths:
    allowed, denied, policy = f"session-{unique}/allowed", f"session-{unique}/denied", f"session-{unique}"
    for path in (allowed, denied):
        vault.secrets.kv.v2.create_or_update_secret(path, secret={"value": "x"}, mount_point="secret")
    # What a Rescind policy grants every function for its own token, and one KV path.
    vault.sys.create_or_update_policy(
        policy,
        'path "auth/token/lookup-self" { capabilities = ["read"] }\n'
        'path "auth/token/renew-self" { capabilities = ["update"] }\n'
        f'path "secret/data/{allowed}" {{ capabilities = ["read"] }}\n'
        f'path "secret/metadata/session-{unique}/*" {{ capabilities = ["list"] }}\n',
    )
    return Paths(allowed=allowed, denied=denied, policy=policy)


def session_with(openbao: LocalOpenBao, login: MintingLogin) -> tuple[VaultSession, hvac.Client]:
    session = VaultSession(openbao.addr, login)
    return session, session.open()


def read(client: hvac.Client, path: str) -> None:
    client.secrets.kv.v2.read_secret_version(path, mount_point="secret", raise_on_deleted_version=True)


def keep_calling(client: hvac.Client, paths: Paths, seconds: float, every: float = 0.2) -> int:
    """Read the allowed secret and list its folder (through the adapters the credential modules use) until
    `seconds` have passed; every call must succeed. Returns how many rounds ran."""
    deadline = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < deadline:
        read(client, paths.allowed)
        assert "allowed" in list_keys(client, f"/v1/secret/metadata/{paths.allowed.split('/')[0]}")
        rounds += 1
        time.sleep(every)
    return rounds


def ttl_of(vault: hvac.Client, accessor: str) -> int | None:
    try:
        return int(vault.auth.token.lookup_accessor(accessor)["data"]["ttl"])
    except hvac.exceptions.InvalidRequest:
        return None  # the token is gone


def test_a_renewable_token_is_renewed_before_it_expires_and_calls_go_on_past_its_ttl(
    openbao: LocalOpenBao, vault: hvac.Client, paths: Paths
) -> None:
    # Given a login whose token lives 2 seconds (renewable, max TTL an hour)
    login = MintingLogin(vault, paths.policy, ttl="2s")
    session, client = session_with(openbao, login)

    # When the session is used for more than twice that TTL
    keep_calling(client, paths, seconds=5)

    # Then every call succeeded on the one token it logged in with, renewed before it ever expired
    assert len(login.minted) == 1
    assert session.logins == 1
    assert session.renewals >= 2
    assert ttl_of(vault, login.minted[0]) is not None  # still alive (its TTL is whole seconds, maybe 0 left)


def test_near_its_max_ttl_the_token_is_replaced_by_a_new_login_before_it_expires(
    openbao: LocalOpenBao, vault: hvac.Client, paths: Paths, backend_calls: BackendCalls
) -> None:
    # Given a renewable 2-second token that may live 3 seconds in all
    login = MintingLogin(vault, paths.policy, ttl="2s", explicit_max_ttl="3s")
    session, client = session_with(openbao, login)

    # When the session is used for 5 seconds
    keep_calling(client, paths, seconds=5)

    # Then it renewed while it could, then logged in again before the max TTL ended the token
    assert session.renewals >= 1
    assert session.logins >= 2
    assert len(login.minted) == session.logins
    # And no request was ever refused: nothing waited for a 403 to notice the token was dead
    assert not any("lookup-self" in call for call in backend_calls.vault)


def test_a_token_that_is_not_renewable_is_replaced_by_a_new_login_before_it_expires(
    openbao: LocalOpenBao, vault: hvac.Client, paths: Paths, backend_calls: BackendCalls
) -> None:
    login = MintingLogin(vault, paths.policy, ttl="2s", renewable=False)
    session, client = session_with(openbao, login)

    keep_calling(client, paths, seconds=4.5)

    assert session.renewals == 0
    assert session.logins >= 3
    assert not any("renew-self" in call or "lookup-self" in call for call in backend_calls.vault)


def test_an_idle_session_past_its_ttl_logs_in_before_its_next_call(
    openbao: LocalOpenBao, vault: hvac.Client, paths: Paths
) -> None:
    # Given a session whose 1-second token expired while nothing was asked of it
    login = MintingLogin(vault, paths.policy, ttl="1s")
    session, client = session_with(openbao, login)
    time.sleep(2.5)
    assert ttl_of(vault, login.minted[0]) is None

    # When it is used again, the call succeeds on a new login
    read(client, paths.allowed)
    assert session.logins == 2


def test_a_revoked_token_is_replaced_once_and_the_call_succeeds(
    openbao: LocalOpenBao, vault: hvac.Client, paths: Paths
) -> None:
    # Given a long-lived login whose token is revoked behind the session's back
    login = MintingLogin(vault, paths.policy, ttl="1h")
    session, client = session_with(openbao, login)
    vault.auth.token.revoke_accessor(login.minted[0])

    # When the session is used, the 403 is recognised as a dead token: one new login, the call succeeds
    read(client, paths.allowed)
    assert session.logins == 2


def test_its_own_accessor_is_remembered_until_a_new_login(
    openbao: LocalOpenBao, vault: hvac.Client, paths: Paths, backend_calls: BackendCalls
) -> None:
    # Given a session whose own accessor was looked up once
    login = MintingLogin(vault, paths.policy, ttl="1h")
    session, client = session_with(openbao, login)
    assert own_token_accessor(client) == login.minted[0]
    backend_calls.vault.clear()
    assert own_token_accessor(client) == login.minted[0]
    assert backend_calls.vault == []

    # When its token is revoked behind its back and the next call logs in again
    vault.auth.token.revoke_accessor(login.minted[0])
    read(client, paths.allowed)

    # Then its own accessor is the new token's
    assert session.logins == 2
    assert own_token_accessor(client) == login.minted[1]


def test_a_denied_path_stays_forbidden_and_does_not_log_in_again(
    openbao: LocalOpenBao, vault: hvac.Client, paths: Paths, backend_calls: BackendCalls
) -> None:
    login = MintingLogin(vault, paths.policy, ttl="1h")
    session, client = session_with(openbao, login)
    calls_before = len(backend_calls.vault)

    # When a path the policy does not grant is read, twice
    for _ in range(2):
        with pytest.raises(ActionFailed, match="permission denied"), vault_errors("read the denied secret"):
            read(client, paths.denied)

    # Then each was one request and one lookup-self that found the token alive: no new login, no loop
    assert session.logins == 1
    made = backend_calls.vault[calls_before:]
    assert len(made) == 4
    assert sum("lookup-self" in call for call in made) == 2


def test_a_dead_token_on_a_denied_path_logs_in_once_and_the_denial_stands(
    openbao: LocalOpenBao, vault: hvac.Client, paths: Paths, backend_calls: BackendCalls
) -> None:
    login = MintingLogin(vault, paths.policy, ttl="1h")
    session, client = session_with(openbao, login)
    vault.auth.token.revoke_accessor(login.minted[0])
    calls_before = len(backend_calls.vault)

    with pytest.raises(hvac.exceptions.Forbidden):
        read(client, paths.denied)

    # the request, the lookup-self that found the token dead, and the request again on the new login
    assert session.logins == 2
    made = [call for call in backend_calls.vault[calls_before:] if "auth/token/create" not in call]
    assert len(made) == 3


@pytest.mark.parametrize("answer", [{}, {"client_token": ""}, {"client_token": None}])
def test_a_login_answer_without_a_token_is_refused(answer: dict[str, object]) -> None:
    with pytest.raises(ActionFailed, match="no client token"):
        VaultLogin.from_auth(answer)


def test_the_login_token_is_never_in_its_repr(vault: hvac.Client, paths: Paths) -> None:
    login: Callable[[], VaultLogin] = MintingLogin(vault, paths.policy, ttl="1m")
    minted = login()
    assert minted.token not in repr(minted)
