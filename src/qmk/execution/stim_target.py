"""The ``stim`` target: a stim circuit run as stim's users run it (:mod:`qmk.execution.target`).

Its program is a stim circuit (a ``.stim`` file, its text, a ``stim.Circuit``; as JSON
data, ``{"stim": TEXT}``) read as a verified QVM program, REPEAT blocks kept folded
(:func:`qmk.frontends.stim_fold.read_folded`: its noise channels, ``MPP``, ``MPAD``,
detectors and observables as rows), and written back as one stim circuit, ``REPEAT`` to
``REPEAT`` (:func:`qmk.execution.stim_lower.to_stim`), so that the verifier and a
kernel's caps, qubit quotas and work bounds read the program that runs. It is written
when first compiled, so a kernel refuses a job past its tenant's quotas from the
verified totals, before any of it is written. The stabilizer
engine's batch sampler (:class:`~qmk.engines.stim_batch.StimSampler`) samples it, which
is stim's own compiled samplers: the circuit is never replayed shot by shot. ``qmk run
FILE.stim`` and :func:`qmk.run` of a stim circuit run here by default.

- By default a shot is the measurement record (stim's ``compile_sampler``; a noiseless
  circuit whose measurements all follow its gates, at 2^22 record bits or more, from its
  outcomes' affine support, as every stabilizer batch run): one event per measurement
  (``m0 m1 ...``), the first leftmost, as stim writes a sample. The
  result's ``detectors`` and ``observables`` are found from those very shots on first
  use (stim's measurement-to-detection converter).
- Option ``detectors``: a shot is its detection events, then its observables' flips
  (events ``D0 D1 ... L0 ...``), drawn by ``compile_detector_sampler``, as a QEC
  experiment samples them.
- Option ``decode``: detection events decoded on the circuit's detector error model:
  each observable's logical error rate and its 95% Wilson interval, with the decoder
  and the model it read, in ``details["decode"]``; implies ``detectors``.
- Option ``decoder``: which decoder (:data:`qmk.experiments.decoders.DECODERS`):
  ``pymatching`` (the default; matching on the model sinter builds) or ``bposd``
  (BP+OSD on the undecomposed model); naming one implies ``decode``.

Noise is the circuit's own: with ``noise`` on (the default) its channels act, off
(``noise=False``, ``--no-noise``) it runs without them (``stim.Circuit.without_noise``).
Sweep bits are 0, as stim's samplers take them when given no sweep data. The logical
machine's settings (an engine other than the stabilizer, a precision, a qubit set, a code
profile, a noise model, a calibration, states) are refused with ``QM102``: the circuit
states its own physics.

A QVM program of those rows (REPEAT rows, ``NOISE``, ``DETECTOR``...) runs here as a
stim circuit does. Another QVM program runs here when the logical machine's batch
lowering writes it as one stim circuit (:func:`qmk.execution.batch.lower`: Clifford,
Pauli feed-forward), with its noise off: such a program has no noise of its own.

>>> from qmk.execution.request import RunRequest
>>> target = StimTarget()
>>> program = target.read("H 0\\nCX 0 1\\nM 0 1\\nDETECTOR rec[-1] rec[-2]")
>>> request = RunRequest(program_digest="ab" * 32, shots=1000, seed=7, target="stim")
>>> result = target.compile(program, request).run(1000, 7)
>>> sorted(result.counts), result.engine, int(result.detectors.sum())
(['00', '11'], 'stabilizer', 0)
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from qmk.execution.footprint import Footprint, Step
from qmk.execution.target import MACHINE_SETTINGS, own_options, read_qvm, refuse
from qmk.qvm.graph import REPEAT
from qmk.qvm.ops import STIM_OPS

if TYPE_CHECKING:
    import stim

    from qmk.engines.stim_batch import StimSampler
    from qmk.execution.request import RunRequest
    from qmk.execution.result import Detections, PackedRows, RunResult
    from qmk.execution.trajectories import Control
    from qmk.experiments.decoders import Decoder
    from qmk.qvm.graph import Graph
    from qmk.qvm.output import OutputLayout
    from qmk.qvm.verify import VerifiedProgram

NAME = "stim"
#: The engine that samples every run: stim's, the stabilizer engine's batch sampler.
ENGINE = "stabilizer"

#: The logical machine's settings, which a stim circuit's run has no use for.
_UNHONOURED = {**MACHINE_SETTINGS, "machine": "machine"}
_WHY = "a stim circuit states its own noise and runs on stim's samplers"
#: The confidence of the logical error rates' intervals.
CONFIDENCE = 0.95


class StimOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The target's options (module docstring)."""

    detectors: bool = False
    decode: bool = False
    decoder: str | None = None


