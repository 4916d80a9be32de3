"""Bounded repetition and blocks kept folded: stored rows, the one-turn view, and the one
unrolling.

A ``REPEAT`` row (``{"id", "op": "REPEAT", "args": {"count": N}, "body": [...]}``,
graph version 0.3) runs its body N times; bodies nest. The program is stored and
checked folded: its size is its *rows* (:func:`rows`), and the verifier walks the
*one-turn view* (:func:`one_turn`: every body once, in list order) and multiplies.

Consumers that must apply one operation at a time get the unrolled nodes from
:func:`unroll`, the one place a program is unrolled; it refuses a program whose
unrolled size is over a limit with ``unrolled-too-large`` (QV505) before it builds
anything. Unrolling names turn ``k`` of a body's node ``x`` ``x@k`` (nested:
``x@i@j``, outer turn first), and so the events the body produces, where the body
reads them; handles keep their names (a balanced body frees what it allocates).

A ``CALL`` row (``{"id", "op": "CALL", "args": {"block": NAME}, "vqs": [...]}``) runs
the block ``NAME`` of ``program.blocks``, stored once, on its ``vqs``: a REPEAT of one
turn whose body is the block's, its formal qubits bound to the call's. Both views
bind it in place (:func:`bound`): the body's node ``x`` as ``CALLID/x``, its qubits
the call's. A block holds no event, channel or lifetime change (the verifier's block
rules), so nothing else is renamed. A call the verifier refuses (an unknown block, a
wrong operand count, a recursive call) is left out of both.

>>> from qmk.qvm.graph import Graph, Node, Resources
>>> body = (Node(id="m", op="MEASURE_Z", vqs=("q",), produces=("e",)),)
>>> g = Graph(version="0.3", nodes=(
...     Node(id="a", op="ALLOC_LQ", vqs=("q",)),
...     Node(id="r", op="REPEAT", args={"count": 2}, body=body),
...     Node(id="f", op="FREE_LQ", vqs=("q",))),
...     resources=Resources(vqs=("q",), events=("e",)))
>>> rows(g.nodes), unrolled_size(g)
(4, 4)
>>> flat = unroll(g, max_nodes=10)
>>> [n.id for n in flat.nodes], flat.resources.events
(['a', 'm@0', 'm@1', 'f'], ('e@0', 'e@1'))
"""

from __future__ import annotations

import operator
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import msgspec

from qmk.qvm.errors import UnrollError
from qmk.qvm.graph import CALL, REPEAT, Graph, Guard, GuardTerm, Node, Resources, is_folded

