"""The ``qmk`` command.

Callable in-process: ``main(argv)`` returns the exit status, so tests and doc
generation use it without a subprocess. Exit statuses: 0 success; 1 the
program has findings (validate, info); 2 unreadable input or bad usage; 3 an
internal error (a bug: please report it; ``QMK_DEBUG=1`` shows the traceback).

Bad input is always one line on stderr with a stable code, never a traceback.

>>> main(["--version"])  # doctest: +ELLIPSIS
qmk ...
0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from qmk import __version__
from qmk.commands import limits_of, read_source, source_options
from qmk.errors import QMKError
from qmk.frontends.errors import FrontendError
from qmk.qvm import graph as graph_io
from qmk.qvm.errors import FormatError
from qmk.qvm.files import ASM_SUFFIXES, read_graph
from qmk.qvm.verify import Finding, Report, VerifiedProgram, check


#: Suffixes read as assembly text; every other file is read as JSON.
def _write(text: str, output: str | None, stdout: TextIO) -> None:
    if output is None or output == "-":
        stdout.write(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise FormatError.of("unreadable-file", f"{output}: cannot write: {exc.strerror}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value < 2**64:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**64), got {value}")
    return value


def _count(number: int, noun: str) -> str:
    """``1 epoch``, ``2 epochs``."""
    return f"{number} {noun}{'s' * (number != 1)}"


def _finding_line(path: str, finding: Finding) -> str:
    return f"{path}: {finding.severity.value}: {finding}"


# --------------------------------------------------------------------------- commands


def _cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    limits = limits_of(args)
    status = 0
    results: list[dict[str, Any]] = []
    for path in args.files:
        try:
            report = check(read_source(args, path, limits), limits=limits)
        except (FormatError, FrontendError) as exc:
            status = 2
            results.append({"file": path, "ok": False, "error": exc.to_json(), "findings": []})
            if not args.json:
                err.write(f"{exc}\n")  # the message already starts with the file name
            continue
        if not report.ok:
            status = max(status, 1)
        results.append(
            {
                "file": path,
                "ok": report.ok,
                "error": None,
                "findings": [f.to_json() for f in report.findings],
            }
        )
        if args.json:
            continue
        for finding in report.findings:
            (out if report.ok else err).write(_finding_line(path, finding) + "\n")
        if report.ok and not args.quiet:
            program = report.program
            assert program is not None
            warnings = len(report.findings)
            note = f", {_count(warnings, 'warning')}" if warnings else ""
            out.write(
                f"{path}: ok ({_count(len(program.graph.nodes), 'node')}, "
                f"{_count(len(program.epochs), 'epoch')}, "
                f"peak {_count(program.peak_live_qubits, 'live qubit')}{note})\n"
            )
        elif not report.ok:
            err.write(f"{path}: {_count(len(report.errors), 'error')}\n")
    if args.json:
        out.write(json.dumps({"files": results}, indent=2, ensure_ascii=False) + "\n")
    return status


def _cmd_asm(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.qvm import asm

    if args.file.endswith(ASM_SUFFIXES) and args.format in (None, "qvm-asm"):
        graph = asm.assemble_file(args.file, limits=limits_of(args))
    else:  # another language: print the QVM JSON it lowers to
        graph = read_source(args, args.file, limits_of(args))
    _write(graph_io.dumps(graph) + "\n", args.output, out)
    return 0


def _cmd_disasm(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.qvm import asm

    limits = limits_of(args)
    graph = graph_io.load(args.file, limits=limits) if args.file != "-" else read_graph("-")
    _write(asm.disassemble(graph), args.output, out)
    return 0


def _cmd_fmt(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.file.endswith(ASM_SUFFIXES):
        raise FormatError.of(
            "wrong-type",
            f"{args.file}: qmk fmt formats JSON graphs; use 'qmk asm {args.file}' for JSON "
            "from assembly",
        )
    text = graph_io.dumps(read_graph(args.file, limits=limits_of(args))) + "\n"
    if args.in_place:
        if args.file == "-":
            raise FormatError.of("unreadable-file", "--in-place needs a file, not stdin")
        _write(text, args.file, out)
    else:
        out.write(text)
    return 0


def _cmd_schema(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.qvm import schema

    out.write(json.dumps(schema.load_schema(), indent=2, ensure_ascii=False) + "\n")
    return 0


def _info_text(path: str, program: VerifiedProgram) -> str:
    summary = program.summary()
    counts = summary["counts"]
    lines = [
        f"{path}: QVM {summary['version']}, {summary['nodes']} nodes, "
        f"{summary['dag_edges']} DAG edges",
        f"  qubits      {summary['qubits']} declared, peak {summary['peak_live_qubits']} live",
        f"  channels    {summary['channels']} declared",
        f"  events      {summary['events']} declared",
        f"  ops         {counts['total']} total: {counts['t_gates']} T, "
        f"{counts['rotations']} rotations, {counts['ccz_like']} CCZ-like, "
        f"{counts['measurements']} measurements, {counts['magic_states']} magic states",
        f"  clifford    {'yes' if summary['clifford'] else 'no'} "
        f"({counts['non_clifford']} non-Clifford nodes)",
        f"  caps        required: {' '.join(summary['required_caps']) or '-'}; "
        f"requested: {' '.join(summary['requested_caps']) or '-'}",
        f"  epochs      {len(summary['epochs'])}: "
        + ", ".join(f"#{e['index']} {e['nodes']} nodes" for e in summary["epochs"][:12])
        + (" ..." if len(summary["epochs"]) > 12 else ""),
        f"  REV         {_count(len(summary['rev_segments']), 'segment')}",
    ]
    for segment in summary["rev_segments"][:20]:
        ids = segment["nodes"]
        shown = " ".join(ids[:8]) + (f" ... ({len(ids)} nodes)" if len(ids) > 8 else "")
        closed = segment["closed_by"] or "end of program"
        lines.append(
            f"    #{segment['index']} on {' '.join(segment['qubits'])}: {shown}; closed by {closed}"
        )
    if len(summary["rev_segments"]) > 20:
        lines.append(f"    ... {len(summary['rev_segments']) - 20} more")
    for warning in program.warnings:
        lines.append(f"  warning     {warning}")
    return "\n".join(lines) + "\n"


def _cmd_info(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    limits = limits_of(args)
    report: Report = check(read_source(args, args.file, limits), limits=limits)
    if report.program is None:
        for finding in report.findings:
            err.write(_finding_line(args.file, finding) + "\n")
        return 1
    if args.json:
        out.write(json.dumps(report.program.summary(), indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(_info_text(args.file, report.program))
    return 0


def _cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.execution.executor import run

    options = {"dtype": "complex64"} if args.precision == "single" else {}
    # lowered qubits carry no profile: --profile below is the default for every qubit
    program = read_source(args, args.file, limits_of(args))
    result = run(
        program,
        shots=args.shots,
        seed=args.seed,
        engine=args.engine,
        noise=not args.no_noise,
        qubit=args.qubit,
        profile=args.profile,
        engine_options=options,
        limits=limits_of(args),
    )
    if args.json:
        data = result.to_json(memory=args.memory)
        out.write(json.dumps(data, ensure_ascii=False) + "\n")
        return 0
    out.write(_run_text(args.file, result, memory=args.memory))
    return 0


def _run_text(path: str, result: Any, *, memory: bool) -> str:
    t = result.telemetry
    events = " ".join(result.events) or "(no events)"
    lines = [
        f"{path}: {_count(result.shots, 'shot')}, seed {result.seed}, "
        f"engine {result.engine} ({t.mode}), noise {'on' if t.noise else 'off'}",
        f"outcomes (events {events}, first leftmost):"
        if result.layout is None
        else "outcomes (keys laid out as the source language writes them):",
    ]
    ranked = sorted(result.counts.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ranked[:32]
    width = max((len(k) for k, _ in shown), default=0)
    for key, value in shown:
        lines.append(f"  {key or '(empty)':<{width}}  {value:>8}  {value / result.shots:7.4f}")
    if len(ranked) > len(shown):
        lines.append(f"  ... {_count(len(ranked) - len(shown), 'more outcome')}")
    lines.append(
        f"telemetry: {_count(t.epochs, 'epoch')}, {t.logical_cycles:g} logical cycles "
        f"({t.logical_time_ns / 1000:g} us), peak {t.peak_logical_qubits} logical / "
        f"{t.peak_physical_qubits} physical qubits, {t.decoder_rounds:g} decoder rounds"
    )
    lines.append(
        f"           {_count(t.magic_states, 'magic state')} per shot, "
        f"{_count(t.injected_logical_errors, 'logical error')} injected over all shots "
        f"({t.qubit_params}; {', '.join(t.profiles)}), "
        f"{_count(t.simulations, 'simulation')}, {t.wall_time_s:.3f} s"
    )
    if memory:
        lines.append("memory: " + " ".join(result.memory))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qmk",
        description="QMK, a quantum microkernel: run, check, estimate and serve quantum programs.",
        epilog="Exit status: 0 ok, 1 findings, 2 unreadable input or bad usage.",
    )
    parser.add_argument("--version", action="version", version=f"qmk {__version__} (QVM 0.1, 0.2)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--max-nodes", type=int, metavar="N", help="refuse graphs over N nodes")
        sub.add_argument("--max-bytes", type=int, metavar="N", help="refuse files over N bytes")
        return sub

    sub = command("validate", "verify programs (QVM, OpenQASM, QIR) and list every finding")
    sub.add_argument("files", nargs="+", metavar="FILE")
    sub.add_argument("--json", action="store_true", help="print the findings as JSON")
    sub.add_argument("-q", "--quiet", action="store_true", help="print only findings")
    source_options(sub)
    sub.set_defaults(run=_cmd_validate)

    sub = command(
        "asm", "assemble .qvm.asm text into canonical JSON (or print what .qasm/.ll lower to)"
    )
    sub.add_argument("file", metavar="FILE.asm")
    sub.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of stdout")
    source_options(sub)
    sub.set_defaults(run=_cmd_asm)

    sub = command("disasm", "disassemble a JSON graph into assembly text")
    sub.add_argument("file", metavar="FILE.json")
    sub.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of stdout")
    sub.set_defaults(run=_cmd_disasm)

    sub = command("fmt", "print a JSON graph in canonical form")
    sub.add_argument("file", metavar="FILE")
    sub.add_argument("--in-place", action="store_true", help="rewrite the file")
    sub.set_defaults(run=_cmd_fmt)

    sub = commands.add_parser("schema", help="print the JSON Schema of QVM graphs")
    sub.set_defaults(run=_cmd_schema)

    sub = command("info", "describe a program: counts, epochs, REV segments, capabilities")
    sub.add_argument("file", metavar="FILE")
    sub.add_argument("--json", action="store_true", help="print the summary as JSON")
    source_options(sub)
    sub.set_defaults(run=_cmd_info)

    sub = command("run", "run a program on a simulated fault-tolerant machine and print counts")
    sub.add_argument("file", metavar="FILE")
    sub.add_argument("--shots", type=_positive, default=1024, metavar="N", help="shots (1024)")
    sub.add_argument("--seed", type=_seed, metavar="S", help="seed (default: drawn, printed)")
    sub.add_argument(
        "--engine", choices=("statevector", "stabilizer"), help="engine (default: QMK chooses)"
    )
    sub.add_argument(
        "--no-noise", action="store_true", help="inject no logical errors (ideal logical qubits)"
    )
    sub.add_argument(
        "--qubit", default="qubit_gate_ns_e3", metavar="NAME", help="qubit parameter set"
    )
    sub.add_argument(
        "--profile",
        default="logical:surface_code(d=9)",
        metavar="PROFILE",
        help="code profile of qubits allocated without one",
    )
    sub.add_argument(
        "--precision", choices=("double", "single"), default="double", help="statevector dtype"
    )
    sub.add_argument("--memory", action="store_true", help="also print every shot's outcome")
    sub.add_argument("--json", action="store_true", help="print one JSON object")
    source_options(sub, profile=False)  # --profile above covers every qubit
    sub.set_defaults(run=_cmd_run)

    from qmk.commands import register_all

    register_all(command)
    return parser


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the ``qmk`` command; returns its exit status.

    Args:
        argv: the arguments after ``qmk`` (default: ``sys.argv[1:]``).
        stdout: where output goes (default: ``sys.stdout``).
        stderr: where errors go (default: ``sys.stderr``).
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version exit 0, bad usage exits 2
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(out)
        return 2
    try:
        return args.run(args, out, err)
    except QMKError as exc:
        err.write(f"{exc}\n")
        return exc.exit_status
    except (MemoryError, RecursionError) as exc:
        err.write(f"QF005 too-deep: the input is too large or nested to process ({exc!r})\n")
        return 2
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if os.environ.get("QMK_DEBUG"):
            raise
        err.write(f"qmk: internal error {type(exc).__name__}: {exc} (QMK_DEBUG=1 shows more)\n")
        return 3


def entry() -> None:
    """Console-script entry point."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
