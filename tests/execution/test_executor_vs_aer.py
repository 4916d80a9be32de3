"""The executor against Qiskit on random circuits.

A seeded generator builds each circuit once in a small intermediate form, which is
written out both as QVM assembly (run by QMK with ``noise=False``) and as a Qiskit
``QuantumCircuit`` (guards as ``if_test`` blocks, clbit ``k`` = event ``k``; Qiskit
count keys put clbit 0 rightmost, QMK outcome strings put event 0 leftmost).

Families (``FAMILIES``):

- ``terminal`` / ``terminal-clifford``: gates on 2-10 qubits (Clifford, T, TDG, RX/RY/RZ
  at random angles, CX/CZ/SWAP/TELEPORT_CNOT, CCX/CCZ), then measurements in Z, X, Y or
  at an angle, interleaved with gates on not-yet-measured qubits and with gates on
  measured qubits only (which cannot change the result).
- ``dynamic`` / ``dynamic-clifford`` / ``dynamic-clifford-linear``: 2-7 qubits with
  mid-circuit measurements (Z, X, Y, angle, MEASURE_BELL), RESET, free-and-allocate-again,
  INJECT_T_STATE, OPEN_CHAN (Werner pairs of random fidelity), gates guarded on earlier
  events (one term or a conjunction, also guarded measurements) and COND_PAULI, then a
  measurement of every qubit. The ``-linear`` family keeps its feed-forward linear
  (COND_PAULI, Paulis guarded by one event) so that QMK runs it in stim-batch mode.

References: every circuit's exact outcome distribution, from
``qiskit.quantum_info.Statevector`` (terminal circuits) or from ``DensityMatrix``
branches, one per sequence of mid-circuit outcomes (dynamic circuits). Aer
(``AerSimulator(method="statevector")``) runs the Qiskit circuits of a subset: its
samples must fit the same exact distribution (which checks the writer and the
branching reference) and QMK's samples (a direct two-sample comparison).

Statistics (``SHOTS`` shots per side, fixed seeds, so every run is reproducible):

- against exact probabilities: an outcome of probability 0 never appears; a chi-square
  goodness-of-fit test (cells pooled to expected count >= 5) gives p > ``P_MIN``; and the
  total variation distance (TVD) between the counts and the exact distribution is below
  ``0.5 * sum_i sqrt(p_i (1 - p_i) / N) + sqrt(ln(1/DELTA) / (2 N))``: the first term bounds
  E[TVD] (Jensen: E|p^_i - p_i| <= sd), the second is McDiarmid's deviation (one shot
  moves the TVD by at most 1/N), so a correct executor exceeds it with probability
  <= DELTA.
- two samples (QMK, Aer): a chi-square test of homogeneity on the 2 x k table (cells
  pooled to a combined count >= 20) gives p > ``P_MIN``; and TVD(QMK, Aer) is below
  ``1.25 * 0.5 * sum_i sqrt(2 p^_i (1 - p^_i) / N) + sqrt(ln(1/DELTA) / N)``, with p^ the
  pooled frequencies (E|a^_i - b^_i| <= sqrt(2 p_i (1 - p_i) / N); McDiarmid over the
  2N shots; the 1.25 covers the plug-in estimate of p).

With ~250 checks at P_MIN = 1e-6, a correct executor fails one with probability ~3e-4;
a wrong gate, basis, guard or event order moves whole outcomes and fails by orders of
magnitude.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit.library import (
    CCXGate,
    CCZGate,
    CXGate,
    CZGate,
    HGate,
    RXGate,
    RYGate,
    RZGate,
    SdgGate,
    SGate,
    SwapGate,
    TdgGate,
    TGate,
    XGate,
    YGate,
    ZGate,
)
from qiskit.quantum_info import DensityMatrix, Operator, Pauli, Statevector
from qiskit_aer import AerSimulator
from qiskit_aer.noise import pauli_error
from scipy import stats

import qmk
from qmk.qvm.asm import assemble

MASTER_SEED = 73_102_024
SHOTS = 4000
P_MIN = 1e-6
DELTA = 1e-9
#: Exact probabilities below this are impossible outcomes.
ZERO = 1e-12
PI = math.pi

# -- the intermediate form ------------------------------------------------------------

#: A guard: (event, value) terms, all of which must hold; () for none.
GuardTerms = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Gate:
    name: str
    qubits: tuple[int, ...]
    params: tuple[float, ...] = ()
    guard: GuardTerms = ()


@dataclass(frozen=True)
class Measure:
    #: "Z", "X", "Y", or a float: MEASURE_ANGLE at that angle.
    basis: str | float
    qubit: int
    event: int
    guard: GuardTerms = ()


@dataclass(frozen=True)
class Reset:
    qubit: int


@dataclass(frozen=True)
class Realloc:
    """FREE_LQ then ALLOC_LQ of the same handle: a fresh |0>."""

    qubit: int


@dataclass(frozen=True)
class CondPauli:
    pauli: str
    qubit: int
    inputs: tuple[int, ...]


@dataclass(frozen=True)
class Bell:
    """MEASURE_BELL: the XX parity into ``xx``, then the ZZ parity into ``zz``."""

    a: int
    b: int
    xx: int
    zz: int


@dataclass(frozen=True)
class InjectT:
    """INJECT_T_STATE: the qubit becomes T|+>, whatever it held."""

    qubit: int


@dataclass(frozen=True)
class OpenChan:
    """OPEN_CHAN: a and b become |Phi+>, then X, Y or Z on b each w.p. (1 - fidelity)/3."""

    a: int
    b: int
    fidelity: float


Op = Gate | Measure | Reset | Realloc | CondPauli | Bell | InjectT | OpenChan


@dataclass(frozen=True)
class Circuit:
    index: int
    family: str
    n: int
    ops: tuple[Op, ...]
    events: int

    @property
    def id(self) -> str:
        return f"{self.family}-{self.index:03d}-n{self.n}-ev{self.events}"

    @property
    def clifford(self) -> bool:
        """No T, TDG, CCX or CCZ, and every angle a multiple of pi/2 (a family that may use
        them can still draw none)."""
        for op in self.ops:
            if isinstance(op, Gate) and (
                op.name in ("t", "tdg", *THREE) or not all(_quarter(p) for p in op.params)
            ):
                return False
            if isinstance(op, Measure) and not isinstance(op.basis, str) and not _quarter(op.basis):
                return False
            if isinstance(op, InjectT):
                return False
        return True

    @property
    def terminal(self) -> bool:
        return self.family.startswith("terminal")

    @property
    def linear_feed_forward(self) -> bool:
        """Only COND_PAULI and Pauli gates guarded by one event read events."""
        for op in self.ops:
            if isinstance(op, Measure) and op.guard:
                return False
            if isinstance(op, Gate) and op.guard and (op.name not in PAULIS or len(op.guard) != 1):
                return False
        return True


def _quarter(angle: float) -> bool:
    turns = angle / (PI / 2)
    return abs(turns - round(turns)) < 1e-9


# -- the generator --------------------------------------------------------------------

ONE_CLIFFORD = ("h", "s", "sdg", "x", "y", "z")
ROTATIONS = ("rx", "ry", "rz")
TWO = ("cx", "cz", "swap", "tcx")
THREE = ("ccx", "ccz")
PAULIS = ("x", "y", "z")


def quarter_turn(rng: np.random.Generator) -> float:
    return int(rng.integers(-5, 6)) * PI / 2


def random_angle(rng: np.random.Generator, clifford: bool) -> float:
    if clifford or rng.random() < 0.1:
        return quarter_turn(rng)
    return float(rng.uniform(-2 * PI, 2 * PI))


def random_gate(
    rng: np.random.Generator, qubits: Sequence[int], clifford: bool, guard: GuardTerms = ()
) -> Gate | None:
    """A random gate on some of ``qubits`` (None if none fits)."""
    if not qubits:
        return None
    names: list[tuple[str, float]] = [(g, 0.4 / 6) for g in ONE_CLIFFORD]
    names += [(g, 0.2 / 3) for g in ROTATIONS]
    if len(qubits) >= 2:
        names += [(g, 0.3 / 3) for g in TWO[:3]]
        names += [("tcx", 0.03)]  # TELEPORT_CNOT
    if not clifford:
        names += [("t", 0.08), ("tdg", 0.06)]
        if len(qubits) >= 3:
            names += [("ccx", 0.07), ("ccz", 0.03)]
    weights = np.array([w for _, w in names])
    name = names[int(rng.choice(len(names), p=weights / weights.sum()))][0]
    arity = 3 if name in THREE else 2 if name in TWO else 1
    chosen = tuple(int(q) for q in rng.choice(qubits, size=arity, replace=False))
    params = (random_angle(rng, clifford),) if name in ROTATIONS else ()
    return Gate(name, chosen, params, guard)


def random_basis(rng: np.random.Generator, clifford: bool) -> str | float:
    r = rng.random()
    if r < 0.55:
        return "Z"
    if r < 0.7:
        return "X"
    if r < 0.85:
        return "Y"
    return random_angle(rng, clifford)


def terminal_circuit(index: int, family: str, rng: np.random.Generator) -> Circuit:
    clifford = family == "terminal-clifford"
    n = int(rng.integers(2, 11))
    ops: list[Op] = []
    for _ in range(int(rng.integers(2 * n, 5 * n + 1))):
        ops.append(random_gate(rng, range(n), clifford))  # type: ignore[arg-type]
    count = n if rng.random() < 0.7 else int(rng.integers(1, n + 1))
    order = [int(q) for q in rng.permutation(n)[:count]]
    measured: list[int] = []
    for event, q in enumerate(order):
        if rng.random() < 0.3:
            # A gate after some measurements that keeps away from measured qubits, or one
            # on measured qubits only (unobservable).
            unmeasured = [p for p in range(n) if p not in measured]
            pool = measured if measured and rng.random() < 0.4 else unmeasured
            gate = random_gate(rng, pool, clifford)
            if gate is not None:
                ops.append(gate)
        ops.append(Measure(random_basis(rng, clifford), q, event))
        measured.append(q)
    return Circuit(index, family, n, tuple(ops), len(order))


def random_guard(rng: np.random.Generator, events: int, terms: int) -> GuardTerms:
    chosen = rng.choice(events, size=min(terms, events), replace=False)
    return tuple((int(e), int(rng.integers(2))) for e in chosen)


def dynamic_circuit(index: int, family: str, rng: np.random.Generator) -> Circuit:
    clifford = family != "dynamic"
    linear = family == "dynamic-clifford-linear"
    n = int(rng.integers(2, 8))
    while True:
        ops: list[Op] = []
        events = mids = 0
        for _ in range(int(rng.integers(3 * n, 6 * n + 1))):
            r = rng.random()
            if r < 0.55:
                guard: GuardTerms = ()
                if events and rng.random() < 0.3:
                    if linear:
                        q = int(rng.integers(n))
                        name = PAULIS[int(rng.integers(3))]
                        ops.append(Gate(name, (q,), (), random_guard(rng, events, 1)))
                        continue
                    guard = random_guard(rng, events, 1 if rng.random() < 0.65 else 2)
                ops.append(random_gate(rng, range(n), clifford, guard))  # type: ignore[arg-type]
            elif r < 0.69 and mids < 5:
                guard = ()
                if events and not linear and rng.random() < 0.15:
                    guard = random_guard(rng, events, 1)
                q = int(rng.integers(n))
                ops.append(Measure(random_basis(rng, clifford), q, events, guard))
                events += 1
                mids += 1
            elif r < 0.75:
                ops.append(Reset(int(rng.integers(n))))
            elif r < 0.79:
                ops.append(Realloc(int(rng.integers(n))))
            elif r < 0.83 and mids < 5:
                a, b = (int(q) for q in rng.choice(n, size=2, replace=False))
                ops.append(Bell(a, b, events, events + 1))
                events += 2
                mids += 1
            elif r < 0.86 and not clifford:
                ops.append(InjectT(int(rng.integers(n))))
            elif r < 0.89:
                a, b = (int(q) for q in rng.choice(n, size=2, replace=False))
                fidelity = 1.0 if rng.random() < 0.3 else float(rng.uniform(0.3, 1.0))
                ops.append(OpenChan(a, b, fidelity))
            elif events:
                k = int(rng.integers(1, min(3, events) + 1))
                inputs = tuple(int(e) for e in rng.choice(events, size=k, replace=False))
                pauli = "XYZI"[int(rng.choice(4, p=[0.3, 0.3, 0.3, 0.1]))]
                ops.append(CondPauli(pauli, int(rng.integers(n)), inputs))
        if mids:
            break
    for q in (int(q) for q in rng.permutation(n)):
        ops.append(Measure("Z" if rng.random() < 0.7 else random_basis(rng, clifford), q, events))
        events += 1
    return Circuit(index, family, n, tuple(ops), events)


FAMILIES = {
    "terminal": 100,
    "terminal-clifford": 30,
    "dynamic": 50,
    "dynamic-clifford": 25,
    "dynamic-clifford-linear": 25,
}


def corpus() -> list[Circuit]:
    circuits = []
    index = 0
    for family, count in FAMILIES.items():
        make = terminal_circuit if family.startswith("terminal") else dynamic_circuit
        for _ in range(count):
            rng = np.random.default_rng([MASTER_SEED, index])
            circuits.append(make(index, family, rng))
            index += 1
    return circuits


CIRCUITS = corpus()


# -- writers --------------------------------------------------------------------------

_QVM_GATE = {"cx": "APPLY_CNOT", "tcx": "TELEPORT_CNOT"}


def _guard_text(guard: GuardTerms) -> str:
    if not guard:
        return ""
    return " when " + " and ".join(f"ev:e{e} == {v}" for e, v in guard)


def to_asm(c: Circuit) -> str:
    """The circuit as QVM assembly: qubit k is ``q{k}``, event k is ``e{k}``."""
    qubits = ", ".join(f"vq:q{k}" for k in range(c.n))
    lines = [
        ".caps CAP_ALLOC CAP_TELEPORT CAP_MAGIC CAP_LINK",
        ".vqs " + " ".join(f"q{k}" for k in range(c.n)),
        ".events " + " ".join(f"e{k}" for k in range(c.events)),
        f"ALLOC_LQ {qubits}",
    ]
    channels = 0
    for op in c.ops:
        if isinstance(op, Gate):
            name = _QVM_GATE.get(op.name, "APPLY_" + op.name.upper())
            items = [f"vq:q{q}" for q in op.qubits] + [f"theta={p!r}" for p in op.params]
            lines.append(f"{name} {', '.join(items)}{_guard_text(op.guard)}")
        elif isinstance(op, Measure):
            target = f"vq:q{op.qubit}, out:e{op.event}"
            if isinstance(op.basis, str):
                lines.append(f"MEASURE_{op.basis} {target}{_guard_text(op.guard)}")
            else:
                lines.append(f"MEASURE_ANGLE {target}, angle={op.basis!r}{_guard_text(op.guard)}")
        elif isinstance(op, Reset):
            lines.append(f"RESET vq:q{op.qubit}")
        elif isinstance(op, Realloc):
            lines += [f"FREE_LQ vq:q{op.qubit}", f"ALLOC_LQ vq:q{op.qubit}"]
        elif isinstance(op, Bell):
            lines.append(f"MEASURE_BELL vq:q{op.a}, vq:q{op.b}, out:e{op.xx}, out:e{op.zz}")
        elif isinstance(op, InjectT):
            lines.append(f"INJECT_T_STATE vq:q{op.qubit}")
        elif isinstance(op, OpenChan):
            opts = f'opts={{"fidelity": {op.fidelity!r}}}'
            lines.append(f"OPEN_CHAN vq:q{op.a}, vq:q{op.b}, ch:c{channels}, {opts}")
            channels += 1
        else:
            inputs = ", ".join(f"in:e{e}" for e in op.inputs)
            lines.append(f'COND_PAULI vq:q{op.qubit}, {inputs}, mask="{op.pauli}"')
    lines += [f"CLOSE_CHAN ch:c{k}" for k in range(channels)]
    lines.append(f"FREE_LQ {qubits}")
    return "\n".join(lines) + "\n"


def _basis_change(qc: QuantumCircuit, basis: str | float, q: int) -> None:
    """Map the basis's outcome-0 state to |0>."""
    if basis == "X":
        qc.h(q)
    elif basis == "Y":
        qc.sdg(q)
        qc.h(q)
    elif not isinstance(basis, str):
        qc.rz(-basis, q)
        qc.h(q)


