"""The engine registry and router: which engine a job gets, why, and the coded refusals.

The router's choice depends on what is installed; tests that need an adapter skip
without its package (the ``test`` extra installs them all).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from qmk import defaults
from qmk._front import read
from qmk.engines import EngineError, engine_class
from qmk.engines.limits import WorkerLimits
from qmk.engines.registry import (
    ENGINE_NAMES,
    SPECS,
    Workload,
    availability,
    capabilities,
    check,
    gpu_present,
    max_qubits,
    spec,
)
from qmk.engines.router import REFUSAL_CODES, SINGLE_MIN_QUBITS, assess, route
from qmk.errors import REGISTRY
from qmk.execution.executor import load_program, workload
from qmk.execution.plan import build_plan
from qmk.execution.runs import run
from qmk.qvm.asm import assemble
from qmk.qvm.verify import verify
from support.workloads import (
    HEAD,
    brickwork_body,
    ghz_asm,
    program_workload,
    shallow_workload,
)

CLIFFORD = Workload(qubits=3, gates=frozenset({"h", "cx"}), gate_count=3, shots=1000)
SMALL_T = Workload(
    qubits=3,
    gates=frozenset({"h", "t", "cx"}),
    gate_count=4,
    clifford=False,
    non_clifford="node #2 't' (APPLY_T)",
    shots=1000,
)


def test_the_registry_is_the_one_table_of_engines_and_every_class_carries_its_name() -> None:
    assert ENGINE_NAMES == defaults.ENGINES
    for entry in SPECS:
        assert engine_class(entry.name).name == entry.name
        assert entry.precisions and entry.cost.setup_s > 0
        assert entry.gpu == (entry.name in (defaults.CUSTATEVEC, defaults.QSIM_GPU))


def test_the_batch_flag_of_every_engine_is_its_class_s_batch_sampling() -> None:
    from qmk.engines.batch import batch_compiler

    for entry in SPECS:
        offered = entry.batch or entry.density is not None
        assert offered == (batch_compiler(engine_class(entry.name)) is not None), entry.name


def test_an_engine_that_needs_a_gpu_build_is_refused_until_its_package_holds_one_of_its_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """qsim-gpu's package is found by its files, importing nothing (the router weighs it
    for every job where a GPU is): a CPU-only build has no CUDA or HIP module."""
    package = tmp_path / "qmk_gpu_build_probe"
    package.mkdir()
    (package / "__init__.py").write_text("raise ImportError('the check must not import me')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = replace(spec(defaults.QSIM_GPU), gpu=False, requires=("qmk_gpu_build_probe",))
    assert check(entry).reason == (
        "this qmk_gpu_build_probe was built without GPU support "
        "(it has no qsim_cuda or qsim_hip module)"
    )
    (package / "qsim_hip.cpython-312-x86_64-linux-gnu.so").write_bytes(b"")
    assert check(entry).available
    assert spec(defaults.QSIM_GPU).gpu_modules == ("qsim_cuda", "qsim_hip")


@pytest.mark.parametrize("gpu", [False, True], ids=["no GPU", "a GPU"])
def test_routing_a_job_imports_no_engine_module_but_the_chosen_one_s(gpu: bool) -> None:
    # a fresh process routes a 20-qubit non-Clifford job past eight able engines: their
    # classes' modules (the adapters, the MPS) wait until one is built. With a GPU (the
    # driver's answer given: an H100 host imported qsim's adapter to weigh qsim-gpu) the
    # GPU engines are weighed too, by their packages' files.
    script = (
        "import sys\n"
        + ("import qmk.engines.registry as r; r.gpu_memory = lambda: 80 << 30\n" if gpu else "")
        + "from qmk.engines.registry import Workload\n"
        "from qmk.engines.router import route\n"
        "before = set(sys.modules)\n"
        "work = Workload(qubits=20, gates=frozenset({'rz', 'ry', 'cz'}), gate_count=1390,\n"
        "                clifford=False, non_clifford='gate rz', shots=1000)\n"
        "choice = route(work)\n"
        "print(choice.engine, sorted(m for m in set(sys.modules) - before\n"
        "                            if m.startswith('qmk.engines.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    engine, imported = done.stdout.split(" ", 1)
    modules = {entry.module for entry in SPECS} - {spec(engine).module}
    assert not modules & set(ast.literal_eval(imported)), imported


def test_a_wide_noisy_clifford_job_goes_to_the_stabilizer_priced_as_one_sampled_run() -> None:
    # 1000-qubit GHZ with logical noise: the shots logical errors hit would be ~26,000
    # trajectories on an engine that runs them one by one (the MPS, cheap per gate on a
    # chain); the stabilizer's batch sampler draws the noise itself (a fresh qmk run of
    # it takes well under a second, the MPS minutes)
    lines = ["qreg q[1000];", "creg c[1000];", "h q[0];"]
    lines += [f"cx q[{i}],q[{i + 1}];" for i in range(999)]
    lines.append("measure q -> c;")
    plan = build_plan(
        load_program(read(HEAD + "\n".join(lines))),
        noise=True,
        qubit="qubit_gate_ns_e3",
        default_profile="logical:surface_code(d=9)",
    )
    work = workload(plan, 100_000)
    assert work.batchable and work.trajectories > 10_000
    choice = route(work)
    assert choice.engine == defaults.STABILIZER
    stabilizer = spec(defaults.STABILIZER)
    once = replace(work, branches=1, trajectories=0)
    assert stabilizer.seconds(work) == stabilizer.seconds(once)
    assert not spec(defaults.MPS).batch  # the MPS still prices every trajectory
    assert spec(defaults.MPS).seconds(work) > 100 * stabilizer.seconds(work)


def test_a_program_that_computes_on_outcomes_is_not_batchable() -> None:
    t_gate = program_workload("qreg q[2];\ncreg c[2];\nh q[0];\nt q[0];\nmeasure q -> c;")
    assert not t_gate.batchable  # not Clifford
    ghz = program_workload(
        "qreg q[3];\ncreg c[3];\nh q[0];\ncx q[0],q[1];\ncx q[1],q[2];\nmeasure q -> c;"
    )
    assert ghz.batchable


def test_a_clifford_job_goes_to_the_stabilizer_and_a_small_non_clifford_one_to_statevector() -> (
    None
):
    assert route(CLIFFORD).engine == defaults.STABILIZER
    choice = route(SMALL_T)
    assert choice.engine == defaults.STATEVECTOR
    assert choice.reason.startswith("cheapest of ")
    refused = {c.engine: c for c in choice.candidates if not c.able}
    assert refused[defaults.STABILIZER].refusal == "clifford"
    assert "APPLY_T" in (refused[defaults.STABILIZER].reason or "")


def test_the_choice_is_the_cheapest_able_candidate_and_explains_every_other() -> None:
    choice = route(SMALL_T)
    able = [c for c in choice.candidates if c.able]
    assert min(able, key=lambda c: c.cost_s or 0.0).engine == choice.engine
    text = choice.explain()
    assert text.startswith(f"engine: {choice.engine} (")
    for candidate in choice.candidates:
        assert candidate.engine in text
    assert {c["engine"] for c in choice.to_json()["candidates"]} == set(ENGINE_NAMES)


def test_a_wide_random_circuit_goes_to_the_cheapest_dense_engine_of_its_precision() -> None:
    pytest.importorskip("qsimcirq")
    wide = replace(SMALL_T, qubits=22, gate_count=600)
    choice = route(wide)
    assert spec(choice.engine).cost.representation == "vector"
    # qsim is weighed in single precision, and refused when the job asks for double
    (qsim,) = (c for c in choice.candidates if c.engine == defaults.QSIM)
    assert qsim.able and qsim.precision == "single"
    double = route(replace(wide, precision="double"))
    assert double.engine != defaults.QSIM
    (qsim,) = (c for c in double.candidates if c.engine == defaults.QSIM)
    assert qsim.refusal == "precision"


def test_a_wide_sample_only_run_that_asks_no_precision_runs_in_single_where_cheaper() -> None:
    limits = WorkerLimits(threads=2)  # the choice, not this machine's, is what is tested
    deep = shallow_workload(SINGLE_MIN_QUBITS + 4, layers=20)  # entangled: a dense state
    wide = replace(deep, samples_only=True)
    choice = route(wide, limits=limits)
    assert choice.engine == defaults.STATEVECTOR and choice.precision == "single"
    assert choice.options["dtype"] == "complex64"
    assert choice.reason.endswith(", in single precision (samples only)")
    (own,) = (
        c
        for c in route(replace(wide, samples_only=False), limits=limits).candidates
        if c.engine == defaults.STATEVECTOR
    )
    (chosen,) = (c for c in choice.candidates if c.engine == defaults.STATEVECTOR)
    assert own.precision == "double" and (chosen.cost_s or 0.0) < (own.cost_s or 0.0)
    # what keeps the engine's own precision: a final-state export, a precision asked,
    # a narrower state, an engine named
    for kept in (
        route(replace(wide, samples_only=False), limits=limits),
        route(replace(wide, precision="double"), limits=limits),
        route(replace(wide, qubits=SINGLE_MIN_QUBITS - 1), limits=limits),
        route(wide, defaults.STATEVECTOR, limits=limits),
    ):
        (ours,) = (c for c in kept.candidates if c.engine == defaults.STATEVECTOR)
        assert ours.precision == "double", kept.reason
        assert "samples only" not in kept.reason
    # single precision asked for is the job's choice, not the router's
    asked = route(replace(wide, precision="single"), limits=limits)
    assert asked.precision == "single" and "samples only" not in asked.reason


def test_a_default_run_samples_a_wide_circuit_in_single_precision_as_aer_computes_it() -> None:
    aer = pytest.importorskip("qiskit_aer")
    qiskit = pytest.importorskip("qiskit")
    # the kernels' compiler loaded, as in a worker: where this process has not imported it
    # and no earlier one left kernels on disk, the router prices their first compile
    # (0.3 s) and qsim is cheaper (this file run alone on a fresh machine chose qsim)
    pytest.importorskip("llvmlite")
    n, shots = SINGLE_MIN_QUBITS, 4000
    text = HEAD + brickwork_body(n, layers=20)  # entangled: a dense state
    result = run(load_program(read(text)), shots=shots, seed=7, noise=False)
    assert result.choice is not None
    assert result.choice.engine == defaults.STATEVECTOR and result.choice.precision == "single"
    # each qubit's chance of reading 1, from Aer's double-precision state
    circuit = qiskit.qasm2.loads(text)
    circuit.remove_final_measurements()
    circuit.save_statevector()
    state = aer.AerSimulator(method="statevector").run(circuit).result().get_statevector()
    ones = [0] * n
    for key, count in result.counts.items():  # keys as OpenQASM writes them: c[0] last
        for q in range(n):
            ones[q] += count * (key[n - 1 - q] == "1")
    chi2 = 0.0
    for q in range(n):
        p = float(state.probabilities([q])[1])
        chi2 += (ones[q] - shots * p) ** 2 / (shots * p * (1 - p))
    assert chi2 < 45.3  # chi-square, 20 degrees of freedom: p = 0.001
    unmeasured = text.replace("measure q -> c;", "")
    exported = run(load_program(read(unmeasured)), shots=1, noise=False, final_state=True)
    assert exported.choice is not None and exported.choice.precision == "double"


def test_a_program_too_wide_for_every_dense_engine_goes_to_the_mps_engine() -> None:
    wide = shallow_workload(60, layers=2)
    assert route(wide).engine == defaults.MPS
    assert route(replace(wide, mid_circuit=True, segments=2, branches=2)).engine == "mps"
    # with an option only dense engines take, nothing can run it: the universal engine's
    # size decides the code, and the message gives every other engine's reason
    with pytest.raises(EngineError) as info:
        route(wide, options={"max_bytes": 2**30})
    assert info.value.code == "QE102"
    assert "60 qubits" in str(info.value) and "mps: takes no option max_bytes" in str(info.value)


def test_a_density_matrix_job_goes_to_a_density_matrix_engine() -> None:
    pytest.importorskip("qiskit_aer")
    choice = route(replace(SMALL_T, density_matrix=True))
    assert spec(choice.engine).density_matrix


def test_a_named_engine_runs_the_job_when_able() -> None:
    choice = route(SMALL_T, defaults.STATEVECTOR)
    assert (choice.engine, choice.named, choice.candidates[0].engine) == (
        defaults.STATEVECTOR,
        True,
        defaults.STATEVECTOR,
    )
    assert choice.reason.startswith("named by the job")
    single = route(replace(SMALL_T, precision="single"), defaults.STATEVECTOR)
    # beside the precision, only the kernels (numpy in a process that has not compiled
    # yet: a tiny job runs sooner without the compiler)
    assert {k: v for k, v in single.options.items() if k != "kernels"} == {"dtype": "complex64"}
    assert dict(route(replace(CLIFFORD, precision="single"), defaults.STABILIZER).options) == {}


@pytest.mark.parametrize(
    ("work", "engine", "code"),
    [
        (SMALL_T, "tensor", "QE101"),
        (SMALL_T, defaults.STABILIZER, "QE103"),
        (replace(SMALL_T, qubits=40), defaults.STATEVECTOR, "QE102"),
        (replace(SMALL_T, gates=frozenset({"h", "warp"})), defaults.STATEVECTOR, "QE103"),
    ],
    ids=["unknown", "not-clifford", "too-wide", "unknown-gate"],
)
def test_a_named_engine_that_cannot_run_the_job_is_a_coded_refusal(
    work: Workload, engine: str, code: str
) -> None:
    with pytest.raises(EngineError) as info:
        route(work, engine)
    assert info.value.code == code


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("statevektor", "statevector"), ("qsm", "qsim"), ("Stabiliser", "stabilizer")],
)
def test_a_misspelt_engine_is_qe101_with_the_closest_name(typo: str, meant: str) -> None:
    with pytest.raises(EngineError) as info:
        route(SMALL_T, typo)
    assert info.value.code == "QE101"
    assert f"no engine named {typo!r}; did you mean {meant!r}?" in str(info.value)
    assert str(info.value).count("\n") == 0


def test_an_engine_name_close_to_none_gets_no_guess() -> None:
    with pytest.raises(EngineError, match="no engine named 'tensor'; known: statevector"):
        spec("tensor")


def test_a_named_engine_refuses_what_its_capabilities_exclude() -> None:
    pytest.importorskip("qiskit_aer")
    pytest.importorskip("qsimcirq")
    mid = replace(SMALL_T, mid_circuit=True, segments=3, branches=4)
    # an engine that replays its circuit from |0> (none ships now) runs no mid-circuit work
    replaying = replace(spec(defaults.AER_MPS), state="replay")
    assert assess(replaying, mid, {}).refusal == "mid-circuit"
    assert assess(replaying, SMALL_T, {}).able
    with pytest.raises(EngineError, match=r"QE110 operation-unsupported: .*qsim.*double"):
        route(replace(SMALL_T, precision="double"), defaults.QSIM)
    with pytest.raises(EngineError, match=r"QE105 engine-misuse: .*max_bytes"):
        route(SMALL_T, defaults.AER_MPS, options={"max_bytes": 2**20})


@pytest.mark.skipif(gpu_present(), reason="a GPU is here: the GPU engines are available")
def test_gpu_engines_are_listed_unavailable_without_a_gpu_and_naming_one_is_qe108() -> None:
    for name in (defaults.CUSTATEVEC, defaults.QSIM_GPU):
        assert availability(name).available is False
        assert availability(name).reason == "no CUDA GPU here"
        with pytest.raises(EngineError) as info:
            route(SMALL_T, name)
        assert (info.value.code, info.value.name) == ("QE108", "engine-unavailable")
        assert not capabilities(name).available


def test_an_engine_whose_package_is_missing_is_unavailable_with_the_extra_to_install() -> None:
    entry = replace(spec(defaults.QUTIP), requires=("qmk_no_such_simulator",))
    found = check(entry)
    assert not found.available
    assert found.reason == (
        "qmk_no_such_simulator not installed (pip install 'quantum-microkernel[qutip]')"
    )


def test_a_job_no_installed_engine_can_run_is_qe109_listing_every_reason() -> None:
    with pytest.raises(EngineError) as info:
        route(replace(SMALL_T, gates=frozenset({"warp"})))
    assert (info.value.code, info.value.name) == ("QE109", "no-engine")
    for name in ENGINE_NAMES:
        assert f"{name}: " in str(info.value)


def test_every_refusal_kind_maps_to_a_registered_engine_code() -> None:
    codes = {entry.name for entry in REGISTRY.family("QE").values()}
    assert set(REFUSAL_CODES.values()) <= codes


def test_max_qubits_follows_the_memory_cap_and_the_representation() -> None:
    cap = 2**20  # 1 MiB: 2**15 amplitudes of complex128 with a working copy
    assert max_qubits(defaults.STATEVECTOR, "double", max_bytes=cap) == 15
    assert max_qubits(defaults.STATEVECTOR, "single", max_bytes=cap) == 16
    assert max_qubits(defaults.QUTIP, max_bytes=cap) == 7  # 4**n entries
    assert max_qubits(defaults.STABILIZER, max_bytes=cap) > 10_000


# --------------------------------------------------------------------------- the executor

T_PROGRAM = """
.caps CAP_ALLOC
a: ALLOC_LQ vq:q0, vq:q1
h: APPLY_H vq:q0
t: APPLY_T vq:q0
c: APPLY_CNOT vq:q0, vq:q1
m0: MEASURE_Z vq:q0, out:m0
m1: MEASURE_Z vq:q1, out:m1
f: FREE_LQ vq:q0, vq:q1
"""

MID = """
.caps CAP_ALLOC
a: ALLOC_LQ vq:q0, vq:q1
h: APPLY_H vq:q0
m0: MEASURE_Z vq:q0, out:m0
x: COND_PAULI vq:q1, in:m0, mask="X"
t: APPLY_T vq:q1
m1: MEASURE_Z vq:q1, out:m1
f: FREE_LQ vq:q0, vq:q1
"""


def test_the_workload_of_a_plan_counts_gates_mid_circuit_operations_and_shots() -> None:
    plan = build_plan(
        verify(assemble(MID)), noise=False, qubit=defaults.QUBIT, default_profile=defaults.PROFILE
    )
    work = workload(plan, shots=100, precision="single")
    assert (work.qubits, work.clifford, work.mid_circuit, work.shots) == (2, False, True, 100)
    assert work.gates == frozenset({"h", "x", "t"})
    assert (work.segments, work.branches, work.precision) == (2, 2, "single")
    terminal = build_plan(
        verify(assemble(T_PROGRAM)),
        noise=True,
        qubit=defaults.QUBIT,
        default_profile=defaults.PROFILE,
    )
    work = workload(terminal, shots=100)
    assert not work.mid_circuit and work.segments == 1
    assert {"x", "y", "z"} <= work.gates  # logical noise applies Paulis


def test_the_run_reports_the_engine_choice_in_its_result_and_telemetry() -> None:
    result = run(assemble(T_PROGRAM), shots=50, seed=3)
    assert result.choice is not None and result.choice.engine == result.engine
    assert result.telemetry.engine_reason == result.choice.reason
    assert result.telemetry.to_json()["engine_reason"].startswith("cheapest of ")
    named = run(assemble(T_PROGRAM), shots=50, seed=3, engine=defaults.STATEVECTOR)
    assert named.telemetry.engine_reason.startswith("named by the job")


def test_a_program_no_engine_can_hold_is_refused_before_any_work() -> None:
    names = " ".join(f"vq:q{i}," for i in range(40)).rstrip(",")
    text = (
        f".caps CAP_ALLOC\na: ALLOC_LQ {names}\nt: APPLY_T vq:q0\nh: APPLY_H vq:q1\n"
        'm: MEASURE_Z vq:q1, out:m\nx: COND_PAULI vq:q0, in:m, mask="X"\n'
        f"f: FREE_LQ {names}\n"
    )
    with pytest.raises(EngineError) as info:
        run(assemble(text), shots=1, seed=0, engine_options={"max_bytes": 2**30})
    assert info.value.code == "QE102"
    assert "40 qubits" in str(info.value)


def test_single_precision_reaches_the_statevector_engine_and_not_the_stabilizer() -> None:
    result = run(
        assemble(T_PROGRAM),
        shots=20,
        seed=1,
        engine=defaults.STATEVECTOR,
        engine_options={"dtype": "complex64"},
    )
    assert result.choice is not None and result.choice.precision == "single"
    bell = T_PROGRAM.replace("t: APPLY_T vq:q0\n", "")
    # a Clifford program too wide for any dense state: single precision asked, the
    # stabilizer (exact, whatever the precision) still takes it
    ghz = assemble(ghz_asm(40))
    clifford = run(ghz, shots=20, seed=1, engine_options={"dtype": "complex64"})
    assert clifford.engine == defaults.STABILIZER
    assert set(clifford.counts) == {"0" * 40, "1" * 40}
    with pytest.raises(EngineError, match="QE105"):
        run(assemble(bell), shots=20, seed=1, engine_options={"dtype": "float32"})


def test_under_an_address_space_limit_every_engine_leaves_room_for_its_package() -> None:
    """A kernel worker caps its address space (RLIMIT_AS): every dense engine holds what
    the cap leaves beside its package (an adapter whose package alone takes more holds
    none), QMK's statevector included (700 MiB: 2**24 amplitudes with a working copy)."""
    import subprocess
    import sys

    code = (
        "import resource, re\n"
        "from qmk.engines.registry import max_qubits\n"
        "used = int(re.search(r'VmSize:\\s+(\\d+)', open('/proc/self/status').read())[1]) * 1024\n"
        "cap = used + 700 * 2**20\n"
        "resource.setrlimit(resource.RLIMIT_AS, (cap, cap))\n"
        "names = ('statevector', 'qsim', 'aer-statevector', 'aer-mps')\n"
        "print(*(max_qubits(n) for n in names))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    statevector, qsim, aer, mps = (int(x) for x in out.stdout.split())
    assert statevector == min(24, max_qubits("statevector"))
    assert 0 < qsim <= statevector  # 700 MiB less qsim's ~340 MiB, in single precision
    assert aer == mps == 0  # Aer's package alone takes more


def test_a_reset_after_a_measurement_of_the_same_qubit_does_not_split_the_shots_again() -> None:
    text = """
.caps CAP_ALLOC
a: ALLOC_LQ vq:q0, vq:q1
h: APPLY_H vq:q0
m0: MEASURE_Z vq:q0, out:m0
r0: RESET vq:q0
h2: APPLY_H vq:q0
m1: MEASURE_Z vq:q0, out:m1
t: APPLY_T vq:q1
m2: MEASURE_Z vq:q1, out:m2
f: FREE_LQ vq:q0, vq:q1
"""
    plan = build_plan(
        verify(assemble(text)), noise=False, qubit=defaults.QUBIT, default_profile=defaults.PROFILE
    )
    work = workload(plan, shots=100)
    # m0 and r0 are mid-circuit (m1 on is the terminal tail); m0 splits the shots, r0
    # finds q0 collapsed and does not: the gates after split j run in 2**j simulations
    assert work.segments == 3
    assert work.branches == -(-(1 + 2) // 2)  # two segments of splits, not three (3)


def test_routing_a_non_clifford_program_does_not_import_the_stabilizer_engine() -> None:
    # its module imports stim (7-9 ms of a fresh run); an engine that cannot take the
    # job is refused before its module is imported
    import subprocess
    import sys

    child = (
        "import sys\n"
        "from qmk.engines.registry import Workload\n"
        "from qmk.engines.router import route\n"
        "work = Workload(qubits=3, gates=frozenset({'h', 't', 'cx'}), gate_count=4,"
        " clifford=False, shots=10)\n"
        "choice = route(work)\n"
        "refused = {c.engine: c.refusal for c in choice.candidates}\n"
        "print(choice.engine, refused['stabilizer'], 'stim' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    engine, refusal, imported = done.stdout.split()
    assert refusal == "clifford" and imported == "False"
    assert engine != "stabilizer"
