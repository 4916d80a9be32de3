"""QMK's matrix product state engine: many qubits at low entanglement, exact or refused.

:class:`MPSEngine` holds the state as a matrix product state on numpy. That is one
tensor ``(left, 2, right)`` per live qubit, in mixed canonical form around an
orthogonality centre that it moves with QR sweeps. A two- or three-qubit gate contracts
the sites it touches, applies the gate and splits the block back with SVDs (numpy's
LAPACK). A qubit that is not next to the others is first brought there by swaps. It
stays where it went: the engine keeps a qubit -> site map. Singular values at or below
:data:`ZERO_SINGULAR` of a bond's largest are numerical zeros and dropped; past that the
bond is kept whole up to ``max_bond``. Where a bond would need more, the engine keeps
the ``max_bond`` largest Schmidt values only while the product of the kept weights (the
fidelity of the truncated state with the exact one, to first order) stays at or above
``min_fidelity``. Below it, the gate is refused with ``QE114 bond-limit``, naming the
bond the state needs, and the state is left as it was. :attr:`MPSEngine.fidelity` is
that product (1.0: every amplitude is exact to rounding).

Single-qubit gates wait on their qubit as one 2x2 matrix and are folded into the next
gate that touches it, or into the site before any read of the state. Measurement,
collapse and reset move the centre to the qubit and project its site; freeing a qubit
measures it and folds its site into a neighbour. :meth:`MPSEngine.sample` draws shots
exactly, all at once. It moves the centre to the first qubit asked for. Then it draws
each site's outcome given the ones before, for every shot in one matrix product per site.

>>> engine = MPSEngine(seed=3)
>>> qs = [engine.allocate() for _ in range(80)]
>>> engine.apply("h", [qs[0]])
>>> for c, t in zip(qs, qs[1:]): engine.apply("cx", [c, t])
>>> sorted(set(engine.sample(qs, 50).sum(axis=1).tolist())), max(engine.bond_dimensions)
([0, 80], 2)
>>> engine.probability(qs[40]), engine.fidelity
(0.5, 1.0)
>>> small = MPSEngine(seed=1, max_bond=2)
>>> a, b, c, d = (small.allocate() for _ in range(4))
>>> for q in (a, b, c, d): small.apply("h", [q])
>>> for x, y in ((a, b), (b, c), (c, d)): small.apply("cz", [x, y])  # a chain: bonds of 2
>>> small.apply("cz", [d, a])  # closing the ring needs 4 somewhere on a line
Traceback (most recent call last):
...
qmk.engines.base.EngineError: QE114 bond-limit: the state needs bond dimension 4 ...
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import heapq
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from qmk import defaults
from qmk.engines.base import (
    IMPOSSIBLE,
    CheckedGate,
    EngineError,
    GateEngine,
    check_basis,
    check_outcome,
    check_shots,
    check_snapshot,
    draw_pauli,
    generator_at,
    outcome_impossible,
    rng_state,
)
from qmk.engines.gates import BASES, GATES, TO_Z
from qmk.engines.registry import max_qubits as registry_max_qubits

#: A bond's largest bond dimension unless the engine is given another ``max_bond``:
#: a site of 2 x 1024 x 1024 complex128 is 32 MiB and its SVD seconds on 2 cores.
DEFAULT_MAX_BOND = 1024
#: The least fidelity a truncation may leave (the product of kept Schmidt weights).
DEFAULT_MIN_FIDELITY = 1.0 - 1e-9
#: Singular values at or below this fraction of a bond's largest are numerical zeros.
ZERO_SINGULAR = 1e-14
#: The most qubits :meth:`MPSEngine.state_vector` writes out as amplitudes.
DENSE_QUBITS = 26

_SEED_BOUND = 2**63
_SWAP = GATES["swap"].matrix()
_IDENTITY = np.eye(2, dtype=np.complex128)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class MPSSnapshot:
    """An :class:`MPSEngine`'s whole state (its arrays are shared: the engine never
    writes into an array it made; each update makes new ones)."""

    sites: tuple[np.ndarray, ...]
    order: tuple[int, ...]
    center: int
    fidelity: float
    pool: tuple[int, ...]
    next_index: int
    rng: Mapping[str, Any]


def _projector(outcome: int, basis: str) -> np.ndarray:
    """The projector onto ``outcome`` (0: the +1 eigenstate) of ``basis``."""
    to_z = np.eye(2, dtype=np.complex128)
    for gate in TO_Z[basis]:
        to_z = GATES[gate].matrix() @ to_z
    keep = np.zeros((2, 2), dtype=np.complex128)
    keep[outcome, outcome] = 1.0
    return to_z.conj().T @ keep @ to_z


_PROJECTORS: Mapping[tuple[int, str], np.ndarray] = {
    (outcome, basis): _projector(outcome, basis) for outcome in (0, 1) for basis in BASES
}


def _permute(matrix: np.ndarray, perm: Sequence[int]) -> np.ndarray:
    """``matrix`` (a gate on ``k`` qubits) rewritten for sites in the order ``perm``:
    site ``t`` of the block holds the gate's qubit ``perm[t]``."""
    k = len(perm)
    if list(perm) == list(range(k)):
        return matrix
    axes = [*perm, *(k + p for p in perm)]
    return matrix.reshape((2,) * (2 * k)).transpose(axes).reshape(2**k, 2**k)