def _basis_unchange(qc: QuantumCircuit, basis: str | float, q: int) -> None:
    if basis == "X":
        qc.h(q)
    elif basis == "Y":
        qc.h(q)
        qc.s(q)
    elif not isinstance(basis, str):
        qc.h(q)
        qc.rz(basis, q)


def _qiskit_gate(qc: QuantumCircuit, op: Gate) -> None:
    getattr(qc, "cx" if op.name == "tcx" else op.name)(*op.params, *op.qubits)


def to_qiskit(c: Circuit) -> QuantumCircuit:
    """The circuit with measurements and feed-forward; clbit k is event k."""
    qc = QuantumCircuit(c.n, c.events)
    for op in c.ops:
        with ExitStack() as stack:
            for event, value in getattr(op, "guard", ()):
                stack.enter_context(qc.if_test((qc.clbits[event], value)))
            if isinstance(op, Gate):
                _qiskit_gate(qc, op)
            elif isinstance(op, Measure):
                _basis_change(qc, op.basis, op.qubit)
                qc.measure(op.qubit, op.event)
                _basis_unchange(qc, op.basis, op.qubit)
            elif isinstance(op, Reset | Realloc):
                qc.reset(op.qubit)
            elif isinstance(op, Bell):
                # CX(a, b) maps XX to X_a and ZZ to Z_b; H maps X_a to Z_a.
                qc.cx(op.a, op.b)
                qc.h(op.a)
                qc.measure(op.a, op.xx)
                qc.measure(op.b, op.zz)
                qc.h(op.a)
                qc.cx(op.a, op.b)
            elif isinstance(op, InjectT):
                qc.reset(op.qubit)
                qc.h(op.qubit)
                qc.t(op.qubit)
            elif isinstance(op, OpenChan):
                qc.reset([op.a, op.b])
                qc.h(op.a)
                qc.cx(op.a, op.b)
                if op.fidelity < 1:
                    p = (1 - op.fidelity) / 3
                    werner = pauli_error([("I", op.fidelity), ("X", p), ("Y", p), ("Z", p)])
                    qc.append(werner.to_instruction(), [op.b])
            elif op.pauli != "I":
                # Paulis square to the identity (up to phase): one per input that is 1 is the
                # Pauli applied when the XOR of the inputs is 1.
                for event in op.inputs:
                    with qc.if_test((qc.clbits[event], 1)):
                        getattr(qc, op.pauli.lower())(op.qubit)
    return qc


