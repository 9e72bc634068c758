"""A stand-in for GitHub, for the local stack: its REST API's secret scanning alert, and signed webhook deliveries.

GitHub's `secret_scanning_alert` webhook does not carry the secret; the leak responder reads it from
`GET /repos/{owner}/{repo}/secret-scanning/alerts/{number}`, and, for an AWS secret access key, finds its key id
through the alert's `/locations` and the located file's `GET /repos/{owner}/{repo}/git/blobs/{sha}`. Nothing on
this machine can reach GitHub, so `LocalGitHubApi` is a real HTTP server on 127.0.0.1 that answers those routes
in GitHub's documented shapes (or with a published example the caller registers as is), with the values the
caller registers. Everything else about the delivery (signature, replay protection, the bus, the rule, the
state machine) is the real code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SAMPLE_WEBHOOK_SECRET = b"rescind-sample-github-webhook-secret"  # events/github_secret_scanning_webhook.json


@dataclass
class LocalGitHubApi:
    url: str
    alerts: dict[tuple[str, int], str] = field(default_factory=dict, repr=False)  # (repository, number) → secret
    # (repository, number) → an answer served exactly as given, e.g. one of GitHub's published examples
    documents: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict, repr=False)
    # (repository, number) → the alert's locations; (repository, blob sha) → the file's text
    locations: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict, repr=False)
    blobs: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)
    requests: list[str] = field(default_factory=list)

    def add_alert(self, repository: str, number: int, secret: str) -> None:
        self.alerts[(repository, number)] = secret

    def add_document(self, repository: str, number: int, document: dict[str, Any]) -> None:
        self.documents[(repository, number)] = document

    def add_locations(self, repository: str, number: int, locations: list[dict[str, Any]]) -> None:
        self.locations[(repository, number)] = locations

    def add_blob(self, repository: str, text: str) -> str:
        """A committed file; returns its blob sha (git's, so the locations can name it as GitHub would)."""
        content = text.encode()
        sha = hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()
        self.blobs[(repository, sha)] = text
        return sha


def alert_document(repository: str, number: int, secret: str) -> dict[str, Any]:
    """The documented shape of the REST alert (the fields the responder reads, and their neighbours)."""
    api = f"https://api.github.com/repos/{repository}/secret-scanning/alerts/{number}"
    return {
        "number": number,
        "created_at": "2026-11-24T09:14:55Z",
        "url": api,
        "html_url": f"https://github.com/{repository}/security/secret-scanning/{number}",
        "locations_url": f"{api}/locations",
        "state": "open",
        "secret_type": "hashicorp_vault_service_token",
        "secret_type_display_name": "HashiCorp Vault Service Token",
        "secret": secret,
        "validity": "active",
        "publicly_leaked": False,
        "multi_repo": False,
    }


def _answer(api: LocalGitHubApi, path: str) -> Any:
    """GitHub's answer to an authenticated GET of `path`, in its documented shape; None for a 404."""
    parts = path.strip("/").split("/")
    if len(parts) < 5 or parts[0] != "repos":
        return None
    repository = f"{parts[1]}/{parts[2]}"
    if parts[3:5] == ["secret-scanning", "alerts"] and len(parts) in (6, 7) and parts[5].isdigit():
        key = (repository, int(parts[5]))
        if len(parts) == 7:
            return api.locations.get(key) if parts[6] == "locations" else None
        if key in api.documents:
            return api.documents[key]
        secret = api.alerts.get(key)
        return alert_document(repository, key[1], secret) if secret is not None else None
    if parts[3:5] == ["git", "blobs"] and len(parts) == 6 and (repository, parts[5]) in api.blobs:
        content = api.blobs[(repository, parts[5])].encode()
        return {
            "sha": parts[5],
            "size": len(content),
            "url": f"https://api.github.com/{path.strip('/')}",
            "content": base64.b64encode(content).decode(),
            "encoding": "base64",
        }
    return None


@contextmanager
def local_github_api() -> Iterator[LocalGitHubApi]:
    """Serve alerts on a free loopback port until the block ends."""
    api: LocalGitHubApi

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            api.requests.append(self.path)
            found = (
                _answer(api, self.path.split("?", 1)[0])
                if self.headers.get("authorization", "").startswith("Bearer ")
                else None
            )
            body = json.dumps(found if found is not None else {"message": "Not Found", "status": "404"}).encode()
            self.send_response(200 if found is not None else 404)
            self.send_header("content-type", "application/json; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    api = LocalGitHubApi(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


def sign_delivery(event: dict[str, Any], secret: bytes, *, delivery_id: str | None = None) -> dict[str, Any]:
    """A function URL event with its body's X-Hub-Signature-256 recomputed (and a new delivery id, if given)."""
    signed: dict[str, Any] = json.loads(json.dumps(event))
    body = signed["body"].encode()
    signed["headers"]["x-hub-signature-256"] = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    if delivery_id is not None:
        signed["headers"]["x-github-delivery"] = delivery_id
    return signed
