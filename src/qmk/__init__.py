"""QMK, a quantum microkernel for fault-tolerant quantum computers.

The foundation is the QVM program format (:mod:`qmk.qvm`): a verifiable graph of
operations over linear qubit and channel handles, measurement events, guards,
capabilities and epoch fences. :func:`qmk.run` runs a program in-process; it is
:func:`qmk.execution.executor.run` itself, loaded on first use so that ``import qmk``
stays light.

>>> import qmk
>>> qmk.__version__.count(".") >= 2
True
>>> qmk.run.__module__
'qmk.execution.executor'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qmk.errors import QMKError

#: The version of QMK: the one place it is written (pyproject.toml reads it from here).
__version__ = "0.1.0"

if TYPE_CHECKING:
    from qmk.execution.executor import run


def __getattr__(name: str) -> Any:
    # qmk.run is the executor's run, imported on first use (numpy, stim) rather than
    # wrapped: a wrapper would have to restate its signature or lose its types
    if name == "run":
        from qmk.execution.executor import run

        return run
    raise AttributeError(f"module 'qmk' has no attribute {name!r}")


__all__ = ["QMKError", "__version__", "run"]
