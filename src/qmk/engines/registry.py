"""The engine registry: every engine QMK knows, what it can do, what it costs, and
whether it is installed here.

One :class:`EngineSpec` per engine in :data:`SPECS`, the one table of engines. Its names
are :data:`qmk.defaults.ENGINES`, which a test compares with it. A spec says where the
engine's class lives, the optional packages it needs and the extra that installs them.
It holds the static capabilities: gate set, Clifford-only, how it holds state between
calls, density matrix, precisions, native noise channels, GPU. Its :class:`CostModel`
estimates the seconds a :class:`Workload` takes.

:func:`capabilities` adds what depends on this machine (the most qubits the memory at
hand holds), and :func:`availability` says whether the engine can run here, and why not.
Nothing here imports an engine's package, so that asking costs nothing. Availability is
found with :func:`importlib.util.find_spec` and, for GPU engines, a look at the CUDA
driver (:func:`gpu_present`) that loads no CUDA library when no GPU device is there.

The router (:mod:`qmk.engines.router`) reads this table to pick an engine per job.

>>> spec("statevector").state, spec("stabilizer").clifford_only
('native', True)
>>> availability("statevector")
Availability(available=True, reason=None)
>>> spec("tensor")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
qmk.engines.base.EngineError: QE101 engine-unknown: no engine named 'tensor'; known: ...
"""

from __future__ import annotations

import ctypes
import functools
import glob
import importlib
import importlib.util
import math
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from qmk import defaults
from qmk.engines.base import EngineError
from qmk.engines.gates import GATES
from qmk.engines.limits import DEFAULT_MAX_BYTES, MAX_BYTES_ENV, WorkerLimits, human_bytes
from qmk.errors import closest

#: Every gate of :data:`~qmk.engines.gates.GATES`: the gate set of universal engines.
ALL_GATES: frozenset[str] = frozenset(GATES)

#: How an engine holds its state between calls (``EngineSpec.state``):
#: ``native``: the simulator keeps it (mid-circuit measurement, reset, feed-forward at
#: no extra cost); ``segments``: QMK keeps it between calls and the simulator evolves
#: each unitary segment from it (every protocol call works; each mid-circuit
#: measurement costs a call); ``replay``: the simulator runs the whole circuit from
#: ``|0>`` on demand, so only programs whose measurements are all terminal run on it.
STATE_KINDS = ("native", "segments", "replay")

#: Seconds per state element that a ``segments`` engine pays at every unitary segment,
#: on top of its cost model: QMK hands the whole state to the simulator, takes it back
#: and measures or resets in numpy. Measured on QASMBench's bwt_n21, a reset every dozen
#: gates (``docs/engines.md``).
SEGMENT_ROUND_TRIP_S = 2e-8

#: Precisions: ``single`` (complex64), ``double`` (complex128), ``exact`` (a tableau).
PRECISIONS = ("single", "double", "exact")

#: The numpy dtype of each floating precision (an engine's ``dtype`` option).
DTYPE_OF: Mapping[str, str] = defaults.PRECISION_DTYPES


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """What a job asks of an engine: the router's input (engines know gates, not graphs).

    Attributes:
        qubits: the most qubits live at once.
        gates: the engine gates the job applies (with noise on, the Paulis too).
        gate_count: engine gates one simulation applies.
        clifford: every operation is Clifford (a stabilizer engine runs it exactly).
        non_clifford: where the first non-Clifford operation is, in words, or None.
        shots: how many shots.
        mid_circuit: a measurement, reset or free before the end whose outcome the
            rest of the shot depends on: the engine must hold the state between calls.
        segments: unitary segments of one simulation (1 + the mid-circuit operations).
        branches: simulations the job may need (mid-circuit outcomes split the shots;
            an upper bound).
        trajectories: of ``branches``, those for the shots logical errors hit (noisy
            trajectories: an engine may share their noiseless parts).
        precision: ``single``, ``double`` or None (any: the router's choice).
        samples_only: the run returns samples alone, no amplitudes (not a final-state
            export). With no precision asked, the router may then run a wide one in
            single precision where that is cheaper
            (:data:`qmk.engines.router.SINGLE_MIN_QUBITS`).
        density_matrix: the job needs a density matrix (mixed states held exactly).
        wide_gates: of ``gate_count``, the gates on 3 or more qubits (``ccx ccz``).
        diagonal_gates: of the others, the diagonal gates (phases: ``z s t rz cz``...).
        permutation_gates: of the others, those that permute amplitudes (``x y cx
            swap``). The rest mix amplitudes (dense).
        blocks: the blocks of at most 4 qubits :mod:`qmk.engines.fusion` makes of one
            simulation's gates, each segment's apart. It says how well the circuit
            fuses (:func:`qmk.engines.fusion.widths`); 0 where unknown, and then a gate
            counts as a block.
        linear_gates: of ``permutation_gates``, those linear over GF(2) (``x y cx
            swap``), all of them. An engine that tracks parities keeps them as
            bookkeeping.
        mixed_qubits: the qubits a dense gate or a Toffoli ever acts on (the others
            hold a basis state or a parity of the rest); None where unknown (all).
        bond: log2 of a bound on a matrix product state's bond dimension (the gates
            across each cut between neighbouring qubits); None where unknown (an MPS
            is then priced as a dense state).
        log2_bond_work: log2 of what a matrix product state's gates cost, in ``chi**3``
            units. Each multi-qubit gate counts at the bound on its cuts' bond dimension
            when it comes (:func:`qmk.execution.executor.workload`). It is a log, since
            ``8**bond`` at a wide cut is past any float. ``-inf`` means no multi-qubit
            gate; None means unknown (then ``4**bond`` a gate).
        batchable: the program lowers to one batch circuit: Clifford, its feed-forward
            linear over outcomes (:func:`qmk.execution.batch.lower`). An engine that
            samples such circuits in batches (:attr:`EngineSpec.batch`) simulates it
            once. The sampler draws its noise and mid-circuit outcomes, not
            ``branches``.
        terminal: the program has noise and no pause point (``FENCE_EPOCH``) before its
            terminal measurements. It then lowers, its noise as channels, to a batch
            circuit that a density matrix holds exactly (:mod:`qmk.engines.density`):
            every measurement after every gate on its qubit, no feed-forward, no more
            qubits than ``qubits``. An engine whose batch sampler holds one
            (:attr:`EngineSpec.density`) may run it once instead of its trajectories.
        stacked: with noise on, its trajectories may run as the rows of one stack of
            states (:func:`qmk.execution.executor.stack_of`): an engine that stacks them
            (:attr:`EngineSpec.stacks`) pays a pass over every row a fused block, not a
            simulation a trajectory.
    """

    qubits: int
    gates: frozenset[str] = frozenset()
    gate_count: int = 0
    clifford: bool = True
    non_clifford: str | None = None
    shots: int = 1
    mid_circuit: bool = False
    segments: int = 1
    branches: int = 1
    trajectories: int = 0
    precision: str | None = None
    samples_only: bool = False
    density_matrix: bool = False
    wide_gates: int = 0
    diagonal_gates: int = 0
    permutation_gates: int = 0
    blocks: int = 0
    linear_gates: int = 0
    mixed_qubits: int | None = None
    bond: int | None = None
    log2_bond_work: float | None = None
    batchable: bool = False
    terminal: bool = False
    stacked: bool = False

    @property
    def fused(self) -> int:
        """The fused blocks of one simulation (a gate a block where the plan gave none)."""
        return self.blocks or self.gate_count

    def __post_init__(self) -> None:
        if self.precision not in (None, "single", "double"):
            raise EngineError.of(
                "engine-misuse",
                f"precision is 'single', 'double' or None, not {self.precision!r}",
            )


