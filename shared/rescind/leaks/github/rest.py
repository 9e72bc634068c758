"""GitHub's REST API, read for the leak responder in-process only: an alert's value, and the AWS key id beside it.

The webhook does not carry the leaked value; `GET /repos/{owner}/{repo}/secret-scanning/alerts/{n}` does
(`secret`). The token is sent to the configured API only (redirects to another host are not followed), and no
message carries the token or a response body.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from rescind.aws.stored_secrets import read_secret_string
from rescind.config import validated_github_api_url
from rescind.exceptions import ActionFailed, InvalidInput, TransientError
from rescind.leaks.github.wire import REPOSITORY_PATTERN

GITHUB_API_VERSION = "2022-11-28"
_MAX_ALERT_RESPONSE_BYTES = 1024 * 1024
_REPOSITORY = re.compile(REPOSITORY_PATTERN)


class GitHubAlertNotFound(ActionFailed):
    """GitHub answered 404: no such alert, or the token cannot see the repository. The leak stays unresolved."""


class GitHubUnavailable(TransientError):
    """GitHub's API answered 429 or 5xx, was rate limited, or could not be reached in time."""


def load_github_token(secret_arn: str) -> str:
    """The GitHub token that reads alerts (cached for rescind.aws.stored_secrets.SECRET_CACHE_SECONDS)."""
    return read_secret_string(secret_arn, what="GitHub token").strip()


def validate_repository(repository: str) -> tuple[str, str]:
    """`owner/name` split in two, or InvalidInput when it is not a GitHub repository name."""
    if not isinstance(repository, str) or len(repository) > 201 or not _REPOSITORY.fullmatch(repository):
        raise InvalidInput("repository must be owner/name (letters, digits, '.', '_', '-')")
    owner, name = repository.split("/")
    if owner in (".", "..") or name in (".", ".."):
        raise InvalidInput("repository must be owner/name, not a relative path")
    return owner, name


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect (a renamed repository) only on the same scheme and host: the token must not leave."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        old, new = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(newurl)
        if (old.scheme, old.netloc) != (new.scheme, new.netloc):
            return None  # urllib then raises HTTPError with the 3xx status
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch_alert_secret(api_url: str, token: str, repository: str, alert_number: int, *, timeout: float = 5.0) -> str:
    """The leaked value of a secret scanning alert, read from GitHub's REST API. Use it in-process only.

    GET {api_url}/repos/{owner}/{repo}/secret-scanning/alerts/{n}. Raises InvalidInput for a bad argument,
    GitHubAlertNotFound on 404, GitHubUnavailable on 429, 5xx, rate limiting or a network failure, and
    ActionFailed on any other refusal or a response without a value. Messages never carry the token or body.
    """
    _, alert_url, where = _alert_url(api_url, repository, alert_number)
    document = _github_get(alert_url, token, where, timeout=timeout)
    value = document.get("secret") if isinstance(document, dict) else None
    if not isinstance(value, str) or not value:
        raise ActionFailed(f"GitHub's answer for {where} carries no secret value")
    return value


# GitHub alerts on a paired secret (an AWS secret access key) only when both halves are in one file: the key id
# is written near the secret. Only this many lines around each location are read, so that another key in the
# same file is not taken for the pair.
KEY_ID_SEARCH_LINES = 3
_MAX_LOCATIONS = 10
_KEY_ID_IN_TEXT = re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])")
_BLOB_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")


