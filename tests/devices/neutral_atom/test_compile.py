"""The compiler onto the neutral-atom device: compiled programs sample the distribution of the
program itself (exact probabilities from Qiskit's statevector, and ``qmk.run`` of the original
by a two-sample test), routing by moves and SWAPs where the interaction graph is not native,
catalog-only gates with angles in range, coded refusals naming the node, and the CLI.

Statistics: chi-square goodness of fit against exact probabilities and chi-square homogeneity
against ``qmk.run``, each at p > 1e-4 / 40 at the stated seeds (a false alarm in this file
has probability below 1e-4 if the compiler is right).
"""

from __future__ import annotations

import itertools
import json
import math

import pytest

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.compile import compile_program, run_program
from qmk.devices.neutral_atom.emulator import run_job
from qmk.devices.neutral_atom.job import parse_job
from qmk.devices.neutral_atom.profiles import load_profile
from qmk.qvm.asm import assemble
from support.cli import qmk
from support.frontends import homogeneity_p, random_circuit, tvd
from support.neutral_atom import assert_counts_match
from support.paths import EXAMPLES

ALPHA = 1e-4 / 40
SHOTS = 3000


def graph_of(circuit):
    from qmk.frontends.qiskit import from_qiskit

    return from_qiskit(circuit)


def exact(circuit) -> dict[str, float]:
    """The exact outcome probabilities of a circuit that measures every qubit at its end,
    keyed as Qiskit (and the OpenQASM/Qiskit front-ends' output layout) key them."""
    from qiskit.quantum_info import Statevector

    bare = circuit.remove_final_measurements(inplace=False)
    return dict(Statevector(bare).probabilities_dict())


def ghz(n: int):
    from support.frontends import ghz as make

    return make(n)


