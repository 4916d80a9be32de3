"""Error mitigation on neutral-atom device jobs: readout correction and zero-noise extrapolation.

Public API:

- :func:`parse_observable` -- ``Z0Z1`` (or ``Z0 Z2``): a Z string on the job's measured
  bits (bit ``k`` is the ``k``-th recorded bit, Measures in program order, as
  :meth:`~.emulator.Result.counts` keys them); its value on a shot is the parity
  ``(-1)^(sum of the chosen bits)``;
- :func:`calibrate_readout` -- run two calibration jobs on the job's own device and noise
  (every measured atom prepared in 0, and flipped by an ``X`` gate to 1, then measured in
  the job's column order) and estimate a per-bit confusion matrix ``A[b, a] = P(read b |
  prepared a)`` (the tensored model);
- :func:`apply_inverse` -- the tensored inverse on a probability vector: reshape to
  ``(2,) * n`` and contract each axis with its 2x2 inverse (exact; no ``2^n x 2^n`` matrix);
- :func:`scale_noise` -- the noise model with its gate and idle error rates times a factor
  (readout, preparation and loss kept as they are); ``QD112`` when a probability would
  exceed 1;
- :func:`richardson` -- the value at scale 0 of the polynomial through the points (degree
  ``len(scales) - 1``), or of their least-squares line (``linear=True``);
- :func:`mitigate` -- the whole run: raw, readout-corrected and/or ZNE expectations, as a
  :class:`Mitigation`.

Implemented directly with numpy rather than with mitiq: the formulas are a few lines
(a 2x2 inverse per bit, a Vandermonde solve), mitiq would be a new dependency with its own
pins, and its ZNE folds gates of a circuit where this device scales its own noise model
(which mitiq cannot reach).

Shots in which any of the observable's (for readout: any measured) bits read a lost atom
are dropped (post-selection) in raw and mitigated figures alike, and counted in
``discarded``; calibration shots are post-selected the same way.

After the inverse, the corrected vector can have small negative entries (shot noise); they
are clipped to 0 and the vector renormalised (not a least-squares projection onto the
simplex: the clip is what ``corrected_counts`` shows, and it is the common choice).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.emulator import Result, run_job
from qmk.devices.neutral_atom.isa import Instruction, OpKind
from qmk.devices.neutral_atom.job import Job, parse_job
from qmk.devices.neutral_atom.noise import NoiseModel

#: What ``--mitigate`` accepts.
METHODS: tuple[str, ...] = ("readout", "zne", "both")
#: The default noise-scale factors of zero-noise extrapolation.
DEFAULT_SCALES: tuple[float, ...] = (1.0, 2.0, 3.0)
_TERM = re.compile(r"Z(\d+)")


def _invalid(message: str, **details: Any) -> DeviceError:
    return DeviceError.of("mitigation-invalid", message, **details)


def parse_observable(text: str, n_bits: int) -> tuple[int, ...]:
    """The bits of a Z string such as ``Z0Z1`` (spaces allowed), checked against ``n_bits``.

    Raises:
        DeviceError: ``QD112`` for a malformed string, a repeated bit or a bit past the
            job's measured bits.

    >>> parse_observable("Z0 Z2", 3)
    (0, 2)
    """
    compact = text.replace(" ", "")
    if not compact or _TERM.sub("", compact):
        raise _invalid(
            f"observable {text!r} is not a Z string such as Z0Z1 (Z and a bit index, repeated)"
        )
    bits = tuple(int(m) for m in _TERM.findall(compact))
    if len(set(bits)) != len(bits):
        raise _invalid(f"observable {text!r} names a bit twice")
    past = [b for b in bits if b >= n_bits]
    if past:
        raise _invalid(
            f"observable {text!r} names bit {past[0]}, but the job records {n_bits} bits "
            f"(0..{n_bits - 1})"
        )
    return bits


def _parity(bits: np.ndarray, chosen: Sequence[int]) -> tuple[np.ndarray, int]:
    """Each kept shot's parity sign, and how many shots were dropped (a lost chosen bit)."""
    sub = bits[:, list(chosen)]
    kept = np.all(sub >= 0, axis=1)
    signs = 1.0 - 2.0 * (sub[kept].sum(axis=1) % 2)
    return signs, int((~kept).sum())


