"""Analog mode (ISA 1.2): atoms under a global Rydberg drive, integrated exactly.

Public API:

- :class:`AnalogModel` -- the Hamiltonian of a register, built once. Bit ``i`` of a basis
  index is atom ``i`` (1 = Rydberg). It holds the drive operator and the diagonal terms,
  as sparse and dense arrays. :func:`model_for` builds it for a register.
- :func:`evolve` -- the state (or density matrix) after the analog program's ``Evolve`` ops.
- :func:`run_analog` -- a validated analog job run. It gives ``(bits, stats)`` as the
  emulator's backends do (bits: shots x recorded bits, -1 for a lost atom).
- :func:`blockade_pairs` -- the pairs the exact blockade reduction drops, and why.
- :func:`symmetries` and :func:`find_sector` -- the register's permutation symmetries,
  and the symmetric sector (:class:`Sector`) a noiseless evolution stays in.

The Hamiltonian (hbar = 1, time in us inside the integrator, rates in rad/us)::

    H(t) = sum_i Omega(t)/2 (cos(phi) X_i - sin(phi) Y_i)
           - Delta(t) sum_i n_i - delta_loc(t) sum_k scale_k n_{atoms[k]}
           + sum_{i<j} C6 / r_ij^6 n_i n_j

Here ``X = |g><r| + |r><g|`` and ``Y = -i|g><r| + i|r><g|``. So the drive is
``Omega/2 (e^{i phi}|g><r| + e^{-i phi}|r><g|)``, Bloqade's (and QuEra's) convention.

Integration: the waveforms are piecewise linear. So the evolution is integrated segment
by segment between their breakpoints with an 8th-order Dormand-Prince integrator
(``scipy.integrate.DOP853``, ``rtol`` 1e-10, ``atol`` 1e-12). Its right-hand side is
one pass of a compiled kernel (:mod:`qmk.devices.neutral_atom.analog_kernel`; numpy
without llvmlite). docs/neutral-atom.md gives how closely it agrees with QuTiP.

Symmetry: some permutations of the atoms keep every distance and every local detuning
(a chain's mirror image, a square's rotations). Such a permutation commutes with H(t),
and the initial state (all in |g>) is invariant. So the noiseless state stays in the
symmetric sector, with one basis state per orbit of basis states (:func:`find_sector`).
It is integrated there, a smaller basis, and expanded back before shots are drawn.
Where no symmetry holds, the model's whole basis is integrated.

The blockade reduction drops basis states with both atoms of a pair (i, j) in |r> only
where that is exact to :data:`BLOCKADE_TOLERANCE`. A dropped pair state lies an energy
``gap = V_ij - 2 max|Delta_total|`` above the states it couples to. Leaving it out shifts
their energies by at most ``Omega_max^2 / (4 gap)`` and leaks at most
``(Omega_max / gap)^2`` of population. Pairs are dropped (largest ``V_ij`` first) while
the sum over dropped pairs of ``Omega_max^2 T / (4 gap) + (Omega_max / gap)^2`` (T: the
total drive time in us) stays below the tolerance. At Aquila's spacing that bound is far
above the tolerance, so the full 2^n space is used. The reduction is for tightly packed
atoms or huge C6, where it is both exact and necessary.

Decoherence comes from the job's noise model
(:func:`qmk.devices.neutral_atom.noise.analog_noise`). It is spontaneous decay
``|r> -> |g>`` (``L = sqrt(gamma) |g><r|``) and dephasing (``L = sqrt(r) Z``). Both are
integrated as a Lindblad master equation on the density matrix. Its basis has at most
``max_states_noisy`` states, and no symmetric sector. It also starts from ``p_prep``'s
mixture (each atom in ``|r>`` with that probability).

``phase.idle`` is each atom's quasi-static detuning, uniform in
``[-phase.idle, phase.idle]`` for a shot. It is averaged over to second order
(:func:`evolve`) where its whole effect could reach :data:`BLOCKADE_TOLERANCE`. It is
left out where it cannot (:func:`detuning_bounds`), as for the shipped presets. A
phase.idle whose second-order average would leave out more is refused. Shots are drawn
from the final distribution with the job's seed. Atom loss during the drive and at
measurement, and readout flips, are then drawn classically, as the digital mode draws
them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from scipy.integrate import DOP853, solve_ivp

from qmk.arrays import distinct
from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom import analog_kernel
from qmk.devices.neutral_atom.isa import Drive, OpKind, sample
from qmk.devices.neutral_atom.noise import AnalogNoise, LindbladRates, analog_noise

if TYPE_CHECKING:
    from qmk.devices.neutral_atom.job import Job

#: The bound (see the module docstring) on what the blockade reduction may change.
BLOCKADE_TOLERANCE = 1e-7
#: The integrator's tolerances.
RTOL, ATOL = 1e-10, 1e-12
#: Squared distances this close (relative) count as equal in :func:`symmetries`.
SYMMETRY_RTOL = 1e-12
#: The most partial permutations :func:`symmetries` tries before it settles for none.
SYMMETRY_SEARCH_BUDGET = 20_000


def _drive_peaks(drives: Sequence[Drive]) -> tuple[float, float]:
    """The largest Omega and the largest |Delta| + |local| over the drives."""
    omega = max((abs(v) for d in drives for _, v in d.omega), default=0.0)
    delta = 0.0
    for d in drives:
        local = 0.0
        if d.local is not None:
            local = max(abs(v) for _, v in d.local.delta) * max(abs(s) for s in d.local.scale)
        delta = max(delta, max(abs(v) for _, v in d.delta) + local)
    return omega, delta


def interactions(points: Sequence[Sequence[float]], c6: float) -> np.ndarray:
    """``V[i, j] = C6 / r_ij^6`` (rad/us), 0 on the diagonal."""
    xyz = np.asarray(points, dtype=float)
    diff = xyz[:, None, :] - xyz[None, :, :]
    r2 = np.einsum("ijk,ijk->ij", diff, diff)
    np.fill_diagonal(r2, np.inf)
    out: np.ndarray = c6 / r2**3
    return out


def blockade_pairs(
    v: np.ndarray, drives: Sequence[Drive], total_us: float
) -> tuple[list[tuple[int, int]], float]:
    """The pairs the reduction drops, and the bound on what dropping them changes."""
    omega, delta = _drive_peaks(drives)
    n = v.shape[0]
    pairs = sorted(((v[i, j], i, j) for i in range(n) for j in range(i + 1, n)), reverse=True)
    dropped: list[tuple[int, int]] = []
    bound = 0.0
    for vij, i, j in pairs:
        gap = vij - 2 * delta
        if gap <= 0:
            break
        cost = omega**2 * total_us / (4 * gap) + (omega / gap) ** 2
        if bound + cost > BLOCKADE_TOLERANCE:
            break
        bound += cost
        dropped.append((i, j))
    return dropped, bound


@dataclass(frozen=True, slots=True)
class AnalogModel:
    """The operators of one register over its (possibly reduced) basis.

    ``states``: the basis, as bitmasks (bit i = atom i in |r>). ``raise_ops[i]``: the sparse
    ``|r><g|`` of atom i; ``occupation``: (n, d) 0/1 array of ``n_i``; ``interaction``: the
    diagonal of ``sum V_ij n_i n_j``; ``points``: (n, k) where the atoms stand (um).
    """

    n_atoms: int
    points: np.ndarray
    states: np.ndarray
    raise_ops: tuple[sp.csr_matrix, ...]
    occupation: np.ndarray
    interaction: np.ndarray
    sigma_plus: sp.csr_matrix

    @property
    def dimension(self) -> int:
        return int(self.states.shape[0])

    def drive_operator(self, phase: float) -> sp.csr_matrix:
        """``sum_i (cos phi X_i - sin phi Y_i) = sum_i e^{i phi}|g><r| + e^{-i phi}|r><g|``."""
        up = self.sigma_plus * np.exp(-1j * phase)
        out: sp.csr_matrix = (up + up.conj().T).tocsr()
        return out

    def diagonal(self, drive: Drive, t_ns: float) -> np.ndarray:
        """The diagonal of H at ``t_ns`` (interaction, detuning, local detuning)."""
        diag = self.interaction - sample(drive.delta, t_ns) * self.occupation.sum(axis=0)
        if drive.local is not None:
            d_loc = sample(drive.local.delta, t_ns)
            for atom, scale in zip(drive.local.atoms, drive.local.scale, strict=True):
                diag = diag - d_loc * scale * self.occupation[atom]
        out: np.ndarray = diag
        return out


def model_for(
    points: Sequence[Sequence[float]],
    c6: float,
    *,
    dropped: Sequence[tuple[int, int]] = (),
) -> AnalogModel:
    """The operators of atoms at ``points`` (um) with ``C6`` over the basis that keeps no
    pair of ``dropped`` both in |r>."""
    n = len(points)
    full = np.arange(1 << n, dtype=np.int64)
    keep = np.ones(full.shape, dtype=bool)
    for i, j in dropped:
        keep &= ~(((full >> i) & 1).astype(bool) & ((full >> j) & 1).astype(bool))
    states = full[keep]
    d = states.shape[0]
    where = np.full(1 << n, -1, dtype=np.int64)
    where[states] = np.arange(d)
    occupation = np.array([(states >> i) & 1 for i in range(n)], dtype=float).reshape(n, d)
    v = interactions(points, c6)
    interaction = np.zeros(d)
    for i in range(n):
        for j in range(i + 1, n):
            if v[i, j] != 0.0:
                interaction += v[i, j] * occupation[i] * occupation[j]
    raise_ops = []
    for i in range(n):
        ground = np.nonzero(occupation[i] == 0)[0]
        target = where[states[ground] | (1 << i)]
        ok = target >= 0
        raise_ops.append(
            sp.csr_matrix(
                (np.ones(int(ok.sum())), (target[ok], ground[ok])), shape=(d, d), dtype=complex
            )
        )
    sigma_plus = sp.csr_matrix((d, d), dtype=complex)
    for op in raise_ops:
        sigma_plus = sigma_plus + op
    return AnalogModel(
        n_atoms=n,
        points=np.array(points, dtype=float).reshape(n, -1),
        states=states,
        raise_ops=tuple(raise_ops),
        occupation=occupation,
        interaction=interaction,
        sigma_plus=sigma_plus.tocsr(),
    )


# --------------------------------------------------------------------------- symmetry


def _local_scales(n: int, drives: Sequence[Drive]) -> list[tuple[float, ...]]:
    """Each atom's local-detuning scale in each drive (0 where a drive has none for it)."""
    out = [[0.0] * len(drives) for _ in range(n)]
    for k, drive in enumerate(drives):
        if drive.local is not None:
            for atom, scale in zip(drive.local.atoms, drive.local.scale, strict=True):
                out[atom][k] += scale
    return [tuple(row) for row in out]


