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
>>> from qmk.engines.instructions import OBJECT, PLAIN, SITE, Instructions
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
from qmk.engines.instructions import OBJECT, PLAIN, Instructions
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

_ORDER_IR = """
define void @qmk_stim_order_v1(i64 %n, ptr noalias %moment, ptr noalias %codes,
                               i64 %ncodes, i64 %keys, ptr noalias %counts,
                               ptr noalias %order) {
entry:
  %none = icmp sle i64 %n, 0
  br i1 %none, label %exit, label %count
count:
  %g = phi i64 [0, %entry], [%g1, %count]
  %pm = getelementptr i32, ptr %moment, i64 %g
  %m32 = load i32, ptr %pm
  %m = sext i32 %m32 to i64
  %pc = getelementptr i64, ptr %codes, i64 %g
  %c = load i64, ptr %pc
  %mk = mul i64 %m, %ncodes
  %key = add i64 %mk, %c
  %key1 = add i64 %key, 1
  %pk = getelementptr i64, ptr %counts, i64 %key1
  %old = load i64, ptr %pk
  %new = add i64 %old, 1
  store i64 %new, ptr %pk
  %g1 = add i64 %g, 1
  %more = icmp slt i64 %g1, %n
  br i1 %more, label %count, label %sum
sum:
  %k = phi i64 [1, %count], [%k1, %sum]
  %total = phi i64 [0, %count], [%t1, %sum]
  %pkk = getelementptr i64, ptr %counts, i64 %k
  %v = load i64, ptr %pkk
  %t1 = add i64 %total, %v
  store i64 %t1, ptr %pkk
  %k1 = add i64 %k, 1
  %more2 = icmp sle i64 %k1, %keys
  br i1 %more2, label %sum, label %place
place:
  %h = phi i64 [0, %sum], [%h1, %place]
  %pmh = getelementptr i32, ptr %moment, i64 %h
  %mh32 = load i32, ptr %pmh
  %mh = sext i32 %mh32 to i64
  %pch = getelementptr i64, ptr %codes, i64 %h
  %ch = load i64, ptr %pch
  %mkh = mul i64 %mh, %ncodes
  %keyh = add i64 %mkh, %ch
  %pp = getelementptr i64, ptr %counts, i64 %keyh
  %pos = load i64, ptr %pp
  %pos1 = add i64 %pos, 1
  store i64 %pos1, ptr %pp
  %po = getelementptr i64, ptr %order, i64 %pos
  store i64 %h, ptr %po
  %h1 = add i64 %h, 1
  %more3 = icmp slt i64 %h1, %n
  br i1 %more3, label %place, label %exit
exit:
  ret void
}
"""
"""``void qmk_stim_order_v1(n, moment, codes, ncodes, keys, counts, order)``: the
stable order of the gates by key ``moment * ncodes + code`` (below ``keys``), a
counting sort: ``counts`` (``keys + 1`` zeros) counts each key, then holds where
each key's gates start, and ``order`` receives the gates."""

