"""Many gates' matrices at once: each kind of rotation built in one array.

A circuit's engine asks for thousands of small matrices a run (:mod:`qmk.engines.lazy_state`);
one NumPy array each cost most of their time. The records (:mod:`qmk.gates`) still say
what each matrix is: every entry is made by its record's own arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from qmk.gates import GATES


def matrices(calls: Sequence[tuple[str, Sequence[float]]]) -> list[np.ndarray]:
    """Each ``(gate, params)`` call's matrix, as ``GATES[gate].matrix(params)`` gives it.

    The built-in rotations among them are built together, one array for each kind,
    each call's matrix a view of it: a circuit's engine needs thousands a run, and a
    small array each cost most of their time. Each entry is made by the arithmetic of
    its record's build, so the matrices are the same, bit for bit (signed zeros too).

    Raises:
        KeyError: a gate no record names.
        ValueError: as :meth:`Gate.matrix`, for the wrong number of parameters.

    >>> x, rz = matrices([("x", ()), ("rz", (0.5,))])
    >>> x.tolist(), bool((rz == GATES["rz"].matrix((0.5,))).all())
    ([[0j, (1+0j)], [(1+0j), 0j]], True)
    """
    rx, ry, rz = (GATES[name].build for name in ("rx", "ry", "rz"))  # QMK's own: never gone
    out: list[Any] = [None] * len(calls)
    turns: dict[Callable[[Sequence[float]], np.ndarray], list[int]] = {rx: [], ry: [], rz: []}
    for i, (name, params) in enumerate(calls):
        gate = GATES[name]
        at = turns.get(gate.build)
        if at is None or len(params) != 1:
            out[i] = gate.matrix(params)
        else:
            at.append(i)
    for build, at in turns.items():
        if not at:
            continue
        half = [calls[i][1][0] / 2 for i in at]
        c = [math.cos(h) for h in half]
        s = [math.sin(h) for h in half]
        stack = np.zeros((len(at), 2, 2), dtype=np.complex128)
        # each entry made by the Python arithmetic of its record's build (signed zeros too)
        if build is rz:
            stack[:, 0, 0] = [complex(x, -y) for x, y in zip(c, s, strict=True)]
            stack[:, 1, 1] = [complex(x, y) for x, y in zip(c, s, strict=True)]
        elif build is ry:
            stack[:, 0, 0] = stack[:, 1, 1] = c
            stack[:, 0, 1], stack[:, 1, 0] = [-y for y in s], s
        else:
            stack[:, 0, 0] = stack[:, 1, 1] = c
            stack[:, 0, 1] = stack[:, 1, 0] = [-1j * y for y in s]
        for k, i in enumerate(at):
            out[i] = stack[k]
    return out