def symmetries(
    points: Sequence[Sequence[float]] | np.ndarray, drives: Sequence[Drive]
) -> tuple[tuple[int, ...], ...]:
    """The permutations of the atoms that leave the Hamiltonian unchanged: every pairwise
    distance kept (so every ``C6 / r^6``) and every drive's local detuning (Omega, Delta
    and the phase are global, the same on every atom). The identity comes first; the
    whole group (closed under composition), or the identity alone where the search would
    visit more than :data:`SYMMETRY_SEARCH_BUDGET` partial permutations.

    Distances equal to :data:`SYMMETRY_RTOL` (relative, squared) count as equal: the
    rounding of positions such as ``5.5 * i``. The Hamiltonians then differ by far less
    than the integrator's tolerance.

    >>> symmetries([(0.0, 0.0), (5.5, 0.0), (11.0, 0.0)], [])
    ((0, 1, 2), (2, 1, 0))
    """
    xyz = np.asarray(points, dtype=float).reshape(len(points), -1)
    n = xyz.shape[0]
    r2 = ((xyz[:, None, :] - xyz[None, :, :]) ** 2).sum(axis=2)
    scale = max(float(r2.max(initial=0.0)), 1e-300)

    def same(a: float, b: float) -> bool:
        return abs(a - b) <= SYMMETRY_RTOL * max(abs(a), abs(b), 1e-12 * scale)

    colour = _local_scales(n, drives)
    profile = [np.sort(r2[i]) for i in range(n)]
    candidates = [
        [
            j
            for j in range(n)
            if colour[j] == colour[i]
            and all(same(a, b) for a, b in zip(profile[i], profile[j], strict=True))
        ]
        for i in range(n)
    ]
    found: list[tuple[int, ...]] = []
    perm = [-1] * n
    used = [False] * n
    visits = 0

    def extend(i: int) -> bool:
        nonlocal visits
        if i == n:
            found.append(tuple(perm))
            return True
        for j in candidates[i]:
            visits += 1
            if visits > SYMMETRY_SEARCH_BUDGET:
                return False
            if used[j] or not all(same(r2[i, k], r2[j, perm[k]]) for k in range(i)):
                continue
            perm[i], used[j] = j, True
            if not extend(i + 1):
                return False
            perm[i], used[j] = -1, False
        return True

    identity = tuple(range(n))
    finished = extend(0)
    group = set(found)
    closed = all(tuple(g[h[i]] for i in range(n)) in group for g in group for h in group)
    if not finished or not closed:  # too many to try, or "equal" distances that are not
        return (identity,)
    return (identity, *sorted(group - {identity}))


