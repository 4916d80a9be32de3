"""The OpenQASM 3 writer: every op has a lowering, and what it writes reads back the same.

Every example program and seeded random programs (guards, resets, mid-circuit
measurements in every basis, feed-forward, channels) are written, parsed by the
reference parser (``openqasm3.parse``) and by Qiskit's importer
(``qiskit.qasm3.loads``), and run: QMK's counts of the original (noise off) against
Aer's counts of Qiskit's reading, and against QMK's own OpenQASM front-end reading the
output. Statistics: a chi-square test of homogeneity per comparison at the stated
seeds, each at p > 1e-4 / 40 (:mod:`support.frontends`).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from qmk.engines.gates import GATES
from qmk.execution.executor import run
from qmk.frontends import read_program, to_qasm3
from qmk.frontends.errors import FrontendError
from qmk.frontends.qasm import from_qasm
from qmk.frontends.qasm3_out import LOWERINGS, QASM_GATES
from qmk.qvm.asm import assemble
from qmk.qvm.generate import random_graph
from qmk.qvm.graph import Graph, Node, Resources
from qmk.qvm.ops import OPS, Exec
from support.cli import qmk
from support.frontends import assert_same_distribution, homogeneity_p
from support.paths import ROOT

SHOTS = 2000
SEED = 11
EXAMPLES = sorted(
    p
    for p in (ROOT / "examples").iterdir()
    if p.name.endswith((".qvm.json", ".qvm.asm", ".qasm", ".ll"))
)
#: Seeds of the random programs (qmk.qvm.generate: every op, guards in both forms).
RANDOM_SEEDS = (1, 2, 3, 4, 5, 6, 7, 8)


def _event_counts(graph: Graph, seed: int) -> dict[str, int]:
    """QMK's counts of ``graph`` (noise off), keyed by events in resources order."""
    result = run(graph, shots=SHOTS, seed=seed, noise=False)
    return dict(Counter("".join(map(str, row)) for row in result.bits.tolist()))


def _reversed_keys(counts: dict[str, int]) -> dict[str, int]:
    """Keys of register ``m`` (bit 0 rightmost) in event order (first leftmost)."""
    return dict(Counter({key.replace(" ", "")[::-1]: n for key, n in counts.items()}))


def _aer(text: str, seed: int) -> dict[str, int]:
    import qiskit.qasm3
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    circuit = qiskit.qasm3.loads(text)
    # Aer 0.18 drops idle qubits ("truncation") wrongly around if_else blocks on some
    # programs ("Failed to load circuits: unordered_map::at"): keep every qubit
    sim = AerSimulator(method="statevector", enable_truncation=False)
    compiled = transpile(circuit, sim, optimization_level=0, seed_transpiler=seed)
    counts = sim.run(compiled, shots=SHOTS, seed_simulator=seed).result().get_counts()
    return _reversed_keys(dict(counts))


def _qmk_reread(text: str, seed: int) -> dict[str, int]:
    return _reversed_keys(dict(run(from_qasm(text), shots=SHOTS, seed=seed, noise=False).counts))


def _assert_round_trip(graph: Graph, label: str, seed: int) -> None:
    import openqasm3

    text = to_qasm3(graph)
    openqasm3.parse(text)  # the reference parser reads it
    if not graph.resources.events:
        return
    ours = _event_counts(graph, seed)
    assert_same_distribution(ours, _aer(text, seed), f"{label} vs Aer")
    assert_same_distribution(ours, _qmk_reread(text, seed), f"{label} vs QMK re-read")


# ----------------------------------------------------------------------------- the table


def test_every_op_of_the_table_has_a_lowering():
    assert list(LOWERINGS) == list(OPS), set(OPS) - set(LOWERINGS)


def test_every_gate_op_is_written_as_its_own_unitary():
    pytest.importorskip("qiskit_qasm3_import")
    import qiskit.qasm3
    from qiskit.quantum_info import Operator

    for name, spec in OPS.items():
        if spec.kind is not Exec.GATE:
            continue
        assert spec.gate in QASM_GATES, name
        n = spec.vqs.low
        handles = tuple(f"q{i}" for i in range(n))
        args = {a.name: 0.7 for a in spec.args}
        graph = Graph(
            nodes=(
                Node(id="a", op="ALLOC_LQ", vqs=handles, args={"n": n}),
                Node(id="g", op=name, vqs=handles, args=args),
                Node(id="f", op="FREE_LQ", vqs=handles),
            ),
            resources=Resources(vqs=handles),
            caps=("CAP_ALLOC",),
        )
        circuit = qiskit.qasm3.loads(to_qasm3(graph))
        # GATES: gate qubit 0 is the most significant bit; Qiskit's qubit 0 the least
        expected = GATES[spec.gate].matrix(tuple(args.values()))
        assert Operator(circuit).reverse_qargs().equiv(Operator(expected)), name


