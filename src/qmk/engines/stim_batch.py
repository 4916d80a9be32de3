"""Batch circuits as one stim circuit, sampled in bulk: the stabilizer engine's batch capability.

A :class:`~qmk.engines.batch.BatchCircuit` of Clifford gates, resets, Pauli-basis and
Pauli-product measurements, one- and two-qubit (and heralded) Pauli channels and
feed-forward that is linear over the measurement record (Paulis controlled by the XOR of
record bits) compiles to a single ``stim.Circuit``: feed-forward becomes classically
controlled Paulis (``CX rec[-k] q``), a product measurement an ``MPP``, a two-qubit
channel a ``PAULI_CHANNEL_2``, a heralded channel a ``HERALDED_PAULI_CHANNEL_1`` whose
herald bit says whether an error was injected.
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

from dataclasses import dataclass

import numpy as np
import stim

from qmk.engines.base import EngineError
from qmk.engines.batch import BatchCircuit, Errors, Instruction, Kind
from qmk.engines.stim_gates import stim_gate

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
    0), and ``site_lines[i]`` the number of those lines that come before error site
    ``i``, which strikes qubit ``site_qubits[i]``: what :meth:`flips` propagates errors
    through.
    """

    circuit: stim.Circuit
    mode: str = "stim-batch"
    flip_lines: tuple[str, ...] = ()
    site_lines: tuple[int, ...] = ()
    site_qubits: tuple[int, ...] = ()

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
        # Bit-packed sampling is stim's fastest output; bits are unpacked only for columns.
        packed = self.circuit.compile_sampler(seed=seed).sample(shots, bit_packed=True)
        if errors is not None and len(errors):
            self._add_flips(packed, shots, errors)
        width = len(columns)
        if columns == tuple(range(width)):
            bits = np.unpackbits(packed, axis=1, count=width, bitorder="little")
        else:
            bits = np.zeros((shots, width), dtype=np.uint8)
            present = [j for j, c in enumerate(columns) if c is not None]
            if present:
                cols = np.array([columns[j] for j in present], dtype=np.int64)
                bits[:, present] = (packed[:, cols >> 3] >> (cols & 7).astype(np.uint8)) & 1
        ones = 0
        if tallied:
            mask = np.zeros(packed.shape[1], dtype=np.uint8)
            for column in tallied:
                mask[column >> 3] |= np.uint8(1 << (column & 7))
            ones = int(np.bitwise_count(packed & mask).sum(dtype=np.int64))
        return bits, ones

    def flips(self, sites: np.ndarray) -> np.ndarray:
        """Which record bits a Pauli error at each of ``sites`` flips, bit-packed
        (little-endian, as stim packs samples): row ``2k`` for X at ``sites[k]``, row
        ``2k + 1`` for Z (a Y flips their XOR).

        The flips do not depend on the shot: the circuit is Clifford and its
        feed-forward is Paulis controlled by record bits, through which a Pauli frame
        propagates exactly. stim's ``FlipSimulator`` (stabilizer randomization off)
        propagates one error per lane; sites are walked in order, so ``sites`` must be
        increasing.

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
        lanes = max(256, _FLIP_CHUNK_BITS // max(records, 1)) // 2
        chunks = [self._flips(sites[i : i + lanes], records) for i in range(0, len(sites), lanes)]
        return np.concatenate(chunks) if chunks else np.zeros((0, width), dtype=np.uint8)

    def _flips(self, sites: np.ndarray, records: int) -> np.ndarray:
        simulator = stim.FlipSimulator(
            batch_size=2 * len(sites),
            disable_stabilizer_randomization=True,
            num_qubits=self.circuit.num_qubits,
        )
        lines, done = self.flip_lines, 0
        for lane, site in enumerate(sites.tolist()):
            at = self.site_lines[site]
            if at > done:
                simulator.do(stim.Circuit("\n".join(lines[done:at])))
                done = at
            qubit = self.site_qubits[site]
            simulator.set_pauli_flip(1, qubit_index=qubit, instance_index=2 * lane)
            simulator.set_pauli_flip(3, qubit_index=qubit, instance_index=2 * lane + 1)
        if done < len(lines):
            simulator.do(stim.Circuit("\n".join(lines[done:])))
        flipped = simulator.get_measurement_flips()[:records]
        return np.packbits(flipped.T, axis=1, bitorder="little")

    def _add_flips(self, packed: np.ndarray, shots: int, errors: Errors) -> None:
        """XOR the flips of ``errors`` into the rows of ``packed`` they strike."""
        sites, paulis, who = errors.sites, errors.paulis, errors.shots
        if (
            sites.min() < 0
            or sites.max() >= len(self.site_qubits)
            or who.min() < 0
            or who.max() >= shots
            or paulis.min() < 1
            or paulis.max() > 3
        ):
            raise EngineError.of(
                "engine-misuse",
                f"errors name sites in [0, {len(self.site_qubits)}), shots in [0, {shots}) "
                "and Paulis 1 (X), 2 (Y), 3 (Z); these do not",
            )
        distinct, lane = np.unique(sites, return_inverse=True)
        masks = self.flips(distinct)
        x = paulis <= 2  # X and Y flip what X flips
        z = paulis >= 2  # Y and Z what Z flips
        rows = np.concatenate([2 * lane[x], 2 * lane[z] + 1])
        struck = np.concatenate([who[x], who[z]])
        order = np.argsort(struck, kind="stable")
        rows, struck = rows[order], struck[order]
        starts = np.flatnonzero(np.concatenate([[True], struck[1:] != struck[:-1]]))
        # XOR whole 64-bit words: the masks padded to a multiple of 8 bytes.
        width = packed.shape[1]
        words = np.zeros((len(masks), -(-width // 8) * 8), dtype=np.uint8)
        words[:, :width] = masks
        summed = np.bitwise_xor.reduceat(words.view(np.uint64)[rows], starts, axis=0)
        packed[struck[starts]] ^= summed.view(np.uint8)[:, :width]


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
    return f"MPP {product}"


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
    lines: list[str] = []
    flip_lines: list[str] = []
    site_lines: list[int] = []
    site_qubits: list[int] = []
    # A large circuit repeats a few instruction objects many times (the neutral-atom
    # device's atoms share qubits, and it builds each distinct instruction once); the
    # text of one without feed-forward does not depend on where it stands, so it is
    # written once per object. Keyed by identity, which is cheaper to hash than the
    # instruction's fields: the circuit holds every object while this runs.
    written: dict[int, tuple[str, str, int]] = {}
    lookup, add_line, add_flip = written.get, lines.append, flip_lines.append
    count = 0
    for instruction in circuit.instructions:
        texts = lookup(id(instruction))
        if texts is None:
            if instruction.kind is Kind.ERROR_SITE:
                site_lines.append(len(flip_lines))
                site_qubits.append(instruction.qubits[0])
                continue
            texts = _texts(instruction, count)
            if texts is None:
                return None
            if not instruction.controls:
                written[id(instruction)] = texts
        line, flip, records = texts
        if line:
            add_line(line)
        if flip:
            add_flip(flip)
        count += records
    return StimSampler(
        circuit=stim.Circuit("\n".join(lines)),
        flip_lines=tuple(flip_lines) if site_lines else (),
        site_lines=tuple(site_lines),
        site_qubits=tuple(site_qubits),
    )
