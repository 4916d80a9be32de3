"""The scheduler: a program becomes a timeline, every time in ns.

Public API: :func:`schedule` (a validated job and the geometry at each instruction ->
:class:`Timeline`), :class:`Timeline` and :class:`Entry` (``to_json(units="us")``).
Validating and scheduling in one call is :func:`~.validate.validate_job`: the validators
sit above the scheduler, which knows only geometry.

Rules (ASAP in program order):

- an instruction starts when all its atoms are free, and no earlier than the end of the
  last barrier. ``Wait`` and ``Evolve`` (the global analog drive) are barriers: every
  atom idles, or is driven, for the duration. A run of consecutive ``MoveAtom`` is one
  rearrangement: its moves start together once every atom is free, and the next
  instruction waits for the slowest;
- gates take their catalog duration (else the ISA default), ``Measure`` the profile's
  ``measurement_duration_ns``, ``Reset`` its ``reset_duration_ns``, ``Pulse`` its own;
- at most ``max_parallel_single_qubit`` one-qubit gates, ``max_parallel_two_qubit``
  two-qubit gates, ``max_overlapping_pulses`` pulses and ``max_parallel_per_zone``
  operations in one zone overlap (0: no cap). Two two-qubit gates never overlap when an
  atom of one is within the blockade radius of an atom of the other (their Rydberg
  excitations would block each other);
- an operation on an atom within ``measurement_cooldown_ns`` after its measurement is
  delayed to the cooldown's end, and the timeline shows the inserted wait (under strict
  timing the ``cooldown`` validator refuses the job instead).

An atom is **idle** between the end of one of its operations (gate, measure, reset) and the
start of its next: waits, transport, pulses and others' gates all count, and the emulator
applies idle noise for exactly that time.

>>> from qmk.devices.neutral_atom.job import parse_job
>>> from qmk.devices.neutral_atom.validate import validate_job
>>> job = parse_job({"profile": "ideal_small_array", "program": [
...     {"op": "AllocArray", "n_qubits": 2},
...     {"op": "ApplyGate", "name": "H", "targets": [0]},
...     {"op": "Measure", "targets": [0]},
...     {"op": "ApplyGate", "name": "X", "targets": [0]}]})
>>> timeline = validate_job(job)
>>> [(e.op, e.start_ns, e.duration_ns) for e in timeline.entries][1:]
[('ApplyGate', 0.0, 500.0), ('Measure', 500.0, 50000.0), ('ApplyGate', 100500.0, 500.0)]
>>> [(w.op, w.start_ns, w.duration_ns) for w in timeline.inserted]
[('Wait', 50500.0, 50000.0)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qmk.devices.neutral_atom.geometry import Geometry, move_plan
from qmk.devices.neutral_atom.isa import Instruction, OpKind

if TYPE_CHECKING:
    from qmk.devices.neutral_atom.job import Job

#: Width of the time buckets of the overlap index (ns).
_BUCKET_NS = 1000.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One scheduled operation (``index`` -1: a wait the scheduler inserted)."""

    index: int
    op: str
    detail: str
    start_ns: float
    duration_ns: float
    atoms: tuple[int, ...] = ()
    inserted: bool = False
    #: How long the measurement cooldown of ``cooldown_atom`` delayed it.
    cooldown_delay_ns: float = 0.0
    cooldown_atom: int | None = None

    @property
    def end_ns(self) -> float:
        return self.start_ns + self.duration_ns

    def to_json(self, units: str = "us") -> dict[str, Any]:
        scale = 1e-3 if units == "us" else 1.0
        out: dict[str, Any] = {
            "index": self.index,
            "op": self.op,
            "detail": self.detail,
            "start_time": self.start_ns * scale,
            "duration": self.duration_ns * scale,
        }
        if self.atoms:
            out["atoms"] = list(self.atoms)
        if self.inserted:
            out["inserted"] = True
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeline:
    """A scheduled program: one entry per instruction (program order) and inserted waits."""

    entries: tuple[Entry, ...]
    inserted: tuple[Entry, ...] = ()
    total_ns: float = 0.0

    def to_json(self, units: str = "us") -> list[dict[str, Any]]:
        """Every entry, inserted waits included, by start time."""
        ordered = sorted(
            (*self.entries, *self.inserted), key=lambda e: (e.start_ns, e.index < 0, e.index)
        )
        return [e.to_json(units) for e in ordered]


@dataclass(slots=True)
class _Usage:
    """Scheduled intervals, indexed by time bucket, for overlap queries."""

    buckets: dict[int, list[int]] = field(default_factory=dict)
    spans: list[tuple[float, float, str, tuple[int, ...], tuple[int | None, ...]]] = field(
        default_factory=list
    )

    def add(
        self,
        start: float,
        end: float,
        kind: str,
        atoms: tuple[int, ...],
        zones: tuple[int | None, ...],
    ) -> None:
        number = len(self.spans)
        self.spans.append((start, end, kind, atoms, zones))
        for b in range(math.floor(start / _BUCKET_NS), math.floor(end / _BUCKET_NS) + 1):
            self.buckets.setdefault(b, []).append(number)

    def overlapping(self, start: float, end: float) -> list[int]:
        found: set[int] = set()
        for b in range(math.floor(start / _BUCKET_NS), math.floor(end / _BUCKET_NS) + 1):
            for number in self.buckets.get(b, ()):
                s, e = self.spans[number][:2]
                if s < end and e > start:
                    found.add(number)
        return sorted(found)


def _kind_of(ins: Instruction) -> str:
    kind = ins.kind
    if kind is OpKind.GATE:
        return "gate2" if len(ins.targets) == 2 else "gate1"
    return kind.value


