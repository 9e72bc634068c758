"""A stand-in for GitHub, for the local stack: its REST API's secret scanning alert, and signed webhook deliveries.

GitHub's `secret_scanning_alert` webhook does not carry the secret; the leak responder reads it from
`GET /repos/{owner}/{repo}/secret-scanning/alerts/{number}`. Nothing on this machine can reach GitHub, so
`LocalGitHubApi` is a real HTTP server on 127.0.0.1 that answers that one route in GitHub's documented shape,
with the value the caller registers. Everything else about the delivery (signature, replay protection, the bus,
the rule, the state machine) is the real code.
"""

from __future__ import annotations

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
    requests: list[str] = field(default_factory=list)

    def add_alert(self, repository: str, number: int, secret: str) -> None:
        self.alerts[(repository, number)] = secret

    def add_document(self, repository: str, number: int, document: dict[str, Any]) -> None:
        self.documents[(repository, number)] = document


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


@contextmanager
def local_github_api() -> Iterator[LocalGitHubApi]:
    """Serve alerts on a free loopback port until the block ends."""
    api: LocalGitHubApi

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            api.requests.append(self.path)
            parts = self.path.strip("/").split("/")
            found = None
            if len(parts) == 6 and parts[0] == "repos" and parts[3:5] == ["secret-scanning", "alerts"]:
                repository, number = f"{parts[1]}/{parts[2]}", parts[5]
                key = (repository, int(number)) if number.isdigit() else None
                secret = api.alerts.get(key) if key else None
                if self.headers.get("authorization", "").startswith("Bearer "):
                    if key in api.documents:
                        found = api.documents[key]
                    elif secret is not None:
                        found = alert_document(repository, int(number), secret)
            body = json.dumps(found or {"message": "Not Found", "status": "404"}).encode()
            self.send_response(200 if found else 404)
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
