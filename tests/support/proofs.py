"""What the solver of ``qmk validate --prove`` (qmk.qvm.prove) is checked against.

- :func:`run_faults`: a reference interpreter, independent of the solver's encoding: it
  runs a program's lifetimes, capabilities and owners on one valuation of its events
  (a node runs when its guard's terms hold; an event read before it is produced, or
  whose producer did not run, reads 0) and lists the faults it meets;
- :func:`reachable`: those faults over every valuation, by enumeration (2^k runs for k
  events): what the solver must find, no more and no less;
- :func:`guarded_programs`: a hypothesis strategy of well-formed programs whose guards
  make lifetimes and owners depend on the events (guarded allocations and frees, channel
  opens and closes, gates, measurements, tenants' qubits), the corpus the fuzz tests
  cross-check the verifier, the solver and the kernel's firewall on.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping
from typing import Any

from hypothesis import strategies as st

from qmk.qvm.graph import Graph, from_json
from qmk.qvm.ops import CAPABILITIES, NOT_ENTANGLING, OPS

NEW, LIVE, ENDED = "new", "live", "ended"
#: The code of each fault: (kind, use, state) -> code.
_CODE = {
    ("vqs", "opens", LIVE): "QV205",
    ("vqs", "closes", ENDED): "QV204",
    ("vqs", "closes", NEW): "QV203",
    ("vqs", "uses", ENDED): "QV202",
    ("vqs", "uses", NEW): "QV203",
    ("chs", "opens", LIVE): "QV403",
    ("chs", "closes", ENDED): "QV402",
    ("chs", "closes", NEW): "QV401",
    ("chs", "uses", ENDED): "QV402",
    ("chs", "uses", NEW): "QV401",
}
LEAKS = {"vqs": "QV207", "chs": "QV404"}
#: The codes of faults that are errors (leaks are warnings).
ERRORS = frozenset(_CODE.values()) | {"QV501", "QV504"}

Fault = tuple[str, int | None]


def run_faults(
    graph: Graph,
    valuation: Mapping[str, int],
    *,
    tenant: str = "self",
    bound: Collection[str] = (),
) -> set[Fault]:
    """The faults of one run: (code, node index), a leak's index None."""
    values: dict[str, int] = {}
    states: dict[str, dict[str, str]] = {
        "vqs": dict.fromkeys(graph.resources.vqs, NEW),
        "chs": dict.fromkeys(graph.resources.chs, NEW),
    }
    owner = dict.fromkeys(graph.resources.vqs, tenant)
    requested = set(graph.caps)
    found: set[Fault] = set()
    for index, node in enumerate(graph.nodes):
        if node.guard is not None and not all(
            values.get(t.event, 0) == t.equals for t in node.guard.terms
        ):
            continue
        for event in node.produces:
            values.setdefault(event, valuation.get(event, 0))
        spec = OPS[node.op]
        for kind in ("vqs", "chs"):
            use = "opens" if spec.opens == kind else "closes" if spec.closes == kind else "uses"
            for name in dict.fromkeys(getattr(node, kind)):
                state = states[kind][name]
                code = _CODE.get((kind, use, state))
                if code is not None:
                    found.add((code, index))
                elif use != "uses":
                    states[kind][name] = LIVE if use == "opens" else ENDED
        needed = ([spec.cap] if spec.cap else []) + [c for c in node.caps if c in CAPABILITIES]
        found.update(("QV501:" + cap, index) for cap in needed if cap not in requested)
        if node.op == "ALLOC_LQ":
            for q in node.vqs:
                owner[q] = (node.metadata or {}).get("tenant", tenant)
        elif (
            node.op not in NOT_ENTANGLING
            and len(node.vqs) >= 2
            and not (node.op == "OPEN_CHAN" and node.chs and node.chs[0] in bound)
            and len({owner[q] for q in node.vqs}) > 1
        ):
            found.add(("QV504", index))
    for kind, code in LEAKS.items():
        if LIVE in states[kind].values():
            found.add((code, None))
    return found


def valuations(graph: Graph) -> list[dict[str, int]]:
    """Every valuation of the events the program produces."""
    events = sorted({e for node in graph.nodes for e in node.produces})
    return [
        dict(zip(events, bits, strict=True))
        for bits in itertools.product((0, 1), repeat=len(events))
    ]


