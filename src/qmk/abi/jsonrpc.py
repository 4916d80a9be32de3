"""The JSON-RPC 2.0 protocol core: one line of bytes in, one line of bytes out (or none).

Transport-free: :class:`RpcCore` knows nothing of sockets. The server hands it each
newline-delimited line it reads and writes back what it returns; tests call it
directly. It implements JSON-RPC 2.0 exactly:

- a request is an object with ``"jsonrpc": "2.0"``, a string ``method``, optional
  ``params`` (object or array) and optional ``id`` (string, number or null).
  Without ``id`` it is a notification and gets no reply, even when it fails.
- a batch is a non-empty array of requests, answered by an array of the replies
  that are due (none at all when every element is a notification). An empty
  array is one Invalid Request error.
- errors: -32700 the line is not UTF-8 JSON; -32600 not a valid request;
  -32601 no such method; -32602 params that do not match :data:`METHODS`;
  -32603 an unexpected failure. That one is logged here with its traceback and sent as
  a generic message with an ``incident`` id: tracebacks never cross the wire. A
  :class:`qmk.errors.SyscallError` the target raises is sent as ``to_rpc()``.

Limits are checked before the target sees anything. A line whose arrays and objects
nest deeper than ``max_depth`` is refused before it is parsed (-32600 with
``data.limit``, ``id`` null; :func:`nesting_exceeds` is a scan at C speed). An ``id``
that is not a finite number (``1e400`` decodes to infinity) is -32600 with ``id``
null, and the other requests of its batch are answered as usual. A number in params
that is not finite, or an integer of magnitude 2**64 or more (``10^400``), is the
kernel's ``1012 invalid-argument`` naming the param. A reply the encoder cannot
write never takes its batch down: it becomes an error reply of its own.

Every error object carries ``data.name`` (and ``data.code``, QMK's stable code).
Blank lines are ignored, so a person can type requests into ``socat``.

>>> import asyncio
>>> class Echo:
...     async def q_status(self, *, session_id, job_id):
...         return {"job_id": job_id, "state": "QUEUED"}
>>> core = RpcCore(Echo())
>>> line = b'{"jsonrpc": "2.0", "id": 1, "method": "q_status", "params": ["s", "j"]}'
>>> asyncio.run(core.handle_line(line))
b'{"jsonrpc":"2.0","id":1,"result":{"job_id":"j","state":"QUEUED"}}\\n'
>>> asyncio.run(core.handle_line(b'[]'))  # doctest: +ELLIPSIS
b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,...}}\\n'
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

import qmk.aio as aio
from qmk import defaults
from qmk.abi.errors import (
    InternalError,
    InvalidRequest,
    MethodNotFound,
    ParseError,
    RpcError,
)
from qmk.abi.methods import METHODS, SOCKET_METHODS, MethodSpec, bind_params, unknown
from qmk.errors import InvalidArgument, QMKError, SyscallError
from qmk.qvm.graph import GraphText, free_value_in_pieces, is_graph_data, promote_young

if TYPE_CHECKING:  # the door reads lines with this module's decoder
    from qmk.abi.door import Door

LOG = logging.getLogger("qmk.abi")

#: The most requests one batch may hold; a longer batch is one Invalid Request error.
DEFAULT_MAX_BATCH = 1000
#: The deepest nesting of arrays and objects a line may have (a request object is 1).
DEFAULT_MAX_DEPTH = defaults.MAX_JSON_DEPTH
#: A JSON integer is in range when its magnitude is below this: every 64-bit value,
#: signed or unsigned (seeds are unsigned 64-bit), fits.
INT_LIMIT = 2**64

_MISSING = object()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# The nesting scan keeps only quotes and brackets (``{}`` become ``[]``), drops every
# string without a bracket in it (``""`` once its letters are gone; dropping two adjacent
# quotes changes no bracket's insideness), and sums what is left.
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b'[]{}"')
_SCAN_CHUNK = 1 << 20


def nesting_exceeds(data: bytes, limit: int) -> bool:
    """Whether the arrays and objects of the JSON text ``data`` nest deeper than ``limit``.

    Exact for valid JSON (brackets inside strings do not count); for text that is not
    JSON the answer does not matter, as the parser refuses it either way. It runs at C
    speed: a line with at most ``limit`` brackets is answered by two counts, any other
    by a translation of the bytes and a cumulative sum of what is left.

    >>> nesting_exceeds(b'{"a": [[1], {"b": "]]]]"}]}', 3), nesting_exceeds(b"[[[[]]]]", 3)
    (False, True)
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    if b"\\" in data:  # escaped quotes and backslashes are never string ends
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    text = data.translate(_BRACKETS, _NOT_BRACKETS).replace(b'""', b"")
    strings = b'"' in text  # strings with brackets in them: those brackets do not count
    if not strings and b"[" * (limit + 1) in text:
        return True
    import numpy as np  # here: the client imports this module and needs no numpy

    depth = inside = 0
    for start in range(0, len(text), _SCAN_CHUNK):  # a chunk at a time: bounded memory
        codes = np.frombuffer(text, dtype=np.int8, offset=start)[:_SCAN_CHUNK]
        steps = 92 - codes  # '[' (91) -> +1, ']' (93) -> -1
        if strings:
            quotes = codes == 34
            parity = (np.cumsum(quotes, dtype=np.int32) + inside) & 1
            steps[parity.astype(bool) | quotes] = 0
            inside = int(parity[-1])
        levels = np.cumsum(steps, dtype=np.int32) + depth
        if int(levels.max()) > limit:
            return True
        depth = int(levels[-1])
    return False