@functools.cache
def _blas_threads() -> tuple[Callable[[], int], Callable[[int], None]] | None:
    """The getter and setter of the thread count of the OpenBLAS this process loaded
    (numpy's), found in ``/proc/self/maps``; None where there is none (another BLAS, or
    no ``/proc``)."""
    try:
        maps = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:  # pragma: no cover - not Linux
        return None
    paths = sorted({line.split()[-1] for line in maps.splitlines() if "openblas" in line.lower()})
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:  # pragma: no cover - a mapping that is not a library
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""), ("openblas", "")):
            get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
                return get, put
    return None  # pragma: no cover - numpy without OpenBLAS


@contextlib.contextmanager
def blas_threads(count: int | None) -> Iterator[None]:
    """Run the body with OpenBLAS on ``count`` threads (None: as it is), then put the
    count back.

    The engine's products are small: a site holds two bond-by-bond matrices. OpenBLAS
    splits even a small product across threads. On a busy machine that costs far more
    than the product itself (``docs/engines.md`` has the figures)."""
    found = _blas_threads() if count is not None else None
    if found is None or count is None:
        yield
        return
    get, put = found
    before = int(get())
    if before == count:
        yield
        return
    put(count)
    try:
        yield
    finally:
        put(before)


def _svd(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        u, s, vh = np.linalg.svd(matrix, full_matrices=False)
    except np.linalg.LinAlgError:  # pragma: no cover - gesdd rarely fails; gesvd does not
        import scipy.linalg

        u, s, vh = scipy.linalg.svd(matrix, full_matrices=False, lapack_driver="gesvd")
    return u, s, vh


class MPSEngine(GateEngine):
    """A matrix product state on numpy (see the module docstring).

    Every method reads or changes one chain of sites, its qubit map and its
    orthogonality centre together (a swap moves a qubit and the centre; a read moves the
    centre and folds waiting gates).

    Args:
        seed: seeds the engine's RNG (measurements, channels, samples).
        max_bond: the largest bond dimension kept (1 or more).
        min_fidelity: the least fidelity truncation past ``max_bond`` may leave, in
            (0, 1]; 1.0 refuses every truncation.
        max_qubits: the most qubits live at once (default: the registry's figure).
        threads: OpenBLAS threads while the engine computes (:func:`blas_threads`; the
            count is put back after each call), or None to leave numpy's setting.

    Raises:
        EngineError: ``QE105 engine-misuse`` for a bad option.
    """

    name: ClassVar[str] = defaults.MPS

    def __init__(
        self,
        *,
        seed: int | None = None,
        max_bond: int = DEFAULT_MAX_BOND,
        min_fidelity: float = DEFAULT_MIN_FIDELITY,
        max_qubits: int | None = None,
        threads: int | None = 1,
    ) -> None:
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little")
        bad_bond = isinstance(max_bond, bool) or not isinstance(max_bond, (int, np.integer))
        if bad_bond or max_bond < 1:
            raise EngineError.of(
                "engine-misuse", f"max_bond is a whole number of 1 or more, not {max_bond!r}"
            )
        try:
            floor = float(min_fidelity)
        except (TypeError, ValueError):
            floor = math.nan
        if not 0.0 < floor <= 1.0:
            raise EngineError.of(
                "engine-misuse", f"min_fidelity lies in (0, 1], not {min_fidelity!r}"
            )
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise EngineError.of(
                "engine-misuse", f"threads is None or a whole number of 1 or more, not {threads!r}"
            )
        self._threads = threads
        self._max_bond = int(max_bond)
        self._min_fidelity = floor
        self._max_qubits = registry_max_qubits(self.name) if max_qubits is None else max_qubits
        self._rng = np.random.default_rng(seed)
        self._sites: list[np.ndarray] = []
        self._order: list[int] = []  # qubit at each site
        self._pos: dict[int, int] = {}  # site of each qubit
        self._pending: dict[int, np.ndarray] = {}  # 2x2 gates waiting on a qubit
        self._center = 0
        self._fidelity = 1.0
        self._pool: list[int] = []
        self._next_index = 0

    # ------------------------------------------------------------------ what it is

    @property
    def max_qubits(self) -> int:
        return self._max_qubits

    @property
    def num_qubits(self) -> int:
        return len(self._order)

    @property
    def max_bond(self) -> int:
        """The largest bond dimension this engine keeps."""
        return self._max_bond

    @property
    def fidelity(self) -> float:
        """The product of the Schmidt weight every truncation kept (1.0: none truncated)."""
        return self._fidelity

    @property
    def bond_dimensions(self) -> list[int]:
        """The dimension of each bond between neighbouring sites, left to right."""
        return [int(site.shape[2]) for site in self._sites[:-1]]

    # ------------------------------------------------------------------ qubits

    def allocate(self) -> int:
        """A fresh qubit in ``|0>`` at a new site on the right (reusing the lowest freed
        index).

        Raises:
            EngineError: ``QE102 engine-capacity`` when :attr:`max_qubits` are live.
        """
        if len(self._order) >= self._max_qubits:
            raise EngineError.of(
                "engine-capacity",
                f"the {self.name} engine holds at most {self._max_qubits} qubits here",
                max_qubits=self._max_qubits,
            )
        qubit = heapq.heappop(self._pool) if self._pool else self._next_index
        if qubit == self._next_index:
            self._next_index += 1
        site = np.zeros((1, 2, 1), dtype=np.complex128)
        site[0, 0, 0] = 1.0
        self._pos[qubit] = len(self._sites)
        self._order.append(qubit)
        self._sites.append(site)  # a product site: the centre stays where it is
        return qubit

    def free(self, qubit: int) -> None:
        """Measure ``qubit`` in Z (one draw) and forget it: its site, projected, is folded
        into a neighbour, and its index may be reused."""
        self._check((qubit,))
        outcome = self._measure(qubit, "Z")
        k = self._pos[qubit]
        fold = self._sites[k][:, outcome, :]  # (left, right): the centre, normalised
        del self._sites[k]
        del self._order[k]
        if k < len(self._sites):  # into the site on the right, which holds the centre now
            right = self._sites[k]
            self._sites[k] = (fold @ right.reshape(right.shape[0], -1)).reshape(
                fold.shape[0], 2, right.shape[2]
            )
            self._center = k
        elif k > 0:
            left = self._sites[k - 1]
            self._sites[k - 1] = (left.reshape(-1, left.shape[2]) @ fold).reshape(
                left.shape[0], 2, fold.shape[1]
            )
            self._center = k - 1
        else:
            self._center = 0
        del self._pos[qubit]
        for j in range(k, len(self._order)):
            self._pos[self._order[j]] = j
        heapq.heappush(self._pool, qubit)

    # ------------------------------------------------------------------ gates

    def _check_qubit(self, qubit: Any) -> int:
        self._check([qubit])
        return int(qubit)

    def _apply_gate(self, gate: str, qubits: list[int], params: tuple[float, ...]) -> None:
        """Apply one checked gate.

        Raises:
            EngineError: ``QE114 bond-limit`` when it would truncate below
                ``min_fidelity`` (the state is left as it was).
        """
        self._apply(gate, tuple(qubits), params)

    def _apply_gates(self, gates: Sequence[CheckedGate]) -> None:
        """A checked segment; a ``QE114`` refusal on the way leaves the state as it was
        before the first gate."""
        saved, waiting = self._save(), dict(self._pending)
        try:
            with blas_threads(self._threads):
                for gate, qs, params in gates:
                    self._apply(gate, tuple(qs), params)
        except EngineError:
            self._load(saved)
            self._pending = waiting
            raise

    def _apply(self, gate: str, qs: tuple[int, ...], params: Sequence[float]) -> None:
        if gate == "i":
            return
        matrix = GATES[gate].matrix(tuple(float(p) for p in params))
        if len(qs) == 1:
            earlier = self._pending.get(qs[0])
            self._pending[qs[0]] = matrix if earlier is None else matrix @ earlier
            return
        waiting = [self._pending.get(q) for q in qs]
        if any(m is not None for m in waiting):  # the gates waiting on these qubits go first
            before = _IDENTITY if waiting[0] is None else waiting[0]
            for m in waiting[1:]:
                other = _IDENTITY if m is None else m
                size = before.shape[0] * 2
                before = (before[:, None, :, None] * other[None, :, None, :]).reshape(size, size)
            matrix = matrix @ before
        self._multi(matrix, qs)  # a QE114 refusal leaves them waiting
        for q in qs:
            self._pending.pop(q, None)

    def _multi(self, matrix: np.ndarray, qs: tuple[int, ...]) -> None:
        """Apply a gate on two or three qubits: bring their sites together, then update."""
        sites = sorted(self._pos[q] for q in qs)
        anchor = sites[0]
        with blas_threads(self._threads):
            for offset, site in enumerate(sites[1:], start=1):
                self._bring(site, anchor + offset)
            perm = [qs.index(self._order[anchor + t]) for t in range(len(qs))]
            self._update(anchor, _permute(matrix, perm))

    def _bring(self, site: int, target: int) -> None:
        """Move the qubit at ``site`` down to ``target`` by swaps of neighbours."""
        for k in range(site - 1, target - 1, -1):
            self._update(k, _SWAP, center_left=True)
            self._order[k], self._order[k + 1] = self._order[k + 1], self._order[k]
            self._pos[self._order[k]] = k
            self._pos[self._order[k + 1]] = k + 1

    def _update(self, first: int, matrix: np.ndarray, *, center_left: bool = False) -> None:
        """Apply ``matrix`` to the block of sites from ``first`` (2 or 3 of them) and split
        it back, leaving the centre at its last site (its first with ``center_left``).

        Raises:
            EngineError: ``QE114 bond-limit``, before any site changes.
        """
        width = int(matrix.shape[0]).bit_length() - 1
        last = first + width - 1
        if not first <= self._center <= last:
            self._move_center(first if self._center < first else last)
        block = self._sites[first]
        left = block.shape[0]
        for k in range(first + 1, last + 1):
            site = self._sites[k]
            block = block.reshape(-1, site.shape[0]) @ site.reshape(site.shape[0], -1)
        right = self._sites[last].shape[2]
        theta = np.matmul(matrix, block.reshape(left, 2**width, right))
        fidelity = self._fidelity
        new: list[np.ndarray] = []
        rest = theta.reshape(left * 2, -1)
        if center_left and width == 2:
            u, s, vh = _svd(rest)
            keep, s, fidelity = self._truncate(s, fidelity, first)
            new = [
                (u[:, :keep] * s[None, :]).reshape(left, 2, keep),
                vh[:keep].reshape(keep, 2, right),
            ]
            center = first
        else:
            bond = left
            for k in range(first, last):
                u, s, vh = _svd(rest)
                keep, s, fidelity = self._truncate(s, fidelity, k)
                new.append(u[:, :keep].reshape(bond, 2, keep))
                rest = s[:, None] * vh[:keep]
                bond = keep
                if k + 1 < last:
                    rest = rest.reshape(keep * 2, -1)
            new.append(rest.reshape(bond, 2, right))
            center = last
        self._sites[first : last + 1] = new
        self._center = center
        self._fidelity = fidelity

    def _truncate(self, s: np.ndarray, fidelity: float, site: int) -> tuple[int, np.ndarray, float]:
        """How many singular values of the bond right of ``site`` to keep, those values
        (renormalised where truncated) and the fidelity after."""
        largest = float(s[0]) if s.size else 0.0
        keep = max(int(np.count_nonzero(s > ZERO_SINGULAR * largest)), 1)
        if keep <= self._max_bond:
            return keep, s[:keep], fidelity
        weights = s * s
        total = float(weights.sum())
        kept = float(weights[: self._max_bond].sum())
        after = fidelity * kept / total
        if after < self._min_fidelity:
            raise EngineError.of(
                "bond-limit",
                f"the state needs bond dimension {keep} between sites {site} and {site + 1}, "
                f"above max_bond={self._max_bond}; truncating there would leave fidelity "
                f"{after:.12g}, below min_fidelity={self._min_fidelity:.12g}",
                needed=keep,
                max_bond=self._max_bond,
            )
        values = s[: self._max_bond] * math.sqrt(total / kept)
        return self._max_bond, values, after

    def _move_center(self, target: int) -> None:
        """Move the orthogonality centre to site ``target`` (QR sweeps)."""
        sites = self._sites
        while self._center < target:
            k = self._center
            site = sites[k]
            q, r = np.linalg.qr(site.reshape(-1, site.shape[2]))
            sites[k] = q.reshape(site.shape[0], 2, q.shape[1])
            nxt = sites[k + 1]
            sites[k + 1] = (r @ nxt.reshape(nxt.shape[0], -1)).reshape(r.shape[0], 2, nxt.shape[2])
            self._center = k + 1
        while self._center > target:
            k = self._center
            site = sites[k]
            q, r = np.linalg.qr(site.reshape(site.shape[0], -1).conj().T)
            sites[k] = q.conj().T.reshape(q.shape[1], 2, site.shape[2])
            prev = sites[k - 1]
            sites[k - 1] = (prev.reshape(-1, prev.shape[2]) @ r.conj().T).reshape(
                prev.shape[0], 2, r.shape[0]
            )
            self._center = k - 1

    def _settle(self, qubits: Sequence[int]) -> None:
        """Fold the gates waiting on ``qubits`` into their sites."""
        for q in qubits:
            waiting = self._pending.pop(q, None)
            if waiting is not None:
                k = self._pos[q]
                self._sites[k] = np.matmul(waiting, self._sites[k])

    # ------------------------------------------------------------------ measurement

    def _at(self, qubit: int) -> np.ndarray:
        """``qubit``'s site with the centre moved there and its waiting gate folded in."""
        self._settle((qubit,))
        k = self._pos[qubit]
        with blas_threads(self._threads):
            self._move_center(k)
        return self._sites[k]

    def _p1(self, qubit: int, basis: str) -> float:
        site = self._at(qubit)
        rho = np.einsum("lsr,ltr->st", site, site.conj())
        trace = float(rho[0, 0].real + rho[1, 1].real)
        if basis == "Z":
            expectation = float(rho[0, 0].real - rho[1, 1].real)
        elif basis == "X":
            expectation = float(2 * rho[0, 1].real)
        else:
            expectation = float(-2 * rho[0, 1].imag)
        return min(max((1 - expectation / trace) / 2, 0.0), 1.0)

    def _project(self, qubit: int, outcome: int, basis: str, chance: float) -> None:
        k = self._pos[qubit]  # the centre is here (_p1 moved it)
        projected = np.matmul(_PROJECTORS[(outcome, basis)], self._sites[k])
        self._sites[k] = projected / math.sqrt(chance)

    def _measure(self, qubit: int, basis: str) -> int:
        p1 = self._p1(qubit, basis)
        outcome = int(float(self._rng.random()) < p1)
        self._project(qubit, outcome, basis, p1 if outcome else 1.0 - p1)
        return outcome

    def probability(self, qubit: int, basis: str = "Z") -> float:
        """The probability that measuring ``qubit`` in ``basis`` gives 1."""
        self._check((qubit,))
        check_basis(basis)
        return self._p1(qubit, basis)

    def collapse(self, qubit: int, outcome: int, basis: str = "Z") -> None:
        """Project ``qubit`` onto ``outcome`` in ``basis`` and renormalise.

        Raises:
            EngineError: ``QE104 outcome-impossible`` for an outcome of probability 0.
        """
        self._check((qubit,))
        check_basis(basis)
        outcome = check_outcome(outcome)
        p1 = self._p1(qubit, basis)
        chance = p1 if outcome else 1.0 - p1
        if chance <= IMPOSSIBLE:
            raise outcome_impossible(qubit, outcome, basis, chance)
        self._project(qubit, outcome, basis, chance)

    def measure(self, qubit: int, basis: str = "Z") -> int:
        """Measure with the engine's RNG; the qubit stays, collapsed."""
        self._check((qubit,))
        check_basis(basis)
        return self._measure(qubit, basis)

    def reset(self, qubit: int) -> None:
        """Return ``qubit`` to ``|0>``: a Z measurement (one draw), then X on a 1."""
        self._check((qubit,))
        if self._measure(qubit, "Z"):
            k = self._pos[qubit]
            self._sites[k] = np.matmul(GATES["x"].matrix(), self._sites[k])

    def apply_pauli_channel(self, qubit: int, px: float, py: float, pz: float) -> str:
        """Apply X, Y or Z with these probabilities (one draw); returns the Pauli or "I"."""
        self._check((qubit,))
        pauli = draw_pauli(self._rng, px, py, pz)
        if pauli != "I":
            self._apply(pauli.lower(), (qubit,), ())
        return pauli

    def sample(self, qubits: Sequence[int], shots: int) -> np.ndarray:
        """``shots`` Z outcomes of ``qubits`` (uint8, ``(shots, len(qubits))``), drawn
        exactly from the state without changing it: site by site from the first qubit
        asked for to the last, each outcome given those before, every shot at once.

        Raises:
            EngineError: ``QE105 engine-misuse`` for qubits not live or repeated, or a
                negative count.
        """
        qs = [int(q) for q in qubits]
        self._check(qs)
        if len(set(qs)) != len(qs):
            raise EngineError.of("engine-misuse", f"sample of repeated qubits {qs}")
        shots = check_shots(shots)
        out = np.zeros((shots, len(qs)), dtype=np.uint8)
        if not qs or not shots:
            return out
        positions = [self._pos[q] for q in qs]
        with blas_threads(self._threads):
            bits = self._draw(min(positions), max(positions), shots)
        out[:] = bits[:, [p - min(positions) for p in positions]]
        return out

    def _draw(self, lo: int, hi: int, shots: int) -> np.ndarray:
        """``shots`` exact draws of the Z outcomes of sites ``lo`` to ``hi`` (columns)."""
        self._settle(self._order[lo : hi + 1])
        self._move_center(lo)
        first = self._sites[lo]
        # the sites left of the centre are orthonormal: the reduced state right of them is
        # a mixture over the left bond with these weights
        weights = np.einsum("lsr,lsr->l", first, first.conj()).real
        cumulative = np.cumsum(weights / weights.sum())
        start = np.searchsorted(cumulative, self._rng.random(shots), side="right")
        env = np.zeros((shots, first.shape[0]), dtype=np.complex128)
        rows = np.arange(shots)
        env[rows, np.minimum(start, len(weights) - 1)] = 1.0
        out = np.empty((shots, hi - lo + 1), dtype=np.uint8)
        for k in range(lo, hi + 1):
            site = self._sites[k]
            branch = (env @ site.reshape(site.shape[0], -1)).reshape(shots, 2, site.shape[2])
            norms = np.einsum("nsr,nsr->ns", branch, branch.conj()).real
            total = norms[:, 0] + norms[:, 1]
            bits = (self._rng.random(shots) * total < norms[:, 1]).astype(np.uint8)
            env = branch[rows, bits] / np.sqrt(np.where(bits, norms[:, 1], norms[:, 0]))[:, None]
            out[:, k - lo] = bits
        return out

    # ------------------------------------------------------------------ whole state

    def _save(self) -> MPSSnapshot:
        return MPSSnapshot(
            sites=tuple(self._sites),
            order=tuple(self._order),
            center=self._center,
            fidelity=self._fidelity,
            pool=tuple(self._pool),
            next_index=self._next_index,
            rng=rng_state(self._rng),
        )

    def _load(self, snapshot: MPSSnapshot) -> None:
        self._sites = list(snapshot.sites)
        self._order = list(snapshot.order)
        self._pos = {q: k for k, q in enumerate(self._order)}
        self._pending = {}
        self._center = snapshot.center
        self._fidelity = snapshot.fidelity
        self._pool = list(snapshot.pool)
        heapq.heapify(self._pool)
        self._next_index = snapshot.next_index

    def snapshot(self) -> MPSSnapshot:
        """The whole state: sites, qubit map, centre, fidelity, qubit pool and RNG."""
        self._settle(list(self._pending))
        return self._save()

    def restore(self, snapshot: Any) -> None:
        """Return to a state :meth:`snapshot` gave (any number of times)."""
        snapshot = check_snapshot(snapshot, MPSSnapshot, self.name)
        self._load(snapshot)
        self._rng = generator_at(snapshot.rng)

    @staticmethod
    def export_snapshot(snapshot: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``snapshot`` as plain data for a checkpoint: the sites as arrays, the rest JSON."""
        snapshot = check_snapshot(snapshot, MPSSnapshot, MPSEngine.name)
        meta = {
            "order": list(snapshot.order),
            "center": snapshot.center,
            "fidelity": snapshot.fidelity,
            "pool": list(snapshot.pool),
            "next_index": snapshot.next_index,
            "rng": dict(snapshot.rng),
        }
        return meta, {f"site{k}": site for k, site in enumerate(snapshot.sites)}

    @staticmethod
    def import_snapshot(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Any:
        """The snapshot :meth:`export_snapshot` wrote as ``meta`` and ``arrays``."""
        order = tuple(int(q) for q in meta["order"])
        return MPSSnapshot(
            sites=tuple(
                np.asarray(arrays[f"site{k}"], dtype=np.complex128) for k in range(len(order))
            ),
            order=order,
            center=int(meta["center"]),
            fidelity=float(meta["fidelity"]),
            pool=tuple(int(q) for q in meta["pool"]),
            next_index=int(meta["next_index"]),
            rng=dict(meta["rng"]),
        )

    def state_vector(self, qubits: Sequence[int] | None = None) -> np.ndarray:
        """The amplitudes over every live qubit, ``qubits[0]`` most significant (default:
        live qubits in increasing index order), global phase included; at most
        :data:`DENSE_QUBITS` qubits.

        Raises:
            EngineError: ``QE105`` unless ``qubits`` are the live qubits once each;
                ``QE102`` past :data:`DENSE_QUBITS`.
        """
        order = sorted(self._order) if qubits is None else [int(q) for q in qubits]
        if sorted(order) != sorted(self._order):
            raise EngineError.of(
                "engine-misuse",
                f"state_vector needs every live qubit once ({sorted(self._order)}), got {order}",
            )
        if len(order) > DENSE_QUBITS:
            raise EngineError.of(
                "engine-capacity",
                f"the {self.name} engine writes out at most {DENSE_QUBITS} qubits as "
                f"amplitudes, not {len(order)}",
            )
        self._settle(list(self._pending))
        psi = np.ones((1, 1), dtype=np.complex128)
        for site in self._sites:
            psi = (psi @ site.reshape(site.shape[0], -1)).reshape(-1, site.shape[2])
        tensor = psi.reshape((2,) * len(self._order))
        return np.transpose(tensor, [self._pos[q] for q in order]).reshape(-1).copy()

    # ------------------------------------------------------------------ checks

    def _check(self, qubits: Sequence[int]) -> None:
        for qubit in qubits:
            if isinstance(qubit, bool) or qubit not in self._pos:
                raise EngineError.of(
                    "engine-misuse",
                    f"qubit {qubit!r} is not live on this {self.name} engine (allocate() hands "
                    f"out qubits; {len(self._order)} are live)",
                    qubit=repr(qubit),
                )


__all__ = ["DEFAULT_MAX_BOND", "DEFAULT_MIN_FIDELITY", "MPSEngine", "MPSSnapshot", "blas_threads"]
