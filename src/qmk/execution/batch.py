"""A plan lowered to an engine's batch circuit (:mod:`qmk.engines.batch`).

When the chosen engine offers batch sampling (the stabilizer engine does, through
stim), a plan whose feed-forward is linear over the measurement record
(``COND_PAULI``, and Pauli gates guarded by one event) becomes one
:class:`~qmk.engines.batch.BatchCircuit`. A composite op is its expansion in the op
table. A basis change, Z measurements and the change undone measure the Pauli products
they amount to. So ``MEASURE_ANGLE`` at a quarter turn is an X or Y measurement, inverted
for a half turn, and ``MEASURE_BELL`` is two product measurements, XX then ZZ. A Werner
step of fidelity F is a Pauli channel. Each logical-noise location becomes an error site.

Logical noise is drawn here, not by the engine (:func:`sample`). Every site strikes
each shot independently with its location's X, Y, Z probabilities. So QMK draws how
many shots each site strikes (binomial), which ones (a uniform subset) and which
Pauli. The engine then XORs each error's measurement flips into noiseless samples
(:class:`~qmk.engines.batch.Errors`). A Pauli error's flips are the same in every
shot: a batch circuit allows only Paulis controlled by record bits as feed-forward,
and a Pauli frame propagates through those. A program with any other feed-forward
is not lowered (:func:`why_not_lowerable`) and runs as trajectories. The statistics
are those of the noisy circuit exactly, at nearly the cost of a noiseless one.
``lower(plan, heralded=True)`` lowers each location to a heralded Pauli channel that
the engine samples instead (a reference path to compare against);
``lower(plan, channels=True)`` to a Pauli channel, for an engine whose batch sampler
applies it exactly (the statevector's density matrix, :mod:`qmk.engines.density`, which
takes non-Clifford gates too but no feed-forward).

**Pause points.** A batch circuit is sampled in one pass per chunk of
:data:`CHUNK_SHOTS` shots (:func:`sample_chunked`). Chunk 0 uses the run's seed, so a
run of at most that many shots is a single pass. Chunk ``k`` uses :func:`chunk_seed`.
The logical errors of every shot are drawn first, at once, from the run's noise stream.
Their flips are found once (:class:`RunFlips`), and each chunk takes its own. The
chunks' rows stay bit-packed until the run ends (or saves a state). The chunks
depend on the shots and the seed only, never on who asks. So a run stopped between two
chunks and resumed gives the bits of a run that never stopped. A program with at least
one ``FENCE_EPOCH`` asks its control (:class:`~qmk.execution.trajectories.Control`)
between every two chunks, as a trajectories run asks at a fence. The saved state holds
the bits of the chunks done (``group``: how many). Its ``epoch`` is the program's
last, since every shot sampled so far has passed every fence. Inside a chunk a batch run
does not stop: its fences are pause points only between chunks.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from qmk.engines.batch import (
    BatchCircuit,
    BatchSampler,
    Errors,
    Instruction,
    Kind,
    check_errors,
    count_ones,
    flip_words,
    unpack_columns,
    xor_flips,
)
from qmk.engines.gates import GATES, pauli_string, unitary
from qmk.engines.instructions import OBJECT, PLAIN, Instructions
from qmk.execution.branches import ExecutionState, Progress
from qmk.execution.chunks import pause_between_chunks, resume_chunks
from qmk.execution.locations import Locations, Noise
from qmk.execution.plan import (
    BASIS_OF,
    GATE_OF,
    Call,
    Plan,
    PlanSteps,
    expand,
    gate_codes,
    gate_of,
    spread,
)
from qmk.execution.result import PackedRows
from qmk.qvm.expansions import Micro
from qmk.qvm.graph import Node, gc_paused
from qmk.qvm.ops import OPS, Exec

if TYPE_CHECKING:
    from qmk.execution.trajectories import Control


@dataclass(frozen=True, slots=True, eq=False)
class SiteRates:
    """The X, Y, Z probabilities of error sites as :func:`draw_errors` reads them: site
    ``i`` has the row ``channels[i]`` of ``table`` (a few distinct rows among a
    million sites: no row a site is made), whose sum is ``sums[channels[i]]``; each
    site's sum capped at certainty (:attr:`capped`, made on first read: a thinned draw
    reads only its candidates' (:meth:`capped_at`), so a million sites' column is not
    made for a thousand errors; as floats where the sites are few enough to be drawn one
    at a time: ``capped_floats``). Found once for a lowered plan rather than at every run.

    >>> SiteRates.of([[0.1, 0.0, 0.2], [0.5, 0.5, 0.5]]).capped_floats
    (0.30000000000000004, 1.0)
    """

    table: np.ndarray
    channels: np.ndarray
    sums: np.ndarray
    capped_floats: tuple[float, ...]
    made: list[np.ndarray] = field(default_factory=list, repr=False)  # (capped, once read)
    bounded: list[float] = field(default_factory=list, repr=False)  # (bound, once read)

    @classmethod
    def of(cls, probs: np.ndarray | Sequence[Sequence[float]]) -> SiteRates:
        """The rates of sites whose rows (X, Y, Z) are ``probs``."""
        rows = np.asarray(probs, dtype=np.float64).reshape(-1, 3)
        return cls.of_table(rows, np.arange(len(rows)))

    @classmethod
    def of_table(cls, table: np.ndarray, channels: np.ndarray) -> SiteRates:
        """The rates of sites whose rows are ``table[channels]``."""
        table = np.asarray(table, dtype=np.float64).reshape(-1, 3)
        sums = table.sum(axis=1)
        few = len(channels) <= _SCALAR_SITES  # (a million sites' floats: a tenth of a second)
        floats = tuple(np.minimum(sums, 1.0)[channels].tolist()) if few else ()
        return cls(table, channels, sums, floats)

    def __len__(self) -> int:
        return len(self.channels)

    @property
    def capped(self) -> np.ndarray:
        """Each site's sum capped at certainty, in site order."""
        if not self.made:
            self.made.append(np.minimum(self.sums, 1.0)[self.channels])
        return self.made[0]

    @property
    def bound(self) -> float:
        """The largest site's rate, capped at certainty (0 for no site): the largest sum
        of a row some site uses (a row no site uses bounds nothing)."""
        if not self.bounded:
            used = np.zeros(len(self.sums), dtype=bool)
            used[self.channels] = True
            found = min(float(self.sums[used].max()), 1.0) if len(self.channels) else 0.0
            self.bounded.append(found)
        return self.bounded[0]

    def capped_at(self, sites: np.ndarray) -> np.ndarray:
        """:attr:`capped` of ``sites`` only (the same numbers, without the whole column)."""
        if self.made:
            return self.made[0][sites]
        return np.minimum(self.sums, 1.0)[self.channels[sites]]


