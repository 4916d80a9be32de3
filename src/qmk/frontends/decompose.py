"""Exact decompositions of standard gates into the QVM gate set: one table for every front-end.

The QVM applies a small gate set (:data:`qmk.frontends.builder.GATE_OPS`: h s sdg x y z
t tdg rx ry rz cx cz swap ccx ccz). Every other gate a front-end meets is rewritten
here into that set *exactly*, with its global phase tracked: a :class:`Lowered` is a
sequence of basic gates on local qubits ``0..n-1`` and a phase ``phase`` such that

    matrix(gate) == exp(1j * phase) * matrix(ops)

Tracking the phase is what makes the modifiers exact: ``controlled`` turns the phase
of its body into a phase gate on the controls, so ``ctrl @ u3`` or a controlled
user gate is right, not just right up to a phase the control makes visible.

Matrices use Qiskit's conventions (qubit 0 is the least significant bit of the
matrix index), and every entry of :data:`STANDARD_GATES` is tested against Qiskit's
own matrix, phase included.

>>> low = lower_gate("cp", (math.pi / 2,))
>>> [name for name, _, _ in low.ops]
['rz', 'cx', 'rz', 'cx', 'rz']
>>> bool(np.allclose(matrix_of(lower_gate("swap", ())), matrix_of(lower_gate("iswap", ()))))
False
"""

from __future__ import annotations

import cmath
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from qmk.gates import GATES, Gate
from qmk.qvm.ops import OPS, Exec

#: One basic gate: (name in GATE_OPS, local qubit indices, parameters).
Instr = tuple[str, tuple[int, ...], tuple[float, ...]]

#: How many controls :func:`controlled` accepts on one gate: the decomposition is exact
#: and its size quadratic in the controls (about 16 n^2 Toffolis), and no simulator
#: holds that many qubits anyway.
MAX_CONTROLS = 64

_EPS = 1e-12
_GATE_OPS = [spec for spec in OPS.values() if spec.kind is Exec.GATE and spec.gate]
#: A basic gate's inverse gate, from the op table (a rotation's negates its angle).
_INVERSE_NAME: dict[str, str] = {
    spec.gate: inverse_gate
    for spec in _GATE_OPS
    if spec.gate and spec.inverse and (inverse_gate := OPS[spec.inverse].gate)
}
_ROTATIONS = frozenset(spec.gate for spec in _GATE_OPS if spec.inverse_negates)

_I2 = np.eye(2, dtype=complex)
_X = GATES["x"].matrix()
#: The op table's parameterless one-qubit gates: the names a 2x2 matrix is read as.
_NAMED_ONE_QUBIT = tuple(
    spec.gate for spec in _GATE_OPS if spec.gate and spec.vqs.low == 1 and not spec.args
)
# a multi-qubit gate record -> the target block it controls (None: it controls none)
_TARGET_BLOCKS: dict[Gate, np.ndarray | None] = {}


def _target_block(record: Gate) -> np.ndarray | None:
    """The 2x2 block a multi-qubit gate applies to its last qubit when every other
    reads 1, if it is that controlled one-qubit gate (``cx``, ``ccz``); else None."""
    if record.params:
        return None
    if record not in _TARGET_BLOCKS:
        matrix = record.matrix()
        rest = np.eye(len(matrix), dtype=complex)
        rest[-2:, -2:] = matrix[-2:, -2:]
        controlled = np.array_equal(rest, matrix)
        _TARGET_BLOCKS[record] = np.array(matrix[-2:, -2:]) if controlled else None
    return _TARGET_BLOCKS[record]


def basic_matrix(name: str, params: Sequence[float] = ()) -> np.ndarray:
    """The 2x2 matrix of a one-qubit basic gate, or the target block of a controlled one
    (``cx cz ccx ccz``), from its gate record (:data:`qmk.gates.GATES`).

    Raises:
        ValueError: a multi-qubit gate that is no controlled one-qubit gate (``swap``).
    """
    record = GATES[name]
    if record.qubits == 1:
        return record.matrix(tuple(params))
    block = _target_block(record)
    if block is None:
        raise ValueError(f"gate {name} is no controlled one-qubit gate")
    return block


@dataclass(frozen=True, slots=True, kw_only=True)
class Lowered:
    """A gate as basic gates on local qubits ``0..num_qubits-1`` times ``exp(1j*phase)``."""

    num_qubits: int
    ops: tuple[Instr, ...] = ()
    phase: float = 0.0


