"""A machine workload file: the machine, the tenants and their jobs (YAML, or JSON).

The form (paths are relative to the file)::

    machine: kernel.toml          # a kernel config whose [machine] is used, or an inline table
    seed: 1
    tenants:
      - name: alice
        share: 1                  # quota weight: fair-share, partition, Jain's index
        error_budget: 0.01        # the idle error its jobs may be given (default: the machine's)
        jobs:
          - {program: adder.qasm, arrival_cycle: 0, priority: 5, shots: 100, copies: 3,
             error_budget: 0.001}
      - name: bob
        generate: {count: 1000, arrivals: poisson, mean_gap_cycles: 5000,
                   programs: [qft8.qasm, adder4.qasm]}

A program is a file (read by the front-ends, its footprint the lattice-surgery
lowering's) or a generator: ``{adder: BITS}``, ``{qft: N}``, ``{random: QUBITS, gates:
G}`` (Clifford+T), or ``{counts: {numQubits: ..., tCount: ...}}`` (QRE logical counts);
a generator's footprint comes from its logical counts
(:func:`~qmk.kernel.machine.footprints.counts_footprint`). Each distinct program is
compiled once, and placed as a kernel places it
(:func:`~qmk.kernel.machine.footprints.placed_for`: a fence every ``[machine]
fence_cycles``, its Bell pairs local on a machine without a link).
A generator's arrivals are ``poisson`` (exponential gaps of mean
``mean_gap_cycles``, rounded to whole cycles), ``uniform`` (every ``mean_gap_cycles``)
or ``at-once``, from ``start_cycle``, drawn from the file's ``seed`` and the tenant's
name, so the same file gives the same arrivals on any machine.

Every bad, missing or unknown key is ``QK502 bad-workload`` naming it.
"""

from __future__ import annotations

import array
import functools
import itertools
import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import Meta

from qmk import values
from qmk.errors import QMKError
from qmk.kernel.errors import MachineError
from qmk.kernel.machine.footprints import placed_for
from qmk.kernel.machine.jobs import JobSpec

if TYPE_CHECKING:
    from collections.abc import Callable

    from qmk.execution.footprint import Footprint
    from qmk.kernel.config import KernelConfig
    from qmk.kernel.machine.spec import MachineSpec

    #: A change of a workload's kernel config before its machine is derived.
    Tune = Callable[[KernelConfig], KernelConfig]

_Count = Annotated[int, Meta(ge=0)]
_Positive = Annotated[int, Meta(ge=1)]
_Budget = Annotated[float, Meta(gt=0, le=1)]


class _Struct(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Generated(_Struct, frozen=True, kw_only=True):
    """A program made by name: exactly one of ``adder``, ``qft``, ``random``, ``counts``."""

    adder: _Positive | None = None
    qft: _Positive | None = None
    random: _Positive | None = None
    gates: _Count | None = None
    seed: int = 0
    counts: dict[str, Any] | None = None


Program = str | Generated


class JobEntry(_Struct, frozen=True, kw_only=True):
    program: Program
    arrival_cycle: _Count = 0
    priority: Annotated[int, Meta(ge=0, le=9)] = 0
    shots: _Count = 0
    copies: _Positive = 1
    id: Annotated[str, Meta(min_length=1)] | None = None
    error_budget: _Budget | None = None


class Generate(_Struct, frozen=True, kw_only=True):
    count: _Positive
    programs: Annotated[list[Program], Meta(min_length=1)]
    arrivals: Literal["poisson", "uniform", "at-once"] = "poisson"
    mean_gap_cycles: Annotated[float, Meta(ge=0)] = 1000.0
    start_cycle: _Count = 0
    weights: list[Annotated[float, Meta(gt=0)]] | None = None
    priority: Annotated[int, Meta(ge=0, le=9)] = 0
    shots: _Count = 0
    error_budget: _Budget | None = None


class TenantEntry(_Struct, frozen=True, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=64)]
    share: Annotated[float, Meta(gt=0)] = 1.0
    error_budget: _Budget | None = None
    jobs: list[JobEntry] = []
    generate: Generate | list[Generate] | None = None


