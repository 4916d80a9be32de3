"""The gate records: every gate QMK names, each one record, and the one registry of them.

A :class:`Gate` holds what is true of a gate whoever applies it: its arity and
parameters, its matrix, the gate that undoes it, whether it is Clifford, diagonal or a
Pauli. It holds its name in each language and simulator QMK speaks (:class:`Names`:
OpenQASM 2 and 3, QIR, stim, Qiskit, Cirq, PennyLane, Braket, QuTiP). Everything that
names gates reads them here, nothing lists gates beside it:

- the engines (:mod:`qmk.engines`: the statevector's bookkeeping, the stabilizer's and
  the batch compiler's stim gates, the adapters' gates in Cirq, qsim, Aer, Lightning
  and Braket, each a matrix where the simulator has no name for it), the state files'
  preparations (:mod:`qmk.engines.state_io`);
- the op table's gate ops (:mod:`qmk.qvm.ops`: an op row names its gate, and takes
  the gate's arity, parameters, unitarity, Clifford-ness and inverse from it), and
  through it the verifier, the executor, the random programs of the tests;
- the front-ends' standard gates (:mod:`qmk.frontends.decompose`), the names they read
  (OpenQASM's ``qelib1.inc`` and ``stdgates.inc``, QIR, PennyLane, QuTiP) and the
  OpenQASM 3 writer's, the lattice-surgery lowering's stim gates (:mod:`qmk.ft.lower`).

Adding a gate is adding its record to :data:`GATES` (and, for a gate programs apply,
its op row in :mod:`qmk.qvm.ops`, which says its name, cost and tally); a test walks
every record (``tests/test_gates.py``). :func:`register` adds one at run time (an
extension's gate): every engine then applies it or refuses it with a coded error.

Conventions: qubit 0 of a gate is the most significant bit of its matrix index
(``cx`` on ``(c, t)`` is ``|c t> -> |c, t xor c>``); rotations take radians with
``rz(t) = exp(-i t Z / 2)``. Matrices are numpy arrays, built on first use (importing
this module does not import numpy).

>>> GATES["sdg"].inverse, GATES["rz"].is_clifford((math.pi / 2,)), GATES["t"].is_clifford()
('s', True, False)
>>> GATES["sdg"].names.of("qir"), GATES["cx"].names.of("qutip")
(('s__adj',), ('CNOT', 'CX'))
>>> named("pennylane", "Toffoli").name, named("stim", "S_DAG").name, named("cirq", "nope")
('ccx', 'sdg', None)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: The languages and simulators a record names its gate in (the fields of :class:`Names`).
LANGUAGES = ("qasm2", "qasm3", "qir", "stim", "qiskit", "cirq", "pennylane", "braket", "qutip")

_Name = str | tuple[str, ...] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Names:
    """A gate's names: in each language, the name it is written as (the first of a
    tuple) and the others it is read as; None where the language has no such gate.

    - ``qasm2``, ``qasm3``: the gate of OpenQASM 2's ``qelib1.inc`` and OpenQASM 3's
      ``stdgates.inc`` (``qasm3_definition``: the ``gate`` definition the OpenQASM 3
      writer puts at the top of a program that uses a gate ``stdgates.inc`` lacks;
      the reader then takes the name only where the program defines it);
    - ``qir``: the ``__quantum__qis__`` function's suffix (``s__adj``);
    - ``stim``: stim's gate at every parameter (``S_DAG``; ``I`` for the identity);
      ``stim_quarter``: for a rotation, stim's gates at 0, 1, 2 and 3 quarter turns;
    - ``qiskit``: the ``QuantumCircuit`` method and instruction name;
    - ``cirq``: the ``cirq`` attribute, a gate (``CNOT``), a gate to a power (``S**-1``)
      or a function of the angle (``rx``);
    - ``pennylane``: the operation's name (``Adjoint(S)`` for an adjoint);
    - ``braket``: the class of ``braket.default_simulator.gate_operations``;
    - ``qutip``: the ``qutip_qip`` gate name.

    >>> Names(qasm2="cx", qir=("cx__body", "cnot__body")).of("qir")
    ('cx__body', 'cnot__body')
    """

    qasm2: _Name = None
    qasm3: _Name = None
    qasm3_definition: str | None = None
    qir: _Name = None
    stim: _Name = None
    stim_quarter: tuple[str, str, str, str] | None = None
    qiskit: _Name = None
    cirq: _Name = None
    pennylane: _Name = None
    braket: _Name = None
    qutip: _Name = None

    def of(self, language: str) -> tuple[str, ...]:
        """The gate's names in ``language`` (one of :data:`LANGUAGES`), the written one
        first; empty where the language has none."""
        value = getattr(self, language)
        if value is None:
            return ()
        return (value,) if isinstance(value, str) else tuple(value)

    def first(self, language: str) -> str | None:
        """The name the gate is written as in ``language``, or None."""
        names = self.of(language)
        return names[0] if names else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Gate:
    """One gate: its name, arity, parameter names, unitary, algebraic flags and names.

    ``clifford`` is True when the gate is Clifford for every parameter value,
    ``quarter_turn`` when it is Clifford exactly at multiples of pi/2 of its one
    parameter. ``diagonal`` gates commute with each other and with Z measurement;
    ``pauli`` gates are Paulis (the identity included). ``inverse`` names the gate
    whose matrix is this one's adjoint (empty: itself; a parameter's sign flips: see
    :meth:`adjoint`). ``generator``, for a gate of one parameter, is the Pauli word
    ``P`` (one letter per qubit, qubit 0 first) with ``matrix(theta) = exp(-i theta P/2)``:
    its derivative is ``-i/2 P matrix(theta)``, which adjoint differentiation applies
    (:mod:`qmk.engines.adjoint`); empty where the gate has none.
    """

    name: str
    qubits: int
    params: tuple[str, ...] = ()
    clifford: bool = False
    quarter_turn: bool = False
    diagonal: bool = False
    pauli: bool = False
    inverse: str = ""
    generator: str = ""
    build: Callable[[Sequence[float]], np.ndarray]
    names: Names = Names()

    def matrix(self, params: Sequence[float] = ()) -> np.ndarray:
        """The unitary, a ``2**qubits`` square complex128 matrix."""
        if len(params) != len(self.params):
            raise ValueError(f"{self.name} takes {len(self.params)} parameters, got {len(params)}")
        return self.build(params)

    def adjoint(self, params: Sequence[float] = ()) -> tuple[str, tuple[float, ...]]:
        """The gate and parameters that undo this gate with ``params``.

        >>> GATES["t"].adjoint(), GATES["rz"].adjoint((0.5,)), GATES["cx"].adjoint()
        (('tdg', ()), ('rz', (-0.5,)), ('cx', ()))
        """
        return (self.inverse or self.name), tuple(-float(p) for p in params)

    def is_clifford(self, params: Sequence[float] = ()) -> bool:
        """Whether the gate with these parameters is a Clifford gate."""
        if self.clifford:
            return True
        return self.quarter_turn and quarter_turns(params[0]) is not None


def quarter_turns(theta: float, *, tolerance: float = 1e-9) -> int | None:
    """``theta`` as a whole number of quarter turns (mod 4), or None when it is not one.

    >>> quarter_turns(math.pi), quarter_turns(-math.pi / 2), quarter_turns(0.1)
    (2, 3, None)
    """
    turns = theta / (math.pi / 2)
    nearest = round(turns)
    if abs(turns - nearest) > tolerance:
        return None
    return nearest % 4


class _Fixed:
    """A parameterless gate's matrix, made (read-only) on its first use."""

    __slots__ = ("_matrix", "_rows")

    def __init__(self, rows: Sequence[Sequence[complex]]) -> None:
        self._rows = rows
        self._matrix: np.ndarray | None = None

    def __call__(self, _params: Sequence[float]) -> np.ndarray:
        matrix = self._matrix
        if matrix is None:
            import numpy as np

            matrix = np.array(self._rows, dtype=np.complex128)
            matrix.setflags(write=False)
            self._matrix = matrix
        return matrix


