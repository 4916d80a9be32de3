"""Analog mode (ISA 1.2 Evolve): exact evolution against closed forms and QuTiP, the
blockade reduction, Lindblad decoherence against mesolve, drive limits, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
from scipy.stats import chisquare

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom import analog, run_job
from qmk.devices.neutral_atom.isa import Drive
from qmk.devices.neutral_atom.job import parse_job
from support import rydberg_qutip as ref
from support.cli import qmk
from support.neutral_atom import device_submit

PRESETS = Path(analog.__file__).parent / "presets"

TWO_PI = 2 * math.pi


def evolve_job(positions, omega, delta, *, n=None, shots=1, seed=1, phase=0.0, **extra):
    n = len(positions) if n is None else n
    duration = omega[-1][0]
    op = {"op": "Evolve", "duration": duration, "omega": omega, "delta": delta, "phase": phase}
    op.update(extra.pop("op_fields", {}))
    hardware = {"positions": positions, **extra.pop("hardware", {})}
    return {
        "isa_version": "1.2",
        "hardware": hardware,
        "shots": shots,
        "seed": seed,
        "program": [
            {"op": "AllocArray", "n_qubits": n},
            op,
            {"op": "Measure", "targets": list(range(n))},
        ],
        **extra,
    }


def exact(job_data):
    """QMK's final probabilities (over the full 2^n basis) and its model."""
    model, drives, rates, _ = analog.prepare(parse_job(job_data))
    probs, _ = analog.evolve(model, drives, rates)
    full = np.zeros(1 << model.n_atoms)
    full[model.states] = probs
    return full, model, drives


def points3(positions):
    return [(p, 0.0, 0.0) if isinstance(p, float | int) else (*p, 0.0)[:3] for p in positions]


def test_one_atom_rabi_matches_the_closed_form_and_qutip():
    omega, delta, t_ns = TWO_PI * 1.2, 3.0, 730.0
    data = evolve_job([0.0], [[0, omega], [t_ns, omega]], [[0, delta], [t_ns, delta]])
    probs, model, drives = exact(data)
    w = math.hypot(omega, delta)
    closed = omega**2 / w**2 * math.sin(w * t_ns * 1e-3 / 2) ** 2
    assert abs(probs[1] - closed) < 1e-9
    psi = analog.state_vector(model, drives)
    h = ref.hamiltonian(points3([0.0]), [[0, omega], [t_ns, omega]], [[0, delta], [t_ns, delta]])
    assert abs(np.vdot(ref.sesolve(h, 1, t_ns), psi)) ** 2 > 1 - 1e-9


def test_one_atom_rabi_shots_follow_the_distribution_at_a_stated_seed():
    omega, t_ns = TWO_PI, 300.0
    data = evolve_job([0.0], [[0, omega], [t_ns, omega]], [[0, 0.0], [t_ns, 0.0]], shots=4000)
    data["seed"] = 11
    result = run_job(data)
    p1 = math.sin(omega * t_ns * 1e-3 / 2) ** 2
    counts = result.counts()
    observed = [counts.get("0", 0), counts.get("1", 0)]
    assert chisquare(observed, [4000 * (1 - p1), 4000 * p1]).pvalue > 1e-3
    assert result.device_id == "analog-exact" and result.telemetry["basis_states"] == 2


def test_two_blockaded_atoms_oscillate_at_sqrt2_omega_and_match_qutip():
    omega, t_ns = TWO_PI * 1.0, 250.0
    positions = [[0.0, 0.0], [4.0, 0.0]]  # V = C6 / 4^6 = 1323 rad/us >> Omega
    data = evolve_job(positions, [[0, omega], [t_ns, omega]], [[0, 0.0], [t_ns, 0.0]])
    probs, model, drives = exact(data)
    one = probs[0b01] + probs[0b10]
    # The blockade is not perfect: leakage (Omega/V)^2 ~ 2e-5 and an Omega^2/V shift.
    assert abs(one - math.sin(math.sqrt(2) * omega * t_ns * 1e-3 / 2) ** 2) < 2e-3
    assert probs[0b11] < 1e-4
    h = ref.hamiltonian(points3(positions), [[0, omega], [t_ns, omega]], [[0, 0], [t_ns, 0]])
    psi = analog.state_vector(model, drives)
    assert abs(np.vdot(ref.sesolve(h, 2, t_ns), psi)) ** 2 > 1 - 1e-8