def exact_terminal(c: Circuit) -> np.ndarray:
    """Exact outcome probabilities of a terminal circuit, indexed by sum(bit_k << k)."""
    assert c.terminal
    qc = QuantumCircuit(c.n)
    measured: list[int] = []
    for op in c.ops:
        if isinstance(op, Gate):
            if all(q in measured for q in op.qubits):
                continue  # acts on measured qubits only: cannot change the outcomes
            assert not any(q in measured for q in op.qubits)
            _qiskit_gate(qc, op)
        else:
            assert isinstance(op, Measure) and not op.guard
            _basis_change(qc, op.basis, op.qubit)
            measured.append(op.qubit)
    return Statevector(qc).probabilities(measured)


_GATE_CLASSES = {
    "h": HGate,
    "s": SGate,
    "sdg": SdgGate,
    "x": XGate,
    "y": YGate,
    "z": ZGate,
    "t": TGate,
    "tdg": TdgGate,
    "rx": RXGate,
    "ry": RYGate,
    "rz": RZGate,
    "cx": CXGate,
    "cz": CZGate,
    "swap": SwapGate,
    "ccx": CCXGate,
    "ccz": CCZGate,
    "tcx": CXGate,
}


def _evolve(rho: DensityMatrix, name: str, qubits: Sequence[int], params=()) -> DensityMatrix:
    return rho.evolve(_GATE_CLASSES[name](*params), list(qubits))


