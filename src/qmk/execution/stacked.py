"""Noisy trajectories of a small register, many shot groups a numpy pass.

A ``trajectories`` run groups its shots by logical-error pattern and the
:class:`~qmk.execution.trajectories.Runner` simulates each group alone. At a few errors a
shot nearly every shot is a group of its own, and each pays the whole program. Where the
program's micro-ops before its terminal measurements are gates alone (no mid-circuit
measurement, reset, guard, feed-forward or fence: :func:`compile_ops`), a chunk of groups
runs here instead, each group one row of a stack of state vectors
(:mod:`qmk.engines.rows`' layout, qubit ``k`` bit ``k`` of the index):

- the error-free gates are fused once into blocks (:func:`qmk.engines.fusion.plan`), and
  each block is one numpy pass over the rows that have started;
- a row's Pauli error ``P`` sits just before the next gate on its qubit. When that gate
  is the ``k``-th of block ``B``, whose first ``k`` gates make ``V``, the row gets
  ``V^-1 P V`` before ``B`` (``B``'s gates with ``P`` among them are ``B V^-1 P V``).
  Fused blocks keep the order of the gates on each qubit, so this is exact;
- a row starts at the block of its first error from the error-free state there (row 0
  of the stack runs without errors);
- an error after its qubit's last gate flips that qubit's outcome (X, Y) or changes
  nothing (Z);
- each row's shots are drawn from its final state (:func:`qmk.engines.rows.draw`).

Every shot takes one uniform of the run's stream at its place in the whole run (group
after group, in group order), so the rows depend on neither the chunks nor the parts a
run is cut into. Between chunks the run may stop (its control's ``YIELD_NOW``) and save
the rows of the groups done; a resumed run goes on with the next group.
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from qmk.engines import EngineError, fusion, kernels, rows
from qmk.engines.gates import GATES, TO_Z
from qmk.execution.branches import ExecutionState, Progress
from qmk.execution.microcode import MicroOp, Ops, Reader
from qmk.execution.trajectories import (
    YIELD_NOW,
    Control,
    Recorded,
    Suspended,
    compute_rows,
    tail_start,
)

#: The widest register the stack runs: a row of ``2**14`` amplitudes. Wider states run
#: one group at a time (:class:`~qmk.execution.trajectories.Runner`).
MAX_QUBITS = 14
#: The most amplitudes a chunk's stack holds: 16 MiB of complex128, near the caches and
#: a short step between two points where the run may stop.
CHUNK_AMPLITUDES = 1 << 20
#: The arrays of a chunk's size alive at once, as a state's memory allowance counts
#: them (the state and a working copy): the stack, and the sampling's weights (the
#: compiled kernels work in place).
COPIES = 2
#: A stack of fewer amplitudes runs its gates on one thread (:meth:`StackedRunner._apply`).
THREADED_AMPLITUDES = 1 << 18
#: The corrections kept per program, at most (each ``4**width`` amplitudes).
KEPT_CORRECTIONS = 1 << 14

#: A Pauli error's letter as its index (``x`` 1, ``y`` 2, ``z`` 3).
_PAULI = {"x": 1, "y": 2, "z": 3}

#: A group's errors: ``(at, qubit, pauli)``, before the kept micro-op ``at``
#: (:meth:`~qmk.execution.trajectories.Observed.kept_position`), in any order (each is
#: placed by its own position; Paulis at one place commute up to a phase).
Errors = Sequence[tuple[int, str, str]]


@functools.lru_cache(maxsize=4096)
def _matrix(gate: str, params: tuple[float, ...]) -> np.ndarray:
    return np.asarray(GATES[gate].matrix(params), dtype=np.complex128)


@dataclass(frozen=True, slots=True, eq=False)
class StackedOps:
    """A program's error-free micro-ops as the stack runs them (:func:`compile_ops`).

    ``bits`` numbers the qubits (allocation order); ``gates`` are the gates up to the
    sampling, basis changes of the terminal measurements included, each ``(bits,
    matrix)``, fused into ``blocks``. ``gate_at[i]`` is the first gate at or after
    micro-op ``i``; ``measured`` the ``(bit, event)`` of each terminal measurement;
    ``calcs`` the terminal ``calc`` micro-ops, computed on the drawn rows."""

    n: int
    bits: Mapping[str, int]
    gates: list[tuple[tuple[int, ...], np.ndarray]]
    gate_at: list[int]
    measured: tuple[tuple[int, int], ...]
    calcs: tuple[MicroOp, ...]
    blocks: list[fusion.Block] = field(init=False)
    _block_of: list[int] = field(init=False)
    _offset_of: list[int] = field(init=False)
    _on_bit: list[list[int]] = field(init=False)
    _prefixes: dict[int, list[np.ndarray]] = field(init=False)
    _layouts: dict[int, np.ndarray] = field(init=False)
    _corrections: dict[int, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        blocks = fusion.plan(self.gates) if self.gates else []
        block_of = [0] * len(self.gates)
        offset_of = [0] * len(self.gates)
        for b, block in enumerate(blocks):
            for k, g in enumerate(block.gates):
                block_of[g], offset_of[g] = b, k
        on_bit: list[list[int]] = [[] for _ in range(self.n)]
        for g, (qubits, _) in enumerate(self.gates):
            for q in qubits:
                on_bit[q].append(g)
        set_ = object.__setattr__
        set_(self, "blocks", blocks)
        set_(self, "_block_of", block_of)
        set_(self, "_offset_of", offset_of)
        set_(self, "_on_bit", on_bit)
        set_(self, "_prefixes", {})
        set_(self, "_layouts", {})
        set_(self, "_corrections", {})

    def slot(self, at: int, qubit: str, pauli: str) -> tuple[int, int, int]:
        """Where an error before micro-op ``at`` acts: ``(block, offset, key)`` of the
        next gate on its qubit (``key`` names its correction, :meth:`correction`), or
        ``(len(blocks), 0, flip)`` after the qubit's last gate (``flip``: the outcome
        bits an X or Y there flips)."""
        bit = self.bits[qubit]
        on = self._on_bit[bit]
        k = bisect.bisect_left(on, self.gate_at[at])
        if k == len(on):
            return len(self.blocks), 0, (1 << bit) if pauli in "xy" else 0
        gate = on[k]
        key = (gate * self.n + bit) * 4 + _PAULI[pauli]
        return self._block_of[gate], self._offset_of[gate], key

    def correction(self, key: int) -> np.ndarray:
        """The matrix ``V^-1 P V`` on its block's qubits of the error :meth:`slot` keyed
        ``key`` (kept: a program's errors strike few places, many times)."""
        found = self._corrections.get(key)
        if found is not None:
            return found
        rest, letter = divmod(key, 4)
        gate, bit = divmod(rest, self.n)
        b = self._block_of[gate]
        qubits = self.blocks[b].qubits
        v = self._prefix(b)[self._offset_of[gate]]
        # the Pauli on the rows of v: its qubit's bit of the row index (the block's first
        # qubit the top bit), flipped by X and Y, its sign read by Z and Y
        mask = 1 << (len(qubits) - 1 - qubits.index(bit))
        index = np.arange(len(v))
        ones = (index & mask) != 0
        moved = v[index ^ mask] if letter in (1, 2) else v
        sign = {1: np.ones(len(v)), 2: np.where(ones, 1j, -1j), 3: np.where(ones, -1.0, 1.0)}
        found = v.conj().T @ (sign[letter][:, None] * moved)
        if len(self._corrections) >= KEPT_CORRECTIONS:
            self._corrections.clear()
        self._corrections[key] = found
        return found

    def layout(self, b: int) -> np.ndarray:
        """The amplitudes of a row in the order that puts block ``b``'s qubits last, its
        first the most significant: ``row[layout]`` seen as ``(2**(n - width), 2**width)``
        has the block's matrix act on its last axis (kept)."""
        found = self._layouts.get(b)
        if found is None:
            qubits = self.blocks[b].qubits
            others = [q for q in range(self.n) if q not in qubits]
            width = len(qubits)
            index = np.arange(1 << self.n)
            found = np.zeros(1 << self.n, dtype=np.int64)
            for j, q in enumerate(qubits):  # bit width - 1 - j of the block's part
                found |= ((index >> (width - 1 - j)) & 1) << q
            for j, q in enumerate(others):  # the others above it, in order
                found |= ((index >> (width + j)) & 1) << q
            self._layouts[b] = found
        return found

    def _prefix(self, b: int) -> list[np.ndarray]:
        """Block ``b``'s products of its first ``k`` gates, for every ``k`` (on its
        qubits, in its matrix's convention)."""
        found = self._prefixes.get(b)
        if found is None:
            block = self.blocks[b]
            width = len(block.qubits)
            local = {q: width - 1 - j for j, q in enumerate(block.qubits)}
            basis = np.eye(1 << width, dtype=np.complex128)  # row i: the state |i>
            found = [basis.T.copy()]
            for g in block.gates:
                qubits, matrix = self.gates[g]
                rows.apply_matrix(basis, matrix, [local[q] for q in qubits])
                found.append(basis.T.copy())  # column i: the gates applied to |i>
            self._prefixes[b] = found
        return found


def compile_ops(ops: Ops) -> StackedOps | None:
    """``ops`` (a program's error-free micro-ops) as the stack runs them, or None where
    it does not: a micro-op before the terminal measurements other than an unguarded
    gate or alloc, or more than :data:`MAX_QUBITS` qubits."""
    try:
        return _compiled(ops)
    finally:  # (the plan's micro-ops are kept: their rows are not)
        ops.forget()


def _compiled(ops: Ops) -> StackedOps | None:
    tail = tail_start(ops)
    bits: dict[str, int] = {}
    gates: list[tuple[tuple[int, ...], np.ndarray]] = []
    gate_at = [0] * (len(ops) + 1)
    measured: list[tuple[int, int]] = []
    calcs: list[MicroOp] = []
    done: set[str] = set()
    for i, op in enumerate(Reader(ops).span(0, len(ops))):
        gate_at[i] = len(gates)
        kind = op.kind
        if i < tail:
            if op.guard is not None:
                return None
            if kind == "alloc":
                bits[op.qubits[0]] = len(bits)
            elif kind == "gate":
                gates.append((tuple(bits[q] for q in op.qubits), _matrix(op.gate, op.params)))
            else:
                return None
        elif kind == "gate":  # (as a trajectory's leaf: none after its qubits' measurement)
            if done.isdisjoint(op.qubits):
                gates.append((tuple(bits[q] for q in op.qubits), _matrix(op.gate, op.params)))
        elif kind == "meas":
            bit = bits[op.qubits[0]]
            gates += [((bit,), _matrix(gate, ())) for gate in TO_Z[op.basis]]
            measured.append((bit, op.event))
            done.add(op.qubits[0])
        elif kind == "calc":
            calcs.append(op)
    gate_at[len(ops)] = len(gates)
    if not bits or len(bits) > MAX_QUBITS:
        return None
    return StackedOps(len(bits), bits, gates, gate_at, tuple(measured), tuple(calcs))


class StackedRunner:
    """Runs shot groups of one plan as rows of stacks, chunk by chunk, resumably.

    Args:
        plan: what it runs (its ``events`` only are read).
        ops: the plan's error-free micro-ops as the stack runs them.
        groups: each group's errors and shot indices, in the run's group order.
        offsets: each group's first shot in the run's stream of uniforms (the shots of
            the whole run's groups before it).
        shots: the run's shots (rows of :attr:`bits`).
        seed: the run's stream.
        control: who may stop the run between chunks (None: nobody).
        key, engine_name: what a saved state carries (as a ``Runner``'s).
        max_bytes: the state memory allowed: a chunk's arrays (:data:`COPIES`) fit it.
    """

    def __init__(
        self,
        plan: Recorded,
        ops: StackedOps,
        groups: Sequence[tuple[Errors, np.ndarray]],
        offsets: Sequence[int],
        shots: int,
        seed: np.random.SeedSequence,
        control: Control | None = None,
        *,
        key: str = "",
        engine_name: str = "",
        max_bytes: int,
    ) -> None:
        self.ops = ops
        self.groups = groups
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.sizes = np.array([len(members) for _, members in groups], dtype=np.int64)
        self.control = control
        self.key = key
        self.engine_name = engine_name
        self.events = len(plan.events)
        self.bits = np.zeros((shots, self.events), dtype=np.uint8)
        self.group = 0  # every group before it is done
        # what a checkpoint's state holds besides (a Runner's, empty between chunks)
        self.leaves: list[tuple[tuple[int, ...], np.ndarray]] = []
        self.stack: list[object] = []
        self.progress = Progress(preempted_at_epochs=[])
        self.epoch = 0
        amplitudes = min(CHUNK_AMPLITUDES, max_bytes // (COPIES * 16))
        # a power of two of rows (the kernels' states), row 0 the error-free run
        self.rows = max(1, _floor(amplitudes >> ops.n) - 1)
        self._kernels = kernels.default_kernels()
        self._stream = np.random.PCG64(seed)
        self._start = self._stream.state

    def run(self) -> np.ndarray:
        """Run the groups left; every shot's event row (uint8, shot order).

        Raises:
            Suspended: the control asked to stop; the state was saved first.
            EngineError: ``QE106`` for a resumed state saved inside a group.
        """
        if self.leaves or self.stack:
            raise EngineError.of(
                "checkpoint-mismatch", "the checkpoint is of a run that stopped inside a group"
            )
        control = self.control
        while self.group < len(self.groups):
            end = min(len(self.groups), self.group + self.rows)
            self._chunk(self.group, end)
            self.progress.simulations += end - self.group
            self.group = end
            between = end < len(self.groups) and control is not None and control.urgent
            if between and control is not None and control.at_op() == YIELD_NOW:
                self._stop()
        return self.bits

    def state(self) -> ExecutionState:
        """The run's state between two chunks: the rows of the groups done."""
        return ExecutionState(
            key=self.key,
            engine=self.engine_name,
            epoch=self.epoch,
            group=self.group,
            bits=self.bits.copy(),
            leaves=(),
            branches=(),
            progress=self.progress.to_json(),
        )

    def _stop(self) -> None:
        assert self.control is not None and self.progress.preempted_at_epochs is not None
        self.progress.checkpoints += 1
        self.progress.preempted_at_epochs.append(self.epoch)
        state = self.state()
        self.control.save(state)
        raise Suspended(state)

    def _chunk(self, lo: int, hi: int) -> None:
        """Groups ``lo`` to ``hi``: their rows simulated together, their shots drawn."""
        ops = self.ops
        count = hi - lo
        end = len(ops.blocks)
        starts = np.full(count, end, dtype=np.int64)
        flips = np.zeros(count, dtype=np.int64)
        struck: list[tuple[int, int, int, int]] = []  # (block, row, offset, key)
        for row in range(count):
            for at, qubit, pauli in self.groups[lo + row][0]:
                first, offset, key = ops.slot(at, qubit, pauli)
                if first == end:
                    flips[row] ^= key
                else:
                    struck.append((first, row, offset, key))
                    starts[row] = min(starts[row], first)
        order = np.argsort(starts, kind="stable")  # rows by their first block
        place = np.empty(count, dtype=np.int64)
        place[order] = np.arange(1, count + 1)  # each group's row of the stack
        begun = np.searchsorted(starts[order], np.arange(end + 1), side="right")
        places = place.tolist()
        struck = sorted((b, places[row], offset, key) for b, row, offset, key in struck)
        # the compiled kernels take states of 2**k amplitudes: the stack is one state whose
        # high bits number its rows, and a block runs on the rows begun, rounded up to a
        # power of two (the rows past them are zero or written before they begin)
        stack = np.zeros((_ceiling(count + 1), 1 << ops.n), dtype=np.complex128)
        stack[0, 0] = 1.0
        active = 1
        k = 0
        waiting: list[fusion.Block] = []  # blocks not yet applied: one call for a run
        for at, block in enumerate(ops.blocks):
            first = k
            while k < len(struck) and struck[k][0] == at:
                k += 1
            if waiting and (k > first or 1 + begun[at] > active):
                self._apply(stack[: _ceiling(active)], waiting)
                waiting = []
            if 1 + begun[at] > active:  # rows whose first error is here start here
                stack[active : 1 + begun[at]] = stack[0]
                active = 1 + int(begun[at])
            if k > first:
                _correct(stack, struck[first:k], ops, at)
            waiting.append(block)
        self._apply(stack[: _ceiling(active)], waiting)
        stack[active : count + 1] = stack[0]  # rows struck after every gate only
        self._draw(stack[1 : count + 1], order, flips, lo, hi)

    def _apply(self, stack: np.ndarray, blocks: Sequence[fusion.Block]) -> None:
        """``blocks`` on every row of ``stack`` (rows a power of two: one state). A short
        stack runs on this thread alone: waking the kernels' threads costs more there
        than the pass, and a worker's parallelism is its processes."""
        if not blocks:
            return
        psi = stack.reshape(-1)
        kernels.apply_blocks(
            psi,
            [(block.matrix, block.qubits[::-1], False) for block in blocks],
            kernels=self._kernels,
            threads=1 if psi.size < THREADED_AMPLITUDES else None,
        )

    def _draw(
        self, final: np.ndarray, order: np.ndarray, flips: np.ndarray, lo: int, hi: int
    ) -> None:
        """Each group's shots from its row of ``final`` (rows in ``order``)."""
        sizes = self.sizes[lo:hi]
        uniforms = self._uniforms(lo, hi)
        firsts = np.cumsum(sizes) - sizes
        ranked = sizes[order]
        # the uniforms of the rows in stack order: each group's run of them
        taken = np.repeat(firsts[order] - (np.cumsum(ranked) - ranked), ranked)
        taken += np.arange(len(taken))
        index = rows.draw(final, uniforms[taken], ranked) ^ np.repeat(flips[order], ranked)
        record = np.zeros((len(index), self.events), dtype=np.uint8)
        for bit, event in self.ops.measured:
            if event >= 0:
                record[:, event] = (index >> bit) & 1
        for op in self.ops.calcs:
            compute_rows(op, record)
        members = [self.groups[lo + int(g)][1] for g in order]
        self.bits[np.concatenate(members)] = record

    def _uniforms(self, lo: int, hi: int) -> np.ndarray:
        """The uniforms of groups ``lo`` to ``hi``'s shots, from their places in the run's
        stream (one jump a run of groups whose shots follow each other there)."""
        offsets, sizes = self.offsets[lo:hi], self.sizes[lo:hi]
        out = np.empty(int(sizes.sum()))
        breaks = np.flatnonzero(offsets[1:] != offsets[:-1] + sizes[:-1]) + 1
        bounds = [0, *breaks.tolist(), hi - lo]
        at = 0
        for a, b in itertools.pairwise(bounds):
            size = int(sizes[a:b].sum())
            self._stream.state = self._start
            self._stream.advance(int(offsets[a]))
            out[at : at + size] = np.random.Generator(self._stream).random(size)
            at += size
        return out


def _floor(count: int) -> int:
    """The greatest power of two at or below ``count`` (1 below 1)."""
    return 1 << max(0, count.bit_length() - 1)


def _ceiling(count: int) -> int:
    """The least power of two at or above ``count``."""
    return 1 << (count - 1).bit_length()


def _correct(
    stack: np.ndarray, struck: Sequence[tuple[int, int, int, int]], ops: StackedOps, block: int
) -> None:
    """The struck rows' corrections before ``block`` (``struck``: ``(block, row of the
    stack, offset, key)``, by row, then offset), multiplied into one matrix a row and
    applied to its row of ``stack``."""
    where = np.array([row for _, row, _, _ in struck], dtype=np.int64)
    matrices = np.array([ops.correction(key) for _, _, _, key in struck])
    firsts = np.flatnonzero(np.r_[True, where[1:] != where[:-1]])
    counts = np.diff(np.r_[firsts, len(where)])
    product = matrices[firsts]
    for j in range(1, int(counts.max())):  # a row's later errors after its earlier ones
        more = counts > j
        product[more] = matrices[firsts[more] + j] @ product[more]
    targets = where[firsts]
    order = ops.layout(block)
    width = product.shape[1]
    picked = stack[targets][:, order].reshape(len(targets), -1, width)
    done = np.empty((len(targets), stack.shape[1]), dtype=stack.dtype)
    done[:, order] = np.matmul(picked, product.transpose(0, 2, 1)).reshape(len(targets), -1)
    stack[targets] = done


__all__ = ["CHUNK_AMPLITUDES", "COPIES", "MAX_QUBITS", "StackedOps", "StackedRunner", "compile_ops"]
