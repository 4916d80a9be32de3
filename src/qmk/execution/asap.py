"""The as-soon-as-possible schedule of a run of gate rows: each starts when its qubits are free.

The plan (:mod:`qmk.execution.plan`) times every row of a program: a row starts at the
latest of the fence's time and its qubits' clocks, and ends its cycles later. That is
one pass, but each row depends on the rows before it on its qubits, so numpy cannot do
it in bulk, and a Python loop costs about half a microsecond a row (a million-gate
program's largest stage). The same pass writes each row qubit's wait, its start less
its qubit's clock before it: the plan's idle noise locations
(:class:`~qmk.execution.locations.LocationRows`) read them, where finding each qubit's
step before would take a sort of every slot. Two implementations of the one rule,
:func:`schedule`:

- compiled: a loop in LLVM IR, built as :mod:`qmk.engines.simd` builds its kernels
  (llvmlite, the same on-disk object cache, so a later process loads its code without
  LLVM). Taken for runs of at least :data:`COMPILED_ROWS` rows, where its one-time cost
  is small beside the loop's;
- Python: the same loop over the rows' values, a block of rows at a time. Always there;
  used for short runs and where LLVM cannot build the kernel here.

Both compute in IEEE doubles in the same order (a comparison, then one addition a row),
so their times are equal bit for bit.

>>> import numpy as np
>>> from array import array
>>> clock = [0.0, 0.0, 0.0]
>>> rows = np.array([[0, -1, -1], [0, 1, -1], [2, -1, -1]])
>>> starts, ends = array("d", [0.0] * 3), array("d", [0.0] * 3)
>>> waits = np.zeros(4)
>>> schedule(clock, rows, np.array([2.0, 3.0, 1.0]), (starts, ends), 0, 0.0, 0.0, waits=waits)
5.0
>>> list(starts), list(ends), clock, waits.tolist()
([0.0, 2.0, 0.0], [2.0, 5.0, 1.0], [5.0, 5.0, 1.0], [0.0, 0.0, 2.0, 0.0])
"""

from __future__ import annotations

import ctypes
import threading
from array import array
from typing import Any

import numpy as np

#: Rows a run needs for the compiled loop (shorter runs stay in Python: their loop costs
#: less than converting the clocks, or than a first compile where no cache holds it).
COMPILED_ROWS = 1 << 16
#: Rows the Python loop reads into Python values at a time.
_BLOCK = 1 << 16

#: The compiled loop's name by the bits of the qubit indices it reads: a program's
#: columns hold them as 16 or 32 bits (:class:`~qmk.qvm.columns.Columns`), read as they
#: are rather than widened to a copy of 64 (a megabyte a hundred thousand rows).
_NAMES = {16: "qmk_asap_rows_i16_v2", 32: "qmk_asap_rows_i32_v2", 64: "qmk_asap_rows_v2"}
_WIDTHS = {np.dtype(np.int16): 16, np.dtype(np.int32): 32, np.dtype(np.int64): 64}
_lock = threading.Lock()
#: by width: "call" the ctypes function, or "reason" why there is none
_kernels: dict[int, dict[str, Any]] = {bits: {} for bits in _NAMES}


