"""Lowering a verified QVM program into engine steps, with its noise and schedule.

A :class:`Plan` is what every execution mode runs. Its steps (:class:`PlanSteps`) are
the program's nodes in list order (a topological order of the DAG) as columns: each
step's op, kind and qubits, and the engine gate a gate step applies (:func:`gate_of`).
It holds the logical-noise locations the QEC layer puts around each step, and the ASAP
schedule in logical cycles that telemetry reports. The QVM semantics live
here, in one place (see docs/qvm.md, "Execution semantics"):

- ``RX/RY/RZ(theta)``: radians, ``RZ(t) = exp(-i t Z / 2)``.
- ``MEASURE_Z/X/Y``: outcome 0 for the +1 eigenstate; ``MEASURE_ANGLE(angle)``
  measures in ``(|0> +/- e^{i angle}|1>)/sqrt2``, 0 for ``+``; ``MEASURE_BELL(a, b)``
  gives XX parity then ZZ parity. Measurement keeps the qubit.
- ``INJECT_T_STATE q``: q becomes ``T|+>`` (one magic state drawn).
- ``OPEN_CHAN(a, b)``: a and b become ``|Phi+>``; with fidelity F < 1, b then gets X,
  Y or Z each with probability (1-F)/3 (a Werner state).
- ``USE_CHAN`` and ``CLOSE_CHAN`` change no qubit: telemetry records each use (by
  ``semantic``) and the channel's end.
- ``TELEPORT_CNOT(c, t)`` acts as CNOT; its gadget (a Bell pair, two ancillas, two
  measurements and Pauli corrections) costs extra logical cycles and ancilla qubits,
  and its errors reach the data as X on t and Z on c.
- A guarded node runs when every guard term holds; one that does not run changes
  nothing and produces no event; an event nothing produced reads 0.

A composite op (``MEASURE_ANGLE``, ``MEASURE_BELL``, ``INJECT_T_STATE``, ``OPEN_CHAN``,
``TELEPORT_CNOT``) is carried out as its expansion in the op table
(:data:`qmk.qvm.expansions.EXPANSIONS`). :func:`expand` resolves it for one node, with
qubits and events by name and numbers from the node's arguments. The result is the
calls that the trajectories, the batch circuits and the neutral-atom compiler each
carry out. So the three read one expansion, not three copies.
"""

from __future__ import annotations

import itertools
import operator
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from qmk.arrays import distinct
from qmk.engines.gates import GATES
from qmk.execution import asap
from qmk.execution.locations import LocationRows, Locations
from qmk.execution.request import canonical_profile
from qmk.qvm.columns import spread
from qmk.qvm.expansions import EXPANSIONS, Micro, arg_value, measures
from qmk.qvm.graph import Node, gc_paused
from qmk.qvm.ops import OPS, Exec
from qmk.qvm.pairs import Pairs
from qmk.qvm.verify import VerifiedProgram, is_clifford_node

if TYPE_CHECKING:
    from qmk.qec.logical import Calibration
    from qmk.qec.noise import NoiseModel
    from qmk.qec.params import QubitParams

#: QVM gate op -> engine gate name: every op the executor runs as one engine gate.
GATE_OF: Mapping[str, str] = MappingProxyType(
    {name: spec.gate for name, spec in OPS.items() if spec.kind is Exec.GATE and spec.gate}
)

#: Measurement op -> basis.
BASIS_OF: Mapping[str, str] = MappingProxyType(
    {name: spec.basis for name, spec in OPS.items() if spec.kind is Exec.MEASURE and spec.basis}
)

#: Ops that change no qubit; the executor records them in telemetry only.
BOOKKEEPING = frozenset(name for name, spec in OPS.items() if spec.kind is Exec.NONE)

#: Ancilla qubits of the TELEPORT_CNOT gadget (the two halves of its Bell pair). Its
#: logical cycles come from the op table.
TELEPORT_ANCILLAS = 2


