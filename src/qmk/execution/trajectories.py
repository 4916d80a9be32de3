"""Running a plan on an engine: simulate once, branch at mid-circuit outcomes, sample the end.

The shots of one group (shots that share a logical-error pattern) start as one
trajectory. At a measurement whose outcome is random, the group's shots split
binomially between the two outcomes and each branch goes on with its share. A
channel's Werner noise splits them multinomially the same way. The branch with
fewer shots runs first and the other waits as a snapshot, so at most about
log2(shots) snapshots are held at once.

Measurements at the end of the program are not simulated one by one: those after its
last fence, on distinct qubits, with nothing after them that reads their events. Each
leaf applies their basis changes and the gates among them, and draws all its shots from
the final state at once. So a program with no mid-circuit measurement is simulated
exactly once per group and sampled. The tail never swallows a fence (:func:`tail_start`;
fences that end the program aside). A measurement listed before a fence splits the
shots where it stands, so the run can stop at that fence. A maximal run of unitary
micro-ops goes to the engine as one *segment* (:func:`qmk.engines.base.apply_segment`),
which the statevector engine fuses. Such a run is gates and feed-forward Paulis, their
guards decided as the run starts, so no event changes inside it.

**Resumable.** Every branch draws from a random stream of its own, seeded where it
split off from its parent's. A group's rows are assembled from its leaves in the order
of their *paths* (the choices taken at each split), not in the order they ran. So the
work may stop and go on later, in another process, with the same result. A
:class:`Runner` asks its :class:`Control` at every ``FENCE_EPOCH`` whether to save its
whole state and go on, or save it and stop. (Every branch reaches each fence after the
point where it split off.) The state is the rows done and every waiting branch with its
engine snapshot, stream and path (:class:`qmk.execution.branches.ExecutionState`).
Asked to stop *now*, it rolls back the open REV segment of the running branch and saves
the state at the segment's start. That segment is the unitary micro-ops since its last
irreversible one, undone by their adjoints in reverse order.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from array import array
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.random  # every run draws from its streams: imported with the module, not by a run

from qmk.engines.base import Engine, EngineError, GateCall, apply_segment
from qmk.engines.gates import GATES, TO_Z
from qmk.execution import spans
from qmk.execution.branches import Branch, ExecutionState, Pending, Progress
from qmk.execution.microcode import BASES, KIND_CODE, KINDS, MicroOp, Ops, Reader, Spliced, Writer
from qmk.execution.plan import (
    BASIS_OF,
    GATE_OF,
    STEP_KINDS,
    Call,
    Plan,
    PlanSteps,
    expand,
    gate_codes,
    picked_runs,
    spread,
)
from qmk.memo import Memo
from qmk.qvm import classical
from qmk.qvm.expansions import Micro
from qmk.qvm.graph import Guard, Node
from qmk.qvm.ops import Exec
from qmk.qvm.pairs import Pairs

#: What a :class:`Control` may answer: save the state and go on ...
CHECKPOINT = "checkpoint"
#: ... save it at this fence and stop ...
YIELD = "yield"
#: ... or stop as soon as possible (rolling back an open REV segment), save, and stop.
YIELD_NOW = "yield-now"
REQUESTS = (CHECKPOINT, YIELD, YIELD_NOW)


def _step_ops(
    index: int,
    node: Node,
    kind: Exec,
    ev: Mapping[str, int],
    fences: int,
    add: Callable[..., None],
) -> int:
    """Write the micro-ops of step ``index`` (``node``, of ``kind``, neither a gate nor a
    measurement: :func:`_plan_ops`) with ``add`` (:meth:`~qmk.execution.microcode.Writer.add`);
    the fences so far, with this one."""
    guard = node.guard
    qs = node.vqs
    if calls := expand(node):
        _expanded(calls, guard, ev, add)
    elif kind in ("alloc", "free"):  # one micro-op per qubit
        for q in qs:
            add(kind, (q,), guard)
    elif kind == "reset":
        add("reset", qs, guard)
    elif kind == "cond_pauli":
        pauli = str(node.args["mask"])
        if pauli != "I":
            inputs = tuple(ev.get(e, -1) for e in node.inputs)
            add("cond", qs, guard, gate=pauli.lower(), inputs=inputs)
    elif kind == "calc":
        args = node.args
        prepared = classical.prepare(
            args["type"], args.get("reads", ""), args["expr"], len(node.inputs)
        )
        inputs = tuple(ev[e] for e in node.inputs)
        outputs = tuple(ev[e] for e in node.produces)
        where = f"node #{index} {node.id!r}"
        add("calc", (), guard, inputs=inputs, outputs=outputs, calc=prepared, note=where)
    elif kind == "halt":
        add("halt", (), guard, note=f"node #{index} {node.id!r}: {node.args.get('message', '')}")
    elif node.op == "FENCE_EPOCH":
        fences += 1
        add("fence", (), epoch=fences)
    return fences


def _expanded(
    calls: Sequence[Call], guard: Guard | None, ev: Mapping[str, int], add: Callable[..., None]
) -> None:
    """A composite step's calls (:func:`qmk.execution.plan.expand`) as micro-ops: a
    Werner step of fidelity 1 is none."""
    for call in calls:
        kind = call.kind
        if kind is Micro.GATE:
            add("gate", call.qubits, guard, gate=call.gate, params=call.params)
        elif kind is Micro.MEASURE:
            add("meas", call.qubits, guard, event=ev.get(call.event, -1))
        elif kind is Micro.RESET:
            add("reset", call.qubits, guard)
        elif call.fidelity < 1:
            add("werner", call.qubits, guard, fidelity=call.fidelity)


class NoiselessOps:
    """A plan's micro-ops without errors (:class:`~qmk.execution.microcode.Ops`), each
    step's ``(start, end)`` among them and where the terminal measurements start
    (:func:`tail_start`).

    The columns are gathered off the plan's step columns (:func:`_plan_ops`), no object
    per micro-op: a run sampled in bulk reads them for its route alone, and a run one
    micro-op at a time turns a chunk of them into rows at a time."""

    __slots__ = ("_bounds", "_counts", "ops", "tail")

    def __init__(self, plan: Plan) -> None:
        self._bounds: list[Pairs] = []
        self.ops, self._counts = _plan_ops(plan)
        self.tail = tail_start(self.ops)

    @property
    def bounds(self) -> Pairs:
        """Each step's ``(start, end)`` among the micro-ops, made once."""
        if not self._bounds:
            counts = self._counts
            starts, ends = array("q", [0]) * len(counts), array("q", [0]) * len(counts)
            np.cumsum(counts, out=np.frombuffer(ends, dtype=np.int64))
            np.subtract(ends, counts, out=np.frombuffer(starts, dtype=np.int64))
            self._bounds.append(Pairs(starts, ends))
        return self._bounds[0]


