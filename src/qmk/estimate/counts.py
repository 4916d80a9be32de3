"""Logical resource counts, as the Q# resource-estimation tracer counts them.

:class:`LogicalCounts` holds QRE's ``logicalCounts`` (``numQubits``,
``tCount``, ``rotationCount``, ``rotationDepth``, ``cczCount``, ``ccixCount``,
``measurementCount``). :func:`count_graph` walks a QVM graph in list order
with the tracer's model (the ``LogicalCounter`` of the open-source estimator,
``source/resource_estimator/src/counts.rs`` in microsoft/qsharp):

- qubits come from a LIFO free list, so ``numQubits`` is the peak number live;
- a rotation by theta is checked against the nearest multiple m of pi/4: when
  ``|m pi/4 - theta| <= 2**-52`` it is a T gate for odd m and nothing (a Clifford)
  for even m, otherwise a rotation; the axis does not matter;
- T, TDG and rotations occupy one layer on their qubit, CCX/CCZ one layer on all
  three; two-qubit Cliffords align their qubits' layers; one-qubit Cliffords,
  Paulis and resets cost nothing; ``rotationDepth`` is the number of layers that
  hold a rotation.

QVM ops beyond Q#'s gate set are counted as their standard decomposition:
``MEASURE_ANGLE`` is a Z rotation then a measurement, ``MEASURE_BELL`` a CNOT
and two measurements, ``INJECT_T_STATE`` a T gate, ``TELEPORT_CNOT`` and
``OPEN_CHAN`` a two-qubit Clifford. Guarded nodes are counted as if they ran
(an upper bound; the tracer follows one run).

>>> from qmk.qvm.graph import Graph, Node, Resources
>>> g = Graph(nodes=(
...     Node(id="a", op="ALLOC_LQ", args={"n": 2}, vqs=("p", "q")),
...     Node(id="t", op="APPLY_T", vqs=("p",)),
...     Node(id="r", op="APPLY_RZ", args={"theta": 0.1}, vqs=("q",)),
...     Node(id="c", op="APPLY_RZ", args={"theta": 1.5707963267948966}, vqs=("q",)),
...     Node(id="m", op="MEASURE_Z", vqs=("p",), produces=("e",)),
...     Node(id="f", op="FREE_LQ", vqs=("p", "q"))),
...     resources=Resources(vqs=("p", "q"), events=("e",)), caps=("CAP_ALLOC",))
>>> count_graph(g).to_json()  # doctest: +NORMALIZE_WHITESPACE
{'numQubits': 2, 'tCount': 1, 'rotationCount': 1, 'rotationDepth': 1, 'cczCount': 0,
 'ccixCount': 0, 'measurementCount': 1}
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from qmk.estimate.tallies import TALLIES, Tally
from qmk.qec.errors import QECError
from qmk.qvm.errors import UnrollError
from qmk.qvm.graph import CALL, REPEAT, Graph, Node
from qmk.qvm.limits import DEFAULT_MAX_UNROLLED_NODES
from qmk.qvm.ops import OPS

#: QRE's field names, in QRE's order.
FIELDS: tuple[str, ...] = (
    "numQubits",
    "tCount",
    "rotationCount",
    "rotationDepth",
    "cczCount",
    "ccixCount",
    "measurementCount",
)
_QUARTER = math.pi / 4.0
#: The most turns of one REPEAT row the tracer compares for a period, and the most
#: layers above a body's lowest one it compares them by. Past either it traces on,
#: each turn's rows charged to ``max_steps``.
MAX_PERIOD_SEARCH = 4096
MAX_PERIOD_WINDOW = 1024
_EPSILON = 2.0**-52


@dataclass(frozen=True, slots=True, kw_only=True)
class LogicalCounts:
    """Logical resources of a program, QRE's ``logicalCounts``.

    Raises:
        QECError: ``QC103 bad-parameter`` for a negative or non-integer count, or a
            rotation depth of zero with rotations.
    """

    num_qubits: int
    t_count: int = 0
    rotation_count: int = 0
    rotation_depth: int = 0
    ccz_count: int = 0
    ccix_count: int = 0
    measurement_count: int = 0

    def __post_init__(self) -> None:
        for name, value in zip(FIELDS, self._values(), strict=True):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise QECError.of(
                    "bad-parameter",
                    f"logical counts: {name} must be a whole number >= 0, got {value!r}",
                    field=name,
                )

    def _values(self) -> tuple[int, ...]:
        return (
            self.num_qubits,
            self.t_count,
            self.rotation_count,
            self.rotation_depth,
            self.ccz_count,
            self.ccix_count,
            self.measurement_count,
        )

    def to_json(self) -> dict[str, int]:
        """QRE's ``logicalCounts`` object."""
        return dict(zip(FIELDS, self._values(), strict=True))

    @classmethod
    def from_json(cls, data: Any) -> LogicalCounts:
        """Counts from QRE's JSON (``numQubits`` required, the rest default to 0).

        Raises:
            QECError: ``QC103 bad-parameter`` for a non-object, an unknown field
                (QRE denies unknown fields) or a bad value.
        """
        if not isinstance(data, Mapping):
            raise QECError.of("bad-parameter", "logical counts must be a JSON object")
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise QECError.of(
                "bad-parameter",
                f"logical counts: unknown field {unknown[0]!r}; known: {', '.join(FIELDS)}",
                field=unknown[0],
            )
        if "numQubits" not in data:
            raise QECError.of("bad-parameter", "logical counts: missing field 'numQubits'")
        names = (
            "num_qubits",
            "t_count",
            "rotation_count",
            "rotation_depth",
            "ccz_count",
            "ccix_count",
            "measurement_count",
        )
        return cls(**{name: data.get(key, 0) for name, key in zip(names, FIELDS, strict=True)})