def _permute_bits(states: np.ndarray, perm: Sequence[int]) -> np.ndarray:
    """Each basis state with atom ``i``'s bit moved to atom ``perm[i]``."""
    out = np.zeros_like(states)
    for i, j in enumerate(perm):
        out |= ((states >> i) & 1) << j
    return out


@dataclass(frozen=True, slots=True)
class Sector:
    """The symmetric sector of a model's basis under a group of atom permutations.

    Its basis: one state ``|O> = sum_{s in O} |s> / sqrt(|O|)`` per orbit ``O`` of the
    model's basis states under the group, ordered by their smallest state (so sector
    state 0 is the all-ground state). ``group``: the permutations (identity first);
    ``orbit[s]``: the sector index of model state ``s``; ``size``: each orbit's size;
    ``representative``: the model index of each orbit's smallest state (the diagonal of H
    is the same on a whole orbit, so it is read there); ``sigma_plus``: ``sum_i |r><g|_i``
    on the sector, ``<O'| sigma_plus |O> = #{(s, i): s in O, s + i in O'} / sqrt(|O| |O'|)``.
    """

    group: tuple[tuple[int, ...], ...]
    orbit: np.ndarray
    size: np.ndarray
    representative: np.ndarray
    sigma_plus: sp.csr_matrix

    @property
    def dimension(self) -> int:
        return int(self.representative.shape[0])

    def expand(self, psi: np.ndarray) -> np.ndarray:
        """A sector state as a state over the model's basis."""
        out: np.ndarray = psi[self.orbit] / np.sqrt(self.size[self.orbit])
        return out