def _plan_ops(plan: Plan) -> tuple[Ops, np.ndarray]:
    """The plan's micro-ops as columns, and each step's count of them. A gate or
    measurement step's one micro-op (on the step's qubits, with its guard) is gathered
    off the step columns by each micro-op's step; the other steps' are written by
    :func:`_step_ops` and put in their places (few: a program's allocations, frees and
    fences, in the common case)."""
    steps = plan.steps
    op_codes, ops = steps.op_codes
    kind_of_op = np.array(
        [_DIRECT_KIND.get(STEP_KINDS[op], _NOT_DIRECT) for op in ops], dtype=np.uint8
    )
    direct_kinds = kind_of_op[op_codes]
    direct = direct_kinds != _NOT_DIRECT
    other_steps = np.flatnonzero(~direct)
    ev = {name: i for i, name in enumerate(plan.events)}
    writer = Writer()
    counts = direct.astype(np.int64)  # each step's micro-ops (int64: the bounds' "q" numbers)
    fences = 0
    nodes = steps.nodes  # (no node read for a gate step: a plan's nodes may be made on read)
    for k in other_steps.tolist():
        before = len(writer)
        fences = _step_ops(k, nodes[k], steps.kind(k), ev, fences, writer.add)
        counts[k] = len(writer) - before
    others = writer.done()
    # the others' places, in order: a step's first micro-op follows a micro-op a direct
    # step before it and the other steps' own (found for the few other steps alone)
    other_counts = counts[other_steps]
    other_firsts = other_steps - np.arange(len(other_steps)) + np.cumsum(other_counts)
    other_at = spread(other_firsts - other_counts, other_counts)
    if len(other_steps) <= _FEW_OTHER_STEPS:
        # the direct steps between two other steps are a run of micro-ops: a slice each
        runs = list(
            zip(
                np.r_[0, other_steps + 1].tolist(),
                np.r_[other_steps, len(counts)].tolist(),
                np.r_[0, other_firsts - other_steps - 1].tolist(),  # (their shift)
                strict=True,
            )
        )
        total = int(counts.sum())

        def placed(by_step: np.ndarray, other: np.ndarray) -> np.ndarray:
            column = np.empty(total, dtype=by_step.dtype)
            for first, end, shift in runs:
                column[first + shift : end + shift] = by_step[first:end]
            column[other_at] = other
            return column

    else:
        # each micro-op's step (32 bits: a gather index, half the bytes of 64)
        step_of = np.repeat(np.arange(len(counts), dtype=np.int32), counts)

        def placed(by_step: np.ndarray, other: np.ndarray) -> np.ndarray:
            column = by_step[step_of]
            column[other_at] = other
            return column

    # the engine gate by op (parameters are read off the nodes when first asked for)
    by_op = [GATE_OF.get(op, "") for op in ops]
    gate_names = list(dict.fromkeys(["", *by_op, *others.gate_names]))
    code = {name: k for k, name in enumerate(gate_names)}
    narrow = np.int16 if len(gate_names) < 1 << 15 else np.int64  # (a quarter the bytes)
    gates = np.array([code[name] for name in by_op], dtype=narrow)[op_codes]
    other_gates = np.array([code[name] for name in others.gate_names], dtype=narrow)
    # a measurement step's basis and event
    measured = direct_kinds == _MEAS_KIND
    events = np.full(len(steps), -1, dtype=np.int64)
    events[measured] = [ev.get(name, -1) for name in steps.recorded(measured)]
    basis_of_op = np.array([BASES.index(BASIS_OF.get(op, "Z")) for op in ops], dtype=np.uint8)
    # the qubits: where the others' qubits, one after another, are their steps' (an
    # allocation's, a free's, a fence's none: the common case), the steps' column as it is
    step_sizes, step_qubits = steps.qubit_columns
    index = steps.qubit_index
    other_qubits = np.array([index[name] for name in others.names], dtype=np.int64)[
        others.qubit_ids
    ]
    sizes = placed(step_sizes, np.diff(others.qubit_at))
    if not np.array_equal(other_qubits, picked_runs(step_qubits, step_sizes, ~direct)):
        step_qubits = _interleaved(sizes, other_at, steps.qubits_of(direct), other_qubits)
    guards = {int(other_at[at]): guard for at, guard in others.guards.items()}
    if plan.guarded:
        firsts = (np.cumsum(counts) - counts).tolist()
        for k in np.flatnonzero(direct).tolist():
            if (guard := nodes[k].guard) is not None:
                guards[firsts[k]] = guard
    made = Ops(
        placed(direct_kinds, others.kinds),
        placed(gates, other_gates[others.gates]),
        gate_names,
        _offsets(sizes),
        step_qubits,
        steps.names,
        functools.partial(
            _param_columns, steps, direct_kinds == _GATE_KIND, counts, other_at, others
        ),
        placed(events, others.events),
        placed(basis_of_op[op_codes], others.bases),
        guards,
        {int(other_at[at]): fields for at, fields in others.rare.items()},
    )
    return made, counts


#: The other steps (not a gate or measurement) up to which :func:`_plan_ops` copies the
#: direct steps' runs between them as slices; past them, a gather by micro-op.
_FEW_OTHER_STEPS = 4096


def _param_columns(
    steps: PlanSteps, gate_steps: np.ndarray, counts: np.ndarray, other_at: np.ndarray, others: Ops
) -> tuple[np.ndarray, np.ndarray]:
    """:attr:`~qmk.execution.microcode.Ops.param_at` and ``params`` of a plan's micro-ops
    (:func:`_plan_ops`): a gate step's (``gate_steps``) off its node or the step columns
    (:func:`~qmk.execution.plan.gate_codes`: a table of the distinct ones), the others'
    (at ``other_at``) as written."""
    entry_of, table = gate_codes(steps, gate_steps)
    entry_sizes = np.array([len(params) for _, params in table], dtype=np.int64)
    entry_values = np.array([x for _, params in table for x in params], dtype=np.float64)
    step_sizes = np.zeros(len(steps), dtype=np.int64)
    step_sizes[gate_steps] = entry_sizes[entry_of]
    sizes = np.repeat(step_sizes, counts)
    sizes[other_at] = np.diff(others.param_at)
    values = entry_values[spread(_offsets(entry_sizes)[entry_of], entry_sizes[entry_of])]
    return _offsets(sizes), _interleaved(sizes, other_at, values, others.params)