class Call(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One step of a node's expansion, resolved: on qubits and events by name.

    ``kind`` is the table's :class:`~qmk.qvm.expansions.Micro`, less ``UNDO``: that becomes
    the adjoint gates it stands for, each marked ``undo`` (a consumer that never looks
    at the qubits again may leave them out). ``event`` is what a ``MEASURE`` records,
    ``fidelity`` a ``WERNER`` step's.

    Not tracked by the cyclic garbage collector (``gc=False``): it holds an enum member,
    strings, numbers and tuples of them, none of which can lead back to it, so it is in
    no reference cycle.
    """

    kind: Micro
    qubits: tuple[str, ...]
    gate: str = ""
    params: tuple[float, ...] = ()
    event: str = ""
    fidelity: float = 1.0
    undo: bool = False


def expand(node: Node) -> tuple[Call, ...]:
    """The node's op's expansion (:data:`~qmk.qvm.expansions.EXPANSIONS`) for this node;
    empty for an op that is not a composite.

    >>> from qmk.qvm.graph import Node
    >>> node = Node(id="m", op="MEASURE_ANGLE", vqs=("q",), produces=("e",), args={"angle": 0.5})
    >>> [(c.kind.value, c.gate or c.event, c.params, c.undo) for c in expand(node)]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('gate', 'rz', (-0.5,), False), ('gate', 'h', (), False), ('measure', 'e', (), False),
     ('gate', 'h', (), True), ('gate', 'rz', (0.5,), True)]
    """
    spec = OPS[node.op]
    calls: list[Call] = []
    for micro in EXPANSIONS.get(spec.name, ()):
        qubits = tuple(node.vqs[q] for q in micro.qubits)
        number = 0.0 if micro.arg is None else arg_value(spec, node.args, micro.arg)
        if micro.kind is Micro.GATE:
            params = (-number if micro.negate else number,) if micro.arg is not None else ()
            calls.append(Call(kind=Micro.GATE, qubits=qubits, gate=micro.gate or "", params=params))
        elif micro.kind is Micro.MEASURE:
            calls.append(Call(kind=Micro.MEASURE, qubits=qubits, event=node.produces[micro.event]))
        elif micro.kind is Micro.WERNER:
            calls.append(Call(kind=Micro.WERNER, qubits=qubits, fidelity=number))
        elif micro.kind is Micro.RESET:
            calls.append(Call(kind=Micro.RESET, qubits=qubits))
        else:  # UNDO: the adjoints of the gates so far, last first
            for done in [c for c in calls if c.kind is Micro.GATE][::-1]:
                gate, inverse = GATES[done.gate].adjoint(done.params)
                calls.append(
                    Call(kind=Micro.GATE, qubits=done.qubits, gate=gate, params=inverse, undo=True)
                )
    return tuple(calls)


class PlanSteps:
    """A plan's steps as columns of its nodes: no object a step.

    Step ``k`` is node ``k`` (:attr:`nodes`). What the executor does with it is its
    kind (:attr:`kinds`, by the op table), and a consumer reads the columns it needs
    (:attr:`op_codes`, :attr:`qubit_columns`, :func:`gate_codes`, :func:`gate_of`,
    :func:`expand`). ``names`` are the program's qubits (its resources), which the
    steps' qubits index.
    """

    __slots__ = (
        "_firsts",
        "_index",
        "_kinds",
        "_measured",
        "_ops",
        "_qubits",
        "names",
        "nodes",
        "theta",
    )

    def __init__(self, nodes: tuple[Node, ...], names: tuple[str, ...]) -> None:
        self.nodes, self.names = nodes, names
        self._kinds: tuple[Exec, ...] | None = None
        self._qubits: tuple[np.ndarray, np.ndarray] | None = None
        self._firsts: np.ndarray | None = None
        self._ops: tuple[np.ndarray, tuple[str, ...]] | None = None
        self._index: dict[str, int] | None = None
        #: Each step's angle, where the steps are a column program's (None: the nodes').
        self.theta: np.ndarray | None = None
        #: Which steps measure, where the steps are a column program's (None: the nodes').
        self._measured: np.ndarray | None = None

    @property
    def qubit_index(self) -> Mapping[str, int]:
        """Each of :attr:`names`' index (made once)."""
        index = self._index
        if index is None:
            index = self._index = {name: i for i, name in enumerate(self.names)}
        return index

    @property
    def op_codes(self) -> tuple[np.ndarray, tuple[str, ...]]:
        """Each step's op as a code into the distinct ops, in the order first met (made
        once, with :attr:`kinds`; read-only)."""
        columns = self._ops
        if columns is None:
            columns = self._read_ops()[0]
        return columns

    @property
    def qubit_columns(self) -> tuple[np.ndarray, np.ndarray]:
        """Each step's qubit count, and every step's qubits one step after another, as
        indices into :attr:`names` (made once; read-only)."""
        columns = self._qubits
        if columns is None:
            vqs = list(map(_NODE_VQS, self.nodes))
            sizes = np.fromiter(map(len, vqs), np.int64, len(vqs))
            flat = itertools.chain.from_iterable(vqs)
            qubits = np.fromiter(
                map(self.qubit_index.__getitem__, flat), np.int64, int(sizes.sum())
            )
            sizes.setflags(write=False)
            qubits.setflags(write=False)
            columns = self._qubits = (sizes, qubits)
        return columns

    def qubits_of(self, picked: np.ndarray) -> np.ndarray:
        """The qubits of the steps ``picked`` (a mask of the steps), one step after
        another, as :attr:`qubit_columns` holds them."""
        sizes, qubits = self.qubit_columns
        firsts = self._firsts
        chosen = int(np.count_nonzero(picked))
        if firsts is None and min(chosen, len(sizes) - chosen) * 8 < len(sizes):
            # (several read a few steps, or all but a few: :func:`picked_runs` by position)
            firsts = self._firsts = np.cumsum(sizes) - sizes
        return picked_runs(qubits, sizes, picked, firsts)

    @property
    def kinds(self) -> tuple[Exec, ...]:
        """Each step's kind: what the executor does for its op, by the op table (made
        once, with :attr:`op_codes`)."""
        kinds = self._kinds
        if kinds is None and self._ops is not None:  # a column program's: off the codes
            codes, ops = self._ops
            kind_of = [STEP_KINDS[op] for op in ops]
            kinds = self._kinds = tuple(map(kind_of.__getitem__, codes.tolist()))
        elif kinds is None:
            kinds = self._read_ops()[1]
        return kinds

    def kind(self, index: int) -> Exec:
        """Step ``index``'s kind (:attr:`kinds`), without making them all."""
        kinds = self._kinds
        if kinds is not None:
            return kinds[index]
        codes, ops = self.op_codes
        return STEP_KINDS[ops[codes[index]]]

    def kind_mask(self, kind: Exec) -> np.ndarray:
        """Which steps are of ``kind`` (:attr:`kinds`), off :attr:`op_codes`."""
        codes, ops = self.op_codes
        return np.array([STEP_KINDS[op] is kind for op in ops], dtype=bool)[codes]

    def _read_ops(self) -> tuple[tuple[np.ndarray, tuple[str, ...]], tuple[Exec, ...]]:
        """:attr:`op_codes` and :attr:`kinds`, from one read of each node's op (every run
        reads both: the plan walk the kinds, the router and the lowering the codes)."""
        ops = list(map(_NODE_OP, self.nodes))
        distinct = tuple(dict.fromkeys(ops))
        code = dict(zip(distinct, itertools.count()))
        codes = np.fromiter(map(code.__getitem__, ops), np.int64, len(ops))
        codes.setflags(write=False)
        columns = self._ops = (codes, distinct)
        kinds = self._kinds = tuple(map(STEP_KINDS.__getitem__, ops))
        return columns, kinds

    @classmethod
    def of_columns(cls, nodes: tuple[Node, ...], names: tuple[str, ...], columns: Any) -> PlanSteps:
        """The steps of the nodes of ``columns`` (:class:`~qmk.qvm.columns.Columns`,
        whose graph view ``nodes`` is), their op codes, kinds and qubits read off the
        columns rather than the nodes."""
        from qmk.qvm.columns import OP_NAMES, operand_runs

        steps = cls(nodes, names)
        rows = np.asarray(columns.ops, dtype=np.intp)
        # the distinct ops (few: a search each), in the order first met
        present = np.flatnonzero(np.bincount(rows, minlength=len(OP_NAMES)))
        first = [int(np.argmax(rows == code)) for code in present.tolist()]
        codes = present[np.argsort(first)]
        renumber = np.zeros(len(OP_NAMES), dtype=np.int64)
        renumber[codes] = np.arange(len(codes))
        op_codes = renumber[rows]
        op_codes.setflags(write=False)
        steps._ops = (op_codes, tuple(OP_NAMES[c] for c in codes.tolist()))
        sizes, qubits = operand_runs(columns)
        sizes.setflags(write=False)
        qubits.setflags(write=False)
        steps._qubits = (sizes, qubits)
        steps.theta = columns.theta
        steps._measured = _MEASURE_CODES[rows]
        return steps

    def recorded(self, picked: np.ndarray) -> list[str]:
        """The event each step ``picked`` (a mask of steps that measure) records first,
        in order, without making their nodes where the steps are a column program's:
        there the ``k``-th measurement records ``m<k>``
        (:class:`~qmk.qvm.columns.Columns`)."""
        measured = self._measured
        if measured is None:
            return [node.produces[0] for node in itertools.compress(self.nodes, picked.tolist())]
        # the measurements before each picked one: its rank among them (no running sum)
        before = np.searchsorted(np.flatnonzero(measured), np.flatnonzero(picked))
        return [f"m{k}" for k in before.tolist()]

    def __len__(self) -> int:
        return len(self.nodes)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PlanSteps):  # (a step is a function of its node and index)
            return self.nodes == other.nodes and self.names == other.names
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # (a node's arguments are a dict)

    def __repr__(self) -> str:
        return f"PlanSteps({len(self)} steps)"

    def __reduce__(self) -> tuple[Any, ...]:
        return (PlanSteps, (self.nodes, self.names))


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """A program lowered for execution; see the module docstring."""

    program: VerifiedProgram
    steps: PlanSteps
    noise: Locations
    events: tuple[str, ...]
    clifford: bool
    first_non_clifford: int | None
    logical_cycles: float
    peak_logical_qubits: int
    peak_physical_qubits: int
    decoder_rounds: float
    cycle_time_ns: float
    magic_states: int
    teleports: int
    profiles: tuple[str, ...]
    #: The profiles whose logical model uses the run's calibration.
    calibrated_profiles: tuple[str, ...] = ()
    #: The steps that allocate or free qubits, in order: a program's few lifetimes
    #: among its thousands of gates (:func:`decoder_load` walks these alone).
    lifetimes: tuple[int, ...] = ()
    #: Whether any step has a guard (a batch circuit expresses few: ``batch.lower``).
    guarded: bool = False
    #: Each step's ASAP start and end, in logical cycles (a fence's, and a node's with no
    #: qubit, at the point it stands): the timeline a target's footprint is cut from.
    timing: Sequence[tuple[float, float]] = field(default=(), repr=False)