def find_sector(model: AnalogModel, drives: Sequence[Drive]) -> Sector | None:
    """The symmetric sector the noiseless evolution of ``model`` under ``drives`` stays in,
    or None where there is none smaller than the model's basis.

    Exact: every permutation of :func:`symmetries` commutes with H(t) at every time. The
    drive is the same on every atom, and the interaction and local detunings are kept.
    The initial state (all atoms in ``|g>``) is invariant, so the state stays in the span
    of the orbit sums. Only the permutations that map the model's basis onto itself are
    used; they form a subgroup. (A blockade reduction that drops a pair but not its image
    breaks the others.) Which atoms are measured does not matter. The state is expanded
    back to the model's basis (:meth:`Sector.expand`) before shots are drawn.

    >>> model = model_for([(0.0, 0.0, 0.0), (5.5, 0.0, 0.0), (11.0, 0.0, 0.0)], 5e6)
    >>> sector = find_sector(model, [])
    >>> sector.dimension, sector.size.tolist()  # 000, 100+001, 010, 110+011, 101, 111
    (6, [1, 2, 1, 2, 1, 1])
    """
    group = symmetries(model.points, drives)
    if len(group) == 1:
        return None
    states = model.states
    d = model.dimension
    where = np.full(1 << model.n_atoms, -1, dtype=np.int64)
    where[states] = np.arange(d)
    kept, images = [group[0]], [np.arange(d)]
    for g in group[1:]:
        image = where[_permute_bits(states, g)]
        if np.all(image >= 0):
            kept.append(g)
            images.append(image)
    if len(kept) == 1:
        return None
    # A group's orbit {g s} holds s's smallest image: its representative.
    smallest = np.minimum.reduce(images)
    representative = distinct(smallest)
    orbit: np.ndarray = np.asarray(np.searchsorted(representative, smallest))
    size = np.bincount(orbit, minlength=representative.size)
    plus = model.sigma_plus.tocoo()
    rows, cols = orbit[plus.row], orbit[plus.col]
    weights = plus.data.real / np.sqrt(size[rows] * size[cols])
    m = representative.size
    sigma_plus = sp.csr_matrix((weights, (rows, cols)), shape=(m, m))
    sigma_plus.sum_duplicates()
    return Sector(
        group=tuple(kept),
        orbit=orbit,
        size=size,
        representative=representative,
        sigma_plus=sigma_plus,
    )


def _breakpoints(drive: Drive, duration_ns: float) -> list[float]:
    times = {0.0, duration_ns}
    for _, wave in drive.waveforms():
        times.update(t for t, _ in wave if 0.0 < t < duration_ns)
    return sorted(times)


