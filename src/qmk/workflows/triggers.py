"""When a workflow runs by itself: schedules and events (``qmk workflow trigger``).

A trigger names a workflow and what starts it (:class:`TriggerSpec`):

- ``on = "schedule"``: every ``every_s`` seconds, or by ``cron`` (five fields, minute hour
  day-of-month month day-of-week, in UTC; ``@hourly``, ``@daily``, ``@weekly``,
  ``@monthly``, ``@yearly``), in wall time;
- ``on = "job"``: when one of the owner's jobs ends in one of ``states`` (default
  COMPLETED), a job of a trigger's own run excepted (no trigger feeds itself);
- ``on = "calibration"``: when a calibration (or custom qubit parameters) is ingested into
  the machine (``q_calibrate``, ``qmk calibrate``).

The kernel runs them (:mod:`qmk.kernel.running.triggers`); this module is the pure part: the
spec, checked, and the schedule's arithmetic on wall-clock seconds. A schedule missed
(the kernel was down) runs once when it is next seen, and says how many times it was
missed (:func:`catch_up`), never once per missed time.

>>> spec = TriggerSpec.build(name="nightly", on="schedule", cron="30 2 * * *")
>>> from datetime import datetime, timezone
>>> def at(text): return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()
>>> first = spec.first_run(at("2026-01-01T12:00:00"))
>>> datetime.fromtimestamp(first, timezone.utc).isoformat()
'2026-01-02T02:30:00+00:00'
>>> missed, after = spec.catch_up(first, at("2026-01-05T03:00:00"))   # down four days
>>> missed, datetime.fromtimestamp(after, timezone.utc).isoformat()
(4, '2026-01-06T02:30:00+00:00')
>>> TriggerSpec.build(name="x", on="schedule", cron="0 0 31 2 *")
Traceback (most recent call last):
...
qmk.abi.errors.CommandError: QW014 bad-trigger: cron '0 0 31 2 *' never fires
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from qmk import defaults, values
from qmk.abi.errors import CommandError

#: What starts a trigger's run.
EVENTS = ("schedule", "job", "calibration")
#: The shortest interval of a schedule (seconds).
MIN_EVERY_S = 1.0
#: The longest (seconds): a year.
MAX_EVERY_S = 366 * 86400.0
#: How far a cron expression's next time is looked for (days): past it, it never fires.
CRON_HORIZON_DAYS = 8 * 366
#: A catch-up counts the missed times of a cron schedule up to this many (each is a step
#: of the expression on the event loop); an interval's are counted exactly.
MAX_COUNTED = 10_000
#: A job's end that starts a trigger by default.
DEFAULT_STATES = (defaults.COMPLETED,)


def bad(message: str, **details: Any) -> CommandError:
    """``QW014 bad-trigger``."""
    return CommandError.of("bad-trigger", message, **details)


# --------------------------------------------------------------------------- cron

_ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
#: Each field's name and range, in order.
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("weekday", 0, 7))
_NAMES = {
    "month": ("jan feb mar apr may jun jul aug sep oct nov dec", 1),
    "weekday": ("sun mon tue wed thu fri sat", 0),
}


def _field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    """One cron field: ``*``, ``N``, ``A-B``, ``*/S``, ``A-B/S``, ``A/S``, lists of them."""
    words, first = _NAMES.get(name, ("", 0))
    names = {word: first + i for i, word in enumerate(words.split())}
    found: set[int] = set()

    def number(part: str) -> int:
        value = names.get(part.lower())
        if value is None:
            if not part.isdigit():
                raise bad(f"cron {name} {part!r} is not a number")
            value = int(part)
        if not low <= value <= high:
            raise bad(f"cron {name} {value} is out of {low}-{high}")
        return value

    for item in text.split(","):
        span, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise bad(f"cron {name} step {step_text!r} is not a whole number >= 1")
            step = int(step_text)
        if span == "*":
            start, end = low, high
        elif "-" in span:
            a, _, b = span.partition("-")
            start, end = number(a), number(b)
            if start > end:
                raise bad(f"cron {name} range {span!r} runs backwards")
        else:
            start = number(span)
            end = high if step_text else start
        found.update(range(start, end + 1, step))
    if name == "weekday" and 7 in found:  # 7 is Sunday too
        found = (found - {7}) | {0}
    return frozenset(found)


@dataclass(frozen=True, slots=True)
class Cron:
    """A parsed five-field cron expression (UTC). As cron does, a day matches when its
    day of month or its weekday does, when both fields are restricted."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> Cron:
        """The expression ``text``.

        Raises:
            CommandError: ``QW014 bad-trigger`` naming the field.
        """
        fields = _ALIASES.get(text.strip().lower(), text).split()
        if len(fields) != 5:
            raise bad(
                f"cron {text!r} has {len(fields)} fields; write minute hour day month "
                "weekday, e.g. '*/15 * * * *'"
            )
        parsed = [_field(f, *spec) for f, spec in zip(fields, _FIELDS, strict=True)]
        return cls(
            text=text,
            minutes=tuple(sorted(parsed[0])),
            hours=tuple(sorted(parsed[1])),
            days=parsed[2],
            months=parsed[3],
            weekdays=parsed[4],
            any_day=fields[2].startswith("*"),
            any_weekday=fields[4].startswith("*"),
        )

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        by_date = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return by_date and by_weekday
        return by_date or by_weekday

    def next_after(self, when: float) -> float | None:
        """The first time the expression names strictly after ``when`` (seconds since
        the epoch); None if there is none within :data:`CRON_HORIZON_DAYS`."""
        start = datetime.fromtimestamp(math.floor(when / 60) * 60 + 60, timezone.utc)
        day = start.replace(hour=0, minute=0)
        for offset in range(CRON_HORIZON_DAYS):
            today = day + timedelta(days=offset)
            if not self._day_matches(today):
                continue
            for hour in self.hours:
                for minute in self.minutes:
                    moment = today.replace(hour=hour, minute=minute)
                    if moment >= start:
                        return moment.timestamp()
        return None