def z2_sweep(n, spacing=5.5, t_ns=3000.0):
    omega = [[0, 0.0], [300, 15.0], [t_ns - 300, 15.0], [t_ns, 0.0]]
    delta = [[0, -20.0], [300, -20.0], [t_ns - 300, 25.0], [t_ns, 25.0]]
    return [spacing * i for i in range(n)], omega, delta


def test_adiabatic_sweep_on_a_chain_of_five_ends_in_z2_and_matches_qutip():
    positions, omega, delta = z2_sweep(5)
    data = evolve_job(positions, omega, delta, shots=2000, seed=21)
    probs, model, drives = exact(data)
    z2 = 0b10101
    assert probs.argmax() == z2 and probs[z2] > 0.5
    psi = analog.state_vector(model, drives)
    want = ref.sesolve(ref.hamiltonian(points3(positions), omega, delta), 5, omega[-1][0])
    assert abs(np.vdot(want, psi)) ** 2 > 1 - 1e-7
    assert 0.5 * np.abs(np.abs(want) ** 2 - probs).sum() < 1e-6
    # Shots: the bit string lists atom 0 first.
    counts = run_job(data).counts()
    top = max(counts, key=counts.get)
    assert top == "10101"
    keys = [format(s, "05b")[::-1] for s in range(32)]
    expected = np.array([probs[s] for s in range(32)]) * 2000
    observed = np.array([counts.get(k, 0) for k in keys])
    big = expected >= 5  # chi-square where the expected counts allow it
    rest = ~big
    obs = np.append(observed[big], observed[rest].sum())
    exp = np.append(expected[big], expected[rest].sum())
    assert chisquare(obs, exp).pvalue > 1e-3


def test_phase_and_local_detuning_on_a_2d_register_match_qutip():
    positions = [[0.0, 0.0], [7.0, 0.0], [3.5, 6.0]]
    omega = [[0, 0.0], [200, 12.0], [800, 12.0], [1000, 0.0]]
    delta = [[0, -5.0], [1000, 10.0]]
    local = {"atoms": [0, 2], "scale": [1.0, 0.5], "delta": [[0, 0.0], [500, -8.0], [1000, 0.0]]}
    data = evolve_job(positions, omega, delta, phase=0.7, op_fields={"local_delta": local})
    _, model, drives = exact(data)
    h = ref.hamiltonian(
        points3(positions),
        omega,
        delta,
        phase=0.7,
        local=(local["atoms"], local["scale"], local["delta"]),
    )
    psi = analog.state_vector(model, drives)
    assert abs(np.vdot(ref.sesolve(h, 3, 1000.0), psi)) ** 2 > 1 - 1e-8


def test_the_blockade_reduction_is_used_only_where_it_changes_probabilities_below_1e_6():
    # Three atoms 0.5 um apart with C6 of Rb 70S: V ~ 3.5e8 rad/us against Omega = 2:
    # the bound admits dropping every pair; constant drive, so expm is the exact reference.
    positions = [0.0, 0.5, 1.0]
    omega, delta, t_ns = 2.0, 0.5, 400.0
    data = evolve_job(positions, [[0, omega], [t_ns, omega]], [[0, delta], [t_ns, delta]])
    probs, model, _ = exact(data)
    assert model.dimension == 4  # |000>, and one excitation on each atom
    full = analog.model_for(points3(positions), ref.C6_RB70S)
    h = 0.5 * omega * full.drive_operator(0.0).toarray() + np.diag(
        full.interaction - delta * full.occupation.sum(axis=0)
    )
    psi0 = np.zeros(8, dtype=complex)
    psi0[0] = 1
    want = np.abs(scipy.linalg.expm(-1j * h * t_ns * 1e-3) @ psi0) ** 2
    assert np.abs(want - probs).max() < 1e-6
    # At Aquila's spacing the bound is far from 1e-7: nothing is dropped.
    wide = evolve_job([0.0, 5.5, 11.0], [[0, 15.0], [t_ns, 15.0]], [[0, 0.0], [t_ns, 0.0]])
    assert exact(wide)[1].dimension == 8


@pytest.mark.parametrize(("decay", "dephasing"), [(0.4, 0.0), (0.0, 0.3), (0.25, 0.15)])
def test_decay_and_dephasing_match_qutip_mesolve(decay, dephasing):
    positions = [[0.0, 0.0], [6.0, 0.0]]
    omega = [[0, 0.0], [100, 10.0], [1400, 10.0], [1500, 0.0]]
    delta = [[0, -6.0], [1500, 8.0]]
    noise = {"amplitude_damping": {"idle_rate": decay * 1e6}, "idle_rate": dephasing * 1e6}
    data = evolve_job(positions, omega, delta, noise=noise)
    probs = exact(data)[0]
    h = ref.hamiltonian(points3(positions), omega, delta)
    want = ref.mesolve(h, 2, 1500.0, decay=decay, dephasing=dephasing)
    assert 0.5 * np.abs(want - probs).sum() < 1e-6
    clean = exact(evolve_job(positions, omega, delta))[0]
    assert 0.5 * np.abs(clean - probs).sum() > 1e-3  # the noise did something