__all__ = [
    "Span",
    "View",
    "block_bound",
    "bound",
    "callee",
    "calls_bound",
    "one_turn",
    "rows",
    "unroll",
    "unrolled_nodes",
    "unrolled_size",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    """One ``REPEAT`` row as the one-turn view holds it.

    Attributes:
        id: the row's id.
        count: how many turns its body runs.
        start: the view index of its body's first node.
        end: one past the view index of its body's last node.
        path: the ids of the REPEAT rows around it, from the outside in, its own last.
        multiplier: how many times its body runs in all (its count times those around it).
    """

    id: str
    count: int
    start: int
    end: int
    path: tuple[str, ...]
    multiplier: int


@dataclass(frozen=True, slots=True, kw_only=True)
class View:
    """A folded program's one-turn view: every operation row once, in list order.

    Attributes:
        nodes: the rows that are operations (no REPEAT row), bodies in place.
        multipliers: for each of ``nodes``, how many times it runs in the unrolled program.
        paths: for each of ``nodes``, the ids of the REPEAT rows around it (outside in).
        spans: the REPEAT rows, in list order of their heads.
        repeats: the REPEAT rows themselves, in the order of ``spans``.
    """

    nodes: tuple[Node, ...]
    multipliers: tuple[int, ...]
    paths: tuple[tuple[str, ...], ...]
    spans: tuple[Span, ...]
    repeats: tuple[Node, ...]


_OP = operator.attrgetter("op")


def rows(nodes: Sequence[Node]) -> int:
    """How many rows ``nodes`` store, bodies' rows included: a program's stored size
    (``rows(graph.nodes) + rows(graph.blocks)``)."""
    total = 0
    stack: list[Sequence[Node]] = [nodes]
    while stack:
        level = stack.pop()
        total += len(level)
        stack.extend(node.body for node in level if node.body)
    return total


def callee(call: Node, blocks: Mapping[str, Node], active: Collection[str] = ()) -> Node | None:
    """The block a CALL row runs: None where it names no block of ``blocks``, gives it
    another count of qubits, or names one of ``active`` (the blocks running around it:
    a recursive call)."""
    name = call.args.get("block")
    block = blocks.get(name) if type(name) is str else None
    if block is None or name in active or len(block.vqs) != len(call.vqs):
        return None
    return block


def bound(block: Node, call: Node) -> tuple[Node, ...]:
    """``block``'s body as ``call`` runs it: each row's id ``CALLID/ID``, its formal
    qubits the call's. A REPEAT row's body is bound alike; a CALL row in it stays a
    CALL row, its id and qubits bound (and so bound in turn where it is read)."""
    local = dict(zip(block.vqs, call.vqs, strict=True))
    prefix, get, bind = f"{call.id}/", local.get, msgspec.structs.replace
    return tuple(
        _bind(node, local, prefix)
        if node.body
        else bind(node, id=prefix + node.id, vqs=tuple([get(q, q) for q in node.vqs]))
        for node in block.body
    )


def calls_bound(graph: Graph) -> Graph:
    """``graph`` with each CALL row replaced by its block's body, bound (:func:`bound`),
    REPEAT rows kept folded, and no blocks: for a consumer that reads REPEAT rows but
    not calls (the estimator's tracer, the stim lowering). Its rows are the one-turn
    view's, which the verifier bounds (a refused call is left out)."""
    if not graph.blocks:
        return graph
    blocks = {block.id: block for block in reversed(graph.blocks)}
    return replace(graph, nodes=tuple(_calls_bound(graph.nodes, blocks, ())), blocks=())


def block_bound(graph: Graph, call: Node) -> tuple[Node, ...]:
    """The rows ``call`` (a CALL row of ``graph``) runs, as :func:`calls_bound` writes
    them in its place: its block's body on its qubits, inner calls bound, REPEAT rows
    kept folded; none for a call the verifier refuses. A consumer that runs a block's
    body many times binds it once so, on placeholder qubits, and maps them per call."""
    blocks = {block.id: block for block in reversed(graph.blocks)}
    return tuple(_calls_bound((call,), blocks, ()))


def _calls_bound(
    rows: Sequence[Node], blocks: Mapping[str, Node], active: tuple[str, ...]
) -> Iterator[Node]:
    for node in rows:
        if node.op == CALL:
            block = callee(node, blocks, active)
            if block is not None:
                yield from _calls_bound(bound(block, node), blocks, (*active, block.id))
        elif node.op == REPEAT:
            body = tuple(_calls_bound(node.body, blocks, active))
            yield msgspec.structs.replace(node, body=body)
        else:
            yield node


def _bind(node: Node, names: Mapping[str, str], prefix: str) -> Node:
    body = tuple(_bind(n, names, prefix) for n in node.body) if node.body else ()
    return msgspec.structs.replace(
        node, id=prefix + node.id, vqs=tuple(names.get(q, q) for q in node.vqs), body=body
    )


def one_turn(graph: Graph, *, calls: bool = True) -> View:
    """The one-turn view of ``graph`` (see :class:`View`). ``calls`` False keeps each
    CALL row as one row of the view, its block not bound: the verifier's call lane,
    which takes a call as one operation of its block's effect."""
    nodes: list[Node] = []
    multipliers: list[int] = []
    paths: list[tuple[str, ...]] = []
    spans: list[Span | None] = []
    repeats: list[Node] = []

    blocks = {block.id: block for block in reversed(graph.blocks)}  # the first of a name
    active: list[str] = []

    def walk(level: Sequence[Node], path: tuple[str, ...], multiplier: int) -> None:
        for node in level:
            if node.op == CALL and calls:
                block = callee(node, blocks, active)
                if block is not None:
                    active.append(block.id)
                    walk(bound(block, node), path, multiplier)
                    active.pop()
                continue
            if node.op != REPEAT:
                nodes.append(node)
                multipliers.append(multiplier)
                paths.append(path)
                continue
            count = _count(node)
            inner = (*path, node.id)
            slot = len(spans)
            spans.append(None)
            repeats.append(node)
            start = len(nodes)
            walk(node.body, inner, multiplier * count)
            spans[slot] = Span(
                id=node.id,
                count=count,
                start=start,
                end=len(nodes),
                path=inner,
                multiplier=multiplier * count,
            )

    walk(graph.nodes, (), 1)
    return View(
        nodes=tuple(nodes),
        multipliers=tuple(multipliers),
        paths=tuple(paths),
        spans=tuple(span for span in spans if span is not None),
        repeats=tuple(repeats),
    )


def _count(node: Node) -> int:
    """A REPEAT row's count; 0 for one whose count is not a whole number >= 1 (the
    loader refuses those; a graph built in code may hold one, which the verifier reports)."""
    count = node.args.get("count")
    return count if type(count) is int and count >= 1 else 0


def unrolled_size(graph: Graph) -> int:
    """How many nodes the unrolled program has, by multiplication (nothing is unrolled).

    >>> from qmk.qvm.graph import Graph, Node
    >>> inner = Node(id="i", op="REPEAT", args={"count": 10**6},
    ...              body=(Node(id="t", op="APPLY_T", vqs=("q",)),))
    >>> unrolled_size(Graph(nodes=(Node(id="o", op="REPEAT", args={"count": 10**6},
    ...                                  body=(inner,)),)))
    1000000000000
    """
    return unrolled_nodes(graph.nodes, graph.blocks)


def unrolled_nodes(
    nodes: Sequence[Node], blocks: Sequence[Node] = (), *, turns: bool = True
) -> int:
    """How many nodes the rows ``nodes`` stand for, unrolled (nothing is built); a CALL
    row stands for its block's (of ``blocks``), a refused call for none. ``turns``
    False counts each REPEAT body once: the size of the one-turn view.

    A block's size is found once, however often it is called, so a chain of blocks
    that each call the next twice is counted in time linear in its rows."""
    table = {block.id: block for block in reversed(blocks)}
    arity = {name: len(block.vqs) for name, block in table.items()}
    sizes: dict[str, int] = {}

    def size(level: Sequence[Node], active: tuple[str, ...]) -> int:
        ops = list(map(_OP, level))
        if REPEAT not in ops and CALL not in ops:
            return len(level)  # (a level of operations, counted at C speed)
        total = 0
        for n in level:
            name = n.args.get("block") if n.op == CALL else None
            if isinstance(name, str):  # a block's size is known after its first call
                known = sizes.get(name)
                if known is not None and name not in active and len(n.vqs) == arity[name]:
                    total += known
                    continue
            if n.op == REPEAT:
                total += (_count(n) if turns else 1) * size(n.body, active)
            elif n.op == CALL:
                block = callee(n, table, active)
                if block is not None:
                    known = sizes.get(block.id)
                    if known is None:
                        known = sizes[block.id] = size(block.body, (*active, block.id))
                    total += known
            else:
                total += 1
        return total

    return size(nodes, ())


def unroll(graph: Graph, *, max_nodes: int | None) -> Graph:
    """The program with every REPEAT row unrolled: the one place QMK unrolls.

    A flat graph comes back as it is. The size is checked first, by multiplication.

    Raises:
        UnrollError: ``unrolled-too-large`` (QV505) when the unrolled program would
            have more than ``max_nodes`` nodes; nothing is built.
    """
    if not is_folded(graph):
        return graph
    size = unrolled_size(graph)
    if max_nodes is not None and size > max_nodes:
        raise UnrollError.of(
            "unrolled-too-large",
            f"the program unrolls to {size} nodes, over the limit of {max_nodes} "
            f"(Limits.max_unrolled_nodes); its {rows(graph.nodes)} stored rows are checked, "
            "counted and estimated folded, but this consumer applies operations one at a time",
            limit=max_nodes,
            size=size,
        )
    renamed: dict[str, list[str]] = {}
    blocks = {block.id: block for block in reversed(graph.blocks)}
    nodes = tuple(_expand(graph.nodes, "", {}, renamed, blocks, (), _templates(blocks)))
    events: list[str] = []
    for event in graph.resources.events:
        events.extend(renamed.get(event, (event,)))
    return replace(
        graph,
        nodes=nodes,
        blocks=(),
        resources=Resources(vqs=graph.resources.vqs, chs=graph.resources.chs, events=tuple(events)),
    )


def _expand(
    level: Sequence[Node],
    suffix: str,
    names: dict[str, str],
    renamed: dict[str, list[str]],
    blocks: Mapping[str, Node],
    active: tuple[str, ...],
    plain: Mapping[str, _Template],
) -> Iterator[Node]:
    """The nodes of ``level`` in turn ``suffix``, events renamed by ``names``, calls
    bound (``active``: the blocks running around; ``plain``: the blocks of operations
    alone, whose bound body outside REPEAT rows is their unrolling)."""
    for node in level:
        if node.op == CALL:
            block = callee(node, blocks, active)
            template = plain.get(block.id) if block is not None and not suffix else None
            if template is not None:
                prefix, vqs, bind = f"{node.id}/", node.vqs, msgspec.structs.replace
                for row, places in template:
                    yield bind(row, id=prefix + row.id, vqs=tuple([vqs[i] for i in places]))
            elif block is not None:
                body = bound(block, node)
                inner_active = (*active, block.id)
                yield from _expand(body, suffix, names, renamed, blocks, inner_active, plain)
            continue
        if node.op != REPEAT:
            yield _renamed(node, suffix, names) if suffix else node
            continue
        produced = {e for n in node.body if n.op != REPEAT for e in n.produces}
        for turn in range(_count(node)):
            inner = f"{suffix}@{turn}"
            local = {**names, **{event: event + inner for event in produced}}
            for event in produced:
                renamed.setdefault(event, []).append(event + inner)
            yield from _expand(node.body, inner, local, renamed, blocks, active, plain)


#: A block of operations on its formals alone: each row, and the positions of its
#: qubits among the formals (what :func:`bound` does, found once a block).
_Template = tuple[tuple[Node, tuple[int, ...]], ...]


def _templates(blocks: Mapping[str, Node]) -> dict[str, _Template]:
    """The :data:`_Template` of each block of ``blocks`` whose rows are operations on its
    formals alone (no body, no CALL row): its bound body is its unrolling, made per call
    from the positions without a lookup a qubit."""
    out: dict[str, _Template] = {}
    for name, block in blocks.items():
        where = {q: i for i, q in enumerate(block.vqs)}
        rows = block.body
        if all(not n.body and n.op != CALL and all(q in where for q in n.vqs) for n in rows):
            out[name] = tuple((n, tuple([where[q] for q in n.vqs])) for n in rows)
    return out


def _renamed(node: Node, suffix: str, names: dict[str, str]) -> Node:
    """``node`` of one turn: its id with the turn's suffix, its events as ``names`` say."""
    if not (names and (node.inputs or node.produces or node.guard is not None)):
        return msgspec.structs.replace(node, id=node.id + suffix)
    guard = node.guard
    if guard is not None:
        guard = Guard(
            terms=tuple(
                GuardTerm(event=names.get(t.event, t.event), equals=t.equals) for t in guard.terms
            ),
            conjunction=guard.conjunction,
        )
    return msgspec.structs.replace(
        node,
        id=node.id + suffix,
        inputs=tuple(names.get(e, e) for e in node.inputs),
        produces=tuple(names.get(e, e) for e in node.produces),
        guard=guard,
    )