#: Each op's step kind (:attr:`PlanSteps.kinds`).
STEP_KINDS: Mapping[str, Exec] = MappingProxyType({op: spec.kind for op, spec in OPS.items()})
_NODE_OP = operator.attrgetter("op")
_NODE_VQS = operator.attrgetter("vqs")
_NODE_PRODUCES = operator.attrgetter("produces")


def _reads_events(node: Node) -> bool:
    """Whether the node reads events (a guard or event operands)."""
    return node.guard is not None or bool(node.inputs)


#: Each gate op's step kind, engine gate and parameter names: a plan's most common step,
#: looked up once a node.
_GATE_STEPS: Mapping[str, tuple[Exec, str, tuple[str, ...]]] = MappingProxyType(
    {op: (OPS[op].kind, gate, tuple(GATES[gate].params)) for op, gate in GATE_OF.items()}
)


def picked_runs(
    values: np.ndarray, sizes: np.ndarray, picked: np.ndarray, firsts: np.ndarray | None = None
) -> np.ndarray:
    """The runs of ``values`` that ``picked`` (a mask of the runs) selects, one after
    another: run ``i`` is the next ``sizes[i]`` values (from ``firsts[i]``, found when
    not given).

    >>> picked_runs(np.arange(6), np.array([1, 2, 3]), np.array([True, False, True])).tolist()
    [0, 3, 4, 5]
    >>> sizes, picked = np.full(9, 2), np.arange(9) != 4  # all but one
    >>> picked_runs(np.arange(18), sizes, picked).tolist()
    [0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 17]
    """
    chosen = int(np.count_nonzero(picked))
    if chosen * 8 < len(sizes):  # few runs: their positions alone
        firsts = np.cumsum(sizes) - sizes if firsts is None else firsts
        return values[spread(firsts[picked], sizes[picked])]
    if (len(sizes) - chosen) * 8 < len(sizes):  # all but a few: a mask less theirs
        firsts = np.cumsum(sizes) - sizes if firsts is None else firsts
        left = ~picked
        kept = np.ones(len(values), dtype=bool)
        kept[spread(firsts[left], sizes[left])] = False
        return values[kept]
    return values[np.repeat(picked, sizes)]  # most: a mask of the values (one pass)


