"""``qmk run FILE``: run a program in-process on the simulated fault-tolerant machine.

The same targets the kernel's workers run (:func:`qmk.execution.runs.run`), with
no server: counts, then the run's telemetry (logical cycles, physical qubits, decoder
rounds, injected logical errors); ``--json`` prints the result as one JSON object.
Defaults come from :mod:`qmk.defaults`. ``--state OUT.json`` writes the program's final
state and ``--initial-state IN.json`` starts it from one (:mod:`qmk.execution.states`).
A stim circuit (``.stim``, ``--format stim``) runs on the ``stim`` target, stim's own
samplers (:mod:`qmk.execution.stim_target`): ``--detectors`` samples its detection events
and observable flips, ``--decode`` also decodes them by matching.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from qmk import defaults
from qmk.commands import (
    AddCommand,
    is_stim_source,
    limits_of,
    outcome_lines,
    plural,
    read_flat_source,
    read_source,
    seed_arg,
    shots_arg,
    source_options,
    stim_given,
    stim_options,
)


def _input(text: str) -> tuple[str, float]:
    """``NAME=VALUE`` of ``--input``: VALUE a number or a constant expression (``pi/2``)."""
    from qmk.qvm.expr import ExprError, evaluate

    name, sep, value = text.partition("=")
    if not sep or not name.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        number = evaluate(value, {})
    except ExprError as exc:
        raise argparse.ArgumentTypeError(f"{name.strip()}: {exc}") from None
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise argparse.ArgumentTypeError(f"{name.strip()}: not a number: {value!r}")
    return name.strip(), number


def _noise(args: argparse.Namespace) -> Any:
    """``run``'s ``noise``: off, on, or on with the ``--noise-model`` rates."""
    from qmk.qec.errors import QECError
    from qmk.qec.noise import parse_noise_model

    if args.noise_model is None:
        return not args.no_noise
    if args.no_noise:
        raise QECError.of(
            "bad-parameter", "--noise-model and --no-noise contradict each other: give one"
        )
    return parse_noise_model(args.noise_model)


