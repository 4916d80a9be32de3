"""Proofs of a guarded program's properties under every valuation of its events
(``qmk validate --prove``), by the z3 SMT solver.

Guards (``{event, equals}`` and their conjunctions) make the set of nodes that run
depend on measurement outcomes. The verifier (:mod:`qmk.qvm.verify`) follows lifetimes
in list order and one guard per handle; this module decides, for every valuation of
the events at once, that a program keeps:

- **linearity**: no qubit or channel used before it is allocated (opened) or after it
  is freed (closed), none freed (closed) twice or allocated (opened) while live, none
  left live at the end (a warning, as the verifier's);
- **capabilities**: no node that can run needs a capability the graph does not request;
- **the entanglement firewall**: no node that can run joins qubits of two tenants (the
  ``tenant`` of the ``ALLOC_LQ`` that allocated each, in its ``metadata``; the submitter
  otherwise) but an ``OPEN_CHAN`` on a channel bound to them (``channels``).

**The encoding.** Each event ``e`` is a boolean, its measured value; what a guard reads
is that value where its producer ran, and 0 where it did not (the executor's records
start at 0). A node's run condition is the conjunction of its guard's terms (true
without a guard). Each handle's state after each node that names it is a formula: live
(and freed before) where the node ran and acted, as before where it did not. A fault is
a node's run condition and the state it meets that it cannot act on; a leak, a handle
live at the end. Each fault is one satisfiability question, skipped when it simplifies
to false (an unguarded program asks none). A model is a **counterexample valuation**,
given with the finding: the events the fault depends on, their values, and those not
produced on that run. Events a ``CALC`` computes are left free, a superset of the
values they take (a fault found only there names them).

>>> from qmk.qvm.asm import assemble
>>> program = assemble('''
... .caps CAP_ALLOC
... a: ALLOC_LQ vq:a
... h: APPLY_H vq:a
... m: MEASURE_Z vq:a, out:m
... q: ALLOC_LQ vq:q when ev:m == 1
... x: APPLY_X vq:q
... f: FREE_LQ vq:q when ev:m == 1
... fa: FREE_LQ vq:a
... ''')
>>> proof = prove(program)
>>> [(f.code, f.node_id) for f in proof.findings], proof.valuations
([('QV203', 'x')], ({'m': 0},))
>>> print(proof.findings[0])  # doctest: +NORMALIZE_WHITESPACE
QV203 use-before-alloc at node #4 'x' (APPLY_X): qubit 'q' is not allocated at this
node, on the run where m=0; allocate it with ALLOC_LQ before this node
>>> proof.proved
('capabilities', 'firewall')
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from qmk.qvm.codes import BY_NAME, Severity
from qmk.qvm.errors import FormatError
from qmk.qvm.graph import Graph, Node
from qmk.qvm.ops import CAPABILITIES, NOT_ENTANGLING, OPS
from qmk.qvm.verify import Finding

#: The properties a proof decides, in the order it reports them.
PROPERTIES = ("linearity", "capabilities", "firewall")
#: The longest the solver takes on one question (ms); past it the question is undecided.
QUESTION_MS = 10_000
#: The submitter's name where an ``ALLOC_LQ`` names no tenant.
SELF = "self"

_QUBIT = {
    "what": "qubit",
    "opens": "double-alloc",
    "closes_ended": "double-free",
    "closes_new": "use-before-alloc",
    "uses_ended": "use-after-free",
    "uses_new": "use-before-alloc",
    "leak": "qubit-leak",
    "live": "is live (allocated) already",
    "ended": "was freed before this node",
    "new": "is not allocated at this node",
}
_CHANNEL = {
    "what": "channel",
    "opens": "channel-double-open",
    "closes_ended": "channel-after-close",
    "closes_new": "channel-before-open",
    "uses_ended": "channel-after-close",
    "uses_new": "channel-before-open",
    "leak": "channel-leak",
    "live": "is open already",
    "ended": "was closed before this node",
    "new": "is not open at this node",
}

#: The keys of :data:`_QUBIT` and :data:`_CHANNEL` that name a fault.
_FAULTS = ("opens", "closes_ended", "closes_new", "uses_ended", "uses_new", "leak")
#: The verifier's codes the solver decides exactly, read from their names: each lifetime
#: fault of a qubit or a channel, the guarded lifetimes the verifier cannot follow (which
#: the solver follows on every valuation) and the capabilities. ``qmk validate --prove``
#: takes the solver's verdict in place of the verifier's on these; the rest are the
#: verifier's alone.
DECIDED: frozenset[str] = frozenset(
    BY_NAME[name].code
    for name in (
        *(words[key] for words in (_QUBIT, _CHANNEL) for key in _FAULTS),
        "guarded-lifetime",
        "capability-missing",
    )
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Proof:
    """What :func:`prove` found.

    Attributes:
        findings: each fault the solver found, in node order, coded as the verifier codes
            it (``QV2xx``, ``QV4xx``, ``QV501``; ``QV504`` for the firewall), its message
            ending with its counterexample valuation, e.g. ``m0=1, m1=0, m2 not produced``.
        valuations: each finding's valuation: event -> 0 or 1, or None (not produced).
        proved: the properties no valuation breaks (:data:`PROPERTIES`).
        undecided: questions the solver gave up on within :data:`QUESTION_MS`.
        questions: how many questions were put to the solver.
        seconds: the wall time of the proof.
    """

    findings: tuple[Finding, ...]
    valuations: tuple[Mapping[str, int | None], ...]
    proved: tuple[str, ...]
    undecided: int = 0
    questions: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether no valuation breaks a property (warnings aside)."""
        return not any(f.is_error for f in self.findings) and not self.undecided

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "proved": list(self.proved),
            "findings": [
                {**f.to_json(), "valuation": dict(v)}
                for f, v in zip(self.findings, self.valuations, strict=True)
            ],
            "undecided": self.undecided,
            "questions": self.questions,
            "seconds": self.seconds,
        }