class _Seq:
    """Accumulates basic gates and the global phase while a decomposition is written."""

    def __init__(self, num_qubits: int) -> None:
        self.num_qubits = num_qubits
        self.ops: list[Instr] = []
        self.phase = 0.0

    def op(self, name: str, *qubits: int, params: Sequence[float] = ()) -> None:
        if name in _ROTATIONS and abs(params[0]) < _EPS:
            return
        self.ops.append((name, tuple(qubits), tuple(float(p) for p in params)))

    def rz(self, t: float, q: int) -> None:
        self.op("rz", q, params=(t,))

    def ry(self, t: float, q: int) -> None:
        self.op("ry", q, params=(t,))

    def rx(self, t: float, q: int) -> None:
        self.op("rx", q, params=(t,))

    def p(self, lam: float, q: int) -> None:
        """diag(1, e^{i lam}) = e^{i lam/2} Rz(lam)."""
        self.rz(lam, q)
        self.phase += lam / 2

    def u(self, theta: float, phi: float, lam: float, q: int) -> None:
        """Qiskit's U(theta, phi, lam) = e^{i(phi+lam)/2} Rz(phi) Ry(theta) Rz(lam)."""
        self.rz(lam, q)
        self.ry(theta, q)
        self.rz(phi, q)
        self.phase += (phi + lam) / 2

    def add(self, low: Lowered, qubits: Sequence[int]) -> None:
        """Append ``low`` with its local qubit ``i`` on ``qubits[i]``."""
        for name, qs, params in low.ops:
            self.ops.append((name, tuple(qubits[i] for i in qs), params))
        self.phase += low.phase

    def done(self) -> Lowered:
        return Lowered(num_qubits=self.num_qubits, ops=tuple(self.ops), phase=self.phase)


# ----------------------------------------------------------------------------- algebra


def inverse(low: Lowered) -> Lowered:
    """The inverse (adjoint) of ``low``, exactly."""
    ops: list[Instr] = []
    for name, qs, params in reversed(low.ops):
        if name in _ROTATIONS:
            ops.append((name, qs, (-params[0],)))
        else:
            ops.append((_INVERSE_NAME[name], qs, params))
    return Lowered(num_qubits=low.num_qubits, ops=tuple(ops), phase=-low.phase)


def power(low: Lowered, k: float) -> Lowered:
    """``low`` to the power ``k``: any integer exactly; a fraction on one qubit only.

    A fractional power uses the principal branch of the matrix power (as Qiskit's
    ``Gate.power`` does).

    Raises:
        ValueError: a fractional power of a gate on more than one qubit.
    """
    if float(k).is_integer():
        n = int(k)
        base = low if n >= 0 else inverse(low)
        seq = _Seq(low.num_qubits)
        for _ in range(abs(n)):
            seq.add(base, range(low.num_qubits))
        return seq.done()
    if low.num_qubits != 1:
        raise ValueError(
            f"a fractional power ({k:g}) of a gate on {low.num_qubits} qubits is not supported "
            "(only one-qubit gates take fractional powers)"
        )
    values, vectors = np.linalg.eig(matrix_of(low))
    powered = vectors @ np.diag(np.exp(1j * k * np.angle(values))) @ np.linalg.inv(vectors)
    return one_qubit(powered)


def one_qubit(u: np.ndarray) -> Lowered:
    """Any 2x2 unitary as Rz Ry Rz and a phase: ``u = e^{ia} Rz(b) Ry(g) Rz(d)``."""
    alpha, beta, gamma, delta = _zyz(u)
    seq = _Seq(1)
    seq.rz(delta, 0)
    seq.ry(gamma, 0)
    seq.rz(beta, 0)
    seq.phase = alpha
    return seq.done()


def _zyz(u: np.ndarray) -> tuple[float, float, float, float]:
    u = np.asarray(u, dtype=complex)
    alpha = cmath.phase(np.linalg.det(u)) / 2
    v = u * cmath.exp(-1j * alpha)
    a, b = v[0, 0], v[1, 0]
    gamma = 2 * math.atan2(abs(b), abs(a))
    angle_a = cmath.phase(a) if abs(a) > 1e-9 else 0.0
    angle_b = cmath.phase(b) if abs(b) > 1e-9 else 0.0
    # a = cos(g/2) e^{-i(b+d)/2}, b = sin(g/2) e^{i(b-d)/2}
    plus, minus = -2 * angle_a, 2 * angle_b
    if abs(a) <= 1e-9:
        plus = 0.0
    if abs(b) <= 1e-9:
        minus = 0.0
    return alpha, (plus + minus) / 2, gamma, (plus - minus) / 2