@dataclass(frozen=True, slots=True)
class Work:
    """What a verified program does in all, by its verifier's totals (counted folded):
    what a kernel holds a job to."""

    #: Operations of the unrolled program.
    operations: int
    #: Most qubits live at once.
    qubits: int
    #: Record bits it writes.
    measurements: int


@dataclass(frozen=True, slots=True)
class Lowered:
    """A verified program written as one stim circuit.

    For a QVM program lowered by the batch lowering, ``events`` are its events,
    ``columns`` the record bit of each (None: an event nothing measures, always 0) and
    ``layout`` its output layout; for a stim circuit's rows they are None: its events
    are its measurements.
    """

    circuit: stim.Circuit
    events: tuple[str, ...] | None = None
    columns: tuple[int | None, ...] | None = None
    layout: OutputLayout | None = None


@dataclass(frozen=True, slots=True, eq=False)
class StimProgram:
    """A verified program as the target runs it: its totals at once, its stim circuit
    written on first use.

    So a kernel holds a job to the verifier's totals (:class:`Work`) before anything is
    lowered: a circuit past a tenant's qubits is refused without being written (its
    lowering writes text of every row and stim reads it, work a refusal need not do).
    ``lower`` writes it (:func:`~qmk.execution.stim_lower.to_stim`, or the batch
    lowering of another QVM program); :meth:`StimTarget.compile` asks for it, so a
    program stim cannot run is refused compiling.
    """

    work: Work
    lower: Callable[[], Lowered] = field(repr=False)
    required_caps: tuple[str, ...] = ()
    #: Whether it is a QVM program the batch lowering writes (its events its own), not
    #: a stim circuit's rows (its events its measurements).
    qvm: bool = False
    _kept: list[Lowered] = field(default_factory=list, init=False, repr=False)

    @property
    def lowered(self) -> Lowered:
        """The circuit and its events (written once, then kept).

        Raises:
            EngineError: ``QE103`` a row stim has no instruction for, or a QVM program
                that is not one stim circuit.
        """
        if not self._kept:
            self._kept.append(self.lower())
        return self._kept[0]

    @property
    def circuit(self) -> stim.Circuit:
        return self.lowered.circuit

    @property
    def events(self) -> tuple[str, ...] | None:
        return self.lowered.events

    @property
    def columns(self) -> tuple[int | None, ...] | None:
        return self.lowered.columns

    @property
    def layout(self) -> OutputLayout | None:
        return self.lowered.layout

    def to_json(self) -> dict[str, Any]:
        """The circuit as JSON data (what :meth:`StimTarget.read` reads back)."""
        return {"stim": str(self.circuit)}


def is_stim_data(data: Any) -> bool:
    """Whether JSON data is a stim circuit's (``{"stim": TEXT}``) rather than a QVM graph."""
    return isinstance(data, Mapping) and isinstance(data.get("stim"), str)


