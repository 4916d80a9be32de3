"""The statevector engine: numpy amplitudes, with fused gates and lazy bookkeeping.

:class:`StatevectorEngine` is the universal engine: every gate of
:data:`~qmk.engines.gates.GATES`, any basis, exact amplitudes. It keeps the state as a
dense tensor but does as little work on it as the circuit allows:

- a qubit that is still in a computational basis state (freshly allocated, flipped
  by ``x``, measured, reset) holds no amplitudes at all: it is a classical bit.
- ``cx``, ``x`` and ``swap`` are bookkeeping on which parity of the tensor's
  variables each qubit reads (a GF(2) row operation), not passes over the amplitudes.
  A GHZ state of any size is one variable in |+> that every qubit reads. When a qubit
  needs a variable of its own again, the pending ``cx`` gates are replayed as changes
  of variables (slice swaps). That is never more than there were gates, and fewer where
  they cancel (``cx rz cx`` costs none).
- diagonal gates (``z s sdg t tdg rz cz ccz`` and fused diagonal one-qubit products)
  become pending parity phases. All phases that involve one variable are applied in
  a single multiply over half the state, and only when a non-diagonal gate needs it.
- consecutive one-qubit gates on a qubit fuse into one pending 2x2 matrix, applied
  in one pass when a multi-qubit gate, measurement or sample needs that qubit.
- measuring (or resetting, or freeing) a qubit removes its variable, so the tensor
  shrinks.
- a *segment* of gates is fused (:meth:`~StatevectorEngine.apply_segment`, which the
  executor uses for every run of unitary ops). Its one-qubit gates that mix amplitudes
  go into blocks of up to 3 qubits. Runs of diagonal gates (a controlled phase written
  as CX and RZ too) go into diagonal blocks of up to 10 (:mod:`qmk.engines.fusion`).
  Each block is applied in one pass by SIMD kernels compiled for this CPU
  (:mod:`qmk.engines.simd`, with llvmlite; numpy without it, :mod:`qmk.engines.kernels`).
  So a random circuit costs about one pass per two two-qubit gates instead of two per
  one-qubit gate.

The represented state, for live qubits ``q`` and tensor variables ``x``, is::

    e^{i g} (prod_q U_q) sum_x psi(x) e^{i sum_m theta_m (m . x)} |y(x)>,
    y_q(x) = (A_q . x) xor c_q          (parities over GF(2))

with pending one-qubit matrices ``U_q``, pending parity phases ``theta_m`` and the
rows ``A_q`` kept injective. Everything the engine reports (probabilities, samples,
:meth:`~StatevectorEngine.state_vector`) is of that state; the representation is
never visible. ``fuse=False`` applies everything after each call: a slower path kept
as a cross-check, since both give the same states.

Memory: the tensor never has more axes than there are live qubits. A guard
(``max_bytes``, default :data:`DEFAULT_MAX_BYTES` or ``$QMK_MAX_STATE_BYTES``) caps
live qubits so that the state plus one working copy fits. :meth:`allocate` refuses
past it before allocating anything.

>>> engine = StatevectorEngine(seed=1)
>>> a, b, c = engine.allocate(), engine.allocate(), engine.allocate()
>>> engine.apply("h", [a]); engine.apply("cx", [a, b]); engine.apply("cx", [b, c])
>>> engine.probabilities([a, b, c]).round(3).tolist()
[0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5]
>>> sorted({tuple(row) for row in engine.sample([a, b, c], 100).tolist()})
[(0, 0, 0), (1, 1, 1)]
"""

from __future__ import annotations

import cmath
import copy
import heapq
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from qmk.engines import kernels
from qmk.engines.base import (
    IMPOSSIBLE,
    CheckedGate,
    EngineError,
    GateCall,
    GateEngine,
    check_basis,
    check_outcome,
    check_shots,
    check_snapshot,
    draw_pauli,
    outcome_impossible,
    rng_state,
)
from qmk.engines.batch import BatchCircuit, BatchSampler
from qmk.engines.gates import GATES
from qmk.engines.lazy_state import LazyState
from qmk.engines.limits import DEFAULT_MAX_BYTES, MAX_BYTES_ENV
from qmk.engines.sampling import FLAT_SAMPLING as _FLAT_SAMPLING

