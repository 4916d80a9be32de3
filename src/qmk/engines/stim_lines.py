"""The stim text of a batch circuit's plain gates: a line for the gates of one name in a
moment, written from the instruction columns without a Python object a gate.

:class:`PlainLines` is what :func:`~qmk.engines.stim_batch.compile_batch` hands stim for
the gates without feed-forward (:data:`~qmk.engines.instructions.PLAIN`). Two passes
are one loop over the gates each, which numpy can only do in many passes (sorts,
gathers, a byte of text at a time): the gates' moments (:func:`moments`) and the text
itself (:func:`write_lines`). Each has two implementations of the one rule, as
:mod:`qmk.execution.asap` has:

- compiled: a loop in LLVM IR, built as :mod:`qmk.engines.simd` builds its kernels
  (llvmlite, the same on-disk object cache), taken for at least :data:`COMPILED_GATES`
  gates;
- numpy: always there; for fewer gates, or where LLVM cannot build the loop here.

Both give the same moments and the same bytes (a test compares them).

>>> import numpy as np
>>> from qmk.engines.instructions import PLAIN, Instructions
>>> rows = Instructions(np.full(3, PLAIN), [0, 0, 1], [0, 1, 2, 4], [0, 1, 1, 2],
...                     gates=[("h", ()), ("cx", ())])
>>> PlainLines.of(rows, 3).data.decode()
'H 0 1\\nCX 1 2\\n'
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qmk.arrays import distinct
from qmk.engines.base import EngineError
from qmk.engines.instructions import PLAIN, Instructions
from qmk.engines.stim_gates import stim_gate

#: The most qubits :class:`PlainLines` writes (it makes the text of every qubit's number).
MAX_QUBITS = 10**7

#: The gates a run between other rows must hold on average for :func:`moments` to
#: find moments in it: past that, a line a gate (noisy circuits, an error site after
#: most gates) costs stim little more, and finding them would cost more than it saves.
MOMENT_GATES = 4
#: Gates a circuit needs for the compiled loops (fewer stay in numpy: their passes cost
#: less than a first compile where no cache holds the loops).
COMPILED_GATES = 1 << 15
#: Bytes of a number's text (``"9999999 "`` at most: :data:`MAX_QUBITS`) and of a head's
#: in the compiled writer, which copies a whole slot and moves on by the text's length.
_NUMBER_SLOT, _HEAD_SLOT = 8, 16

_MOMENTS_IR = """
define i32 @qmk_stim_moments_v1(i64 %n, ptr noalias %q, ptr noalias %starts,
                                 ptr noalias %arity, ptr noalias %after,
                                 ptr noalias %stamp, ptr noalias %moment) {
entry:
  %none = icmp sle i64 %n, 0
  br i1 %none, label %exit, label %gate
gate:
  %g = phi i64 [0, %entry], [%g1, %done]
  %run = phi i32 [0, %entry], [%run1, %done]
  %ps = getelementptr i64, ptr %starts, i64 %g
  %s = load i64, ptr %ps
  %pa = getelementptr i64, ptr %arity, i64 %g
  %a = load i64, ptr %pa
  %e = add i64 %s, %a
  %pc = getelementptr i8, ptr %after, i64 %g
  %c8 = load i8, ptr %pc
  %cut = icmp ne i8 %c8, 0
  %has = icmp slt i64 %s, %e
  br i1 %has, label %check, label %decide
check:
  %j = phi i64 [%s, %gate], [%j1, %check]
  %clash = phi i1 [%cut, %gate], [%clash1, %check]
  %pq = getelementptr i64, ptr %q, i64 %j
  %qq = load i64, ptr %pq
  %pst = getelementptr i32, ptr %stamp, i64 %qq
  %st = load i32, ptr %pst
  %same = icmp eq i32 %st, %run
  %clash1 = or i1 %clash, %same
  %j1 = add i64 %j, 1
  %more = icmp slt i64 %j1, %e
  br i1 %more, label %check, label %decide
decide:
  %any = phi i1 [%cut, %gate], [%clash1, %check]
  %later = icmp sgt i64 %g, 0
  %new = and i1 %any, %later
  %inc = zext i1 %new to i32
  %run1 = add i32 %run, %inc
  br i1 %has, label %mark, label %done
mark:
  %k = phi i64 [%s, %decide], [%k1, %mark]
  %pq2 = getelementptr i64, ptr %q, i64 %k
  %q2 = load i64, ptr %pq2
  %pst2 = getelementptr i32, ptr %stamp, i64 %q2
  store i32 %run1, ptr %pst2
  %k1 = add i64 %k, 1
  %more2 = icmp slt i64 %k1, %e
  br i1 %more2, label %mark, label %done
done:
  %pm = getelementptr i32, ptr %moment, i64 %g
  store i32 %run1, ptr %pm
  %g1 = add i64 %g, 1
  %go = icmp slt i64 %g1, %n
  br i1 %go, label %gate, label %exit
exit:
  %r = phi i32 [0, %entry], [%run1, %done]
  ret i32 %r
}
"""
"""``i32 qmk_stim_moments_v1(n, qubits, starts, arity, after, stamp, moment)``: gate
``g`` starts a new moment (after the first) where ``after[g]`` is set or one of its
qubits was stamped with the current moment; its qubits are then stamped with its
moment, written to ``moment[g]``. ``stamp`` holds -1 for every qubit at the start."""

_LINES_IR = """
define i64 @qmk_stim_lines_v1(i64 %n, ptr noalias %q, ptr noalias %starts,
                               ptr noalias %arity, ptr noalias %codes, ptr noalias %line,
                               ptr noalias %nums, ptr noalias %numsz, ptr noalias %heads,
                               ptr noalias %headsz, ptr noalias %out, ptr noalias %ends) {
entry:
  store i64 0, ptr %ends
  %none = icmp sle i64 %n, 0
  br i1 %none, label %exit, label %row
row:
  %k = phi i64 [0, %entry], [%k1, %rowdone]
  %pos = phi i64 [0, %entry], [%posr, %rowdone]
  %pl = getelementptr i8, ptr %line, i64 %k
  %l8 = load i8, ptr %pl
  %isline = icmp ne i8 %l8, 0
  br i1 %isline, label %head, label %targets
head:
  %later = icmp sgt i64 %k, 0
  br i1 %later, label %newline, label %name
newline:
  %pm1 = add i64 %pos, -1
  %pnl = getelementptr i8, ptr %out, i64 %pm1
  store i8 10, ptr %pnl
  br label %name
name:
  %pc = getelementptr i64, ptr %codes, i64 %k
  %c = load i64, ptr %pc
  %hoff = mul i64 %c, 16
  %ph = getelementptr i8, ptr %heads, i64 %hoff
  %h0 = load i64, ptr %ph, align 1
  %ph1 = getelementptr i8, ptr %ph, i64 8
  %h1 = load i64, ptr %ph1, align 1
  %po = getelementptr i8, ptr %out, i64 %pos
  store i64 %h0, ptr %po, align 1
  %po1 = getelementptr i8, ptr %po, i64 8
  store i64 %h1, ptr %po1, align 1
  %phs = getelementptr i64, ptr %headsz, i64 %c
  %hs = load i64, ptr %phs
  %posh = add i64 %pos, %hs
  br label %targets
targets:
  %pos0 = phi i64 [%pos, %row], [%posh, %name]
  %ps = getelementptr i64, ptr %starts, i64 %k
  %s = load i64, ptr %ps
  %pa = getelementptr i64, ptr %arity, i64 %k
  %a = load i64, ptr %pa
  %e = add i64 %s, %a
  %has = icmp slt i64 %s, %e
  br i1 %has, label %target, label %rowdone
target:
  %j = phi i64 [%s, %targets], [%j1, %target]
  %pt = phi i64 [%pos0, %targets], [%pt1, %target]
  %pq = getelementptr i64, ptr %q, i64 %j
  %qq = load i64, ptr %pq
  %noff = mul i64 %qq, 8
  %pn = getelementptr i8, ptr %nums, i64 %noff
  %w = load i64, ptr %pn, align 1
  %pw = getelementptr i8, ptr %out, i64 %pt
  store i64 %w, ptr %pw, align 1
  %pns = getelementptr i64, ptr %numsz, i64 %qq
  %ns = load i64, ptr %pns
  %pt1 = add i64 %pt, %ns
  %j1 = add i64 %j, 1
  %more = icmp slt i64 %j1, %e
  br i1 %more, label %target, label %rowdone
rowdone:
  %posr = phi i64 [%pos0, %targets], [%pt1, %target]
  %k1 = add i64 %k, 1
  %pe = getelementptr i64, ptr %ends, i64 %k1
  store i64 %posr, ptr %pe
  %go = icmp slt i64 %k1, %n
  br i1 %go, label %row, label %last
last:
  %pl1 = add i64 %posr, -1
  %plast = getelementptr i8, ptr %out, i64 %pl1
  store i8 10, ptr %plast
  br label %exit
exit:
  %r = phi i64 [0, %entry], [%posr, %last]
  ret i64 %r
}
"""
"""``i64 qmk_stim_lines_v1(n, qubits, starts, arity, codes, line, nums, numsz, heads,
headsz, out, ends)``: :func:`write_lines`' text into ``out``, its length returned.
``nums``/``heads`` hold each text in a slot of 8/16 bytes padded with spaces, their
lengths in ``numsz``/``headsz``; a slot is copied whole (as one or two 64-bit words, so
no loop of bytes for LLVM to turn into a call) and the next text starts where its own
text ends. A line's last space becomes a newline."""