def schedule(job: Job, geometries: Sequence[Geometry | None]) -> Timeline:
    """The timeline of a validated ``job`` (``geometries``: :func:`validate_program`'s)."""
    hw = job.hardware
    timing = hw.timing
    n = job.n_atoms
    ready = [0.0] * n
    cool = [0.0] * n
    barrier = 0.0
    usage = _Usage()
    caps = {
        "gate1": timing.max_parallel_single_qubit,
        "gate2": timing.max_parallel_two_qubit,
        "pulse": hw.pulse.max_overlapping_pulses,
    }
    zone_cap = timing.max_parallel_per_zone
    radius = max([hw.blockade.radius, *(r for _, r in hw.blockade.zone_overrides)])
    entries: list[Entry] = []
    inserted: list[Entry] = []
    batch_start: float | None = None
    batch_end = 0.0
    for ins, geo in zip(job.program, geometries, strict=True):
        kind = ins.kind
        if kind is not OpKind.MOVE:
            batch_start = None
        if kind is OpKind.ALLOC:
            entries.append(_entry(ins, 0.0, 0.0))
            continue
        if kind in (OpKind.WAIT, OpKind.EVOLVE):
            # A barrier: every atom idles (Wait) or is driven (Evolve) for the duration.
            start = max([barrier, *ready])
            end = start + ins.duration
            ready = [end] * n
            barrier = end
            entries.append(_entry(ins, start, ins.duration))
            continue
        if kind is OpKind.MOVE:
            assert geo is not None
            plan = move_plan(geo, ins)
            if batch_start is None:
                batch_start = max([barrier, *ready])
                batch_end = batch_start
            end = batch_start + plan.duration_ns
            batch_end = max(batch_end, end)
            ready = [batch_end] * n
            barrier = batch_end
            entries.append(_entry(ins, batch_start, plan.duration_ns))
            continue
        atoms = ins.atoms
        if kind is OpKind.GATE:
            duration = hw.gate_duration_ns(ins.gate)
        elif kind is OpKind.MEASURE:
            duration = timing.measurement_duration_ns
        elif kind is OpKind.RESET:
            duration = timing.reset_duration_ns
        else:
            duration = ins.duration
        natural = max([barrier, *(ready[a] for a in atoms)])
        cooled = max(cool[a] for a in atoms)
        start = max(natural, cooled)
        delay_atom = max(atoms, key=lambda a: cool[a]) if cooled > natural else None
        zones = tuple(geo.zone(a) for a in atoms) if geo is not None else ()
        op_kind = _kind_of(ins)
        start = _earliest(
            usage, start, duration, op_kind, atoms, zones, caps, zone_cap, radius, geo
        )
        end = start + duration
        if delay_atom is not None:
            inserted.append(
                Entry(
                    index=-1,
                    op="Wait",
                    detail=f"cooldown of atom {delay_atom} after its measurement",
                    start_ns=max(natural, ready[delay_atom]),
                    duration_ns=cooled - max(natural, ready[delay_atom]),
                    atoms=(delay_atom,),
                    inserted=True,
                )
            )
        usage.add(start, end, op_kind, atoms, zones)
        for a in atoms:
            ready[a] = end
            if kind is OpKind.MEASURE:
                cool[a] = end + timing.measurement_cooldown_ns
        entries.append(
            _entry(
                ins,
                start,
                duration,
                delay=cooled - natural if delay_atom is not None else 0.0,
                delay_atom=delay_atom,
            )
        )
    total = max([0.0, *(e.end_ns for e in entries)])
    return Timeline(entries=tuple(entries), inserted=tuple(inserted), total_ns=total)


def _entry(
    ins: Instruction,
    start: float,
    duration: float,
    *,
    delay: float = 0.0,
    delay_atom: int | None = None,
) -> Entry:
    return Entry(
        index=ins.index,
        op=ins.op,
        detail=ins.describe(),
        start_ns=start,
        duration_ns=duration,
        atoms=ins.atoms,
        cooldown_delay_ns=delay,
        cooldown_atom=delay_atom,
    )


def _earliest(
    usage: _Usage,
    start: float,
    duration: float,
    kind: str,
    atoms: tuple[int, ...],
    zones: tuple[int | None, ...],
    caps: dict[str, int],
    zone_cap: int,
    radius: float,
    geo: Geometry | None,
) -> float:
    """The earliest time from ``start`` at which the operation fits every cap."""
    cap = caps.get(kind, 0)
    crosstalk = kind == "gate2" and radius > 0 and geo is not None
    counted = kind in ("gate1", "gate2", "pulse", "reset")
    if not (cap or (zone_cap and counted) or crosstalk):
        return start
    while True:
        blockers: list[float] = []
        spans = [usage.spans[i] for i in usage.overlapping(start, start + max(duration, 1e-9))]
        same = [s for s in spans if s[2] == kind]
        if cap and len(same) >= cap:
            blockers += [s[1] for s in same]
        if zone_cap and counted:
            for zone in {z for z in zones if z is not None}:
                in_zone = [
                    s
                    for s in spans
                    if s[2] in ("gate1", "gate2", "pulse", "reset") and zone in s[4]
                ]
                if len(in_zone) >= zone_cap:
                    blockers += [s[1] for s in in_zone]
        if crosstalk:
            assert geo is not None
            for s in same:
                if any(geo.distance(a, b) <= radius for a in atoms for b in s[3]):
                    blockers.append(s[1])
        if not blockers:
            return start
        start = max(start, min(blockers))


__all__ = ["Entry", "Timeline", "schedule"]
