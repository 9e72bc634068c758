"""The webhook's signature: X-Hub-Signature-256, the HMAC-SHA256 of the exact body under the webhook secret."""

from __future__ import annotations

import hashlib
import hmac

from rescind.aws.stored_secrets import read_secret_string
from rescind.exceptions import ConfigurationError
from rescind.leaks.github.wire import WebhookRejected, WebhookRejectionReason

_SIGNATURE_PREFIX = "sha256="


def load_webhook_secret(secret_arn: str) -> bytes:
    """The webhook secret (cached for rescind.aws.stored_secrets.SECRET_CACHE_SECONDS), as the bytes GitHub keys
    its HMAC with."""
    return read_secret_string(secret_arn, what="GitHub webhook").encode("utf-8")


def github_signature(secret: bytes, body: bytes) -> str:
    """The X-Hub-Signature-256 value GitHub sends for `body` under `secret`."""
    return _SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def presented_signature(header: str | None) -> str:
    """The X-Hub-Signature-256 header's value, or WebhookRejected(unsigned) when there is none."""
    if header is None or not header.strip():
        raise WebhookRejected(WebhookRejectionReason.UNSIGNED, "X-Hub-Signature-256 is missing")
    return header.strip()


def verify_github_signature(secret: bytes, body: bytes, header: str | None) -> None:
    """Raise WebhookRejected unless `header` is `sha256=<hex HMAC-SHA256 of body under secret>`.

    The comparison is constant-time. Only SHA-256 is accepted: GitHub's legacy X-Hub-Signature (SHA-1) is not.
    """
    if not secret:
        # An empty key would make every signature computable by anyone: a configuration error, not a rejection.
        raise ConfigurationError("the GitHub webhook secret is empty")
    header = presented_signature(header)
    algorithm, separator, _ = header.partition("=")
    if not separator or algorithm.lower() != "sha256":
        raise WebhookRejected(WebhookRejectionReason.BAD_SIGNATURE, "X-Hub-Signature-256 is not a sha256= signature")
    expected = github_signature(secret, body).encode("ascii")
    presented = header.lower().encode("utf-8", "replace")
    if not hmac.compare_digest(expected, presented):
        raise WebhookRejected(WebhookRejectionReason.BAD_SIGNATURE, "X-Hub-Signature-256 does not match the body")
