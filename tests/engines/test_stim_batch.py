"""The stabilizer engine's sampler of a whole stim circuit: its detection events and
observable flips, drawn by stim's detector sampler or found from a measurement record,
are stim's own at the same seed, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import stim

from qmk.engines.batch import BatchCircuit, Instruction, Kind
from qmk.engines.instructions import OBJECT, PLAIN, SITE, Instructions
from qmk.engines.stim_batch import StimSampler, compile_batch
from support.stim_circuits import EVERY_INSTRUCTION, generated

SEED = 20261126


@pytest.mark.parametrize(
    "circuit",
    [generated("surface_code:rotated_memory_x", 3, 0.01), stim.Circuit(EVERY_INSTRUCTION)],
    ids=["surface-x-d3", "every-instruction"],
)
def test_detectors_are_stims_drawn_or_converted_from_the_record(circuit):
    sampler = StimSampler(circuit)
    dets, obs = sampler.sample_detectors(3000, SEED)
    want_dets, want_obs = circuit.compile_detector_sampler(seed=SEED).sample(
        3000, bit_packed=True, separate_observables=True
    )
    np.testing.assert_array_equal(dets, want_dets)
    np.testing.assert_array_equal(obs, want_obs)
    record = sampler.sample_packed(3000, SEED)
    np.testing.assert_array_equal(
        record, circuit.compile_sampler(seed=SEED).sample(3000, bit_packed=True)
    )
    found = sampler.detectors_of(record)
    converted = circuit.compile_m2d_converter().convert(
        measurements=record, separate_observables=True, bit_packed=True
    )
    for ours, theirs in zip(found, converted, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert found[0].shape == (3000, -(-circuit.num_detectors // 8))


def _plain_rows(gates: list[tuple[str, tuple[int, ...]]], measured: int) -> BatchCircuit:
    """``gates`` as the lowering writes them (columns), then a Z measurement of each of
    the first ``measured`` qubits (objects)."""
    names = sorted({gate for gate, _ in gates})
    measures = [Instruction(kind=Kind.MEASURE, qubits=(q,)) for q in range(measured)]
    sizes = [len(qubits) for _, qubits in gates] + [0] * measured
    rows = Instructions(
        np.array([PLAIN] * len(gates) + [OBJECT] * measured),
        np.array([names.index(gate) for gate, _ in gates] + list(range(measured))),
        np.r_[0, np.cumsum(sizes)],
        np.array([q for _, qubits in gates for q in qubits], dtype=np.int64),
        gates=[(name, ()) for name in names],
        objects=measures,
    )
    return BatchCircuit(num_qubits=max(measured, 1), instructions=rows)


def test_a_moments_gates_of_one_name_are_one_line_until_a_gate_shares_a_qubit() -> None:
    circuit = _plain_rows(
        [("h", (0,)), ("s", (1,)), ("h", (2,)), ("cx", (0, 1)), ("h", (3,)), ("h", (1,))], 4
    )
    sampler = compile_batch(circuit)
    assert sampler is not None
    assert str(sampler.circuit) == "H 0 2\nS 1\nCX 0 1\nH 3 1\nM 0 1 2 3"
    assert sampler.targets == 7


def test_a_measurement_between_gates_ends_their_moment() -> None:
    rows = Instructions.of(
        [
            Instruction(kind=Kind.GATE, qubits=(0,), gate="h"),
            Instruction(kind=Kind.MEASURE, qubits=(0,)),
            Instruction(kind=Kind.GATE, qubits=(1,), gate="h"),
        ]
    )
    columns = _plain_rows([("h", (0,)), ("h", (1,))], 0).instructions
    assert isinstance(columns, Instructions)
    mixed = Instructions(
        np.array([PLAIN, OBJECT, PLAIN]),
        np.array([0, 0, 0]),
        np.array([0, 1, 1, 2]),
        columns.qubits,
        gates=columns.gates,
        objects=(rows[1],),
    )
    sampler = compile_batch(BatchCircuit(num_qubits=2, instructions=mixed))
    assert sampler is not None
    assert str(sampler.circuit) == "H 0\nM 0\nH 1"


@pytest.mark.parametrize("qubits", [6, 40, 1200])
def test_a_layered_circuit_samples_stims_bits_of_its_gate_a_line_text(qubits: int) -> None:
    """Layers of random one-qubit Cliffords and of CXs on a random pairing, compiled
    from the columns into a line per gate name and moment: stim draws the very bits at
    the same seed that it draws from the circuit written a gate a line."""
    rng = np.random.default_rng(SEED)
    names = ("h", "s", "sdg", "x", "y", "z")
    gates: list[tuple[str, tuple[int, ...]]] = []
    for _ in range(12):
        gates += [(names[k], (q,)) for q, k in enumerate(rng.integers(0, 6, qubits).tolist())]
        pairs = rng.permutation(qubits).tolist()
        gates += [("cx", (a, b)) for a, b in zip(pairs[::2], pairs[1::2], strict=True)]
    sampler = compile_batch(_plain_rows(gates, qubits))
    assert sampler is not None
    stim_names = {"h": "H", "s": "S", "sdg": "S_DAG", "x": "X", "y": "Y", "z": "Z", "cx": "CX"}
    lines = [f"{stim_names[gate]} {' '.join(map(str, qs))}" for gate, qs in gates]
    written = stim.Circuit("\n".join([*lines, "M " + " ".join(map(str, range(qubits)))]))
    assert len(sampler.circuit) <= min(12 * 7 + 1, len(written))
    np.testing.assert_array_equal(
        sampler.sample_packed(500, SEED),
        written.compile_sampler(seed=SEED).sample(500, bit_packed=True),
    )


def test_error_sites_among_moments_flip_the_bits_they_flip_written_a_gate_a_line() -> None:
    """A few error sites among layered gates cut their moments: each flips the same
    record bits (stim's flip simulator on the text around it) as where every gate is
    an object, written a line each, and the noiseless bits are the same."""
    rng = np.random.default_rng(SEED)
    qubits, names = 30, ("h", "s", "x", "cx")
    gates: list[tuple[str, tuple[int, ...]]] = []
    for _ in range(8):
        gates += [(names[k], (q,)) for q, k in enumerate(rng.integers(0, 3, qubits).tolist())]
        pairs = rng.permutation(qubits).tolist()
        gates += [("cx", (a, b)) for a, b in zip(pairs[::2], pairs[1::2], strict=True)]
    columns = _plain_rows(gates, qubits).instructions
    assert isinstance(columns, Instructions)
    listed = list(columns)
    site_at = sorted(rng.choice(len(gates), 12, replace=False).tolist(), reverse=True)
    for k in site_at:  # a site on the qubit of the gate before it
        qubit = listed[k].qubits[0]
        listed.insert(k + 1, Instruction(kind=Kind.ERROR_SITE, qubits=(qubit,), probs=(0.1,) * 3))
    kinds = np.array([SITE if row.kind is Kind.ERROR_SITE else PLAIN for row in listed])
    kinds[len(listed) - qubits :] = OBJECT
    plain = [row for row in listed if row.kind is Kind.GATE]
    codes = [columns.gates.index((row.gate, ())) for row in plain]
    sites = [row for row in listed if row.kind is Kind.ERROR_SITE]
    order = iter(codes)
    mixed = Instructions(
        kinds,
        np.array(
            [
                next(order) if kind == PLAIN else 0 if kind == SITE else k - (len(listed) - qubits)
                for k, kind in enumerate(kinds.tolist())
            ]
        ),
        np.r_[
            0,
            np.cumsum(
                [
                    len(row.qubits) if k != OBJECT else 0
                    for row, k in zip(listed, kinds.tolist(), strict=True)
                ]
            ),
        ],
        np.array(
            [
                q
                for row, k in zip(listed, kinds.tolist(), strict=True)
                if k != OBJECT
                for q in row.qubits
            ]
        ),
        gates=columns.gates,
        probs=[(0.1,) * 3],
        objects=[row for row in listed if row.kind is Kind.MEASURE],
    )
    assert list(mixed) == listed and len(sites) == 12
    grouped = compile_batch(BatchCircuit(num_qubits=qubits, instructions=mixed))
    each = compile_batch(BatchCircuit(num_qubits=qubits, instructions=tuple(listed)))
    assert grouped is not None and each is not None
    assert len(grouped.circuit) < len(each.circuit)
    every = np.arange(12)
    np.testing.assert_array_equal(grouped.flips(every), each.flips(every))
    assert grouped.flips(every).any()
    np.testing.assert_array_equal(grouped.sample_packed(300, SEED), each.sample_packed(300, SEED))


def test_a_flip_walk_before_any_sample_joins_its_pieces_into_the_parsed_circuit() -> None:
    """Where the flips are found first, the sampled circuit is the walk's pieces joined
    (stim fusing the lines a cut split, as its parse of the whole text does): the same
    circuit, flips and bits as a sampler that parsed its text first."""
    rng = np.random.default_rng(SEED)
    qubits, names = 6, ("h", "s", "x", "cx")
    listed: list[Instruction] = []
    for layer in range(40):
        for q in rng.permutation(qubits).tolist()[:3]:
            name = names[int(rng.integers(0, 4))]
            targets = (q,) if name != "cx" else (q, (q + 1) % qubits)
            listed.append(Instruction(kind=Kind.GATE, qubits=targets, gate=name))
            listed.append(Instruction(kind=Kind.ERROR_SITE, qubits=(q,), probs=(0.01, 0.0, 0.02)))
        if layer % 9 == 8:  # measurements in a row: one line each, fused by stim
            listed += [Instruction(kind=Kind.MEASURE, qubits=(q,)) for q in range(qubits)]
    circuit = BatchCircuit(num_qubits=qubits, instructions=tuple(listed))
    walked, parsed = compile_batch(circuit), compile_batch(circuit)
    assert walked is not None and parsed is not None
    expected = stim.Circuit(parsed.flip_text)
    assert parsed.circuit == expected  # (parsed first)
    sites = np.arange(walked.num_sites)[::3]
    assert walked._unparsed()  # the text, parsed by no one yet
    flips = walked.flips(sites)  # (the walk first: it parses the pieces)
    assert walked.parsed and walked.circuit == expected
    assert len(set(walked.site_offsets[sites].tolist())) > 20  # cut into many pieces
    np.testing.assert_array_equal(flips, parsed.flips(sites))
    assert flips.any()
    np.testing.assert_array_equal(walked.sample_packed(200, SEED), parsed.sample_packed(200, SEED))
