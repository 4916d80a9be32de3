"""Batch circuits as one stim circuit, sampled in bulk: the stabilizer engine's batch capability.

A :class:`~qmk.engines.batch.BatchCircuit` of Clifford gates, resets, Pauli-basis and
Pauli-product measurements, one- and two-qubit (and heralded) Pauli channels and
feed-forward that is linear over the measurement record (Paulis controlled by the XOR of
record bits) compiles to a single ``stim.Circuit``. Feed-forward becomes classically
controlled Paulis (``CX rec[-k] q``) and a product measurement an ``MPP``. A two-qubit
channel becomes a ``PAULI_CHANNEL_2``, and a heralded channel a
``HERALDED_PAULI_CHANNEL_1`` whose herald bit says whether an error was injected.
Error sites are not compiled into the sampled circuit: the caller draws their
errors, and :meth:`StimSampler.flips` finds the record bits each one flips (stim's
``FlipSimulator``), which :meth:`StimSampler.sample` XORs into noiseless samples.
Anything else (a non-Clifford gate, a controlled non-Pauli) is not compiled:
:func:`compile_batch` returns None and the executor runs the program another way.

>>> from qmk.engines.batch import BatchCircuit, Instruction, Kind
>>> bell = BatchCircuit(num_qubits=2, instructions=(
...     Instruction(kind=Kind.GATE, qubits=(0,), gate="h"),
...     Instruction(kind=Kind.GATE, qubits=(0, 1), gate="cx"),
...     Instruction(kind=Kind.MEASURE, qubits=(0,)),
...     Instruction(kind=Kind.MEASURE, qubits=(1,)),
... ))
>>> bits, _ = compile_batch(bell).sample(1000, 7, (0, 1), ())
>>> bool((bits[:, 0] == bits[:, 1]).all()), 400 < int(bits[:, 0].sum()) < 600
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import stim

from qmk.engines.affine import AffineSampler, FreeSampler, affine_sampler, worth_finding
from qmk.engines.base import EngineError
from qmk.engines.batch import (
    BatchCircuit,
    Errors,
    Instruction,
    Kind,
    check_errors,
    count_ones,
    flip_words,
    unpack_columns,
    xor_flips,
)
from qmk.engines.stim_gates import stim_gate
from qmk.qvm.graph import gc_paused

_CONTROLLED = {"X": "CX", "Y": "CY", "Z": "CZ"}
_MEASURE = {"Z": "M", "X": "MX", "Y": "MY"}


#: Bools of one chunk of flip lanes (records x lanes) stay under this many (32 MiB).
_FLIP_CHUNK_BITS = 1 << 25


@dataclass(frozen=True, slots=True)
class StimSampler:
    """A compiled circuit (see the module docstring).

    ``circuit`` is what :meth:`sample` samples: the batch circuit without its error
    sites. ``flip_lines`` is the stim text of the same circuit with every noise channel
    the engine draws, one- or two-qubit, silenced (a herald keeps its record bit, always
    0). Error site ``i`` strikes qubit ``site_qubits[i]`` after the first
    ``site_lines[i]`` of those lines. Sites with the same qubit and line flip alike.
    That is what :meth:`flips` propagates errors through.

    ``targets`` counts the gate targets of the circuit (what stim's sampler simulates a
    shot, beside its measurements). ``affine`` keeps the circuit's sampler from its support
    (:func:`~qmk.engines.affine.affine_sampler`; None where it has none, or stim's
    sampler costs less) once :meth:`sample_packed` has looked for it. ``reference`` keeps
    its reference sample (bit-packed) once a stim sampler has been compiled. That is the
    noiseless sample stim XORs its frames into, a function of the circuit alone, which
    ``compile_sampler`` would otherwise find again (a tableau simulation) for every seed.
    """

    circuit: stim.Circuit
    mode: str = "stim-batch"
    flip_lines: tuple[str, ...] = ()
    site_lines: tuple[int, ...] = ()
    site_qubits: tuple[int, ...] = ()
    targets: int = 0
    affine: list[AffineSampler | FreeSampler | None] = field(
        default_factory=list, compare=False, repr=False
    )
    reference: list[np.ndarray] = field(default_factory=list, compare=False, repr=False)

    @property
    def num_sites(self) -> int:
        """How many error sites the circuit has."""
        return len(self.site_qubits)

    def sample(
        self,
        shots: int,
        seed: int,
        columns: tuple[int | None, ...],
        tallied: tuple[int, ...],
        errors: Errors | None = None,
    ) -> tuple[np.ndarray, int]:
        """Rows of the record bits at ``columns`` and the 1 bits at ``tallied``;
        ``errors`` add their measurement flips (:meth:`flips`) to the shots they strike."""
        packed = self.sample_packed(shots, seed)
        if errors is not None and len(errors):
            check_errors(errors, self.num_sites, shots)
            distinct, lanes = np.unique(errors.sites, return_inverse=True)
            words = flip_words(self.flips(distinct))
            xor_flips(packed, words, lanes, errors.shots, errors.paulis)
        return unpack_columns(packed, columns), count_ones(packed, tallied)

    def sample_packed(self, shots: int, seed: int) -> np.ndarray:
        """``shots`` rows of every record bit, bit-packed (stim's fastest output), drawn with
        ``seed``; no error site strikes.

        Some chunks are drawn from the outcomes' affine support (:mod:`qmk.engines.affine`):
        those of a circuit whose measurements all come after its gates, with enough shots
        that finding the support may pay for itself, where a sampler of it costs less a
        shot than stim's. (:func:`~qmk.engines.affine.worth_finding` asks for 2^22 record
        bits at least, more for a deep circuit, whose support costs more to find.) Any
        other chunk is drawn from a stim sampler compiled with ``seed``. The choice
        depends on the circuit and ``shots`` only, so a seed draws the same bits for the
        same chunk.
        """
        if worth_finding(shots, self.circuit.num_measurements, self.targets):
            if not self.affine:
                self.affine.append(affine_sampler(self.circuit))
            affine = self.affine[0]
            if affine is not None:
                return affine.sample_packed(shots, seed)
        if not self.reference:  # what compile_sampler finds when given none: the same bits
            self.reference.append(self.circuit.reference_sample(bit_packed=True))
        sampler = self.circuit.compile_sampler(seed=seed, reference_sample=self.reference[0])
        return sampler.sample(shots, bit_packed=True)

    def sample_detectors(self, shots: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``shots`` rows of the circuit's detection events and of its observables' flips,
        each bit-packed, drawn by stim's compiled detector sampler with ``seed`` (no
        error site strikes).

        >>> flip = stim.Circuit("X_ERROR(1) 0\\nM 0\\nDETECTOR rec[-1]\\n"
        ...                     "OBSERVABLE_INCLUDE(0) rec[-1]")
        >>> [a.tolist() for a in StimSampler(flip).sample_detectors(2, 7)]
        [[[1], [1]], [[1], [1]]]
        """
        sampler = self.circuit.compile_detector_sampler(seed=seed)
        detectors, observables = sampler.sample(shots, bit_packed=True, separate_observables=True)
        return detectors, observables

    def detectors_of(self, record: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The detection events and observable flips of measurement records (bit-packed
        rows, as :meth:`sample_packed` draws them), bit-packed: stim's
        measurement-to-detection converter, which XORs each detector's measurements
        against the circuit's noiseless reference."""
        converter = self.circuit.compile_m2d_converter()
        detectors, observables = converter.convert(
            measurements=record, separate_observables=True, bit_packed=True
        )
        return detectors, observables

    def flips(self, sites: np.ndarray) -> np.ndarray:
        """Which record bits a Pauli error at each of ``sites`` flips, bit-packed
        (little-endian, as stim packs samples): row ``2k`` for X at ``sites[k]``, row
        ``2k + 1`` for Z (a Y flips their XOR).

        The flips do not depend on the shot: the circuit is Clifford and its
        feed-forward is Paulis controlled by record bits, through which a Pauli frame
        propagates exactly. stim's ``FlipSimulator`` (stabilizer randomization off)
        propagates one error per lane, one lane pair for each distinct line and qubit
        (see the class docstring), walked in order.

        >>> from qmk.engines.batch import BatchCircuit, Instruction, Kind
        >>> site = Instruction(kind=Kind.ERROR_SITE, qubits=(0,), probs=(0.1, 0.0, 0.0))
        >>> bell = BatchCircuit(num_qubits=2, instructions=(
        ...     Instruction(kind=Kind.GATE, qubits=(0,), gate="h"), site,
        ...     Instruction(kind=Kind.GATE, qubits=(0, 1), gate="cx"),
        ...     Instruction(kind=Kind.MEASURE, qubits=(0,)),
        ...     Instruction(kind=Kind.MEASURE, qubits=(1,)),
        ... ))
        >>> compile_batch(bell).flips(np.array([0])).tolist()  # X flips both, Z neither
        [[3], [0]]
        """
        sites = np.asarray(sites, dtype=np.int64)
        records = self.circuit.num_measurements
        width = (records + 7) // 8
        if not len(sites):
            return np.zeros((0, width), dtype=np.uint8)
        # One lane pair per distinct (line, qubit): the walk's order, and its work.
        n = max(self.circuit.num_qubits, 1)
        lines = np.array(self.site_lines, dtype=np.int64)[sites]
        keys = lines * n + np.array(self.site_qubits, dtype=np.int64)[sites]
        distinct, inverse = np.unique(keys, return_inverse=True)
        at, qubits = (distinct // n).tolist(), (distinct % n).tolist()
        lanes = max(256, _FLIP_CHUNK_BITS // max(records, 1)) // 2
        masks = np.concatenate(
            [
                self._flips(at[i : i + lanes], qubits[i : i + lanes], records)
                for i in range(0, len(at), lanes)
            ]
        )
        return masks.reshape(-1, 2, width)[inverse].reshape(-1, width)

    def _flips(self, at: list[int], qubits: list[int], records: int) -> np.ndarray:
        """Rows ``2k`` and ``2k + 1``: the flips of X and Z on ``qubits[k]`` after
        ``at[k]`` (increasing) of the flip lines."""
        simulator = stim.FlipSimulator(
            batch_size=2 * len(at),
            disable_stabilizer_randomization=True,
            num_qubits=self.circuit.num_qubits,
        )
        lines, done = self.flip_lines, 0
        flip = simulator.set_pauli_flip
        for lane, (line, qubit) in enumerate(zip(at, qubits, strict=True)):
            if line > done:
                simulator.do(stim.Circuit("\n".join(lines[done:line])))
                done = line
            flip(1, qubit_index=qubit, instance_index=2 * lane)
            flip(3, qubit_index=qubit, instance_index=2 * lane + 1)
        if done < len(lines):
            simulator.do(stim.Circuit("\n".join(lines[done:])))
        # Bit-packed along the lanes (stim's cheapest output), turned to one row per lane
        # by a bit transpose: stim's bools and a strided transpose cost far more.
        flipped = simulator.get_measurement_flips(bit_packed=True)[:records]
        return transpose_bits(flipped, 2 * len(at))


_U64 = np.dtype("<u8")
#: The delta swaps of an 8x8 bit transpose in a 64-bit word (Hacker's Delight 7-3):
#: (shift, mask) for bit 8i + j <-> 8j + i.
_SWAPS = tuple(
    (np.uint64(shift), np.uint64(mask))
    for shift, mask in ((7, 0x00AA00AA00AA00AA), (14, 0x0000CCCC0000CCCC), (28, 0x00000000F0F0F0F0))
)


def transpose_bits(packed: np.ndarray, count: int) -> np.ndarray:
    """The transpose of a bit matrix packed little-endian along its rows: ``packed`` is
    ``R`` rows of ``ceil(C / 8)`` bytes; the result is ``count`` (at most ``C``) rows of
    ``ceil(R / 8)`` bytes, row ``c`` holding column ``c``. Done on 8x8 blocks, each a
    64-bit word transposed by three delta swaps.

    >>> bits = np.array([[1, 0, 1], [0, 1, 1]], dtype=np.uint8)  # 2 rows, 3 columns
    >>> packed = np.packbits(bits, axis=1, bitorder="little")
    >>> np.unpackbits(transpose_bits(packed, 3), axis=1, count=2, bitorder="little").tolist()
    [[1, 0], [0, 1], [1, 1]]
    """
    rows, width = packed.shape
    blocks = -(-rows // 8)
    padded = np.zeros((blocks * 8, width), dtype=np.uint8)
    padded[:rows] = packed
    # word (b, k): rows 8b..8b+7 of byte column k, one byte each (byte i = row 8b + i)
    words = np.ascontiguousarray(padded.reshape(blocks, 8, width).transpose(0, 2, 1))
    x = words.view(_U64).reshape(blocks, width)
    for shift, mask in _SWAPS:
        t = (x ^ (x >> shift)) & mask
        x = x ^ t ^ (t << shift)
    # now byte j of word (b, k) is column 8k + j, bit i of it row 8b + i
    out = np.ascontiguousarray(x.T).view(np.uint8).reshape(width, blocks, 8)
    return np.ascontiguousarray(out.transpose(0, 2, 1).reshape(width * 8, blocks)[:count])


#: The stim channel of each noise kind the engine draws: its head, qubits, probabilities.
_CHANNELS = {
    Kind.PAULI_CHANNEL: ("PAULI_CHANNEL_1(", 1, 3),
    Kind.PAULI_CHANNEL_2: ("PAULI_CHANNEL_2(", 2, 15),
    Kind.HERALDED_PAULI_CHANNEL: ("HERALDED_PAULI_CHANNEL_1(0,", 1, 3),
}


def _texts(instruction: Instruction, count: int) -> tuple[str, str, int] | None:
    """The stim text of one instruction (``count`` record bits precede it) in the sampled
    circuit and in the flip circuit (the engine's noise silenced, a herald's bit kept),
    and its record bits; None when stim cannot express it.

    Raises:
        EngineError: ``QE105`` for a noise channel with the wrong number of qubits or
            probabilities (a two-qubit channel takes two qubits and fifteen).
    """
    kind = instruction.kind
    channel = _CHANNELS.get(kind)
    if channel is None:
        line = _line(instruction, count)
        return None if line is None else (line, line, instruction.records)
    head, arity, size = channel
    qubits, probs = instruction.qubits, instruction.probs
    if len(qubits) != arity or len(probs) != size:
        raise EngineError.of(
            "engine-misuse",
            f"a {kind.value} instruction takes {arity} qubit(s) and {size} "
            f"probabilities, got {len(qubits)} and {len(probs)}",
        )
    qs = " ".join(map(str, qubits))
    line = f"{head}{','.join(map(repr, probs))}) {qs}"
    if kind is Kind.HERALDED_PAULI_CHANNEL:
        return line, f"HERALDED_PAULI_CHANNEL_1(0,0,0,0) {qs}", 1
    return line, "", 0


def _line(instruction: Instruction, count: int) -> str | None:
    """The stim text of one instruction that is not a noise channel, or None when stim
    cannot express it.

    Raises:
        EngineError: ``QE103`` for an instruction kind this compiler does not know.
    """
    kind, qs = instruction.kind, " ".join(map(str, instruction.qubits))
    if kind is Kind.RESET:
        return f"R {qs}"
    if kind is Kind.GATE:
        name = stim_gate(instruction.gate, instruction.params)
        if name is None:
            return None
        if not instruction.controls:
            return "" if name == "I" else f"{name} {qs}"
        if name not in _CONTROLLED:
            return None
        lines = [f"{name} {qs}"] if instruction.invert else []
        lines += [f"{_CONTROLLED[name]} rec[{r - count}] {qs}" for r in instruction.controls]
        return "\n".join(lines)
    if kind is Kind.MEASURE:
        return f"{_MEASURE[instruction.basis]} {'!' if instruction.invert else ''}{qs}"
    if kind is not Kind.MEASURE_PRODUCT:
        raise EngineError.of(
            "gate-unsupported",
            f"the stabilizer engine's batch compiler has no {kind.value} instruction",
        )
    product = "*".join(
        f"{p}{q}" for p, q in zip(instruction.paulis, instruction.qubits, strict=True)
    )
    return f"MPP {'!' if instruction.invert else ''}{product}"


@gc_paused()  # a bulk pass that builds no cycles
def compile_batch(circuit: BatchCircuit) -> StimSampler | None:
    """One stim circuit for ``circuit``, or None when an instruction is beyond stim.

    The circuit is written as text and parsed once: much faster than appending
    instruction by instruction. Error sites are left out of the sampled circuit; the
    text of the circuit around them is kept for :meth:`StimSampler.flips`.

    Raises:
        EngineError: ``QE105`` for a noise channel with the wrong number of qubits or
            probabilities; ``QE103`` for an instruction kind it does not know.

    >>> from qmk.engines.batch import BatchCircuit, Instruction, Kind
    >>> xx = (0.0,) * 4 + (0.25,) + (0.0,) * 10  # PAULI_PAIRS[4] is XX
    >>> pair = BatchCircuit(num_qubits=2, instructions=(
    ...     Instruction(kind=Kind.PAULI_CHANNEL_2, qubits=(0, 1), probs=xx),
    ... ))
    >>> str(compile_batch(pair).circuit)
    'PAULI_CHANNEL_2(0, 0, 0, 0, 0.25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) 0 1'
    """
    text = _Text()
    # A large circuit repeats a few instruction objects many times (the neutral-atom
    # device's atoms share qubits, and it builds each distinct instruction once); the
    # text of one without feed-forward does not depend on where it stands, so it is
    # written once per object. Keyed by identity, which is cheaper to hash than the
    # instruction's fields: the circuit holds every object while this runs.
    written: dict[int, tuple[str, str, int]] = {}
    # A plain gate (most of a circuit) is written by _plain, its stim name found once
    # per gate and parameters and its qubits' text once per qubit.
    names: dict[tuple[str, tuple[float, ...]], str | None] = {}
    numbers = [str(q) for q in range(circuit.num_qubits)]
    count = 0
    lines, flip_lines = text.lines, text.flip_lines
    site_lines, site_qubits = text.site_lines, text.site_qubits
    for instruction in circuit.instructions:
        kind = instruction.kind
        if kind is Kind.GATE and not instruction.controls:
            line = _plain(instruction, names, numbers)
            if line is None:
                return None
            if line:  # text.add for a line that is its own flip line, written out: most lines
                lines.append(line)
                flip_lines.append(line)
                text.targets += len(instruction.qubits)
            continue
        if kind is Kind.ERROR_SITE:  # the flip lines before it, and its qubit
            site_lines.append(len(flip_lines))
            site_qubits.append(instruction.qubits[0])
            continue
        texts = written.get(id(instruction))
        if texts is None:
            texts = _texts(instruction, count)
            if texts is None:
                return None
            if not instruction.controls:
                written[id(instruction)] = texts
        line, flip, records = texts
        text.add(line, flip, instruction.qubits, gate=kind is Kind.GATE)
        count += records
    return text.sampler()


def _plain(
    instruction: Instruction,
    names: dict[tuple[str, tuple[float, ...]], str | None],
    numbers: list[str],
) -> str | None:
    """The stim text of a gate without feed-forward ("" for the identity), or None when
    stim has no such Clifford; ``names`` keeps each gate's stim name, ``numbers`` holds
    the text of each qubit of the circuit."""
    key = (instruction.gate, instruction.params)
    name = names.get(key, "")
    if not name:
        name = names[key] = stim_gate(*key)
        if name is None:
            return None
    if name == "I":
        return ""
    qubits = instruction.qubits
    try:
        if len(qubits) == 1:  # (most gates: no list to join)
            return f"{name} {numbers[qubits[0]]}"
        return f"{name} {' '.join([numbers[q] for q in qubits])}"
    except IndexError:  # a qubit past num_qubits: stim widens its circuit
        return f"{name} {' '.join(map(str, qubits))}"


class _Text:
    """A batch circuit's stim text as it is written: the sampled circuit's lines, the
    flip lines (:class:`StimSampler`), each error site's qubit and the number of flip
    lines before it, and the gates' targets."""

    __slots__ = ("flip_lines", "lines", "site_lines", "site_qubits", "targets")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.flip_lines: list[str] = []
        self.site_lines: list[int] = []
        self.site_qubits: list[int] = []
        self.targets = 0

    def add(self, line: str, flip: str, qubits: tuple[int, ...], *, gate: bool) -> None:
        """One instruction's line and flip line (either may be empty), on ``qubits``."""
        if line:
            self.lines.append(line)
            if gate:
                self.targets += len(qubits)
        if flip:
            self.flip_lines.append(flip)

    def sampler(self) -> StimSampler:
        """The compiled circuit."""
        return StimSampler(
            circuit=stim.Circuit("\n".join(self.lines)),
            flip_lines=tuple(self.flip_lines) if self.site_lines else (),
            site_lines=tuple(self.site_lines),
            site_qubits=tuple(self.site_qubits),
            targets=self.targets,
        )
