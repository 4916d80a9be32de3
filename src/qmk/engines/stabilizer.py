"""The stabilizer engine: Clifford circuits on thousands of qubits, on stim's TableauSimulator.

:class:`StabilizerEngine` keeps the state as a stabilizer tableau (``stim.TableauSimulator``),
so gates cost O(n) and measurements O(n^2) bit operations whatever the entanglement. It applies
the Clifford gates of :data:`~qmk.engines.gates.GATES`, and ``rx``/``ry``/``rz`` at whole
quarter turns (up to a global phase ``rz(pi/2)`` is ``s``, ``rx(pi/2)`` is stim's ``SQRT_X``,
``ry(pi/2)`` is ``SQRT_Y``). Non-Clifford gates (``t``, ``tdg``, ``ccx``, ``ccz``, other
angles) are refused with ``QE103 gate-unsupported``; the statevector engine runs them.

Randomness is seeded: stim's simulator draws measurement outcomes, a numpy generator draws
Pauli channels and the seeds of :meth:`StabilizerEngine.sample`. Same seed, same calls, same
results (on the same machine and stim version; stim does not promise stability across them).

:meth:`StabilizerEngine.sample` never replays the circuit: the Z-basis outcomes of a
stabilizer state are uniform over an affine space ``x0 + D``, where ``D`` is spanned by the
X parts of the stabilizers. The engine reads ``D`` (restricted to the requested qubits) off
the tableau, row-reduces it, and has stim's frame sampler draw from a tiny circuit (``H`` on
the pivots, ``CX`` to the rest, ``X`` for ``x0``), so a GHZ state of 1000 qubits gives 100k
shots in a fraction of a second.

>>> engine = StabilizerEngine(seed=11)
>>> qs = [engine.allocate() for _ in range(3)]
>>> engine.apply("h", [qs[0]]); engine.apply("cx", qs[:2]); engine.apply("cx", qs[1:])
>>> shots = engine.sample(qs, 1000)
>>> shots.shape, bool((shots == shots[:, :1]).all())
((1000, 3), True)
>>> engine.probability(qs[2]), engine.probability(qs[0], "X")
(0.5, 0.5)
>>> engine.apply("t", [qs[0]])
Traceback (most recent call last):
...
qmk.engines.base.EngineError: QE103 gate-unsupported: the stabilizer engine applies Clifford \
gates only and t is not one; run the program on the statevector engine
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import stim

from qmk.engines.affine import AffineSampler, support_basis
from qmk.engines.base import (
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
from qmk.engines.stim_gates import stim_method
from qmk.gates import Gate

#: A self-inverse Clifford taking the basis' Pauli to Z (None: already Z).
_TO_Z: dict[str, str | None] = {"Z": None, "X": "h", "Y": "h_yz"}

_SEED_BOUND = 2**63


@dataclass(frozen=True, slots=True, kw_only=True)
class _Snapshot:
    """What :meth:`StabilizerEngine.snapshot` saves; opaque to callers."""

    sim: stim.TableauSimulator
    live: frozenset[int]
    pool: tuple[int, ...]
    next_index: int
    rng_state: Mapping[str, Any]


class StabilizerEngine(GateEngine):
    """A Clifford-only engine on ``stim.TableauSimulator`` (see the module docstring).

    Args:
        seed: seeds stim's simulator and the engine's numpy generator; None draws one from
            ``os.urandom`` (readable afterwards as :attr:`seed`).
        max_qubits: how many qubits may be live at once.

    Raises:
        EngineError: ``QE105 engine-misuse`` for a negative seed or ``max_qubits``.

    >>> engine = StabilizerEngine(seed=3, max_qubits=2)
    >>> engine.allocate(), engine.allocate()
    (0, 1)
    >>> engine.allocate()
    Traceback (most recent call last):
    ...
    qmk.engines.base.EngineError: QE102 engine-capacity: the stabilizer engine holds at most 2 \
