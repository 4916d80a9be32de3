"""OpenQASM as vendors write it, read as the standard language: a text pass before parsing.

What it rewrites (every rewrite keeps each statement on its line, so errors still name
the user's lines), and the coded warning each one gives:

- **physical qubits** ``$n`` (OpenQASM 3): every ``$n`` becomes qubit ``n`` of one
  register of ``max n + 1`` qubits (named :data:`PHYSICAL`, declared first), so ``$0``
  .. ``$max`` are ``max + 1`` distinct qubits whether or not every index is used.
  Standard OpenQASM 3: no warning.
- **box** (OpenQASM 3): ``box { ... }`` and ``box[duration] { ... }`` run their body as
  a plain scope. A box's duration is timing only (QMK models no idle time): it is
  dropped with the warning QL113 ``timing-ignored`` naming it, never silently.
- **Amazon Braket's dialect**: OpenQASM 3 without ``include "stdgates.inc"``, calling
  the standard gates and Braket's own (``cnot``, ``si``, ``ti``, ``v``, ``vi``,
  ``phaseshift``, ``cphaseshift``/``00``/``01``/``10``, ``ccnot``, ``iswap``, ``pswap``,
  ``xy``, ``xx``, ``yy``, ``zz``, ``ecr``, ``gpi``, ``gpi2``, ``i``). ``stdgates.inc`` is
  included and Braket's gates are defined as its documentation gives their matrices
  (:data:`BRAKET_GATES`). Warning QL112 ``dialect`` names Braket and the gates.
- **Q#'s OpenQASM output** (OpenQASM 3 with ``stdgates.inc`` calling ``rxx``, ``ryy``,
  ``rzz`` that it does not define): defined as Q#'s ``Rxx``/``Ryy``/``Rzz``
  (``exp(-i theta/2 P⊗P)``); warning QL112 naming Q#.
- **pytket's gate libraries** (OpenQASM 2). ``include "hqslib1.inc";`` is ``qelib1.inc``
  plus Quantinuum's primitives as pytket reads them (``Rz`` = Rz, ``U1q`` = PhasedX,
  ``ZZ`` = ZZMax, ``RZZ`` = ZZPhase, ``Rxxyyzz`` = TK2, and ``cs``/``csdg``).
  ``include "oqclib1.inc";`` defines exactly OQC's ``rz``, ``sx`` and ``ecr`` (pytket's
  ECR matrix, which is Qiskit's). Warning QL112 names the library.

>>> from qmk.frontends.qasm import STDGATES_GATES
>>> text = "OPENQASM 3.0;\\nbit[2] b;\\nh $0;\\ncnot $0, $1;\\nb[0] = measure $0;\\n"
>>> p = prepare(text, "t.qasm", STDGATES_GATES)
>>> [w["name"] for w in p.warnings], p.physical
(['dialect'], 2)
>>> p.source.splitlines()[3]
'cnot __qmk_physical[0], __qmk_physical[1];'
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass

from qmk.errors import warning
from qmk.frontends.errors import FrontendError
from qmk.qvm.graph import Graph

#: The register the physical qubits ``$n`` become (qubit ``n`` of it).
PHYSICAL = "__qmk_physical"

#: Braket's gates beyond ``stdgates.inc``, as OpenQASM 3 over ``stdgates.inc`` (Braket's
#: gate documentation: its matrices, first qubit the most significant).
BRAKET_GATES: Mapping[str, str] = {
    "i": "gate i a { id a; }",
    "si": "gate si a { sdg a; }",
    "ti": "gate ti a { tdg a; }",
    "v": "gate v a { sx a; }",
    "vi": "gate vi a { inv @ sx a; }",
    "phaseshift": "gate phaseshift(l) a { p(l) a; }",
    "cnot": "gate cnot a, b { cx a, b; }",
    "ccnot": "gate ccnot a, b, c { ccx a, b, c; }",
    "cphaseshift": "gate cphaseshift(l) a, b { cp(l) a, b; }",
    "cphaseshift00": "gate cphaseshift00(l) a, b { x a; x b; cp(l) a, b; x a; x b; }",
    "cphaseshift01": "gate cphaseshift01(l) a, b { x a; cp(l) a, b; x a; }",
    "cphaseshift10": "gate cphaseshift10(l) a, b { x b; cp(l) a, b; x b; }",
    "xx": "gate xx(t) a, b { h a; h b; cx a, b; rz(t) b; cx a, b; h a; h b; }",
    "yy": (
        "gate yy(t) a, b { rx(pi/2) a; rx(pi/2) b; cx a, b; rz(t) b; cx a, b; "
        "rx(-pi/2) a; rx(-pi/2) b; }"
    ),
    "zz": "gate zz(t) a, b { cx a, b; rz(t) b; cx a, b; }",
    "xy": "gate xy(t) a, b { xx(-t/2) a, b; yy(-t/2) a, b; }",
    "iswap": "gate iswap a, b { s a; s b; h a; cx a, b; cx b, a; h b; }",
    "pswap": "gate pswap(f) a, b { swap a, b; p(f) a; p(f) b; cp(-2*f) a, b; }",
    "ecr": (
        "gate ecr a, b { h b; cx a, b; rz(pi/4) b; cx a, b; h b; x a; "
        "h b; cx a, b; rz(-pi/4) b; cx a, b; h b; }"
    ),
    "gpi": "gate gpi(f) a { U(pi, f, pi - f) a; }",
    "gpi2": "gate gpi2(f) a { U(pi/2, f - pi/2, pi/2 - f) a; }",
}
#: The gates a Braket gate's definition calls first (defined before it).
_BRAKET_NEEDS = {"xy": ("xx", "yy")}

#: Q#'s two-qubit rotations, over ``stdgates.inc``: ``exp(-i theta/2 P⊗P)``.
QSHARP_GATES: Mapping[str, str] = {
    "rxx": BRAKET_GATES["xx"].replace("gate xx", "gate rxx"),
    "ryy": BRAKET_GATES["yy"].replace("gate yy", "gate ryy"),
    "rzz": BRAKET_GATES["zz"].replace("gate zz", "gate rzz"),
}

_RYY2 = "rx(pi/2) a; rx(pi/2) b; rzz(t) a, b; rx(-pi/2) a; rx(-pi/2) b;"
#: pytket's libraries (OpenQASM 2), as what replaces their ``include`` line.
PYTKET_LIBRARIES: Mapping[str, str] = {
    "hqslib1.inc": " ".join(
        [
            'include "qelib1.inc";',
            "gate Rz(l) a { rz(l) a; }",
            "gate U1q(t, f) a { rz(-f) a; rx(t) a; rz(f) a; }",
            "gate ZZ a, b { rzz(pi/2) a, b; }",
            "gate RZZ(t) a, b { rzz(t) a, b; }",
            f"gate __qmk_ryy(t) a, b {{ {_RYY2} }}",
            "gate Rxxyyzz(x, y, z) a, b { rxx(x) a, b; __qmk_ryy(y) a, b; rzz(z) a, b; }",
            "gate cs a, b { cu1(pi/2) a, b; }",
            "gate csdg a, b { cu1(-pi/2) a, b; }",
        ]
    ),
    "oqclib1.inc": " ".join(
        [
            "gate rz(l) a { U(0, 0, l) a; }",
            "gate sx a { U(pi/2, -pi/2, pi/2) a; }",
            "gate ecr a, b { U(pi/2, 0, pi) b; CX a, b; U(0, 0, pi/4) b; CX a, b; "
            "U(pi/2, 0, pi) b; U(pi, 0, pi) a; U(pi/2, 0, pi) b; CX a, b; U(0, 0, -pi/4) b; "
            "CX a, b; U(pi/2, 0, pi) b; }",
        ]
    ),
}

_KEYWORDS = frozenset(
    [
        "OPENQASM",
        "include",
        "gate",
        "def",
        "qubit",
        "bit",
        "int",
        "uint",
        "float",
        "angle",
        "bool",
        "const",
        "input",
        "output",
        "measure",
        "reset",
        "barrier",
        "box",
        "delay",
        "if",
        "else",
        "for",
        "while",
        "in",
        "return",
        "let",
        "switch",
        "case",
        "default",
        "break",
        "continue",
        "end",
        "extern",
        "pragma",
        "cal",
        "defcal",
        "defcalgrammar",
        "ctrl",
        "negctrl",
        "inv",
        "pow",
        "U",
        "CX",
        "gphase",
        "array",
        "duration",
        "stretch",
        "complex",
        "creg",
        "qreg",
        "opaque",
        "durationof",
        "sizeof",
    ]
)
_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_HEADER = re.compile(r"\A\s*OPENQASM\s+([0-9.]+)\s*;")
_HEAD = re.compile(
    r"(?:^|(?<=[;{}]))\s*(?:(?:inv|ctrl|negctrl|pow)\s*(?:\([^)]*\))?\s*@\s*)*"
    r"([A-Za-z_]\w*)\b(?=\s*[(\[$A-Za-z_])",
    re.MULTILINE,
)
_DEFINED = re.compile(r"\b(?:gate|def|opaque)\s+([A-Za-z_]\w*)")
_PHYSICAL = re.compile(r"\$(\d+)")
#: A calibration (``defcal ... { }``, ``cal { }``): its ``$n`` are the pulse grammar's, kept.
_CALIBRATION = re.compile(r"\b(?:defcal|cal)\b[^{;]*\{[^{}]*\}?")
_BOX = re.compile(r"\bbox\b\s*(\[[^\]\n]*\])?(?=\s*\{)")
_INCLUDE = re.compile(r'include\s+"([^"\n]+)"\s*;')  # a literal first: fast to find


@dataclass(frozen=True, slots=True)
class Prepared:
    """A program rewritten into standard OpenQASM, and what was accepted on the way."""

    source: str
    warnings: tuple[dict[str, str], ...] = ()
    physical: int = 0  # qubits of the physical register (0: the program uses no $n)


def _blank(text: str) -> str:
    """``text`` with comments and strings as spaces (newlines kept): offsets unchanged."""

    def spaces(m: re.Match[str]) -> str:
        return re.sub(r"[^\n]", " ", m.group(0))

    return _COMMENT.sub(spaces, text) if "/" in text else text


def _starts_word(text: str, m: re.Match[str]) -> bool:
    """Whether ``m`` starts a word of ``text`` (not inside a longer name)."""
    return m.start() == 0 or not (text[m.start() - 1].isalnum() or text[m.start() - 1] in "_$")


def _splice(text: str, edits: list[tuple[int, int, str]]) -> str:
    out, at = [], 0
    for start, end, new in sorted(edits):
        out += [text[at:start], new]
        at = end
    return "".join([*out, text[at:]])


def prepare(source: str, name: str, standard: frozenset[str]) -> Prepared:
    """``source`` with the dialects above rewritten into standard OpenQASM (``standard``:
    the gates ``stdgates.inc`` defines).

    Raises:
        FrontendError: a physical qubit index that is not a number QMK can allocate.
    """
    blank = _blank(source)
    header = _HEADER.match(blank)
    version = 3 if header is None or not header.group(1).startswith("2") else 2
    at = header.end() if header is not None else 0  # where declarations go (header's line)
    edits: list[tuple[int, int, str]] = []
    notices: list[dict[str, str]] = []
    front: list[str] = []
    includes = {m.group(1): m for m in _INCLUDE.finditer(blank) if _starts_word(blank, m)}
    for library, text in PYTKET_LIBRARIES.items():
        found = includes.get(library)
        if found is not None:
            edits.append((found.start(), found.end(), text))
            notices.append(
                warning(
                    FrontendError,
                    "dialect",
                    f"pytket's gate library {library} read as pytket defines its gates",
                )
            )
    physical = 0
    if version == 3:
        physical = _physical(blank, edits, name)
        if physical:
            front.append(f"qubit[{physical}] {PHYSICAL};")
        notices += _boxes(blank, edits)
        standard_included = "stdgates.inc" in includes
        if standard_included and not any(g in blank for g in QSHARP_GATES):
            return _done(source, edits, front, at, header is not None, notices, physical)
        defined = set(_DEFINED.findall(blank))
        called = {m.group(1) for m in _HEAD.finditer(blank)} - _KEYWORDS - defined
        if standard_included:
            used = sorted(called & set(QSHARP_GATES))
            if used:
                front += [QSHARP_GATES[g] for g in used]
                notices.append(
                    warning(
                        FrontendError,
                        "dialect",
                        f"Q#'s OpenQASM output: {', '.join(used)} (not in stdgates.inc) read "
                        "as Q#'s Rxx/Ryy/Rzz",
                    )
                )
        elif called & (standard | set(BRAKET_GATES)) and not defined & standard:
            front += _braket(called)
            used = sorted(called & (standard | set(BRAKET_GATES)))
            notices.append(
                warning(
                    FrontendError,
                    "dialect",
                    "Amazon Braket's OpenQASM 3: standard gates without include "
                    f'"stdgates.inc" ({", ".join(used)}) read as Braket defines them',
                )
            )
    return _done(source, edits, front, at, header is not None, notices, physical)


def _done(
    source: str,
    edits: list[tuple[int, int, str]],
    front: list[str],
    at: int,
    header: bool,
    notices: list[dict[str, str]],
    physical: int,
) -> Prepared:
    """The program with ``edits`` made and ``front`` declared at ``at`` (the header's end)."""
    if front:
        edits.append((at, at, " " + " ".join(front) + ("" if header else " ")))
    if not edits:
        return Prepared(source)
    return Prepared(_splice(source, edits), tuple(notices), physical)


def _physical(blank: str, edits: list[tuple[int, int, str]], name: str) -> int:
    """Rewrite every ``$n`` as ``PHYSICAL[n]``; the register's size (0: none)."""
    top = -1
    kept = [m.span() for m in _CALIBRATION.finditer(blank)] if "cal" in blank else []
    for m in _PHYSICAL.finditer(blank):
        if any(start <= m.start() < end for start, end in kept):
            continue  # a calibration's qubit: the front-end refuses defcal/cal by name
        index = int(m.group(1))
        if index > 1 << 20:
            raise FrontendError.at(
                "bad-value",
                name,
                blank.count("\n", 0, m.start()) + 1,
                f"physical qubit ${index}: QMK allocates $0..$n as n+1 qubits; at most "
                f"{1 << 20} physical qubits",
            )
        top = max(top, index)
        edits.append((m.start(), m.end(), f"{PHYSICAL}[{index}]"))
    return top + 1


def _boxes(blank: str, edits: list[tuple[int, int, str]]) -> list[dict[str, str]]:
    """Turn every ``box`` into a plain scope; a warning for each duration dropped."""
    notices: list[dict[str, str]] = []
    if "box" not in blank:  # (a plain search; the pattern's \b start is slow on big files)
        return notices
    for m in _BOX.finditer(blank):
        edits.append((m.start(), m.end(), " " * (m.end() - m.start())))
        if m.group(1) is not None:
            line = blank.count("\n", 0, m.start()) + 1
            notices.append(
                warning(
                    FrontendError,
                    "timing-ignored",
                    f"line {line}: box{m.group(1)}: its body runs; the duration "
                    f"{m.group(1)[1:-1].strip()} is timing only and QMK models no idle time",
                )
            )
    return notices


def _braket(called: set[str]) -> list[str]:
    """``include "stdgates.inc";`` and the definitions of the Braket gates called."""
    wanted: list[str] = []
    for gate in sorted(called & set(BRAKET_GATES)):
        for need in (*_BRAKET_NEEDS.get(gate, ()), gate):
            if need not in wanted:
                wanted.append(need)
    return ['include "stdgates.inc";', *(BRAKET_GATES[g] for g in wanted)]


def noted(graph: Graph, prepared: Prepared) -> Graph:
    """``graph`` with the warnings of its preparation in ``metadata.warnings``."""
    if not prepared.warnings:
        return graph
    metadata = {**(graph.metadata or {}), "warnings": [dict(w) for w in prepared.warnings]}
    return dataclasses.replace(graph, metadata=metadata)