def _kind(name: str) -> str:
    """``diagonal``, ``permutation`` (one nonzero a row, up to phases) or ``dense``."""
    gate = GATES[name]
    if gate.diagonal:
        return "diagonal"
    matrix = gate.matrix((0.3,) * len(gate.params))
    return "permutation" if all(int((abs(row) > 1e-12).sum()) == 1 for row in matrix) else "dense"


#: Each gate's kind, for the cost models: ``diagonal`` (a phase per amplitude),
#: ``permutation`` (amplitudes moved, not mixed) or ``dense``.
GATE_KINDS: Mapping[str, str] = MappingProxyType({name: _kind(name) for name in GATES})

#: The dense size an MPS is priced at, at most (see :class:`CostModel`).
MPS_PRICED_QUBITS = 26
#: The threads the cost models' per-element figures were measured on.
CALIBRATED_THREADS = 2
#: The most threads a parallel engine's per-element figures scale with: past them a
#: pass over the state is bound by memory bandwidth, not by cores. Figures scaled by all
#: 16 threads of a GPU host underpriced the native statevector several times over; scaled
#: by 3 they price it as measured there (``docs/engines.md``).
SCALING_THREADS = 3

_MIB = 2**20


@dataclass(frozen=True, slots=True, kw_only=True)
class Footprint:
    """The memory an engine's libraries take in a process, beside its state.

    ``bench/bench_router.py --footprint`` measures it: the growth of ``VmSize`` and
    ``VmRSS`` from importing the engine to the end of a first small run. It runs in a
    fresh process that has imported what ``qmk run`` imports. The table holds the
    measured figures rounded up by a few percent, and Aer's run by more, since its thread
    pool grows with the work.

    Attributes:
        address_mib: address space (what ``RLIMIT_AS`` counts): libraries, their heaps'
            reservations, thread stacks.
        resident_mib: the part of it touched (what a memory cgroup counts).
        run_mib: of ``address_mib``, what the first run maps (thread pools, arenas):
            still to pay in a process that has imported the package already.
        threaded: its runs start a thread per CPU, each mapping a stack (charged for
            threads past :data:`CALIBRATED_THREADS`).
    """

    address_mib: int = 0
    resident_mib: int = 0
    run_mib: int = 0
    threaded: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Compiled:
    """An engine's compiled kernels, beside a fallback that is always there.

    The engine uses them where ``requires`` is installed and works here, unless the job
    picks the fallback with ``option=off``. Its cost without them is ``fallback``, so a
    machine without them (the default install) is priced as what it runs.

    Attributes:
        requires: modules the compiled kernels need (found, not imported).
        option: the constructor option that picks an implementation; ``on`` and ``off``
            its values.
        checked: ``module:function`` that says whether the kernels work here, or None
            where nothing asked yet (imports nothing).
        footprint: what the compiler takes in the process (a JIT's libraries).
        fallback: the engine's cost model without them.
        import_s: seconds a process that has not imported ``requires`` yet pays to
            import them and compile its first kernels (a fresh ``qmk run``; a kernel
            worker has paid it).
        cached: ``module:function`` that says whether compiled kernels are kept on
            disk from an earlier process (imports nothing), or None. Where they are, a
            fresh process pays ``cached_import_s`` instead: the import and loading them.
    """

    requires: tuple[str, ...]
    option: str
    on: str
    off: str
    checked: str
    footprint: Footprint
    fallback: CostModel
    import_s: float = 0.0
    cached: str | None = None
    cached_import_s: float = 0.0

    def cold_s(self) -> float:
        """What a process that has not imported ``requires`` pays before its first run."""
        if self.cached is not None:
            module, _, function = self.cached.partition(":")
            if getattr(importlib.import_module(module), function)():
                return self.cached_import_s
        return self.import_s


