"""Every op of the QVM op table through the neutral-atom compiler: it compiles, and its device
program samples what the executor samples, or the compiler refuses it with the code this file
expects for it. An op added to the table is walked here at once: it must compile and agree,
or be listed in :data:`REFUSED` with its code.

Each op acts on an entangled, rotated state of three qubits, between preparation and a Z
measurement of every qubit. Statistics: chi-square homogeneity of the device's counts (run
noiseless) against ``qmk.run``'s at p > 1e-4 / (ops in the table), at the stated seeds.
"""

from __future__ import annotations

from typing import Any

import pytest

import qmk
from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.compile import compile_program, run_program
from qmk.devices.neutral_atom.lowering import refusal
from qmk.qvm.graph import Node, from_json
from qmk.qvm.ops import OPS, OpSpec
from support.frontends import homogeneity_p, tvd

SHOTS = 3000
ALPHA = 1e-4 / len(OPS)
DEVICE = "ideal_small_array"

#: The ops the device cannot carry out: each is refused with this code, and the node
#: named is of the op given (a channel op needs an OPEN_CHAN before it, refused first).
REFUSED: dict[str, tuple[str, str]] = {
    "COND_PAULI": ("QD301", "COND_PAULI"),
    "OPEN_CHAN": ("QD301", "OPEN_CHAN"),
    "USE_CHAN": ("QD301", "OPEN_CHAN"),
    "CLOSE_CHAN": ("QD301", "OPEN_CHAN"),
    "CALC": ("QD301", "CALC"),
    "HALT": ("QD301", "HALT"),
    "NOISE": ("QD301", "NOISE"),
    "NOISY_MEASURE": ("QD301", "NOISY_MEASURE"),
}

#: A value for each required argument of any op.
ARGUMENTS: dict[str, Any] = {
    "theta": 0.9,
    "angle": 0.4,
    "mask": "X",
    "type": "bool",
    "expr": "True",
    "message": "stop",
    "coords": [1.0, 2.0],
    "rec": [-1],
    "index": 0,
    "channel": "X_ERROR",
    "p": [0.25],
    "instruction": "M",
}

QUBITS = ("q0", "q1", "q2")


def _node(id_: str, op: str, vqs: tuple[str, ...] = (), **fields: Any) -> dict[str, Any]:
    return {"id": id_, "op": op, "vqs": list(vqs), **fields}


def program_with(spec: OpSpec) -> dict[str, Any]:
    """A program that prepares an entangled state, applies ``spec`` once (an ALLOC_LQ or
    FREE_LQ is the program's own), and measures every qubit."""
    nodes: list[dict[str, Any]] = [
        _node("alloc", "ALLOC_LQ", QUBITS, args={"n": 3}),
        _node("ry", "APPLY_RY", ("q0",), args={"theta": 0.7}),
        _node("rx", "APPLY_RX", ("q1",), args={"theta": 1.1}),
        _node("h", "APPLY_H", ("q2",)),
        _node("cx", "APPLY_CNOT", ("q0", "q2")),
    ]
    events: list[str] = []
    chs: list[str] = []
    caps = {"CAP_ALLOC"}
    if spec.inputs.low:
        nodes.append(_node("pre", "MEASURE_Z", ("q1",), produces=["pre"]))
        events.append("pre")
    if spec.chs.low and spec.name != "OPEN_CHAN":
        nodes.append(_node("open", "OPEN_CHAN", ("q1", "q2"), chs=["c0"]))
        chs, caps = ["c0"], caps | {"CAP_LINK"}
    if spec.name not in ("ALLOC_LQ", "FREE_LQ"):
        node = _node("op", spec.name, QUBITS[: spec.vqs.low])
        node["args"] = {a.name: ARGUMENTS[a.name] for a in spec.args if a.required}
        if spec.chs.low:
            node["chs"], chs = ["c0"], ["c0"]
        if spec.inputs.low:
            node["inputs"] = ["pre"] * spec.inputs.low
        node["produces"] = [f"op{i}" for i in range(spec.produces.low)]
        events += node["produces"]
        nodes.append(node)
        caps |= {spec.cap} if spec.cap else set()
    if chs and spec.name != "CLOSE_CHAN":
        nodes.append(_node("close", "CLOSE_CHAN", chs=chs))
    for q in QUBITS:
        nodes.append(_node(f"m_{q}", "MEASURE_Z", (q,), produces=[f"m_{q}"]))
        events.append(f"m_{q}")
    nodes.append(_node("free", "FREE_LQ", QUBITS))
    return {
        "version": "0.2",
        "program": {"nodes": nodes},
        "resources": {"vqs": list(QUBITS), "chs": chs, "events": events},
        "caps": sorted(caps),
    }


@pytest.mark.parametrize(
    "spec", [s for s in OPS.values() if s.name not in REFUSED], ids=lambda s: s.name
)
def test_every_op_the_device_carries_out_compiles_and_samples_what_the_executor_does(spec):
    graph = from_json(program_with(spec))
    job, report = compile_program(graph, DEVICE)
    assert report.gates_before[spec.name] >= 1
    assert job["program"][0]["op"] == "AllocArray" and job["program"][-1]["op"] == "Measure"
    seed = 300 + list(OPS).index(spec.name)
    device = run_program(graph, DEVICE, shots=SHOTS, seed=seed, noiseless=True)
    reference = qmk.run(graph, shots=SHOTS, seed=seed, noise=False)
    assert {len(key) for key in device.counts} == {len(graph.resources.events)}
    p = homogeneity_p(device.counts, reference.counts)
    assert p > ALPHA, f"{spec.name}: p={p:.2e}, tvd={tvd(device.counts, reference.counts):.3f}"


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_every_op_the_device_cannot_carry_out_is_refused_with_its_code_naming_the_node(name):
    code, refused_op = REFUSED[name]
    graph = from_json(program_with(OPS[name]))
    with pytest.raises(DeviceError) as caught:
        compile_program(graph, DEVICE)
    assert caught.value.code == code
    assert caught.value.details["op"] == refused_op
    assert caught.value.details["node"] in ("op", "open")
    assert refused_op in str(caught.value)
    # the op itself, wherever it stands, is one the device refuses
    node = Node(id="n", op=name, vqs=QUBITS[: OPS[name].vqs.low], chs=("c",) * OPS[name].chs.low)
    assert refusal(node) is not None


def test_the_walk_covers_the_whole_op_table():
    walked = {s.name for s in OPS.values() if s.name not in REFUSED} | set(REFUSED)
    assert walked == set(OPS)
    assert set(REFUSED) <= set(OPS), "a refused op that is no longer in the table"
