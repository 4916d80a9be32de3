"""A flat QVM program held as columns: one array per field, not one object per node.

A program of a million gates as :class:`~qmk.qvm.graph.Node` objects is a million
objects, each with its own dicts and tuples (hundreds of bytes a node). As
:class:`Columns` it is a handful of numpy arrays (20 bytes a row, or 26):

- ``ops``: each row's op, as its index in :data:`OP_NAMES` (the op table's order);
- ``qubits``: each row's qubit operands (int16 where the qubits' count allows),
  as indices into the program's qubits
  (``q0``, ``q1``, ...), ``-1`` past the last; an ``ALLOC_LQ`` or ``FREE_LQ`` row holds
  the *range* ``[qubits[0], qubits[1])`` of the qubits it starts or ends;
- ``theta``: each row's angle argument (NaN where the op takes none);
- ``lines``: each row's source line (0 where the row has none, as the final free);
- ``guards`` (None: no guard): the guards' terms, one row each, in row order:
  ``(row, event, equals, all)``, the guarded row, the event's index (``m<event>``), the
  value it must have measured, and 1 for a guard in its ``all`` (conjunction) form.

Node ids (``n<row>``), event names (``m<k>`` for the k-th measurement) and qubit
names (``q<i>``) follow from the row order, as the front-ends write them. The source
file, the code profile and the graph's metadata are side values.

:func:`check` verifies the columns with whole-array operations: known ops, operand
counts, distinct operands, arguments, qubit lifetimes (every use between its qubit's
allocation and free), capabilities and the size limits. It gives the figures a clean
program's report states (:class:`Figures`), or None where the program has a fault;
the verifier then walks the graph view (:meth:`Columns.to_graph`) to name every
finding, so the findings and their codes are the verifier's own, whichever path
found the fault. :meth:`Columns.to_graph` is the one place a column program becomes
node objects: for messages, tests, and consumers that read nodes.

>>> import numpy as np
>>> code = OP_CODES
>>> cols = Columns(
...     ops=np.array([code["ALLOC_LQ"], code["APPLY_H"], code["APPLY_CNOT"],
...                   code["MEASURE_Z"], code["FREE_LQ"]], dtype=np.int16),
...     qubits=np.array([[0, 2, -1], [0, -1, -1], [0, 1, -1], [1, -1, -1], [0, 2, -1]],
...                     dtype=np.int32),
...     theta=np.full(5, np.nan), lines=np.array([1, 2, 3, 4, 0], dtype=np.int32),
...     source="x.qasm")
>>> check(cols)
Figures(nodes=5, epochs=1, peak_live_qubits=2, caps=('CAP_ALLOC',))
>>> [(n.id, n.op, n.vqs, n.produces) for n in cols.to_graph().nodes][2:4]
[('n2', 'APPLY_CNOT', ('q0', 'q1'), ()), ('n3', 'MEASURE_Z', ('q1',), ('m0',))]
>>> from dataclasses import replace
>>> guarded = replace(cols, ops=cols.ops.copy(), guards=np.array([[3, 0, 1, 0]], dtype=np.int32))
>>> guarded.ops[3] = code["APPLY_X"]  # X on q1 where m0 read 1: no event is recorded
>>> check(guarded) is None  # (m0 is never recorded: the verifier names it)
True
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, SupportsIndex, cast, overload

import numpy as np

from qmk.arrays import distinct, has_repeats
from qmk.qvm.graph import CURRENT_VERSION, Graph, Guard, GuardTerm, Node, Resources
from qmk.qvm.limits import Limits
from qmk.qvm.ops import OPS, Clifford, Exec
from qmk.qvm.verify import Epoch, VerifiedProgram, op_counts
from qmk.qvm.walked import TupleView, Walked

__all__ = ["OP_CODES", "OP_NAMES", "ColumnNodes", "Columns", "Figures", "check", "verified"]

#: The op of each code: the op table's names in its order.
OP_NAMES: tuple[str, ...] = tuple(OPS)
#: The code of each op name.
OP_CODES: dict[str, int] = {name: code for code, name in enumerate(OP_NAMES)}
#: Qubit operands a row holds (wider ops are read by the graph path).
WIDTH = 3

_ALLOC, _FREE, _FENCE = OP_CODES["ALLOC_LQ"], OP_CODES["FREE_LQ"], OP_CODES["FENCE_EPOCH"]


def _table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per code: the fewest and most qubit operands (-1: an op the column checks leave
    to the verifier), whether it takes an angle, whether it records an event, whether
    it requires a capability beyond ``CAP_ALLOC``. The column checks take the gates of
    no argument or an angle, ``MEASURE_Z`` and ``FENCE_EPOCH``."""
    low = np.full(len(OP_NAMES), -1, dtype=np.int64)
    high = np.full(len(OP_NAMES), -1, dtype=np.int64)
    angle = np.zeros(len(OP_NAMES), dtype=bool)
    measures = np.zeros(len(OP_NAMES), dtype=bool)
    other_cap = np.array([s.cap not in (None, "CAP_ALLOC") for s in OPS.values()], dtype=bool)
    for code, spec in enumerate(OPS.values()):
        names = tuple(a.name for a in spec.args)
        plain_gate = spec.kind is Exec.GATE and names in ((), ("theta",))
        taken = plain_gate or spec.name == "MEASURE_Z"
        most = spec.vqs.high
        if taken and most is not None and most <= WIDTH and not (spec.chs.high or spec.inputs.high):
            low[code], high[code] = spec.vqs.low, most
            angle[code] = names == ("theta",)
            measures[code] = spec.name == "MEASURE_Z"
    low[_FENCE] = high[_FENCE] = 0
    return low, high, angle, measures, other_cap


