"""QEC memory experiments on a neutral-atom device profile, with atom loss as erasure.

Public API: :func:`memory_experiment` -> :class:`QecResult` (``qmk device qec``),
:data:`CODES`.

How one experiment runs:

1. The memory-Z circuit of the code (:func:`qmk.experiments.circuits.memory_circuit`, the
   same circuits ``qmk qec threshold`` samples) is built noiseless; its gates become a QVM
   program (``R`` after the first layer: ``RESET``; ``MR``: a measurement then a reset), its
   detectors and observable lists of measurement indices.
2. The program runs on the ``neutral-atom`` target (:mod:`.target`: the QEC memory
   experiments' target, as theirs is a program of physical qubits). It is compiled onto
   the profile (:func:`~.compile.compile_program`: CZ and native one-qubit gates,
   placement, routing by moves or SWAPs). It runs on the device's emulator
   (:func:`~.emulator.run_job`) with the profile's physical noise: gate Paulis,
   correlated two-qubit errors, idle dephasing and damping over the scheduled idle times
   (measurements take the profile's ``measurement_duration_ns``), SPAM, and **atom loss**.
   An atom lost at a gate, while idle or at a measurement stays lost; its gates are
   skipped and its measurements read -1. A lost bit is read as a fair coin (an erasure).
   The stabilizer backend (stim) samples it; ``loss=False`` runs the same profile with
   every loss rate set to 0.
3. Detection events and the observable are computed from the recorded bits and decoded by
   pymatching on the detector error model of the same circuit under
   :class:`~qmk.experiments.circuits.CircuitNoise` matched to the profile
   (:func:`matched_noise`); the decoder sees no erasure flags (a loss is decoded as the
   errors it causes).
4. The logical error per shot becomes a rate per round as the existing experiments convert
   it (:func:`qmk.experiments.memory.per_piece`), with a Wilson interval.

>>> r = memory_experiment("repetition", distance=3, rounds=2, device="ideal_small_array",
...                       shots=200, seed=1)
>>> r.errors, r.detection_events, r.atoms
(0, 0, 5)
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.noise import NoiseModel, RatePair
from qmk.devices.neutral_atom.profiles import Profile, load_profile
from qmk.experiments.circuits import (
    CircuitNoise,
    check_distance,
    check_rounds,
    experiment_family,
    memory_circuit,
)
from qmk.experiments.memory import DEFAULT_CONFIDENCE, per_piece, wilson_interval
from qmk.frontends.stim_fold import read_folded
from qmk.qvm.errors import UnrollError
from qmk.qvm.fold import unroll, unrolled_size
from qmk.qvm.graph import Graph, Node, Resources
from qmk.qvm.limits import Limits

#: The codes ``qmk device qec --code`` takes, and their experiment families.
CODES = {"repetition": "repetition_code", "surface": "surface_code"}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Experiment:
    graph: Graph
    detectors: tuple[tuple[int, ...], ...]
    observable: tuple[int, ...]
    measurements: int


def _check_size(family: str, distance: int, rounds: int) -> None:
    """Refuse rounds whose circuit unrolls past ``Limits.max_unrolled_nodes`` before it
    is built (the builders write every round, and the device compiles gate by gate):
    the size of ``rounds`` from those of 2 and 3 rounds, as every round after the first
    is alike.

    Raises:
        UnrollError: ``QV505`` past the limit.
    """
    limit = Limits().max_unrolled_nodes
    if rounds <= 3 or limit is None:
        return
    two, three = (
        unrolled_size(read_folded(memory_circuit(family, distance=distance, rounds=r)))
        for r in (2, 3)
    )
    size = two + (rounds - 2) * (three - two)
    if size > limit:
        raise UnrollError.of(
            "unrolled-too-large",
            f"{rounds} rounds of {family} at distance {distance} unroll to {size} nodes, "
            f"over the limit of {limit} (Limits.max_unrolled_nodes); the device compiles "
            "them one at a time",
            limit=limit,
            size=size,
        )


def _to_program(circuit: Any) -> _Experiment:
    """The noiseless stim memory circuit as a QVM program, its detectors and observable:
    the circuit as the stim reader reads it (:func:`~qmk.frontends.stim_fold.read_folded`),
    unrolled, its annotations turned into lists of measurement indices, and the opening
    ``R`` left out (the atoms start in |0>)."""
    # the device compiles gate by gate: refused past the unrolling limit (QV505), not built
    flat = unroll(read_folded(circuit, name="memory"), max_nodes=Limits().max_unrolled_nodes)
    nodes: list[Node] = []
    events: list[str] = []
    detectors: list[tuple[int, ...]] = []
    observable: list[int] = []
    started = False  # past the first TICK: a reset is no longer the opening one
    for row in flat.nodes:
        if row.op == "DETECTOR":
            detectors.append(tuple(len(events) + r for r in row.args["rec"]))
        elif row.op == "OBSERVABLE_INCLUDE":
            observable.extend(len(events) + r for r in row.args["rec"])
        elif row.op in ("TICK", "QUBIT_COORDS", "SHIFT_COORDS", "FREE_LQ"):
            started = started or row.op == "TICK"
        elif row.op != "RESET" or started:
            produces = tuple(f"m{len(events) + k}" for k in range(len(row.produces)))
            events.extend(produces)
            name = f"n{len(nodes)}" if nodes else "alloc"
            nodes.append(Node(id=name, op=row.op, args=row.args, vqs=row.vqs, produces=produces))
    graph = Graph(
        version="0.2",
        nodes=tuple(nodes),
        resources=Resources(vqs=flat.resources.vqs, chs=(), events=tuple(events)),
        caps=("CAP_ALLOC",),
    )
    return _Experiment(
        graph=graph,
        detectors=tuple(detectors),
        observable=tuple(observable),
        measurements=len(events),
    )


def without_loss(noise: NoiseModel) -> NoiseModel:
    """``noise`` with every loss rate 0 (at measurement, per gate, idle)."""
    return replace(noise, p_loss=0.0, loss_runtime=RatePair())


def matched_noise(profile: Profile) -> CircuitNoise:
    """The profile's physical noise as the circuit-level noise of the experiments (what the
    decoder weighs errors by): the one- and two-qubit gate error totals, the readout and
    prep flips, idle error over one two-qubit gate time, loss counted as half an error."""
    noise, hw = profile.noise, profile.hardware
    g = noise.gate
    correlated = sum(sum(row) for row in noise.correlated_gate) - noise.correlated_gate[0][0]
    loss_gate = noise.loss_runtime.per_gate
    p1 = g.single_qubit.total + noise.amplitude_damping.per_gate / 2 + loss_gate / 2
    keep = (1 - g.two_qubit_control.total) * (1 - g.two_qubit_target.total) * (1 - correlated)
    p2 = 1 - keep * (1 - loss_gate / 2) ** 2
    readout = (noise.readout.p_flip0_to_1 + noise.readout.p_flip1_to_0) / 2
    measure = readout + noise.p_quantum_flip + noise.p_loss / 2
    seconds = hw.gate_duration_ns("CZ") * 1e-9
    rate = (
        noise.idle_rate
        + noise.amplitude_damping.idle_rate / 2
        + noise.loss_runtime.idle_rate / 2
        + noise.phase.idle**2 * seconds / 6
    )
    idle = -math.expm1(-rate * seconds)
    cap = 0.49
    return CircuitNoise(
        after_1q=min(cap, p1),
        after_2q=min(cap, p2),
        measure_flip=min(cap, measure),
        reset_flip=min(cap, noise.p_prep),
        idle=min(cap, idle),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class QecResult:
    """One memory experiment on a device profile.

    Attributes:
        code, family, distance, rounds, profile: what ran where.
        loss: whether the profile's loss rates were on.
        shots, errors: shots, and those whose decoded observable was wrong.
        detection_events: detectors that fired, over all shots.
        lost_bits: measurement bits read from lost atoms (decoded as coin flips).
        atoms: atoms the compiled program allocates; ``moves``, ``swaps``: its routing.
        duration_ns: the program time of one shot (the device's schedule).
        backend: the emulator backend; ``seed``: the run's seed.
        seconds: wall time (compile, emulate, decode).
    """

    code: str
    family: str
    distance: int
    rounds: int
    profile: str
    loss: bool
    shots: int
    errors: int
    detection_events: int
    lost_bits: int
    atoms: int
    moves: int
    swaps: int
    duration_ns: float
    backend: str
    seed: int
    seconds: float
    confidence: float = DEFAULT_CONFIDENCE

    @property
    def shot_error_rate(self) -> float:
        return self.errors / self.shots

    @property
    def per_round(self) -> float:
        """The logical error per syndrome round (``1 - 2P = (1 - 2q)^rounds``)."""
        return per_piece(self.shot_error_rate, self.rounds)

    @property
    def per_round_interval(self) -> tuple[float, float]:
        low, high = wilson_interval(self.errors, self.shots, self.confidence)
        return per_piece(low, self.rounds), per_piece(high, self.rounds)

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "family": self.family,
            "distance": self.distance,
            "rounds": self.rounds,
            "profile": self.profile,
            "loss": self.loss,
            "shots": self.shots,
            "errors": self.errors,
            "shot_error_rate": self.shot_error_rate,
            "per_round": self.per_round,
            "per_round_interval": list(self.per_round_interval),
            "confidence": self.confidence,
            "detection_events": self.detection_events,
            "lost_bits": self.lost_bits,
            "atoms": self.atoms,
            "moves": self.moves,
            "swaps": self.swaps,
            "duration_ns": self.duration_ns,
            "backend": self.backend,
            "seed": self.seed,
            "seconds": round(self.seconds, 6),
        }


def _decode(circuit: Any, detections: np.ndarray, observables: np.ndarray) -> int:
    """Logical errors: shots whose observable flip the matcher does not predict."""
    import pymatching

    try:
        dem = circuit.detector_error_model(decompose_errors=True)
    except ValueError:
        dem = circuit.detector_error_model(
            decompose_errors=True, ignore_decomposition_failures=True
        )
    if dem.num_errors == 0:  # a noiseless profile: nothing to weigh, predict no flip
        predicted = np.zeros_like(observables)
    else:
        matching = pymatching.Matching.from_detector_error_model(dem)
        predicted = matching.decode_batch(detections)
    return int(np.count_nonzero(np.any(predicted != observables, axis=1)))


def memory_experiment(
    code: str,
    *,
    distance: int,
    rounds: int | None = None,
    device: str | os.PathLike[str] | Profile = "benchmark_chain",
    shots: int = 10_000,
    seed: int | None = None,
    loss: bool = True,
    routing: str = "auto",
    confidence: float = DEFAULT_CONFIDENCE,
) -> QecResult:
    """Run a memory-Z experiment of ``code`` on a device profile (see the module docstring).

    Args:
        code: ``repetition`` or ``surface`` (or their family names).
        distance: an odd distance >= 3; ``rounds``: syndrome rounds (default: distance).
        device: a preset, a profile file or a :class:`Profile`.
        shots, seed: the emulator's (a seed is drawn when None, and reported).
        loss: keep the profile's atom loss (False: every loss rate 0).
        routing: how the compiler routes (``auto``, ``move``, ``swap``).

    Raises:
        QECError: ``QC102``/``QC103``/``QC110`` for the code, distance or rounds.
        DeviceError: ``QD302`` when the code needs more atoms than the profile has, or a
            compile or device refusal.
        UnrollError: ``QV505`` rounds whose circuit unrolls past
            ``Limits.max_unrolled_nodes`` (nothing built).
    """
    import time

    from qmk.devices.neutral_atom.job import STABILIZER
    from qmk.devices.neutral_atom.target import NAME, NeutralAtomTarget
    from qmk.execution.request import RunRequest, draw_seed, program_digest
    from qmk.execution.result import LOST

    started = time.perf_counter()
    family = experiment_family(CODES.get(code, code))
    if family not in CODES.values():
        raise DeviceError.of(
            "compile-unsupported",
            f"device QEC experiments run {', '.join(CODES)}; not {family}",
        )
    check_distance(distance)
    rounds = distance if rounds is None else rounds
    check_rounds(rounds)
    _check_size(family, distance, rounds)
    profile = device if isinstance(device, Profile) else load_profile(os.fspath(device))
    if not loss:
        profile = replace(profile, noise=without_loss(profile.noise))
    run_seed = draw_seed() if seed is None else seed
    experiment = _to_program(memory_circuit(family, distance=distance, rounds=rounds))
    # run through the neutral-atom target: the experiment is a QVM program of physical
    # qubits, compiled onto the profile and run on its emulator as any device run
    target = NeutralAtomTarget()
    request = RunRequest.build(
        program_digest=program_digest(json.dumps(experiment.graph.to_json(), sort_keys=True)),
        target=NAME,
        target_options={"routing": routing, "backend": STABILIZER},
        shots=shots,
        seed=run_seed,
    )
    executable = target.compile(target.read(experiment.graph), request, local=True, profile=profile)
    report = executable.report
    assert report is not None  # a compiled program's
    result = executable.run(shots, run_seed)
    index = {event: k for k, event in enumerate(result.events)}
    raw = result.bits[:, [index[f"m{k}"] for k in range(experiment.measurements)]]
    lost = raw == LOST
    bits = np.where(lost, -1, raw).astype(np.int8)
    coins = np.random.default_rng([run_seed, 7]).integers(0, 2, size=bits.shape, dtype=np.int8)
    values = np.where(lost, coins, bits).astype(np.uint8)
    detections = np.stack(
        [np.bitwise_xor.reduce(values[:, list(d)], axis=1) for d in experiment.detectors], axis=1
    ).astype(bool)
    observables = np.bitwise_xor.reduce(values[:, list(experiment.observable)], axis=1)
    observables = observables.reshape(-1, 1).astype(bool)
    decoder = memory_circuit(family, distance=distance, rounds=rounds, noise=matched_noise(profile))
    errors = _decode(decoder, detections, observables)
    return QecResult(
        code=next((k for k, v in CODES.items() if v == family), family),
        family=family,
        distance=distance,
        rounds=rounds,
        profile=profile.name,
        loss=loss,
        shots=shots,
        errors=errors,
        detection_events=int(detections.sum()),
        lost_bits=int(lost.sum()),
        atoms=report.atoms,
        moves=report.moves,
        swaps=report.swaps,
        duration_ns=report.duration_ns,
        backend=result.engine,
        seed=run_seed,
        seconds=time.perf_counter() - started,
        confidence=confidence,
    )


__all__ = ["CODES", "QecResult", "matched_noise", "memory_experiment", "without_loss"]