def _named_one_qubit(u: np.ndarray) -> str | None:
    for name in _NAMED_ONE_QUBIT:
        if np.allclose(u, basic_matrix(name), atol=1e-12):
            return name
    return None


def _mc_one_qubit(u: np.ndarray, n_controls: int) -> Lowered:
    """C^n(u): controls ``0..n-1``, target ``n``, exactly (phase included)."""
    n = n_controls
    seq = _Seq(n + 1)
    name = _named_one_qubit(u)
    if n == 0:
        if name is not None:
            seq.op(name, 0)
            return seq.done()
        return one_qubit(u)
    if name == "x" and n <= 2:
        seq.op("cx" if n == 1 else "ccx", *range(n + 1))
        return seq.done()
    if name == "z" and n <= 2:
        seq.op("cz" if n == 1 else "ccz", *range(n + 1))
        return seq.done()
    if n > MAX_CONTROLS:
        raise ValueError(f"at most {MAX_CONTROLS} controls are supported, got {n}")
    if n == 1:
        # u = e^{ia} A X B X C with ABC = I (Barenco et al. 1995, lemma 5.1).
        alpha, beta, gamma, delta = _zyz(u)
        seq.rz((delta - beta) / 2, 1)
        seq.op("cx", 0, 1)
        seq.rz(-(delta + beta) / 2, 1)
        seq.ry(-gamma / 2, 1)
        seq.op("cx", 0, 1)
        seq.ry(gamma / 2, 1)
        seq.rz(beta, 1)
        seq.p(alpha, 0)
        return seq.done()
    # C^n(u) = C_{c_n}(v) C^{n-1}X C_{c_n}(v^dag) C^{n-1}X C^{n-1}(v) with v^2 = u (lemma 7.5);
    # the target is idle during each C^{n-1}X, which borrows it as a dirty ancilla
    # (lemma 7.3), so each costs O(n) Toffolis and the whole O(n^2), not 3^n.
    values, vectors = np.linalg.eig(u)
    v = vectors @ np.diag(np.sqrt(values)) @ np.linalg.inv(vectors)
    last, target = n - 1, n
    rest = list(range(n - 1))
    seq.add(_mc_one_qubit(v, 1), [last, target])
    _mcx_one_dirty(seq, rest, last, target)
    seq.add(_mc_one_qubit(v.conj().T, 1), [last, target])
    _mcx_one_dirty(seq, rest, last, target)
    seq.add(_mc_one_qubit(v, n - 1), [*rest, target])
    return seq.done()


def _mcx_dirty(seq: _Seq, controls: Sequence[int], target: int, dirty: Sequence[int]) -> None:
    """X on ``target`` controlled on ``controls``, borrowing ``dirty`` (at least
    ``len(controls) - 2`` qubits in any state, left as they were): 4(m-2) Toffolis
    for m >= 3 controls (Barenco et al. 1995, lemma 7.2)."""
    m = len(controls)
    if m <= 2:
        seq.op(("x", "cx", "ccx")[m], *controls, target)
        return
    if len(dirty) < m - 2:
        raise ValueError(f"C^{m}X needs {m - 2} borrowed qubits, got {len(dirty)}")
    c, a = list(controls), list(dirty[: m - 2])

    def ladder() -> None:
        seq.op("ccx", c[m - 1], a[m - 3], target)
        for i in range(m - 2, 1, -1):
            seq.op("ccx", c[i], a[i - 2], a[i - 1])
        seq.op("ccx", c[0], c[1], a[0])
        for i in range(2, m - 1):
            seq.op("ccx", c[i], a[i - 2], a[i - 1])

    ladder()
    ladder()


def _mcx_one_dirty(seq: _Seq, controls: Sequence[int], target: int, dirty: int) -> None:
    """X on ``target`` controlled on ``controls``, borrowing one qubit ``dirty`` (left
    as it was): the controls split in halves A and B, then C^A X(dirty) C^{B+dirty}X(target)
    twice, each half borrowing the other (Barenco et al. 1995, lemma 7.3)."""
    m = len(controls)
    if m <= 2:
        _mcx_dirty(seq, controls, target, ())
        return
    k1 = (m + 1) // 2
    first, second = list(controls[:k1]), list(controls[k1:])
    for _ in range(2):
        _mcx_dirty(seq, first, dirty, [*second, target])
        _mcx_dirty(seq, [*second, dirty], target, first)