def rotation_kind(theta: float) -> str:
    """``"clifford"``, ``"t"`` or ``"rotation"`` for a rotation by ``theta``, as the tracer.

    >>> [rotation_kind(x * math.pi / 4) for x in (0, 1, 2, 3, -1)]
    ['clifford', 't', 'clifford', 't', 't']
    >>> rotation_kind(0.1), rotation_kind(math.pi / 4 + 1e-12)
    ('rotation', 'rotation')
    """
    multiple = theta / _QUARTER
    multiple = math.floor(multiple + 0.5) if multiple >= 0 else -math.floor(-multiple + 0.5)
    if abs(multiple * _QUARTER - theta) <= _EPSILON:
        return "t" if int(multiple) % 8 % 2 == 1 else "clifford"
    return "rotation"


class _Run:
    """Layers the tracer skipped over in one jump (:meth:`_Tracer.repeat`): ``pattern``
    (1 where a layer holds a rotation) over ``size`` layers from ``start``, with the
    layers a later rotation changed in ``changed``."""

    __slots__ = ("changed", "pattern", "size", "start")

    def __init__(self, start: int, pattern: list[int], size: int) -> None:
        self.start, self.pattern, self.size = start, pattern, size
        self.changed: dict[int, int] = {}

    def value(self, layer: int) -> int:
        got = self.changed.get(layer)
        return got if got is not None else self.pattern[(layer - self.start) % len(self.pattern)]

    def cut(self, end: int) -> None:
        """Drop the layers from ``end`` up (a later jump takes them over)."""
        self.size = end - self.start
        self.changed = {layer: v for layer, v in self.changed.items() if layer < end}

    def nonzero(self) -> int:
        whole, part = divmod(self.size, len(self.pattern))
        total = sum(map(bool, self.pattern)) * whole + sum(map(bool, self.pattern[:part]))
        for layer, value in self.changed.items():
            total += bool(value) - bool(self.pattern[(layer - self.start) % len(self.pattern)])
        return total


