"""QMK as a PennyLane device: ``qml.device("qmk.statevector", wires=2)``.

As Qiskit users have :class:`qmk.qiskit.QMKBackend`, PennyLane users have this device
(registered under PennyLane's ``pennylane.plugins`` entry point when QMK is installed).
Each tape is made plain by :func:`qmk.frontends.pennylane.plain_tape` (mid-circuit
measurements deferred, unknown operations decomposed by PennyLane), lowered by
:func:`~qmk.frontends.pennylane.from_pennylane`'s gate table and run by QMK's executor:

- **analytic** (``shots=None``): the final state is computed once (``qmk run --state``,
  ideal logical qubits) and every measurement is read off it exactly: expectation
  values of Pauli sums by QMK (:func:`qmk.engines.observables.expectation_values`, all
  of a tape's at once, observables that do not commute included), every other
  measurement (variances, probabilities, the state, ``Hermitian``) by
  ``default.qubit``'s state measurements. Exact values need ideal qubits:
  ``noise=True`` on a tape without shots is refused (QL107), as for
  :class:`qmk.qiskit.EstimatorV2` at precision 0.
- **gradients**: ``diff_method="adjoint"`` (and ``"best"``, which means it here) takes
  the derivatives of a tape's expectation values by all its trainable parameters from
  the final state and one backward sweep over the gates (the logical target's
  :meth:`~qmk.execution.logical.LogicalExecutable.gradient`): about the cost of two
  runs, however many parameters. The trainable operations are those of
  :data:`~qmk.frontends.pennylane.DIFFERENTIABLE` (rotations, phase shifts, controlled
  rotations, Ising gates); PennyLane decomposes the others into them first.
- **shots**: the measured wires are sampled by QMK after the observables' diagonalizing
  gates, with the machine's noise default (:data:`qmk.defaults.NOISE`, as ``qmk run``
  and ``QMKBackend``) unless ``noise=False``; PennyLane's ``process_samples`` turns the
  samples into each measurement (samples, counts, probabilities, expectation values).
  Observables that do not commute are split by PennyLane's ``split_non_commuting``.

>>> import pennylane as qml
>>> dev = qml.device("qmk.statevector", wires=2)
>>> @qml.qnode(dev)
... def bell():
...     qml.Hadamard(0)
...     qml.CNOT([0, 1])
...     return qml.expval(qml.Z(0) @ qml.Z(1)), qml.probs(wires=[0, 1])
>>> zz, probs = bell()
>>> round(float(zz), 12), probs.round(6).tolist()
(1.0, [0.5, 0.0, 0.0, 0.5])
>>> from pennylane import numpy as pnp
>>> @qml.qnode(dev, diff_method="adjoint")
... def tilted(t):
...     qml.RY(t, 0)
...     return qml.expval(qml.Z(0))
>>> round(float(qml.grad(tilted)(pnp.array(0.5))), 12)  # -sin(0.5)
-0.479425538604
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pennylane as qml
from pennylane.devices import Device, ExecutionConfig
from pennylane.devices.modifiers import simulator_tracking
from pennylane.devices.preprocess import (
    decompose,
    no_sampling,
    null_postprocessing,
    validate_adjoint_trainable_params,
    validate_device_wires,
    validate_measurements,
    validate_observables,
)
from pennylane.exceptions import DeviceError
from pennylane.measurements import ExpectationMP, SampleMeasurement, StateMeasurement
from pennylane.transforms.core.compile_pipeline import CompilePipeline

from qmk import defaults
from qmk.engines.base import EngineError
from qmk.engines.observables import Hermitian, Observable, PauliSum, expectation_values
from qmk.engines.state_io import Amplitudes
from qmk.execution.request import check_seed
from qmk.frontends.errors import FrontendError
from qmk.frontends.pennylane import (
    DIFFERENTIABLE,
    SKIPPED,
    decomposition,
    lowered,
    lowered_for_gradient,
    measure,
    plain_tape,
    supported,
)

#: The gradient methods the device computes itself (``best`` means ``adjoint`` here).
DEVICE_GRADIENTS = ("adjoint", "best")


@simulator_tracking
class QMKDevice(Device):
    """QMK's statevector (or any QMK engine) as a PennyLane device.

    ``dev.tracker`` records what PennyLane's simulators record (``batches``,
    ``executions``, ``simulations``, ``shots``, ``results``, ``resources``), by
    PennyLane's own ``simulator_tracking``.

    Args:
        wires: the device's wires (a count or labels), as for ``default.qubit``.
        shots: None (analytic) or shots per run (PennyLane prefers ``qml.set_shots``
            on the QNode).
        engine: the QMK engine (default the statevector).
        noise: inject logical errors in shot-based runs (default
            :data:`qmk.defaults.NOISE`); ``noise=True`` is refused on analytic tapes.
            A bool or ``0``/``1``, or the text ``"true"``/``"false"``/``"0"``/``"1"``
            (any case) as command lines such as ``pl-device-test --device-kwargs
            noise=False`` pass it.
        seed: the seed of shot-based runs (None: fresh): an integer, or its digits.
        profile, qubit: the code profile and qubit parameters of the logical qubits.

    Raises:
        FrontendError: a keyword of the wrong type or an unreadable text (QL107), an
            engine QMK does not know (QE101).
    """

    name = "qmk.statevector"

    def __init__(
        self,
        wires: Any = None,
        shots: Any = None,
        *,
        engine: str = defaults.STATEVECTOR,
        noise: bool | int | str | None = None,
        seed: int | None = None,
        profile: str | None = None,
        qubit: str | None = None,
    ) -> None:
        super().__init__(wires=wires, shots=shots)
        from qmk.engines.registry import spec

        flag = _flag("noise", noise)
        self._noise_asked = flag is True
        self.engine = spec(_text("engine", engine)).name
        self.noise = defaults.NOISE if flag is None else flag
        self.seed = _seed(seed)
        self.profile = None if profile is None else _text("profile", profile)
        self.qubit = defaults.QUBIT if qubit is None else _text("qubit", qubit)
        self._runs = 0

    def preprocess_transforms(self, execution_config: ExecutionConfig | None = None) -> Any:
        program = CompilePipeline()
        adjoint = execution_config is not None and execution_config.gradient_method == "adjoint"
        if not adjoint:  # the adjoint's own decomposition below keeps less
            # operations QMK does not lower are decomposed here, so that one it cannot is
            # a DeviceError before any run (mid-circuit measurements are deferred at the run)
            program.add_transform(
                decompose,
                stopping_condition=_lowerable,
                decomposer=decomposition,
                skip_initial_state_prep=False,
                name=self.name,
            )
        program.add_transform(validate_device_wires, self.wires, name=self.name)
        program.add_transform(
            validate_measurements,
            analytic_measurements=lambda mp: isinstance(mp, StateMeasurement),
            sample_measurements=lambda mp: isinstance(mp, SampleMeasurement),
            name=self.name,
        )
        program.add_transform(split_sampled)
        program.add_transform(qml.transforms.broadcast_expand)
        if adjoint:
            name = f"adjoint + {self.name}"
            program.add_transform(no_sampling, name=name)
            program.add_transform(
                decompose,
                stopping_condition=_differentiable_op,
                decomposer=decomposition,
                skip_initial_state_prep=False,
                name=name,
            )
            program.add_transform(validate_observables, _differentiable_observable, name=name)
            program.add_transform(expectations_only, name=name)
            program.add_transform(validate_adjoint_trainable_params)
        return program

    def setup_execution_config(
        self, config: ExecutionConfig | None = None, circuit: Any = None
    ) -> ExecutionConfig:
        """``best`` is ``adjoint`` here (the device's own gradient), computed with the
        results (``grad_on_execution``)."""
        config = config or ExecutionConfig()
        if config.gradient_method == "best":
            config = replace(config, gradient_method="adjoint")
        config = super().setup_execution_config(config, circuit)
        own = config.gradient_method == "adjoint"
        updated: dict[str, Any] = {}
        if config.use_device_gradient is None:
            updated["use_device_gradient"] = own
        if config.grad_on_execution is None:
            updated["grad_on_execution"] = own
        if config.use_device_jacobian_product is None:
            updated["use_device_jacobian_product"] = False
        return replace(config, **updated)

    def supports_derivatives(
        self, execution_config: ExecutionConfig | None = None, circuit: Any = None
    ) -> bool:
        """Adjoint derivatives of analytic tapes of expectation values whose observables
        it reads and whose operations it differentiates or PennyLane decomposes."""
        if execution_config is None:
            return circuit is None
        if execution_config.gradient_method not in DEVICE_GRADIENTS:
            return False
        if circuit is None:
            return True
        return (
            not circuit.shots
            and all(
                isinstance(mp, ExpectationMP)
                and mp.obs is not None
                and _differentiable_observable(mp.obs)
                for mp in circuit.measurements
            )
            and all(
                _differentiable_op(op) or op.has_decomposition or op.has_matrix
                for op in circuit.operations
            )
        )

    def compute_derivatives(
        self, circuits: Any, execution_config: ExecutionConfig | None = None
    ) -> Any:
        if isinstance(circuits, qml.tape.QuantumScript):
            return self._derivatives(circuits)[1]
        return tuple(self._derivatives(tape)[1] for tape in circuits)

    def execute_and_compute_derivatives(
        self, circuits: Any, execution_config: ExecutionConfig | None = None
    ) -> Any:
        if isinstance(circuits, qml.tape.QuantumScript):
            return self._derivatives(circuits)
        pairs = [self._derivatives(tape) for tape in circuits]
        return tuple(r for r, _ in pairs), tuple(j for _, j in pairs)

    def execute(
        self,
        circuits: Any,
        execution_config: ExecutionConfig | None = None,
    ) -> Any:
        if isinstance(circuits, qml.tape.QuantumScript):
            return self._one(circuits)
        return tuple(self._one(tape) for tape in circuits)

    # ------------------------------------------------------------------ one tape

    def _one(self, tape: Any) -> Any:
        tape = plain_tape(tape)
        wires = self.wires if self.wires is not None else tape.wires
        wires = qml.wires.Wires.all_wires([wires, tape.wires])
        if tape.shots:
            return self._sampled(tape, wires)
        if self._noise_asked:
            raise FrontendError.of(
                "bad-value",
                "noise=True needs shots (qml.set_shots): analytic results are exact, of "
                "ideal qubits",
            )
        state = self._final_state(tape, wires)
        # the state's first wire is its most significant bit: QMK's qubit n-1
        qubit_of = {wire: len(wires) - 1 - k for k, wire in enumerate(wires)}
        exact = [_expectation_observable(mp, qubit_of) for mp in tape.measurements]
        values = iter(expectation_values(state, [o for o in exact if o is not None]))
        results = [None if o is None else np.float64(next(values)) for o in exact]
        if None in results:
            from pennylane.devices.qubit import measure

            # PennyLane's own state measurements (diagonalizing the observables as
            # default.qubit does), on the state's axes: wire k of the device is axis k
            tensor = state.reshape([2] * len(wires))
            (mapped,), _ = qml.map_wires(tape, {wire: k for k, wire in enumerate(wires)})
            results = [
                measure(mp, tensor) if r is None else r
                for mp, r in zip(mapped.measurements, results, strict=True)
            ]
        return results[0] if len(results) == 1 else tuple(results)

    def _derivatives(self, tape: Any) -> tuple[Any, Any]:
        """A tape's expectation values and their Jacobian by its trainable parameters,
        shaped as PennyLane's devices shape them (squeezed)."""
        if tape.shots:
            raise DeviceError("adjoint derivatives are exact: give the tape no shots")
        if self._noise_asked:
            raise FrontendError.of(
                "bad-value", "noise=True: adjoint derivatives are exact, of ideal qubits"
            )
        wires = self.wires if self.wires is not None else tape.wires
        wires = qml.wires.Wires.all_wires([wires, tape.wires])
        qubit_of = {wire: k for k, wire in enumerate(wires)}  # allocation order
        expectations_only(tape, self.name)
        observables = []
        for mp in tape.measurements:
            observable = _observable(mp.obs, qubit_of)
            if observable is None:
                raise DeviceError(f"adjoint derivatives cannot read the observable {mp.obs}")
            observables.append(observable)
        low, columns = lowered_for_gradient(tape, wires, profile=self.profile, name=self.name)
        gradient = self._gradient(low.builder.build(), observables)
        at = {node: j for j, node in enumerate(gradient.nodes)}
        jacobian = np.zeros((len(observables), len(columns)))
        for p, nodes in enumerate(columns):
            for node, slope in nodes:
                jacobian[:, p] += slope * gradient.jacobian[:, at[node]]
        values = [np.float64(v) for v in gradient.values]
        result = values[0] if len(values) == 1 else tuple(values)
        return result, _shaped(jacobian)

    def _gradient(self, graph: Any, observables: list[Observable]) -> Any:
        """The program's :class:`~qmk.execution.gradient.Gradient`, through the logical
        target (the one way programs run)."""
        from qmk.execution import target as targets
        from qmk.execution.runs import build_request

        target = targets.get(defaults.TARGET)
        program = target.read(graph)
        request = build_request(
            program, shots=1, seed=0, engine=self.engine, noise=False, qubit=self.qubit
        )
        executable = target.compile(program, request, local=True)
        return targets.differentiable(executable, target.name).gradient(observables)

    def _final_state(self, tape: Any, wires: Any) -> np.ndarray:
        """The tape's final state in PennyLane's order (the first wire most significant)."""
        from qmk.execution.runs import run

        low = lowered(tape, wires, profile=self.profile, name=self.name)
        result = run(
            low.builder.build(),
            shots=1,
            seed=0,
            engine=self.engine,
            noise=False,
            qubit=self.qubit,
            final_state="amplitudes",
        )
        state = result.final_state
        assert isinstance(state, Amplitudes)  # run(final_state="amplitudes") returned them
        n = len(wires)
        # QMK's amplitudes are little-endian in allocation order: reverse the bit axes
        tensor = np.asarray(state.amplitudes).reshape([2] * n)
        # the global phase QVM does not carry, put back so qml.state() is PennyLane's
        phase = np.exp(1j * low.phase)
        return phase * tensor.transpose(range(n - 1, -1, -1)).reshape(-1)

    def _sampled(self, tape: Any, wires: Any) -> Any:
        from qmk.execution.runs import run

        low = lowered(tape, wires, profile=self.profile, name=self.name)
        events = measure(low.builder, low.handles, tape.diagonalizing_gates, wires, name=self.name)
        graph = low.builder.build(output=[events])
        seed = None if self.seed is None else self.seed + self._runs
        self._runs += 1
        result = run(
            graph,
            shots=int(tape.shots.total_shots),
            seed=seed,
            engine=self.engine,
            noise=self.noise,
            qubit=self.qubit,
        )
        column = {event: k for k, event in enumerate(result.events)}
        samples = np.asarray(result.bits)[:, [column[e] for e in events]].astype(np.int64)
        per_copy = []
        start = 0
        for part in tape.shots.shot_vector:
            for _ in range(part.copies):
                shot_range = (start, start + part.shots)
                out = [
                    mp.process_samples(samples, wire_order=wires, shot_range=shot_range)
                    for mp in tape.measurements
                ]
                per_copy.append(out[0] if len(out) == 1 else tuple(out))
                start += part.shots
        return per_copy[0] if len(per_copy) == 1 else tuple(per_copy)


@qml.transform
def split_sampled(tape: Any) -> Any:
    """``split_non_commuting`` on a tape with shots, which measures its observables'
    eigenbases; an analytic tape reads any observables off its one final state."""
    if tape.shots:
        return qml.transforms.split_non_commuting(tape)
    return (tape,), null_postprocessing


@qml.transform
def expectations_only(tape: Any, name: str = "qmk.statevector") -> Any:
    """Refuse (``DeviceError``) a tape to differentiate that measures anything but
    expectation values (the adjoint preprocessing's last check, and the device's own
    before it differentiates a tape)."""
    for mp in tape.measurements:
        if not isinstance(mp, ExpectationMP) or mp.obs is None:
            raise DeviceError(f"{name} differentiates expectation values only, not {mp}")
    return (tape,), null_postprocessing


def _lowerable(op: Any) -> bool:
    """Whether the preprocessing keeps ``op``: QMK lowers it, or it is a mid-circuit
    measurement or a condition, which the run defers (``qml.defer_measurements``)."""
    from pennylane.ops import Conditional, MidMeasure

    return supported(op) or isinstance(op, MidMeasure | Conditional)


def _differentiable_op(op: Any) -> bool:
    """Whether the adjoint preprocessing keeps ``op`` as it is: QMK lowers it, and it is
    :data:`~qmk.frontends.pennylane.DIFFERENTIABLE`, changes no expectation value (a
    global phase) or has nothing to differentiate."""
    if not supported(op):
        return False
    if op.name in DIFFERENTIABLE or op.name in SKIPPED:
        return True
    return not any(qml.math.requires_grad(d) for d in op.data)


def _differentiable_observable(obs: Any) -> bool:
    return obs.pauli_rep is not None or obs.has_matrix


def _expectation_observable(mp: Any, qubit_of: Mapping[Any, int]) -> Observable | None:
    """The QMK observable of an expectation value of a Pauli sum, or None (another
    measurement, which PennyLane reads off the state)."""
    if not isinstance(mp, ExpectationMP) or mp.obs is None or mp.obs.pauli_rep is None:
        return None
    return _observable(mp.obs, qubit_of)


def _observable(obs: Any, qubit_of: Mapping[Any, int]) -> Observable | None:
    """``obs`` as a QMK observable on the qubits ``qubit_of`` names: a Pauli sum where
    PennyLane has its Pauli form (real coefficients), else its matrix; None where
    neither (a non-Hermitian sum)."""
    try:
        if obs.pauli_rep is not None:
            return PauliSum.of(
                (coefficient, {qubit_of[w]: letter for w, letter in word.items()})
                for word, coefficient in obs.pauli_rep.items()
            )
        if obs.has_matrix:
            matrix = qml.matrix(obs, wire_order=obs.wires)
            return Hermitian(matrix, tuple(qubit_of[w] for w in obs.wires))
    except EngineError:
        return None
    return None


def _shaped(jacobian: np.ndarray) -> Any:
    """A Jacobian (observables by parameters) as PennyLane's devices return it: squeezed,
    a scalar, a tuple, or a tuple of tuples."""
    squeezed = np.squeeze(jacobian)
    if squeezed.ndim == 0:
        return np.array(squeezed)
    if squeezed.ndim == 1:
        return tuple(np.array(j) for j in squeezed)
    return tuple(tuple(np.array(j) for j in row) for row in squeezed)


def _flag(name: str, value: Any) -> bool | None:
    """A device keyword that is a bool: a bool, None, ``0``/``1`` (what users write for
    off and on), or the text ``"true"``/``"false"``/``"0"``/``"1"`` in any case (what a
    command line passes). Any other value, ``"no"`` or ``2`` included, is refused rather
    than read as true, which ``bool("False")`` would do.

    Raises:
        FrontendError: anything else (QL107).

    >>> _flag("noise", "False"), _flag("noise", True), _flag("noise", None), _flag("noise", 0)
    (False, True, None, False)
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _FLAG_TEXT:
        return _FLAG_TEXT[value.strip().lower()]
    raise FrontendError.of(
        "bad-value", f"{name}={value!r}: give True or False (or 0/1, or the text 'true'/'false')"
    )


#: The texts a bool keyword reads.
_FLAG_TEXT = {"true": True, "false": False, "1": True, "0": False}


def _seed(value: Any) -> int | None:
    """The ``seed`` keyword: None, or an integer ``0..2**63-1`` as every run checks it
    (:func:`qmk.execution.request.check_seed`; the runs' seeds are seed, seed + 1, ...),
    given as a number or its decimal digits.

    Raises:
        FrontendError: anything else (QL107).
    """
    if value is None:
        return None
    if (isinstance(value, str) and value.strip().isdigit()) or isinstance(value, np.integer):
        value = int(value)
    return check_seed(value, error=lambda message, key: FrontendError.of("bad-value", message))


def _text(name: str, value: Any) -> str:
    """A device keyword that is a name (engine, profile, qubit).

    Raises:
        FrontendError: not a string (QL107).
    """
    if not isinstance(value, str):
        raise FrontendError.of("bad-value", f"{name}={value!r}: give a name (a string)")
    return value
