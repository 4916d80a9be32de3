"""``qmk qec``: QEC memory experiments, threshold scans and calibration of the logical model.

- ``qmk qec threshold --code surface_code --d 3,5,7 --p 0.001:0.01`` runs memory
  experiments at every (d, p) and prints the logical error per round with
  confidence intervals; ``--plot out.png`` also draws them.
- ``qmk qec calibrate --code surface_code`` runs a scan below threshold, fits the
  scheme's (a, p*) and prints the fit; ``--output FILE`` writes a calibration
  JSON that ``qmk.qec.logical.Calibration.load`` reads.
- ``qmk qec distill --protocol 15-to-1 --input-error 0.01 --shots 1000000 --seed 1``
  simulates a magic-state distillation unit in stim and prints its acceptance and
  output error rates with 95% Wilson intervals, beside the exact polynomial and the
  estimator's formula.

Bad arguments are one line on stderr with a ``QC`` code and exit status 2.
See ``docs/qec_experiments.md``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, TextIO

from qmk import defaults
from qmk.commands import AddCommand
from qmk.qec.errors import QECError
from qmk.qec.errors import bad_parameter as _bad

#: Default p ranges of ``calibrate``, below each family's threshold.
CALIBRATE_P: dict[str, str] = {
    "surface_code": "0.002:0.006",
    "bacon_shor": "0.0005:0.002",
    "repetition_code": "0.005:0.02",
    "SHYPS": "0.0002:0.001",
}
#: Default distances of ``calibrate``: Bacon-Shor's law has three parameters; SHYPS's
#: [[49, 9, 4]] block (the [[225, 16, 8]] one decodes slowly: see docs/qec.md).
CALIBRATE_D: dict[str, str] = {"bacon_shor": "3,5,7", "SHYPS": "4"}


def _ints(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise _bad(f"{option} takes whole numbers separated by commas, got {text!r}") from None
    if not values:
        raise _bad(f"{option} needs at least one value")
    return values


def _float(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _bad(f"{option}: not a number: {text!r}") from None
    if not math.isfinite(value) or not 0 < value < 0.5:
        raise _bad(f"{option}: error rates must lie in (0, 0.5), got {text!r}")
    return value


def parse_ps(text: str, points: int) -> list[float]:
    """``LOW:HIGH`` as ``points`` log-spaced rates, or a comma-separated list.

    >>> [round(p, 4) for p in parse_ps("0.001:0.01", 3)]
    [0.001, 0.0032, 0.01]
    >>> parse_ps("0.001,0.002", 9)
    [0.001, 0.002]
    """
    if ":" in text:
        low_text, _, high_text = text.partition(":")
        low, high = _float(low_text, "--p"), _float(high_text, "--p")
        if low >= high:
            raise _bad(f"--p {text}: the range's low end must be below its high end")
        if points == 1:
            return [low]
        step = (math.log(high) - math.log(low)) / (points - 1)
        return [math.exp(math.log(low) + i * step) for i in range(points)]
    values = [_float(part, "--p") for part in text.split(",") if part.strip()]
    if not values:
        raise _bad("--p needs at least one rate")
    return values


def _count(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    try:
        number = int(str(value))
    except ValueError:
        raise _bad(f"{option} takes a whole number, got {value!r}") from None
    if number < 1:
        raise _bad(f"{option} must be at least 1, got {number}")
    return number


def _seed(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise _bad(f"--seed takes a whole number, got {value!r}") from None
    if not 0 <= number < 2**63:
        raise _bad(f"--seed must be in [0, 2**63), got {number}")
    return number


def _common(
    sub: argparse.ArgumentParser,
    *,
    p_default: str | None,
    d_default: str | None = "3,5",
    code_default: str | None = "surface_code",
    noise_default: str | None = "qubit",
) -> None:
    sub.add_argument(
        "--code",
        default=code_default,
        metavar="FAMILY",
        help="code family: a profile's family or any of its aliases (surfaceCode, ...), or "
        "repetition_code",
    )
    sub.add_argument(
        "--d",
        default=d_default,
        metavar="D,D,...",
        help="odd distances (3,5; calibrate bacon_shor: 3,5,7); SHYPS: its block's, 4 or 8",
    )
    sub.add_argument(
        "--p",
        default=p_default,
        metavar="LOW:HIGH|P,P,...",
        help="physical error rates: a log-spaced range or a list",
    )
    sub.add_argument("--points", default="5", metavar="N", help="rates in a LOW:HIGH range (5)")
    sub.add_argument("--shots", default="10000", metavar="N", help="most shots per point (10000)")
    sub.add_argument("--max-errors", default=None, metavar="N", help="stop a point at N errors")
    sub.add_argument("--rounds", default=None, metavar="R", help="rounds per shot (default: d)")
    sub.add_argument("--seed", default=None, metavar="S", help="seed (default: random)")
    sub.add_argument(
        "--noise",
        default=noise_default,
        metavar="KIND",
        help="qubit (the --qubit rates scaled to p), uniform, or stim (stim's generated noise)",
    )
    sub.add_argument("--qubit", default=defaults.QUBIT, metavar="NAME", help="qubit set")
    sub.add_argument(
        "--decoder",
        default=None,
        metavar="NAME",
        help="pymatching, bposd or bposd-long (default: the family's: bposd for SHYPS, else "
        "pymatching)",
    )
    sub.add_argument("--workers", default="1", metavar="N", help="processes (1)")
    sub.add_argument(
        "--interval", default="wilson", metavar="KIND", help="wilson or jeffreys (wilson)"
    )
    sub.add_argument("--json", action="store_true", help="print one JSON object")
    sub.add_argument("--quiet", action="store_true", help="no progress bar on a terminal")


def register(add: AddCommand) -> None:
    """Add ``qec threshold`` and ``qec calibrate``."""
    sub = add("qec", "QEC memory experiments: threshold scans and calibration")
    inner = sub.add_subparsers(dest="qec_command", metavar="SUBCOMMAND")
    sub.set_defaults(run=_cmd_help(sub))

    threshold = inner.add_parser(
        "threshold",
        help="logical error per round over distances and physical error rates",
        description="Run memory experiments at every (d, p) and print logical error per round.",
    )
    # None: the defaults of THRESHOLD_DEFAULTS, unless --physics sets them
    _common(threshold, p_default=None, d_default=None, code_default=None, noise_default=None)
    threshold.add_argument("--plot", default=None, metavar="OUT.png", help="write a PNG plot")
    threshold.add_argument(
        "--max-syndrome-weight",
        default=None,
        metavar="W",
        help="the decoder gives up on a shot with more than W detection events (a logical "
        "error); default: no limit",
    )
    threshold.add_argument(
        "--physics",
        default=None,
        metavar="FILE.json",
        help="one memory experiment of a physics file's machine (qmk run --physics): its "
        "code and distance, its error rates as circuit noise, its decoder's limit",
    )
    threshold.set_defaults(run=_cmd_threshold)

    calibrate = inner.add_parser(
        "calibrate",
        help="fit the scheme's (a, p*), or Bacon-Shor's column law, from memory experiments",
        description="Fit P_L = a (p/p*)^((d+1)/2) per logical cycle to memory experiments; "
        "for bacon_shor, which has no threshold, fit P_L = A C(d,k) (c d p)^k exp(-b d p).",
    )
    _common(calibrate, p_default=None, d_default=None)
    calibrate.add_argument(
        "-o", "--output", default=None, metavar="FILE.json", help="write the calibration JSON"
    )
    calibrate.add_argument("--plot", default=None, metavar="OUT.png", help="write a PNG plot")
    calibrate.set_defaults(run=_cmd_calibrate)

    distill = inner.add_parser(
        "distill",
        help="simulate a magic-state distillation unit with noisy injected T states",
        description="Sample a distillation protocol's stim circuit with each injected T state "
        "in error (Z) with probability P; print acceptance and output error with 95%% Wilson "
        "intervals, the exact polynomial and the estimator's formula.",
    )
    distill.add_argument(
        "--protocol", default="15-to-1", metavar="NAME", help="15-to-1 or 15-to-1-space-efficient"
    )
    distill.add_argument(
        "--input-error", required=True, metavar="P", help="each injected T state's error, [0, 0.5]"
    )
    distill.add_argument(
        "--clifford-error",
        default="0",
        metavar="C",
        help="15-to-1-space-efficient: a depolarizing fault of probability C on each patch "
        "after each rotation (0)",
    )
    distill.add_argument("--shots", default="100000", metavar="N", help="runs (100000)")
    distill.add_argument(
        "--seed", default=None, metavar="S", help="seed (default: random, printed)"
    )
    distill.add_argument("--json", action="store_true", help="print one JSON object")
    distill.set_defaults(run=_cmd_distill)


#: ``qmk qec threshold``'s defaults where ``--physics`` does not set the option.
THRESHOLD_DEFAULTS: dict[str, str] = {
    "code": "surface_code",
    "d": "3,5",
    "p": "0.001:0.01",
    "noise": "qubit",
}


def _cmd_help(parser: argparse.ArgumentParser) -> Any:
    def show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
        parser.print_help(out)
        return 2

    return show


def _scan(args: argparse.Namespace, p_text: str) -> tuple[str, Any]:
    from qmk.experiments.circuits import experiment_family
    from qmk.experiments.memory import NOISE_KINDS, threshold_scan

    family = experiment_family(args.code)
    distances = _ints(args.d, "--d")
    points = _count(args.points, "--points")
    assert points is not None
    ps = parse_ps(p_text, points)
    if args.noise not in NOISE_KINDS:
        raise _bad(f"--noise {args.noise!r}: use one of {', '.join(NOISE_KINDS)}")
    results = threshold_scan(
        family,
        distances=distances,
        ps=ps,
        rounds=_count(args.rounds, "--rounds"),
        noise=args.noise,
        qubit=args.qubit,
        shots=_count(args.shots, "--shots") or 1,
        max_errors=_count(args.max_errors, "--max-errors"),
        seed=_seed(args.seed),
        workers=_count(args.workers, "--workers") or 1,
        interval=args.interval,
        progress=getattr(args, "progress", None),  # the bar of _cmd_threshold
        max_syndrome_weight=_weight(getattr(args, "max_syndrome_weight", None)),
        decoder=getattr(args, "decoder", None),
    )
    return family, results


def _weight(value: str | None) -> int | None:
    """``--max-syndrome-weight``: a whole number >= 0, or None."""
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise _bad(f"--max-syndrome-weight takes a whole number, got {value!r}") from None
    if number < 0:
        raise _bad(f"--max-syndrome-weight must be at least 0, got {number}")
    return number


def _check_qubit(args: argparse.Namespace) -> None:
    from qmk.qec.params import GATE_BASED, qubit_params

    qubit = qubit_params(args.qubit)
    if qubit.instruction_set != GATE_BASED:
        raise QECError.of(
            "scheme-not-supported",
            f"memory experiments use gate-based circuits; {qubit.name!r} is "
            f"{qubit.instruction_set}",
        )


def _table(args: argparse.Namespace, results: Any, noise: str | None = None) -> str:
    first = results[0]
    if noise is None:
        noise = f"{args.noise} ({args.qubit})" if args.noise == "qubit" else args.noise
    lines = [
        f"{first.family} memory-Z experiment, noise {noise}, "
        f"{round(first.confidence * 100)}% {first.interval} intervals",
        f"{'d':>3} {'rounds':>6} {'p':>10} {'shots':>9} {'errors':>7} "
        f"{'P_L/round':>10} {'interval':>23} {'P_L/cycle':>10} {'shots/s':>9}",
    ]
    for r in results:
        low, high = r.per_round_interval
        lines.append(
            f"{r.distance:>3} {r.rounds:>6} {r.p:>10.3g} {r.shots:>9} {r.errors:>7} "
            f"{r.per_round:>10.3e} [{low:.2e}, {high:.2e}] {r.per_cycle:>10.3e} "
            f"{r.shots_per_second:>9.3g}"
        )
    for r in results:
        if r.max_syndrome_weight is not None:
            lines.append(
                f"d={r.distance} p={r.p:.3g}: the decoder gave up on {r.gave_up} of {r.shots} "
                f"shots (over {r.max_syndrome_weight} detection events), counted as errors"
            )
    return "\n".join(lines) + "\n"


def _cmd_threshold(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.commands.progress import progress_bar

    if args.physics is not None:
        return _physics_point(args, out, err)
    if args.d is None and args.code is not None:
        from qmk.experiments.circuits import experiment_family

        if experiment_family(args.code) == "SHYPS":  # its distances are its blocks'
            args.d = CALIBRATE_D["SHYPS"]
    for key, value in THRESHOLD_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    _check_qubit(args)
    points = len(_ints(args.d, "--d")) * len(parse_ps(args.p, _count(args.points, "--points") or 1))
    with progress_bar(points, "threshold scan", err, quiet=args.quiet) as update:
        args.progress = lambda done, total: update(done, f"point {done} of {total}")
        family, results = _scan(args, args.p)
    if args.plot:
        from qmk.experiments.plot import plot_results

        plot_results(results, args.plot)
    if args.json:
        payload = {
            "family": family,
            "noise": args.noise,
            "qubit": args.qubit,
            "results": [r.to_json() for r in results],
            "plot": args.plot,
        }
        out.write(json.dumps(payload, indent=2) + "\n")
        return 0
    out.write(_table(args, results))
    if args.plot:
        out.write(f"plot: {args.plot}\n")
    return 0


def _physics_point(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``qmk qec threshold --physics FILE``: one memory experiment of the file's machine:
    its family and distance, its rates as circuit noise on its timed qubit, matching that
    gives up above its ``max_syndrome_weight``.

    Raises:
        QECError: ``QC103`` for an option the file sets given beside it; what
            :meth:`qmk.qec.physics.PhysicsConfig.resolve` and the experiment raise.
    """
    from qmk.errors import warning_line
    from qmk.experiments.circuits import CircuitNoise, experiment_family
    from qmk.experiments.memory import run_memory
    from qmk.qec.physics import load_physics

    flags = ("code", "d", "p", "noise", "max_syndrome_weight")
    given = [f"--{key.replace('_', '-')}" for key in flags if getattr(args, key) is not None]
    if given:
        raise _bad(
            f"--physics sets the code, distance, noise and decoder; {given[0]} "
            "contradicts it: give one"
        )
    config = load_physics(args.physics)
    resolved = config.resolve(args.qubit, decodes=True)
    family = experiment_family(config.qec_scheme.code_family)
    weight = None if config.decoder is None else config.decoder.max_syndrome_weight
    result = run_memory(
        family,
        distance=config.qec_scheme.code_distance,
        p=resolved.model.physical_error_rate,
        rounds=_count(args.rounds, "--rounds"),
        noise=CircuitNoise.from_qubit(resolved.qubit, noise=resolved.noise),
        shots=_count(args.shots, "--shots") or 1,
        max_errors=_count(args.max_errors, "--max-errors"),
        seed=_seed(args.seed),
        workers=_count(args.workers, "--workers") or 1,
        interval=args.interval,
        max_syndrome_weight=weight,
    )
    if args.json:
        payload = {
            "family": family,
            "physics": resolved.to_json(),
            "results": [result.to_json()],
            "warnings": list(resolved.warnings),
        }
        out.write(json.dumps(payload, indent=2) + "\n")
        return 0
    err.writelines(warning_line(args.physics, notice) for notice in resolved.warnings)
    noise = f"{args.physics} ({resolved.qubit.name}: {resolved.noise_model})"
    out.write(_table(args, [result], noise))
    return 0