@dataclass(frozen=True, slots=True, kw_only=True)
class CostModel:
    """Estimated seconds of a :class:`Workload` on one engine (for ranking engines).

    ``representation`` says what the work scales with: ``vector`` (``2**n``
    amplitudes), ``density`` (``4**n`` entries), ``tableau`` (``n**2`` bits, stim) or
    ``mps``. A matrix product state's cost grows as the cube of its bond dimension
    ``chi``. It is priced at the plan's bound on it (:attr:`Workload.bond`), ``8**bond`` a
    gate; where that is unknown, as a dense state of at most :data:`MPS_PRICED_QUBITS`
    qubits.

    The estimate is ``setup_s`` plus, per simulation (``branches`` of them), ``gate_s`` a
    gate and terms that scale with the representation's size. Those are ``element_s`` a
    dense gate, ``diagonal_s`` a diagonal one and ``permutation_s`` a permutation (the
    :data:`GATE_KINDS`). Under ``bookkeeping`` the linear ones cost none, and the size is
    that of the qubits a mixing gate touched. ``wide_s`` prices a gate on 3 or more qubits,
    since some engines apply a Toffoli far slower than the rest. ``block_s`` prices a
    fused block (:attr:`Workload.fused`): what an engine that fuses gates pays per pass
    over the state. ``segment_s`` prices a unitary segment and ``round_trip_s`` a
    segment's pass over the state. Then ``sample_s`` an element and ``shot_s`` a shot to
    sample. ``single`` scales the per-element terms for complex64. A ``parallel``
    engine's terms scale with the threads it may run (:data:`CALIBRATED_THREADS` over the
    worker's, :mod:`qmk.engines.limits`, counted up to :data:`SCALING_THREADS`).

    The figures are fitted to a corpus of measured shapes, by least squares in the log of
    measured over estimated seconds. ``bench/bench_router.py`` measures, and
    ``bench/fit_router.py`` fits and prints the figures this table holds.
    """

    representation: str
    setup_s: float
    gate_s: float
    element_s: float
    diagonal_s: float = 0.0
    permutation_s: float = 0.0
    wide_s: float = 0.0
    block_s: float = 0.0
    segment_s: float = 0.0
    round_trip_s: float = 0.0
    sample_s: float = 0.0
    shot_s: float = 1e-7
    #: What a noisy trajectory costs, in simulations (:attr:`Workload.trajectories`).
    trajectory: float = 1.0
    single: float = 1.0
    parallel: bool = False
    #: The engine keeps linear permutations (``cx x swap``) as bookkeeping on parities
    #: and holds amplitudes only for the qubits a mixing gate touched
    #: (:attr:`Workload.mixed_qubits`): QMK's statevector.
    bookkeeping: bool = False

    def log2_elements(self, qubits: int) -> float:
        """log2 of the size of the state of ``qubits`` qubits, in the units ``element_s``
        prices (a log: a dense state of a thousand qubits is past any float)."""
        n = max(qubits, 0)
        if self.representation == "vector":
            return float(n)
        if self.representation == "density":
            return 2.0 * n
        if self.representation == "tableau":
            return 2.0 * math.log2(max(n, 1)) - 6.0  # n**2 bits, 64 a word
        # mps: its worst case (bond dimension 2**(n/2)) is a dense state's; priced as one,
        # capped, so that it wins only where no dense engine holds the qubits.
        return float(min(n, MPS_PRICED_QUBITS))

    def elements(self, qubits: int) -> float:
        """The size of the state of ``qubits`` qubits, in the units ``element_s`` prices
        (``inf`` past the largest float)."""
        return exp2(self.log2_elements(qubits))

    def log2_state_size(self, work: Workload) -> float:
        """log2 of the state ``work`` holds, in elements: a matrix product state of known
        bond bound ``chi`` holds ``chi**2`` a site (the whole as a dense state otherwise)."""
        if self.representation == "mps" and work.bond is not None:
            return math.log2(max(work.qubits, 1)) + 2.0 * min(work.bond, MPS_PRICED_QUBITS // 2)
        return self.log2_elements(work.qubits)

    def log2_terms(self, work: Workload) -> dict[str, float]:
        """log2 of what each figure of the model multiplies for ``work`` (before
        ``single`` and threads; ``-inf`` for nothing): the estimate is the sum of the
        figures times these. Logs, so that no workload overflows a float: an MPS's bond
        at a wide cut, or a dense state of many qubits, is a number past 2**1024."""
        sims = _log2(work.branches - work.trajectories + self.trajectory * work.trajectories)
        narrow = work.gate_count - work.wide_gates
        dense = _log2(max(narrow - work.diagonal_gates - work.permutation_gates, 0))
        permutation = work.permutation_gates
        size = self.log2_elements(work.qubits)
        if self.representation == "mps" and work.bond is not None:
            size = 2.0 * min(work.bond, MPS_PRICED_QUBITS // 2)  # chi**2 a gate
        if self.bookkeeping:
            permutation -= work.linear_gates
            if work.mixed_qubits is not None:
                size = self.log2_elements(min(work.qubits, work.mixed_qubits))
        if self.representation == "mps" and work.log2_bond_work is not None:
            dense_work = work.log2_bond_work  # its SVDs: chi**3 a crossing, gate by gate
        elif self.representation == "mps" and work.bond is None:
            # no bound known: at worst chi = 2**(n/2), and each gate's SVD costs chi**3
            dense_work = 1.5 * min(work.qubits, MPS_PRICED_QUBITS) + dense
        else:
            dense_work = size + dense
        return {
            "setup_s": 0.0,
            "gate_s": sims + _log2(work.gate_count),
            "element_s": sims + dense_work,
            "diagonal_s": sims + size + _log2(work.diagonal_gates),
            "permutation_s": sims + size + _log2(permutation),
            "wide_s": sims + size + _log2(work.wide_gates),
            "block_s": sims + size + _log2(work.fused),
            "segment_s": sims + _log2(work.segments),
            "round_trip_s": sims + size + _log2(work.segments),
            "sample_s": size,
            "shot_s": _log2(work.shots),
        }

    def terms(self, work: Workload) -> dict[str, float]:
        """What each figure of the model multiplies for ``work``: :meth:`log2_terms`
        as numbers (``inf`` past the largest float)."""
        return {name: exp2(amount) for name, amount in self.log2_terms(work).items()}

    def log2_seconds(self, work: Workload, precision: str | None = None, threads: int = 0) -> float:
        """log2 of the estimate for ``work`` at ``precision`` (the engine's own when
        None), on ``threads`` threads (0: as calibrated): finite for every workload."""
        scale = self.single if precision == "single" else 1.0
        if self.parallel and threads > 0:
            scale *= CALIBRATED_THREADS / min(threads, SCALING_THREADS)
        per_element = math.log2(scale)
        return log2_sum(
            _log2(float(getattr(self, name)))
            + amount
            + (per_element if name in PER_ELEMENT else 0.0)
            for name, amount in self.log2_terms(work).items()
        )

    def seconds(self, work: Workload, precision: str | None = None, threads: int = 0) -> float:
        """The estimate for ``work`` at ``precision`` (the engine's own when None), on
        ``threads`` threads (0: as calibrated); ``inf`` past the largest float."""
        return exp2(self.log2_seconds(work, precision, threads))


def _log2(amount: float) -> float:
    """log2 of an amount, ``-inf`` for none."""
    return math.log2(amount) if amount > 0 else -math.inf


def log2_sum(logs: Iterable[float]) -> float:
    """log2 of the sum of the numbers whose log2 are ``logs`` (``-inf``: nothing),
    found without leaving the logs, so that no sum overflows.

    >>> log2_sum([3.0, 3.0]), log2_sum([2000.0, 0.0]), log2_sum([])
    (4.0, 2000.0, -inf)
    """
    finite = [x for x in logs if x != -math.inf]
    if not finite:
        return -math.inf
    top = max(finite)
    return top + math.log2(sum(2.0 ** (x - top) for x in finite))


def exp2(log2: float) -> float:
    """``2**log2``, or ``inf`` past the largest float.

    >>> exp2(3.0), exp2(-math.inf), exp2(5000.0)
    (8.0, 0.0, inf)
    """
    return 2.0**log2 if log2 < 1024 else math.inf


#: The :class:`CostModel` figures that multiply the state's size (scaled by precision
#: and threads); the others are per call, gate, segment or shot.
PER_ELEMENT = frozenset(
    {
        "element_s",
        "diagonal_s",
        "permutation_s",
        "wide_s",
        "block_s",
        "round_trip_s",
        "sample_s",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSpec:
    """One engine of the registry (static facts; see :func:`capabilities` for the rest).

    Attributes:
        name: its name (a :data:`qmk.defaults.ENGINES` entry).
        summary: one line for ``qmk engines`` and the docs.
        module: the module that defines its class (importing it imports no optional
            package), and ``cls`` the class's name.
        requires: modules that must be importable for it to run (found, not imported).
        extra: the ``pip install 'quantum-microkernel[EXTRA]'`` that installs them.
        gpu: it needs a CUDA GPU.
        gates: the engine gates it applies (``clifford_only``: at Clifford angles only).
        state: how it holds the state between calls (:data:`STATE_KINDS`).
        density_matrix: it holds a density matrix.
        precisions: the precisions it computes in (:data:`PRECISIONS`), its default first.
        noise_channels: the channels it applies. ``pauli``: a Pauli drawn with the
            engine's RNG (``apply_pauli_channel``, every engine). ``kraus``: a Kraus
            channel applied exactly to a density matrix (``apply_kraus``). ``lindblad``:
            open-system evolution for a time (``evolve``).
        cost: its cost model (with its compiled kernels, where it has a ``compiled``).
        footprint: what its packages take in the process beside its state.
        compiled: its compiled kernels and the cost without them, or None.
        needs: what a sandbox may forbid that it needs (:data:`NEEDS`).
    """

    name: str
    summary: str
    module: str
    cls: str
    cost: CostModel
    requires: tuple[str, ...] = ()
    extra: str | None = None
    gpu: bool = False
    gates: frozenset[str] = ALL_GATES
    clifford_only: bool = False
    state: str = "native"
    density_matrix: bool = False
    precisions: tuple[str, ...] = ("double",)
    noise_channels: tuple[str, ...] = ("pauli",)
    footprint: Footprint = Footprint()
    compiled: Compiled | None = None
    needs: tuple[str, ...] = ()
    #: Seconds importing its packages takes (a rough figure on a quiet 2-core machine):
    #: the router charges it to a job in a process that has not imported them yet.
    import_s: float = 0.0
    #: Its class samples a whole batch circuit at once (``compile_batch``: a test holds
    #: this to the class): a :attr:`Workload.batchable` program is priced as one
    #: simulation, whatever its noise and mid-circuit outcomes.
    batch: bool = False
    #: Its class's batch sampler holds a density matrix (:mod:`qmk.engines.density`, on
    #: its compiled kernels), at this cost: a :attr:`Workload.terminal` program may run
    #: once, its noise applied exactly, instead of a trajectory per shot an error hits
    #: (:meth:`runs_density`).
    density: CostModel | None = None
    #: Compiled modules of its first required package of which one at least must be
    #: there (``qsim-gpu``: qsimcirq's CUDA or HIP module; a package built without GPU
    #: support has neither). Found by the package's files, importing nothing: the
    #: router asks it of every job where a GPU is, and importing qsimcirq imports cirq
    #: (over a second), or the adapter's module (what an unchosen engine never imports).
    gpu_modules: tuple[str, ...] = ()
    #: A ``segments`` engine whose state stays where it computes between segments and
    #: whose whole-state shots are drawn there (``custatevec``: on the GPU): its first
    #: segment, from ``|0...0>``, and its samples cost no round trip; each later
    #: segment follows a step on the host, so it pays one (:data:`SEGMENT_ROUND_TRIP_S`).
    resident: bool = False
    #: Its noisy trajectories of a :attr:`Workload.stacked` program run as the rows of
    #: one stack of states (:mod:`qmk.execution.stacked`), priced so
    #: (:meth:`log2_seconds`), on its compiled kernels: seconds an amplitude of the
    #: stack a fused block's pass, a row (its start, its corrections, its draw), and a
    #: run (compiling the program for the stack). None: group by group.
    stack: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.state not in STATE_KINDS or not set(self.precisions) <= set(PRECISIONS):
            raise ValueError(f"engine {self.name}: bad state {self.state!r} or precisions")
        if not set(self.needs) <= set(NEEDS):
            raise ValueError(f"engine {self.name}: unknown needs {self.needs!r}")

    @property
    def mid_circuit(self) -> bool:
        """Whether it runs mid-circuit measurement, reset and feed-forward."""
        return self.state != "replay"

    def log2_seconds(
        self,
        work: Workload,
        precision: str | None = None,
        *,
        threads: int = 0,
        compiled: bool = True,
        density: bool | None = None,
    ) -> float:
        """log2 of its cost model's estimate on ``threads`` threads.

        ``compiled`` False prices its fallback, where it has compiled kernels. A
        ``segments`` engine adds its state round trips (:data:`SEGMENT_ROUND_TRIP_S`) at
        each segment of each simulation. ``density`` prices one density matrix
        (:attr:`density`); None asks :meth:`runs_density`. Stacked trajectories
        (:meth:`runs_stacked`) are a pass a fused block over a stack of a row a
        trajectory and the error-free row, and each row's start and draw (:attr:`stack`):
        an upper bound, since a row starts at its first error."""
        if density is None:
            density = self.runs_density(work)
        if density and self.density is not None:
            once = replace(work, branches=1, trajectories=0)
            return self.density.log2_seconds(once, None, threads)
        cost = self.cost if compiled or self.compiled is None else self.compiled.fallback
        if self.runs_stacked(work):
            return self._log2_trajectories(cost, work, precision, threads)
        if self.batch and work.batchable and work.branches > 1:  # one simulation, sampled
            work = replace(work, branches=1, trajectories=0)
        estimate = cost.log2_seconds(work, precision, threads)
        if self.state == "segments":
            trips = work.segments - 1 if self.resident else work.segments
            trip = _log2(work.branches * max(trips, 0) * SEGMENT_ROUND_TRIP_S)
            estimate = log2_sum((estimate, trip + self.cost.log2_state_size(work)))
        return estimate

    def seconds(
        self,
        work: Workload,
        precision: str | None = None,
        *,
        threads: int = 0,
        compiled: bool = True,
        density: bool | None = None,
    ) -> float:
        """:meth:`log2_seconds` as seconds (``inf`` past the largest float)."""
        return exp2(
            self.log2_seconds(work, precision, threads=threads, compiled=compiled, density=density)
        )

    def runs_density(self, work: Workload) -> bool:
        """Whether ``work`` runs as one density matrix (:attr:`density`).

        It does for a terminal program with trajectories whose density-matrix estimate
        is below its trajectories', on compiled kernels installed here: numpy's run the
        four-qubit blocks far slower. The answer depends on the workload and the
        installation, not on the process (its threads, imports), so a run takes the same
        mode wherever it runs. Only a worker whose memory the matrix does not fit runs
        the trajectories instead (the router's ``assess``)."""
        if (
            self.density is None
            or not work.terminal
            or not work.trajectories
            or (self.compiled is not None and not all(map(_module_found, self.compiled.requires)))
        ):
            return False
        once = replace(work, branches=1, trajectories=0)
        return self.density.log2_seconds(once) < self._log2_trajectories(self.cost, work)

    def _log2_trajectories(
        self, cost: CostModel, work: Workload, precision: str | None = None, threads: int = 0
    ) -> float:
        """log2 of ``cost``'s estimate for ``work``'s simulations, its trajectories
        stacked where they are (:meth:`runs_stacked`)."""
        if self.stack is None or not self.runs_stacked(work):
            return cost.log2_seconds(work, precision, threads)
        block_s, row_s, run_s = self.stack
        rows = work.trajectories + 1  # a row a trajectory, and the error-free row
        return log2_sum(
            (
                _log2(run_s + cost.setup_s + cost.gate_s * work.gate_count),  # once
                _log2(block_s * rows * work.fused) + work.qubits,  # a pass a block
                _log2(row_s * rows),
                _log2(cost.shot_s * work.shots),
            )
        )

    def runs_stacked(self, work: Workload) -> bool:
        """Whether ``work``'s trajectories run as the rows of one stack (:attr:`stacks`,
        :attr:`Workload.stacked`, more than one trajectory)."""
        return self.stack is not None and work.stacked and work.trajectories > 1

    @property
    def loaded(self) -> bool:
        """Whether this process has imported its packages already (no import to pay)."""
        return all(module in sys.modules for module in self.requires)

    def cold_s(self, *, compiled: bool | None = None) -> float:
        """Seconds this process still pays before its first run: importing its
        packages (``import_s``) and, running on its ``compiled`` kernels, importing their
        compiler and compiling the first (``Compiled.import_s``)."""
        cold = 0.0 if self.loaded else self.import_s
        kernels = self.compiled
        if (
            compiled
            and kernels is not None
            and not all(module in sys.modules for module in kernels.requires)
        ):
            cold += kernels.cold_s()
        return cold

    def options_for(self, precision: str | None) -> dict[str, Any]:
        """The constructor options that select ``precision`` (none for the default)."""
        if precision is None or precision == self.precisions[0]:
            return {}
        if precision in DTYPE_OF and precision in self.precisions:
            return {"dtype": DTYPE_OF[precision]}
        return {}

    def precision_for(self, wanted: str | None) -> str | None:
        """The precision it would run ``wanted`` at, or None when it cannot."""
        if "exact" in self.precisions:
            return "exact"
        if wanted is None:
            return self.precisions[0]
        return wanted if wanted in self.precisions else None


#: What an engine may need that a sandboxed worker forbids (``EngineSpec.needs``):
#: ``numba-cache``: numba functions compiled with ``cache=True`` write their cache
#: beside the package's files (or in ``$NUMBA_CACHE_DIR``), which a worker whose
#: filesystem is closed refuses (Braket's simulator fails at its first gate there).
NEEDS = ("numba-cache",)

#: Channels: ``pauli`` (a drawn Pauli, every engine), ``kraus`` (a Kraus channel applied
#: exactly, ``apply_kraus``), ``lindblad`` (open-system evolution, ``evolve``).
_DENSITY_CHANNELS = ("pauli", "kraus")
_QUTIP_CHANNELS = ("pauli", "kraus", "lindblad")

#: Every engine, in the order ``qmk engines`` lists them.
SPECS: tuple[EngineSpec, ...] = (
    EngineSpec(
        name=defaults.STATEVECTOR,
        summary="QMK's numpy statevector: universal, fused gates, mid-circuit branching",
        module="qmk.engines.statevector",
        cls="StatevectorEngine",
        precisions=("double", "single"),
        cost=CostModel(
            representation="vector",
            setup_s=0.00067,
            gate_s=2e-05,
            element_s=4.8e-11,
            diagonal_s=2.9e-13,
            permutation_s=1.1e-10,
            wide_s=8.3e-10,
            block_s=2e-10,
            segment_s=3.7e-09,
            round_trip_s=8.4e-12,
            sample_s=1.1e-11,
            shot_s=9.9e-08,
            trajectory=0.39,
            single=0.6,
            parallel=True,
            bookkeeping=True,
        ),
        stack=(1e-8, 1e-4, 0.02),  # measured (docs/engines.md, Cost models: stacked)
        # measured, not fitted (bench_noisy_dense.py --calibrate; docs/engines.md): a
        # qubit's gates and channels become one op, so the passes over its 4**n entries
        # go with the gates whatever their kind
        density=CostModel(
            representation="density",
            setup_s=0.001,
            gate_s=2.5e-05,
            element_s=2e-10,
            diagonal_s=2e-10,
            permutation_s=2e-10,
            wide_s=2e-10,
            shot_s=1e-07,
            parallel=True,
        ),
        compiled=Compiled(
            requires=("llvmlite",),
            option="kernels",
            on="simd",
            off="numpy",
            checked="qmk.engines.simd:checked",
            footprint=Footprint(address_mib=170, resident_mib=50),
            import_s=0.3,
            # the kernels kept on disk by an earlier process: llvmlite's import and
            # loading them (measured by bench_router.py --imports)
            cached="qmk.engines.kernel_cache:populated",
            cached_import_s=0.04,
            fallback=CostModel(
                representation="vector",
                setup_s=0.0008,
                gate_s=2e-05,
                element_s=4.8e-11,
                diagonal_s=2.5e-10,
                permutation_s=2.5e-10,
                wide_s=8.3e-10,
                block_s=1.5e-09,
                segment_s=5.2e-09,
                round_trip_s=1.7e-11,
                sample_s=2.3e-10,
                trajectory=0.39,
                single=0.6,
                bookkeeping=True,
            ),
        ),
    ),
    EngineSpec(
        name=defaults.STABILIZER,
        summary="stim's tableau simulator and batch sampler: Clifford programs, thousands "
        "of qubits",
        module="qmk.engines.stabilizer",
        cls="StabilizerEngine",
        footprint=Footprint(address_mib=12, resident_mib=8),
        clifford_only=True,
        batch=True,
        precisions=("exact",),
        cost=CostModel(
            representation="tableau",
            # measured on a Bell pair's 1,000 shots, against the statevector's
            # (docs/engines.md)
            setup_s=6e-4,
            gate_s=1e-6,
            element_s=1e-9,
            diagonal_s=1e-9,
            permutation_s=1e-9,
            round_trip_s=1e-9,
            sample_s=1e-9,
            segment_s=1e-6,
            shot_s=1e-8,
        ),
    ),
    EngineSpec(
        name=defaults.QSIM,
        import_s=1.5,
        footprint=Footprint(address_mib=340, resident_mib=165, threaded=True),
        summary="Google's qsim (qsimcirq): AVX statevector with gate fusion, single precision",
        module="qmk.engines.adapters.qsim",
        cls="QsimEngine",
        requires=("qsimcirq", "cirq"),
        extra="qsim",
        state="segments",
        precisions=("single",),
        cost=CostModel(
            representation="vector",
            setup_s=0.0013,
            gate_s=3.2e-05,
            element_s=5.8e-11,
            diagonal_s=2.6e-14,
            permutation_s=8.4e-11,
            wide_s=3.8e-10,
            block_s=1.8e-13,
            segment_s=6.2e-08,
            round_trip_s=1e-11,
            sample_s=3e-12,
            shot_s=9e-08,
            trajectory=0.69,
        ),
    ),
    EngineSpec(
        name=defaults.AER_STATEVECTOR,
        import_s=0.6,
        footprint=Footprint(address_mib=1350, resident_mib=70, run_mib=140, threaded=True),
        summary="Qiskit Aer's statevector method",
        module="qmk.engines.adapters.aer",
        cls="AerStatevectorEngine",
        requires=("qiskit_aer", "qiskit"),
        extra="aer",
        state="segments",
        precisions=("double", "single"),
        noise_channels=("pauli",),
        cost=CostModel(
            representation="vector",
            setup_s=0.0017,
            gate_s=4.3e-05,
            element_s=1.4e-09,
            diagonal_s=2.9e-13,
            permutation_s=2.1e-10,
            wide_s=1.3e-11,
            block_s=1.4e-09,
            segment_s=0.00014,
            round_trip_s=1.7e-08,
            sample_s=8.2e-08,
            shot_s=9.8e-08,
            trajectory=0.57,
            single=0.6,
        ),
    ),
    EngineSpec(
        name=defaults.AER_DENSITY_MATRIX,
        import_s=0.6,
        footprint=Footprint(address_mib=1350, resident_mib=70, run_mib=140, threaded=True),
        summary="Qiskit Aer's density_matrix method: mixed states held exactly",
        module="qmk.engines.adapters.aer",
        cls="AerDensityMatrixEngine",
        requires=("qiskit_aer", "qiskit"),
        extra="aer",
        state="segments",
        density_matrix=True,
        precisions=("double", "single"),
        noise_channels=_DENSITY_CHANNELS,
        cost=CostModel(
            representation="density",
            setup_s=0.0022,
            gate_s=3.5e-05,
            element_s=2.6e-09,
            diagonal_s=2.6e-09,
            permutation_s=2.6e-09,
            wide_s=2.6e-09,
            segment_s=0.00032,
            round_trip_s=2.6e-09,
            sample_s=2.6e-09,
            shot_s=9.9e-08,
            trajectory=0.84,
            single=0.6,
        ),
    ),
    EngineSpec(
        name=defaults.AER_MPS,
        import_s=0.6,
        footprint=Footprint(address_mib=1550, resident_mib=70, run_mib=345, threaded=True),
        summary="Qiskit Aer's matrix_product_state method: many qubits at low entanglement",
        module="qmk.engines.adapters.aer",
        cls="AerMPSEngine",
        requires=("qiskit_aer", "qiskit"),
        extra="aer",
        state="segments",
        precisions=("double",),
        cost=CostModel(
            representation="mps",
            setup_s=0.007,
            gate_s=4.4e-05,
            element_s=5.4e-14,
            diagonal_s=6.3e-12,
            permutation_s=1.4e-12,
            wide_s=3.9e-07,
            block_s=2.1e-07,
            segment_s=0.00043,
            round_trip_s=1.7e-09,
            sample_s=3.2e-10,
            shot_s=6.5e-06,
            trajectory=0.6,
        ),
    ),
    EngineSpec(
        name=defaults.CIRQ,
        import_s=1.2,
        footprint=Footprint(address_mib=335, resident_mib=165),
        summary="Cirq's statevector simulator (cirq.Simulator)",
        module="qmk.engines.adapters.cirq",
        cls="CirqEngine",
        requires=("cirq",),
        extra="cirq",
        state="segments",
        precisions=("single", "double"),
        cost=CostModel(
            representation="vector",
            setup_s=0.0017,
            gate_s=6.5e-05,
            element_s=6.5e-10,
            diagonal_s=2.7e-09,
            permutation_s=8.9e-10,
            wide_s=2.5e-09,
            block_s=1.3e-11,
            segment_s=2.3e-08,
            round_trip_s=6.8e-11,
            sample_s=8.6e-10,
            shot_s=9.8e-08,
            trajectory=0.64,
            single=0.7,
        ),
    ),
    EngineSpec(
        name=defaults.QUTIP,
        import_s=0.9,
        footprint=Footprint(address_mib=305, resident_mib=110, run_mib=35),
        summary="QuTiP density matrices, and Lindblad (mesolve) evolution for analog devices",
        module="qmk.engines.adapters.qutip",
        cls="QutipEngine",
        requires=("qutip",),
        extra="qutip",
        state="segments",
        density_matrix=True,
        precisions=("double",),
        noise_channels=_QUTIP_CHANNELS,
        cost=CostModel(
            representation="density",
            setup_s=0.00074,
            gate_s=0.00027,
            element_s=1.7e-09,
            diagonal_s=1.7e-09,
            permutation_s=1.7e-09,
            wide_s=1.7e-09,
            segment_s=5.6e-08,
            round_trip_s=1.7e-09,
            sample_s=1.7e-09,
            shot_s=9.6e-08,
            trajectory=0.72,
        ),
    ),
    EngineSpec(
        name=defaults.LIGHTNING,
        import_s=2.5,
        footprint=Footprint(address_mib=430, resident_mib=245, run_mib=10, threaded=True),
        summary="PennyLane Lightning (lightning.qubit): C++ statevector kernels",
        module="qmk.engines.adapters.lightning",
        cls="LightningEngine",
        requires=("pennylane_lightning", "pennylane"),
        extra="lightning",
        state="segments",
        precisions=("double", "single"),
        cost=CostModel(
            representation="vector",
            setup_s=0.0016,
            gate_s=2.4e-05,
            element_s=2.7e-12,
            diagonal_s=5.3e-10,
            permutation_s=2.1e-10,
            wide_s=4.2e-10,
            block_s=1.3e-12,
            segment_s=2e-08,
            round_trip_s=7.8e-12,
            sample_s=3.6e-11,
            shot_s=9.9e-08,
            trajectory=0.53,
            single=0.7,
        ),
    ),
    EngineSpec(
        name=defaults.BRAKET,
        import_s=1.0,
        footprint=Footprint(address_mib=395, resident_mib=135),
        summary="the Amazon Braket local statevector simulator",
        module="qmk.engines.adapters.braket",
        cls="BraketEngine",
        needs=("numba-cache",),
        requires=("braket.default_simulator",),
        extra="braket",
        state="segments",
        precisions=("double",),
        cost=CostModel(
            representation="vector",
            setup_s=0.001,
            gate_s=2.1e-05,
            element_s=6.3e-10,
            diagonal_s=1.5e-09,
            permutation_s=3.9e-10,
            wide_s=1.1e-08,
            block_s=2.2e-12,
            segment_s=4.6e-09,
            round_trip_s=5.7e-12,
            sample_s=5.7e-11,
            trajectory=0.82,
        ),
    ),
    EngineSpec(
        name=defaults.CUSTATEVEC,
        # measured on an H200, not fitted (docs/engines.md): the state never leaves the
        # GPU
        import_s=2.5,
        footprint=Footprint(address_mib=1500, resident_mib=300, threaded=True),
        summary="NVIDIA cuStateVec (cuquantum) on a CUDA GPU",
        module="qmk.engines.adapters.custatevec",
        cls="CuStateVecEngine",
        requires=("cuquantum", "cupy"),
        extra="gpu",
        gpu=True,
        state="segments",
        resident=True,
        precisions=("double", "single"),
        cost=CostModel(
            representation="vector",
            setup_s=0.5,
            gate_s=1e-5,
            element_s=1e-15,
            diagonal_s=1e-15,
            permutation_s=1e-15,
            block_s=8.7e-12,
            round_trip_s=2e-11,
            sample_s=1e-10,
            segment_s=1e-4,
            single=0.5,
        ),
    ),
    EngineSpec(
        name=defaults.QSIM_GPU,
        import_s=1.5,
        footprint=Footprint(address_mib=1500, resident_mib=300, threaded=True),
        summary="qsim's CUDA statevector (qsimcirq built with GPU support)",
        module="qmk.engines.adapters.qsim",
        cls="QsimGpuEngine",
        gpu_modules=("qsim_cuda", "qsim_hip"),
        requires=("qsimcirq", "cirq"),
        extra="qsim",
        gpu=True,
        state="segments",
        precisions=("single",),
        # measured on an H200, not fitted (docs/engines.md): the fused passes, the state
        # brought to the host and the shots drawn there (written estimates had priced
        # those runs several times too high)
        cost=CostModel(
            representation="vector",
            setup_s=0.5,
            gate_s=5e-5,
            element_s=1e-15,
            diagonal_s=1e-15,
            permutation_s=1e-15,
            block_s=3.2e-11,
            round_trip_s=2.4e-9,
            sample_s=1e-9,
            segment_s=2e-3,
        ),
    ),
    EngineSpec(
        name=defaults.MPS,
        summary="QMK's matrix product state (numpy): many qubits at low entanglement, exact "
        "or refused (QE114)",
        module="qmk.engines.mps",
        cls="MPSEngine",
        precisions=("double",),
        # priced as a dense state capped at MPS_PRICED_QUBITS (see CostModel): per element
        # above the statevector's, so it wins only past every dense engine's width, and
        # below aer-mps's, which pays Qiskit's circuit and Aer's call each segment
        cost=CostModel(
            representation="mps",
            setup_s=0.0016,
            gate_s=2.5e-05,
            element_s=3.8e-10,
            diagonal_s=7.3e-09,
            permutation_s=1.8e-11,
            wide_s=6.3e-07,
            block_s=4.3e-11,
            segment_s=2.7e-08,
            round_trip_s=3.5e-11,
            sample_s=3.3e-10,
            shot_s=9e-07,
            trajectory=0.49,
        ),
    ),
)

_BY_NAME: Mapping[str, EngineSpec] = MappingProxyType({s.name: s for s in SPECS})

#: Engine names, in registry order (equal to :data:`qmk.defaults.ENGINES`: a test checks).
ENGINE_NAMES: tuple[str, ...] = tuple(_BY_NAME)


def spec(name: str) -> EngineSpec:
    """The engine named ``name``.

    Raises:
        EngineError: ``QE101 engine-unknown``, with the closest name when one is close.

    >>> try:
    ...     spec("statevektor")
    ... except EngineError as exc:
    ...     print(exc.code, str(exc).split("; ")[1].split("? ")[0])
    QE101 did you mean 'statevector'
    """
    found = _BY_NAME.get(name) if isinstance(name, str) else None
    if found is None:
        close = closest(name.lower(), ENGINE_NAMES) if isinstance(name, str) else None
        hint = f"; did you mean {close!r}?" if close else ";"
        raise EngineError.of(
            "engine-unknown",
            f"no engine named {name!r}{hint} known: {', '.join(ENGINE_NAMES)}",
            engine=repr(name),
        )
    return found


def load(name: str) -> type:
    """The class of engine ``name`` (its module is imported; its package need not be).

    Raises:
        EngineError: ``QE101 engine-unknown``.
    """
    entry = spec(name)
    cls: type = getattr(importlib.import_module(entry.module), entry.cls)
    return cls


@dataclass(frozen=True, slots=True, kw_only=True)
class Availability:
    """Whether an engine can run here, and if not, why (one line: what is missing)."""

    available: bool
    reason: str | None = None


@functools.cache
def _module_found(module: str) -> bool:
    """Whether ``module`` can be imported here (asked once per process: the engines share
    packages, and a fresh process's router asks for each of theirs)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


#: Environment variable that hides the GPU from QMK's engines when set to "0".
GPU_ENV = "QMK_GPU"


@functools.lru_cache(maxsize=1)
def gpu_memory() -> int | None:
    """Bytes of memory of the first CUDA GPU, or None when there is none.

    No CUDA library is loaded unless a GPU device node or the NVIDIA driver is there;
    then the driver API (``libcuda``) is asked through :mod:`ctypes`, without importing
    any CUDA package. ``$QMK_GPU=0`` hides the GPU.
    """
    if os.environ.get(GPU_ENV) == "0":
        return None
    if not (os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia/version")):
        return None
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
        if cuda.cuInit(0) != 0:
            return None
        count = ctypes.c_int(0)
        if cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
            return None
        device = ctypes.c_int(0)
        if cuda.cuDeviceGet(ctypes.byref(device), 0) != 0:
            return None
        total = ctypes.c_size_t(0)
        if cuda.cuDeviceTotalMem_v2(ctypes.byref(total), device) != 0:
            return None
        return int(total.value)
    except (OSError, AttributeError):
        return None


def gpu_present() -> bool:
    """Whether a CUDA GPU is there (see :func:`gpu_memory`)."""
    return gpu_memory() is not None


@functools.cache
def availability(name: str) -> Availability:
    """Whether engine ``name`` can run here (:func:`check`, asked once per process).

    Raises:
        EngineError: ``QE101 engine-unknown``.
    """
    return check(spec(name))


def check(entry: EngineSpec) -> Availability:
    """Whether the engine ``entry`` describes can run here.

    Its GPU (for a GPU engine) and every module it requires must be there, and, where it
    needs a package's GPU build, one of that package's :attr:`EngineSpec.gpu_modules`.
    It imports nothing: no optional package and none of QMK's engine modules. The router
    asks it of every engine it weighs, and an engine's module is imported only to build
    one.

    >>> from dataclasses import replace
    >>> check(replace(spec("statevector"), requires=("qmk_no_such_package",), extra="x")).reason
    "qmk_no_such_package not installed (pip install 'quantum-microkernel[x]')"
    >>> check(replace(spec("statevector"), requires=("msgspec",), gpu_modules=("_cuda",))).reason
    'this msgspec was built without GPU support (it has no _cuda module)'
    """
    if entry.gpu and not gpu_present():
        return Availability(available=False, reason="no CUDA GPU here")
    missing = [module for module in entry.requires if not _module_found(module)]
    if missing:
        how = f"pip install 'quantum-microkernel[{entry.extra}]'" if entry.extra else "install it"
        return Availability(available=False, reason=f"{', '.join(missing)} not installed ({how})")
    if entry.gpu_modules and not _holds_module(entry.requires[0], entry.gpu_modules):
        return Availability(
            available=False,
            reason=f"this {entry.requires[0]} was built without GPU support (it has no "
            f"{' or '.join(entry.gpu_modules)} module)",
        )
    return Availability(available=True)


def _holds_module(package: str, modules: tuple[str, ...]) -> bool:
    """Whether the installed ``package`` holds a file of one of ``modules`` (a compiled
    extension, whatever its suffix), found without importing it."""
    found = importlib.util.find_spec(package)
    places = (found.submodule_search_locations or []) if found is not None else []
    return any(
        glob.glob(os.path.join(place, f"{module}.*")) for place in places for module in modules
    )


def require(name: str) -> EngineSpec:
    """The engine named ``name`` if it can run here.

    Raises:
        EngineError: ``QE101 engine-unknown``; ``QE108 engine-unavailable`` naming what
            is missing.
    """
    entry = spec(name)
    found = availability(name)
    if not found.available:
        raise EngineError.of(
            "engine-unavailable",
            f"the {name} engine cannot run here: {found.reason}",
            engine=name,
            reason=found.reason,
        )
    return entry


def memory_bytes() -> int:
    """The memory a state may take here: ``$QMK_MAX_STATE_BYTES`` or the statevector
    engine's default (state plus one working copy), and no more than the machine's
    physical memory."""
    text = os.environ.get(MAX_BYTES_ENV, "").strip()
    try:
        value = int(text) if text else DEFAULT_MAX_BYTES
    except ValueError:
        value = DEFAULT_MAX_BYTES
    value = value if value > 0 else DEFAULT_MAX_BYTES
    physical = _physical_memory()
    return min(value, physical) if physical > 0 else value


@functools.cache
def _physical_memory() -> int:
    """The machine's physical memory in bytes (0 where unknown), read once."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return 0


#: The most qubits a stabilizer or MPS engine is offered (their memory grows slowly).
WIDE = 100_000
#: The most qubits an MPS engine is offered (Aer's own limit is far above; QMK's ``mps``
#: takes a ``max_qubits`` option).
MPS_QUBITS = 1_000


def compiled_here(
    entry: EngineSpec, options: Mapping[str, Any], limits: WorkerLimits
) -> bool | None:
    """Whether ``entry`` will run on its compiled kernels here (None: it has none).

    The job's ``options`` pick them or the fallback; else they run where their modules
    are installed, work (where this process asked already: ``Compiled.checked``), and
    their compiler fits in the memory the worker has left. Imports nothing.
    """
    kernels = entry.compiled
    if kernels is None:
        return None
    asked = options.get(kernels.option)
    if asked in (kernels.on, kernels.off):
        return bool(asked == kernels.on)
    module, _, function = kernels.checked.partition(":")
    found = sys.modules.get(module)
    known = getattr(found, function)() if found is not None else None
    if known is not None:
        return bool(known)
    if not all(_module_found(name) for name in kernels.requires):
        return False
    if all(name in sys.modules for name in kernels.requires):
        return True
    footprint = kernels.footprint
    return limits.shortfall(footprint.address_mib * _MIB, footprint.resident_mib * _MIB) is None


def library_bytes(
    entry: EngineSpec,
    limits: WorkerLimits,
    *,
    compiled: bool | None = None,
    first_run: bool = True,
) -> tuple[int, int]:
    """``(address, resident)``: the bytes ``entry``'s packages still take in this process
    beside the state (and its compiler's, where ``compiled``). Of a package imported
    already, only what its first run maps counts (``first_run``). The router counts that
    part; an engine sizing its own state after the router chose it does not, since it
    may have run here already."""
    parts = [(entry.footprint, entry.loaded)]
    if compiled and entry.compiled is not None:
        kernels = entry.compiled
        parts.append((kernels.footprint, all(m in sys.modules for m in kernels.requires)))
    address = resident = 0
    for footprint, loaded in parts:
        run = footprint.run_mib if first_run else 0
        address += (run if loaded else footprint.address_mib) * _MIB
        if footprint.threaded:
            address += max(limits.threads - CALIBRATED_THREADS, 0) * limits.stack_bytes
        resident += 0 if loaded else footprint.resident_mib * _MIB
    return address, resident


def state_bytes(entry: EngineSpec, qubits: int, precision: str | None = None) -> int:
    """Bytes of host memory the state of ``qubits`` qubits takes on ``entry`` at
    ``precision``, with one working copy. A GPU engine holds it on its GPU (0). An MPS
    depends on entanglement, which the plan does not know (0)."""
    chosen = entry.precision_for(precision) or entry.precisions[0]
    representation = entry.cost.representation
    if entry.gpu or representation == "mps":
        return 0
    n = max(qubits, 0)
    if representation == "tableau":
        return 2 * n * n // 4 + 2 * n  # stim: 2n x 2n bits, and signs
    itemsize = 8 if chosen == "single" else 16
    return 2 * itemsize * (4**n if representation == "density" else 2**n)


def fits(
    entry: EngineSpec,
    qubits: int,
    precision: str | None,
    limits: WorkerLimits,
    *,
    compiled: bool | None = None,
) -> str | None:
    """Why ``entry`` does not fit ``qubits`` qubits in this process (its packages and
    its state within the worker's memory caps), in words; None when it fits."""
    address, resident = library_bytes(entry, limits, compiled=compiled)
    state = state_bytes(entry, qubits, precision)
    short = limits.shortfall(address + state, resident + state)
    if short is None:
        return None
    return (
        f"{short} (its libraries ~{human_bytes(address)}, the state of {qubits} "
        f"qubits {human_bytes(state)})"
    )


def max_qubits(
    name: str,
    precision: str | None = None,
    *,
    max_bytes: int | None = None,
    limits: WorkerLimits | None = None,
) -> int:
    """The most qubits engine ``name`` holds at ``precision`` in the memory at hand.

    Dense engines hold their state and one working copy within ``max_bytes`` (default
    :func:`memory_bytes`; GPU engines: the GPU's memory). A process with a memory cap
    (``limits``, default :meth:`WorkerLimits.read`: a kernel worker's ``RLIMIT_AS``, a
    memory cgroup) holds them within what the cap leaves beside the engine's packages
    (``EngineSpec.footprint``, where this process has not imported them yet). The
    stabilizer holds :data:`WIDE`.

    >>> max_qubits("statevector", "double", max_bytes=2**20), max_qubits("qutip", max_bytes=2**20)
    (15, 7)
    """
    entry = spec(name)
    chosen = entry.precision_for(precision) or entry.precisions[0]
    if entry.cost.representation == "tableau":
        return WIDE
    limits = WorkerLimits.read() if limits is None else limits
    address, resident = library_bytes(entry, limits, first_run=False)
    rooms = [
        left - used
        for left, used in ((limits.address_left, address), (limits.cgroup_left, resident))
        if left is not None
    ]
    room = min(rooms) if rooms else None
    if entry.cost.representation == "mps":
        return 0 if room is not None and room <= 0 else MPS_QUBITS
    limit = (gpu_memory() or 0) if entry.gpu else memory_bytes()
    if isinstance(max_bytes, int) and not isinstance(max_bytes, bool) and max_bytes > 0:
        limit = min(limit, max_bytes) if entry.gpu else max_bytes
    if room is not None and not entry.gpu:
        limit = min(limit, max(room, 0))
    itemsize = 8 if chosen == "single" else 16
    fit = limit // (2 * itemsize)
    bits = fit.bit_length() - 1 if fit else 0
    return bits // 2 if entry.cost.representation == "density" else bits


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """What an engine can do here (``qmk engines`` prints these)."""

    name: str
    summary: str
    available: bool
    reason: str | None
    extra: str | None
    max_qubits: int
    gates: tuple[str, ...]
    clifford_only: bool
    state: str
    mid_circuit: bool
    density_matrix: bool
    precisions: tuple[str, ...]
    noise_channels: tuple[str, ...]
    gpu: bool
    batch: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "available": self.available,
            "reason": self.reason,
            "extra": self.extra,
            "max_qubits": self.max_qubits,
            "gates": list(self.gates),
            "clifford_only": self.clifford_only,
            "state": self.state,
            "mid_circuit": self.mid_circuit,
            "density_matrix": self.density_matrix,
            "precisions": list(self.precisions),
            "noise_channels": list(self.noise_channels),
            "gpu": self.gpu,
            "batch": self.batch,
        }


def capabilities(name: str, precision: str | None = None) -> Capabilities:
    """What engine ``name`` can do here (at ``precision``: its qubit limit depends on it)."""
    from qmk.engines.batch import batch_compiler

    entry = spec(name)
    found = availability(name)
    return Capabilities(
        name=name,
        summary=entry.summary,
        available=found.available,
        reason=found.reason,
        extra=entry.extra,
        max_qubits=max_qubits(name, precision),
        gates=tuple(g for g in GATES if g in entry.gates),
        clifford_only=entry.clifford_only,
        state=entry.state,
        mid_circuit=entry.mid_circuit,
        density_matrix=entry.density_matrix,
        precisions=entry.precisions,
        noise_channels=entry.noise_channels,
        gpu=entry.gpu,
        batch=batch_compiler(load(name)) is not None,
    )


def human_seconds(seconds: float) -> str:
    """``0.012 s``, ``3.4 ms``, ``2.1e+05 s``: an estimate in a few characters.

    >>> human_seconds(0.0034), human_seconds(1e-4), human_seconds(12.0), human_seconds(3e7)
    ('3.4 ms', '100 us', '12 s', '3e+07 s')
    """
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} us"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    if seconds < 1e4:
        return f"{seconds:.3g} s"
    return f"{seconds:.0e} s"


def human_log2_seconds(log2_s: float) -> str:
    """:func:`human_seconds` of ``2**log2_s`` seconds, past the largest float too.

    >>> human_log2_seconds(3.0), human_log2_seconds(4000.0)
    ('8 s', '1e+1204 s')
    """
    if log2_s < 996:  # below 1e300
        return human_seconds(exp2(log2_s))
    return f"1e+{round(log2_s * math.log10(2))} s"


__all__ = [
    "ALL_GATES",
    "ENGINE_NAMES",
    "SPECS",
    "Availability",
    "Capabilities",
    "CostModel",
    "EngineSpec",
    "Workload",
    "availability",
    "capabilities",
    "check",
    "gpu_present",
    "load",
    "max_qubits",
    "require",
    "spec",
]
