"""QEC memory experiments: sample syndrome circuits in stim, decode, count logical errors.

:func:`run_memory` builds a memory experiment (:mod:`qmk.experiments.circuits`) under
circuit-level noise, samples its detection events with stim's compiled
detector sampler, decodes them with a decoder of :mod:`qmk.experiments.decoders`
(pymatching's minimum-weight perfect matching by default, or BP+OSD) on the
circuit's detector error model, and counts the shots
whose predicted observable flip is wrong. :func:`threshold_scan` does that per
(distance, p); :func:`fit_threshold` fits the QRE-style model
``P_L = a (p / p*) ** ((d + 1) // 2)`` to the per-cycle rates, and
:meth:`ThresholdFit.calibration` turns the fit into a
:class:`qmk.qec.logical.Calibration` the logical layer uses.

Rates: a shot runs ``rounds`` rounds. Its error rate ``P`` becomes a rate per
round ``q`` by ``1 - 2 P = (1 - 2 q) ** rounds`` (independent flips compose by
parity, the convention of sinter). The rate per logical cycle (d rounds, as the
schemes count) follows by the same rule with d. Intervals are Wilson score intervals
(or Jeffreys) of ``P``, mapped through the same monotone conversion.

>>> r = run_memory("repetition_code", distance=3, p=0.01, shots=20_000, seed=5)
>>> r.shots, r.distance, r.rounds
(20000, 3, 3)
>>> low, high = r.per_round_interval
>>> low <= r.per_round <= high
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from qmk import defaults
from qmk.experiments.circuits import (
    CircuitNoise,
    check_distance,
    check_rounds,
    experiment_decoder,
    experiment_family,
    logical_qubits,
    memory_circuit,
)
from qmk.experiments.decoders import (
    DEFAULT_DECODER,
    build_decoder,
    check_decoder,
    mispredicted,
)
from qmk.experiments.decoders import sinter_model as sinter_model
from qmk.qec.errors import bad_parameter as _bad
from qmk.qec.logical import Calibration
from qmk.qec.params import GATE_BASED, QubitParams

if TYPE_CHECKING:
    import stim

#: Noise kinds :func:`circuit_noise` knows.
NOISE_KINDS: tuple[str, ...] = ("qubit", "uniform", "stim")
#: Shots sampled and decoded at once: small enough that stim's and pymatching's
#: working sets stay in cache (sinter's mini-batch is the same; docs/qec_experiments.md
#: has the chunk sizes tried).
DEFAULT_CHUNK = 1024
#: The first piece of a chunk decoded when a run stops at ``max_errors``: later pieces
#: aim at the errors still wanted, at most the shots decoded so far (:func:`_piece`).
FIRST_PIECE = 16
#: The default confidence level of intervals.
DEFAULT_CONFIDENCE = 0.95


def circuit_noise(
    kind: str, p: float, *, qubit: str | QubitParams = defaults.QUBIT
) -> CircuitNoise:
    """The circuit noise of kind ``kind`` at physical error rate ``p``.

    - ``qubit``: the qubit parameter set's rates scaled so its physical error
      rate is ``p`` (:meth:`CircuitNoise.from_qubit`); idle noise in every layer.
    - ``uniform``: every gate, measurement, reset and idle step at ``p``.
    - ``stim``: the noise of stim's generated circuits (no idle noise; data
      depolarized at the start of each round).

    Raises:
        QECError: ``QC103`` for an unknown kind or a ``p`` outside (0, 0.5).
    """
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p < 0.5:
        raise _bad(f"physical error rate p must lie in (0, 0.5), got {p!r}")
    if kind == "qubit":
        return CircuitNoise.from_qubit(qubit, p=p)
    if kind == "uniform":
        return CircuitNoise.uniform(p)
    if kind == "stim":
        return CircuitNoise.stim_uniform(p)
    raise _bad(f"unknown noise kind {kind!r}; known: {', '.join(NOISE_KINDS)}")


def wilson_interval(
    errors: int, shots: int, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """The Wilson score interval of a binomial rate ``errors / shots``.

    >>> [round(x, 4) for x in wilson_interval(10, 1000)]
    [0.0054, 0.0183]
    """
    from statistics import NormalDist

    if shots <= 0:
        return (0.0, 1.0)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    rate = errors / shots
    denominator = 1 + z * z / shots
    centre = (rate + z * z / (2 * shots)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / shots + z * z / (4 * shots * shots)) / denominator
    # at 0 (or all) errors the ends are 0 (or 1) exactly; the sum above leaves a rounding
    low = 0.0 if errors == 0 else max(0.0, centre - half)
    high = 1.0 if errors == shots else min(1.0, centre + half)
    return (low, high)


def jeffreys_interval(
    errors: int, shots: int, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """The Jeffreys interval (Beta(1/2, 1/2) prior) of ``errors / shots``.

    >>> [round(x, 4) for x in jeffreys_interval(10, 1000)]
    [0.0052, 0.0177]
    """
    from scipy.stats import beta

    if shots <= 0:
        return (0.0, 1.0)
    tail = (1 - confidence) / 2
    low = 0.0 if errors == 0 else float(beta.ppf(tail, errors + 0.5, shots - errors + 0.5))
    high = 1.0 if errors == shots else float(beta.ppf(1 - tail, errors + 0.5, shots - errors + 0.5))
    return (low, high)


INTERVALS = {"wilson": wilson_interval, "jeffreys": jeffreys_interval}


def per_piece(rate: float, pieces: float) -> float:
    """The error rate of each of ``pieces`` independent parts whose parity fails at ``rate``.

    ``1 - 2 * rate = (1 - 2 * q) ** pieces``; rates at or above 1/2 give 1/2.

    >>> round(per_piece(1 - (1 - 0.01) ** 2 - 0.01**2, 2), 12)
    0.01
    """
    if rate >= 0.5:
        return 0.5
    return -math.expm1(math.log1p(-2 * rate) / pieces) / 2


def compose(rate: float, pieces: float) -> float:
    """The parity error rate of ``pieces`` independent parts each failing at ``rate``."""
    if rate >= 0.5:
        return 0.5
    return -math.expm1(pieces * math.log1p(-2 * rate)) / 2


@dataclass(frozen=True, slots=True, kw_only=True)
class Sampled:
    """Shots sampled and decoded, the logical errors among them, and the time it took.

    ``gave_up``: shots the decoder gave up on (more detection events than its
    ``max_syndrome_weight``), each counted among the errors.
    """

    shots: int
    errors: int
    seconds: float
    gave_up: int = 0


def sample_decode(
    circuit: stim.Circuit,
    *,
    shots: int,
    max_errors: int | None = None,
    seed: int | None = None,
    chunk: int = DEFAULT_CHUNK,
    max_syndrome_weight: int | None = None,
    decoder: str = DEFAULT_DECODER,
) -> Sampled:
    """Sample ``circuit``'s detection events, decode them and count failures.

    Shots go in chunks of ``chunk`` (the last one smaller); stim samples bit-packed detection events
    and observables, the decoder's ``decode_batch`` decodes each chunk bit-packed (in
    pieces under ``max_errors``).
    The same circuit, seed, shots, chunk and decoder give the same answer.

    Args:
        circuit: a circuit with detectors and observables.
        shots: the most shots to take (>= 1).
        max_errors: stop once the logical errors reach this many. A chunk is then
            decoded in pieces that grow from :data:`FIRST_PIECE` towards the errors
            still wanted (:func:`_piece`), so a slow decoder stops near the target,
            not a whole chunk past it; the chunk's shots not decoded are not counted.
        seed: stim's seed (None: random).
        chunk: shots per chunk.
        max_syndrome_weight: the decoder gives up on a shot with more detection events
            than this (its whole syndrome, every round of the shot decoded at once): the
            shot counts as a logical error whatever matching would predict (None: no
            limit).
        decoder: a decoder of :data:`qmk.experiments.decoders.DECODERS`.

    Raises:
        QECError: ``QC112``/``QC114`` for the decoder, ``QC103`` for bad numbers.
    """
    _check_count("shots", shots)
    if max_errors is not None:
        _check_count("max_errors", max_errors)
    _check_weight(max_syndrome_weight)
    started = time.perf_counter()
    matching = build_decoder(circuit, decoder).decoder
    sampler = circuit.compile_detector_sampler(seed=seed)
    _check_count("chunk", chunk)
    done = errors = gave_up = 0
    while done < shots and (max_errors is None or errors < max_errors):
        take = min(chunk, shots - done)
        dets, obs = sampler.sample(take, bit_packed=True, separate_observables=True)
        at = 0
        while at < take and (max_errors is None or errors < max_errors):
            step = (
                take - at
                if max_errors is None
                else min(take - at, _piece(done, errors, max_errors))
            )
            wrong, over = _wrong(
                matching, dets[at : at + step], obs[at : at + step], max_syndrome_weight
            )
            errors += wrong
            gave_up += over
            done += step
            at += step
    seconds = time.perf_counter() - started
    return Sampled(shots=done, errors=errors, seconds=seconds, gave_up=gave_up)


def _piece(done: int, errors: int, max_errors: int) -> int:
    """How many shots to decode next on the way to ``max_errors``: the shots that many
    more errors take at the rate so far, at least :data:`FIRST_PIECE` and at most
    ``done`` (so a run stops within twice the shots its last error needed, whatever
    the decoder's speed)."""
    if errors == 0:
        return max(FIRST_PIECE, done)
    wanted = -(-(max_errors - errors) * done // errors)
    return max(FIRST_PIECE, min(done, wanted))


def _wrong(
    matching: Any, dets: np.ndarray, obs: np.ndarray, max_syndrome_weight: int | None
) -> tuple[int, int]:
    """The logical errors among these shots and how many of them the decoder gave up on."""
    wrong = np.any(mispredicted(matching, dets, obs), axis=1)
    over_count = 0
    if max_syndrome_weight is not None:
        over = np.bitwise_count(dets).sum(axis=1, dtype=np.int64) > max_syndrome_weight
        over_count = int(np.count_nonzero(over))
        wrong |= over
    return int(np.count_nonzero(wrong)), over_count


def _check_weight(value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise _bad(f"max_syndrome_weight must be a whole number >= 0, got {value!r}")


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _bad(f"{name} must be a whole number >= 1, got {value!r}")


def _sample_task(
    args: tuple[str, int, int | None, int | None, int, int | None, str],
) -> tuple[int, int, int]:
    import stim

    text, shots, max_errors, seed, chunk, weight, decoder = args
    result = sample_decode(
        stim.Circuit(text),
        shots=shots,
        max_errors=max_errors,
        seed=seed,
        chunk=chunk,
        max_syndrome_weight=weight,
        decoder=decoder,
    )
    return result.shots, result.errors, result.gave_up


def sample_decode_parallel(
    circuit: stim.Circuit,
    *,
    shots: int,
    max_errors: int | None = None,
    seed: int | None = None,
    workers: int = 1,
    chunk: int = DEFAULT_CHUNK,
    max_syndrome_weight: int | None = None,
    decoder: str = DEFAULT_DECODER,
) -> Sampled:
    """:func:`sample_decode` split over ``workers`` processes (1: in this process).

    Each worker takes ``shots / workers`` shots (and ``max_errors / workers``
    errors) with its own seed drawn from ``seed``; the answer depends on
    ``workers`` but is reproducible for a given number.
    """
    _check_count("workers", workers)
    if workers == 1:
        return sample_decode(
            circuit,
            shots=shots,
            max_errors=max_errors,
            seed=seed,
            chunk=chunk,
            max_syndrome_weight=max_syndrome_weight,
            decoder=decoder,
        )
    _check_count("shots", shots)
    _check_weight(max_syndrome_weight)
    check_decoder(decoder)
    started = time.perf_counter()
    seeds = _seeds(seed, workers)
    parts = [shots // workers + (1 if i < shots % workers else 0) for i in range(workers)]
    cap = None if max_errors is None else max(1, -(-max_errors // workers))
    text = str(circuit)
    tasks = [
        (text, n, cap, s, chunk, max_syndrome_weight, decoder)
        for n, s in zip(parts, seeds, strict=True)
        if n > 0
    ]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(_sample_task, tasks))
    return Sampled(
        shots=sum(n for n, _, _ in outcomes),
        errors=sum(e for _, e, _ in outcomes),
        seconds=time.perf_counter() - started,
        gave_up=sum(g for _, _, g in outcomes),
    )


def _seeds(seed: int | None, count: int) -> list[int | None]:
    if seed is None:
        return [None] * count
    return [
        int(s.generate_state(1, np.uint64)[0]) for s in np.random.SeedSequence(seed).spawn(count)
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryResult:
    """One memory experiment: its parameters, shots, logical errors and derived rates.

    Attributes:
        family: the experiment family.
        distance: the code distance.
        rounds: syndrome-extraction rounds per shot.
        p: the physical error rate the noise was built from.
        noise: the circuit noise.
        shots: shots taken.
        errors: shots whose decoded logical observable was wrong.
        seconds: sampling and decoding time.
        seed: the seed (None: random).
        confidence: the confidence level of the intervals.
        interval: ``"wilson"`` or ``"jeffreys"``.
        max_syndrome_weight: the decoder's limit on a shot's detection events (None:
            none); ``gave_up`` shots were over it, each counted among the ``errors``.
        decoder: the decoder (a key of :data:`qmk.experiments.decoders.DECODERS`).
        logical_qubits: the code's logical qubits (its observables): a shot fails when
            any is wrong.
    """

    family: str
    distance: int
    rounds: int
    p: float
    noise: CircuitNoise
    shots: int
    errors: int
    seconds: float
    seed: int | None = None
    confidence: float = DEFAULT_CONFIDENCE
    interval: str = "wilson"
    max_syndrome_weight: int | None = None
    gave_up: int = 0
    decoder: str = DEFAULT_DECODER
    logical_qubits: int = 1

    @property
    def shot_error_rate(self) -> float:
        """Logical errors per shot."""
        return self.errors / self.shots

    @property
    def shot_interval(self) -> tuple[float, float]:
        """The confidence interval of :attr:`shot_error_rate`."""
        return INTERVALS[self.interval](self.errors, self.shots, self.confidence)

    @property
    def per_round(self) -> float:
        """The logical error rate per syndrome round."""
        return per_piece(self.shot_error_rate, self.rounds)

    @property
    def per_round_interval(self) -> tuple[float, float]:
        """The confidence interval of :attr:`per_round`."""
        low, high = self.shot_interval
        return per_piece(low, self.rounds), per_piece(high, self.rounds)

    @property
    def per_cycle(self) -> float:
        """The logical error rate per logical cycle of d rounds (what the schemes model)."""
        return compose(self.per_round, self.distance)

    @property
    def per_cycle_interval(self) -> tuple[float, float]:
        """The confidence interval of :attr:`per_cycle`."""
        low, high = self.per_round_interval
        return compose(low, self.distance), compose(high, self.distance)

    @property
    def per_cycle_per_qubit(self) -> float:
        """The logical error rate per logical cycle of one of the code's logical qubits:
        ``1 - (1 - P) ** (1 / k)`` of the per-cycle rate ``P`` of any of the ``k``
        failing, as if they failed independently (the rate itself when ``k = 1``)."""
        if self.logical_qubits == 1:
            return self.per_cycle
        return -math.expm1(math.log1p(-self.per_cycle) / self.logical_qubits)

    @property
    def shots_per_second(self) -> float:
        """Sampling and decoding speed."""
        return self.shots / self.seconds if self.seconds > 0 else math.inf

    def to_json(self) -> dict[str, Any]:
        """The result as plain JSON."""
        return {
            "family": self.family,
            "distance": self.distance,
            "rounds": self.rounds,
            "p": self.p,
            "shots": self.shots,
            "errors": self.errors,
            "seconds": round(self.seconds, 6),
            "seed": self.seed,
            "confidence": self.confidence,
            "interval": self.interval,
            "shot_error_rate": self.shot_error_rate,
            "shot_interval": list(self.shot_interval),
            "per_round": self.per_round,
            "per_round_interval": list(self.per_round_interval),
            "per_cycle": self.per_cycle,
            "per_cycle_interval": list(self.per_cycle_interval),
            "max_syndrome_weight": self.max_syndrome_weight,
            "gave_up": self.gave_up,
            "decoder": self.decoder,
            "logical_qubits": self.logical_qubits,
            "per_cycle_per_qubit": self.per_cycle_per_qubit,
            "noise": {
                "after_1q": self.noise.after_1q,
                "after_2q": self.noise.after_2q,
                "measure_flip": self.noise.measure_flip,
                "reset_flip": self.noise.reset_flip,
                "idle": self.noise.idle,
                "before_round_data": self.noise.before_round_data,
            },
        }


def run_memory(
    family: str,
    *,
    distance: int,
    p: float,
    rounds: int | None = None,
    noise: str | CircuitNoise = "qubit",
    qubit: str | QubitParams = defaults.QUBIT,
    shots: int = 10_000,
    max_errors: int | None = None,
    seed: int | None = None,
    workers: int = 1,
    confidence: float = DEFAULT_CONFIDENCE,
    interval: str = "wilson",
    max_syndrome_weight: int | None = None,
    decoder: str | None = None,
) -> MemoryResult:
    """Run one memory experiment and return its logical error counts and rates.

    Args:
        family: ``surface_code``, ``repetition_code`` or ``bacon_shor``.
        distance: odd code distance >= 3.
        p: the physical error rate (noise is built from it unless ``noise`` is a
            :class:`CircuitNoise`, when ``p`` only labels the result).
        rounds: syndrome rounds (default: ``distance``, one logical cycle).
        noise: a kind of :data:`NOISE_KINDS` or the circuit noise itself.
        qubit: the qubit parameter set for ``noise="qubit"``.
        shots, max_errors, seed, workers: as for :func:`sample_decode_parallel`.
        confidence: the intervals' confidence level, in (0, 1).
        interval: ``"wilson"`` or ``"jeffreys"``.
        max_syndrome_weight: the decoder gives up on a shot with more detection events
            (a logical error; :func:`sample_decode`); None: no limit.
        decoder: a decoder of :data:`qmk.experiments.decoders.DECODERS` (None: the
            family's, :func:`~qmk.experiments.circuits.experiment_decoder`).

    Raises:
        QECError: ``QC110``/``QC102`` for the family, ``QC103`` for bad numbers,
            ``QC112``/``QC114`` for the decoder.
    """
    canonical = experiment_family(family)
    check_distance(distance, canonical)
    decoder = experiment_decoder(canonical) if decoder is None else decoder
    rounds = distance if rounds is None else rounds
    check_rounds(rounds)
    _check_confidence(confidence, interval)
    circuit_noise_ = (
        noise if isinstance(noise, CircuitNoise) else circuit_noise(noise, p, qubit=qubit)
    )
    circuit = memory_circuit(canonical, distance=distance, rounds=rounds, noise=circuit_noise_)
    sampled = sample_decode_parallel(
        circuit,
        shots=shots,
        max_errors=max_errors,
        seed=seed,
        workers=workers,
        max_syndrome_weight=max_syndrome_weight,
        decoder=decoder,
    )
    return MemoryResult(
        family=canonical,
        distance=distance,
        rounds=rounds,
        p=float(p),
        noise=circuit_noise_,
        shots=sampled.shots,
        errors=sampled.errors,
        seconds=sampled.seconds,
        seed=seed,
        confidence=confidence,
        interval=interval,
        max_syndrome_weight=max_syndrome_weight,
        gave_up=sampled.gave_up,
        decoder=decoder,
        logical_qubits=logical_qubits(canonical, distance),
    )


def _check_confidence(confidence: float, interval: str) -> None:
    if isinstance(confidence, bool) or not isinstance(confidence, float) or not 0 < confidence < 1:
        raise _bad(f"confidence must be a number in (0, 1), got {confidence!r}")
    if interval not in INTERVALS:
        raise _bad(f"unknown interval {interval!r}; known: {', '.join(INTERVALS)}")


def threshold_scan(
    family: str,
    *,
    distances: Sequence[int],
    ps: Sequence[float],
    rounds: int | None = None,
    noise: str = "qubit",
    qubit: str | QubitParams = defaults.QUBIT,
    shots: int = 10_000,
    max_errors: int | None = None,
    seed: int | None = None,
    workers: int = 1,
    confidence: float = DEFAULT_CONFIDENCE,
    interval: str = "wilson",
    progress: Callable[[int, int], None] | None = None,
    max_syndrome_weight: int | None = None,
    decoder: str | None = None,
) -> tuple[MemoryResult, ...]:
    """Memory experiments at every (distance, p), distance-major; one seed per point.

    ``progress(done, total)`` is called after each point (the CLI's progress bar);
    ``max_syndrome_weight`` is every point's decoder limit and ``decoder`` its decoder
    (:func:`sample_decode`).

    ``rounds`` None runs ``d`` rounds at each distance. Each point's seed is
    drawn from ``seed`` by ``numpy.random.SeedSequence`` so points are independent.

    Raises:
        QECError: as :func:`run_memory`; ``QC103`` for empty lists.
    """
    if not distances or not ps:
        raise _bad("a threshold scan needs at least one distance and one p")
    canonical = experiment_family(family)
    for d in distances:
        check_distance(d, canonical)
    seeds = _seeds(seed, len(distances) * len(ps))
    results = []
    for i, (d, p) in enumerate((d, p) for d in distances for p in ps):
        results.append(
            run_memory(
                family,
                distance=d,
                p=p,
                rounds=rounds,
                noise=noise,
                qubit=qubit,
                shots=shots,
                max_errors=max_errors,
                seed=seeds[i],
                workers=workers,
                confidence=confidence,
                interval=interval,
                max_syndrome_weight=max_syndrome_weight,
                decoder=decoder,
            )
        )
        if progress is not None:
            progress(i + 1, len(seeds))
    return tuple(results)


@dataclass(frozen=True, slots=True, kw_only=True)
class FitPoint:
    """One observation for :func:`fit_threshold`: per-cycle rate at (d, p) and its log-sigma."""

    distance: int
    p: float
    rate: float
    sigma_log: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ThresholdFit:
    """The fit of ``P_L = a (p / p*) ** ((d + 1) // 2)`` (see :func:`fit_threshold`).

    Attributes:
        family: the code family.
        crossing_prefactor: ``a``.
        threshold: ``p*``.
        sigma_prefactor: one standard error of ``a``.
        sigma_threshold: one standard error of ``p*``.
        correlation: the correlation of the estimates of ``ln a`` and ``ln p*``.
        chi2: the weighted residual sum of squares.
        dof: degrees of freedom (points - 2).
        scaled: whether the standard errors were scaled up by ``sqrt(chi2 / dof) > 1``.
        points: the observations used.
    """

    family: str
    crossing_prefactor: float
    threshold: float
    sigma_prefactor: float
    sigma_threshold: float
    correlation: float
    chi2: float
    dof: int
    scaled: bool
    points: tuple[FitPoint, ...] = field(repr=False)

    def predict(self, p: float, distance: int) -> float:
        """The fitted per-cycle logical error rate at ``p`` and ``distance``."""
        return self.crossing_prefactor * (p / self.threshold) ** ((distance + 1) // 2)

    def calibration(self, *, instruction_set: str = GATE_BASED, source: str = "") -> Calibration:
        """The fit as a :class:`~qmk.qec.logical.Calibration` for the logical layer.

        Raises:
            QECError: ``QC103`` when the fitted values are out of a scheme's range
                (a above 0.5, p* at or above 1) or the family is not a profile family.
        """
        return Calibration(
            family=self.family,
            instruction_set=instruction_set,
            crossing_prefactor=self.crossing_prefactor,
            error_correction_threshold=self.threshold,
            crossing_prefactor_sigma=self.sigma_prefactor,
            error_correction_threshold_sigma=self.sigma_threshold,
            source=source,
        )

    def to_json(self) -> dict[str, Any]:
        """The fit as plain JSON."""
        return {
            "family": self.family,
            "crossing_prefactor": self.crossing_prefactor,
            "threshold": self.threshold,
            "sigma_prefactor": self.sigma_prefactor,
            "sigma_threshold": self.sigma_threshold,
            "correlation": self.correlation,
            "chi2": self.chi2,
            "dof": self.dof,
            "scaled": self.scaled,
            "points": [
                {"distance": q.distance, "p": q.p, "rate": q.rate, "sigma_log": q.sigma_log}
                for q in self.points
            ],
        }


def fit_points(results: Iterable[MemoryResult]) -> tuple[FitPoint, ...]:
    """The fit observations of ``results``: per-cycle rates of points with errors (of one
    logical qubit: :attr:`MemoryResult.per_cycle_per_qubit`).

    The variance of ``ln P`` is ``(1 - P) / (shots P)`` for a binomial rate
    ``P`` (the delta method), carried to the per-cycle rate unchanged, which is
    exact when ``rounds == d`` and first-order otherwise. Points with no errors
    (or a rate of 1/2 or more, past the threshold regime) are left out.
    """
    points = []
    for r in results:
        shot = r.shot_error_rate
        if r.errors == 0 or shot >= 0.5:
            continue
        sigma = math.sqrt((1 - shot) / (r.shots * shot))
        rate = r.per_cycle_per_qubit
        points.append(FitPoint(distance=r.distance, p=r.p, rate=rate, sigma_log=sigma))
    return tuple(points)


def fit_threshold(family: str, points: Sequence[FitPoint]) -> ThresholdFit:
    """Fit ``(a, p*)`` by weighted least squares in log space.

    ``ln P - k ln p = ln a - k ln p*`` with ``k = (d + 1) // 2`` is linear in
    ``(ln a, ln p*)``; each point weighs ``1 / sigma_log^2``. The standard
    errors come from the inverse normal matrix, scaled by ``sqrt(chi2 / dof)``
    when that exceeds 1 (the model does not describe the data to within the
    shot noise), and reach ``a`` and ``p*`` by the delta method.

    Raises:
        QECError: ``QC103`` with fewer than 3 points or fewer than two values of ``k``.
    """
    if len(points) < 3:
        raise _bad(
            f"a threshold fit needs at least 3 (d, p) points with logical errors, got "
            f"{len(points)}; take more shots or larger p"
        )
    ks = np.array([(q.distance + 1) // 2 for q in points], dtype=float)
    if len(set(ks.tolist())) < 2:
        raise _bad("a threshold fit needs distances with at least two values of (d + 1) // 2")
    y = np.array([math.log(q.rate) - k * math.log(q.p) for q, k in zip(points, ks, strict=True)])
    w = np.array([1 / q.sigma_log**2 for q in points])
    design = np.column_stack([np.ones_like(ks), -ks])
    normal = design.T @ (w[:, None] * design)
    cov = np.linalg.inv(normal)
    theta = cov @ (design.T @ (w * y))
    residual = y - design @ theta
    chi2 = float(np.sum(w * residual**2))
    dof = len(points) - 2
    scaled = dof > 0 and chi2 / dof > 1
    if scaled:
        cov = cov * (chi2 / dof)
    a, p_star = math.exp(theta[0]), math.exp(theta[1])
    return ThresholdFit(
        family=family,
        crossing_prefactor=a,
        threshold=p_star,
        sigma_prefactor=a * math.sqrt(cov[0, 0]),
        sigma_threshold=p_star * math.sqrt(cov[1, 1]),
        correlation=float(cov[0, 1] / math.sqrt(cov[0, 0] * cov[1, 1])),
        chi2=chi2,
        dof=dof,
        scaled=bool(scaled),
        points=tuple(points),
    )


def fit_results(results: Sequence[MemoryResult]) -> ThresholdFit:
    """:func:`fit_threshold` over :func:`fit_points` of ``results`` (one family); of one
    SHYPS block, :func:`fit_one_distance` at the scheme's stated ``p*``."""
    families = {r.family for r in results}
    if len(families) != 1:
        raise _bad(f"fit one family at a time, got {sorted(families)}")
    family = families.pop()
    points = fit_points(results)
    if family == "SHYPS" and len({(q.distance + 1) // 2 for q in points}) == 1:
        from qmk.qec.codes import scheme_for

        stated = scheme_for(family, GATE_BASED).error_correction_threshold
        return fit_one_distance(family, points, threshold=stated)
    return fit_threshold(family, points)


def fit_one_distance(family: str, points: Sequence[FitPoint], *, threshold: float) -> ThresholdFit:
    """Fit ``P_L = a (p / p*) ** k`` (``k = (d + 1) // 2``) at one distance with ``p*``
    given: one distance fixes only ``C = a / p* ** k``, so ``a = C p* ** k``.

    ``ln C`` is the weighted mean of ``ln P - k ln p`` (weights ``1 / sigma_log^2``);
    its standard error, scaled by ``sqrt(chi2 / dof)`` when that exceeds 1, reaches
    ``a`` by the delta method. ``p*`` is not fitted (its sigma is 0): other distances
    follow from the QRE form's exponent, an extrapolation.

    Raises:
        QECError: ``QC103`` with fewer than 2 points or points at two values of ``k``.
    """
    ks = {(q.distance + 1) // 2 for q in points}
    if len(points) < 2 or len(ks) != 1:
        raise _bad(
            f"a one-distance fit needs at least 2 points with logical errors at one "
            f"distance, got {len(points)} at (d + 1) // 2 in {sorted(ks)}"
        )
    k = ks.pop()
    y = np.array([math.log(q.rate) - k * math.log(q.p) for q in points])
    w = np.array([1 / q.sigma_log**2 for q in points])
    ln_c = float(np.sum(w * y) / np.sum(w))
    variance = 1 / float(np.sum(w))
    chi2 = float(np.sum(w * (y - ln_c) ** 2))
    dof = len(points) - 1
    scaled = dof > 0 and chi2 / dof > 1
    if scaled:
        variance *= chi2 / dof
    a = math.exp(ln_c + k * math.log(threshold))
    return ThresholdFit(
        family=family,
        crossing_prefactor=a,
        threshold=threshold,
        sigma_prefactor=a * math.sqrt(variance),
        sigma_threshold=0.0,
        correlation=0.0,
        chi2=chi2,
        dof=dof,
        scaled=bool(scaled),
        points=tuple(points),
    )