def test_measurement_noise_applies_as_in_digital_mode():
    omega = TWO_PI / 0.6  # a pi pulse in 300 ns: every atom in |r>
    data = evolve_job([0.0], [[0, omega], [300, omega]], [[0, 0.0], [300, 0.0]], shots=2000, seed=4)
    data["noise"] = {"readout": {"p_flip1_to_0": 0.2}, "p_loss": 0.1}
    counts = run_job(data).counts()
    assert set(counts) == {"0", "1", "L"}
    assert abs(counts["L"] / 2000 - 0.1) < 0.03 and abs(counts["0"] / 2000 - 0.18) < 0.03


def refused(data):
    with pytest.raises(DeviceError) as info:
        run_job(data)
    return str(info.value)


def test_an_isa_1_1_job_with_evolve_is_refused_naming_isa_1_2():
    data = evolve_job([0.0], [[0, 1.0], [100, 1.0]], [[0, 0.0], [100, 0.0]])
    data["isa_version"] = "1.1"
    message = refused(data)
    assert message.startswith("QD106 op-unknown: instruction #1") and "needs ISA 1.2" in message


@pytest.mark.parametrize(
    ("limits", "omega", "delta", "needle"),
    [
        ({"omega_max": 10.0}, [[0, 12.0], [100, 12.0]], [[0, 0.0], [100, 0.0]], "omega 12"),
        (
            {"delta_min": -20.0, "delta_max": 20.0},
            [[0, 1.0], [100, 1.0]],
            [[0, 0.0], [100, 30.0]],
            "delta 30",
        ),
        ({"omega_slew_max": 100.0}, [[0, 0.0], [50, 10.0]], [[0, 0.0], [50, 0.0]], "slews 200"),
        ({"duration_max_ns": 50.0}, [[0, 1.0], [100, 1.0]], [[0, 0.0], [100, 0.0]], "duration"),
    ],
)
def test_drive_limits_are_coded_refusals(limits, omega, delta, needle):
    data = evolve_job([0.0], omega, delta, hardware={"drive_limits": limits})
    message = refused(data)
    assert message.startswith("QD212 drive-limits: instruction #1") and needle in message


def test_analog_programs_refuse_what_they_cannot_mean():
    base = evolve_job([0.0, 6.0], [[0, 1.0], [100, 1.0]], [[0, 0.0], [100, 0.0]])
    mixed = json.loads(json.dumps(base))
    mixed["program"].insert(1, {"op": "ApplyGate", "name": "X", "targets": [0]})
    assert refused(mixed).startswith("QD213 analog-program: instruction #1")
    late = json.loads(json.dumps(base))
    late["program"].append(late["program"][1])
    assert refused(late).startswith("QD213 analog-program: instruction #3")
    assert refused({**base, "device_id": "stabilizer"}).startswith("QD110")
    wide = {**base, "noise": {"phase": {"idle": 1e6}}}  # 1 rad/us: far from quasi-static
    assert refused(wide).startswith("QD110 analog-unsupported: noise.phase.idle = 1e+06 rad/s")
    big = {**base, "hardware": {"positions": [0.0, 6.0], "drive_limits": {"max_states": 3}}}
    assert refused(big).startswith("QD111 analog-too-large: 2 atoms need 4 basis states")
    local = json.loads(json.dumps(base))
    local["program"][1]["local_delta"] = {"atoms": [5], "scale": [1.0], "delta": [[0, 1], [100, 1]]}
    assert refused(local).startswith("QD211 atom-invalid: instruction #1")
    bad = json.loads(json.dumps(base))
    bad["program"][1]["omega"] = [[0, 1.0], [90, 1.0]]
    assert refused(bad).startswith("QD101 job-malformed: instruction #1: Evolve.omega ends at 90")


