"""The right-hand side of analog mode's integrator, compiled: ``dy/dt = -i H(t) psi``.

On one segment of a drive (waveforms linear in ``t``) the Hamiltonian over a basis of
``d`` states is ``H = half * W + diag(d0 + x * dd)``. ``W`` is the drive operator
(sparse, Hermitian, at most ``m`` entries a row) and ``half = Omega(t)/2``. The diagonal
(interaction, detunings) is linear in the segment's fraction ``x``.
:class:`DriveMatrix` holds ``W`` once per register and phase. :func:`apply` returns
``-i H psi`` for the state ``psi`` carried as ``2d`` reals, interleaved ``(re, im)``.
That is a complex array viewed as ``float64``, what :class:`scipy.integrate.DOP853`
integrates.

Compiled (llvmlite, as :mod:`qmk.engines.simd`, whose LLVM engine and on-disk object
cache it shares) the product is one pass over the rows. ``W`` is padded to exactly ``m``
entries a row (ELLPACK: columns and weights, a row's ``m`` entries contiguous). The
inner loop is unrolled ``m`` times in the IR, each entry one load of the amplitude pair
as a ``<2 x double>`` and one fused multiply-add into one of four accumulators. Then
come the diagonal, the ``-i`` and the store. Nothing is allocated and nothing goes back
to Python between rows. ``docs/neutral-atom.md`` ("Speed") has the figures.

Without llvmlite (or where LLVM cannot build the kernel) the same product runs as a scipy
CSR product and numpy. It gives the same result to rounding; the compiled one fuses its
multiply-adds.

>>> import numpy as np, scipy.sparse as sp
>>> w = DriveMatrix.of(sp.csr_matrix(np.array([[0.0, 1.0], [1.0, 0.0]])))
>>> psi = np.array([1.0 + 0j, 0.0])
>>> out = apply(w, psi.view(np.float64), half=0.5, d0=np.zeros(2), dd=np.zeros(2), x=0.0)
>>> (out.view(np.complex128) + 0.0).tolist()  # -i (X / 2) |0>
[0j, -0.5j]
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from qmk.engines import simd

#: Accumulators a row's sum is split over (independent multiply-add chains).
_CHAINS = 4

_lock = threading.Lock()
_kernels: dict[tuple[int, bool], Any] = {}
_failed: dict[str, str] = {}


def _ir(m: int, imag: bool, name: str) -> str:
    """LLVM IR of ``void name(i64 d, ptr cols, ptr wr, ptr wi, ptr d0, ptr dd, ptr y,
    ptr out, double x, double half)``: ``out = -i (half W + diag(d0 + x dd)) y`` over
    ``d`` rows of an ELLPACK ``W`` with ``m`` entries a row (``wi`` read only when
    ``imag``: a complex ``W``)."""
    v2 = "<2 x double>"
    out = [
        f"declare {v2} @llvm.fma.v2f64({v2}, {v2}, {v2})",
        f"define void @{name}(i64 %d, ptr noalias %cols, ptr noalias %wr, ptr noalias %wi, "
        "ptr noalias %d0, ptr noalias %dd, ptr noalias %y, ptr noalias %out, "
        "double %x, double %half) {",
        "entry:",
        "  %empty = icmp sle i64 %d, 0",
        "  br i1 %empty, label %exit, label %row",
        "row:",
        "  %r = phi i64 [ 0, %entry ], [ %r1, %row ]",
        f"  %base = mul i64 %r, {m}",
    ]
    emit = out.append
    zero = "zeroinitializer"
    acc = [zero] * _CHAINS  # real weights times (re, im)
    acc_i = [zero] * _CHAINS  # imaginary weights times (re, im)
    for k in range(m):
        chain = k % _CHAINS
        emit(f"  %k{k} = add i64 %base, {k}")
        emit(f"  %pc{k} = getelementptr i32, ptr %cols, i64 %k{k}")
        emit(f"  %c{k} = load i32, ptr %pc{k}")
        emit(f"  %cz{k} = zext i32 %c{k} to i64")
        emit(f"  %cc{k} = shl i64 %cz{k}, 1")
        emit(f"  %pv{k} = getelementptr double, ptr %y, i64 %cc{k}")
        emit(f"  %v{k} = load {v2}, ptr %pv{k}, align 8")
        emit(f"  %pw{k} = getelementptr double, ptr %wr, i64 %k{k}")
        emit(f"  %w{k} = load double, ptr %pw{k}")
        emit(f"  %wa{k} = insertelement {v2} undef, double %w{k}, i32 0")
        emit(f"  %wv{k} = shufflevector {v2} %wa{k}, {v2} undef, <2 x i32> zeroinitializer")
        emit(f"  %a{k} = call {v2} @llvm.fma.v2f64({v2} %wv{k}, {v2} %v{k}, {v2} {acc[chain]})")
        acc[chain] = f"%a{k}"
        if imag:
            emit(f"  %pu{k} = getelementptr double, ptr %wi, i64 %k{k}")
            emit(f"  %u{k} = load double, ptr %pu{k}")
            emit(f"  %ua{k} = insertelement {v2} undef, double %u{k}, i32 0")
            emit(f"  %uv{k} = shufflevector {v2} %ua{k}, {v2} undef, <2 x i32> zeroinitializer")
            emit(
                f"  %b{k} = call {v2} @llvm.fma.v2f64({v2} %uv{k}, {v2} %v{k}, {v2} {acc_i[chain]})"
            )
            acc_i[chain] = f"%b{k}"

    def total(parts: list[str], tag: str) -> str:
        live = [p for p in parts if p != zero]
        if not live:
            return zero
        while len(live) > 1:
            merged = []
            for j in range(0, len(live) - 1, 2):
                emit(f"  %{tag}{len(live)}_{j} = fadd {v2} {live[j]}, {live[j + 1]}")
                merged.append(f"%{tag}{len(live)}_{j}")
            if len(live) % 2:
                merged.append(live[-1])
            live = merged
        return live[0]

    s = total(acc, "s")
    if imag:
        # (wr + i wi)(re + i im): the wi part adds (-wi im, wi re), a swap and a negation.
        t = total(acc_i, "t")
        emit(f"  %tn = fneg {v2} {t}")
        emit(f"  %ts = shufflevector {v2} {t}, {v2} %tn, <2 x i32> <i32 3, i32 0>")
        emit(f"  %sum = fadd {v2} {s}, %ts")
    else:
        emit(f"  %sum = fadd {v2} {s}, zeroinitializer")
    emit("  %pd0 = getelementptr double, ptr %d0, i64 %r")
    emit("  %g0 = load double, ptr %pd0")
    emit("  %pdd = getelementptr double, ptr %dd, i64 %r")
    emit("  %gd = load double, ptr %pdd")
    emit("  %g = call double @llvm.fma.f64(double %x, double %gd, double %g0)")
    emit(f"  %gv0 = insertelement {v2} undef, double %g, i32 0")
    emit(f"  %gv = shufflevector {v2} %gv0, {v2} undef, <2 x i32> zeroinitializer")
    emit(f"  %hv0 = insertelement {v2} undef, double %half, i32 0")
    emit(f"  %hv = shufflevector {v2} %hv0, {v2} undef, <2 x i32> zeroinitializer")
    emit("  %r2 = shl i64 %r, 1")
    emit("  %py = getelementptr double, ptr %y, i64 %r2")
    emit(f"  %yr = load {v2}, ptr %py, align 8")
    emit(f"  %gy = fmul {v2} %gv, %yr")
    emit(f"  %h = call {v2} @llvm.fma.v2f64({v2} %hv, {v2} %sum, {v2} %gy)")
    # -i (hr + i hi) = hi - i hr
    emit(f"  %hn = fneg {v2} %h")
    emit(f"  %o = shufflevector {v2} %h, {v2} %hn, <2 x i32> <i32 1, i32 2>")
    emit("  %po = getelementptr double, ptr %out, i64 %r2")
    emit(f"  store {v2} %o, ptr %po, align 8")
    emit("  %r1 = add i64 %r, 1")
    emit("  %done = icmp sge i64 %r1, %d")
    emit("  br i1 %done, label %exit, label %row")
    emit("exit:")
    emit("  ret void")
    emit("}")
    emit("declare double @llvm.fma.f64(double, double, double)")
    return "\n".join(out)


def _kernel(m: int, imag: bool) -> Any:
    """The compiled kernel for ``m`` entries a row (compiled on first use, then kept)."""
    key = (m, imag)
    kernel = _kernels.get(key)
    if kernel is not None:
        return kernel
    with _lock:
        kernel = _kernels.get(key)
        if kernel is None:
            name = f"qmk_analog_rhs_{m}_{'c' if imag else 'r'}"
            address = simd.compile_function(name, _ir(m, imag, name))
            pointer = ctypes.c_void_p
            signature = ctypes.CFUNCTYPE(
                None, ctypes.c_int64, *[pointer] * 7, ctypes.c_double, ctypes.c_double
            )
            kernel = signature(address)
            _kernels[key] = kernel
    return kernel


def compiled_available() -> bool:
    """Whether :func:`apply` runs compiled here (llvmlite installed, LLVM builds it)."""
    return simd.available() and not _failed


@dataclass(frozen=True, slots=True, kw_only=True)
class DriveMatrix:
    """A Hermitian drive operator ``W`` in the two forms :func:`apply` uses.

    ``csr``: the matrix (complex) for the numpy form; ``cols`` (d, m) int32 and
    ``real``/``imag`` (d, m) float64: ``W`` padded to ``m`` entries a row (padding:
    column 0, weight 0) for the compiled form; ``imag`` is None where ``W`` is real.
    """

    csr: sp.csr_matrix
    cols: np.ndarray
    real: np.ndarray
    imag: np.ndarray | None

    def __post_init__(self) -> None:
        d = self.csr.shape[0]
        padded = [self.cols, self.real] + ([self.imag] if self.imag is not None else [])
        if (
            self.cols.dtype != np.int32
            or any(a.dtype != np.float64 for a in padded[1:])
            or any(a.ndim != 2 or a.shape != self.cols.shape for a in padded)
            or not all(a.flags.c_contiguous for a in padded)
            or self.cols.shape[0] != d
            or (self.cols.size and (self.cols.min() < 0 or self.cols.max() >= d))
        ):
            raise ValueError(
                "a DriveMatrix's padded form must be (d, m) C arrays: int32 "
                "columns below d, float64 weights (use DriveMatrix.of)"
            )

    @property
    def dimension(self) -> int:
        return int(self.csr.shape[0])

    @property
    def width(self) -> int:
        """``m``: entries a row, padding included."""
        return int(self.cols.shape[1])

    @classmethod
    def of(cls, matrix: sp.spmatrix | sp.sparray) -> DriveMatrix:
        """The drive matrix of a (square, Hermitian) sparse ``matrix``."""
        csr = sp.csr_matrix(matrix, dtype=np.complex128)
        csr.sum_duplicates()
        csr.eliminate_zeros()
        d = csr.shape[0]
        counts = np.diff(csr.indptr)
        m = max(1, int(counts.max(initial=0)))
        rows = np.repeat(np.arange(d), counts)
        slot = np.arange(csr.nnz) - np.repeat(csr.indptr[:-1], counts)
        cols = np.zeros((d, m), dtype=np.int32)
        real = np.zeros((d, m))
        cols[rows, slot] = csr.indices
        real[rows, slot] = csr.data.real
        imag = None
        if np.any(csr.data.imag):
            imag = np.zeros((d, m))
            imag[rows, slot] = csr.data.imag
        return cls(csr=csr, cols=cols, real=real, imag=imag)


def _compiled_kernel(w: DriveMatrix, compiled: bool | None) -> Any:
    """The kernel for ``w``, or None for numpy (``compiled`` as :func:`apply` takes it)."""
    if compiled is False or not (compiled or compiled_available()):
        return None
    try:
        return _kernel(w.width, w.imag is not None)
    except Exception as error:  # an LLVM that cannot build it: numpy from now on
        _failed["reason"] = f"{type(error).__name__}: {error}"
        if compiled:
            raise RuntimeError(f"the analog kernel did not compile: {error}") from error
        return None


class SegmentRhs:
    """``dy/dt`` on one segment of a drive, the callable ``(t, y)`` DOP853 integrates.

    It is :func:`apply` at ``x = (t - t0) / span`` with
    ``half = (om0 + (om1 - om0) x) / 2``. Everything but ``t`` and ``y`` is fixed once,
    and their addresses taken, so a call works out only ``x`` and ``half``."""

    __slots__ = ("_fixed", "_keep", "_kernel", "_numpy", "_shape", "om0", "om1", "span", "t0")

    def __init__(
        self,
        w: DriveMatrix,
        *,
        t0: float,
        span: float,
        omega: tuple[float, float],
        d0: np.ndarray,
        dd: np.ndarray,
        compiled: bool | None = None,
    ) -> None:
        self.t0, self.span = t0, span
        self.om0, self.om1 = omega
        d0 = np.ascontiguousarray(d0, dtype=np.float64)
        dd = np.ascontiguousarray(dd, dtype=np.float64)
        self._kernel = _compiled_kernel(w, compiled)
        self._shape = (2 * w.dimension,)
        self._keep = (w, d0, dd)  # what the addresses below point into
        if d0.shape != (w.dimension,) or dd.shape != (w.dimension,):
            raise ValueError(f"the diagonal must have {w.dimension} entries")
        imag = w.imag if w.imag is not None else w.real  # read only for a complex W
        self._fixed = (
            w.dimension,
            w.cols.ctypes.data,
            w.real.ctypes.data,
            imag.ctypes.data,
            d0.ctypes.data,
            dd.ctypes.data,
        )
        self._numpy = None if self._kernel is not None else (w.csr, d0, dd)

    def __call__(self, t: float, y: np.ndarray) -> np.ndarray:
        x = (t - self.t0) / self.span
        half = 0.5 * (self.om0 + (self.om1 - self.om0) * x)
        if self._numpy is not None:
            csr, d0, dd = self._numpy
            psi = y.view(np.complex128)
            h = half * (csr @ psi) + (d0 + x * dd) * psi
            return np.ascontiguousarray(-1j * h).view(np.float64)
        if not (y.flags.c_contiguous and y.dtype == np.float64 and y.shape == self._shape):
            y = np.ascontiguousarray(y, dtype=np.float64)
            if y.shape != self._shape:  # the kernel would read past its end
                raise ValueError(f"the state must be {self._shape[0]} reals, not {y.shape}")
        out = np.empty_like(y)
        self._kernel(*self._fixed, y.ctypes.data, out.ctypes.data, x, half)
        return out


def apply(
    w: DriveMatrix,
    y: np.ndarray,
    *,
    half: float,
    d0: np.ndarray,
    dd: np.ndarray,
    x: float,
    compiled: bool | None = None,
) -> np.ndarray:
    """``-i (half W + diag(d0 + x dd)) psi`` for ``psi = y.view(complex128)``, as reals.

    Args:
        w: the drive operator.
        y: the state, ``2d`` float64, interleaved (re, im).
        half: the drive's coefficient (``Omega/2`` in rad/us).
        d0, dd: the diagonal at the segment's start and its change over the segment
            (length ``d``).
        x: where in the segment (0 to 1).
        compiled: True: the compiled kernel (RuntimeError where it cannot run); False:
            numpy; None: compiled where available.

    Returns:
        A new float64 array of ``2d``: ``dy/dt``.
    """
    rhs = SegmentRhs(
        w, t0=0.0, span=1.0, omega=(2 * half, 2 * half), d0=d0, dd=dd, compiled=compiled
    )
    return rhs(x, np.ascontiguousarray(y, dtype=np.float64))


__all__ = ["DriveMatrix", "SegmentRhs", "apply", "compiled_available"]
