"""Analog mode's speed-ups checked for exactness: the register's symmetric sector (found
where the Hamiltonian has a permutation symmetry, absent where it has none, equal to the
full basis where used), the 12-atom sweep against a tight reference, and the compiled
right-hand side against numpy's."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import chisquare

from qmk.devices.neutral_atom import analog, analog_kernel, run_job
from qmk.devices.neutral_atom.isa import Drive, LocalDetuning
from qmk.devices.neutral_atom.job import parse_job
from support import rydberg_qutip as ref

TIGHT = (1e-13, 1e-15)  # integrator tolerances of the references below


def sweep(n, *, spacing=5.5, t_ns=3000.0, shots=1, seed=1, targets=None, **op):
    """A Z2 sweep on a chain of ``n`` atoms (or at ``op['positions']``), as a wire job."""
    positions = op.pop("positions", [spacing * i for i in range(n)])
    evolve = {
        "op": "Evolve",
        "duration": t_ns,
        "omega": [[0, 0.0], [300, 15.0], [t_ns - 300, 15.0], [t_ns, 0.0]],
        "delta": [[0, -20.0], [300, -20.0], [t_ns - 300, 25.0], [t_ns, 25.0]],
        **op,
    }
    return {
        "isa_version": "1.2",
        "hardware": {"positions": positions},
        "shots": shots,
        "seed": seed,
        "program": [
            {"op": "AllocArray", "n_qubits": len(positions)},
            evolve,
            {
                "op": "Measure",
                "targets": list(range(len(positions))) if targets is None else targets,
            },
        ],
    }


def prepared(job):
    model, drives, rates, _ = analog.prepare(parse_job(job))
    return model, drives, rates


def sector_of(job):
    model, drives, _ = prepared(job)
    return analog.find_sector(model, [d for d, _ in drives])


def constant(value):
    return ((0.0, value), (100.0, value))


# ---------------------------------------------------------------- finding the sector


def test_a_chain_has_its_mirror_image_and_its_sector_holds_one_state_per_orbit():
    sector = sector_of(sweep(12))
    assert sector is not None
    assert sector.group == (tuple(range(12)), tuple(range(11, -1, -1)))
    # 2^12 states: 2^6 palindromes are their own image, the rest pair up.
    assert sector.dimension == 2**6 + (2**12 - 2**6) // 2 == 2080
    assert int(sector.size.sum()) == 4096 and set(sector.size.tolist()) == {1, 2}
    assert sector.representative[0] == 0 and sector.orbit[0] == 0  # |0...0> is state 0


def test_a_square_has_eight_symmetries_and_six_orbits():
    square = [[0.0, 0.0], [6.0, 0.0], [0.0, 6.0], [6.0, 6.0]]
    sector = sector_of(sweep(4, positions=square))
    assert sector is not None and len(sector.group) == 8  # the dihedral group D4
    # none, one, two on an edge, two on a diagonal, three, four excited
    assert sector.dimension == 6


def test_a_local_detuning_on_one_end_of_the_chain_breaks_the_mirror():
    one_end = {"atoms": [0], "scale": [1.0], "delta": [[0, 0.0], [3000, 5.0]]}
    assert sector_of(sweep(6, local_delta=one_end)) is None
    both_ends = {"atoms": [0, 5], "scale": [0.5, 0.5], "delta": [[0, 0.0], [3000, 5.0]]}
    assert sector_of(sweep(6, local_delta=both_ends)) is not None
    unequal = {"atoms": [0, 5], "scale": [0.5, 0.6], "delta": [[0, 0.0], [3000, 5.0]]}
    assert sector_of(sweep(6, local_delta=unequal)) is None


def test_an_asymmetric_2d_layout_has_no_sector_and_runs_on_the_full_basis():
    layout = [[0.0, 0.0], [5.5, 0.0], [0.0, 7.1], [9.3, 4.2]]
    job = sweep(4, positions=layout, shots=20)
    assert sector_of(job) is None
    model, drives, _ = prepared(job)
    assert analog.symmetries(model.points, [d for d, _ in drives]) == ((0, 1, 2, 3),)
    telemetry = run_job(job).telemetry
    assert telemetry["symmetries"] == 1 and telemetry["sector_states"] == 16


def test_distances_that_differ_by_more_than_rounding_are_not_a_symmetry():
    chain = [0.0, 5.5, 11.0]
    assert len(analog.symmetries([(x, 0.0) for x in chain], [])) == 2
    bent = [0.0, 5.5, 11.0 + 1e-9]
    assert analog.symmetries([(x, 0.0) for x in bent], []) == ((0, 1, 2),)


def test_only_symmetries_that_keep_a_reduced_basis_are_used():
    points = [(0.0, 0.0, 0.0), (5.5, 0.0, 0.0), (11.0, 0.0, 0.0)]
    # A basis without |110> but with |011> is not mirror-symmetric: no sector.
    lopsided = analog.model_for(points, ref.C6_RB70S, dropped=[(0, 1)])
    assert analog.find_sector(lopsided, []) is None
    even = analog.model_for(points, ref.C6_RB70S, dropped=[(0, 1), (1, 2)])
    sector = analog.find_sector(even, [])
    assert sector is not None and sector.dimension == 4  # 000, 100+001, 010, 101


def test_a_local_detuning_is_part_of_what_a_symmetry_must_keep():
    local = LocalDetuning(atoms=(0,), scale=(1.0,), delta=constant(1.0))
    drive = Drive(omega=constant(5.0), delta=constant(0.0), local=local)
    points = [(0.0, 0.0), (5.5, 0.0), (11.0, 0.0)]
    assert analog.symmetries(points, [drive]) == ((0, 1, 2),)
    plain = Drive(omega=constant(5.0), delta=constant(0.0))
    assert len(analog.symmetries(points, [plain, drive])) == 1  # every drive must keep it


# ---------------------------------------------------------------- the sector is exact


def assert_sector_equals_full(job):
    model, drives, _ = prepared(job)
    sector = analog.find_sector(model, [d for d, _ in drives])
    assert sector is not None
    full = analog.state_vector(model, drives, tolerances=TIGHT)
    reduced = analog.state_vector(model, drives, sector=sector, tolerances=TIGHT)
    assert np.abs(full - reduced).max() < 1e-10
    return model, drives, sector


def test_the_sector_result_equals_the_full_basis_result_on_a_chain():
    assert_sector_equals_full(sweep(8))


def test_the_sector_result_equals_the_full_basis_result_with_phase_and_local_detuning():
    # A 2x3 rectangle: four symmetries, kept by a local detuning on the two middle atoms.
    rectangle = [[0.0, 0.0], [6.0, 0.0], [12.0, 0.0], [0.0, 6.5], [6.0, 6.5], [12.0, 6.5]]
    local = {"atoms": [1, 4], "scale": [1.0, 1.0], "delta": [[0, 0.0], [3000, -6.0]]}
    job = sweep(6, positions=rectangle, phase=0.6, local_delta=local)
    _, _, sector = assert_sector_equals_full(job)
    assert len(sector.group) == 4


def test_the_sector_result_equals_the_full_basis_result_on_a_ring_with_rotations():
    # Eight atoms on a circle: the dihedral group of 16 (rotations are not involutions).
    ring = [[7.0 * math.cos(k * math.pi / 4), 7.0 * math.sin(k * math.pi / 4)] for k in range(8)]
    _, _, sector = assert_sector_equals_full(sweep(8, positions=ring, t_ns=1500.0))
    assert len(sector.group) == 16
    assert sector.dimension == 30  # binary necklaces of 8 beads, turned over: 30


def test_the_sector_result_equals_the_full_basis_result_across_a_wait():
    job = sweep(5, t_ns=1000.0)
    second = dict(job["program"][1])
    job["program"][2:2] = [{"op": "Wait", "duration": 150.0}, second]
    assert_sector_equals_full(job)


def test_a_sector_state_matches_qutip_on_a_five_atom_sweep():
    job = sweep(5)
    model, drives, _ = prepared(job)
    sector = analog.find_sector(model, [d for d, _ in drives])
    psi = analog.state_vector(model, drives, sector=sector)
    evolve = job["program"][1]
    h = ref.hamiltonian(
        [(x, 0.0, 0.0) for x in job["hardware"]["positions"]],
        **{k: evolve[k] for k in ("omega", "delta")},
    )
    want = ref.sesolve(h, 5, evolve["duration"])
    assert abs(np.vdot(want, psi)) ** 2 > 1 - 1e-9


def test_the_12_atom_sweep_is_within_1e_9_of_a_tight_reference():
    # The benchmark's program (bench/bench_analog.py). The reference integrates the whole
    # basis at rtol 1e-13: no sector (and its kernel is checked against numpy's below).
    omega = [[0, 0.0], [250, 15.8], [3750, 15.8], [4000, 0.0]]
    delta = [[0, -16.0], [250, -16.0], [3750, 16.0], [4000, 16.0]]
    job = sweep(12, t_ns=4000.0, omega=omega, delta=delta)
    model, drives, _ = prepared(job)
    sector = analog.find_sector(model, [d for d, _ in drives])
    assert sector is not None and sector.dimension == 2080
    got = analog.state_vector(model, drives, sector=sector)  # what run_job integrates
    want = analog.state_vector(model, drives, tolerances=TIGHT)
    assert 1 - abs(np.vdot(want, got)) ** 2 < 1e-9
    assert 0.5 * np.abs(np.abs(want) ** 2 - np.abs(got) ** 2).sum() < 1e-9


# ---------------------------------------------------------------- shots


def test_shots_from_the_sector_follow_the_exact_distribution_at_a_stated_seed():
    job = sweep(6, shots=4000, seed=5)
    result = run_job(job)
    assert result.telemetry["symmetries"] == 2 and result.telemetry["sector_states"] == 36
    model, drives, _ = prepared(job)
    probs = np.abs(analog.state_vector(model, drives, tolerances=TIGHT)) ** 2
    counts = result.counts()
    keys = ["".join(str((s >> i) & 1) for i in range(6)) for s in range(64)]
    expected = probs * 4000
    observed = np.array([counts.get(k, 0) for k in keys])
    big = expected >= 5
    obs = np.append(observed[big], observed[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    assert chisquare(obs, exp).pvalue > 1e-3
    assert 0.5 * np.abs(observed / 4000 - probs).sum() < 0.05


def test_measuring_some_atoms_keeps_the_sector_and_their_marginal():
    # The state is expanded to the whole basis before shots: which atoms are measured does
    # not need to respect the symmetry.
    job = sweep(6, shots=4000, seed=8, targets=[0, 1])
    result = run_job(job)
    assert result.telemetry["symmetries"] == 2
    model, drives, _ = prepared(job)
    probs = np.abs(analog.state_vector(model, drives, tolerances=TIGHT)) ** 2
    marginal = np.bincount(model.states & 0b11, weights=probs, minlength=4)
    counts = result.counts()
    observed = [counts.get(k, 0) for k in ("00", "10", "01", "11")]
    assert chisquare(observed, marginal * 4000).pvalue > 1e-3


def test_decoherence_integrates_the_whole_density_matrix_without_a_sector():
    job = sweep(3, shots=10, t_ns=1000.0)
    job["noise"] = {"amplitude_damping": {"idle_rate": 0.3e6}}
    telemetry = run_job(job).telemetry
    assert telemetry["method"] == "density matrix (Lindblad)"
    assert telemetry["symmetries"] == 1 and telemetry["sector_states"] == 8


# ---------------------------------------------------------------- the compiled kernel


needs_llvm = pytest.mark.skipif(
    not analog_kernel.compiled_available(), reason="llvmlite is not installed"
)


def random_drive(d, *, seed, complex_weights, empty_rows=()):
    rng = np.random.default_rng(seed)
    a = sp.random(d, d, density=0.05, random_state=rng, format="lil")
    if complex_weights:
        a = a + 1j * sp.random(d, d, density=0.05, random_state=rng, format="lil")
    a = sp.lil_matrix(a + a.conj().T, dtype=complex)
    for r in empty_rows:
        a[r, :] = 0
        a[:, r] = 0
    return analog_kernel.DriveMatrix.of(a), rng


@needs_llvm
@pytest.mark.parametrize("complex_weights", [False, True])
def test_the_compiled_kernel_equals_numpy(complex_weights):
    w, rng = random_drive(300, seed=3, complex_weights=complex_weights, empty_rows=(0, 17))
    assert (w.imag is not None) == complex_weights
    y = rng.normal(size=600)
    d0, dd = rng.normal(size=300), rng.normal(size=300)
    for half, x in [(0.0, 0.0), (0.7, 0.3), (-2.5, 1.0)]:
        fast = analog_kernel.apply(w, y, half=half, d0=d0, dd=dd, x=x, compiled=True)
        slow = analog_kernel.apply(w, y, half=half, d0=d0, dd=dd, x=x, compiled=False)
        assert np.abs(fast - slow).max() <= 1e-13 * np.abs(slow).max()


@needs_llvm
def test_the_compiled_and_numpy_right_hand_sides_give_the_same_evolution():
    job = sweep(6, phase=0.9)  # a phase: complex weights
    model, drives, _ = prepared(job)
    sector = analog.find_sector(model, [d for d, _ in drives])
    fast = analog.state_vector(model, drives, sector=sector, compiled=True)
    slow = analog.state_vector(model, drives, sector=sector, compiled=False)
    assert np.abs(fast - slow).max() < 1e-10
    assert math.isclose(float(np.vdot(fast, fast).real), 1.0, abs_tol=1e-9)


def test_the_kernel_refuses_what_it_would_read_out_of_bounds():
    w, rng = random_drive(20, seed=4, complex_weights=False)
    d0 = np.zeros(20)
    with pytest.raises(ValueError, match="40 reals"):
        analog_kernel.apply(w, rng.normal(size=30), half=1.0, d0=d0, dd=d0, x=0.0)
    with pytest.raises(ValueError, match="20 entries"):
        analog_kernel.apply(w, rng.normal(size=40), half=1.0, d0=d0[:5], dd=d0, x=0.0)
    outside = w.cols.copy()
    outside[0, 0] = 20
    with pytest.raises(ValueError, match="columns below d"):
        analog_kernel.DriveMatrix(csr=w.csr, cols=outside, real=w.real, imag=None)