class _Numbers:
    """The parser's number hooks: a number out of range decodes as an infinity, and is
    noted, so that only a line holding one is searched for it."""

    __slots__ = ("out_of_range",)

    def __init__(self) -> None:
        self.out_of_range = False

    def integer(self, text: str) -> int | float:
        if len(text) <= 19:  # < 10**19 < 2**64 in magnitude
            return int(text)
        value = int(text) if len(text) <= 21 else None
        if value is not None and -INT_LIMIT < value < INT_LIMIT:
            return value
        self.out_of_range = True
        return -math.inf if text.startswith("-") else math.inf

    def real(self, text: str) -> float:
        value = float(text)
        if value - value != 0.0:  # 1e400 is an infinity
            self.out_of_range = True
        return value


#: A run of 20 digits or more (every digit made a 9, then a substring search: a regular
#: expression's scan of a line cost twenty times as much) holds an integer that may be
#: out of range (2**64 has 20 digits), which the parser below notes; a float out of
#: range fails the fast decoder, and the parser below notes it too.
#: The same copy has its braces made brackets: the nesting test's first count
#: (:func:`nesting_exceeds`) is then one count of that copy, not two of the line.
_SCAN = bytes.maketrans(b"0123456789{", b"9" * 10 + b"[")
_TWENTY_DIGITS = b"9" * 20
#: The fast decoder of a short line (msgspec's): valid JSON decodes to the value
#: ``json.loads`` gives, NaN and Infinity are refused as there, and anything it refuses
#: goes to ``json.loads`` for its error.
_fast_decode = msgspec.json.Decoder().decode


#: Lines at least this long are decoded with the garbage collector paused: the objects a
#: big line makes (a 5 MB graph: about a million) set off collections that walk the whole
#: heap, on the event loop, for longer than the decoding itself (``docs/qsyscall.md``).
#: JSON makes no cycles, so nothing is missed; the next collection runs when the
#: collector is back.
NO_GC_BYTES = 1 << 16


#: Lines at least this long are decoded in a thread: the decoder lets the event loop in
#: at each number it reads, so the loop's other requests wait a moment at a time, not the
#: whole decoding.
THREAD_BYTES = 1 << 20


def decode(line: bytes, *, max_depth: int | None = None) -> Any:
    """The JSON value of one line (strict: UTF-8, no NaN/Infinity).

    A number out of range (an integer of magnitude 2**64 or more, a real beyond
    the double range) decodes as an infinity, which :class:`RpcCore` refuses.

    Raises:
        ParseError: the line is not UTF-8 or not one JSON value.
        InvalidRequest: its arrays and objects nest deeper than ``max_depth``.
    """
    return _decode(line, max_depth)[0]


async def decode_soon(line: bytes, *, max_depth: int | None = None) -> Any:
    """:func:`decode` for a coroutine: a line of :data:`THREAD_BYTES` or more is decoded in
    a thread, so the event loop serves other requests meanwhile."""
    return (await _decode_soon(line, max_depth))[0]


async def decode_soon_marked(line: bytes, *, max_depth: int | None = None) -> tuple[Any, bool]:
    """:func:`decode_soon`, and whether the value may hold a number out of range (decoded
    as an infinity): then :func:`check_param_numbers` names the param that holds it."""
    return await _decode_soon(line, max_depth)


async def _decode_soon(line: bytes, max_depth: int | None) -> tuple[Any, bool]:
    if len(line) >= THREAD_BYTES:
        return await asyncio.to_thread(_decode, line, max_depth)
    return _decode(line, max_depth)


