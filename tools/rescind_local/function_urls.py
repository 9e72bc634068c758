"""Function URLs with AuthType AWS_IAM on the local stack: who signed the request, never what it says.

On AWS, Lambda checks a function URL request's SigV4 signature and writes the signer into
`requestContext.authorizer.iam`. Here one small HTTP server per stack does the same: it recomputes the
signature with the secret moto issued for the request's access key (an IAM user's key, an assumed-role
session's key, or the local stack's fixed fake key), refuses a request that does not match or is more than
five minutes old, takes the signer's ARN from moto's STS (`GetCallerIdentity` for that key), and runs the
function in-process with a payload format 2.0 event. A body field cannot choose the identity.

    with serve_function_urls(stack) as urls:
        urls["AnswerApprovalFunction"]          # http://127.0.0.1:PORT/answer-approval/
        urls["StartManualRevocationFunction"]   # http://127.0.0.1:PORT/start-manual-revocation/
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from rescind_local.target import FAKE_AWS_CREDENTIALS

if TYPE_CHECKING:
    from rescind_local.stack import LocalStack

logger = logging.getLogger(__name__)

MAX_CLOCK_SKEW_SECONDS = 300  # what AWS allows between X-Amz-Date and its clock
MAX_BODY_BYTES = 64 * 1024
_ALGORITHM = "AWS4-HMAC-SHA256"


class SignatureRejected(Exception):
    """The request is unsigned, mis-signed, stale, or signed with a key moto never issued (HTTP 403)."""


def iam_function_urls(template: Mapping[str, Any]) -> list[str]:
    """The logical ids of the functions whose URL uses AuthType AWS_IAM."""
    return [
        logical_id
        for logical_id, resource in (template.get("Resources") or {}).items()
        if resource.get("Type") == "AWS::Serverless::Function"
        and ((resource.get("Properties") or {}).get("FunctionUrlConfig") or {}).get("AuthType") == "AWS_IAM"
    ]


def _authorization_fields(header: str) -> dict[str, str]:
    algorithm, _, rest = header.partition(" ")
    if algorithm != _ALGORITHM:
        raise SignatureRejected("the request is not signed with SigV4")
    fields = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    if not {"Credential", "SignedHeaders", "Signature"} <= set(fields):
        raise SignatureRejected("the Authorization header is incomplete")
    return fields


def _issued_credentials(access_key_id: str, session_token: str | None, account_id: str) -> Any:
    """botocore Credentials for a key moto issued (or the local fake key); SignatureRejected otherwise."""
    from botocore.credentials import Credentials
    from moto.iam.access_control import AssumedRoleAccessKey, CreateAccessKeyFailure, IAMUserAccessKey

    if access_key_id == FAKE_AWS_CREDENTIALS["aws_access_key_id"]:
        if session_token != FAKE_AWS_CREDENTIALS["aws_session_token"]:
            raise SignatureRejected("the security token is invalid")
        return Credentials(access_key_id, FAKE_AWS_CREDENTIALS["aws_secret_access_key"], session_token)
    headers = {"X-Amz-Security-Token": session_token} if session_token else {}
    for kind in (AssumedRoleAccessKey, IAMUserAccessKey):
        try:
            return kind(account_id, "aws", access_key_id, headers).create_credentials()
        except (CreateAccessKeyFailure, KeyError):
            continue
    raise SignatureRejected("the access key is not one this stack issued")


def verify_signature(
    method: str, url: str, headers: Mapping[str, str], body: bytes, *, account_id: str, region: str
) -> str:
    """Check a SigV4 request for the `lambda` service; return its access key id."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    lowered = {name.lower(): value for name, value in headers.items()}
    fields = _authorization_fields(lowered.get("authorization", ""))
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[2] != region or scope[3] != "lambda" or scope[4] != "aws4_request":
        raise SignatureRejected("the credential scope is not this region's lambda")
    timestamp = lowered.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(timestamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SignatureRejected("X-Amz-Date is missing or malformed") from None
    if abs((datetime.now(UTC) - signed_at).total_seconds()) > MAX_CLOCK_SKEW_SECONDS or scope[1] != timestamp[:8]:
        raise SignatureRejected("the signature is stale")
    signed_names = fields["SignedHeaders"].split(";")
    if "host" not in signed_names:
        raise SignatureRejected("the Host header is not signed")
    access_key_id = scope[0]
    credentials = _issued_credentials(access_key_id, lowered.get("x-amz-security-token"), account_id)
    request = AWSRequest(
        method=method, url=url, data=body, headers={name: lowered[name] for name in signed_names if name in lowered}
    )
    request.context["timestamp"] = timestamp
    auth = SigV4Auth(credentials, "lambda", region)
    canonical = auth.canonical_request(request)
    expected = auth.signature(auth.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, fields["Signature"]):
        raise SignatureRejected("the signature does not match")
    return access_key_id


def caller_of(access_key_id: str, *, account_id: str, region: str) -> tuple[str, str]:
    """(user id, ARN) of the key's owner, as moto's STS answers GetCallerIdentity for it."""
    from moto.sts.models import sts_backends

    user_id, arn, _ = sts_backends[account_id]["aws"].get_caller_identity(access_key_id, region)
    return user_id, arn


def function_url_event(
    method: str, path: str, headers: Mapping[str, str], body: bytes, *, access_key_id: str, account_id: str, region: str
) -> dict[str, Any]:
    """A payload format 2.0 event, with the verified signer in `requestContext.authorizer.iam`."""
    user_id, arn = caller_of(access_key_id, account_id=account_id, region=region)
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {name.lower(): value for name, value in headers.items() if name.lower() != "authorization"},
        "requestContext": {
            "accountId": account_id,
            "apiId": "local",
            "authorizer": {
                "iam": {
                    "accessKey": access_key_id,
                    "accountId": account_id,
                    "callerId": user_id,
                    "cognitoIdentity": None,
                    "principalOrgId": None,
                    "userArn": arn,
                    "userId": user_id,
                }
            },
            "domainName": headers.get("Host", "localhost"),
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now * 1000),
        },
        "body": body.decode("utf-8", errors="replace"),
        "isBase64Encoded": False,
    }