def _interleaved(
    sizes: np.ndarray, other_at: np.ndarray, values: np.ndarray, other: np.ndarray
) -> np.ndarray:
    """Flat values of runs of ``sizes`` (a micro-op each): the direct steps' ``values``
    and those of the micro-ops at ``other_at`` (``other``), one after another."""
    out = np.empty(int(sizes.sum()), dtype=values.dtype)
    firsts = np.cumsum(sizes) - sizes
    from_step = np.ones(len(sizes), dtype=bool)
    from_step[other_at] = False
    out[spread(firsts[from_step], sizes[from_step])] = values
    out[spread(firsts[other_at], sizes[other_at])] = other
    return out


def _offsets(sizes: np.ndarray) -> np.ndarray:
    """Where each of runs of ``sizes`` starts, and the end: ``[0, cumsum(sizes)]``."""
    at = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=at[1:])
    return at


#: Plans whose micro-ops are kept (the executor keeps as many plans, ``KEPT_PLANS``).
KEPT_OPS = 64
_OPS: Memo[NoiselessOps] = Memo(KEPT_OPS)
_OBSERVED: Memo[Observed] = Memo(KEPT_OPS)


def noiseless_ops(plan: Plan) -> NoiselessOps:
    """:class:`NoiselessOps` of ``plan``, built once per plan object (the executor keeps
    its plans: a run of the same program again rebuilds none of it). The entry holds the
    plan, so its ``id`` is not reused while kept. Safe from several threads: at worst
    two build the same value."""
    return _OPS.get(id(plan), plan, lambda: NoiselessOps(plan))


def observed(plan: Plan) -> Observed:
    """:class:`Observed` of ``plan``, made once per plan object as :func:`noiseless_ops`
    (nothing changes it once made: :meth:`Observed.with_errors` gives copies)."""
    return _OBSERVED.get(id(plan), plan, lambda: Observed(plan))


class Observed:
    """A plan's micro-ops compiled once for a run, less what no record can see.

    A unitary micro-op (gate or feed-forward Pauli) cannot change any recorded event when
    none of its qubits is later measured, split on (a reset, a mid-circuit free, a Werner
    draw) or touched by a micro-op that is. Such a micro-op is dropped, and so is a
    logical error there (:meth:`observable`). This is exact: what is never observed,
    directly or through later gates, changes no outcome's probability. Only unitary
    micro-ops are dropped, so the draws of a run (splits, samples) are the ones it made
    before. A program whose every gate is seen gives the same counts at a seed.
    A program that measures nothing has no gate left: its shots are not simulated.

    :meth:`with_errors` gives a shot group's micro-ops by splicing its Paulis into the
    kept list (a copy of list slices, not a rebuild of every micro-op per group).
    """

    def __init__(self, plan: Plan) -> None:
        noiseless = noiseless_ops(plan)
        full, tail = noiseless.ops, noiseless.tail
        kinds = [KINDS[code] for code in full.kinds.tolist()]
        at, ids = full.qubit_at.tolist(), full.qubit_ids.tolist()
        keep = [True] * len(kinds)
        live: set[int] = set()
        # (qubit) -> positions of the micro-ops touching it, and whether its state just
        # before each one can reach a record (reversed: filled back to front)
        touches: dict[int, list[int]] = {}
        seen: dict[int, list[bool]] = {}
        for i in range(len(kinds) - 1, -1, -1):
            kind, qubits = kinds[i], ids[at[i] : at[i + 1]]
            if kind in _UNITARY:
                if live.isdisjoint(qubits):
                    keep[i] = False
                else:
                    live.update(qubits)
            elif kind == "alloc" or (kind == "free" and i >= tail):
                live.discard(qubits[0])  # (a terminal free draws nothing)
            elif kind in ("meas", "free", "reset", "werner"):
                live.add(qubits[0])
            for q in qubits:
                touches.setdefault(q, []).append(i)
                seen.setdefault(q, []).append(q in live)
        self._kept_before = list(itertools.accumulate(keep, initial=0))
        #: The kept micro-ops, as columns.
        self.ops = full.take(np.flatnonzero(keep))
        self.dropped = len(kinds) - len(self.ops)
        self._bounds = dict(zip(range(len(plan.steps)), noiseless.bounds, strict=True))
        self._qubit = {name: q for q, name in enumerate(full.names)}
        self._touches = {q: positions[::-1] for q, positions in touches.items()}
        self._seen = {q: flags[::-1] for q, flags in seen.items()}

    def _position(self, step: int, before: bool) -> int:
        start, end = self._bounds[step]
        return start if before else end

    def observable(self, step: int, before: bool, qubit: str) -> bool:
        """Whether a Pauli on ``qubit`` before (or after) step ``step`` can change a record."""
        q = self._qubit.get(qubit, -1)
        positions = self._touches.get(q, [])
        k = bisect.bisect_left(positions, self._position(step, before))
        return k < len(positions) and self._seen[q][k]

    def kept_position(self, step: int, before: bool) -> int:
        """Where an error before (or after) step ``step`` goes among the kept micro-ops:
        before ``ops[at]``."""
        return self._kept_before[self._position(step, before)]

    def with_errors(self, errors: Mapping[int, Sequence[tuple[bool, str, str]]]) -> Spliced:
        """The kept micro-ops with ``errors`` (by step index: ``(before, qubit, pauli)``)
        spliced in."""
        inserts: list[tuple[int, int, int, str, str]] = []
        for step, items in errors.items():
            for before, q, pauli in items:
                at = self.kept_position(step, before)
                inserts.append((at, step, 0 if before else 1, q, pauli.lower()))
        # where dropped micro-ops leave several steps at one position: in step order,
        # each step's errors before it first (a stable sort keeps each list's order)
        inserts.sort(key=lambda item: item[:3])
        places = [item[0] for item in inserts]
        return Spliced(
            self.ops, places, [item[3] for item in inserts], [item[4] for item in inserts]
        )