def _decode(line: bytes, max_depth: int | None, *, pieces: bool = False) -> tuple[Any, bool]:
    """``pieces``: a hook per object, so a thread decoding a big line lets the event
    loop take the interpreter between objects (one ``json.loads`` holds it throughout)."""
    short = not pieces and len(line) < NO_GC_BYTES  # msgspec may decode it (below)
    if short and (max_depth is None or max_depth >= FLAT_DEPTH):
        flat = _flat_message(line, max_depth)
        if flat is not None:  # (nothing in it can be out of range)
            return flat, False
    scanned = line.translate(_SCAN) if short else line  # one pass: digits 9, braces [
    if (
        max_depth is not None
        # nesting_exceeds's first test: its brackets and braces counted
        and (scanned.count(b"[") if short else line.count(b"[") + line.count(b"{")) > max_depth
        and nesting_exceeds(line, max_depth)
    ):
        raise InvalidRequest(
            f"the JSON nests deeper than the limit of {max_depth} arrays and objects",
            limit=max_depth,
        )
    # (``find``, not ``in``: a ``bytes in bytes`` first tries the needle as an integer,
    # and makes and drops a TypeError for it)
    if short and scanned.find(_TWENTY_DIGITS) < 0:
        if line.find(b'"q_submit"', 0, HEAD_BYTES) >= 0:
            submit = _submit_message(line, _decode_submit)
            if submit is not None:
                return submit, False
        try:  # the same value as json.loads below gives, for valid JSON with no number
            message = _fast_decode(line)  # out of range, a few times faster
        except (msgspec.DecodeError, ValueError):  # (ValueError: a line not UTF-8)
            pass  # the parser below says what is wrong, where, as always
        else:
            if type(message) is dict and message.get("method") == "q_submit":
                _graph_text(message)
            return message, False
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"the line is not UTF-8 (byte {exc.start})") from None
    numbers = _Numbers()
    paused = len(line) >= NO_GC_BYTES and gc.isenabled()
    try:
        if paused:  # a decoded value is a tree: no cycle for the collector to find
            gc.disable()
        value = json.loads(
            text,
            parse_constant=_no_constant,
            parse_int=numbers.integer,
            parse_float=numbers.real,
            object_hook=_each_object if pieces else None,
        )
    except RecursionError:
        raise ParseError("the JSON nests too deeply") from None
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        where = f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ParseError(f"invalid JSON{where}: {reason}") from None
    finally:
        if paused:
            promote_young()  # the value unwalked by the next young collection
            gc.enable()
    if short and not numbers.out_of_range:  # (a twenty-digit run, in a string say)
        _graph_text(value)
    return value, numbers.out_of_range


#: How far into a line a ``q_submit`` names its method where the fast decoder takes it.
HEAD_BYTES = 4096


def _each_object(value: dict[str, Any]) -> dict[str, Any]:
    return value  # a Python call: where another thread may take the interpreter


def _graph_text(message: Any) -> None:
    """A ``q_submit`` request's graph decoded by msgspec, in place, as :class:`GraphText`.

    The text is the compact text :func:`~qmk.qvm.graph.compact_text` writes, but written
    by msgspec, which is much faster; the kernel needs only the text. The two write the
    same text for what msgspec decodes (no NaN or infinity can be in it), but for a float
    that either writes with an exponent. :mod:`json` does so below 1e-4 and from 1e16
    (``1e-05``), msgspec in its own ranges (``1e-7``, ``0.00001``). So a text with a
    digit before an ``e`` or with ``0.0000`` is written again by
    :func:`~qmk.qvm.graph.compact_text`, and so is a string that holds either. No other
    float differs (``tests/qvm/test_compact_text.py`` checks every magnitude)."""
    if type(message) is not dict or message.get("method") != "q_submit":
        return
    params = message.get("params")
    if type(params) is not dict:
        return
    text = _graph_text_of(params.get("graph"))
    if text is not None:
        params["graph"] = text


def _graph_text_of(graph: Any) -> GraphText | None:
    """:func:`_graph_text`'s text of a decoded graph; None when it is no QVM graph, or
    when the kernel writes its text (:func:`_may_differ`)."""
    if not is_graph_data(graph):
        return None
    data = _fast_encode(graph)
    if _may_differ(data):
        return None  # the kernel writes it (compact_text), as before
    program = graph.get("program")
    nodes = program.get("nodes") if type(program) is dict else None
    return GraphText(data.decode("utf-8"), len(nodes) if type(nodes) is list else 0)


_fast_encode = msgspec.json.Encoder().encode


def _submit_struct(name: str, fields: list[tuple[str, Any]]) -> type[msgspec.Struct]:
    """A struct of a request's members, each ``UNSET`` when absent; an unknown member
    fails its decoding (the general decoder then says what it says)."""
    return msgspec.defstruct(
        name,
        [(field, kind, msgspec.field(default=msgspec.UNSET)) for field, kind in fields],
        forbid_unknown_fields=True,
    )


#: An integer msgspec decodes as a flat value: a 64-bit signed one (every one is in range;
#: a bigger one, in range or not, fails the flat decoders: the general decoder reads it).
_INT64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
#: A JSON scalar as :func:`json.loads` gives it (a real out of range fails msgspec, NaN
#: and Infinity are not JSON to it, a lone surrogate in a string fails it too).
_SCALAR = str | _INT64 | float | bool | None
#: A flat member: a scalar, or an object or array of scalars.
_FLAT = _SCALAR | dict[str, _SCALAR] | list[_SCALAR]
#: A flat line: an object whose members are scalars, arrays of scalars or objects of
#: flat members (a request whose params are scalars, or objects or arrays of scalars).
#: Its nesting is at most :data:`FLAT_DEPTH`; nothing in it is out of range: it needs no
#: scan.
_decode_flat = msgspec.json.Decoder(
    dict[str, str | _INT64 | float | bool | dict[str, _FLAT] | list[_SCALAR] | None]
).decode
#: The nesting of a flat line (a request object, its params, an object or array in them).
FLAT_DEPTH = 3
#: Where a flat ``q_submit`` line names its method (:func:`_flat_message`): the head of
#: a request as the clients write it (``{"jsonrpc":"2.0","id":N,"method":"q_submit"``).
FLAT_HEAD_BYTES = 80