def _route(logical_id: str) -> str:
    return (
        "/"
        + "".join(f"-{c.lower()}" if c.isupper() else c for c in logical_id.removesuffix("Function")).strip("-")
        + "/"
    )


def answer_request(
    stack: LocalStack, logical_id: str, method: str, url: str, headers: Mapping[str, str], body: bytes
) -> tuple[int, bytes]:
    """What the function URL answers: 403 for a bad signature, else the function's own HTTP response."""
    try:
        access_key_id = verify_signature(method, url, headers, body, account_id=stack.account_id, region=stack.region)
    except SignatureRejected as error:
        return 403, json.dumps({"message": f"Forbidden: {error}"}).encode()
    path = "/" + url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url
    event = function_url_event(
        method, path, headers, body, access_key_id=access_key_id, account_id=stack.account_id, region=stack.region
    )
    spec = stack.functions[logical_id]
    payload, errored, _ = stack.lambdas.run(spec.function_name, event, stack.account_id, stack.region)
    if errored:
        return 502, json.dumps({"message": "Internal Server Error"}).encode()
    response = json.loads(payload or "null")
    if not isinstance(response, dict) or "statusCode" not in response:
        return 200, (payload or "").encode()
    return int(response["statusCode"]), str(response.get("body") or "").encode()


@contextlib.contextmanager
def serve_function_urls(stack: LocalStack, host: str = "127.0.0.1") -> Iterator[dict[str, str]]:
    """One HTTP server on a free port for every AWS_IAM function URL of the stack; yields their URLs."""
    routes = {_route(logical_id): logical_id for logical_id in iam_function_urls(stack.template)}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the name http.server dispatches to
            self._answer("POST")

        def do_GET(self) -> None:
            self._answer("GET")

        def _answer(self, method: str) -> None:
            logical_id = routes.get(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            if logical_id is None or length > MAX_BODY_BYTES:
                status, body = 404, b'{"message": "Not Found"}'
            else:
                body_in = self.rfile.read(length)
                url = f"http://{self.headers.get('Host', host)}{self.path}"
                status, body = answer_request(stack, logical_id, method, url, dict(self.headers.items()), body_in)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("function url: " + format, *args)

    server = ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="rescind-function-urls", daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        yield {logical_id: f"http://{host}:{port}{route}" for route, logical_id in routes.items()}
    finally:
        server.shutdown()
        server.server_close()