def tail_start(ops: Ops | Spliced) -> int:
    """Where the terminal-measurement suffix of ``ops`` begins (:func:`tail_of`)."""
    if isinstance(ops, Ops):
        return tail_of(ops.kinds, ops.guard_list(), ops.qubit_reader())
    reader = Reader(ops)
    return tail_of(ops.kinds, ops.guard_list(), lambda i: reader[i].qubits)


def closing_start(ops: Ops) -> int:
    """Where the frees and fences that close ``ops`` begin (their count when none)."""
    return _last_not(_ENDING, ops.kinds, len(ops)) + 1


def tail_of(
    kinds: np.ndarray, guards: list[Guard | None], qubits: Callable[[int], Sequence[Hashable]]
) -> int:
    """Where the terminal-measurement suffix of micro-ops of ``kinds`` (codes into
    :data:`KINDS`) and ``guards`` begins (their count when there is none); ``qubits(i)``
    are micro-op ``i``'s, read only from the first measurement a suffix could start at.

    The suffix holds unguarded measurements of distinct qubits, frees, gates
    that either come before every measurement of their qubits (basis changes,
    applied before sampling) or after all of them (unobservable, skipped), and
    unguarded ``calc``s, computed on the sampled rows (once per distinct input).

    It never begins before the last fence. Every ``FENCE_EPOCH`` is a pause point, so
    every branch reaches every fence one micro-op at a time: a control is asked there,
    and the engine state saved there is the state at that fence. Only what follows the
    last fence may be sampled at once. Fences with nothing but frees and fences after
    them end the program: no work is left to pause before, so they do not hold the
    terminal measurements back.
    """
    count = len(kinds)
    end = _last_not(_ENDING, kinds, count) + 1
    # not before the last fence (of those before ``end``), nor before the last micro-op
    # the suffix cannot hold: of another kind, or guarded
    start = _last_not(_HELD, kinds, end) + 1
    if guards.count(None) < count:  # just past the last guarded one, found from the end
        last = next(i for i, guard in enumerate(guards[::-1]) if guard is not None)
        start = max(start, count - last)
    while start < count:
        bad = _first_conflict(kinds, qubits, start)
        if bad is None:
            return start
        start = bad + 1
    return start


_GATE_KIND, _MEAS_KIND, _FENCE_KIND = (KIND_CODE[k] for k in ("gate", "meas", "fence"))
#: The steps whose one micro-op :func:`_plan_ops` reads off the step's columns: its
#: kind code by step kind (a measurement's is one ``meas`` whatever its op); any other
#: step is written by :func:`_step_ops`.
_DIRECT_KIND = {Exec.GATE: _GATE_KIND, Exec.MEASURE: _MEAS_KIND}
_NOT_DIRECT = 255


def kinds_in(kinds: Iterable[str]) -> np.ndarray:
    """A table by kind code: whether each of :data:`KINDS` is one of ``kinds`` (index it
    with :attr:`~qmk.execution.microcode.Ops.kinds` for a mask of the micro-ops)."""
    wanted = frozenset(kinds)
    return np.array([kind in wanted for kind in KINDS])


#: The micro-op kinds a terminal-measurement suffix may hold (:func:`tail_start`; a
#: fence only where the program ends, :data:`_ENDING`), and those that end a program
#: (after them no work is left to pause before), by code.
_HELD = kinds_in(("meas", "free", "gate", "calc"))
_ENDING = kinds_in(("free", "fence"))
#: The micro-ops :func:`_last_not` looks at first, from the end (doubled each time).
_LAST_BLOCK = 4096


def _last_not(table: np.ndarray, kinds: np.ndarray, end: int) -> int:
    """The last of the micro-ops of ``kinds`` before ``end`` whose kind ``table``
    (:func:`kinds_in`) leaves out, or -1: looked for a block at a time from the end, as a
    program's terminal suffix is short beside its gates."""
    size = _LAST_BLOCK
    while end > 0:
        low = max(end - size, 0)
        out = np.flatnonzero(~table.take(kinds[low:end]))  # (take: faster by uint8 codes)
        if len(out):
            return low + int(out[-1])
        end, size = low, 2 * size
    return -1


def _first_conflict(
    kinds: np.ndarray, qubits: Callable[[int], Sequence[Hashable]], start: int
) -> int | None:
    """The first micro-op from ``start`` that a suffix there cannot hold (a second
    measurement of a qubit, a gate on measured and unmeasured qubits), or None. None can
    come before the first measurement: the search starts there."""
    found = np.flatnonzero(kinds[start:] == _MEAS_KIND)
    if not len(found):
        return None
    first = start + int(found[0])
    measured: set[Hashable] = set()
    for i, kind in enumerate(kinds[first:].tolist(), first):
        if kind == _MEAS_KIND:
            first_qubit = qubits(i)[0]
            if first_qubit in measured:
                return i
            measured.add(first_qubit)
        elif kind == _GATE_KIND and measured:  # (before any measurement: no conflict)
            done = [q in measured for q in qubits(i)]
            if any(done) and not all(done):
                return i
    return None


def _holds(guard: Guard | None, events: np.ndarray, index: Mapping[str, int]) -> bool:
    if guard is None:
        return True
    return all(int(events[index[t.event]]) == t.equals for t in guard.terms if t.event in index)


def compute(op: MicroOp, events: np.ndarray) -> None:
    """Carry out a ``calc`` micro-op on one record (every shot of a branch shares it).

    Raises:
        EngineError: ``QE116 classical-fault`` when the expression fails on these values.
    """
    assert op.calc is not None
    try:
        bits = op.calc([int(events[i]) for i in op.inputs])
    except classical.ClassicalFault as exc:
        raise EngineError.of("classical-fault", f"{op.note}: {exc}") from None
    events[list(op.outputs)] = bits


def _parity(op: MicroOp, events: np.ndarray) -> int:
    """The XOR of a feed-forward op's input events (1: its Pauli applies)."""
    return sum(int(events[i]) for i in op.inputs if i >= 0) % 2


class Control(Protocol):
    """Who may ask a running :class:`Runner` to checkpoint or stop (the kernel's worker)."""

    @property
    def urgent(self) -> bool:
        """True while a request may be waiting that should not wait for the next fence
        (read before every micro-op: keep it cheap)."""
        ...

    def at_fence(self, epoch: int) -> str | None:
        """At the fence that opens ``epoch``: a request of :data:`REQUESTS`, or None."""
        ...

    def at_op(self) -> str | None:
        """Between micro-ops, while :attr:`urgent`: :data:`YIELD_NOW` to stop, or None."""
        ...

    def after_segment(self) -> str | None:
        """After the engine applied a segment of unitary micro-ops (the run's slow step):
        :data:`YIELD_NOW` to stop there, the segment rolled back, or None. Asked once a
        segment, so a stop asked while the engine worked is met before the next
        irreversible micro-op, not at the next fence."""
        ...

    def save(self, state: Any) -> None:
        """Keep ``state`` (an :class:`~qmk.execution.checkpoint.ExecutionState`)."""
        ...


