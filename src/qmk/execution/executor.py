"""The executor: runs a verified QVM program for many shots on a real engine.

Choosing the engine: the router (:mod:`qmk.engines.router`) picks the cheapest
installed engine that runs the program exactly. It weighs what the program asks
(:func:`workload`: qubits, gates, Clifford-ness, mid-circuit measurement, shots,
precision) against each engine's capabilities and cost model. A Clifford program goes to
the stabilizer engine (stim). ``engine=`` overrides. An impossible choice (a
non-Clifford program on the stabilizer engine, more qubits than the engine holds, an
engine not installed), or a program no installed engine can run, is an
:class:`~qmk.engines.EngineError` before any work starts. Telemetry's
``engine_reason`` says why the engine was chosen; ``RunResult.choice`` holds every
candidate's estimate and refusal (``qmk run --explain``).

Choosing how to run the shots (telemetry ``mode``):

- ``stim-batch``: a Clifford program whose feed-forward is linear over measurement
  outcomes compiles to one stim circuit, sampled in bulk with its logical noise
  (the engine's batch capability, :mod:`qmk.engines.batch`; see :mod:`qmk.execution.batch`).
  It samples in chunks of :data:`~qmk.execution.batch.CHUNK_SHOTS` shots, and between
  two chunks is where such a run pauses.
- ``density-matrix``: a noisy program whose measurements all come at its end, with no
  feed-forward and no fence before them (``Workload.terminal``). Where the route says
  its density matrix is cheaper than its trajectories (``Choice.batch`` on the
  statevector: :mod:`qmk.engines.density`), it is lowered with its noise as channels.
  It is held exactly once and sampled in bulk like ``stim-batch``.
- ``trajectories``: otherwise the error pattern of every shot is sampled first,
  shots are grouped by pattern, and each group is simulated once. A group branches at
  mid-circuit measurements and samples its terminal measurements
  (see :mod:`qmk.execution.trajectories`). Logical errors are rare, so the
  error-free group is nearly every shot and is simulated once. Every ``FENCE_EPOCH``
  is a pause point: the terminal measurements sampled at once are those after the
  last fence. Where errors strike many groups of a program of gates then measurements,
  the groups run as the rows of one stack of states (:mod:`qmk.execution.stacked`).

Results list events in ``resources.events`` order, first event leftmost; the same
program and seed give the same counts every time.

>>> bell = "examples/bell.qvm.json"
>>> from qmk.execution.request import RunRequest
>>> request = RunRequest(program_digest="ab" * 32, shots=1000, seed=7)
>>> result = execute(load_program(bell), request)
>>> sorted(result.counts), result.engine, result.telemetry.mode
(['00', '11'], 'stabilizer', 'stim-batch')
>>> execute(load_program(bell), request).counts == result.counts
True

It is the ``logical`` target's (:mod:`qmk.execution.logical`): every run outside it goes
through a target, with one run request (:mod:`qmk.execution.runs`, :func:`qmk.run`).
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, cast

import msgspec
import numpy as np

from qmk import defaults
from qmk.engines import EngineError, engine_class, fusion
from qmk.engines.batch import batch_compiler
from qmk.engines.limits import WorkerLimits
from qmk.engines.registry import GATE_KINDS, Workload, log2_sum, memory_bytes, spec
from qmk.engines.router import Choice, route
from qmk.engines.state_io import QuantumState
from qmk.execution import batch, spans, states
from qmk.execution.checkpoint import ExecutionState, read_state
from qmk.execution.kept_digests import digest_of
from qmk.execution.microcode import BASES, Ops
from qmk.execution.parts import Part, run_groups, shares_taken
from qmk.execution.plan import Plan, build_plan, decoder_load, picked_runs
from qmk.execution.request import Precision, RunRequest, precision_of, run_key
from qmk.execution.result import PackedRows, RunResult, Telemetry, keyed_counts
from qmk.execution.stacked import MAX_QUBITS as STACK_QUBITS
from qmk.execution.stacked import StackedOps, StackedRunner, compile_ops
from qmk.execution.trajectories import (
    KIND_CODE,
    KINDS,
    Control,
    Observed,
    Progress,
    Runner,
    kinds_in,
)
from qmk.execution.trajectories import observed as observed_ops
from qmk.memo import Memo
from qmk.qec.errors import QECError
from qmk.qec.logical import Calibration
from qmk.qec.noise import NoiseModel, describe_noise_model, parse_noise_model
from qmk.qec.params import QubitParams
from qmk.qec.values import calibration_of, qubit_of
from qmk.qvm import graph as graph_io
from qmk.qvm.graph import Graph, gc_paused
from qmk.qvm.limits import Limits
from qmk.qvm.output import layout_of
from qmk.qvm.verify import VerifiedProgram, verify

#: The machine's defaults when a program or caller names none (from :mod:`qmk.defaults`).
DEFAULT_PROFILE = defaults.PROFILE
DEFAULT_QUBIT = defaults.QUBIT


def load_program(
    program: Graph | VerifiedProgram | Mapping[str, Any] | str | os.PathLike[str],
    *,
    limits: Limits | None = None,
) -> VerifiedProgram:
    """A verified program from a graph, a verified program, QVM JSON data or a file path
    (``.asm`` files are assembled; ``.qasm``, ``.ll`` and ``.bc`` files are lowered by
    :func:`qmk.frontends.read_program`, their qubits left to the run's default profile).

    Raises:
        FormatError: unreadable input. FrontendError: a source that does not lower.
        VerificationError: a graph with errors.
    """
    if isinstance(program, VerifiedProgram):
        return program
    if isinstance(program, Graph):
        return verify(program, limits=limits)
    if isinstance(program, Mapping):
        return verify(graph_io.from_json(program), limits=limits)
    from qmk.frontends import read_program

    return verify(read_program(os.fspath(Path(program)), limits=limits), limits=limits)


#: Micro-op kinds that read or change the state outside a gate: before the terminal
#: measurements, each needs an engine that holds its state between calls.
_MID_CIRCUIT = frozenset({"meas", "free", "reset", "werner"})


def _splitting(ops: Ops, end: int) -> int:
    """The mid-circuit operations of ``ops[:end]`` that may split the shots. A reset, free
    or Z measurement of a qubit collapsed in Z already (allocated, measured or reset since
    its last gate) does not: its outcome is known."""
    collapsed: set[int] = set()
    count = 0
    at = ops.qubit_at[: end + 1].tolist()
    ids = ops.qubit_ids[: at[-1]].tolist()
    bases = [BASES[code] for code in ops.bases[:end].tolist()]
    for i, kind in enumerate([KINDS[code] for code in ops.kinds[:end].tolist()]):
        qubits = ids[at[i] : at[i + 1]]
        if kind in _MID_CIRCUIT:
            known = kind in ("meas", "reset", "free") and collapsed.issuperset(qubits)
            if kind == "meas" and bases[i] != "Z":
                known = False
            count += 0 if known else 1
            if kind in ("meas", "reset") and bases[i] == "Z":
                collapsed.update(qubits)
            elif kind == "werner":
                collapsed.difference_update(qubits)
        elif kind == "alloc":  # |0>
            collapsed.update(qubits)
        elif kind in ("gate", "cond"):
            collapsed.difference_update(qubits)
    return count


#: Permutation gates that are linear over GF(2): parity bookkeeping for an engine that
#: tracks parities (see ``CostModel.bookkeeping``).
_LINEAR = frozenset({"x", "y", "cx", "swap"})
#: The gates the router's fusion pass looks at, at most: the blocks of a longer
#: program are those of its first gates, scaled (the pass costs a few microseconds a
#: gate; the router stays cheap on million-gate programs).
FUSION_SAMPLE = 4096
#: The gates whose shape (mixed qubits, bond, bond work) :func:`route_plan` finds
#: first: floors of a longer program's, which settle the router's choice wherever the
#: engines that read them are refused or too slow at the floor (a Clifford program of
#: long-range gates: the matrix product states' bond is past reach in its first gates).
SHAPE_SAMPLE = FUSION_SAMPLE


def _gate_features(ops: Ops, placed: int | None = None) -> dict[str, Any]:
    """The gate features of micro-ops (``ops``, their columns) the cost models read.

    They are the engine gates applied and how many, and the gates on 3 or more qubits. Of
    the others, the diagonal, permutation and linear permutation gates
    (:data:`~qmk.engines.registry.GATE_KINDS`). The blocks of at most 4 qubits
    :func:`qmk.engines.fusion.widths` makes of each unitary segment; a mid-circuit
    operation ends one, and past :data:`FUSION_SAMPLE` gates they are scaled from those.
    The qubits a dense gate or a Toffoli touches. And a bound (log2) on a matrix product
    state's bond dimension: over each cut between neighbouring qubits (in allocation
    order), the multi-qubit gates across it, at most the smaller side's qubits. A
    controlled gate at most doubles the Schmidt rank, and a swap quadruples it.
    Measurements and resets, which may lower it, are not counted.

    With ``placed``, the mixed qubits, the bond and its work are those of the first
    ``placed`` gates alone (at least :data:`FUSION_SAMPLE`): each at most the whole
    program's, which is all a router that needs no more reads (:func:`shape_floor`)."""
    stream = _GateStream(ops, placed)
    gates = len(stream.codes)
    blocks, seen = stream.blocks, stream.seen
    if gates > seen > 0:
        blocks = -(-blocks * gates // seen)
    # each gate's (name, arity) as one number: a few distinct ones among many gates
    widest = int(stream.arity.max(initial=0)) + 1
    pair = stream.codes * widest + stream.arity
    counted = np.bincount(pair, minlength=len(stream.names) * widest)
    diagonal = permutation = linear = wide = 0
    mixing = np.zeros(len(counted), dtype=bool)  # (gate, arity) that mixes amplitudes
    for key in np.flatnonzero(counted).tolist():
        gate, arity, count = stream.names[key // widest], key % widest, int(counted[key])
        gate_kind = GATE_KINDS.get(gate)
        if arity > 2:
            wide += count
            mixing[key] = gate_kind != "diagonal"
        elif gate_kind == "diagonal":
            diagonal += count
        elif gate_kind == "permutation":
            permutation += count
            if gate in _LINEAR:
                linear += count
            else:
                mixing[key] = True
        else:
            mixing[key] = True
    mixed = np.zeros(stream.qubits, dtype=bool)
    shown = stream.placed
    mixed[stream.places[np.repeat(mixing[pair[:shown]], stream.arity[:shown])]] = True
    bond, log2_bond_work = _bond(stream)
    return {
        "gates": frozenset(stream.names),
        "gate_count": gates,
        "wide_gates": wide,
        "diagonal_gates": diagonal,
        "permutation_gates": permutation,
        "linear_gates": linear,
        "blocks": blocks,
        "mixed_qubits": int(np.count_nonzero(mixed)),
        "bond": bond,
        "log2_bond_work": log2_bond_work,
    }


#: What :class:`_GateStream` asks of a micro-op's kind: whether it applies an engine
#: gate, allocates, may end a unitary segment (:data:`_MID_CIRCUIT`), or none (0).
_GATE_OP, _ALLOC_OP, _MID_OP = 1, 2, 3
_ROLE = {"gate": _GATE_OP, "cond": _GATE_OP, "alloc": _ALLOC_OP} | dict.fromkeys(
    _MID_CIRCUIT, _MID_OP
)
#: :data:`_ROLE` by micro-op kind code (:data:`~qmk.execution.trajectories.KINDS`).
_ROLE_OF_CODE = np.array([_ROLE.get(kind, 0) for kind in KINDS], dtype=np.uint8)
_MID_CODES = kinds_in(_MID_CIRCUIT)


class _GateStream:
    """The engine gates of a list of micro-ops, as arrays.

    Gate ``i`` is ``names[codes[i]]`` on the places ``places[starts[i]:starts[i] +
    arity[i]]`` among ``qubits`` (:func:`_placed`), for the first ``placed`` gates
    (all, or those asked: a place is found from the micro-ops before it alone, so the
    first gates' are the whole's). ``blocks`` are the fused blocks
    (:func:`qmk.engines.fusion.widths`) of each unitary segment of the first
    :data:`FUSION_SAMPLE` gates, ``seen`` of them. The micro-ops' columns are read by
    the interpreter's own iterators, not a loop of ours: a program may hold a million."""

    __slots__ = (
        "arity",
        "blocks",
        "codes",
        "names",
        "placed",
        "places",
        "qubits",
        "seen",
        "starts",
    )

    def __init__(self, ops: Ops, placed: int | None = None) -> None:
        roles = _ROLE_OF_CODE.take(ops.kinds)  # (take: a third of an index by uint8 codes)
        is_gate = roles == _GATE_OP
        # the gates applied, numbered afresh: ``names`` holds those alone
        applied = ops.gates[is_gate]
        used = np.flatnonzero(np.bincount(applied, minlength=len(ops.gate_names)))
        self.names: list[str] = [ops.gate_names[c] for c in used.tolist()]
        renumber = np.zeros(len(ops.gate_names), dtype=np.int64)
        renumber[used] = np.arange(len(used))
        self.codes = renumber[applied]
        sizes = np.diff(ops.qubit_at)
        self.arity = sizes[is_gate]
        self.starts = np.cumsum(self.arity) - self.arity
        # the gates up to each of a few micro-ops: their rank among the gates (no running
        # count of every micro-op)
        gate_at = np.flatnonzero(is_gate)

        def gated(at: np.ndarray) -> np.ndarray:
            return np.searchsorted(gate_at, at, side="right")

        self.placed = len(applied) if placed is None else min(len(applied), placed)
        # the micro-ops before the first gate not placed
        end = int(gate_at[self.placed]) if self.placed < len(applied) else len(roles)
        self.qubits, self.places = _placed(
            ops.qubit_ids[: ops.qubit_at[end]], len(ops.names), sizes[:end], roles[:end], gated
        )
        # the unitary segments of the first gates: a mid-circuit operation ends one
        self.seen = min(self.placed, FUSION_SAMPLE)
        cuts = gated(np.flatnonzero(roles == _MID_OP))  # in order; two alike end an empty one
        ends = [0, *cuts[(cuts > 0) & (cuts < self.seen)].tolist(), self.seen]
        bounds = np.r_[self.starts[: self.seen], self.arity[: self.seen].sum()].tolist()
        places = self.places[: bounds[-1]].tolist()
        sample = [tuple(places[a:b]) for a, b in itertools.pairwise(bounds)]
        self.blocks = sum(
            len(fusion.widths(sample[a:b])) for a, b in itertools.pairwise(ends) if b > a
        )


def _placed(
    ids: np.ndarray,
    size: int,
    sizes: np.ndarray,
    roles: np.ndarray,
    gated: Callable[[np.ndarray], np.ndarray],
) -> tuple[int, np.ndarray]:
    """How many qubits are placed, and the places of the gates' qubits, one after
    another: ``ids`` are the micro-ops' qubits (of ``size`` names), ``sizes`` their
    counts a micro-op, ``roles`` the micro-ops' (``_ROLE``), ``gated`` the gates up to
    each of the micro-ops it is given.

    A qubit's place is its rank in the order qubits first appear in an alloc or a gate
    (allocation order, where every gate's qubits were allocated before it). Where no
    alloc comes after a gate, that is the allocs' order and then that of the qubits no
    alloc named, at their first gate."""

    def qubits_of(mask: np.ndarray) -> np.ndarray:
        return picked_runs(ids, sizes, mask)

    is_alloc = roles == _ALLOC_OP
    gate_ids = qubits_of(roles == _GATE_OP)
    allocs = np.flatnonzero(is_alloc)
    if not len(allocs) or not gated(allocs[-1:])[0]:
        alloc_ids = qubits_of(is_alloc)
        rank, count = _first_ranks(alloc_ids, size)
        places = rank[gate_ids]
        if (places < 0).any():  # a qubit no alloc named: after those, at its first gate
            rank, count = _first_ranks(np.r_[alloc_ids, gate_ids], size)
            places = rank[gate_ids]
        return count, places
    rank, count = _first_ranks(qubits_of(is_alloc | (roles == _GATE_OP)), size)
    return count, rank[gate_ids]


def _first_ranks(ids: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """Each of ``size`` ids' rank in the order ``ids`` first names them (-1: never), and
    how many it names."""
    distinct, first = np.unique(ids, return_index=True)
    rank = np.full(size, -1, dtype=np.int64)
    rank[distinct[np.argsort(first)]] = np.arange(len(distinct))
    return rank, len(distinct)


def _bond(stream: _GateStream) -> tuple[int, float]:
    """The bond bound of :func:`_gate_features` (log2) and :func:`_log2_bond_work` of
    the gates of ``stream``."""
    qubits = stream.qubits
    multi = np.flatnonzero(stream.arity[: stream.placed] > 1)
    if not len(multi):
        return 0, -math.inf
    lows, highs = _span_ends(stream, multi)
    swap = stream.names.index("swap") if "swap" in stream.names else -1
    ranks = np.where(stream.codes[multi] == swap, 2, 1)  # log2 of its Schmidt rank
    across = np.zeros(qubits + 1, dtype=np.int64)  # the cuts gates cross, as differences
    np.add.at(across, lows, ranks)
    np.add.at(across, highs, -ranks)
    cuts = np.arange(max(qubits - 1, 0))  # the cut after qubit `cut`, in allocation order
    crossed = np.cumsum(across)[: len(cuts)]
    sides = np.minimum(cuts + 1, qubits - cuts - 1)
    bond = int(np.minimum(crossed, sides).max(initial=0))
    return bond, _log2_bond_work((lows, highs, ranks), qubits, bond)


def _span_ends(stream: _GateStream, gates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and highest place of each of ``gates`` (gate numbers of ``stream``,
    each on two qubits at least), a qubit slot at a time: gates have few qubits, and
    a gather a slot costs less than a reduction over runs."""
    first, arity = stream.starts[gates], stream.arity[gates]
    one, two = stream.places[first], stream.places[first + 1]
    lows, highs = np.minimum(one, two), np.maximum(one, two)
    for slot in range(2, int(arity.max(initial=2))):
        has = np.flatnonzero(arity > slot)
        place = stream.places[first[has] + slot]
        lows[has] = np.minimum(lows[has], place)
        highs[has] = np.maximum(highs[has], place)
    return lows, highs


#: The cuts :func:`_log2_bond_work` follows gate by gate, at most (past them, a gate is
#: priced at the final bound: an over-estimate, reached only by long, wide circuits).
BOND_WORK_STEPS = 200_000


def _log2_bond_work(
    spans: tuple[np.ndarray, np.ndarray, np.ndarray], qubits: int, bond: int
) -> float:
    """log2 of what a matrix product state's gates cost, in units of ``chi**3`` (an SVD
    of a two-site block at bond dimension ``chi``).

    Each multi-qubit gate is an entry of the three columns of ``spans``: its cuts
    ``low..high`` and log2 of its Schmidt rank. Over the cuts it crosses (the swaps that
    bring its qubits together, then the gate), it costs ``8**b`` at the bound ``b`` on
    that cut's bond so far. That
    bound is the crossings up to and including this gate, at most the smaller side's
    qubits. So a circuit whose entanglement grows late pays late, not from its first gate
    at the final bond. It is counted by bound (the crossings of each cut in gate order, a
    cumulative sum) and summed as logs, since at a wide cut ``8**b`` is past any float
    (long-range gates on a thousand qubits reach ``b`` = 500).
    """
    lows, highs, ranks = spans
    lengths = highs - lows
    before = np.cumsum(lengths) - lengths  # the cuts of the gates before each
    followed = int(np.searchsorted(before, BOND_WORK_STEPS, side="right"))
    at = np.zeros(bond + 1, dtype=np.int64)  # how many crossings met each bound
    at[bond] += int(lengths[followed:].sum())  # past the steps: at the final bound
    lengths = lengths[:followed]
    if not (ranks[:followed] != 1).any():  # no swap: each cut's bounds in closed form
        at += _unit_bounds(lows[:followed], highs[:followed], qubits, bond)
        return log2_sum(math.log2(count) + 3 * b for b, count in enumerate(at.tolist()) if count)
    gate = np.repeat(np.arange(followed), lengths)  # one crossing a row, in gate order
    cut = lows[gate] + np.arange(len(gate)) - np.repeat(before[:followed], lengths)
    # by cut, each cut's in gate order (a stable sort; of 16-bit keys, numpy's radix sort)
    order = np.argsort(cut.astype(np.uint16) if qubits <= 1 << 16 else cut, kind="stable")
    cut, rank = cut[order], ranks[gate][order]
    total = np.cumsum(rank)
    first = np.flatnonzero(np.r_[True, cut[1:] != cut[:-1]])  # each cut's first crossing
    size = np.diff(np.r_[first, len(cut)])
    crossed = total - np.repeat(total[first] - rank[first], size)
    bound = np.minimum(crossed, np.minimum(cut + 1, qubits - cut - 1))
    at += np.bincount(bound, minlength=bond + 1)[: bond + 1]
    return log2_sum(math.log2(count) + 3 * b for b, count in enumerate(at.tolist()) if count)


def _unit_bounds(lows: np.ndarray, highs: np.ndarray, qubits: int, bond: int) -> np.ndarray:
    """How many crossings meet each bound ``0..bond`` (:func:`_log2_bond_work`) where
    every gate's Schmidt rank is 2 (log2 1: no swap). Then a cut's ``k``-th crossing
    has crossed ``k``, so a cut crossed ``K`` times of side ``s`` meets the bounds
    ``1..min(K, s)`` once each, and ``s`` ``K - s`` times more: counted by cut, with no
    crossing made."""
    across = np.bincount(lows, minlength=qubits) - np.bincount(highs, minlength=qubits)
    crossed = np.cumsum(across)[: max(qubits - 1, 0)]  # each cut's crossings
    cuts = np.arange(len(crossed))
    sides = np.minimum(cuts + 1, qubits - cuts - 1)
    met = np.minimum(crossed, sides)
    # the cuts that meet each bound once: those whose least of the two reaches it
    at = np.cumsum(np.bincount(met, minlength=bond + 1)[::-1])[::-1][: bond + 1]
    at[0] = 0
    over = np.flatnonzero(crossed > sides)
    return (
        at
        + np.bincount(sides[over], crossed[over] - sides[over], minlength=bond + 1).astype(
            np.int64
        )[: bond + 1]
    )


@gc_paused()  # a bulk pass that builds no cycles
def workload(
    plan: Plan,
    shots: int = 1,
    precision: str | None = None,
    *,
    samples_only: bool = False,
    placed: int | None = None,
) -> Workload:
    """What ``plan`` asks of an engine, for the router (:mod:`qmk.engines.router`);
    ``samples_only``: the run returns samples alone (no final state); ``placed``: its
    mixed qubits, bond and bond work are those of its first ``placed`` gates, floors of
    the whole's (:func:`_gate_features`).

    Mid-circuit operations are the measurements, resets, frees and noisy channels before
    the program's terminal measurements (:func:`~qmk.execution.trajectories.tail_start`).
    Each may split the shots, but one on a qubit collapsed in Z already (a reset after a
    measurement) does not. So the gates after the ``j``-th split run in up to
    ``min(shots, 2**j)`` simulations. ``branches`` is that bound averaged over the
    segments (the simulations an average gate runs in), plus the shots logical errors
    are expected to hit.
    """
    from qmk.execution.trajectories import noiseless_ops

    noiseless = noiseless_ops(plan)
    ops, tail = noiseless.ops, noiseless.tail
    kinds = ops.kinds[:tail]
    mid = int(np.count_nonzero(_MID_CODES.take(kinds)))
    splits = _splitting(ops, tail) if mid else 0
    features = _gate_features(ops, placed)
    if plan.noise:
        features["gates"] |= {"x", "y", "z"}
    simulations = sum(min(shots, 2 ** min(j, 40)) for j in range(splits + 1))
    branches = -(-simulations // (splits + 1))
    trajectories = 0
    if plan.noise:
        hit = plan.noise.error_chance()
        trajectories = int(shots * hit)
        branches += trajectories
    # a batch sampler draws the noise and the mid-circuit outcomes of such a plan itself
    batchable = plan.clifford and batch.first_unlowerable(plan) is None
    qubits = plan.program.peak_live_qubits
    non_clifford = None
    if plan.first_non_clifford is not None:
        node = plan.steps.nodes[plan.first_non_clifford]
        non_clifford = f"node #{plan.first_non_clifford} {node.id!r} ({node.op})"
    return Workload(
        qubits=qubits,
        clifford=plan.clifford,
        non_clifford=non_clifford,
        shots=shots,
        mid_circuit=mid > 0,
        segments=1 + mid,
        branches=max(branches, 1),
        trajectories=trajectories if branches >= 1 else 0,
        precision=precision,
        samples_only=samples_only,
        batchable=batchable,
        terminal=bool(trajectories)
        and not mid
        and not (kinds == KIND_CODE["fence"]).any()
        and _held_exactly(plan, qubits),
        stacked=trajectories > 1 and stack_of(plan) is not None,
        **features,
    )


#: The most qubits whose density matrix :func:`workload` looks for (``4**n`` entries: a
#: gibibyte at 13, in double precision).
DENSITY_QUBITS = 14


def _held_exactly(plan: Plan, qubits: int) -> bool:
    """Whether ``plan``, lowered with its noise as channels, is a circuit of at most
    ``qubits`` qubits (:data:`DENSITY_QUBITS`) that a density matrix holds exactly
    (:func:`qmk.engines.density.why_not`)."""
    if qubits > DENSITY_QUBITS or len(plan.program.graph.resources.vqs) > qubits:
        return False
    from qmk.engines.density import why_not

    lowered = _lowered(plan, channels=True)
    return lowered is not None and why_not(lowered.circuit) is None


def _lowered(plan: Plan, *, channels: bool) -> batch.LoweredPlan | None:
    """:func:`qmk.execution.batch.lower` of ``plan`` (its noise as channels with
    ``channels``), kept per plan: the workload and the run read one."""
    lowered: batch.LoweredPlan | None = _LOWERINGS.get(
        (id(plan), channels), plan, lambda: batch.lower(plan, channels=channels)
    )
    return lowered


def _result_options(engine: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` less the choice of kernels: compiled or their fallback, the same
    arithmetic, picked by what this process has compiled already. So a run saved in one
    process resumes in another that chose otherwise."""
    kernels = spec(engine).compiled
    return {k: v for k, v in options.items() if kernels is None or k != kernels.option}


def _misuse(message: str, key: str) -> EngineError:
    """A bad run parameter of the executor's own: ``QE105 engine-misuse``."""
    return EngineError.of("engine-misuse", message, key=key)


def _precision_option(options: Mapping[str, Any]) -> tuple[Precision | None, dict[str, Any]]:
    """The precision ``engine_options``' ``dtype`` asks for (:func:`precision_of`), and
    the other options."""
    rest = {k: v for k, v in options.items() if k != "dtype"}
    return precision_of(options.get("dtype"), key="engine_options.dtype", error=_misuse), rest


def route_plan(
    plan: Plan,
    engine: str | None,
    *,
    shots: int = 1,
    engine_options: Mapping[str, Any] | None = None,
    precision: Precision | None = None,
    limits: WorkerLimits | None = None,
    samples_only: bool = True,
) -> tuple[Choice, dict[str, Any]]:
    """The router's choice for ``plan`` and the options to build the engine with
    (``precision``, or ``engine_options``' ``dtype``, the precision asked for).

    It routes for a process of ``limits``. The default is this one, which runs the
    engine: its memory caps, threads and sandbox, read once here (``Choice.limits``
    holds them). ``samples_only``: the run returns samples alone. False: it exports its
    final state, whose amplitudes keep the engine's own precision when none is asked.

    Raises:
        EngineError: ``engine`` unknown, not installed or unable (or not fitting the
            worker); no engine able.
    """
    asked, rest = _precision_option(engine_options or {})
    precision = precision or asked
    limits = WorkerLimits.read() if limits is None else limits
    asked_of = (id(plan), shots, precision, samples_only)

    def whole() -> Workload:
        found: Workload = _WORKLOADS.get(
            asked_of,
            plan,
            lambda: workload(plan, shots, precision, samples_only=samples_only),
        )
        return found

    # the first gates' shape first: the router asks for the whole's only where its
    # choice may depend on it (:func:`qmk.engines.router.route`'s ``whole``)
    work: Workload = _WORKLOADS.get(
        (*asked_of, SHAPE_SAMPLE),
        plan,
        lambda: workload(plan, shots, precision, samples_only=samples_only, placed=SHAPE_SAMPLE),
    )
    exact = whole if work.gate_count > SHAPE_SAMPLE else None  # else the floor is the whole
    try:
        options = msgspec.json.encode(rest)
    except (TypeError, msgspec.EncodeError):  # options that are no JSON: routed each time
        choice = route(work, engine, options=rest, limits=limits, whole=exact)
    else:
        key = (id(work), engine, options, _counted(limits), len(sys.modules), memory_bytes())
        choice = _ROUTES.get(
            key, work, lambda: route(work, engine, options=rest, limits=limits, whole=exact)
        )
        if choice.limits != limits:  # a figure the route does not count (memory used)
            choice = replace(choice, limits=limits)
            _ROUTES.refresh(key, work, choice)  # kept as read now: the next run's are alike
    return choice, {**rest, **choice.options}


#: Every field of :class:`WorkerLimits`, in order (the route key holds each), and where
#: the two memory figures that count only under a cap stand.
_LIMIT_FIELDS = tuple(f.name for f in fields(WorkerLimits))
_ADDRESS_USED = _LIMIT_FIELDS.index("address_used")
_CGROUP_USED = _LIMIT_FIELDS.index("cgroup_used")


def _counted(limits: WorkerLimits) -> tuple[Any, ...]:
    """``limits`` as the router reads them, as a key: the memory used counts only under a
    cap (:attr:`WorkerLimits.memory_left`), so without one it is left out (a tuple of the
    fields: no copy of the limits to hash)."""
    key = [getattr(limits, name) for name in _LIMIT_FIELDS]
    if limits.address_cap is None:
        key[_ADDRESS_USED] = 0
    if limits.cgroup_cap is None:
        key[_CGROUP_USED] = 0
    return tuple(key)


#: Plans, workloads and routes a process keeps (a kernel's worker runs one program
#: under many seeds): each a function of its key alone, whose first part is the ``id``
#: of the program, plan or workload it was made from, kept beside it (so the id is not
#: reused meanwhile). A route's key also holds the options, the worker's limits as the
#: router reads them (:func:`_counted`), the state memory allowed here
#: (:func:`~qmk.engines.registry.memory_bytes`, which reads the environment) and how
#: many modules the process has imported: what the router reads of the process besides
#: (the engines' packages loaded, their compiled kernels checked) changes only with an
#: import.
KEPT_PLANS = 64
_PLANS: Memo[Any] = Memo(KEPT_PLANS)
_WORKLOADS: Memo[Any] = Memo(KEPT_PLANS)
_ROUTES: Memo[Any] = Memo(KEPT_PLANS)
#: A plan's batch circuit and its compiled sampler, by plan and engine class
#: (:func:`_batch_of`).
_BATCHES: Memo[Any] = Memo(KEPT_PLANS)
#: A plan lowered to a batch circuit, by plan and noise form (:func:`_lowered`).
_LOWERINGS: Memo[Any] = Memo(KEPT_PLANS)
#: A program's output layout (:func:`~qmk.qvm.output.layout_of`), by program.
_LAYOUTS: Memo[Any] = Memo(KEPT_PLANS)
#: Plans' micro-ops as stacked trajectories run them (None: group by group).
_STACKS: Memo[Any] = Memo(KEPT_PLANS)
#: The telemetry figures of a plan under its physics (:func:`_plan_figures`).
_FIGURES: Memo[Any] = Memo(KEPT_PLANS)


def execute(
    program: VerifiedProgram,
    request: RunRequest,
    *,
    control: Control | None = None,
    resume: ExecutionState | str | os.PathLike[str] | None = None,
    initial_state: QuantumState | str | os.PathLike[str] | None = None,
    final_state: bool | str = False,
    started: float | None = None,
) -> RunResult:
    """Run ``program`` as ``request`` says: the ``logical`` target's runs (the kernel's
    workers' and in-process ones alike).

    ``request``'s rewrite, if any, is already applied to ``program`` (the worker verifies
    the rewritten text).

    Args:
        control: who may ask the run, at its pause points, to save its state and go on
            or stop (:class:`~qmk.execution.trajectories.Control`). A ``trajectories``
            run asks at every ``FENCE_EPOCH``. A ``stim-batch`` run of a program with
            fences asks between its chunks of :data:`~qmk.execution.batch.CHUNK_SHOTS`
            shots.
        resume: an :class:`~qmk.execution.checkpoint.ExecutionState` (or its file) a
            control saved: the run goes on from there and gives the counts of a run that
            never stopped.
        initial_state: a state (:mod:`qmk.engines.state_io`) or its JSON file: the
            qubits of the program's opening ALLOC_LQ nodes start in it.
        final_state: True (the engine's own kind), "amplitudes" or "stabilizers": the
            program's final state as ``RunResult.final_state``, simulated once (a program
            whose final state is one pure state: no measurement, no noise).
        started: when the caller's clock for the run's wall time began.

    Raises:
        QMKError: an engine that cannot run the program (EngineError), unknown QEC
            names (QECError); ``QE106``/``QE107`` for a state of another run or an
            unreadable one; ``QE111``-``QE113`` for a state file that is not one, a state
            that does not fit the program or engine, or a final state that is not one
            pure state.
        Suspended: the control asked the run to stop; its state was saved first.
    """
    started = time.perf_counter() if started is None else started
    share = None if request.part is None else Part.from_json(request.part)
    graph = program.graph
    layout = _LAYOUTS.get(
        (id(program),), program, lambda: layout_of(graph.metadata, graph.resources.events)
    )
    plan, physics_key, noise_model = _planned(program, request)
    calibration = calibration_of(request.calibration)
    engine = request.engine
    with spans.span("qmk.engine.choice", {"qmk.engine.requested": engine or ""}) as chosen:
        choice, options = route_plan(
            plan,
            engine,
            shots=request.shots,
            engine_options=request.engine_options,
            precision=request.precision,
            samples_only=final_state is False,
        )
        initial = None if initial_state is None else states.load(initial_state)
        if initial is not None:
            states.check_initial(plan, initial)
            probe = engine_class(choice.engine)(seed=0, **options)
            instead = states.engine_for(initial, probe, named=engine is not None)
            if instead is not None:
                choice, options = route_plan(
                    plan,
                    instead,
                    shots=request.shots,
                    engine_options=request.engine_options,
                    precision=request.precision,
                    limits=choice.limits,  # the same process: read once
                    samples_only=final_state is False,
                )
        chosen.set("qmk.engine", choice.engine)
        chosen.set("qmk.engine.reason", choice.reason)
    if final_state is not False:
        kind = states.FINAL_KINDS[0] if final_state is True else final_state
        if kind not in states.FINAL_KINDS:
            raise EngineError.of(
                "engine-misuse",
                f"final_state must be True or one of "
                f"{', '.join(states.FINAL_KINDS)}, got {final_state!r}",
            )
        states.check_exportable(plan)
    if resume is not None and not isinstance(resume, ExecutionState):
        resume = read_state(resume)
    if resume is not None and engine is None:
        choice, options = _resumed_route(
            plan, request, resume, choice, options, initial, samples_only=final_state is False
        )
    name = choice.engine
    cls = engine_class(name)
    shots = request.shots

    def key() -> str:  # asked for only where a state is saved or resumed: a digest costs
        return _run_key(request, choice, options, initial, program)

    exported = None
    rows = None
    bits: np.ndarray | PackedRows
    if final_state is not False:
        make = states.factory(lambda: cls(seed=0, **options), initial)
        exported = states.final_state(plan, make, kind=kind)
        bits = np.zeros((shots, len(plan.events)), dtype=np.uint8)
        mode, noise_sampling, injected, progress = "final-state", "off", 0, Progress(simulations=1)
        if share is not None:  # one pass: part 0 does every shot
            bits, rows = _first_part(bits, share)
            injected, progress.simulations = 0, int(share.index == 0)
    else:
        with spans.span("qmk.shots", {"qmk.shots": shots, "qmk.engine": name}) as sampled:
            mode, noise_sampling, bits, injected, progress, rows = _execute(
                plan,
                name,
                cls,
                options,
                shots,
                request.seed,
                batched=choice.batch,
                control=control,
                resume=resume,
                key=key,
                initial=initial,
                part=share,
            )
            sampled.set("qmk.mode", mode)
            sampled.set("qmk.epochs", len(plan.program.epochs))
            sampled.set("qmk.simulations", progress.simulations)
            sampled.set("qmk.injected_logical_errors", int(injected))
    figures = _FIGURES.get(
        (id(plan), physics_key),
        plan,
        lambda: _plan_figures(
            plan,
            qubit_of(request.qubit),
            request.profile,
            noise_model=noise_model,
            calibration=calibration,
        ),
    )
    owned = {  # fresh containers: a result's telemetry is its own, the figures the plan's
        "channel_uses": dict(figures["channel_uses"]),
        "policies": tuple(dict(policy) for policy in figures["policies"]),
        "calibration": None if figures["calibration"] is None else dict(figures["calibration"]),
    }
    telemetry = Telemetry(
        **{**figures, **owned},
        engine=name,
        mode=mode,
        shots=len(bits),
        injected_logical_errors=injected,
        noise=request.noise,
        simulations=progress.simulations,
        noise_sampling=noise_sampling,
        checkpoints=progress.checkpoints,
        resumed_from_epoch=progress.resumed_from_epoch,
        preempted_at_epochs=tuple(progress.preempted_at_epochs or ()),
        rollbacks=progress.rollbacks,
        rollback_gates=progress.rollback_gates,
        engine_reason=choice.reason,
        wall_time_s=round(time.perf_counter() - started, 6),
        machine=None if request.machine is None else request.machine.record(),
    )
    return RunResult(
        counts=keyed_counts(bits, layout),
        shots=len(bits),
        seed=request.seed,
        engine=name,
        events=plan.events,
        telemetry=telemetry,
        shot_bits=bits,
        layout=layout,
        choice=choice,
        final_state=exported,
        rows=rows,
    )


def plan_for(program: VerifiedProgram, request: RunRequest) -> Plan:
    """``program``'s plan under ``request``'s physics (kept per program and physics: the
    run of :func:`execute` and its target's footprint share one).

    Raises:
        QECError: as :func:`~qmk.execution.plan.build_plan`; ``QC103`` for a calibration
            the request requires that fits no qubit of the program.
    """
    return _planned(program, request)[0]


def _planned(
    program: VerifiedProgram, request: RunRequest
) -> tuple[Plan, bytes, NoiseModel | None]:
    """:func:`plan_for`, with the key of its physics and its noise model."""
    # a noise model sets the physical error rates of the logical errors injected, if any
    noise_model = (
        parse_noise_model(request.noise_model) if request.noise and request.noise_model else None
    )
    # the request carries custom qubits and a calibration as their JSON: made values here
    qubit, calibration = qubit_of(request.qubit), calibration_of(request.calibration)
    # the machine's waits are idle noise: with noise off they change nothing
    idle = request.machine.idle if request.noise and request.machine is not None else None
    # the plan depends on the program and these fields only (not the seed or the shots)
    physics = (request.noise, request.qubit, request.profile, request.noise_model, calibration)
    physics_key = msgspec.json.encode((*physics, idle) if idle else physics)
    plan: Plan = _PLANS.get(
        (id(program), physics_key),
        program,
        lambda: build_plan(
            program,
            noise=request.noise,
            qubit=qubit,
            default_profile=request.profile,
            noise_model=noise_model,
            calibration=calibration,
            idle=idle,
        ),
    )
    if calibration is not None and request.require_calibration and not plan.calibrated_profiles:
        raise QECError.of(
            "bad-parameter",
            f"the calibration is for {calibration.family} on {calibration.instruction_set} "
            f"qubits; no qubit of this program is (profiles: {', '.join(plan.profiles)})",
        )
    return plan, physics_key, noise_model


def _run_key(
    request: RunRequest,
    choice: Choice,
    options: Mapping[str, Any],
    initial: QuantumState | None,
    program: VerifiedProgram,
) -> str:
    """The key of ``request`` run as ``choice`` says with the engine options ``options``
    (from ``initial``): what the states it saves carry, and what a state it resumes from
    must carry. A run of the engine's density matrix says so in it: the state of its
    chunks resumes no trajectories of a worker whose memory the matrix did not fit. A
    request built without its program's digest (``""``) is keyed with it, found now
    (:func:`~qmk.execution.kept_digests.digest_of`)."""
    if not request.program_digest:
        request = msgspec.structs.replace(request, program_digest=digest_of(program))
    engine = choice.engine
    more: dict[str, Any] = {} if initial is None else {"initial_state": initial.to_json()}
    if choice.batch and spec(engine).density is not None:
        more["mode"] = "density-matrix"
    return run_key(
        msgspec.structs.replace(
            request, engine_options=_result_options(engine, request.engine_options)
        ),
        engine=engine,
        options=_result_options(engine, options),
        **more,
    )


def _resumed_route(
    plan: Plan,
    request: RunRequest,
    state: ExecutionState,
    choice: Choice,
    options: dict[str, Any],
    initial: QuantumState | None,
    *,
    samples_only: bool,
) -> tuple[Choice, dict[str, Any]]:
    """The route of a run that names no engine and resumes from ``state``: the engine and
    precision the state was saved by.

    The router's own ``choice`` depends on the process (its memory, threads, the packages
    it has loaded already) and on the cost model. So a run preempted on one worker and
    resumed on another, or after an upgrade, may be routed elsewhere, and the state
    resumes only in a run of its own key. Where no precision of the state's engine gives
    that key (or the engine cannot run here), ``choice`` stands, and the resume refuses
    the state (``QE106``)."""
    if _run_key(request, choice, options, initial, plan.program) == state.key:
        return choice, options
    try:
        entry = spec(state.engine)
        precisions = (request.precision,) if request.precision else entry.precisions
    except EngineError:  # an engine this installation does not know
        return choice, options
    for precision in precisions:
        try:
            again, built = route_plan(
                plan,
                state.engine,
                shots=request.shots,
                engine_options=request.engine_options,
                precision=cast(Precision, precision),
                limits=choice.limits,  # the same process: read once
                samples_only=samples_only,
            )
        except EngineError:  # it cannot run here (not installed, no memory): refused below
            return choice, options
        if _run_key(request, again, built, initial, plan.program) == state.key:
            reason = (
                f"resumes where its checkpoint left off, on the engine that saved it "
                f"({again.precision or 'its own'} precision)"
            )
            return replace(again, named=False, reason=reason), built
    return choice, options


def _first_part(bits: np.ndarray, part: Part) -> tuple[np.ndarray, np.ndarray]:
    """A one-pass run's rows for ``part``: every shot for part 0, none for the others."""
    if part.index == 0:
        return bits, np.arange(len(bits))
    return bits[:0], np.zeros(0, dtype=np.int64)


def _execute(
    plan: Plan,
    name: str,
    cls: type,
    options: dict[str, Any],
    shots: int,
    seed: int,
    *,
    batched: bool = False,
    control: Control | None = None,
    resume: ExecutionState | None = None,
    key: Callable[[], str] = str,
    initial: QuantumState | None = None,
    part: Part | None = None,
) -> tuple[str, str, np.ndarray | PackedRows, int, Progress, np.ndarray | None]:
    """``(mode, noise sampling, bits, injected errors, progress, rows)`` of the run
    (``rows``: the shots of a part's bits, None without ``part``; the batch sampler's
    bits may stay packed: :class:`~qmk.execution.result.PackedRows`). ``batched``: the
    route runs it as one batch circuit (:attr:`~qmk.engines.router.Choice.batch`).
    ``key`` makes the run's key (:func:`~qmk.execution.request.run_key`), which the
    states it saves carry."""
    # a batch circuit starts from |0...0>: a run from an initial state takes trajectories.
    # The mode never depends on a control or a resume (a replay without either must
    # take the path the run took).
    compiled = _batch_of(plan, cls, name) if batched and initial is None else None
    if compiled is not None:
        lowered, sampler = compiled
        if part is not None and part.index:  # one pass: part 0 does every shot
            none, rows = _first_part(np.zeros((0, len(plan.events)), np.uint8), part)
            return sampler.mode, lowered.noise_sampling, none, 0, Progress(), rows
        batch_seed = int(_stream(seed, 0).generate_state(1, np.uint64)[0]) >> 1
        noise_rng = np.random.default_rng(_stream(seed, 1))
        bits, injected, progress = batch.sample_chunked(
            lowered,
            sampler,
            shots,
            batch_seed,
            noise_rng,
            fences=_fences(plan),
            control=control,
            resume=resume,
            key=key,
            engine_name=name,
            keep_packed=True,
        )
        every = None if part is None else np.arange(shots)
        return sampler.mode, lowered.noise_sampling, bits, injected, progress, every
    noise_rng = np.random.default_rng(_stream(seed, 1))
    groups, injected = sample_error_patterns(plan, shots, noise_rng)
    sampling = "per-pattern" if plan.noise else "off"
    observed = observed_ops(plan)  # the micro-ops a record can see, compiled once per plan
    groups = _observed_groups(plan, observed, groups)
    stacked = _stacked_ops(plan, name, initial) if len(groups) > 1 else None
    if stacked is not None:
        stacked_bits, injected_here, progress, taken = _run_stacked(
            plan,
            stacked,
            observed,
            groups,
            part,
            shots=shots,
            seed=_stream(seed, 2),
            control=control,
            key=key(),
            engine_name=name,
            max_bytes=cls(seed=0, **options).max_bytes,
            resume=resume,
        )
        injected = injected if part is None else injected_here
        return "trajectories", sampling, stacked_bits, injected, progress, taken
    if part is not None:  # its share of the groups only (qmk.execution.parts)
        bits, rows, injected, progress = run_groups(
            plan,
            groups,
            part,
            engine=states.factory(lambda: cls(seed=0, **options), initial),
            ops=lambda pattern: observed.with_errors(_pattern_errors(plan, pattern)),
            shots=shots,
            seed=_stream(seed, 2),
            control=control,
            key=key(),
            engine_name=name,
            resume=resume,
        )
        return "trajectories", sampling, bits, injected, progress, rows
    work = [
        (observed.with_errors(_pattern_errors(plan, p)), members) for p, members in groups.items()
    ]
    runner = Runner(
        plan,
        states.factory(lambda: cls(seed=0, **options), initial),
        work,
        shots,
        _stream(seed, 2),
        control,
        key=key(),
        engine_name=name,
        # groups start from the error-free state at their first error (one group: nothing
        # to share, and the run polls its control at every micro-op as it always did)
        base=observed.ops if len(work) > 1 else None,
    )
    if resume is not None:
        from qmk.execution.checkpoint import resume as resume_runner

        resume_runner(runner, resume)
    bits = runner.run()
    return "trajectories", sampling, bits, injected, runner.progress, None


def _stacked_ops(plan: Plan, engine: str, initial: QuantumState | None) -> StackedOps | None:
    """The plan's micro-ops as stacked trajectories run them (:mod:`qmk.execution.stacked`),
    or None where its trajectories run group by group: an engine other than the
    statevector, a run from an initial state, no noise, or a program the stack does not
    run (:func:`~qmk.execution.stacked.compile_ops`). Kept per plan.

    A run of one group (no shot struck by an error a record sees) runs group by group
    too, as it always did. The choice is a function of the run request: a state saved
    by a stacked run (whole groups, no branch) is resumed by a stacked run, and one saved
    inside a group by the group-by-group runner (it holds a branch) is refused by a
    stacked run (``QE106``)."""
    if spec(engine).stack is None or initial is not None:
        return None
    return stack_of(plan)


def stack_of(plan: Plan) -> StackedOps | None:
    """The plan's micro-ops as stacked trajectories run them, or None where its
    trajectories never stack: no noise, or a program the stack does not run
    (:func:`~qmk.execution.stacked.compile_ops`). Kept per plan. The router prices a
    stacked run by it (:attr:`~qmk.engines.registry.Workload.stacked`). A program
    wider than the stack's register (:data:`~qmk.execution.stacked.MAX_QUBITS`) at its
    peak is refused before its micro-ops are made (a wide Clifford file's would cost
    seconds)."""
    if not plan.noise or plan.program.peak_live_qubits > STACK_QUBITS:
        return None
    found: StackedOps | None = _STACKS.get(
        (id(plan),), plan, lambda: compile_ops(observed_ops(plan).ops)
    )
    return found


def _run_stacked(
    plan: Plan,
    stacked: StackedOps,
    observed: Observed,
    groups: dict[tuple[tuple[int, str], ...], np.ndarray],
    part: Part | None,
    *,
    shots: int,
    seed: np.random.SeedSequence,
    control: Control | None,
    key: str,
    engine_name: str,
    max_bytes: int,
    resume: ExecutionState | None,
) -> tuple[np.ndarray, int, Progress, np.ndarray | None]:
    """``(bits, injected errors, progress, rows)`` of a trajectories run's ``groups`` on
    the stack, or of ``part``'s share of them (its rows, the shots they are, and the
    errors injected into them, as :func:`~qmk.execution.parts.run_groups` gives)."""
    every = list(groups.items())
    sizes = np.array([len(members) for _, members in every], dtype=np.int64)
    offsets = np.cumsum(sizes) - sizes
    ids = list(range(len(every))) if part is None else part.share(sizes.tolist())
    where: dict[int, tuple[int, str]] = {}  # each location's place among the kept micro-ops

    def placed(location: int, pauli: str) -> tuple[int, str, str]:
        found = where.get(location)
        if found is None:
            row = plan.noise[location]
            found = where[location] = (observed.kept_position(row.step, row.before), row.qubit)
        return (*found, pauli.lower())

    work = [([placed(*error) for error in every[g][0]], every[g][1]) for g in ids]
    runner = StackedRunner(
        plan,
        stacked,
        work,
        offsets[ids].tolist(),
        shots,
        seed,
        control,
        key=key,
        engine_name=engine_name,
        max_bytes=max_bytes,
    )
    if resume is not None:
        from qmk.execution.checkpoint import resume as resume_runner

        resume_runner(runner, resume)
    bits = runner.run()
    if part is None:
        return bits, 0, runner.progress, None
    taken, injected = shares_taken([every[g] for g in ids])
    return bits[taken], injected, runner.progress, taken


def _stream(seed: int, which: int) -> np.random.SeedSequence:
    """Stream ``which`` of a run seeded ``seed``: ``SeedSequence(seed).spawn(3)[which]``
    (0: the batch sampler's seed, 1: the logical errors, 2: the trajectories), made
    alone, as ``spawn`` makes it: a run takes two of the three, and never the parent."""
    return np.random.SeedSequence(seed, spawn_key=(which,))


def _batch_of(plan: Plan, cls: type, name: str) -> tuple[Any, Any] | None:
    """``plan`` lowered to a batch circuit (:func:`qmk.execution.batch.lower`) and compiled
    by engine ``cls`` (named ``name``; its batch capability), or None where either
    declines.

    Its noise is lowered as channels for an engine whose sampler holds a density matrix
    (:attr:`~qmk.engines.registry.EngineSpec.density`). It is kept per plan and engine,
    a function of them alone, since a sampler takes the seed at each draw. So a worker
    running one program under many seeds lowers and compiles it once."""

    def make() -> tuple[Any, Any] | None:
        compiler = batch_compiler(cls)
        channels = spec(name).density is not None
        lowered = _lowered(plan, channels=channels) if compiler is not None else None
        sampler = None
        if compiler is not None and lowered is not None:
            with gc_paused():  # a bulk pass that builds no cycles
                sampler = compiler(lowered.circuit)
        return None if sampler is None or lowered is None else (lowered, sampler)

    compiled: tuple[Any, Any] | None = _BATCHES.get((id(plan), cls), plan, make)
    return compiled


def _fences(plan: Plan) -> int:
    """How many ``FENCE_EPOCH`` steps ``plan`` has: its program's count, as verified."""
    return plan.program.counts.by_op.get("FENCE_EPOCH", 0)


def _observed_groups(
    plan: Plan, observed: Observed, groups: dict[tuple[tuple[int, str], ...], np.ndarray]
) -> dict[tuple[tuple[int, str], ...], np.ndarray]:
    """``groups`` less the errors no record can see (:class:`Observed`), merged where
    their patterns become one; ``groups`` itself when every error is seen."""
    merged: dict[tuple[tuple[int, str], ...], list[np.ndarray]] = {}
    dropped = False
    seen: dict[int, bool] = {}  # each location's answer (a plan's few, struck many times)

    def visible(location: int) -> bool:
        found = seen.get(location)
        if found is None:
            row = plan.noise[location]
            found = seen[location] = observed.observable(row.step, row.before, row.qubit)
        return found

    for pattern, members in groups.items():
        kept = tuple(error for error in pattern if visible(error[0]))
        dropped = dropped or len(kept) < len(pattern)
        merged.setdefault(kept, []).append(members)
    if not dropped:
        return groups
    out: dict[tuple[tuple[int, str], ...], np.ndarray] = {}
    if () in merged:
        out[()] = np.sort(np.concatenate(merged.pop(())))
    for pattern in sorted(merged):
        out[pattern] = np.sort(np.concatenate(merged[pattern]))
    return out


def _pattern_errors(
    plan: Plan, pattern: tuple[tuple[int, str], ...]
) -> dict[int, list[tuple[bool, str, str]]]:
    """An error pattern as :meth:`Observed.with_errors` takes it: step -> ``(before,
    qubit, pauli)``."""
    errors: dict[int, list[tuple[bool, str, str]]] = {}
    for location, pauli in pattern:
        loc = plan.noise[location]
        errors.setdefault(loc.step, []).append((loc.before, loc.qubit, pauli))
    return errors


def sample_error_patterns(
    plan: Plan, shots: int, rng: np.random.Generator
) -> tuple[dict[tuple[tuple[int, str], ...], np.ndarray], int]:
    """Each shot's logical errors, grouped: pattern -> shot indices; and the error total.

    A pattern is a tuple of ``(noise location index, "X"|"Y"|"Z")`` in location order;
    the empty pattern is the error-free group.
    """
    per_shot: dict[int, list[tuple[int, str]]] = {}
    if plan.noise:
        hits = rng.binomial(shots, batch.site_rates(plan.noise).capped)
        for location in np.flatnonzero(hits):
            loc = plan.noise[location]
            who = rng.choice(shots, size=int(hits[location]), replace=False)
            which = rng.choice(3, size=len(who), p=np.array([loc.px, loc.py, loc.pz]) / loc.total)
            for shot, w in zip(who.tolist(), which.tolist(), strict=True):
                per_shot.setdefault(shot, []).append((int(location), "XYZ"[w]))
    injected = sum(len(v) for v in per_shot.values())
    grouped: dict[tuple[tuple[int, str], ...], list[int]] = {}
    for shot, errors in per_shot.items():
        grouped.setdefault(tuple(errors), []).append(shot)
    clean = np.ones(shots, dtype=bool)
    if per_shot:
        clean[list(per_shot)] = False
    groups: dict[tuple[tuple[int, str], ...], np.ndarray] = {}
    if clean.any():
        groups[()] = np.flatnonzero(clean)
    for pattern, members in sorted(grouped.items()):
        groups[pattern] = np.array(sorted(members), dtype=np.int64)
    return groups, injected


def _plan_figures(
    plan: Plan,
    qubit: str | QubitParams,
    profile: str = DEFAULT_PROFILE,
    *,
    noise_model: NoiseModel | None = None,
    calibration: Calibration | None = None,
) -> dict[str, Any]:
    """The fields of a run's :class:`Telemetry` that depend on its plan and physics alone,
    not on its seed or shots: kept with the plan (:func:`execute`)."""
    bits_per_round, bits_per_second = decoder_load(plan, qubit, profile)
    uses: Counter[str] = Counter()
    regions: list[str] = []
    policies: list[dict[str, Any]] = []
    by_op = plan.program.counts.by_op
    named = any(by_op.get(op) for op in ("USE_CHAN", "BAR_REGION", "SET_POLICY"))
    for node in plan.steps.nodes if named else ():  # (most programs have none of them)
        if node.op == "USE_CHAN":
            uses[str(node.args.get("semantic", "unspecified"))] += 1
        elif node.op == "BAR_REGION":
            regions.append(str(node.args.get("tag", node.id)))
        elif node.op == "SET_POLICY":
            policies.append({"node": node.id, **dict(node.args)})
    return {
        "epochs": len(plan.program.epochs),
        "logical_cycles": plan.logical_cycles,
        "logical_time_ns": plan.logical_cycles * plan.cycle_time_ns,
        "peak_logical_qubits": plan.peak_logical_qubits,
        "peak_physical_qubits": plan.peak_physical_qubits,
        "decoder_rounds": plan.decoder_rounds,
        "magic_states": plan.magic_states,
        "teleports": plan.teleports,
        "noise_locations": len(plan.noise),
        "qubit_params": qubit if isinstance(qubit, str) else qubit.name,
        "profiles": plan.profiles,
        "channel_uses": dict(uses),
        "regions": tuple(regions),
        "policies": tuple(policies),
        "syndrome_bits_per_round": bits_per_round,
        "decoder_bits_per_second": bits_per_second,
        "noise_model": None if noise_model is None else describe_noise_model(noise_model),
        "calibration": None
        if calibration is None
        else {**calibration.to_json(), "profiles": list(plan.calibrated_profiles)},
    }