_LOW, _HIGH, _ANGLE, _MEASURES, _OTHER_CAP = _table()


@dataclass(frozen=True, slots=True)
class Figures:
    """What a clean column program's report states: rows, epochs, the most qubits live
    at once, and the capabilities it requires (and requests)."""

    nodes: int
    epochs: int
    peak_live_qubits: int
    caps: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Columns:
    """A flat QVM program as columns (see the module).

    Attributes:
        ops: int16, each row's op code (:data:`OP_CODES`).
        qubits: int16 or int32 of shape (rows, 3), each row's qubit indices (-1: none); a range
            ``[start, stop)`` on ``ALLOC_LQ`` and ``FREE_LQ`` rows.
        theta: float64, each row's angle (NaN: none).
        lines: int32, each row's source line (0: none).
        source: the file the rows came from (``metadata.source`` is ``source:line``).
        description: the graph's description.
        profile: the code profile written on each ``ALLOC_LQ`` (None: none written).
        metadata: the graph's metadata (the source language, the output's layout).
        guards: int32 of shape (terms, 4), the guards' terms in row order: the guarded
            row, the event's index, the value it must read, 1 for the ``all`` form (None:
            no guard).
    """

    ops: np.ndarray
    qubits: np.ndarray
    theta: np.ndarray
    lines: np.ndarray
    source: str
    description: str | None = None
    profile: str | None = None
    metadata: Mapping[str, Any] | None = field(default=None)
    guards: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ops)

    @property
    def qubit_count(self) -> int:
        """The qubits the program allocates (``q0`` to ``q<n-1>``)."""
        alloc = self.qubits[self.ops == _ALLOC]
        return int((alloc[:, 1] - alloc[:, 0]).sum())

    @property
    def event_count(self) -> int:
        """The events the program's measurements record (``m0`` to ``m<k-1>``)."""
        return int(_MEASURES[self.ops].sum())

    def guarded_rows(self) -> np.ndarray:
        """The rows that hold a guard, in order."""
        guards = self.guards
        return np.zeros(0, dtype=np.int64) if guards is None else distinct(guards[:, 0])

    def guard(self, row: int) -> Guard | None:
        """Row ``row``'s guard (None: none)."""
        guards = self.guards
        if guards is None:
            return None
        low, high = np.searchsorted(guards[:, 0], [row, row + 1]).tolist()
        if low == high:
            return None
        terms = tuple(
            GuardTerm(event=f"m{e}", equals=v) for e, v in guards[low:high, 1:3].tolist()
        )  # (a malformed simple guard is written in the form that holds its terms)
        return Guard(terms=terms, conjunction=bool(guards[low, 3]) or len(terms) != 1)

    def to_graph(self) -> Graph:
        """The program as a :class:`Graph` of :class:`Node` values: the view the
        verifier's messages, the assembly text and node-reading consumers take."""
        return self._shell(self.nodes())

    def graph_view(self) -> Graph:
        """:meth:`to_graph`'s graph, its nodes made when read (:class:`ColumnNodes`): a
        node read by its index is made alone, all of them at the first read of more."""
        return self._shell(cast("tuple[Node, ...]", ColumnNodes(self)))

    def node(self, row: int, event: int | None = None) -> Node:
        """The node of ``row`` alone, as :meth:`nodes` makes it (``event``: the events
        recorded before it, where the caller knows them)."""
        code, (a, b, c) = int(self.ops[row]), self.qubits[row].tolist()
        line = int(self.lines[row])
        meta = {"source": f"{self.source}:{line}" if line else self.source}
        args: dict[str, Any] = {}
        produces: tuple[str, ...] = ()
        if code in (_ALLOC, _FREE):
            vqs = tuple(f"q{q}" for q in range(a, b))
            if code == _ALLOC:
                args = {"n": b - a}
                if self.profile is not None:
                    args["profile"] = self.profile
        else:
            vqs = tuple(f"q{q}" for q in (a, b, c) if q >= 0)
            theta = float(self.theta[row])
            if theta == theta:  # not NaN
                args = {"theta": theta}
            if _MEASURES[code]:
                before = int(_MEASURES[self.ops[:row]].sum()) if event is None else event
                produces = (f"m{before}",)
        return Node(
            id=f"n{row}",
            op=OP_NAMES[code],
            args=args,
            vqs=vqs,
            produces=produces,
            guard=self.guard(row),
            metadata=meta,
        )

    def nodes(self) -> tuple[Node, ...]:
        """Every row's node. Made a column at a time: the ids, sources and operand tuples
        as lists (an operand tuple made once per distinct operands), then a node a row."""
        rows = len(self.ops)
        names = [f"q{i}" for i in range(self.qubit_count)]
        ops = list(map(OP_NAMES.__getitem__, self.ops.tolist()))
        ids = [f"n{k}" for k in range(rows)]
        source = self.source
        metas = [{"source": f"{source}:{line}" if line else source} for line in self.lines.tolist()]
        vqs = _operands(self.qubits, names)
        measured = np.flatnonzero(_MEASURES[self.ops])
        produces: list[tuple[str, ...]] = [()] * rows
        for k, row in enumerate(measured.tolist()):
            produces[row] = (f"m{k}",)
        args: list[dict[str, Any]] = [{}] * rows  # (replaced below where a row has some)
        angled = np.flatnonzero(~np.isnan(self.theta))
        for row, theta in zip(angled.tolist(), self.theta[angled].tolist(), strict=True):
            args[row] = {"theta": theta}
        life = np.flatnonzero((self.ops == _ALLOC) | (self.ops == _FREE))
        for row, (start, stop, _) in zip(life.tolist(), self.qubits[life].tolist(), strict=True):
            vqs[row] = tuple(names[start:stop])
            if ops[row] == "ALLOC_LQ":
                args[row] = {"n": stop - start}
                if self.profile is not None:
                    args[row]["profile"] = self.profile
        guards: list[Guard | None] = [None] * rows
        for row in self.guarded_rows().tolist():
            guards[row] = self.guard(row)
        return tuple(
            Node(id=i, op=op, args=dict(a) if a else {}, vqs=v, produces=p, guard=g, metadata=m)
            for i, op, a, v, p, g, m in zip(
                ids, ops, args, vqs, produces, guards, metas, strict=True
            )
        )

    def _shell(self, nodes: tuple[Node, ...] = ()) -> Graph:
        """The graph of ``nodes`` with this program's resources, caps and metadata."""
        return Graph(
            version=CURRENT_VERSION,
            nodes=nodes,
            resources=Resources(
                vqs=tuple(f"q{i}" for i in range(self.qubit_count)),
                events=tuple(f"m{k}" for k in range(self.event_count)),
            ),
            caps=("CAP_ALLOC",) if (self.ops == _ALLOC).any() else (),
            description=self.description,
            metadata=dict(self.metadata) if self.metadata else None,
        )

    def canonical_text(self) -> str:
        """The canonical JSON text of :meth:`to_graph`
        (:func:`~qmk.qvm.sorted_text.canonical_graph_text`), written from the columns: each
        row's text is pieces (fixed texts by the row's kind, its numbers in decimal)
        laid into bytes a block of rows at a time by whole-array operations, no node
        made."""
        return b"".join(self._text_pieces()).decode("ascii")

    def digest(self) -> str:
        """The SHA-256 (hex) of :meth:`canonical_text`, hashed a block of rows at a
        time as it is written (the text is never whole): a run request's digest
        (:func:`qmk.execution.request.program_digest` of the same text)."""
        import hashlib

        sha = hashlib.sha256()
        for piece in self._text_pieces():
            sha.update(piece)
        return sha.hexdigest()

    def _text_pieces(self) -> Iterator[bytes]:
        from qmk.qvm.sorted_text import canonical_graph_text

        shell = canonical_graph_text(self._shell())
        head, found, tail = shell.partition('"nodes":[]')
        if not found:  # pragma: no cover - a graph's text holds its nodes' list
            raise AssertionError("the canonical text of a graph has no nodes list")
        # (the shell's text may hold characters beyond ASCII, json's own, unescaped)
        yield f'{head}"nodes":['.encode()
        yield from _rows_text(self)
        yield f"]{tail}".encode()


