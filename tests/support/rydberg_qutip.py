"""An independent reference for analog mode: the Rydberg Hamiltonian written in QuTiP.

Nothing here reads QMK's analog module: positions, C6 and the waveforms go in as plain
numbers; ``sesolve``/``mesolve`` integrate with tight tolerances. Atom 0 is QuTiP's first
tensor factor (the most significant bit of its index); :func:`to_qmk_order` maps QuTiP's
amplitudes onto QMK's basis index (bit i = atom i).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import qutip as qt

C6_RB70S = 2 * math.pi * 862690.0
OPTIONS = {"atol": 1e-13, "rtol": 1e-11, "nsteps": 10**7, "max_step": 0.002}


def _wave(points: Sequence[Sequence[float]]):
    ts = np.array([p[0] for p in points], dtype=float) * 1e-3  # ns -> us
    vs = np.array([p[1] for p in points], dtype=float)
    return lambda t: float(np.interp(t, ts, vs))


def _op(n: int, k: int, single: qt.Qobj) -> qt.Qobj:
    return qt.tensor([single if i == k else qt.qeye(2) for i in range(n)])


def hamiltonian(
    positions: Sequence[Sequence[float]],
    omega: Sequence[Sequence[float]],
    delta: Sequence[Sequence[float]],
    *,
    phase: float = 0.0,
    c6: float = C6_RB70S,
    local: tuple[Sequence[int], Sequence[float], Sequence[Sequence[float]]] | None = None,
) -> qt.QobjEvo:
    """H(t) = sum Omega/2 (cos phi X - sin phi Y) - Delta sum n + sum C6/r^6 n n (t in us)."""
    n = len(positions)
    nr = qt.basis(2, 1) * qt.basis(2, 1).dag()
    drive = sum(
        math.cos(phase) * _op(n, i, qt.sigmax()) - math.sin(phase) * _op(n, i, qt.sigmay())
        for i in range(n)
    )
    number = sum(_op(n, i, nr) for i in range(n))
    inter = 0 * number
    for i in range(n):
        for j in range(i + 1, n):
            r = math.dist(positions[i], positions[j])
            inter = inter + (c6 / r**6) * _op(n, i, nr) * _op(n, j, nr)
    om, de = _wave(omega), _wave(delta)
    terms: list = [inter, [0.5 * drive, lambda t: om(t)], [-number, lambda t: de(t)]]
    if local is not None:
        atoms, scale, wave = local
        loc = _wave(wave)
        field = sum(s * _op(n, a, nr) for a, s in zip(atoms, scale, strict=True))
        terms.append([-field, lambda t: loc(t)])
    return qt.QobjEvo(terms)


def ground(n: int) -> qt.Qobj:
    return qt.tensor([qt.basis(2, 0)] * n)


def sesolve(h: qt.QobjEvo, n: int, duration_ns: float) -> np.ndarray:
    """The final state's amplitudes in QMK's order."""
    result = qt.sesolve(h, ground(n), [0.0, duration_ns * 1e-3], options=OPTIONS)
    return to_qmk_order(result.states[-1].full().ravel(), n)


def mesolve(
    h: qt.QobjEvo, n: int, duration_ns: float, *, decay: float, dephasing: float
) -> np.ndarray:
    """The final populations (QMK's order) with decay sqrt(decay)|g><r| and sqrt(dephasing) Z
    on every atom (rates per us)."""
    lower = qt.basis(2, 0) * qt.basis(2, 1).dag()
    ops = [math.sqrt(decay) * _op(n, i, lower) for i in range(n) if decay]
    ops += [math.sqrt(dephasing) * _op(n, i, qt.sigmaz()) for i in range(n) if dephasing]
    rho0 = ground(n) * ground(n).dag()
    result = qt.mesolve(h, rho0, [0.0, duration_ns * 1e-3], c_ops=ops, options=OPTIONS)
    return to_qmk_order(np.real(np.diag(result.states[-1].full())), n)


def to_qmk_order(values: np.ndarray, n: int) -> np.ndarray:
    """QuTiP's index (atom 0 most significant) -> QMK's (bit i = atom i)."""
    out = np.empty_like(values)
    for q in range(1 << n):
        s = sum(((q >> (n - 1 - i)) & 1) << i for i in range(n))
        out[s] = values[q]
    return out