def _to_z(basis: str | float) -> list[tuple[str, tuple[float, ...]]]:
    """Gates mapping the basis's outcome-0 state to |0> (as in ``_basis_change``)."""
    if basis == "Z":
        return []
    if basis == "X":
        return [("h", ())]
    if basis == "Y":
        return [("sdg", ()), ("h", ())]
    return [("rz", (-basis,)), ("h", ())]


def _from_z(basis: str | float) -> list[tuple[str, tuple[float, ...]]]:
    inverse = {"h": "h", "sdg": "s", "rz": "rz"}
    return [(inverse[g], tuple(-p for p in ps)) for g, ps in reversed(_to_z(basis))]


def exact_dynamic(c: Circuit) -> np.ndarray:
    """Exact outcome probabilities of any circuit, indexed by sum(bit_k << k).

    Each branch is an unnormalised density matrix (its trace is the branch's probability)
    with the events it wrote; a recorded measurement splits a branch in two, RESET and
    free-and-allocate-again are channels. The final unguarded measurements of distinct
    qubits are read off as joint probabilities instead of branching.
    """
    tail = len(c.ops)
    seen: set[int] = set()
    while tail > 0:
        op = c.ops[tail - 1]
        if not isinstance(op, Measure) or op.guard or op.qubit in seen:
            break
        seen.add(op.qubit)
        tail -= 1
    branches = [(DensityMatrix.from_int(0, 2**c.n), [0] * c.events)]
    for op in c.ops[:tail]:
        grown = []
        for rho, bits in branches:
            if isinstance(op, Gate | Measure) and not all(bits[e] == v for e, v in op.guard):
                grown.append((rho, bits))
            elif isinstance(op, Gate):
                grown.append((_evolve(rho, op.name, op.qubits, op.params), bits))
            elif isinstance(op, Reset | Realloc):
                grown.append((rho.reset([op.qubit]), bits))
            elif isinstance(op, CondPauli):
                if op.pauli != "I" and sum(bits[e] for e in op.inputs) % 2:
                    rho = _evolve(rho, op.pauli.lower(), [op.qubit])
                grown.append((rho, bits))
            elif isinstance(op, InjectT):
                rho = rho.reset([op.qubit])
                grown.append((_evolve(_evolve(rho, "h", [op.qubit]), "t", [op.qubit]), bits))
            elif isinstance(op, OpenChan):
                rho = _evolve(rho.reset([op.a, op.b]), "h", [op.a])
                rho = _evolve(rho, "cx", [op.a, op.b])
                p = (1 - op.fidelity) / 3
                data = op.fidelity * rho.data
                for pauli in "xyz":
                    data = data + p * _evolve(rho, pauli, [op.b]).data
                grown.append((DensityMatrix(data), bits))
            elif isinstance(op, Bell):
                # Project onto the joint eigenspaces of XX and ZZ: (I + s P)/2 for s = +-1.
                for xx in (0, 1):
                    for zz in (0, 1):
                        branch = rho
                        for pauli, outcome in (("XX", xx), ("ZZ", zz)):
                            sign = 1 - 2 * outcome
                            proj = (Operator(np.eye(4)) + sign * Operator(Pauli(pauli))) / 2
                            branch = branch.evolve(proj, [op.a, op.b])
                        if branch.trace().real <= ZERO:
                            continue
                        new = list(bits)
                        new[op.xx], new[op.zz] = xx, zz
                        grown.append((branch, new))
            else:
                for gate, params in _to_z(op.basis):
                    rho = _evolve(rho, gate, [op.qubit], params)
                mask = (np.arange(2**c.n) >> op.qubit) & 1
                for outcome in (0, 1):
                    keep = mask == outcome
                    data = np.where(np.outer(keep, keep), rho.data, 0)
                    if np.trace(data).real <= ZERO:
                        continue
                    branch = DensityMatrix(data)
                    for gate, params in _from_z(op.basis):
                        branch = _evolve(branch, gate, [op.qubit], params)
                    grown.append((branch, [*bits[: op.event], outcome, *bits[op.event + 1 :]]))
        branches = grown
    final = [op for op in c.ops[tail:] if isinstance(op, Measure)]
    probs = np.zeros(2**c.events)
    for rho, bits in branches:
        for op in final:
            for gate, params in _to_z(op.basis):
                rho = _evolve(rho, gate, [op.qubit], params)
        weight = rho.trace().real
        joint = rho.probabilities([op.qubit for op in final]) if final else np.ones(1)
        base = sum(b << k for k, b in enumerate(bits))
        for index, p in enumerate(joint):
            bits_here = base
            for j, op in enumerate(final):
                bits_here |= (index >> j & 1) << op.event
            probs[bits_here] += weight * p / joint.sum()
    return probs