_LINES_IR = """
define i64 @qmk_stim_lines_v2(i64 %n, ptr noalias %q, ptr noalias %starts,
                               ptr noalias %arity, ptr noalias %codes,
                               ptr noalias %moment, ptr noalias %order, i64 %ncodes,
                               ptr noalias %nums, ptr noalias %numsz, ptr noalias %heads,
                               ptr noalias %headsz, ptr noalias %out, ptr noalias %ends) {
entry:
  store i64 0, ptr %ends
  %none = icmp sle i64 %n, 0
  br i1 %none, label %exit, label %row
row:
  %k = phi i64 [0, %entry], [%k1, %rowdone]
  %pos = phi i64 [0, %entry], [%posr, %rowdone]
  %prev = phi i64 [-1, %entry], [%key, %rowdone]
  %por = getelementptr i64, ptr %order, i64 %k
  %o = load i64, ptr %por
  %pm = getelementptr i32, ptr %moment, i64 %o
  %m32 = load i32, ptr %pm
  %m = sext i32 %m32 to i64
  %pc = getelementptr i64, ptr %codes, i64 %o
  %c = load i64, ptr %pc
  %mk = mul i64 %m, %ncodes
  %key = add i64 %mk, %c
  %isline = icmp ne i64 %key, %prev
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
  %hoff = mul i64 %c, 16
  %ph = getelementptr i8, ptr %heads, i64 %hoff
  %h0 = load i64, ptr %ph, align 1
  %ph1 = getelementptr i8, ptr %ph, i64 8
  %h1 = load i64, ptr %ph1, align 1
  %pw0 = getelementptr i8, ptr %out, i64 %pos
  store i64 %h0, ptr %pw0, align 1
  %pw1 = getelementptr i8, ptr %pw0, i64 8
  store i64 %h1, ptr %pw1, align 1
  %phs = getelementptr i64, ptr %headsz, i64 %c
  %hs = load i64, ptr %phs
  %posh = add i64 %pos, %hs
  br label %targets
targets:
  %pos0 = phi i64 [%pos, %row], [%posh, %name]
  %ps = getelementptr i64, ptr %starts, i64 %o
  %s = load i64, ptr %ps
  %pa = getelementptr i64, ptr %arity, i64 %o
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
"""``i64 qmk_stim_lines_v2(n, qubits, starts, arity, codes, moment, order, ncodes, nums,
numsz, heads, headsz, out, ends)``: :func:`write_lines`' text into ``out``, its length
returned. Gate ``order[k]`` is the ``k``-th written; a line starts where its key
(``moment * ncodes + code``) changes. ``nums``/``heads`` hold each text in a slot of
8/16 bytes padded with spaces, their lengths in ``numsz``/``headsz``; a slot is copied
whole (as one or two 64-bit words, so no loop of bytes for LLVM to turn into a call)
and the next text starts where its own text ends. A line's last space becomes a
newline."""

_I64, _PTR = ctypes.c_int64, ctypes.c_void_p
#: by loop: its function's name, its IR, its result and argument types
_SIGNATURES: dict[str, tuple[str, str, Any, tuple[Any, ...]]] = {
    "moments": ("qmk_stim_moments_v1", _MOMENTS_IR, ctypes.c_int32, (_I64, *[_PTR] * 6)),
    "order": ("qmk_stim_order_v1", _ORDER_IR, None, (_I64, _PTR, _PTR, _I64, _I64, _PTR, _PTR)),
    "lines": ("qmk_stim_lines_v2", _LINES_IR, _I64, (_I64, *[_PTR] * 6, _I64, *[_PTR] * 6)),
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

            name, text, result, args = _SIGNATURES[which]
            try:
                address = simd.compile_function(name, text)
            except RuntimeError as error:
                kernel["reason"] = str(error)
            else:
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
    #: for each of :attr:`placed`, the circuit row of the last gate of its moment
    moment_ends: np.ndarray

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
            return cls(at, b"", np.zeros(1, dtype=np.int64), 0, at, at)
        starts, ends = rows.offsets[at], rows.offsets[at + 1]
        arity = ends - starts
        # each moment's gates by name (stable: each name's in circuit order); a gate a
        # moment (a line each, in circuit order) where moments would not pay. Only an
        # object row cuts a moment: an error site or an identity has no text, and a
        # site is placed after its qubit's last gate's moment (stim_batch.SiteAnchors).
        # (the gate after each object row: a few rows, found without a running count)
        after_object = np.zeros(len(at), dtype=bool)
        cut = np.searchsorted(at, np.flatnonzero(rows.kinds == OBJECT))
        after_object[cut[cut < len(at)]] = True
        moment = moments(rows.qubits, starts, arity, after_object)
        codes = rows.codes[at]
        if moment is None:
            moment, order = np.arange(len(at), dtype=np.int32), np.arange(len(at))
        else:
            order = order_by_moment(moment, codes, len(names))
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
        data, ends = write_lines(
            rows.qubits, starts, arity, codes, moment, order, heads, qubit_count
        )
        last = np.r_[np.flatnonzero(np.diff(moment)), len(moment) - 1]  # (moments rise)
        return cls(at[order], data, ends, int(arity.sum()), at, at[last][moment])

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
    moment: np.ndarray,
    order: np.ndarray,
    heads: Sequence[str],
    qubit_count: int,
    *,
    kernel: str | None = None,
) -> tuple[bytes, np.ndarray]:
    """The text of gates ``order[0]``, ``order[1]``... (gate ``g`` on
    ``qubits[starts[g]:starts[g] + arity[g]]``, of gate code ``codes[g]``, in moment
    ``moment[g]``), a line for each run of gates of one moment and code: its head
    (``heads[code]``: a name and a space), then each target's number and a space, the
    last a newline. Returns the text, and where the text of the first ``k`` gates
    written ends (``n + 1`` of them).

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
        moment, codes = moment[order], codes[order]
        line_start = np.r_[True, (moment[1:] != moment[:-1]) | (codes[1:] != codes[:-1])]
        written = (starts[order], arity[order], codes, line_start)
        return _numpy_lines(qubits, *written, heads, qubit_count)
    call = _kernel("lines")
    if call is None:
        raise RuntimeError(f"no compiled stim lines here: {unavailable_reason()}")
    numbers = _slots([f"{q} " for q in range(qubit_count)], _NUMBER_SLOT)
    head_slots = _slots(heads, _HEAD_SLOT)
    # (each array held by a name while the loop runs: a pointer keeps nothing alive)
    q, at, width, code, which = (
        np.ascontiguousarray(values, dtype=np.int64)
        for values in (qubits, starts, arity, codes, order)
    )
    moments_of = np.ascontiguousarray(moment, dtype=np.int32)
    # room for every slot whole (a slot writes past its text, into the next)
    out = np.empty(int(width.sum()) * _NUMBER_SLOT + (count + 1) * _HEAD_SLOT, dtype=np.uint8)
    ends = np.empty(count + 1, dtype=np.int64)
    pointers = [array.ctypes.data for array in (q, at, width, code, moments_of, which)]
    tables = (numbers.table, numbers.sizes, head_slots.table, head_slots.sizes, out, ends)
    written = call(count, *pointers, len(heads), *(array.ctypes.data for array in tables))
    return out[:written].tobytes(), ends


