"""The stabilizer engine's sampler of a whole stim circuit: its detection events and
observable flips, drawn by stim's detector sampler or found from a measurement record,
are stim's own at the same seed, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import stim

from qmk.engines.stim_batch import StimSampler
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