def _cmd_calibrate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.experiments.circuits import experiment_family
    from qmk.qvm.profiles import FAMILIES

    family = experiment_family(args.code)
    if family not in FAMILIES:
        raise _bad(
            f"{family} is not a profile family, so there is no scheme to calibrate; "
            f"use one of: {', '.join(f for f in FAMILIES if f in CALIBRATE_P)}"
        )
    _check_qubit(args)
    if args.d is None:
        args.d = CALIBRATE_D.get(family, "3,5")
    p_text = args.p or CALIBRATE_P[family]
    _, results = _scan(args, p_text)
    source = (
        f"qmk qec calibrate --code {family} --d {args.d} --p {p_text} --points {args.points} "
        f"--noise {args.noise} --qubit {args.qubit} --shots {args.shots} --seed {args.seed}"
        + (f" --max-errors {args.max_errors}" if args.max_errors is not None else "")
        + (f" --decoder {args.decoder}" if getattr(args, "decoder", None) else "")
    )
    if family == "bacon_shor":
        return _calibrate_law(args, results, source, out)
    return _calibrate_threshold(args, family, results, source, out)


def _calibrated(
    args: argparse.Namespace,
    qubit: Any,
    fit: Any,
    results: Any,
    source: str,
    out: TextIO,
    reference: dict[str, Any],
    *,
    drawn: Any = None,
) -> bool:
    """Write ``fit``'s calibration (``--output``), plot ``results`` (``--plot``, with
    ``drawn``'s curves) and, with ``--json``, print them with ``reference`` (the values
    QMK holds); True when it printed."""
    calibration = fit.calibration(instruction_set=qubit.instruction_set, source=source)
    document = {**calibration.to_json(), "fit": fit.to_json()}
    if args.output:
        try:
            Path(args.output).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            from qmk.qvm.errors import unwritable

            raise unwritable(args.output, exc) from None
    if args.plot:
        from qmk.experiments.plot import plot_results

        plot_results(results, args.plot, fit=drawn)
    if args.json:
        payload = {"calibration": document, **reference, "results": [r.to_json() for r in results]}
        out.write(json.dumps({**payload, "output": args.output}, indent=2) + "\n")
    return bool(args.json)