class WorkloadFile(_Struct, frozen=True, kw_only=True):
    machine: str | dict[str, Any]
    tenants: Annotated[list[TenantEntry], Meta(min_length=1)]
    seed: int = 0
    policies: list[str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """A workload read and compiled: the machine, tenants' quota weights, the jobs in
    arrival order, the policies the file names (None: the command's), and the coded
    warnings of the kernel config it names (its machine's: QK504)."""

    machine: MachineSpec
    tenants: dict[str, float]
    jobs: tuple[JobSpec, ...]
    policies: tuple[str, ...] | None = None
    compiled: int = 0
    warnings: tuple[dict[str, str], ...] = ()


def _bad(message: str, key: str = "") -> QMKError:
    return (
        MachineError.of("bad-workload", message, key=key)
        if key
        else MachineError.of("bad-workload", message)
    )


def read(path: str | Path, *, tune: Tune | None = None) -> Workload:
    """The workload in the file ``path`` (YAML; ``.json``: JSON); ``tune``: a change of
    the kernel config its machine is derived from (another block, distance or factory
    protocol of the same machine: :mod:`~qmk.kernel.machine.baseline`).

    Raises:
        MachineError: ``QK502`` an unreadable file or a bad key; ``QK501`` a job no
            placement can hold is raised by the scheduler it is given to.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise _bad(f"{path}: cannot read: {reason}") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _bad(f"{path}: not JSON: {exc.msg} at line {exc.lineno}") from None
    else:
        try:
            import yaml
        except ImportError:  # pragma: no cover - PyYAML is a dependency of the test extra
            raise _bad("YAML workloads need PyYAML (pip install pyyaml); or write JSON") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise _bad(f"{path}: not YAML: {exc}") from None
    try:
        return load(data, base=path.parent, tune=tune)
    except MachineError as exc:
        if exc.name != "bad-workload" or exc.message.startswith(str(path)):
            raise
        raise MachineError.of("bad-workload", f"{path}: {exc.message}", **exc.details) from None


def load(data: Any, *, base: Path | None = None, tune: Tune | None = None) -> Workload:
    """The workload of parsed ``data`` (``base``: the folder relative paths start in;
    ``tune``: as :func:`read`'s)."""
    file: WorkloadFile = values.convert(data, WorkloadFile, error=_bad)
    base = base or Path.cwd()
    machine, warnings, fence_cycles = _machine(file.machine, base, tune)
    names = [t.name for t in file.tenants]
    if len(set(names)) != len(names):
        raise _bad(f"tenants: {names} names a tenant twice", "tenants")
    compiler = _Compiler(machine, base, fence_cycles)
    jobs: list[JobSpec] = []
    for tenant in file.tenants:
        jobs += _listed(tenant, compiler)
        generators = tenant.generate
        for k, gen in enumerate(generators if isinstance(generators, list) else [generators]):
            if gen is not None:
                jobs += _generated(tenant, gen, k, file.seed, compiler)
    seen: set[str] = set()
    for job in jobs:
        if job.id in seen:
            raise _bad(f"tenants: two jobs are called {job.id!r}; give each its own id", "id")
        seen.add(job.id)
    order = sorted(range(len(jobs)), key=lambda i: (jobs[i].arrival_cycle, i))
    return Workload(
        machine=machine,
        tenants={t.name: t.share for t in file.tenants},
        jobs=tuple(jobs[i] for i in order),
        policies=tuple(file.policies) if file.policies is not None else None,
        compiled=len(compiler.cache),
        warnings=tuple(warnings),
    )


def _machine(
    given: str | dict[str, Any], base: Path, tune: Tune | None = None
) -> tuple[MachineSpec, list[dict[str, str]], int]:
    """The machine a workload names, as ``qmk serve`` reads it of the same config, that
    config's machine warnings, and its ``fence_cycles``."""
    from qmk.kernel.config import config_from_dict, load_config, machine_warnings
    from qmk.kernel.errors import ConfigError
    from qmk.kernel.machine.derive import config_machine

    try:
        if isinstance(given, str):
            config = load_config(base / given)
        else:
            config = config_from_dict({"machine": given})
    except ConfigError as exc:
        raise _bad(f"machine: {exc.message}", "machine") from None
    if tune is not None:
        config = tune(config)
    return config_machine(config), machine_warnings(config), config.machine.fence_cycles


def _budget(*given: float | None) -> float | None:
    """The first budget given (a job's, its generator's, its tenant's, the machine's)."""
    return next((b for b in given if b is not None), None)


def _listed(tenant: TenantEntry, compiler: _Compiler) -> list[JobSpec]:
    out: list[JobSpec] = []
    for i, entry in enumerate(tenant.jobs):
        where = f"tenants[{tenant.name}].jobs[{i}]"
        footprint, label = compiler.compile(entry.program, where)
        for copy in range(entry.copies):
            name = entry.id or f"{tenant.name}/{i}"
            out.append(
                JobSpec(
                    id=name if entry.copies == 1 else f"{name}.{copy}",
                    tenant=tenant.name,
                    footprint=footprint,
                    arrival_cycle=entry.arrival_cycle,
                    priority=entry.priority,
                    program=label,
                    shots=entry.shots,
                    error_budget=_budget(
                        entry.error_budget, tenant.error_budget, compiler.machine.error_budget
                    ),
                )
            )
    return out


def _generated(
    tenant: TenantEntry, gen: Generate, k: int, seed: int, compiler: _Compiler
) -> list[JobSpec]:
    where = f"tenants[{tenant.name}].generate"
    if gen.weights is not None and len(gen.weights) != len(gen.programs):
        raise _bad(f"{where}.weights: one weight per program ({len(gen.programs)})", where)
    compiled = [compiler.compile(p, f"{where}.programs[{i}]") for i, p in enumerate(gen.programs)]
    budget = _budget(gen.error_budget, tenant.error_budget, compiler.machine.error_budget)
    arrivals, choices = _drawn(
        f"{seed}/{tenant.name}/{k}",
        gen.count,
        gen.arrivals,
        gen.mean_gap_cycles,
        gen.start_cycle,
        len(compiled),
        None if gen.weights is None else tuple(gen.weights),
    )
    return [
        JobSpec(
            id=f"{tenant.name}/g{k}.{n}",
            tenant=tenant.name,
            footprint=compiled[choice][0],
            arrival_cycle=at,
            priority=gen.priority,
            program=compiled[choice][1],
            shots=gen.shots,
            error_budget=budget,
        )
        for n, (at, choice) in enumerate(zip(arrivals, choices, strict=True))
    ]


@functools.lru_cache(maxsize=16)
def _drawn(
    seed: str,
    count: int,
    arrivals: str,
    mean_gap: float,
    start: int,
    programs: int,
    weights: tuple[float, ...] | None,
) -> tuple[array.array[int], array.array[int]]:
    """A generator's arrival cycles and each job's program (its index), drawn from
    ``seed``: the same on every machine, so a workload read in several configurations
    (:mod:`~qmk.kernel.machine.baseline`) draws them once."""
    rng = random.Random(seed)
    at = float(start)
    # (the weights summed once: ``choices`` draws the same from them as from the weights)
    summed = None if weights is None else list(itertools.accumulate(weights))
    population = range(programs)
    times = array.array("q")
    chosen = array.array("l")
    for n in range(count):
        if n and arrivals == "poisson":
            at += rng.expovariate(1.0 / mean_gap) if mean_gap else 0.0
        elif n and arrivals == "uniform":
            at += mean_gap
        chosen.append(0 if programs == 1 else rng.choices(population, cum_weights=summed)[0])
        times.append(math.floor(at + 0.5))
    return times, chosen


class _Compiler:
    """Each distinct program's footprint, made once, placed as a kernel places it."""

    def __init__(self, machine: MachineSpec, base: Path, fence_cycles: int) -> None:
        self.machine = machine
        self.base = base
        self.fence_cycles = fence_cycles
        self.cache: dict[Any, tuple[Footprint, str]] = {}

    def compile(self, program: Program, where: str) -> tuple[Footprint, str]:
        key: Any = program if isinstance(program, str) else msgspec.json.encode(program)
        found = self.cache.get(key)
        if found is None:
            footprint, label = self._make(program, where)
            placed = placed_for(footprint, self.machine, self.fence_cycles)
            found = self.cache[key] = (placed, label)
        return found

    def _make(self, program: Program, where: str) -> tuple[Footprint, str]:
        from qmk.kernel.machine.footprints import counts_footprint, footprint_for

        try:
            if isinstance(program, str):
                from qmk.frontends import read_program

                path = self.base / program
                graph = read_program(str(path))
                return footprint_for(graph, self.machine), program
            counts, label = _counts(program, where)
            return counts_footprint(counts, self.machine), label
        except MachineError:
            raise
        except QMKError as exc:
            raise _bad(f"{where}: {exc.code} {exc.name}: {exc.message}", where) from None


def _counts(program: Generated, where: str) -> tuple[Any, str]:
    from qmk.estimate.counts import LogicalCounts

    given = {
        k: v
        for k, v in (
            ("adder", program.adder),
            ("qft", program.qft),
            ("random", program.random),
            ("counts", program.counts),
        )
        if v is not None
    }
    if len(given) != 1:
        raise _bad(
            f"{where}: a generated program is one of adder, qft, random or counts; "
            f"got {', '.join(given) or 'none'}",
            where,
        )
    if program.adder is not None:
        return _made("adder", program.adder), f"adder{program.adder}"
    if program.qft is not None:
        return _made("qft", program.qft), f"qft{program.qft}"
    if program.random is not None:
        gates = program.gates if program.gates is not None else 10 * program.random
        return _made("random", program.random, gates, program.seed), (
            f"random{program.random}x{gates}"
        )
    assert program.counts is not None
    counts = LogicalCounts.from_json(program.counts)
    return counts, f"counts{_label(program.counts)}"


@functools.lru_cache(maxsize=256)
def _made(kind: str, n: int, gates: int = 0, seed: int = 0) -> Any:
    """The logical counts of a generated program: the same on every machine, so a
    workload read in several configurations (:mod:`~qmk.kernel.machine.baseline`) makes
    each once."""
    from qmk.kernel.machine import programs

    if kind == "adder":
        return programs.counts_of(programs.adder(n))
    if kind == "qft":
        return programs.counts_of(programs.qft(n))
    return programs.counts_of(programs.random_clifford_t(n, gates, seed=seed))


def _label(counts: Mapping[str, Any]) -> str:
    return "(" + ",".join(f"{k}={v}" for k, v in sorted(counts.items())) + ")"