class _Tracer:
    """The tracer's layer model (see the module docstring), REPEAT rows followed folded.

    Layers are ``tail`` (from ``tail_start`` to ``n_layers``) and, below it, ``runs``:
    lists of layers and :class:`_Run` jumps, by start. A REPEAT body is traced turn by
    turn until a turn ends in the state of an earlier one, shifted up by whole layers
    (:meth:`signature`); from there each period repeats the same steps, so the tracer
    jumps over the whole periods at once and traces the turns left.
    """

    __slots__ = (
        "bodies",
        "budget",
        "ccz",
        "free",
        "index",
        "level",
        "m",
        "n_layers",
        "r",
        "runs",
        "starts",
        "t",
        "tail",
        "tail_start",
    )

    def __init__(self, budget: int | None) -> None:
        self.free: list[int] = []
        self.index: dict[str, int] = {}
        self.level: list[int] = []
        self.tail: list[int] = []
        self.tail_start = 0
        self.runs: list[list[int] | _Run] = []
        self.starts: list[int] = []
        self.n_layers = 0
        self.t = self.r = self.ccz = self.m = 0
        self.budget = budget
        #: Each block's placeholder qubits and its body bound on them, less the rows
        #: that count nothing (:func:`count_graph`).
        self.bodies: dict[str, tuple[tuple[str, ...], tuple[Node, ...]]] | None = None

    def alloc(self, name: str) -> None:
        if self.free:
            self.index[name] = self.free.pop()
        else:
            self.index[name] = len(self.level)
            self.level.append(0)

    def release(self, name: str) -> None:
        index = self.index.pop(name, None)
        if index is not None:
            self.free.append(index)

    def _q(self, name: str) -> int:
        index = self.index.get(name)
        if index is None:  # used without ALLOC_LQ (unverified input): allocate implicitly
            self.alloc(name)
            index = self.index[name]
        return index

    def _single(self, name: str, rotation: bool) -> None:
        q = self._q(name)
        level = self.level[q]
        if level == self.n_layers:
            self.n_layers += 1
            self.tail.append(1 if rotation else 0)
        elif rotation:
            if level >= self.tail_start:
                self.tail[level - self.tail_start] += 1
            else:
                self._bump_below(level)
        self.level[q] = level + 1

    def _run_at(self, layer: int) -> tuple[int, list[int] | _Run]:
        at = bisect.bisect_right(self.starts, layer) - 1
        return self.starts[at], self.runs[at]

    def _bump_below(self, layer: int) -> None:
        start, run = self._run_at(layer)
        if isinstance(run, _Run):
            run.changed[layer] = run.value(layer) + 1
        else:
            run[layer - start] += 1

    def layer(self, layer: int) -> int:
        """How many rotations layer ``layer`` holds (1 for any number, past a jump)."""
        if layer >= self.tail_start:
            return self.tail[layer - self.tail_start]
        start, run = self._run_at(layer)
        return run.value(layer) if isinstance(run, _Run) else run[layer - start]

    def t_gate(self, name: str) -> None:
        self.t += 1
        self._single(name, False)

    def rz(self, theta: Any, name: str) -> None:
        kind = rotation_kind(float(theta)) if _is_number(theta) else "rotation"
        if kind == "t":
            self.t_gate(name)
        elif kind == "rotation":
            self.r += 1
            self._single(name, True)

    def two(self, a: str, b: str) -> None:
        qa, qb = self._q(a), self._q(b)
        top = max(self.level[qa], self.level[qb])
        self.level[qa] = self.level[qb] = top

    def three(self, a: str, b: str, c: str) -> None:
        self.ccz += 1
        qs = (self._q(a), self._q(b), self._q(c))
        top = max(self.level[q] for q in qs)
        if top == self.n_layers:
            self.n_layers += 1
            self.tail.append(0)
        for q in qs:
            self.level[q] = top + 1

    def counts(self) -> LogicalCounts:
        """The counts of what was traced."""
        return LogicalCounts(
            num_qubits=len(self.level),
            t_count=self.t,
            rotation_count=self.r,
            rotation_depth=self.rotation_depth(),
            ccz_count=self.ccz,
            measurement_count=self.m,
        )

    def rotation_depth(self) -> int:
        depth = sum(map(bool, self.tail))
        for run in self.runs:
            depth += run.nonzero() if isinstance(run, _Run) else sum(map(bool, run))
        return depth

    def spend(self, steps: int) -> None:
        if self.budget is None:
            return
        self.budget -= steps
        if self.budget < 0:
            raise UnrollError.of(
                "unrolled-too-large",
                "counting this program's REPEAT rows would trace more rows one by one than "
                "Limits.max_unrolled_nodes allows: a body whose turns do not settle into a "
                "period (an unbalanced body, or qubits whose layers climb at different rates)",
            )

    # -- REPEAT rows

    def repeat(self, node: Node) -> None:
        """Trace ``count`` turns of a REPEAT row's body, jumping over whole periods."""
        count = node.args.get("count")
        if type(count) is not int or count < 1:
            raise QECError.of("bad-parameter", f"REPEAT row {node.id!r} has no count >= 1")
        body = _body_of(node.body)
        seen: dict[tuple[Any, ...], tuple[int, tuple[int, ...], int]] = {}
        turn, searches = 0, 0
        while turn < count:
            if searches < MAX_PERIOD_SEARCH:
                found = self.signature(body)
                if found is not None:
                    searches += 1
                    key, low, active = found
                    hit = seen.setdefault(key, (turn, (self.t, self.r, self.ccz, self.m), low))
                    periods = (count - turn) // (turn - hit[0]) if hit[0] != turn else 0
                    if periods:
                        self.jump(hit, low, active, periods)
                        turn += periods * (turn - hit[0])
                        searches = MAX_PERIOD_SEARCH
                        continue
            self.spend(body.rows)
            self.trace(node.body)
            turn += 1

    def signature(self, body: _Body) -> tuple[tuple[Any, ...], int, list[int]] | None:
        """The state a body's turn depends on, up to a shift of whole layers of its active
        qubits (:class:`_Body`); their lowest layer; those qubits (indices). None where
        the layers above their lowest are more than :data:`MAX_PERIOD_WINDOW`."""
        index, level, free = self.index, self.level, self.free
        active = [index[name] for name in body.active if name in index]
        still = [index[name] for name in body.still if name in index]
        spare = free[-body.allocs :] if body.allocs else []
        (active if body.active_allocs else still).extend(spare)
        levels = [level[q] for q in active]
        low = min(levels) if levels else self.n_layers
        top = self.n_layers
        if top - low > MAX_PERIOD_WINDOW:
            return None
        key = (
            tuple(name in index for name in body.active),
            tuple(name in index for name in body.still),
            tuple(active),
            tuple(still),
            len(free),
            len(level),
            tuple(value - low for value in levels),
            tuple(level[q] for q in still),
            top - low,
            tuple(bool(self.layer(layer)) for layer in range(low, top)),
        )
        return key, low, active

    def jump(
        self,
        hit: tuple[int, tuple[int, ...], int],
        low: int,
        relevant: list[int],
        periods: int,
    ) -> None:
        """Jump ``periods`` periods ahead from a turn whose state repeats ``hit``'s shifted
        by ``low - hit[2]`` layers: the counts multiply, the layers from ``low`` up move
        ``periods`` shifts higher and the period's layers fill the gap."""
        _, before, low_before = hit
        shift = low - low_before
        if shift and low < self.tail_start:
            self.untail(low)
        t, r, ccz, m = before
        self.t += periods * (self.t - t)
        self.r += periods * (self.r - r)
        self.ccz += periods * (self.ccz - ccz)
        self.m += periods * (self.m - m)
        if not shift:
            return
        pattern = [1 if self.layer(layer) else 0 for layer in range(low_before, low)]
        window = self.tail[low - self.tail_start :]
        del self.tail[low - self.tail_start :]
        if self.tail:
            self.runs.append(self.tail)
            self.starts.append(self.tail_start)
        self.runs.append(_Run(low, pattern, periods * shift))
        self.starts.append(low)
        self.tail, self.tail_start = window, low + periods * shift
        self.n_layers += periods * shift
        for q in relevant:
            self.level[q] += periods * shift

    def untail(self, low: int) -> None:
        """Make the layers from ``low`` up the tail: a nested body's jumps left runs above
        the lowest layer of an enclosing body's qubits, and that body's jump moves every
        layer from there up. At most :data:`MAX_PERIOD_WINDOW` layers are written out."""
        window = [self.layer(layer) for layer in range(low, self.tail_start)]
        at = bisect.bisect_right(self.starts, low) - 1
        start, run = self.starts[at], self.runs[at]
        del self.runs[at + 1 :], self.starts[at + 1 :]
        if start == low:
            del self.runs[at], self.starts[at]
        elif isinstance(run, _Run):
            run.cut(low)
        else:
            del run[low - start :]
        self.tail, self.tail_start = window + self.tail, low

    def trace(self, nodes: Iterable[Node]) -> None:
        """Trace ``nodes`` in list order, REPEAT rows folded."""
        tallies, nothing, t_gate, two = _TALLIES, Tally.NOTHING, Tally.T, Tally.TWO_QUBIT
        for node in nodes:
            tally = tallies.get(node.op)
            if tally is nothing:
                continue
            if tally is t_gate:  # the common steps first: this loop runs per node
                self.t_gate(node.vqs[0])
            elif tally is two:
                vqs = node.vqs
                self.two(vqs[0], vqs[1])
            elif tally is not None:
                _count_one(self, tally, node)
            elif node.op == REPEAT:
                self.repeat(node)
            elif node.op == CALL and self.bodies is not None:
                self.call(node)
            else:
                raise QECError.of("unknown-op", f"cannot count op {node.op!r} of node {node.id!r}")

    def call(self, node: Node) -> None:
        """Trace a CALL row: its block's body, bound once on placeholder qubits
        (:attr:`bodies`), each placeholder this call's qubit. A call of no block, or
        with another count of qubits, counts nothing (the unrolling leaves it out)."""
        assert self.bodies is not None
        name = node.args.get("block")
        known = self.bodies.get(name) if type(name) is str else None
        if known is None or len(known[0]) != len(node.vqs):
            return
        places, body = known
        index = self.index
        for place, q in zip(places, node.vqs, strict=True):
            at = index.get(q)
            index[place] = self._q(q) if at is None else at
        self.trace(body)