def reachable(graph: Graph, *, tenant: str = "self", bound: Collection[str] = ()) -> set[Fault]:
    """The faults of every run; a missing capability once, at the first node needing it
    that runs on some valuation (as the verifier and the solver report it)."""
    found: set[Fault] = set()
    for valuation in valuations(graph):
        found |= run_faults(graph, valuation, tenant=tenant, bound=bound)
    first: dict[str, int] = {}
    for code, index in sorted(
        (f for f in found if f[0].startswith("QV501:")), key=lambda f: f[1] or 0
    ):
        first.setdefault(code, index or 0)
    plain = {f for f in found if not f[0].startswith("QV501:")}
    return plain | {("QV501", index) for index in first.values()}


def runs_somewhere(graph: Graph) -> bool:
    """Whether every node runs on some valuation (no guard that can never hold)."""
    ran: set[int] = set()
    for valuation in valuations(graph):
        values: dict[str, int] = {}
        for index, node in enumerate(graph.nodes):
            if node.guard is None or all(
                values.get(t.event, 0) == t.equals for t in node.guard.terms
            ):
                ran.add(index)
                for event in node.produces:
                    values.setdefault(event, valuation.get(event, 0))
    return len(ran) == len(graph.nodes)


# ----------------------------------------------------------------------------- the corpus

QUBITS = ("q0", "q1", "q2")
CHANNELS = ("c0",)


@st.composite
def _guard(draw: st.DrawFn, produced: list[str]) -> dict[str, Any] | None:
    if not produced or draw(st.integers(0, 4)) < 2:
        return None
    terms = [
        {"event": draw(st.sampled_from(produced)), "equals": draw(st.integers(0, 1))}
        for _ in range(draw(st.integers(1, 2)))
    ]
    return terms[0] if len(terms) == 1 else {"all": terms}


@st.composite
def guarded_programs(draw: st.DrawFn, *, tenants: tuple[str, ...] = ("self",)) -> Graph:
    """A well-formed program whose guards decide lifetimes (and, with more ``tenants``,
    whose qubits are whose): each handle declared, each event produced once, before any
    guard reads it; faults are frequent, by design."""
    nodes: list[dict[str, Any]] = []
    produced: list[str] = []
    for index in range(draw(st.integers(2, 11))):
        kind = draw(
            st.sampled_from(
                ["alloc", "alloc", "free", "free", "gate", "gate2", "measure", "open", "close"]
            )
        )
        node: dict[str, Any] = {"id": f"n{index}"}
        pair = draw(st.lists(st.sampled_from(QUBITS), min_size=2, max_size=2, unique=True))
        if kind == "alloc":
            node.update(op="ALLOC_LQ", vqs=[pair[0]])
            who = draw(st.sampled_from(tenants))
            if who != "self":
                node["metadata"] = {"tenant": who}
        elif kind == "free":
            node.update(op="FREE_LQ", vqs=[pair[0]])
        elif kind == "gate":
            node.update(op=draw(st.sampled_from(["APPLY_H", "APPLY_X"])), vqs=[pair[0]])
        elif kind == "gate2":
            node.update(op="APPLY_CNOT", vqs=pair)
        elif kind == "measure":
            event = f"m{len(produced)}"
            node.update(op="MEASURE_Z", vqs=[pair[0]], produces=[event])
        elif kind == "open":
            node.update(op="OPEN_CHAN", vqs=pair, chs=["c0"])
        else:
            node.update(op="CLOSE_CHAN", chs=["c0"])
        guard = draw(_guard(produced))
        if guard is not None:
            node["guard"] = guard
        if kind == "measure":
            produced.append(node["produces"][0])
        nodes.append(node)
    caps = draw(st.sampled_from([["CAP_ALLOC", "CAP_LINK"], ["CAP_ALLOC"], ["CAP_LINK"]]))
    return from_json(
        {
            "version": "0.2",
            "program": {"nodes": nodes},
            "resources": {"vqs": list(QUBITS), "chs": list(CHANNELS), "events": produced},
            "caps": caps,
        }
    )