def _ir(bits: int = 64) -> str:
    """LLVM IR of ``double qmk_asap_rows_v2(i64 n, ptr qubits, ptr cycles, ptr clock,
    ptr starts, ptr ends, ptr waits, i64 step, double fence, double latest)`` (named
    :data:`_NAMES`' for qubit indices of ``bits`` bits): row ``i``'s qubits are
    ``qubits[3i:3i+3]`` (-1 past the last), it starts at the latest of ``fence`` and
    their clocks, ends ``cycles[i]`` later (written to ``starts``/``ends`` and to its
    qubits' clocks); it returns the latest end, at least ``latest``. Each of its
    qubits' waits (its start less the qubit's clock before it) goes to ``waits``, one
    after another, the rows' one after another where ``step`` is 1 (where it is 0, all
    on its first three places: none kept). A row of fewer qubits writes its first
    qubit's wait again where a third or second would go (it reads that qubit's clock
    for a missing one), so it writes no place past its own."""
    name, t = _NAMES[bits], f"i{bits}"

    def index(slot: str) -> str:  # a qubit index read, sign-extended to 64 bits
        if bits == 64:
            return f"  %{slot} = load i64, ptr %p{slot}\n"
        return f"  %{slot}w = load {t}, ptr %p{slot}\n  %{slot} = sext {t} %{slot}w to i64\n"

    return f"""
define double @{name}(i64 %n, ptr noalias %q, ptr noalias %cyc, ptr noalias %clock,
                       ptr noalias %starts, ptr noalias %ends, ptr noalias %waits, i64 %step,
                       double %fence, double %late0) {{
entry:
  %none = icmp sle i64 %n, 0
  br i1 %none, label %exit, label %row
row:
  %i = phi i64 [0, %entry], [%i1, %row]
  %late = phi double [%late0, %entry], [%late1, %row]
  %w = phi i64 [0, %entry], [%w1, %row]
  %k = mul i64 %i, 3
  %pa = getelementptr {t}, ptr %q, i64 %k
{index("a")}  %k1 = add i64 %k, 1
  %pb = getelementptr {t}, ptr %q, i64 %k1
{index("b")}  %k2 = add i64 %k, 2
  %pc = getelementptr {t}, ptr %q, i64 %k2
{index("c")}  %hasb = icmp sge i64 %b, 0
  %c0 = icmp sge i64 %c, 0
  %hasc = and i1 %hasb, %c0
  %ib = select i1 %hasb, i64 %b, i64 %a
  %ic = select i1 %hasc, i64 %c, i64 %a
  %pca = getelementptr double, ptr %clock, i64 %a
  %ca = load double, ptr %pca
  %early = fcmp olt double %ca, %fence
  %s0 = select i1 %early, double %fence, double %ca
  %pcb = getelementptr double, ptr %clock, i64 %ib
  %cb = load double, ptr %pcb
  %gtb = fcmp ogt double %cb, %s0
  %useb = and i1 %hasb, %gtb
  %s1 = select i1 %useb, double %cb, double %s0
  %pcc = getelementptr double, ptr %clock, i64 %ic
  %cc = load double, ptr %pcc
  %gtc = fcmp ogt double %cc, %s1
  %usec = and i1 %hasc, %gtc
  %s2 = select i1 %usec, double %cc, double %s1
  %pd = getelementptr double, ptr %cyc, i64 %i
  %d = load double, ptr %pd
  %e = fadd double %s2, %d
  %wa = fsub double %s2, %ca
  %wb = fsub double %s2, %cb
  %wc = fsub double %s2, %cc
  %pwa = getelementptr double, ptr %waits, i64 %w
  store double %wa, ptr %pwa
  %ob = zext i1 %hasb to i64
  %wib = add i64 %w, %ob
  %pwb = getelementptr double, ptr %waits, i64 %wib
  store double %wb, ptr %pwb
  %oc = zext i1 %hasc to i64
  %oc2 = shl i64 %oc, 1
  %wic = add i64 %w, %oc2
  %pwc = getelementptr double, ptr %waits, i64 %wic
  store double %wc, ptr %pwc
  %more1 = add i64 %ob, %oc
  %count = add i64 %more1, 1
  %advance = mul i64 %count, %step
  %w1 = add i64 %w, %advance
  store double %e, ptr %pca
  store double %e, ptr %pcb
  store double %e, ptr %pcc
  %ps = getelementptr double, ptr %starts, i64 %i
  store double %s2, ptr %ps
  %pe = getelementptr double, ptr %ends, i64 %i
  store double %e, ptr %pe
  %later = fcmp ogt double %e, %late
  %late1 = select i1 %later, double %e, double %late
  %i1 = add i64 %i, 1
  %more = icmp slt i64 %i1, %n
  br i1 %more, label %row, label %exit
exit:
  %r = phi double [%late0, %entry], [%late1, %row]
  ret double %r
}}
"""


def compiled(bits: int = 64) -> Any | None:
    """The compiled loop for qubit indices of ``bits`` bits (16, 32 or 64; built or
    loaded once a process), or None where LLVM cannot build it here
    (:func:`unavailable_reason` says why)."""
    kernel = _kernels[bits]
    if "call" in kernel or "reason" in kernel:
        return kernel.get("call")
    with _lock:
        if "call" not in kernel and "reason" not in kernel:
            from qmk.engines import simd

            try:
                address = simd.compile_function(_NAMES[bits], _ir(bits))
            except RuntimeError as error:
                kernel["reason"] = str(error)
            else:
                real, pointer, count = ctypes.c_double, ctypes.c_void_p, ctypes.c_int64
                signature = ctypes.CFUNCTYPE(real, count, *[pointer] * 6, count, real, real)
                kernel["call"] = signature(address)
    return kernel.get("call")


def unavailable_reason() -> str | None:
    """Why :func:`compiled` is None here, or None (also before it was asked)."""
    reason = next((k["reason"] for k in _kernels.values() if "reason" in k), None)
    return None if reason is None else str(reason)