_DTYPES: dict[str, np.dtype[Any]] = {
    "complex64": np.dtype(np.complex64),
    "complex128": np.dtype(np.complex128),
}
_H = GATES["h"].matrix()
_S = GATES["s"].matrix()
_SDG = GATES["sdg"].matrix()
#: The widest dense block :meth:`StatevectorEngine.apply_segment` fuses into by default.
#: The kernels are bound by arithmetic, not memory, once a block is 4 qubits wide, so
#: 3-qubit blocks win by doing fewer multiply-adds in all (``docs/engines.md`` has the
#: measurements).
DEFAULT_FUSED = 3
#: Segments on fewer tensor axes than this run gate by gate (:meth:`apply_segment`): a
#: state this small gains a few milliseconds at most, less than compiling the kernel
#: shapes a fresh process would need.
DEFAULT_FUSED_MIN_QUBITS = 10
#: Basis changes (before, after) that turn an X or Y measurement into a Z one.
_ROTATIONS = {"Z": ((), ()), "X": ((_H,), (_H,)), "Y": ((_SDG, _H), (_H, _S))}


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class StatevectorSnapshot:
    """A saved :class:`StatevectorEngine` state: opaque, give it back to ``restore``."""

    psi: np.ndarray
    variables: tuple[int, ...]
    rows: tuple[tuple[int, int, int], ...]
    pending: tuple[tuple[int, np.ndarray], ...]
    terms: tuple[tuple[int, float], ...]
    global_phase: float
    free_qubits: tuple[int, ...]
    next_qubit: int
    free_vars: tuple[int, ...]
    next_var: int
    log: tuple[tuple[int, int], ...] | None
    home: tuple[tuple[int, int], ...]
    rng_state: Mapping[str, Any]


def _complex_dtype(dtype: Any) -> np.dtype:
    if isinstance(dtype, str):
        name = dtype
    elif dtype is np.complex64 or dtype is np.complex128 or isinstance(dtype, np.dtype):
        name = np.dtype(dtype).name
    else:
        name = None
    if name in _DTYPES:
        return _DTYPES[name]
    raise EngineError.of(
        "engine-misuse",
        f"statevector dtype must be complex128 or complex64, not {dtype!r}",
        dtype=repr(dtype),
    )


def _limit_bytes(max_bytes: int | None) -> int:
    source = "max_bytes"
    value: Any = max_bytes
    if value is None:
        text = os.environ.get(MAX_BYTES_ENV)
        if text is None:
            return DEFAULT_MAX_BYTES
        source = f"${MAX_BYTES_ENV}"
        try:
            value = int(text.strip())
        except ValueError:
            value = text
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise EngineError.of(
            "engine-misuse",
            f"{source} must be a positive whole number of bytes, not {value!r}",
            source=source,
        )
    return int(value)


def _whole(value: Any, name: str, low: int, high: int) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or not (low <= value <= high)
    ):
        raise EngineError.of(
            "engine-misuse", f"{name} must be a whole number from {low} to {high}, not {value!r}"
        )
    return int(value)


def _kernels_option(value: Any) -> str:
    if value is None:
        return kernels.default_kernels()
    if value not in kernels.KERNELS:
        raise EngineError.of(
            "engine-misuse",
            f"kernels must be one of {', '.join(kernels.KERNELS)}, not {value!r}",
        )
    if value == "simd" and kernels.default_kernels() != "simd":
        raise EngineError.of(
            "engine-misuse",
            "kernels='simd' needs llvmlite's compiler, which cannot start here: "
            f"{kernels.simd.unavailable_reason()}",
        )
    return str(value)


def _human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.3g} {unit}"
        count /= 1024
    return f"{count:.3g} TiB"


