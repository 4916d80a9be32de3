"""``qmk validate | asm | disasm | fmt | qasm | info``: check, convert, describe programs.

- ``validate FILE...`` verifies programs in any language QMK reads and lists every
  finding (exit 1 when one is an error, 2 when a file cannot be read). With ``--prove``
  the z3 SMT solver decides linearity, capabilities and the entanglement firewall under
  every valuation of the events (:mod:`qmk.qvm.prove`), each fault with a valuation
  that shows it.
- ``asm`` assembles ``.qvm.asm`` text into canonical QVM JSON (or prints what a
  ``.qasm``/``.ll``/``.bc`` program lowers to); ``disasm`` writes a JSON graph as
  assembly text; ``fmt`` prints a JSON graph in canonical form.
- ``info FILE`` describes a program: op counts, epochs, REV segments, capabilities.
- ``qasm FILE`` writes a program in any language QMK reads as OpenQASM 3
  (:mod:`qmk.frontends.qasm3_out`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from qmk.commands import (
    AddCommand,
    limits_of,
    plural,
    read_flat_source,
    read_source,
    source_options,
)
from qmk.errors import warning_line

if TYPE_CHECKING:
    from qmk.qvm.columns import Columns
    from qmk.qvm.folded import Totals
    from qmk.qvm.graph import Graph
    from qmk.qvm.limits import Limits
    from qmk.qvm.prove import Proof
    from qmk.qvm.verify import Finding, Report, VerifiedProgram


def _write(text: str, output: str | None, stdout: TextIO) -> None:
    """``text`` to ``output`` (a path), or to stdout for None or ``-``."""
    from qmk.qvm.errors import unwritable

    if output is None or output == "-":
        stdout.write(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise unwritable(output, exc) from None


def _finding_line(path: str, finding: Finding) -> str:
    return f"{path}: {finding.severity.value}: {finding}"


def _cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.frontends.errors import FrontendError
    from qmk.qvm.errors import FormatError

    limits = limits_of(args)
    status = 0
    results: list[dict[str, Any]] = []
    for path in args.files:
        try:
            flat = None if args.prove else _flat(args, path)
            if flat is not None and _flat_ok(flat, path, args, limits, out, results):
                continue
            from qmk.qvm.verify import check  # (a file read in bulk needs none of it)

            graph = (
                read_source(args, path, limits, folded=True) if flat is None else flat.to_graph()
            )
            report = check(graph, limits=limits, unroll=False, turn=False)  # rows stay folded
        except (FormatError, FrontendError) as exc:
            status = 2
            results.append({"file": path, "ok": False, "error": exc.to_json(), "findings": []})
            if not args.json:
                err.write(f"{exc}\n")  # the message already starts with the file name
            continue
        if args.prove:
            report, proof, graph = _proved(report, graph, args)
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
        notices = list((graph.metadata or {}).get("warnings", ()))  # a dialect read, say
        if notices:
            results[-1]["warnings"] = notices
        if args.prove:
            results[-1]["proof"] = None if proof is None else proof.to_json()
        if args.json:
            continue
        out.writelines(warning_line(path, notice) for notice in notices)
        for finding in report.findings:
            (out if report.ok else err).write(_finding_line(path, finding) + "\n")
        if report.ok and not args.quiet:
            warnings = len(report.findings)
            note = f", {plural(warnings, 'warning')}" if warnings else ""
            out.write(f"{path}: ok ({_ok_figures(report)}{note})\n")
            if args.prove and proof is not None:
                out.write(_proved_line(path, graph, proof))
        elif not report.ok:
            err.write(f"{path}: {plural(len(report.errors), 'error')}\n")
    if args.json:
        out.write(json.dumps({"files": results}, indent=2, ensure_ascii=False) + "\n")
    return status


def _flat(args: argparse.Namespace, path: str) -> Columns | None:
    """A flat OpenQASM file read in bulk as columns (:func:`read_flat_source`); None
    for any other file, which the statement reader then reads, as any program."""
    flat = read_flat_source(args, path)
    return None if isinstance(flat, str) else flat


def _flat_ok(
    flat: Columns,
    path: str,
    args: argparse.Namespace,
    limits: Limits,
    out: TextIO,
    results: list[dict[str, Any]],
) -> bool:
    """Verify ``flat`` on its columns and report it where it is clean; False where it
    has a fault (the verifier's walk of its graph view then names each finding)."""
    from qmk.qvm.columns import check

    figures = check(flat, limits=limits)
    if figures is None:
        return False
    results.append({"file": path, "ok": True, "error": None, "findings": []})
    if not args.json and not args.quiet:
        out.write(
            f"{path}: ok ({plural(figures.nodes, 'node')}, {plural(figures.epochs, 'epoch')}, "
            f"peak {plural(figures.peak_live_qubits, 'live qubit')})\n"
        )
    return True


def _ok_figures(report: Report) -> str:
    """Nodes, epochs and peak of a verified program; rows too for a folded one."""
    program, totals = report.program, report.totals
    if totals is not None:
        return (
            f"{plural(totals.rows, 'row')}, {plural(totals.nodes, 'node')} unrolled, "
            f"{plural(totals.epochs, 'epoch')}, "
            f"peak {plural(totals.peak_live_qubits, 'live qubit')}"
        )
    assert program is not None
    return (
        f"{plural(len(program.graph.nodes), 'node')}, "
        f"{plural(len(program.epochs), 'epoch')}, "
        f"peak {plural(program.peak_live_qubits, 'live qubit')}"
    )


def _proved(
    report: Report, graph: Graph, args: argparse.Namespace
) -> tuple[Report, Proof | None, Graph]:
    """``report`` with the solver's verdict in place of the verifier's on what the
    solver decides; the proof (None when the verifier's other errors come first); the
    graph the solver read (a program with REPEAT rows: its unrolling)."""
    from qmk.qvm.prove import DECIDED, prove
    from qmk.qvm.verify import Report, check

    if any(f.is_error and f.code not in DECIDED for f in report.findings):
        return report, None, graph
    channels = [c.strip() for c in (args.channels or "").split(",") if c.strip()]
    from qmk.qvm.fold import unroll

    limits = limits_of(args)
    graph = unroll(graph, max_nodes=limits.max_unrolled_nodes)  # the solver reads nodes
    proof = prove(graph, tenant=args.tenant, channels=channels)
    findings = tuple(f for f in report.findings if f.code not in DECIDED) + proof.findings
    program = report.program
    if program is None and proof.ok:  # the verifier refused only what the solver proved
        program = check(graph, limits=limits, excused=DECIDED).program
    totals = report.totals if proof.ok else None
    proved = Report(findings=findings, program=program if proof.ok else None, totals=totals)
    return proved, proof, graph


def _proved_line(path: str, graph: Graph, proof: Proof) -> str:
    events = plural(len(graph.resources.events), "event")
    return (
        f"{path}: proved {', '.join(proof.proved)} under every valuation of its {events} "
        f"({plural(proof.questions, 'question')} to the solver, {proof.seconds:.3f} s)\n"
    )


def _cmd_asm(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.qvm import asm, graph_file
    from qmk.qvm.files import ASM_SUFFIXES

    if args.file.endswith(ASM_SUFFIXES) and args.format in (None, "qvm-asm"):
        graph = asm.assemble_file(args.file, limits=limits_of(args))
    else:  # another language: print the QVM JSON it lowers to
        graph = read_source(args, args.file, limits_of(args))
    _write(graph_file.dumps(graph) + "\n", args.output, out)
    return 0


def _cmd_disasm(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.qvm import asm, graph_file
    from qmk.qvm.files import read_graph

    limits = limits_of(args)
    graph = graph_file.load(args.file, limits=limits) if args.file != "-" else read_graph("-")
    _write(asm.disassemble(graph), args.output, out)
    return 0


def _cmd_fmt(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.qvm import graph_file
    from qmk.qvm.errors import FormatError
    from qmk.qvm.files import ASM_SUFFIXES, read_graph

    if args.file.endswith(ASM_SUFFIXES):
        raise FormatError.of(
            "wrong-type",
            f"{args.file}: qmk fmt formats JSON graphs; use 'qmk asm {args.file}' for JSON "
            "from assembly",
        )
    text = graph_file.dumps(read_graph(args.file, limits=limits_of(args))) + "\n"
    if args.in_place:
        if args.file == "-":
            raise FormatError.of("unreadable-file", "--in-place needs a file, not stdin")
        _write(text, args.file, out)
    else:
        out.write(text)
    return 0


def _cmd_qasm(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.frontends.qasm3_out import to_qasm3
    from qmk.qvm.verify import verify

    limits = limits_of(args)
    _write(to_qasm3(verify(read_source(args, args.file, limits), limits=limits)), args.output, out)
    return 0


def _summary_lines(summary: dict[str, Any]) -> list[str]:
    """The lines ``qmk info`` prints alike for a flat and a folded program."""
    counts = summary["counts"]
    return [
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
    ]


def _info_text(path: str, program: VerifiedProgram) -> str:
    summary = program.summary()
    lines = [
        f"{path}: QVM {summary['version']}, {summary['nodes']} nodes, "
        f"{summary['dag_edges']} DAG edges",
        *_summary_lines(summary),
        f"  epochs      {len(summary['epochs'])}: "
        + ", ".join(f"#{e['index']} {e['nodes']} nodes" for e in summary["epochs"][:12])
        + (" ..." if len(summary["epochs"]) > 12 else ""),
        f"  REV         {plural(len(summary['rev_segments']), 'segment')}",
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


def _folded_info_text(path: str, totals: Totals) -> str:
    """``qmk info`` of a program with REPEAT rows or blocks: its totals, found folded."""
    summary = totals.summary()
    folds = plural(summary["repeats"], "REPEAT row")
    if summary["blocks"]:
        folds += f", {plural(summary['blocks'], 'block')}"
    lines = [
        f"{path}: QVM {summary['version']}, {summary['rows']} rows "
        f"({folds}), {summary['nodes']} nodes unrolled",
        *_summary_lines(summary),
        f"  epochs      {summary['epochs']}",
    ]
    lines += [f"  warning     {warning}" for warning in totals.warnings]
    return "\n".join(lines) + "\n"


def _cmd_info(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    limits = limits_of(args)
    flat = _flat(args, args.file)
    if flat is not None:  # read in bulk: verified on its columns where they are clean
        from qmk.qvm.columns import verified

        program = verified(flat, limits=limits)
        if program is not None:
            _write_info(args, program, out)
            return 0
    from qmk.qvm.verify import check

    graph = read_source(args, args.file, limits, folded=True) if flat is None else flat.to_graph()
    report = check(graph, limits=limits, unroll=False, turn=False)
    if not report.ok:
        for finding in report.findings:
            err.write(_finding_line(args.file, finding) + "\n")
        return 1
    if report.totals is not None:  # REPEAT rows: totals by multiplication, not unrolled
        summary = report.totals.summary()
        text = json.dumps(summary, indent=2, ensure_ascii=False) + "\n" if args.json else ""
        out.write(text or _folded_info_text(args.file, report.totals))
        return 0
    assert report.program is not None
    _write_info(args, report.program, out)
    return 0


def _write_info(args: argparse.Namespace, program: VerifiedProgram, out: TextIO) -> None:
    if args.json:
        out.write(json.dumps(program.summary(), indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(_info_text(args.file, program))


def register(add: AddCommand) -> None:
    """Add ``validate``, ``asm``, ``disasm``, ``fmt``, ``qasm`` and ``info``."""
    sub = add("validate", "verify programs (QVM, OpenQASM, QIR) and list every finding")
    sub.add_argument("files", nargs="+", metavar="FILE")
    sub.add_argument("--json", action="store_true", help="print the findings as JSON")
    sub.add_argument("-q", "--quiet", action="store_true", help="print only findings")
    proving = sub.add_argument_group("proofs (the z3 SMT solver: the prove extra)")
    proving.add_argument(
        "--prove",
        action="store_true",
        help="decide linearity, capabilities and the firewall under every valuation of the "
        "events, each fault with a valuation that shows it",
    )
    proving.add_argument(
        "--tenant",
        default="self",
        metavar="NAME",
        help="with --prove: who submits it (whose are qubits an ALLOC_LQ names no tenant of)",
    )
    proving.add_argument(
        "--channels",
        metavar="C[,C...]",
        help="with --prove: channels bound to a kernel channel: an OPEN_CHAN on one may join "
        "two tenants' qubits",
    )
    source_options(sub)
    sub.set_defaults(run=_cmd_validate)

    sub = add(
        "asm", "assemble .qvm.asm text into canonical JSON (or print what .qasm/.ll lower to)"
    )
    sub.add_argument("file", metavar="FILE.asm")
    sub.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of stdout")
    source_options(sub)
    sub.set_defaults(run=_cmd_asm)

    sub = add("disasm", "disassemble a JSON graph into assembly text")
    sub.add_argument("file", metavar="FILE.json")
    sub.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of stdout")
    sub.set_defaults(run=_cmd_disasm)

    sub = add("fmt", "print a JSON graph in canonical form")
    sub.add_argument("file", metavar="FILE")
    sub.add_argument("--in-place", action="store_true", help="rewrite the file")
    sub.set_defaults(run=_cmd_fmt)

    sub = add("qasm", "write a program (QVM, OpenQASM, QIR) as OpenQASM 3")
    sub.add_argument("file", metavar="FILE")
    sub.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of stdout")
    source_options(sub)
    sub.set_defaults(run=_cmd_qasm)

    sub = add("info", "describe a program: counts, epochs, REV segments, capabilities")
    sub.add_argument("file", metavar="FILE")
    sub.add_argument("--json", action="store_true", help="print the summary as JSON")
    source_options(sub)
    sub.set_defaults(run=_cmd_info)