#: A ``q_submit`` request's members and params (those of the method table), its graph
#: left as its bytes (:func:`_submit_message`): of any JSON value (after the line's scan),
#: or each a scalar (a flat submit, no scan: :func:`_flat_message`).
_SubmitParams: Any = _submit_struct(
    "_SubmitParams",
    [(p.name, msgspec.Raw if p.name == "graph" else Any) for p in METHODS["q_submit"].params],
)
_Submit = _submit_struct(
    "_Submit", [("jsonrpc", Any), ("id", Any), ("method", Any), ("params", _SubmitParams)]
)
_FlatSubmitParams: Any = _submit_struct(
    "_FlatSubmitParams",
    [(p.name, msgspec.Raw if p.name == "graph" else _FLAT) for p in METHODS["q_submit"].params],
)
_FlatSubmit = _submit_struct(
    "_FlatSubmit",
    [("jsonrpc", _SCALAR), ("id", _SCALAR), ("method", _SCALAR), ("params", _FlatSubmitParams)],
)
_decode_submit = msgspec.json.Decoder(_Submit).decode
_decode_flat_submit = msgspec.json.Decoder(_FlatSubmit).decode
_asdict = msgspec.structs.asdict
_UNSET = msgspec.UNSET
#: The graph texts of the graphs submitted last (:func:`_submit_message`), by the graph's
#: bytes as sent: at most :data:`GRAPHS_KEPT`, each of at most :data:`GRAPH_KEPT_BYTES`;
#: with each its count of brackets and braces (the first test of its nesting).
_GRAPHS: dict[bytes, tuple[GraphText, int]] = {}
GRAPHS_KEPT = 64
GRAPH_KEPT_BYTES = 1 << 14
#: The bytes of the graph submitted last and what :data:`_GRAPHS` keeps for them: the
#: next submit of the same program finds them without hashing its graph's bytes.
_LAST_GRAPH: tuple[bytes, tuple[GraphText, int]] = (b"", (GraphText("{}", 0), 0))


def _flat_message(line: bytes, max_depth: int | None) -> dict[str, Any] | None:
    """A short line decoded as :func:`_decode` decodes it, without its scans.

    That is done when it is flat (:data:`_decode_flat`), or a ``q_submit`` (named in its
    first :data:`FLAT_HEAD_BYTES`) flat but for its graph (:func:`_submit_message`). None
    where the general decoder must read it. A flat value is the one :func:`json.loads`
    gives and holds no number out of range. So the general decoder would give it too,
    with no search of its params. Its nesting is at most :data:`FLAT_DEPTH` (the
    caller's limit is that or more), a submit's that or its graph's and two.

    >>> _flat_message(b'{"jsonrpc":"2.0","id":1,"method":"q_wait","params":{"job_id":"j"}}', 64)
    {'jsonrpc': '2.0', 'id': 1, 'method': 'q_wait', 'params': {'job_id': 'j'}}
    >>> _flat_message(b'{"id":18446744073709551615,"method":"q_wait"}', 64) is None
    True
    """
    if line.find(b'"q_submit"', 0, FLAT_HEAD_BYTES) >= 0:
        return _submit_message(line, _decode_flat_submit, max_depth)
    try:
        message: dict[str, Any] = _decode_flat(line)
    except (msgspec.DecodeError, ValueError):  # (ValueError: a line not UTF-8)
        return None
    if message.get("method") == "q_submit":  # named further on: its graph is read below
        return None
    return message


