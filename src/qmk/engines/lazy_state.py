"""The statevector engine's state and the work on it, below the engine's protocol.

:class:`LazyState` holds one pure state of live qubits ``q`` over tensor variables
``x`` as (see :mod:`qmk.engines.statevector` for why)::

    e^{i g} (prod_q U_q) sum_x psi(x) e^{i sum_m theta_m (m . x)} |y(x)>,
    y_q(x) = (A_q . x) xor c_q          (parities over GF(2))

with pending one-qubit matrices ``U_q`` (``_pending``), pending parity phases
``theta_m`` (``_terms``), the global phase ``g``, the rows ``A_q`` (``_rows``, bitmasks
over variables, kept injective) and constants ``c_q`` (``_consts``), and the tensor
``psi`` (``_psi``, one axis per variable in ``_vars``). Its methods change those parts
in step: gates as bookkeeping (:meth:`LazyState._apply_checked`), fused segments in
one pass per block, changes of variables, the pending work applied where a gate,
measurement or sample needs it, measurement in Z and sampling. It takes checked
arguments only: :class:`~qmk.engines.statevector.StatevectorEngine` checks them, and
is what a caller uses.
"""

from __future__ import annotations

import cmath
import heapq
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from qmk.engines import fusion, kernels
from qmk.engines.gate_matrices import matrices
from qmk.engines.gates import GATES, Gate
from qmk.engines.sampling import CHUNK as _CHUNK
from qmk.engines.sampling import draw_indices
from qmk.engines.state_io import walsh

_X = GATES["x"].matrix()
_TWO_PI = 2 * math.pi
#: Off-diagonal entries this small (relative) make a fused 2x2 count as diagonal.
_ZERO = 1e-14
#: One-qubit gates that never mix amplitudes (diagonal, or a flip times a diagonal): a
#: shortcut of :meth:`LazyState._fusable`, which reads any other gate's matrix.
_UNMIXING = frozenset(
    gate.name for gate in GATES.values() if gate.qubits == 1 and (gate.diagonal or gate.pauli)
)


def _independent(rows: Sequence[int]) -> bool:
    """Whether the bitmasks ``rows`` are linearly independent over GF(2).

    >>> _independent([0b011, 0b110, 0b100]), _independent([0b011, 0b110, 0b101])
    (True, False)
    """
    basis: dict[int, int] = {}  # leading bit -> a reduced row with it
    for row in rows:
        while row:
            top = row.bit_length() - 1
            if top not in basis:
                basis[top] = row
                break
            row ^= basis[top]
        else:
            return False
    return True


def _bits(mask: int) -> list[int]:
    """The set bits of ``mask``, lowest first."""
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def _kind(u: np.ndarray) -> str:
    """``"diag"``, ``"anti"`` (an X times a diagonal) or ``"dense"``."""
    a00, a01, a10, a11 = (abs(complex(v)) for v in u.flat)
    tiny = _ZERO * max(a00, a01, a10, a11)
    if a01 <= tiny and a10 <= tiny:
        return "diag"
    if a00 <= tiny and a11 <= tiny:
        return "anti"
    return "dense"


def _walsh(angles: Sequence[float] | np.ndarray) -> tuple[float, list[tuple[int, float]]]:
    """A diagonal phase ``angles[y]`` as ``const + sum_T w_T parity(y & T)``.

    Returns the constant and ``(T, w_T)`` for every subset ``T`` (a bitmask over the
    index bits of ``y``) with a non-zero weight.
    """
    f = np.asarray(angles, dtype=np.float64)
    size = len(f)
    spectrum = walsh(f) / size
    const = float(spectrum.sum())
    terms = [(t, -2 * float(spectrum[t])) for t in range(1, size) if abs(spectrum[t]) > 1e-15]
    return const, terms


#: Parity decompositions of the parameterless multi-qubit diagonal gates, by record.
_DIAGONAL_TERMS: dict[Gate, tuple[float, list[tuple[int, float]]]] = {}


def _diagonal_terms(gate: Gate, values: tuple[float, ...]) -> tuple[float, list[tuple[int, float]]]:
    """A diagonal gate's phases as :func:`_walsh` gives them (kept for a fixed gate)."""
    terms = _DIAGONAL_TERMS.get(gate) if not values else None
    if terms is None:
        terms = _walsh(np.angle(np.diag(gate.matrix(values))))
        if not values:
            _DIAGONAL_TERMS[gate] = terms
    return terms


