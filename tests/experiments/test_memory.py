"""QEC memory experiments: circuits checked by stim, rates against sinter and exact formulas.

Seeds are fixed; statistical comparisons use 4-sigma bounds (two-sided false-failure
probability about 6e-5 per comparison).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence

import numpy as np
import pytest
import stim

from qmk.experiments.circuits import (
    EXPERIMENT_FAMILIES,
    CircuitNoise,
    memory_circuit,
    syndrome_bits_per_round,
)
from qmk.experiments.memory import (
    MemoryResult,
    compose,
    fit_points,
    fit_results,
    fit_threshold,
    jeffreys_interval,
    per_piece,
    run_memory,
    sample_decode,
    threshold_scan,
    wilson_interval,
)
from qmk.qec import QECError, logical_model
from qmk.qec.logical import Calibration

Z_BOUND = 4.0


def synthetic_results(
    family: str,
    *,
    crossing_prefactor: float,
    threshold: float,
    distances: Sequence[int],
    ps: Sequence[float],
    shots: int,
    seed: int,
) -> tuple[MemoryResult, ...]:
    """Binomial draws from the model with known (a, p*), one round per cycle of d rounds.

    For testing ``fit_threshold``: each point's errors are
    ``Binomial(shots, a (p / p*) ** ((d + 1) // 2))`` with ``rounds = d``, so the
    per-cycle rate is the shot rate.
    """
    rng = np.random.default_rng(seed)
    out = []
    for d in distances:
        for p in ps:
            rate = min(0.49, crossing_prefactor * (p / threshold) ** ((d + 1) // 2))
            out.append(
                MemoryResult(
                    family=family,
                    distance=d,
                    rounds=d,
                    p=p,
                    noise=CircuitNoise(),
                    shots=shots,
                    errors=int(rng.binomial(shots, rate)),
                    seconds=0.0,
                    seed=seed,
                )
            )
    return tuple(out)


def _stim_generated(distance: int, rounds: int, p: float) -> stim.Circuit:
    return stim.Circuit.generated(
        "surface_code:rotated_memory_z",
        distance=distance,
        rounds=rounds,
        after_clifford_depolarization=p,
        before_round_data_depolarization=p,
        before_measure_flip_probability=p,
        after_reset_flip_probability=p,
    )


def _z(errors_a: int, shots_a: int, errors_b: int, shots_b: int) -> float:
    """The two-proportion z statistic (pooled)."""
    pooled = (errors_a + errors_b) / (shots_a + shots_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / shots_a + 1 / shots_b))
    return (errors_a / shots_a - errors_b / shots_b) / se


def _majority_failure(n: int, q: float) -> float:
    return sum(math.comb(n, k) * q**k * (1 - q) ** (n - k) for k in range(n // 2 + 1, n + 1))


# --------------------------------------------------------------------------- circuits


@pytest.mark.parametrize("family", EXPERIMENT_FAMILIES)
@pytest.mark.parametrize(("distance", "rounds"), [(3, 1), (3, 3), (5, 2)])
def test_noiseless_circuit_has_deterministic_detectors_and_no_detection_events(
    family: str, distance: int, rounds: int
) -> None:
    circuit = memory_circuit(family, distance=distance, rounds=rounds)
    circuit.detector_error_model()  # raises if any detector or observable is not deterministic
    dets, obs = circuit.compile_detector_sampler(seed=3).sample(256, separate_observables=True)
    assert not dets.any()
    assert not obs.any()
    assert circuit.num_observables == 1


@pytest.mark.parametrize("family", EXPERIMENT_FAMILIES)
def test_noisy_circuit_has_graphlike_distance_d(family: str) -> None:
    for d in (3, 5):
        circuit = memory_circuit(family, distance=d, rounds=d, noise=CircuitNoise.uniform(1e-3))
        assert len(circuit.shortest_graphlike_error()) == d


@pytest.mark.parametrize(("distance", "rounds"), [(3, 3), (5, 5), (5, 2)])
def test_surface_circuit_has_the_detector_structure_of_stims_generated_circuit(
    distance: int, rounds: int
) -> None:
    p = 1e-3
    ours = memory_circuit(
        "surface_code", distance=distance, rounds=rounds, noise=CircuitNoise.stim_uniform(p)
    )
    theirs = _stim_generated(distance, rounds, p)
    assert ours.num_detectors == theirs.num_detectors
    assert ours.num_observables == theirs.num_observables
    assert ours.num_qubits == 2 * distance**2 - 1
    ours_dem = ours.detector_error_model(decompose_errors=True)
    theirs_dem = theirs.detector_error_model(decompose_errors=True)

    def probabilities(dem: stim.DetectorErrorModel) -> list[float]:
        return sorted(i.args_copy()[0] for i in dem.flattened() if i.type == "error")

    # The same noise on the same schedule gives the same error mechanisms.
    assert np.allclose(probabilities(ours_dem), probabilities(theirs_dem), rtol=1e-9, atol=0)
    assert ours_dem.num_errors == theirs_dem.num_errors


def test_syndrome_bits_per_round_count_the_measurements_of_one_round() -> None:
    for family in EXPERIMENT_FAMILIES:
        for d in (3, 5):
            one = memory_circuit(family, distance=d, rounds=1)
            two = memory_circuit(family, distance=d, rounds=2)
            per_round = two.num_measurements - one.num_measurements
            # Every measurement of a round reaches the decoder (Bacon-Shor: XX and ZZ gauges).
            assert per_round == syndrome_bits_per_round(family, d)
            assert logical_model(f"logical:surface_code(d={d})").syndrome_bits_per_round == (
                syndrome_bits_per_round("surface_code", d)
            )


# --------------------------------------------------------------------------- rates


def test_surface_code_rates_agree_with_sinter_on_stims_generated_circuit() -> None:
    import sinter

    p, shots = 5e-3, 20_000
    tasks = [sinter.Task(circuit=_stim_generated(d, d, p), json_metadata={"d": d}) for d in (3, 5)]
    stats = sinter.collect(
        num_workers=1, tasks=tasks, decoders=["pymatching"], max_shots=shots, max_errors=10**9
    )
    by_d = {s.json_metadata["d"]: s for s in stats}
    for i, d in enumerate((3, 5)):
        ours = run_memory("surface_code", distance=d, p=p, noise="stim", shots=shots, seed=11 + i)
        theirs = by_d[d]
        assert ours.errors > 50 and theirs.errors > 50
        assert abs(_z(ours.errors, ours.shots, theirs.errors, theirs.shots)) < Z_BOUND, (
            d,
            ours.errors,
            theirs.errors,
        )


def test_sampling_is_reproducible_with_a_seed() -> None:
    first = run_memory("surface_code", distance=3, p=4e-3, shots=3000, seed=5)
    again = run_memory("surface_code", distance=3, p=4e-3, shots=3000, seed=5)
    assert (first.errors, first.shots) == (again.errors, again.shots)


def test_max_errors_stops_early() -> None:
    result = run_memory("repetition_code", distance=3, p=0.05, shots=10**6, max_errors=50, seed=2)
    assert 50 <= result.errors < 50 + 1024
    assert result.shots < 10**6


@pytest.mark.parametrize("distance", [3, 5])
def test_repetition_code_under_code_capacity_noise_fails_by_majority_vote(distance: int) -> None:
    # DEPOLARIZE1(p) flips a data qubit's Z value with probability 2p/3; one noiseless round.
    p, shots = 0.15, 40_000
    noise = CircuitNoise(before_round_data=p)
    result = run_memory(
        "repetition_code", distance=distance, p=p, rounds=1, noise=noise, shots=shots, seed=7
    )
    exact = _majority_failure(distance, 2 * p / 3)
    sigma = math.sqrt(exact * (1 - exact) / shots)
    assert abs(result.shot_error_rate - exact) < Z_BOUND * sigma, (result.errors, exact * shots)


@pytest.mark.parametrize("distance", [3, 5])
def test_bacon_shor_under_code_capacity_noise_fails_by_column_majority(distance: int) -> None:
    # A column flips when an odd number of its d qubits flip; the code fails when most columns do.
    p, shots = 0.06, 40_000
    q = 2 * p / 3
    column = (1 - (1 - 2 * q) ** distance) / 2
    exact = _majority_failure(distance, column)
    result = run_memory(
        "bacon_shor",
        distance=distance,
        p=p,
        rounds=1,
        noise=CircuitNoise(before_round_data=p),
        shots=shots,
        seed=8,
    )
    sigma = math.sqrt(exact * (1 - exact) / shots)
    assert abs(result.shot_error_rate - exact) < Z_BOUND * sigma, (result.errors, exact * shots)


def test_larger_distances_suppress_errors_below_threshold() -> None:
    for family, p in (("surface_code", 2e-3), ("bacon_shor", 5e-4), ("repetition_code", 5e-3)):
        small, large = threshold_scan(family, distances=[3, 5], ps=[p], shots=20_000, seed=4)
        assert large.per_round < small.per_round, family


def test_intervals_contain_the_rate_and_per_round_inverts_composition() -> None:
    for errors, shots in ((0, 100), (5, 1000), (500, 1000)):
        for interval in (wilson_interval, jeffreys_interval):
            low, high = interval(errors, shots)
            assert 0 <= low <= errors / shots <= high <= 1
    assert per_piece(compose(0.01, 7), 7) == pytest.approx(0.01, rel=1e-12)
    # 1 - 2P = (1 - 2q)^r: two rounds at q fail when exactly one does.
    assert compose(0.1, 2) == pytest.approx(2 * 0.1 * 0.9)
    result = run_memory("surface_code", distance=3, p=5e-3, rounds=5, shots=4000, seed=9)
    low, high = result.per_round_interval
    assert low <= result.per_round <= high
    assert result.per_cycle == pytest.approx(compose(result.per_round, 3))


@pytest.mark.parametrize("shots", [1000, 12345, 20_000])
def test_an_interval_at_no_errors_starts_at_zero_and_at_all_errors_ends_at_one(shots) -> None:
    for interval in (wilson_interval, jeffreys_interval):
        assert interval(0, shots)[0] == 0.0, interval
        assert interval(shots, shots)[1] == 1.0, interval


# --------------------------------------------------------------------------- fit


def test_fit_recovers_known_prefactor_and_threshold_from_synthetic_data() -> None:
    a, p_star = 0.03, 0.01
    results = synthetic_results(
        "surface_code",
        crossing_prefactor=a,
        threshold=p_star,
        distances=[3, 5, 7],
        ps=[1e-3, 2e-3, 3e-3, 5e-3],
        shots=2_000_000,
        seed=21,
    )
    fit = fit_results(results)
    assert abs(fit.crossing_prefactor - a) < 3 * fit.sigma_prefactor
    assert abs(fit.threshold - p_star) < 3 * fit.sigma_threshold
    assert fit.sigma_threshold < 0.1 * p_star
    assert fit.chi2 / fit.dof < 3  # the model is exact here


def test_fit_of_our_circuit_agrees_with_fit_of_stims_circuit_within_uncertainty() -> None:
    ps, shots = [3e-3, 5e-3, 7e-3], 15_000
    ours = threshold_scan(
        "surface_code", distances=[3, 5], ps=ps, noise="stim", shots=shots, seed=31
    )
    theirs = []
    for i, r in enumerate(ours):
        sampled = sample_decode(
            _stim_generated(r.distance, r.rounds, r.p), shots=shots, seed=40 + i
        )
        theirs.append(dataclasses.replace(r, errors=sampled.errors))
    fit_ours, fit_theirs = fit_results(ours), fit_results(theirs)
    for name, sigma in (
        ("crossing_prefactor", "sigma_prefactor"),
        ("threshold", "sigma_threshold"),
    ):
        diff = getattr(fit_ours, name) - getattr(fit_theirs, name)
        combined = math.hypot(getattr(fit_ours, sigma), getattr(fit_theirs, sigma))
        assert abs(diff) < 3 * combined, (name, fit_ours, fit_theirs)
    # Each fitted point lies within the model's spread of the data it came from.
    for point in fit_points(ours):
        predicted = fit_ours.predict(point.p, point.distance)
        assert abs(math.log(predicted / point.rate)) < 1.0


def test_fit_refuses_too_few_points_or_one_distance_class() -> None:
    results = synthetic_results(
        "surface_code",
        crossing_prefactor=0.03,
        threshold=0.01,
        distances=[3],
        ps=[2e-3, 4e-3, 6e-3],
        shots=100_000,
        seed=1,
    )
    with pytest.raises(QECError, match=r"QC103.*two values"):
        fit_results(results)
    with pytest.raises(QECError, match=r"QC103.*at least 3"):
        fit_threshold("surface_code", fit_points(results)[:2])


# --------------------------------------------------------------------------- calibration


def test_calibration_replaces_the_schemes_prefactor_and_threshold(tmp_path) -> None:
    cal = Calibration(
        family="surface_code", crossing_prefactor=0.06, error_correction_threshold=0.008
    )
    base = logical_model("logical:surface_code(d=5)", "qubit_gate_ns_e3")
    calibrated = logical_model("logical:surface_code(d=5)", "qubit_gate_ns_e3", calibration=cal)
    assert calibrated.logical_error_per_cycle == pytest.approx(0.06 * (1e-3 / 0.008) ** 3)
    assert base.logical_error_per_cycle == pytest.approx(0.03 * (1e-3 / 0.01) ** 3)
    assert calibrated.calibration == cal and base.calibration is None
    # A calibration of another family leaves a profile alone.
    other = logical_model("logical:bacon_shor(d=5)", "qubit_gate_ns_e3", calibration=cal)
    assert other.calibration is None
    assert (
        other.logical_error_per_cycle
        == logical_model("logical:bacon_shor(d=5)").logical_error_per_cycle
    )
    path = tmp_path / "cal.json"
    path.write_text(json.dumps({**cal.to_json(), "fit": {"chi2": 1.0}}))
    assert Calibration.load(path) == cal


def test_calibration_refuses_bad_values_and_files(tmp_path) -> None:
    with pytest.raises(QECError, match=r"QC103.*crossing_prefactor"):
        Calibration(family="surface_code", crossing_prefactor=0.7, error_correction_threshold=0.01)
    with pytest.raises(QECError, match=r"QC102"):
        Calibration(family="toric", crossing_prefactor=0.1, error_correction_threshold=0.01)
    with pytest.raises(QECError, match=r"QC103.*kind"):
        Calibration.from_json({"family": "surface_code"})
    with pytest.raises(QECError, match=r"QC103.*cannot|QC103.*No such"):
        Calibration.load(tmp_path / "missing.json")


def test_fitted_calibration_feeds_the_logical_model() -> None:
    results = synthetic_results(
        "surface_code",
        crossing_prefactor=0.05,
        threshold=0.007,
        distances=[3, 5],
        ps=[1e-3, 2e-3, 4e-3],
        shots=1_000_000,
        seed=3,
    )
    cal = fit_results(results).calibration(source="synthetic")
    model = logical_model("logical:surface_code(d=7)", "qubit_gate_ns_e3", calibration=cal)
    assert model.logical_error_per_cycle == pytest.approx(
        cal.crossing_prefactor * (1e-3 / cal.error_correction_threshold) ** 4
    )


# --------------------------------------------------------------------------- decoder load


def test_decoder_throughput_is_syndrome_bits_per_round_times_rounds_over_cycle_time() -> None:
    m = logical_model("logical:surface_code(d=9)", "qubit_gate_ns_e3")
    assert m.syndrome_bits_per_round == 80
    assert m.decoder_bits_per_second == pytest.approx(80 * 9 / 3600e-9)
    assert logical_model("logical:bacon_shor(d=3)").syndrome_bits_per_round == 12


def test_run_telemetry_sums_decoder_load_over_peak_live_logical_qubits() -> None:
    from qmk.execution.runs import run
    from qmk.qvm.asm import assemble

    program = assemble(
        """
        .caps CAP_ALLOC
        a: ALLOC_LQ vq:q0, vq:q1, n=2
        b: ALLOC_LQ vq:q2, n=1, profile="logical:surface_code(d=5)"
        h: APPLY_H vq:q0
        m0: MEASURE_Z vq:q0, out:m0
        f: FREE_LQ vq:q0, vq:q1, vq:q2
        """
    )
    telemetry = run(program, shots=4, seed=1).telemetry
    d9 = logical_model("logical:surface_code(d=9)")
    d5 = logical_model("logical:surface_code(d=5)")
    assert telemetry.syndrome_bits_per_round == 2 * 80 + 24
    assert telemetry.decoder_bits_per_second == pytest.approx(
        2 * d9.decoder_bits_per_second + d5.decoder_bits_per_second
    )
    assert telemetry.to_json()["decoder_bits_per_second"] == telemetry.decoder_bits_per_second


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("family", ["floquet_code", "honeycomb"])
def test_families_without_circuits_raise_no_experiment(family: str) -> None:
    with pytest.raises(QECError, match="QC110 no-experiment"):
        memory_circuit(family, distance=3, rounds=3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"distance": 4}, "odd"),
        ({"distance": 1}, ">= 3"),
        ({"rounds": 0}, "rounds"),
        ({"p": 0.7}, r"\(0, 0.5\)"),
        ({"shots": 0}, "shots"),
        ({"noise": "pink"}, "noise kind"),
        ({"interval": "bayes"}, "interval"),
    ],
)
def test_bad_experiment_arguments_raise_bad_parameter(kwargs: dict, match: str) -> None:
    args = {"distance": 3, "p": 1e-3, "shots": 10, **kwargs}
    with pytest.raises(QECError, match=f"QC103.*{match}"):
        run_memory("surface_code", **args)
    with pytest.raises(QECError, match=r"QC102"):
        run_memory("toric_code", distance=3, p=1e-3)


# --------------------------------------------------------------------------- syndrome weight


def _stim_pymatching(circuit: stim.Circuit, shots: int, seed: int, weight: int | None):
    """Failures and give-ups of a capped matching decoder, by stim and pymatching alone:
    unpacked samples, the shot's weight its count of detection events."""
    import pymatching

    dets, obs = circuit.compile_detector_sampler(seed=seed).sample(shots, separate_observables=True)
    dem = circuit.detector_error_model(decompose_errors=True)
    predicted = pymatching.Matching.from_detector_error_model(dem).decode_batch(dets)
    over = dets.sum(axis=1) > (math.inf if weight is None else weight)
    wrong = np.any(predicted != obs, axis=1) | over
    return int(wrong.sum()), int(over.sum())


@pytest.mark.parametrize("weight", [None, 0, 12, 10**6])
def test_a_decoder_that_gives_up_above_a_weight_fails_the_shots_stim_and_pymatching_say(
    weight: int | None,
) -> None:
    noise = CircuitNoise.from_qubit("qubit_gate_ns_e3", p=5e-3)
    circuit = memory_circuit("surface_code", distance=5, rounds=5, noise=noise)
    ours = sample_decode(circuit, shots=1000, seed=7, max_syndrome_weight=weight)  # one chunk
    errors, gave_up = _stim_pymatching(circuit, 1000, 7, weight)
    assert (ours.errors, ours.gave_up) == (errors, gave_up)
    if weight == 12:  # about half the shots carry more than 12 detection events here
        assert 200 < gave_up < 800
    if weight == 0:  # every shot has some detection event at this p and size
        assert ours.gave_up == ours.errors == 1000


def test_a_limit_above_every_syndrome_is_the_decoder_without_one() -> None:
    kwargs = {"distance": 3, "p": 4e-3, "shots": 3000, "seed": 5}
    free = run_memory("surface_code", **kwargs)
    capped = run_memory("surface_code", max_syndrome_weight=10**6, **kwargs)
    assert (capped.errors, capped.gave_up) == (free.errors, 0)
    assert capped.to_json()["max_syndrome_weight"] == 10**6
    assert free.to_json()["max_syndrome_weight"] is None


def test_the_limit_holds_across_worker_processes() -> None:
    kwargs = {"distance": 3, "p": 8e-3, "shots": 2000, "seed": 4, "max_syndrome_weight": 3}
    result = run_memory("surface_code", workers=2, **kwargs)
    assert 0 < result.gave_up <= result.errors <= result.shots == 2000


def test_a_negative_limit_is_a_bad_parameter() -> None:
    with pytest.raises(QECError, match=r"QC103.*max_syndrome_weight"):
        run_memory("surface_code", distance=3, p=1e-3, shots=10, max_syndrome_weight=-1)


@pytest.mark.parametrize("decoder", ["pymatching", "bposd"])
def test_a_max_errors_stop_decodes_within_twice_the_shots_its_last_error_needed(
    decoder: str,
) -> None:
    """A chunk is decoded in growing pieces, so a slow decoder (BP+OSD) stops near
    ``max_errors``, not a whole 1,024-shot chunk past it. Structural: the same seed's
    first chunk, decoded shot by shot here, says where the ``max_errors``-th error is."""
    from qmk.experiments.decoders import build_decoder, mispredicted
    from qmk.experiments.memory import DEFAULT_CHUNK, FIRST_PIECE

    circuit = stim.Circuit.generated(
        "color_code:memory_xyz",
        distance=3,
        rounds=3,
        after_clifford_depolarization=0.01,
        before_measure_flip_probability=0.01,
        after_reset_flip_probability=0.01,
    )
    max_errors = 20
    result = sample_decode(circuit, shots=10**5, max_errors=max_errors, seed=78, decoder=decoder)
    sampler = circuit.compile_detector_sampler(seed=78)
    dets, obs = sampler.sample(DEFAULT_CHUNK, bit_packed=True, separate_observables=True)
    built = build_decoder(circuit, decoder).decoder
    running = np.cumsum(np.any(mispredicted(built, dets, obs), axis=1))
    needed = int(np.searchsorted(running, max_errors)) + 1  # shots up to the 20th error
    assert needed < DEFAULT_CHUNK // 4  # the check can fail: a whole chunk is far past it
    assert needed <= result.shots <= max(2 * (needed - 1), needed - 1 + FIRST_PIECE)
    assert result.errors == running[result.shots - 1] >= max_errors


def stim_operations(circuit: stim.Circuit) -> int:
    """A circuit's operations as stim counts them: its target groups (an instruction of
    none, one)."""
    return sum(max(1, len(op.target_groups())) for op in circuit.flattened())


@pytest.mark.timeout(60)  # building 10^9 rounds, as before the check, never ends
def test_a_memory_run_of_10_9_rounds_is_refused_before_its_circuit_is_built():
    from qmk.qvm.errors import UnrollError

    with pytest.raises(UnrollError) as caught:
        run_memory("surface_code", distance=3, p=1e-3, rounds=10**9, shots=10, seed=1)
    assert caught.value.code == "QV505", caught.value
    # its size: the operations of 2 rounds, then those each round adds, counted on the
    # circuits of 2 and 3 rounds
    two, three = (
        stim_operations(memory_circuit("surface_code", distance=3, rounds=r)) for r in (2, 3)
    )
    assert caught.value.details["size"] == two + (10**9 - 2) * (three - two)


@pytest.mark.parametrize(
    "family, distance",
    [("surface_code", 5), ("repetition_code", 3), ("bacon_shor", 3), ("SHYPS", 4)],
)
def test_every_round_after_the_second_adds_the_same_operations(family, distance):
    # what makes the size check exact: 7 rounds hold those of 2, then 5 x what a third adds
    two, three, seven = (
        stim_operations(memory_circuit(family, distance=distance, rounds=r)) for r in (2, 3, 7)
    )
    assert seven == two + 5 * (three - two)