def _fused(ops: Sequence[Instr]) -> list[Instr]:
    """``ops`` with each run of one-qubit gates on one qubit merged into a ``unitary``
    pseudo-gate (its 2x2 matrix flattened as the parameters), so that controlling the
    run costs one controlled gate, not one per gate."""
    out: list[Instr] = []
    run: list[Instr] = []

    def flush() -> None:
        if len(run) == 1:
            out.append(run[0])
        elif run:
            u = _I2
            for name, _, params in run:
                u = basic_matrix(name, params) @ u
            out.append(("unitary", run[0][1], tuple(u.ravel())))
        run.clear()

    for op in ops:
        name, qs, _ = op
        if len(qs) == 1 and name != "unitary" and (not run or run[0][1] == qs):
            run.append(op)
            continue
        flush()
        if len(qs) == 1:
            run.append(op)
        else:
            out.append(op)
    flush()
    return out


def controlled(low: Lowered, n_controls: int = 1, ctrl_state: int | None = None) -> Lowered:
    """``low`` controlled on ``n_controls`` new qubits placed first (local ``0..n-1``).

    ``ctrl_state`` (bit ``i`` for control ``i``; None: all ones) picks the control values;
    a 0 control is an X before and after. The body's phase becomes a phase gate on the
    controls, so the result is exact.

    Raises:
        ValueError: more than :data:`MAX_CONTROLS` controls on one basic gate.
    """
    n = n_controls
    if n == 0:
        return low
    seq = _Seq(low.num_qubits + n)
    flips = [] if ctrl_state is None else [i for i in range(n) if not (ctrl_state >> i) & 1]
    for q in flips:
        seq.op("x", q)
    controls = list(range(n))
    for name, qs, params in _fused(low.ops):
        local = [q + n for q in qs]
        if name == "unitary":
            seq.add(_mc_one_qubit(np.asarray(params).reshape(2, 2), n), [*controls, local[0]])
            continue
        if name == "swap":
            a, b = local
            seq.op("cx", b, a)
            seq.add(_mc_one_qubit(_X, n + 1), [*controls, a, b])
            seq.op("cx", b, a)
            continue
        own = local[:-1]
        seq.add(  # (basic_matrix refuses a gate with no controlled form)
            _mc_one_qubit(basic_matrix(name, params), n + len(own)), [*controls, *own, local[-1]]
        )
    if abs(low.phase) > _EPS:
        phase_gate = np.diag([1, cmath.exp(1j * low.phase)])
        seq.add(_mc_one_qubit(phase_gate, n - 1), controls)
    for q in flips:
        seq.op("x", q)
    return seq.done()


def little_endian(matrix: np.ndarray) -> np.ndarray:
    """A matrix written first qubit most significant (Cirq's, PennyLane's, QuTiP's order)
    in this module's order: qubit 0 the least significant bit, as Qiskit writes it."""
    n = round(math.log2(len(matrix)))
    tensor = np.asarray(matrix, dtype=complex).reshape([2] * (2 * n))
    axes = list(reversed(range(n))) + [n + a for a in reversed(range(n))]
    return tensor.transpose(axes).reshape(2**n, 2**n)


def matrix_of(low: Lowered) -> np.ndarray:
    """The unitary of ``low`` (phase included), Qiskit's qubit order (qubit 0 least significant)."""
    n = low.num_qubits
    dim = 2**n
    total = np.eye(dim, dtype=complex)
    for name, qs, params in low.ops:
        record = GATES[name]
        if record.qubits > 1 and _target_block(record) is None:
            total = _embedded(record.matrix(tuple(params)), qs, n) @ total
            continue
        step = np.eye(dim, dtype=complex)
        u = basic_matrix(name, params)
        *ctrl, target = qs
        for i in range(dim):
            if (i >> target) & 1 or not all((i >> c) & 1 for c in ctrl):
                continue
            j = i | (1 << target)
            step[i, i], step[i, j], step[j, i], step[j, j] = u[0, 0], u[0, 1], u[1, 0], u[1, 1]
        total = step @ total
    return cmath.exp(1j * low.phase) * total


