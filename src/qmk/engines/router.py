"""The engine router: the cheapest installed engine that runs a job exactly.

:func:`route` walks the registry (:mod:`qmk.engines.registry`). It refuses every
engine that cannot run the :class:`~qmk.engines.registry.Workload` exactly. An
engine may be not installed, or not Clifford where it must be. It may need too many
qubits for the memory at hand, or replay its circuit when the job measures
mid-circuit. It may not take the precision or an option, or lack a density matrix
where one is needed. The router also refuses an engine that would not fit in the
process that runs it (:class:`~qmk.engines.limits.WorkerLimits`). That means its
packages and its state within the worker's memory caps, and what its sandbox forbids.

Of the rest it picks the one whose cost model estimates the fewest seconds (ties:
registry order) on the threads the worker has. Each is priced as the kernels it will
really use, so an engine whose compiled kernels are missing here is priced as its
fallback. A job that names its engine gets it, or a coded refusal saying why not.

Every decision is a :class:`Choice` that says which engine, at which precision, and
why. It holds the candidates, their estimated cost and the reasons the others were
refused (``qmk run --explain``; telemetry's ``engine_reason``).

>>> from qmk.engines.registry import Workload
>>> bell = Workload(qubits=2, gates=frozenset({"h", "cx"}), gate_count=2, shots=100)
>>> route(bell).engine
'stabilizer'
>>> t = Workload(qubits=2, gates=frozenset({"h", "t"}), gate_count=2, clifford=False,
...              non_clifford="gate t", shots=100)
>>> choice = route(t)
>>> choice.engine, choice.named
('statevector', False)
>>> route(t, "stabilizer")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
qmk.engines.base.EngineError: QE103 gate-unsupported: the stabilizer engine cannot run gate t: ...
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from qmk import defaults
from qmk.engines.base import EngineError
from qmk.engines.limits import WorkerLimits
from qmk.engines.registry import (
    SPECS,
    EngineSpec,
    Workload,
    availability,
    compiled_here,
    exp2,
    fits,
    human_log2_seconds,
    human_seconds,
    load,
    max_qubits,
    spec,
)

#: Why an engine was refused (``Candidate.refusal``) -> the error a job that names it gets.
REFUSAL_CODES: Mapping[str, str] = {
    "unavailable": "engine-unavailable",
    "clifford": "gate-unsupported",
    "gates": "gate-unsupported",
    "capacity": "engine-capacity",
    "memory": "engine-capacity",
    "sandbox": "engine-unavailable",
    "mid-circuit": "operation-unsupported",
    "precision": "operation-unsupported",
    "density-matrix": "operation-unsupported",
    "option": "engine-misuse",
    "too-slow": "engine-too-slow",
}

#: The longest run the router lets an engine take on its own estimate: a day, the CPU a
#: kernel worker may spend on one job (:data:`qmk.defaults.WORKER_CPU_S`). An engine
#: whose estimate is past it is refused (``too-slow``), never chosen: such an estimate
#: says the engine's representation blows up on this program (an MPS at the bond of
#: long-range gates on a thousand qubits), and a run would never end.
MAX_ESTIMATE_S = float(defaults.WORKER_CPU_S)


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One engine the router weighed: its estimated seconds, or why it was refused."""

    engine: str
    cost_s: float | None = None
    precision: str | None = None
    #: The kind of refusal (a key of :data:`REFUSAL_CODES`), and the reason in words.
    refusal: str | None = None
    reason: str | None = None
    #: For an engine with compiled kernels: whether it will use them here (else its
    #: fallback, priced as such); None for the others.
    compiled: bool | None = None
    #: It runs the program as one batch circuit, priced so: its Pauli-frame sampler
    #: (:attr:`~qmk.engines.registry.EngineSpec.batch`) or its density matrix
    #: (:meth:`~qmk.engines.registry.EngineSpec.runs_density`).
    batch: bool = False
    #: Its noisy trajectories run as the rows of one stack, priced so
    #: (:meth:`~qmk.engines.registry.EngineSpec.runs_stacked`).
    stacked: bool = False

    @property
    def able(self) -> bool:
        return self.refusal is None

    def to_json(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "able": self.able,
            "cost_s": self.cost_s,
            "precision": self.precision,
            "refusal": self.refusal,
            "reason": self.reason,
            "compiled": self.compiled,
            "batch": self.batch,
            "stacked": self.stacked,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Choice:
    """The router's answer: the engine, its constructor options, and why."""

    engine: str
    precision: str | None
    #: Constructor options that select the precision (e.g. ``{"dtype": "complex64"}``).
    options: Mapping[str, Any] = field(default_factory=dict)
    #: True when the job named the engine.
    named: bool = False
    #: One line: why this engine (telemetry's ``engine_reason``).
    reason: str = ""
    candidates: tuple[Candidate, ...] = ()
    #: The limits of the process the router chose for (its memory caps, threads, sandbox).
    limits: WorkerLimits | None = None
    #: The engine runs the program as one batch circuit (its candidate's ``batch``): the
    #: executor lowers and compiles it (:mod:`qmk.execution.batch`) instead of running
    #: trajectories.
    batch: bool = False

    def explain(self) -> str:
        """Several lines: the choice, the worker's limits it used, every candidate's
        estimate, every refusal."""
        lines = [f"engine: {self.engine} ({self.reason})"]
        if self.limits is not None:
            lines.append(f"worker: {self.limits.describe()}")
        able = sorted((c for c in self.candidates if c.able), key=_rank)
        for c in able:
            mark = "*" if c.engine == self.engine else " "
            kernels = _KERNELS_SHOWN[c.compiled]
            if c.batch and spec(c.engine).density is not None:
                kernels += ", as a density matrix"
            elif c.stacked:
                kernels += ", trajectories stacked"
            lines.append(
                f" {mark} {c.engine:<20} est. {human_seconds(c.cost_s or 0.0):>9}  "
                f"({c.precision or 'default'} precision{kernels})"
            )
        for c in self.candidates:
            if not c.able:
                lines.append(f"   {c.engine:<20} refused: {c.reason}")
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "precision": self.precision,
            "named": self.named,
            "reason": self.reason,
            "batch": self.batch,
            "candidates": [c.to_json() for c in self.candidates],
            "limits": None if self.limits is None else self.limits.to_json(),
        }