def exact_probabilities(c: Circuit) -> np.ndarray:
    return exact_terminal(c) if c.terminal else exact_dynamic(c)


def qmk_counts(c: Circuit, seed: int) -> tuple[dict[str, int], str, str]:
    result = qmk.run(assemble(to_asm(c)), shots=SHOTS, seed=seed, noise=False)
    return dict(result.counts), result.engine, result.telemetry.mode


def aer_counts(c: Circuit, seed: int) -> dict[str, int]:
    simulator = AerSimulator(method="statevector", seed_simulator=seed)
    counts = simulator.run(to_qiskit(c), shots=SHOTS).result().get_counts()
    return {key.replace(" ", "")[::-1]: int(n) for key, n in counts.items()}


def index_of(outcome: str) -> int:
    return sum(1 << k for k, bit in enumerate(outcome) if bit == "1")


def outcome_of(index: int, width: int) -> str:
    return "".join(str(index >> k & 1) for k in range(width))


# -- statistics -----------------------------------------------------------------------


def pooled(observed: Sequence[float], weight: Sequence[float], minimum: float) -> list[list[int]]:
    """Group cell indices (lightest ``weight`` first) so each group weighs >= ``minimum``."""
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0.0
    for i in sorted(range(len(weight)), key=lambda i: weight[i]):
        current.append(i)
        total += weight[i]
        if total >= minimum:
            groups.append(current)
            current, total = [], 0.0
    if current:
        if groups:
            groups[-1] += current
        else:
            groups.append(current)
    return groups