def _embedded(matrix: np.ndarray, qs: Sequence[int], n: int) -> np.ndarray:
    """A gate's matrix (its first qubit the most significant) on qubits ``qs`` of ``n``, in
    this module's order (qubit 0 the least significant bit of the index)."""
    k = len(qs)
    # axis a of a (2,)*n tensor is qubit n-1-a; the gate's axis i is its qubit qs[i]
    tensor = np.eye(2**n, dtype=complex).reshape((2,) * (2 * n))
    gate = np.asarray(matrix, dtype=complex).reshape((2,) * (2 * k))
    axes = [n - 1 - q for q in qs]
    moved = np.tensordot(gate, tensor, axes=(list(range(k, 2 * k)), axes))
    return np.moveaxis(moved, list(range(k)), axes).reshape(2**n, 2**n)


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True, slots=True, kw_only=True)
class GateRule:
    """One standard gate: its qubit and parameter counts and how to write it."""

    name: str
    num_qubits: int
    num_params: int
    write: Callable[[_Seq, Sequence[float]], None]
    doc: str


def _basic(name: str) -> Callable[[_Seq, Sequence[float]], None]:
    def write(seq: _Seq, params: Sequence[float]) -> None:
        seq.op(name, *range(seq.num_qubits), params=params)

    return write


def _ctrl(
    name: str, n: int, params_of: Callable[[Sequence[float]], Sequence[float]] | None = None
) -> Callable[[_Seq, Sequence[float]], None]:
    def write(seq: _Seq, params: Sequence[float]) -> None:
        inner = lower_gate(name, tuple(params_of(params) if params_of else params))
        seq.add(controlled(inner, n), range(seq.num_qubits))

    return write


def _u(seq: _Seq, p: Sequence[float]) -> None:
    seq.u(p[0], p[1], p[2], 0)


def _cp(seq: _Seq, p: Sequence[float]) -> None:
    (lam,) = p
    seq.p(lam / 2, 0)
    seq.op("cx", 0, 1)
    seq.p(-lam / 2, 1)
    seq.op("cx", 0, 1)
    seq.p(lam / 2, 1)


def _crz(seq: _Seq, p: Sequence[float]) -> None:
    seq.rz(p[0] / 2, 1)
    seq.op("cx", 0, 1)
    seq.rz(-p[0] / 2, 1)
    seq.op("cx", 0, 1)


def _cry(seq: _Seq, p: Sequence[float]) -> None:
    seq.ry(p[0] / 2, 1)
    seq.op("cx", 0, 1)
    seq.ry(-p[0] / 2, 1)
    seq.op("cx", 0, 1)


def _crx(seq: _Seq, p: Sequence[float]) -> None:
    seq.op("h", 1)
    _crz(seq, p)
    seq.op("h", 1)


def _cy(seq: _Seq, p: Sequence[float]) -> None:
    seq.op("sdg", 1)
    seq.op("cx", 0, 1)
    seq.op("s", 1)


def _cu(seq: _Seq, p: Sequence[float]) -> None:
    theta, phi, lam, gamma = p
    inner = lower_gate("u", (theta, phi, lam))
    body = Lowered(num_qubits=1, ops=inner.ops, phase=inner.phase + gamma)
    seq.add(controlled(body, 1), (0, 1))


def _cswap(seq: _Seq, p: Sequence[float]) -> None:
    seq.op("cx", 2, 1)
    seq.op("ccx", 0, 1, 2)
    seq.op("cx", 2, 1)


def _rxx(seq: _Seq, p: Sequence[float]) -> None:
    seq.op("h", 0)
    seq.op("h", 1)
    _rzz(seq, p)
    seq.op("h", 0)
    seq.op("h", 1)


def _ryy(seq: _Seq, p: Sequence[float]) -> None:
    seq.rx(math.pi / 2, 0)
    seq.rx(math.pi / 2, 1)
    _rzz(seq, p)
    seq.rx(-math.pi / 2, 0)
    seq.rx(-math.pi / 2, 1)


def _rzz(seq: _Seq, p: Sequence[float]) -> None:
    seq.op("cx", 0, 1)
    seq.rz(p[0], 1)
    seq.op("cx", 0, 1)


def _rzx(seq: _Seq, p: Sequence[float]) -> None:
    seq.op("h", 1)
    _rzz(seq, p)
    seq.op("h", 1)


def _ecr(seq: _Seq, p: Sequence[float]) -> None:
    _rzx(seq, (math.pi / 4,))
    seq.op("x", 0)
    _rzx(seq, (-math.pi / 4,))


def _iswap(seq: _Seq, p: Sequence[float]) -> None:
    seq.op("s", 0)
    seq.op("s", 1)
    seq.op("h", 0)
    seq.op("cx", 0, 1)
    seq.op("cx", 1, 0)
    seq.op("h", 1)


