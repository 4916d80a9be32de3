"""The plan's schedule is ASAP by the semantics, for any program: each step starts at the
latest of the last fence, its qubits' clocks and the times of the events it reads
(guards and event operands), and ends its op's cycles on its first qubit's code later;
a fence waits for everything before it. Checked against that rule, written out here,
on seeded programs with guards, event operands, magic states, teleported CNOTs, wide
gates and one or two codes, under noise or none."""

from __future__ import annotations

import numpy as np
import pytest

from qmk.execution.plan import build_plan
from qmk.execution.request import canonical_profile
from qmk.qec import logical_model
from qmk.qvm.graph import Graph, Guard, GuardTerm, Node, Resources
from qmk.qvm.verify import verify

QUBIT = "qubit_gate_ns_e3"
DEFAULT = "logical:surface_code(d=9)"


def random_program(seed: int, rows: int, *, profiles: tuple[str | None, str | None]) -> Graph:
    """A seeded program of two allocations (of ``profiles``), then gates, measurements,
    guarded gates, COND_PAULIs, magic states, teleported CNOTs and fences, then frees."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 8))
    cut = int(rng.integers(1, n))
    names = [f"q{i}" for i in range(n)]
    nodes: list[Node] = []
    for part, profile in zip((names[:cut], names[cut:]), profiles, strict=True):
        args: dict[str, object] = {"n": len(part)}
        if profile is not None:
            args["profile"] = profile
        nodes.append(Node(id=f"a{len(nodes)}", op="ALLOC_LQ", vqs=tuple(part), args=args))
    events: list[str] = []

    def some(k: int) -> tuple[str, ...]:
        return tuple(str(q) for q in rng.choice(names, size=k, replace=False))

    for k in range(rows):
        r = rng.random()
        node_id = f"s{k}"
        if r < 0.04:
            nodes.append(Node(id=node_id, op="FENCE_EPOCH"))
        elif r < 0.16:
            event = f"m{len(events)}"
            events.append(event)
            nodes.append(Node(id=node_id, op="MEASURE_Z", vqs=some(1), produces=(event,)))
        elif r < 0.26 and events:
            reads = tuple(str(e) for e in rng.choice(events, size=min(2, len(events))))
            guard = Guard(
                terms=tuple(GuardTerm(event=e, equals=int(rng.integers(2))) for e in reads),
                conjunction=True,
            )
            nodes.append(Node(id=node_id, op="APPLY_H", vqs=some(1), guard=guard))
        elif r < 0.32 and events:
            reads = (str(rng.choice(events)),)
            nodes.append(
                Node(id=node_id, op="COND_PAULI", vqs=some(1), inputs=reads, args={"mask": "X"})
            )
        elif r < 0.36:
            nodes.append(Node(id=node_id, op="INJECT_T_STATE", vqs=some(1)))
        elif r < 0.40:
            nodes.append(Node(id=node_id, op="TELEPORT_CNOT", vqs=some(2)))
        else:
            op = str(rng.choice(["APPLY_H", "APPLY_CNOT", "APPLY_CCX", "APPLY_T"]))
            width = {"APPLY_CNOT": 2, "APPLY_CCX": 3}.get(op, 1)
            nodes.append(Node(id=node_id, op=op, vqs=some(width)))
    nodes.append(Node(id="f0", op="FREE_LQ", vqs=tuple(names[: n // 2])))
    nodes.append(Node(id="f1", op="FREE_LQ", vqs=tuple(names[n // 2 :])))
    return Graph(
        nodes=tuple(nodes),
        resources=Resources(vqs=tuple(names), events=tuple(events)),
        caps=("CAP_ALLOC", "CAP_MAGIC", "CAP_TELEPORT"),
    )


def asap(graph: Graph) -> tuple[list[tuple[float, float]], float]:
    """Each node's start and end by the rule of the module, and the program's end."""
    models: dict[str, object] = {}

    def cycles(profile: str, op: str) -> float:
        model = models.get(profile) or models.setdefault(profile, logical_model(profile, QUBIT))
        return float(model.op_cycles(op))  # type: ignore[attr-defined]

    clock: dict[str, float] = {}
    event_time: dict[str, float] = {}
    profile_of: dict[str, str] = {}
    fence = last = 0.0
    timing: list[tuple[float, float]] = []
    for node in graph.nodes:
        if node.op == "FENCE_EPOCH":
            fence = max([fence, last, *clock.values()])
            timing.append((fence, fence))
            continue
        if node.op == "ALLOC_LQ":
            profile = canonical_profile(str(node.args.get("profile") or DEFAULT))
            for q in node.vqs:
                profile_of[q], clock[q] = profile, fence
        reads = (*node.inputs, *node.guard_events)
        start = max([fence, *(clock[q] for q in node.vqs), *(event_time[e] for e in reads)])
        end = start + cycles(profile_of[node.vqs[0]], node.op)
        for q in node.vqs:
            clock[q] = end
        for e in node.produces:
            event_time[e] = end
        last = max(last, end)
        if node.op == "FREE_LQ":
            for q in node.vqs:
                del clock[q]
        timing.append((start, end))
    return timing, max([last, fence, *clock.values()])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("noise", [True, False])
@pytest.mark.parametrize(
    "profiles",
    [(None, None), ("logical:surface_code(d=7)", None), ("logical:surface_code(d=7)",) * 2],
)
def test_a_programs_schedule_is_asap_over_its_qubits_events_and_fences(
    seed: int, noise: bool, profiles: tuple[str | None, str | None]
):
    graph = random_program(seed, 250, profiles=profiles)
    program = verify(graph)
    plan = build_plan(program, noise=noise, qubit=QUBIT, default_profile=DEFAULT)
    timing, end = asap(graph)
    assert list(plan.timing) == timing
    assert plan.logical_cycles == end
    assert plan.guarded
    assert plan.magic_states == sum(node.op == "INJECT_T_STATE" for node in graph.nodes)
    assert plan.teleports == sum(node.op == "TELEPORT_CNOT" for node in graph.nodes)


def test_a_program_without_guards_plans_unguarded():
    graph = random_program(3, 40, profiles=(None, None))
    kept = tuple(n for n in graph.nodes if n.guard is None and not n.inputs)
    plan = build_plan(
        verify(Graph(nodes=kept, resources=graph.resources, caps=graph.caps)),
        noise=False,
        qubit=QUBIT,
        default_profile=DEFAULT,
    )
    assert not plan.guarded