def _calibration_footer(args: argparse.Namespace, out: TextIO) -> None:
    if args.output:
        out.write(f"calibration: {args.output}\n")
    else:
        out.write("pass --output FILE.json to save the calibration\n")


def _calibrate_threshold(
    args: argparse.Namespace, family: str, results: Any, source: str, out: TextIO
) -> int:
    from qmk.experiments.memory import fit_results
    from qmk.qec.codes import scheme_for
    from qmk.qec.params import qubit_params

    qubit = qubit_params(args.qubit)
    scheme = scheme_for(family, qubit)
    fit = fit_results(results)
    held = {
        "crossing_prefactor": scheme.crossing_prefactor,
        "error_correction_threshold": scheme.error_correction_threshold,
    }
    if _calibrated(args, qubit, fit, results, source, out, {"scheme": held}, drawn=fit):
        return 0
    out.write(_table(args, results))
    out.write(
        f"fit P_L/cycle = a (p/p*)^((d+1)/2) over {len(fit.points)} points "
        f"(chi2/dof = {fit.chi2:.2f}/{fit.dof}{', errors scaled' if fit.scaled else ''}):\n"
        f"  a  = {fit.crossing_prefactor:.4g} +- {fit.sigma_prefactor:.2g}"
        f"   (scheme: {scheme.crossing_prefactor:g})\n"
        f"  p* = {fit.threshold:.4g} +- {fit.sigma_threshold:.2g}"
        f"   (scheme: {scheme.error_correction_threshold:g})\n"
        f"  correlation(ln a, ln p*) = {fit.correlation:.3f}\n"
    )
    _calibration_footer(args, out)
    return 0


