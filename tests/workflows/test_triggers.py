"""What starts a trigger's run (qmk.workflows.triggers): the spec's checks, cron's times in
UTC, and a missed schedule's catch-up (once, counting what it missed)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from qmk.abi.errors import CommandError
from qmk.workflows.triggers import Cron, TriggerSpec


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M %a")


def times(expression: str, start: str, count: int) -> list[str]:
    cron, found, now = Cron.parse(expression), [], at(start)
    for _ in range(count):
        upcoming = cron.next_after(now)
        assert upcoming is not None
        found.append(iso(upcoming))
        now = upcoming
    return found


def test_cron_steps_ranges_lists_and_names_name_the_minutes_cron_does() -> None:
    assert times("*/20 9-10 * * *", "2026-03-02T08:59:30", 4) == [
        "2026-03-02 09:00 Mon",
        "2026-03-02 09:20 Mon",
        "2026-03-02 09:40 Mon",
        "2026-03-02 10:00 Mon",
    ]
    assert times("0 12 * * mon,fri", "2026-03-02T12:00:00", 3) == [  # strictly after
        "2026-03-06 12:00 Fri",
        "2026-03-09 12:00 Mon",
        "2026-03-13 12:00 Fri",
    ]
    assert times("5 0 * jan-feb 7", "2026-02-27T00:00:00", 2) == [  # 7: Sunday too
        "2027-01-03 00:05 Sun",
        "2027-01-10 00:05 Sun",
    ]
    assert times("@monthly", "2026-01-31T10:00:00", 2) == [
        "2026-02-01 00:00 Sun",
        "2026-03-01 00:00 Sun",
    ]


def test_a_day_matches_its_date_or_its_weekday_when_both_are_restricted() -> None:
    # the 13th, or any Friday (cron's OR), not only Friday the 13th
    assert times("0 0 13 * fri", "2026-03-01T00:00:00", 3) == [
        "2026-03-06 00:00 Fri",
        "2026-03-13 00:00 Fri",
        "2026-03-20 00:00 Fri",
    ]
    assert times("0 0 29 2 *", "2026-01-01T00:00:00", 1) == ["2028-02-29 00:00 Tue"]


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("* * *", "has 3 fields"),
        ("60 * * * *", "minute 60 is out of 0-59"),
        ("* 24 * * *", "hour 24 is out of 0-23"),
        ("* * 0 * *", "day 0 is out of 1-31"),
        ("* * * 13 *", "month 13 is out of 1-12"),
        ("*/0 * * * *", "step '0'"),
        ("5-1 * * * *", "runs backwards"),
        ("x * * * *", "minute 'x' is not a number"),
    ],
)
def test_a_cron_expression_that_does_not_parse_is_bad_trigger_naming_the_field(
    expression: str, words: str
) -> None:
    with pytest.raises(CommandError) as caught:
        TriggerSpec.build(name="t", on="schedule", cron=expression)
    assert caught.value.code == "QW014" and words in str(caught.value)


def test_an_interval_missed_many_times_runs_once_and_counts_them() -> None:
    spec = TriggerSpec.build(name="t", on="schedule", every_s=60)
    assert spec.first_run(1000.0) == 1060.0
    assert spec.catch_up(1060.0, 1060.0) == (1, 1120.0)  # on time: one, the next after
    assert spec.catch_up(1060.0, 1119.9) == (1, 1120.0)
    assert spec.catch_up(1060.0, 1060.0 + 600.5) == (11, 1060.0 + 660)


def test_a_cron_schedule_missed_past_the_count_limit_still_runs_once_at_its_next_time() -> None:
    spec = TriggerSpec.build(name="t", on="schedule", cron="* * * * *")
    due = at("2026-01-01T00:00:00")
    missed, upcoming = spec.catch_up(due, due + 3 * 86400 + 30)  # 4321 minutes passed
    assert missed == 4321 and upcoming == due + 3 * 86400 + 60
    from qmk.workflows import triggers

    assert triggers.MAX_COUNTED < 200 * 86400 / 60
    missed, upcoming = spec.catch_up(due, due + 200 * 86400 + 30)  # past the count
    assert missed == triggers.MAX_COUNTED and upcoming == due + 200 * 86400 + 60


def test_event_triggers_hear_their_events_and_job_states() -> None:
    job = TriggerSpec.build(name="t", on="job", states=["FAILED", "TIMED_OUT"])
    assert job.hears("job", "FAILED") and not job.hears("job", "COMPLETED")
    assert not job.hears("calibration")
    assert TriggerSpec.build(name="t", on="job").states == ("COMPLETED",)
    calibration = TriggerSpec.build(name="t", on="calibration")
    assert calibration.hears("calibration") and calibration.first_run(0.0) is None
    again = TriggerSpec.from_json(job.to_json())
    assert again == job