#: The widest state on which the router weighs an engine's fallback kernels against the
#: compile its compiled kernels still need in this process. Up to here the fallback's cost
#: is its per-gate overhead, which its model gets right. Wider, the fallback's per-element
#: figure is fitted on too few shapes and underprices it badly (``docs/engines.md``), so
#: the compiled kernels keep the job.
COLD_FALLBACK_QUBITS = 14

#: The narrowest state the router runs in single precision when a run returns samples
#: alone and asks for no precision (``Workload.samples_only``): from 2**20
#: amplitudes (16 MiB in double) a pass over the state is bound by memory bandwidth, and
#: single precision halves the bytes moved, while its rounding, about 2**-24 in total
#: variation a fused block, is far below what the shots can see (docs/engines.md,
#: Precision). Narrower runs take milliseconds and keep the engine's own precision.
SINGLE_MIN_QUBITS = 20

#: How ``explain`` shows which kernels an engine will use (None: it has no choice).
_KERNELS_SHOWN: Mapping[bool | None, str] = {
    True: ", compiled kernels",
    False: ", numpy kernels",
    None: "",
}


def _rank(candidate: Candidate) -> tuple[float, int]:
    return (candidate.cost_s or 0.0, _ORDER[candidate.engine])


_ORDER: Mapping[str, int] = {s.name: i for i, s in enumerate(SPECS)}


@functools.cache
def _keywords(name: str) -> frozenset[str] | None:
    """The keyword options engine ``name``'s constructor takes (None: any)."""
    try:
        params = inspect.signature(load(name)).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - a class with no signature
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL)