def fixed(rows: Sequence[Sequence[complex]]) -> Callable[[Sequence[float]], np.ndarray]:
    """A :attr:`Gate.build` for a gate without parameters: the matrix of ``rows``.

    >>> fixed([[0, 1], [1, 0]])(()).tolist()
    [[0j, (1+0j)], [(1+0j), 0j]]
    """
    return _Fixed(rows)


def _rx(params: Sequence[float]) -> np.ndarray:
    import numpy as np

    c, s = math.cos(params[0] / 2), math.sin(params[0] / 2)
    return np.array([[c, -1j * s], [-1j * s, c]], dtype=np.complex128)


def _ry(params: Sequence[float]) -> np.ndarray:
    import numpy as np

    c, s = math.cos(params[0] / 2), math.sin(params[0] / 2)
    return np.array([[c, -s], [s, c]], dtype=np.complex128)


def _rz(params: Sequence[float]) -> np.ndarray:
    import numpy as np

    half = params[0] / 2
    c, s = math.cos(half), math.sin(half)
    # two entries set in zeros: half the time of np.array of nested lists (a random
    # circuit's engine builds hundreds of these a run)
    matrix = np.zeros((2, 2), dtype=np.complex128)
    matrix[0, 0] = complex(c, -s)
    matrix[1, 1] = complex(c, s)
    return matrix


