"""``qmk estimate``: physical resources a program needs, as the Azure QRE computes them.

``qmk estimate FILE`` counts the program's logical resources (any format
:func:`qmk.frontends.read_program` reads) and prints the estimate;
``qmk estimate --logical-counts JSON`` starts from QRE logical counts. ``--params
JSON`` takes QRE job parameters. Each JSON is a file path or inline text.
``--json`` prints QRE's result JSON. See ``docs/estimation.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from qmk.commands import AddCommand, duration_text, limits_of, read_source, source_options
from qmk.qec.errors import QECError


def _json_arg(text: str, option: str) -> Any:
    """Inline JSON text, or the JSON in the file it names."""
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        try:
            stripped = Path(text).read_text(encoding="utf-8")
        except OSError as exc:
            raise QECError.of(
                "bad-parameter", f"{option}: cannot read {text!r}: {exc.strerror}"
            ) from None
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise QECError.of(
            "bad-parameter", f"{option}: not valid JSON ({exc.msg} at line {exc.lineno})"
        ) from None


def _table(result: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = []
    counts = result["logicalCounts"]
    rows += [(f"logical {k}", f"{v:,}") for k, v in counts.items()]
    entries = result.get("frontierEntries") or [result]
    for index, entry in enumerate(entries):
        prefix = f"[{index}] " if "frontierEntries" in result else ""
        pc, bd, lq = (
            entry["physicalCounts"],
            entry["physicalCounts"]["breakdown"],
            entry["logicalQubit"],
        )
        rows += [
            (f"{prefix}physical qubits", f"{pc['physicalQubits']:,}"),
            (f"{prefix}runtime", duration_text(pc["runtime"])),
            (f"{prefix}rQOPS", f"{pc['rqops']:,}"),
            (f"{prefix}code distance", str(lq["codeDistance"])),
            (f"{prefix}logical cycle time", duration_text(lq["logicalCycleTime"])),
            (f"{prefix}algorithmic logical qubits", f"{bd['algorithmicLogicalQubits']:,}"),
            (f"{prefix}logical depth", f"{bd['logicalDepth']:,}"),
            (f"{prefix}T states", f"{bd['numTstates']:,}"),
            (f"{prefix}T factories", f"{bd['numTfactories']:,}"),
            (f"{prefix}qubits for algorithm", f"{bd['physicalQubitsForAlgorithm']:,}"),
            (f"{prefix}qubits for T factories", f"{bd['physicalQubitsForTfactories']:,}"),
        ]
        factory = entry.get("tfactory")
        if factory:
            units = ", ".join(
                f"{n} x {name} (d={d})"
                for n, name, d in zip(
                    factory["numUnitsPerRound"],
                    factory["unitNamePerRound"],
                    factory["codeDistancePerRound"],
                    strict=True,
                )
            )
            rows.append((f"{prefix}T factory", units))
        dec = entry.get("decoder")
        if dec:
            rows.append((f"{prefix}syndrome bits per round", f"{dec['syndromeBitsPerRound']:,}"))
            rows.append(
                (f"{prefix}decoder throughput", f"{dec['syndromeBitsPerSecond']:.3g} bits/s")
            )
    for warning in result.get("warnings", []):
        rows.append(("warning", warning))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.estimate.counts import LogicalCounts, count_graph
    from qmk.estimate.estimator import estimate

    if (args.file is None) == (args.logical_counts is None):
        raise QECError.of("bad-parameter", "give a program FILE or --logical-counts, not both")
    params = _json_arg(args.params, "--params") if args.params else {}
    if args.logical_counts is not None:
        counts = LogicalCounts.from_json(_json_arg(args.logical_counts, "--logical-counts"))
    else:
        # a stim circuit folded, as the stim target runs it: its REPEAT blocks counted by
        # multiplication, and its noise channels (physical errors, no logical operation)
        # not counted as the rotations the gate-level reading writes them in
        counts = count_graph(read_source(args, args.file, limits_of(args), folded=True))
    if isinstance(params, list):
        results = [estimate(counts, p) for p in params]
        text = json.dumps(results, indent=2) if args.json else "\n\n".join(map(_table, results))
    else:
        result = estimate(counts, params)
        text = json.dumps(result, indent=2) if args.json else _table(result)
    out.write(text + "\n")
    return 0


def _layout(args: argparse.Namespace, out: TextIO) -> int:
    """``qmk plan FILE --layout``: the program's patches in a block, factories beside."""
    from qmk.abi.errors import CommandError
    from qmk.estimate.counts import count_graph
    from qmk.ft.layout import draw_png, layout_for
    from qmk.ft.model import ft_model
    from qmk.ft.report import layout_json, layout_text

    if args.objective is not None:
        raise CommandError.of(
            "bad-option", "--objective chooses among code variants; --layout draws one"
        )
    graph = read_source(args, args.file, limits_of(args))
    model = ft_model(count_graph(graph), args.qubit, error_budget=args.error_budget)
    layout = layout_for(model, args.block or "fast", graph.resources.vqs)
    if args.png is not None:
        draw_png(layout, args.png, f"{args.file}: {layout.block} block, {model.profile}")
    if args.json:
        out.write(json.dumps(layout_json(layout, model), indent=2) + "\n")
    else:
        out.write(layout_text(args.file, layout, model))
    return 0


