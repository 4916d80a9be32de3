"""QMK as a Qiskit backend: ``QMKBackend().run(circuits, shots=...)`` in-process.

Circuits are lowered by :func:`qmk.frontends.qiskit.from_qiskit` (no transpiling
needed: every gate the decomposition table knows, any gate with a definition,
``if_test``, ``for_loop``, measure, reset, barrier) and run by the QMK executor.
``result().get_counts()`` keys are Aer's (registers in reverse order, bit 0
rightmost, separated by spaces).

Noise is **off** by default: a Qiskit user comparing with Aer expects ideal results
unless asked. ``QMKBackend(noise=True)`` injects the logical errors of the code
profile (``profile``, default ``logical:surface_code(d=9)``) and qubit parameters
(``qubit``), as ``qmk run`` does by default.

>>> from qiskit import QuantumCircuit
>>> qc = QuantumCircuit(2, 2)
>>> _ = qc.h(0); _ = qc.cx(0, 1); _ = qc.measure([0, 1], [0, 1])
>>> counts = QMKBackend().run(qc, shots=200, seed_simulator=5).result().get_counts()
>>> sorted(counts)
['00', '11']
>>> sampler = QMKSampler()
>>> bits = sampler.run([qc], shots=100).result()[0].data.c
>>> bits.num_shots
100
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from qiskit.circuit import (
    Delay,
    ForLoopOp,
    IfElseOp,
    Measure,
    QuantumCircuit,
    Reset,
)
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.primitives import BackendSamplerV2
from qiskit.providers import BackendV2, JobStatus, JobV1, Options
from qiskit.result import Result
from qiskit.transpiler import Target

from qmk import defaults
from qmk.frontends import decompose
from qmk.frontends.qiskit import lower_with_clbits

#: Qubits the backend's target offers (the statevector engine's practical limit).
DEFAULT_NUM_QUBITS = 30


class QMKJob(JobV1):
    """A finished run: the backend runs in-process, so the result exists on return."""

    def __init__(self, backend: BackendV2, job_id: str, result: Result) -> None:
        super().__init__(backend, job_id)
        self._result = result

    def submit(self) -> None:
        """Nothing to do: :meth:`QMKBackend.run` already ran the circuits."""

    def result(self) -> Result:
        return self._result

    def status(self) -> JobStatus:
        return JobStatus.DONE


class QMKBackend(BackendV2):
    """A Qiskit ``BackendV2`` that runs circuits on QMK's simulated logical qubits.

    Args:
        noise: inject logical errors (default False: ideal, comparable with Aer).
        profile: the code profile of every qubit (default ``logical:surface_code(d=9)``).
        qubit: the physical qubit parameter set (default ``qubit_gate_ns_e3``).
        engine: "statevector", "stabilizer" or None (QMK chooses).
        num_qubits: the width of the target.
    """

    def __init__(
        self,
        *,
        noise: bool = False,
        profile: str | None = None,
        qubit: str | None = None,
        engine: str | None = None,
        num_qubits: int = DEFAULT_NUM_QUBITS,
    ) -> None:
        super().__init__(name="qmk", description="QMK logical-qubit simulator", backend_version="1")
        self._target = _target(num_qubits)
        self.set_options(noise=noise, profile=profile, qubit=qubit, engine=engine)

    @classmethod
    def _default_options(cls) -> Options:
        return Options(
            shots=defaults.SHOTS,
            seed_simulator=None,
            memory=False,
            noise=False,
            profile=None,
            qubit=None,
            engine=None,
        )

    @property
    def target(self) -> Target:
        return self._target

    @property
    def max_circuits(self) -> None:
        return None

    def run(self, run_input: QuantumCircuit | Sequence[QuantumCircuit], **options: Any) -> QMKJob:
        """Run circuits; options: shots, seed_simulator, memory, noise, profile, qubit, engine.

        Raises:
            QMKError: a circuit QMK cannot lower or run (a FrontendError names the
                instruction).
        """
        from qmk.execution.executor import run

        unknown = set(options) - set(self.options.__dict__)
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)} for QMKBackend.run")
        opts = {**self.options.__dict__, **options}
        circuits = [run_input] if isinstance(run_input, QuantumCircuit) else list(run_input)
        seed = opts["seed_simulator"]
        experiments = []
        for k, circuit in enumerate(circuits):
            graph, clbit_events = lower_with_clbits(circuit)
            result = run(
                graph,
                shots=int(opts["shots"]),
                seed=None if seed is None else int(seed) + k,
                engine=opts["engine"],
                noise=bool(opts["noise"]),
                qubit=opts["qubit"] or defaults.QUBIT,
                profile=opts["profile"] or defaults.PROFILE,
            )
            # raw data as Aer writes it (hex of the clbit values, clbit 0 least significant)
            # so that Qiskit formats the keys exactly as it formats Aer's
            memory = _hex_memory(result, clbit_events)
            data: dict[str, Any] = {"counts": dict(Counter(memory))}
            if opts["memory"]:
                data["memory"] = memory
            experiments.append(
                {
                    "success": True,
                    "shots": result.shots,
                    "seed_simulator": result.seed,
                    "data": data,
                    "header": {
                        "name": circuit.name,
                        "metadata": circuit.metadata or {},
                        "memory_slots": circuit.num_clbits,
                        "creg_sizes": [[reg.name, reg.size] for reg in circuit.cregs],
                    },
                    "status": "DONE",
                }
            )
        job_id = str(uuid.uuid4())
        qiskit_result = Result.from_dict(
            {
                "backend_name": self.name,
                "backend_version": self.backend_version,
                "job_id": job_id,
                "success": True,
                "results": experiments,
            }
        )
        return QMKJob(self, job_id, qiskit_result)


def _hex_memory(result: Any, clbit_events: Sequence[str | None]) -> list[str]:
    """Each shot's clbit values as Qiskit's raw hex memory (clbit 0 least significant)."""
    column = {event: k for k, event in enumerate(result.events)}
    shots = result.bits.shape[0]
    values = [0] * shots
    for k, event in enumerate(clbit_events):
        if event is None:
            continue
        col = result.bits[:, column[event]]
        for shot in np.flatnonzero(col):
            values[shot] |= 1 << k
    return [hex(v) for v in values]


def QMKSampler(**backend_options: Any) -> BackendSamplerV2:
    """A Qiskit ``SamplerV2`` on a :class:`QMKBackend` (Qiskit's ``BackendSamplerV2``)."""
    return BackendSamplerV2(backend=QMKBackend(**backend_options))


def _target(num_qubits: int) -> Target:
    """Every standard gate the decomposition table lowers, plus measure, reset and control flow."""
    target = Target(num_qubits=num_qubits, description="QMK logical qubits")
    mapping = get_standard_gate_name_mapping()
    for name, gate in mapping.items():
        if decompose.canonical(name) is None or name in ("global_phase",):
            continue
        try:
            wanted = decompose.arity(name)
        except KeyError:
            continue
        if wanted != (gate.num_qubits, len(gate.params)):
            continue
        target.add_instruction(gate, properties=None, name=name)
    target.add_instruction(Measure(), properties=None)
    target.add_instruction(Reset(), properties=None)
    target.add_instruction(Delay(0), properties=None)
    target.add_instruction(IfElseOp, name="if_else")
    target.add_instruction(ForLoopOp, name="for_loop")
    return target


__all__ = ["QMKBackend", "QMKJob", "QMKSampler"]
