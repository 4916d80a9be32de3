"""``qmk engines``: the engines QMK knows, which are installed here, and what each can do.

One line per engine (installed ones marked, the others with what is missing), then each
installed engine's capabilities; ``--json`` prints the registry's capabilities
(:func:`qmk.engines.registry.capabilities`) as one JSON object. ``qmk run --explain``
shows the router's choice for one program.
"""

from __future__ import annotations

import argparse
import json
from typing import TextIO

from qmk import defaults
from qmk.commands import AddCommand


def _cmd_engines(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.engines.registry import capabilities

    found = [capabilities(name) for name in defaults.ENGINES]
    if args.json:
        data = {"engines": [c.to_json() for c in found]}
        out.write(json.dumps(data, ensure_ascii=False) + "\n")
        return 0
    installed = [c for c in found if c.available]
    lines = [f"{len(installed)} of {len(found)} engines installed here:"]
    width = max(len(c.name) for c in found)
    for c in found:
        if not c.available:
            continue
        gates = "Clifford gates" if c.clifford_only else f"{len(c.gates)} gates"
        traits = [
            f"<= {c.max_qubits} qubits",
            gates,
            {
                "native": "mid-circuit",
                "segments": "mid-circuit (segments)",
                "replay": "terminal measurements only",
            }[c.state],
            "density matrix" if c.density_matrix else "",
            "/".join(c.precisions),
            "noise: " + ", ".join(c.noise_channels),
            "batch sampling" if c.batch else "",
            "GPU" if c.gpu else "",
        ]
        lines.append(f"  {c.name:<{width}}  {c.summary}")
        lines.append(f"  {'':<{width}}  {'; '.join(t for t in traits if t)}")
    missing = [c for c in found if not c.available]
    if missing:
        lines.append("not available:")
        lines.extend(f"  {c.name:<{width}}  {c.reason}" for c in missing)
    out.write("\n".join(lines) + "\n")
    return 0


def register(add: AddCommand) -> None:
    """Add ``engines``."""
    sub = add(
        "engines", "list the simulation engines installed here and their capabilities", limits=False
    )
    sub.add_argument("--json", action="store_true", help="print one JSON object")
    sub.set_defaults(run=_cmd_engines)
