"""The doctor's Vault check: the Vault the stack's functions use is up, and the operator's token is alive and
carries Rescind's policy. Reads `sys/health` and `auth/token/lookup-self` only; the token is never printed.

Where `rescind vault setup` is not available to name the policies, a policy is Rescind's by its name prefix
`rescind-`, and the line says so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rescind_cli.doctor import FAIL, OK, WARN, Account, Finding, guarded
from rescind_cli.runs.boundary import one_line

POLICY_PREFIX = "rescind-"
# sys/health's status codes (GET): what each means for the functions.
_HEALTH_STATES = {
    200: "active, unsealed",
    429: "an unsealed standby",
    472: "a disaster-recovery secondary",
    473: "a performance standby",
    501: "not initialised",
    503: "sealed",
}
_SERVING = {200, 429, 473}
LOGIN_FIX = "log in again (`bao login` / `vault login`) or set VAULT_TOKEN, with a token carrying the rescind policy"


def vault_location(account: Account, vault_addr: str | None) -> tuple[str, str, str]:
    """(address, namespace, where the address came from): --vault-addr, else the functions' environment, else the
    stack's VaultAddr parameter."""
    namespace = os.environ.get("VAULT_NAMESPACE", "")
    if vault_addr:
        return vault_addr.strip(), namespace, "--vault-addr"
    lambda_client = account.client("lambda")
    for function in sorted(account.of_type("AWS::Lambda::Function"), key=lambda item: item.logical_id):
        configuration = lambda_client.get_function_configuration(FunctionName=function.physical_id)
        variables = (configuration.get("Environment") or {}).get("Variables") or {}
        if variables.get("VAULT_ADDR"):
            return (
                variables["VAULT_ADDR"],
                namespace or variables.get("VAULT_NAMESPACE", ""),
                f"{function.logical_id}'s VAULT_ADDR",
            )
    parameter = account.target.parameters.get("VaultAddr", "")
    return (
        parameter,
        namespace or account.target.parameters.get("VaultNamespace", ""),
        "the stack's VaultAddr parameter",
    )


def operator_token() -> str:
    """VAULT_TOKEN, else ~/.vault-token, else the Vault CLI's token helper: as every other command finds it."""
    from rescind_cli.direct import token_from_cli_helper

    token = os.environ.get("VAULT_TOKEN", "").strip()
    token_file = Path.home() / ".vault-token"
    if not token and token_file.is_file():
        token = token_file.read_text().strip()
    return token or token_from_cli_helper(os.environ)


def check_vault(account: Account, vault_addr: str | None) -> list[Finding]:
    region = account.region
    addr, namespace, source = "", "", ""

    def locate() -> list[Finding]:
        nonlocal addr, namespace, source
        addr, namespace, source = vault_location(account, vault_addr)
        return []

    refused = guarded("vault", region, locate)
    if refused:
        return refused
    if not addr:
        return [
            Finding(
                "vault",
                FAIL,
                "no Vault address: the stack's functions have no VAULT_ADDR",
                "pass --vault-addr URL",
                region,
            )
        ]
    return [_vault_finding(addr, namespace, source, region)]


def _vault_finding(addr: str, namespace: str, source: str, region: str) -> Finding:
    import hvac
    import hvac.exceptions
    import requests

    where = f"Vault at {addr} (from {source})"
    client = hvac.Client(url=addr, namespace=namespace or None, timeout=10)
    try:
        health = client.sys.read_health_status(method="GET")
    except requests.exceptions.RequestException as error:
        return Finding(
            "vault",
            FAIL,
            f"{where} is unreachable from here: {type(error).__name__}",
            "check the address and the network path (the functions reach Vault from their own network: check "
            "that path too), or pass --vault-addr",
            region,
        )
    status = 200 if isinstance(health, dict) else int(health.status_code)
    state = _HEALTH_STATES.get(status, f"answering sys/health with {status}")
    if status not in _SERVING:
        return Finding("vault", FAIL, f"{where} is {state}: it serves no request", "unseal or initialise it", region)
    token = operator_token()
    if not token:
        return Finding("vault", FAIL, f"{where} is {state}; no Vault token here to check the policy", LOGIN_FIX, region)
    client.token = token
    try:
        data: dict[str, Any] = client.auth.token.lookup_self()["data"]
    except hvac.exceptions.Forbidden:
        return Finding(
            "vault", FAIL, f"{where} is {state}, but it refuses the token (expired or revoked)", LOGIN_FIX, region
        )
    except (hvac.exceptions.VaultError, requests.exceptions.RequestException) as error:
        return Finding("vault", FAIL, f"{where}: token lookup failed: {one_line(str(error), 200)}", LOGIN_FIX, region)
    # Only these fields leave the lookup: its `id` is the token itself.
    policies = sorted({*(data.get("policies") or []), *(data.get("identity_policies") or [])})
    who = str(data.get("display_name") or "token")
    ours = [policy for policy in policies if policy.startswith(POLICY_PREFIX)]
    if not ours:
        return Finding(
            "vault",
            WARN,
            f"{where} is {state}; the token of {who} has policies {', '.join(policies) or 'none'}, none named "
            f"{POLICY_PREFIX}* (names checked by prefix: `rescind vault setup` is not available here)",
            "log in with a token carrying Rescind's policy (a rescind-* policy), not root or a personal one",
            region,
        )
    return Finding(
        "vault",
        OK,
        f"{where} is {state}; the token of {who} carries {', '.join(ours)} (checked by name prefix {POLICY_PREFIX})",
        region=region,
    )