def named_qubits(data: Any) -> int | None:
    """The qubits of a stim circuit's JSON data (``{"stim": TEXT}``) as stim counts
    them parsing its text (milliseconds), which are its verified program's peak
    (:attr:`Work.qubits`): the reader holds every qubit the circuit names from its
    start to its end. None for other data (a QVM program's are its verifier's).

    So a kernel refuses a circuit past a tenant's qubits before reading it into
    rows (reading and verifying the rows of 30,000 qubits takes a second).

    Raises:
        FrontendError: ``QL101`` text stim cannot parse.
    """
    if not is_stim_data(data):
        return None
    from qmk.frontends.stim_fold import read_circuit

    qubits: int = read_circuit(data["stim"], name="<stim>").num_qubits
    return qubits


def least_result_bytes(program: StimProgram, options: Mapping[str, Any]) -> int:
    """The fewest bytes of JSON the result of a run of ``program`` with target options
    ``options`` takes, from its verified totals: a stim circuit's record run names its
    measurements as its events (``["m0","m1",...]``) and counts outcomes of as many
    bits, one at least; 0 for another run (its events are not known before it is
    written). So a kernel refuses at submit a job whose result it could not keep
    (``QK305``), rather than after it ran.
    """
    if program.qvm or any(options.get(key) for key in ("detectors", "decode", "decoder")):
        return 0
    bits = program.work.measurements
    if bits == 0:
        return 0
    # the events: each "m" and two quotes, a comma between two, the brackets; the digits
    # of 0 ... bits - 1; then one outcome's bits
    digits, width, low = 0, 1, 0
    while low < bits:
        high = min(bits, 10**width)
        digits += (high - low) * width
        low, width = high, width + 1
    return 3 * bits + (bits - 1) + 2 + digits + bits


class StimTarget:
    """stim circuits on stim's own samplers, as a target (module docstring)."""

    name = NAME

    def read(self, source: Any, *, limits: Any = None) -> StimProgram:
        """A :class:`StimProgram` from a ``stim.Circuit``, its text, a ``.stim`` file, its
        JSON data (``{"stim": TEXT}``) or that data's text, read as a QVM program and
        verified folded; or from a QVM program (a graph, its JSON, a verified program or
        a file of one) written as one circuit.

        Raises:
            FrontendError: ``QL101`` text stim cannot parse, ``QL104`` an instruction
                with no QVM form, ``QL105`` a file that does not read.
            VerificationError: a program with errors (a stim circuit's too: past
                ``limits``' rows, say).
            QMKError: a QVM program that does not read.
        """
        import stim

        from qmk.frontends.stim_fold import read_folded as read_all
        from qmk.qvm.limits import Limits

        # blocks the reader writes unrolled (their record bits reach back): within the rows
        read_folded = functools.partial(read_all, max_rows=(limits or Limits()).max_nodes)
        if isinstance(source, StimProgram):
            return source
        if isinstance(source, stim.Circuit):
            return _verified(read_folded(source), limits)
        data = source
        if isinstance(source, str) and source.lstrip().startswith("{"):
            data = json.loads(source)
        if is_stim_data(data):
            return _verified(read_folded(data["stim"], name="<stim>"), limits)
        if isinstance(source, str | os.PathLike) and str(source).lower().endswith(".stim"):
            from qmk.frontends import read_text

            name = os.fspath(source)
            return _verified(read_folded(read_text(name), name=name), limits)
        if isinstance(source, str) and not os.path.isfile(source):
            from qmk.frontends.text import sniff

            if sniff(source) == "stim":
                return _verified(read_folded(source, name="<text>"), limits)
        graph = _stim_rows(data)
        if graph is not None:
            return _verified(graph, limits)
        return _lowered(read_qvm(data, limits=limits))

    def compile(
        self,
        program: StimProgram,
        request: RunRequest,
        *,
        local: bool = False,
        **options: Any,
    ) -> StimExecutable:
        """``program`` under ``request``: the circuit (written here, at its first
        compile) with or without its noise, sampled as the options say (``local``, a
        run in the caller's own process, changes nothing here).

        Raises:
            EngineError: ``QE103`` a row stim has no instruction for, or a QVM program
                that is not one stim circuit.
            TargetError: ``QM102`` an option or setting it cannot honour: the logical
                machine's, an engine other than the stabilizer, noise on for a QVM
                program, ``decode`` of a circuit without observables or whose detectors
                stim cannot model.
            QECError: ``QC112`` a decoder QMK does not have, ``QC114`` one whose package
                is not installed.
        """
        chosen = own_options(
            NAME,
            request,
            options,
            StimOptions,
            unhonoured=_UNHONOURED,
            why=_WHY,
            channels="a stim circuit joins no other tenant's qubits",
        )
        if request.engine not in (None, ENGINE):
            raise refuse(
                NAME, "engine", f"a stim circuit runs on stim's samplers, the {ENGINE} engine's"
            )
        circuit = program.circuit
        if program.qvm and request.noise:
            raise refuse(
                NAME,
                "noise",
                "a QVM program has no noise channels of its own, and the logical machine's "
                "noise is the logical target's: run it with noise off",
            )
        if not request.noise:
            circuit = circuit.without_noise()
        decoder = None
        if chosen.decode or chosen.decoder is not None:
            from qmk.experiments.decoders import DEFAULT_DECODER, check_decoder

            decoder = check_decoder(chosen.decoder or DEFAULT_DECODER)
            if circuit.num_observables == 0:
                raise refuse(NAME, "decode", "the circuit has no OBSERVABLE_INCLUDE to decode")
        return StimExecutable(
            program=program,
            circuit=circuit,
            request=request,
            detectors=chosen.detectors or decoder is not None,
            decoder=decoder,
        )