def qft(n: int, value: int):
    """|value> (little-endian) with an H on qubit 0, then the textbook QFT (controlled
    phases as cp, which the front-end lowers to CNOTs and rotations)."""
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(n, n)
    for k in range(n):
        if (value >> k) & 1:
            qc.x(k)
    qc.h(0)
    for j in reversed(range(n)):
        qc.h(j)
        for k in reversed(range(j)):
            qc.cp(math.pi / 2 ** (j - k), k, j)
    for k in range(n // 2):
        qc.swap(k, n - 1 - k)
    qc.measure(range(n), range(n))
    return qc


def star(n: int):
    """CNOTs from qubit 0 to every other qubit after rotations: an interaction graph of
    degree n - 1, which no chain or grid embeds for n >= 4 (5 on a grid)."""
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(n, n)
    for k in range(n):
        qc.ry(0.4 + 0.3 * k, k)
    for k in range(1, n):
        qc.cx(0, k)
        qc.rz(0.7 * k, k)
    qc.h(0)
    for k in range(n - 1, 0, -1):
        qc.cx(k, 0)
    qc.measure(range(n), range(n))
    return qc


def check_against_theory(circuit, device: str, *, seed: int, **options) -> object:
    graph = graph_of(circuit)
    run = run_program(graph, device, shots=SHOTS, seed=seed, noiseless=True, **options)
    assert_counts_match(run.counts, exact(circuit), alpha=ALPHA)
    import qmk

    reference = qmk.run(graph, shots=SHOTS, seed=seed, noise=False)
    p = homogeneity_p(run.counts, reference.counts)
    assert p > ALPHA, f"p={p:.2e}, tvd={tvd(run.counts, reference.counts):.3f}"
    return run


# ----------------------------------------------------------------------------- right answers


@pytest.mark.parametrize("n", [3, 8, 20])
def test_ghz_on_the_benchmark_chain_keeps_its_two_outcomes_and_needs_no_routing(n):
    run = check_against_theory(ghz(n), "benchmark_chain", seed=11)
    assert set(run.counts) == {"0" * n, "1" * n}
    assert run.report.routed == 0 and run.report.two_qubit_after == n - 1
    atoms = list(run.report.placement.values())
    assert all(abs(a - b) == 1 for a, b in itertools.pairwise(atoms))
    assert run.result.device_id == "stabilizer"


@pytest.mark.parametrize(
    ("n", "value", "device"),
    [
        (3, 5, "ideal_small_array"),
        (4, 9, "ideal_small_array"),
        (3, 2, "ideal_square_grid"),
        (4, 6, "ideal_square_grid"),
    ],
)
def test_qft_matches_theory_and_qmk_run(n, value, device):
    check_against_theory(qft(n, value), device, seed=5 + n + value)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_random_circuits_match_theory_and_qmk_run(seed):
    check_against_theory(random_circuit(seed), "ideal_small_array", seed=100 + seed)


@pytest.mark.parametrize("seed", [20, 21])
def test_random_circuits_with_mid_circuit_measurement_and_reset_match_qmk_run(seed):
    graph = graph_of(random_circuit(seed, measure_mid=True))
    import qmk

    run = run_program(graph, "ideal_square_grid", shots=SHOTS, seed=seed, noiseless=True)
    assert run.report.gates_after.get("Reset", 0) == 1
    reference = qmk.run(graph, shots=SHOTS, seed=seed, noise=False)
    assert homogeneity_p(run.counts, reference.counts) > ALPHA


def test_the_same_seed_gives_the_same_counts():
    graph = graph_of(random_circuit(7))
    first = run_program(graph, "ideal_small_array", shots=500, seed=9)
    again = run_program(graph, "ideal_small_array", shots=500, seed=9)
    assert first.counts == again.counts


# ----------------------------------------------------------------------------- routing


@pytest.mark.parametrize(
    ("device", "routing"),
    [
        ("benchmark_chain", "swap"),
        ("ideal_small_array", "swap"),
        ("ideal_small_array", "move"),
        ("ideal_small_array", "auto"),
        ("ideal_square_grid", "swap"),
        ("ideal_square_grid", "move"),
    ],
)
def test_a_star_that_no_chain_or_grid_embeds_is_routed_and_stays_right(device, routing):
    n = 6 if "grid" in device else 5  # a centre with 5 neighbours is not a grid's
    run = check_against_theory(star(n), device, seed=17, routing=routing)
    report = run.report
    assert report.routed > 0
    if routing == "swap":
        assert report.swaps > 0 and report.moves == 0
        assert report.two_qubit_after == 2 * (n - 1) + 3 * report.swaps
    if routing == "move":
        assert report.moves > 0 and report.swaps == 0
        assert sum(1 for i in run.job["program"] if i["op"] == "MoveAtom") == report.moves


def test_routing_by_moves_follows_transport_edges_through_free_sites_of_a_configuration():
    # edge_ancilla: sites 1..8 hold atoms, sites 0 and 9 are free for moves
    circuit = star(4)
    run = check_against_theory(
        circuit, "ideal_small_array", seed=23, routing="move", configuration="edge_ancilla"
    )
    assert run.report.configuration == "edge_ancilla" and run.report.moves > 0
    assert run.job["hardware"]["site_ids"] == [1, 2, 3, 4, 5, 6, 7, 8]


def test_a_program_whose_interactions_embed_in_the_chain_is_placed_without_routing():
    # a ring of 4 is not a chain, but a line 0-2-1-3 is: placement finds it
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(4, 4)
    qc.h(0)
    qc.cx(0, 2)
    qc.cx(2, 1)
    qc.cx(1, 3)
    qc.measure(range(4), range(4))
    run = check_against_theory(qc, "ideal_small_array", seed=3)
    report = run.report
    assert report.routed == 0
    atoms = report.placement
    assert abs(atoms["q0"] - atoms["q2"]) == 1
    assert abs(atoms["q2"] - atoms["q1"]) == 1
    assert abs(atoms["q1"] - atoms["q3"]) == 1


def test_routing_move_without_free_sites_or_moves_is_refused_with_qd303():
    # benchmark_chain: no transport edges, every site of 20 taken by 20 qubits
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(20, 20)
    qc.cx(0, 19)
    qc.cx(0, 10)
    qc.cx(0, 5)
    qc.measure(range(20), range(20))
    with pytest.raises(DeviceError) as caught:
        compile_program(graph_of(qc), "benchmark_chain", routing="move")
    assert caught.value.code == "QD303"


# ----------------------------------------------------------------------------- native gates


def _catalog_profile(gates, *, rz=None):
    data = load_profile("ideal_small_array").to_json()
    catalog = []
    for gate in data["hardware"]["native_gates"]:
        if gate["name"] in gates:
            if gate["name"] == "RZ" and rz is not None:
                gate = {**gate, "angle_min": rz[0], "angle_max": rz[1]}
            catalog.append(gate)
    data["hardware"]["native_gates"] = catalog
    data.update(name="catalog_only", configurations=[], default_configuration="")
    return load_profile(data)


@pytest.mark.parametrize(
    ("gates", "rz"),
    [
        (("CZ", "RZ", "RX"), None),
        (("CZ", "RZ", "RY"), None),
        (("CZ", "U3", "H", "S", "SDG"), None),
        (("CX", "RZ", "RY"), None),
        (("CZ", "RZ", "RX"), (0.0, 0.5)),
    ],
)
def test_only_catalog_gates_with_angles_in_range_are_emitted(gates, rz):
    profile = _catalog_profile(gates, rz=rz)
    circuit = random_circuit(3)
    job, report = compile_program(graph_of(circuit), profile)
    used = {i["name"] for i in job["program"] if i["op"] == "ApplyGate"}
    assert used <= set(gates)
    if rz is not None:
        angles = [i["param"] for i in job["program"] if i.get("name") == "RZ"]
        assert angles and all(rz[0] - 1e-9 <= a <= rz[1] + 1e-9 for a in angles)
    result = run_job(parse_job(job, preset=profile, shots=SHOTS, seed=31))
    from qmk.devices.neutral_atom.compile import program_counts

    assert_counts_match(program_counts(result.bits, report), exact(circuit), alpha=ALPHA)


def test_runs_of_one_qubit_gates_fuse_and_cliffords_stay_named():
    program = assemble(
        """
        .caps CAP_ALLOC
        a: ALLOC_LQ vq:q0, vq:q1
        h1: APPLY_H vq:q0
        s1: APPLY_S vq:q0
        s2: APPLY_S vq:q0
        h2: APPLY_H vq:q0
        x: APPLY_X vq:q1
        x2: APPLY_X vq:q1
        m0: MEASURE_Z vq:q0, out:m0
        m1: MEASURE_Z vq:q1, out:m1
        """
    )
    job, _ = compile_program(program, "ideal_small_array")
    gates = [(i["name"], i["targets"]) for i in job["program"] if i["op"] == "ApplyGate"]
    assert gates == [("X", [0])]  # H S S H = X; X X = I
    run = run_program(program, "ideal_small_array", shots=200, seed=1)
    assert run.counts == {"10": 200} and run.result.device_id == "stabilizer"


def test_measurements_in_other_bases_and_bell_measurements_match_qmk_run():
    program = assemble(
        """
        .caps CAP_ALLOC
        a: ALLOC_LQ vq:q0, vq:q1, vq:q2
        h: APPLY_H vq:q0
        mx: MEASURE_X vq:q0, out:e0
        mz: MEASURE_Z vq:q0, out:e1
        ry: APPLY_RY vq:q2, theta=1.1
        my: MEASURE_Y vq:q2, out:e2
        h2: APPLY_H vq:q1
        c: APPLY_CNOT vq:q1, vq:q2
        mb: MEASURE_BELL vq:q1, vq:q2, out:e3, out:e4
        ma: MEASURE_ANGLE vq:q1, out:e5, angle=0.6
        """
    )
    import qmk

    run = run_program(program, "ideal_small_array", shots=SHOTS, seed=41)
    reference = qmk.run(program, shots=SHOTS, seed=41, noise=False)
    assert all(key[0] == "0" for key in run.counts)  # H|0> measured in X is +
    assert homogeneity_p(run.counts, reference.counts) > ALPHA


def test_a_swap_of_the_program_costs_no_gate():
    program = assemble(
        """
        .caps CAP_ALLOC
        a: ALLOC_LQ vq:q0, vq:q1
        x: APPLY_X vq:q0
        s: APPLY_SWAP vq:q0, vq:q1
        m0: MEASURE_Z vq:q0, out:m0
        m1: MEASURE_Z vq:q1, out:m1
        """
    )
    _, report = compile_program(program, "ideal_small_array")
    assert report.two_qubit_after == 0
    assert run_program(program, "ideal_small_array", shots=100, seed=2).counts == {"01": 100}


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("path", "node"),
    [
        (str(EXAMPLES / "teleport_guards.qvm.json"), "fix_x"),
        (str(EXAMPLES / "teleport_cond_pauli.qvm.json"), None),
        (str(EXAMPLES / "linked_modules.qvm.json"), None),
    ],
)
def test_feed_forward_and_channels_are_refused_naming_the_node(path, node):
    from qmk.qvm.files import read_graph

    graph = read_graph(path)
    with pytest.raises(DeviceError) as caught:
        compile_program(graph, "ideal_small_array")
    error = caught.value
    assert error.code == "QD301"
    assert error.details["node"] in {n.id for n in graph.nodes}
    if node is not None:
        assert error.details["node"] == node


