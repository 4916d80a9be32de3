"""Batch sampling: a whole circuit handed to an engine at once, sampled in bulk.

Some engines can do better than run a program gate by gate: the stabilizer engine
compiles a Clifford circuit with linear feed-forward into one stim circuit and
samples every shot at once. An engine offers this by having a ``compile_batch``
class method (see :func:`batch_compiler`); the executor asks for that capability
and never matches engine names.

The circuit is engine-level (qubit indices, gates of :data:`qmk.engines.gates.GATES`,
measurement records), not a QVM graph: engines know gates, not graphs. Every
instruction that measures appends one bit to the record, in order; feed-forward
names earlier record bits.

Noise comes in two forms. An engine may sample it itself (``PAULI_CHANNEL`` on one
qubit, ``PAULI_CHANNEL_2`` on a pair, correlated, and ``HERALDED_PAULI_CHANNEL``, which
records whether it struck). Or the caller samples it: an ``ERROR_SITE`` marks where a
Pauli error may strike, the caller draws which shots it strikes (:class:`Errors`: rare
errors are cheap to draw) and :meth:`BatchSampler.sample` adds the measurement flips
each error causes to noiseless samples. The flips of a Pauli error in a Clifford
circuit whose feed-forward is Paulis controlled by record bits do not depend on the
shot (a Pauli frame propagates through every such instruction), so adding them gives
exactly the statistics of a noisy circuit at nearly the cost of a noiseless one.

>>> circuit = BatchCircuit(num_qubits=2, instructions=(
...     Instruction(kind=Kind.GATE, qubits=(0,), gate="h"),
...     Instruction(kind=Kind.GATE, qubits=(0, 1), gate="cx"),
...     Instruction(kind=Kind.MEASURE, qubits=(0,)),
...     Instruction(kind=Kind.MEASURE, qubits=(1,)),
... ))
>>> circuit.num_records
2
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

import numpy as np


class Kind(str, enum.Enum):
    """What one batch instruction does."""

    #: Return ``qubits`` to ``|0>``.
    RESET = "reset"
    #: Apply ``gate(params)``; with ``controls``, only when the XOR of those record bits
    #: is 1 (``invert``: when it is 0). Controlled gates must be Paulis.
    GATE = "gate"
    #: Measure one qubit in ``basis`` (``invert`` flips the recorded bit); one record bit.
    MEASURE = "measure"
    #: Measure the product of ``paulis`` (one letter per qubit); one record bit.
    MEASURE_PRODUCT = "measure_product"
    #: Apply X, Y, Z on one qubit with probabilities ``probs``.
    PAULI_CHANNEL = "pauli_channel"
    #: Apply one of the 15 Paulis ``P x Q`` other than ``I x I`` on two qubits (``P`` on
    #: ``qubits[0]``), with ``probs`` in the order of :data:`PAULI_PAIRS` (stim's
    #: ``PAULI_CHANNEL_2``): a correlated two-qubit error, drawn by the engine.
    PAULI_CHANNEL_2 = "pauli_channel_2"
    #: As PAULI_CHANNEL, and record whether an error happened (a herald); one record bit.
    HERALDED_PAULI_CHANNEL = "heralded_pauli_channel"
    #: A place where X, Y or Z may strike ``qubits[0]`` (with probabilities ``probs``).
    #: The engine never draws these errors: the caller draws them and hands them to
    #: :meth:`BatchSampler.sample` (see :class:`Errors`). No record bit.
    ERROR_SITE = "error_site"


@dataclass(frozen=True, slots=True, kw_only=True)
class Instruction:
    """One instruction of a :class:`BatchCircuit`; which fields matter depends on ``kind``."""

    kind: Kind
    qubits: tuple[int, ...]
    gate: str = ""
    params: tuple[float, ...] = ()
    basis: str = "Z"
    paulis: str = ""
    invert: bool = False
    controls: tuple[int, ...] = ()
    #: Three (X, Y, Z) for a one-qubit channel or an error site, fifteen for
    #: ``PAULI_CHANNEL_2`` (:data:`PAULI_PAIRS`).
    probs: tuple[float, ...] = (0.0, 0.0, 0.0)

    @property
    def records(self) -> int:
        """How many record bits this instruction appends."""
        measuring = (Kind.MEASURE, Kind.MEASURE_PRODUCT, Kind.HERALDED_PAULI_CHANNEL)
        return 1 if self.kind in measuring else 0


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchCircuit:
    """A circuit on ``num_qubits`` qubits (all start in ``|0>``)."""

    num_qubits: int
    instructions: tuple[Instruction, ...]

    @property
    def num_records(self) -> int:
        return sum(instruction.records for instruction in self.instructions)

    @property
    def sites(self) -> tuple[Instruction, ...]:
        """The ``ERROR_SITE`` instructions in order: site ``i`` of :class:`Errors` is the
        ``i``-th."""
        return tuple(i for i in self.instructions if i.kind is Kind.ERROR_SITE)


#: Pauli codes of :class:`Errors` (stim's convention): 1 X, 2 Y, 3 Z.
PAULI_CODES: Mapping[str, int] = MappingProxyType({"X": 1, "Y": 2, "Z": 3})

#: The order of a ``PAULI_CHANNEL_2``'s probabilities: ``IX, IY, IZ, XI, XX, ..., ZZ``
#: (``P x Q`` at ``4 * code(P) + code(Q) - 1``, codes as :data:`PAULI_CODES`, I 0).
PAULI_PAIRS: tuple[str, ...] = tuple(p + q for p in "IXYZ" for q in "IXYZ")[1:]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Errors:
    """Pauli errors the caller drew for a batch: error ``k`` strikes shot ``shots[k]``
    at the ``sites[k]``-th ``ERROR_SITE`` of the circuit with the Pauli ``paulis[k]``
    (:data:`PAULI_CODES`). Equal-length 1-D integer arrays; a shot may take several
    errors, at most one per site.

    >>> errors = Errors(shots=np.array([3, 3]), sites=np.array([0, 2]), paulis=np.array([1, 3]))
    >>> len(errors)
    2
    """

    shots: np.ndarray
    sites: np.ndarray
    paulis: np.ndarray

    def __post_init__(self) -> None:
        if not (self.shots.ndim == self.sites.ndim == self.paulis.ndim == 1):
            raise ValueError("Errors arrays must be one-dimensional")
        if not (len(self.shots) == len(self.sites) == len(self.paulis)):
            raise ValueError("Errors arrays must have one entry per error")

    def __len__(self) -> int:
        return len(self.shots)


class BatchSampler(Protocol):
    """A compiled circuit."""

    @property
    def mode(self) -> str:
        """How the executor reports this execution mode in telemetry (``"stim-batch"``)."""
        ...

    def sample(
        self,
        shots: int,
        seed: int,
        columns: tuple[int | None, ...],
        tallied: tuple[int, ...],
        errors: Errors | None = None,
    ) -> tuple[np.ndarray, int]:
        """``shots`` rows (uint8) of the record bits at ``columns`` in that order (a None
        column reads 0), and the number of 1 bits at the ``tallied`` columns over all shots
        (heralds: how many errors the engine injected). ``errors`` strike the circuit's
        ``ERROR_SITE`` instructions in the shots they name; without them no site does."""
        ...


#: The capability: compile a circuit, or None when this engine cannot run it in bulk.
BatchCompiler = Callable[[BatchCircuit], "BatchSampler | None"]


def batch_compiler(engine_class: type) -> BatchCompiler | None:
    """The engine class's ``compile_batch``, or None when it offers no batch sampling."""
    compiler = getattr(engine_class, "compile_batch", None)
    return compiler if callable(compiler) else None