def order_by_moment(
    moment: np.ndarray, codes: np.ndarray, code_count: int, *, kernel: str | None = None
) -> np.ndarray:
    """The stable order of the gates by moment, then code (of ``code_count``): each
    moment's gates by name, each name's in circuit order.

    ``kernel``: ``"compiled"`` (a counting sort) or ``"numpy"`` (a radix sort where the
    keys fit 16 bits) to choose; None takes the compiled loop for
    :data:`COMPILED_GATES` gates or more where it builds here and the keys are few
    beside the gates.

    Raises:
        RuntimeError: ``kernel="compiled"`` where it cannot run.
    """
    count = len(moment)
    keys = (int(moment[-1]) + 1) * code_count if count else 0  # (moments rise)
    if kernel is None:
        big = count >= COMPILED_GATES and keys <= 4 * count
        kernel = "compiled" if big and _kernel("order") is not None else "numpy"
    if kernel == "numpy":
        return _stable_order(moment.astype(np.int64) * code_count + codes)
    call = _kernel("order")
    if call is None:
        raise RuntimeError(f"no compiled stim order here: {unavailable_reason()}")
    moments_of = np.ascontiguousarray(moment, dtype=np.int32)
    code = np.ascontiguousarray(codes, dtype=np.int64)
    counts = np.zeros(keys + 1, dtype=np.int64)
    order = np.empty(count, dtype=np.int64)
    call(
        count,
        moments_of.ctypes.data,
        code.ctypes.data,
        code_count,
        keys,
        counts.ctypes.data,
        order.ctypes.data,
    )
    return order


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