def _submit_message(
    line: bytes, decode: Callable[[bytes], Any], max_depth: int | None = None
) -> dict[str, Any] | None:
    """A ``q_submit`` line decoded as :func:`_decode` decodes it, its graph as the
    :class:`GraphText` :func:`_graph_text` makes of it.

    None where the general decoder must say: a member or param it does not know, params
    as an array, no graph, or a graph that does not decode or whose text
    :func:`_graph_text` leaves to the kernel.

    ``decode`` is :data:`_decode_submit` for a line the general decoder scanned, whose
    members may be any JSON. It is :data:`_decode_flat_submit` for one not scanned, whose
    members and params but the graph must be flat (:func:`_flat_message`). Then its
    graph is scanned here (a number that may be out of range: None), and its nesting is
    tested within ``max_depth`` with the two objects around it (None: any).

    The graph's bytes are not decoded when they are the bytes of a graph submitted
    lately (a sweep's programs, the next job of a program). Its text is a function of
    those bytes alone, so it is kept by them with their count of brackets (the same
    text, the same object; it is immutable). Those bytes decoded before, so they hold
    valid UTF-8 JSON with no number out of range, as the rest of the line does once it
    decodes."""
    try:
        message: Any = decode(line)
    except (msgspec.DecodeError, ValueError):  # (ValidationError is a DecodeError)
        return None
    params: Any = message.params
    if message.method != "q_submit" or params is _UNSET:
        return None
    raw = params.graph
    if raw is _UNSET:
        return None
    global _LAST_GRAPH  # one tuple, swapped whole: a thread decoding reads it whole
    data = bytes(raw)
    last_data, kept = _LAST_GRAPH
    if data != last_data:  # (the graph of the submit before is compared, not hashed)
        found = _GRAPHS.get(data)
        if found is None:
            found = _graph_kept(data)
            if found is None:
                return None
        kept = found
        _LAST_GRAPH = (data, kept)
    graph, brackets = kept
    if (  # the graph is a member of the params, in the request object
        max_depth is not None and brackets + 2 > max_depth and nesting_exceeds(data, max_depth - 2)
    ):
        return None  # the general decoder refuses the line
    given = _asdict(params)
    if _UNSET in given.values():
        given = {name: value for name, value in given.items() if value is not _UNSET}
    given["graph"] = graph
    jsonrpc, request_id = message.jsonrpc, message.id
    out = {"jsonrpc": jsonrpc, "id": request_id, "method": "q_submit", "params": given}
    if jsonrpc is _UNSET or request_id is _UNSET:
        out = {name: value for name, value in out.items() if value is not _UNSET}
    return out


def _graph_kept(data: bytes) -> tuple[GraphText, int] | None:
    """The graph text of a submitted graph's bytes and their count of brackets and
    braces, kept by those bytes when they are short; None where the general decoder
    must read them (a number that may be out of range, JSON that msgspec refuses, a
    text that the kernel writes: :func:`_graph_text_of`)."""
    scanned = data.translate(_SCAN)
    if scanned.find(_TWENTY_DIGITS) >= 0:
        return None
    try:
        value = _fast_decode(data)
    except (msgspec.DecodeError, ValueError):
        return None
    graph = _graph_text_of(value)
    if graph is None:
        return None
    kept = (graph, scanned.count(b"["))
    if len(data) <= GRAPH_KEPT_BYTES:
        if len(_GRAPHS) >= GRAPHS_KEPT:
            with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                del _GRAPHS[next(iter(_GRAPHS))]  # the oldest (another thread's race)
        _GRAPHS[data] = kept
    return kept


#: Every digit made a ``0`` and ``E`` an ``e``: a digit before an ``e`` or ``E`` is then the
#: substring ``0e`` (two substring searches cost far less than a regular expression's
#: scan, ``[0-9][eE]|0\.0000``: ``docs/qsyscall.md``).
_EXPONENTS = bytes.maketrans(b"0123456789E", b"0000000000e")


def _may_differ(data: bytes) -> bool:
    """Whether msgspec's text ``data`` may write a float otherwise than :mod:`json` does:
    it holds a digit before an ``e`` or ``E``, or ``0.0000`` (see :func:`_graph_text`).

    >>> _may_differ(b'[1e-07, 2]'), _may_differ(b'[0.00001]'), _may_differ(b'{"e": 0.5}')
    (True, True, False)
    """
    return data.find(b"0.0000") >= 0 or data.translate(_EXPONENTS).find(b"0e") >= 0


