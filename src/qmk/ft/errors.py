"""Errors of fault-tolerant execution, each with a stable ``QP`` code (exit status 2).

This module registers the ``QP`` family (patches) in :data:`qmk.errors.REGISTRY`:
programs or options the layout compiler and the lattice-surgery executor cannot take.

>>> str(FTError.of("op-unsupported", "n3: MEASURE_BELL"))
'QP101 op-unsupported: n3: MEASURE_BELL'
"""

from __future__ import annotations

from qmk.errors import QMKError, register


class FTError(QMKError):
    """A program or option the layout compiler or lattice surgery cannot take."""

    exit_status = 2


register(
    FTError,
    (
        "QP101",
        "op-unsupported",
        "the lattice-surgery lowering has no Pauli-product form for this op",
        "use Clifford+T gates (H, S, CNOT, CZ, SWAP, T, CCX, CCZ), rotations, "
        "Pauli measurements, INJECT_T_STATE, COND_PAULI, RESET, ALLOC_LQ and FREE_LQ; or "
        "run it without --lattice-surgery",
    ),
    (
        "QP102",
        "rotation-unpriced",
        "an arbitrary-angle rotation, and the estimate gives no numTsPerRotation to price "
        "its synthesised sequence",
        "give the estimate the program the rotation belongs to (ft_model of its counts)",
    ),
    (
        "QP103",
        "guard-unsupported",
        "a classically controlled node (when ...) that is not a Pauli or one of the "
        "Cliffords lattice surgery controls (H, S, SDG, CNOT, CZ, SWAP)",
        "control only Paulis and those Cliffords, or run it without --lattice-surgery",
    ),
    (
        "QP104",
        "code-unsupported",
        "the code family has no lattice-surgery patches (Litinski's blocks are surface-code "
        "patches)",
        "use a surface_code or floquet_code profile",
    ),
    (
        "QP105",
        "option-unsupported",
        "an option of qmk run that a lattice-surgery run cannot honour",
        "leave the option out, or run without --lattice-surgery",
    ),
    (
        "QP106",
        "plot-unavailable",
        "drawing a layout as PNG needs matplotlib",
        "install the plot extra: pip install 'quantum-microkernel[plot]'",
    ),
    (
        "QP107",
        "bad-block",
        "no block layout of this name",
        "use compact, intermediate or fast",
    ),
)
