"""Vault calls per credential of one offboarding (issue 18), counted by bench/calls.py on a fresh real OpenBao: the
engine path (discovery + plan and guard, then each action's act and read-back) over the benchmark's estate mix.

The bounds, per credential of each kind:
- act (each action, its read-back included): a token 2 (revoke-accessor, lookup-accessor; Rescind's own token is
  looked up once per engine), a secret-id 2 (destroy, lookup), a certificate 3 (record read before, revoke, CRL
  after), a lease 3 (lookup before, revoke, lookup after: a revoke of an unknown lease answers 204 like a real one);
- plan: every live token read once (Vault lists none by metadata), each secret-id and stored certificate once,
  and per plan a few LISTs and one capabilities question per token ACL; nothing read twice.
"""

from __future__ import annotations

import pytest

from bench.estate import composition, seed_background_tokens
from bench.offboarding_scale import run_path
from rescind_local import LocalOpenBao

pytestmark = pytest.mark.integration

N = 20  # 8 tokens, 5 secret-ids, 4 certificates, 3 leases (leased certificates on the same PKI mount)
BACKGROUND_TOKENS = 4  # a neighbour's tokens, which discovery scans past

ACT_BOUND = {"vault_token": 2.0, "approle_secret_id": 2.0, "pki_certificate": 3.0, "vault_lease": 3.0}


def test_an_offboarding_reads_each_credential_once_before_acting_and_acts_with_one_read_back() -> None:
    # Given a workload holding 20 credentials of the four kinds, beside a neighbour's tokens
    counts = composition(N)
    tokens, secret_ids, certificates, leases = (
        counts[kind] for kind in ("vault_token", "approle_secret_id", "pki_certificate", "vault_lease")
    )

    # When it is offboarded through discovery, the plan and guard, and the engine (the benchmark's engine path)
    with LocalOpenBao() as server:
        seed_background_tokens(server.addr, server.root_token, BACKGROUND_TOKENS)
        run = run_path("engine", server.addr, server.root_token, N)

    # Then every credential was ended and verified
    assert "error" not in run, run.get("trace")
    assert (run["credentials"], run["succeeded"], run["still_alive"]) == (N, N, 0)
    phases = run["calls"]["phases"]
    act, plan = phases["act"]["vault_per_credential_by_kind"], phases["plan"]["vault_per_credential_by_kind"]

    # And each act made its change and one read-back (a token's own-token lookup once for the whole engine)
    own_token_lookup = 1 / tokens
    assert act["vault_token"] <= ACT_BOUND["vault_token"] + own_token_lookup + 0.001, act
    for kind in ("approle_secret_id", "pki_certificate", "vault_lease"):
        assert act[kind] <= ACT_BOUND[kind], (kind, act)

    # And the plan read each credential once: every live token (the workload's, the neighbour's and the root token)
    # plus LIST accessors, LIST token roles and one capabilities question per ACL (two: the workload's token that
    # asks for its secret-ids and certificates has the issuer policy beside the others' default); each
    # secret-id plus LIST roles and LIST secret-ids; each stored certificate (the workload's, the leased ones and
    # the CA's) plus LIST certs and LIST certs/revoked; no lease (the inventory names them)
    live_tokens = tokens + BACKGROUND_TOKENS + 1
    acls = 2
    assert plan["vault_token"] * tokens <= live_tokens + 2 + acls + 0.01, plan
    assert plan["approle_secret_id"] * secret_ids <= secret_ids + 2 + 0.01, plan
    assert plan["pki_certificate"] * certificates <= certificates + leases + 1 + 2 + 0.01, plan
    assert plan["vault_lease"] == 0, plan
