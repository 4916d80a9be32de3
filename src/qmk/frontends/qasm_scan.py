"""The fast lane of the OpenQASM reader: common statements by regular expression, the rest
by the reference parser.

The ``openqasm3`` reference parser (ANTLR's Python runtime) is slow per statement,
while most of a large program is lines like ``cx q[3],q[7];`` (``docs/frontends.md``
has the figures). The :class:`Scanner` walks the text once, statement by statement.
A statement it recognises becomes a ``Fast`` record: a gate call with
constant-arithmetic parameters on single qubits or whole registers, ``measure``,
``reset``, ``barrier``, register declarations, ``include``, the ``OPENQASM`` header,
and OpenQASM 2's ``opaque``. Every other statement is left to the reference parser.
Consecutive ones are handed over as one :class:`Chunk` that :func:`parse_chunk`
parses with the reference grammar, its lines and columns counted from where the chunk
starts in the file.

The scanner accepts a statement only in the exact form the grammar gives it: ASCII
names that are not keywords, decimal literals, ``+ - * /``, unary minus and
parentheses in parameters, whitespace that stays on one line. Anything else, however
harmless, goes to the reference parser, which stays the judge of the language.
``tests/frontends/test_qasm_fast.py`` reads the same
programs (and mutated ones) both ways and compares graphs and errors exactly.

>>> items = list(Scanner("OPENQASM 2.0;\\nqreg q[2];\\nh q[0];\\nif (c==1) x q;"))
>>> [item[0] for item in items[:3]], items[2]
(['header', 'qreg', 'gate'], ('gate', 3, ('h', (), (('q', 0),)), 'h q[0];\\n'))
>>> items[3]
Chunk(kind='chunk', start=33, end=47, line=4, column=0)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, NamedTuple

#: Words the reference lexer reads as keywords (never names): its token table's literal
#: names, and the tokens whose rules are patterns (booleans, ``pragma``, the imaginary
#: unit). Written out, not read from ``openqasm3._antlr`` at import: that import (the
#: ANTLR runtime) would slow every fresh ``qmk run`` of a file the fast lane reads
#: whole. ``tests/frontends/test_qasm_fast.py`` checks it against the lexer's table.
KEYWORDS: frozenset[str] = frozenset(
    {
        "OPENQASM",
        "angle",
        "array",
        "barrier",
        "bit",
        "bool",
        "box",
        "break",
        "cal",
        "case",
        "complex",
        "const",
        "continue",
        "creg",
        "ctrl",
        "def",
        "default",
        "defcal",
        "defcalgrammar",
        "delay",
        "duration",
        "durationof",
        "else",
        "end",
        "extern",
        "false",
        "float",
        "for",
        "gate",
        "gphase",
        "if",
        "im",
        "in",
        "include",
        "input",
        "int",
        "inv",
        "let",
        "measure",
        "mutable",
        "negctrl",
        "output",
        "pow",
        "pragma",
        "qreg",
        "qubit",
        "readonly",
        "reset",
        "return",
        "stretch",
        "switch",
        "true",
        "uint",
        "void",
        "while",
    }
)


#: An operand: a register name and an index (None: the whole register).
Operand = tuple[str, int | None]
#: A parameter expression: ("n", number) | ("id", name) | ("neg", e) | (op, e1, e2).
Expr = tuple[Any, ...]


#: A statement the scanner read itself: ``(kind, line, data, text)``, ``text`` being the
#: statement's own text (a key for caches: equal texts mean equal statements). ``kind``
#: and ``data``: ``header`` (version text), ``include`` (file name), ``qreg``/``creg``
#: (name, size or None), ``gate`` (name, parameter expressions, operands), ``measure``
#: (qubit operand, bit operand or None), ``reset`` (operand), ``barrier`` (operands),
#: ``opaque`` (name, parameter count, qubit count). A plain tuple: there is one per line.
Fast = tuple[str, int, tuple[Any, ...], str]
#: What a matched statement reads as: its kind and data, or None (the parser reads it).
_Record = tuple[str, tuple[Any, ...]] | None


class Chunk(NamedTuple):
    """Statements left to the reference parser: ``text[start:end]``, starting at
    ``line`` (1-based) and ``column`` (0-based, as ANTLR counts them)."""

    kind: str
    start: int
    end: int
    line: int
    column: int


_WS = r"[ \t]*"
_ID = r"[A-Za-z_][A-Za-z0-9_]*"
_OPERAND = rf"{_ID}(?:{_WS}\[{_WS}[0-9]+{_WS}\])?"
_OPERANDS = rf"{_OPERAND}(?:{_WS},{_WS}{_OPERAND})*"
#: Whitespace and comments between statements (the reference lexer's skipped tokens).
_SKIP = re.compile(r"(?:[ \t\r\n]+|//[^\r\n]*|/\*.*?\*/)*", re.DOTALL)
_STATEMENT = re.compile(
    rf"""(?:
    measure[ \t]+(?P<mq>{_OPERAND}){_WS}(?:->{_WS}(?P<mc>{_OPERAND}){_WS})?;
    | (?P<reg>qreg|creg)[ \t]+(?P<rname>{_ID}){_WS}\[{_WS}(?P<rsize>[1-9][0-9]*){_WS}\]{_WS};
    | (?P<typ>qubit|bit){_WS}(?:\[{_WS}(?P<tsize>[1-9][0-9]*){_WS}\]{_WS}|[ \t]+)
      (?P<tname>{_ID}){_WS};
    | reset[ \t]+(?P<rq>{_OPERAND}){_WS};
    | barrier(?:[ \t]+(?P<bq>{_OPERANDS}))?{_WS}(?P<bend>;)
    | include{_WS}"(?P<file>[^"\r\t\n]+)"{_WS};
    | OPENQASM[ \t]+(?P<version>[0-9]+(?:\.[0-9]+)?){_WS};
    | opaque[ \t]+(?P<oname>{_ID}){_WS}
      (?:\((?P<oparams>{_WS}(?:{_ID}(?:{_WS},{_WS}{_ID})*)?{_WS})\){_WS})?
      (?P<oqubits>{_ID}(?:{_WS},{_WS}{_ID})*){_WS};
    | (?P<ac>{_OPERAND}){_WS}={_WS}measure[ \t]+(?P<aq>{_OPERAND}){_WS};
    | (?P<gate>{_ID})(?:{_WS}\((?P<params>[^;{{}}]*?)\){_WS}|[ \t]+)
      (?P<operands>{_OPERANDS}){_WS};
    )[ \t]*\n?""",
    re.VERBOSE,
)
#: A superset of :data:`_STATEMENT` that is quick to try: one line from a name to ``;``.
#: What it finds is checked by ``_STATEMENT`` once per distinct statement text.
_QUICK = re.compile(r"[A-Za-z_][^;{}\n]*;[ \t]*\n?")
_OPERAND_PARTS = re.compile(rf"({_ID}){_WS}(?:\[{_WS}([0-9]+){_WS}\])?")
#: A gate call of :data:`_STATEMENT` without parameters on one or two indexed qubits, as
#: :data:`_QUICK` finds it: its name, and each qubit's register and index
#: (:meth:`~qmk.frontends.qasm_gates.Gates.shaped`).
CALL_SHAPE = re.compile(
    rf"({_ID})[ \t]+({_ID}){_WS}\[{_WS}([0-9]+){_WS}\]"
    rf"(?:{_WS},{_WS}({_ID}){_WS}\[{_WS}([0-9]+){_WS}\])?{_WS};[ \t]*\n?"
)
_ID_ONLY = re.compile(_ID)
_EXPR_TOKEN = re.compile(
    r"[ \t\r\n]*(?:(?P<float>[0-9]+[eE][+-]?[0-9]+|\.[0-9]+(?:[eE][+-]?[0-9]+)?"
    r"|[0-9]+\.[0-9]*(?:[eE][+-]?[0-9]+)?)|(?P<int>[0-9]+)|(?P<id>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>[-+*/(),]))"
)
#: (Every code point from U+0080 up written as ``[^\x00-\x7f]``: the same set as a
#: range class, which is slow to compile at every fresh import.)
_AFTER_NUMBER = re.compile(r"[A-Za-z0-9_.]|[^\x00-\x7f]")


def parse_params(text: str) -> tuple[Expr, ...] | None:
    """The parameter list ``text`` (between a gate's parentheses) as expressions, or
    None when it uses anything beyond numbers, names, ``+ - * /``, unary minus and
    parentheses, or is not well formed: the reference parser reads it then.

    >>> parse_params("pi/4, -0.5")
    (('/', ('id', 'pi'), ('n', 4)), ('neg', ('n', 0.5)))
    >>> parse_params("2**3") is None
    True
    """
    tokens: list[tuple[str, Any]] = []
    pos, end = 0, len(text)
    while pos < end:
        m = _EXPR_TOKEN.match(text, pos)
        if m is None:
            if text[pos:].strip(" \t\r\n"):
                return None
            break
        pos = m.end()
        kind = m.lastgroup
        value = m.group(kind or "op")
        if kind in ("float", "int"):
            if pos < end and _AFTER_NUMBER.match(text, pos):
                return None  # 2ns, 1im, 1_000, 2pi: left to the reference lexer
            tokens.append(("n", float(value) if kind == "float" else int(value)))
        elif kind == "id":
            if value in KEYWORDS:
                return None
            tokens.append(("id", value))
        else:
            tokens.append(("op", value))
    if not tokens:
        return ()
    parser = _ExprParser(tokens)
    out = []
    while True:
        expr = parser.additive()
        if expr is None:
            return None
        out.append(expr)
        if parser.at_end():
            return tuple(out)
        if not parser.take(","):
            return None


class _ExprParser:
    """Precedence climbing over the grammar's levels: additive < multiplicative < unary."""

    __slots__ = ("i", "tokens")

    def __init__(self, tokens: list[tuple[str, Any]]) -> None:
        self.tokens = tokens
        self.i = 0

    def at_end(self) -> bool:
        return self.i == len(self.tokens)

    def take(self, op: str) -> bool:
        if self.i < len(self.tokens) and self.tokens[self.i] == ("op", op):
            self.i += 1
            return True
        return False

    def peek_op(self, ops: str) -> str | None:
        if self.i < len(self.tokens):
            kind, value = self.tokens[self.i]
            if kind == "op" and value in ops:
                return str(value)
        return None

    def additive(self) -> Expr | None:
        left = self.multiplicative()
        while left is not None and (op := self.peek_op("+-")):
            self.i += 1
            right = self.multiplicative()
            if right is None:
                return None
            left = (op, left, right)
        return left

    def multiplicative(self) -> Expr | None:
        left = self.unary()
        while left is not None and (op := self.peek_op("*/")):
            self.i += 1
            right = self.unary()
            if right is None:
                return None
            left = (op, left, right)
        return left

    def unary(self) -> Expr | None:
        if self.take("-"):
            inner = self.unary()
            return None if inner is None else ("neg", inner)
        if self.i >= len(self.tokens):
            return None
        kind, value = self.tokens[self.i]
        if kind in ("n", "id"):
            self.i += 1
            return (kind, value)
        if self.take("("):
            inner = self.additive()
            if inner is None or not self.take(")"):
                return None
            return inner
        return None


def _operands(text: str) -> tuple[Operand, ...] | None:
    out = []
    for name, index in _OPERAND_PARTS.findall(text):
        if name in KEYWORDS:
            return None
        out.append((name, int(index) if index else None))
    return tuple(out)


# ---------------------------------------------------------------------- statement ends

_TOKEN = re.compile(
    r"""(?P<ws>[ \t\r\n]+)
    | (?P<comment>//[^\r\n]*|/\*.*?(?:\*/|\Z))
    | (?P<string>"[^"\r\t\n]*"|'[^'\r\t\n]*')
    | (?P<word>\#?[^\W\d]\w*|[0-9][0-9_.]*)
    | (?P<open>[\[({])
    | (?P<close>[\])}])
    | (?P<semi>;)
    | (?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)
#: Tokens after which ``{`` opens a set or array literal, not a block.
_LITERAL_BRACE_AFTER = frozenset({"in", "=", ",", "[", "(", "{"})


def statement_end(text: str, pos: int) -> int:
    """Where the statement starting at ``pos`` ends (past its ``;`` or closing ``}``),
    for handing it to the reference parser; the end of the text if it does not end.

    A pragma or annotation runs to the end of its line; ``cal``/``defcal`` blocks are
    raw text with balanced braces; a ``}`` or ``;`` followed by ``else`` does not end
    an ``if``. Ending too late costs only speed; ending too early is caught by
    :func:`parse_chunk`'s caller, which extends a chunk that fails at its own end.
    """
    n = len(text)
    first = True
    depth = 0
    braces: list[bool] = []  # per open "{": True for a block, False for a literal
    prev = ""
    while pos < n:
        m = _TOKEN.match(text, pos)
        assert m is not None  # "other" matches any character
        kind = m.lastgroup
        value = m.group()
        pos = m.end()
        if kind in ("ws", "comment"):
            continue
        if first and (value in ("pragma", "#pragma") or value.startswith("@")):
            line_end = text.find("\n", pos)
            pos = n if line_end < 0 else line_end + 1
            if value.startswith("@"):
                continue  # an annotation: its statement follows
            return pos
        if first and value in ("cal", "defcal"):
            return _raw_block_end(text, pos)
        first = False
        if kind == "open":
            depth += 1
            if value == "{":
                braces.append(prev not in _LITERAL_BRACE_AFTER)
        elif kind == "close":
            depth = max(depth - 1, 0)
            block = braces.pop() if value == "}" and braces else False
            if depth == 0 and block and not _followed_by_else(text, pos):
                return pos
        elif kind == "semi" and depth == 0 and not _followed_by_else(text, pos):
            return pos
        prev = value
    return n


def _raw_block_end(text: str, pos: int) -> int:
    """The end of a ``cal``/``defcal`` statement: its first ``{`` and the matching ``}``."""
    start = text.find("{", pos)
    semi = text.find(";", pos)
    if start < 0 or (0 <= semi < start):  # "defcal ...;" has no body: a syntax error anyway
        return len(text) if semi < 0 else semi + 1
    depth = 0
    for i in range(start, len(text)):
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    return len(text)


def _followed_by_else(text: str, pos: int) -> bool:
    pos = _SKIP.match(text, pos).end()  # type: ignore[union-attr]
    return text.startswith("else", pos) and not (
        pos + 4 < len(text) and (text[pos + 4].isalnum() or text[pos + 4] == "_")
    )


# ---------------------------------------------------------------------- the scanner

_MISSING: Any = object()
_SKIPPED_START = frozenset(" \t\r\n/")


class Scanner:
    """Iterates over the statements of ``text``: ``Fast`` records and :class:`Chunk`\\ s.

    Args:
        text: the program.
        version: 2 when the program is known to be OpenQASM 2 (``opaque`` is read then);
            the scanner also switches to 2 itself at an ``OPENQASM 2`` header.
    """

    def __init__(self, text: str, version: int | None = None, *, fast: bool = True) -> None:
        self.text = text
        self.version = version
        self.fast = fast
        #: (start, end) of each ``opaque`` statement yielded
        self.spans: list[tuple[int, int]] = []
        self._records: dict[str, tuple[str, tuple[Any, ...]] | None] = {}
        #: The reader's lane for statements it has lowered before: statement text ->
        #: what to pass to :attr:`lane` (with the statement's line) instead of yielding
        #: it, where no chunk is pending (the reader sets both; empty: every statement
        #: is yielded).
        self.known: Mapping[str, Any] = {}
        self.lane: Callable[[Any, int], None] | None = None
        #: And for a statement not known by its text, what to pass to :attr:`lane`
        #: found by its shape (a gate it lowered before, on other single qubits), or
        #: None to read it the long way (the reader sets it; None: no such look).
        self.shape: Callable[[str], Any] | None = None

    def __iter__(self) -> Iterator[Fast | Chunk]:
        text = self.text
        n = len(text)
        skip = _SKIP.match
        quick = _QUICK.match
        strict = _STATEMENT.fullmatch
        count = text.count
        pos = 0
        line = 1
        counted = 0  # ``line`` is the line of text[counted]
        chunk_start: int | None = None
        chunk_end = chunk_line = chunk_col = 0
        first = True
        records = self._records
        # the reader's lane: the reader changes it only while it holds an item yielded
        # here, so it is read again after each yield, not at each statement
        lookup, shape, lane = self.known.get, self.shape, self.lane
        while pos < n:
            if text[pos] in _SKIPPED_START:
                pos = skip(text, pos).end()  # type: ignore[union-attr]
                if pos >= n:
                    break
            m = quick(text, pos)
            line += count("\n", counted, pos)
            counted = pos
            if m is None:
                record = None
            else:
                statement = m.group()
                if chunk_start is None:
                    known = lookup(statement)
                    if known is None and shape is not None:
                        known = shape(statement)
                    if known is not None:
                        lane(known, line)  # type: ignore[misc]
                        first = False
                        pos = m.end()
                        continue
                record = records.get(statement, _MISSING)
                if record is _MISSING:
                    full = strict(statement)
                    record = None if full is None else self._record(full, first)
                    if record is None or record[0] not in ("header", "opaque"):
                        records[statement] = record
                if record is not None and record[0] == "opaque":
                    self.spans.append((pos, m.end()))
                elif not self.fast:
                    record = None  # the reference parser reads all but opaque
            if record is None:
                if chunk_start is None:
                    chunk_start, chunk_line, chunk_col = pos, line, self.column(pos)
                pos = chunk_end = statement_end(text, pos)
                first = False
                continue
            if chunk_start is not None:
                yield Chunk("chunk", chunk_start, chunk_end, chunk_line, chunk_col)
                chunk_start = None
            yield (record[0], line, record[1], statement)
            lookup, shape, lane = self.known.get, self.shape, self.lane
            first = False
            pos = m.end()  # type: ignore[union-attr]
        if chunk_start is not None:
            yield Chunk("chunk", chunk_start, chunk_end, chunk_line, chunk_col)

    def column(self, pos: int) -> int:
        """The 0-based column of ``text[pos]``, as ANTLR counts it."""
        return pos - (self.text.rfind("\n", 0, pos) + 1)

    def _record(self, m: re.Match[str], first: bool) -> tuple[str, tuple[Any, ...]] | None:
        """The kind and data of a matched statement, or None to leave it to the parser."""
        read = self._READERS.get(m.lastgroup or "")
        return None if read is None else read(self, m, first)

    def _gate(self, m: re.Match[str], first: bool) -> _Record:
        name = m.group("gate")
        if name in KEYWORDS:
            return None
        operands = _operands(m.group("operands"))
        if operands is None:
            return None
        text = m.group("params")
        if text is None:
            params: tuple[Expr, ...] | None = ()
        else:
            params = parse_params(text)
            if params is None or not params:
                return None
        return "gate", (name, params, operands)

    def _measure(self, m: re.Match[str], first: bool) -> _Record:
        qubit = _operands(m.group("mq"))
        target = None if m.group("mc") is None else _operands(m.group("mc"))
        if qubit is None or (m.group("mc") is not None and target is None):
            return None
        return "measure", (qubit[0], None if target is None else target[0])

    def _assigned_measure(self, m: re.Match[str], first: bool) -> _Record:
        if self.version == 2:  # OpenQASM 3's form: the lowerer says which rule it breaks
            return None
        qubit, target = _operands(m.group("aq")), _operands(m.group("ac"))
        if qubit is None or target is None:
            return None
        return "measure", (qubit[0], target[0])

    def _register(self, m: re.Match[str], first: bool) -> _Record:
        if m.group("rname") in KEYWORDS:
            return None
        return m.group("reg"), (m.group("rname"), int(m.group("rsize")))

    def _typed_register(self, m: re.Match[str], first: bool) -> _Record:
        if m.group("tname") in KEYWORDS or self.version == 2:
            return None
        size = m.group("tsize")
        return ("qreg" if m.group("typ") == "qubit" else "creg"), (
            m.group("tname"),
            None if size is None else int(size),
        )

    def _reset(self, m: re.Match[str], first: bool) -> _Record:
        operand = _operands(m.group("rq"))
        return None if operand is None else ("reset", (operand[0],))

    def _barrier(self, m: re.Match[str], first: bool) -> _Record:
        operands = () if m.group("bq") is None else _operands(m.group("bq"))
        return None if operands is None else ("barrier", operands)

    def _include(self, m: re.Match[str], first: bool) -> _Record:
        return "include", (m.group("file"),)

    def _header(self, m: re.Match[str], first: bool) -> _Record:
        if not first:
            return None
        if m.group("version").startswith("2"):
            self.version = 2
        return "header", (m.group("version"),)

    def _opaque(self, m: re.Match[str], first: bool) -> _Record:
        """OpenQASM 2's ``opaque`` (not in the OpenQASM 3 grammar): read only in version 2."""
        if self.version != 2:
            return None
        names = _ID_ONLY.findall(m.group("oparams") or "")
        qubits = _ID_ONLY.findall(m.group("oqubits"))
        if any(word in KEYWORDS for word in [m.group("oname"), *names, *qubits]):
            return None
        return "opaque", (m.group("oname"), len(names), len(qubits))

    #: How each statement the scanner matches is read, by the regex group it matched last.
    _READERS: ClassVar[Mapping[str, Callable[[Scanner, re.Match[str], bool], _Record]]] = {
        "operands": _gate,
        "mq": _measure,
        "mc": _measure,
        "aq": _assigned_measure,
        "rsize": _register,
        "tname": _typed_register,
        "rq": _reset,
        "bend": _barrier,
        "file": _include,
        "version": _header,
        "oqubits": _opaque,
    }


