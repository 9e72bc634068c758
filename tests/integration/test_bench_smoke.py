"""The benchmark harness still runs end to end at its smallest size. Benchmarks are not tests: nothing here
looks at a time, only that the harness completes and writes well-formed results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# (Vault, AWS) calls of each leak kind's bare floor (bench.leak_to_dead.bare_leak_floor), counted by bench.calls
BARE_LEAK_CALLS = {"vault_token": (3, 0), "vault_secret_id": (3, 0), "kv_value": (4, 0), "aws_access_key": (0, 4)}


def test_the_harness_runs_at_its_smallest_size_and_writes_well_formed_results(tmp_path: Path) -> None:
    # Given the harness in smoke mode (N=10, one run per path, one cold-start run; package size only on request)
    command = [sys.executable, "-m", "bench.run", "--smoke", "--output-dir", str(tmp_path)]

    # When it runs in its own interpreter, as `make bench-smoke` runs it (about 110 s alone, half of it the cold start
    # section's sam build and fresh interpreters; beside the rest of the suite on 2 CPUs it has taken over 240 s)
    finished = subprocess.run(  # noqa: S603 - this interpreter, the project's own module
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env=os.environ.copy(), check=False
    )

    # Then it completes and writes both files
    assert finished.returncode == 0, finished.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    markdown = (tmp_path / "results.md").read_text()

    # And the JSON holds every section
    assert {"machine", "versions", "leak_to_dead", "offboarding", "cold_start", "package_size", "targets"} <= set(
        results
    )

    # And each leaked kind went through the rule and the state machine to a dead credential, beside its floor
    leak = results["leak_to_dead"]
    assert leak["measured"] is True, leak.get("reason")
    assert set(leak["kinds"]) == {"vault_token", "vault_secret_id", "kv_value", "aws_access_key"}
    for kind, summary in leak["kinds"].items():
        assert summary["completed_runs"] == 1, (kind, summary.get("errors"))
        assert summary["bare_completed_runs"] == 1, (kind, summary.get("errors"))
        (run,) = summary["runs"]
        assert (run["status"], run["closure"]) == ("SUCCEEDED", "completed"), kind
        assert (run["confirmed_dead"], run["still_alive"]) == (True, 0), kind
        assert summary["median_seconds"] > 0
        assert summary["bare_median_seconds"] > 0
        assert summary["ratio_to_bare"] > 0
        assert set(summary["phases_of_median_run"]) >= {"Plan", "Close"}
        # a token or secret-id the kill first proved dead leaves the run nothing to revoke or read back again
        acted = {"Revoke", "Verify"} & set(summary["phases_of_median_run"])
        assert acted == (set() if kind in ("vault_token", "vault_secret_id") else {"Revoke", "Verify"}), kind
        # and its calls were counted on both sides, the watcher's left out: the floor's are the calls it makes
        assert run["calls"]["vault"] + run["calls"]["aws"] > 0, kind
        (bare,) = summary["bare_runs"]
        assert (bare["calls"]["vault"], bare["calls"]["aws"]) == BARE_LEAK_CALLS[kind], kind
    # the key's deactivation was the kill first's, proven, so the run only deleted it
    assert (leak["kinds"]["aws_access_key"]["killed_first"], leak["kinds"]["aws_access_key"]["actions"]) == (
        ["disable"],
        ["delete"],
    )
    # and a token's and an AWS key's time to kill was watched on both sides
    for kind in ("vault_token", "aws_access_key"):
        assert leak["kinds"][kind]["median_seconds_to_kill"] > 0, kind
        assert leak["kinds"][kind]["bare_median_seconds_to_kill"] > 0, kind
    # And each kind with a reversible kill was seen refused from outside, from the event and from the start function
    for kind in ("vault_token", "vault_secret_id", "aws_access_key"):
        (run,) = leak["kinds"][kind]["runs"]
        assert None not in (run["seconds_to_kill_in_function"], run["seconds_to_kill"]), (kind, "never seen refused")
        assert 0 < run["seconds_to_kill_in_function"] <= run["seconds_to_kill"], kind

    # And every offboarding path completed at N=10 with a time and a rate, and Rescind's paths left nothing alive
    offboarding = results["offboarding"]
    (size,) = offboarding["sizes"]
    assert size["n"] == 10
    assert sum(size["composition"].values()) == 10
    # one round, every path once in order, on one server whose background tokens were seeded once
    assert size["order"] == list(size["paths"])
    assert (size["background_tokens"], offboarding["target_floor"]) == (10, "bare_verified_concurrent")
    assert size["background_seed_seconds"] > 0
    # discovery read the issuance index, back-filled once with the background tokens (and the PKI CA, skipped)
    assert offboarding["discovery"] == "index"
    assert size["index_backfill_seconds"] > 0
    assert size["index_backfill_examined"] >= 10
    # what the wrappers every path runs under cost, measured
    assert set(offboarding["wrapper_cost"]["microseconds_per_call"]) == {
        "none",
        "counting",
        "moto",
        "moto_and_counting",
    }
    for path, summary in size["paths"].items():
        assert summary["completed_runs"] == 1, (path, summary.get("errors"))
        assert summary["median_seconds"] > 0
        assert summary["credentials_per_second"] > 0
        (run,) = summary["runs"]
        assert run["credentials"] == 10, path
        if not path.startswith("bare"):
            assert run["succeeded"] == 10, path
            assert run["still_alive"] == 0, path
            # fed the run's audit lines first, and its plan read the indexed kinds from the index alone
            assert run["index_seconds"] > 0, path
            assert "by workload from the issuance index" in run["plan_reason"], (path, run["plan_reason"])
        # and its calls were counted: the bare loops make one call per credential, or two with the read-back
        calls = summary["calls_per_credential"]
        if path.startswith("bare"):
            assert calls["vault"] == (2.0 if path == "bare_verified_concurrent" else 1.0), path
            assert calls["aws_by_service"] == {}, path
        else:
            assert calls["vault"] > 2.0, path
            assert set(calls["vault_by_kind"]) == set(size["composition"]), path
            assert calls["aws_by_service"]["dynamodb"] > 0, path
        assert run["seed_seconds"] > 0, path
    # the floor's read-back found every credential gone; the state machine's Lambda invocations were counted
    assert size["paths"]["bare_verified_concurrent"]["runs"][0]["still_alive"] == 0
    assert size["paths"]["state_machine"]["calls_per_credential"]["lambda_invocations"] > 0
    for ratios in ("rate_vs_bare_verified", "rate_vs_bare_concurrent", "rate_vs_bare_serial"):
        assert set(size[ratios]) == set(size["paths"]), ratios

    # And the cold start has one figure per function folder, with the layers' bytecode and without, each beside the
    # boto3 baseline, the bare floor and its own hand-written floor (the same stored settings read, the same
    # clients built), as whole processes and inside them
    functions = {folder.name for folder in (REPO_ROOT / "functions").iterdir() if (folder / "app.py").is_file()}
    cold = results["cold_start"]
    assert set(cold["functions"]) == functions
    assert cold["python"].startswith("3.12.")
    assert cold["boto3"]["process"]["median_ms"] > 0
    assert cold["boto3"]["in_process"]["median_ms"] > 0
    for floor in ("bare", "dependencies"):
        for variant in ("bytecode", "source"):
            assert cold["floors"][floor][variant]["process"]["median_ms"] > 0, (floor, variant)
    for name, entry in cold["functions"].items():
        assert entry["layers"][0] == "RescindLayer", name
        assert "get_settings" in entry["factories_built"], name
        assert entry["floor"]["parameters"], name  # every function reads its stored settings at cold start
        assert "ssm" in entry["floor"]["services"], name
        for variant in ("bytecode", "source"):
            assert entry[variant]["process"]["ratio_to_boto3"] > 0, (name, variant)
            assert entry[variant]["process"]["ratio_to_bare"] > 0, (name, variant)
            assert entry[variant]["cpu"]["ratio_to_floor"] > 0, (name, variant)
            assert entry[variant]["floor"]["cpu"]["median_ms"] > 0, (name, variant)
            assert entry[variant]["in_process"]["median_ms"] >= entry[variant]["import_only"]["median_ms"] > 0
    # Present, not compared: one sample each under a loaded CI machine says nothing about which is slower.

    # And every target has a verdict (met, missed, or not measured), and the Markdown names each of them
    targets = {verdict["target"] for verdict in results["targets"]}
    assert {"leak_to_dead (vault_token)", "leak_to_dead (kv_value)", "leak_to_dead (aws_access_key)"} <= targets
    assert {"leak_to_kill (vault_token)", "leak_to_kill (aws_access_key)"} <= targets
    assert {"offboarding (state_machine)", "offboarding Vault calls (state_machine)"} <= targets
    assert {"cold_start", "layer"} <= targets
    assert all(verdict["met"] in (True, False, None) for verdict in results["targets"])
    for heading in ("## Targets", "## 1. Leak to dead", "## 2. Offboarding scale", "## 3. Cold start"):
        assert heading in markdown
    assert "| vault_token | 1/1 |" in markdown
    assert "to kill: median s" in markdown
    assert "| 10 | 1/1 | state_machine |" in markdown
    assert "(`--discovery index`) reads the issuance index" in markdown


def test_the_child_token_benchmark_runs_at_its_smallest_size(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench.child_tokens", "--smoke", "--output-dir", str(tmp_path)]
    finished = subprocess.run(  # noqa: S603 - this interpreter, the project's own module
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=os.environ.copy(), check=False
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    (row,) = json.loads((tmp_path / "child_tokens.json").read_text())
    for case in ("cannot_create_tokens", "can_create_tokens"):
        assert row[case]["rescind_median_ms"] > 0
        assert row[case]["bare_median_ms"] > 0


def test_the_index_vs_scan_benchmark_runs_at_its_smallest_size(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench.index_vs_scan", "--smoke", "--output-dir", str(tmp_path)]
    finished = subprocess.run(  # noqa: S603 - this interpreter, the project's own module
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=os.environ.copy(), check=False
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    (row,) = json.loads((tmp_path / "index_vs_scan.json").read_text())
    assert row["background_tokens"] == 50
    for path in ("index_plan", "scan_plan"):
        assert row[path]["median_seconds"] > 0
    assert row["scan_over_index"] > 0
    # Both plans found the workload's tokens, secret-ids and certificates; only the index found its lease
    assert {kind: count for kind, count in row["found"]["index"].items() if kind != "vault_lease"} == row["found"][
        "scan"
    ]
    assert (row["leases_found_by_index"], row["leases_found_by_scan"]) == (1, 0)


def test_the_listing_cost_benchmark_runs_at_its_smallest_size(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench.listing_cost", "--tokens", "20,40", "--secret-ids", "10"]
    finished = subprocess.run(  # noqa: S603 - this interpreter, the project's own module
        [*command, "--runs", "1", "--output-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads((tmp_path / "listing_cost.json").read_text())
    # Each listing listed what the server held at its size (the root token is one of the tokens), beside its lookups
    assert [(row["on_server"], row["listed"]) for row in report["tokens"]] == [(20, 20), (40, 40)]
    assert [(row["under_role"], row["listed"]) for row in report["secret_ids"]] == [(10, 10)]
    for row in (*report["tokens"], *report["secret_ids"]):
        assert row["list_median_ms"] > 0
        assert row["lookup_median_ms"] > 0
        assert row["break_even_batch"] > 0


def test_the_read_back_floor_checks_what_it_reads() -> None:
    """The offboarding target's floor reads each credential back after its bare revocation: a read that finds the
    credential alive must say so, or the floor would be a revocation loop that only pretends to verify."""
    from bench.estate import seed_estate, thread_local_clients
    from bench.offboarding_scale import bare_revocations, estate_jobs, read_back_dead
    from rescind_local import LocalOpenBao

    with LocalOpenBao() as server:
        # Given a workload of 20 live credentials of every kind
        estate = seed_estate(server.addr, server.root_token, 20)
        client = thread_local_clients(server.addr, server.root_token)()
        jobs = estate_jobs(estate)
        assert {kind for kind, _ in jobs} == {"token", "secret_id", "certificate", "lease"}

        # Then each read-back, before any revocation, finds its credential alive
        assert [read_back_dead(client, job) for job in jobs] == [False] * len(jobs)

        # When the floor revokes them and reads each back
        measured = bare_revocations(server.addr, server.root_token, estate, 10, read_back=True)

        # Then it found every one gone, with two counted Vault calls per credential, and they are gone
        assert (measured["credentials"], measured["still_alive"]) == (20, 0), measured.get("error")
        assert measured["calls"]["vault_per_credential"] == 2.0
        assert [read_back_dead(client, job) for job in jobs] == [True] * len(jobs)
