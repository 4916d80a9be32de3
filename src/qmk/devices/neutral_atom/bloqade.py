"""Bloqade (Kirin) kernels onto the neutral-atom device, through their OpenQASM 2 emission.

Public API: :func:`kernel_qasm` (a kernel's OpenQASM 2 text), :func:`kernel_program`
(the QVM program QMK's OpenQASM 2 front-end lowers it to), :func:`compile_kernel` and
:func:`run_kernel` (:func:`~.compile.compile_program` / :func:`~.compile.run_program` of
that program).

``bloqade-circuit`` (the optional ``bloqade`` extra) is imported only when a function is
called. A kernel of its ``qasm2`` dialect (``@qasm2.main`` or ``@qasm2.extended``) is
emitted by bloqade's own ``bloqade.qasm2.emit.QASM2`` target, the route bloqade itself
offers to other toolchains; QMK then reads that text like any ``.qasm`` file, so every
gate, register and measurement keeps the meaning the front-end's tests check against Aer.
A kernel that bloqade cannot emit as OpenQASM 2 (a ``squin`` kernel, noise or
feed-forward statements) is ``QD301`` with bloqade's reason.

Why not as a test dependency: ``bloqade-circuit`` 0.15.4 pins ``pydantic<2.11`` and,
through ``bloqade-decoders`` -> ``beliefmatching``, ``numpy<=2.2.6``, below what QMK's
other extras install; and its ``qasm2`` module needs ``lark`` (its ``qasm2`` extra).
Install it into an environment of its own: ``pip install 'quantum-microkernel[bloqade]'``.
"""

from __future__ import annotations

import os
from typing import Any

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.profiles import Profile
from qmk.qvm.graph import Graph


def _missing(exc: ImportError) -> DeviceError:
    return DeviceError.of(
        "compile-unsupported",
        f"bloqade kernels need bloqade-circuit with its qasm2 extra "
        f"(pip install 'quantum-microkernel[bloqade]'): {exc}",
    )


def kernel_qasm(kernel: Any) -> str:
    """The OpenQASM 2 text bloqade emits for ``kernel`` (a ``qasm2`` dialect method).

    Raises:
        DeviceError: ``QD301`` when bloqade is not installed or cannot emit the kernel.
    """
    try:
        from bloqade.qasm2.emit import QASM2
    except ImportError as exc:
        raise _missing(exc) from None
    try:
        return str(QASM2().emit_str(kernel))
    except Exception as exc:  # bloqade raises its own (and Kirin's) error types
        name = getattr(kernel, "sym_name", None) or getattr(kernel, "__name__", "kernel")
        raise DeviceError.of(
            "compile-unsupported",
            f"bloqade kernel {name!r} has no OpenQASM 2 form: {type(exc).__name__}: {exc}",
            kernel=str(name),
        ) from None


def kernel_program(kernel: Any) -> Graph:
    """``kernel`` as a QVM program (bloqade's OpenQASM 2, read by QMK's front-end)."""
    from qmk.frontends.qasm import from_qasm

    name = getattr(kernel, "sym_name", None) or "bloqade"
    return from_qasm(kernel_qasm(kernel), name=f"<bloqade {name}>")


def compile_kernel(
    kernel: Any, profile: str | os.PathLike[str] | Profile, **options: Any
) -> tuple[dict[str, Any], Any]:
    """:func:`~.compile.compile_program` of the kernel: ``(wire job, CompileReport)``."""
    from qmk.devices.neutral_atom.compile import compile_program

    return compile_program(kernel_program(kernel), profile, **options)


def run_kernel(kernel: Any, device: str | os.PathLike[str] | Profile, **options: Any) -> Any:
    """:func:`~.compile.run_program` of the kernel: a :class:`~.compile.DeviceRun`."""
    from qmk.devices.neutral_atom.compile import run_program

    return run_program(kernel_program(kernel), device, **options)


__all__ = ["compile_kernel", "kernel_program", "kernel_qasm", "run_kernel"]
