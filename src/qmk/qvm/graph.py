"""QVM graphs as values: :class:`Graph`, :class:`Node`, :class:`Guard`, and their JSON.

A graph is ``{"version", "program": {"nodes": [...]}, "resources": {"vqs",
"chs", "events"}, "caps"}`` with optional ``description`` and ``metadata``; a
node is ``{id, op, args, vqs, chs, inputs, produces, caps, guard}`` with
optional ``metadata``. Graphs in the original QMK v0.1 shape load unchanged.

Reading checks the *shape* only (types, keys, sizes) and raises
:class:`~qmk.qvm.errors.FormatError` with a stable code and the JSON path of the
problem. Whether the program makes sense (known ops, lifetimes, events,
capabilities) is the verifier's job (:mod:`qmk.qvm.verify`), which reports every
finding at once.

Its file form (read under the byte limit, written as canonical text) is
:mod:`qmk.qvm.graph_file`.

>>> g = loads('{"version": "0.1", "program": {"nodes": [{"id": "a", "op": "ALLOC_LQ",'
...           ' "vqs": ["q"]}]}, "resources": {"vqs": ["q"], "events": []}}')
>>> g.nodes[0].vqs
('q',)
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import operator
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeGuard

import msgspec

from qmk.qvm.errors import FormatError
from qmk.qvm.limits import Limits
from qmk.qvm.ops import canonical_op

#: Graph versions this QMK reads. 0.1 is the original QMK spec; 0.2 adds the
#: conjunction guard form and the ops SDG, TDG, CCX and CCZ; 0.3 adds ``REPEAT`` rows
#: (bounded repetition kept folded) and blocks (``program.blocks``, run by ``CALL``
#: rows). All load the same way.
VERSIONS: tuple[str, ...] = ("0.1", "0.2", "0.3")
#: The version written by QMK's own tools for a flat program.
CURRENT_VERSION = "0.2"
#: The version a program with ``REPEAT`` rows or blocks is written in (the first that has them).
FOLDED_VERSION = "0.3"
#: The op of a row that repeats its ``body`` ``args.count`` times: a structure of the
#: program, not an operation (it is not in :data:`qmk.qvm.ops.OPS`).
REPEAT = "REPEAT"
#: The op of a block, a row of ``program.blocks``: its ``id`` is its name, its ``vqs`` its
#: formal qubits, its ``body`` the rows it runs on them; stored once, run by CALL rows.
BLOCK = "BLOCK"
#: The op of a row that runs block ``args.block`` on its ``vqs`` (the block's formal
#: qubits, in order). Like REPEAT, a structure of the program, not an operation.
CALL = "CALL"

_GRAPH_KEYS = ("version", "description", "program", "resources", "caps", "metadata")
_NODE_KEYS = (
    "id",
    "op",
    "args",
    "vqs",
    "chs",
    "inputs",
    "produces",
    "caps",
    "guard",
    "metadata",
    "body",
)
_HANDLE_LISTS = ("vqs", "chs", "inputs", "produces", "caps")
_RESOURCE_KEYS = ("vqs", "chs", "events")
_GUARD_KEYS = ("event", "equals")
_PROGRAM_KEYS = ("nodes", "blocks")
_ALLOWED: dict[tuple[str, ...], frozenset[str]] = {
    keys: frozenset(keys)
    for keys in (_GRAPH_KEYS, _NODE_KEYS, _RESOURCE_KEYS, _GUARD_KEYS, _PROGRAM_KEYS, ("all",))
}


class GuardTerm(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One condition of a guard: the node runs only if ``event`` measured ``equals``.

    Not tracked by the cyclic garbage collector (``gc=False``): it holds a string and
    an int, so it is in no reference cycle.
    """

    event: str
    equals: int

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event, "equals": self.equals}


