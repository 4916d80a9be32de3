"""Our gates as stim's, read from the gate records: what the tableau engine and the batch
compiler both apply.

:func:`stim_method` names the ``stim.TableauSimulator`` method equal (up to a global phase)
to a gate of :data:`~qmk.gates.GATES` at given parameters; :func:`stim_gate` names the
stim circuit instruction. A record's ``stim`` name is its counterpart at every parameter;
a rotation's ``stim_quarter`` names its counterparts at whole quarter turns only
(``rz(pi/2)`` is ``S``, ``rx(pi/2)`` is ``SQRT_X``, ``ry(pi/2)`` is ``SQRT_Y``); a gate
of neither has none. It sits below :mod:`qmk.engines.stabilizer` and
:mod:`qmk.engines.stim_batch` so that neither imports the other for it.

>>> import math
>>> stim_method("sdg"), stim_method("i"), stim_method("t"), stim_method("ry", [math.pi])
('s_dag', None, False, 'y')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from qmk.gates import GATES, quarter_turns


def stim_method(gate: str, params: Sequence[float] = ()) -> str | Literal[False] | None:
    """The TableauSimulator method equal (up to global phase) to ``gate(params)``.

    Returns:
        The method's name, None for the identity, or False when stim has no Clifford
        equal to it (a non-Clifford gate, an angle off the quarter turns, a parameter
        where the gate takes none, a gate that is no record).
    """
    name = stim_gate(gate, params)
    if name is None:
        return False
    return None if name == "I" else name.lower()


def stim_gate(gate: str, params: Sequence[float] = ()) -> str | None:
    """The stim circuit gate equal (up to global phase) to ``gate(params)``, or None.

    >>> stim_gate("rz", [math.pi / 2]), stim_gate("sdg"), stim_gate("t"), stim_gate("rx", [0.1])
    ('S', 'S_DAG', None, None)
    >>> stim_gate("i")
    'I'
    """
    record = GATES.get(gate) if isinstance(gate, str) else None
    if record is None:
        return None
    fixed = record.names.first("stim")
    if fixed is not None:
        return fixed if len(params) == len(record.params) else None
    quarter = record.names.stim_quarter
    if quarter is not None and len(params) == 1:
        theta = float(params[0])
        turns = quarter_turns(theta) if math.isfinite(theta) else None
        return None if turns is None else quarter[turns]
    return None