def test_an_op_without_a_lowering_is_a_coded_error_naming_the_node(monkeypatch):
    from qmk.frontends import qasm3_out

    monkeypatch.setattr(
        qasm3_out, "LOWERINGS", {k: v for k, v in LOWERINGS.items() if k != "APPLY_T"}
    )
    graph = assemble(".caps CAP_ALLOC\na: ALLOC_LQ vq:q\nt7: APPLY_T vq:q\nf: FREE_LQ vq:q\n")
    with pytest.raises(FrontendError) as info:
        to_qasm3(graph)
    assert info.value.code == "QL109"
    assert "node #1 t7 (APPLY_T)" in str(info.value)


def test_qubits_of_another_tenant_are_refused_naming_the_node():
    graph = assemble(
        """.caps CAP_ALLOC CAP_LINK
mine: ALLOC_LQ vq:a
theirs: ALLOC_LQ vq:b meta {"tenant": "bob"}
open: OPEN_CHAN vq:a, vq:b, ch:link
close: CLOSE_CHAN ch:link
f: FREE_LQ vq:a, vq:b
"""
    )
    with pytest.raises(FrontendError) as info:
        to_qasm3(graph)
    assert info.value.code == "QL109"
    assert "node #1 theirs (ALLOC_LQ)" in str(info.value) and "bob" in str(info.value)


# ----------------------------------------------------------------------------- constructs


def test_freed_slots_are_reset_and_reused_so_the_register_is_the_peak_of_live_qubits():
    graph = assemble(
        """.caps CAP_ALLOC
a: ALLOC_LQ vq:x, vq:y
h: APPLY_H vq:x
c: APPLY_CNOT vq:x, vq:y
f: FREE_LQ vq:x
b: ALLOC_LQ vq:z
c2: APPLY_CNOT vq:y, vq:z
m: MEASURE_Z vq:z, out:m
g: FREE_LQ vq:y, vq:z
"""
    )
    text = to_qasm3(graph)
    assert "qubit[2] q;" in text
    assert "reset q[0];\n// ALLOC_LQ b: z -> q[0]" in text
    assert text.rstrip().endswith("left as they are (the end of the program)")


def test_a_conjunction_guard_is_nested_ifs_on_bits_compared_with_booleans():
    graph = assemble(
        """.caps CAP_ALLOC
a: ALLOC_LQ vq:q0, vq:q1
h0: APPLY_H vq:q0
h1: APPLY_H vq:q1
m0: MEASURE_Z vq:q0, out:m0
m1: MEASURE_X vq:q1, out:m1
x: APPLY_X vq:q0 when ev:m0 == 1 and ev:m1 == 0
f: FREE_LQ vq:q0, vq:q1
"""
    )
    assert "if (m[0] == true) { if (m[1] == false) { x q[0]; } }" in to_qasm3(graph)


def test_fences_are_barriers_and_admin_ops_are_comments():
    graph = assemble(
        """.caps CAP_ALLOC
a: ALLOC_LQ vq:q
p: SET_POLICY priority=3
r: BAR_REGION vq:q, tag="a \\"tag\\"\\nwith a newline"
fe: FENCE_EPOCH
f: FREE_LQ vq:q
"""
    )
    text = to_qasm3(graph)
    assert "barrier q;" in text
    assert '// SET_POLICY p: {"priority": 3} (no quantum effect)' in text
    region = next(line for line in text.splitlines() if "BAR_REGION" in line)
    assert "\\n" in region  # the tag's newline stays inside the one comment line


KITCHEN_SINK = """.caps CAP_ALLOC CAP_MAGIC CAP_LINK CAP_TELEPORT
a: ALLOC_LQ vq:q0, vq:q1, vq:q2
h: APPLY_H vq:q0
ry: APPLY_RY vq:q1, theta=1.1
cz: APPLY_CCZ vq:q0, vq:q1, vq:q2
m0: MEASURE_Y vq:q0, out:m0
r: RESET vq:q2 when ev:m0 == 1
m1: MEASURE_ANGLE vq:q1, out:m1, angle=0.6
t: INJECT_T_STATE vq:q2
tc: TELEPORT_CNOT vq:q2, vq:q0
x: APPLY_RX vq:q1, theta=-0.4 when ev:m0 == 1 and ev:m1 == 0
bell: MEASURE_BELL vq:q0, vq:q1, out:xx, out:zz
cp: COND_PAULI vq:q2, in:m1, in:zz, mask="Y"
gm: MEASURE_X vq:q2, out:m2 when ev:xx == 0
fr: FREE_LQ vq:q1
b: ALLOC_LQ vq:q3
open: OPEN_CHAN vq:q2, vq:q3, ch:link, opts={"fidelity": 0.7}
use: USE_CHAN ch:link, semantic="teleport"
close: CLOSE_CHAN ch:link
m3: MEASURE_Z vq:q3, out:m3
m4: MEASURE_X vq:q2, out:m4
f: FREE_LQ vq:q0, vq:q2, vq:q3
"""


