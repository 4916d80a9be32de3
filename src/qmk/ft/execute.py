"""A lattice-surgery schedule executed on an engine, shot by shot.

Each op of the schedule, in its execution order, is carried out on the engine's qubits
(one per data patch) as what the machine does:

- a Pauli product measurement (PPM) of ``P``: the engine measures ``P`` (each factor
  turned to Z, the parity gathered on one qubit by CNOTs, measured, and the basis
  change undone: a projective measurement of ``P``, nothing else);
- a pi/8 rotation ``exp(-i s pi/8 P)``: magic-state injection (Litinski Fig. 11(b)):
  a fresh ancilla patch in ``|m> = T|+>`` (``T^dag|+>`` for ``s = -1``), delivered by a
  factory; the PPM ``P x Z_m``; the ancilla measured in X; then the Clifford correction
  by the outcomes: ``exp(-i s pi/4 P)`` when ``P x Z`` gave -1, ``P`` when X gave -1.
  On the machine the pi/4 correction is the auto-corrected rotation's extra single-patch
  measurements (Fig. 17(b)), which take no tick; here the engine applies it as a
  Clifford rotation.

Noise (``noise=True``): before each op, every data patch has had a logical Pauli error
with probability ``1 - (1 - p_L)^ticks`` over the ticks since the last op (``p_L`` the
model's logical error rate per patch and logical cycle: X, Y or Z equally likely), and a
magic state arrives with a Z error with the factory's output error rate. With noise off
the outcome distribution is the program's exactly.

The engine is the statevector engine when the program has a pi/8 rotation, the
stabilizer engine when it has none (or the one the caller names, refused with
``QP105`` where it cannot run the ops).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qmk.engines.gates import TO_Z
from qmk.ft.errors import FTError

if TYPE_CHECKING:
    from qmk.ft.layout import Layout
    from qmk.ft.lower import Lowered, PauliOp
    from qmk.ft.model import FTModel
    from qmk.ft.schedule import Schedule
    from qmk.qvm.verify import VerifiedProgram

#: Engines a lattice-surgery run may use: they apply the gates of a PPM and an injection.
ENGINES = ("statevector", "stabilizer")


@dataclass(frozen=True, slots=True, kw_only=True)
class LSResult:
    """What a lattice-surgery run gives: counts keyed as ``qmk run`` keys them, the
    schedule's figures, and what was executed."""

    counts: dict[str, int]
    shots: int
    seed: int
    engine: str
    noise: bool
    schedule: Schedule
    lowered: Lowered
    layout: Layout
    model: FTModel
    injected_logical_errors: int
    magic_states_executed: int
    ppms_executed: int
    wall_time_s: float

    def telemetry(self) -> dict[str, Any]:
        return {
            **self.schedule.to_json(),
            "profile": self.model.profile,
            "qubit_params": self.model.qubit,
            "logical_error_rate": self.model.logical_error_rate,
            "injected_logical_errors": self.injected_logical_errors,
            "wall_time_s": self.wall_time_s,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": dict(sorted(self.counts.items())),
            "shots": self.shots,
            "seed": self.seed,
            "engine": self.engine,
            "noise": self.noise,
            "mode": "lattice-surgery",
            "telemetry": self.telemetry(),
            "layout": self.layout.to_json(),
            "schedule": [
                {"op": str(self.lowered.ops[i]), "start": slot.start, "end": slot.end}
                for i in self.schedule.order
                for slot in (self.schedule.slots[i],)
            ],
        }


def _factors(pauli: str, data: list[int]) -> list[tuple[int, str]]:
    return [(data[i], c) for i, c in enumerate(pauli[1:]) if c != "_"]


def _to_z(engine: Any, factors: list[tuple[int, str]]) -> None:
    for q, c in factors:
        for gate in TO_Z[c]:
            engine.apply(gate, [q])


def _from_z(engine: Any, factors: list[tuple[int, str]]) -> None:
    for q, c in reversed(factors):
        for gate in reversed(TO_Z[c]):
            engine.apply({"h": "h", "sdg": "s"}[gate], [q])


def _ladder(engine: Any, qubits: list[int]) -> None:
    for q in qubits[:-1]:
        engine.apply("cx", [q, qubits[-1]])


def measure_pauli(engine: Any, factors: list[tuple[int, str]], negative: bool) -> int:
    """Measure the Pauli product ``factors`` (negated when ``negative``): 0 for +1."""
    qubits = [q for q, _ in factors]
    _to_z(engine, factors)
    _ladder(engine, qubits)
    bit = int(engine.measure(qubits[-1]))
    _ladder(engine, qubits)  # the CNOTs commute: the same ladder undoes them
    _from_z(engine, factors)
    return bit ^ int(negative)


def quarter_turn(engine: Any, factors: list[tuple[int, str]], sign: int) -> None:
    """``exp(-i sign pi/4 P)`` for the unsigned product ``factors`` (a Clifford)."""
    qubits = [q for q, _ in factors]
    _to_z(engine, factors)
    _ladder(engine, qubits)
    engine.apply("s" if sign > 0 else "sdg", [qubits[-1]])
    _ladder(engine, qubits)
    _from_z(engine, factors)


def _pauli(engine: Any, factors: list[tuple[int, str]]) -> None:
    for q, c in factors:
        engine.apply(c.lower(), [q])