def _evolve_state(
    model: AnalogModel,
    psi: np.ndarray,
    drive: Drive,
    duration_ns: float,
    sector: Sector | None = None,
    *,
    compiled: bool | None = None,
    tolerances: tuple[float, float] = (RTOL, ATOL),
    shift: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """``psi`` (over ``model``'s basis, or over ``sector``'s) after ``drive`` for
    ``duration_ns``, and how many right-hand sides the integrator evaluated.

    ``compiled``: the right-hand side's form (:func:`analog_kernel.apply`; None: compiled
    where llvmlite is installed); ``tolerances``: the integrator's (rtol, atol);
    ``shift``: a constant added to H's diagonal (rad/us, over the model's basis; no sector).
    """
    assert shift is None or sector is None
    # The state travels as interleaved reals (a complex array viewed as float64): scipy's
    # Runge-Kutta steps combine stages with a real tableau, many times slower on complex
    # arrays. The drive operator and the diagonal are built once per segment; each right-
    # hand side is then one pass of the kernel (analog_kernel).
    plus = model.sigma_plus if sector is None else sector.sigma_plus
    up = plus * np.exp(-1j * drive.phase)
    w = analog_kernel.DriveMatrix.of(up + up.conj().T)
    pick = None if sector is None else sector.representative
    steps = 0
    y = np.ascontiguousarray(psi, dtype=np.complex128).view(np.float64).copy()
    for a, b in itertools.pairwise(_breakpoints(drive, duration_ns)):
        # One segment: Omega and every detuning linear in t; t in us inside the integrator.
        om0, om1 = sample(drive.omega, a), sample(drive.omega, b)
        d0, d1 = model.diagonal(drive, a), model.diagonal(drive, b)
        if shift is not None:
            d0, d1 = d0 + shift, d1 + shift
        if pick is not None:  # H's diagonal is the same on a whole orbit
            d0, d1 = d0[pick], d1[pick]
        d0 = np.ascontiguousarray(d0, dtype=np.float64)
        dd = np.ascontiguousarray(d1 - d0, dtype=np.float64)
        t0, span = a * 1e-3, (b - a) * 1e-3

        rhs = analog_kernel.SegmentRhs(
            w, t0=t0, span=span, omega=(om0, om1), d0=d0, dd=dd, compiled=compiled
        )
        solver = DOP853(rhs, t0, y, t0 + span, rtol=tolerances[0], atol=tolerances[1])
        while solver.status == "running":
            solver.step()
        if solver.status != "finished":  # pragma: no cover - DOP853 on a bounded linear ODE
            raise DeviceError.of("analog-unsupported", "the integrator failed: step size too small")
        y = solver.y
        steps += int(solver.nfev)
    return y.view(np.complex128).copy(), steps


def _evolve_density(
    model: AnalogModel,
    rho: np.ndarray,
    drive: Drive,
    duration_ns: float,
    rates: LindbladRates,
    shift: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    d = model.dimension
    extra = 0.0 if shift is None else shift
    # Sparse, not dense: a small dense product goes to a multithreaded BLAS, which on a busy
    # machine costs more waiting for its threads than the arithmetic.
    hd = model.drive_operator(drive.phase)
    count = model.occupation.sum(axis=0)
    # Dephasing (L = sqrt(r) Z_i): rho_ss' decays at 2 r * hamming(s, s').
    bits = model.occupation.T  # (d, n)
    hamming = np.abs(bits[:, None, :] - bits[None, :, :]).sum(axis=2)
    damp = -2.0 * rates.dephasing_per_us * hamming
    gamma = rates.decay_per_us
    # The jumps sum_i gamma L_i rho L_i^dagger (L_i = |g><r| of atom i, real) as one sparse
    # operator on the row-major vec(rho): vec(A rho B) = (A kron B^T) vec(rho).
    jumps = sp.csr_matrix((d * d, d * d))
    for op in model.raise_ops:
        low = op.T.real.tocsr()
        jumps = jumps + sp.kron(low, low, format="csr")
    jumps = (gamma * jumps).tocsr()
    steps = 0
    cuts = _breakpoints(drive, duration_ns)
    for a, b in itertools.pairwise(cuts):
        om0, om1 = sample(drive.omega, a), sample(drive.omega, b)
        # Decay's no-jump part: H_eff = H - i gamma/2 N.
        d0 = model.diagonal(drive, a) + extra - 0.5j * gamma * count
        d1 = model.diagonal(drive, b) + extra - 0.5j * gamma * count
        t0, span = a * 1e-3, (b - a) * 1e-3

        def rhs(
            t: float,
            y: np.ndarray,
            *,
            t0: float = t0,
            span: float = span,
            om0: float = om0,
            om1: float = om1,
            d0: np.ndarray = d0,
            d1: np.ndarray = d1,
        ) -> np.ndarray:
            s = (t - t0) / span
            r = y.view(np.complex128).reshape(d, d)  # real for the solver, complex here
            diag = d0 + (d1 - d0) * s
            hr = (0.5 * (om0 + (om1 - om0) * s)) * (hd @ r) + diag[:, None] * r
            out = -1j * (hr - hr.conj().T) + damp * r
            if gamma:
                out = out + (jumps @ r.ravel()).reshape(d, d)
            real: np.ndarray = np.ascontiguousarray(out).ravel().view(np.float64)
            return real

        sol = solve_ivp(
            rhs,
            (t0, t0 + span),
            np.ascontiguousarray(rho, dtype=np.complex128).ravel().view(np.float64),
            method="DOP853",
            rtol=RTOL,
            atol=ATOL,
            t_eval=[t0 + span],
        )
        if not sol.success:  # pragma: no cover
            raise DeviceError.of("analog-unsupported", f"the integrator failed: {sol.message}")
        rho = np.ascontiguousarray(sol.y[:, -1]).view(np.complex128).reshape(d, d)
        steps += int(sol.nfev)
    return rho, steps


def evolve(
    model: AnalogModel,
    drives: Sequence[tuple[Drive, float]],
    noise: AnalogNoise | LindbladRates | None = None,
    *,
    sector: Sector | None = None,
    average: bool = True,
) -> tuple[np.ndarray, int]:
    """The probabilities over ``model.states`` after the drives, and how many right-hand
    sides the integrator evaluated.

    With decoherence or ``p_prep`` (``noise``: an :class:`AnalogNoise`, or bare Lindblad
    rates) the density matrix is integrated over the model's basis, from all in ``|g>``
    or each atom in ``|r>`` with probability ``p_prep``. Without, the state vector from
    all in ``|g>``, over ``sector``'s basis where one is given (:func:`find_sector` of
    the same drives), expanded back to the model's.

    ``phase.idle`` (``noise.detuning_per_us``: ``a``) gives each atom a detuning
    ``delta_i n_i`` uniform in ``[-a, a]`` for the shot; shots are independent, so each
    is drawn from the average over the detunings, ``E[rho(delta)]``, taken to second
    order: ``rho(0) + sum_i [(rho(h e_i) + rho(-h e_i)) / 2 - rho(0)]``, ``h = a /
    sqrt(3)`` (``E[delta_i^2] = a^2 / 3``; odd orders average to zero), ``2n + 1``
    evolutions. What that leaves out is at most ``(n a T)^4`` in trace norm (T the
    drives' time; :func:`detuning_bounds`). With ``average`` False the detunings are left
    out (where :func:`detuning_bounds` shows their whole effect below the tolerance).
    """
    if not isinstance(noise, AnalogNoise):
        noise = AnalogNoise(rates=noise or LindbladRates())
    probs, steps = _probabilities(model, drives, noise, None if noise.mixed else sector)
    if noise.detuning_per_us and average:
        h = noise.detuning_per_us / math.sqrt(3.0)
        mean = probs.copy()
        for atom in range(model.n_atoms):
            for sign in (1.0, -1.0):
                shift = sign * h * model.occupation[atom].astype(np.float64)
                shifted, n = _probabilities(model, drives, noise, None, shift)
                mean += 0.5 * (shifted - probs)
                steps += n
        probs = mean
    probs = np.clip(probs, 0.0, None)
    total = float(probs.sum())
    return probs / total, steps


def detuning_bounds(n_atoms: int, noise: AnalogNoise, total_us: float) -> tuple[float, float]:
    """``(effect, left_out)``, in trace norm: the most ``phase.idle``'s detunings change
    the final state at all, and the most :func:`evolve`'s second-order average of them
    leaves out.

    The state's k-th derivative along a detuning ``delta_i n_i`` is at most ``(2T)^k``:
    each order adds a commutator with ``n_i``, of norm at most 2, under a contraction,
    over a time T. Odd orders average to zero, and ``E[delta_i^2] = a^2 / 3``. So the
    effect is at most ``(2/3) n (a T)^2`` and the fourth-order rest. The rest, the Taylor
    remainder and the rule's own, is below ``(n a T)^4``.
    """
    x = noise.detuning_per_us * total_us
    left_out = float((n_atoms * x) ** 4)
    return 2.0 / 3.0 * n_atoms * x * x + left_out, left_out


def _probabilities(
    model: AnalogModel,
    drives: Sequence[tuple[Drive, float]],
    noise: AnalogNoise,
    sector: Sector | None,
    shift: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """The probabilities over ``model.states`` after the drives (not yet clipped)."""
    if not noise.mixed:
        psi, steps = _integrate(model, drives, sector, None, shift=shift)
        return np.abs(psi) ** 2, steps
    p = noise.p_prep
    excited = model.occupation.sum(axis=0)
    start = (p**excited) * ((1.0 - p) ** (model.n_atoms - excited))
    rho = np.diag(start.astype(complex))
    steps = 0
    for drive, duration in drives:
        rho, n = _evolve_density(model, rho, drive, duration, noise.rates, shift)
        steps += n
    return np.real(np.diag(rho)).copy(), steps


def state_vector(
    model: AnalogModel,
    drives: Sequence[tuple[Drive, float]],
    *,
    sector: Sector | None = None,
    compiled: bool | None = None,
    tolerances: tuple[float, float] = (RTOL, ATOL),
) -> np.ndarray:
    """The final state over ``model.states`` (noiseless; integrated over ``sector``'s
    basis where one is given, then expanded); ``compiled`` as :func:`analog_kernel.apply`
    takes it; ``tolerances``: the integrator's (rtol, atol), for references tighter than
    the defaults."""
    return _integrate(model, drives, sector, compiled, tolerances)[0]


def _integrate(
    model: AnalogModel,
    drives: Sequence[tuple[Drive, float]],
    sector: Sector | None,
    compiled: bool | None,
    tolerances: tuple[float, float] = (RTOL, ATOL),
    *,
    shift: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    psi = np.zeros(model.dimension if sector is None else sector.dimension, dtype=complex)
    psi[0] = 1.0
    steps = 0
    for drive, duration in drives:
        psi, n = _evolve_state(
            model,
            psi,
            drive,
            duration,
            sector,
            compiled=compiled,
            tolerances=tolerances,
            shift=shift,
        )
        steps += n
    return (psi if sector is None else sector.expand(psi)), steps


# --------------------------------------------------------------------------- jobs


def drives_of(job: Job) -> list[tuple[Drive, float]]:
    """The job's drives (with their durations, ns), in program order: each Evolve's, and
    for each Wait a drive with Omega = Delta = 0 (the atoms still interact, and decay)."""
    out: list[tuple[Drive, float]] = []
    for ins in job.program:
        if ins.kind is OpKind.EVOLVE and ins.drive is not None:
            out.append((ins.drive, ins.duration))
        elif ins.kind is OpKind.WAIT and ins.duration > 0:
            still = ((0.0, 0.0), (ins.duration, 0.0))
            out.append((Drive(omega=still, delta=still), ins.duration))
    return out


def register_points(job: Job) -> list[tuple[float, float, float]]:
    """Where the atoms stand at the first Evolve (after any MoveAtom before it)."""
    from qmk.devices.neutral_atom.validate import validate_program

    geometries = validate_program(job)
    first = next(i for i, ins in enumerate(job.program) if ins.kind is OpKind.EVOLVE)
    geo = geometries[first]
    assert geo is not None
    return [tuple(p) for p in geo.points]  # type: ignore[misc]


def prepare(job: Job) -> tuple[AnalogModel, list[tuple[Drive, float]], AnalogNoise, float]:
    """The model, drives, noise and blockade bound of a validated analog job (the bound
    is inf when the job asked for ``blockade_subspace_radius``: approximate).

    Raises:
        DeviceError: ``QD110`` for a ``phase.idle`` too large for :func:`evolve`'s
            second-order average (:func:`detuning_bounds` above
            :data:`BLOCKADE_TOLERANCE`), ``QD111`` for a basis beyond ``max_states``
            (``max_states_noisy`` for a density matrix).
    """
    noise = analog_noise(job.noise)
    drives = drives_of(job)
    points = register_points(job)
    moves_between = [
        i
        for i, ins in enumerate(job.program)
        if ins.kind is OpKind.MOVE and any(p.kind is OpKind.EVOLVE for p in job.program[:i])
    ]
    if moves_between:
        raise DeviceError.of(
            "analog-unsupported",
            f"instruction #{moves_between[0]}: a MoveAtom after an Evolve; move the atoms "
            "before the first Evolve",
            index=moves_between[0],
        )
    v = interactions(points, job.hardware.c6)
    total_us = sum(duration for _, duration in drives) * 1e-3
    _, left_out = detuning_bounds(len(points), noise, total_us)
    if left_out > BLOCKADE_TOLERANCE:
        raise DeviceError.of(
            "analog-unsupported",
            f"noise.phase.idle = {job.noise.phase.idle:g} rad/s over {total_us:g} us on "
            f"{len(points)} atoms: its detunings are averaged to second order, which leaves "
            f"out up to {left_out:.3g} (above {BLOCKADE_TOLERANCE:g}); give the job a smaller "
            "phase.idle (analog mode needs atoms x phase.idle x time below 0.0178)",
            field="phase.idle",
        )
    # the blockade reduction keeps the states the evolution reaches from all in |g>; a
    # mixed start (p_prep) begins in every state
    dropped, bound = (
        ([], 0.0) if noise.p_prep else blockade_pairs(v, [d for d, _ in drives], total_us)
    )
    radius = job.blockade_subspace_radius
    if radius > 0:
        # Asked for: Bloqade's blockade subspace, an approximation (the bound no longer holds).
        dropped = sorted(
            set(dropped)
            | {
                (i, j)
                for i in range(len(points))
                for j in range(i + 1, len(points))
                if math.dist(points[i], points[j]) < radius
            }
        )
        bound = math.inf
    model = model_for(points, job.hardware.c6, dropped=dropped)
    limits = job.hardware.drive
    cap = limits.max_states_noisy if noise.mixed else limits.max_states
    if model.dimension > cap:
        what = "max_states_noisy (a density matrix)" if noise.mixed else "max_states"
        raise DeviceError.of(
            "analog-too-large",
            f"{len(points)} atoms need {model.dimension} basis states after the exact "
            f"blockade reduction ({len(dropped)} pairs dropped), more than {what} {cap}",
            states=model.dimension,
            limit=cap,
        )
    return model, drives, noise, bound


def _measured(job: Job) -> list[tuple[int, tuple[int, ...]]]:
    return [(ins.index, ins.targets) for ins in job.program if ins.kind is OpKind.MEASURE]


def run_analog(job: Job, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Shots of a validated analog job: bits (shots x recorded bits, int8, -1 lost), stats."""
    model, drives, acting, bound = prepare(job)
    # The symmetric sector serves the state vector only (the density matrix stays whole).
    sector = None if acting.mixed else find_sector(model, [d for d, _ in drives])
    # phase.idle's detunings are averaged over only where their whole effect can reach
    # the tolerance the blockade reduction calls exact (below it: exact without them)
    effect, left_out = detuning_bounds(model.n_atoms, acting, sum(t for _, t in drives) * 1e-3)
    average = effect > BLOCKADE_TOLERANCE
    probs, steps = evolve(model, drives, acting, sector=sector, average=average)
    rng = np.random.default_rng(seed)
    picks = rng.choice(model.dimension, size=job.shots, p=probs)
    states = model.states[picks]
    n = model.n_atoms
    outcome = np.array([(states >> i) & 1 for i in range(n)], dtype=np.int8).T.reshape(job.shots, n)
    noise = job.noise
    lost = np.zeros((job.shots, n), dtype=bool)
    total_ns = sum(duration for _, duration in drives)
    p_run = 1.0 - math.exp(-noise.loss_runtime.idle_rate * total_ns * 1e-9)
    if p_run > 0:
        lost |= rng.random((job.shots, n)) < p_run
    columns = []
    for _, targets in _measured(job):
        for atom in targets:
            bit = outcome[:, atom].copy()
            if noise.p_quantum_flip:
                bit ^= (rng.random(job.shots) < noise.p_quantum_flip).astype(np.int8)
            if noise.p_loss:
                lost[:, atom] |= rng.random(job.shots) < noise.p_loss
            flip0, flip1 = noise.readout.p_flip0_to_1, noise.readout.p_flip1_to_0
            if flip0 or flip1:
                u = rng.random(job.shots)
                bit = np.where(bit == 1, np.where(u < flip1, 0, 1), np.where(u < flip0, 1, 0))
            columns.append(np.where(lost[:, atom], -1, bit).astype(np.int8))
    bits = (
        np.stack(columns, axis=1) if columns else np.zeros((job.shots, 0), dtype=np.int8)
    ).astype(np.int8)
    stats: dict[str, Any] = {
        "mode": "analog",
        "integrator": "DOP853 (rtol 1e-10, atol 1e-12)",
        "method": "density matrix (Lindblad)" if acting.mixed else "state vector",
        "basis_states": model.dimension,
        "full_states": 1 << n,
        "sector_states": sector.dimension if sector is not None else model.dimension,
        "symmetries": len(sector.group) if sector is not None else 1,
        "rhs_kernel": "compiled" if analog_kernel.compiled_available() else "numpy",
        "blockade_bound": bound if math.isfinite(bound) else None,
        "exact": math.isfinite(bound),
        "blockade_subspace_radius": job.blockade_subspace_radius or None,
        "rhs_evaluations": steps,
        "atoms_lost": int(lost.sum()),
        "lost_bits": int((bits < 0).sum()),
    }
    if acting.detuning_per_us:  # phase.idle's detunings: averaged over, or below tolerance
        stats["detunings"] = {
            "averaged": average,
            "bound": left_out if average else effect,
        }
    return bits, stats


__all__ = [
    "ATOL",
    "BLOCKADE_TOLERANCE",
    "RTOL",
    "SYMMETRY_RTOL",
    "SYMMETRY_SEARCH_BUDGET",
    "AnalogModel",
    "Sector",
    "blockade_pairs",
    "detuning_bounds",
    "drives_of",
    "evolve",
    "find_sector",
    "interactions",
    "model_for",
    "prepare",
    "register_points",
    "run_analog",
    "state_vector",
    "symmetries",
]