def assess(
    entry: EngineSpec,
    work: Workload,
    options: Mapping[str, Any],
    *,
    limits: WorkerLimits | None = None,
    floor: bool = False,
) -> Candidate:
    """Whether ``entry`` runs ``work`` exactly with ``options`` in a process of
    ``limits`` (default: this one's, read now), and at what estimated cost. ``floor``:
    ``work``'s shape is a floor of the job's (:func:`route`'s ``whole``), so an estimate
    past the longest allowed is told as a floor ("or more")."""
    limits = WorkerLimits.read() if limits is None else limits
    name = entry.name
    found = availability(name)  # imports nothing: the engine's module waits for the job's fit
    if not found.available:
        return Candidate(engine=name, refusal="unavailable", reason=found.reason)
    forbidden = _forbidden(entry, limits)
    if forbidden:
        return Candidate(engine=name, refusal="sandbox", reason=forbidden)
    if entry.clifford_only and not work.clifford:
        where = work.non_clifford or "a non-Clifford operation"
        return Candidate(engine=name, refusal="clifford", reason=f"not Clifford: {where}")
    missing = sorted(work.gates - entry.gates)
    if missing:
        return Candidate(
            engine=name, refusal="gates", reason=f"does not apply {', '.join(missing)}"
        )
    precision = entry.precision_for(work.precision)
    if precision is None:
        return Candidate(
            engine=name,
            refusal="precision",
            reason=f"computes in {'/'.join(entry.precisions)} precision, not {work.precision}",
        )
    if work.density_matrix and not entry.density_matrix:
        return Candidate(engine=name, refusal="density-matrix", reason="holds no density matrix")
    if work.mid_circuit and not entry.mid_circuit:
        return Candidate(
            engine=name,
            refusal="mid-circuit",
            reason="replays its circuit from |0>: it runs terminal measurements only, and "
            "this program measures, resets or frees qubits before its end",
        )
    # its constructor's signature (which imports its module) only where there are options
    taken = _keywords(name) if options else None
    strange = sorted(set(options) - taken) if taken is not None else []
    if strange:
        return Candidate(
            engine=name, refusal="option", reason=f"takes no option {', '.join(strange)}"
        )
    capacity = max_qubits(name, precision, max_bytes=options.get("max_bytes"), limits=limits)
    dense = _density_fits(entry, work, options, limits)
    compiled = True if dense else compiled_here(entry, options, limits)
    short = fits(entry, work.qubits, precision, limits, compiled=compiled)
    if short is not None and compiled and options.get("kernels") is None:
        # its compiled kernels and the state do not fit together: the fallback may
        compiled = dense = False
        short = fits(entry, work.qubits, precision, limits, compiled=compiled)
    if work.qubits > capacity or short is not None:
        return Candidate(
            engine=name,
            refusal="capacity" if short is None else "memory",
            reason=f"holds at most {capacity} qubits here, the program has {work.qubits} "
            "live at once"
            if short is None
            else short,
        )
    run = entry.log2_seconds(
        work, precision, threads=limits.threads, compiled=compiled is not False, density=dense
    )
    if run > math.log2(MAX_ESTIMATE_S):
        return Candidate(
            engine=name,
            refusal="too-slow",
            reason=f"its own estimate is {human_log2_seconds(run)}"
            f"{' or more' if floor else ''}, past the most the "
            f"router allows an engine ({MAX_ESTIMATE_S:,.0f} s, a day)",
        )
    cost = exp2(run) + entry.cold_s(compiled=compiled)
    if (
        compiled
        and not dense
        and entry.compiled is not None
        and entry.compiled.option not in options
        and work.qubits <= COLD_FALLBACK_QUBITS
        and not entry.runs_stacked(work)
    ):
        # a process that has not compiled yet pays the compiler first: a short job on a
        # small state runs sooner on the fallback kernels (the choice then passes them).
        # Not stacked trajectories: their figures are the compiled kernels' passes
        fallback = entry.seconds(
            work, precision, threads=limits.threads, compiled=False, density=False
        )
        if fallback + entry.cold_s(compiled=False) < cost:
            cost, compiled = fallback + entry.cold_s(compiled=False), False
    batch = dense or (entry.batch and work.batchable)
    stacked = not batch and entry.runs_stacked(work)
    return Candidate(
        engine=name,
        cost_s=cost,
        precision=precision,
        compiled=compiled,
        batch=batch,
        stacked=stacked,
    )


def _density_fits(
    entry: EngineSpec, work: Workload, options: Mapping[str, Any], limits: WorkerLimits
) -> bool:
    """Whether ``entry`` runs ``work`` as one density matrix here.

    It does where it would (:meth:`~qmk.engines.registry.EngineSpec.runs_density`) and
    the matrix fits this worker with the compiled kernels it runs on. The matrix of
    ``n`` qubits takes what a state of ``2n`` takes in double precision. Where it does
    not fit, the engine's trajectories run."""
    if not entry.runs_density(work):
        return False
    held = 2 * work.qubits
    room = max_qubits(entry.name, "double", max_bytes=options.get("max_bytes"), limits=limits)
    return held <= room and fits(entry, held, "double", limits, compiled=True) is None


