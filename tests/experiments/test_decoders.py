"""The decoder table: BP+OSD built from a detector error model's hypergraph, checked
count for count against stimbposd (an independent BP+OSD over the same ldpc), and the
coded errors of a decoder QMK does not have."""

from __future__ import annotations

import numpy as np
import pytest
import stim
from stimbposd import BPOSD

from qmk.experiments.decoders import (
    BPOSD_SETTINGS,
    DECODERS,
    BpOsd,
    build_decoder,
    check_decoder,
    mispredicted,
)
from qmk.experiments.memory import run_memory
from qmk.qec.errors import QECError

SEED = 78


def _generated(code: str, distance: int, p: float = 0.005) -> stim.Circuit:
    return stim.Circuit.generated(
        code,
        distance=distance,
        rounds=distance,
        after_clifford_depolarization=p,
        before_round_data_depolarization=p,
        before_measure_flip_probability=p,
        after_reset_flip_probability=p,
    )


def _stimbposd(circuit: stim.Circuit, name: str = "bposd") -> BPOSD:
    s = BPOSD_SETTINGS[name]
    return BPOSD(
        circuit.detector_error_model(approximate_disjoint_errors=True),
        max_bp_iters=s["max_iter"],
        bp_method=s["bp_method"],
        osd_method=s["osd_method"],
        osd_order=s["osd_order"],
    )


@pytest.mark.parametrize(
    ("code", "distance", "shots", "name"),
    [
        ("color_code:memory_xyz", 5, 300, "bposd"),
        ("surface_code:rotated_memory_x", 3, 3000, "bposd"),
        ("color_code:memory_xyz", 5, 300, "bposd-long"),
    ],
)
def test_bposd_predicts_shot_for_shot_as_stimbposd(code, distance, shots, name):
    circuit = _generated(code, distance)
    ours = build_decoder(circuit, name)
    assert (ours.name, ours.model) == (name, "undecomposed")
    dets, obs = circuit.compile_detector_sampler(seed=SEED).sample(
        shots, bit_packed=True, separate_observables=True
    )
    wrong = mispredicted(ours.decoder, dets, obs).any(axis=1)
    peer = mispredicted(_stimbposd(circuit, name), dets, obs).any(axis=1)
    assert np.array_equal(wrong, peer) and 0 < wrong.sum() < shots / 4


def test_long_bp_decodes_the_49_qubit_shyps_block_as_the_default_within_the_shot_noise():
    """``bposd-long`` (200 BP iterations) against ``bposd`` (30) on the same shots of the
    [[49, 9, 4]] block's memory: their logical error rates agree by a two-proportion z
    test at alpha 1e-3 (the check that lets the d = 8 calibration use the faster one)."""
    from qmk.experiments.circuits import memory_circuit
    from qmk.experiments.memory import circuit_noise

    circuit = memory_circuit("SHYPS", distance=4, rounds=4, noise=circuit_noise("qubit", 1e-3))
    shots = 3000
    dets, obs = circuit.compile_detector_sampler(seed=SEED).sample(
        shots, bit_packed=True, separate_observables=True
    )
    default, long = (
        int(mispredicted(build_decoder(circuit, name).decoder, dets, obs).any(axis=1).sum())
        for name in ("bposd", "bposd-long")
    )
    pooled = (default + long) / (2 * shots)
    z = (long - default) / shots / np.sqrt(pooled * (1 - pooled) * 2 / shots)
    assert default > 50 and abs(z) < 3.29  # 3.29: the two-sided normal quantile at 1e-3


def test_the_check_matrix_has_a_column_per_mechanism_and_its_prior():
    dem = stim.DetectorErrorModel("error(0.1) D0 D1 D2\nerror(0.2) D1 L0\nerror(0.05) D2 D0 D1")
    decoder = BpOsd(dem)
    # the first and last mechanisms flip one set of detectors: one column, p combined
    assert decoder.check_matrix.toarray().tolist() == [[1, 0], [1, 1], [1, 0]]
    assert decoder.priors.tolist() == pytest.approx([0.1 * 0.95 + 0.05 * 0.9, 0.2])
    assert decoder.observables_matrix.toarray().tolist() == [[0, 1]]