def test_more_qubits_than_atoms_is_refused_with_qd302():
    with pytest.raises(DeviceError) as caught:
        compile_program(graph_of(ghz(7)), "lossy_chain")
    assert caught.value.code == "QD302" and caught.value.details["atoms"] == 6


# ----------------------------------------------------------------------------- the CLI


def test_qmk_run_device_json_reports_placement_gates_routing_and_duration(tmp_path):
    source = tmp_path / "star.qasm"
    from qiskit import qasm2

    source.write_text(qasm2.dumps(star(4)))
    job_file = tmp_path / "job.json"
    status, out, err = qmk(
        "run",
        str(source),
        "--device",
        "ideal_small_array",
        "--routing",
        "swap",
        "--shots",
        "400",
        "--seed",
        "8",
        "--emit-job",
        str(job_file),
        "--json",
    )
    assert status == 0, err
    data = json.loads(out)
    report = data["compile"]
    assert report["routed"] > 0 and report["swaps"] > 0
    assert len(report["placement"]) == 4
    assert report["duration_ns"] > 0 and report["depth"] > 0
    assert sum(data["counts"].values()) == 400
    # the emitted job runs unchanged through qmk device run, with the same device counts
    status, out2, err = qmk("device", "run", str(job_file), "--json", "--no-measurements")
    assert status == 0, err
    assert json.loads(out2)["counts"] == data["device"]["counts"]