def _rows_text(columns: Columns) -> Iterator[bytes]:
    """The canonical text of every row's node, comma-separated, a block of rows at a
    time (see :meth:`Columns.canonical_text`). An ``ALLOC_LQ``, ``FREE_LQ`` or guarded
    row (a few) is its node's JSON text, as a whole piece; every other row is the pieces
    below."""
    import json

    from qmk.qvm.sorted_text import canonical_text

    ops, qubits, rows = columns.ops, columns.qubits, len(columns.ops)
    source = json.dumps(columns.source)[:-1]  # (its closing quote comes after the line)
    measured = _MEASURES[ops]
    events = np.full(rows, -1, dtype=np.int64)
    events[measured] = np.arange(int(measured.sum()))
    before = np.cumsum(measured) - measured  # the events recorded before each row
    life = np.flatnonzero((ops == _ALLOC) | (ops == _FREE))
    life = np.union1d(life, columns.guarded_rows())
    whole = {
        row: canonical_text(columns.node(row, int(before[row])).to_json()).encode("ascii")
        for row in life.tolist()
    }
    plain = np.ones(rows, dtype=bool)
    plain[life] = False
    measured &= plain
    theta = columns.theta
    angled = plain & ~np.isnan(theta)
    distinct, which = np.unique(theta[angled], return_inverse=True)
    angle = np.zeros(rows, dtype=np.int64)
    angle[angled] = which + 1
    events[~plain] = -1
    lines = np.where(plain & (columns.lines > 0), columns.lines, -1).astype(np.int64)
    held = (qubits >= 0) & plain[:, None]
    has = held[:, 0]
    number = np.arange(rows, dtype=np.int64)
    last = np.zeros(rows, dtype=np.int64)
    last[:-1] = 1
    op_text = [f'"}},"op":"{name}"' for name in OP_NAMES]
    pieces: list[tuple[list[str], np.ndarray] | np.ndarray] = [
        (["", "{", '{"args":{"theta":'], plain.astype(np.int64) + angled),
        (["", *(repr(float(t)) for t in distinct.tolist())], angle),
        (["", '"id":"n', '},"id":"n'], plain.astype(np.int64) + angled),
        np.where(plain, number, -1),
        (["", f'","metadata":{{"source":{source}'], plain.astype(np.int64)),
        (["", ":"], (lines >= 0).astype(np.int64)),
        lines,
        (["", *op_text], np.where(plain, ops.astype(np.int64) + 1, 0)),
        (["", ',"produces":["m'], measured.astype(np.int64)),
        events,
        (["", '"]'], measured.astype(np.int64)),
        (["", "}", ',"vqs":["q'], np.where(plain, 1 + has, 0)),
        np.where(has, qubits[:, 0], -1).astype(np.int64),
    ]
    for column in (1, 2):
        pieces.append((["", '","q'], held[:, column].astype(np.int64)))
        pieces.append(np.where(held[:, column], qubits[:, column], -1).astype(np.int64))
    pieces += [(["", '"]}'], has.astype(np.int64)), (["", ","], last)]
    return _laid(pieces, rows, whole)


