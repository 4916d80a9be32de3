"""Program text in any language QMK reads: its language seen in it, and its QVM graph.

``qmk.run`` (a Python user's text) and the REST API (a client's ``program``) read text
through this one module, so they know the same languages by the same names.

>>> sniff("// Bell\\nOPENQASM 3.0;"), sniff('{"version": "0.2"}'), sniff("a: ALLOC_LQ vq:q")
('qasm', 'qvm-json', 'qvm-asm')
>>> sniff("; ModuleID = 'bell'\\ndefine void @main() {"), sniff("bell.qasm")
('qir', None)
>>> sniff("# Bell\\nH 0\\nCX 0 1\\nM 0 1")
'stim'
>>> lower_text("OPENQASM 3.0;\\nqubit q;\\nreset q;", "qasm", "<text>").version
'0.2'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from qmk.defaults import PROGRAM_FORMATS

if TYPE_CHECKING:
    from qmk.qvm.graph import Graph
    from qmk.qvm.limits import Limits

_OPENQASM = re.compile(r"\A(?:\s|//[^\n]*\n|/\*.*?\*/)*OPENQASM\b", re.DOTALL)
_LLVM = re.compile(
    r"^\s*(?:define|declare)\b|^\s*target\s+(?:triple|datalayout)\b|^\s*source_filename\s*=|"
    r"^\s*; ModuleID",
    re.MULTILINE,
)
# a directive (.caps) or a node line (label: OP ...), the first line that is neither blank
# nor a comment of QVM assembly
_ASM_LINE = re.compile(r"\s*(?:\.[A-Za-z]\w*|[^\s:;#]+\s*:\s*[A-Z][A-Z0-9_]*)(?:\s|$)")
# a stim instruction: its name, arguments in parentheses, and targets (qubits, !q,
# rec[-k], sweep[k], Pauli targets X3, combiners *, spaced or not: X0*Z1), or a REPEAT
# block's opening
_STIM_LINE = re.compile(
    r"\s*(?:REPEAT\s+\d+\s*\{|[A-Z][A-Z0-9_]*(?:\([^)]*\))?"
    r"(?:\s+(?:!?[XYZ]?\d+(?:\*!?[XYZ]?\d+)*|!?rec\[-\d+\]|sweep\[\d+\]|\*))*)\s*(?:#.*)?$"
)


def sniff(text: str) -> str | None:
    """The language of program text as it shows it, or None.

    ``qasm`` for an OPENQASM header (after comments), ``qvm-json`` for a JSON object,
    ``qir`` for LLVM IR, ``qvm-asm`` for QVM assembly. ``stim`` for a stim circuit, by
    its first instruction: ``H 0``, ``CX 0 1``, ``M(0.01) !2``, ``REPEAT 10 {``."""
    if _OPENQASM.match(text):
        return "qasm"
    if text.lstrip().startswith("{"):
        return "qvm-json"
    if _LLVM.search(text):
        return "qir"
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith((";", "#")):
            if _ASM_LINE.match(line):
                return "qvm-asm"
            return "stim" if _STIM_LINE.match(line) else None
    return None


def lower_text(
    program: str | bytes,
    kind: str,
    name: str,
    *,
    limits: Limits | None = None,
    params: Mapping[str, float] | None = None,
    base_dir: Path | None = None,
    max_nodes: int | None = None,
    profile: str | None = None,
    folded: bool = False,
) -> Graph:
    """Program text (or QIR bitcode) in language ``kind`` (of :data:`PROGRAM_FORMATS`)
    as a QVM graph; ``name`` names it in errors, ``params`` are an OpenQASM 3 program's
    input values and ``base_dir`` is where QVM assembly's ``.include`` looks. ``profile``
    and ``folded`` are :func:`qmk.frontends.read_program`'s.

    ``max_nodes`` caps the graph (None: no cap). OpenQASM of more statements, or QVM
    assembly or QIR text of more lines, than it (plus
    :data:`~qmk.frontends.qasm.STATEMENT_SLACK`) is refused before it is parsed. An
    OpenQASM 3 loop is refused before it is unrolled (:func:`qmk.frontends.qasm.from_qasm`).

    Raises:
        FrontendError, AsmError, FormatError: the text does not lower.
        QuotaError: past ``max_nodes`` (``limit: "max_graph_nodes"``).
    """
    if kind in ("qasm", "qasm2", "qasm3"):
        from qmk.frontends.qasm import from_qasm

        version = {"qasm": None, "qasm2": 2, "qasm3": 3}[kind]
        text = program if isinstance(program, str) else program.decode("utf-8")
        return from_qasm(
            text,
            name=name,
            profile=profile,
            version=version,
            params=params or None,
            max_nodes=max_nodes,
        )
    if max_nodes is not None and kind in ("qir", "qvm-asm"):
        from qmk.frontends.qasm import STATEMENT_SLACK, too_many_nodes

        lines = program.count("\n") if isinstance(program, str) else program.count(b"\n")
        if lines > max_nodes + STATEMENT_SLACK:
            raise too_many_nodes(name, f"{lines} lines", lines - STATEMENT_SLACK, max_nodes)
    if kind == "qir":
        from qmk.frontends.qir import from_qir

        return from_qir(program, name=name, profile=profile)
    if kind == "stim":
        from qmk.frontends.stim import from_stim
        from qmk.frontends.stim_fold import read_folded

        text = program if isinstance(program, str) else program.decode("utf-8")
        if folded:
            return read_folded(text, name=name, profile=profile)
        return from_stim(text, name=name, profile=profile, max_nodes=max_nodes, limits=limits)
    data = program.encode("utf-8") if isinstance(program, str) else program
    if kind == "qvm-json":
        from qmk.qvm import graph as graph_io

        return graph_io.loads(data, source=name, limits=limits)
    from qmk.qvm.asm import assemble

    return assemble(data.decode("utf-8"), source=name, limits=limits, base_dir=base_dir)


__all__ = ["PROGRAM_FORMATS", "lower_text", "sniff"]
