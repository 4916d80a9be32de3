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

import itertools
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from scipy import stats

from qmk import run as run_source
from qmk.engines.gates import GATES
from qmk.execution.runs import run
from qmk.frontends import read_program, to_qasm3
from qmk.frontends.errors import FrontendError
from qmk.frontends.qasm import from_qasm
from qmk.frontends.qasm3_out import LOWERINGS, QASM_GATES, _composite, _Writer
from qmk.qvm.asm import assemble
from qmk.qvm.expansions import EXPANSIONS, Micro, MicroStep
from qmk.qvm.generate import random_graph
from qmk.qvm.graph import Graph, Node, Resources
from qmk.qvm.ops import OPS, Exec, OpSpec
from qmk.qvm.verify import verify
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
        msgspec.structs.replace(n, args={k: v for k, v in n.args.items() if k != "profile"})
        for n in graph.nodes
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


# ----------------------------------------------------------------------------- composites
#
# Every composite op of the op table (an ``expansion``) is written from that expansion.
# Each is walked here: a program prepares an entangled, rotated state of three qubits,
# applies the op, rotates again and measures every qubit in Z. The written program, run
# by QMK (qmk.run of the OpenQASM 3 text, noise off), and the original program, run by
# QMK, are each compared with the original's exact distribution: an exact branching
# state vector in which each op does what :data:`MEANINGS` says, stated apart from the
# expansion (projectors, a Werner mixture). Statistics: chi-square goodness of fit
# (bins expecting fewer than 5 shots pooled; an outcome of probability 0 must never
# come up) at the seeds stated, each at p > 1e-4 / (2 x composite ops).

COMPOSITES = [spec for spec in OPS.values() if spec.name in EXPANSIONS]
COMPOSITE_SHOTS = 8000
COMPOSITE_ALPHA = 1e-4 / (2 * len(COMPOSITES))
#: A value for each argument of a composite op (opts: a channel of fidelity 0.4, whose
#: Werner noise is large enough to be seen).
COMPOSITE_ARGS: dict[str, Any] = {"angle": 0.4, "theta": 0.9, "opts": {"fidelity": 0.4}}
QUBITS = ("q0", "q1", "q2")

_I = np.eye(2, dtype=complex)
_PAULI = {
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.diag([1, -1]).astype(complex),
}


class _Exact:
    """An exact state-vector simulation that branches at every measurement (and at a
    mixture): each branch is (its events so far, its unnormalised state), the square of
    the state's norm being the branch's probability. Qubit 0 is the most significant."""

    def __init__(self, qubits: int) -> None:
        state = np.zeros((2,) * qubits, dtype=complex)
        state[(0,) * qubits] = 1.0
        self.branches: list[tuple[dict[str, int], np.ndarray]] = [({}, state)]

    @staticmethod
    def _applied(matrix: np.ndarray, state: np.ndarray, qubits: Sequence[int]) -> np.ndarray:
        k = len(qubits)
        tensor = matrix.reshape((2,) * (2 * k))
        moved = np.tensordot(tensor, state, axes=(list(range(k, 2 * k)), list(qubits)))
        return np.moveaxis(moved, list(range(k)), list(qubits))

    def unitary(self, matrix: np.ndarray, qubits: Sequence[int]) -> None:
        self.branches = [(ev, self._applied(matrix, s, qubits)) for ev, s in self.branches]

    def gate(self, name: str, qubits: Sequence[int], params: Sequence[float] = ()) -> None:
        self.unitary(GATES[name].matrix(tuple(params)), qubits)

    def measure(
        self,
        qubits: Sequence[int],
        outcomes: Mapping[tuple[int, ...], np.ndarray],
        events: Sequence[str],
    ) -> None:
        """Project on each of ``outcomes`` (bits -> projector), recording the bits."""
        branches = []
        for ev, state in self.branches:
            for bits, projector in outcomes.items():
                after = self._applied(projector, state, qubits)
                if np.vdot(after, after).real > 1e-14:
                    branches.append(({**ev, **dict(zip(events, bits, strict=True))}, after))
        self.branches = branches

    def mixture(self, weighted: Sequence[tuple[float, np.ndarray]], qubits: Sequence[int]) -> None:
        """Apply one of the unitaries, each with its probability."""
        self.branches = [
            (ev, math.sqrt(w) * self._applied(u, s, qubits))
            for ev, s in self.branches
            for w, u in weighted
            if w > 0
        ]

    def reset(self, q: int) -> None:
        """Return qubit ``q`` to |0>: project on |0> or on |1> (unrecorded), flip a 1."""
        zero = np.diag([1, 0]).astype(complex)
        flip_one = np.array([[0, 1], [0, 0]], dtype=complex)  # |0><1|: project on 1, X
        branches = []
        for ev, state in self.branches:
            for kraus in (zero, flip_one):
                after = self._applied(kraus, state, [q])
                if np.vdot(after, after).real > 1e-14:
                    branches.append((ev, after))
        self.branches = branches

    def distribution(self, events: Sequence[str]) -> dict[str, float]:
        """Each key of ``events`` (first leftmost; an event not recorded reads 0), with
        its probability."""
        out: dict[str, float] = {}
        for ev, state in self.branches:
            key = "".join(str(ev.get(e, 0)) for e in events)
            out[key] = out.get(key, 0.0) + float(np.vdot(state, state).real)
        return out