_S2 = 1 / math.sqrt(2)
_T = complex(_S2, _S2)


_BUILT_IN = (
    Gate(
        name="i",
        qubits=1,
        clifford=True,
        diagonal=True,
        pauli=True,
        build=fixed([[1, 0], [0, 1]]),
        names=Names(
            qasm2="id",
            qasm3="id",
            qiskit="id",
            stim="I",
            cirq="I",
            pennylane="Identity",
            braket="Identity",
            qutip="IDLE",
        ),
    ),
    Gate(
        name="x",
        qubits=1,
        clifford=True,
        pauli=True,
        build=fixed([[0, 1], [1, 0]]),
        names=Names(
            qasm2="x",
            qasm3="x",
            qiskit="x",
            qir="x__body",
            stim="X",
            cirq="X",
            pennylane="PauliX",
            braket="PauliX",
            qutip="X",
        ),
    ),
    Gate(
        name="y",
        qubits=1,
        clifford=True,
        pauli=True,
        build=fixed([[0, -1j], [1j, 0]]),
        names=Names(
            qasm2="y",
            qasm3="y",
            qiskit="y",
            qir="y__body",
            stim="Y",
            cirq="Y",
            pennylane="PauliY",
            braket="PauliY",
            qutip="Y",
        ),
    ),
    Gate(
        name="z",
        qubits=1,
        clifford=True,
        diagonal=True,
        pauli=True,
        build=fixed([[1, 0], [0, -1]]),
        names=Names(
            qasm2="z",
            qasm3="z",
            qiskit="z",
            qir="z__body",
            stim="Z",
            cirq="Z",
            pennylane="PauliZ",
            braket="PauliZ",
            qutip="Z",
        ),
    ),
    Gate(
        name="h",
        qubits=1,
        clifford=True,
        build=fixed([[_S2, _S2], [_S2, -_S2]]),
        names=Names(
            qasm2="h",
            qasm3="h",
            qiskit="h",
            qir="h__body",
            stim="H",
            cirq="H",
            pennylane="Hadamard",
            braket="Hadamard",
            qutip="SNOT",
        ),
    ),
    Gate(
        name="s",
        inverse="sdg",
        qubits=1,
        clifford=True,
        diagonal=True,
        build=fixed([[1, 0], [0, 1j]]),
        names=Names(
            qasm2="s",
            qasm3="s",
            qiskit="s",
            qir="s__body",
            stim="S",
            cirq="S",
            pennylane="S",
            braket="S",
            qutip="S",
        ),
    ),
    Gate(
        name="sdg",
        inverse="s",
        qubits=1,
        clifford=True,
        diagonal=True,
        build=fixed([[1, 0], [0, -1j]]),
        names=Names(
            qasm2="sdg",
            qasm3="sdg",
            qiskit="sdg",
            qir="s__adj",
            stim="S_DAG",
            cirq="S**-1",
            pennylane="Adjoint(S)",
            braket="Si",
        ),
    ),
    Gate(
        name="t",
        inverse="tdg",
        qubits=1,
        diagonal=True,
        build=fixed([[1, 0], [0, _T]]),
        names=Names(
            qasm2="t",
            qasm3="t",
            qiskit="t",
            qir="t__body",
            cirq="T",
            pennylane="T",
            braket="T",
            qutip="T",
        ),
    ),
    Gate(
        name="tdg",
        inverse="t",
        qubits=1,
        diagonal=True,
        build=fixed([[1, 0], [0, _T.conjugate()]]),
        names=Names(
            qasm2="tdg",
            qasm3="tdg",
            qiskit="tdg",
            qir="t__adj",
            cirq="T**-1",
            pennylane="Adjoint(T)",
            braket="Ti",
        ),
    ),
    Gate(
        name="rx",
        qubits=1,
        params=("theta",),
        quarter_turn=True,
        generator="X",
        build=_rx,
        names=Names(
            qasm2="rx",
            qasm3="rx",
            qiskit="rx",
            qir="rx__body",
            stim_quarter=("I", "SQRT_X", "X", "SQRT_X_DAG"),
            cirq="rx",
            pennylane="RX",
            braket="RotX",
            qutip="RX",
        ),
    ),
    Gate(
        name="ry",
        qubits=1,
        params=("theta",),
        quarter_turn=True,
        generator="Y",
        build=_ry,
        names=Names(
            qasm2="ry",
            qasm3="ry",
            qiskit="ry",
            qir="ry__body",
            stim_quarter=("I", "SQRT_Y", "Y", "SQRT_Y_DAG"),
            cirq="ry",
            pennylane="RY",
            braket="RotY",
            qutip="RY",
        ),
    ),
    Gate(
        name="rz",
        qubits=1,
        params=("theta",),
        quarter_turn=True,
        generator="Z",
        diagonal=True,
        build=_rz,
        names=Names(
            qasm2="rz",
            qasm3="rz",
            qiskit="rz",
            qir="rz__body",
            stim_quarter=("I", "S", "Z", "S_DAG"),
            cirq="rz",
            pennylane="RZ",
            braket="RotZ",
            qutip="RZ",
        ),
    ),
    Gate(
        name="cx",
        qubits=2,
        clifford=True,
        build=fixed([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]),
        names=Names(
            qasm2="cx",
            qasm3=("cx", "CX"),
            qiskit="cx",
            qir=("cx__body", "cnot__body"),
            stim="CX",
            cirq="CNOT",
            pennylane="CNOT",
            braket="CX",
            qutip=("CNOT", "CX"),
        ),
    ),
    Gate(
        name="cz",
        qubits=2,
        clifford=True,
        diagonal=True,
        build=fixed([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, -1]]),
        names=Names(
            qasm2="cz",
            qasm3="cz",
            qiskit="cz",
            qir="cz__body",
            stim="CZ",
            cirq="CZ",
            pennylane="CZ",
            braket="CZ",
            qutip=("CZ", "CSIGN"),
        ),
    ),
    Gate(
        name="swap",
        qubits=2,
        clifford=True,
        build=fixed([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]),
        names=Names(
            qasm2="swap",
            qasm3="swap",
            qiskit="swap",
            qir="swap__body",
            stim="SWAP",
            cirq="SWAP",
            pennylane="SWAP",
            braket="Swap",
            qutip="SWAP",
        ),
    ),
    Gate(
        name="ccx",
        qubits=3,
        build=fixed(
            [[1 if (r == c if r < 6 else r + c == 13) else 0 for c in range(8)] for r in range(8)]
        ),
        names=Names(
            qasm2="ccx",
            qasm3="ccx",
            qiskit="ccx",
            qir="ccx__body",
            cirq="CCX",
            pennylane="Toffoli",
            braket="CCNot",
            qutip="TOFFOLI",
        ),
    ),
    Gate(
        name="ccz",
        qubits=3,
        diagonal=True,
        build=fixed([[(-1 if r == 7 else 1) if r == c else 0 for c in range(8)] for r in range(8)]),
        names=Names(
            qasm3="ccz",
            qasm3_definition="gate ccz a, b, c { h c; ccx a, b, c; h c; }",
            qiskit="ccz",
            cirq="CCZ",
            pennylane="CCZ",
        ),
    ),
)

