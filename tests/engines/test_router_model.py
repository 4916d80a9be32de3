"""The router's cost model: what it sees of a circuit (gate kinds, how well it fuses,
mid-circuit segments, imports) and the structure of its fitted figures.

No test here times anything: they check the features against the plan and the fuser,
and the model's structure (a scattered Toffoli circuit costs qsim more, relative to the
native statevector, than a dense random one does; the numpy fallback is priced above the
compiled kernels; a cold process pays imports).
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

import numpy as np
import pytest

from qmk import defaults
from qmk.engines import fusion
from qmk.engines.gates import GATES
from qmk.engines.registry import (
    CALIBRATED_THREADS,
    GATE_KINDS,
    PER_ELEMENT,
    SCALING_THREADS,
    SPECS,
    CostModel,
    spec,
)
from support.workloads import program_workload

_work = program_workload


def _random(n: int, depth: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    lines = [f"qreg q[{n}];"]
    for layer in range(depth):
        for q in range(n):
            lines.append(f"ry({rng.uniform(0, math.pi):.4f}) q[{q}];")
            lines.append(f"rz({rng.uniform(0, math.pi):.4f}) q[{q}];")
        lines += [f"cz q[{i}],q[{i + 1}];" for i in range(layer % 2, n - 1, 2)]
    return "\n".join(lines) + "\n"


def _scattered_toffolis(n: int, gates: int, seed: int = 3) -> str:
    rng = random.Random(seed)
    lines = [f"qreg q[{n}];"]
    for _ in range(gates):
        a, b, c = rng.sample(range(n), 3)
        lines.append(f"ccx q[{a}],q[{b}],q[{c}];")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("width", [2, 3, 4, 5])
def test_the_cheap_fusion_pass_makes_the_blocks_the_fuser_makes(width: int) -> None:
    rng = random.Random(width)
    matrices = {k: np.eye(1 << k, dtype=np.complex128) for k in (1, 2, 3)}
    for _ in range(200):
        n = rng.randint(3, 9)
        gates = [
            tuple(rng.sample(range(n), rng.choice((1, 1, 2, 2, 3))))
            for _ in range(rng.randint(0, 60))
        ]
        planned = fusion.plan([(qs, matrices[len(qs)]) for qs in gates], max_width=width)
        assert fusion.widths(gates, max_width=width) == [len(b.qubits) for b in planned]


def test_gate_kinds_follow_the_matrices() -> None:
    for name, kind in GATE_KINDS.items():
        gate = GATES[name]
        matrix = gate.matrix((0.7,) * len(gate.params))
        nonzero = np.abs(matrix) > 1e-12
        if kind == "diagonal":
            assert not nonzero[~np.eye(len(matrix), dtype=bool)].any(), name
        elif kind == "permutation":
            assert (nonzero.sum(axis=0) == 1).all() and (nonzero.sum(axis=1) == 1).all(), name
        else:
            assert (nonzero.sum(axis=1) > 1).any(), name
    assert (GATE_KINDS["rz"], GATE_KINDS["ccx"], GATE_KINDS["h"]) == (
        "diagonal",
        "permutation",
        "dense",
    )


def test_the_workload_counts_gate_kinds_and_the_fused_blocks_of_each_segment() -> None:
    ghz = _work("qreg q[5];\nh q[0];\n" + "".join(f"cx q[{i}],q[{i + 1}];\n" for i in range(4)))
    assert (ghz.gate_count, ghz.permutation_gates, ghz.diagonal_gates) == (5, 4, 0)
    assert ghz.blocks == len(fusion.widths([(0,), (0, 1), (1, 2), (2, 3), (3, 4)]))
    # a reset ends a segment: the same gates on either side of it fuse apart
    gates = "h q[0];\ncx q[0],q[1];\n"
    whole = _work("qreg q[2];\n" + gates + gates)
    split = _work("qreg q[2];\n" + gates + "reset q[1];\n" + gates)
    assert (whole.blocks, split.blocks) == (1, 2)
    assert split.segments == 2


def test_a_scattered_toffoli_circuit_fuses_worse_than_a_random_brickwork() -> None:
    dense = _work(_random(14, 10))
    scattered = _work(_scattered_toffolis(14, 300))
    assert dense.gate_count / dense.blocks > 2 * scattered.gate_count / scattered.blocks


def test_every_figure_of_the_model_multiplies_one_term_and_the_estimate_is_their_sum() -> None:
    body = _random(8, 4)
    work = _work(body + "reset q[0];\n" + body.split("\n", 1)[1], shots=300)
    for entry in SPECS:
        cost = entry.cost
        terms = cost.terms(work)
        assert set(terms) <= {f for f in CostModel.__dataclass_fields__}
        total = sum(getattr(cost, name) * amount for name, amount in terms.items())
        assert cost.seconds(work) == pytest.approx(total, rel=1e-12), entry.name
        single = sum(
            getattr(cost, name) * amount * (cost.single if name in PER_ELEMENT else 1.0)
            for name, amount in terms.items()
        )
        assert cost.seconds(work, "single") == pytest.approx(single, rel=1e-12), entry.name


@pytest.mark.parametrize("qubits", [12, 16, 20, 24])
def test_a_circuit_that_fuses_worse_costs_a_fusing_engine_more(qubits: int) -> None:
    # the router sees how well the actual circuit fuses: scattered Toffolis make a block
    # of nearly every gate, a dense random circuit a block of many gates; the same
    # circuit with more blocks (worse fusion) costs an engine that fuses more. (Which of
    # qsim and the native is the faster on each shape is the fit's to say: on a quiet
    # machine hwb-16 took qsim 0.20 s and the native 0.21 s, random-20-deep 0.18 s and
    # 0.15 s; bench/bench_router.py --choice.)
    scattered = _work(_scattered_toffolis(qubits, 600))
    dense = _work(_random(qubits, 10))
    assert scattered.blocks > 0.8 * scattered.gate_count and dense.blocks < 0.2 * dense.gate_count
    for name in (defaults.STATEVECTOR, defaults.QSIM):
        entry = spec(name)
        for work in (scattered, dense):
            worse = replace(work, blocks=2 * work.blocks)
            assert entry.seconds(worse, "single") > entry.seconds(work, "single"), name


@pytest.mark.parametrize("qubits", [6, 10, 16, 20, 26])
def test_the_numpy_fallback_is_priced_above_the_compiled_kernels(qubits: int) -> None:
    native = spec(defaults.STATEVECTOR)
    for work in (_work(_random(qubits, 4)), _work(_scattered_toffolis(qubits, 50))):
        for precision in ("single", "double"):
            assert native.seconds(work, precision, compiled=False) > native.seconds(
                work, precision, compiled=True
            )


def test_a_cold_process_pays_the_imports_and_the_first_kernel_compiles() -> None:
    native = spec(defaults.STATEVECTOR)
    assert native.compiled is not None and native.compiled.import_s > 0
    missing = replace(native.compiled, requires=("qmk_no_such_compiler",))
    cold = replace(native, compiled=missing, requires=("qmk_no_such_package",), import_s=0.25)
    # the compile, or loading the kernels an earlier process kept (test_kernel_cache.py)
    assert cold.cold_s(compiled=True) == pytest.approx(0.25 + missing.cold_s())
    assert cold.cold_s(compiled=False) == pytest.approx(0.25)
    warm = replace(native, compiled=replace(missing, requires=("numpy",)))
    assert warm.cold_s(compiled=True) == 0.0


def test_an_mps_is_priced_by_the_bond_each_gate_meets_when_it_comes() -> None:
    # 4 qubits: cx(0,1) meets bond 2 at cut 0; cx(1,2) bond 2 at cut 1; cx(1,2) again
    # bond 4 (two crossings, both sides hold 2 qubits); cx(0,3) crosses cuts 0, 1, 2 at
    # bonds 2 (cut 0 holds one qubit: at most 2), 4 (a third crossing, capped) and 2
    work = _work(
        "qreg q[4];\nh q[0];\ncx q[0],q[1];\ncx q[1],q[2];\ncx q[1],q[2];\ncx q[0],q[3];\n"
    )
    assert work.bond == 2
    assert work.log2_bond_work == pytest.approx(math.log2(8 + 8 + 64 + (8 + 64 + 8)))


def test_a_deep_random_circuit_costs_an_mps_more_than_a_shallow_one_of_the_same_gates() -> None:
    deep, shallow = _work(_random(12, 12)), _work(_random(24, 6))  # 354 and 357 gates
    mps = spec(defaults.MPS)
    assert deep.log2_bond_work is not None and shallow.log2_bond_work is not None
    # 12 layers reach bond 2**6 at the middle of 12 qubits; 6 layers stay at 2**3
    assert (deep.bond, shallow.bond) == (6, 3)
    assert deep.log2_bond_work > math.log2(20) + shallow.log2_bond_work
    assert mps.seconds(deep) > mps.seconds(shallow)


def test_a_fresh_process_on_a_16_core_gpu_host_takes_the_gpu_from_28_qubits() -> None:
    """The cuStateVec model holds figures measured on an H200 (docs/engines.md): in a
    fresh process (its imports paid) a random depth-20 circuit stays on the CPU at 24
    qubits (the native statevector on 16 threads) and goes to the GPU at 28 and 30,
    where the statevector took 4.5-5.0 s at 28 on two such hosts (all 16 threads priced
    it at under 1 s, and the router kept it on the CPU)."""
    gpu = spec(defaults.CUSTATEVEC)
    cold = gpu.import_s
    cpu = spec(defaults.STATEVECTOR)
    at = {n: _work(_random(n, 20), shots=1000) for n in (24, 28, 30)}
    assert cpu.seconds(at[24], "single", threads=16) < gpu.seconds(at[24], "single") + cold
    for n in (28, 30):
        assert gpu.seconds(at[n], "single") + cold < cpu.seconds(at[n], "single", threads=16)
    assert gpu.seconds(at[30], "single") + cold < spec(defaults.MPS).seconds(at[30])
    # the state never leaves the GPU: a one-segment run pays no round trip
    assert gpu.seconds(at[30], "single") == gpu.cost.seconds(at[30], "single")


@pytest.mark.parametrize(
    ("qubits", "measured_s"),
    [(24, 0.28), (28, 4.8)],  # an H100 host's 16 threads, single precision (docs/engines.md)
)
def test_the_statevector_on_many_threads_is_priced_as_memory_bound(
    qubits: int, measured_s: float
) -> None:
    """Past :data:`SCALING_THREADS` more threads price a pass no cheaper: on a 16-core
    host the estimate is within 1.5x of the run measured there."""
    cpu = spec(defaults.STATEVECTOR)
    work = _work(_random(qubits, 20), shots=1000)
    many = cpu.seconds(work, "single", threads=16)
    assert many == cpu.seconds(work, "single", threads=SCALING_THREADS)
    assert many < cpu.seconds(work, "single", threads=CALIBRATED_THREADS)
    assert measured_s / 1.5 < many < measured_s * 1.5


@pytest.mark.parametrize(("qubits", "measured_s"), [(28, 2.32), (30, 7.44)])
def test_qsim_gpus_model_prices_its_h200_runs_within_a_quarter(
    qubits: int, measured_s: float
) -> None:
    """qsim's CUDA backend as run on an H200 in process (docs/engines.md): its fused
    passes, the state brought to the host, and the shots drawn there."""
    work = _work(_random(qubits, 20), shots=1000)
    estimate = spec(defaults.QSIM_GPU).cost.seconds(work, "single")
    assert measured_s / 1.25 < estimate < measured_s * 1.25