@dataclass(frozen=True, slots=True, kw_only=True)
class LoweredPlan:
    """A plan as a batch circuit, with what it takes to read and noise its samples.

    ``event_columns`` gives the record column of each event (None for an event nothing
    produces). The noise locations depend on how the plan was lowered. By default they
    are the circuit's error sites in order (``sites``). Lowered ``heralded``, they are the
    herald column of each. Lowered ``channels``, there are none: the plan's noise is the
    circuit's Pauli channels. ``rates`` are the sites' rates (:class:`SiteRates`; None:
    found from ``sites`` when drawn)."""

    circuit: BatchCircuit
    event_columns: tuple[int | None, ...]
    herald_columns: tuple[int, ...] = ()
    sites: Sequence[Noise] = ()
    rates: SiteRates | None = field(default=None, compare=False, repr=False)
    channels: bool = False

    def site_rates(self) -> SiteRates:
        """:attr:`rates`, or the rates of :attr:`sites` found now."""
        if self.rates is not None:
            return self.rates
        return site_rates(self.sites)

    @property
    def noise_sampling(self) -> str:
        """How logical errors reach the samples (telemetry ``noise_sampling``):
        ``"flip-masks"`` (drawn by :func:`sample`), ``"heralded"`` (by the engine),
        ``"exact"`` (channels the engine applies to a density matrix: none drawn) or
        ``"off"`` (no noise location)."""
        if self.sites:
            return "flip-masks"
        if self.channels:
            return "exact"
        return "heralded" if self.herald_columns else "off"


#: The kinds of step that compute on outcomes (and their ops): with a guard, all a batch
#: circuit may not express.
_COMPUTES = (Exec.CALC, Exec.HALT)
_COMPUTING = tuple(op for op, spec in OPS.items() if spec.kind in _COMPUTES)
_GUARD = operator.attrgetter("guard")


def why_not_lowerable(node: Node, kind: Exec) -> str | None:
    """Why a step (``node``, of ``kind``) cannot be part of a batch circuit, or None
    when it can."""
    if kind in _COMPUTES:
        return f"node {node.id!r} ({node.op}) computes on outcomes at run time"
    guard = node.guard
    if guard is None:
        return None
    if kind is Exec.GATE and GATE_OF[node.op] in ("x", "y", "z") and len(guard.terms) == 1:
        return None
    return f"node {node.id!r} ({node.op}) has a guard a batch circuit cannot express"


def first_unlowerable(plan: Plan) -> str | None:
    """Why the first step of ``plan`` that fails :func:`why_not_lowerable` does, or None
    when every step can be part of a batch circuit (only a guard or an op that computes
    on outcomes can fail: the others are not asked, and a program of neither, as its op
    counts and :attr:`~qmk.execution.plan.Plan.guarded` say, none)."""
    if not any(map(plan.program.counts.by_op.get, _COMPUTING)) and not plan.guarded:
        return None
    steps = plan.steps
    for node, kind in zip(steps.nodes, steps.kinds, strict=True):
        if node.guard is not None or kind in _COMPUTES:
            why = why_not_lowerable(node, kind)
            if why is not None:
                return why
    return None