def test_a_program_with_every_kind_of_node_reads_back_with_the_same_distribution():
    pytest.importorskip("qiskit_qasm3_import")
    _assert_round_trip(assemble(KITCHEN_SINK), "kitchen sink", SEED)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_reads_back_with_the_same_distribution(path: Path):
    pytest.importorskip("qiskit_qasm3_import")
    _assert_round_trip(read_program(path), path.name, SEED)


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_random_programs_read_back_with_the_same_distribution(seed: int):
    pytest.importorskip("qiskit_qasm3_import")
    graph = random_graph(seed=seed, nodes=40, max_live=6)
    # its random code profiles do not all fit the default qubits; no noise is run anyway
    nodes = tuple(
        replace(n, args={k: v for k, v in n.args.items() if k != "profile"}) for n in graph.nodes
    )
    _assert_round_trip(replace(graph, nodes=nodes), f"random_graph(seed={seed})", seed)


def test_a_werner_channel_is_written_with_its_noise():
    """F = 0.4: the pair's ZZ parity is odd with probability 2(1-F)/3 = 0.4 (X or Y on b)."""
    pytest.importorskip("qiskit_qasm3_import")
    graph = assemble(
        """.caps CAP_ALLOC CAP_LINK
a: ALLOC_LQ vq:a, vq:b
open: OPEN_CHAN vq:a, vq:b, ch:c, opts={"fidelity": 0.4}
close: CLOSE_CHAN ch:c
bell: MEASURE_BELL vq:a, vq:b, out:xx, out:zz
f: FREE_LQ vq:a, vq:b
"""
    )
    counts = _aer(to_qasm3(graph), SEED)
    odd_zz = sum(n for key, n in counts.items() if key[1] == "1") / SHOTS
    odd_xx = sum(n for key, n in counts.items() if key[0] == "1") / SHOTS
    sigma = math.sqrt(0.4 * 0.6 / SHOTS)
    assert abs(odd_zz - 0.4) < 5 * sigma and abs(odd_xx - 0.4) < 5 * sigma
    assert homogeneity_p(counts, _event_counts(graph, SEED)) > 1e-6


def test_a_program_without_measurements_is_a_unitary_circuit():
    pytest.importorskip("qiskit_qasm3_import")
    import qiskit.qasm3
    from qiskit.quantum_info import Statevector

    graph = read_program(ROOT / "examples" / "bell.qasm")
    graph = Graph(
        nodes=tuple(n for n in graph.nodes if n.op != "MEASURE_Z"),
        resources=Resources(vqs=graph.resources.vqs),
        caps=graph.caps,
    )
    state = Statevector(qiskit.qasm3.loads(to_qasm3(graph)))
    assert np.allclose(state.data, [2**-0.5, 0, 0, 2**-0.5])


# ----------------------------------------------------------------------------- command


def test_qmk_qasm_writes_a_file(tmp_path: Path):
    out = tmp_path / "bell.qasm"
    status, stdout, stderr = qmk("qasm", str(ROOT / "examples" / "bell.qvm.asm"), "-o", str(out))
    assert (status, stdout, stderr) == (0, "", "")
    assert out.read_text(encoding="utf-8") == to_qasm3(
        read_program(ROOT / "examples" / "bell.qvm.asm")
    )


def test_qmk_qasm_refusal_is_one_coded_line_with_exit_status_2(tmp_path: Path):
    path = tmp_path / "peer.qvm.asm"
    path.write_text(
        '.caps CAP_ALLOC\na: ALLOC_LQ vq:q meta {"tenant": "bob"}\nf: FREE_LQ vq:q\n',
        encoding="utf-8",
    )
    status, stdout, stderr = qmk("qasm", str(path))
    assert status == 2 and stdout == ""
    assert stderr.startswith("QL109 not-expressible: node #0 a (ALLOC_LQ)")
    assert stderr.count("\n") == 1
