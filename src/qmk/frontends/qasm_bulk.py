"""The bulk reader of flat OpenQASM 2/3 files: the whole body in a few regular-expression
passes, straight into :class:`~qmk.qvm.columns.Columns`, no object per gate.

A flat file is a header, declarations and a long list of gate calls: what circuit
exporters write. This reader takes exactly that shape:

- first ``OPENQASM 2.0;`` (or ``3``), one ``include "qelib1.inc";`` (``"stdgates.inc"``
  for 3), then register declarations: ``qreg``/``creg`` (2) or ``qubit[n]``/``bit[n]`` (3);
- then statements of three kinds: a call of a gate of that library on indexed qubits
  (``cx q[3], q[7];``) with parameters of numbers, ``pi`` and the like, ``+ - * /`` and
  unary minus; ``measure q[i] -> c[j];`` or ``measure q -> c;`` (2),
  ``c[j] = measure q[i];`` or ``c = measure q;`` (3); ``barrier``
  on registers or qubits;
- whitespace and ``//`` comments anywhere between statements.

Anything else (a gate definition, a register operand of a gate, ``reset``, ``if``,
a loop, a ``/* */`` comment, a declaration after the first operation, a faulty
statement) routes the whole file to the statement reader
(:func:`qmk.frontends.qasm.from_qasm`): :func:`read_flat` returns a :class:`Routed`
that says why, and the caller reads the file that way, which gives the same program
or names the error exactly. ``tests/frontends/test_qasm_bulk.py`` checks that both
readers give the same graph (so the same digest and findings) for a set of programs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from qmk.frontends import decompose, qasm_scan
from qmk.frontends.qasm_gates import QELIB1_GATES, STDGATES_GATES, plan_of
from qmk.frontends.qasm_scope import MATH_CONSTANTS
from qmk.qvm.columns import OP_CODES, WIDTH, Columns
from qmk.qvm.expr_core import ARITHMETIC

__all__ = ["Routed", "read_flat"]

_ID = r"[A-Za-z_][A-Za-z0-9_]*"
_WS = r"[ \t]*"
_INDEX = rf"{_WS}\[{_WS}([0-9]+){_WS}\]"
_SKIP = r"(?:[ \t\r\n]+|//[^\r\n]*)*"
#: One declaration of the head, after what it skips.
_HEAD = re.compile(
    rf"""({_SKIP})(?:
    OPENQASM[ \t]+(?P<version>[0-9]+(?:\.[0-9]+)?){_WS};
    | include{_WS}"(?P<file>[^"\r\t\n]+)"{_WS};
    | (?P<reg>qreg|creg)[ \t]+(?P<rname>{_ID}){_WS}\[{_WS}(?P<rsize>[1-9][0-9]*){_WS}\]{_WS};
    | (?P<typ>qubit|bit){_WS}\[{_WS}(?P<tsize>[1-9][0-9]*){_WS}\]{_WS}(?P<tname>{_ID}){_WS};
    )""",
    re.VERBOSE,
)
#: One statement of the body: what it skips; a gate call's name, parameters and up to
#: three indexed qubits; or any other statement, whole (read one at a time).
_PARAMS = r"(?:[^;{}()\n]|\([^;{}()\n]*\))*"  # one level of parentheses inside
_BODY = re.compile(
    rf"({_SKIP})(?:(({_ID})(?:{_WS}\(({_PARAMS})\){_WS}|[ \t]+)({_ID}){_INDEX}"
    rf"(?:{_WS},{_WS}({_ID}){_INDEX})?(?:{_WS},{_WS}({_ID}){_INDEX})?{_WS};)|([^;]*;))"
)
_OPERAND = rf"({_ID})(?:{_INDEX})?"
_MEASURE2 = re.compile(rf"measure[ \t]+{_OPERAND}{_WS}->{_WS}{_OPERAND}{_WS};")
_MEASURE3 = re.compile(rf"{_OPERAND}{_WS}={_WS}measure[ \t]+{_OPERAND}{_WS};")
_BARRIER = re.compile(rf"barrier[ \t]+([^;\n]*?){_WS};")
_BARRIER_OPERAND = re.compile(rf"{_WS}{_OPERAND}{_WS}(?:,|$)")
#: Statements of the gate call's shape that are no gate call.
_NOT_GATES = frozenset({"barrier", "measure"})
#: Statements read per pass (a piece of the text ending at a ``;``).
PIECE = 1 << 18

_MEASURE_Z = OP_CODES["MEASURE_Z"]
_FENCE = OP_CODES["FENCE_EPOCH"]
_ALLOC, _FREE = OP_CODES["ALLOC_LQ"], OP_CODES["FREE_LQ"]


@dataclass(frozen=True, slots=True)
class Routed:
    """The file is not of the bulk reader's shape: the statement reader reads it.

    Attributes:
        reason: what the bulk reader does not take, and where.
    """

    reason: str


class _Unsupported(Exception):
    """A construct the bulk reader leaves to the statement reader."""


@dataclass(slots=True)
class _Template:
    """A gate call's rows, by its name, parameters' text and qubit count."""

    ops: np.ndarray  # int16 codes
    local: np.ndarray  # (steps, 3) int64: which of the call's qubits (-1: none)
    theta: np.ndarray  # float64 (NaN: none)


def read_flat(
    text: str, name: str, *, profile: str | None = None, version: int | None = None
) -> Columns | Routed:
    """The flat program ``text`` as columns, or why it is left to the statement reader.

    Args:
        text: the program.
        name: its file name (each row's source is ``name:line``).
        profile: the code profile written on each allocation (None: none written).
        version: 2 or 3 where the caller fixes the version (``--format qasm2``).
    """
    try:
        return _Reader(text, name, profile, version).read()
    except _Unsupported as exc:
        return Routed(str(exc))


class _Reader:
    """One file's reading: the head's registers, then the body's rows piece by piece."""

    def __init__(self, text: str, name: str, profile: str | None, version: int | None) -> None:
        self.text, self.name, self.profile, self.asked = text, name, profile, version
        self.version = 0
        self.qregs: dict[str, tuple[int, int]] = {}  # name -> (first qubit, size)
        self.cregs: dict[str, list[int]] = {}  # name -> each bit's last event (-1: none)
        self.templates: dict[tuple[str, str, int], _Template] = {}
        self.parts: list[tuple[np.ndarray, ...]] = []  # (ops, qubits, theta, lines) pieces
        self.events = 0
        self.line = 1

    def read(self) -> Columns:
        pos = self.head()
        text = self.text
        end = text.rfind(";") + 1
        if text[end:].strip(" \t\r\n") and re.fullmatch(_SKIP, text[end:]) is None:
            raise _Unsupported("text after the last statement")
        while pos < end:
            cut = text.rfind(";", pos, min(pos + PIECE, end) + 1) + 1
            if cut <= pos:
                cut = end
            self.piece(pos, cut)
            pos = cut
        count = sum(size for _, size in self.qregs.values())
        ops = np.concatenate([p[0] for p in self.parts] + [np.array([_FREE], np.int16)])
        free = np.array([[0, count, -1]], dtype=np.int32)
        qubits = np.concatenate([p[1] for p in self.parts] + [free])
        theta = np.concatenate([p[2] for p in self.parts] + [np.array([np.nan])])
        lines = np.concatenate([p[3] for p in self.parts] + [np.zeros(1, np.int32)])
        if count == 0:
            ops, qubits, theta, lines = ops[:-1], qubits[:-1], theta[:-1], lines[:-1]
        groups = [
            [None if k < 0 else f"m{k}" for k in reversed(bits)]
            for bits in reversed(self.cregs.values())
        ]
        metadata = {
            "language": f"openqasm{self.version}",
            "output": {"groups": groups, "separator": " "},
        }
        return Columns(
            ops=ops,
            qubits=qubits,
            theta=theta,
            lines=lines,
            source=self.name,
            description=self.name,
            profile=self.profile,
            metadata=metadata,
        )

    # ------------------------------------------------------------------ the head

    def head(self) -> int:
        """Read the header, the include and the declarations; where the body starts."""
        text, pos, included = self.text, 0, False
        while True:
            m = _HEAD.match(text, pos)
            if m is None:
                break
            self.line += m.group(1).count("\n")
            if m.group("version") is not None:
                if self.version:
                    raise _Unsupported("a second OPENQASM header")
                self.version = _version(m.group("version"), self.asked)
            elif not self.version:
                raise _Unsupported("no OPENQASM header first")
            elif m.group("file") is not None:
                want = "qelib1.inc" if self.version == 2 else "stdgates.inc"
                if included or m.group("file") != want:
                    raise _Unsupported(f'an include other than one "{want}"')
                included = True
            else:
                self.declare(m, m.end())
            self.line += m.group(0).count("\n") - m.group(1).count("\n")
            pos = m.end()
        if not included:
            raise _Unsupported("no standard gate library included before the first operation")
        return pos

    def declare(self, m: re.Match[str], end: int) -> None:
        kind = m.group("reg") or m.group("typ")
        reg, size = (
            (m.group("rname"), int(m.group("rsize")))
            if m.group("reg")
            else (m.group("tname"), int(m.group("tsize")))
        )
        if (kind in ("qreg", "creg")) != (self.version == 2):
            raise _Unsupported(f"{kind} in OpenQASM {self.version}")
        if reg in self.qregs or reg in self.cregs or reg in qasm_scan.KEYWORDS:
            raise _Unsupported(f"the name {reg} declared twice, or a keyword")
        if kind in ("qreg", "qubit"):
            first = sum(size for _, size in self.qregs.values())
            self.qregs[reg] = (first, size)
            self.rows(
                np.array([_ALLOC], np.int16),
                np.array([[first, first + size, -1]], np.int32),
                np.array([np.nan]),
                np.array([self.line], np.int32),
            )
        else:
            self.cregs[reg] = [-1] * size

    # ------------------------------------------------------------------ the body

    def piece(self, start: int, end: int) -> None:
        """Read the statements of ``text[start:end]`` (which ends at a ``;``)."""
        found = _BODY.findall(self.text, start, end)
        skips, calls, names, params, r1, i1, r2, i2, r3, i3, other = (
            zip(*found, strict=True) if found else ((),) * 11
        )
        read = sum(map(len, skips)) + sum(map(len, calls)) + sum(map(len, other))
        if read != end - start:  # a stretch no statement matched: a comment, say
            raise _Unsupported(f"after line {self.line}: text the bulk reader does not read")
        if not _NOT_GATES.isdisjoint(names):  # a barrier on qubits reads as a call
            other = tuple(
                call if name in _NOT_GATES else o
                for name, call, o in zip(names, calls, other, strict=True)
            )
        newlines = np.fromiter(map(str.count, skips, ["\n"] * len(skips)), np.int64, len(skips))
        lines = self.line + np.cumsum(newlines)
        operands = (r1, i1, r2, i2, r3, i3)
        done = 0
        for k, statement in enumerate(other):
            if statement:
                self.gates(names, params, operands, lines, done, k)
                self.other(statement, int(lines[k]))
                done = k + 1
        self.gates(names, params, operands, lines, done, len(found))
        self.line += int(newlines.sum())

    def gates(
        self,
        names: tuple[str, ...],
        params: tuple[str, ...],
        operands: tuple[tuple[str, ...], ...],
        lines: np.ndarray,
        start: int,
        stop: int,
    ) -> None:
        """The rows of the gate calls ``start:stop`` of a piece."""
        n = stop - start
        if n <= 0:
            return
        cols = []
        for reg, idx in zip(operands[0::2], operands[1::2], strict=True):
            cols.append(self.qubit_indices(reg[start:stop], idx[start:stop]))
        calls = np.stack(cols, axis=1)  # (n, 3)
        width = (calls >= 0).sum(axis=1)
        a, b, c = calls[:, 0], calls[:, 1], calls[:, 2]
        if ((a == b) | ((a == c) & (c >= 0)) | ((b == c) & (c >= 0)))[b >= 0].any():
            raise _Unsupported("a gate applied to the same qubit twice")
        keys = zip(names[start:stop], params[start:stop], width.tolist(), strict=True)
        templates = self.templates
        codes: list[int] = []
        table: list[_Template] = []
        index: dict[tuple[str, str, int], int] = {}
        for key in keys:
            code = index.get(key)
            if code is None:
                template = templates.get(key) or self.template(*key)
                code = index[key] = len(table)
                table.append(template)
            codes.append(code)
        which = np.array(codes, dtype=np.int64)
        steps = np.array([len(t.ops) for t in table], dtype=np.int64)
        offsets = np.cumsum(steps) - steps
        flat_ops = np.concatenate([t.ops for t in table])
        flat_local = np.concatenate([t.local for t in table])
        flat_theta = np.concatenate([t.theta for t in table])
        per_call = steps[which]
        call = np.repeat(np.arange(n), per_call)
        within = np.arange(len(call)) - np.repeat(np.cumsum(per_call) - per_call, per_call)
        step = offsets[which][call] + within
        local = flat_local[step]
        qubits = np.where(local >= 0, calls[call[:, None], np.maximum(local, 0)], -1)
        self.rows(
            flat_ops[step],
            qubits.astype(np.int32),
            flat_theta[step],
            lines[start:stop][call].astype(np.int32),
        )

    def qubit_indices(self, regs: tuple[str, ...], idx: tuple[str, ...]) -> np.ndarray:
        """Each operand's qubit index (-1 where the call has no such operand)."""
        names = set(regs)
        present = np.array(idx)
        have = present != ""
        out = np.full(len(regs), -1, dtype=np.int64)
        if not have.any():
            return out
        values = present[have].astype(np.int64)
        if len(names - {""}) == 1:
            (reg,) = names - {""}
            first, size = self._qreg(reg)
            if (values >= size).any():
                raise _Unsupported(f"an index past the end of {reg}")
            out[have] = values + first
            return out
        spans = [self._qreg(r) if r else (0, 0) for r in regs]
        firsts = np.array([s[0] for s in spans], dtype=np.int64)[have]
        sizes = np.array([s[1] for s in spans], dtype=np.int64)[have]
        if (values >= sizes).any():
            raise _Unsupported("an index past the end of its register")
        out[have] = values + firsts
        return out

    def _qreg(self, reg: str) -> tuple[int, int]:
        span = self.qregs.get(reg)
        if span is None:
            raise _Unsupported(f"{reg} is no qubit register")
        return span

    def template(self, name: str, params: str, width: int) -> _Template:
        """The rows of gate ``name`` with parameters ``params`` on ``width`` qubits."""
        gates = QELIB1_GATES if self.version == 2 else STDGATES_GATES
        if name not in gates:
            raise _Unsupported(f"{name}: not a gate of the standard library")
        values = _values(params)
        want_q, want_p = decompose.arity(name)
        if (want_q, want_p) != (width, len(values)):
            raise _Unsupported(f"gate {name} called with the wrong arity")
        try:
            steps = plan_of(decompose.lower_gate(name, values))
        except (KeyError, ValueError) as exc:
            raise _Unsupported(f"gate {name}: {exc}") from None
        local = np.full((len(steps), WIDTH), -1, dtype=np.int64)
        for k, (_, qs, _) in enumerate(steps):
            if len(qs) > WIDTH:
                raise _Unsupported(f"gate {name} lowers to an op on more than {WIDTH} qubits")
            local[k, : len(qs)] = qs
        template = _Template(
            ops=np.array([OP_CODES[op] for op, _, _ in steps], dtype=np.int16),
            local=local,
            theta=np.array([np.nan if t is None else t for _, _, t in steps], dtype=np.float64),
        )
        self.templates[(name, params, width)] = template
        return template

    def other(self, statement: str, line: int) -> None:
        """A statement that is no gate call: a measurement or a barrier."""
        words = statement.lstrip(" \t\r\n")
        body = words.rstrip()
        if "\n" in body or "\r" in body:
            raise _Unsupported(f"line {line}: a statement over several lines")
        measure = (_MEASURE2 if self.version == 2 else _MEASURE3).fullmatch(body)
        if measure is not None:
            self.measure(measure.groups(), line)
            return
        barrier = _BARRIER.fullmatch(body)
        if barrier is not None:
            self.barrier(barrier.group(1), line)
            return
        raise _Unsupported(f"line {line}: {body[:40]!r} is not read by the bulk reader")

    def measure(self, groups: tuple[str | None, ...], line: int) -> None:
        if self.version == 2:
            qreg, qindex, creg, cindex = groups
        else:
            creg, cindex, qreg, qindex = groups
        first, size = self._qreg(qreg or "")
        qubits = _selected(first, size, qindex)
        slots: list[int] | None = None
        if creg is not None:
            bits = self.cregs.get(creg)
            if bits is None:
                raise _Unsupported(f"{creg} is no bit register")
            slots = list(range(len(bits))) if cindex is None else [int(cindex)]
            if (slots and slots[-1] >= len(bits)) or len(slots) != len(qubits):
                raise _Unsupported("a measurement into bits that do not match its qubits")
            for slot, k in zip(slots, range(self.events, self.events + len(qubits)), strict=True):
                bits[slot] = k
        count = len(qubits)
        rows = np.full((count, WIDTH), -1, dtype=np.int32)
        rows[:, 0] = qubits
        self.events += count
        self.rows(
            np.full(count, _MEASURE_Z, np.int16),
            rows,
            np.full(count, np.nan),
            np.full(count, line, np.int32),
        )

    def barrier(self, operands: str, line: int) -> None:
        parts = operands.split(",")
        for part in parts:
            m = _BARRIER_OPERAND.fullmatch(part.strip(" \t") + ",")
            if m is None:
                raise _Unsupported(
                    f"line {line}: a barrier's operand the bulk reader does not read"
                )
            first, size = self._qreg(m.group(1))
            _selected(first, size, m.group(2))
        self.rows(
            np.array([_FENCE], np.int16),
            np.full((1, WIDTH), -1, np.int32),
            np.array([np.nan]),
            np.array([line], np.int32),
        )

    def rows(
        self, ops: np.ndarray, qubits: np.ndarray, theta: np.ndarray, lines: np.ndarray
    ) -> None:
        self.parts.append((ops, qubits, theta, lines))


def _selected(first: int, size: int, index: str | None) -> list[int]:
    """The qubits of a register operand: one indexed, or all."""
    if index is None:
        return list(range(first, first + size))
    if int(index) >= size:
        raise _Unsupported("an index past the end of its register")
    return [first + int(index)]


def _version(text: str, asked: int | None) -> int:
    major, _, minor = text.partition(".")
    if major == "2" and minor in ("", "0"):
        version = 2
    elif major == "3":
        version = 3
    else:
        raise _Unsupported(f"OPENQASM {text}")
    if asked is not None and asked != version:
        raise _Unsupported(f"OPENQASM {text} read as OpenQASM {asked}")
    return version


def _values(params: str) -> list[float]:
    """A gate call's constant parameters, valued as the statement reader values them."""
    if not params:
        return []
    exprs = qasm_scan.parse_params(params)
    if not exprs:
        raise _Unsupported(f"parameters ({params}) the bulk reader does not value")
    values = [float(_value(e)) for e in exprs]
    if not all(math.isfinite(v) for v in values):
        raise _Unsupported("a parameter that is not finite")
    return values


def _value(expr: qasm_scan.Expr) -> Any:
    kind = expr[0]
    if kind == "n":
        return expr[1]
    if kind == "id":
        if expr[1] not in MATH_CONSTANTS:
            raise _Unsupported(f"{expr[1]} in a parameter")
        return MATH_CONSTANTS[expr[1]]
    if kind == "neg":
        return -_value(expr[1])
    a, b = _value(expr[1]), _value(expr[2])
    if kind not in ("+", "-", "*", "/"):
        raise _Unsupported(f"operator {kind}")
    if kind == "/" and b == 0:
        raise _Unsupported("division by zero")
    if kind == "/" and isinstance(a, int) and isinstance(b, int):
        return a // b if a % b == 0 else a / b
    return ARITHMETIC[kind](a, b)