#: Each op's tally, looked up once a node.
_TALLIES = dict(TALLIES)
#: Tallies that join their qubits' layers, and those that may raise a qubit's layer.
_JOINS = frozenset({Tally.TWO_QUBIT, Tally.CCZ, Tally.BELL_MEASURE})
_RAISES = frozenset({Tally.T, Tally.ROTATION, Tally.CCZ, Tally.ROTATION_MEASURE})


@dataclass(frozen=True, slots=True)
class _Body:
    """What the tracer's period search needs of a REPEAT body (nested bodies too).

    Attributes:
        active: the qubits joined (by two- and three-qubit ops) to one whose layer a
            node of the body may raise, sorted. Their layers move turn by turn.
        still: the body's other qubits, sorted. Once aligned, their layers stay put.
        allocs: how many qubits the body allocates (how deep it reaches into the free list).
        active_allocs: whether an allocated qubit is active.
        rows: the body's rows, nested bodies' once (the steps one turn is charged).
    """

    active: tuple[str, ...]
    still: tuple[str, ...]
    allocs: int
    active_allocs: bool
    rows: int


def _body_of(body: Iterable[Node]) -> _Body:
    """The :class:`_Body` of a REPEAT row's body."""
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.setdefault(name, name) != name:
            name = parent[name]
        return name

    raised: set[str] = set()
    allocated: set[str] = set()
    allocs = rows = 0
    stack = [iter(body)]
    while stack:
        node = next(stack[-1], None)
        if node is None:
            stack.pop()
            continue
        rows += 1
        if node.body:
            stack.append(iter(node.body))
        spec = OPS.get(node.op)
        for name in node.vqs:
            root(name)
        if spec is None:
            continue
        tally = _TALLIES[spec.name]
        if tally is Tally.ALLOC:
            allocs += len(node.vqs)
            allocated.update(node.vqs)
        if tally in _JOINS:
            for other in node.vqs[1:]:
                parent[root(other)] = root(node.vqs[0])
        if tally in _RAISES and not _clifford_angle(node, tally):
            raised.update(node.vqs)
    hot = {root(name) for name in raised}
    active = tuple(sorted(name for name in parent if root(name) in hot))
    still = tuple(sorted(name for name in parent if root(name) not in hot))
    return _Body(active, still, allocs, any(name in hot for name in map(root, allocated)), rows)