@gc_paused()  # a bulk pass that builds no cycles
def lower(plan: Plan, *, heralded: bool = False, channels: bool = False) -> LoweredPlan | None:
    """The plan as a batch circuit, or None when a step fails :func:`why_not_lowerable`
    or a composite's expansion has a gate that is not Clifford (``INJECT_T_STATE``'s T,
    ``MEASURE_ANGLE`` off a quarter turn). Noise locations become error sites; with
    ``heralded``, heralded Pauli channels; with ``channels``, Pauli channels that the
    engine applies itself (a density matrix, :mod:`qmk.engines.density`: exactly).

    Raises:
        ValueError: both ``heralded`` and ``channels``.
    """
    if heralded and channels:
        raise ValueError("noise locations lower to heralded channels or to channels, not both")
    if first_unlowerable(plan) is not None:
        return None
    index = {q: i for i, q in enumerate(plan.program.graph.resources.vqs)}
    steps = plan.steps
    nodes = steps.nodes
    low = _Lowering(index, heralded, channels, plan.noise)
    # the unguarded gates (most steps) are written as columns; the others one by one
    plain = steps.kind_mask(Exec.GATE)
    if plan.guarded:
        plain &= np.fromiter(
            map(operator.is_, map(_GUARD, nodes), itertools.repeat(None)), bool, len(steps)
        )
    own = plain.astype(np.int64)  # each step's instructions
    measures = _unguarded_measures(plan, plain)
    for k in np.flatnonzero(~plain).tolist():
        before = len(low.out)
        measure = measures.get(k)
        if measure is not None:  # (most other steps: read off the columns, no step made)
            low.measure(k, *measure)
        elif not low.step(nodes[k], steps.kind(k), k):
            return None
        own[k] = len(low.out) - before
    instructions = low.placed(steps, plain, own)
    columns = tuple(low.record.get(event) for event in plan.events)
    circuit = BatchCircuit(num_qubits=len(index), instructions=instructions)
    runs = low.runs
    sites = runs.ordered if low.drawn else ()
    rates = site_rates(sites) if sites else None
    return LoweredPlan(
        circuit=circuit,
        event_columns=columns,
        herald_columns=low.heralds,
        sites=sites,
        rates=rates,
        channels=channels and bool(plan.noise),
    )


def _unguarded_measures(
    plan: Plan, plain: np.ndarray
) -> dict[int, tuple[tuple[int, ...], str, str]]:
    """Each unguarded measurement step of ``plan`` (none of ``plain``) by its index: its
    circuit qubits, basis and the event it records, read off the steps' columns
    (:meth:`PlanSteps.qubits_of`, :meth:`PlanSteps.recorded`) without making the step,
    as :meth:`_Lowering.step` would write it."""
    steps = plan.steps
    op_codes, ops = steps.op_codes
    picked = steps.kind_mask(Exec.MEASURE) & ~plain
    if plan.guarded:
        picked &= np.fromiter(
            map(operator.is_, map(_GUARD, steps.nodes), itertools.repeat(None)), bool, len(steps)
        )
    at = np.flatnonzero(picked)
    if not len(at):
        return {}
    sizes = steps.qubit_columns[0][picked].tolist()
    flat = steps.qubits_of(picked).tolist()
    bounds = np.r_[0, np.cumsum(sizes)].tolist()
    qubits = [tuple(flat[a:b]) for a, b in itertools.pairwise(bounds)]
    bases = [BASIS_OF[ops[c]] for c in op_codes[picked].tolist()]
    return dict(
        zip(at.tolist(), zip(qubits, bases, steps.recorded(picked), strict=True), strict=True)
    )


class _SiteRuns:
    """A plan's noise locations in the order :func:`lower` writes them, in runs
    (:meth:`~qmk.execution.locations.Locations.runs`): run ``r`` is the sites ``ordered``
    from ``bounds[r]`` to ``bounds[r + 1]``, and ``keys[r]`` is its ``2 * step``
    (before) or ``2 * step + 1`` (after); ``row_keys`` each site's. ``qubits`` are the
    sites' circuit qubits and ``channels`` their rows of ``table`` (X, Y, Z)."""

    __slots__ = ("bounds", "channels", "keys", "ordered", "qubits", "row_keys", "table")

    def __init__(self, locations: Locations, index: Mapping[str, int]) -> None:
        runs = locations.runs()
        ordered = self.ordered = runs.rows
        self.keys, self.bounds, self.row_keys = runs.keys, runs.bounds, runs.row_keys
        at = np.array([index[name] for name in ordered.names], dtype=np.int64)
        self.qubits: np.ndarray = (
            ordered.qubits  # (the names in the circuit's order: no gather of a million)
            if np.array_equal(at, np.arange(len(at)))
            else at[ordered.qubits]
            if len(ordered)
            else np.zeros(0, dtype=np.int64)
        )
        self.channels: np.ndarray = ordered.channels
        self.table: list[tuple[float, ...]] = [tuple(row) for row in ordered.table.tolist()]

    def instructions(self, kind: Kind) -> list[Instruction]:
        """The sites as instructions of ``kind``: one object per (qubit, channel)."""
        width = max(len(self.table), 1)
        pairs, which = np.unique(self.qubits * width + self.channels, return_inverse=True)
        made = [
            Instruction(kind=kind, qubits=(q,), probs=self.table[c])
            for q, c in (divmod(pair, width) for pair in pairs.tolist())
        ]
        return list(map(made.__getitem__, which.tolist()))