def _laid(
    pieces: list[tuple[list[str], np.ndarray] | np.ndarray], rows: int, whole: dict[int, bytes]
) -> Iterator[bytes]:
    """Rows of text laid one after another: row ``r`` is ``whole[r]`` where given, then
    each piece's text for it, in order. A piece is a vocabulary and each row's index into
    it, or a column of numbers written in decimal (-1: nothing).

    A block of rows at a time is a byte matrix, a row a row of text: each piece has its
    columns, as wide as its widest text, filled with zero bytes past a shorter one (a
    word) or before it (a number's digits). The text is then the matrix's nonzero
    bytes, in order, with the few whole rows put in their places."""
    layout: list[tuple[np.ndarray, int]] = []  # each piece's table (or none) and width
    for piece in pieces:
        if isinstance(piece, tuple):
            words = [w.encode("ascii") for w in piece[0]]
            width = max(map(len, words))
            # a word as one item of ``width`` bytes: a block's words are one gather
            table = np.array([w.ljust(width, b"\0") for w in words], dtype=f"V{width}")
            layout.append((table, width))
        else:
            top = int(piece.max(initial=0))
            layout.append((np.zeros(0, dtype=np.uint8), len(str(max(top, 0)))))
    total = sum(width for _, width in layout)
    for start in range(0, rows, BLOCK):
        stop = min(start + BLOCK, rows)
        matrix = np.zeros((stop - start, total), dtype=np.uint8)
        at = 0
        for piece, (table, width) in zip(pieces, layout, strict=True):
            if isinstance(piece, tuple) and width:
                which = piece[1][start:stop]
                slot = matrix[:, at : at + width].view(table.dtype)[:, 0]
                low = int(which.min())
                if low == which.max():  # one word for the block: no gather
                    slot[:] = table[low]
                else:
                    np.take(table, which, out=slot, mode="clip")  # (unbuffered)
            elif not isinstance(piece, tuple):
                _lay_number(matrix[:, at : at + width], piece[start:stop])
            at += width
        shown = matrix != 0
        laid = matrix[shown].tobytes()
        inside = [row for row in whole if start <= row < stop]
        if inside:  # (the few rows of a block that holds an allocation or a free)
            lengths = shown.sum(axis=1)
            offsets = (np.cumsum(lengths) - lengths).tolist()
            cuts = [0, *(offsets[row - start] for row in inside), len(laid)]
            parts = [laid[a:b] for a, b in itertools.pairwise(cuts)]
            laid = parts[0] + b"".join(whole[r] + p for r, p in zip(inside, parts[1:], strict=True))
        yield laid