def test_qmk_run_device_prints_what_it_did():
    status, out, err = qmk(
        "run", str(EXAMPLES / "ghz.qvm.asm"), "--device", "ideal_square_grid", "--seed", "4"
    )
    assert status == 0, err
    assert "compiled onto ideal_square_grid" in out and "placement" in out
    assert "program time" in out


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        # the device target refuses the logical machine's settings (qmk.execution.target)
        (("--engine", "statevector"), "QM102"),
        (("--noise-model", "depolarizing(p=1e-3)"), "QM102"),
        (("--state", "s.json"), "QM102"),
        (("--block", "fast"), "QM102"),
        (("--routing", "move", "--device", "benchmark_chain"), None),
    ],
)
def test_qmk_run_device_refuses_logical_machine_options_in_one_line(extra, code):
    argv = ["run", str(EXAMPLES / "bell.qasm"), "--device", "ideal_small_array", *extra]
    status, _, err = qmk(*argv)
    if code is None:
        assert status == 0, err  # a Bell pair on neighbours needs no move
        return
    assert status == 2 and err.startswith(code) and err.count("\n") == 1


def test_qmk_run_device_refuses_a_guarded_program_in_one_line():
    status, _, err = qmk(
        "run", str(EXAMPLES / "teleport_guards.qvm.asm"), "--device", "benchmark_chain"
    )
    assert status == 2 and err.startswith("QD301") and "fix_x" in err and err.count("\n") == 1


def test_a_creg_never_measured_is_keyed_zeros_on_the_device_as_on_the_logical_machine(tmp_path):
    source = tmp_path / "unmeasured.qasm"
    source.write_text(
        'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[4];\ncreg c[4];\nh q[0];\ncx q[0],q[1];\n'
    )
    keyed = {}
    for where in ((), ("--device", "benchmark_chain")):
        status, out, err = qmk("run", str(source), "--shots", "64", "--seed", "5", "--json", *where)
        assert status == 0, err
        keyed[where] = json.loads(out)["counts"]
    assert keyed[()] == {"0000": 64}
    assert keyed[("--device", "benchmark_chain")] == {"0000": 64}