def site_rates(locations: Sequence[Noise]) -> SiteRates:
    """The rates of noise ``locations``, in order: its table and each one's row of it for
    :class:`~qmk.execution.locations.Locations`."""
    if isinstance(locations, Locations):
        return SiteRates.of_table(locations.table, locations.channels)
    return SiteRates.of([[loc.px, loc.py, loc.pz] for loc in locations])


class _Lowering:
    """:func:`lower`'s circuit as it is written: the instructions of the steps that are
    not unguarded gates, the record column of each event, the heralds' columns and the
    error sites."""

    def __init__(
        self,
        index: Mapping[str, int],
        heralded: bool,
        channels: bool,
        noise: Locations,
    ) -> None:
        self.index = index
        self.heralded = heralded
        self.out: list[Instruction] = []
        self.record: dict[str, int] = {}
        self.heralds: tuple[int, ...] = ()
        self.count = 0  # the record bits before the next instruction
        self.measures = 0  # ... of them measurements
        self.site_kind = (
            Kind.HERALDED_PAULI_CHANNEL
            if heralded
            else Kind.PAULI_CHANNEL
            if channels
            else Kind.ERROR_SITE
        )
        self.drawn = not (heralded or channels)  # the caller draws the sites' errors
        self.runs = _SiteRuns(noise, index)

    def measure(self, at: int, qubits: tuple[int, ...], basis: str, event: str) -> None:
        """Write the ``at``-th step, a measurement of ``qubits`` in ``basis`` that records
        ``event`` (without a guard)."""
        if self.heralded:  # the record bits before it: heralds too
            self._count_heralds(at)
        self.measured(Instruction(kind=Kind.MEASURE, qubits=qubits, basis=basis), event)

    def _count_heralds(self, at: int) -> None:
        runs = self.runs
        heralds = runs.bounds[np.searchsorted(runs.keys, 2 * at, side="right")]
        self.count = self.measures + int(heralds)

    def measured(self, instruction: Instruction, event: str) -> None:
        self.out.append(instruction)
        self.record[event] = self.count
        self.count += 1
        self.measures += 1

    def placed(self, steps: PlanSteps, plain: np.ndarray, own: np.ndarray) -> Instructions:
        """The circuit: each step's sites before it, its ``own`` instructions (the
        unguarded gates' made here from ``plain``, the others written by :meth:`step`)
        and its sites after it, as columns. Sites drawn by the caller are no rows: they
        stand beside the rows (:class:`~qmk.engines.instructions.Instructions`' side
        table), each before its step's first row or after its last."""
        runs = self.runs
        sited = len(runs.keys) > 0 and not self.drawn  # (sites as rows: objects)
        total = own
        if sited:  # each step's sites before it and after it, rows around its own
            by_key = np.zeros(2 * len(own), dtype=np.int64)
            by_key[runs.keys] = np.diff(runs.bounds)
            before = by_key[0::2]
            total = before + own + by_key[1::2]
        start = np.cumsum(total) - total  # each step's first row
        if sited:
            start += before  # ... and its first own row
        rows = int(total.sum())
        del total
        # every row a site's until a step's own row is written over it
        kinds = np.full(rows, OBJECT, dtype=np.uint8)
        codes = np.empty(rows, dtype=np.int64)
        widths = np.ones(rows, dtype=np.uint8)  # qubits a row keeps in the columns (few)
        # the unguarded gates: a row each, their (gate, params) and qubits as columns
        plain_codes, gates = gate_codes(steps, plain)
        at = start[plain]
        kinds[at] = PLAIN
        codes[at] = plain_codes
        widths[at] = steps.qubit_columns[0][plain]
        del plain_codes
        # the other steps' instructions: objects, in order
        others = ~plain
        object_rows = spread(start[others], own[others])
        codes[object_rows] = np.arange(len(object_rows))
        widths[object_rows] = 0
        objects: list[Instruction] = list(self.out)
        site_at: np.ndarray | None = None
        if self.drawn and len(runs.keys):
            # each site's row: its step's first (key ``2 * step``: before it) or the row
            # after its last (``2 * step + 1``), gathered by the site's key
            edges = np.empty(2 * len(start), dtype=np.int64)
            edges[0::2] = start
            edges[1::2] = start
            edges[1::2] += own
            site_at = edges[runs.row_keys]
            del edges
        del start
        if sited:
            # the sites: a row each, every row not a step's own, in their runs' order
            # (the runs are by step, before it then after it, as the rows are laid)
            undrawn = np.ones(rows, dtype=bool)
            undrawn[at] = False
            undrawn[object_rows] = False
            site_rows = np.flatnonzero(undrawn)
            del undrawn
            widths[site_rows] = 0
            codes[site_rows] = len(objects) + np.arange(len(site_rows))
            objects += runs.instructions(self.site_kind)
            if self.heralded:  # a herald's column: the record bits before it
                records = np.zeros(rows, dtype=np.int64)
                records[object_rows] = [instruction.records for instruction in self.out]
                records[site_rows] = 1
                self.heralds = tuple((np.cumsum(records) - records)[site_rows].tolist())
        offsets = np.zeros(rows + 1, dtype=np.int64)
        np.cumsum(widths.astype(np.int64), out=offsets[1:])  # (numpy's fast sum: of int64)
        del widths
        drawn = site_at is not None
        return Instructions(
            kinds,
            codes,
            offsets,
            steps.qubits_of(plain),  # (indices into the circuit's qubits)
            gates=gates,
            probs=runs.table if drawn else (),
            objects=objects,
            site_at=site_at,
            site_qubits=runs.qubits if drawn else None,
            site_codes=runs.channels if drawn else None,
        )

    def step(self, node: Node, kind: Exec, at: int) -> bool:
        """Write one step (the ``at``-th, ``node`` of ``kind``), not an unguarded gate;
        False when a composite's expansion cannot be written."""
        if self.heralded:  # the record bits before it: heralds too
            self._count_heralds(at)
        qs = tuple(self.index[q] for q in node.vqs)
        emit, record = self.out.append, self.record
        if kind in (Exec.ALLOC, Exec.RESET):
            emit(Instruction(kind=Kind.RESET, qubits=qs))
        elif kind is Exec.GATE:
            guard = node.guard
            gate, params = gate_of(node)
            if guard is None:
                emit(Instruction(kind=Kind.GATE, qubits=qs, gate=gate, params=params))
            else:
                term = guard.terms[0]
                emit(
                    Instruction(
                        kind=Kind.GATE,
                        qubits=qs,
                        gate=gate,
                        params=params,
                        controls=(record[term.event],),
                        invert=term.equals == 0,
                    )
                )
        elif kind is Exec.MEASURE:
            self.measured(
                Instruction(kind=Kind.MEASURE, qubits=qs, basis=BASIS_OF[node.op]),
                node.produces[0],
            )
        elif kind is Exec.COND_PAULI:
            pauli = str(node.args["mask"])
            if pauli != "I":
                controls = tuple(record[event] for event in node.inputs)
                emit(Instruction(kind=Kind.GATE, qubits=qs, gate=pauli.lower(), controls=controls))
        elif calls := expand(node):
            composite = _composite(calls, self.index)
            if composite is None:
                return False
            for instruction, event in composite:
                if event:
                    self.measured(instruction, event)
                else:
                    emit(instruction)
        return True