_SIGNATURES = {
    "moments": ("qmk_stim_moments_v1", _MOMENTS_IR, ctypes.c_int32, 7),
    "lines": ("qmk_stim_lines_v1", _LINES_IR, ctypes.c_int64, 12),
}
_lock = threading.Lock()
#: by loop: "call" the ctypes function, or "reason" why there is none
_kernels: dict[str, dict[str, Any]] = {name: {} for name in _SIGNATURES}


def _kernel(which: str) -> Any | None:
    """The compiled loop ``which`` (built or loaded once a process), or None where LLVM
    cannot build it here (:func:`unavailable_reason` says why)."""
    kernel = _kernels[which]
    if "call" in kernel or "reason" in kernel:
        return kernel.get("call")
    with _lock:
        if "call" not in kernel and "reason" not in kernel:
            from qmk.engines import simd

            name, text, result, count = _SIGNATURES[which]
            try:
                address = simd.compile_function(name, text)
            except RuntimeError as error:
                kernel["reason"] = str(error)
            else:
                args = (ctypes.c_int64, *[ctypes.c_void_p] * (count - 1))
                kernel["call"] = ctypes.CFUNCTYPE(result, *args)(address)
    return kernel.get("call")


def unavailable_reason() -> str | None:
    """Why a compiled loop is None here, or None (also before one was asked)."""
    reason = next((k["reason"] for k in _kernels.values() if "reason" in k), None)
    return None if reason is None else str(reason)


