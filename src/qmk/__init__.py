"""QMK, a quantum microkernel for fault-tolerant quantum computers.

The foundation is the QVM program format (:mod:`qmk.qvm`): a verifiable graph of
operations over linear qubit and channel handles, measurement events, guards,
capabilities and epoch fences.

What a user may rely on is :data:`__all__`, and nothing else of this module:

- :func:`run` runs a program in-process: its text (OpenQASM 2/3, QVM JSON or assembly,
  QIR), its file or its graph; it returns a :class:`RunResult` (counts, every shot's
  outcomes, :class:`Telemetry`, a plot and a notebook view);
- :class:`Client` and :class:`AsyncClient` talk to a kernel (``qmk serve``);
- :class:`QMKError` is the root of every error QMK raises on purpose, each with a stable
  code. The families a user catches most are the program's (:class:`FrontendError`,
  :class:`FormatError`, :class:`VerificationError`) and the machine's
  (:class:`EngineError`, :class:`QECError`). So are a target's (:class:`TargetError`: an
  unknown target, ``QM101``, or an option it cannot honour, ``QM102``), a kernel's
  refusals (:class:`SyscallError`) and the wire's (:class:`TransportError`);
- ``__version__``.

The rest of QMK is in its subpackages (:mod:`qmk.qvm`, :mod:`qmk.frontends`,
:mod:`qmk.estimate`, :mod:`qmk.qiskit`, ...). Every name but the version and the error
root is loaded on first use, so ``import qmk`` stays light (no numpy).

>>> import qmk
>>> qmk.__version__.count(".") >= 2
True
>>> qmk.run.__module__
'qmk._front'
>>> issubclass(qmk.EngineError, qmk.QMKError)
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qmk.errors import QMKError, SyscallError

#: The version of QMK: the one place it is written (pyproject.toml reads it from here).
__version__ = "0.1.0"

if TYPE_CHECKING:
    from qmk._front import run
    from qmk.abi.errors import TransportError
    from qmk.client import AsyncClient, Client
    from qmk.engines.base import EngineError
    from qmk.execution.result import RunResult, Telemetry
    from qmk.execution.target import TargetError
    from qmk.frontends.errors import FrontendError
    from qmk.qec.errors import QECError
    from qmk.qvm.errors import FormatError, VerificationError


def __getattr__(name: str) -> Any:
    # each name is imported on first use (numpy, stim, the engines), by a plain import
    # statement each, so the layer test sees what this module reaches
    if name == "run":
        from qmk._front import run

        return run
    if name in ("RunResult", "Telemetry"):
        from qmk.execution.result import RunResult, Telemetry

        return {"RunResult": RunResult, "Telemetry": Telemetry}[name]
    if name in ("Client", "AsyncClient"):
        from qmk.client import AsyncClient, Client

        return {"Client": Client, "AsyncClient": AsyncClient}[name]
    if name in ("FormatError", "VerificationError"):
        from qmk.qvm.errors import FormatError, VerificationError

        return {"FormatError": FormatError, "VerificationError": VerificationError}[name]
    if name == "FrontendError":
        from qmk.frontends.errors import FrontendError

        return FrontendError
    if name == "EngineError":
        from qmk.engines.base import EngineError

        return EngineError
    if name == "QECError":
        from qmk.qec.errors import QECError

        return QECError
    if name == "TargetError":
        from qmk.execution.target import TargetError

        return TargetError
    if name == "TransportError":
        from qmk.abi.errors import TransportError

        return TransportError
    raise AttributeError(f"module 'qmk' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


#: The user's surface: what QMK promises to keep (a test pins this list, so that a change
#: to it is a decision, written in the changelog).
__all__ = [
    "AsyncClient",
    "Client",
    "EngineError",
    "FormatError",
    "FrontendError",
    "QECError",
    "QMKError",
    "RunResult",
    "SyscallError",
    "TargetError",
    "Telemetry",
    "TransportError",
    "VerificationError",
    "__version__",
    "run",
]
