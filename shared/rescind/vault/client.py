"""Building the hvac client, and turning hvac's errors into Rescind's typed ones."""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import hvac
import hvac.adapters
import hvac.exceptions
import requests

from rescind.exceptions import ActionFailed, VaultUnavailable

logger = logging.getLogger(__name__)

# hvac error classes that a retry can fix: 5xx, 429, sealed, standby, and no answer at all.
_TRANSIENT_HVAC_ERRORS: tuple[type[Exception], ...] = (
    hvac.exceptions.InternalServerError,
    hvac.exceptions.VaultDown,
    hvac.exceptions.BadGateway,
    hvac.exceptions.RateLimitExceeded,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
)


_FORBIDDEN = 403


def _describe(error: Exception) -> str:
    """hvac messages hold the URL and Vault's error text, never request bodies; keep them short."""
    text = str(error).strip() or type(error).__name__
    return text[:300]


@contextmanager
def vault_errors(operation: str) -> Iterator[None]:
    """Translate hvac/requests errors raised inside into VaultUnavailable or ActionFailed.

    Errors that mean "absent" (InvalidPath, InvalidRequest) are not translated here: each credential
    module decides what absence means for its kind, so it catches them itself before this wrapper.
    """
    try:
        yield
    except _TRANSIENT_HVAC_ERRORS as error:
        raise VaultUnavailable(f"{operation}: {_describe(error)}") from error
    except hvac.exceptions.Forbidden as error:
        raise ActionFailed(f"{operation}: permission denied: {_describe(error)}") from error
    except hvac.exceptions.UnexpectedError as error:
        # hvac's class for every status it does not map (405, 504, ...); it carries no status, so a retry
        # cannot be known to help.
        raise ActionFailed(f"{operation}: unexpected answer: {_describe(error)}") from error


# What Rescind knows about its own token, per client: (a digest of the token it was read for, the accessor). The
# token's accessor does not change while the token lives (a renewal keeps it), so one lookup-self serves every
# action until the client's token changes: a new login (VaultSession forgets it then) or a new VAULT_TOKEN.
_own_accessors: weakref.WeakKeyDictionary[hvac.Client, tuple[str, str]] = weakref.WeakKeyDictionary()
_own_accessors_lock = threading.Lock()
_own_lookup_lock = threading.Lock()  # one lookup-self at a time


def _token_digest(token: object) -> str:
    """The cache's key for a token: a digest, so the cache never holds the token itself."""
    return hashlib.sha256(str(token or "").encode()).hexdigest()


def own_token_accessor(client: hvac.Client) -> str:
    """The accessor of the token the client itself uses: one lookup-self per token, then remembered. The acts of a
    batch that start together wait for the first one's lookup rather than each making its own."""
    digest = _token_digest(client.token)
    known = _known_own_accessor(client, digest)
    if known is not None:
        return known
    with _own_lookup_lock:
        known = _known_own_accessor(client, digest)  # looked up while this one waited
        if known is not None:
            return known
        with vault_errors("lookup own token"):
            accessor = str(read_data(client.auth.token.lookup_self()).get("accessor") or "")
        if accessor:
            with _own_accessors_lock:
                _own_accessors[client] = (digest, accessor)
    return accessor


def _known_own_accessor(client: hvac.Client, digest: str) -> str | None:
    with _own_accessors_lock:
        known = _own_accessors.get(client)
    return known[1] if known is not None and known[0] == digest else None


def forget_own_token_accessor(client: hvac.Client) -> None:
    """After a new login: the next own_token_accessor asks Vault again."""
    with _own_accessors_lock:
        _own_accessors.pop(client, None)