def test_the_analog_drive_uses_drive_operator_conventions_of_bloqade():
    # e^{i phi}|g><r| + e^{-i phi}|r><g|: from |g>, a pulse of phase phi leaves the atom in
    # cos|g> - i e^{-i phi} sin|r>.
    model = analog.model_for([(0.0, 0.0, 0.0)], ref.C6_RB70S)
    omega, t_ns, phi = TWO_PI, 125.0, 0.9
    drive = Drive(omega=((0, omega), (t_ns, omega)), delta=((0, 0.0), (t_ns, 0.0)), phase=phi)
    psi = analog.state_vector(model, [(drive, t_ns)])
    half = omega * t_ns * 1e-3 / 2
    want = np.array([math.cos(half), -1j * np.exp(-1j * phi) * math.sin(half)])
    assert np.allclose(psi, want, atol=1e-9)


def test_qmk_device_show_lists_the_drive_limits():
    status, out, _ = qmk("device", "show", "ideal_small_array")
    assert status == 0
    assert "analog drive (ISA 1.2 Evolve): Omega <= 15.8 rad/us, Delta in [-125, 125]" in out


def test_qmk_device_run_runs_an_analog_job_end_to_end(tmp_path):
    positions, omega, delta = z2_sweep(5)
    path = tmp_path / "z2.json"
    path.write_text(json.dumps(evolve_job(positions, omega, delta, shots=500, seed=3)))
    status, out, err = qmk("device", "run", str(path), "--json", "--no-measurements")
    assert status == 0, err
    data = json.loads(out)
    assert data["device_id"] == "analog-exact" and data["isa_version"] == "1.2"
    assert max(data["counts"], key=data["counts"].get) == "10101"
    assert data["telemetry"]["method"] == "state vector"
    status, out, err = qmk(
        "device", "run", str(path), "--device", "ideal_small_array", "--seed", "3"
    )
    assert status == 0, err
    assert "analog: state vector, 32 of 32 basis states" in out and "  10101  " in out


def test_the_blockade_subspace_radius_is_an_approximation_the_result_says_it_is():
    positions, omega, delta = z2_sweep(5)
    exact_run = run_job(evolve_job(positions, omega, delta, shots=10))
    data = evolve_job(positions, omega, delta, shots=10)
    data["blockade_subspace_radius"] = 7.0  # neighbours (5.5 um) never both in |r>
    approx = run_job(data)
    assert exact_run.telemetry["exact"] and exact_run.telemetry["basis_states"] == 32
    assert not approx.telemetry["exact"] and approx.telemetry["basis_states"] == 13  # Fibonacci
    assert approx.telemetry["blockade_bound"] is None


def test_an_analog_job_through_the_kernels_device_submit_gives_the_in_process_counts(tmp_path):
    from qmk.kernel.config import config_from_dict
    from support.kernel import run_kernel

    positions, omega, delta = z2_sweep(5)
    job = evolve_job(positions, omega, delta, shots=300, seed=9)
    expected = run_job(job).counts()
    config = config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024},
            "tenants": {
                "ana": {"key": "ana-key", "caps": ["CAP_ALLOC", "CAP_DEVICE_NA"], "max_atoms": 8}
            },
        }
    )

    async def body(kernel):
        reply = await kernel.q_negotiate_caps(
            tenant="ana", key="ana-key", requested=["CAP_ALLOC", "CAP_DEVICE_NA"]
        )
        sid = str(reply.session_id)
        accepted = await device_submit(kernel.q_submit, session_id=sid, job=job)
        return await kernel.q_wait(session_id=sid, job_id=accepted.job_id, timeout_ms=120_000)

    done = run_kernel(tmp_path, body, config=config)
    assert done.state == "COMPLETED", done.error
    assert done.result["counts"] == expected and done.result["engine"] == "analog-exact"


def test_a_wait_between_evolves_is_free_evolution_under_the_interaction():
    positions = [0.0, 6.0]
    first = {"op": "Evolve", "duration": 200, "omega": [[0, 8.0], [200, 8.0]]}
    first["delta"] = [[0, 1.0], [200, 1.0]]
    second = {"op": "Evolve", "duration": 300, "omega": [[0, 8.0], [300, 8.0]]}
    second["delta"] = [[0, -2.0], [300, -2.0]]
    split = evolve_job(positions, [[0, 0.0], [1, 0.0]], [[0, 0.0], [1, 0.0]])
    split["program"][1:2] = [first, {"op": "Wait", "duration": 250}, second]
    whole_omega = [[0, 8.0], [200, 8.0], [200.001, 0.0], [450, 0.0], [450.001, 8.0], [750, 8.0]]
    whole_delta = [[0, 1.0], [200, 1.0], [200.001, 0.0], [450, 0.0], [450.001, -2.0], [750, -2.0]]
    whole = evolve_job(positions, whole_omega, whole_delta)
    got, want = exact(split)[0], exact(whole)[0]
    # The one-waveform form smears each switch over 1 ps: a difference far below 1e-4.
    assert np.abs(got - want).max() < 1e-4
    # The wait matters: |rr> gathers the interaction's phase meanwhile.
    skipped = json.loads(json.dumps(split))
    del skipped["program"][2]
    assert np.abs(exact(skipped)[0] - got).max() > 1e-3