def _projectors(observables: Sequence[np.ndarray]) -> dict[tuple[int, ...], np.ndarray]:
    """The joint eigenspaces of commuting +-1 observables: outcome bit 0 is eigenvalue +1."""
    dim = observables[0].shape[0]
    out = {}
    for bits in itertools.product((0, 1), repeat=len(observables)):
        projector = np.eye(dim, dtype=complex)
        for bit, observable in zip(bits, observables, strict=True):
            projector = projector @ (np.eye(dim) + (-1) ** bit * observable) / 2
        out[bits] = projector
    return out


_Meaning = Callable[[_Exact, Sequence[int], Sequence[str], Mapping[str, Any]], None]


def _measure_angle(sim: _Exact, qs: Sequence[int], events: Sequence[str], args: Any) -> None:
    # the basis (|0> +- e^{i angle}|1>)/sqrt2, outcome 0 for +: cos(angle) X + sin(angle) Y
    angle = float(args["angle"])
    observable = math.cos(angle) * _PAULI["X"] + math.sin(angle) * _PAULI["Y"]
    sim.measure(qs, _projectors([observable]), events)


def _measure_bell(sim: _Exact, qs: Sequence[int], events: Sequence[str], args: Any) -> None:
    # the XX parity, then the ZZ parity
    xx, zz = (np.kron(_PAULI[p], _PAULI[p]) for p in "XZ")
    sim.measure(qs, _projectors([xx, zz]), events)


def _teleport_cnot(sim: _Exact, qs: Sequence[int], events: Sequence[str], args: Any) -> None:
    cnot = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=complex)
    sim.unitary(cnot, qs)


def _inject_t_state(sim: _Exact, qs: Sequence[int], events: Sequence[str], args: Any) -> None:
    # the qubit becomes T|+> = (|0> + e^{i pi/4}|1>)/sqrt2, whatever it held
    sim.reset(qs[0])
    phase = complex(math.cos(math.pi / 4), math.sin(math.pi / 4))
    prepare = np.array([[1, -np.conj(phase)], [phase, 1]], dtype=complex) / math.sqrt(2)
    sim.unitary(prepare, qs)