def _dcx(seq: _Seq, p: Sequence[float]) -> None:
    seq.op("cx", 0, 1)
    seq.op("cx", 1, 0)


def _r(seq: _Seq, p: Sequence[float]) -> None:
    theta, phi = p
    seq.rz(-phi, 0)
    seq.rx(theta, 0)
    seq.rz(phi, 0)


def _sx(sign: int) -> Callable[[_Seq, Sequence[float]], None]:
    def write(seq: _Seq, p: Sequence[float]) -> None:
        seq.rx(sign * math.pi / 2, 0)
        seq.phase += sign * math.pi / 4

    return write


def _p(seq: _Seq, p: Sequence[float]) -> None:
    seq.p(p[0], 0)


def _gphase(seq: _Seq, p: Sequence[float]) -> None:
    seq.phase += p[0]


def _nothing(seq: _Seq, p: Sequence[float]) -> None:
    return None


def _rccx(seq: _Seq, p: Sequence[float]) -> None:
    # qelib1.inc's relative-phase Toffoli, with u2(0, pi) = h and u1 = p.
    seq.u(math.pi / 2, 0, math.pi, 2)
    seq.p(math.pi / 4, 2)
    seq.op("cx", 1, 2)
    seq.p(-math.pi / 4, 2)
    seq.op("cx", 0, 2)
    seq.p(math.pi / 4, 2)
    seq.op("cx", 1, 2)
    seq.p(-math.pi / 4, 2)
    seq.u(math.pi / 2, 0, math.pi, 2)


def _rcccx(seq: _Seq, p: Sequence[float]) -> None:
    # qelib1.inc's rc3x (Qiskit's RC3XGate, "rcccx").
    pi = math.pi
    seq.u(pi / 2, 0, pi, 3)
    seq.p(pi / 4, 3)
    seq.op("cx", 2, 3)
    seq.p(-pi / 4, 3)
    seq.u(pi / 2, 0, pi, 3)
    seq.op("cx", 0, 3)
    seq.p(pi / 4, 3)
    seq.op("cx", 1, 3)
    seq.p(-pi / 4, 3)
    seq.op("cx", 0, 3)
    seq.p(pi / 4, 3)
    seq.op("cx", 1, 3)
    seq.p(-pi / 4, 3)
    seq.u(pi / 2, 0, pi, 3)
    seq.p(pi / 4, 3)
    seq.op("cx", 2, 3)
    seq.p(-pi / 4, 3)
    seq.u(pi / 2, 0, pi, 3)


def _rule(
    name: str, nq: int, np_: int, write: Callable[[_Seq, Sequence[float]], None], doc: str
) -> GateRule:
    return GateRule(name=name, num_qubits=nq, num_params=np_, write=write, doc=doc)


#: The gates the op table applies, each written as itself (its gate record's name).
_BASIC_RULES = tuple(
    _rule(spec.gate, spec.vqs.low, len(spec.args), _basic(spec.gate), f"the op {spec.name}")
    for spec in _GATE_OPS
    if spec.gate
)
_BASIC_NAMES = frozenset(rule.name for rule in _BASIC_RULES)