def available() -> bool:
    """Whether the solver (``z3-solver``, the ``prove`` extra) is installed."""
    try:
        import z3  # noqa: F401
    except ImportError:
        return False
    return True


def _z3() -> Any:
    try:
        import z3
    except ImportError:
        raise FormatError.of(
            "prover-unavailable",
            "qmk validate --prove needs the z3 SMT solver: "
            "pip install 'quantum-microkernel[prove]' (z3-solver)",
        ) from None
    return z3


@dataclass(slots=True)
class _State:
    """A handle's state as formulas: live now; ended (freed, and not started since)."""

    live: Any
    ended: Any
    owner: Any = None  # a qubit's tenant (an index into the owners)


@dataclass(slots=True)
class _Encoding:
    """The program as formulas over its events (see the module docstring)."""

    z3: Any
    graph: Graph
    produced: dict[str, Any] = field(default_factory=dict)  # event -> its value as read
    measured: dict[str, Any] = field(default_factory=dict)  # event -> its free boolean
    producer: dict[str, int] = field(default_factory=dict)
    runs: list[Any] = field(default_factory=list)  # node -> its run condition

    def event(self, name: str) -> Any:
        """What a reader of ``name`` sees (0 where it is not produced yet)."""
        return self.produced.get(name, self.z3.BoolVal(False))

    def run_condition(self, node: Node) -> Any:
        z3 = self.z3
        if node.guard is None:
            return z3.BoolVal(True)
        terms = [
            self.event(t.event) if t.equals else z3.Not(self.event(t.event))
            for t in node.guard.terms
        ]
        return z3.simplify(z3.And(*terms))

    def build(self) -> None:
        """Every node's run condition, and each event's value as read after it."""
        z3 = self.z3
        for index, node in enumerate(self.graph.nodes):
            run = self.run_condition(node)
            self.runs.append(run)
            for event in node.produces:
                if event in self.producer:  # produced twice: the verifier's QV301
                    continue
                value = z3.Bool(event)
                self.measured[event] = value
                self.producer[event] = index
                self.produced[event] = z3.simplify(z3.And(run, value))


