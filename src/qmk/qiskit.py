"""QMK as a Qiskit backend: ``QMKBackend().run(circuits, shots=...)`` in-process.

Circuits are lowered by :func:`qmk.frontends.qiskit.from_qiskit` (no transpiling
needed: every gate the decomposition table knows, any gate with a definition,
``if_test``, ``switch``, ``box``, ``for_loop`` with ``break``/``continue``, measure,
reset, barrier). What that direct converter cannot express (a ``switch`` on a
classical expression, a ``Var`` and its ``store``, a ``while_loop``) is run as
``qiskit.qasm3.dumps`` of the circuit through QMK's OpenQASM 3 reader: one semantics,
the one ``qmk run`` gives that text. Either way the program runs on the logical
machine's target, as ``qmk.run`` runs it.
``result().get_counts()`` keys are Aer's (registers in reverse order, bit 0
rightmost, separated by spaces).

Noise follows the machine's one default, :data:`qmk.defaults.NOISE` (on), as ``qmk run``
does: the backend injects the logical errors of the code profile (``profile``, default
``logical:surface_code(d=9)``) and qubit parameters (``qubit``). ``QMKBackend(noise=False)``
(``qmk run --no-noise``) gives ideal logical qubits, comparable with Aer's ideal runs.

:class:`EstimatorV2` is a Qiskit ``EstimatorV2``. By default (``precision=0``) it gives
exact expectation values of the ideal circuit, from its final state. A precision above 0
asks for shot-based estimates on this backend, with its noise.

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
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
from qiskit.circuit import (
    BoxOp,
    BreakLoopOp,
    ContinueLoopOp,
    Delay,
    ForLoopOp,
    IfElseOp,
    Measure,
    QuantumCircuit,
    Reset,
    SwitchCaseOp,
    WhileLoopOp,
)
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.primitives import (
    BackendEstimatorV2,
    BackendSamplerV2,
    BaseEstimatorV2,
    DataBin,
    PrimitiveJob,
    PrimitiveResult,
    PubResult,
)
from qiskit.primitives.containers.estimator_pub import EstimatorPub, EstimatorPubLike
from qiskit.providers import BackendV2, JobStatus, JobV1, Options
from qiskit.result import Result
from qiskit.transpiler import InstructionDurations, InstructionProperties, Target

from qmk import defaults
from qmk.errors import REGISTRY, QMKError
from qmk.frontends import decompose
from qmk.frontends.builder import GATE_OPS
from qmk.frontends.errors import FrontendError
from qmk.frontends.qiskit import lower_with_clbits
from qmk.qvm.graph import Graph

#: Aer's ``method`` names and the QMK engine each means (None: QMK's router chooses, as
#: Aer's ``automatic`` lets Aer choose). Aer's other methods (``extended_stabilizer``,
#: ``unitary``, ``superop``, ``tensor_network``) have no QMK engine and are refused.
AER_METHODS: Mapping[str, str | None] = MappingProxyType(
    {
        "automatic": None,
        "statevector": defaults.STATEVECTOR,
        "stabilizer": defaults.STABILIZER,
        "density_matrix": defaults.AER_DENSITY_MATRIX,
        "matrix_product_state": defaults.AER_MPS,
    }
)
#: ``device="GPU"``: the engine that runs a statevector on a GPU.
GPU_ENGINE = defaults.CUSTATEVEC
#: Aer's ``precision`` names, which are QMK's (the one map: :data:`qmk.defaults.PRECISION_DTYPES`).
PRECISIONS: Mapping[str, str] = defaults.PRECISION_DTYPES
#: Above this width the target states errors only, for every qubit at once (a property
#: per qubit and gate would cost memory for nothing).
PER_QUBIT_LIMIT = 1024


class QMKJob(JobV1):
    """A finished run: the backend runs in-process, so the result exists on return."""

    def __init__(self, backend: BackendV2, job_id: str, result: Result) -> None:
        super().__init__(backend, job_id)
        self._result = result

    def submit(self) -> None:
        """Nothing to do: :meth:`QMKBackend.run` already ran the circuits."""

    def result(self, timeout: float | None = None) -> Result:
        """The result (``timeout`` is accepted as Aer's jobs take it: nothing waits)."""
        return self._result

    def status(self) -> JobStatus:
        return JobStatus.DONE


class QMKBackend(BackendV2):
    """A Qiskit ``BackendV2`` that runs circuits on QMK's simulated logical qubits.

    Args:
        noise: inject logical errors (default :data:`qmk.defaults.NOISE`, as ``qmk run``;
            False: ideal logical qubits, comparable with Aer).
        profile: the code profile of every qubit (default ``logical:surface_code(d=9)``).
        qubit: the physical qubit parameter set (default ``qubit_gate_ns_e3``).
        engine: a QMK engine (``qmk engines``), or None: the router chooses.
        num_qubits: the width of the target; None: what the engine holds here
            (:func:`qmk.engines.registry.max_qubits`; the statevector's when the router
            chooses, since any circuit may need it).
        method, device, precision: Aer's options of these names (:data:`AER_METHODS`,
            ``"CPU"``/``"GPU"``, ``"double"``/``"single"``), mapped to an engine and its
            precision; they may also be given to :meth:`run`.
    """

    def __init__(
        self,
        *,
        noise: bool = defaults.NOISE,
        profile: str | None = None,
        qubit: str | None = None,
        engine: str | None = None,
        num_qubits: int | None = None,
        method: str | None = None,
        device: str = "CPU",
        precision: str = "double",
    ) -> None:
        super().__init__(name="qmk", description="QMK logical-qubit simulator", backend_version="1")
        self.set_options(
            noise=noise,
            profile=profile,
            qubit=qubit,
            engine=engine,
            method=method,
            device=device,
            precision=precision,
        )
        chosen, _ = _engine_of(self.options.__dict__)
        if num_qubits is None:
            from qmk.engines.registry import max_qubits

            # the router may send any circuit to the statevector, the universal engine
            num_qubits = max_qubits(chosen or defaults.STATEVECTOR, precision)
        self._target = _target(num_qubits, profile or defaults.PROFILE, qubit or defaults.QUBIT)

    @classmethod
    def _default_options(cls) -> Options:
        return Options(
            shots=defaults.SHOTS,
            seed_simulator=None,
            memory=False,
            noise=defaults.NOISE,
            profile=None,
            qubit=None,
            engine=None,
            method=None,
            device="CPU",
            precision="double",
            noise_model=None,
        )

    @property
    def target(self) -> Target:
        return self._target

    @property
    def max_circuits(self) -> None:
        return None

    def run(self, run_input: QuantumCircuit | Sequence[QuantumCircuit], **options: Any) -> QMKJob:
        """Run circuits; options: shots, seed_simulator, memory, noise, profile, qubit,
        engine, and Aer's method, device and precision.

        A circuit without classical bits runs but has no counts, as on Aer
        (``get_counts`` raises ``QiskitError: No counts for experiment``).

        Raises:
            FrontendError: an unknown option or value (QL107), an Aer option with no
                meaning here (QL104), or a circuit QMK cannot lower (naming the
                instruction).
        """
        from qmk.execution.runs import run

        unknown = sorted(set(options) - set(self.options.__dict__))
        if unknown:
            known = ", ".join(sorted(self.options.__dict__))
            raise FrontendError.of(
                "bad-value", f"unknown option(s) {unknown} for QMKBackend.run; known: {known}"
            )
        opts = {**self.options.__dict__, **options}
        if opts["noise_model"] is not None:
            raise FrontendError.of(
                "unsupported",
                "noise_model: QMK injects the logical errors of its code profile instead "
                "(noise=True, profile=..., qubit=...)",
            )
        engine, precision = _engine_of(opts)
        circuits = [run_input] if isinstance(run_input, QuantumCircuit) else list(run_input)
        seed = opts["seed_simulator"]
        experiments = []
        for k, circuit in enumerate(circuits):
            graph, clbit_events = lowered(circuit)
            result = run(
                graph,
                shots=int(opts["shots"]),
                seed=None if seed is None else int(seed) + k,
                engine=engine,
                precision=precision,
                noise=bool(opts["noise"]),
                qubit=opts["qubit"] or defaults.QUBIT,
                profile=opts["profile"] or defaults.PROFILE,
            )
            data: dict[str, Any] = {}
            if circuit.num_clbits:  # Aer writes no counts for a circuit with no clbits
                # raw data as Aer writes it (hex of the clbit values, clbit 0 least
                # significant) so that Qiskit formats the keys exactly as it formats Aer's
                memory = _hex_memory(result, clbit_events)
                data["counts"] = dict(Counter(memory))
                if opts["memory"]:
                    data["memory"] = memory
            experiments.append(
                {
                    "success": True,
                    "shots": result.shots,
                    "seed_simulator": result.seed,
                    "data": data,
                    # as Aer's results say which method ran: here, which engine
                    "metadata": {"engine": result.engine, "method": opts["method"]},
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


#: The code of what the direct converter cannot express (the OpenQASM 3 path may).
_UNSUPPORTED = REGISTRY.named(FrontendError, "unsupported").code


def lowered(circuit: QuantumCircuit) -> tuple[Graph, tuple[str | None, ...]]:
    """The circuit's graph, and the event each clbit holds at the end (None: nothing
    wrote it), in ``circuit.clbits`` order.

    The direct converter lowers it (:func:`~qmk.frontends.qiskit.lower_with_clbits`);
    what it cannot express (``QL104``) is read from ``qiskit.qasm3.dumps`` of the
    circuit by QMK's OpenQASM 3 reader, so the backend and ``qmk run`` of that text
    agree.

    Raises:
        FrontendError: the direct converter's refusal, when the circuit does not export
            or its OpenQASM 3 does not read either; its other errors as they are.
    """
    try:
        return lower_with_clbits(circuit)
    except FrontendError as exc:
        if exc.code != _UNSUPPORTED:
            raise
        refused = exc
    from qiskit import qasm3

    from qmk.frontends.text import lower_text

    try:
        text = qasm3.dumps(circuit)
        graph = lower_text(text, "qasm3", circuit.name or "circuit")
    except (QMKError, qasm3.QASM3ExporterError):
        raise refused from None
    events = _clbit_events(circuit, graph)
    if events is None:
        raise refused
    return graph, events


def _clbit_events(circuit: QuantumCircuit, graph: Graph) -> tuple[str | None, ...] | None:
    """Each clbit's event in the OpenQASM 3 reader's output.

    ``qasm3.dumps`` declares the clbits outside every register first, as scalar bits.
    The registers follow in ``circuit.cregs`` order. The reader keys them as Qiskit
    does: the scalars as one group, leftmost, then the registers in reverse order, bit 0
    rightmost. None where the groups do not fit the circuit's registers (a clbit in two
    of them)."""
    output = (graph.metadata or {}).get("output") or {}
    groups = [list(reversed(group)) for group in reversed(output.get("groups", []))]
    loose = [bit for bit in circuit.clbits if not circuit.find_bit(bit).registers]
    registers = [list(register) for register in circuit.cregs]
    if loose:
        registers.append(loose)
    if [len(r) for r in registers] != [len(g) for g in groups]:
        return None
    where: dict[Any, str | None] = {}
    for register, group in zip(registers, groups, strict=True):
        for bit, event in zip(register, group, strict=True):
            if bit in where:
                return None
            where[bit] = event
    return tuple(where.get(bit) for bit in circuit.clbits)


def _engine_of(opts: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The QMK engine (None: the router's choice) and precision that options ask for
    (Aer's ``double``, its default, leaves the engine its own: None).

    Raises:
        FrontendError: a method, device or precision QMK has no engine for, or a method
            that contradicts the ``engine`` option.
    """
    method, device, precision = opts.get("method"), opts.get("device"), opts.get("precision")
    engine = opts.get("engine")
    if method is not None:
        if method not in AER_METHODS:
            known = ", ".join(AER_METHODS)
            raise FrontendError.of(
                "unsupported",
                f"method={method!r} has no QMK engine; the methods QMK maps: {known}",
            )
        by_method = AER_METHODS[method]
        if engine is not None and by_method is not None and engine != by_method:
            raise FrontendError.of(
                "bad-value", f"method={method!r} means engine {by_method!r}, not {engine!r}"
            )
        engine = engine or by_method
    if device not in ("CPU", "GPU"):
        raise FrontendError.of("bad-value", f"device={device!r}: QMK has CPU and GPU")
    if device == "GPU":
        if engine not in (None, defaults.STATEVECTOR, GPU_ENGINE):
            raise FrontendError.of(
                "unsupported", f"device='GPU' with engine {engine!r}: only a statevector runs there"
            )
        engine = GPU_ENGINE
    if precision not in PRECISIONS:
        raise FrontendError.of(
            "bad-value", f"precision={precision!r}: {' or '.join(map(repr, PRECISIONS))}"
        )
    return engine, (None if precision == "double" else str(precision))


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


class EstimatorV2(BaseEstimatorV2):
    """A Qiskit ``EstimatorV2`` on QMK: exact or shot-based expectation values.

    A pub's ``precision`` chooses how (``run``'s, else ``default_precision``):

    - ``0`` (the default, as Qiskit's ``StatevectorEstimator``): **exact** values of the
      ideal circuit. Its final state is computed once per parameter binding, on the
      engine the backend options choose (``qmk run --state``). A Clifford circuit keeps
      its stabilizer tableau, so stim gives each Pauli's expectation exactly at any
      width. Any other circuit gives amplitudes. Every observable of a binding is read
      off its one state at once (:func:`qmk.engines.observables.expectation_values`).
      Exactness needs ideal logical qubits:
      ``noise=True`` with precision 0 is refused (QL107), and a circuit that measures is
      refused (QE113), since either makes the final state a mixture.
    - above ``0``: **shot-based** estimates by Qiskit's ``BackendEstimatorV2`` on a
      :class:`QMKBackend` with these options, noise included (the machine's default,
      :data:`qmk.defaults.NOISE`), with shots enough for that standard error.

    Args:
        default_precision: the precision of pubs that give none (0: exact).
        seed: the seed of shot-based estimates (None: a fresh one each run).
        backend_options: :class:`QMKBackend`'s options (``noise``, ``profile``,
            ``qubit``, ``engine``, ``method``, ``precision``, ...).

    >>> from qiskit import QuantumCircuit
    >>> qc = QuantumCircuit(2)
    >>> _ = qc.h(0); _ = qc.cx(0, 1)
    >>> EstimatorV2().run([(qc, ["ZZ", "XX", "ZI"])]).result()[0].data.evs.tolist()
    [1.0, 1.0, 0.0]
    """

    def __init__(
        self, *, default_precision: float = 0.0, seed: int | None = None, **backend_options: Any
    ) -> None:
        if not default_precision >= 0:
            raise FrontendError.of(
                "bad-value", f"default_precision must be >= 0, got {default_precision!r}"
            )
        self._noise_asked = backend_options.get("noise") is True
        self._backend = QMKBackend(**backend_options)
        self._default_precision = float(default_precision)
        self._seed = seed

    @property
    def backend(self) -> QMKBackend:
        """The backend that runs shot-based estimates (and names the exact ones' engine)."""
        return self._backend

    def run(
        self, pubs: Sequence[EstimatorPubLike], *, precision: float | None = None
    ) -> PrimitiveJob[PrimitiveResult[PubResult]]:
        if precision is None:
            precision = self._default_precision
        coerced = [EstimatorPub.coerce(pub, precision) for pub in pubs]
        for pub in coerced:
            if pub.precision == 0 and self._noise_asked:
                raise FrontendError.of(
                    "bad-value",
                    "precision=0 asks for exact values, which ideal qubits alone have: "
                    "give noise=False, or a precision above 0 for a shot-based estimate "
                    "with logical noise",
                )
        job: PrimitiveJob[PrimitiveResult[PubResult]] = PrimitiveJob(self._run, coerced)
        job._submit()
        return job

    def _run(self, pubs: list[EstimatorPub]) -> PrimitiveResult[PubResult]:
        shot_based = [pub for pub in pubs if pub.precision > 0]
        estimates: list[PubResult] = []
        if shot_based:
            options: dict[str, Any] = {"seed_simulator": self._seed}
            inner = BackendEstimatorV2(backend=self._backend, options=options)
            estimates = list(inner.run(shot_based).result())
        results = []
        for pub in pubs:
            if pub.precision > 0:
                result = estimates.pop(0)
                noise = bool(self._backend.options.noise)
                results.append(PubResult(result.data, {**result.metadata, "noise": noise}))
            else:
                results.append(self._exact(pub))
        return PrimitiveResult(results, metadata={"version": 2})

    def _exact(self, pub: EstimatorPub) -> PubResult:
        from qmk.execution.runs import run

        bound = np.asarray(pub.parameter_values.bind_all(pub.circuit), dtype=object)
        index = np.arange(bound.size).reshape(bound.shape)
        where, observables = np.broadcast_arrays(index, pub.observables)
        engine, precision = _engine_of(self._backend.options.__dict__)
        states: dict[int, Any] = {}
        evs = np.zeros(where.shape, dtype=np.float64)
        engines = set()
        asked: dict[int, list[tuple[int, ...]]] = {}  # each binding's places
        for at in np.ndindex(*where.shape):
            k = int(where[at])
            if k not in states:
                graph, _ = lowered(bound.reshape(-1)[k])
                result = run(
                    graph,
                    shots=1,
                    seed=0,
                    engine=engine,
                    precision=precision,
                    noise=False,
                    final_state=True,
                )
                states[k] = result.final_state
                engines.add(result.engine)
            asked.setdefault(k, []).append(at)
        _read_off(states, asked, observables, evs)
        data = DataBin(evs=evs, stds=np.zeros_like(evs), shape=evs.shape)
        metadata = {
            "target_precision": 0.0,
            "exact": True,
            "noise": False,
            "engines": sorted(engines),
            "circuit_metadata": pub.circuit.metadata,
        }
        return PubResult(data, metadata=metadata)


def _read_off(
    states: Mapping[int, Any],
    asked: Mapping[int, Sequence[tuple[int, ...]]],
    observables: np.ndarray,
    evs: np.ndarray,
) -> None:
    """Fill ``evs`` at each binding's places with its observables' exact values, all of a
    binding's read off its one state at once (:mod:`qmk.engines.observables`)."""
    from qmk.engines.observables import expectation_values

    for k, places in asked.items():
        sums = [_pauli_sum(observables[at]) for at in places]
        for at, value in zip(places, expectation_values(states[k], sums), strict=True):
            evs[at] = value


def _pauli_sum(observable: Mapping[str, complex]) -> Any:
    """A pub's observable (Qiskit's labels: the last character on qubit 0; Hermitian, as
    Qiskit checks when it reads the pub) as a QMK Pauli sum on a final state's qubits,
    which are the circuit's in order."""
    from qmk.engines.observables import PauliSum

    return PauliSum.of(
        (float(np.real(coefficient)), {q: a for q, a in enumerate(reversed(label)) if a != "I"})
        for label, coefficient in observable.items()
    )


class _AnyQubits(dict):  # type: ignore[type-arg]
    """The properties of a global instruction (key None): a look-up for any qubits finds
    them, as Qiskit's scheduling and padding passes look them up per qubit tuple."""

    def get(self, key: Any, default: Any = None) -> Any:
        if key in self:
            return self[key]
        return dict.get(self, None, default)


class LogicalTarget(Target):
    """A Qiskit ``Target`` whose global instructions (no qubit list: they act on any
    qubits, so the target has no coupling map) carry a duration too.

    Qiskit keeps a global instruction's properties under the key None. Its
    ``Target.durations()`` and the scheduling passes look properties up per qubit tuple
    only. Here both find the global ones, so ``transpile(..., scheduling_method=...)``
    works and every instruction has a duration and an error.
    """

    def add_instruction(
        self, instruction: Any, properties: Any = None, name: str | None = None
    ) -> None:
        super().add_instruction(instruction, properties, name)
        key = name or instruction.name
        gate_map = getattr(self, "_gate_map", None)  # Qiskit's own table, where it has one
        if properties and None in properties and isinstance(gate_map, dict):
            gate_map[key] = _AnyQubits(gate_map[key])

    def durations(self) -> InstructionDurations:
        """Every instruction's duration in seconds; a global one's for any qubits."""
        entries = []
        for name, properties in self.items():
            for qargs, props in (properties or {}).items():
                if props is not None and props.duration is not None:
                    qubits = None if qargs is None else list(qargs)
                    entries.append((name, qubits, props.duration, "s"))
        return InstructionDurations(entries, dt=self.dt)


def _target(num_qubits: int, profile: str, qubit: str) -> Target:
    """The gates QMK applies as they are, with the costs of the logical model.

    These are the QVM gate set (:data:`GATE_OPS`), measure, reset, delay and control
    flow. Each carries the duration and error the logical model of ``profile`` on
    ``qubit`` gives it (:mod:`qmk.qec.logical`). The duration is an op's logical cycles
    times the cycle time. The error is the chance its logical error channel fires on a
    qubit it touches, over all of them.

    Every other gate is one QMK would decompose into these anyway, so the transpiler
    decomposes it. With the costs, optimisation levels 2-3 synthesise into the cheap ones
    (``x``, ``y``, ``z`` cost nothing: Pauli frames). One-qubit instructions carry their
    properties per qubit (up to :data:`PER_QUBIT_LIMIT` qubits). Multi-qubit ones carry
    theirs once, for any qubits (a :class:`LogicalTarget` global instruction). One entry
    per qubit pair would give the target a coupling map. The transpiler would then lay
    circuits out on (and widen them to) all its qubits. One entry per triple would leave
    ``ccx``/``ccz`` to routing, which refuses 3-qubit gates. Every QMK qubit is every
    other's neighbour, and all of them cost the same.
    """
    from qmk.qec.logical import logical_model

    model = logical_model(profile, qubit)
    per_qubit = num_qubits <= PER_QUBIT_LIMIT
    target = LogicalTarget(num_qubits=num_qubits, description=f"QMK logical qubits ({profile})")
    mapping = get_standard_gate_name_mapping()
    for name, op in GATE_OPS.items():
        gate = mapping.get(name)
        if gate is None or decompose.arity(name) != (gate.num_qubits, len(gate.params)):
            continue
        seconds, error = _cost(model, [(op, gate.num_qubits)])
        properties = _properties(num_qubits, gate.num_qubits, seconds, error, per_qubit)
        target.add_instruction(gate, properties, name=name)
    for instruction, op in ((Measure(), "MEASURE_Z"), (Reset(), "RESET")):
        seconds, error = _cost(model, [(op, 1)])
        target.add_instruction(instruction, _properties(num_qubits, 1, seconds, error, per_qubit))
    target.add_instruction(Delay(0), {None: None})
    # the control flow run takes, so that transpile keeps it (a while_loop runs through
    # the OpenQASM 3 reader, see the module docstring)
    target.add_instruction(IfElseOp, name="if_else")
    target.add_instruction(WhileLoopOp, name="while_loop")
    target.add_instruction(ForLoopOp, name="for_loop")
    target.add_instruction(SwitchCaseOp, name="switch_case")
    target.add_instruction(BoxOp, name="box")
    target.add_instruction(BreakLoopOp, name="break_loop")
    target.add_instruction(ContinueLoopOp, name="continue_loop")
    return target


def _cost(model: Any, ops: Sequence[tuple[str, int]]) -> tuple[float, float]:
    """Seconds and error probability of QVM ops ``(name, qubits it touches)`` in a row."""
    seconds = sum(model.op_time_ns(op) for op, _ in ops) * 1e-9
    survive = 1.0
    for op, width in ops:
        survive *= (1.0 - model.op_error(op).total) ** width
    return seconds, 1.0 - survive


def _properties(
    num_qubits: int, width: int, seconds: float, error: float, per_qubit: bool
) -> dict[Any, InstructionProperties | None]:
    cost = InstructionProperties(duration=seconds, error=error)
    if width == 1 and per_qubit:
        return {(q,): cost for q in range(num_qubits)}
    return {None: cost}


__all__ = ["LogicalTarget", "QMKBackend", "QMKJob", "QMKSampler"]