class Suspended(Exception):
    """The run saved its state at a control's request and stopped."""

    def __init__(self, state: Any) -> None:
        super().__init__("suspended")
        self.state = state


def _apply_pending(engine: Engine, branch: Branch, pending: Pending) -> None:
    if pending.kind == "collapse":
        engine.collapse(pending.qubit, pending.outcome, pending.basis)
        if pending.event >= 0:
            branch.events[pending.event] = pending.outcome
    elif pending.kind == "discard":
        engine.collapse(pending.qubit, pending.outcome, "Z")
        if pending.free:
            engine.free(branch.qmap.pop(pending.name))
        else:
            engine.reset(pending.qubit)
    elif pending.partner >= 0:  # a Pauli on two qubits
        first, second = divmod(pending.outcome, 4)
        if first:
            engine.apply("ixyz"[first], [pending.qubit])
        if second:
            engine.apply("ixyz"[second], [pending.partner])
    elif pending.outcome:
        engine.apply("ixyz"[pending.outcome], [pending.qubit])


class Recorded(Protocol):
    """What a :class:`Runner` reads of what it runs: the names of its record's columns
    (a :class:`~qmk.execution.plan.Plan` is one)."""

    @property
    def events(self) -> Sequence[str]: ...


class Runner:
    """Runs every shot group of a plan on engines of one class, resumably.

    Args:
        plan: the plan (of which only its ``events`` are read: :class:`Recorded`).
        engine: builds a fresh engine (``engine()``) for each group.
        groups: ``(pattern ops, shot indices)`` per group, in a fixed order.
        shots: the run's shots (rows of :attr:`bits`).
        seed: the stream every group's streams derive from (a SeedSequence).
        control: who may ask for checkpoints and stops (None: nobody).
        key: the digest of the run (:func:`qmk.execution.request.run_key`) that
            a saved state carries, and ``engine_name`` its engine's name.
        base: the error-free micro-ops of the groups' plan (None: no prefix reuse).

    **Noiseless prefix reuse** (``base`` given): a group's micro-ops up to its first
    error are those of the error-free run, up to the first micro-op that is not an
    unguarded gate or alloc (no measurement, split, fence or guard). So its first branch
    starts from the error-free state there (:class:`_Prefix`, on whose engine it runs)
    instead of from |0...0>. The groups run in the order of that cut (ties by index).
    Each keeps the streams of its index, so its rows do not depend on the order. The
    order is a function of the groups alone, so a resumed run takes the same one.
    """

    def __init__(
        self,
        plan: Recorded,
        engine: Callable[[], Engine],
        groups: Sequence[tuple[Ops | Spliced, np.ndarray]],
        shots: int,
        seed: np.random.SeedSequence,
        control: Control | None = None,
        *,
        key: str = "",
        engine_name: str = "",
        base: Ops | None = None,
    ) -> None:
        self.plan = plan
        self.key = key
        self.engine_name = engine_name
        self.engine_factory = engine
        self.groups = groups
        self.seed = seed
        self.control = control
        self.index = {name: i for i, name in enumerate(plan.events)}
        self.bits = np.zeros((shots, len(plan.events)), dtype=np.uint8)
        self.group = 0  # the group running (every one before it is done)
        self.stack: list[Branch] = []  # the group's waiting branches
        self.leaves: list[tuple[tuple[int, ...], np.ndarray]] = []  # the group's done rows
        self.progress = Progress(preempted_at_epochs=[])
        #: Where the running branch stopped when the state was last saved (its epoch).
        self.epoch = 0
        #: The worker's span recorder (None: tracing off), the running group's epochs.
        self.spans = spans.current()
        self._clock: spans.EpochClock | None = None
        #: Each group's cut (where its micro-ops leave the error-free run's; 0: none).
        self.cuts = [0] * len(groups)
        self.base = Reader(Writer().done() if base is None else base)
        if base is not None:
            limit = _prefix_limit(base)
            self.cuts = [_common_prefix(self.base, ops, limit) for ops, _ in groups]
        #: The order the groups run in: by cut, then index (the identity without base).
        self.order = sorted(range(len(groups)), key=lambda g: (self.cuts[g], g))
        self._stops = sorted({cut for cut in self.cuts if cut > 0})
        self._prefix: _Prefix | None = None
        #: The engine the last group ran on: the prefix resumes into it, and a group whose
        #: first branch starts from a snapshot restores into it (its amplitudes' buffers
        #: reused: a new 26-qubit state costs its page faults, up to a second, a group).
        self._engine: Engine | None = None

    def _stream(self, group: int, which: int) -> np.random.Generator:
        """Stream ``which`` (0: the group's trajectories, 1: its row order) of ``group``."""
        key = (*self.seed.spawn_key, group, which)
        return np.random.default_rng(np.random.SeedSequence(self.seed.entropy, spawn_key=key))

    def run(self) -> np.ndarray:
        """Run what is left; every shot's event row (uint8, shot order).

        Raises:
            Suspended: the control asked to stop; the state was saved first.
        """
        try:
            return self._run()
        finally:  # a kept plan's micro-ops hold no row between runs
            self.base.forget()
            for group, _ in self.groups:
                group.forget()

    def _run(self) -> np.ndarray:
        while self.group < len(self.groups):
            gi = self.order[self.group]
            group, members = self.groups[gi]
            ops = _Group(group)
            if not self.stack and not self.leaves:
                self.stack.append(self._first_branch(gi, len(members)))
                self.progress.simulations += 1
            if self.spans is None:
                self._run_group(ops)
            else:
                self._traced_group(self.spans, ops, len(members))
            self.leaves.sort(key=lambda leaf: leaf[0])
            rows = np.concatenate([rows for _, rows in self.leaves], axis=0)
            if len(members) > 1:  # the row-order stream serves nothing else: one row stays
                rows = rows[self._stream(gi, 1).permutation(len(members))]
            self.bits[members] = rows
            self.leaves = []
            self.group += 1
        self._prefix = self._engine = None
        return self.bits

    def _first_branch(self, gi: int, shots: int) -> Branch:
        """Group ``gi``'s first branch: at its cut, on the error-free state there.

        The group runs on the prefix's own engine (:attr:`_engine` becomes it): the
        branch has no snapshot, and no state is copied into another. When a later group
        starts from the prefix too, the prefix keeps a snapshot and resumes from it in
        the engine this group leaves.
        """
        events = np.zeros(len(self.plan.events), dtype=np.uint8)
        rng = self._stream(gi, 0)
        cut = self.cuts[gi]
        if cut == 0:
            return Branch(0, None, {}, events, shots, rng, ())
        prefix = self._prefix
        if prefix is None or prefix.pos > cut:
            prefix = self._prefix = _Prefix(self.engine_factory(), self.index)
        elif prefix.engine is None:  # lent to the group before: back in that group's engine
            prefix.resume(self._engine if self._engine is not None else self.engine_factory())
        while prefix.pos < cut:  # stop at every cut on the way, whoever runs: the same
            # segments (and so the same rounding) in a run and in its resumption
            prefix.advance(self.base, self._stops[bisect.bisect_right(self._stops, prefix.pos)])
        later = self.group + 1 < len(self.order)  # later groups, by cut: from here on
        if not later:  # no later group starts from the prefix: it ends here
            self._prefix = None
        self._engine = prefix.lend(keep=later)
        return Branch(cut, None, dict(prefix.qmap), events, shots, rng, ())

    def _traced_group(self, recorder: spans.Recorder, ops: _Group, shots: int) -> None:
        """:meth:`_run_group` inside a ``qmk.group`` span with its epochs' spans (the
        first :data:`~qmk.execution.spans.MAX_GROUPS` groups; the others are counted)."""
        if self.group >= spans.MAX_GROUPS:
            recorder.untraced_groups += 1
            self._run_group(ops)
            return
        attributes = {"qmk.group": self.order[self.group], "qmk.shots": shots}
        with recorder.span("qmk.group", attributes) as group:
            fences = np.flatnonzero(ops.kinds == _FENCE_KIND).tolist()
            self._clock = spans.EpochClock(recorder, fences, group.span_id)
            try:
                self._run_group(ops)
            finally:
                self._clock.close()
                self._clock = None

    def _run_group(self, ops: _Group) -> None:
        engine = self._engine
        top = self.stack[-1] if self.stack else None
        if engine is None or top is None or (top.snapshot is None and top.pos == 0):
            engine = self._engine = self.engine_factory()  # from |0>: a fresh engine
        tail = ops.tail
        clock = self._clock
        while self.stack:
            branch = self.stack.pop()
            if branch.snapshot is not None:  # (none past 0: on the prefix's engine as it is)
                engine.restore(branch.snapshot)
            if branch.pending is not None:
                _apply_pending(engine, branch, branch.pending)
            if clock is not None:
                clock.enter(branch.pos)
            self._run_branch(engine, ops, tail, branch)
            if clock is not None:
                clock.leave()

    def _split(
        self,
        engine: Engine,
        branch: Branch,
        pos: int,
        probs: Sequence[float],
        pending: Callable[[int], Pending],
    ) -> int:
        """Split ``branch``'s shots by ``probs`` at ``pos``; the choice it goes on with.

        The other choices wait on the stack as branches of their own (the largest
        deepest); every branch, this one included, gets a stream of its own.
        """
        counts = branch.rng.multinomial(branch.shots, probs)
        taken = [c for c in range(len(probs)) if counts[c] > 0]
        if len(taken) == 1:
            return taken[0]
        seeds = {c: int(branch.rng.integers(2**63)) for c in taken}
        snap = engine.snapshot()
        order = sorted(taken, key=lambda c: (counts[c], c))
        for c in reversed(order[1:]):
            self.stack.append(
                Branch(
                    pos,
                    snap,
                    dict(branch.qmap),
                    branch.events.copy(),
                    int(counts[c]),
                    np.random.default_rng(seeds[c]),
                    (*branch.path, c),
                    pending(c),
                )
            )
            self.progress.simulations += 1
        choice = order[0]
        branch.shots = int(counts[choice])
        branch.rng = np.random.default_rng(seeds[choice])
        branch.path = (*branch.path, choice)
        return choice

    def _run_branch(self, engine: Engine, ops: _Group, tail: int, branch: Branch) -> None:
        index = self.index
        control = self.control
        qmap = branch.qmap
        events = branch.events
        pos = branch.pos
        rows = ops.rows
        while pos < tail:
            if control is not None and control.urgent and control.at_op() == YIELD_NOW:
                self._stop_now(engine, ops, branch, pos)
            op = rows[pos]
            if op.kind in _UNITARY:
                # a maximal run of unitary micro-ops goes to the engine as one segment,
                # whoever asks: the control is read before each of them, and only a stop
                # now cuts the run (its ops so far applied, then rolled back), so the
                # segments, and the state, are those of a run nobody asked
                end = min(ops.run_end(pos), tail)
                if control is not None:
                    self._watch(control, engine, ops, branch, pos, end)
                apply_segment(engine, _segment(rows.span(pos, end), qmap, events, index))
                pos = end
                if control is not None and control.after_segment() == YIELD_NOW:
                    self._stop_now(engine, ops, branch, pos)
                continue
            pos += 1
            if op.guard is not None and not _holds(op.guard, events, index):
                continue
            kind = op.kind
            if kind == "meas":
                q = qmap[op.qubits[0]]
                p1 = min(max(engine.probability(q, op.basis), 0.0), 1.0)
                pending = _collapse(q, op.basis, op.event)
                choice = self._split(engine, branch, pos, (1.0 - p1, p1), pending)
                _apply_pending(engine, branch, pending(choice))
            elif kind == "alloc":
                qmap[op.qubits[0]] = engine.allocate()
            elif kind in ("free", "reset"):
                # The engine's free/reset would collapse the qubit with one random draw
                # for the whole group; split the shots on its Z outcome instead (a
                # measurement that records nothing), so its partners stay right per shot.
                name = op.qubits[0]
                q = qmap[name]
                p1 = min(max(engine.probability(q, "Z"), 0.0), 1.0)
                pending = _discard(q, name, kind == "free")
                choice = self._split(engine, branch, pos, (1.0 - p1, p1), pending)
                _apply_pending(engine, branch, pending(choice))
            elif kind == "werner":
                q = qmap[op.qubits[0]]
                p = (1.0 - op.fidelity) / 3
                pending = _pauli(q)
                choice = self._split(engine, branch, pos, (op.fidelity, p, p, p), pending)
                _apply_pending(engine, branch, pending(choice))
            elif kind == "pauli":  # the shots split by the Pauli each one gets
                pending = _pauli(*[qmap[q] for q in op.qubits])
                choice = self._split(engine, branch, pos, op.params, pending)
                _apply_pending(engine, branch, pending(choice))
            elif kind == "calc":
                compute(op, events)
            elif kind == "halt":
                raise EngineError.of("halted", f"the program stopped at {op.note}")
            elif kind == "fence":
                if self._clock is not None:
                    self._clock.fence(op.epoch)
                while control is not None and (request := control.at_fence(op.epoch)) is not None:
                    branch.pos = pos
                    self._save(engine, branch, op.epoch, request)
        # every leaf samples from a stream of its own (restore() brought back the
        # engine's saved stream: without this, leaves of one snapshot would repeat it)
        engine.reseed(int(branch.rng.integers(2**63)))
        start = max(tail, pos)  # a branch that began past the tail (at its cut) did [tail, pos)
        self.leaves.append(
            (branch.path, _leaf(rows, start, engine, qmap, events, branch.shots, index))
        )

    def _watch(
        self, control: Control, engine: Engine, ops: _Group, branch: Branch, pos: int, end: int
    ) -> None:
        """Read ``control`` before each micro-op of the unitary run ``[pos, end)`` after its
        first: a stop now applies the run up to there and stops (:meth:`_stop_now`)."""
        for cut in range(pos + 1, end):
            if control.urgent and control.at_op() == YIELD_NOW:
                gates = _segment(ops.rows.span(pos, cut), branch.qmap, branch.events, self.index)
                apply_segment(engine, gates)
                self._stop_now(engine, ops, branch, cut)

    def state(self) -> ExecutionState:
        """The whole state of the run now (the running branch, if any, already on its
        stack): what :mod:`qmk.execution.checkpoint` writes and resumes from."""
        return ExecutionState(
            key=self.key,
            engine=self.engine_name,
            epoch=self.epoch,
            group=self.group,
            bits=self.bits.copy(),
            leaves=tuple(self.leaves),
            branches=tuple(self.stack),
            progress=self.progress.to_json(),
        )

    def _save(self, engine: Engine, branch: Branch, epoch: int, request: str) -> None:
        """Save the whole state with ``branch`` (now at ``branch.pos``) on top of the
        stack; stop (:class:`Suspended`) unless ``request`` is a checkpoint."""
        assert self.control is not None
        stopping = request != CHECKPOINT
        self.progress.checkpoints += 1
        if stopping:
            assert self.progress.preempted_at_epochs is not None
            self.progress.preempted_at_epochs.append(epoch)
        self.epoch = epoch
        waiting = Branch(
            branch.pos,
            engine.snapshot(),
            dict(branch.qmap),
            branch.events.copy(),
            branch.shots,
            branch.rng,
            branch.path,
        )
        self.stack.append(waiting)
        try:
            state = self.state()
        finally:
            self.stack.pop()
        self.control.save(state)
        if stopping:
            raise Suspended(state)

    def _stop_now(self, engine: Engine, ops: _Group, branch: Branch, pos: int) -> None:
        """Roll back the running branch's open REV segment, save, and stop.

        The segment is the run of unitary micro-ops (gates and feed-forward Paulis)
        before ``pos`` back to the last irreversible one, or to a fence (itself a
        point to resume from). Events do not change inside it, so each guard is
        decided as it was when the op ran.
        """
        start = ops.run_start(pos)
        undo: list[GateCall] = []
        for gate, qubits, params in reversed(
            _segment(ops.rows.span(start, pos), branch.qmap, branch.events, self.index)
        ):
            adjoint, inverse = GATES[gate].adjoint(params)  # a feed-forward Pauli is its own
            undo.append((adjoint, qubits, inverse))
        apply_segment(engine, undo)
        undone = len(undo)
        if undone:
            self.progress.rollbacks += 1
            self.progress.rollback_gates += undone
        branch.pos = start
        epoch = int(np.count_nonzero(ops.kinds[:start] == _FENCE_KIND))
        self._save(engine, branch, epoch, YIELD_NOW)