def check_against_exact(counts: Mapping[str, int], probs: np.ndarray, shots: int) -> None:
    observed = np.zeros(len(probs))
    for outcome, n in counts.items():
        observed[index_of(outcome)] += n
    assert observed.sum() == shots
    width = len(probs).bit_length() - 1
    impossible = {
        outcome_of(int(i), width): int(observed[i])
        for i in np.flatnonzero(probs <= ZERO)
        if observed[i]
    }
    assert not impossible, f"outcomes of probability 0 appeared: {impossible}"
    support = np.flatnonzero(probs > ZERO)
    p = probs[support] / probs[support].sum()
    obs = observed[support]
    tvd = 0.5 * np.abs(obs / shots - p).sum()
    bound = 0.5 * np.sqrt(p * (1 - p) / shots).sum() + math.sqrt(math.log(1 / DELTA) / (2 * shots))
    assert tvd <= bound, f"TVD {tvd:.4f} > bound {bound:.4f}"
    groups = pooled(obs, p * shots, 5.0)
    if len(groups) >= 2:
        obs_bins = [obs[g].sum() for g in groups]
        exp_bins = [p[g].sum() * shots for g in groups]
        pvalue = stats.chisquare(obs_bins, exp_bins).pvalue
        assert pvalue > P_MIN, f"chi-square p = {pvalue:.3g} (TVD {tvd:.4f}, bound {bound:.4f})"