def _forbidden(entry: EngineSpec, limits: WorkerLimits) -> str | None:
    """What ``entry`` needs that the worker's sandbox forbids, in words (None: nothing)."""
    if "numba-cache" in entry.needs and "filesystem" in limits.sandbox and not limits.numba_cache:
        return (
            "its numba functions cache beside its package's files, which this worker's "
            "sandbox does not let it write (set $NUMBA_CACHE_DIR to a writable directory)"
        )
    return None


def route(
    work: Workload,
    engine: str | None = None,
    *,
    options: Mapping[str, Any] | None = None,
    limits: WorkerLimits | None = None,
    whole: Callable[[], Workload] | None = None,
) -> Choice:
    """The engine that runs ``work``: ``engine`` if named and able, else the cheapest able.

    A job's shape (its mixed qubits, bond and bond work) costs a pass over all its gates
    to find, and most engines never read it. With ``whole``, ``work`` holds floors of
    them (those of its first gates), and ``whole()`` gives the job's workload, asked
    for only where an engine's verdict reads the shape and the floor does not settle
    it (:func:`_settled`): the same choice as on ``whole()`` alone.

    Args:
        work: what the job asks (qubits, gates, Clifford-ness, mid-circuit, shots...).
        engine: the engine the job names, or None to let the router choose.
        options: constructor options the job passes (beside the precision's ``dtype``);
            an engine that takes none of that name is refused.
        limits: the limits of the process that will run the engine (memory caps,
            threads, sandbox); default: this process's, read now.
        whole: the job's workload, where ``work``'s shape is a floor of it.

    Raises:
        EngineError: a named engine that is unknown (``QE101``), not installed
            (``QE108``), or cannot run the job. The codes for that are ``QE103`` not
            Clifford, ``QE102`` too many qubits or would not fit in the worker's memory,
            ``QE110`` mid-circuit or precision, ``QE105`` an option, ``QE108`` its sandbox
            forbids it, and ``QE118`` its own estimate is past :data:`MAX_ESTIMATE_S`.
            With no engine named: ``QE118 engine-too-slow`` when the engines that could
            run it would all take longer than that. Else ``QE109 no-engine`` when no
            installed engine can run it (``QE102`` when the universal engine's reason is
            its size).
    """
    options = dict(options or {})
    limits = WorkerLimits.read() if limits is None else limits
    if engine is not None:
        entry = spec(engine)  # QE101 for a name we do not know
        candidate = _settled(assess, entry, work, whole, options, limits)
        if not candidate.able:
            raise _refusal(candidate, work)
        return Choice(
            engine=engine,
            precision=candidate.precision,
            options=_options(entry, candidate, options),
            named=True,
            reason=f"named by the job (est. {human_seconds(candidate.cost_s or 0.0)})",
            candidates=(candidate,),
            limits=limits,
            batch=candidate.batch,
        )
    candidates = tuple(_settled(weigh, entry, work, whole, options, limits) for entry in SPECS)
    able = sorted((c for c in candidates if c.able), key=_rank)
    if not able:
        slow = [c for c in candidates if c.refusal == "too-slow"]
        if slow:  # an engine could run it, but not in any reasonable time
            reasons = "; ".join(f"{c.engine}: {c.reason}" for c in candidates)
            raise EngineError.of(
                "engine-too-slow",
                f"no engine runs this program ({work.qubits} qubits, {work.gate_count} "
                f"gates) in reasonable time: {reasons}",
                refusals={c.engine: c.reason for c in candidates},
            )
        universal = next(c for c in candidates if c.engine == defaults.STATEVECTOR)
        if universal.refusal in ("capacity", "memory"):
            raise _refusal(universal, work, others=candidates)
        reasons = "; ".join(f"{c.engine}: {c.reason}" for c in candidates)
        raise EngineError.of(
            "no-engine",
            f"no installed engine can run this program ({work.qubits} qubits): {reasons}",
            refusals={c.engine: c.reason for c in candidates},
        )
    best = able[0]
    if len(able) == 1:
        reason = f"the only able engine (est. {human_seconds(best.cost_s or 0.0)})"
    else:
        runner_up = able[1]
        reason = (
            f"cheapest of {len(able)} able engines (est. {human_seconds(best.cost_s or 0.0)}; "
            f"next {runner_up.engine} {human_seconds(runner_up.cost_s or 0.0)})"
        )
    if work.precision is None and best.precision != spec(best.engine).precision_for(None):
        reason += f", in {best.precision} precision (samples only)"  # chosen by weigh
    return Choice(
        engine=best.engine,
        precision=best.precision,
        options=_options(spec(best.engine), best, options),
        reason=reason,
        candidates=candidates,
        limits=limits,
        batch=best.batch,
    )


