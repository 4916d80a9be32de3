"""QVM programs written out as OpenQASM 3: ``qmk qasm FILE`` and :func:`to_qasm3`.

Every op of the op table (:data:`qmk.qvm.ops.OPS`) has one entry in :data:`LOWERINGS`
saying what it becomes; a test walks the op table, so a new op fails until it has
one. What the writer produces:

- **Qubits.** One register ``qubit[W] q;``. Each allocation takes the lowest free
  slot of ``q``; a slot freed in the middle of the program is ``reset`` and reused, so
  ``W`` is the program's peak of live qubits (plus two while a Werner channel is
  prepared). Declared qubits start in ``|0>``, as Qiskit and QMK read them; a comment
  at each ``ALLOC_LQ`` names the handles and the code profile.
- **Events.** One register ``bit[E] m;``: ``m[k]`` is the k-th event of
  ``resources.events``. A bit nothing wrote reads 0 (an event a skipped node did
  not produce), as in QVM. Result keys of the written program are Qiskit's: ``m``
  with bit 0 rightmost, i.e. QMK's default key (first event leftmost) reversed; a
  program's own key layout (``metadata.output``) is not carried over.
- **Composite ops** (an ``expansion`` in the op table: ``MEASURE_ANGLE``,
  ``MEASURE_BELL``, ``INJECT_T_STATE``, ``OPEN_CHAN``, ...) are written from it, step
  by step, as the executor carries them out. A gate is written by its name here
  (:data:`QASM_GATES`), a Z measurement as ``m[k] = measure q;``, a reset as
  ``reset``. ``undo`` is the adjoints of the gates before it, last first
  (:data:`ADJOINTS`). Werner noise is written exactly, by two environment qubits that
  control X and Z on the qubit and are then reset. A change of an expansion in the
  table changes what is written, and the docs' text of it.
- **Guards** become nested ``if (m[k] == true|false) { ... }`` (one ``if`` per term of a
  conjunction: Qiskit's importer reads neither ``&&`` nor ``bit == 1``).

Constructs OpenQASM 3 cannot express are :class:`~qmk.frontends.errors.FrontendError`
``QL109 not-expressible`` naming the node, never dropped: qubits of another tenant
(an ``ALLOC_LQ`` whose metadata names a ``tenant``, the far side of an inter-tenant
channel), and an op the table has no lowering for.

>>> from qmk.qvm.asm import assemble
>>> print(to_qasm3(assemble('''
... .caps CAP_ALLOC
... a: ALLOC_LQ vq:q0, vq:q1
... h: APPLY_H vq:q0
... c: APPLY_CNOT vq:q0, vq:q1
... m: MEASURE_X vq:q1, out:m1
... x: APPLY_RZ vq:q0, theta=0.25 when ev:m1 == 1
... f: FREE_LQ vq:q0, vq:q1
... ''')))
OPENQASM 3.0;
include "stdgates.inc";
// Written by QMK from a QVM program (qmk qasm). Events: m[0] = m1
qubit[2] q;
bit[1] m;
// ALLOC_LQ a: q0 -> q[0], q1 -> q[1]
h q[0];
cx q[0], q[1];
h q[1];
m[0] = measure q[1];
h q[1];
if (m[0] == true) { rz(0.25) q[0]; }
// FREE_LQ f: q[0], q[1] left as they are (the end of the program)
<BLANKLINE>
"""

from __future__ import annotations

import ast
import functools
import heapq
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from qmk.frontends.errors import FrontendError
from qmk.gates import GATES
from qmk.qvm import classical
from qmk.qvm.expansions import EXPANSIONS, Micro, MicroStep, arg_value
from qmk.qvm.graph import Graph, Node
from qmk.qvm.ops import OPS, Exec, OpSpec
from qmk.qvm.verify import VerifiedProgram, verify

#: Engine gate (``OpSpec.gate``) -> its OpenQASM 3 name, from the gate records of the op
#: table's gates: ``stdgates.inc``'s, or one of :data:`GATE_DEFINITIONS`. A gate op
#: whose gate has no OpenQASM 3 name has no lowering.
QASM_GATES: Mapping[str, str] = MappingProxyType(
    {
        spec.gate: name
        for spec in OPS.values()
        if spec.kind is Exec.GATE
        and spec.gate
        and (name := GATES[spec.gate].names.first("qasm3")) is not None
    }
)

