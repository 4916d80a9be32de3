"""SIMD kernels for this CPU: a k-qubit matrix applied in place to a statevector.

The statevector engine's fused gates (:mod:`qmk.engines.fusion`) are applied here when
llvmlite (the LLVM binding numba is built on; the ``fast`` extra) is installed;
:mod:`qmk.engines.kernels` falls back to numpy otherwise. For each kernel *shape* this
module writes LLVM IR with explicit vector types. It compiles the IR for the host CPU
(AVX-512, AVX2 or 128-bit vectors, as the CPU has) and calls it through ctypes. ctypes
releases the GIL, so every thread takes pieces of each pass. A run of passes (a fused
segment, :func:`apply_blocks`) is one call of a compiled driver whose threads meet at
a spin barrier between passes (:func:`_driver_ir`).

Why generated IR and not numba ``@njit`` loops or numpy: it runs several times faster
than either (``docs/engines.md`` has the figures). LLVM does not keep the accumulators
of numba's run-time-sized complex loops in registers. numpy's ``tensordot`` (BLAS)
spends more on its transposes than on the product at large widths.

How a kernel works. A vector holds ``2**w`` consecutive complex amplitudes (interleaved
real and imaginary parts), so the ``w`` lowest index bits are *lane* bits. The target
bits of a gate split into those among the lane bits (``lo``) and the rest (``hi``).
One loop step loads the ``2**len(hi)`` vectors that differ in the hi bits and writes
back, for each of them, ``sum_{h, d} A[h', h, d] * perm_d(x_h) + B[h', h, d] *
swap(perm_d(x_h))``. Here ``perm_d`` xors each lane's lo target bits with ``d`` (a
shuffle). ``swap`` turns each amplitude ``(re, im)`` into ``(-im, re)`` (a shuffle of
the vector and its negation). ``A`` and ``B`` hold, lane by lane, the real and
imaginary part of the matrix entry that lane needs. Where no target bit is a lane bit
every lane needs the same entry, so ``A`` and ``B`` are scalars broadcast from memory.
A wide gate then reads a small table, not vectors that would crowd the state out of L1
(``docs/engines.md`` has the sizes). Where ``B`` is a vector (some lo bit), the sign of
``-im`` is in its real lanes instead. Then ``swap`` is ``(im, re)``: one one-source
shuffle of ``x_h`` per ``d``, no negation. All of it is fused multiply-adds over full
vectors, with up to 16 independent accumulators. A gate with more output rows than that
computes them in blocks; the earlier blocks' rows stay on the stack until every input
is read. A kernel is specialised by (precision, ``lo``,
``len(hi)``); the hi bit positions are arguments, so a few dozen compiled kernels
serve every gate.

A diagonal gate (:func:`apply_diagonal`) has a kernel of its own: one pass over the
vectors in order, each multiplied by the coefficient pair its hi target bits select
from a table of ``2**len(hi)`` (the lo bits are in the table's lanes). It costs one
complex multiply per amplitude whatever the gate's width, so it runs at the speed of
memory.

>>> import numpy as np
>>> psi = np.zeros(2**6, dtype=np.complex64); psi[0] = 1
>>> h = np.array([[1, 1], [1, -1]]) / np.sqrt(2)
>>> if available(): apply_matrix(psi, h, [5], threads=1)
... else: psi[0] = psi[32] = 2**-0.5
>>> np.round(abs(psi[[0, 32]]) ** 2, 6).tolist()
[0.5, 0.5]
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from qmk.engines import kernel_cache, limits, objcode

#: Environment variable: how many threads a kernel uses (default: the CPUs this process
#: may run on); the router reads the same (:mod:`qmk.engines.limits`).
THREADS_ENV = limits.THREADS_ENV
#: Below this many amplitudes a kernel runs on the calling thread alone.
PARALLEL_MIN = 1 << 15
#: Pieces of work per thread (taken in turn, so a late thread holds up one piece).
_PIECES = 8
#: At most this many amplitudes (passes times the state's size) a driver call runs
#: before it returns to Python: at 2^20 amplitudes 128 passes a call, from 2^27 one.
#: Calls cost a thread wake-up each; returns let Python (a KeyboardInterrupt) in.
CALL_AMPLITUDES = 1 << 27
#: Accumulators kept in registers at once (32 vector registers with AVX-512, 16 without).
_ACCUMULATORS = {64: 16, 32: 8, 16: 8}
#: Independent accumulation chains a kernel aims for (FMA latency times issue width).
_CHAINS = 8
#: How far ahead of its walk a dense kernel asks for the vectors it will read: 8 KiB of
#: them (16 steps of a 3-qubit gate). The hardware prefetchers follow a walk whose runs
#: are short badly: a 3-qubit complex128 gate on bits 6-8 reads 8 runs of 1 KiB at a
#: time, then jumps. Asking ahead in the walk's order fixes that; ``docs/engines.md``
#: has the figures, and the few gates (bound by arithmetic) it slows a little.
PREFETCH_BYTES = 8192
#: The most hi target bits a diagonal gate may have (its coefficient table, ``2**k``
#: pairs of vectors, stays in L2).
MAX_DIAGONAL_BITS = 12

_Driver = Callable[[int, int, int, int], None]
_lock = threading.Lock()
_kernels: dict[tuple[str, tuple[int, ...] | None, int], int] = {}  # shape -> address
_state: dict[str, Any] = {}
_pool: dict[int, _Helpers] = {}
if hasattr(os, "register_at_fork"):  # a forked child has none of its parent's threads
    os.register_at_fork(after_in_child=_pool.clear)


def _init() -> dict[str, Any]:
    """What the kernels need here, found once: the vector width and where code comes from.

    Where an earlier process on this host compiled the kernels (:func:`kernel_cache.known`),
    their code is loaded from that cache without LLVM (:mod:`qmk.engines.objcode`).
    Otherwise it is the LLVM JIT (:func:`_jit`), or the reason there are no kernels."""
    if _state:
        return _state
    found = kernel_cache.known() if objcode.SUPPORTED else None
    if found is not None:
        cache, width = found
        _state.update(llvm=None, engine=None, cache=cache, bytes=width, reason=None)
        return _state
    return _jit()


def _jit() -> dict[str, Any]:
    """The LLVM target machine and JIT engine, made once (on the first kernel the cache
    does not hold, where :func:`_init` found a cache), or the reason there are none."""
    if _state.get("engine") is not None or _state.get("reason") is not None:
        return _state
    try:
        import llvmlite.binding as llvm

        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        cpu = llvm.get_host_cpu_name()
        features = llvm.get_host_cpu_features()
        flat = features.flatten()
        target = llvm.Target.from_default_triple()
        machine = target.create_target_machine(cpu=cpu, features=flat, opt=3, jit=True)
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), machine)
        cache = kernel_cache.attach(engine, llvm, cpu, flat)
        names = {name for name, on in features.items() if on}
        if "avx512f" in names:
            width = 64
        elif "avx" in names:
            width = 32
        else:
            width = 16
        if _state.get("bytes", width) != width:  # a host record that LLVM contradicts
            raise RuntimeError(f"vectors of {width} bytes here, not {_state['bytes']}")
        if cache is not None:
            kernel_cache.remember(cache, width)
        _state.update(llvm=llvm, engine=engine, bytes=width, cpu=cpu, reason=None, cache=cache)
    except Exception as error:  # not installed, or an LLVM that cannot JIT here
        _state.update(reason=f"{type(error).__name__}: {error}")
    return _state


def available() -> bool:
    """Whether the compiled kernels can run here (llvmlite installed and working)."""
    return _init()["reason"] is None


def checked() -> bool | None:
    """:func:`available` where it was asked already in this process, else None (asks
    nothing: the router prices the engine without importing llvmlite)."""
    return None if not _state else _state["reason"] is None


def unavailable_reason() -> str | None:
    """Why :func:`available` is False, or None."""
    reason = _init()["reason"]
    return None if reason is None else str(reason)


def lane_bits(dtype: np.dtype[Any]) -> int:
    """``w``: one vector holds ``2**w`` amplitudes of ``dtype`` (a state needs at least
    that many for the kernels)."""
    lanes = int(_init()["bytes"]) // np.dtype(dtype).itemsize
    return lanes.bit_length() - 1


def thread_count() -> int:
    """How many threads a kernel uses (``$QMK_THREADS``, else the CPUs available)."""
    text = os.environ.get(THREADS_ENV, "").strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _prologue(real: str, width: int, nhi: int, name: str) -> tuple[int, str, str, list[str]]:
    """What every kernel's IR opens with.

    That is the reals a vector holds, the vector type, and the fused multiply-add it
    calls (declared). Then comes the kernel's signature, ``void name(ptr psi, ptr coef,
    ptr hibits, i64 start, i64 stop)``, with the ``nhi`` hi target bits loaded as
    ``%b0..``."""
    floats = width // (4 if real == "float" else 8)
    vec = f"<{floats} x {real}>"
    fma = f"@llvm.fma.v{floats}f{32 if real == 'float' else 64}"
    out = [
        f"declare {vec} {fma}({vec}, {vec}, {vec})",
        f"define void @{name}(ptr noalias %psi, ptr noalias %coef, ptr noalias %hib, "
        "i64 %start, i64 %stop) {",
        "entry:",
    ]
    for j in range(nhi):
        out.append(f"  %bp{j} = getelementptr i64, ptr %hib, i64 {j}")
        out.append(f"  %b{j} = load i64, ptr %bp{j}")
    return floats, vec, fma, out


def _base_ir(emit: Callable[[str], None], step: str, prefix: str, w: int, nhi: int) -> str:
    """Emit the offset (in reals, ``%{prefix}base``) of the first vector of ``step``: its
    index with a zero inserted at each of the ``nhi`` hi bits (``%low{j}`` and
    ``%high{j}`` their masks), lowest first."""
    emit(f"  %{prefix}i0 = shl i64 {step}, {w}")
    index = f"%{prefix}i0"
    for j in range(nhi):
        emit(f"  %{prefix}l{j} = and i64 {index}, %low{j}")
        emit(f"  %{prefix}u{j} = and i64 {index}, %high{j}")
        emit(f"  %{prefix}s{j} = shl i64 %{prefix}u{j}, 1")
        emit(f"  %{prefix}i{j + 1} = or i64 %{prefix}l{j}, %{prefix}s{j}")
        index = f"%{prefix}i{j + 1}"
    emit(f"  %{prefix}base = shl i64 {index}, 1")
    return f"%{prefix}base"


def _shuffle_mask(lo: tuple[int, ...], floats: int, uniform: bool, d: int, swap: bool) -> str:
    """The shuffle of a kernel's input vector for the lo-bit pattern ``d``: lane ``l``
    takes amplitude ``l ^ flip``.

    With ``swap`` it takes ``(-imag, real)`` (the negated copy is the second operand)
    where the coefficients are broadcast scalars (``uniform``). Else it takes
    ``(imag, real)``: the sign is in ``B``'s real lanes, so one one-source shuffle and no
    negation per input vector."""
    flip = sum(1 << bit for t, bit in enumerate(lo) if d >> t & 1)
    negated = floats if uniform else 0
    order: list[int] = []
    for lane in range(floats // 2):
        source = lane ^ flip
        order += [negated + 2 * source + 1, 2 * source] if swap else [2 * source, 2 * source + 1]
    return f"<{floats} x i32> <" + ", ".join(f"i32 {i}" for i in order) + ">"


def _coefficient_ir(
    emit: Callable[[str], None], real: str, floats: int, uniform: bool, c: int, at: int
) -> str:
    """Emit the load of coefficient ``at`` as ``%m{c}``: a broadcast scalar where every
    lane needs the same (``uniform``), else a vector of them."""
    vec = f"<{floats} x {real}>"
    if uniform:
        emit(f"  %c{c} = getelementptr {real}, ptr %coef, i64 {at}")
        emit(f"  %e{c} = load {real}, ptr %c{c}, align 4")
        emit(f"  %f{c} = insertelement {vec} poison, {real} %e{c}, i64 0")
        splat = f"<{floats} x i32> zeroinitializer"
        emit(f"  %m{c} = shufflevector {vec} %f{c}, {vec} poison, {splat}")
    else:
        emit(f"  %c{c} = getelementptr {real}, ptr %coef, i64 {at * floats}")
        emit(f"  %m{c} = load {vec}, ptr %c{c}, align 4")
    return f"%m{c}"


def _offsets_ir(emit: Callable[[str], None], nhi: int) -> None:
    """Emit each hi bit's masks (``%low{j}``, ``%high{j}``) and offset in reals
    (``%step{j}``), and the offset ``%off{h}`` of each of the ``2**nhi`` rows ``h``."""
    for j in range(nhi):
        emit(f"  %one{j} = shl i64 1, %b{j}")
        emit(f"  %low{j} = sub i64 %one{j}, 1")
        emit(f"  %high{j} = xor i64 %low{j}, -1")
        emit(f"  %step{j} = shl i64 %one{j}, 1")  # the bit's offset in reals
    for h in range(1 << nhi):
        total = "0"
        for j in range(nhi):
            if h >> j & 1:
                emit(f"  %off{h}_{j} = add i64 {total}, %step{j}")
                total = f"%off{h}_{j}"
        emit(f"  %off{h} = add i64 {total}, 0")


def _held_rows_ir(emit: Callable[[str], None], vec: str, held: int) -> None:
    """Emit the stores of the first ``held`` rows, which waited in ``%held`` while later
    blocks read every input."""
    for r in range(held):
        emit(f"  %z{r} = load {vec}, ptr %q{r}, align 64")
        emit(f"  store {vec} %z{r}, ptr %p{r}, align 4")


def _ir(real: str, width: int, lo: tuple[int, ...], nhi: int, name: str) -> str:
    """LLVM IR of one kernel: ``void name(ptr psi, ptr coef, ptr hibits, i64 start, i64 stop)``.

    ``psi`` is the state as interleaved reals, ``coef`` the coefficients in the order
    the loop reads them (:func:`coefficients`), ``hibits`` the hi target bits
    (ascending); the loop runs over the steps ``[start, stop)``.
    """
    floats, vec, fma, out = _prologue(real, width, nhi, name)
    out.insert(0, "declare void @llvm.prefetch.p0(ptr, i32, i32, i32)")
    lanes = floats // 2
    w = lanes.bit_length() - 1
    big, small = 1 << nhi, 1 << len(lo)
    emit = out.append
    _offsets_ir(emit, nhi)
    block = _ACCUMULATORS[width]
    if big > block:  # rows of earlier blocks wait here: later blocks read every input
        emit(f"  %held = alloca {vec}, i64 {big - block}, align 64")
    emit("  %empty = icmp sge i64 %start, %stop")
    emit("  br i1 %empty, label %exit, label %loop")
    emit("loop:")
    emit("  %g = phi i64 [ %start, %entry ], [ %next, %loop ]")

    _base_ir(emit, "%g", "", w, nhi)

    uniform = not lo  # every lane needs the same entry: one scalar, broadcast

    def mask(d: int, swap: bool) -> str:
        return _shuffle_mask(lo, floats, uniform, d, swap)

    for h in range(big):
        emit(f"  %a{h} = add i64 %base, %off{h}")
        emit(f"  %p{h} = getelementptr {real}, ptr %psi, i64 %a{h}")

    chains = max(1, min(_CHAINS // big, big * small))
    counter = 0

    def coefficient(at: int) -> str:
        nonlocal counter
        counter += 1
        return _coefficient_ir(emit, real, floats, uniform, counter, at)

    for first in range(0, big, block):
        rows = range(first, min(big, first + block))
        last = first + block >= big
        acc: dict[tuple[int, int], str] = {}
        for h in range(big):  # loaded again for each block of rows (from L1)
            x0 = f"%x{first}_{h}_0"
            emit(f"  {x0} = load {vec}, ptr %p{h}, align 4")
            second = "poison"
            if uniform:
                second = f"%n{first}_{h}"
                emit(f"  {second} = fneg {vec} {x0}")
            for d in range(small):
                x = f"%x{first}_{h}_{d}"
                y = f"%y{first}_{h}_{d}"
                if d:
                    emit(f"  {x} = shufflevector {vec} {x0}, {vec} poison, {mask(d, False)}")
                emit(f"  {y} = shufflevector {vec} {x0}, {vec} {second}, {mask(d, True)}")
                for part, source in enumerate((x, y)):
                    t = (h * small + d) * 2 + part
                    for r in rows:
                        m = coefficient(t * big + r)
                        chain = (r, t % chains)
                        counter += 1
                        if chain in acc:
                            emit(
                                f"  %v{counter} = call {vec} {fma}({vec} {m}, {vec} {source}, "
                                f"{vec} {acc[chain]})"
                            )
                        else:
                            emit(f"  %v{counter} = fmul {vec} {m}, {source}")
                        acc[chain] = f"%v{counter}"
        for r in rows:
            total = acc[(r, 0)]
            for c in range(1, chains):
                if (r, c) in acc:
                    counter += 1
                    emit(f"  %v{counter} = fadd {vec} {total}, {acc[(r, c)]}")
                    total = f"%v{counter}"
            if last:
                emit(f"  store {vec} {total}, ptr %p{r}, align 4")
            else:
                emit(f"  %q{r} = getelementptr {vec}, ptr %held, i64 {r}")
                emit(f"  store {vec} {total}, ptr %q{r}, align 64")
    _held_rows_ir(emit, vec, big - block if big > block else 0)
    # the vectors of a step PREFETCH_BYTES ahead in the walk (past the state's end or the
    # piece's, a prefetch is harmless), asked for after this step's stores, where few
    # registers are live
    emit(f"  %ahead = add i64 %g, {max(1, PREFETCH_BYTES // (big * width))}")
    ahead = _base_ir(emit, "%ahead", "f", w, nhi)
    for h in range(big):
        emit(f"  %fa{h} = add i64 {ahead}, %off{h}")
        emit(f"  %fp{h} = getelementptr {real}, ptr %psi, i64 %fa{h}")
        emit(f"  call void @llvm.prefetch.p0(ptr %fp{h}, i32 0, i32 3, i32 1)")
    emit("  %next = add i64 %g, 1")
    emit("  %done = icmp sge i64 %next, %stop")
    emit("  br i1 %done, label %exit, label %loop")
    emit("exit:")
    emit("  ret void")
    emit("}")
    return "\n".join(out)


def _diagonal_ir(real: str, width: int, nhi: int, name: str) -> str:
    """LLVM IR of a diagonal kernel, ``void name(ptr psi, ptr coef, ptr hibits, i64 start,
    i64 stop)``.

    It walks the vectors ``[start, stop)`` of the state in order, a stream the prefetchers
    follow. Each is multiplied lane by lane by the coefficient pair its hi target bits
    pick (:func:`diagonal_coefficients`)."""
    floats, vec, fma, out = _prologue(real, width, nhi, name)
    lanes = floats // 2
    w = lanes.bit_length() - 1
    swap = ", ".join(f"i32 {floats + i + 1}, i32 {i}" for i in range(0, floats, 2))
    emit = out.append
    emit("  %empty = icmp sge i64 %start, %stop")
    emit("  br i1 %empty, label %exit, label %loop")
    emit("loop:")
    emit("  %g = phi i64 [ %start, %entry ], [ %next, %loop ]")
    emit(f"  %i = shl i64 %g, {w}")
    total = "0"
    for j in range(nhi):  # the hi target bits of this vector's index, gathered
        emit(f"  %t{j} = lshr i64 %i, %b{j}")
        emit(f"  %o{j} = and i64 %t{j}, 1")
        emit(f"  %k{j} = shl i64 %o{j}, {j}")
        emit(f"  %h{j} = or i64 {total}, %k{j}")
        total = f"%h{j}"
    emit(f"  %h = add i64 {total}, 0")
    emit(f"  %ca = mul i64 %h, {2 * floats}")
    emit(f"  %cb = add i64 %ca, {floats}")
    emit(f"  %pa = getelementptr {real}, ptr %coef, i64 %ca")
    emit(f"  %pb = getelementptr {real}, ptr %coef, i64 %cb")
    emit(f"  %a = load {vec}, ptr %pa, align 4")
    emit(f"  %b = load {vec}, ptr %pb, align 4")
    emit("  %at = shl i64 %i, 1")
    emit(f"  %p = getelementptr {real}, ptr %psi, i64 %at")
    emit(f"  %x = load {vec}, ptr %p, align 4")
    emit(f"  %n = fneg {vec} %x")
    emit(f"  %y = shufflevector {vec} %x, {vec} %n, <{floats} x i32> <{swap}>")
    emit(f"  %by = fmul {vec} %b, %y")
    emit(f"  %v = call {vec} {fma}({vec} %a, {vec} %x, {vec} %by)")
    emit(f"  store {vec} %v, ptr %p, align 4")
    emit("  %next = add i64 %g, 1")
    emit("  %done = icmp sge i64 %next, %stop")
    emit("  br i1 %done, label %exit, label %loop")
    emit("exit:")
    emit("  ret void")
    emit("}")
    return "\n".join(out)


#: Fields of one pass in the table :func:`_driver_ir` walks (int64 each): the kernel's
#: address, its three pointer arguments, its steps and the pieces they are cut into.
_TASK_FIELDS = 6
#: int64 counters of one pass (two cache lines: the pieces claimed, the pieces done).
_COUNTER_STRIDE = 16
#: Spins of a waiting thread between two calls of the yield function.
_SPINS = 1024


def _driver_ir(arch: str) -> str:
    """LLVM IR of the driver, ``void qmk_drive(ptr tasks, i64 ntasks, ptr counters, ptr
    yield)``.

    Every thread of a run calls it on the same table of passes. For each pass in turn a
    thread claims pieces (an atomic counter) and runs the pass's kernel on them until
    none is left. Then it waits, spinning, until every piece of that pass is done
    (``pause``; every :data:`_SPINS` spins it calls the ``yield`` function, where not
    null).

    Why: handing each pass to a Python thread pool costs two thread wake-ups a pass, as
    much as a small pass itself (``docs/engines.md``). Here a thread wakes once a run,
    and passes meet at a spin barrier. Pieces, not fixed shares: a thread the OS holds
    up, or one that starts late, delays a pass by one piece at most (the others take the
    rest). A run is right whichever threads take part.
    """
    pause = {
        "x86": "@llvm.x86.sse2.pause()",
        "arm": "@llvm.aarch64.hint(i32 1)",
    }
    declare = {
        "x86": "@llvm.x86.sse2.pause()",
        "arm": "@llvm.aarch64.hint(i32)",
    }
    out = [
        f"declare void {declare[arch]}" if arch in declare else "",
        "define void @qmk_drive(ptr noalias %tasks, i64 %ntasks, ptr noalias %counters, "
        "ptr %yield) {",
        "entry:",
        "  %any = icmp sgt i64 %ntasks, 0",
        "  %canyield = icmp ne ptr %yield, null",
        "  br i1 %any, label %task, label %exit",
        "task:",
        "  %t = phi i64 [ 0, %entry ], [ %tn, %next ]",
        f"  %row = mul i64 %t, {_TASK_FIELDS}",
        "  %rp = getelementptr i64, ptr %tasks, i64 %row",
    ]
    emit = out.append
    for j, field in enumerate(("fn", "psi", "coef", "hib", "steps", "pieces")):
        emit(f"  %{field}p = getelementptr i64, ptr %rp, i64 {j}")
        if field in ("steps", "pieces"):
            emit(f"  %{field} = load i64, ptr %{field}p, align 8")
        else:
            emit(f"  %{field}i = load i64, ptr %{field}p, align 8")
            emit(f"  %{field} = inttoptr i64 %{field}i to ptr")
    emit(f"  %crow = mul i64 %t, {_COUNTER_STRIDE}")
    emit("  %claim = getelementptr i64, ptr %counters, i64 %crow")
    emit(f"  %done = getelementptr i64, ptr %claim, i64 {_COUNTER_STRIDE // 2}")
    emit("  br label %grab")
    emit("grab:")
    emit("  %p = atomicrmw add ptr %claim, i64 1 monotonic, align 8")
    emit("  %mine = icmp slt i64 %p, %pieces")
    emit("  br i1 %mine, label %work, label %wait")
    emit("work:")
    emit("  %sa = mul i64 %steps, %p")
    emit("  %start = udiv i64 %sa, %pieces")
    emit("  %p1 = add i64 %p, 1")
    emit("  %sb = mul i64 %steps, %p1")
    emit("  %stop = udiv i64 %sb, %pieces")
    emit("  call void %fn(ptr %psi, ptr %coef, ptr %hib, i64 %start, i64 %stop)")
    emit("  %counted = atomicrmw add ptr %done, i64 1 release, align 8")
    emit("  br label %grab")
    emit("wait:")
    emit("  %spins = phi i64 [ 0, %grab ], [ %sn, %spin ], [ %sn, %rest ]")
    emit("  %d = load atomic i64, ptr %done acquire, align 8")
    emit("  %over = icmp sge i64 %d, %pieces")
    emit("  br i1 %over, label %next, label %spin")
    emit("spin:")
    if arch in pause:
        emit(f"  call void {pause[arch]}")
    emit("  %sn = add i64 %spins, 1")
    emit(f"  %due = and i64 %sn, {_SPINS - 1}")
    emit("  %now = icmp eq i64 %due, 0")
    emit("  %both = and i1 %now, %canyield")
    emit("  br i1 %both, label %rest, label %wait")
    emit("rest:")
    emit("  %ignored = call i32 %yield()")
    emit("  br label %wait")
    emit("next:")
    emit("  %tn = add i64 %t, 1")
    emit("  %more = icmp slt i64 %tn, %ntasks")
    emit("  br i1 %more, label %task, label %exit")
    emit("exit:")
    emit("  ret void")
    emit("}")
    return "\n".join(out)


def _compile(name: str, text: str) -> int:
    """The address of function ``name`` of the IR ``text`` (:func:`_build`); call with
    :data:`_lock` held. A failure turns the kernels off here (numpy from now on).

    Raises:
        RuntimeError: LLVM could not build it, or there is no LLVM here.
    """
    try:
        return _build(name, text)
    except RuntimeError as error:
        _state["reason"] = str(error)
        raise


def compile_function(name: str, text: str) -> int:
    """The address of function ``name`` of the LLVM IR ``text``, loaded from the kernel
    cache or compiled as the kernels are (for other compiled code: the analog
    emulator's), kept for the process's life; a failure leaves the kernels on.

    Raises:
        RuntimeError: LLVM could not build it, or there is no LLVM here.
    """
    with _lock:
        return _build(name, text)


def _build(name: str, text: str) -> int:
    """The address of function ``name`` of the IR ``text``: its object code from the
    kernel cache loaded without LLVM where this platform allows
    (:mod:`qmk.engines.objcode`), else compiled (or loaded from the cache) by the JIT;
    call with :data:`_lock` held.

    Raises:
        RuntimeError: LLVM could not build it, or there is no LLVM here.
    """
    key = kernel_cache.module_key(text)  # its object code's file
    cache = _init().get("cache")
    if cache is not None and objcode.SUPPORTED:
        code = cache.load_key(key)
        if code is not None:
            try:
                address = objcode.load(code, name)
            except (objcode.Unsupported, OSError):
                pass  # the JIT loads it below
            else:
                kernel_cache.count_hit()
                return address
    state = _jit()
    if state["reason"] is not None:
        raise RuntimeError(f"compiling {name} failed: {state['reason']}")
    llvm = state["llvm"]
    try:
        module = llvm.parse_assembly(text)
        module.verify()
        module.name = key
        state["engine"].add_module(module)
        state["engine"].finalize_object()
        return int(state["engine"].get_function_address(name))
    except Exception as error:  # an LLVM that cannot build it
        raise RuntimeError(f"compiling {name} failed: {type(error).__name__}: {error}") from error


def _kernel(real: str, lo: tuple[int, ...] | None, nhi: int) -> int:
    """The address of the compiled kernel of this shape (compiled on first use, then
    kept); ``lo`` None: the diagonal kernel (:func:`_diagonal_ir`)."""
    key = (real, lo, nhi)
    address = _kernels.get(key)
    if address is not None:
        return address
    with _lock:
        address = _kernels.get(key)
        if address is None:
            width = _init()["bytes"]
            if lo is None:
                name = f"qmk_{real}_diagonal_{nhi}"
                text = _diagonal_ir(real, width, nhi, name)
            else:
                name = f"qmk_{real}_{'_'.join(map(str, lo)) or 'x'}_{nhi}"
                text = _ir(real, width, lo, nhi, name)
            address = _kernels[key] = _compile(name, text)
    return address


def _driver() -> _Driver:
    """The compiled driver (:func:`_driver_ir`), made on first use."""
    driver = _state.get("driver")
    if driver is not None:
        return driver
    with _lock:
        if "driver" not in _state:
            machine = platform.machine().lower()
            arch = "x86" if machine in ("x86_64", "amd64", "i386", "i686") else "other"
            arch = "arm" if machine in ("aarch64", "arm64") else arch
            address = _compile("qmk_drive", _driver_ir(arch))
            signature = ctypes.CFUNCTYPE(
                None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p
            )
            _state["driver"] = signature(address)
    return _state["driver"]


def _yield_address() -> int:
    """The address of this OS's "let another thread run" call (``sched_yield``,
    ``SwitchToThread``), which a waiting thread of :func:`_driver_ir` calls now and
    then; 0 where there is none (it only spins)."""
    if "yield" not in _state:
        address: int | None = 0
        with contextlib.suppress(Exception):
            if os.name == "nt":
                address = ctypes.cast(
                    ctypes.windll.kernel32.SwitchToThread,  # type: ignore[attr-defined]
                    ctypes.c_void_p,
                ).value
            else:
                address = ctypes.cast(ctypes.CDLL(None).sched_yield, ctypes.c_void_p).value
        _state["yield"] = int(address or 0)
    return int(_state["yield"])


def _layout(bits: tuple[int, ...], lanes: int) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """What :func:`coefficients` reads of a matrix on ``bits``, whatever its entries.

    A vector holds ``lanes`` amplitudes. The layout is the lo target bits, the hi target
    bits (read-only int64) and an index with axes ``(h, d, h', lane)``. The index gives
    the flat position, in the matrix, of the entry each coefficient takes. It depends on
    the hi bits only through their order among ``bits``. So it is kept per shape
    (:func:`_gather`): a circuit on random pairs has hundreds of distinct bit tuples but
    a few dozen shapes."""
    w = lanes.bit_length() - 1
    hi = sorted(b for b in bits if b >= w)
    shape = tuple(b if b < w else w + hi.index(b) for b in bits)
    lo, gather = _gather(shape, lanes)
    hib = np.array(hi, dtype=np.int64)
    hib.flags.writeable = False
    return lo, hib, gather


@functools.lru_cache(maxsize=1024)
def _gather(bits: tuple[int, ...], lanes: int) -> tuple[tuple[int, ...], np.ndarray]:
    """:func:`_layout`'s lo target bits and entry index for ``bits`` (its hi bits in their
    order, whatever their values)."""
    order = sorted(range(len(bits)), key=lambda j: bits[j])
    lo_j = [j for j in order if bits[j] < lanes.bit_length() - 1]
    hi_j = [j for j in order if bits[j] >= lanes.bit_length() - 1]
    lo = tuple(bits[j] for j in lo_j)
    big, small = 1 << len(hi_j), 1 << len(lo_j)

    def spread(js: list[int], count: int) -> np.ndarray:
        out = np.zeros(count, dtype=np.int64)
        for t, j in enumerate(js):
            out |= ((np.arange(count) >> t) & 1) << j
        return out

    hi_part, lo_part = spread(hi_j, big), spread(lo_j, small)
    lane = np.arange(lanes)
    own = np.zeros(lanes, dtype=np.int64)  # each lane's lo index
    for t, bit in enumerate(lo):
        own |= ((lane >> bit) & 1) << t
    # axes (h, d, h', lane): the entry M[(h', own), (h, own ^ d)]
    rows = hi_part[None, None, :, None] | lo_part[own][None, None, None, :]
    cols = (
        hi_part[:, None, None, None]
        | lo_part[own[None, None, None, :] ^ np.arange(small)[None, :, None, None]]
    )
    gather = rows * (1 << len(bits)) + cols
    gather.flags.writeable = False
    return lo, gather


def coefficients(
    matrix: np.ndarray, bits: Sequence[int], dtype: np.dtype[Any]
) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """The kernel shape and arguments for ``matrix`` on ``bits``.

    ``bits[j]`` is the state index bit of the matrix index's bit ``j``. Returns the lo
    target bits (the lane bits among ``bits``, ascending), the hi target bits
    (ascending, int64) and the coefficients, laid out as the kernel reads them:
    vectors ``[h][d][re/im][h'][lane reals]``, or where there are no lo bits, scalars
    ``[h][re/im][h']``.
    """
    real = np.dtype(dtype).type(0).real.dtype
    lanes = 1 << lane_bits(dtype)
    lo, hib, gather = _layout(tuple(int(b) for b in bits), lanes)
    big, small = 1 << len(hib), 1 << len(lo)
    entries = np.asarray(matrix, dtype=np.complex128).reshape(-1)[gather]
    if not lo:  # every lane the same entry: scalars, [h][re/im][h']
        coef = np.empty((big, 2, big), dtype=real)
        coef[:, 0, :] = entries[:, 0, :, 0].real
        coef[:, 1, :] = entries[:, 0, :, 0].imag
        return lo, hib, coef
    coef = np.empty((big, small, 2, big, 2 * lanes), dtype=real)
    coef[:, :, 0, :, 0::2] = entries.real
    coef[:, :, 0, :, 1::2] = entries.real
    coef[:, :, 1, :, 0::2] = -entries.imag  # B times (imag, real): the sign is here
    coef[:, :, 1, :, 1::2] = entries.imag
    return lo, hib, coef


def apply_matrix(
    psi: np.ndarray, matrix: np.ndarray, bits: Sequence[int], *, threads: int | None = None
) -> None:
    """Apply ``matrix`` in place to ``psi`` (flat, C-contiguous, complex64 or complex128,
    ``2**n`` amplitudes with ``n >= lane_bits(psi.dtype)``); ``bits[j]`` is the index
    bit of ``psi`` that the matrix index's bit ``j`` acts on.

    Raises:
        RuntimeError: the kernels are not :func:`available` here.
        ValueError: ``psi``, ``matrix`` or ``bits`` do not fit together (the kernel would
            read and write outside the state).
    """
    apply_blocks(psi, [(matrix, bits, False)], threads=threads)


def apply_blocks(
    psi: np.ndarray,
    blocks: Sequence[tuple[np.ndarray, Sequence[int], bool]],
    *,
    threads: int | None = None,
) -> None:
    """Apply gates in place to ``psi``, in order: each ``(gate, bits, diagonal)``, a
    matrix as :func:`apply_matrix` takes it or, where ``diagonal``, a diagonal's entries
    as :func:`apply_diagonal` does. Every gate is checked and its kernel compiled
    before the first is applied; then the threads run the passes one after the other
    with no return to Python between them (:func:`_driver_ir`).

    Raises:
        RuntimeError: the kernels are not :func:`available` here, or one failed to
            compile (``psi`` is then untouched).
        ValueError: a gate that does not fit ``psi`` (``psi`` is then untouched).
    """
    if not available():
        raise RuntimeError(f"compiled kernels unavailable: {unavailable_reason()}")
    passes = [_prepare(psi, gate, bits, diagonal) for gate, bits, diagonal in blocks]
    _run(passes, psi, threads)


def _prepare(
    psi: np.ndarray, gate: np.ndarray, bits: Sequence[int], diagonal: bool
) -> tuple[int, np.ndarray, np.ndarray, int]:
    """One pass of :func:`apply_blocks`: its kernel's address, coefficients, hi target
    bits and steps (checked, compiled)."""
    k = len(bits)
    real = "float" if psi.dtype == np.complex64 else "double"
    if diagonal:
        _check(psi, bits, np.shape(gate) == (1 << k,) and k <= MAX_DIAGONAL_BITS, gate)
        hib, coef = diagonal_coefficients(gate, bits, psi.dtype)
        return _kernel(real, None, len(hib)), coef, hib, psi.size >> lane_bits(psi.dtype)
    _check(psi, bits, np.shape(gate) == (1 << k, 1 << k), gate)
    lo, hib, coef = coefficients(gate, bits, psi.dtype)
    steps = psi.size >> (lane_bits(psi.dtype) + len(hib))
    return _kernel(real, lo, len(hib)), coef, hib, steps


def diagonal_coefficients(
    diagonal: np.ndarray, bits: Sequence[int], dtype: np.dtype[Any]
) -> tuple[np.ndarray, np.ndarray]:
    """The hi target bits and coefficient vectors of the diagonal kernel for ``diagonal``.

    ``bits[j]`` is the state bit of the diagonal index's bit ``j``. The hi bits come
    ascending, as int64. For each value ``h`` of the hi bits, the vectors hold the real
    parts and then the imaginary parts of the entries each lane needs,
    ``[h][re/im][lane reals]``."""
    real = np.dtype(dtype).type(0).real.dtype
    w = lane_bits(dtype)
    lanes = 1 << w
    order = sorted(range(len(bits)), key=lambda j: bits[j])
    hi_j = [j for j in order if bits[j] >= w]
    lo_j = [j for j in order if bits[j] < w]
    lane = np.arange(lanes)
    own = np.zeros(lanes, dtype=np.int64)  # each lane's part of the diagonal's index
    for j in lo_j:
        own |= ((lane >> bits[j]) & 1) << j
    h = np.arange(1 << len(hi_j))
    high = np.zeros(h.size, dtype=np.int64)
    for t, j in enumerate(hi_j):
        high |= ((h >> t) & 1) << j
    entries = np.asarray(diagonal, dtype=np.complex128)[high[:, None] | own[None, :]]
    coef = np.empty((h.size, 2, 2 * lanes), dtype=real)
    coef[:, 0, 0::2] = coef[:, 0, 1::2] = entries.real
    coef[:, 1, 0::2] = coef[:, 1, 1::2] = entries.imag
    return np.array([bits[j] for j in hi_j], dtype=np.int64), coef


def apply_diagonal(
    psi: np.ndarray, diagonal: np.ndarray, bits: Sequence[int], *, threads: int | None = None
) -> None:
    """Multiply ``psi`` in place by the diagonal gate ``diagonal`` (``2**k`` entries; bit
    ``j`` of its index is bit ``bits[j]`` of ``psi``'s): one streaming pass, whatever
    ``k`` (up to :data:`MAX_DIAGONAL_BITS`).

    Raises:
        RuntimeError: the kernels are not :func:`available` here.
        ValueError: ``psi``, ``diagonal`` or ``bits`` do not fit together.
    """
    apply_blocks(psi, [(diagonal, bits, True)], threads=threads)


def _check(psi: np.ndarray, bits: Sequence[int], shaped: bool, gate: np.ndarray) -> None:
    """Raise ValueError unless ``psi`` is a state the kernels take and ``bits`` distinct
    bits of it (``shaped``: the gate's shape fits ``bits``)."""
    n = psi.size.bit_length() - 1
    if (
        psi.ndim != 1
        or psi.size != 1 << n
        or not psi.flags.c_contiguous
        or psi.dtype not in (np.complex64, np.complex128)
        or n < lane_bits(psi.dtype)
        or len(set(bits)) != len(bits)
        or not all(0 <= b < n for b in bits)
        or not shaped
    ):
        raise ValueError(
            f"a {np.shape(gate)} gate on bits {list(bits)} does not fit a "
            f"{psi.dtype} state of shape {psi.shape}"
        )


def _run(
    passes: Sequence[tuple[int, np.ndarray, np.ndarray, int]],
    psi: np.ndarray,
    threads: int | None,
) -> None:
    """Run the passes (kernel address, coefficients, hi bits, steps) over ``psi`` in
    order, cut between threads on a large state, a few passes to a call of the driver
    (:data:`CALL_AMPLITUDES`)."""
    count = threads or thread_count()
    if psi.size < PARALLEL_MIN:
        count = 1
    per_call = max(1, CALL_AMPLITUDES // psi.size)
    driver = _driver()
    yielding = _yield_address()
    for first in range(0, len(passes), per_call):
        group = passes[first : first + per_call]
        table, counters = _table(group, psi.ctypes.data, count)
        args = (table.ctypes.data, len(group), counters.ctypes.data, yielding)
        if count <= 1:
            driver(*args)
            continue
        pool = _pool.get(count - 1)
        if pool is None:
            pool = _pool.setdefault(count - 1, _Helpers(count - 1))
        pool.run(driver, args)


class _Helpers:
    """Threads that each make one call of the driver a run (:func:`_run`) beside the
    calling thread, started once and kept (daemons, waiting on a queue). A plain pair
    of queues, not ``concurrent.futures``, whose import (logging with it) would slow
    every fresh process."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._tasks: queue.SimpleQueue[tuple[Any, tuple[Any, ...], Any]] = queue.SimpleQueue()
        for k in range(size):
            threading.Thread(target=self._serve, name=f"qmk-simd-{k}", daemon=True).start()

    def _serve(self) -> None:
        while True:
            call, args, done = self._tasks.get()
            try:
                call(*args)
            except BaseException as error:  # handed to the run's caller
                done.put(error)
            else:
                done.put(None)

    def run(self, call: Any, args: tuple[Any, ...]) -> None:
        """``call(*args)`` on every helper and on this thread; returns when all are
        done, raising the first helper's error if one raised."""
        done: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        for _ in range(self.size):
            self._tasks.put((call, args, done))
        call(*args)
        errors = [done.get() for _ in range(self.size)]
        for error in errors:
            if error is not None:
                raise error


def _table(
    group: Sequence[tuple[int, np.ndarray, np.ndarray, int]], psi: int, threads: int
) -> tuple[np.ndarray, np.ndarray]:
    """The driver's table of ``group`` (:data:`_TASK_FIELDS` int64 a pass) on the state
    at address ``psi``, and its zeroed counters (each pass's pair on lines of their
    own, so claiming pieces of one pass does not stall the threads waiting on another)."""
    table = np.empty((len(group), _TASK_FIELDS), dtype=np.int64)
    for row, (address, coef, hib, steps) in zip(table, group, strict=True):
        pieces = 1 if threads <= 1 else max(1, min(steps, threads * _PIECES))
        row[:] = (address, psi, coef.ctypes.data, hib.ctypes.data, steps, pieces)
    words = len(group) * _COUNTER_STRIDE
    raw = np.zeros(words + 8, dtype=np.int64)  # 8 spare words: room to align to 64 bytes
    skip = (-raw.ctypes.data % 64) // 8
    return table, raw[skip : skip + words]