class Guard(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A node's run-time condition: all terms must hold.

    JSON forms: ``{"event": E, "equals": 0|1}`` (one term) or
    ``{"all": [{"event": E, "equals": 0|1}, ...]}`` (a conjunction, kept in that
    form even with one term so the JSON round-trips exactly).

    Not tracked by the cyclic garbage collector (``gc=False``): it holds a tuple of
    :class:`GuardTerm` values (strings and ints) and a bool, made before it, so it is in
    no reference cycle. A kept program guards up to every node: tracked, each guard, its
    term and the tuple of them were three objects per node for every full collection
    to walk.
    """

    terms: tuple[GuardTerm, ...]
    conjunction: bool = False

    def __post_init__(self) -> None:
        if not self.conjunction and len(self.terms) != 1:
            raise ValueError("a simple guard has exactly one term; use conjunction=True")

    @property
    def events(self) -> tuple[str, ...]:
        """The events the guard reads, in order."""
        return tuple(term.event for term in self.terms)

    def to_json(self) -> dict[str, Any]:
        if self.conjunction:
            return {"all": [term.to_json() for term in self.terms]}
        return self.terms[0].to_json()


class Node(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """One operation of a program.

    ``args`` and ``metadata`` hold plain JSON values; treat them as read-only. msgspec
    writes a node as :meth:`to_json` does (empty fields left out, ``omit_defaults``),
    but for its guard, whose JSON has a form of its own: a program's digest text
    (:func:`~qmk.qvm.sorted_text.canonical_graph_text`) writes a big program's unguarded
    nodes so, not a dict a node.

    A node is not tracked by the cyclic garbage collector (``gc=False``): it holds
    strings, tuples of strings, plain JSON and a guard, never anything that could lead
    back to it, so it is in no cycle. A verified 100,000-node program kept by the kernel
    is then 100,000 objects fewer for every full collection to walk, while the
    interpreter is held and other tenants' requests wait.
    """

    id: str
    op: str
    args: Mapping[str, Any] = msgspec.field(default_factory=dict)
    vqs: tuple[str, ...] = ()
    chs: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    produces: tuple[str, ...] = ()
    caps: tuple[str, ...] = ()
    guard: Guard | None = None
    metadata: Mapping[str, Any] | None = None
    #: The rows a ``REPEAT`` row repeats, or a ``BLOCK`` runs (empty for every other node).
    body: tuple[Node, ...] = ()

    @property
    def guard_events(self) -> tuple[str, ...]:
        """The events the node's guard reads (empty without a guard)."""
        return self.guard.events if self.guard is not None else ()

    def to_json(self, *, sort: bool = True) -> dict[str, Any]:
        """The node as canonical JSON: fixed key order, empty fields left out; ``sort``
        False leaves ``args`` and ``metadata`` in their own key order (for a writer that
        sorts every object's keys itself: a program's digest)."""
        out: dict[str, Any] = {"id": self.id, "op": self.op}
        if self.args:
            out["args"] = _sorted_json(self.args) if sort else _plain_json(self.args)
        # _HANDLE_LISTS, written out: a program's digest turns every node to JSON
        if self.vqs:
            out["vqs"] = list(self.vqs)
        if self.chs:
            out["chs"] = list(self.chs)
        if self.inputs:
            out["inputs"] = list(self.inputs)
        if self.produces:
            out["produces"] = list(self.produces)
        if self.caps:
            out["caps"] = list(self.caps)
        if self.guard is not None:
            out["guard"] = self.guard.to_json()
        if self.metadata is not None:
            out["metadata"] = _sorted_json(self.metadata) if sort else _plain_json(self.metadata)
        if self.body:
            out["body"] = [node.to_json(sort=sort) for node in self.body]
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Resources:
    """The handles a graph declares. ``events`` order is the order results list events in."""

    vqs: tuple[str, ...] = ()
    chs: tuple[str, ...] = ()
    events: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"vqs": list(self.vqs), "chs": list(self.chs), "events": list(self.events)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Graph:
    """A QVM program: nodes in list order, declared resources and requested capabilities,
    and the blocks its CALL rows run (``BLOCK`` nodes, each stored once)."""

    version: str = CURRENT_VERSION
    nodes: tuple[Node, ...] = ()
    resources: Resources = field(default_factory=Resources)
    caps: tuple[str, ...] = ()
    description: str | None = None
    metadata: Mapping[str, Any] | None = None
    blocks: tuple[Node, ...] = ()

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def to_json(self, *, sort: bool = True) -> dict[str, Any]:
        """The graph as canonical JSON data (:func:`~qmk.qvm.graph_file.dumps` writes its
        text); ``sort`` as
        :meth:`Node.to_json`'s."""
        out: dict[str, Any] = {"version": self.version}
        if self.description is not None:
            out["description"] = self.description
        with gc_paused():  # a dict or two a node, no cycle: the collector would rescan them
            out["program"] = {"nodes": [node.to_json(sort=sort) for node in self.nodes]}
            if self.blocks:
                out["program"]["blocks"] = [block.to_json(sort=sort) for block in self.blocks]
        out["resources"] = self.resources.to_json()
        out["caps"] = list(self.caps)
        if self.metadata is not None:
            out["metadata"] = _sorted_json(self.metadata)
        return out


_OP = operator.attrgetter("op")


def node_at(nodes: Sequence[Node], index: int) -> str:
    """Node ``index`` of ``nodes`` as a message names it (``node #3 'f'``)."""
    return f"node #{index} {nodes[index].id!r}"


def duplicates(values: tuple[str, ...]) -> list[str]:
    """Each of ``values`` that came before, in order: the names given twice."""
    seen: set[str] = set()
    return [v for v in values if v in seen or seen.add(v)]  # type: ignore[func-returns-value]


def is_folded(graph: Graph) -> bool:
    """Whether ``graph`` has a REPEAT or CALL row, or blocks. A scan in C: every check of
    a flat program asks."""
    if graph.blocks:
        return True
    ops = set(map(_OP, graph.nodes))
    return REPEAT in ops or CALL in ops


#: JSON values that hold no other: :func:`_sorted_json` returns them as they are.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _sorted_json(value: Any) -> Any:
    """A JSON value with every object's keys sorted (object key order carries no meaning)."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict or isinstance(value, Mapping):
        return {
            key: item if type(item := value[key]) in _SCALARS else _sorted_json(item)
            for key in sorted(value)
        }
    if isinstance(value, list | tuple):
        return [item if type(item) in _SCALARS else _sorted_json(item) for item in value]
    return value


def _plain_json(value: Any) -> Any:
    """``value`` as it is where it is a dict of numbers and strings (a node's usual
    ``args`` or ``metadata``), else :func:`_sorted_json` of it: plain dicts and lists,
    as a JSON writer takes them."""
    if type(value) is dict and all(type(item) in _SCALARS for item in value.values()):
        return value
    return _sorted_json(value)


# --------------------------------------------------------------------------- reading


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for a bulk pass that builds no cycles.

    Reading or verifying a large graph allocates hundreds of thousands of small
    tuples; each allocation burst triggers collections that rescan the whole
    graph, which costs a third of the time. Reference counting still frees
    everything, and the collector's previous state is restored afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            promote_young()
            gc.enable()


def promote_young() -> None:
    """Move every object the collector tracks to its oldest generation without walking
    any (a freeze and an unfreeze: two list splices).

    Call it as a pause of the collector ends. What the paused pass built (a decoded
    request, a graph: trees, no cycle to find) would otherwise be walked whole by the
    next young collection, the interpreter held throughout (``docs/door.md`` has the
    figures). Reference counting frees them as ever."""
    gc.freeze()
    gc.unfreeze()


def _object(
    value: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...]
) -> dict[str, Any]:
    if type(value) is not dict:
        raise FormatError.wrong_type(path, "an object", value)
    if not value.keys() <= _ALLOWED[allowed]:
        extra = next(key for key in value if key not in allowed)
        raise FormatError.of(
            "unknown-key",
            f"{path}: unknown key {extra!r}; allowed: {', '.join(allowed)}",
            path=path,
            key=extra,
        )
    for key in required:
        if key not in value:
            raise FormatError.of("missing-key", f"{path}: missing key {key!r}", path=path, key=key)
    return value


def _strings(
    value: Any, path: str, kept: dict[tuple[str, ...], tuple[str, ...]] | None = None
) -> tuple[str, ...]:
    """A JSON array of strings as a tuple; with ``kept``, the equal tuple read before, if
    any. One graph's reading shares them: a 100,000-node program on a few qubits holds a
    few ``vqs`` tuples, not 100,000 for the cyclic collector to walk."""
    if type(value) is not list:
        raise FormatError.wrong_type(path, "an array of strings", value)
    result = tuple(value)
    if not all(type(item) is str for item in result):
        index = next(i for i, item in enumerate(result) if type(item) is not str)
        raise FormatError.wrong_type(f"{path}[{index}]", "a string", result[index])
    return result if kept is None else kept.setdefault(result, result)


def nests_deeper_than(value: Any, max_depth: int | None) -> bool:
    """True when a JSON value nests objects/arrays deeper than ``max_depth`` (no recursion).

    >>> nests_deeper_than({"a": [1]}, 2), nests_deeper_than({"a": [[1]]}, 2)
    (False, True)
    """
    if max_depth is None or type(value) not in (dict, list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return True
        children = item.values() if type(item) is dict else item
        stack.extend((child, depth + 1) for child in children if type(child) in (dict, list))
    return False


def _check_depth(value: Any, path: str, max_depth: int | None) -> None:
    """Refuse args/metadata nested deeper than ``max_depth``."""
    if nests_deeper_than(value, max_depth):
        raise FormatError.of(
            "too-deep",
            f"{path}: values nest deeper than {max_depth} levels",
            path=path,
            limit=max_depth,
        )


def _guard(value: Any, path: str) -> Guard:
    if type(value) is dict and "all" in value:
        _object(value, path, ("all",), ("all",))
        terms = value["all"]
        if type(terms) is not list or not terms:
            raise FormatError.wrong_type(f"{path}.all", "a non-empty array of guard terms", terms)
        return Guard(
            terms=tuple(_guard_term(t, f"{path}.all[{i}]") for i, t in enumerate(terms)),
            conjunction=True,
        )
    return Guard(terms=(_guard_term(value, path),))


def _guard_term(value: Any, path: str) -> GuardTerm:
    _object(value, path, _GUARD_KEYS, _GUARD_KEYS)
    event, equals = value["event"], value["equals"]
    if type(event) is not str:
        raise FormatError.wrong_type(f"{path}.event", "a string", event)
    # JSON has one number type: 1 and 1.0 are the same value (and JSON Schema agrees);
    # true is not a number.
    if type(equals) is float and equals.is_integer():
        equals = int(equals)
    if type(equals) is not int:
        raise FormatError.wrong_type(f"{path}.equals", "0 or 1", equals)
    if equals not in (0, 1):
        raise FormatError.of(
            "bad-value", f"{path}.equals: a guard compares with 0 or 1, got {equals}", path=path
        )
    return GuardTerm(event=event, equals=equals)


def _node(
    value: Any,
    path: str,
    limits: Limits,
    kept: dict[tuple[str, ...], tuple[str, ...]],
    depth: int = 0,
) -> Node:
    _object(value, path, _NODE_KEYS, ("id", "op"))
    node_id, op = value["id"], value["op"]
    if type(node_id) is not str:
        raise FormatError.wrong_type(f"{path}.id", "a string", node_id)
    if type(op) is not str:
        raise FormatError.wrong_type(f"{path}.op", "a string", op)
    lists: dict[str, tuple[str, ...]] = {}
    for key in _HANDLE_LISTS:
        if key in value and value[key] is not None:
            lists[key] = _strings(value[key], f"{path}.{key}", kept)
    args = value.get("args")
    if args is None:
        args = {}
    elif type(args) is not dict:
        raise FormatError.wrong_type(f"{path}.args", "an object", args)
    elif args:
        _check_depth(args, f"{path}.args", limits.max_depth)
    metadata = value.get("metadata")
    if metadata is not None:
        if type(metadata) is not dict:
            raise FormatError.wrong_type(f"{path}.metadata", "an object", metadata)
        _check_depth(metadata, f"{path}.metadata", limits.max_depth)
    guard = value.get("guard")
    body: tuple[Node, ...] = ()
    if op in (REPEAT, BLOCK) or "body" in value:
        body = _body(value, path, limits, kept, depth)
    return Node(
        id=node_id,
        op=canonical_op(op) or op,  # an alias loads as its op; an unknown op is the verifier's
        args=args,
        guard=None if guard is None else _guard(guard, f"{path}.guard"),
        metadata=metadata,
        body=body,
        **lists,
    )


def _body(
    value: dict[str, Any],
    path: str,
    limits: Limits,
    kept: dict[tuple[str, ...], tuple[str, ...]],
    depth: int,
) -> tuple[Node, ...]:
    """The rows of a ``REPEAT`` row or a ``BLOCK`` (:mod:`qmk.qvm.rows`, loaded at the
    first), each read as any row."""
    op = value["op"]
    if op != REPEAT and op != BLOCK:
        raise FormatError.of(
            "unknown-key", f"{path}: only a REPEAT row or a BLOCK has a body", path=path, key="body"
        )
    from qmk.qvm import rows

    def read(item: Any, where: str, inner: int) -> Node:
        return _node(item, where, limits, kept, inner)

    if op == BLOCK:
        return rows.block_body(value, path, depth, read)
    return rows.repeat_body(value, path, limits, depth, read)


def _blocks(
    raw: Any, limits: Limits, kept: dict[tuple[str, ...], tuple[str, ...]]
) -> tuple[Node, ...]:
    """``program.blocks``: an array of ``BLOCK`` rows."""
    if raw is None:
        return ()
    if type(raw) is not list:
        raise FormatError.wrong_type("program.blocks", "an array", raw)
    blocks = tuple(_node(item, f"program.blocks[{i}]", limits, kept) for i, item in enumerate(raw))
    for i, block in enumerate(blocks):
        if block.op != BLOCK:
            raise FormatError.of(
                "bad-value",
                f"program.blocks[{i}]: a block's op is {BLOCK!r}, got {block.op!r}",
                path=f"program.blocks[{i}]",
            )
    return blocks


def from_json(data: Any, *, limits: Limits | None = None) -> Graph:
    """Build a :class:`Graph` from parsed JSON data, checking its shape.

    Args:
        data: the value ``json.loads`` gave for a graph file.
        limits: reading limits (nesting depth of args and metadata).

    Returns:
        The graph. It is not verified: call :func:`qmk.qvm.verify.verify`.

    Raises:
        FormatError: a wrong type, an unknown or missing key, an unsupported version.
    """
    limits = limits or Limits()
    _object(data, "graph", _GRAPH_KEYS, ("version", "program", "resources"))
    version = data["version"]
    if type(version) is not str:
        raise FormatError.wrong_type("version", "a string", version)
    if version not in VERSIONS:
        raise FormatError.of(
            "unsupported-version",
            f"version {version!r} is not supported; this QMK reads {', '.join(VERSIONS)}",
            version=version,
        )
    program = _object(data["program"], "program", _PROGRAM_KEYS, ("nodes",))
    raw_nodes = program["nodes"]
    if type(raw_nodes) is not list:
        raise FormatError.wrong_type("program.nodes", "an array", raw_nodes)
    with gc_paused():
        kept: dict[tuple[str, ...], tuple[str, ...]] = {}  # the node's handle tuples, shared
        nodes = tuple(
            _node(raw, f"program.nodes[{i}]", limits, kept) for i, raw in enumerate(raw_nodes)
        )
        blocks = _blocks(program.get("blocks"), limits, kept)
        del kept
    if version != FOLDED_VERSION and (blocks or any(n.op in (REPEAT, CALL) for n in nodes)):
        raise FormatError.of(
            "unsupported-version",
            f"REPEAT rows and blocks need version {FOLDED_VERSION!r}; "
            f"this graph is version {version!r}",
            version=version,
        )
    raw_resources = _object(data["resources"], "resources", _RESOURCE_KEYS, ())
    resources = Resources(
        **{
            key: _strings(raw_resources[key], f"resources.{key}")
            for key in _RESOURCE_KEYS
            if raw_resources.get(key) is not None
        }
    )
    caps = data.get("caps")
    description = data.get("description")
    if description is not None and type(description) is not str:
        raise FormatError.wrong_type("description", "a string", description)
    metadata = data.get("metadata")
    if metadata is not None:
        if type(metadata) is not dict:
            raise FormatError.wrong_type("metadata", "an object", metadata)
        _check_depth(metadata, "metadata", limits.max_depth)
    return Graph(
        version=version,
        nodes=nodes,
        resources=resources,
        caps=() if caps is None else _strings(caps, "caps"),
        description=description,
        metadata=metadata,
        blocks=blocks,
    )


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise FormatError.of("duplicate-key", f"an object repeats the key {key!r}", key=key)
    return result


def _no_constant(name: str) -> Any:
    raise FormatError.of("not-json", f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    # Python reads 1e400 as inf, which JSON cannot write back.
    value = float(text)
    if not math.isfinite(value):
        raise FormatError.of("not-json", f"the number {text} is too large for a float")
    return value


def _bounded_int(text: str) -> int:
    # Python refuses to convert integers of more than 4300 digits (a ValueError).
    try:
        return int(text)
    except ValueError:
        raise FormatError.of("not-json", f"a number of {len(text)} digits is too long") from None


#: The JSON decoder for every QVM input: no repeated keys, no NaN/Infinity, no
#: numbers that overflow a float or Python's integer conversion. Its hooks raise
#: FormatError.
STRICT_JSON = json.JSONDecoder(
    object_pairs_hook=_no_duplicate_keys,
    parse_float=_finite_float,
    parse_int=_bounded_int,
    parse_constant=_no_constant,
)


def parse_json_text(
    text: str | bytes, *, source: str = "<input>", limits: Limits | None = None
) -> Any:
    """Parse JSON text strictly: UTF-8, no NaN/Infinity, no repeated keys, bounded size.

    Raises:
        FormatError: with codes too-large, not-utf8, not-json, duplicate-key, too-deep.
    """
    limits = limits or Limits()
    if limits.max_bytes is not None and len(text) > limits.max_bytes:
        raise FormatError.of(
            "too-large",
            f"{source}: {len(text)} bytes is over the limit of {limits.max_bytes}",
            limit=limits.max_bytes,
        )
    if isinstance(text, bytes):
        text = decode_utf8(text, source=source)
    text = text.removeprefix("\ufeff")
    try:
        with gc_paused():
            return STRICT_JSON.decode(text)
    except json.JSONDecodeError as exc:
        raise FormatError.of(
            "not-json", f"{source}:{exc.lineno}:{exc.colno}: {exc.msg}", line=exc.lineno
        ) from None
    except RecursionError:
        raise FormatError.of("too-deep", f"{source}: values nest too deeply to read") from None
    except FormatError as exc:
        raise exc.located(source) from None


def decode_utf8(data: bytes, *, source: str) -> str:
    """Decode input bytes as UTF-8.

    Raises:
        FormatError: not-utf8, naming ``source`` and the first bad byte.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError.of(
            "not-utf8", f"{source}: byte {exc.start} is not UTF-8 ({exc.reason})"
        ) from None


def loads(text: str | bytes, *, source: str = "<input>", limits: Limits | None = None) -> Graph:
    """Read a graph from JSON text.

    Raises:
        FormatError: the text is not a well-formed graph; the message names
            ``source`` and where in it the problem is.
    """
    data = parse_json_text(text, source=source, limits=limits)
    try:
        return from_json(data, limits=limits)
    except FormatError as exc:
        raise exc.located(source) from None
    finally:
        _free_nodes(data)


def _free_nodes(data: Any) -> None:
    """Free parsed nodes a few hundred at a time: the last reference to a 100,000-node
    list frees 300,000 objects in one call, the interpreter held and other threads
    waiting. In pieces, they may run between."""
    program = data.get("program") if type(data) is dict else None
    nodes = program.get("nodes") if type(program) is dict else None
    if type(nodes) is list:
        free_in_pieces(nodes)


def free_in_pieces(items: list[Any]) -> None:
    """Empty ``items`` a few hundred at a time from its end (:data:`COMPACT_PIECE`): a
    list holding the last references to 100,000 nodes frees them all in one call
    otherwise, the interpreter held throughout; in pieces, other threads run between.

    >>> items = [object() for _ in range(1000)]
    >>> free_in_pieces(items)
    >>> items
    []
    """
    while items:
        del items[-COMPACT_PIECE:]


def free_value_in_pieces(value: Any) -> None:
    """Empty the lists and objects of decoded JSON ``value`` a few hundred entries at a
    time (:data:`COMPACT_PIECE`), the biggest first.

    Run in a thread once a request is answered, it frees what a big request decoded to
    while the others run between pieces. Freed in one call, a big device job holds the
    interpreter (``docs/door.md``). ``value`` is emptied, whoever else holds it.

    >>> job = {"hardware": {"positions": [[float(k), 0.0] for k in range(2000)]}}
    >>> free_value_in_pieces(job)
    >>> job
    {}
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            stack.extend(v for v in item.values() if _big(v))
            item.clear()
        elif type(item) is list:
            while item:
                stack.extend(v for v in item[-COMPACT_PIECE:] if _big(v))
                del item[-COMPACT_PIECE:]


def _big(value: Any) -> bool:
    """A list or object of more entries than one piece (freed in pieces of its own)."""
    return type(value) in (list, dict) and len(value) > COMPACT_PIECE


def is_finite_number(value: Any) -> TypeGuard[int | float]:
    """True for an int or a finite float, and False for bools (JSON keeps them apart)."""
    kind = type(value)
    return kind is int or (kind is float and math.isfinite(value))


# --------------------------------------------------------------------------- compact text

#: Nodes encoded per piece by :func:`compact_text`. Between pieces another thread may
#: take the interpreter, which one ``json.dumps`` of a big graph holds throughout.
COMPACT_PIECE = 512
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def compact_text(graph: Any) -> str:
    """``json.dumps(graph, separators=(",", ":"), ensure_ascii=False, allow_nan=False)``,
    the same text, but written a few hundred nodes at a time, so a thread writing a
    100,000-node graph lets the others run between pieces.

    >>> g = {"version": "0.2", "program": {"nodes": [{"id": "a", "op": "APPLY_X"}]}}
    >>> compact_text(g) == json.dumps(g, separators=(",", ":"), ensure_ascii=False)
    True

    Raises:
        TypeError, ValueError: as ``json.dumps``: a value that is not plain JSON.
    """
    program = graph.get("program") if type(graph) is dict else None
    nodes = program.get("nodes") if type(program) is dict else None
    if program is None or type(nodes) is not list or len(nodes) <= COMPACT_PIECE:
        return _COMPACT.encode(graph)
    pieces = (nodes[start : start + COMPACT_PIECE] for start in range(0, len(nodes), COMPACT_PIECE))
    return _compact_pieces({**graph, "program": {**program, "nodes": []}}, pieces)


def graph_compact_text(graph: Graph) -> str:
    """``compact_text(graph.to_json())``, the same text, but each node's JSON made and
    dropped a piece at a time. The whole JSON of a 100,000-node graph is 400,000 live
    objects. Making them sets off full collections of the cyclic collector, and freeing
    them holds the interpreter again.

    >>> g = Graph(nodes=(Node(id="a", op="ALLOC_LQ", vqs=("q",)),))
    >>> graph_compact_text(g) == compact_text(g.to_json())
    True
    """
    nodes = graph.nodes
    pieces = (
        [node.to_json() for node in nodes[start : start + COMPACT_PIECE]]
        for start in range(0, len(nodes), COMPACT_PIECE)
    )
    return _compact_pieces(replace(graph, nodes=()).to_json(), pieces)


def _compact_pieces(shell: dict[str, Any], pieces: Iterator[list[Any]]) -> str:
    """The compact text of ``shell`` (graph JSON with no nodes) with the nodes of
    ``pieces``, each piece encoded in one call and dropped before the next is made."""
    marker = f"\x00nodes-{id(shell):x}\x00"
    shell["program"]["nodes"] = marker
    head, found, tail = _COMPACT.encode(shell).partition(_COMPACT.encode(marker))
    if not found:  # pragma: no cover - a marker is in the text it was put in
        raise AssertionError("the nodes marker is missing from the text it was put in")
    out = [head, "["]
    for piece in pieces:
        if piece:
            part = _COMPACT.encode(piece)
            out.append(part[1:-1] if len(out) == 2 else "," + part[1:-1])
        del piece
    out += ["]", tail]
    return "".join(out)


@dataclass(frozen=True, slots=True)
class GraphText(Mapping[str, Any]):
    """A submitted graph kept as its compact JSON text (:func:`compact_text`) and its node
    count. A 100,000-node graph travels from the wire to the verifier as one string, not
    300,000 Python objects for the cyclic collector to walk while they live.

    It is a read-only mapping, so code that reads a graph as JSON data still can (the
    text is parsed on such a read, each time); the kernel reads :attr:`text`.

    >>> g = GraphText.of({"version": "0.2", "program": {"nodes": []}})
    >>> g.text, g.nodes, g["version"]
    ('{"version":"0.2","program":{"nodes":[]}}', 0, '0.2')
    """

    text: str
    nodes: int  # stored rows: a REPEAT row's body rows count, its turns do not; blocks' too

    @classmethod
    def of(cls, graph: Mapping[str, Any]) -> GraphText:
        """The compact text of decoded graph JSON (raises as :func:`compact_text`)."""
        program = graph.get("program")
        nodes = program.get("nodes") if isinstance(program, Mapping) else None
        blocks = program.get("blocks") if isinstance(program, Mapping) else None
        size = json_rows(nodes) if isinstance(nodes, list) else 0
        return cls(
            compact_text(graph), size + (json_rows(blocks) if isinstance(blocks, list) else 0)
        )

    @classmethod
    def of_graph(cls, graph: Graph) -> GraphText:
        """The compact text of a graph (:func:`graph_compact_text`), its JSON never whole."""
        return cls(graph_compact_text(graph), json_rows(graph.nodes) + json_rows(graph.blocks))

    def _data(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.text)
        return data

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())


def is_graph_data(value: Any) -> bool:
    """Whether a submit's decoded ``graph`` is a QVM graph (an object whose ``program`` is
    an object). A QVM graph travels on as its compact text. Any other program (a device
    job) stays the data it decoded to, for its target to read."""
    return type(value) is dict and type(value.get("program")) is dict


def json_rows(nodes: Any) -> int:
    """The rows of a node list, as JSON data or :class:`Node` values, bodies' rows too:
    a program's stored size, which ``kernel.max_graph_nodes`` bounds.

    >>> json_rows([{"op": "REPEAT", "body": [{"op": "APPLY_T"}, {"op": "APPLY_H"}]}])
    3
    """
    total = 0
    stack = [nodes]
    while stack:
        level = stack.pop()
        total += len(level)
        for node in level:
            body = node.get("body") if type(node) is dict else getattr(node, "body", None)
            if isinstance(body, list | tuple) and body:
                stack.append(body)
    return total
