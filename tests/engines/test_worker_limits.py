"""Engine choice fits the worker: the router knows the memory caps, threads and sandbox
of the process that will run the engine, and never picks one that would refuse or be
killed there.

The first half checks the router against stated limits (a :class:`WorkerLimits`
value); the second runs every installed engine inside a real kernel worker
(:class:`~qmk.kernel.pools.pool.WorkerPool`: confined, with the kernel's default 2 GiB
``RLIMIT_AS``), the conformance suite and issue 27's 10-qubit noisy program there.
Engines not installed skip, naming the extra.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest

from qmk import defaults
from qmk.engines import EngineError
from qmk.engines.limits import WorkerLimits
from qmk.engines.registry import (
    CALIBRATED_THREADS,
    SPECS,
    Workload,
    availability,
    compiled_here,
    fits,
    spec,
)
from qmk.engines.router import assess, route
from qmk.kernel.pools.pool import WorkerPool
from support.capped import conform, limits, noisy_program, run_program

GIB = 2**30
MIB = 2**20

#: A 10-qubit non-Clifford job with noise on (Paulis among its gates), many trajectories.
NOISY = Workload(
    qubits=10,
    gates=frozenset({"h", "t", "cx", "rz", "x", "y", "z"}),
    gate_count=3800,
    clifford=False,
    non_clifford="node #2 (APPLY_T)",
    shots=1000,
    branches=1000,
)


def capped(left_mib: int, **more: object) -> WorkerLimits:
    """A worker with a 2 GiB address-space cap and ``left_mib`` MiB of it left."""
    return WorkerLimits(
        address_cap=2 * GIB, address_used=2 * GIB - left_mib * MIB, threads=2, **more
    )  # type: ignore[arg-type]


def able(choice_candidates: object) -> dict[str, object]:
    return {c.engine: c for c in choice_candidates if c.able}  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- the router


def installed(name: str) -> None:
    found = availability(name)
    if not found.available:
        pytest.skip(f"{name}: {found.reason}")


def test_an_engine_whose_package_does_not_fit_the_worker_is_refused_naming_the_cap() -> None:
    installed(defaults.AER_STATEVECTOR)
    aer = spec(defaults.AER_STATEVECTOR)
    # Aer's package takes ~1.3 GiB of address space; once imported, its first run ~140 MiB
    left = 100 if aer.loaded else 600
    choice = route(NOISY, limits=capped(left))
    refused = {c.engine: c for c in choice.candidates if not c.able}
    candidate = refused[defaults.AER_STATEVECTOR]
    assert candidate.refusal == "memory"
    assert "RLIMIT_AS" in (candidate.reason or "")
    assert f"{left} MiB left" in (candidate.reason or "")
    assert choice.engine != defaults.AER_STATEVECTOR
    with pytest.raises(EngineError) as info:
        route(NOISY, defaults.AER_STATEVECTOR, limits=capped(left))
    assert info.value.code == "QE102" and "RLIMIT_AS" in str(info.value)


def test_with_room_for_its_package_the_same_engine_is_able() -> None:
    installed(defaults.AER_STATEVECTOR)
    choice = route(NOISY, limits=capped(1900))
    assert defaults.AER_STATEVECTOR in able(choice.candidates)


def test_a_state_that_does_not_fit_beside_the_engine_is_refused_before_any_work() -> None:
    wide = replace(NOISY, qubits=25)  # 2**25 complex128 and a working copy: 1 GiB
    with pytest.raises(EngineError) as info:
        route(wide, defaults.STATEVECTOR, options={"kernels": "numpy"}, limits=capped(900))
    assert info.value.code == "QE102"
    assert "the state of 25 qubits 1 GiB" in str(info.value)
    assert route(wide, defaults.STATEVECTOR, limits=capped(1900)).engine == defaults.STATEVECTOR


def test_a_cgroup_cap_counts_resident_memory() -> None:
    limits = WorkerLimits(cgroup_cap=GIB, cgroup_used=GIB - 100 * MIB, threads=2)
    small = assess(spec(defaults.STATEVECTOR), replace(NOISY, qubits=20), {}, limits=limits)
    big = assess(spec(defaults.STATEVECTOR), replace(NOISY, qubits=22), {}, limits=limits)
    assert small.able  # 2**20 x 16 B x 2 = 32 MiB
    assert big.refusal == "memory" and "cgroup" in (big.reason or "")


def test_without_room_for_its_compiler_the_statevector_is_priced_and_built_on_numpy() -> None:
    if compiled_here(spec(defaults.STATEVECTOR), {}, WorkerLimits()) is not True:
        pytest.skip("the compiled kernels do not run here (llvmlite missing or broken)")
    entry = spec(defaults.STATEVECTOR)
    assert entry.compiled is not None
    # room for the state but not for the JIT beside it (when it is not loaded yet)
    jit = entry.compiled.footprint.address_mib
    state_mib = 2 * 16 * 2**22 // MIB  # 22 qubits: 128 MiB
    tight = capped(state_mib + jit // 2)
    choice = route(replace(NOISY, qubits=22), defaults.STATEVECTOR, limits=tight)
    (candidate,) = choice.candidates
    if "llvmlite" in sys.modules:  # this process has the JIT already: it costs nothing more
        assert candidate.compiled is True
    else:
        assert candidate.compiled is False
        assert choice.options["kernels"] == "numpy"  # the engine will not try the JIT


def test_the_numpy_fallback_is_priced_above_the_compiled_kernels() -> None:
    entry = spec(defaults.STATEVECTOR)
    assert entry.compiled is not None and entry.compiled.off == "numpy"
    for qubits in (6, 14, 22):
        work = replace(NOISY, qubits=qubits)
        assert entry.seconds(work, compiled=False) > entry.seconds(work, compiled=True)
    numpy = assess(entry, NOISY, {"kernels": "numpy"}, limits=capped(1900))
    compiled = assess(entry, NOISY, {"kernels": "simd"}, limits=capped(1900))
    assert (numpy.compiled, compiled.compiled) == (False, True)
    # their runs, less what this process has still to import or compile (which depends
    # on what ran in it before: a fresh one has not compiled yet)
    run_numpy = (numpy.cost_s or 0) - entry.cold_s(compiled=False)
    run_compiled = (compiled.cost_s or 0) - entry.cold_s(compiled=True)
    assert run_numpy > run_compiled


def test_more_threads_make_a_parallel_engine_cheaper_and_a_serial_one_no_cheaper() -> None:
    work = replace(NOISY, qubits=20)
    for entry in SPECS:
        few = entry.seconds(work, threads=1)
        many = entry.seconds(work, threads=4 * CALIBRATED_THREADS)
        assert (many < few) == entry.cost.parallel, entry.name


def test_a_threaded_engine_needs_a_stack_per_thread_past_the_calibrated_ones() -> None:
    aer = spec(defaults.AER_STATEVECTOR)
    assert aer.footprint.threaded
    footprint = aer.footprint.run_mib if aer.loaded else aer.footprint.address_mib
    room = capped(footprint + 40)
    assert fits(aer, 10, None, room) is None
    many = replace(room, threads=CALIBRATED_THREADS + 8)  # 8 more stacks of 8 MiB
    assert "RLIMIT_AS" in (fits(aer, 10, None, many) or "")


def test_an_engine_needing_a_numba_cache_is_refused_in_a_closed_filesystem() -> None:
    installed(defaults.BRAKET)
    closed = capped(1900, sandbox=frozenset({"filesystem"}))
    braket = assess(spec(defaults.BRAKET), NOISY, {}, limits=closed)
    assert braket.refusal == "sandbox" and "NUMBA_CACHE_DIR" in (braket.reason or "")
    assert assess(spec(defaults.BRAKET), NOISY, {}, limits=replace(closed, numba_cache=True)).able
    with pytest.raises(EngineError, match="QE108"):
        route(NOISY, defaults.BRAKET, limits=closed)


def test_explain_names_the_limits_the_router_used() -> None:
    choice = route(NOISY, limits=capped(1500, sandbox=frozenset({"network"})))
    text = choice.explain()
    assert text.splitlines()[1] == (
        "worker: memory: 2 GiB address space (RLIMIT_AS), 1.46 GiB of it left; "
        "2 threads (CPU affinity); sandbox: network"
    )
    assert choice.to_json()["limits"]["address_left"] == 1500 * MIB


def test_the_limits_are_read_from_the_process() -> None:
    code = (
        "import resource, json\n"
        "resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, resource.RLIM_INFINITY))\n"
        "from qmk.engines.limits import WorkerLimits\n"
        "print(json.dumps(WorkerLimits.read().to_json()))\n"
    )
    env = {**os.environ, "QMK_THREADS": "3", "QMK_WORKER_SANDBOX": "network,bogus"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    import json

    read = json.loads(out.stdout)
    assert read["address_cap"] == 3 * GIB and 0 < read["address_left"] < 3 * GIB
    assert (read["threads"], read["threads_from"]) == (3, "$QMK_THREADS")
    assert read["sandbox"] == ["network"]


def test_the_limits_files_are_read_whole_and_an_unreadable_one_is_none(tmp_path) -> None:
    from qmk.engines import limits as module

    big = tmp_path / "big"
    big.write_bytes(bytes(range(256)) * 40)  # past one 4 KiB read
    assert module._read(str(big)) == big.read_bytes()
    assert module._read(str(tmp_path / "absent")) is None
    with open("/proc/self/cgroup", "rb") as handle:
        assert module._read("/proc/self/cgroup") == handle.read()


def test_a_cgroup_without_a_limit_reports_nothing_used(tmp_path, monkeypatch) -> None:
    from qmk.engines import limits as module

    files = {
        "/proc/self/cgroup": b"0::/job\n",
        "/sys/fs/cgroup/job/memory.max": b"max\n",
        "/sys/fs/cgroup/memory.max": str(2**62).encode(),
        "/sys/fs/cgroup/memory.current": b"12345\n",
    }
    monkeypatch.setattr(module, "_read", files.get)
    assert module._cgroup() == (None, 0)
    files["/sys/fs/cgroup/job/memory.max"] = str(GIB).encode()
    files["/sys/fs/cgroup/job/memory.current"] = b"777\n"
    assert module._cgroup() == (GIB, 777)


# --------------------------------------------------------------------------- a real worker

WORKER_MB = defaults.WORKER_MEMORY_MB


@pytest.fixture
def worker() -> object:
    """One confined kernel worker with the kernel's default memory cap (a fresh process
    per test: what one engine imports does not crowd the next)."""
    pool = WorkerPool(1, memory_mb=WORKER_MB)
    try:
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)


def test_the_router_in_a_worker_reads_its_cap_and_sandbox(worker: WorkerPool) -> None:
    seen = worker.submit(limits).result(timeout=120)
    assert seen["address_cap"] == WORKER_MB * MIB
    assert "filesystem" in seen["sandbox"] or "network" in seen["sandbox"]


@pytest.mark.parametrize("name", [s.name for s in SPECS])
def test_every_installed_engine_passes_conformance_inside_a_capped_worker(
    name: str, worker: WorkerPool
) -> None:
    installed(name)
    assert worker.submit(conform, name).result(timeout=600) == name


def test_the_routers_choice_for_issue_27s_noisy_program_runs_in_a_capped_worker(
    worker: WorkerPool,
) -> None:
    text = noisy_program()
    ran = worker.submit(run_program, text, None).result(timeout=600)
    assert ran["engine"] == ran["choice"]["engine"] and ran["shots"] == 50
    assert ran["choice"]["limits"]["address_cap"] == WORKER_MB * MIB


@pytest.mark.parametrize("name", [s.name for s in SPECS if not s.gpu and not s.clifford_only])
def test_an_engine_the_router_calls_able_in_a_capped_worker_runs_there(
    name: str, worker: WorkerPool
) -> None:
    """Named on a small 10-qubit noisy program in a fresh capped worker: the engine runs,
    or the router refuses it before any work (never a refusal from the engine itself)."""
    installed(name)
    text = noisy_program(gates=40)
    ran = worker.submit(run_program, text, name).result(timeout=600)
    if "refused" in ran:  # the router's refusal, before any work, with its reason
        assert ran["refused"].startswith(("QE102", "QE108")), ran
        return
    assert ran["engine"] == name and ran["shots"] == 50
