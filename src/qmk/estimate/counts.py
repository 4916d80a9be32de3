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

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from qmk.qec.errors import QECError
from qmk.qvm.graph import Graph, Node
from qmk.qvm.ops import OPS, Tally

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


class _Tracer:
    """The tracer's layer model (see the module docstring)."""

    __slots__ = ("ccz", "free", "index", "layers_r", "level", "m", "n_layers", "r", "t")

    def __init__(self) -> None:
        self.free: list[int] = []
        self.index: dict[str, int] = {}
        self.level: list[int] = []
        self.layers_r: list[int] = []
        self.n_layers = 0
        self.t = self.r = self.ccz = self.m = 0

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
            self.layers_r.append(1 if rotation else 0)
        elif rotation:
            self.layers_r[level] += 1
        self.level[q] = level + 1

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
            self.layers_r.append(0)
        for q in qs:
            self.level[q] = top + 1


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def count_nodes(nodes: Iterable[Node]) -> LogicalCounts:
    """Count ``nodes`` (in list order) the way the Q# tracer counts a program.

    Each op is counted by its ``tally`` in the op table (:class:`qmk.qvm.ops.Tally`).
    """
    tr = _Tracer()
    for node in nodes:
        spec = OPS.get(node.op)
        if spec is None:
            raise QECError.of("unknown-op", f"cannot count op {node.op!r} of node {node.id!r}")
        tally, vqs = spec.tally, node.vqs
        if tally is Tally.NOTHING:
            continue
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
    return LogicalCounts(
        num_qubits=len(tr.level),
        t_count=tr.t,
        rotation_count=tr.r,
        rotation_depth=sum(1 for r in tr.layers_r if r),
        ccz_count=tr.ccz,
        measurement_count=tr.m,
    )


def count_graph(graph: Graph) -> LogicalCounts:
    """QRE logical counts of a QVM graph (see the module docstring)."""
    return count_nodes(graph.nodes)