def _composite(
    calls: Sequence[Call], index: Mapping[str, int]
) -> list[tuple[Instruction, str]] | None:
    """A composite step's calls (:func:`qmk.execution.plan.expand`) as batch instructions,
    each with the event it records ("" for none); None when a batch circuit cannot carry
    them out: a gate that is not Clifford, or measurements in another shape than
    :func:`_measurements` takes."""
    if not all(GATES[c.gate].is_clifford(c.params) for c in calls if c.kind is Micro.GATE):
        return None
    if any(c.kind is Micro.MEASURE for c in calls):
        return _measurements(calls, index)
    out: list[tuple[Instruction, str]] = []
    for call in calls:
        qs = tuple(index[q] for q in call.qubits)
        if call.kind is Micro.RESET:
            if out and out[-1][0].kind is Kind.RESET:  # consecutive resets: one instruction
                qs = out.pop()[0].qubits + qs
            out.append((Instruction(kind=Kind.RESET, qubits=qs), ""))
        elif call.kind is Micro.GATE:
            out.append(
                (Instruction(kind=Kind.GATE, qubits=qs, gate=call.gate, params=call.params), "")
            )
        elif call.fidelity < 1:  # WERNER
            p = (1 - call.fidelity) / 3
            out.append((Instruction(kind=Kind.PAULI_CHANNEL, qubits=qs, probs=(p, p, p)), ""))
    return out


def _measurements(
    calls: Sequence[Call], index: Mapping[str, int]
) -> list[tuple[Instruction, str]] | None:
    """Calls shaped as a basis change U, Z measurements and U's undo, as measurements.

    Such calls measure the Pauli products ``U^dagger Z U``, one for each measured qubit.
    A one-qubit product is a measurement in its basis (inverted for -1). A longer one is
    an ``MEASURE_PRODUCT``. None for any other shape, or a product with sign -1."""
    split = next(i for i, c in enumerate(calls) if c.kind is not Micro.GATE)
    end = next((i for i in range(split, len(calls)) if calls[i].kind is not Micro.MEASURE), None)
    basis, measures = calls[:split], calls[split:end]
    undo = calls[end:] if end is not None else ()
    if (
        any(c.undo for c in basis)
        or len(undo) != len(basis)
        or not all(c.kind is Micro.GATE and c.undo for c in undo)
    ):
        return None
    qubits = tuple(dict.fromkeys(q for c in calls for q in c.qubits))
    local = {q: i for i, q in enumerate(qubits)}
    change = tuple((c.gate, tuple(local[q] for q in c.qubits), c.params) for c in basis)
    out: list[tuple[Instruction, str]] = []
    for call in measures:
        found = _observable(change, len(qubits), local[call.qubits[0]])
        if found is None:
            return None
        sign, letters = found
        support = [i for i, letter in enumerate(letters) if letter != "I"]
        if len(support) == 1:
            (at,) = support
            instruction = Instruction(
                kind=Kind.MEASURE, qubits=(index[qubits[at]],), basis=letters[at], invert=sign < 0
            )
        elif sign > 0:
            instruction = Instruction(
                kind=Kind.MEASURE_PRODUCT,
                qubits=tuple(index[qubits[i]] for i in support),
                paulis="".join(letters[i] for i in support),
            )
        else:
            return None
        out.append((instruction, call.event))
    return out