def _gate_params(node: Node, names: tuple[str, ...]) -> tuple[float, ...]:
    args = node.args  # (a list, not a generator: a plan lowers thousands)
    return tuple([float(args[name]) for name in names])


def gate_codes(
    steps: PlanSteps, picked: np.ndarray
) -> tuple[np.ndarray, list[tuple[str, tuple[float, ...]]]]:
    """The engine gates and parameters of the gate steps ``picked`` (a mask of steps of
    kind ``gate``), as codes into a table of them: what :func:`gate_of` gives each,
    without reading their nodes. Without parameters, a code is an op's."""
    op_codes, ops = steps.op_codes
    codes = op_codes[picked]
    used = np.flatnonzero(np.bincount(codes, minlength=len(ops))).tolist()
    if not any(_GATE_STEPS[ops[c]][2] for c in used):  # (most circuits: no parameter)
        table = np.zeros(len(ops), dtype=np.int64)
        table[used] = np.arange(len(used))
        return table[codes], [(GATE_OF[ops[c]], ()) for c in used]
    if steps.theta is not None and all(_GATE_STEPS[ops[c]][2] in ((), ("theta",)) for c in used):
        return _angle_codes(codes, ops, steps.theta[picked])
    keys = []  # (gate, parameters), a gate step each
    for node in itertools.compress(steps.nodes, picked.tolist()):
        _, gate, names = _GATE_STEPS[node.op]
        keys.append((gate, _gate_params(node, names) if names else ()))
    code_of = dict(zip(dict.fromkeys(keys), itertools.count()))
    return np.fromiter(map(code_of.__getitem__, keys), np.int64, len(keys)), list(code_of)


def _angle_codes(
    codes: np.ndarray, ops: tuple[str, ...], theta: np.ndarray
) -> tuple[np.ndarray, list[tuple[str, tuple[float, ...]]]]:
    """:func:`gate_codes` off a column program's angles (``theta``, a gate step each):
    a gate's parameters are its angle where its op takes one. The table is in the order
    its entries are first met, each with the angle first met, as the node read makes it."""
    gates = [GATE_OF.get(op, "") for op in ops]  # (only the gate steps are read)
    gate_id = dict(zip(dict.fromkeys(gates), itertools.count()))
    angled = np.array([op in _GATE_STEPS and bool(_GATE_STEPS[op][2]) for op in ops])[codes]
    ids = np.array([gate_id[g] for g in gates], dtype=np.int64)[codes]
    angles = np.where(angled, theta, 0.0)
    order = np.lexsort((angles, ids))  # (stable: a group's first is its first met)
    ids, sorted_angles = ids[order], angles[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (ids[1:] != ids[:-1]) | (sorted_angles[1:] != sorted_angles[:-1])
    group = np.cumsum(new) - 1
    first = order[new]
    rank = np.argsort(first)  # the groups in the order first met
    renumber = np.empty(len(rank), dtype=np.int64)
    renumber[rank] = np.arange(len(rank))
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order] = renumber[group]
    table: list[tuple[str, tuple[float, ...]]] = [
        (gates[codes[i]], (float(theta[i]),) if angled[i] else ()) for i in first[rank].tolist()
    ]
    return inverse, table


def gate_of(node: Node) -> tuple[str, tuple[float, ...]]:
    """A gate node's engine gate (:data:`GATE_OF`) and its parameters, from its arguments.

    >>> gate_of(Node(id="r", op="APPLY_RZ", vqs=("q",), args={"theta": 0.5}))
    ('rz', (0.5,))
    """
    _, gate, names = _GATE_STEPS[node.op]
    return gate, _gate_params(node, names) if names else ()