def _clifford_angle(node: Node, tally: Tally) -> bool:
    """Whether a rotation's angle makes it a Clifford the tracer counts as nothing."""
    if tally is not Tally.ROTATION:
        return False
    theta = node.args.get("theta")
    if not isinstance(theta, int | float) or not _is_number(theta):
        return False
    return rotation_kind(float(theta)) == "clifford"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count_one(tr: _Tracer, tally: Tally, node: Node) -> None:
    """Count one node by its ``tally`` (:data:`qmk.estimate.tallies.TALLIES`)."""
    vqs = node.vqs
    if tally is Tally.NOTHING:
        return
    if tally is Tally.T:
        tr.t_gate(vqs[0])
    elif tally is Tally.ROTATION:
        tr.rz(node.args.get("theta"), vqs[0])
    elif tally is Tally.TWO_QUBIT:
        tr.two(vqs[0], vqs[1])
    elif tally is Tally.MEASURE:
        tr._q(vqs[0])
        tr.m += 1
    elif tally is Tally.CCZ:
        tr.three(vqs[0], vqs[1], vqs[2])
    elif tally is Tally.ALLOC:
        for vq in vqs:
            tr.alloc(vq)
    elif tally is Tally.FREE:
        for vq in vqs:
            tr.release(vq)
    elif tally is Tally.ROTATION_MEASURE:
        tr.rz(node.args.get("angle"), vqs[0])
        tr.m += 1
    elif tally is Tally.BELL_MEASURE:
        tr.two(vqs[0], vqs[1])
        tr.m += 2
    else:  # pragma: no cover - a Tally member added without its counting rule
        raise AssertionError(f"no counting rule for {tally}")


