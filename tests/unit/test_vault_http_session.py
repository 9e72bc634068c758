"""The Vault client's HTTP session reads the proxy, CA-bundle and netrc environment once per address."""

from __future__ import annotations

from typing import Any
from unittest import mock

import hvac
import pytest
import requests

from rescind.vault.client import build_vault_client, vault_http_client

pytestmark = pytest.mark.unit

URLS = (
    "https://vault.example:8200/v1/auth/token/lookup-accessor",
    "https://vault.example:8200/v1/sys/leases/revoke",
    "http://127.0.0.1:8200/v1/auth/token/revoke-accessor",
    "https://internal.corp:8200/v1/pki/revoke",
)


def test_the_session_gives_the_settings_requests_gives_for_every_url(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given proxies, an exception to them and a CA bundle in the environment
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.corp,127.0.0.1")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/bundle.pem")
    session = build_vault_client("https://vault.example:8200", "").session
    plain = requests.Session()  # set up as hvac sets up its own
    plain.cert, plain.verify, plain.proxies = session.cert, session.verify, session.proxies

    for url in URLS * 2:  # the second round comes from what the first one read
        for proxies, verify in (({}, True), ({"https": "http://other:1"}, None), ({}, "/ca.pem"), (None, False)):
            # Then each answer is requests' own, and the caller may change it without changing the next
            for cert in (None, ["/c.pem", "/k.pem"]):
                ours = session.merge_environment_settings(url, _copied(proxies), False, verify, cert)
                assert ours == plain.merge_environment_settings(url, _copied(proxies), False, verify, cert)
                if ours["proxies"] is not None:
                    ours["proxies"]["https"] = "changed"


def _copied(proxies: dict[str, str] | None) -> dict[str, str] | None:
    return None if proxies is None else dict(proxies)


def test_the_environment_is_read_once_per_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    session = build_vault_client("https://vault.example:8200", "").session
    with mock.patch("requests.sessions.get_environ_proxies", wraps=requests.utils.get_environ_proxies) as read:
        for url in URLS[:2] * 5:
            session.merge_environment_settings(url, {}, False, True, None)
    assert read.call_count == 1  # both URLs are on one address


@pytest.mark.parametrize(
    "settings",
    [{}, {"verify": "/etc/vault/ca.pem"}, {"verify": False, "cert": ("/c.pem", "/k.pem"), "proxies": {"https": "p:1"}}],
)
def test_the_client_keeps_the_tls_and_proxy_settings_hvac_sets(settings: dict[str, Any]) -> None:
    ours = vault_http_client("https://vault.example:8200", "", **settings)
    theirs = hvac.Client(url="https://vault.example:8200", token="", **settings)
    for name in ("verify", "cert", "proxies"):
        assert getattr(ours.session, name) == getattr(theirs.session, name)


def _answer(content_type: str | None, body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    if content_type is not None:
        response.headers["Content-Type"] = content_type
    response._content = body
    return response


def test_a_binary_answer_is_not_run_through_charset_detection() -> None:
    hooks = build_vault_client("https://vault.example:8200", "").session.hooks["response"]
    der = bytes([0x30, 0x82, 0x01, 0xF3, 0xA0, 0xFF, 0x00, 0x9C]) * 200  # a CRL's shape: DER, not text
    crl = _answer("application/pkix-crl", der)
    for hook in hooks:
        hook(crl)
    assert crl.encoding == "latin-1"  # set, so requests guesses no charset
    detection = mock.patch("requests.models.chardet.detect", side_effect=AssertionError("charset detection ran"))
    with detection, pytest.raises(requests.exceptions.JSONDecodeError):  # hvac hands the response back, as before
        crl.json()
    assert crl.content == der

    # JSON and text answers keep requests' own encoding
    for content_type, expected in (("application/json", "utf-8"), ("text/plain", "ISO-8859-1"), (None, None)):
        answer = _answer(content_type, b'{"data": {}}')
        answer.encoding = requests.utils.get_encoding_from_headers(answer.headers)
        for hook in hooks:
            hook(answer)
        assert answer.encoding == expected


def _prepared(session: requests.Session, url: str) -> requests.PreparedRequest:
    return session.prepare_request(requests.Request("GET", url, headers={"X-Vault-Token": "t"}))


def test_a_netrc_entry_is_read_once_per_address_with_requests_answer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # Given a netrc file with an entry for one Vault host and none for the other
    netrc = tmp_path / "netrc"
    netrc.write_text("machine vault.example login someone password elsewhere\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    session = build_vault_client("https://vault.example:8200", "").session
    plain = requests.Session()

    # When many requests are prepared, Then each carries what requests would give it, looked up once per address
    with mock.patch("requests.utils.get_netrc_auth", wraps=requests.utils.get_netrc_auth) as looked_up:
        for url in URLS * 3:
            ours, theirs = _prepared(session, url), _prepared(plain, url)
            assert ours.headers.get("Authorization") == theirs.headers.get("Authorization")
            assert (ours.headers.get("Authorization") is not None) == url.startswith("https://vault.example")
    assert looked_up.call_count == 3  # vault.example:8200, 127.0.0.1:8200, internal.corp:8200


@pytest.mark.parametrize("cert", [None, "/c.pem", ("/c.pem", "/k.pem")])
def test_each_address_pool_key_is_worked_out_once_with_requests_answer(cert: Any, tmp_path: Any) -> None:
    bundle, folder = tmp_path / "bundle.pem", tmp_path / "certs"
    bundle.write_text("")
    folder.mkdir()
    ours = build_vault_client("https://vault.example:8200", "").session.get_adapter("https://vault.example:8200")
    theirs = requests.adapters.HTTPAdapter()
    with mock.patch("requests.adapters.os.path.isdir", wraps=requests.adapters.os.path.isdir) as asked:
        for _ in range(3):
            for url in URLS:
                for verify in (True, False, str(bundle), str(folder)):
                    request = requests.Request("GET", url).prepare()
                    answer = ours.build_connection_pool_key_attributes(request, verify, cert)
                    assert answer == theirs.build_connection_pool_key_attributes(request, verify, cert)
                    answer[1]["changed"] = True  # the caller's copy: the next answer is unchanged
    # requests asks every time (3 rounds, 4 URLs, 2 paths); ours once per address (3) and path
    assert asked.call_count == 3 * 4 * 2 + 3 * 2
