r"""QVM assembly text: :func:`assemble` turns ``.qvm.asm`` text into a :class:`Graph`,
:func:`disassemble` turns a graph back into canonical text.

The assembler is a front end, not a checker: it builds exactly the graph the
text describes, known op or not, and leaves every question of meaning (op
names, operand counts, lifetimes, capabilities) to the verifier. Every problem
it does report is an :class:`~qmk.qvm.errors.AsmError` whose message starts with
``file:line:`` and quotes the line. For every graph ``g``,
``dumps(assemble(disassemble(g))) == dumps(g)``.

>>> g = assemble('''
... .caps CAP_ALLOC
... .vqs q0 q1
... .events m0 m1
... alloc: ALLOC_LQ vq:q0, vq:q1, n=2
... h:     APPLY_H vq:q0
... .for i in range(2)
... m{i}:  MEASURE_Z vq:q{i}, out:m{i}
... .endfor
... x:     APPLY_X vq:q1 when ev:m0 == 1
... free:  FREE_LQ vq:q0, vq:q1
... ''')
>>> [node.id for node in g]
['alloc', 'h', 'm0', 'm1', 'x', 'free']
>>> print(disassemble(g), end="")
.version 0.2
.caps CAP_ALLOC
.vqs q0 q1
.chs
.events m0 m1
<BLANKLINE>
alloc: ALLOC_LQ vq:q0, vq:q1, n=2
h: APPLY_H vq:q0
m0: MEASURE_Z vq:q0, out:m0
m1: MEASURE_Z vq:q1, out:m1
x: APPLY_X vq:q1 when ev:m0 == 1
free: FREE_LQ vq:q0, vq:q1

Lines
=====

Text is UTF-8 (a leading byte-order mark is ignored). Lines end at ``\n``; a
``\r`` before it is dropped. Other characters that some tools treat as line
breaks (``\x85``, ``\u2028``...) are ordinary characters. A comment starts with
``;`` or ``#`` outside a string literal (``"..."``, and ``'...'`` inside
expressions) and runs to the end of the line. Blank lines are ignored. Spaces
and tabs separate tokens; lines may be indented. A line whose first non-blank
character is ``.`` is a directive; any other non-blank line is a node line or a
macro call.

Names
=====

A NAME (a node label, a handle, an event, a capability) is either

* *bare*: ``[A-Za-z_][A-Za-z0-9_.]*``, in which ``{EXPR}`` groups may stand
  anywhere (also first: ``{p}_x``). Each group is evaluated (see Expressions)
  and replaced by ``str()`` of its value: ``q{i}`` with ``i = 3`` is ``q3``,
  ``h_{a}`` with ``a = "q0"`` is ``h_q0``. Or
* *quoted*: a JSON string literal (``"q 0"``, ``"日本"``, ``""``, ``"when"``),
  taken literally, without interpolation.

``when``, ``caps`` and ``meta`` are keywords; a name spelled like one is quoted
by the disassembler (the assembler reads a bare one as a name only where no
keyword can stand). Handle and event names are written directly after their
kind prefix, without spaces: ``vq:q0``.

Node lines
==========

::

    [LABEL:] OP [ITEM {, ITEM}] [when GUARD] [caps CAP {CAP}] [meta JSON_OBJECT]

* ``LABEL`` (a NAME, then ``:``) is the node's ``id``. A node without a label
  gets ``n{k}``, where ``k`` is its 1-based position in the final node list.
  If an explicit label anywhere in the program already is ``n{k}``, it gets the
  first of ``n{k}_1``, ``n{k}_2``, ... that no label uses.
* ``OP`` is an identifier ``[A-Za-z_][A-Za-z0-9_]*`` or a JSON string literal
  (any string, e.g. ``"my op"``). A bare OP that names a defined macro is a
  macro call (see Macros); a quoted OP never is.
* An ``ITEM`` is one of

  - ``vq:NAME`` a virtual-qubit operand, ``ch:NAME`` a channel operand,
  - ``in:NAME`` an input event, ``out:NAME`` a produced event,
  - ``KEY=VALUE`` an argument (spaces around ``=`` are allowed).

  Items are separated by commas. Operand kinds may interleave; each kind keeps
  its own order. Kinds are always explicit: nothing is inferred from a name.
  ``KEY`` is an identifier or a JSON string literal; a key may appear once.
* ``VALUE`` is a JSON literal when it starts with ``"``, ``[`` or ``{`` or is
  ``true``, ``false`` or ``null`` (objects may not repeat a key, numbers must be
  finite). Otherwise it is an expression that runs to the next top-level comma
  or keyword; its value must be an int, a float or a string (a bool is refused:
  write ``true``/``false``). Ints stay ints and floats stay floats (``1`` is an
  int, ``1.0`` and ``4 / 2`` are floats); a float's ``repr`` reads back exactly.
* ``GUARD`` is ``ev:NAME == 0`` or ``ev:NAME == 1`` (the JSON form
  ``{"event", "equals"}``). Two or more terms joined by ``and``
  (``ev:a == 1 and ev:b == 0``) give the conjunction form ``{"all": [...]}``.
  ``all(TERM {and TERM})`` writes the conjunction form explicitly, which a
  one-term conjunction needs.
* ``caps`` is followed by one or more capability NAMEs separated by spaces.
* ``meta`` is followed by a JSON object, the node's metadata; it comes last.

The three clauses are optional and come in the order ``when``, ``caps``, ``meta``.

Directives
==========

``.version V``
    The graph version, bare (``0.2``) or as a JSON string; one of
    :data:`~qmk.qvm.graph.VERSIONS`. Default: ``CURRENT_VERSION``. At most once.
``.description "TEXT"``
    The graph description, a JSON string. At most once.
``.metadata {...}``
    The graph metadata, a JSON object. At most once.
``.caps NAME...``
    Capabilities the graph requests; repeated lines append (an empty line
    requests nothing more).
``.vqs NAME...``, ``.chs NAME...``, ``.events NAME...``
    Declare resources, in order; repeated lines append. A kind that is never
    declared is inferred in order of first appearance in the assembled nodes.
    Vqs come from ``vq:`` operands and chs from ``ch:`` operands. Events come
    from ``in:``, guard and ``out:`` references (within a node: inputs, then
    guard events, then produced events). A kind that is declared, even by one
    empty line such as ``.chs``, is exactly what was declared.
``.param NAME = EXPR``
    An assemble-time constant: the expression's value, a number or a string.
    Defining a name that is already visible is an error.
``.for VAR in range(STOP)``, ``range(START, STOP)``, ``range(START, STOP, STEP)`` ... ``.endfor``
    Repeats the body with ``VAR`` bound to each int in turn (bounds are int
    expressions). ``VAR`` must not already be visible; it is gone after
    ``.endfor``. ``.param`` inside the body is local to one iteration.
``.if EXPR`` ... [``.elif EXPR`` ...]... [``.else`` ...] ``.endif``
    Assembles the body of the first branch whose expression is true (Python
    truth); conditions after it are not evaluated.
``.macro NAME PARAM...`` ... ``.endmacro``
    Defines a macro (see Macros).
``.include "PATH"``
    Assembles another file here, as if its text stood in place of the line.
    ``PATH`` is a JSON string, relative to the folder of the file that contains
    the line. Parameters and macros it defines stay visible afterwards.

Blocks nest (up to 100 deep). ``.endfor``, ``.elif``, ``.else``, ``.endif`` and
``.endmacro`` must close the innermost open block of their kind; a block left
open at the end of a file is an error at its opening line.

REPEAT rows
===========

``[LABEL:] REPEAT COUNT {`` opens a REPEAT row (graph version 0.3, bounded repetition: see
docs/qvm.md): ``COUNT`` is an expression whose value is an int >= 1. The rows up to the
``}`` line that closes it are its body; REPEAT rows nest. Unlike ``.for``, which writes
its body out once per value, a REPEAT row is kept folded: its body is read once. A REPEAT
row needs a body of one row or more, and a program with one is written in version 0.3
(the default then; another ``.version`` is an error). A label left out is ``n{k}`` as for
a node, ``k`` counting every row before it, bodies' rows included.

``NAME: BLOCK vq:A, vq:B ... {`` at the top level opens a block of ``program.blocks``
(version 0.3: see docs/qvm.md, "Blocks"), its formal qubits listed as a node's; the rows
up to its ``}`` are its body. A call is a node line: ``ID: CALL vq:Q1, vq:Q2, block="NAME"``.
The disassembler writes the blocks after the program's rows.

Expressions
===========

Expressions are Python syntax evaluated by :func:`qmk.qvm.expr.evaluate`. They may use:

* int, float and string constants and ``True``/``False``;
* parameters, loop variables and macro parameters; ``pi``, ``tau``, ``e``;
* ``+ - * / // % **`` on numbers and ``+`` on strings;
* ``not``, ``and``, ``or``, comparisons, ``X if C else Y``;
* the functions ``sin cos tan asin acos atan atan2 sqrt exp log log2 log10 floor
  ceil abs min max round int float``.

Names ``when``, ``caps``, ``meta``, ``true``, ``false``, ``null``, ``pi``, ``tau``,
``e`` and Python keywords cannot be parameter, loop or macro-parameter names.

Macros
======

``.macro NAME PARAM...`` declares parameters separated by spaces or commas:
``vq:p``, ``ch:p`` and ``ev:p`` are handle parameters, a bare ``p`` is a value
parameter.
A macro name is an identifier that is not an op of :data:`qmk.qvm.ops.OPS`, a
directive name or a keyword, and is defined once. Definitions cannot nest.

A call is a line ``NAME ARG, ARG, ...`` after the definition (a bare OP used
before a macro of that name is defined stays an op, so defining the macro
afterwards is an error). A handle argument is written with its kind
(``vq:q0``, ``ch:link``, ``ev:m0``), which must be the parameter's kind; a value
argument is an expression, evaluated at the call. The argument count must
match, a call takes no label (it makes several nodes: label them inside the
body, e.g. ``h_{a}: APPLY_H vq:{a}``) and no ``when``/``caps``/``meta``. The
body sees the top-level parameters and its own parameters (which shadow
top-level ones of the same name), bound to the handle names (strings) and
values: use them as ``{p}`` in names or as ``p`` in expressions. It does not see
the caller's loop variables: pass them as arguments. Calls may nest up to 64
deep. An error inside a body is reported at the body's line, with the call site
(``in macro M called at file:line``); an error inside an included file is
reported at that file's line, with ``included from file:line``.

Limits
======

Assembling more than ``limits.max_nodes`` nodes, or running more than ten
times that many loop iterations and macro calls together, stops with
``asm-expansion-limit`` (no such limit when ``max_nodes`` is None). Includes
nest at most 64 deep. JSON values nest at most ``limits.max_depth`` deep.

Errors
======

* ``asm-syntax`` (QA001): a line does not parse.
* ``asm-undefined`` (QA002): an expression names something undefined.
* ``asm-expression`` (QA003): an expression cannot be evaluated or gives a value
  of the wrong type.
* ``asm-directive`` (QA004): a directive is unknown, misplaced, repeated or
  unbalanced, or redefines a name.
* ``asm-include`` (QA005): an include cannot be read or forms a cycle.
* ``asm-expansion-limit`` (QA006): the limits above.

Disassembly
===========

:func:`disassemble` writes ``.version``, then ``.description`` and
``.metadata`` when present, then ``.caps``, ``.vqs``, ``.chs`` and ``.events``
(always, so empty declarations survive). A blank line follows, then one line per
node, always labelled; a REPEAT row is ``ID: REPEAT COUNT {``, its body's rows indented
four spaces, then ``}``. A node's items come in the order vq, ch, in, out, then its
arguments in the node's key order. Strings, bools, null, objects and arrays are
written with ``json.dumps(ensure_ascii=False)``, ints with ``str`` and floats with
``repr``.
Names, ops and keys are quoted exactly when they are not bare-safe.
"""