def _open_chan(sim: _Exact, qs: Sequence[int], events: Sequence[str], args: Any) -> None:
    # a Werner pair of fidelity F: (|00> + |11>)/sqrt2 with probability F, each other Bell
    # state with probability (1 - F) / 3
    fidelity = float(args.get("opts", {}).get("fidelity", 1.0))
    for q in qs:
        sim.reset(q)
    # columns: the four Bell states, (|00> + |11>)/sqrt2 first (what |00> becomes)
    bell = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [0, 1, 0, -1], [1, 0, -1, 0]]) / math.sqrt(2)
    sim.unitary(bell.astype(complex), qs)
    rest = (1 - fidelity) / 3
    others = [(rest, np.kron(_I, _PAULI[p])) for p in "XYZ"]
    sim.mixture([(fidelity, np.eye(4, dtype=complex)), *others], qs)


#: What each composite op does, stated apart from its expansion: an op added to the
#: table with an expansion fails :func:`test_every_composite_op_has_its_meaning_stated`
#: until it is listed here.
MEANINGS: dict[str, _Meaning] = {
    "MEASURE_ANGLE": _measure_angle,
    "MEASURE_BELL": _measure_bell,
    "TELEPORT_CNOT": _teleport_cnot,
    "INJECT_T_STATE": _inject_t_state,
    "OPEN_CHAN": _open_chan,
}

#: Before and after the op: (op, qubits, args) on QUBITS; every qubit is then measured.
_PREPARE = (
    ("APPLY_RY", (0,), {"theta": 0.7}),
    ("APPLY_RX", (1,), {"theta": 1.1}),
    ("APPLY_H", (2,), {}),
    ("APPLY_CNOT", (0, 2), {}),
    ("APPLY_CNOT", (1, 0), {}),
)
_TURN = (
    ("APPLY_RX", (0,), {"theta": 0.9}),
    ("APPLY_RY", (0,), {"theta": 0.6}),
    ("APPLY_RY", (1,), {"theta": 0.5}),
    ("APPLY_CNOT", (1, 2), {}),
    ("APPLY_RX", (2,), {"theta": 0.4}),
)


def _composite_program(spec: OpSpec) -> tuple[Graph, dict[str, float]]:
    """A program that applies ``spec`` between entangling rotations, and its exact
    distribution (events in resources order)."""
    sim = _Exact(len(QUBITS))
    nodes = [Node(id="a", op="ALLOC_LQ", vqs=QUBITS, args={"n": len(QUBITS)})]

    def gates(steps: Sequence[tuple[str, tuple[int, ...], dict[str, float]]], tag: str) -> None:
        for k, (op, qs, args) in enumerate(steps):
            nodes.append(Node(id=f"{tag}{k}", op=op, vqs=tuple(QUBITS[q] for q in qs), args=args))
            sim.gate(OPS[op].gate or "", qs, tuple(args.values()))

    gates(_PREPARE, "p")
    qs = tuple(range(spec.vqs.low))
    args = {a.name: COMPOSITE_ARGS[a.name] for a in spec.args}
    events = [f"op{k}" for k in range(spec.produces.low)]
    chs = ("link",) * spec.chs.low
    nodes.append(
        Node(
            id="op",
            op=spec.name,
            vqs=tuple(QUBITS[q] for q in qs),
            chs=chs,
            produces=tuple(events),
            args=args,
        )
    )
    MEANINGS[spec.name](sim, qs, events, args)
    if chs:
        nodes.append(Node(id="close", op="CLOSE_CHAN", chs=chs))
    gates(_TURN, "t")
    for q, handle in enumerate(QUBITS):
        nodes.append(Node(id=f"m{q}", op="MEASURE_Z", vqs=(handle,), produces=(f"m{q}",)))
        sim.measure([q], _projectors([_PAULI["Z"]]), [f"m{q}"])
        events.append(f"m{q}")
    nodes.append(Node(id="f", op="FREE_LQ", vqs=QUBITS))
    caps = sorted({"CAP_ALLOC", *((spec.cap,) if spec.cap else ())})
    graph = Graph(
        nodes=tuple(nodes),
        resources=Resources(vqs=QUBITS, chs=chs[:1], events=tuple(events)),
        caps=tuple(caps),
    )
    return graph, sim.distribution(events)


