"""Bloqade ``qasm2`` kernels the comparison with Bloqade runs
(``tests/devices/neutral_atom/test_bloqade_peer.py``, through
:mod:`qmk.devices.neutral_atom.bloqade_peer`).

Loaded only by the peer, inside Bloqade's own environment (it needs ``bloqade-circuit``).
Each kernel prepares a state and returns its register, unmeasured: Bloqade's PyQrack simulator gives
its exact state vector, and its OpenQASM 2 emission (with a measurement of every qubit
appended) is the program QMK's device runs.
"""

from __future__ import annotations

from typing import Any

from bloqade import qasm2


@qasm2.main
def ghz4() -> Any:
    q = qasm2.qreg(4)
    qasm2.h(q[0])
    qasm2.cx(q[0], q[1])
    qasm2.cx(q[1], q[2])
    qasm2.cx(q[2], q[3])
    return q


@qasm2.extended
def rotated() -> Any:
    q = qasm2.qreg(3)
    qasm2.x(q[0])
    qasm2.ry(q[1], 0.8)
    qasm2.cx(q[1], q[2])
    qasm2.rz(q[2], 0.4)
    qasm2.h(q[2])
    qasm2.rx(q[0], 1.1)
    return q


@qasm2.extended
def toffoli_t() -> Any:
    q = qasm2.qreg(3)
    qasm2.h(q[0])
    qasm2.h(q[1])
    qasm2.t(q[1])
    qasm2.ccx(q[0], q[1], q[2])
    qasm2.cz(q[0], q[2])
    qasm2.h(q[1])
    qasm2.sdg(q[2])
    qasm2.h(q[2])
    return q


#: The kernels by name.
KERNELS: dict[str, Any] = {"ghz4": ghz4, "rotated": rotated, "toffoli_t": toffoli_t}
