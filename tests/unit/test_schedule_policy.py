"""The schedules' policy, their request and report types, and the rate limit: pure, no backend."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from rescind.config import ScheduleSettings
from rescind.exceptions import ConfigurationError
from rescind.schedules.base import RateLimiter
from rescind.schedules.policy import MaxAgeRule, SchedulePolicy, TtlCeilings
from rescind.schedules.types import (
    Change,
    ChangeStatus,
    SweepName,
    SweepReport,
    SweepRequest,
    sweep_run_id,
)

MOMENT = datetime(2026, 3, 1, 12, 34, 56, tzinfo=UTC)


# --- policy -------------------------------------------------------------------------------------------


def test_absent_policy_means_the_defaults() -> None:
    assert ScheduleSettings.from_environ({}).schedule_policy == SchedulePolicy()
    assert ScheduleSettings.from_environ({"SCHEDULE_POLICY": "  "}).schedule_policy == SchedulePolicy()
    defaults = SchedulePolicy()
    assert defaults.orphan_grace_minutes == 60
    assert defaults.ttl_ceilings.token_seconds == 7 * 86400
    assert defaults.pki_tidy_safety_buffer_seconds == 3 * 86400


def test_policy_is_read_from_json() -> None:
    raw = {
        "rotation_max_age": [
            {"kv_prefix": "secret/apps/", "max_age_days": 30},
            {"tag": "tier=gold", "max_age_days": 7},
        ],
        "ttl_ceilings": {"token_seconds": 3600},
        "orphan_grace_minutes": 0,
        "protected_paths": ["secret/payments/", "aws-key:123456789012:breakglass:"],
        "max_actions_per_run": 5,
    }

    policy = ScheduleSettings.from_environ({"SCHEDULE_POLICY": json.dumps(raw)}).schedule_policy

    assert policy.rotation_max_age == (
        MaxAgeRule(kv_prefix="secret/apps/", max_age_days=30),
        MaxAgeRule(tag="tier=gold", max_age_days=7),
    )
    assert policy.ttl_ceilings == TtlCeilings(token_seconds=3600)
    assert (policy.orphan_grace_minutes, policy.max_actions_per_run) == (0, 5)


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ("{not json", "not JSON"),
        (json.dumps({"max_actions_per_run": 0}), "max_actions_per_run"),
        (json.dumps({"surprise": 1}), "surprise"),
        (json.dumps({"ttl_ceilings": {"token_seconds": 10}}), "token_seconds"),
        (json.dumps({"protected_paths": [" "]}), "protected"),
        (json.dumps({"pki_tidy_safety_buffer_seconds": 0}), "pki_tidy_safety_buffer_seconds"),
        (json.dumps({"vault_requests_per_second": 0}), "vault_requests_per_second"),
    ],
)
def test_a_bad_policy_is_refused_at_start_up_naming_the_problem(raw: str, names: str) -> None:
    with pytest.raises(ConfigurationError, match="SCHEDULE_POLICY") as refused:
        ScheduleSettings.from_environ({"SCHEDULE_POLICY": raw})
    assert names in str(refused.value)


@pytest.mark.parametrize("prefix", ["", "secret", "secret/", "/secret/apps", "secret//apps", "secret/../sys", "./x/y"])
def test_a_max_age_prefix_never_covers_a_whole_mount_or_escapes_it(prefix: str) -> None:
    with pytest.raises(ValidationError):
        MaxAgeRule(kv_prefix=prefix, max_age_days=30)


@pytest.mark.parametrize(
    "fields",
    [
        {"max_age_days": 30},  # no selector
        {"kv_prefix": "secret/apps/", "tag": "a=b", "max_age_days": 30},  # both
        {"tag": "no-equals", "max_age_days": 30},
        {"tag": "=value", "max_age_days": 30},
        {"tag": "a=b=c", "max_age_days": 30},
        {"kv_prefix": "secret/apps/", "max_age_days": 0},
    ],
)
def test_a_max_age_rule_has_exactly_one_well_formed_selector(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MaxAgeRule.model_validate(fields)


def test_protection_is_by_exact_match_or_prefix() -> None:
    policy = SchedulePolicy(protected_paths=("secret/payments/", "spiffe://example.org/ns/payments/"))

    assert policy.is_protected("secret/payments/db")
    assert policy.is_protected("spiffe://example.org/ns/payments/sa/ledger")
    assert not policy.is_protected("secret/pay")
    assert not policy.is_protected("secret/shop/db")
    assert not SchedulePolicy().is_protected("anything")


def test_policy_is_frozen() -> None:
    policy = SchedulePolicy()
    with pytest.raises(ValidationError):
        policy.max_actions_per_run = 10_000  # type: ignore[misc]


# --- request and report -----------------------------------------------------------------------------


def test_a_request_defaults_to_a_real_resumable_run() -> None:
    request = SweepRequest()
    assert (request.dry_run, request.max_actions, request.resume) == (False, None, True)
    assert SweepRequest.model_validate({"dry_run": True, "max_actions": 3}).max_actions == 3


@pytest.mark.parametrize("fields", [{"max_actions": 0}, {"max_actions": 100_001}, {"force": True}])
def test_a_bad_request_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SweepRequest.model_validate(fields)


def test_run_ids_are_one_per_sweep_and_minute_and_valid_in_a_report() -> None:
    run_id = sweep_run_id(SweepName.PKI_HYGIENE, MOMENT)

    assert run_id == "pki_hygiene-20260301T1234"
    assert sweep_run_id(SweepName.PKI_HYGIENE, MOMENT.replace(second=0)) == run_id
    assert sweep_run_id(SweepName.ORPHANS, MOMENT) != run_id
    report = SweepReport(
        sweep=SweepName.PKI_HYGIENE,
        run_id=run_id,
        dry_run=False,
        started_at=MOMENT,
        finished_at=MOMENT,
        examined=3,
        changes=(
            Change(target="pki", what="tidy", status=ChangeStatus.APPLIED),
            Change(target="pki:pki:01:02", what="flag certificate_owner", status=ChangeStatus.FLAGGED),
            Change(target="pki:pki:01:03", what="flag certificate_owner", status=ChangeStatus.FLAGGED),
        ),
    )
    assert report.count(ChangeStatus.FLAGGED) == 2
    assert report.count(ChangeStatus.STARTED) == 0
    assert report.complete


@pytest.mark.parametrize(
    "fields",
    [
        {"run_id": "has spaces"},
        {"examined": -1},
        {"started_at": datetime(2026, 3, 1, 12, 0)},  # naive: a report's times are always zoned
    ],
)
def test_a_malformed_report_is_refused(fields: dict[str, object]) -> None:
    base: dict[str, object] = {
        "sweep": SweepName.ORPHANS,
        "run_id": "orphans-20260301T1234",
        "dry_run": False,
        "started_at": MOMENT,
        "finished_at": MOMENT,
        "examined": 0,
    }
    with pytest.raises(ValidationError):
        SweepReport.model_validate({**base, **fields})


def test_a_change_bounds_its_text() -> None:
    with pytest.raises(ValidationError):
        Change(target="x" * 1001, what="tidy", status=ChangeStatus.APPLIED)
    with pytest.raises(ValidationError):
        Change(target="pki", what="tidy", status=ChangeStatus.APPLIED, before="y" * 201)


# --- rate limit -------------------------------------------------------------------------------------


class FakeClock:
    """A clock that only moves when slept on or told to: the limiter's arithmetic, without waiting."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limiter_spaces_calls_by_its_interval() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, clock=clock, sleep=clock.sleep)

    for _ in range(3):
        limiter.wait()

    # The first call goes at once; each next one waits a quarter of a second after the previous.
    assert clock.slept == [pytest.approx(0.25), pytest.approx(0.25)]
    assert clock.now == pytest.approx(100.5)


def test_rate_limiter_does_not_sleep_when_calls_are_already_slow_enough() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep)

    limiter.wait()
    clock.now += 1.0
    limiter.wait()
    clock.now += 0.2
    limiter.wait()

    assert clock.slept == [pytest.approx(0.3)]


@pytest.mark.parametrize("per_second", [0, -1.0])
def test_rate_limiter_refuses_a_rate_that_is_not_positive(per_second: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(per_second)