@dataclass(frozen=True, slots=True)
class _Slots:
    """Short texts in slots of a fixed width (padded with spaces), one row each, and
    their lengths: what the compiled writer copies."""

    table: np.ndarray
    sizes: np.ndarray


def _slots(texts: Sequence[str], width: int) -> _Slots:
    padded = "".join(text.ljust(width) for text in texts).encode("ascii")
    table = np.frombuffer(padded, dtype=np.uint8).reshape(len(texts), width)
    sizes = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    return _Slots(np.ascontiguousarray(table), sizes)


@dataclass(frozen=True, slots=True)
class PlainLines:
    """The stim text of a circuit's plain gates (:data:`~qmk.engines.instructions.
    PLAIN`) but the identities, as bytes: the gates of one name in a moment (a run of
    gates on distinct qubits, see :func:`moments`) on one line, ``H 0 3 7``.

    stim takes a line of many targets as one instruction, which it parses, simulates and
    samples at a fraction of the cost of a line a gate. A moment's gates act on distinct
    qubits, so their order does not matter: stim's simulators apply the same operations
    to the same qubits, and draw the same bits for a seed. ``rows`` are the circuit rows
    of the plain gates in the order written; ``ends[k]`` is where the text of the first
    ``k`` of them ends (a line's end wherever another row comes between them).
    ``targets`` counts their qubits."""

    rows: np.ndarray
    data: bytes
    ends: np.ndarray
    targets: int
    #: :attr:`rows` in circuit order
    placed: np.ndarray

    @classmethod
    def of(cls, rows: Instructions, num_qubits: int) -> PlainLines | None:
        """The plain gates' text of ``rows``, or None when stim has no such gate."""
        names = [stim_gate(gate, params) for gate, params in rows.gates]
        if None in names:
            used = distinct(rows.codes[rows.kinds == PLAIN])
            if any(names[code] is None for code in used.tolist()):
                return None
        at = np.flatnonzero(rows.kinds == PLAIN)
        written = np.array([name not in (None, "I") for name in names], dtype=bool)
        if len(at):
            at = at[written[rows.codes[at]]]
        if not len(at):
            return cls(at, b"", np.zeros(1, dtype=np.int64), 0, at)
        starts, ends = rows.offsets[at], rows.offsets[at + 1]
        arity = ends - starts
        # each moment's gates by name (stable: each name's in circuit order)
        moment = moments(rows.qubits, starts, arity, np.diff(at, prepend=0) > 1)
        placed = at
        if moment is None:
            codes = rows.codes[at]
            line_start = np.ones(len(at), dtype=bool)
        else:
            order = _stable_order(moment.astype(np.int64) * len(names) + rows.codes[at])
            at, starts, arity, moment = at[order], starts[order], arity[order], moment[order]
            codes = rows.codes[at]
            line_start = np.r_[True, (moment[1:] != moment[:-1]) | (codes[1:] != codes[:-1])]
        top = int(rows.qubits.max(initial=0)) if len(rows.qubits) else 0
        qubit_count = max(num_qubits, top + 1)
        if qubit_count > MAX_QUBITS:
            raise EngineError.of(
                "engine-capacity",
                f"the stim compiler writes circuits of at most {MAX_QUBITS:,} qubits, "
                f"not {qubit_count:,}",
                needed=qubit_count,
            )
        heads = [f"{name} " if name else "" for name in names]
        data, ends = write_lines(rows.qubits, starts, arity, codes, line_start, heads, qubit_count)
        return cls(at, data, ends, int(arity.sum()), placed)

    def sizes(self) -> np.ndarray:
        """The characters of each row's text, in the order of :attr:`rows`."""
        return np.diff(self.ends)

    def text(self, rows: np.ndarray, lines: Sequence[str]) -> str:
        """The circuit's text: these lines, and ``lines`` at the circuit's ``rows`` (in
        order; each "" or ending in a newline), each where it stands among the plain
        gates' moments."""
        before = np.searchsorted(self.placed, rows)  # the plain rows before each
        ends, data = self.ends[before].tolist(), self.data
        before = before.tolist()
        parts, done, at = [], 0, 0
        for count, end, line in zip(before, ends, lines, strict=True):
            if count > done:
                parts.append(data[at:end].decode("ascii"))
                done, at = count, end
            parts.append(line)
        parts.append(data[at:].decode("ascii"))
        return "".join(parts)