def find_access_key_ids_beside_alert(
    api_url: str, token: str, repository: str, alert_number: int, *, timeout: float = 5.0
) -> list[str]:
    """The AWS access key ids written within KEY_ID_SEARCH_LINES lines of the alert's committed locations.

    Reads the alert's locations, then each location's blob, from GitHub's REST API (the blob by its sha on the
    configured API, never by a URL from the answer, so the token goes nowhere else). The files' text stays in
    memory and is dropped; only key ids (which are not secret) are returned, each once, in order.
    """
    repository_url, alert_url, where = _alert_url(api_url, repository, alert_number)
    locations = _github_get(f"{alert_url}/locations?per_page={_MAX_LOCATIONS}", token, where, timeout=timeout)
    found: list[str] = []
    for location in locations[:_MAX_LOCATIONS] if isinstance(locations, list) else []:
        details = location.get("details") if isinstance(location, dict) and location.get("type") == "commit" else None
        if not isinstance(details, dict):
            continue
        blob_sha, first, last = details.get("blob_sha"), details.get("start_line"), details.get("end_line")
        if not (isinstance(blob_sha, str) and _BLOB_SHA.fullmatch(blob_sha)):
            continue
        if not (isinstance(first, int) and isinstance(last, int) and 1 <= first <= last):
            continue
        try:
            blob = _github_get(f"{repository_url}/git/blobs/{blob_sha}", token, f"{where} blob", timeout=timeout)
        except GitHubAlertNotFound:
            continue
        except ActionFailed:
            continue  # a blob larger than any .env, or unreadable: no pair to be found there (GitHub down raises)
        lines = _blob_text(blob).splitlines()
        window = lines[max(0, first - 1 - KEY_ID_SEARCH_LINES) : last + KEY_ID_SEARCH_LINES]
        found.extend(match.group(0) for line in window for match in _KEY_ID_IN_TEXT.finditer(line))
    return list(dict.fromkeys(found))


def _blob_text(blob: Any) -> str:
    import base64
    import binascii

    content = blob.get("content") if isinstance(blob, dict) else None
    if not isinstance(content, str):
        return ""
    if blob.get("encoding") != "base64":
        return content
    try:
        return base64.b64decode(content, validate=False).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""


def _alert_url(api_url: str, repository: str, alert_number: int) -> tuple[str, str, str]:
    """(the repository's REST URL, the alert's, and "owner/name alert n" for messages); InvalidInput for a bad
    argument. Every URL the token is sent to is built here, on the configured API."""
    try:
        base = validated_github_api_url(api_url)
    except ValueError as error:
        raise InvalidInput(str(error)) from None
    owner, name = validate_repository(repository)
    if isinstance(alert_number, bool) or not isinstance(alert_number, int) or alert_number < 1:
        raise InvalidInput("alert_number must be a positive integer")
    repository_url = f"{base}/repos/{urllib.parse.quote(owner, safe='')}/{urllib.parse.quote(name, safe='')}"
    return (
        repository_url,
        f"{repository_url}/secret-scanning/alerts/{alert_number}",
        f"{owner}/{name} alert {alert_number}",
    )


def _github_get(url: str, token: str, where: str, *, timeout: float) -> Any:
    """One authenticated GET on GitHub's REST API, parsed. Errors as for fetch_alert_secret; never the token."""
    if not token:
        raise InvalidInput("a GitHub token is needed to read the alert's value")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked by validated_github_api_url
        url,
        method="GET",
        headers={
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": GITHUB_API_VERSION,
            "Authorization": f"Bearer {token}",
            "User-Agent": "rescind",
        },
    )
    opener = urllib.request.build_opener(_SameOriginRedirects())
    try:
        with opener.open(request, timeout=timeout) as response:
            raw = response.read(_MAX_ALERT_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as error:
        status = error.code
        rate_limited = status == 403 and error.headers.get("x-ratelimit-remaining") == "0"
        error.close()
        if status == 404:
            raise GitHubAlertNotFound(f"GitHub has no {where} visible to this token (404)") from None
        if status == 429 or status >= 500 or rate_limited:
            raise GitHubUnavailable(f"GitHub answered {status} for {where}") from None
        raise ActionFailed(f"GitHub refused to read {where} ({status})") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise GitHubUnavailable(f"GitHub could not be reached for {where}: {type(error).__name__}") from None
    if len(raw) > _MAX_ALERT_RESPONSE_BYTES:
        raise ActionFailed(f"GitHub's answer for {where} is larger than an alert")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ActionFailed(f"GitHub's answer for {where} is not JSON") from None