from __future__ import annotations

import json
import keyword
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from qmk.qvm.errors import AsmError, FormatError
from qmk.qvm.expr import CONSTANTS, ExprError, UndefinedNameError, evaluate
from qmk.qvm.graph import (
    BLOCK,
    CALL,
    CURRENT_VERSION,
    FOLDED_VERSION,
    REPEAT,
    STRICT_JSON,
    VERSIONS,
    Graph,
    Guard,
    GuardTerm,
    Node,
    Resources,
    decode_utf8,
    gc_paused,
    nests_deeper_than,
)
from qmk.qvm.graph_file import read_bytes
from qmk.qvm.limits import Limits
from qmk.qvm.ops import OP_ALIASES, OPS, canonical_op

__all__ = ["assemble", "assemble_file", "disassemble"]

#: Words that open a node line's clauses; names spelled like them are quoted.
KEYWORDS: frozenset[str] = frozenset({"when", "caps", "meta"})
#: Names that cannot be parameters, loop variables or macro parameters.
RESERVED: frozenset[str] = KEYWORDS | {"true", "false", "null"} | set(CONSTANTS)
#: Every directive, without its dot.
DIRECTIVES: tuple[str, ...] = (
    "version",
    "description",
    "metadata",
    "caps",
    "vqs",
    "chs",
    "events",
    "param",
    "for",
    "endfor",
    "if",
    "elif",
    "else",
    "endif",
    "macro",
    "endmacro",
    "include",
)
#: How deep macro calls may nest.
MAX_MACRO_DEPTH = 64
#: How deep includes may nest.
MAX_INCLUDE_DEPTH = 64
#: How deep .for/.if/.macro blocks may nest in one file.
MAX_NESTING = 100
#: Loop iterations and macro calls allowed per allowed node.
ITERATIONS_PER_NODE = 10

_QUOTE_WIDTH = 200
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_.]*")
_VERSION_TOKEN = re.compile(r"[A-Za-z0-9_.+\-]+")
_WS = re.compile(r"[ \t]*")


def _run_end(pattern: re.Pattern[str], text: str, pos: int = 0) -> int:
    """Where the run of ``pattern`` (one that may match nothing, like ``_WS``) at ``pos`` ends."""
    run = pattern.match(text, pos)
    return run.end() if run else pos


_COMMENT_OR_QUOTE = re.compile(r"[\"';#]")
_STRINGS = {
    '"': re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"'),
    "'": re.compile(r"'[^'\\]*(?:\\.[^'\\]*)*'"),
}
_EXPR_SKIP = re.compile(r"[^\"'()\[\]{},A-Za-z_]+")
_JSON_WORD = re.compile(r"(?:true|false|null)(?![A-Za-z0-9_.])")
_HANDLE_ARG = re.compile(r"(vq|ch|ev|in|out):")
_ALL_OPEN = re.compile(r"all[ \t]*\(")
_GUARD_VALUE = re.compile(r"[01](?![A-Za-z0-9_.])")
_DIRECTIVE = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)")
_FOR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)[ \t]+in[ \t]+range[ \t]*\((.*)\)[ \t]*")
_PARAM = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)[ \t]*=(.*)")
_OPERAND_KINDS = {"vq": "vqs", "ch": "chs", "in": "inputs", "out": "produces"}
# The plain node line the disassembler writes most (``n7: APPLY_RZ vq:q3, theta=0.5 meta
# {"source": "p.qasm:9"}``), read by one regular expression; any other line (braces,
# quotes, guards, caps, expressions, macros) goes through the general reader.
_FAST_NAME = r"[A-Za-z_][A-Za-z0-9_.]*"
_FAST_NUMBER = r"-?(?:0|[1-9][0-9]{0,300})(?:\.[0-9]{1,300})?(?:[eE][-+]?[0-9]{1,3})?"
_FAST_ITEM = rf"(?:(?:vq|ch|in|out):{_FAST_NAME}|[A-Za-z_][A-Za-z0-9_]*[ \t]*=[ \t]*{_FAST_NUMBER})"
_FAST_NODE = re.compile(
    rf"[ \t]*(?:(?P<label>{_FAST_NAME})[ \t]*:[ \t]*)?(?P<op>[A-Za-z_][A-Za-z0-9_]*)"
    rf"(?:[ \t]+(?P<items>{_FAST_ITEM}(?:[ \t]*,[ \t]*{_FAST_ITEM})*))?"
    r'(?:[ \t]+meta[ \t]+\{"source":[ \t]*"(?P<source>[^"\\\x00-\x1f]*)"\})?[ \t]*'
)
_FAST_PARTS = re.compile(
    rf"(?:(vq|ch|in|out):({_FAST_NAME})|([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*({_FAST_NUMBER}))"
)
_RESOURCE_KINDS = {"vqs": "vqs", "chs": "chs", "events": "events"}