#: Micro-op kinds that are unitary: a run of them is one segment for the engine.
_UNITARY = ("gate", "cond")
_IS_UNITARY = kinds_in(_UNITARY)
_SHARED = kinds_in(("gate", "alloc"))


class _Group:
    """A group's micro-ops as a run reads them: by position (:class:`Reader`), where its
    terminal measurements start, and where each run of unitary micro-ops ends."""

    __slots__ = ("_stops", "kinds", "rows", "tail")

    def __init__(self, ops: Ops | Spliced) -> None:
        self.rows = Reader(ops)
        self.kinds = kinds = ops.kinds
        reader = self.rows
        self.tail = tail_of(kinds, ops.guard_list(), lambda i: reader[i].qubits)
        #: The micro-ops that are not unitary, by position: each run ends at one.
        self._stops = np.flatnonzero(~_IS_UNITARY.take(kinds))

    def run_end(self, pos: int) -> int:
        """The end of the run of unitary micro-ops at ``pos`` (the next that is not)."""
        k = int(np.searchsorted(self._stops, pos, "right"))
        return int(self._stops[k]) if k < len(self._stops) else len(self.rows)

    def run_start(self, pos: int) -> int:
        """The start of the run of unitary micro-ops that ends at ``pos``."""
        k = int(np.searchsorted(self._stops, pos, "left"))
        return int(self._stops[k - 1]) + 1 if k else 0