_RECORDS: dict[str, Gate] = {gate.name: gate for gate in _BUILT_IN}
#: Every gate, by name: the records above and those :func:`register` added since.
GATES: Mapping[str, Gate] = MappingProxyType(_RECORDS)
#: The gates of QMK itself (:func:`unregister` refuses them).
BUILT_IN: frozenset[str] = frozenset(_RECORDS)
# (language, name) -> the record of that name, rebuilt when the registry changes
_INDEX: dict[tuple[str, str], Gate] = {}


def named(language: str, name: str) -> Gate | None:
    """The gate that ``language`` (one of :data:`LANGUAGES`) calls ``name``, or None.

    >>> named("qir", "cnot__body").name, named("braket", "Si").name, named("stim", "T")
    ('cx', 'sdg', None)
    """
    if not _INDEX:
        for gate in _RECORDS.values():
            for lang in LANGUAGES:
                for spelled in gate.names.of(lang):
                    _INDEX[(lang, spelled)] = gate
    return _INDEX.get((language, name))


def register(*gates: Gate) -> None:
    """Add gates to :data:`GATES`, after checking each against the rest (a gate and its
    inverse may come in one call).

    Raises:
        ValueError: a name (or a name in some language) another gate has, an inverse
            that is no gate or whose inverse is not the gate again, a quarter-turn gate
            without one parameter, or a matrix that is not a unitary of ``2**qubits``
            rows; nothing is added then.

    >>> import numpy as np
    >>> sy = Gate(name="sy_example", qubits=1, clifford=True,
    ...           build=fixed(np.array([[1, -1], [1, 1]]) / np.sqrt(2)),
    ...           inverse="sydg_example")
    >>> sydg = Gate(name="sydg_example", qubits=1, clifford=True,
    ...             build=fixed(np.array([[1, 1], [-1, 1]]) / np.sqrt(2)),
    ...             inverse="sy_example")
    >>> with registered(sy, sydg):
    ...     GATES["sy_example"].is_clifford(), GATES["sy_example"].adjoint()
    (True, ('sydg_example', ()))
    >>> "sy_example" in GATES
    False
    """
    added: list[str] = []
    try:
        for gate in gates:
            _check(gate)
            _RECORDS[gate.name] = gate
            added.append(gate.name)
            _INDEX.clear()
        for gate in gates:
            _check_inverse(gate)
    except ValueError:
        for name in added:
            del _RECORDS[name]
        _INDEX.clear()
        raise