class _Prover:
    """The questions of one proof, and what the solver answered."""

    def __init__(self, graph: Graph, *, tenant: str, channels: Collection[str]) -> None:
        self.z3 = z3 = _z3()
        self.graph = graph
        self.tenant = tenant
        self.bound = frozenset(channels)
        self.encoding = _Encoding(z3=z3, graph=graph)
        self.encoding.build()
        self.solver = z3.Solver()
        self.solver.set("timeout", QUESTION_MS)
        self.findings: list[tuple[int | None, Finding, dict[str, int | None]]] = []
        self.broken: set[str] = set()
        self.questions = 0
        self.undecided = 0

    # ------------------------------------------------------------------ the solver

    def ask(self, fault: Any) -> dict[str, int | None] | None:
        """A valuation that makes ``fault`` true, or None (none: proved)."""
        z3 = self.z3
        fault = z3.simplify(fault)
        if z3.is_false(fault):
            return None
        self.questions += 1
        self.solver.push()
        try:
            self.solver.add(fault)
            answer = self.solver.check()
            if answer == z3.unknown:
                self.undecided += 1
                return None
            if answer != z3.sat:
                return None
            return self._valuation(self.solver.model(), fault)
        finally:
            self.solver.pop()

    def _valuation(self, model: Any, fault: Any) -> dict[str, int | None]:
        """The events ``fault`` reads (through their producers' guards too), each with
        its value on the model's run, or None where it is not produced there."""
        z3, encoding = self.z3, self.encoding
        names = {str(v) for v in _variables(z3, fault)}
        out: dict[str, int | None] = {}
        for event in self.graph.resources.events:
            if event not in names or event not in encoding.measured:
                continue
            read = encoding.produced[event]
            producer_ran = model.eval(encoding.runs[encoding.producer[event]], True)
            if z3.is_true(producer_ran):
                out[event] = 1 if z3.is_true(model.eval(read, True)) else 0
            else:
                out[event] = None
        return out

    def report(
        self, name: str, message: str, index: int | None, valuation: Mapping[str, int | None]
    ) -> None:
        code = BY_NAME[name]
        node = self.graph.nodes[index] if index is not None else None
        self.findings.append(
            (
                index,
                Finding(
                    code=code.code,
                    name=name,
                    severity=code.severity or Severity.ERROR,
                    message=f"{message}, on the run where {_text(valuation)}; {code.fix}",
                    node_index=index,
                    node_id=None if node is None else node.id,
                    op=None if node is None else node.op,
                ),
                dict(valuation),
            )
        )

    # ------------------------------------------------------------------ the properties

    def linearity(self) -> None:
        z3 = self.z3
        for kind, words, declared in (
            ("vqs", _QUBIT, self.graph.resources.vqs),
            ("chs", _CHANNEL, self.graph.resources.chs),
        ):
            states = {name: _State(z3.BoolVal(False), z3.BoolVal(False)) for name in declared}
            for index, node in enumerate(self.graph.nodes):
                spec = OPS.get(node.op)
                if spec is None:
                    continue
                use = "opens" if spec.opens == kind else "closes" if spec.closes == kind else "uses"
                for name in dict.fromkeys(getattr(node, kind)):
                    state = states.get(name)
                    if state is not None:
                        self._step(words, name, index, use, state)
            for name, state in states.items():
                valuation = self.ask(state.live)
                if valuation is not None:
                    self.report(
                        words["leak"],
                        f"{words['what']} {name!r} is still {'open' if kind == 'chs' else 'live'} "
                        "at the end",
                        None,
                        valuation,
                    )

    def _step(
        self, words: Mapping[str, str], name: str, index: int, use: str, state: _State
    ) -> None:
        """The faults of node ``index``'s ``use`` of a handle, and its state after."""
        z3 = self.z3
        run = self.encoding.runs[index]
        live, ended = state.live, state.ended
        dead = z3.And(run, z3.Not(live))
        if use == "opens":
            faults = [("opens", z3.And(run, live), words["live"])]
            state.live, state.ended = z3.Or(live, run), z3.And(ended, z3.Not(run))
        elif use == "closes":
            faults = [
                ("closes_ended", z3.And(dead, ended), words["ended"]),
                ("closes_new", z3.And(dead, z3.Not(ended)), words["new"]),
            ]
            acted = z3.And(run, live)
            state.live, state.ended = z3.And(live, z3.Not(run)), z3.Or(ended, acted)
        else:
            faults = [
                ("uses_ended", z3.And(dead, ended), words["ended"]),
                ("uses_new", z3.And(dead, z3.Not(ended)), words["new"]),
            ]
        state.live, state.ended = z3.simplify(state.live), z3.simplify(state.ended)
        for key, fault, how in faults:
            valuation = self.ask(fault)
            if valuation is not None:
                self.broken.add("linearity")
                self.report(words[key], f"{words['what']} {name!r} {how}", index, valuation)

    def capabilities(self) -> None:
        requested = set(self.graph.caps)
        first: dict[str, tuple[int, dict[str, int | None]]] = {}
        for index, node in enumerate(self.graph.nodes):
            spec = OPS.get(node.op)
            needed = [] if spec is None or spec.cap is None else [spec.cap]
            needed += [c for c in node.caps if c in CAPABILITIES]
            missing = [c for c in needed if c not in requested and c not in first]
            if not missing:
                continue
            valuation = self.ask(self.encoding.runs[index])
            if valuation is None:
                continue
            for cap in missing:
                first[cap] = (index, valuation)
        for cap, (index, valuation) in sorted(first.items(), key=lambda item: item[1][0]):
            self.broken.add("capabilities")
            node = self.graph.nodes[index]
            self.report(
                "capability-missing",
                f"{node.op} needs {cap}, which the graph's caps do not request, and runs",
                index,
                valuation,
            )

    def firewall(self) -> None:
        z3 = self.z3
        owners = [self.tenant]
        owner = {q: z3.IntVal(0) for q in self.graph.resources.vqs}
        for index, node in enumerate(self.graph.nodes):
            run = self.encoding.runs[index]
            if node.op == "ALLOC_LQ":
                who = (node.metadata or {}).get("tenant", self.tenant)
                who = who if isinstance(who, str) else repr(who)
                if who not in owners:
                    owners.append(who)
                for q in node.vqs:
                    if q in owner:
                        owner[q] = z3.simplify(z3.If(run, z3.IntVal(owners.index(who)), owner[q]))
                continue
            if node.op in NOT_ENTANGLING or len(node.vqs) < 2:
                continue
            if node.op == "OPEN_CHAN" and node.chs and node.chs[0] in self.bound:
                continue
            held = [owner[q] for q in node.vqs if q in owner]
            apart = [z3.Not(a == b) for i, a in enumerate(held) for b in held[i + 1 :]]
            if not apart:
                continue
            valuation = self.ask(z3.And(run, z3.Or(*apart)))
            if valuation is not None:
                self.broken.add("firewall")
                self.report(
                    "tenants-entangled",
                    f"{node.op} joins qubits of two tenants without a channel bound to them",
                    index,
                    valuation,
                )

    def proof(self, started: float) -> Proof:
        ordered = sorted(
            self.findings, key=lambda item: len(self.graph.nodes) if item[0] is None else item[0]
        )
        return Proof(
            findings=tuple(f for _, f, _ in ordered),
            valuations=tuple(v for _, _, v in ordered),
            proved=tuple(p for p in PROPERTIES if p not in self.broken),
            undecided=self.undecided,
            questions=self.questions,
            seconds=round(time.monotonic() - started, 6),
        )


