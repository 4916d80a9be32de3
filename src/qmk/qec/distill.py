"""Magic-state distillation protocols: their codes, exact error polynomials and factory figures.

A distillation protocol takes ``n`` noisy T states and, when none of its checks
fires, outputs one better T state. After Pauli twirling (the Clifford ``S X``,
up to phase, fixes ``|T> = T|+>`` and diagonalizes any noisy copy of it), a
noisy input is the ideal ``|T>`` with a Z error of probability ``p``. (``Z|T>`` is
the state orthogonal to ``|T>``.) That is the input model here and in
:mod:`qmk.experiments.distill`, which simulates the protocols' circuits in stim.

The distillation circuit is Clifford apart from the T rotations, and the Z errors of
the inputs commute with every T rotation. So an input error pattern ``e`` (a 0/1
vector over the ``n`` inputs) is caught iff ``H e != 0`` for the protocol's check
matrix ``H``. It flips the output iff ``L . e = 1`` for its logical row ``L``. For the
15-to-1 protocols ``H`` has the 15 non-zero 4-bit
columns (the X checks of the [[15, 1, 3]] quantum Reed-Muller code, whose kernel
is the [15, 11] Hamming code) and ``L`` is all ones, so

- acceptance ``A(p) = sum_w A_w p^w (1 - p)^(15 - w)`` over the Hamming code's weight
  enumerator ``A_w`` (``1 - 15 p + O(p^2)``), and
- output error ``E(p) = sum_{w odd} A_w p^w (1 - p)^(15 - w) / A(p)``
  (``35 p^3 + O(p^4)``: the 35 weight-3 codewords).

:func:`exact_rates` computes both by enumerating all ``2^n`` patterns.
:data:`PROTOCOLS` lists the two 15-to-1 units of the estimator's factory table
(:mod:`qmk.estimate.tfactory`), each with the circuit the simulation runs and its
size and duration as that table states them.

>>> proto = protocol("15-to-1")
>>> proto.name, proto.inputs, proto.outputs
('15-to-1', 15, 1)
>>> rates = exact_rates(proto, 0.01)
>>> round(rates.acceptance, 6), f"{rates.output_error:.4e}"
(0.86009, '3.6088e-05')
>>> protocol("20-to-4")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
qmk.qec.errors.QECError: QC111 unknown-protocol: unknown distillation protocol '20-to-4'; ...
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from qmk.qec.errors import QECError

#: The single-qubit Pauli an input's twirled error applies: Z (``Z|T>`` is orthogonal to
#: ``|T>``; X and Y errors become Z or identity under the twirl that preserves ``|T>``).
INPUT_ERROR_PAULI = "Z"


def _rm15_checks() -> tuple[tuple[int, ...], ...]:
    """The 4 X checks of the [[15, 1, 3]] code: bit ``k`` of the input index ``i + 1``."""
    return tuple(tuple(((i + 1) >> k) & 1 for i in range(15)) for k in range(4))


@dataclass(frozen=True, slots=True, kw_only=True)
class DistillationProtocol:
    """One distillation protocol: which input errors it catches and what it costs.

    Attributes:
        name: the name ``qmk qec distill --protocol`` takes.
        aliases: other names (the estimator's unit names among them).
        estimator_unit: the name of the matching unit in :mod:`qmk.estimate.tfactory`.
        inputs: noisy T states consumed per run.
        outputs: T states delivered by an accepted run.
        checks: the check matrix ``H`` (one row per check, one column per input).
        logical: the logical row ``L``: inputs whose error flips the output.
        circuit: how :mod:`qmk.experiments.distill` builds the stim circuit.
        logical_qubits: the unit's footprint in logical patches (the estimator's figure).
        logical_cycles: the unit's duration in logical cycles (the estimator's figure).
        source: the paper the circuit follows.
    """

    name: str
    aliases: tuple[str, ...]
    estimator_unit: str
    inputs: int
    outputs: int
    checks: tuple[tuple[int, ...], ...]
    logical: tuple[int, ...]
    circuit: str
    logical_qubits: int
    logical_cycles: int
    source: str

    def __post_init__(self) -> None:
        if any(len(row) != self.inputs for row in (*self.checks, self.logical)):
            raise QECError.of("bad-parameter", f"protocol {self.name}: rows must have n entries")


RM_PREP = DistillationProtocol(
    name="15-to-1",
    aliases=("15-to-1 RM prep", "15-1 RM prep", "15-to-1 RM", "15-1 RM", "rm-prep"),
    estimator_unit="15-to-1 RM prep",
    inputs=15,
    outputs=1,
    checks=_rm15_checks(),
    logical=(1,) * 15,
    circuit="the [[15, 1, 3]] code's |+>_L prepared by a CNOT encoder on 15 qubits, a "
    "transversal T layer (its inputs' Z errors), every qubit measured in X: 4 X-check "
    "detectors, the logical X as the observable",
    logical_qubits=31,
    logical_cycles=11,
    source="Bravyi, Kitaev, quant-ph/0403025; Fowler, Mariantoni, Martinis, Cleland, "
    "arXiv:1208.0928 Sec. XVI",
)

SPACE_EFFICIENT = DistillationProtocol(
    name="15-to-1-space-efficient",
    aliases=(
        "15-to-1 space efficient",
        "15-to-1 space-efficient",
        "15-1 space efficient",
        "15-1 space-efficient",
        "space-efficient",
    ),
    estimator_unit="15-to-1 space efficient",
    inputs=15,
    outputs=1,
    checks=_rm15_checks(),
    logical=(1,) * 15,
    circuit="5 qubits in |+>, 15 pi/8 Z-type Pauli product rotations (each a T state "
    "consumed; its Z error is the rotation's Pauli), qubits 1-4 measured in X as "
    "detectors, the output's X as the observable",
    logical_qubits=20,
    logical_cycles=13,
    source="Litinski, 'Magic State Distillation: Not as Costly as You Think', "
    "arXiv:1905.06903, Fig. 2",
)

#: The protocols, by name.
PROTOCOLS: Mapping[str, DistillationProtocol] = MappingProxyType(
    {p.name: p for p in (RM_PREP, SPACE_EFFICIENT)}
)


def _key(name: str) -> str:
    return " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())


_BY_KEY: Mapping[str, DistillationProtocol] = MappingProxyType(
    {_key(alias): p for p in PROTOCOLS.values() for alias in (p.name, *p.aliases)}
)


def protocol(name: str | DistillationProtocol) -> DistillationProtocol:
    """The protocol called ``name`` (any alias; case, ``-`` and ``_`` ignored).

    Raises:
        QECError: ``QC111 unknown-protocol`` for a name no protocol has.
    """
    if isinstance(name, DistillationProtocol):
        return name
    found = _BY_KEY.get(_key(name))
    if found is None:
        raise QECError.of(
            "unknown-protocol",
            f"unknown distillation protocol {name!r}; known: {', '.join(PROTOCOLS)}",
            protocol=str(name),
        )
    return found


def check_input_error(p: float, option: str = "input error") -> float:
    """``p`` as a float in [0, 0.5], or ``QC103``."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 0.5:
        raise QECError.of("bad-parameter", f"{option} must lie in [0, 0.5], got {p!r}")
    return float(p)