def unregister(*names: str) -> None:
    """Take gates :func:`register` added out of :data:`GATES`.

    Raises:
        ValueError: a gate of QMK itself, or no gate of that name.
    """
    for name in names:
        if name in BUILT_IN:
            raise ValueError(f"gate {name} is QMK's own: it cannot be taken out")
        if name not in _RECORDS:
            raise ValueError(f"no gate named {name!r} was registered")
    for name in names:
        del _RECORDS[name]
    _INDEX.clear()


@contextlib.contextmanager
def registered(*gates: Gate) -> Iterator[None]:
    """:func:`register` ``gates`` for the ``with`` block, then :func:`unregister` them."""
    register(*gates)
    try:
        yield
    finally:
        unregister(*(gate.name for gate in gates))


def _check(gate: Gate) -> None:
    """Refuse a record that would contradict the registry or itself."""
    if not gate.name.isidentifier() or gate.name != gate.name.lower():
        raise ValueError(f"a gate's name is a lower-case identifier, not {gate.name!r}")
    if gate.name in _RECORDS:
        raise ValueError(f"gate {gate.name} is already registered")
    if gate.qubits < 1:
        raise ValueError(f"gate {gate.name} acts on at least one qubit, not {gate.qubits}")
    if gate.quarter_turn and len(gate.params) != 1:
        raise ValueError(f"gate {gate.name}: a quarter-turn gate takes one parameter")
    if gate.generator and (
        len(gate.params) != 1
        or len(gate.generator) != gate.qubits
        or set(gate.generator) - set("IXYZ")
    ):
        raise ValueError(
            f"gate {gate.name}: a generator is a Pauli word of {gate.qubits} letter(s) of a "
            f"gate of one parameter, not {gate.generator!r}"
        )
    for language in LANGUAGES:
        for spelled in gate.names.of(language):
            other = named(language, spelled)
            if other is not None:
                raise ValueError(
                    f"gate {gate.name}: {language} name {spelled!r} is gate {other.name}'s"
                )
    _check_matrix(gate)


def _check_inverse(gate: Gate) -> None:
    """Refuse a record whose inverse is no gate, or does not undo it."""
    import numpy as np

    inverse = _RECORDS.get(gate.inverse or gate.name)
    if inverse is None:
        raise ValueError(f"gate {gate.name}'s inverse {gate.inverse} is not a registered gate")
    if inverse.adjoint()[0] != gate.name or inverse.params != gate.params:
        raise ValueError(f"gate {gate.name}'s inverse {inverse.name} is not undone by {gate.name}")
    for angle in (0.0, 0.3, -1.1):
        name, params = gate.adjoint(tuple(angle for _ in gate.params))
        product = _RECORDS[name].matrix(params) @ gate.matrix(tuple(-p for p in params))
        if not np.allclose(product, np.eye(len(product)), atol=1e-9):
            raise ValueError(f"gate {inverse.name} does not undo gate {gate.name}")


def _check_matrix(gate: Gate) -> None:
    import numpy as np

    for angle in (0.0, 0.3, -1.1):
        params = tuple(angle for _ in gate.params)
        matrix = np.asarray(gate.matrix(params))
        size = 2**gate.qubits
        if matrix.shape != (size, size):
            raise ValueError(f"gate {gate.name}'s matrix is {matrix.shape}, not {(size, size)}")
        if not np.allclose(matrix.conj().T @ matrix, np.eye(size), atol=1e-9):
            raise ValueError(f"gate {gate.name}'s matrix is not unitary at {list(params)}")