def write_lines(
    qubits: np.ndarray,
    starts: np.ndarray,
    arity: np.ndarray,
    codes: np.ndarray,
    line_start: np.ndarray,
    heads: Sequence[str],
    qubit_count: int,
    *,
    kernel: str | None = None,
) -> tuple[bytes, np.ndarray]:
    """The text of gates ``k`` (on ``qubits[starts[k]:starts[k] + arity[k]]``, of gate
    code ``codes[k]``), a line from each gate with ``line_start`` (the first's at least)
    to the next: its head (``heads[code]``: a name and a space), then each target's
    number and a space, the last a newline. Returns the text, and where the text of the
    first ``k`` gates ends (``n + 1`` of them).

    ``kernel``: ``"compiled"`` or ``"numpy"`` to choose; None takes the compiled loop for
    :data:`COMPILED_GATES` gates or more where it builds here (and each head and number
    fits its slot).

    Raises:
        RuntimeError: ``kernel="compiled"`` where it cannot run.
    """
    count = len(starts)
    if kernel is None:
        fits = qubit_count <= 10**8 and max(map(len, heads), default=0) <= _HEAD_SLOT
        big = count >= COMPILED_GATES and fits
        kernel = "compiled" if big and _kernel("lines") is not None else "numpy"
    if kernel == "numpy":
        return _numpy_lines(qubits, starts, arity, codes, line_start, heads, qubit_count)
    call = _kernel("lines")
    if call is None:
        raise RuntimeError(f"no compiled stim lines here: {unavailable_reason()}")
    numbers = _slots([f"{q} " for q in range(qubit_count)], _NUMBER_SLOT)
    head_slots = _slots(heads, _HEAD_SLOT)
    q = np.ascontiguousarray(qubits, dtype=np.int64)
    at = np.ascontiguousarray(starts, dtype=np.int64)
    width = np.ascontiguousarray(arity, dtype=np.int64)
    code = np.ascontiguousarray(codes, dtype=np.int64)
    line = np.ascontiguousarray(line_start, dtype=np.uint8)
    # room for every slot whole (a slot writes past its text, into the next)
    room = int(width.sum()) * _NUMBER_SLOT + (int(np.count_nonzero(line)) + 1) * _HEAD_SLOT
    out = np.empty(room, dtype=np.uint8)
    ends = np.empty(count + 1, dtype=np.int64)
    written = call(
        count,
        q.ctypes.data,
        at.ctypes.data,
        width.ctypes.data,
        code.ctypes.data,
        line.ctypes.data,
        numbers.table.ctypes.data,
        numbers.sizes.ctypes.data,
        head_slots.table.ctypes.data,
        head_slots.sizes.ctypes.data,
        out.ctypes.data,
        ends.ctypes.data,
    )
    return out[:written].tobytes(), ends