def _assert_fits(counts: Mapping[str, int], exact: Mapping[str, float], label: str) -> None:
    """Chi-square goodness of fit of ``counts`` to ``exact`` (bins expecting fewer than 5
    shots pooled), at p > COMPOSITE_ALPHA; no outcome of probability 0 came up."""
    shots = sum(counts.values())
    impossible = [k for k, n in counts.items() if n and exact.get(k, 0.0) < 1e-12]
    assert not impossible, f"{label}: outcomes of probability 0 came up: {impossible}"
    bins = [(counts.get(k, 0), p * shots) for k, p in exact.items() if p >= 1e-12]
    big = [(o, e) for o, e in bins if e >= 5]
    small = [(o, e) for o, e in bins if e < 5]
    if small:
        big.append((sum(o for o, _ in small), sum(e for _, e in small)))
    statistic = sum((o - e) ** 2 / e for o, e in big)
    p = float(stats.chi2.sf(statistic, max(1, len(big) - 1)))
    assert p > COMPOSITE_ALPHA, f"{label}: chi-square {statistic:.1f}, p={p:.2e}"


def test_every_composite_op_has_its_meaning_stated():
    assert [s.name for s in COMPOSITES] == [n for n in OPS if n in MEANINGS]
    assert set(MEANINGS) <= {s.name for s in COMPOSITES}, "a meaning of an op with no expansion"


@pytest.mark.parametrize("spec", COMPOSITES, ids=lambda s: s.name)
def test_every_composite_op_is_written_from_its_expansion_with_its_exact_distribution(spec):
    graph, exact = _composite_program(spec)
    assert math.isclose(sum(exact.values()), 1.0, abs_tol=1e-9)
    seed = 700 + list(OPS).index(spec.name)
    text = to_qasm3(graph)
    written = run_source(text, format="qasm", shots=COMPOSITE_SHOTS, seed=seed, noise=False)
    _assert_fits(_reversed_keys(dict(written.counts)), exact, f"{spec.name} written")
    original = run_source(graph, shots=COMPOSITE_SHOTS, seed=seed, noise=False)
    _assert_fits(dict(original.counts), exact, f"{spec.name} original")


def test_a_composite_ops_lowering_follows_its_expansion_in_the_op_table():
    """A changed expansion changes what is written and the docs' text of it."""
    steps = (
        MicroStep(kind=Micro.RESET),
        MicroStep(kind=Micro.GATE, gate="rx", arg="angle", negate=True),
        MicroStep(kind=Micro.GATE, gate="s"),
        MicroStep(kind=Micro.MEASURE),
        MicroStep(kind=Micro.UNDO, qubits=()),
    )
    lowering = _composite(OPS["MEASURE_ANGLE"], steps)
    assert lowering is not None
    assert lowering.text == "`reset q; rx(-angle) q; s q; m[k] = measure q; sdg q; rx(angle) q;`"
    node = Node(id="n", op="MEASURE_ANGLE", vqs=("x",), produces=("e",), args={"angle": 0.25})
    writer = _Writer(verify(assemble(".caps CAP_ALLOC\na: ALLOC_LQ vq:x\nf: FREE_LQ vq:x\n")))
    writer.slot["x"], writer.bit["e"] = 0, 0
    assert lowering.write(writer, 1, node) == [
        "reset q[0];",
        "rx(-0.25) q[0];",
        "s q[0];",
        "m[0] = measure q[0];",
        "sdg q[0];",
        "rx(0.25) q[0];",
    ]


def test_an_expansion_with_a_step_openqasm_cannot_write_has_no_lowering():
    unnamed = (MicroStep(kind=Micro.GATE, gate="no_such_gate"),)
    assert _composite(OPS["INJECT_T_STATE"], unnamed) is None