def _qubit(args: argparse.Namespace) -> Any:
    """``run``'s ``qubit``: a predefined set by name, or a QRE ``qubitParams`` JSON file."""
    if args.qubit_params is None:
        return args.qubit
    from qmk.estimate.estimator import qubit_from_json
    from qmk.qec.errors import QECError

    try:
        with open(args.qubit_params, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise QECError.of("bad-parameter", f"--qubit-params {args.qubit_params}: {exc}") from None
    return qubit_from_json(data)


def _physics(args: argparse.Namespace) -> Any:
    """``--physics FILE``: the physics file and what it resolves to on the run's qubit
    (None without the option).

    Raises:
        QECError: ``QC103`` for ``--profile`` beside it, or a file that does not read;
            what :meth:`qmk.qec.physics.PhysicsConfig.resolve` raises.
    """
    if args.physics is None:
        return None
    from qmk.qec.errors import QECError
    from qmk.qec.physics import load_physics

    given = (
        f"--profile {args.profile}"
        if args.profile is not None
        else "--no-noise"
        if args.no_noise
        else None
        if args.noise_model is None
        else f"--noise-model {args.noise_model}"
    )
    if given is not None:
        raise QECError.of(
            "bad-parameter",
            f"--physics sets the code profile and the error rates; {given} contradicts it: "
            "give one",
        )
    config = load_physics(args.physics)
    return config, config.resolve(_qubit(args))


def _target(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The target the options name (``--lattice-surgery``, ``--device``; else a stim
    circuit's own, ``stim``, for a ``.stim`` file or ``--format stim``, and the logical
    machine for any other) and its options as given: each target checks its own
    (:mod:`qmk.execution.target`), so a flag of another target is its ``QM102``."""
    from qmk.abi.errors import CommandError

    if args.lattice_surgery and args.device is not None:
        raise CommandError.of(
            "bad-option", "--lattice-surgery and --device name two targets: give one"
        )
    stim = is_stim_source(args)
    name = (
        "lattice-surgery"
        if args.lattice_surgery
        else "neutral-atom"
        if args.device is not None
        else "stim"
        if stim
        else "logical"
    )
    given = {
        "block": args.block,
        "preset": args.device,
        "routing": None if args.routing == "auto" else args.routing,
        "configuration": args.configuration,
    }
    options = {key: value for key, value in given.items() if value is not None}
    return name, {**options, **stim_given(args)}


def _program(args: argparse.Namespace, name: str) -> tuple[Any, Any]:
    """The program target ``name`` runs and what ``--modules`` made of it (None: not
    given): a QVM graph, lowered from the file's language (its qubits carry no profile:
    ``--profile`` is the default for every qubit) and teleported as the module options
    ask; or, for a target that reads its own programs (a stim circuit's), the program it
    reads from the file."""
    from qmk.commands.teleport import teleported
    from qmk.execution import target as targets

    if targets.spec(name).program == "stim-circuit":
        if args.modules is not None or args.placement is not None:
            why = "cross-module gates are teleported on the gate-level machine"
            raise targets.refuse(name, "--modules", why)
        if args.inputs:
            from qmk.frontends.errors import FrontendError

            raise FrontendError.of(
                "unsupported",
                f"{args.file}: input values are for OpenQASM 3 programs' input declarations",
                source=args.file,
            )
        source: Any = args.file
        if not args.file.lower().endswith(".stim"):  # --format stim names the language
            from qmk.frontends import read_text

            source = read_text(args.file)
        return targets.get(name).read(source, limits=limits_of(args)), None
    program = _qvm_program(args)
    done = teleported(
        args, _graph_of(program)
    )  # --modules/--placement: cross-module gates teleported
    if done is not None:
        if name != "logical":
            why = "cross-module gates are teleported on the gate-level machine"
            raise targets.refuse(name, "--modules", why)
        program = done.graph
    return program, done


def _qvm_program(args: argparse.Namespace) -> Any:
    """The file as a QVM program: a flat OpenQASM file read in bulk and verified on its
    columns (:func:`~qmk.commands.read_flat_source`, :func:`qmk.qvm.columns.verified`),
    any other file (or one with a fault, so that its error is the statement reader's
    or the verifier's, as ever) as a graph, by :func:`~qmk.commands.read_source`.
    ``args.reader`` says which, and why (``--explain``)."""
    limits = limits_of(args)
    flat = read_flat_source(args, args.file)
    if not isinstance(flat, str):
        from qmk.qvm.columns import verified

        program = verified(flat, limits=limits)
        if program is not None:
            args.reader = f"read in bulk as columns ({plural(len(flat), 'row')})"
            return program
        flat = "a fault the verifier names"
    args.reader = f"read statement by statement ({flat})"
    return read_source(args, args.file, limits)


def _graph_of(program: Any) -> Any:
    """The graph of ``program``: a verified program's, or ``program`` itself."""
    from qmk.qvm.verify import VerifiedProgram

    return program.graph if isinstance(program, VerifiedProgram) else program


def _cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    name, options = _target(args)
    program, done = _program(args, name)
    physics = _physics(args)
    profile = args.profile or (defaults.PROFILE if physics is None else physics[1].profile)
    graph = _graph_of(program)
    metadata = getattr(graph, "metadata", None) or {}
    warnings: list[dict[str, str]] = list(metadata.get("warnings", ()))
    if physics is not None:  # what the physics file only approximates or does not use
        warnings += physics[1].warnings
    if not args.json:  # a dialect read, a box's duration dropped (--json carries them)
        from qmk.errors import warning_line

        err.writelines(warning_line(args.file, notice) for notice in warnings)
    if args.profile is not None and name == "logical":  # said when no qubit takes it
        from qmk.estimate.variants import profile_unused
        from qmk.execution.request import canonical_profile

        if args.profile != "auto":
            canonical_profile(args.profile)  # QC102 before a warning about it
        unused = profile_unused(graph, args.profile)
        if unused is not None:
            warnings.append(unused)
            if not args.json:
                from qmk.errors import warning_line

                err.write(warning_line(args.file, unused))
    if profile == "auto" and name == "logical":  # the cheapest code variant (qmk plan)
        from qmk.estimate.counts import count_graph
        from qmk.estimate.variants import plan_variants

        profile = plan_variants(count_graph(graph), _qubit(args)).chosen.profile
    from qmk.commands.progress import progress_bar

    bar = progress_bar(
        None, f"running {args.file} ({plural(args.shots, 'shot')})", err, quiet=args.quiet
    )
    with bar:
        result = _run(args, program, profile, name, options, physics)
    unused = _precision_unused(args, result.engine)
    if unused is not None:
        warnings.append(unused)
        if not args.json:
            from qmk.errors import warning_line

            err.write(warning_line(args.file, unused))
    if args.plot is not None:
        from qmk.workflows.report import plot_counts

        plot_counts(result.counts, result.shots, args.plot, f"{args.file}: {result.shots} shots")
    return _report(args, result, out, warnings, done, physics)


def _precision_unused(args: argparse.Namespace, engine: str) -> dict[str, str] | None:
    """``QE117 precision-unused`` when ``--precision`` was given and ``engine``, the one
    that ran, computes exactly (the stabilizer); None otherwise."""
    if args.precision is None:
        return None
    from qmk.engines.base import EngineError
    from qmk.engines.registry import spec
    from qmk.errors import warning

    if "exact" not in spec(engine).precisions:
        return None
    return warning(
        EngineError,
        "precision-unused",
        f"engine {engine} computes exactly (no amplitudes), so --precision {args.precision} "
        "changed nothing",
    )


def _run(
    args: argparse.Namespace,
    program: Any,
    profile: str,
    name: str,
    options: dict[str, Any],
    physics: Any = None,
) -> Any:
    """``program`` on target ``name`` with its ``options`` (:mod:`qmk.execution.target`):
    the request the options make, compiled, run."""
    import msgspec

    from qmk.execution import target as targets
    from qmk.execution.runs import build_request

    target = targets.get(name)
    if targets.spec(name).program != "stim-circuit":  # a QVM graph (a device compiles it)
        verified = targets.read_qvm(program, limits=limits_of(args))
        read, digested = target.read(verified), verified
    else:  # the stim circuit, read already
        read, digested = program, program.to_json()
    request = build_request(
        digested,
        digest=False,  # (a QVM program is digested only where a state needs its key)
        target=name,
        target_options=options,
        shots=args.shots,
        seed=args.seed,
        engine=args.engine,
        precision=args.precision,
        noise=_noise(args),
        qubit=_qubit(args),
        profile=defaults.PROFILE if profile == "auto" else profile,
        calibration=args.calibration,
        physics=None if physics is None else physics[0],
    )
    if profile == "auto":  # left for the target (lattice surgery: the estimator's distance)
        request = msgspec.structs.replace(request, profile=profile)
    executable = target.compile(
        read,
        request,
        local=True,  # this process's own run: a device's preset may be a profile file
        initial_state=args.initial_state,
        final_state=False if args.state is None else args.state_kind,
    )
    return executable.run(request.shots, request.seed)


def _report(
    args: argparse.Namespace,
    result: Any,
    out: TextIO,
    warnings: list[dict[str, str]],
    teleported: Any = None,
    physics: Any = None,
) -> int:
    if args.state is not None:
        _write_state(args, result)
    if args.emit_job is not None:
        _emit_job(args, result)
    if args.json:
        data = result.to_json(memory=args.memory)
        if warnings:
            data["warnings"] = warnings
        if teleported is not None:
            data["teleportation"] = teleported.to_json()
        if physics is not None:
            data["physics"] = physics[1].to_json()
        if args.state is not None:
            data["state_file"] = args.state
        if args.explain and result.choice is not None:
            data["engine_choice"] = result.choice.to_json()
        if args.explain and getattr(args, "reader", None) is not None:
            data["reader"] = args.reader
        out.write(json.dumps(data, ensure_ascii=False) + "\n")
        return 0
    if args.explain:
        out.write(
            result.choice.explain()
            if result.choice is not None
            else f"engine {result.engine}: {result.telemetry.engine_reason} (the "
            f"{result.target} target chooses its own backend; no router)\n"
        )
        reader = getattr(args, "reader", None)
        if reader is not None:  # after the choice: its first line stays the engine's
            out.write(f"{args.file}: {reader}\n")
    out.write(_run_text(args.file, result, memory=args.memory))
    if physics is not None:
        out.write(_physics_text(physics[1]))
    if result.summary:
        out.write(result.summary)
    if args.emit_job is not None:
        out.write(f"wire job written to {args.emit_job} (qmk device run {args.emit_job})\n")
    if teleported is not None:
        from qmk.commands.teleport import lines

        out.write("\n".join(lines(teleported)) + "\n")
    if args.state is not None:
        state = result.final_state
        assert state is not None  # run(final_state=...) returned it
        out.write(
            f"final state: {plural(state.num_qubits, 'qubit')} ({', '.join(state.qubits[:8])}"
            f"{' ...' if state.num_qubits > 8 else ''}) as {state.kind}, written to {args.state}\n"
        )
    return 0


def _physics_text(resolved: Any) -> str:
    """One line: what ``--physics`` made of the machine."""
    model, load = resolved.model, resolved.decoder
    line = (
        f"physics: {model.profile}, {model.physical_qubits_per_logical} physical qubits per "
        f"logical, {model.cycle_time_ns / 1000:g} us logical cycle, p {model.physical_error_rate:g}"
        f", P_L {model.logical_error_per_cycle:.3g} per cycle"
    )
    if load is not None:
        speed = "" if load.decoder_time_ns is None else f" {load.decoder_time_ns:g} ns a round,"
        line += f"; decoder {load.type},{speed} rounds every {load.round_time_ns:g} ns"
    return line + "\n"


def _emit_job(args: argparse.Namespace, result: Any) -> None:
    """``--emit-job``: the wire-form job a program was compiled into (a device run's).

    Raises:
        TargetError: ``QM102`` the run's target compiled no job.
    """
    job = result.details.get("job")
    if job is None:
        from qmk.execution.target import refuse

        raise refuse(result.target, "--emit-job", "it compiles no device job")
    with open(args.emit_job, "w", encoding="utf-8") as handle:
        json.dump(job, handle, indent=1)
        handle.write("\n")


def _write_state(args: argparse.Namespace, result: Any) -> None:
    """``--state``: the run's final state as a qmk-state JSON file (qmk.engines.state_io)."""
    from dataclasses import replace

    from qmk.engines.state_io import write

    meta = {"program": args.file, "engine": result.engine, "seed": result.seed}
    write(args.state, replace(result.final_state, metadata=meta))


#: The most events the outcomes' heading names one by one.
_EVENTS_SHOWN = 24


def _run_text(path: str, result: Any, *, memory: bool) -> str:
    t = result.telemetry
    shown_events = result.events  # a QEC circuit's hundreds: the first and the last few
    if len(shown_events) > _EVENTS_SHOWN:
        head, tail = shown_events[: _EVENTS_SHOWN - 4], shown_events[-3:]
        shown_events = (*head, f"... ({len(result.events)} events)", *tail)
    events = " ".join(shown_events) or "(no events)"
    lines = [
        f"{path}: {plural(result.shots, 'shot')}, seed {result.seed}, "
        f"engine {result.engine} ({t.mode}), noise {'on' if t.noise else 'off'}"
        + (f" ({t.noise_model})" if t.noise_model else "")
        + (f", calibration {t.calibration['source'] or 'applied'}" if t.calibration else "")
        + ("" if result.target == "logical" else f", target {result.target}"),
        f"outcomes (events {events}, first leftmost):"
        if result.layout is None
        else "outcomes (keys laid out as the source language writes them):",
    ]
    lines += outcome_lines(result.counts, result.shots, "  ")
    lines.append(
        f"telemetry: {plural(t.epochs, 'epoch')}, {t.logical_cycles:g} logical cycles "
        f"({t.logical_time_ns / 1000:g} us), peak {t.peak_logical_qubits} logical / "
        f"{t.peak_physical_qubits} physical qubits, {t.decoder_rounds:g} decoder rounds"
    )
    # a density matrix draws no error: it applies every location's channel exactly
    errors = (
        "logical errors as exact channels of a density matrix"
        if t.noise_sampling == "exact"
        else f"{plural(t.injected_logical_errors, 'logical error')} injected over all shots"
    )
    source = (
        f" ({t.qubit_params}{''.join('; ' + p for p in t.profiles[:1])}"
        f"{''.join(', ' + p for p in t.profiles[1:])})"
    )
    if t.noise_sampling == "stim":  # a stim circuit's own noise: QMK injects nothing
        errors = (
            f"the circuit's own noise drawn by stim at "
            f"{plural(t.noise_locations, 'location')} (its errors are in the measured bits"
            f"{'' if result.detection is None else ', detectors and observables'})"
        )
        source = ""
    if t.noise_sampling == "device":  # a device's physical noise: no logical error is injected
        errors = (
            f"the device's physical noise drawn per shot at "
            f"{plural(t.noise_locations, 'location')} (its errors are in the measured bits)"
            if t.noise_locations
            else "no device noise"
        )
        source = f" ({t.qubit_params})" if t.qubit_params else ""
    lines.append(
        f"           {plural(t.magic_states, 'magic state')} per shot, {errors}{source}, "
        f"{plural(t.simulations, 'simulation')}, {t.wall_time_s:.3f} s"
    )
    if t.figures:  # the target's own (a lattice-surgery run's schedule)
        shown = ", ".join(f"{key} {_figure(value)}" for key, value in sorted(t.figures.items()))
        lines.append(f"{result.target}: {shown}")
    if memory:
        lines.append("memory: " + " ".join(result.memory))
    return "\n".join(lines) + "\n"


def _figure(value: Any) -> str:
    """A target's figure as the text lists it (numbers at 4 significant digits)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def register(add: AddCommand) -> None:
    """Add ``run``."""
    sub = add("run", "run a program on a simulated fault-tolerant machine and print counts")
    sub.add_argument("file", metavar="FILE")
    sub.add_argument(
        "--input",
        dest="inputs",
        action="append",
        type=_input,
        metavar="NAME=VALUE",
        help="the value of an OpenQASM 3 input declaration (repeatable; VALUE may be pi/2)",
    )
    sub.add_argument(
        "--shots",
        type=shots_arg,
        default=defaults.SHOTS,
        metavar="N",
        help=f"shots ({defaults.SHOTS})",
    )
    sub.add_argument("--seed", type=seed_arg, metavar="S", help="seed (default: drawn, printed)")
    sub.add_argument(
        "--engine",
        choices=defaults.ENGINES,
        help="engine (default: the router chooses; 'qmk engines' lists those installed)",
    )
    sub.add_argument(
        "--explain",
        action="store_true",
        help="also print which engine ran and why: every candidate's estimated cost and "
        "why the others were refused",
    )
    sub.add_argument(
        "--no-noise", action="store_true", help="inject no logical errors (ideal logical qubits)"
    )
    sub.add_argument("--qubit", default=defaults.QUBIT, metavar="NAME", help="qubit parameter set")
    sub.add_argument(
        "--qubit-params",
        metavar="FILE.json",
        help="custom qubit parameters, QRE's qubitParams JSON form (replaces --qubit)",
    )
    sub.add_argument(
        "--noise-model",
        metavar="SPEC",
        help="physical error rates in place of the qubit's, e.g. 'depolarizing(p=1e-3)' or "
        "'gate(two_qubit=4e-3) + idle(t1_ns=1e5, t2_ns=8e4)' (models: depolarizing, gate, "
        "measurement, idle)",
    )
    sub.add_argument(
        "--physics",
        metavar="FILE.json",
        help="the machine as one JSON file: qec_scheme (code family, distance, logical cycle "
        "time, physical qubits), error_budget (gate, measurement and idle error rates, T1, "
        "T2) and decoder (type, cycle time, max syndrome weight); sets the profile, the "
        "qubit's timing and the noise model (docs/qec.md)",
    )
    sub.add_argument(
        "--calibration",
        metavar="FILE.json",
        help="fitted (a, p*) written by 'qmk qec calibrate --output'",
    )
    sub.add_argument(
        "--profile",
        metavar="PROFILE",
        help=f"code profile of qubits allocated without one ({defaults.PROFILE}); 'auto': the "
        "cheapest variant 'qmk plan' finds",
    )
    sub.add_argument(
        "--precision",
        choices=("double", "single"),
        help="amplitudes in complex128 or complex64 (default: the chosen engine's own)",
    )
    sub.add_argument(
        "--state",
        metavar="OUT.json",
        help="write the program's final state (no measurement, --no-noise) as qmk-state JSON: "
        "amplitudes, or stabilizers from the stabilizer engine (docs/qvm.md)",
    )
    sub.add_argument(
        "--state-kind",
        choices=("auto", "amplitudes", "stabilizers"),
        default="auto",
        help="what --state writes (auto: the engine's own kind)",
    )
    sub.add_argument(
        "--initial-state",
        metavar="IN.json",
        help="start the qubits of the program's opening ALLOC_LQ nodes in this qmk-state "
        "JSON state (state qubit k is the k-th of them)",
    )
    sub.add_argument(
        "--device",
        metavar="PRESET",
        help="compile onto a neutral-atom device (a preset of 'qmk device list' or a profile "
        "file) and run on its emulator: native gates, placement, routing; says what it did",
    )
    sub.add_argument(
        "--routing",
        choices=("auto", "move", "swap"),
        default="auto",
        help="with --device: route two-qubit gates by MoveAtom, SWAPs, or both (auto)",
    )
    sub.add_argument(
        "--configuration",
        metavar="NAME",
        help="with --device: the profile's configuration family (default: its default)",
    )
    sub.add_argument(
        "--emit-job",
        metavar="JOB.json",
        help="with --device: also write the compiled wire-form job (qmk device run reads it)",
    )
    sub.add_argument(
        "--lattice-surgery",
        action="store_true",
        help="run as a fault-tolerant machine does: the program lowered to Pauli product "
        "measurements and pi/8 rotations, laid out as patches, scheduled with its factories, "
        "executed with magic-state injection (docs/ft-execution.md)",
    )
    sub.add_argument(
        "--block",
        choices=("compact", "intermediate", "fast"),
        help="with --lattice-surgery: Litinski's block the patches are laid out in (fast)",
    )
    stim_options(sub)
    sub.add_argument("--memory", action="store_true", help="also print every shot's outcome")
    sub.add_argument("--json", action="store_true", help="print one JSON object")
    sub.add_argument(
        "--plot", metavar="PNG", help="draw the outcome histogram into PNG (matplotlib)"
    )
    sub.add_argument("--quiet", action="store_true", help="no progress spinner on a terminal")
    source_options(sub, profile=False)  # --profile above covers every qubit
    from qmk.commands.teleport import add_options

    add_options(sub)
    sub.set_defaults(run=_cmd_run)