def _numpy_lines(
    qubits: np.ndarray,
    starts: np.ndarray,
    arity: np.ndarray,
    codes: np.ndarray,
    line_start: np.ndarray,
    heads: Sequence[str],
    qubit_count: int,
) -> tuple[bytes, np.ndarray]:
    """:func:`write_lines` in numpy: pieces of text one after another, written a byte
    at a time for all pieces at once (:func:`_write_pieces`)."""
    count = len(starts)
    ends = np.zeros(count + 1, dtype=np.int64)
    if not count:
        return b"", ends
    numbers = _Pieces.of([f"{q} " for q in range(qubit_count)])
    head_pieces = _Pieces.of(heads)
    # the rows with a j-th target (all for the first), its qubits, their texts' sizes
    more = [slice(None)] + [np.flatnonzero(arity > j) for j in range(1, int(arity.max()))]
    targets = [qubits[starts[rows_j] + j] for j, rows_j in enumerate(more)]
    spans = [numbers.sizes[qubits] for qubits in targets]
    heads_at = np.flatnonzero(line_start)
    head_sizes = np.zeros(count, dtype=np.int64)
    head_sizes[heads_at] = head_pieces.sizes[codes[heads_at]]
    sizes = ends[1:]  # (each row's, then the running count of them, in place)
    sizes += head_sizes
    for rows_j, span in zip(more, spans, strict=True):
        sizes[rows_j] += span
    np.cumsum(sizes, out=sizes)
    begins = ends[:-1]
    pieces = [(begins[heads_at], head_pieces, codes[heads_at])]
    where = begins + head_sizes  # each row's next target
    for j, (rows_j, qubits, span) in enumerate(zip(more, targets, spans, strict=True)):
        pieces.append((where.copy() if j == 0 else where[rows_j], numbers, qubits))
        where[rows_j] += span
    del where, head_sizes, spans
    data = _write_pieces(int(ends[-1]), pieces)
    line_ends = np.flatnonzero(np.r_[line_start[1:], True])  # each line's last row
    data[ends[line_ends + 1] - 1] = ord("\n")
    return data.tobytes(), ends


def moments(
    qubits: np.ndarray,
    starts: np.ndarray,
    arity: np.ndarray,
    after_other: np.ndarray,
    *,
    kernel: str | None = None,
) -> np.ndarray | None:
    """Each gate's moment: the gates in order, cut into the longest runs that act on
    distinct qubits (gate ``k`` on ``qubits[starts[k]:starts[k] + arity[k]]``, each on
    one at least), and cut too before every gate with ``after_other`` (another row, a
    measurement or an error site, stands before it). Where those rows leave runs of
    fewer than :data:`MOMENT_GATES` gates on average, a gate is a moment (None).

    ``kernel``: ``"compiled"`` or ``"numpy"`` to choose; None takes the compiled loop for
    :data:`COMPILED_GATES` gates or more where it builds here.

    Raises:
        RuntimeError: ``kernel="compiled"`` where it cannot run.
    """
    count = len(starts)
    if np.count_nonzero(after_other) * MOMENT_GATES >= count:
        return None
    if kernel is None:
        big = count >= COMPILED_GATES
        kernel = "compiled" if big and _kernel("moments") is not None else "numpy"
    if kernel == "numpy":
        return _numpy_moments(qubits, starts, arity, after_other)
    call = _kernel("moments")
    if call is None:
        raise RuntimeError(f"no compiled stim moments here: {unavailable_reason()}")
    # (each array held by a name while the loop runs: a pointer keeps nothing alive)
    q = np.ascontiguousarray(qubits, dtype=np.int64)
    at = np.ascontiguousarray(starts, dtype=np.int64)
    width = np.ascontiguousarray(arity, dtype=np.int64)
    cut = np.ascontiguousarray(after_other, dtype=np.uint8)
    stamp = np.full(int(q.max(initial=0)) + 1, -1, dtype=np.int32)
    out = np.empty(count, dtype=np.int32)
    args = (q, at, width, cut, stamp, out)
    call(count, *(array.ctypes.data for array in args))
    return out