class _EnvironmentOnceSession(requests.Session):
    """A requests session that reads the environment once per Vault address, not per request.

    Per request, requests scans the whole process environment twice for proxies (`merge_environment_settings`),
    looks for a ~/.netrc entry (`get_netrc_auth`: a file system lookup), and, when TLS verification names a CA
    bundle (VAULT_CACERT, REQUESTS_CA_BUNDLE), asks the file system whether that path is a folder. The answers
    depend only on the URL's scheme and host and on an environment and files that do not change while a Lambda
    container lives: a large part of a Revoke batch's own CPU. Each is now read once, and is the answer requests
    would give.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment_settings: dict[tuple[Any, ...], Mapping[str, Any]] = {}
        self._netrc_auth: dict[tuple[str, str], Any] = {}
        self.hooks["response"].append(_binary_body_has_no_charset_to_guess)
        adapter = _PoolKeyOnceAdapter()
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        if self.trust_env and not request.auth and not self.auth:
            request.auth = self._netrc_auth_for(str(request.url))  # truthy: requests does not look again
        return super().prepare_request(request)

    def _netrc_auth_for(self, url: str) -> Any:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        auth = self._netrc_auth.get(key)
        if auth is None:
            found = requests.utils.get_netrc_auth(url)
            auth = self._netrc_auth[key] = found if found else _no_netrc_entry
        return auth

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        parts = urlsplit(str(url))
        key = (parts.scheme, parts.netloc, _frozen(proxies), _frozen(self.proxies), stream, verify, _frozen(cert))
        known = self._environment_settings.get(key)
        if known is None:
            known = self._environment_settings[key] = super().merge_environment_settings(
                url, proxies, stream, verify, cert
            )
        return {name: dict(value) if isinstance(value, dict) else value for name, value in known.items()}


def _no_netrc_entry(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """The auth of a host ~/.netrc has no entry for: none (a callable, so requests does not look it up again)."""
    return request


class _PoolKeyOnceAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, with each host's connection pool key (its TLS settings) worked out once, not per request:
    for a CA bundle path, requests asks the file system on every request whether the path is a folder."""

    def __init__(self) -> None:
        super().__init__()
        self._pool_keys: dict[tuple[Any, ...], Any] = {}  # (host parameters, pool arguments), as requests builds them

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> Any:
        parts = urlsplit(str(request.url))
        key = (parts.scheme, parts.netloc, verify, _frozen(cert))
        known = self._pool_keys.get(key)
        if known is None:
            known = self._pool_keys[key] = super().build_connection_pool_key_attributes(request, verify, cert)
        host_params, pool_kwargs = known
        return dict(host_params), dict(pool_kwargs)


def _binary_body_has_no_charset_to_guess(response: requests.Response, *_: Any, **__: Any) -> requests.Response:
    """A binary answer (a DER CRL) is no text: hvac tries it as JSON first, and requests would then run its charset
    detection over the whole body (milliseconds for a CRL, read back after every certificate revoke) to fail the
    same way. Its text is read as Latin-1 instead; its bytes (`content`) are untouched."""
    content_type = response.headers.get("Content-Type", "")
    if response.encoding is None and content_type and "json" not in content_type and "text" not in content_type:
        response.encoding = "latin-1"
    return response


def _frozen(value: Any) -> Any:
    """A hashable form of a request setting (a proxies mapping, a client certificate given as a list)."""
    if isinstance(value, Mapping):
        return tuple(sorted(value.items()))
    return tuple(value) if isinstance(value, list) else value


def vault_http_client(
    addr: str, token: str, *, namespace: str | None = None, timeout: float = 10.0, **kwargs: Any
) -> hvac.Client:
    """An hvac client whose session reads the environment once (_EnvironmentOnceSession), set up as hvac sets up
    its own (the TLS verification, client certificate and proxies it derives from VAULT_CACERT and the like)."""
    client = hvac.Client(url=addr, token=token, namespace=namespace, timeout=timeout, **kwargs)
    plain = client.session
    session = _EnvironmentOnceSession()
    session.cert, session.verify, session.proxies = plain.cert, plain.verify, plain.proxies
    plain.close()
    client.session = session
    return client


