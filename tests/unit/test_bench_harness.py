"""The benchmark harness's own logic: the order paths run in, what the call counter leaves out, and how the
offboarding targets are judged. Benchmarks are not tests; these check the harness, not a time."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import hvac.exceptions

from bench.calls import UNCOUNTED_THREAD_PREFIX, CallCounter
from bench.leak_to_dead import asked_again_on_server_errors
from bench.offboarding_scale import index_read_alone, plan_reason_from_history, run_order, verdicts
from bench.results import merge_results


def test_paths_alternate_round_by_round_so_no_path_always_runs_first() -> None:
    paths = ["state_machine", "bare_verified_concurrent"]
    rounds = [run_order(paths, index) for index in range(4)]
    assert rounds == [paths, paths[::-1], paths, paths[::-1]]
    assert [found[0] for found in rounds].count("state_machine") == 2


def test_an_outside_watchers_calls_are_not_counted() -> None:
    counter = CallCounter()
    counter.vault("GET", "http://127.0.0.1:8200/v1/auth/token/lookup-self")
    watcher = threading.Thread(
        target=lambda: counter.vault("GET", "http://127.0.0.1:8200/v1/auth/token/lookup-self"),
        name=f"{UNCOUNTED_THREAD_PREFIX}-kill-watch",
    )
    watcher.start()
    watcher.join()
    assert counter.snapshot().vault_total == 1


def size(n: int, rate_vs_verified: float | None, ms_per_credential: float | None, vault: float) -> dict[str, Any]:
    return {
        "n": n,
        "rate_vs_bare_verified": {"state_machine": rate_vs_verified},
        "paths": {"state_machine": {"ms_per_credential": ms_per_credential, "calls_per_credential": {"vault": vault}}},
    }


def test_offboarding_is_judged_against_the_read_back_floor_for_rate_flatness_and_calls() -> None:
    # Given a state machine at 0.9x the read-back floor at N=100 and 0.7x at N=10000, 10 then 13 ms a credential
    scale = {"paths": {"state_machine": ""}, "sizes": [size(100, 0.9, 10.0, 2.4), size(10000, 0.7, 13.0, 2.6)]}

    found = {verdict["target"]: verdict for verdict in verdicts(scale)}

    rate = found["offboarding (state_machine)"]
    assert rate["met"] is False
    assert "N=10000: 0.7x" in rate["detail"]
    assert "read-back" in rate["wanted"]
    flat = found["offboarding time per credential (state_machine)"]
    assert flat["met"] is False
    assert "1.3x" in flat["detail"]
    calls = found["offboarding Vault calls (state_machine)"]
    assert calls["met"] is False


def test_a_flat_and_fast_enough_path_meets_every_offboarding_target() -> None:
    scale = {"paths": {"state_machine": ""}, "sizes": [size(100, 0.85, 10.0, 2.4), size(10000, 0.81, 12.0, 2.5)]}
    assert all(verdict["met"] for verdict in verdicts(scale))


def test_a_size_that_failed_is_not_flat() -> None:
    scale = {"paths": {"state_machine": ""}, "sizes": [size(100, 0.85, 10.0, 2.4), size(10000, None, None, 2.5)]}
    found = {verdict["target"]: verdict for verdict in verdicts(scale)}
    assert found["offboarding time per credential (state_machine)"]["met"] is None
    assert found["offboarding (state_machine)"]["met"] is False


READ_ALONE = (
    "within policy; discovery: read vault_token by workload from the issuance index, back-filled 2026-12-05, each "
    "confirmed live: vault_token 5; live scan of the other kinds"
)
SCANNED = "within policy; discovery: live scan of every kind; the issuance index added nothing (not read alone: stale)"


def test_a_run_with_the_index_fails_unless_its_plan_read_the_index_alone() -> None:
    assert index_read_alone(READ_ALONE) is None
    assert "not read the issuance index alone: within policy; discovery: live scan" in str(index_read_alone(SCANNED))
    assert "no reason recorded" in str(index_read_alone(None))


def test_the_plan_reason_is_read_from_the_plan_states_output_in_the_history() -> None:
    def exited(name: str, output: dict[str, Any]) -> dict[str, Any]:
        return {"type": "TaskStateExited", "stateExitedEventDetails": {"name": name, "output": json.dumps(output)}}

    events = [
        {"type": "ExecutionStarted", "executionStartedEventDetails": {"input": "{}"}},
        exited("Plan", {"incident_id": "i", "plan": {"decision_reason": READ_ALONE}}),
        exited("Guard", {"plan": {"decision_reason": "later"}}),
    ]
    assert plan_reason_from_history(events) == READ_ALONE
    assert plan_reason_from_history(events[:1]) is None


def test_results_md_names_the_run_that_measured_each_section_merged_in(tmp_path: Path) -> None:
    # Given a results.json from one run, and a later run of the leak section alone
    first = json.loads((Path(__file__).parents[2] / "bench" / "results.json").read_text())
    target = tmp_path / "results.json"
    target.write_text(json.dumps({**first, "merged": []}))
    later = {**first, "command": "python -m bench.run --skip-offboarding", "generated_at": "2027-01-01T00:00:00"}

    # When it is merged in
    merge_results(target, later, ["leak_to_dead"], "")

    # Then results.md says which run measured that section
    assert (
        "- leak_to_dead: `python -m bench.run --skip-offboarding` at 2027-01-01T00:00:00"
        in (tmp_path / "results.md").read_text()
    )


def test_the_kill_watcher_asks_again_after_a_server_error_instead_of_dying_unseen() -> None:
    # Given a check whose first two answers are OpenBao's 500 (a secret-id read racing its destroy), then "refused"
    answers = iter(
        [hvac.exceptions.InternalServerError("transaction commit failed"), hvac.exceptions.VaultDown(), True]
    )

    def check() -> bool:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    # Then the watcher's check says "not refused yet" twice, then "refused"
    watched = asked_again_on_server_errors(check)
    assert [watched(), watched(), watched()] == [False, False, True]
