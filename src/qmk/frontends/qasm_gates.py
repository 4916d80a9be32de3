"""The OpenQASM lowerer's gates: calls, modifiers, definitions, and the fast lane.

On top of :class:`~qmk.frontends.qasm_classical.Classical`: a gate call becomes the
exact basic gates :mod:`~qmk.frontends.decompose` lowers it to (user gates inlined,
``inv``/``ctrl``/``negctrl``/``pow`` applied), written once per condition term. The
statements :class:`~qmk.frontends.qasm_scan.Scanner` read without an AST (the fast
lane) are lowered here too, into the same registers and caches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qmk.frontends import decompose, qasm_scan
from qmk.frontends.builder import Emitted, guard_of
from qmk.frontends.folding import call_pass
from qmk.frontends.qasm_classical import Classical
from qmk.frontends.qasm_library import QELIB1_GATES, STDGATES_GATES, plan_of
from qmk.frontends.qasm_runtime import Operands
from qmk.frontends.qasm_scope import Cond, GateDef, describe
from qmk.qvm import classical
from qmk.qvm.classical import CType
from qmk.qvm.graph import CALL

#: A gate's qubits as it was called, by count (:meth:`Gates.shaped`' one or two).
_IN_ORDER = {1: (0,), 2: (0, 1)}

#: The method that lowers each kind of statement the scanner reads but a gate, by name.
#: A dict of the lowerer's bound methods, held on the lowerer, would be a reference
#: cycle. A big lowered program's builder would then be freed by the cyclic collector,
#: the interpreter held on whichever thread set it off, not by its reference count.
_FAST_HANDLERS = {
    "measure": "fast_measure",
    "reset": "fast_reset",
    "barrier": "fast_barrier",
    "qreg": "fast_qreg",
    "creg": "fast_creg",
    "include": "include",
    "opaque": "fast_opaque",
}


class Gates(Classical):
    """Gate calls and definitions, and the fast lane (see the module)."""

    # ------------------------------------------------------------------ gates

    def include(self, filename: str) -> None:
        other = {2: "stdgates.inc", 3: "qelib1.inc"}[self.version]
        if filename == other:
            own = "qelib1.inc" if self.version == 2 else "stdgates.inc"
            raise self.error(
                "version-rule",
                f'include "{filename}" is OpenQASM {5 - self.version}\'s gate library; an '
                f'OpenQASM {self.version} program includes "{own}"',
            )
        self.forget()
        if filename == "qelib1.inc":
            self.standard |= QELIB1_GATES
        elif filename == "stdgates.inc":
            self.standard |= STDGATES_GATES
        else:
            raise self.error(
                "unsupported",
                f'include "{filename}": only "qelib1.inc" and "stdgates.inc" can be included',
            )

    def gate_definition(self, st: Any) -> None:
        name = st.name.name
        if name in self.gates or name in self.opaque:
            raise self.error("bad-value", f"gate {name} is already defined")
        self.forget()
        self.gates[name] = GateDef(
            name=name,
            params=tuple(a.name for a in st.arguments),
            qubits=tuple(q.name for q in st.qubits),
            body=tuple(st.body),
            line=self.line or 0,
        )

    def gate_call(self, st: Any, cond: Cond) -> None:
        operands = [self.qubit_list(q) for q in st.qubits]
        self.call_gate(st.name.name, st.modifiers, list(st.arguments), operands, cond)

    def call_gate(
        self, name: str, modifiers: Sequence[Any], args: list[Any], operands: Any, cond: Cond
    ) -> None:
        """Gate ``name`` with parameter expressions ``args`` on ``operands``."""
        if any(self.is_runtime(a) for a in args):
            self.runtime_gate(name, modifiers, args, operands, cond)
            return
        params = [self.evaluate_angle(a) for a in args]
        low = self.lowered(name, modifiers, params, len(operands), {})
        key = (name, *params) if name in self.gates and not modifiers else None
        self.apply(low, operands, cond, key)

    def phase_call(self, st: Any, cond: Cond) -> None:
        operands = [self.qubit_list(q) for q in st.qubits]
        if self.is_runtime(st.argument):
            self.runtime_gate("gphase", st.modifiers, [st.argument], operands, cond)
            return
        param = self.evaluate_angle(st.argument)
        low = self.lowered("gphase", st.modifiers, [param], len(operands), {})
        self.apply(low, operands, cond)

    def runtime_gate(
        self, name: str, modifiers: Sequence[Any], args: list[Any], operands: Any, cond: Cond
    ) -> None:
        """A gate whose parameter is known only at run time (``rz(c) q;`` of an angle
        ``c`` computed from measurements), applied bit by bit. The gate is a
        one-parameter group in that parameter (:data:`~qmk.frontends.decompose.ADDITIVE`),
        so ``g(sum of w_k b_k)`` is ``g(w_k)`` guarded on each bit ``b_k`` of the value
        (:func:`~qmk.qvm.classical.weights`). Modifiers apply to each factor: ``ctrl``,
        ``negctrl``, ``inv`` and integer powers keep the product."""
        self.lowered(name, modifiers, [0.0] * len(args), len(operands), {})  # defined, arity
        which = [k for k, a in enumerate(args) if self.is_runtime(a)]
        group = decompose.canonical(name) if name in self.standard else None
        index = decompose.ADDITIVE.get(group or "") if name not in self.gates else None
        if len(which) != 1 or index != which[0]:
            additive = ", ".join(sorted(decompose.ADDITIVE))
            raise self.error(
                "unsupported",
                f"gate {name} with a parameter known only at run time: QMK applies one as "
                f"the angle of a standard rotation ({additive}), not of a gate defined in "
                "the program",
            )
        self.check_runtime_modifiers(name, modifiers)
        held = [0.0 if k == index else self.evaluate_angle(a) for k, a in enumerate(args)]
        t, events = self.runtime_parameter(name, args[index])
        for event, weight in zip(events, classical.weights(t), strict=True):
            params = [weight if k == index else p for k, p in enumerate(held)]
            low = self.lowered(name, modifiers, params, len(operands), {})
            self.apply(low, operands, self.conjoin(cond, [{event: 1}]))

    def check_runtime_modifiers(self, name: str, modifiers: Sequence[Any]) -> None:
        """Refuse a fractional ``pow`` of a gate with a run-time parameter (its principal
        branch is no product of the bits' gates)."""
        from openqasm3 import ast

        for mod in modifiers:
            if mod.modifier == ast.GateModifierName.pow:
                k = float(self.evaluate(mod.argument))
                if not k.is_integer():
                    raise self.error(
                        "unsupported",
                        f"pow({k:g}) @ {name} with a parameter known only at run time: "
                        "QMK takes integer powers of it",
                    )

    def runtime_parameter(self, name: str, expr: Any) -> tuple[CType, tuple[str, ...]]:
        """A gate parameter known only at run time: its type (an angle or an integer)
        and the events of its bits (a CALC writes them where it computes)."""
        from openqasm3 import ast

        if isinstance(expr, ast.Identifier) and expr.name in self.runtime:
            value = self.runtime[expr.name]
            t, events = value.type, value.events
        else:
            ops = Operands()
            text = self.text(expr, ops)
            try:
                t = classical.compile_expr(text, classical.parse_reads(ops.reads)).type
            except classical.ClassicalError as exc:
                raise self.error("bad-value", f"a value that does not type: {exc}") from None
            events = ()
            if t.kind != "float":
                events = tuple(self.calc(t, text, ops))
        if t.kind == "float":
            raise self.error(
                "unsupported",
                f"a {t} known only at run time as the parameter of {name}: QMK applies an "
                "angle or an integer; cast it to an angle (angle[n](x)) to apply it",
            )
        return t, events

    def apply(
        self,
        low: decompose.Lowered,
        operands: list[list[str]],
        cond: Cond,
        key: tuple[Any, ...] | None = None,
    ) -> None:
        """Write ``low`` on ``operands`` (registers broadcast) once per condition term;
        a call of a gate definition (``key``: its name and parameters) unconditioned as a
        CALL row of its block (:meth:`as_call`)."""
        if not operands:
            return  # a bare global phase: nothing a program can observe
        sizes = {len(o) for o in operands if len(o) != 1}
        if len(sizes) > 1:
            raise self.error("arity", f"registers of different sizes {sorted(sizes)} in one call")
        width = sizes.pop() if sizes else 1
        for k in range(width):
            handles = [o[k] if len(o) > 1 else o[0] for o in operands]
            if len(set(handles)) != len(handles):
                raise self.error("bad-value", "a gate is applied to the same qubit twice")
            for terms in cond:
                guard = guard_of(list(terms.items()))
                before = len(self.builder.nodes)
                for gate, qs, ps in low.ops:
                    self.builder.gate(
                        gate, [handles[i] for i in qs], ps, guard=guard, where=self.where()
                    )
                if key is not None and not terms:
                    self.as_call(before, handles, key)

    def definition_call(
        self,
        low: decompose.Lowered,
        registers: list[list[str]],
        key: tuple[Any, ...],
        text: str | None,
    ) -> None:
        """A call of a gate definition read by the fast lane: one CALL row of the block
        of ``key`` where the gate's plan was cached (``text`` not None: its meaning
        checked since the caches were last emptied) and its block made, with nothing
        lowered, kept by the statement's ``text``; else written and kept as a call
        (:meth:`apply`)."""
        block = self.builder.blocks.get(key) if text is not None else None
        handles = tuple(r[0] for r in registers)
        single = all(len(r) == 1 for r in registers) and len(set(handles)) == len(handles)
        if block is None or not single or text is None:
            self.apply(low, registers, [{}], key)
            return
        nodes: list[Emitted] = [(CALL, handles, block.id)]
        self.resolved[text] = nodes
        self.emit(nodes, self.line)

    def as_call(
        self, before: int, handles: Sequence[str], key: tuple[Any, ...], where: str | None = None
    ) -> None:
        """Keep the rows written from ``before`` for one call of a gate or def definition
        (on ``handles``, in its arguments' order) as a CALL row of its block, where
        :func:`~qmk.frontends.folding.call_pass` can (OpenQASM 3 only). A block is
        keyed by the definition's name and its constant parameters; ``where``: the
        call's place (the current line's where None)."""
        if self.version != 3:
            return
        meta = self.builder.metadata_at(where or self.where())
        if call_pass(self.builder.nodes, before, handles, key, self.builder.blocks, meta):
            del self.unrolled_sums[before + 1 :]  # (the rows after ``before`` changed)

    def lowered(
        self,
        name: str,
        modifiers: Sequence[Any],
        params: list[float],
        n_operands: int,
        scope: dict[str, float],
    ) -> decompose.Lowered:
        """The gate ``name`` with ``modifiers`` applied, as exact basic gates."""
        if not modifiers:  # the fast lane's calls: no need of the reference parser's AST
            return self.base_gate(name, params, n_operands)
        from openqasm3 import ast

        controls: list[tuple[int, bool]] = []
        for mod in modifiers:
            if mod.modifier in (ast.GateModifierName.ctrl, ast.GateModifierName.negctrl):
                n = (
                    1
                    if mod.argument is None
                    else self.integer(mod.argument, "a control count", scope)
                )
                if n < 1:
                    raise self.error("bad-value", f"a control count must be >= 1, got {n}")
                controls.append((n, mod.modifier == ast.GateModifierName.ctrl))
        n_controls = sum(n for n, _ in controls)
        base = self.base_gate(name, params, n_operands - n_controls)
        low = base
        try:
            for mod in reversed(modifiers):
                kind = mod.modifier
                if kind == ast.GateModifierName.inv:
                    low = decompose.inverse(low)
                elif kind == ast.GateModifierName.pow:
                    low = decompose.power(low, float(self.evaluate(mod.argument, scope)))
                else:
                    n = 1 if mod.argument is None else self.integer(mod.argument, "", scope)
                    positive = kind == ast.GateModifierName.ctrl
                    low = decompose.controlled(low, n, None if positive else 0)
        except ValueError as exc:
            raise self.error("unsupported", f"{name}: {exc}") from None
        return low

    def base_gate(self, name: str, params: list[float], n_qubits: int) -> decompose.Lowered:
        if name in self.gates:
            definition = self.gates[name]
            self.check_arity(name, len(definition.qubits), len(definition.params), n_qubits, params)
            return self.gate_body(definition, params)
        if name in self.opaque:
            want_q, want_p = self.opaque[name]
            self.check_arity(name, want_q, want_p, n_qubits, params)
            raise self.error(
                "unsupported",
                f"gate {name} is opaque (declared without a body): QMK cannot run it; "
                "give it a gate definition instead",
            )
        if name in self.standard:
            want_q, want_p = decompose.arity(name)
            self.check_arity(name, want_q, want_p, n_qubits, params)
            return decompose.lower_gate(name, params)
        if self.version == 3 and name == "CX":
            raise self.error(
                "version-rule",
                "CX is OpenQASM 2's built-in gate; OpenQASM 3 builds in only U and gphase "
                '(include "stdgates.inc" for cx, or CX as its backwards-compatible name)',
            )
        hint = ""
        if decompose.canonical(name) is not None:
            lib = '"qelib1.inc"' if self.version == 2 else '"stdgates.inc"'
            hint = f" (it is a standard gate: include {lib} or define it)"
        elif name in self.subroutines:
            hint = f" ({name} is a def: call it as {name}(...), qubits too in the parentheses)"
        raise self.error("undefined", f"gate {name} is not defined{hint}")

    def check_arity(
        self, name: str, want_q: int, want_p: int, got_q: int, params: Sequence[float]
    ) -> None:
        if len(params) != want_p:
            raise self.error("arity", f"gate {name} takes {want_p} parameter(s), got {len(params)}")
        if got_q != want_q:
            raise self.error("arity", f"gate {name} takes {want_q} qubit(s), got {got_q}")

    def gate_body(self, definition: GateDef, params: list[float]) -> decompose.Lowered:
        from openqasm3 import ast

        scope = dict(zip(definition.params, params, strict=True))
        index = {q: i for i, q in enumerate(definition.qubits)}
        ops: list[decompose.Instr] = []
        phase = 0.0
        for st in definition.body:
            if isinstance(st, ast.QuantumBarrier):
                continue
            at_line = f" (line {st.span.start_line})" if st.span else ""
            if not isinstance(st, ast.QuantumGate | ast.QuantumPhase):
                kind = describe(type(st).__name__)
                raise self.error("unsupported", f"{kind} inside gate {definition.name}{at_line}")
            local: list[int] = []
            for q in st.qubits:
                if isinstance(q, ast.IndexedIdentifier):
                    raise self.error(
                        "unsupported",
                        f"indexed qubit {q.name.name}[...] inside gate {definition.name}{at_line}: "
                        "the arguments of a gate are single qubits",
                    )
                if q.name not in index:
                    raise self.error(
                        "undefined",
                        f"gate {definition.name} uses a qubit that is not one of its arguments"
                        f"{at_line}",
                    )
                local.append(index[q.name])
            if isinstance(st, ast.QuantumPhase):
                name, args = "gphase", [st.argument]
            else:
                name, args = st.name.name, st.arguments
            values = [self.evaluate_angle(a, scope) for a in args]
            if name == definition.name:
                raise self.error("unsupported", f"gate {name} calls itself")
            inner = self.lowered(name, st.modifiers, values, len(local), scope)
            ops.extend((g, tuple(local[i] for i in qs), ps) for g, qs, ps in inner.ops)
            phase += inner.phase
        return decompose.Lowered(num_qubits=len(definition.qubits), ops=tuple(ops), phase=phase)

    def forget(self) -> None:
        """Empty the gate caches: what a gate name means is about to change (the dicts
        are emptied in place: the reader holds ``resolved``)."""
        self.plans.clear()
        self.resolved.clear()

    # ------------------------------------------------------------------ the fast lane

    def fast(self, item: qasm_scan.Fast) -> None:
        """Lower a statement the scanner read (the same as its AST would lower)."""
        kind, self.line, data, text = item
        if kind == "gate":
            nodes = self.resolved.get(text)
            if nodes is None:
                self.fast_gate(text, *data)
                return
            self.emit(nodes, self.line)
            return
        getattr(self, _FAST_HANDLERS[kind])(*data)

    def fast_gate(
        self,
        text: str,
        name: str,
        params: tuple[qasm_scan.Expr, ...],
        operands: tuple[qasm_scan.Operand, ...],
    ) -> None:
        """A gate call; its nodes are kept by the statement's text when the call is on
        single qubits (a name's meaning never changes once defined, and the caches are
        emptied when a gate definition or include could change a gate's)."""
        registers = [self.qubit_operand(reg, index) for reg, index in operands]
        if any(self.reads_variable(p) for p in params):
            # a variable's value may change and be known only at run time, and a typed
            # value computed with is valued by its type's rules: not cached
            args = [self.expression(p) for p in params]
            self.call_gate(name, (), args, registers, [{}])
            return
        values = [self.angle_of(p) for p in params]
        key = (name, len(registers), *values)
        cached = known = self.plans.get(key)
        if cached is None:
            low = self.lowered(name, (), values, len(registers), {})
            cached = (low, plan_of(low))
            if 0.0 not in values:  # -0.0 == 0.0: such keys would merge two angles
                self.plans[key] = cached
        if name in self.gates and self.version == 3:  # a call of a definition: a CALL row
            self.definition_call(
                cached[0], registers, (name, *values), None if known is None else text
            )
            return
        if any(len(r) != 1 for r in registers):
            self.apply(cached[0], registers, [{}])
            return
        handles = [r[0] for r in registers]
        if len(handles) > 1 and len(set(handles)) != len(handles):
            raise self.error("bad-value", "a gate is applied to the same qubit twice")
        nodes: list[Emitted] = [
            (op, tuple([handles[i] for i in local]), theta) for op, local, theta in cached[1]
        ]
        self.resolved[text] = nodes
        self.emit(nodes, self.line)

    def shaped(self, text: str) -> list[Emitted] | None:
        """The nodes of a gate call without parameters on one or two indexed qubits, when
        its gate was lowered before for as many single qubits (:meth:`fast_gate`'s plan)
        and its qubits are declared, in range and distinct; else None, and the call is
        read the long way (which reports what is wrong with it). A wide circuit calls
        one gate on many pairs of qubits: its calls differ in their text, not their
        plan. The nodes are kept by the text, as :meth:`fast_gate` keeps them."""
        m = qasm_scan.CALL_SHAPE.fullmatch(text)
        if m is None:
            return None
        name, first, at, second, at2 = m.groups()
        qregs = self.qregs
        items = qregs.get(first)
        if items is None or (index := int(at)) >= len(items):
            return None
        handle = items[index]
        if second is None:
            handles: tuple[str, ...] = (handle,)
        else:
            items = qregs.get(second)
            if items is None or (index := int(at2)) >= len(items) or items[index] == handle:
                return None
            handles = (handle, items[index])
        cached = self.plans.get((name, len(handles)))
        if cached is None:
            return None
        nodes: list[Emitted]
        if name in self.gates and self.version == 3:  # a call of a definition: a CALL row
            block = self.builder.blocks.get((name,))
            if block is None:
                return None
            nodes = [(CALL, handles, block.id)]
            self.resolved[text] = nodes
            return nodes
        steps = cached[1]
        if len(steps) == 1 and steps[0][1] == _IN_ORDER[len(handles)]:
            op, _, theta = steps[0]  # (most gates: one node, on the qubits as called)
            nodes = [(op, handles, theta)]
        else:
            nodes = [(op, tuple([handles[i] for i in local]), theta) for op, local, theta in steps]
        self.resolved[text] = nodes
        return nodes

    def reads_variable(self, expr: qasm_scan.Expr, computed: bool = False) -> bool:
        """Whether a scanned expression reads a classical variable or bits (whose value
        may change), or computes with a ``const`` or ``input`` whose type's rules are not
        a float[64]'s (``-a`` of an angle wraps, ``n / 2`` of ints divides them). One
        read alone is the value its type holds, as is one of a float[64] computed with:
        the line is then kept by its text, as such a value never changes at the top level
        the scanner reads (a program's ``input float theta`` on many lines)."""
        kind = expr[0]
        if kind == "id":
            name = expr[1]
            if name in self.types or name in self.cregs:
                return True
            return computed and self.typed.get(name, classical.FLOAT) != classical.FLOAT
        if kind == "n":
            return False
        return any(self.reads_variable(part, True) for part in expr[1:])

    def expression(self, expr: qasm_scan.Expr) -> Any:
        """A scanned expression as the reference parser's tree."""
        from openqasm3 import ast

        kind = expr[0]
        if kind == "n":
            value = expr[1]
            return ast.IntegerLiteral(value) if isinstance(value, int) else ast.FloatLiteral(value)
        if kind == "id":
            return ast.Identifier(expr[1])
        if kind == "neg":
            return ast.UnaryExpression(ast.UnaryOperator["-"], self.expression(expr[1]))
        lhs, rhs = self.expression(expr[1]), self.expression(expr[2])
        return ast.BinaryExpression(ast.BinaryOperator[kind], lhs, rhs)

    def fast_measure(self, qubit: qasm_scan.Operand, target: qasm_scan.Operand | None) -> None:
        qubits = self.qubit_operand(*qubit)
        if target is None:
            for q in qubits:
                self.measure_into([q], None, [{}])
            return
        name, index = target
        if name not in self.cregs and name in self.types:  # bits of an int or angle
            from openqasm3 import ast

            variable = ast.Identifier(name)
            lvalue: Any = variable
            if index is not None:
                lvalue = ast.IndexedIdentifier(variable, [[ast.IntegerLiteral(index)]])
            self.measure_to(qubits, lvalue, [{}])
            return
        self.measure_into(qubits, self.bit_operand(*target), [{}])

    def fast_reset(self, operand: qasm_scan.Operand) -> None:
        for q in self.qubit_operand(*operand):
            self.builder.reset(q, where=self.where())

    def fast_barrier(self, *operands: qasm_scan.Operand) -> None:
        for operand in operands:
            self.qubit_operand(*operand)
        self.builder.fence(where=self.where())

    def fast_qreg(self, name: str, size: int | None) -> None:
        self.declare(name)
        self.qregs[name] = self.builder.allocate(size or 1, where=self.where())

    def fast_creg(self, name: str, size: int | None) -> None:
        self.declare(name)
        self.add_bits(name, size or 1)
        if size is None and self.version != 2:
            self.scalars.add(name)

    def fast_opaque(self, name: str, n_params: int, n_qubits: int) -> None:
        """OpenQASM 2's ``opaque``: a gate with no body, refused only where it is called."""
        if name in self.gates or name in self.opaque:
            raise self.error("bad-value", f"gate {name} is already defined")
        self.forget()
        self.opaque[name] = (n_qubits, n_params)