@dataclass(frozen=True, slots=True, kw_only=True)
class Enumerator:
    """Error patterns a protocol accepts, by weight.

    Attributes:
        accepted: ``accepted[w]``: weight-``w`` patterns no check catches.
        flipped: ``flipped[w]``: those among them that flip the output.
    """

    accepted: tuple[int, ...]
    flipped: tuple[int, ...]


@functools.lru_cache(maxsize=8)
def enumerator(proto: DistillationProtocol) -> Enumerator:
    """Count every one of the ``2^n`` input error patterns (n <= 20) by weight and fate.

    >>> e = enumerator(protocol("15-to-1"))
    >>> e.accepted[:5], sum(e.accepted), e.flipped[3]
    ((1, 0, 0, 35, 105), 2048, 35)
    """
    n = proto.inputs
    if n > 20:
        raise QECError.of("bad-parameter", f"{proto.name}: {n} inputs are too many to enumerate")
    patterns = np.arange(1 << n, dtype=np.int64)
    bits = ((patterns[:, None] >> np.arange(n)) & 1).astype(np.int64)
    weights = bits.sum(axis=1)
    syndrome = (bits @ np.array(proto.checks, dtype=np.int64).T) % 2
    caught = syndrome.any(axis=1)
    flips = (bits @ np.array(proto.logical, dtype=np.int64)) % 2 == 1
    accepted = np.bincount(weights[~caught], minlength=n + 1)
    flipped = np.bincount(weights[~caught & flips], minlength=n + 1)
    return Enumerator(
        accepted=tuple(int(x) for x in accepted), flipped=tuple(int(x) for x in flipped)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ExactRates:
    """A protocol's exact acceptance and output error at input error ``p`` (Z errors only).

    Attributes:
        input_error: ``p``.
        acceptance: probability that no check fires.
        joint_error: probability that no check fires and the output is flipped.
        output_error: ``joint_error / acceptance``: the error of a delivered state.
    """

    input_error: float
    acceptance: float
    joint_error: float
    output_error: float


def exact_rates(proto: str | DistillationProtocol, p: float) -> ExactRates:
    """The exact acceptance and output error from :func:`enumerator`'s polynomial.

    Raises:
        QECError: ``QC111`` for an unknown protocol, ``QC103`` for ``p`` outside [0, 0.5].
    """
    proto = protocol(proto)
    p = check_input_error(p)
    counts = enumerator(proto)
    n = proto.inputs

    def polynomial(coefficients: tuple[int, ...]) -> float:
        return math.fsum(c * p**w * (1 - p) ** (n - w) for w, c in enumerate(coefficients) if c)

    accepted = polynomial(counts.accepted)
    joint = polynomial(counts.flipped)
    return ExactRates(
        input_error=p,
        acceptance=accepted,
        joint_error=joint,
        output_error=joint / accepted if accepted > 0 else math.nan,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class FactoryFigures:
    """What a layout or scheduler needs of one distillation unit at one input error.

    Attributes:
        protocol: the protocol's name.
        input_error: the injected T states' error ``p``.
        output_error_rate: the error of a delivered T state.
        acceptance_rate: the probability that a run delivers (no check fires).
        inputs: T states consumed per run.
        outputs: T states delivered by an accepted run.
        logical_cycles: one run's duration in logical cycles.
        logical_qubits: the unit's footprint in logical patches.
        source: ``"exact"`` (the enumerated polynomial) or ``"simulated"`` (stim).
    """

    protocol: str
    input_error: float
    output_error_rate: float
    acceptance_rate: float
    inputs: int
    outputs: int
    logical_cycles: int
    logical_qubits: int
    source: str

    @property
    def cycles_per_state(self) -> float:
        """Expected logical cycles per delivered state (retrying rejected runs)."""
        if self.acceptance_rate <= 0:
            return math.inf
        return self.logical_cycles / (self.acceptance_rate * self.outputs)


def factory_figures(proto: str | DistillationProtocol, input_error: float) -> FactoryFigures:
    """One unit's figures from the exact polynomial (deterministic and cheap).

    >>> f = factory_figures("15-to-1", 1e-3)
    >>> f"{f.output_error_rate:.3e}", round(f.acceptance_rate, 4), f.logical_cycles
    ('3.511e-08', 0.9851, 11)
    >>> round(f.cycles_per_state, 3)
    11.166

    Raises:
        QECError: ``QC111`` for an unknown protocol, ``QC103`` for ``p`` outside [0, 0.5].
    """
    proto = protocol(proto)
    rates = exact_rates(proto, input_error)
    return figures_of(proto, rates.input_error, rates.output_error, rates.acceptance, "exact")


def figures_of(
    proto: DistillationProtocol,
    input_error: float,
    output_error: float,
    acceptance: float,
    source: str,
) -> FactoryFigures:
    """:class:`FactoryFigures` of ``proto`` with the given rates."""
    return FactoryFigures(
        protocol=proto.name,
        input_error=input_error,
        output_error_rate=output_error,
        acceptance_rate=acceptance,
        inputs=proto.inputs,
        outputs=proto.outputs,
        logical_cycles=proto.logical_cycles,
        logical_qubits=proto.logical_qubits,
        source=source,
    )
