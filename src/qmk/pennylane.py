"""QMK as a PennyLane device: ``qml.device("qmk.statevector", wires=2)``.

As Qiskit users have :class:`qmk.qiskit.QMKBackend`, PennyLane users have this device
(registered under PennyLane's ``pennylane.plugins`` entry point when QMK is installed).
Each tape is made plain by :func:`qmk.frontends.pennylane.plain_tape` (mid-circuit
measurements deferred, unknown operations decomposed by PennyLane), lowered by
:func:`~qmk.frontends.pennylane.from_pennylane`'s gate table and run by QMK's executor:

- **analytic** (``shots=None``): the final state is computed once (``qmk run --state``,
  ideal logical qubits) and PennyLane gives every measurement
  (expectation values, variances, probabilities, the state), exactly, with
  ``default.qubit``'s state measurements. Exact values need
  ideal qubits: ``noise=True`` on a tape without shots is refused (QL107), as for
  :class:`qmk.qiskit.EstimatorV2` at precision 0.
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
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pennylane as qml
from pennylane.devices import Device, ExecutionConfig
from pennylane.devices.modifiers import simulator_tracking
from pennylane.devices.preprocess import validate_device_wires, validate_measurements
from pennylane.measurements import SampleMeasurement, StateMeasurement
from pennylane.transforms.core.compile_pipeline import CompilePipeline

from qmk import defaults
from qmk.engines.state_io import Amplitudes
from qmk.execution.request import check_seed
from qmk.frontends.errors import FrontendError
from qmk.frontends.pennylane import lowered, measure, plain_tape


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
        program.add_transform(validate_device_wires, self.wires, name=self.name)
        program.add_transform(
            validate_measurements,
            analytic_measurements=lambda mp: isinstance(mp, StateMeasurement),
            sample_measurements=lambda mp: isinstance(mp, SampleMeasurement),
            name=self.name,
        )
        program.add_transform(qml.transforms.split_non_commuting)
        program.add_transform(qml.transforms.broadcast_expand)
        return program

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
        from pennylane.devices.qubit import measure

        state = self._final_state(tape, wires).reshape([2] * len(wires))
        # PennyLane's own state measurements (diagonalizing the observables as
        # default.qubit does), on the state's axes: wire k of the device is axis k
        (mapped,), _ = qml.map_wires(tape, {wire: k for k, wire in enumerate(wires)})
        results = [measure(mp, state) for mp in mapped.measurements]
        return results[0] if len(results) == 1 else tuple(results)

    def _final_state(self, tape: Any, wires: Any) -> np.ndarray:
        """The tape's final state in PennyLane's order (the first wire most significant)."""
        from qmk.execution.executor import run

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
        from qmk.execution.executor import run

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
