"""Noisy trajectories of a small register, many shots a numpy pass.

When nearly every shot meets an error (a noisy program of a few hundred noise ops),
the executor's runner (:class:`~qmk.execution.trajectories.Runner`) holds one
trajectory per shot and pays its per-op cost once per shot. Here a chunk's shots are
the rows of one stack of state vectors (``rows x 2**atoms`` amplitudes, atom ``a`` bit
``a`` of the index, :mod:`qmk.engines.rows`' layout), and every step is one numpy pass
over all rows:

- a gate: its matrix on every row (:func:`qmk.engines.rows.apply_matrix`);
- a Pauli channel: the rows it strikes are drawn (sparsely), each gets its Pauli (a
  permutation of the amplitudes times a phase);
- amplitude damping ``gamma``: each row's ``P(1)`` of its atom; a row jumps (Kraus
  ``K1``) with probability ``gamma * P(1)``, else ``K0 = diag(1, sqrt(1 - gamma))``
  applies, and the row is renormalised: the quantum-jump unravelling, exact;
- a measurement that a later step touches again, and a reset (a damping with
  ``gamma = 1`` that records nothing): each row's outcome drawn from its ``P(1)``, the
  row projected and renormalised;
- every other measurement (its atom is touched by no later step, so it commutes with
  what follows) is drawn at the end, jointly, from each row's final distribution.

Each row is one shot's trajectory with the noise's own probabilities, so the shots are
those of the noisy circuit exactly (the tests compare them with the exact density matrix
of the circuit). Noise no record can see is left out as on the runner's path
(:func:`qmk.devices.neutral_atom.shots.visible_steps`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from qmk.arrays import distinct
from qmk.devices.neutral_atom.circuit import Step, StepKind
from qmk.devices.neutral_atom.noise import NoiseKind
from qmk.engines import kernels
from qmk.engines.gates import GATES
from qmk.engines.rows import draw as draw_rows

#: The most amplitudes one pass holds (rows times ``2**atoms``): 16 MiB of complex128,
#: small enough to stay near the cache and to bound a chunk's memory.
PASS_AMPLITUDES = 1 << 20
#: The widest register the stack runs (a row of ``2**14`` amplitudes: 64 rows a pass).
MAX_ATOMS = 14


#: A step as the stack runs it: the step and, for a noise step, its probabilities after
#: what no record can see was dropped.
Visible = tuple[Step, tuple[float, ...]]


def run(n_atoms: int, n_bits: int, steps: Sequence[Visible], shots: int, seed: int) -> np.ndarray:
    """shots x bits (uint8) of the visible ``steps`` on ``n_atoms`` atoms, drawn from
    ``seed``; the shots go through in passes of at most :data:`PASS_AMPLITUDES`."""
    rng = np.random.default_rng(seed)
    out = np.zeros((shots, n_bits), dtype=np.uint8)
    deferred = _deferred(steps)
    rows = max(1, PASS_AMPLITUDES >> n_atoms)
    for lo in range(0, shots, rows):
        hi = min(shots, lo + rows)
        # the kernels take states of 2**k amplitudes: a short last pass is padded
        padded = 1 << (hi - lo - 1).bit_length()
        out[lo:hi] = _Pass(n_atoms, padded, rng).run(steps, deferred, n_bits)[: hi - lo]
    return out


def _deferred(steps: Sequence[Visible]) -> frozenset[int]:
    """The measurement steps (their positions) whose atom no later step touches: they
    are drawn at the end, from each row's final distribution."""
    later: set[int] = set()
    found: set[int] = set()
    for k in range(len(steps) - 1, -1, -1):
        step = steps[k][0]
        if step.kind is StepKind.MEASURE and step.atoms[0] not in later:
            found.add(k)
        later.update(step.atoms)
    return frozenset(found)