# --------------------------------------------------------------------------- public API


def assemble(
    text: str,
    *,
    source: str = "<asm>",
    limits: Limits | None = None,
    base_dir: Path | None = None,
) -> Graph:
    """Assemble QVM assembly text into a graph.

    Args:
        text: the assembly text (the language is described in this module's docstring).
        source: the name error messages use for the text, e.g. its file name.
        limits: node, nesting and size limits (default :class:`Limits`).
        base_dir: the folder ``.include`` paths are relative to; None forbids includes.

    Returns:
        The graph the text describes. It is not verified: call the verifier.

    Raises:
        AsmError: the text does not assemble; the message starts with ``source:line:``.

    >>> g = assemble("ALLOC_LQ vq:q, n=1\\nAPPLY_RZ vq:q, theta=pi / 4\\nFREE_LQ vq:q")
    >>> [(node.id, node.op) for node in g]
    [('n1', 'ALLOC_LQ'), ('n2', 'APPLY_RZ'), ('n3', 'FREE_LQ')]
    >>> g.nodes[1].args["theta"]
    0.7853981633974483
    >>> assemble("APPLY_H vq:q when ev:m = 1", source="x.qvm.asm")
    Traceback (most recent call last):
    ...
    qmk.qvm.errors.AsmError: QA001 asm-syntax: x.qvm.asm:1: a guard term compares with ==, \
as in ev:NAME == 1 [line is: APPLY_H vq:q when ev:m = 1]
    """
    return _Assembler(limits or Limits()).run(text, source, base_dir, None)


def assemble_file(path: str | Path, *, limits: Limits | None = None) -> Graph:
    """Assemble a ``.qvm.asm`` file; includes are relative to its folder.

    Args:
        path: the file.
        limits: as for :func:`assemble`; ``max_bytes`` also bounds the file size.

    Returns:
        The graph the file describes.

    Raises:
        FormatError: the file cannot be read, is too large or is not UTF-8.
        AsmError: the text does not assemble.
    """
    path = Path(path)
    text = decode_utf8(read_bytes(path, limits=limits), source=str(path))
    return _Assembler(limits or Limits()).run(text, str(path), path.parent, path)


def disassemble(graph: Graph) -> str:
    """Write a graph as canonical assembly text (see "Disassembly" above).

    Args:
        graph: any graph; it need not verify.

    Returns:
        The text, ending with a newline. ``assemble`` gives back a graph with
        the same :func:`~qmk.qvm.graph_file.dumps`.

    Raises:
        ValueError: an argument or metadata value is not JSON (e.g. a NaN float).

    >>> g = Graph(nodes=(Node(id="a b", op="FENCE_EPOCH", args={"when": 1.0}),))
    >>> print(disassemble(g), end="")
    .version 0.2
    .caps
    .vqs
    .chs
    .events
    <BLANKLINE>
    "a b": FENCE_EPOCH "when"=1.0
    """
    lines = [f".version {_version_text(graph.version)}"]
    if graph.description is not None:
        lines.append(f".description {_json_text(graph.description)}")
    if graph.metadata is not None:
        lines.append(f".metadata {_json_text(graph.metadata)}")
    lines.append(_names_line(".caps", graph.caps))
    lines.append(_names_line(".vqs", graph.resources.vqs))
    lines.append(_names_line(".chs", graph.resources.chs))
    lines.append(_names_line(".events", graph.resources.events))
    lines.append("")
    _rows_text(graph.nodes, "", lines)
    _rows_text(graph.blocks, "", lines)
    return "\n".join(lines) + "\n"


def _rows_text(nodes: tuple[Node, ...], indent: str, lines: list[str]) -> None:
    """A line a node; a REPEAT row as ``ID: REPEAT N {``, a block as ``NAME: BLOCK
    vq:A, ... {``, its body indented, ``}``."""
    for node in nodes:
        if node.op in (REPEAT, BLOCK) and node.body:
            if node.op == REPEAT:
                head = f"{_name_text(node.id)}: REPEAT {_value_text(node.args.get('count'))}"
            else:
                head = _node_text(msgspec.structs.replace(node, body=()))
            lines.append(f"{indent}{head} {{")
            _rows_text(node.body, indent + "    ", lines)
            lines.append(f"{indent}}}")
        else:
            lines.append(indent + _node_text(node))


# --------------------------------------------------------------------------- writing


def _name_text(name: str) -> str:
    if _BARE_NAME.fullmatch(name) and name not in KEYWORDS:
        return name
    return _json_text(name)


def _ident_text(word: str) -> str:
    if _IDENT.fullmatch(word) and word not in KEYWORDS:
        return word
    return _json_text(word)


def _version_text(version: str) -> str:
    return version if _VERSION_TOKEN.fullmatch(version) else _json_text(version)


def _plain(value: Any) -> Any:
    """A JSON value with mappings as dicts and tuples as lists (key order kept)."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _json_text(value: Any) -> str:
    return json.dumps(_plain(value), ensure_ascii=False, allow_nan=False)


def _value_text(value: Any) -> str:
    if type(value) is int:
        return str(value)
    if type(value) is float:
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a JSON number")
        return repr(value)
    return _json_text(value)


def _names_line(directive: str, names: tuple[str, ...]) -> str:
    return " ".join((directive, *(_name_text(name) for name in names)))


def _guard_text(guard: Guard) -> str:
    terms = " and ".join(f"ev:{_name_text(t.event)} == {t.equals}" for t in guard.terms)
    return f"all({terms})" if guard.conjunction and len(guard.terms) == 1 else terms


def _node_text(node: Node) -> str:
    items = [f"vq:{_name_text(name)}" for name in node.vqs]
    items += [f"ch:{_name_text(name)}" for name in node.chs]
    items += [f"in:{_name_text(name)}" for name in node.inputs]
    items += [f"out:{_name_text(name)}" for name in node.produces]
    items += [f"{_ident_text(key)}={_value_text(value)}" for key, value in node.args.items()]
    parts = [f"{_name_text(node.id)}: {_ident_text(node.op)}"]
    if items:
        parts.append(", ".join(items))
    if node.guard is not None:
        parts.append(f"when {_guard_text(node.guard)}")
    if node.caps:
        parts.append(" ".join(("caps", *(_name_text(cap) for cap in node.caps))))
    if node.metadata is not None:
        parts.append(f"meta {_json_text(node.metadata)}")
    return " ".join(parts)


# --------------------------------------------------------------------------- reading: structure


class _Fail(Exception):
    """A problem found while reading one line; the assembler adds where it is."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class _Line:
    """One non-blank source line: where it is, its text, and its text without the comment."""

    source: str
    number: int
    text: str
    code: str
    base_dir: Path | None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Directive:
    line: _Line
    word: str
    rest: int  # where the directive's operands start in line.code