@gc_paused()  # a bulk pass that builds no cycles
def build_plan(
    program: VerifiedProgram,
    *,
    noise: bool,
    qubit: str | QubitParams,
    default_profile: str,
    noise_model: NoiseModel | None = None,
    calibration: Calibration | None = None,
    idle: Mapping[str, float] | None = None,
) -> Plan:
    """Lower ``program``: steps, logical noise (when ``noise``), schedule and accounting.

    ``noise_model`` replaces the qubit's physical error rates and ``calibration`` the
    code's fitted (a, p*) (for the profiles it is for) in every logical model.

    ``idle`` maps node ids to logical cycles every qubit live after that node sits idle.
    These are a kernel job's waits on the shared machine
    (:class:`~qmk.execution.request.MachineRun`). With ``noise``, each becomes one Pauli
    channel per live qubit after the node: its code's error for that many cycles (cause
    ``machine``). It changes no op's time.

    Raises:
        QECError: a profile or qubit parameter set the QEC layer does not know, or a
            code family that does not fit the qubit technology. EngineError: ``QE110``
            a stim ``NOISE`` or ``NOISY_MEASURE`` row (the stim
            target's alone).
    """
    from qmk.qec import logical_model

    _refuse_stim_noise(program)
    steps, first_non_clifford = _steps_of(program)

    models: dict[str, Any] = {}

    def model_for(profile: str) -> Any:
        model = models.get(profile)
        if model is None:
            model = models[profile] = logical_model(
                profile, qubit, noise=noise_model, calibration=calibration
            )
        return model

    # The machine's default profile applies only to qubits that name none: a program
    # whose every qubit names its own profile never meets it (nor its constraints).
    default_key = canonical_profile(default_profile)
    rows = LocationRows(default_key, len(steps) if noise else 0)
    walk = _Walk(steps, model_for, default_profile, default_key, rows, noise)
    return _column_plan(program, steps, walk, first_non_clifford, models, idle)


def _refuse_stim_noise(program: VerifiedProgram) -> None:
    """``QE110`` for a stim circuit's ``NOISE`` or ``NOISY_MEASURE`` row: the stim
    target's alone."""
    by_op = program.counts.by_op
    if by_op.get("NOISE") or by_op.get("NOISY_MEASURE"):
        from qmk.engines.base import EngineError

        raise EngineError.of(
            "operation-unsupported",
            "a NOISE (NOISY_MEASURE) row is a stim circuit's noise on its physical qubits, "
            "which only the stim target runs (the logical machine applies its own noise "
            "model): run it with target stim",
            op="NOISE" if by_op.get("NOISE") else "NOISY_MEASURE",
        )


def _steps_of(program: VerifiedProgram) -> tuple[PlanSteps, int | None]:
    """The program's steps and its first step a stabilizer simulation cannot carry out.
    That step is found by the verifier's rule (:func:`~qmk.qvm.verify.is_clifford_node`,
    on the op table) without making a step; with no step beyond a stabilizer simulation
    counted, none is read."""
    graph = program.graph
    columns = program.columns
    if columns is not None:
        from qmk.qvm.columns import non_clifford_rows

        steps = PlanSteps.of_columns(graph.nodes, graph.resources.vqs, columns)
        off = non_clifford_rows(columns) if program.counts.non_clifford else np.zeros(0)
        return steps, int(off[0]) if len(off) else None
    steps = PlanSteps(graph.nodes, graph.resources.vqs)
    if not program.counts.non_clifford:
        return steps, None
    first = next(
        (i for i, node in enumerate(graph.nodes) if not is_clifford_node(OPS[node.op], node)),
        None,
    )
    return steps, first