qubits and 2 are live; free some or raise max_qubits
    """

    name: ClassVar[str] = "stabilizer"

    @staticmethod
    def compile_batch(circuit: BatchCircuit) -> BatchSampler | None:
        """The batch capability (:mod:`qmk.engines.batch`): ``circuit`` as one stim
        circuit sampled in bulk, or None when it is not Clifford with Pauli feed-forward."""
        from qmk.engines.stim_batch import compile_batch

        return compile_batch(circuit)

    def __init__(self, *, seed: int | None = None, max_qubits: int = 100_000) -> None:
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little")
        if seed < 0 or max_qubits < 0:
            raise EngineError.of(
                "engine-misuse",
                f"seed and max_qubits must be non-negative, got seed={seed}, "
                f"max_qubits={max_qubits}",
            )
        self._seed = int(seed)
        self._max_qubits = int(max_qubits)
        self._rng = np.random.default_rng(self._seed)
        self._sim = stim.TableauSimulator(seed=self._draw_seed())
        self._live: set[int] = set()
        self._pool: list[int] = []  # freed indices, a min-heap: reuse keeps the tableau small
        self._next_index = 0

    # ------------------------------------------------------------------ qubits

    @property
    def seed(self) -> int:
        """The seed this engine was made with (drawn from ``os.urandom`` when none was given)."""
        return self._seed

    @property
    def max_qubits(self) -> int:
        """How many qubits may be live at once."""
        return self._max_qubits

    @property
    def num_qubits(self) -> int:
        """How many qubits are live now."""
        return len(self._live)

    def allocate(self) -> int:
        """A fresh qubit in ``|0>``, reusing the lowest freed index.

        Raises:
            EngineError: ``QE102 engine-capacity`` when :attr:`max_qubits` are live.
        """
        if len(self._live) >= self._max_qubits:
            raise EngineError.of(
                "engine-capacity",
                f"the stabilizer engine holds at most {self._max_qubits} qubits and "
                f"{len(self._live)} are live; free some or raise max_qubits",
                max_qubits=self._max_qubits,
            )
        if self._pool:
            qubit = heapq.heappop(self._pool)
        else:
            qubit = self._next_index
            self._next_index += 1
        self._live.add(qubit)
        return qubit

    def free(self, qubit: int) -> None:
        """Reset ``qubit`` (as if measured and forgotten) and return its index to the pool."""
        self._check_qubits((qubit,))
        self._sim.reset(qubit)
        self._live.remove(qubit)
        heapq.heappush(self._pool, qubit)

    # ------------------------------------------------------------------ gates

    def supports(self, gate: str, params: Sequence[float] = ()) -> bool:
        """Whether :meth:`apply` accepts ``gate`` with ``params``: Clifford gates only
        (those stim names, :mod:`qmk.engines.stim_gates`).

        >>> import math
        >>> engine = StabilizerEngine(seed=0)
        >>> engine.supports("cx"), engine.supports("t"), engine.supports("ccx")
        (True, False, False)
        >>> engine.supports("rz", [-math.pi / 2]), engine.supports("rz", [0.3])
        (True, False)
        """
        method = stim_method(gate, params)
        return method is None or (method is not False and hasattr(stim.TableauSimulator, method))

    def apply_segment(self, gates: Sequence[GateCall]) -> None:
        """Apply a run of gates (``(gate, qubits, params)`` each, in order): every gate is
        checked first, as :meth:`apply` checks it, so a bad one leaves the state as it was.

        >>> engine = StabilizerEngine(seed=0)
        >>> a, b = engine.allocate(), engine.allocate()
        >>> engine.apply_segment([("h", [a], []), ("t", [b], [])])
        Traceback (most recent call last):
        ...
        qmk.engines.base.EngineError: QE103 gate-unsupported: the stabilizer engine applies \