def _calibrate_law(args: argparse.Namespace, results: Any, source: str, out: TextIO) -> int:
    from qmk.experiments.bacon_shor import FIT_MAX_RATE, fit_column_law
    from qmk.qec.codes import BACON_SHOR_CIRCUIT_LAW
    from qmk.qec.params import qubit_params

    qubit = qubit_params(args.qubit)
    fit = fit_column_law(results, source=source)
    ref = BACON_SHOR_CIRCUIT_LAW
    held = {"prefactor": ref.prefactor, "column_factor": ref.column_factor, "damping": ref.damping}
    if _calibrated(args, qubit, fit, results, source, out, {"reference_law": held}):
        return 0
    law, (s_a, s_c, s_b) = fit.law, fit.sigmas
    note = "   (QMK's reference fit: "
    scaled = ", errors scaled" if fit.dof > 0 and fit.chi2 > fit.dof else ""
    out.write(_table(args, results))
    out.write(
        f"fit P_L/cycle = A C(d,k) (c d p)^k exp(-b d p), k = (d+1)//2, over "
        f"{len(fit.points)} points with P_L <= {FIT_MAX_RATE:g} ({fit.left_out} above left out; "
        f"chi2/dof = {fit.chi2:.2f}/{fit.dof}{scaled}):\n"
        f"  A = {law.prefactor:.4g} +- {s_a:.2g}{note}{ref.prefactor:g})\n"
        f"  c = {law.column_factor:.4g} +- {s_c:.2g}{note}{ref.column_factor:g})\n"
        f"  b = {law.damping:.4g} +- {s_b:.2g}{note}{ref.damping:g})\n"
        "Bacon-Shor has no threshold: its lowest rate at p is at one distance "
        "(ColumnLaw.best_distance)\n"
    )
    _calibration_footer(args, out)
    return 0


