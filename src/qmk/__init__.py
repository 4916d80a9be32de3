"""QMK, a quantum microkernel for fault-tolerant quantum computers.

The foundation is the QVM program format (:mod:`qmk.qvm`): a verifiable graph of
operations over linear qubit and channel handles, measurement events, guards,
capabilities and epoch fences.

>>> import qmk
>>> qmk.__version__.count(".") >= 2
True
"""

from typing import Any

from qmk.errors import QMKError

__version__ = "0.1.0"


def run(program: Any, **options: Any) -> Any:
    """Run a program in-process: see :func:`qmk.execution.executor.run`."""
    from qmk.execution.executor import run as _run

    return _run(program, **options)


__all__ = ["QMKError", "__version__", "run"]