def _stim_rows(data: Any) -> Graph | None:
    """The graph of QVM data (a graph, a verified program) that has REPEAT rows or a stim
    circuit's rows,
    which the target writes row for row (:func:`_verified`); None for anything else."""
    from qmk.qvm.graph import Graph, from_json
    from qmk.qvm.verify import VerifiedProgram

    if isinstance(data, Mapping) and isinstance(data.get("program"), Mapping):
        data = from_json(data)
    if isinstance(data, VerifiedProgram):
        data = data.graph
    if not isinstance(data, Graph):
        return None
    ops = {op for op, _ in _walk_ops(data.nodes)}
    return data if ops & (STIM_OPS | {REPEAT}) else None


def _walk_ops(nodes: Any) -> Any:
    """Each row's op (bodies' included), with its row."""
    for node in nodes:
        yield node.op, node
        if node.body:
            yield from _walk_ops(node.body)


def _verified(graph: Graph, limits: Any) -> StimProgram:
    """``graph`` verified folded, with its totals, to be written as one stim circuit
    row for row.

    Raises:
        VerificationError: the graph has errors.
    """
    from qmk.qvm.errors import VerificationError
    from qmk.qvm.verify import check

    report = check(graph, limits=limits, unroll=False, turn=False)
    if not report.ok:
        raise VerificationError(report.findings)
    if report.totals is not None:
        totals = report.totals
        work = Work(
            operations=totals.nodes,
            qubits=totals.peak_live_qubits,
            measurements=totals.counts.measurements,
        )
        caps = totals.required_caps
    else:
        assert report.program is not None
        work = _work_of(report.program)
        caps = tuple(report.program.required_caps)

    def lower() -> Lowered:
        from qmk.execution.stim_lower import to_stim

        return Lowered(to_stim(graph))

    return StimProgram(work=work, lower=lower, required_caps=caps)


def _work_of(verified: VerifiedProgram) -> Work:
    return Work(
        operations=len(verified.graph.nodes),
        qubits=verified.peak_live_qubits,
        measurements=verified.counts.measurements,
    )


def _lowered(verified: Any) -> StimProgram:
    """A verified QVM program, to be written as one stim circuit by the logical
    machine's batch lowering (noise off)."""
    return StimProgram(
        work=_work_of(verified),
        lower=functools.partial(_batch_lowered, verified),
        required_caps=tuple(verified.required_caps),
        qvm=True,
    )