def _numpy_moments(
    qubits: np.ndarray, starts: np.ndarray, arity: np.ndarray, after_other: np.ndarray
) -> np.ndarray | None:
    """:func:`moments` in numpy, where a run's gates are found at once.

    A run ends before the first gate that shares a qubit with a gate of the run: the
    first gate that follows one of the run's gates on a qubit (or stands after another
    row). So the run that starts at ``s`` ends at the least such follower of the gates
    ``s`` and later, found for every ``s`` at once as a suffix minimum."""
    count = len(starts)
    cut = np.flatnonzero(after_other).astype(np.int32)
    first_target = np.cumsum(arity) - arity
    gate = np.repeat(np.arange(count, dtype=np.int32), arity)
    targets = qubits  # the gates' qubits, in order (all the column holds, often)
    if len(gate) < len(qubits):
        targets = qubits[np.repeat(starts - first_target, arity) + np.arange(len(gate))]
    order = _stable_order(targets)  # by qubit, each qubit's in circuit order
    ordered, gates = targets[order], gate[order]
    # each gate and the next on one of its qubits (not itself: a qubit named twice)
    same = np.flatnonzero((ordered[1:] == ordered[:-1]) & (gates[1:] != gates[:-1]))
    followed, follower = np.r_[gates[same], cut - 1], np.r_[gates[same + 1], cut]
    first = np.full(count + 1, count, dtype=np.int32)  # each gate's first follower
    np.minimum.at(first, followed[followed >= 0], follower[followed >= 0])
    end = memoryview(np.minimum.accumulate(first[::-1])[::-1].copy())  # (no list made)
    begins, s = np.zeros(count, dtype=np.int32), 0
    while (s := end[s]) < count:
        begins[s] = 1
    return np.cumsum(begins, dtype=np.int32)


def _stable_order(keys: np.ndarray) -> np.ndarray:
    """The stable sort order of non-negative ``keys``: of 16-bit ones, numpy's radix sort."""
    if not len(keys) or keys.max() >= 1 << 16:
        return np.argsort(keys, kind="stable")
    return np.argsort(keys.astype(np.uint16), kind="stable")


@dataclass(frozen=True, slots=True)
class _Pieces:
    """Short texts by number (a qubit's number and a space, a gate's name and a space),
    as bytes: ``table[:, k]`` is byte ``k`` of each, padded with spaces to the longest;
    ``sizes`` their lengths."""

    table: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, texts: Sequence[str]) -> _Pieces:
        width = max(map(len, texts), default=0)
        padded = "".join(text.ljust(width) for text in texts).encode("ascii")
        table = np.frombuffer(padded, dtype=np.uint8).reshape(len(texts), width)
        sizes = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        return cls(np.ascontiguousarray(table.T), sizes)


def _write_pieces(
    size: int, pieces: Sequence[tuple[np.ndarray, _Pieces, np.ndarray]]
) -> np.ndarray:
    """``size`` bytes of text laid end to end from pieces: each ``(at, texts, which)``
    writes ``texts``' text ``which[i]`` from byte ``at[i]``, and every byte lies in the
    one piece that starts last at or before it.

    A byte at a time for all pieces: byte ``k`` of every piece in one pass, the last
    byte first. A piece shorter than the widest writes spaces past its end; those bytes
    are the next piece's, whose own (earlier) bytes come in a later pass and overwrite
    them. (The text's last piece writes its padding past ``size``, into spare bytes.)"""
    width = max((texts.table.shape[0] for _, texts, _ in pieces), default=0)
    out = np.empty(size + width, dtype=np.uint8)
    for k in range(width - 1, -1, -1):
        for at, texts, which in pieces:
            if k < texts.table.shape[0]:
                out[at + k] = texts.table[k][which]
    return out[:size]