def check_two_samples(ours: Mapping[str, int], theirs: Mapping[str, int], shots: int) -> None:
    keys = sorted(set(ours) | set(theirs))
    a = np.array([ours.get(k, 0) for k in keys], dtype=float)
    b = np.array([theirs.get(k, 0) for k in keys], dtype=float)
    assert a.sum() == b.sum() == shots
    pooled_p = (a + b) / (2 * shots)
    tvd = 0.5 * np.abs(a - b).sum() / shots
    bound = 1.25 * 0.5 * np.sqrt(2 * pooled_p * (1 - pooled_p) / shots).sum() + math.sqrt(
        math.log(1 / DELTA) / shots
    )
    worst = sorted(keys, key=lambda k: -abs(ours.get(k, 0) - theirs.get(k, 0)))[:5]
    detail = {k: (ours.get(k, 0), theirs.get(k, 0)) for k in worst}
    assert tvd <= bound, f"TVD {tvd:.4f} > bound {bound:.4f}; (qmk, aer) {detail}"
    groups = pooled(a + b, a + b, 20.0)
    if len(groups) >= 2:
        table = np.array([[a[g].sum() for g in groups], [b[g].sum() for g in groups]])
        pvalue = stats.chi2_contingency(table, correction=False).pvalue
        assert pvalue > P_MIN, f"homogeneity p = {pvalue:.3g}; (qmk, aer) {detail}"