def _prefix_limit(base: Ops) -> int:
    """How far the error-free micro-ops are shared state: up to the first that is not an
    unguarded gate or alloc (a measurement, split, fence, feed-forward or guard)."""
    other = np.flatnonzero(~_SHARED.take(base.kinds))
    return min(int(other[0]) if len(other) else len(base), *base.guards, len(base))


def _common_prefix(base: Reader, ops: Ops | Spliced, limit: int) -> int:
    """How many leading micro-ops ``ops`` shares with ``base`` (at most ``limit``): read
    from where a group's first error is spliced in, up to the first that differs."""
    end = min(limit, len(ops))
    if ops is base.ops:
        return end
    start, read = 0, Reader(ops).__getitem__ if isinstance(ops, Ops) else ops.row
    if isinstance(ops, Spliced) and ops.base is base.ops:
        start = min(ops.at[0], end) if ops.at else end
    for i in range(start, end):
        if base[i] != read(i):
            return i
    return end


class _Prefix:
    """The error-free run, advanced cut by cut, with its snapshot at the last one.

    A group starting at the last cut runs on its engine (:meth:`lend`); the prefix goes
    on from its snapshot in another engine (:meth:`resume`).
    """

    def __init__(self, engine: Engine, index: Mapping[str, int]) -> None:
        self.engine: Engine | None = engine
        self.index = index
        self.pos = 0
        self.qmap: dict[str, int] = {}
        self._events = np.zeros(len(index), dtype=np.uint8)
        self._snapshot: Any = None

    def lend(self, *, keep: bool) -> Engine:
        """Its engine, at :attr:`pos`, for a group to run on; ``keep``: a later group
        starts from the prefix too, so it keeps a snapshot here to :meth:`resume` from."""
        if keep:
            self.snapshot()
        engine, self.engine = self.engine, None
        assert engine is not None
        return engine

    def resume(self, engine: Engine) -> None:
        """Go on in ``engine``, from the snapshot taken before :meth:`lend`."""
        engine.restore(self._snapshot)
        self.engine = engine

    def advance(self, base: Reader, stop: int) -> None:
        """Apply ``base[pos:stop]`` (unguarded gates and allocs only): one segment per
        run of gates."""
        pos = self.pos
        engine = self.engine
        assert engine is not None
        while pos < stop:
            op = base[pos]
            if op.kind == "alloc":
                self.qmap[op.qubits[0]] = engine.allocate()
                pos += 1
                continue
            end = pos + 1
            while end < stop and base[end].kind == "gate":
                end += 1
            gates = _segment(base.span(pos, end), self.qmap, self._events, self.index)
            apply_segment(engine, gates)
            pos = end
        self.pos = pos
        self._snapshot = None

    def snapshot(self) -> Any:
        """The engine's snapshot here (taken once per position)."""
        if self._snapshot is None:
            assert self.engine is not None
            self._snapshot = self.engine.snapshot()
        return self._snapshot