def prove(graph: Graph, *, tenant: str = SELF, channels: Collection[str] = ()) -> Proof:
    """Decide :data:`PROPERTIES` for ``graph`` under every valuation of its events.

    Args:
        graph: a program the verifier's format checks passed (its ops known, operands
            declared, events produced once: the verifier's other findings are its own).
        tenant: who submits it (the owner of qubits whose ``ALLOC_LQ`` names none).
        channels: the graph's channels bound to a kernel channel (``policy.channels``):
            an ``OPEN_CHAN`` on one of them may join two tenants' qubits.

    Returns:
        The :class:`Proof`.

    Raises:
        FormatError: ``QF013 prover-unavailable``: z3 is not installed.
    """
    started = time.monotonic()
    prover = _Prover(graph, tenant=tenant, channels=channels)
    prover.linearity()
    prover.capabilities()
    prover.firewall()
    return prover.proof(started)


def _variables(z3: Any, expression: Any) -> Iterator[Any]:
    """The free boolean variables of ``expression``."""
    seen: set[int] = set()
    stack = [expression]
    while stack:
        node = stack.pop()
        key = node.get_id()
        if key in seen:
            continue
        seen.add(key)
        if z3.is_const(node) and node.decl().kind() == z3.Z3_OP_UNINTERPRETED:
            yield node
        else:
            stack.extend(node.children())


def _text(valuation: Mapping[str, int | None]) -> str:
    """``m0=1, m1=0, m2 not produced`` (``any valuation`` when no event decides it)."""
    if not valuation:
        return "any values of the events"
    return ", ".join(
        f"{event} not produced" if value is None else f"{event}={value}"
        for event, value in valuation.items()
    )


__all__ = ["DECIDED", "PROPERTIES", "Proof", "available", "prove"]