def _batch_lowered(verified: Any) -> Lowered:
    """``verified`` as one stim circuit (the logical machine's batch lowering, noise
    off).

    Raises:
        EngineError: ``QE103`` the program is not one stim circuit (why is named).
    """
    from qmk import defaults
    from qmk.engines.base import EngineError
    from qmk.engines.stim_batch import compile_batch
    from qmk.execution.batch import first_unlowerable, lower
    from qmk.execution.plan import build_plan
    from qmk.qvm.output import layout_of

    plan = build_plan(verified, noise=False, qubit=defaults.QUBIT, default_profile=defaults.PROFILE)
    lowered = lower(plan)
    sampler = None if lowered is None else compile_batch(lowered.circuit)
    if lowered is None or sampler is None:
        why = first_unlowerable(plan) or "a gate is not Clifford"
        raise EngineError.of(
            "gate-unsupported",
            f"the stim target runs programs that are one stim circuit (Clifford gates, "
            f"Pauli feed-forward); {why}: run it on the logical target",
        )
    return Lowered(
        circuit=sampler.circuit,
        events=plan.events,
        columns=lowered.event_columns,
        layout=layout_of(verified.graph.metadata, plan.events),
    )


def _built(circuit: stim.Circuit, name: str) -> Decoder:
    """The decoder ``name`` of ``circuit`` and the model it reads (decomposed or not, as
    sinter builds it for matching; undecomposed for BP+OSD), or the ``QM102`` refusal of
    ``decode``."""
    from qmk.experiments.decoders import build_decoder

    try:
        return build_decoder(circuit, name)
    except ValueError as exc:
        from qmk.errors import one_line

        raise refuse(NAME, "decode", f"stim cannot model the circuit: {one_line(exc)}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class StimExecutable:
    """A stim circuit compiled for a request: its footprint and its runs."""

    program: StimProgram
    #: The circuit that runs: the program's, without its noise when the request's is off.
    circuit: stim.Circuit
    request: RunRequest
    #: Whether a shot is its detection events and observable flips (else its record).
    detectors: bool = False
    #: The decoder of a run's detection events (None: runs do not decode). It is built
    #: by the first run: a kernel compiles for the footprint alone, and its workers run,
    #: so the decoder's time and memory are a worker's, under its limits.
    decoder: str | None = None
    _kept: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    @property
    def sampler(self) -> StimSampler:
        """The stabilizer engine's sampler of the circuit (kept: its reference sample is
        found once for every run)."""
        found = self._kept.get("sampler")
        if found is None:
            from qmk.engines.stim_batch import StimSampler

            found = self._kept["sampler"] = StimSampler(self.circuit)
        sampler: StimSampler = found
        return sampler

    @property
    def built(self) -> Decoder | None:
        """The decoder of the circuit and the model it read (kept), or None when runs do
        not decode.

        Raises:
            TargetError: ``QM102`` stim cannot model the circuit's detector error model.
        """
        if self.decoder is None:
            return None
        if "decoder" not in self._kept:
            self._kept["decoder"] = _built(self.circuit, self.decoder)
        found: Decoder = self._kept["decoder"]
        return found

    @property
    def footprint(self) -> Footprint:
        """The verified program's totals (:class:`Work`, counted folded): its qubits (its
        logical qubits: what the program names), its measurements, in one step, and its
        operations; no tiles of the logical machine's floorplan, no cycles, no physical
        qubits or device time of the machine's. A kernel's job of it is held to the
        tenant's qubits and operations and to its worker's memory by these numbers."""
        work = self.program.work
        measurements = work.measurements
        steps = (Step(kind="measure", cycles=0, measurements=measurements),) if measurements else ()
        return Footprint(
            target=NAME,
            logical_qubits=work.qubits,
            block="fast",
            data_tiles=0,
            routing_tiles=0,
            code_distance=0,
            steps=steps,
            operations=work.operations,
        )

    def run(
        self,
        shots: int,
        seed: int,
        *,
        control: Control | None = None,
        resume: Any = None,
    ) -> RunResult:
        """``shots`` shots seeded ``seed``: the same seed gives the same shots (on the
        same machine and stim version). The run has no pause points: ``control`` is
        never asked.

        Raises:
            TargetError: ``QM102`` a ``resume`` (there is no state to resume from).
            MemoryError: the run's measurement record would not fit the process's address
                space (:func:`_check_room`; in a kernel's worker, ``QK201``).
        """
        from qmk.execution.result import LazyCounts, RunResult

        if resume is not None:
            raise refuse(NAME, "resume", "a stim circuit's run has no pause points")
        _check_room(self.circuit.num_measurements, shots)
        began = time.perf_counter()
        bits: PackedRows | np.ndarray
        detection: Detections | None
        decoded: dict[str, Any] | None = None
        if self.detectors:
            bits, events, detection, decoded = self._detected(shots, seed)
            mode = "stim-detector-sampler"
        else:
            bits, events, detection = self._recorded(shots, seed)
            mode = f"{self.sampler.drew_with(shots)}-sampler"  # stim's, or QMK's own
        wall = round(time.perf_counter() - began, 6)
        details: dict[str, Any] = {"stim": self.figures()}
        if self.detectors and detection is not None:
            details["detection"] = _rates(detection, shots)
        if decoded is not None:
            details["decode"] = decoded
        return RunResult(
            counts=LazyCounts(bits, self.program.layout),
            shots=shots,
            seed=seed,
            engine=ENGINE,
            events=events,
            telemetry=self._telemetry(shots, mode, wall),
            shot_bits=bits,
            layout=self.program.layout,
            target=NAME,
            details=details,
            summary=summary(details, shots),
            detection=detection,
        )

    def _detected(
        self, shots: int, seed: int
    ) -> tuple[PackedRows, tuple[str, ...], Detections, dict[str, Any] | None]:
        """A detector run's shots (detection events, then observable flips), its events,
        its detections, and its decoding when asked."""
        from qmk.execution.result import Detections, PackedRows

        circuit = self.circuit
        dets, obs = self.sampler.sample_detectors(shots, seed)
        found = (
            PackedRows(dets, circuit.num_detectors),
            PackedRows(obs, circuit.num_observables),
        )
        events = tuple(f"D{k}" for k in range(circuit.num_detectors)) + tuple(
            f"L{k}" for k in range(circuit.num_observables)
        )
        decoded = None
        built = self.built
        if built is not None:
            decoded = _decode(built, dets, obs, circuit.num_observables)
        return _joined(found), events, Detections(lambda: found), decoded

    def _recorded(
        self, shots: int, seed: int
    ) -> tuple[PackedRows | np.ndarray, tuple[str, ...], Detections | None]:
        """A record run's shots, its events, and its detections (found on first use)."""
        circuit = self.circuit
        record = self.sampler.sample_packed(shots, seed)
        bits, events = _events(self.program, record, circuit.num_measurements)
        if not circuit.num_detectors and not circuit.num_observables:
            return bits, events, None
        return bits, events, _converted(self.sampler, record)

    def figures(self) -> dict[str, int]:
        """What the circuit is: its qubits, measurements, detectors, observables, ticks
        and noise locations (each noise channel's target groups, repeats counted)."""
        circuit = self.program.circuit
        found = self._kept.get("figures")
        if found is None:
            found = self._kept["figures"] = {
                "qubits": circuit.num_qubits,
                "measurements": circuit.num_measurements,
                "detectors": circuit.num_detectors,
                "observables": circuit.num_observables,
                "ticks": circuit.num_ticks,
                "noise_locations": _noise_locations(circuit),
            }
        return dict(found)

    def _telemetry(self, shots: int, mode: str, wall: float) -> Any:
        from qmk.execution.result import Telemetry

        figures = self.figures()
        noisy = self.request.noise and figures["noise_locations"] > 0
        return Telemetry(
            engine=ENGINE,
            mode=mode,
            shots=shots,
            epochs=0,
            logical_cycles=0.0,
            logical_time_ns=0.0,
            peak_logical_qubits=0,
            peak_physical_qubits=figures["qubits"],
            decoder_rounds=0.0,
            magic_states=0,
            teleports=0,
            injected_logical_errors=0,
            noise=self.request.noise,
            noise_locations=figures["noise_locations"] if self.request.noise else 0,
            qubit_params="the circuit's own",
            profiles=(),
            simulations=1,
            noise_sampling="stim" if noisy else "off",
            wall_time_s=wall,
            engine_reason=f"the {NAME} target samples on stim's compiled samplers",
            figures={f"circuit_{k}": v for k, v in figures.items()},
        )


def _check_room(measurements: int, shots: int) -> None:
    """The run's measurement record (:func:`~qmk.execution.footprint.record_bytes`) fits
    the address space the process has left under its ``RLIMIT_AS``. stim does not check
    its allocations: past the limit it would crash the process, not raise.

    Raises:
        MemoryError: it does not fit.
    """
    import resource

    from qmk.execution.footprint import record_bytes

    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit == resource.RLIM_INFINITY:
        return
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            used = int(statm.read().split()[0]) * resource.getpagesize()
    except OSError:  # no procfs: the whole limit
        used = 0
    need = record_bytes(measurements, shots)
    if need > limit - used:
        raise MemoryError(
            f"the run's measurement record ({measurements} bits x {shots} shots) takes "
            f"{need} bytes; the process has {max(limit - used, 0)} of its address space left"
        )


def _joined(found: tuple[PackedRows, PackedRows]) -> PackedRows:
    """Detection events then observable flips as one row of events per shot."""
    from qmk.execution.result import PackedRows

    dets, obs = found
    if dets.width % 8 == 0 or obs.width == 0:
        packed = np.concatenate([dets.packed, obs.packed], axis=1) if obs.width else dets.packed
        return PackedRows(packed, dets.width + obs.width)
    bits = np.concatenate([dets.unpack(), obs.unpack()], axis=1)
    return PackedRows(np.packbits(bits, axis=1, bitorder="little"), dets.width + obs.width)


def _events(
    program: StimProgram, record: np.ndarray, measurements: int
) -> tuple[PackedRows | np.ndarray, tuple[str, ...]]:
    """The shots' event bits and the events: the record itself for a stim circuit, its
    columns at the events of a lowered QVM program."""
    from qmk.execution.result import PackedRows

    if program.events is None or program.columns is None:
        return PackedRows(record, measurements), tuple(f"m{k}" for k in range(measurements))
    bits = np.unpackbits(record, axis=1, count=measurements, bitorder="little")
    out = np.zeros((len(record), len(program.events)), dtype=np.uint8)
    for k, column in enumerate(program.columns):
        if column is not None:
            out[:, k] = bits[:, column]
    return out, program.events


def _converted(sampler: StimSampler, record: np.ndarray) -> Any:
    """The detections of a record, found on first use."""
    from qmk.execution.result import Detections, PackedRows

    circuit = sampler.circuit

    def find() -> tuple[PackedRows, PackedRows]:
        dets, obs = sampler.detectors_of(record)
        return PackedRows(dets, circuit.num_detectors), PackedRows(obs, circuit.num_observables)

    return Detections(find)


def _decode(built: Decoder, dets: np.ndarray, obs: np.ndarray, observables: int) -> dict[str, Any]:
    """Each observable's logical errors, rate and interval, the shots with any, the
    decoder and the model it read (``decomposed`` or ``undecomposed``)."""
    from qmk.experiments.decoders import mispredicted
    from qmk.experiments.memory import DEFAULT_CHUNK, wilson_interval

    matching = built.decoder
    began = time.perf_counter()
    shots = len(dets)
    width = obs.shape[1] * 8
    per = np.zeros(width, dtype=np.int64)
    any_wrong = 0
    for lo in range(0, shots, DEFAULT_CHUNK):
        wrong = mispredicted(matching, dets[lo : lo + DEFAULT_CHUNK], obs[lo : lo + DEFAULT_CHUNK])
        per += np.unpackbits(wrong, axis=1, bitorder="little").sum(axis=0, dtype=np.int64)
        any_wrong += int(np.count_nonzero(wrong.any(axis=1)))
    errors = [int(e) for e in per[:observables]]
    return {
        "decoder": built.name,
        "model": built.model,
        "shots": shots,
        "logical_errors": errors,
        "logical_error_rate": [e / shots for e in errors],
        "interval": [list(wilson_interval(e, shots, CONFIDENCE)) for e in errors],
        "confidence": CONFIDENCE,
        "any_observable_errors": any_wrong,
        "seconds": round(time.perf_counter() - began, 6),
    }


def _rates(detection: Any, shots: int) -> dict[str, Any]:
    """How often the detectors fired and the observables flipped."""
    dets, obs = detection.packed()
    return {
        "shots_with_detections": int(np.count_nonzero(dets.packed.any(axis=1))),
        "detection_rate": int(np.bitwise_count(dets.packed).sum()) / max(shots * dets.width, 1),
        "observable_flips": [int(n) for n in obs.unpack().sum(axis=0, dtype=np.int64)],
    }


def summary(details: Mapping[str, Any], shots: int) -> str:
    """What ``qmk run --detectors`` (and ``--decode``) says beside the counts; ``qmk
    submit --wait`` says it of a stim job's result, which holds the same details."""
    lines = []
    rates, decoded = details.get("detection"), details.get("decode")
    if rates is not None:
        lines.append(
            f"detectors: {details['stim']['detectors']}, fired in "
            f"{rates['shots_with_detections'] / shots:.4%} of shots "
            f"({rates['detection_rate']:.4%} of detector bits)"
        )
        if rates["observable_flips"]:
            shown = ", ".join(
                f"L{k} {n / shots:.4%}" for k, n in enumerate(rates["observable_flips"])
            )
            lines.append(f"observables flipped: {shown}")
    if decoded is not None:
        rates_text = ", ".join(
            f"L{k} {rate:.4g} ({errors} of {shots}; {CONFIDENCE:.0%} {low:.3g}-{high:.3g})"
            for k, (rate, errors, (low, high)) in enumerate(
                zip(
                    decoded["logical_error_rate"],
                    decoded["logical_errors"],
                    decoded["interval"],
                    strict=True,
                )
            )
        )
        # a result stored before the model was recorded was decoded on a decomposition
        # with stim's failures ignored: say so, rather than fail to show it
        model = decoded.get("model", "decomposed (failures ignored)")
        lines.append(
            f"decoded by {decoded.get('decoder', 'pymatching')} on the circuit's {model} "
            f"detector error model "
            f"({decoded['seconds']:.3f} s): logical error rate {rates_text}"
        )
    return "".join(line + "\n" for line in lines)


def _noise_locations(circuit: stim.Circuit) -> int:
    """Target groups of the circuit's noise channels (and noisy measurements), each
    ``REPEAT`` block's counted as many times as it repeats."""
    import stim

    noisy, total = _noisy(), 0
    for item in circuit:
        if isinstance(item, stim.CircuitRepeatBlock):
            total += item.repeat_count * _noise_locations(item.body_copy())
        elif item.name in noisy and any(item.gate_args_copy()):
            total += len(item.target_groups())
    return total


@functools.cache
def _noisy() -> frozenset[str]:
    """The names (and aliases) of stim's instructions that may be noisy."""
    import stim

    return frozenset(name for name, data in stim.gate_data().items() if data.is_noisy_gate)


__all__ = [
    "ENGINE",
    "NAME",
    "Lowered",
    "StimExecutable",
    "StimOptions",
    "StimProgram",
    "StimTarget",
    "Work",
    "is_stim_data",
    "least_result_bytes",
    "named_qubits",
]