def _blocks(shape: tuple[int, ...]) -> list[tuple[Any, ...]]:
    """Index tuples that cut an array of ``shape`` into blocks of at most ``_CHUNK``
    elements (or single rows of the last dimension), in order."""
    size = math.prod(shape)
    if size <= _CHUNK or not shape:
        return [()]
    head, inner = shape[0], size // shape[0]
    if inner <= _CHUNK:
        step = _CHUNK // inner
        return [(slice(i, i + step),) for i in range(0, head, step)]
    if len(shape) == 1:
        return [(slice(i, i + _CHUNK),) for i in range(0, head, _CHUNK)]
    return [(i, *rest) for i in range(head) for rest in _blocks(shape[1:])]


class LazyState:
    """One lazy statevector (the formula of the module docstring) and the work on it.

    Args:
        dtype: the amplitudes' complex dtype (checked by the engine).
        seed: seeds the one RNG that measurement and sampling draw from.
        fuse: False leaves segments unfused (:meth:`_fusable`).
        max_fused: the widest dense block a fused segment is cut into.
        fused_min: segments on fewer tensor axes run gate by gate.
        kernels: what applies a fused block (:mod:`~qmk.engines.kernels`).
    """

    def __init__(
        self,
        *,
        dtype: np.dtype,
        seed: int | None,
        fuse: bool,
        max_fused: int,
        fused_min: int,
        kernels: str,
    ) -> None:
        self._dtype = dtype
        self._max_fused = max_fused
        self._fused_min = fused_min
        self._kernels = kernels
        self._fuse = bool(fuse)
        self._rng = np.random.default_rng(seed)
        self._psi = np.ones((), dtype=self._dtype)
        self._spare: np.ndarray | None = None
        # the last fused segment's gates and blocks (:meth:`_fused_plan`)
        self._kept_plan: tuple[Sequence[Any], list[fusion.Block]] | None = None
        self._vars: list[int] = []  # tensor axis -> variable id
        self._rows: dict[int, int] = {}  # qubit -> bitmask of variables it reads
        self._consts: dict[int, int] = {}  # qubit -> bit xor-ed onto that parity
        self._pending: dict[int, np.ndarray] = {}  # qubit -> fused non-diagonal 2x2
        self._terms: dict[int, float] = {}  # variable mask -> pending parity phase
        self._gphase = 0.0
        self._free_qubits: list[int] = []
        self._next_qubit = 0
        self._free_vars: list[int] = []
        self._next_var = 0
        # While every qubit reads its own variable up to the cx gates since then (an
        # "epoch"), those gates are logged as (control, target) variables of the epoch's
        # start ("home"), so that replaying them restores that clean layout in as many
        # passes as there were gates. None: no epoch (copies, or a partial clean-up).
        self._log: list[tuple[int, int]] | None = []
        self._home: dict[int, int] = {}

    def _apply_checked(self, gate: str, qs: list[int], values: tuple[float, ...]) -> None:
        """Apply a checked gate through the bookkeeping (pending matrices and phases)."""
        spec = GATES[gate]
        if spec.qubits == 1:
            if gate != "i":
                self._gate1(qs[0], spec.matrix(values))
        elif gate == "cx":
            self._cx(qs[0], qs[1])
        elif gate == "swap":
            self._swap(qs[0], qs[1])
        elif gate == "ccx":
            self._ccx(qs[0], qs[1], qs[2])
        elif spec.diagonal:
            const, terms = _diagonal_terms(spec, values)
            self._diagonal(qs, const, terms)
        else:
            self._apply_dense(qs, spec.matrix(values))

    def _apply_dense(self, qs: Sequence[int], matrix: np.ndarray) -> None:
        """A multi-qubit gate the bookkeeping has no form for (a registered gate's):
        everything pending applied, the qubits on axes of their own, then ``matrix`` on
        those axes in one pass."""
        self._materialize()
        for q in qs:
            if not self._rows[q]:
                self._join(q, np.eye(2)[self._consts[q]])
        axes = [self._vars.index(self._rows[q].bit_length() - 1) for q in qs]
        k = len(qs)
        tensor = np.asarray(matrix).reshape((2,) * (2 * k))
        moved = np.tensordot(tensor, self._psi, axes=(list(range(k, 2 * k)), axes))
        self._psi = np.ascontiguousarray(np.moveaxis(moved, list(range(k)), axes), self._dtype)
        self._spare = None

    # ------------------------------------------------------------------ lazy gates

    def _gate1(self, q: int, m: np.ndarray) -> None:
        """Apply a 2x2 to ``q``: fused into its pending matrix, or bookkeeping."""
        u = self._pending.pop(q, None)
        if u is not None:
            m = m @ u
        kind = _kind(m)
        if kind == "dense":
            self._pending[q] = m
        elif kind == "diag":
            self._phase1(q, complex(m[0, 0]), complex(m[1, 1]))
        else:  # m = X diag(m10, m01)
            self._phase1(q, complex(m[1, 0]), complex(m[0, 1]))
            self._consts[q] ^= 1

    def _phase1(self, q: int, d0: complex, d1: complex) -> None:
        """diag(d0, d1) on ``q``, which has no pending matrix."""
        a0 = cmath.phase(d0)
        self._gphase += a0
        self._parity_phase((q,), cmath.phase(d1) - a0)

    def _parity_phase(self, qubits: Sequence[int], theta: float) -> None:
        """The phase ``theta * (xor of y_q)``; the qubits have no pending matrices."""
        mask = 0
        flip = 0
        for q in qubits:
            mask ^= self._rows[q]
            flip ^= self._consts[q]
        if flip:  # theta * (1 xor p) = theta - theta * p
            self._gphase += theta
            theta = -theta
        self._add_term(mask, theta)

    def _add_term(self, mask: int, theta: float) -> None:
        if not mask:
            return
        total = math.remainder(self._terms.get(mask, 0.0) + theta, _TWO_PI)
        if abs(total) < 1e-15:
            self._terms.pop(mask, None)
        else:
            self._terms[mask] = total

    def _diagonal(self, qs: Sequence[int], const: float, terms: list[tuple[int, float]]) -> None:
        for q in qs:
            self._settle(q)
        self._gphase += const
        k = len(qs)
        for subset, weight in terms:
            self._parity_phase([qs[i] for i in range(k) if subset >> (k - 1 - i) & 1], weight)

    def _cx(self, c: int, t: int) -> None:
        self._settle(c)
        self._settle(t)
        if self._rows[c] and self._log is not None:
            if not self._rows[t]:  # t becomes a copy of c: no clean layout to return to
                self._log = None
            elif self._log and self._log[-1] == (self._home[c], self._home[t]):
                self._log.pop()  # cx cx = identity
            else:
                self._log.append((self._home[c], self._home[t]))
        self._rows[t] ^= self._rows[c]
        self._consts[t] ^= self._consts[c]

    def _swap(self, a: int, b: int) -> None:
        rows, consts, pending = self._rows, self._consts, self._pending
        rows[a], rows[b] = rows[b], rows[a]
        consts[a], consts[b] = consts[b], consts[a]
        # the fused gates and the home rows move with their qubits alike
        holders: tuple[dict[int, Any], ...] = (pending, self._home)
        for held in holders:
            ua, ub = held.pop(a, None), held.pop(b, None)
            if ua is not None:
                held[b] = ua
            if ub is not None:
                held[a] = ub

    def _ccx(self, a: int, b: int, t: int) -> None:
        for q in (a, b, t):
            self._settle(q)
        for control, other in ((a, b), (b, a)):
            if not self._rows[control]:  # a classical control: a cx or nothing
                if self._consts[control]:
                    self._cx(other, t)
                return
        va, vb, vt = self._clean(a), self._clean(b), self._clean(t)
        self._flush_terms(vt)
        view, (da, db, dt) = self._view([self._vars.index(v) for v in (va, vb, vt)])
        fixed = {da: 1 ^ self._consts[a], db: 1 ^ self._consts[b]}
        self._swap_slices(view, {**fixed, dt: 0}, {**fixed, dt: 1})

    # ------------------------------------------------------------------ fused segments

    def _fusable(self, checked: Sequence[tuple[str, list[int], tuple[float, ...]]]) -> bool:
        """Whether a segment goes the fused way (:meth:`apply_segment`).

        Fusion must be on, and at least two of the segment's one-qubit gates mix
        amplitudes. Every qubit it touches without one already has an axis of its own, or
        can be given one by a change of variables (it is no classical bit and no qubit is
        a copy of others). The state has ``fused_min_qubits`` axes."""
        if not self._fuse or self._max_fused < 2:
            return False
        mixing: set[int] = set()
        count = 0
        for gate, qs, values in checked:
            mixing_gate = len(qs) == 1 and gate not in _UNMIXING
            # past two such gates, only a qubit not known to mix yet needs its matrix (a
            # random circuit's hundreds of rotations would each build one otherwise)
            if count >= 2 and qs[0] in mixing:
                continue
            if mixing_gate and _kind(GATES[gate].matrix(values)) == "dense":
                mixing.add(qs[0])
                count += 1
        if count < 2:
            return False
        width = self._psi.ndim
        columns: dict[int, int] | None = None
        independent: bool | None = None
        for q in dict.fromkeys(q for _, qs, _ in checked for q in qs):
            row = self._rows[q]
            if q in mixing:
                width += not row
                continue
            if columns is None:
                columns = self._columns()
            if self._owns_axis(q, columns):
                continue
            # a qubit that reads a combination of variables is given one of its own by a
            # change of variables (no new axis) unless it is a copy of the others, which
            # no qubit is while their rows are independent; a classical bit or a copy
            # would take up amplitudes
            if independent is None:
                independent = _independent([r for r in self._rows.values() if r])
            if not row or not independent:
                return False
        return width >= self._fused_min

    def _owns_axis(self, q: int, columns: Mapping[int, int]) -> bool:
        """Whether ``q`` reads one variable that no other qubit reads."""
        row = self._rows[q]
        return bool(row) and not row & (row - 1) and columns[row.bit_length() - 1] == 1 << q

    def _apply_fused(self, checked: Sequence[tuple[str, list[int], tuple[float, ...]]]) -> None:
        """Give the segment's qubits axes of their own, then apply its fused blocks."""
        order = list(dict.fromkeys(q for _, qs, _ in checked for q in qs))
        classical = [q for q in order if not self._rows[q]]
        if classical:  # one allocation for all of them, not one per qubit
            grown = np.zeros(self._psi.shape + (2,) * len(classical), dtype=self._dtype)
            where: tuple[Any, ...] = (Ellipsis, *(self._consts[q] for q in classical))
            grown[where] = self._psi
            self._psi = grown
            for q in classical:
                var = self._new_var()
                self._vars.append(var)
                self._rows[q] = 1 << var
                self._consts[q] = 0
                self._home[q] = var  # extends the epoch's clean layout, as _join does
        for _ in range(3):  # cleaning one qubit never spoils another; checked anyway
            for q in order:
                self._clean(q)
            columns = self._columns()
            if all(self._owns_axis(q, columns) for q in order):
                break
        else:
            for gate, qs, values in checked:
                self._apply_checked(gate, qs, values)
            return
        for q in order:
            self._flush_terms(self._rows[q].bit_length() - 1)
        # what the bookkeeping still holds on top of the tensor goes first: X^c, then U
        items: list[tuple[Sequence[int], np.ndarray]] = []
        for q in order:
            u = self._pending.pop(q, None)
            if self._consts[q]:
                u = _X if u is None else u @ _X
                self._consts[q] = 0
            if u is not None:
                items.append(((q,), u))
        blocks = self._fused_plan(items, checked)
        shape = self._psi.shape
        psi = np.ascontiguousarray(self._psi).reshape(-1)
        axis = {var: a for a, var in enumerate(self._vars)}
        bit = {q: len(shape) - 1 - axis[self._rows[q].bit_length() - 1] for q in order}
        kernels.apply_blocks(
            psi,
            [(b.matrix, [bit[q] for q in reversed(b.qubits)], b.diagonal) for b in blocks],
            kernels=self._kernels,
        )
        self._psi = psi.reshape(shape)
        self._spare = None

    def _fused_plan(
        self,
        items: list[tuple[Sequence[int], np.ndarray]],
        checked: Sequence[tuple[str, list[int], tuple[float, ...]]],
    ) -> list[fusion.Block]:
        """The fused blocks of the pending ``items``, then of the segment ``checked``.

        With nothing pending, the segment's leading Paulis on distinct qubits (a
        trajectory's errors at its cut) fold into the plan of the gates after them
        (:func:`~qmk.engines.fusion.fold_paulis`), and that plan is kept. A segment of
        the same gates next, such as the error-free run's tail after an error group's,
        reuses it instead of planning it again. Blocks name qubits, not state bits, so a
        plan holds whatever the state's layout."""
        pending = bool(items)
        lead = 0
        if not pending:
            seen: set[int] = set()
            for gate, qs, _ in checked:
                if not GATES[gate].pauli or qs[0] in seen:
                    break
                seen.add(qs[0])
                lead += 1
        body = checked[lead:] if lead else checked
        kept = self._kept_plan
        if not pending and kept is not None and len(kept[0]) == len(body) and kept[0] == body:
            blocks = kept[1]
        else:
            built = matrices([(gate, values) for gate, _, values in body])
            items += [(qs, u) for (_, qs, _), u in zip(body, built, strict=True)]
            width = self._max_fused
            blocks = fusion.plan(items, max_width=width, diagonal_width=fusion.DIAGONAL_WIDTH)
            if not pending:
                self._kept_plan = (body, blocks)
        if not lead:
            return blocks
        paulis = [(qs[0], GATES[gate].matrix()) for gate, qs, _ in checked[:lead]]
        return fusion.fold_paulis(blocks, paulis)

    # ------------------------------------------------------------------ physical work

    def _settle(self, q: int) -> None:
        """Apply ``q``'s pending non-diagonal matrix to the amplitudes, if it has one."""
        u = self._pending.pop(q, None)
        if u is None:
            return
        if not self._rows[q]:  # a classical qubit joins the tensor as U|c>
            self._join(q, u[:, self._consts[q]])
            return
        var = self._clean(q)
        if self._consts[q]:
            u = u @ _X
            self._consts[q] = 0
        self._flush_terms(var)
        self._apply_axis(self._vars.index(var), u)

    def _join(self, q: int, vector: np.ndarray) -> int:
        """Give classical ``q`` a new last axis holding the one-qubit state ``vector``."""
        self._psi = np.multiply.outer(self._psi, vector.astype(self._dtype))
        var = self._new_var()
        self._vars.append(var)
        self._rows[q] = 1 << var
        self._consts[q] = 0
        self._home[q] = var  # extends the epoch's clean layout, if there is one
        return var

    def _apply_axis(self, axis: int, u: np.ndarray) -> None:
        """``u`` on one tensor axis, written into the working copy, which becomes the state.

        Chunked elementwise products, so temporaries stay in cache and no BLAS thread
        pool is involved: small gemms in a busy pool are far slower (``docs/engines.md``).
        A real ``u`` (``h``, ``ry``, ...) works on the real and imaginary parts at once.
        """
        psi = self._psi
        left, right = 1 << axis, 1 << (psi.ndim - axis - 1)
        out = self._spare
        if out is None or out.shape != psi.shape:
            out = np.empty_like(psi)
        if right >= 16 and not u.imag.any():
            real = psi.real.dtype
            src = psi.view(real).reshape(left, 2, 2 * right)
            dst = out.view(real).reshape(left, 2, 2 * right)
            coefficients = [real.type(v) for v in u.real.flat]
            width = 2 * right
        else:
            src, dst = psi.reshape(left, 2, right), out.reshape(left, 2, right)
            coefficients = [self._dtype.type(v) for v in u.flat]
            width = right
        u00, u01, u10, u11 = coefficients
        rows, cols = max(1, _CHUNK // width), min(width, _CHUNK)
        # a short stride: one long strided run per offset (r, r + 1) instead of short rows
        short = width < 16
        cuts = [slice(r, r + 1) for r in range(width)] if short else None
        scratch = np.empty((min(rows, left), 1 if short else cols), dtype=src.dtype)
        for lo in range(0, left, rows):
            at = slice(lo, lo + rows)
            for cut in cuts or [slice(c, c + cols) for c in range(0, width, cols)]:
                a, b = src[at, 0, cut], src[at, 1, cut]
                oa, ob = dst[at, 0, cut], dst[at, 1, cut]
                np.multiply(a, u00, out=oa)
                oa += np.multiply(b, u01, out=scratch)
                np.multiply(a, u10, out=ob)
                ob += np.multiply(b, u11, out=scratch)
        self._psi, self._spare = out, psi

    def _view(self, axes: Sequence[int]) -> tuple[np.ndarray, list[int]]:
        """The amplitudes reshaped so that each of ``axes`` is a dimension of its own."""
        shape: list[int] = []
        where: dict[int, int] = {}
        previous = -1
        for axis in sorted(axes):
            shape.append(1 << (axis - previous - 1))
            where[axis] = len(shape)
            shape.append(2)
            previous = axis
        shape.append(1 << (self._psi.ndim - previous - 1))
        return self._psi.reshape(shape), [where[axis] for axis in axes]

    def _swap_slices(self, view: np.ndarray, first: dict[int, int], second: dict[int, int]) -> None:
        """Exchange two equal-shaped slices of ``view``, a cache-sized block at a time."""
        one = view[tuple(first.get(d, slice(None)) for d in range(view.ndim))]
        two = view[tuple(second.get(d, slice(None)) for d in range(view.ndim))]
        scratch = np.empty(_CHUNK, dtype=self._dtype)
        for block in _blocks(one.shape):
            held = scratch[: one[block].size].reshape(one[block].shape)
            held[...] = one[block]
            one[block] = two[block]
            two[block] = held

    def _new_var(self) -> int:
        if self._free_vars:
            return heapq.heappop(self._free_vars)
        self._next_var += 1
        return self._next_var - 1

    def _columns(self) -> dict[int, int]:
        """For each variable, the bitmask of qubits that read it."""
        columns = dict.fromkeys(self._vars, 0)
        for q, row in self._rows.items():
            for var in _bits(row):
                columns[var] |= 1 << q
        return columns

    def _pcx(self, control: int, target: int) -> None:
        """Change variables: ``x_target += x_control`` (a cx on the tensor axes).

        The state is unchanged: every form that read ``x_target`` now also reads
        ``x_control``.
        """
        view, (dc, dt) = self._view([self._vars.index(control), self._vars.index(target)])
        self._swap_slices(view, {dc: 1, dt: 0}, {dc: 1, dt: 1})
        tbit, cbit = 1 << target, 1 << control
        for q, row in self._rows.items():
            if row & tbit:
                self._rows[q] = row ^ cbit
        hits = [(mask, theta) for mask, theta in self._terms.items() if mask & tbit]
        for mask, _ in hits:
            del self._terms[mask]
        for mask, theta in hits:
            self._add_term(mask ^ cbit, theta)

    @staticmethod
    def _plan_single(
        columns: dict[int, int], vars_: list[int], keep: int | None = None
    ) -> list[tuple[int, int]]:
        """Changes ``x_y += x_x`` that leave one of ``vars_`` (``keep``, if given).

        Each change drops one variable from the row; of those, take the one that
        shortens the other rows most (``columns`` is updated as it goes), so that pending
        ``cx`` chains unwind in about as many passes as they had gates.
        """
        left = set(vars_)
        plan = []
        while len(left) > 1:
            _, control, target = min(
                (columns[y].bit_count() - 2 * (columns[x] & columns[y]).bit_count(), x, y)
                for y in left
                for x in left
                if x not in (y, keep)
            )
            plan.append((control, target))
            columns[control] ^= columns[target]
            left.discard(control)
        return plan

    def _single(self, q: int) -> int:
        """Change variables so that ``q`` reads one variable; return it."""
        vars_ = _bits(self._rows[q])
        if len(vars_) > 1:
            if self._log is not None:
                self._unwind()
            else:
                for control, target in self._plan_single(self._columns(), vars_):
                    self._pcx(control, target)
                self._new_epoch()
        return _bits(self._rows[q])[0]

    def _clean(self, q: int) -> int:
        """Change variables so that ``q`` alone reads one variable; return it.

        A classical qubit joins the tensor; a qubit whose value the others determine
        (a copy, as in a GHZ state) gets a new variable that copies it. Otherwise each
        variable of ``q``'s row is tried as the one it keeps, and the plan with the
        fewest passes over the state wins.
        """
        if not self._rows[q]:
            return self._join(q, np.eye(2)[self._consts[q]])
        vars_ = _bits(self._rows[q])
        columns = self._columns()
        if len(vars_) == 1 and columns[vars_[0]] == 1 << q:
            return vars_[0]
        if self._log is not None:
            self._unwind()
            return self._rows[q].bit_length() - 1
        best: tuple[int, list[tuple[int, int]], int, list[int] | None] | None = None
        for keep in vars_:
            after = dict(columns)
            plan = self._plan_single(after, vars_, keep)
            chosen = self._solve(after, after[keep] & ~(1 << q), exclude=keep)
            cost = len(plan) + (2 if chosen is None else len(chosen))
            if best is None or cost < best[0]:
                best = (cost, plan, keep, chosen)
        assert best is not None
        _, plan, var, chosen = best
        for control, target in plan:
            self._pcx(control, target)
        if chosen is None:  # q is a copy: give it a variable of its own
            var = self._expand(var)
            self._rows[q] = 1 << var
        for other in chosen or ():
            self._pcx(var, other)
        self._new_epoch()
        return var

    def _unwind(self) -> None:
        """Replay the epoch's logged cx gates on the variables: every qubit is clean."""
        assert self._log is not None
        for control, target in self._log:
            self._pcx(control, target)
        self._log = []
        self._home = {q: row.bit_length() - 1 for q, row in self._rows.items() if row}

    def _new_epoch(self) -> None:
        """Start an epoch if every qubit now reads a variable of its own."""
        seen = 0
        for row in self._rows.values():
            if row & (row - 1) or row & seen:
                return
            seen |= row
        self._log = []
        self._home = {q: row.bit_length() - 1 for q, row in self._rows.items() if row}

    @staticmethod
    def _solve(columns: dict[int, int], target: int, *, exclude: int) -> list[int] | None:
        """Variables whose columns xor to ``target``, or None when none do.

        Each variable found costs a pass over the state, so combinations of up to three
        are searched first (pairs by a table); GF(2) elimination finds any other.
        """
        if not target:
            return []
        others = [(var, column) for var, column in columns.items() if var != exclude]
        pairs: dict[int, tuple[int, int]] = {}
        for i, (var, column) in enumerate(others):
            if column == target:
                return [var]
            for other, other_column in others[i + 1 :]:
                pairs.setdefault(column ^ other_column, (var, other))
        if target in pairs:
            return list(pairs[target])
        for var, column in others:
            pair = pairs.get(target ^ column)
            if pair is not None and var not in pair:
                return [var, *pair]
        basis: dict[int, tuple[int, int]] = {}
        for var, column in columns.items():
            if var == exclude:
                continue
            combo = 1 << var
            while column:
                top = column.bit_length() - 1
                if top not in basis:
                    basis[top] = (column, combo)
                    break
                column ^= basis[top][0]
                combo ^= basis[top][1]
        combo = 0
        while target:
            top = target.bit_length() - 1
            if top not in basis:
                return None
            target ^= basis[top][0]
            combo ^= basis[top][1]
        return _bits(combo)

    def _expand(self, var: int) -> int:
        """A new last axis that copies variable ``var``; returns the new variable."""
        psi = self._psi
        axis = self._vars.index(var)
        left, right = 1 << axis, 1 << (psi.ndim - axis - 1)
        grown = np.zeros((*psi.shape, 2), dtype=self._dtype)
        view = grown.reshape(left, 2, right, 2)
        old = psi.reshape(left, 2, right)
        view[:, 0, :, 0] = old[:, 0, :]
        view[:, 1, :, 1] = old[:, 1, :]
        self._psi = grown
        new = self._new_var()
        self._vars.append(new)
        return new

    def _flush_terms(self, var: int) -> None:
        """Apply every pending phase that involves ``var``, in one pass over half the state.

        ``theta * (x_var xor p)`` is ``theta * p`` (left pending) times, where
        ``x_var = 1``, ``exp(i theta (1 - 2 p))``; the second factors of all terms
        multiply into one tensor over the other variables they read.
        """
        bit = 1 << var
        hits = [(mask, theta) for mask, theta in self._terms.items() if mask & bit]
        if not hits:
            return
        total = 0.0
        support = 0
        singles: dict[int, float] = {}
        multis: list[tuple[int, float]] = []
        for mask, theta in hits:
            del self._terms[mask]
            total += theta
            rest = mask ^ bit
            support |= rest
            if rest and not rest & (rest - 1):
                v = rest.bit_length() - 1
                singles[v] = singles.get(v, 0.0) - 2 * theta
            elif rest:
                multis.append((rest, -2 * theta))
        for mask, theta in hits:
            self._add_term(mask ^ bit, theta)
        # the phase tensor over the support variables, in axis order
        order = [v for v in self._vars if support >> v & 1]
        phase = np.asarray(cmath.exp(1j * total))
        for v in order:
            angle = singles.get(v)
            factor = (1.0, cmath.exp(1j * angle)) if angle is not None else (1.0, 1.0)
            phase = np.multiply.outer(phase, np.asarray(factor))
        for rest, angle in multis:
            parity = np.zeros((1,) * len(order), dtype=np.int8)
            for i, v in enumerate(order):
                if rest >> v & 1:
                    shape = [1] * len(order)
                    shape[i] = 2
                    parity = parity ^ np.arange(2, dtype=np.int8).reshape(shape)
            phase = phase * np.exp(1j * angle * parity)
        # runs of adjacent axes of one kind (the variable, the support, the rest)
        runs: list[list[Any]] = []
        for v in self._vars:
            kind = "var" if v == var else ("support" if support >> v & 1 else "rest")
            if runs and runs[-1][0] == kind and kind != "var":
                runs[-1][1] += 1
            else:
                runs.append([kind, 1])
        view = self._psi.reshape([1 << length for _, length in runs])
        # (the Ellipsis keeps a view even when every index is an integer)
        where = (*(1 if kind == "var" else slice(None) for kind, _ in runs), ...)
        half = view[where]
        shape = [1 << length if kind == "support" else 1 for kind, length in runs if kind != "var"]
        half *= phase.astype(self._dtype).reshape(shape)

    def _materialize(self) -> None:
        """Apply everything pending: afterwards each tensor axis is one qubit's, as is."""
        for q in list(self._pending):
            self._settle(q)
        for q in list(self._rows):
            if self._rows[q]:
                var = self._clean(q)
                if self._consts[q]:
                    self._flush_terms(var)
                    self._apply_axis(self._vars.index(var), _X)
                    self._consts[q] = 0
        for var in list(self._vars):
            self._flush_terms(var)

    # ------------------------------------------------------------------ measurement

    def _z_distribution(self, q: int) -> tuple[float, float]:
        """``(P(0), P(1))`` of ``q`` in Z; afterwards ``q`` reads at most one variable."""
        self._settle(q)
        if not self._rows[q]:
            return (0.0, 1.0) if self._consts[q] else (1.0, 0.0)
        var = self._single(q)
        s0, s1 = self._axis_weights(self._vars.index(var))
        total = s0 + s1
        p0, p1 = s0 / total, s1 / total
        return (p1, p0) if self._consts[q] else (p0, p1)

    def _axis_weights(self, axis: int) -> tuple[float, float]:
        psi = self._psi
        left, right = 1 << axis, 1 << (psi.ndim - axis - 1)
        real = psi.view(psi.real.dtype).reshape(left, 2, 2 * right)
        weights = np.einsum("ijk,ijk->j", real, real, dtype=np.float64)
        return float(weights[0]), float(weights[1])

    def _measure_z(self, q: int) -> int:
        p1 = self._z_distribution(q)[1]
        outcome = int(self._rng.random() < p1)
        self._collapse_z(q, outcome)
        return outcome

    def _collapse_z(self, q: int, outcome: int) -> None:
        """Project ``q`` (reading at most one variable) onto ``outcome``; drop its variable."""
        row = self._rows[q]
        if not row:
            return
        var = row.bit_length() - 1
        value = outcome ^ self._consts[q]
        axis = self._vars.index(var)
        weight = self._axis_weights(axis)[value]
        psi = self._psi
        left, right = 1 << axis, 1 << (psi.ndim - axis - 1)
        kept = psi.reshape(left, 2, right)[:, value, :] * (1 / math.sqrt(weight))
        self._psi = kept.reshape(psi.shape[:-1])
        self._spare = None
        del self._vars[axis]
        heapq.heappush(self._free_vars, var)
        self._home.pop(q, None)
        if self._log and any(var in entry for entry in self._log):
            self._log = None  # the logged gates need the dropped variable
        bit = 1 << var
        for other, other_row in self._rows.items():
            if other_row & bit:
                self._rows[other] = other_row ^ bit
                self._consts[other] ^= value
        hits = [(mask, theta) for mask, theta in self._terms.items() if mask & bit]
        for mask, _ in hits:
            del self._terms[mask]
        for mask, theta in hits:
            if value:
                self._gphase += theta
            self._add_term(mask ^ bit, -theta if value else theta)
        if self._log is None:
            self._new_epoch()

    # ------------------------------------------------------------------ sampling

    def _reads_every_axis(self, qs: Sequence[int]) -> bool:
        """Whether the qubits ``qs`` read, together, every variable of the tensor."""
        need = 0
        for q in qs:
            need |= self._rows[q]
        return all(need >> v & 1 for v in self._vars)

    def _marginal(self, qs: Sequence[int]) -> tuple[list[int], np.ndarray]:
        """The variables ``qs`` read (in axis order) and their joint distribution
        (flat, the first variable the most significant bit; float32 for a complex64 state
        read whole, which :meth:`_draw` sums in float64 without a float64 copy)."""
        need = 0
        for q in qs:
            need |= self._rows[q]
        axes = [axis for axis, v in enumerate(self._vars) if need >> v & 1]
        if not axes:
            return [], np.ones(1)
        probs = np.abs(self._psi)
        np.square(probs, out=probs)
        others = tuple(a for a in range(self._psi.ndim) if a not in axes)
        if others:
            probs = probs.sum(axis=others, dtype=np.float64)
        return [self._vars[a] for a in axes], probs.reshape(-1)

    def _readout(self, q: int, variables: Sequence[int], index: np.ndarray) -> np.ndarray:
        """``q``'s Z value for each outcome index over ``variables``."""
        bits = np.full(index.shape, self._consts[q], dtype=np.int64)
        last = len(variables) - 1
        for var in _bits(self._rows[q]):
            bits ^= (index >> (last - variables.index(var))) & 1
        return bits

    def _draw(self, values: np.ndarray, shots: int, amplitudes: bool = False) -> np.ndarray:
        """``shots`` indices drawn from ``values`` with this engine's RNG
        (:func:`~qmk.engines.sampling.draw_indices`)."""
        return draw_indices(self._rng, values, shots, amplitudes=amplitudes)