def _lay_number(field: np.ndarray, numbers: np.ndarray) -> None:
    """Each number in decimal, its last digit in the field's last column (zero bytes
    before; none at all for -1)."""
    value = numbers.astype(np.int64)
    shown = value >= 0
    for place in range(field.shape[1]):
        field[:, -1 - place] = np.where(shown, 48 + value % 10, 0)
        value //= 10
        shown &= value > 0


def _operands(qubits: np.ndarray, names: list[str]) -> list[tuple[str, ...]]:
    """Each row's qubit names, as tuples (each distinct operand list's tuple made once);
    a qubit past ``names`` (a fault the verifier names) is named alike. An ``ALLOC_LQ``
    or ``FREE_LQ`` row's is its caller's to set."""
    top = int(qubits.max(initial=-1)) + 1
    names = names + [f"q{i}" for i in range(len(names), top)]
    count = len(names)
    width = count + 1  # a row's operands as one number: -1 (none) as `count`
    a, b, c = (np.where(qubits[:, k] < 0, count, qubits[:, k]).astype(np.int64) for k in range(3))
    keys = (a * width + b) * width + c
    distinct, which = np.unique(keys, return_inverse=True)
    padded = [*names, None]
    made = []
    for key in distinct.tolist():
        rest, third = divmod(key, width)
        first, second = divmod(rest, width)
        made.append(tuple(padded[q] for q in (first, second, third) if q < count))
    return list(map(made.__getitem__, which.tolist()))