@functools.lru_cache(maxsize=1024)
def _observable(
    change: tuple[tuple[str, tuple[int, ...], tuple[float, ...]], ...], num_qubits: int, qubit: int
) -> tuple[int, str] | None:
    """The Pauli product (with its sign) that measuring Z on ``qubit`` after ``change``
    measures: ``U^dagger Z U``."""
    u = unitary(change, num_qubits)
    z = unitary((("z", (qubit,), ()),), num_qubits)
    return pauli_string(u.conj().T @ z @ u)


def sample(
    lowered: LoweredPlan,
    sampler: BatchSampler,
    shots: int,
    seed: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, int]:
    """``shots`` rows of the lowered plan's event bits, and how many logical errors
    struck: drawn with ``rng`` (:func:`draw_errors`) when the plan has error sites,
    counted by the heralds when it was lowered ``heralded``. ``seed`` seeds the engine."""
    errors = None
    if lowered.sites:
        errors = _draw_errors(lowered.site_rates(), shots, rng)
    bits, heralded = sampler.sample(
        shots, seed, lowered.event_columns, lowered.herald_columns, errors
    )
    return bits, heralded if errors is None else len(errors)


#: How many shots one pass of a batch sampler draws; between two chunks a run may pause.
#: Not a power of two: stim's sampler is slower per shot at 2^15 or 2^16 shots than at
#: 50,000, its bit tables' power-of-two strides sharing cache sets (``docs/engines.md``).
CHUNK_SHOTS = 50_000


