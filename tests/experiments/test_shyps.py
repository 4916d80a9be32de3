"""SHYPS codes built from the simplex code (Malcolm et al., arXiv:2502.07150): their
parameters checked exactly (k by rank, d by exhaustive search), and their memory
experiment's circuit (deterministic without noise, decoded by BP+OSD with noise)."""

from __future__ import annotations

import numpy as np
import pytest

from qmk.experiments.circuits import memory_circuit
from qmk.experiments.memory import fit_results, run_memory
from qmk.experiments.shyps import nullspace2, rank2, shyps_code, simplex_checks
from qmk.qec.codes import scheme_for
from qmk.qec.errors import QECError

SEED = 78


def _commute(a: np.ndarray, b: np.ndarray) -> bool:
    return not ((a.astype(np.int64) @ b.T.astype(np.int64)) % 2).any()


@pytest.mark.parametrize("r", [3, 4])
def test_the_simplex_checks_have_weight_3_and_their_kernel_is_the_simplex_code(r: int):
    h = simplex_checks(r)
    assert (h.sum(axis=1) == 3).all() and (h.sum(axis=0) == 3).all()
    kernel = nullspace2(h)
    assert len(kernel) == r  # [2^r - 1, r]
    words = [
        np.bitwise_xor.reduce(kernel[[i for i in range(r) if m >> i & 1]]) for m in range(1, 2**r)
    ]
    assert {int(w.sum()) for w in words} == {2 ** (r - 1)}  # every nonzero word: weight 2^(r-1)


def test_the_49_qubit_block_is_49_9_4_with_16_gauge_qubits():
    code = shyps_code(3)
    assert (code.n, code.k, code.gauge_qubits) == (49, 9, 16)
    assert rank2(code.stabilizer_x) == rank2(code.stabilizer_z) == 12
    # the stabilizers commute with every gauge; the bare logicals too, and pair up
    assert _commute(code.gauge_x, code.stabilizer_z) and _commute(code.gauge_z, code.stabilizer_x)
    assert _commute(code.gauge_x, code.logical_z) and _commute(code.gauge_z, code.logical_x)
    pairing = (code.logical_x.astype(np.int64) @ code.logical_z.T) % 2
    assert np.array_equal(pairing, np.eye(9, dtype=np.int64))
    # the distance by exhaustive search: no dressed logical of weight 3 or less, one of 4
    assert code.distance(3) is None
    assert code.distance(4) == 4


def test_the_225_qubit_block_has_16_logical_qubits():
    code = shyps_code(4)
    assert (code.n, code.k) == (225, 16)
    assert code.distance(2) is None  # its distance, 8, is past an exhaustive search here


def test_the_memory_circuit_is_deterministic_without_noise():
    circuit = memory_circuit("SHYPS", distance=4, rounds=2)
    circuit.detector_error_model()  # raises if a detector or observable is not deterministic
    dets, obs = circuit.compile_detector_sampler(seed=SEED).sample(64, separate_observables=True)
    assert not dets.any() and not obs.any()
    assert (circuit.num_qubits, circuit.num_observables) == (147, 9)
    assert circuit.num_detectors == 3 * 21  # 21 Z stabilizers a round, and at the end


def test_a_shyps_distance_is_its_blocks():
    with pytest.raises(QECError, match=r"QC103 .*4, 8, 16"):
        memory_circuit("SHYPS", distance=5, rounds=5)


def test_a_noisy_memory_decodes_by_bposd_and_fits_at_one_distance():
    results = [
        run_memory("SHYPS", distance=4, p=p, shots=300, seed=SEED + i)
        for i, p in enumerate((1e-3, 2e-3))
    ]
    assert {r.decoder for r in results} == {"bposd"}
    assert all(r.logical_qubits == 9 and 0 < r.errors < r.shots / 2 for r in results)
    low, high = results
    assert low.per_cycle_per_qubit < low.per_cycle < high.per_cycle
    fit = fit_results(results)
    # one distance fixes a / p*^2: p* stays the scheme's, a = C p*^2 with ln C the
    # weighted mean of ln(P / p^2)
    assert fit.threshold == scheme_for("SHYPS", "gate_based").error_correction_threshold
    assert fit.dof == 1 and fit.sigma_threshold == 0
    weights = [1 / q.sigma_log**2 for q in fit.points]
    logs = [np.log(q.rate / q.p**2) for q in fit.points]
    ln_c = sum(w * y for w, y in zip(weights, logs, strict=True)) / sum(weights)
    assert fit.crossing_prefactor == pytest.approx(np.exp(ln_c) * fit.threshold**2, rel=1e-12)
    assert [q.rate for q in fit.points] == [r.per_cycle_per_qubit for r in results]


def test_qec_threshold_runs_shyps_at_its_blocks_distance_by_bposd():
    import json

    from support.cli import qmk

    status, out, err = qmk(
        "qec", "threshold", "--code", "SHYPS", "--p", "0.001", "--shots", "100", "--seed", "2",
        "--json",
    )  # fmt: skip
    assert (status, err) == (0, "")
    (result,) = json.loads(out)["results"]
    assert (result["distance"], result["decoder"], result["logical_qubits"]) == (4, "bposd", 9)


def test_two_blocks_fit_both_a_and_p_star_by_weighted_least_squares():
    """The [[49, 9, 4]] and [[225, 16, 8]] blocks (k = 2 and 4) fix a and p* both: the
    fit is the weighted least squares of ln P - k ln p = ln a - k ln p*, checked here
    against numpy's solver on a short seeded run (2 rounds a shot, to keep d = 8 cheap)."""
    runs = [(4, 2e-3, 300), (4, 3e-3, 300), (8, 2e-3, 60), (8, 2.5e-3, 60)]
    results = [
        run_memory("SHYPS", distance=d, p=p, rounds=2, shots=n, seed=SEED + i, decoder="bposd-long")
        for i, (d, p, n) in enumerate(runs)
    ]
    assert all(0 < r.errors < r.shots / 2 for r in results), [(r.errors, r.shots) for r in results]
    fit = fit_results(results)
    assert fit.dof == 2 and fit.sigma_threshold > 0 and len(fit.points) == 4
    ks = np.array([(q.distance + 1) // 2 for q in fit.points], dtype=float)
    y = np.array([np.log(q.rate) - k * np.log(q.p) for q, k in zip(fit.points, ks, strict=True)])
    root_w = np.array([1 / q.sigma_log for q in fit.points])
    design = np.column_stack([np.ones_like(ks), -ks])
    (ln_a, ln_p_star), *_ = np.linalg.lstsq(design * root_w[:, None], y * root_w, rcond=None)
    assert fit.crossing_prefactor == pytest.approx(np.exp(ln_a), rel=1e-9)
    assert fit.threshold == pytest.approx(np.exp(ln_p_star), rel=1e-9)
    assert fit.threshold != scheme_for("SHYPS", "gate_based").error_correction_threshold