class _Pass:
    """``rows`` shots from ``|0...0>``: a ``rows x 2**atoms`` stack, seen by the
    statevector engine's kernels as one state whose high bits number the rows.

    Rows are not kept normalised: a damping's ``K0`` shrinks them, and a row's
    probabilities are read as ratios to its norm where they are needed (the few rows a
    damping may strike, every row at a mid-circuit measurement, and the final draw).
    ``shrink`` bounds from below how far any row's squared norm has fallen since the rows
    were last renormalised."""

    def __init__(self, n_atoms: int, rows: int, rng: np.random.Generator) -> None:
        self.n = n_atoms
        self.rows = rows
        self.rng = rng
        self.stack = np.zeros((rows, 1 << n_atoms), dtype=np.complex128)
        self.stack[:, 0] = 1.0
        self.flat = self.stack.reshape(-1)
        self.kernels = kernels.default_kernels()
        self.shrink = 1.0

    def run(self, steps: Sequence[Visible], deferred: frozenset[int], n_bits: int) -> np.ndarray:
        bits = np.zeros((self.rows, n_bits), dtype=np.uint8)
        at_end: list[tuple[int, int]] = []  # (atom, column) drawn at the end
        for k, (step, probs) in enumerate(steps):
            kind = step.kind
            if kind is StepKind.GATE:
                matrix = _matrix(step.gates)
                kernels.apply_matrix(self.flat, matrix, step.atoms[::-1], kernels=self.kernels)
            elif kind is StepKind.MEASURE:
                if k in deferred:
                    at_end.append((step.atoms[0], step.record))
                else:
                    bits[:, step.record] = self.measure(step.atoms[0], reset=False)
            elif kind is StepKind.RESET:
                self.measure(step.atoms[0], reset=True)
            elif step.noise is not None and step.noise.kind is NoiseKind.DAMP:
                self.damp(step.atoms[0], probs[0])
            else:  # a Pauli channel (visible_steps keeps no other noise)
                self.pauli_channel(step.atoms, probs)
        if at_end:
            index = self.draw()
            for atom, column in at_end:
                bits[:, column] = (index >> atom) & 1
        return bits

    def halves(self, stack: np.ndarray, atom: int) -> tuple[np.ndarray, np.ndarray]:
        """The amplitudes of each row of ``stack`` with ``atom`` at 0 and at 1 (views)."""
        low = 1 << atom
        view = stack.reshape(stack.shape[0], stack.shape[1] // (2 * low), 2, low)
        return view[:, :, 0, :], view[:, :, 1, :]

    def measure(self, atom: int, *, reset: bool) -> np.ndarray:
        """Each row's outcome of measuring ``atom`` (Z), drawn from its ``P(1)``; the row
        is projected onto it (``reset``: and its atom put back in ``|0>``) and every row
        renormalised."""
        floats = self.stack.view(np.float64)
        norm = np.einsum("ij,ij->i", floats, floats)
        one = self.halves(self.stack, atom)[1].view(np.float64)
        p1 = np.einsum("ijk,ijk->i", one, one) / norm
        outcome = self.rng.random(self.rows) < p1
        kept = np.where(outcome, p1, 1.0 - p1) * norm
        view = self.stack.reshape(self.rows, -1, 2, 1 << atom)
        ones = np.flatnonzero(outcome)
        if reset:
            view[ones, :, 0, :] = view[ones, :, 1, :]
            view[:, :, 1, :] = 0.0
        else:
            view[ones, :, 0, :] = 0.0
            view[np.flatnonzero(~outcome), :, 1, :] = 0.0
        self.stack *= (1.0 / np.sqrt(np.maximum(kept, 1e-300)))[:, None]
        self.shrink = 1.0
        return outcome.astype(np.uint8)

    def damp(self, atom: int, gamma: float) -> None:
        """Amplitude damping ``gamma`` on ``atom`` of every row, one Kraus operator a row:
        ``K1`` (``|1> -> |0>``) with probability ``gamma * P(1)``, else ``K0 = diag(1,
        sqrt(1 - gamma))``. A jump is drawn in two steps: a row is a candidate with
        probability ``gamma`` (few rows: geometric skipping), and a candidate jumps with
        probability ``P(1)``, read off that row alone."""
        candidates = _hits(self.rng, gamma, self.rows)
        jumped = np.zeros(0, dtype=np.intp)
        saved = np.zeros((0, 0), dtype=np.complex128)
        if len(candidates):
            picked = self.stack[candidates]
            floats = picked.view(np.float64)
            one = self.halves(picked, atom)[1]
            ones = one.view(np.float64)
            p1 = np.einsum("ijk,ijk->i", ones, ones) / np.einsum("ij,ij->i", floats, floats)
            jump = self.rng.random(len(candidates)) < p1
            jumped = candidates[jump]
            saved = (
                one[jump]
                / np.sqrt(p1[jump] * np.einsum("ij,ij->i", floats, floats)[jump])[:, None, None]
            )
        keep = math.sqrt(max(0.0, 1.0 - gamma))
        kernels.apply_diagonal(self.flat, np.array([1.0, keep]), [atom], kernels=self.kernels)
        if len(jumped):
            view = self.stack.reshape(self.rows, -1, 2, 1 << atom)
            view[jumped, :, 0, :] = saved
            view[jumped, :, 1, :] = 0.0
        self.shrink *= 1.0 - gamma
        if self.shrink < _RENORMALISE:
            floats = self.stack.view(np.float64)
            self.stack *= (1.0 / np.sqrt(np.einsum("ij,ij->i", floats, floats)))[:, None]
            self.shrink = 1.0

    def pauli_channel(self, atoms: tuple[int, ...], probs: tuple[float, ...]) -> None:
        """A Pauli channel (X, Y, Z on one atom; the 15 pairs ``4 * first + second``
        from IX on two): the rows it strikes are drawn, then which Pauli each gets."""
        total = math.fsum(probs)
        if total <= 0.0:
            return
        hit = _hits(self.rng, total, self.rows)
        if not len(hit):
            return
        cumulative = np.cumsum(probs) / total
        which = np.searchsorted(cumulative, self.rng.random(len(hit)), side="right")
        which = np.minimum(which, len(probs) - 1)
        for label in distinct(which).tolist():
            rows = hit[which == label]
            perm, phase = _pauli_map(self.n, atoms, label + 1)
            self.stack[rows] = self.stack[rows][:, perm] * phase

    def draw(self) -> np.ndarray:
        """One basis index per row, drawn from the row's ``|amplitude|^2``."""
        return draw_rows(self.stack, self.rng.random(self.rows))


#: How far the rows' squared norms may fall (a bound) before they are renormalised.
_RENORMALISE = 1e-100


@functools.lru_cache(maxsize=1024)
def _matrix(gates: tuple[tuple[str, tuple[float, ...]], ...]) -> np.ndarray:
    """One step's gates (all on its atoms) as one matrix, the first applied first."""
    out: np.ndarray | None = None
    for gate, params in gates:
        m = np.asarray(GATES[gate].matrix(params), dtype=np.complex128)
        out = m if out is None else m @ out
    assert out is not None
    return out


def _hits(rng: np.random.Generator, p: float, n: int) -> np.ndarray:
    """The rows (of ``n``) an event of probability ``p`` strikes, each independently:
    rare hits by geometric skipping (their cost follows the hits), common ones by one
    draw a row."""
    if p >= 0.05:
        return np.flatnonzero(rng.random(n) < p)
    positions = np.cumsum(rng.geometric(p, int(n * p + 6 * math.sqrt(n * p) + 16))) - 1
    while positions[-1] < n:
        more = np.cumsum(rng.geometric(p, int(n * p) + 16)) + positions[-1]
        positions = np.concatenate([positions, more])
    return positions[positions < n]


@functools.lru_cache(maxsize=4096)
def _pauli_map(n: int, atoms: tuple[int, ...], label: int) -> tuple[np.ndarray, np.ndarray]:
    """The Pauli ``label`` (one atom: 1 X, 2 Y, 3 Z; two: ``4 * first + second``) on
    ``atoms`` as ``(perm, phase)``: the new row is ``row[perm] * phase``."""
    letters = [label] if len(atoms) == 1 else [label // 4, label % 4]
    index = np.arange(1 << n)
    perm = index.copy()
    phase = np.ones(1 << n, dtype=np.complex128)
    for atom, letter in zip(atoms, letters, strict=True):
        bit = (index >> atom) & 1  # the new amplitude's bit
        if letter in (1, 2):
            perm ^= 1 << atom
        if letter == 2:  # Y|0> = i|1>, Y|1> = -i|0>
            phase *= np.where(bit == 1, 1j, -1j)
        elif letter == 3:
            phase *= np.where(bit == 1, -1.0, 1.0)
    return perm, phase


__all__ = ["MAX_ATOMS", "PASS_AMPLITUDES", "Visible", "run"]