@dataclass(frozen=True, slots=True, kw_only=True)
class _For:
    line: _Line
    var: str
    bounds: str
    body: tuple[Any, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _If:
    branches: tuple[tuple[_Line, str, tuple[Any, ...]], ...]
    otherwise: tuple[Any, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _MacroDef:
    line: _Line
    name: str
    params: tuple[tuple[str | None, str], ...]
    body: tuple[Any, ...]


@dataclass(slots=True)
class _Open:
    """A block being read: its kind, opening line and the bodies read so far."""

    kind: str
    line: _Line
    header: Any = None
    branches: list[tuple[_Line, str, list[Any]]] = field(default_factory=list)
    body: list[Any] = field(default_factory=list)
    has_else: bool = False

    def target(self) -> list[Any]:
        if self.kind == "if" and not self.has_else:
            return self.branches[-1][2]
        return self.body


def _strip_comment(line: str) -> str:
    """The line up to its comment, skipping ``;``/``#`` inside string literals."""
    pos = 0
    while True:
        match = _COMMENT_OR_QUOTE.search(line, pos)
        if match is None:
            return line
        char = match.group()
        if char in ";#":
            return line[: match.start()]
        string = _STRINGS[char].match(line, match.start())
        if string is None:
            return line  # an unterminated string: the line parser reports it
        pos = string.end()


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _QUOTE_WIDTH else text[: _QUOTE_WIDTH - 3] + "..."


def _fail_at(name: str, line: _Line, message: str) -> AsmError:
    return AsmError.at(name, line.source, line.number, message, _clip(line.text))


def _read_structure(text: str, source: str, base_dir: Path | None) -> tuple[Any, ...]:
    """Split text into statements, pairing every block directive with its end."""
    root = _Open(
        kind="file", line=_Line(source=source, number=0, text="", code="", base_dir=base_dir)
    )
    stack = [root]
    for number, raw in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        raw = raw.removesuffix("\r")
        code = _strip_comment(raw).rstrip(" \t\r")
        start = _run_end(_WS, code)
        if start == len(code):
            continue
        line = _Line(source=source, number=number, text=raw, code=code, base_dir=base_dir)
        if code[start] != ".":
            stack[-1].target().append(line)
            continue
        match = _DIRECTIVE.match(code, start)
        if match is None or match.group(1) not in DIRECTIVES:
            shown = code[start:].split()[0]
            raise _fail_at(
                "asm-directive",
                line,
                f"unknown directive {shown}; known: {', '.join('.' + d for d in DIRECTIVES)}",
            )
        word = match.group(1)
        rest = match.end()
        if rest < len(code) and code[rest] not in " \t":
            raise _fail_at("asm-directive", line, f"expected a space after .{word}")
        operands = code[rest:].strip(" \t")
        _read_block_line(stack, line, word, rest, operands)
    if len(stack) > 1:
        block = stack[-1]
        raise _fail_at(
            "asm-directive",
            block.line,
            f".{block.kind} is never closed: add .end{block.kind} (reached the end of {source})",
        )
    return tuple(root.body)


def _read_block_line(stack: list[_Open], line: _Line, word: str, rest: int, operands: str) -> None:
    top = stack[-1]
    if word in ("for", "if", "macro"):
        if len(stack) > MAX_NESTING:
            raise _fail_at("asm-directive", line, f"blocks nest deeper than {MAX_NESTING}")
        if word == "for":
            match = _FOR.fullmatch(operands)
            if match is None:
                raise _fail_at(
                    "asm-directive",
                    line,
                    ".for is written .for VAR in range(STOP), range(START, STOP) "
                    "or range(START, STOP, STEP)",
                )
            stack.append(_Open(kind="for", line=line, header=match.groups()))
        elif word == "if":
            if not operands:
                raise _fail_at("asm-directive", line, ".if needs a condition")
            stack.append(_Open(kind="if", line=line, branches=[(line, operands, [])]))
        else:
            if any(block.kind == "macro" for block in stack):
                raise _fail_at("asm-directive", line, "a macro cannot be defined inside a macro")
            stack.append(_Open(kind="macro", line=line, header=_macro_header(line, operands)))
        return
    if word in ("elif", "else", "endif", "endfor", "endmacro"):
        kind = {"elif": "if", "else": "if", "endif": "if", "endfor": "for", "endmacro": "macro"}
        wanted = kind[word]
        if top.kind != wanted:
            inner = f"the innermost open block is .{top.kind} at line {top.line.number}"
            raise _fail_at(
                "asm-directive",
                line,
                f".{word} has no open .{wanted} to close"
                + (f": {inner}" if top.kind != "file" else ""),
            )
        if word == "elif":
            if top.has_else:
                raise _fail_at("asm-directive", line, ".elif cannot follow .else")
            if not operands:
                raise _fail_at("asm-directive", line, ".elif needs a condition")
            top.branches.append((line, operands, []))
            return
        if operands:
            raise _fail_at("asm-directive", line, f".{word} takes nothing after it")
        if word == "else":
            if top.has_else:
                raise _fail_at("asm-directive", line, ".if has two .else lines")
            top.has_else = True
            return
        stack.pop()
        if word == "endif":
            branches = tuple((ln, cond, tuple(body)) for ln, cond, body in top.branches)
            statement: Any = _If(branches=branches, otherwise=tuple(top.body))
        elif word == "endfor":
            var, bounds = top.header
            statement = _For(line=top.line, var=var, bounds=bounds, body=tuple(top.body))
        else:
            name, params = top.header
            statement = _MacroDef(line=top.line, name=name, params=params, body=tuple(top.body))
        stack[-1].target().append(statement)
        return
    top.target().append(_Directive(line=line, word=word, rest=rest))


def _macro_header(line: _Line, operands: str) -> tuple[str, tuple[tuple[str | None, str], ...]]:
    words = operands.split()
    if not words:
        raise _fail_at("asm-directive", line, ".macro needs a name: .macro NAME PARAM...")
    name = words[0]
    if not _IDENT.fullmatch(name):
        raise _fail_at("asm-directive", line, f"macro name {name!r} is not an identifier")
    if name in OPS or name in OP_ALIASES or name.lower() in DIRECTIVES or name in KEYWORDS:
        raise _fail_at(
            "asm-directive",
            line,
            f"{name} cannot name a macro: it is an op, a directive or a keyword",
        )
    params: list[tuple[str | None, str]] = []
    # commas are allowed between parameters so a header may look like its calls
    for word in re.findall(r"[^ \t,]+", operands[len(name) + operands.index(name) :]):
        kind, _, param = word.rpartition(":")
        if kind not in ("", "vq", "ch", "ev"):
            raise _fail_at(
                "asm-directive",
                line,
                f"macro parameter {word!r}: write vq:NAME, ch:NAME, ev:NAME or NAME",
            )
        problem = _binding_problem(param)
        if problem:
            raise _fail_at("asm-directive", line, f"macro parameter {word!r} {problem}")
        if any(param == other for _, other in params):
            raise _fail_at("asm-directive", line, f"macro parameter {param!r} is given twice")
        params.append((kind or None, param))
    return name, tuple(params)


def _binding_problem(name: str) -> str | None:
    """Why ``name`` cannot be a parameter, loop variable or macro parameter (None: it can)."""
    if not _IDENT.fullmatch(name):
        return "is not an identifier"
    if name in RESERVED or keyword.iskeyword(name):
        return "is a reserved word"
    return None


# --------------------------------------------------------------------------- reading: execution


class _Scope(Mapping[str, object]):
    """Names visible to an expression: this scope's, then its parents'."""

    __slots__ = ("names", "parent")

    def __init__(self, names: dict[str, object], parent: _Scope | None) -> None:
        self.names = names
        self.parent = parent

    def __getitem__(self, key: str) -> object:
        scope: _Scope | None = self
        while scope is not None:
            if key in scope.names:
                return scope.names[key]
            scope = scope.parent
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        scope: _Scope | None = self
        while scope is not None:
            if key in scope.names:
                return True
            scope = scope.parent
        return False

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        scope: _Scope | None = self
        while scope is not None:
            for key in scope.names:
                if key not in seen:
                    seen.add(key)
                    yield key
            scope = scope.parent

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Context:
    """Where a body runs: the include chain and the macro calls around it."""

    files: tuple[Path, ...]
    file_names: tuple[str, ...]
    macro_depth: int = 0
    called_at: str = ""


@dataclass(slots=True)
class _Body:
    statements: tuple[Any, ...]
    scope: _Scope
    context: _Context
    index: int = 0


@dataclass(slots=True)
class _Loop:
    statement: _For
    values: Iterator[int]
    scope: _Scope
    context: _Context


@dataclass(frozen=True, slots=True, kw_only=True)
class _Macro:
    name: str
    params: tuple[tuple[str | None, str], ...]
    body: tuple[Any, ...]
    line: _Line


@dataclass(slots=True)
class _Pending:
    """A node read so far; its id is settled once every explicit label is known."""

    label: str | None
    op: str
    args: dict[str, Any]
    vqs: list[str]
    chs: list[str]
    inputs: list[str]
    produces: list[str]
    caps: list[str]
    guard: Guard | None
    metadata: dict[str, Any] | None
    end: int = -1  # a REPEAT row's: the pending index its body ends before


class _Cursor:
    """A position in one line's code."""

    __slots__ = ("pos", "text")

    def __init__(self, text: str, pos: int = 0) -> None:
        self.text = text
        self.pos = pos

    def skip_ws(self) -> bool:
        end = _run_end(_WS, self.text, self.pos)
        moved = end > self.pos
        self.pos = end
        return moved

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def word(self) -> str | None:
        match = _IDENT.match(self.text, self.pos)
        return match.group() if match else None

    def at_word(self, word: str) -> bool:
        """True at ``word`` standing alone, not as the start of a longer bare name."""
        token = _BARE_NAME.match(self.text, self.pos)
        return token is not None and token.group() == word and self.text[token.end() :][:1] != "{"

    def at_clause(self) -> bool:
        """True at a clause keyword (``when``/``caps``/``meta`` not followed by ``=``)."""
        word = self.word()
        if word not in KEYWORDS or not self.at_word(word):
            return False
        after = _run_end(_WS, self.text, self.pos + len(word))
        return self.text[after : after + 1] != "="

    def expect(self, token: str, message: str) -> None:
        if not self.text.startswith(token, self.pos):
            raise _Fail("asm-syntax", message)
        self.pos += len(token)

    def require_gap(self, what: str) -> None:
        if not self.at_end() and not self.skip_ws():
            raise _Fail("asm-syntax", f"expected a space after {what}, found {self.rest()!r}")

    def rest(self) -> str:
        rest = self.text[self.pos :]
        return rest if len(rest) <= 40 else rest[:37] + "..."


def _scan_group(text: str, start: int) -> int:
    """The index just past the ``}`` that closes the ``{`` at ``start``."""
    depth = 0
    pos = start
    while pos < len(text):
        char = text[pos]
        if char in _STRINGS:
            string = _STRINGS[char].match(text, pos)
            if string is None:
                raise _Fail("asm-syntax", "a string inside {...} is not closed")
            pos = string.end()
            continue
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                if char != "}":
                    raise _Fail("asm-syntax", f"{char} closes the {{ of a name interpolation")
                return pos + 1
        pos += 1
    raise _Fail("asm-syntax", "a { in a name is never closed with }")


def _expression_end(text: str, start: int) -> int:
    """Where an expression starting at ``start`` ends: a top-level comma or keyword, or the end."""
    depth = 0
    pos = start
    while pos < len(text):
        char = text[pos]
        if char in _STRINGS:
            string = _STRINGS[char].match(text, pos)
            if string is None:
                return len(text)  # unterminated: the expression parser says so
            pos = string.end()
        elif char in "([{":
            depth += 1
            pos += 1
        elif char in ")]}":
            depth -= 1
            pos += 1
        elif char == ",":
            if depth <= 0:
                return pos
            pos += 1
        elif char == "_" or (char.isascii() and char.isalpha()):
            word = _IDENT.match(text, pos)
            assert word is not None
            if depth <= 0 and word.group() in KEYWORDS:
                return pos
            pos = word.end()
        else:
            skip = _EXPR_SKIP.match(text, pos)
            pos = skip.end() if skip else pos + 1
    return len(text)


def _json_value(cursor: _Cursor, what: str, max_depth: int | None) -> Any:
    try:
        value, end = STRICT_JSON.raw_decode(cursor.text, cursor.pos)
    except json.JSONDecodeError as exc:
        message = f"{what} is not valid JSON: {exc.msg} (column {exc.colno})"
        raise _Fail("asm-syntax", message) from None
    except RecursionError:
        raise _Fail("asm-syntax", f"{what} nests too deeply to read") from None
    except FormatError as exc:  # a hook of the strict decoder
        raise _Fail("asm-syntax", f"{what} is not valid JSON: {exc.message}") from None
    cursor.pos = end
    if nests_deeper_than(value, max_depth):
        raise _Fail("asm-syntax", f"{what} nests deeper than {max_depth} levels")
    return value


def _json_string(cursor: _Cursor, what: str) -> str:
    value = _json_value(cursor, what, None)
    if type(value) is not str:
        raise _Fail("asm-syntax", f"{what} must be a JSON string")
    return value


def _evaluate(text: str, scope: Mapping[str, object]) -> object:
    try:
        return evaluate(text, scope)
    except UndefinedNameError as exc:
        raise _Fail("asm-undefined", str(exc)) from None
    except ExprError as exc:
        raise _Fail("asm-expression", str(exc)) from None


# --------------------------------------------------------------------------- reading: pieces
#
# Names, values, node items, clauses, guards and macro arguments, each read at a cursor
# in a scope: what they read depends on the line alone, never on the assembly so far.


def _label(cursor: _Cursor, scope: Mapping[str, object]) -> str | None:
    """The ``LABEL:`` that opens a line, read and skipped; None (cursor kept) for none."""
    end = _name_end(cursor)
    if end is None:
        return None
    colon = _run_end(_WS, cursor.text, end)
    if not cursor.text.startswith(":", colon):
        return None
    label = _name(cursor, scope, "a label")
    cursor.pos = colon + 1
    cursor.skip_ws()
    return label


def _name(cursor: _Cursor, scope: Mapping[str, object], what: str) -> str:
    text = cursor.text
    char = cursor.peek()
    if char == '"':
        return _json_string(cursor, what)
    if not (char == "{" or char == "_" or (char.isascii() and char.isalpha())):
        found = repr(cursor.rest()) if not cursor.at_end() else "the end of the line"
        raise _Fail("asm-syntax", f"expected {what}, found {found}")
    parts: list[str] = []
    while True:
        end = _run_end(_NAME_CHARS, text, cursor.pos)
        parts.append(text[cursor.pos : end])
        cursor.pos = end
        if cursor.peek() != "{":
            return "".join(parts)
        end = _scan_group(text, cursor.pos)
        parts.append(str(_evaluate(text[cursor.pos + 1 : end - 1], scope)))
        cursor.pos = end


def _name_end(cursor: _Cursor) -> int | None:
    """Where a NAME at the cursor would end, without evaluating it (None: no NAME here)."""
    text, pos = cursor.text, cursor.pos
    char = cursor.peek()
    if char == '"':
        string = _STRINGS['"'].match(text, pos)
        return string.end() if string else None
    if not (char == "{" or char == "_" or (char.isascii() and char.isalpha())):
        return None
    while True:
        pos = _run_end(_NAME_CHARS, text, pos)
        if text[pos : pos + 1] != "{":
            return pos
        pos = _scan_group(text, pos)


def _names(cursor: _Cursor, scope: _Scope, what: str) -> list[str]:
    names: list[str] = []
    while True:
        cursor.skip_ws()
        if cursor.at_end():
            return names
        names.append(_name(cursor, scope, what))
        cursor.require_gap(f"the name {names[-1]!r}")


def _value(cursor: _Cursor, scope: _Scope, key: str, max_depth: int | None) -> Any:
    char = cursor.peek()
    if char in ('"', "[", "{") and char:
        return _json_value(cursor, f"the value of {key}", max_depth)
    word = _JSON_WORD.match(cursor.text, cursor.pos)
    if word is not None:
        cursor.pos = word.end()
        return json.loads(word.group())
    end = _expression_end(cursor.text, cursor.pos)
    expression = cursor.text[cursor.pos : end]
    if not expression.strip():
        raise _Fail("asm-syntax", f"the argument {key} has no value")
    value = _evaluate(expression, scope)
    if type(value) not in (int, float, str):
        raise _Fail(
            "asm-expression",
            f"the argument {key} must be a number or a string, got {type(value).__name__}"
            + ("; write true or false" if type(value) is bool else ""),
        )
    cursor.pos = end
    return value


def _json_object(cursor: _Cursor, what: str, max_depth: int | None) -> dict[str, Any]:
    if cursor.peek() != "{":
        raise _Fail("asm-syntax", f"{what} must be a JSON object {{...}}")
    value = _json_value(cursor, what, max_depth)
    return value


def _end_of_line(cursor: _Cursor) -> None:
    cursor.skip_ws()
    if not cursor.at_end():
        raise _Fail("asm-syntax", f"unexpected {cursor.rest()!r} at the end of the line")


def _item(cursor: _Cursor, scope: _Scope, node: _Pending, max_depth: int | None) -> None:
    if cursor.at_end():
        raise _Fail("asm-syntax", "expected an item after ','")
    if cursor.peek() == '"':
        key = _json_string(cursor, "an argument key")
    else:
        word = cursor.word()
        if word is None:
            raise _Fail(
                "asm-syntax",
                "expected vq:NAME, ch:NAME, in:NAME, out:NAME or KEY=VALUE, "
                f"found {cursor.rest()!r}",
            )
        after = cursor.pos + len(word)
        if cursor.text.startswith(":", after):
            kind = _OPERAND_KINDS.get(word)
            if kind is None:
                hint = " (ev: is for guards and macro arguments)" if word == "ev" else ""
                raise _Fail(
                    "asm-syntax",
                    f"unknown operand kind {word}:; write vq:, ch:, in: or out:{hint}",
                )
            cursor.pos = after + 1
            getattr(node, kind).append(_name(cursor, scope, f"a name after {word}:"))
            return
        key = word
        cursor.pos = after
    cursor.skip_ws()
    cursor.expect("=", f"expected = after the argument key {key!r}")
    cursor.skip_ws()
    if key in node.args:
        raise _Fail("asm-syntax", f"the argument {key} is given twice")
    node.args[key] = _value(cursor, scope, key, max_depth)


def _clauses(cursor: _Cursor, scope: _Scope, node: _Pending, max_depth: int | None) -> None:
    cursor.skip_ws()
    if cursor.at_word("when"):
        cursor.pos += 4
        node.guard = _guard(cursor, scope)
        cursor.skip_ws()
    if cursor.at_word("caps"):
        cursor.pos += 4
        while True:
            cursor.skip_ws()
            if cursor.at_end() or any(cursor.at_word(word) for word in KEYWORDS):
                break
            node.caps.append(_name(cursor, scope, "a capability"))
            cursor.require_gap(f"the capability {node.caps[-1]!r}")
        if not node.caps:
            raise _Fail("asm-syntax", "caps needs at least one capability name")
    if cursor.at_word("meta"):
        cursor.pos += 4
        cursor.skip_ws()
        node.metadata = _json_object(cursor, "the node's meta", max_depth)
    cursor.skip_ws()
    if not cursor.at_end():
        word = cursor.word()
        if word in KEYWORDS:
            raise _Fail(
                "asm-syntax",
                f"{word} is out of place: a node line ends with "
                "[when GUARD] [caps CAP...] [meta {...}], in that order",
            )
        raise _Fail("asm-syntax", f"unexpected {cursor.rest()!r}; items are separated by ','")


def _guard(cursor: _Cursor, scope: _Scope) -> Guard:
    cursor.skip_ws()
    explicit = _ALL_OPEN.match(cursor.text, cursor.pos)
    if explicit is not None:
        cursor.pos = explicit.end()
        terms = _terms(cursor, scope)
        cursor.skip_ws()
        cursor.expect(")", "all( ... ) is not closed with )")
        return Guard(terms=terms, conjunction=True)
    terms = _terms(cursor, scope)
    return Guard(terms=terms, conjunction=len(terms) > 1)


def _terms(cursor: _Cursor, scope: _Scope) -> tuple[GuardTerm, ...]:
    terms = [_term(cursor, scope)]
    while True:
        saved = cursor.pos
        cursor.skip_ws()
        if not cursor.at_word("and"):
            cursor.pos = saved
            return tuple(terms)
        cursor.pos += 3
        terms.append(_term(cursor, scope))


def _term(cursor: _Cursor, scope: _Scope) -> GuardTerm:
    cursor.skip_ws()
    cursor.expect("ev:", "a guard term is ev:NAME == 0 or ev:NAME == 1")
    event = _name(cursor, scope, "an event name after ev:")
    cursor.skip_ws()
    cursor.expect("==", "a guard term compares with ==, as in ev:NAME == 1")
    cursor.skip_ws()
    value = _GUARD_VALUE.match(cursor.text, cursor.pos)
    if value is None:
        raise _Fail("asm-syntax", "a guard compares an event with 0 or 1")
    cursor.pos = value.end()
    return GuardTerm(event=event, equals=int(value.group()))


def _macro_args(cursor: _Cursor, scope: _Scope, name: str) -> list[tuple[str | None, object]]:
    args: list[tuple[str | None, object]] = []
    cursor.skip_ws()
    if cursor.at_end():
        return args
    while True:
        cursor.skip_ws()
        handle = _HANDLE_ARG.match(cursor.text, cursor.pos)
        if handle is not None:
            cursor.pos = handle.end()
            kind = handle.group(1)
            args.append((kind, _name(cursor, scope, f"a name after {kind}:")))
        else:
            end = _expression_end(cursor.text, cursor.pos)
            expression = cursor.text[cursor.pos : end]
            if not expression.strip():
                raise _Fail("asm-syntax", f"argument {len(args) + 1} of {name} is empty")
            if end < len(cursor.text) and cursor.text[end] != ",":
                raise _Fail("asm-syntax", f"a macro call takes no when, caps or meta ({name})")
            args.append((None, _evaluate(expression, scope)))
            cursor.pos = end
        cursor.skip_ws()
        if cursor.at_end():
            return args
        cursor.expect(",", f"expected ',' between the arguments of {name}")


class _Assembler:
    """The state of one assembly: what has been read, defined and counted so far."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.pending: list[_Pending] = []
        self.labels: set[str] = set()
        self.macros: dict[str, _Macro] = {}
        self.op_lines: dict[str, str] = {}
        self.declared: dict[str, list[str] | None] = {"vqs": None, "chs": None, "events": None}
        self.caps: list[str] = []
        self.version: str | None = None
        self.description: str | None = None
        self.metadata: dict[str, Any] | None = None
        self.globals = _Scope({}, None)
        self.repeats: list[
            tuple[int, _Line]
        ] = []  # REPEAT rows open (pending index), innermost last
        max_nodes = limits.max_nodes
        self.budget = None if max_nodes is None else ITERATIONS_PER_NODE * max_nodes
        self.spent = 0

    # -- driving

    def run(self, text: str, source: str, base_dir: Path | None, path: Path | None) -> Graph:
        with gc_paused():  # a bulk pass that builds no cycles (see gc_paused)
            return self.assemble(text, source, base_dir, path)

    def assemble(self, text: str, source: str, base_dir: Path | None, path: Path | None) -> Graph:
        statements = _read_structure(text, source, base_dir)
        files = () if path is None else (path.resolve(),)
        context = _Context(files=files, file_names=(source,))
        stack: list[_Body | _Loop] = [_Body(statements, self.globals, context)]
        while stack:
            frame = stack[-1]
            if isinstance(frame, _Loop):
                self.step_loop(frame, stack)
                continue
            if frame.index >= len(frame.statements):
                stack.pop()
                continue
            statement = frame.statements[frame.index]
            frame.index += 1
            if isinstance(statement, _Line):
                line = statement
            elif isinstance(statement, _If):
                line = statement.branches[0][0]
            else:
                line = statement.line
            try:
                self.execute(statement, frame, stack)
            except _Fail as fail:
                raise self.located(fail, line, frame.context) from None
            except RecursionError:
                deep = _Fail("asm-syntax", "the line nests too deeply to read")
                raise self.located(deep, line, frame.context) from None
        return self.finish()

    def located(self, fail: _Fail, line: _Line, context: _Context) -> AsmError:
        where = f" ({context.called_at})" if context.called_at else ""
        return _fail_at(fail.name, line, fail.message + where)

    def spend(self) -> None:
        self.spent += 1
        if self.budget is not None and self.spent > self.budget:
            raise _Fail(
                "asm-expansion-limit",
                f"loops and macro calls ran more than {self.budget} times "
                f"({ITERATIONS_PER_NODE} x Limits.max_nodes); reduce the loop bounds",
            )

    def step_loop(self, loop: _Loop, stack: list[_Body | _Loop]) -> None:
        value = next(loop.values, None)
        if value is None:
            stack.pop()
            return
        try:
            self.spend()
        except _Fail as fail:
            raise self.located(fail, loop.statement.line, loop.context) from None
        scope = _Scope({loop.statement.var: value}, loop.scope)
        stack.append(_Body(loop.statement.body, scope, loop.context))

    def execute(self, statement: Any, frame: _Body, stack: list[_Body | _Loop]) -> None:
        if isinstance(statement, _Line):
            self.node_line(statement, frame, stack)
        elif isinstance(statement, _Directive):
            self.directive(statement, frame, stack)
        elif isinstance(statement, _For):
            self.start_loop(statement, frame, stack)
        elif isinstance(statement, _If):
            for line, condition, body in statement.branches:
                try:
                    holds = bool(_evaluate(condition, frame.scope))
                except _Fail as fail:
                    raise self.located(fail, line, frame.context) from None
                if holds:
                    stack.append(_Body(body, frame.scope, frame.context))
                    return
            stack.append(_Body(statement.otherwise, frame.scope, frame.context))
        else:
            self.define_macro(statement)

    # -- blocks

    def start_loop(self, statement: _For, frame: _Body, stack: list[_Body | _Loop]) -> None:
        problem = _binding_problem(statement.var)
        if problem:
            raise _Fail("asm-directive", f"loop variable {statement.var!r} {problem}")
        if statement.var in frame.scope:
            raise _Fail(
                "asm-directive", f"loop variable {statement.var!r} is already defined; rename it"
            )
        bounds: list[int] = []
        cursor = _Cursor(statement.bounds)
        while True:
            end = _expression_end(cursor.text, cursor.pos)
            piece = cursor.text[cursor.pos : end]
            if not piece.strip():
                raise _Fail("asm-directive", "range() has an empty bound")
            value = _evaluate(piece, frame.scope)
            if type(value) is not int:
                raise _Fail(
                    "asm-expression",
                    f"range() bounds must be ints; {piece.strip()!r} is {type(value).__name__}",
                )
            bounds.append(value)
            if end >= len(cursor.text):
                break
            if cursor.text[end] != ",":
                raise _Fail("asm-directive", f"unexpected {cursor.text[end:]!r} in range()")
            cursor.pos = end + 1
        if len(bounds) > 3:
            raise _Fail("asm-directive", f"range() takes 1 to 3 bounds, got {len(bounds)}")
        if len(bounds) == 3 and bounds[2] == 0:
            raise _Fail("asm-directive", "range() step must not be zero")
        values = iter(range(*bounds))
        stack.append(_Loop(statement, values, frame.scope, frame.context))

    def define_macro(self, statement: _MacroDef) -> None:
        name = statement.name
        if name in self.macros:
            first = self.macros[name].line
            raise _fail_at(
                "asm-directive",
                statement.line,
                f"macro {name} is already defined at {first.source}:{first.number}",
            )
        if name in self.op_lines:
            raise _fail_at(
                "asm-directive",
                statement.line,
                f"{name} was used as an op at {self.op_lines[name]} before this macro "
                "definition; define macros before calling them",
            )
        self.macros[name] = _Macro(
            name=name, params=statement.params, body=statement.body, line=statement.line
        )

    # -- directives

    def directive(self, statement: _Directive, frame: _Body, stack: list[_Body | _Loop]) -> None:
        word = statement.word
        cursor = _Cursor(statement.line.code, statement.rest)
        cursor.skip_ws()
        if word == "version":
            if self.version is not None:
                raise _Fail("asm-directive", ".version is given twice")
            if cursor.peek() == '"':
                version = _json_string(cursor, "the version")
            else:
                token = _VERSION_TOKEN.match(cursor.text, cursor.pos)
                if token is None:
                    raise _Fail("asm-directive", ".version needs a version, e.g. .version 0.2")
                version = token.group()
                cursor.pos = token.end()
            _end_of_line(cursor)
            if version not in VERSIONS:
                raise _Fail(
                    "asm-directive",
                    f"version {version!r} is not supported; use one of {', '.join(VERSIONS)}",
                )
            self.version = version
        elif word == "description":
            if self.description is not None:
                raise _Fail("asm-directive", ".description is given twice")
            if cursor.peek() != '"':
                raise _Fail("asm-directive", '.description takes a JSON string: .description "..."')
            self.description = _json_string(cursor, "the description")
            _end_of_line(cursor)
        elif word == "metadata":
            if self.metadata is not None:
                raise _Fail("asm-directive", ".metadata is given twice")
            self.metadata = _json_object(cursor, "the .metadata", self.limits.max_depth)
            _end_of_line(cursor)
        elif word == "caps":
            self.caps.extend(_names(cursor, frame.scope, "a capability"))
        elif word in _RESOURCE_KINDS:
            names = _names(cursor, frame.scope, "a name")
            declared = self.declared[word]
            self.declared[word] = names if declared is None else declared + names
        elif word == "param":
            self.param(cursor, frame.scope)
        else:
            self.include(cursor, statement.line, frame, stack)

    def param(self, cursor: _Cursor, scope: _Scope) -> None:
        match = _PARAM.fullmatch(cursor.text, cursor.pos)
        if match is None:
            raise _Fail("asm-directive", ".param is written .param NAME = EXPR")
        name, expression = match.groups()
        problem = _binding_problem(name)
        if problem:
            raise _Fail("asm-directive", f"parameter {name!r} {problem}")
        if name in scope:
            raise _Fail("asm-directive", f"parameter {name!r} is already defined")
        if not expression.strip():
            raise _Fail("asm-directive", f"parameter {name!r} has no value")
        value = _evaluate(expression, scope)
        if type(value) not in (int, float, str):
            raise _Fail(
                "asm-expression",
                f"parameter {name!r} must be a number or a string, got {type(value).__name__}",
            )
        scope.names[name] = value

    def include(
        self, cursor: _Cursor, line: _Line, frame: _Body, stack: list[_Body | _Loop]
    ) -> None:
        if cursor.peek() != '"':
            raise _Fail("asm-include", '.include takes a JSON string: .include "path.qvm.asm"')
        relative = _json_string(cursor, "the include path")
        _end_of_line(cursor)
        if line.base_dir is None:
            raise _Fail(
                "asm-include",
                "includes need a file: use assemble_file, or pass base_dir to assemble",
            )
        context = frame.context
        path = line.base_dir / relative
        resolved = path.resolve()
        if resolved in context.files:
            chain = " -> ".join((*context.file_names, str(path)))
            raise _Fail("asm-include", f"include cycle: {chain}")
        if len(context.files) >= MAX_INCLUDE_DEPTH:
            raise _Fail("asm-include", f"includes nest deeper than {MAX_INCLUDE_DEPTH}")
        try:
            data = read_bytes(path, limits=self.limits)
            text = data.decode("utf-8")
        except FormatError as exc:
            raise _Fail("asm-include", f"cannot include {relative!r}: {exc.message}") from None
        except UnicodeDecodeError as exc:
            raise _Fail(
                "asm-include", f"cannot include {relative!r}: byte {exc.start} is not UTF-8"
            ) from None
        statements = _read_structure(text, str(path), path.parent)
        inner = _Context(
            files=(*context.files, resolved),
            file_names=(*context.file_names, str(path)),
            macro_depth=context.macro_depth,
            called_at=context.called_at or f"included from {line.source}:{line.number}",
        )
        stack.append(_Body(statements, frame.scope, inner))

    # -- node lines and macro calls

    def node_line(self, line: _Line, frame: _Body, stack: list[_Body | _Loop]) -> None:
        fast = _FAST_NODE.fullmatch(line.code)
        if fast is not None and self.fast_node_line(fast, line):
            return
        code = line.code.strip(" \t")
        if code == "}":
            self.close_repeat()
            return
        if code.endswith("{") and self.open_repeat(line, frame.scope):
            return
        scope = frame.scope
        cursor = _Cursor(line.code)
        cursor.skip_ws()
        label = _label(cursor, scope)
        if cursor.peek() == '"':
            op = _json_string(cursor, "the op")
        else:
            word = cursor.word()
            if word is None:
                raise _Fail(
                    "asm-syntax",
                    "expected an op (an identifier or a JSON string) or a directive",
                )
            op = word
            cursor.pos += len(word)
            macro = self.macros.get(op)
            if macro is not None:
                self.call_macro(macro, label, cursor, line, frame, stack)
                return
        self.op_lines.setdefault(op, f"{line.source}:{line.number}")
        cursor.require_gap(f"the op {op}")
        node = _Pending(label, op, {}, [], [], [], [], [], None, None)
        if not cursor.at_end() and not cursor.at_clause():
            while True:
                _item(cursor, scope, node, self.limits.max_depth)
                cursor.skip_ws()
                if cursor.peek() != ",":
                    break
                cursor.pos += 1
                cursor.skip_ws()
        _clauses(cursor, scope, node, self.limits.max_depth)
        self.add(node)

    def fast_node_line(self, m: re.Match[str], line: _Line) -> bool:
        """Read a plain node line (see ``_FAST_NODE``) as :meth:`node_line` would; False
        (nothing done) for one it must read itself: a macro call, a keyword, an argument
        given twice, a number an expression would refuse."""
        label, op, items, source = m.group("label", "op", "items", "source")
        if op in self.macros or op in KEYWORDS or label in KEYWORDS:
            return False
        node = _Pending(label, op, {}, [], [], [], [], [], None, None)
        if items is not None:
            args = node.args
            for kind, name, key, number in _FAST_PARTS.findall(items):
                if kind:
                    getattr(node, _OPERAND_KINDS[kind]).append(name)
                    continue
                if key in args or key in KEYWORDS:
                    return False
                value = (
                    float(number)
                    if "." in number or "e" in number or "E" in number
                    else int(number)
                )
                if type(value) is float and not math.isfinite(value):
                    return False
                args[key] = value
        if source is not None:
            node.metadata = {"source": source}
        self.op_lines.setdefault(op, f"{line.source}:{line.number}")
        self.add(node)
        return True

    def call_macro(
        self,
        macro: _Macro,
        label: str | None,
        cursor: _Cursor,
        line: _Line,
        frame: _Body,
        stack: list[_Body | _Loop],
    ) -> None:
        if label is not None:
            raise _Fail(
                "asm-syntax",
                f"a macro call takes no label: {macro.name} makes several nodes; "
                "label the nodes inside the macro instead, e.g. {p}_h: APPLY_H vq:{p}",
            )
        args = _macro_args(cursor, frame.scope, macro.name)
        shown = " ".join(f"{kind}:{name}" if kind else name for kind, name in macro.params)
        if len(args) != len(macro.params):
            raise _Fail(
                "asm-syntax",
                f"macro {macro.name} takes {len(macro.params)} arguments ({shown}), "
                f"got {len(args)}",
            )
        bound: dict[str, object] = {}
        for index, ((want, param), (kind, value)) in enumerate(
            zip(macro.params, args, strict=True), start=1
        ):
            if want is not None and kind != want:
                got = f"{kind}:" if kind else "a value"
                raise _Fail(
                    "asm-syntax",
                    f"argument {index} of macro {macro.name} ({want}:{param}): "
                    f"expected {want}: got {got}",
                )
            if want is None and kind is not None:
                raise _Fail(
                    "asm-syntax",
                    f"argument {index} of macro {macro.name} ({param}) takes a value, "
                    f"got {kind}:{value}",
                )
            bound[param] = value
        depth = frame.context.macro_depth + 1
        if depth > MAX_MACRO_DEPTH:
            raise _Fail(
                "asm-expansion-limit",
                f"macro calls nest deeper than {MAX_MACRO_DEPTH} (does {macro.name} call itself?)",
            )
        self.spend()
        context = _Context(
            files=frame.context.files,
            file_names=frame.context.file_names,
            macro_depth=depth,
            called_at=f"in macro {macro.name} called at {line.source}:{line.number}",
        )
        stack.append(_Body(macro.body, _Scope(bound, self.globals), context))

    # -- REPEAT rows

    def open_repeat(self, line: _Line, scope: _Scope) -> bool:
        """Read ``[LABEL:] REPEAT COUNT {``; False (nothing done) for another line."""
        cursor = _Cursor(line.code)
        cursor.skip_ws()
        label = _label(cursor, scope)
        word = cursor.word()
        if word == BLOCK:
            return self.open_block(line, label, cursor, scope)
        if word != REPEAT:
            return False
        expression = line.code[cursor.pos + len(REPEAT) : line.code.rindex("{")]
        if not expression.strip():
            raise _Fail("asm-syntax", "REPEAT is written [LABEL:] REPEAT COUNT {")
        count = _evaluate(expression, scope)
        if type(count) is not int or count < 1:
            raise _Fail("asm-expression", f"a REPEAT count is a whole number >= 1, got {count!r}")
        node = _Pending(label, REPEAT, {"count": count}, [], [], [], [], [], None, None)
        self.add(node)
        self.repeats.append((len(self.pending) - 1, line))
        return True

    def open_block(self, line: _Line, label: str | None, cursor: _Cursor, scope: _Scope) -> bool:
        """Read ``NAME: BLOCK vq:A, ... {``, a block of program.blocks: its rows up to
        the ``}`` that closes it are its body, as a REPEAT row's are."""
        if label is None or self.repeats:
            raise _Fail("asm-syntax", "a block is written NAME: BLOCK vq:A, ... { at the top level")
        cursor = _Cursor(line.code[: line.code.rindex("{")], cursor.pos + len(BLOCK))
        node = _Pending(label, BLOCK, {}, [], [], [], [], [], None, None)
        cursor.skip_ws()
        while not cursor.at_end():
            _item(cursor, scope, node, self.limits.max_depth)
            cursor.skip_ws()
            if cursor.peek() != ",":
                break
            cursor.pos += 1
            cursor.skip_ws()
        if node.args or node.chs or node.inputs or node.produces or node.caps:
            raise _Fail("asm-syntax", "a block takes its formal qubits only (vq:A, vq:B ...)")
        self.add(node)
        self.repeats.append((len(self.pending) - 1, line))
        return True

    def close_repeat(self) -> None:
        """Read the ``}`` that ends the innermost open REPEAT row."""
        if not self.repeats:
            raise _Fail("asm-syntax", "} closes no REPEAT row")
        start, line = self.repeats.pop()
        self.pending[start].end = len(self.pending)
        if len(self.pending) == start + 1:
            raise _fail_at("asm-syntax", line, "a REPEAT row needs a body of one row or more")

    # -- results

    def add(self, node: _Pending) -> None:
        max_nodes = self.limits.max_nodes
        if max_nodes is not None and len(self.pending) >= max_nodes:
            raise _Fail(
                "asm-expansion-limit",
                f"the program makes more than {max_nodes} nodes (Limits.max_nodes)",
            )
        if node.label is not None:
            self.labels.add(node.label)
        self.pending.append(node)

    def finish(self) -> Graph:
        if self.repeats:
            raise _fail_at(
                "asm-syntax", self.repeats[-1][1], "this REPEAT row is never closed: add }"
            )
        folded = any(item.end >= 0 or item.op == CALL for item in self.pending)
        if folded and self.version not in (None, FOLDED_VERSION):
            raise AsmError.of(
                "asm-directive",
                f"REPEAT rows and blocks need .version {FOLDED_VERSION}; "
                f"this text says {self.version}",
            )
        in_blocks = [False] * len(self.pending)
        for index, item in enumerate(self.pending):
            if item.op == BLOCK:
                in_blocks[index : item.end] = [True] * (item.end - index)
        nodes = []
        for index, item in enumerate(self.pending, start=1):
            node_id = item.label
            if node_id is None:
                node_id = base = f"n{index}"
                suffix = 0
                while node_id in self.labels:
                    suffix += 1
                    node_id = f"{base}_{suffix}"
            guard = item.guard
            nodes.append(
                Node(
                    id=node_id,
                    op=canonical_op(item.op) or item.op,
                    args=item.args,
                    vqs=tuple(item.vqs),
                    chs=tuple(item.chs),
                    inputs=tuple(item.inputs),
                    produces=tuple(item.produces),
                    caps=tuple(item.caps),
                    guard=guard,
                    metadata=item.metadata,
                )
            )
        declared = self.declared
        outside = [n for n, inside in zip(nodes, in_blocks, strict=True) if not inside]
        inferred = {
            "vqs": lambda: _seen(n.vqs for n in outside),
            "chs": lambda: _seen(n.chs for n in outside),
            "events": lambda: _seen((*n.inputs, *n.guard_events, *n.produces) for n in outside),
        }
        resources = Resources(
            **{
                kind: tuple(names if names is not None else inferred[kind]())
                for kind, names in declared.items()
            }
        )
        blocks: tuple[Node, ...] = ()
        if folded:
            version, rows = self.version or FOLDED_VERSION, tuple(self.nested(nodes, 0, len(nodes)))
            blocks = tuple(row for row in rows if row.op == BLOCK)
            rows = tuple(row for row in rows if row.op != BLOCK)
        else:
            version, rows = self.version or CURRENT_VERSION, tuple(nodes)
        return Graph(
            version=version,
            nodes=rows,
            blocks=blocks,
            resources=resources,
            caps=tuple(self.caps),
            description=self.description,
            metadata=self.metadata,
        )

    def nested(self, nodes: list[Node], start: int, end: int) -> Iterator[Node]:
        """The rows of ``nodes[start:end]``, each REPEAT row holding its body."""
        index = start
        while index < end:
            stop = self.pending[index].end
            if stop < 0:
                yield nodes[index]
                index += 1
                continue
            body = tuple(self.nested(nodes, index + 1, stop))
            yield msgspec.structs.replace(nodes[index], body=body)
            index = stop


def _seen(groups: Any) -> list[str]:
    """Names in order of first appearance."""
    return list(dict.fromkeys(name for group in groups for name in group))
