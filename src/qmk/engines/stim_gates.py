"""Our gates as stim's: the one table the tableau engine and the batch compiler both read.

:func:`stim_method` names the ``stim.TableauSimulator`` method equal (up to a global phase)
to one of :data:`~qmk.engines.gates.GATES` at given parameters; :func:`stim_gate` names the
stim circuit instruction. The Clifford gates have a fixed counterpart; ``rx``/``ry``/``rz``
have one at whole quarter turns only (``rz(pi/2)`` is ``S``, ``rx(pi/2)`` is ``SQRT_X``,
``ry(pi/2)`` is ``SQRT_Y``). It sits below :mod:`qmk.engines.stabilizer` and
:mod:`qmk.engines.stim_batch` so that neither imports the other for it.

>>> import math
>>> stim_method("sdg"), stim_method("i"), stim_method("t"), stim_method("ry", [math.pi])
('s_dag', None, False, 'y')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from qmk.engines.gates import quarter_turns

#: Gates with a fixed stim counterpart: our name -> TableauSimulator method (None: identity).
_FIXED: dict[str, str | None] = {
    "i": None,
    "x": "x",
    "y": "y",
    "z": "z",
    "h": "h",
    "s": "s",
    "sdg": "s_dag",
    "cx": "cx",
    "cz": "cz",
    "swap": "swap",
}

#: Rotations at k quarter turns, k = 0..3, equal (up to global phase) to these stim methods.
#: rz(pi/2) = e^{-i pi/4} S, rx(pi/2) = e^{-i pi/4} SQRT_X, ry(pi/2) = e^{-i pi/4} SQRT_Y.
_QUARTER: dict[str, tuple[str | None, str, str, str]] = {
    "rx": (None, "sqrt_x", "x", "sqrt_x_dag"),
    "ry": (None, "sqrt_y", "y", "sqrt_y_dag"),
    "rz": (None, "s", "z", "s_dag"),
}


def stim_method(gate: str, params: Sequence[float] = ()) -> str | Literal[False] | None:
    """The TableauSimulator method equal (up to global phase) to ``gate(params)``.

    Returns:
        The method's name, None for the identity, or False when stim has no Clifford
        equal to it (a non-Clifford gate, an angle off the quarter turns, a parameter
        where the gate takes none).
    """
    if gate in _FIXED:
        return _FIXED[gate] if not params else False
    if gate in _QUARTER and len(params) == 1:
        theta = float(params[0])
        turns = quarter_turns(theta) if math.isfinite(theta) else None
        return False if turns is None else _QUARTER[gate][turns]
    return False


def stim_gate(gate: str, params: Sequence[float] = ()) -> str | None:
    """The stim circuit gate equal (up to global phase) to ``gate(params)``, or None.

    >>> stim_gate("rz", [math.pi / 2]), stim_gate("sdg"), stim_gate("t"), stim_gate("rx", [0.1])
    ('S', 'S_DAG', None, None)
    >>> stim_gate("i")
    'I'
    """
    method = stim_method(gate, params)
    if method is False:
        return None
    return "I" if method is None else method.upper()