def _distribution(bits: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The empirical distribution over ``2^n`` outcomes (bit 0 the most significant), the
    number of kept shots and of dropped ones (any lost bit)."""
    kept = np.all(bits >= 0, axis=1)
    rows = bits[kept].astype(np.int64)
    n = bits.shape[1]
    index = rows @ (1 << np.arange(n - 1, -1, -1, dtype=np.int64)) if n else np.zeros(0)
    total = int(kept.sum())
    if total == 0:
        raise _invalid("every shot read a lost atom: no outcome is left to mitigate")
    hist = np.bincount(index.astype(np.int64), minlength=1 << n).astype(float) / total
    return hist, total, int((~kept).sum())


def expectation(probs: np.ndarray, chosen: Sequence[int], n_bits: int) -> float:
    """The Z string's expectation on a distribution over ``n_bits`` bits (bit 0 first)."""
    tensor = probs.reshape((2,) * n_bits)
    for axis in chosen:
        sign = np.ones(2)
        sign[1] = -1.0
        shape = [1] * n_bits
        shape[axis] = 2
        tensor = tensor * sign.reshape(shape)
    return float(tensor.sum())


def apply_inverse(probs: np.ndarray, confusions: Sequence[np.ndarray]) -> np.ndarray:
    """``probs`` (length ``2^n``, bit 0 most significant) times the inverse of the tensor
    product of ``confusions`` (one 2x2 ``A[read, prepared]`` per bit), unclipped: the
    inverses' tensored confusion."""
    return apply_confusion(probs, [np.linalg.inv(np.asarray(m, dtype=float)) for m in confusions])


def apply_confusion(probs: np.ndarray, confusions: Sequence[np.ndarray]) -> np.ndarray:
    """``probs`` through the tensored confusion (what a noisy readout does to it)."""
    n = len(confusions)
    tensor = np.asarray(probs, dtype=float).reshape((2,) * n)
    for axis, matrix in enumerate(confusions):
        tensor = np.moveaxis(np.tensordot(np.asarray(matrix), tensor, axes=([1], [axis])), 0, axis)
    return tensor.reshape(-1)


def clip_normalise(probs: np.ndarray) -> np.ndarray:
    """Negative entries set to 0, then the vector renormalised to sum 1."""
    clipped = np.clip(probs, 0.0, None)
    return clipped / clipped.sum()


def _measured_atoms(job: Job) -> tuple[int, ...]:
    atoms = tuple(a for ins in job.program if ins.kind is OpKind.MEASURE for a in ins.targets)
    if len(set(atoms)) != len(atoms):
        raise _invalid(
            "readout mitigation needs each atom measured once; this job measures an atom "
            "more than once (mid-circuit measurement)"
        )
    return atoms


def _calibration_job(job: Job, atoms: Sequence[int], flipped: bool) -> Job:
    program: list[Instruction] = [Instruction(index=0, op="AllocArray", n_qubits=job.n_atoms)]
    if flipped:
        program += [
            Instruction(index=len(program) + k, op="ApplyGate", gate="X", targets=(a,))
            for k, a in enumerate(atoms)
        ]
    program.append(Instruction(index=len(program), op="Measure", targets=tuple(atoms)))
    # Its own seed (the job's + 1 or + 2): calibration shots independent of the job's.
    seed = None if job.seed is None else (job.seed + 1 + int(flipped)) % 2**63
    return replace(job, job_id=f"{job.job_id}-cal{int(flipped)}", program=tuple(program), seed=seed)


def calibrate_readout(job: Job) -> tuple[np.ndarray, ...]:
    """Per measured bit, ``A[b, a] = P(read b | prepared a)`` from two calibration runs
    (all 0; all flipped by X) on ``job``'s device, noise and shots (seeds: the job's + 1
    and + 2)."""
    atoms = _measured_atoms(job)
    columns: list[np.ndarray] = []
    for flipped in (False, True):
        bits = run_job(_calibration_job(job, atoms, flipped)).bits
        ones = []
        for k in range(len(atoms)):
            read = bits[:, k][bits[:, k] >= 0]
            if read.size == 0:
                raise _invalid(f"calibration lost atom {atoms[k]} in every shot")
            ones.append(float(read.mean()))
        columns.append(np.array(ones))
    out = []
    for k in range(len(atoms)):
        p1_given0, p1_given1 = columns[0][k], columns[1][k]
        matrix = np.array([[1 - p1_given0, 1 - p1_given1], [p1_given0, p1_given1]])
        if abs(np.linalg.det(matrix)) < 1e-9:
            raise _invalid(f"bit {k}'s calibrated confusion matrix is singular: {matrix.tolist()}")
        out.append(matrix)
    return tuple(out)


def scale_noise(model: NoiseModel, factor: float) -> NoiseModel:
    """``model`` with its gate and idle error rates times ``factor``: the gate Pauli
    channels, the correlated two-qubit matrix, ``idle_rate``, the phase kicks and
    amplitude damping. Readout, ``p_quantum_flip``, ``p_prep`` and loss stay (they are
    state preparation and measurement, which readout mitigation treats, and loss, which is
    post-selected away).

    Raises:
        DeviceError: ``QD112`` for a factor that is not finite and positive, or one that
            makes a probability exceed 1.
    """
    if not (math.isfinite(factor) and factor > 0):
        raise _invalid(f"noise scale {factor!r} is not a positive number")
    data = model.to_json()
    scaled = dict(data)
    scaled["gate"] = {
        name: {k: v * factor for k, v in channel.items()} for name, channel in data["gate"].items()
    }
    scaled["correlated_gate"] = {
        "matrix": [[v * factor for v in row] for row in data["correlated_gate"]["matrix"]]
    }
    scaled["idle_rate"] = data["idle_rate"] * factor
    scaled["phase"] = {k: v * factor for k, v in data["phase"].items()}
    scaled["amplitude_damping"] = {k: v * factor for k, v in data["amplitude_damping"].items()}
    try:
        return NoiseModel.from_json(scaled)
    except DeviceError as exc:
        raise _invalid(
            f"noise scale {factor:g} makes the noise model invalid: {exc.message}",
            factor=factor,
        ) from None


def richardson(scales: Sequence[float], values: Sequence[float], *, linear: bool = False) -> float:
    """The value at scale 0: of the polynomial of degree ``len(scales) - 1`` through the
    points (Richardson), or of the least-squares line through them (``linear``)."""
    x = np.asarray(scales, dtype=float)
    y = np.asarray(values, dtype=float)
    degree = 1 if linear else len(x) - 1
    coefficients = np.polyfit(x, y, degree)
    return float(coefficients[-1])


def parse_scales(text: str) -> tuple[float, ...]:
    """``1,2,3`` as factors: at least two, distinct, each >= 1, the first 1.

    Raises:
        DeviceError: ``QD112`` otherwise.
    """
    try:
        scales = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise _invalid(f"--zne-scales {text!r} is not a comma-separated list of numbers") from None
    if (
        len(scales) < 2
        or len(set(scales)) != len(scales)
        or scales[0] != 1.0
        or any(not math.isfinite(s) or s < 1.0 for s in scales)
    ):
        raise _invalid(
            f"--zne-scales {text!r}: give at least two distinct factors >= 1, the first 1 "
            "(the device's own noise), e.g. 1,2,3"
        )
    return scales


@dataclass(frozen=True, slots=True, kw_only=True)
class Mitigation:
    """What :func:`mitigate` measured (expectations of the Z string ``observable``)."""

    method: str
    observable: str
    bits: tuple[int, ...]
    shots: int
    seed: int
    raw: float
    raw_stderr: float
    discarded: int
    readout: float | None = None
    confusion: tuple[tuple[tuple[float, ...], ...], ...] = ()
    corrected_counts: Mapping[str, float] | None = None
    scales: tuple[float, ...] = ()
    scaled: tuple[float, ...] = ()
    zne: float | None = None
    extrapolation: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "observable": self.observable,
            "bits": list(self.bits),
            "shots": self.shots,
            "seed": self.seed,
            "raw": self.raw,
            "raw_stderr": self.raw_stderr,
            "discarded": self.discarded,
        }
        if self.readout is not None:
            out["readout"] = self.readout
            out["confusion"] = [[list(r) for r in m] for m in self.confusion]
            out["corrected_counts"] = dict(self.corrected_counts or {})
        if self.zne is not None:
            out["scales"] = list(self.scales)
            out["scaled"] = list(self.scaled)
            out["zne"] = self.zne
            out["extrapolation"] = self.extrapolation
        return out