class _Shot:
    """One shot's execution of the schedule."""

    def __init__(
        self, engine: Any, lowered: Lowered, sched: Schedule, model: FTModel, noise: bool
    ) -> None:
        self.engine = engine
        self.lowered = lowered
        self.sched = sched
        self.model = model
        self.noise = noise
        self.errors = 0
        self.magic = 0
        self.ppms = 0

    def inject(self, op: PauliOp, pauli: str, data: list[int]) -> None:
        engine = self.engine
        factors = _factors(pauli, data)
        negative = pauli[0] == "-"
        sign = op.sign * (-1 if negative else 1)  # exp(-i s pi/8 P) with P unsigned
        anc = engine.allocate()
        engine.apply("h", [anc])
        engine.apply("t" if sign > 0 else "tdg", [anc])
        factory = self.model.factory
        if (
            self.noise
            and factory is not None
            and engine.apply_pauli_channel(anc, 0.0, 0.0, factory.output_error_rate) != "I"
        ):
            self.errors += 1
        self.magic += 1
        joint = measure_pauli(engine, [*factors, (anc, "Z")], False)
        self.ppms += 1
        flip = int(engine.measure(anc, "X"))
        engine.free(anc)
        if joint:
            quarter_turn(engine, factors, sign)
        if flip:
            _pauli(engine, factors)

    def synth(self, op: PauliOp, pauli: str, data: list[int]) -> None:
        """An arbitrary-angle rotation, applied as the exact rotation its synthesised
        sequence approximates (the sequence's own error, within the estimator's rotation
        budget, is not simulated); its T states are counted as the schedule charges."""
        factors = _factors(pauli, data)
        qubits = [q for q, _ in factors]
        angle = op.angle * (-1 if pauli[0] == "-" else 1)
        _to_z(self.engine, factors)
        _ladder(self.engine, qubits)
        self.engine.apply("rz", [qubits[-1]], [2 * angle])
        _ladder(self.engine, qubits)
        _from_z(self.engine, factors)
        self.magic += self.model.ts_per_rotation or 0
        self.ppms += self.model.ts_per_rotation or 0

    def idle(self, data: list[int], ticks: int) -> None:
        p_l = self.model.logical_error_rate
        p = 1.0 - (1.0 - p_l) ** ticks
        for q in data:
            if self.engine.apply_pauli_channel(q, p / 3, p / 3, p / 3) != "I":
                self.errors += 1

    def run(self) -> str:
        import stim

        engine = self.engine
        data = [engine.allocate() for _ in self.lowered.qubits]
        outcomes: dict[str, int] = {}
        frame: Any = None  # P -> W^dag P W for the controlled Cliffords W this shot applied
        now = 0
        for index in self.sched.order:
            op = self.lowered.ops[index]
            start = self.sched.slots[index].start
            if self.noise and start > now:
                self.idle(data, start - now)
            now = max(now, start)
            if not op.holds(outcomes):
                continue  # a controlled op whose condition fails: its slot stays idle
            if op.kind == "frame":
                frame = op.frame if frame is None else op.frame.then(frame)
                continue
            pauli = op.pauli if frame is None else str(frame(stim.PauliString(op.pauli)))
            if op.kind == "rotation":
                self.inject(op, pauli, data)
            elif op.kind == "synth":
                self.synth(op, pauli, data)
            elif op.kind == "pauli":
                _pauli(engine, _factors(pauli, data))
            else:
                assert op.event is not None
                factors = _factors(pauli, data)
                outcomes[op.event] = measure_pauli(engine, factors, pauli[0] == "-")
                self.ppms += 1
        for q in data:
            engine.free(q)
        return "".join(str(outcomes.get(e, 0)) for e in self.lowered.events)


def _engine(name: str | None, lowered: Lowered, seed: int) -> tuple[str, Any]:
    from qmk.engines.registry import load

    non_clifford = lowered.t_count + lowered.rotation_count
    if name is None:
        name = "statevector" if non_clifford else "stabilizer"
    if name not in ENGINES:
        raise FTError.of(
            "option-unsupported",
            f"--engine {name}: a lattice-surgery run executes PPMs and magic-state injection "
            f"on {' or '.join(ENGINES)}",
            engine=name,
        )
    if name == "stabilizer" and non_clifford:
        raise FTError.of(
            "option-unsupported",
            f"--engine stabilizer: the program has {non_clifford} non-Clifford rotations (T "
            "states are not stabilizer states); use statevector",
            engine=name,
        )
    return name, load(name)(seed=seed)


def run_lattice_surgery(
    program: VerifiedProgram,
    model: FTModel,
    *,
    block: str = "fast",
    shots: int,
    seed: int,
    noise: bool,
    engine: str | None = None,
) -> LSResult:
    """Lower ``program``, lay it out in ``block``, schedule it and execute the schedule
    ``shots`` times (module docstring).

    Raises:
        FTError: ``QP101``-``QP105`` (the lowering's refusals, an engine that cannot run it).
    """
    from qmk.ft.layout import layout_for
    from qmk.ft.lower import lower
    from qmk.ft.schedule import schedule
    from qmk.qvm.output import layout_of

    began = time.perf_counter()
    lowered = lower(program)
    layout = layout_for(model, block, lowered.qubits[: lowered.data_qubits])
    sched = schedule(lowered, layout, model)
    name, eng = _engine(engine, lowered, seed)
    keys = layout_of(program.graph.metadata, lowered.events)
    counts: Counter[str] = Counter()
    errors = magic = ppms = 0
    for _ in range(shots):
        shot = _Shot(eng, lowered, sched, model, noise)
        outcome = shot.run()
        counts[keys.key(outcome) if keys is not None else outcome] += 1
        errors += shot.errors
        magic += shot.magic
        ppms += shot.ppms
    return LSResult(
        counts=dict(counts),
        shots=shots,
        seed=seed,
        engine=name,
        noise=noise,
        schedule=sched,
        lowered=lowered,
        layout=layout,
        model=model,
        injected_logical_errors=errors,
        magic_states_executed=magic,
        ppms_executed=ppms,
        wall_time_s=time.perf_counter() - began,
    )