def test_mechanisms_of_one_syndrome_take_the_likeliest_ones_observables():
    for text in ("error(0.1) D0 L0\nerror(0.01) D0", "error(0.01) D0\nerror(0.1) D0 L0"):
        decoder = BpOsd(stim.DetectorErrorModel(text))
        predicted = decoder.decode_batch(np.array([[1], [0]], dtype=np.uint8))
        assert predicted.tolist() == [[1], [0]], text


def test_a_memory_experiment_says_which_decoder_decoded_it():
    result = run_memory("surface_code", distance=3, p=2e-3, shots=2000, seed=SEED, decoder="bposd")
    assert result.decoder == "bposd" and result.to_json()["decoder"] == "bposd"
    assert 0 < result.errors < 200


def test_an_unknown_decoder_is_qc112_naming_the_known_ones():
    with pytest.raises(QECError) as caught:
        check_decoder("union_find")
    assert caught.value.code == "QC112" and all(name in str(caught.value) for name in DECODERS)
    with pytest.raises(QECError, match="QC112"):
        run_memory("repetition_code", distance=3, p=0.01, shots=10, seed=1, decoder="mwpm")


def test_a_decoder_whose_package_is_missing_is_qc114_naming_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ldpc" else real(name, *a)
    )
    with pytest.raises(QECError, match=r"QC114 .*quantum-microkernel\[bposd\]"):
        check_decoder("bposd")


def test_matching_that_cannot_pair_a_hypergraph_syndrome_is_a_coded_error() -> None:
    """A single weight-3 hyperedge fired alone: matching has no pairing for it, and the
    caller gets QC115 naming bposd, not pymatching's ValueError."""
    circuit = stim.Circuit(
        """
        X_ERROR(0.1) 0
        CNOT 0 1 0 2
        M 0 1 2
        DETECTOR rec[-1]
        DETECTOR rec[-2]
        DETECTOR rec[-3]
        OBSERVABLE_INCLUDE(0) rec[-3]
        """
    )
    matching = build_decoder(circuit, "pymatching")
    dets = np.packbits(np.array([[1, 1, 1]], dtype=bool), axis=1, bitorder="little")
    obs = np.packbits(np.array([[1]], dtype=bool), axis=1, bitorder="little")
    with pytest.raises(QECError, match="QC115 no-matching"):
        mispredicted(matching.decoder, dets, obs)


def test_bposd_decodes_each_distinct_syndrome_once_across_batches_and_predicts_as_alone():
    """The memo is exact: batches decoded one after another predict what each shot's
    syndrome decoded alone by a fresh decoder predicts, and BP+OSD ran once for each
    distinct non-empty syndrome of all the batches together."""
    circuit = _generated("color_code:memory_xyz", 3, p=0.01)
    dets, _ = circuit.compile_detector_sampler(seed=SEED).sample(
        2000, bit_packed=True, separate_observables=True
    )
    decoder = BpOsd(circuit.detector_error_model(approximate_disjoint_errors=True))
    batches = [
        decoder.decode_batch(part, bit_packed_shots=True) for part in np.array_split(dets, 4)
    ]
    distinct = {row.tobytes() for row in dets if row.any()}
    assert len(decoder.known) == len(distinct) < len(dets) / 2  # syndromes repeat here
    alone = BpOsd(circuit.detector_error_model(approximate_disjoint_errors=True))
    unpacked = np.unpackbits(dets, axis=1, bitorder="little", count=circuit.num_detectors)
    expected = np.array(
        [alone.decode(row) if row.any() else [0] * circuit.num_observables for row in unpacked]
    )
    assert np.array_equal(np.concatenate(batches), expected) and expected.any()
