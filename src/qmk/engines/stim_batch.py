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

from qmk.arrays import distinct
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
from qmk.engines.instructions import OBJECT, SITE, Instructions
from qmk.engines.stim_gates import stim_gate
from qmk.engines.stim_lines import PlainLines

_CONTROLLED = {"X": "CX", "Y": "CY", "Z": "CZ"}
_MEASURE = {"Z": "M", "X": "MX", "Y": "MY"}
#: A one-qubit measurement's text before its qubit, by basis and inversion (as _line).
_MEASURE_HEADS = {
    (basis, invert): f"{name} {'!' if invert else ''}"
    for basis, name in _MEASURE.items()
    for invert in (False, True)
}


#: Bools of one chunk of flip lanes (records x lanes) stay under this many (32 MiB).
_FLIP_CHUNK_BITS = 1 << 25


def _read_only(values: np.ndarray) -> np.ndarray:
    out = np.asarray(values, dtype=np.int64)
    out.setflags(write=False)
    return out


_NO_SITES: np.ndarray = _read_only(np.zeros(0, dtype=np.int64))


@dataclass(frozen=True, slots=True)
class StimSampler:
    """A compiled circuit (see the module docstring).

    ``source`` is what :meth:`sample` samples: the batch circuit without its error
    sites, as a circuit or as its stim text, parsed at first use (:attr:`circuit`). Where
    the flip walk comes first and walks that very text, it parses the text in its pieces
    and joins them into the circuit: stim reads the text once. ``records`` counts the
    record bits of a text's circuit (-1: read them off the circuit).

    ``flip_text`` is the stim text of the same circuit with every noise channel the
    engine draws, one- or two-qubit, silenced (a herald keeps its record bit, always
    0). Error site ``i`` strikes qubit ``site_qubits[i]`` after the first
    ``site_offsets[i]`` characters of that text, which end a line (:meth:`offsets_of`:
    found for the sites an error strikes only, from ``anchors``). Sites with the same
    qubit and offset flip alike. That is what :meth:`flips` propagates errors through.

    ``targets`` counts the gate targets of the circuit (what stim's sampler simulates a
    shot, beside its measurements). ``affine`` keeps the circuit's sampler from its support
    (:func:`~qmk.engines.affine.affine_sampler`; None where it has none, or stim's
    sampler costs less) once :meth:`sample_packed` has looked for it. ``reference`` keeps
    its reference sample (bit-packed) once a stim sampler has been compiled. That is the
    noiseless sample stim XORs its frames into, a function of the circuit alone, which
    ``compile_sampler`` would otherwise find again (a tableau simulation) for every seed.
    """

    source: stim.Circuit | str
    mode: str = "stim-batch"
    flip_text: str = ""
    #: (int64 array, read-only: a million-gate circuit has over a million sites, whose
    #: numbers as tuples cost a fifth of a second to make and to read back)
    site_qubits: np.ndarray = field(default_factory=lambda: _NO_SITES, compare=False)
    #: where in the text the sites stand (None: no site)
    anchors: SiteAnchors | None = field(default=None, compare=False, repr=False)
    targets: int = 0
    affine: list[AffineSampler | FreeSampler | None] = field(
        default_factory=list, compare=False, repr=False
    )
    reference: list[np.ndarray] = field(default_factory=list, compare=False, repr=False)
    records: int = -1
    parsed: list[stim.Circuit] = field(default_factory=list, compare=False, repr=False)

    @property
    def circuit(self) -> stim.Circuit:
        """The circuit :meth:`sample` samples (``source``, parsed once where it is text)."""
        if isinstance(self.source, stim.Circuit):
            return self.source
        if not self.parsed:
            self.parsed.append(stim.Circuit(self.source))
        return self.parsed[0]

    def _unparsed(self) -> bool:
        """Whether ``source`` is text not parsed yet, which the flip walk walks as it is."""
        return not self.parsed and self.source is self.flip_text and self.records >= 0

    @property
    def num_sites(self) -> int:
        """How many error sites the circuit has."""
        return len(self.site_qubits)

    def offsets_of(self, sites: np.ndarray) -> np.ndarray:
        """The flip text's characters before each of ``sites`` (see the class docstring)."""
        sites = np.asarray(sites, dtype=np.int64)
        if self.anchors is None or not len(sites):
            return np.zeros(len(sites), dtype=np.int64)
        return self.anchors.offsets_of(sites, self.site_qubits[sites])

    @property
    def site_offsets(self) -> np.ndarray:
        """:meth:`offsets_of` every site (a small circuit's: a million sites' costs)."""
        return self.offsets_of(np.arange(self.num_sites))

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

    def drew_with(self, shots: int) -> str:
        """Which sampler :meth:`sample_packed` drew ``shots`` shots with, once it has:
        ``"affine-support"`` (QMK's, from the outcomes' support) or ``"stim"``."""
        found = self.affine[0] if self.affine else None
        if found is not None and worth_finding(shots, self.circuit.num_measurements, self.targets):
            return "affine-support"
        return "stim"

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
        records = self.records if self._unparsed() else self.circuit.num_measurements
        width = (records + 7) // 8
        if not len(sites):
            return np.zeros((0, width), dtype=np.uint8)
        # One lane pair per distinct (offset, qubit): the walk's order, and its work.
        qubits_of = self.site_qubits[sites]
        n = max(int(qubits_of.max()) + 1, 1)
        keys = self.offsets_of(sites) * n + qubits_of
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
        ``at[k]`` (increasing) characters of the flip text."""
        # (the simulator grows to the qubits the walk meets)
        simulator = stim.FlipSimulator(
            batch_size=2 * len(at), disable_stabilizer_randomization=True, num_qubits=0
        )
        text, done = self.flip_text, 0
        whole = stim.Circuit() if self._unparsed() else None  # (the pieces joined)
        flip = simulator.set_pauli_flip
        for lane, (offset, qubit) in enumerate(zip(at, qubits, strict=True)):
            if offset > done:
                piece = stim.Circuit(text[done:offset])
                simulator.do(piece)
                if whole is not None:
                    whole += piece  # (stim fuses lines across the cut as the parse does)
                done = offset
            flip(1, qubit_index=qubit, instance_index=2 * lane)
            flip(3, qubit_index=qubit, instance_index=2 * lane + 1)
        if done < len(text):
            piece = stim.Circuit(text[done:])
            simulator.do(piece)
            if whole is not None:
                whole += piece
        if whole is not None:
            self.parsed.append(whole)
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


def compile_batch(circuit: BatchCircuit) -> StimSampler | None:
    """One stim circuit for ``circuit``, or None when an instruction is beyond stim.

    The circuit is written as text and parsed once: much faster than appending
    instruction by instruction (and much faster than appending a layer's targets at a
    time). Its plain gates (:class:`~qmk.engines.instructions.Instructions`' columns)
    are written a line for the gates of one name in a moment
    (:class:`~qmk.engines.stim_lines.PlainLines`), the rest an instruction at a time.
    Error sites are left out of the sampled circuit; the text of the circuit around
    them is kept for :meth:`StimSampler.flips`.

    Raises:
        EngineError: ``QE105`` for a noise channel with the wrong number of qubits or
            probabilities; ``QE103`` for an instruction kind it does not know;
            ``QE102`` past :data:`~qmk.engines.stim_lines.MAX_QUBITS` qubits.

    >>> from qmk.engines.batch import BatchCircuit, Instruction, Kind
    >>> xx = (0.0,) * 4 + (0.25,) + (0.0,) * 10  # PAULI_PAIRS[4] is XX
    >>> pair = BatchCircuit(num_qubits=2, instructions=(
    ...     Instruction(kind=Kind.PAULI_CHANNEL_2, qubits=(0, 1), probs=xx),
    ... ))
    >>> str(compile_batch(pair).circuit)
    'PAULI_CHANNEL_2(0, 0, 0, 0, 0.25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) 0 1'
    """
    rows = Instructions.of(circuit.instructions)
    plain = PlainLines.of(rows, circuit.num_qubits)
    if plain is None:
        return None
    objects = _objects(rows, circuit.num_qubits)
    if objects is None:
        return None
    # where each site stands: before a row of the circuit (the rows before it are those
    # whose flips it follows), in circuit order (``2 * before + shift``, where parts
    # mix): the side table's before its row, a site row (a column's or an object's)
    # after those before it
    column_rows = np.flatnonzero(rows.kinds == SITE)
    object_rows = objects.rows[objects.sites]
    parts = [
        (rows.site_at, rows.site_qubits, 0),
        (column_rows, rows.qubits[rows.offsets[column_rows]], 1),
        (object_rows + 1, np.asarray(objects.site_qubits, dtype=np.int64), -1),
    ]
    kept = [part for part in parts if len(part[0])]
    anchors = None
    site_qubits = _NO_SITES
    if kept:
        before = kept[0][0] if len(kept) == 1 else np.concatenate([p[0] for p in kept])
        site_qubits = kept[0][1] if len(kept) == 1 else np.concatenate([p[1] for p in kept])
        if len(kept) > 1:
            shifts = np.concatenate([np.full(len(p[0]), p[2]) for p in kept])
            order = np.argsort(2 * before + shifts, kind="stable")
            before, site_qubits = before[order], site_qubits[order]
        # each row's flip text, in characters, then where the text of the rows up to
        # each ends (in place: a million-row circuit's column). The last entry, 0, is
        # the start, where an anchor of -1 reads it.
        ends = np.zeros(len(rows.kinds) + 1, dtype=np.int64)
        ends[plain.rows] = plain.sizes()
        ends[objects.rows] = objects.flip_sizes
        np.cumsum(ends[:-1], out=ends[:-1])
        anchors = SiteAnchors(before, ends, rows, plain, objects.rows)
    text = plain.text(objects.rows, objects.lines)
    flip_text = ""
    if anchors is not None:  # the same text where no line differs (no channel drawn)
        same = objects.flips == objects.lines
        flip_text = text if same else plain.text(objects.rows, objects.flips)
    return StimSampler(
        source=text,
        flip_text=flip_text,
        site_qubits=_read_only(site_qubits),
        anchors=anchors,
        targets=plain.targets + objects.targets,
        records=objects.records,
    )


class SiteAnchors:
    """Where error sites stand in a compiled circuit's flip text, found for the sites
    asked about only (a million-site circuit's errors strike a thousand).

    Site ``k`` stands before row ``before[k]``. On qubit ``q``, it stands after the
    moment of the last gate on ``q`` before it, or after the last object row before it
    where that comes later: between there and its place stand only gates on other qubits, with
    which an error on ``q`` commutes. A site's last gate is looked for in the gates'
    targets just before it, in windows that double (:data:`_WINDOW` first; past
    :data:`_WINDOWS`, all of its qubit's targets at once).
    """

    __slots__ = ("before", "ends", "mend", "object_rows", "offsets", "targets")

    def __init__(
        self,
        before: np.ndarray,
        ends: np.ndarray,
        rows: Instructions,
        plain: PlainLines,
        object_rows: np.ndarray,
    ) -> None:
        self.before = before
        self.ends = ends
        self.object_rows = object_rows
        self.offsets = rows.offsets
        # each row's moment end (-1: no gate written there)
        self.mend = np.full(len(rows.kinds), -1, dtype=np.int64)
        self.mend[plain.placed] = plain.moment_ends
        # each target's qubit, -1 where no written gate's (where every kept qubit is a
        # written gate's, as a lowered plan's: the column itself)
        gates = plain.placed
        if plain.targets == int(self.offsets[-1] - self.offsets[0]):
            self.targets = rows.qubits
        else:
            self.targets = np.full(len(rows.qubits), -1, dtype=np.int64)
            arity = self.offsets[gates + 1] - self.offsets[gates]
            first = np.cumsum(arity) - arity
            at = np.repeat(self.offsets[gates] - first, arity) + np.arange(int(arity.sum()))
            self.targets[at] = rows.qubits[at]

    def _last_targets(self, limits: np.ndarray, qubits: np.ndarray) -> np.ndarray:
        """For each site, the last target before ``limits[k]`` on ``qubits[k]`` (-1:
        none)."""
        targets = self.targets
        found = np.full(len(limits), -1, dtype=np.int64)
        open_ = np.flatnonzero(limits > 0)
        width = _WINDOW
        while len(open_) and width <= _WINDOWS:
            ends = limits[open_]
            at = ends[:, None] - width + np.arange(width)
            seen = (targets[np.maximum(at, 0)] == qubits[open_][:, None]) & (at >= 0)
            hit = seen.any(axis=1)
            last = width - 1 - np.argmax(seen[:, ::-1], axis=1)
            found[open_[hit]] = at[hit, last[hit]]
            open_ = open_[~hit & (ends > width)]
            width *= 2
        for qubit in distinct(qubits[open_]).tolist():  # (a qubit's targets are rare)
            mine = open_[qubits[open_] == qubit]
            places = np.flatnonzero(targets == qubit)
            found[mine] = np.r_[-1, places][np.searchsorted(places, limits[mine])]
        return found

    def offsets_of(self, sites: np.ndarray, qubits: np.ndarray) -> np.ndarray:
        """The flip text's characters before each of ``sites`` (on ``qubits``)."""
        before = self.before[sites]
        offsets = self.offsets
        last = self._last_targets(offsets[before] - offsets[0], qubits)
        rows = np.searchsorted(offsets, last + offsets[0], side="right") - 1
        anchor = np.where(last >= 0, self.mend[np.maximum(rows, 0)], -1)
        objects = self.object_rows
        last_object = np.r_[-1, objects][np.searchsorted(objects, before)]
        return self.ends[np.maximum(anchor, last_object)]


#: :class:`SiteAnchors` looks for a site's last gate in this many targets before it
#: first (a qubit of a hundred is met every hundred targets or so), then twice as many,
#: up to :data:`_WINDOWS`.
_WINDOW = 256
_WINDOWS = 1 << 14


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


@dataclass(frozen=True, slots=True)
class _Objects:
    """The text of a circuit's rows kept as objects (:data:`~qmk.engines.instructions.
    OBJECT`), in order: their row, their line in the sampled circuit and in the flip
    circuit (each "" or ending in a newline), the flip line's length, which are error
    sites (and their qubits), and their gate targets."""

    rows: np.ndarray
    lines: list[str]
    flips: list[str]
    flip_sizes: np.ndarray
    sites: np.ndarray
    site_qubits: list[int]
    targets: int
    records: int


def _objects(rows: Instructions, num_qubits: int) -> _Objects | None:
    """:class:`_Objects` of ``rows``, or None when stim cannot express one."""
    at = np.flatnonzero(rows.kinds == OBJECT)
    # A large circuit repeats a few instruction objects many times (the neutral-atom
    # device's atoms share qubits, and it builds each distinct instruction once); the
    # text of one without feed-forward does not depend on where it stands, so it is
    # written once per object. Keyed by identity, which is cheaper to hash than the
    # instruction's fields: the circuit holds every object while this runs.
    written: dict[int, tuple[str, str, int]] = {}
    # A plain gate is written by _plain, its stim name found once per gate and
    # parameters and its qubits' text once per qubit.
    names: dict[tuple[str, tuple[float, ...]], str | None] = {}
    numbers = [str(q) for q in range(num_qubits)]
    lines: list[str] = []
    flips: list[str] = []
    sites = np.zeros(len(at), dtype=bool)
    site_qubits: list[int] = []
    count = targets = 0
    objects = rows.objects
    for k, code in enumerate(rows.codes[at].tolist()):
        instruction = objects[code]
        kind = instruction.kind
        if kind is Kind.GATE and not instruction.controls:
            line = _plain(instruction, names, numbers)
            if line is None:
                return None
            if line:
                line += "\n"
                targets += len(instruction.qubits)
            lines.append(line)
            flips.append(line)
            continue
        if kind is Kind.MEASURE and len(instruction.qubits) == 1:  # (a run's, most often)
            qubit = instruction.qubits[0]
            head = _MEASURE_HEADS[instruction.basis, instruction.invert]
            line = f"{head}{numbers[qubit] if qubit < len(numbers) else qubit}\n"
            lines.append(line)
            flips.append(line)
            count += 1
            continue
        if kind is Kind.ERROR_SITE:  # no text: where it stands, and its qubit
            sites[k] = True
            site_qubits.append(instruction.qubits[0])
            lines.append("")
            flips.append("")
            continue
        texts = written.get(id(instruction))
        if texts is None:
            texts = _texts(instruction, count)
            if texts is None:
                return None
            if not instruction.controls:
                written[id(instruction)] = texts
        line, flip, records = texts
        if line and kind is Kind.GATE:
            targets += len(instruction.qubits)
        lines.append(f"{line}\n" if line else "")
        flips.append(f"{flip}\n" if flip else "")
        count += records
    sizes = np.fromiter(map(len, flips), dtype=np.int64, count=len(flips))
    return _Objects(at, lines, flips, sizes, sites, site_qubits, targets, count)