def _plan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.abi.errors import CommandError
    from qmk.commands.teleport import lines as teleport_lines
    from qmk.commands.teleport import teleported
    from qmk.estimate.counts import count_graph
    from qmk.estimate.variants import plan_variants

    if args.layout:
        return _layout(args, out)
    if args.block is not None or args.png is not None:
        flag = "--block" if args.block is not None else "--png"
        raise CommandError.of("bad-option", f"{flag} is an option of --layout")
    graph = read_source(args, args.file, limits_of(args))
    done = teleported(args, graph)  # --modules/--placement: where gates are teleported
    counts = count_graph(graph)
    plan = plan_variants(
        counts, args.qubit, error_budget=args.error_budget, objective=args.objective or "volume"
    )
    if args.json:
        data = plan.to_json()
        if done is not None:
            data["teleportation"] = done.to_json()
        out.write(json.dumps(data, indent=2) + "\n")
        return 0
    lines = [
        f"{args.file}: code variants on {plan.qubit}, error budget {plan.error_budget:g}, "
        f"objective {plan.objective}"
    ]
    best: dict[str, Any] = {}
    for variant in plan.variants:
        if not variant.feasible:
            lines.append(f"  {variant.family:<14} infeasible: {variant.why}")
            continue
        shown = best.get(variant.family)
        if shown is None or variant.cost(plan.objective) < shown.cost(plan.objective):
            best[variant.family] = variant
    for family, variant in best.items():
        count = sum(1 for v in plan.variants if v.family == family)
        lines.append(
            f"  {variant.profile:<30} {variant.physical_qubits:>12,} qubits  "
            f"{duration_text(variant.runtime_ns or 0):>10}  {variant.t_factories} T factories  "
            f"(best of {count} on its frontier)"
        )
    chosen = plan.chosen
    lines.append(
        f"chosen: {chosen.profile} with {chosen.t_factories} T factories; run it with "
        f"--profile {chosen.profile} (or --profile auto)"
    )
    if done is not None:
        lines += teleport_lines(done)
    out.write("\n".join(lines) + "\n")
    return 0


def register(add: AddCommand) -> None:
    """Add ``qmk estimate`` and ``qmk plan``."""
    from qmk import defaults
    from qmk.estimate.estimator import DEFAULT_ERROR_BUDGET
    from qmk.estimate.variants import OBJECTIVES

    plan = add("plan", "code variants of a program and the cheapest under an error budget")
    plan.add_argument("file", help="program file (.qvm.json, .qvm.asm, .qasm, .ll, ...)")
    source_options(plan, profile=False)
    plan.add_argument("--qubit", default=defaults.QUBIT, metavar="NAME", help="qubit parameters")
    plan.add_argument(
        "--error-budget",
        type=float,
        default=DEFAULT_ERROR_BUDGET,
        metavar="E",
        help=f"total error budget ({DEFAULT_ERROR_BUDGET:g})",
    )
    plan.add_argument(
        "--objective", choices=OBJECTIVES, default=None, help="what to minimise (volume)"
    )
    plan.add_argument(
        "--layout",
        action="store_true",
        help="draw the program's logical qubits as surface-code patches in a block with "
        "routing space, the estimator's T factories beside it (docs/ft-execution.md)",
    )
    plan.add_argument(
        "--block",
        choices=("compact", "intermediate", "fast"),
        help="with --layout: Litinski's block (fast: the estimator's layout)",
    )
    plan.add_argument("--png", metavar="OUT.png", help="with --layout: also draw it as a PNG")
    plan.add_argument(
        "--json", action="store_true", help="print every variant (or the layout) as JSON"
    )
    from qmk.commands.teleport import add_options

    add_options(plan)
    plan.set_defaults(run=_plan)

    parser = add("estimate", "physical resource estimate of a program (Azure QRE model)")
    parser.add_argument(
        "file", nargs="?", help="program file (.qvm.json, .qvm.asm, .qasm, .ll, ...)"
    )
    source_options(parser, profile=False)
    parser.add_argument(
        "--logical-counts", metavar="JSON", help="QRE logical counts (file path or inline JSON)"
    )
    parser.add_argument(
        "--params", metavar="JSON", help="QRE job parameters, or a list of them (path or inline)"
    )
    parser.add_argument("--json", action="store_true", help="print QRE's result JSON")
    parser.set_defaults(run=_run)