Clifford gates only and t is not one; run the program on the statevector engine
        >>> engine.probability(a, "X")
        0.5
        """
        super().apply_segment(gates)

    def _unsupported(self, gate: Gate, params: Sequence[float]) -> EngineError:
        shown = f"{gate.name}({', '.join(f'{p:g}' for p in params)})" if params else gate.name
        why = " (not a whole number of quarter turns)" if params else ""
        return EngineError.of(
            "gate-unsupported",
            f"the stabilizer engine applies Clifford gates only and {shown} is not "
            f"one{why}; run the program on the statevector engine",
            gate=gate.name,
            params=[float(p) for p in params],
        )

    def _check_qubit(self, qubit: Any) -> int:
        self._check_qubits((qubit,))
        return int(qubit)

    def _apply_gate(self, gate: str, qubits: list[int], params: tuple[float, ...]) -> None:
        method = stim_method(gate, params)
        if method:
            getattr(self._sim, method)(*qubits)

    # ------------------------------------------------------------------ measurement

    def probability(self, qubit: int, basis: str = "Z") -> float:
        """The probability that measuring ``qubit`` in ``basis`` gives 1: 0.0, 0.5 or 1.0."""
        self._check_qubits((qubit,))
        return (1 - self._peek(qubit, basis)) / 2

    def collapse(self, qubit: int, outcome: int, basis: str = "Z") -> None:
        """Project ``qubit`` onto ``outcome`` (0: the +1 eigenstate) in ``basis``.

        Raises:
            EngineError: ``QE104 outcome-impossible`` when that outcome has probability 0
                (the state is unchanged); ``QE105 engine-misuse`` for a bad qubit, outcome
                or basis.
        """
        self._check_qubits((qubit,))
        outcome = check_outcome(outcome)
        if self._peek(qubit, basis) == (1 if outcome else -1):
            raise outcome_impossible(qubit, outcome, basis, 0.0)
        postselect = getattr(self._sim, f"postselect_{basis.lower()}")
        postselect(qubit, desired_value=bool(outcome))

    def measure(self, qubit: int, basis: str = "Z") -> int:
        """Measure ``qubit`` in ``basis`` with stim's seeded RNG; 0 is the +1 eigenstate."""
        self._check_qubits((qubit,))
        change = self._to_z(basis)
        if change is not None:
            getattr(self._sim, change)(qubit)
        outcome = int(self._sim.measure(qubit))
        if change is not None:
            getattr(self._sim, change)(qubit)
        return outcome

    def reset(self, qubit: int) -> None:
        """Return ``qubit`` to ``|0>``."""
        self._check_qubits((qubit,))
        self._sim.reset(qubit)

    def apply_pauli_channel(self, qubit: int, px: float, py: float, pz: float) -> str:
        """Apply X, Y or Z with probabilities ``px``, ``py``, ``pz``; returns what was applied.

        One uniform draw of the numpy generator per call, whatever the probabilities.

        >>> engine = StabilizerEngine(seed=5)
        >>> q = engine.allocate()
        >>> engine.apply_pauli_channel(q, 0, 1, 0), engine.probability(q)
        ('Y', 1.0)
        """
        self._check_qubits((qubit,))
        pauli = draw_pauli(self._rng, px, py, pz)
        if pauli != "I":
            getattr(self._sim, pauli.lower())(qubit)
        return pauli

    # ------------------------------------------------------------------ whole state

    def snapshot(self) -> _Snapshot:
        """A copy of the whole state: tableau, stim's RNG, qubit pool and numpy RNG."""
        return _Snapshot(
            sim=self._sim.copy(copy_rng=True),
            live=frozenset(self._live),
            pool=tuple(self._pool),
            next_index=self._next_index,
            rng_state=rng_state(self._rng),
        )

    def reseed(self, seed: int) -> None:
        """Replace the random streams (stim's and numpy's) with fresh ones from ``seed``."""
        self._rng = np.random.default_rng(seed)
        self._sim = self._sim.copy(seed=self._draw_seed())

    def restore(self, snapshot: Any) -> None:
        """Return to a state :meth:`snapshot` gave (a snapshot may be restored many times)."""
        snapshot = check_snapshot(snapshot, _Snapshot, self.name)
        self._sim = snapshot.sim.copy(copy_rng=True)
        self._live = set(snapshot.live)
        self._pool = list(snapshot.pool)
        self._next_index = snapshot.next_index
        self._rng.bit_generator.state = snapshot.rng_state

    @staticmethod
    def export_snapshot(snapshot: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``snapshot`` as plain data (for a checkpoint file): the inverse tableau as
        arrays, the qubit pool and the numpy stream as JSON. Stim's own stream is not
        kept: whoever restores it reseeds (as :mod:`qmk.execution.trajectories` does).
        """
        snapshot = check_snapshot(snapshot, _Snapshot, StabilizerEngine.name)
        names = ("x2x", "x2z", "z2x", "z2z", "x_signs", "z_signs")
        parts = snapshot.sim.current_inverse_tableau().to_numpy(bit_packed=False)
        meta = {
            "live": sorted(snapshot.live),
            "pool": list(snapshot.pool),
            "next_index": snapshot.next_index,
            "rng_state": snapshot.rng_state,
        }
        return meta, dict(zip(names, parts, strict=True))

    @staticmethod
    def import_snapshot(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Any:
        """The snapshot :meth:`export_snapshot` wrote as ``meta`` and ``arrays``."""
        tableau = stim.Tableau.from_numpy(
            **{name: np.asarray(arrays[name], dtype=bool) for name in arrays}
        )
        sim = stim.TableauSimulator(seed=0)
        sim.set_inverse_tableau(tableau)
        return _Snapshot(
            sim=sim,
            live=frozenset(int(q) for q in meta["live"]),
            pool=tuple(int(q) for q in meta["pool"]),
            next_index=int(meta["next_index"]),
            rng_state=meta["rng_state"],
        )

    def sample(self, qubits: Sequence[int], shots: int) -> np.ndarray:
        """``shots`` Z-basis outcomes of ``qubits``, without changing the state.

        Draws two seeds from the numpy generator (one to find a point of the support, one to
        draw points of it), so repeated calls give fresh shots and seeded engines repeat.

        Returns:
            A uint8 array of shape ``(shots, len(qubits))``; column j is ``qubits[j]``.

        Raises:
            EngineError: ``QE105 engine-misuse`` for qubits not live or negative ``shots``.
        """
        qs = [int(q) for q in qubits]
        self._check_qubits(qs)
        shots = check_shots(shots)
        support_seed, sampler_seed = self._draw_seed(), self._draw_seed()
        if not qs or shots == 0:
            return np.zeros((shots, len(qs)), dtype=np.uint8)
        return _sample_stabilizer_state(self._sim, qs, shots, support_seed, sampler_seed)

    # ------------------------------------------------------------------ helpers

    def _draw_seed(self) -> int:
        """A seed for stim drawn from the engine's numpy generator."""
        return int(self._rng.integers(_SEED_BOUND))

    def _check_qubits(self, qubits: Sequence[int]) -> None:
        for qubit in qubits:
            if qubit not in self._live:
                raise EngineError.of(
                    "engine-misuse",
                    f"qubit {qubit!r} is not live on this engine (allocate() hands out "
                    f"qubits; {len(self._live)} are live)",
                    qubit=qubit,
                )

    def _to_z(self, basis: str) -> str | None:
        return _TO_Z[check_basis(basis)]

    def _peek(self, qubit: int, basis: str) -> int:
        """The expectation (+1, -1 or 0) of the basis' Pauli on ``qubit``."""
        self._to_z(basis)
        return int(getattr(self._sim, f"peek_{basis.lower()}")(qubit))


def _sample_stabilizer_state(
    sim: stim.TableauSimulator,
    qubits: list[int],
    shots: int,
    support_seed: int,
    sampler_seed: int,
) -> np.ndarray:
    """Z-basis shots of ``qubits`` of the state in ``sim`` (left unchanged).

    The outcomes are uniform over ``x0 + D`` (:mod:`qmk.engines.affine`): ``x0`` is one
    outcome (measured on a copy) and ``D`` the row space of the stabilizers' X parts
    restricted to ``qubits``; the shots are drawn from its tables with ``sampler_seed``.
    """
    work = sim.copy(seed=support_seed)
    needed = max(qubits) + 1
    if work.num_qubits < needed:  # untouched qubits are |0> but absent from the tableau
        work.set_num_qubits(needed)
    basis = support_basis(work, qubits)
    assert basis is not None  # no rank bound was given
    x0 = np.asarray(work.measure_many(*qubits), dtype=bool)
    reference = np.packbits(x0, bitorder="little")
    packed = AffineSampler.of(reference, basis).sample_packed(shots, sampler_seed)
    return np.unpackbits(packed, axis=1, count=len(qubits), bitorder="little")