class ColumnNodes(TupleView[Node]):
    """The nodes of a column program, made when read: one read by its index is made
    alone (:meth:`Columns.node`); any other read (iteration, a slice) makes them all
    once (:meth:`Columns.nodes`) and keeps them. So a run that reads a few rows' nodes
    (allocations, frees, fences, measurements) makes those alone. Equal to a tuple of
    the same nodes, and pickled as one."""

    __slots__ = ("_all", "_columns", "_events")

    def __init__(self, columns: Columns) -> None:
        self._columns = columns
        self._all: tuple[Node, ...] | None = None
        self._events: np.ndarray | None = None  # the rows that record events, in order

    def _values(self) -> tuple[Node, ...]:
        made = self._all
        if made is None:  # (two threads may each make them: equal values)
            made = self._all = self._columns.nodes()
        return made

    def __len__(self) -> int:
        return len(self._columns)

    @overload
    def __getitem__(self, index: SupportsIndex) -> Node: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Node, ...]: ...
    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        if isinstance(index, slice) or self._all is not None:
            return self._values()[index]
        count, at = len(self), operator.index(index)
        if not -count <= at < count:
            raise IndexError("node index out of range")
        events = self._events
        if events is None:  # (a node read is rare: its events before it by a search)
            events = self._events = np.flatnonzero(_MEASURES[self._columns.ops])
        row = at % count
        return self._columns.node(row, int(np.searchsorted(events, row)))

    def __repr__(self) -> str:
        return f"ColumnNodes({len(self)} nodes)"


def check(columns: Columns, *, limits: Limits | None = None) -> Figures | None:
    """Verify ``columns`` with whole-array operations: the figures of a clean program,
    or None where anything is wrong (the verifier's walk of :meth:`Columns.to_graph`
    then names each finding).

    Checked: every op known to the column form, with its count of qubit operands and
    its angle; the code profile written on the allocations, a known one; operands of a
    row distinct; every qubit used after its allocation and before its free, allocated
    and freed once; required capabilities requested; the size limits of ``limits``
    (rows, qubits, events, operands of a row). The rows are checked a block at a time,
    so that what the checks hold stays small beside the columns.
    """
    limits = limits or Limits()
    ops = columns.ops
    rows = len(ops)
    if rows == 0 or ops.min() < 0 or ops.max() >= len(OP_NAMES):
        return None
    if columns.profile is not None and not _profile_parses(columns.profile):
        return None  # (the verifier names it: QV108)
    spans = _lifetimes(columns, limits)
    if spans is None:
        return None
    born, dies, peak = spans
    if columns.guards is not None and not _guards_ok(columns, columns.guards):
        return None
    for start in range(0, rows, BLOCK):
        if not _rows_ok(columns, start, min(start + BLOCK, rows), born, dies):
            return None
    events = int(_MEASURES[ops].sum())
    for limit, have in (
        (limits.max_nodes, rows),
        (limits.max_qubits, len(born)),
        (limits.max_events, events),
    ):
        if limit is not None and have > limit:
            return None
    return Figures(
        nodes=rows,
        epochs=int((ops == _FENCE).sum()) + 1,
        peak_live_qubits=peak,
        caps=("CAP_ALLOC",) if len(born) else (),
    )


def verified(columns: Columns, *, limits: Limits | None = None) -> VerifiedProgram | None:
    """The verified program of ``columns`` where :func:`check` finds it clean (None
    otherwise: the verifier's walk of the graph view then names each finding).

    What a run reads is found on the columns: the epochs, the op counts (the rotations
    off a quarter turn counted as beyond a stabilizer simulation, as the verifier counts
    them), the peak of live qubits and the capabilities. The edges and REV segments,
    which only a walk in list order finds, are walked when first read
    (:class:`~qmk.qvm.walked.Walked`). Its graph is :meth:`Columns.graph_view`: its
    nodes made when read.
    """
    figures = check(columns, limits=limits)
    if figures is None:
        return None
    ops = columns.ops
    graph = columns.graph_view()
    walked = Walked(graph)
    fences = np.flatnonzero(ops == _FENCE).tolist()
    starts = [0, *(f + 1 for f in fences)]
    stops = [*fences, len(ops)]
    epochs = tuple(
        Epoch(index=k, nodes=tuple(range(a, b)), fence=fences[k] if k < len(fences) else None)
        for k, (a, b) in enumerate(zip(starts, stops, strict=True))
    )
    # each op's count, in the order first met: a count of each code and a search for
    # each of the few codes present (not a sort of a million rows)
    counts = np.bincount(ops, minlength=len(OP_NAMES))
    codes = np.flatnonzero(counts).tolist()
    codes.sort(key=lambda code: int(np.argmax(ops == code)))
    by_op = {OP_NAMES[c]: int(counts[c]) for c in codes}
    return VerifiedProgram(
        graph=graph,
        preds=walked.field("preds"),
        epochs=epochs,
        rev_segments=walked.field("rev_segments"),
        peak_live_qubits=figures.peak_live_qubits,
        counts=op_counts(by_op, _non_clifford(columns)),
        required_caps=figures.caps,
        columns=columns,
    )