def _input_error(text: str, option: str = "--input-error") -> float:
    try:
        value = float(text)
    except ValueError:
        raise _bad(f"{option}: not a number: {text!r}") from None
    if not 0 <= value <= 0.5:  # NaN fails too
        raise _bad(f"{option} must lie in [0, 0.5], got {text!r}")
    return value


def _cmd_distill(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.estimate.tfactory import unit_from_json
    from qmk.execution.request import draw_seed
    from qmk.experiments.distill import model_rates, run_distillation
    from qmk.qec.distill import INPUT_ERROR_PAULI, exact_rates, protocol

    proto = protocol(args.protocol)
    p = _input_error(args.input_error)
    c = _input_error(args.clifford_error, "--clifford-error")
    shots = _count(args.shots, "--shots")
    assert shots is not None
    seed = _seed(args.seed)
    if seed is None:
        seed = draw_seed()
    result = run_distillation(proto, input_error=p, shots=shots, seed=seed, clifford_error=c)
    # With Clifford faults, the exact rates of the circuit's own fault model (model_rates).
    exact = exact_rates(proto, p) if c == 0 else model_rates(proto, p, c)
    exact_of = "the input-error polynomial" if c == 0 else "the circuit's fault model"
    unit = unit_from_json({"name": proto.estimator_unit})
    # The estimator's unit formulas take (input error, Clifford error, readout error).
    estimated_output = unit.output_error_rate(p, c, 0.0)
    estimated_failure = unit.failure_probability(p, c, 0.0)
    estimator = {
        "unit": unit.name,
        "output_error_rate": estimated_output,
        "failure_probability": estimated_failure,
    }
    if args.json:
        payload = {
            **result.to_json(),
            "input_error_pauli": INPUT_ERROR_PAULI,
            "circuit": proto.circuit,
            "exact": {
                "of": exact_of,
                "acceptance_rate": exact.acceptance,
                "output_error_rate": exact.output_error,
            },
            "estimator": estimator,
            "logical_cycles": proto.logical_cycles,
            "logical_qubits": proto.logical_qubits,
        }
        out.write(json.dumps(payload, indent=2) + "\n")
        return 0
    a_low, a_high = result.acceptance_interval
    e_low, e_high = result.output_error_interval
    level = f"{round(result.confidence * 100)}% Wilson"
    out.write(
        f"{proto.name} distillation, {proto.inputs} T states in, {proto.outputs} out; "
        f"input error {p:g} ({INPUT_ERROR_PAULI}), Clifford error {c:g}, "
        f"shots {shots}, seed {seed}\n"
        f"{'':20} {'simulated':>11} {level + ' interval':>28} {'exact':>11} {'estimator':>11}\n"
        f"{'acceptance_rate':20} {result.acceptance_rate:>11.5g} "
        f"[{a_low:>11.5g}, {a_high:>11.5g}] {exact.acceptance:>11.5g} "
        f"{1 - estimated_failure:>11.5g}\n"
        f"{'output_error_rate':20} {result.output_error_rate:>11.4e} "
        f"[{e_low:>11.4e}, {e_high:>11.4e}] {exact.output_error:>11.4e} "
        f"{estimated_output:>11.4e}\n"
        f"accepted {result.accepted}, of which {result.errors} flipped; estimator unit "
        f"{unit.name!r}: {proto.logical_qubits} logical qubits, "
        f"{proto.logical_cycles} logical cycles\n"
    )
    return 0
