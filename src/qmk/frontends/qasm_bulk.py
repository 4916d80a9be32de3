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
from qmk.frontends.qasm_library import MATH_CONSTANTS, QELIB1_GATES, STDGATES_GATES, plan_of
from qmk.qvm.columns import OP_CODES, WIDTH, Columns
from qmk.qvm.expr_core import ARITHMETIC

__all__ = ["Routed", "read_flat", "read_flat_file"]

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
#: Bytes read per pass (a piece of the text ending at a ``;``).
PIECE = 1 << 18
#: The most bytes the header and declarations may take.
HEAD_MOST = 1 << 20

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


@dataclass(frozen=True, slots=True)
class _Operands:
    """The indexed qubit operands of a piece of gate calls, found by whole-array
    operations on its bytes: one entry per ``reg[i]``, in order."""

    open: np.ndarray  # where each '[' is
    close: np.ndarray  # where each ']' is
    name_start: np.ndarray  # where each register name starts
    owner: np.ndarray  # the statement of each operand
    position: np.ndarray  # its place among its statement's operands
    first: np.ndarray  # the first operand of each statement
    count: np.ndarray  # each statement's operand count
    register: bool  # whether every operand names the register :meth:`of` was given

    @classmethod
    def of(cls, b: np.ndarray, semi: np.ndarray, register: bytes = b"") -> _Operands | None:
        """The operands of the calls ending at ``semi``; None unless each statement's
        tail is exactly ``reg[digits]`` operands separated by commas (spaces and tabs
        around the commas and before the ``;``), at most three. ``register``: the name
        the operands most likely all have (a file's only qubit register), checked first
        as a whole, which spares finding each name's start a byte at a time."""
        opens, close = np.flatnonzero(b == _OPEN), np.flatnonzero(b == _CLOSE)
        if len(opens) == 0 or len(opens) != len(close):
            return None
        if (opens > close).any() or (close[:-1] > opens[1:]).any():
            return None  # brackets must alternate [ ] [ ]
        digits = close - opens - 1
        if (digits < 1).any() or (digits > 9).any():
            return None
        if not _DIGIT[b[opens + 1]].all():  # only digits inside brackets (one at least)
            return None
        for k in range(1, int(digits.max())):
            if not _DIGIT[b[(opens + 1 + k)[digits > k]]].all():
                return None
        # after each ']': spaces, then ',' (another operand follows) or ';' (the last of
        # its statement): every ';' of the piece right after an operand so
        after = _run_end(b, close + 1, _SPACE)
        follows = b[after]
        lasts = follows == _SEMI
        if not np.array_equal(after[lasts], semi) or not (follows[~lasts] == _COMMA).all():
            return None
        owner = np.cumsum(lasts) - lasts  # an operand's statement: the ';' before it
        count = np.bincount(owner, minlength=len(semi))
        if (count > WIDTH).any():
            return None
        name_start = _named(b, opens, register)
        named = name_start is not None
        if name_start is None:
            name_start = _run_start(b, opens, _IDENT)
            if (name_start == opens).any() or _DIGIT[b[name_start]].any():
                return None  # a name, not starting with a digit, right before each '['
        firsts = np.concatenate(([True], lasts[:-1]))
        # before each later operand's name: spaces, then that very ',' (so a call's tail
        # holds nothing but its operands, commas and spaces)
        before = name_start[~firsts] - 1
        if not (b[before] == _COMMA).all():  # (most files: no space after a comma)
            before = _run_start(b, name_start[~firsts], _SPACE) - 1
        if not (before == after[~lasts]).all():
            return None
        starts = np.flatnonzero(firsts)
        position = np.arange(len(opens)) - np.repeat(starts, count)
        return cls(opens, close, name_start, owner, position, starts, count, named)

    def values(self, b: np.ndarray) -> np.ndarray:
        """Each operand's index, from its digits."""
        digits = self.close - self.open - 1
        value = b[self.open + 1].astype(np.int64) - 48
        for k in range(1, int(digits.max())):
            # (a digit past an index's last reads its ']' or beyond, and is not taken)
            digit = b[np.minimum(self.open + 1 + k, len(b) - 1)].astype(np.int64) - 48
            value = np.where(digits > k, value * 10 + digit, value)
        return value