def _two_atoms_constant(omega: float, delta: float, t_ns: float, spacing: float = 6.0):
    """A 2-atom constant drive: its job, and H over QMK's basis (bit i = atom i), built
    here from the same numbers (rad/us)."""
    positions = [[0.0, 0.0], [spacing, 0.0]]
    data = evolve_job(positions, [[0, omega], [t_ns, omega]], [[0, delta], [t_ns, delta]])
    x, n = np.array([[0, 1], [1, 0]]), np.diag([0.0, 1.0])
    eye = np.eye(2)
    n0, n1 = np.kron(eye, n), np.kron(n, eye)  # bit 0 (atom 0) least significant
    h = omega / 2 * (np.kron(eye, x) + np.kron(x, eye)) - delta * (n0 + n1)
    h = h + ref.C6_RB70S / spacing**6 * n0 @ n1
    return data, h, (n0, n1)


def test_p_prep_starts_the_analog_evolution_from_its_mixture():
    t_ns, p = 900.0, 0.15
    data, h, _ = _two_atoms_constant(TWO_PI * 1.3, 2.0, t_ns)
    data["noise"] = {"p_prep": p}
    probs = exact(data)[0]
    u = scipy.linalg.expm(-1j * h * t_ns * 1e-3)
    start = np.array([(1 - p) ** 2, p * (1 - p), p * (1 - p), p * p])
    want = np.abs(u) ** 2 @ start  # each basis state evolved, mixed by its weight
    assert 0.5 * np.abs(want - probs).sum() < 1e-8
    clean = exact(_two_atoms_constant(TWO_PI * 1.3, 2.0, t_ns)[0])[0]
    assert 0.5 * np.abs(clean - probs).sum() > 1e-2


def test_phase_idle_is_a_quasi_static_detuning_averaged_as_a_quadrature_averages_it():
    # phase.idle a rad/s: each atom detuned by delta_i ~ U[-a, a] for the whole shot (the
    # digital idle kick, uniform in [-a t, a t]); the reference averages exactly, by
    # Gauss-Legendre quadrature over both detunings
    t_ns, a = 1500.0, 5.3e-3  # rad/us: a T = 8e-3 (the rest below 1e-7), resonant drive
    data, h, (n0, n1) = _two_atoms_constant(TWO_PI * 0.2, 0.0, t_ns)
    data["noise"] = {"phase": {"idle": a * 1e6}}
    probs = exact(data)[0]
    nodes, weights = np.polynomial.legendre.leggauss(24)
    want = np.zeros(4)
    for d0, w0 in zip(a * nodes, weights / 2, strict=True):
        for d1, w1 in zip(a * nodes, weights / 2, strict=True):
            u = scipy.linalg.expm(-1j * (h + d0 * n0 + d1 * n1) * t_ns * 1e-3)
            want += w0 * w1 * np.abs(u[:, 0]) ** 2
    noise = analog.prepare(parse_job(data))[2]
    effect, left_out = analog.detuning_bounds(2, noise, t_ns * 1e-3)
    assert left_out < 1e-7 < effect
    assert 0.5 * np.abs(want - probs).sum() < left_out + 1e-9
    clean = exact(_two_atoms_constant(TWO_PI * 0.2, 0.0, t_ns)[0])[0]
    assert 0.5 * np.abs(clean - want).sum() > 10 * left_out  # the detunings do something


@pytest.mark.parametrize("preset", sorted(p.stem for p in PRESETS.glob("*.toml")))
def test_every_shipped_preset_runs_an_analog_job(preset, tmp_path):
    # the noisy presets' p_prep and phase.idle were QD110 in analog mode
    job = tmp_path / "pair.json"
    omega = [[0, 4.0], [400, 4.0]]
    job.write_text(json.dumps(evolve_job([0.0, 7.0], omega, [[0, 0.0], [400, 0.0]], shots=50)))
    status, out, err = qmk("device", "run", str(job), "--device", preset, "--seed", "3")
    assert status == 0, err
    assert "analog" in out
