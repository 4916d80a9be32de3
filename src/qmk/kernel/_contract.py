"""The kernel's side of the qSyscall contract, checked by mypy and never run.

:class:`~qmk.abi.protocol.KernelSyscalls` is generated from the method table
(:data:`qmk.abi.methods.METHODS`). The function below type-checks only while
:class:`~qmk.kernel.service.Kernel` offers every syscall with the table's params, types
and defaults, so a kernel signature that drifts from the table fails ``make lint``
(``tests/abi/test_codegen.py`` compares the default values, which mypy does not).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qmk.abi.protocol import KernelSyscalls
    from qmk.kernel.service import Kernel

    def _the_kernel_serves_the_method_table(kernel: Kernel) -> KernelSyscalls:
        return kernel