def weigh(
    entry: EngineSpec,
    work: Workload,
    options: Mapping[str, Any],
    *,
    limits: WorkerLimits | None = None,
    floor: bool = False,
) -> Candidate:
    """``entry`` as the router weighs it when it chooses: :func:`assess` at the engine's
    own precision, or in single precision where the run may take it (samples alone, no
    precision asked, :data:`SINGLE_MIN_QUBITS` wide) and the estimate there is lower."""
    limits = WorkerLimits.read() if limits is None else limits
    own = assess(entry, work, options, limits=limits, floor=floor)
    if (
        not work.samples_only
        or work.precision is not None
        or work.qubits < SINGLE_MIN_QUBITS
        or "single" not in entry.precisions
        or own.precision == "single"
        or not own.able
    ):
        return own
    single = assess(entry, replace(work, precision="single"), options, limits=limits, floor=floor)
    if single.able and (single.cost_s or 0.0) < (own.cost_s or 0.0):
        return single
    return own


#: A bond and a bond work past any program's: the top of :func:`_settled`'s range.
_PAST_ANY_BOND = 1 << 62
_PAST_ANY_BOND_WORK = 2.0**1000


def _settled(
    judge: Callable[..., Candidate],
    entry: EngineSpec,
    work: Workload,
    whole: Callable[[], Workload] | None,
    options: Mapping[str, Any],
    limits: WorkerLimits,
) -> Candidate:
    """``judge`` (:func:`assess` or :func:`weigh`) of ``entry`` on the job, where
    ``work``'s shape is a floor of its (``whole``: :func:`route`).

    An estimate grows with the shape (a wider mixed state, a larger bond, more bond
    work), and the refusals before it read none of it. So a verdict alike at the floor
    and past any shape is the job's; one too slow at the floor is too slow on the job
    (told as a least estimate). Else the job's workload decides."""
    low = judge(entry, work, options, limits=limits)
    if whole is None:
        return low
    past = replace(
        work,
        mixed_qubits=work.qubits,
        bond=_PAST_ANY_BOND,
        log2_bond_work=_PAST_ANY_BOND_WORK,
    )
    if judge(entry, past, options, limits=limits) == low:
        return low
    if low.refusal == "too-slow":
        return judge(entry, work, options, limits=limits, floor=True)
    return judge(entry, whole(), options, limits=limits)


def _options(entry: EngineSpec, candidate: Candidate, asked: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor options of the choice: its precision's, and its fallback kernels
    where the router priced it without its compiled ones for want of memory (the engine
    would otherwise pick them itself and run out)."""
    options = entry.options_for(candidate.precision)
    kernels = entry.compiled
    if (
        kernels is not None
        and candidate.compiled is False
        and kernels.option not in asked
        and compiled_here(entry, {}, WorkerLimits()) is not False
    ):
        options[kernels.option] = kernels.off
    return options


def _refusal(
    candidate: Candidate, work: Workload, *, others: tuple[Candidate, ...] = ()
) -> EngineError:
    name = candidate.engine
    code = REFUSAL_CODES[candidate.refusal or "option"]
    if candidate.refusal == "clifford":
        where = work.non_clifford or "this program"
        return EngineError.of(
            code,
            f"the {name} engine cannot run {where}: it is not Clifford; use --engine "
            f"{defaults.STATEVECTOR} or let QMK choose",
        )
    if candidate.refusal == "capacity":
        refused = "; ".join(f"{c.engine}: {c.reason}" for c in others if c.engine != name)
        return EngineError.of(
            code,
            f"the program has {work.qubits} qubits live at once; the {name} engine "
            f"{candidate.reason}" + (f" (and {refused})" if refused else ""),
            needed=work.qubits,
        )
    if candidate.refusal == "unavailable":
        return EngineError.of(
            code, f"the {name} engine cannot run here: {candidate.reason}", engine=name
        )
    return EngineError.of(code, f"the {name} engine cannot run this program: {candidate.reason}")


__all__ = [
    "MAX_ESTIMATE_S",
    "REFUSAL_CODES",
    "SINGLE_MIN_QUBITS",
    "Candidate",
    "Choice",
    "assess",
    "route",
    "weigh",
]
