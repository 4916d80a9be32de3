"""The module options of ``qmk plan`` and ``qmk run``: place a program on modules and
teleport its cross-module gates (:mod:`qmk.qvm.teleport`).

``--modules N`` splits the program's qubits over N modules (automatic placement,
:func:`~qmk.qvm.teleport.auto_placement`). With ``--module-qubits K`` each module holds
K logical qubits, the EPR pairs' halves included, and a program that fits one module
stays on it. Without it the qubits are spread evenly over all N (each module holding
its share plus 2 places for the pairs' halves). ``--placement q0=0,q1=1,...`` places
them yourself, ``--placement program`` as the program declares (an integer
``metadata.module`` on each ``ALLOC_LQ``). ``--link-fidelity`` and
``--link-latency-ns`` describe the link between modules (the kernel's ``[faults]
link_fidelity`` and ``link_latency_ns``).
"""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the parser of qmk run and qmk estimate imports this: a run loads no graph
    from qmk.qvm.graph import Graph


def _fidelity(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {text!r}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return int(text)


def add_options(sub: argparse.ArgumentParser) -> None:
    """Add ``--modules``, ``--module-qubits``, ``--placement``, ``--link-fidelity`` and
    ``--link-latency-ns`` to a subcommand."""
    group = sub.add_argument_group(
        "modules", "place the program on modules; gates across modules are teleported"
    )
    group.add_argument(
        "--modules",
        type=_count,
        metavar="N",
        help="split the qubits over N modules (automatic placement, fewest cross-module gates)",
    )
    group.add_argument(
        "--module-qubits",
        type=_count,
        metavar="K",
        help="logical qubits each module holds, EPR pairs' halves included (default: an even "
        "share of the program's qubits plus 2)",
    )
    group.add_argument(
        "--placement",
        metavar="NAME=MODULE,...",
        help="place each allocated qubit yourself, e.g. q0=0,q1=1 (instead of automatic); "
        "'program': as its ALLOC_LQ nodes declare (an integer metadata.module)",
    )
    group.add_argument(
        "--link-fidelity",
        type=_fidelity,
        metavar="F",
        help="Werner fidelity of the link's EPR pairs (1.0)",
    )
    group.add_argument(
        "--link-latency-ns",
        type=_non_negative,
        metavar="NS",
        help="time the link takes to deliver one EPR pair (0)",
    )


def teleported(args: argparse.Namespace, graph: Graph) -> Any:
    """``graph`` placed and teleported as the options ask (a
    :class:`~qmk.qvm.teleport.Teleported`, its graph verified), or None when no module
    option was given.

    Raises:
        CommandError: ``QW011`` for a link or module option without ``--modules`` or
            ``--placement`` (bad usage).
        PlacementError: a bad placement, or one the modules cannot hold.
        VerificationError: the program does not verify.
    """
    if args.modules is None and args.placement is None:
        for dest in ("module_qubits", "link_fidelity", "link_latency_ns"):
            if getattr(args, dest) is not None:
                from qmk.abi.errors import CommandError

                flag = "--" + dest.replace("_", "-")
                # bad usage of the command (exit 2), not a finding about the program
                raise CommandError.of("bad-option", f"{flag} needs --modules or --placement")
        return None  # (before the imports below: a plain run loads no placement code)
    from qmk.qvm.errors import PlacementError
    from qmk.qvm.teleport import (
        auto_placement,
        declared_placement,
        explicit_placement,
        parse_placement,
        qubits_of,
        teleport,
    )
    from qmk.qvm.verify import verify

    verify(graph)
    capacities = None
    if args.modules is not None:
        share = math.ceil(len(qubits_of(graph)) / args.modules) + 2
        capacities = [args.module_qubits or share] * args.modules
    if args.placement is not None:
        if args.placement == "program":
            mapping = declared_placement(graph)
            if mapping is None:
                raise PlacementError.of(
                    "bad-placement",
                    "--placement program: no ALLOC_LQ declares an integer metadata.module",
                )
        else:
            mapping = parse_placement(args.placement)
        placement = explicit_placement(graph, mapping, capacities=capacities)
    else:
        assert capacities is not None
        placement = auto_placement(graph, capacities, spread=args.module_qubits is None)
    fidelity = 1.0 if args.link_fidelity is None else args.link_fidelity
    latency = 0.0 if args.link_latency_ns is None else args.link_latency_ns
    done = teleport(graph, placement, fidelity=fidelity, latency_ns=latency)
    verify(done.graph)
    return done


def lines(done: Any) -> list[str]:
    """What ``qmk plan`` and ``qmk run`` print of a teleported program."""
    placement = done.placement
    how = "automatic" if placement.automatic else "given"
    out = [
        f"modules: {placement.modules} ({how} placement, {placement.cut} cross-module "
        f"interactions); link fidelity {done.fidelity:g}, latency {done.latency_ns:g} ns"
    ]
    for module in range(placement.modules):
        qubits = placement.qubits_on(module)
        peak = done.peak_qubits[module] if module < len(done.peak_qubits) else 0
        shown = " ".join(qubits[:12]) + (" ..." if len(qubits) > 12 else "")
        out.append(f"  module {module}: {len(qubits)} qubits, peak {peak} live  {shown}")
    out.append(
        f"teleported gates: {len(done.gates)}, EPR pairs consumed: {done.epr_pairs} per shot, "
        f"latency added: {done.latency_added_ns:g} ns"
    )
    for gate in done.gates:
        pairs = ", ".join(f"{a}->{b}" for a, b in gate.pairs)
        out.append(
            f"  {gate.node} {gate.op} {' '.join(gate.qubits)}: on module {gate.home}, pairs {pairs}"
        )
    return out


__all__ = ["add_options", "lines", "teleported"]