#: The standard gates written in the op table's gates.
_COMPOSITE_RULES = (
    _rule("id", 1, 0, _nothing, "nothing"),
    _rule("sx", 1, 0, _sx(1), "RX(pi/2), phase pi/4"),
    _rule("sxdg", 1, 0, _sx(-1), "RX(-pi/2), phase -pi/4"),
    _rule("p", 1, 1, _p, "RZ(l), phase l/2"),
    _rule("u", 1, 3, _u, "RZ(l) RY(t) RZ(p), phase (p+l)/2"),
    _rule("u2", 1, 2, lambda s, p: s.u(math.pi / 2, p[0], p[1], 0), "u(pi/2, p, l)"),
    _rule("r", 1, 2, _r, "RZ(-p) RX(t) RZ(p)"),
    _rule("cy", 2, 0, _cy, "SDG(t) CX S(t)"),
    _rule("ch", 2, 0, _ctrl("h", 1), "controlled H (ABC form)"),
    _rule("cs", 2, 0, _ctrl("s", 1), "cp(pi/2)"),
    _rule("csdg", 2, 0, _ctrl("sdg", 1), "cp(-pi/2)"),
    _rule("csx", 2, 0, _ctrl("sx", 1), "controlled SX (ABC form)"),
    _rule("cp", 2, 1, _cp, "p(l/2) c; CX; p(-l/2) t; CX; p(l/2) t"),
    _rule("crx", 2, 1, _crx, "H(t) CRZ H(t)"),
    _rule("cry", 2, 1, _cry, "RY(t/2) CX RY(-t/2) CX"),
    _rule("crz", 2, 1, _crz, "RZ(t/2) CX RZ(-t/2) CX"),
    _rule("cu", 2, 4, _cu, "controlled u(t,p,l) with phase g (ABC form)"),
    _rule("cu3", 2, 3, _ctrl("u", 1), "controlled u(t,p,l) (ABC form)"),
    _rule("iswap", 2, 0, _iswap, "S S H CX CX H"),
    _rule("dcx", 2, 0, _dcx, "CX(a,b) CX(b,a)"),
    _rule("ecr", 2, 0, _ecr, "RZX(pi/4) X RZX(-pi/4)"),
    _rule("rxx", 2, 1, _rxx, "H H RZZ H H"),
    _rule("ryy", 2, 1, _ryy, "RX(pi/2) RX(pi/2) RZZ RX(-pi/2) RX(-pi/2)"),
    _rule("rzz", 2, 1, _rzz, "CX RZ(t) CX"),
    _rule("rzx", 2, 1, _rzx, "H(t) RZZ H(t)"),
    _rule("cswap", 3, 0, _cswap, "CX(c,b) CCX CX(c,b)"),
    _rule("rccx", 3, 0, _rccx, "qelib1's relative-phase Toffoli"),
    _rule("rcccx", 4, 0, _rcccx, "qelib1's rc3x"),
    _rule("c3x", 4, 0, _ctrl("x", 3), "C^3 X (Barenco lemma 7.5)"),
    _rule("c3sx", 4, 0, _ctrl("sx", 3), "C^3 SX (Barenco lemma 7.5)"),
    _rule("c4x", 5, 0, _ctrl("x", 4), "C^4 X (Barenco lemma 7.5)"),
    _rule("gphase", 0, 1, _gphase, "a global phase"),
)
#: Every standard gate the front-ends know, by its Qiskit name: the op table's gates,
#: then those written in them (where a gate record names a gate written here too, as
#: ``sx`` would be, the record's rule is the one).
STANDARD_GATES: Mapping[str, GateRule] = {
    r.name: r for r in (*_BASIC_RULES, *(r for r in _COMPOSITE_RULES if r.name not in _BASIC_NAMES))
}

#: Other names of standard gates (OpenQASM 2 qelib1, OpenQASM 3 stdgates, Qiskit): those
#: of the op table's gate records (``CX``), then of the gates written in them.
ALIASES: Mapping[str, str] = {
    **{
        spelled: rule.name
        for rule in _BASIC_RULES
        for language in ("qasm2", "qasm3", "qiskit")
        for spelled in GATES[rule.name].names.of(language)
        if spelled != rule.name
    },
    "i": "id",
    "u0": "id",  # qelib1's u0(gamma) is an idle of gamma time units: the identity here
    "u3": "u",
    "U": "u",
    "u1": "p",
    "phase": "p",
    "cphase": "cp",
    "cu1": "cp",
    "cnot": "cx",
    "toffoli": "ccx",
    "fredkin": "cswap",
    "rc3x": "rcccx",
    "c3sqrtx": "c3sx",
    "global_phase": "gphase",
}

_PARAM_OVERRIDE = {"u0": 1}

#: The standard gates that are a one-parameter group in one of their parameters (the
#: others held): ``g(a + b) == g(a) g(b)`` and ``g(0) == I``, global phase included, so
#: ``g(sum of w_k b_k) == product of g(w_k)`` where the bits ``b_k`` are 1, and a
#: parameter known only at run time applies bit by bit. Gate -> the parameter's index.
ADDITIVE: Mapping[str, int] = {
    name: 0
    for name in (
        *("rx", "ry", "rz", "p", "r", "gphase"),
        *("cp", "crx", "cry", "crz", "rxx", "ryy", "rzz", "rzx"),
    )
}


#: A basic gate of an affine lowering: its name, local qubits, and its angle as
#: ``offset + slope * t`` of the gate's parameter ``t`` (0, 0 for a gate without one).
AffineInstr = tuple[str, tuple[int, ...], float, float]
# generic values of the parameter at which no rotation of a lowering vanishes
_PROBES = (0.6180339887498949, 1.4142135623730951, 2.718281828459045)