def _segment(
    run: Iterable[MicroOp], qmap: Mapping[str, int], events: np.ndarray, index: Mapping[str, int]
) -> list[GateCall]:
    """The gates a run of unitary micro-ops applies: guards and feed-forward parities are
    decided now (no event changes inside a run)."""
    gates: list[GateCall] = []
    for op in run:
        if op.guard is not None and not _holds(op.guard, events, index):
            continue
        if op.kind == "gate":
            gates.append((op.gate, [qmap[q] for q in op.qubits], op.params))
        elif _parity(op, events):
            gates.append((op.gate, [qmap[op.qubits[0]]], ()))
    return gates


def _collapse(q: int, basis: str, event: int) -> Callable[[int], Pending]:
    return lambda outcome: Pending("collapse", q, outcome, basis=basis, event=event)


def _discard(q: int, name: str, free: bool) -> Callable[[int], Pending]:
    return lambda outcome: Pending("discard", q, outcome, name=name, free=free)


def _pauli(q: int, partner: int = -1) -> Callable[[int], Pending]:
    return lambda outcome: Pending("pauli", q, outcome, partner=partner)


def pauli_channel(
    qubits: tuple[str, ...], probs: Sequence[float], guard: Guard | None = None
) -> MicroOp:
    """The micro-op of a Pauli channel on one or two qubits: ``probs`` the probability of
    each Pauli but the identity (X, Y, Z; or the 15 pairs ``4 * first + second`` from
    IX), the identity taking the rest. A run splits its shots there by the Pauli each
    one gets, so shots without an error stay one trajectory.

    >>> pauli_channel(("q",), (0.01, 0.0, 0.02)).params
    (0.97, 0.01, 0.0, 0.02)
    """
    if len(probs) != 4 ** len(qubits) - 1 or not 1 <= len(qubits) <= 2:
        raise ValueError(f"{len(probs)} probabilities for a channel on {len(qubits)} qubit(s)")
    rest = max(0.0, 1.0 - math.fsum(probs))
    return MicroOp("pauli", qubits, guard, params=(rest, *map(float, probs)))


def _leaf(
    ops: Reader,
    tail: int,
    engine: Engine,
    qmap: Mapping[str, int],
    events: np.ndarray,
    shots: int,
    index: Mapping[str, int],
) -> np.ndarray:
    rows = np.tile(events, (shots, 1))
    measured: list[tuple[int, int]] = []
    done: set[str] = set()
    gates: list[GateCall] = []  # one segment: the gates before sampling, basis changes too
    append = gates.append
    for op in ops.span(tail, len(ops)):
        kind = op.kind
        if kind == "gate":  # (most of them: a set's isdisjoint, not a generator, a gate)
            qubits = op.qubits
            if done.isdisjoint(qubits):
                append((op.gate, [qmap[q] for q in qubits], op.params))
        elif kind == "meas":
            q = qmap[op.qubits[0]]
            gates += [(gate, [q], ()) for gate in TO_Z[op.basis]]
            measured.append((q, op.event))
            done.add(op.qubits[0])
    apply_segment(engine, gates)
    if measured and shots:
        samples = engine.sample([q for q, _ in measured], shots)
        for column, (_, evi) in enumerate(measured):
            if evi >= 0:
                rows[:, evi] = samples[:, column]
    for op in ops.span(tail, len(ops)):
        if op.kind == "calc" and shots:
            compute_rows(op, rows)
    return rows


def compute_rows(op: MicroOp, rows: np.ndarray) -> None:
    """A ``calc`` of the terminal suffix on every sampled row: once per distinct input
    (the shots that agree are computed together)."""
    if not op.inputs:  # a constant: the same in every row
        record = np.zeros(rows.shape[1], dtype=rows.dtype)
        compute(op, record)
        rows[:, list(op.outputs)] = record[list(op.outputs)]
        return
    inputs = rows[:, list(op.inputs)]
    distinct, which = np.unique(inputs, axis=0, return_inverse=True)
    outputs = np.empty((len(distinct), len(op.outputs)), dtype=rows.dtype)
    record = np.zeros(rows.shape[1], dtype=rows.dtype)
    for k, values in enumerate(distinct):
        record[list(op.inputs)] = values
        compute(op, record)
        outputs[k] = record[list(op.outputs)]
    rows[:, list(op.outputs)] = outputs[which.reshape(-1)]