# --------------------------------------------------------------------------- the spec


class TriggerSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What starts a trigger's run (see the module docstring); checked by :meth:`build`."""

    name: Annotated[str, Meta(min_length=1, max_length=100)]
    on: Literal["schedule", "job", "calibration"]
    every_s: Annotated[float, Meta(ge=MIN_EVERY_S, le=MAX_EVERY_S)] | None = None
    cron: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    states: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        *,
        name: str,
        on: str,
        every_s: float | None = None,
        cron: str | None = None,
        states: Iterable[str] | None = None,
    ) -> TriggerSpec:
        """A checked spec (``states`` of a job trigger: default COMPLETED).

        Raises:
            CommandError: ``QW014 bad-trigger``, one line naming the option.
        """
        data: dict[str, Any] = {"name": name, "on": on, "every_s": every_s, "cron": cron}
        if states is not None:
            data["states"] = list(states)
        if on not in EVENTS:
            raise bad(f"on {on!r} is no event; one of {', '.join(EVENTS)}", key="on")
        spec: TriggerSpec = values.convert(data, cls, error=_bad_key, strict=False)
        spec._check()
        if spec.on == "job" and not spec.states:
            spec = msgspec.structs.replace(spec, states=DEFAULT_STATES)
        return spec

    @classmethod
    def from_json(cls, data: Any) -> TriggerSpec:
        """A spec stored as :meth:`to_json` gave it (checked again)."""
        mapping: dict[str, Any] = values.convert(data, dict[str, Any], error=_bad_key)
        return cls.build(**mapping)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        out["states"] = list(self.states)
        return out

    def _check(self) -> None:
        if self.on == "schedule":
            if (self.every_s is None) == (self.cron is None):
                raise bad("a schedule needs every_s or cron (one of them)", key="every_s")
            if self.cron is not None and self.next_cron(0.0) is None:
                raise bad(f"cron {self.cron!r} never fires", key="cron")
        elif self.every_s is not None or self.cron is not None:
            raise bad(f"every_s and cron are for schedules; this trigger is on {self.on}")
        if self.on != "job" and self.states:
            raise bad(f"states are for job triggers; this trigger is on {self.on}", key="states")
        unknown = sorted(set(self.states) - set(defaults.FINAL_JOB_STATES))
        if unknown:
            raise bad(
                f"states {unknown}: a job ends in one of {', '.join(defaults.FINAL_JOB_STATES)}",
                key="states",
            )

    def next_cron(self, when: float) -> float | None:
        if self.cron is None:
            return None
        return _cron(self.cron).next_after(when)

    @property
    def scheduled(self) -> bool:
        return self.on == "schedule"

    def first_run(self, created_at: float) -> float | None:
        """When a schedule first runs (None: the trigger waits for events)."""
        if self.every_s is not None:
            return created_at + self.every_s
        return self.next_cron(created_at)

    def catch_up(self, next_at: float, now: float) -> tuple[int, float]:
        """A schedule due at ``next_at``, seen at ``now`` (>= ``next_at``): how many of its
        times have passed (it runs once for all of them), and its next time after
        ``now``."""
        if self.every_s is not None:
            passed = math.floor((now - next_at) / self.every_s) + 1
            return passed, next_at + passed * self.every_s
        passed, upcoming = 0, next_at
        while upcoming <= now and passed < MAX_COUNTED:
            passed += 1
            following = self.next_cron(upcoming)
            if following is None:  # checked when built: not reached
                raise bad(f"cron {self.cron!r} never fires again")
            upcoming = following
        if upcoming <= now:  # more than MAX_COUNTED passed: the next one after now
            after = self.next_cron(now)
            if after is None:
                raise bad(f"cron {self.cron!r} never fires again")
            upcoming = after
        return passed, upcoming

    def hears(self, event: str, state: str | None = None) -> bool:
        """Whether an event (``job`` ending in ``state``, ``calibration``) starts it."""
        if event != self.on:
            return False
        return event != "job" or state in self.states


@functools.lru_cache(maxsize=1024)
def _cron(text: str) -> Cron:
    """A parsed expression, kept (a schedule reads its own again at every run)."""
    return Cron.parse(text)


def _bad_key(message: str, key: str) -> CommandError:
    return bad(message, key=key)


__all__ = [
    "DEFAULT_STATES",
    "EVENTS",
    "MAX_EVERY_S",
    "MIN_EVERY_S",
    "Cron",
    "TriggerSpec",
    "bad",
]