def _named(b: np.ndarray, opens: np.ndarray, register: bytes) -> np.ndarray | None:
    """Where each name before a ``[`` at ``opens`` starts, where every one of them is
    ``register`` (and no name ends in it); None otherwise."""
    if not register:
        return None
    start = opens - len(register)
    if len(start) == 0 or start[0] < 0:
        return None
    same = b[start] == register[0]
    for k in range(1, len(register)):
        same &= b[start + k] == register[k]
    before = start - 1
    same &= ~_IDENT[b[np.maximum(before, 0)]] | (before < 0)
    return start if same.all() else None


def _run_start(b: np.ndarray, at: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """For each position in ``at``: where the run of ``kind`` bytes that ends just
    before it starts (``at`` itself where the byte before is no such byte)."""
    start = at.copy()
    active = np.ones(len(at), dtype=bool)
    while True:
        active &= start > 0
        active[active] = kind[b[start[active] - 1]]
        if not active.any():
            return start
        start[active] -= 1


def _skip_blanks(b: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each position in ``at``: the first byte from it on that is no space, tab or
    line break, and how many line feeds lie before it."""
    # (most files: a statement a line, each line break followed by the next statement)
    if len(at) and at[-1] + 1 < len(b):
        first = at + 1
        if (b[at] == _NEWLINE).all() and not _BLANK[b[first]].any():
            return first, np.ones(len(at), dtype=np.int64)
    end = at.copy()
    breaks = np.zeros(len(at), dtype=np.int64)
    active = np.ones(len(at), dtype=bool)
    while True:
        byte = b[end[active]]
        blank = _BLANK[byte]
        active[active] = blank
        if not active.any():
            return end, breaks
        breaks[active] += byte[blank] == _NEWLINE
        end[active] += 1


def _run_end(b: np.ndarray, at: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """For each position in ``at``: the first position from it on that holds no byte of
    ``kind`` (the piece ends with ``;``, which is none of the kinds asked)."""
    active = kind[b[at]]
    if not active.any():  # (most files: no space after a bracket)
        return at
    end = at.copy()
    while True:
        end[active] += 1
        active[active] = kind[b[end[active]]]
        if not active.any():
            return end


def _unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``rows`` (uint64 words) and each row's index among them,
    found from one word a row (a hash of the words where a row has more), checked
    against the rows themselves. A piece calls a few gates: each word is put in one of
    :data:`_BUCKETS` buckets by a multiplicative hash, and where no two words share a
    bucket, a word's bucket names it (a few passes over the words); else they are
    sorted."""
    key = rows[:, 0].copy()
    for column in range(1, rows.shape[1]):
        key = key * np.uint64(0x100000001B3) ^ rows[:, column]
    bucket = ((key * _SPREAD) >> np.uint64(64 - _BUCKET_BITS)).astype(np.intp)
    held = np.zeros(_BUCKETS, dtype=np.uint64)
    held[bucket] = key  # (a word a bucket, if each holds one)
    if (held[bucket] == key).all():
        present = np.flatnonzero(np.bincount(bucket, minlength=_BUCKETS))
        number = np.zeros(_BUCKETS, dtype=np.int64)
        number[present] = np.arange(len(present))
        which = number[bucket]
        first = np.zeros(len(present), dtype=np.int64)
        first[which] = np.arange(len(which))  # (a row of each: any one will do)
        index = first.tolist()
    else:
        _, first, which = np.unique(key, return_index=True, return_inverse=True)
        index = first.tolist()
        which = which.reshape(-1)
    unique = rows[index]
    if not (unique[which] == rows).all():  # two rows of one hash: sort the rows whole
        unique, which = np.unique(rows, axis=0, return_inverse=True)
        which = which.reshape(-1)
    return which, unique


#: The buckets of :func:`_unique_rows`' hash (a power of two), and its multiplier (an odd
#: number of well-mixed bits: the golden ratio's).
_BUCKET_BITS = 10
_BUCKETS = 1 << _BUCKET_BITS
_SPREAD = np.uint64(0x9E3779B97F4A7C15)


def _byte_class(chars: bytes) -> np.ndarray:
    table = np.zeros(256, dtype=bool)
    table[list(chars)] = True
    return table


_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
_DIGIT = _byte_class(b"0123456789")
_IDENT = _byte_class(_LETTERS + b"0123456789")
_SPACE = _byte_class(b" \t")
_BLANK = _byte_class(b" \t\r\n")
_SEMI, _COMMA, _OPEN, _CLOSE, _NEWLINE = b";,[]\n"
#: The longest head (``name(params) ``) the fast lane reads.
_HEAD_WIDTH = 96
#: Little-endian 8-byte words: a head's bytes (up to 7) as read from its first byte on.
_U64 = np.dtype("<u8")
#: The bytes of a word a head of ``n`` bytes keeps (the first ``n``).
_HEAD_MASKS = np.array([(1 << 8 * n) - 1 for n in range(8)], dtype=np.uint64)
_GATE_HEAD = re.compile(rf"({_ID})(?:{_WS}\(({_PARAMS})\){_WS}|[ \t]+)")


class _Unsupported(Exception):
    """A construct the bulk reader leaves to the statement reader."""


@dataclass(slots=True)
class _Template:
    """A gate call's rows, by its name, parameters' text and qubit count."""

    ops: np.ndarray  # int16 codes
    local: np.ndarray  # (steps, 3) int64: which of the call's qubits (-1: none)
    theta: np.ndarray  # float64 (NaN: none)
    in_order: bool  # one row, on the call's qubits in the order called


def read_flat(
    source: str | bytes, name: str, *, profile: str | None = None, version: int | None = None
) -> Columns | Routed:
    """The flat program ``source`` as columns, or why it is left to the statement reader.

    Args:
        source: the program, as text or as a file's bytes (ASCII: a program with other
            characters is routed).
        name: its file name (each row's source is ``name:line``).
        profile: the code profile written on each allocation (None: none written).
        version: 2 or 3 where the caller fixes the version (``--format qasm2``).
    """
    data = source.encode("utf-8") if isinstance(source, str) else source
    return _read(_Reader(data, name, profile, version))


def read_flat_file(
    path: str, *, profile: str | None = None, version: int | None = None
) -> Columns | Routed:
    """:func:`read_flat` of the file ``path``, whose bytes only the reader holds, so that
    they are freed before the columns are joined.

    Raises:
        FrontendError: ``QL105`` a file that cannot be read.
    """
    from qmk.frontends import read_bytes

    return _read(_Reader(read_bytes(path), path, profile, version))


def _read(reader: _Reader) -> Columns | Routed:
    if reader.data is None or not reader.data.isascii():
        return Routed("text beyond ASCII")
    try:
        return reader.read()
    except _Unsupported as exc:
        return Routed(str(exc))


class _Reader:
    """One file's reading: the head's registers, then the body's rows piece by piece."""

    def __init__(self, data: bytes, name: str, profile: str | None, version: int | None) -> None:
        self.data: bytes | None = data
        self.name, self.profile, self.asked = name, profile, version
        self.version = 0
        self.qregs: dict[str, tuple[int, int]] = {}  # name -> (first qubit, size)
        self.cregs: dict[str, list[int]] = {}  # name -> each bit's last event (-1: none)
        self.templates: dict[tuple[str, str, int], _Template] = {}
        #: the pieces of each column: ops, qubits, theta, lines
        self.parts: tuple[list[np.ndarray], ...] = ([], [], [], [])
        self.qubit_type: type = np.int32
        self.register = b""  # the only qubit register's name (none: b"")
        self.events = 0
        self.line = 1

    def read(self) -> Columns:
        data = self.data
        assert data is not None
        pos = self.head(data[:HEAD_MOST].decode("ascii"))
        if sum(size for _, size in self.qregs.values()) < np.iinfo(np.int16).max:
            self.qubit_type = np.int16  # qubit indices of two bytes where they fit
        end = data.rfind(b";") + 1
        if re.fullmatch(_SKIP, data[end:].decode("ascii")) is None:
            raise _Unsupported("text after the last statement")
        others = _trailing_others(data, pos, end)
        while pos < end:
            stop = others if pos < others else end  # (the trailing statements: a piece alone)
            cut = data.rfind(b";", pos, min(pos + PIECE, stop) + 1) + 1
            if cut <= pos:
                cut = stop
            piece = data[pos:cut]
            if not self.fast_piece(piece):
                self.piece(piece.decode("ascii"))
            pos = cut
        self.data = None  # the bytes go before the columns are joined
        del data
        count = sum(size for _, size in self.qregs.values())
        tail = (
            ([_FREE], np.int16),
            ([[0, count, -1]], self.qubit_type),
            ([np.nan], np.float64),
            ([0], np.int32),
        )
        joined: list[np.ndarray] = []
        for parts, (last, kind) in zip(self.parts, tail, strict=True):
            if count:
                parts.append(np.array(last, dtype=kind))
            joined.append(np.concatenate(parts).astype(kind, copy=False))
            parts.clear()  # each column's pieces go before the next column is joined
        ops, qubits, theta, lines = joined
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

    def head(self, text: str) -> int:
        """Read the header, the include and the declarations (in ``text``, the file's
        start); where the body starts."""
        pos, included = 0, False
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
                self.declare(m)
            self.line += m.group(0).count("\n") - m.group(1).count("\n")
            pos = m.end()
        if not included:
            raise _Unsupported("no standard gate library included before the first operation")
        if pos == len(text) == HEAD_MOST:
            raise _Unsupported("declarations past the file's first bytes")
        if len(self.qregs) == 1:  # (most files: every operand names it)
            self.register = next(iter(self.qregs)).encode("ascii")
        return pos

    def declare(self, m: re.Match[str]) -> None:
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

    def fast_piece(self, piece: bytes) -> bool:
        """Read a piece (ending at a ``;``) of gate calls on indexed qubits, one per
        line or more, with whole-array operations on its bytes; False, having read
        nothing, where the piece has anything else (a comment, a measurement, a
        barrier, a statement over two lines, spaces inside brackets): the pattern lane
        reads it then (:meth:`piece`)."""
        if b"//" in piece or b"\x00" in piece:  # a comment; a NUL would read as padding
            return False
        b = np.frombuffer(piece, dtype=np.uint8)
        semi = np.flatnonzero(b == _SEMI)
        # each statement's first byte, and the line breaks before it (a head and a
        # tail, as checked below, hold none)
        first, breaks = _skip_blanks(b, np.concatenate(([0], semi[:-1] + 1)))
        line_of = np.cumsum(breaks)
        operands = _Operands.of(b, semi, self.register)
        if operands is None:
            return False
        calls = self.calls(b, operands, len(semi))
        if calls is None:
            return False
        head_end = operands.name_start[operands.first]
        found = self.heads(b, first, head_end, operands.count)
        if found is None:
            return False
        which, table = found
        self.expand_codes(calls, which, table, self.line + line_of)
        self.line += int(line_of[-1])
        return True

    def calls(self, b: np.ndarray, operands: _Operands, statements: int) -> np.ndarray | None:
        """Each call's qubit indices, (statements, 3), -1 past its last; None where an
        operand names no qubit register, or an index is past its register's end."""
        values = operands.values(b)
        if operands.register:  # every operand names the only qubit register
            ((base, count),) = self.qregs.values()
            if (values >= count).any():
                return None
            calls = np.full((statements, WIDTH), -1, dtype=np.int64)
            calls[operands.owner, operands.position] = base + values
            return calls
        start, bracket = operands.name_start, operands.open
        length = bracket - start
        first = np.full(len(start), -1, dtype=np.int64)
        size = np.zeros(len(start), dtype=np.int64)
        for reg, (base, count) in self.qregs.items():
            word = np.frombuffer(reg.encode("ascii"), dtype=np.uint8)
            match = length == len(word)
            for k, byte in enumerate(word):
                match &= b[np.minimum(start + k, len(b) - 1)] == byte
            first[match], size[match] = base, count
        if (first < 0).any():
            return None
        if (values >= size).any():
            return None
        calls = np.full((statements, WIDTH), -1, dtype=np.int64)
        calls[operands.owner, operands.position] = first + values
        return calls

    def heads(
        self, b: np.ndarray, first: np.ndarray, end: np.ndarray, count: np.ndarray
    ) -> tuple[np.ndarray, list[_Template]] | None:
        """Each call's template, by its head (``name(params) `` before its first
        operand) and qubit count: an index into the templates; None where a head is
        no gate's."""
        size = end - first
        if (size < 2).any() or (size > _HEAD_WIDTH).any():
            return None
        width = int(size.max())
        words = -(-(width + 1) // 8)
        if words == 1:  # (most files' heads: "cx ", "sdg "): eight bytes from each head
            spare = np.zeros(len(b) + 8, dtype=np.uint8)
            spare[: len(b)] = b
            windows = np.lib.stride_tricks.as_strided(spare, (len(b), 8), (1, 1), writeable=False)
            rows = windows[first].view(_U64)
            rows &= _HEAD_MASKS[size][:, None]  # the head's bytes, zeros after it
            rows |= count.astype(np.uint64)[:, None] << np.uint64(56)  # the count, last
        else:
            padded = np.zeros((len(first), words * 8), dtype=np.uint8)
            for k in range(width):  # the head's bytes, zeros after it
                held = size > k
                padded[held, k] = b[first[held] + k]
            padded[:, -1] = count  # the qubit count, in the last byte
            rows = padded.view(_U64)
        table: list[_Template] = []
        which, keys = _unique_rows(rows)
        for key in keys:
            raw = key.tobytes()
            m = _GATE_HEAD.fullmatch(raw[:-1].rstrip(b"\x00").decode("ascii"))
            if m is None or m.group(1) in _NOT_GATES:
                return None
            name, params = m.group(1), m.group(2) or ""
            template = self.templates.get((name, params, raw[-1]))
            table.append(template or self.template(name, params, raw[-1]))
        return which, table

    def piece(self, text: str) -> None:
        """Read the statements of ``text`` (which ends at a ``;``) one pattern match each:
        the lane for a piece with statements other than gate calls."""
        found = _BODY.findall(text)
        skips, calls, names, params, r1, i1, r2, i2, r3, i3, other = (
            zip(*found, strict=True) if found else ((),) * 11
        )
        read = sum(map(len, skips)) + sum(map(len, calls)) + sum(map(len, other))
        if read != len(text):  # a stretch no statement matched: a comment, say
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
        keys = list(zip(names[start:stop], params[start:stop], width.tolist(), strict=True))
        self.expand(calls, keys, lines[start:stop])

    def expand(
        self, calls: np.ndarray, keys: list[tuple[str, str, int]], lines: np.ndarray
    ) -> None:
        """The rows of gate calls: each call's qubits (-1 past its last), its template's
        key (name, parameters' text, qubit count) and its line."""
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
        self.expand_codes(calls, np.array(codes, dtype=np.int64), table, lines)

    def expand_codes(
        self, calls: np.ndarray, which: np.ndarray, table: list[_Template], lines: np.ndarray
    ) -> None:
        """The rows of gate calls whose templates are ``table[which]``."""
        a, b, c = calls[:, 0], calls[:, 1], calls[:, 2]
        if ((a == b) | ((a == c) & (c >= 0)) | ((b == c) & (c >= 0)))[b >= 0].any():
            raise _Unsupported("a gate applied to the same qubit twice")
        n = len(calls)
        steps = np.array([len(t.ops) for t in table], dtype=np.int64)
        offsets = np.cumsum(steps) - steps
        flat_ops = np.concatenate([t.ops for t in table])
        flat_local = np.concatenate([t.local for t in table])
        flat_theta = np.concatenate([t.theta for t in table])
        per_call = steps[which]
        if all(t.in_order for t in table):  # most files: a row a call, its qubits as called
            step = offsets[which]
            qubits: np.ndarray = calls.astype(self.qubit_type)  # (as rows keeps them)
            self.rows(flat_ops[step], qubits, flat_theta[step], lines.astype(np.int32))
            return
        call = np.repeat(np.arange(n), per_call)
        within = np.arange(len(call)) - np.repeat(np.cumsum(per_call) - per_call, per_call)
        step = offsets[which][call] + within
        local = flat_local[step]
        qubits = np.where(local >= 0, calls[call[:, None], np.maximum(local, 0)], -1)
        self.rows(
            flat_ops[step],
            qubits.astype(np.int32),
            flat_theta[step],
            lines[call].astype(np.int32),
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
            in_order=len(steps) == 1 and tuple(steps[0][1]) == tuple(range(width)),
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
        columns: tuple[np.ndarray, ...] = (
            ops,
            qubits.astype(self.qubit_type, copy=False),
            theta,
            lines,
        )
        for parts, column in zip(self.parts, columns, strict=True):
            parts.append(column)


def _trailing_others(data: bytes, pos: int, end: int) -> int:
    """Where the statements that follow the body's last gate call start (``end`` where
    it ends with one), looked for in its last :data:`PIECE` bytes. A file's closing
    measurements are then a piece of their own, read by the pattern lane, and the gate
    calls before them stay in the fast lane. A statement that names neither
    ``measure`` nor ``barrier`` is taken for a gate call: only where a piece is cut
    depends on it, not what is read."""
    floor = max(pos, end - PIECE)
    at = end
    while at > floor:
        semi = data.rfind(b";", floor, at - 1)
        if semi < 0:
            break
        statement = data[semi + 1 : at]
        if b"measure" not in statement and b"barrier" not in statement:
            break
        at = semi + 1
    return at


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