def schedule(
    clock: list[float],
    qubits: np.ndarray,
    cycles: np.ndarray,
    timing: tuple[array[float], array[float]],
    offset: int,
    fence_time: float,
    latest: float,
    *,
    waits: np.ndarray | None = None,
    kernel: str | None = None,
) -> float:
    """Schedule the rows ``qubits`` (shape (n, 3), -1 past a row's last qubit, indices
    into ``clock``) of ``cycles`` each, after ``fence_time``: row ``k``'s start and end
    go to ``timing``'s arrays at ``offset + k``, its qubits' ``clock`` entries move to
    its end. Returns the latest end, at least ``latest``.

    ``waits``: a float64 array that gets each row qubit's wait (the row's start less
    that qubit's clock before it), one a qubit of each row, the rows' one after another
    from its start (None: not kept).

    ``kernel``: ``"compiled"`` or ``"python"`` to choose; None takes the compiled loop
    for runs of :data:`COMPILED_ROWS` rows or more where it builds here.

    Raises:
        RuntimeError: ``kernel="compiled"`` where LLVM cannot build it.
        IndexError: ``timing`` or ``waits`` shorter than the rows need.
    """
    rows = len(qubits)
    if offset + rows > min(len(timing[0]), len(timing[1])):
        raise IndexError("the timing arrays are shorter than the rows")
    if waits is not None and (waits.dtype != np.float64 or not waits.flags.c_contiguous):
        raise ValueError("waits are written to a contiguous float64 array")
    if waits is not None and len(waits) < np.count_nonzero(qubits >= 0):
        raise IndexError("the waits array is shorter than the rows' qubits")
    bits = _WIDTHS.get(qubits.dtype, 64)  # (any other integers: widened to 64 bits)
    if kernel is None:
        kernel = "compiled" if rows >= COMPILED_ROWS and compiled(bits) is not None else "python"
    if kernel == "compiled":
        call = compiled(bits)
        if call is None:
            raise RuntimeError(f"no compiled schedule here: {unavailable_reason()}")
        return _compiled(call, clock, qubits, cycles, timing, offset, fence_time, latest, waits)
    kept: list[float] | None = None if waits is None else []
    for at in range(0, rows, _BLOCK):
        block = qubits[at : at + _BLOCK]
        first, second, third = (block[:, k].tolist() for k in range(3))
        latest = _python(
            clock,
            (first, second, third),
            cycles[at : at + _BLOCK].tolist(),
            timing,
            offset + at,
            (fence_time, latest),
            kept,
        )
    if waits is not None and kept:
        waits[: len(kept)] = kept
    return latest


def _compiled(
    call: Any,
    clock: list[float],
    qubits: np.ndarray,
    cycles: np.ndarray,
    timing: tuple[array[float], array[float]],
    offset: int,
    fence_time: float,
    latest: float,
    waits: np.ndarray | None,
) -> float:
    """:func:`schedule` by the compiled loop (the clocks as an array for its run)."""
    dtype = qubits.dtype if qubits.dtype in _WIDTHS else np.dtype(np.int64)
    rows = np.ascontiguousarray(qubits, dtype=dtype)
    spent = np.ascontiguousarray(cycles, dtype=np.float64)
    clocks = np.array(clock, dtype=np.float64)
    starts, ends = timing
    kept = np.zeros(3) if waits is None else waits  # (none kept: three places written over)
    result = call(
        len(rows),
        rows.ctypes.data,
        spent.ctypes.data,
        clocks.ctypes.data,
        starts.buffer_info()[0] + 8 * offset,
        ends.buffer_info()[0] + 8 * offset,
        kept.ctypes.data,
        0 if waits is None else 1,
        fence_time,
        latest,
    )
    clock[:] = clocks.tolist()
    return float(result)


def _python(
    clock: list[float],
    qubits: tuple[list[int], list[int], list[int]],
    cycles: list[float],
    timing: tuple[array[float], array[float]],
    offset: int,
    times: tuple[float, float],
    waits: list[float] | None,
) -> float:
    """:func:`schedule` of one block of rows in Python (row ``offset + k`` is item
    ``k``; ``times``: the fence's and the latest end so far); each row qubit's wait is
    appended to ``waits`` (None: not kept)."""
    starts, ends = timing
    fence_time, latest = times
    row = offset
    keep = waits is not None
    for a, b, c, spent in zip(*qubits, cycles, strict=True):
        start = clock[a]
        if start < fence_time:
            start = fence_time
        if b >= 0:
            at = clock[b]
            if at > start:
                start = at
            if c >= 0 and clock[c] > start:
                start = clock[c]
        if keep:
            assert waits is not None
            waits.append(start - clock[a])
            if b >= 0:
                waits.append(start - clock[b])
                if c >= 0:
                    waits.append(start - clock[c])
        end = start + spent
        clock[a] = end
        if b >= 0:
            clock[b] = end
            if c >= 0:
                clock[c] = end
        starts[row] = start
        ends[row] = end
        row += 1
        if end > latest:
            latest = end
    return latest