def _non_clifford(columns: Columns) -> int:
    return len(non_clifford_rows(columns))


def non_clifford_rows(columns: Columns) -> np.ndarray:
    """The rows a stabilizer simulation cannot carry out, in order: ops that are never
    Clifford, and quarter-turn ops whose angle is off a multiple of pi/2
    (:func:`qmk.qvm.verify.is_clifford_node`)."""
    ops = columns.ops
    off = _CLIFFORD_NO[ops]
    quarter = np.flatnonzero(_QUARTER_TURN[ops])
    turns = columns.theta[quarter] / (np.pi / 2)
    off[quarter] = np.abs(turns - np.round(turns)) >= 1e-12
    return np.flatnonzero(off)


def operand_runs(columns: Columns) -> tuple[np.ndarray, np.ndarray]:
    """Each row's qubit count, and every row's qubits one row after another (an
    ``ALLOC_LQ`` or ``FREE_LQ`` row's range spelled out): the plan's qubit columns.
    The other rows' qubits are one mask of the operands (packed first, row by row), and
    the few ranges are inserted among them. (A sum a column, and ``compress`` of the
    flat operands: numpy's reduction along a row of three, and a two-dimensional mask,
    cost several times more.)"""
    qubits = columns.qubits
    held = qubits >= 0
    life = np.flatnonzero((columns.ops == _ALLOC) | (columns.ops == _FREE))
    held[life] = False
    sizes = np.zeros(len(held), dtype=np.int64)
    for column in range(held.shape[1]):
        sizes += held[:, column]
    spans = qubits[life, :2].astype(np.int64)
    lengths = spans[:, 1] - spans[:, 0]
    # the other rows' qubits before each range: the sums between ranges, summed up (a
    # range's own row holds none here, so an empty stretch sums to its 0)
    at = np.cumsum(np.add.reduceat(sizes, np.r_[0, life])[:-1])
    sizes[life] = lengths
    ranges = spread(spans[:, 0], lengths)
    flat = np.compress(held.ravel(), qubits.ravel()).astype(np.int64)
    return sizes, np.insert(flat, np.repeat(at, lengths), ranges)