def chunk_seed(seed: int, chunk: int) -> int:
    """The engine seed of chunk ``chunk`` of a run seeded ``seed``: chunk 0 keeps ``seed``,
    the others draw theirs from ``SeedSequence([seed, chunk])``.

    >>> chunk_seed(7, 0), chunk_seed(7, 1) == chunk_seed(7, 1), chunk_seed(7, 1) == 7
    (7, True, False)
    """
    if chunk == 0:
        return seed
    state = np.random.SeedSequence([seed, chunk]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class RunFlips:
    """The errors of a run's shots from ``first`` on, sorted by shot, with the flips of
    every site they strike, found once for the run (:meth:`BatchSampler.flips`): what
    each chunk XORs into its noiseless samples (:meth:`apply`)."""

    shots: np.ndarray
    lanes: np.ndarray
    paulis: np.ndarray
    words: np.ndarray

    @classmethod
    def of(cls, sampler: BatchSampler, errors: Errors, shots: int, first: int = 0) -> RunFlips:
        """The flips of ``errors`` (of a run of ``shots`` shots) at shots ``first`` on.

        Raises:
            EngineError: ``QE105`` for errors outside the circuit's sites or the shots.
        """
        check_errors(errors, sampler.num_sites, shots)
        mine = errors.shots >= first
        struck = errors.shots[mine]
        order = np.argsort(struck, kind="stable")
        distinct, lanes = np.unique(errors.sites[mine][order], return_inverse=True)
        return cls(
            shots=struck[order],
            lanes=lanes,
            paulis=errors.paulis[mine][order],
            words=flip_words(sampler.flips(distinct)),
        )

    def apply(self, packed: np.ndarray, lo: int) -> None:
        """XOR the flips of the errors of shots ``lo`` to ``lo + len(packed)`` into
        ``packed``, those shots' bit-packed record rows."""
        a, b = np.searchsorted(self.shots, (lo, lo + len(packed)))
        xor_flips(packed, self.words, self.lanes[a:b], self.shots[a:b] - lo, self.paulis[a:b])


def sample_chunked(
    lowered: LoweredPlan,
    sampler: BatchSampler,
    shots: int,
    seed: int,
    rng: np.random.Generator,
    *,
    fences: int = 0,
    control: Control | None = None,
    resume: ExecutionState | None = None,
    key: str | Callable[[], str] = "",
    engine_name: str = "",
    chunk: int = CHUNK_SHOTS,
    keep_packed: bool = False,
) -> tuple[np.ndarray | PackedRows, int, Progress]:
    """:func:`sample` in chunks of ``chunk`` shots, pausing between them (see the module
    docstring): the bits, the logical errors that struck, and the run's progress.

    ``fences`` is how many ``FENCE_EPOCH`` the program has: with none the control is
    never asked. ``resume`` is a state a control saved between two chunks of this run.
    ``key`` is the run's key (:func:`~qmk.execution.request.run_key`), or what makes it:
    made only for a resume or a pause, the only places it is read.

    The work that does not depend on the chunk is done once: the flips of every site
    struck (:class:`RunFlips`). Each chunk's record rows stay bit-packed until the end
    (or a pause). Then the event columns are unpacked once for every shot. With
    ``keep_packed``, where the events are the records in order, the bits stay packed
    (:class:`PackedRows`). The counts are then found packed, and a result's ``bits``
    unpacks them on first use.

    Raises:
        Suspended: the control asked the run to stop; its state was saved first.
        EngineError: ``QE106 checkpoint-mismatch`` for a state of another run.
    """
    errors = None
    if lowered.sites:
        errors = _draw_errors(lowered.site_rates(), shots, rng)
    count = max(1, -(-shots // chunk))
    progress = Progress(simulations=1, preempted_at_epochs=[])
    heralded = 0
    start = 0
    saved: np.ndarray | None = None
    if resume is not None:
        key = key() if callable(key) else key
        saved, start, progress, extra = resume_chunks(
            resume,
            key,
            shape=(shots,),
            chunks=count,
            what="run (program, shots, seed, engine, noise or profile differ)",
        )
        heralded = int(extra.get("heralded", 0))
    first = start * chunk
    # no error struck (most runs at logical error rates): nothing to find or XOR
    flips = (
        RunFlips.of(sampler, errors, shots, first) if errors is not None and len(errors) else None
    )
    columns = lowered.event_columns
    packed: np.ndarray | None = None
    for k in range(start, count):
        lo, hi = k * chunk, min(shots, (k + 1) * chunk)
        rows = sampler.sample_packed(hi - lo, chunk_seed(seed, k))
        if flips is not None:
            flips.apply(rows, lo)
        heralded += count_ones(rows, lowered.herald_columns)
        if count == 1:
            packed = rows
            break
        if packed is None:
            packed = np.empty((shots, rows.shape[1]), dtype=rows.dtype)
        packed[lo:hi] = rows
        if control is None or not fences or k + 1 == count:
            continue
        key = key() if callable(key) else key
        pause_between_chunks(
            control,
            epoch=fences,
            done=k + 1,
            bits=functools.partial(_bits, saved, packed, columns, first, hi),
            progress=progress,
            key=key,
            engine=engine_name,
            extra={"heralded": heralded},
        )
    assert packed is not None
    return (
        (_final_bits if keep_packed else _bits)(saved, packed, columns, first, shots),
        heralded if errors is None else len(errors),
        progress,
    )


def _bits(
    saved: np.ndarray | None,
    packed: np.ndarray,
    columns: tuple[int | None, ...],
    first: int,
    done: int,
) -> np.ndarray:
    """The event bits of a run's shots: those before ``first`` from ``saved`` (a resumed
    run's), those from ``first`` to ``done`` unpacked from ``packed``, the rest 0."""
    if saved is None and first == 0 and done == len(packed):
        return unpack_columns(packed, columns)
    bits = np.zeros((len(packed), len(columns)), dtype=np.uint8) if saved is None else saved.copy()
    bits[first:done] = unpack_columns(packed[first:done], columns)
    return bits


def _final_bits(
    saved: np.ndarray | None,
    packed: np.ndarray,
    columns: tuple[int | None, ...],
    first: int,
    done: int,
) -> np.ndarray | PackedRows:
    """:func:`_bits` at the end of a run: the packed rows themselves where every shot is
    in them and the events are the first records in order (the records past them, if
    any share the last byte, cleared)."""
    width = len(columns)
    if (
        saved is not None
        or first != 0
        or done != len(packed)
        or columns != tuple(range(width))
        or packed.shape[1] < -(-width // 8)
    ):
        return _bits(saved, packed, columns, first, done)
    rows = packed[:, : -(-width // 8)]
    if width % 8:
        rows = np.ascontiguousarray(rows)
        rows[:, -1] &= np.uint8((1 << (width % 8)) - 1)
    return PackedRows(rows, width)


#: Above this fraction of the shots, a site's struck shots are drawn by permutation.
_DENSE = 1 / 8


def draw_errors(probs: np.ndarray, shots: int, rng: np.random.Generator) -> Errors:
    """Which shots each site strikes, and with which Pauli.

    Site ``i`` strikes each shot independently, X, Y or Z with probabilities
    ``probs[i]`` (a row of 3; rows summing past 1 are capped at certainty). That is
    drawn exactly, in three steps. The number of shots struck is ``Binomial(shots, sum)``.
    Which shots is a uniform subset of that size. Each gets a Pauli in proportion to the
    row. Many sites at low rates are drawn over all their (site, shot) cells at once
    instead (:func:`_thinned`), in work that grows with the errors, not the sites.

    >>> rng = np.random.default_rng(5)
    >>> errors = draw_errors(np.array([[0.0, 0.0, 0.0], [0.25, 0.0, 0.25]]), 1000, rng)
    >>> set(errors.sites.tolist()), set(errors.paulis.tolist()), 400 < len(errors) < 600
    ({1}, {1, 3}, True)
    """
    return _draw_errors(SiteRates.of(probs), shots, rng)


#: At most this many sites, :func:`_draw_errors` draws how many shots each strikes one
#: site at a time (a scalar draw costs about a tenth of an array draw's fixed cost).
_SCALAR_SITES = 16
#: What :func:`_draw_errors` gives when no site strikes: the arrays its draws would make.
_NO_ERRORS = np.zeros(0, dtype=np.int64)


def _draw_errors(rates: SiteRates, shots: int, rng: np.random.Generator) -> Errors:
    """:func:`draw_errors` of sites of ``rates``."""
    if len(rates) <= _SCALAR_SITES:
        # One draw a site: what one draw on the array draws, site by site (numpy's array
        # draw loops over the sites with the same generator; tested), without the checks
        # of the array, which cost a few sites' draws.
        counts = [rng.binomial(shots, p) for p in rates.capped_floats]
        if not any(counts):
            return Errors(shots=_NO_ERRORS, sites=_NO_ERRORS, paulis=_NO_ERRORS)
        hits = np.array(counts, dtype=np.int64)
        sites = np.repeat(np.arange(len(hits), dtype=np.int64), hits)
        struck = _distinct_shots(hits, sites, shots, rng)
    else:
        thinned = _thinned(rates, shots, rng)
        if thinned is not None:
            sites, struck = thinned
        else:
            hits = rng.binomial(shots, rates.capped)
            if not np.count_nonzero(hits):
                # The draws below would each draw nothing (and leave ``rng`` as it is):
                # empty arrays, without their dozen numpy calls.
                return Errors(shots=_NO_ERRORS, sites=_NO_ERRORS, paulis=_NO_ERRORS)
            sites = np.repeat(np.arange(len(hits), dtype=np.int64), hits)
            struck = _distinct_shots(hits, sites, shots, rng)
    # The Pauli of each error: a uniform point on [0, total) against the cumulative rates.
    rows = rates.channels[sites]
    point = rng.random(len(sites)) * rates.sums[rows]
    x, y = rates.table[rows, 0], rates.table[rows, 1]
    paulis = 1 + (point >= x) + (point >= x + y)
    return Errors(shots=struck, sites=sites, paulis=paulis.astype(np.int64))


def _thinned(
    rates: SiteRates, shots: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray] | None:
    """The struck (site, shot) cells of sites of ``rates``, in order, drawn over every
    cell at once; None where a draw a site costs less.

    A cell is a candidate with a bound on every site's rate (:attr:`SiteRates.bound`),
    and a candidate is kept with its site's rate over that bound: each cell is struck
    independently with its site's rate, as a draw a site strikes it. The candidates
    are ``Binomial(cells, bound)`` many, a uniform subset of the cells
    (:func:`_distinct_shots`' rule). That is work in the candidates, not in the
    sites: at logical error rates, a million sites strike a few thousand cells. It is
    taken where the candidates are expected to be at most :data:`_THINNED` of the
    sites.
    """
    count = len(rates)
    bound = rates.bound
    if bound > _DENSE or count * shots * bound > count * _THINNED:
        return None
    cells = count * shots
    candidates = int(rng.binomial(cells, bound)) if bound > 0 else 0
    if not candidates:
        return _NO_ERRORS, _NO_ERRORS
    drawn = _distinct_shots(
        np.array([candidates], dtype=np.int64), np.zeros(candidates, dtype=np.int64), cells, rng
    )
    drawn.sort()
    sites = drawn // shots
    kept = rng.random(candidates) * bound < rates.capped_at(sites)
    return sites[kept], drawn[kept] % shots


#: :func:`_thinned` draws where its candidates are expected to be at most this fraction
#: of the sites (a candidate costs about twice what a site's binomial draw does).
_THINNED = 0.5


def _distinct_shots(
    hits: np.ndarray, sites: np.ndarray, shots: int, rng: np.random.Generator
) -> np.ndarray:
    """For each site, ``hits[site]`` distinct shots drawn uniformly, laid out as ``sites``.

    Draws with replacement and redraws every repeat of a shot already drawn for the same
    site (the first draw of a shot is kept). The rule treats every shot alike, so each
    subset of the right size is equally likely. A site striking more than
    :data:`_DENSE` of the shots (never at logical error rates) is drawn by
    ``rng.choice`` instead, so redraws stay few.
    """
    struck = rng.integers(0, shots, size=len(sites), dtype=np.int64)
    dense = np.flatnonzero(hits > shots * _DENSE)
    sparse = ~np.isin(sites, dense)
    for site in dense.tolist():
        struck[sites == site] = rng.choice(shots, size=int(hits[site]), replace=False)
    while True:
        keys = sites * shots + struck
        _, first = np.unique(keys, return_index=True)
        repeated = np.ones(len(keys), dtype=bool)
        repeated[first] = False
        repeated &= sparse
        if not repeated.any():
            return struck
        struck[repeated] = rng.integers(0, shots, size=int(repeated.sum()), dtype=np.int64)