def build_vault_client(addr: str, token: str, *, namespace: str | None = None, timeout: float = 10.0) -> hvac.Client:
    """A client authenticated with a token (local stack, or a responder's own VAULT_TOKEN)."""
    return vault_http_client(addr, token, namespace=namespace, timeout=timeout)


@dataclass(frozen=True)
class VaultLogin:
    """What one login gave: the token (never printed), its TTL in seconds (0: it never expires), renewable."""

    token: str = field(repr=False)
    ttl_seconds: int
    renewable: bool

    @classmethod
    def from_auth(cls, auth: Mapping[str, Any]) -> VaultLogin:
        """From the `auth` block of a login or token-create answer."""
        token = auth.get("client_token")
        if not isinstance(token, str) or not token:
            raise ActionFailed("Vault login: the answer carries no client token")
        return cls(
            token=token, ttl_seconds=int(auth.get("lease_duration") or 0), renewable=auth.get("renewable") is True
        )


class _SessionAdapter(hvac.adapters.JSONAdapter):  # type: ignore[misc]  # hvac is untyped
    """hvac's JSON adapter, asking its session to keep the token alive before each request and after a 403."""

    def __init__(self, *args: Any, vault_session: VaultSession, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._vault_session = vault_session

    def request(self, method: str, url: str, headers: Any = None, raise_exception: bool = True, **kwargs: Any) -> Any:
        self._vault_session.keep_alive()
        token_used = self.token
        try:
            response = super().request(method, url, dict(headers or {}), raise_exception, **kwargs)
        except hvac.exceptions.Forbidden:
            if not self._vault_session.replace_dead_token(token_used):
                raise  # a live token was denied: the policy says no, and that is final
        else:
            # raise_exception=False hands a 403 back as a response: the same question applies.
            if getattr(response, "status_code", None) != _FORBIDDEN:
                return response
            if not self._vault_session.replace_dead_token(token_used):
                return response
        return super().request(method, url, dict(headers or {}), raise_exception, **kwargs)


class VaultSession:
    """A Vault client whose login outlives its token's TTL, for a Lambda container that lives for hours.

    Before each request: when less than a third of the token's TTL is left, `auth/token/renew-self`; when the
    token is not renewable, or a renewal no longer gives a third of the TTL (its max TTL is near), a new login.
    After a 403: `auth/token/lookup-self` with the token that was refused tells a dead token (expired or revoked:
    log in again and send the request once more) from a live one that the policy denies (the 403 stands).
    `client` is a plain hvac.Client to every caller; only its adapter knows about the session.
    """

    def __init__(
        self,
        addr: str,
        login: Callable[[], VaultLogin],
        *,
        namespace: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._login = login
        self._lock = threading.RLock()
        # The session's own calls (renew-self, lookup-self) go through a client without the session's adapter.
        # token="": hvac would otherwise pick up VAULT_TOKEN or ~/.vault-token; only logins give this one a token.
        self._own = vault_http_client(addr, "", namespace=namespace, timeout=timeout)
        adapter = functools.partial(_SessionAdapter, vault_session=self)
        self.client = vault_http_client(addr, "", namespace=namespace, timeout=timeout, adapter=adapter)
        self._full_ttl = 0
        self._expires_at = 0.0
        self._renewable = False
        self.logins = 0
        self.renewals = 0

    def open(self) -> hvac.Client:
        """Log in now (a bad configuration fails at cold start, not on the first action); the client."""
        with self._lock:
            self._log_in()
        return self.client

    def keep_alive(self) -> None:
        """Renew, or log in again, when less than a third of the token's TTL is left."""
        with self._lock:
            if self.client.token and not self._running_low():
                return
            if self.client.token and self._renewable and self._renew():
                return
            self._log_in()

    def replace_dead_token(self, token_used: str) -> bool:
        """After a 403: True when the token was dead and a new one is in place (send the request again)."""
        with self._lock:
            if self.client.token != token_used:
                return True  # another request already replaced it
            self._own.token = token_used
            try:
                self._own.auth.token.lookup_self()
            except hvac.exceptions.Forbidden:
                logger.info("Vault token refused and dead (expired or revoked): logging in again")
                self._log_in()
                return True
            return False

    def _running_low(self) -> bool:
        if self._full_ttl == 0:
            return False  # a token that never expires
        return self._expires_at - time.monotonic() < self._full_ttl / 3

    def _renew(self) -> bool:
        """renew-self; False when the token cannot be renewed or the renewal leaves it running low."""
        self._own.token = self.client.token
        started = time.monotonic()
        try:
            answer = self._own.auth.token.renew_self()
        except hvac.exceptions.VaultError:
            # Expired meanwhile (403), not renewable after all (400), past its max TTL (OpenBao answers 500):
            # a login settles each; if Vault itself is failing, the login says so.
            return False
        granted = VaultLogin.from_auth(answer.get("auth") or {}) if isinstance(answer, dict) else None
        if granted is None:
            return False
        self._expires_at = started + granted.ttl_seconds
        self._renewable = granted.renewable
        self.renewals += 1
        logger.info("Vault token renewed", extra={"ttl_seconds": granted.ttl_seconds})
        return not self._running_low()

    def _log_in(self) -> None:
        started = time.monotonic()
        login = self._login()
        forget_own_token_accessor(self.client)
        self.client.token = login.token
        self._full_ttl = login.ttl_seconds
        self._expires_at = started + login.ttl_seconds
        self._renewable = login.renewable
        self.logins += 1
        logger.info("Vault login", extra={"ttl_seconds": login.ttl_seconds, "renewable": login.renewable})


def aws_iam_login(
    addr: str,
    role: str,
    *,
    mount_point: str = "aws",
    namespace: str | None = None,
    header_value: str | None = None,
    timeout: float = 10.0,
) -> Callable[[], VaultLogin]:
    """A login through Vault's AWS IAM auth method with this environment's AWS credentials, read at each login."""

    def login() -> VaultLogin:
        import boto3  # the Lambda runtime provides it; imported here to keep token-only callers light

        credentials = boto3.Session().get_credentials()
        if credentials is None:
            raise ActionFailed("Vault AWS IAM login: no AWS credentials in this environment")
        frozen = credentials.get_frozen_credentials()
        client = hvac.Client(url=addr, token="", namespace=namespace, timeout=timeout)
        with vault_errors("Vault AWS IAM login"):
            answer = client.auth.aws.iam_login(
                frozen.access_key,
                frozen.secret_key,
                frozen.token,
                header_value=header_value,
                role=role,
                use_token=False,
                mount_point=mount_point,
            )
        return VaultLogin.from_auth(answer.get("auth") or {} if isinstance(answer, dict) else {})

    return login


def build_vault_client_with_aws_iam(
    addr: str,
    role: str,
    *,
    mount_point: str = "aws",
    namespace: str | None = None,
    header_value: str | None = None,
    timeout: float = 10.0,
) -> hvac.Client:
    """A client logged in through Vault's AWS IAM auth method with the Lambda's own credentials, kept logged in
    (VaultSession) for as long as the container lives.

    This is how the deployed functions authenticate: no static Vault token exists anywhere.
    """
    login = aws_iam_login(
        addr, role, mount_point=mount_point, namespace=namespace, header_value=header_value, timeout=timeout
    )
    return VaultSession(addr, login, namespace=namespace, timeout=timeout).open()


def read_data(response: Any) -> dict[str, Any]:
    """The `data` of an hvac response, which is a dict for JSON answers and a Response for 204s."""
    if isinstance(response, dict):
        data = response.get("data")
        return data if isinstance(data, dict) else {}
    return {}