@functools.cache
def affine(name: str) -> tuple[tuple[AffineInstr, ...], float, float]:
    """Gate ``name`` of :data:`ADDITIVE` with one parameter ``t``, lowered with each basic
    gate's angle affine in ``t`` (``offset + slope * t``, every rotation kept, none
    dropped at angle 0). The global phase is ``offset, slope`` too. This is the chain
    rule from a basic gate's angle back to ``t``, which a gradient needs.

    Derived from :func:`lower_gate` at three values of ``t`` (each decomposition writes
    its angles as affine functions of the parameter), and checked to be affine.

    Raises:
        ValueError: a gate that is not additive in one parameter, or whose lowering is
            not affine in it.

    >>> ops, phase, slope = affine("crz")
    >>> [(g, q, o, s) for g, q, o, s in ops if s]
    [('rz', (1,), 0.0, 0.5), ('rz', (1,), 0.0, -0.5)]
    """
    key = canonical(name)
    if key is None or ADDITIVE.get(key) != 0 or STANDARD_GATES[key].num_params != 1:
        raise ValueError(f"gate {name} is not additive in one parameter")
    lows = [lower_gate(key, (t,)) for t in _PROBES]
    shapes = {tuple((g, q) for g, q, _ in low.ops) for low in lows}
    if len(shapes) != 1:
        raise ValueError(f"gate {name}'s lowering changes shape with its parameter")
    ops: list[AffineInstr] = []
    for at, (gate, qubits, params) in enumerate(lows[0].ops):
        angles = [low.ops[at][2][0] if params else 0.0 for low in lows]
        ops.append((gate, qubits, *_line(name, angles)))
    return tuple(ops), *_line(name, [low.phase for low in lows])


def _line(name: str, values: Sequence[float]) -> tuple[float, float]:
    """``(offset, slope)`` of the line through ``values`` at :data:`_PROBES` (slopes are
    simple fractions: rounded to 1/8 where that close)."""
    (a, b, c), (va, vb, vc) = _PROBES, values
    slope = (vb - va) / (b - a)
    if abs(slope * 8 - round(slope * 8)) < 1e-9:
        slope = round(slope * 8) / 8
    offset = va - slope * a
    if abs(offset + slope * c - vc) > 1e-9:
        raise ValueError(f"gate {name}'s lowering is not affine in its parameter")
    if abs(offset) < 1e-12:
        offset = 0.0
    return offset, slope


def canonical(name: str) -> str | None:
    """The table name of gate ``name`` (an alias resolved), or None if unknown."""
    if name in STANDARD_GATES:
        return name
    return ALIASES.get(name)


def arity(name: str) -> tuple[int, int]:
    """(qubits, parameters) of standard gate ``name`` (aliases allowed)."""
    rule = STANDARD_GATES[canonical(name) or name]
    return rule.num_qubits, _PARAM_OVERRIDE.get(name, rule.num_params)


def lower_gate(name: str, params: Sequence[float] = ()) -> Lowered:
    """Standard gate ``name`` (aliases allowed) with ``params`` as basic gates, exactly.

    Raises:
        KeyError: an unknown name. ValueError: the wrong number of parameters.
    """
    key = canonical(name)
    if key is None:
        raise KeyError(name)
    rule = STANDARD_GATES[key]
    want = _PARAM_OVERRIDE.get(name, rule.num_params)
    if len(params) != want:
        raise ValueError(f"gate {name} takes {want} parameters, got {len(params)}")
    if name in _PARAM_OVERRIDE:
        params = ()
    seq = _Seq(rule.num_qubits)
    rule.write(seq, tuple(float(p) for p in params))
    return seq.done()


def mcx(n_controls: int) -> Lowered:
    """X on the last of ``n_controls + 1`` qubits, controlled on the others."""
    return _mc_one_qubit(_X, n_controls)


def unitary(u: np.ndarray) -> Lowered:
    """A one-qubit unitary matrix as basic gates (its phase kept).

    Raises:
        ValueError: a matrix that is not 2x2.
    """
    u = np.asarray(u, dtype=complex)
    if u.shape != (2, 2):
        raise ValueError(f"only 2x2 unitaries are lowered from a matrix, got shape {u.shape}")
    name = _named_one_qubit(u)
    if name is not None:
        return Lowered(num_qubits=1, ops=((name, (0,), ()),))
    return one_qubit(u)
