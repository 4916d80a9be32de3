"""SIMD kernels for this CPU: a k-qubit matrix applied in place to a statevector.

The statevector engine's fused gates (:mod:`qmk.engines.fusion`) are applied here when
llvmlite (the LLVM binding numba is built on; the ``fast`` extra) is installed;
:mod:`qmk.engines.kernels` falls back to numpy otherwise. For each kernel *shape* this
module writes LLVM IR with explicit vector types, compiles it for the host CPU
(AVX-512, AVX2 or 128-bit vectors, as the CPU has) and calls it through ctypes, which
releases the GIL, so the state is cut into one contiguous range of work per thread.

Why generated IR and not numba ``@njit`` loops or numpy: measured on a 2-core Zen 5
(AVX-512), a 4-qubit complex64 gate on 2^16 amplitudes held in cache ran at 70-100
GFLOP/s per core here, 18-20 GFLOP/s as numba loops (LLVM does not keep the
accumulators of a run-time-sized complex loop in registers) and 25-80 GFLOP/s as numpy
``tensordot`` (BLAS; but at 2^22 amplitudes its transposes cost 3-6x the kernel).

How a kernel works. A vector holds ``2**w`` consecutive complex amplitudes (interleaved
real and imaginary parts), so the ``w`` lowest index bits are *lane* bits. The target
bits of a gate split into those among the lane bits (``lo``) and the rest (``hi``).
One loop step loads the ``2**len(hi)`` vectors that differ in the hi bits and writes
back, for each of them, ``sum_{h, d} A[h', h, d] * perm_d(x_h) + B[h', h, d] *
swap(perm_d(x_h))``: ``perm_d`` xors each lane's lo target bits with ``d`` (a
shuffle), ``swap`` exchanges real and imaginary parts, and the coefficient vectors
``A`` (real parts) and ``B`` (signed imaginary parts) hold, lane by lane, the matrix
entry that lane needs. All of it is fused multiply-adds over full vectors, with up to
16 independent accumulators (the matrix is read from L1 as memory operands). A kernel
is specialised by (precision, ``lo``, ``len(hi)``); the hi bit positions are
arguments, so a few dozen compiled kernels serve every gate.

>>> import numpy as np
>>> psi = np.zeros(2**6, dtype=np.complex64); psi[0] = 1
>>> h = np.array([[1, 1], [1, -1]]) / np.sqrt(2)
>>> if available(): apply_matrix(psi, h, [5], threads=1)
... else: psi[0] = psi[32] = 2**-0.5
>>> np.round(abs(psi[[0, 32]]) ** 2, 6).tolist()
[0.5, 0.5]
"""

from __future__ import annotations

import ctypes
import itertools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from qmk.engines import kernel_cache, limits

#: Environment variable: how many threads a kernel uses (default: the CPUs this process
#: may run on); the router reads the same (:mod:`qmk.engines.limits`).
THREADS_ENV = limits.THREADS_ENV
#: Below this many amplitudes a kernel runs on the calling thread alone.
PARALLEL_MIN = 1 << 15
#: Pieces of work per thread (taken in turn, so a late thread holds up one piece).
_PIECES = 8
#: Accumulators kept in registers at once (32 vector registers with AVX-512, 16 without).
_ACCUMULATORS = {64: 16, 32: 8, 16: 8}
#: Independent accumulation chains a kernel aims for (FMA latency times issue width).
_CHAINS = 8

_Kernel = Callable[[int, int, int, int, int], None]
_lock = threading.Lock()
_kernels: dict[tuple[str, tuple[int, ...], int], _Kernel] = {}
_state: dict[str, Any] = {}
_pool: dict[int, ThreadPoolExecutor] = {}
if hasattr(os, "register_at_fork"):  # a forked child has none of its parent's threads
    os.register_at_fork(after_in_child=_pool.clear)


def _init() -> dict[str, Any]:
    """The LLVM target machine and JIT engine (made once), or the reason there are none."""
    if _state:
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
        kernel_cache.attach(engine, llvm, cpu, flat)
        names = {name for name, on in features.items() if on}
        if "avx512f" in names:
            width = 64
        elif "avx" in names:
            width = 32
        else:
            width = 16
        _state.update(llvm=llvm, engine=engine, bytes=width, cpu=cpu, reason=None)
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