# ---------------------------------------------------------------------- the reference parser


class ChunkError(Exception):
    """A chunk the reference parser refused: ``line``, ``message``, and whether the
    parser stopped at the chunk's end (then a longer chunk may parse)."""

    def __init__(self, line: int | None, message: str, at_end: bool) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.at_end = at_end


def parse_chunk(text: str, line: int = 1, column: int = 0) -> Any:
    """``text`` parsed by the reference parser as a program whose first character is at
    ``line``:``column`` of the file, so that every span and error position is the file's.

    The same steps as ``openqasm3.parse`` (ANTLR with the bail-out error strategy and
    the raising lexer listener), with the lexer's position set first and ANTLR's
    console listeners removed (errors come back as :class:`ChunkError`, not on stderr).

    Raises:
        ChunkError: the text does not parse.
        RecursionError: it is nested too deeply.
    """
    from antlr4 import CommonTokenStream, InputStream, RecognitionException
    from antlr4.error.Errors import ParseCancellationException
    from antlr4.error.ErrorStrategy import BailErrorStrategy
    from openqasm3 import ast
    from openqasm3._antlr.qasm3Lexer import qasm3Lexer
    from openqasm3._antlr.qasm3Parser import qasm3Parser
    from openqasm3.parser import QASM3ParsingError, QASMNodeVisitor, _RaiseOnErrorListener

    lexer = qasm3Lexer(InputStream(text))
    lexer._interp.line = line
    lexer._interp.column = column
    lexer.removeErrorListeners()
    lexer.addErrorListener(_RaiseOnErrorListener())
    parser = qasm3Parser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser._errHandler = BailErrorStrategy()
    try:
        tree = parser.program()
        if tree.stop is None:  # no token at all (openqasm3 itself fails on it)
            return ast.Program(statements=[], version=None)
        return QASMNodeVisitor().visitProgram(tree)
    except (RecognitionException, ParseCancellationException, QASM3ParsingError) as exc:
        raise _chunk_error(exc) from None


def _chunk_error(exc: BaseException) -> ChunkError:
    """The position and message of a reference-parser error (its own text, or the token
    ANTLR stopped at)."""
    text = str(exc)
    if text.startswith("L") and ":" in text:
        head, _, rest = text.partition(":")
        if head[1:].isdigit():
            return ChunkError(
                int(head[1:]), rest.split(": ", 1)[-1].strip() or "syntax error", False
            )
    cause: Any = exc
    while cause is not None:
        token = getattr(cause, "offendingToken", None)
        if token is None and cause.args:
            token = getattr(cause.args[0], "offendingToken", None)
        if token is not None:
            eof = token.text == "<EOF>"
            shown = "end of file" if eof else repr(token.text)
            return ChunkError(
                token.line, f"syntax error at {shown} (column {token.column + 1})", eof
            )
        cause = cause.__cause__ or cause.__context__
    return ChunkError(None, "syntax error", True)