#: Gates ``stdgates.inc`` lacks, defined at the top of a program that uses them (their
#: records' ``qasm3_definition``).
GATE_DEFINITIONS: Mapping[str, str] = MappingProxyType(
    {
        name: definition
        for gate in QASM_GATES
        if (definition := GATES[gate].names.qasm3_definition) is not None
        and (name := GATES[gate].names.first("qasm3")) is not None
    }
)

#: Basis -> (gates before a Z measurement, gates after it that restore the basis).
BASIS_CHANGES: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = MappingProxyType(
    {"Z": ((), ()), "X": (("h",), ("h",)), "Y": (("sdg", "h"), ("h", "s"))}
)

#: Engine gate -> (its adjoint's engine gate, whether the adjoint negates the gate's
#: parameter), from the op table's inverses: what an expansion's ``undo`` writes.
ADJOINTS: Mapping[str, tuple[str, bool]] = MappingProxyType(
    {
        spec.gate: (inverse, bool(spec.inverse_negates))
        for spec in OPS.values()
        if spec.kind is Exec.GATE
        and spec.gate
        and spec.inverse
        and (inverse := OPS[spec.inverse].gate)
    }
)

#: The metadata key of an ``ALLOC_LQ`` whose qubits belong to another tenant.
TENANT_KEY = "tenant"

_PLAIN = re.compile(r"[A-Za-z0-9_.:()=,+-]+")

