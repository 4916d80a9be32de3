"""Qiskit ``QuantumCircuit`` into a QVM graph.

Every standard gate of ``qiskit.circuit.library`` that :mod:`~qmk.frontends.decompose`
knows is lowered from its table. Any other gate is lowered through its exact Qiskit
``definition``, its global phase kept so controlled versions stay exact. A controlled
gate with any control state goes through the table's exact ``controlled``.
``measure``, ``reset`` and ``barrier`` (an epoch fence) are lowered. So are
``if_test``/``IfElseOp`` on a clbit, a register or a classical expression (``==``,
``!=``, ``!``, ``&&``, ``||``), and ``switch_case`` on a clbit or register (the default
case too). So are ``box`` (a plain scope) and ``for_loop`` over a fixed set: read folded into a
``REPEAT`` row when its passes are alike (gates only, its parameter unread), else
unrolled (``break_loop``/``continue_loop`` in it guard what follows them). ``delay`` and a box's
duration are dropped (QMK does not model idle time: see docs/frontends.md). Anything
else (``while_loop``, ``store``, a box with annotations) is a
:class:`~qmk.frontends.errors.FrontendError` naming the instruction and its index.

Result keys are Aer's ``get_counts()`` keys: classical registers in reverse order of
``circuit.cregs`` separated by spaces, bit 0 of each rightmost. With no registers,
all clbits are one group, clbit 0 rightmost. Clbits outside every register are left
out when registers exist, as Aer does.

>>> from qiskit import QuantumCircuit
>>> qc = QuantumCircuit(2, 2)
>>> _ = qc.h(0); _ = qc.cx(0, 1); _ = qc.measure([0, 1], [0, 1])
>>> graph = from_qiskit(qc)
>>> [n.op for n in graph.nodes]
['ALLOC_LQ', 'APPLY_H', 'APPLY_CNOT', 'MEASURE_Z', 'MEASURE_Z', 'FREE_LQ']
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from qmk.frontends import conditions, decompose
from qmk.frontends.builder import ProgramBuilder, guard_of
from qmk.frontends.errors import FrontendError
from qmk.frontends.folding import fold_pass
from qmk.qvm.graph import Graph

#: How deep gate definitions may nest before QMK gives up.
MAX_DEPTH = 32
_IGNORED = frozenset({"delay"})
#: Control flow QMK does not lower, by instruction name: what to call it in the refusal
#: (a while loop has a ``condition`` too, but it is no c_if). A while loop's length is
#: known only at run time; ``qiskit.qasm3.dumps`` and ``qmk run`` read it as OpenQASM 3
#: (unrolled up to its cap).
_REFUSED_FLOW = {"while_loop": "a while loop", "store": "a classical store"}
#: What to do instead, where there is something.
_FLOW_HINTS = {
    "while_loop": ": its length is known only at run time; export the circuit with "
    "qiskit.qasm3.dumps and run the OpenQASM 3, which QMK unrolls up to a cap",
}


class _Loop:
    """A ``for_loop`` being unrolled: where it has broken (for good) and where the
    current iteration has met ``continue`` (until its end), as conditions on events."""

    def __init__(self) -> None:
        self.broken: conditions.Cond = []
        self.skipped: conditions.Cond = []

    def live(self, cond: conditions.Cond) -> conditions.Cond:
        """``cond`` where the loop still runs this iteration."""
        stopped = conditions.disjoin(self.broken, self.skipped)
        if not stopped:
            return cond
        return conditions.simplify(conditions.conjoin(cond, conditions.negate(stopped)))


def from_qiskit(circuit: Any, *, profile: str | None = None, name: str | None = None) -> Graph:
    """Lower ``circuit`` (a ``qiskit.QuantumCircuit`` with every parameter bound).

    Args:
        circuit: the circuit.
        profile: the code profile of the qubits (None: the runner's default).
        name: the name used in errors and ``metadata.source`` (default: the circuit's).

    Raises:
        FrontendError: an unbound parameter, an unsupported instruction or a
            condition QMK cannot lower, with the instruction's index.
    """
    return lower_with_clbits(circuit, profile=profile, name=name)[0]


def lower_with_clbits(
    circuit: Any, *, profile: str | None = None, name: str | None = None
) -> tuple[Graph, tuple[str | None, ...]]:
    """:func:`from_qiskit`, and the event each clbit of ``circuit`` reads at the end
    (None: nothing wrote it), in ``circuit.clbits`` order (for Qiskit's raw memory)."""
    if not isinstance(circuit, _quantum_circuit()):
        raise FrontendError.of(
            "bad-value", f"from_qiskit takes a QuantumCircuit, got {type(circuit).__name__}"
        )
    lowerer = _Lowerer(circuit, profile=profile, name=name or circuit.name or "circuit")
    return lowerer.run(), tuple(lowerer.bits)


def _quantum_circuit() -> type[Any]:
    try:
        from qiskit import QuantumCircuit
    except ImportError:  # pragma: no cover - qiskit is an optional extra
        raise FrontendError.of(
            "missing-extra", "from_qiskit needs qiskit: pip install 'qmk[qiskit]'"
        ) from None
    return QuantumCircuit


def _source(name: str, index: Sequence[int]) -> str:
    return f"{name}#{'.'.join(str(i) for i in index)}"


class _Lowerer:
    def __init__(self, circuit: Any, *, profile: str | None, name: str) -> None:
        self.circuit = circuit
        self.name = name
        self.builder = ProgramBuilder(profile=profile, source=name, description=name)
        self.handles = self.builder.allocate(circuit.num_qubits) if circuit.num_qubits else []
        self.bits: list[str | None] = [None] * circuit.num_clbits
        self.index: tuple[int, ...] = ()
        self.loops: list[_Loop] = []
        self.folds = 0  # for loops read folded into REPEAT rows so far

    def error(self, kind: str, message: str) -> FrontendError:
        where = ".".join(str(i) for i in self.index)
        return FrontendError.of(
            kind, f"{self.name}: instruction #{where}: {message}", source=self.name, index=where
        )

    def run(self) -> Graph:
        qmap = dict(zip(self.circuit.qubits, self.handles, strict=True))
        cmap = {bit: k for k, bit in enumerate(self.circuit.clbits)}
        self.block(self.circuit, qmap, cmap, conditions.TRUE, ())
        circuit = self.circuit
        if circuit.cregs:
            groups = [[self.bits[cmap[b]] for b in reversed(list(reg))] for reg in circuit.cregs]
            groups.reverse()
        elif circuit.clbits:
            groups = [list(reversed(self.bits))]
        else:
            groups = []
        return self.builder.build(output=groups, metadata={"language": "qiskit"})

    # ------------------------------------------------------------------ blocks

    def block(
        self,
        circuit: Any,
        qmap: dict[Any, str],
        cmap: dict[Any, int],
        cond: conditions.Cond,
        prefix: tuple[int, ...],
    ) -> None:
        for i, instruction in enumerate(circuit.data):
            self.index = (*prefix, i)
            self.instruction(instruction, qmap, cmap, cond)

    def instruction(
        self, instruction: Any, qmap: dict[Any, str], cmap: dict[Any, int], cond: conditions.Cond
    ) -> None:
        op = instruction.operation
        name = op.name
        qubits = [qmap[q] for q in instruction.qubits]
        clbits = [cmap[c] for c in instruction.clbits]
        where = _source(self.name, self.index)
        if name in _REFUSED_FLOW:
            raise self.error(
                "unsupported",
                f"{_REFUSED_FLOW[name]} ({name}) is not supported by QMK"
                + _FLOW_HINTS.get(name, ""),
            )
        if name != "if_else" and getattr(op, "condition", None) is not None:
            raise self.error("unsupported", f"{name} with a c_if condition")
        if self.loops:
            try:
                cond = self.loops[-1].live(cond)
            except ValueError as exc:
                raise self.error("unsupported", str(exc)) from None
        if name in ("break_loop", "continue_loop"):
            self.leave(name, cond)
        elif name == "measure":
            self.measure(qubits[0], clbits[0], cond, where)
        elif name == "reset":
            for terms in cond:
                self.builder.reset(qubits[0], guard=guard_of(list(terms.items())), where=where)
        elif name == "barrier":
            if cond:
                self.builder.fence(where=where)
        elif name in _IGNORED:
            return
        elif name == "if_else":
            self.if_else(instruction, qmap, cmap, cond)
        elif name == "for_loop":
            self.for_loop(instruction, qmap, cmap, cond)
        elif name == "switch_case":
            self.switch_case(instruction, qmap, cmap, cond)
        elif name == "box":
            self.box(instruction, qmap, cmap, cond)
        else:
            self.operation(op, qubits, clbits, cond, where)

    def operation(
        self, op: Any, qubits: list[str], clbits: list[int], cond: conditions.Cond, where: str
    ) -> None:
        """A gate, or a composite instruction (an appended sub-circuit) inlined."""
        if _is_gate(op) or _is_annotated(op):
            low = self.gate(op, 0)
            for terms in cond:
                guard = guard_of(list(terms.items()))
                for gate, qs, ps in low.ops:
                    self.builder.gate(gate, [qubits[k] for k in qs], ps, guard=guard, where=where)
        elif getattr(op, "definition", None) is not None and not op._directive:
            body = op.definition
            inner_q = dict(zip(body.qubits, qubits, strict=True))
            inner_c = dict(zip(body.clbits, clbits, strict=True))
            index = self.index
            self.block(body, inner_q, inner_c, cond, index)
            self.index = index
        else:
            raise self.error("unsupported", f"instruction {op.name!r} is not supported by QMK")

    def measure(self, qubit: str, slot: int, cond: conditions.Cond, where: str) -> None:
        if not cond:
            return
        if cond != conditions.TRUE:
            if len(cond) > 1:
                raise self.error(
                    "unsupported",
                    "a measurement under an else branch or a compound condition: its result "
                    "cannot be tracked statically",
                )
            if self.bits[slot] is not None:
                raise self.error(
                    "unsupported",
                    "a conditional measurement into a clbit that already holds an earlier result",
                )
        self.bits[slot] = self.builder.measure(
            qubit, guard=guard_of(list(cond[0].items())), where=where
        )

    def if_else(
        self, instruction: Any, qmap: dict[Any, str], cmap: dict[Any, int], cond: conditions.Cond
    ) -> None:
        op = instruction.operation
        here = self.condition(op.condition, cmap)
        try:
            branches = [(op.blocks[0], conditions.conjoin(cond, here))]
            if len(op.blocks) > 1 and op.blocks[1] is not None:
                branches.append((op.blocks[1], conditions.conjoin(cond, conditions.negate(here))))
        except ValueError as exc:
            raise self.error("unsupported", str(exc)) from None
        index = self.index
        for k, (body, branch_cond) in enumerate(branches):
            inner_q = dict(zip(body.qubits, [qmap[q] for q in instruction.qubits], strict=True))
            inner_c = dict(zip(body.clbits, [cmap[c] for c in instruction.clbits], strict=True))
            self.block(body, inner_q, inner_c, branch_cond, (*index, k))
        self.index = index

    def for_loop(
        self, instruction: Any, qmap: dict[Any, str], cmap: dict[Any, int], cond: conditions.Cond
    ) -> None:
        """Read folded where its passes are alike, else unrolled, its parameter bound in
        each copy; ``break``/``continue`` in it guard what follows them.

        A loop that runs more than once unconditionally, never reads its parameter and
        holds nothing that ends it early has its first pass lowered; when that wrote only
        gates (nested loops folded or not) it becomes one REPEAT row of the loop's length
        (:func:`~qmk.frontends.folding.fold_pass`), and the other passes are not lowered.
        """
        indexset, parameter, body = instruction.operation.params
        index = self.index
        binds = parameter is not None and parameter in body.parameters
        values: Iterable[Any] = indexset
        self.loops.append(_Loop())
        try:
            passes = len(indexset)
            if passes > 1 and not binds and cond == conditions.TRUE and not _stops(body):
                before = len(self.builder.nodes)
                self.loop_pass(instruction, body, qmap, cmap, cond, (*index, int(indexset[0])))
                self.folds += 1
                if fold_pass(self.builder.nodes, before, passes, self.folds):
                    return
                values = itertools.islice(indexset, 1, None)  # more than gates: unrolled
            for value in values:
                bound = body.assign_parameters({parameter: value}) if binds else body
                self.loop_pass(instruction, bound, qmap, cmap, cond, (*index, int(value)))
        finally:
            self.loops.pop()
            self.index = index

    def loop_pass(
        self,
        instruction: Any,
        body: Any,
        qmap: dict[Any, str],
        cmap: dict[Any, int],
        cond: conditions.Cond,
        prefix: tuple[int, ...],
    ) -> None:
        """One pass of the innermost loop's ``body`` (its parameter bound already)."""
        self.loops[-1].skipped = []
        inner_q = dict(zip(body.qubits, [qmap[q] for q in instruction.qubits], strict=True))
        inner_c = dict(zip(body.clbits, [cmap[c] for c in instruction.clbits], strict=True))
        self.block(body, inner_q, inner_c, cond, prefix)

    def leave(self, name: str, cond: conditions.Cond) -> None:
        """``break``/``continue`` where ``cond`` holds: the rest of the loop (of this
        iteration) runs only where it does not."""
        if not self.loops:
            raise self.error("unsupported", f"{name} outside a for loop")
        loop = self.loops[-1]
        try:
            if name == "break_loop":
                loop.broken = conditions.disjoin(loop.broken, cond)
            else:
                loop.skipped = conditions.disjoin(loop.skipped, cond)
        except ValueError as exc:
            raise self.error("unsupported", str(exc)) from None

    def switch_case(
        self, instruction: Any, qmap: dict[Any, str], cmap: dict[Any, int], cond: conditions.Cond
    ) -> None:
        """Each case's block where the target equals one of its values and no earlier
        case matched; the default case where none did."""
        from qiskit.circuit import CASE_DEFAULT

        op = instruction.operation
        cases = list(op.cases_specifier())
        index = self.index
        matched: conditions.Cond = []
        try:
            explicit: list[conditions.Cond] = []
            for values, _ in cases:
                here: conditions.Cond = []
                for value in values:
                    if value is not CASE_DEFAULT:
                        here = conditions.disjoin(here, self.target_equals(op.target, value, cmap))
                explicit.append(here)
            branches = []
            for (values, body), here in zip(cases, explicit, strict=True):
                if any(value is CASE_DEFAULT for value in values):
                    others = [c for c in explicit if c is not here]
                    anything: conditions.Cond = []
                    for other in others:
                        anything = conditions.disjoin(anything, other)
                    here = conditions.disjoin(here, conditions.negate(anything))
                branch = conditions.conjoin(here, conditions.negate(matched))
                matched = conditions.disjoin(matched, here)
                branches.append((body, conditions.conjoin(cond, branch)))
        except ValueError as exc:
            raise self.error("unsupported", str(exc)) from None
        for k, (body, branch_cond) in enumerate(branches):
            inner_q = dict(zip(body.qubits, [qmap[q] for q in instruction.qubits], strict=True))
            inner_c = dict(zip(body.clbits, [cmap[c] for c in instruction.clbits], strict=True))
            self.block(body, inner_q, inner_c, branch_cond, (*index, k))
        self.index = index

    def target_equals(self, target: Any, value: Any, cmap: dict[Any, int]) -> conditions.Cond:
        """The switch's ``target`` (a clbit, a register, or an expression of one) equals
        ``value``."""
        from qiskit.circuit import ClassicalRegister, Clbit
        from qiskit.circuit.classical import expr

        while isinstance(target, expr.Cast):
            target = target.operand
        if isinstance(target, expr.Var) and not target.standalone:
            target = target.var
        if isinstance(target, (Clbit, ClassicalRegister)):
            return self.register_equals(target, int(value), cmap)
        raise self.error("unsupported", f"a switch on {target!r}")

    def box(
        self, instruction: Any, qmap: dict[Any, str], cmap: dict[Any, int], cond: conditions.Cond
    ) -> None:
        """A box's body as a plain scope; its duration is timing, ignored as a delay is.
        Annotations (instructions to compiler passes) are refused, not dropped."""
        op = instruction.operation
        if getattr(op, "annotations", None):
            raise self.error("unsupported", f"a box with annotations {list(op.annotations)!r}")
        body = op.blocks[0]
        index = self.index
        inner_q = dict(zip(body.qubits, [qmap[q] for q in instruction.qubits], strict=True))
        inner_c = dict(zip(body.clbits, [cmap[c] for c in instruction.clbits], strict=True))
        self.block(body, inner_q, inner_c, cond, (*index, 0))
        self.index = index

    # ------------------------------------------------------------------ conditions

    def condition(self, condition: Any, cmap: dict[Any, int]) -> conditions.Cond:
        from qiskit.circuit import ClassicalRegister, Clbit

        if isinstance(condition, tuple):
            target, value = condition
            if isinstance(target, Clbit):
                return conditions.equals([self.bits[cmap[target]]], int(value))
            if isinstance(target, ClassicalRegister):
                return conditions.equals([self.bits[cmap[b]] for b in target], int(value))
        return self.expression(condition, cmap)

    def expression(self, node: Any, cmap: dict[Any, int]) -> conditions.Cond:
        from qiskit.circuit.classical import expr

        try:
            if isinstance(node, expr.Var) and not node.standalone:
                return conditions.negate(self.register_equals(node.var, 0, cmap))
            if isinstance(node, expr.Unary) and node.op in (
                expr.Unary.Op.LOGIC_NOT,
                expr.Unary.Op.BIT_NOT,
            ):
                if node.op == expr.Unary.Op.BIT_NOT and node.type.kind is not expr.types.Bool:
                    raise self.error("unsupported", "bitwise ~ of a register in a condition")
                return conditions.negate(self.expression(node.operand, cmap))
            if isinstance(node, expr.Cast):
                return self.expression(node.operand, cmap)
            if isinstance(node, expr.Binary):
                op = node.op
                if op in (expr.Binary.Op.LOGIC_AND, expr.Binary.Op.BIT_AND) and _boolean(node):
                    a, b = self.expression(node.left, cmap), self.expression(node.right, cmap)
                    return conditions.conjoin(a, b)
                if op in (expr.Binary.Op.LOGIC_OR, expr.Binary.Op.BIT_OR) and _boolean(node):
                    a, b = self.expression(node.left, cmap), self.expression(node.right, cmap)
                    return conditions.disjoin(a, b)
                if op in (expr.Binary.Op.EQUAL, expr.Binary.Op.NOT_EQUAL):
                    var, value = _var_and_value(node)
                    if var is None:
                        raise self.error("unsupported", f"the condition {node}")
                    equal = self.register_equals(var, value, cmap)
                    return equal if op == expr.Binary.Op.EQUAL else conditions.negate(equal)
            if isinstance(node, expr.Value):
                return conditions.TRUE if node.value else []
        except ValueError as exc:
            raise self.error("unsupported", str(exc)) from None
        raise self.error("unsupported", f"the condition {node!r}")

    def register_equals(self, var: Any, value: int, cmap: dict[Any, int]) -> conditions.Cond:
        from qiskit.circuit import Clbit

        if isinstance(var, Clbit):
            return conditions.equals([self.bits[cmap[var]]], int(value))
        try:
            return conditions.equals([self.bits[cmap[b]] for b in var], int(value))
        except TypeError:
            raise self.error("unsupported", f"a condition on {var!r}") from None

    # ------------------------------------------------------------------ gates

    def gate(self, op: Any, depth: int) -> decompose.Lowered:
        """``op`` as exact basic gates on its qubits ``0..n-1`` (phase kept)."""
        if depth > MAX_DEPTH:
            raise self.error("unsupported", f"gate {op.name}: definitions nest too deeply")
        key = decompose.canonical(op.name)
        if key is not None and _is_standard(op):
            want_q, want_p = decompose.arity(op.name)
            if want_q == op.num_qubits and want_p == len(op.params):
                params = [self.parameter(op, p) for p in op.params]
                return decompose.lower_gate(op.name, params)
        from qiskit.circuit import AnnotatedOperation

        if isinstance(op, AnnotatedOperation):
            return self.annotated(op, depth)
        if op.name == "unitary" and op.num_qubits == 1:
            return decompose.unitary(op.to_matrix())
        from qiskit.circuit import ControlledGate

        if isinstance(op, ControlledGate) and op.base_gate is not None:
            inner = self.gate(op.base_gate, depth + 1)
            try:
                return decompose.controlled(inner, op.num_ctrl_qubits, op.ctrl_state)
            except ValueError as exc:
                raise self.error("unsupported", f"gate {op.name}: {exc}") from None
        definition = op.definition
        if definition is None:
            raise self.error("unsupported", f"gate {op.name!r} has no definition QMK can lower")
        ops: list[decompose.Instr] = []
        phase = self.parameter(op, definition.global_phase)
        position = {q: k for k, q in enumerate(definition.qubits)}
        for inner_instruction in definition.data:
            inner = inner_instruction.operation
            if inner.name in ("barrier", "delay"):
                continue
            if not (_is_gate(inner) or _is_annotated(inner)):
                raise self.error(
                    "unsupported", f"gate {op.name}: its definition holds {inner.name!r}"
                )
            local = [position[q] for q in inner_instruction.qubits]
            low = self.gate(inner, depth + 1)
            ops.extend((g, tuple(local[k] for k in qs), ps) for g, qs, ps in low.ops)
            phase += low.phase
        return decompose.Lowered(num_qubits=op.num_qubits, ops=tuple(ops), phase=phase)

    def annotated(self, op: Any, depth: int) -> decompose.Lowered:
        """An ``AnnotatedOperation``: its base gate with inverse/control/power modifiers."""
        from qiskit.circuit.annotated_operation import (
            ControlModifier,
            InverseModifier,
            PowerModifier,
        )

        low = self.gate(op.base_op, depth + 1)
        try:
            for modifier in op.modifiers:
                if isinstance(modifier, InverseModifier):
                    low = decompose.inverse(low)
                elif isinstance(modifier, ControlModifier):
                    low = decompose.controlled(low, modifier.num_ctrl_qubits, modifier.ctrl_state)
                elif isinstance(modifier, PowerModifier):
                    low = decompose.power(low, float(modifier.power))
                else:
                    raise ValueError(f"modifier {modifier!r}")
        except ValueError as exc:
            raise self.error("unsupported", f"gate {op.name}: {exc}") from None
        return low

    def parameter(self, op: Any, value: Any) -> float:
        from qiskit.circuit import ParameterExpression

        if isinstance(value, ParameterExpression):
            if value.parameters:
                names = ", ".join(sorted(p.name for p in value.parameters))
                raise self.error(
                    "bad-value",
                    f"gate {op.name} has unbound parameter(s) {names}: bind them with "
                    "circuit.assign_parameters(...) first",
                )
            value = complex(value)
            if abs(value.imag) > 1e-12:
                raise self.error("bad-value", f"gate {op.name} has a complex parameter {value}")
            return float(value.real)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise self.error(
                "unsupported", f"gate {op.name} has a non-numeric parameter {value!r}"
            ) from None


def _stops(body: Any) -> bool:
    """Whether a loop body holds a ``break``/``continue`` of its own loop (one inside a
    nested ``for_loop`` stops that loop only), at any depth of branches and boxes."""
    for instruction in body.data:
        op = instruction.operation
        if op.name in ("break_loop", "continue_loop"):
            return True
        if op.name != "for_loop" and any(_stops(block) for block in getattr(op, "blocks", ())):
            return True
    return False


def _is_standard(op: Any) -> bool:
    """Whether ``op`` is Qiskit's own standard gate of that name (not a user gate named so)."""
    reference = _standard_types().get(op.name)
    return reference is not None and type(op) is reference


@functools.cache
def _standard_types() -> dict[str, type]:
    """Qiskit's standard gates' classes by name (Qiskit builds every gate to list them:
    once per process, not once per gate lowered)."""
    from qiskit.circuit.library import get_standard_gate_name_mapping

    return {name: type(gate) for name, gate in get_standard_gate_name_mapping().items()}


def _is_annotated(op: Any) -> bool:
    from qiskit.circuit import AnnotatedOperation

    return isinstance(op, AnnotatedOperation)


def _is_gate(op: Any) -> bool:
    from qiskit.circuit import Gate

    return isinstance(op, Gate)


def _boolean(node: Any) -> bool:
    from qiskit.circuit.classical import types

    return node.type.kind is types.Bool


def _var_and_value(node: Any) -> tuple[Any, int]:
    from qiskit.circuit.classical import expr

    left, right = node.left, node.right
    for a, b in ((left, right), (right, left)):
        while isinstance(a, expr.Cast):
            a = a.operand
        while isinstance(b, expr.Cast):
            b = b.operand
        if isinstance(a, expr.Var) and isinstance(b, expr.Value):
            return a.var, int(b.value)
    return None, 0