def _ir(real: str, width: int, lo: tuple[int, ...], nhi: int, name: str) -> str:
    """LLVM IR of one kernel: ``void name(ptr psi, ptr coef, ptr hibits, i64 start, i64 stop)``.

    ``psi`` is the state as interleaved reals, ``coef`` the coefficient vectors in the
    order the loop reads them (:func:`coefficients`), ``hibits`` the hi target bits
    (ascending); the loop runs over the steps ``[start, stop)``.
    """
    floats = width // (4 if real == "float" else 8)
    lanes = floats // 2
    w = lanes.bit_length() - 1
    big, small = 1 << nhi, 1 << len(lo)
    vec = f"<{floats} x {real}>"
    fma = f"@llvm.fma.v{floats}f{32 if real == 'float' else 64}"
    out: list[str] = [
        f"declare {vec} {fma}({vec}, {vec}, {vec})",
        f"define void @{name}(ptr noalias %psi, ptr noalias %coef, ptr noalias %hib, "
        "i64 %start, i64 %stop) {",
        "entry:",
    ]
    emit = out.append
    for j in range(nhi):
        emit(f"  %bp{j} = getelementptr i64, ptr %hib, i64 {j}")
        emit(f"  %b{j} = load i64, ptr %bp{j}")
        emit(f"  %one{j} = shl i64 1, %b{j}")
        emit(f"  %low{j} = sub i64 %one{j}, 1")
        emit(f"  %high{j} = xor i64 %low{j}, -1")
        emit(f"  %step{j} = shl i64 %one{j}, 1")  # the bit's offset in reals
    for h in range(big):
        total = "0"
        for j in range(nhi):
            if h >> j & 1:
                emit(f"  %off{h}_{j} = add i64 {total}, %step{j}")
                total = f"%off{h}_{j}"
        emit(f"  %off{h} = add i64 {total}, 0")
    emit("  %empty = icmp sge i64 %start, %stop")
    emit("  br i1 %empty, label %exit, label %loop")
    emit("loop:")
    emit("  %g = phi i64 [ %start, %entry ], [ %next, %loop ]")
    emit(f"  %i0 = shl i64 %g, {w}")
    index = "%i0"
    for j in range(nhi):  # insert a zero at each hi bit, lowest first
        emit(f"  %l{j} = and i64 {index}, %low{j}")
        emit(f"  %u{j} = and i64 {index}, %high{j}")
        emit(f"  %s{j} = shl i64 %u{j}, 1")
        emit(f"  %i{j + 1} = or i64 %l{j}, %s{j}")
        index = f"%i{j + 1}"
    emit(f"  %base = shl i64 {index}, 1")

    def mask(d: int, swap: bool) -> str:
        flip = sum(1 << bit for t, bit in enumerate(lo) if d >> t & 1)
        order: list[int] = []
        for lane in range(lanes):
            source = lane ^ flip
            order += [2 * source + 1, 2 * source] if swap else [2 * source, 2 * source + 1]
        return f"<{floats} x i32> <" + ", ".join(f"i32 {i}" for i in order) + ">"

    for h in range(big):
        emit(f"  %a{h} = add i64 %base, %off{h}")
        emit(f"  %p{h} = getelementptr {real}, ptr %psi, i64 %a{h}")

    def load(h: int) -> None:  # emitted just before first use: short live ranges
        emit(f"  %x{h}_0 = load {vec}, ptr %p{h}, align 4")
        for d in range(small):
            if d:
                emit(f"  %x{h}_{d} = shufflevector {vec} %x{h}_0, {vec} poison, {mask(d, False)}")
            emit(f"  %y{h}_{d} = shufflevector {vec} %x{h}_0, {vec} poison, {mask(d, True)}")

    # the terms of every output vector, in the order the coefficients are laid out
    sources = [f"%{part}{h}_{d}" for h in range(big) for d in range(small) for part in "xy"]
    block = _ACCUMULATORS[width]
    chains = max(1, min(_CHAINS // big, len(sources) // 2))
    counter = 0
    for first in range(0, big, block):
        rows = range(first, min(big, first + block))
        acc: dict[tuple[int, int], str] = {}
        for t, source in enumerate(sources):
            if first == 0 and t % (2 * small) == 0:
                load(t // (2 * small))  # later row blocks reuse the values loaded here
            for r in rows:
                counter += 1
                at = (t * big + r) * floats
                emit(f"  %c{counter} = getelementptr {real}, ptr %coef, i64 {at}")
                emit(f"  %m{counter} = load {vec}, ptr %c{counter}, align 4")
                chain = (r, t % chains)
                if chain in acc:
                    emit(
                        f"  %v{counter} = call {vec} {fma}({vec} %m{counter}, {vec} {source}, "
                        f"{vec} {acc[chain]})"
                    )
                else:
                    emit(f"  %v{counter} = fmul {vec} %m{counter}, {source}")
                acc[chain] = f"%v{counter}"
        for r in rows:
            total = acc[(r, 0)]
            for c in range(1, chains):
                if (r, c) in acc:
                    counter += 1
                    emit(f"  %v{counter} = fadd {vec} {total}, {acc[(r, c)]}")
                    total = f"%v{counter}"
            emit(f"  store {vec} {total}, ptr %p{r}, align 4")
    emit("  %next = add i64 %g, 1")
    emit("  %done = icmp sge i64 %next, %stop")
    emit("  br i1 %done, label %exit, label %loop")
    emit("exit:")
    emit("  ret void")
    emit("}")
    return "\n".join(out)


def _kernel(real: str, lo: tuple[int, ...], nhi: int) -> _Kernel:
    """The compiled kernel of this shape (compiled on first use, then kept)."""
    key = (real, lo, nhi)
    kernel = _kernels.get(key)
    if kernel is not None:
        return kernel
    with _lock:
        kernel = _kernels.get(key)
        if kernel is None:
            state = _init()
            llvm = state["llvm"]
            name = f"qmk_{real}_{'_'.join(map(str, lo)) or 'x'}_{nhi}"
            try:
                ir = _ir(real, state["bytes"], lo, nhi, name)
                module = llvm.parse_assembly(ir)
                module.verify()
                module.name = kernel_cache.module_key(ir)  # its object code's file
                state["engine"].add_module(module)
                state["engine"].finalize_object()
                address = state["engine"].get_function_address(name)
            except Exception as error:  # an LLVM that cannot build it: numpy from now on
                state["reason"] = f"compiling {name} failed: {type(error).__name__}: {error}"
                raise RuntimeError(state["reason"]) from error
            signature = ctypes.CFUNCTYPE(
                None,
                ctypes.c_void_p,
                ctypes.c_void_p,
                ctypes.c_void_p,
                ctypes.c_int64,
                ctypes.c_int64,
            )
            kernel = signature(address)
            _kernels[key] = kernel
    return kernel


def coefficients(
    matrix: np.ndarray, bits: Sequence[int], dtype: np.dtype[Any]
) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """The kernel shape and arguments for ``matrix`` on ``bits``.

    ``bits[j]`` is the state index bit of the matrix index's bit ``j``. Returns the lo
    target bits (the lane bits among ``bits``, ascending), the hi target bits
    (ascending, int64) and the coefficient vectors, laid out as the kernel reads them:
    ``[h][d][re/im][h'][lane reals]``.
    """
    real = np.dtype(dtype).type(0).real.dtype
    lanes = 1 << lane_bits(dtype)
    order = sorted(range(len(bits)), key=lambda j: bits[j])
    lo_j = [j for j in order if bits[j] < lanes.bit_length() - 1]
    hi_j = [j for j in order if bits[j] >= lanes.bit_length() - 1]
    lo = tuple(int(bits[j]) for j in lo_j)
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
    entries = np.asarray(matrix, dtype=np.complex128)[rows, cols]
    coef = np.empty((big, small, 2, big, 2 * lanes), dtype=real)
    coef[:, :, 0, :, 0::2] = entries.real
    coef[:, :, 0, :, 1::2] = entries.real
    coef[:, :, 1, :, 0::2] = -entries.imag
    coef[:, :, 1, :, 1::2] = entries.imag
    return lo, np.array([bits[j] for j in hi_j], dtype=np.int64), coef


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
    if not available():
        raise RuntimeError(f"compiled kernels unavailable: {unavailable_reason()}")
    n = psi.size.bit_length() - 1
    k = len(bits)
    if (
        psi.ndim != 1
        or psi.size != 1 << n
        or not psi.flags.c_contiguous
        or psi.dtype not in (np.complex64, np.complex128)
        or n < lane_bits(psi.dtype)
        or len(set(bits)) != k
        or not all(0 <= b < n for b in bits)
        or np.shape(matrix) != (1 << k, 1 << k)
    ):
        raise ValueError(
            f"a {np.shape(matrix)} matrix on bits {list(bits)} does not fit a "
            f"{psi.dtype} state of shape {psi.shape}"
        )
    real = "float" if psi.dtype == np.complex64 else "double"
    lo, hib, coef = coefficients(matrix, bits, psi.dtype)
    kernel = _kernel(real, lo, len(hib))
    steps = psi.size >> (lane_bits(psi.dtype) + len(hib))
    args = (psi.ctypes.data, coef.ctypes.data, hib.ctypes.data)
    count = threads or thread_count()
    if count <= 1 or psi.size < PARALLEL_MIN:
        kernel(*args, 0, steps)
        return
    # more pieces than threads, taken in turn: a thread the OS holds up (a busy machine)
    # delays the end by one piece, not by its whole share
    pieces = count * _PIECES
    cuts = [steps * i // pieces for i in range(pieces + 1)]
    turn = itertools.count()

    def work() -> None:
        while (i := next(turn)) < pieces:
            kernel(*args, cuts[i], cuts[i + 1])

    pool = _pool.get(count - 1)
    if pool is None:
        pool = _pool.setdefault(count - 1, ThreadPoolExecutor(count - 1, "qmk-simd"))
    futures = [pool.submit(work) for _ in range(count - 1)]
    work()
    for future in futures:
        future.result()