def _out_of_range(value: Any) -> bool:
    """Whether a decoded JSON value holds a number out of range (searched without recursion)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, int):
            if not isinstance(item, bool) and not -INT_LIMIT < item < INT_LIMIT:
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def check_param_numbers(spec: MethodSpec, params: Any) -> None:
    """Raise InvalidArgument (1012) naming the first param that holds a number out of range."""
    named: list[tuple[str, Any]] = []
    if isinstance(params, list):
        names = [p.name for p in spec.params]
        named = [(names[i] if i < len(names) else f"#{i}", v) for i, v in enumerate(params)]
    elif isinstance(params, dict):
        named = list(params.items())
    for name, value in named:
        if _out_of_range(value):
            raise InvalidArgument(
                f"{spec.name}: param {name!r} holds a number out of range (numbers must be "
                f"finite, integers below 2**64 in magnitude)",
                param=name,
            )


@dataclass(slots=True)
class Caller:
    """What the core learns of one connection while it answers its requests.

    Attributes:
        authenticated: a request of this connection has succeeded. Every method but
            ``q_negotiate_caps`` needs a valid session, and that one a valid key, so a
            success proves that the connection holds one or the other.
        watches: the connection's watches (:class:`qmk.abi.watch.ConnectionWatches`),
            which answer the socket-only methods (:data:`~qmk.abi.methods.SOCKET_METHODS`);
            None: a wire that has none.
        visitor: the connection at the door (:class:`qmk.abi.door.Visitor`): its calls
            pass the core's door as it; signed in when one succeeds.
    """

    authenticated: bool = False
    watches: Any = None
    visitor: Any = None


class _Large(Exception):
    """A value kept encoded is too big to copy into one buffer (:func:`_fast_parts`)."""


#: The largest kept-encoded value (``__json_bytes__``) the fast writer copies into its
#: output; a bigger one (a large result) stays a piece of its own, never copied.
SPLICE_COPY_BYTES = 1 << 16


def _raw(item: Any) -> msgspec.Raw:
    method = getattr(type(item), "__json_bytes__", None)
    if method is None:
        raise TypeError(f"Object of type {type(item).__name__} is not JSON serializable")
    data = method(item)
    if len(data) > SPLICE_COPY_BYTES:
        raise _Large
    return msgspec.Raw(data)


_fast_write = msgspec.json.Encoder(enc_hook=_raw).encode


def _fast_parts(value: Any) -> bytes | None:
    """``value`` written by msgspec, which is much faster than :mod:`json` with a
    ``default``. None when :mod:`qmk.abi.spliced` must write it: it holds a kept value
    bigger than :data:`SPLICE_COPY_BYTES`, or one msgspec cannot write (which :mod:`json` then
    refuses as it always did). The text is :mod:`json`'s but for a float that needs an
    exponent (``1e-5``, not ``1e-05``). A NaN or infinity differs too: msgspec writes
    ``null`` where :mod:`json` refused the value."""
    try:
        return _fast_write(value)
    except (_Large, TypeError, ValueError, OverflowError):
        return None


def dumps(value: Any, *, default: Callable[[Any], Any] | None = None) -> str:
    """``value`` as compact JSON text. An object with a ``__json_bytes__()`` method (JSON
    kept encoded as UTF-8, such as a job's stored result) is written as those bytes,
    spliced in unparsed. ``default`` converts any other object json cannot write (as
    ``json.dumps``'s).

    >>> class Kept:
    ...     def __json_bytes__(self):
    ...         return b'{"counts":{"00":2}}'
    >>> dumps({"job_id": "j", "result": Kept()})
    '{"job_id":"j","result":{"counts":{"00":2}}}'
    """
    fast = None if default is not None else _fast_parts(value)
    if fast is not None:
        return fast.decode("utf-8")
    from qmk.abi.spliced import marked, spliced

    text, kept, marker = marked(value, default)
    if not kept:
        return text
    return b"".join(spliced(text, kept, marker)).decode("utf-8")


def encode(message: Any) -> bytes:
    """One message as a compact UTF-8 JSON line ending in ``\\n`` (:func:`dumps`).

    A value kept encoded (``__json_bytes__``) costs one copy of its bytes. So a big
    result is never parsed or encoded again to be sent."""
    fast = _fast_parts(message)
    if fast is not None:
        return fast + b"\n"
    from qmk.abi.spliced import marked, spliced

    text, kept, marker = marked(message, None)
    if not kept:
        return text.encode("utf-8") + b"\n"
    return b"".join([*spliced(text, kept, marker), b"\n"])


def encode_parts(message: Any) -> list[bytes]:
    """:func:`encode`'s line as its pieces, the last one ``b"\\n"``. A value kept encoded
    (``__json_bytes__``) is one of them, the kept bytes themselves. So a writer can send
    a big result in bounded chunks without a copy of it.

    >>> encode_parts({"a": 1})
    [b'{"a":1}', b'\\n']
    """
    return [*dumps_parts(message), b"\n"]


def dumps_parts(value: Any, *, default: Callable[[Any], Any] | None = None) -> list[bytes]:
    """:func:`dumps` as UTF-8 pieces. A value kept encoded (``__json_bytes__``) of more
    than :data:`SPLICE_COPY_BYTES` is one of them, its own bytes (never copied). A
    smaller one is copied into the text around it.

    >>> class Kept:
    ...     def __init__(self, size):
    ...         self.size = size
    ...     def __json_bytes__(self):
    ...         return b"[" + b" " * self.size + b"1]"
    >>> dumps_parts({"a": Kept(0)})
    [b'{"a":[1]}']
    >>> [len(part) for part in dumps_parts({"a": Kept(SPLICE_COPY_BYTES)})]
    [5, 65539, 1]
    """
    fast = None if default is not None else _fast_parts(value)
    if fast is not None:
        return [fast]
    from qmk.abi.spliced import marked, spliced

    text, kept, marker = marked(value, default)
    if not kept:
        return [text.encode("utf-8")]
    return spliced(text, kept, marker)


def _valid_id(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int):
        return not isinstance(value, bool) and -INT_LIMIT < value < INT_LIMIT
    return value is None or isinstance(value, str)


def error_object(exc: BaseException) -> dict[str, Any]:
    """The JSON-RPC ``error`` object for an exception raised while handling a request.

    SyscallError and RpcError send their own ``to_rpc()``. Any other QMKError (a
    deliberate one-line error) is sent with code 1000 and its own name and code.
    Anything else is an internal error with a generic message.
    """
    if isinstance(exc, (SyscallError, RpcError)):
        return exc.to_rpc()
    if isinstance(exc, QMKError):
        return {
            "code": SyscallError.rpc_code,
            "message": str(exc),
            "data": {"name": exc.name, "code": exc.code, **exc.details},
        }
    incident = secrets.token_hex(6)
    LOG.error("internal error (incident %s)", incident, exc_info=exc)
    return InternalError(
        f"the server failed while handling the request (incident {incident})",
        incident=incident,
    ).to_rpc()


def _reply(request_id: Any, *, result: Any = _MISSING, error: Any = _MISSING) -> dict[str, Any]:
    if error is not _MISSING:
        return {"jsonrpc": "2.0", "id": request_id, "error": error}
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


class RpcCore:
    """Answers JSON-RPC 2.0 lines by calling the target's coroutine methods.

    Args:
        target: an object with one ``async def NAME(**params)`` per method in
            ``methods`` (the kernel); keyword arguments are named as on the wire.
        methods: the method table (default :data:`qmk.abi.methods.METHODS`).
        max_batch: the most requests one batch may hold.
        max_depth: the deepest nesting of arrays and objects a line may have.
        door: the door every call passes (:class:`qmk.abi.door.Door`, on ``target``),
            as the caller's visitor; None: ``target`` is called straight (a core of
            tests, a fuzzer's).
    """

    def __init__(
        self,
        target: object,
        *,
        methods: Mapping[str, MethodSpec] = METHODS,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_depth: int = DEFAULT_MAX_DEPTH,
        door: Door | None = None,
    ) -> None:
        self.target = target
        self.methods = methods
        self.max_batch = max_batch
        self.max_depth = max_depth
        self.door = door
        self._local: Any = None  # the visitor of calls that come with no caller

    async def handle_line(self, line: bytes, caller: Caller | None = None) -> bytes | None:
        """The reply line to one request line, or None when no reply is due.

        Args:
            line: one line as read (its newline may be left on).
            caller: the connection's state, marked authenticated when a request succeeds.
        """
        parts = await self.handle_line_parts(line, caller)
        return None if parts is None else b"".join(parts)

    async def handle_line_parts(
        self, line: bytes, caller: Caller | None = None
    ) -> list[bytes] | None:
        """:meth:`handle_line`'s reply as its pieces (:func:`encode_parts`)."""
        if not line or line.isspace():
            return None
        try:
            if len(line) < THREAD_BYTES:  # decoded here, on the loop: no coroutine of its own
                message, suspect = _decode(line, self.max_depth)
            elif self.door is not None:
                return await self._big_line_parts(line, caller, self.door)
            else:
                message, suspect = await _decode_soon(line, self.max_depth)
        except RpcError as exc:
            return encode_parts(_reply(None, error=exc.to_rpc()))
        if type(message) is dict:  # one request (the most common line): as _message_parts
            reply = await self.handle_request(message, caller, check_numbers=suspect)
            return None if reply is None else _encode_reply(reply)
        return await self._message_parts(message, caller, suspect)

    async def _big_line_parts(
        self, line: bytes, caller: Caller | None, door: Door
    ) -> list[bytes] | None:
        """A line of :data:`THREAD_BYTES` or more, weighed by the door before it is
        decoded (:meth:`~qmk.abi.door.Door.decode`).

        It goes on the CPU budget of the session its first bytes name
        (:func:`~qmk.abi.big_lines.scan_head`).
        While that budget is spent it is refused undecoded, under its id (null when it
        cannot be read so), with ``QS1006`` and ``retry_after_s``. Otherwise it is decoded
        in a thread, in pieces, and its CPU is charged to the tenant once the request is
        answered (the tenant of the session its decoded params name, where its first bytes
        name none).
        """
        from qmk.abi import big_lines  # a big line's head and graph: at the first big line

        def decode() -> tuple[Any, bool]:
            return big_lines.compacted(_decode(line, self.max_depth, pieces=True))

        request_id, _method, session_id = big_lines.scan_head(line)
        try:
            (message, suspect), charge = await door.decode(
                session_id, len(line), decode, big_lines.named_session
            )
        except QMKError as exc:  # the budget's refusal
            return encode_parts(
                _reply(None if request_id is ... else request_id, error=error_object(exc))
            )
        except RpcError as exc:
            return encode_parts(_reply(None, error=exc.to_rpc()))
        try:
            return await self._message_parts(message, caller, suspect)
        finally:
            charge()
            # answered: the program the line decoded to, freed off the loop (a QVM graph
            # went on as its text; a refused device job of a million positions had not)
            params = message.get("params") if type(message) is dict else None
            if type(params) is dict and type(params.get("graph")) is dict:
                await asyncio.to_thread(free_value_in_pieces, params["graph"])

    async def _message_parts(
        self, message: Any, caller: Caller | None, check_numbers: bool
    ) -> list[bytes] | None:
        if isinstance(message, list):
            if not message:
                return encode_parts(_reply(None, error=InvalidRequest("empty batch").to_rpc()))
            if len(message) > self.max_batch:
                error = InvalidRequest(
                    f"a batch holds at most {self.max_batch} requests, got {len(message)}"
                )
                return encode_parts(_reply(None, error=error.to_rpc()))
            async with aio.TaskGroup() as group:
                tasks = [
                    group.create_task(
                        self.handle_request(item, caller, check_numbers=check_numbers)
                    )
                    for item in message
                ]
            replies = [_encode_reply(reply) for task in tasks if (reply := task.result())]
            if not replies:
                return None
            joined = [b"["]
            for index, pieces in enumerate(replies):
                if index:
                    joined.append(b",")
                joined += pieces[:-1]  # each reply's last piece ends with its newline
                if len(pieces[-1]) > 1:
                    joined.append(pieces[-1][:-1])
            return [*joined, b"]\n"]
        reply = await self.handle_request(message, caller, check_numbers=check_numbers)
        return None if reply is None else _encode_reply(reply)

    async def handle_request(
        self, request: Any, caller: Caller | None = None, *, check_numbers: bool = True
    ) -> dict[str, Any] | None:
        """The reply object to one request, or None for a notification."""
        if not isinstance(request, dict):
            return _reply(None, error=InvalidRequest("a request must be a JSON object").to_rpc())
        notification = "id" not in request
        request_id = request.get("id")
        if not (  # the common ids at once; any other as _valid_id says
            (type(request_id) is int and -INT_LIMIT < request_id < INT_LIMIT)
            or type(request_id) is str
            or _valid_id(request_id)
        ):
            error = InvalidRequest("id must be a string, a finite number or null")
            return _reply(None, error=error.to_rpc())
        try:
            spec, params = self._parse(request, check_numbers, caller)
        except RpcError as exc:
            if notification and not isinstance(exc, InvalidRequest):
                return None
            return _reply(request_id, error=exc.to_rpc())
        except InvalidArgument as exc:
            return None if notification else _reply(request_id, error=exc.to_rpc())
        try:
            if spec.name in SOCKET_METHODS:
                assert caller is not None and caller.watches is not None  # _parse saw to it
                result = await caller.watches.call(spec.name, params)
            elif self.door is None:  # a core of tests: the target called straight
                result = await getattr(self.target, spec.name)(**params)
            else:  # every call passes the door, as the caller's visitor
                visitor = caller.visitor if caller is not None else None
                if visitor is None:
                    visitor = self._local_visitor()
                result = await self.door.call(visitor, spec.name, params)
        except Exception as exc:
            if notification:
                if not isinstance(exc, QMKError):
                    error_object(exc)  # logs it
                return None
            return _reply(request_id, error=error_object(exc))
        if caller is not None:
            caller.authenticated = True
            visitor = caller.visitor
            if visitor is not None and not visitor.signed_in:
                visitor.sign_in()
        return None if notification else {"jsonrpc": "2.0", "id": request_id, "result": result}

    def _parse(
        self, request: dict[str, Any], check_numbers: bool, caller: Caller | None = None
    ) -> tuple[MethodSpec, dict[str, Any]]:
        if request.get("jsonrpc") != "2.0":
            raise InvalidRequest('the request must carry "jsonrpc": "2.0"')
        method = request.get("method", _MISSING)
        if not isinstance(method, str):
            raise InvalidRequest("method must be a string")
        params = request.get("params")
        if "params" in request and not isinstance(params, (dict, list)):
            raise InvalidRequest("params must be an object or an array")
        spec = self.methods.get(method)
        if spec is None or getattr(self.target, method, None) is None:
            spec = SOCKET_METHODS.get(method)
            if spec is None:
                raise unknown(method)
            if caller is None or caller.watches is None:
                raise MethodNotFound(
                    f"{method} is answered on a JSON-RPC socket connection only", method=method
                )
        if check_numbers:  # before the types: 10**400 decoded as a real is out of range
            check_param_numbers(spec, params)
        return spec, bind_params(spec, params)

    def _local_visitor(self) -> Any:
        """The visitor of calls that come with no caller (made once)."""
        if self._local is None:
            assert self.door is not None
            self._local = self.door.visitor("jsonrpc", "local")
        return self._local


def _encode_reply(reply: dict[str, Any]) -> list[bytes]:
    """A reply as a line, in pieces whose last ends with its newline. It is one piece when
    msgspec writes it (:func:`_fast_parts`). A result or error that is not JSON becomes
    an internal error.

    It never raises: a reply that cannot be written at all becomes an internal error
    with ``id`` null, so one bad reply never takes a batch down with it.
    """
    try:
        return [_fast_write(reply) + b"\n"]
    except (_Large, TypeError, ValueError, OverflowError):
        pass  # as encode_parts does: json writes it, or says why not
    try:
        return encode_parts(reply)
    except (TypeError, ValueError) as exc:
        request_id = reply.get("id")
        try:
            if "error" in reply:
                slim = {key: reply["error"].get(key) for key in ("code", "message")}
                return encode_parts(_reply(request_id, error=slim))
            return encode_parts(_reply(request_id, error=error_object(exc)))
        except (TypeError, ValueError, AttributeError):
            error = InternalError("the server could not encode a reply")
            return encode_parts(_reply(None, error=error.to_rpc()))