def _plan_rows(
    program: VerifiedProgram, steps: PlanSteps, default_profile: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """The schedule's columns: each row's op code (the op table's order), its qubits as
    indices into the program's qubits (shape (rows, 3), -1 past the last), the rows the
    walk takes a node at a time, and the one profile of the other rows' qubits.

    A row is walked where the columns cannot schedule it: an allocation, a free or a
    fence; a row on no qubit or more than three; a teleported CNOT or a magic state
    (their gadgets count); a guarded row or one that reads events (their events' times
    count), and then every row that records events. A program whose allocations name
    more than one profile is walked whole. A program verified on its columns
    (:func:`qmk.qvm.columns.verified`) holds none of these but its allocations, frees,
    fences and guarded rows (:attr:`~qmk.qvm.columns.Columns.guards`); any other's
    columns are read off its steps (:attr:`PlanSteps.op_codes`,
    :attr:`PlanSteps.qubit_columns`) and its nodes' guards and event operands."""
    columns = program.columns
    if columns is not None:
        profile = canonical_profile(columns.profile or default_profile)
        walked = _WALKED_CODES[columns.ops]
        guarded = columns.guarded_rows()
        if len(guarded):
            walked[guarded] = True
            walked |= _MEASURE_CODES[columns.ops]
        return columns.ops, columns.qubits, walked, profile
    from qmk.qvm.columns import OP_CODES

    nodes = steps.nodes
    local, ops = steps.op_codes
    codes = np.array([OP_CODES[op] for op in ops], dtype=np.int64)[local]
    sizes, flat = steps.qubit_columns
    narrow = (sizes >= 1) & (sizes <= 3)
    qubits = np.full((len(nodes), 3), -1, dtype=np.int64)
    firsts = np.cumsum(sizes) - sizes
    for k in range(3):
        has = narrow & (sizes > k)
        qubits[has, k] = flat[firsts[has] + k]
    reads = np.fromiter(map(_reads_events, nodes), bool, len(nodes))
    walked = _WALKED_CODES[codes] | ~narrow | reads
    if reads.any():
        walked |= np.fromiter(map(bool, map(_NODE_PRODUCES, nodes)), bool, len(nodes))
    allocs = np.flatnonzero(codes == _ALLOC_CODE).tolist()
    profiles = {canonical_profile(nodes[r].args.get("profile") or default_profile) for r in allocs}
    if len(profiles) > 1:
        walked[:] = True
    return codes, qubits, walked, profiles.pop() if profiles else canonical_profile(default_profile)


def _column_plan(
    program: VerifiedProgram,
    steps: PlanSteps,
    walk: _Walk,
    first_non_clifford: int | None,
    models: dict[str, Any],
    idle: Mapping[str, float] | None,
) -> Plan:
    """:func:`build_plan`'s schedule, off the program's columns (:func:`_plan_rows`):
    the rows between two walked rows scheduled by one loop over the columns' qubits,
    each walked row by :meth:`_Walk.step` on its node, and the machine's waits
    (``idle``) where the walk puts them.
    """
    from qmk.qvm.columns import OP_NAMES

    rows, noise = walk.rows, walk.noise
    ops, qubits, walked, profile = _plan_rows(program, steps, walk.default_profile)
    count = len(ops)
    # each slot's wait (LocationRows), written as the rows are scheduled: from the
    # slot of each run's first row on
    sizes, flat = steps.qubit_columns
    slot_ends = np.cumsum(sizes)
    waits = np.empty(len(flat), dtype=np.float64) if noise else None
    # (a copied zero, not one read off a buffer of zero bytes: a third of a millisecond a
    # hundred thousand rows less)
    starts = array("d", [0.0]) * count
    ends = array("d", [0.0]) * count
    clock = [0.0] * len(steps.names)  # each live qubit's clock: where its last op ends
    names = steps.names
    index = steps.qubit_index
    special = np.flatnonzero(walked).tolist()
    # every other row's cycles on its first qubit's code (one profile: its allocs')
    cycles_of = [0.0] * len(OP_NAMES)
    for code in distinct(ops[~walked]).tolist():
        cycles_of[code] = walk.op_cycles_on(profile, OP_NAMES[code])
    cycles = np.array(cycles_of, dtype=np.float64)[ops]
    cycles[walked] = 0.0  # (the walk writes a walked row's own)
    if noise:
        rows.cycles = array("d", cycles.tobytes())
    begin = 0
    for stop in [*special, count]:
        first_slot = int(slot_ends[begin - 1]) if begin else 0
        run_waits = None if waits is None else waits[first_slot:]
        walk.cycles_end = _run_gates(
            clock, qubits, cycles, (starts, ends), (begin, stop), walk, run_waits
        )
        if stop == count:
            break
        node = steps.nodes[stop]
        kind = steps.kind(stop)
        # the walk's clocks, for the step it takes (a fence reads every live qubit's)
        for name in walk.time if ops[stop] == _FENCE_CODE else node.vqs:
            walk.time[name] = clock[index[name]]
        start, end = walk.step(stop, node, kind)
        if waits is not None and sizes[stop]:  # an alloc's qubits wait from the fence
            last = int(slot_ends[stop])
            mine = flat[last - int(sizes[stop]) : last].tolist()
            alloc = kind == "alloc"
            waits[last - len(mine) : last] = [
                start - (walk.fence_time if alloc else clock[q]) for q in mine
            ]
        for name in node.vqs:
            clock[index[name]] = walk.time.get(name, walk.fence_time)
        starts[stop], ends[stop] = start, end
        begin = stop + 1
    rows.slot_waits = waits
    live = [clock[index[name]] for name in walk.time]
    timing = (starts, ends)
    if noise:
        _machine_waits(steps, idle, walk, program.columns)
    logical_cycles = max([walk.cycles_end, walk.fence_time, *live])
    return _finished(
        program,
        steps,
        walk,
        models,
        names,
        timing,
        logical_cycles,
        first_non_clifford,
        guarded=walk.guarded,
    )


def _finished(
    program: VerifiedProgram,
    steps: PlanSteps,
    walk: _Walk,
    models: dict[str, Any],
    names: tuple[str, ...],
    timing: tuple[array[float], array[float]],
    logical_cycles: float,
    first_non_clifford: int | None,
    *,
    guarded: bool,
) -> Plan:
    """The plan of a finished schedule (either walk's): its noise locations and the
    machine's figures, from the profiles its qubits met."""
    model_for = walk.model_for
    if not models:  # no qubit at all: the machine's default sets the cycle time
        model_for(walk.default_key)
    profiles = tuple(sorted(models))
    rounds = max(model_for(p).decoder_rounds_per_cycle for p in profiles)
    cycle_ns = max(model_for(p).cycle_time_ns for p in profiles)
    return Plan(
        program=program,
        steps=steps,
        noise=(
            walk.rows.locations(steps.op_codes, steps.qubit_columns, names, model_for, _cnot_cycles)
            if walk.noise
            else Locations.empty(names)
        ),
        events=program.graph.resources.events,
        clifford=first_non_clifford is None,
        first_non_clifford=first_non_clifford,
        logical_cycles=logical_cycles,
        peak_logical_qubits=max(walk.peak_logical, program.peak_live_qubits),
        peak_physical_qubits=walk.peak_physical,
        decoder_rounds=logical_cycles * rounds,
        cycle_time_ns=cycle_ns,
        magic_states=walk.magic,
        teleports=walk.teleports,
        profiles=profiles,
        calibrated_profiles=tuple(p for p in profiles if models[p].calibration is not None),
        lifetimes=tuple(walk.lifetimes),
        guarded=guarded,
        timing=Pairs(*timing),
    )


def _run_gates(
    clock: list[float],
    qubits: np.ndarray,
    cycles: np.ndarray,
    timing: tuple[array[float], array[float]],
    run: tuple[int, int],
    walk: _Walk,
    waits: np.ndarray | None,
) -> float:
    """Schedule the rows of ``run`` (begin, stop: gates and measurements on one to three
    live qubits) as the node walk does (:func:`qmk.execution.asap.schedule`): each
    starts at the latest of the fence's time and its qubits' clocks and ends its cycles
    later; the latest end so far. Their slots' waits go to ``waits`` (None: not kept)."""
    begin, stop = run
    return asap.schedule(
        clock,
        qubits[begin:stop],
        cycles[begin:stop],
        timing,
        begin,
        walk.fence_time,
        walk.cycles_end,
        waits=waits,
    )


_FENCE_CODE = list(OPS).index("FENCE_EPOCH")
#: The ops the plan walk takes a node at a time (:func:`_plan_rows`).
_WALKED_KINDS = (Exec.ALLOC, Exec.FREE, Exec.TELEPORT_CNOT, Exec.INJECT_T)
_WALKED_CODES = np.array(
    [op == "FENCE_EPOCH" or spec.kind in _WALKED_KINDS for op, spec in OPS.items()], dtype=bool
)
_ALLOC_CODE = list(OPS).index("ALLOC_LQ")
_MEASURE_CODES = np.array([measures(spec) for spec in OPS.values()], dtype=bool)


class _Walk:
    """The plan walk: each live qubit's clock (``time``) and each event's
    (``event_time``), and what allocs, frees, fences, teleports and magic states change.

    :func:`_column_plan` takes the rows the columns cannot schedule a :meth:`step` at a
    time (:func:`_plan_rows`), handing ``cycles_end`` over before each step and reading
    it and ``fence_time`` back.
    """

    def __init__(
        self,
        steps: PlanSteps,
        model_for: Callable[[str], Any],
        default_profile: str,
        default_key: str,
        rows: LocationRows,
        noise: bool,
    ) -> None:
        self.steps, self.model_for, self.rows, self.noise = steps, model_for, rows, noise
        self.default_profile, self.default_key = default_profile, default_key
        self.time: dict[str, float] = {}
        self.event_time: dict[str, float] = {}
        self.profile_of: dict[str, str] = {}
        self.costs: dict[str, dict[str, float]] = {}  # by profile
        self.fence_time = self.cycles_end = 0.0
        self.live = self.live_physical = self.peak_logical = self.peak_physical = 0
        self.magic = self.teleports = 0
        self.lifetimes: list[int] = []
        self.guarded = False

    def costs_for(self, profile: str) -> dict[str, float]:
        """``profile``'s cycles by op, filled as ops are met."""
        return self.costs.setdefault(profile, {})

    def op_cycles_on(self, profile: str, op: str) -> float:
        """``op``'s cycles on ``profile``'s code (found once per profile)."""
        costs = self.costs_for(profile)
        cycles = costs.get(op)
        if cycles is None:
            cycles = costs[op] = float(self.model_for(profile).op_cycles(op))
        return cycles

    def op_cycles(self, q: str, op: str) -> float:
        """``op``'s cycles on qubit ``q``'s code (found once per profile)."""
        profile = self.profile_of.get(q, self.default_key)
        cycles = self.costs_for(profile)[op] = float(self.model_for(profile).op_cycles(op))
        return cycles

    def step(self, index: int, node: Node, kind: Exec) -> tuple[float, float]:
        """Schedule one step: its start and end. A gate starts at the latest of the last
        fence, its qubits' clocks and the events it reads, and ends its code's cycles
        later."""
        guard = node.guard
        if guard is not None:
            self.guarded = True
        op, time, fence_time = node.op, self.time, self.fence_time
        if op == "FENCE_EPOCH":
            self.fence_time = max([fence_time, self.cycles_end, *time.values()])
            return self.fence_time, self.fence_time
        if kind == "alloc":
            self._alloc(index, node)
        qubits = node.vqs
        if not qubits:
            return fence_time, fence_time
        start = fence_time
        for q in qubits:
            at = time.get(q, fence_time)
            if at > start:  # (max() of the same values, without its call)
                start = at
        if node.inputs or guard is not None:
            event_time = self.event_time
            for e in (*node.inputs, *node.guard_events):
                at = event_time.get(e, 0.0)
                if at > start:
                    start = at
        profile = self.profile_of.get(qubits[0], self.default_key)
        cycles = self.costs_for(profile).get(op)
        if cycles is None:
            cycles = self.op_cycles(qubits[0], op)
        end = start + cycles
        if self.noise:  # its slots' cycles (LocationRows)
            self.rows.cycles[index] = cycles
        for q in qubits:
            time[q] = end
        if kind == "teleport_cnot":
            self._teleport(index, profile, cycles)
        elif kind == "inject_t":
            self.magic += 1
        for e in node.produces:
            self.event_time[e] = end
        if end > self.cycles_end:
            self.cycles_end = end
        if kind == "free":
            self._free(index, qubits)
        return start, end

    def _alloc(self, index: int, node: Node) -> None:
        """An allocation: its qubits' profile and clocks; the live counts and peaks."""
        profile = canonical_profile(node.args.get("profile") or self.default_profile)
        model = self.model_for(profile)
        self.rows.alloc(index, profile)
        self.lifetimes.append(index)
        for q in node.vqs:
            self.profile_of[q] = profile
            self.time[q] = self.fence_time
            self.live += 1
            self.live_physical += model.physical_qubits_per_logical
        # the peaks rise only here (and in a teleport's gadget): a free lowers them
        self.peak_logical = max(self.peak_logical, self.live)
        self.peak_physical = max(self.peak_physical, self.live_physical)

    def _teleport(self, index: int, profile: str, cycles: float) -> None:
        """A teleported CNOT: its ancillas' peaks and its gadget's noise."""
        model = self.model_for(profile)
        self.teleports += 1
        anc_phys = TELEPORT_ANCILLAS * model.physical_qubits_per_logical
        self.peak_logical = max(self.peak_logical, self.live + TELEPORT_ANCILLAS)
        self.peak_physical = max(self.peak_physical, self.live_physical + anc_phys)
        # The gadget's Bell pair, ancilla measurements and corrections: their
        # logical errors reach the data as X on the target and Z on the control.
        _gadget_noise(self.rows, index, self.steps.nodes[index], model, cycles, self.noise)

    def _free(self, index: int, qubits: tuple[str, ...]) -> None:
        """A free: its qubits leave the live counts and clocks."""
        self.lifetimes.append(index)
        self.live -= len(qubits)
        for q in qubits:
            self.live_physical -= self.model_for(self.profile_of[q]).physical_qubits_per_logical
            del self.time[q]  # (its profile stays, as a later read of it expects)


def _cnot_cycles(model: Any) -> float:
    """A teleported CNOT's own cycles on ``model``'s code: its CNOT's."""
    return float(model.op_cycles("APPLY_CNOT"))


def _machine_waits(
    steps: PlanSteps, idle: Mapping[str, float] | None, walk: _Walk, columns: Any
) -> None:
    """The machine's idle cycles after each node ``idle`` names, on every qubit live
    after it (allocated and not yet freed), as the walk's rows. Only the allocations,
    frees (the walk's lifetimes) and named nodes are read: a column program's node ids
    are ``n<row>``."""
    if not idle:
        return
    nodes, kinds = steps.nodes, steps.kinds
    if columns is None:
        named = [index for index, node in enumerate(nodes) if node.id in idle]
    else:
        rows = [int(key[1:]) for key in idle if key[:1] == "n" and key[1:].isdigit()]
        count = len(nodes)
        named = [row for row in rows if row < count and nodes[row].id in idle]
    live: dict[str, None] = {}
    for index in sorted({*walk.lifetimes, *named}):
        node = nodes[index]
        if kinds[index] == "alloc":
            live.update(dict.fromkeys(node.vqs))
        elif kinds[index] == "free":
            for q in node.vqs:
                live.pop(q, None)
        cycles = idle.get(node.id)
        if cycles and cycles > 0:
            for q in live:
                profile = walk.profile_of.get(q, walk.default_key)
                walk.rows.machine(index, q, float(cycles), profile)


def decoder_load(plan: Plan, qubit: str | QubitParams, default_profile: str) -> tuple[float, float]:
    """Syndrome bits per round and per second of the logical qubits live at the peak of ``plan``.

    Walks ALLOC_LQ/FREE_LQ (:attr:`Plan.lifetimes`) in program order, each live qubit
    adding its profile's ``LogicalModel.syndrome_bits_per_round`` and
    ``decoder_bits_per_second``; the peak is taken over bits per second (teleport
    ancillas are not counted).
    """
    from qmk.qec import logical_model

    # each live qubit's profile's (bits per round, per second), read once a profile: a
    # program allocates many qubits, of few profiles (summed a qubit at a time, as ever)
    live: dict[str, tuple[float, float]] = {}
    models: dict[str, tuple[float, float]] = {}
    rounds = per_second = peak_rounds = peak_second = 0.0
    nodes = plan.steps.nodes
    for at in plan.lifetimes:
        node = nodes[at]
        if node.op == "ALLOC_LQ":
            profile = node.args.get("profile") or default_profile
            bits = models.get(profile)
            if bits is None:
                model = logical_model(profile, qubit)
                bits = models[profile] = (
                    model.syndrome_bits_per_round,
                    model.decoder_bits_per_second,
                )
            each_round, each_second = bits
            for q in node.vqs:
                live[q] = bits
                rounds += each_round
                per_second += each_second
            if per_second > peak_second:
                peak_rounds, peak_second = rounds, per_second
        elif node.op == "FREE_LQ":
            for q in node.vqs:
                held = live.pop(q, None)
                if held is not None:
                    rounds -= held[0]
                    per_second -= held[1]
    return peak_rounds, peak_second


def _gadget_noise(
    rows: LocationRows, index: int, node: Node, model: Any, cycles: float, noise: bool
) -> None:
    if not noise:
        return
    control, target = node.vqs
    # Each ancilla lives through the gadget's cycles; an X-type error on
    # either ancilla (or a flipped first measurement) becomes X on the target, a
    # Z-type error (or a flipped second measurement) becomes Z on the control.
    rates = model.pauli_error(cycles)
    flip_x = 1 - (1 - (rates.px + rates.py)) ** TELEPORT_ANCILLAS
    flip_z = 1 - (1 - (rates.pz + rates.py)) ** TELEPORT_ANCILLAS
    if flip_x > 0:
        rows.gadget(index, target, (flip_x, 0.0, 0.0))
    if flip_z > 0:
        rows.gadget(index, control, (0.0, 0.0, flip_z))
