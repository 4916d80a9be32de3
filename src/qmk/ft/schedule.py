"""Lattice surgery scheduled on a layout: each PPM's duration, its routing, and the
magic states it waits for.

The model (``docs/ft-execution.md``):

- Time runs in ticks; one tick is ``d`` code cycles, one logical cycle (Litinski).
- A multi-patch PPM (and a pi/8 rotation: ``P x Z`` measured with the magic state)
  takes the block's ticks. That is 1 in the fast block. In the intermediate and compact
  blocks it is 1 when every factor is Z, else Litinski's bound for patches that show
  only one boundary (5 and 9 ticks: patch rotations there and back around the
  measurement).
  A single-patch X or Z measurement takes 0 ticks and no routing.
- The block's routing region is one bus: one multi-patch PPM at a time. An op whose
  inputs are ready but finds the bus busy waits; those ticks are ``routing_stalls``.
- An arbitrary-angle rotation stands for the synthesised Clifford+T sequence the
  estimator prices: ``numTsPerRotation`` T states, each taken in turn, each taking a
  rotation's ticks (the block's X-or-Y cost, as the sequence's axes alternate).
- The factories (the estimator's copies, duration and states per run) start at tick 0
  and run back to back; a run delivers its states at its end into an unbounded store.
  A rotation takes the next state; the ticks it waits for one beyond its other waits
  are ``factory_wait_cycles``.
- A classically controlled op waits for the events it reads; it keeps its slot whether or
  not its condition holds (the schedule is static). A controlled Pauli or Clifford takes 0
  ticks and no routing; a controlled Clifford changes the Paulis of every later op in the
  shots that apply it, so it starts after every earlier op and before every later one.
  (Ticks of those later ops are their static Paulis': exact in the fast block, where every
  PPM takes one tick; in the other blocks a shot's conjugated Pauli may differ in its X or
  Y factors.)
- Ops issue in program order (a topological order of the anticommutation graph: an
  op waits for every earlier op it anticommutes with). A later op never overtakes an
  earlier one on the bus, but a 0-tick measurement runs as soon as its inputs are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qmk.ft.layout import Layout
    from qmk.ft.lower import Lowered, PauliOp
    from qmk.ft.model import Factory, FTModel

#: Ticks of a pi/8 rotation or PPM with an X or Y factor, by block (Litinski, Sec. 3).
NON_Z_TICKS = {"compact": 9, "intermediate": 5, "fast": 1}


def ticks(block: str, op: PauliOp) -> int:
    """The ticks ``op`` takes in ``block`` (the module's table)."""
    if op.kind in ("pauli", "frame"):
        return 0
    if op.kind == "measure" and len(op.support) == 1 and op.pauli[1:].strip("_") in "XZ":
        return 0
    return 1 if op.z_only else NON_Z_TICKS[block]


@dataclass(frozen=True, slots=True, kw_only=True)
class Scheduled:
    """One op's place in time: ``start`` to ``end`` ticks."""

    index: int
    start: int
    end: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """The schedule and its figures (the telemetry of a lattice-surgery run).

    Attributes:
        slots: each op's ticks, in program order.
        order: op indices in execution order (by start, then program order).
        logical_cycles: the last op's end (ticks = logical cycles).
        runtime_ns: ``logical_cycles`` times the model's logical cycle time.
        factory_wait_cycles, routing_stalls: ticks waited (module docstring).
        ppm_count: PPMs executed (rotations and measurements).
        magic_states_consumed: pi/8 rotations (one state each).
        physical_qubits: the layout's, factories included.
    """

    slots: tuple[Scheduled, ...]
    order: tuple[int, ...]
    logical_cycles: int
    runtime_ns: int
    factory_wait_cycles: int
    routing_stalls: int
    ppm_count: int
    magic_states_consumed: int
    physical_qubits: int
    block: str
    code_distance: int
    cycle_time_ns: int

    def to_json(self) -> dict[str, Any]:
        return {
            "ppm_count": self.ppm_count,
            "magic_states_consumed": self.magic_states_consumed,
            "logical_cycles": self.logical_cycles,
            "code_cycles": self.logical_cycles * self.code_distance,
            "runtime_ns": self.runtime_ns,
            "factory_wait_cycles": self.factory_wait_cycles,
            "routing_stalls": self.routing_stalls,
            "physical_qubits": self.physical_qubits,
            "block": self.block,
            "code_distance": self.code_distance,
            "cycle_time_ns": self.cycle_time_ns,
        }


class _Supply:
    """When the k-th magic state is ready: the factories' runs, back to back."""

    def __init__(self, factory: Factory | None) -> None:
        self.factory = factory
        self.taken = 0

    def next(self) -> int:
        f = self.factory
        assert f is not None  # a program with rotations has a factory (the estimator's)
        per_round = max(1, f.copies * f.states_per_run)
        ready = f.duration_cycles * (self.taken // per_round + 1)
        self.taken += 1
        return ready


def _masks(op: PauliOp) -> tuple[int, int]:
    """The Pauli's X and Z parts as bit masks (Y has both)."""
    x = z = 0
    for i, c in enumerate(op.pauli[1:]):
        if c in "XY":
            x |= 1 << i
        if c in "ZY":
            z |= 1 << i
    return x, z


class _Ready:
    """When an op's inputs are ready: the end of the last earlier op it anticommutes with.

    Bus ops end in issue order (each starts after the one before ends), so the latest
    anticommuting bus op, found scanning back, has the latest end among them; 0-tick ops
    (single-patch measurements) are checked one by one.
    """

    def __init__(self) -> None:
        self.bus: list[tuple[int, int, int]] = []  # (x, z, end) of each bus op, in order
        self.free: list[tuple[int, int, int]] = []  # the same for 0-tick ops

    def of(self, x: int, z: int) -> int:
        ready = 0
        for bx, bz, end in reversed(self.bus):
            if ((x & bz) ^ (z & bx)).bit_count() & 1:
                ready = end
                break
        for fx, fz, end in self.free:
            if end > ready and ((x & fz) ^ (z & fx)).bit_count() & 1:
                ready = end
        return ready

    def add(self, x: int, z: int, end: int, on_bus: bool) -> None:
        (self.bus if on_bus else self.free).append((x, z, end))


def _synth_states(model: FTModel, op: PauliOp) -> int:
    """T states of one arbitrary-angle rotation: the estimator's ``numTsPerRotation``."""
    from qmk.ft.errors import FTError

    if model.ts_per_rotation is None:
        raise FTError.of(
            "rotation-unpriced",
            f"node {op.node}: a rotation by {2 * op.angle:g} needs a synthesised sequence, "
            "and the estimate gives no numTsPerRotation to price it",
            node=op.node,
        )
    return model.ts_per_rotation


class _Bus:
    """The routing bus and the factories: when an op on the bus starts and ends, with the
    ticks it waited for a state (``waits``) or for the bus (``stalls``)."""

    def __init__(self, block: str, model: FTModel) -> None:
        self.block = block
        self.model = model
        self.supply = _Supply(model.factory)
        self.free_at = 0
        self.waits = 0
        self.stalls = 0

    def place(self, op: PauliOp, ready: int) -> tuple[int, int]:
        length = ticks(self.block, op)
        states = _synth_states(self.model, op) if op.kind == "synth" else int(op.needs_magic_state)
        if op.kind == "synth":  # the sequence's T gates, one after another, of any axis
            length = NON_Z_TICKS[self.block]
        magic = self.supply.next() if states else 0
        if length == 0:
            return max(ready, magic), max(ready, magic)
        start = max(ready, magic, self.free_at)
        self.waits += max(0, magic - max(ready, self.free_at))
        self.stalls += max(0, self.free_at - max(ready, magic))
        end = start + length
        for _ in range(states - 1):  # a synthesised sequence's further T states
            magic = self.supply.next()
            self.waits += max(0, magic - end)
            end = max(end, magic) + length
        self.free_at = end
        return start, end


def schedule(lowered: Lowered, layout: Layout, model: FTModel) -> Schedule:
    """Schedule ``lowered`` on ``layout`` with ``model``'s factories (module docstring).

    Raises:
        FTError: ``QP102`` an arbitrary-angle rotation the estimate gives no price for.
    """
    inputs = _Ready()
    produced: dict[str, int] = {}  # when each event is known
    bus = _Bus(layout.block, model)
    floor = latest = 0  # a frame op's start (later ops start no sooner); the latest start
    slots: list[Scheduled] = []
    magic = 0
    ppms = lowered.ppm_count
    for i, op in enumerate(lowered.ops):
        x, z = _masks(op)
        ready = max((inputs.of(x, z), floor, *(produced.get(e, 0) for e in op.reads)))
        if op.kind == "frame":  # after every earlier op, before every later one
            ready = floor = max(ready, latest)
        start, end = bus.place(op, ready)
        if op.kind == "synth":  # its sequence: a P x Z with a state per T gate
            magic += _synth_states(model, op)
            ppms += _synth_states(model, op)
        elif op.needs_magic_state:
            magic += 1
        latest = max(latest, start)
        slots.append(Scheduled(index=i, start=start, end=end))
        inputs.add(x, z, end, end > start)
        if op.event is not None:
            produced[op.event] = end
    last = max((s.end for s in slots), default=0)
    order = tuple(s.index for s in sorted(slots, key=lambda s: (s.start, s.index)))
    return Schedule(
        slots=tuple(slots),
        order=order,
        logical_cycles=last,
        runtime_ns=last * model.cycle_time_ns,
        factory_wait_cycles=bus.waits,
        routing_stalls=bus.stalls,
        ppm_count=ppms,
        magic_states_consumed=magic,
        physical_qubits=layout.physical_qubits,
        block=layout.block,
        code_distance=model.distance,
        cycle_time_ns=model.cycle_time_ns,
    )