def _readout_value(
    bits: np.ndarray, confusions: Sequence[np.ndarray], chosen: Sequence[int]
) -> tuple[float, np.ndarray, int]:
    hist, kept, _ = _distribution(bits)
    corrected = clip_normalise(apply_inverse(hist, confusions))
    return expectation(corrected, chosen, bits.shape[1]), corrected, kept


def mitigate(
    job: Job | Mapping[str, Any],
    observable: str,
    *,
    method: str = "both",
    scales: Sequence[float] = DEFAULT_SCALES,
    linear: bool = False,
    shots: int | None = None,
    seed: int | None = None,
    device: str | None = None,
    backend: str | None = None,
) -> Mitigation:
    """Run ``job`` and mitigate the expectation of the Z string ``observable``.

    ``readout``: the counts corrected by the inverse calibrated confusion; ``zne``: the job
    run at each noise scale (same seed) and the expectations extrapolated to 0; ``both``:
    each scale's counts readout-corrected before extrapolating. Calibration and scaled runs
    use the job's shots and seed.

    Raises:
        DeviceError: ``QD112`` for a bad method, observable or scale; the job's own ``QD``
            errors as :func:`~.emulator.run_job`.
    """
    if method not in METHODS:
        raise _invalid(f"mitigation {method!r} is not one of {', '.join(METHODS)}")
    parsed = (
        job
        if isinstance(job, Job)
        else parse_job(job, preset=device, shots=shots, seed=seed, device_id=backend)
    )
    if parsed.seed is None:
        from qmk.execution.request import draw_seed

        parsed = replace(parsed, seed=draw_seed())
    if any(ins.kind is OpKind.EVOLVE for ins in parsed.program):
        raise _invalid("mitigation runs digital jobs only; this job has an analog Evolve")
    result: Result = run_job(parsed)
    n_bits = result.bits.shape[1]
    chosen = parse_observable(observable, n_bits)
    signs, discarded = _parity(result.bits, chosen)
    if signs.size == 0:
        raise _invalid("every shot lost an atom the observable reads")
    raw = float(signs.mean())
    stderr = float(signs.std(ddof=1) / math.sqrt(signs.size)) if signs.size > 1 else math.inf
    fields: dict[str, Any] = {}
    confusions: tuple[np.ndarray, ...] = ()
    if method in ("readout", "both"):
        confusions = calibrate_readout(parsed)
        value, corrected, kept = _readout_value(result.bits, confusions, chosen)
        fields["readout"] = value
        fields["confusion"] = tuple(
            tuple(tuple(float(v) for v in r) for r in m) for m in confusions
        )
        fields["corrected_counts"] = {
            format(i, f"0{n_bits}b"): round(float(p) * kept, 3)
            for i, p in enumerate(corrected)
            if p > 0
        }
    if method in ("zne", "both"):
        values = []
        for factor in scales:
            scaled_job = replace(parsed, noise=scale_noise(parsed.noise, factor))
            bits = result.bits if factor == 1.0 else run_job(scaled_job).bits
            if method == "both":
                values.append(_readout_value(bits, confusions, chosen)[0])
            else:
                scaled_signs, _ = _parity(bits, chosen)
                values.append(float(scaled_signs.mean()))
        fields["scales"] = tuple(float(s) for s in scales)
        fields["scaled"] = tuple(values)
        fields["zne"] = richardson(scales, values, linear=linear)
        fields["extrapolation"] = "linear" if linear else f"richardson (degree {len(scales) - 1})"
    return Mitigation(
        method=method,
        observable=observable,
        bits=chosen,
        shots=result.shots,
        seed=result.seed,
        raw=raw,
        raw_stderr=stderr,
        discarded=discarded,
        **fields,
    )


__all__ = [
    "DEFAULT_SCALES",
    "METHODS",
    "Mitigation",
    "apply_confusion",
    "apply_inverse",
    "calibrate_readout",
    "clip_normalise",
    "expectation",
    "mitigate",
    "parse_observable",
    "parse_scales",
    "richardson",
    "scale_noise",
]