class StatevectorEngine(GateEngine, LazyState):
    """A numpy statevector engine (see the module docstring for how it saves work).

    The engine is the protocol's face: it checks every call (qubits, gates, bases,
    counts) and saves, restores and reads out the whole state. It hands each checked
    call to the lazy representation below it (:class:`~qmk.engines.lazy_state.LazyState`:
    the tensor, the parity rows and constants, the pending matrices and phases and the
    work on them).

    Args:
        seed: seeds the engine's one RNG (``np.random.default_rng(seed)``); measurement,
            Pauli channels and sampling all draw from it, so the same seed and the same
            calls give the same results.
        dtype: ``np.complex128`` (default) or ``np.complex64`` (also as strings):
            half the memory, about 1e-7 precision.
        max_bytes: memory cap for amplitudes plus one working copy; default
            ``$QMK_MAX_STATE_BYTES`` or :data:`DEFAULT_MAX_BYTES` (8 GiB).
        fuse: False applies every pending gate and phase after each call (slower; the
            same states), and :meth:`apply_segment` gate by gate.
        max_fused: the widest dense block :meth:`apply_segment` fuses gates into
            (default :data:`DEFAULT_FUSED`, 3; diagonal blocks go up to
            :data:`~qmk.engines.fusion.DIAGONAL_WIDTH`); 1 applies segments gate by gate.
        kernels: ``"simd"`` or ``"numpy"``, what applies a fused block
            (:mod:`~qmk.engines.kernels`); default: ``simd`` where llvmlite is installed.
        fused_min_qubits: segments on smaller states run gate by gate (default
            :data:`DEFAULT_FUSED_MIN_QUBITS`; 0 fuses every segment that qualifies).

    Raises:
        EngineError: ``engine-misuse`` for a dtype other than complex64/complex128, a
            ``max_bytes`` that is not a positive integer, a ``max_fused`` outside 1-6,
            an unknown ``kernels`` or ``simd`` where llvmlite is not installed.

    >>> engine = StatevectorEngine(seed=3, dtype="complex64", max_bytes=2**20)
    >>> engine.max_qubits
    16
    >>> q = engine.allocate(); engine.apply("ry", [q], [2 * math.asin(0.6)])
    >>> round(engine.probability(q), 6), engine.measure(q, "Z") in (0, 1)
    (0.36, True)
    """

    name: ClassVar[str] = "statevector"

    @staticmethod
    def compile_batch(circuit: BatchCircuit) -> BatchSampler | None:
        """The batch capability (:mod:`qmk.engines.batch`): a noisy ``circuit`` whose
        measurements all come after its gates, as its exact density matrix sampled in
        bulk (:mod:`qmk.engines.density`); None for any other circuit."""
        from qmk.engines.density import compile_density

        return compile_density(circuit)

    def __init__(
        self,
        *,
        seed: int | None = None,
        dtype: Any = np.complex128,
        max_bytes: int | None = None,
        fuse: bool = True,
        max_fused: int = DEFAULT_FUSED,
        kernels: str | None = None,
        fused_min_qubits: int = DEFAULT_FUSED_MIN_QUBITS,
    ) -> None:
        complex_dtype = _complex_dtype(dtype)
        widest = _whole(max_fused, "max_fused", 1, 6)
        fused_min = _whole(fused_min_qubits, "fused_min_qubits", 0, 64)
        chosen = _kernels_option(kernels)
        self._max_bytes = _limit_bytes(max_bytes)
        per_amplitude = 2 * complex_dtype.itemsize  # the state and one working copy
        fits = self._max_bytes // per_amplitude
        self._max_qubits = fits.bit_length() - 1 if fits else 0
        super().__init__(
            dtype=complex_dtype,
            seed=seed,
            fuse=fuse,
            max_fused=widest,
            fused_min=fused_min,
            kernels=chosen,
        )

    # ------------------------------------------------------------------ properties

    @property
    def max_qubits(self) -> int:
        """The most live qubits the memory guard allows."""
        return self._max_qubits

    @property
    def num_qubits(self) -> int:
        """Live qubits now."""
        return len(self._rows)

    @property
    def dtype(self) -> np.dtype:
        """The amplitudes' numpy dtype."""
        return self._dtype

    @property
    def kernels(self) -> str:
        """What applies fused blocks: ``"simd"`` or ``"numpy"`` (:mod:`qmk.engines.kernels`)."""
        return self._kernels

    @property
    def max_bytes(self) -> int:
        """The memory guard's limit in bytes (state plus one working copy)."""
        return self._max_bytes

    @property
    def tensor_qubits(self) -> int:
        """Axes of the amplitude tensor now (at most :attr:`num_qubits`): its size is
        ``2**tensor_qubits`` amplitudes. Classical and copied qubits add none.

        >>> engine = StatevectorEngine(seed=0)
        >>> qs = [engine.allocate() for _ in range(25)]
        >>> engine.apply("h", [qs[0]])
        >>> for a, b in zip(qs, qs[1:]): engine.apply("cx", [a, b])
        >>> sorted(set(engine.sample(qs, 50).sum(axis=1).tolist()))
        [0, 25]
        >>> engine.tensor_qubits
        1
        """
        return self._psi.ndim

    # ------------------------------------------------------------------ protocol

    def allocate(self) -> int:
        """A fresh qubit in ``|0>`` (it costs no amplitudes until a gate entangles it).

        Raises:
            EngineError: ``engine-capacity`` past :attr:`max_qubits`, before allocating.
        """
        wanted = len(self._rows) + 1
        if wanted > self._max_qubits:
            need = (1 << wanted) * 2 * self._dtype.itemsize
            raise EngineError.of(
                "engine-capacity",
                f"a statevector of {wanted} qubits needs {_human_bytes(need)} "
                f"({self._dtype.name}, state plus one working copy) but the limit is "
                f"{_human_bytes(self._max_bytes)}; free qubits, use dtype complex64, raise "
                f"${MAX_BYTES_ENV}, or run Clifford programs on the stabilizer engine",
                qubits=wanted,
                needed_bytes=need,
                max_bytes=self._max_bytes,
                dtype=self._dtype.name,
            )
        if self._free_qubits:
            qubit = heapq.heappop(self._free_qubits)
        else:
            qubit = self._next_qubit
            self._next_qubit += 1
        self._rows[qubit] = 0
        self._consts[qubit] = 0
        return qubit

    def load_amplitudes(self, qubits: Sequence[int], amplitudes: np.ndarray) -> None:
        """Put fresh ``qubits`` (allocated, untouched, in ``|0>``) into the state
        ``amplitudes``, little-endian (bit k of the index is ``qubits[k]``), in one step:
        the vector becomes new tensor axes, with no gates.

        Raises:
            EngineError: ``engine-misuse`` for a qubit that is not fresh or a vector that
                is not ``2**len(qubits)`` finite amplitudes of norm 1.

        >>> engine = StatevectorEngine(seed=0)
        >>> a, b = engine.allocate(), engine.allocate()
        >>> engine.load_amplitudes([a, b], np.array([0, 1, 0, 0]))  # a = 1, b = 0
        >>> engine.state_vector([b, a]).real.round(3).tolist()
        [0.0, 1.0, 0.0, 0.0]
        """
        qs = self._qubits(qubits, what="load_amplitudes")
        for q in qs:
            if self._rows[q] or self._consts[q] or q in self._pending:
                raise EngineError.of(
                    "engine-misuse", f"load_amplitudes needs fresh qubits; qubit {q} was used"
                )
        vector = np.asarray(amplitudes, dtype=np.complex128).reshape(-1)
        if vector.size != 1 << len(qs) or not np.isfinite(vector).all():
            raise EngineError.of(
                "engine-misuse",
                f"load_amplitudes needs 2**{len(qs)} finite amplitudes, got {vector.size}",
            )
        norm = float(np.linalg.norm(vector))
        if abs(norm - 1) > 1e-6:
            raise EngineError.of("engine-misuse", f"the amplitudes' norm is {norm:g}, not 1")
        # axis 0 of the reshaped vector is its most significant bit: the last qubit
        block = (vector / norm).astype(self._dtype).reshape((2,) * len(qs))
        self._psi = np.multiply.outer(self._psi, block)
        self._spare = None
        for q in reversed(qs):
            var = self._new_var()
            self._vars.append(var)
            self._rows[q] = 1 << var
            self._home[q] = var

    def free(self, qubit: int) -> None:
        """Measure ``qubit`` in Z (one RNG draw) and forget it; its index may be reused."""
        q = self._check_qubit(qubit)
        self._measure_z(q)
        del self._rows[q], self._consts[q]
        heapq.heappush(self._free_qubits, q)
        self._after_call()

    def _apply_gate(self, gate: str, qubits: list[int], params: tuple[float, ...]) -> None:
        """One checked gate through the bookkeeping (:meth:`_apply_checked`).

        >>> engine = StatevectorEngine(seed=0)
        >>> q = engine.allocate()
        >>> engine.apply("cx", [q])
        Traceback (most recent call last):
        ...
        qmk.engines.base.EngineError: QE105 engine-misuse: cx acts on 2 distinct qubits, got [0]
        """
        self._apply_checked(gate, qubits, params)
        self._after_call()

    def apply_segment(self, gates: Sequence[GateCall]) -> None:
        """Apply a run of gates (``(gate, qubits, params)`` each, in order) at once.

        Every gate is checked first, so a bad one leaves the state as it was. A segment
        whose one-qubit gates mix amplitudes (``h``, ``rx``, ``ry``...) on a state of at
        least ``fused_min_qubits`` axes is fused (:func:`~qmk.engines.fusion.plan`). Its
        blocks of up to ``max_fused`` qubits are each applied in one pass by the compiled
        kernels. Its qubits are first given tensor axes of their own, their pending
        bookkeeping folded into the first block. Other segments go gate by gate as
        :meth:`apply` would. So do those that would make qubits the bookkeeping holds for
        free (classical bits, copies) take up amplitudes. Either way the state is the
        same, up to rounding.

        Raises:
            EngineError: as :meth:`apply`, for the first bad gate, before any is applied.

        >>> engine = StatevectorEngine(seed=0, fused_min_qubits=0)
        >>> qs = [engine.allocate() for _ in range(3)]
        >>> engine.apply_segment([("h", [qs[0]], []), ("ry", [qs[1]], [0.5]),
        ...                       ("cx", qs[:2], []), ("cz", qs[1:], []), ("rx", [qs[2]], [1.0])])
        >>> reference = StatevectorEngine(seed=0, max_fused=1)
        >>> rs = [reference.allocate() for _ in range(3)]
        >>> reference.apply("h", [rs[0]]); reference.apply("ry", [rs[1]], [0.5])
        >>> reference.apply("cx", rs[:2]); reference.apply("cz", rs[1:])
        >>> reference.apply("rx", [rs[2]], [1.0])
        >>> bool(np.allclose(engine.state_vector(qs), reference.state_vector(rs)))
        True
        """
        super().apply_segment(gates)

    def _apply_gates(self, checked: Sequence[CheckedGate]) -> None:
        """A checked segment: fused where :meth:`_fusable`, else gate by gate."""
        if self._fusable(checked):
            self._apply_fused(checked)
            return
        for gate, qs, values in checked:
            self._apply_checked(gate, qs, values)
            self._after_call()

    def check_gate(
        self, gate: str, qubits: Sequence[int], params: Sequence[float] = ()
    ) -> CheckedGate:
        """The gate call checked as the base checks it (:class:`GateEngine`), the common
        case quickly: a segment may hold thousands of gates."""
        spec = GATES.get(gate) if isinstance(gate, str) else None
        if spec is not None and len(qubits) == spec.qubits and len(params) == len(spec.params):
            rows = self._rows
            if spec.qubits == 1:  # no generator, no set: the common gate's check, kept lean
                first = qubits[0]
                live = type(first) is int and first in rows
            elif spec.qubits == 2:  # most multi-qubit gates: no list, no set
                a, b = qubits
                live = type(a) is int and type(b) is int and a != b and a in rows and b in rows
            else:
                live = all([type(q) is int and q in rows for q in qubits])
                live = live and len(set(qubits)) == spec.qubits
            if live:
                if not params:
                    return gate, list(qubits), ()
                try:
                    values = tuple(map(float, params))
                except (TypeError, ValueError):
                    values = (math.nan,)
                if all(map(math.isfinite, values)):
                    return gate, list(qubits), values
        return super().check_gate(gate, qubits, params)

    def probability(self, qubit: int, basis: str = "Z") -> float:
        """The probability that measuring ``qubit`` in ``basis`` gives 1 (the -1 eigenstate).

        >>> engine = StatevectorEngine(seed=0)
        >>> q = engine.allocate(); engine.apply("h", [q])
        >>> engine.probability(q, "X"), round(engine.probability(q, "Y"), 12)
        (0.0, 0.5)
        """
        q = self._check_qubit(qubit)
        before, after = self._rotation(basis)
        for u in before:
            self._gate1(q, u)
        p1 = self._z_distribution(q)[1]
        for u in after:
            self._gate1(q, u)
        self._after_call()
        return p1

    def collapse(self, qubit: int, outcome: int, basis: str = "Z") -> None:
        """Project ``qubit`` onto ``outcome`` (0: the +1 eigenstate) in ``basis``; renormalise.

        Raises:
            EngineError: ``outcome-impossible`` when that outcome has probability 0 (the
                state is left as it was); ``engine-misuse`` for a bad qubit, outcome or basis.
        """
        q = self._check_qubit(qubit)
        outcome = check_outcome(outcome)
        before, after = self._rotation(basis)
        for u in before:
            self._gate1(q, u)
        probs = self._z_distribution(q)
        if probs[outcome] <= IMPOSSIBLE:
            for u in after:
                self._gate1(q, u)
            self._after_call()
            raise outcome_impossible(q, outcome, basis, probs[outcome])
        self._collapse_z(q, outcome)
        for u in after:
            self._gate1(q, u)
        self._after_call()

    def measure(self, qubit: int, basis: str = "Z") -> int:
        """Measure ``qubit`` in ``basis`` with the RNG (one draw); it stays, collapsed.

        >>> engine = StatevectorEngine(seed=5)
        >>> q = engine.allocate(); engine.apply("h", [q])
        >>> engine.measure(q, "X"), engine.measure(q, "X")
        (0, 0)
        """
        q = self._check_qubit(qubit)
        before, after = self._rotation(basis)
        for u in before:
            self._gate1(q, u)
        outcome = self._measure_z(q)
        for u in after:
            self._gate1(q, u)
        self._after_call()
        return outcome

    def reset(self, qubit: int) -> None:
        """Return ``qubit`` to ``|0>``: a Z measurement (one RNG draw), then a flip if 1."""
        q = self._check_qubit(qubit)
        self._measure_z(q)
        self._consts[q] = 0
        self._after_call()

    def apply_pauli_channel(self, qubit: int, px: float, py: float, pz: float) -> str:
        """Apply X, Y or Z with probabilities ``px``, ``py``, ``pz`` (one RNG draw).

        Returns:
            ``"X"``, ``"Y"``, ``"Z"`` or ``"I"``: what was applied.

        Raises:
            EngineError: ``engine-misuse`` unless the probabilities are in [0, 1] and sum
                to at most 1.

        >>> engine = StatevectorEngine(seed=2)
        >>> q = engine.allocate()
        >>> engine.apply_pauli_channel(q, 1.0, 0.0, 0.0), engine.probability(q)
        ('X', 1.0)
        """
        q = self._check_qubit(qubit)
        pauli = draw_pauli(self._rng, px, py, pz)
        if pauli == "I":
            return pauli
        self._gate1(q, GATES[pauli.lower()].matrix())
        self._after_call()
        return pauli

    def snapshot(self) -> StatevectorSnapshot:
        """A copy of the whole state: amplitudes, live qubits, pending work and RNG.

        >>> engine = StatevectorEngine(seed=9)
        >>> q = engine.allocate(); engine.apply("h", [q]); saved = engine.snapshot()
        >>> first = engine.measure(q)
        >>> engine.restore(saved); engine.measure(q) == first
        True
        """
        return StatevectorSnapshot(
            psi=self._psi.copy(),
            variables=tuple(self._vars),
            rows=tuple((q, row, self._consts[q]) for q, row in self._rows.items()),
            pending=tuple((q, u.copy()) for q, u in self._pending.items()),
            terms=tuple(self._terms.items()),
            global_phase=self._gphase,
            free_qubits=tuple(self._free_qubits),
            next_qubit=self._next_qubit,
            free_vars=tuple(self._free_vars),
            next_var=self._next_var,
            log=None if self._log is None else tuple(self._log),
            home=tuple(self._home.items()),
            rng_state=rng_state(self._rng),
        )

    def restore(self, snapshot: Any) -> None:
        """Return to a state :meth:`snapshot` gave (the snapshot stays reusable).

        Raises:
            EngineError: ``engine-misuse`` for anything but a statevector snapshot.
        """
        snapshot = check_snapshot(snapshot, StatevectorSnapshot, self.name)
        held, saved = self._psi, snapshot.psi
        if (
            held.shape == saved.shape
            and held.dtype == self._dtype
            and held.flags.c_contiguous
            and held.flags.writeable
            and held is not saved
        ):
            # into the amplitudes' own buffer, and the working copy kept: a new array
            # costs its page faults, many times the copy itself, at each branch a noisy
            # run restores
            np.copyto(held, saved, casting="same_kind")
        else:
            self._psi = saved.astype(self._dtype, copy=True)
            self._spare = None
        self._vars = list(snapshot.variables)
        self._rows = {q: row for q, row, _ in snapshot.rows}
        self._consts = {q: const for q, _, const in snapshot.rows}
        self._pending = {q: u.copy() for q, u in snapshot.pending}
        self._terms = dict(snapshot.terms)
        self._gphase = snapshot.global_phase
        self._free_qubits = list(snapshot.free_qubits)
        self._next_qubit = snapshot.next_qubit
        self._free_vars = list(snapshot.free_vars)
        self._next_var = snapshot.next_var
        self._log = None if snapshot.log is None else list(snapshot.log)
        self._home = dict(snapshot.home)
        self._rng.bit_generator.state = copy.deepcopy(snapshot.rng_state)

    @staticmethod
    def export_snapshot(snapshot: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``snapshot`` as plain data: JSON values and named arrays (for a checkpoint file).

        >>> engine = StatevectorEngine(seed=2)
        >>> q = engine.allocate(); engine.apply("ry", [q], [0.4]); saved = engine.snapshot()
        >>> meta, arrays = StatevectorEngine.export_snapshot(saved)
        >>> other = StatevectorEngine(seed=0)
        >>> other.restore(StatevectorEngine.import_snapshot(meta, arrays))
        >>> round(other.probability(q), 12) == round(engine.probability(q), 12)
        True
        """
        snapshot = check_snapshot(snapshot, StatevectorSnapshot, StatevectorEngine.name)
        meta = {
            "variables": list(snapshot.variables),
            "rows": [list(r) for r in snapshot.rows],
            "pending": [q for q, _ in snapshot.pending],
            "terms": [[mask, phase] for mask, phase in snapshot.terms],
            "global_phase": snapshot.global_phase,
            "free_qubits": list(snapshot.free_qubits),
            "next_qubit": snapshot.next_qubit,
            "free_vars": list(snapshot.free_vars),
            "next_var": snapshot.next_var,
            "log": None if snapshot.log is None else [list(e) for e in snapshot.log],
            "home": [list(e) for e in snapshot.home],
            "rng_state": snapshot.rng_state,
        }
        matrices = [u for _, u in snapshot.pending]
        arrays = {
            "psi": snapshot.psi,
            "pending": np.stack(matrices) if matrices else np.zeros((0, 2, 2), complex),
        }
        return meta, arrays

    @staticmethod
    def import_snapshot(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Any:
        """The snapshot :meth:`export_snapshot` wrote as ``meta`` and ``arrays``."""
        return StatevectorSnapshot(
            psi=np.asarray(arrays["psi"]),
            variables=tuple(int(v) for v in meta["variables"]),
            rows=tuple((int(q), int(r), int(c)) for q, r, c in meta["rows"]),
            pending=tuple(
                (int(q), np.asarray(u))
                for q, u in zip(meta["pending"], arrays["pending"], strict=True)
            ),
            terms=tuple((int(m), float(p)) for m, p in meta["terms"]),
            global_phase=float(meta["global_phase"]),
            free_qubits=tuple(int(q) for q in meta["free_qubits"]),
            next_qubit=int(meta["next_qubit"]),
            free_vars=tuple(int(v) for v in meta["free_vars"]),
            next_var=int(meta["next_var"]),
            log=None if meta["log"] is None else tuple((int(a), int(b)) for a, b in meta["log"]),
            home=tuple((int(a), int(b)) for a, b in meta["home"]),
            rng_state=meta["rng_state"],
        )

    def reseed(self, seed: int) -> None:
        """Replace the RNG with ``np.random.default_rng(seed)``, keeping the quantum state
        (so branches restored from one snapshot need not replay the same draws).

        >>> engine = StatevectorEngine(seed=1)
        >>> q = engine.allocate(); engine.apply("h", [q]); saved = engine.snapshot()
        >>> engine.reseed(5); first = engine.sample([q], 20).ravel().tolist()
        >>> engine.restore(saved); engine.reseed(5)
        >>> engine.sample([q], 20).ravel().tolist() == first, engine.probability(q, "X")
        (True, 0.0)
        """
        self._rng = np.random.default_rng(seed)

    def sample(self, qubits: Sequence[int], shots: int) -> np.ndarray:
        """``shots`` joint Z-basis outcomes of ``qubits`` without changing the state.

        Returns:
            uint8 array of shape ``(shots, len(qubits))``, columns in the order of ``qubits``.

        >>> engine = StatevectorEngine(seed=4)
        >>> a, b = engine.allocate(), engine.allocate()
        >>> engine.apply("x", [b]); engine.apply("h", [a])
        >>> out = engine.sample([b, a], 1000)
        >>> out.shape, out.dtype.name, set(out[:, 0].tolist()), 400 < int(out[:, 1].sum()) < 600
        ((1000, 2), 'uint8', {1}, True)
        """
        qs = self._qubits(qubits, what="sample", distinct=False)
        shots = check_shots(shots)
        for q in qs:
            self._settle(q)
        if self._reads_every_axis(qs) and self._psi.size > _FLAT_SAMPLING:
            # the whole state: drawn from the amplitudes, without a probability array
            axes, index = list(self._vars), self._draw(self._psi.reshape(-1), shots, True)
        else:
            axes, probs = self._marginal(qs)
            index = self._draw(probs, shots)
        out = np.empty((shots, len(qs)), dtype=np.uint8)
        for column, q in enumerate(qs):
            out[:, column] = self._readout(q, axes, index)
        self._after_call()
        return out

    # ------------------------------------------------------------------ extras

    def probabilities(self, qubits: Sequence[int]) -> np.ndarray:
        """The exact Z-basis distribution of ``qubits``: ``2**len(qubits)`` probabilities,
        ``qubits[0]`` the most significant bit of the outcome index.

        >>> engine = StatevectorEngine(seed=0)
        >>> a, b = engine.allocate(), engine.allocate()
        >>> engine.apply("ry", [b], [math.pi / 3])
        >>> engine.probabilities([a, b]).round(3).tolist()
        [0.75, 0.25, 0.0, 0.0]
        >>> engine.probabilities([b]).round(3).tolist()
        [0.75, 0.25]
        """
        qs = self._qubits(qubits, what="probabilities", distinct=False)
        for q in qs:
            self._settle(q)
        axes, probs = self._marginal(qs)
        index = np.arange(len(probs), dtype=np.int64)
        outcome = np.zeros(len(probs), dtype=np.int64)
        for q in qs:
            outcome = (outcome << 1) | self._readout(q, axes, index)
        out = np.bincount(outcome, weights=probs, minlength=1 << len(qs))
        self._after_call()
        return out / out.sum()

    def state_vector(self, qubits: Sequence[int] | None = None) -> np.ndarray:
        """The amplitudes over all live qubits, ``qubits[0]`` most significant (default:
        live qubits in increasing index order). Global phase included. A copy; for tests.

        >>> engine = StatevectorEngine(seed=0)
        >>> a, b = engine.allocate(), engine.allocate()
        >>> engine.apply("x", [a]); engine.apply("s", [a])
        >>> engine.state_vector([a, b]).round(3).tolist()
        [0j, 0j, 1j, 0j]
        """
        order = sorted(self._rows) if qubits is None else self._qubits(qubits, what="state_vector")
        if sorted(order) != sorted(self._rows):
            raise EngineError.of(
                "engine-misuse",
                f"state_vector needs every live qubit once ({sorted(self._rows)}), got {order}",
            )
        twin = StatevectorEngine(dtype=self._dtype, max_bytes=self._max_bytes)
        twin.restore(self.snapshot())
        twin._materialize()
        tensor = twin._psi
        axis_of = {}
        for q in order:
            row = twin._rows[q]
            if row:
                axis_of[q] = twin._vars.index(row.bit_length() - 1)
            else:
                basis = np.zeros(2, dtype=self._dtype)
                basis[twin._consts[q]] = 1
                axis_of[q] = tensor.ndim
                tensor = np.multiply.outer(tensor, basis)
        tensor = np.transpose(tensor, [axis_of[q] for q in order]).reshape(-1)
        return tensor * np.asarray(cmath.exp(1j * twin._gphase), dtype=self._dtype)

    # ------------------------------------------------------------------ validation

    def _check_qubit(self, qubit: Any) -> int:
        if isinstance(qubit, bool) or not isinstance(qubit, (int, np.integer)):
            raise EngineError.of(
                "engine-misuse", f"a qubit is an int the engine handed out, not {qubit!r}"
            )
        q = int(qubit)
        if q not in self._rows:
            raise EngineError.of(
                "engine-misuse",
                f"qubit {q} is not live (live: {sorted(self._rows)}); allocate() hands them out",
                qubit=q,
            )
        return q

    def _qubits(self, qubits: Sequence[int], *, what: str, distinct: bool = True) -> list[int]:
        if isinstance(qubits, (str, bytes)) or not isinstance(qubits, Sequence):
            qubits = list(qubits)  # iterables, numpy arrays
        qs = [self._check_qubit(q) for q in qubits]
        if distinct and len(set(qs)) != len(qs):
            raise EngineError.of(
                "engine-misuse", f"{what} got a qubit twice: {qs}", qubits=qs, op=what
            )
        return qs

    @staticmethod
    def _rotation(basis: str) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        return _ROTATIONS[check_basis(basis)]

    def _after_call(self) -> None:
        if not self._fuse:
            self._materialize()
