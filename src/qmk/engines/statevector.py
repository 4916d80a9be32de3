"""The statevector engine: numpy amplitudes, with fused gates and lazy bookkeeping.

:class:`StatevectorEngine` is the universal engine: every gate of
:data:`~qmk.engines.gates.GATES`, any basis, exact amplitudes. It keeps the state as a
dense tensor but does as little work on it as the circuit allows:

- a qubit that is still in a computational basis state (freshly allocated, flipped
  by ``x``, measured, reset) holds no amplitudes at all: it is a classical bit;
- ``cx``, ``x`` and ``swap`` are bookkeeping on which parity of the tensor's
  variables each qubit reads (a GF(2) row operation), not passes over the amplitudes;
  a GHZ state of any size is one variable in |+> that every qubit reads. When a qubit
  needs a variable of its own again, the pending ``cx`` gates are replayed as changes
  of variables (slice swaps), never more than there were gates, and fewer where they
  cancel (``cx rz cx`` costs none);
- diagonal gates (``z s sdg t tdg rz cz ccz`` and fused diagonal one-qubit products)
  become pending parity phases; all phases that involve one variable are applied in
  a single multiply over half the state, and only when a non-diagonal gate needs it;
- consecutive one-qubit gates on a qubit fuse into one pending 2x2 matrix, applied
  in one pass when a multi-qubit gate, measurement or sample needs that qubit;
- measuring (or resetting, or freeing) a qubit removes its variable, so the tensor
  shrinks;
- a *segment* of gates (:meth:`~StatevectorEngine.apply_segment`, which the executor uses
  for every run of unitary ops) whose one-qubit gates mix amplitudes is fused into
  blocks of up to 3 qubits, and runs of diagonal gates (a controlled phase written as
  CX and RZ too) into diagonal blocks of up to 10 (:mod:`qmk.engines.fusion`), each
  applied in one pass by SIMD kernels compiled for this CPU (:mod:`qmk.engines.simd`,
  with llvmlite; numpy without it, :mod:`qmk.engines.kernels`): a random circuit costs
  about one pass per two two-qubit gates instead of two per one-qubit gate.

The represented state, for live qubits ``q`` and tensor variables ``x``, is::

    e^{i g} (prod_q U_q) sum_x psi(x) e^{i sum_m theta_m (m . x)} |y(x)>,
    y_q(x) = (A_q . x) xor c_q          (parities over GF(2))

with pending one-qubit matrices ``U_q``, pending parity phases ``theta_m`` and the
rows ``A_q`` kept injective. Everything the engine reports (probabilities, samples,
:meth:`~StatevectorEngine.state_vector`) is of that state; the representation is
never visible. ``fuse=False`` applies everything after each call (a slower path kept
as a cross-check: both give the same states).

Memory: the tensor never has more axes than there are live qubits, and a guard
(``max_bytes``, default :data:`DEFAULT_MAX_BYTES` or ``$QMK_MAX_STATE_BYTES``) caps
live qubits so that the state plus one working copy fits; :meth:`allocate` refuses
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

from qmk.engines import fusion, kernels
from qmk.engines.base import EngineError, GateCall, draw_pauli
from qmk.engines.gates import BASES, GATES, accepts
from qmk.engines.sampling import CHUNK as _CHUNK
from qmk.engines.sampling import FLAT_SAMPLING as _FLAT_SAMPLING
from qmk.engines.sampling import draw_indices

#: Default cap on the state's memory: amplitudes plus one working copy, in bytes.
DEFAULT_MAX_BYTES = 8 * 2**30
#: Environment variable that overrides :data:`DEFAULT_MAX_BYTES` (an integer of bytes).
MAX_BYTES_ENV = "QMK_MAX_STATE_BYTES"

_DTYPES: dict[str, np.dtype[Any]] = {
    "complex64": np.dtype(np.complex64),
    "complex128": np.dtype(np.complex128),
}
_X = GATES["x"].matrix()
_H = GATES["h"].matrix()
_S = GATES["s"].matrix()
_SDG = GATES["sdg"].matrix()
_TWO_PI = 2 * math.pi
#: Off-diagonal entries this small (relative) make a fused 2x2 count as diagonal.
_ZERO = 1e-14
#: Outcome probabilities at or below this count as impossible for :meth:`collapse`.
_IMPOSSIBLE = 1e-12
#: The widest dense block :meth:`StatevectorEngine.apply_segment` fuses into by default.
#: The kernels are bound by arithmetic, not memory, once a block is 4 qubits wide (a
#: 4-qubit complex64 pass over 2^24 amplitudes: 27 ms of CPU, against about 6 ms for
#: the memory it moves), so 3-qubit blocks win by doing fewer multiply-adds in all
#: (random-24: 900 per amplitude in 120 passes, against 1020 in 69); measured
#: interleaved on the shared 2-core Zen 5, they took 16-22% less CPU on random-24 and
#: QFT-24 in both precisions, 7-20% less on random-26 and as much on QFT-26.
DEFAULT_FUSED = 3
#: One-qubit gates that never mix amplitudes (diagonal, or a flip times a diagonal).
_UNMIXING = frozenset({"i", "x", "y", "z", "s", "sdg", "t", "tdg", "rz"})
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


def _independent(rows: Sequence[int]) -> bool:
    """Whether the bitmasks ``rows`` are linearly independent over GF(2).

    >>> _independent([0b011, 0b110, 0b100]), _independent([0b011, 0b110, 0b101])
    (True, False)
    """
    basis: dict[int, int] = {}  # leading bit -> a reduced row with it
    for row in rows:
        while row:
            top = row.bit_length() - 1
            if top not in basis:
                basis[top] = row
                break
            row ^= basis[top]
        else:
            return False
    return True


def _bits(mask: int) -> list[int]:
    """The set bits of ``mask``, lowest first."""
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


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


def _kind(u: np.ndarray) -> str:
    """``"diag"``, ``"anti"`` (an X times a diagonal) or ``"dense"``."""
    a00, a01, a10, a11 = (abs(complex(v)) for v in u.flat)
    tiny = _ZERO * max(a00, a01, a10, a11)
    if a01 <= tiny and a10 <= tiny:
        return "diag"
    if a00 <= tiny and a11 <= tiny:
        return "anti"
    return "dense"


def _walsh(angles: Sequence[float] | np.ndarray) -> tuple[float, list[tuple[int, float]]]:
    """A diagonal phase ``angles[y]`` as ``const + sum_T w_T parity(y & T)``.

    Returns the constant and ``(T, w_T)`` for every subset ``T`` (a bitmask over the
    index bits of ``y``) with a non-zero weight.
    """
    f = np.asarray(angles, dtype=np.float64)
    size = len(f)
    spectrum = f.copy()
    step = 1
    while step < size:  # fast Walsh-Hadamard transform
        for start in range(0, size, 2 * step):
            lo = spectrum[start : start + step].copy()
            hi = spectrum[start + step : start + 2 * step]
            spectrum[start : start + step] = lo + hi
            spectrum[start + step : start + 2 * step] = lo - hi
        step *= 2
    spectrum /= size
    const = float(spectrum.sum())
    terms = [(t, -2 * float(spectrum[t])) for t in range(1, size) if abs(spectrum[t]) > 1e-15]
    return const, terms


#: Parity decompositions of the fixed multi-qubit diagonal gates.
_DIAGONAL_TERMS = {name: _walsh(np.angle(np.diag(GATES[name].matrix()))) for name in ("cz", "ccz")}


def _blocks(shape: tuple[int, ...]) -> list[tuple[Any, ...]]:
    """Index tuples that cut an array of ``shape`` into blocks of at most ``_CHUNK``
    elements (or single rows of the last dimension), in order."""
    size = math.prod(shape)
    if size <= _CHUNK or not shape:
        return [()]
    head, inner = shape[0], size // shape[0]
    if inner <= _CHUNK:
        step = _CHUNK // inner
        return [(slice(i, i + step),) for i in range(0, head, step)]
    if len(shape) == 1:
        return [(slice(i, i + _CHUNK),) for i in range(0, head, _CHUNK)]
    return [(i, *rest) for i in range(head) for rest in _blocks(shape[1:])]


class StatevectorEngine:
    """A numpy statevector engine (see the module docstring for how it saves work).

    Why one class: every method reads or changes one lazy representation of the state
    (the formula in the module docstring). The tensor, the parity row and constant each
    qubit reads, the pending matrices and phases, the global phase and the epoch's log
    of cx gates are one state only together, and each operation (a gate, a measurement,
    a sample, a snapshot) updates several of them in step; split, each part would hold
    half of that invariant. What stands apart already lives apart: the fusion planner
    (:mod:`qmk.engines.fusion`), the kernels that apply fused blocks
    (:mod:`qmk.engines.kernels`, :mod:`qmk.engines.simd`) and the pure helpers above
    (:func:`_walsh`, :func:`_blocks`, :func:`_kind`).

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
        self._dtype = _complex_dtype(dtype)
        self._max_fused = _whole(max_fused, "max_fused", 1, 6)
        self._fused_min = _whole(fused_min_qubits, "fused_min_qubits", 0, 64)
        self._kernels = _kernels_option(kernels)
        self._max_bytes = _limit_bytes(max_bytes)
        per_amplitude = 2 * self._dtype.itemsize  # the state and one working copy
        fits = self._max_bytes // per_amplitude
        self._max_qubits = fits.bit_length() - 1 if fits else 0
        self._fuse = bool(fuse)
        self._rng = np.random.default_rng(seed)
        self._psi = np.ones((), dtype=self._dtype)
        self._spare: np.ndarray | None = None
        self._vars: list[int] = []  # tensor axis -> variable id
        self._rows: dict[int, int] = {}  # qubit -> bitmask of variables it reads
        self._consts: dict[int, int] = {}  # qubit -> bit xor-ed onto that parity
        self._pending: dict[int, np.ndarray] = {}  # qubit -> fused non-diagonal 2x2
        self._terms: dict[int, float] = {}  # variable mask -> pending parity phase
        self._gphase = 0.0
        self._free_qubits: list[int] = []
        self._next_qubit = 0
        self._free_vars: list[int] = []
        self._next_var = 0
        # While every qubit reads its own variable up to the cx gates since then (an
        # "epoch"), those gates are logged as (control, target) variables of the epoch's
        # start ("home"), so that replaying them restores that clean layout in as many
        # passes as there were gates. None: no epoch (copies, or a partial clean-up).
        self._log: list[tuple[int, int]] | None = []
        self._home: dict[int, int] = {}

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

    def supports(self, gate: str, params: Sequence[float] = ()) -> bool:
        """True for every gate of ``GATES`` with its number of finite parameters.

        >>> StatevectorEngine().supports("t"), StatevectorEngine().supports("rz", [])
        (True, False)
        """
        return accepts(gate, params)

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
        q = self._qubit(qubit)
        self._measure_z(q)
        del self._rows[q], self._consts[q]
        heapq.heappush(self._free_qubits, q)
        self._after_call()

    def apply(self, gate: str, qubits: Sequence[int], params: Sequence[float] = ()) -> None:
        """Apply a gate of :data:`~qmk.engines.gates.GATES` to ``qubits`` (gate qubit 0 first).

        Raises:
            EngineError: ``gate-unsupported`` for an unknown gate or wrong or non-finite
                parameters; ``engine-misuse`` for the wrong number of qubits, a repeated
                qubit or one not live.

        >>> engine = StatevectorEngine(seed=0)
        >>> q = engine.allocate()
        >>> engine.apply("cx", [q])
        Traceback (most recent call last):
        ...
        qmk.engines.base.EngineError: QE105 engine-misuse: cx acts on 2 qubits, got 1
        """
        self._apply_checked(*self._checked(gate, qubits, params))
        self._after_call()

    def apply_segment(self, gates: Sequence[GateCall]) -> None:
        """Apply a run of gates (``(gate, qubits, params)`` each, in order) at once.

        Every gate is checked first, so a bad one leaves the state as it was. A segment
        whose one-qubit gates mix amplitudes (``h``, ``rx``, ``ry``...) on a state of at
        least ``fused_min_qubits`` axes is fused (:func:`~qmk.engines.fusion.plan`) into
        blocks of up to ``max_fused`` qubits, each applied in one pass by the compiled
        kernels; its qubits are first given tensor axes of their own (their pending
        bookkeeping folded into the first block). Other segments, and those that would
        make qubits the bookkeeping holds for free (classical bits, copies) take up
        amplitudes, go gate by gate as :meth:`apply` would. Either way the state is the
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
        checked = [self._checked(gate, qubits, params) for gate, qubits, params in gates]
        if self._fusable(checked):
            self._apply_fused(checked)
            return
        for gate, qs, values in checked:
            self._apply_checked(gate, qs, values)
            self._after_call()

    def _checked(
        self, gate: str, qubits: Sequence[int], params: Sequence[float]
    ) -> tuple[str, list[int], tuple[float, ...]]:
        """The gate, its live qubits and its float parameters; raises as :meth:`apply`."""
        spec = GATES.get(gate) if isinstance(gate, str) else None
        if (  # the common case, checked quickly: a segment may hold thousands of gates
            spec is not None
            and len(qubits) == spec.qubits
            and len(params) == len(spec.params)
            and all(type(q) is int and q in self._rows for q in qubits)
            and (spec.qubits == 1 or len(set(qubits)) == spec.qubits)
        ):
            try:
                values = tuple(float(p) for p in params)
            except (TypeError, ValueError):
                values = (math.nan,)
            if all(map(math.isfinite, values)):
                return gate, list(qubits), values
        if spec is None:
            raise EngineError.of(
                "gate-unsupported",
                f"no gate named {gate!r}; the statevector engine applies: {', '.join(GATES)}",
                gate=repr(gate),
            )
        if not self.supports(gate, params):
            raise EngineError.of(
                "gate-unsupported",
                f"{gate} takes {len(spec.params)} finite parameter(s) "
                f"({', '.join(spec.params) or 'none'}), got {list(params)!r}",
                gate=gate,
            )
        qs = self._qubits(qubits, what=gate)
        if len(qs) != spec.qubits:
            raise EngineError.of(
                "engine-misuse",
                f"{gate} acts on {spec.qubits} qubit{'s' * (spec.qubits != 1)}, got {len(qs)}",
                gate=gate,
                qubits=qs,
            )
        return gate, qs, tuple(float(p) for p in params)

    def _apply_checked(self, gate: str, qs: list[int], values: tuple[float, ...]) -> None:
        """Apply a checked gate through the bookkeeping (pending matrices and phases)."""
        spec = GATES[gate]
        if spec.qubits == 1:
            if gate != "i":
                self._gate1(qs[0], spec.matrix(values))
        elif gate == "cx":
            self._cx(qs[0], qs[1])
        elif gate == "swap":
            self._swap(qs[0], qs[1])
        elif gate == "ccx":
            self._ccx(qs[0], qs[1], qs[2])
        else:
            const, terms = _DIAGONAL_TERMS[gate]
            self._diagonal(qs, const, terms)

    def probability(self, qubit: int, basis: str = "Z") -> float:
        """The probability that measuring ``qubit`` in ``basis`` gives 1 (the -1 eigenstate).

        >>> engine = StatevectorEngine(seed=0)
        >>> q = engine.allocate(); engine.apply("h", [q])
        >>> engine.probability(q, "X"), round(engine.probability(q, "Y"), 12)
        (0.0, 0.5)
        """
        q = self._qubit(qubit)
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
        q = self._qubit(qubit)
        if isinstance(outcome, bool) or outcome not in (0, 1):
            raise EngineError.of(
                "engine-misuse", f"an outcome is 0 or 1, not {outcome!r}", outcome=repr(outcome)
            )
        before, after = self._rotation(basis)
        for u in before:
            self._gate1(q, u)
        probs = self._z_distribution(q)
        if probs[outcome] <= _IMPOSSIBLE:
            for u in after:
                self._gate1(q, u)
            self._after_call()
            raise EngineError.of(
                "outcome-impossible",
                f"qubit {q} cannot be collapsed onto {outcome} in the {basis} basis: "
                f"its probability is {probs[outcome]:.3g}",
                qubit=q,
                outcome=int(outcome),
                basis=basis,
            )
        self._collapse_z(q, int(outcome))
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
        q = self._qubit(qubit)
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
        q = self._qubit(qubit)
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
        q = self._qubit(qubit)
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
            rng_state=copy.deepcopy(self._rng.bit_generator.state),
        )

    def restore(self, snapshot: Any) -> None:
        """Return to a state :meth:`snapshot` gave (the snapshot stays reusable).

        Raises:
            EngineError: ``engine-misuse`` for anything but a statevector snapshot.
        """
        if not isinstance(snapshot, StatevectorSnapshot):
            raise EngineError.of(
                "engine-misuse",
                "restore takes a snapshot from a statevector engine, "
                f"not {type(snapshot).__name__}",
            )
        held, saved = self._psi, snapshot.psi
        if (
            held.shape == saved.shape
            and held.dtype == self._dtype
            and held.flags.c_contiguous
            and held.flags.writeable
            and held is not saved
        ):
            # into the amplitudes' own buffer, and the working copy kept: a new 512 MiB
            # array (26 qubits) costs its page faults, 0.15-1.2 s, against 0.04 s for the
            # copy itself, at each branch a noisy run restores
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
        if not isinstance(snapshot, StatevectorSnapshot):
            raise EngineError.of("engine-misuse", "not a statevector snapshot")
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
        if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 0:
            raise EngineError.of(
                "engine-misuse", f"shots must be a whole number >= 0, not {shots!r}"
            )
        for q in qs:
            self._settle(q)
        if self._reads_every_axis(qs) and self._psi.size > _FLAT_SAMPLING:
            # the whole state: drawn from the amplitudes, without a probability array
            axes, index = list(self._vars), self._draw(self._psi.reshape(-1), int(shots), True)
        else:
            axes, probs = self._marginal(qs)
            index = self._draw(probs, int(shots))
        out = np.empty((int(shots), len(qs)), dtype=np.uint8)
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

    def _qubit(self, qubit: Any) -> int:
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
        qs = [self._qubit(q) for q in qubits]
        if distinct and len(set(qs)) != len(qs):
            raise EngineError.of(
                "engine-misuse", f"{what} got a qubit twice: {qs}", qubits=qs, op=what
            )
        return qs

    @staticmethod
    def _rotation(basis: str) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        if basis not in BASES:
            raise EngineError.of(
                "engine-misuse", f"a basis is one of {', '.join(BASES)}, not {basis!r}"
            )
        return _ROTATIONS[basis]

    def _after_call(self) -> None:
        if not self._fuse:
            self._materialize()

    # ------------------------------------------------------------------ lazy gates

    def _gate1(self, q: int, m: np.ndarray) -> None:
        """Apply a 2x2 to ``q``: fused into its pending matrix, or bookkeeping."""
        u = self._pending.pop(q, None)
        if u is not None:
            m = m @ u
        kind = _kind(m)
        if kind == "dense":
            self._pending[q] = m
        elif kind == "diag":
            self._phase1(q, complex(m[0, 0]), complex(m[1, 1]))
        else:  # m = X diag(m10, m01)
            self._phase1(q, complex(m[1, 0]), complex(m[0, 1]))
            self._consts[q] ^= 1

    def _phase1(self, q: int, d0: complex, d1: complex) -> None:
        """diag(d0, d1) on ``q``, which has no pending matrix."""
        a0 = cmath.phase(d0)
        self._gphase += a0
        self._parity_phase((q,), cmath.phase(d1) - a0)

    def _parity_phase(self, qubits: Sequence[int], theta: float) -> None:
        """The phase ``theta * (xor of y_q)``; the qubits have no pending matrices."""
        mask = 0
        flip = 0
        for q in qubits:
            mask ^= self._rows[q]
            flip ^= self._consts[q]
        if flip:  # theta * (1 xor p) = theta - theta * p
            self._gphase += theta
            theta = -theta
        self._add_term(mask, theta)

    def _add_term(self, mask: int, theta: float) -> None:
        if not mask:
            return
        total = math.remainder(self._terms.get(mask, 0.0) + theta, _TWO_PI)
        if abs(total) < 1e-15:
            self._terms.pop(mask, None)
        else:
            self._terms[mask] = total

    def _diagonal(self, qs: Sequence[int], const: float, terms: list[tuple[int, float]]) -> None:
        for q in qs:
            self._settle(q)
        self._gphase += const
        k = len(qs)
        for subset, weight in terms:
            self._parity_phase([qs[i] for i in range(k) if subset >> (k - 1 - i) & 1], weight)

    def _cx(self, c: int, t: int) -> None:
        self._settle(c)
        self._settle(t)
        if self._rows[c] and self._log is not None:
            if not self._rows[t]:  # t becomes a copy of c: no clean layout to return to
                self._log = None
            elif self._log and self._log[-1] == (self._home[c], self._home[t]):
                self._log.pop()  # cx cx = identity
            else:
                self._log.append((self._home[c], self._home[t]))
        self._rows[t] ^= self._rows[c]
        self._consts[t] ^= self._consts[c]

    def _swap(self, a: int, b: int) -> None:
        rows, consts, pending = self._rows, self._consts, self._pending
        rows[a], rows[b] = rows[b], rows[a]
        consts[a], consts[b] = consts[b], consts[a]
        # the fused gates and the home rows move with their qubits alike
        holders: tuple[dict[int, Any], ...] = (pending, self._home)
        for held in holders:
            ua, ub = held.pop(a, None), held.pop(b, None)
            if ua is not None:
                held[b] = ua
            if ub is not None:
                held[a] = ub

    def _ccx(self, a: int, b: int, t: int) -> None:
        for q in (a, b, t):
            self._settle(q)
        for control, other in ((a, b), (b, a)):
            if not self._rows[control]:  # a classical control: a cx or nothing
                if self._consts[control]:
                    self._cx(other, t)
                return
        va, vb, vt = self._clean(a), self._clean(b), self._clean(t)
        self._flush_terms(vt)
        view, (da, db, dt) = self._view([self._vars.index(v) for v in (va, vb, vt)])
        fixed = {da: 1 ^ self._consts[a], db: 1 ^ self._consts[b]}
        self._swap_slices(view, {**fixed, dt: 0}, {**fixed, dt: 1})

    # ------------------------------------------------------------------ fused segments

    def _fusable(self, checked: Sequence[tuple[str, list[int], tuple[float, ...]]]) -> bool:
        """Whether a segment goes the fused way (:meth:`apply_segment`): fusion is on, at
        least two of its one-qubit gates mix amplitudes, every qubit it touches without
        one already has an axis of its own or can be given one by a change of variables
        (it is no classical bit and no qubit is a copy of others), and the state has
        ``fused_min_qubits`` axes."""
        if not self._fuse or self._max_fused < 2:
            return False
        mixing: set[int] = set()
        count = 0
        for gate, qs, values in checked:
            mixing_gate = len(qs) == 1 and gate not in _UNMIXING
            # past two such gates, only a qubit not known to mix yet needs its matrix (a
            # random circuit's hundreds of rotations cost 1 ms of matrices otherwise)
            if count >= 2 and qs[0] in mixing:
                continue
            if mixing_gate and _kind(GATES[gate].matrix(values)) == "dense":
                mixing.add(qs[0])
                count += 1
        if count < 2:
            return False
        width = self._psi.ndim
        columns: dict[int, int] | None = None
        independent: bool | None = None
        for q in dict.fromkeys(q for _, qs, _ in checked for q in qs):
            row = self._rows[q]
            if q in mixing:
                width += not row
                continue
            if columns is None:
                columns = self._columns()
            if self._owns_axis(q, columns):
                continue
            # a qubit that reads a combination of variables is given one of its own by a
            # change of variables (no new axis) unless it is a copy of the others, which
            # no qubit is while their rows are independent; a classical bit or a copy
            # would take up amplitudes
            if independent is None:
                independent = _independent([r for r in self._rows.values() if r])
            if not row or not independent:
                return False
        return width >= self._fused_min

    def _owns_axis(self, q: int, columns: Mapping[int, int]) -> bool:
        """Whether ``q`` reads one variable that no other qubit reads."""
        row = self._rows[q]
        return bool(row) and not row & (row - 1) and columns[row.bit_length() - 1] == 1 << q

    def _apply_fused(self, checked: Sequence[tuple[str, list[int], tuple[float, ...]]]) -> None:
        """Give the segment's qubits axes of their own, then apply its fused blocks."""
        order = list(dict.fromkeys(q for _, qs, _ in checked for q in qs))
        classical = [q for q in order if not self._rows[q]]
        if classical:  # one allocation for all of them, not one per qubit
            grown = np.zeros(self._psi.shape + (2,) * len(classical), dtype=self._dtype)
            where: tuple[Any, ...] = (Ellipsis, *(self._consts[q] for q in classical))
            grown[where] = self._psi
            self._psi = grown
            for q in classical:
                var = self._new_var()
                self._vars.append(var)
                self._rows[q] = 1 << var
                self._consts[q] = 0
                self._home[q] = var  # extends the epoch's clean layout, as _join does
        for _ in range(3):  # cleaning one qubit never spoils another; checked anyway
            for q in order:
                self._clean(q)
            columns = self._columns()
            if all(self._owns_axis(q, columns) for q in order):
                break
        else:
            for gate, qs, values in checked:
                self._apply_checked(gate, qs, values)
            return
        for q in order:
            self._flush_terms(self._rows[q].bit_length() - 1)
        # what the bookkeeping still holds on top of the tensor goes first: X^c, then U
        items: list[tuple[Sequence[int], np.ndarray]] = []
        for q in order:
            u = self._pending.pop(q, None)
            if self._consts[q]:
                u = _X if u is None else u @ _X
                self._consts[q] = 0
            if u is not None:
                items.append(((q,), u))
        items += [(qs, GATES[gate].matrix(values)) for gate, qs, values in checked]
        shape = self._psi.shape
        psi = np.ascontiguousarray(self._psi).reshape(-1)
        axis = {var: a for a, var in enumerate(self._vars)}
        bit = {q: len(shape) - 1 - axis[self._rows[q].bit_length() - 1] for q in order}
        blocks = fusion.plan(items, max_width=self._max_fused, diagonal_width=fusion.DIAGONAL_WIDTH)
        kernels.apply_blocks(
            psi,
            [(b.matrix, [bit[q] for q in reversed(b.qubits)], b.diagonal) for b in blocks],
            kernels=self._kernels,
        )
        self._psi = psi.reshape(shape)
        self._spare = None

    # ------------------------------------------------------------------ physical work

    def _settle(self, q: int) -> None:
        """Apply ``q``'s pending non-diagonal matrix to the amplitudes, if it has one."""
        u = self._pending.pop(q, None)
        if u is None:
            return
        if not self._rows[q]:  # a classical qubit joins the tensor as U|c>
            self._join(q, u[:, self._consts[q]])
            return
        var = self._clean(q)
        if self._consts[q]:
            u = u @ _X
            self._consts[q] = 0
        self._flush_terms(var)
        self._apply_axis(self._vars.index(var), u)

    def _join(self, q: int, vector: np.ndarray) -> int:
        """Give classical ``q`` a new last axis holding the one-qubit state ``vector``."""
        self._psi = np.multiply.outer(self._psi, vector.astype(self._dtype))
        var = self._new_var()
        self._vars.append(var)
        self._rows[q] = 1 << var
        self._consts[q] = 0
        self._home[q] = var  # extends the epoch's clean layout, if there is one
        return var

    def _apply_axis(self, axis: int, u: np.ndarray) -> None:
        """``u`` on one tensor axis, written into the working copy, which becomes the state.

        Chunked elementwise products, so temporaries stay in cache and no BLAS thread
        pool is involved (small gemms in a busy pool were measured 10-100x slower). A
        real ``u`` (``h``, ``ry``, ...) works on the real and imaginary parts at once.
        """
        psi = self._psi
        left, right = 1 << axis, 1 << (psi.ndim - axis - 1)
        out = self._spare
        if out is None or out.shape != psi.shape:
            out = np.empty_like(psi)
        if right >= 16 and not u.imag.any():
            real = psi.real.dtype
            src = psi.view(real).reshape(left, 2, 2 * right)
            dst = out.view(real).reshape(left, 2, 2 * right)
            coefficients = [real.type(v) for v in u.real.flat]
            width = 2 * right
        else:
            src, dst = psi.reshape(left, 2, right), out.reshape(left, 2, right)
            coefficients = [self._dtype.type(v) for v in u.flat]
            width = right
        u00, u01, u10, u11 = coefficients
        rows, cols = max(1, _CHUNK // width), min(width, _CHUNK)
        # a short stride: one long strided run per offset (r, r + 1) instead of short rows
        short = width < 16
        cuts = [slice(r, r + 1) for r in range(width)] if short else None
        scratch = np.empty((min(rows, left), 1 if short else cols), dtype=src.dtype)
        for lo in range(0, left, rows):
            at = slice(lo, lo + rows)
            for cut in cuts or [slice(c, c + cols) for c in range(0, width, cols)]:
                a, b = src[at, 0, cut], src[at, 1, cut]
                oa, ob = dst[at, 0, cut], dst[at, 1, cut]
                np.multiply(a, u00, out=oa)
                oa += np.multiply(b, u01, out=scratch)
                np.multiply(a, u10, out=ob)
                ob += np.multiply(b, u11, out=scratch)
        self._psi, self._spare = out, psi

    def _view(self, axes: Sequence[int]) -> tuple[np.ndarray, list[int]]:
        """The amplitudes reshaped so that each of ``axes`` is a dimension of its own."""
        shape: list[int] = []
        where: dict[int, int] = {}
        previous = -1
        for axis in sorted(axes):
            shape.append(1 << (axis - previous - 1))
            where[axis] = len(shape)
            shape.append(2)
            previous = axis
        shape.append(1 << (self._psi.ndim - previous - 1))
        return self._psi.reshape(shape), [where[axis] for axis in axes]

    def _swap_slices(self, view: np.ndarray, first: dict[int, int], second: dict[int, int]) -> None:
        """Exchange two equal-shaped slices of ``view``, a cache-sized block at a time."""
        one = view[tuple(first.get(d, slice(None)) for d in range(view.ndim))]
        two = view[tuple(second.get(d, slice(None)) for d in range(view.ndim))]
        scratch = np.empty(_CHUNK, dtype=self._dtype)
        for block in _blocks(one.shape):
            held = scratch[: one[block].size].reshape(one[block].shape)
            held[...] = one[block]
            one[block] = two[block]
            two[block] = held

    def _new_var(self) -> int:
        if self._free_vars:
            return heapq.heappop(self._free_vars)
        self._next_var += 1
        return self._next_var - 1

    def _columns(self) -> dict[int, int]:
        """For each variable, the bitmask of qubits that read it."""
        columns = dict.fromkeys(self._vars, 0)
        for q, row in self._rows.items():
            for var in _bits(row):
                columns[var] |= 1 << q
        return columns

    def _pcx(self, control: int, target: int) -> None:
        """Change variables: ``x_target += x_control`` (a cx on the tensor axes).

        The state is unchanged: every form that read ``x_target`` now also reads
        ``x_control``.
        """
        view, (dc, dt) = self._view([self._vars.index(control), self._vars.index(target)])
        self._swap_slices(view, {dc: 1, dt: 0}, {dc: 1, dt: 1})
        tbit, cbit = 1 << target, 1 << control
        for q, row in self._rows.items():
            if row & tbit:
                self._rows[q] = row ^ cbit
        hits = [(mask, theta) for mask, theta in self._terms.items() if mask & tbit]
        for mask, _ in hits:
            del self._terms[mask]
        for mask, theta in hits:
            self._add_term(mask ^ cbit, theta)

    @staticmethod
    def _plan_single(
        columns: dict[int, int], vars_: list[int], keep: int | None = None
    ) -> list[tuple[int, int]]:
        """Changes ``x_y += x_x`` that leave one of ``vars_`` (``keep``, if given).

        Each change drops one variable from the row; of those, take the one that
        shortens the other rows most (``columns`` is updated as it goes), so that pending
        ``cx`` chains unwind in about as many passes as they had gates.
        """
        left = set(vars_)
        plan = []
        while len(left) > 1:
            _, control, target = min(
                (columns[y].bit_count() - 2 * (columns[x] & columns[y]).bit_count(), x, y)
                for y in left
                for x in left
                if x not in (y, keep)
            )
            plan.append((control, target))
            columns[control] ^= columns[target]
            left.discard(control)
        return plan

    def _single(self, q: int) -> int:
        """Change variables so that ``q`` reads one variable; return it."""
        vars_ = _bits(self._rows[q])
        if len(vars_) > 1:
            if self._log is not None:
                self._unwind()
            else:
                for control, target in self._plan_single(self._columns(), vars_):
                    self._pcx(control, target)
                self._new_epoch()
        return _bits(self._rows[q])[0]

    def _clean(self, q: int) -> int:
        """Change variables so that ``q`` alone reads one variable; return it.

        A classical qubit joins the tensor; a qubit whose value the others determine
        (a copy, as in a GHZ state) gets a new variable that copies it. Otherwise each
        variable of ``q``'s row is tried as the one it keeps, and the plan with the
        fewest passes over the state wins.
        """
        if not self._rows[q]:
            return self._join(q, np.eye(2)[self._consts[q]])
        vars_ = _bits(self._rows[q])
        columns = self._columns()
        if len(vars_) == 1 and columns[vars_[0]] == 1 << q:
            return vars_[0]
        if self._log is not None:
            self._unwind()
            return self._rows[q].bit_length() - 1
        best: tuple[int, list[tuple[int, int]], int, list[int] | None] | None = None
        for keep in vars_:
            after = dict(columns)
            plan = self._plan_single(after, vars_, keep)
            chosen = self._solve(after, after[keep] & ~(1 << q), exclude=keep)
            cost = len(plan) + (2 if chosen is None else len(chosen))
            if best is None or cost < best[0]:
                best = (cost, plan, keep, chosen)
        assert best is not None
        _, plan, var, chosen = best
        for control, target in plan:
            self._pcx(control, target)
        if chosen is None:  # q is a copy: give it a variable of its own
            var = self._expand(var)
            self._rows[q] = 1 << var
        for other in chosen or ():
            self._pcx(var, other)
        self._new_epoch()
        return var

    def _unwind(self) -> None:
        """Replay the epoch's logged cx gates on the variables: every qubit is clean."""
        assert self._log is not None
        for control, target in self._log:
            self._pcx(control, target)
        self._log = []
        self._home = {q: row.bit_length() - 1 for q, row in self._rows.items() if row}

    def _new_epoch(self) -> None:
        """Start an epoch if every qubit now reads a variable of its own."""
        seen = 0
        for row in self._rows.values():
            if row & (row - 1) or row & seen:
                return
            seen |= row
        self._log = []
        self._home = {q: row.bit_length() - 1 for q, row in self._rows.items() if row}

    @staticmethod
    def _solve(columns: dict[int, int], target: int, *, exclude: int) -> list[int] | None:
        """Variables whose columns xor to ``target``, or None when none do.

        Each variable found costs a pass over the state, so combinations of up to three
        are searched first (pairs by a table); GF(2) elimination finds any other.
        """
        if not target:
            return []
        others = [(var, column) for var, column in columns.items() if var != exclude]
        pairs: dict[int, tuple[int, int]] = {}
        for i, (var, column) in enumerate(others):
            if column == target:
                return [var]
            for other, other_column in others[i + 1 :]:
                pairs.setdefault(column ^ other_column, (var, other))
        if target in pairs:
            return list(pairs[target])
        for var, column in others:
            pair = pairs.get(target ^ column)
            if pair is not None and var not in pair:
                return [var, *pair]
        basis: dict[int, tuple[int, int]] = {}
        for var, column in columns.items():
            if var == exclude:
                continue
            combo = 1 << var
            while column:
                top = column.bit_length() - 1
                if top not in basis:
                    basis[top] = (column, combo)
                    break
                column ^= basis[top][0]
                combo ^= basis[top][1]
        combo = 0
        while target:
            top = target.bit_length() - 1
            if top not in basis:
                return None
            target ^= basis[top][0]
            combo ^= basis[top][1]
        return _bits(combo)

    def _expand(self, var: int) -> int:
        """A new last axis that copies variable ``var``; returns the new variable."""
        psi = self._psi
        axis = self._vars.index(var)
        left, right = 1 << axis, 1 << (psi.ndim - axis - 1)
        grown = np.zeros((*psi.shape, 2), dtype=self._dtype)
        view = grown.reshape(left, 2, right, 2)
        old = psi.reshape(left, 2, right)
        view[:, 0, :, 0] = old[:, 0, :]
        view[:, 1, :, 1] = old[:, 1, :]
        self._psi = grown
        new = self._new_var()
        self._vars.append(new)
        return new

    def _flush_terms(self, var: int) -> None:
        """Apply every pending phase that involves ``var``, in one pass over half the state.

        ``theta * (x_var xor p)`` is ``theta * p`` (left pending) times, where
        ``x_var = 1``, ``exp(i theta (1 - 2 p))``; the second factors of all terms
        multiply into one tensor over the other variables they read.
        """
        bit = 1 << var
        hits = [(mask, theta) for mask, theta in self._terms.items() if mask & bit]
        if not hits:
            return
        total = 0.0
        support = 0
        singles: dict[int, float] = {}
        multis: list[tuple[int, float]] = []
        for mask, theta in hits:
            del self._terms[mask]
            total += theta
            rest = mask ^ bit
            support |= rest
            if rest and not rest & (rest - 1):
                v = rest.bit_length() - 1
                singles[v] = singles.get(v, 0.0) - 2 * theta
            elif rest:
                multis.append((rest, -2 * theta))
        for mask, theta in hits:
            self._add_term(mask ^ bit, theta)
        # the phase tensor over the support variables, in axis order
        order = [v for v in self._vars if support >> v & 1]
        phase = np.asarray(cmath.exp(1j * total))
        for v in order:
            angle = singles.get(v)
            factor = (1.0, cmath.exp(1j * angle)) if angle is not None else (1.0, 1.0)
            phase = np.multiply.outer(phase, np.asarray(factor))
        for rest, angle in multis:
            parity = np.zeros((1,) * len(order), dtype=np.int8)
            for i, v in enumerate(order):
                if rest >> v & 1:
                    shape = [1] * len(order)
                    shape[i] = 2
                    parity = parity ^ np.arange(2, dtype=np.int8).reshape(shape)
            phase = phase * np.exp(1j * angle * parity)
        # runs of adjacent axes of one kind (the variable, the support, the rest)
        runs: list[list[Any]] = []
        for v in self._vars:
            kind = "var" if v == var else ("support" if support >> v & 1 else "rest")
            if runs and runs[-1][0] == kind and kind != "var":
                runs[-1][1] += 1
            else:
                runs.append([kind, 1])
        view = self._psi.reshape([1 << length for _, length in runs])
        # (the Ellipsis keeps a view even when every index is an integer)
        where = (*(1 if kind == "var" else slice(None) for kind, _ in runs), ...)
        half = view[where]
        shape = [1 << length if kind == "support" else 1 for kind, length in runs if kind != "var"]
        half *= phase.astype(self._dtype).reshape(shape)

    def _materialize(self) -> None:
        """Apply everything pending: afterwards each tensor axis is one qubit's, as is."""
        for q in list(self._pending):
            self._settle(q)
        for q in list(self._rows):
            if self._rows[q]:
                var = self._clean(q)
                if self._consts[q]:
                    self._flush_terms(var)
                    self._apply_axis(self._vars.index(var), _X)
                    self._consts[q] = 0
        for var in list(self._vars):
            self._flush_terms(var)

    # ------------------------------------------------------------------ measurement

    def _z_distribution(self, q: int) -> tuple[float, float]:
        """``(P(0), P(1))`` of ``q`` in Z; afterwards ``q`` reads at most one variable."""
        self._settle(q)
        if not self._rows[q]:
            return (0.0, 1.0) if self._consts[q] else (1.0, 0.0)
        var = self._single(q)
        s0, s1 = self._axis_weights(self._vars.index(var))
        total = s0 + s1
        p0, p1 = s0 / total, s1 / total
        return (p1, p0) if self._consts[q] else (p0, p1)

    def _axis_weights(self, axis: int) -> tuple[float, float]:
        psi = self._psi
        left, right = 1 << axis, 1 << (psi.ndim - axis - 1)
        real = psi.view(psi.real.dtype).reshape(left, 2, 2 * right)
        weights = np.einsum("ijk,ijk->j", real, real, dtype=np.float64)
        return float(weights[0]), float(weights[1])

    def _measure_z(self, q: int) -> int:
        p1 = self._z_distribution(q)[1]
        outcome = int(self._rng.random() < p1)
        self._collapse_z(q, outcome)
        return outcome

    def _collapse_z(self, q: int, outcome: int) -> None:
        """Project ``q`` (reading at most one variable) onto ``outcome``; drop its variable."""
        row = self._rows[q]
        if not row:
            return
        var = row.bit_length() - 1
        value = outcome ^ self._consts[q]
        axis = self._vars.index(var)
        weight = self._axis_weights(axis)[value]
        psi = self._psi
        left, right = 1 << axis, 1 << (psi.ndim - axis - 1)
        kept = psi.reshape(left, 2, right)[:, value, :] * (1 / math.sqrt(weight))
        self._psi = kept.reshape(psi.shape[:-1])
        self._spare = None
        del self._vars[axis]
        heapq.heappush(self._free_vars, var)
        self._home.pop(q, None)
        if self._log and any(var in entry for entry in self._log):
            self._log = None  # the logged gates need the dropped variable
        bit = 1 << var
        for other, other_row in self._rows.items():
            if other_row & bit:
                self._rows[other] = other_row ^ bit
                self._consts[other] ^= value
        hits = [(mask, theta) for mask, theta in self._terms.items() if mask & bit]
        for mask, _ in hits:
            del self._terms[mask]
        for mask, theta in hits:
            if value:
                self._gphase += theta
            self._add_term(mask ^ bit, -theta if value else theta)
        if self._log is None:
            self._new_epoch()

    # ------------------------------------------------------------------ sampling

    def _reads_every_axis(self, qs: Sequence[int]) -> bool:
        """Whether the qubits ``qs`` read, together, every variable of the tensor."""
        need = 0
        for q in qs:
            need |= self._rows[q]
        return all(need >> v & 1 for v in self._vars)

    def _marginal(self, qs: Sequence[int]) -> tuple[list[int], np.ndarray]:
        """The variables ``qs`` read (in axis order) and their joint distribution
        (flat, the first variable the most significant bit; float32 for a complex64 state
        read whole, which :meth:`_draw` sums in float64 without a float64 copy)."""
        need = 0
        for q in qs:
            need |= self._rows[q]
        axes = [axis for axis, v in enumerate(self._vars) if need >> v & 1]
        if not axes:
            return [], np.ones(1)
        probs = np.abs(self._psi)
        np.square(probs, out=probs)
        others = tuple(a for a in range(self._psi.ndim) if a not in axes)
        if others:
            probs = probs.sum(axis=others, dtype=np.float64)
        return [self._vars[a] for a in axes], probs.reshape(-1)

    def _readout(self, q: int, variables: Sequence[int], index: np.ndarray) -> np.ndarray:
        """``q``'s Z value for each outcome index over ``variables``."""
        bits = np.full(index.shape, self._consts[q], dtype=np.int64)
        last = len(variables) - 1
        for var in _bits(self._rows[q]):
            bits ^= (index >> (last - variables.index(var))) & 1
        return bits

    def _draw(self, values: np.ndarray, shots: int, amplitudes: bool = False) -> np.ndarray:
        """``shots`` indices drawn from ``values`` with this engine's RNG
        (:func:`~qmk.engines.sampling.draw_indices`)."""
        return draw_indices(self._rng, values, shots, amplitudes=amplitudes)
