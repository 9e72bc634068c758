"""Calling a function URL with AuthType AWS_IAM: the request is SigV4-signed with the caller's credentials.

Lambda (or the local stack's stand-in) names the signer to the function; nothing in the body can.
"""

from __future__ import annotations

import json
from typing import Any

from rescind.exceptions import InvalidInput, RescindError

REQUEST_TIMEOUT_SECONDS = 30


class FunctionUrlUnreachable(RescindError):
    """The function URL did not answer (network, TLS, timeout)."""


def post_signed(url: str, document: dict[str, Any], *, credentials: Any, region: str) -> tuple[int, dict[str, Any]]:
    """POST `document` as JSON to `url`, signed for the `lambda` service. Returns (status, JSON body)."""
    import requests
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    if credentials is None:
        raise InvalidInput("no AWS credentials: set AWS_PROFILE or the usual AWS variables")
    body = json.dumps(document).encode()
    request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(credentials.get_frozen_credentials(), "lambda", region).add_auth(request)
    try:
        response = requests.post(url, data=body, headers=dict(request.headers.items()), timeout=REQUEST_TIMEOUT_SECONDS)
    except requests.exceptions.RequestException as error:
        raise FunctionUrlUnreachable(f"{url} did not answer: {type(error).__name__}") from None
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    return response.status_code, answer if isinstance(answer, dict) else {}