# -- tests ----------------------------------------------------------------------------

TERMINAL = [c for c in CIRCUITS if c.terminal]
DYNAMIC = [c for c in CIRCUITS if not c.terminal]


def test_the_corpus_has_at_least_200_circuits_of_every_family() -> None:
    assert len(CIRCUITS) >= 200
    assert {c.family for c in CIRCUITS} == set(FAMILIES)
    assert all(c.clifford for c in CIRCUITS if "clifford" in c.family)
    assert sum(not c.clifford for c in CIRCUITS) >= 120
    assert {c.n for c in TERMINAL} == set(range(2, 11))
    kinds = {type(op).__name__ for c in DYNAMIC for op in c.ops}
    assert kinds == {
        "Gate",
        "Measure",
        "Reset",
        "Realloc",
        "CondPauli",
        "Bell",
        "InjectT",
        "OpenChan",
    }
    guards = {len(op.guard) for c in DYNAMIC for op in c.ops if isinstance(op, Gate | Measure)}
    assert guards == {0, 1, 2}
    names = {op.name for c in CIRCUITS for op in c.ops if isinstance(op, Gate)}
    assert names == set(ONE_CLIFFORD + ROTATIONS + TWO + THREE + ("t", "tdg"))


@pytest.mark.parametrize("c", TERMINAL, ids=lambda c: c.id)
def test_terminal_circuit_matches_the_exact_distribution(c: Circuit) -> None:
    counts, engine, _ = qmk_counts(c, seed=1000 + c.index)
    assert engine == ("stabilizer" if c.clifford else "statevector")
    check_against_exact(counts, exact_terminal(c), SHOTS)


@pytest.mark.parametrize("c", DYNAMIC, ids=lambda c: c.id)
def test_dynamic_circuit_matches_the_exact_distribution(c: Circuit) -> None:
    counts, engine, mode = qmk_counts(c, seed=1000 + c.index)
    assert engine == ("stabilizer" if c.clifford else "statevector")
    if c.family == "dynamic-clifford-linear":
        assert c.linear_feed_forward and mode == "stim-batch"
    elif not c.linear_feed_forward:
        assert mode == "trajectories"
    check_against_exact(counts, exact_dynamic(c), SHOTS)


AER_SUBSET = CIRCUITS[::9]


@pytest.mark.parametrize("c", AER_SUBSET, ids=lambda c: c.id)
def test_circuit_matches_aer_and_aer_matches_the_exact_reference(c: Circuit) -> None:
    theirs = aer_counts(c, seed=2000 + c.index)
    check_against_exact(theirs, exact_probabilities(c), SHOTS)
    ours, _, _ = qmk_counts(c, seed=1000 + c.index)
    check_two_samples(ours, theirs, SHOTS)


def test_the_branching_reference_agrees_with_the_statevector_on_terminal_circuits() -> None:
    for c in TERMINAL[:40]:
        if c.n <= 6:
            np.testing.assert_allclose(exact_dynamic(c), exact_terminal(c), atol=1e-10)


def test_the_checks_reject_a_wrong_distribution() -> None:
    probs = np.array([0.5, 0.0, 0.0, 0.5])  # a Bell pair, by index
    check_against_exact({"00": 2000, "11": 2000}, probs, 4000)
    with pytest.raises(AssertionError, match="probability 0"):
        check_against_exact({"00": 2000, "11": 1999, "10": 1}, probs, 4000)
    with pytest.raises(AssertionError, match="TVD"):
        check_against_exact({"00": 2200, "11": 1800}, probs, 4000)
    fair = {"0": 2000, "1": 2000}
    check_two_samples(fair, {"0": 2040, "1": 1960}, 4000)
    with pytest.raises(AssertionError):
        check_two_samples(fair, {"0": 2300, "1": 1700}, 4000)
