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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

import msgspec
import numpy as np

from qmk.engines.base import EngineError


class Kind(str, enum.Enum):
    """What one batch instruction does."""

    #: Return ``qubits`` to ``|0>``.
    RESET = "reset"
    #: Apply ``gate(params)``; with ``controls``, only when the XOR of those record bits
    #: is 1 (``invert``: when it is 0). Controlled gates must be Paulis.
    GATE = "gate"
    #: Measure one qubit in ``basis`` (``invert`` flips the recorded bit); one record bit.
    MEASURE = "measure"
    #: Measure the product of ``paulis`` (one letter per qubit; ``invert`` flips the
    #: recorded bit: the product's negation measured); one record bit.
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


class Instruction(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One instruction of a :class:`BatchCircuit`; which fields matter depends on ``kind``.

    A msgspec struct, not a dataclass: a circuit built instruction by instruction (a
    device's, the fault-tolerant layer's) makes one each, and a frozen dataclass's
    ``__init__`` costs several times a struct's. A lowered plan keeps most of its
    instructions as columns instead (:class:`~qmk.engines.instructions.Instructions`).
    Not tracked by the cyclic garbage collector (``gc=False``): it holds an enum member,
    strings, numbers and tuples of them.
    """

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
    #: Any sequence: a lowered plan's are columns (:class:`~qmk.engines.instructions.
    #: Instructions`), read as instructions all the same.
    instructions: Sequence[Instruction]

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
    """A compiled circuit.

    Its record bits travel bit-packed, as stim packs them: a row per shot of
    ``(num_records + 7) // 8`` bytes, record bit ``j`` in byte ``j >> 3`` at bit ``j & 7``
    (little-endian). :func:`unpack_columns`, :func:`count_ones` and :func:`xor_flips` work
    on such rows for every engine.
    """

    @property
    def mode(self) -> str:
        """How the executor reports this execution mode in telemetry (``"stim-batch"``)."""
        ...

    @property
    def num_sites(self) -> int:
        """How many ``ERROR_SITE`` instructions the circuit has."""
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

    def sample_packed(self, shots: int, seed: int) -> np.ndarray:
        """``shots`` bit-packed rows of every record bit, no ``ERROR_SITE`` striking: what
        :meth:`sample` draws for the same seed, before its errors and columns."""
        ...

    def flips(self, sites: np.ndarray) -> np.ndarray:
        """The record bits a Pauli error at each of ``sites`` (increasing site indices)
        flips, bit-packed: row ``2k`` for X at ``sites[k]``, row ``2k + 1`` for Z (a Y
        flips their XOR). They do not depend on the shot."""
        ...


def check_errors(errors: Errors, sites: int, shots: int) -> None:
    """Refuse errors that name a site outside ``[0, sites)``, a shot outside ``[0, shots)``
    or a Pauli code outside 1-3.

    Raises:
        EngineError: ``QE105 engine-misuse``.
    """
    if not len(errors):
        return
    if (
        errors.sites.min() < 0
        or errors.sites.max() >= sites
        or errors.shots.min() < 0
        or errors.shots.max() >= shots
        or errors.paulis.min() < 1
        or errors.paulis.max() > 3
    ):
        raise EngineError.of(
            "engine-misuse",
            f"errors name sites in [0, {sites}), shots in [0, {shots}) "
            "and Paulis 1 (X), 2 (Y), 3 (Z); these do not",
        )


def flip_words(masks: np.ndarray) -> np.ndarray:
    """Bit-packed flip rows (:meth:`BatchSampler.flips`) padded to whole 64-bit words, the
    form :func:`xor_flips` XORs."""
    width = masks.shape[1]
    words = np.zeros((len(masks), -(-width // 8) * 8), dtype=np.uint8)
    words[:, :width] = masks
    return words.view(np.uint64)


def xor_flips(
    packed: np.ndarray, words: np.ndarray, lanes: np.ndarray, shots: np.ndarray, paulis: np.ndarray
) -> None:
    """XOR into the bit-packed rows ``packed`` the flips of errors: error ``k`` strikes row
    ``shots[k]`` with Pauli ``paulis[k]`` (:data:`PAULI_CODES`) at the site whose flips are
    rows ``2 * lanes[k]`` (X) and ``2 * lanes[k] + 1`` (Z) of ``words`` (:func:`flip_words`).

    >>> packed = np.zeros((3, 1), dtype=np.uint8)
    >>> words = flip_words(np.array([[1], [2], [4], [8]], dtype=np.uint8))
    >>> xor_flips(packed, words, np.array([0, 1, 1]), np.array([0, 0, 2]), np.array([1, 2, 3]))
    >>> packed.ravel().tolist()  # shot 0: X at lane 0 (1) and Y at lane 1 (4 ^ 8); shot 2: Z
    [13, 0, 8]
    """
    if not len(shots):
        return
    x = paulis <= 2  # X and Y flip what X flips
    z = paulis >= 2  # Y and Z what Z flips
    rows = np.concatenate([2 * lanes[x], 2 * lanes[z] + 1])
    struck = np.concatenate([shots[x], shots[z]])
    order = np.argsort(struck, kind="stable")
    rows, struck = rows[order], struck[order]
    starts = np.flatnonzero(np.concatenate([[True], struck[1:] != struck[:-1]]))
    summed = np.bitwise_xor.reduceat(words[rows], starts, axis=0)
    width = packed.shape[1]
    packed[struck[starts]] ^= summed.view(np.uint8)[:, :width]


def unpack_columns(packed: np.ndarray, columns: tuple[int | None, ...]) -> np.ndarray:
    """Rows (uint8) of the record bits at ``columns`` of bit-packed rows, in that order (a
    None column reads 0).

    >>> packed = np.array([[0b101]], dtype=np.uint8)
    >>> unpack_columns(packed, (0, 1, 2)).tolist(), unpack_columns(packed, (2, None, 1)).tolist()
    ([[1, 0, 1]], [[1, 0, 0]])
    """
    width = len(columns)
    if columns == tuple(range(width)):
        return np.unpackbits(packed, axis=1, count=width, bitorder="little")
    bits = np.zeros((len(packed), width), dtype=np.uint8)
    present = [j for j, c in enumerate(columns) if c is not None]
    if present:
        cols = np.array([columns[j] for j in present], dtype=np.int64)
        bits[:, present] = (packed[:, cols >> 3] >> (cols & 7).astype(np.uint8)) & 1
    return bits


def count_ones(packed: np.ndarray, columns: tuple[int, ...]) -> int:
    """How many 1 bits bit-packed rows hold at ``columns``, over all rows."""
    if not columns:
        return 0
    mask = np.zeros(packed.shape[1], dtype=np.uint8)
    for column in columns:
        mask[column >> 3] |= np.uint8(1 << (column & 7))
    return int(np.bitwise_count(packed & mask).sum(dtype=np.int64))


#: The capability: compile a circuit, or None when this engine cannot run it in bulk.
BatchCompiler = Callable[[BatchCircuit], "BatchSampler | None"]


def batch_compiler(engine_class: type) -> BatchCompiler | None:
    """The engine class's ``compile_batch``, or None when it offers no batch sampling."""
    compiler = getattr(engine_class, "compile_batch", None)
    return compiler if callable(compiler) else None