_Write = Callable[["_Writer", int, Node], list[str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Lowering:
    """How one op is written: ``text`` (what it becomes, for the docs) and ``write``."""

    op: str
    text: str
    write: _Write


def _number(value: Any) -> str:
    """A float as the shortest OpenQASM literal that reads back as the same float."""
    return repr(float(value))


def _quote(text: Any) -> str:
    """User text (ids, tags, profiles) safe in a ``//`` comment: as it is when it is one
    plain word, else JSON-quoted (one line whatever it holds)."""
    text = str(text)
    return text if _PLAIN.fullmatch(text) else json.dumps(text, ensure_ascii=False)


class _Writer:
    """Walks a verified program once, in list order, writing statements."""

    def __init__(self, program: VerifiedProgram) -> None:
        graph = program.graph
        self.graph = graph
        self.bit = {event: k for k, event in enumerate(graph.resources.events)}
        self.slot: dict[str, int] = {}
        self.pool: list[int] = []  # free slots, all in |0>: a min-heap
        self.width = 0
        self.defined: dict[str, str] = {}
        self.trailing = _trailing_start(graph.nodes)
        #: The variables CALC nodes were written into: their events -> (type, name).
        self.variables: dict[tuple[str, ...], tuple[classical.CType, str]] = {}

    # ------------------------------------------------------------------ helpers

    def q(self, handle: str) -> str:
        return f"q[{self.slot[handle]}]"

    def m(self, event: str) -> str:
        return f"m[{self.bit[event]}]"

    def take(self) -> int:
        if self.pool:
            return heapq.heappop(self.pool)
        self.width += 1
        return self.width - 1

    def give_back(self, slot: int) -> None:
        heapq.heappush(self.pool, slot)

    def gate(self, name: str, qubits: Sequence[str], params: Sequence[float] = ()) -> str:
        qasm = QASM_GATES[name]
        if qasm in GATE_DEFINITIONS:
            self.defined[qasm] = GATE_DEFINITIONS[qasm]
        args = f"({', '.join(_number(p) for p in params)})" if params else ""
        return f"{qasm}{args} {', '.join(qubits)};"

    # ------------------------------------------------------------------ program

    def write(self) -> str:
        body: list[str] = []
        for index, node in enumerate(self.graph.nodes):
            lowering = LOWERINGS.get(node.op)
            if lowering is None:
                raise _not_expressible(
                    index, node, f"QMK has no OpenQASM 3 lowering for {node.op} yet"
                )
            body.extend(_guarded(self, node, lowering.write(self, index, node)))
        if self.width == 0:
            body = [
                "// FENCE_EPOCH: a barrier (the program has no qubits)" if s == "barrier q;" else s
                for s in body
            ]
        events = ", ".join(f"m[{k}] = {_quote(e)}" for e, k in self.bit.items())
        head = [
            "OPENQASM 3.0;",
            'include "stdgates.inc";',
            "// Written by QMK from a QVM program (qmk qasm)."
            + (f" Events: {events}" if events else ""),
        ]
        if self.graph.description:
            head.append(f"// description: {_quote(self.graph.description)}")
        head.extend(self.defined.values())
        if self.width:
            head.append(f"qubit[{self.width}] q;")
        if self.bit:
            head.append(f"bit[{len(self.bit)}] m;")
        return "\n".join(head + body) + "\n"

    # ------------------------------------------------------------------ lowerings

    def alloc(self, index: int, node: Node) -> list[str]:
        meta = node.metadata or {}
        if TENANT_KEY in meta:
            raise _not_expressible(
                index,
                node,
                f"its qubits belong to tenant {_quote(meta[TENANT_KEY])}: an OpenQASM 3 "
                "program has one owner, so inter-tenant qubits and channels cannot be written",
            )
        for handle in node.vqs:
            self.slot[handle] = self.take()
        names = ", ".join(f"{_quote(h)} -> {self.q(h)}" for h in node.vqs)
        profile = node.args.get("profile")
        return [
            f"// ALLOC_LQ {_quote(node.id)}: {names}" + (f" ({_quote(profile)})" if profile else "")
        ]

    def free(self, index: int, node: Node) -> list[str]:
        slots = [self.slot.pop(h) for h in node.vqs]
        shown = ", ".join(f"q[{s}]" for s in slots)
        if index >= self.trailing:
            return [
                f"// FREE_LQ {_quote(node.id)}: {shown} left as they are (the end of the program)"
            ]
        if node.guard is None:  # a slot a guard may have left unfreed is never reused
            for s in slots:
                self.give_back(s)
        note = f"// FREE_LQ {_quote(node.id)}: {shown} reset, for later allocations to reuse"
        return [note, *(f"reset q[{s}];" for s in slots)]

    def reset(self, index: int, node: Node) -> list[str]:
        return [f"reset {self.q(node.vqs[0])};"]

    def apply_gate(self, index: int, node: Node) -> list[str]:
        spec = OPS[node.op]
        params = [float(node.args[a.name]) for a in spec.args]
        return [self.gate(spec.gate or "", [self.q(h) for h in node.vqs], params)]

    def measure(self, index: int, node: Node) -> list[str]:
        q = self.q(node.vqs[0])
        before, after = BASIS_CHANGES[OPS[node.op].basis or "Z"]
        return [
            *(self.gate(g, [q]) for g in before),
            f"{self.m(node.produces[0])} = measure {q};",
            *(self.gate(g, [q]) for g in after),
        ]

    def cond_pauli(self, index: int, node: Node) -> list[str]:
        mask = str(node.args["mask"])
        if mask == "I":
            return [f"// COND_PAULI {_quote(node.id)}: mask I changes nothing"]
        # P applied once per input event that is 1 is P^(XOR of the events): P*P = I
        statement = self.gate(mask.lower(), [self.q(node.vqs[0])])
        return [f"if ({self.m(e)} == true) {{ {statement} }}" for e in node.inputs]

    def composite(self, index: int, node: Node, *, steps: Sequence[MicroStep]) -> list[str]:
        """A composite op as its expansion's ``steps`` (:func:`_written_steps`)."""
        spec = OPS[node.op]
        out: list[str] = []
        for step in steps:
            qubits = [self.q(node.vqs[k]) for k in step.qubits]
            if step.kind is Micro.RESET:
                out += [f"reset {q};" for q in qubits]
            elif step.kind is Micro.GATE:
                params: tuple[float, ...] = ()
                if step.arg is not None:
                    value = arg_value(spec, node.args, step.arg)
                    params = (-value if step.negate else value,)
                out.append(self.gate(step.gate or "", qubits, params))
            elif step.kind is Micro.MEASURE:
                out.append(f"{self.m(node.produces[step.event])} = measure {qubits[0]};")
            else:  # WERNER (_written_steps admits no other kind)
                out += self.werner(node, qubits[0], arg_value(spec, node.args, step.arg or ""))
        return out

    def werner(self, node: Node, qubit: str, fidelity: float) -> list[str]:
        """Werner noise of ``fidelity`` on ``qubit``: X, Y or Z, each with probability
        ``(1 - F) / 3``; nothing when F is 1."""
        if fidelity >= 1.0:
            return []
        # Two environment qubits in sqrt(F)|00> + sqrt(p)(|01> + |10> + |11>), each
        # controlling a Pauli on the qubit and then discarded (reset): the same channel on
        # the qubit, exactly.
        p = (1.0 - fidelity) / 3
        e0, e1 = self.take(), self.take()
        env0, env1 = f"q[{e0}]", f"q[{e1}]"
        out = [
            f"// {node.op} {_quote(node.id)}: Werner noise of fidelity {_number(fidelity)} on "
            f"{qubit} by environment qubits {env0}, {env1}",
            self.gate("ry", [env0], [2 * math.asin(math.sqrt(2 * p))]),
            self.gate("x", [env0]),
            f"cry({_number(2 * math.asin(math.sqrt(p / (1 - 2 * p))))}) {env0}, {env1};",
            self.gate("x", [env0]),
            f"cry({_number(math.pi / 2)}) {env0}, {env1};",
            self.gate("cx", [env0, qubit]),
            self.gate("cz", [env1, qubit]),
            f"reset {env0};",
            f"reset {env1};",
        ]
        self.give_back(e0)
        self.give_back(e1)
        return out

    def fence(self, index: int, node: Node) -> list[str]:
        return ["barrier q;"]

    def calc(self, index: int, node: Node) -> list[str]:
        """A run-time value: a variable of its type set from its expression (an outermost
        ``x if c else y`` as ``if``/``else``), then its bits into ``m``."""
        args = node.args
        t = classical.parse_type(str(args["type"]))
        reads = classical.parse_reads(str(args.get("reads", "")))
        operands, at = [], 0
        for rt in reads:
            operands.append(self.operand(index, node, rt, node.inputs[at : at + rt.width]))
            at += rt.width
        name = f"c{index}"
        translate = _Expression(operands, lambda why: _not_expressible(index, node, why))
        lines = [f"{_qasm_type(t)} {name};"]
        lines += translate.assign(name, t, str(args["expr"]))
        self.variables[tuple(node.produces)] = (t, name)
        if t.kind == "float":
            return [*lines, f"// {name}: a float's bits are not written into m"]
        if t.kind == "bool":
            return [*lines, f"{self.m(node.produces[0])} = {name};"]
        slots = [self.bit[e] for e in node.produces]
        if slots == list(range(slots[0], slots[0] + len(slots))):
            return [*lines, f"m[{slots[0]}:{slots[-1]}] = bit[{t.width}]({name});"]
        return lines + [f"{self.m(e)} = {name}[{j}];" for j, e in enumerate(node.produces)]

    def operand(self, index: int, node: Node, t: classical.CType, events: Sequence[str]) -> str:
        """Operand events read as a value of ``t``: a variable written before, one bit of
        ``m``, or bits of ``m`` cast."""
        known = self.variables.get(tuple(events))
        if known is not None:
            return known[1] if known[0] == t else f"{_qasm_type(t)}({known[1]})"
        if len(events) == 1 and t.kind in ("bit", "bool"):
            return self.m(events[0]) if t.kind == "bit" else f"bool({self.m(events[0])})"
        if t.kind == "float":
            raise _not_expressible(index, node, "it reads a float's bits from events")
        slots = [self.bit[e] for e in events]
        bits = f"m[{{{', '.join(str(k) for k in slots)}}}]"
        if slots == list(range(slots[0], slots[0] + len(slots))):
            bits = f"m[{slots[0]}:{slots[-1]}]"
        return bits if t.kind == "bit" else f"{_qasm_type(t)}({bits})"

    def halt(self, index: int, node: Node) -> list[str]:
        message = _quote(node.args.get("message", ""))
        return [f"// HALT {_quote(node.id)}: {message} (OpenQASM 3 cannot stop a run)"]

    def noise(self, index: int, node: Node) -> list[str]:
        raise _not_expressible(
            index, node, "OpenQASM 3 has no noise channels; run the circuit on the stim target"
        )

    def comment(self, index: int, node: Node) -> list[str]:
        parts = [f"// {node.op} {_quote(node.id)}:"]
        if node.vqs:
            parts.append("on " + ", ".join(self.q(h) for h in node.vqs))
        if node.chs:
            parts.append("channel " + ", ".join(_quote(c) for c in node.chs))
        if node.args:
            parts.append(json.dumps(dict(node.args), sort_keys=True, ensure_ascii=False))
        parts.append("(no quantum effect)")
        return [" ".join(parts)]


def _qasm_type(t: classical.CType) -> str:
    return "bool" if t.kind == "bool" else f"{t.kind}[{t.width}]"


class _Expression:
    """A CALC expression (:mod:`qmk.qvm.classical`) as OpenQASM 3, its operands' texts
    given."""

    def __init__(self, operands: Sequence[str], fail: Callable[[str], FrontendError]) -> None:
        self.operands = operands
        self.fail = fail

    def assign(self, name: str, t: classical.CType, text: str) -> list[str]:
        """``name = text;``, an outermost (cast of a) conditional as ``if``/``else``."""
        return self.branches(name, ast.parse(text.strip(), mode="eval").body, "")

    def branches(self, name: str, node: ast.expr, indent: str) -> list[str]:
        inner = node
        while (
            isinstance(inner, ast.Call)
            and isinstance(inner.func, ast.Name)
            and len(inner.args) == 1
            and isinstance(inner.args[0], ast.IfExp)
        ):
            inner = inner.args[0]  # the store casts to the variable's type anyway
        if not isinstance(inner, ast.IfExp):
            return [f"{indent}{name} = {self.write(node)};"]
        return [
            f"{indent}if ({self.write(inner.test)}) {{",
            *self.branches(name, inner.body, indent + "  "),
            f"{indent}}} else {{",
            *self.branches(name, inner.orelse, indent + "  "),
            f"{indent}}}",
        ]

    def write(self, node: ast.expr) -> str:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool):
                return "true" if node.value else "false"
            return repr(node.value)
        if isinstance(node, ast.Name):
            if node.id in classical.CONSTANTS:  # pi, tau, euler: OpenQASM 3 names them
                return node.id
            return f"({self.operands[int(node.id[1:])]})"
        if isinstance(node, ast.UnaryOp):
            op = {ast.Not: "!", ast.USub: "-", ast.Invert: "~", ast.UAdd: ""}[type(node.op)]
            return f"{op}({self.write(node.operand)})"
        if isinstance(node, ast.BinOp):
            symbol = classical.SYMBOLS[type(node.op)]
            return f"({self.write(node.left)} {symbol} {self.write(node.right)})"
        if isinstance(node, ast.BoolOp):
            joint = " && " if isinstance(node.op, ast.And) else " || "
            return "(" + joint.join(self.write(v) for v in node.values) + ")"
        if isinstance(node, ast.Compare):
            parts: list[str] = []
            left = node.left
            for cmp, right in zip(node.ops, node.comparators, strict=True):
                parts.append(
                    f"({self.write(left)} {classical.SYMBOLS[type(cmp)]} {self.write(right)})"
                )
                left = right
            return parts[0] if len(parts) == 1 else "(" + " && ".join(parts) + ")"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return self.call(node.func.id, [self.write(a) for a in node.args])
        raise self.fail("a conditional value inside an expression: OpenQASM 3 has no ?:")

    def call(self, name: str, args: list[str]) -> str:
        match = re.fullmatch(r"(bool|bit|int|uint|angle|float)(\d*)", name)
        if match is not None:
            kind, width = match.group(1), match.group(2)
            t = classical.make_type(kind, int(width) if width else classical.DEFAULT_WIDTH[kind])
            return f"{_qasm_type(t)}({args[0]})"
        return f"{'ln' if name == 'log' else name}({', '.join(args)})"


def _guarded(writer: _Writer, node: Node, body: list[str]) -> list[str]:
    """``body`` under the node's guard: one nested ``if`` per term."""
    guard = node.guard
    if guard is None or not body:
        return body
    tests = [f"{writer.m(t.event)} == {'true' if t.equals else 'false'}" for t in guard.terms]
    if all(line.startswith("//") for line in body):
        when = " and ".join(tests)
        return [f"{line} [when {when}]" for line in body]
    if len(body) == 1 and "//" not in body[0]:
        line = body[0]
        for test in reversed(tests):
            line = f"if ({test}) {{ {line} }}"
        return [line]
    out = [f"{'  ' * depth}if ({test}) {{" for depth, test in enumerate(tests)]
    out += [f"{'  ' * len(tests)}{line}" for line in body]
    out += [f"{'  ' * depth}}}" for depth in reversed(range(len(tests)))]
    return out


def _trailing_start(nodes: Sequence[Node]) -> int:
    """Where the program's trailing frees begin: every node from there on is a
    ``FREE_LQ`` or changes no qubit (their qubits are never read again)."""
    start = len(nodes)
    while start > 0:
        spec = OPS.get(nodes[start - 1].op)
        if spec is None or spec.kind not in (Exec.FREE, Exec.NONE):
            break
        start -= 1
    return start


def _not_expressible(index: int, node: Node, why: str) -> FrontendError:
    return FrontendError.of(
        "not-expressible",
        f"node #{index} {_quote(node.id)} ({node.op}) cannot be written as OpenQASM 3: {why}",
        node=node.id,
        index=index,
    )


#: What each executor kind becomes: (the docs' text, the writer's method). ``None``-kind
#: ops (no quantum effect) are listed by name in :data:`_ADMIN`; an op with an
#: expansion in the op table is written from it (:func:`_composite`).
_BY_KIND: Mapping[Exec, tuple[str, _Write]] = {
    Exec.ALLOC: (
        "a comment naming the handles' slots of `q` (declared qubits start in `|0>`)",
        _Writer.alloc,
    ),
    Exec.FREE: (
        "`reset` on its slots, which later allocations reuse; at the end of the program "
        "(nothing acts on a qubit after it) a comment",
        _Writer.free,
    ),
    Exec.RESET: ("`reset q;`", _Writer.reset),
    Exec.COND_PAULI: (
        "one `if (m[k] == true) { P q; }` per input event (P applied once per 1 is P to "
        "the XOR); mask I: a comment",
        _Writer.cond_pauli,
    ),
    Exec.CALC: (
        "a variable of its type set from its expression (`x if c else y` outermost as "
        "`if`/`else`), then its bits into `m` (a float's are not written)",
        _Writer.calc,
    ),
    Exec.HALT: (
        "a comment: OpenQASM 3 has no statement that stops a run",
        _Writer.halt,
    ),
}

_ADMIN: Mapping[str, tuple[str, _Write]] = {
    "FENCE_EPOCH": ("`barrier q;` (QMK reads a barrier back as a fence)", _Writer.fence),
    "USE_CHAN": ("a comment (it changes no qubit)", _Writer.comment),
    "CLOSE_CHAN": ("a comment (its qubits stay live)", _Writer.comment),
    "BAR_REGION": ("a comment (telemetry only)", _Writer.comment),
    "SET_POLICY": ("a comment (scheduling hints only)", _Writer.comment),
    **{
        name: ("a comment (a stim circuit's annotation)", _Writer.comment)
        for name in ("TICK", "QUBIT_COORDS", "SHIFT_COORDS", "DETECTOR", "OBSERVABLE_INCLUDE")
    },
    "NOISE": ("refused, `QL109` (OpenQASM 3 has no noise channels)", _Writer.noise),
    "NOISY_MEASURE": ("refused, `QL109` (OpenQASM 3 has no noise channels)", _Writer.noise),
}


def _operands(count: int) -> list[str]:
    """How the docs name an op's qubits: ``q`` alone, else ``a``, ``b``, ``c``, ..."""
    return ["q"] if count == 1 else [chr(ord("a") + k) for k in range(count)]


def _written_steps(expansion: Sequence[MicroStep]) -> tuple[MicroStep, ...] | None:
    """``expansion`` as the writer writes it: each ``undo`` spelled out as the adjoints
    of the gates before it, last first (as :func:`qmk.execution.plan.expand` carries it
    out). None when a step cannot be written: a gate with no OpenQASM name or no adjoint
    in the op table, or a kind of step the writer does not know.

    >>> [str(s) for s in _written_steps(EXPANSIONS["MEASURE_ANGLE"])]
    ['rz(-angle) q0', 'h q0', 'measure q0 -> e0', 'h q0', 'rz(angle) q0']
    """
    steps: list[MicroStep] = []
    for step in expansion:
        if step.kind is Micro.UNDO:
            for done in [s for s in steps if s.kind is Micro.GATE][::-1]:
                gate, negates = ADJOINTS.get(done.gate or "", ("", False))
                # a rotation's adjoint negates its angle: -(-angle) is angle again
                negate = done.negate != (negates and done.arg is not None)
                steps.append(replace(done, gate=gate, negate=negate))
        else:
            steps.append(step)
    for step in steps:
        writable = {
            Micro.RESET: True,
            Micro.GATE: (step.gate or "") in QASM_GATES,
            Micro.MEASURE: len(step.qubits) == 1,
            Micro.WERNER: len(step.qubits) == 1 and step.arg is not None,
        }
        if not writable.get(step.kind, False):
            return None
    return tuple(steps)


def _steps_text(spec: OpSpec, steps: Sequence[MicroStep]) -> str:
    """What the docs say ``steps`` of ``spec`` become: their statements, with the op's
    qubits named as :func:`_operands` names them and its events ``m[k]`` (``m[k0]``,
    ``m[k1]``, ... when it produces several)."""
    names = _operands(spec.vqs.low)
    many = spec.produces.low > 1
    parts: list[str] = []
    code: list[str] = []
    defined: dict[str, str] = {}
    for step in steps:
        on = [names[k] for k in step.qubits]
        if step.kind is Micro.RESET:
            code += [f"reset {q};" for q in on]
        elif step.kind is Micro.GATE:
            name = QASM_GATES[step.gate or ""]
            if name in GATE_DEFINITIONS:
                defined[name] = GATE_DEFINITIONS[name]
            param = "" if step.arg is None else f"({'-' if step.negate else ''}{step.arg})"
            code.append(f"{name}{param} {', '.join(on)};")
        elif step.kind is Micro.MEASURE:
            code.append(f"m[k{step.event if many else ''}] = measure {on[0]};")
        else:  # WERNER
            if code:
                parts.append(f"`{' '.join(code)}`")
                code = []
            parts.append(
                f"{'then ' if parts else ''}Werner noise of fidelity F = `{step.arg}` on "
                f"{on[0]} (none when F is 1), "
                f"exactly: two environment qubits (`ry`, `cry`) controlling X and Z on {on[0]}, "
                "then `reset`"
            )
    if code:
        parts.append(f"`{' '.join(code)}`")
    extra = "".join(f" (defined: `{d}`)" for d in defined.values())
    return "; ".join(parts) + extra


def _composite(spec: OpSpec, expansion: Sequence[MicroStep]) -> Lowering | None:
    """The lowering of an op with an expansion: its steps, written (:func:`_written_steps`)."""
    steps = _written_steps(expansion)
    if steps is None:
        return None
    return Lowering(
        op=spec.name,
        text=_steps_text(spec, steps),
        write=functools.partial(_Writer.composite, steps=steps),
    )


def _lowering(spec: OpSpec) -> Lowering | None:
    """The entry of ``spec`` in :data:`LOWERINGS`, or None when the writer has none."""
    if spec.name in EXPANSIONS:
        return _composite(spec, EXPANSIONS[spec.name])
    if spec.kind is Exec.GATE:
        name = QASM_GATES.get(spec.gate or "")
        if name is None:
            return None
        params = f"({', '.join(a.name for a in spec.args)})" if spec.args else ""
        qubits = ", ".join(_operands(spec.vqs.low))
        extra = f" (defined: `{GATE_DEFINITIONS[name]}`)" if name in GATE_DEFINITIONS else ""
        return Lowering(
            op=spec.name, text=f"`{name}{params} {qubits};`{extra}", write=_Writer.apply_gate
        )
    if spec.kind is Exec.MEASURE:
        if spec.basis is None or spec.basis not in BASIS_CHANGES:
            return None
        before, after = BASIS_CHANGES[spec.basis]
        text = " ".join(
            [*(f"{g} q;" for g in before), "m[k] = measure q;", *(f"{g} q;" for g in after)]
        )
        return Lowering(op=spec.name, text=f"`{text}`", write=_Writer.measure)
    rule = _ADMIN.get(spec.name) if spec.kind is Exec.NONE else _BY_KIND.get(spec.kind)
    if rule is None:
        return None
    return Lowering(op=spec.name, text=rule[0], write=rule[1])


#: Every op the writer can write, by name, in op-table order.
LOWERINGS: Mapping[str, Lowering] = MappingProxyType(
    {name: low for name, spec in OPS.items() if (low := _lowering(spec)) is not None}
)


def to_qasm3(program: Graph | VerifiedProgram) -> str:
    """The program as OpenQASM 3 text (see the module docstring for each construct).

    Args:
        program: a graph (verified first) or a verified program.

    Returns:
        The text, ending with a newline: ``stdgates.inc`` gates, ``measure``,
        ``reset``, ``barrier`` and ``if`` only, which Qiskit's importer and the
        reference parser read.

    Raises:
        VerificationError: a graph with errors.
        FrontendError: ``QL109 not-expressible`` for a node OpenQASM 3 cannot
            express, named by index, id and op.
    """
    verified = program if isinstance(program, VerifiedProgram) else verify(program)
    return _Writer(verified).write()