def count_nodes(
    nodes: Iterable[Node], *, max_steps: int | None = DEFAULT_MAX_UNROLLED_NODES
) -> LogicalCounts:
    """Count ``nodes`` (in list order) the way the Q# tracer counts a program.

    Each op is counted by its tally (:data:`qmk.estimate.tallies.TALLIES`).
    REPEAT rows are counted folded, exactly as their unrolling would be: a body is traced
    until its turns repeat, up to a shift of whole layers, then the counts multiply.

    Raises:
        UnrollError: ``unrolled-too-large`` when the tracer would follow more than
            ``max_steps`` steps through bodies whose turns do not settle.
    """
    tr = _Tracer(max_steps)
    tr.trace(nodes)
    return tr.counts()


def count_graph(graph: Graph) -> LogicalCounts:
    """QRE logical counts of a QVM graph (see the module docstring); a call counts as its
    block's body, bound where it is called.

    A CALL row outside REPEAT rows is traced on its block's body bound once, on
    placeholder qubits that the call maps to its own (:meth:`_Tracer.call`): the same
    steps as the body written out, with no rows made per call (rows that count nothing
    left out once). A REPEAT row's calls
    are bound in its body, which the period search reads as rows."""
    if not graph.blocks:
        return count_nodes(graph.nodes)
    from dataclasses import replace

    from qmk.qvm.fold import block_bound, calls_bound

    tr = _Tracer(DEFAULT_MAX_UNROLLED_NODES)
    tr.bodies = {}
    nothing = Tally.NOTHING
    for name, block in {block.id: block for block in reversed(graph.blocks)}.items():
        # placeholders no qubit name can be (names hold no NUL)
        places = tuple(f"\0{name}\0{i}" for i in range(len(block.vqs)))
        call = Node(id=name, op=CALL, args={"block": name}, vqs=places)
        rows = block_bound(graph, call)
        tr.bodies[name] = (places, tuple(n for n in rows if _TALLIES.get(n.op) is not nothing))
    tr.trace(
        calls_bound(replace(graph, nodes=(node,))).nodes[0] if node.op == REPEAT else node
        for node in graph.nodes
    )
    return tr.counts()