def spread(firsts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The positions of groups laid out one after another: group ``i`` takes
    ``sizes[i]`` of them from ``firsts[i]``.

    >>> spread(np.array([0, 5]), np.array([2, 3])).tolist()
    [0, 1, 5, 6, 7]
    """
    return np.repeat(firsts - (np.cumsum(sizes) - sizes), sizes) + np.arange(int(sizes.sum()))


_CLIFFORD_NO = np.array([s.clifford is Clifford.NO for s in OPS.values()], dtype=bool)
_QUARTER_TURN = np.array([s.clifford is Clifford.QUARTER_TURN for s in OPS.values()], dtype=bool)


def _profile_parses(profile: str) -> bool:
    from qmk.qvm.profiles import ProfileError, parse_profile

    try:
        parse_profile(profile)
    except ProfileError:
        return False
    return True


#: Rows checked at a time.
BLOCK = 1 << 16


def _rows_ok(columns: Columns, start: int, stop: int, born: np.ndarray, dies: np.ndarray) -> bool:
    """Whether the rows ``start:stop`` that are no allocation or free are known ops with
    their operand counts, distinct operands packed first, their angles, and qubits
    live where they are used."""
    ops = columns.ops[start:stop]
    qubits = columns.qubits[start:stop]
    theta = columns.theta[start:stop]
    gates = (ops != _ALLOC) & (ops != _FREE)
    low = _LOW[ops]
    if (gates & (low < 0)).any() or _OTHER_CAP[ops].any():
        return False  # an op the column form does not check: the graph path judges it
    held = qubits >= 0
    used = held[:, 0].astype(np.int8)  # (column by column: numpy's row sums are slow)
    for column in range(1, held.shape[1]):
        used += held[:, column]
    if (gates & ((used < low) | (used > _HIGH[ops]))).any():
        return False
    if (gates & ((~held[:, 0] & held[:, 1]) | (~held[:, 1] & held[:, 2]))).any():
        return False  # operands packed first: a -1 never precedes a qubit
    angled = _ANGLE[ops]
    if (gates & (np.isnan(theta) == angled)).any() or not np.isfinite(theta[angled]).all():
        return False
    a, b, c = qubits[:, 0], qubits[:, 1], qubits[:, 2]
    if (gates & (((a == b) & held[:, 1]) | ((a == c) | (b == c)) & held[:, 2])).any():
        return False
    for column in range(qubits.shape[1]):
        use = gates & held[:, column]
        q = qubits[use, column].astype(np.int64)
        if (q >= len(born)).any():
            return False
        at = np.flatnonzero(use) + start
        if ((at <= born[q]) | (at >= dies[q])).any():
            return False
    return True


def _guards_ok(columns: Columns, guards: np.ndarray) -> bool:
    """Whether every guard term is well formed and reads an event recorded before its
    row, on a gate row (the verifier judges a guard on any other row), each event once
    in a guard, a guard's terms in one form (a single term in the simple one)."""
    ops, rows = columns.ops, len(columns.ops)
    if guards.ndim != 2 or guards.shape[1] != 4:
        return False
    at, event, equals, conj = (guards[:, k].astype(np.int64) for k in range(4))
    if ((at < 0) | (at >= rows)).any() or (np.diff(at) < 0).any():
        return False
    if ((equals != 0) & (equals != 1)).any() or ((conj != 0) & (conj != 1)).any():
        return False
    code = ops[at]
    if (_LOW[code] < 0).any() or _MEASURES[code].any() or (code == _FENCE).any():
        return False
    measured = _MEASURES[ops]
    if ((event < 0) | (event >= (np.cumsum(measured) - measured)[at])).any():
        return False
    if has_repeats(at * (rows + 1) + event):
        return False  # an event read twice by one guard
    starts = np.flatnonzero(np.r_[True, at[1:] != at[:-1]])
    sizes = np.diff(np.r_[starts, len(at)])
    if (np.repeat(conj[starts], sizes) != conj).any():
        return False
    return bool((conj[starts] | (sizes == 1)).all())


def _lifetimes(columns: Columns, limits: Limits) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Each qubit's allocating and freeing row, and the peak of live qubits, where every
    qubit is allocated once and freed once after; None otherwise."""
    ops = columns.ops
    life = np.flatnonzero((ops == _ALLOC) | (ops == _FREE))
    spans = columns.qubits[life].astype(np.int64)
    starts, stops = spans[:, 0], spans[:, 1]
    sizes = stops - starts
    if (sizes < 1).any() or (starts < 0).any():
        return None
    if limits.max_operands is not None and (sizes > limits.max_operands).any():
        return None
    is_alloc = ops[life] == _ALLOC
    count = int(sizes[is_alloc].sum())
    if (stops > count).any():
        return None
    born = np.full(count, -1, dtype=np.int64)
    dies = np.full(count, -1, dtype=np.int64)
    for target, which in ((born, is_alloc), (dies, ~is_alloc)):
        s, k = starts[which], sizes[which]
        index = np.repeat(s, k) + (np.arange(k.sum()) - np.repeat(np.cumsum(k) - k, k))
        if has_repeats(index):
            return None  # allocated (or freed) twice
        target[index] = np.repeat(life[which], k)
    if (born < 0).any() or (dies < 0).any() or (dies <= born).any():
        return None  # a qubit never allocated, or never freed (a leak), or freed first
    live = np.cumsum(np.where(is_alloc, sizes, -sizes))  # life rows are in row order
    return born, dies, int(live.max()) if len(live) else 0
